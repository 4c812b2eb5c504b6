//! A fault-injecting backend for unit tests: it wraps any backend and makes chosen calls fail
//! with a chosen `ErrorKind`, either before the call reaches the inner backend (the request was
//! lost) or after it took effect (the answer was lost, as when a connection drops after the
//! server stored an object). Tests of the layers above use it to reach every failure path of a
//! protocol step without a network or a full disk.
//!
//! It can also be slow (`with_latency`: each call first waits as long as a given function says,
//! so calls overlap and finish out of order) and keeps a `CallLog` a test can read after handing
//! the backend over: how many calls were under way at once, and which succeeded, in the order
//! they returned.
//!
//! Invariant: a call no fault matches behaves exactly as the inner backend's (only later, with a
//! latency); each fault fires once, on the `nth` matching call (counting from 1).

use super::{Backend, ErrorKind, StoreError, StoreResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The operations a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    PutNew,
    Get,
    GetRange,
    List,
    Delete,
    Size,
}

/// One planned failure.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: Op,
    /// Only calls whose key (or list prefix) starts with this count.
    pub key_prefix: String,
    /// Which matching call fails, from 1.
    pub nth: usize,
    pub kind: ErrorKind,
    /// The call reaches the inner backend first, and only its answer is lost.
    pub after: bool,
}

impl Fault {
    /// The `nth` call of `op` on a key starting with `key_prefix` fails with `kind`, without
    /// reaching the inner backend.
    pub fn new(op: Op, key_prefix: &str, nth: usize, kind: ErrorKind) -> Fault {
        Fault { op, key_prefix: key_prefix.to_string(), nth, kind, after: false }
    }

    /// The same call takes effect, then its answer is lost with `kind`.
    pub fn answer_lost(self) -> Fault {
        Fault { after: true, ..self }
    }
}

/// What a `FaultyBackend` saw, shared with the test that made it.
#[derive(Default)]
pub struct CallLog {
    now: AtomicUsize,
    peak: AtomicUsize,
    succeeded: Mutex<Vec<(Op, String)>>,
}

impl CallLog {
    /// The most calls under way at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// The keys of the calls of `op` that succeeded, in the order they returned.
    pub fn succeeded(&self, op: Op) -> Vec<String> {
        let done = self.succeeded.lock().unwrap_or_else(|p| p.into_inner());
        done.iter().filter(|(o, _)| *o == op).map(|(_, k)| k.clone()).collect()
    }
}

/// A backend that fails as planned.
pub struct FaultyBackend<B> {
    inner: B,
    /// Each fault with the matching calls it has seen so far.
    plan: Mutex<Vec<(Fault, usize)>>,
    latency: fn(Op, &str) -> Duration,
    log: Arc<CallLog>,
}

impl<B: Backend> FaultyBackend<B> {
    pub fn new(inner: B, faults: Vec<Fault>) -> FaultyBackend<B> {
        let plan = Mutex::new(faults.into_iter().map(|f| (f, 0)).collect());
        FaultyBackend { inner, plan, latency: |_, _| Duration::ZERO, log: Arc::default() }
    }

    /// Every call first waits `latency(op, key)`.
    pub fn with_latency(self, latency: fn(Op, &str) -> Duration) -> Self {
        FaultyBackend { latency, ..self }
    }

    /// What this backend sees, readable after it was handed over.
    pub fn log(&self) -> Arc<CallLog> {
        self.log.clone()
    }

    /// Faults planned but not fired yet.
    pub fn unfired(&self) -> Vec<Fault> {
        let plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        plan.iter().filter(|(f, seen)| *seen < f.nth).map(|(f, _)| f.clone()).collect()
    }

    /// The fault this call meets, if any (counting the call against every fault it matches).
    fn fault(&self, op: Op, key: &str) -> Option<Fault> {
        let mut plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        let mut hit = None;
        for (f, seen) in plan.iter_mut() {
            if f.op == op && key.starts_with(&f.key_prefix) && *seen < f.nth {
                *seen += 1;
                if *seen == f.nth && hit.is_none() {
                    hit = Some(f.clone());
                }
            }
        }
        hit
    }

    fn call<T>(&self, op: Op, key: &str, run: impl FnOnce(&B) -> StoreResult<T>) -> StoreResult<T> {
        let now = self.log.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep((self.latency)(op, key));
        let r = self.attempt(op, key, run);
        self.log.now.fetch_sub(1, Ordering::SeqCst);
        if r.is_ok() {
            self.log.succeeded.lock().unwrap_or_else(|p| p.into_inner()).push((op, key.to_string()));
        }
        r
    }

    fn attempt<T>(&self, op: Op, key: &str, run: impl FnOnce(&B) -> StoreResult<T>) -> StoreResult<T> {
        let Some(f) = self.fault(op, key) else { return run(&self.inner) };
        if f.after {
            run(&self.inner)?;
        }
        let when = if f.after { "its answer was lost" } else { "it was lost" };
        Err(StoreError::new(f.kind, format!("injected fault: {op:?} {key}: {when}")))
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }
    fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.call(Op::Put, key, |b| b.put(key, data))
    }
    fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.call(Op::PutNew, key, |b| b.put_new(key, data))
    }
    fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
        self.call(Op::Get, key, |b| b.get(key))
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.call(Op::GetRange, key, |b| b.get_range(key, offset, len))
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.call(Op::List, prefix, |b| b.list(prefix))
    }
    fn delete(&self, key: &str) -> StoreResult<()> {
        self.call(Op::Delete, key, |b| b.delete(key))
    }
    fn size(&self, key: &str) -> StoreResult<u64> {
        self.call(Op::Size, key, |b| b.size(key))
    }
    fn clean_partial(&self) -> StoreResult<()> {
        self.inner.clean_partial()
    }
    fn spool(&self) -> StoreResult<Option<super::Spool>> {
        self.inner.spool()
    }
    fn put_new_spooled(&self, key: &str, spool: super::Spool) -> StoreResult<()> {
        self.call(Op::PutNew, key, |b| b.put_new_spooled(key, spool))
    }
}
