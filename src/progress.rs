//! Progress and diagnostics leave the library through a callback: the library never prints.

#[derive(Debug, Clone)]
pub enum Event {
    /// Something the user should know, that is not a problem (recovery done, cache rebuilt).
    Notice(String),
    /// A directory not entered by a default rule, not a problem: a synthetic file system such
    /// as /proc (tarsnap's own rule; tarsnap mode prints these, as tarsnap does).
    LeftOut(String),
    /// A problem that did not stop the command (an unreadable file); the result is incomplete.
    Warning(String),
    /// A file was archived or restored (path as stored).
    File(String),
    /// A checkpoint was stored; `uploaded` sealed bytes so far.
    Checkpoint { uploaded: u64 },
    /// Progress asked for (SIGUSR1).
    Progress { files: u64, uploaded: u64 },
    /// The work ahead, for a progress display: `files` items of `bytes` bytes in all (a running
    /// count until `complete`). Items are files (create, extract), archives then packs (delete,
    /// prune), archives and packs (fsck).
    Total { files: u64, bytes: u64, complete: bool },
    /// Work done since the last `Advance`: items finished and bytes processed.
    Advance { files: u64, bytes: u64 },
    /// Stored bytes uploaded so far by the running transaction.
    Uploaded(u64),
}

/// Requests from outside a running command (the binary sets them from signals).
#[derive(Debug, Default)]
pub struct Control {
    /// End the archive now as `NAME.part` (SIGQUIT).
    pub quit: std::sync::atomic::AtomicBool,
    /// Checkpoint now (SIGUSR2).
    pub checkpoint_now: std::sync::atomic::AtomicBool,
    /// Report progress (SIGUSR1).
    pub report: std::sync::atomic::AtomicBool,
    /// Stop now (SIGINT, SIGTERM: the signal's number; 0 for none): the run ends at its last
    /// checkpoint as `NAME.part`, or without one is undone.
    pub interrupt: std::sync::atomic::AtomicI32,
}

/// The error a run stopped by SIGINT or SIGTERM ends with (the binary exits 128 + the signal).
#[derive(Debug)]
pub struct Interrupted(pub i32);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            2 => write!(f, "interrupted by SIGINT"),
            15 => write!(f, "interrupted by SIGTERM"),
            n => write!(f, "interrupted by signal {n}"),
        }
    }
}

impl std::error::Error for Interrupted {}

pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

/// A callback that drops everything, for callers that do not care.
pub fn silent(_: Event) {}
