//! The server's own account of what a checkpoint needs (`txn/<txn>/covers-<k>`, plain): when
//! `archiver serve` stores checkpoint `k` of a transaction it first records every ordinary pack
//! and index segment the transaction has stored, and checkpoint `k`'s own (`layout::covers`).
//! The client stores a checkpoint only after everything before it is durable, so this is at least
//! what the (sealed, unreadable to the server) checkpoint record names; `serve::guard` refuses a
//! commit of another client's transaction, signed without the delete key, that would drop any of
//! it.

use super::objects::ObjectRepo;
use crate::backend::StoreResult;
use crate::layout::{self, Record};
use std::collections::HashSet;

impl ObjectRepo {
    /// Records what of transaction `txn`'s stored objects checkpoint `seq` needs (the server's
    /// own account, `layout::covers`): one key per line, packs then segments. The client stores
    /// a checkpoint only after everything before it is durable, so this is at least what the
    /// (sealed) checkpoint record names.
    pub fn record_covers(&self, txn: &str, seq: u32) -> StoreResult<()> {
        self.open_for_upload(txn)?;
        let mut text = String::new();
        let stored = self
            .backend
            .list(&crate::layout::packs_of(txn))?
            .into_iter()
            .chain(self.backend.list(&crate::layout::segments_of(txn))?);
        for k in stored.filter(|k| layout::needed_by_checkpoint(k, seq)) {
            text.push_str(&k);
            text.push('\n');
        }
        self.put_new_same(&layout::covers(txn, seq), text.as_bytes())
    }

    /// The objects (`packs/...`, `index/...`) that the newest checkpoint of `txn` needs, by
    /// the `covers` record taken with it; None when it has no numbered checkpoint or no such
    /// record (a checkpoint stored by an older archiver, or directly into a local directory).
    pub fn covered(&self, txn: &str) -> StoreResult<Option<HashSet<String>>> {
        let newest = self
            .backend
            .list(&layout::records_of(txn))?
            .iter()
            .filter_map(|k| match layout::parse(k) {
                Some((_, Record::Checkpoint(Some(seq)))) => Some(seq),
                _ => None,
            })
            .max();
        let Some(seq) = newest else { return Ok(None) };
        match self.backend.get(&layout::covers(txn, seq)) {
            Ok(text) => Ok(Some(String::from_utf8_lossy(&text).lines().map(str::to_string).collect())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
