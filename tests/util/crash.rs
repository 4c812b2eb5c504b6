//! Helpers for the crash, checkpoint and signal tests (`failpoints.rs`, `checkpoint*.rs`,
//! `signals.rs`, the HTTP kill tests): running the binary with a failpoint armed or under
//! signals, reading what a killed transaction left in the repository, and checking the state
//! every crash followed by the next write command must leave ("invariant 3"): committed archives
//! byte-identical; `NAME.part` present iff a checkpoint was recorded; `NAME` present iff its
//! commit was decided; complete files of `NAME.part` identical and the cut one a prefix; no
//! transaction records or partial uploads; and, once every archive is deleted (in a copy), no
//! pack or index segment left, i.e. no stored byte that nothing references. Also the worlds those
//! tests share: committed archives to protect, a tree a checkpointed run cuts in several places,
//! a run long enough to signal, and the next write command after a crash.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `Out::code` of a process killed by SIGKILL (what a failpoint does).
pub const KILLED: i32 = 128 + libc::SIGKILL;

impl Env {
    /// Runs the binary with `ARCHIVER_FAILPOINT` set to `point` (`NAME` or `NAME:K`).
    pub fn run_at(&self, point: &str, args: &[&str]) -> Out {
        out_of(self.command(args).env("ARCHIVER_FAILPOINT", point).output().expect("cannot run archiver"))
    }

    /// Starts the binary with stdout and stderr piped (read them with `wait_out`).
    pub fn spawn_piped(&self, args: &[&str]) -> Child {
        self.command(args)
            .env_remove("ARCHIVER_FAILPOINT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn archiver")
    }

    /// A copy of the repository and cache under a fresh tag (see `fork`).
    pub fn fork_fresh(&self, prefix: &str) -> Env {
        let dir = self.fresh_dir(prefix);
        self.fork(dir.file_name().expect("name").to_str().expect("utf-8"))
    }

    /// Removes a fork's repository and cache (never the shared working directory).
    pub fn remove_fork(self) {
        if super::s3::backend_of(&self).is_some() {
            super::s3::remove(&self);
            let _ = fs::remove_dir_all(&self.cache);
            return;
        }
        let dir = self.repo.parent().expect("parent").to_path_buf();
        if dir != self.root {
            fs::remove_dir_all(dir).expect("remove fork");
        }
    }

    /// Deletes the local cache (always allowed: it is rebuilt from the repository).
    pub fn drop_cache(&self) {
        if self.cache.exists() {
            fs::remove_dir_all(&self.cache).expect("remove cache");
        }
    }

    /// Transactions that left records under `txn/`: id → record kinds (`begin`, `checkpoint`
    /// for any numbered checkpoint record, `commit`, ...).
    pub fn txn_records(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for k in self.repo_files().into_keys() {
            if let Some(rest) = k.strip_prefix("txn/") {
                let (txn, what) = rest.split_once('/').unwrap_or((rest, ""));
                let what = what.split_once('-').map_or(what, |(kind, _)| kind);
                out.entry(txn.to_string()).or_default().insert(what.to_string());
            }
        }
        out
    }

    /// Bytes of the packs and index segments transaction `txn` stored that are still there.
    pub fn txn_bytes(&self, txn: &str) -> u64 {
        let (p, i) = (format!("packs/{txn}/"), format!("index/{txn}-"));
        self.repo_files().iter().filter(|(k, _)| k.starts_with(&p) || k.starts_with(&i)).map(|(_, n)| n).sum()
    }

    /// Whether a pending transaction has durably recorded a checkpoint.
    pub fn has_checkpoint_record(&self) -> bool {
        self.txn_records().values().any(|r| r.contains("checkpoint"))
    }
}

/// How long a test waits for a running create to reach a state it polls for.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A world for the checkpoint and failpoint tests: source trees `small`, `small2`, `small3` and
/// `data` (filled by `data_tree`), and two committed archives, `base` of `small` and `older` of
/// `small2`, so that one can be deleted while the other is checked. Returns the environment and
/// the committed archives (name → source).
pub fn committed_world(data_tree: impl FnOnce(&Path)) -> (Env, BTreeMap<String, String>) {
    committed_world_in(Env::new(), data_tree)
}

/// `committed_world` in `env`, a keyed, empty repository (an S3 one, say).
pub fn committed_world_in(env: Env, data_tree: impl FnOnce(&Path)) -> (Env, BTreeMap<String, String>) {
    small_tree(&env.path("small"), 1, 10, 100_000);
    small_tree(&env.path("small2"), 2, 8, 100_000);
    small_tree(&env.path("small3"), 3, 8, 100_000);
    data_tree(&env.path("data"));
    env.create("base", &["small"]);
    env.create("older", &["small2"]);
    let committed = [("base", "small"), ("older", "small2")].map(|(a, b)| (a.to_string(), b.to_string()));
    (env, committed.into_iter().collect())
}

/// `create --checkpoint-bytes 4M night data` over `checkpointed_tree`: several checkpoints.
pub const CREATE_4M: &[&str] = &["create", "--checkpoint-bytes", "4M", "night", "data"];

/// ~60 MiB to back up, walked in this order: 150 small files (~22 MiB; a checkpoint check after
/// each, and small blocks keep the pipeline short, so checkpoints come every few MiB), a 36 MiB
/// file (checked between its ~16 MiB batches: cut inside), a 2 MiB file, an empty file and a
/// symlink; every entry with its own nanosecond mtime.
pub fn checkpointed_tree(dir: &Path) {
    small_tree(&dir.join("a-small"), 10, 150, 300_000);
    write_data(&dir.join("big.bin"), 11, 36 * MIB);
    write_data(&dir.join("mid/one.bin"), 12, 2 * MIB);
    write(&dir.join("mid/empty"), b"");
    symlink("../big.bin", &dir.join("mid/link"));
    stamp_mtimes(dir, 15);
}

/// The next write command after a crash, chosen by `i`: `recover`, `create other small3` or
/// `delete base` (see `committed_world`). Each recovers first, then does its own work, which
/// `committed` follows. Recovery warns of nothing.
pub fn next_command(env: &Env, i: usize, committed: &mut BTreeMap<String, String>, when: &str) -> Out {
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
pub fn assert_readers_see_last_commit(
    env: &Env,
    committed: &BTreeMap<String, String>,
    night: bool,
    when: &str,
) {
    let mut want: Vec<String> = committed.keys().cloned().collect();
    if night {
        want.push("night".into());
        want.sort();
    }
    assert_eq!(env.list(), want, "{when}: readers before recovery");
}

/// A committed `base` of `small`, and `big/`: two 64 MiB files, long enough to signal a run in
/// the middle of a file.
pub fn big_world() -> (Env, BTreeMap<String, String>) {
    let env = Env::new();
    small_tree(&env.path("small"), 1, 10, 100_000);
    env.create("base", &["small"]);
    write_data(&env.path("big/a.bin"), 31, 64 * MIB);
    write_data(&env.path("big/b.bin"), 32, 64 * MIB);
    (env, [("base".to_string(), "small".to_string())].into())
}

/// Starts `create FLAGS night big` (see `big_world`) and returns once it has stored a pack.
pub fn start_create(env: &Env, flags: &[&str]) -> Child {
    let mut args = vec!["create"];
    args.extend_from_slice(flags);
    args.extend(["night", "big"]);
    let before = env.pack_folders();
    let mut child = env.spawn_piped(&args);
    wait_until(&mut child, LIMIT, "a stored pack", || has_new_pack(env, &before));
    child
}

/// The size of the source of stored path `stored` (relative to the working directory).
pub fn src_len(env: &Env, stored: &str) -> u64 {
    fs::metadata(env.path(stored)).expect("source file").len()
}

/// Waits for a child started by `spawn_piped` and collects its output.
pub fn wait_out(child: Child) -> Out {
    out_of(child.wait_with_output().expect("wait"))
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0, "kill({}, {sig})", child.id());
}

/// Polls `cond` until it holds; panics if the child exits first or `limit` passes.
pub fn wait_until(child: &mut Child, limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("archiver exited ({st}) before {what}");
        }
        assert!(Instant::now() < deadline, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a transaction other than those with pack folders in `before` has stored a pack (a
/// running create has uploaded data, so it is well past installing its signal handlers).
pub fn has_new_pack(env: &Env, before: &BTreeSet<String>) -> bool {
    env.repo_files()
        .keys()
        .filter_map(|k| k.strip_prefix("packs/")?.split_once('/'))
        .any(|(t, _)| !before.contains(t))
}

/// After a kill, what the repository's records decided for archive `name`: (`NAME.part` must
/// result, `NAME` must result). A commit is decided once its commit record is stored (its cleanup
/// removes the records only after the manifest is written); `NAME.part` results iff a checkpoint
/// record was stored and the commit was not decided.
pub fn decided(env: &Env, name: &str) -> (bool, bool) {
    let recs = env.txn_records();
    let whole = env.list().iter().any(|n| n == name) || recs.values().any(|r| r.contains("commit"));
    (!whole && recs.values().any(|r| r.contains("checkpoint")), whole)
}

/// What a crash followed by the next write command must leave.
pub struct Expect<'a> {
    /// Archives that must be there and restore exactly: name → source directory (relative to
    /// the working directory, stored as given).
    pub committed: &'a BTreeMap<String, String>,
    /// The interrupted archive and its source directory.
    pub name: &'a str,
    pub src: &'a str,
    /// Whether `NAME.part` must exist (a checkpoint record was durably written, no commit).
    pub part: bool,
    /// Whether `NAME` must exist (its commit was decided).
    pub whole: bool,
}

/// What `NAME.part` held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Part {
    /// Entries (directories, files, symlinks) and complete files.
    pub entries: usize,
    pub complete_files: usize,
    /// The file cut by the checkpoint, and how many of its bytes the part holds.
    pub cut: Option<(String, u64)>,
}

/// Checks invariant 3; returns what `NAME.part` held if it exists.
pub fn check_invariant(env: &Env, e: &Expect, when: &str) -> Option<Part> {
    assert_no_leftovers(env, when);
    let mut want: BTreeSet<String> = e.committed.keys().cloned().collect();
    let part_name = format!("{}.part", e.name);
    if e.part {
        want.insert(part_name.clone());
    }
    if e.whole {
        want.insert(e.name.to_string());
    }
    let list = env.list();
    assert_eq!(list.iter().cloned().collect::<BTreeSet<_>>(), want, "{when}: wrong archives listed");
    assert_eq!(list.len(), want.len(), "{when}: an archive is listed twice: {list:?}");
    let mut exact: Vec<(&str, &str)> = e.committed.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    if e.whole {
        exact.push((e.name, e.src));
    }
    for (name, src) in exact {
        assert_extracts_exactly(env, name, src, when);
    }
    let part = e.part.then(|| check_part(env, &part_name, e.src, when));
    assert_nothing_orphaned(env, when);
    part
}

/// `name` restores to exactly the tree `src`.
pub fn assert_extracts_exactly(env: &Env, name: &str, src: &str, when: &str) {
    let out = env.extract(name, &[]);
    if !out.join(src).exists() {
        let held: Vec<String> = entries_below(&out).into_iter().take(5).collect();
        panic!("{when}: {name} should restore {src}, but holds {held:?}...");
    }
    let (a, b) = (snapshot(&env.path(src)), snapshot(&out.join(src)));
    if a != b {
        assert_same_tree(&env.path(src), &out.join(src)); // names the differences
        panic!("{when}: {name} does not restore {src} exactly");
    }
    fs::remove_dir_all(out).expect("remove extracted tree");
}

/// No transaction records and no partial uploads in the repository.
pub fn assert_no_leftovers(env: &Env, when: &str) {
    let left: Vec<String> =
        env.repo_files().into_keys().filter(|k| k.starts_with("txn/") || k.starts_with("tmp/")).collect();
    assert!(left.is_empty(), "{when}: transaction records or partial uploads left: {left:?}");
}

/// In a copy of the repository, deletes every archive: then no pack and no index segment may be
/// left (delete reclaims only packs the index names, so an orphaned pack would stay).
pub fn assert_nothing_orphaned(env: &Env, when: &str) {
    let copy = env.fork_fresh("orphan-check");
    let all = copy.list();
    if !all.is_empty() {
        let mut args = vec!["delete".to_string()];
        args.extend(all);
        copy.ok(args);
    }
    assert!(copy.list().is_empty(), "{when}: archives left after deleting all");
    let objects = copy.objects();
    assert!(objects.is_empty(), "{when}: stored objects nothing references: {objects:?}");
    assert_no_leftovers(&copy, when);
    copy.remove_fork();
}

/// Checks `part` (an archive of `src` cut short by a checkpoint): its paths are a prefix of the
/// walk of `src`; at most one file, the last entry, is marked `[partial]` by `ls -v`, restores as
/// a prefix of its source and makes extract warn that it was cut short (exit 3); every other entry
/// restores exactly (content, mode, mtime).
pub fn check_part(env: &Env, part: &str, src: &str, when: &str) -> Part {
    let paths = env.ok(["ls", part]).lines();
    let full: Vec<String> = stored_paths(&env.path(src), src).iter().map(|p| escape(p)).collect();
    assert!(
        paths.len() <= full.len() && paths[..] == full[..paths.len()],
        "{when}: {part} is not a prefix of the walk of {src}: {paths:?}"
    );
    let long = env.ok(["ls", "-v", part]).lines();
    assert_eq!(long.len(), paths.len(), "{when}: ls and ls -v disagree");
    let cut: Vec<usize> = (0..long.len()).filter(|&i| long[i].ends_with(" [partial]")).collect();
    assert!(cut.len() <= 1, "{when}: more than one file of {part} is partial: {long:?}");
    if let Some(&i) = cut.first() {
        assert_eq!(i + 1, long.len(), "{when}: the partial file is not the last entry of {part}");
        assert!(long[i].starts_with('-'), "{when}: a partial entry that is not a file: {}", long[i]);
    }
    let out = env.extract_part(part); // exit 3 and a warning if a file is cut short
    let (want, got) = (snapshot(&env.path(src)), snapshot(&out.join(src)));
    assert_eq!(got.len(), paths.len(), "{when}: {part} restores other entries than it lists");
    let mut report = Part { entries: got.len(), ..Default::default() };
    let cut_path = cut.first().map(|_| paths.last().expect("entry").clone());
    for (rel, meta) in &got {
        let stored =
            if rel.as_os_str().is_empty() { src.to_string() } else { format!("{src}/{}", rel.display()) };
        let source =
            want.get(rel).unwrap_or_else(|| panic!("{when}: {part} restores {stored}, not in source"));
        if cut_path.as_deref() == Some(stored.as_str()) {
            let (a, b) = (
                fs::read(env.path(src).join(rel)).expect("read"),
                fs::read(out.join(src).join(rel)).expect("read"),
            );
            assert!(
                b.len() <= a.len() && a[..b.len()] == b[..],
                "{when}: cut file {stored} ({} bytes) is not a prefix of its source ({} bytes)",
                b.len(),
                a.len()
            );
            assert_eq!((meta.kind, meta.mode), (source.kind, source.mode), "{when}: cut file {stored}");
            report.cut = Some((stored, b.len() as u64));
        } else {
            assert_eq!(meta, source, "{when}: {stored} in {part} differs from its source");
            report.complete_files += usize::from(meta.kind == 'f');
        }
    }
    fs::remove_dir_all(out).expect("remove extracted tree");
    report
}
