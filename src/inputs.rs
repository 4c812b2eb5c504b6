//! What `create` stores besides the file system: standard input as one file, another archive's
//! entries (`@@NAME`, tarsnap's copy of an archive) and a tar stream's entries (`@FILE`, `@-`:
//! bsdtar's archive-as-input, so `tarsnap -r -f OLD | archiver tarsnap -c -f NEW @-` migrates an
//! archive).
//!
//! Invariants. A copied archive's file data is never read or uploaded again: each node is stored
//! with the same block list, every block of which the repository must already hold (a block it
//! does not is an error, not a silently shorter file). Its metadata is read one block at a time
//! (memory stays flat in the number of entries). A tar stream is hostile input: each path is
//! normalised as a file system operand's is (relative, no `.` or `..` component), lengths are
//! bounded before anything is stored, and a stream that is malformed or cut short fails the
//! whole run (nothing is committed but a checkpoint, as `NAME.part`): a migration never ends in
//! an archive that silently lacks the rest. The selection (`--exclude`, `--include`) applies to
//! both, as bsdtar applies it to entries read from an archive.

use crate::access::Perm;
use crate::archive::{Node, NodeKind, Root};
use crate::crypto::BlockId;
use crate::limits::{MAX_PATH, MAX_XATTRS, MAX_XATTR_VALUE};
use crate::pack::Location;
use crate::progress::Event;
use crate::reader;
use crate::session::Session;
use crate::walker::Walker;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

/// An input of `create` other than a path on the file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `@@NAME`: the entries of the archive NAME in this repository.
    Archive(String),
    /// `@FILE` (`@-`: standard input): the entries of a tar stream (ustar, pax or GNU).
    Tar(PathBuf),
}

impl Walker<'_> {
    /// Stores every entry of archive `name` (see the module comment).
    pub fn copy_archive(&mut self, session: &Session, name: &str) -> Result<()> {
        session.require(&[Perm::Read], "copy an archive's contents (@@NAME)")?;
        let head = session.head()?;
        let archive = reader::find(&head.0, name)?.clone();
        let context = || format!("cannot copy archive {name:?}");
        // Where the root and its metadata blocks are, found first: the node stream then needs no
        // cache while the walk stores nodes through the transaction that holds it.
        let root_loc = reader::locate(&self.txn.cache, &archive.root).with_context(context)?;
        let root_bytes = reader::fetch(session, &archive.root, &root_loc).with_context(context)?;
        let root = Root::decode(&root_bytes).with_context(context)?;
        let mut at: HashMap<BlockId, Location> = HashMap::with_capacity(root.meta.len() + 1);
        at.insert(archive.root, root_loc);
        for (id, _) in &root.meta {
            if !at.contains_key(id) {
                at.insert(*id, reader::locate(&self.txn.cache, id).with_context(context)?);
            }
        }
        let block = |id: &BlockId| match at.get(id) {
            Some(loc) => reader::fetch(session, id, loc),
            None => Err(anyhow!("block {} is not listed by the archive's root", hex::encode(&id[..8]))),
        };
        let (_, nodes) = reader::NodeStream::open(&archive, block)?;
        for node in nodes {
            let node = node?;
            if self.select.excluded(&node.path) {
                continue;
            }
            for (id, _) in &node.blocks {
                if !self.txn.reuse(id)? {
                    bail!(
                        "archive {name:?} lists block {} for {}, and the repository does not hold it: nothing was copied (`archiver fsck` names what is damaged)",
                        hex::encode(&id[..8]),
                        crate::query::escape(&node.path)
                    );
                }
            }
            self.count(&node);
            self.emit(&node)?;
        }
        Ok(())
    }

    /// Stores every entry of the tar stream at `path` (`-`: standard input).
    pub fn tar_file(&mut self, path: &std::path::Path) -> Result<()> {
        if path.as_os_str() == "-" {
            return self.tar_stream(std::io::stdin().lock(), "standard input");
        }
        let shown = path.display().to_string();
        let f = std::fs::File::open(path).with_context(|| format!("cannot read the tar archive {shown}"))?;
        self.tar_stream(std::io::BufReader::with_capacity(1 << 20, f), &shown)
    }

    /// Stores every entry of the tar stream `input` (named `shown` in messages).
    pub fn tar_stream(&mut self, input: impl Read, shown: &str) -> Result<()> {
        let mut tar = tar::Archive::new(input);
        let bad = |e: std::io::Error| {
            anyhow!(
                "the tar stream from {shown} is malformed or cut short ({e}): nothing after it was stored"
            )
        };
        for entry in tar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let Some(mut node) = tar_node(&mut entry).map_err(bad)? else { continue };
            let Some(path) = normal(&node.path) else {
                self.warn(format!(
                    "skipped {} from {shown}: its path is longer than the {MAX_PATH} bytes an archive holds",
                    crate::query::escape(&node.path)
                ));
                continue;
            };
            node.path = path;
            if self.select.excluded(&node.path) {
                continue;
            }
            if node.kind == NodeKind::Hardlink {
                node.target = normal(&node.target).unwrap_or_default();
            }
            if !self.select.numeric_owner && node.uname.is_empty() {
                self.names.name(&mut node);
            }
            if node.kind == NodeKind::File {
                node.size = entry.size(); // what a checkpoint during the read compares with
                let want = node.size;
                self.read_into(&mut entry, &mut node).map_err(|e| match e.downcast::<std::io::Error>() {
                    Ok(io) => bad(io),
                    Err(e) => e,
                })?;
                if node.size != want {
                    return Err(bad(std::io::ErrorKind::UnexpectedEof.into()));
                }
                (self.progress)(Event::Advance { files: 1, bytes: 0 });
            }
            self.count(&node);
            self.emit(&node)?;
        }
        Ok(())
    }

    /// Stores what `input` yields (standard input: a database dump) as one regular file at
    /// stored path `apath`: mode 0600, this process's owner, the current time. A read error
    /// stores what was read, marked partial, with a warning.
    pub fn stream(&mut self, input: impl std::io::Read, apath: Vec<u8>) -> Result<()> {
        let now = crate::process::now_ns();
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut node = Node {
            mode: libc::S_IFREG | 0o600,
            uid,
            gid,
            mtime: now.div_euclid(1_000_000_000),
            mtime_ns: now.rem_euclid(1_000_000_000) as u32,
            size: u64::MAX, // unknown: a checkpoint during the read marks the file partial
            ..Node::new(apath, NodeKind::File)
        };
        if !self.select.numeric_owner {
            self.names.name(&mut node);
        }
        if let Err(e) = self.read_into(input, &mut node) {
            if e.downcast_ref::<std::io::Error>().is_none() {
                return Err(e);
            }
            node.partial = true;
            self.warn(format!(
                "error reading standard input after {} bytes: {e}; stored what was read",
                node.size
            ));
        }
        self.stats.files += 1;
        (self.progress)(Event::Advance { files: 1, bytes: 0 });
        self.emit(&node)
    }

    /// Counts a node in the archive's statistics.
    fn count(&mut self, node: &Node) {
        match node.kind {
            NodeKind::Dir => self.stats.dirs += 1,
            NodeKind::Symlink => self.stats.symlinks += 1,
            _ => self.stats.files += 1,
        }
    }
}

/// The node a tar entry describes (its content not yet read); `None` for an entry that holds no
/// file (a global pax header, a volume label).
fn tar_node<R: Read>(entry: &mut tar::Entry<R>) -> std::io::Result<Option<Node>> {
    use tar::EntryType as T;
    let h = entry.header();
    let (kind, ifmt) = match h.entry_type() {
        T::Regular | T::Continuous | T::GNUSparse => (NodeKind::File, libc::S_IFREG),
        T::Directory => (NodeKind::Dir, libc::S_IFDIR),
        T::Symlink => (NodeKind::Symlink, libc::S_IFLNK),
        T::Link => (NodeKind::Hardlink, libc::S_IFREG),
        T::Char => (NodeKind::CharDev, libc::S_IFCHR),
        T::Block => (NodeKind::BlockDev, libc::S_IFBLK),
        T::Fifo => (NodeKind::Fifo, libc::S_IFIFO),
        _ => return Ok(None),
    };
    let id = |v: std::io::Result<u64>| v.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    let mut node = Node {
        mode: ifmt | (h.mode()? & 0o7777),
        uid: id(h.uid())?,
        gid: id(h.gid())?,
        mtime: i64::try_from(h.mtime()?).unwrap_or(i64::MAX),
        uname: h.username_bytes().unwrap_or_default().to_vec(),
        gname: h.groupname_bytes().unwrap_or_default().to_vec(),
        ..Node::new(entry.path_bytes().into_owned(), kind)
    };
    if matches!(kind, NodeKind::Symlink | NodeKind::Hardlink) {
        node.target = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
    }
    if matches!(kind, NodeKind::CharDev | NodeKind::BlockDev) {
        let h = entry.header();
        let (major, minor) = (h.device_major()?.unwrap_or(0), h.device_minor()?.unwrap_or(0));
        node.rdev = libc::makedev(major, minor);
    }
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            // GNU tar and star write `SCHILY.xattr.NAME=VALUE`; libarchive (bsdtar, tarsnap -r)
            // writes `LIBARCHIVE.xattr.URL-ENCODED-NAME=BASE64-VALUE`.
            let xattr = match key.strip_prefix(b"SCHILY.xattr.") {
                Some(name) => Some((name.to_vec(), value.to_vec())),
                None => key
                    .strip_prefix(b"LIBARCHIVE.xattr.")
                    .and_then(|name| Some((url_decode(name)?, base64_decode(value)?))),
            };
            if let Some((name, value)) = xattr {
                if node.xattrs.len() < MAX_XATTRS && value.len() <= MAX_XATTR_VALUE && !name.is_empty() {
                    node.xattrs.push((name, value));
                }
            } else if key == b"mtime" {
                // Seconds with an optional fraction: the nanoseconds the header cannot hold.
                let text = std::str::from_utf8(value).unwrap_or("");
                let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
                if let Ok(s) = secs.parse::<i64>() {
                    node.mtime = s;
                    let digits: String = frac.chars().take(9).collect();
                    let ns = format!("{digits:0<9}").parse::<u32>().unwrap_or(0);
                    node.mtime_ns = if s >= 0 { ns } else { 0 };
                }
            }
        }
        node.xattrs.sort();
        node.xattrs.dedup_by(|a, b| a.0 == b.0);
    }
    Ok(Some(node))
}

/// `%XX` escapes decoded; `None` for a malformed one.
fn url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Standard base64, padding optional (libarchive leaves it out); `None` for a malformed value.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let s = s.strip_suffix(b"==").or_else(|| s.strip_suffix(b"=")).unwrap_or(s);
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for quad in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in quad.iter().enumerate() {
            acc |= (value(c)? as u32) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..quad.len()]);
    }
    Some(out)
}

/// A tar path in its stored form, as `operands::archive_path` makes a file system operand's:
/// relative, without empty or `.` components or a trailing `/`, each `..` removing the name
/// before it, `.` for nothing left. `None` when longer than an archive holds.
fn normal(path: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let joined = if parts.is_empty() { b".".to_vec() } else { parts.join(&b'/') };
    (joined.len() <= MAX_PATH).then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::normal;

    #[test]
    fn tar_paths_are_stored_relative_and_normal() {
        for (given, stored) in [
            (&b"./etc/passwd"[..], &b"etc/passwd"[..]),
            (b"/abs/dir/", b"abs/dir"),
            (b"../../x", b"x"),
            (b"a/../../b", b"b"),
            (b"./", b"."),
            (b"a//b/./c", b"a/b/c"),
        ] {
            assert_eq!(normal(given).unwrap(), stored, "{}", String::from_utf8_lossy(given));
        }
        assert!(normal(&vec![b'a'; crate::limits::MAX_PATH + 1]).is_none());
    }

    #[test]
    fn libarchive_xattr_records_are_decoded() {
        use super::{base64_decode, url_decode};
        assert_eq!(url_decode(b"user.a%3Db%25").unwrap(), b"user.a=b%");
        assert!(url_decode(b"x%4").is_none());
        for (enc, plain) in [
            (&b"aGVsbG8"[..], &b"hello"[..]),
            (b"aGVsbG8=", b"hello"),
            (b"aGk=", b"hi"),
            (b"", b""),
            (b"AP8=", b"\x00\xff"),
        ] {
            assert_eq!(base64_decode(enc).unwrap(), plain, "{}", String::from_utf8_lossy(enc));
        }
        assert!(base64_decode(b"a").is_none());
        assert!(base64_decode(b"a*bc").is_none());
    }
}
