//! A stolen write key can only add (issue 11, findings 1 to 3; docs/SECURITY.md). Each test is
//! an attack through a real `archiver serve` on 127.0.0.1 with a write-only key file, sent
//! through the library's HTTP client (which signs as the key allows, and skips the binary's own
//! checks), followed by the victim's ordinary commands with the full key file:
//!
//! - aborting, overwriting, re-beginning or committing over transactions committed long ago
//!   changes no stored byte, and every archive still restores byte-identical;
//! - a committed manifest of garbage hides nothing for good: `generations` lists it as damaged,
//!   `fsck` names the generation to roll back to, and `rollback` brings every archive back;
//! - a client killed after a checkpoint keeps it: another writer can neither discard it nor
//!   commit over it dropping its data, and the victim's recovery commits it as `NAME.part`;
//! - a garbage checkpoint planted in a transaction of the attacker's blocks no writer: it is
//!   reported and left, and `recover --discard-damaged` with the delete key removes it;
//! - a well-formed checkpoint planted under the name of an existing archive never replaces it.

mod util;

use archiver::index::Segment;
use archiver::keyfile::KeyFile;
use archiver::manifest::{ArchiveRef, Checkpoint, Listed};
use archiver::repo::{CommitRequest, Repository};
use std::sync::Arc;
use util::crash::KILLED;
use util::server::Server;
use util::*;

/// A victim with two archives on a server, and the keys of a write-only key file made from its key.
struct World {
    server: Server,
    env: Env,
    thief: KeyFile,
}

fn world() -> World {
    let store = Env::bare().path("store");
    let server = Server::start(&store);
    let env = server.client(&Env::bare(), "r");
    env.ok(["keygen"]);
    small_tree(&env.path("data"), 3, 30, 100_000);
    small_tree(&env.path("other"), 4, 10, 50_000);
    env.create("important", &["data"]);
    env.create("other", &["other"]);
    env.ok(["keymgmt", "--outkeyfile", "w.key", "-w"]);
    let thief = archiver::keyfile::read(&env.path("w.key")).unwrap();
    World { server, env, thief }
}

impl World {
    /// The thief's client (a new one each call: no transaction secrets of earlier calls).
    fn thief(&self) -> Arc<dyn Repository> {
        self.server.repo("r", &self.thief)
    }

    fn repo_dir(&self) -> std::path::PathBuf {
        self.server.store.join("r")
    }

    /// Both archives restore byte-identical, and fsck finds nothing wrong.
    fn intact(&self, when: &str) {
        for (name, src) in [("important", "data"), ("other", "other")] {
            let out = self.env.extract(name, &[]);
            assert_same_tree(&self.env.path(src), &out.join(src));
        }
        let fsck = self.env.run(["fsck"]);
        assert_eq!(fsck.code, 0, "{when}: fsck: {}{}", fsck.stdout, fsck.stderr);
    }
}

fn random_txn() -> String {
    archiver::session::random_id().unwrap()
}

#[test]
fn a_write_key_cannot_abort_overwrite_or_reuse_committed_transactions() {
    let w = world();
    let before = hashed_files(&w.repo_dir());
    let r = w.thief();
    let _lock = r.lock("thief").unwrap();
    let packs = r.list_packs().unwrap();
    let txns: std::collections::BTreeSet<&str> = packs.iter().filter_map(|p| p.split('/').next()).collect();
    assert!(txns.len() >= 2, "expected a transaction per archive: {packs:?}");
    let (head, _) = r.head().unwrap();
    for t in &txns {
        let _ = r.abort(t);
        assert!(
            r.put_pack(t, 0, b"garbage".to_vec().into()).is_err(),
            "a committed pack of {t} was overwritten"
        );
        assert!(r.put_index(t, 0, b"garbage").is_err(), "a committed segment of {t} was overwritten");
        assert!(r.checkpoint(t, 0, b"garbage").is_err(), "a checkpoint went into ended transaction {t}");
        let empty = CommitRequest { gen: head + 1, manifest: b"garbage".to_vec(), ..Default::default() };
        assert!(r.commit(t, &empty).is_err(), "a commit of ended transaction {t} was accepted");
        assert!(r.begin(t, b"again").is_err(), "committed transaction {t} was begun again");
        let _ = r.abort(t);
    }
    drop(_lock);
    assert_eq!(hashed_files(&w.repo_dir()), before, "the write key changed committed data");
    w.intact("after the attacks on committed transactions");
}

#[test]
fn a_garbage_manifest_from_a_write_key_hides_nothing_for_good() {
    let w = world();
    let r = w.thief();
    let lock = r.lock("thief").unwrap();
    let (head, _) = r.head().unwrap();
    let t = random_txn();
    r.begin(&t, b"intent").unwrap();
    let garbage = CommitRequest { gen: head + 1, manifest: vec![0x55; 200], ..Default::default() };
    r.commit(&t, &garbage).expect("a write key may commit its own transaction");
    drop(lock);

    let env = &w.env;
    env.run(["list"]).assert_one_line_error(1).assert_stderr_contains("archiver rollback GEN");
    let gens = env.ok(["generations"]);
    assert!(gens.stdout.contains(&format!("generation {} (current): DAMAGED", head + 1)), "{}", gens.stdout);
    assert!(gens.stdout.contains(&format!("generation {head}: 2 archive(s)")), "{}", gens.stdout);
    let fsck = env.run(["fsck"]);
    assert_eq!(fsck.code, 1, "fsck must report the damaged manifest: {}{}", fsck.stdout, fsck.stderr);
    let said = format!("{}{}", fsck.stdout, fsck.stderr);
    assert!(said.contains(&format!("archiver rollback {head}")), "fsck names no remedy: {said}");
    env.ok(["rollback", &head.to_string()]);
    assert_eq!(env.list(), ["important", "other"]);
    w.intact("after rolling back the garbage manifest");
}

/// Kills a create run with checkpoints right after its first checkpoint is recorded.
fn killed_after_a_checkpoint(env: &Env) {
    write_data(&env.path("big/a"), 7, 3 * MIB);
    write_data(&env.path("big/b"), 8, 3 * MIB);
    let out =
        env.run_at("checkpoint-cache-committed:1", &["create", "--checkpoint-bytes", "1M", "night", "big"]);
    assert_eq!(out.code, KILLED, "the failpoint was not reached: {}", out.stderr);
}

#[test]
fn a_write_key_can_neither_discard_nor_empty_a_dead_clients_checkpoint() {
    let w = world();
    killed_after_a_checkpoint(&w.env);
    let r = w.thief();
    let lock = r.lock("thief").unwrap(); // waits for the dead client's lease
    let pending = r.pending().unwrap();
    let p = pending.iter().find(|p| p.checkpoint.is_some()).expect("the dead client's checkpoint");
    let t = p.txn.clone();
    let stored =
        |r: &Arc<dyn Repository>| r.list_packs().unwrap().into_iter().filter(|n| n.starts_with(&t)).count();
    let packs = stored(&r);
    assert!(packs > 0);
    let (head, _) = r.head().unwrap();
    let empty = CommitRequest { gen: head + 1, manifest: vec![1; 64], ..Default::default() };
    assert!(r.commit(&t, &empty).is_err(), "a write key committed over a checkpoint, dropping its data");
    assert!(r.abort(&t).is_err(), "a write key discarded a checkpoint");
    assert!(
        r.put_pack(&t, 0x7000_0000, b"more".to_vec().into()).is_err(),
        "a write key stored into another's transaction"
    );
    assert!(
        r.checkpoint(&t, 9, b"planted").is_err(),
        "a write key added a checkpoint to another's transaction"
    );
    assert_eq!(stored(&r), packs, "the checkpoint's packs changed");
    assert_eq!(r.head().unwrap().0, head, "a generation was committed");
    drop(lock);

    w.env.ok(["recover"]).assert_stderr_contains("as \"night.part\"");
    let out = w.env.extract_part("night.part");
    assert!(out.join("big").exists(), "night.part restores nothing");
    w.intact("after the victim recovered its checkpoint");
}

#[test]
fn a_planted_garbage_checkpoint_blocks_no_writer() {
    let w = world();
    let r = w.thief();
    let lock = r.lock("thief").unwrap();
    let t = random_txn();
    r.begin(&t, b"intent").unwrap();
    r.checkpoint(&t, 0, b"garbage that no key opens").unwrap();
    drop(lock);

    let env = &w.env;
    env.create("after", &["other"]).assert_stderr_contains("cannot be read");
    env.ok(["recover"]);
    env.ok(["delete", "after"]);
    let fsck = env.run(["fsck"]);
    assert_eq!(fsck.code, 1, "fsck must report the pending transaction: {}", fsck.stdout);
    env.ok(["keymgmt", "--outkeyfile", "rw.key", "-r", "-w"]);
    env.command(["recover", "--discard-damaged"])
        .env("ARCHIVER_KEYFILE", env.path("rw.key"))
        .output()
        .map(|o| {
            assert_eq!(o.status.code(), Some(1), "discarding needs the delete key");
        })
        .unwrap();
    env.ok(["recover", "--discard-damaged"]).assert_stderr_contains("discarded transaction");
    assert!(!w.repo_dir().join("txn").join(&t).exists(), "the planted transaction is still there");
    w.intact("after discarding the planted checkpoint");
}

#[test]
fn a_planted_checkpoint_never_replaces_an_archive() {
    let w = world();
    let r = w.thief();
    let lock = r.lock("thief").unwrap();
    // The write key cannot open the other archive's reference (format 2): it takes an archive
    // root's id from the index segments, which writers read.
    let (root, root_len) = r
        .list_indexes()
        .unwrap()
        .iter()
        .flat_map(|n| Segment::open(&w.thief.keys, n, &r.get_index(n).unwrap()).unwrap().packs)
        .flat_map(|(_, entries)| entries)
        .find(|e| e.kind == archiver::pack::Kind::Root)
        .map(|e| (e.id, e.plain_len))
        .unwrap();
    let archive = ArchiveRef {
        name: "important".into(),
        root,
        root_len,
        time: 0,
        partial: false,
        stats: Default::default(),
    };
    let t = random_txn();
    r.begin(&t, b"intent").unwrap();
    let ck = Checkpoint { archive: Listed::Open(archive), indexes: Vec::new(), packs: Vec::new() };
    r.checkpoint(&t, 0, &ck.seal(&w.thief.keys, &t)).unwrap();
    drop(lock);

    w.env.ok(["recover"]).assert_stderr_contains("as \"important.part\"");
    assert_eq!(w.env.list(), ["important", "important.part", "other"]);
    let out = w.env.extract("important", &[]);
    assert_same_tree(&w.env.path("data"), &out.join("data"));
    // The same name once more: a second planted checkpoint gets a name of its own.
    let lock = r.lock("thief").unwrap();
    let t2 = random_txn();
    r.begin(&t2, b"intent").unwrap();
    let mut again = ck.clone();
    if let Listed::Open(a) = &mut again.archive {
        a.name = "important.part".into();
    }
    r.checkpoint(&t2, 0, &again.seal(&w.thief.keys, &t2)).unwrap();
    drop(lock);
    w.env.ok(["recover"]).assert_stderr_contains("as \"important.part.2\"");
    assert_eq!(w.env.list(), ["important", "important.part", "important.part.2", "other"]);
    // The planted archives are the thief's garbage (their root names another archive): the owner
    // deletes them, and everything else is as it was.
    w.env.ok(["delete", "important.part", "important.part.2"]);
    w.intact("after two planted checkpoints");
}

/// A commit whose manifest became visible and whose record was then lost (issue 12 sweep): a
/// thief may not decide it again dropping anything it stored (nothing changes), and the recovery
/// of a write-only key decides it again keeping everything, so its archive restores. Before,
/// recovery took it for an undecided transaction and deleted what it stored.
#[test]
fn a_visible_commit_that_lost_its_record_keeps_its_data() {
    let w = world();
    let local = w.server.local(&w.env, "r");
    small_tree(&w.env.path("three"), 5, 10, 50_000);
    assert_eq!(local.run_at("commit-manifest-written", &["create", "three", "three"]).code, KILLED);
    let txn = local.txn_records().into_keys().next().expect("the killed transaction");
    std::fs::remove_file(w.repo_dir().join(format!("txn/{txn}/commit"))).unwrap();
    let before = hashed_files(&w.repo_dir());
    let r = w.thief();
    let lock = r.lock("thief").unwrap();
    let (gen, manifest) = r.head().unwrap();
    let dropping =
        CommitRequest { gen, manifest: manifest.unwrap(), keep_history: true, ..Default::default() };
    assert!(r.commit(&txn, &dropping).is_err(), "a commit dropping the visible archive's data was accepted");
    drop(lock);
    assert_eq!(hashed_files(&w.repo_dir()), before, "the refused commit changed the repository");
    let writer = util::out_of(
        w.env.command(["recover"]).env("ARCHIVER_KEYFILE", w.env.path("w.key")).output().unwrap(),
    );
    assert_eq!(writer.code, 0, "{}", writer.stderr);
    // Its decision (decided/<txn>: commit) stands: finished, keeping everything it stored.
    // (The intent is sealed to readers: the write key cannot say which command it was.)
    writer.assert_stderr_contains("finished the commit of an interrupted `write`");
    assert_eq!(w.env.list(), ["important", "other", "three"]);
    assert_same_tree(&w.env.path("three"), &w.env.extract("three", &[]).join("three"));
    w.intact("after recovering the visible commit");
}
