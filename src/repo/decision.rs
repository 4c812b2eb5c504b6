//! Each transaction's decision: one object, `decided/<txn>`, created only if absent, holding
//! `commit` or `abort`. Whoever creates it first decides; everyone else reads it and obeys.
//!
//! Why it exists: on a store shared between machines (S3) the write lock is a lease, and a writer
//! paused past its lease (a suspended laptop, a stopped VM) wakes up believing it still holds it,
//! after another client's recovery took the lock and discarded the paused writer's transaction.
//! Without a decision object the woken writer's commit would find no record in its way and make
//! visible an archive whose packs were just deleted. With it: the recovery creates `abort` before
//! deleting anything, and the woken writer's commit, which must create `commit` before it writes
//! its manifest, finds `abort` and stops in one line. The other way round, a recovery that finds
//! `commit` does not discard. Two commits of one transaction (its writer's and a recovery's
//! promotion of its checkpoint) are told apart by their commit records (create-if-absent too)
//! and by the manifest generation, which is create-if-absent as well.
//!
//! Invariants: a decision is never deleted or changed (it is a tombstone: one small object per
//! transaction, kept for good, outside `txn/` so that listing pending transactions does not grow
//! with them); no manifest is written for a transaction whose decision is not `commit`; no upload
//! of a transaction is deleted before its decision is `abort`; a transaction id that has a
//! decision is used and cannot be begun again. Repositories written before decisions existed
//! have commit records without one: the first `finish` decides them (`commit`), which is what
//! their record already said.

use super::objects::ObjectRepo;
use crate::backend::{ErrorKind, StoreError, StoreResult};
use crate::layout;

/// What was decided for a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Commit,
    Abort,
    /// A decision object that holds neither (damaged): it is never guessed. Neither decision
    /// can be carried out, so the repository keeps every object the transaction stored and
    /// removes only its records (`ObjectRepo::drop_undecidable`), as for an unreadable commit
    /// record (`lost_decision`).
    Unreadable,
}

impl Decision {
    fn encode(self) -> &'static [u8] {
        match self {
            Decision::Commit => b"commit\n",
            Decision::Abort => b"abort\n",
            Decision::Unreadable => b"",
        }
    }

    fn decode(bytes: &[u8]) -> Decision {
        match bytes {
            b"commit\n" => Decision::Commit,
            b"abort\n" => Decision::Abort,
            _ => Decision::Unreadable,
        }
    }
}

/// The error of a commit that finds its transaction discarded.
pub(super) fn discarded(txn: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Permanent,
        format!(
            "transaction {txn} was discarded by another client's recovery while this one was stopped (its lock had lapsed); nothing was committed: run the command again"
        ),
    )
}

impl ObjectRepo {
    /// The decision stored for `txn`, if any.
    pub fn decision(&self, txn: &str) -> StoreResult<Option<Decision>> {
        match self.backend.get(&layout::decision(txn)) {
            Ok(b) => Ok(Some(Decision::decode(&b))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Decides `want` (`Commit` or `Abort`) for `txn` unless it is decided already: the decision
    /// in force afterwards.
    pub(super) fn decide(&self, txn: &str, want: Decision) -> StoreResult<Decision> {
        match self.backend.put_new(&layout::decision(txn), want.encode()) {
            Ok(()) => Ok(want),
            // Taken (possibly by our own earlier attempt whose answer was lost): read who won.
            Err(e) if e.kind == ErrorKind::Exists => Ok(self.decision(txn)?.unwrap_or(Decision::Unreadable)),
            Err(e) => Err(e),
        }
    }

    /// `Repository::abort`: decides `abort` unless decided, then deletes the transaction's
    /// uploads (only while it is begun) and its records.
    pub(super) fn discard(&self, txn: &str) -> StoreResult<()> {
        let finished = || {
            StoreError::new(
                ErrorKind::Exists,
                format!("transaction {txn} is decided: it is finished, not discarded"),
            )
        };
        match self.decision(txn)? {
            Some(Decision::Abort) => {}
            Some(Decision::Unreadable) => return self.drop_undecidable(txn),
            // Decided, and its commit record lost (damaged storage): nothing to carry out, and
            // nothing may be discarded: remove the records only (`lost_decision`).
            Some(Decision::Commit) if !self.exists(&layout::commit(txn))? => return self.delete_records(txn),
            Some(Decision::Commit) => return Err(finished()),
            None => {
                if self.exists(&layout::commit(txn))? {
                    // Recorded, not yet decided: it is to be finished (recovery does), not discarded.
                    return Err(finished());
                }
                if self.backend.list(&layout::records_of(txn))?.is_empty() {
                    return Ok(()); // nothing of it is stored
                }
                match self.decide(txn, Decision::Abort)? {
                    Decision::Abort => {}
                    Decision::Commit => return Err(finished()),
                    Decision::Unreadable => return self.drop_undecidable(txn),
                }
                crate::failpoint::hit("abort-decided");
            }
        }
        // Only a transaction still begun has uploads to discard: without its begin record it
        // ended (its objects may be committed data) or never started.
        if self.exists(&layout::begin(txn))? {
            self.delete_unkept(txn, &[], &[])?;
        }
        self.delete_records(txn)
    }

    /// A transaction whose decision cannot be read: keeps every object it stored, removes its
    /// records (so that the repository is not stuck on it), and says so.
    pub(super) fn drop_undecidable(&self, txn: &str) -> StoreResult<()> {
        self.delete_records(txn)?;
        Err(StoreError::new(
            ErrorKind::Permanent,
            format!(
                "the decision object {} cannot be read (the repository is damaged), so transaction {txn} was neither committed nor discarded: its records were removed and what it stored is kept; `archiver fsck` says what is affected",
                layout::decision(txn)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{CommitRequest, Repository};

    fn repo() -> (tempfile::TempDir, ObjectRepo) {
        let dir = tempfile::tempdir().unwrap();
        let r = ObjectRepo::local(dir.path().to_str().unwrap());
        (dir, r)
    }

    fn request(gen: u64, manifest: &[u8], packs: &[String]) -> CommitRequest {
        CommitRequest { gen, manifest: manifest.to_vec(), keep_packs: packs.to_vec(), ..Default::default() }
    }

    /// The paused writer: its transaction was discarded by another client's recovery (its lease
    /// had lapsed), then it wakes and commits. Before decisions existed, the commit found no
    /// record in its way and made generation 1 visible with its packs deleted.
    #[test]
    fn a_writer_woken_after_a_recovery_discarded_its_transaction_cannot_commit() {
        let (_d, r) = repo();
        let txn = "ab".repeat(16);
        r.begin(&txn, b"intent").unwrap();
        let pack = r.put_pack(&txn, 0, vec![1; 100].into()).unwrap();
        // The writer pauses here, with the commit request built. Recovery discards it.
        r.abort(&txn).unwrap();
        assert_eq!(r.decision(&txn).unwrap(), Some(Decision::Abort));
        assert!(r.pack_size(&pack).is_err(), "the abort left the pack");
        // The writer wakes. Its checks (begun, not decided) ran before the pause: replay the
        // steps after them, the record and the finish, as a woken writer would.
        let req = request(1, b"manifest 1", std::slice::from_ref(&pack));
        r.backend.put_new(&layout::commit(&txn), &req.encode()).unwrap();
        let err = r.finish(&txn).unwrap_err();
        assert!(err.msg.contains("discarded by another client's recovery"), "{err}");
        assert_eq!(r.head().unwrap().0, 0, "a manifest was written for a discarded transaction");
        // Its stray record is pending; recovery discards it, never commits it.
        let p = r.pending().unwrap();
        assert!(p.len() == 1 && !p[0].committing && p[0].checkpoint.is_none(), "{p:?}");
        r.abort(&txn).unwrap();
        assert!(r.pending().unwrap().is_empty());
        assert_eq!(r.decision(&txn).unwrap(), Some(Decision::Abort), "the tombstone is kept");
        // And the whole commit, from the start, is refused too.
        let err = r.commit(&txn, &req).unwrap_err();
        assert!(r.head().unwrap().0 == 0 && err.kind == ErrorKind::NotFound, "{err}");
    }

    /// The other order: the commit decided first, then a recovery (or a stray abort) comes.
    #[test]
    fn an_abort_after_the_commit_was_decided_discards_nothing() {
        let (_d, r) = repo();
        let txn = "cd".repeat(16);
        r.begin(&txn, b"intent").unwrap();
        let pack = r.put_pack(&txn, 0, vec![1; 100].into()).unwrap();
        r.backend
            .put_new(&layout::commit(&txn), &request(1, b"m1", std::slice::from_ref(&pack)).encode())
            .unwrap();
        assert_eq!(r.decide(&txn, Decision::Commit).unwrap(), Decision::Commit);
        let err = r.abort(&txn).unwrap_err();
        assert!(err.msg.contains("finished, not discarded"), "{err}");
        assert_eq!(r.decide(&txn, Decision::Abort).unwrap(), Decision::Commit, "a decision changed");
        r.finish(&txn).unwrap();
        assert_eq!(r.head().unwrap().0, 1);
        assert!(r.pack_size(&pack).is_ok());
        // A decided id is used: it cannot be begun again.
        assert!(r.begin(&txn, b"intent").is_err());
    }

    #[test]
    fn an_aborted_transaction_cannot_take_uploads_or_be_begun_again() {
        let (_d, r) = repo();
        let txn = "ef".repeat(16);
        r.begin(&txn, b"intent").unwrap();
        r.checkpoint(&txn, 0, b"ck").unwrap();
        // The abort was cut after its decision: the begin record is still there.
        assert_eq!(r.decide(&txn, Decision::Abort).unwrap(), Decision::Abort);
        let err = r.put_pack(&txn, 1, vec![1; 10].into()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Exists, "{err}");
        // Recovery must not promote its checkpoint: pending shows none.
        let p = r.pending().unwrap();
        assert!(p.len() == 1 && p[0].checkpoint.is_none() && p[0].checkpoint_seqs.is_empty(), "{p:?}");
        r.abort(&txn).unwrap();
        assert!(r.pending().unwrap().is_empty());
        assert!(r.begin(&txn, b"intent").is_err(), "an aborted id was begun again");
    }

    /// A store on which another client's recovery runs exactly between a writer's check that its
    /// transaction is open and its put (the writer was paused there past its lease).
    struct Interleaved {
        inner: crate::backend::memory::MemoryBackend,
        on_put: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
    }

    impl crate::backend::Backend for Interleaved {
        fn describe(&self) -> String {
            "interleaved".into()
        }
        fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
            self.inner.put(key, data)
        }
        fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
            if let Some(f) = self.on_put.lock().unwrap().take_if(|_| key.starts_with("packs/")) {
                f();
            }
            self.inner.put_new(key, data)
        }
        fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
            self.inner.get(key)
        }
        fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
            self.inner.get_range(key, offset, len)
        }
        fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
            self.inner.list(prefix)
        }
        fn delete(&self, key: &str) -> StoreResult<()> {
            self.inner.delete(key)
        }
        fn size(&self, key: &str) -> StoreResult<u64> {
            self.inner.size(key)
        }
        fn clean_partial(&self) -> StoreResult<()> {
            Ok(())
        }
    }

    /// Regression (seen in tests/s3_crash.rs): the paused writer's pack landed after the
    /// recovery's cleanup and stayed as an orphan.
    #[test]
    fn an_upload_that_lands_after_a_recovery_ended_its_transaction_is_taken_back() {
        let store = crate::backend::memory::MemoryBackend::new();
        let lock = || Box::new(crate::repo::lock::ProcessLock::default());
        let other = ObjectRepo::new(Box::new(store.clone()), lock());
        let txn = "0a".repeat(16);
        let t = txn.clone();
        let recovery: Box<dyn FnOnce() + Send> = Box::new(move || other.abort(&t).unwrap());
        let writer = ObjectRepo::new(
            Box::new(Interleaved { inner: store.clone(), on_put: std::sync::Mutex::new(Some(recovery)) }),
            lock(),
        );
        writer.begin(&txn, b"intent").unwrap();
        let err = writer.put_pack(&txn, 0, vec![1; 10].into()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
        let left: Vec<String> = crate::backend::Backend::list(&store, "").unwrap();
        assert_eq!(left, [layout::decision(&txn)], "the late upload stayed");
    }

    #[test]
    fn a_damaged_decision_is_an_error_never_a_guess() {
        let (_d, r) = repo();
        let txn = "01".repeat(16);
        r.begin(&txn, b"intent").unwrap();
        let pack = r.put_pack(&txn, 0, vec![1; 10].into()).unwrap();
        r.backend.put_new(&layout::decision(&txn), b"comm").unwrap();
        let req = request(1, b"m1", std::slice::from_ref(&pack));
        let err = r.commit(&txn, &req).unwrap_err();
        assert!(err.msg.contains("cannot be read"), "{err}");
        assert_eq!(r.head().unwrap().0, 0, "committed on a guess");
        // Not stuck: the records are gone, what it stored is kept (fsck reports it).
        assert!(r.pending().unwrap().is_empty());
        assert!(r.pack_size(&pack).is_ok(), "discarded on a guess");
        // The same from an abort.
        let t2 = "02".repeat(16);
        r.begin(&t2, b"intent").unwrap();
        let p2 = r.put_pack(&t2, 0, vec![1; 10].into()).unwrap();
        r.backend.put_new(&layout::decision(&t2), b"").unwrap();
        assert!(r.abort(&t2).unwrap_err().msg.contains("cannot be read"));
        assert!(r.pending().unwrap().is_empty() && r.pack_size(&p2).is_ok());
    }
}
