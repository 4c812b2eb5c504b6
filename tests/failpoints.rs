//! Every failpoint of the transaction protocol, with what a crash there must leave. `TABLE` names
//! each failpoint once, in protocol order, with its expected outcome; a test reads every
//! `crate::failpoint::hit("NAME")` in `src/` (all of it, recursively) and fails when a failpoint
//! is added, renamed or removed there without its row here, or without its place in
//! `archiver::failpoint::POINTS`.
//!
//! The crash tests run `create --checkpoint-bytes 4M night data` (~60 MiB, several checkpoints,
//! some falling inside files) killed at every failpoint (checkpoint steps also at their second
//! hit), then the next write command (`recover`, another `create`, a `delete`; half the time
//! without the local cache), which must leave invariant 3 (see `util::crash`): committed archives
//! exact, `night.part` iff a checkpoint record was written, `night` iff its commit was decided,
//! complete files of `night.part` identical and the cut one a prefix, no records, no partial
//! uploads, no orphaned bytes. Then the backup completes and `night.part` is gone. Also: a crash
//! while recovery promotes a checkpoint, and a run without checkpoints, discarded whole.
//!
//! The crash tests need the binary built with `--features failpoints` (the test command does that).

mod util;

use archiver::failpoint::POINTS;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use util::crash::*;
use util::*;

/// What recovery must make of a crash at one failpoint.
struct Row {
    point: &'static str,
    /// The hits the every-step test kills at (empty: the failpoint has a test of its own).
    hits: &'static [u32],
    /// Whether `night.part` results from a crash at the 1st hit, and at the 2nd.
    part: [bool; 2],
    /// Whether `night` results (its commit was decided).
    whole: bool,
    /// Whether readers see `night` before any recovery (its manifest is written).
    listed: bool,
}

const fn row(point: &'static str, hits: &'static [u32], part: [bool; 2], whole: bool, listed: bool) -> Row {
    Row { point, hits, part, whole, listed }
}

const ONCE: &[u32] = &[1];
const TWICE: &[u32] = &[1, 2];

/// Every failpoint, in protocol order.
const TABLE: &[Row] = &[
    row("txn-begun", ONCE, [false, false], false, false),
    row("pack-stored", ONCE, [false, false], false, false),
    // Written every 16,384 stored blocks, after the checkpoints before it: see its own test.
    row("segment-indexed", &[], [true, true], false, false),
    // The k-th checkpoint dies before its record: the (k-1)-th one decides.
    row("checkpoint-flushed", TWICE, [false, true], false, false),
    row("checkpoint-indexed", TWICE, [false, true], false, false),
    row("checkpoint-part-stored", TWICE, [false, true], false, false),
    row("checkpoint-recorded", TWICE, [true, true], false, false),
    row("checkpoint-cache-committed", TWICE, [true, true], false, false),
    // The run checkpointed before it reached its commit.
    row("commit-flushed", ONCE, [true, true], false, false),
    row("commit-indexed", ONCE, [true, true], false, false),
    // Recovery rolls a stored commit record forward (it decides `commit` if nobody decided);
    // readers see night once its manifest is written.
    row("commit-recorded", ONCE, [false, false], true, false),
    row("commit-decided", ONCE, [false, false], true, false),
    row("commit-manifest-written", ONCE, [false, false], true, true),
    row("commit-cleaned", ONCE, [false, false], true, true),
    row("commit-done", ONCE, [false, false], true, true),
    // Killed while recovery commits a checkpoint: see its own test below.
    row("recover-promoting", &[], [true, true], false, false),
    // Killed while recovery discards a run that has no checkpoint, after deciding `abort`.
    row("abort-decided", &[], [false, false], false, false),
    // Not a step of a transaction: killed between two commits of a cache load, which the next
    // command's sync does again (tests/cache_faults.rs).
    row("cache-load-appending", &[], [false, false], false, false),
];

/// Every failpoint name `src/` reaches through `failpoint::hit("NAME")`, with where.
fn failpoints_in_src() -> BTreeMap<String, Vec<String>> {
    fn visit(dir: &Path, out: &mut BTreeMap<String, Vec<String>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                visit(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (name, line) in scan(&text, path.ends_with("failpoint.rs")) {
                    out.entry(name).or_default().push(format!("{}:{line}", path.display()));
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// The failpoints `text` (Rust source) reaches, with their line numbers: every
/// `failpoint::hit("NAME")` outside comments, the call possibly split over lines. Panics at a call
/// the scan cannot read, so that no failpoint escapes it: a name that is not a literal, or a
/// function named `hit` called otherwise (imported, renamed); `defines` allows `fn hit(`.
fn scan(text: &str, defines: bool) -> Vec<(String, usize)> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n");
    let line = |i: usize| code[..i].matches('\n').count() + 1;
    let mut found = Vec::new();
    for (i, _) in code.match_indices("hit(") {
        let before = &code[..i];
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.') {
            continue; // another function or a method
        }
        if defines && before.trim_end().ends_with("fn") {
            continue;
        }
        assert!(before.ends_with("failpoint::"), "line {}: `hit` not called as failpoint::hit", line(i));
        let name = code[i + "hit(".len()..]
            .trim_start()
            .strip_prefix('"')
            .and_then(|r| r.split_once('"'))
            .map(|(name, _)| name.to_string());
        let name = name.unwrap_or_else(|| panic!("line {}: a failpoint name that is not a literal", line(i)));
        found.push((name, line(i)));
    }
    found
}

#[test]
fn the_source_scan_reads_every_form_of_a_failpoint_call() {
    let text = r#"
fn f() {
    crate::failpoint::hit("a-b");
    // crate::failpoint::hit("commented")
    crate::failpoint::hit(
        "split",
    ); x.hit(1); cache_hit(2);
}"#;
    assert_eq!(scan(text, false), [("a-b".to_string(), 3), ("split".to_string(), 5)]);
    assert_eq!(scan("pub fn hit(name: &str) {}", true), []);
    for bad in ["use crate::failpoint::hit;\nhit(\"x\");", "fp::hit(\"x\");", "failpoint::hit(NAME);"] {
        assert!(std::panic::catch_unwind(|| scan(bad, false)).is_err(), "the scan misses {bad:?}");
    }
}

#[test]
fn the_table_names_every_failpoint_in_src_in_protocol_order() {
    let in_src = failpoints_in_src();
    let table: BTreeSet<&str> = TABLE.iter().map(|r| r.point).collect();
    let new: Vec<String> = (in_src.iter().filter(|(n, _)| !table.contains(n.as_str())))
        .map(|(n, at)| format!("{n} ({})", at.join(", ")))
        .collect();
    assert!(
        new.is_empty(),
        "failpoints in src without a row in TABLE (add what a crash there leaves): {new:?}"
    );
    let gone: Vec<&&str> = table.iter().filter(|n| !in_src.contains_key(**n)).collect();
    assert!(gone.is_empty(), "rows in TABLE for failpoints src no longer reaches: {gone:?}");
    let table_order: Vec<&str> = TABLE.iter().map(|r| r.point).collect();
    assert_eq!(
        POINTS,
        &table_order[..],
        "archiver::failpoint::POINTS and TABLE disagree (order is protocol order)"
    );
    for r in TABLE {
        assert!(r.hits.iter().all(|k| (1..=2).contains(k)), "{}: TABLE says hits 1 and 2 only", r.point);
        assert!(!(r.whole && (r.part[0] || r.part[1])), "{}: night and night.part both result", r.point);
        assert!(!r.listed || r.whole, "{}: listed before recovery, but not decided", r.point);
    }
    let untested: Vec<&str> = TABLE.iter().filter(|r| r.hits.is_empty()).map(|r| r.point).collect();
    assert_eq!(
        untested,
        ["segment-indexed", "recover-promoting", "abort-decided", "cache-load-appending"],
        "each failpoint without hits needs a test of its own"
    );
}

fn run_case(world: &Env, base: &BTreeMap<String, String>, i: usize, r: &Row, k: u32) {
    let when = format!("crash at {}:{k} (case {i})", r.point);
    let (part, whole) = (r.part[k as usize - 1], r.whole);
    let env = world.fork_fresh("case");
    let mut committed = base.clone();
    let out = env.run_at(&format!("{}:{k}", r.point), CREATE_4M);
    assert_eq!(out.code, KILLED, "{when}: the failpoint was not reached: {}", out.stderr);

    // The repository's records say what was decided, before anyone recovers.
    let recs = env.txn_records();
    assert!(recs.len() <= 1, "{when}: more than one pending transaction: {recs:?}");
    assert_eq!(decided(&env, "night"), (part, whole), "{when}: records say otherwise: {recs:?}");
    assert_readers_see_last_commit(&env, &committed, r.listed, &when);

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
    let (world, committed) = committed_world(checkpointed_tree);
    // The run must checkpoint at least twice, or the 2nd hits below test nothing.
    let probe = world.fork_fresh("probe");
    let mut args = CREATE_4M.to_vec();
    args.insert(1, "-v");
    let n = probe.ok(&args).stderr.matches("checkpoint stored").count();
    eprintln!("an uninterrupted run makes {n} checkpoints");
    assert!(n >= 2, "an uninterrupted run made only {n} checkpoints");
    probe.remove_fork();

    let mut cases = Vec::new();
    for r in TABLE {
        for &k in r.hits {
            cases.push((cases.len(), r, k));
        }
    }
    let hits: usize = TABLE.iter().map(|r| r.hits.len()).sum();
    assert_eq!(cases.len(), hits);
    assert!(cases.len() >= POINTS.len(), "fewer cases than failpoints");
    // Two at a time: the cases are independent forks and take no timing.
    std::thread::scope(|s| {
        for lane in 0..2 {
            let (world, committed, cases) = (&world, &committed, &cases);
            s.spawn(move || {
                for &(i, r, k) in cases.iter().filter(|c| c.0 % 2 == lane) {
                    run_case(world, committed, i, r, k);
                }
            });
        }
    });
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_crash_while_recovery_promotes_the_checkpoint_is_recovered_by_the_next_command() {
    let (world, base) = committed_world(checkpointed_tree);
    let r = TABLE.iter().find(|r| r.point == "recover-promoting").unwrap();
    for (i, next) in ["recover", "delete"].into_iter().enumerate() {
        let when = format!("crash in recovery, then {next}");
        let env = world.fork_fresh("promote");
        assert_eq!(env.run_at("checkpoint-cache-committed:2", CREATE_4M).code, KILLED, "{when}: create");
        let out = env.run_at(r.point, &["recover"]);
        assert_eq!(out.code, KILLED, "{when}: recovery was not killed: {}", out.stderr);
        let recs = env.txn_records();
        assert!(env.has_checkpoint_record(), "{when}: checkpoint record lost: {recs:?}");
        assert_eq!(decided(&env, "night"), (r.part[0], r.whole), "{when}: records say otherwise: {recs:?}");
        assert_readers_see_last_commit(&env, &base, r.listed, &when);
        if i == 1 {
            env.drop_cache();
        }
        let mut committed = base.clone();
        next_command(&env, i * 2, &mut committed, &when)
            .assert_stderr_contains("committed the last checkpoint");
        let e = Expect { committed: &committed, name: "night", src: "data", part: r.part[0], whole: r.whole };
        check_invariant(&env, &e, &when);
        // A second `recover` finds nothing left to do.
        env.ok(["recover"]).assert_stderr_contains("nothing to recover");
        env.remove_fork();
    }
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn without_checkpoints_a_crash_before_the_commit_discards_the_whole_run() {
    let (world, committed) = committed_world(checkpointed_tree);
    for point in ["commit-indexed", "pack-stored:2"] {
        let env = world.fork_fresh("nockpt");
        assert_eq!(env.run_at(point, &["create", "night", "data"]).code, KILLED, "{point}: not reached");
        assert_eq!(decided(&env, "night"), (false, false), "{point}: records say otherwise");
        env.ok(["recover"]).assert_stderr_contains("discarded");
        let e = Expect { committed: &committed, name: "night", src: "data", part: false, whole: false };
        check_invariant(&env, &e, &format!("no checkpoints, crash at {point}"));
        env.remove_fork();
    }
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_crash_while_recovery_discards_a_run_is_finished_by_the_next_command() {
    let (world, committed) = committed_world(checkpointed_tree);
    let r = TABLE.iter().find(|r| r.point == "abort-decided").unwrap();
    // The next command: `recover`, then a `create` without the cache (see `next_command`).
    for i in 0..2 {
        let when = format!("crash while discarding, then next command {i}");
        let env = world.fork_fresh("discard");
        assert_eq!(env.run_at("commit-indexed", &["create", "night", "data"]).code, KILLED, "{when}: create");
        let out = env.run_at(r.point, &["recover"]);
        assert_eq!(out.code, KILLED, "{when}: recovery was not killed: {}", out.stderr);
        // Decided `abort`, nothing deleted yet: the records stay, and the decision with them.
        let decisions: Vec<String> =
            env.repo_files().into_keys().filter(|k| k.starts_with("decided/")).collect();
        assert!(!env.txn_records().is_empty(), "{when}: the records went before the uploads");
        let aborted =
            decisions.iter().filter(|k| std::fs::read(env.repo.join(k)).unwrap() == b"abort\n").count();
        assert_eq!(aborted, 1, "{when}: no abort decision among {decisions:?}");
        assert_eq!(decided(&env, "night"), (r.part[0], r.whole), "{when}: records say otherwise");
        assert_readers_see_last_commit(&env, &committed, r.listed, &when);
        if i == 1 {
            env.drop_cache();
        }
        let mut committed = committed.clone();
        next_command(&env, i, &mut committed, &when).assert_stderr_contains("discarded an interrupted");
        let e = Expect { committed: &committed, name: "night", src: "data", part: false, whole: false };
        check_invariant(&env, &e, &when);
        env.remove_fork();
    }
}

/// A 33 MiB file, then 100,000 files of 128 random bytes, each its own block. With
/// `--checkpoint-bytes 32M` the run checkpoints once in the large file; the first pack after that
/// (16 MiB) holds more blocks than a transaction keeps before it writes an index segment of its
/// own (65,536), long before the next checkpoint could come.
fn many_blocks_tree(dir: &Path) {
    // Incompressible, so that packs fill as the sizes above say.
    let random = |seed: u64, len: usize| {
        let mut bytes = vec![0u8; len];
        blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut bytes);
        bytes
    };
    write(&dir.join("a-big.bin"), &random(u64::MAX, 33 * MIB as usize));
    for i in 0..100_000u64 {
        write(&dir.join(format!("b/d{:02}/f{i:05}", i / 1000)), &random(i, 128));
    }
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_transaction_indexes_its_blocks_as_it_goes_and_a_crash_after_such_a_segment_keeps_the_checkpoint() {
    let (world, committed) = committed_world(many_blocks_tree);
    let args = &["create", "--checkpoint-bytes", "32M", "night", "data"];
    let r = TABLE.iter().find(|r| r.point == "segment-indexed").unwrap();
    let when = "crash after a segment between checkpoints";
    let env = world.fork_fresh("segment");
    assert_eq!(env.run_at(r.point, args).code, KILLED, "{when}: the failpoint was not reached");
    let recs = env.txn_records();
    assert!(env.has_checkpoint_record(), "{when}: no checkpoint before the segment: {recs:?}");
    assert_eq!(decided(&env, "night"), (r.part[0], r.whole), "{when}: records say otherwise: {recs:?}");
    assert_readers_see_last_commit(&env, &committed, r.listed, when);
    let mut after = committed.clone();
    next_command(&env, 0, &mut after, when).assert_stderr_contains("committed the last checkpoint");
    let e = Expect { committed: &after, name: "night", src: "data", part: true, whole: false };
    eprintln!("{when}: night.part {:?}", check_invariant(&env, &e, when));
    env.remove_fork();

    // Uninterrupted and without checkpoints, the run writes such a segment before the commit's,
    // and everything restores exactly.
    let env = world.fork_fresh("segments");
    let segments = || env.repo_files().into_keys().filter(|k| k.starts_with("index/")).count();
    let before = segments();
    env.ok(["create", "night", "data"]);
    let new = segments() - before;
    assert!(new >= 2, "{new} index segments: none written before the commit's");
    let mut all = committed.clone();
    all.insert("night".into(), "data".into());
    let e = Expect { committed: &all, name: "night", src: "data", part: false, whole: false };
    check_invariant(&env, &e, "uninterrupted");
    env.ok(["fsck"]);
    env.remove_fork();
}
