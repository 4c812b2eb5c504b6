//! The end of a transaction: its commit (steps "commit 1" to "commit 6" of the table in the
//! module doc), and `request`, the one builder of the commit requests a client sends: `Txn::commit`
//! uses it, and so does recovery, to promote a checkpoint and to decide again a visible commit whose
//! record was lost. The repository keeps exactly what a request keeps of the transaction's own
//! objects and deletes the rest, so who builds a request decides what survives: one builder.

use super::{Txn, TxnStats};
use crate::index::Segment;
use crate::manifest::{ArchiveRef, Manifest};
use crate::repo::CommitRequest;
use anyhow::Result;

/// Marks an error after which the repository may have changed (exit code 2, not 1).
#[derive(Debug)]
pub struct RepositoryChanged(pub String);

impl std::fmt::Display for RepositoryChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RepositoryChanged {}

/// Packs and index segments, by name.
#[derive(Default)]
pub(super) struct Objects {
    pub packs: Vec<String>,
    pub indexes: Vec<String>,
}

/// The commit request making `manifest` (sealed, of generation `gen`) current. Of the
/// transaction's own objects the repository keeps exactly `keep`; `delete` names older objects
/// the new manifest no longer needs. `keep_history`: older manifest generations stay.
pub(super) fn request(
    gen: u64,
    manifest: Vec<u8>,
    keep: Objects,
    delete: Objects,
    keep_history: bool,
) -> CommitRequest {
    CommitRequest {
        gen,
        manifest,
        keep_packs: keep.packs,
        keep_indexes: keep.indexes,
        delete_packs: delete.packs,
        delete_indexes: delete.indexes,
        keep_history,
    }
}

impl Txn {
    /// Commits a new manifest built by `edit` from the base; returns it. `delete_*` name older
    /// packs and segments the new manifest no longer needs.
    pub fn commit(
        mut self,
        extra: Segment,
        edit: impl FnOnce(&mut Manifest, &[String], &TxnStats),
        delete_packs: Vec<String>,
        delete_indexes: Vec<String>,
    ) -> Result<Manifest> {
        // Step 1: every block durable (and a checkpoint under way recorded first).
        self.settle()?;
        self.flush()?;
        crate::failpoint::hit("commit-flushed");
        // Step 2: index segment for what this transaction stored (and re-indexes).
        let mut extra = extra;
        extra.packs.append(&mut self.reindexed.packs);
        self.write_index(extra, true)?;
        self.write_waiting()?;
        self.rec.wait_idle()?;
        crate::failpoint::hit("commit-indexed");
        let mut m = self.base.clone();
        m.gen += 1;
        m.txn = self.id.clone();
        edit(&mut m, &self.kept_indexes, &self.stats);
        let sealed = m.seal(&self.keys);
        let keep = Objects { packs: self.kept_packs.clone(), indexes: self.kept_indexes.clone() };
        let delete = Objects { packs: delete_packs, indexes: delete_indexes };
        let req = request(m.gen, sealed.clone(), keep, delete, self.keep_history);
        // Steps 3 to 5: the repository commits (decision record, then manifest, then cleanup).
        // From here on this process must not abort: if the commit record was stored, the commit
        // is decided and recovery rolls it forward; if not, recovery discards the transaction.
        self.done = true;
        if let Err(e) = self.repo.commit(&self.id, &req) {
            self.cache.rollback();
            return Err(anyhow::Error::new(e).context(RepositoryChanged(format!(
                "commit of transaction {} did not complete; the next write command finishes or discards it",
                self.id
            ))));
        }
        // Step 6: only now may the cache say these blocks are stored. A failure here is harmless:
        // the cache keeps its old generation and is rebuilt from the repository next time.
        let synced = format!("{} {}", m.gen, blake3::hash(&sealed).to_hex());
        if self.cache.set_synced(&synced).and_then(|_| self.cache.commit()).is_err() {
            self.cache.rollback();
        }
        crate::failpoint::hit("commit-done");
        Ok(m)
    }

    /// Commits a create: stores the root of complete archive `name` (`root::build`) and adds it to
    /// the manifest, its sizes filled in from this transaction.
    pub fn commit_archive(mut self, draft: super::root::Draft) -> Result<Manifest> {
        let (root, archive) = draft.build(&self.keys, true)?;
        self.put(crate::pack::Kind::Root, &root)?;
        self.commit(
            Segment::default(),
            move |m, new_indexes, stats| {
                m.insert(with_sizes(archive, stats));
                m.indexes.extend_from_slice(new_indexes);
            },
            Vec::new(),
            Vec::new(),
        )
    }
}

/// `archive` with the sizes this transaction referenced and added.
pub(super) fn with_sizes(mut archive: ArchiveRef, stats: &TxnStats) -> ArchiveRef {
    archive.stats.raw = stats.refs_raw;
    archive.stats.stored = stats.refs_stored;
    archive.stats.new_raw = stats.new_raw;
    archive.stats.new_stored = stats.new_stored;
    archive
}
