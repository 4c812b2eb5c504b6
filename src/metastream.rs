//! The metadata stream of an archive being written: nodes serialised in path order and cut, as
//! the stream grows, into metadata blocks by the keyed chunker with metadata's smaller sizes
//! (`chunker::META`; an unchanged tree chunks to the same blocks). Invariant: at most two
//! chunks' worth of bytes are held before finished blocks are stored (but for one node larger
//! than that); only the last, unfinished chunk waits for `cut(.., end = true)`.

use crate::archive::Node;
use crate::chunker::Chunker;
use crate::codec::Writer;
use crate::crypto::BlockId;
use crate::pack::Kind;
use crate::txn::Txn;
use anyhow::Result;

/// Room beyond two chunks for the node that crosses the mark (most nodes are far smaller).
const SLACK: usize = 64 << 10;

/// The serialised node stream, cut into metadata blocks as it grows.
pub struct MetaStream {
    pub(crate) buf: Vec<u8>,
    pub blocks: Vec<(BlockId, u32)>,
    /// The repository's chunker with `chunker::META` sizes.
    pub(crate) chunker: Chunker,
}

impl MetaStream {
    /// A stream cut by `chunker` (the repository's) at metadata's sizes.
    pub fn new(chunker: Chunker) -> MetaStream {
        MetaStream { buf: Vec::new(), blocks: Vec::new(), chunker: chunker.with_sizes(crate::chunker::META) }
    }

    pub(crate) fn push(&mut self, node: &Node, txn: &mut Txn) -> Result<()> {
        let full = 2 * self.chunker.max();
        if self.buf.capacity() < full + SLACK {
            // Once, what the buffer holds at most (but for one huge node): doubling from
            // `full` would allocate twice that.
            self.buf.reserve_exact(full + SLACK - self.buf.len());
        }
        let mut w = Writer { buf: std::mem::take(&mut self.buf) };
        node.encode(&mut w);
        self.buf = w.buf;
        if self.buf.len() >= full {
            self.cut(txn, false)?;
        }
        Ok(())
    }

    /// Emits every chunk whose boundary is final (all of them at the end).
    pub fn cut(&mut self, txn: &mut Txn, end: bool) -> Result<()> {
        let mut start = 0;
        while self.buf.len() - start >= self.chunker.max() || (end && start < self.buf.len()) {
            let n = self.chunker.cut(&self.buf[start..]);
            let id = txn.put(Kind::Meta, &self.buf[start..start + n])?;
            self.blocks.push((id, n as u32));
            start += n;
        }
        self.buf.drain(..start);
        Ok(())
    }
}
