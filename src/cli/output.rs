//! Everything the binary prints. Results go to stdout (quietly stopping on a closed pipe);
//! notices, warnings and progress go to stderr. With `--json` everything goes to stdout as JSON
//! lines (`json`), except the error a command ends with (`exit_error`, on stderr).

use archiver::progress::Event;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Output {
    pub verbose: bool,
    pub quiet: bool,
    pub json: bool,
    pub warnings: AtomicU64,
    /// The progress display, when one is shown (`meter`).
    pub meter: Option<std::sync::Arc<super::meter::Meter>>,
    pub ticker: std::sync::Mutex<Option<super::meter::Ticker>>,
    /// A `summary` was printed (`--json`): it stays the last object, so later notices (which
    /// repeat what it says) are dropped.
    pub summarized: std::sync::atomic::AtomicBool,
}

/// Raised when stdout is a closed pipe (`archiver list | head`): exit quietly.
#[derive(Debug)]
pub struct BrokenPipe;

impl std::fmt::Display for BrokenPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("broken pipe")
    }
}

impl std::error::Error for BrokenPipe {}

impl Output {
    pub fn event(&self, e: Event) {
        if let Some(m) = &self.meter {
            m.apply(&e);
        }
        if self.json {
            return self.json_event(e);
        }
        match e {
            Event::Notice(m) | Event::LeftOut(m) if !self.quiet => self.err_line(&format!("archiver: {m}")),
            Event::Warning(m) => {
                self.warnings.fetch_add(1, Ordering::Relaxed);
                self.err_line(&format!("archiver: warning: {m}"));
            }
            Event::File(p) if self.verbose => self.err_line(&format!("a {p}")),
            Event::Checkpoint { uploaded } if self.verbose => {
                self.err_line(&format!("archiver: checkpoint stored ({uploaded} bytes uploaded)"))
            }
            Event::Progress { files, uploaded } => {
                self.err_line(&format!("archiver: progress: {files} files, {uploaded} bytes uploaded"))
            }
            _ => {}
        }
    }

    /// A line on stderr, above the progress bar if one is drawn.
    pub fn err_line(&self, line: &str) {
        let ticker = self.ticker.lock().unwrap_or_else(|p| p.into_inner());
        match ticker.as_ref().and_then(|t| t.bar.as_ref()) {
            Some(bar) => bar.suspend(|| err(line)),
            None => err(line),
        }
    }

    fn json_event(&self, e: Event) {
        use super::json::message;
        let v = match e {
            Event::Notice(m) | Event::LeftOut(m)
                if !self.quiet && !self.summarized.load(Ordering::Relaxed) =>
            {
                message("notice", &m)
            }
            Event::Warning(m) => {
                self.warnings.fetch_add(1, Ordering::Relaxed);
                message("warning", &m)
            }
            Event::File(p) if self.verbose => serde_json::json!({ "message_type": "file", "path": p }),
            Event::Checkpoint { uploaded } => {
                serde_json::json!({ "message_type": "checkpoint", "bytes_uploaded": uploaded })
            }
            Event::Progress { files, uploaded } => {
                serde_json::json!({ "message_type": "status", "files_done": files, "bytes_uploaded": uploaded })
            }
            _ => return,
        };
        // A closed stdout does not stop a backup for the sake of its log.
        let _ = self.json(&v);
    }

    /// A warning that is not about the command's result (a key file others can read).
    pub fn aside(&self, m: &str) {
        match self.json {
            true => drop(self.json(&super::json::message("warning", m))),
            false => self.err_line(&format!("archiver: warning: {m}")),
        }
    }

    pub fn line(&self, s: &str) -> anyhow::Result<()> {
        write_out(&one_line(s, true))
    }

    /// One JSON object on its own line on stdout. A `summary` ends the progress display
    /// first, so that it is the command's last object.
    pub fn json(&self, v: &serde_json::Value) -> anyhow::Result<()> {
        if v["message_type"] == "summary" {
            self.finish_progress();
            self.summarized.store(true, Ordering::Relaxed);
        }
        write_out(&v.to_string())
    }

    /// Stops the progress display (clearing the bar; a last `status` with `--json`).
    pub fn finish_progress(&self) {
        drop(self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// A result: `text` as a line, or with `--json` the object `v()`.
    pub fn item(
        &self,
        text: impl FnOnce() -> String,
        v: impl FnOnce() -> serde_json::Value,
    ) -> anyhow::Result<()> {
        match self.json {
            true => self.json(&v()),
            false => self.line(&text()),
        }
    }
}

pub fn write_out(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(BrokenPipe.into()),
        r => Ok(r?),
    }
}

/// A line on stderr. A closed stderr (a server whose starter stopped listening) is no reason to
/// stop a backup or a server, so write errors are ignored rather than panicking like `eprintln!`.
pub fn err(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", one_line(line, false));
}

/// `line` with its control characters escaped (`\n`, `\t`, `\x1b`; tabs kept if `tabs`): the
/// backstop behind the escaping of names and paths where they are formatted
/// (`query::escape`), so that nothing read from a repository or a tree reaches the terminal as
/// an escape sequence or a line of its own.
pub fn one_line(line: &str, tabs: bool) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && !(tabs && c == '\t');
    if !line.chars().any(bad) {
        return line.into();
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        match c {
            c if !bad(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\x{:02x}", c as u32)),
        }
    }
    out.into()
}
