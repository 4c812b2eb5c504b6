//! `fsck`: checks the repository against itself and rebuilds the local cache from it.
//!
//! Under the lock, after recovery, it reads every live index segment (about 75 bytes per stored
//! block) and lists the stored packs: an indexed pack that is missing or shorter than its blocks
//! reach is damage; a pack no segment lists is an orphan. If a segment is missing or damaged, the
//! index is rebuilt from the packs' own sealed headers and committed as one new segment in a
//! transaction. The cache is then reloaded from the index, never from itself. Every archive's
//! metadata is read (each metadata block fetched once) and every block it references is checked
//! against the index, so damage is reported as the archives and paths it affects.
//!
//! `--verify-data` also reads every pack and authenticates every block; `--prune` then deletes
//! orphan packs and segments and reclaims blocks no archive references (see `reclaim::collect`).
//! fsck never changes an archive: what it finds damaged it names, and leaves in place.

mod archives;
mod lost;
mod marks;
pub(crate) mod packs;
mod scan;

use crate::access::Perm;
use crate::progress::{Event, Progress};
use crate::session::Session;
use crate::units::human;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Default, Clone)]
pub struct FsckOptions {
    pub prune: bool,
    pub verify_data: bool,
    /// With `verify_data`: verify only a random sample of the packs holding about this share
    /// (0 to 1) of the stored bytes (`--verify-data=N%`), to bound what is downloaded.
    pub sample: Option<f64>,
}

/// What fsck found and did. `problems` lists damage, one line each; the rest are counts.
#[derive(Debug, Default)]
pub struct FsckReport {
    pub gen: u64,
    pub archives: usize,
    pub files: u64,
    /// Distinct blocks the archives reference, and the index's totals.
    pub referenced: u64,
    pub indexed_blocks: u64,
    pub indexed_bytes: u64,
    pub segments: usize,
    pub packs: usize,
    /// Bytes read from the repository by the check (not counting --verify-data).
    pub read: u64,
    /// Bytes the check could read: every stored pack and the live index segments.
    pub stored: u64,
    /// `Some(blocks)` when the index was rebuilt from pack headers.
    pub index_rebuilt: Option<u64>,
    pub orphan_packs: Vec<String>,
    pub orphan_bytes: u64,
    pub orphan_segments: Vec<String>,
    /// `--verify-data`: blocks and stored bytes read, and how many blocks failed.
    pub verified: Option<(u64, u64, usize)>,
    /// `--verify-data=N%`: packs verified of all packs, and the share asked for.
    pub sampled: Option<(usize, usize, f64)>,
    pub pruned: Option<crate::reclaim::DeleteResult>,
    /// Archives listed again from their roots (`lost`), one line each.
    pub relisted: Vec<String>,
    /// Damage marks now recorded in the repository, when fsck changed them.
    pub marked: Option<usize>,
    /// Archives whose damaged blocks have an intact copy elsewhere: they restore (one line each).
    pub repaired: Vec<String>,
    /// Archives whose metadata cannot be read (so the live set is unknown).
    pub unreadable_archives: usize,
    pub problems: Vec<String>,
}

impl FsckReport {
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "index: {} segment(s), {} packs, {} blocks, {} stored{}",
            self.segments,
            self.packs,
            self.indexed_blocks,
            human(self.indexed_bytes),
            match self.index_rebuilt {
                Some(n) => format!(" (rebuilt from the packs' headers: {n} blocks)"),
                None => String::new(),
            }
        )];
        out.push(format!(
            "checked {} archive(s), {} files, {} distinct blocks referenced; read {}{}",
            self.archives,
            self.files,
            self.referenced,
            human(self.read),
            // A share of everything stored that the check reads from (packs, index segments),
            // not of the indexed blocks alone: segments and pack headers are read too.
            match self.stored {
                0 => String::new(),
                n => format!(" ({:.2}% of the stored bytes)", 100.0 * self.read as f64 / n as f64),
            }
        ));
        out.push(format!("cache rebuilt from the index at generation {}", self.gen));
        if let Some((blocks, bytes, bad)) = self.verified {
            out.push(format!(
                "verified {blocks} blocks ({}) by reading and authenticating them: {}",
                human(bytes),
                if bad == 0 { "all intact".to_string() } else { format!("{bad} damaged") }
            ));
            if let Some((checked, total, share)) = self.sampled {
                out.push(format!(
                    "verified a random sample: {checked} of {total} packs, about {:.1}% of the stored bytes (the others were not read)",
                    share * 100.0
                ));
            }
        }
        if !self.orphan_packs.is_empty() || !self.orphan_segments.is_empty() {
            let what = format!(
                "{} pack(s) ({}) and {} index segment(s) that nothing references",
                self.orphan_packs.len(),
                human(self.orphan_bytes),
                self.orphan_segments.len()
            );
            out.push(match &self.pruned {
                Some(_) => format!("deleted {what}"),
                None => format!("found {what}: `archiver fsck --prune` deletes them"),
            });
        }
        if let Some(p) = &self.pruned {
            out.push(format!(
                "pruned: reclaimed {} in all ({} packs deleted, {} repacked)",
                human(p.reclaimed),
                p.packs_deleted,
                p.packs_repacked
            ));
        }
        match self.marked {
            Some(0) => out.push("no damaged blocks are recorded any more".into()),
            Some(n) => out.push(format!(
                "recorded {n} damaged block(s) in the repository: the next `archiver create` of the files holding them stores them again, which repairs every archive that uses them"
            )),
            None => {}
        }
        out.extend(self.relisted.iter().cloned());
        out.extend(self.repaired.iter().cloned());
        out.extend(self.problems.iter().cloned());
        out
    }

    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn verdict(&self) -> String {
        format!(
            "the repository is damaged: {} problem(s), listed above; archives not named there are intact",
            self.problems.len()
        )
    }
}

pub fn fsck(session: &Session, opts: &FsckOptions, progress: Progress) -> Result<FsckReport> {
    session.require(&[Perm::Read], "check the repository")?;
    if opts.prune {
        session.require(&[Perm::Read, Perm::Delete], "prune (fsck --prune deletes unreferenced data)")?;
    }
    let _writing = crate::txn::lock(session, "fsck", progress, Default::default())?;
    let mut report = FsckReport::default();
    // Recovery leaves only transactions whose checkpoints cannot be read. What they stored stays
    // theirs (`packs::list_ended`) until `recover --discard-damaged` settles them.
    let pending: HashSet<String> = session
        .repo
        .pending()
        .context("cannot list pending transactions")?
        .into_iter()
        .map(|p| p.txn)
        .collect();
    for txn in &pending {
        report.problems.push(format!(
            "transaction {txn} is left pending: its checkpoint cannot be read (damaged, or not written with this key file); `archiver recover --discard-damaged` with a delete key removes it"
        ));
    }
    let mut head = match session.head() {
        Ok(h) => h,
        // A manifest that cannot be opened, with no readable earlier generation kept to roll back
        // to, is rebuilt from the packs (`lost`), if this key may write.
        Err(e) if session.access.has(Perm::Write) && readable_before(session)?.is_none() => {
            let (gen, _) = session.repo.head().context("cannot read the repository's manifest")?;
            let stored = packs::list_ended(session, &pending)?;
            let base = crate::manifest::Manifest { gen, ..Default::default() };
            let r = lost::relist(session, &base, &stored, None, true)?;
            report.problems.push(match gen {
                0 => format!("{e:#}; rebuilt it from the packs' headers"),
                _ => format!("the current manifest (generation {gen}) could not be opened ({e:#}); rebuilt it from the packs' headers"),
            });
            report.relisted.extend(r.lines);
            report.problems.extend(r.notes);
            session.head()?
        }
        Err(e) => {
            // The current manifest cannot be opened (damaged, or a hostile writer's commit):
            // nothing else can be checked against it; say which generation to go back to.
            let (gen, _) = session.repo.head().context("cannot read the repository's manifest")?;
            report.gen = gen;
            let fix = match crate::history::newest_readable(session, gen) {
                Some(g) => format!("`archiver rollback {g}` makes the archives of generation {g}, the newest readable one, current again"),
                None => "no earlier generation is kept that could be rolled back to; `archiver fsck` with a key that may write rebuilds it from the packs".to_string(),
            };
            report
                .problems
                .push(format!("the current manifest (generation {gen}) cannot be opened ({e:#}); {fix}"));
            return Ok(report);
        }
    };

    // 1. The index, one segment at a time, summed per pack; the cache reloaded from it.
    let stored = packs::list_ended(session, &pending)?;
    report.stored += stored.values().sum::<u64>();
    let (mut cache, note) = session.cache()?;
    if let Some(n) = note {
        progress(Event::Notice(n));
    }
    let mut sum = scan::summarise(session, &head, &stored, &cache)?;
    report.read += sum.read;
    report.stored += sum.read;

    // 2. A damaged index is rebuilt from the packs' headers and committed.
    let mut unindexable = Vec::new();
    if !sum.broken.is_empty() {
        for b in &sum.broken {
            progress(Event::Warning(format!("{b}: rebuilding the index from the packs")));
        }
        session.require(&[Perm::Write, Perm::Delete], "replace the damaged index")?;
        // The packs' headers are listed in the transaction's segments as they are read (at
        // most 16,384 blocks a segment), never held together.
        let mut txn = crate::txn::Txn::begin(session, head.0.clone(), cache, b"fsck: rebuild the index")?;
        txn.cache.clear_blocks()?;
        let rebuilt = packs::each_header(session, &stored, |pack, entries| txn.reindex(pack, entries))?;
        report.read += rebuilt.read;
        for (pack, why) in &rebuilt.unreadable {
            report.problems.push(format!(
                "pack {pack} has no readable header ({why}): its blocks cannot be indexed; it is kept"
            ));
        }
        unindexable = rebuilt.unreadable.into_iter().map(|(p, _)| p).collect();
        report.index_rebuilt = Some(rebuilt.blocks);
        let old = head.0.indexes.clone();
        txn.commit(crate::index::Segment::default(), |m, new, _| m.indexes = new.to_vec(), Vec::new(), old)
            .context("cannot commit the rebuilt index")?;
        head = session.head()?;
        cache = session.cache()?.0;
        sum = scan::summarise(session, &head, &stored, &cache)?;
        anyhow::ensure!(sum.broken.is_empty(), "the rebuilt index cannot be read: {}", sum.broken.join("; "));
    }
    // 2b. Archives whose roots are in packs the index does not list (a manifest lost or replaced).
    let orphans: BTreeMap<String, u64> = stored
        .iter()
        .filter(|(p, _)| !sum.packs.contains_key(p.as_str()) && !unindexable.contains(p))
        .map(|(p, n)| (p.clone(), *n))
        .collect();
    // The orphans' roots' blocks are looked up in the orphans' headers, then in the cache
    // (just loaded from the index), so the index is not held in memory.
    let r = lost::relist(session, &head.0, &orphans, Some(&cache), false)?;
    report.problems.extend(r.notes);
    unindexable.extend(r.keep);
    if !r.lines.is_empty() {
        report.problems.push(format!(
            "the manifest did not list {} stored archive(s) (a lost or replaced manifest): listed again, see above",
            r.lines.len()
        ));
        report.relisted.extend(r.lines);
        head = session.head()?;
        sum = scan::summarise(session, &head, &stored, &cache)?;
    }
    report.gen = head.0.gen;
    report.segments = sum.segments;

    // 3. Packs: indexed but missing or short (damage), stored but unindexed (orphans).
    let mut found: Vec<packs::BadCopy> = Vec::new();
    for (pack, s) in &sum.packs {
        let why = match stored.get(pack) {
            None => Some(format!("pack {pack} is missing")),
            Some(&size) if size < s.reach + crate::pack::TRAILER_LEN as u64 => {
                Some(format!("pack {pack} is truncated ({size} bytes, its blocks reach {})", s.reach))
            }
            _ => None,
        };
        report.packs += 1;
        report.indexed_blocks += s.blocks;
        report.indexed_bytes += s.bytes;
        if let Some(why) = why {
            let lost = sum.lost.get(pack).map_or(&[][..], |l| &l[..]);
            report.problems.push(format!("{why}: {} block(s) lost", lost.len()));
            found.extend(lost.iter().map(|id| (*id, pack.clone(), why.clone())));
        }
    }
    for (pack, size) in &stored {
        if !sum.packs.contains_key(pack.as_str()) && !unindexable.contains(pack) {
            report.orphan_packs.push(pack.clone());
            report.orphan_bytes += size;
        }
    }
    let live: std::collections::HashSet<&String> = head.0.indexes.iter().collect();
    let ended = |s: &String| !s.rsplit_once('-').is_some_and(|(t, _)| pending.contains(t));
    report.orphan_segments =
        session.repo.list_indexes()?.into_iter().filter(|s| !live.contains(s) && ended(s)).collect();

    // 4. Every block read and authenticated, if asked (the segments read again, one at a time).
    if opts.verify_data {
        let mut skip: HashSet<&str> = found.iter().map(|(_, p, _)| p.as_str()).collect();
        if let Some(share) = opts.sample.filter(|&s| s < 1.0) {
            let unsampled = packs::unsampled(&sum.packs, share)?;
            report.sampled = Some((sum.packs.len() - unsampled.len(), sum.packs.len(), share));
            skip.extend(unsampled);
        }
        let (blocks, bytes, bad) = packs::verify(session, &head.0.indexes, sum.packs.len(), &skip, progress)?;
        report.verified = Some((blocks, bytes, bad.len()));
        found.extend(bad);
    }

    // 5. Damaged copies recorded, so that the next create stores those blocks again. Only the
    // damaged and marked blocks are looked up in the index (read again only if there are any).
    let ids: HashSet<crate::crypto::BlockId> = found.iter().map(|(id, _, _)| *id).collect();
    let copies = scan::copies(session, &head.0.indexes, &ids, &head.0.damaged)?;
    let assessed = marks::assess(&copies, &found);
    // Marks are cleared only by a check that read every copy (not a sample).
    let verified_all = opts.verify_data && report.sampled.is_none();
    let wanted = marks::wanted(&head.0, &copies, &found, verified_all);
    drop(copies);
    if wanted != head.0.damaged {
        let n = wanted.len();
        if session.access.has(Perm::Write) {
            marks::record(session, &head.0, cache, wanted)?;
            head = session.head()?;
            report.gen = head.0.gen;
            report.marked = Some(n);
            cache = session.cache()?.0;
            scan::summarise(session, &head, &stored, &cache)?;
        } else if !found.is_empty() {
            report.problems.push(format!(
                "the {} damaged block(s) found are not recorded in the repository (this key cannot write): run `archiver fsck` with a key that may write, so that the next `archiver create` stores them again",
                found.len()
            ));
        }
    }
    drop(sum);

    // 6. Every archive's references, with damage named by archive and path.
    let tmp = cache.path.parent().map(|d| d.to_path_buf());
    archives::check(session, &cache, &head.0, &assessed, tmp, &mut report, progress)?;
    drop(cache);

    // 7. Prune what nothing references.
    if opts.prune && report.unreadable_archives > 0 {
        report.problems.push(format!(
            "not pruned: {} archive(s) cannot be read, so what they reference is unknown; delete them first (`archiver delete NAME`)",
            report.unreadable_archives
        ));
    } else if opts.prune {
        let orphans = crate::reclaim::Orphans {
            packs: report.orphan_packs.clone(),
            indexes: report.orphan_segments.clone(),
        };
        report.pruned = Some(crate::reclaim::collect(session, &[], orphans, progress)?);
    }
    Ok(report)
}

/// The newest readable generation before the current one, if one is kept.
fn readable_before(session: &Session) -> Result<Option<u64>> {
    let (gen, _) = session.repo.head().context("cannot read the repository's manifest")?;
    Ok(crate::history::newest_readable(session, gen))
}
