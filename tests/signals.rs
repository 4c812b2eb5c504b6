//! Ending and steering a running `create`: SIGQUIT ends the archive at once as `NAME.part`,
//! SIGUSR2 forces a checkpoint, SIGUSR1 prints progress, `--maxbw` stops after so many bytes,
//! `--keep-part` keeps `NAME.part` when `NAME` commits, and `checkpoint-bytes` works from a
//! config file. Signals are sent once the run has visibly started storing data (polled in the
//! repository), so the tests do not depend on timing.

mod util;

use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use util::*;

/// 80 MiB in 8 files, so a run lasts long enough to be signalled.
fn tree(env: &Env) {
    for i in 0..8 {
        write_data(&env.path(format!("d/f{i}.bin")), 9100 + i, 10 * MIB);
    }
}

/// Waits until `ready` holds for the repository, or the child ends (then panics: too fast).
fn wait_until(env: &Env, child: &mut Child, ready: impl Fn(&Env) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(env) {
        assert!(child.try_wait().unwrap().is_none(), "create finished before it could be signalled");
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn has_pack(env: &Env) -> bool {
    env.repo_files().keys().any(|k| k.starts_with("packs/"))
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, sig) };
}

fn no_pending(env: &Env) {
    assert!(!env.repo_files().keys().any(|k| k.starts_with("txn/")), "transaction records left");
}

#[test]
fn sigquit_ends_the_archive_at_once_as_name_part() {
    let env = Env::new();
    tree(&env);
    let mut child = env.command(["create", "night", "d"]).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(&env, &mut child, has_pack);
    signal(&child, libc::SIGQUIT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SIGQUIT") && stderr.contains("night.part"), "{stderr}");
    no_pending(&env);
    assert_eq!(env.list(), ["night.part"]);
    let long = env.ok(["ls", "-v", "night.part"]).lines();
    let restored = env.extract_part("night.part");
    for line in long.iter().filter(|l| l.starts_with('-')) {
        let path = line.trim_end_matches(" [partial]").rsplit(' ').next().unwrap();
        let (got, want) = (fs::read(restored.join(path)).unwrap(), fs::read(env.path(path)).unwrap());
        // Partial files are a prefix (possibly all of it: cut right after their last block).
        assert!(want.starts_with(&got), "{path} is not a prefix of its source");
        if !line.ends_with("[partial]") {
            assert!(got == want, "complete file {path} differs");
        }
    }
}

#[test]
fn sigusr2_forces_a_checkpoint_that_survives_kill_9() {
    let env = Env::new();
    tree(&env);
    let mut child = env.spawn(["create", "night", "d"]);
    wait_until(&env, &mut child, has_pack);
    signal(&child, libc::SIGUSR2);
    wait_until(&env, &mut child, |e| e.repo_files().keys().any(|k| k.contains("/checkpoint-")));
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    env.ok(["recover"]).assert_stderr_contains("night.part");
    assert_eq!(env.list(), ["night.part"]);
    no_pending(&env);
}

#[test]
fn sigusr1_prints_progress() {
    let env = Env::new();
    tree(&env);
    let mut child = env.command(["create", "night", "d"]).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(&env, &mut child, has_pack);
    signal(&child, libc::SIGUSR1);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("progress:"));
    assert_eq!(env.list(), ["night"]);
}

#[test]
fn maxbw_stops_after_that_many_bytes_and_keeps_name_part() {
    let env = Env::new();
    tree(&env);
    let out = env.run(["create", "--maxbw", "8M", "night", "d"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    out.assert_stderr_contains("--maxbw");
    assert_eq!(env.list(), ["night.part"]);
    // Checked after every chunk: the overshoot is at most one chunk (4 MiB) plus metadata.
    assert!(env.repo_size() < 8 * MIB + 16 * MIB + MIB, "stored {} bytes", env.repo_size());
    // The full run later completes from there and removes night.part.
    env.create("night", &["d"]);
    assert_eq!(env.list(), ["night"]);
    assert_same_tree(&env.path("d"), &env.extract("night", &[]).join("d"));
}

#[test]
fn keep_part_keeps_the_checkpoint_archive() {
    let env = Env::new();
    tree(&env);
    assert_eq!(env.run(["create", "--maxbw", "4M", "night", "d"]).code, 2);
    env.ok(["create", "--keep-part", "night", "d"]);
    assert_eq!(env.list(), ["night", "night.part"]);
    let long = env.ok(["ls", "-v", "night.part"]).stdout;
    assert!(long.contains(" [partial]"), "--maxbw 4M cut no file:\n{long}");
    env.extract_part("night.part"); // exit 3, naming the cut file
}

#[test]
fn checkpoint_bytes_from_a_config_file() {
    let env = Env::new();
    tree(&env);
    let conf = env.path("archiver.conf");
    fs::write(&conf, "# tarsnap format\ncheckpoint-bytes 1M\n").unwrap();
    let out = env
        .command(["--config", conf.to_str().unwrap(), "create", "night", "d"])
        .env("ARCHIVER_FAILPOINT", "checkpoint-recorded:2")
        .output()
        .unwrap();
    assert!(out.status.code().is_none(), "the second checkpoint should have been reached");
    env.ok(["recover"]);
    assert_eq!(env.list(), ["night.part"]);
}
