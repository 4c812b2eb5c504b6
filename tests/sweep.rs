//! The corruption sweep (issue 12): for each kind of stored object and each kind of damage (bit
//! flip in the middle, truncation to half, deletion), `TABLE` states what a user sees and what
//! repairs it, and the test asserts exactly that on a copy of a prepared repository:
//!
//! - archives "one" (`t1/`, one pack holding all its data, metadata and root) and "two" (`t2/`,
//!   stored with checkpoints, so its first pack holds only file data); `t1/shared.bin` and
//!   `t2/shared.bin` are the same file, stored once (in one's pack);
//! - for the record kinds, a transaction left by a `kill -9` (failpoints): `create three t3`
//!   killed right after its commit was decided (commit record stored, manifest not yet written)
//!   or after its manifest was written (cleanup pending); `create --checkpoint-bytes 1M night t3`
//!   killed after its second checkpoint record, or after its first (its only one).
//!
//! Each row then runs what a user would: `list` (readers repair nothing), `fsck`, the command the
//! messages name if any (`fsck --rebuild-config`, `recover --discard-damaged`), `fsck
//! --verify-data`, `create heal1 t1` and `create heal2 t2` of the unchanged trees (the heal),
//! `fsck --verify-data` again, `extract` of each archive reported unrecoverable (one line, exit 1)
//! and `delete` of it, `fsck --prune`, and a last `fsck --verify-data`, which must be clean.
//! Every archive left must restore exactly (`night.part`: a prefix of `t3/`, `util::crash`).
//! The table is also in docs/FORMAT.md ("What damage does"). `SWEEP_ROW=N` runs row N alone.

mod util;

use std::fs;
use std::time::Instant;
use util::crash::*;
use util::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Object {
    /// Archive one's only pack: all its data, its metadata and its root (and `shared.bin`, which
    /// two uses too).
    OnesPack,
    /// Archive two's first pack: file data only.
    DataPack,
    /// Archive one's index segment.
    Segment,
    Manifest,
    /// The commit record of `create three`, killed once the commit was decided.
    DecidedCommit,
    /// The commit record of `create three`, killed once its manifest was written.
    VisibleCommit,
    /// The newer of the two checkpoint records of the killed `create night`.
    NewestCheckpoint,
    /// The only checkpoint record of the killed `create night`.
    OnlyCheckpoint,
    Config,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    Flip,
    Truncate,
    Delete,
}

/// A command's exit code and what its output (stdout and stderr) must say; `{obj}` stands for
/// the damaged object's name (a pack or index segment, or the transaction of a record).
struct Expect(i32, &'static [&'static str]);

const CLEAN: Expect = Expect(0, &[]);

struct Row {
    object: Object,
    damage: Damage,
    /// The outcome in words.
    outcome: &'static str,
    /// `list` right after the damage.
    list: Expect,
    /// The first `fsck` (recovery runs first).
    fsck: Expect,
    /// The command the messages named, run next, and what it must do.
    repair: Option<(&'static [&'static str], Expect)>,
    /// `fsck --verify-data`, before the heal.
    verify: Expect,
    /// `fsck --verify-data` after `create heal1 t1` and `create heal2 t2`.
    healed: Expect,
    /// Archives reported unrecoverable: extract fails in one line, exit 1 (then deleted).
    lost: &'static [&'static str],
    /// Archives that restore exactly at the end, besides heal1 and heal2.
    restore: &'static [&'static str],
}

use Damage::*;
use Object::*;

const ONE_TWO: &[&str] = &["one", "two"];

#[rustfmt::skip]
const TABLE: [Row; 27] = [
    // Packs: named by fsck (a flip only by --verify-data, which reads the data); the next create
    // stores the damaged blocks again; --prune drops the damaged copies. Archive one's root was
    // only in its pack: truncated or deleted, one is unrecoverable (named), two is healed.
    Row { object: OnesPack, damage: Flip, outcome: "named by fsck --verify-data (one: a file in t1/own/); healed by the next create; all restore",
        list: CLEAN, fsck: CLEAN, repair: None,
        verify: Expect(1, &["in pack {obj} fails authentication", "archive \"one\": t1/own/f"]),
        healed: Expect(0, &["archive \"one\": repaired"]), lost: &[], restore: ONE_TWO },
    Row { object: OnesPack, damage: Truncate, outcome: "named by fsck; two (shared.bin) healed by the next create; one reported unrecoverable",
        list: CLEAN, fsck: Expect(1, &["pack {obj} is truncated", "archive \"one\" cannot be read", "archive \"two\": t2/shared.bin"]), repair: None,
        verify: Expect(1, &["pack {obj} is truncated"]),
        healed: Expect(1, &["archive \"two\": repaired", "archive \"one\" cannot be read"]), lost: &["one"], restore: &["two"] },
    Row { object: OnesPack, damage: Delete, outcome: "named by fsck; two (shared.bin) healed by the next create; one reported unrecoverable",
        list: CLEAN, fsck: Expect(1, &["pack {obj} is missing", "archive \"one\" cannot be read", "archive \"two\": t2/shared.bin"]), repair: None,
        verify: Expect(1, &["pack {obj} is missing"]),
        healed: Expect(1, &["archive \"two\": repaired", "archive \"one\" cannot be read"]), lost: &["one"], restore: &["two"] },
    Row { object: DataPack, damage: Flip, outcome: "named by fsck --verify-data (two: t2/own2.bin); healed by the next create; all restore",
        list: CLEAN, fsck: CLEAN, repair: None,
        verify: Expect(1, &["in pack {obj} fails authentication", "archive \"two\": t2/own2.bin"]),
        healed: Expect(0, &["archive \"two\": repaired"]), lost: &[], restore: ONE_TWO },
    Row { object: DataPack, damage: Truncate, outcome: "named by fsck (two: t2/own2.bin); healed by the next create; --prune drops it; all restore",
        list: CLEAN, fsck: Expect(1, &["pack {obj} is truncated", "archive \"two\": t2/own2.bin"]), repair: None,
        verify: Expect(1, &["pack {obj} is truncated", "archive \"two\": t2/own2.bin"]),
        healed: Expect(1, &["archive \"two\": repaired", "pack {obj} is truncated"]), lost: &[], restore: ONE_TWO },
    Row { object: DataPack, damage: Delete, outcome: "named by fsck (two: t2/own2.bin); healed by the next create; --prune drops it; all restore",
        list: CLEAN, fsck: Expect(1, &["pack {obj} is missing", "archive \"two\": t2/own2.bin"]), repair: None,
        verify: Expect(1, &["pack {obj} is missing", "archive \"two\": t2/own2.bin"]),
        healed: Expect(1, &["archive \"two\": repaired", "pack {obj} is missing"]), lost: &[], restore: ONE_TWO },
    // Index segments: fsck rebuilds the index from the packs' sealed headers and names the
    // segment (a warning: nothing is lost, exit 0).
    Row { object: Segment, damage: Flip, outcome: "named by fsck, which rebuilds the index from the packs; all restore",
        list: CLEAN, fsck: Expect(0, &["index segment {obj} is damaged", "rebuilding the index from the packs", "rebuilt from the packs' headers"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    Row { object: Segment, damage: Truncate, outcome: "named by fsck, which rebuilds the index from the packs; all restore",
        list: CLEAN, fsck: Expect(0, &["index segment {obj} is damaged", "rebuilding the index from the packs", "rebuilt from the packs' headers"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    Row { object: Segment, damage: Delete, outcome: "named by fsck, which rebuilds the index from the packs; all restore",
        list: CLEAN, fsck: Expect(0, &["index segment {obj} cannot be read", "rebuilding the index from the packs", "rebuilt from the packs' headers"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    // The manifest: readers refuse in one line naming the way out; fsck lists every archive
    // again from its root in the packs.
    Row { object: Manifest, damage: Flip, outcome: "readers refuse (one line); fsck rebuilds it from the packs, listing one and two again; all restore",
        list: Expect(1, &["manifest of generation 2 is damaged", "`archiver fsck` with a key that may write rebuilds it"]),
        fsck: Expect(1, &["listed archive one again", "listed archive two again", "rebuilt it from the packs' headers"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    Row { object: Manifest, damage: Truncate, outcome: "readers refuse (one line); fsck rebuilds it from the packs, listing one and two again; all restore",
        list: Expect(1, &["manifest of generation 2 is damaged", "`archiver fsck` with a key that may write rebuilds it"]),
        fsck: Expect(1, &["listed archive one again", "listed archive two again", "rebuilt it from the packs' headers"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    Row { object: Manifest, damage: Delete, outcome: "readers refuse (one line: the manifest was lost); fsck lists one and two again from the packs; all restore",
        list: Expect(1, &["has no manifest", "its manifest was lost", "`archiver fsck`"]),
        fsck: Expect(1, &["listed archive one again", "listed archive two again", "its manifest was lost"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    // A commit record exists only between a commit's decision and the end of its cleanup; only
    // recovery reads it. Unreadable, it is not obeyed and nothing the transaction stored is
    // deleted; lost after the manifest was written, the commit is finished all the same.
    Row { object: DecidedCommit, damage: Flip, outcome: "recovery names it and keeps what the commit stored; fsck lists three again from its root; all restore",
        list: CLEAN, fsck: Expect(1, &["commit record of an interrupted `create three` (transaction {obj}) cannot be read", "listed archive three again"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "three"] },
    Row { object: DecidedCommit, damage: Truncate, outcome: "recovery names it and keeps what the commit stored; fsck lists three again from its root; all restore",
        list: CLEAN, fsck: Expect(1, &["commit record of an interrupted `create three` (transaction {obj}) cannot be read", "listed archive three again"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "three"] },
    // Deleted after the decision (`decided/<txn>` says commit): nothing to carry out, nothing
    // may be discarded (before decisions existed, recovery discarded three).
    Row { object: DecidedCommit, damage: Delete, outcome: "the decision stands: recovery names it and keeps what the commit stored; fsck lists three again from its root; all restore",
        list: CLEAN, fsck: Expect(1, &["commit record of an interrupted `create three` (transaction {obj}) cannot be read", "listed archive three again"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "three"] },
    Row { object: VisibleCommit, damage: Flip, outcome: "recovery finishes the visible commit keeping what it stored; all restore",
        list: CLEAN, fsck: Expect(0, &["finished the commit of an interrupted `create three`"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "three"] },
    Row { object: VisibleCommit, damage: Truncate, outcome: "recovery finishes the visible commit keeping what it stored; all restore",
        list: CLEAN, fsck: Expect(0, &["finished the commit of an interrupted `create three`"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "three"] },
    Row { object: VisibleCommit, damage: Delete, outcome: "recovery finishes the visible commit (by its decision, keeping what it stored); all restore",
        list: CLEAN, fsck: Expect(0, &["finished the commit of an interrupted `create three`"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "three"] },
    // Checkpoint records: recovery falls back to the previous checkpoint, naming the damaged
    // one; with none readable the transaction is left alone, named by fsck, until `recover
    // --discard-damaged` (a checkpoint that does not open may be another key's).
    Row { object: NewestCheckpoint, damage: Flip, outcome: "recovery commits the previous checkpoint as night.part, naming the damaged record; all restore",
        list: Expect(0, &["an interrupted `create night` is pending"]),
        fsck: Expect(0, &["committed an earlier checkpoint of an interrupted `create night` (transaction {obj})", "newest checkpoint record (1) cannot be read"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "night.part"] },
    Row { object: NewestCheckpoint, damage: Truncate, outcome: "recovery commits the previous checkpoint as night.part, naming the damaged record; all restore",
        list: Expect(0, &["an interrupted `create night` is pending"]),
        fsck: Expect(0, &["committed an earlier checkpoint of an interrupted `create night` (transaction {obj})", "newest checkpoint record (1) cannot be read"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "night.part"] },
    Row { object: NewestCheckpoint, damage: Delete, outcome: "the previous checkpoint is the newest: committed as night.part; all restore",
        list: Expect(0, &["an interrupted `create night` is pending"]),
        fsck: Expect(0, &["committed the last checkpoint of an interrupted `create night` as \"night.part\""]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: &["one", "two", "night.part"] },
    Row { object: OnlyCheckpoint, damage: Flip, outcome: "the transaction is left pending, named by fsck (exit 1) until `recover --discard-damaged`; one and two restore",
        list: CLEAN, fsck: Expect(1, &["transaction {obj} is left pending", "recover --discard-damaged"]),
        repair: Some((&["recover", "--discard-damaged"], Expect(0, &["discarded transaction {obj}"]))),
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    Row { object: OnlyCheckpoint, damage: Truncate, outcome: "the transaction is left pending, named by fsck (exit 1) until `recover --discard-damaged`; one and two restore",
        list: CLEAN, fsck: Expect(1, &["transaction {obj} is left pending", "recover --discard-damaged"]),
        repair: Some((&["recover", "--discard-damaged"], Expect(0, &["discarded transaction {obj}"]))),
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    Row { object: OnlyCheckpoint, damage: Delete, outcome: "no checkpoint left: recovery discards the run, naming it; one and two restore",
        list: CLEAN, fsck: Expect(0, &["discarded an interrupted `create night`"]), repair: None,
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    // The config: every command refuses in one line naming the rebuild; `fsck --rebuild-config`
    // with the full key file writes it again (tests/config_recovery.rs has the rest).
    Row { object: Config, damage: Flip, outcome: "every command refuses (one line) until `fsck --rebuild-config`; then all restore",
        list: Expect(1, &["damaged config file", "archiver fsck --rebuild-config"]), fsck: Expect(1, &["damaged config file", "archiver fsck --rebuild-config"]),
        repair: Some((&["fsck", "--rebuild-config"], Expect(0, &["wrote a new config", "kept the damaged config"]))),
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    Row { object: Config, damage: Truncate, outcome: "every command refuses (one line) until `fsck --rebuild-config`; then all restore",
        list: Expect(1, &["damaged config file", "archiver fsck --rebuild-config"]), fsck: Expect(1, &["damaged config file", "archiver fsck --rebuild-config"]),
        repair: Some((&["fsck", "--rebuild-config"], Expect(0, &["wrote a new config", "kept the damaged config"]))),
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
    Row { object: Config, damage: Delete, outcome: "every command refuses (one line) until `fsck --rebuild-config`; then all restore",
        list: Expect(1, &["has no config file", "archiver fsck --rebuild-config"]), fsck: Expect(1, &["has no config file", "archiver fsck --rebuild-config"]),
        repair: Some((&["fsck", "--rebuild-config"], Expect(0, &["wrote a new config", "the config was missing"]))),
        verify: CLEAN, healed: CLEAN, lost: &[], restore: ONE_TWO },
];

/// The prepared repositories (each an `Env` whose copies the rows damage) and object names.
struct Prepared {
    base: Env,
    /// The transactions that stored archives one and two.
    one: String,
    two: String,
    decided: Env,
    visible: Env,
    two_checkpoints: Env,
    one_checkpoint: Env,
}

/// The transaction a command run in `env` left or made: the pack folder it added.
fn new_txn(env: &Env, before: &std::collections::BTreeSet<String>, what: &str) -> String {
    let new: Vec<String> = env.pack_folders().difference(before).cloned().collect();
    assert_eq!(new.len(), 1, "{what} should make one pack folder, made {new:?}");
    new[0].clone()
}

fn prepare() -> Prepared {
    let base = Env::new();
    // t1/own/ is stored first in one's pack and is most of it, in blocks of 200 kB (files below
    // the chunker's minimum are one block each). Blocks enter a pack as they are sealed, so the
    // root, sealed last, can overtake at most the one block still being sealed: the middle of
    // the pack (a flip) is in t1/own/, and all after it (lost to a truncation) holds shared.bin,
    // the metadata and the root.
    for i in 0..20 {
        write_data(&base.path(format!("t1/own/f{i:02}")), 1100 + i, 200_000);
    }
    write_data(&base.path("t1/shared.bin"), 99, MIB / 2);
    small_tree(&base.path("t1/small"), 12, 6, 40_000);
    write_data(&base.path("t2/own2.bin"), 21, 2 * MIB);
    write_data(&base.path("t2/shared.bin"), 99, MIB / 2);
    small_tree(&base.path("t2/small"), 22, 6, 40_000);
    // Files of at most 1.5 MiB (so chunks too), 6 MiB in all: with checkpoints every 1 MiB, at
    // least two are recorded before the end, whatever the chunk boundaries.
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        write_data(&base.path(format!("t3/{name}.bin")), 31 + i as u64, 3 * MIB / 2);
    }
    let before = base.pack_folders();
    base.create("one", &["t1"]);
    let one = new_txn(&base, &before, "create one");
    let before = base.pack_folders();
    base.ok(["create", "--checkpoint-bytes", "1M", "two", "t2"]);
    let two = new_txn(&base, &before, "create two");
    assert_eq!(base.repo_files().keys().filter(|k| k.starts_with(&format!("packs/{one}/"))).count(), 1);
    let killed = |tag: &str, point: &str, args: &[&str]| {
        let env = base.fork(tag);
        assert_eq!(env.run_at(point, args).code, KILLED, "{tag}: not killed at {point}");
        env
    };
    let three = ["create", "three", "t3"];
    let night = ["create", "--checkpoint-bytes", "1M", "night", "t3"];
    Prepared {
        decided: killed("decided", "commit-decided", &three),
        visible: killed("visible", "commit-manifest-written", &three),
        two_checkpoints: killed("ck2", "checkpoint-recorded:2", &night),
        one_checkpoint: killed("ck1", "checkpoint-recorded:1", &night),
        base,
        one,
        two,
    }
}

/// The prepared repository a row damages, the object (relative to the repository) and its name.
fn target(p: &Prepared, object: Object) -> (&Env, String, String) {
    let txn = |env: &Env| env.txn_records().into_keys().next().expect("a pending transaction");
    match object {
        OnesPack => (&p.base, format!("packs/{}/00000000", p.one), format!("{}/00000000", p.one)),
        DataPack => (&p.base, format!("packs/{}/00000000", p.two), format!("{}/00000000", p.two)),
        Segment => (&p.base, format!("index/{}-000000", p.one), format!("{}-000000", p.one)),
        Manifest => (&p.base, "manifest/0000000000000002".into(), "generation 2".into()),
        DecidedCommit | VisibleCommit => {
            let env = if object == DecidedCommit { &p.decided } else { &p.visible };
            let t = txn(env);
            (env, format!("txn/{t}/commit"), t)
        }
        NewestCheckpoint => {
            let t = txn(&p.two_checkpoints);
            (&p.two_checkpoints, format!("txn/{t}/checkpoint-00000001"), t)
        }
        OnlyCheckpoint => {
            let t = txn(&p.one_checkpoint);
            (&p.one_checkpoint, format!("txn/{t}/checkpoint-00000000"), t)
        }
        Config => (&p.base, "config".into(), "config".into()),
    }
}

fn damage(path: &std::path::Path, how: Damage) {
    let len = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len();
    match how {
        Flip => flip_bit(path, len / 2),
        Truncate => truncate(path, len / 2),
        Delete => fs::remove_file(path).unwrap(),
    }
}

/// Runs `args` and checks it against `want` (`{obj}` replaced by `obj`): exit code, no panic,
/// every stderr line an `archiver: ` message, one line when a reader refuses.
fn check(env: &Env, args: &[&str], want: &Expect, obj: &str, when: &str) -> Out {
    let out = env.run(args);
    out.assert_no_panic();
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, want.0, "{when}: `{args:?}` exit code\n{all}");
    for l in out.stderr.lines() {
        assert!(l.starts_with("archiver: "), "{when}: `{args:?}`: stderr line without the prefix: {l}");
    }
    if want.0 == 1 && !args.contains(&"fsck") {
        out.assert_one_line_error(1);
    }
    for s in want.1 {
        let s = s.replace("{obj}", obj);
        assert!(all.contains(&s), "{when}: `{args:?}` should say {s:?}:\n{all}");
    }
    out
}

/// Where each archive's tree came from.
fn source(name: &str) -> &'static str {
    match name {
        "one" | "heal1" => "t1",
        "two" | "heal2" => "t2",
        _ => "t3",
    }
}

fn run_row(p: &Prepared, row: &Row, i: usize) {
    let (from, rel, obj) = target(p, row.object);
    let when = format!("row {i} ({:?}, {:?}: {})", row.object, row.damage, row.outcome);
    let env = from.fork(&format!("row{i}"));
    damage(&env.repo.join(&rel), row.damage);
    check(&env, &["list"], &row.list, &obj, &when);
    check(&env, &["fsck"], &row.fsck, &obj, &when);
    if let Some((args, want)) = &row.repair {
        check(&env, args, want, &obj, &when);
    }
    check(&env, &["fsck", "--verify-data"], &row.verify, &obj, &when);
    env.create("heal1", &["t1"]);
    env.create("heal2", &["t2"]);
    check(&env, &["fsck", "--verify-data"], &row.healed, &obj, &when);
    for name in row.lost {
        let dir = env.fresh_dir("out");
        let out = env.run(["extract", name, "-C", dir.to_str().unwrap()]);
        out.assert_one_line_error(1).assert_stderr_contains(&format!("archive \"{name}\""));
        env.ok(["delete", name]);
    }
    env.run(["fsck", "--prune"]).assert_no_panic();
    check(&env, &["fsck", "--verify-data"], &Expect(0, &["all intact"]), &obj, &when);
    let mut want: Vec<String> =
        row.restore.iter().chain(&["heal1", "heal2"]).map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(env.list(), want, "{when}: archives at the end");
    for name in &want {
        match name.as_str() {
            "night.part" => {
                check_part(&env, name, "t3", &when);
            }
            _ => assert_extracts_exactly(&env, name, source(name), &when),
        }
    }
    env.remove_fork();
}

#[test]
fn every_object_and_damage_gives_the_outcome_the_table_states() {
    let start = Instant::now();
    let p = prepare();
    eprintln!("prepared in {:?}", start.elapsed());
    let only: Option<usize> = std::env::var("SWEEP_ROW").ok().and_then(|v| v.parse().ok());
    for (i, row) in TABLE.iter().enumerate().filter(|(i, _)| only.is_none_or(|o| o == *i)) {
        let t = Instant::now();
        run_row(&p, row, i);
        eprintln!("row {i:2} {:?} {:?}: {} ({:?})", row.object, row.damage, row.outcome, t.elapsed());
    }
    // The table covers every kind of object with every kind of damage, once.
    for object in [
        OnesPack,
        DataPack,
        Segment,
        Manifest,
        DecidedCommit,
        VisibleCommit,
        NewestCheckpoint,
        OnlyCheckpoint,
        Config,
    ] {
        for damage in [Flip, Truncate, Delete] {
            let n = TABLE.iter().filter(|r| r.object == object && r.damage == damage).count();
            assert_eq!(n, 1, "{object:?} {damage:?} has {n} rows");
        }
    }
    eprintln!("the sweep took {:?}", start.elapsed());
}
