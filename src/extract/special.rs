//! Restoring hard links, FIFOs and device nodes, after the files (a hard link needs its file
//! whole, with its attributes). As bsdtar does: device nodes only as root (without root each is
//! skipped with a warning), FIFOs for anyone. Everything goes through `beneath`: the new name is
//! made in its parent's handle, a hard link's file is reached the same way and never through a
//! symlink, and attributes are set through an `O_PATH` handle checked to be the kind made (a
//! device is never opened).

use super::attrs;
use super::beneath::{is, link_at, mknod_at, open_at, stat_at, stat_fd, unlink_at, Beneath, Cursor};
use super::file::Failure;
use super::paths::{components, Entry};
use crate::archive::NodeKind;
use crate::query::escape;
use anyhow::anyhow;
use std::io;
use std::os::fd::AsFd;

/// Replaces what is at the entry's name (never a directory; with `resume`, `keep` says whether
/// what is there is already right), or says what to skip.
fn clear(
    at: std::os::fd::BorrowedFd,
    name: &[u8],
    keep: impl Fn(&libc::stat) -> bool,
) -> Result<bool, Failure> {
    let local = |err: io::Error| Failure::Local(anyhow!(err).context("cannot replace what is in its place"));
    match stat_at(at, name).map_err(local)? {
        Some(st) if is(&st, libc::S_IFDIR) => {
            Err(Failure::Skip("a directory is in its place in the target".into()))
        }
        Some(st) if keep(&st) => Ok(true),
        Some(_) => unlink_at(at, name).map(|()| false).map_err(local),
        None => Ok(false),
    }
}

/// Makes the hard link `e` to its file (restored earlier under the same target). With
/// `resume`, a name that is already that file is kept.
pub(super) fn restore_hardlink(
    fs: &Beneath,
    cur: &mut Cursor,
    e: &Entry,
    resume: bool,
) -> Result<Option<String>, Failure> {
    let target =
        components(&e.node.target).map_err(|why| Failure::Skip(format!("its file's path: {why}")))?;
    let (tname, tparent) =
        target.split_last().ok_or_else(|| Failure::Skip("it links to the target directory".into()))?;
    let from = fs.dir(tparent).map_err(|b| Failure::blocked(&target, b))?;
    let Some(file) = stat_at(from.as_fd(), tname).ok().flatten().filter(|st| is(st, libc::S_IFREG)) else {
        return Err(Failure::Skip(format!("its file {} was not restored", escape(&e.node.target))));
    };
    let (parent, name) = e.split().expect("a hard link is never the target itself");
    let at = cur.dir(&parent).map_err(|b| Failure::blocked(&e.comps(), b))?;
    let same = |st: &libc::stat| resume && st.st_dev == file.st_dev && st.st_ino == file.st_ino;
    if clear(at, name, same)? {
        return Ok(None);
    }
    match link_at(from.as_fd(), tname, at, name) {
        Ok(()) => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            Err(Failure::Skip("something appeared in its place in the target while extract ran".into()))
        }
        Err(err) => Err(Failure::Local(
            anyhow!(err).context(format!("cannot create hard link {}", escape(&e.node.path))),
        )),
    }
}

/// Makes the FIFO or device node `e` and sets its owner (as root), mode and times.
pub(super) fn restore_special(
    cur: &mut Cursor,
    e: &Entry,
    is_root: bool,
    resume: bool,
) -> Result<Option<String>, Failure> {
    let kind = match e.node.kind {
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::CharDev => libc::S_IFCHR,
        _ => libc::S_IFBLK,
    };
    if kind != libc::S_IFIFO && !is_root {
        return Err(Failure::Skip(format!("it is a {}, and only root can make one", e.node.kind.name())));
    }
    let (parent, name) = e.split().expect("a special file is never the target itself");
    let at = cur.dir(&parent).map_err(|b| Failure::blocked(&e.comps(), b))?;
    let local = |what: &str, err: io::Error| {
        Failure::Local(anyhow!(err).context(format!(
            "cannot {what} {} {}",
            e.node.kind.name(),
            escape(&e.node.path)
        )))
    };
    let rdev = e.node.rdev;
    let same =
        |st: &libc::stat| resume && is(st, kind) && (kind == libc::S_IFIFO || st.st_rdev as u64 == rdev);
    if !clear(at, name, same)? {
        match mknod_at(at, name, kind | 0o600, rdev) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Failure::Skip(
                    "something appeared in its place in the target while extract ran".into(),
                ))
            }
            Err(err) => return Err(local("create", err)),
        }
    }
    let fd = open_at(at, name, libc::O_PATH, 0).map_err(|err| local("open", err))?;
    if stat_fd(fd.as_fd()).map_err(|err| local("inspect", err))?.st_mode & libc::S_IFMT != kind {
        return Err(Failure::Skip("it was replaced by something else while extract ran".into()));
    }
    attrs::set(&attrs::Handle { fd, path_only: true }, e.node, is_root)
        .map_err(|err| local("set the attributes of", err))
}
