//! `--lock-wait DURATION`: a write command that finds the repository locked by another archiver
//! fails at once by default (one line naming the holder), waits up to DURATION when asked (saying
//! once whom it waits for) and then gives up in one line, or goes on as soon as the lock is free.

mod util;

use std::time::{Duration, Instant};
use util::crash::{has_new_pack, signal, wait_out, wait_until};
use util::*;

#[test]
fn a_writer_waits_for_the_lock_only_when_asked_and_only_as_long_as_asked() {
    let env = Env::new();
    write(&env.path("small/f"), b"x");
    for i in 0..4 {
        write_data(&env.path(format!("big/f{i}")), i, 32 * MIB);
    }
    // A create that holds the lock, stopped once it is uploading.
    let before = env.pack_folders();
    let mut holder = env.spawn_piped(&["create", "holder", "big"]);
    wait_until(&mut holder, Duration::from_secs(60), "a pack of the holder", || has_new_pack(&env, &before));
    signal(&holder, libc::SIGSTOP);

    env.run(["create", "a", "small"])
        .assert_one_line_error(1)
        .assert_stderr_contains("locked by another archiver");
    let start = Instant::now();
    let out = env.run(["--lock-wait", "2s", "create", "a", "small"]);
    let waited = start.elapsed();
    out.assert_failed().assert_stderr_contains("gave up waiting for the lock");
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(10), "waited {waited:?}");
    assert!(out.stderr.contains("waiting for the lock"), "it says whom it waits for: {}", out.stderr);

    // Released while a writer waits: it goes on.
    let waiter = env.spawn_piped(&["--lock-wait", "60s", "create", "a", "small"]);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&holder, libc::SIGCONT);
    assert_eq!(wait_out(holder).code, 0);
    let out = wait_out(waiter);
    assert_eq!(out.code, 0, "the waiting create failed: {}", out.stderr);
    assert_eq!(env.list(), ["a", "holder"]);

    // Also as a config key; a bad value is one line.
    write(&env.path("conf"), b"lock-wait 1m\n");
    env.ok(["--config", env.path("conf").to_str().unwrap(), "create", "b", "small"]);
    env.run(["--lock-wait", "5x", "list"]).assert_one_line_error(1).assert_stderr_contains("unknown unit");
    env.run(["--lock-wait", "9999h", "list"])
        .assert_one_line_error(1)
        .assert_stderr_contains("longer than a week");
}
