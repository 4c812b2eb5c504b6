//! The packer thread of the pipeline: appends sealed blocks to a pack, closes it when full (or for
//! a flush or a checkpoint's cut), numbers it, seals its header and hands it to an uploader.
//! Where the repository offers a file to build a pack in (`Repository::spool`, a local
//! directory), blocks are written to it as they come and no pack is held in memory.
//!
//! The gate. After a checkpoint's cut, packs closed later are held back, not uploaded, until the
//! checkpoint's record is durable (the recorder says so, `Ctrl::Released`). So when a checkpoint
//! record is written, the transaction has stored exactly the packs it names: upload bandwidth goes
//! to the cut's packs first (on a slow link the record is not queued behind later data), and
//! `archiver serve`'s own account of what a checkpoint needs (every object stored before its record,
//! `repo::covers`) is what the record keeps. Reading, sealing and filling the next pack go on
//! meanwhile; at most `HOLD` packs wait, then the packer stops taking blocks (the walk then waits
//! in `submit`, moving the checkpoint on, `Txn::submit`). A flush (the commit's, after every
//! checkpoint was recorded) opens the gate. `Ctrl::Stop` ends the thread whatever it holds.

use super::{sorted, Failure, PackMsg, Sealed, Upload, Uploads, Written};
use crate::crypto::Keys;
use crate::pack::PackBuilder;
use crate::repo::Repository;
use anyhow::{anyhow, Result};
use crossbeam_channel::{never, select, Receiver, Sender};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// Packs held back by the gate, at most.
const HOLD: usize = 2;

/// Messages from outside the block stream.
pub(super) enum Ctrl {
    /// The checkpoint whose cut answered `.0` is recorded: packs numbered from `.0` may go.
    Released(u32),
    /// A checkpoint's cut (`Pipeline::cut`), sent here because this channel is always read: the
    /// block channel is not while the gate's room is full, and the cut must not wait for that.
    Cut(u64, Sender<u32>),
    /// The pipeline is shutting down.
    Stop,
}

/// A `Flush` or `Cut` waiting for its blocks.
enum Waiter {
    Flush(Sender<Result<Written>>),
    Cut(Sender<u32>),
}

pub(super) struct Packer {
    pub keys: Arc<Keys>,
    pub repo: Arc<dyn Repository>,
    pub txn: String,
    pub up_tx: Sender<Upload>,
    pub uploads: Arc<Uploads>,
    pub failure: Arc<Failure>,
}

/// The packer's state between messages.
#[derive(Default)]
struct State {
    builder: PackBuilder,
    seq: u32,
    /// Every block numbered below `received` has arrived (`ahead`: later ones that did).
    received: u64,
    ahead: BTreeSet<u64>,
    /// Flushes and cuts in the order asked, each for a number of blocks no smaller.
    waiting: VecDeque<(u64, Waiter)>,
    /// Cuts whose checkpoint is not recorded yet (their answers): packs numbered from the first
    /// are held.
    gates: VecDeque<u32>,
    held: VecDeque<Upload>,
}

impl Packer {
    pub fn run(self, rx: Receiver<PackMsg>, ctrl: Receiver<Ctrl>) {
        let mut st = State::default();
        let closed = never();
        loop {
            // With the gate's room full, only a release (or a stop) is taken.
            let blocks = if st.held.len() < HOLD { &rx } else { &closed };
            select! {
                recv(ctrl) -> c => match c {
                    Ok(Ctrl::Released(gate)) => {
                        if st.gates.front() == Some(&gate) {
                            st.gates.pop_front();
                        }
                        self.release(&mut st);
                    }
                    Ok(Ctrl::Cut(n, reply)) => {
                        st.waiting.push_back((n, Waiter::Cut(reply)));
                        self.answer(&mut st);
                    }
                    Ok(Ctrl::Stop) | Err(_) => return,
                },
                recv(blocks) -> msg => match msg {
                    Ok(msg) => self.take(&mut st, msg),
                    Err(_) => return, // every sender is gone
                },
            }
        }
    }

    fn take(&self, st: &mut State, msg: PackMsg) {
        match msg {
            PackMsg::Blocks(blocks) => {
                for block in blocks {
                    self.add(st, block);
                    self.answer(st);
                }
            }
            PackMsg::Flush(n, reply) => {
                st.waiting.push_back((n, Waiter::Flush(reply)));
                self.answer(st);
            }
        }
    }

    fn add(&self, st: &mut State, Sealed { no, id, kind, sealed, plain_len }: Sealed) {
        st.ahead.insert(no);
        while st.ahead.remove(&st.received) {
            st.received += 1;
        }
        if self.failure.get().is_some() {
            return;
        }
        if st.builder.is_empty() && !st.builder.is_spooled() {
            match self.repo.spool() {
                Ok(Some(spool)) => st.builder = PackBuilder::spooled(spool),
                Ok(None) => {}
                Err(e) => return self.failure.set(format!("cannot store a pack: {e}")),
            }
        }
        if let Err(e) = st.builder.add(id, kind, &sealed, plain_len) {
            let name = crate::layout::pack_name(&self.txn, st.seq);
            return self.failure.set(format!("cannot write pack {name}: {e}"));
        }
        if st.builder.is_full() {
            self.close(st);
        }
    }

    /// Answers the flushes and cuts whose blocks have all arrived, in order.
    fn answer(&self, st: &mut State) {
        while st.waiting.front().is_some_and(|(n, _)| st.received >= *n) {
            let (_, waiter) = st.waiting.pop_front().expect("some");
            self.close(st);
            match waiter {
                Waiter::Flush(reply) => {
                    // Every checkpoint is recorded before a flush: nothing is held any more.
                    st.gates.clear();
                    self.release(st);
                    let _ = reply.send(self.wait_all());
                }
                Waiter::Cut(reply) => {
                    st.gates.push_back(st.seq);
                    let _ = reply.send(st.seq);
                }
            }
        }
    }

    /// Closes the pack being filled (if it holds anything): sealed, numbered, and handed over
    /// or held.
    fn close(&self, st: &mut State) {
        let b = std::mem::take(&mut st.builder);
        if b.is_empty() || self.failure.get().is_some() {
            return;
        }
        let name = crate::layout::pack_name(&self.txn, st.seq);
        let (bytes, entries) = match b.finish(&self.keys, &name) {
            Ok(built) => built,
            Err(e) => return self.failure.set(format!("cannot write pack {name}: {e}")),
        };
        let upload = Upload { seq: st.seq, name, bytes, entries };
        st.seq += 1;
        match st.gates.front() {
            Some(&gate) if upload.seq >= gate => st.held.push_back(upload),
            _ => self.hand_over(upload),
        }
    }

    /// Hands over the held packs the gate now lets through.
    fn release(&self, st: &mut State) {
        while st.held.front().is_some_and(|u| st.gates.front().is_none_or(|&g| u.seq < g)) {
            self.hand_over(st.held.pop_front().expect("some"));
        }
    }

    /// Gives a pack to the next idle uploader.
    fn hand_over(&self, upload: Upload) {
        if self.failure.get().is_some() {
            return;
        }
        self.uploads.lock().handed += 1;
        if self.up_tx.send(upload).is_err() {
            self.failure.set("the upload threads stopped unexpectedly".into());
            self.uploads.lock().handed -= 1;
        }
    }

    /// Waits until every pack handed over finished uploading; returns what was stored since the
    /// previous call, in pack order, or the first error.
    fn wait_all(&self) -> Result<Written> {
        let t = self.uploads.lock();
        let mut t =
            self.uploads.cv.wait_while(t, |t| t.finished < t.handed).unwrap_or_else(|p| p.into_inner());
        if let Some(msg) = self.failure.get() {
            return Err(anyhow!("{msg}"));
        }
        Ok(sorted(std::mem::take(&mut t.written)))
    }
}
