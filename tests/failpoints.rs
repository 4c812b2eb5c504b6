//! Checkpoint crash safety, proven two ways (issue: create --checkpoint-bytes). First, a crash at
//! every step of the checkpoint and commit protocols (`archiver::failpoint::POINTS`, binary built
//! with `--features failpoints`), then the next command. Second, real `kill -9` of
//! `create --checkpoint-bytes` at pseudo-random moments, half the time also deleting the cache.
//! After each: committed archives byte-exact; `night.part` present iff a checkpoint was recorded;
//! nothing named `night` unless its commit was decided; complete files in `night.part` identical
//! and cut ones a prefix; no transaction records or partial uploads; and once every archive is
//! deleted, no pack or index segment left (nothing was orphaned). Then the re-run completes.

mod util;

use archiver::failpoint::POINTS;
use std::fs;
use std::path::Path;
use std::time::Instant;
use util::*;

/// Six 6 MiB files of incompressible data: with 1 MiB checkpoints (checked after every chunk and
/// every file), dozens of checkpoints per run, at deterministic places.
fn night_tree(env: &Env) {
    for i in 0..6 {
        write_data(&env.path(format!("d/f{i}.bin")), 7000 + i, 6 * MIB);
    }
}

/// A committed archive that must survive everything.
fn base(env: &Env) {
    small_tree(&env.path("base"), 77, 12, 200_000);
    env.create("base", &["base"]);
}

fn names(env: &Env) -> Vec<String> {
    env.list()
}

/// Invariant 3 and the content checks; `part`/`name`: whether night.part / night must exist
/// (None: either is allowed, for real kills whose timing is unknown).
fn check(env: &Env, part: Option<bool>, name: Option<bool>, when: &str) {
    let files = env.repo_files();
    assert!(!files.keys().any(|k| k.starts_with("txn/")), "{when}: transaction records left: {files:?}");
    assert!(!files.keys().any(|k| k.starts_with("tmp/")), "{when}: partial uploads left");
    let list = names(env);
    assert!(list.contains(&"base".to_string()), "{when}: base is gone: {list:?}");
    let has_part = list.contains(&"night.part".to_string());
    let has_name = list.contains(&"night".to_string());
    if let Some(p) = part {
        assert_eq!(has_part, p, "{when}: night.part present? {list:?}");
    }
    if let Some(n) = name {
        assert_eq!(has_name, n, "{when}: night present? {list:?}");
    }
    assert_same_tree(&env.path("base"), &env.extract("base", &[]).join("base"));
    if has_name {
        assert_same_tree(&env.path("d"), &env.extract("night", &[]).join("d"));
    }
    if has_part {
        check_part(env, when);
    }
}

/// Every complete file of night.part is identical to its source; files marked partial are a prefix.
fn check_part(env: &Env, when: &str) {
    let long = env.ok(["ls", "-v", "night.part"]).lines();
    let out = env.extract_part("night.part");
    for line in long.iter().filter(|l| l.starts_with('-')) {
        let partial = line.ends_with(" [partial]");
        let path = line.trim_end_matches(" [partial]").rsplit(' ').next().unwrap().to_string();
        let (got, want) = (fs::read(out.join(&path)).unwrap(), fs::read(env.path(&path)).unwrap());
        if partial {
            assert!(
                got.len() <= want.len() && want[..got.len()] == got[..],
                "{when}: {path} is not a prefix"
            );
        } else {
            assert!(got == want, "{when}: complete file {path} differs in night.part");
        }
    }
}

/// Deletes every archive: a repository with no archives must hold no pack and no index segment.
fn assert_nothing_orphaned(env: &Env, when: &str) {
    let all = names(env);
    if !all.is_empty() {
        let mut args = vec!["delete".to_string()];
        args.extend(all);
        env.ok(args);
    }
    for dir in ["packs", "index"] {
        let left = entries_below(&env.repo.join(dir));
        assert!(left.is_empty(), "{when}: {dir}/ not empty after deleting every archive: {left:?}");
    }
}

/// What the next command must find after a crash at `point` (the K-th time it is reached).
fn expected(point: &str, k: u32) -> (bool, bool) {
    let idx = |p: &str| POINTS.iter().position(|x| *x == p).unwrap();
    let i = idx(point);
    let decided = i >= idx("commit-decided");
    let checkpointed = if point.starts_with("checkpoint-") {
        i >= idx("checkpoint-recorded") || k >= 2
    } else {
        point.starts_with("commit-") && !decided || point == "pack-stored" && k >= 2
    };
    (checkpointed && !decided, decided)
}

#[test]
fn a_crash_at_every_protocol_step_recovers_to_the_invariant() {
    let mut runs = 0;
    for &point in POINTS.iter().filter(|p| **p != "recover-promoting") {
        let hits: &[u32] = if point.starts_with("checkpoint-") { &[1, 2] } else { &[1] };
        for &k in hits {
            let when = format!("crash at {point}:{k}");
            let env = Env::new();
            base(&env);
            night_tree(&env);
            let out = env
                .command(["create", "--checkpoint-bytes", "1M", "night", "d"])
                .env("ARCHIVER_FAILPOINT", format!("{point}:{k}"))
                .output()
                .unwrap();
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{when}: the failpoint was not reached");
            assert_eq!(env.list(), expected_listing(point, k), "{when}: readers before recovery");
            if runs % 2 == 1 {
                fs::remove_dir_all(&env.cache).ok(); // the cache is an optimisation
            }
            // The next write command recovers: `recover` itself, or a create.
            if runs % 3 == 0 {
                env.ok(["recover"]);
            } else {
                env.create("other", &["base"]);
            }
            let (part, name) = expected(point, k);
            check(&env, Some(part), Some(name), &when);
            // The interrupted backup can always be completed, and then night.part is gone.
            if !name {
                env.create("night", &["d"]);
                check(&env, Some(false), Some(true), &format!("{when}, then re-run"));
            }
            assert_nothing_orphaned(&env, &when);
            runs += 1;
        }
    }
    assert_eq!(runs, POINTS.len() - 1 + 5, "every point, and the 2nd hit of each checkpoint point");
}

/// What `list` shows right after the crash, before any recovery: only committed archives.
fn expected_listing(point: &str, k: u32) -> Vec<String> {
    let (_, name) = expected(point, k);
    // A decided commit is visible to readers once its manifest is written.
    let visible = name && point != "commit-decided";
    if visible {
        vec!["base".into(), "night".into()]
    } else {
        vec!["base".into()]
    }
}

#[test]
fn a_crash_during_recovery_is_recovered_by_the_next_command() {
    let env = Env::new();
    base(&env);
    night_tree(&env);
    let create = env
        .command(["create", "--checkpoint-bytes", "1M", "night", "d"])
        .env("ARCHIVER_FAILPOINT", "checkpoint-cache-committed:2")
        .output()
        .unwrap();
    assert!(create.status.code().is_none(), "create should have been killed at the failpoint");
    let rec = env.command(["recover"]).env("ARCHIVER_FAILPOINT", "recover-promoting").output().unwrap();
    assert!(rec.status.code().is_none(), "recovery should have been killed");
    env.ok(["recover"]);
    check(&env, Some(true), Some(false), "crash during recovery");
    assert_nothing_orphaned(&env, "crash during recovery");
}

fn kill_runs(count: u64) {
    let env = Env::new();
    base(&env);
    night_tree(&env);
    // One uninterrupted run, in a scratch repository, times the window the kills are spread over.
    let scratch = Env::new();
    let t = Instant::now();
    scratch.ok(["create", "--checkpoint-bytes", "2M", "night", env.path("d").to_str().unwrap()]);
    let full = t.elapsed();
    let full_stored = scratch.repo_size();
    let mut rng = Rng::new(4242);
    let mut parts = 0;
    for run in 0..count {
        let when = format!("kill {run}");
        let before = env.repo_size();
        let mut child = env.spawn(["create", "--checkpoint-bytes", "2M", "night", "d"]);
        let delay = full.mul_f64(0.05 + 0.9 * (rng.below(1000) as f64 / 1000.0));
        std::thread::sleep(delay);
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        if run % 2 == 0 {
            fs::remove_dir_all(&env.cache).ok();
        }
        env.ok(["recover"]);
        check(&env, None, None, &when);
        let list = names(&env);
        if list.contains(&"night".to_string()) {
            env.ok(["delete", "night"]); // finished before the kill: start over
            continue;
        }
        let recovered = env.repo_size();
        if list.contains(&"night.part".to_string()) {
            parts += 1;
        }
        // The re-run uploads no more than what the checkpoint did not cover, plus one interval.
        env.create("night", &["d"]);
        let added = env.repo_size() as i64 - recovered as i64;
        let covered = recovered as i64 - before as i64;
        let bound = full_stored as i64 - covered + (2 * MIB) as i64 + MIB as i64;
        assert!(added <= bound, "{when}: re-run added {added} bytes, bound {bound}");
        check(&env, Some(false), Some(true), &format!("{when}, re-run"));
        env.ok(["delete", "night"]);
    }
    eprintln!("{count} kills: {parts} left night.part, the rest were discarded or had finished");
    assert!(parts > 0, "no kill landed after a checkpoint");
    assert_nothing_orphaned(&env, "after the kills");
}

#[test]
fn kill_9_at_random_moments_30_runs() {
    kill_runs(30);
}

#[test]
#[ignore = "long: 300 kill -9 runs"]
fn kill_9_at_random_moments_300_runs() {
    kill_runs(300);
}

#[test]
fn deleting_the_cache_between_crash_and_next_run_changes_nothing() {
    let env = Env::new();
    base(&env);
    night_tree(&env);
    let out = env
        .command(["create", "--checkpoint-bytes", "1M", "night", "d"])
        .env("ARCHIVER_FAILPOINT", "checkpoint-cache-committed:2")
        .output()
        .unwrap();
    assert!(out.status.code().is_none(), "create should have been killed");
    let (kept, lost) = (env.fork("kept"), env.fork("lost"));
    fs::remove_dir_all(&lost.cache).unwrap();
    for e in [&kept, &lost] {
        e.ok(["recover"]);
        check(e, Some(true), Some(false), "after recovery");
    }
    assert_eq!(kept.list(), lost.list());
    assert_eq!(kept.ok(["ls", "-v", "night.part"]).stdout, lost.ok(["ls", "-v", "night.part"]).stdout);
    // The same tree, but for the mtime of the file cut short (the time of its restore).
    let cut = kept.partial_files("night.part");
    let (a, b) = (kept.extract_part("night.part"), lost.extract_part("night.part"));
    let (mut sa, mut sb) = (snapshot_but_cut_mtimes(&a, &cut), snapshot_but_cut_mtimes(&b, &cut));
    sa.remove(Path::new("")); // the extraction directories themselves
    sb.remove(Path::new(""));
    assert_eq!(sa, sb, "night.part restores differently with and without the cache");
    // The re-run uploads the same (a lost cache costs reading files again, not storing them).
    let sizes: Vec<i64> = [&kept, &lost]
        .iter()
        .map(|e| {
            let before = e.repo_size() as i64;
            e.create("night", &["d"]);
            check(e, Some(false), Some(true), "after the re-run");
            e.repo_size() as i64 - before
        })
        .collect();
    assert!(sizes[0].abs_diff(sizes[1]) < 64 * 1024, "re-runs added {sizes:?} bytes");
}
