//! `delete`: removes archives and reclaims the space only they used. It takes the lock, finishes
//! or recovers an interrupted write first, then reclaims (`reclaim`, which holds the live-set and
//! repack logic shared with recovery, create and `fsck --prune`).

use crate::access::Perm;
use crate::progress::Progress;
use crate::session::Session;
use anyhow::{bail, Result};

pub use crate::reclaim::DeleteResult;

pub fn delete(session: &Session, names: &[String], progress: Progress) -> Result<DeleteResult> {
    if names.is_empty() {
        bail!("no archive names given: `archiver list` shows the archives");
    }
    session.require(&[Perm::Read, Perm::Delete], "delete archives")?;
    let _writing = crate::txn::lock(session, "delete", progress, Default::default())?;
    crate::reclaim::delete_locked(session, names, progress)
}
