//! Restoring one file for `extract`.
//!
//! A new file is created exclusively (mode 0600 until its attributes are set) and its blocks are
//! written at their offsets, in order. With `resume`, an existing regular file with no other hard
//! link is kept and checked block by block: the bytes at each block's offset must hash (keyed
//! BLAKE3, on all cores) to the block's id. Blocks that verify are kept; the others, and those
//! beyond the end of the file, are fetched and written in place, so a prefix left by an interrupted
//! run is finished and content damaged anywhere is repaired. Then the file is cut to its size and
//! its attributes are set on the open file, last, so a file killed between content and attributes
//! gets them from the next run. Blocks are fetched in windows, several in flight (`fetch.rs`), and
//! written in order, so a killed run leaves each file a prefix of whole blocks plus at most part of
//! one. A failure writing locally stops the whole extract (`Failure::Local`); a block that cannot be
//! fetched fails only its file (`Failure::File`).

use super::fetch::Fetcher;
use super::ExtractResult;
use crate::archive::Node;
use crate::crypto::BlockId;
use crate::pack::Location;
use crate::session::Session;
use anyhow::{anyhow, Context};
use rayon::prelude::*;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// One file to restore: its node, where it goes, and where each of its blocks is stored.
pub(super) struct Job<'a> {
    pub node: &'a Node,
    pub target: PathBuf,
    pub ids: Vec<BlockId>,
    pub locs: Vec<Location>,
}

pub(super) struct Ctx<'a> {
    pub session: &'a Session,
    pub fetcher: &'a Fetcher,
    pub is_root: bool,
    /// Keep and verify existing regular files.
    pub resume: bool,
    /// Remove a non-directory found where a new file goes (else creating it fails).
    pub replace: bool,
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
}

#[derive(Default)]
pub(super) struct Counters {
    files_restored: AtomicU64,
    bytes_restored: AtomicU64,
    files_complete: AtomicU64,
    blocks_fetched: AtomicU64,
    bytes_fetched: AtomicU64,
    stored_fetched: AtomicU64,
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
        }
    }
}

pub(super) fn restore(ctx: &Ctx, job: &Job) -> Result<(), Failure> {
    let (node, target) = (job.node, &job.target);
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
    let existing = if ctx.resume { open_existing(target).map_err(local("open"))? } else { None };
    let (f, missing, created) = match existing {
        Some(f) => {
            let len = f.metadata().map_err(local("read"))?.len();
            let ok = verify(ctx.session, &f, len, &node.blocks, &offsets).map_err(local("read"))?;
            let missing: Vec<usize> = (0..ok.len()).filter(|&i| !ok[i]).collect();
            (f, missing, false)
        }
        None => {
            (create(target, ctx.replace).map_err(local("create"))?, (0..node.blocks.len()).collect(), true)
        }
    };
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
            f.write_all_at(plain, offsets[i]).map_err(local("write"))?;
        }
    }
    drop(windows);
    if f.metadata().map_err(local("write"))?.len() != size {
        f.set_len(size).map_err(local("write"))?;
    }
    set_attrs(&f, node, ctx.is_root).context("cannot set its mode, owner or mtime").map_err(Failure::File)?;
    if created || !missing.is_empty() {
        ctx.counters.files_restored.fetch_add(1, Relaxed);
        ctx.counters.bytes_restored.fetch_add(size, Relaxed);
    } else {
        ctx.counters.files_complete.fetch_add(1, Relaxed);
    }
    Ok(())
}

/// An existing regular file at `target` that `resume` may complete in place, opened for reading
/// and writing without following a symlink. `None` when nothing is there, or something that is
/// replaced instead: a symlink, a special file, or a file with other hard links (which restored
/// files never have, and writing in place would change the other names too).
fn open_existing(target: &Path) -> io::Result<Option<File>> {
    let md = match fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !md.file_type().is_file() || md.nlink() != 1 {
        return Ok(None);
    }
    let open = || OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(target);
    let f = match open() {
        // A finished file restored read-only: its mode is set again at the end.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fs::set_permissions(target, fs::Permissions::from_mode(md.mode() & 0o7777 | 0o600))?;
            open()?
        }
        r => r?,
    };
    let now = f.metadata()?;
    Ok((now.ino() == md.ino() && now.dev() == md.dev()).then_some(f))
}

/// A new file at `target`; with `replace`, whatever non-directory is there is removed first.
fn create(target: &Path, replace: bool) -> io::Result<File> {
    if replace {
        match fs::symlink_metadata(target) {
            Ok(m) if !m.is_dir() => fs::remove_file(target)?,
            _ => {}
        }
    }
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(target)
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

/// Owner (as root), mode and mtime, on the open file.
fn set_attrs(f: &File, node: &Node, is_root: bool) -> io::Result<()> {
    if is_root {
        std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid))?;
    }
    f.set_permissions(fs::Permissions::from_mode(node.mode & 0o7777))?;
    let t = filetime::FileTime::from_unix_time(node.mtime, node.mtime_ns);
    filetime::set_file_handle_times(f, Some(t), Some(t))
}
