//! Crash safety of checkpoints, step by step: `create --checkpoint-bytes 4M night data` (~60 MiB,
//! several checkpoints, some falling inside files) is killed at every failpoint of the checkpoint,
//! commit and recovery protocols (`archiver::failpoint::POINTS`; checkpoint steps also at their
//! second hit). The next write command (`recover`, another `create`, a `delete`; half the time
//! without the local cache) must leave invariant 3 (see `util::crash`): committed archives exact,
//! `night.part` iff a checkpoint record was written, `night` iff its commit was decided, complete
//! files of `night.part` identical and the cut one a prefix, no records, no partial uploads, no
//! orphaned bytes. Then the backup completes and `night.part` is gone. Also: recovery does the same
//! with and without the cache; a second crash adds `night.part.2` without leaking the first one's
//! space; a crash while the completed run removes `night.part` leaks nothing; a run without
//! checkpoints is discarded whole; an archive the user named `night.part` is left alone.
//!
//! Needs the binary built with `--features failpoints` (the test command does that).

mod util;

use archiver::failpoint::POINTS;
use std::collections::BTreeMap;
use std::time::Duration;
use util::crash::*;
use util::*;

const CREATE: &[&str] = &["create", "--checkpoint-bytes", "4M", "night", "data"];

/// ~60 MiB to back up, walked in this order: 150 small files (~22 MiB; a checkpoint check after
/// each, and small blocks keep the pipeline short, so checkpoints come every few MiB), a 36 MiB
/// file (checked between its ~16 MiB batches: cut inside), a 2 MiB file, an empty file and a
/// symlink; every entry with its own nanosecond mtime.
fn data_tree(dir: &std::path::Path) {
    small_tree(&dir.join("a-small"), 10, 150, 300_000);
    write_data(&dir.join("big.bin"), 11, 36 * MIB);
    write_data(&dir.join("mid/one.bin"), 12, 2 * MIB);
    write(&dir.join("mid/empty"), b"");
    symlink("../big.bin", &dir.join("mid/link"));
    stamp_mtimes(dir, 15);
}

/// The template every case forks: source trees, and two committed archives (`base` of `small`,
/// `older` of `small2`) so one can be deleted while the other is checked.
fn world() -> (Env, BTreeMap<String, String>) {
    let env = Env::new();
    small_tree(&env.path("small"), 1, 10, 100_000);
    small_tree(&env.path("small2"), 2, 8, 100_000);
    small_tree(&env.path("small3"), 3, 8, 100_000);
    data_tree(&env.path("data"));
    env.create("base", &["small"]);
    env.create("older", &["small2"]);
    let committed = [("base", "small"), ("older", "small2")].map(|(a, b)| (a.to_string(), b.to_string()));
    (env, committed.into_iter().collect())
}

/// What recovery must make of a crash at `point` (its `k`-th hit): (night.part, night).
fn expected(point: &str, k: u32) -> (bool, bool) {
    match point {
        "txn-begun" | "pack-stored" => (false, false),
        // The k-th checkpoint dies before its record: the (k-1)-th one decides.
        "checkpoint-flushed" | "checkpoint-indexed" | "checkpoint-part-stored" => (k >= 2, false),
        "checkpoint-recorded" | "checkpoint-cache-committed" => (true, false),
        // The run checkpointed before it reached its commit.
        "commit-flushed" | "commit-indexed" => (true, false),
        "commit-decided" | "commit-manifest-written" | "commit-cleaned" | "commit-done" => (false, true),
        "recover-promoting" => (true, false),
        other => panic!("failpoint {other} is new: add what a crash there must leave"),
    }
}

/// The next write command, chosen by `i`: it recovers first, then does its own work.
fn next_command(env: &Env, i: usize, committed: &mut BTreeMap<String, String>, when: &str) -> Out {
    let out = match i % 3 {
        0 => env.ok(["recover"]),
        1 => {
            committed.insert("other".into(), "small3".into());
            env.ok(["create", "other", "small3"])
        }
        _ => {
            committed.remove("base");
            env.ok(["delete", "base"])
        }
    };
    assert!(!out.stderr.contains("warning"), "{when}: {}", out.stderr);
    out
}

/// Readers (no lock, no recovery) before the next write: committed archives, plus `night` once
/// its manifest is written; never `night.part`, which only recovery commits.
fn assert_readers_see_last_commit(env: &Env, committed: &BTreeMap<String, String>, night: bool, when: &str) {
    let mut want: Vec<String> = committed.keys().cloned().collect();
    if night {
        want.push("night".into());
        want.sort();
    }
    assert_eq!(env.list(), want, "{when}: readers before recovery");
}

fn run_case(world: &Env, base: &BTreeMap<String, String>, i: usize, point: &str, k: u32) {
    let when = format!("crash at {point}:{k} (case {i})");
    let (part, whole) = expected(point, k);
    let env = world.fork_fresh("case");
    let mut committed = base.clone();
    let out = env.run_at(&format!("{point}:{k}"), CREATE);
    assert_eq!(out.code, KILLED, "{when}: the failpoint was not reached: {}", out.stderr);

    // The repository's records say what was decided, before anyone recovers.
    let recs = env.txn_records();
    assert!(recs.len() <= 1, "{when}: more than one pending transaction: {recs:?}");
    assert_eq!(decided(&env, "night"), (part, whole), "{when}: records say otherwise: {recs:?}");
    let visible = whole && point != "commit-decided";
    assert_readers_see_last_commit(&env, &committed, visible, &when);

    if i % 2 == 1 {
        env.drop_cache();
    }
    let next = next_command(&env, i, &mut committed, &when);
    if part {
        next.assert_stderr_contains("committed the last checkpoint");
    }
    let e = Expect { committed: &committed, name: "night", src: "data", part, whole };
    let got = check_invariant(&env, &e, &when);
    eprintln!("{when}: night.part {got:?}");

    // The interrupted backup can be completed; it replaces night.part.
    if !whole {
        env.create("night", &["data"]);
        let e = Expect { part: false, whole: true, ..e };
        check_invariant(&env, &e, &format!("{when}, then completed"));
    }
    env.remove_fork();
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_crash_at_every_protocol_step_then_the_next_command_leaves_invariant_3() {
    let (world, committed) = world();
    // The run must checkpoint at least twice, or the 2nd hits below test nothing.
    let probe = world.fork_fresh("probe");
    let mut args = CREATE.to_vec();
    args.insert(1, "-v");
    let n = probe.ok(&args).stderr.matches("checkpoint stored").count();
    eprintln!("an uninterrupted run makes {n} checkpoints");
    assert!(n >= 2, "an uninterrupted run made only {n} checkpoints");
    probe.remove_fork();

    let mut cases = Vec::new();
    for &point in POINTS.iter().filter(|p| **p != "recover-promoting") {
        let hits: &[u32] = if point.starts_with("checkpoint-") { &[1, 2] } else { &[1] };
        for &k in hits {
            cases.push((cases.len(), point, k));
        }
    }
    assert_eq!(cases.len(), POINTS.len() - 1 + 5);
    // Two at a time: the cases are independent forks and take no timing.
    std::thread::scope(|s| {
        for lane in 0..2 {
            let (world, committed, cases) = (&world, &committed, &cases);
            s.spawn(move || {
                for &(i, point, k) in cases.iter().filter(|c| c.0 % 2 == lane) {
                    run_case(world, committed, i, point, k);
                }
            });
        }
    });
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_crash_while_recovery_promotes_the_checkpoint_is_recovered_by_the_next_command() {
    let (world, base) = world();
    for (i, next) in ["recover", "delete"].into_iter().enumerate() {
        let when = format!("crash in recovery, then {next}");
        let env = world.fork_fresh("promote");
        assert_eq!(env.run_at("checkpoint-cache-committed:2", CREATE).code, KILLED, "{when}: create");
        let out = env.run_at("recover-promoting", &["recover"]);
        assert_eq!(out.code, KILLED, "{when}: recovery was not killed: {}", out.stderr);
        let recs = env.txn_records();
        assert!(recs.values().any(|r| r.contains("checkpoint")), "{when}: checkpoint record lost: {recs:?}");
        assert_readers_see_last_commit(&env, &base, false, &when);
        if i == 1 {
            env.drop_cache();
        }
        let mut committed = base.clone();
        next_command(&env, i * 2, &mut committed, &when)
            .assert_stderr_contains("committed the last checkpoint");
        let e = Expect { committed: &committed, name: "night", src: "data", part: true, whole: false };
        check_invariant(&env, &e, &when);
        // A second `recover` finds nothing left to do.
        env.ok(["recover"]).assert_stderr_contains("nothing to recover");
        env.remove_fork();
    }
}

/// Runs the same next command on two identical copies, one without its cache: the archives, their
/// listings and their restored trees are identical, and both satisfy invariant 3.
fn compare_with_and_without_cache(env: &Env, i: usize, base: &BTreeMap<String, String>, when: &str) {
    let (part, whole) = decided(env, "night");
    let (kept, dropped) = (env.fork_fresh("kept"), env.fork_fresh("dropped"));
    dropped.drop_cache();
    let mut committed = base.clone();
    for copy in [&kept, &dropped] {
        committed = base.clone();
        next_command(copy, i, &mut committed, when);
    }
    for round in ["after recovery", "after completing the backup"] {
        let names = kept.list();
        assert_eq!(names, dropped.list(), "{when}, {round}: archives differ with and without the cache");
        for name in &names {
            let ls = |e: &Env| e.ok(["ls", "-v", name]).lines();
            assert_eq!(ls(&kept), ls(&dropped), "{when}, {round}: `ls -v {name}` differs");
            let (a, b) = (kept.extract_part(name), dropped.extract_part(name));
            // The extraction directories themselves differ (in mtime); what is in them may not,
            // except the mtime of a file cut short, which is the time of its restore.
            let cut = kept.partial_files(name);
            let (mut sa, mut sb) = (snapshot_but_cut_mtimes(&a, &cut), snapshot_but_cut_mtimes(&b, &cut));
            sa.remove(std::path::Path::new(""));
            sb.remove(std::path::Path::new(""));
            if sa != sb {
                assert_same_tree(&a, &b);
            }
            std::fs::remove_dir_all(a).unwrap();
            std::fs::remove_dir_all(b).unwrap();
        }
        let done = round != "after recovery";
        let e = Expect {
            committed: &committed,
            name: "night",
            src: "data",
            part: part && !done,
            whole: whole || done,
        };
        check_invariant(&kept, &e, &format!("{when}, {round}, cache kept"));
        check_invariant(&dropped, &e, &format!("{when}, {round}, cache deleted"));
        if !done && !whole {
            kept.create("night", &["data"]);
            dropped.create("night", &["data"]);
        }
    }
    kept.remove_fork();
    dropped.remove_fork();
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn recovery_gives_the_same_archives_with_or_without_the_cache() {
    let (world, base) = world();
    // After a checkpoint whose cache commit went through (the cache knows blocks of the dead
    // transaction), and before a commit (the cache knows only older checkpoints' blocks).
    let points = ["checkpoint-cache-committed:2", "commit-indexed"];
    for (i, point) in points.into_iter().enumerate() {
        let env = world.fork_fresh("cache");
        assert_eq!(env.run_at(point, CREATE).code, KILLED, "{point}: not reached");
        compare_with_and_without_cache(&env, i, &base, &format!("crash at {point}"));
        env.remove_fork();
    }
    // A real kill -9, as soon as a checkpoint record exists.
    let env = world.fork_fresh("cache-kill");
    let mut child = env.spawn_piped(&["create", "--checkpoint-bytes", "2M", "night", "data"]);
    let ckpt = || env.txn_records().values().any(|r| r.contains("checkpoint"));
    wait_until(&mut child, Duration::from_secs(60), "a checkpoint record", ckpt);
    child.kill().unwrap();
    let out = wait_out(child);
    assert_eq!(out.code, KILLED, "create was not killed");
    assert_eq!(
        decided(&env, "night"),
        (true, false),
        "a checkpoint record was seen, so night.part must result"
    );
    compare_with_and_without_cache(&env, 2, &base, "kill -9 after a checkpoint");
}

/// A second crash of the same archive before it completes: recovery commits the newer checkpoint
/// as `night.part.2` beside the first one's `night.part` (it never replaces an archive: otherwise
/// a checkpoint planted with a write key could replace a real one, issue 11), a crash of that
/// recovery anywhere in its commit is recovered again, and the completed run removes both,
/// leaving nothing that no archive references.
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_second_crash_keeps_both_checkpoints_and_the_completed_run_removes_them() {
    let (world, mut committed) = world();
    let env = world.fork_fresh("twice");
    assert_eq!(env.run_at("checkpoint-cache-committed:1", CREATE).code, KILLED);
    env.ok(["recover"]).assert_stderr_contains("committed the last checkpoint");
    let e = Expect { committed: &committed, name: "night", src: "data", part: true, whole: false };
    let first = check_invariant(&env, &e, "first crash").expect("night.part");
    // The re-run dedups against night.part, checkpoints further, and dies before its commit.
    assert_eq!(env.run_at("commit-indexed", CREATE).code, KILLED);
    let both = |env: &Env, committed: &BTreeMap<String, String>, when: &str| {
        let mut want: Vec<String> = committed.keys().cloned().collect();
        want.extend(["night.part".to_string(), "night.part.2".to_string()]);
        want.sort();
        assert_eq!(env.list(), want, "{when}");
        assert_no_leftovers(env, when);
        assert_eq!(check_part(env, "night.part", "data", when), first, "{when}: night.part changed");
        let second = check_part(env, "night.part.2", "data", when);
        assert!(second.entries > first.entries, "{when}: night.part.2 is not the newer checkpoint");
        assert_nothing_orphaned(env, when);
    };
    for point in ["commit-decided:1", "commit-cleaned:1"] {
        let when = format!("second crash, recovery killed at {point}");
        let copy = env.fork_fresh("again");
        assert_eq!(copy.run_at(point, &["recover"]).code, KILLED, "{when}: not reached");
        copy.ok(["recover"]);
        both(&copy, &committed, &when);
        copy.remove_fork();
    }
    env.drop_cache();
    next_command(&env, 1, &mut committed, "second crash")
        .assert_stderr_contains("committed the last checkpoint");
    both(&env, &committed, "second crash");
    // The completed run removes both checkpoints (a delete key: this key file holds it).
    env.ok(CREATE);
    committed.insert("night".into(), "data".into());
    let e = Expect { committed: &committed, name: "night", src: "data", part: false, whole: false };
    check_invariant(&env, &e, "after the completed run");
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn without_checkpoints_a_crash_before_the_commit_discards_the_whole_run() {
    let (world, committed) = world();
    for point in ["commit-indexed", "pack-stored:2"] {
        let env = world.fork_fresh("nockpt");
        assert_eq!(env.run_at(point, &["create", "night", "data"]).code, KILLED, "{point}: not reached");
        env.ok(["recover"]).assert_stderr_contains("discarded");
        let e = Expect { committed: &committed, name: "night", src: "data", part: false, whole: false };
        check_invariant(&env, &e, &format!("no checkpoints, crash at {point}"));
        env.remove_fork();
    }
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_crash_while_the_completed_run_removes_night_part_keeps_night_and_leaks_nothing() {
    let (world, committed) = world();
    let parted = world.fork_fresh("parted");
    assert_eq!(parted.run_at("checkpoint-cache-committed:2", CREATE).code, KILLED);
    parted.ok(["recover"]);
    // The re-run commits night (the 1st transaction), then deletes night.part in a 2nd one: crash
    // in that 2nd one. night.part stays iff the deletion's commit was not decided.
    let points = ["txn-begun:2", "commit-flushed:2", "commit-indexed:2", "commit-decided:2", "commit-done:2"];
    for (i, point) in points.into_iter().enumerate() {
        let when = format!("re-run, crash at {point}");
        let env = parted.fork_fresh("rerun");
        assert_eq!(env.run_at(point, &["create", "night", "data"]).code, KILLED, "{when}: not reached");
        if i % 2 == 1 {
            env.drop_cache();
        }
        env.ok(["recover"]);
        let part = !point.starts_with("commit-d");
        let e = Expect { committed: &committed, name: "night", src: "data", part, whole: true };
        check_invariant(&env, &e, &when);
        env.remove_fork();
    }
}

/// Only `night.part` archives that checkpoints made are theirs to replace or remove: an archive
/// the user named `night.part` would be committed data like any other. (Regression: recovery
/// replaced it with night's checkpoint, and a completed `create night` deleted it.) Names ending
/// in `.part` are refused up front, in one line, storing nothing; so there is no such archive
/// for a crash and recovery to endanger (the test of that half could never run, and is gone).
#[test]
fn a_user_cannot_name_an_archive_as_a_checkpoint_is_named() {
    let (world, _) = world();
    let env = world.fork_fresh("named");
    env.run(["create", "night.part", "small3"]).assert_one_line_error(1).assert_stderr_contains(".part");
    assert_eq!(env.list(), ["base", "older"]);
    env.remove_fork();
}
