//! One regular file of the walk: stored from its file-change record when unchanged (`reuse`),
//! else opened (by name from its open directory, never through a symlink), its attributes read
//! from the open file, its content read and cut (`read_into`), and its record written if it
//! held still while read and is old enough to trust (`settled`): verified, once its blocks are
//! in the block index (`txn::refs`), so the next run needs no lookup per block.
//!
//! Invariants: a record is used only if size, mtime, ctime and inode all match and every block
//! it names is still held (looked up, or verified at a drop count since which no drop took one
//! of them out: `cache::drops`); its attributes are used only if recorded for the same
//! `--no-xattrs` and `--no-acls` (setting one changes the ctime, so a matching record has the
//! file's own).

use super::Walker;
use crate::archive::Node;
use crate::cache::{FileRecord, Verified};
use crate::place::Place;
use crate::process::now_ns;
use crate::progress::Event;
use crate::stat::Stat;
use crate::txn::Held;
use anyhow::Result;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

impl Walker<'_> {
    /// Fills in a file's content and attributes; false if the file could not be read at all.
    /// `from`: its directory, open, and its name there.
    pub(super) fn file(
        &mut self,
        at: &Place,
        md: &Stat,
        from: Option<(BorrowedFd, &OsStr)>,
        node: &mut Node,
    ) -> Result<bool> {
        let (path, shown) = (at.sys(), at.real.display());
        let key = at.abs.as_os_str().as_bytes();
        let wanted = self.wanted();
        let seen = FileRecord {
            size: md.size,
            mtime_ns: md.mtime_ns(),
            ctime_ns: md.ctime_ns(),
            ino: md.ino,
            blocks: Vec::new(),
            xattrs: None,
            verified: None,
        };
        if let Some(rec) = self.txn.cache.file(key)? {
            if self.reuse(rec, &seen, path, key, node, &shown)? {
                return Ok(true);
            }
        }
        let read_start = now_ns();
        self.refs = self.txn.refs()?;
        let f = match open_file(path, from) {
            Ok(f) => f,
            Err(e) => {
                self.warn(format!("cannot read {shown}: {e}"));
                return Ok(false);
            }
        };
        let xattrs_read = self.take_xattrs(crate::fsmeta::xattrs_of(f.as_fd(), wanted), node, &shown);
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
        } else if settled(&seen, read_start) {
            let xattrs = xattrs_read.then(|| crate::fsmeta::encode_xattrs(wanted, &node.xattrs));
            let refs = std::mem::take(&mut self.refs);
            self.txn.record_read(key, FileRecord { blocks: node.blocks.clone(), xattrs, ..seen }, refs)?;
        }
        Ok(true)
    }

    /// Stores a file as its file-change record `rec` says it was, if it is unchanged (`seen`
    /// now) and every block is still held; the record is brought up to date (attributes,
    /// verification) when it lacks something. False: the file is to be read.
    fn reuse(
        &mut self,
        rec: FileRecord,
        seen: &FileRecord,
        path: &std::path::Path,
        key: &[u8],
        node: &mut Node,
        shown: &impl std::fmt::Display,
    ) -> Result<bool> {
        let same = rec.size == seen.size
            && rec.mtime_ns == seen.mtime_ns
            && rec.ctime_ns == seen.ctime_ns
            && rec.ino == seen.ino;
        if !same {
            return Ok(false);
        }
        // Whether every block is held, and their stored size if they were just looked up and all
        // found in the index (the record is then verified at the current drop count).
        let (held, looked_up) = match rec.verified {
            // No drop took one of them out of the index since all were found there (`cache::drops`).
            Some(v) if self.txn.cache.still_held(v, &rec.blocks)? => {
                self.txn.reuse_verified(rec.size, v.stored);
                (true, None)
            }
            _ => match self.txn.reuse_all(&rec.blocks)? {
                Held::No => (false, None),
                Held::Indexed(stored) => (true, Some(stored)),
                Held::Storing => (true, None),
            },
        };
        if !held {
            return Ok(false);
        }
        node.size = rec.size;
        (self.progress)(Event::Advance { files: 0, bytes: rec.size });
        let mut update = None::<FileRecord>;
        let wanted = self.wanted();
        // Changing an attribute changes the ctime: the recorded ones are the file's.
        match rec.xattrs.as_deref().and_then(|x| crate::fsmeta::decode_xattrs(x, wanted)) {
            Some(x) => node.xattrs = x,
            None => {
                let read_at = now_ns();
                if self.take_xattrs(crate::fsmeta::xattrs(path, wanted), node, shown)
                    && settled(seen, read_at)
                {
                    let xattrs = Some(crate::fsmeta::encode_xattrs(wanted, &node.xattrs));
                    update = Some(FileRecord { xattrs, ..rec.clone() });
                }
            }
        }
        if let Some(stored) = looked_up {
            let verified = Some(Verified { drops: self.txn.cache.drops()?, stored });
            if rec.verified != verified {
                update = Some(FileRecord { verified, ..update.unwrap_or_else(|| rec.clone()) });
            }
        }
        if let Some(new) = update {
            self.txn.cache.put_file(key, &new)?;
        }
        node.blocks = rec.blocks;
        Ok(true)
    }

    pub(super) fn wanted(&self) -> crate::fsmeta::Wanted {
        crate::fsmeta::Wanted { no_xattrs: self.select.no_xattrs, no_acls: self.select.no_acls }
    }

    /// Puts attributes read into `node`, or warns that it is stored without them; true if read.
    pub(super) fn take_xattrs(
        &mut self,
        got: std::io::Result<Vec<(Vec<u8>, Vec<u8>)>>,
        node: &mut Node,
        shown: &impl std::fmt::Display,
    ) -> bool {
        match got {
            Ok(x) => {
                node.xattrs = x;
                true
            }
            Err(e) => {
                self.warn(format!(
                    "cannot read the extended attributes of {shown}: {e}; stored without them"
                ));
                false
            }
        }
    }
}

/// Whether a file seen as `seen` may be recorded in the file-change cache by a read that began
/// at `read_start` (ns): a change within the file system's timestamp granularity after an entry
/// this new could leave its times as they were, and so be missed by the next run.
fn settled(seen: &FileRecord, read_start: i64) -> bool {
    seen.mtime_ns < read_start - 20_000_000 && seen.ctime_ns < read_start - 20_000_000
}

/// Opens a regular file for reading, by name from its open directory if given, never through a
/// symlink (one put in its place since it was stat'ed fails to open: `ELOOP`).
fn open_file(path: &std::path::Path, from: Option<(BorrowedFd, &OsStr)>) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = libc::O_NOFOLLOW | libc::O_NOCTTY;
    let Some((dir, name)) = from else {
        return fs::OpenOptions::new().read(true).custom_flags(flags).open(path);
    };
    crate::stat::open_at(dir, name, flags).map(fs::File::from)
}
