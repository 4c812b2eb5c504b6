//! A real S3 server for the tests (the unit tests here, and the integration tests through
//! `tests/util/s3.rs`): moto's server (`moto_server`, from PyPI; `.ci/run`
//! installs it), started on a free port of 127.0.0.1, in memory, with conditional writes
//! (`If-None-Match: *`). Chosen for the conformance suite because it starts in a second and
//! implements the conditional PUT the protocol relies on; it keeps nothing across a restart, so
//! the restart tests need an on-disk server. Without `moto_server` the tests fail, unless
//! `ARCHIVER_TEST_SKIP_UNAVAILABLE=1` says that is expected.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

impl MotoServer {
    /// Starts a server, or says why it cannot (panicking unless skipping is allowed: `None`).
    pub fn start() -> Option<MotoServer> {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let probe =
            Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if let Err(e) = probe {
            if std::env::var("ARCHIVER_TEST_SKIP_UNAVAILABLE").as_deref() == Ok("1") {
                eprintln!("SKIPPED: moto_server cannot run ({e})");
                return None;
            }
            panic!("moto_server cannot run ({e}): `pip install 'moto[server]'` (ARCHIVER_TEST_SKIP_UNAVAILABLE=1 skips)");
        }
        // A watchdog shell ends the server when this test process ends, even if it is shared by
        // a static that is never dropped.
        let watch = "moto_server -H 127.0.0.1 -p \"$1\" >/dev/null 2>&1 & m=$!; \
                     while kill -0 \"$2\" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m";
        let child = Command::new("sh")
            .args(["-c", watch, "sh", &port.to_string(), &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        let server = MotoServer { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start listening within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// Creates bucket `name` (moto takes an unsigned request).
    pub fn bucket(&self, name: &str) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::blocking::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .expect("PUT bucket");
        assert!(r.status().is_success(), "creating bucket {name}: {}", r.status());
    }
}

impl MotoServer {
    /// A client of `s3://BUCKET/PREFIX` (`url`) on this server, with moto's test credentials.
    pub fn backend(&self, url: &str) -> super::s3::S3Backend {
        client(url, &self.endpoint)
    }
}

/// A client of `url` at `endpoint` (this server, or a relay in front of it) with moto's test
/// credentials.
pub fn client(url: &str, endpoint: &str) -> super::s3::S3Backend {
    client_with(url, endpoint, ("test", "test"))
}

/// A client of `url` at `endpoint` (any S3 server a test started) with the access key and secret
/// `key`.
pub fn client_with(url: &str, endpoint: &str, key: (&str, &str)) -> super::s3::S3Backend {
    let creds = object_store::aws::AmazonS3Builder::new()
        .with_access_key_id(key.0)
        .with_secret_access_key(key.1)
        .with_region("us-east-1");
    super::s3::S3Backend::open_with(url, Some(3), creds, Some(endpoint))
        .unwrap_or_else(|e| panic!("S3 backend for {url}: {e:#}"))
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Killing the watchdog leaves the server; it sees this process end, or is found by port.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.endpoint.rsplit(':').next().unwrap_or_default();
        let _ = Command::new("pkill").args(["-f", &format!("moto_server -H 127.0.0.1 -p {port}")]).status();
    }
}
