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
//! first. Memory stays flat in the number of entries: pass 1 plans into a temporary database on
//! disk (`plan.rs`, `scratch.rs`), pass 2 restores the files in archive order through a bounded
//! queue (`restore.rs`); per-file work lives in `file.rs`, the other phases in `tree.rs`.

mod attrs;
mod beneath;
mod fetch;
mod file;
mod paths;
mod patterns;
mod plan;
mod restore;
mod scratch;
mod special;
mod stdout;
pub use stdout::{to_writer, Written};
mod tarout;
pub use tarout::{to_tar, TarWritten};
mod tree;

use crate::archive::{Node, NodeKind};
use crate::progress::{Event, Progress};
use crate::query::escape;
use crate::reader;
use crate::session::Session;
use crate::units::human;
use anyhow::{anyhow, bail, Result};
use beneath::{Beneath, Cursor};
use file::{Counters, Failure};
use paths::Entry;
use scratch::Scratch;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Leave what is already at an entry's name alone (bsdtar's `-k`, `--keep-newer-files`).
    pub keep: Keep,
}

/// What to leave alone of what is already in the target (never a directory: directories are
/// merged in any case).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keep {
    /// Nothing: existing entries are refused, or replaced with `overwrite`.
    #[default]
    Nothing,
    /// Every existing entry: each is skipped with a warning, as bsdtar's `-k` does.
    Existing,
    /// Existing entries not older than the archive's: skipped silently; older ones replaced.
    Newer,
}

/// Whether `keep` leaves the entry `node` at `name` in `at` alone (`Ok(true)`: skip it quietly);
/// an error is the skip with its warning.
fn kept(keep: Keep, at: std::os::fd::BorrowedFd, name: &[u8], node: &Node) -> Result<bool, Failure> {
    if keep == Keep::Nothing {
        return Ok(false);
    }
    match beneath::stat_at(at, name) {
        Ok(Some(st)) if beneath::is(&st, libc::S_IFDIR) => Ok(false), // the restore says why not
        Ok(Some(_)) if keep == Keep::Existing => {
            Err(Failure::Skip("it already exists (kept, as -k asks)".into()))
        }
        Ok(Some(st)) => Ok((st.st_mtime, st.st_mtime_nsec) >= (node.mtime, node.mtime_ns as i64)),
        _ => Ok(false),
    }
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
    let db = Scratch::open(cache.path.parent())?;
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let counters = Counters::default();
    let report = Report { progress, counters: &counters };

    // Pass 1: the plan, before anything is written.
    let planned = plan::read(session, &cache, &archive, &db, &opts.patterns, &|p, why| report.skip(p, why))?;
    tree::check_targets(opts, &db)?;

    // From here on the target is written to. Keeping only newer files replaces older ones.
    let replace = opts.resume || opts.overwrite || opts.keep == Keep::Newer;
    fs::create_dir_all(&opts.dir).map_err(|e| write_failure(opts, anyhow!(e), &opts.dir, "create"))?;
    let fs = Beneath::open(&opts.dir).map_err(|e| write_failure(opts, anyhow!(e), &opts.dir, "open"))?;
    // Directories alone need no --resume: a plain extract merges existing directories.
    let blocked = tree::make_dirs(&fs, &db, replace).map_err(|e| resume_advice(opts, e, false))?;
    let is_blocked = |path: &[u8]| {
        paths::blocked_at(&blocked, path).map(|(at, why)| format!("{} {}", escape(at), why.describe()))
    };
    progress(Event::Total { files: planned.count, bytes: planned.bytes, complete: true });

    // Pass 2: the files, in archive order.
    let stop = AtomicBool::new(false);
    let fetcher = fetch::Fetcher::new(session.repo.clone(), session.keys.clone())?;
    let ctx = file::Ctx {
        session,
        fetcher: &fetcher,
        fs: &fs,
        is_root,
        resume: opts.resume,
        replace,
        keep: opts.keep,
        stop: &stop,
        counters: &counters,
    };
    let names = (is_root && !opts.numeric_owner).then(crate::owners::Names::default);
    let files = restore::Files { ctx: &ctx, opts, report: &report, blocked: &is_blocked };
    let outcome = restore::files(&files, &cache, &archive, &db, &planned, names)
        .map_err(|e| resume_advice(opts, e, counters.touched.load(Ordering::Relaxed)))?;
    if let Some(e) = outcome.fatal {
        return Err(resume_advice(opts, e, counters.touched.load(Ordering::Relaxed)));
    }

    // Symlinks, hard links, special files, then directory attributes deepest first: each as one
    // more entry.
    let mut names = (is_root && !opts.numeric_owner).then(crate::owners::Names::default);
    let mut owned = |mut node: Node| {
        if let Some(n) = names.as_mut() {
            (node.uid, node.gid) = n.ids(&node);
        }
        node
    };
    let finish = |path: &[u8], r: Result<Option<String>, Failure>| -> Result<()> {
        match r {
            Ok(None) | Err(Failure::Stopped) => {}
            Ok(Some(n)) => report.note(path, &n),
            Err(Failure::Skip(why)) => report.skip(path, &why),
            Err(Failure::Local(e) | Failure::File(e)) => {
                let written = counters.touched.load(Ordering::Relaxed) || planned.others;
                return Err(resume_advice(opts, e, written));
            }
        }
        Ok(())
    };
    let mut cur = Cursor::new(&fs);
    let later = [
        &[NodeKind::Symlink][..],
        &[NodeKind::Hardlink],
        &[NodeKind::Fifo, NodeKind::CharDev, NodeKind::BlockDev],
    ];
    for kinds in later {
        db.each_kept(kinds, false, |node| {
            let node = owned(node);
            let e = Entry { node: &node };
            if let Some(why) = is_blocked(&node.path) {
                report.skip(&node.path, &why);
                return Ok(());
            }
            if let Some((parent, name)) = e.split().filter(|_| opts.keep != Keep::Nothing) {
                if let Ok(at) = cur.dir(&parent) {
                    match kept(opts.keep, at, name, &node) {
                        Ok(true) => return Ok(()),
                        Ok(false) => {}
                        Err(skip) => return finish(&node.path, Err(skip)),
                    }
                }
            }
            progress(Event::File(show(&node.path)));
            let restored = match node.kind {
                NodeKind::Symlink => tree::restore_symlink(&mut cur, &e, is_root, opts.resume),
                NodeKind::Hardlink => special::restore_hardlink(&fs, &mut cur, &e, opts.resume),
                _ => special::restore_special(&mut cur, &e, is_root, opts.resume),
            };
            finish(&node.path, restored)
        })?;
    }
    db.each_kept(&[NodeKind::Dir], true, |node| {
        let node = owned(node);
        match is_blocked(&node.path) {
            Some(why) => report.skip(&node.path, &why),
            None => finish(&node.path, tree::set_dir_attrs(&mut cur, &fs, &Entry { node: &node }, is_root))?,
        }
        Ok(())
    })?;
    if outcome.failed > 0 {
        bail!(
            "{} of {} files of archive {:?} could not be restored (listed above)",
            outcome.failed,
            planned.count,
            opts.name
        );
    }
    Ok(counters.result())
}

/// Warnings of an extract, through the progress callback: each skipped or incompletely restored
/// entry counts in `ExtractResult::incomplete` (the binary then exits 3).
pub(super) struct Report<'a> {
    progress: Progress<'a>,
    counters: &'a Counters,
}

impl Report<'_> {
    pub fn progress(&self, e: Event) {
        (self.progress)(e)
    }

    pub fn warn(&self, text: String) {
        self.counters.incomplete.fetch_add(1, Ordering::Relaxed);
        (self.progress)(Event::Warning(text));
    }

    pub fn skip(&self, path: &[u8], why: &str) {
        match path.is_empty() {
            true => self.warn(format!("skipped an entry: {why}")),
            false => self.warn(format!("skipped {}: {why}", escape(path))),
        }
    }

    pub fn note(&self, path: &[u8], what: &str) {
        self.warn(format!("{}: {what}", escape(path)))
    }
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
