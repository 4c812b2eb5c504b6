//! fsck's passes over the index, one segment at a time: a segment is read, used and dropped
//! before the next is read, so memory holds one segment (at most 16,384 blocks for those
//! `create` writes) plus a summary per pack, never the whole index.
//!
//! The first pass (`summarise`) sums each pack's blocks, bytes and reach (what the pack check
//! needs), notes the blocks of missing or truncated packs, and reloads the cache's block table
//! from the same segments in id order (`cache::Loader`). Later passes read the
//! segments again only when they are needed: `--verify-data` (`packs::verify`) and, when something is damaged or
//! marked, the copies of just those blocks (`copies`).

use crate::cache::{Cache, Loader};
use crate::crypto::BlockId;
use crate::index::Segment;
use crate::manifest::Manifest;
use crate::session::Session;
use anyhow::Result;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One pack as the live index lists it, summed over every segment naming it.
#[derive(Default, Clone, Copy)]
pub struct PackSum {
    pub blocks: u64,
    /// Stored bytes of its blocks.
    pub bytes: u64,
    /// Where its last block ends.
    pub reach: u64,
}

/// What the first pass found.
#[derive(Default)]
pub struct Summary {
    pub packs: BTreeMap<String, PackSum>,
    /// Live segments read, and their stored bytes.
    pub segments: usize,
    pub read: u64,
    /// Segments that cannot be read or opened, one line each.
    pub broken: Vec<String>,
    /// Blocks of packs that are missing or shorter than they reach: (pack, ids). Bounded by the
    /// damage, not by the index.
    pub lost: BTreeMap<String, Vec<BlockId>>,
}

/// Reads each of `names` in turn and hands it to `f`; a segment that cannot be read or opened
/// is an error (callers after the first pass only read segments that pass has opened).
pub fn each_segment(
    session: &Session,
    names: &[String],
    mut f: impl FnMut(&str, Segment) -> Result<()>,
) -> Result<()> {
    for name in names {
        f(name, session.read_segment(name)?)?;
    }
    Ok(())
}

/// The first pass: the summary of `head`'s live segments against the stored packs `stored`,
/// with the cache's blocks reloaded from them (and `head`'s marks) when every segment opens.
pub fn summarise(
    session: &Session,
    head: &(Manifest, String),
    stored: &BTreeMap<String, u64>,
    cache: &Cache,
) -> Result<Summary> {
    let mut sum = Summary::default();
    // The blocks go in id order (`cache::Loader`). The cache says it is loading until the end,
    // so a reload cut short is done again by the next command's sync.
    cache.transaction(|cache| {
        cache.clear_blocks()?;
        cache.set_marks(&head.0.damaged, &crate::damage::token(&head.0))
    })?;
    let mut loader = cache.loader(cache.path.parent().map(|d| d.to_path_buf()))?;
    for name in &head.0.indexes {
        load(session, name, stored, &mut loader, &mut sum)?;
    }
    // A cache missing a broken segment's blocks is not in sync with `head`.
    let synced = if sum.broken.is_empty() { head.1.as_str() } else { BROKEN };
    loader.finish(synced)?;
    Ok(sum)
}

/// What the cache's synced state says after a reload that missed a broken segment: never a
/// manifest's token, so the next command syncs again.
const BROKEN: &str = "fsck: a segment was broken";

/// Reads segment `name`, adds its packs to the summary and its blocks to the cache.
fn load(
    session: &Session,
    name: &str,
    stored: &BTreeMap<String, u64>,
    loader: &mut Loader,
    sum: &mut Summary,
) -> Result<()> {
    let seg = match session.repo.get_index(name) {
        Ok(bytes) => {
            sum.read += bytes.len() as u64;
            match Segment::open(&session.keys, name, &bytes) {
                Ok(s) => s,
                Err(e) => {
                    sum.broken.push(format!("index segment {name} is damaged ({e:#})"));
                    return Ok(());
                }
            }
        }
        Err(e) => {
            sum.broken.push(format!("index segment {name} cannot be read ({e})"));
            return Ok(());
        }
    };
    sum.segments += 1;
    loader.add(name, &seg)?;
    for (pack, entries) in &seg.packs {
        let s = sum.packs.entry(pack.clone()).or_default();
        s.blocks += entries.len() as u64;
        s.bytes += entries.iter().map(|e| e.len as u64).sum::<u64>();
        s.reach = entries.iter().map(|e| e.offset + e.len as u64).fold(s.reach, u64::max);
        // A truncated pack loses the blocks past its end; those before it are still read (and
        // authenticated) from it.
        let cut = stored.get(pack).copied().unwrap_or(0);
        let lost: Vec<BlockId> =
            entries.iter().filter(|e| e.offset + e.len as u64 > cut).map(|e| e.id).collect();
        if !lost.is_empty() {
            sum.lost.entry(pack.clone()).or_default().extend(lost);
        }
    }
    Ok(())
}

/// What the index says about the blocks fsck found damaged or the manifest marks: how many
/// copies of each damaged id it lists, and which marked (id, pack) pairs it still lists.
#[derive(Default)]
pub struct Copies {
    pub count: HashMap<BlockId, usize>,
    pub indexed: HashSet<(BlockId, String)>,
}

/// Reads the live segments again, looking up only `ids` and the pairs `marks`: memory is
/// bounded by what is damaged, not by the index. Reads nothing when both are empty.
pub fn copies(
    session: &Session,
    names: &[String],
    ids: &HashSet<BlockId>,
    marks: &[(BlockId, String)],
) -> Result<Copies> {
    let mut out = Copies::default();
    if ids.is_empty() && marks.is_empty() {
        return Ok(out);
    }
    let marked: HashSet<&BlockId> = marks.iter().map(|(id, _)| id).collect();
    let pairs: HashSet<(&BlockId, &str)> = marks.iter().map(|(id, p)| (id, p.as_str())).collect();
    each_segment(session, names, |_, seg| {
        for (pack, entries) in &seg.packs {
            for e in entries {
                if ids.contains(&e.id) {
                    *out.count.entry(e.id).or_default() += 1;
                }
                if marked.contains(&e.id) && pairs.contains(&(&e.id, pack.as_str())) {
                    out.indexed.insert((e.id, pack.clone()));
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}
