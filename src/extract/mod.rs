//! `extract`: restores an archive (or the parts matching patterns) under a directory.
//!
//! Invariants. Nothing outside the target directory is ever written, created, removed, chmodded,
//! chowned or given times, whatever the archive holds and whatever changes in the target while
//! extract runs:
//! - a stored path is used only if it is `.` or plain names joined by single `/` (no empty, `.`
//!   or `..` component, not absolute, no NUL); a path stored twice, under a file or symlink of the
//!   archive, or a file where the archive also has a directory, is skipped (`paths.rs`);
//! - every path is opened from the target's own handle, one entry at a time, without following
//!   any symlink (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or per component with
//!   `O_NOFOLLOW | O_DIRECTORY`; `beneath.rs`); entries are created and removed by `*at` calls on
//!   their own name relative to their parent's handle;
//! - a symlink already on the path of an entry inside the target (from an earlier restore, the
//!   user's own tree, or swapped in meanwhile) is never followed or replaced: that entry is
//!   skipped; a symlink at a file's or symlink's own name is replaced with `--overwrite` or
//!   `--resume` (removed with `unlinkat`, never followed);
//! - attributes are set through a handle on the entry (`fchown`, `fchmod`, `futimens`), or for a
//!   symlink by `fchownat`/`utimensat` with `AT_SYMLINK_NOFOLLOW` on its name in its parent's
//!   handle (`attrs.rs`); owners and setuid/setgid bits only as root, as bsdtar does;
//! - open descriptors stay bounded (depth 1,000 restores within 1,024).
//!
//! Each skipped entry gets a warning naming it (escaped) and counts in
//! `ExtractResult::incomplete`; the rest is still restored (the binary then exits 3). So does each
//! file the archive holds only a prefix of (`[partial]`: cut by a checkpoint or a read error when
//! the archive was made): it is restored as that prefix, but its mtime is left at the time of the
//! restore, so that make, rsync and the like do not take it for the complete file. Without
//! `resume` or `overwrite`, any existing non-directory at a target (or in the way of a directory,
//! other than a symlink) makes extract refuse before it writes anything; existing directories are
//! merged. With `resume`, existing file content is kept only where it hashes to the archive's block
//! ids (sizes and mtimes are never trusted), so re-running after any interruption finishes the
//! restore and fetches only what is missing; no state file is kept (docs/ARCHITECTURE.md, "Extract
//! and resume", says why). A write error under the target (disk full) stops the whole extract with
//! one error; what was written stays for `resume`. Directory modes and times are set last, deepest
//! first. Per-file work lives in `file.rs`, the other phases in `tree.rs`.

mod attrs;
mod beneath;
mod fetch;
mod file;
mod paths;
mod special;
mod stdout;
pub use stdout::{to_writer, Written};
mod tree;

use crate::archive::{Node, NodeKind};
use crate::progress::{Event, Progress};
use crate::query::escape;
use crate::reader;
use crate::session::Session;
use crate::units::human;
use anyhow::{anyhow, bail, Context, Result};
use beneath::{Beneath, Cursor};
use file::{Counters, Failure, Job};
use rayon::prelude::*;
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Files restored at once, each by its own thread that writes its windows in order while the
/// fetching threads (`fetch.rs`) bring them: more than the cores, as a restoring thread mostly
/// waits, and a small file is one round trip, so with two at a time a tree of small files over
/// HTTP was bound by latency (docs/BENCHMARKS.md).
const RESTORERS: usize = 4;

pub struct ExtractOptions {
    pub name: String,
    pub dir: PathBuf,
    pub patterns: Vec<String>,
    /// Keep files (and prefixes of files) already restored whose content verifies; restore the rest.
    pub resume: bool,
    /// Replace existing files. Without this or `resume`, existing files make extract refuse.
    pub overwrite: bool,
    /// As root, give entries their stored ids even where their stored names have other ids on
    /// this system (`--numeric-owner`; `owners`).
    pub numeric_owner: bool,
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
    /// Entries skipped (a bad or duplicate stored path, a symlink or something else in the way
    /// in the target), restored without their owner, or files restored cut short (marked
    /// `[partial]`: the archive holds only their first bytes); each was reported by a warning.
    pub incomplete: u64,
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

pub fn extract(session: &Session, opts: &ExtractOptions, progress: Progress) -> Result<ExtractResult> {
    session.require(&[crate::access::Perm::Read], "extract archives")?;
    let head = session.head()?;
    let archive = reader::find(&head.0, &opts.name)?.clone();
    let cache = session.open_cache(&head, progress)?;
    let mut nodes = reader::nodes(session, &cache, &archive)?;
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    if is_root && !opts.numeric_owner {
        // Owners by name: the ids the stored names have here (else the stored ids).
        let mut names = crate::owners::Names::default();
        for n in &mut nodes {
            (n.uid, n.gid) = names.ids(n);
        }
    }
    let selected = select(&nodes, &opts.patterns)?;
    // A hard link whose file is not selected comes back as a copy of that file.
    let copies = paths::copies(&nodes, &selected);
    let selected = paths::with_copies(selected, &copies);
    let counters = Counters::default();
    // An entry restored incompletely, or skipped: a warning naming it, and exit code 3.
    let warn = |text: String| {
        counters.incomplete.fetch_add(1, Ordering::Relaxed);
        progress(Event::Warning(text));
    };
    let skip = |path: &[u8], why: &str| match path.is_empty() {
        true => warn(format!("skipped an entry: {why}")),
        false => warn(format!("skipped {}: {why}", escape(path))),
    };
    let note = |path: &[u8], what: &str| warn(format!("{}: {what}", escape(path)));
    let plan = paths::plan(&selected);
    for (node, why) in &plan.skipped {
        skip(&node.path, why);
    }

    // Resolve every block's location first (the cache is single-threaded), then restore in parallel.
    let mut jobs = Vec::with_capacity(plan.files.len());
    for e in &plan.files {
        let node = e.node;
        let locs = node
            .blocks
            .iter()
            .map(|(id, _)| reader::locate(&cache, id))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("archive {:?}: {}", opts.name, show(&node.path)))?;
        let ids = node.blocks.iter().map(|(id, _)| *id).collect();
        let target = opts.dir.join(OsStr::from_bytes(&node.path));
        jobs.push(Job { node, target, ids, locs });
    }
    tree::check_targets(opts, &plan)?;

    // From here on the target is written to.
    let replace = opts.resume || opts.overwrite;
    fs::create_dir_all(&opts.dir).map_err(|e| write_failure(opts, anyhow!(e), &opts.dir, "create"))?;
    let fs = Beneath::open(&opts.dir).map_err(|e| write_failure(opts, anyhow!(e), &opts.dir, "open"))?;
    // Directories alone need no --resume: a plain extract merges existing directories.
    let blocked = tree::make_dirs(&fs, &plan, replace).map_err(|e| resume_advice(opts, e, false))?;
    let is_blocked = |path: &[u8]| {
        paths::blocked_at(&blocked, path).map(|(at, why)| format!("{} {}", escape(at), why.describe()))
    };
    let mut dirs = Vec::with_capacity(plan.dirs.len());
    for e in &plan.dirs {
        match is_blocked(&e.node.path) {
            Some(why) => skip(&e.node.path, &why),
            None => dirs.push(e),
        }
    }

    let bytes = jobs.iter().map(|j| j.node.size).sum();
    progress(Event::Total { files: jobs.len() as u64, bytes, complete: true });
    let stop = AtomicBool::new(false);
    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let fetcher = fetch::Fetcher::new(session.repo.clone(), session.keys.clone())?;
    let ctx = file::Ctx {
        session,
        fetcher: &fetcher,
        fs: &fs,
        is_root,
        resume: opts.resume,
        replace,
        stop: &stop,
        counters: &counters,
    };
    let restorers = rayon::ThreadPoolBuilder::new()
        .num_threads(RESTORERS)
        .thread_name(|i| format!("restore-{i}"))
        .build()
        .context("cannot start the restoring threads")?;
    let errors: Vec<String> = restorers.install(|| jobs
        .par_iter()
        .filter_map(|job| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(why) = is_blocked(&job.node.path) {
                skip(&job.node.path, &why);
                return None;
            }
            progress(Event::File(show(&job.node.path)));
            let restored = file::restore(&ctx, job);
            progress(Event::Advance { files: 1, bytes: job.node.size });
            if restored.is_ok() && job.node.partial {
                warn(format!(
                    "{} was cut short when the archive was made (it is marked [partial]: a checkpoint or a read error ended it): restored its first {} bytes only, and its mtime is the time of the restore, so that it is not taken for the complete file",
                    show(&job.node.path),
                    job.node.size
                ));
            }
            match restored {
                Ok(None) | Err(Failure::Stopped) => None,
                Ok(Some(n)) => {
                    note(&job.node.path, &n);
                    None
                }
                Err(Failure::Skip(why)) => {
                    skip(&job.node.path, &why);
                    None
                }
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
        .collect());
    for e in &errors {
        progress(Event::Warning(e.clone()));
    }
    if let Some(e) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(resume_advice(opts, e, counters.touched.load(Ordering::Relaxed)));
    }
    // Symlinks, then directory attributes deepest first: each as one more entry.
    let finish = |path: &[u8], r: Result<Option<String>, Failure>| -> Result<()> {
        match r {
            Ok(None) | Err(Failure::Stopped) => {}
            Ok(Some(n)) => note(path, &n),
            Err(Failure::Skip(why)) => skip(path, &why),
            Err(Failure::Local(e) | Failure::File(e)) => {
                let written = counters.touched.load(Ordering::Relaxed)
                    || !(plan.links.is_empty() && plan.hardlinks.is_empty() && plan.specials.is_empty());
                return Err(resume_advice(opts, e, written));
            }
        }
        Ok(())
    };
    let mut cur = Cursor::new(&fs);
    for e in &plan.links {
        if let Some(why) = is_blocked(&e.node.path) {
            skip(&e.node.path, &why);
            continue;
        }
        progress(Event::File(show(&e.node.path)));
        finish(&e.node.path, tree::restore_symlink(&mut cur, e, is_root, opts.resume))?;
    }
    for e in plan.hardlinks.iter().chain(&plan.specials) {
        if let Some(why) = is_blocked(&e.node.path) {
            skip(&e.node.path, &why);
            continue;
        }
        progress(Event::File(show(&e.node.path)));
        let restored = match e.node.kind {
            NodeKind::Hardlink => special::restore_hardlink(&fs, &mut cur, e, opts.resume),
            _ => special::restore_special(&mut cur, e, is_root, opts.resume),
        };
        finish(&e.node.path, restored)?;
    }
    for e in dirs.iter().rev() {
        finish(&e.node.path, tree::set_dir_attrs(&mut cur, &fs, e, is_root))?;
    }
    if !errors.is_empty() {
        bail!(
            "{} of {} files of archive {:?} could not be restored (listed above)",
            errors.len(),
            jobs.len(),
            opts.name
        );
    }
    Ok(counters.result())
}

/// A stored path for messages and `-v` output: escaped, on one line (`query::escape`).
pub fn show(path: &[u8]) -> String {
    crate::query::escape(path)
}

/// An error making or opening the target directory itself (before anything is restored), as one
/// line with what to do next.
fn write_failure(opts: &ExtractOptions, e: anyhow::Error, path: &Path, what: &str) -> anyhow::Error {
    resume_advice(opts, e.context(format!("cannot {what} {}", path.display())), false)
}

/// An error writing under the target directory, as one line with what to do next: `--resume` if
/// files or symlinks were `written` (a plain extract would refuse to replace them).
fn resume_advice(opts: &ExtractOptions, e: anyhow::Error, written: bool) -> anyhow::Error {
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            .is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT)
    });
    let fix = if full { "free some space" } else { "fix that" };
    if !written {
        return anyhow!("{e:#}: nothing was restored; {fix}, then run the extract again");
    }
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
