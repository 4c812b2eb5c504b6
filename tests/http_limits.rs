//! A real `archiver serve` against peers that try to starve it (issue 11, finding 5):
//! - requests without a valid signature are answered 401 before their body is sent (a 200 MiB
//!   `Content-Length` is never waited for, let alone buffered), and a declared body over the
//!   route's limit gets 413 at once, even when signed;
//! - `PUT config` creates a repository only on a server started with `--allow-create`, with a
//!   config of bounded size, signed by a key that config names;
//! - 300 connections from peers without a key, trickling request heads and reconnecting, do not
//!   keep a signed client out, even in a server allowed only 256 file descriptors;
//! - a signed body that trickles or stalls is cut with 408 after `--body-timeout`.

mod util;

use archiver::access::{AccessKeys, Perm, Signed};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::server::{client_env, config_for, Server};
use util::*;

const TXN: &str = "0123456789abcdef0123456789abcdef";

/// Sends a request head (request line, then `headers`, then the blank line) and `body`, and
/// returns the status the server answers within `wait`, or None.
fn ask(addr: &str, line: &str, headers: &[String], body: &[u8], wait: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).unwrap();
    let mut head = format!("{line} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    status_of(&mut s)
}

fn status_of(s: &mut TcpStream) -> Option<u16> {
    let mut first = String::new();
    BufReader::new(s).read_line(&mut first).ok()?;
    first.split_whitespace().nth(1)?.parse().ok()
}

/// An `X-Archiver-Auth` value by `keys`' `perm` key for `method path`, naming the hash of `body`.
fn auth(keys: &AccessKeys, perm: Perm, method: &str, path: &str, body: &[u8]) -> String {
    let signed = Signed { method, path, range: "", lock: "", body };
    format!("X-Archiver-Auth: {}", keys.sign(&[perm], &signed).expect("key held"))
}

/// A server with one repository `r` made through it, and that repository's access keys.
fn served(args: &[&str], nofile: Option<u64>) -> (tempfile::TempDir, Server, Env, AccessKeys) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_limited(&tmp.path().join("store"), 2, args, nofile);
    let env = client_env(&Env::bare(), &server.url("r"));
    env.ok(["keygen"]);
    let keys = archiver::keyfile::read(&env.key).unwrap().access;
    (tmp, server, env, keys)
}

#[test]
fn bodies_are_refused_before_they_are_read() {
    let (_tmp, server, _env, keys) = served(&["--allow-create"], None);
    let wait = Duration::from_secs(5);
    let pack = format!("/v1/r/txn/{TXN}/packs/00000000");
    let huge = format!("Content-Length: {}", 200u64 << 20);
    let start = Instant::now();
    // Unsigned, and a well-formed but forged signature: 401 with none of the 200 MiB sent.
    for _ in 0..10 {
        assert_eq!(
            ask(&server.addr, &format!("PUT {pack}"), std::slice::from_ref(&huge), b"", wait),
            Some(401)
        );
    }
    let other = AccessKeys::derive(&[9; 32]);
    let forged = auth(&other, Perm::Write, "PUT", &pack, b"x");
    assert_eq!(ask(&server.addr, &format!("PUT {pack}"), &[huge.clone(), forged], b"", wait), Some(401));
    // A signature made for another route does not let a body in either.
    let elsewhere = auth(&keys, Perm::Write, "PUT", &format!("/v1/r/txn/{TXN}/begin"), b"x");
    assert_eq!(ask(&server.addr, &format!("PUT {pack}"), &[huge.clone(), elsewhere], b"", wait), Some(401));
    // Signed, but longer than the route allows: 413 at once (a begin record, a pack).
    let begin = format!("/v1/r/txn/{TXN}/begin");
    let signed = auth(&keys, Perm::Write, "PUT", &begin, b"x");
    let over = format!("Content-Length: {}", archiver::repo::limits::RECORD + 1);
    assert_eq!(ask(&server.addr, &format!("PUT {begin}"), &[over, signed], b"", wait), Some(413));
    let signed = auth(&keys, Perm::Write, "PUT", &pack, b"x");
    let over = format!("Content-Length: {}", archiver::repo::limits::PACK + 1);
    assert_eq!(ask(&server.addr, &format!("PUT {pack}"), &[over, signed], b"", wait), Some(413));
    // A read key may not send a body to a write route: 403, again before the body.
    let read = auth(&keys, Perm::Read, "PUT", &pack, b"x");
    assert_eq!(ask(&server.addr, &format!("PUT {pack}"), &[huge, read], b"", wait), Some(403));
    assert!(start.elapsed() < Duration::from_secs(5), "answers took {:?}", start.elapsed());
    // The signed body itself is still checked: a body other than the one signed is refused.
    let signed = auth(&keys, Perm::Write, "PUT", &begin, b"x");
    assert_eq!(
        ask(&server.addr, &format!("PUT {begin}"), &["Content-Length: 1".into(), signed], b"y", wait),
        Some(401)
    );
    assert!(!server.store.join("r/txn").join(TXN).exists(), "a refused request stored something");
}

#[test]
fn repositories_are_created_only_with_allow_create() {
    // Without --allow-create: refused in one line, nothing stored.
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let server = Server::start_with_args(&store, 2, &[]);
    let env = client_env(&Env::bare(), &server.url("r"));
    env.run(["keygen"]).assert_one_line_error(1).assert_stderr_contains("--allow-create");
    assert!(!store.join("r/config").exists(), "a repository was created");
    // A repository made in the store directly is served.
    env.command(["keygen"]).env("ARCHIVER_REPO", store.join("r")).output().unwrap();
    assert!(store.join("r/config").exists());
    std::fs::create_dir_all(env.path("data")).unwrap();
    std::fs::write(env.path("data/f"), b"hello").unwrap();
    env.create("a", &["data"]);
    assert_eq!(env.ok(["list"]).lines(), vec!["a"]);

    // With it: created through the server, but only with a config of bounded size whose keys
    // signed the request.
    let (_tmp, server, env, _) = served(&["--allow-create"], None);
    env.ok(["list"]);
    let keys = archiver::keyfile::read(&env.key).unwrap();
    let config = config_for(&keys, "00ff");
    let path = "/v1/new/config";
    let by_other = auth(&AccessKeys::derive(&[3; 32]), Perm::Write, "PUT", path, &config);
    let len = format!("Content-Length: {}", config.len());
    let wait = Duration::from_secs(5);
    assert_eq!(ask(&server.addr, &format!("PUT {path}"), &[len.clone(), by_other], &config, wait), Some(401));
    assert_eq!(
        ask(&server.addr, &format!("PUT {path}"), std::slice::from_ref(&len), &config, wait),
        Some(401)
    );
    let big = format!("Content-Length: {}", 100 << 20);
    let signed = auth(&keys.access, Perm::Write, "PUT", path, &config);
    assert_eq!(ask(&server.addr, &format!("PUT {path}"), &[big, signed.clone()], b"", wait), Some(413));
    assert!(!server.store.join("new/config").exists(), "a refused config was stored");
    assert_eq!(ask(&server.addr, &format!("PUT {path}"), &[len, signed], &config, wait), Some(201));
}

#[test]
fn trickling_connections_do_not_keep_a_signed_client_out() {
    // 256 file descriptors: the 300 connections below would take every one of them.
    let (_tmp, server, env, _) = served(&["--allow-create"], Some(256));
    std::fs::create_dir_all(env.path("data")).unwrap();
    std::fs::write(env.path("data/f"), b"hello").unwrap();
    env.create("before", &["data"]);
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..300)
        .map(|_| {
            let (addr, stop) = (server.addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let head =
                    b"GET /v1/r/head HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(&addr) else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    // A byte every 200 ms; reconnect when the server closes the connection.
                    for b in head.iter().cycle() {
                        if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    let mut child = env.spawn_with(&[], &["list"]);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = util::out_of(child.wait_with_output().unwrap());
    let took = start.elapsed();
    // A write under the same pressure: lock, uploads, commit.
    let create = if status.is_some() { Some(env.run(["create", "during", "data"])) } else { None };
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    assert!(status.is_some(), "`archiver list` did not finish within 20 s under 300 trickling connections");
    assert_eq!(out.code, 0, "list failed under 300 trickling connections: {}", out.stderr);
    assert_eq!(out.lines(), vec!["before"]);
    assert!(took < Duration::from_secs(10), "list took {took:?}");
    let create = create.unwrap();
    assert_eq!(create.code, 0, "create failed under 300 trickling connections: {}", create.stderr);
    assert!(!server.log().contains("panicked"), "the server panicked:\n{}", server.log());
}

#[test]
fn a_trickling_or_stalled_body_is_cut() {
    let (_tmp, server, _env, keys) = served(&["--allow-create", "--body-timeout", "1"], None);
    let begin = format!("/v1/r/txn/{TXN}/begin");
    let body = vec![b'x'; 1000];
    for trickle in [true, false] {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let head = format!(
            "PUT {begin} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{}\r\n\r\n",
            body.len(),
            auth(&keys, Perm::Write, "PUT", &begin, &body)
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            // 10 bytes a second, or 10 bytes and then nothing.
            for i in 0..1000 {
                if (!trickle && i >= 10) || w.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let start = Instant::now();
        let status = status_of(&mut s);
        let took = start.elapsed();
        drop(s);
        assert_eq!(status, Some(408), "trickle={trickle}: the body was not cut");
        assert!(took < Duration::from_secs(4), "trickle={trickle}: cut after {took:?}");
        writer.join().unwrap();
    }
}
