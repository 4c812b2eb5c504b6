//! The repository conformance suite: one set of checks, written once against
//! `Arc<dyn Repository>` (from `archiver::repo::open`), run against a local directory and against
//! a real `archiver serve` on 127.0.0.1. It proves that both keep the same contract, including
//! the `ErrorKind` of every failure: init is create-if-absent (a retry with the same bytes
//! succeeds, other bytes are `Exists`); an empty repository is at generation 0; uploads are
//! idempotent; ranged reads are exact up to the last byte, zero-length reads are empty and reads
//! past the end are `Permanent`; listings are sorted; a commit makes its manifest the head,
//! deletes what it did not keep and what it lists, and leaves no records; `finish` and a retried
//! `commit` after the commit are harmless; `abort` removes everything its transaction uploaded
//! and nothing else; a decided commit is rolled forward by `finish`; a commit that lost its
//! generation is `Permanent` and commits nothing; missing objects are `NotFound`; the lock is
//! exclusive between clients, and over HTTP a client without the lease cannot write; and
//! `clean_partial` removes what killed uploads leave.

mod util;

use archiver::backend::{ErrorKind, StoreResult};
use archiver::keyfile::KeyFile;
use archiver::repo::{CommitRequest, Repository};
use std::path::PathBuf;
use std::sync::Arc;
use util::server::{config_for, Server};
use util::*;

const T1: &str = "0123456789abcdef0123456789abcd01";
const T2: &str = "0123456789abcdef0123456789abcd02";
const T3: &str = "0123456789abcdef0123456789abcd03";

/// One kind of repository under test.
struct Subject {
    label: &'static str,
    env: Env,
    server: Option<Server>,
    /// The client's keys: over HTTP every request is signed with their access keys.
    keys: KeyFile,
    /// The config every fresh repository gets (it names the access verifiers).
    config: Vec<u8>,
}

impl Subject {
    fn local() -> Subject {
        let keys = KeyFile::generate().unwrap();
        Subject { label: "local", env: Env::bare(), server: None, config: config_for(&keys, "c0ffee"), keys }
    }

    fn http() -> Subject {
        let env = Env::bare();
        let keys = KeyFile::generate().unwrap();
        let server = Some(Server::start(&env.path("store")));
        Subject { label: "http", server, env, config: config_for(&keys, "c0ffee"), keys }
    }

    /// A new client of repository `name`.
    fn open(&self, name: &str) -> Arc<dyn Repository> {
        match &self.server {
            Some(s) => s.repo(name, &self.keys),
            None => archiver::repo::open(self.dir(name).to_str().unwrap(), &Default::default()).unwrap(),
        }
    }

    /// A new repository `name`, initialised.
    fn fresh(&self, name: &str) -> Arc<dyn Repository> {
        let r = self.open(name);
        r.init(&self.config).unwrap_or_else(|e| panic!("{}: init {name}: {e}", self.label));
        r
    }

    /// The directory holding repository `name`.
    fn dir(&self, name: &str) -> PathBuf {
        match &self.server {
            Some(s) => s.store.join(name),
            None => self.env.path("local").join(name),
        }
    }

    /// Files in that directory whose path starts with `prefix`.
    fn files(&self, name: &str, prefix: &str) -> Vec<String> {
        entries_below(&self.dir(name))
            .into_iter()
            .filter(|p| p.starts_with(prefix) && self.dir(name).join(p).is_file())
            .collect()
    }
}

/// The kind of the error `res` must be.
fn kind<T: std::fmt::Debug>(s: &Subject, what: &str, res: StoreResult<T>) -> ErrorKind {
    match res {
        Err(e) => e.kind,
        Ok(v) => panic!("{}: {what} succeeded ({v:?}); expected an error", s.label),
    }
}

fn pack(seq: u64, len: usize) -> Vec<u8> {
    data(100 + seq, len)
}

fn config_and_head(s: &Subject) {
    // A name containing "lock": the HTTP client once took any 409 whose text said "lock" (here:
    // the path in the server's message) for a lost lease, not for `Exists`.
    let r = s.open("blocks");
    assert_eq!(r.read_config().unwrap(), None, "{}: config of a missing repository", s.label);
    let one = s.config.as_slice();
    let two = config_for(&KeyFile::generate().unwrap(), "c0ffee");
    r.init(one).unwrap();
    assert_eq!(r.read_config().unwrap().as_deref(), Some(one), "{}", s.label);
    r.init(one).unwrap_or_else(|e| panic!("{}: a retried init with the same bytes: {e}", s.label));
    assert_eq!(kind(s, "init over another config", r.init(&two)), ErrorKind::Exists, "{}", s.label);
    let other = s.open("blocks");
    assert_eq!(other.read_config().unwrap().as_deref(), Some(one), "{}", s.label);
    assert_eq!(other.head().unwrap(), (0, None), "{}: head of an empty repository", s.label);
    assert_eq!(other.list_packs().unwrap(), Vec::<String>::new(), "{}", s.label);
    assert_eq!(other.pending().unwrap().len(), 0, "{}", s.label);
}

fn transaction_life_cycle(s: &Subject) {
    let (name, l) = ("life", s.label);
    let r = s.fresh(name);
    let _lock = r.lock("conformance").unwrap();
    r.begin(T1, b"intent 1").unwrap();
    r.begin(T1, b"intent 1").unwrap_or_else(|e| panic!("{l}: a retried begin with the same bytes: {e}"));
    assert_eq!(kind(s, "begin with other bytes", r.begin(T1, b"intent 2")), ErrorKind::Exists, "{l}");
    let p = r.pending().unwrap();
    assert_eq!(p.len(), 1, "{l}: {p:?}");
    assert_eq!((p[0].txn.as_str(), p[0].intent.as_deref()), (T1, Some(&b"intent 1"[..])), "{l}");
    assert!(p[0].checkpoint.is_none() && !p[0].committing, "{l}: {p:?}");

    let packs: Vec<Vec<u8>> = (0..3).map(|i| pack(i, 1000 + 5000 * i as usize)).collect();
    let mut names = vec![String::new(); 3];
    for seq in [2usize, 0, 1] {
        names[seq] = r.put_pack(T1, seq as u32, packs[seq].clone().into()).unwrap();
        assert_eq!(names[seq], format!("{T1}/{seq:08x}"), "{l}: pack name");
    }
    assert_eq!(r.put_pack(T1, 1, packs[1].clone().into()).unwrap(), names[1], "{l}: re-put of the same pack");
    let i0 = r.put_index(T1, 0, b"segment 0").unwrap();
    let i1 = r.put_index(T1, 1, b"segment 1").unwrap();
    assert_eq!((i0.as_str(), i1.as_str()), (&*format!("{T1}-000000"), &*format!("{T1}-000001")), "{l}");
    r.checkpoint(T1, 0, b"checkpoint 1").unwrap();
    r.checkpoint(T1, 1, b"checkpoint 2").unwrap();
    r.checkpoint(T1, 1, b"checkpoint 2").unwrap_or_else(|e| panic!("{l}: a retried checkpoint: {e}"));
    let k = kind(s, "a checkpoint record overwritten", r.checkpoint(T1, 0, b"checkpoint 3"));
    assert_eq!(k, ErrorKind::Exists, "{l}: a checkpoint record was overwritten");
    let p = &r.pending().unwrap()[0];
    assert_eq!(p.checkpoint.as_deref(), Some(&b"checkpoint 2"[..]), "{l}: the newest checkpoint");
    assert_eq!(p.checkpoint_seqs, [0, 1], "{l}");
    assert_eq!(r.checkpoint_record(T1, 0).unwrap(), b"checkpoint 1", "{l}: an older checkpoint");
    let k = kind(s, "a pack overwritten", r.put_pack(T1, 0, pack(9, 1000).into()));
    assert_eq!(k, ErrorKind::Exists, "{l}: a stored pack was overwritten");
    assert_eq!(r.list_packs().unwrap(), names, "{l}: packs listed in order");
    assert_eq!(r.list_indexes().unwrap(), [i0.clone(), i1.clone()], "{l}");
    assert_eq!(r.get_index(&i0).unwrap(), b"segment 0", "{l}");

    // Ranged reads of an 11000-byte pack.
    let (p2, n2, len) = (&packs[2], &names[2], packs[2].len() as u64);
    assert_eq!(r.pack_size(n2).unwrap(), len, "{l}");
    for (off, n) in [(0, len), (100, 1000), (len - 300, 300), (len - 1, 1), (0, 1)] {
        let got = r.read_pack(n2, off, n).unwrap();
        assert!(got == p2[off as usize..(off + n) as usize], "{l}: bytes {off}+{n} of the pack differ");
    }
    for off in [0, 5, len] {
        assert_eq!(r.read_pack(n2, off, 0).unwrap(), b"", "{l}: zero-length read at {off}");
    }
    for (off, n) in [(len - 10, 11), (len, 1), (len + 5, 1)] {
        let k = kind(s, &format!("read past the end at {off}+{n}"), r.read_pack(n2, off, n));
        assert_eq!(k, ErrorKind::Permanent, "{l}: read past the end at {off}+{n}");
    }

    // Commit: packs 0 and 2 and segment 0 are kept; pack 1 and segment 1 were not needed.
    let req = CommitRequest {
        gen: 1,
        manifest: b"manifest 1".to_vec(),
        keep_packs: vec![names[0].clone(), names[2].clone()],
        keep_indexes: vec![i0.clone()],
        ..Default::default()
    };
    r.commit(T1, &req).unwrap();
    let after_commit = |what: &str| {
        assert_eq!(r.head().unwrap(), (1, Some(b"manifest 1".to_vec())), "{l}: head {what}");
        assert_eq!(r.list_packs().unwrap(), req.keep_packs, "{l}: packs {what}");
        assert_eq!(r.list_indexes().unwrap(), req.keep_indexes, "{l}: index {what}");
        assert!(r.pending().unwrap().is_empty(), "{l}: pending {what}");
        assert_eq!(s.files(name, "txn/"), Vec::<String>::new(), "{l}: records {what}");
    };
    after_commit("after the commit");
    r.finish(T1).unwrap_or_else(|e| panic!("{l}: finish after the commit: {e}"));
    after_commit("after finish");
    r.commit(T1, &req).unwrap_or_else(|e| panic!("{l}: a retried commit: {e}"));
    after_commit("after a retried commit");
    assert_eq!(kind(s, "reading an unkept pack", r.read_pack(&names[1], 0, 1)), ErrorKind::NotFound, "{l}");

    // A second transaction replaces pack 0 and segment 0.
    r.begin(T2, b"intent 2").unwrap();
    let m0 = r.put_pack(T2, 0, pack(7, 3000).into()).unwrap();
    let j0 = r.put_index(T2, 0, b"segment 2.0").unwrap();
    let req2 = CommitRequest {
        gen: 2,
        manifest: b"manifest 2".to_vec(),
        keep_packs: vec![m0.clone()],
        keep_indexes: vec![j0.clone()],
        delete_packs: vec![names[0].clone()],
        delete_indexes: vec![i0.clone()],
        keep_history: false,
    };
    r.commit(T2, &req2).unwrap();
    assert_eq!(r.head().unwrap(), (2, Some(b"manifest 2".to_vec())), "{l}");
    let mut want = vec![names[2].clone(), m0];
    want.sort();
    assert_eq!(r.list_packs().unwrap(), want, "{l}: packs after the second commit");
    assert_eq!(r.list_indexes().unwrap(), [j0], "{l}");
    assert_eq!(s.files(name, "manifest/"), ["manifest/0000000000000002"], "{l}: older manifests");
    assert_eq!(kind(s, "a deleted pack", r.pack_size(&names[0])), ErrorKind::NotFound, "{l}");
    assert_eq!(kind(s, "a deleted segment", r.get_index(&i0)), ErrorKind::NotFound, "{l}");

    // A commit for a generation that is not the next one lost a race: nothing is committed, and
    // the transaction is left to recovery (it might hold a checkpoint).
    r.begin(T3, b"intent 3").unwrap();
    let lost = r.put_pack(T3, 0, pack(8, 100).into()).unwrap();
    let stale = CommitRequest { gen: 7, manifest: b"manifest 7".to_vec(), ..Default::default() };
    assert_eq!(
        kind(s, "a commit that lost its generation", r.commit(T3, &stale)),
        ErrorKind::Permanent,
        "{l}"
    );
    assert_eq!(r.head().unwrap().0, 2, "{l}");
    assert_eq!(r.pending().unwrap().len(), 1, "{l}: the losing transaction is left pending");
    r.abort(T3).unwrap();
    assert_eq!(r.list_packs().unwrap(), want, "{l}: the losing transaction's packs");
    assert_eq!(kind(s, "a pack of an aborted transaction", r.pack_size(&lost)), ErrorKind::NotFound, "{l}");
    assert!(r.pending().unwrap().is_empty(), "{l}");

    // A transaction id is used once: T1 committed long ago cannot be begun again, so nothing
    // can be stored into it, and aborting it touches none of its committed packs.
    let k = kind(s, "a committed transaction begun again", r.begin(T1, b"intent 1"));
    assert_eq!(k, ErrorKind::Exists, "{l}");
    assert_eq!(
        kind(s, "a pack into an ended transaction", r.put_pack(T1, 5, pack(5, 10).into())),
        ErrorKind::NotFound,
        "{l}"
    );
    r.abort(T1).unwrap();
    assert_eq!(r.list_packs().unwrap(), want, "{l}: aborting an ended transaction deleted packs");
}

fn abort_and_roll_forward(s: &Subject) {
    let (name, l) = ("abort", s.label);
    let r = s.fresh(name);
    let _lock = r.lock("conformance").unwrap();
    r.begin(T1, b"intent 1").unwrap();
    let kept = r.put_pack(T1, 0, pack(1, 500).into()).unwrap();
    let seg = r.put_index(T1, 0, b"segment").unwrap();
    let req = CommitRequest {
        gen: 1,
        manifest: b"m1".to_vec(),
        keep_packs: vec![kept.clone()],
        keep_indexes: vec![seg.clone()],
        ..Default::default()
    };
    r.commit(T1, &req).unwrap();

    r.begin(T2, b"intent 2").unwrap();
    for seq in 0..3 {
        r.put_pack(T2, seq, pack(seq as u64 + 10, 700).into()).unwrap();
    }
    r.put_index(T2, 0, b"segment 2").unwrap();
    r.checkpoint(T2, 0, b"checkpoint").unwrap();
    r.abort(T2).unwrap();
    let check = |what: &str| {
        assert!(r.pending().unwrap().is_empty(), "{l}: pending {what}");
        assert_eq!(r.list_packs().unwrap(), std::slice::from_ref(&kept), "{l}: packs {what}");
        assert_eq!(r.list_indexes().unwrap(), std::slice::from_ref(&seg), "{l}: index {what}");
        assert_eq!(s.files(name, "txn/"), Vec::<String>::new(), "{l}: records {what}");
        assert!(!s.dir(name).join("packs").join(T2).exists(), "{l}: pack folder {what}");
        assert_eq!(r.head().unwrap(), (1, Some(b"m1".to_vec())), "{l}: head {what}");
    };
    check("after abort");
    r.abort(T2).unwrap_or_else(|e| panic!("{l}: a second abort: {e}"));
    check("after a second abort");

    // A commit decided just before a crash (its record stored, nothing else): `pending` says so
    // and `finish` rolls it forward.
    r.begin(T3, b"intent 3").unwrap();
    let p = r.put_pack(T3, 0, pack(20, 900).into()).unwrap();
    r.put_pack(T3, 1, pack(21, 900).into()).unwrap();
    let req3 = CommitRequest {
        gen: 2,
        manifest: b"m2".to_vec(),
        keep_packs: vec![p.clone()],
        delete_packs: vec![kept.clone()],
        ..Default::default()
    };
    write(&s.dir(name).join(format!("txn/{T3}/commit")), &req3.encode());
    let pending = r.pending().unwrap();
    assert!(pending.len() == 1 && pending[0].committing, "{l}: a decided commit: {pending:?}");
    r.finish(T3).unwrap();
    assert_eq!(r.head().unwrap(), (2, Some(b"m2".to_vec())), "{l}: head after finish");
    assert_eq!(r.list_packs().unwrap(), [p], "{l}: packs after finish");
    assert!(r.pending().unwrap().is_empty(), "{l}");
    r.finish(T3).unwrap_or_else(|e| panic!("{l}: a second finish: {e}"));
}

fn missing_objects(s: &Subject) {
    let l = s.label;
    let r = s.fresh("missing");
    let pack_name = format!("{T1}/00000000");
    assert_eq!(kind(s, "read_pack", r.read_pack(&pack_name, 0, 10)), ErrorKind::NotFound, "{l}");
    assert_eq!(kind(s, "zero-length read_pack", r.read_pack(&pack_name, 0, 0)), ErrorKind::NotFound, "{l}");
    assert_eq!(kind(s, "pack_size", r.pack_size(&pack_name)), ErrorKind::NotFound, "{l}");
    assert_eq!(kind(s, "get_index", r.get_index(&format!("{T1}-000000"))), ErrorKind::NotFound, "{l}");
    let _lock = r.lock("conformance").unwrap();
    r.begin(T1, b"intent").unwrap();
    assert_eq!(kind(s, "finish without a commit record", r.finish(T1)), ErrorKind::NotFound, "{l}");
    assert_eq!(r.pending().unwrap().len(), 1, "{l}: a failed finish must leave the transaction");
}

fn lock_is_exclusive(s: &Subject) {
    let (name, l) = ("exclusive", s.label);
    let a = s.fresh(name);
    let b = s.open(name);
    let held = a.lock("client A").unwrap();
    let err = format!("{:#}", b.lock("client B").err().unwrap_or_else(|| panic!("{l}: two clients locked")));
    assert!(err.contains("locked by another archiver") && err.contains("client A"), "{l}: {err}");
    drop(held);
    let _held = b.lock("client B").unwrap_or_else(|e| panic!("{l}: lock after release: {e:#}"));
    if s.server.is_some() {
        // Over HTTP the lease is enforced: a client without it writes nothing.
        assert_eq!(kind(s, "begin without the lock", a.begin(T1, b"x")), ErrorKind::Permanent, "{l}");
        assert!(b.pending().unwrap().is_empty(), "{l}: a write without the lock was stored");
    }
}

fn clean_partial(s: &Subject) {
    let (name, l) = ("partial", s.label);
    let r = s.fresh(name);
    let _lock = r.lock("conformance").unwrap();
    r.begin(T1, b"intent").unwrap();
    let kept = r.put_pack(T1, 0, pack(1, 300).into()).unwrap();
    // What writers killed mid-upload leave: a temporary file, an empty pack folder.
    write(&s.dir(name).join("tmp/99999.7"), b"half a pack");
    mkdir(&s.dir(name).join("packs").join(T2));
    r.clean_partial().unwrap();
    assert_eq!(entries_below(&s.dir(name).join("tmp")), Vec::<String>::new(), "{l}: tmp/");
    assert!(!s.dir(name).join("packs").join(T2).exists(), "{l}: the empty pack folder");
    assert_eq!(r.list_packs().unwrap(), [kept], "{l}: clean_partial removed a stored pack");
    assert_eq!(r.pending().unwrap().len(), 1, "{l}: clean_partial touched a transaction");
}

fn suite(s: &Subject) {
    config_and_head(s);
    transaction_life_cycle(s);
    abort_and_roll_forward(s);
    missing_objects(s);
    lock_is_exclusive(s);
    clean_partial(s);
}

#[test]
fn a_local_directory_repository_conforms() {
    suite(&Subject::local());
}

#[test]
fn an_http_repository_conforms() {
    let s = Subject::http();
    suite(&s);
    let mut server = s.server.unwrap();
    assert!(server.is_running(), "the server died");
    assert!(!server.log().contains("panicked"), "the server panicked:\n{}", server.log());
}
