//! Reading archives back: finding an archive, fetching and authenticating blocks, decoding its
//! metadata stream. Every failure names the archive (and the path, where there is one) affected.

use crate::archive::{Node, Root};
use crate::cache::Cache;
use crate::codec::Reader;
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

/// An archive's nodes in stored (path) order, decoded as its metadata blocks are fetched, one
/// block at a time: the one place that walks root → metadata stream → nodes, whatever fetches
/// and caches the blocks.
///
/// Memory: one node and the block it ends in (a node longer than a block, a file of millions of
/// blocks, is gathered whole first). The root's list is checked before any metadata block is
/// fetched (`Root::decode`: listed at most `META_REPEAT` times over), and each fetched block must
/// hold the length its root lists, so even a hostile node can gather no more than the distinct
/// metadata really stored, a fixed number of times over. The first error ends the stream.
pub struct NodeStream<B, F: FnMut(&BlockId) -> Result<B>> {
    name: String,
    meta: Vec<(BlockId, u32)>,
    next: usize,
    /// Fetched bytes not yet decoded, from `start`.
    buf: Vec<u8>,
    start: usize,
    block: F,
    failed: bool,
}

impl<B: AsRef<[u8]>, F: FnMut(&BlockId) -> Result<B>> NodeStream<B, F> {
    /// Reads and checks `a`'s root; nodes come from the stream.
    pub fn open(a: &ArchiveRef, mut block: F) -> Result<(Root, Self)> {
        let root = (|| -> Result<Root> {
            let root = Root::decode(block(&a.root)?.as_ref())?;
            if !names_match(&root.name, &a.name) {
                bail!("archive root names {:?}, not {:?}", root.name, a.name);
            }
            Ok(root)
        })()
        .with_context(|| format!("archive {:?} cannot be read", a.name))?;
        let meta = root.meta.clone();
        let stream = NodeStream {
            name: a.name.clone(),
            meta,
            next: 0,
            buf: Vec::new(),
            start: 0,
            block,
            failed: false,
        };
        Ok((root, stream))
    }

    /// Appends the next metadata block; false when none is left.
    fn fill(&mut self) -> Result<bool> {
        let Some((id, len)) = self.meta.get(self.next).copied() else { return Ok(false) };
        self.next += 1;
        let b = (self.block)(&id)?;
        let b = b.as_ref();
        if b.len() != len as usize {
            bail!(
                "metadata block {} holds {} bytes where the archive root lists {len}: the metadata is damaged or hostile",
                hex::encode(&id[..8]),
                b.len()
            );
        }
        self.buf.drain(..self.start);
        self.start = 0;
        // Exactly what is held: doubling would keep up to twice the largest block.
        self.buf.reserve_exact(b.len());
        self.buf.extend_from_slice(b);
        Ok(true)
    }

    fn decode_next(&mut self) -> Result<Option<Node>> {
        // Bytes needed before decoding is tried again: what is pending doubles each time, so a
        // node spanning many blocks is decoded a logarithmic number of times, not once per block.
        let mut need = 0;
        loop {
            let (pending, exhausted) = (self.buf.len() - self.start, self.next == self.meta.len());
            if pending > 0 && (pending >= need || exhausted) {
                let mut r = Reader::new(&self.buf[self.start..], "archive metadata");
                match Node::decode(&mut r) {
                    Ok(n) => {
                        self.start += r.pos();
                        return Ok(Some(n));
                    }
                    Err(e) if !r.ran_short() || exhausted => return Err(e),
                    Err(_) => need = 2 * pending,
                }
            } else if !self.fill()? {
                return Ok(None); // every block decoded, nothing left over
            }
        }
    }
}

impl<B: AsRef<[u8]>, F: FnMut(&BlockId) -> Result<B>> Iterator for NodeStream<B, F> {
    type Item = Result<Node>;

    fn next(&mut self) -> Option<Result<Node>> {
        if self.failed {
            return None;
        }
        let got = self.decode_next().with_context(|| format!("archive {:?} cannot be read", self.name));
        self.failed = got.is_err();
        got.transpose()
    }
}

/// An archive's root and all its nodes, with blocks fetched by `block` (`NodeStream`, gathered).
pub fn read_with<B: AsRef<[u8]>>(
    a: &ArchiveRef,
    block: impl FnMut(&BlockId) -> Result<B>,
) -> Result<(Root, Vec<Node>)> {
    let (root, stream) = NodeStream::open(a, block)?;
    Ok((root, stream.collect::<Result<Vec<_>>>()?))
}

/// The root of archive `a` from the repository, and its nodes as a stream.
#[allow(clippy::type_complexity)]
pub fn stream<'a>(
    session: &'a Session,
    cache: &'a Cache,
    a: &ArchiveRef,
) -> Result<(Root, NodeStream<Vec<u8>, impl FnMut(&BlockId) -> Result<Vec<u8>> + 'a>)> {
    NodeStream::open(a, move |id: &BlockId| fetch(session, id, &locate(cache, id)?))
}

/// An archive's root and nodes, fetched from the repository.
pub fn read(session: &Session, cache: &Cache, a: &ArchiveRef) -> Result<(Root, Vec<Node>)> {
    read_with(a, |id| fetch(session, id, &locate(cache, id)?))
}

/// The archive's nodes, in stored (path) order.
pub fn nodes(session: &Session, cache: &Cache, a: &ArchiveRef) -> Result<Vec<Node>> {
    Ok(read(session, cache, a)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::NodeKind;
    use crate::codec::Writer;

    /// Archive "a" whose metadata stream is `plain` cut into blocks of `cut` bytes, read as a stream.
    fn stream_of(plain: &[u8], cut: usize) -> Result<Vec<Node>> {
        let blocks: Vec<Vec<u8>> = plain.chunks(cut).map(|c| c.to_vec()).collect();
        let id = |i: usize| -> BlockId {
            let mut id = [7; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            id
        };
        let meta = blocks.iter().enumerate().map(|(i, b)| (id(i + 1), b.len() as u32)).collect();
        let root = Root { name: "a".into(), time: 0, host: "h".into(), meta, command: vec![] }.encode();
        let a = ArchiveRef {
            name: "a".into(),
            root: id(0),
            root_len: 0,
            time: 0,
            partial: false,
            stats: Default::default(),
        };
        let fetch = |want: &BlockId| -> Result<Vec<u8>> {
            Ok(match u64::from_le_bytes(want[..8].try_into().unwrap()) as usize {
                0 => root.clone(),
                i => blocks[i - 1].clone(),
            })
        };
        NodeStream::open(&a, fetch)?.1.collect()
    }

    /// The stream gives the nodes `decode_nodes` gives, however the bytes are cut into blocks
    /// (nodes across block boundaries, a node spanning many blocks), and refuses a cut-off node.
    #[test]
    fn nodes_come_out_whole_whatever_the_block_boundaries() {
        let mut nodes: Vec<Node> =
            (0..50u8).map(|i| Node::new(vec![b'a' + i % 26; 1 + i as usize], NodeKind::Dir)).collect();
        nodes[20].kind = NodeKind::File;
        nodes[20].blocks = vec![([9; 32], 1000); 3000]; // ~100 KB: many blocks of the stream
        nodes[20].size = 3_000_000;
        let mut w = Writer::new();
        nodes.iter().for_each(|n| n.encode(&mut w));
        let plain = w.finish();
        for cut in [1usize, 7, 100, 4096, plain.len()] {
            assert_eq!(stream_of(&plain, cut).unwrap(), nodes, "blocks of {cut} bytes");
        }
        let err = stream_of(&plain[..plain.len() - 1], 100).unwrap_err();
        assert!(format!("{err:#}").contains("truncated"), "{err:#}");
        assert!(stream_of(&[], 100).unwrap().is_empty());
    }
}
