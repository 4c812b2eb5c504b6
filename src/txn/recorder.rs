//! The recorder: one thread that stores a transaction's small durable objects (index segments,
//! checkpoint packs and segments, checkpoint records) in the order they were queued, so that the
//! walk goes on reading, hashing and compressing while they are written and fsynced.
//!
//! Invariants:
//! - Writes complete in queue order, one at a time: a checkpoint record is written only after
//!   every segment queued before it is durable, so a record never names a segment that is not.
//! - Every object's name is decided by the caller (`layout`) before it is queued, and the name the
//!   repository answers must be that one, or the recorder fails: what the caller already told the
//!   cache's open transaction and the next record is what is stored.
//! - After the first failure nothing more is written; `check` and `wait_idle` report it.
//! - `finish` (and dropping) completes what is queued (unless failed) and joins the thread, so a
//!   record the caller queued is either durable or failed once it returns, never under way.

use crate::repo::Repository;
use anyhow::{anyhow, Result};
use crossbeam_channel::{bounded, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// An object to store, with the name it must get.
pub(super) struct Object {
    pub seq: u32,
    pub bytes: Vec<u8>,
    pub name: String,
}

/// What a queued write is; each ends at its failpoint.
pub(super) enum Op {
    /// An index segment written between checkpoints (failpoint `segment-indexed`), or, `quiet`,
    /// the commit's (whose failpoint the commit hits once it is durable).
    Segment { seg: Object, quiet: bool },
    /// A checkpoint: the segment for packs stored since the previous one (if any), the pack and
    /// segment holding `NAME.part`'s root and metadata tail, then record `k`.
    /// `gate`: the cut's answer, for the packer to let the packs it held back go once the record
    /// is stored (`Pipeline::release`).
    Checkpoint { seg: Option<Object>, pack: Object, part_seg: Object, k: u32, record: Vec<u8>, gate: u32 },
}

#[derive(Default)]
struct State {
    queued: u64,
    done: u64,
    /// Checkpoint records stored.
    records: u32,
    failed: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct Recorder {
    tx: Option<Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Recorder {
    pub fn start(repo: Arc<dyn Repository>, txn: String, release: super::pipeline::Release) -> Recorder {
        // A few writes may wait: a checkpoint's and a segment or two (each at most ~700 KB).
        let (tx, rx) = bounded::<Op>(4);
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            for op in rx {
                let result = match s.lock().failed.is_some() {
                    true => Err(None),
                    false => {
                        let run = || store(&*repo, &txn, op, &release);
                        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                            Ok(r) => r.map_err(Some),
                            Err(_) => Err(Some("the recording thread panicked".to_string())),
                        }
                    }
                };
                let mut st = s.lock();
                match result {
                    Ok(record) => st.records += record as u32,
                    Err(Some(msg)) => {
                        st.failed.get_or_insert(msg);
                    }
                    Err(None) => {}
                }
                st.done += 1;
                s.cv.notify_all();
            }
        });
        Recorder { tx: Some(tx), thread: Some(thread), shared }
    }

    /// Queues `op` (waits while the queue is full); returns its number, for `is_done`.
    pub fn queue(&self, op: Op) -> Result<u64> {
        self.check()?;
        let n = {
            let mut st = self.shared.lock();
            st.queued += 1;
            st.queued
        };
        let tx = self.tx.as_ref().ok_or_else(|| anyhow!("the recording thread was stopped"))?;
        tx.send(op).map_err(|_| anyhow!("the recording thread stopped unexpectedly"))?;
        Ok(n)
    }

    /// The first failure, if any.
    pub fn check(&self) -> Result<()> {
        match &self.shared.lock().failed {
            Some(msg) => Err(anyhow!("{msg}")),
            None => Ok(()),
        }
    }

    /// Whether write number `n` (from `queue`) is done and everything before it succeeded.
    pub fn is_done(&self, n: u64) -> Result<bool> {
        self.check()?;
        Ok(self.shared.lock().done >= n)
    }

    /// Waits until every queued write is done; reports the first failure.
    pub fn wait_idle(&self) -> Result<()> {
        let st = self.shared.lock();
        let st = self.shared.cv.wait_while(st, |s| s.done < s.queued).unwrap_or_else(|p| p.into_inner());
        match &st.failed {
            Some(msg) => Err(anyhow!("{msg}")),
            None => Ok(()),
        }
    }

    /// Completes what is queued and stops the thread; returns the checkpoint records stored.
    pub fn finish(&mut self) -> u32 {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.lock().records
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Stores one object, checking the name the repository gave it.
fn put<E: std::fmt::Display>(what: &str, name: &str, stored: Result<String, E>) -> Result<(), String> {
    let stored = stored.map_err(|e| format!("cannot store {what}: {e}"))?;
    if stored != name {
        return Err(format!("cannot store {what}: the repository stored {name:?} as {stored:?}"));
    }
    Ok(())
}

/// Runs one write; `Ok(true)` when it stored a checkpoint record.
fn store(
    repo: &dyn Repository,
    txn: &str,
    op: Op,
    release: &super::pipeline::Release,
) -> Result<bool, String> {
    match op {
        Op::Segment { seg, quiet } => {
            put("an index segment", &seg.name, repo.put_index(txn, seg.seq, &seg.bytes))?;
            if !quiet {
                crate::failpoint::hit("segment-indexed");
            }
            Ok(false)
        }
        Op::Checkpoint { seg, pack, part_seg, k, record, gate } => {
            const WHAT: &str = "a checkpoint";
            if let Some(seg) = seg {
                put(WHAT, &seg.name, repo.put_index(txn, seg.seq, &seg.bytes))?;
            }
            crate::failpoint::hit("checkpoint-indexed");
            put(WHAT, &pack.name, repo.put_pack(txn, pack.seq, pack.bytes.into()))?;
            put(WHAT, &part_seg.name, repo.put_index(txn, part_seg.seq, &part_seg.bytes))?;
            crate::failpoint::hit("checkpoint-part-stored");
            repo.checkpoint(txn, k, &record).map_err(|e| format!("cannot store a checkpoint: {e}"))?;
            crate::failpoint::hit("checkpoint-recorded");
            release.released(gate);
            Ok(true)
        }
    }
}
