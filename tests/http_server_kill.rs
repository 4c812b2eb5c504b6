//! `kill -9` of the SERVER in the middle of `create --checkpoint-bytes` over HTTP, then a restart
//! on the same store (and port). The client reaches the server through a relay limited to
//! 8 MiB/s, so that ~20 MiB take about two seconds, and each of the 10 kills (40 in an ignored
//! test) lands at a random moment of its own slice of that run (seed printed with every failure;
//! `ARCHIVER_TEST_SEED` replays one). Even runs restart the server at once: the client retries
//! through (`ARCHIVER_RETRIES`), takes the lock again (the restarted server forgot its lease) and
//! finishes its transaction, which it may only do because nobody touched it (`repo::lease`). Odd
//! runs keep the server down past the client's retries: the client fails cleanly with one line,
//! and the server is restarted after it exited. The next command (`recover`, or `create` again)
//! must then leave invariant 3 of `util::crash`, read directly in `STORE/NAME`: committed archives
//! byte-exact, `night.part` only if a checkpoint record was stored, and then a prefix of the
//! data, `night` only if its commit was decided, no transaction records or partial uploads, and
//! nothing orphaned. The server must never panic.

mod util;

use std::collections::BTreeMap;
use std::time::Instant;
use util::crash::*;
use util::proxy::{Policy, Proxy};
use util::server::{client_env, test_seed, Server};
use util::server_kill::*;
use util::*;

fn server_kills(runs: u64) -> Tally {
    let seed = test_seed();
    eprintln!("seed {seed} (ARCHIVER_TEST_SEED={seed} replays the same kill schedule)");
    let env = Env::bare();
    let mut server = Server::start(&env.path("store"));
    let relay = Proxy::start(&server.addr, Policy { seed, rate: Some(RATE), ..Default::default() });
    let slow = client_env(&env, &relay.url("night"));
    let local = server.local(&env, "night");
    slow.ok(["keygen"]);
    small_tree(&env.path("small"), 1, 10, 100_000);
    tree(&env.path("data"));
    server.client(&env, "night").create("base", &["small"]);
    let base: BTreeMap<String, String> = [("base".to_string(), "small".to_string())].into();

    let start = Instant::now();
    slow.ok(CREATE);
    let full = start.elapsed();
    server.client(&env, "night").ok(["delete", "night"]);
    eprintln!("an uninterrupted create through the relay takes {full:?}");

    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    // Restarts that got the same port back.
    let mut same_port = 0u64;
    for i in 0..runs {
        let delay = full.mul_f64((i as f64 + rng.below(1000) as f64 / 1000.0) / runs as f64);
        let when = format!("seed {seed}, run {i}, server killed after {delay:?}");
        let outage = i % 2 == 1;
        let mut child = slow.spawn_with(&[if outage { FEW_RETRIES } else { RETRIES }], CREATE);
        std::thread::sleep(delay);
        let done_before = child.try_wait().unwrap().is_some();
        let out = if outage {
            server.kill9();
            let out = wait_out(child);
            same_port += u64::from(server.restart());
            relay.set_target(&server.addr);
            out
        } else {
            same_port += u64::from(server.restart());
            relay.set_target(&server.addr);
            wait_out(child)
        };
        tally.client(&out, done_before, &when);

        // What the dead server's store decided, read before anyone recovers.
        let (mut part, whole) = decided(&local, "night");
        let recorded = part;
        part |= local.list().iter().any(|n| n == "night.part");
        eprintln!("{when}: exit {}, night.part {part}, night {whole}: {}", out.code, out.stderr.trim());
        tally.left(part, whole);

        // The next command, on a direct connection to the restarted server.
        let client = server.client(&env, "night");
        let e = Expect { committed: &base, name: "night", src: "data", part, whole };
        if i % 2 == 0 || whole {
            let next = client.ok(["recover"]);
            if recorded {
                next.assert_stderr_contains("committed the last checkpoint");
            }
            check_invariant(&local, &e, &when);
        } else {
            client.ok(["create", "night", "data"]);
            check_invariant(
                &local,
                &Expect { part: false, whole: true, ..e },
                &format!("{when}, then create"),
            );
        }
        let names: Vec<String> = local.list().into_iter().filter(|n| n.starts_with("night")).collect();
        if !names.is_empty() {
            let mut args = vec!["delete"];
            args.extend(names.iter().map(String::as_str));
            client.ok(args);
        }
        assert!(server.is_running(), "{when}: the server died");
        assert!(!server.log().contains("panicked"), "{when}: the server panicked:\n{}", server.log());
    }
    eprintln!("{runs} server kills (seed {seed}): {tally:?}, {same_port} restarts on the same port");
    assert_eq!(tally.nothing + tally.part + tally.whole, runs);
    tally
}

#[test]
fn server_killed_mid_create_10_runs() {
    let t = server_kills(10);
    assert!(t.part >= 2, "too few kills landed after a checkpoint: {t:?}");
    assert!(t.retried_through >= 3, "clients should retry through a quick restart: {t:?}");
}

#[test]
#[ignore = "long: 40 server kills (about 3 minutes)"]
fn server_killed_mid_create_40_runs() {
    let t = server_kills(40);
    assert!(t.part >= 10 && t.failed >= 10 && t.retried_through >= 15, "{t:?}");
}
