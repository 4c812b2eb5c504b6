//! What `create` knows of an entry from `lstat`: the fields of `struct stat` it stores or
//! compares, taken either from a path (`Stat::of`, `Stat::from`) or by name from an open
//! directory (`Stat::at`, `fstatat`): the walker holds its directories open and stats their
//! entries from there, so the kernel resolves one name per entry instead of the whole path
//! (half of an unchanged run's system time was path resolution).
//!
//! Invariants: a symlink is never followed (`AT_SYMLINK_NOFOLLOW`, `symlink_metadata`); the two
//! ways give the same fields for the same entry (a test compares them).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
}

impl Stat {
    /// The entry at `path` itself (a symlink is not followed).
    pub fn of(path: &Path) -> io::Result<Stat> {
        fs::symlink_metadata(path).map(|m| Stat::from(&m))
    }

    /// The entry `name` (one component) of the open directory `dir` itself.
    pub fn at(dir: BorrowedFd, name: &OsStr) -> io::Result<Stat> {
        with_cstr(name, |c| {
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: an open directory, a NUL-terminated name, and a stat buffer for the kernel
            // to fill; it is read only if the call succeeded.
            let r = unsafe { libc::fstatat(dir.as_raw_fd(), c, st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fstatat succeeded, so it filled `st`.
            Ok(Stat::from_raw(&unsafe { st.assume_init() }))
        })
    }

    /// The open file or directory `fd`.
    pub fn of_fd(fd: BorrowedFd) -> io::Result<Stat> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: an open descriptor and a stat buffer for the kernel to fill; it is read only
        // if the call succeeded.
        if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstat succeeded, so it filled `st`.
        Ok(Stat::from_raw(&unsafe { st.assume_init() }))
    }

    fn from_raw(st: &libc::stat) -> Stat {
        Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
            ctime: st.st_ctime,
            ctime_nsec: st.st_ctime_nsec,
        }
    }

    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }
    pub fn is_fifo(&self) -> bool {
        self.kind() == libc::S_IFIFO
    }
    pub fn is_char_device(&self) -> bool {
        self.kind() == libc::S_IFCHR
    }
    pub fn is_block_device(&self) -> bool {
        self.kind() == libc::S_IFBLK
    }
    pub fn mtime_ns(&self) -> i64 {
        self.mtime * 1_000_000_000 + self.mtime_nsec
    }
    pub fn ctime_ns(&self) -> i64 {
        self.ctime * 1_000_000_000 + self.ctime_nsec
    }
}

impl From<&fs::Metadata> for Stat {
    fn from(m: &fs::Metadata) -> Stat {
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
            size: m.size(),
            blocks: m.blocks(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        }
    }
}

/// Opens the entry `name` (one component) of the open directory `dir` for reading, with `flags`
/// added (`O_NOFOLLOW` for an entry that must not be a symlink).
pub fn open_at(dir: BorrowedFd, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    with_cstr(name, |c| {
        // SAFETY: an open directory and a NUL-terminated name; the descriptor is checked, then owned.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), c, libc::O_RDONLY | libc::O_CLOEXEC | flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

/// Calls `f` with `name` NUL-terminated, from a buffer on the stack when it fits (a name is at
/// most 255 bytes on Linux), without allocating. A name holding a NUL cannot exist: `EINVAL`.
pub fn with_cstr<T>(name: &OsStr, f: impl FnOnce(*const libc::c_char) -> io::Result<T>) -> io::Result<T> {
    let b = name.as_bytes();
    if b.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut buf = [0u8; 256];
    if b.len() < buf.len() {
        buf[..b.len()].copy_from_slice(b);
        return f(buf.as_ptr() as *const libc::c_char);
    }
    let c = std::ffi::CString::new(b).expect("no NUL");
    f(c.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_name_in_an_open_directory_stats_as_its_path_does() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"12345").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let open = fs::File::open(dir.path()).unwrap();
        for name in ["f", "l", "d"] {
            let by_name = Stat::at(open.as_fd(), OsStr::new(name)).unwrap();
            assert_eq!(by_name, Stat::of(&dir.path().join(name)).unwrap(), "{name}");
        }
        let l = Stat::at(open.as_fd(), OsStr::new("l")).unwrap();
        assert!(l.is_symlink() && !l.is_file(), "a symlink is not followed");
        assert_eq!(Stat::at(open.as_fd(), OsStr::new("f")).unwrap().size, 5);
        assert!(Stat::at(open.as_fd(), OsStr::new("d")).unwrap().is_dir());
        let gone = Stat::at(open.as_fd(), OsStr::new("missing")).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        let long = OsStr::from_bytes(&[b'x'; 300]);
        assert!(Stat::at(open.as_fd(), long).is_err(), "a name too long is an error, not a panic");
    }
}
