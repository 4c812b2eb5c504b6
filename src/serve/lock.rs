//! The server's single-writer locks: leases. A client takes a repository's lock and gets a
//! token; it renews the lease (every third of its length) for as long as it works, and releases
//! it when done. A client killed with `kill -9` stops renewing, and its lease runs out after
//! `ttl`: the next client then takes the lock (and recovers the dead client's transaction).
//!
//! While a lease is held the server also holds the repository's own lock (its `Locker`: for a
//! local directory the `flock`), so a local archiver working on the same directory is excluded
//! too. Every write must carry the current token; a
//! client whose lease ran out gets 409 and can never write into the next holder's transaction.

use crate::repo::{LockGuard, Repository};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Lease {
    token: String,
    owner: String,
    expires: Instant,
    _flock: Box<dyn LockGuard>,
}

pub struct Locks {
    ttl: Duration,
    held: Mutex<HashMap<String, Lease>>,
}

/// Why a lock could not be taken: who holds it, and when its lease runs out.
pub struct Taken {
    pub owner: String,
    pub remaining: Duration,
}

impl Locks {
    pub fn new(ttl: Duration) -> Locks {
        Locks { ttl, held: Mutex::new(HashMap::new()) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the lock of repository `repo` (opened as `r`) for `owner`.
    pub fn take(&self, repo: &str, r: &dyn Repository, owner: &str) -> Result<String, Result<Taken, String>> {
        let mut t = self.table();
        let now = Instant::now();
        if let Some(l) = t.get(repo) {
            if l.expires > now {
                return Err(Ok(Taken { owner: l.owner.clone(), remaining: l.expires - now }));
            }
            t.remove(repo); // expired: its holder is gone
        }
        let flock =
            r.lock(&format!("{owner} (through archiver serve)")).map_err(|e| Err(format!("{e:#}")))?;
        let token = crate::process::random_id().map_err(|e| Err(format!("{e:#}")))?;
        t.insert(
            repo.to_string(),
            Lease { token: token.clone(), owner: owner.to_string(), expires: now + self.ttl, _flock: flock },
        );
        Ok(token)
    }

    /// Extends the lease; false if `token` does not hold it (any more).
    pub fn renew(&self, repo: &str, token: &str) -> bool {
        let mut t = self.table();
        let now = Instant::now();
        match t.get_mut(repo) {
            Some(l) if l.token == token && l.expires > now => {
                l.expires = now + self.ttl;
                true
            }
            _ => false,
        }
    }

    /// True if `token` holds a live lease on `repo`.
    pub fn holds(&self, repo: &str, token: Option<&str>) -> bool {
        let t = self.table();
        matches!((t.get(repo), token), (Some(l), Some(tok)) if l.token == tok && l.expires > Instant::now())
    }

    pub fn release(&self, repo: &str, token: &str) {
        let mut t = self.table();
        if t.get(repo).is_some_and(|l| l.token == token) {
            t.remove(repo);
        }
    }
}
