//! Crash safety on S3 (issue 14), against a real S3 server (moto's, `util::s3`) and the real
//! binary:
//!
//! - `kill -9` of a client in the middle of `create --checkpoint-bytes` at spread-out points
//!   (after the k-th stored pack, k varying per run; ≥ 20 runs, `ARCHIVER_S3_KILL_RUNS` for
//!   more), the local cache deleted every other time, then the next write command (`recover`,
//!   `create`, `delete`): invariant 3 from the bucket alone (`util::crash::check_invariant`:
//!   committed archives exact, `night.part` iff a checkpoint record was written and then a
//!   prefix of the source, no records, nothing orphaned in the bucket).
//! - A client paused past its lease (SIGSTOP) while another client's recovery takes over its
//!   transaction; resumed, it must stop in one line and change nothing (`repo::decision`).

mod util;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use util::crash::*;
use util::s3::{backend_of, S3};
use util::*;

use archiver::backend::Backend;

/// ~20 MiB: 60 small files, then a 10 MiB file (cut inside by checkpoints every 2 MiB).
fn tree(dir: &std::path::Path) {
    small_tree(&dir.join("a-small"), 10, 60, 300_000);
    write_data(&dir.join("big.bin"), 11, 10 * MIB);
    write(&dir.join("z-last"), b"last");
    stamp_mtimes(dir, 15);
}

/// A keyed repository at `s3://BUCKET/world` holding `base` (of `small`) and `older` (of
/// `small2`), with `data` (`tree`) and `small3` to back up (`committed_world_in`).
fn world(s3: &S3) -> (Env, BTreeMap<String, String>) {
    let bucket = s3.bucket();
    let mut env = s3.env(&Env::bare(), &format!("s3://{bucket}/world"));
    // A killed client's lease frees after 3 s (the default minute, 20 times, is too long).
    env.vars.push(("ARCHIVER_LOCK_TTL".into(), "3".into()));
    env.ok(["keygen"]);
    committed_world_in(env, tree)
}

/// The packs in the bucket (one listing).
fn packs(env: &Env) -> usize {
    backend_of(env).expect("S3").list("packs/").map_or(0, |l| l.len())
}

#[test]
fn kill_9_mid_create_on_s3_then_the_next_command_recovers_from_the_bucket_alone() {
    let Some(s3) = S3::start() else { return };
    let (world, base) = world(&s3);
    let runs: usize = std::env::var("ARCHIVER_S3_KILL_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let start = packs(&world);
    let (mut parts, mut wholes, mut neither) = (0, 0, 0);
    for i in 0..runs {
        let env = world.fork_fresh("run");
        // Kill after the k-th new pack: k spread over the run (about a dozen packs with the
        // checkpoints' own), and sometimes right after the last.
        let k = 1 + (i * 5) % 17;
        let when = format!("run {i}: kill -9 after pack {k}");
        let mut child = env.spawn_piped(&["create", "--checkpoint-bytes", "2M", "night", "data"]);
        let deadline = Instant::now() + LIMIT;
        while packs(&env) < start + k {
            if child.try_wait().expect("try_wait").is_some() {
                break; // finished before the k-th pack: a crash after the commit, as good
            }
            assert!(Instant::now() < deadline, "{when}: no pack {k} within {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = wait_out(child);
        let (part, whole) = decided(&env, "night");
        match (part, whole) {
            (true, _) => parts += 1,
            (_, true) => wholes += 1,
            _ => neither += 1,
        }
        if i % 2 == 1 {
            env.drop_cache();
        }
        let mut committed = base.clone();
        next_command(&env, i, &mut committed, &when);
        let e = Expect { committed: &committed, name: "night", src: "data", part, whole };
        let got = check_invariant(&env, &e, &when);
        eprintln!("{when}: night.part {got:?}, night {whole}");
        env.remove_fork();
    }
    eprintln!("{runs} runs: {parts} left night.part, {wholes} night, {neither} nothing");
    assert!(parts >= runs / 4, "too few runs were killed after a checkpoint ({parts} of {runs})");
}

/// A client paused past its lease while another client's recovery takes its transaction over:
/// with a checkpoint, recovery commits `night.part`; without one, it discards the run. Resumed,
/// the paused client must stop (one line, exit 1) without adding anything: no archive, no
/// orphan, and the next `create` completes the backup.
#[test]
fn a_client_paused_past_its_lease_cannot_commit_what_another_recovered() {
    let Some(s3) = S3::start() else { return };
    let (world, base) = world(&s3);
    for (i, checkpoints) in [true, false].into_iter().enumerate() {
        let when = format!("paused writer, checkpoints {checkpoints}");
        let env = world.fork_fresh("paused");
        let mut args = vec!["create", "night", "data"];
        if checkpoints {
            args.splice(1..1, ["--checkpoint-bytes", "2M"]);
        }
        // The writer goes through a relay limited to 4 MB/s, so that it is still running when
        // it is paused; the other client reaches the server directly.
        let slow = proxy::Proxy::start(
            s3.endpoint.trim_start_matches("http://"),
            proxy::Policy { rate: Some(4 << 20), ..Default::default() },
        );
        let mut writer = s3.env_at(&env, env.repo.to_str().unwrap(), slow.url("").trim_end_matches('/'));
        writer.vars.push(("ARCHIVER_LOCK_TTL".into(), "3".into()));
        let bucket = backend_of(&env).expect("S3");
        let start = packs(&env);
        let mut child = writer.spawn_piped(&args);
        let deadline = Instant::now() + LIMIT;
        // Paused once it has a checkpoint (or, without, a pack: there are only two).
        loop {
            let ready = match checkpoints {
                true => bucket.list("txn/").unwrap().iter().any(|k| k.contains("/checkpoint-")),
                false => packs(&env) > start,
            };
            if ready {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "{when}: create ended before it was paused");
            assert!(Instant::now() < deadline, "{when}: not ready within {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        signal(&child, libc::SIGSTOP);
        // Another client: it waits out the lease (no heartbeat while paused), takes the lock and
        // recovers the paused one's transaction.
        let other = env.with_cache(&format!("other-cache-{i}"));
        let rec = other.ok(["recover"]);
        rec.assert_stderr_contains("took over the repository's lock");
        rec.assert_stderr_contains(if checkpoints { "committed the last checkpoint" } else { "discarded" });
        let after_recovery = env.repo_files();
        signal(&child, libc::SIGCONT);
        let out = wait_out(child);
        out.assert_no_panic();
        eprintln!("{when}: the resumed client said: {}", out.stderr.trim());
        assert_ne!(out.code, 0, "{when}: the paused client went on as if nothing happened");
        assert_eq!(out.stderr.lines().count(), 1, "{when}: more than one line:\n{}", out.stderr);
        out.assert_stderr_contains("lost the repository's lock");
        let mut committed = base.clone();
        // The resumed client added nothing an archive references, and left nothing behind.
        let e = Expect { committed: &committed, name: "night", src: "data", part: checkpoints, whole: false };
        check_invariant(&env, &e, &when);
        let now = env.repo_files();
        let added: Vec<&String> = now.keys().filter(|k| !after_recovery.contains_key(*k)).collect();
        assert!(added.is_empty(), "{when}: the resumed client stored {added:?}");
        env.ok(["create", "night", "data"]);
        committed.insert("night".into(), "data".into());
        let e = Expect { committed: &committed, name: "night", src: "data", part: false, whole: false };
        check_invariant(&env, &e, &format!("{when}, then completed"));
        env.remove_fork();
    }
}
