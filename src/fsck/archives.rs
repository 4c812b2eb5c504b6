//! fsck's archive check: every archive's root and metadata are read, and every block they
//! reference is looked up in the (freshly rebuilt) index and in the set of blocks found damaged.
//! Damage is reported by archive and path, at most `MAX_PATHS` paths per archive.
//!
//! Metadata blocks shared between archives (an unchanged tree chunks to the same blocks) are
//! fetched once and kept in memory up to `MEMO_BYTES`; blocks already found present are not
//! looked up again.

use super::FsckReport;
use crate::archive::NodeKind;
use crate::cache::Cache;
use crate::crypto::BlockId;
use crate::manifest::{ArchiveRef, Manifest};
use crate::progress::{Event, Progress};
use crate::reader;
use crate::session::Session;
use anyhow::{anyhow, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

const MAX_PATHS: usize = 50;
const MEMO_BYTES: usize = 256 << 20;

struct Checker<'a> {
    session: &'a Session,
    cache: &'a Cache,
    damaged: &'a HashMap<BlockId, String>,
    repaired: &'a HashMap<BlockId, String>,
    present: HashSet<BlockId>,
    memo: HashMap<BlockId, Arc<[u8]>>,
    memo_bytes: usize,
    read: u64,
    /// Damaged blocks some archive references.
    used_damaged: HashSet<BlockId>,
}

impl Checker<'_> {
    /// Why a block cannot be used, if it cannot.
    fn fault(&mut self, id: &BlockId) -> Result<Option<String>> {
        if let Some(why) = self.damaged.get(id) {
            self.used_damaged.insert(*id);
            return Ok(Some(why.clone()));
        }
        if self.present.contains(id) {
            return Ok(None);
        }
        if self.cache.stored_len(id)?.is_none() {
            return Ok(Some(format!("block {} is in no pack the index lists", hex::encode(&id[..8]))));
        }
        self.present.insert(*id);
        Ok(None)
    }

    fn block(&mut self, id: &BlockId) -> Result<Arc<[u8]>> {
        if let Some(b) = self.memo.get(id) {
            return Ok(b.clone());
        }
        if let Some(why) = self.fault(id)? {
            return Err(anyhow!(why));
        }
        let loc = reader::locate(self.cache, id)?;
        let plain: Arc<[u8]> = reader::fetch(self.session, id, &loc)?.into();
        self.read += loc.len as u64;
        if self.memo_bytes + plain.len() > MEMO_BYTES {
            self.memo.clear();
            self.memo_bytes = 0;
        }
        self.memo_bytes += plain.len();
        self.memo.insert(*id, plain.clone());
        Ok(plain)
    }

    /// Checks one archive; returns its problem lines, its file count (0 with a problem line: its
    /// metadata cannot be read) and how many of its blocks have a damaged copy and an intact one.
    fn archive(&mut self, a: &ArchiveRef) -> Result<(Vec<String>, u64, usize)> {
        let nodes = match reader::read_with(a, |id| self.block(id)) {
            Ok((_, nodes)) => nodes,
            Err(e) => {
                let line = format!("{e:#}: nothing in it can be restored");
                return Ok((vec![line], 0, 0));
            }
        };
        let mut bad: BTreeMap<Vec<u8>, (usize, String)> = BTreeMap::new();
        let (mut files, mut repaired) = (0, HashSet::new());
        for n in nodes.iter().filter(|n| n.kind == NodeKind::File) {
            files += 1;
            for (id, _) in &n.blocks {
                if self.repaired.contains_key(id) {
                    repaired.insert(*id);
                }
                if let Some(why) = self.fault(id)? {
                    bad.entry(n.path.clone()).or_insert((0, why)).0 += 1;
                }
            }
        }
        let mut lines: Vec<String> = bad
            .iter()
            .take(MAX_PATHS)
            .map(|(path, (count, why))| {
                format!(
                    "archive {:?}: {}: {count} block(s) unusable ({why})",
                    a.name,
                    crate::query::escape(path)
                )
            })
            .collect();
        if bad.len() > MAX_PATHS {
            lines.push(format!("archive {:?}: and {} more damaged paths", a.name, bad.len() - MAX_PATHS));
        }
        Ok((lines, files, repaired.len()))
    }
}

pub fn check(
    session: &Session,
    cache: &Cache,
    m: &Manifest,
    assessed: &super::marks::Assessed,
    report: &mut FsckReport,
    progress: Progress,
) -> Result<()> {
    let damaged = &assessed.unusable;
    let mut c = Checker {
        session,
        cache,
        damaged,
        repaired: &assessed.repaired,
        present: HashSet::new(),
        memo: HashMap::new(),
        memo_bytes: 0,
        read: 0,
        used_damaged: HashSet::new(),
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
    report.read += c.read;
    report.referenced = (c.present.len() + c.used_damaged.len()) as u64;
    let unused = damaged.keys().filter(|id| !c.used_damaged.contains(*id)).count();
    // With an archive unreadable, which damaged blocks it would use is unknown.
    if unused > 0 && report.unreadable_archives == 0 {
        let example = damaged.iter().find(|(id, _)| !c.used_damaged.contains(*id)).map(|(_, w)| w.clone());
        report.problems.push(format!(
            "{unused} damaged block(s) that no archive references ({}); `archiver fsck --prune` removes them",
            example.unwrap_or_default()
        ));
    }
    Ok(())
}
