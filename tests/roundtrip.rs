//! Round trip: what `create` stores, `extract` restores exactly: content byte for byte, mode bits,
//! mtimes to the nanosecond (of files, directories and symlinks themselves), symlink targets
//! (dangling ones too), empty files and directories, odd names and a 200 MiB file. Also
//! `extract NAME PATTERN` (only the matching subtree), `ls` (every path) and `list` (sorted).

mod util;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use util::*;

/// A tree holding every kind of entry a restore must reproduce; `big` > 0 adds a file that large.
fn odd_tree(root: &Path, big: u64) {
    // Nesting, empty directories and empty files.
    mkdir(&root.join("empty-dir"));
    mkdir(&root.join("nested/a/b/c/empty"));
    write(&root.join("nested/a/b/c/deep.txt"), b"deep\n");
    write(&root.join("nested/zero"), b"");
    write(&root.join("zero"), b"");
    write(&root.join("small.txt"), b"hello\n");
    write(&root.join("several-blocks.bin"), &data(1, 9 * MIB as usize + 12_345));
    // Odd names.
    write(&root.join("dir with spaces/file name.txt"), b"spaces");
    write(&root.join("ünïcødé/日本語 ファイル.txt"), "utf-8".as_bytes());
    write(&root.join("new\nline"), b"a newline in the name");
    write(&root.join("-leading-dash"), b"dash");
    write(&root.join("--"), b"two dashes");
    write(&root.join("tab\there"), b"tab");
    write(&root.join("back\\slash"), b"backslash");
    write(&root.join(bpath(b"not-utf8-\xff\xfe")), b"latin-1 bytes");
    write(&root.join("x".repeat(255)), b"the longest name a file system allows");
    // Symlinks, dangling ones included.
    symlink("small.txt", &root.join("link-to-file"));
    symlink("nested/a", &root.join("link-to-dir"));
    symlink("does/not/exist", &root.join("dangling"));
    symlink("/nonexistent/absolute", &root.join("dangling-absolute"));
    symlink("new\nline", &root.join("link-to-odd-name"));
    // Modes.
    for (name, mode) in [("private", 0o600), ("script.sh", 0o755), ("read-only", 0o444)] {
        write(&root.join("modes").join(name), name.as_bytes());
        chmod(&root.join("modes").join(name), mode);
    }
    write(&root.join("modes/private-dir/inside"), b"inside a 0700 directory");
    chmod(&root.join("modes/private-dir"), 0o700);
    if big > 0 {
        write_data(&root.join("big/large.bin"), 200, big);
    }
    // Distinct nanosecond mtimes everywhere, and two extremes.
    stamp_mtimes(root, 7);
    set_mtime(&root.join("nested/zero"), -315_619_201, 999_999_999); // 1960
    set_mtime(&root.join("small.txt"), 4_102_444_801, 1); // 2100
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn restores_content_modes_mtimes_links_and_odd_names_exactly() {
    let env = Env::new();
    odd_tree(&env.path("src"), 200 * MIB);
    env.create("full", &["src"]);
    let out = env.extract("full", &[]);
    assert_eq!(names_in(&out), ["src"]);
    assert_same_tree(&env.path("src"), &out.join("src"));
}

#[test]
fn extract_with_a_pattern_restores_only_the_matching_subtree() {
    let env = Env::new();
    odd_tree(&env.path("src"), 0);
    env.create("a", &["src"]);

    let out = env.extract("a", &["src/nested"]);
    assert_eq!(names_in(&out.join("src")), ["nested"]);
    assert_same_tree(&env.path("src/nested"), &out.join("src/nested"));

    let out = env.extract("a", &["src/new\nline"]);
    assert_eq!(names_in(&out.join("src")), ["new\nline"]);
    assert_eq!(snapshot(&out.join("src/new\nline")), snapshot(&env.path("src/new\nline")));

    // A glob selects the matching entries (and everything under matching directories).
    let out = env.extract("a", &["src/modes/*"]);
    assert_eq!(names_in(&out.join("src")), ["modes"]);
    let children = |dir: &Path| {
        let mut s = snapshot(dir);
        s.remove(Path::new(""));
        s
    };
    assert_eq!(children(&out.join("src/modes")), children(&env.path("src/modes")));
}

#[test]
fn ls_lists_every_path_once_on_one_line_each() {
    let env = Env::new();
    odd_tree(&env.path("src"), 0);
    env.create("a", &["src"]);
    let want: BTreeSet<String> = stored_paths(&env.path("src"), "src").iter().map(|p| escape(p)).collect();
    let lines = env.ok(["ls", "a"]).lines();
    assert_eq!(lines.len(), want.len(), "ls printed a path twice or split one over lines");
    assert_eq!(lines.into_iter().collect::<BTreeSet<_>>(), want);

    let long = env.ok(["ls", "-v", "a"]).lines();
    assert_eq!(long.len(), want.len());
    assert!(long.iter().any(|l| l.starts_with('l') && l.ends_with("src/dangling -> does/not/exist")));
    assert!(long.iter().any(|l| l.starts_with("-r--r--r--") && l.ends_with("src/modes/read-only")));
    assert!(long.iter().any(|l| l.starts_with("drwx------") && l.ends_with("src/modes/private-dir")));
}

#[test]
fn list_shows_archive_names_sorted() {
    let env = Env::new();
    write(&env.path("t/f"), b"x");
    let names = ["b", "a", "Zeta", "10", "9", "a b", "ä", "-dash", "a.2"];
    for n in names {
        env.ok(["create", "--", n, "t"]); // `--`: a name may start with a dash
    }
    let mut sorted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(env.list(), sorted);

    let long = env.ok(["list", "-v"]).lines();
    let firsts: Vec<&str> = long.iter().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(firsts, sorted);
}

#[test]
fn absolute_source_paths_restore_under_the_target_directory() {
    let env = Env::new();
    odd_tree(&env.path("src"), 0);
    let abs = env.path("src");
    env.create("abs", &[abs.to_str().unwrap()]);
    let out = env.extract("abs", &[]);
    let stored = abs.strip_prefix("/").unwrap();
    assert_same_tree(&abs, &out.join(stored));
}

#[test]
fn several_paths_in_one_archive_each_restore() {
    let env = Env::new();
    odd_tree(&env.path("one"), 0);
    small_tree(&env.path("two"), 3, 12, 300_000);
    write(&env.path("lone-file"), b"just a file");
    set_mtime(&env.path("lone-file"), 1_234_567_890, 123_456_789);
    env.create("multi", &["one", "two", "lone-file"]);
    let out = env.extract("multi", &[]);
    assert_eq!(names_in(&out), ["lone-file", "one", "two"]);
    assert_same_tree(&env.path("one"), &out.join("one"));
    assert_same_tree(&env.path("two"), &out.join("two"));
    assert_eq!(snapshot(&out.join("lone-file")), snapshot(&env.path("lone-file")));
}

#[test]
fn the_repository_and_cache_are_never_archived_into_themselves() {
    // The working directory holds the repository and the cache: archiving it must skip both.
    let env = Env::new();
    small_tree(&env.path("data"), 9, 5, 10_000);
    env.create("warm", &["data"]); // makes the cache exist
    let out = env.ok(["create", "whole", "."]);
    out.assert_stderr_contains("own repository or cache");
    let paths = env.ok(["ls", "whole"]).lines();
    assert!(paths.iter().any(|p| p.starts_with("data/")), "{paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("repo") || p.starts_with("cache")), "{paths:?}");
}
