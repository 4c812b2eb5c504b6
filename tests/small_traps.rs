//! Smaller traps a new user met (issue 12): `--checkpoint-bytes` below 1 MiB is refused in one line;
//! after this client's own recovery (`--maxbw`, `recover` after a kill) the next command does not
//! report the cache as behind the repository (it still does when another cache committed); a cache
//! that cannot be written (a read-only file system, or a read-only directory without root) leaves
//! every command working, with one notice per run; `list` right after a crash says that an
//! interrupted run is pending and what it will be committed as; `extract -C FILE` does not advise
//! `--resume` when nothing was restored.

mod util;

use std::path::Path;
use util::crash::*;
use util::*;

/// `d/`: a small file and a 16 MiB one, long enough to be stopped or killed in the middle.
fn tree(env: &Env) {
    write(&env.path("d/a.txt"), b"small\n");
    write_data(&env.path("d/big.bin"), 21, 16 * MIB);
}

const BEHIND: &str = "was behind the repository";

#[test]
fn checkpoint_bytes_below_one_mib_are_refused_in_one_line() {
    let env = Env::new();
    tree(&env);
    for size in ["1", "4096", "1023K"] {
        let out = env.run(["create", "--checkpoint-bytes", size, "night", "d"]);
        out.assert_one_line_error(1).assert_stderr_contains("1M");
    }
    let conf = env.path("archiver.conf");
    write(&conf, b"checkpoint-bytes 512K\n");
    let out = env.run(["--config", conf.to_str().unwrap(), "create", "night", "d"]);
    out.assert_one_line_error(1).assert_stderr_contains("1M");
    assert!(env.list().is_empty(), "something was stored");
    env.ok(["create", "--checkpoint-bytes", "1M", "night", "d"]);
}

#[test]
fn after_maxbw_the_cache_is_not_reported_behind() {
    let env = Env::new();
    tree(&env);
    let out = env.run(["create", "--maxbw", "2M", "night", "d"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    for args in [&["stats"][..], &["create", "other", "d/a.txt"]] {
        let out = env.ok(args);
        assert!(
            !out.stderr.contains(BEHIND),
            "after this client's own --maxbw stop, {args:?} says:\n{}",
            out.stderr
        );
    }
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn after_recover_the_cache_is_not_reported_behind_but_is_after_another_cache_committed() {
    let env = Env::new();
    tree(&env);
    let args = ["create", "--checkpoint-bytes", "1M", "night", "d"];
    assert_eq!(env.run_at("checkpoint-cache-committed:2", &args).code, KILLED);
    env.ok(["recover"]).assert_stderr_contains("night.part");
    let out = env.ok(["stats"]);
    assert!(!out.stderr.contains(BEHIND), "after this client's own recover, stats says:\n{}", out.stderr);
    // A commit made with another cache: now the cache is behind, and says so.
    let other =
        env.command(["create", "elsewhere", "d/a.txt"]).env("ARCHIVER_CACHEDIR", env.path("cache2")).output();
    assert!(other.unwrap().status.success());
    env.ok(["stats"]).assert_stderr_contains(BEHIND);
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn list_after_a_crash_says_an_interrupted_run_is_pending() {
    let env = Env::new();
    tree(&env);
    let args = ["create", "--checkpoint-bytes", "1M", "night", "d"];
    assert_eq!(env.run_at("checkpoint-cache-committed:2", &args).code, KILLED);
    let out = env.ok(["list"]);
    assert_eq!(out.stdout, "", "nothing is committed yet");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{}", out.stderr);
    for part in ["interrupted `create night`", "archiver recover", "\"night.part\""] {
        assert!(lines[0].contains(part), "{part:?} missing: {}", lines[0]);
    }
    // Quiet and unchanged: list does not recover.
    assert_eq!(env.ok(["-q", "list"]).stderr, "");
    env.ok(["recover"]);
    assert_eq!(env.list(), ["night.part"]);
    assert_eq!(env.ok(["list"]).stderr, "", "nothing is pending any more");
}

/// Makes the cache unwritable: a read-only remount of a tmpfs under it (as root, where
/// permissions do not stop writes), else a read-only directory. `None` if neither is possible.
fn read_only_cache(env: &Env) -> Option<Option<Tmpfs>> {
    let id = std::fs::read_dir(&env.cache).ok()?.next()?.ok()?.path();
    if !is_root() {
        for f in std::fs::read_dir(&id).unwrap() {
            chmod(&f.unwrap().path(), 0o444);
        }
        chmod(&id, 0o555);
        return Some(None);
    }
    // Move the cache onto a tmpfs of its own, then remount that read-only.
    let saved = env.path("cache-saved");
    copy_dir(&id, &saved);
    std::fs::remove_dir_all(&id).unwrap();
    let fs = Tmpfs::mount(&id, "8M")?;
    copy_dir(&saved, &id);
    let ro = std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(&id).status();
    assert!(ro.unwrap().success(), "remount read-only");
    Some(Some(fs))
}

fn notices_of_a_temporary_cache(out: &Out) -> usize {
    out.stderr.lines().filter(|l| l.contains("temporary cache")).count()
}

#[test]
fn a_cache_that_cannot_be_written_leaves_commands_working_with_one_notice_per_run() {
    let env = Env::new();
    tree(&env);
    env.create("first", &["d/a.txt"]);
    // night.part, so that the next create opens the cache twice (it deletes night.part).
    assert_eq!(env.run(["create", "--maxbw", "2M", "night", "d"]).code, 3);
    let Some(mounted) = read_only_cache(&env) else {
        return unavailable("cannot mount a tmpfs as root");
    };
    let out = env.ok(["create", "night", "d"]);
    assert_eq!(notices_of_a_temporary_cache(&out), 1, "one notice per run:\n{}", out.stderr);
    assert!(!out.stderr.contains(BEHIND), "{}", out.stderr);
    assert_eq!(env.list(), ["first", "night"]);
    let out = env.ok(["stats"]);
    assert_eq!(notices_of_a_temporary_cache(&out), 1, "one notice per run:\n{}", out.stderr);
    let dir = env.extract("night", &[]);
    assert_same_tree(&env.path("d"), &dir.join("d"));
    match mounted {
        Some(fs) => drop(fs),
        None => chmod(&std::fs::read_dir(&env.cache).unwrap().next().unwrap().unwrap().path(), 0o755),
    }
}

#[test]
fn extract_into_a_regular_file_does_not_advise_resume() {
    let env = Env::new();
    tree(&env);
    env.create("a", &["d/a.txt"]);
    write(&env.path("afile"), b"x");
    let out = env.run(["extract", "a", "-C", "afile"]);
    out.assert_one_line_error(1).assert_stderr_contains("nothing was restored");
    assert!(!out.stderr.contains("--resume"), "{}", out.stderr);
    assert!(!Path::new(&env.path("afile")).is_dir());
}
