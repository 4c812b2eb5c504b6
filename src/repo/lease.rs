//! The HTTP client's side of the lock lease: the guard that renews and releases it (`LeaseGuard`),
//! and what lets a transaction survive a server restart (`Ledger`).
//!
//! A restarted server has forgotten every lease, so the next write of a transaction in flight is
//! refused (409). The client may then take the lock again and go on, but only if nobody touched
//! the transaction meanwhile: another client that held the lock would have recovered it (every
//! write command recovers first), committing its checkpoint or deleting what it uploaded, and a
//! recovery killed half-way leaves part of that done. So the client keeps a `Ledger` of what each
//! of its transactions stored, and after re-taking the lock resumes only if the transaction is
//! still pending and uncommitted, with the checkpoint it last stored (or none), and with every
//! pack and index segment it stored still present. Otherwise the write fails as before and the
//! next command recovers.

use super::http_wire::Wire;
use super::protocol::Route;
use super::{LockGuard, Pending};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one transaction of this client stored, acknowledged by the server.
#[derive(Default)]
struct Stored {
    packs: HashSet<String>,
    indexes: HashSet<String>,
    checkpoint: Option<blake3::Hash>,
}

#[derive(Default)]
pub struct Ledger {
    txns: Mutex<HashMap<String, Stored>>,
}

impl Ledger {
    fn with(&self, txn: &str, f: impl FnOnce(&mut Stored)) {
        f(self.txns.lock().unwrap_or_else(|p| p.into_inner()).entry(txn.to_string()).or_default())
    }
    pub fn begun(&self, txn: &str) {
        self.with(txn, |_| {});
    }
    pub fn pack(&self, txn: &str, name: &str) {
        self.with(txn, |s| {
            s.packs.insert(name.to_string());
        });
    }
    pub fn index(&self, txn: &str, name: &str) {
        self.with(txn, |s| {
            s.indexes.insert(name.to_string());
        });
    }
    pub fn checkpoint(&self, txn: &str, record: &[u8]) {
        self.with(txn, |s| s.checkpoint = Some(blake3::hash(record)));
    }
    pub fn ended(&self, txn: &str) {
        self.txns.lock().unwrap_or_else(|p| p.into_inner()).remove(txn);
    }

    pub fn knows(&self, txn: &str) -> bool {
        self.txns.lock().unwrap_or_else(|p| p.into_inner()).contains_key(txn)
    }

    /// Whether the repository still holds `txn` exactly as this client left it.
    pub fn untouched(&self, txn: &str, pending: &[Pending], packs: &[String], indexes: &[String]) -> bool {
        let txns = self.txns.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ours) = txns.get(txn) else { return false };
        let Some(p) = pending.iter().find(|p| p.txn == txn) else { return false };
        let packs: HashSet<&str> = packs.iter().map(String::as_str).collect();
        let indexes: HashSet<&str> = indexes.iter().map(String::as_str).collect();
        !p.committing
            && p.intent.is_some()
            && p.checkpoint.as_deref().map(blake3::hash) == ours.checkpoint
            && ours.packs.iter().all(|n| packs.contains(n.as_str()))
            && ours.indexes.iter().all(|n| indexes.contains(n.as_str()))
    }
}

/// Renews the lease in the background while it lives; releases it when dropped.
pub struct LeaseGuard {
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
    release: Box<dyn Fn() + Send>,
}

impl LeaseGuard {
    /// Keeps the lease whose token `wire` holds for as long as the guard lives: a thread renews
    /// it every third of `ttl`, and dropping the guard releases it. The token may change while
    /// the guard lives (`HttpRepo::relock`): renewals and the release use whichever is current.
    ///
    /// A renewal lost to the network is tried again within a second rather than a third of the
    /// lease later, so a short outage does not cost the lease; at most four renewals a second,
    /// however short the lease (`http_body::lease_ttl`). A lease that already ran out (409) is
    /// not renewed: the next write takes the lock again (`relock`).
    pub(super) fn start(wire: Wire, ttl: Duration) -> LeaseGuard {
        let stop = Arc::new(AtomicBool::new(false));
        let (w, stop2) = (wire.clone(), stop.clone());
        let renewer = std::thread::spawn(move || {
            let mut wait = ttl / 3;
            while !stop2.load(Ordering::Relaxed) {
                std::thread::park_timeout(wait);
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Some(token) = w.token() else { break };
                let renew = w.client.post(format!("{}/{}", w.base, Route::RenewLock(&token).path()));
                wait = match w.status_only("renewing the lock", renew) {
                    Some(s) if (200..300).contains(&s) || (400..500).contains(&s) => ttl / 3,
                    _ => (ttl / 10).clamp(Duration::from_millis(250), Duration::from_secs(1)),
                };
            }
        });
        let release = Box::new(move || {
            let token = wire.token.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(token) = token {
                let rb = wire.client.delete(format!("{}/{}", wire.base, Route::ReleaseLock(&token).path()));
                let _ = wire.status_only("releasing the lock", rb);
            }
        });
        LeaseGuard { stop, renewer: Some(renewer), release }
    }
}

impl LockGuard for LeaseGuard {}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.renewer.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        (self.release)();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(txn: &str, checkpoint: Option<&[u8]>, committing: bool) -> Vec<Pending> {
        vec![Pending {
            txn: txn.into(),
            intent: Some(b"i".to_vec()),
            checkpoint: checkpoint.map(<[u8]>::to_vec),
            checkpoint_seqs: Vec::new(),
            committing,
        }]
    }

    #[test]
    fn resumes_only_an_untouched_transaction() {
        let l = Ledger::default();
        l.begun("t");
        l.pack("t", "t/0");
        l.index("t", "t-0");
        l.checkpoint("t", b"ck");
        let (p, i) = (vec!["t/0".to_string(), "u/0".to_string()], vec!["t-0".to_string()]);
        assert!(l.untouched("t", &pending("t", Some(b"ck"), false), &p, &i));
        assert!(!l.untouched("t", &pending("t", Some(b"ck"), true), &p, &i), "being committed");
        assert!(!l.untouched("t", &pending("t", None, false), &p, &i), "checkpoint removed");
        assert!(!l.untouched("t", &pending("t", Some(b"other"), false), &p, &i), "another checkpoint");
        assert!(!l.untouched("t", &[], &p, &i), "recovered");
        assert!(!l.untouched("t", &pending("t", Some(b"ck"), false), &p[1..], &i), "a pack deleted");
        assert!(!l.untouched("t", &pending("t", Some(b"ck"), false), &p, &[]), "a segment deleted");
        assert!(!l.untouched("x", &pending("x", None, false), &p, &i), "not ours");
        l.ended("t");
        assert!(!l.knows("t"));
    }
}
