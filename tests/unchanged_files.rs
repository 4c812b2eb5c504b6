//! What an unchanged file costs, and what keeps that safe. `create` stores a file whose
//! file-change record matches (size, mtime, ctime, inode) without reading it, its extended
//! attributes taken from the record, and, once its blocks were all found in the cache's block
//! index, without looking them up again unless a drop since took one of them out of the index
//! (`cache::drops`: drops are counted and their ids logged).
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

/// Unique data in `t/`, stored twice (the second run verifies every record), then the archives
/// holding it deleted by `deleter`; the next create must store the files again, not name blocks
/// that are gone.
fn blocks_gone_after_verification(deleter: impl Fn(&Env)) {
    if !require_tools() {
        return;
    }
    let env = Env::new();
    for i in 0..20u64 {
        write_data(&env.path(format!("t/f{i}")), 10 + i, 50_000 + i * 1000);
    }
    write_data(&env.path("t/big"), 99, 3 * MIB);
    settle();
    env.create("a1", &["t"]);
    env.create("a2", &["t"]);
    write_data(&env.path("u/other"), 7, 200_000);
    env.create("keep", &["u"]);
    deleter(&env);
    env.create("a3", &["t"]);
    let out = env.extract("a3", &[]);
    let diff = rsync_diff(&env.path("t"), &out.join("t"), &[]);
    assert!(diff.is_empty(), "{diff:?}");
    env.ok(["fsck"]);
}

#[test]
fn a_verified_record_is_not_trusted_after_its_own_cache_deleted_the_blocks() {
    blocks_gone_after_verification(|env| {
        env.ok(["delete", "a1", "a2"]);
    });
}

#[test]
fn a_verified_record_is_not_trusted_after_another_client_deleted_the_blocks() {
    blocks_gone_after_verification(|env| {
        // Another machine with the same key and its own cache: ours learns of the delete only
        // when it next syncs with the repository.
        let out =
            env.command(["delete", "a1", "a2"]).env("ARCHIVER_CACHEDIR", env.path("other-cache")).output();
        let out = out_of(out.expect("run archiver"));
        assert_eq!(out.code, 0, "{}", out.stderr);
    });
}
