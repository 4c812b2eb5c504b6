//! The pipeline's invariants against a repository whose uploads take different times and can
//! fail: `flush` waits for every upload and reports exactly the acknowledged packs, in order;
//! uploads really overlap (and no more than allowed); the first error stops everything.

use super::{Job, Pipeline};
use crate::backend::{ErrorKind, StoreError, StoreResult};
use crate::crypto::Keys;
use crate::pack::Kind;
use crate::repo::{CommitRequest, LockGuard, Pending, Repository};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Incompressible 1 MiB blocks: a pack is full after 16.
const BLOCK: usize = 1 << 20;

struct Fake {
    /// Sequence numbers acknowledged, in the order their uploads returned.
    stored: Mutex<Vec<u32>>,
    now: AtomicUsize,
    most: AtomicUsize,
    /// Upload `seq` fails after `delay(seq)` if listed here.
    fail: Vec<u32>,
    delay: fn(u32) -> Duration,
}

impl Fake {
    fn new(fail: Vec<u32>, delay: fn(u32) -> Duration) -> Arc<Fake> {
        Arc::new(Fake { stored: Mutex::default(), now: 0.into(), most: 0.into(), fail, delay })
    }
}

impl Repository for Fake {
    fn put_pack(&self, _txn: &str, seq: u32, data: bytes::Bytes) -> StoreResult<String> {
        assert!(!data.is_empty());
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep((self.delay)(seq));
        self.now.fetch_sub(1, Ordering::SeqCst);
        if self.fail.contains(&seq) {
            return Err(StoreError::new(ErrorKind::Permanent, format!("disk on fire at {seq}")));
        }
        self.stored.lock().unwrap().push(seq);
        Ok(format!("t/{seq:08x}"))
    }
    fn uploads_in_flight(&self) -> usize {
        3
    }
    fn describe(&self) -> String {
        "fake".into()
    }
    fn read_config(&self) -> StoreResult<Option<Vec<u8>>> {
        unreachable!()
    }
    fn init(&self, _: &[u8]) -> StoreResult<()> {
        unreachable!()
    }
    fn lock(&self, _: &str) -> anyhow::Result<Box<dyn LockGuard>> {
        unreachable!()
    }
    fn head(&self) -> StoreResult<(u64, Option<Vec<u8>>)> {
        unreachable!()
    }
    fn generations(&self) -> StoreResult<Vec<u64>> {
        unreachable!()
    }
    fn manifest(&self, _: u64) -> StoreResult<Vec<u8>> {
        unreachable!()
    }
    fn begin(&self, _: &str, _: &[u8]) -> StoreResult<()> {
        unreachable!()
    }
    fn put_index(&self, _: &str, _: u32, _: &[u8]) -> StoreResult<String> {
        unreachable!()
    }
    fn checkpoint(&self, _: &str, _: u32, _: &[u8]) -> StoreResult<()> {
        unreachable!()
    }
    fn checkpoint_record(&self, _: &str, _: u32) -> StoreResult<Vec<u8>> {
        unreachable!()
    }
    fn commit(&self, _: &str, _: &CommitRequest) -> StoreResult<()> {
        unreachable!()
    }
    fn finish(&self, _: &str) -> StoreResult<()> {
        unreachable!()
    }
    fn abort(&self, _: &str) -> StoreResult<()> {
        unreachable!()
    }
    fn pending(&self) -> StoreResult<Vec<Pending>> {
        unreachable!()
    }
    fn clean_partial(&self) -> StoreResult<()> {
        unreachable!()
    }
    fn read_pack(&self, _: &str, _: u64, _: u64) -> StoreResult<Vec<u8>> {
        unreachable!()
    }
    fn pack_size(&self, _: &str) -> StoreResult<u64> {
        unreachable!()
    }
    fn get_index(&self, _: &str) -> StoreResult<Vec<u8>> {
        unreachable!()
    }
    fn list_packs(&self) -> StoreResult<Vec<String>> {
        unreachable!()
    }
    fn list_indexes(&self) -> StoreResult<Vec<String>> {
        unreachable!()
    }
}

fn keys() -> Arc<Keys> {
    Arc::new(Keys::new([1; 32], [2; 32], 3))
}

/// Incompressible block number `i`.
fn block(keys: &Keys, i: u64) -> Job {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i + 1).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let data: Vec<u8> = (0..BLOCK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    Job { id: keys.block_id(&data), kind: Kind::Data, data }
}

/// Submits `n` blocks numbered from `from`; returns how many were accepted.
fn submit(p: &Pipeline, keys: &Keys, from: u64, n: u64) -> u64 {
    (from..from + n).take_while(|&i| p.submit(block(keys, i)).is_ok()).count() as u64
}

#[test]
fn flush_waits_for_every_upload_and_reports_exactly_the_acknowledged_packs_in_order() {
    // The first pack is the slowest, so uploads finish out of order.
    let fake = Fake::new(vec![], |seq| Duration::from_millis(if seq == 0 { 400 } else { 60 }));
    let keys = keys();
    let p = Pipeline::start(fake.clone(), keys.clone(), "t".into());
    assert_eq!(submit(&p, &keys, 0, 90), 90);
    let written = p.flush(90).expect("flush");
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    let stored = fake.stored.lock().unwrap().clone();
    assert_eq!(names.len(), stored.len(), "a reported pack was not acknowledged, or the reverse");
    assert_eq!(names, ["t/00000000", "t/00000001", "t/00000002", "t/00000003", "t/00000004", "t/00000005"]);
    assert_ne!(stored[0], 0, "the slow first pack finished first: nothing overlapped");
    assert_eq!(written.iter().map(|(_, e)| e.len()).sum::<usize>(), 90, "every block in a reported pack");
    let most = fake.most.load(Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} uploads at once (allowed: 3)");
    // A second flush reports only what was stored since.
    assert_eq!(submit(&p, &keys, 90, 3), 3);
    let again = p.flush(93).expect("flush");
    assert_eq!(again.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["t/00000006"]);
}

#[test]
fn the_first_upload_error_stops_the_pipeline_and_is_the_one_reported() {
    // Pack 1 fails quickly, pack 2 later: pack 1's error is reported, and once it is known no
    // more packs are uploaded.
    let fake = Fake::new(vec![1, 2], |seq| Duration::from_millis(if seq == 2 { 300 } else { 30 }));
    let keys = keys();
    let p = Pipeline::start(fake.clone(), keys.clone(), "t".into());
    let sent = submit(&p, &keys, 0, 200);
    let err = p.flush(sent).expect_err("an upload failed").to_string();
    assert!(err.contains("cannot store pack t/00000001") && err.contains("disk on fire at 1"), "{err}");
    assert!(p.check().is_err() && p.submit(block(&keys, 999)).is_err(), "the pipeline keeps failing");
    let stored = fake.stored.lock().unwrap().clone();
    assert!(stored.iter().all(|&s| s == 0 || s == 3), "uploads went on after the error: {stored:?}");
    assert!(sent < 200, "submitting went on long after the error ({sent} blocks)");
}
