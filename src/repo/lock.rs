//! How a repository built over a backend (`ObjectRepo`) keeps a single writer: a `Locker`, chosen
//! with the backend. A local directory uses an exclusive `flock` on `<repo>/lock` (`Flock`),
//! which the kernel releases when the holder exits for any reason, `kill -9` included, so a lock
//! can never be left stale by a dead process; the file's content names the holder, for the
//! message others get, and is informational only. A store shared between machines needs a lease
//! instead (issue 14); tests over the in-memory backend use `ProcessLock`, exclusive within the
//! process.

use super::LockGuard;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Takes a repository's single-writer lock; `owner` describes the holder to whoever finds it
/// taken, in the one-line refusal.
pub trait Locker: Send + Sync {
    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>>;
}

/// The lock of a local directory: `flock` on a file.
pub struct Flock(pub std::path::PathBuf);

impl Locker for Flock {
    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        flock(&self.0, owner)
    }
}

/// The error of a lock taken by another archiver (its text names the holder): a caller may wait
/// and try again (`--lock-wait`); every other lock error is final.
#[derive(Debug)]
pub struct Locked(pub String);

impl std::fmt::Display for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Locked {}

/// `Err(Locked(text))`.
pub fn locked<T>(text: String) -> Result<T> {
    Err(Locked(text).into())
}

/// A lock exclusive within this process (for repositories in memory): the holder's name while
/// it is held.
#[derive(Clone, Default)]
pub struct ProcessLock(std::sync::Arc<std::sync::Mutex<Option<String>>>);

struct ProcessGuard(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl LockGuard for ProcessGuard {}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Locker for ProcessLock {
    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(holder) = held.as_ref() {
            return locked(format!(
                "repository is locked by another archiver ({holder}); wait for it to finish, then retry"
            ));
        }
        *held = Some(owner.to_string());
        Ok(Box::new(ProcessGuard(self.0.clone())))
    }
}

struct FlockGuard {
    _file: File,
}

impl LockGuard for FlockGuard {}

pub fn flock(path: &Path, owner: &str) -> Result<Box<dyn LockGuard>> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    // SAFETY: flock on a valid open descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        return locked(format!(
            "repository is locked by another archiver ({}); wait for it to finish, then retry",
            if holder.is_empty() { "holder unknown" } else { holder }
        ));
    }
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = write!(f, "{owner}, since unix time {stamp}");
    Ok(Box::new(FlockGuard { _file: f }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_locker_admits_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let lockers: [Box<dyn Locker>; 2] =
            [Box::new(Flock(dir.path().join(crate::layout::LOCK))), Box::new(ProcessLock::default())];
        for l in &lockers {
            let held = l.lock("first").unwrap();
            let refused = l.lock("second").err().expect("a second holder is refused").to_string();
            assert!(refused.contains("first") && !refused.contains('\n'), "{refused}");
            drop(held);
            drop(l.lock("second").expect("free again once the first let go"));
        }
    }
}
