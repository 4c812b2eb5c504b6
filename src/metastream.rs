//! The metadata stream of an archive being written: nodes serialised in path order and cut, as
//! the stream grows, into metadata blocks by the same keyed chunker as file data (so an unchanged
//! tree chunks to the same blocks). Invariant: at most two chunks' worth of bytes are held before
//! finished blocks are stored; only the last, unfinished chunk waits for `cut(.., end = true)`.

use crate::archive::Node;
use crate::chunker::{Chunker, MAX};
use crate::codec::Writer;
use crate::crypto::BlockId;
use crate::pack::Kind;
use crate::txn::Txn;
use anyhow::Result;

/// Room beyond `2 * MAX` for the node that crosses it (most nodes are far smaller).
const SLACK: usize = 1 << 20;

/// The serialised node stream, cut into metadata blocks as it grows.
#[derive(Default)]
pub struct MetaStream {
    pub(crate) buf: Vec<u8>,
    pub blocks: Vec<(BlockId, u32)>,
}

impl MetaStream {
    pub(crate) fn push(&mut self, node: &Node, txn: &mut Txn, chunker: &Chunker) -> Result<()> {
        if self.buf.capacity() < 2 * MAX + SLACK {
            // Once, what the buffer holds at most (but for one huge node): doubling from
            // `2 * MAX` would allocate twice that.
            self.buf.reserve_exact(2 * MAX + SLACK - self.buf.len());
        }
        let mut w = Writer { buf: std::mem::take(&mut self.buf) };
        node.encode(&mut w);
        self.buf = w.buf;
        if self.buf.len() >= 2 * MAX {
            self.cut(txn, chunker, false)?;
        }
        Ok(())
    }

    /// Emits every chunk whose boundary is final (all of them at the end).
    pub fn cut(&mut self, txn: &mut Txn, chunker: &Chunker, end: bool) -> Result<()> {
        let mut start = 0;
        while self.buf.len() - start >= MAX || (end && start < self.buf.len()) {
            let n = chunker.cut(&self.buf[start..]);
            let id = txn.put(Kind::Meta, &self.buf[start..start + n])?;
            self.blocks.push((id, n as u32));
            start += n;
        }
        self.buf.drain(..start);
        Ok(())
    }
}
