//! The cache's block index: which blocks the repository holds and where (`blocks`), grouped by
//! the pack holding them (`packs`) and the index segment that listed the pack (`segments`), so a
//! segment the repository dropped is forgotten with exactly its blocks (`drop_segments`) and a
//! re-sync reads only the segments it gained (`session`).
//!
//! Invariants: every block row carries a check value binding its id to its location
//! (`row_check`), and a row that fails it is never used: the whole cache is discarded and the
//! command stops in one line (`lookup`); lengths read back are checked against `limits` again by
//! the reader before a block is fetched. Rows are added only for blocks the repository durably
//! acknowledged, inside the write transaction's SQLite transaction (invariant 1). A copy marked
//! damaged is kept out of `blocks` (`damage`).

use super::Cache;
use crate::crypto::BlockId;
use crate::pack::{Entry, Location};
use anyhow::Result;
use rusqlite::{params, OptionalExtension};

impl Cache {
    /// Forgets every block and damage mark (before a rebuild from the repository's index).
    pub fn clear_blocks(&self) -> Result<()> {
        self.clear_block_table()?;
        self.guard(|| {
            self.conn.execute_batch(
                "DELETE FROM packs; DELETE FROM segments; DELETE FROM damaged;
                 DELETE FROM meta WHERE key = 'marks';",
            )?;
            Ok(())
        })
    }

    /// The index segments whose blocks this cache holds.
    pub fn segments(&self) -> Result<Vec<String>> {
        self.guard(|| {
            let mut st = self.conn.prepare_cached("SELECT name FROM segments")?;
            let names = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        })
    }

    /// Forgets the blocks of the packs that the segments `names` listed (the repository dropped
    /// them). Blocks are keyed by id, so finding a pack's blocks is a scan of the table: one
    /// scan for all the segments, not one per segment.
    pub fn drop_segments(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        self.guard(|| {
            self.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS dropping (id INTEGER PRIMARY KEY); DELETE FROM temp.dropping;",
            )?;
            let mut put = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO temp.dropping SELECT p.id FROM packs p JOIN segments s ON s.id = p.seg WHERE s.name = ?1",
            )?;
            for name in names {
                put.execute([name])?;
            }
            Ok(())
        })?;
        self.drop_block_rows()?;
        self.guard(|| {
            self.conn.execute_batch(
                "DELETE FROM packs WHERE id IN (SELECT id FROM temp.dropping);
                 DELETE FROM temp.dropping;",
            )?;
            let mut gone = self.conn.prepare_cached("DELETE FROM segments WHERE name = ?1")?;
            for name in names {
                gone.execute([name])?;
            }
            Ok(())
        })
    }

    /// Records that segment `segment` lists `entries` in `pack`. A pack that an earlier segment
    /// listed moves to this one (a compacting commit re-indexes surviving packs).
    pub fn add_pack(&self, segment: &str, pack: &str, entries: &[Entry]) -> Result<()> {
        let pid = self.pack_row(segment, pack)?;
        self.guard(|| {
            let mut st = self.conn.prepare_cached(
                "INSERT OR REPLACE INTO blocks (id, pack, offset, len, plain_len, kind, chk) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let marked = self.any_marked()?;
            for e in entries {
                if marked && self.park_if_marked(pack, e)? {
                    continue; // a damaged copy: not offered for dedup (`damage`)
                }
                let chk = entry_check(pack, e);
                st.execute(params![&e.id[..], pid, e.offset as i64, e.len, e.plain_len, e.kind as u8, chk])?;
            }
            Ok(())
        })
    }

    /// The row id of `pack`, recorded as listed by segment `segment` (added if new, moved to it
    /// if an earlier segment listed it).
    pub(super) fn pack_row(&self, segment: &str, pack: &str) -> Result<i64> {
        self.guard(|| {
            self.conn.execute("INSERT OR IGNORE INTO segments (name) VALUES (?1)", [segment])?;
            let seg: i64 =
                self.conn.query_row("SELECT id FROM segments WHERE name = ?1", [segment], |r| r.get(0))?;
            self.conn.execute(
                "INSERT INTO packs (name, seg) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seg = excluded.seg",
                params![pack, seg],
            )?;
            Ok(self.conn.query_row("SELECT id FROM packs WHERE name = ?1", [pack], |r| r.get(0))?)
        })
    }

    /// Where the repository holds block `id`, if it does. A row that fails its check (damage the
    /// SQLite integrity check cannot see: bytes changed inside a row) makes the whole cache
    /// suspect: its file is removed, so the next run rebuilds it, and this run stops.
    pub fn lookup(&self, id: &BlockId) -> Result<Option<Location>> {
        self.guard(|| {
        let mut st = self.conn.prepare_cached(
            "SELECT p.name, b.offset, b.len, b.plain_len, b.chk FROM blocks b JOIN packs p ON p.id = b.pack WHERE b.id = ?1",
        )?;
        let row = st
            .query_row([&id[..]], |r| {
                Ok((
                    Location {
                        pack: r.get(0)?,
                        offset: r.get::<_, i64>(1)? as u64,
                        len: r.get(2)?,
                        plain_len: r.get(3)?,
                    },
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        match row {
            Some((loc, chk)) if chk != row_check(id, &loc) => {
                self.discard();
                anyhow::bail!(
                    "the local cache {} is damaged (an entry fails its check); it was removed and is rebuilt from the repository on the next run: run the command again, or `archiver fsck`",
                    self.path.display()
                )
            }
            row => Ok(row.map(|(loc, _)| loc)),
        }
        })
    }

    /// Calls `f` with the id of every block listed, in ascending order (one read transaction).
    pub fn each_block_id(&self, mut f: impl FnMut(&BlockId) -> Result<()>) -> Result<()> {
        self.guard(|| {
            let mut st = self.conn.prepare("SELECT id FROM blocks ORDER BY id")?;
            let mut rows = st.query([])?;
            while let Some(row) = rows.next()? {
                let Ok(id) = BlockId::try_from(row.get_ref(0)?.as_blob()?) else {
                    self.discard();
                    anyhow::bail!(
                        "the local cache {} is damaged (a block id is not 32 bytes); it was removed and is rebuilt from the repository on the next run: run the command again",
                        self.path.display()
                    )
                };
                f(&id)?;
            }
            Ok(())
        })
    }

    /// Stored and plain length of a block, if the repository holds it.
    pub fn stored_len(&self, id: &BlockId) -> Result<Option<(u32, u32)>> {
        Ok(self.lookup(id)?.map(|l| (l.len, l.plain_len)))
    }

    /// Totals over every stored block: (plain bytes, stored bytes, count).
    pub fn totals(&self) -> Result<(u64, u64, u64)> {
        self.guard(|| {
            Ok(self.conn.query_row(
                "SELECT COALESCE(SUM(plain_len), 0), COALESCE(SUM(len), 0), COUNT(*) FROM blocks",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64)),
            )?)
        })
    }
}

/// A row's check value: binds a block's id to its location, so a changed byte in either is seen.
fn row_check(id: &BlockId, loc: &Location) -> i64 {
    check(id, &loc.pack, loc.offset, loc.len, loc.plain_len)
}

/// The check value of the row for entry `e` of `pack` (what `row_check` gives for its
/// location), without building a location: loads call it once per block.
pub(super) fn entry_check(pack: &str, e: &Entry) -> i64 {
    check(&e.id, pack, e.offset, e.len, e.plain_len)
}

fn check(id: &BlockId, pack: &str, offset: u64, len: u32, plain_len: u32) -> i64 {
    let mut h = blake3::Hasher::new();
    h.update(id).update(pack.as_bytes()).update(&offset.to_le_bytes());
    h.update(&len.to_le_bytes()).update(&plain_len.to_le_bytes());
    i64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::Kind;

    #[test]
    fn a_changed_row_is_seen_and_the_cache_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let e = Entry { id: [2; 32], kind: Kind::Data, offset: 7, len: 10, plain_len: 20 };
        let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
        c.add_pack("s", "p", std::slice::from_ref(&e)).unwrap();
        assert_eq!(c.stored_len(&[2; 32]).unwrap(), Some((10, 20)));
        c.conn.execute("UPDATE blocks SET offset = 8", []).unwrap();
        let err = c.lookup(&[2; 32]).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("fsck"), "{err}");
        assert!(!c.path.exists(), "the damaged cache file is still there");
    }
}
