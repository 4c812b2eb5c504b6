//! The file-change cache: for each file path, what it was (size, mtime, ctime, inode) when it was
//! last stored, and its blocks, so `create` can reuse an unchanged file without reading it. When
//! a record may be used or written is `create`'s policy; this is only the table.
//!
//! A record may also carry the file's extended attributes as they were stored (`xattrs`, an
//! encoding of `fsmeta`'s): setting one changes a file's ctime, so a file whose record matches
//! has the same ones, and an unchanged file is stored without asking the file system for them.
//! Records without them (written by archiver versions before the column, which ignore it) are
//! still valid: the attributes are then read from the file.
//!
//! Invariants: a record carries a check value over all its fields (`file_check`); one that fails
//! it, or whose block lengths do not add up to its size, is ignored (the file is read again),
//! never trusted. Records are not tied to a generation: a stale one costs a re-read, because
//! `create` uses a record only if every block it names is in the validated block index: it
//! looks each one up, or, for a record `verified` at a drop count since which no drop took one
//! of them out of the table (`drops`), trusts that check.

use super::Cache;
use crate::crypto::BlockId;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};

/// What the file-change cache remembers about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub blocks: Vec<(BlockId, u32)>,
    /// The extended attributes stored with the file, encoded by `fsmeta::encode_xattrs`.
    pub xattrs: Option<Vec<u8>>,
    /// When every block was last found in the block index, and their stored size then.
    pub verified: Option<Verified>,
}

/// Every block of a record was in the block index at drop count `drops`; their stored
/// (sealed) lengths then added up to `stored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub drops: i64,
    pub stored: u64,
}

/// Adds the columns a cache made before them lacks (`xattrs`, `verified`, `stored`: NULL in
/// the records it has, which stay valid).
pub(super) fn add_columns(conn: &rusqlite::Connection) -> Result<()> {
    for col in ["xattrs BLOB", "verified INTEGER", "stored INTEGER"] {
        let name = col.split(' ').next().expect("a name");
        let has: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('files') WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        if !has {
            conn.execute_batch(&format!("ALTER TABLE files ADD COLUMN {col}"))?;
        }
    }
    Ok(())
}

impl Cache {
    /// The record of file `path`, if there is a sound one.
    pub fn file(&self, path: &[u8]) -> Result<Option<FileRecord>> {
        self.guard(|| {
            let mut st = self.conn.prepare_cached(
                "SELECT size, mtime_ns, ctime_ns, ino, blocks, chk, xattrs, verified, stored FROM files WHERE path = ?1",
            )?;
            let row = st
                .query_row([path], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, Option<Vec<u8>>>(6)?,
                        r.get::<_, Option<i64>>(7)?.zip(r.get::<_, Option<i64>>(8)?),
                    ))
                })
                .optional()?;
            // A record that fails its check or does not add up is ignored: the file is read again.
            Ok(row.and_then(|(size, mtime_ns, ctime_ns, ino, blob, chk, xattrs, verified)| {
                let verified = verified.map(|(drops, stored)| Verified { drops, stored: stored as u64 });
                let want = file_check(path, size, mtime_ns, ctime_ns, ino, &blob, xattrs.as_deref(), verified);
                if blob.len() % 36 != 0 || chk != want {
                    return None;
                }
                let blocks = blob
                    .chunks_exact(36)
                    .map(|c| {
                        let id: BlockId = c[..32].try_into().expect("32");
                        (id, u32::from_le_bytes(c[32..].try_into().expect("4")))
                    })
                    .collect();
                let rec = FileRecord { size: size as u64, mtime_ns, ctime_ns, ino: ino as u64, blocks, xattrs, verified };
                (rec.blocks.iter().map(|b| b.1 as u64).sum::<u64>() == rec.size).then_some(rec)
            }))
        })
    }

    /// Records file `path` as `rec` (replacing its record).
    pub fn put_file(&self, path: &[u8], rec: &FileRecord) -> Result<()> {
        self.guard(|| {
        let mut blob = Vec::with_capacity(rec.blocks.len() * 36);
        for (id, len) in &rec.blocks {
            blob.extend_from_slice(id);
            blob.extend_from_slice(&len.to_le_bytes());
        }
        let mut st = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO files (path, size, mtime_ns, ctime_ns, ino, blocks, chk, xattrs, verified, stored) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let (size, ino) = (rec.size as i64, rec.ino as i64);
        let chk = file_check(path, size, rec.mtime_ns, rec.ctime_ns, ino, &blob, rec.xattrs.as_deref(), rec.verified);
        let (verified, stored) = (rec.verified.map(|v| v.drops), rec.verified.map(|v| v.stored as i64));
        st.execute(params![path, size, rec.mtime_ns, rec.ctime_ns, ino, blob, chk, rec.xattrs, verified, stored])?;
        Ok(())
        })
    }
}

/// The check value of a record; one without attributes and verification checks as before
/// those columns existed.
#[allow(clippy::too_many_arguments)]
fn file_check(
    path: &[u8],
    size: i64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: i64,
    blob: &[u8],
    xattrs: Option<&[u8]>,
    verified: Option<Verified>,
) -> i64 {
    let mut h = blake3::Hasher::new();
    h.update(&(path.len() as u64).to_le_bytes()).update(path);
    for v in [size, mtime_ns, ctime_ns, ino] {
        h.update(&v.to_le_bytes());
    }
    h.update(blob);
    if let Some(x) = xattrs {
        h.update(b"xattrs").update(&(x.len() as u64).to_le_bytes()).update(x);
    }
    if let Some(v) = verified {
        h.update(b"verified").update(&v.drops.to_le_bytes()).update(&v.stored.to_le_bytes());
    }
    i64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record of a 5-byte file in one block, without attributes or verification.
    pub(crate) fn plain_record() -> FileRecord {
        FileRecord {
            size: 5,
            mtime_ns: 1,
            ctime_ns: 2,
            ino: 3,
            blocks: vec![([3; 32], 5)],
            xattrs: None,
            verified: None,
        }
    }

    #[test]
    fn a_changed_file_record_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
        let rec = plain_record();
        c.put_file(b"/f", &rec).unwrap();
        assert_eq!(c.file(b"/f").unwrap(), Some(rec.clone()));
        c.conn.execute("UPDATE files SET size = 6", []).unwrap();
        assert_eq!(c.file(b"/f").unwrap(), None, "a changed file record must not be trusted");
        let with = FileRecord { xattrs: Some(b"\0attrs".to_vec()), ..rec.clone() };
        c.put_file(b"/g", &with).unwrap();
        assert_eq!(c.file(b"/g").unwrap(), Some(with));
        c.conn.execute("UPDATE files SET xattrs = x'0041' WHERE path = CAST('/g' AS BLOB)", []).unwrap();
        assert_eq!(c.file(b"/g").unwrap(), None, "changed attributes must not be trusted");
        c.conn.execute("UPDATE files SET xattrs = NULL WHERE path = CAST('/g' AS BLOB)", []).unwrap();
        assert_eq!(c.file(b"/g").unwrap(), None, "a record cannot lose its attributes unseen");
        let verified = FileRecord { verified: Some(Verified { drops: 7, stored: 4 }), ..rec };
        c.put_file(b"/h", &verified).unwrap();
        assert_eq!(c.file(b"/h").unwrap(), Some(verified.clone()));
        for change in ["verified = 8", "stored = 5", "verified = NULL"] {
            c.put_file(b"/h", &verified).unwrap();
            c.conn
                .execute(&format!("UPDATE files SET {change} WHERE path = CAST('/h' AS BLOB)"), [])
                .unwrap();
            assert_eq!(c.file(b"/h").unwrap(), None, "a record with {change} must not be trusted");
        }
    }

    #[test]
    fn a_cache_from_before_the_attributes_column_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
        let path = c.path.clone();
        c.conn
            .execute_batch(
                "DROP TABLE files; CREATE TABLE files (path BLOB PRIMARY KEY, size INTEGER NOT NULL,
                 mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,
                 blocks BLOB NOT NULL, chk INTEGER NOT NULL) WITHOUT ROWID;",
            )
            .unwrap();
        let blob = [[3u8; 32].as_slice(), &5u32.to_le_bytes()].concat();
        let chk = file_check(b"/f", 5, 1, 2, 3, &blob, None, None);
        c.conn
            .execute(
                "INSERT INTO files VALUES (?1, 5, 1, 2, 3, ?2, ?3)",
                params![b"/f".as_slice(), blob, chk],
            )
            .unwrap();
        drop(c);
        let (c, note) = Cache::open(dir.path(), "r1", "k1").unwrap();
        assert_eq!(note, None, "the cache is kept, not recreated");
        assert_eq!(c.path, path);
        let rec = plain_record();
        assert_eq!(c.file(b"/f").unwrap(), Some(rec.clone()), "an old record is still used");
        let with = FileRecord { xattrs: Some(vec![0]), ..rec };
        c.put_file(b"/f", &with).unwrap();
        assert_eq!(c.file(b"/f").unwrap(), Some(with));
    }
}
