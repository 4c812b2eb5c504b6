//! Reclaiming space, for `delete`, for recovery (after it replaced a `NAME.part`), for `create`
//! (which replaces its own `NAME.part`) and for `fsck --prune`: removes archives and the blocks
//! no other archive references, in one transaction, under a lock the caller holds.
//!
//! The live set is computed from the remaining archives' metadata (never from the cache). Packs
//! with no live block are deleted; packs with some are repacked: their live blocks are copied,
//! still sealed, into new packs. The new manifest names a single fresh index segment covering
//! every live block, and the commit record lists the old packs and segments to delete after the
//! commit point, so a crash either keeps the old state whole or rolls the delete forward.

use crate::archive::NodeKind;
use crate::crypto::BlockId;
use crate::index::Segment;
use crate::pack::Entry;
use crate::progress::{Event, Progress};
use crate::reader;
use crate::session::Session;
use crate::txn::Txn;
use anyhow::{Context, Result};
use std::collections::HashSet;

#[derive(Debug, Default)]
pub struct DeleteResult {
    pub archives: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    /// Stored bytes freed.
    pub reclaimed: u64,
}

/// `delete` for a caller that holds the lock and has recovered. With no names it only reclaims
/// space nothing references (after recovery replaced a `NAME.part`).
pub fn delete_locked(session: &Session, names: &[String], progress: Progress) -> Result<DeleteResult> {
    collect(session, names, Orphans::default(), progress)
}

/// Stored objects the manifest does not reference at all (found by `fsck`), deleted by the same
/// commit as the dead blocks.
#[derive(Debug, Default, Clone)]
pub struct Orphans {
    pub packs: Vec<String>,
    pub indexes: Vec<String>,
}

/// Deletes archives `names`, reclaims every block no remaining archive references, and deletes
/// `orphans`, in one transaction. Caller holds the lock and has recovered.
pub fn collect(
    session: &Session,
    names: &[String],
    orphans: Orphans,
    progress: Progress,
) -> Result<DeleteResult> {
    let head = session.head()?;
    for n in names {
        reader::find(&head.0, n)?;
    }
    let cache = session.open_cache(&head, progress)?;
    let gone: HashSet<&str> = names.iter().map(String::as_str).collect();

    // Live blocks: everything the remaining archives reference.
    let mut live: HashSet<BlockId> = HashSet::new();
    // Progress counts the archives read for the live set, then the packs sorted out.
    let remaining = head.0.archives.iter().filter(|a| !gone.contains(a.name.as_str())).count() as u64;
    progress(Event::Total { files: remaining, bytes: 0, complete: false });
    for a in head.0.archives.iter().filter(|a| !gone.contains(a.name.as_str())) {
        progress(Event::Advance { files: 1, bytes: 0 });
        live.insert(a.root);
        // Node by node as the metadata is fetched: one archive's nodes are never all held.
        let (root, nodes) = reader::stream(session, &cache, a)?;
        live.extend(root.meta.iter().map(|(id, _)| *id));
        for node in nodes {
            let node = node?;
            if node.kind == NodeKind::File {
                live.extend(node.blocks.iter().map(|(id, _)| *id));
            }
        }
    }

    let mut segments = Vec::new();
    for name in &head.0.indexes {
        segments.push(session.read_segment(name)?);
    }
    let mut txn =
        Txn::begin(session, head.0.clone(), cache, format!("delete {}", names.join(" ")).as_bytes())?;
    txn.cache.clear_blocks()?;
    let mut result = DeleteResult { archives: names.len(), ..Default::default() };
    let mut keep = Segment::default();
    let mut delete_packs = Vec::new();
    // A copy fsck marked damaged (`damage`) is dropped when the block has another copy; a live
    // one without another copy is kept, and read (it must authenticate) if its pack is repacked.
    let marked: HashSet<(BlockId, &str)> = head.0.damaged.iter().map(|(id, p)| (*id, p.as_str())).collect();
    // Of the marked blocks only (the others never ask): those with an unmarked copy.
    let marked_ids: HashSet<BlockId> = marked.iter().map(|(id, _)| *id).collect();
    let mut unmarked_copies: HashSet<BlockId> = HashSet::new();
    for (pack, entries) in segments.iter().flat_map(|s| &s.packs) {
        let unmarked = |e: &&Entry| marked_ids.contains(&e.id) && !marked.contains(&(e.id, pack.as_str()));
        unmarked_copies.extend(entries.iter().filter(unmarked).map(|e| e.id));
    }
    let packs = segments.iter().map(|s| s.packs.len() as u64).sum::<u64>();
    progress(Event::Total { files: remaining + packs, bytes: 0, complete: true });
    for (pack, entries) in segments.into_iter().flat_map(|s| s.packs) {
        progress(Event::Advance { files: 1, bytes: 0 });
        let is_marked = |e: &Entry| marked.contains(&(e.id, pack.as_str()));
        let (alive, dead): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|e| live.contains(&e.id) && !(is_marked(e) && unmarked_copies.contains(&e.id)));
        if dead.is_empty() {
            keep.packs.push((pack, alive));
            continue;
        }
        result.reclaimed += dead.iter().map(|e| e.len as u64).sum::<u64>();
        let mut alive = alive;
        if !alive.is_empty() {
            // Copy the live blocks, still sealed, into this transaction's packs. One read spans
            // them (the index's entries lie within `limits::MAX_PACK_DATA` bytes of blocks; the
            // pack's header and trailer are not read).
            let start = alive.iter().map(|e| e.offset).min().unwrap_or(0);
            let end = alive.iter().map(|e| e.offset + e.len as u64).max().unwrap_or(0);
            let bytes = session
                .repo
                .read_pack(&pack, start, end - start)
                .with_context(|| format!("cannot read pack {pack} to repack it"))?;
            let mut copied = Vec::new();
            for e in alive.drain(..) {
                let at = (e.offset - start) as usize;
                let sealed = bytes
                    .get(at..at + e.len as usize)
                    .with_context(|| format!("pack {pack} is truncated: the repository is damaged (`archiver fsck` names everything affected)"))?;
                if is_marked(&e) && session.keys.open_block(&e.id, sealed, e.plain_len as usize).is_err() {
                    // Damaged beyond doubt: not copied into a new pack, where no mark would name it.
                    result.reclaimed += e.len as u64;
                    continue;
                }
                txn.put_sealed(e.id, e.kind, sealed.to_vec(), e.plain_len)?;
                copied.push(e);
            }
            alive = copied;
        }
        if !alive.is_empty() {
            result.packs_repacked += 1;
        } else {
            result.packs_deleted += 1;
        }
        delete_packs.push(pack);
    }
    result.reclaimed += orphans.packs.iter().filter_map(|p| session.repo.pack_size(p).ok()).sum::<u64>();
    result.packs_deleted += orphans.packs.len();
    delete_packs.extend(orphans.packs);
    // The surviving packs are re-indexed in one segment of this transaction.
    let mut old_indexes = head.0.indexes.clone();
    old_indexes.extend(orphans.indexes);
    let names_owned: Vec<String> = names.to_vec();
    // Marks on copies in deleted packs go with them.
    let gone_packs: HashSet<&str> = delete_packs.iter().map(String::as_str).collect();
    let mut marks = head.0.damaged.clone();
    marks.retain(|(_, p)| !gone_packs.contains(p.as_str()));
    txn.cache.set_marks(&marks, &crate::damage::token_of(&marks))?;
    txn.commit(
        keep,
        move |m, new_indexes, _| {
            for n in &names_owned {
                m.remove(n);
            }
            m.indexes = new_indexes.to_vec();
            m.damaged = marks;
        },
        delete_packs,
        old_indexes,
    )?;
    let what = match names.len() {
        0 => "no archive deleted".to_string(),
        n => format!("deleted {n} archive(s) ({})", names.join(", ")),
    };
    progress(Event::Notice(format!(
        "{what}; reclaimed {} ({} packs deleted, {} repacked)",
        crate::units::human(result.reclaimed),
        result.packs_deleted,
        result.packs_repacked
    )));
    Ok(result)
}
