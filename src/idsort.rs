//! Sets of block ids (or other fixed-size records, `Record`) larger than memory should hold, by
//! external sort: records are collected in a run of at most `cap`, and a full run is sorted,
//! deduplicated and written to an unnamed temporary file. The distinct records then come out in
//! order from a k-way merge of the runs. Runs are merged in tiers: when `FAN` runs of one tier
//! are on disk they are merged into one run of the next tier, so each record is rewritten about
//! once per tier (log base `FAN` of the runs), and no merge holds more than `MAX_RUNS` files open.
//!
//! `into_set` turns the ids into a set to ask about (`IdSet`): the run itself when it never
//! spilled, else a temporary SQLite table filled in id order.
//!
//! Memory: one run plus a small read buffer per run on disk, whatever the number of ids. The
//! temporary files are unlinked when made (`tempfile::tempfile_in`), so a killed process leaves
//! nothing behind.

use crate::crypto::BlockId;
use anyhow::{Context, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

/// Runs of one tier merged into one of the next.
const FAN: usize = 64;
/// The most runs on disk at once (`FAN - 1` per tier, for the tiers 2^64 records can need).
pub const MAX_RUNS: usize = FAN * 8;
/// Read buffer per run during a merge.
const READ_BUF: usize = 16 << 10;

/// A record of fixed size, ordered as it is to come out.
pub trait Record: Ord + Copy {
    /// Bytes on disk; at most `MAX_RECORD`.
    const SIZE: usize;
    fn put(&self, out: &mut [u8]);
    fn get(b: &[u8]) -> Self;
}

const MAX_RECORD: usize = 128;

impl Record for BlockId {
    const SIZE: usize = 32;
    fn put(&self, out: &mut [u8]) {
        out.copy_from_slice(self);
    }
    fn get(b: &[u8]) -> Self {
        b.try_into().expect("32 bytes")
    }
}

/// Sorts block ids.
pub type IdSorter = Sorter<BlockId>;

pub struct Sorter<R: Record> {
    run: Vec<R>,
    cap: usize,
    /// Runs on disk and their tiers, tiers never increasing along the list.
    runs: Vec<(File, u32)>,
    dir: Option<PathBuf>,
    /// Ids pushed, duplicates included.
    pub pushed: u64,
}

impl<R: Record> Sorter<R> {
    /// A sorter holding at most `cap` records in memory, spilling runs to `dir` (the system's
    /// temporary directory when `None`).
    pub fn new(dir: Option<PathBuf>, cap: usize) -> Sorter<R> {
        assert!(R::SIZE <= MAX_RECORD);
        Sorter { run: Vec::new(), cap: cap.max(1), runs: Vec::new(), dir, pushed: 0 }
    }

    pub fn push(&mut self, id: R) -> Result<()> {
        self.pushed += 1;
        if self.run.len() == self.cap {
            self.run.sort_unstable();
            self.run.dedup();
            // Deduplication may leave room: spill only a run still mostly full.
            if self.run.len() * 4 > self.cap * 3 {
                self.spill()?;
            }
        }
        self.run.push(id);
        Ok(())
    }

    /// Writes the current run (sorted, distinct) to a temporary file.
    fn spill(&mut self) -> Result<()> {
        let mut run = std::mem::take(&mut self.run);
        run.sort_unstable();
        run.dedup();
        let mut file = self.tempfile()?;
        write_all(&mut file, run.iter().map(|r| Ok(*r)))?;
        self.runs.push((file, 0));
        self.run = run;
        self.run.clear();
        // The last `FAN` runs of one tier become one run of the next, and so on up.
        while self.runs.len() >= FAN {
            let tier = self.runs[self.runs.len() - 1].1;
            let from = self.runs.len() - FAN;
            if self.runs[from].1 != tier {
                break;
            }
            let merged = self.merge_runs(from)?;
            self.runs.push((merged, tier + 1));
        }
        Ok(())
    }

    fn tempfile(&self) -> Result<File> {
        let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        tempfile::tempfile_in(&dir)
            .or_else(|_| tempfile::tempfile())
            .with_context(|| format!("cannot create a temporary file in {} to sort records", dir.display()))
    }

    /// Merges every run on disk into one new run.
    /// Merges the runs from index `from` on into one new run (removed from the list).
    fn merge_runs(&mut self, from: usize) -> Result<File> {
        let mut file = self.tempfile()?;
        let runs = self.runs.drain(from..).map(|(f, _)| f).collect();
        write_all(&mut file, Merge::<R>::new(runs, Vec::new().into_iter())?)?;
        Ok(file)
    }

    /// Every distinct record pushed, in ascending order.
    pub fn sorted(mut self) -> Result<Merge<R>> {
        self.run.sort_unstable();
        self.run.dedup();
        Merge::new(self.runs.into_iter().map(|(f, _)| f).collect(), self.run.into_iter())
    }
}

/// Writes `records` to `file` and rewinds it for reading.
fn write_all<R: Record>(file: &mut File, records: impl Iterator<Item = Result<R>>) -> Result<()> {
    let mut w = BufWriter::with_capacity(64 << 10, &mut *file);
    let mut buf = [0u8; MAX_RECORD];
    for r in records {
        r?.put(&mut buf[..R::SIZE]);
        w.write_all(&buf[..R::SIZE]).context("cannot write a sorted run to a temporary file")?;
    }
    w.flush().context("cannot write a sorted run to a temporary file")?;
    drop(w);
    file.rewind()?;
    Ok(())
}

impl IdSorter {
    /// The distinct ids pushed as a set to ask about: the sorted run itself when nothing went
    /// to disk, else a temporary SQLite table filled in id order (appends only).
    pub fn into_set(mut self) -> Result<IdSet> {
        if self.runs.is_empty() {
            self.run.sort_unstable();
            self.run.dedup();
            self.run.shrink_to_fit();
            return Ok(IdSet::Memory(std::mem::take(&mut self.run)));
        }
        let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("ids-{}-{}.sqlite", std::process::id(), crate::process::random_id()?));
        let conn = rusqlite::Connection::open(&path)
            .with_context(|| format!("cannot create a temporary database in {}", dir.display()))?;
        // Unlinked at once: SQLite keeps its descriptor (no journal is ever opened), and a
        // killed process leaves nothing behind.
        let _ = std::fs::remove_file(&path);
        conn.execute_batch(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE;
             PRAGMA cache_size=-2000;
             CREATE TABLE ids (id BLOB PRIMARY KEY) WITHOUT ROWID; BEGIN;",
        )?;
        {
            let mut put = conn.prepare("INSERT INTO ids (id) VALUES (?1)")?;
            for id in self.sorted()? {
                put.execute([&id?[..]])?;
            }
        }
        conn.execute_batch("COMMIT;")?;
        Ok(IdSet::Disk(conn))
    }
}

/// A set of distinct ids built by `IdSorter::into_set`.
pub enum IdSet {
    Memory(Vec<BlockId>),
    Disk(rusqlite::Connection),
}

impl IdSet {
    pub fn contains(&self, id: &BlockId) -> Result<bool> {
        match self {
            IdSet::Memory(ids) => Ok(ids.binary_search(id).is_ok()),
            IdSet::Disk(conn) => {
                let mut st = conn.prepare_cached("SELECT 1 FROM ids WHERE id = ?1")?;
                Ok(st.exists([&id[..]])?)
            }
        }
    }
}

/// The k-way merge of sorted runs: each distinct record once, ascending.
pub struct Merge<R: Record> {
    readers: Vec<BufReader<File>>,
    memory: std::vec::IntoIter<R>,
    /// The smallest unread record of each source; source `readers.len()` is `memory`.
    heap: BinaryHeap<Reverse<(R, usize)>>,
    last: Option<R>,
}

impl<R: Record> Merge<R> {
    fn new(files: Vec<File>, memory: std::vec::IntoIter<R>) -> Result<Merge<R>> {
        let readers = files.into_iter().map(|f| BufReader::with_capacity(READ_BUF, f)).collect();
        let mut m = Merge { readers, memory, heap: BinaryHeap::new(), last: None };
        for i in 0..=m.readers.len() {
            m.refill(i)?;
        }
        Ok(m)
    }

    fn refill(&mut self, i: usize) -> Result<()> {
        let next = match self.readers.get_mut(i) {
            Some(r) => {
                let mut buf = [0u8; MAX_RECORD];
                match r.read_exact(&mut buf[..R::SIZE]) {
                    Ok(()) => Some(R::get(&buf[..R::SIZE])),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
                    Err(e) => return Err(e).context("cannot read a sorted run from a temporary file"),
                }
            }
            None => self.memory.next(),
        };
        if let Some(id) = next {
            self.heap.push(Reverse((id, i)));
        }
        Ok(())
    }
}

impl<R: Record> Iterator for Merge<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            let Reverse((id, i)) = self.heap.pop()?;
            if let Err(e) = self.refill(i) {
                return Some(Err(e));
            }
            if self.last != Some(id) {
                self.last = Some(id);
                return Some(Ok(id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> BlockId {
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }

    #[test]
    fn distinct_ids_come_out_sorted_across_runs_and_merges() {
        // 1 id a run and 3,000 distinct ids pushed twice: 6,000 runs, merges of two tiers.
        let mut s = IdSorter::new(None, 1);
        for n in (0..3000).chain((0..3000).rev()) {
            s.push(id(n)).unwrap();
        }
        assert!(s.runs.len() < 2 * FAN && s.pushed == 6000);
        assert!(s.runs.iter().any(|r| r.1 == 2), "no run of the third tier");
        let out: Vec<BlockId> = s.sorted().unwrap().map(|r| r.unwrap()).collect();
        let mut want: Vec<BlockId> = (0..3000).map(id).collect();
        want.sort_unstable();
        assert_eq!(out, want);
    }

    #[test]
    fn a_set_asks_the_same_in_memory_and_on_disk() {
        for cap in [7, 100_000] {
            let mut s = IdSorter::new(None, cap);
            for n in (0..2000).filter(|n| n % 3 != 0) {
                s.push(id(n)).unwrap();
            }
            let set = s.into_set().unwrap();
            assert_eq!(matches!(set, IdSet::Disk(_)), cap == 7);
            for n in 0..2000 {
                assert_eq!(set.contains(&id(n)).unwrap(), n % 3 != 0, "cap {cap}, id {n}");
            }
        }
    }

    #[test]
    fn a_set_that_fits_in_memory_uses_no_file() {
        let mut s = IdSorter::new(None, 1000);
        for n in [5, 3, 5, 1, 3] {
            s.push(id(n)).unwrap();
        }
        assert!(s.runs.is_empty());
        assert_eq!(s.sorted().unwrap().count(), 3);
    }
}
