//! Real `kill -9` of `create --checkpoint-bytes 2M night data` (~34 MiB) at pseudo-random,
//! deterministic moments spread over one uninterrupted run (30 runs here, 300 in an ignored test).
//! After each kill (and, every other run, deleting the cache) the next write command (`recover`,
//! another `create`, a `delete`) must leave invariant 3 (see `util::crash`), with `night.part`
//! present iff the dead run had durably recorded a checkpoint and `night` iff its commit was
//! decided. Then `create night data` completes: it must upload no more than what `night.part` did
//! not already hold (plus one checkpoint interval and some metadata), restore exactly, and remove
//! `night.part`.

mod util;

use std::time::{Duration, Instant};
use util::crash::*;
use util::*;

const CREATE: &[&str] = &["create", "--checkpoint-bytes", "2M", "night", "data"];
const INTERVAL: u64 = 2 * MIB;
/// Index segments and archive metadata: the part of a re-run's cost that is not file data.
const SLACK: u64 = MIB;

/// Runs time kills against the process: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// ~34 MiB: 100 small files (~10 MiB), a 22 MiB file (read in two batches, so checkpoints can cut
/// it), a 2 MiB file, a symlink; every entry with its own nanosecond mtime.
fn data_tree(dir: &std::path::Path) {
    small_tree(&dir.join("a-small"), 20, 100, 200_000);
    write_data(&dir.join("big.bin"), 21, 22 * MIB);
    write_data(&dir.join("z/last.bin"), 22, 2 * MIB);
    symlink("../big.bin", &dir.join("z/link"));
    stamp_mtimes(dir, 23);
}

#[derive(Default, Debug)]
struct Tally {
    /// Killed before any checkpoint record / with one / after the commit was decided.
    nothing: u64,
    part: u64,
    whole: u64,
    /// Runs whose night.part holds a file cut short (strictly shorter than its source).
    cut_inside: u64,
    /// Bytes the re-runs added beyond what night.part lacked, at most.
    worst_excess: i64,
}

fn kill_runs(runs: u64, seed: u64) -> Tally {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (master, base) = committed_world(data_tree);

    // One uninterrupted run, with the same key and the same base, in a copy: its duration is the
    // window the kills are spread over; what it stores is what a full backup costs. Twice (the
    // first also warms the page cache), keeping the longer: kills that come too late are noticed
    // (the run finished) and aim the next ones earlier.
    let (mut full, mut full_stored) = (Duration::ZERO, 0);
    for _ in 0..2 {
        let scratch = master.fork_fresh("scratch");
        let before = scratch.repo_size();
        // SAFETY: sync has no preconditions; flushing earlier writes keeps them out of the timing.
        unsafe { libc::sync() };
        let start = Instant::now();
        scratch.ok(CREATE);
        full = full.max(start.elapsed());
        full_stored = scratch.repo_size() - before;
        scratch.remove_fork();
    }
    eprintln!("an uninterrupted run takes {full:?} and stores {full_stored} bytes");

    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for i in 0..runs {
        // Run i lands in the i-th slice of the run (at a random point in it).
        let frac = (i as f64 + rng.below(1000) as f64 / 1000.0) / runs as f64;
        let delay = full.mul_f64(frac);
        let when = format!("run {i}, kill after {delay:?}");
        let env = master.fork_fresh("run");
        // SAFETY: as above: the last run's writes must not slow this one's fsyncs down.
        unsafe { libc::sync() };
        let mut child = env.spawn(CREATE);
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap();
        child.kill().ok();
        let status = child.wait().unwrap();
        if let Some(st) = finished {
            assert!(st.success(), "{when}: create failed on its own: {st}");
        }

        // What the dead run decided, read from its records before anyone recovers.
        let (part, whole) = decided(&env, "night");
        let recs = env.txn_records();
        assert!(recs.len() <= 1, "{when}: more than one pending transaction: {recs:?}");
        assert!(finished.is_none() || whole, "{when}: create succeeded, but night is not committed");
        // Readers (no recovery) see the committed archives, and night once its manifest is written.
        let seen = env.list();
        assert!(seen.iter().all(|n| base.contains_key(n) || n == "night"), "{when}: readers see {seen:?}");
        assert!(base.keys().all(|n| seen.contains(n)), "{when}: readers lost an archive: {seen:?}");
        let txn = recs.keys().next().cloned();
        eprintln!("{when}: {status}; night.part {part}, night {whole}");

        if i % 2 == 1 {
            env.drop_cache();
        }
        let mut committed = base.clone();
        let next = next_command(&env, i as usize, &mut committed, &when);
        if part {
            next.assert_stderr_contains("committed the last checkpoint");
        }
        let e = Expect { committed: &committed, name: "night", src: "data", part, whole };
        let got = check_invariant(&env, &e, &when);
        if whole {
            tally.whole += 1;
            if finished.is_some() {
                full = full.min(delay); // runs are quicker than measured: aim the next kills earlier
            }
            env.remove_fork();
            continue;
        }
        let left = match (&got, &txn) {
            (Some(p), Some(t)) => {
                tally.part += 1;
                tally.cut_inside += u64::from(p.cut.as_ref().is_some_and(|(f, n)| *n < src_len(&env, f)));
                env.txn_bytes(t)
            }
            _ => {
                tally.nothing += 1;
                0
            }
        };

        // The re-run completes and uploads only what night.part lacked.
        let before = env.repo_size();
        env.create("night", &["data"]);
        let added = env.repo_size() as i64 - before as i64;
        let lacked = full_stored as i64 - left as i64;
        tally.worst_excess = tally.worst_excess.max(added - lacked);
        assert!(
            added <= lacked + (INTERVAL + SLACK) as i64,
            "{when}: the re-run added {added} bytes; a full backup stores {full_stored} and night.part \
             held {left} of them"
        );
        let e = Expect { part: false, whole: true, ..e };
        check_invariant(&env, &e, &format!("{when}, then completed"));
        env.remove_fork();
    }
    eprintln!("{runs} kills: {tally:?}");
    assert_eq!(tally.nothing + tally.part + tally.whole, runs);
    // Most of the run lies after its first checkpoint: a spread that misses it tests nothing.
    assert!(tally.part >= runs / 3, "only {} of {runs} kills left night.part: {tally:?}", tally.part);
    tally
}

#[test]
fn kill_9_during_create_with_checkpoints_30_runs() {
    kill_runs(30, 30);
}

#[test]
#[ignore = "long: 300 kill -9 runs (about 10 minutes)"]
fn kill_9_during_create_with_checkpoints_300_runs() {
    let tally = kill_runs(300, 300);
    assert!(tally.cut_inside > 0, "no kill left a night.part with a file cut inside: {tally:?}");
}
