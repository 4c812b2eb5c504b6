//! The scratch environment every integration test runs in: `Env` holds a repository, key file
//! and cache under one temporary directory and runs the real `archiver` binary against them with
//! nothing of the user's (no config, no `HOME`), and `Out` is what one run did, with the
//! assertions every test makes about it (no panic, one-line errors). Also what a test reads of
//! the repository directly: its files and sizes, its pack folders and stored objects.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tempfile::TempDir;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Out {
    /// The exit code, or 128 + signal number when killed by a signal.
    pub code: i32,
    /// Whether the process died of a signal (`code` is then 128 + its number; a process may
    /// also exit 130 or 143 itself, after handling SIGINT or SIGTERM).
    pub killed: bool,
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
        assert!(!self.killed, "archiver was killed by signal {}: {}", self.code - 128, self.stderr);
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
    /// Keeps the temporary directory alive while any handle on it exists.
    pub(super) _tmp: Arc<TempDir>,
    /// The temporary directory: working directory of every command.
    pub root: PathBuf,
    pub repo: PathBuf,
    pub key: PathBuf,
    pub cache: PathBuf,
    /// Variables every command gets (an S3 repository's `AWS_*`: `util::s3`).
    pub vars: Vec<(String, String)>,
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
            vars: Vec::new(),
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

    /// The same environment (working directory, key file, cache) under another handle, whose
    /// fields a caller may then change (`Env { repo, ..env.view() }`).
    pub fn view(&self) -> Env {
        Env {
            _tmp: self._tmp.clone(),
            root: self.root.clone(),
            repo: self.repo.clone(),
            key: self.key.clone(),
            cache: self.cache.clone(),
            vars: self.vars.clone(),
        }
    }

    /// A copy of this environment's repository and cache under `tag/` (same key, same working
    /// directory), for damaging one copy without touching the original.
    pub fn fork(&self, tag: &str) -> Env {
        let base = self.root.join(tag);
        if super::s3::backend_of(self).is_some() {
            let env = Env { repo: super::s3::fork(self, tag), cache: base.join("cache"), ..self.view() };
            if self.cache.exists() {
                copy_dir(&self.cache, &env.cache);
            }
            return env;
        }
        let env = Env { repo: base.join("repo"), cache: base.join("cache"), ..self.view() };
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
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        out_of(self.command(args).output().expect("cannot run archiver"))
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
        if let Some(b) = super::s3::backend_of(self) {
            return super::s3::files(&b);
        }
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
        if super::s3::backend_of(self).is_some() {
            let keys = self.repo_files().into_keys();
            return keys
                .filter_map(|k| Some(k.strip_prefix("packs/")?.split_once('/')?.0.to_string()))
                .collect();
        }
        subdirs(&self.repo.join("packs"))
    }

    /// Every stored object under `packs/` and `index/`, as paths relative to the repository.
    pub fn objects(&self) -> Vec<String> {
        self.repo_files().into_keys().filter(|k| k.starts_with("packs/") || k.starts_with("index/")).collect()
    }
}

/// An `Out` from a finished process's output (a signal `N` gives code `128 + N`).
pub fn out_of(out: std::process::Output) -> Out {
    Out {
        code: out.status.code().unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
        killed: out.status.code().is_none(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The cache database under `cache` (there is one repository, so one file).
pub fn cache_file(cache: &Path) -> PathBuf {
    fn find(dir: &Path) -> Option<PathBuf> {
        for ent in std::fs::read_dir(dir).ok()? {
            let p = ent.ok()?.path();
            if p.is_dir() {
                if let Some(f) = find(&p) {
                    return Some(f);
                }
            } else if p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".sqlite")) {
                return Some(p);
            }
        }
        None
    }
    find(cache).unwrap_or_else(|| panic!("no cache database under {}", cache.display()))
}
