//! fsck's recovery of archives the manifest does not list: a lost, damaged or truncated manifest
//! (it is one object), or a commit whose manifest never arrived, must not cost the archives whose
//! data is stored. Every archive's root block is in a pack, named in the pack's sealed header as a
//! root, and holds the archive's name and time; with the packs' headers, that is enough to list
//! the archive again (borg's `check --repair` rebuilds its manifest the same way).
//!
//! Only roots that authenticate are used, and an archive is listed again only under its own name
//! (readers check that a root names the archive that lists it) and only if no listed archive has
//! that name. Its sizes are counted from its metadata, per use as create counts them; what it
//! added to the repository is unknown and left at 0. Without a key that may write, fsck only
//! names what it found, and `--prune` keeps the packs holding such roots.

use crate::archive::{NodeKind, Root, Stats};
use crate::cache::Cache;
use crate::crypto::BlockId;
use crate::manifest::{ArchiveRef, Manifest};
use crate::pack::{Entry, Kind, Location};
use crate::session::Session;
use anyhow::{anyhow, Result};
use std::collections::{HashMap, HashSet};

/// An archive found by its root, and the pack holding the root.
pub struct Found {
    pub archive: ArchiveRef,
    pub pack: String,
}

/// Archives whose root is in `packs` (their headers' entries) and that `m` does not list, with
/// their blocks looked up in `packs` and then in `indexed` (the cache, loaded from the index
/// `m` lists: the index is not held in memory). Roots that cannot be read, or whose name a
/// listed archive has, are returned as lines saying so.
pub fn find(
    session: &Session,
    m: &Manifest,
    packs: &[(String, Vec<Entry>)],
    indexed: Option<&Cache>,
) -> (Vec<Found>, Vec<String>) {
    let listed: HashSet<BlockId> = m.archives.iter().map(|a| a.root).collect();
    let mut at: HashMap<BlockId, (&str, &Entry)> = HashMap::new();
    for (pack, entries) in packs {
        for e in entries {
            at.insert(e.id, (pack.as_str(), e));
        }
    }
    let locate = |id: &BlockId| -> Result<Location> {
        if let Some((pack, e)) = at.get(id) {
            return Ok(Location {
                pack: pack.to_string(),
                offset: e.offset,
                len: e.len,
                plain_len: e.plain_len,
            });
        }
        match indexed {
            Some(cache) => crate::reader::locate(cache, id),
            None => Err(anyhow!("block {} is in no pack", hex::encode(&id[..8]))),
        }
    };
    let fetch = |id: &BlockId| -> Result<Vec<u8>> {
        let loc = locate(id)?;
        let sealed = session.repo.read_pack(&loc.pack, loc.offset, loc.len as u64)?;
        session.keys.open_block(id, &sealed, loc.plain_len as usize)
    };
    let (mut found, mut notes) = (Vec::new(), Vec::new());
    let mut names: HashSet<String> = m.archives.iter().map(|a| a.name.clone()).collect();
    for (pack, e) in packs.iter().flat_map(|(p, es)| es.iter().map(move |e| (p, e))) {
        if e.kind != Kind::Root || listed.contains(&e.id) {
            continue;
        }
        let root = match fetch(&e.id).and_then(|b| Root::decode(&b)) {
            Ok(r) => r,
            Err(err) => {
                notes.push(format!("pack {pack} holds an archive root that cannot be read ({err:#})"));
                continue;
            }
        };
        if !names.insert(root.name.clone()) {
            notes.push(format!(
                "pack {pack} holds a root of an archive named {} that is not listed, while another archive has that name: it is kept, not listed again",
                crate::query::escape_name(&root.name)
            ));
            continue;
        }
        let mut archive = ArchiveRef {
            name: root.name.clone(),
            root: e.id,
            root_len: e.plain_len,
            time: root.time,
            partial: root.name.ends_with(".part"),
            stats: Stats::default(),
        };
        let stored = |id: &BlockId| locate(id).map_or(0, |l| l.len as u64);
        if let Ok((root, nodes)) = crate::reader::read_with(&archive, fetch) {
            let s = &mut archive.stats;
            s.raw = e.plain_len as u64 + root.meta.iter().map(|(_, l)| *l as u64).sum::<u64>();
            s.stored = e.len as u64 + root.meta.iter().map(|(id, _)| stored(id)).sum::<u64>();
            for n in &nodes {
                match n.kind {
                    NodeKind::Dir => s.dirs += 1,
                    NodeKind::Symlink => s.symlinks += 1,
                    // As create counts them: hard links and special files count as files.
                    _ => s.files += 1,
                }
                s.raw += n.blocks.iter().map(|(_, l)| *l as u64).sum::<u64>();
                s.stored += n.blocks.iter().map(|(id, _)| stored(id)).sum::<u64>();
            }
        }
        found.push(Found { archive, pack: pack.clone() });
    }
    (found, notes)
}

/// What `relist` did: the archives listed again (one line each) and what it could not use.
#[derive(Default)]
pub struct Relisted {
    pub lines: Vec<String>,
    pub notes: Vec<String>,
    /// Packs holding roots that were not listed again (kept by `--prune`).
    pub keep: Vec<String>,
}

/// Lists again the archives whose roots are in `orphans` (packs the index does not list), in one
/// commit on `base` that also indexes those packs. `indexed`: the cache loaded from `base`'s
/// index, if it has one. With
/// `always`, commits even when no archive is found (the base replaces a manifest that cannot be
/// opened). Without a key that may write, commits nothing and says what it would do.
pub fn relist(
    session: &Session,
    base: &Manifest,
    orphans: &std::collections::BTreeMap<String, u64>,
    indexed: Option<&Cache>,
    always: bool,
) -> Result<Relisted> {
    let mut out = Relisted::default();
    if orphans.is_empty() && !always {
        return Ok(out);
    }
    // An orphan whose header cannot be read (not this repository's, or damaged) has no blocks
    // anyone can find: it stays an orphan, for `--prune`.
    let (segment, _) = super::packs::rebuild_index(session, orphans)?;
    let (found, notes) = find(session, base, &segment.packs, indexed);
    out.notes.extend(notes);
    if found.is_empty() && !always {
        return Ok(out);
    }
    if !session.access.has(crate::access::Perm::Write) {
        for f in &found {
            out.notes.push(format!(
                "archive {} is stored (its root is in pack {}) but the manifest does not list it: run `archiver fsck` with a key that may write to list it again",
                crate::query::escape_name(&f.archive.name),
                f.pack
            ));
            out.keep.push(f.pack.clone());
        }
        return Ok(out);
    }
    out.lines = found
        .iter()
        .map(|f| {
            format!(
                "listed archive {} again (its root is in pack {}; the manifest did not list it)",
                crate::query::escape_name(&f.archive.name),
                f.pack
            )
        })
        .collect();
    let (cache, _) = session.cache()?;
    let txn = crate::txn::Txn::begin(session, base.clone(), cache, b"fsck: list stored archives again")?;
    txn.commit(
        segment,
        move |m, new, _| {
            m.indexes.extend_from_slice(new);
            for f in found {
                m.insert(f.archive);
            }
        },
        Vec::new(),
        Vec::new(),
    )
    .map_err(|e| e.context("cannot list the stored archives again"))?;
    Ok(out)
}
