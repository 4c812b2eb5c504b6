//! A real S3 server for the integration tests, with what a client needs to reach it. Two kinds:
//! - `S3::start`: moto's server (`moto_server`, from PyPI; `.ci/run` installs it) on a free port
//!   of 127.0.0.1, in memory, with conditional writes (`If-None-Match: *`) checked atomically,
//!   SigV4-signed requests accepted with any key. Fast to start; the default.
//! - `S3::start_on_disk`: `s3s-fs` (`util::s3fs`), which keeps its buckets on disk (so it can be
//!   killed and restarted mid-run, `kill9`/`restart`) and checks signatures against one key (so
//!   wrong credentials are refused).
//!
//! `S3::env` gives an `Env` whose repository is `s3://BUCKET/PREFIX` on the server, with the
//! `AWS_*` variables the binary needs and nothing of the user's (`HOME` is the test's directory:
//! no `~/.aws`). `S3::backend` reads the bucket directly (through the library's S3 backend), as
//! `repo_files` reads a directory.
//!
//! Without the server's program the tests fail, naming it, unless
//! `ARCHIVER_TEST_SKIP_UNAVAILABLE=1`.

use super::s3fs::FsServer;
use super::Env;
use archiver::backend::s3::S3Backend;
use archiver::backend::s3_server::{client_with, MotoServer};
use archiver::backend::Backend;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

enum Server {
    Moto(MotoServer),
    Fs(FsServer),
}

/// The server, its endpoint and the access key it accepts.
pub struct S3 {
    server: Server,
    pub endpoint: String,
    key: (&'static str, &'static str),
}

static BUCKETS: AtomicUsize = AtomicUsize::new(0);

impl S3 {
    /// Starts moto's server; `None` only if it cannot run and skipping is allowed.
    pub fn start() -> Option<S3> {
        let server = MotoServer::start()?;
        Some(S3 { endpoint: server.endpoint.clone(), server: Server::Moto(server), key: ("test", "test") })
    }

    /// Starts s3s-fs on `root`; `None` only if it cannot run and skipping is allowed.
    pub fn start_on_disk(root: &Path) -> Option<S3> {
        let server = FsServer::start(root)?;
        Some(S3 { endpoint: server.endpoint(), server: Server::Fs(server), key: super::s3fs::KEY })
    }

    /// Creates a new bucket and returns its name.
    pub fn bucket(&self) -> String {
        let name = format!("bucket-{}-{}", std::process::id(), BUCKETS.fetch_add(1, Ordering::Relaxed));
        match &self.server {
            Server::Moto(m) => m.bucket(&name),
            Server::Fs(f) => f.bucket(&name),
        }
        name
    }

    /// The on-disk server, for the tests that kill it.
    pub fn on_disk(&mut self) -> &mut FsServer {
        match &mut self.server {
            Server::Fs(f) => f,
            Server::Moto(_) => panic!("moto's server keeps nothing across a restart: use S3::start_on_disk"),
        }
    }

    /// The variables a client of this server needs.
    pub fn vars(&self, endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", self.key.0),
            ("AWS_SECRET_ACCESS_KEY", self.key.1),
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
        client_with(url, &self.endpoint, self.key)
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

/// The repository of `env` read directly, if it is on S3 (`s3://...`, reached at the endpoint and
/// with the key its `AWS_*` variables name).
pub fn backend_of(env: &Env) -> Option<S3Backend> {
    let url = env.repo.to_str()?.strip_prefix("s3://").map(|r| format!("s3://{r}"))?;
    let var = |name: &str| env.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    Some(client_with(
        &url,
        var("AWS_ENDPOINT_URL")?,
        (var("AWS_ACCESS_KEY_ID")?, var("AWS_SECRET_ACCESS_KEY")?),
    ))
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
