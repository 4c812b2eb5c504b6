//! Repositories on S3-compatible storage (issue 14), through the real binary against a real S3
//! server (moto's, `util::s3`): every command works on `s3://BUCKET/PREFIX` as on a directory;
//! bad input (a missing bucket, an endpoint that is not S3, a store that ignores conditional
//! writes, a mistyped URL, an unknown profile) is one line, exit 1, and writes nothing; two
//! clients at once: one works, the other is told in one line who holds the lock.

mod util;

use std::io::{Read, Write};
use std::net::TcpListener;
use util::s3::S3;
use util::*;

fn server() -> Option<S3> {
    S3::start()
}

#[test]
fn every_command_works_on_s3() {
    let Some(s3) = server() else { return };
    let bucket = s3.bucket();
    let env = s3.env(&Env::bare(), &format!("s3://{bucket}/host/a"));
    env.ok(["keygen"]);
    small_tree(&env.path("small"), 7, 30, 200_000);
    write_data(&env.path("big/a.bin"), 8, 6 * MIB);
    env.ok(["create", "--checkpoint-bytes", "1M", "one", "small", "big"]);
    assert_eq!(env.list(), ["one"]);
    let out = env.extract("one", &[]);
    assert_same_tree(&env.path("small"), &out.join("small"));
    assert_same_tree(&env.path("big"), &out.join("big"));
    std::fs::remove_dir_all(&out).unwrap();

    // Only the repository's own objects, under its prefix; no records left; each transaction
    // has its decision.
    let files = env.repo_files();
    let kinds: std::collections::BTreeSet<&str> =
        files.keys().map(|k| k.split('/').next().unwrap()).collect();
    assert_eq!(kinds, ["config", "decided", "index", "manifest", "packs"].into_iter().collect(), "{files:?}");
    assert!(s3
        .objects(&format!("s3://{bucket}"))
        .keys()
        .all(|k| k.starts_with("host/a/") || k == "host/a/lock"));

    // Unchanged re-backup, a changed one, delete, history, verify, resume.
    env.ok(["create", "two", "small", "big"]);
    write_data(&env.path("big/b.bin"), 9, MIB);
    env.ok(["create", "three", "small", "big"]);
    env.ok(["delete", "one"]);
    assert_eq!(env.list(), ["three", "two"]);
    env.ok(["fsck"]);
    env.ok(["fsck", "--verify-data"]);
    let gens = env.ok(["generations"]).stdout;
    assert!(!gens.trim().is_empty());
    env.ok(["stats"]);
    let dir = env.path("resume");
    let partial = env.run(["extract", "-C", dir.to_str().unwrap(), "three", "big/a.bin"]);
    assert_eq!(partial.code, 0, "{}", partial.stderr);
    env.ok(["extract", "--resume", "-C", dir.to_str().unwrap(), "three"]);
    assert_same_tree(&env.path("big"), &dir.join("big"));
    env.ok(["fsck", "--prune"]);
    assert!(env.txn_records().is_empty());
}

/// A one-line error, exit 1, and nothing written to the bucket nor a key file made.
fn refused(env: &Env, s3: &S3, bucket: &str, args: &[&str], says: &str) {
    let before = s3.objects(&format!("s3://{bucket}"));
    let out = env.run(args);
    out.assert_one_line_error(1).assert_stderr_contains(says);
    assert_eq!(s3.objects(&format!("s3://{bucket}")), before, "{args:?} wrote to the bucket");
    assert!(!env.key.exists() || args[0] != "keygen", "{args:?} left a key file");
}

#[test]
fn bad_input_on_s3_is_one_line_and_writes_nothing() {
    let Some(s3) = server() else { return };
    let bucket = s3.bucket();
    let env = s3.env(&Env::bare(), &format!("s3://{bucket}/r"));
    let with = |repo: &str, vars: &[(&str, &str)]| {
        let mut e = s3.env(&env, repo);
        for (k, v) in vars {
            e.vars.retain(|(n, _)| n != k);
            e.vars.push((k.to_string(), v.to_string()));
        }
        e
    };
    // No such bucket.
    let e = with("s3://no-such-bucket-here/r", &[]);
    let out = e.run(["keygen"]);
    out.assert_one_line_error(1).assert_stderr_contains("no-such-bucket-here");
    assert!(!e.key.exists());
    // Mistyped URLs: never a local directory named like one.
    for typo in ["s3:/bucket/r", "S3://bucket/r", "s3://Bad_Bucket/r", "s3://bucket//r"] {
        let e = with(typo, &[]);
        e.run(["keygen"]).assert_one_line_error(1);
        assert!(!e.key.exists(), "{typo}: a key file was made");
        assert!(std::fs::read_dir(&e.root).unwrap().all(|d| !d
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("s3")));
    }
    // An unknown AWS_PROFILE is named, not silently replaced by other credentials.
    let e = with(&format!("s3://{bucket}/r"), &[("AWS_PROFILE", "nightly")]);
    refused(&e, &s3, &bucket, &["keygen"], "AWS_PROFILE=nightly");

    // An endpoint that is not S3: a web server answering every request with a page.
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    let web_url = format!("http://{}", web.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in web.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            let body = "<html>hello</html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let e = with(&format!("s3://{bucket}/r"), &[("AWS_ENDPOINT_URL", &web_url), ("ARCHIVER_RETRIES", "2")]);
    let out = e.run(["keygen"]);
    out.assert_one_line_error(1);
    assert!(!e.key.exists());
    // Nothing listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = with(
        &format!("s3://{bucket}/r"),
        &[("AWS_ENDPOINT_URL", &format!("http://{closed}")), ("ARCHIVER_RETRIES", "2")],
    );
    e.run(["keygen"]).assert_one_line_error(1);

    // A repository that does not exist yet: every command says so.
    let e = with(&format!("s3://{bucket}/none"), &[]);
    std::fs::write(&e.key, b"").ok();
    e.run(["list"]).assert_failed();
    assert!(s3.objects(&format!("s3://{bucket}")).is_empty(), "a failed command wrote to the bucket");
}

#[test]
fn a_store_that_ignores_conditional_writes_is_refused_by_keygen() {
    let Some(s3) = server() else { return };
    let bucket = s3.bucket();
    // A relay that drops `If-None-Match` from every request, as some gateways do.
    let proxy = proxy::Proxy::start(
        s3.endpoint.trim_start_matches("http://"),
        proxy::Policy { drop_header: Some("if-none-match".into()), ..Default::default() },
    );
    let endpoint = proxy.url("").trim_end_matches('/').to_string();
    let env = s3.env_at(&Env::bare(), &format!("s3://{bucket}/r"), &endpoint);
    let out = env.run(["keygen"]);
    out.assert_one_line_error(1).assert_stderr_contains("conditional writes");
    assert!(!env.key.exists(), "a key file was made for a store that cannot hold a repository");
    assert!(s3.objects(&format!("s3://{bucket}")).is_empty(), "the probe was left behind");
}

#[test]
fn two_clients_at_once_one_works_the_other_is_told_who_holds_the_lock() {
    let Some(s3) = server() else { return };
    let bucket = s3.bucket();
    let mut env = s3.env(&Env::bare(), &format!("s3://{bucket}/r"));
    env.vars.push(("ARCHIVER_LOCK_TTL".into(), "3".into()));
    env.ok(["keygen"]);
    write_data(&env.path("big/a.bin"), 3, 48 * MIB);
    small_tree(&env.path("small"), 4, 10, 10_000);
    // The first runs through a relay limited to 8 MB/s: it holds the lock for seconds.
    let slow = proxy::Proxy::start(
        s3.endpoint.trim_start_matches("http://"),
        proxy::Policy { rate: Some(8 << 20), ..Default::default() },
    );
    let mut slow_env = s3.env_at(&env, &format!("s3://{bucket}/r"), slow.url("").trim_end_matches('/'));
    slow_env.vars.push(("ARCHIVER_LOCK_TTL".into(), "3".into()));
    let first = slow_env.spawn_piped(&["create", "first", "big"]);
    // Wait until the first holds the lock (its lease object exists).
    s3.wait_for_lease(&format!("s3://{bucket}/r"));
    let second = env.run(["create", "second", "small"]);
    let first = crash::wait_out(first);
    assert_eq!(first.code, 0, "{}", first.stderr);
    second.assert_one_line_error(1).assert_stderr_contains("locked by another archiver");
    assert!(second.stderr.contains("create"), "the holder is not named: {}", second.stderr);
    assert_eq!(env.list(), ["first"]);
    env.ok(["fsck"]);
}
