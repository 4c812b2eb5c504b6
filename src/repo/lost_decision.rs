//! A commit whose decision record is damaged or lost. The record (`txn/<txn>/commit`) exists only
//! between a commit's decision and the end of its cleanup: it is what `finish` rolls a crashed
//! commit forward from. It is plain and checksummed (`CommitRequest::encode`), so damage is
//! detected, never obeyed. Both cases are handled without keys, and neither deletes an object a
//! commit may have made part of an archive:
//!
//! - a record that cannot be read: its decision cannot be carried out, and the transaction
//!   cannot be discarded either (its commit may be visible). `finish` removes only its records;
//!   every object it stored stays. If its manifest was written, they are that archive's; if not,
//!   they are orphans that `fsck` names, lists the archive of again when its root is among them
//!   (`fsck::lost`), and `fsck --prune` reclaims.
//! - a record that is gone after the commit became visible (the transaction is still begun, so
//!   it looks undecided; the client sees that the current manifest is its commit): `commit`
//!   accepts that same manifest again for the current generation, only keeping every object the
//!   transaction stored, deleting nothing and keeping the history; `finish` then removes only the
//!   records. Before, recovery took such a transaction for an undecided one and deleted what it
//!   stored, leaving the visible archive without its data.

use super::objects::ObjectRepo;
use super::CommitRequest;
use crate::backend::{ErrorKind, StoreError, StoreResult};
use crate::layout;
use std::collections::HashSet;

impl ObjectRepo {
    /// Whether committing `req` for transaction `txn` can lose nothing: it keeps every pack and
    /// index segment the transaction stored, deletes nothing and keeps the history.
    pub fn keeps_everything(&self, txn: &str, req: &CommitRequest) -> StoreResult<bool> {
        if req.deletes() || !req.keep_history {
            return Ok(false);
        }
        let kept: HashSet<String> = req
            .keep_packs
            .iter()
            .map(|p| crate::layout::pack_key(p))
            .chain(req.keep_indexes.iter().map(|i| crate::layout::segment_key(i)))
            .collect();
        let packs = self.backend.list(&crate::layout::packs_of(txn))?;
        let indexes = self.backend.list(&crate::layout::segments_of(txn))?;
        Ok(packs.iter().chain(&indexes).all(|k| kept.contains(k)))
    }

    /// `commit` of a request for the current generation `gen` whose manifest is the one stored
    /// there: the commit became visible and then lost its record. Decided again (the record is
    /// stored anew) only if it keeps everything; `None` when the manifest is another one.
    pub(super) fn redecide(&self, txn: &str, req: &CommitRequest, record: &[u8]) -> Option<StoreResult<()>> {
        if self.backend.get(&crate::layout::manifest(req.gen)).ok()? != req.manifest {
            return None;
        }
        Some((|| {
            if !self.keeps_everything(txn, req)? {
                return Err(StoreError::new(
                    ErrorKind::Permanent,
                    format!(
                        "transaction {txn}'s manifest is already current (generation {}): it may only be decided again keeping everything it stored and deleting nothing",
                        req.gen
                    ),
                ));
            }
            self.backend.put_new(&layout::commit(txn), record)?;
            super::Repository::finish(self, txn)
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Repository;

    /// Keyless: whatever a client sends, a lost or damaged decision never deletes what its
    /// transaction stored.
    #[test]
    fn a_lost_or_damaged_decision_never_deletes_what_the_transaction_stored() {
        let dir = tempfile::tempdir().unwrap();
        let r = ObjectRepo::local(dir.path().to_str().unwrap());
        let txn = "ab".repeat(16);
        r.begin(&txn, b"intent").unwrap();
        let pack = r.put_pack(&txn, 0, vec![1; 100].into()).unwrap();
        let seg = r.put_index(&txn, 0, b"segment").unwrap();
        // Its manifest became visible (generation 1), then its record was lost.
        r.backend.put_new(&crate::layout::manifest(1), b"manifest 1").unwrap();
        let dropping = CommitRequest {
            gen: 1,
            manifest: b"manifest 1".to_vec(),
            keep_indexes: vec![seg.clone()],
            keep_history: true,
            ..Default::default()
        };
        assert!(r.commit(&txn, &dropping).is_err(), "a request dropping a pack was accepted");
        let another = CommitRequest {
            manifest: b"another".to_vec(),
            keep_packs: vec![pack.clone()],
            ..dropping.clone()
        };
        assert!(
            r.commit(&txn, &another).is_err(),
            "another manifest for the current generation was accepted"
        );
        assert_eq!(r.pending().unwrap().len(), 1);
        r.commit(&txn, &CommitRequest { keep_packs: vec![pack.clone()], ..dropping }).unwrap();
        assert!(r.pending().unwrap().is_empty());
        assert!(r.pack_size(&pack).is_ok() && r.get_index(&seg).is_ok());

        // A record that fails its checksum: finish keeps everything and removes the records.
        let t2 = "cd".repeat(16);
        r.begin(&t2, b"intent").unwrap();
        let p2 = r.put_pack(&t2, 0, vec![2; 100].into()).unwrap();
        r.backend.put_new(&layout::commit(&t2), b"damaged").unwrap();
        r.finish(&t2).unwrap();
        assert!(r.pending().unwrap().is_empty());
        assert!(r.pack_size(&p2).is_ok());
    }
}
