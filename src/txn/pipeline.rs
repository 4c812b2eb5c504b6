//! The block pipeline of a write transaction: seal workers (compress and seal, on all cores) → one
//! packer thread (appends sealed blocks to a pack, numbers it, seals its header) → up to
//! `Repository::uploads_in_flight` uploader threads (`put_pack`, several packs in flight, so a
//! slow round trip or fsync does not stall the pipeline).
//!
//! Invariants:
//! - A pack is reported (in `Written`) only after `put_pack` returned, i.e. the repository
//!   acknowledged it durably; nothing else reaches the transaction, so the cache and the index
//!   segments can only name acknowledged packs.
//! - `take_stored` hands over the packs stored so far without waiting (the transaction indexes
//!   them as they come, so what it keeps per block stays bounded; `Txn::absorb`).
//! - Blocks are numbered as submitted; seal workers finish them out of order, so the packer counts
//!   the numbers below which every block arrived, and "the first `n` blocks" means exactly those
//!   (blocks submitted after a cut may overtake blocks before it).
//! - `flush(n)` replies once the first `n` blocks have reached the packer, the partial pack was
//!   handed over, and every pack handed over so far has finished uploading: a barrier.
//! - `cut(n)` is its counterpart that does not wait (a checkpoint's): once the first `n` blocks
//!   have reached the packer, the partial pack is handed over and the reply says how many packs
//!   hold them; they are all stored once `stored_below` reaches that number.
//! - The first error stops the transaction: it is kept (later ones are dropped), every later
//!   upload is skipped, and `check`, `submit` and `flush` report it.
//! - Memory is bounded: bounded job and block channels (`2 × workers` batches each, `batch`), and
//!   the packer hands a pack over only to an idle uploader (a rendezvous channel), so at most
//!   `uploads + 1` finished packs (≤ 20 MiB each) exist besides the one being filled; none in
//!   memory where the repository spools them (a local directory: `Repository::spool`).
//! - Shutting down joins every thread, so no upload is under way once it returns (an abort after
//!   it cannot race an upload into the repository).

use crate::crypto::{BlockId, Keys};
use crate::pack::{Entry, Kind};
use crate::repo::Repository;
use anyhow::{anyhow, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

#[path = "batch.rs"]
mod batch;
#[path = "packer.rs"]
mod packer;
#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

use packer::Packer;

pub(super) struct Job {
    /// Its number in submission order (set by `Pipeline::submit`).
    no: u64,
    pub id: BlockId,
    pub kind: Kind,
    pub data: Vec<u8>,
}

/// Packs stored since the previous flush, with their entries, in pack order.
pub(super) type Written = Vec<(String, Vec<Entry>)>;

/// A sealed block on its way to the packer.
struct Sealed {
    no: u64,
    id: BlockId,
    kind: Kind,
    sealed: Vec<u8>,
    plain_len: u32,
}

enum PackMsg {
    /// A batch of sealed blocks (`batch`), in number order.
    Blocks(Vec<Sealed>),
    /// Store the partial pack once `.0` blocks have arrived, wait for every upload, then reply
    /// with what was written.
    Flush(u64, Sender<Result<Written>>),
}

/// The first error of any pipeline thread.
#[derive(Default)]
struct Failure {
    failed: AtomicBool,
    first: Mutex<Option<String>>,
}

impl Failure {
    fn set(&self, msg: String) {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(msg);
        self.failed.store(true, Ordering::SeqCst);
    }
    fn get(&self) -> Option<String> {
        if !self.failed.load(Ordering::SeqCst) {
            return None;
        }
        Some(self.first.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default())
    }
}

/// A pack on its way to the repository.
struct Upload {
    seq: u32,
    name: String,
    bytes: crate::pack::Built,
    entries: Vec<Entry>,
}

/// Uploads handed over and finished, and what they stored; guarded with `Uploads::cv`.
#[derive(Default)]
struct Tally {
    handed: u64,
    finished: u64,
    written: Vec<(u32, String, Vec<Entry>)>,
    /// Every pack numbered below this one has finished uploading (`ahead`: those above it that
    /// finished, as uploads end out of order).
    below: u32,
    ahead: std::collections::BTreeSet<u32>,
}

impl Tally {
    fn finished(&mut self, seq: u32) {
        self.finished += 1;
        self.ahead.insert(seq);
        while self.ahead.remove(&self.below) {
            self.below += 1;
        }
    }
}

#[derive(Default)]
struct Uploads {
    tally: Mutex<Tally>,
    cv: Condvar,
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct Pipeline {
    job_tx: Option<Sender<Vec<Job>>>,
    /// Blocks numbered but not sent yet (`batch`).
    batch: std::cell::RefCell<batch::Batch>,
    pack_tx: Option<Sender<PackMsg>>,
    threads: Vec<JoinHandle<()>>,
    failure: Arc<Failure>,
    uploads: Arc<Uploads>,
    /// Blocks submitted so far (the next one's number).
    numbered: std::cell::Cell<u64>,
    /// To the packer, outside the block stream (releases, stop).
    ctrl: Sender<packer::Ctrl>,
}

/// Tells the packer a checkpoint is recorded (its gate opens): held by the recorder.
pub(super) struct Release(Sender<packer::Ctrl>);

impl Release {
    /// The checkpoint whose cut answered `gate` is recorded.
    pub fn released(&self, gate: u32) {
        let _ = self.0.send(packer::Ctrl::Released(gate));
    }
}

impl Pipeline {
    pub fn start(repo: Arc<dyn Repository>, keys: Arc<Keys>, txn: String) -> Pipeline {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let (job_tx, job_rx) = bounded::<Vec<Job>>(workers * 2);
        let (pack_tx, pack_rx) = bounded::<PackMsg>(workers * 2);
        let (up_tx, up_rx) = bounded::<Upload>(0);
        let failure = Arc::new(Failure::default());
        let uploads = Arc::new(Uploads::default());
        let mut threads = Vec::new();
        for _ in 0..workers {
            let (rx, tx, keys) = (job_rx.clone(), pack_tx.clone(), keys.clone());
            threads.push(std::thread::spawn(move || seal_worker(rx, tx, keys)));
        }
        for _ in 0..repo.uploads_in_flight().max(1) {
            let (rx, repo, txn) = (up_rx.clone(), repo.clone(), txn.clone());
            let (uploads, failure) = (uploads.clone(), failure.clone());
            threads.push(std::thread::spawn(move || uploader(rx, repo, txn, uploads, failure)));
        }
        let packer = Packer {
            keys,
            repo: repo.clone(),
            txn,
            up_tx,
            uploads: uploads.clone(),
            failure: failure.clone(),
        };
        let (ctrl, ctrl_rx) = crossbeam_channel::unbounded();
        threads.push(std::thread::spawn(move || packer.run(pack_rx, ctrl_rx)));
        let numbered = Default::default();
        let (job_tx, batch) = (Some(job_tx), Default::default());
        Pipeline { job_tx, batch, pack_tx: Some(pack_tx), threads, failure, uploads, numbered, ctrl }
    }

    /// The first error of the pipeline, if any.
    pub fn check(&self) -> Result<()> {
        match self.failure.get() {
            Some(msg) => Err(anyhow!("{msg}")),
            None => Ok(()),
        }
    }

    fn dead(&self) -> anyhow::Error {
        self.check().err().unwrap_or_else(|| anyhow!("the packing thread stopped unexpectedly"))
    }

    /// The next block's number.
    fn number(&self) -> u64 {
        let no = self.numbered.get();
        self.numbered.set(no + 1);
        no
    }

    /// Sends a block to the seal workers (the transaction uses `submit_within`).
    #[cfg(test)]
    pub fn submit(&self, id: BlockId, kind: Kind, data: Vec<u8>) -> Result<()> {
        match self.submit_within(id, kind, data, None)? {
            None => Ok(()),
            Some(_) => unreachable!("no timeout"),
        }
    }

    /// `submit`, waiting at most `wait` for room: gives the data back if there was none (the
    /// packer holds packs back until a checkpoint is recorded, which the caller may have to move
    /// on first: `Txn::submit`).
    pub fn submit_within(
        &self,
        id: BlockId,
        kind: Kind,
        data: Vec<u8>,
        wait: Option<std::time::Duration>,
    ) -> Result<Option<Vec<u8>>> {
        self.check()?;
        if self.batch.borrow().full() && !self.push(wait)? {
            return Ok(Some(data));
        }
        let no = self.number();
        self.batch.borrow_mut().add(Job { no, id, kind, data });
        if self.batch.borrow().full() {
            self.push(Some(std::time::Duration::ZERO))?; // if there is room; else the next time
        }
        Ok(None)
    }

    /// Sends the batch being filled to the seal workers, waiting at most `wait` for room: false
    /// if there was none (it is kept, to be sent later). Whoever then waits for every block so
    /// far to reach the packer calls it first.
    pub fn push(&self, wait: Option<std::time::Duration>) -> Result<bool> {
        use crossbeam_channel::SendTimeoutError;
        let jobs = self.batch.borrow_mut().take();
        if jobs.is_empty() {
            return Ok(true);
        }
        let tx = self.job_tx.as_ref().expect("open");
        let sent = match wait {
            Some(wait) => tx.send_timeout(jobs, wait),
            None => tx.send(jobs).map_err(|e| SendTimeoutError::Disconnected(e.0)),
        };
        match sent {
            Ok(()) => Ok(true),
            Err(SendTimeoutError::Timeout(jobs)) => {
                self.batch.borrow_mut().restore(jobs);
                Ok(false)
            }
            Err(SendTimeoutError::Disconnected(_)) => Err(self.dead()),
        }
    }

    /// What the recorder tells the packer through when a checkpoint is recorded.
    pub fn release(&self) -> Release {
        Release(self.ctrl.clone())
    }

    /// Sends an already sealed block straight to the packer (repacking).
    pub fn submit_sealed(&self, id: BlockId, kind: Kind, sealed: Vec<u8>, plain_len: u32) -> Result<()> {
        self.check()?;
        let tx = self.pack_tx.as_ref().expect("open");
        let block = Sealed { no: self.number(), id, kind, sealed, plain_len };
        tx.send(PackMsg::Blocks(vec![block])).map_err(|_| self.dead())
    }

    /// Barrier: once the first `submitted` blocks are all in durably stored packs, returns those
    /// packs stored since the previous flush.
    pub fn flush(&self, submitted: u64) -> Result<Written> {
        self.push(None)?;
        let (tx, rx) = bounded(1);
        let pack_tx = self.pack_tx.as_ref().expect("open");
        pack_tx.send(PackMsg::Flush(submitted, tx)).map_err(|_| self.dead())?;
        rx.recv().map_err(|_| self.dead())?
    }

    /// Asks the packer to close the pack holding block `submitted` without waiting: the answer
    /// (how many packs hold the first `submitted` blocks) arrives on the returned channel, once
    /// they all reached it: the caller sends the batch being filled first (`push`).
    pub fn cut(&self, submitted: u64) -> Result<Receiver<u32>> {
        let (tx, rx) = bounded(1);
        // On the control channel, always read: the block channel may be full and not read
        // while the packer holds packs back for an earlier checkpoint.
        self.ctrl.send(packer::Ctrl::Cut(submitted, tx)).map_err(|_| self.dead())?;
        Ok(rx)
    }

    /// How many packs, counted from the first, have all finished uploading (stored, unless
    /// `check` reports a failure).
    pub fn stored_below(&self) -> u32 {
        self.uploads.lock().below
    }

    /// Waits until `stored_below` reaches `n` (not a barrier: blocks keep flowing); reports a
    /// failure of the pipeline instead.
    pub fn wait_stored(&self, n: u32) -> Result<()> {
        let mut t = self.uploads.lock();
        while t.below < n {
            self.check()?;
            // A failure may stop uploads without one finishing: look again now and then.
            let wait = std::time::Duration::from_millis(50);
            t = self.uploads.cv.wait_timeout(t, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
        drop(t);
        self.check()
    }

    /// Packs stored since the previous `take_stored` or flush, without waiting for any (not a
    /// barrier: packs still uploading are reported by a later call). In pack order.
    pub fn take_stored(&self) -> Written {
        let mut t = self.uploads.lock();
        if t.written.is_empty() {
            return Written::new();
        }
        sorted(std::mem::take(&mut t.written))
    }

    /// Stops every thread and waits for them (and so for any upload under way).
    pub fn shutdown(&mut self) {
        // Closing the job channel ends the workers; the packer ends when every sender of its
        // channel is gone, and the uploaders when the packer is.
        self.job_tx = None;
        self.pack_tx = None;
        // The packer may be holding packs back and taking no blocks: it stops on this.
        let _ = self.ctrl.send(packer::Ctrl::Stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn seal_worker(rx: Receiver<Vec<Job>>, tx: Sender<PackMsg>, keys: Arc<Keys>) {
    for jobs in rx {
        let blocks = jobs
            .into_iter()
            .map(|job| {
                let sealed = keys.seal_block(&job.id, &job.data);
                let plain_len = job.data.len() as u32;
                Sealed { no: job.no, id: job.id, kind: job.kind, sealed, plain_len }
            })
            .collect();
        if tx.send(PackMsg::Blocks(blocks)).is_err() {
            return;
        }
    }
}

fn uploader(rx: Receiver<Upload>, repo: Arc<dyn Repository>, txn: String, up: Arc<Uploads>, f: Arc<Failure>) {
    for u in rx {
        // After a failure nothing more is stored: the transaction is being stopped.
        let Upload { seq, name, bytes, entries } = u;
        let stored = match f.get() {
            Some(_) => None,
            None => {
                let put = || match bytes {
                    crate::pack::Built::Memory(bytes) => repo.put_pack(&txn, seq, bytes.into()),
                    crate::pack::Built::Spooled(spool) => repo.put_spooled(&txn, seq, spool),
                };
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(put)) {
                    Ok(Ok(name)) => {
                        crate::failpoint::hit("pack-stored");
                        Some(name)
                    }
                    Ok(Err(e)) => {
                        f.set(format!("cannot store pack {name}: {e}"));
                        None
                    }
                    Err(_) => {
                        f.set(format!("cannot store pack {name}: the upload thread panicked"));
                        None
                    }
                }
            }
        };
        let mut t = up.lock();
        if let Some(stored) = stored {
            t.written.push((seq, stored, entries));
        }
        t.finished(seq);
        up.cv.notify_all();
    }
}

fn sorted(mut written: Vec<(u32, String, Vec<Entry>)>) -> Written {
    written.sort_by_key(|(seq, _, _)| *seq);
    written.into_iter().map(|(_, name, entries)| (name, entries)).collect()
}
