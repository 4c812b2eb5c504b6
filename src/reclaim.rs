//! Reclaiming space, for `delete`, for recovery (after it replaced a `NAME.part`), for `create`
//! (which replaces its own `NAME.part`) and for `fsck --prune`: removes archives and the blocks
//! no other archive references, in one transaction, under a lock the caller holds.
//!
//! The live set is computed from the remaining archives' metadata (never from the cache), and
//! sorted on disk when large (`idsort`). Packs with no live block are deleted; packs with some
//! are repacked: their live blocks are copied, still sealed, into new packs. The index is read
//! one segment at a time: a segment none of whose packs changed stays as it is; one that lost a
//! pack is replaced by this transaction's segments, which list its unchanged packs again, so a
//! delete writes index in proportion to what it changed. This relies on every pack being listed
//! by one live segment, as every writer keeps it. The commit record lists the old packs and
//! segments to delete after the commit point, so a crash either keeps the old state whole or
//! rolls the delete forward.

use crate::archive::NodeKind;
use crate::crypto::BlockId;
use crate::idsort::IdSorter;
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

    // Live blocks: everything the remaining archives reference, sorted on disk when they do not
    // fit a run (`idsort`), so memory does not grow with the archives.
    let mut live = IdSorter::new(cache.path.parent().map(|d| d.to_path_buf()), LIVE_RUN);
    // Progress counts the archives read for the live set, then the index segments sorted out.
    let remaining = head.0.archives.iter().filter(|a| !gone.contains(a.name.as_str())).count() as u64;
    progress(Event::Total { files: remaining, bytes: 0, complete: false });
    for a in head.0.archives.iter().filter(|a| !gone.contains(a.name.as_str())) {
        progress(Event::Advance { files: 1, bytes: 0 });
        live.push(a.root)?;
        // Node by node as the metadata is fetched: one archive's nodes are never all held.
        let (root, nodes) = reader::stream(session, &cache, a)?;
        for (id, _) in &root.meta {
            live.push(*id)?;
        }
        for node in nodes {
            let node = node?;
            if node.kind == NodeKind::File {
                for (id, _) in &node.blocks {
                    live.push(*id)?;
                }
            }
        }
    }
    let live = live.into_set()?;

    // A copy fsck marked damaged (`damage`) is dropped when the block has another copy; a live
    // one without another copy is kept, and read (it must authenticate) if its pack is repacked.
    let marked: HashSet<(BlockId, &str)> = head.0.damaged.iter().map(|(id, p)| (*id, p.as_str())).collect();
    let unmarked_copies = unmarked_copies(session, &head.0.indexes, &marked)?;
    let mut txn =
        Txn::begin(session, head.0.clone(), cache, format!("delete {}", names.join(" ")).as_bytes())?;
    let mut result = DeleteResult { archives: names.len(), ..Default::default() };
    let mut delete_packs = Vec::new();
    // Segments whose packs all stay are kept as they are; the others are replaced by this
    // transaction's, which list their unchanged packs again (`Txn::reindex`). Each segment is
    // read, sorted out and dropped before the next.
    let (mut kept, mut replaced) = (Vec::new(), Vec::new());
    progress(Event::Total { files: remaining + head.0.indexes.len() as u64, bytes: 0, complete: true });
    for name in &head.0.indexes {
        progress(Event::Advance { files: 1, bytes: 0 });
        let (mut untouched, before) = (Vec::new(), delete_packs.len());
        for (pack, entries) in session.read_segment(name)?.packs {
            let is_marked = |e: &Entry| marked.contains(&(e.id, pack.as_str()));
            let (mut alive, mut dead) = (Vec::new(), Vec::new());
            for e in entries {
                let other_copy = is_marked(&e) && unmarked_copies.contains(&e.id);
                if !other_copy && live.contains(&e.id)? {
                    alive.push(e);
                } else {
                    dead.push(e);
                }
            }
            if dead.is_empty() {
                untouched.push((pack, alive));
                continue;
            }
            result.reclaimed += dead.iter().map(|e| e.len as u64).sum::<u64>();
            if repack(session, &mut txn, &pack, alive, &is_marked, &mut result)? > 0 {
                result.packs_repacked += 1;
            } else {
                result.packs_deleted += 1;
            }
            delete_packs.push(pack);
        }
        if delete_packs.len() == before {
            kept.push(name.clone());
            continue;
        }
        for (pack, entries) in untouched {
            txn.reindex(pack, entries)?;
        }
        replaced.push(name.clone());
    }
    drop(live);
    result.reclaimed += orphans.packs.iter().filter_map(|p| session.repo.pack_size(p).ok()).sum::<u64>();
    result.packs_deleted += orphans.packs.len();
    delete_packs.extend(orphans.packs);
    // The cache forgets the replaced segments' packs; this transaction's segments list the
    // surviving ones again when they are written.
    txn.cache.drop_segments(&replaced)?;
    let mut old_indexes = replaced;
    old_indexes.extend(orphans.indexes);
    let names_owned: Vec<String> = names.to_vec();
    // Marks on copies in deleted packs go with them.
    let gone_packs: HashSet<&str> = delete_packs.iter().map(String::as_str).collect();
    let mut marks = head.0.damaged.clone();
    marks.retain(|(_, p)| !gone_packs.contains(p.as_str()));
    txn.cache.forget_marks_in(&delete_packs, &crate::damage::token_of(&marks))?;
    txn.commit(
        Segment::default(),
        move |m, new_indexes, _| {
            for n in &names_owned {
                m.remove(n);
            }
            m.indexes = kept;
            m.indexes.extend_from_slice(new_indexes);
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

/// Ids pushed before a run of the live set goes to disk (2 MB).
const LIVE_RUN: usize = 1 << 16;

/// Of the blocks with a marked copy (`marked`), those the index lists another, unmarked, copy
/// of. Reads the segments only when something is marked, and holds only those ids.
fn unmarked_copies(
    session: &Session,
    indexes: &[String],
    marked: &HashSet<(BlockId, &str)>,
) -> Result<HashSet<BlockId>> {
    let mut out = HashSet::new();
    if marked.is_empty() {
        return Ok(out);
    }
    let marked_ids: HashSet<BlockId> = marked.iter().map(|(id, _)| *id).collect();
    for name in indexes {
        for (pack, entries) in &session.read_segment(name)?.packs {
            let unmarked =
                |e: &&Entry| marked_ids.contains(&e.id) && !marked.contains(&(e.id, pack.as_str()));
            out.extend(entries.iter().filter(unmarked).map(|e| e.id));
        }
    }
    Ok(out)
}

/// Copies the live blocks `alive` of `pack`, still sealed, into this transaction's packs (a
/// marked copy only if it authenticates); returns how many were copied.
fn repack(
    session: &Session,
    txn: &mut Txn,
    pack: &str,
    alive: Vec<Entry>,
    is_marked: &dyn Fn(&Entry) -> bool,
    result: &mut DeleteResult,
) -> Result<usize> {
    if alive.is_empty() {
        return Ok(0);
    }
    // One read spans them (the index's entries lie within `limits::MAX_PACK_DATA` bytes of
    // blocks; the pack's header and trailer are not read).
    let start = alive.iter().map(|e| e.offset).min().unwrap_or(0);
    let end = alive.iter().map(|e| e.offset + e.len as u64).max().unwrap_or(0);
    let bytes = session
        .repo
        .read_pack(pack, start, end - start)
        .with_context(|| format!("cannot read pack {pack} to repack it"))?;
    let mut copied = 0;
    for e in alive {
        let at = (e.offset - start) as usize;
        let sealed = bytes.get(at..at + e.len as usize).with_context(|| {
            format!("pack {pack} is truncated: the repository is damaged (`archiver fsck` names everything affected)")
        })?;
        if is_marked(&e) && session.keys.open_block(&e.id, sealed, e.plain_len as usize).is_err() {
            // Damaged beyond doubt: not copied into a new pack, where no mark would name it.
            result.reclaimed += e.len as u64;
            continue;
        }
        txn.put_sealed(e.id, e.kind, sealed.to_vec(), e.plain_len)?;
        copied += 1;
    }
    Ok(copied)
}
