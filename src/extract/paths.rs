//! Stored paths as extract reads them: which it accepts (`components`), their components, and
//! the directories found unusable in the target (`blocked_at`). What to restore is `plan.rs`.
//!
//! A stored path is used only if it is `.` (the target directory itself, for a directory) or
//! relative names joined by single `/`: no empty component (leading, trailing or doubled `/`), no
//! `.` or `..` component, no NUL. An archive made by `create` never holds anything else; anything
//! else is skipped with a reason, as is a path stored twice (the first is restored), a path under
//! a file or symlink of the archive, a symlink with an empty target or one with a NUL, and a file or symlink at a path the archive also uses as a
//! directory (`plan.rs` decides those).

use crate::archive::Node;
use std::collections::HashMap;

/// One entry to restore: its node (whose path the plan checked).
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

/// The components of a path `components` accepted.
pub(super) fn split(path: &[u8]) -> Vec<&[u8]> {
    match path {
        b"." => Vec::new(),
        p => p.split(|&b| b == b'/').collect(),
    }
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

/// The shortest path among `path` and its ancestors (stored form) that `blocked` holds.
pub(super) fn blocked_at<'b, V>(blocked: &'b HashMap<Vec<u8>, V>, path: &[u8]) -> Option<(&'b [u8], &'b V)> {
    if blocked.is_empty() {
        return None;
    }
    let ends = (0..path.len()).filter(|&i| path[i] == b'/').chain(std::iter::once(path.len()));
    ends.filter_map(|e| blocked.get_key_value(&path[..e])).map(|(k, v)| (&k[..], v)).next()
}

#[cfg(test)]
mod tests {
    use super::*;

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
