//! An archive's entries written as a tar stream (tarsnap's `-r`): GNU tar headers (long names
//! and link targets as GNU long-name records), owners by id and name, mtimes to the nanosecond
//! and extended attributes as pax records (`mtime`, `SCHILY.xattr.*`), hard links as links to
//! the first name. Any tar reads it, and so does
//! `archiver tarsnap -c @-`.
//!
//! Invariants: memory stays flat (one node at a time, file data through `Fetcher`'s bounded
//! windows); every block is authenticated before a byte of it is written; a stored path a tar
//! header cannot hold safely (absolute, or with a `..` component: only a crafted archive has
//! one) is skipped with a warning, never written; a file cut short by a checkpoint is written as
//! stored, with a warning.

use super::fetch::{Fetcher, FileFetch};
use crate::access::Perm;
use crate::archive::{Node, NodeKind};
use crate::progress::{Event, Progress};
use crate::query::escape;
use crate::reader;
use crate::session::Session;
use anyhow::{Context, Result};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tar::{EntryType, Header};

/// What `to_tar` wrote: entries, and those skipped or cut short (each with a warning).
pub struct TarWritten {
    pub entries: u64,
    pub incomplete: u64,
}

pub fn to_tar(session: &Session, name: &str, out: &mut dyn Write, progress: Progress) -> Result<TarWritten> {
    session.require(&[Perm::Read], "read archives")?;
    let head = session.head()?;
    let archive = reader::find(&head.0, name)?.clone();
    let cache = session.open_cache(&head, progress)?;
    let fetcher = Fetcher::new(session.repo.clone(), session.keys.clone())?;
    let mut tar = tar::Builder::new(out);
    let mut done = TarWritten { entries: 0, incomplete: 0 };
    for node in reader::stream(session, &cache, &archive)?.1 {
        let node = node?;
        let shown = escape(&node.path);
        if let Err(why) = safe(&node.path) {
            progress(Event::Warning(format!("skipped {shown}: {why}")));
            done.incomplete += 1;
            continue;
        }
        let context = || format!("archive {name:?}: {shown}");
        if !node.xattrs.is_empty() || node.mtime_ns != 0 {
            pax(&mut tar, &node).with_context(context)?;
        }
        let mut h = header(&node);
        let path = Path::new(std::ffi::OsStr::from_bytes(&node.path));
        match node.kind {
            NodeKind::File => {
                let ids: Vec<_> = node.blocks.iter().map(|b| b.0).collect();
                let locs = ids
                    .iter()
                    .map(|id| reader::locate(&cache, id))
                    .collect::<Result<Vec<_>>>()
                    .with_context(context)?;
                let size: u64 = node.blocks.iter().map(|b| b.1 as u64).sum();
                h.set_size(size);
                let all: Vec<usize> = (0..ids.len()).collect();
                let data = Blocks { windows: fetcher.file(&all, &ids, &locs), held: Vec::new(), at: (0, 0) };
                tar.append_data(&mut h, path, data).with_context(context)?;
                progress(Event::Advance { files: 1, bytes: size });
                if node.partial {
                    progress(Event::Warning(format!(
                        "{shown} was cut short when the archive was made (it is marked [partial]): wrote its first {size} bytes only"
                    )));
                    done.incomplete += 1;
                }
            }
            NodeKind::Symlink | NodeKind::Hardlink => {
                let target = Path::new(std::ffi::OsStr::from_bytes(&node.target));
                tar.append_link(&mut h, path, target).with_context(context)?;
            }
            _ => tar.append_data(&mut h, path, io::empty()).with_context(context)?,
        }
        done.entries += 1;
    }
    tar.finish()?;
    Ok(done)
}

/// Whether a stored path can go into a tar header as it is (relative, no `..`).
fn safe(path: &[u8]) -> std::result::Result<(), &'static str> {
    if path.first() == Some(&b'/') {
        return Err("an absolute path (the archive is damaged or crafted)");
    }
    if path.split(|&b| b == b'/').any(|c| c == b"..") {
        return Err("a path with a `..` component (the archive is damaged or crafted)");
    }
    Ok(())
}

/// The GNU header of `node`, all but its path, link target and (for a file) size.
fn header(node: &Node) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(match node.kind {
        NodeKind::File => EntryType::Regular,
        NodeKind::Dir => EntryType::Directory,
        NodeKind::Symlink => EntryType::Symlink,
        NodeKind::Hardlink => EntryType::Link,
        NodeKind::Fifo => EntryType::Fifo,
        NodeKind::CharDev => EntryType::Char,
        NodeKind::BlockDev => EntryType::Block,
    });
    h.set_mode(node.mode & 0o7777);
    h.set_uid(node.uid as u64);
    h.set_gid(node.gid as u64);
    h.set_mtime(node.mtime.max(0) as u64);
    h.set_size(0);
    // Names too long for the header are left out: the ids still say who owns the entry.
    if let Ok(u) = std::str::from_utf8(&node.uname) {
        let _ = h.set_username(u);
    }
    if let Ok(g) = std::str::from_utf8(&node.gname) {
        let _ = h.set_groupname(g);
    }
    if matches!(node.kind, NodeKind::CharDev | NodeKind::BlockDev) {
        let _ = h.set_device_major(libc::major(node.rdev));
        let _ = h.set_device_minor(libc::minor(node.rdev));
    }
    h
}

/// A pax extended header with what a GNU header cannot hold: the mtime's nanoseconds and the
/// node's extended attributes (`SCHILY.xattr.NAME=VALUE`).
fn pax<W: Write>(tar: &mut tar::Builder<W>, node: &Node) -> io::Result<()> {
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if node.mtime_ns != 0 && node.mtime >= 0 {
        records.push((b"mtime".to_vec(), format!("{}.{:09}", node.mtime, node.mtime_ns).into_bytes()));
    }
    for (name, value) in &node.xattrs {
        records.push(([&b"SCHILY.xattr."[..], name].concat(), value.clone()));
    }
    let mut body = Vec::new();
    for (key, value) in &records {
        let mut record = b" ".to_vec();
        record.extend_from_slice(key);
        record.push(b'=');
        record.extend_from_slice(value);
        record.push(b'\n');
        // The length counts its own digits: grow it until it does.
        let mut len = record.len() + 1;
        while len != record.len() + len.to_string().len() {
            len = record.len() + len.to_string().len();
        }
        body.extend_from_slice(len.to_string().as_bytes());
        body.extend_from_slice(&record);
    }
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    let base = node.path.rsplit(|&b| b == b'/').next().unwrap_or(b"x");
    let mut name = b"PaxHeader/".to_vec();
    name.extend_from_slice(&base[..base.len().min(80)]);
    h.set_path(Path::new(std::ffi::OsStr::from_bytes(&name)))?;
    h.set_cksum();
    tar.append(&h, &body[..])
}

/// A file's content, fetched window by window as `Read` asks for it.
struct Blocks<'a> {
    windows: FileFetch<'a>,
    held: Vec<Vec<u8>>,
    /// The block being read, and the offset in it.
    at: (usize, usize),
}

impl Read for Blocks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(b) = self.held.get(self.at.0) {
                if self.at.1 < b.len() {
                    let n = buf.len().min(b.len() - self.at.1);
                    buf[..n].copy_from_slice(&b[self.at.1..self.at.1 + n]);
                    self.at.1 += n;
                    return Ok(n);
                }
                self.at = (self.at.0 + 1, 0);
                continue;
            }
            let Some(window) = self.windows.next() else { return Ok(0) };
            let (_, blocks, _permit) = window.wait().map_err(|e| io::Error::other(format!("{e:#}")))?;
            self.held = blocks;
            self.at = (0, 0);
        }
    }
}
