//! Where a tree walk is (`create`'s walker and its size scan): the path a user would name the
//! entry by (`real`: messages, the file-change cache), and a path the kernel can take (`sys`).
//!
//! A path of more than `PATH_MAX` (4,096 bytes) cannot be given to one system call, yet trees
//! hold longer ones (bsdtar and tarsnap walk them by changing directory). So once the path to a
//! directory grows past `ANCHOR_AT` bytes, the walk opens that directory (never through a
//! symlink) and names what is inside it as `/proc/self/fd/N/name`: the kernel resolves that from
//! the open directory. Invariants: `sys` stays under `ANCHOR_AT` plus one name; an anchor stays
//! open while anything beneath it is walked, and no longer (at most one per `ANCHOR_AT` bytes of
//! depth); without `/proc`, long paths fail as before, with a warning naming them.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Length of `sys` beyond which a directory is opened and walked from its descriptor.
const ANCHOR_AT: usize = 2048;

#[derive(Clone)]
pub struct Place {
    /// The path as the user would give it (any length).
    pub real: PathBuf,
    /// `real` made absolute (`std::path::absolute`, or `real` where that fails): the
    /// file-change cache's key. Joined name by name, not worked out again per entry.
    pub abs: PathBuf,
    /// The same entry as the kernel can resolve it, where that differs from `real` (beneath an
    /// anchor); `sys()` gives either.
    sys: Option<PathBuf>,
    /// The open directory `sys` starts from, if any.
    _anchor: Option<Rc<OwnedFd>>,
}

impl Place {
    pub fn new(path: &Path) -> Place {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Place { real: path.to_path_buf(), abs, sys: None, _anchor: None }
    }

    /// The path to give the kernel.
    pub fn sys(&self) -> &Path {
        self.sys.as_deref().unwrap_or(&self.real)
    }

    /// The entry `name` inside this directory.
    pub fn child(&self, name: &OsStr) -> Place {
        let sys = self.sys.as_ref().map(|s| s.join(name));
        Place { real: self.real.join(name), abs: self.abs.join(name), sys, _anchor: self._anchor.clone() }
    }

    /// This directory, ready for its entries to be named from it: re-anchored on its own
    /// descriptor when its path grew long. If it cannot be opened, it stays as it is (the
    /// listing then fails with the reason).
    pub fn enter(&self) -> Place {
        if self.sys().as_os_str().len() <= ANCHOR_AT {
            return self.clone();
        }
        let Ok(name) = std::ffi::CString::new(self.sys().as_os_str().as_bytes()) else { return self.clone() };
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: NUL-terminated path; the descriptor is checked and then owned.
        let fd = unsafe { libc::open(name.as_ptr(), flags) };
        if fd < 0 {
            return self.clone();
        }
        // SAFETY: fd was just opened and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sys = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        Place { real: self.real.clone(), abs: self.abs.clone(), sys: Some(sys), _anchor: Some(Rc::new(fd)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_keyed_as_its_whole_path_would_be() {
        for (dir, name) in
            [("a/./b", "c"), ("a//b/", "c"), ("/", "etc"), ("..", "x"), (".", "y"), ("/x/../y", "z")]
        {
            let (dir, name) = (Path::new(dir), OsStr::new(name));
            let want = std::path::absolute(dir.join(name)).unwrap();
            assert_eq!(Place::new(dir).child(name).abs, want, "{dir:?} {name:?}");
        }
    }

    #[test]
    fn long_paths_are_reached_from_an_open_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Place::new(dir.path());
        let name = OsStr::from_bytes(&[b'n'; 250]);
        for _ in 0..30 {
            std::fs::create_dir(p.child(name).sys()).unwrap();
            p = p.child(name).enter();
            assert!(p.sys().as_os_str().len() <= ANCHOR_AT + 251, "{}", p.sys().display());
        }
        std::fs::write(p.child(OsStr::new("f")).sys(), b"deep").unwrap();
        assert!(p.real.as_os_str().len() > 7000);
        assert_eq!(std::fs::read(p.child(OsStr::new("f")).sys()).unwrap(), b"deep");
    }
}
