//! The single-writer lock of a local repository: an exclusive `flock` on `<repo>/lock`, which the
//! kernel releases when the holder exits for any reason, `kill -9` included, so a lock can never
//! be left stale by a dead process. The file's content names the holder, for the message others
//! get; it is informational only.

use super::LockGuard;
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

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
        bail!(
            "repository is locked by another archiver ({}); wait for it to finish, then retry",
            if holder.is_empty() { "holder unknown" } else { holder }
        );
    }
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = write!(f, "{owner}, since unix time {stamp}");
    Ok(Box::new(FlockGuard { _file: f }))
}
