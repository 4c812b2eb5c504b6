//! A file an object is written into while it is built, in the store's own space (a local
//! repository's `tmp/`), so a large object (a pack, 16 MiB) is never held whole in memory nor
//! copied again: `Backend::put_new_spooled` fsyncs it and links it into place.
//!
//! Invariants: the file is created new (never an existing one); a spool that is dropped without
//! being stored removes its file, and what a killed writer left is removed by `clean_partial`
//! under the next writer's lock.

use super::{ErrorKind, StoreError, StoreResult};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes are gathered up to this size (small files' blocks are a few hundred bytes); larger
/// ones go straight to the file.
const BUFFER: usize = 256 << 10;

pub struct Spool {
    out: BufWriter<File>,
    path: PathBuf,
    len: u64,
}

impl Spool {
    /// A new, empty file at `path` (which must not exist).
    pub fn create(path: PathBuf) -> io::Result<Spool> {
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        Ok(Spool { out: BufWriter::with_capacity(BUFFER, file), path, len: 0 })
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every byte written durable (flushed and fsynced).
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }

    /// Everything written, read back (for a store that cannot take the file as it is).
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.out.flush()?;
        fs::read(&self.path)
    }

    /// `read_all`, failing as a store fails.
    pub fn contents(&mut self) -> StoreResult<Vec<u8>> {
        let path = self.path.clone();
        (self.read_all()).map_err(|e| {
            StoreError::new(ErrorKind::Permanent, format!("cannot read {}: {e}", path.display()))
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_keeps_what_was_written_and_removes_its_file_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut s = Spool::create(path.clone()).unwrap();
        assert!(Spool::create(path.clone()).is_err(), "an existing file is never reused");
        s.write(b"abc").unwrap();
        s.write(&vec![7u8; BUFFER + 5]).unwrap();
        assert_eq!(s.len(), 3 + BUFFER as u64 + 5);
        let all = s.read_all().unwrap();
        assert_eq!(&all[..3], b"abc");
        assert_eq!(all.len() as u64, s.len());
        s.sync().unwrap();
        assert_eq!(fs::read(&path).unwrap(), all);
        drop(s);
        assert!(!path.exists());
    }

    /// A store that cannot take the file (the default `put_new_spooled`) stores its bytes.
    #[test]
    fn other_stores_take_a_spool_by_its_bytes() {
        use crate::backend::{memory::MemoryBackend, Backend};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut s = Spool::create(path.clone()).unwrap();
        s.write(b"a whole pack").unwrap();
        let m = MemoryBackend::new();
        assert!(m.spool().unwrap().is_none(), "objects are sent whole");
        m.put_new_spooled("packs/aa/00000002", s).unwrap();
        assert_eq!(m.get("packs/aa/00000002").unwrap(), b"a whole pack");
        assert!(!path.exists());
    }

    /// A local repository links a spool into place as `put_new` stores: create-if-absent, the
    /// object whole, nothing left in `tmp/`; what a killed writer left there, `clean_partial`
    /// removes.
    #[test]
    fn a_local_backend_links_a_spool_into_place_once() {
        use crate::backend::{local::LocalBackend, Backend, ErrorKind};
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let tmp_entries = || fs::read_dir(dir.path().join("tmp")).unwrap().count();
        let mut s = b.spool().unwrap().expect("a directory spools");
        s.write(b"a pack").unwrap();
        assert_eq!(tmp_entries(), 1);
        b.put_new_spooled("packs/aa/00000001", s).unwrap();
        assert_eq!(b.get("packs/aa/00000001").unwrap(), b"a pack");
        assert_eq!(tmp_entries(), 0);
        let mut other = b.spool().unwrap().unwrap();
        other.write(b"another").unwrap();
        let e = b.put_new_spooled("packs/aa/00000001", other).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Exists);
        assert_eq!(b.get("packs/aa/00000001").unwrap(), b"a pack");
        assert_eq!(tmp_entries(), 0);
        // A writer killed while building: its file stays until the next writer cleans.
        let mut left = b.spool().unwrap().unwrap();
        left.write(b"half a pack").unwrap();
        std::mem::forget(left);
        assert_eq!(tmp_entries(), 1);
        b.clean_partial().unwrap();
        assert_eq!(tmp_entries(), 0);
        assert_eq!(b.list("packs/").unwrap().len(), 1);
    }
}
