//! Loading a whole index into an empty block table in id order (a new cache, a cache whose
//! marks changed, fsck's reload).
//!
//! Inserting blocks in the order the segments list them puts each row in a random place of the
//! table's B-tree: at 100M blocks nearly every insert reads and rewrites a page no cache holds,
//! and a load took most of an hour. Here the segments' pack and segment rows go in as they come,
//! while their block rows are sorted on disk by id (`idsort`, records of `ROW` bytes) and then
//! appended in id order, committed every `ROWS_PER_COMMIT` rows: every page is written once.
//!
//! Invariants: rows reach `blocks` exactly as `Cache::add_pack` would have put them (the same
//! check value, marked copies parked, and of two rows for one id the one listed later wins,
//! through the entry's ordinal in the sort key). Until `finish` the cache's synced state is
//! `LOADING`, and a cache found in that state (a load cut short) holds an unknown part of the
//! blocks: `session::sync_cache` clears it and loads again.

use super::blocks::entry_check;
use super::Cache;
use crate::crypto::BlockId;
use crate::idsort::{Record, Sorter};
use crate::index::Segment;
use anyhow::Result;
use rusqlite::params;
use std::path::PathBuf;

/// The synced state of a cache while a load is under way: never a manifest's token.
pub const LOADING: &str = "loading";
/// Rows sorted in memory before a run goes to disk (about 2.4 MB; runs are merged in tiers,
/// so small runs cost little: `idsort`).
const SORT_RUN: usize = 1 << 15;
/// Rows appended per SQLite transaction (a bounded WAL; see `LOAD_BATCH`).
const ROWS_PER_COMMIT: usize = 1 << 20;

/// One block row to load; sorted by id, then by the order it was listed in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    id: BlockId,
    ordinal: u64,
    pack: i64,
    offset: u64,
    len: u32,
    plain_len: u32,
    kind: u8,
    chk: i64,
}

impl Record for Row {
    const SIZE: usize = 32 + 8 + 8 + 8 + 4 + 4 + 1 + 8;
    fn put(&self, o: &mut [u8]) {
        o[..32].copy_from_slice(&self.id);
        o[32..40].copy_from_slice(&self.ordinal.to_be_bytes());
        o[40..48].copy_from_slice(&self.pack.to_le_bytes());
        o[48..56].copy_from_slice(&self.offset.to_le_bytes());
        o[56..60].copy_from_slice(&self.len.to_le_bytes());
        o[60..64].copy_from_slice(&self.plain_len.to_le_bytes());
        o[64] = self.kind;
        o[65..73].copy_from_slice(&self.chk.to_le_bytes());
    }
    fn get(b: &[u8]) -> Row {
        let n = |r: std::ops::Range<usize>| -> [u8; 8] { b[r].try_into().expect("8 bytes") };
        let w = |r: std::ops::Range<usize>| -> [u8; 4] { b[r].try_into().expect("4 bytes") };
        Row {
            id: b[..32].try_into().expect("32 bytes"),
            ordinal: u64::from_be_bytes(n(32..40)),
            pack: i64::from_le_bytes(n(40..48)),
            offset: u64::from_le_bytes(n(48..56)),
            len: u32::from_le_bytes(w(56..60)),
            plain_len: u32::from_le_bytes(w(60..64)),
            kind: b[64],
            chk: i64::from_le_bytes(n(65..73)),
        }
    }
}

/// A load under way: segments are added (`add`), then the blocks go in (`finish`).
pub struct Loader<'a> {
    cache: &'a Cache,
    rows: Sorter<Row>,
    marked: bool,
    /// Segments added in the SQLite transaction open now (0: none is open).
    open: usize,
    /// Block rows added so far.
    pub blocks: u64,
}

impl Cache {
    /// Starts loading segments into this cache, whose blocks must have just been cleared (with
    /// the marks to apply set); sorted runs go to `tmp` (the system's temporary directory when
    /// `None`). Marks the cache `LOADING`.
    pub fn loader(&self, tmp: Option<PathBuf>) -> Result<Loader<'_>> {
        self.loader_with_run(tmp, SORT_RUN)
    }

    fn loader_with_run(&self, tmp: Option<PathBuf>, run: usize) -> Result<Loader<'_>> {
        self.set_synced(LOADING)?;
        let marked = self.guard(|| self.any_marked())?;
        Ok(Loader { cache: self, rows: Sorter::new(tmp, run), marked, open: 0, blocks: 0 })
    }
}

impl Loader<'_> {
    /// Adds segment `name`'s pack rows now and its block rows to the sort. The pack rows are
    /// committed every `LOAD_BATCH` segments (a bounded WAL); one failed `add` rolls back its
    /// batch when the loader is dropped.
    pub fn add(&mut self, name: &str, seg: &Segment) -> Result<()> {
        let c = self.cache;
        if self.open == 0 {
            c.begin()?;
        }
        self.open += 1;
        for (pack, entries) in &seg.packs {
            let pid = c.pack_row(name, pack)?;
            for e in entries {
                if self.marked && c.guard(|| c.park_if_marked(pack, e))? {
                    continue; // a damaged copy: not offered for dedup (`damage`)
                }
                self.rows.push(Row {
                    id: e.id,
                    ordinal: self.blocks,
                    pack: pid,
                    offset: e.offset,
                    len: e.len,
                    plain_len: e.plain_len,
                    kind: e.kind as u8,
                    chk: entry_check(pack, e),
                })?;
                self.blocks += 1;
            }
        }
        if self.open == super::LOAD_BATCH {
            c.commit()?;
            self.open = 0;
        }
        Ok(())
    }

    /// Appends the block rows in id order and records `synced` as the state the cache mirrors.
    pub fn finish(mut self, synced: &str) -> Result<()> {
        let c = self.cache;
        if self.open > 0 {
            c.commit()?;
            self.open = 0;
        }
        let rows = std::mem::replace(&mut self.rows, Sorter::new(None, 1));
        let mut rows = rows.sorted()?.peekable();
        loop {
            // Dies here in crash tests: a load cut short between two commits.
            crate::failpoint::hit("cache-load-appending");
            let more = c.transaction(|c| {
                c.guard(|| {
                    let mut put = c.conn.prepare_cached(
                        "INSERT OR REPLACE INTO blocks (id, pack, offset, len, plain_len, kind, chk) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?;
                    for _ in 0..ROWS_PER_COMMIT {
                        let Some(r) = rows.next() else { return Ok(false) };
                        let r = r?;
                        put.execute(params![&r.id[..], r.pack, r.offset as i64, r.len, r.plain_len, r.kind, r.chk])?;
                    }
                    Ok(rows.peek().is_some())
                })
            })?;
            if !more {
                break;
            }
        }
        c.set_synced(synced)
    }
}

impl Drop for Loader<'_> {
    fn drop(&mut self) {
        if self.open > 0 {
            self.cache.rollback();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{Entry, Kind};

    /// Segments listing 3,000 blocks, some ids twice (a later copy in another pack), one copy
    /// marked damaged.
    fn segments() -> Vec<(String, Segment)> {
        let id = |n: u64| *blake3::hash(&(n % 2_500).to_le_bytes()).as_bytes();
        (0..3u64)
            .map(|s| {
                let packs = (0..10u64)
                    .map(|p| {
                        let entries = (0..100u64)
                            .map(|i| {
                                let n = s * 1000 + p * 100 + i;
                                Entry {
                                    id: id(n),
                                    kind: Kind::Data,
                                    offset: i * 10,
                                    len: 10,
                                    plain_len: 20 + n as u32,
                                }
                            })
                            .collect();
                        (format!("pack-{s}-{p}"), entries)
                    })
                    .collect();
                (format!("seg-{s}"), Segment { packs })
            })
            .collect()
    }

    fn dump(c: &Cache) -> Vec<(Vec<u8>, String, i64, i64, i64)> {
        let mut st = c
            .conn
            .prepare("SELECT b.id, p.name, b.offset, b.plain_len, b.chk FROM blocks b JOIN packs p ON p.id = b.pack ORDER BY b.id")
            .unwrap();
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)));
        rows.unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn a_sorted_load_puts_in_exactly_what_adding_each_pack_does() {
        let segs = segments();
        // The later of two copies is marked: the earlier one stays.
        let marked = segs[2].1.packs[6].1[5].id;
        assert_eq!(marked, segs[0].1.packs[1].1[5].id);
        let marks = [(marked, "pack-2-6".to_string())];
        let dir = tempfile::tempdir().unwrap();
        let (one, _) = Cache::open(&dir.path().join("a"), "r", "k").unwrap();
        one.set_marks(&marks, "t").unwrap();
        for (name, seg) in &segs {
            for (pack, entries) in &seg.packs {
                one.add_pack(name, pack, entries).unwrap();
            }
        }
        // Runs of 7 rows: hundreds of runs on disk and merges of them.
        let (two, _) = Cache::open(&dir.path().join("b"), "r", "k").unwrap();
        two.set_marks(&marks, "t").unwrap();
        let mut loader = two.loader_with_run(None, 7).unwrap();
        assert_eq!(two.synced().unwrap().as_deref(), Some(LOADING));
        for (name, seg) in &segs {
            loader.add(name, seg).unwrap();
        }
        assert_eq!(loader.blocks, 2_999);
        loader.finish("done").unwrap();
        assert_eq!(two.synced().unwrap().as_deref(), Some("done"));
        let rows = dump(&two);
        assert_eq!(rows.len(), 2_500);
        assert_eq!(rows, dump(&one));
        assert_eq!(two.segments().unwrap().len(), 3);
        assert_eq!(two.marked(&marked).unwrap().map(|l| l.pack).as_deref(), Some("pack-2-6"));
        assert_eq!(two.lookup(&marked).unwrap().map(|l| l.pack).as_deref(), Some("pack-0-1"));
    }
}
