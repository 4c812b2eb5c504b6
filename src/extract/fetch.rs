//! Fetching file data for `extract`, many requests in flight: with a remote repository the round
//! trip, not the CPU, would otherwise bound a restore.
//!
//! A file's missing blocks are cut into windows (up to `WINDOW` blocks and `WINDOW_BYTES` plain
//! bytes). Within a window, neighbouring blocks of one pack become one range read. Each window is
//! fetched and opened (authenticated, decompressed, re-hashed against its id) by a task on a
//! pool of I/O threads, while the file's own thread writes earlier windows in order; a file keeps
//! up to `DEPTH` windows in flight.
//!
//! Memory is bounded across the whole extract by a byte budget: a window holds its stored plus
//! plain bytes from before its task starts until the file has written it (or its task ends, if the
//! file gave up on it). A file with nothing in flight waits for budget; a file with something in
//! flight only takes budget that is free, so no file waits on budget while holding some it could
//! release, and every file makes progress. A window larger than the whole budget waits for all of
//! it.

use crate::crypto::{BlockId, Keys};
use crate::pack::Location;
use crate::repo::Repository;
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Receiver};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};

/// Blocks in one window at most (a window of small blocks is one range read).
const WINDOW: usize = 16;
/// Plain bytes in one window: a window is closed once it holds this many, so it holds one
/// average block of a repository cutting 1 MiB, four of one cutting 256 KiB (`chunker::DATA`).
/// Measured on loopback HTTP and locally (docs/BENCHMARKS.md, 1 MiB blocks): 1 MiB windows
/// restore 15–20% faster than 8 MiB ones in both, with half the page faults; a larger window is opened by one thread and written only once all
/// of it is there.
const WINDOW_BYTES: u64 = 1 << 20;
/// Windows one file keeps in flight at most.
const DEPTH: usize = 8;
/// Stored plus plain bytes in flight across the extract (with 1 MiB windows 32 MiB is as fast
/// as 64 MiB on loopback HTTP, and holds about 16 windows).
const BUDGET: u64 = 32 << 20;
/// I/O threads: about half the windows the budget allows, as each is also opened (decrypted,
/// decompressed, re-hashed) by the thread that fetched it.
const THREADS: usize = 8;

/// Bytes free for windows in flight.
struct Budget {
    free: Mutex<u64>,
    cv: Condvar,
}

/// Budget held by one window; given back when dropped.
pub(super) struct Permit {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.budget.free.lock().unwrap_or_else(|p| p.into_inner()) += self.bytes;
        self.budget.cv.notify_all();
    }
}

pub(super) struct Fetcher {
    pool: rayon::ThreadPool,
    budget: Arc<Budget>,
    repo: Arc<dyn Repository>,
    keys: Arc<Keys>,
}

/// One window: the block numbers it restores and, once fetched, their plain contents in order.
pub(super) struct Window {
    blocks: Vec<usize>,
    rx: Receiver<(Result<Vec<Vec<u8>>>, Permit)>,
}

impl Window {
    /// Waits for the window: its block numbers, their plain contents (opened and verified) and
    /// the budget they hold until written.
    pub fn wait(self) -> Result<(Vec<usize>, Vec<Vec<u8>>, Permit)> {
        let (res, permit) = self.rx.recv().map_err(|_| anyhow!("a fetching thread stopped unexpectedly"))?;
        Ok((self.blocks, res?, permit))
    }
}

impl Fetcher {
    pub fn new(repo: Arc<dyn Repository>, keys: Arc<Keys>) -> Result<Fetcher> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(THREADS)
            .thread_name(|i| format!("fetch-{i}"))
            .build()
            .context("cannot start the fetching threads")?;
        let budget = Arc::new(Budget { free: Mutex::new(BUDGET), cv: Condvar::new() });
        Ok(Fetcher { pool, budget, repo, keys })
    }

    /// Takes `bytes` of budget (all of it, for a larger window): waiting for it if `wait`, else
    /// only if it is free now.
    fn take(&self, bytes: u64, wait: bool) -> Option<Permit> {
        let bytes = bytes.min(BUDGET);
        let mut free = self.budget.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free < bytes {
            if !wait {
                return None;
            }
            free = self.budget.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= bytes;
        Some(Permit { budget: self.budget.clone(), bytes })
    }

    /// Starts fetching `blocks` (numbers into `ids`/`locs`) if budget allows (waiting for it
    /// if `wait`). The task skips its work if `cancel` is set before it starts.
    fn start(
        &self,
        blocks: Vec<usize>,
        ids: &[BlockId],
        locs: &[Location],
        wait: bool,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Window, Vec<usize>> {
        let bytes = blocks.iter().map(|&i| locs[i].len as u64 + locs[i].plain_len as u64).sum();
        let Some(permit) = self.take(bytes, wait) else {
            return Err(blocks);
        };
        let want: Vec<(BlockId, Location)> = blocks.iter().map(|&i| (ids[i], locs[i].clone())).collect();
        let (tx, rx) = bounded(1);
        let (repo, keys, cancel) = (self.repo.clone(), self.keys.clone(), cancel.clone());
        self.pool.spawn(move || {
            let res = if cancel.load(Relaxed) {
                Err(anyhow!("cancelled"))
            } else {
                fetch_window(&*repo, &keys, &want)
            };
            // A file that gave up no longer listens: the permit is then dropped here.
            let _ = tx.send((res, permit));
        });
        Ok(Window { blocks, rx })
    }

    /// The windows of one file, started ahead of its writer: `next` yields them in order.
    pub fn file<'a>(&'a self, missing: &[usize], ids: &'a [BlockId], locs: &'a [Location]) -> FileFetch<'a> {
        let mut todo = VecDeque::new();
        let mut cur = Vec::new();
        let mut bytes = 0u64;
        for &i in missing {
            cur.push(i);
            bytes += locs[i].plain_len as u64;
            if cur.len() >= WINDOW || bytes >= WINDOW_BYTES {
                todo.push_back(std::mem::take(&mut cur));
                bytes = 0;
            }
        }
        if !cur.is_empty() {
            todo.push_back(cur);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        FileFetch { fetcher: self, ids, locs, todo, started: VecDeque::new(), cancel }
    }
}

/// One file's windows: those not started yet and those in flight, in order.
pub(super) struct FileFetch<'a> {
    fetcher: &'a Fetcher,
    ids: &'a [BlockId],
    locs: &'a [Location],
    todo: VecDeque<Vec<usize>>,
    started: VecDeque<Window>,
    cancel: Arc<AtomicBool>,
}

impl FileFetch<'_> {
    /// The next window in order (its fetch under way), after starting as many later ones as
    /// `DEPTH` and the budget allow. `None` when every window was handed out.
    pub fn next(&mut self) -> Option<Window> {
        while self.started.len() < DEPTH {
            let Some(blocks) = self.todo.pop_front() else { break };
            let wait = self.started.is_empty();
            match self.fetcher.start(blocks, self.ids, self.locs, wait, &self.cancel) {
                Ok(w) => self.started.push_back(w),
                Err(blocks) => {
                    self.todo.push_front(blocks);
                    break;
                }
            }
        }
        self.started.pop_front()
    }
}

impl Drop for FileFetch<'_> {
    fn drop(&mut self) {
        // Windows not yet written are no longer wanted (the file failed or the extract stops).
        self.cancel.store(true, Relaxed);
    }
}

/// Reads a window of blocks (one range read per run of neighbours in a pack) and opens them.
fn fetch_window(repo: &dyn Repository, keys: &Keys, window: &[(BlockId, Location)]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(window.len());
    let mut start = 0;
    while start < window.len() {
        let mut end = start + 1;
        while end < window.len() && {
            let (a, b) = (&window[end - 1].1, &window[end].1);
            a.pack == b.pack && a.offset + a.len as u64 == b.offset
        } {
            end += 1;
        }
        let (first, last) = (&window[start].1, &window[end - 1].1);
        let len = last.offset + last.len as u64 - first.offset;
        let bytes = repo
            .read_pack(&first.pack, first.offset, len)
            .with_context(|| format!("cannot read pack {}", first.pack))?;
        for (id, loc) in &window[start..end] {
            let s = (loc.offset - first.offset) as usize;
            let plain = keys
                .open_block(id, &bytes[s..s + loc.len as usize], loc.plain_len as usize)
                .with_context(|| crate::reader::damaged_block(id, &loc.pack))?;
            out.push(plain);
        }
        start = end;
    }
    Ok(out)
}
