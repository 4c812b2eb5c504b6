//! Pass 2 of extract: the files, restored in archive order. The archive's metadata is read again
//! (from the blocks pass 1 kept in `Scratch`, no download), each file the plan accepted becomes a
//! job with its blocks located (`reader::locate`, one file at a time), and a bounded queue feeds
//! `RESTORERS` threads (`file::restore`). Memory: the queue, the files being restored and one
//! metadata block, whatever the size of the archive. Hard links restored as copies come last.
//!
//! A file whose blocks cannot be located or fetched fails alone (a warning, then extract fails at
//! the end listing how many); a failure writing locally stops every thread at its next step and
//! is returned (`Outcome::fatal`).

use super::file::{self, Failure, Job};
use super::plan::{self, Planned};
use super::scratch::Scratch;
use super::{show, ExtractOptions, Report, RESTORERS};
use crate::archive::Node;
use crate::cache::Cache;
use crate::manifest::ArchiveRef;
use crate::owners::Names;
use crate::progress::Event;
use crate::reader::{self, NodeStream};
use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What pass 2 needs besides the archive.
pub(super) struct Files<'a> {
    pub ctx: &'a file::Ctx<'a>,
    pub opts: &'a ExtractOptions,
    pub report: &'a Report<'a>,
    /// Why an entry at a path cannot be restored (a directory on its way was unusable), if so.
    pub blocked: &'a (dyn Fn(&[u8]) -> Option<String> + Sync),
}

/// How pass 2 ended (besides what it reported on the way).
pub(super) struct Outcome {
    /// Files that could not be restored (each one reported).
    pub failed: u64,
    /// The first local failure, which stopped the restore.
    pub fatal: Option<anyhow::Error>,
}

/// Restores the planned files of `a`; `names` maps owners by name (as root).
pub(super) fn files(
    f: &Files,
    cache: &Cache,
    a: &ArchiveRef,
    db: &Scratch,
    planned: &Planned,
    mut names: Option<Names>,
) -> Result<Outcome> {
    let failed = AtomicU64::new(0);
    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(2 * RESTORERS);
        for i in 0..RESTORERS {
            let (rx, failed, fatal) = (rx.clone(), &failed, &fatal);
            std::thread::Builder::new()
                .name(format!("restore-{i}"))
                .spawn_scoped(s, move || {
                    for job in rx {
                        one(f, &job, failed, fatal);
                    }
                })
                .context("cannot start the restoring threads")?;
        }
        drop(rx);
        // The queue closes when `tx` goes, on every way out: then the threads end.
        let mut send = |mut node: Node| -> bool {
            if f.ctx.stop.load(Ordering::Relaxed) {
                return false;
            }
            if let Some(n) = names.as_mut() {
                (node.uid, node.gid) = n.ids(&node);
            }
            match job(f.opts, cache, node) {
                Ok(job) => tx.send(job).is_ok(),
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    f.report.progress(Event::Warning(format!("{e:#}")));
                    true
                }
            }
        };
        let (_, stream) = NodeStream::open(a, |id: &_| plan::stored_meta(db, id))?;
        for (seq, node) in (0u64..).zip(stream) {
            let node = node?;
            if planned.files.get(seq) && !send(node) {
                return Ok(());
            }
        }
        if planned.copies {
            db.each_copy(|link, source| {
                match source {
                    Some(file) => _ = send(Node { path: link.path, ..file }),
                    None => f.report.skip(
                        &link.path,
                        &format!(
                            "it is a hard link to {}, which is not a file restored before it",
                            crate::query::escape(&link.target)
                        ),
                    ),
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(Outcome { failed: failed.into_inner(), fatal: fatal.into_inner().unwrap_or_else(|p| p.into_inner()) })
}

/// The job restoring file `node`: where it goes and where each of its blocks is stored.
fn job(opts: &ExtractOptions, cache: &Cache, node: Node) -> Result<Job> {
    let locs = (node.blocks.iter().map(|(id, _)| reader::locate(cache, id)))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("archive {:?}: {}", opts.name, show(&node.path)))?;
    let ids = node.blocks.iter().map(|(id, _)| *id).collect();
    let target = opts.dir.join(OsStr::from_bytes(&node.path));
    Ok(Job { node, target, ids, locs })
}

/// Restores one file, reporting what became of it.
fn one(f: &Files, job: &Job, failed: &AtomicU64, fatal: &Mutex<Option<anyhow::Error>>) {
    let (node, report) = (&job.node, f.report);
    if f.ctx.stop.load(Ordering::Relaxed) {
        return;
    }
    if let Some(why) = (f.blocked)(&node.path) {
        report.skip(&node.path, &why);
        return;
    }
    report.progress(Event::File(show(&node.path)));
    let restored = file::restore(f.ctx, job);
    report.progress(Event::Advance { files: 1, bytes: node.size });
    if restored.is_ok() && node.partial {
        report.warn(format!(
            "{} was cut short when the archive was made (it is marked [partial]: a checkpoint or a read error ended it): restored its first {} bytes only, and its mtime is the time of the restore, so that it is not taken for the complete file",
            show(&node.path),
            node.size
        ));
    }
    match restored {
        Ok(None) | Err(Failure::Stopped) => {}
        Ok(Some(n)) => report.note(&node.path, &n),
        Err(Failure::Skip(why)) => report.skip(&node.path, &why),
        Err(Failure::Local(e)) => {
            f.ctx.stop.store(true, Ordering::Relaxed);
            fatal.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
        Err(Failure::File(e)) => {
            failed.fetch_add(1, Ordering::Relaxed);
            report.progress(Event::Warning(format!(
                "archive {:?}: {}: {e:#}",
                f.opts.name,
                show(&node.path)
            )));
        }
    }
}
