//! Which of the selected nodes extract restores, before anything is looked at on disk.
//!
//! A stored path is used only if it is `.` (the target directory itself, for a directory) or
//! relative names joined by single `/`: no empty component (leading, trailing or doubled `/`), no
//! `.` or `..` component, no NUL. An archive made by `create` never holds anything else; anything
//! else is skipped with a reason, as is a path stored twice (the first is restored), a path under
//! a file or symlink of the archive, a symlink with an empty target or one with a NUL, and a file or symlink at a path the archive also uses as a
//! directory. What remains is a tree: every entry's parent is a directory, so `needed` (every
//! directory to create: ancestors of the entries and the directory nodes, parents first) never
//! names a place where the archive puts something else. A hard link is restored as a link only to
//! a file restored before it (`hardlinks`); `extract` first turns a link whose file is not
//! selected into a copy of that file (`copies`).

use crate::archive::{Node, NodeKind};
use std::collections::HashMap;

/// One entry to restore: its node (whose path `plan` checked).
pub(super) struct Entry<'a> {
    pub node: &'a Node,
}

impl<'a> Entry<'a> {
    /// Its path's components below the target (none for the target itself). Made when needed,
    /// not kept: a tree of depth d would otherwise hold d² components.
    pub fn comps(&self) -> Vec<&'a [u8]> {
        split(&self.node.path)
    }

    /// The parent directory's components and the entry's own name (`None` for the target itself).
    pub fn split(&self) -> Option<(Vec<&'a [u8]>, &'a [u8])> {
        let mut comps = self.comps();
        let name = comps.pop()?;
        Some((comps, name))
    }
}

/// A directory to create (or find) under the target.
pub(super) struct Needed<'a> {
    /// The stored path (a prefix of some entry's path, checked by `plan`).
    pub path: &'a [u8],
    /// The archive has a node for it (its attributes are set at the end).
    pub restored: bool,
}

impl<'a> Needed<'a> {
    pub fn comps(&self) -> Vec<&'a [u8]> {
        split(self.path)
    }
}

/// The components of a path `components` accepted.
pub(super) fn split(path: &[u8]) -> Vec<&[u8]> {
    match path {
        b"." => Vec::new(),
        p => p.split(|&b| b == b'/').collect(),
    }
}

#[derive(Default)]
pub(super) struct Plan<'a> {
    pub files: Vec<Entry<'a>>,
    pub links: Vec<Entry<'a>>,
    /// Hard links, each to a file in `files`.
    pub hardlinks: Vec<Entry<'a>>,
    /// FIFOs and device nodes.
    pub specials: Vec<Entry<'a>>,
    /// Directory nodes, in stored order (parents first).
    pub dirs: Vec<Entry<'a>>,
    pub needed: Vec<Needed<'a>>,
    /// Nodes not restored, with the reason.
    pub skipped: Vec<(&'a Node, String)>,
}

/// The components of a stored path below the target (none for `.`), or why it is refused.
pub(super) fn components(stored: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if stored == b"." {
        return Ok(Vec::new());
    }
    if stored.is_empty() {
        return Err("the stored path is empty");
    }
    if stored.contains(&0) {
        return Err("the stored path contains a NUL byte");
    }
    if stored[0] == b'/' {
        return Err("the stored path is absolute");
    }
    let comps: Vec<&[u8]> = stored.split(|&b| b == b'/').collect();
    for c in &comps {
        match *c {
            b"" => return Err("the stored path has an empty component (a doubled or trailing '/')"),
            b"." => return Err("the stored path has a '.' component"),
            b".." => return Err("the stored path has a '..' component and could leave the target directory"),
            c if c.len() > NAME_MAX => return Err("a name in the stored path is longer than 255 bytes"),
            _ => {}
        }
    }
    Ok(comps)
}

/// The longest name Linux file systems take.
const NAME_MAX: usize = 255;

fn kind_name(k: NodeKind) -> &'static str {
    k.name()
}

/// For each selected hard link whose file is not selected: a copy of that file's node at the
/// link's path, restored as a file (`with_copies` puts it in the link's place).
pub(super) fn copies(all: &[Node], selected: &[&Node]) -> Vec<Node> {
    let chosen: std::collections::HashSet<&[u8]> = selected.iter().map(|n| &n.path[..]).collect();
    let mut wanted: HashMap<&[u8], Vec<&Node>> = HashMap::new();
    for n in selected.iter().filter(|n| n.kind == NodeKind::Hardlink && !chosen.contains(&n.target[..])) {
        wanted.entry(&n.target[..]).or_default().push(n);
    }
    if wanted.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for file in all.iter().filter(|n| n.kind == NodeKind::File) {
        for link in wanted.remove(&file.path[..]).unwrap_or_default() {
            out.push(Node { path: link.path.clone(), ..file.clone() });
        }
    }
    out
}

/// `selected` with each hard link that has a copy (`copies`) replaced by it.
pub(super) fn with_copies<'a>(selected: Vec<&'a Node>, copies: &'a [Node]) -> Vec<&'a Node> {
    if copies.is_empty() {
        return selected;
    }
    let by_path: HashMap<&[u8], &Node> = copies.iter().map(|c| (&c.path[..], c)).collect();
    selected
        .into_iter()
        .map(|n| match n.kind {
            NodeKind::Hardlink => by_path.get(&n.path[..]).copied().unwrap_or(n),
            _ => n,
        })
        .collect()
}

/// Checks the ancestors of `path` (ending at `ends`) from the deepest up to the first one already
/// needed as a directory, whose own ancestors were checked when it was added (so a tree of any
/// depth is planned in time linear in its paths' lengths). `Ok(k)`: the first `k` ancestors are
/// needed already; `Err(e)`: the ancestor ending at `e` is held as something other than a
/// directory.
fn ancestors(
    path: &[u8],
    ends: &[usize],
    kinds: &HashMap<&[u8], NodeKind>,
    dirs: &HashMap<&[u8], usize>,
) -> Result<usize, usize> {
    for (i, &e) in ends.iter().enumerate().rev() {
        if kinds.get(&path[..e]).is_some_and(|k| *k != NodeKind::Dir) {
            return Err(e);
        }
        if dirs.contains_key(&path[..e]) {
            return Ok(i + 1);
        }
    }
    Ok(0)
}

/// Sorts the selected nodes (in stored order) into what to restore and what to skip.
pub(super) fn plan<'a>(nodes: &[&'a Node]) -> Plan<'a> {
    let mut plan = Plan::default();
    let mut kinds: HashMap<&[u8], NodeKind> = HashMap::new();
    // Every directory path in `needed`, with its index there.
    let mut dirs: HashMap<&[u8], usize> = HashMap::new();
    for &node in nodes {
        let comps = match components(&node.path) {
            Ok(c) => c,
            Err(why) => {
                plan.skipped.push((node, why.to_string()));
                continue;
            }
        };
        // Byte offsets of each ancestor's end in the stored path (the `/` after it).
        let ends: Vec<usize> = (0..node.path.len()).filter(|&i| node.path[i] == b'/').collect();
        let known = ancestors(&node.path, &ends, &kinds, &dirs);
        let reason = if comps.is_empty() && node.kind != NodeKind::Dir {
            Some(format!(
                "the stored path names the target directory itself, which is not a {}",
                kind_name(node.kind)
            ))
        } else if kinds.contains_key(&node.path[..]) {
            Some("the stored path appears more than once in the archive (the first is restored)".to_string())
        } else if let Err(e) = known {
            let k = kinds[&node.path[..e]];
            Some(format!(
                "{} is a {} in the archive, not a directory",
                crate::query::escape(&node.path[..e]),
                kind_name(k)
            ))
        } else if node.kind == NodeKind::Symlink && (node.target.is_empty() || node.target.contains(&0)) {
            Some("the symlink's stored target is empty or contains a NUL byte".to_string())
        } else if node.kind == NodeKind::Hardlink && kinds.get(&node.target[..]) != Some(&NodeKind::File) {
            Some(format!(
                "it is a hard link to {}, which is not a file restored before it",
                crate::query::escape(&node.target)
            ))
        } else if node.kind != NodeKind::Dir && dirs.contains_key(&node.path[..]) {
            Some(format!(
                "the archive also has entries under it, so it must be a directory, not a {}",
                kind_name(node.kind)
            ))
        } else {
            None
        };
        if let Some(r) = reason {
            plan.skipped.push((node, r));
            continue;
        }
        kinds.insert(&node.path, node.kind);
        // Ancestors already needed have theirs needed too: only the missing tail is added.
        for &e in ends.iter().skip(known.unwrap_or(0)) {
            let path = &node.path[..e];
            dirs.insert(path, plan.needed.len());
            plan.needed.push(Needed { path, restored: false });
        }
        let entry = Entry { node };
        match node.kind {
            NodeKind::Dir => {
                if !comps.is_empty() {
                    let at = *dirs.entry(&node.path).or_insert_with(|| {
                        plan.needed.push(Needed { path: &node.path, restored: false });
                        plan.needed.len() - 1
                    });
                    plan.needed[at].restored = true;
                }
                plan.dirs.push(entry);
            }
            NodeKind::Symlink => plan.links.push(entry),
            NodeKind::File => plan.files.push(entry),
            NodeKind::Hardlink => plan.hardlinks.push(entry),
            NodeKind::Fifo | NodeKind::CharDev | NodeKind::BlockDev => plan.specials.push(entry),
        }
    }
    plan
}

/// The shortest path among `path` and its ancestors (stored form) that `blocked` holds.
pub(super) fn blocked_at<'b, V>(blocked: &'b HashMap<Vec<u8>, V>, path: &[u8]) -> Option<(&'b [u8], &'b V)> {
    if blocked.is_empty() {
        return None;
    }
    let ends = (0..path.len()).filter(|&i| path[i] == b'/').chain(std::iter::once(path.len()));
    ends.filter_map(|e| blocked.get_key_value(&path[..e])).map(|(k, v)| (&k[..], v)).next()
}

/// Names of directories seen, for tests of `plan`.
#[cfg(test)]
fn needed_paths(p: &Plan) -> Vec<(String, bool)> {
    p.needed.iter().map(|n| (String::from_utf8_lossy(n.path).into_owned(), n.restored)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(path: &[u8], kind: NodeKind) -> Node {
        Node { target: b"t".to_vec(), ..Node::new(path.to_vec(), kind) }
    }

    #[test]
    fn only_plain_relative_paths_are_accepted() {
        assert_eq!(components(b".").unwrap(), Vec::<&[u8]>::new());
        assert_eq!(components(b"a/b c/d").unwrap(), vec![&b"a"[..], b"b c", b"d"]);
        assert_eq!(components(b"...").unwrap(), vec![&b"..."[..]]);
        for bad in
            [&b""[..], b"/a", b"a//b", b"a/", b"./a", b"a/.", b"a/./b", b"..", b"a/../b", b"a\0b", b"//"]
        {
            assert!(components(bad).is_err(), "{:?} accepted", String::from_utf8_lossy(bad));
        }
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
        let refs: Vec<&Node> = nodes.iter().collect();
        let p = plan(&refs);
        let skipped: Vec<&[u8]> = p.skipped.iter().map(|(n, _)| &n.path[..]).collect();
        assert_eq!(skipped, vec![&b"a/b"[..], b"d", b"d", b"l/x/y", b".", b"e", b"f"]);
        assert_eq!(needed_paths(&p), vec![("d".to_string(), true)]);
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.dirs.len(), 2, "the target itself and d");
        assert_eq!(p.links.len(), 1);
    }

    #[test]
    fn blocked_finds_the_shortest_blocked_ancestor() {
        let mut b = HashMap::new();
        b.insert(b"a/b".to_vec(), 1);
        b.insert(b"a/b/c".to_vec(), 2);
        assert_eq!(blocked_at(&b, b"a/b/c/d").map(|(k, v)| (k.to_vec(), *v)), Some((b"a/b".to_vec(), 1)));
        assert_eq!(blocked_at(&b, b"a/b").map(|(_, v)| *v), Some(1));
        assert!(blocked_at(&b, b"a/bc").is_none());
        assert!(blocked_at(&b, b"a").is_none());
    }
}
