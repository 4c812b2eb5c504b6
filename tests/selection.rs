//! What `create` stores under `--exclude`, `--include`, `--exclude-file`, `--exclude-caches`,
//! `--exclude-if-present` and `--one-file-system` (issue 15). The patterns are judged by bsdtar
//! itself (libarchive-tools; `.ci/run` installs it): for each set of patterns, the paths archiver
//! stores must be exactly those `bsdtar -c` stores from the same operands. The other options are
//! checked against the expected lists; the config file's keys add to the command line's.

mod util;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use util::*;

fn tree(root: &Path) {
    for f in [
        "a/tmp/x",
        "a/tmpx",
        "a/b/c/d.txt",
        "a/bb/c/e",
        "a/x.o",
        "a/src/deep/y.o",
        "a/sp ace/[br]acket",
        "home/ann/f",
        "home/bob/g",
    ] {
        write(&root.join(f), f.as_bytes());
    }
}

/// The paths archive `name` holds (directories without a trailing `/`).
fn stored(env: &Env, name: &str) -> BTreeSet<String> {
    env.ok(["ls", name]).stdout.lines().map(|l| l.trim_end_matches('/').to_string()).collect()
}

/// The paths `bsdtar -c OPTS OPERANDS` stores, run in `dir`.
fn bsdtar(dir: &Path, opts: &[&str], operands: &[&str]) -> Option<BTreeSet<String>> {
    let tar = dir.join("oracle.tar");
    let made =
        Command::new("bsdtar").arg("-cf").arg(&tar).args(opts).args(operands).current_dir(dir).status();
    if made.is_err() {
        unavailable("bsdtar is not installed (apt-get install libarchive-tools)");
        return None;
    }
    assert!(made.unwrap().success(), "bsdtar {opts:?} failed");
    let out = Command::new("bsdtar").arg("-tf").arg(&tar).output().expect("bsdtar -t");
    std::fs::remove_file(&tar).unwrap();
    Some(
        String::from_utf8(out.stdout).unwrap().lines().map(|l| l.trim_end_matches('/').to_string()).collect(),
    )
}

#[test]
fn patterns_select_exactly_what_bsdtar_selects() {
    let env = Env::new();
    tree(&env.root);
    let sets: &[&[&str]] = &[
        &["--exclude", "tmp"],
        &["--exclude", "b/c"],
        &["--exclude", "*.o"],
        &["--exclude", "^a/b"],
        &["--exclude", "a$"],
        &["--exclude", "[st]*"],
        &["--exclude", "sp ace"],
        &["--exclude", "*\\[br\\]*"],
        &["--exclude", "?/b?"],
        &["--include", "home/ann"],
        &["--include", "home$", "--include", "home/ann"],
        &["--include", "a", "--exclude", "*.o"],
        &["--include", "*.o"],
        &["--exclude", "./a/tmp", "--exclude", "home//bob"],
    ];
    for (i, opts) in sets.iter().enumerate() {
        let Some(want) = bsdtar(&env.root, opts, &["a", "home"]) else { return };
        let name = format!("s{i}");
        let mut args = vec!["create"];
        args.extend_from_slice(opts);
        args.extend([name.as_str(), "a", "home"]);
        // Nothing selected (the `*.o` inclusion: no directory matches) still stores an archive.
        env.ok(&args);
        assert_eq!(stored(&env, &name), want, "{opts:?}: archiver and bsdtar stored different paths");
    }
}

#[test]
fn exclude_files_caches_markers_and_the_config_file() {
    let env = Env::new();
    tree(&env.root);
    // A valid cache directory keeps only its tag; an invalid tag is an ordinary file.
    write(&env.path("a/cache/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n");
    write(&env.path("a/cache/blob"), b"cached");
    write(&env.path("a/notcache/CACHEDIR.TAG"), b"Signature: wrong");
    write(&env.path("a/notcache/keep"), b"kept");
    write(&env.path("home/bob/.nobackup"), b"");
    write(&env.path("patterns"), b"*.o\n\ntmp\n");
    env.ok([
        "create",
        "--exclude-file",
        "patterns",
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
        "x",
        "a",
        "home",
    ]);
    let want: BTreeSet<String> = [
        "a",
        "a/b",
        "a/b/c",
        "a/b/c/d.txt",
        "a/bb",
        "a/bb/c",
        "a/bb/c/e",
        "a/cache",
        "a/cache/CACHEDIR.TAG",
        "a/notcache",
        "a/notcache/CACHEDIR.TAG",
        "a/notcache/keep",
        "a/sp ace",
        "a/sp ace/[br]acket",
        "a/src",
        "a/src/deep",
        "a/tmpx",
        "home",
        "home/ann",
        "home/ann/f",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(stored(&env, "x"), want);

    // The same from the config file, with one more pattern on the command line.
    write(
        &env.path("archiver.conf"),
        b"exclude-file patterns\nexclude-caches\nexclude-if-present .nobackup\nexclude a/bb\n",
    );
    env.ok(["--config", "archiver.conf", "create", "--exclude", "sp ace", "y", "a", "home"]);
    let mut want_y = want.clone();
    want_y.retain(|p| !p.starts_with("a/bb") && !p.starts_with("a/sp ace"));
    assert_eq!(stored(&env, "y"), want_y);

    // Bad input: one line, exit 1, nothing stored.
    for (args, says) in [
        (&["create", "--exclude-file", "missing", "z", "a"][..], "--exclude-file missing"),
        (&["create", "--exclude", "", "z", "a"], "--exclude"),
        (&["create", "--exclude-if-present", "a/b", "z", "a"], "--exclude-if-present"),
    ] {
        env.run(args).assert_one_line_error(1).assert_stderr_contains(says);
    }
    assert_eq!(env.list(), ["x", "y"]);
}

#[test]
fn one_file_system_stores_a_mount_point_but_not_what_is_mounted() {
    if !is_root() {
        return unavailable("mounting a tmpfs needs root");
    }
    let env = Env::new();
    write(&env.path("t/here"), b"here");
    let Some(_fs) = Tmpfs::mount(&env.path("t/mnt"), "1m") else {
        return unavailable("cannot mount a tmpfs");
    };
    write(&env.path("t/mnt/there"), b"there");
    env.ok(["create", "--one-file-system", "one", "t"]);
    let want: BTreeSet<String> = ["t", "t/here", "t/mnt"].iter().map(|s| s.to_string()).collect();
    assert_eq!(stored(&env, "one"), want);
    env.ok(["create", "all", "t"]);
    assert!(stored(&env, "all").contains("t/mnt/there"), "without the option the mount is entered");
}
