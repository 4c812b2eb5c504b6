//! Progress and diagnostics leave the library through a callback: the library never prints.

#[derive(Debug, Clone)]
pub enum Event {
    /// Something the user should know, that is not a problem (recovery done, cache rebuilt).
    Notice(String),
    /// A problem that did not stop the command (an unreadable file); the result is incomplete.
    Warning(String),
    /// A file was archived or restored (path as stored).
    File(String),
}

pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

/// A callback that drops everything, for callers that do not care.
pub fn silent(_: Event) {}
