//! fsck's work on packs: listing them with sizes, rebuilding the index from their sealed headers,
//! and (`--verify-data`) reading and authenticating every block they hold.
//!
//! A pack's header is authenticated (sealed, bound to the pack's name), so an index rebuilt from
//! headers is as trustworthy as the segments it replaces. A pack whose header cannot be read is
//! reported and left out: its blocks are then missing, and the archives using them are named.

use super::scan::PackSum;
use crate::crypto::BlockId;
use crate::index::Segment;
use crate::pack::{header_len_from_trailer, parse_header, Entry, TRAILER_LEN};
use crate::progress::{Event, Progress};
use crate::session::Session;
use anyhow::{Context, Result};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};

/// Every stored pack and its size.
pub fn list(session: &Session) -> Result<BTreeMap<String, u64>> {
    let names = session.repo.list_packs().context("cannot list the repository's packs")?;
    names
        .into_par_iter()
        .map(|n| {
            let size =
                session.repo.pack_size(&n).with_context(|| format!("cannot read the size of pack {n}"))?;
            Ok((n, size))
        })
        .collect()
}

/// Every stored pack of a transaction that ended, with its size. A pending transaction (one
/// recovery left alone: its checkpoint cannot be read) keeps its packs: they are neither indexed
/// again, nor orphans, nor searched for archives (`lost`), so that discarding it later
/// (`recover --discard-damaged`) deletes nothing an archive uses.
pub fn list_ended(session: &Session, pending: &HashSet<String>) -> Result<BTreeMap<String, u64>> {
    let mut all = list(session)?;
    all.retain(|p, _| !p.split_once('/').is_some_and(|(t, _)| pending.contains(t)));
    Ok(all)
}

/// Reads one pack's header with (usually) a single range read of its tail.
fn header(session: &Session, pack: &str, size: u64) -> Result<Header> {
    let tail_len = size.min(4 << 10);
    let tail = session.repo.read_pack(pack, size - tail_len, tail_len)?;
    let hlen = header_len_from_trailer(&tail)?;
    let mut read = tail_len;
    let sealed = if hlen + TRAILER_LEN <= tail.len() {
        tail[tail.len() - TRAILER_LEN - hlen..tail.len() - TRAILER_LEN].to_vec()
    } else {
        let start = size.checked_sub((hlen + TRAILER_LEN) as u64).context("header longer than the pack")?;
        read += hlen as u64;
        session.repo.read_pack(pack, start, hlen as u64)?
    };
    let entries = parse_header(&session.keys, pack, &sealed)?;
    let reach = entries.last().map_or(0, |e| e.offset + e.len as u64);
    anyhow::ensure!(reach + (hlen + TRAILER_LEN) as u64 == size, "its header does not match its size");
    Ok((entries, read))
}

type Header = (Vec<crate::pack::Entry>, u64);

/// What reading the packs' headers found: blocks listed, bytes read, and packs whose header
/// cannot be read (with why).
#[derive(Default)]
pub struct Rebuilt {
    pub blocks: u64,
    pub read: u64,
    pub unreadable: Vec<(String, String)>,
}

/// Packs whose headers are read at once (in parallel): what memory holds at a time.
const HEADER_BATCH: usize = 32;

/// Reads the header of every pack in `stored`, a batch at a time, and hands each readable one
/// to `each`, in pack order: memory holds one batch of headers, not the whole index.
pub fn each_header(
    session: &Session,
    stored: &BTreeMap<String, u64>,
    mut each: impl FnMut(String, Vec<crate::pack::Entry>) -> Result<()>,
) -> Result<Rebuilt> {
    let mut out = Rebuilt::default();
    let packs: Vec<(&String, &u64)> = stored.iter().collect();
    for batch in packs.chunks(HEADER_BATCH) {
        let results: Vec<(String, Result<Header>)> =
            batch.par_iter().map(|(p, &size)| ((*p).clone(), header(session, p, size))).collect();
        for (pack, r) in results {
            match r {
                Ok((entries, n)) => {
                    out.read += n;
                    out.blocks += entries.len() as u64;
                    each(pack, entries)?;
                }
                Err(e) => out.unreadable.push((pack, format!("{e:#}"))),
            }
        }
    }
    Ok(out)
}

/// An index segment covering every pack of `stored` whose header can be read (for the few packs
/// recovery looks at, or a key proof), with what reading found.
pub fn rebuild_index(session: &Session, stored: &BTreeMap<String, u64>) -> Result<(Segment, Rebuilt)> {
    let mut seg = Segment::default();
    let r = each_header(session, stored, |pack, entries| {
        seg.packs.push((pack, entries));
        Ok(())
    })?;
    Ok((seg, r))
}

/// A damaged copy of a block: its id, its pack, and why.
pub type BadCopy = (BlockId, String, String);

/// The packs left out of a random sample holding about `share` of the indexed stored bytes (at
/// least one pack is in it). Packs are drawn in a random order from the system's generator, so
/// repeated runs cover different packs.
pub fn unsampled(packs: &BTreeMap<String, PackSum>, share: f64) -> Result<Vec<&str>> {
    let mut packs: Vec<(&str, u64)> = packs.iter().map(|(p, s)| (p.as_str(), s.bytes)).collect();
    // Fisher-Yates with OS randomness.
    for i in (1..packs.len()).rev() {
        let mut r = [0u8; 8];
        getrandom::getrandom(&mut r).map_err(|e| anyhow::anyhow!("no randomness for the sample: {e}"))?;
        packs.swap(i, (u64::from_le_bytes(r) % (i as u64 + 1)) as usize);
    }
    let total: u64 = packs.iter().map(|p| p.1).sum();
    let want = (total as f64 * share).ceil() as u64;
    let mut taken = 0u64;
    let mut out = Vec::new();
    for (i, (pack, bytes)) in packs.into_iter().enumerate() {
        // A pack is taken while it brings the sample closer to its share (the first always).
        let closer = taken < want && taken + bytes - want.min(taken + bytes) <= want - taken;
        if i == 0 || closer {
            taken += bytes;
        } else {
            out.push(pack);
        }
    }
    Ok(out)
}

/// Reads every pack the live `segments` index (`total` of them) and authenticates every block in it. Returns blocks and stored bytes
/// verified, and each damaged copy with the reason. Packs in `skip` (missing or truncated: already
/// reported) are not read.
pub fn verify(
    session: &Session,
    segments: &[String],
    total: usize,
    skip: &HashSet<&str>,
    progress: Progress,
) -> Result<(u64, u64, Vec<BadCopy>)> {
    let mut bad = Vec::new();
    let (mut blocks, mut bytes, mut done) = (0u64, 0u64, 0usize);
    // One segment at a time: a pack two segments list is read once for each one's blocks.
    super::scan::each_segment(session, segments, |_, seg| {
        for (pack, entries) in &seg.packs {
            if skip.contains(pack.as_str()) || entries.is_empty() {
                continue; // missing, truncated (already reported) or not in the sample
            }
            let (n, b, failed) = verify_pack(session, pack, entries);
            (blocks, bytes) = (blocks + n, bytes + b);
            bad.extend(failed);
            done += 1;
            if done % 64 == 0 {
                progress(Event::Notice(format!("verified {done} of {total} packs")));
            }
        }
        Ok(())
    })?;
    Ok((blocks, bytes, bad))
}

/// Reads one pack up to its last block and authenticates `entries`: blocks and bytes verified,
/// and the damaged copies.
fn verify_pack(session: &Session, pack: &str, entries: &[Entry]) -> (u64, u64, Vec<BadCopy>) {
    let reach = entries.iter().map(|e| e.offset + e.len as u64).max().unwrap_or(0);
    let data = match session.repo.read_pack(pack, 0, reach) {
        Ok(d) => d,
        Err(e) => {
            let why = format!("pack {pack} cannot be read ({e})");
            return (0, 0, entries.iter().map(|en| (en.id, pack.to_string(), why.clone())).collect());
        }
    };
    let failed: Vec<BadCopy> = entries
        .par_iter()
        .filter_map(|e| {
            let sealed = data.get(e.offset as usize..(e.offset + e.len as u64) as usize)?;
            match session.keys.open_block(&e.id, sealed, e.plain_len as usize) {
                Ok(_) => None,
                Err(err) => Some((
                    e.id,
                    pack.to_string(),
                    format!(
                        "block {} in pack {pack} fails authentication ({err:#})",
                        hex::encode(&e.id[..8])
                    ),
                )),
            }
        })
        .collect();
    (entries.len() as u64, reach, failed)
}
