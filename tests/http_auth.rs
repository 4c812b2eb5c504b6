//! Access control and TLS on a real `archiver serve` on 127.0.0.1. A wrong key file, a read-only
//! key attempting `create` and a write-only key attempting `delete` or `extract` are refused in
//! one line and change nothing on the server (every file under the store compared before and
//! after). Forged requests that skip the client's own checks (no signature, a tampered body, a
//! key without the permission the route needs, a write key committing deletions or discarding a
//! checkpointed transaction) get 401/403
//! from the server, again with nothing changed. A write key's commits keep the manifests they
//! supersede. Over HTTPS (a self-signed certificate trusted with --cacert) the whole life cycle
//! restores byte-identical, and an untrusted certificate or a bad key file fails cleanly.

mod util;

use archiver::access::{AccessKeys, Perm, Signed};
use archiver::repo::CommitRequest;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use util::server::{client_env, Server};
use util::*;

/// A fresh environment (own key file and cache) whose repository is `url`.
fn remote(url: &str) -> Env {
    client_env(&Env::bare(), url)
}

fn with_key(env: &Env, key: &Path, args: &[&str]) -> Out {
    let out = util::out_of(env.command(args).env("ARCHIVER_KEYFILE", key).output().unwrap());
    out.assert_no_panic();
    out
}

fn refused(env: &Env, key: &Path, args: &[&str], why: &str) {
    let out = with_key(env, key, args);
    out.assert_one_line_error(1).assert_stderr_contains(why);
}

/// A raw request signed with `perm` (whatever the route needs) and carrying lock token `lock`
/// (if not empty), sent without the client's checks: status and body.
#[allow(clippy::too_many_arguments)]
fn raw(
    base: &str,
    keys: &AccessKeys,
    perm: Option<Perm>,
    method: &str,
    route: &str,
    body: &[u8],
    sign_body: &[u8],
    lock: &str,
) -> (u16, String) {
    let url = format!("{base}/v1/r/{route}");
    let path = format!("/v1/r/{route}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    let mut req = client.request(method.parse().unwrap(), &url).body(body.to_vec());
    if let Some(p) = perm {
        let signed = Signed { method, path: &path, range: "", lock, body: sign_body };
        req = req.header("X-Archiver-Auth", keys.sign(&[p], &signed).expect("key held"));
    }
    if !lock.is_empty() {
        req = req.header("X-Archiver-Lock", lock);
    }
    let resp = req.send().expect("server answers");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

#[test]
fn restricted_and_wrong_keys_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let server = Server::start(&store);
    let env = remote(&server.url("r"));
    env.ok(["keygen"]);
    small_tree(&env.path("data"), 11, 40, 200_000);
    env.create("first", &["data"]);
    for (file, flags) in [("r.key", "-r"), ("w.key", "-w"), ("rd.key", "-rd")] {
        env.ok(["keymgmt", "--outkeyfile", file, flags]);
    }
    env.run(["keymgmt", "--outkeyfile", "none.key"])
        .assert_one_line_error(1)
        .assert_stderr_contains("-r (read)");
    let other = remote(&server.url("other"));
    other.ok(["keygen"]);
    let repo_dir = store.join("r");
    let before = hashed_files(&repo_dir);

    // Refused by the client (and, were it asked, the server): one line each, nothing changed.
    refused(&env, &other.key, &["list"], "refused the key file");
    refused(&env, &other.key, &["create", "x", "data"], "refused the key file");
    refused(&env, &env.path("r.key"), &["create", "x", "data"], "cannot create archives");
    refused(&env, &env.path("w.key"), &["delete", "first"], "cannot delete archives");
    refused(&env, &env.path("w.key"), &["extract", "-C", "out", "first"], "cannot extract");
    refused(&env, &env.path("r.key"), &["delete", "first"], "delete key");
    assert_eq!(hashed_files(&repo_dir), before, "a refused command changed the repository");

    // Refused by the server: requests that skip the client's checks.
    let full = archiver::keyfile::read(&env.key).unwrap().access;
    let base = &server.base();
    let first_pack = before.keys().find(|k| k.starts_with("packs/")).expect("a pack").clone();
    assert_eq!(raw(base, &full, None, "PUT", "txn/abcd/begin", b"x", b"x", "").0, 401, "unsigned");
    assert_eq!(
        raw(base, &full, Some(Perm::Write), "PUT", "txn/abcd/begin", b"y", b"x", "").0,
        401,
        "tampered body"
    );
    let wrong = archiver::keyfile::read(&other.key).unwrap().access;
    assert_eq!(
        raw(base, &wrong, Some(Perm::Write), "PUT", "txn/abcd/begin", b"x", b"x", "").0,
        401,
        "wrong key"
    );
    assert_eq!(
        raw(base, &full, Some(Perm::Read), "PUT", "txn/abcd/begin", b"x", b"x", "").0,
        403,
        "read key writes"
    );
    assert_eq!(
        raw(base, &full, Some(Perm::Write), "GET", &first_pack, b"", b"", "").0,
        403,
        "write key reads data"
    );
    let deleting = CommitRequest {
        gen: 9,
        delete_packs: vec![first_pack["packs/".len()..].into()],
        ..Default::default()
    }
    .encode();
    let status = raw(base, &full, Some(Perm::Write), "POST", "txn/abcd/commit", &deleting, &deleting, "").0;
    assert_eq!(status, 403, "write key commits a deletion");
    assert_eq!(raw(base, &full, Some(Perm::Read), "GET", &first_pack, b"", b"", "").0, 200, "read key reads");
    // Errors name objects, not where the server keeps them.
    let (status, why) = raw(base, &full, Some(Perm::Read), "GET", "packs/abcd/0001", b"", b"", "");
    assert_eq!(status, 404, "{why}");
    let store_dir = std::fs::canonicalize(&store).unwrap();
    assert!(why.contains("packs/") && !why.contains(store_dir.to_str().unwrap()), "{why}");
    assert_eq!(hashed_files(&repo_dir), before, "a refused request changed the repository");

    // What each key may do, it does. A write key's commit keeps the manifest it supersedes.
    let w = env.path("w.key");
    let out = with_key(&env, &w, &["create", "second", "data"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(entries_below(&repo_dir.join("manifest")).len(), 2, "the superseded manifest was kept");
    // It cannot list them: the names are sealed to readers (format 2); the read key lists them.
    assert!(with_key(&env, &w, &["list"]).stderr.contains("holds no data-secret"));
    assert_eq!(with_key(&env, &env.path("r.key"), &["list"]).stdout, "first\nsecond\n");
    let out = with_key(&env, &env.path("r.key"), &["extract", "-C", "restored", "second"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_tree(&env.path("data"), &env.path("restored/data"));
    // A run stopped early leaves third.part; the completed run keeps it (a write key deletes nothing).
    small_tree(&env.path("more"), 12, 30, 300_000);
    let out = with_key(&env, &w, &["create", "--checkpoint-bytes", "1M", "--maxbw", "1M", "third", "more"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = with_key(&env, &w, &["create", "third", "more"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_stderr_contains("kept \"third.part\"");
    // A run killed after a checkpoint leaves a pending transaction whose checkpoint is the user's
    // data: a write key may not discard it, even through the raw API; recovery commits it.
    small_tree(&env.path("extra"), 13, 30, 300_000);
    let args = ["create", "--checkpoint-bytes", "1M", "fourth", "extra"];
    let mut killed = env.command(args);
    killed.env("ARCHIVER_KEYFILE", &w).env("ARCHIVER_FAILPOINT", "checkpoint-recorded");
    assert_eq!(util::out_of(killed.output().unwrap()).code, util::crash::KILLED);
    let txns = entries_below(&repo_dir.join("txn"));
    let ck = txns.iter().find(|p| p.contains("/checkpoint-")).expect("a checkpointed transaction");
    let txn = ck.split('/').next().unwrap().to_string();
    let before = hashed_files(&repo_dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let token = loop {
        // The killed client's lease runs out after the server's 2 s.
        let (status, body) = raw(base, &full, Some(Perm::Write), "POST", "lock", b"", b"", "");
        if status == 200 {
            break body;
        }
        assert!(status == 423 && std::time::Instant::now() < deadline, "taking the lock: {status} {body}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let route = format!("txn/{txn}/abort");
    let (status, why) = raw(base, &full, Some(Perm::Write), "POST", &route, b"", b"", &token);
    assert_eq!((status, why.contains("checkpointed")), (403, true), "write key aborts a checkpoint: {why}");
    let release = format!("lock/{token}");
    assert_eq!(raw(base, &full, Some(Perm::Write), "DELETE", &release, b"", b"", &token).0, 204);
    assert_eq!(hashed_files(&repo_dir), before, "a refused abort changed the repository");
    let out = with_key(&env, &w, &["create", "fourth", "extra"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_stderr_contains("fourth.part");
    let out = with_key(&env, &env.path("rd.key"), &["delete", "first"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(entries_below(&repo_dir.join("manifest")).len(), 1, "a delete commit prunes old manifests");
    assert_eq!(env.list(), vec!["fourth", "fourth.part", "second", "third", "third.part"]);
    env.ok(["fsck"]);
}

fn openssl_cert(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Some((cert, key)),
        _ => None,
    }
}

#[test]
fn https_with_a_self_signed_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((cert, key)) = openssl_cert(tmp.path()) else {
        return util::unavailable("the openssl command cannot make a test certificate (.ci/run installs it)");
    };
    let store = tmp.path().join("store");
    let server = Server::start_tls(&store, &cert, &key);
    assert!(server.base().starts_with("https://"), "{}", server.base());
    let env = remote(&server.url("r"));
    let trusted = |args: &[&str]| {
        let out = util::out_of(env.command(args).env("ARCHIVER_CACERT", &cert).output().unwrap());
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    };
    trusted(&["keygen"]);
    small_tree(&env.path("data"), 5, 30, 300_000);
    trusted(&["create", "a", "data"]);
    trusted(&["extract", "-C", "restored", "a"]);
    assert_same_tree(&env.path("data"), &env.path("restored/data"));
    trusted(&["fsck", "--verify-data"]);

    // Without --cacert the self-signed certificate is not trusted: one line, no retries forever.
    let out = util::out_of(env.command(["list"]).env("ARCHIVER_RETRIES", "2").output().unwrap());
    out.assert_one_line_error(1).assert_stderr_contains("certificate");
    // Plain HTTP to the HTTPS port fails cleanly too.
    let plain = format!("http://{}/r", server.addr);
    let out = util::out_of(
        env.command(["list"]).env("ARCHIVER_REPO", &plain).env("ARCHIVER_RETRIES", "2").output().unwrap(),
    );
    out.assert_one_line_error(1);

    // A certificate or key file that is not PEM: one line from serve, not a panic.
    let bogus = tmp.path().join("bogus.pem");
    std::fs::write(&bogus, "not a key").unwrap();
    let out = util::out_of(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(&store)
            .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key"])
            .arg(&bogus)
            .output()
            .unwrap(),
    );
    out.assert_one_line_error(1).assert_stderr_contains("private key");
}
