//! Checkpoints on request and on limits: SIGQUIT ends a running `create` at once as `NAME.part`
//! (exit 2, committed without any recovery), SIGUSR2 forces a checkpoint (a later SIGKILL then
//! leaves `NAME.part`), SIGUSR1 prints a progress line; `--checkpoint-interval` checkpoints once
//! its time has passed (the run is stopped with SIGSTOP for longer than that); `--maxbw` stops
//! after that many bytes as `NAME.part`; re-running `create NAME` removes `NAME.part` unless
//! `--keep-part`; `ls -v` marks the cut file `[partial]` and extract warns that it was cut short
//! (exit 3);
//! `checkpoint-bytes` in a config file makes checkpoints too. Every outcome is checked against
//! invariant 3 (see `util::crash`).

mod util;

use std::collections::BTreeMap;
use std::time::Duration;
use util::crash::*;
use util::*;

const LIMIT: Duration = Duration::from_secs(60);

/// A committed `base`, and `big/`: two 64 MiB files, long enough to signal a run in the middle.
fn setup() -> (Env, BTreeMap<String, String>) {
    let env = Env::new();
    small_tree(&env.path("small"), 1, 10, 100_000);
    env.create("base", &["small"]);
    write_data(&env.path("big/a.bin"), 31, 64 * MIB);
    write_data(&env.path("big/b.bin"), 32, 64 * MIB);
    (env, [("base".to_string(), "small".to_string())].into())
}

/// Starts `create ARGS night big` and returns once it has stored a pack.
fn start_create(env: &Env, flags: &[&str]) -> std::process::Child {
    let mut args = vec!["create"];
    args.extend_from_slice(flags);
    args.extend(["night", "big"]);
    let before = env.pack_folders();
    let mut child = env.spawn_piped(&args);
    wait_until(&mut child, LIMIT, "a stored pack", || has_new_pack(env, &before));
    child
}

fn src_len(env: &Env, stored: &str) -> u64 {
    std::fs::metadata(env.path(stored)).unwrap().len()
}

#[test]
fn sigquit_ends_the_archive_at_once_as_night_part() {
    let (env, committed) = setup();
    let child = start_create(&env, &[]);
    signal(&child, libc::SIGQUIT);
    let out = wait_out(child);
    out.assert_no_panic();
    assert_eq!(out.code, 2, "SIGQUIT: stored but incomplete is exit code 2:\n{}", out.stderr);
    out.assert_stderr_contains("SIGQUIT").assert_stderr_contains("night.part");
    // Committed by the create itself: no transaction is left for recovery to finish.
    assert_eq!(env.list(), ["base", "night.part"]);
    assert!(env.txn_records().is_empty(), "records left: {:?}", env.txn_records());
    let e = Expect { committed: &committed, name: "night", src: "big", part: true, whole: false };
    let part = check_invariant(&env, &e, "after SIGQUIT").expect("night.part");
    let (file, len) = part.cut.expect("SIGQUIT in the middle of a 64 MiB file cuts it");
    assert!(len < src_len(&env, &file), "{file}: {len} bytes is all of it");
}

#[test]
fn sigusr2_forces_a_checkpoint_that_survives_a_kill() {
    let (env, committed) = setup();
    let mut child = start_create(&env, &[]);
    let recorded = || env.txn_records().values().any(|r| r.contains("checkpoint"));
    assert!(!recorded(), "a checkpoint record without --checkpoint-bytes or SIGUSR2");
    signal(&child, libc::SIGUSR2);
    wait_until(&mut child, LIMIT, "a checkpoint record after SIGUSR2", recorded);
    child.kill().unwrap();
    assert_eq!(wait_out(child).code, KILLED);
    assert_eq!(env.list(), ["base"], "readers see night.part only after recovery");
    env.ok(["recover"]).assert_stderr_contains("committed the last checkpoint");
    let e = Expect { committed: &committed, name: "night", src: "big", part: true, whole: false };
    check_invariant(&env, &e, "SIGUSR2, then SIGKILL");
}

#[test]
fn sigusr1_prints_progress_and_the_run_completes() {
    let (env, committed) = setup();
    let child = start_create(&env, &[]);
    signal(&child, libc::SIGUSR1);
    let out = wait_out(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_stderr_contains("progress");
    let e = Expect { committed: &committed, name: "night", src: "big", part: false, whole: true };
    check_invariant(&env, &e, "after SIGUSR1");
}

#[test]
fn maxbw_stops_as_night_part_and_a_rerun_replaces_it_unless_keep_part() {
    let (env, committed) = setup();
    let before = env.repo_size();
    let out = env.run(["create", "--maxbw", "8M", "night", "big"]);
    out.assert_no_panic();
    assert_eq!(out.code, 2, "--maxbw: stored but incomplete is exit code 2:\n{}", out.stderr);
    out.assert_stderr_contains("maxbw").assert_stderr_contains("night.part");
    let added = env.repo_size() - before;
    eprintln!("--maxbw 8M stored {added} bytes");
    assert!(added <= 8 * MIB + 16 * MIB + MIB, "--maxbw 8M stored {added} bytes");
    assert!(env.txn_records().is_empty(), "records left: {:?}", env.txn_records());
    let e = Expect { committed: &committed, name: "night", src: "big", part: true, whole: false };
    let part = check_invariant(&env, &e, "after --maxbw").expect("night.part");
    let (file, len) = part.cut.clone().expect("--maxbw 8M stops inside the first 64 MiB file");
    assert!(len < src_len(&env, &file), "{file}: {len} bytes is all of it");
    let ls = env.ok(["ls", "-v", "night.part"]).lines();
    let line = ls.iter().find(|l| l.ends_with(&format!(" {file} [partial]")));
    assert!(line.is_some(), "`ls -v night.part` does not mark {file} partial:\n{}", ls.join("\n"));
    env.extract_part("night.part"); // exit 3, with a warning naming the cut file

    // Re-running with --keep-part keeps night.part (still restorable); without, it is removed
    // and the space only it used is reclaimed (checked: nothing orphaned).
    let keep = env.fork_fresh("keep");
    keep.ok(["create", "--keep-part", "night", "big"]);
    let e = Expect { committed: &committed, name: "night", src: "big", part: true, whole: true };
    assert_eq!(check_invariant(&keep, &e, "--keep-part").as_ref(), Some(&part), "night.part changed");
    env.ok(["create", "night", "big"]);
    let e = Expect { committed: &committed, name: "night", src: "big", part: false, whole: true };
    check_invariant(&env, &e, "re-run without --keep-part");
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn checkpoint_bytes_in_a_config_file_makes_checkpoints() {
    let env = Env::new();
    small_tree(&env.path("small"), 1, 10, 100_000);
    env.create("base", &["small"]);
    small_tree(&env.path("data/a"), 41, 100, 300_000);
    write_data(&env.path("data/b.bin"), 42, 16 * MIB);
    let conf = env.path("archiver.conf");
    write(&conf, b"# checkpoints every 4 MiB\ncheckpoint-bytes 4M\n");
    let create = ["--config", conf.to_str().unwrap(), "create", "night", "data"];
    // Without a checkpoint this failpoint is never reached and the create would succeed.
    let out = env.run_at("checkpoint-cache-committed", &create);
    assert_eq!(out.code, KILLED, "no checkpoint was made: {}", out.stderr);
    assert_eq!(decided(&env, "night"), (true, false));
    env.ok(["recover"]).assert_stderr_contains("committed the last checkpoint");
    let committed = [("base".to_string(), "small".to_string())].into();
    let e = Expect { committed: &committed, name: "night", src: "data", part: true, whole: false };
    check_invariant(&env, &e, "checkpoint-bytes from the config file");
}

#[test]
fn checkpoint_interval_makes_a_checkpoint_once_the_time_has_passed() {
    let (env, _) = setup();
    let mut child = start_create(&env, &["--checkpoint-interval", "1"]);
    let recorded = || env.txn_records().values().any(|r| r.contains("checkpoint"));
    // Stopped for longer than the interval, the run checkpoints at its next check.
    signal(&child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1200));
    signal(&child, libc::SIGCONT);
    wait_until(&mut child, LIMIT, "a checkpoint record after the interval", recorded);
    child.kill().unwrap();
    assert_eq!(wait_out(child).code, KILLED);
    env.ok(["delete", "base"]).assert_stderr_contains("committed the last checkpoint");
    let e = Expect { committed: &BTreeMap::new(), name: "night", src: "big", part: true, whole: false };
    check_invariant(&env, &e, "--checkpoint-interval 1, then SIGKILL");
}

/// A checkpoint right after the last block of a file has the whole file: it must not be marked
/// `[partial]` (nor make extract say it was cut short).
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_file_a_checkpoint_did_not_cut_is_not_marked_partial() {
    let env = Env::new();
    // Each file is a single block (below the chunker's minimum), so every checkpoint is due right
    // after some file's only block has been stored.
    for i in 0..40 {
        write_data(&env.path(format!("few/f{i:02}.bin")), 50 + i, 100_000 + 2_500 * i);
    }
    let create = ["create", "--checkpoint-bytes", "1M", "night", "few"];
    assert_eq!(env.run_at("checkpoint-cache-committed:2", &create).code, KILLED);
    env.ok(["recover"]).assert_stderr_contains("committed the last checkpoint");
    let part = check_part(&env, "night.part", "few", "checkpoint between files");
    if let Some((file, len)) = part.cut {
        assert!(
            len < src_len(&env, &file),
            "{file} is marked [partial] in night.part (and extract says it was cut short), but \
             night.part holds all {len} bytes of it"
        );
    }
}
