//! `extract`: restores an archive (or the parts matching patterns) under a directory.
//!
//! Invariants. Stored paths never escape the target directory (absolute paths and `..` are
//! refused). Nothing is written through a symlink: a non-directory found where a file, symlink or
//! directory goes is removed, never followed. Without `resume` or `overwrite`, any existing
//! non-directory at a target (or in the way of a directory) makes extract refuse before it writes
//! anything; existing directories are merged. With `resume`, existing file content is kept only
//! where it hashes to the archive's block ids (sizes and mtimes are never trusted), so re-running
//! after any interruption finishes the restore and fetches only what is missing; no state file is
//! kept (docs/ARCHITECTURE.md, "Extract and resume", says why). A write error under the target
//! (disk full) stops the whole extract with one error; what was written stays for `resume`.
//! Directory modes and times are set last, deepest first. Per-file work lives in `file.rs`.

mod fetch;
mod file;

use crate::archive::{Node, NodeKind};
use crate::progress::{Event, Progress};
use crate::reader;
use crate::session::Session;
use crate::units::human;
use anyhow::{anyhow, bail, Context, Result};
use file::{Counters, Failure, Job};
use rayon::prelude::*;
use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub struct ExtractOptions {
    pub name: String,
    pub dir: PathBuf,
    pub patterns: Vec<String>,
    /// Keep files (and prefixes of files) already restored whose content verifies; restore the rest.
    pub resume: bool,
    /// Replace existing files. Without this or `resume`, existing files make extract refuse.
    pub overwrite: bool,
}

/// What an extract did. Only file data counts as fetched: the archive's metadata, read to learn
/// what to restore, is not included.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct ExtractResult {
    /// Files whose content was written: created, or finished or repaired by `resume`.
    pub files_restored: u64,
    /// The total size of those files.
    pub bytes_restored: u64,
    /// Files `resume` found complete: every block verified, nothing fetched (bytes beyond the
    /// file's size are cut off, and attributes are set again).
    pub files_complete: u64,
    /// File data blocks fetched from the repository, their plain bytes and their stored bytes.
    pub blocks_fetched: u64,
    pub bytes_fetched: u64,
    pub stored_fetched: u64,
}

impl ExtractResult {
    /// One line for `--print-stats`. Tests parse it; the format is, with every number a decimal
    /// integer and `(H)` a human-readable size:
    /// `restored F files, B bytes (H); C already complete; fetched N blocks, P bytes (H), S bytes stored (H)`
    pub fn summary(&self) -> String {
        format!(
            "restored {} files, {} bytes ({}); {} already complete; fetched {} blocks, {} bytes ({}), {} bytes stored ({})",
            self.files_restored,
            self.bytes_restored,
            human(self.bytes_restored),
            self.files_complete,
            self.blocks_fetched,
            self.bytes_fetched,
            human(self.bytes_fetched),
            self.stored_fetched,
            human(self.stored_fetched)
        )
    }
}

/// What the selected nodes become under the target directory.
struct Plan<'a> {
    files: Vec<Job<'a>>,
    links: Vec<(&'a Node, PathBuf)>,
    /// Directory nodes, in stored order (parents first).
    dirs: Vec<(&'a Node, PathBuf)>,
    /// Every directory to create: ancestors of each target and the directory nodes, parents first.
    needed: Vec<PathBuf>,
}

pub fn extract(session: &Session, opts: &ExtractOptions, progress: Progress) -> Result<ExtractResult> {
    session.require(&[crate::access::Perm::Read], "extract archives")?;
    let head = session.head()?;
    let archive = reader::find(&head.0, &opts.name)?.clone();
    let cache = session.open_cache(&head, progress)?;
    let nodes = reader::nodes(session, &cache, &archive)?;
    let selected = select(&nodes, &opts.patterns)?;
    let is_root = unsafe { libc::geteuid() } == 0;

    // Resolve every block's location first (the cache is single-threaded), then restore in parallel.
    let mut plan = Plan { files: Vec::new(), links: Vec::new(), dirs: Vec::new(), needed: Vec::new() };
    let mut seen = HashSet::new();
    for node in selected {
        let Some(rel) = relative(&node.path) else {
            progress(Event::Warning(format!(
                "skipped {:?}: the stored path would leave the target directory",
                String::from_utf8_lossy(&node.path)
            )));
            continue;
        };
        let target = if rel.as_os_str().is_empty() { opts.dir.clone() } else { opts.dir.join(rel) };
        let mut ancestors: Vec<&Path> =
            rel.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()).collect();
        ancestors.reverse();
        if node.kind == NodeKind::Dir && !rel.as_os_str().is_empty() {
            ancestors.push(rel);
        }
        for a in ancestors {
            if seen.insert(a.to_path_buf()) {
                plan.needed.push(opts.dir.join(a));
            }
        }
        match node.kind {
            NodeKind::Dir => plan.dirs.push((node, target)),
            NodeKind::Symlink => plan.links.push((node, target)),
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
                    .map(|(id, _)| reader::locate(&cache, id))
                    .collect::<Result<Vec<_>>>()
                    .with_context(|| format!("archive {:?}: {}", opts.name, show(&node.path)))?;
                let ids = node.blocks.iter().map(|(id, _)| *id).collect();
                plan.files.push(Job { node, target, ids, locs });
            }
        }
    }
    check_targets(opts, &plan)?;

    // From here on the target is written to.
    let replace = opts.resume || opts.overwrite;
    fs::create_dir_all(&opts.dir).map_err(|e| write_failure(opts, anyhow!(e), &opts.dir, "create"))?;
    let restored_dirs: HashSet<&Path> = plan.dirs.iter().map(|(_, t)| t.as_path()).collect();
    for dir in &plan.needed {
        make_dir(dir, replace, restored_dirs.contains(dir.as_path()))
            .map_err(|e| write_failure(opts, e, dir, "create directory"))?;
    }

    let counters = Counters::default();
    let stop = AtomicBool::new(false);
    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let fetcher = fetch::Fetcher::new(session.repo.clone(), session.keys.clone())?;
    let ctx = file::Ctx {
        session,
        fetcher: &fetcher,
        is_root,
        resume: opts.resume,
        replace,
        stop: &stop,
        counters: &counters,
    };
    let errors: Vec<String> = plan
        .files
        .par_iter()
        .filter_map(|job| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            progress(Event::File(show(&job.node.path)));
            match file::restore(&ctx, job) {
                Ok(()) | Err(Failure::Stopped) => None,
                Err(Failure::Local(e)) => {
                    stop.store(true, Ordering::Relaxed);
                    let mut f = fatal.lock().unwrap_or_else(|p| p.into_inner());
                    f.get_or_insert(e);
                    None
                }
                Err(Failure::File(e)) => {
                    Some(format!("archive {:?}: {}: {e:#}", opts.name, show(&job.node.path)))
                }
            }
        })
        .collect();
    for e in &errors {
        progress(Event::Warning(e.clone()));
    }
    if let Some(e) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(resume_advice(opts, e));
    }
    for (node, target) in &plan.links {
        progress(Event::File(show(&node.path)));
        restore_symlink(node, target, is_root, opts.resume)
            .map_err(|e| write_failure(opts, e, target, "restore symlink"))?;
    }
    for (node, target) in plan.dirs.iter().rev() {
        set_dir_attrs(node, target, is_root)
            .with_context(|| format!("cannot set attributes of {}", target.display()))?;
    }
    if !errors.is_empty() {
        bail!(
            "{} of {} files of archive {:?} could not be restored (listed above)",
            errors.len(),
            plan.files.len(),
            opts.name
        );
    }
    Ok(counters.result())
}

/// A stored path for messages and `-v` output: escaped, on one line (`query::escape`).
pub fn show(path: &[u8]) -> String {
    crate::query::escape(path)
}

/// Before anything is written: without `resume`/`overwrite`, refuses if any non-directory is at
/// a target or where a directory goes; with them, refuses a directory where a file or symlink goes.
fn check_targets(opts: &ExtractOptions, plan: &Plan) -> Result<()> {
    let lstat = |p: &Path| fs::symlink_metadata(p).ok();
    let mut in_way: Vec<&Path> =
        plan.needed.iter().filter(|d| lstat(d).is_some_and(|m| !m.is_dir())).map(|d| d.as_path()).collect();
    let others =
        plan.files.iter().map(|j| (j.node, &j.target)).chain(plan.links.iter().map(|(n, t)| (*n, t)));
    for (node, target) in others {
        match lstat(target) {
            Some(m) if m.is_dir() && (opts.resume || opts.overwrite) => bail!(
                "{} is a directory where archive {:?} has a {} ({}): move it away, or extract elsewhere",
                target.display(),
                opts.name,
                if node.kind == NodeKind::File { "file" } else { "symlink" },
                show(&node.path)
            ),
            Some(_) => in_way.push(target),
            None => {}
        }
    }
    if in_way.is_empty() || opts.resume || opts.overwrite {
        return Ok(());
    }
    in_way.sort(); // report the first in path order
    let first = in_way[0].strip_prefix(&opts.dir).unwrap_or(in_way[0]);
    let (n, verb) = if in_way.len() == 1 {
        ("1 file".to_string(), "exists")
    } else {
        (format!("{} files", in_way.len()), "exist")
    };
    bail!(
        "{n} to restore already {verb} under {} (first: {}): pass --resume to continue an interrupted extract, or --overwrite to replace them",
        opts.dir.display(),
        first.display()
    )
}

/// Creates one directory; with `replace`, a non-directory in its place is removed first. A
/// directory the archive restores (`restored`) is made owner-writable until its mode is set last.
fn make_dir(dir: &Path, replace: bool, restored: bool) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            if restored && m.mode() & 0o700 != 0o700 && m.uid() == unsafe { libc::geteuid() } {
                fs::set_permissions(dir, fs::Permissions::from_mode(m.mode() & 0o7777 | 0o700))?;
            }
            return Ok(());
        }
        Ok(_) if replace => fs::remove_file(dir)?,
        _ => {}
    }
    fs::create_dir(dir)?;
    Ok(())
}

/// An error writing under the target directory, as one line with what to do next.
fn write_failure(opts: &ExtractOptions, e: anyhow::Error, path: &Path, what: &str) -> anyhow::Error {
    resume_advice(opts, e.context(format!("cannot {what} {}", path.display())))
}

fn resume_advice(opts: &ExtractOptions, e: anyhow::Error) -> anyhow::Error {
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            .is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT)
    });
    let fix = if full { "free some space" } else { "fix that" };
    anyhow!(
        "{e:#}: what was restored so far is kept; {fix}, then run the same extract with --resume to finish restoring {:?} under {}",
        opts.name,
        opts.dir.display()
    )
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

/// The stored path relative to the target directory (`.` is the directory itself), if it stays
/// inside it.
fn relative(stored: &[u8]) -> Option<&Path> {
    if stored == b"." {
        return Some(Path::new(""));
    }
    let p = Path::new(OsStr::from_bytes(stored));
    let safe = p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    safe.then_some(p)
}

/// Creates the symlink, or with `resume` keeps one that already points where it should.
fn restore_symlink(node: &Node, target: &Path, is_root: bool, resume: bool) -> Result<()> {
    let keep = match fs::symlink_metadata(target) {
        Ok(m) if m.is_symlink() && resume => fs::read_link(target)?.as_os_str().as_bytes() == node.target,
        _ => false,
    };
    if !keep {
        if fs::symlink_metadata(target).is_ok() {
            fs::remove_file(target)?;
        }
        std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), target)?;
    }
    if is_root {
        std::os::unix::fs::lchown(target, Some(node.uid), Some(node.gid))?;
    }
    let t = filetime::FileTime::from_unix_time(node.mtime, node.mtime_ns);
    filetime::set_symlink_file_times(target, t, t)?;
    Ok(())
}

fn set_dir_attrs(node: &Node, target: &Path, is_root: bool) -> Result<()> {
    if is_root {
        std::os::unix::fs::lchown(target, Some(node.uid), Some(node.gid))?;
    }
    fs::set_permissions(target, fs::Permissions::from_mode(node.mode & 0o7777))?;
    let t = filetime::FileTime::from_unix_time(node.mtime, node.mtime_ns);
    filetime::set_file_times(target, t, t)?;
    Ok(())
}
