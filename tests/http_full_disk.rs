//! A full store over HTTP: the server's store is a 12 MiB tmpfs (root only; skipped with a
//! message otherwise), and a `create` of ~22 MiB does not fit. The server answers 507; the
//! client stops with one line saying that storage is full, exits non-zero and does not panic;
//! the server stays up and keeps answering. Without checkpoints nothing is left behind; with
//! `--checkpoint-bytes`, the run's last checkpoint is kept. After the store is enlarged
//! (`mount -o remount`), `recover` leaves invariant 3 of `util::crash` (`big.part` exactly when a
//! checkpoint was stored, a prefix of the data; nothing left over or orphaned), the next
//! `create big` completes and restores byte-exact, and `fsck --verify-data` is clean.

mod util;

use std::collections::BTreeMap;
use util::crash::*;
use util::server::Server;
use util::*;

#[test]
fn a_full_store_answers_507_and_the_next_commands_recover() {
    if !is_root() {
        return unavailable("needs root to mount a small tmpfs");
    }
    let env = Env::bare();
    let Some(disk) = Tmpfs::mount(&env.path("store"), "12m") else {
        return unavailable("cannot mount a tmpfs here");
    };
    let mut server = Server::start(&env.path("store"));
    let http = server.client(&env, "full");
    let local = server.local(&env, "full");
    http.ok(["keygen"]);
    small_tree(&env.path("small"), 1, 10, 100_000);
    http.create("base", &["small"]);
    small_tree(&env.path("data/a-small"), 2, 20, 100_000);
    write_data(&env.path("data/b.bin"), 3, 10 * MIB);
    write_data(&env.path("data/c.bin"), 4, 10 * MIB);
    stamp_mtimes(&env.path("data"), 5);

    // Without checkpoints: the first (16 MiB) pack does not fit; the transaction is discarded.
    let out = http.run(["create", "nock", "data"]);
    out.assert_one_line_error(1).assert_stderr_contains("storage is full").assert_stderr_contains("507");
    assert_eq!(http.list(), ["base"]);
    assert_no_leftovers(&local, "after a create without checkpoints");

    let out = http.run(["create", "--checkpoint-bytes", "2M", "big", "data"]);
    eprintln!("create on a full store: exit {}: {}", out.code, out.stderr.trim());
    out.assert_one_line_error(out.code);
    assert!([1, 2].contains(&out.code), "exit code {}", out.code);
    out.assert_stderr_contains("storage is full").assert_stderr_contains("507");
    assert!(server.is_running(), "the server died when its store filled up");
    assert_eq!(http.list().first().map(String::as_str), Some("base"), "the server stopped answering");

    // Either the failed create committed its last checkpoint itself (it says so and exits 2),
    // or the records say whether recovery must.
    let (recorded, _) = decided(&local, "big");
    let part = recorded || local.list().iter().any(|n| n == "big.part");
    assert_eq!(part, out.code == 2, "a checkpoint was stored iff create reports a changed repository");
    disk.resize("96m");
    let rec = http.ok(["recover"]);
    if recorded {
        rec.assert_stderr_contains("committed the last checkpoint");
    }
    let committed: BTreeMap<String, String> = [("base".to_string(), "small".to_string())].into();
    let e = Expect { committed: &committed, name: "big", src: "data", part, whole: false };
    let held = check_invariant(&local, &e, "after recover");
    eprintln!("big.part: {held:?}");

    http.ok(["create", "--checkpoint-bytes", "2M", "big", "data"]);
    check_invariant(&local, &Expect { part: false, whole: true, ..e }, "after the next create");
    let fsck = http.ok(["fsck", "--verify-data"]);
    assert!(
        fsck.stdout.contains("all intact") && !fsck.stdout.contains("nothing references"),
        "{}",
        fsck.stdout
    );
    assert!(!server.log().contains("panicked"), "the server panicked:\n{}", server.log());
}
