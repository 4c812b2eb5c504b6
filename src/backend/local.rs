//! A backend in a local directory. Keys map to paths (`packs/ab…/00000001`); `put` writes a
//! temporary file under `tmp/`, fsyncs it, renames it into place and fsyncs the directory, so after
//! a crash an object is either absent or whole and durable. What a killed writer left in `tmp/` is
//! removed by `clean_partial`; `tmp/` is never listed as objects. A pack is built in a file
//! there as it is written (`spool`) and linked into place the same way.

use super::{Backend, ErrorKind, Spool, StoreError, StoreResult};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct LocalBackend {
    root: PathBuf,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);
const TMP_DIR: &str = "tmp";

fn err(e: std::io::Error, what: &str, path: &Path) -> StoreError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::AlreadyExists => ErrorKind::Exists,
        _ if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) => {
            ErrorKind::NoSpace
        }
        _ => ErrorKind::Permanent,
    };
    StoreError::new(kind, format!("{what} {}: {e}", path.display()))
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        debug_assert!(!key.contains("..") && !key.starts_with('/'));
        self.root.join(key)
    }

    /// A new name under `tmp/` (which it makes if missing).
    fn tmp_path(&self) -> StoreResult<PathBuf> {
        let tmp_dir = self.root.join(TMP_DIR);
        fs::create_dir_all(&tmp_dir).map_err(|e| err(e, "cannot create directory", &tmp_dir))?;
        Ok(tmp_dir.join(format!("{}.{}", std::process::id(), TMP_SEQ.fetch_add(1, Ordering::Relaxed))))
    }

    fn write_tmp(&self, path: &Path, data: &[u8]) -> StoreResult<PathBuf> {
        let dir = path.parent().expect("keys have a parent");
        fs::create_dir_all(dir).map_err(|e| err(e, "cannot create directory", dir))?;
        let tmp = self.tmp_path()?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(err(e, "cannot write", &tmp));
        }
        Ok(tmp)
    }
}

/// Links the durable file `tmp` at `path` unless something is there (`hard_link` fails if the
/// target exists: an atomic create-if-absent on POSIX filesystems), removes `tmp`, and makes the
/// link durable.
fn link_new(tmp: &Path, path: &Path) -> StoreResult<()> {
    let linked = fs::hard_link(tmp, path);
    let _ = fs::remove_file(tmp);
    linked.map_err(|e| err(e, "cannot create", path))?;
    sync_dir(path.parent().expect("parent")).map_err(|e| err(e, "cannot sync", path))
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for LocalBackend {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        let path = self.path(key);
        let tmp = self.write_tmp(&path, data)?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            err(e, "cannot rename into", &path)
        })?;
        sync_dir(path.parent().expect("parent")).map_err(|e| err(e, "cannot sync", &path))
    }

    fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        let path = self.path(key);
        let tmp = self.write_tmp(&path, data)?;
        link_new(&tmp, &path)
    }

    fn spool(&self) -> StoreResult<Option<Spool>> {
        let tmp = self.tmp_path()?;
        Spool::create(tmp.clone()).map(Some).map_err(|e| err(e, "cannot create", &tmp))
    }

    fn put_new_spooled(&self, key: &str, mut spool: Spool) -> StoreResult<()> {
        let path = self.path(key);
        let dir = path.parent().expect("keys have a parent");
        fs::create_dir_all(dir).map_err(|e| err(e, "cannot create directory", dir))?;
        spool.sync().map_err(|e| err(e, "cannot write", spool.path()))?;
        link_new(spool.path(), &path)
    }

    fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
        let path = self.path(key);
        fs::read(&path).map_err(|e| err(e, "cannot read", &path))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let path = self.path(key);
        let read = || -> std::io::Result<Vec<u8>> {
            let mut f = File::open(&path)?;
            // Reserve only what the file holds: `len` may come from a damaged or hostile index.
            let have = f.metadata()?.len().saturating_sub(offset);
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(len.min(have) as usize);
            f.take(len).read_to_end(&mut buf)?;
            Ok(buf)
        };
        let buf = read().map_err(|e| err(e, "cannot read", &path))?;
        if buf.len() as u64 != len {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                format!(
                    "{} is truncated (wanted bytes {offset}..{})",
                    path.display(),
                    offset.saturating_add(len)
                ),
            ));
        }
        Ok(buf)
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        // The directory part of the prefix is walked recursively; the rest filters names.
        let (dir_key, name_prefix) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let mut out = Vec::new();
        let dir = self.root.join(dir_key);
        walk(&dir, dir_key, name_prefix, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err(e, "cannot delete", &path)),
        }
        let parent = path.parent().expect("parent");
        // Remove a per-transaction pack folder (`packs/T/`) once its last object is gone.
        let nested = parent.parent().is_some_and(|g| g != self.root);
        if nested && fs::remove_dir(parent).is_ok() {
            let _ = sync_dir(parent.parent().expect("parent"));
        } else {
            let _ = sync_dir(parent);
        }
        Ok(())
    }

    fn size(&self, key: &str) -> StoreResult<u64> {
        let path = self.path(key);
        fs::metadata(&path).map(|m| m.len()).map_err(|e| err(e, "cannot stat", &path))
    }

    fn clean_partial(&self) -> StoreResult<()> {
        let dir = self.root.join(TMP_DIR);
        match fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e, "cannot list", &dir)),
            Ok(rd) => {
                for ent in rd.flatten() {
                    let p = ent.path();
                    fs::remove_file(&p).map_err(|e| err(e, "cannot delete", &p))?;
                }
                sync_dir(&dir).map_err(|e| err(e, "cannot sync", &dir))?;
            }
        }
        // A writer killed between creating a per-transaction folder and storing its first object
        // leaves the folder empty: remove such folders (non-empty ones refuse `remove_dir`).
        let packs = self.root.join("packs");
        if let Ok(rd) = fs::read_dir(&packs) {
            for ent in rd.flatten() {
                if ent.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = fs::remove_dir(ent.path());
                }
            }
        }
        Ok(())
    }
}

fn walk(dir: &Path, key_prefix: &str, name_prefix: &str, out: &mut Vec<String>) -> StoreResult<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(e, "cannot list", dir)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| err(e, "cannot list", dir))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if !name.starts_with(name_prefix) || (key_prefix.is_empty() && name == TMP_DIR) {
            continue;
        }
        let key = if key_prefix.is_empty() { name.clone() } else { format!("{key_prefix}/{name}") };
        if ent.file_type().map_err(|e| err(e, "cannot list", dir))?.is_dir() {
            walk(&ent.path(), &key, "", out)?;
        } else {
            out.push(key);
        }
    }
    Ok(())
}
