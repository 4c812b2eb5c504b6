//! Where retry lives: one `Policy` (how many attempts, how long between them) and the decorator
//! `Retrying`, which applies it to every operation of any `Backend`. `repo::retrying` applies the
//! same policy to a `Repository` (the HTTP client's calls). No backend or client loops itself:
//! it makes one attempt and reports a failure worth retrying as `ErrorKind::Transient`.
//!
//! The policy retries only `Transient` errors, never a permanent one, a missing object or a full
//! store. Between attempts it sleeps with exponential backoff and decorrelated jitter (each wait
//! drawn between the base delay and three times the previous wait, capped), so clients that
//! failed together do not come back together. A store that names a wait (`Retry-After`,
//! `StoreError::retry_after`) is waited for at least that long, but never more than
//! `MAX_RETRY_AFTER` (5 minutes): a hostile or broken server cannot park a client forever. The
//! number of attempts is `ARCHIVER_RETRIES` (default 8, about 20 seconds of waiting; `forever`
//! never gives up); the last error then says how many attempts were made.
//!
//! Invariant: an operation is attempted again only after a `Transient` failure, so everything a
//! `Policy` runs must be idempotent: the same call again after a lost answer leaves the same
//! state. Every backend operation is, except that `put_new` may then find its own object
//! (`Retrying::put_new` accepts it when the bytes are the same).

use super::{Backend, ErrorKind, StoreError, StoreResult};
use std::time::Duration;

/// The longest wait a store's `Retry-After` can impose between two attempts.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How a transient failure is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all, the first included (at least 1); None: until it succeeds.
    pub attempts: Option<u32>,
    /// The shortest wait between attempts, and where the backoff starts.
    pub base: Duration,
    /// The longest wait the backoff itself reaches (a `Retry-After` may ask for more).
    pub cap: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { attempts: Some(8), base: Duration::from_millis(200), cap: Duration::from_secs(10) }
    }
}

impl Policy {
    /// The default policy with `ARCHIVER_RETRIES` attempts: a number, or `forever`.
    pub fn from_env() -> anyhow::Result<Policy> {
        let attempts = match std::env::var("ARCHIVER_RETRIES").ok().as_deref() {
            Some("forever") => None,
            Some(n) => Some(n.parse::<u32>().map_err(|_| {
                anyhow::anyhow!("ARCHIVER_RETRIES={n}: give a number of attempts, or `forever`")
            })?),
            None => Policy::default().attempts,
        };
        Ok(Policy { attempts: attempts.map(|n| n.max(1)), ..Policy::default() })
    }

    /// Runs `op` until it succeeds, fails with an error that is not `Transient`, or has used
    /// every attempt. `what` names the operation in the final error if its message does not.
    pub fn run<T>(&self, what: &str, mut op: impl FnMut() -> StoreResult<T>) -> StoreResult<T> {
        let mut attempt = 0u32;
        let mut wait = self.base;
        loop {
            attempt += 1;
            let err = match op() {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if err.kind != ErrorKind::Transient {
                return Err(err);
            }
            if self.attempts.is_some_and(|n| attempt >= n) {
                return Err(gave_up(err, what, attempt));
            }
            wait = self.next_wait(wait);
            let asked = err.retry_after.map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER));
            std::thread::sleep(wait.max(asked));
        }
    }

    /// Decorrelated jitter: a random wait between the base and three times the previous one,
    /// held to the cap.
    fn next_wait(&self, previous: Duration) -> Duration {
        let high = previous.saturating_mul(3).max(self.base);
        let span = high.saturating_sub(self.base).as_nanos() as u64;
        let extra = if span == 0 { 0 } else { random_u64() % (span + 1) };
        (self.base + Duration::from_nanos(extra)).min(self.cap.max(self.base))
    }
}

/// The last transient error, saying that retrying stopped.
fn gave_up(err: StoreError, what: &str, attempts: u32) -> StoreError {
    let msg = if err.msg.starts_with(what) { err.msg } else { format!("{what}: {}", err.msg) };
    StoreError::new(
        ErrorKind::Transient,
        format!("{msg} (gave up after {attempts} attempts; ARCHIVER_RETRIES=forever keeps trying)"),
    )
}

/// Random bits for the jitter; without a random source the jitter is lost, not the retry.
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::getrandom(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => 0,
    }
}

/// A backend whose every operation is retried under `policy`.
pub struct Retrying<B> {
    inner: B,
    policy: Policy,
}

impl<B: Backend> Retrying<B> {
    pub fn new(inner: B, policy: Policy) -> Retrying<B> {
        Retrying { inner, policy }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend> Backend for Retrying<B> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.policy.run(&format!("storing {key}"), || self.inner.put(key, data))
    }
    /// A retry after a lost answer finds the object the lost attempt stored: that is success
    /// when it holds exactly `data`, and `Exists` otherwise.
    fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        let mut retried = false;
        self.policy.run(&format!("creating {key}"), || match self.inner.put_new(key, data) {
            Err(e)
                if e.kind == ErrorKind::Exists && retried && self.inner.get(key).is_ok_and(|b| b == data) =>
            {
                Ok(())
            }
            Err(e) => {
                retried |= e.kind == ErrorKind::Transient;
                Err(e)
            }
            Ok(()) => Ok(()),
        })
    }
    fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
        self.policy.run(&format!("reading {key}"), || self.inner.get(key))
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.policy.run(&format!("reading {key}"), || self.inner.get_range(key, offset, len))
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.policy.run(&format!("listing {prefix}"), || self.inner.list(prefix))
    }
    fn delete(&self, key: &str) -> StoreResult<()> {
        self.policy.run(&format!("deleting {key}"), || self.inner.delete(key))
    }
    fn size(&self, key: &str) -> StoreResult<u64> {
        self.policy.run(&format!("reading the size of {key}"), || self.inner.size(key))
    }
    fn clean_partial(&self) -> StoreResult<()> {
        self.policy.run("removing partial uploads", || self.inner.clean_partial())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::faulty::{Fault, FaultyBackend, Op};
    use crate::backend::memory::MemoryBackend;
    use std::time::Instant;

    fn quick(attempts: u32) -> Policy {
        Policy { attempts: Some(attempts), base: Duration::from_millis(1), cap: Duration::from_millis(5) }
    }

    /// The first `n` calls of `op` on keys under `prefix` fail with `kind`.
    fn failing(op: Op, prefix: &str, n: usize, kind: ErrorKind) -> FaultyBackend<MemoryBackend> {
        FaultyBackend::new(MemoryBackend::new(), (1..=n).map(|i| Fault::new(op, prefix, i, kind)).collect())
    }

    #[test]
    fn transient_faults_are_retried_until_the_call_succeeds() {
        let b = Retrying::new(failing(Op::Put, "packs/", 3, ErrorKind::Transient), quick(4));
        b.put("packs/t/1", b"data").expect("the fourth attempt succeeds");
        assert!(b.inner().unfired().is_empty());
        assert_eq!(b.get("packs/t/1").unwrap(), b"data");
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        for kind in [ErrorKind::Permanent, ErrorKind::NotFound, ErrorKind::NoSpace, ErrorKind::Exists] {
            let b = Retrying::new(failing(Op::Get, "", 2, kind), quick(8));
            b.inner().put("k", b"v").unwrap();
            assert_eq!(b.get("k").unwrap_err().kind, kind);
            assert_eq!(b.inner().unfired().len(), 1, "{kind:?} was retried");
        }
    }

    #[test]
    fn the_attempts_limit_ends_retrying_and_says_so() {
        let b = Retrying::new(failing(Op::List, "index/", 5, ErrorKind::Transient), quick(3));
        let e = b.list("index/").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.msg.contains("gave up after 3 attempts; ARCHIVER_RETRIES=forever keeps trying"), "{e}");
        assert!(e.msg.starts_with("listing index/: injected fault"), "{e}");
        assert_eq!(b.inner().unfired().len(), 2);
        // Unlimited attempts outlast any number of faults.
        let forever = Policy { attempts: None, ..quick(1) };
        let b = Retrying::new(failing(Op::Size, "", 20, ErrorKind::Transient), forever);
        b.inner().put("k", b"12").unwrap();
        assert_eq!(b.size("k").unwrap(), 2);
    }

    #[test]
    fn a_retried_create_finds_its_own_object() {
        let lost = Fault::new(Op::PutNew, "manifest/", 1, ErrorKind::Transient).answer_lost();
        let b = Retrying::new(FaultyBackend::new(MemoryBackend::new(), vec![lost]), quick(3));
        b.put_new("manifest/1", b"m").expect("the object the lost answer stored is ours");
        assert_eq!(b.put_new("manifest/1", b"m").unwrap_err().kind, ErrorKind::Exists, "not retried: taken");
        // Taken by someone else before our first attempt, which was lost: the retry is refused.
        let lost = Fault::new(Op::PutNew, "manifest/", 1, ErrorKind::Transient);
        let b = Retrying::new(FaultyBackend::new(MemoryBackend::new(), vec![lost]), quick(3));
        b.inner().put("manifest/2", b"theirs").unwrap();
        assert_eq!(b.put_new("manifest/2", b"ours").unwrap_err().kind, ErrorKind::Exists);
    }

    #[test]
    fn a_wait_the_store_asks_for_is_honoured_within_bounds() {
        let asked = Duration::from_millis(150);
        let mut calls = 0;
        let start = Instant::now();
        let got = quick(3).run("reading x", || {
            calls += 1;
            match calls {
                1 => Err(StoreError::new(ErrorKind::Transient, "busy").with_retry_after(Some(asked))),
                _ => Ok(calls),
            }
        });
        assert_eq!(got.unwrap(), 2);
        assert!(start.elapsed() >= asked, "retried after {:?}", start.elapsed());
        assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(300));
    }

    #[test]
    fn waits_grow_with_jitter_and_stay_between_base_and_cap() {
        let p = Policy { attempts: None, base: Duration::from_millis(100), cap: Duration::from_secs(10) };
        let (mut wait, mut waits) = (p.base, Vec::new());
        for _ in 0..40 {
            wait = p.next_wait(wait);
            assert!(wait >= p.base && wait <= p.cap, "{wait:?}");
            waits.push(wait);
        }
        assert!(waits.iter().any(|w| *w >= Duration::from_secs(1)), "the backoff grows: {waits:?}");
        // Jitter is judged below the cap: once the backoff reaches it, two draws in three are
        // clipped to the cap itself, so counting distinct waits over the whole run is a coin toss.
        let after_one_second: Vec<_> = (0..40).map(|_| p.next_wait(Duration::from_secs(1))).collect();
        assert!(after_one_second.iter().all(|w| *w >= p.base && *w <= Duration::from_secs(3)));
        let distinct: std::collections::HashSet<_> = after_one_second.iter().collect();
        assert!(distinct.len() > 35, "the waits are jittered: {after_one_second:?}");
        assert!(Policy::default().attempts == Some(8));
    }
}
