//! Checkpoints: steps "checkpoint 1" to "checkpoint 5" of the table in the module doc. After
//! `Txn::checkpoint` returns, a crash at any point leaves the archive so far to be committed by
//! recovery as `NAME.part`. Its cost is what was stored since the previous checkpoint plus the
//! metadata tail, never the size of the archive or the repository.

use super::commit::with_sizes;
use super::root::Draft;
use super::Txn;
use crate::index::Segment;
use crate::layout::{self, CHECKPOINT_INDEX, CHECKPOINT_PACK};
use crate::manifest::Checkpoint;
use crate::pack::{Kind, PackBuilder};
use anyhow::{Context, Result};

impl Txn {
    /// The number of checkpoints recorded so far.
    pub fn checkpoints(&self) -> u32 {
        self.checkpoints
    }

    /// Bytes of new data (plaintext of blocks the repository did not hold) submitted so far: what
    /// checkpoints and `--maxbw` count. Counted when submitted, not when packed, so the count does
    /// not lag behind the pipeline; it bounds what is uploaded (compression only shrinks it).
    pub fn uploaded(&self) -> u64 {
        self.stats.new_raw
    }

    /// Makes everything so far durable and restorable as `NAME.part`, the archive `draft`
    /// describes (`draft.meta` ends with the blocks of `tail`, the metadata not yet stored).
    /// Steps, in order (invariant 1):
    ///   1. flush: every block submitted so far is in a durable pack;
    ///   2. index segment for the packs since the previous segment;
    ///   3. `tail` and the root of `NAME.part`, which only this checkpoint needs, in a pack and
    ///      segment of their own (`CHECKPOINT_PACK | k`, `CHECKPOINT_INDEX | k`), so a later
    ///      checkpoint or the commit simply drops them; they never enter the dedup set or the cache;
    ///   4. the checkpoint record, numbered `k` (the durable decision point; records are never
    ///      overwritten, recovery uses the highest-numbered one that opens);
    ///   5. only then the cache transaction commits: these blocks are now known stored.
    pub fn checkpoint(&mut self, tail: Vec<Vec<u8>>, draft: Draft) -> Result<()> {
        if self.dry {
            return Ok(()); // a dry run stores nothing, checkpoints included
        }
        self.flush()?;
        crate::failpoint::hit("checkpoint-flushed");
        self.write_index(Segment::default())?;
        crate::failpoint::hit("checkpoint-indexed");
        let k = self.checkpoints;
        let (root, part) = draft.build(&self.keys, false)?;
        let mut builder = PackBuilder::default();
        let blocks = tail.iter().map(|b| (Kind::Meta, b)).chain([(Kind::Root, &root)]);
        for (kind, data) in blocks {
            let id = self.keys.block_id(data);
            builder.add(id, kind, &self.keys.seal_block(&id, data), data.len() as u32);
        }
        let pack_seq = CHECKPOINT_PACK | k;
        let (bytes, entries) = builder.finish(&self.keys, &layout::pack_name(&self.id, pack_seq));
        let pack =
            self.repo.put_pack(&self.id, pack_seq, bytes.into()).context("cannot store a checkpoint")?;
        let seg = Segment { packs: vec![(pack.clone(), entries)] };
        let seg_seq = CHECKPOINT_INDEX | k;
        let seg_bytes = seg.seal(&self.keys, &layout::segment_name(&self.id, seg_seq));
        let seg_name =
            self.repo.put_index(&self.id, seg_seq, &seg_bytes).context("cannot store a checkpoint")?;
        crate::failpoint::hit("checkpoint-part-stored");
        let part = with_sizes(part, &self.stats);
        let mut record = Checkpoint {
            archive: crate::manifest::Listed::Open(part.clone()),
            indexes: self.kept_indexes.clone(),
            packs: self.kept_packs.clone(),
        };
        record.indexes.push(seg_name);
        record.packs.push(pack);
        self.repo
            .checkpoint(&self.id, k, &record.seal(&self.keys, &self.id))
            .context("cannot store a checkpoint")?;
        self.checkpoints += 1;
        self.last_checkpoint = Some(part);
        crate::failpoint::hit("checkpoint-recorded");
        // The repository holds everything up to here durably: the cache may say so.
        self.cache.commit()?;
        self.cache.begin()?;
        crate::failpoint::hit("checkpoint-cache-committed");
        Ok(())
    }
}
