//! The tree walk of `create`, and its checkpoints.
//!
//! Per file: the file-change cache (size, mtime ns, ctime ns, inode) lets an unchanged file reuse
//! its block list without being read, but only if every block is still known stored. Otherwise
//! the file is read and cut by the keyed chunker; each buffer's chunks are hashed on all cores and,
//! if new, handed to the transaction's workers. Nodes are serialised into the metadata stream in
//! path order. Problems with single files are reported and the walk goes on (`warnings`). One
//! regular file is `file`.
//!
//! Entries are stat'ed by name from their directory, held open (`Stat::at`): the kernel then
//! resolves one name, not the whole path, per entry. At most `OPEN_DIRS` directories are held
//! (one per level); deeper ones are walked by path, as a tree of any depth is.
//!
//! Checkpoints fall between two chunks, so in the middle of a file too (`checkpoints`).
//!
//! What is stored is decided before anything is read (`select`): an excluded entry is not even
//! stat'ed, an excluded directory not opened.

use crate::archive::join;
use crate::archive::{Node, NodeKind, Stats};
use crate::chunker::Chunker;
use crate::crypto::BlockId;
use crate::limits::MAX_PATH;
pub use crate::metastream::MetaStream;

mod checkpoints;
mod file;
use crate::pack::Kind;
use crate::place::Place;
use crate::progress::{Control, Event, Progress};
use crate::stat::Stat;
use crate::txn::Txn;
use anyhow::Result;
use rayon::prelude::*;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
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
    /// The directory held open, its entries stat'ed by name from it (`Stat::at`); None past
    /// `OPEN_DIRS` levels (each level would hold a descriptor), where paths are used.
    fd: Option<OwnedFd>,
}

/// Directories held open at once by a walk (one per level, outermost first).
const OPEN_DIRS: usize = 64;

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
    /// What the file being read references (`txn::Refs`), for its file-change record.
    pub refs: crate::txn::Refs,
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
        let mut stack: Vec<Open> = self.visit(at, apath, None, true)?.into_iter().collect();
        while !stack.is_empty() {
            let hold = stack.len() < OPEN_DIRS;
            let top = stack.last_mut().expect("not empty");
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
            let from = top.fd.as_ref().map(|fd| (fd.as_fd(), name.as_os_str()));
            if let Some(open) = self.visit(&child, cpath, from, hold)? {
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

    /// Stores one entry, stat'ed by name from its open directory when `from` gives them; a
    /// directory to be entered is returned with its names (and held open if `hold`).
    fn visit(
        &mut self,
        at: &Place,
        apath: Vec<u8>,
        from: Option<(BorrowedFd, &OsStr)>,
        hold: bool,
    ) -> Result<Option<Open>> {
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
        let md = match from.map_or_else(|| Stat::of(path), |(dir, name)| Stat::at(dir, name)) {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("cannot archive {shown}: {e}"));
                return Ok(None);
            }
        };
        // bsdtar's -L: what a symlink points to is stored in its place (a dangling one as is),
        // read from its resolved path.
        let target = match md.is_symlink() && self.select.dereference {
            true => fs::metadata(path).ok().zip(fs::canonicalize(path).ok()),
            false => None,
        };
        let resolved;
        let (at, md, from) = match target {
            Some((target, real)) => {
                resolved = Place::new(&real);
                (&resolved, Stat::from(&target), None)
            }
            None => (at, md, from),
        };
        let path = at.sys();
        let device = *self.device.get_or_insert(md.dev);
        let nodump = self.select.nodump && crate::fsmeta::nodump(path, &md);
        if nodump || (md.is_dir() && self.select.excluded_dir(path)) {
            return Ok(None);
        }
        let mut node = Node {
            mode: md.mode,
            uid: md.uid,
            gid: md.gid,
            mtime: md.mtime,
            mtime_ns: md.mtime_nsec as u32,
            ..Node::new(apath, NodeKind::Dir)
        };
        if !self.select.numeric_owner {
            self.names.name(&mut node);
        }
        let first = md.is_file().then(|| self.links.first(&md)).flatten();
        // A regular file stored as itself reads its attributes in `file` (from the file-change
        // cache when unchanged, or from the file it opens).
        let own_file = md.is_file() && first.is_none();
        // A directory is opened once: its attributes, names and entries are read from it.
        let dir_fd = md.is_dir().then(|| open_dir(from, path, (md.dev, md.ino))).flatten();
        if !md.is_symlink() && !own_file {
            let got = match &dir_fd {
                Some(fd) => crate::fsmeta::xattrs_of(fd.as_fd(), self.wanted()),
                None => crate::fsmeta::xattrs(path, self.wanted()),
            };
            self.take_xattrs(got, &mut node, &shown);
        }
        if md.is_dir() && self.own.contains(&(md.dev, md.ino)) {
            (self.progress)(Event::Notice(format!(
                "skipped {shown}: it is archiver's own repository or cache"
            )));
        } else if md.is_dir() {
            self.stats.dirs += 1;
            self.emit(&node)?;
            if self.select.one_file_system && md.dev != device {
                return Ok(None); // a mount point: stored, not entered (nor listed)
            }
            let synthetic = self.select.skip_synthetic && md.dev != device;
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
            let id = (md.dev, md.ino);
            let names = match &dir_fd {
                Some(fd) => crate::dirnames::read_sorted_fd(fd.as_fd(), only.as_deref()),
                None => crate::dirnames::read_sorted(dir.sys(), only.as_deref()),
            };
            return match names {
                Ok(names) => {
                    let fd = dir_fd.filter(|_| hold);
                    Ok(Some(Open { dir, path: node.path, names, id, fd }))
                }
                Err(e) => {
                    self.warn(format!("cannot read directory {shown}: {e}"));
                    Ok(None)
                }
            };
        } else if md.is_symlink() {
            match fs::read_link(path) {
                Ok(t) => {
                    node.kind = NodeKind::Symlink;
                    node.target = t.as_os_str().as_bytes().to_vec();
                    self.stats.symlinks += 1;
                    self.emit(&node)?;
                }
                Err(e) => self.warn(format!("cannot read symlink {shown}: {e}")),
            }
        } else if let Some(first) = first {
            node.kind = NodeKind::Hardlink;
            node.target = first;
            self.stats.files += 1;
            self.emit(&node)?;
        } else if let Some((kind, rdev)) = crate::fsmeta::special(&md) {
            (node.kind, node.rdev) = (kind, rdev);
            self.stats.files += 1;
            self.emit(&node)?;
        } else if md.is_file() {
            node.kind = NodeKind::File;
            if self.file(at, &md, from, &mut node)? {
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
                let held = self.txn.put_with_id(Kind::Data, id, chunk)?;
                self.refs.add(id, held);
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

/// The directory stat'ed as `id` (device, inode), opened (not through a symlink) by name from
/// its open parent (`from`) or else by `path`, to read it and stat its entries from; None if it
/// cannot be opened or is no longer that directory (it is then read by path, as it now is).
fn open_dir(from: Option<(BorrowedFd, &OsStr)>, path: &std::path::Path, id: (u64, u64)) -> Option<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let d: OwnedFd = match from {
        Some((dir, name)) => crate::stat::open_at(dir, name, flags).ok()?,
        None => fs::OpenOptions::new().read(true).custom_flags(flags).open(path).ok()?.into(),
    };
    let md = Stat::of_fd(d.as_fd()).ok()?;
    ((md.dev, md.ino) == id).then_some(d)
}
