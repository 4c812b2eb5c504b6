//! Comparing trees: a snapshot of every entry (kind, mode bits, nanosecond mtime, size, content
//! hash, symlink target), the comparison that names the first differences, and the stored-path
//! forms (`escape` as `archiver ls` prints a path, `stored_paths` as an archive stores a tree).

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a restore must reproduce of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// 'f' file, 'd' directory, 'l' symlink, 'p' FIFO, 'c' and 'b' devices, 's' socket.
    pub kind: char,
    /// Permission bits (including setuid, setgid, sticky).
    pub mode: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    /// BLAKE3 of a file's content.
    pub hash: Option<String>,
    pub target: Option<PathBuf>,
}

/// `snapshot(root)` with the mtime of each of `cut` (paths relative to `root`) left out: a file
/// restored cut short keeps the time of its restore as its mtime, so two restores differ there.
pub fn snapshot_but_cut_mtimes(root: &Path, cut: &[String]) -> BTreeMap<PathBuf, Meta> {
    let mut s = snapshot(root);
    for p in cut {
        if let Some(m) = s.get_mut(Path::new(p)) {
            m.mtime = (0, 0);
        }
    }
    s
}

/// Every entry under `root`, keyed by its path relative to `root` (`root` itself is "").
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Meta> {
    let mut out = BTreeMap::new();
    fn visit(root: &Path, rel: PathBuf, out: &mut BTreeMap<PathBuf, Meta>) {
        let path = if rel.as_os_str().is_empty() { root.to_path_buf() } else { root.join(&rel) };
        let md = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_fifo() {
            'p'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_socket() {
            's'
        } else {
            'f'
        };
        let hash = (kind == 'f').then(|| hash_file(&path));
        let target = (kind == 'l').then(|| fs::read_link(&path).expect("readlink"));
        let meta = Meta {
            kind,
            mode: md.mode() & 0o7777,
            mtime: (md.mtime(), md.mtime_nsec()),
            size: if kind == 'f' { md.len() } else { 0 },
            hash,
            target,
        };
        out.insert(rel.clone(), meta);
        if kind == 'd' {
            let mut names: Vec<OsString> =
                fs::read_dir(&path).expect("read_dir").map(|e| e.expect("entry").file_name()).collect();
            names.sort();
            for n in names {
                visit(root, rel.join(n), out);
            }
        }
    }
    visit(root, PathBuf::new(), &mut out);
    out
}

/// Every file under `dir` (but `lock`) with its content hash: "nothing changed" means equal maps.
pub fn hashed_files(dir: &Path) -> BTreeMap<String, String> {
    entries_below(dir)
        .into_iter()
        .filter(|p| dir.join(p).is_file() && !p.ends_with("lock"))
        .map(|p| (p.clone(), hash_file(&dir.join(&p))))
        .collect()
}

pub fn hash_file(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(fs::File::open(path).expect("open")).expect("read");
    h.finalize().to_hex().to_string()
}

/// Panics with the first differences if the trees differ in any entry, content, mode, mtime or
/// symlink target.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let (a, b) = (snapshot(expected), snapshot(actual));
    let mut diffs = Vec::new();
    for k in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => diffs.push(format!("  {k:?}:\n    expected {x:?}\n    actual   {y:?}")),
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differs from {} in {} entries:\n{}",
        actual.display(),
        expected.display(),
        diffs.len(),
        diffs.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// A stored path as `archiver ls` prints it (one line: `\\`, `\n`, `\t`, other control characters
/// and bytes that are not UTF-8 escaped).
pub use archiver::query::escape;

/// The paths under `root` as an archive of `root` (given by its name `top`) stores them.
pub fn stored_paths(root: &Path, top: &str) -> Vec<Vec<u8>> {
    snapshot(root)
        .into_keys()
        .map(|rel| {
            let mut p = top.as_bytes().to_vec();
            if !rel.as_os_str().is_empty() {
                p.push(b'/');
                p.extend_from_slice(rel.as_os_str().as_bytes());
            }
            p
        })
        .collect()
}
