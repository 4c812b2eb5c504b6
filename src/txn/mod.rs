//! The transaction protocol, in one place: begin, checkpoint, commit, abort, and recovery of a
//! transaction a dead writer left (`recover`). It is the only module that touches both the cache
//! and the repository, so the order of durability lives here. `repo` stores what it is given
//! (`repo::objects` keeps the append-only rules); `layout` names every object.
//!
//! Blocks flow: caller (hash, dedup) → workers (compress, seal; all cores) → packer thread (packs)
//! → uploader threads (`put_pack`, several in flight; `pipeline`). `flush` is a barrier: when it
//! returns every submitted block is durably stored. Index segments and checkpoints' objects and
//! records are written in order by one recorder thread (`recorder`), so that neither a segment
//! nor a checkpoint stops the walk (`checkpoint`); the cache commits only once the recorder made
//! durable everything its open transaction names.
//!
//! # Steps
//!
//! Each durable step, what holds once it is done, and the failpoint (`failpoint::POINTS`; the
//! crash tests kill the process there and check what recovery makes of it):
//!
//! | step | durable afterwards | invariant kept | failpoint |
//! |---|---|---|---|
//! | `begin`: lock held, recovery done (`txn::lock`), intent record `txn/<t>/begin` | the transaction is pending | a dead writer's transaction is found by its records alone | `txn-begun` |
//! | a pack stored (`pipeline`) | pack `packs/<t>/<seq>` | a pack is reported only once the repository acknowledged it | `pack-stored` |
//! | an index segment, every `SEGMENT_BLOCKS` stored blocks (`index_stored`) | segment `index/<t>-<seq>` | segments name only stored packs; the cache learns the blocks in its open transaction only; recovery keeps the segments a checkpoint record lists and discards the rest | `segment-indexed` |
//! | checkpoint 1, the packs holding every block before the cut are stored (`Pipeline::cut`, no barrier: the walk goes on) | those packs | the cache names only acknowledged packs; checkpoint k starts only after k-1 is committed to the cache | `checkpoint-flushed` |
//! | checkpoint 2, index | segment for the packs since the previous one | segments name only stored packs | `checkpoint-indexed` |
//! | checkpoint 3, `NAME.part` root and metadata tail in a pack and segment of their own (`CHECKPOINT_PACK | k`, `CHECKPOINT_INDEX | k`) | checkpoint-only objects | they never enter the dedup set: a later checkpoint or the commit drops them | `checkpoint-part-stored` |
//! | checkpoint 4, record `txn/<t>/checkpoint-<k>` (create-if-absent) | **the checkpoint is decided**: recovery commits it as `NAME.part` | records are never overwritten; recovery uses the newest that opens | `checkpoint-recorded` |
//! | checkpoint 5, the cache commits | cache | invariant 1: the cache says stored only what a durable record keeps | `checkpoint-cache-committed` |
//! | commit 1, flush | every block | as checkpoint 1 | `commit-flushed` |
//! | commit 2, index | the last segment | as checkpoint 2 | `commit-indexed` |
//! | commit 3, commit record `txn/<t>/commit` (`repo.commit`; the request is built by `commit::request`, the only builder) | what the commit changes: recovery rolls it forward | create-if-absent: of two commits of one transaction the first record wins | `commit-recorded` |
//! | commit 3b, decision `decided/<t>` = commit (`repo::decision`, create-if-absent, never deleted) | **the commit is decided** | a decided commit owns generation `gen + 1`; a transaction decided `abort` first is never committed | `commit-decided` |
//! | commit 4, `manifest/<gen+1>` (create-if-absent) | the archive is visible | the visible commit point; a lost record is decided again (`repo::lost_decision`) | `commit-manifest-written` |
//! | commit 5, cleanup: objects not kept, older manifests (without kept history), the records | | idempotent: recovery repeats it | `commit-cleaned` |
//! | commit 6, the cache commits | cache | invariant 1 | `commit-done` |
//! | recovery: a checkpoint becomes `NAME.part` (`recover::promote`, through the same commit steps 3 to 5) | `NAME.part` visible | never over an existing archive; everything after the checkpoint is deleted | `recover-promoting` |
//! | recovery or a failed run discards a transaction: decision `decided/<t>` = abort, then its uploads, then its records | the transaction is discarded | nothing is deleted before `abort` is decided; a transaction decided `commit` is never discarded | `abort-decided` |
//!
//! A transaction dropped before its commit and without a checkpoint is aborted: everything it
//! uploaded is deleted (best effort; what is left, the next write command's recovery discards).
//! After a checkpoint the checkpoint is the user's data: recovery commits it, never the drop.
//! docs/CHECKPOINTS.md tells the same story for users.

use crate::cache::Cache;
use crate::crypto::{BlockId, Keys};
use crate::index::Segment;
use crate::manifest::{ArchiveRef, Manifest};
use crate::pack::{Entry, Kind};
use crate::repo::Repository;
use crate::session::Session;
use anyhow::{Context, Result};
use pipeline::Pipeline;
use recorder::{Object, Op, Recorder};
use std::collections::HashMap;
use std::sync::Arc;

mod checkpoint;
mod commit;
mod pipeline;
mod recorder;
pub mod recover;
mod refs;
mod root;

pub use commit::RepositoryChanged;
pub use recover::{lock, Writing};
pub use refs::{Held, Ref, Refs};
pub use root::{Draft, PART};

/// Blocks stored but not yet listed in an index segment: at this many a segment is written
/// without waiting for a checkpoint or the commit, so what the transaction keeps per new block
/// (`pending`, `unindexed`) stays bounded, and so does a segment's size (`limits::INDEX`): about
/// 700 KB sealed, which is what every command reading the index holds at a time.
const SEGMENT_BLOCKS: usize = 1 << 14;

/// How long a submit waits for room in the pipeline before moving checkpoints on and trying again.
const ROOM_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// Per-block bookkeeping for blocks this transaction stores, from their submission until an
/// index segment lists them (then the cache answers for them).
#[derive(Default, Clone, Copy)]
struct PendingBlock {
    /// References counted before the block's stored size was known.
    refs: u64,
    plain_len: u32,
    stored_len: Option<u32>,
}

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
    /// Writes segments, checkpoint objects and records, in order.
    rec: Recorder,
    /// The checkpoints under way, oldest first (`checkpoint`).
    inflight: std::collections::VecDeque<checkpoint::InFlight>,
    /// New-data counts of checkpoints recorded but not yet reported (`take_recorded`).
    recorded: Vec<u64>,
    submitted: u64,
    pending: HashMap<BlockId, PendingBlock>,
    /// File-change records waiting for their blocks to be indexed (`refs`).
    waiting: refs::Queue,
    /// Packs stored since the last index segment, and how many blocks they hold.
    unindexed: Vec<(String, Vec<Entry>)>,
    unindexed_blocks: usize,
    /// Packs of earlier transactions to list in this one's next segment (`reindex`).
    reindexed: Segment,
    reindexed_blocks: usize,
    kept_packs: Vec<String>,
    kept_indexes: Vec<String>,
    index_seq: u32,
    pub stats: TxnStats,
    checkpoints: u32,
    /// The archive the last checkpoint recorded (`NAME.part`).
    pub last_checkpoint: Option<ArchiveRef>,
    done: bool,
    /// Keep the manifest generations this commit supersedes. Always without the delete
    /// permission; a rollback keeps them too, so it can itself be undone.
    pub keep_history: bool,
    /// A dry run (`create --dry-run`): blocks are counted, never sealed or stored, and nothing
    /// is written to the repository; the cache transaction is rolled back at the end.
    dry: bool,
}

impl Txn {
    /// A transaction that stores nothing, for `create --dry-run`: it consults the cache as a
    /// real one does and counts what would be new. It writes nothing to the repository (no
    /// record, no lock needed), and its cache changes are rolled back when it is dropped.
    pub fn dry(session: &Session, base: Manifest, cache: Cache) -> Result<Txn> {
        Txn::new(session, base, cache, "dry-run".into(), true)
    }

    /// Starts a transaction on a repository whose lock the caller holds (for the transaction's
    /// whole life), already recovered, with a cache that mirrors `base`.
    pub fn begin(session: &Session, base: Manifest, cache: Cache, intent: &[u8]) -> Result<Txn> {
        let id = crate::process::random_id()?;
        // What the transaction does names an archive: only readers see it (format 2).
        let sealed_intent = session.keys.seal_reader(&intent_ad(&id), intent);
        session.repo.begin(&id, &sealed_intent).context("cannot start a transaction")?;
        crate::failpoint::hit("txn-begun");
        Txn::new(session, base, cache, id, false)
    }

    /// The transaction `id` with its cache transaction begun and its upload pipeline started.
    fn new(session: &Session, base: Manifest, cache: Cache, id: String, dry: bool) -> Result<Txn> {
        cache.begin()?;
        // Format 2: this transaction's own ephemeral key seals its blocks and references.
        let keys = Arc::new(session.keys.for_transaction());
        let pipe = Pipeline::start(session.repo.clone(), keys.clone(), id.clone());
        let rec = Recorder::start(session.repo.clone(), id.clone(), pipe.release());
        Ok(Txn {
            id: id.clone(),
            base,
            cache,
            repo: session.repo.clone(),
            keys,
            pipe,
            rec,
            inflight: Default::default(),
            recorded: Vec::new(),
            submitted: 0,
            pending: HashMap::new(),
            waiting: Default::default(),
            unindexed: Vec::new(),
            unindexed_blocks: 0,
            reindexed: Segment::default(),
            reindexed_blocks: 0,
            kept_packs: Vec::new(),
            kept_indexes: Vec::new(),
            index_seq: 0,
            stats: TxnStats::default(),
            checkpoints: 0,
            last_checkpoint: None,
            done: false,
            keep_history: dry || !session.access.has(crate::access::Perm::Delete),
            dry,
        })
    }

    /// Stores a block unless the repository already holds it. Returns its id.
    pub fn put(&mut self, kind: Kind, data: &[u8]) -> Result<BlockId> {
        let id = self.keys.block_id(data);
        self.put_with_id(kind, id, data)?;
        Ok(id)
    }

    /// `put` for a caller that already hashed `data` (`id` must be `keys.block_id(data)`).
    /// Says where the block is held.
    pub fn put_with_id(&mut self, kind: Kind, id: BlockId, data: &[u8]) -> Result<Ref> {
        debug_assert_eq!(id, self.keys.block_id(data));
        match self.reference(&id)? {
            Some(r) => Ok(r),
            None => self.submit(id, kind, data.to_vec()).map(|_| Ref::Storing),
        }
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
        if self.dry {
            return Ok(());
        }
        self.submitted += 1;
        // While the packer holds packs back for a checkpoint, it may take no blocks until that
        // checkpoint is recorded, which only this thread can move on (`advance`): never wait
        // for room without doing so.
        let mut data = data;
        while let Some(back) = self.pipe.submit_within(id, kind, data, Some(ROOM_WAIT))? {
            data = back;
            self.advance()?;
        }
        self.index_stored()
    }

    /// Sends the pipeline's batch being filled on, moving checkpoints on while there is no room
    /// for it (as `submit` does): before anything waits for every block so far to be packed.
    fn push_batch(&mut self) -> Result<()> {
        while !self.pipe.push(Some(ROOM_WAIT))? {
            self.advance()?;
        }
        Ok(())
    }

    /// Takes the packs stored so far and, once they hold `SEGMENT_BLOCKS` blocks, indexes them
    /// in a segment: their blocks then live in the cache's open transaction, not in `pending`.
    /// Moves a checkpoint under way on (`advance`).
    fn index_stored(&mut self) -> Result<()> {
        self.advance()
    }

    /// Moves a checkpoint under way on and reports the checkpoints recorded since the previous
    /// call (`take_recorded`); never waits. For a caller that may submit nothing for a while.
    pub fn poll(&mut self) -> Result<Vec<u64>> {
        if !self.dry {
            self.advance()?;
        }
        Ok(self.take_recorded())
    }

    /// Adds an already sealed block (repacking) straight to the packer.
    pub fn put_sealed(&mut self, id: BlockId, kind: Kind, sealed: Vec<u8>, plain_len: u32) -> Result<()> {
        self.pipe.check()?;
        self.pending.insert(id, PendingBlock { refs: 0, plain_len, stored_len: None });
        self.submitted += 1;
        self.pipe.submit_sealed(id, kind, sealed, plain_len)?;
        self.index_stored()
    }

    /// Lists `entries` of `pack`, a pack of an earlier transaction, in this transaction's index
    /// segments: a delete that replaces a segment keeps the packs of it that it did not change.
    /// Segments are written as these fill, at most `SEGMENT_BLOCKS` blocks of them each.
    pub fn reindex(&mut self, pack: String, entries: Vec<Entry>) -> Result<()> {
        self.reindexed_blocks += entries.len();
        self.reindexed.packs.push((pack, entries));
        if self.reindexed_blocks >= SEGMENT_BLOCKS {
            let seg = std::mem::take(&mut self.reindexed);
            self.reindexed_blocks = 0;
            self.write_index(seg, true)?;
        }
        Ok(())
    }

    /// Barrier: returns once every submitted block is durably stored in a pack.
    pub fn flush(&mut self) -> Result<()> {
        self.push_batch()?;
        let written = self.pipe.flush(self.submitted)?;
        self.absorb(written);
        Ok(())
    }

    /// Counts what stored packs hold and queues them for the next index segment.
    fn absorb(&mut self, written: pipeline::Written) {
        for (_, entries) in &written {
            for e in entries {
                if let Some(p) = self.pending.get_mut(&e.id) {
                    self.stats.refs_stored += p.refs * e.len as u64;
                    p.refs = 0;
                    p.stored_len = Some(e.len);
                }
                self.stats.new_stored += e.len as u64;
            }
            self.unindexed_blocks += entries.len();
        }
        self.unindexed.extend(written);
    }

    /// Queues an index segment for packs stored since the last one, plus `extra` (packs of
    /// earlier transactions that a compacting commit re-indexes), to the recorder. `quiet`: not
    /// the failpoint of a segment written between checkpoints.
    fn write_index(&mut self, extra: Segment, quiet: bool) -> Result<()> {
        if let Some(seg) = self.seal_segment(extra)? {
            self.rec.queue(Op::Segment { seg, quiet })?;
        }
        Ok(())
    }

    /// Seals the segment `write_index` describes (none if it lists nothing) and does all its
    /// bookkeeping at once: the cache's open transaction learns its blocks, which leave
    /// `pending`, and the next checkpoint record and the commit keep it. The cache commits only
    /// once the recorder stored it.
    fn seal_segment(&mut self, extra: Segment) -> Result<Option<Object>> {
        let mut seg = extra;
        let own = self.unindexed.len();
        seg.packs.extend(std::mem::take(&mut self.unindexed));
        self.unindexed_blocks = 0;
        if seg.packs.is_empty() {
            return Ok(None);
        }
        let seq = self.index_seq;
        let stored = crate::layout::segment_name(&self.id, seq);
        let bytes = seg.seal(&self.keys, &stored);
        self.index_seq += 1;
        for (pack, entries) in &seg.packs {
            self.cache.add_pack(&stored, pack, entries)?;
        }
        let first_own = seg.packs.len() - own;
        // The cache's open transaction now answers for these blocks: `pending` lets them go.
        for (_, entries) in &seg.packs[first_own..] {
            for e in entries {
                self.pending.remove(&e.id);
            }
        }
        self.indexed(&seg.packs[first_own..])?;
        self.kept_packs.extend(seg.packs[first_own..].iter().map(|(p, _)| p.clone()));
        self.kept_indexes.push(stored.clone());
        Ok(Some(Object { seq, bytes, name: stored }))
    }

    /// Ends this process's part in the transaction without committing or aborting it: what
    /// recovery then finds (the last checkpoint) decides. Used to end an archive at a checkpoint.
    pub fn suspend(mut self) {
        self.pipe.shutdown();
        self.quiesce();
        self.done = true;
        self.cache.rollback();
    }
}

/// What a transaction's intent record is sealed to: its id.
fn intent_ad(txn: &str) -> Vec<u8> {
    format!("archiver intent {txn}").into_bytes()
}

impl Drop for Txn {
    fn drop(&mut self) {
        // No upload is under way once this returns, so the abort below cannot race one, and a
        // checkpoint record queued is durable or failed: whether one exists decides below.
        self.pipe.shutdown();
        self.quiesce();
        if self.dry {
            self.cache.rollback();
            return;
        }
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
