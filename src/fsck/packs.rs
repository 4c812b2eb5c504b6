//! fsck's work on packs: listing them with sizes, rebuilding the index from their sealed headers,
//! and (`--verify-data`) reading and authenticating every block they hold.
//!
//! A pack's header is authenticated (sealed, bound to the pack's name), so an index rebuilt from
//! headers is as trustworthy as the segments it replaces. A pack whose header cannot be read is
//! reported and left out: its blocks are then missing, and the archives using them are named.

use super::Index;
use crate::crypto::BlockId;
use crate::index::Segment;
use crate::pack::{header_len_from_trailer, parse_header, TRAILER_LEN};
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

/// A rebuilt index: the segment, bytes read, and packs whose header could not be read (with why).
pub struct Rebuilt {
    pub segment: Segment,
    pub read: u64,
    pub unreadable: Vec<(String, String)>,
}

type Header = (Vec<crate::pack::Entry>, u64);

/// An index segment covering every pack whose header can be read; the bytes read; the packs
/// whose header cannot be read, with the reason.
pub fn rebuild_index(session: &Session, stored: &BTreeMap<String, u64>) -> Result<Rebuilt> {
    let results: Vec<(String, Result<Header>)> =
        stored.par_iter().map(|(p, &size)| (p.clone(), header(session, p, size))).collect();
    let mut seg = Segment::default();
    let (mut read, mut problems) = (0, Vec::new());
    for (pack, r) in results {
        match r {
            Ok((entries, n)) => {
                read += n;
                seg.packs.push((pack, entries));
            }
            Err(e) => {
                problems.push((pack, format!("{e:#}")));
            }
        }
    }
    Ok(Rebuilt { segment: seg, read, unreadable: problems })
}

/// A damaged copy of a block: its id, its pack, and why.
pub type BadCopy = (BlockId, String, String);

/// Reads every indexed pack and authenticates every block in it. Returns blocks and stored bytes
/// verified, and each damaged copy with the reason. Packs in `skip` (missing or truncated: already
/// reported) are not read.
/// The packs left out of a random sample holding about `share` of the indexed stored bytes (at
/// least one pack is in it). Packs are drawn in a random order from the system's generator, so
/// repeated runs cover different packs.
pub fn unsampled<'a>(index: &Index<'a>, share: f64) -> Result<Vec<&'a str>> {
    let mut packs: Vec<(&str, u64)> =
        index.packs.iter().map(|(p, es)| (*p, es.iter().map(|e| e.len as u64).sum())).collect();
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

pub fn verify(
    session: &Session,
    index: &Index,
    skip: &HashSet<&str>,
    progress: Progress,
) -> Result<(u64, u64, Vec<BadCopy>)> {
    let mut bad = Vec::new();
    let (mut blocks, mut bytes) = (0u64, 0u64);
    for (i, (pack, entries)) in index.packs.iter().enumerate() {
        if skip.contains(*pack) || entries.is_empty() {
            continue; // missing or truncated: already reported
        }
        let reach = entries.iter().map(|e| e.offset + e.len as u64).max().unwrap_or(0);
        let data = match session.repo.read_pack(pack, 0, reach) {
            Ok(d) => d,
            Err(e) => {
                for en in entries {
                    bad.push((en.id, pack.to_string(), format!("pack {pack} cannot be read ({e})")));
                }
                continue;
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
        blocks += entries.len() as u64;
        bytes += reach;
        bad.extend(failed);
        if (i + 1) % 64 == 0 {
            progress(Event::Notice(format!("verified {} of {} packs", i + 1, index.packs.len())));
        }
    }
    Ok((blocks, bytes, bad))
}
