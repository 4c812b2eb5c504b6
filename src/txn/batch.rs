//! Blocks travel between the pipeline's threads in batches: a batch closes at `BYTES` of data or
//! `JOBS` blocks, so a file's 1 MiB chunks each go alone while a directory of small files goes a
//! few dozen at a time. Every hand-over to a thread that is waiting wakes it, which costs the
//! kernel more than sealing a small file does: one wake per block made the walk of small files
//! spend a third of its time switching threads.
//!
//! Invariant: a block is in exactly one place, the batch being filled or one sent. Whoever
//! waits for blocks to arrive (a flush, a checkpoint's cut) first sends the batch being filled
//! (`Pipeline::push`).

use super::Job;

/// A batch closes once it holds this many bytes of data.
const BYTES: usize = 512 << 10;
/// ... or this many blocks.
const JOBS: usize = 64;

/// The batch being filled.
#[derive(Default)]
pub(super) struct Batch {
    jobs: Vec<Job>,
    bytes: usize,
}

impl Batch {
    pub fn add(&mut self, job: Job) {
        self.bytes += job.data.len();
        self.jobs.push(job);
    }

    /// Whether it should be sent before another block is added.
    pub fn full(&self) -> bool {
        self.bytes >= BYTES || self.jobs.len() >= JOBS
    }

    /// Takes its blocks, leaving it empty.
    pub fn take(&mut self) -> Vec<Job> {
        self.bytes = 0;
        std::mem::take(&mut self.jobs)
    }

    /// Puts back blocks taken but not sent.
    pub fn restore(&mut self, jobs: Vec<Job>) {
        debug_assert!(self.jobs.is_empty());
        self.bytes = jobs.iter().map(|j| j.data.len()).sum();
        self.jobs = jobs;
    }
}
