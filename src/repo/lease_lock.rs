//! The single-writer lock of a store shared between machines (S3): a lease object, `lock` in the
//! repository, created only if absent (`put_new`), renewed by its holder every third of the TTL,
//! deleted on release. Its text names the holder (owner, host, pid, since when) and a heartbeat
//! counter the renewals advance.
//!
//! Whoever finds the lease taken watches it on its own monotonic clock, never comparing the
//! clocks of two machines: a heartbeat within the TTL means the holder lives, and the lock is
//! refused in one line naming it; a lease unchanged for a whole TTL was left by a dead holder and
//! is broken (deleted, then created again, only if absent), with a notice saying who held it.
//!
//! What a lease cannot do: a holder paused longer than the TTL (a suspended laptop) wakes up
//! believing it still holds the lock after another client broke it. Its renewal then finds
//! another holder's text and stops, and the guard reports the loss (`lost`), but a write already
//! under way may land. Commits stay safe by what does not depend on the lease: each generation's
//! manifest and each transaction's decision are created only if absent, so of two writers one
//! wins and the other stops.

use super::lock::Locker;
use super::LockGuard;
use crate::backend::{Backend, ErrorKind};
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A lease lock on `key` of `backend`, stale after `ttl` without a heartbeat.
pub struct LeaseLock {
    pub backend: Arc<dyn Backend>,
    pub key: String,
    pub ttl: Duration,
}

/// The lease text: who holds it (`holder`: owner and since when), its token, and the heartbeat
/// that proves it alive.
fn lease_text(holder: &str, token: &str, beat: u64) -> String {
    format!("{holder}\ntoken {token}\nbeat {beat}\n")
}

/// The holder a lease text names (its first line), for messages.
fn holder(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let first = text.lines().next().unwrap_or("").trim();
    let first: String = first.chars().filter(|c| !c.is_control()).take(300).collect();
    if first.is_empty() {
        "holder unknown".into()
    } else {
        first
    }
}

impl Locker for LeaseLock {
    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        let token = crate::process::random_id()?;
        let since = crate::process::now_ns() / 1_000_000_000;
        let who = format!("{owner}, since unix time {since}");
        let first = lease_text(&who, &token, 0);
        let mut broke = None;
        // Each round: try to create the lease; if taken, watch it for one TTL.
        for _ in 0..3 {
            match self.backend.put_new(&self.key, first.as_bytes()) {
                Ok(()) => return Ok(Box::new(self.hold(token, who, broke))),
                Err(e) if e.kind == ErrorKind::Exists => {}
                Err(e) => return Err(e).context("cannot take the repository's lock"),
            }
            let seen = match self.backend.get(&self.key) {
                Ok(t) => t,
                Err(e) if e.is_not_found() => continue, // released meanwhile
                Err(e) => return Err(e).context("cannot read the repository's lock"),
            };
            let watch_from = Instant::now();
            loop {
                std::thread::sleep((self.ttl / 10).max(Duration::from_millis(10)));
                match self.backend.get(&self.key) {
                    Ok(now) if now == seen => {}
                    Ok(now) => {
                        return super::lock::locked(format!(
                            "repository is locked by another archiver ({}), which is alive; wait for it to finish, then retry",
                            holder(&now)
                        ))
                    }
                    Err(e) if e.is_not_found() => break, // released: try again
                    Err(e) => return Err(e).context("cannot read the repository's lock"),
                }
                if watch_from.elapsed() >= self.ttl {
                    // Unchanged for a whole TTL on our clock: its holder is gone.
                    self.backend.delete(&self.key).context("cannot remove a stale lock")?;
                    broke = Some(format!(
                        "took over the repository's lock left by a dead archiver ({}): it had not renewed it for {} s",
                        holder(&seen),
                        self.ttl.as_secs()
                    ));
                    break;
                }
            }
        }
        bail!("repository lock changes hands too often to take; retry")
    }
}

impl LeaseLock {
    fn hold(&self, token: String, who: String, notice: Option<String>) -> LeaseGuard {
        let state =
            Arc::new(Renewal { stop: Mutex::new(false), cv: Condvar::new(), lost: AtomicBool::new(false) });
        let (backend, key, every) = (self.backend.clone(), self.key.clone(), self.ttl / 3);
        let s = state.clone();
        let t = token.clone();
        let renewer = std::thread::spawn(move || renew(&*backend, &key, &t, &who, every, &s));
        let check = (self.backend.clone(), self.key.clone(), token);
        LeaseGuard { state, renewer: Some(renewer), notice, check }
    }
}

struct Renewal {
    stop: Mutex<bool>,
    cv: Condvar,
    lost: AtomicBool,
}

/// Advances the heartbeat every `every` (a third of the TTL) while the lease is still ours; on
/// release, deletes it. Renewals overwrite the lease, so a check that it is ours and the write
/// that follows are not atomic: a holder stopped between them for longer than the TTL (SIGSTOP,
/// a suspended laptop) would write its lease over the new holder's. So a renewal, or the delete of
/// a release, is made only while less than a TTL has passed since the last write that kept the
/// lease alive, counted on the boot clock (which counts a suspend, unlike `Instant`); after that
/// the lease is given up as lost (an observer may have broken it), never written. A stop inside
/// the write itself cannot be told from a slow one: a renewal that completes a TTL or more after
/// the last one also gives the lease up (the holder it may have overwritten then finds our token
/// and gives up too: neither goes on, and the lease frees itself after the TTL). The commit's
/// safety does not rest on the lease but on the decision object (`repo::decision`).
fn renew(backend: &dyn Backend, key: &str, token: &str, who: &str, every: Duration, s: &Renewal) {
    let ours = |t: &[u8]| String::from_utf8_lossy(t).lines().any(|l| l == format!("token {token}"));
    let ttl = every * 3;
    let mut kept_alive = boot_clock();
    let mut beat = 0u64;
    loop {
        let stop = s.stop.lock().unwrap_or_else(|p| p.into_inner());
        let (stop, _) =
            s.cv.wait_timeout_while(stop, every, |stop| !*stop).unwrap_or_else(|p| p.into_inner());
        let released = *stop;
        drop(stop);
        let still_ours = match backend.get(key) {
            Ok(t) => ours(&t),
            Err(e) if e.is_not_found() => false,
            // Unreadable now: try again at the next beat (a release leaves the lease to lapse).
            Err(_) if released => return,
            Err(_) => continue,
        };
        if !still_ours || boot_clock().saturating_sub(kept_alive) >= ttl {
            s.lost.store(true, Ordering::SeqCst);
            return;
        }
        if released {
            let _ = backend.delete(key);
            return;
        }
        beat += 1;
        // A failed renewal is retried at the next beat; two missed in a row let the lease lapse.
        let before = boot_clock();
        let written = backend.put(key, lease_text(who, token, beat).as_bytes()).is_ok();
        if boot_clock().saturating_sub(kept_alive) >= ttl {
            s.lost.store(true, Ordering::SeqCst);
            return;
        }
        if written {
            kept_alive = before;
        }
    }
}

/// Time since boot, suspends included (CLOCK_BOOTTIME).
fn boot_clock() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return Duration::ZERO; // not expected on Linux; then no lease is ever given up early
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Holds the lease while it lives.
pub struct LeaseGuard {
    state: Arc<Renewal>,
    renewer: Option<JoinHandle<()>>,
    notice: Option<String>,
    /// Where the lease is and its token, to check it is still ours (`still_held`).
    check: (Arc<dyn Backend>, String, String),
}

impl LockGuard for LeaseGuard {
    fn notice(&self) -> Option<String> {
        self.notice.clone()
    }

    /// Whether the lease was found held by another (this holder was presumed dead).
    fn lost(&self) -> bool {
        self.state.lost.load(Ordering::SeqCst)
    }

    /// Reads the lease now: not ours once it is gone or carries another token. A lease that
    /// cannot be read (the store is unreachable) is not known to be lost.
    fn still_held(&self) -> bool {
        let (backend, key, token) = &self.check;
        let ours = |t: &[u8]| String::from_utf8_lossy(t).lines().any(|l| l == format!("token {token}"));
        !self.lost()
            && match backend.get(key) {
                Ok(t) => ours(&t),
                Err(e) => !e.is_not_found(),
            }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        *self.state.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.state.cv.notify_all();
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
    }
}

#[cfg(test)]
#[path = "lease_lock_tests.rs"]
mod tests;
