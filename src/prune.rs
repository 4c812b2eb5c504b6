//! `prune --keep-*`: applies a retention policy (`retention`) to the archives whose names match a
//! glob and deletes the rest, with the space only they used, in one transaction (`reclaim`, as
//! `delete` does: a crash keeps the old state whole or rolls the delete forward).
//!
//! Invariants: the policy is applied to the manifest read under the lock, after recovery (so a
//! `NAME.part` an interrupted run left is committed and judged first); an empty policy is refused
//! before anything is read; a dry run takes no lock, needs no permission beyond listing, and
//! writes nothing.

use crate::access::Perm;
use crate::calendar::Zone;
use crate::manifest::ArchiveRef;
use crate::progress::Progress;
use crate::reclaim::DeleteResult;
use crate::retention::{apply, Decision, Policy};
use crate::session::Session;
use anyhow::{bail, Result};

#[derive(Clone, Debug)]
pub struct PruneOptions {
    pub policy: Policy,
    /// Only archives whose names match this shell glob take part (all when `None`).
    pub glob: Option<String>,
    pub dry_run: bool,
    /// The zone calendar periods are read in (the CLI uses the local one).
    pub zone: Zone,
}

#[derive(Debug, Default)]
pub struct PruneResult {
    /// One decision per selected archive, newest first.
    pub decisions: Vec<Decision>,
    /// What the delete did (`None`: a dry run, or nothing to remove).
    pub deleted: Option<DeleteResult>,
}

impl PruneResult {
    pub fn removed(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }
}

pub fn prune(session: &Session, opts: &PruneOptions, progress: Progress) -> Result<PruneResult> {
    if opts.policy.is_empty() {
        bail!(
            "no retention rule given: pass at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly or --keep-within"
        );
    }
    let glob = crate::query::Glob::new(opts.glob.as_deref())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let plan = |session: &Session| -> Result<Vec<Decision>> {
        let head = session.head()?;
        let selected: Vec<ArchiveRef> =
            head.0.archives.into_iter().filter(|a| glob.matches(&a.name)).collect();
        Ok(apply(&selected, &opts.policy, now, opts.zone))
    };
    if opts.dry_run {
        return Ok(PruneResult { decisions: plan(session)?, deleted: None });
    }
    session.require(&[Perm::Read, Perm::Delete], "prune archives")?;
    let _writing = crate::txn::lock(session, "prune", progress, Default::default())?;
    let decisions = plan(session)?;
    let remove: Vec<String> = decisions.iter().filter(|d| !d.keep).map(|d| d.name.clone()).collect();
    let deleted = if remove.is_empty() {
        None
    } else {
        Some(crate::reclaim::delete_locked(session, &remove, progress)?)
    };
    Ok(PruneResult { decisions, deleted })
}
