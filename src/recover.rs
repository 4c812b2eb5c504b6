//! Recovery of interrupted transactions, run under the lock at the start of every write command.
//! It works from the repository's state alone: no local file is consulted.
//!
//! - commit record present: the commit was decided; roll it forward (`finish`).
//! - checkpoint record present: commit the archive it describes as `NAME.part` (replacing an
//!   older `NAME.part`, whose space is then reclaimed); everything the transaction uploaded after
//!   that checkpoint is deleted by the same commit (it keeps only what the record names).
//! - otherwise: discard everything the transaction uploaded.
//!
//! Partial uploads (objects a killed writer was in the middle of storing) are removed first.

use crate::access::Perm;
use crate::manifest::Checkpoint;
use crate::progress::{Event, Progress};
use crate::repo::CommitRequest;
use crate::session::Session;
use anyhow::{Context, Result};

pub fn recover(session: &Session, progress: Progress) -> Result<()> {
    recover_with(session, progress, !session.can(Perm::Delete))
}

/// `recover`, keeping the manifest generations its commits supersede if `keep_history` (always
/// without the delete permission; a rollback keeps them too, whatever the key).
pub fn recover_with(session: &Session, progress: Progress, keep_history: bool) -> Result<()> {
    // Under the lock no upload of ours is under way: partial uploads belong to dead writers.
    session.repo.clean_partial().context("cannot remove partial uploads")?;
    let pending = session.repo.pending().context("cannot list pending transactions")?;
    if !pending.is_empty() {
        session.require(&[Perm::Write], "finish or discard the interrupted write it found")?;
    }
    for p in pending {
        let what = p
            .intent
            .as_ref()
            .and_then(|i| session.keys.open(format!("archiver intent {}", p.txn).as_bytes(), i).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|| "write".to_string());
        if let (false, Some(record)) = (p.committing, &p.checkpoint) {
            let ck = Checkpoint::open(&session.keys, &p.txn, record)?;
            crate::failpoint::hit("recover-promoting");
            let (mut m, _) = session.head()?;
            let replaced = m.find(&ck.archive.name).is_some();
            m.gen += 1;
            m.txn = p.txn.clone();
            m.insert(ck.archive.clone());
            m.indexes.extend(ck.indexes.iter().cloned());
            let req = CommitRequest {
                gen: m.gen,
                manifest: m.seal(&session.keys),
                keep_packs: ck.packs.clone(),
                keep_indexes: ck.indexes.clone(),
                keep_history,
                ..Default::default()
            };
            session
                .repo
                .commit(&p.txn, &req)
                .with_context(|| format!("cannot commit the checkpoint of `{what}`"))?;
            progress(Event::Notice(format!(
                "recovered: committed the last checkpoint of an interrupted `{what}` as {:?} ({} files); discarded what was uploaded after it",
                ck.archive.name, ck.archive.stats.files
            )));
            if replaced && keep_history {
                progress(Event::Notice(format!(
                    "the replaced {:?} stays in the previous manifest generation (kept history); its space is reclaimed by `archiver fsck --prune` with a delete key",
                    ck.archive.name
                )));
            } else if replaced {
                crate::delete::delete_locked(session, &[], progress)
                    .context("cannot reclaim the space of the replaced checkpoint")?;
            }
            continue;
        }
        if p.committing {
            session
                .repo
                .finish(&p.txn)
                .with_context(|| format!("cannot finish interrupted transaction {}", p.txn))?;
            progress(Event::Notice(format!("recovered: finished the commit of an interrupted `{what}`")));
        } else {
            session
                .repo
                .abort(&p.txn)
                .with_context(|| format!("cannot discard interrupted transaction {}", p.txn))?;
            progress(Event::Notice(format!(
                "recovered: discarded an interrupted `{what}`; none of it had been committed"
            )));
        }
    }
    Ok(())
}
