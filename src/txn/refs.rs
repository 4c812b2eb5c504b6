//! References to blocks: whether the repository holds a block (in the cache's block index, or
//! stored by this transaction), counted per reference; and the file-change records of files this
//! transaction read, written verified (`cache::Verified`) once every block they name is in the
//! block index, so the next run reuses those files without a lookup per block.
//!
//! Invariants: a record is stamped verified at drop count `n` only if every one of its blocks
//! has a row in the cache's block table when it is written, at count `n`: a block found there
//! while the file was read, with no drop since (the count did not move), or one this
//! transaction stored whose index segment just put it there (`seal_segment`), in the same cache
//! transaction as the record, so no commit can keep the record without the rows. A record that
//! cannot be stamped (a drop since its read began, too many waiting, the end of the
//! transaction) is written as before, unverified, and looked up block by block when next used.

use super::Txn;
use crate::cache::{FileRecord, Verified};
use crate::crypto::BlockId;
use crate::pack::Entry;
use anyhow::Result;
use std::collections::{HashMap, VecDeque};

/// Records waiting for their blocks to be indexed, at most: more are written unverified, the
/// oldest first (each waits at most about `SEGMENT_BLOCKS` stored blocks, one segment).
const WAITING: usize = 1 << 16;

/// Whether the repository holds every block of a list (`Txn::reuse_all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Not all of them.
    No,
    /// All, in the block index; their stored (sealed) lengths add up to this.
    Indexed(u64),
    /// All, some of them stored by this transaction (not yet in the index).
    Storing,
}

/// Where a block referenced is (`Txn::put_with_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref {
    /// In the block index, stored (sealed) in this many bytes.
    Indexed(u32),
    /// Stored by this transaction, not yet in the index.
    Storing,
}

/// What a file being read references, as `put_with_id` found each block (`Txn::refs` starts
/// one): the stored size of those in the index, the ids of the others.
#[derive(Debug, Default)]
pub struct Refs {
    /// The drop count when the read began.
    drops: i64,
    stored: u64,
    storing: Vec<BlockId>,
}

impl Refs {
    pub fn add(&mut self, id: BlockId, r: Ref) {
        match r {
            Ref::Indexed(len) => self.stored += len as u64,
            Ref::Storing => self.storing.push(id),
        }
    }
}

/// A record whose blocks `waiting` are not indexed yet.
pub(super) struct Waiting {
    key: Vec<u8>,
    rec: FileRecord,
    drops: i64,
    stored: u64,
    waiting: Vec<BlockId>,
}

/// The records waiting, oldest first.
pub(super) type Queue = VecDeque<Waiting>;

impl Txn {
    /// Whether the repository holds (or this transaction is storing) `id`; counts a reference.
    pub fn reuse(&mut self, id: &BlockId) -> Result<bool> {
        Ok(self.reference(id)?.is_some())
    }

    /// Where `id` is held, if it is; counts a reference.
    pub(super) fn reference(&mut self, id: &BlockId) -> Result<Option<Ref>> {
        if let Some(p) = self.pending.get_mut(id) {
            self.stats.refs_raw += p.plain_len as u64;
            match p.stored_len {
                Some(len) => self.stats.refs_stored += len as u64,
                None => p.refs += 1,
            }
            return Ok(Some(Ref::Storing));
        }
        if let Some((len, plain_len)) = self.cache.stored_len(id)? {
            self.stats.refs_stored += len as u64;
            self.stats.refs_raw += plain_len as u64;
            return Ok(Some(Ref::Indexed(len)));
        }
        Ok(None)
    }

    /// Counts a reference to every block of `blocks` if the repository holds (or this
    /// transaction is storing) all of them, and says so; counts nothing otherwise. One lookup
    /// per block (an unchanged file's block list, `has` then `reuse`, took two).
    pub fn reuse_all(&mut self, blocks: &[(BlockId, u32)]) -> Result<Held> {
        let mut stored = Vec::with_capacity(blocks.len());
        for (id, _) in blocks {
            match self.pending.contains_key(id) {
                true => stored.push(None),
                false => match self.cache.stored_len(id)? {
                    Some(lens) => stored.push(Some(lens)),
                    None => return Ok(Held::No),
                },
            }
        }
        let mut indexed = Some(0u64);
        for ((id, _), lens) in blocks.iter().zip(stored) {
            match lens {
                Some((len, plain_len)) => {
                    self.stats.refs_stored += len as u64;
                    self.stats.refs_raw += plain_len as u64;
                    indexed = indexed.map(|n| n + len as u64);
                }
                None => {
                    self.reuse(id)?;
                    indexed = None;
                }
            }
        }
        Ok(indexed.map_or(Held::Storing, Held::Indexed))
    }

    /// Counts the references of a file whose blocks (`raw` bytes, `stored` sealed) are all
    /// still held by its file-change record's verification (`Cache::still_held`).
    pub fn reuse_verified(&mut self, raw: u64, stored: u64) {
        self.stats.refs_raw += raw;
        self.stats.refs_stored += stored;
    }

    /// Starts counting what a file about to be read references (`Refs::add`).
    pub fn refs(&self) -> Result<Refs> {
        Ok(Refs { drops: self.cache.drops()?, ..Refs::default() })
    }

    /// Records file `key` as `rec`, read by this transaction with references `refs`: verified
    /// now if every block is in the index, else once the index segment listing the last of them
    /// is written (`seal_segment`).
    pub fn record_read(&mut self, key: &[u8], rec: FileRecord, refs: Refs) -> Result<()> {
        let Refs { drops, mut stored, storing } = refs;
        let mut waiting = Vec::new();
        for id in storing {
            if self.pending.contains_key(&id) {
                waiting.push(id);
                continue;
            }
            // Indexed by a segment written while the file was read.
            match self.cache.stored_len(&id)? {
                Some((len, _)) => stored += len as u64,
                None => return self.cache.put_file(key, &rec),
            }
        }
        let w = Waiting { key: key.to_vec(), rec, drops, stored, waiting };
        if w.waiting.is_empty() {
            return self.write_record(w);
        }
        if self.dry {
            // A dry run indexes nothing (and rolls the cache back): unverified.
            return self.cache.put_file(key, &w.rec);
        }
        if self.waiting.len() >= WAITING {
            let old = self.waiting.pop_front().expect("full");
            self.cache.put_file(&old.key, &old.rec)?;
        }
        self.waiting.push_back(w);
        Ok(())
    }

    /// The blocks of `packs` (this transaction's) are now in the cache's block table: writes the
    /// records that waited only for them, verified.
    pub(super) fn indexed(&mut self, packs: &[(String, Vec<Entry>)]) -> Result<()> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        let lens: HashMap<&BlockId, u32> =
            packs.iter().flat_map(|(_, entries)| entries.iter().map(|e| (&e.id, e.len))).collect();
        let mut still = VecDeque::with_capacity(self.waiting.len());
        for mut w in std::mem::take(&mut self.waiting) {
            w.waiting.retain(|id| match lens.get(id) {
                Some(&len) => {
                    w.stored += len as u64;
                    false
                }
                None => true,
            });
            match w.waiting.is_empty() {
                true => self.write_record(w)?,
                false => still.push_back(w),
            }
        }
        self.waiting = still;
        Ok(())
    }

    /// Writes every record still waiting, unverified (the end of the transaction).
    pub(super) fn write_waiting(&mut self) -> Result<()> {
        while let Some(w) = self.waiting.pop_front() {
            self.cache.put_file(&w.key, &w.rec)?;
        }
        Ok(())
    }

    /// Writes a record whose blocks are all in the block table: verified, unless a drop since
    /// its read began may have taken one out.
    fn write_record(&mut self, w: Waiting) -> Result<()> {
        assert!(w.waiting.is_empty(), "a record stamped before its blocks are indexed");
        let n = self.cache.drops()?;
        let verified = (n == w.drops).then_some(Verified { drops: n, stored: w.stored });
        self.cache.put_file(&w.key, &FileRecord { verified, ..w.rec })
    }
}
