//! A write transaction: the only module that touches both the cache and the repository, so the
//! order of durability lives here, step by step.
//!
//! Blocks flow: caller (hash, dedup) → workers (compress, seal; all cores) → packer thread (packs)
//! → uploader threads (`put_pack`, several in flight; `pipeline.rs`). `flush` is a barrier: when it
//! returns every submitted block is durably stored.
//!
//! Commit protocol (each step's durable state is what recovery starts from):
//!   1. flush: all packs durable in the repository;
//!   2. write the index segment for packs since the last checkpoint;
//!   3. `repo.commit`: commit record (decision) → manifest at gen+1 (visible) → cleanup;
//!   4. only then commit the cache transaction: blocks become "known stored" (invariant 1).
//!
//! A transaction dropped without commit is aborted: everything it uploaded is deleted.

use crate::cache::Cache;
use crate::crypto::{BlockId, Keys};
use crate::index::Segment;
use crate::manifest::Checkpoint;
use crate::manifest::{ArchiveRef, Manifest};
use crate::pack::{Entry, Kind, PackBuilder};
use crate::repo::{CommitRequest, Repository};
use crate::session::Session;
use anyhow::{Context, Result};
use pipeline::{Job, Pipeline};
use std::collections::HashMap;
use std::sync::Arc;

mod pipeline;

/// Per-block bookkeeping for blocks this transaction stores.
#[derive(Default, Clone, Copy)]
struct PendingBlock {
    /// References counted before the block's stored size was known.
    refs: u64,
    plain_len: u32,
    stored_len: Option<u32>,
}

/// Marks an error after which the repository may have changed (exit code 2, not 1).
#[derive(Debug)]
pub struct RepositoryChanged(pub String);

impl std::fmt::Display for RepositoryChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RepositoryChanged {}

/// Byte counts of what this transaction referenced and added.
#[derive(Default, Clone, Debug)]
pub struct TxnStats {
    /// Plain and stored bytes of every block referenced, counted per reference.
    pub refs_raw: u64,
    pub refs_stored: u64,
    pub new_raw: u64,
    pub new_stored: u64,
    pub new_blocks: u64,
}

pub struct Txn {
    pub id: String,
    pub base: Manifest,
    pub cache: Cache,
    repo: Arc<dyn Repository>,
    keys: Arc<Keys>,
    pipe: Pipeline,
    submitted: u64,
    pending: HashMap<BlockId, PendingBlock>,
    /// Packs stored since the last index segment.
    unindexed: Vec<(String, Vec<Entry>)>,
    kept_packs: Vec<String>,
    kept_indexes: Vec<String>,
    index_seq: u32,
    pub stats: TxnStats,
    checkpoints: u32,
    done: bool,
    /// Keep the manifest generations this commit supersedes. Always without the delete
    /// permission; a rollback keeps them too, so it can itself be undone.
    pub keep_history: bool,
}

impl Txn {
    /// Starts a transaction on a repository whose lock the caller holds (for the transaction's
    /// whole life), already recovered, with a cache that mirrors `base`.
    pub fn begin(session: &Session, base: Manifest, cache: Cache, intent: &[u8]) -> Result<Txn> {
        let id = crate::session::random_id()?;
        let sealed_intent = session.keys.seal(format!("archiver intent {id}").as_bytes(), intent);
        session.repo.begin(&id, &sealed_intent).context("cannot start a transaction")?;
        crate::failpoint::hit("txn-begun");
        cache.begin()?;
        let pipe = Pipeline::start(session.repo.clone(), session.keys.clone(), id.clone());
        Ok(Txn {
            id,
            base,
            cache,
            repo: session.repo.clone(),
            keys: session.keys.clone(),
            pipe,
            submitted: 0,
            pending: HashMap::new(),
            unindexed: Vec::new(),
            kept_packs: Vec::new(),
            kept_indexes: Vec::new(),
            index_seq: 0,
            stats: TxnStats::default(),
            checkpoints: 0,
            done: false,
            keep_history: !session.keys.access.has(crate::access::Perm::Delete),
        })
    }

    /// Whether the repository holds, or this transaction is storing, `id` (counts nothing).
    pub fn has(&self, id: &BlockId) -> Result<bool> {
        Ok(self.pending.contains_key(id) || self.cache.stored_len(id)?.is_some())
    }

    /// Whether the repository holds (or this transaction is storing) `id`; counts a reference.
    pub fn reuse(&mut self, id: &BlockId) -> Result<bool> {
        if let Some(p) = self.pending.get_mut(id) {
            self.stats.refs_raw += p.plain_len as u64;
            match p.stored_len {
                Some(len) => self.stats.refs_stored += len as u64,
                None => p.refs += 1,
            }
            return Ok(true);
        }
        if let Some((len, plain_len)) = self.cache.stored_len(id)? {
            self.stats.refs_stored += len as u64;
            self.stats.refs_raw += plain_len as u64;
            return Ok(true);
        }
        Ok(false)
    }

    /// Stores a block unless the repository already holds it. Returns its id.
    pub fn put(&mut self, kind: Kind, data: &[u8]) -> Result<BlockId> {
        let id = self.keys.block_id(data);
        self.put_with_id(kind, id, data)?;
        Ok(id)
    }

    /// `put` for a caller that already hashed `data` (`id` must be `keys.block_id(data)`).
    pub fn put_with_id(&mut self, kind: Kind, id: BlockId, data: &[u8]) -> Result<()> {
        debug_assert_eq!(id, self.keys.block_id(data));
        if !self.reuse(&id)? {
            self.submit(id, kind, data.to_vec())?;
        }
        Ok(())
    }

    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    fn submit(&mut self, id: BlockId, kind: Kind, data: Vec<u8>) -> Result<()> {
        self.pipe.check()?;
        let plain_len = data.len() as u32;
        self.pending.insert(id, PendingBlock { refs: 1, plain_len, stored_len: None });
        self.stats.refs_raw += plain_len as u64;
        self.stats.new_raw += plain_len as u64;
        self.stats.new_blocks += 1;
        self.submitted += 1;
        self.pipe.submit(Job { id, kind, data })
    }

    /// Adds an already sealed block (repacking) straight to the packer.
    pub fn put_sealed(&mut self, id: BlockId, kind: Kind, sealed: Vec<u8>, plain_len: u32) -> Result<()> {
        self.pipe.check()?;
        self.pending.insert(id, PendingBlock { refs: 0, plain_len, stored_len: None });
        self.submitted += 1;
        self.pipe.submit_sealed(id, kind, sealed, plain_len)
    }

    /// Barrier: returns once every submitted block is durably stored in a pack.
    pub fn flush(&mut self) -> Result<()> {
        let written = self.pipe.flush(self.submitted)?;
        for (_, entries) in &written {
            for e in entries {
                if let Some(p) = self.pending.get_mut(&e.id) {
                    self.stats.refs_stored += p.refs * e.len as u64;
                    p.refs = 0;
                    p.stored_len = Some(e.len);
                }
                self.stats.new_stored += e.len as u64;
            }
        }
        self.unindexed.extend(written);
        Ok(())
    }

    /// Writes an index segment for packs stored since the last one, plus `extra` (packs of
    /// earlier transactions that a compacting commit re-indexes).
    fn write_index(&mut self, extra: Segment) -> Result<()> {
        let mut seg = extra;
        let own = self.unindexed.len();
        seg.packs.extend(std::mem::take(&mut self.unindexed));
        if seg.packs.is_empty() {
            return Ok(());
        }
        let name = format!("{}-{:06x}", self.id, self.index_seq);
        let bytes = seg.seal(&self.keys, &name);
        let stored =
            self.repo.put_index(&self.id, self.index_seq, &bytes).context("cannot store an index segment")?;
        self.index_seq += 1;
        for (pack, entries) in &seg.packs {
            self.cache.add_pack(&stored, pack, entries)?;
        }
        let first_own = seg.packs.len() - own;
        self.kept_packs.extend(seg.packs[first_own..].iter().map(|(p, _)| p.clone()));
        self.kept_indexes.push(stored);
        Ok(())
    }

    /// Commits a new manifest built by `edit` from the base; returns it. `delete_*` name older
    /// packs and segments the new manifest no longer needs.
    pub fn commit(
        mut self,
        extra: Segment,
        edit: impl FnOnce(&mut Manifest, &[String], &TxnStats),
        delete_packs: Vec<String>,
        delete_indexes: Vec<String>,
    ) -> Result<Manifest> {
        // Step 1: every block durable.
        self.flush()?;
        crate::failpoint::hit("commit-flushed");
        // Step 2: index segment for what this transaction stored.
        self.write_index(extra)?;
        crate::failpoint::hit("commit-indexed");
        let mut m = self.base.clone();
        m.gen += 1;
        m.txn = self.id.clone();
        edit(&mut m, &self.kept_indexes, &self.stats);
        let sealed = m.seal(&self.keys);
        let req = CommitRequest {
            gen: m.gen,
            manifest: sealed.clone(),
            keep_packs: self.kept_packs.clone(),
            keep_indexes: self.kept_indexes.clone(),
            delete_packs,
            delete_indexes,
            keep_history: self.keep_history,
        };
        // Step 3: the repository commits (decision record, then manifest, then cleanup). From
        // here on this process must not abort: if the commit record was stored, the commit is
        // decided and recovery rolls it forward; if not, recovery discards the transaction.
        self.done = true;
        if let Err(e) = self.repo.commit(&self.id, &req) {
            self.cache.rollback();
            return Err(anyhow::Error::new(e).context(RepositoryChanged(format!(
                "commit of transaction {} did not complete; the next write command finishes or discards it",
                self.id
            ))));
        }
        // Step 4: only now may the cache say these blocks are stored. A failure here is harmless:
        // the cache keeps its old generation and is rebuilt from the repository next time.
        let synced = format!("{} {}", m.gen, blake3::hash(&sealed).to_hex());
        if self.cache.set_synced(&synced).and_then(|_| self.cache.commit()).is_err() {
            self.cache.rollback();
        }
        crate::failpoint::hit("commit-done");
        Ok(m)
    }

    /// Commits a create: the manifest gains `archive`, its sizes filled in from this transaction.
    pub fn commit_archive(self, mut archive: ArchiveRef) -> Result<Manifest> {
        self.commit(
            Segment::default(),
            move |m, new_indexes, stats| {
                archive.stats.raw = stats.refs_raw;
                archive.stats.stored = stats.refs_stored;
                archive.stats.new_raw = stats.new_raw;
                archive.stats.new_stored = stats.new_stored;
                m.insert(archive);
                m.indexes.extend_from_slice(new_indexes);
            },
            Vec::new(),
            Vec::new(),
        )
    }

    pub fn checkpoints(&self) -> u32 {
        self.checkpoints
    }

    /// Bytes of new data (plaintext of blocks the repository did not hold) submitted so far: what
    /// checkpoints and `--maxbw` count. Counted when submitted, not when packed, so the count does
    /// not lag behind the pipeline; it bounds what is uploaded (compression only shrinks it).
    pub fn uploaded(&self) -> u64 {
        self.stats.new_raw
    }

    /// Makes everything so far durable and restorable as `part`: after this returns, a crash at
    /// any point leaves `part` to be committed by recovery. Steps, in order (invariant 1):
    ///   1. flush: every block submitted so far is in a durable pack;
    ///   2. index segment for the packs since the previous segment;
    ///   3. `part_blocks` (the metadata tail and root of `part`, which only this checkpoint needs)
    ///      in a pack and segment of their own, so a later checkpoint or the commit simply drops
    ///      them; they never enter the dedup set or the cache;
    ///   4. the checkpoint record, numbered `k` (the durable decision point; records are never
    ///      overwritten, recovery uses the highest-numbered one);
    ///   5. only then the cache transaction commits: these blocks are now known stored.
    ///
    /// Cost: what was stored since the previous checkpoint, plus the metadata tail.
    pub fn checkpoint(&mut self, part_blocks: &[(Kind, Vec<u8>)], mut part: ArchiveRef) -> Result<()> {
        self.flush()?;
        crate::failpoint::hit("checkpoint-flushed");
        self.write_index(Segment::default())?;
        crate::failpoint::hit("checkpoint-indexed");
        let k = self.checkpoints;
        let pack_seq = crate::repo::records::CHECKPOINT_PACK | k;
        let mut builder = PackBuilder::default();
        for (kind, data) in part_blocks {
            let id = self.keys.block_id(data);
            builder.add(id, *kind, &self.keys.seal_block(&id, data), data.len() as u32);
        }
        let name = format!("{}/{pack_seq:08x}", self.id);
        let (bytes, entries) = builder.finish(&self.keys, &name);
        let pack =
            self.repo.put_pack(&self.id, pack_seq, bytes.into()).context("cannot store a checkpoint")?;
        let seg = Segment { packs: vec![(pack.clone(), entries)] };
        let seg_seq = crate::repo::records::CHECKPOINT_INDEX | k;
        let seg_name = format!("{}-{seg_seq:06x}", self.id);
        let seg_bytes = seg.seal(&self.keys, &seg_name);
        let seg_name =
            self.repo.put_index(&self.id, seg_seq, &seg_bytes).context("cannot store a checkpoint")?;
        crate::failpoint::hit("checkpoint-part-stored");
        part.stats.raw = self.stats.refs_raw;
        part.stats.stored = self.stats.refs_stored;
        part.stats.new_raw = self.stats.new_raw;
        part.stats.new_stored = self.stats.new_stored;
        let mut record =
            Checkpoint { archive: part, indexes: self.kept_indexes.clone(), packs: self.kept_packs.clone() };
        record.indexes.push(seg_name);
        record.packs.push(pack);
        self.repo
            .checkpoint(&self.id, k, &record.seal(&self.keys, &self.id))
            .context("cannot store a checkpoint")?;
        self.checkpoints += 1;
        crate::failpoint::hit("checkpoint-recorded");
        // The repository holds everything up to here durably: the cache may say so.
        self.cache.commit()?;
        self.cache.begin()?;
        crate::failpoint::hit("checkpoint-cache-committed");
        Ok(())
    }

    /// Ends this process's part in the transaction without committing or aborting it: what
    /// recovery then finds (the last checkpoint) decides. Used to end an archive at a checkpoint.
    pub fn suspend(mut self) {
        self.done = true;
        self.cache.rollback();
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        // No upload is under way once this returns, so the abort below cannot race one.
        self.pipe.shutdown();
        if !self.done {
            self.cache.rollback();
            // Never reached the commit and no checkpoint: undo everything this transaction
            // stored (best effort; what a failure here leaves, the next write command discards).
            // After a checkpoint, the checkpoint is the user's data: recovery commits it.
            if self.checkpoints == 0 {
                let _ = self.repo.abort(&self.id);
            }
        }
    }
}
