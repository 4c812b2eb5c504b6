//! The walk's checkpoints: when one is due (bytes, time, SIGUSR2), a stop request (SIGQUIT,
//! `--maxbw`, which checkpoint and then end the walk with `Stopped`), and the archive so far as
//! `NAME.part` (the finished metadata blocks, the unfinished tail, and the file in progress marked
//! partial) handed to `Txn::checkpoint`. Invariant: `Event::Checkpoint` is reported only for a
//! checkpoint whose record is durable.

use super::{Stopped, Walker};
use crate::archive::Node;
use crate::codec::Writer;
use crate::progress::Event;
use crate::txn::Draft;
use anyhow::Result;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Walker<'_> {
    /// Checkpoints if one is due (bytes, time, SIGUSR2), reports progress on SIGUSR1, after a
    /// stop request checkpoints and returns `Stopped`, and after SIGINT or SIGTERM returns
    /// `Interrupted` at once. `in_progress` is the file being read.
    pub(super) fn maybe_checkpoint(&mut self, in_progress: Option<&Node>) -> Result<()> {
        let c = &self.limits.control;
        // SIGINT, SIGTERM: stop at once, without a new checkpoint (it could take long to upload);
        // `create` ends the run at its last one, or undoes it.
        match c.interrupt.load(Ordering::Relaxed) {
            0 => {}
            sig => return Err(crate::progress::Interrupted(sig).into()),
        }
        let (report, quit, now) = (
            c.report.swap(false, Ordering::Relaxed),
            c.quit.load(Ordering::Relaxed),
            c.checkpoint_now.swap(false, Ordering::Relaxed),
        );
        for up in self.txn.poll()? {
            (self.progress)(Event::Checkpoint { uploaded: up });
        }
        let up = self.txn.uploaded();
        if report {
            (self.progress)(Event::Progress { files: self.stats.files, uploaded: up });
        }
        let stop = if quit {
            Some("stopped by SIGQUIT".to_string())
        } else {
            self.limits
                .maxbw
                .filter(|&m| up >= m)
                .map(|m| format!("stopped after uploading {m} bytes (--maxbw)"))
        };
        let (last_up, last_t) = self.last_checkpoint;
        // One due while the previous one is still under way waits for it (`Txn::checkpoint`).
        let due = stop.is_some()
            || now
            || self.limits.checkpoint_bytes.is_some_and(|n| up - last_up >= n)
            || self.limits.checkpoint_interval.is_some_and(|d| last_t.elapsed() >= d);
        if due {
            self.checkpoint(in_progress)?;
        }
        match stop {
            Some(reason) => {
                self.settle()?;
                Err(Stopped(reason).into())
            }
            None => Ok(()),
        }
    }

    /// Waits for the checkpoint under way to be recorded, and reports it.
    pub fn settle(&mut self) -> Result<()> {
        self.txn.settle()?;
        for up in self.txn.take_recorded() {
            (self.progress)(Event::Checkpoint { uploaded: up });
        }
        Ok(())
    }

    /// Starts storing the archive so far as `NAME.part` (see `Txn::checkpoint`); the walk goes
    /// on while it is written, and `Event::Checkpoint` says when it is recorded.
    pub fn checkpoint(&mut self, in_progress: Option<&Node>) -> Result<()> {
        let mut tail = Writer { buf: self.meta.buf.clone() };
        let mut stats = self.stats.clone();
        if let Some(n) = in_progress {
            // `n.size` is the file's size when its read began: a file whose last block is already
            // stored is whole, not cut.
            let mut n = n.clone();
            let stored = n.blocks.iter().map(|b| b.1 as u64).sum();
            n.partial = stored < n.size;
            n.size = stored;
            n.encode(&mut tail);
            stats.files += 1;
        }
        let mut meta = self.meta.blocks.clone();
        let mut tail_blocks = Vec::new();
        let mut rest = &tail.buf[..];
        while !rest.is_empty() {
            let n = self.meta.chunker.cut(rest);
            meta.push((self.txn.keys().block_id(&rest[..n]), n as u32));
            tail_blocks.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        let draft =
            Draft { name: self.name.clone(), time: self.time, meta, stats, command: self.command.clone() };
        self.txn.checkpoint(tail_blocks, draft)?;
        self.last_checkpoint = (self.txn.uploaded(), Instant::now());
        Ok(())
    }
}
