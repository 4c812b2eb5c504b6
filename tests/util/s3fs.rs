//! An on-disk S3 server for the tests that need what moto cannot give: `s3s-fs` (the `s3s-fs`
//! crate's binary, `cargo install s3s-fs --version 0.14.0 --features binary`; `.ci/run` installs
//! it). It keeps its buckets as directories under a root, so a `kill -9` and a restart on the same
//! root and port keep every object written before the kill, as a real service would; and it checks
//! SigV4 signatures against one access key, so wrong credentials are refused as AWS refuses them.
//! Its `If-None-Match: *` check is not atomic (exists-then-write), which is why the race tests run
//! against moto (and why the commit decision does not rest on any one server's atomicity there).
//!
//! Without `s3s-fs` the tests using it fail, naming it, unless `ARCHIVER_TEST_SKIP_UNAVAILABLE=1`.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key and secret the server accepts.
pub const KEY: (&str, &str) = ("archiver-test-key", "archiver-test-secret");

pub struct FsServer {
    child: Option<Child>,
    root: PathBuf,
    pub port: u16,
}

impl FsServer {
    /// Starts a server on `root` (created if absent), or says why it cannot (panicking unless
    /// skipping is allowed: `None`).
    pub fn start(root: &Path) -> Option<FsServer> {
        if let Err(e) =
            Command::new("s3s-fs").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status()
        {
            if std::env::var("ARCHIVER_TEST_SKIP_UNAVAILABLE").as_deref() == Ok("1") {
                eprintln!("SKIPPED: s3s-fs cannot run ({e})");
                return None;
            }
            panic!(
                "s3s-fs cannot run ({e}): `cargo install s3s-fs --version 0.14.0 --features binary` \
                 (ARCHIVER_TEST_SKIP_UNAVAILABLE=1 skips)"
            );
        }
        std::fs::create_dir_all(root).expect("server root");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut s = FsServer { child: None, root: root.to_path_buf(), port };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let log = File::options().create(true).append(true).open(self.log_path()).expect("server log");
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", KEY.0, "--secret-key", KEY.1])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("s3s-fs starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(self.is_running(), "s3s-fs exited at start:\n{}", self.log());
            assert!(Instant::now() < deadline, "s3s-fs did not listen within 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.root.with_extension("log")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates bucket `name`: a directory under the root is a bucket to s3s-fs.
    pub fn bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).expect("bucket directory");
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server if it runs and starts it again on the same root and port (the port of a
    /// killed listener is free at once: nothing of it lingers in TIME_WAIT on the listening side).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// What the server has printed (a panic would show here).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for FsServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
