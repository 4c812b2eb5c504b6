//! Signals to a running `create`: SIGQUIT ends the archive at once as `NAME.part` (exit 3,
//! committed without any recovery), SIGUSR2 forces a checkpoint (a later SIGKILL then leaves
//! `NAME.part`), SIGUSR1 prints a progress line and the run completes; SIGINT and SIGTERM stop
//! the run within a second (exit 130, 143) at its last checkpoint, committed as `NAME.part`, or
//! undo it. Signals are sent once the
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
    assert_eq!(out.code, 3, "SIGQUIT: stored but incomplete is exit code 3:\n{}", out.stderr);
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

/// SIGINT and SIGTERM stop the run within a second, in one line, exit 128 + the signal: with a
/// checkpoint, `create` itself commits it as `night.part` (a prefix of the data, nothing after
/// it kept); without one, it undoes the run (nothing it uploaded remains). No transaction is left
/// for the next command.
#[test]
fn sigint_and_sigterm_stop_the_run_at_its_last_checkpoint_or_undo_it() {
    let (world, committed) = big_world();
    let with = &["--checkpoint-bytes", "4M"][..];
    for (sig, flags) in
        [(libc::SIGINT, &[][..]), (libc::SIGTERM, with), (libc::SIGINT, with), (libc::SIGTERM, &[][..])]
    {
        let when = format!("signal {sig}, flags {flags:?}");
        let env = world.fork_fresh("sig");
        let mut child = start_create(&env, flags);
        let checkpoints = !flags.is_empty();
        if checkpoints {
            wait_until(&mut child, LIMIT, "a checkpoint record", || env.has_checkpoint_record());
        }
        let sent = std::time::Instant::now();
        signal(&child, sig);
        let out = wait_out(child);
        let took = sent.elapsed();
        eprintln!("{when}: stopped in {took:?}: {}", out.stderr.trim());
        out.assert_one_line_error(128 + sig);
        out.assert_stderr_contains(if sig == libc::SIGINT {
            "interrupted by SIGINT"
        } else {
            "interrupted by SIGTERM"
        });
        assert!(took <= std::time::Duration::from_secs(1), "{when}: took {took:?} to stop");
        assert!(env.txn_records().is_empty(), "{when}: records left: {:?}", env.txn_records());
        if checkpoints {
            out.assert_stderr_contains("night.part");
            assert_eq!(env.list(), ["base", "night.part"], "{when}");
        } else {
            out.assert_stderr_contains("nothing it uploaded remains");
            assert_eq!(env.list(), ["base"], "{when}");
        }
        let e = Expect { committed: &committed, name: "night", src: "big", part: checkpoints, whole: false };
        check_invariant(&env, &e, &when);
        env.remove_fork();
    }
}
