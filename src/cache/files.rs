//! The file-change cache: for each file path, what it was (size, mtime, ctime, inode) when it was
//! last stored, and its blocks, so `create` can reuse an unchanged file without reading it. When
//! a record may be used or written is `create`'s policy; this is only the table.
//!
//! Invariants: a record carries a check value over all its fields (`file_check`); one that fails
//! it, or whose block lengths do not add up to its size, is ignored (the file is read again),
//! never trusted. Records are not tied to a generation: a stale one costs a re-read, because
//! `create` uses a record only if every block it names is in the validated block index.

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
}

impl Cache {
    /// The record of file `path`, if there is a sound one.
    pub fn file(&self, path: &[u8]) -> Result<Option<FileRecord>> {
        self.guard(|| {
            let mut st = self.conn.prepare_cached(
                "SELECT size, mtime_ns, ctime_ns, ino, blocks, chk FROM files WHERE path = ?1",
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
                    ))
                })
                .optional()?;
            // A record that fails its check or does not add up is ignored: the file is read again.
            Ok(row.and_then(|(size, mtime_ns, ctime_ns, ino, blob, chk)| {
                if blob.len() % 36 != 0 || chk != file_check(path, size, mtime_ns, ctime_ns, ino, &blob) {
                    return None;
                }
                let blocks = blob
                    .chunks_exact(36)
                    .map(|c| {
                        let id: BlockId = c[..32].try_into().expect("32");
                        (id, u32::from_le_bytes(c[32..].try_into().expect("4")))
                    })
                    .collect();
                let rec = FileRecord { size: size as u64, mtime_ns, ctime_ns, ino: ino as u64, blocks };
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
            "INSERT OR REPLACE INTO files (path, size, mtime_ns, ctime_ns, ino, blocks, chk) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let (size, ino) = (rec.size as i64, rec.ino as i64);
        let chk = file_check(path, size, rec.mtime_ns, rec.ctime_ns, ino, &blob);
        st.execute(params![path, size, rec.mtime_ns, rec.ctime_ns, ino, blob, chk])?;
        Ok(())
        })
    }
}

fn file_check(path: &[u8], size: i64, mtime_ns: i64, ctime_ns: i64, ino: i64, blob: &[u8]) -> i64 {
    let mut h = blake3::Hasher::new();
    h.update(&(path.len() as u64).to_le_bytes()).update(path);
    for v in [size, mtime_ns, ctime_ns, ino] {
        h.update(&v.to_le_bytes());
    }
    h.update(blob);
    i64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_record_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
        let rec = FileRecord { size: 5, mtime_ns: 1, ctime_ns: 2, ino: 3, blocks: vec![([3; 32], 5)] };
        c.put_file(b"/f", &rec).unwrap();
        assert_eq!(c.file(b"/f").unwrap(), Some(rec));
        c.conn.execute("UPDATE files SET size = 6", []).unwrap();
        assert_eq!(c.file(b"/f").unwrap(), None, "a changed file record must not be trusted");
    }
}
