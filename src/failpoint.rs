//! Failpoints for crash tests. In builds with the `failpoints` cargo feature, setting
//! `ARCHIVER_FAILPOINT=NAME` (or `NAME:N` for the N-th time it is reached) makes the process kill
//! itself with SIGKILL when it reaches `hit("NAME")`: no destructor, no flush, exactly like
//! `kill -9` or a power cut between two steps. Without the feature `hit` compiles to nothing.

/// Every failpoint, in protocol order: the crash tests iterate over this list.
pub const POINTS: &[&str] = &[
    "txn-begun",
    "pack-stored",
    "segment-indexed",
    "checkpoint-flushed",
    "checkpoint-indexed",
    "checkpoint-part-stored",
    "checkpoint-recorded",
    "checkpoint-cache-committed",
    "commit-flushed",
    "commit-indexed",
    "commit-recorded",
    "commit-decided",
    "commit-manifest-written",
    "commit-cleaned",
    "commit-done",
    "recover-promoting",
    "abort-decided",
    // Not a step of the transaction protocol: a cache load cut short (`cache::Loader`).
    "cache-load-appending",
];

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("ARCHIVER_FAILPOINT").ok()?;
        match v.split_once(':') {
            Some((n, k)) => Some((n.to_string(), k.parse().unwrap_or(1))),
            None => Some((v, 1)),
        }
    });
    if let Some((t, n)) = target {
        if t == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            // SAFETY: kill(2) on our own pid.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
