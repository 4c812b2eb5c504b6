//! The paths given to `create`, made into the list the walk stores, so that every file is stored
//! once, under one name.
//!
//! A path is read as given: the system resolves it, following symlinks on the way, so a trailing
//! `/` or `/.` after a symlink reaches the directory it points to, as `ls -ld link/` does. It is
//! stored under its lexical normal form (`archive_path`): relative, without `.` or empty
//! components or a trailing `/`, each `..` removing the name before it (`/x/./t//` is `x/t`,
//! `a/../b` is `b`, `../b` is `b`; GNU tar strips the same leading `/` and `../`). For that name to
//! say where the data came from, a `..` must not follow a symlink: `link/../f` reaches `f` beside
//! the directory `link` points to, not beside `link`, so such a path is refused (give it without
//! `..`). Then each file is stored once:
//! - a path given again (the same stored name, the same file) is skipped with a notice;
//! - a path inside the tree of another given directory (`/x/t/sub` with `/x/t`, in either order)
//!   is skipped with a notice, if the walk of that directory reaches that very file;
//! - two different files that would be stored under one name (`t` and `../t`), or a path whose
//!   stored name lies inside another one's tree where the walk finds something else (`lnk/sub`
//!   beside the symlink `lnk`), make create refuse before anything is stored (one line, exit 1):
//!   an archive holds each path once.

use crate::progress::{Event, Progress};
use anyhow::{bail, Result};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// One path to walk, and the name it is stored under.
pub struct Operand {
    pub path: PathBuf,
    pub stored: Vec<u8>,
}

struct Given<'a> {
    path: &'a Path,
    stored: Vec<u8>,
    /// The stored name's components (none for `.`).
    comps: Vec<&'a [u8]>,
    id: (u64, u64),
    dir: bool,
}

/// The paths to walk, in the order given, each file once (see the module comment).
pub fn plan(paths: &[PathBuf], progress: Progress) -> Result<Vec<Operand>> {
    let mut given = Vec::with_capacity(paths.len());
    for p in paths {
        let md = match fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) => bail!("cannot archive {}: {e}; nothing was stored", p.display()),
        };
        check_dotdot(p)?;
        let stored = archive_path(p);
        let comps = normal_components(p);
        given.push(Given { path: p, stored, comps, id: (md.dev(), md.ino()), dir: md.is_dir() });
    }
    let mut keep = vec![true; given.len()];
    for (j, inner) in given.iter().enumerate() {
        for (i, outer) in given.iter().enumerate() {
            if i == j {
                continue;
            }
            let (o, n) = (outer.path.display(), inner.path.display());
            let name = crate::query::escape(&inner.stored);
            if outer.comps == inner.comps {
                if i > j {
                    continue; // the first one given is kept
                }
                if outer.id != inner.id {
                    bail!(
                        "{o} and {n} are different files that would both be stored as {name}: archive them in separate archives; nothing was stored"
                    );
                }
                if keep[j] {
                    progress(Event::Notice(format!("{n} was given more than once: stored once, as {name}")));
                }
                keep[j] = false;
            } else if outer.comps.len() < inner.comps.len() && inner.comps.starts_with(&outer.comps) {
                if !walk_reaches(outer, inner) {
                    bail!(
                        "{n} would be stored as {name}, inside the tree of {o}, but {o} holds something else there (or a symlink on the way): archive them in separate archives; nothing was stored"
                    );
                }
                if keep[j] {
                    progress(Event::Notice(format!("{n} is inside {o}, also given: stored once, as {name}")));
                }
                keep[j] = false;
            }
        }
    }
    let ops = given.into_iter().zip(keep).filter(|(_, k)| *k);
    Ok(ops.map(|(g, _)| Operand { path: g.path.to_path_buf(), stored: g.stored }).collect())
}

/// Whether the walk of `outer` (a directory, its entries read without following symlinks) stores
/// exactly the file `inner` names: every directory on the way is a directory, not a symlink.
fn walk_reaches(outer: &Given, inner: &Given) -> bool {
    if !outer.dir {
        return false;
    }
    let rest = &inner.comps[outer.comps.len()..];
    let mut p = outer.path.to_path_buf();
    for (k, c) in rest.iter().enumerate() {
        p.push(OsStr::from_bytes(c));
        let Ok(md) = fs::symlink_metadata(&p) else { return false };
        if k + 1 == rest.len() {
            return (md.dev(), md.ino()) == inner.id;
        }
        if !md.is_dir() {
            return false;
        }
    }
    false
}

/// The components of the stored name, as `archive_path` makes it.
fn normal_components(p: &Path) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.as_bytes()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts
}

/// Refuses a path in which a `..` removes a symlink's name: the system resolves the `..` from
/// where the symlink points, so the stored name would not say where the data came from.
fn check_dotdot(p: &Path) -> Result<()> {
    let mut prefix = PathBuf::new();
    // The path up to each name a later `..` may remove.
    let mut names: Vec<PathBuf> = Vec::new();
    for c in p.components() {
        prefix.push(c.as_os_str());
        match c {
            Component::Normal(_) => names.push(prefix.clone()),
            Component::ParentDir => {
                let Some(name) = names.pop() else { continue };
                if fs::symlink_metadata(&name).is_ok_and(|m| m.file_type().is_symlink()) {
                    bail!(
                        "{}: the `..` after the symlink {} leads beside where the symlink points, not beside the symlink, so the name stored would be wrong: give the path without `..`; nothing was stored",
                        p.display(),
                        name.display()
                    );
                }
            }
            _ => names.clear(),
        }
    }
    Ok(())
}

/// The path as stored: relative and normalised lexically (`/home/a` → `home/a`, `a/../b` → `b`,
/// `../x` → `x`, `.` → `.`), so it can never point outside the directory it is restored into.
pub fn archive_path(p: &Path) -> Vec<u8> {
    let parts = normal_components(p);
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_the_stored_name() {
        for p in ["/x/./t//sub/", "a/../b", "../x", ".", "/", "a/b/../../c/d"] {
            let joined = normal_components(Path::new(p)).join(&b'/');
            let stored = archive_path(Path::new(p));
            let want: &[u8] = if joined.is_empty() { b"." } else { &joined };
            assert_eq!(want, &stored[..], "{p}");
        }
    }
}
