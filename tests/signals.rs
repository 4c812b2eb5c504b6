//! Signals to a running `create`: SIGQUIT ends the archive at once as `NAME.part` (exit 2,
//! committed without any recovery), SIGUSR2 forces a checkpoint (a later SIGKILL then leaves
//! `NAME.part`), SIGUSR1 prints a progress line and the run completes; SIGINT and SIGTERM are not
//! handled: they end the run like a crash, and the next command recovers (it discards a run
//! without checkpoints, and commits the last checkpoint of one with). Signals are sent once the
//! run has stored a pack (polled in the repository), so the tests do not depend on timing. Every
//! outcome is checked against invariant 3 (see `util::crash`).

mod util;

use util::crash::*;

#[test]
fn sigquit_ends_the_archive_at_once_as_night_part() {
    let (env, committed) = big_world();
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
    let (env, committed) = big_world();
    let mut child = start_create(&env, &[]);
    assert!(!env.has_checkpoint_record(), "a checkpoint record without --checkpoint-bytes or SIGUSR2");
    signal(&child, libc::SIGUSR2);
    wait_until(&mut child, LIMIT, "a checkpoint record after SIGUSR2", || env.has_checkpoint_record());
    child.kill().unwrap();
    assert_eq!(wait_out(child).code, KILLED);
    assert_eq!(env.list(), ["base"], "readers see night.part only after recovery");
    env.ok(["recover"])
        .assert_stderr_contains("committed the last checkpoint")
        .assert_stderr_contains("night.part");
    let e = Expect { committed: &committed, name: "night", src: "big", part: true, whole: false };
    check_invariant(&env, &e, "SIGUSR2, then SIGKILL");
}

#[test]
fn sigusr1_prints_progress_and_the_run_completes() {
    let (env, committed) = big_world();
    let child = start_create(&env, &[]);
    signal(&child, libc::SIGUSR1);
    let out = wait_out(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_stderr_contains("progress:");
    let e = Expect { committed: &committed, name: "night", src: "big", part: false, whole: true };
    check_invariant(&env, &e, "after SIGUSR1");
}

/// SIGINT and SIGTERM keep their default action: the process dies where it is, as in a crash.
/// What it stored is then the next command's to recover, as after `kill -9`.
#[test]
fn sigint_and_sigterm_end_the_run_like_a_crash_and_the_next_command_recovers() {
    let (world, committed) = big_world();
    for (sig, flags) in [(libc::SIGINT, &[][..]), (libc::SIGTERM, &["--checkpoint-bytes", "4M"][..])] {
        let when = format!("signal {sig}, flags {flags:?}");
        let env = world.fork_fresh("sig");
        let mut child = start_create(&env, flags);
        let checkpoints = !flags.is_empty();
        if checkpoints {
            wait_until(&mut child, LIMIT, "a checkpoint record", || env.has_checkpoint_record());
        }
        signal(&child, sig);
        let out = wait_out(child);
        assert_eq!(out.code, 128 + sig, "{when}: not ended by the signal:\n{}", out.stderr);
        assert_eq!(decided(&env, "night"), (checkpoints, false), "{when}: records: {:?}", env.txn_records());
        assert_eq!(env.list(), ["base"], "{when}: readers see the last commit");
        let next = env.ok(["recover"]);
        next.assert_stderr_contains(if checkpoints { "committed the last checkpoint" } else { "discarded" });
        let e = Expect { committed: &committed, name: "night", src: "big", part: checkpoints, whole: false };
        check_invariant(&env, &e, &when);
        env.remove_fork();
    }
}
