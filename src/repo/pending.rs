//! The pending transactions of an object store: every transaction that left records under
//! `txn/`, with what recovery needs (its intent, its newest checkpoint record and the numbers of
//! all of them, whether it is to be finished), read from its records and its decision
//! (`decision`): a transaction decided `abort` is reported without its checkpoints (it is only
//! ever discarded again), one decided `commit` as committing even if its record was lost.

use super::decision::Decision;
use super::objects::ObjectRepo;
use super::Pending;
use crate::backend::StoreResult;
use crate::layout::{self, Record};
use std::collections::BTreeMap;

impl ObjectRepo {
    /// `Repository::pending`: every transaction with records under `txn/`, as its records and
    /// its decision say.
    pub(super) fn list_pending(&self) -> StoreResult<Vec<Pending>> {
        let mut by_txn: BTreeMap<String, (Pending, Option<Option<u32>>)> = BTreeMap::new();
        for key in self.backend.list(layout::TXNS)? {
            let Some((txn, what)) = layout::parse(&key) else { continue };
            let (p, newest) = by_txn.entry(txn.to_string()).or_insert_with(|| (Pending::new(txn), None));
            match what {
                Record::Begin => p.intent = Some(self.backend.get(&key)?),
                Record::Commit => p.committing = true,
                Record::Checkpoint(seq) => {
                    p.checkpoint_seqs.extend(seq);
                    // `None` (format 1) sorts before every numbered record.
                    if newest.is_none_or(|n| seq > n) {
                        *newest = Some(seq);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::with_capacity(by_txn.len());
        for (txn, (mut p, newest)) in by_txn {
            match self.decision(&txn)? {
                Some(Decision::Abort) => {
                    // Discarded, its cleanup cut short (or a stray record of a writer that woke
                    // up after it): only to be discarded again, never committed.
                    p.committing = false;
                    p.checkpoint_seqs.clear();
                    out.push(p);
                    continue;
                }
                // Decided: `finish` carries it out, even if its record was lost.
                Some(Decision::Commit) => p.committing = true,
                _ => {}
            }
            p.checkpoint_seqs.sort_unstable();
            p.checkpoint = match newest {
                Some(Some(seq)) => Some(self.backend.get(&layout::checkpoint(&txn, seq))?),
                Some(None) => Some(self.backend.get(&layout::legacy_checkpoint(&txn))?),
                None => None,
            };
            out.push(p);
        }
        Ok(out)
    }
}
