//! Bad input: every mistake a user can make gets one clear line on stderr starting `archiver: `, a
//! non-zero exit code (1: nothing changed), no panic, and leaves the repository exactly as it was
//! (its files and their sizes; the informational `lock` file aside). An unreadable file is the
//! exception that still makes the archive, with exit code 2.

mod util;

use std::fs;
use util::*;

/// A repository holding archive "a" of the small tree `t/`.
fn setup() -> Env {
    let env = Env::new();
    small_tree(&env.path("t"), 1, 8, 50_000);
    env.create("a", &["t"]);
    env
}

/// `args` must fail with exit code 1 and one `archiver: ` line, changing nothing in the repository.
fn refused(env: &Env, args: &[&str]) -> Out {
    let before = env.repo_files();
    let out = env.run(args);
    eprintln!("archiver {args:?} -> {}: {}", out.code, out.stderr.trim_end());
    out.assert_one_line_error(1);
    assert_eq!(env.repo_files(), before, "`archiver {args:?}` changed the repository");
    out
}

#[test]
fn archiving_a_path_that_does_not_exist_stores_nothing() {
    let env = setup();
    refused(&env, &["create", "x", "no-such-path"]).assert_stderr_contains("no-such-path");
    refused(&env, &["create", "x", "t", "no-such-path"]).assert_stderr_contains("no-such-path");
    assert_eq!(env.list(), ["a"]);
}

#[test]
fn an_unreadable_file_is_skipped_with_a_warning_and_exit_code_3() {
    let env = setup();
    write(&env.path("u/readable"), b"fine");
    write(&env.path("u/secret"), b"cannot be read");
    chmod(&env.path("u/secret"), 0o000);
    // Mode 000 does not stop root: as root, the create runs as `nobody`, owning the whole test
    // directory (repository, key, cache and the tree), so only the mode keeps it out.
    let out = if is_root() {
        use std::os::unix::process::CommandExt;
        let chown = std::process::Command::new("chown").arg("-R").arg("65534:65534").arg(&env.root).status();
        assert!(chown.is_ok_and(|s| s.success()), "cannot give the test directory to nobody");
        util::out_of(env.command(["create", "x", "u"]).uid(65534).gid(65534).output().unwrap())
    } else {
        env.run(["create", "x", "u"])
    };
    chmod(&env.path("u/secret"), 0o600);
    out.assert_no_panic().assert_stderr_contains("secret");
    assert_eq!(out.code, 3, "stderr:\n{}", out.stderr);
    assert!(out.stderr.lines().all(|l| l.starts_with("archiver: ")), "{}", out.stderr);
    assert_eq!(env.list(), ["a", "x"]);
    let dir = env.extract("x", &[]);
    assert_eq!(fs::read(dir.join("u/readable")).unwrap(), b"fine");
    assert!(!dir.join("u/secret").exists());
}

#[test]
fn a_file_that_fails_while_being_read_is_stored_partial_with_exit_code_3() {
    // Works as root too: reading /proc/self/mem from offset 0 fails with EIO.
    if !std::path::Path::new("/proc/self/mem").exists() {
        return unavailable("no /proc/self/mem");
    }
    let env = setup();
    let out = env.run(["create", "x", "t", "/proc/self/mem"]);
    out.assert_no_panic().assert_stderr_contains("/proc/self/mem");
    assert_eq!(out.code, 3, "stderr:\n{}", out.stderr);
    assert!(out.stderr.lines().all(|l| l.starts_with("archiver: ")), "{}", out.stderr);
    assert_eq!(env.list(), ["a", "x"]);
    let listing = env.ok(["ls", "-v", "x"]).stdout;
    assert!(listing.lines().any(|l| l.ends_with("proc/self/mem [partial]")), "{listing}");
    assert_same_tree(&env.path("t"), &env.extract_part("x").join("t"));
}

#[test]
fn bad_archive_names_are_refused() {
    let env = setup();
    refused(&env, &["create", "a", "t"]).assert_stderr_contains("\"a\"");
    refused(&env, &["create", "", "t"]);
    refused(&env, &["create", "x\ny", "t"]);
    assert_eq!(env.list(), ["a"]);
    // '/' is allowed, as tarsnap allows it (tarsnapper names archives /host/job-DATE).
    env.ok(["create", "/host/x-1", "t"]);
    assert_eq!(env.list(), ["/host/x-1", "a"]);
}

#[test]
fn a_key_file_from_another_keygen_is_refused() {
    let env = setup();
    let other = Env::new();
    let key = other.key.to_str().unwrap();
    for args in [
        vec!["list"],
        vec!["ls", "a"],
        vec!["extract", "a", "-C", "out"],
        vec!["create", "x", "t"],
        vec!["delete", "a"],
        vec!["stats"],
    ] {
        let mut with_key = vec!["--keyfile", key];
        with_key.extend(args);
        refused(&env, &with_key).assert_stderr_contains(key);
    }
    assert!(!env.path("out").exists());
    assert_eq!(env.list(), ["a"]);
}

#[test]
fn a_missing_or_invalid_key_file_is_refused() {
    let env = setup();
    refused(&env, &["--keyfile", "no-such.key", "list"]).assert_stderr_contains("no-such.key");
    refused(&env, &["--keyfile", "no-such.key", "create", "x", "t"]);
    write(&env.path("garbage.key"), b"this is not a key file\n");
    refused(&env, &["--keyfile", "garbage.key", "list"]).assert_stderr_contains("garbage.key");
    let mut damaged = fs::read_to_string(&env.key).unwrap();
    damaged = damaged.replace("enc-key ", "enc-key 00");
    write(&env.path("damaged.key"), damaged.as_bytes());
    refused(&env, &["--keyfile", "damaged.key", "create", "x", "t"]);
}

#[test]
fn a_missing_repository_is_reported_and_not_created() {
    let env = setup();
    for args in [["list"].as_slice(), &["create", "x", "t"], &["delete", "a"], &["extract", "a"]] {
        let mut with_repo = vec!["--repo", "no-such-repo"];
        with_repo.extend_from_slice(args);
        refused(&env, &with_repo).assert_stderr_contains("no-such-repo");
        assert!(!env.path("no-such-repo").exists(), "`archiver {with_repo:?}` created the repository");
    }
    // A directory that exists but is not a repository.
    mkdir(&env.path("not-a-repo"));
    write(&env.path("not-a-repo/config"), b"something else\n");
    refused(&env, &["--repo", "not-a-repo", "list"]);
    assert_eq!(entries_below(&env.path("not-a-repo")), ["config"]);
}

#[test]
fn a_repository_of_a_newer_format_is_refused() {
    let env = setup();
    let config = fs::read_to_string(env.repo.join("config")).unwrap();
    assert!(config.contains("\nformat 2\n"), "unexpected config:\n{config}");
    fs::write(env.repo.join("config"), config.replace("\nformat 2\n", "\nformat 99\n")).unwrap();
    for args in [["list"].as_slice(), &["create", "x", "t"], &["delete", "a"], &["ls", "a"]] {
        refused(&env, args).assert_stderr_contains("99");
    }
}

#[test]
fn keygen_never_overwrites_a_key_file_or_a_repository() {
    let env = setup();
    let key_before = fs::read(&env.key).unwrap();
    // The key file exists (the repository given is new).
    refused(&env, &["--repo", "new-repo", "keygen"]).assert_stderr_contains("already exists");
    assert_eq!(fs::read(&env.key).unwrap(), key_before, "keygen changed an existing key file");
    assert!(entries_below(&env.path("new-repo")).is_empty(), "keygen started a repository anyway");
    // The repository exists (the key file given is new).
    refused(&env, &["--keyfile", "new.key", "keygen"]).assert_stderr_contains("already exists");
    assert!(!env.path("new.key").exists(), "keygen wrote a key for a repository it did not create");
    assert_eq!(env.list(), ["a"]);
}

#[test]
fn naming_an_archive_that_does_not_exist_is_refused() {
    let env = setup();
    refused(&env, &["extract", "nope", "-C", "out"]).assert_stderr_contains("\"nope\"");
    assert!(!env.path("out").exists());
    refused(&env, &["ls", "nope"]).assert_stderr_contains("\"nope\"");
    refused(&env, &["stats", "nope"]).assert_stderr_contains("\"nope\"");
    // A delete naming one unknown archive deletes none of them.
    refused(&env, &["delete", "a", "nope"]).assert_stderr_contains("\"nope\"");
    refused(&env, &["delete", "nope"]);
    assert_eq!(env.list(), ["a"]);
    assert_same_tree(&env.path("t"), &env.extract("a", &[]).join("t"));
}

#[test]
fn an_extract_pattern_that_matches_nothing_is_refused() {
    let env = setup();
    refused(&env, &["extract", "a", "-C", "out", "t/no-such-file"]).assert_stderr_contains("t/no-such-file");
    assert!(entries_below(&env.path("out")).is_empty());
}

#[test]
fn unknown_commands_options_and_missing_arguments_are_refused() {
    let env = setup();
    refused(&env, &["frobnicate"]).assert_stderr_contains("frobnicate");
    refused(&env, &["list", "--frobnicate"]).assert_stderr_contains("--frobnicate");
    refused(&env, &["--frobnicate", "list"]);
    refused(&env, &["create", "x"]);
    refused(&env, &["create"]);
    refused(&env, &["delete"]);
    refused(&env, &["extract"]);
    refused(&env, &[]);
    assert_eq!(env.list(), ["a"]);
}

#[test]
fn a_missing_argument_is_named_in_the_error() {
    // Regression: clap puts the missing argument's name on a second line, which a one-line
    // error once dropped.
    let env = setup();
    refused(&env, &["create", "x"]).assert_stderr_contains("PATHS");
    refused(&env, &["create"]).assert_stderr_contains("NAME");
    refused(&env, &["delete"]).assert_stderr_contains("NAMES");
    refused(&env, &["extract"]).assert_stderr_contains("NAME");
}
