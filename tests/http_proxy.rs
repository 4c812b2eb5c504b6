//! Connections cut at random byte offsets between client and server (`util::proxy`: every
//! second connection is cut after a log-uniform random number of bytes, 64 B to 6 MiB, in a
//! random direction, with a FIN or a reset; seed printed, `ARCHIVER_TEST_SEED` replays). Through
//! it, `keygen`, then for each of 6 runs a `create --checkpoint-bytes` of new data (sharing one
//! file with the others) and an `extract` of what it stored, with `ARCHIVER_RETRIES=12`. Each
//! command must complete through retries or fail cleanly (exit code != 0, one line, no panic).
//! Afterwards, on a direct connection: every committed archive restores byte-exact (a `.part`
//! as a prefix of its source), `fsck --verify-data` finds everything intact and nothing
//! unreferenced, and no transaction record or stray object is left. The relay counts the cuts
//! that hit pack uploads and pack downloads; both must have happened.

mod util;

use util::crash::*;
use util::proxy::{Policy, Proxy, Tally};
use util::server::{client_env, test_seed, Server};
use util::*;

const RETRIES: (&str, &str) = ("ARCHIVER_RETRIES", "12");

#[derive(Debug, Default)]
struct Outcomes {
    created: u64,
    create_failed: u64,
    extracted: u64,
    extract_failed: u64,
}

/// `out` completed, or failed cleanly; returns whether it completed.
fn completed_or_clean(out: &Out, when: &str) -> bool {
    out.assert_no_panic();
    if out.code != 0 {
        eprintln!("{when}: failed cleanly: {}", out.stderr.trim());
        assert_eq!(out.stderr.lines().count(), 1, "{when}: not one line:\n{}", out.stderr);
        out.assert_failed();
    }
    out.code == 0
}

/// `runs` creates and extracts through a relay that cuts every second connection after at most
/// `max_cut` bytes (only answers, if `replies_only`); returns the relay's tally.
fn cut_runs(runs: u64, max_cut: u64, replies_only: bool, seed: u64) -> Tally {
    eprintln!("seed {seed} (ARCHIVER_TEST_SEED={seed} replays the same cut plan)");
    let env = Env::bare();
    let server = Server::start(&env.path("store"));
    let policy = Policy { seed, cut_every: 2, max_cut, replies_only, ..Default::default() };
    let proxy = Proxy::start(&server.addr, policy);
    let cut = client_env(&env, &proxy.url("cuts"));
    let direct = server.client(&env, "cuts");
    let local = server.local(&env, "cuts");
    // keygen through the cuts: a retried init must not be taken for an existing repository.
    let out = cut.run_with(&[RETRIES], &["keygen"]);
    if !completed_or_clean(&out, &format!("seed {seed}, keygen")) {
        direct.ok(["keygen"]);
    }

    let mut o = Outcomes::default();
    for i in 0..runs {
        let (name, src) = (format!("r{i}"), format!("src{i}"));
        let when = format!("seed {seed}, run {i}");
        write_data(&env.path(&src).join("shared.bin"), 1, 6 * MIB);
        write_data(&env.path(&src).join(format!("own-{i}.bin")), 10 + i, 8 * MIB);
        small_tree(&env.path(&src).join("small"), 30 + i, 12, 100_000);
        let out = cut.run_with(&[RETRIES], &["create", "--checkpoint-bytes", "2M", &name, &src]);
        if completed_or_clean(&out, &format!("{when}, create")) {
            o.created += 1;
        } else {
            o.create_failed += 1;
        }
        let stored = direct.list();
        let Some(got) = [name.clone(), format!("{name}.part")].into_iter().find(|n| stored.contains(n))
        else {
            continue;
        };
        let dir = env.fresh_dir("out");
        let out = cut.run_with(&[RETRIES], &["extract", &got, "-C", dir.to_str().unwrap()]);
        // NAME.part with a file cut short restores with a warning naming it, and exit 3.
        let cut_short = got.ends_with(".part") && out.code == 3 && out.stderr.contains("was cut short");
        if cut_short || completed_or_clean(&out, &format!("{when}, extract {got}")) {
            o.extracted += 1;
            if got == name {
                assert_same_tree(&env.path(&src), &dir.join(&src));
            }
        } else {
            o.extract_failed += 1;
        }
    }
    let t = proxy.tally();
    eprintln!("cuts:\n  {}", t.log.join("\n  "));
    eprintln!("{runs} runs through the cutting relay (seed {seed}): {o:?}; relay: {}", t.summary());

    // Everything, checked on a direct connection.
    direct.ok(["recover"]);
    for name in direct.list() {
        let when = format!("seed {seed}, {name}");
        match name.strip_suffix(".part") {
            None => assert_extracts_exactly(&direct, &name, &format!("src{}", &name[1..]), &when),
            Some(n) => {
                check_part(&direct, &name, &format!("src{}", &n[1..]), &when);
            }
        }
    }
    let fsck = direct.ok(["fsck", "--verify-data"]);
    assert!(fsck.stdout.contains("all intact"), "seed {seed}: fsck:\n{}", fsck.stdout);
    assert!(!fsck.stdout.contains("nothing references"), "seed {seed}: fsck:\n{}", fsck.stdout);
    assert_no_leftovers(&local, &format!("seed {seed}"));
    assert_nothing_orphaned(&local, &format!("seed {seed}"));
    assert!(!server.log().contains("panicked"), "seed {seed}: the server panicked:\n{}", server.log());
    assert!(o.created + o.extracted > 0, "seed {seed}: nothing got through at all: {o:?}");
    t
}

#[test]
fn connections_cut_at_random_offsets_6_runs() {
    // A cut plan may, by chance, cut no pack transfer (seed 607063 cuts 10 connections, none in a
    // pack upload): the next seeds are tried, so the test never passes without such cuts.
    let seed = test_seed();
    let mut seen = Vec::new();
    for s in seed..seed + 4 {
        let t = cut_runs(6, 6 * MIB, false, s);
        if t.pack_uploads > 0 && t.pack_downloads > 0 {
            return;
        }
        seen.push(format!("seed {s}: {}", t.summary()));
    }
    panic!("no cut plan hit both a pack upload and a pack download:\n{}", seen.join("\n"));
}

#[test]
fn answers_lost_after_the_server_acted_4_runs() {
    let t = cut_runs(4, 4096, true, test_seed());
    assert!(t.cuts > 0, "nothing was cut: {}", t.summary());
}

#[test]
#[ignore = "long: 30 runs through the cutting relay"]
fn connections_cut_at_random_offsets_30_runs() {
    let t = cut_runs(30, 6 * MIB, false, test_seed());
    assert!(t.pack_uploads >= 5 && t.pack_downloads >= 5, "{}", t.summary());
}
