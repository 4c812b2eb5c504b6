//! Restoring one file for `extract`.
//!
//! The file is reached through its parent directory's handle (`beneath`): a symlink or
//! non-directory on the way skips the file (`Failure::Skip`), and the file's own name is opened
//! with `O_NOFOLLOW`, so nothing is ever written outside the target. A new file is created
//! exclusively (mode 0600 until its attributes are set) and its blocks are
//! written at their offsets, in order. With `resume`, an existing regular file with no other hard
//! link is kept and checked block by block: the bytes at each block's offset must hash (keyed
//! BLAKE3, on all cores) to the block's id. Blocks that verify are kept; the others, and those
//! beyond the end of the file, are fetched and written in place, so a prefix left by an interrupted
//! run is finished and content damaged anywhere is repaired. Then the file is cut to its size and
//! its attributes are set on the open file, last (`attrs`), so a file killed between content and attributes
//! gets them from the next run. Blocks are fetched in windows, several in flight (`fetch.rs`), and
//! written in order, so a killed run leaves each file a prefix of whole blocks plus at most part of
//! one. A failure writing locally stops the whole extract (`Failure::Local`); a block that cannot be
//! fetched fails only its file (`Failure::File`). With `replace`, whatever non-directory holds the
//! file's name (a symlink too) is removed with `unlinkat`, never followed.

use super::beneath::{is, open_at, stat_at, stat_fd, unlink_at, Beneath, Blocked, InWay};
use super::fetch::Fetcher;
use super::{attrs, ExtractResult};
use crate::archive::Node;
use crate::crypto::BlockId;
use crate::holes::is_zeros;
use crate::pack::Location;
use crate::query::escape;
use crate::session::Session;
use anyhow::anyhow;
use rayon::prelude::*;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// One file to restore: its node, where it goes (for messages), and where each of its blocks is
/// stored.
pub(super) struct Job {
    pub node: Node,
    pub target: PathBuf,
    pub ids: Vec<BlockId>,
    pub locs: Vec<Location>,
}

pub(super) struct Ctx<'a> {
    pub session: &'a Session,
    pub fetcher: &'a Fetcher,
    pub fs: &'a Beneath,
    pub is_root: bool,
    /// Keep and verify existing regular files.
    pub resume: bool,
    /// Remove a non-directory found where a new file goes (else creating it fails).
    pub replace: bool,
    /// What already in the target is left alone (`-k`, `--keep-newer-files`).
    pub keep: super::Keep,
    /// Set when any file hits a local failure: the others stop at their next window.
    pub stop: &'a AtomicBool,
    pub counters: &'a Counters,
}

pub(super) enum Failure {
    /// Writing under the target directory failed (disk full, no permission): stop the extract.
    Local(anyhow::Error),
    /// This file could not be restored (damaged data in the repository); go on with the others.
    File(anyhow::Error),
    /// Another file's local failure stopped the extract.
    Stopped,
    /// Something in the target keeps this entry from being restored safely (a symlink on its
    /// path, a directory at its name): skip it with this warning, go on with the others.
    Skip(String),
}

impl Failure {
    /// What `beneath` found on the way to an entry with components `comps`: skip the entry, unless
    /// it is an error of the local system (stop the extract).
    pub fn blocked(comps: &[&[u8]], b: Blocked) -> Failure {
        match b.why {
            InWay::Io(e) => Failure::Local(anyhow!(e).context(format!(
                "cannot open directory {} in the target",
                escape(&comps[..=b.depth.min(comps.len().saturating_sub(1))].join(&b'/'))
            ))),
            why => Failure::Skip(format!(
                "{} {}",
                escape(&comps[..=b.depth.min(comps.len().saturating_sub(1))].join(&b'/')),
                why.describe()
            )),
        }
    }
}

#[derive(Default)]
pub(super) struct Counters {
    files_restored: AtomicU64,
    bytes_restored: AtomicU64,
    files_complete: AtomicU64,
    blocks_fetched: AtomicU64,
    bytes_fetched: AtomicU64,
    stored_fetched: AtomicU64,
    pub incomplete: AtomicU64,
    /// Some file was created or written to under the target.
    pub touched: AtomicBool,
}

impl Counters {
    pub fn result(&self) -> ExtractResult {
        ExtractResult {
            files_restored: self.files_restored.load(Relaxed),
            bytes_restored: self.bytes_restored.load(Relaxed),
            files_complete: self.files_complete.load(Relaxed),
            blocks_fetched: self.blocks_fetched.load(Relaxed),
            bytes_fetched: self.bytes_fetched.load(Relaxed),
            stored_fetched: self.stored_fetched.load(Relaxed),
            incomplete: self.incomplete.load(Relaxed),
        }
    }
}

/// Writes `plain` at `offset` of a file made by extract (so reading zeros wherever nothing was
/// written), leaving out every piece of it that falls in one file page (4 KiB) and is all zeros:
/// those pages stay holes. The rest is written in as few calls as it has runs of data.
fn write_sparse(f: &File, plain: &[u8], offset: u64) -> io::Result<()> {
    const PAGE: u64 = 4096;
    let end = offset + plain.len() as u64;
    let slice = |from: u64, to: u64| &plain[(from - offset) as usize..(to - offset) as usize];
    let (mut run, mut at) = (None, offset);
    while at < end {
        let next = ((at / PAGE + 1) * PAGE).min(end);
        match (is_zeros(slice(at, next)), run) {
            (true, Some(start)) => {
                f.write_all_at(slice(start, at), start)?;
                run = None;
            }
            (false, None) => run = Some(at),
            _ => {}
        }
        at = next;
    }
    match run {
        Some(start) => f.write_all_at(slice(start, end), start),
        None => Ok(()),
    }
}

/// Restores one file. `Ok(Some(note))`: restored, but incompletely (`note` says how).
pub(super) fn restore(ctx: &Ctx, job: &Job) -> Result<Option<String>, Failure> {
    let (node, target) = (&job.node, &job.target);
    let local = |what: &'static str| {
        move |e: io::Error| Failure::Local(anyhow!(e).context(format!("cannot {what} {}", target.display())))
    };
    let mut offsets = Vec::with_capacity(node.blocks.len());
    let mut size = 0u64;
    for (_, len) in &node.blocks {
        offsets.push(size);
        size += *len as u64;
    }
    if size != node.size {
        return Err(Failure::File(anyhow!(
            "its metadata gives {} bytes but its blocks hold {size}: the archive is damaged",
            node.size
        )));
    }
    let comps = super::paths::split(&job.node.path);
    let (name, parent) = comps.split_last().expect("a file is never the target itself");
    let dir = ctx.fs.dir(parent).map_err(|b| Failure::blocked(&comps, b))?;
    if !ctx.resume && super::kept(ctx.keep, dir.as_fd(), name, node)? {
        return Ok(None);
    }
    let existing = if ctx.resume { open_existing(dir.as_fd(), name).map_err(local("open"))? } else { None };
    let (f, missing, created) = match existing {
        Some(f) => {
            let len = f.metadata().map_err(local("read"))?.len();
            let ok = verify(ctx.session, &f, len, &node.blocks, &offsets).map_err(local("read"))?;
            let missing: Vec<usize> = (0..ok.len()).filter(|&i| !ok[i]).collect();
            (f, missing, false)
        }
        None => (create(dir.as_fd(), name, ctx.replace, target)?, (0..node.blocks.len()).collect(), true),
    };
    if created || !missing.is_empty() {
        ctx.counters.touched.store(true, Relaxed);
    }
    drop(dir);
    let mut windows = ctx.fetcher.file(&missing, &job.ids, &job.locs);
    while let Some(window) = windows.next() {
        if ctx.stop.load(Relaxed) {
            return Err(Failure::Stopped);
        }
        let (which, blocks, _permit) = window.wait().map_err(Failure::File)?;
        let c = ctx.counters;
        c.blocks_fetched.fetch_add(which.len() as u64, Relaxed);
        c.bytes_fetched.fetch_add(blocks.iter().map(|b| b.len() as u64).sum(), Relaxed);
        c.stored_fetched.fetch_add(which.iter().map(|&i| job.locs[i].len as u64).sum(), Relaxed);
        for (&i, plain) in which.iter().zip(&blocks) {
            // In a file made here, pages of zeros are left holes (`set_len` below gives the file
            // its size): a sparse file comes back sparse, not as allocated zeros.
            match created {
                true => write_sparse(&f, plain, offsets[i]),
                false => f.write_all_at(plain, offsets[i]),
            }
            .map_err(local("write"))?;
        }
    }
    drop(windows);
    if f.metadata().map_err(local("write"))?.len() != size {
        f.set_len(size).map_err(local("write"))?;
    }
    let handle = attrs::Handle { fd: OwnedFd::from(f), path_only: false };
    let owner = attrs::set(&handle, node, ctx.is_root)
        .map_err(|e| Failure::File(anyhow!(e).context("cannot set its mode or mtime")))?;
    if created || !missing.is_empty() {
        ctx.counters.files_restored.fetch_add(1, Relaxed);
        ctx.counters.bytes_restored.fetch_add(size, Relaxed);
    } else {
        ctx.counters.files_complete.fetch_add(1, Relaxed);
    }
    Ok(owner)
}

/// An existing regular file `name` in `dir` that `resume` may complete in place, opened for
/// reading and writing without following a symlink. `None` when nothing is there, or something
/// that is replaced instead: a symlink, a special file, a file with other hard links (which
/// restored files never have, and writing in place would change the other names too), or a file
/// this user cannot read.
fn open_existing(dir: BorrowedFd, name: &[u8]) -> io::Result<Option<File>> {
    let Some(st) = stat_at(dir, name)? else { return Ok(None) };
    if !is(&st, libc::S_IFREG) || st.st_nlink != 1 {
        return Ok(None);
    }
    // O_NONBLOCK: something swapped in meanwhile (a FIFO) must not hang the open.
    let open = || open_at(dir, name, libc::O_RDWR | libc::O_NONBLOCK, 0);
    let fd = match open() {
        // A finished file restored read-only (without root): its mode is set again at the end.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let Ok(ro) = open_at(dir, name, libc::O_RDONLY | libc::O_NONBLOCK, 0) else { return Ok(None) };
            let h = attrs::Handle { fd: ro, path_only: false };
            attrs::chmod(&h, st.st_mode & 0o777 | 0o600)?;
            open()?
        }
        r => r?,
    };
    let now = stat_fd(fd.as_fd())?;
    let same = is(&now, libc::S_IFREG) && now.st_ino == st.st_ino && now.st_dev == st.st_dev;
    Ok(same.then(|| File::from(fd)))
}

/// A new file `name` in `dir`; with `replace`, whatever non-directory is there is removed first
/// (a symlink itself, never what it points to).
fn create(dir: BorrowedFd, name: &[u8], replace: bool, target: &std::path::Path) -> Result<File, Failure> {
    let local = |what: &str, e: io::Error| {
        Failure::Local(anyhow!(e).context(format!("cannot {what} {}", target.display())))
    };
    if replace {
        match stat_at(dir, name) {
            Ok(Some(st)) if is(&st, libc::S_IFDIR) => {
                return Err(Failure::Skip("a directory is in its place in the target".into()))
            }
            Ok(Some(_)) => match unlink_at(dir, name) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(local("remove", e)),
                _ => {}
            },
            Ok(None) => {}
            Err(e) => return Err(local("inspect", e)),
        }
    }
    match open_at(dir, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600) {
        Ok(fd) => Ok(File::from(fd)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(Failure::Skip("something appeared in its place in the target while extract ran".into()))
        }
        Err(e) => Err(local("create", e)),
    }
}

/// For each block, whether the file holds exactly its content at its offset.
fn verify(
    session: &Session,
    f: &File,
    len: u64,
    blocks: &[(BlockId, u32)],
    offsets: &[u64],
) -> io::Result<Vec<bool>> {
    blocks
        .par_iter()
        .zip(offsets)
        .map(|((id, n), &off)| {
            if off + *n as u64 > len {
                return Ok(false);
            }
            let mut buf = vec![0u8; *n as usize];
            match f.read_exact_at(&mut buf, off) {
                Ok(()) => Ok(session.keys.block_id(&buf) == *id),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
                Err(e) => Err(e),
            }
        })
        .collect()
}
