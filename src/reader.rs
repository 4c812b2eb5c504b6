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

pub fn locate(cache: &Cache, id: &BlockId) -> Result<Location> {
    cache.lookup(id)?.ok_or_else(|| {
        anyhow!(
            "block {} is missing from the repository's index: the repository is damaged (`archiver fsck` names everything affected)",
            hex::encode(&id[..8])
        )
    })
}

/// Fetches, authenticates and decompresses one block.
pub fn fetch(session: &Session, id: &BlockId, loc: &Location) -> Result<Vec<u8>> {
    let sealed = session
        .repo
        .read_pack(&loc.pack, loc.offset, loc.len as u64)
        .with_context(|| format!("cannot read block {} from pack {}", hex::encode(&id[..8]), loc.pack))?;
    session
        .keys
        .open_block(id, &sealed, loc.plain_len as usize)
        .with_context(|| format!("block {} in pack {} is damaged", hex::encode(&id[..8]), loc.pack))
}

pub fn root(session: &Session, cache: &Cache, a: &ArchiveRef) -> Result<Root> {
    let loc = locate(cache, &a.root)?;
    let plain = fetch(session, &a.root, &loc)?;
    let root = Root::decode(&plain)?;
    if root.name != a.name {
        bail!("archive root names {:?}, not {:?}", root.name, a.name);
    }
    Ok(root)
}

/// The archive's nodes, in stored (path) order.
pub fn nodes(session: &Session, cache: &Cache, a: &ArchiveRef) -> Result<Vec<Node>> {
    (|| -> Result<Vec<Node>> {
        let root = root(session, cache, a)?;
        let mut stream = Vec::new();
        for (id, _) in &root.meta {
            let loc = locate(cache, id)?;
            stream.extend_from_slice(&fetch(session, id, &loc)?);
        }
        decode_nodes(&stream)
    })()
    .with_context(|| format!("archive {:?} cannot be read", a.name))
}
