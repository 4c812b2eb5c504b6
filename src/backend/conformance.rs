//! The backend conformance suite: one set of checks of the `Backend` contract, run against every
//! backend (a local directory, memory, memory behind the fault injector with no faults planned),
//! so a new backend (S3) proves itself by being added to `every_backend`. It checks put and get,
//! create-if-absent, exact ranged reads, sorted prefix listings, idempotent deletes, the
//! `ErrorKind` of every failure, that readers never see half an object while it is replaced, and
//! that of racing `put_new`s exactly one wins. The fault injector's own behaviour is checked last.

use super::faulty::{Fault, FaultyBackend, Op};
use super::local::LocalBackend;
use super::memory::MemoryBackend;
use super::s3_server::MotoServer;
use super::{Backend, ErrorKind};
use std::sync::Arc;

fn every_backend(dir: &std::path::Path, s3: Option<&MotoServer>) -> Vec<Arc<dyn Backend>> {
    let mut all: Vec<Arc<dyn Backend>> = vec![
        Arc::new(LocalBackend::new(dir)),
        Arc::new(MemoryBackend::new()),
        Arc::new(FaultyBackend::new(MemoryBackend::new(), Vec::new())),
    ];
    if let Some(server) = s3 {
        // A fresh prefix per check: each starts from an empty repository.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        all.push(Arc::new(server.backend(&format!("s3://conformance/check-{n}"))));
    }
    all
}

/// The S3 server the suite shares (moto, started once).
fn s3_server() -> Option<&'static MotoServer> {
    static SERVER: std::sync::OnceLock<Option<MotoServer>> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| {
            let s = MotoServer::start()?;
            s.bucket("conformance");
            Some(s)
        })
        .as_ref()
}

fn for_each(check: impl Fn(&Arc<dyn Backend>)) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for b in every_backend(dir.path(), s3_server()) {
        check(&b);
    }
}

fn kind<T: std::fmt::Debug>(r: super::StoreResult<T>) -> ErrorKind {
    r.expect_err("this call must fail").kind
}

#[test]
fn objects_are_stored_read_replaced_and_deleted() {
    for_each(|b| {
        let d = b.describe();
        b.put("packs/t1/00000001", b"first").unwrap();
        assert_eq!(b.get("packs/t1/00000001").unwrap(), b"first", "{d}");
        assert_eq!(b.size("packs/t1/00000001").unwrap(), 5, "{d}");
        b.put("packs/t1/00000001", b"second!").unwrap();
        assert_eq!(b.get("packs/t1/00000001").unwrap(), b"second!", "{d}");
        assert_eq!(kind(b.get("packs/t1/00000002")), ErrorKind::NotFound, "{d}");
        assert_eq!(kind(b.size("packs/t1/00000002")), ErrorKind::NotFound, "{d}");
        b.delete("packs/t1/00000001").unwrap();
        assert_eq!(kind(b.get("packs/t1/00000001")), ErrorKind::NotFound, "{d}");
        b.delete("packs/t1/00000001").expect("deleting a missing key succeeds");
        b.clean_partial().unwrap();
    });
}

#[test]
fn put_new_never_replaces() {
    for_each(|b| {
        let d = b.describe();
        b.put_new("manifest/0000000001", b"one").unwrap();
        assert_eq!(kind(b.put_new("manifest/0000000001", b"two")), ErrorKind::Exists, "{d}");
        assert_eq!(b.get("manifest/0000000001").unwrap(), b"one", "{d}");
    });
}

#[test]
fn ranged_reads_are_exact() {
    for_each(|b| {
        let d = b.describe();
        let data: Vec<u8> = (0..=255u8).collect();
        b.put("packs/t/1", &data).unwrap();
        assert_eq!(b.get_range("packs/t/1", 0, 1).unwrap(), [0], "{d}");
        assert_eq!(b.get_range("packs/t/1", 255, 1).unwrap(), [255], "{d}");
        assert_eq!(b.get_range("packs/t/1", 10, 5).unwrap(), [10, 11, 12, 13, 14], "{d}");
        assert_eq!(b.get_range("packs/t/1", 0, 256).unwrap(), data, "{d}");
        assert!(b.get_range("packs/t/1", 256, 0).unwrap().is_empty(), "{d}");
        assert_eq!(kind(b.get_range("packs/t/1", 200, 57)), ErrorKind::Permanent, "{d}");
        assert_eq!(kind(b.get_range("packs/t/1", u64::MAX, 2)), ErrorKind::Permanent, "{d}");
        assert_eq!(kind(b.get_range("packs/t/2", 0, 1)), ErrorKind::NotFound, "{d}");
    });
}

#[test]
fn listings_are_sorted_and_follow_the_prefix() {
    for_each(|b| {
        let d = b.describe();
        for k in [
            "packs/b/00000002",
            "packs/a/00000001",
            "packs/b/00000001",
            "index/ab-01",
            "index/cd-01",
            "config",
        ] {
            b.put(k, k.as_bytes()).unwrap();
        }
        assert_eq!(
            b.list("packs/").unwrap(),
            ["packs/a/00000001", "packs/b/00000001", "packs/b/00000002"],
            "{d}"
        );
        assert_eq!(b.list("index/ab").unwrap(), ["index/ab-01"], "{d}");
        assert_eq!(b.list("packs/b/").unwrap(), ["packs/b/00000001", "packs/b/00000002"], "{d}");
        assert!(b.list("manifest/").unwrap().is_empty(), "{d}");
        b.delete("packs/a/00000001").unwrap();
        assert_eq!(b.list("packs/").unwrap().len(), 2, "{d}");
    });
}

#[test]
fn readers_never_see_half_an_object() {
    for_each(|b| {
        let (old, new) = (vec![1u8; 1 << 20], vec![2u8; 1 << 19]);
        b.put("obj/x", &old).unwrap();
        let writer = {
            let (b, old, new) = (b.clone(), old.clone(), new.clone());
            std::thread::spawn(move || {
                for i in 0..40 {
                    b.put("obj/x", if i % 2 == 0 { &new } else { &old }).unwrap();
                }
            })
        };
        for _ in 0..200 {
            let got = b.get("obj/x").unwrap();
            assert!(got == old || got == new, "{}: a reader saw {} bytes of a mix", b.describe(), got.len());
        }
        writer.join().unwrap();
    });
}

#[test]
fn of_racing_creates_exactly_one_wins() {
    for_each(|b| {
        let threads: Vec<_> = (0..8u8)
            .map(|i| {
                let b = b.clone();
                std::thread::spawn(move || b.put_new("txn/t/commit", &[i; 4096]).map(|()| i))
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<u8> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        assert_eq!(winners.len(), 1, "{}: {results:?}", b.describe());
        assert!(results.iter().all(|r| r.as_ref().map_or_else(|e| e.kind == ErrorKind::Exists, |_| true)));
        assert_eq!(b.get("txn/t/commit").unwrap(), [winners[0]; 4096], "{}", b.describe());
    });
}

#[test]
fn faults_fire_once_on_the_planned_call() {
    let plan = vec![
        Fault::new(Op::Put, "packs/", 2, ErrorKind::Transient),
        Fault::new(Op::PutNew, "manifest/", 1, ErrorKind::NoSpace).answer_lost(),
    ];
    let b = FaultyBackend::new(MemoryBackend::new(), plan);
    b.put("packs/t/1", b"a").unwrap();
    b.put("index/x", b"not counted").unwrap();
    assert_eq!(kind(b.put("packs/t/2", b"b")), ErrorKind::Transient);
    assert_eq!(kind(b.get("packs/t/2")), ErrorKind::NotFound, "a lost request stores nothing");
    b.put("packs/t/2", b"b").unwrap();
    // The answer is lost, but the object is there: a retry is told it exists.
    assert_eq!(kind(b.put_new("manifest/1", b"m")), ErrorKind::NoSpace);
    assert_eq!(b.get("manifest/1").unwrap(), b"m");
    assert_eq!(kind(b.put_new("manifest/1", b"m")), ErrorKind::Exists);
    assert!(b.unfired().is_empty());
}
