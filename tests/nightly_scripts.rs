//! The sample nightly jobs, scripts/nightly-backup.sh (write-only key, on the backup host) and
//! scripts/nightly-prune.sh (full key, on a trusted host), run against the real binary: twenty
//! simulated nights, the exit codes each one alerts on, a stolen write key's damage that the
//! prune job must refuse to make permanent, and a prune that keeps exactly what `prune --dry-run`
//! says. Every log line must be JSON. The scripts read JSON with jq when it is installed and with
//! awk otherwise; both ways are run (CI need not have jq).

mod util;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use util::*;

/// 2026-01-05 01:30:00 UTC, a Monday: the first simulated night.
const NIGHT0: u64 = 1_767_576_600;
const DAY: u64 = 86_400;
const POLICY: [&str; 8] =
    ["--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12", "--keep-yearly", "3"];

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// The ways the scripts read JSON: always the awk fallback (`JQ=` empty), and jq when installed.
fn jq_modes() -> Vec<&'static str> {
    let jq = Command::new("jq").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if jq.is_ok_and(|s| s.success()) {
        vec!["", "jq"]
    } else {
        eprintln!("jq is not installed: only the scripts' awk fallback is run");
        vec![""]
    }
}

/// One host's view: the test's repository and cache, a key file, logs and alerts of its own.
struct Host<'a> {
    env: &'a Env,
    key: PathBuf,
    logs: PathBuf,
    alerts: PathBuf,
}

impl<'a> Host<'a> {
    fn new(env: &'a Env, tag: &str, key: &Path) -> Host<'a> {
        Host {
            env,
            key: key.to_path_buf(),
            logs: env.path(format!("{tag}-logs")),
            alerts: env.path(format!("{tag}-alerts")),
        }
    }

    /// Runs a script under bash with this host's settings, then `vars` (which win).
    fn run(&self, name: &str, vars: &[(&str, &str)]) -> Out {
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
    fn backup(&self, n: u64, vars: &[(&str, &str)]) -> Out {
        let time = (NIGHT0 + n * DAY).to_string();
        let mut all = vec![("BACKUP_TIME", time.as_str())];
        all.extend_from_slice(vars);
        self.run("nightly-backup.sh", &all)
    }

    /// The alert lines so far.
    fn alerts(&self) -> Vec<String> {
        std::fs::read_to_string(&self.alerts)
            .map(|s| s.lines().map(String::from).collect())
            .unwrap_or_default()
    }

    /// Every line of every log, parsed: each must be a JSON object with a `message_type`.
    fn log_lines(&self, prefix: &str) -> Vec<Value> {
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

fn name_of(n: u64) -> String {
    // NIGHT0 + n days, 01:30:00 UTC: January 2026 for n < 27.
    assert!(n < 27);
    format!("nightly-2026-01-{:02}_013000", 5 + n)
}

fn of_type<'v>(lines: &'v [Value], ty: &str) -> Vec<&'v Value> {
    lines.iter().filter(|v| v["message_type"] == ty).collect()
}

/// `archiver --json generations` of `env`, with `key`.
fn generations(env: &Env, key: &Path) -> Vec<Value> {
    let out = env.command(["--json", "generations"]).env("ARCHIVER_KEYFILE", key).output().unwrap();
    let out = out_of(out);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn write_only_key(env: &Env) -> PathBuf {
    let w = env.path("nightly.key");
    env.ok(["keymgmt", "--outkeyfile", w.to_str().unwrap(), "-w"]);
    w
}

/// Twenty nights with the write-only key, the failures it alerts on, a thief, and the prune job.
#[test]
fn nightly_backups_with_a_write_only_key_and_a_prune_from_the_trusted_host() {
    let env = Env::new();
    let w = write_only_key(&env);
    let nightly = Host::new(&env, "backup-host", &w);
    write(&env.path("data/fixed.txt"), &data(1, 50_000));

    // Twenty nights, each with a little new data: exit 0, silent, no alert.
    for n in 0..20 {
        write(&env.path("data/night.txt"), format!("night {n}\n").as_bytes());
        let out = nightly.backup(n, &[]);
        assert_eq!(out.code, 0, "night {n}: stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "night {n} was not quiet: {out:?}");
    }
    assert!(nightly.alerts().is_empty(), "alerts on good nights: {:?}", nightly.alerts());
    let names: Vec<String> = (0..20).map(name_of).collect();
    assert_eq!(env.list(), names);
    let lines = nightly.log_lines("nightly-");
    let summaries = of_type(&lines, "summary");
    assert_eq!(summaries.len(), 20, "one create summary per night");
    for (s, name) in summaries.iter().zip(&names) {
        assert_eq!(s["command"], "create");
        assert_eq!(s["name"], name.as_str());
        assert_eq!(s["warnings"], 0);
    }
    let results = of_type(&lines, "job_result");
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(|r| r["exit_code"] == 0 && r["outcome"] == "ok"), "{results:?}");
    // Named and logged by BACKUP_TIME, which is also the archive's creation time.
    assert!(nightly.logs.join("nightly-2026-01-24.jsonl").exists());
    assert_eq!(summaries[19]["time"], "2026-01-24T01:30:00Z");

    // Stored but incomplete (/proc/self/mem cannot be read, even by root): exit 3, an alert
    // quoting archiver's warning. Read with awk, and with jq when installed: the same alert.
    let mut night = 20;
    let mut incomplete = Vec::new();
    if Path::new("/proc/self/mem").exists() {
        for jq in jq_modes() {
            let before = nightly.alerts().len();
            let out = nightly.backup(night, &[("BACKUP_PATHS", "data /proc/self/mem"), ("JQ", jq)]);
            assert_eq!(out.code, 3, "{out:?}");
            let alerts = nightly.alerts();
            assert_eq!(alerts.len(), before + 1, "one alert: {alerts:?}");
            let a = &alerts[before];
            for s in [
                name_of(night).as_str(),
                "exit 3",
                "incomplete",
                "1 warning(s)",
                "/proc/self/mem",
                "Input/output error",
            ] {
                assert!(a.contains(s), "the exit-3 alert should mention {s:?}: {a}");
            }
            incomplete.push(a.replace(&name_of(night), "NAME").split("; log: ").next().unwrap().to_string());
            night += 1;
        }
        assert!(incomplete.windows(2).all(|w| w[0] == w[1]), "jq and awk alerts differ: {incomplete:?}");
    } else {
        unavailable("no /proc/self/mem");
    }
    let lines = nightly.log_lines("nightly-");
    let warned = of_type(&lines, "summary").into_iter().filter(|s| s["warnings"] == 1).count();
    assert_eq!(warned, incomplete.len(), "the incomplete runs' summaries are logged");
    assert!(of_type(&lines, "warning")
        .iter()
        .all(|w| w["message"].as_str().unwrap().contains("/proc/self/mem")));

    // Failed, nothing stored (exit 1): a path that does not exist, a repository that does not.
    let stored = env.list();
    let wrong_repo = env.path("no-repo");
    for (vars, says) in [
        (vec![("BACKUP_PATHS", "data no-such-path")], "no-such-path"),
        (vec![("ARCHIVER_REPO", wrong_repo.to_str().unwrap())], "no repository"),
    ] {
        for jq in jq_modes() {
            let before = nightly.alerts().len();
            let mut vars = vars.clone();
            vars.push(("JQ", jq));
            let out = nightly.backup(night, &vars);
            assert_eq!(out.code, 1, "{out:?}");
            let alerts = nightly.alerts();
            assert_eq!(alerts.len(), before + 1, "one alert: {alerts:?}");
            let a = &alerts[before];
            assert!(a.contains("exit 1") && a.contains("unchanged") && a.contains(says), "{a}");
            assert_eq!(env.list(), stored);
        }
    }
    let lines = nightly.log_lines("nightly-");
    let errors = of_type(&lines, "exit_error");
    assert!(
        errors.len() >= 2 && errors.iter().all(|e| e["code"] == 1),
        "exit_error objects are logged: {errors:?}"
    );

    // The backup host must not hold the full key: the script refuses it, storing nothing.
    let full = Host::new(&env, "backup-host", &env.key);
    let out = full.backup(night, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    let a = nightly.alerts().pop().unwrap();
    assert!(a.contains("delete key") && a.contains("keymgmt"), "{a}");
    assert_eq!(env.list(), stored);

    // A name the awk fallback must read right from JSON: quotes, brackets, commas, a backslash.
    let odd = r#"nightly-odd "name"],[x\y"#;
    write(&env.path("data/night.txt"), b"odd night\n");
    let out = nightly.backup(night, &[("BACKUP_NAME", odd)]);
    assert_eq!(out.code, 0, "{out:?}");
    night += 1;
    write(&env.path("data/night.txt"), b"last night\n");
    assert_eq!(nightly.backup(night, &[]).code, 0);
    let newest = name_of(night);
    let all = env.list();
    assert_eq!(all.len(), 20 + incomplete.len() + 2);

    // A thief with the write key rolls the manifest back, dropping the three newest archives.
    let gens = generations(&env, &w);
    let current = gens[0]["generation"].as_u64().unwrap();
    assert_eq!(gens[0]["current"], true);
    let thief =
        env.command(["rollback", &(current - 3).to_string()]).env("ARCHIVER_KEYFILE", &w).output().unwrap();
    assert_eq!(out_of(thief).code, 0);
    let after_theft = env.list();
    assert_eq!(after_theft.len(), all.len() - 3);
    let dropped: BTreeSet<&String> = all.iter().filter(|a| !after_theft.contains(a)).collect();
    let kept_generations = generations(&env, &w).len();

    // The prune job sees archives missing from the current generation that kept generations
    // hold, and stops before any full-key command (which would drop those generations): exit 1,
    // an alert naming them, nothing changed. Both ways of reading JSON say the same.
    let trusted = Host::new(&env, "trusted-host", &env.key);
    let mut refusals = Vec::new();
    for jq in jq_modes() {
        let before = trusted.alerts().len();
        let out = trusted.run("nightly-prune.sh", &[("JQ", jq)]);
        assert_eq!(out.code, 1, "{out:?}");
        let alerts = trusted.alerts();
        assert_eq!(alerts.len(), before + 1, "{alerts:?}");
        let a = alerts[before].clone();
        assert!(a.contains("NOT pruning") && a.contains("archiver rollback"), "{a}");
        for name in &dropped {
            // The alert quotes names as `list` prints them (a backslash doubled).
            assert!(a.contains(name.as_str()), "the alert should name {name}: {a}");
        }
        refusals.push(a);
        assert_eq!(env.list(), after_theft);
        assert_eq!(generations(&env, &w).len(), kept_generations, "the kept generations must survive");
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "jq and awk disagree: {refusals:?}");
    assert!(refusals[0].contains(r#"nightly-odd "name"],[x\\y"#), "{}", refusals[0]);

    // PRUNE_ACCEPT_MISSING=1 goes on (with an alert saying so), but a write-only key cannot
    // prune: exit 1, alerted, nothing changed.
    let with_w = Host::new(&env, "trusted-host", &w);
    let before = trusted.alerts().len();
    let out = with_w.run("nightly-prune.sh", &[("RUN_FSCK", "0"), ("PRUNE_ACCEPT_MISSING", "1")]);
    assert_eq!(out.code, 1, "{out:?}");
    let alerts = trusted.alerts();
    assert_eq!(alerts.len(), before + 2, "{alerts:?}");
    assert!(alerts[before].contains("PRUNE_ACCEPT_MISSING=1"), "{}", alerts[before]);
    let a = &alerts[before + 1];
    assert!(a.contains("archiver prune failed") && a.contains("exit 1") && a.contains("delete key"), "{a}");
    assert_eq!(env.list(), after_theft);

    // The operator rolls back to the generation before the theft (with the write key: a
    // rollback signed by the full key would drop the generations too).
    let fix = env.command(["rollback", &current.to_string()]).env("ARCHIVER_KEYFILE", &w).output().unwrap();
    assert_eq!(out_of(fix).code, 0);
    assert_eq!(env.list(), all);

    // Nothing is missing now; with the write-only key the job gets as far as fsck, which needs
    // the read key: exit 1, alerted.
    let before = trusted.alerts().len();
    let out = with_w.run("nightly-prune.sh", &[]);
    assert_eq!(out.code, 1, "{out:?}");
    let alerts = trusted.alerts();
    assert_eq!(alerts.len(), before + 1, "{alerts:?}");
    let a = &alerts[before];
    assert!(a.contains("archiver fsck failed") && a.contains("exit 1") && a.contains("read key"), "{a}");
    assert_eq!(env.list(), all);

    // With the full key the job prunes. It keeps exactly what `prune --dry-run` with the same
    // policy keeps, the newest archive among them.
    let dry = env
        .command([&["--json", "prune"][..], &POLICY, &["--match", "nightly-*", "--dry-run"]].concat())
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let dry = out_of(dry);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let decisions: Vec<Value> = dry.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let decisions = of_type(&decisions, "prune_decision");
    assert_eq!(decisions.len(), all.len());
    let keep: BTreeSet<String> = decisions
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert!(keep.contains(&newest) && keep.len() < all.len(), "{keep:?}");

    let before = trusted.alerts().len();
    let out = trusted.run("nightly-prune.sh", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "a good prune is quiet: {out:?}");
    assert_eq!(trusted.alerts().len(), before, "{:?}", trusted.alerts());
    let left: BTreeSet<String> = env.list().into_iter().collect();
    assert_eq!(left, keep, "the prune job kept other archives than prune --dry-run");

    let lines = trusted.log_lines("prune-");
    let summary =
        lines.iter().rev().find(|v| v["message_type"] == "summary" && v["command"] == "prune").unwrap();
    assert_eq!(summary["dry_run"], false);
    assert_eq!(summary["kept"].as_u64().unwrap() as usize, keep.len());
    assert_eq!(summary["deleted"].as_u64().unwrap() as usize, all.len() - keep.len());
    assert!(lines
        .iter()
        .any(|v| v["message_type"] == "summary" && v["command"] == "fsck" && v["clean"] == true));
    let last = lines.last().unwrap();
    assert_eq!((last["message_type"].as_str(), last["exit_code"].as_u64()), (Some("job_result"), Some(0)));

    // Why prune waits for that check: its commit, signed with the delete key, dropped every
    // generation the write-only commits had kept. Nothing to roll back to any more.
    assert_eq!(generations(&env, &w).len(), 1, "a delete-key commit keeps no earlier generation");

    // The next night goes on as before.
    write(&env.path("data/night.txt"), b"after the prune\n");
    night += 1;
    let out = nightly.backup(night, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(env.list().contains(&name_of(night)));
}

/// The exit-code table of nightly-backup.sh, driven by a stand-in for archiver that exits with
/// each code: 0 is quiet, everything else alerts with the code and archiver's message, and the
/// script exits with archiver's code. Also: the arguments it passes, and alerts on stderr
/// without ALERT_CMD.
#[test]
fn the_backup_script_alerts_on_every_exit_code() {
    let env = Env::bare();
    let fake = env.path("fake-archiver");
    let args_file = env.path("fake-args");
    write(
        &fake,
        format!(
            r#"#!/bin/sh
printf '%s\n' "$@" >'{args}'
[ "$FAKE_CODE" = 3 ] && printf '%s\n' '{{"message_type":"warning","message":"cannot read \"a\\\\b\": denied"}}'
printf '%s\n' '{{"message_type":"summary","command":"create","warnings":0}}'
[ "$FAKE_CODE" = 137 ] && kill -9 $$
[ "$FAKE_CODE" = 0 ] || [ "$FAKE_CODE" = 3 ] || printf '%s\n' '{{"message_type":"exit_error","code":'"$FAKE_CODE"',"message":"fake failure"}}' >&2
exit "$FAKE_CODE"
"#,
            args = args_file.display()
        )
        .as_bytes(),
    );
    chmod(&fake, 0o755);
    let key = env.path("write.key");
    write(&key, b"# archiver key file (access: only the write key)\naccess-write 00\n");
    let host = Host::new(&env, "host", &key);
    let fake_s = fake.to_str().unwrap();

    for jq in jq_modes() {
        for (code, says) in [
            (0, ""),
            (3, r#"exit 3, stored but incomplete: 1 warning(s): cannot read "a\\b": denied"#),
            (1, "exit 1, failed, the repository is unchanged: fake failure"),
            (2, "exit 2, failed after the repository changed"),
            (130, "exit 130, interrupted by SIGINT"),
            (143, "exit 143, interrupted by SIGTERM"),
            (137, "exit 137, archiver died of signal 9"),
            (42, "exit 42, unexpected exit code: fake failure"),
        ] {
            let before = host.alerts().len();
            let code_s = code.to_string();
            let out = host.backup(3, &[("ARCHIVER", fake_s), ("FAKE_CODE", &code_s), ("JQ", jq)]);
            assert_eq!(out.code, code, "the script exits with archiver's code: {out:?}");
            let alerts = host.alerts();
            if code == 0 {
                assert_eq!(alerts.len(), before, "exit 0 alerted: {alerts:?}");
                continue;
            }
            assert_eq!(alerts.len(), before + 1, "exit {code}: one alert expected: {alerts:?}");
            let a = &alerts[before];
            assert!(a.contains(says), "exit {code} (JQ={jq:?}): the alert should say {says:?}: {a}");
            assert!(a.contains(&name_of(3)) && a.contains("nightly-2026-01-08.jsonl"), "{a}");
            if code == 2 {
                assert!(a.contains(&format!("{}.part", name_of(3))), "{a}");
            }
        }
    }
    let args = std::fs::read_to_string(&args_file).unwrap();
    let time = (NIGHT0 + 3 * DAY).to_string();
    let expected =
        ["--json", "--no-progress", "create", "--checkpoint-bytes", "1G", "--creationtime", &time, "--"];
    assert_eq!(args.lines().collect::<Vec<_>>(), [&expected[..], &[&name_of(3), "data"]].concat());

    // Every run logged, each ending with its job_result; stderr's exit_error objects included.
    let lines = host.log_lines("nightly-");
    let results = of_type(&lines, "job_result");
    assert_eq!(results.len(), 8 * jq_modes().len());
    assert_eq!(of_type(&lines, "exit_error").len(), 5 * jq_modes().len());

    // Without ALERT_CMD the alert goes to stderr (cron mails it).
    let out = host.backup(4, &[("ARCHIVER", fake_s), ("FAKE_CODE", "1"), ("ALERT_CMD", "")]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("ALERT") && out.stderr.contains("exit 1"), "{out:?}");
    // A binary that is not there: 127, alerted.
    let out = host.backup(4, &[("ARCHIVER", "/nonexistent/archiver")]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(host.alerts().last().unwrap().contains("cannot run archiver"));
}
