//! fsck's archive check: every archive's root and metadata are read, and every block they
//! reference is checked against the set of blocks found damaged and against the (freshly
//! reloaded) index. Damage is reported by archive and path, at most `MAX_PATHS` paths per archive.
//!
//! Each archive's nodes are read as a stream (`reader::NodeStream`), never held together.
//! Metadata blocks shared between archives (an unchanged tree chunks to the same blocks) are
//! fetched once and kept in memory up to `MEMO_BYTES`. The blocks files reference are not
//! looked up one by one (100M random lookups take the better part of an hour): they are sorted
//! on disk (`idsort`, with up to `SEEN_MEMO` recent ids kept to spare pushing shared blocks
//! again) and merged with the cache's blocks read in id order. Only when that finds referenced
//! blocks the index lacks are the archives read a second time, to name the paths using them.
//! No set here grows with the repository.

use super::FsckReport;
use crate::archive::NodeKind;
use crate::cache::Cache;
use crate::crypto::BlockId;
use crate::idsort::{IdSet, IdSorter};
use crate::manifest::{ArchiveRef, Manifest};
use crate::progress::{Event, Progress};
use crate::reader;
use crate::session::Session;
use anyhow::{anyhow, Result};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

const MAX_PATHS: usize = 50;

/// Metadata blocks fetched, and their total size (at most `MEMO_BYTES`).
type Memo = (HashMap<BlockId, Arc<[u8]>>, usize);
const MEMO_BYTES: usize = 2 << 20;
/// Ids recently sorted kept in memory (about 1 MB), forgotten all at once when full.
const SEEN_MEMO: usize = 1 << 14;
/// Referenced ids sorted in memory before a run goes to disk (1 MB).
const SORT_RUN: usize = 1 << 15;

struct Checker<'a> {
    session: &'a Session,
    cache: &'a Cache,
    damaged: &'a HashMap<BlockId, String>,
    repaired: &'a HashMap<BlockId, String>,
    seen: RefCell<HashSet<BlockId>>,
    referenced: RefCell<IdSorter>,
    /// Referenced blocks the index lacks, once known (the second pass).
    missing: Option<IdSet>,
    memo: RefCell<Memo>,
    read: Cell<u64>,
    /// Damaged blocks some archive references.
    used_damaged: RefCell<HashSet<BlockId>>,
}

impl Checker<'_> {
    /// Why a block cannot be used, if it is known yet: in the first pass a block missing from
    /// the index is only sorted, to be found by `missing`.
    fn fault(&self, id: &BlockId) -> Result<Option<String>> {
        if self.missing.is_none() {
            let mut seen = self.seen.borrow_mut();
            if !seen.contains(id) {
                self.referenced.borrow_mut().push(*id)?;
                if seen.len() == SEEN_MEMO {
                    seen.clear();
                }
                seen.insert(*id);
            }
        }
        if let Some(why) = self.damaged.get(id) {
            self.used_damaged.borrow_mut().insert(*id);
            return Ok(Some(why.clone()));
        }
        match &self.missing {
            Some(missing) if missing.contains(id)? => Ok(Some(not_indexed(id))),
            _ => Ok(None),
        }
    }

    fn block(&self, id: &BlockId) -> Result<Arc<[u8]>> {
        if let Some(b) = self.memo.borrow().0.get(id) {
            return Ok(b.clone());
        }
        if let Some(why) = self.fault(id)? {
            return Err(anyhow!(why));
        }
        if self.cache.stored_len(id)?.is_none() {
            return Err(anyhow!(not_indexed(id)));
        }
        let loc = reader::locate(self.cache, id)?;
        let plain: Arc<[u8]> = reader::fetch(self.session, id, &loc)?.into();
        self.read.set(self.read.get() + loc.len as u64);
        let mut memo = self.memo.borrow_mut();
        if memo.1 + plain.len() > MEMO_BYTES {
            *memo = Default::default();
        }
        memo.1 += plain.len();
        memo.0.insert(*id, plain.clone());
        Ok(plain)
    }

    /// Checks one archive; returns its problem lines, its file count (0 with a problem line: its
    /// metadata cannot be read) and how many of its blocks have a damaged copy and an intact one.
    fn archive(&self, a: &ArchiveRef) -> Result<(Vec<String>, u64, usize)> {
        let unreadable = |e: anyhow::Error| Ok((vec![format!("{e:#}: nothing in it can be restored")], 0, 0));
        let stream = match reader::NodeStream::open(a, |id: &BlockId| self.block(id)) {
            Ok((_, stream)) => stream,
            Err(e) => return unreadable(e),
        };
        // The first `MAX_PATHS` damaged paths, and how many more.
        let mut bad: BTreeMap<Vec<u8>, (usize, String)> = BTreeMap::new();
        let mut more = 0;
        let (mut files, mut repaired) = (0, HashSet::new());
        for n in stream {
            let n = match n {
                Ok(n) => n,
                Err(e) => return unreadable(e),
            };
            if n.kind != NodeKind::File {
                continue;
            }
            files += 1;
            let mut counted = false; // among the `more` paths
            for (id, _) in &n.blocks {
                if self.repaired.contains_key(id) {
                    repaired.insert(*id);
                }
                if let Some(why) = self.fault(id)? {
                    if let Some(b) = bad.get_mut(&n.path) {
                        b.0 += 1;
                    } else if bad.len() < MAX_PATHS {
                        bad.insert(n.path.clone(), (1, why));
                    } else if !counted {
                        (more, counted) = (more + 1, true);
                    }
                }
            }
        }
        let mut lines: Vec<String> = bad
            .iter()
            .map(|(path, (count, why))| {
                format!(
                    "archive {:?}: {}: {count} block(s) unusable ({why})",
                    a.name,
                    crate::query::escape(path)
                )
            })
            .collect();
        if more > 0 {
            lines.push(format!("archive {:?}: and {more} more damaged paths", a.name));
        }
        Ok((lines, files, repaired.len()))
    }
}

/// The fault of a referenced block the index does not list.
fn not_indexed(id: &BlockId) -> String {
    format!("block {} is in no pack the index lists", hex::encode(&id[..8]))
}

/// One pass over every archive: each one's problem lines, file count and repaired blocks.
type Pass = Vec<(Vec<String>, u64, usize)>;

fn pass(c: &Checker, m: &Manifest, progress: &Progress) -> Result<Pass> {
    let total = m.archives.iter().map(|a| a.stats.raw).sum();
    progress(Event::Total { files: m.archives.len() as u64, bytes: total, complete: true });
    let mut out = Vec::with_capacity(m.archives.len());
    for a in &m.archives {
        progress(Event::File(crate::query::escape(a.name.as_bytes())));
        out.push(c.archive(a)?);
        progress(Event::Advance { files: 1, bytes: a.stats.raw });
    }
    Ok(out)
}

pub fn check(
    session: &Session,
    cache: &Cache,
    m: &Manifest,
    assessed: &super::marks::Assessed,
    tmp: Option<std::path::PathBuf>,
    report: &mut FsckReport,
    progress: Progress,
) -> Result<()> {
    let damaged = &assessed.unusable;
    let mut c = Checker {
        session,
        cache,
        damaged,
        repaired: &assessed.repaired,
        seen: Default::default(),
        referenced: RefCell::new(IdSorter::new(tmp.clone(), SORT_RUN)),
        missing: None,
        memo: Default::default(),
        read: Cell::new(0),
        used_damaged: Default::default(),
    };
    let mut archives = pass(&c, m, &progress)?;
    // The distinct blocks referenced, merged with the index's: those it lacks (and that are not
    // already known damaged) are missing.
    let referenced = std::mem::replace(&mut c.referenced, RefCell::new(IdSorter::new(None, 1)));
    let mut missing = IdSorter::new(tmp, SORT_RUN);
    let mut refs = referenced.into_inner().sorted()?.peekable();
    let mut distinct = 0u64;
    let mut absent = |id: BlockId, distinct: &mut u64| -> Result<()> {
        *distinct += 1;
        if !damaged.contains_key(&id) {
            missing.push(id)?;
        }
        Ok(())
    };
    cache.each_block_id(|indexed| {
        while let Some(r) = refs.next_if(|r| r.as_ref().map_or(true, |r| r < indexed)) {
            absent(r?, &mut distinct)?;
        }
        if refs.next_if(|r| r.as_ref().is_ok_and(|r| r == indexed)).is_some() {
            distinct += 1;
        }
        Ok(())
    })?;
    for r in refs {
        absent(r?, &mut distinct)?;
    }
    report.referenced = distinct;
    if missing.pushed > 0 {
        // Read again to name the paths using them.
        c.missing = Some(missing.into_set()?);
        c.used_damaged.borrow_mut().clear();
        archives = pass(&c, m, &progress)?;
    }
    for ((lines, files, repaired), a) in archives.into_iter().zip(&m.archives) {
        if repaired > 0 && lines.is_empty() {
            report.repaired.push(format!(
                "archive {:?}: repaired: {repaired} block(s) it uses have a damaged copy and an intact one; it restores",
                a.name
            ));
        }
        if files == 0 && !lines.is_empty() {
            report.unreadable_archives += 1;
        }
        report.problems.extend(lines);
        report.files += files;
        report.archives += 1;
    }
    report.read += c.read.get();
    let used_damaged = c.used_damaged.into_inner();
    let unused = damaged.keys().filter(|id| !used_damaged.contains(*id)).count();
    // With an archive unreadable, which damaged blocks it would use is unknown.
    if unused > 0 && report.unreadable_archives == 0 {
        let example = damaged.iter().find(|(id, _)| !used_damaged.contains(*id)).map(|(_, w)| w.clone());
        report.problems.push(format!(
            "{unused} damaged block(s) that no archive references ({}); `archiver fsck --prune` removes them",
            example.unwrap_or_default()
        ));
    }
    Ok(())
}
