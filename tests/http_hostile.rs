//! The client against a hostile server (or whatever answers on a plain-HTTP path): a small HTTP
//! server written here (`util::hostile`) serves the real repository config, then lies. Each test
//! runs the real binary and bounds it in time; none may hang, follow the server elsewhere or
//! take in more than the route allows:
//! - a 423 announcing a lease of 10^15 ms fails at once, naming the client's 60 s limit;
//! - a lease announced as 0 ms is renewed a few times a second, not hundreds;
//! - a 307 is not followed: the redirect target receives nothing;
//! - an answer that stalls (before or inside its body) fails within the read timeout;
//! - a 1.5 GiB answer (declared, or chunked without end) is refused after a few MiB.

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use util::hostile::{answer, stall, Hostile, Next, Req};
use util::server::client_env;
use util::*;

/// A key file and a local repository made with it: the hostile server serves its config, so the
/// client gets past opening the repository.
fn setup() -> (Env, Vec<u8>) {
    let env = Env::new();
    let config = std::fs::read(env.repo.join("config")).expect("the repository's config");
    (env, config)
}

/// Runs `archiver ARGS` on `url` with `vars`; kills it after `limit`. The output, and how long it ran.
fn bounded(env: &Env, url: &str, vars: &[(&str, &str)], args: &[&str], limit: Duration) -> (Out, Duration) {
    let start = Instant::now();
    let mut child: Child = client_env(env, url).spawn_with(vars, args);
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = util::out_of(child.wait_with_output().unwrap());
            panic!("archiver {args:?} still ran after {limit:?} (killed); stderr:\n{}", out.stderr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = util::out_of(child.wait_with_output().unwrap());
    (out, start.elapsed())
}

/// The config for `GET .../config`, `other` for everything else.
fn with_config(
    config: Vec<u8>,
    other: impl Fn(&Req, &mut TcpStream) -> Next + Send + Sync + 'static,
) -> Hostile {
    Hostile::start(move |req, s| {
        if req.method == "GET" && req.path.ends_with("/config") {
            answer(s, "200 OK", &[], &config)
        } else if req.method == "GET" && req.path.ends_with("/access") {
            answer(s, "404 Not Found", &[], b"no access list: the config's keys are in force")
        } else {
            other(req, s)
        }
    })
}

#[test]
fn a_lock_held_for_ages_is_not_waited_for() {
    let (env, config) = setup();
    let server = with_config(config, |req, s| match req.method.as_str() {
        "POST" if req.path.contains("/lock?") => {
            answer(s, "423 Locked", &[("X-Archiver-Lock-Remaining-Ms", "1000000000000000")], b"someone else")
        }
        _ => answer(s, "404 Not Found", &[], b"no"),
    });
    let (out, took) = bounded(&env, &server.url("r"), &[], &["delete", "x"], Duration::from_secs(20));
    out.assert_one_line_error(1)
        .assert_stderr_contains("locked by another archiver")
        .assert_stderr_contains("60 s");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_zero_lease_is_renewed_a_few_times_a_second() {
    let (env, config) = setup();
    let server = with_config(config, |req, s| match req.method.as_str() {
        "POST" if req.path.contains("/lock?") => {
            answer(s, "200 OK", &[("X-Archiver-Lock-Ttl-Ms", "0")], b"tok")
        }
        "POST" if req.path.ends_with("/lock/tok") => answer(s, "200 OK", &[], b""),
        "DELETE" => answer(s, "204 No Content", &[], b""),
        // Recovery lists pending transactions: keep the client (and its renewer) busy for 2 s.
        _ => {
            std::thread::sleep(Duration::from_secs(2));
            answer(s, "400 Bad Request", &[], b"no")
        }
    });
    let (out, _) = bounded(
        &env,
        &server.url("r"),
        &[("ARCHIVER_RETRIES", "1")],
        &["delete", "x"],
        Duration::from_secs(20),
    );
    out.assert_failed();
    let renewals = server.count("POST", "/v1/r/lock/tok");
    assert!(server.count("DELETE", "/v1/r/lock/tok") == 1, "the lock was not released: {:?}", server.log());
    assert!(renewals <= 12, "{renewals} renewals of a lease while the client waited 2 s");
}

#[test]
fn redirects_are_not_followed() {
    let (env, _) = setup();
    let target = Hostile::start(|_, s| answer(s, "500 Internal Server Error", &[], b"should not be here"));
    let location = format!("http://{}/v1/r/config", target.addr);
    let server =
        Hostile::start(move |_, s| answer(s, "307 Temporary Redirect", &[("Location", &location)], b""));
    let (out, _) = bounded(&env, &server.url("r"), &[], &["list"], Duration::from_secs(20));
    out.assert_one_line_error(1)
        .assert_stderr_contains("307")
        .assert_stderr_contains("does not follow redirects");
    std::thread::sleep(Duration::from_millis(200));
    assert!(target.log().is_empty(), "the redirect was followed: {:?}", target.log());
    // Nor are the lock token and a request body carried elsewhere: a redirected lock request.
    let (env2, config) = setup();
    let location = format!("http://{}/v1/r/lock", target.addr);
    let server =
        with_config(config, move |_, s| answer(s, "308 Permanent Redirect", &[("Location", &location)], b""));
    let (out, _) = bounded(&env2, &server.url("r"), &[], &["delete", "x"], Duration::from_secs(20));
    out.assert_one_line_error(1).assert_stderr_contains("308");
    assert!(target.log().is_empty(), "the redirect was followed: {:?}", target.log());
}

#[test]
fn a_stalled_answer_fails_within_the_read_timeout() {
    let (env, config) = setup();
    let vars = [("ARCHIVER_RETRIES", "1"), ("ARCHIVER_TIMEOUT", "2")];
    // Headers and a tenth of the body, then nothing.
    let partial = Hostile::start(move |_, s| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", config.len());
        let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(&config[..config.len() / 10]));
        stall(Duration::from_secs(60))
    });
    let (out, took) = bounded(&env, &partial.url("r"), &vars, &["list"], Duration::from_secs(20));
    out.assert_one_line_error(1).assert_stderr_contains("stopped sending");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    // No answer at all.
    let silent = Hostile::start(|_, _| stall(Duration::from_secs(60)));
    let (out, took) = bounded(&env, &silent.url("r"), &vars, &["list"], Duration::from_secs(20));
    out.assert_one_line_error(1);
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn a_huge_answer_is_refused_without_reading_it() {
    let (env, _) = setup();
    const HUGE: u64 = 3 << 29; // 1.5 GiB
    for chunked in [false, true] {
        let server = Hostile::start(move |_, s| {
            let head = if chunked {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n")
            };
            if s.write_all(head.as_bytes()).is_err() {
                return Next::Close;
            }
            let block = vec![b'x'; 1 << 20];
            let mut sent = 0u64;
            while sent < HUGE {
                let r = if chunked {
                    s.write_all(format!("{:x}\r\n", block.len()).as_bytes())
                        .and_then(|_| s.write_all(&block))
                        .and_then(|_| s.write_all(b"\r\n"))
                } else {
                    s.write_all(&block)
                };
                if r.is_err() {
                    break;
                }
                sent += block.len() as u64;
            }
            SENT.fetch_max(sent, Ordering::Relaxed);
            Next::Close
        });
        SENT.store(0, Ordering::Relaxed);
        let (out, _) =
            bounded(&env, &server.url("r"), &[("ARCHIVER_RETRIES", "1")], &["list"], Duration::from_secs(30));
        out.assert_one_line_error(1).assert_stderr_contains("larger than the");
        std::thread::sleep(Duration::from_millis(300));
        let sent = SENT.load(Ordering::Relaxed);
        assert!(sent < 64 << 20, "chunked={chunked}: the client took in {} MiB", sent >> 20);
    }
}

static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
