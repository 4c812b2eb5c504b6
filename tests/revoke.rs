//! Revoking a stolen write key (issue 16; docs/SECURITY.md): `archiver keymgmt --revoke-write`
//! with the delete key retires the write key in force and writes a key file holding a new one.
//! Through a real `archiver serve` the stolen key is then refused by the server itself (requests
//! signed with it, sent by the library's HTTP client, which skips the binary's checks), while
//! keys made from the new key file create archives the new full key restores byte-exact. The
//! server stores an access list only from a delete key, signed, as the next generation; on a
//! local repository the clients keep the revocation.

mod util;

use archiver::access::list::AccessList;
use archiver::access::{AccessKeys, Perm};
use archiver::keyfile::KeyFile;
use util::server::Server;
use util::*;

fn with_key(env: &Env, key: &str) -> Env {
    let mut e = env.view();
    e.key = env.path(key);
    e
}

fn keymgmt(env: &Env, args: &[&str]) -> Out {
    let mut all = vec!["keymgmt"];
    all.extend_from_slice(args);
    env.run(all)
}

#[test]
fn a_revoked_write_key_is_refused_by_the_server_and_the_new_one_writes() {
    let store = Env::bare().path("store");
    let server = Server::start(&store);
    let env = server.client(&Env::bare(), "r");
    env.ok(["keygen"]);
    small_tree(&env.path("a"), 2, 8, 100_000);
    env.create("before", &["a"]);
    keymgmt(&env, &["--outkeyfile", "stolen.key", "-w"]).assert_no_panic();
    let stolen = with_key(&env, "stolen.key");
    stolen.create("by-thief-before", &["a"]);

    // Only the delete key revokes, and only with -w (the new write key has to go somewhere).
    keymgmt(&stolen, &["--revoke-write", "--outkeyfile", "x.key", "-w"]).assert_one_line_error(1);
    assert!(!env.path("x.key").exists());
    keymgmt(&env, &["--revoke-write", "--outkeyfile", "x.key", "-r"]).assert_failed();
    let out = keymgmt(&env, &["--revoke-write", "--outkeyfile", "full2.key", "-r", "-w", "-d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_stderr_contains("retired the write key in force");

    // The stolen key: refused by the binary in one line, and by the server to the library client.
    small_tree(&env.path("b"), 3, 4, 50_000);
    let refused = stolen.run(["create", "after", "b"]);
    refused.assert_one_line_error(1).assert_stderr_contains("revoked");
    let thief = archiver::keyfile::read(&env.path("stolen.key")).unwrap();
    let r = server.repo("r", &thief);
    let err = r.read_config().unwrap_err().to_string();
    assert!(err.contains("revoked"), "{err}");
    let txn = archiver::session::random_id().unwrap();
    let err = r.begin(&txn, b"intent").unwrap_err().to_string();
    assert!(err.contains("revoked"), "{err}");
    // Nor can it store an access list of its own (that needs the delete key).
    let err = r.put_access_list(2, b"archiver-access 1\n").unwrap_err().to_string();
    assert!(err.contains("delete"), "{err}");

    // The old full key still reads, but neither writes nor deletes.
    let old_full = env.run(["create", "by-old-full", "b"]);
    old_full.assert_one_line_error(1).assert_stderr_contains("its write key was revoked");
    env.run(["delete", "before"]).assert_one_line_error(1).assert_stderr_contains("revoked");
    let restored = env.extract("by-thief-before", &[]);
    assert_same_tree(&env.path("a"), &restored.join("a"));

    // Keys made from the new key file write; the new full key restores and verifies.
    let full2 = with_key(&env, "full2.key");
    keymgmt(&full2, &["--outkeyfile", "nightly2.key", "-w"]).assert_no_panic();
    let nightly2 = with_key(&env, "nightly2.key");
    nightly2.create("after", &["b"]);
    assert_same_tree(&env.path("b"), &full2.extract("after", &[]).join("b"));
    let fsck = full2.ok(["fsck", "--verify-data"]);
    assert!(fsck.stdout.contains("all intact"), "{}", fsck.stdout);
    let list = full2.ok(["list"]).stdout;
    for name in ["before", "by-thief-before", "after"] {
        assert!(list.lines().any(|l| l == name), "{name} in {list}");
    }

    // A second revocation retires the second write key too; the first stays retired.
    keymgmt(&full2, &["--revoke-write", "--outkeyfile", "full3.key", "-r", "-w", "-d"]).assert_no_panic();
    nightly2.run(["create", "again", "b"]).assert_one_line_error(1).assert_stderr_contains("revoked");
    stolen.run(["create", "again", "b"]).assert_one_line_error(1).assert_stderr_contains("revoked");
    with_key(&env, "full3.key").create("again", &["b"]);
    assert!(server.log().is_empty() || !server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn the_server_stores_only_the_next_access_list_signed_by_the_delete_key() {
    let store = Env::bare().path("store");
    let server = Server::start(&store);
    let env = server.client(&Env::bare(), "r");
    env.ok(["keygen"]);
    let full: KeyFile = archiver::keyfile::read(&env.key).unwrap();
    let r = server.repo("r", &full);
    let id = archiver::keycheck::parse(&r.read_config().unwrap().unwrap(), "r").unwrap().id;
    let base = full.access.verifiers();
    let new_write = |n: u8| *AccessKeys::derive(&[n; 32]).verifiers().get(Perm::Write).unwrap();
    let l1 = AccessList::next(None, &base, new_write(1), 1).unwrap();
    // Signed by another repository's delete key, for another repository, or as generation 2
    // first: refused, and nothing is stored.
    let other = AccessKeys::derive(&[9; 32]);
    for (gen, body, what) in [
        (1, l1.encode(&id, &other).unwrap(), "delete key"),
        (1, l1.encode("00ff", &full.access).unwrap(), "another repository"),
        (2, l1.encode(&id, &full.access).unwrap(), "next one"),
    ] {
        let err = r.put_access_list(gen, &body).unwrap_err().to_string();
        assert!(err.contains(what), "{what}: {err}");
    }
    assert_eq!(r.access_list().unwrap(), None);
    let b1 = l1.encode(&id, &full.access).unwrap();
    r.put_access_list(1, &b1).unwrap();
    r.put_access_list(1, &b1).unwrap(); // a retry after a lost answer
    assert_eq!(r.access_list().unwrap().as_deref(), Some(&b1[..]));
    // Two revocations racing for generation 2: one is stored, the other refused.
    let l2a = AccessList::next(Some(&l1), &base, new_write(2), 2).unwrap();
    let l2b = AccessList::next(Some(&l1), &base, new_write(3), 2).unwrap();
    r.put_access_list(2, &l2a.encode(&id, &full.access).unwrap()).unwrap();
    let err = r.put_access_list(2, &l2b.encode(&id, &full.access).unwrap()).unwrap_err().to_string();
    assert!(err.contains("next one"), "{err}");
    // A list that would revive a retired key is refused.
    let mut revives = AccessList::next(Some(&l2a), &base, new_write(4), 3).unwrap();
    revives.retired.retain(|(k, _)| *k != new_write(1));
    let err = r.put_access_list(3, &revives.encode(&id, &full.access).unwrap()).unwrap_err().to_string();
    assert!(err.contains("retired"), "{err}");
}

#[test]
fn on_a_local_repository_clients_keep_the_revocation() {
    let env = Env::new();
    small_tree(&env.path("a"), 1, 4, 50_000);
    keymgmt(&env, &["--outkeyfile", "stolen.key", "-w"]).assert_no_panic();
    let out = keymgmt(&env, &["--revoke-write", "--outkeyfile", "full2.key", "-r", "-w", "-d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The outkeyfile is never overwritten, and is checked before anything is revoked.
    keymgmt(&env, &["--revoke-write", "--outkeyfile", "full2.key", "-r", "-w", "-d"])
        .assert_one_line_error(1);
    let stolen = with_key(&env, "stolen.key");
    stolen.run(["create", "x", "a"]).assert_one_line_error(1).assert_stderr_contains("revoked");
    let full2 = with_key(&env, "full2.key");
    full2.create("x", &["a"]);
    assert_same_tree(&env.path("a"), &env.extract("x", &[]).join("a"));
    // A damaged access list is an error for every key, never a fallback to the config's keys.
    let dir = env.repo.join("access");
    let newest = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&newest, bytes).unwrap();
    stolen.run(["create", "y", "a"]).assert_one_line_error(1).assert_stderr_contains("damaged access list");
    full2.run(["list"]).assert_one_line_error(1).assert_stderr_contains("damaged access list");
}
