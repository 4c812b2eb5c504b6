//! The pipeline's invariants against a real repository (`ObjectRepo` over the in-memory backend)
//! whose storage is slow by different amounts per pack and fails where told
//! (`backend::faulty`): `flush` waits for every upload and reports exactly the acknowledged
//! packs, in order; uploads really overlap (and no more than allowed); the first error stops
//! everything.

use super::Pipeline;
use crate::backend::faulty::{CallLog, Fault, FaultyBackend, Op};
use crate::backend::memory::MemoryBackend;
use crate::backend::ErrorKind;
use crate::crypto::BlockId;
use crate::crypto::Keys;
use crate::layout;
use crate::pack::Kind;
use crate::repo::lock::ProcessLock;
use crate::repo::objects::ObjectRepo;
use crate::repo::Repository;
use std::sync::Arc;
use std::time::Duration;

/// Incompressible 1 MiB blocks: a pack is full after 16.
const BLOCK: usize = 1 << 20;
const T: &str = "0123456789abcdef0123456789abcdef";

/// The pack sequence number a `packs/T/<seq>` key names.
fn seq_of(key: &str) -> Option<u32> {
    let name = layout::name_of(layout::PACKS, key)?;
    u32::from_str_radix(name.rsplit('/').next()?, 16).ok()
}

/// A repository with transaction `T` begun, whose pack stores take `latency` and fail as
/// `faults` say; and the log of what its storage saw.
fn repository(faults: Vec<Fault>, latency: fn(Op, &str) -> Duration) -> (Arc<dyn Repository>, Arc<CallLog>) {
    let backend = FaultyBackend::new(MemoryBackend::new(), faults).with_latency(latency);
    let log = backend.log();
    let repo = ObjectRepo::new(Box::new(backend), Box::new(ProcessLock::default()));
    repo.begin(T, b"intent").unwrap();
    (Arc::new(repo), log)
}

/// The packs stored, in the order their stores returned.
fn stored(log: &CallLog) -> Vec<u32> {
    log.succeeded(Op::PutNew).iter().filter_map(|k| seq_of(k)).collect()
}

fn keys() -> Arc<Keys> {
    Arc::new(Keys::new([1; 32], [2; 32], 3))
}

/// Incompressible block number `i`.
fn block(keys: &Keys, i: u64) -> (BlockId, Kind, Vec<u8>) {
    sized(keys, i, BLOCK)
}

/// Incompressible block number `i` of `len` bytes.
fn sized(keys: &Keys, i: u64, len: usize) -> (BlockId, Kind, Vec<u8>) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i + 1).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    (keys.block_id(&data), Kind::Data, data)
}

/// Submits `n` blocks numbered from `from`; returns how many were accepted.
fn submit(p: &Pipeline, keys: &Keys, from: u64, n: u64) -> u64 {
    let ok = |i| {
        let (id, kind, data) = block(keys, i);
        p.submit(id, kind, data).is_ok()
    };
    (from..from + n).take_while(|&i| ok(i)).count() as u64
}

#[test]
fn flush_waits_for_every_upload_and_reports_exactly_the_acknowledged_packs_in_order() {
    // The first pack is the slowest, so uploads finish out of order.
    let (repo, log) = repository(vec![], |op, key| match (op, seq_of(key)) {
        (Op::PutNew, Some(0)) => Duration::from_millis(400),
        (Op::PutNew, Some(_)) => Duration::from_millis(60),
        _ => Duration::ZERO,
    });
    let keys = keys();
    let p = Pipeline::start(repo.clone(), keys.clone(), T.into());
    assert_eq!(submit(&p, &keys, 0, 90), 90);
    let written = p.flush(90).expect("flush");
    let names: Vec<String> = written.iter().map(|(n, _)| n.clone()).collect();
    let stored = stored(&log);
    assert_eq!(names.len(), stored.len(), "a reported pack was not acknowledged, or the reverse");
    assert_eq!(names, (0..6).map(|s| layout::pack_name(T, s)).collect::<Vec<_>>());
    assert_ne!(stored[0], 0, "the slow first pack finished first: nothing overlapped");
    assert_eq!(written.iter().map(|(_, e)| e.len()).sum::<usize>(), 90, "every block in a reported pack");
    let allowed = repo.uploads_in_flight();
    assert!(allowed >= 2 && log.peak() == allowed, "{} uploads at once (allowed: {allowed})", log.peak());
    // A second flush reports only what was stored since.
    assert_eq!(submit(&p, &keys, 90, 3), 3);
    let again = p.flush(93).expect("flush");
    assert_eq!(again.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), [layout::pack_name(T, 6)]);
}

#[test]
fn the_first_upload_error_stops_the_pipeline_and_is_the_one_reported() {
    // Pack 1 fails quickly, pack 2 later: pack 1's error is reported, and once it is known no
    // more packs are uploaded.
    let pack = |seq| layout::pack_key(&layout::pack_name(T, seq));
    let faults = vec![
        Fault::new(Op::PutNew, &pack(1), 1, ErrorKind::NoSpace),
        Fault::new(Op::PutNew, &pack(2), 1, ErrorKind::Permanent),
    ];
    let (repo, log) = repository(faults, |op, key| match (op, seq_of(key)) {
        (Op::PutNew, Some(2)) => Duration::from_millis(300),
        (Op::PutNew, Some(_)) => Duration::from_millis(30),
        _ => Duration::ZERO,
    });
    let keys = keys();
    let p = Pipeline::start(repo, keys.clone(), T.into());
    let sent = submit(&p, &keys, 0, 200);
    let err = p.flush(sent).expect_err("an upload failed").to_string();
    let first = format!("cannot store pack {}", layout::pack_name(T, 1));
    assert!(err.contains(&first) && err.contains(&pack(1)), "{err}");
    let (id, kind, data) = block(&keys, 999);
    assert!(p.check().is_err() && p.submit(id, kind, data).is_err(), "the pipeline keeps failing");
    let stored = stored(&log);
    assert!(stored.iter().all(|&s| s == 0 || s == 3), "uploads went on after the error: {stored:?}");
    assert!(sent < 200, "submitting went on long after the error ({sent} blocks)");
}

/// A checkpoint's cut: blocks submitted after it overtake blocks before it in the seal workers
/// (a large block takes longer than many small ones), yet once `stored_below` reaches the cut's
/// answer, every block before the cut is in a stored pack numbered below it.
#[test]
fn a_cut_answers_only_once_every_block_before_it_is_packed() {
    let (repo, _) = repository(vec![], |_, _| Duration::ZERO);
    let keys = keys();
    let p = Pipeline::start(repo, keys.clone(), T.into());
    let mut before = std::collections::HashSet::new();
    let mut i = 0;
    for round in 0..20 {
        // Ends with a large block, which the small ones after the cut overtake.
        for len in [3000, 5000, 4 * BLOCK] {
            let (id, kind, data) = sized(&keys, i, len + round);
            before.insert(id);
            p.submit(id, kind, data).unwrap();
            i += 1;
        }
        assert!(p.push(None).unwrap(), "the batch being filled is sent before a cut");
        let answer = p.cut(i).unwrap();
        for _ in 0..8 {
            let (id, kind, data) = sized(&keys, 1_000_000 + i, 2000 + round);
            p.submit(id, kind, data).unwrap();
            i += 1;
        }
        let need = answer.recv().unwrap();
        while p.stored_below() < need {
            std::thread::sleep(Duration::from_millis(1));
        }
        let taken = p.take_stored();
        for (name, entries) in &taken {
            if seq_of(&layout::pack_key(name)).unwrap() < need {
                for e in entries {
                    before.remove(&e.id);
                }
            }
        }
        // Packs stored before this round were taken by the previous one.
        assert!(before.is_empty(), "round {round}: {} blocks before the cut not in its packs", before.len());
        p.release().released(need); // the checkpoint is recorded: the gate opens
    }
}

/// The gate: after a cut, packs closed later are held back (not stored) until the checkpoint is
/// recorded; then they go, and a flush stores everything.
#[test]
fn packs_after_a_cut_wait_for_its_checkpoint_to_be_recorded() {
    let (repo, log) = repository(vec![], |_, _| Duration::ZERO);
    let keys = keys();
    let p = Pipeline::start(repo, keys.clone(), T.into());
    assert_eq!(submit(&p, &keys, 0, 20), 20); // pack 0 (16 blocks), then 4 more
    p.push(None).unwrap();
    let need = p.cut(20).unwrap().recv().unwrap();
    assert_eq!(need, 2, "the cut closes pack 1 with the 4 blocks after pack 0");
    p.wait_stored(need).unwrap();
    // Two full packs after the cut (2 and 3): held back, as many as the packer holds.
    assert_eq!(submit(&p, &keys, 20, 32), 32);
    std::thread::sleep(Duration::from_millis(300));
    let mut early = stored(&log);
    early.sort();
    assert_eq!(early, [0, 1], "packs after the cut were stored before its record");
    // With its room full the packer takes no blocks: submitting finds no room...
    let mut sent = 52;
    loop {
        let (id, kind, data) = block(&keys, sent);
        match p.submit_within(id, kind, data, Some(Duration::from_millis(200))).unwrap() {
            None => sent += 1,
            Some(_) => break,
        }
    }
    // ...yet a cut is taken at once (it once waited behind the blocks: a deadlock, as only the
    // thread making the cut can move the earlier checkpoint on).
    let answer = p.cut(sent).unwrap();
    p.release().released(need);
    // The gate open, the blocks kept for the next batch can go (`Txn::checkpoint` sends them
    // before its cut, moving the earlier checkpoint on while there is no room).
    assert!(p.push(Some(Duration::from_secs(10))).unwrap(), "room once the gate opened");
    let second = answer.recv_timeout(Duration::from_secs(10)).expect("the second cut is answered");
    p.release().released(second);
    let written = p.flush(sent).expect("flush");
    let names: Vec<String> = written.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, (0..second).map(|s| layout::pack_name(T, s)).collect::<Vec<_>>());
    assert_eq!(stored(&log).len(), second as usize);
}
