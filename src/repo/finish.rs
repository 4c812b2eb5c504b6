//! Carrying out a decided commit (`Repository::finish` and the end of `commit`): decide it
//! (`decision`), make its manifest visible (create-if-absent: of two commits for one generation
//! one wins), then clean up what it does not keep, the generations it supersedes (without kept
//! history) and its records. Every step is idempotent, so a crash anywhere is finished by the
//! next `finish`. It reads as little as it can (S3 bills requests): the manifest keys `commit`
//! just listed serve the generation check and the cleanup, and a manifest it just created is
//! not read back.

use super::decision::{discarded, Decision};
use super::objects::ObjectRepo;
use super::CommitRequest;
use crate::backend::{ErrorKind, StoreError, StoreResult};
use crate::layout;

impl ObjectRepo {
    /// `finish` of the commit record `rec` of `txn`, knowing the manifest keys `manifests` if
    /// they were just listed (by `commit`: one listing serves both).
    pub(super) fn finish_record(
        &self,
        txn: &str,
        rec: Vec<u8>,
        manifests: Option<Vec<String>>,
    ) -> StoreResult<()> {
        // The decision: from here on the commit is carried out, by us or by recovery. A
        // transaction discarded first (we were paused past our lease) stays discarded.
        match self.decide(txn, Decision::Commit)? {
            Decision::Commit => {}
            Decision::Abort => return Err(discarded(txn)),
            Decision::Unreadable => return self.drop_undecidable(txn),
        }
        crate::failpoint::hit("commit-decided");
        let Ok(req) = CommitRequest::decode(&rec) else {
            // A decision that cannot be read cannot be carried out: keep every object, remove
            // only the records (`lost_decision`).
            return self.delete_records(txn);
        };
        let manifests = match manifests {
            Some(m) => m,
            None => self.backend.list(layout::MANIFESTS)?,
        };
        let mut written = false;
        if current(&manifests) + 1 == req.gen {
            // The commit point: generation req.gen becomes visible.
            match self.backend.put_new(&layout::manifest(req.gen), &req.manifest) {
                Ok(()) => written = true,
                Err(e) if e.kind == ErrorKind::Exists => {}
                Err(e) => return Err(e),
            }
            crate::failpoint::hit("commit-manifest-written");
        }
        // Ours if we just created it; otherwise it must hold our manifest (a retry, recovery).
        if !written && !matches!(self.backend.get(&layout::manifest(req.gen)), Ok(m) if m == req.manifest) {
            // Another commit took this generation (under a lease: a writer woken after a recovery
            // committed its checkpoint). Its record goes; its decision stays `commit`, so nothing
            // it stored is discarded: recovery promotes its checkpoint, or keeps what it stored
            // for `fsck` to report.
            self.backend.delete(&layout::commit(txn))?;
            return Err(StoreError::new(
                ErrorKind::Permanent,
                format!("transaction {txn} lost a race for generation {}; nothing was committed", req.gen),
            ));
        }
        // Cleanup after the commit point; every step is idempotent.
        self.delete_unkept(txn, &req.keep_packs, &req.keep_indexes)?;
        self.delete_all(req.delete_packs.iter().map(|p| layout::pack_key(p)))?;
        self.delete_all(req.delete_indexes.iter().map(|i| layout::segment_key(i)))?;
        if !req.keep_history {
            // Generations below ours: all were written before our commit record was decided.
            let old = manifests.into_iter().filter(|k| layout::gen_of(k).is_some_and(|g| g < req.gen));
            self.delete_all(old)?;
        }
        crate::failpoint::hit("commit-cleaned");
        self.delete_records(txn)
    }
}

/// The current generation among manifest keys (0: none).
pub(super) fn current(manifests: &[String]) -> u64 {
    manifests.iter().filter_map(|k| layout::gen_of(k)).max().unwrap_or(0)
}
