//! The cache's view of the repository's damage marks (`crate::damage`): a marked copy of a block
//! (id, pack) is kept in the `damaged` table, not in `blocks`, so create does not deduplicate
//! against it (the block is stored again and the file-change rows of files using it no longer
//! count as stored, so those files are read again), while readers can still find it when no
//! other copy exists (a mark is advisory: the copy is authenticated when read).
//!
//! Invariant: a marked copy is never in `blocks`. The `marks` meta value names the set of marks
//! applied (`damage::token`); a cache whose value differs from the manifest's has its blocks
//! reloaded with the new marks (`session::sync_cache`) before it is used. Clearing the blocks
//! clears the marks too.

use super::Cache;
use crate::crypto::BlockId;
use crate::pack::{Entry, Location};
use anyhow::Result;
use rusqlite::{params, OptionalExtension};

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS damaged (id BLOB NOT NULL, pack TEXT NOT NULL,
    offset INTEGER, len INTEGER, plain_len INTEGER, PRIMARY KEY (id, pack)) WITHOUT ROWID;";

impl Cache {
    /// The token of the marks applied (None: none recorded, as in a cache that predates marks).
    pub fn marks_token(&self) -> Result<Option<String>> {
        self.meta("marks")
    }

    /// Records the manifest's damage marks, named by `token`, in a cache whose blocks were just
    /// cleared: `add_pack` then keeps each marked copy out of `blocks` (whatever order the
    /// segments come in, an unmarked copy is never displaced by a marked one).
    pub fn set_marks(&self, marks: &[(BlockId, String)], token: &str) -> Result<()> {
        self.guard(|| {
            self.conn.execute("DELETE FROM damaged", [])?;
            let mut put =
                self.conn.prepare_cached("INSERT OR IGNORE INTO damaged (id, pack) VALUES (?1, ?2)")?;
            for (id, pack) in marks {
                put.execute(params![&id[..], pack])?;
            }
            Ok(())
        })?;
        self.set_meta("marks", token)
    }

    /// Forgets the marks on copies in `packs` (deleted ones) and keeps the others, with what
    /// they know of where their copies are; `token` names the marks that remain.
    pub fn forget_marks_in(&self, packs: &[String], token: &str) -> Result<()> {
        self.guard(|| {
            let mut st = self.conn.prepare_cached("DELETE FROM damaged WHERE pack = ?1")?;
            for p in packs {
                st.execute([p])?;
            }
            Ok(())
        })?;
        self.set_meta("marks", token)
    }

    /// Whether copy (`id`, `pack`) is marked damaged; records its location there if it is.
    pub(super) fn park_if_marked(&self, pack: &str, e: &Entry) -> Result<bool> {
        let mut st = self.conn.prepare_cached(
            "UPDATE damaged SET offset = ?3, len = ?4, plain_len = ?5 WHERE id = ?1 AND pack = ?2",
        )?;
        Ok(st.execute(params![&e.id[..], pack, e.offset as i64, e.len, e.plain_len])? > 0)
    }

    /// Whether any copy is marked (add_pack skips its per-entry check when none is).
    pub(super) fn any_marked(&self) -> Result<bool> {
        Ok(self.conn.query_row("SELECT EXISTS (SELECT 1 FROM damaged)", [], |r| r.get(0))?)
    }

    /// A marked copy of block `id` whose location is known: what a reader may still try when
    /// no unmarked copy exists.
    pub fn marked(&self, id: &BlockId) -> Result<Option<Location>> {
        self.guard(|| {
            let mut st = self.conn.prepare_cached(
                "SELECT pack, offset, len, plain_len FROM damaged WHERE id = ?1 AND offset IS NOT NULL LIMIT 1",
            )?;
            Ok(st
                .query_row([&id[..]], |r| {
                    Ok(Location {
                        pack: r.get(0)?,
                        offset: r.get::<_, i64>(1)? as u64,
                        len: r.get(2)?,
                        plain_len: r.get(3)?,
                    })
                })
                .optional()?)
        })
    }
}
