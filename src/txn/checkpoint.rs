//! Checkpoints: steps "checkpoint 1" to "checkpoint 5" of the table in the module doc, taken
//! without stopping the pipeline. `Txn::checkpoint` fixes the cut (the blocks submitted so far,
//! and the archive so far as `NAME.part`) and returns at once; reading, hashing, compressing and
//! uploading go on. `advance` (on every submitted block, and `poll`) moves the checkpoint on:
//!   1. once every pack holding a block before the cut is stored (the packer closes the pack
//!      holding the last one, `Pipeline::cut`), the segment for the packs stored since the previous
//!      one, the pack and segment of `NAME.part`'s root and metadata tail, and the record are
//!      queued, in that order, to the recorder thread (`recorder`), which writes them one by one;
//!   2. once the record is durable, the cache transaction commits (invariant 1).
//!
//! Invariants:
//! - Cuts may run ahead (up to `UNDER_WAY` of them: a checkpoint takes about two pack uploads to
//!   complete, longer than the walk takes to reach the next one at small `--checkpoint-bytes`),
//!   but checkpoints complete one at a time, in order: the next one's writes are queued only once
//!   the previous one's record is durable and the cache committed it. So a crash anywhere in
//!   checkpoint k leaves checkpoint k-1 recorded, as at every protocol step before.
//! - While one is under way no other index segment is written, so when its record is durable
//!   every segment the cache's open transaction names is one the record keeps: the cache commit
//!   then says stored only what a durable record keeps. The record may keep packs stored after
//!   the cut: they are durable and indexed, and recovery keeps them.
//! - A checkpoint counts (`checkpoints`, `last_checkpoint`, the `Checkpoint` event) once its
//!   record is durable; `quiesce` lets one under way finish before a failed run decides between
//!   `NAME.part` and discarding the transaction.
//!
//! Its cost on the walk is the cut's metadata tail and root, sealed, never a wait; its writes are
//! what was stored since the previous checkpoint plus the metadata tail, and the record.

use super::commit::with_sizes;
use super::recorder::{Object, Op};
use super::root::Draft;
use super::{Txn, TxnStats};
use crate::index::Segment;
use crate::layout::{self, CHECKPOINT_INDEX, CHECKPOINT_PACK};
use crate::manifest::{ArchiveRef, Checkpoint};
use crate::pack::{Kind, PackBuilder};
use anyhow::{anyhow, Result};
use crossbeam_channel::{Receiver, TryRecvError};

/// Checkpoints cut and not yet recorded, at most; one more due waits for the oldest.
const UNDER_WAY: usize = 4;

/// The checkpoint under way.
pub(super) struct InFlight {
    /// Bytes of new data submitted before the cut (what the `Checkpoint` event reports).
    uploaded: u64,
    /// `NAME.part`'s listing; its sizes are filled in when the record is built.
    part: ArchiveRef,
    /// The transaction's counts at the cut.
    stats: TxnStats,
    stage: Stage,
}

enum Stage {
    /// Waiting for the packs holding the cut's blocks: the packer's answer (how many packs hold
    /// them), then their uploads. `tail` and `root` go in the checkpoint's own pack.
    Packs { answer: Receiver<u32>, packs: Option<u32>, tail: Vec<Vec<u8>>, root: Vec<u8> },
    /// The writes are queued as the recorder's write number `.0`.
    Recording(u64),
}

impl Txn {
    /// The number of checkpoints recorded so far (their records are durable).
    pub fn checkpoints(&self) -> u32 {
        self.checkpoints
    }

    /// Bytes of new data (plaintext of blocks the repository did not hold) submitted so far: what
    /// checkpoints and `--maxbw` count. Counted when submitted, not when packed, so the count does
    /// not lag behind the pipeline; it bounds what is uploaded (compression only shrinks it).
    pub fn uploaded(&self) -> u64 {
        self.stats.new_raw
    }

    /// Starts a checkpoint at this point: once it completes, a crash leaves the archive `draft`
    /// describes (`draft.meta` ends with the blocks of `tail`, the metadata not yet stored) to
    /// be committed by recovery as `NAME.part`. Completes the one under way first.
    pub fn checkpoint(&mut self, tail: Vec<Vec<u8>>, draft: Draft) -> Result<()> {
        if self.dry {
            return Ok(()); // a dry run stores nothing, checkpoints included
        }
        while self.inflight.len() >= UNDER_WAY {
            self.settle_oldest()?;
        }
        let (root, part) = draft.build(&self.keys, false)?;
        self.push_batch()?;
        let answer = self.pipe.cut(self.submitted)?;
        let stage = Stage::Packs { answer, packs: None, tail, root };
        self.inflight.push_back(InFlight {
            uploaded: self.uploaded(),
            part,
            stats: self.stats.clone(),
            stage,
        });
        self.advance()
    }

    /// Moves the checkpoint under way on as far as it can without waiting; writes an index
    /// segment when enough stored blocks wait for one and no checkpoint is under way.
    pub(super) fn advance(&mut self) -> Result<()> {
        self.pipe.check()?;
        self.rec.check()?;
        // The oldest checkpoint moves on; once recorded, the next one can.
        loop {
            let mut packs_stored = false;
            let mut record_durable = false;
            match self.inflight.front_mut().map(|f| &mut f.stage) {
                Some(Stage::Packs { answer, packs, .. }) => {
                    if packs.is_none() {
                        match answer.try_recv() {
                            Ok(n) => *packs = Some(n),
                            Err(TryRecvError::Empty) => {}
                            Err(TryRecvError::Disconnected) => return Err(self.packer_gone()),
                        }
                    }
                    packs_stored = packs.is_some_and(|n| self.pipe.stored_below() >= n);
                }
                Some(Stage::Recording(n)) => record_durable = self.rec.is_done(*n)?,
                None => {}
            }
            if packs_stored {
                // Taken after `stored_below` was read: the packs it counts are among them.
                self.absorb(self.pipe.take_stored());
                crate::failpoint::hit("checkpoint-flushed");
                self.queue_checkpoint()?;
            } else if record_durable {
                self.recorded()?;
            } else {
                break;
            }
        }
        let stored = self.pipe.take_stored();
        if !stored.is_empty() {
            self.absorb(stored);
        }
        if self.inflight.is_empty() && self.unindexed_blocks >= super::SEGMENT_BLOCKS {
            self.write_index(Segment::default(), false)?;
        }
        Ok(())
    }

    /// Waits until no checkpoint is under way (each is recorded, or one failed).
    pub fn settle(&mut self) -> Result<()> {
        while !self.inflight.is_empty() {
            self.settle_oldest()?;
        }
        Ok(())
    }

    /// Waits until the oldest checkpoint under way is recorded (the pipeline goes on).
    fn settle_oldest(&mut self) -> Result<()> {
        let recorded = self.checkpoints;
        while self.checkpoints == recorded && !self.inflight.is_empty() {
            match &mut self.inflight.front_mut().expect("some").stage {
                Stage::Packs { answer, packs, .. } => {
                    let n = match *packs {
                        Some(n) => Some(n),
                        None => answer.recv().ok().inspect(|&n| *packs = Some(n)),
                    };
                    match n {
                        Some(n) => self.pipe.wait_stored(n)?,
                        None => return Err(self.packer_gone()),
                    }
                }
                Stage::Recording(_) => self.rec.wait_idle()?,
            }
            self.advance()?;
        }
        Ok(())
    }

    /// The error when the packer stopped answering: the pipeline's failure, if it has one.
    fn packer_gone(&self) -> anyhow::Error {
        self.pipe.check().err().unwrap_or_else(|| anyhow!("the packing thread stopped unexpectedly"))
    }

    /// Lets a write under way finish after a failure, so that `checkpoints` and
    /// `last_checkpoint` say whether a checkpoint record is durable; nothing is written after.
    pub fn quiesce(&mut self) {
        let records = self.rec.finish();
        // Records are written in order: those stored are the oldest under way.
        while records > self.checkpoints {
            let Some(f) = self.inflight.pop_front() else { break };
            self.checkpoints += 1;
            self.last_checkpoint = Some(f.part);
        }
    }

    /// The bytes of new data before each checkpoint recorded since the previous call.
    pub fn take_recorded(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.recorded)
    }

    /// Every block before the cut is stored: queues the checkpoint's writes (step 1).
    fn queue_checkpoint(&mut self) -> Result<()> {
        let seg = self.seal_segment(Segment::default())?;
        let f = self.inflight.front_mut().expect("under way");
        let Stage::Packs { tail, root, packs, .. } = std::mem::replace(&mut f.stage, Stage::Recording(0))
        else {
            unreachable!("queued twice")
        };
        let gate = packs.expect("the cut answered");
        let k = self.checkpoints;
        let mut builder = PackBuilder::default();
        let blocks = tail.iter().map(|b| (Kind::Meta, b)).chain([(Kind::Root, &root)]);
        for (kind, data) in blocks {
            let id = self.keys.block_id(data);
            builder.add(id, kind, &self.keys.seal_block(&id, data), data.len() as u32)?;
        }
        let pack_seq = CHECKPOINT_PACK | k;
        let pack_name = layout::pack_name(&self.id, pack_seq);
        let (bytes, entries) = builder.finish_in_memory(&self.keys, &pack_name);
        let pack = Object { seq: pack_seq, bytes, name: pack_name.clone() };
        let seg_seq = CHECKPOINT_INDEX | k;
        let seg_name = layout::segment_name(&self.id, seg_seq);
        let part_seg = Segment { packs: vec![(pack_name.clone(), entries)] };
        let part_seg =
            Object { seq: seg_seq, bytes: part_seg.seal(&self.keys, &seg_name), name: seg_name.clone() };
        // Sizes: what was referenced and added before the cut; stored sizes of the blocks
        // packed since (the record keeps their packs).
        let mut stats = f.stats.clone();
        (stats.new_stored, stats.refs_stored) = (self.stats.new_stored, self.stats.refs_stored);
        f.part = with_sizes(f.part.clone(), &stats);
        let mut record = Checkpoint {
            archive: crate::manifest::Listed::Open(f.part.clone()),
            indexes: self.kept_indexes.clone(),
            packs: self.kept_packs.clone(),
        };
        record.indexes.push(seg_name);
        record.packs.push(pack_name);
        let record = record.seal(&self.keys, &self.id);
        let n = self.rec.queue(Op::Checkpoint { seg, pack, part_seg, k, record, gate })?;
        f.stage = Stage::Recording(n);
        Ok(())
    }

    /// The record is durable (step 2): the checkpoint counts, and the cache commits.
    fn recorded(&mut self) -> Result<()> {
        let f = self.inflight.pop_front().expect("under way");
        self.checkpoints += 1;
        self.last_checkpoint = Some(f.part);
        self.recorded.push(f.uploaded);
        // The repository holds everything the cache's open transaction names durably.
        self.cache.commit()?;
        self.cache.begin()?;
        crate::failpoint::hit("checkpoint-cache-committed");
        Ok(())
    }
}
