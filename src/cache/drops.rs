//! The block table's drops: which block rows left it, and when. Rows leave the table only by a
//! drop (`drop_block_rows`: a re-sync or a delete forgetting a segment's packs; `clear`: emptying
//! it before a reload), each counted (`drops.n`) and, up to `LOG_LIMIT` ids, logged with the count
//! it took them out at (`dropped`). A file-change record verified at count V (all its blocks were
//! in the table then: `files`) still has them all if no drop since V took one of them out: the
//! same count, or none of its ids in the log after V. `create` then reuses an unchanged file
//! without looking up each of its blocks (a third of an unchanged run), also after a nightly
//! `delete` that dropped other blocks.
//!
//! Invariants: no code path removes a block row except through this file (a test searches the
//! sources for others). The log covers every drop after `drops.horizon`: a drop too large to log
//! empties the log and moves the horizon to its count, as a clear does; a record verified before
//! the horizon is looked up again. Counts only grow. What is remembered in memory (the count,
//! the log) is kept only inside a write transaction (`BEGIN IMMEDIATE`: no other connection can
//! write) and forgotten at its end and at every drop through this connection. Older archivers
//! use schema 2's file (`cache-v2.sqlite`) and never write this one.

use super::{Cache, Verified};
use crate::crypto::BlockId;
use anyhow::Result;
use std::collections::HashMap;

/// The drop count and the log.
pub(super) const TABLES: &str =
    "CREATE TABLE IF NOT EXISTS drops (n INTEGER NOT NULL, horizon INTEGER NOT NULL);
    INSERT INTO drops (n, horizon) SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM drops);
    CREATE TABLE IF NOT EXISTS dropped (id BLOB PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;";

/// Ids kept in the log at most (about 4 MB in memory when a create loads it).
const LOG_LIMIT: i64 = 65_536;

/// The log as loaded: the count it was read at, its horizon, and each id's last drop count.
pub(super) struct Log {
    n: i64,
    horizon: i64,
    ids: HashMap<BlockId, i64>,
}

impl Cache {
    /// The current drop count.
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

    /// Whether every block of `blocks`, all in the table at `v.drops`, still is: no drop since
    /// took one out (false also when that cannot be told: before the horizon).
    pub fn still_held(&self, v: Verified, blocks: &[(BlockId, u32)]) -> Result<bool> {
        let n = self.drops()?;
        if v.drops == n {
            return Ok(true);
        }
        if v.drops > n {
            return Ok(false);
        }
        let mut log = self.drop_log.borrow_mut();
        if log.as_ref().is_none_or(|l| l.n != n) {
            *log = Some(self.read_log(n)?);
        }
        let log = log.as_ref().expect("just read");
        Ok(v.drops >= log.horizon
            && blocks.iter().all(|(id, _)| log.ids.get(id).is_none_or(|&at| at <= v.drops)))
    }

    fn read_log(&self, n: i64) -> Result<Log> {
        self.guard(|| {
            let horizon = self.conn.query_row("SELECT horizon FROM drops", [], |r| r.get(0))?;
            let mut st = self.conn.prepare("SELECT id, n FROM dropped")?;
            let mut ids = HashMap::new();
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let id: Vec<u8> = r.get(0)?;
                // A malformed id (damage) cannot name a block: it is dropped from view, and with
                // it nothing is trusted before its count.
                match BlockId::try_from(id.as_slice()) {
                    Ok(id) => ids.insert(id, r.get(1)?),
                    Err(_) => return Ok(Log { n, horizon: n, ids: HashMap::new() }),
                };
            }
            Ok(Log { n, horizon, ids })
        })
    }

    /// Forgets what was remembered (a transaction ended, or rows are being dropped).
    pub(super) fn forget_drops(&self) {
        self.drops.set(None);
        self.drop_log.borrow_mut().take();
    }

    /// Removes the block rows of the packs in `temp.dropping`, as one counted, logged drop.
    /// Finding a pack's rows is a scan of the table (it is keyed by id): done once, into
    /// `temp.gone`, which the count, the log and the delete then read by key.
    pub(super) fn drop_block_rows(&self) -> Result<()> {
        self.forget_drops();
        self.guard(|| {
            self.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS gone (id BLOB PRIMARY KEY) WITHOUT ROWID;
                 DELETE FROM temp.gone;
                 INSERT INTO temp.gone SELECT id FROM blocks WHERE pack IN (SELECT id FROM temp.dropping);",
            )?;
            let k = self.conn.changes() as i64;
            if k == 0 {
                return Ok(());
            }
            let logged: i64 = self.conn.query_row("SELECT COUNT(*) FROM dropped", [], |r| r.get(0))?;
            if k + logged > LOG_LIMIT {
                self.conn
                    .execute_batch("DELETE FROM dropped; UPDATE drops SET n = n + 1, horizon = n + 1;")?;
            } else {
                self.conn.execute_batch(
                    "UPDATE drops SET n = n + 1;
                     INSERT OR REPLACE INTO dropped (id, n) SELECT id, (SELECT n FROM drops) FROM temp.gone;",
                )?;
            }
            self.conn.execute_batch(
                "DELETE FROM blocks WHERE id IN (SELECT id FROM temp.gone); DELETE FROM temp.gone;",
            )?;
            Ok(())
        })
    }

    /// Empties the block table, as a drop nothing before can be told through.
    pub(super) fn clear_block_table(&self) -> Result<()> {
        self.forget_drops();
        self.guard(|| {
            self.conn.execute_batch(
                "DELETE FROM blocks; DELETE FROM dropped; UPDATE drops SET n = n + 1, horizon = n + 1;",
            )?;
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

    fn held(c: &Cache, drops: i64, ids: &[u8]) -> bool {
        let blocks: Vec<(BlockId, u32)> = ids.iter().map(|&i| ([i; 32], 10)).collect();
        c.still_held(Verified { drops, stored: 10 }, &blocks).unwrap()
    }

    #[test]
    fn a_verification_holds_until_a_drop_takes_out_one_of_its_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
        c.begin().unwrap();
        c.add_pack("s1", "p1", &[entry(1), entry(2)]).unwrap();
        c.add_pack("s2", "p2", &[entry(3)]).unwrap();
        c.add_pack("s3", "p3", &[entry(4)]).unwrap();
        let v = c.drops().unwrap();
        assert!(held(&c, v, &[1, 3, 4]));
        c.drop_segments(&["s2".to_string()]).unwrap();
        let after = c.drops().unwrap();
        assert!(after > v, "a drop is counted");
        assert!(held(&c, v, &[1, 2, 4]), "blocks the drop did not take out are still held");
        assert!(!held(&c, v, &[1, 3]), "block 3 was dropped after the verification");
        assert!(held(&c, after, &[1]), "verified after the drop");
        c.drop_segments(&["nothing".to_string()]).unwrap();
        assert_eq!(c.drops().unwrap(), after, "a drop of no rows is not counted");
        c.commit().unwrap();
        assert!(!held(&c, v, &[3]) && held(&c, v, &[2]), "the log outlives the transaction");
        // Block 3 stored again, then verified: the earlier drop does not count against it.
        c.begin().unwrap();
        c.add_pack("s4", "p4", &[entry(3)]).unwrap();
        assert!(held(&c, after, &[3]));
        c.clear_blocks().unwrap();
        assert!(!held(&c, after, &[1]), "nothing verified before a clear is trusted");
        let n = c.drops().unwrap();
        c.rollback();
        assert!(c.drops().unwrap() < n, "a rolled back clear is not counted");
        assert!(held(&c, v, &[1, 2]), "and the log is as it was");
    }

    #[test]
    fn a_drop_too_large_to_log_moves_the_horizon() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
        c.begin().unwrap();
        c.add_pack("s1", "p1", &[entry(1)]).unwrap();
        let many: Vec<Entry> = (0..LOG_LIMIT as u32 + 1)
            .map(|i| Entry { id: blake3::hash(&i.to_le_bytes()).into(), ..entry(0) })
            .collect();
        c.add_pack("s2", "p2", &many).unwrap();
        let v = c.drops().unwrap();
        c.drop_segments(&["s2".to_string()]).unwrap();
        assert!(!held(&c, v, &[1]), "the drop was not logged: nothing before it is trusted");
        let logged: i64 = c.conn.query_row("SELECT COUNT(*) FROM dropped", [], |r| r.get(0)).unwrap();
        assert_eq!(logged, 0);
    }

    #[test]
    fn no_block_row_is_removed_outside_this_file() {
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut offenders = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(src)];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("cache/drops.rs") {
                    let text = std::fs::read_to_string(&p).unwrap().to_uppercase();
                    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    for bad in ["DELETE FROM BLOCKS", "DROP TABLE BLOCKS", "DROP TABLE IF EXISTS BLOCKS"] {
                        if flat.contains(bad) {
                            offenders.push(format!("{}: {bad}", p.display()));
                        }
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "block rows removed outside cache/drops.rs: {offenders:?}");
    }
}
