//! Archive metadata. An archive is a root block naming a metadata stream: the tree's nodes in
//! path order, serialised, then cut by the same keyed chunker as file data into metadata blocks.
//! An unchanged tree serialises to the same bytes and chunks to the same blocks, so archiving it
//! again stores almost nothing. The root block is unique per archive (it holds name and time).
//!
//! Paths are raw bytes (any Unix name, newlines included), relative, without `..` components.
//!
//! Node kinds 1 to 3 (file, directory, symlink) are what the first archivers wrote; 4 to 7 (hard
//! link, FIFO, character and block device) and the flags on a kind byte, `OWNERS` (user and group
//! names follow the node) and `XATTRS` (extended attributes, POSIX ACLs among them, follow
//! those), came later. An older archiver refuses an
//! archive using them ("unknown node kind") instead of misreading it, and an archive without
//! them is encoded exactly as before, so unchanged trees keep deduplicating their metadata.
//! Invariant: every count and length decoded is bounded (`limits`) before it is used.

use crate::codec::{Reader, Writer};
use crate::crypto::BlockId;
use crate::limits::{
    MAX_OWNER_NAME, MAX_PATH, MAX_PLAIN, MAX_XATTRS, MAX_XATTR_NAME, MAX_XATTR_VALUE, META_REPEAT,
};
use anyhow::{bail, Result};
use std::collections::HashMap;

pub const VERSION: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    /// Another name of a file stored earlier in the archive: `target` is that file's path.
    Hardlink,
    Fifo,
    /// Device nodes, with their device number in `rdev`.
    CharDev,
    BlockDev,
}

/// On a kind byte: extended attributes follow the node.
const XATTRS: u8 = 0x80;
/// On a kind byte: the owner's user and group names follow the node (before any attributes).
const OWNERS: u8 = 0x40;

impl NodeKind {
    /// Its code in the node encoding (without flags).
    pub fn code(self) -> u8 {
        match self {
            NodeKind::File => 1,
            NodeKind::Dir => 2,
            NodeKind::Symlink => 3,
            NodeKind::Hardlink => 4,
            NodeKind::Fifo => 5,
            NodeKind::CharDev => 6,
            NodeKind::BlockDev => 7,
        }
    }

    /// The kind a `code` names.
    pub fn of(code: u8) -> Option<NodeKind> {
        Some(match code {
            1 => NodeKind::File,
            2 => NodeKind::Dir,
            3 => NodeKind::Symlink,
            4 => NodeKind::Hardlink,
            5 => NodeKind::Fifo,
            6 => NodeKind::CharDev,
            7 => NodeKind::BlockDev,
            _ => return None,
        })
    }

    /// What `ls` and messages call it.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::File => "file",
            NodeKind::Dir => "directory",
            NodeKind::Symlink => "symlink",
            NodeKind::Hardlink => "hard link",
            NodeKind::Fifo => "FIFO",
            NodeKind::CharDev => "character device",
            NodeKind::BlockDev => "block device",
        }
    }
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
    /// A device's number (`st_rdev`); 0 for other kinds.
    pub rdev: u64,
    /// Extended attributes (name, value), sorted by name; POSIX ACLs are the `system.posix_acl_*`
    /// ones.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The owner's user and group names where the system had them (empty: none; `owners`).
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
}

impl Node {
    /// A node of `kind` at `path` with nothing else set.
    pub fn new(path: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            path,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_ns: 0,
            size: 0,
            blocks: Vec::new(),
            target: Vec::new(),
            partial: false,
            rdev: 0,
            xattrs: Vec::new(),
            uname: Vec::new(),
            gname: Vec::new(),
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        let named = !self.uname.is_empty() || !self.gname.is_empty();
        let flags = if self.xattrs.is_empty() { 0 } else { XATTRS } | if named { OWNERS } else { 0 };
        w.u8(self.kind.code() | flags)
            .bytes(&self.path)
            .uvar(self.mode as u64)
            .uvar(self.uid as u64)
            .uvar(self.gid as u64);
        w.ivar(self.mtime).uvar(self.mtime_ns as u64);
        match self.kind {
            NodeKind::File => {
                w.uvar(self.size).u8(self.partial as u8).uvar(self.blocks.len() as u64);
                for (id, len) in &self.blocks {
                    w.id(id).uvar(*len as u64);
                }
            }
            NodeKind::Symlink | NodeKind::Hardlink => {
                w.bytes(&self.target);
            }
            NodeKind::CharDev | NodeKind::BlockDev => {
                w.uvar(self.rdev);
            }
            NodeKind::Dir | NodeKind::Fifo => {}
        }
        if named {
            w.bytes(&self.uname).bytes(&self.gname);
        }
        if !self.xattrs.is_empty() {
            w.uvar(self.xattrs.len() as u64);
            for (name, value) in &self.xattrs {
                w.bytes(name).bytes(value);
            }
        }
    }

    /// Decodes one node. Every length is checked before it is used (`limits`): paths and symlink
    /// targets at most `MAX_PATH`, block lengths at most a block's largest plaintext.
    pub fn decode(r: &mut Reader) -> Result<Node> {
        let code = r.u8()?;
        let Some(kind) = NodeKind::of(code & !(XATTRS | OWNERS)) else {
            bail!("archive metadata has an unknown node kind {code}: it was written by a newer archiver (upgrade archiver), or is damaged");
        };
        let path = r.bytes()?;
        if path.len() > MAX_PATH {
            bail!("archive metadata holds a path of {} bytes, more than the {MAX_PATH} allowed: it is damaged or hostile", path.len());
        }
        let mut n = Node {
            path: path.to_vec(),
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
            mtime: r.ivar()?,
            mtime_ns: r.u32()?,
            ..Node::new(Vec::new(), kind)
        };
        if n.mtime_ns >= 1_000_000_000 {
            bail!("archive metadata holds a time with {} nanoseconds: it is damaged or hostile", n.mtime_ns);
        }
        match kind {
            NodeKind::File => {
                n.size = r.uvar()?;
                n.partial = r.u8()? != 0;
                let count = r.count(33)?;
                n.blocks.reserve(count);
                for _ in 0..count {
                    let id = r.id()?;
                    n.blocks.push((id, plain_len(r)?));
                }
            }
            NodeKind::Symlink | NodeKind::Hardlink => {
                let target = r.bytes()?;
                if target.len() > MAX_PATH {
                    bail!("archive metadata holds a link target of {} bytes, more than the {MAX_PATH} allowed: it is damaged or hostile", target.len());
                }
                n.target = target.to_vec();
            }
            NodeKind::CharDev | NodeKind::BlockDev => n.rdev = r.uvar()?,
            NodeKind::Dir | NodeKind::Fifo => {}
        }
        if code & OWNERS != 0 {
            for name in [&mut n.uname, &mut n.gname] {
                let got = r.bytes()?;
                if got.len() > MAX_OWNER_NAME || got.contains(&0) {
                    bail!("archive metadata holds an owner name of {} bytes or with a NUL byte: it is damaged or hostile", got.len());
                }
                *name = got.to_vec();
            }
        }
        if code & XATTRS != 0 {
            n.xattrs = decode_xattrs(r)?;
        }
        Ok(n)
    }
}

/// A node's extended attributes: at most `MAX_XATTRS`, names of 1 to `MAX_XATTR_NAME` bytes
/// without NUL, values of at most `MAX_XATTR_VALUE`, in strictly ascending name order.
fn decode_xattrs(r: &mut Reader) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let count = r.count(2)?;
    if count == 0 || count > MAX_XATTRS {
        bail!("archive metadata lists {count} extended attributes on one node (1 to {MAX_XATTRS} allowed): it is damaged or hostile");
    }
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.bytes()?;
        let value = r.bytes()?;
        let bad_name = name.is_empty() || name.len() > MAX_XATTR_NAME || name.contains(&0);
        if bad_name || value.len() > MAX_XATTR_VALUE || out.last().is_some_and(|(p, _)| p.as_slice() >= name)
        {
            bail!("archive metadata holds a malformed extended attribute (its name, its size or its order): it is damaged or hostile");
        }
        out.push((name.to_vec(), value.to_vec()));
    }
    Ok(out)
}

/// A block's plain length as metadata lists it: at most a block's largest plaintext.
fn plain_len(r: &mut Reader) -> Result<u32> {
    let len = r.u32()?;
    if len > MAX_PLAIN {
        bail!("archive metadata lists a block of {len} bytes, more than the {MAX_PLAIN} a block can hold: it is damaged or hostile");
    }
    Ok(len)
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
    /// The command line that made the archive, one argument each (tarsnap's `--list-archives
    /// -vv` shows it); empty when not recorded. Encoded after `meta`, only when not empty, so
    /// roots without it keep their bytes and readers from before it ignore it.
    pub command: Vec<Vec<u8>>,
}

impl Root {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION).str(&self.name).ivar(self.time).str(&self.host);
        w.uvar(self.meta.len() as u64);
        for (id, len) in &self.meta {
            w.id(id).uvar(*len as u64);
        }
        if !self.command.is_empty() {
            w.uvar(self.command.len() as u64);
            for arg in &self.command {
                w.bytes(arg);
            }
        }
        w.finish()
    }

    /// Decodes a root; its list of metadata blocks is checked (`check_meta_list`) before any of
    /// them is fetched.
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
            let id = r.id()?;
            meta.push((id, plain_len(&mut r)?));
        }
        check_meta_list(&meta)?;
        let mut command = Vec::new();
        if !r.is_empty() {
            let n = r.count(1)?;
            for _ in 0..n {
                command.push(r.bytes()?.to_vec());
            }
        }
        Ok(Root { name, time, host, meta, command })
    }
}

/// Checks a root's list of metadata blocks: one block is never listed with two lengths, and the
/// list, counted per listing, adds up to at most `META_REPEAT` times its distinct blocks, so the
/// stream that reading the archive builds is a bounded multiple of metadata really stored.
pub fn check_meta_list(meta: &[(BlockId, u32)]) -> Result<()> {
    let mut distinct: HashMap<&BlockId, u32> = HashMap::with_capacity(meta.len());
    let (mut listed, mut unique) = (0u64, 0u64);
    for (id, len) in meta {
        listed += *len as u64;
        match distinct.insert(id, *len) {
            None => unique += *len as u64,
            Some(l) if l == *len => {}
            Some(l) => bail!(
                "the archive root lists metadata block {} with two lengths ({l} and {len}): it is damaged or hostile",
                hex::encode(&id[..8])
            ),
        }
    }
    if listed > unique.saturating_mul(META_REPEAT) {
        bail!(
            "the archive root lists {} of metadata blocks, more than {META_REPEAT} times the {} of distinct blocks it lists: it is damaged or hostile",
            crate::units::human(listed),
            crate::units::human(unique)
        );
    }
    Ok(())
}

/// Checks an archive name given by a user.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("archive name is empty: give a name such as nightly-2026-11-22");
    }
    // `/` is allowed, as tarsnap allows it (tarsnapper names archives `/host/job-DATE`): a name
    // is never used as a path.
    if name.contains('\n') || name.contains('\0') {
        bail!("archive name {name:?} contains a newline or NUL: choose a name without them");
    }
    if name.len() > 1024 {
        bail!("archive name is longer than 1024 bytes: choose a shorter name");
    }
    Ok(())
}

/// A root's bytes, if every reader will accept it (`limits`): refuses, before the commit, an
/// archive whose metadata lists the same blocks too many times over (the same tree given many
/// times) or whose root would be larger than a block.
pub(crate) fn encode_root(root: &Root) -> Result<Vec<u8>> {
    if let Err(e) = check_meta_list(&root.meta) {
        bail!(
            "archive {:?} would repeat the same metadata too often ({e:#}): give each path once, with fewer overlapping paths",
            root.name
        );
    }
    let bytes = root.encode();
    if bytes.len() > crate::limits::MAX_PLAIN as usize {
        bail!(
            "archive {:?} would have a root of {} bytes, more than the {} a block can hold: archive the tree in several archives",
            root.name,
            bytes.len(),
            crate::limits::MAX_PLAIN
        );
    }
    Ok(bytes)
}

/// The stored path of `name` inside directory `parent` (`.` is the top).
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent == b"." {
        return name.to_vec();
    }
    let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
    v.extend_from_slice(parent);
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
