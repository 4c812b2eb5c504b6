//! Bandwidth limits (`--maxbw-rate-up`, `--maxbw-rate-down`, `--maxbw-rate` for both; tarsnap's
//! names): a repository wrapper that paces the bytes it sends and receives, for every kind of
//! repository (local, HTTP, S3) alike, since it sits above them all.
//!
//! Pacing is a virtual clock per direction: each transfer of n bytes reserves the next n/rate
//! seconds of the link and waits until its slot starts, so concurrent uploads share the rate and
//! the average never exceeds it (a transfer's own duration only slows it further). The first
//! second's worth of bytes goes without waiting (a burst), so small commands are not slowed.
//!
//! Invariant: pacing only delays calls; it never changes, splits or drops what is sent or read.

use super::{CommitRequest, LockGuard, Pending, Repository, StoreResult};
use anyhow::Result;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rates in bytes per second; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub up: Option<u64>,
    pub down: Option<u64>,
}

impl Rates {
    pub fn any(&self) -> bool {
        self.up.is_some() || self.down.is_some()
    }
}

/// One direction's pacing.
struct Pace {
    rate: Option<u64>,
    /// When the link is free again (may lie in the past: unused time up to one second is credit).
    free_at: Mutex<Instant>,
}

impl Pace {
    fn new(rate: Option<u64>) -> Pace {
        Pace { rate, free_at: Mutex::new(Instant::now()) }
    }

    /// Reserves `bytes` and waits for the slot's start.
    fn take(&self, bytes: u64) {
        let Some(rate) = self.rate.filter(|&r| r > 0) else { return };
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let start = {
            let mut free = self.free_at.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            // Credit for an idle link is capped at one second's worth.
            let start = (*free).max(now.checked_sub(Duration::from_secs(1)).unwrap_or(now));
            *free = start + cost;
            start + cost
        };
        // Wait until the reservation ends less the one-second burst.
        let wake = start.checked_sub(Duration::from_secs(1));
        if let Some(wake) = wake.filter(|&w| w > Instant::now()) {
            std::thread::sleep(wake - Instant::now());
        }
    }
}

pub struct Throttled {
    inner: Arc<dyn Repository>,
    up: Pace,
    down: Pace,
}

impl Throttled {
    pub fn new(inner: Arc<dyn Repository>, rates: Rates) -> Throttled {
        Throttled { inner, up: Pace::new(rates.up), down: Pace::new(rates.down) }
    }

    fn got<T: AsRef<[u8]>>(&self, r: StoreResult<T>) -> StoreResult<T> {
        if let Ok(data) = &r {
            self.down.take(data.as_ref().len() as u64);
        }
        r
    }
}

impl Repository for Throttled {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read_config(&self) -> StoreResult<Option<Vec<u8>>> {
        self.inner.read_config()
    }
    fn init(&self, config: &[u8]) -> StoreResult<()> {
        self.inner.init(config)
    }
    fn access_list(&self) -> StoreResult<Option<Vec<u8>>> {
        self.inner.access_list()
    }
    fn put_access_list(&self, gen: u64, list: &[u8]) -> StoreResult<()> {
        self.inner.put_access_list(gen, list)
    }
    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        self.inner.lock(owner)
    }
    fn head(&self) -> StoreResult<(u64, Option<Vec<u8>>)> {
        let r = self.inner.head();
        if let Ok((_, Some(m))) = &r {
            self.down.take(m.len() as u64);
        }
        r
    }
    fn generations(&self) -> StoreResult<Vec<u64>> {
        self.inner.generations()
    }
    fn manifest(&self, gen: u64) -> StoreResult<Vec<u8>> {
        self.got(self.inner.manifest(gen))
    }
    fn begin(&self, txn: &str, intent: &[u8]) -> StoreResult<()> {
        self.up.take(intent.len() as u64);
        self.inner.begin(txn, intent)
    }
    fn put_pack(&self, txn: &str, seq: u32, data: Bytes) -> StoreResult<String> {
        self.up.take(data.len() as u64);
        self.inner.put_pack(txn, seq, data)
    }
    fn spool(&self) -> StoreResult<Option<crate::backend::Spool>> {
        self.inner.spool()
    }
    fn put_spooled(&self, txn: &str, seq: u32, spool: crate::backend::Spool) -> StoreResult<String> {
        self.up.take(spool.len());
        self.inner.put_spooled(txn, seq, spool)
    }
    fn put_index(&self, txn: &str, seq: u32, data: &[u8]) -> StoreResult<String> {
        self.up.take(data.len() as u64);
        self.inner.put_index(txn, seq, data)
    }
    fn checkpoint(&self, txn: &str, seq: u32, record: &[u8]) -> StoreResult<()> {
        self.up.take(record.len() as u64);
        self.inner.checkpoint(txn, seq, record)
    }
    fn checkpoint_record(&self, txn: &str, seq: u32) -> StoreResult<Vec<u8>> {
        self.got(self.inner.checkpoint_record(txn, seq))
    }
    fn commit(&self, txn: &str, req: &CommitRequest) -> StoreResult<()> {
        self.up.take(req.manifest.len() as u64);
        self.inner.commit(txn, req)
    }
    fn finish(&self, txn: &str) -> StoreResult<()> {
        self.inner.finish(txn)
    }
    fn abort(&self, txn: &str) -> StoreResult<()> {
        self.inner.abort(txn)
    }
    fn pending(&self) -> StoreResult<Vec<Pending>> {
        self.inner.pending()
    }
    fn clean_partial(&self) -> StoreResult<()> {
        self.inner.clean_partial()
    }
    fn read_pack(&self, pack: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.got(self.inner.read_pack(pack, offset, len))
    }
    fn pack_size(&self, pack: &str) -> StoreResult<u64> {
        self.inner.pack_size(pack)
    }
    fn get_index(&self, name: &str) -> StoreResult<Vec<u8>> {
        self.got(self.inner.get_index(name))
    }
    fn list_packs(&self) -> StoreResult<Vec<String>> {
        self.inner.list_packs()
    }
    fn list_indexes(&self) -> StoreResult<Vec<String>> {
        self.inner.list_indexes()
    }
    fn uploads_in_flight(&self) -> usize {
        self.inner.uploads_in_flight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_link_averages_at_most_its_rate_after_a_one_second_burst() {
        let pace = Pace::new(Some(1_000_000));
        let start = Instant::now();
        // 3 MB at 1 MB/s: the first second's worth is a burst, the rest waits about 2 s.
        for _ in 0..30 {
            pace.take(100_000);
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1900), "3 MB at 1 MB/s took {took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        // Unlimited: no waiting.
        let free = Pace::new(None);
        let start = Instant::now();
        free.take(u64::MAX / 2);
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
