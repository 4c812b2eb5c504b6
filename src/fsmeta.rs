//! What `create` reads about an entry besides its content: extended attributes (POSIX ACLs are
//! the `system.posix_acl_access` and `system.posix_acl_default` ones, stored as the kernel gives
//! them, so they come back exactly), the kind of special files, and which files are other names
//! of a file already stored (hard links). Invariants: an entry is never followed through a
//! symlink (`l*xattr`); what is read is bounded by the kernel's own limits (`limits`), and
//! anything larger or changing under us is an error for that entry, never a truncated value.

use crate::archive::NodeKind;
use crate::limits::{MAX_XATTRS, MAX_XATTR_VALUE};
use crate::stat::Stat;
use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The POSIX ACL attributes.
pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
pub const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

pub fn is_acl(name: &[u8]) -> bool {
    name == ACL_ACCESS || name == ACL_DEFAULT
}

/// Which extended attributes are stored.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted {
    pub no_xattrs: bool,
    pub no_acls: bool,
}

impl Wanted {
    fn keeps(&self, name: &[u8]) -> bool {
        if is_acl(name) {
            !self.no_acls
        } else {
            !self.no_xattrs
        }
    }

    pub fn none(&self) -> bool {
        self.no_xattrs && self.no_acls
    }
}

/// The extended attributes of `path` itself (not following a symlink) that `wanted` keeps,
/// sorted by name. A file system without them gives none.
pub fn xattrs(path: &Path, wanted: Wanted) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if wanted.none() {
        return Ok(Vec::new());
    }
    let c =
        CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    read_xattrs(
        wanted,
        // SAFETY: a NUL-terminated path and a buffer of `buf.len()` bytes (or none, to ask the size).
        |buf| unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) },
        // SAFETY: NUL-terminated path and name, and a buffer of `buf.len()` bytes.
        |name, buf| unsafe {
            libc::lgetxattr(c.as_ptr(), name.as_ptr(), buf.as_mut_ptr() as *mut libc::c_void, buf.len())
        },
    )
}

/// `xattrs` of the file open as `fd` (no path is resolved again).
pub fn xattrs_of(fd: BorrowedFd, wanted: Wanted) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if wanted.none() {
        return Ok(Vec::new());
    }
    let fd = fd.as_raw_fd();
    read_xattrs(
        wanted,
        // SAFETY: an open descriptor and a buffer of `buf.len()` bytes (or none, to ask the size).
        |buf| unsafe { libc::flistxattr(fd, buf.as_mut_ptr() as *mut libc::c_char, buf.len()) },
        // SAFETY: an open descriptor, a NUL-terminated name, and a buffer of `buf.len()` bytes.
        |name, buf| unsafe {
            libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr() as *mut libc::c_void, buf.len())
        },
    )
}

/// The attributes `list` names that `wanted` keeps, each read with `get`, sorted by name.
fn read_xattrs(
    wanted: Wanted,
    list: impl Fn(&mut [u8]) -> isize,
    get: impl Fn(&std::ffi::CStr, &mut [u8]) -> isize,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match sized(list) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty() && wanted.keeps(n)) {
        let cname = CString::new(name).expect("split at NUL");
        let value = match sized(|buf| get(&cname, buf)) {
            Ok(v) => v,
            // Removed between listing and reading: it is not there.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => return Err(e),
        };
        if value.len() > MAX_XATTR_VALUE || out.len() >= MAX_XATTRS {
            return Err(io::Error::other("its extended attributes are larger than Linux allows"));
        }
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Attributes as the file-change cache records them: which were wanted (a byte), then each
/// name (u16 length) and value (u32 length). Kept per file, they are used again only for the
/// same `wanted` (`decode_xattrs`).
pub fn encode_xattrs(wanted: Wanted, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![wanted.no_xattrs as u8 | (wanted.no_acls as u8) << 1];
    for (name, value) in xattrs {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// What `encode_xattrs` recorded, if it was for `wanted` and is well formed (bounded as the
/// kernel bounds attributes; anything else is None: read them from the file).
pub fn decode_xattrs(mut b: &[u8], wanted: Wanted) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    let flags = *take(&mut b, 1)?.first()?;
    if flags != wanted.no_xattrs as u8 | (wanted.no_acls as u8) << 1 {
        return None;
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = u16::from_le_bytes(take(&mut b, 2)?.try_into().ok()?) as usize;
        let name = take(&mut b, n)?.to_vec();
        let v = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
        if n == 0 || n > 255 || v > MAX_XATTR_VALUE || out.len() >= MAX_XATTRS {
            return None;
        }
        out.push((name, take(&mut b, v)?.to_vec()));
    }
    Some(out)
}

/// Calls `f` with a buffer on the stack first (most files have no attribute, or small ones: one
/// system call), then, if that was too small, asks for the size and calls it with a buffer of
/// that size, again if the value grew in between (`ERANGE`), a few times at most.
fn sized(f: impl Fn(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
    let mut first = [0u8; 1024];
    let got = f(&mut first);
    if got >= 0 {
        return Ok(first[..got as usize].to_vec());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ERANGE) {
        return Err(e);
    }
    for _ in 0..8 {
        let n = f(&mut []);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; n as usize];
        let got = f(&mut buf);
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
    Err(io::Error::other("its extended attributes kept changing while they were read"))
}

/// The kind of a special file (FIFO, device), with its device number; None for the rest.
pub fn special(md: &Stat) -> Option<(NodeKind, u64)> {
    if md.is_fifo() {
        Some((NodeKind::Fifo, 0))
    } else if md.is_char_device() {
        Some((NodeKind::CharDev, md.rdev))
    } else if md.is_block_device() {
        Some((NodeKind::BlockDev, md.rdev))
    } else {
        None
    }
}

/// Whether the regular file or directory at `path` carries the nodump flag (`chattr +d`);
/// false where the file system has no flags or the entry cannot be opened (never a device or
/// FIFO: opening one can have effects).
pub fn nodump(path: &Path, md: &Stat) -> bool {
    const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
    const FS_NODUMP_FL: libc::c_long = 0x40;
    if !md.is_file() && !md.is_dir() {
        return false;
    }
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return false };
    let how = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: a NUL-terminated path; the descriptor is closed before returning; the ioctl writes
    // one long into `flags`.
    unsafe {
        let fd = libc::open(c.as_ptr(), how);
        if fd < 0 {
            return false;
        }
        let mut flags: libc::c_long = 0;
        let ok = libc::ioctl(fd, FS_IOC_GETFLAGS as _, &mut flags) == 0;
        libc::close(fd);
        ok && flags & FS_NODUMP_FL != 0
    }
}

/// The type of the synthetic file system `path` is on, by tarsnap's list (`ts_getfstype.c`:
/// devfs, devpts, proc, securityfs, selinux, sysfs, usbdevfs); None for any other.
pub fn synthetic(path: &Path) -> Option<&'static str> {
    const TYPES: &[(i64, &str)] = &[
        (0x1373, "devfs"),
        (0x1cd1, "devpts"),
        (0x9fa0, "proc"),
        (0x7363_6673, "securityfs"),
        (0xf97c_ff8c, "selinux"),
        (0x6265_6572, "sysfs"),
        (0x9fa2, "usbdevfs"),
    ];
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path and a zeroed statfs for the kernel to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let t = st.f_type as i64;
    TYPES.iter().find(|(magic, _)| *magic == t).map(|(_, name)| *name)
}

/// The stored paths of files with several names, by (device, inode): the first name stored is
/// the file, later ones are hard links to it.
#[derive(Default)]
pub struct Links {
    first: HashMap<(u64, u64), Vec<u8>>,
}

impl Links {
    /// For a regular file with more than one name: the stored path of its first name, if that
    /// was stored.
    pub fn first(&self, md: &Stat) -> Option<Vec<u8>> {
        (md.nlink > 1).then(|| self.first.get(&(md.dev, md.ino)).cloned()).flatten()
    }

    /// Remembers `path` as the first stored name of the file `md` describes (one with several).
    pub fn stored(&mut self, md: &Stat, path: &[u8]) {
        if md.nlink > 1 {
            self.first.entry((md.dev, md.ino)).or_insert_with(|| path.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn recorded_attributes_come_back_only_for_the_same_selection() {
        let all = Wanted::default();
        let x = vec![(b"user.a".to_vec(), b"1".to_vec()), (ACL_ACCESS.to_vec(), vec![2; 300])];
        let rec = encode_xattrs(all, &x);
        assert_eq!(decode_xattrs(&rec, all), Some(x.clone()));
        assert_eq!(decode_xattrs(&encode_xattrs(all, &[]), all), Some(vec![]));
        let no_acls = Wanted { no_acls: true, ..all };
        assert_eq!(decode_xattrs(&rec, no_acls), None, "recorded with ACLs, wanted without");
        for cut in 0..rec.len() {
            let got = decode_xattrs(&rec[..cut], all);
            assert!(got.is_none() || got.is_some_and(|g| g.len() < x.len()), "cut at {cut}");
        }
        assert_eq!(decode_xattrs(&[], all), None);
    }

    use super::*;

    #[test]
    fn proc_is_synthetic_and_tmp_is_not() {
        assert_eq!(super::synthetic(Path::new("/proc")), Some("proc"));
        assert_eq!(super::synthetic(Path::new("/proc/self")), Some("proc"));
        assert_eq!(super::synthetic(Path::new("/")), None);
    }

    #[test]
    fn user_attributes_are_read_sorted_and_acls_follow_their_switch() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let set = |name: &str, value: &[u8]| {
            let (p, n) = (CString::new(f.as_os_str().as_bytes()).unwrap(), CString::new(name).unwrap());
            // SAFETY: NUL-terminated strings and a readable value.
            unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr() as *const _, value.len(), 0) }
        };
        if set("user.b", b"2") != 0 {
            panic!("this file system keeps no user extended attributes: {}", io::Error::last_os_error());
        }
        assert_eq!(set("user.a", b""), 0);
        let all = xattrs(&f, Wanted::default()).unwrap();
        assert_eq!(all, vec![(b"user.a".to_vec(), vec![]), (b"user.b".to_vec(), b"2".to_vec())]);
        assert!(xattrs(&f, Wanted { no_xattrs: true, no_acls: false }).unwrap().is_empty());
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(xattrs(&link, Wanted::default()).unwrap().is_empty(), "a symlink is not followed");
    }

    #[test]
    fn attributes_larger_than_the_first_buffer_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let p = CString::new(f.as_os_str().as_bytes()).unwrap();
        let mut want = Vec::new();
        // 24 names of 50 bytes (1,224 bytes of list) and one value of 1,500 bytes: both pass
        // the 1 KiB first try (and fit the 4 KiB that ext4 keeps per file).
        for i in 0..24 {
            let name = format!("user.{i:02}{}", "n".repeat(43));
            let value = if i == 7 { vec![b'v'; 1500] } else { vec![i as u8] };
            let n = CString::new(name.clone()).unwrap();
            // SAFETY: NUL-terminated strings and a readable value.
            let r =
                unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr() as *const _, value.len(), 0) };
            assert_eq!(r, 0, "setxattr: {}", io::Error::last_os_error());
            want.push((name.into_bytes(), value));
        }
        want.sort();
        assert_eq!(xattrs(&f, Wanted::default()).unwrap(), want);
    }
}
