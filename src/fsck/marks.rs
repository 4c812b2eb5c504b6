//! fsck's part in healing damaged blocks (`crate::damage`): which damaged blocks are unusable
//! (every copy the index lists is damaged) and which are repaired (another copy is intact), and
//! recording the damaged copies in the repository as marks, so that the next create stores them
//! again.
//!
//! Marks are committed only by a key that may write, under the lock fsck already holds, in a
//! transaction that changes nothing but the manifest's marks.

use super::packs::BadCopy;
use super::scan::Copies;
use crate::cache::Cache;
use crate::crypto::BlockId;
use crate::index::Segment;
use crate::manifest::Manifest;
use crate::session::Session;
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashMap};

/// Damaged blocks by whether they can still be read: `unusable` (no intact copy) and `repaired`
/// (an intact copy exists), each with why its damaged copy is damaged.
#[derive(Default)]
pub struct Assessed {
    pub unusable: HashMap<BlockId, String>,
    pub repaired: HashMap<BlockId, String>,
}

/// Sorts the damaged copies `found` by whether the index lists another, intact, copy
/// (`copies`: how many copies the index lists of each).
pub fn assess(copies: &Copies, found: &[BadCopy]) -> Assessed {
    let mut bad: HashMap<BlockId, (usize, &str)> = HashMap::new();
    for (id, _, why) in found {
        bad.entry(*id).or_insert((0, why)).0 += 1;
    }
    let mut out = Assessed::default();
    for (id, (n, why)) in bad {
        let total = copies.count.get(&id).copied().unwrap_or(0);
        let side = if total > n { &mut out.repaired } else { &mut out.unusable };
        side.insert(id, why.to_string());
    }
    out
}

/// The marks fsck leaves in the manifest (see `damage::updated`).
pub fn wanted(
    head: &Manifest,
    copies: &Copies,
    found: &[BadCopy],
    verified_all: bool,
) -> Vec<(BlockId, String)> {
    let found: BTreeSet<(BlockId, String)> = found.iter().map(|(id, p, _)| (*id, p.clone())).collect();
    crate::damage::updated(&head.damaged, &found, verified_all, |id, pack| {
        copies.indexed.contains(&(*id, pack.to_string()))
    })
}

/// Commits `marks` as the repository's damage marks (the caller holds a key that may write).
pub fn record(session: &Session, base: &Manifest, cache: Cache, marks: Vec<(BlockId, String)>) -> Result<()> {
    let txn = crate::txn::Txn::begin(session, base.clone(), cache, b"fsck: record damaged blocks")?;
    txn.commit(Segment::default(), move |m, _, _| m.damaged = marks, Vec::new(), Vec::new())
        .context("cannot record the damaged blocks in the repository")?;
    Ok(())
}
