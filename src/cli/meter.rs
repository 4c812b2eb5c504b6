//! Progress display for long commands (create, extract, fsck, delete, prune): the library's
//! `Total`, `Advance`, `Uploaded` and `Checkpoint` events update atomic counters (`Meter`), and a
//! ticker thread shows them: an indicatif bar on a terminal (stderr), plain lines when
//! `--progress` forces progress into a pipe or file, or `status` objects on stdout with `--json`.
//!
//! Invariants: nothing is drawn unless stderr is a terminal or `--progress` is given; the bar is
//! cleared before the command's last lines, and every other line on stderr is printed through
//! it (`Output::err_line`), so a message never lands in the middle of a bar.

use archiver::progress::Event;
use archiver::units::human;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bar,
    Lines,
    Json,
}

#[derive(Default)]
pub struct Meter {
    /// What the items counted are (files, archives, steps).
    pub unit: &'static str,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    total_known: AtomicBool,
    uploaded: AtomicU64,
    last_checkpoint: Mutex<Option<Instant>>,
}

impl Meter {
    pub fn new(unit: &'static str) -> Meter {
        Meter { unit, ..Default::default() }
    }

    /// Counts `e` if it is a progress event.
    pub fn apply(&self, e: &Event) {
        match *e {
            Event::Total { files, bytes, complete } => {
                self.files_total.store(files, Ordering::Relaxed);
                self.bytes_total.store(bytes, Ordering::Relaxed);
                self.total_known.store(complete, Ordering::Relaxed);
            }
            Event::Advance { files, bytes } => {
                self.files_done.fetch_add(files, Ordering::Relaxed);
                self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
            }
            Event::Uploaded(n) => self.uploaded.store(n, Ordering::Relaxed),
            Event::Checkpoint { uploaded } => {
                self.uploaded.store(uploaded, Ordering::Relaxed);
                *self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            }
            _ => {}
        }
    }

    fn snapshot(&self, started: Instant) -> Snapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            elapsed: started.elapsed(),
            files: (get(&self.files_done), get(&self.files_total)),
            bytes: (get(&self.bytes_done), get(&self.bytes_total)),
            total_known: self.total_known.load(Ordering::Relaxed),
            uploaded: get(&self.uploaded),
            since_checkpoint: self
                .last_checkpoint
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .map(|t| t.elapsed()),
            unit: self.unit,
        }
    }
}

struct Snapshot {
    elapsed: Duration,
    files: (u64, u64),
    bytes: (u64, u64),
    total_known: bool,
    uploaded: u64,
    since_checkpoint: Option<Duration>,
    unit: &'static str,
}

impl Snapshot {
    /// Done and total in the unit the bar counts: bytes when there are any, else items.
    fn position(&self) -> (u64, u64) {
        match self.bytes.1 {
            0 => self.files,
            _ => self.bytes,
        }
    }

    fn fraction(&self) -> Option<f64> {
        let (done, total) = self.position();
        (self.total_known && total > 0).then(|| (done as f64 / total as f64).min(1.0))
    }

    fn eta(&self) -> Option<Duration> {
        let f = self.fraction().filter(|&f| f > 0.0)?;
        Some(self.elapsed.mul_f64((1.0 - f) / f))
    }

    fn rate(&self) -> u64 {
        (self.bytes.0 as f64 / self.elapsed.as_secs_f64().max(0.001)) as u64
    }

    /// The bar's text: `1.2 GiB/3.4 GiB 230 MiB/s ETA 9s, 3/6 files, 120 MiB up, checkpoint 5s ago`.
    fn text(&self) -> String {
        let plus = if self.total_known { "" } else { "+" };
        let mut t = String::new();
        if self.bytes.1 > 0 {
            t = format!("{}/{}{plus} {}/s ", human(self.bytes.0), human(self.bytes.1), human(self.rate()));
        }
        if let Some(eta) = self.eta() {
            t += &format!("ETA {}, ", clock(eta));
        }
        t += &format!("{}/{}{plus} {}", self.files.0, self.files.1, self.unit);
        if self.uploaded > 0 {
            t += &format!(", {} up", human(self.uploaded));
        }
        if let Some(d) = self.since_checkpoint {
            t += &format!(", checkpoint {} ago", clock(d));
        }
        t
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "message_type": "status",
            "seconds_elapsed": self.elapsed.as_secs(),
            "seconds_remaining": self.eta().map(|d| d.as_secs()),
            "percent_done": self.fraction().unwrap_or(0.0),
            "total_known": self.total_known,
            "total_files": self.files.1,
            "files_done": self.files.0,
            "total_bytes": self.bytes.1,
            "bytes_done": self.bytes.0,
            "bytes_uploaded": self.uploaded,
            "seconds_since_checkpoint": self.since_checkpoint.map(|d| d.as_secs()),
        })
    }
}

/// `1:02:03`, `2:03` or `7s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}:{:02}", s / 60, s % 60),
        _ => format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60),
    }
}

/// The running display; dropping it stops the ticker and clears the bar.
pub struct Ticker {
    meter: Arc<Meter>,
    mode: Mode,
    started: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub bar: Option<ProgressBar>,
}

impl Ticker {
    pub fn start(meter: Arc<Meter>, mode: Mode) -> Ticker {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10));
            let style = ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {percent:>3}% {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar
        });
        let m = meter.clone();
        let (every, b, s) = match mode {
            Mode::Bar => (Duration::from_millis(200), bar.clone(), stop.clone()),
            Mode::Json => (Duration::from_secs(1), None, stop.clone()),
            Mode::Lines => (Duration::from_secs(10), None, stop.clone()),
        };
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let mut next = Instant::now() + every.min(Duration::from_millis(200));
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if Instant::now() < next {
                        continue;
                    }
                    next += every;
                    let snap = meter.snapshot(started);
                    match (&b, mode) {
                        (Some(bar), _) => {
                            let (done, total) = snap.position();
                            bar.set_length(total.max(done));
                            bar.set_position(done);
                            bar.set_message(snap.text());
                        }
                        (None, Mode::Json) => {
                            let _ = super::output::write_out(&snap.json().to_string());
                        }
                        _ => super::output::err(&format!("archiver: progress: {}", snap.text())),
                    }
                }
            })
            .ok();
        Ticker { meter: m, mode, started, stop, thread, bar }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        // Plain lines and JSON end with the final counts, so that even a short run shows one.
        let snap = self.meter.snapshot(self.started);
        match self.mode {
            Mode::Json => drop(super::output::write_out(&snap.json().to_string())),
            Mode::Lines => super::output::err(&format!("archiver: progress: {}", snap.text())),
            Mode::Bar => {}
        }
    }
}
