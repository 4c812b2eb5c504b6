//! The sample nightly jobs' test harness (tests/nightly_scripts.rs, tests/nightly_alerts.rs):
//! the scripts' paths, the JSON readers to try, and a host that runs a script with its own key,
//! logs and alert file.

use super::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// 2026-01-05 01:30:00 UTC, a Monday: the first simulated night.
pub const NIGHT0: u64 = 1_767_576_600;
pub const DAY: u64 = 86_400;
pub const POLICY: [&str; 8] =
    ["--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12", "--keep-yearly", "3"];

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// The ways the scripts read JSON: always the awk fallback (`JQ=` empty), and jq when installed.
pub fn jq_modes() -> Vec<&'static str> {
    let jq = Command::new("jq").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if jq.is_ok_and(|s| s.success()) {
        vec!["", "jq"]
    } else {
        eprintln!("jq is not installed: only the scripts' awk fallback is run");
        vec![""]
    }
}

/// One host's view: the test's repository and cache, a key file, logs and alerts of its own.
pub struct Host<'a> {
    pub env: &'a Env,
    pub key: PathBuf,
    pub logs: PathBuf,
    pub alerts: PathBuf,
}

impl<'a> Host<'a> {
    pub fn new(env: &'a Env, tag: &str, key: &Path) -> Host<'a> {
        Host {
            env,
            key: key.to_path_buf(),
            logs: env.path(format!("{tag}-logs")),
            alerts: env.path(format!("{tag}-alerts")),
        }
    }

    /// Runs a script under bash with this host's settings, then `vars` (which win).
    pub fn run(&self, name: &str, vars: &[(&str, &str)]) -> Out {
        let env = self.env;
        let mut c = Command::new("bash");
        c.arg(script(name)).current_dir(&env.root).stdin(Stdio::null());
        for var in [
            "ARCHIVER_CONFIG",
            "BACKUP_NAME",
            "BACKUP_TIME",
            "ALLOW_FULL_KEY",
            "PRUNE_ACCEPT_MISSING",
            "PRUNE_DRY_RUN",
        ] {
            c.env_remove(var);
        }
        c.env("ARCHIVER", BIN)
            .env("ARCHIVER_REPO", &env.repo)
            .env("ARCHIVER_KEYFILE", &self.key)
            .env("ARCHIVER_CACHEDIR", &env.cache)
            .env("HOME", &env.root)
            .env("XDG_DATA_HOME", env.root.join("xdg-data"))
            .env("XDG_CONFIG_HOME", env.root.join("xdg-config"))
            .env("XDG_CACHE_HOME", env.root.join("xdg-cache"))
            .env("TZ", "UTC")
            .env("BACKUP_PATHS", "data")
            .env("LOG_DIR", &self.logs)
            .env("ALERT_CMD", format!("printf '%s\\n' >>'{}'", self.alerts.display()))
            .env("JQ", "");
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = out_of(c.output().expect("cannot run bash"));
        assert!(!out.killed, "{name} was killed: {}", out.stderr);
        out
    }

    /// A nightly-backup.sh run for night `n` (its time and name follow from `n`).
    pub fn backup(&self, n: u64, vars: &[(&str, &str)]) -> Out {
        let time = (NIGHT0 + n * DAY).to_string();
        let mut all = vec![("BACKUP_TIME", time.as_str())];
        all.extend_from_slice(vars);
        self.run("nightly-backup.sh", &all)
    }

    /// The alert lines so far.
    pub fn alerts(&self) -> Vec<String> {
        std::fs::read_to_string(&self.alerts)
            .map(|s| s.lines().map(String::from).collect())
            .unwrap_or_default()
    }

    /// Every line of every log, parsed: each must be a JSON object with a `message_type`.
    pub fn log_lines(&self, prefix: &str) -> Vec<Value> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&self.logs).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
        files.retain(|p| {
            let f = p.file_name().unwrap().to_str().unwrap();
            f.starts_with(prefix) && f.ends_with(".jsonl")
        });
        files.sort();
        let mut out = Vec::new();
        for f in files {
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: a log line is not JSON ({e}): {line}", f.display()));
                assert!(v["message_type"].is_string(), "{}: no message_type: {line}", f.display());
                out.push(v);
            }
        }
        out
    }
}

pub fn name_of(n: u64) -> String {
    // NIGHT0 + n days, 01:30:00 UTC: January 2026 for n < 27.
    assert!(n < 27);
    format!("nightly-2026-01-{:02}_013000", 5 + n)
}

pub fn of_type<'v>(lines: &'v [Value], ty: &str) -> Vec<&'v Value> {
    lines.iter().filter(|v| v["message_type"] == ty).collect()
}
