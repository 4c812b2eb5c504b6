//! The block table's drop count: how many times block rows were removed (a re-sync dropping
//! a segment's packs, a clear before a reload). A file-change record verified at the current
//! count (`files`) names blocks that are all still in the table, because rows leave it only by
//! a drop: `create` then reuses an unchanged file without looking up each of its blocks, which
//! was a third of an unchanged run.
//!
//! Invariants: every removal counts, whoever makes it. A trigger counts each deleted row, so
//! an archiver from before this count (which knows nothing of it) cannot remove a row
//! unseen; `clear` empties the table by dropping and recreating it (no per-row trigger cost)
//! and counts that itself, in the same SQLite transaction. The count read is remembered only
//! inside a write transaction (`BEGIN IMMEDIATE`: no other connection can write) and is
//! forgotten at its end and at every drop made through this connection.

use super::Cache;
use anyhow::Result;

/// The block table and the trigger that counts its deleted rows.
pub(super) const BLOCKS: &str = "CREATE TABLE IF NOT EXISTS blocks (id BLOB PRIMARY KEY, pack INTEGER NOT NULL,
        offset INTEGER NOT NULL, len INTEGER NOT NULL, plain_len INTEGER NOT NULL,
        kind INTEGER NOT NULL, chk INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS drops (n INTEGER NOT NULL);
    INSERT INTO drops (n) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM drops);
    CREATE TRIGGER IF NOT EXISTS blocks_dropped AFTER DELETE ON blocks BEGIN UPDATE drops SET n = n + 1; END;";

impl Cache {
    /// The current drop count (see the module doc).
    pub fn drops(&self) -> Result<i64> {
        if let Some(n) = self.drops.get() {
            return Ok(n);
        }
        let n = self.guard(|| Ok(self.conn.query_row("SELECT n FROM drops", [], |r| r.get(0))?))?;
        if !self.conn.is_autocommit() {
            self.drops.set(Some(n));
        }
        Ok(n)
    }

    /// Forgets the remembered count (a transaction ended, or rows are being dropped).
    pub(super) fn forget_drops(&self) {
        self.drops.set(None);
    }

    /// Empties the block table, counted as one drop.
    pub(super) fn clear_block_table(&self) -> Result<()> {
        self.forget_drops();
        self.guard(|| {
            self.conn.execute_batch("DROP TABLE blocks;")?;
            self.conn.execute_batch(BLOCKS)?;
            self.conn.execute_batch("UPDATE drops SET n = n + 1;")?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{Entry, Kind};

    fn entry(id: u8) -> Entry {
        Entry { id: [id; 32], kind: Kind::Data, offset: 0, len: 10, plain_len: 10 }
    }

    #[test]
    fn every_removal_of_a_block_row_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
        c.begin().unwrap();
        let start = c.drops().unwrap();
        c.add_pack("s1", "p1", &[entry(1), entry(2)]).unwrap();
        c.add_pack("s2", "p2", &[entry(3)]).unwrap();
        assert_eq!(c.drops().unwrap(), start, "adding rows drops nothing");
        c.drop_segments(&["s2".to_string()]).unwrap();
        let after_drop = c.drops().unwrap();
        assert!(after_drop > start, "a dropped segment is counted");
        // Another writer knowing nothing of the count (an older archiver) deleting a row.
        c.commit().unwrap();
        c.conn.execute("DELETE FROM blocks WHERE id = ?1", [&[1u8; 32][..]]).unwrap();
        assert!(c.drops().unwrap() > after_drop, "a row deleted by plain SQL is counted");
        let before_clear = c.drops().unwrap();
        c.begin().unwrap();
        assert_eq!(c.drops().unwrap(), before_clear);
        c.clear_blocks().unwrap();
        assert!(c.drops().unwrap() > before_clear, "a clear is counted");
        assert_eq!(c.stored_len(&[2; 32]).unwrap(), None, "the clear emptied the table");
        c.add_pack("s3", "p3", &[entry(4)]).unwrap();
        assert!(c.stored_len(&[4; 32]).unwrap().is_some(), "the recreated table takes rows");
        let n = c.drops().unwrap();
        c.rollback();
        assert!(c.drops().unwrap() < n, "a rolled back clear is not counted");
        assert_eq!(c.stored_len(&[2; 32]).unwrap(), Some((10, 10)), "and the rows are back");
    }
}
