//! Checkpoints and `NAME.part`: what `create --checkpoint-bytes`, `--checkpoint-interval`,
//! `checkpoint-bytes` in a config file and `--maxbw` make, and what recovery and the next runs do
//! with it. Recovery gives the same archives with and without the local cache (and a re-run then
//! stores the same); a second crash adds `night.part.2` beside `night.part` without leaking the
//! first one's space; a crash while the completed run removes `night.part` leaks nothing; a
//! re-run removes `NAME.part` unless `--keep-part`; `ls -v` marks only a file a checkpoint cut as
//! `[partial]`, and extract warns that it was cut short (exit 3); a user cannot name an archive
//! `NAME.part`. Every outcome is checked against invariant 3 (see `util::crash`). The crash at
//! every step of the protocol is in `failpoints.rs`, random `kill -9` in `checkpoint_kill.rs`,
//! signals in `signals.rs`.
//!
//! Tests that stop the binary at a failpoint need `--features failpoints` (the test command does
//! that).

mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use util::crash::*;
use util::*;

/// Runs the same next command on two identical copies, one without its cache: the archives, their
/// listings and their restored trees are identical, both satisfy invariant 3, and completing the
/// backup then stores as much in both.
fn compare_with_and_without_cache(env: &Env, i: usize, base: &BTreeMap<String, String>, when: &str) {
    let (part, whole) = decided(env, "night");
    let (kept, dropped) = (env.fork_fresh("kept"), env.fork_fresh("dropped"));
    dropped.drop_cache();
    let mut committed = base.clone();
    for copy in [&kept, &dropped] {
        committed = base.clone();
        next_command(copy, i, &mut committed, when);
    }
    for round in ["after recovery", "after completing the backup"] {
        let names = kept.list();
        assert_eq!(names, dropped.list(), "{when}, {round}: archives differ with and without the cache");
        for name in &names {
            let ls = |e: &Env| e.ok(["ls", "-v", name]).lines();
            assert_eq!(ls(&kept), ls(&dropped), "{when}, {round}: `ls -v {name}` differs");
            let (a, b) = (kept.extract_part(name), dropped.extract_part(name));
            // The extraction directories themselves differ (in mtime); what is in them may not,
            // except the mtime of a file cut short, which is the time of its restore.
            let cut = kept.partial_files(name);
            let (mut sa, mut sb) = (snapshot_but_cut_mtimes(&a, &cut), snapshot_but_cut_mtimes(&b, &cut));
            sa.remove(Path::new(""));
            sb.remove(Path::new(""));
            if sa != sb {
                assert_same_tree(&a, &b);
            }
            std::fs::remove_dir_all(a).unwrap();
            std::fs::remove_dir_all(b).unwrap();
        }
        let done = round != "after recovery";
        let e = Expect {
            committed: &committed,
            name: "night",
            src: "data",
            part: part && !done,
            whole: whole || done,
        };
        check_invariant(&kept, &e, &format!("{when}, {round}, cache kept"));
        check_invariant(&dropped, &e, &format!("{when}, {round}, cache deleted"));
        if !done && !whole {
            // The re-runs store the same: a lost cache costs reading files again, not storing them.
            let added = [&kept, &dropped].map(|e| {
                let before = e.repo_size() as i64;
                e.create("night", &["data"]);
                e.repo_size() as i64 - before
            });
            assert!(added[0].abs_diff(added[1]) < 64 * 1024, "{when}: re-runs added {added:?} bytes");
        }
    }
    kept.remove_fork();
    dropped.remove_fork();
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn recovery_gives_the_same_archives_with_or_without_the_cache() {
    let (world, base) = committed_world(checkpointed_tree);
    // After a checkpoint whose cache commit went through (the cache knows blocks of the dead
    // transaction), and before a commit (the cache knows only older checkpoints' blocks).
    let points = ["checkpoint-cache-committed:2", "commit-indexed"];
    for (i, point) in points.into_iter().enumerate() {
        let env = world.fork_fresh("cache");
        assert_eq!(env.run_at(point, CREATE_4M).code, KILLED, "{point}: not reached");
        compare_with_and_without_cache(&env, i, &base, &format!("crash at {point}"));
        env.remove_fork();
    }
    // A real kill -9, as soon as a checkpoint record exists.
    let env = world.fork_fresh("cache-kill");
    let mut child = env.spawn_piped(&["create", "--checkpoint-bytes", "2M", "night", "data"]);
    wait_until(&mut child, LIMIT, "a checkpoint record", || env.has_checkpoint_record());
    child.kill().unwrap();
    let out = wait_out(child);
    assert_eq!(out.code, KILLED, "create was not killed");
    assert_eq!(
        decided(&env, "night"),
        (true, false),
        "a checkpoint record was seen, so night.part must result"
    );
    compare_with_and_without_cache(&env, 2, &base, "kill -9 after a checkpoint");
}

/// A second crash of the same archive before it completes: recovery commits the newer checkpoint
/// as `night.part.2` beside the first one's `night.part` (it never replaces an archive: otherwise
/// a checkpoint planted with a write key could replace a real one, issue 11), a crash of that
/// recovery anywhere in its commit is recovered again, and the completed run removes both,
/// leaving nothing that no archive references.
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_second_crash_keeps_both_checkpoints_and_the_completed_run_removes_them() {
    let (world, mut committed) = committed_world(checkpointed_tree);
    let env = world.fork_fresh("twice");
    assert_eq!(env.run_at("checkpoint-cache-committed:1", CREATE_4M).code, KILLED);
    env.ok(["recover"]).assert_stderr_contains("committed the last checkpoint");
    let e = Expect { committed: &committed, name: "night", src: "data", part: true, whole: false };
    let first = check_invariant(&env, &e, "first crash").expect("night.part");
    // The re-run dedups against night.part, checkpoints further, and dies before its commit.
    assert_eq!(env.run_at("commit-indexed", CREATE_4M).code, KILLED);
    let both = |env: &Env, committed: &BTreeMap<String, String>, when: &str| {
        let mut want: Vec<String> = committed.keys().cloned().collect();
        want.extend(["night.part".to_string(), "night.part.2".to_string()]);
        want.sort();
        assert_eq!(env.list(), want, "{when}");
        assert_no_leftovers(env, when);
        assert_eq!(check_part(env, "night.part", "data", when), first, "{when}: night.part changed");
        let second = check_part(env, "night.part.2", "data", when);
        assert!(second.entries > first.entries, "{when}: night.part.2 is not the newer checkpoint");
        assert_nothing_orphaned(env, when);
    };
    for point in ["commit-decided:1", "commit-cleaned:1"] {
        let when = format!("second crash, recovery killed at {point}");
        let copy = env.fork_fresh("again");
        assert_eq!(copy.run_at(point, &["recover"]).code, KILLED, "{when}: not reached");
        copy.ok(["recover"]);
        both(&copy, &committed, &when);
        copy.remove_fork();
    }
    env.drop_cache();
    next_command(&env, 1, &mut committed, "second crash")
        .assert_stderr_contains("committed the last checkpoint");
    both(&env, &committed, "second crash");
    // The completed run removes both checkpoints (a delete key: this key file holds it).
    env.ok(CREATE_4M);
    committed.insert("night".into(), "data".into());
    let e = Expect { committed: &committed, name: "night", src: "data", part: false, whole: false };
    check_invariant(&env, &e, "after the completed run");
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_crash_while_the_completed_run_removes_night_part_keeps_night_and_leaks_nothing() {
    let (world, committed) = committed_world(checkpointed_tree);
    let parted = world.fork_fresh("parted");
    assert_eq!(parted.run_at("checkpoint-cache-committed:2", CREATE_4M).code, KILLED);
    parted.ok(["recover"]);
    // The re-run commits night (the 1st transaction), then deletes night.part in a 2nd one: crash
    // in that 2nd one. night.part stays iff the deletion's commit was not decided.
    let points = ["txn-begun:2", "commit-flushed:2", "commit-indexed:2", "commit-decided:2", "commit-done:2"];
    for (i, point) in points.into_iter().enumerate() {
        let when = format!("re-run, crash at {point}");
        let env = parted.fork_fresh("rerun");
        assert_eq!(env.run_at(point, &["create", "night", "data"]).code, KILLED, "{when}: not reached");
        if i % 2 == 1 {
            env.drop_cache();
        }
        env.ok(["recover"]);
        let part = !point.starts_with("commit-d");
        let e = Expect { committed: &committed, name: "night", src: "data", part, whole: true };
        check_invariant(&env, &e, &when);
        env.remove_fork();
    }
}

/// Only `night.part` archives that checkpoints made are theirs to replace or remove: an archive
/// the user named `night.part` would be committed data like any other. (Regression: recovery
/// replaced it with night's checkpoint, and a completed `create night` deleted it.) Names ending
/// in `.part` are refused up front, in one line, storing nothing; so there is no such archive
/// for a crash and recovery to endanger (the test of that half could never run, and is gone).
#[test]
fn a_user_cannot_name_an_archive_as_a_checkpoint_is_named() {
    let (world, _) = committed_world(|_| ());
    let env = world.fork_fresh("named");
    env.run(["create", "night.part", "small3"]).assert_one_line_error(1).assert_stderr_contains(".part");
    assert_eq!(env.list(), ["base", "older"]);
    env.remove_fork();
}

#[test]
fn maxbw_stops_as_night_part_and_a_rerun_replaces_it_unless_keep_part() {
    let (env, committed) = big_world();
    let before = env.repo_size();
    let out = env.run(["create", "--maxbw", "8M", "night", "big"]);
    out.assert_no_panic();
    assert_eq!(out.code, 3, "--maxbw: stored but incomplete is exit code 3:\n{}", out.stderr);
    out.assert_stderr_contains("--maxbw").assert_stderr_contains("night.part");
    let added = env.repo_size() - before;
    eprintln!("--maxbw 8M stored {added} bytes");
    assert!(added <= 8 * MIB + 16 * MIB + MIB, "--maxbw 8M stored {added} bytes");
    assert!(env.txn_records().is_empty(), "records left: {:?}", env.txn_records());
    let e = Expect { committed: &committed, name: "night", src: "big", part: true, whole: false };
    let part = check_invariant(&env, &e, "after --maxbw").expect("night.part");
    let (file, len) = part.cut.clone().expect("--maxbw 8M stops inside the first 64 MiB file");
    assert!(len < src_len(&env, &file), "{file}: {len} bytes is all of it");
    let ls = env.ok(["ls", "-v", "night.part"]).lines();
    let line = ls.iter().find(|l| l.ends_with(&format!(" {file} [partial]")));
    assert!(line.is_some(), "`ls -v night.part` does not mark {file} partial:\n{}", ls.join("\n"));
    env.extract_part("night.part"); // exit 3, with a warning naming the cut file

    // Re-running with --keep-part keeps night.part (still restorable); without, it is removed
    // and the space only it used is reclaimed (checked: nothing orphaned).
    let keep = env.fork_fresh("keep");
    keep.ok(["create", "--keep-part", "night", "big"]);
    let e = Expect { committed: &committed, name: "night", src: "big", part: true, whole: true };
    assert_eq!(check_invariant(&keep, &e, "--keep-part").as_ref(), Some(&part), "night.part changed");
    env.ok(["create", "night", "big"]);
    let e = Expect { committed: &committed, name: "night", src: "big", part: false, whole: true };
    check_invariant(&env, &e, "re-run without --keep-part");
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn checkpoint_bytes_in_a_config_file_makes_checkpoints() {
    let env = Env::new();
    small_tree(&env.path("small"), 1, 10, 100_000);
    env.create("base", &["small"]);
    small_tree(&env.path("data/a"), 41, 100, 300_000);
    write_data(&env.path("data/b.bin"), 42, 16 * MIB);
    let conf = env.path("archiver.conf");
    write(&conf, b"# checkpoints every 4 MiB\ncheckpoint-bytes 4M\n");
    let create = ["--config", conf.to_str().unwrap(), "create", "night", "data"];
    // Without checkpoints from the config file this failpoint is never reached (twice, unless
    // the run checkpoints as often as it says) and the create would succeed.
    let out = env.run_at("checkpoint-cache-committed:2", &create);
    assert_eq!(out.code, KILLED, "no checkpoint was made: {}", out.stderr);
    assert_eq!(decided(&env, "night"), (true, false));
    env.ok(["recover"]).assert_stderr_contains("committed the last checkpoint");
    let committed = [("base".to_string(), "small".to_string())].into();
    let e = Expect { committed: &committed, name: "night", src: "data", part: true, whole: false };
    check_invariant(&env, &e, "checkpoint-bytes from the config file");
}

#[test]
fn checkpoint_interval_makes_a_checkpoint_once_the_time_has_passed() {
    let (env, _) = big_world();
    let mut child = start_create(&env, &["--checkpoint-interval", "1"]);
    // Stopped for longer than the interval, the run checkpoints at its next check.
    signal(&child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1200));
    signal(&child, libc::SIGCONT);
    wait_until(&mut child, LIMIT, "a checkpoint record after the interval", || env.has_checkpoint_record());
    child.kill().unwrap();
    assert_eq!(wait_out(child).code, KILLED);
    env.ok(["delete", "base"]).assert_stderr_contains("committed the last checkpoint");
    let e = Expect { committed: &BTreeMap::new(), name: "night", src: "big", part: true, whole: false };
    check_invariant(&env, &e, "--checkpoint-interval 1, then SIGKILL");
}

/// A checkpoint right after the last block of a file has the whole file: it must not be marked
/// `[partial]` (nor make extract say it was cut short).
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_file_a_checkpoint_did_not_cut_is_not_marked_partial() {
    let env = Env::new();
    // Each file is a single block (below the chunker's minimum), so every checkpoint is due right
    // after some file's only block has been stored.
    for i in 0..40 {
        write_data(&env.path(format!("few/f{i:02}.bin")), 50 + i, 100_000 + 2_500 * i);
    }
    let create = ["create", "--checkpoint-bytes", "1M", "night", "few"];
    assert_eq!(env.run_at("checkpoint-cache-committed:2", &create).code, KILLED);
    env.ok(["recover"]).assert_stderr_contains("committed the last checkpoint");
    let part = check_part(&env, "night.part", "few", "checkpoint between files");
    if let Some((file, len)) = part.cut {
        assert!(
            len < src_len(&env, &file),
            "{file} is marked [partial] in night.part (and extract says it was cut short), but \
             night.part holds all {len} bytes of it"
        );
    }
}
