//! Owner, mode and times of restored entries, set through a handle on the entry itself, so they
//! can only ever land on the entry extract made or opened without following a symlink. A symlink
//! has no handle to open for reading: its owner is set through an `O_PATH` handle checked to be a
//! symlink, its times by `utimensat(AT_SYMLINK_NOFOLLOW)` on its name in its parent's handle.
//!
//! As bsdtar does: the owner is restored only when running as root, and the setuid and setgid bits
//! only when the owner was restored (as root); without root they are left off silently, and when
//! root cannot set the owner they are left off and the caller is told (a warning: the entry is
//! restored incompletely). The sticky bit and the permission bits are always restored. The owner is
//! set before the mode, since changing the owner clears setuid/setgid.
//!
//! Extended attributes (POSIX ACLs among them) are set after the owner and mode (a change of
//! owner clears `security.capability`; an ACL's mask is the mode's group bits, as stored), each
//! through the same handle. One the file system or the user's privileges refuse is left off and
//! the caller is told in a warning naming it: the entry itself is restored. Without root only
//! `user.*` attributes and ACLs are restored, as rsync does: the others (`trusted.*`,
//! `security.*`) are root's, and trying them would warn about every file.

use super::beneath::{open_at, stat_fd, utimes_at};
use crate::archive::Node;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// A handle to set attributes through: a normal descriptor, or an `O_PATH` one where the entry
/// cannot be opened for reading (a directory without read permission).
pub(super) struct Handle {
    pub fd: OwnedFd,
    pub path_only: bool,
}

/// Opens `name` in `at` to set its attributes, not following a symlink: `dir` says which kind it
/// must be (anything else fails with `ENOTDIR` or `ELOOP`).
pub(super) fn open(at: BorrowedFd, name: &[u8], dir: bool) -> io::Result<Handle> {
    let kind = if dir { libc::O_DIRECTORY } else { 0 };
    match open_at(at, name, libc::O_RDONLY | libc::O_NONBLOCK | kind, 0) {
        Ok(fd) => Ok(Handle { fd, path_only: false }),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            // O_PATH with O_NOFOLLOW opens a symlink itself: refuse one (swapped in meanwhile).
            let fd = open_at(at, name, libc::O_PATH | kind, 0)?;
            if stat_fd(fd.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            Ok(Handle { fd, path_only: true })
        }
        Err(e) => Err(e),
    }
}

/// Sets owner (as root), mode, extended attributes and mtime (atime too; not for a `partial`
/// file) through `h`. `Ok(Some(note))`: what could not be restored (the owner, so the
/// setuid/setgid bits were left off too; extended attributes), for a warning.
pub(super) fn set(h: &Handle, node: &Node, is_root: bool) -> io::Result<Option<String>> {
    let mut mode = node.mode & 0o7777;
    let mut owner_failed = None;
    if is_root {
        if let Err(e) = chown(h, node.uid, node.gid) {
            owner_failed = Some(e);
        }
    }
    if !is_root || owner_failed.is_some() {
        mode &= !0o6000;
    }
    chmod(h, mode)?;
    let mut notes: Vec<String> = owner_failed.iter().map(|e| owner_note(node, e)).collect();
    let refused: Vec<String> = node
        .xattrs
        .iter()
        .filter(|(name, _)| is_root || name.starts_with(b"user.") || crate::fsmeta::is_acl(name))
        .filter_map(|(name, value)| {
            set_xattr(h, name, value).err().map(|e| format!("{} ({e})", String::from_utf8_lossy(name)))
        })
        .collect();
    if !refused.is_empty() {
        notes.push(format!(
            "cannot restore its extended attribute(s) {}; restored without them",
            refused.join(", ")
        ));
    }
    // A file the archive holds only a prefix of keeps the time it was written as its mtime: with
    // the original one, tools that compare mtimes (make, rsync) would take it for complete.
    if !node.partial {
        utimes(h, node.mtime, node.mtime_ns)?;
    }
    Ok((!notes.is_empty()).then(|| notes.join("; ")))
}

/// Sets one extended attribute through `h` (through its /proc link for an `O_PATH` handle).
fn set_xattr(h: &Handle, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let (ptr, len) = (value.as_ptr() as *const libc::c_void, value.len());
    if !h.path_only {
        // SAFETY: a valid descriptor, a NUL-terminated name and `len` readable bytes.
        return ok(unsafe { libc::fsetxattr(h.fd.as_raw_fd(), name.as_ptr(), ptr, len, 0) });
    }
    // SAFETY: a valid NUL-terminated path and name, and `len` readable bytes.
    ok(unsafe { libc::setxattr(proc_path(h).as_ptr(), name.as_ptr(), ptr, len, 0) })
}

/// Owner (as root) and times of the symlink `name` in `at`, itself. The owner is set through an
/// `O_PATH` handle checked to be a symlink, so it cannot land on anything swapped in since.
pub(super) fn set_symlink(
    at: BorrowedFd,
    name: &[u8],
    node: &Node,
    is_root: bool,
) -> io::Result<Option<io::Error>> {
    let mut owner_failed = None;
    if is_root {
        let fd = open_at(at, name, libc::O_PATH, 0)?;
        if stat_fd(fd.as_fd())?.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Err(io::Error::other("it was replaced by something else while extract ran"));
        }
        owner_failed = chown(&Handle { fd, path_only: true }, node.uid, node.gid).err();
    }
    utimes_at(at, name, node.mtime, node.mtime_ns)?;
    Ok(owner_failed)
}

/// The warning for an entry whose owner could not be restored (as root).
pub(super) fn owner_note(node: &Node, e: &io::Error) -> String {
    format!(
        "cannot restore its owner {}:{} ({e}); restored without it and without setuid/setgid bits",
        node.uid, node.gid
    )
}

fn ok(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `/proc/self/fd/N`: the entry an `O_PATH` handle holds (a magic link to that very inode).
fn proc_path(h: &Handle) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/self/fd/{}", h.fd.as_raw_fd())).expect("no NUL")
}

fn chown(h: &Handle, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor; with AT_EMPTY_PATH the empty name means the descriptor itself.
    ok(unsafe { libc::fchownat(h.fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) })
}

pub(super) fn chmod(h: &Handle, mode: u32) -> io::Result<()> {
    if !h.path_only {
        // SAFETY: a valid descriptor.
        return ok(unsafe { libc::fchmod(h.fd.as_raw_fd(), mode) });
    }
    // An O_PATH handle refers to a directory or regular file (never a symlink, see `open`): its
    // /proc link reaches exactly that inode.
    // SAFETY: a valid NUL-terminated path.
    ok(unsafe { libc::chmod(proc_path(h).as_ptr(), mode) })
}

fn utimes(h: &Handle, secs: i64, nanos: u32) -> io::Result<()> {
    let t = libc::timespec { tv_sec: secs as libc::time_t, tv_nsec: nanos as _ };
    let times = [t, t];
    if !h.path_only {
        // SAFETY: a valid descriptor and two timespecs.
        return ok(unsafe { libc::futimens(h.fd.as_raw_fd(), times.as_ptr()) });
    }
    // SAFETY: a valid NUL-terminated path and two timespecs.
    ok(unsafe { libc::utimensat(libc::AT_FDCWD, proc_path(h).as_ptr(), times.as_ptr(), 0) })
}
