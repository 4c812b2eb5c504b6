//! The sequential phases of `extract` around the parallel file restores: checking the targets
//! before anything is written, creating directories parents first, then symlinks, then directory
//! attributes deepest first. Everything goes through `beneath` (one `Cursor` per phase), so a
//! symlink in the target is never followed, and one where a directory goes is never replaced: the
//! directory is recorded as blocked, and every entry under it is skipped with a warning.

use super::attrs;
use super::beneath::{is, mkdir_at, readlink_at, stat_at, symlink_at, unlink_at, Beneath, Cursor, InWay};
use super::file::Failure;
use super::paths::{split, Entry};
use super::scratch::Scratch;
use super::ExtractOptions;
use crate::query::escape;
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;

/// Directories (stored paths) that cannot be used, and what is in their place.
pub(super) type BlockedDirs = HashMap<Vec<u8>, InWay>;

/// Before anything is written: without `resume`/`overwrite`, refuses if any file or symlink
/// target exists or a non-directory other than a symlink sits where a directory goes; with them,
/// refuses a directory where a file or symlink goes. A symlink where a directory goes is not
/// refused here: the entries under it are skipped later.
pub(super) fn check_targets(opts: &ExtractOptions, db: &Scratch) -> Result<()> {
    let Ok(fs) = Beneath::open(&opts.dir) else {
        return Ok(()); // nothing there yet (or unreadable: creating it will say so)
    };
    let mut cur = Cursor::new(&fs);
    // How many are in the way, and the first in path order (named in the error).
    let (mut count, mut first): (u64, Option<Vec<u8>>) = (0, None);
    let mut in_way = |path: &[u8]| {
        count += 1;
        if first.as_deref().is_none_or(|f| path < f) {
            first = Some(path.to_vec());
        }
    };
    db.each_needed(|path, _| {
        let comps = split(path);
        let (name, parent) = comps.split_last().expect("never the target itself");
        if let Ok(at) = cur.dir(parent) {
            if let Ok(Some(st)) = stat_at(at, name) {
                if !is(&st, libc::S_IFDIR) && !is(&st, libc::S_IFLNK) {
                    in_way(path);
                }
            }
        }
        Ok(())
    })?;
    let replace = opts.resume || opts.overwrite;
    db.each_entry(|path, kind| {
        let comps = split(path);
        let Some((name, parent)) = comps.split_last() else { return Ok(()) };
        let Ok(at) = cur.dir(parent) else { return Ok(()) };
        match stat_at(at, name) {
            Ok(Some(st)) if is(&st, libc::S_IFDIR) && replace => bail!(
                "{} is a directory where archive {:?} has a {} ({}): move it away, or extract elsewhere",
                opts.dir.join(std::ffi::OsStr::from_bytes(path)).display(),
                opts.name,
                kind.name(),
                escape(path)
            ),
            Ok(Some(_)) => in_way(path),
            _ => {}
        }
        Ok(())
    })?;
    let Some(first) = first.filter(|_| !replace && opts.keep == super::Keep::Nothing) else { return Ok(()) };
    let (n, verb) =
        if count == 1 { ("1 file".to_string(), "exists") } else { (format!("{count} files"), "exist") };
    bail!(
        "{n} to restore already {verb} under {} (first: {}): pass --resume to continue an interrupted extract, or --overwrite to replace them",
        opts.dir.display(),
        escape(&first)
    )
}

/// Creates the needed directories, parents first; with `replace`, a non-directory other than a
/// symlink in the way is removed first. A directory the archive restores is made
/// owner-writable until its mode is set last. Returns the directories that could not be used.
pub(super) fn make_dirs(fs: &Beneath, db: &Scratch, replace: bool) -> Result<BlockedDirs> {
    let mut blocked = BlockedDirs::new();
    let mut cur = Cursor::new(fs);
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    db.each_needed(|path, restored| {
        if super::paths::blocked_at(&blocked, path).is_some() {
            return Ok(());
        }
        let fail = |what: &str, e: io::Error| {
            anyhow!(e).context(format!("cannot {what} directory {}", escape(path)))
        };
        let comps = split(path);
        let (name, parent) = comps.split_last().expect("never the target itself");
        let at = match cur.dir(parent) {
            Ok(at) => at,
            Err(b) => match b.why {
                InWay::Io(e) => return Err(fail("open the parent of", e)),
                why => {
                    blocked.insert(comps[..=b.depth].join(&b'/'), why);
                    return Ok(());
                }
            },
        };
        match stat_at(at, name).map_err(|e| fail("inspect", e))? {
            Some(st) if is(&st, libc::S_IFDIR) => {
                if restored && st.st_mode & 0o700 != 0o700 && st.st_uid == uid {
                    let h = attrs::open(at, name, true).map_err(|e| fail("open", e))?;
                    attrs::chmod(&h, st.st_mode & 0o7777 | 0o700)
                        .map_err(|e| fail("change the mode of", e))?;
                }
            }
            Some(st) if is(&st, libc::S_IFLNK) => {
                blocked.insert(path.to_vec(), InWay::Symlink);
            }
            Some(_) if !replace => {
                blocked.insert(path.to_vec(), InWay::NotDir);
            }
            found => {
                if found.is_some() {
                    unlink_at(at, name).map_err(|e| fail("remove a file in the way of", e))?;
                }
                match mkdir_at(at, name, 0o777) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        blocked.insert(path.to_vec(), InWay::Changed);
                    }
                    Err(e) => return Err(fail("create", e)),
                }
            }
        }
        Ok(())
    })?;
    Ok(blocked)
}

/// Creates the symlink (its own name: whatever non-directory is there is removed, never
/// followed), or with `resume` keeps one that already points where it should. `Ok(Some(note))`:
/// restored without its owner.
pub(super) fn restore_symlink(
    cur: &mut Cursor,
    e: &Entry,
    is_root: bool,
    resume: bool,
) -> Result<Option<String>, Failure> {
    let (parent, name) = e.split().expect("a symlink is never the target itself");
    let at = cur.dir(&parent).map_err(|b| Failure::blocked(&e.comps(), b))?;
    let local = |what: &str, err: io::Error| {
        Failure::Local(anyhow!(err).context(format!("cannot {what} symlink {}", escape(&e.node.path))))
    };
    let keep = match stat_at(at, name).map_err(|err| local("inspect", err))? {
        Some(st) if is(&st, libc::S_IFDIR) => {
            return Err(Failure::Skip("a directory is in its place in the target".into()))
        }
        Some(st)
            if is(&st, libc::S_IFLNK)
                && resume
                && readlink_at(at, name).ok().as_deref() == Some(&e.node.target[..]) =>
        {
            true
        }
        Some(_) => {
            unlink_at(at, name).map_err(|err| local("replace", err))?;
            false
        }
        None => false,
    };
    if !keep {
        match symlink_at(&e.node.target, at, name) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Failure::Skip(
                    "something appeared in its place in the target while extract ran".into(),
                ))
            }
            Err(err) => return Err(local("create", err)),
        }
    }
    let owner = attrs::set_symlink(at, name, e.node, is_root).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::Other => {
            Failure::Skip(format!("it {}", InWay::Changed.describe()))
        }
        _ => local("set the owner or time of", err),
    })?;
    Ok(owner.map(|err| attrs::owner_note(e.node, &err)))
}

/// Owner (as root), mode and times of a restored directory, through a handle on it.
pub(super) fn set_dir_attrs(
    cur: &mut Cursor,
    fs: &Beneath,
    e: &Entry,
    is_root: bool,
) -> Result<Option<String>, Failure> {
    let local = |err: io::Error| {
        Failure::Local(
            anyhow!(err).context(format!("cannot set the attributes of directory {}", escape(&e.node.path))),
        )
    };
    let h = match e.split() {
        None => attrs::open(fs.root(), b".", true),
        Some((parent, name)) => {
            let at = cur.dir(&parent).map_err(|b| Failure::blocked(&e.comps(), b))?;
            attrs::open(at, name, true)
        }
    };
    let h = match h {
        Ok(h) => h,
        Err(err) if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR | libc::ENOENT)) => {
            return Err(Failure::Skip(format!("it {}", InWay::Changed.describe())))
        }
        Err(err) => return Err(local(err)),
    };
    attrs::set(&h, e.node, is_root).map_err(local)
}
