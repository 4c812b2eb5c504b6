//! Filesystem access beneath the extract target, never through a symlink.
//!
//! The target directory is opened once (`Beneath`); every other path is reached from it without
//! following any symlink: with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel
//! has it, else one component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)` (also when
//! `ARCHIVER_EXTRACT_NO_OPENAT2` is set to anything but `0`, which tests use to cover both ways).
//! Directories are held as `O_PATH` descriptors, and entries are created, removed and inspected by
//! `*at` calls on one name relative to their parent's descriptor. So a symlink or non-directory
//! on the way to an entry, whether it was there before or swapped in while extract runs, makes
//! that entry fail with `Blocked`: nothing is ever created, changed or opened outside the target.
//! (A directory that someone renames out of the target while extract holds its descriptor is
//! still written into; keeping that out needs the target not to be writable by others.)
//!
//! Descriptors stay bounded whatever the depth: a resolution holds at most two at a time and
//! `Cursor`, the sequential phases' cache of the directories last used, at most `CURSOR` more.
//! Paths longer than `PATH_MAX` are resolved in pieces.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Directories `Cursor` keeps open at most.
const CURSOR: usize = 32;
/// Bytes of path given to one `openat2` call at most (PATH_MAX is 4096 with its NUL).
const PIECE: usize = 4000;
/// How a directory on the way is opened: a handle for `*at` calls, never through a symlink.
const DIR_FLAGS: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// What stands where a directory should be, at component `depth` of the path looked up.
#[derive(Debug)]
pub(super) struct Blocked {
    pub depth: usize,
    pub why: InWay,
}

#[derive(Debug)]
pub(super) enum InWay {
    Symlink,
    NotDir,
    /// Gone, or replaced by a directory, while extract ran.
    Changed,
    /// Any other error (no permission, too many open files): not the entry's fault.
    Io(io::Error),
}

impl InWay {
    pub fn describe(&self) -> String {
        match self {
            InWay::Symlink => "is a symlink in the target (extract never follows or replaces a symlink on the way to an entry)".into(),
            InWay::NotDir => "is not a directory in the target".into(),
            InWay::Changed => "changed in the target while extract ran".into(),
            InWay::Io(e) => format!("cannot be opened: {e}"),
        }
    }
}

pub(super) struct Beneath {
    root: OwnedFd,
    openat2: AtomicBool,
}

impl Beneath {
    /// Opens the target directory (given by the user: a symlink to it is followed).
    pub fn open(dir: &Path) -> io::Result<Beneath> {
        let c = CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a valid NUL-terminated path; the result is checked.
        let fd =
            check(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
        let off = std::env::var_os("ARCHIVER_EXTRACT_NO_OPENAT2").is_some_and(|v| !v.is_empty() && v != "0");
        Ok(Beneath { root: fd, openat2: AtomicBool::new(!off) })
    }

    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The directory `comps` below the target (the target itself for none).
    pub fn dir(&self, comps: &[&[u8]]) -> Result<OwnedFd, Blocked> {
        self.dir_from(self.root(), comps, 0)
    }

    /// The directory `comps` below `base`, which is at depth `depth0` (for `Blocked::depth`).
    fn dir_from(&self, base: BorrowedFd, comps: &[&[u8]], depth0: usize) -> Result<OwnedFd, Blocked> {
        if comps.len() < 2 || !self.openat2.load(Relaxed) {
            return walk(base, comps, depth0);
        }
        let mut cur: Option<OwnedFd> = None;
        let mut done = 0;
        while done < comps.len() {
            let mut end = done + 1;
            let mut len = comps[done].len();
            while end < comps.len() && len + 1 + comps[end].len() <= PIECE {
                len += 1 + comps[end].len();
                end += 1;
            }
            let at = cur.as_ref().map_or(base, |f| f.as_fd());
            let next = match self.openat2_dir(at, &comps[done..end]) {
                Some(Ok(fd)) => fd,
                // Not available, or it failed: the walk finds which component is in the way (or
                // succeeds, if what was in the way is gone).
                _ => walk(at, &comps[done..end], depth0 + done)?,
            };
            cur = Some(next);
            done = end;
        }
        Ok(cur.expect("at least one component"))
    }

    /// `openat2` of `comps` joined; `None` where the kernel lacks it (it is not tried again).
    fn openat2_dir(&self, at: BorrowedFd, comps: &[&[u8]]) -> Option<io::Result<OwnedFd>> {
        let c = CString::new(comps.join(&b'/')).ok()?;
        // SAFETY: open_how is plain data; zeroed is a valid value (and required for unused fields).
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        for _ in 0..4 {
            // SAFETY: valid descriptor, NUL-terminated path and an open_how of the size given.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    at.as_raw_fd(),
                    c.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                )
            };
            match check(r as libc::c_int) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::E2BIG)) => {
                    self.openat2.store(false, Relaxed);
                    return None;
                }
                // A rename raced with the lookup: try again.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                r => return Some(r),
            }
        }
        Some(Err(io::Error::from_raw_os_error(libc::EAGAIN)))
    }
}

/// Opens `comps` below `base` one component at a time.
fn walk(base: BorrowedFd, comps: &[&[u8]], depth0: usize) -> Result<OwnedFd, Blocked> {
    let mut cur: Option<OwnedFd> = None;
    for (i, name) in comps.iter().enumerate() {
        let at = cur.as_ref().map_or(base, |f| f.as_fd());
        cur = Some(open_dir(at, name).map_err(|why| Blocked { depth: depth0 + i, why })?);
    }
    match cur {
        Some(fd) => Ok(fd),
        None => base.try_clone_to_owned().map_err(|e| Blocked { depth: depth0, why: InWay::Io(e) }),
    }
}

/// The directory `name` in `at`, or what is in the way.
pub(super) fn open_dir(at: BorrowedFd, name: &[u8]) -> Result<OwnedFd, InWay> {
    let c = cname(name).map_err(InWay::Io)?;
    // SAFETY: valid descriptor and NUL-terminated name; the result is checked.
    match check(unsafe { libc::openat(at.as_raw_fd(), c.as_ptr(), DIR_FLAGS) }) {
        Ok(fd) => Ok(fd),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::ENOTDIR | libc::ELOOP | libc::ENOENT) => match stat_at(at, name) {
                Ok(Some(st)) if is(&st, libc::S_IFLNK) => InWay::Symlink,
                Ok(Some(st)) if !is(&st, libc::S_IFDIR) => InWay::NotDir,
                Ok(_) => InWay::Changed,
                Err(e) => InWay::Io(e),
            },
            _ => InWay::Io(e),
        }),
    }
}

/// Directories opened recently by one thread, the deepest last, each an ancestor of the next:
/// walking a tree in path order (or its reverse) opens each directory about once.
pub(super) struct Cursor<'a> {
    fs: &'a Beneath,
    /// (path below the target, joined by `/`; its descriptor)
    open: VecDeque<(Vec<u8>, OwnedFd)>,
}

impl<'a> Cursor<'a> {
    pub fn new(fs: &'a Beneath) -> Cursor<'a> {
        Cursor { fs, open: VecDeque::new() }
    }

    /// The directory `comps` below the target, kept open for the next calls.
    pub fn dir(&mut self, comps: &[&[u8]]) -> Result<BorrowedFd<'_>, Blocked> {
        if comps.is_empty() {
            return Ok(self.fs.root());
        }
        let key = comps.join(&b'/');
        while let Some((p, _)) = self.open.back() {
            if key == *p || (key.starts_with(p) && key[p.len()] == b'/') {
                break;
            }
            self.open.pop_back();
        }
        let have = self.open.back().map_or(0, |(p, _)| p.split(|&b| b == b'/').count());
        let mut jumped = None;
        let mut from = have;
        if comps.len() - have > CURSOR {
            // Far below anything open: one resolution to near the end, then step by step.
            let base = self.open.back().map_or(self.fs.root(), |(_, fd)| fd.as_fd());
            let to = comps.len() - CURSOR;
            jumped = Some(self.fs.dir_from(base, &comps[have..to], have)?);
            from = to;
        }
        for i in from..comps.len() {
            let fd = {
                let at = match (&jumped, self.open.back()) {
                    (Some(j), _) if i == from => j.as_fd(),
                    (_, Some((_, fd))) if i > 0 => fd.as_fd(),
                    _ => self.fs.root(),
                };
                open_dir(at, comps[i]).map_err(|why| Blocked { depth: i, why })?
            };
            self.open.push_back((comps[..=i].join(&b'/'), fd));
            if self.open.len() > CURSOR {
                self.open.pop_front();
            }
        }
        Ok(self.open.back().expect("just opened").1.as_fd())
    }
}

pub(super) fn is(st: &libc::stat, kind: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

fn check(r: libc::c_int) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

fn ok(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn cname(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a name contains a NUL byte"))
}

/// `lstat` of `name` in `at`; `None` if nothing is there.
pub(super) fn stat_at(at: BorrowedFd, name: &[u8]) -> io::Result<Option<libc::stat>> {
    let c = cname(name)?;
    // SAFETY: stat is plain data, filled in by the kernel on success.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, NUL-terminated name, and a stat buffer.
    match ok(unsafe { libc::fstatat(at.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
        Ok(()) => Ok(Some(st)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `fstat` of an open descriptor (an `O_PATH` one too).
pub(super) fn stat_fd(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: as in stat_at.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and a stat buffer.
    ok(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// Opens `name` in `at` with `flags`, never following a symlink (`O_NOFOLLOW`, `O_CLOEXEC` added).
pub(super) fn open_at(
    at: BorrowedFd,
    name: &[u8],
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let c = cname(name)?;
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid descriptor and NUL-terminated name; the result is checked.
    check(unsafe { libc::openat(at.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) })
}

pub(super) fn mkdir_at(at: BorrowedFd, name: &[u8], mode: libc::mode_t) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: valid descriptor and NUL-terminated name.
    ok(unsafe { libc::mkdirat(at.as_raw_fd(), c.as_ptr(), mode) })
}

/// Removes the non-directory `name` in `at` (a symlink itself, never what it points to).
pub(super) fn unlink_at(at: BorrowedFd, name: &[u8]) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: valid descriptor and NUL-terminated name.
    ok(unsafe { libc::unlinkat(at.as_raw_fd(), c.as_ptr(), 0) })
}

pub(super) fn symlink_at(target: &[u8], at: BorrowedFd, name: &[u8]) -> io::Result<()> {
    let (t, c) = (cname(target)?, cname(name)?);
    // SAFETY: valid descriptor and NUL-terminated strings.
    ok(unsafe { libc::symlinkat(t.as_ptr(), at.as_raw_fd(), c.as_ptr()) })
}

/// A new name `name` in `at` for the file `from` in `from_at` (never following a symlink).
pub(super) fn link_at(from_at: BorrowedFd, from: &[u8], at: BorrowedFd, name: &[u8]) -> io::Result<()> {
    let (f, c) = (cname(from)?, cname(name)?);
    // SAFETY: valid descriptors and NUL-terminated strings; flags 0 does not follow symlinks.
    ok(unsafe { libc::linkat(from_at.as_raw_fd(), f.as_ptr(), at.as_raw_fd(), c.as_ptr(), 0) })
}

/// A FIFO or device node `name` in `at` (`mode` holds its type; `rdev` a device's number).
pub(super) fn mknod_at(at: BorrowedFd, name: &[u8], mode: libc::mode_t, rdev: u64) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: a valid descriptor and a NUL-terminated name.
    ok(unsafe { libc::mknodat(at.as_raw_fd(), c.as_ptr(), mode, rdev as libc::dev_t) })
}

pub(super) fn readlink_at(at: BorrowedFd, name: &[u8]) -> io::Result<Vec<u8>> {
    let c = cname(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid descriptor, NUL-terminated name, and a buffer of the length given.
    let n = unsafe { libc::readlinkat(at.as_raw_fd(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Access and modification time of the entry `name` in `at` itself (a symlink is not followed).
pub(super) fn utimes_at(at: BorrowedFd, name: &[u8], secs: i64, nanos: u32) -> io::Result<()> {
    let c = cname(name)?;
    let t = libc::timespec { tv_sec: secs as libc::time_t, tv_nsec: nanos as _ };
    // SAFETY: valid descriptor, NUL-terminated name and two timespecs.
    ok(unsafe { libc::utimensat(at.as_raw_fd(), c.as_ptr(), [t, t].as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn ino(fd: BorrowedFd) -> u64 {
        stat_fd(fd).unwrap().st_ino
    }

    #[test]
    fn directories_are_found_and_symlinks_never_followed_either_way() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        for d in ["a/b/c", "a/d", "e", "outside"] {
            std::fs::create_dir_all(t.join("target").join(d)).unwrap();
        }
        std::os::unix::fs::symlink(t.join("outside"), t.join("target/a/l")).unwrap();
        std::fs::write(t.join("target/a/f"), b"").unwrap();
        let want = |p: &str| std::fs::metadata(t.join("target").join(p)).unwrap().ino();
        for openat2 in [true, false] {
            let fs = Beneath::open(&t.join("target")).unwrap();
            fs.openat2.store(openat2, Relaxed);
            let mut cur = Cursor::new(&fs);
            // In path order, in reverse, and jumping around: each lands on its own directory.
            for p in ["a", "a/b", "a/b/c", "a/d", "e", "a/b/c", "a/b", "a", "e", "a/d"] {
                let comps: Vec<&[u8]> = p.split('/').map(str::as_bytes).collect();
                assert_eq!(ino(cur.dir(&comps).unwrap()), want(p), "{p} (cursor, openat2 {openat2})");
                assert_eq!(ino(fs.dir(&comps).unwrap().as_fd()), want(p), "{p} (openat2 {openat2})");
            }
            for (p, depth, symlink) in
                [("a/l", 1, true), ("a/l/x", 1, true), ("a/f/x", 1, false), ("a/n/x", 1, false)]
            {
                let comps: Vec<&[u8]> = p.split('/').map(str::as_bytes).collect();
                for r in [fs.dir(&comps).map(|_| ()), cur.dir(&comps).map(|_| ())] {
                    let b = r.expect_err(p);
                    assert_eq!(b.depth, depth, "{p}");
                    assert_eq!(matches!(b.why, InWay::Symlink), symlink, "{p}: {:?}", b.why);
                }
            }
        }
    }
}
