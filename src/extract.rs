//! `extract`: restores an archive (or the parts matching patterns) under a directory.
//!
//! Files are restored in parallel; within a file, a window of blocks is fetched with as few range
//! reads as possible (neighbouring blocks of one pack in one read), then authenticated and
//! decompressed in parallel, and written in order, so each file is written once, sequentially.
//! Directory modes and times are set last, deepest first. Stored paths never escape the target
//! directory: absolute paths and `..` components are refused.

use crate::archive::{Node, NodeKind};
use crate::crypto::BlockId;
use crate::pack::Location;
use crate::progress::{Event, Progress};
use crate::reader;
use crate::session::Session;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct ExtractOptions {
    pub name: String,
    pub dir: PathBuf,
    pub patterns: Vec<String>,
    /// Keep files (and prefixes of files) already restored whose content verifies; restore the rest.
    pub resume: bool,
    /// Replace existing files. Without this or `resume`, existing files make extract refuse.
    pub overwrite: bool,
}

#[derive(Default, Debug)]
pub struct ExtractResult {
    pub files: u64,
    pub bytes: u64,
}

impl ExtractResult {
    /// One line for `--print-stats`.
    pub fn summary(&self) -> String {
        format!("restored {} files, {} bytes", self.files, self.bytes)
    }
}

const WINDOW: usize = 16;

pub fn extract(session: &Session, opts: &ExtractOptions, progress: Progress) -> Result<ExtractResult> {
    let head = session.head()?;
    let archive = reader::find(&head.0, &opts.name)?.clone();
    let cache = session.open_cache(&head, progress)?;
    let nodes = reader::nodes(session, &cache, &archive)?;
    let selected = select(&nodes, &opts.patterns)?;
    fs::create_dir_all(&opts.dir).with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let is_root = unsafe { libc::geteuid() } == 0;

    // Resolve every block's location first (the cache is single-threaded), then restore in parallel.
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut links = Vec::new();
    for node in selected {
        let Some(target) = target_path(&opts.dir, &node.path) else {
            progress(Event::Warning(format!(
                "skipped {:?}: the stored path would leave the target directory",
                String::from_utf8_lossy(&node.path)
            )));
            continue;
        };
        match node.kind {
            NodeKind::Dir => dirs.push((node, target)),
            NodeKind::Symlink => links.push((node, target)),
            NodeKind::File => {
                if node.partial {
                    progress(Event::Notice(format!(
                        "{} was cut short when the archive was made (a checkpoint or a read error): restoring its first {} bytes",
                        show(&node.path),
                        node.size
                    )));
                }
                let locs = node
                    .blocks
                    .iter()
                    .map(|(id, _)| reader::locate(&cache, id).map(|l| (*id, l)))
                    .collect::<Result<Vec<_>>>()
                    .with_context(|| format!("archive {:?}: {}", opts.name, show(&node.path)))?;
                files.push((node, target, locs));
            }
        }
    }
    for (_, target) in &dirs {
        fs::create_dir_all(target)
            .with_context(|| format!("cannot create directory {}", target.display()))?;
    }
    let errors: Vec<String> = files
        .par_iter()
        .filter_map(|(node, target, locs)| {
            progress(Event::File(show(&node.path)));
            restore_file(session, node, target, locs, is_root)
                .err()
                .map(|e| format!("archive {:?}: {}: {e:#}", opts.name, show(&node.path)))
        })
        .collect();
    for e in &errors {
        progress(Event::Warning(e.clone()));
    }
    for (node, target) in &links {
        progress(Event::File(show(&node.path)));
        if let Err(e) = restore_symlink(node, target, is_root) {
            bail!("cannot restore symlink {}: {e:#}", target.display());
        }
    }
    for (node, target) in dirs.iter().rev() {
        set_attrs(node, target, is_root)
            .with_context(|| format!("cannot set attributes of {}", target.display()))?;
    }
    if !errors.is_empty() {
        bail!(
            "{} of {} files of archive {:?} could not be restored (listed above)",
            errors.len(),
            files.len(),
            opts.name
        );
    }
    Ok(ExtractResult { files: files.len() as u64, bytes: files.iter().map(|(n, _, _)| n.size).sum() })
}

pub fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Nodes matching any pattern (a match on a directory selects everything under it).
fn select<'a>(nodes: &'a [Node], patterns: &[String]) -> Result<Vec<&'a Node>> {
    if patterns.is_empty() {
        return Ok(nodes.iter().collect());
    }
    let pats: Vec<CString> = patterns
        .iter()
        .map(|p| CString::new(p.trim_end_matches('/').as_bytes()).context("pattern contains a NUL byte"))
        .collect::<Result<_>>()?;
    let mut used = vec![false; pats.len()];
    let out: Vec<&Node> = nodes
        .iter()
        .filter(|n| {
            let mut hit = false;
            for (i, p) in pats.iter().enumerate() {
                if matches(p, &n.path) {
                    used[i] = true;
                    hit = true;
                }
            }
            hit
        })
        .collect();
    if let Some(i) = used.iter().position(|u| !u) {
        bail!("pattern {:?} matches nothing in the archive: `archiver ls NAME` lists its paths", patterns[i]);
    }
    Ok(out)
}

fn matches(pat: &CString, path: &[u8]) -> bool {
    let fnm =
        |s: &[u8]| CString::new(s).is_ok_and(|c| unsafe { libc::fnmatch(pat.as_ptr(), c.as_ptr(), 0) } == 0);
    fnm(path) || path.iter().enumerate().any(|(i, &b)| b == b'/' && fnm(&path[..i]))
}

fn target_path(dir: &Path, stored: &[u8]) -> Option<PathBuf> {
    if stored == b"." {
        return Some(dir.to_path_buf());
    }
    let p = Path::new(OsStr::from_bytes(stored));
    let safe = p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    safe.then(|| dir.join(p))
}

fn restore_file(
    session: &Session,
    node: &Node,
    target: &Path,
    locs: &[(BlockId, Location)],
    is_root: bool,
) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    // Never write through a symlink that happens to sit where the file goes.
    match fs::symlink_metadata(target) {
        Ok(m) if !m.is_dir() => fs::remove_file(target)?,
        _ => {}
    }
    let mut f = fs::File::create(target).with_context(|| format!("cannot create {}", target.display()))?;
    for window in locs.chunks(WINDOW) {
        for block in fetch_window(session, window)? {
            f.write_all(&block).with_context(|| format!("cannot write {}", target.display()))?;
        }
    }
    drop(f);
    set_attrs(node, target, is_root)
}

/// Reads a window of blocks (coalescing neighbours in a pack), then opens them in parallel.
fn fetch_window(session: &Session, window: &[(BlockId, Location)]) -> Result<Vec<Vec<u8>>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for i in 0..window.len() {
        let joins = i > 0 && {
            let (a, b) = (&window[i - 1].1, &window[i].1);
            a.pack == b.pack && a.offset + a.len as u64 == b.offset
        };
        match runs.last_mut() {
            Some(r) if joins => r.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    let raw: Vec<Vec<u8>> = runs
        .par_iter()
        .map(|r| {
            let first = &window[r.start].1;
            let last = &window[r.end - 1].1;
            let len = last.offset + last.len as u64 - first.offset;
            session
                .repo
                .read_pack(&first.pack, first.offset, len)
                .with_context(|| format!("cannot read pack {}", first.pack))
        })
        .collect::<Result<_>>()?;
    let mut pieces = Vec::with_capacity(window.len());
    for (r, bytes) in runs.iter().zip(&raw) {
        let base = window[r.start].1.offset;
        for (id, loc) in &window[r.clone()] {
            let s = (loc.offset - base) as usize;
            pieces.push((id, loc, &bytes[s..s + loc.len as usize]));
        }
    }
    pieces
        .par_iter()
        .map(|(id, loc, sealed)| {
            session
                .keys
                .open_block(id, sealed, loc.plain_len as usize)
                .with_context(|| format!("block {} in pack {} is damaged", hex::encode(&id[..8]), loc.pack))
        })
        .collect()
}

fn restore_symlink(node: &Node, target: &Path, is_root: bool) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    if fs::symlink_metadata(target).is_ok() {
        fs::remove_file(target)?;
    }
    std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), target)?;
    if is_root {
        std::os::unix::fs::lchown(target, Some(node.uid), Some(node.gid))?;
    }
    let t = filetime::FileTime::from_unix_time(node.mtime, node.mtime_ns);
    filetime::set_symlink_file_times(target, t, t)?;
    Ok(())
}

fn set_attrs(node: &Node, target: &Path, is_root: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if is_root {
        std::os::unix::fs::lchown(target, Some(node.uid), Some(node.gid))?;
    }
    fs::set_permissions(target, fs::Permissions::from_mode(node.mode & 0o7777))?;
    let t = filetime::FileTime::from_unix_time(node.mtime, node.mtime_ns);
    filetime::set_file_times(target, t, t)?;
    Ok(())
}
