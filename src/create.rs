//! `create`: walks the given paths and stores an archive in one transaction.
//!
//! Per file: the file-change cache (size, mtime ns, ctime ns, inode) lets an unchanged file reuse
//! its block list without being read, but only if every block is still known stored. Otherwise
//! the file is read and cut by the keyed chunker; each chunk is hashed here and, if new, handed to
//! the transaction's workers. Nodes are serialised into the metadata stream in path order.
//! Problems with single files are reported and the archive is still made (`warnings` > 0).

use crate::archive::{validate_name, Node, NodeKind, Root, Stats};
use crate::cache::FileRecord;
use crate::chunker::{Chunker, MAX};
use crate::codec::Writer;
use crate::crypto::BlockId;
use crate::manifest::ArchiveRef;
use crate::pack::Kind;
use crate::progress::{Event, Progress};
use crate::session::Session;
use crate::txn::Txn;
use anyhow::{bail, Result};
use rayon::prelude::*;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

pub struct CreateOptions {
    pub name: String,
    pub paths: Vec<PathBuf>,
}

pub struct CreateResult {
    pub archive: ArchiveRef,
    /// Problems that left the archive incomplete (unreadable files).
    pub warnings: u64,
}

pub fn create(session: &Session, opts: &CreateOptions, progress: Progress) -> Result<CreateResult> {
    validate_name(&opts.name)?;
    if opts.paths.is_empty() {
        bail!("no paths given: name the files or directories to archive");
    }
    for p in &opts.paths {
        if let Err(e) = fs::symlink_metadata(p) {
            bail!("cannot archive {}: {e}; nothing was stored", p.display());
        }
    }
    let lock = session.repo.lock(&owner("create"))?;
    crate::recover::recover(session, progress)?;
    let head = session.head()?;
    if head.0.find(&opts.name).is_some() {
        bail!("an archive named {:?} already exists: choose another name, or delete it first", opts.name);
    }
    let cache = session.open_cache(&head, progress)?;
    let txn = Txn::begin(session, lock, head.0, cache, format!("create {}", opts.name).as_bytes())?;
    let time = now_ns() / 1_000_000_000;
    // Never archive our own repository or cache (the cache changes while it would be read).
    let own: Vec<(u64, u64)> = [PathBuf::from(&session.settings.repo), session.settings.cachedir.clone()]
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let mut w = Walker {
        own,
        txn,
        chunker: Chunker::new(session.keys.chunk_seed),
        meta: MetaStream::default(),
        stats: Stats::default(),
        warnings: 0,
        buf: Vec::new(),
        progress,
    };
    for p in &opts.paths {
        w.visit(p, archive_path(p))?;
    }
    let Walker { mut txn, chunker, mut meta, stats, warnings, .. } = w;
    meta.cut(&mut txn, &chunker, true)?;
    let root = Root { name: opts.name.clone(), time, host: hostname(), meta: meta.blocks };
    let root_bytes = root.encode();
    let root_id = txn.put(Kind::Root, &root_bytes)?;
    let archive = ArchiveRef {
        name: opts.name.clone(),
        root: root_id,
        root_len: root_bytes.len() as u32,
        time,
        partial: false,
        stats,
    };
    let m = txn.commit_archive(archive)?;
    let archive = m.find(&opts.name).expect("just committed").clone();
    Ok(CreateResult { archive, warnings })
}

/// The path as stored: relative and normalised lexically (`/home/a` → `home/a`, `a/../b` → `b`,
/// `../x` → `x`, `.` → `.`), so it can never point outside the directory it is restored into.
pub fn archive_path(p: &Path) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.as_bytes()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent == b"." {
        return name.to_vec();
    }
    let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
    v.extend_from_slice(parent);
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a valid buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

pub fn owner(command: &str) -> String {
    format!("archiver {command}, pid {} on host {}", std::process::id(), hostname())
}

/// The serialised node stream, cut into metadata blocks as it grows.
#[derive(Default)]
struct MetaStream {
    buf: Vec<u8>,
    blocks: Vec<(BlockId, u32)>,
}

impl MetaStream {
    fn push(&mut self, node: &Node, txn: &mut Txn, chunker: &Chunker) -> Result<()> {
        let mut w = Writer { buf: std::mem::take(&mut self.buf) };
        node.encode(&mut w);
        self.buf = w.buf;
        if self.buf.len() >= 2 * MAX {
            self.cut(txn, chunker, false)?;
        }
        Ok(())
    }

    /// Emits every chunk whose boundary is final (all of them at the end).
    fn cut(&mut self, txn: &mut Txn, chunker: &Chunker, end: bool) -> Result<()> {
        let mut start = 0;
        while self.buf.len() - start >= MAX || (end && start < self.buf.len()) {
            let n = chunker.cut(&self.buf[start..]);
            let id = txn.put(Kind::Meta, &self.buf[start..start + n])?;
            self.blocks.push((id, n as u32));
            start += n;
        }
        self.buf.drain(..start);
        Ok(())
    }
}

struct Walker<'a> {
    /// (device, inode) of directories never to descend into: the repository and the cache.
    own: Vec<(u64, u64)>,
    txn: Txn,
    chunker: Chunker,
    meta: MetaStream,
    stats: Stats,
    warnings: u64,
    buf: Vec<u8>,
    progress: Progress<'a>,
}

impl Walker<'_> {
    fn warn(&mut self, msg: String) {
        self.warnings += 1;
        (self.progress)(Event::Warning(msg));
    }

    fn visit(&mut self, path: &Path, apath: Vec<u8>) -> Result<()> {
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("cannot archive {}: {e}", path.display()));
                return Ok(());
            }
        };
        let mut node = Node {
            path: apath,
            kind: NodeKind::Dir,
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            mtime_ns: md.mtime_nsec() as u32,
            size: 0,
            blocks: Vec::new(),
            target: Vec::new(),
            partial: false,
        };
        let ft = md.file_type();
        if ft.is_dir() && self.own.contains(&(md.dev(), md.ino())) {
            (self.progress)(Event::Notice(format!(
                "skipped {}: it is archiver's own repository or cache",
                path.display()
            )));
        } else if ft.is_dir() {
            self.stats.dirs += 1;
            self.emit(&node)?;
            let mut names: Vec<_> = match fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
                Err(e) => {
                    self.warn(format!("cannot read directory {}: {e}", path.display()));
                    return Ok(());
                }
            };
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for name in names {
                let child = join(&node.path, name.as_bytes());
                self.visit(&path.join(&name), child)?;
            }
        } else if ft.is_symlink() {
            match fs::read_link(path) {
                Ok(t) => {
                    node.kind = NodeKind::Symlink;
                    node.target = t.as_os_str().as_bytes().to_vec();
                    self.stats.symlinks += 1;
                    self.emit(&node)?;
                }
                Err(e) => self.warn(format!("cannot read symlink {}: {e}", path.display())),
            }
        } else if ft.is_file() {
            node.kind = NodeKind::File;
            if self.file(path, &md, &mut node)? {
                self.stats.files += 1;
                self.emit(&node)?;
            }
        } else {
            (self.progress)(Event::Notice(format!(
                "skipped {}: sockets, FIFOs and device files are not archived",
                path.display()
            )));
        }
        Ok(())
    }

    fn emit(&mut self, node: &Node) -> Result<()> {
        (self.progress)(Event::File(String::from_utf8_lossy(&node.path).into_owned()));
        self.meta.push(node, &mut self.txn, &self.chunker)
    }

    /// Fills in a file's content; false if the file could not be read at all.
    fn file(&mut self, path: &Path, md: &fs::Metadata, node: &mut Node) -> Result<bool> {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let key = key.as_os_str().as_bytes();
        let seen = FileRecord {
            size: md.size(),
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
            ino: md.ino(),
            blocks: Vec::new(),
        };
        if let Some(rec) = self.txn.cache.file(key)? {
            let same = rec.size == seen.size
                && rec.mtime_ns == seen.mtime_ns
                && rec.ctime_ns == seen.ctime_ns
                && rec.ino == seen.ino;
            if same && self.all_stored(&rec.blocks)? {
                for (id, _) in &rec.blocks {
                    self.txn.reuse(id)?;
                }
                node.size = rec.size;
                node.blocks = rec.blocks;
                return Ok(true);
            }
        }
        let read_start = now_ns();
        let f = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.warn(format!("cannot read {}: {e}", path.display()));
                return Ok(false);
            }
        };
        let (txn, chunker, blocks) = (&mut self.txn, &self.chunker, &mut node.blocks);
        let mut buf = std::mem::take(&mut self.buf);
        let keys = txn.keys().clone();
        let res = chunker.split(f, &mut buf, |batch| {
            // Hash the batch on all cores, then deduplicate and submit in order.
            let ids: Vec<_> = batch.par_iter().map(|c| keys.block_id(c)).collect();
            for (chunk, id) in batch.iter().zip(ids) {
                txn.put_with_id(Kind::Data, id, chunk)?;
                blocks.push((id, chunk.len() as u32));
            }
            Ok(())
        });
        self.buf = buf;
        node.size = node.blocks.iter().map(|b| b.1 as u64).sum();
        if let Err(e) = res {
            if e.downcast_ref::<std::io::Error>().is_none() {
                return Err(e); // a repository failure, not a read error: stop
            }
            node.partial = true;
            self.warn(format!(
                "error reading {} after {} bytes: {e}; stored what was read",
                path.display(),
                node.size
            ));
            return Ok(true);
        }
        // Cache the file only if it did not change while read and is not too new to trust: a
        // write within the filesystem's timestamp granularity after our read would be invisible.
        let after = fs::symlink_metadata(path).ok();
        let stable = after.is_some_and(|a| {
            a.size() == seen.size
                && a.mtime() * 1_000_000_000 + a.mtime_nsec() == seen.mtime_ns
                && a.ctime() * 1_000_000_000 + a.ctime_nsec() == seen.ctime_ns
        });
        if !stable || node.size != seen.size {
            self.warn(format!("{} changed while it was being archived", path.display()));
        } else if seen.mtime_ns < read_start - 20_000_000 && seen.ctime_ns < read_start - 20_000_000 {
            self.txn.cache.put_file(key, &FileRecord { blocks: node.blocks.clone(), ..seen })?;
        }
        Ok(true)
    }

    fn all_stored(&self, blocks: &[(BlockId, u32)]) -> Result<bool> {
        for (id, _) in blocks {
            if !self.txn.has(id)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::archive_path;
    use std::path::Path;

    #[test]
    fn stored_paths_are_relative_and_normalised() {
        for (given, stored) in [
            ("/home/a", "home/a"),
            ("a/../b", "b"),
            ("../x", "x"),
            ("./a/./b/", "a/b"),
            (".", "."),
            ("/", "."),
        ] {
            assert_eq!(archive_path(Path::new(given)), stored.as_bytes(), "{given}");
        }
    }
}
