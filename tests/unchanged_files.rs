//! What an unchanged file costs, and what keeps that safe. `create` stores a file whose
//! file-change record matches (size, mtime, ctime, inode) without reading it, its extended
//! attributes taken from the record, and, once its blocks were all found in the cache's block
//! index (by the run that read the file, or the first that looked them up), without looking them
//! up again unless a drop since took one of them out of the index (`cache::drops`: drops are
//! counted and their ids logged).
//! These tests change what each shortcut relies on and check that the next archive still
//! restores exactly: attributes changed on a file whose content did not, and the file's only
//! blocks deleted from the repository after its record was verified, by this cache's own
//! `delete` or by another client's.

mod util;

use std::path::Path;
use std::time::Duration;
use util::oracle::{require_tools, rsync_diff};
use util::*;

fn setfattr(path: &Path, name: &str, value: Option<&str>) {
    let p = path.to_str().unwrap();
    let args: Vec<&str> = match value {
        Some(v) => vec!["-n", name, "-v", v, p],
        None => vec!["-x", name, p],
    };
    let st = std::process::Command::new("setfattr").args(&args).status().expect("setfattr (package attr)");
    assert!(st.success(), "setfattr {args:?}");
}

fn names(path: &Path) -> Vec<String> {
    archiver::fsmeta::xattrs(path, Default::default())
        .unwrap()
        .into_iter()
        .map(|(n, v)| format!("{}={}", String::from_utf8_lossy(&n), String::from_utf8_lossy(&v)))
        .collect()
}

/// Files written now are too new for the file-change cache (a change within the timestamp
/// granularity could go unseen): let them settle first.
fn settle() {
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn attributes_changed_on_an_unchanged_file_are_stored_again() {
    if !require_tools() {
        return;
    }
    let env = Env::new();
    let f = env.path("t/f");
    write_data(&f, 1, 100_000);
    write_data(&env.path("t/g"), 2, 100_000);
    setfattr(&f, "user.a", Some("one"));
    settle();
    env.create("a1", &["t"]);
    env.create("a2", &["t"]); // f's record now carries its attributes and is verified
    setfattr(&f, "user.a", Some("two"));
    setfattr(&f, "user.b", Some("new"));
    settle();
    env.create("a3", &["t"]);
    setfattr(&f, "user.a", None);
    settle();
    env.create("a4", &["t"]);
    env.create("a5", &["t"]); // unchanged again: the attributes come from the record
    for (name, want) in [
        ("a2", vec!["user.a=one"]),
        ("a3", vec!["user.a=two", "user.b=new"]),
        ("a4", vec!["user.b=new"]),
        ("a5", vec!["user.b=new"]),
    ] {
        let out = env.extract(name, &[]);
        assert_eq!(names(&out.join("t/f")), want, "{name}");
        assert!(names(&out.join("t/g")).is_empty(), "{name}");
        let diff = rsync_diff(&env.path("t"), &out.join("t"), &[]);
        if name == "a4" || name == "a5" {
            assert!(diff.is_empty(), "{name}: {diff:?}");
        }
    }
}

/// Unique data in `t/`, stored `runs` times (the first run verifies the records of the files it
/// read once their blocks are indexed; a later one those it looked up), then the archives
/// holding it deleted by `deleter`; the next create must store the files again, not name blocks
/// that are gone.
fn blocks_gone_after_verification(runs: usize, deleter: impl Fn(&Env)) {
    if !require_tools() {
        return;
    }
    let env = Env::new();
    for i in 0..20u64 {
        write_data(&env.path(format!("t/f{i}")), 10 + i, 50_000 + i * 1000);
    }
    write_data(&env.path("t/big"), 99, 3 * MIB);
    settle();
    let names: Vec<String> = (1..=runs).map(|i| format!("a{i}")).collect();
    for name in &names {
        env.create(name, &["t"]);
    }
    assert_eq!(unverified(&env), 0, "every record is verified");
    write_data(&env.path("u/other"), 7, 200_000);
    env.create("keep", &["u"]);
    deleter(&env);
    env.create("again", &["t"]);
    let out = env.extract("again", &[]);
    let diff = rsync_diff(&env.path("t"), &out.join("t"), &[]);
    assert!(diff.is_empty(), "{diff:?}");
    env.ok(["fsck"]);
}

/// The file-change records in the cache that are not verified.
fn unverified(env: &Env) -> i64 {
    let db = rusqlite::Connection::open(cache_file(&env.cache)).unwrap();
    db.query_row("SELECT COUNT(*) FROM files WHERE verified IS NULL", [], |r| r.get(0)).unwrap()
}

/// Deletes every archive of `blocks_gone_after_verification`'s runs with this cache.
fn delete_own(env: &Env, runs: usize) {
    let names: Vec<String> = (1..=runs).map(|i| format!("a{i}")).collect();
    let args: Vec<&str> = ["delete"].into_iter().chain(names.iter().map(|n| n.as_str())).collect();
    env.ok(args);
}

/// The same with another machine's cache (same key): ours learns of the delete only when it
/// next syncs with the repository.
fn delete_other(env: &Env, runs: usize) {
    let names: Vec<String> = (1..=runs).map(|i| format!("a{i}")).collect();
    let out = env.command(["delete"]).args(&names).env("ARCHIVER_CACHEDIR", env.path("other-cache")).output();
    let out = out_of(out.expect("run archiver"));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_verified_record_is_not_trusted_after_its_own_cache_deleted_the_blocks() {
    blocks_gone_after_verification(2, |env| delete_own(env, 2));
    blocks_gone_after_verification(1, |env| delete_own(env, 1));
}

#[test]
fn a_verified_record_is_not_trusted_after_another_client_deleted_the_blocks() {
    blocks_gone_after_verification(2, |env| delete_other(env, 2));
    blocks_gone_after_verification(1, |env| delete_other(env, 1));
}

/// The run that reads a file verifies its record once the blocks are indexed: at a checkpoint's
/// segment or at the commit's, whichever lists the last of them. Checkpoints every 1 MiB here
/// cut the big file and many small ones.
#[test]
fn the_run_that_reads_a_file_verifies_its_record() {
    let env = Env::new();
    small_tree(&env.path("t/small"), 5, 60, 40_000);
    write_data(&env.path("t/big"), 6, 5 * MIB);
    write_data(&env.path("t/same1"), 7, 30_000);
    write_data(&env.path("t/same2"), 7, 30_000); // the same blocks as same1, stored once
    settle();
    env.ok(["create", "--checkpoint-bytes", "1M", "a1", "t"]);
    let db = rusqlite::Connection::open(cache_file(&env.cache)).unwrap();
    let records: i64 = db.query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0)).unwrap();
    assert_eq!(records, 63, "every file read has a record");
    assert_eq!(unverified(&env), 0, "every record is verified by the run that read the file");
    // The stamps hold: the next run reuses every file and the archive restores exactly.
    env.create("a2", &["t"]);
    let out = env.extract("a2", &[]);
    assert_eq!(snapshot(&env.path("t")), snapshot(&out.join("t")));
}
