//! The dumb object store under a repository: named immutable-ish byte objects, nothing more.
//! Transactions, locking and recovery are built above it (`repo`), so a directory, an HTTP server
//! and S3 need only these few operations.
//!
//! Contract every backend keeps: `put` is atomic (readers see the whole object or none) and durable
//! when it returns; `put_new` additionally fails with `Exists` if the key is taken; `list` returns
//! every key under a prefix, sorted; `delete` of a missing key succeeds. `conformance.rs` checks
//! it for every backend: a local directory (`local`), memory (`memory`, for tests) and memory
//! behind the fault injector (`faulty`, which fails chosen calls for tests of the layers above).
//!
//! No backend retries anything itself: a failure worth retrying is reported as
//! `ErrorKind::Transient` (with the delay the store asked for, if any, in `retry_after`), and the
//! decorator `retry::Retrying` (or `repo::retrying` one layer up) retries it with backoff.
//! `kind_of_code` reads the error codes object stores send (S3's `SlowDown`, ...).

pub mod aws_profile;
#[cfg(test)]
mod conformance;
pub mod faulty;
pub mod local;
pub mod memory;
pub mod prefixed;
pub mod probe;
pub mod retry;
pub mod s3;
mod spool;
pub use spool::Spool;
/// Test support (moto), for the unit and integration tests; not used by the binary.
#[doc(hidden)]
pub mod s3_server;

use std::fmt;
use std::time::Duration;

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
    /// How long the store asked us to wait before trying again (HTTP `Retry-After`): the retry
    /// waits at least this long, up to `retry::MAX_RETRY_AFTER`.
    pub retry_after: Option<Duration>,
}

impl StoreError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        StoreError { kind, msg: msg.into(), retry_after: None }
    }
    /// The same error, with the wait the store asked for.
    pub fn with_retry_after(self, wait: Option<Duration>) -> Self {
        StoreError { retry_after: wait, ..self }
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

/// The kind of error an object store's error code means (the `<Code>` of an S3 error answer):
/// codes that say "slow down" or "try again" are transient, whatever HTTP status carried them;
/// `None` for a code not known here (the HTTP status then decides).
pub fn kind_of_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "SlowDown"
        | "ServiceUnavailable"
        | "InternalError"
        | "RequestTimeout"
        | "RequestTimeTooSkewed"
        | "ConditionalRequestConflict"
        | "OperationAborted" => ErrorKind::Transient,
        "NoSuchKey" => ErrorKind::NotFound,
        // A conditional put (`If-None-Match: *`) found the key taken.
        "PreconditionFailed" => ErrorKind::Exists,
        "AccessDenied"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "NoSuchBucket"
        | "InvalidRange"
        | "EntityTooLarge" => ErrorKind::Permanent,
        _ => return None,
    })
}

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
    /// A file in the store's own space to build an object in (a local directory's `tmp/`), or
    /// None where objects are sent whole (S3, memory): `put_new_spooled` takes it.
    fn spool(&self) -> StoreResult<Option<Spool>> {
        Ok(None)
    }
    /// `put_new` of what `spool` holds: durable, create-if-absent, never seen in part. The
    /// default reads it back and calls `put_new`.
    fn put_new_spooled(&self, key: &str, mut spool: Spool) -> StoreResult<()> {
        self.put_new(key, &spool.contents()?)
    }
}

/// A backend shared (the repository and its lease lock use one S3 client).
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        (**self).put(key, data)
    }
    fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        (**self).put_new(key, data)
    }
    fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
        (**self).get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        (**self).get_range(key, offset, len)
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        (**self).list(prefix)
    }
    fn delete(&self, key: &str) -> StoreResult<()> {
        (**self).delete(key)
    }
    fn size(&self, key: &str) -> StoreResult<u64> {
        (**self).size(key)
    }
    fn clean_partial(&self) -> StoreResult<()> {
        (**self).clean_partial()
    }
    fn spool(&self) -> StoreResult<Option<Spool>> {
        (**self).spool()
    }
    fn put_new_spooled(&self, key: &str, spool: Spool) -> StoreResult<()> {
        (**self).put_new_spooled(key, spool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_error_codes_that_ask_to_slow_down_are_transient() {
        assert_eq!(kind_of_code("SlowDown"), Some(ErrorKind::Transient));
        assert_eq!(kind_of_code("ServiceUnavailable"), Some(ErrorKind::Transient));
        assert_eq!(kind_of_code("NoSuchKey"), Some(ErrorKind::NotFound));
        assert_eq!(kind_of_code("PreconditionFailed"), Some(ErrorKind::Exists));
        assert_eq!(kind_of_code("AccessDenied"), Some(ErrorKind::Permanent));
        assert_eq!(kind_of_code("NoSuchBucket"), Some(ErrorKind::Permanent), "not an object's absence");
        assert_eq!(kind_of_code("slowdown"), None, "codes are case-sensitive");
    }
}
