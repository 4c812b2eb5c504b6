//! Archive metadata. An archive is a root block naming a metadata stream: the tree's nodes in
//! path order, serialised, then cut by the same keyed chunker as file data into metadata blocks.
//! An unchanged tree serialises to the same bytes and chunks to the same blocks, so archiving it
//! again stores almost nothing. The root block is unique per archive (it holds name and time).
//!
//! Paths are raw bytes (any Unix name, newlines included), relative, without `..` components.

use crate::codec::{Reader, Writer};
use crate::crypto::BlockId;
use anyhow::{bail, Result};

pub const VERSION: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub path: Vec<u8>,
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_ns: u32,
    pub size: u64,
    /// File content: block ids and plaintext lengths, in order.
    pub blocks: Vec<(BlockId, u32)>,
    pub target: Vec<u8>,
    /// The file was cut short (by a checkpoint, or an error while reading it).
    pub partial: bool,
}

impl Node {
    pub fn encode(&self, w: &mut Writer) {
        let kind = match self.kind {
            NodeKind::File => 1,
            NodeKind::Dir => 2,
            NodeKind::Symlink => 3,
        };
        w.u8(kind).bytes(&self.path).uvar(self.mode as u64).uvar(self.uid as u64).uvar(self.gid as u64);
        w.ivar(self.mtime).uvar(self.mtime_ns as u64);
        match self.kind {
            NodeKind::File => {
                w.uvar(self.size).u8(self.partial as u8).uvar(self.blocks.len() as u64);
                for (id, len) in &self.blocks {
                    w.id(id).uvar(*len as u64);
                }
            }
            NodeKind::Symlink => {
                w.bytes(&self.target);
            }
            NodeKind::Dir => {}
        }
    }

    pub fn decode(r: &mut Reader) -> Result<Node> {
        let kind = match r.u8()? {
            1 => NodeKind::File,
            2 => NodeKind::Dir,
            3 => NodeKind::Symlink,
            k => bail!("archive metadata has an unknown node kind {k}"),
        };
        let mut n = Node {
            path: r.bytes()?.to_vec(),
            kind,
            mode: r.uvar()? as u32,
            uid: r.uvar()? as u32,
            gid: r.uvar()? as u32,
            mtime: r.ivar()?,
            mtime_ns: r.uvar()? as u32,
            size: 0,
            blocks: Vec::new(),
            target: Vec::new(),
            partial: false,
        };
        match kind {
            NodeKind::File => {
                n.size = r.uvar()?;
                n.partial = r.u8()? != 0;
                let count = r.count(33)?;
                n.blocks.reserve(count);
                for _ in 0..count {
                    n.blocks.push((r.id()?, r.uvar()? as u32));
                }
            }
            NodeKind::Symlink => n.target = r.bytes()?.to_vec(),
            NodeKind::Dir => {}
        }
        Ok(n)
    }
}

/// Decodes a whole metadata stream.
pub fn decode_nodes(stream: &[u8]) -> Result<Vec<Node>> {
    let mut r = Reader::new(stream, "archive metadata");
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(Node::decode(&mut r)?);
    }
    Ok(out)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Plain bytes of every block the archive references (file data and metadata), per use.
    pub raw: u64,
    /// Stored (compressed, sealed) bytes of every block the archive references, counted per use.
    pub stored: u64,
    /// Plain and stored bytes of blocks this archive added to the repository.
    pub new_raw: u64,
    pub new_stored: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub name: String,
    pub time: i64,
    pub host: String,
    pub meta: Vec<(BlockId, u32)>,
}

impl Root {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION).str(&self.name).ivar(self.time).str(&self.host);
        w.uvar(self.meta.len() as u64);
        for (id, len) in &self.meta {
            w.id(id).uvar(*len as u64);
        }
        w.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<Root> {
        let mut r = Reader::new(buf, "archive root");
        let v = r.u8()?;
        if v != VERSION {
            bail!("archive format {v} is not supported by this archiver; upgrade archiver");
        }
        let name = r.string()?;
        let time = r.ivar()?;
        let host = r.string()?;
        let n = r.count(33)?;
        let mut meta = Vec::with_capacity(n);
        for _ in 0..n {
            meta.push((r.id()?, r.uvar()? as u32));
        }
        Ok(Root { name, time, host, meta })
    }
}

/// Checks an archive name given by a user.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("archive name is empty: give a name such as nightly-2026-11-22");
    }
    if name.contains('/') || name.contains('\n') || name.contains('\0') {
        bail!("archive name {name:?} contains '/', a newline or NUL: choose a name without them");
    }
    if name.len() > 1024 {
        bail!("archive name is longer than 1024 bytes: choose a shorter name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_root_round_trip() {
        let n = Node {
            path: b"a/b\nc".to_vec(),
            kind: NodeKind::File,
            mode: 0o100644,
            uid: 1,
            gid: 2,
            mtime: -5,
            mtime_ns: 999_999_999,
            size: 10,
            blocks: vec![([3; 32], 10)],
            target: vec![],
            partial: true,
        };
        let mut w = Writer::new();
        n.encode(&mut w);
        assert_eq!(decode_nodes(&w.finish()).unwrap(), vec![n]);
        let root = Root { name: "x".into(), time: 7, host: "h".into(), meta: vec![([1; 32], 5)] };
        assert_eq!(Root::decode(&root.encode()).unwrap(), root);
    }
}
