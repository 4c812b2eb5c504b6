//! What `create` reads about an entry besides its content: extended attributes (POSIX ACLs are
//! the `system.posix_acl_access` and `system.posix_acl_default` ones, stored as the kernel gives
//! them, so they come back exactly), the kind of special files, and which files are other names
//! of a file already stored (hard links). Invariants: an entry is never followed through a
//! symlink (`l*xattr`); what is read is bounded by the kernel's own limits (`limits`), and
//! anything larger or changing under us is an error for that entry, never a truncated value.

use crate::archive::NodeKind;
use crate::limits::{MAX_XATTRS, MAX_XATTR_VALUE};
use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
    let names = match sized(|buf| {
        // SAFETY: a NUL-terminated path and a buffer of `buf.len()` bytes (or none, to ask the size).
        unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) }
    }) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty() && wanted.keeps(n)) {
        let cname = CString::new(name).expect("split at NUL");
        let value = match sized(|buf| {
            // SAFETY: NUL-terminated path and name, and a buffer of `buf.len()` bytes.
            unsafe {
                libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf.as_mut_ptr() as *mut libc::c_void, buf.len())
            }
        }) {
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
pub fn special(md: &std::fs::Metadata) -> Option<(NodeKind, u64)> {
    let ft = md.file_type();
    if ft.is_fifo() {
        Some((NodeKind::Fifo, 0))
    } else if ft.is_char_device() {
        Some((NodeKind::CharDev, md.rdev()))
    } else if ft.is_block_device() {
        Some((NodeKind::BlockDev, md.rdev()))
    } else {
        None
    }
}

/// Whether the regular file or directory at `path` carries the nodump flag (`chattr +d`);
/// false where the file system has no flags or the entry cannot be opened (never a device or
/// FIFO: opening one can have effects).
pub fn nodump(path: &Path, md: &std::fs::Metadata) -> bool {
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
    pub fn first(&self, md: &std::fs::Metadata) -> Option<Vec<u8>> {
        (md.nlink() > 1).then(|| self.first.get(&(md.dev(), md.ino())).cloned()).flatten()
    }

    /// Remembers `path` as the first stored name of the file `md` describes (one with several).
    pub fn stored(&mut self, md: &std::fs::Metadata, path: &[u8]) {
        if md.nlink() > 1 {
            self.first.entry((md.dev(), md.ino())).or_insert_with(|| path.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
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
