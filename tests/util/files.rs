//! Files and folders on the test machine: building trees entry by entry (any Unix name, modes,
//! nanosecond mtimes, symlinks), walking and copying them, damaging a stored file (a flipped bit,
//! a truncation), and a tmpfs mounted for one test (root only).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Files below `dir`. A command may be writing the repository meanwhile (tests poll it while a
/// create runs): a file or folder that vanishes between listing and `lstat` is skipped.
pub fn walk_files(base: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let entries = match fs::read_dir(dir) {
        Err(e) if gone(&e) => return,
        r => r.expect("read_dir"),
    };
    for ent in entries {
        let ent = ent.expect("dir entry");
        let md = match fs::symlink_metadata(ent.path()) {
            Err(e) if gone(&e) => continue,
            r => r.expect("lstat"),
        };
        if md.is_dir() {
            walk_files(base, &ent.path(), out);
        } else {
            let rel = ent.path().strip_prefix(base).expect("under base").to_string_lossy().into_owned();
            out.insert(rel, md.len());
        }
    }
}

pub fn subdirs(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Err(_) => BTreeSet::new(),
        Ok(rd) => rd
            .map(|e| e.expect("dir entry"))
            .filter(|e| e.file_type().expect("file type").is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    }
}

/// Every entry (file or folder) below `dir`, relative; empty if `dir` does not exist.
pub fn entries_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for ent in fs::read_dir(dir).expect("read_dir") {
            let p = ent.expect("dir entry").path();
            out.push(p.strip_prefix(base).expect("under base").to_string_lossy().into_owned());
            if fs::symlink_metadata(&p).expect("lstat").is_dir() {
                walk(base, &p, out);
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for ent in fs::read_dir(from).expect("read_dir") {
        let ent = ent.expect("dir entry");
        let (src, dst) = (ent.path(), to.join(ent.file_name()));
        if ent.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy");
        }
    }
}

pub fn dir_size(dir: &Path) -> u64 {
    let mut m = BTreeMap::new();
    walk_files(dir, dir, &mut m);
    m.values().sum()
}

/// A tmpfs mounted for one test (needs root), unmounted when dropped.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        mkdir(at);
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    pub fn resize(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        std::process::Command::new("umount").arg("-l").arg(&self.0).status().ok();
    }
}

/// Turns raw bytes into a path (any Unix name: newlines, invalid UTF-8).
pub fn bpath(b: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(b.to_vec()))
}

pub fn write(path: &Path, content: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("mkdir");
    }
    fs::write(path, content).expect("write");
}

pub fn mkdir(path: &Path) {
    fs::create_dir_all(path).expect("mkdir");
}

pub fn symlink(target: impl AsRef<Path>, link: &Path) {
    if let Some(p) = link.parent() {
        fs::create_dir_all(p).expect("mkdir");
    }
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Sets the mtime (and atime) of `path` itself, not following a symlink.
pub fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t).expect("set times");
}

/// Flips one bit of the byte at `offset` of the file.
pub fn flip_bit(path: &Path, offset: u64) {
    let mut b = fs::read(path).expect("read");
    b[offset as usize] ^= 0x10;
    fs::write(path, b).expect("write");
}

pub fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).expect("open").set_len(len).expect("truncate");
}
