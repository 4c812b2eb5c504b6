//! `create`: stores the given paths as an archive in one transaction (the walk is `walker`; each
//! file is stored once, under one name, by `operands`).
//!
//! With checkpoints, a run that is stopped on request (SIGQUIT, `--maxbw`), interrupted (SIGINT,
//! SIGTERM) or fails after a checkpoint ends as `NAME.part`, committed here at once by recovery;
//! without one, it is undone (its transaction aborted) before `create` returns. A run that
//! succeeds after an earlier one left `NAME.part` removes it (unless `keep_part`), reclaiming
//! what only it used.

use crate::access::Perm;
use crate::archive::{validate_name, Stats};
use crate::manifest::ArchiveRef;
use crate::operands::Operand;
use crate::process::now_ns;
use crate::progress::{Event, Progress};
use crate::reader;
use crate::session::Session;
use crate::txn::{Draft, RepositoryChanged, Txn, PART};
use crate::walker::{Limits, MetaStream, Stopped, Walker};
use anyhow::{bail, Result};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
pub struct CreateOptions {
    pub name: String,
    pub paths: Vec<PathBuf>,
    pub limits: Limits,
    /// Keep `NAME.part` when `NAME` commits.
    pub keep_part: bool,
    /// Which entries are stored (`select`).
    pub select: crate::select::Selection,
    /// The creation time to record (seconds since the epoch; tarsnap's `--creationtime`), else
    /// the time the run started.
    pub creationtime: Option<i64>,
    /// Scan the operands concurrently for the totals a progress display shows (`scan`).
    pub scan_totals: bool,
    /// Walk, chunk and consult the cache, but store nothing (`dry_run`).
    pub dry_run: bool,
    /// With `paths` just `-`: store standard input as one file of this name (default `stdin`).
    pub stdin_name: Option<String>,
    /// Inputs stored after `paths`: other archives' entries, tar streams' (`inputs`).
    pub sources: Vec<crate::inputs::Source>,
    /// The command line recorded in the archive (`Root::command`).
    pub command: Vec<Vec<u8>>,
}

pub struct CreateResult {
    /// The archive stored: `NAME`, or `NAME.part` when the run was stopped on request.
    pub archive: ArchiveRef,
    /// Problems that left the archive incomplete (unreadable files).
    pub warnings: u64,
    /// Why the run ended early as `NAME.part`, if it did.
    pub stopped: Option<String>,
}

pub fn create(session: &Session, opts: &CreateOptions, progress: Progress) -> Result<CreateResult> {
    validate_name(&opts.name)?;
    if is_part_name(&opts.name) {
        bail!(
            "archive names ending in .part or .part.N are reserved for checkpoints of interrupted runs: choose another name for {:?}",
            opts.name
        );
    }
    let part_name = format!("{}{PART}", opts.name);
    validate_name(&format!("{part_name}.99"))?;
    if opts.paths.is_empty() && opts.sources.is_empty() {
        bail!("no paths given: name the files or directories to archive");
    }
    let operands = match stdin_name(opts)? {
        Some(_) => Vec::new(),
        None => crate::operands::plan(&opts.paths, progress)?,
    };
    if opts.dry_run {
        return dry_run(session, opts, &operands, progress);
    }
    session.require(&[Perm::Write], "create archives")?;
    // The lock is held until this function returns, across every transaction it runs.
    let how = crate::txn::recover::How { name: Some(&opts.name), ..Default::default() };
    let writing = crate::txn::lock(session, "create", progress, how)?;
    let head = session.head()?;
    if head.0.holds(&session.keys, &opts.name) {
        bail!("an archive named {:?} already exists: choose another name, or delete it first", opts.name);
    }
    let cache = session.open_cache(&head, progress)?;
    let txn = Txn::begin(session, head.0, cache, format!("create {}", opts.name).as_bytes())?;
    let time = opts.creationtime.unwrap_or_else(|| now_ns() / 1_000_000_000);
    let own = own_dirs(session);
    let mut w = walker(session, txn, opts, &own, time, progress);
    let walked = walk(&mut w, session, &operands, opts, &own, progress);
    if let Err(e) = walked {
        if !writing.still_held() {
            // Recovering now could touch the new holder's transaction: leave it all to it.
            return Err(e.context(RepositoryChanged(crate::txn::recover::LOCK_LOST.into())));
        }
        let warnings = w.warnings;
        // A checkpoint record under way is durable, or failed, before this is decided.
        w.txn.quiesce();
        let checkpointed = w.txn.checkpoints() > 0;
        if !checkpointed {
            // Dropping the transaction (on return) aborts it: what it uploaded is deleted.
            if e.downcast_ref::<crate::progress::Interrupted>().is_some() {
                let what = format!(
                    "{:?} was not stored (no checkpoint yet) and nothing it uploaded remains",
                    opts.name
                );
                return Err(e.context(what));
            }
            return Err(e);
        }
        // The last checkpoint holds the user's data: commit it as NAME.part now. What became of
        // it is said once, by the error (or the stop notice), so that a failed create stays one line.
        let last = w.txn.last_checkpoint.clone();
        let promoted = w.txn.end_at_checkpoint(session, &opts.name).map(|p| {
            // Best effort: space left unreclaimed is reclaimed by the next delete or `fsck --prune`.
            if p.replaced {
                let _ = crate::reclaim::delete_locked(session, &[], &|_| {});
            }
            p.name
        });
        let stopped = e.downcast_ref::<Stopped>().map(|s| s.0.clone());
        return match (stopped, promoted) {
            (Some(reason), Ok(name)) => {
                let archive = match session.keys.reads_data() {
                    true => reader::find(&session.head()?.0, &name)?.clone(),
                    // A write key cannot read it back: it is the last checkpoint it recorded.
                    false => ArchiveRef { name, ..last.expect("a checkpoint was recorded") },
                };
                Ok(CreateResult { archive, warnings, stopped: Some(reason) })
            }
            (_, Ok(name)) => Err(e.context(RepositoryChanged(format!("the last checkpoint was stored as {name:?}")))),
            (_, Err(r)) => Err(e.context(RepositoryChanged(format!(
                "the last checkpoint could not be committed yet ({r:#}); the next write command commits it as {part_name:?}"
            )))),
        };
    }
    // The checkpoint under way is recorded (and reported) before the commit.
    let settled = w.settle();
    let Walker { mut txn, mut meta, stats, warnings, command, .. } = w;
    if settled.is_err() {
        txn.quiesce();
    }
    // After a checkpoint a failure from here on leaves it pending: say where the data goes.
    let checkpointed = txn.checkpoints() > 0;
    let finished = (|| {
        settled?;
        meta.cut(&mut txn, true)?;
        txn.commit_archive(Draft { name: opts.name.clone(), time, meta: meta.blocks, stats, command })
    })();
    let m = finished.map_err(|e| match checkpointed && e.downcast_ref::<RepositoryChanged>().is_none() {
        _ if !writing.still_held() => e.context(RepositoryChanged(crate::txn::recover::LOCK_LOST.into())),
        true => e.context(RepositoryChanged(format!(
            "the last checkpoint is kept: the next write command commits it as {part_name:?}"
        ))),
        false => e,
    })?;
    let archive = m.find(&opts.name).expect("just committed").clone();
    // NAME is complete: earlier interrupted runs' NAME.part (and NAME.part.N) have served their
    // purpose (a key without the delete permission cannot remove them: they stay, and we say so).
    let mut parts: Vec<String> =
        m.archives.iter().filter(|a| part_of(&a.name, &opts.name)).map(|a| a.name.clone()).collect();
    let tag = crate::manifest::sealed::base_tag(&session.keys, &opts.name);
    let hidden = m.hidden.iter().filter(|h| h.base_tag == tag && h.part > 0);
    parts.extend(hidden.map(|h| crate::manifest::sealed::join(&opts.name, h.part)));
    if !parts.is_empty() && !opts.keep_part && !session.can(Perm::Delete) {
        progress(Event::Notice(format!(
            "kept {}: this key file cannot delete archives (`archiver delete NAME` with a delete key removes them)",
            parts.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ")
        )));
    } else if !opts.keep_part && !parts.is_empty() {
        crate::reclaim::delete_locked(session, &parts, progress)
            .map_err(|e| e.context(RepositoryChanged(format!("{:?} was stored", opts.name))))?;
    }
    Ok(CreateResult { archive, warnings, stopped: None })
}

/// `create --dry-run`: the same walk, chunking and cache lookups as a real run, through a
/// transaction that stores nothing (`Txn::dry`), without the lock (nothing is written) and
/// without checkpoints. The result's `archive` holds what would be stored: `stats.new_raw` is the
/// plain size of the blocks that would be new (their stored size is not known without sealing
/// them: `new_stored` stays 0).
fn dry_run(
    session: &Session,
    opts: &CreateOptions,
    operands: &[Operand],
    progress: Progress,
) -> Result<CreateResult> {
    let head = session.head()?;
    if head.0.holds(&session.keys, &opts.name) {
        bail!("an archive named {:?} already exists: choose another name, or delete it first", opts.name);
    }
    let cache = session.open_cache(&head, progress)?;
    let txn = Txn::dry(session, head.0, cache)?;
    let time = opts.creationtime.unwrap_or_else(|| now_ns() / 1_000_000_000);
    let own = own_dirs(session);
    let opts = &CreateOptions {
        limits: Limits { control: opts.limits.control.clone(), ..Default::default() },
        ..opts.clone()
    };
    let mut w = walker(session, txn, opts, &own, time, progress);
    walk(&mut w, session, operands, opts, &own, progress)?;
    let Walker { mut txn, mut meta, stats, warnings, command, .. } = w;
    meta.cut(&mut txn, true)?;
    // The root record too, as the commit would store it.
    let draft = Draft { name: opts.name.clone(), time, meta: meta.blocks, stats, command };
    let (root, mut archive) = draft.build(txn.keys(), true)?;
    txn.put(crate::pack::Kind::Root, &root)?;
    archive.stats.raw = txn.stats.refs_raw;
    archive.stats.new_raw = txn.stats.new_raw;
    Ok(CreateResult { archive, warnings, stopped: None })
}

/// Directories never to archive: our own repository and cache (the cache changes while it
/// would be read).
fn own_dirs(session: &Session) -> Vec<(u64, u64)> {
    [PathBuf::from(&session.settings.repo), session.settings.cachedir.clone()]
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect()
}

fn walker<'a>(
    session: &Session,
    txn: Txn,
    opts: &CreateOptions,
    own: &[(u64, u64)],
    time: i64,
    progress: Progress<'a>,
) -> Walker<'a> {
    Walker {
        own: own.to_vec(),
        txn,
        chunker: Arc::new(session.chunker()),
        meta: MetaStream::new(session.chunker()),
        stats: Stats::default(),
        warnings: 0,
        buf: Vec::new(),
        progress,
        limits: opts.limits.clone(),
        name: opts.name.clone(),
        time,
        last_checkpoint: (0, Instant::now()),
        select: opts.select.clone(),
        device: None,
        links: Default::default(),
        names: Default::default(),
        zero_id: Default::default(),
        command: opts.command.clone(),
        refs: Default::default(),
    }
}

/// The stored name for standard input when the only PATH is `-` (`--stdin-name`, default
/// `stdin`): one file name, since the archive then holds that file alone.
fn stdin_name(opts: &CreateOptions) -> Result<Option<Vec<u8>>> {
    let is_stdin = opts.paths.len() == 1 && opts.paths[0].as_os_str() == "-";
    if opts.paths.len() > 1 && opts.paths.iter().any(|p| p.as_os_str() == "-") {
        bail!("`-` (standard input) must be the only PATH: store other paths in another archive");
    }
    match (is_stdin, &opts.stdin_name) {
        (false, Some(_)) => bail!("--stdin-name names standard input: give `-` as the only PATH"),
        (false, None) => Ok(None),
        (true, name) => {
            let name = name.as_deref().unwrap_or("stdin");
            if name.is_empty()
                || name.len() > 255
                || name.contains(['/', '\0'])
                || name == "."
                || name == ".."
            {
                bail!("--stdin-name {name:?} is not a file name: give one name (no `/`, at most 255 bytes), e.g. db.sql");
            }
            Ok(Some(name.as_bytes().to_vec()))
        }
    }
}

/// Walks every operand into `w` (or standard input), with the size scan beside it when asked for.
fn walk(
    w: &mut Walker,
    session: &Session,
    operands: &[Operand],
    opts: &CreateOptions,
    own: &[(u64, u64)],
    progress: Progress,
) -> Result<()> {
    if let Some(name) = stdin_name(opts)? {
        return w.stream(std::io::stdin().lock(), name);
    }
    let stop_scan = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        if opts.scan_totals {
            s.spawn(|| crate::scan::scan(operands, &opts.select, own, &stop_scan, progress));
        }
        let walked = operands.iter().try_for_each(|o| {
            w.device = None; // --one-file-system: each operand's own file system
            w.walk(&crate::place::Place::new(&o.path), o.stored.clone())
        });
        stop_scan.store(true, std::sync::atomic::Ordering::Relaxed);
        walked?;
        opts.sources.iter().try_for_each(|s| match s {
            crate::inputs::Source::Archive(name) => w.copy_archive(session, name),
            crate::inputs::Source::Tar(path) => w.tar_file(path),
        })
    })
}

/// Whether `name` is reserved for checkpoints: it ends in `.part` or `.part.N`.
pub fn is_part_name(name: &str) -> bool {
    if name.ends_with(".part") {
        return true;
    }
    match name.rsplit_once(".part.") {
        Some((_, n)) => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Whether archive `archive` is a checkpoint of `name`: `name.part` or `name.part.N`.
fn part_of(archive: &str, name: &str) -> bool {
    match archive.strip_prefix(name).and_then(|r| r.strip_prefix(".part")) {
        Some("") => true,
        Some(n) => {
            n.strip_prefix('.').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::operands::archive_path;
    use std::path::Path;

    #[test]
    fn stored_paths_are_relative_and_normalised() {
        for (given, stored) in [
            ("/home/a", "home/a"),
            ("a/../b", "b"),
            ("../x", "x"),
            ("./a/./b/", "a/b"),
            (".", "."),
            ("/", "."),
        ] {
            assert_eq!(archive_path(Path::new(given)), stored.as_bytes(), "{given}");
        }
    }
}
