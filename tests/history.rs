//! Manifest history against a stolen write-only key, on a local repository and on a real
//! `archiver serve`: a hostile commit made with the write key (through the library, as an
//! attacker would) drops every archive; `archiver generations` shows what each kept generation
//! holds, `archiver rollback` brings the archives back as a new generation, and they restore
//! byte-identical. A rollback killed before its commit decision changes nothing; bad generations
//! are refused in one line; a delete with the delete key then prunes the history.

mod util;

use archiver::index::Segment;
use archiver::txn::Txn;
use util::server::{client_env, Server};
use util::*;

/// What a thief holding `key` can do without our client's rules: commit a manifest without any
/// archive (a commit without the delete permission, so the server keeps history regardless).
fn hostile_commit(env: &Env, key: &std::path::Path) {
    let session = util::craft::session_as(env, key, "thief-cache");
    let _lock = session.repo.lock("thief").unwrap();
    let head = session.head().unwrap();
    let cache = session.open_cache(&head, &|_| {}).unwrap();
    let txn = Txn::begin(&session, head.0.clone(), cache, b"hostile").unwrap();
    // A write key (format 2) sees the archives as hidden references: it drops those.
    let drop_all = |m: &mut archiver::manifest::Manifest, _: &[String], _: &_| {
        m.archives.clear();
        m.hidden.clear();
    };
    txn.commit(Segment::default(), drop_all, Vec::new(), Vec::new()).unwrap();
}

fn generations(env: &Env) -> Vec<String> {
    env.ok(["generations"]).lines()
}

fn scenario(env: &Env) {
    env.ok(["keygen"]);
    small_tree(&env.path("one"), 31, 25, 200_000);
    small_tree(&env.path("two"), 32, 25, 200_000);
    env.create("a", &["one"]);
    env.ok(["keymgmt", "--outkeyfile", "w.key", "-w"]);
    let w = env.path("w.key");
    let out = env.command(["create", "b", "two"]).env("ARCHIVER_KEYFILE", &w).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    hostile_commit(env, &w);
    assert_eq!(env.list(), Vec::<String>::new(), "the hostile commit dropped every archive");
    assert_eq!(
        generations(env),
        vec![
            "generation 3 (current): 0 archive(s); removed a, b",
            "generation 2: 2 archive(s); added b",
            "generation 1: 1 archive(s)",
        ]
    );

    // Bad generations: one line, nothing changed.
    let files = env.repo_files();
    env.run(["rollback", "9"]).assert_one_line_error(1).assert_stderr_contains("generation 9 is not kept");
    env.run(["rollback", "3"]).assert_one_line_error(1).assert_stderr_contains("already the current one");
    assert_eq!(env.repo_files().len(), files.len());

    // Killed before the commit is decided: the next command discards it, nothing changes.
    let out = env.command(["rollback", "2"]).env("ARCHIVER_FAILPOINT", "commit-indexed").output().unwrap();
    assert_eq!(util::out_of(out).code, util::crash::KILLED);
    env.ok(["recover"]);
    assert_eq!(env.list(), Vec::<String>::new());

    let out = env.ok(["rollback", "2"]);
    out.assert_stderr_contains("generation 4 holds the 2 archive(s) of generation 2");
    assert_eq!(env.list(), vec!["a", "b"]);
    assert_eq!(generations(env)[0], "generation 4 (current): 2 archive(s); added a, b");
    assert_eq!(generations(env).len(), 4, "a rollback keeps history");
    let out_a = env.extract("a", &[]);
    assert_same_tree(&env.path("one"), &out_a.join("one"));
    let out_b = env.extract("b", &[]);
    assert_same_tree(&env.path("two"), &out_b.join("two"));
    env.ok(["fsck", "--verify-data"]);

    // A new archive after the rollback deduplicates against the restored state, and a delete
    // with the delete key prunes the history.
    env.create("c", &["one"]);
    env.ok(["delete", "a"]);
    assert_eq!(generations(env), vec!["generation 6 (current): 2 archive(s)"]);
    assert_eq!(env.list(), vec!["b", "c"]);
    let out_c = env.extract("c", &[]);
    assert_same_tree(&env.path("one"), &out_c.join("one"));
    let out_b = env.extract("b", &[]);
    assert_same_tree(&env.path("two"), &out_b.join("two"));
    env.ok(["fsck", "--verify-data"]);
}

#[test]
fn a_local_repository_rolls_back_a_hostile_commit() {
    scenario(&Env::bare());
}

#[test]
fn an_http_repository_rolls_back_a_hostile_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("store"));
    scenario(&client_env(&Env::bare(), &server.url("hist")));
}
