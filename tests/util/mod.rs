//! Shared helpers for the integration tests: a scratch environment that runs the real `archiver`
//! binary against a repository, key file and cache in a temporary directory, deterministic test
//! data, tree builders, and tree snapshots that compare content, mode bits, nanosecond mtimes and
//! symlink targets.
#![allow(dead_code)]

pub mod craft;
pub mod crash;
pub mod hostile;
pub mod mem;
pub mod proxy;
pub mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_archiver");
pub const MIB: u64 = 1 << 20;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Out {
    /// The exit code, or 128 + signal number when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// No panic message, no backtrace hint: errors are reported, never crashed on.
    pub fn assert_no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "archiver panicked:\n{}",
            self.stderr
        );
        assert!(self.code < 128, "archiver was killed by signal {}: {}", self.code - 128, self.stderr);
        self
    }

    /// Exit code `code` and exactly one line on stderr, starting `archiver: `.
    pub fn assert_one_line_error(&self, code: i32) -> &Self {
        self.assert_no_panic();
        assert_eq!(self.code, code, "wrong exit code; stderr:\n{}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("archiver: "), "error line lacks the `archiver: ` prefix: {}", lines[0]);
        assert!(lines[0].len() > "archiver: ".len() + 10, "error line says too little: {}", lines[0]);
        self
    }

    /// Any non-zero exit without a panic, with every stderr line prefixed `archiver: `.
    pub fn assert_failed(&self) -> &Self {
        self.assert_no_panic();
        assert_ne!(self.code, 0, "expected failure; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.trim().is_empty(), "failed silently");
        for l in self.stderr.lines() {
            assert!(l.starts_with("archiver: "), "stderr line lacks the `archiver: ` prefix: {l}");
        }
        self
    }

    pub fn assert_stderr_contains(&self, s: &str) -> &Self {
        assert!(self.stderr.contains(s), "stderr should mention {s:?}:\n{}", self.stderr);
        self
    }

    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(String::from).collect()
    }
}

/// A scratch world: repository, key file and cache under one temporary directory, which is also
/// the working directory of every command (so relative source paths are stored as given).
pub struct Env {
    _tmp: Arc<TempDir>,
    /// The temporary directory: working directory of every command.
    pub root: PathBuf,
    pub repo: PathBuf,
    pub key: PathBuf,
    pub cache: PathBuf,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Env {
    /// An environment with no key file and no repository yet.
    pub fn bare() -> Env {
        let tmp = tempfile::Builder::new().prefix("archiver-test-").tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        Env {
            repo: root.join("repo"),
            key: root.join("archiver.key"),
            cache: root.join("cache"),
            root,
            _tmp: Arc::new(tmp),
        }
    }

    /// An environment with a fresh key file and an empty repository.
    pub fn new() -> Env {
        let env = Env::bare();
        env.ok(["keygen"]);
        env
    }

    /// A copy of this environment's repository and cache under `tag/` (same key, same working
    /// directory), for damaging one copy without touching the original.
    pub fn fork(&self, tag: &str) -> Env {
        let base = self.root.join(tag);
        let env = Env {
            _tmp: self._tmp.clone(),
            root: self.root.clone(),
            repo: base.join("repo"),
            key: self.key.clone(),
            cache: base.join("cache"),
        };
        copy_dir(&self.repo, &env.repo);
        if self.cache.exists() {
            copy_dir(&self.cache, &env.cache);
        }
        env
    }

    /// An absolute path under the temporary directory.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// A fresh, not yet existing directory path under the temporary directory.
    pub fn fresh_dir(&self, prefix: &str) -> PathBuf {
        self.root.join(format!("{prefix}-{}", SEQ.fetch_add(1, Ordering::Relaxed)))
    }

    /// The binary with this environment's repository, key and cache, and nothing from the user's.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(&self.root).stdin(Stdio::null());
        for var in ["ARCHIVER_CONFIG", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE"] {
            c.env_remove(var);
        }
        c.env("ARCHIVER_REPO", &self.repo)
            .env("ARCHIVER_KEYFILE", &self.key)
            .env("ARCHIVER_CACHEDIR", &self.cache)
            .env("HOME", &self.root)
            .env("XDG_DATA_HOME", self.root.join("xdg-data"))
            .env("XDG_CONFIG_HOME", self.root.join("xdg-config"))
            .env("XDG_CACHE_HOME", self.root.join("xdg-cache"));
        c
    }

    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.command(args).output().expect("cannot run archiver");
        Out {
            code: out.status.code().unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and requires exit code 0 (and no panic).
    pub fn ok<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let out = self.run(&args);
        out.assert_no_panic();
        assert_eq!(out.code, 0, "`archiver {args:?}` failed:\n{}", out.stderr);
        out
    }

    /// Starts the binary without waiting for it.
    pub fn spawn<I, S>(&self, args: I) -> Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("cannot spawn archiver")
    }

    /// `archiver create NAME PATH...`, which must succeed.
    pub fn create(&self, name: &str, paths: &[&str]) -> Out {
        let mut args = vec!["create", name];
        args.extend_from_slice(paths);
        self.ok(args)
    }

    /// `archiver extract NAME -C <fresh dir> PATTERN...`; returns the directory.
    pub fn extract(&self, name: &str, patterns: &[&str]) -> PathBuf {
        let dir = self.fresh_dir("out");
        let mut args: Vec<OsString> = vec!["extract".into(), name.into(), "-C".into(), dir.clone().into()];
        args.extend(patterns.iter().map(OsString::from));
        self.ok(args);
        dir
    }

    /// `archiver extract NAME -C <fresh dir>` of an archive that may hold files cut short (a
    /// `NAME.part`): it must exit 3 with a warning naming each file `ls -v` marks `[partial]`, or
    /// 0 if there is none. Returns the directory.
    pub fn extract_part(&self, name: &str) -> PathBuf {
        let partial = self.partial_files(name);
        let dir = self.fresh_dir("out");
        let out = self.run([OsStr::new("extract"), OsStr::new(name), OsStr::new("-C"), dir.as_os_str()]);
        out.assert_no_panic();
        let code = if partial.is_empty() { 0 } else { 3 };
        assert_eq!(out.code, code, "extract {name} with [partial] files {partial:?}:\n{}", out.stderr);
        for p in &partial {
            let warned = format!("archiver: warning: {p} was cut short");
            assert!(out.stderr.contains(&warned), "extract {name} does not warn about {p}:\n{}", out.stderr);
        }
        dir
    }

    /// The stored paths that `ls -v NAME` marks `[partial]` (cut short when NAME was made).
    pub fn partial_files(&self, name: &str) -> Vec<String> {
        (self.ok(["ls", "-v", name]).lines().iter())
            .filter_map(|l| l.strip_suffix(" [partial]"))
            .map(|l| l.rsplit(' ').next().expect("a path").to_string())
            .collect()
    }

    /// `archiver list` as lines.
    pub fn list(&self) -> Vec<String> {
        self.ok(["list"]).lines()
    }

    /// Every file in the repository and its size, except the informational `lock` file (whose
    /// text names the last command that took the lock).
    pub fn repo_files(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        if self.repo.exists() {
            walk_files(&self.repo, &self.repo, &mut out);
        }
        out.remove("lock");
        out
    }

    /// Total bytes stored in the repository.
    pub fn repo_size(&self) -> u64 {
        self.repo_files().values().sum()
    }

    /// Names of the folders under `packs/` (one per transaction that stored packs).
    pub fn pack_folders(&self) -> BTreeSet<String> {
        subdirs(&self.repo.join("packs"))
    }

    /// Every stored object under `packs/` and `index/`, as paths relative to the repository.
    pub fn objects(&self) -> Vec<String> {
        self.repo_files().into_keys().filter(|k| k.starts_with("packs/") || k.starts_with("index/")).collect()
    }
}

/// Files below `dir`. A command may be writing the repository meanwhile (tests poll it while a
/// create runs): a file or folder that vanishes between listing and `lstat` is skipped.
fn walk_files(base: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
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

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
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

// ---------------------------------------------------------------------------------------------
// Deterministic data.

/// xorshift64*: fast, deterministic, good enough to look random to zstd and the chunker.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SEGMENT: usize = 64 * 1024;

/// Fills `buf` with the next bytes of the stream: 64 KiB stretches that are either random or
/// low-entropy text (16 letters), half each at random, so zstd shrinks the data by about a quarter.
fn fill(rng: &mut Rng, buf: &mut [u8]) {
    for seg in buf.chunks_mut(SEGMENT) {
        let text = rng.next() & 1 == 0;
        for word in seg.chunks_mut(8) {
            let mut w = rng.next();
            if text {
                w = (w & 0x0f0f_0f0f_0f0f_0f0f) | 0x6060_6060_6060_6060;
            }
            word.copy_from_slice(&w.to_le_bytes()[..word.len()]);
        }
    }
}

/// `len` bytes of partially compressible pseudo-random data, unique per seed.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(&mut Rng::new(seed), &mut v);
    v
}

/// Writes `len` bytes of `data(seed, len)` to `path` without holding them all in memory.
pub fn write_data(path: &Path, seed: u64, len: u64) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("mkdir");
    }
    let mut f = std::io::BufWriter::new(fs::File::create(path).expect("create"));
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 16 * SEGMENT];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        fill(&mut rng, &mut buf[..n]);
        f.write_all(&buf[..n]).expect("write");
        left -= n as u64;
    }
    f.into_inner().expect("flush").sync_all().ok();
}

// ---------------------------------------------------------------------------------------------
// Building trees.

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

/// Gives every entry under `root` (and `root`) a distinct mtime with nanoseconds, children first
/// so that setting a child's time cannot disturb its parent's.
pub fn stamp_mtimes(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut paths: Vec<PathBuf> = snapshot(root).into_keys().collect();
    paths.reverse(); // "a/b" sorts after "a": reversed, children come first
    for rel in paths {
        let secs = 1_000_000_000 + rng.below(800_000_000) as i64;
        let nanos = rng.below(1_000_000_000) as u32;
        set_mtime(&root.join(rel), secs, nanos);
    }
}

/// Many small and medium files of unique data under `dir` (deterministic per seed).
pub fn small_tree(dir: &Path, seed: u64, files: usize, max_len: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..files {
        let len = rng.below(max_len as u64 + 1) as usize;
        write(&dir.join(format!("d{}/f{i:03}.bin", i % 4)), &data(seed * 1000 + i as u64, len));
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing trees.

/// What a restore must reproduce of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// 'f' file, 'd' directory, 'l' symlink.
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
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
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

/// A stored path as `archiver ls` prints it: `\\`, `\n`, `\t`, other control characters and
/// bytes that are not UTF-8 escaped, so that every path is one line.
pub fn escape(path: &[u8]) -> String {
    let mut out = String::new();
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

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

/// Flips one bit of the byte at `offset` of the file.
pub fn flip_bit(path: &Path, offset: u64) {
    let mut b = fs::read(path).expect("read");
    b[offset as usize] ^= 0x10;
    fs::write(path, b).expect("write");
}

pub fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).expect("open").set_len(len).expect("truncate");
}

/// For a test whose prerequisite this machine lacks (root, a tmpfs mount, the openssl command,
/// /proc): a failure naming it, so a test never passes without running. CI (`.ci/run`, as root)
/// has them all; `ARCHIVER_TEST_SKIP_UNAVAILABLE=1` skips such tests knowingly, each with a
/// SKIPPED line.
pub fn unavailable(why: &str) {
    if std::env::var_os("ARCHIVER_TEST_SKIP_UNAVAILABLE").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: {why}");
        return;
    }
    panic!("this test cannot run here: {why} (CI has it; ARCHIVER_TEST_SKIP_UNAVAILABLE=1 skips such tests knowingly)");
}
