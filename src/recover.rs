//! Recovery of interrupted transactions, run under the lock at the start of every write command.
//! It works from the repository's state alone: no local file is consulted.
//!
//! - commit record present: the commit was decided; roll it forward (`finish`).
//! - otherwise: discard everything the transaction uploaded.
//!
//! Partial uploads (objects a killed writer was in the middle of storing) are removed first.

use crate::progress::{Event, Progress};
use crate::session::Session;
use anyhow::{Context, Result};

pub fn recover(session: &Session, progress: Progress) -> Result<()> {
    // Under the lock no upload of ours is under way: partial uploads belong to dead writers.
    session.repo.clean_partial().context("cannot remove partial uploads")?;
    let pending = session.repo.pending().context("cannot list pending transactions")?;
    for p in pending {
        let what = p
            .intent
            .as_ref()
            .and_then(|i| session.keys.open(format!("archiver intent {}", p.txn).as_bytes(), i).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|| "write".to_string());
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
