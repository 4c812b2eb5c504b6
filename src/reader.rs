//! Reading archives back: finding an archive, fetching and authenticating blocks, decoding its
//! metadata stream. Every failure names the archive (and the path, where there is one) affected.

use crate::archive::{decode_nodes, Node, Root};
use crate::cache::Cache;
use crate::crypto::BlockId;
use crate::manifest::{ArchiveRef, Manifest};
use crate::pack::Location;
use crate::session::Session;
use anyhow::{anyhow, bail, Context, Result};

pub fn find<'m>(m: &'m Manifest, name: &str) -> Result<&'m ArchiveRef> {
    m.find(name).ok_or_else(|| anyhow!("no archive named {name:?}: `archiver list` shows the archives"))
}

/// Where the repository holds block `id`. The lengths are checked again here (they were when
/// the index segment was read), so a cache filled by an older archiver cannot make a reader
/// allocate more than a block can hold.
///
/// A copy fsck marked damaged is returned only when there is no other (`damage`: marks are
/// advisory; the copy is authenticated when read).
pub fn locate(cache: &Cache, id: &BlockId) -> Result<Location> {
    let found = match cache.lookup(id)? {
        Some(loc) => Some(loc),
        None => cache.marked(id)?,
    };
    let loc = found.ok_or_else(|| {
        anyhow!(
            "block {} is missing from the repository's index: the repository is damaged (`archiver fsck` names everything affected)",
            hex::encode(&id[..8])
        )
    })?;
    crate::limits::block_lens(loc.len as u64, loc.plain_len as u64)
        .and_then(|_| crate::limits::block_reach(loc.offset, loc.len))
        .with_context(|| {
            format!(
                "the index entry of block {} in pack {} is damaged or hostile (`archiver fsck` rebuilds the index)",
                hex::encode(&id[..8]),
                loc.pack
            )
        })?;
    Ok(loc)
}

/// Fetches, authenticates and decompresses one block.
pub fn fetch(session: &Session, id: &BlockId, loc: &Location) -> Result<Vec<u8>> {
    let sealed = session
        .repo
        .read_pack(&loc.pack, loc.offset, loc.len as u64)
        .with_context(|| format!("cannot read block {} from pack {}", hex::encode(&id[..8]), loc.pack))?;
    session.keys.open_block(id, &sealed, loc.plain_len as usize).with_context(|| damaged_block(id, &loc.pack))
}

/// The error for a block that fails authentication: what heals it.
pub fn damaged_block(id: &BlockId, pack: &str) -> String {
    format!("block {} in pack {pack} is damaged: {}", hex::encode(&id[..8]), crate::damage::HEAL_HINT)
}

/// Whether an archive entry named `listed` may hold a root named `root`: the same name, or a
/// checkpoint (root `NAME.part`) that recovery committed as `NAME.part.N` because `NAME.part` was
/// taken (`txn::recover::part_name`).
fn names_match(root: &str, listed: &str) -> bool {
    root == listed
        || (root.ends_with(".part")
            && listed
                .strip_prefix(root)
                .and_then(|n| n.strip_prefix('.'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// An archive's root and nodes (in stored, path order), with blocks fetched by `block`: the one
/// place that walks root → metadata stream → nodes, whatever fetches and caches the blocks.
///
/// Memory: the root's list is checked before any metadata block is fetched (`Root::decode`:
/// listed at most `META_REPEAT` times over), and each fetched block must hold the length its
/// root lists, so the stream grows only by authenticated bytes and stays within a fixed multiple
/// of the distinct metadata really stored. Nothing is reserved from what the root claims.
pub fn read_with<B: AsRef<[u8]>>(
    a: &ArchiveRef,
    mut block: impl FnMut(&BlockId) -> Result<B>,
) -> Result<(Root, Vec<Node>)> {
    (|| -> Result<(Root, Vec<Node>)> {
        let root = Root::decode(block(&a.root)?.as_ref())?;
        if !names_match(&root.name, &a.name) {
            bail!("archive root names {:?}, not {:?}", root.name, a.name);
        }
        let mut stream = Vec::new();
        for (id, len) in &root.meta {
            let b = block(id)?;
            let b = b.as_ref();
            if b.len() != *len as usize {
                bail!(
                    "metadata block {} holds {} bytes where the archive root lists {len}: the metadata is damaged or hostile",
                    hex::encode(&id[..8]),
                    b.len()
                );
            }
            stream.extend_from_slice(b);
        }
        let nodes = decode_nodes(&stream)?;
        Ok((root, nodes))
    })()
    .with_context(|| format!("archive {:?} cannot be read", a.name))
}

/// An archive's root and nodes, fetched from the repository.
pub fn read(session: &Session, cache: &Cache, a: &ArchiveRef) -> Result<(Root, Vec<Node>)> {
    read_with(a, |id| fetch(session, id, &locate(cache, id)?))
}

/// The archive's nodes, in stored (path) order.
pub fn nodes(session: &Session, cache: &Cache, a: &ArchiveRef) -> Result<Vec<Node>> {
    Ok(read(session, cache, a)?.1)
}
