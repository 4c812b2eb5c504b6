//! The transactional repository over the in-memory backend and a process lock (`ObjectRepo::new`
//! with `MemoryBackend` and `ProcessLock`): the seam another backend plugs into, exercised
//! without a file system, and with the fault injector for a lost answer on a commit.

use super::lock::ProcessLock;
use super::objects::ObjectRepo;
use super::{CommitRequest, Repository};
use crate::backend::faulty::{Fault, FaultyBackend, Op};
use crate::backend::memory::MemoryBackend;
use crate::backend::ErrorKind;

const T: &str = "0123456789abcdef0123456789abcd01";

fn memory_repo(faults: Vec<Fault>) -> ObjectRepo {
    ObjectRepo::new(
        Box::new(FaultyBackend::new(MemoryBackend::new(), faults)),
        Box::new(ProcessLock::default()),
    )
}

fn commit_one_pack(r: &ObjectRepo) -> super::super::backend::StoreResult<String> {
    r.begin(T, b"create a")?;
    let pack = r.put_pack(T, 1, vec![7; 100].into())?;
    let req = CommitRequest {
        gen: 1,
        manifest: b"sealed manifest".to_vec(),
        keep_packs: vec![pack.clone()],
        ..Default::default()
    };
    r.commit(T, &req)?;
    Ok(pack)
}

#[test]
fn a_transaction_commits_in_memory_under_a_process_lock() {
    let r = memory_repo(Vec::new());
    r.init(b"config").unwrap();
    assert_eq!(r.read_config().unwrap().as_deref(), Some(&b"config"[..]));
    let held = r.lock("me").unwrap();
    assert!(r.lock("other").is_err(), "the lock admits one writer");
    let pack = commit_one_pack(&r).unwrap();
    assert_eq!(r.head().unwrap(), (1, Some(b"sealed manifest".to_vec())));
    assert_eq!(r.list_packs().unwrap(), std::slice::from_ref(&pack));
    assert_eq!(r.read_pack(&pack, 10, 5).unwrap(), [7; 5]);
    assert!(r.pending().unwrap().is_empty(), "a finished commit leaves no records");
    drop(held);
    r.lock("other").expect("free once released");
}

#[test]
fn a_commit_whose_answer_was_lost_is_decided_once() {
    // The manifest is stored, then the answer is lost: a retry of the commit must not fail or
    // commit twice.
    let r = memory_repo(vec![Fault::new(Op::PutNew, "manifest/", 1, ErrorKind::Transient).answer_lost()]);
    r.init(b"config").unwrap();
    let err = commit_one_pack(&r).expect_err("the injected fault surfaces");
    assert_eq!(err.kind, ErrorKind::Transient);
    let req = CommitRequest {
        gen: 1,
        manifest: b"sealed manifest".to_vec(),
        keep_packs: r.list_packs().unwrap(),
        ..Default::default()
    };
    r.commit(T, &req).expect("the retried commit succeeds");
    assert_eq!(r.head().unwrap().0, 1);
    assert_eq!(r.generations().unwrap(), [1]);
}
