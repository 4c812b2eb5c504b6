//! A real S3 server for the integration tests: moto's server (`moto_server`, from PyPI; `.ci/run`
//! installs it) on a free port of 127.0.0.1, in memory, with conditional writes
//! (`If-None-Match: *`), SigV4-signed requests accepted with its test credentials. `S3::env`
//! gives an `Env` whose repository is `s3://BUCKET/PREFIX` on it, with the `AWS_*` variables the
//! binary needs and nothing of the user's (`HOME` is the test's directory: no `~/.aws`).
//! `S3::backend` reads the bucket directly (through the library's S3 backend), as `repo_files`
//! reads a directory.
//!
//! Without `moto_server` the tests fail, naming it, unless `ARCHIVER_TEST_SKIP_UNAVAILABLE=1`.

use super::Env;
use archiver::backend::s3::S3Backend;
use archiver::backend::Backend;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct S3 {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

static BUCKETS: AtomicUsize = AtomicUsize::new(0);

impl S3 {
    /// Starts a server; `None` (with a SKIPPED line) only if it cannot run and skipping is allowed.
    pub fn start() -> Option<S3> {
        let probe =
            Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if let Err(e) = probe {
            super::unavailable(&format!("moto_server cannot run ({e}): `pip install 'moto[server]'`"));
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        // A watchdog shell ends the server when this test process ends.
        let watch = "moto_server -H 127.0.0.1 -p \"$1\" >/dev/null 2>&1 & m=$!; \
                     while kill -0 \"$2\" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m";
        let child = Command::new("sh")
            .args(["-c", watch, "sh", &port.to_string(), &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        let s3 = S3 { child, port, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start listening within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s3)
    }

    /// Creates a new bucket (moto takes an unsigned request) and returns its name.
    pub fn bucket(&self) -> String {
        let name = format!("bucket-{}-{}", std::process::id(), BUCKETS.fetch_add(1, Ordering::Relaxed));
        self.create_bucket(&name);
        name
    }

    pub fn create_bucket(&self, name: &str) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::blocking::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .expect("PUT bucket");
        assert!(r.status().is_success(), "creating bucket {name}: {}", r.status());
    }

    /// The variables a client of this server needs (moto's test credentials).
    pub fn vars(&self, endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", endpoint),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// `env` (its key file, cache, working directory) with its repository at `url` on this server.
    pub fn env(&self, env: &Env, url: &str) -> Env {
        self.env_at(env, url, &self.endpoint.clone())
    }

    /// As `env`, reaching the server through `endpoint` (a proxy in front of it).
    pub fn env_at(&self, env: &Env, url: &str, endpoint: &str) -> Env {
        Env { repo: PathBuf::from(url), vars: self.vars(endpoint), ..env.view() }
    }

    /// The repository at `url`, read directly.
    pub fn backend(&self, url: &str) -> S3Backend {
        let creds = object_store::aws::AmazonS3Builder::new()
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1");
        S3Backend::open_with(url, Some(3), creds, Some(&self.endpoint)).expect("S3 backend")
    }

    /// Waits (up to a minute) until a client holds the lease of the repository at `url`.
    pub fn wait_for_lease(&self, url: &str) {
        let b = self.backend(url);
        let deadline = Instant::now() + Duration::from_secs(60);
        while b.size("lock").is_err() {
            assert!(Instant::now() < deadline, "no client took the lock of {url} within a minute");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every object of the repository at `url` and its size, except the lease `lock`.
    pub fn objects(&self, url: &str) -> BTreeMap<String, u64> {
        let b = self.backend(url);
        let mut out = BTreeMap::new();
        for k in b.list("").expect("list") {
            if k != "lock" {
                let n = b.size(&k).expect("size");
                out.insert(k, n);
            }
        }
        out
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .args(["-f", &format!("moto_server -H 127.0.0.1 -p {}", self.port)])
            .status();
    }
}

/// The repository of `env` read directly, if it is on S3 (`s3://...`, reached at the endpoint its
/// `AWS_ENDPOINT_URL` names, with moto's test credentials).
pub fn backend_of(env: &Env) -> Option<S3Backend> {
    let url = env.repo.to_str()?.strip_prefix("s3://").map(|r| format!("s3://{r}"))?;
    let endpoint = env.vars.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL").map(|(_, v)| v.clone())?;
    let creds = object_store::aws::AmazonS3Builder::new()
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_region("us-east-1");
    Some(S3Backend::open_with(&url, Some(3), creds, Some(&endpoint)).expect("S3 backend"))
}

/// Every object of `b` and its size, except the lease `lock` (as `Env::repo_files`).
pub fn files(b: &S3Backend) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for k in b.list("").expect("list the bucket") {
        if k != "lock" {
            // Deleted between the listing and now (a running writer's cleanup): not there.
            if let Ok(n) = b.size(&k) {
                out.insert(k, n);
            }
        }
    }
    out
}

/// A copy of the S3 repository of `env` at the sibling prefix `<prefix>-<tag>` (`Env::fork`).
pub fn fork(env: &Env, tag: &str) -> PathBuf {
    let from = backend_of(env).expect("an S3 repository");
    let url = format!("{}-{tag}", env.repo.to_str().expect("utf-8").trim_end_matches('/'));
    let to = backend_of(&Env { repo: PathBuf::from(&url), ..env.view() }).expect("S3");
    for k in from.list("").expect("list") {
        if k != "lock" {
            to.put(&k, &from.get(&k).expect("get")).expect("put");
        }
    }
    PathBuf::from(url)
}

/// Deletes every object of the S3 repository of `env`.
pub fn remove(env: &Env) {
    let b = backend_of(env).expect("an S3 repository");
    for k in b.list("").expect("list") {
        b.delete(&k).expect("delete");
    }
}
