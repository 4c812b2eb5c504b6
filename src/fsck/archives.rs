//! fsck's archive check: every archive's root and metadata are read, and every block they
//! reference is looked up in the (freshly rebuilt) index and in the set of blocks found damaged.
//! Damage is reported by archive and path, at most `MAX_PATHS` paths per archive.
//!
//! Each archive's nodes are read as a stream (`reader::NodeStream`), never held together.
//! Metadata blocks shared between archives (an unchanged tree chunks to the same blocks) are
//! fetched once and kept in memory up to `MEMO_BYTES`. Every reference is looked up in the cache
//! (reloaded from the index just before), with up to `PRESENT_MEMO` ids found present kept to
//! spare the lookups of blocks many files or archives share. The distinct blocks referenced are
//! counted by an external sort (`idsort`), so no set here grows with the repository.

use super::FsckReport;
use crate::archive::NodeKind;
use crate::cache::Cache;
use crate::crypto::BlockId;
use crate::idsort::IdSorter;
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
const MEMO_BYTES: usize = 8 << 20;
/// Ids found present kept in memory (about 4 MB), forgotten all at once when full.
const PRESENT_MEMO: usize = 1 << 16;
/// Referenced ids sorted in memory before a run goes to disk (4 MB).
const SORT_RUN: usize = 1 << 17;

struct Checker<'a> {
    session: &'a Session,
    cache: &'a Cache,
    damaged: &'a HashMap<BlockId, String>,
    repaired: &'a HashMap<BlockId, String>,
    present: RefCell<HashSet<BlockId>>,
    referenced: RefCell<IdSorter>,
    memo: RefCell<Memo>,
    read: Cell<u64>,
    /// Damaged blocks some archive references.
    used_damaged: RefCell<HashSet<BlockId>>,
}

impl Checker<'_> {
    /// Why a block cannot be used, if it cannot.
    fn fault(&self, id: &BlockId) -> Result<Option<String>> {
        // An id remembered as present was counted when it was first seen (and is not damaged:
        // only ids past the damage check are remembered), so a shared block is sorted once per
        // stay in the memo, not once per reference.
        if self.present.borrow().contains(id) {
            return Ok(None);
        }
        self.referenced.borrow_mut().push(*id)?;
        if let Some(why) = self.damaged.get(id) {
            self.used_damaged.borrow_mut().insert(*id);
            return Ok(Some(why.clone()));
        }
        if self.cache.stored_len(id)?.is_none() {
            return Ok(Some(format!("block {} is in no pack the index lists", hex::encode(&id[..8]))));
        }
        let mut present = self.present.borrow_mut();
        if present.len() == PRESENT_MEMO {
            present.clear();
        }
        present.insert(*id);
        Ok(None)
    }

    fn block(&self, id: &BlockId) -> Result<Arc<[u8]>> {
        if let Some(b) = self.memo.borrow().0.get(id) {
            return Ok(b.clone());
        }
        if let Some(why) = self.fault(id)? {
            return Err(anyhow!(why));
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
    let c = Checker {
        session,
        cache,
        damaged,
        repaired: &assessed.repaired,
        present: Default::default(),
        referenced: RefCell::new(IdSorter::new(tmp, SORT_RUN)),
        memo: Default::default(),
        read: Cell::new(0),
        used_damaged: Default::default(),
    };
    let total = m.archives.iter().map(|a| a.stats.raw).sum();
    progress(Event::Total { files: m.archives.len() as u64, bytes: total, complete: true });
    for a in &m.archives {
        progress(Event::File(crate::query::escape(a.name.as_bytes())));
        let (lines, files, repaired) = c.archive(a)?;
        progress(Event::Advance { files: 1, bytes: a.stats.raw });
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
    let mut distinct = 0u64;
    for id in c.referenced.into_inner().sorted()? {
        id?;
        distinct += 1;
    }
    report.referenced = distinct;
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
