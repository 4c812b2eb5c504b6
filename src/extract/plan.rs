//! Which of the selected nodes extract restores, decided one node at a time in archive order,
//! before anything is looked at on disk. What it must remember (the kind of every accepted path,
//! the directories to create) is kept on disk in `Scratch`, so memory stays flat in the number of
//! entries; a tree stored in path order, as `create` stores it, needs no lookup for an entry's
//! ancestors (`Planner::chain`) nor for duplicates (`Planner::max`).
//!
//! Skipped, with a reason: a path `paths::components` refuses, a path stored twice (the first is
//! restored), a path under a file or symlink of the archive, a symlink with an empty target or one
//! with a NUL, a file or symlink at a path the archive also uses as a directory, and a hard link
//! whose file was not accepted before it. What remains is a tree: every entry's parent is a
//! directory, so the needed directories (ancestors of the entries and the directory nodes, parents
//! first) never name a place where the archive puts something else. A hard link whose file is not
//! selected is planned as a file (`copy`): it is restored as a copy of that file.

use super::paths::{components, split};
use super::patterns::Patterns;
use super::scratch::Scratch;
use crate::archive::{Node, NodeKind};
use crate::cache::Cache;
use crate::crypto::BlockId;
use crate::manifest::ArchiveRef;
use crate::reader::{self, NodeStream};
use crate::session::Session;
use anyhow::{anyhow, Result};
use std::cmp::Ordering;

/// What pass 1 found to restore. Files are restored in pass 2, from a second read of the
/// archive's metadata (`stored_meta`): `files` says which nodes, by their number in the archive.
#[derive(Default)]
pub(super) struct Planned {
    pub files: Bits,
    /// Files to restore (copies included) and their total size.
    pub count: u64,
    pub bytes: u64,
    /// Some hard link is restored as a copy (`Scratch::each_copy`).
    pub copies: bool,
    /// Some symlink, hard link or special file is restored after the files.
    pub others: bool,
}

/// A set of node numbers: one bit per node of the archive (1M entries: 125 KB).
#[derive(Default)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    fn set(&mut self, i: u64) {
        let (w, b) = ((i / 64) as usize, i % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << b;
    }

    pub fn get(&self, i: u64) -> bool {
        self.0.get((i / 64) as usize).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// Pass 1: reads archive `a` once, node by node, and plans what to restore into `db` (every
/// metadata block is kept there for pass 2). Each node skipped goes to `skip` with the reason.
/// Fails, before anything is written, on a pattern that matches nothing.
pub(super) fn read(
    session: &Session,
    cache: &Cache,
    a: &ArchiveRef,
    db: &Scratch,
    patterns: &[String],
    skip: &dyn Fn(&[u8], &str),
) -> Result<Planned> {
    let mut pats = Patterns::new(patterns)?;
    let mut planner = Planner::new(db);
    let mut out = Planned::default();
    let fetch = |id: &BlockId| -> Result<Vec<u8>> {
        let b = reader::fetch(session, id, &reader::locate(cache, id)?)?;
        db.put_meta(id, &b)?;
        Ok(b)
    };
    let (_, stream) = NodeStream::open(a, fetch)?;
    for (seq, node) in (0u64..).zip(stream) {
        let node = node?;
        if !pats.select(&node.path) {
            continue;
        }
        // A hard link whose file is not selected comes back as a copy of that file.
        let copy = node.kind == NodeKind::Hardlink && !pats.would_select(&node.target);
        if let Err(why) = planner.add(&node, copy)? {
            skip(&node.path, &why);
            continue;
        }
        if copy {
            db.add_copy(seq, &node)?;
            out.copies = true;
        } else if node.kind == NodeKind::File {
            out.files.set(seq);
            out.count += 1;
            out.bytes += node.size;
        } else {
            out.others |= node.kind != NodeKind::Dir;
            db.keep(seq, &node)?;
        }
    }
    pats.check_used()?;
    if out.copies {
        // The files copies are made of, wherever they are in the archive.
        let (_, stream) = NodeStream::open(a, |id: &BlockId| stored_meta(db, id))?;
        for node in stream {
            let node = node?;
            if node.kind == NodeKind::File && db.is_copied(&node.path)? {
                db.add_source(&node)?;
            }
        }
        db.each_copy(|_, source| {
            if let Some(s) = source {
                out.count += 1;
                out.bytes += s.size;
            }
            Ok(())
        })?;
    }
    db.done_writing()?;
    Ok(out)
}

/// A metadata block as pass 1 fetched it.
pub(super) fn stored_meta(db: &Scratch, id: &BlockId) -> Result<Vec<u8>> {
    db.meta(id)?.ok_or_else(|| anyhow!("metadata block {} is not in extract's plan", hex::encode(&id[..8])))
}

pub(super) struct Planner<'s> {
    db: &'s Scratch,
    /// The deepest directory certainly needed on the path of the last accepted entry (its parent,
    /// or itself if a directory), with where each of its ancestors' paths ends in it and its own
    /// length: a tree stored in path order finds an entry's ancestors here, without a lookup.
    chain: Vec<u8>,
    chain_ends: Vec<usize>,
    /// The greatest path accepted so far, in component order: a path beyond it is not stored yet,
    /// and nothing accepted lies under it (no lookup for either).
    max: Option<Vec<u8>>,
}

impl<'s> Planner<'s> {
    pub fn new(db: &'s Scratch) -> Planner<'s> {
        Planner { db, chain: Vec::new(), chain_ends: Vec::new(), max: None }
    }

    /// Decides for `node`, planned as a file if `copy`: `Ok(Err(why))` if it is skipped. An
    /// accepted node's kind and its missing ancestors are recorded.
    pub fn add(&mut self, node: &Node, copy: bool) -> Result<Result<(), String>> {
        let kind = if copy { NodeKind::File } else { node.kind };
        let comps = match components(&node.path) {
            Ok(c) => c,
            Err(why) => return Ok(Err(why.to_string())),
        };
        let path = &node.path[..];
        // Byte offsets of each ancestor's end in the stored path (the `/` after it).
        let ends: Vec<usize> = (0..path.len()).filter(|&i| path[i] == b'/').collect();
        let beyond = self.max.as_deref().is_none_or(|m| order(path, m) == Ordering::Greater);
        let known = self.ancestors(path, &ends)?;
        let escape = crate::query::escape;
        let reason = if comps.is_empty() && kind != NodeKind::Dir {
            Some(format!("the stored path names the target directory itself, which is not a {}", kind.name()))
        } else if !beyond && self.db.kind(path)?.is_some() {
            Some("the stored path appears more than once in the archive (the first is restored)".to_string())
        } else if let Err(e) = known {
            let k = self.db.kind(&path[..e])?.map_or("entry", |k| k.name());
            Some(format!("{} is a {k} in the archive, not a directory", escape(&path[..e])))
        } else if kind == NodeKind::Symlink && (node.target.is_empty() || node.target.contains(&0)) {
            Some("the symlink's stored target is empty or contains a NUL byte".to_string())
        } else if kind == NodeKind::Hardlink && self.db.kind(&node.target)? != Some(NodeKind::File) {
            Some(format!(
                "it is a hard link to {}, which is not a file restored before it",
                escape(&node.target)
            ))
        } else if kind != NodeKind::Dir && !beyond && self.db.is_needed(path)? {
            Some(format!(
                "the archive also has entries under it, so it must be a directory, not a {}",
                kind.name()
            ))
        } else {
            None
        };
        if let Some(r) = reason {
            return Ok(Err(r));
        }
        self.db.set_kind(path, kind)?;
        // Ancestors already needed have theirs needed too: only the missing tail is added.
        for &e in ends.iter().skip(known.unwrap_or(0)) {
            self.db.need(&path[..e], false)?;
        }
        let own = kind == NodeKind::Dir && !comps.is_empty();
        if own {
            self.db.need(path, true)?;
        }
        let deepest = if own { path.len() } else { ends.last().copied().unwrap_or(0) };
        self.chain.clear();
        self.chain.extend_from_slice(&path[..deepest]);
        self.chain_ends.clear();
        self.chain_ends.extend(ends.iter().copied().chain(own.then_some(path.len())));
        if beyond {
            self.max = Some(path.to_vec());
        }
        Ok(Ok(()))
    }

    /// Checks the ancestors of `path` (ending at `ends`) from the deepest up to the first one
    /// already needed as a directory, whose own ancestors were checked when it was added (so a
    /// tree of any depth is planned in time linear in its paths' lengths). `Ok(k)`: the first `k`
    /// ancestors are needed already; `Err(e)`: the ancestor ending at `e` is held as something
    /// other than a directory.
    fn ancestors(&self, path: &[u8], ends: &[usize]) -> Result<Result<usize, usize>> {
        let common = path.iter().zip(&self.chain).take_while(|(a, b)| a == b).count();
        for (i, &e) in ends.iter().enumerate().rev() {
            // The chain's ancestors are needed directories: nothing else can hold their paths.
            if self.chain_ends.get(i) == Some(&e) && e <= common {
                return Ok(Ok(i + 1));
            }
            if self.db.kind(&path[..e])?.is_some_and(|k| k != NodeKind::Dir) {
                return Ok(Err(e));
            }
            if self.db.is_needed(&path[..e])? {
                return Ok(Ok(i + 1));
            }
        }
        Ok(Ok(0))
    }
}

/// Stored paths in component order (`.`, the target itself, first): the order `create` stores.
fn order(a: &[u8], b: &[u8]) -> Ordering {
    split(a).cmp(&split(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(path: &[u8], kind: NodeKind) -> Node {
        Node { target: b"t".to_vec(), ..Node::new(path.to_vec(), kind) }
    }

    /// The skipped paths, and the needed directories (path, has a node).
    fn plan(nodes: &[Node]) -> (Vec<String>, Vec<(String, bool)>) {
        let db = Scratch::open(None).unwrap();
        let mut p = Planner::new(&db);
        let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        let mut skipped = Vec::new();
        for node in nodes {
            let copy = node.kind == NodeKind::Hardlink && node.target.starts_with(b"unselected");
            if p.add(node, copy).unwrap().is_err() {
                skipped.push(show(&node.path));
            }
        }
        let mut needed = Vec::new();
        db.each_needed(|path, restored| {
            needed.push((show(path), restored));
            Ok(())
        })
        .unwrap();
        (skipped, needed)
    }

    #[test]
    fn duplicates_conflicts_and_the_target_itself() {
        let nodes = [
            n(b".", NodeKind::Dir),
            n(b"a", NodeKind::File),
            n(b"a/b", NodeKind::File),
            n(b"d/e", NodeKind::File),
            n(b"d", NodeKind::File),
            n(b"d", NodeKind::Dir),
            n(b"d", NodeKind::Dir),
            n(b"l", NodeKind::Symlink),
            n(b"l/x/y", NodeKind::Dir),
            n(b".", NodeKind::File),
            Node { target: vec![], ..n(b"e", NodeKind::Symlink) },
            Node { target: b"a\0b".to_vec(), ..n(b"f", NodeKind::Symlink) },
        ];
        let (skipped, needed) = plan(&nodes);
        assert_eq!(skipped, ["a/b", "d", "d", "l/x/y", ".", "e", "f"]);
        assert_eq!(needed, [("d".to_string(), true)]);
    }

    #[test]
    fn out_of_order_and_deep_entries_are_checked_as_in_order_ones() {
        let nodes = [
            n(b"z/y/x", NodeKind::File),
            n(b"a", NodeKind::Dir),
            n(b"a/f", NodeKind::File),
            n(b"z/y", NodeKind::File),   // already a needed directory
            n(b"z/y/x", NodeKind::File), // stored twice, after a greater path
            n(b"a/f/g", NodeKind::File), // under a file, reached through the chain's miss
            n(b"h", NodeKind::Hardlink), // its target "t" is not a file
            Node { target: b"a/f".to_vec(), ..n(b"i", NodeKind::Hardlink) },
            Node { target: b"unselected".to_vec(), ..n(b"j", NodeKind::Hardlink) }, // a copy
            n(b"j/k", NodeKind::File),                                              // under the copy, a file
            n(b"a", NodeKind::File), // a needed directory, before the greatest path
        ];
        let (skipped, needed) = plan(&nodes);
        assert_eq!(skipped, ["z/y", "z/y/x", "a/f/g", "h", "j/k", "a"]);
        let needed: Vec<&str> = needed.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(needed, ["z", "z/y", "a"]);
    }
}
