//! The dumb object store under a repository: named immutable-ish byte objects, nothing more.
//! Transactions, locking and recovery are built above it (`repo`), so a directory, an HTTP server
//! and S3 need only these few operations.
//!
//! Contract every backend keeps: `put` is atomic (readers see the whole object or none) and durable
//! when it returns; `put_new` additionally fails with `Exists` if the key is taken; `list` returns
//! every key under a prefix, sorted; `delete` of a missing key succeeds. `conformance.rs` checks
//! it for every backend: a local directory (`local`), memory (`memory`, for tests) and memory
//! behind the fault injector (`faulty`, which fails chosen calls for tests of the layers above).

#[cfg(test)]
mod conformance;
pub mod faulty;
pub mod local;
pub mod memory;

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Exists,
    /// The storage is full; the transaction stays recoverable.
    NoSpace,
    /// Worth retrying (network hiccup, 5xx).
    Transient,
    /// Retrying will not help (permission, corrupt request, 4xx).
    Permanent,
}

/// The storage layer's one typed error: retry logic must tell transient from permanent.
#[derive(Debug)]
pub struct StoreError {
    pub kind: ErrorKind,
    pub msg: String,
}

impl StoreError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        StoreError { kind, msg: msg.into() }
    }
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if self.kind == ErrorKind::NoSpace {
            f.write_str(" (storage is full: free space, then rerun; the interrupted run will be recovered)")?;
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

pub trait Backend: Send + Sync {
    /// Where this backend stores data, for messages.
    fn describe(&self) -> String;
    fn put(&self, key: &str, data: &[u8]) -> StoreResult<()>;
    fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()>;
    fn get(&self, key: &str) -> StoreResult<Vec<u8>>;
    fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>>;
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>>;
    fn delete(&self, key: &str) -> StoreResult<()>;
    /// Object size in bytes.
    fn size(&self, key: &str) -> StoreResult<u64>;
    /// Removes leftovers of puts that never completed (a writer killed mid-upload). Call only
    /// under the repository's write lock, when no put of ours is under way.
    fn clean_partial(&self) -> StoreResult<()>;
}
