//! The tree walk of `create`, and its checkpoints.
//!
//! Per file: the file-change cache (size, mtime ns, ctime ns, inode) lets an unchanged file reuse
//! its block list without being read, but only if every block is still known stored. Otherwise
//! the file is read and cut by the keyed chunker; each buffer's chunks are hashed on all cores and,
//! if new, handed to the transaction's workers. Nodes are serialised into the metadata stream in
//! path order. Problems with single files are reported and the walk goes on (`warnings`).
//!
//! Checkpoints fall between two chunks, so in the middle of a file too (`checkpoints`).
//!
//! What is stored is decided before anything is read (`select`): an excluded entry is not even
//! stat'ed, an excluded directory not opened.

use crate::archive::join;
use crate::archive::{Node, NodeKind, Stats};
use crate::cache::FileRecord;
use crate::chunker::Chunker;
use crate::crypto::BlockId;
use crate::limits::MAX_PATH;
pub use crate::metastream::MetaStream;

mod checkpoints;
use crate::pack::Kind;
use crate::place::Place;
use crate::process::now_ns;
use crate::progress::{Control, Event, Progress};
use crate::txn::Txn;
use anyhow::Result;
use rayon::prelude::*;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When to checkpoint and when to stop.
#[derive(Clone, Default)]
pub struct Limits {
    pub checkpoint_bytes: Option<u64>,
    pub checkpoint_interval: Option<Duration>,
    /// Stop (ending the archive as `NAME.part`) once this many bytes were uploaded.
    pub maxbw: Option<u64>,
    pub control: Arc<Control>,
}

/// The walk was ended on request after a checkpoint; the reason is the message.
#[derive(Debug)]
pub struct Stopped(pub String);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}

/// A directory being walked: its entries not yet visited, in path order.
struct Open {
    dir: Place,
    path: Vec<u8>,
    names: crate::dirnames::DirNames,
    /// (device, inode): with symlinks followed, a directory already open is a loop.
    id: (u64, u64),
}

pub struct Walker<'a> {
    /// (device, inode) of directories never to descend into: the repository and the cache.
    pub own: Vec<(u64, u64)>,
    pub txn: Txn,
    pub chunker: Arc<Chunker>,
    pub meta: MetaStream,
    pub stats: Stats,
    pub warnings: u64,
    pub buf: Vec<u8>,
    pub progress: Progress<'a>,
    pub limits: Limits,
    /// Name and time of the archive being made (checkpoints are `NAME.part`).
    pub name: String,
    pub time: i64,
    pub last_checkpoint: (u64, Instant),
    /// Which entries are stored.
    pub select: crate::select::Selection,
    /// The device of the operand being walked (set at its root), for `--one-file-system`.
    pub device: Option<u64>,
    /// Files with several names seen so far: later names are stored as hard links.
    pub links: crate::fsmeta::Links,
    /// Owner names by id (none stored with `--numeric-owner`).
    pub names: crate::owners::Names,
    /// The id of a chunk of zeros as the chunker cuts a run of them, once one was hashed.
    pub zero_id: Arc<std::sync::OnceLock<BlockId>>,
    /// The command line recorded in the archive's root (and its checkpoints').
    pub command: Vec<Vec<u8>>,
}

impl Walker<'_> {
    pub(crate) fn warn(&mut self, msg: String) {
        self.warnings += 1;
        (self.progress)(Event::Warning(msg));
    }

    /// Walks the tree at `at`, stored as `apath`, depth first in path order. The directories
    /// open on the way are an explicit stack, so a tree as deep as paths allow (32,767 levels
    /// within `MAX_PATH`) never overflows the thread's stack.
    pub fn walk(&mut self, at: &Place, apath: Vec<u8>) -> Result<()> {
        let mut stack: Vec<Open> = self.visit(at, apath)?.into_iter().collect();
        while let Some(top) = stack.last_mut() {
            let name = match top.names.next() {
                Some(Ok(name)) => name,
                None => {
                    stack.pop();
                    continue;
                }
                Some(Err(e)) => {
                    let shown = crate::query::escape(&top.path);
                    stack.pop();
                    self.warn(format!("cannot read the rest of directory {shown}'s names: {e}"));
                    continue;
                }
            };
            let (child, cpath) = (top.dir.child(&name), join(&top.path, name.as_bytes()));
            if let Some(open) = self.visit(&child, cpath)? {
                if stack.iter().any(|o| o.id == open.id) {
                    let shown = crate::query::escape(&open.path);
                    self.warn(format!(
                        "{shown}: a symlink loop (it leads back to a directory being archived); stored empty"
                    ));
                    continue;
                }
                stack.push(open);
            }
        }
        Ok(())
    }

    /// Stores one entry; a directory to be entered is returned with its names.
    fn visit(&mut self, at: &Place, apath: Vec<u8>) -> Result<Option<Open>> {
        let (path, shown) = (at.sys(), at.real.display());
        if self.select.excluded_given(&apath, at.real.is_absolute()) {
            return Ok(None);
        }
        if apath.len() > MAX_PATH {
            self.warn(format!(
                "skipped {shown}: its path is {} bytes long, more than the {MAX_PATH} an archive holds",
                apath.len()
            ));
            return Ok(None);
        }
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("cannot archive {shown}: {e}"));
                return Ok(None);
            }
        };
        // bsdtar's -L: what a symlink points to is stored in its place (a dangling one as is),
        // read from its resolved path.
        let target = match md.file_type().is_symlink() && self.select.dereference {
            true => fs::metadata(path).ok().zip(fs::canonicalize(path).ok()),
            false => None,
        };
        let resolved;
        let (at, md) = match target {
            Some((target, real)) => {
                resolved = Place::new(&real);
                (&resolved, target)
            }
            None => (at, md),
        };
        let path = at.sys();
        let device = *self.device.get_or_insert(md.dev());
        let nodump = self.select.nodump && crate::fsmeta::nodump(path, &md);
        if nodump || (md.is_dir() && self.select.excluded_dir(path)) {
            return Ok(None);
        }
        let mut node = Node {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            mtime_ns: md.mtime_nsec() as u32,
            ..Node::new(apath, NodeKind::Dir)
        };
        if !self.select.numeric_owner {
            self.names.name(&mut node);
        }
        let ft = md.file_type();
        if !ft.is_symlink() {
            let wanted =
                crate::fsmeta::Wanted { no_xattrs: self.select.no_xattrs, no_acls: self.select.no_acls };
            match crate::fsmeta::xattrs(path, wanted) {
                Ok(x) => node.xattrs = x,
                Err(e) => self.warn(format!(
                    "cannot read the extended attributes of {shown}: {e}; stored without them"
                )),
            }
        }
        if ft.is_dir() && self.own.contains(&(md.dev(), md.ino())) {
            (self.progress)(Event::Notice(format!(
                "skipped {shown}: it is archiver's own repository or cache"
            )));
        } else if ft.is_dir() {
            self.stats.dirs += 1;
            self.emit(&node)?;
            if self.select.one_file_system && md.dev() != device {
                return Ok(None); // a mount point: stored, not entered (nor listed)
            }
            let synthetic = self.select.skip_synthetic && md.dev() != device;
            if let Some(kind) = synthetic.then(|| crate::fsmeta::synthetic(path)).flatten() {
                let what = format!("Not descending into filesystem of type {kind}: {shown}");
                (self.progress)(Event::LeftOut(what));
                return Ok(None);
            }
            let dir = at.enter();
            let only = match self.select.dir_rule(path) {
                crate::select::DirRule::Only(keep) => Some(keep),
                _ => None,
            };
            return match crate::dirnames::read_sorted(dir.sys(), only.as_deref()) {
                Ok(names) => Ok(Some(Open { dir, path: node.path, names, id: (md.dev(), md.ino()) })),
                Err(e) => {
                    self.warn(format!("cannot read directory {shown}: {e}"));
                    Ok(None)
                }
            };
        } else if ft.is_symlink() {
            match fs::read_link(path) {
                Ok(t) => {
                    node.kind = NodeKind::Symlink;
                    node.target = t.as_os_str().as_bytes().to_vec();
                    self.stats.symlinks += 1;
                    self.emit(&node)?;
                }
                Err(e) => self.warn(format!("cannot read symlink {shown}: {e}")),
            }
        } else if let Some(first) = ft.is_file().then(|| self.links.first(&md)).flatten() {
            node.kind = NodeKind::Hardlink;
            node.target = first;
            self.stats.files += 1;
            self.emit(&node)?;
        } else if let Some((kind, rdev)) = crate::fsmeta::special(&md) {
            (node.kind, node.rdev) = (kind, rdev);
            self.stats.files += 1;
            self.emit(&node)?;
        } else if ft.is_file() {
            node.kind = NodeKind::File;
            if self.file(at, &md, &mut node)? {
                self.stats.files += 1;
                (self.progress)(Event::Advance { files: 1, bytes: 0 });
                self.emit(&node)?;
                self.links.stored(&md, &node.path);
            }
        } else {
            (self.progress)(Event::Notice(format!(
                "skipped {shown}: sockets are not archived (as bsdtar and tarsnap do)"
            )));
        }
        Ok(None)
    }

    pub(crate) fn emit(&mut self, node: &Node) -> Result<()> {
        (self.progress)(Event::File(crate::query::escape(&node.path)));
        self.meta.push(node, &mut self.txn)?;
        self.maybe_checkpoint(None)
    }

    /// Fills in a file's content; false if the file could not be read at all.
    fn file(&mut self, at: &Place, md: &fs::Metadata, node: &mut Node) -> Result<bool> {
        let (path, shown) = (at.sys(), at.real.display());
        let key = std::path::absolute(&at.real).unwrap_or_else(|_| at.real.clone());
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
            if same && self.txn.reuse_all(&rec.blocks)? {
                node.size = rec.size;
                node.blocks = rec.blocks;
                (self.progress)(Event::Advance { files: 0, bytes: rec.size });
                return Ok(true);
            }
        }
        let read_start = now_ns();
        let f = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.warn(format!("cannot read {shown}: {e}"));
                return Ok(false);
            }
        };
        // What a checkpoint during the read compares the stored part with.
        node.size = seen.size;
        // A sparse file's holes are not read (`holes`): the file system says they are zeros.
        let res = match crate::holes::maybe_sparse(md) {
            true => f
                .try_clone()
                .map_err(Into::into)
                .and_then(|c| self.read_into(crate::holes::HoleAware::new(c, seen.size), node)),
            false => self.read_into(&f, node),
        };
        if let Err(e) = res {
            if e.downcast_ref::<std::io::Error>().is_none() {
                return Err(e); // a repository failure, not a read error: stop
            }
            node.partial = true;
            self.warn(format!("error reading {shown} after {} bytes: {e}; stored what was read", node.size));
            return Ok(true);
        }
        // Cache the file only if it did not change while read and is not too new to trust: a
        // write within the filesystem's timestamp granularity after our read would be invisible.
        // The file read is the one asked (fstat of the open file, no second path lookup): the
        // same inode, unchanged since the lstat that `seen` and the cache key come from.
        let after = f.metadata().ok();
        let stable = after.is_some_and(|a| {
            a.ino() == seen.ino
                && a.size() == seen.size
                && a.mtime() * 1_000_000_000 + a.mtime_nsec() == seen.mtime_ns
                && a.ctime() * 1_000_000_000 + a.ctime_nsec() == seen.ctime_ns
        });
        if !stable || node.size != seen.size {
            self.warn(format!("{shown} changed while it was being archived"));
        } else if seen.mtime_ns < read_start - 20_000_000 && seen.ctime_ns < read_start - 20_000_000 {
            self.txn.cache.put_file(key, &FileRecord { blocks: node.blocks.clone(), ..seen })?;
        }
        Ok(true)
    }

    /// Cuts what `f` yields into blocks, stores the new ones and lists them all in `node`
    /// (checkpointing as due); `node.size` ends as the bytes read. An `io::Error` in the result
    /// is a read error (what was read before it is stored); any other error is the repository's.
    pub(crate) fn read_into(&mut self, f: impl std::io::Read, node: &mut Node) -> Result<()> {
        let chunker = self.chunker.clone();
        let mut buf = std::mem::take(&mut self.buf);
        let keys = self.txn.keys().clone();
        let (zero_len, zero_id) = (chunker.zero_cut(), self.zero_id.clone());
        let res = chunker.split(f, &mut buf, |batch| {
            // Hash the batch on all cores, then deduplicate and submit in order. A chunk of
            // zeros (holes, preallocated space) has one id, hashed once per walk.
            let id_of = |c: &[u8]| match c.len() == zero_len && crate::holes::is_zeros(c) {
                true => *zero_id.get_or_init(|| keys.block_id(c)),
                false => keys.block_id(c),
            };
            // One chunk (every small file) is hashed here: handing it to the thread pool would
            // cost two thread wake-ups per file, more than hashing a small file takes.
            let ids: Vec<_> = match batch.len() {
                1 => batch.iter().map(|c| id_of(c)).collect(),
                _ => batch.par_iter().map(|c| id_of(c)).collect(),
            };
            for (chunk, id) in batch.iter().zip(ids) {
                self.txn.put_with_id(Kind::Data, id, chunk)?;
                node.blocks.push((id, chunk.len() as u32));
                self.maybe_checkpoint(Some(node))?;
            }
            let bytes = batch.iter().map(|c| c.len() as u64).sum();
            (self.progress)(Event::Advance { files: 0, bytes });
            (self.progress)(Event::Uploaded(self.txn.uploaded()));
            Ok(())
        });
        self.buf = buf;
        node.size = node.blocks.iter().map(|b| b.1 as u64).sum();
        res.map(|_| ())
    }
}
