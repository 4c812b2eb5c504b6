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

use util::nightly::*;
use util::*;

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
