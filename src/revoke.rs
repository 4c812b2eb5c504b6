//! Revoking write keys (`archiver keymgmt --revoke-write`): when the machine holding a write key
//! is lost or stolen, a holder of the delete key retires the write key in force and puts a new
//! one in force, by storing the next access list (`access::list`). From then on `archiver
//! serve` refuses every request signed with a retired key, and clients refuse to write with one
//! (`Session::require`) on any repository. Invariant: the list is stored before anyone holds the
//! new key (a crash in between leaves a key nobody holds, and running the revocation again puts
//! another in force), and two revocations racing store one generation: the other is told in one
//! line.

use crate::access::list::AccessList;
use crate::access::{AccessKeys, Perm, Verifiers};
use crate::backend::ErrorKind;
use crate::session::Session;
use anyhow::{bail, Context, Result};

/// What a revocation did.
pub struct Revoked {
    pub list: AccessList,
    /// The new write key's secret, for the key file that gets it.
    pub write_seed: [u8; 32],
}

/// Retires the write key in force in `session`'s repository and stores a new one; `now` in Unix
/// seconds is recorded as when.
pub fn revoke_write(session: &Session, now: u64) -> Result<Revoked> {
    if !session.access.has(Perm::Delete) {
        bail!(
            "key file {} cannot revoke write keys: that needs the delete key, and it holds {}",
            session.settings.keyfile.display(),
            session.access.describe()
        );
    }
    let repo = &session.settings.repo;
    let config = session
        .repo
        .read_config()
        .with_context(|| format!("cannot read repository {repo}"))?
        .with_context(|| format!("repository {repo} has no config"))?;
    let base = Verifiers::from_config(&config)
        .with_context(|| format!("repository {repo} has a damaged config file (its access verifiers)"))?;
    let current =
        session.repo.access_list().with_context(|| format!("cannot read the access list of {repo}"))?;
    let prev = match current {
        Some(bytes) => Some(
            AccessList::decode(&bytes, &session.repo_id, &base)
                .map_err(|e| anyhow::anyhow!("repository {repo} has a damaged access list ({e})"))?,
        ),
        None => None,
    };
    let mut write_seed = [0u8; 32];
    getrandom::getrandom(&mut write_seed).context("reading the system's random number generator")?;
    let mut new = AccessKeys::default();
    new.set(Perm::Write, write_seed);
    let new_write = *new.verifiers().get(Perm::Write).expect("the write key was just set");
    let list = AccessList::next(prev.as_ref(), &base, new_write, now).map_err(anyhow::Error::msg)?;
    let bytes = list.encode(&session.repo_id, &session.access).expect("the delete key is held");
    match session.repo.put_access_list(list.generation, &bytes) {
        Ok(()) => Ok(Revoked { list, write_seed }),
        Err(e) if e.kind == ErrorKind::Exists => bail!(
            "another revocation of repository {repo} was stored at the same time (access list {}); nothing was changed by this one: run it again to retire that one's write key too",
            list.generation
        ),
        Err(e) => Err(anyhow::anyhow!("cannot store the access list of {repo}: {e}")),
    }
}
