//! A real `archiver serve` on 127.0.0.1 for the HTTP tests, and the one place that says how a
//! client reaches it: `Server::client` (the binary, through an `Env` whose repository is the URL),
//! `Server::repo` (the library's `Repository`), `Server::local` (the same repository read directly
//! as the directory `STORE/NAME`). `start_tls` serves HTTPS; library clients sign with the keys
//! they are given. Servers started here let clients create repositories (`--allow-create`)
//! unless started with `start_with_args`, which passes exactly the arguments given.

use super::*;
use archiver::keyfile::KeyFile;
use archiver::repo::Repository;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `archiver serve --store STORE`, killed (`kill -9`) when dropped.
pub struct Server {
    child: Option<Child>,
    /// `HOST:PORT` it listens on.
    pub addr: String,
    pub store: PathBuf,
    lock_ttl: u64,
    /// Extra environment of the server process (e.g. a failpoint), for the next (re)start.
    vars: Vec<(String, String)>,
    /// Extra `serve` arguments (e.g. TLS), and the URL scheme they make it speak.
    args: Vec<String>,
    /// RLIMIT_NOFILE (soft and hard) of the server process, if limited.
    nofile: Option<u64>,
    scheme: &'static str,
    /// Everything the server printed on stderr after its first line.
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts a server on a free port with a 2 s lease (so a dead client's lock frees quickly).
    pub fn start(store: &Path) -> Server {
        Server::start_with_ttl(store, 2)
    }

    pub fn start_with_ttl(store: &Path, lock_ttl: u64) -> Server {
        Server::start_with_args(store, lock_ttl, &["--allow-create"])
    }

    /// Starts a server speaking HTTPS with this PEM certificate and key.
    pub fn start_tls(store: &Path, cert: &Path, key: &Path) -> Server {
        let args =
            ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(), "--allow-create"];
        Server::start_with_args(store, 2, &args)
    }

    /// Starts a server with exactly these extra `serve` arguments (no `--allow-create` unless
    /// given).
    pub fn start_with_args(store: &Path, lock_ttl: u64, args: &[&str]) -> Server {
        Server::start_limited(store, lock_ttl, args, None)
    }

    /// `start_with_args` in a process that may open at most `nofile` files (soft and hard limit).
    pub fn start_limited(store: &Path, lock_ttl: u64, args: &[&str], nofile: Option<u64>) -> Server {
        let tls = args.contains(&"--tls-cert");
        let mut s = Server {
            child: None,
            addr: String::new(),
            store: store.to_path_buf(),
            lock_ttl,
            vars: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            nofile,
            scheme: if tls { "https" } else { "http" },
            log: Arc::new(Mutex::new(String::new())),
        };
        s.spawn("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot start archiver serve: {e}"));
        s
    }

    /// A server fronting the bucket prefix `url` (`s3://...`), its process given `vars` (the
    /// `AWS_*` of `util::s3`), with `--allow-create`.
    pub fn start_s3(url: &str, vars: &[(String, String)]) -> Server {
        let mut s = Server {
            child: None,
            addr: String::new(),
            store: PathBuf::from(url),
            lock_ttl: 2,
            vars: vars.to_vec(),
            args: vec!["--allow-create".into()],
            nofile: None,
            scheme: "http",
            log: Arc::new(Mutex::new(String::new())),
        };
        s.spawn("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot start archiver serve: {e}"));
        s
    }

    /// Starts the process listening on `listen`; Err with what it said if it could not listen.
    fn spawn(&mut self, listen: &str) -> Result<(), String> {
        let mut cmd = Command::new(BIN);
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let l = libc::rlimit { rlim_cur: n, rlim_max: n };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &l) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd
            .args(["serve", "--listen", listen, "--store"])
            .arg(&self.store)
            .args(["--lock-ttl", &self.lock_ttl.to_string()])
            .args(&self.args)
            .env_remove("ARCHIVER_FAILPOINT")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn archiver serve");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("read the server's first line");
        let Some(addr) = line.split(&format!("{}://", self.scheme)).nth(1) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(line.trim().to_string());
        };
        self.addr = addr.trim().trim_end_matches('/').to_string();
        // Keep draining stderr (a full pipe would block the server); keep it for diagnostics.
        let log = self.log.clone();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                let mut g = log.lock().unwrap_or_else(|p| p.into_inner());
                g.push_str(&l);
                g.push('\n');
            }
        });
        self.child = Some(child);
        Ok(())
    }

    /// `http(s)://ADDR`.
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `http(s)://ADDR/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base())
    }

    /// `kill -9` of the server process (no-op if it is not running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server if it runs, then starts it again on the same store, on the same port if
    /// that can be bound within a few seconds (otherwise on a new one: read `addr` again).
    /// Returns whether the port stayed the same.
    pub fn restart(&mut self) -> bool {
        self.kill9();
        let old = self.addr.clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn(&old) {
                Ok(()) => return true,
                Err(e) if Instant::now() > deadline => {
                    eprintln!("cannot listen on {old} again ({e}); restarting on a new port");
                    self.spawn("127.0.0.1:0")
                        .unwrap_or_else(|e| panic!("cannot restart archiver serve: {e}"));
                    return false;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// `restart` with these extra environment variables (replacing earlier ones; `&[]` for none).
    pub fn restart_with(&mut self, vars: &[(&str, &str)]) -> bool {
        self.vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.restart()
    }

    /// Whether the server process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// What the server printed after its address line (a panic would show here).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A library client of repository `name` on this server (a new client each call).
    pub fn repo(&self, name: &str, keys: &KeyFile) -> Arc<dyn Repository> {
        open_repo(&self.url(name), keys)
    }

    /// `env` (its key file, cache and working directory) with its commands sent to repository
    /// `name` on this server.
    pub fn client(&self, env: &Env, name: &str) -> Env {
        client_env(env, &self.url(name))
    }

    /// `env` with its commands working directly on `STORE/NAME` as a local repository (for
    /// inspection: the store holds ordinary repositories).
    pub fn local(&self, env: &Env, name: &str) -> Env {
        Env { repo: self.store.join(name), ..env.view() }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A library client for an `http://HOST:PORT/NAME` repository URL (which may lead through a
/// proxy), signing its requests with `keys`' access keys.
pub fn open_repo(url: &str, keys: &KeyFile) -> Arc<dyn Repository> {
    let conn = archiver::repo::Connect { access: keys.access.clone(), ca_cert: None };
    archiver::repo::open(url, &conn).unwrap_or_else(|e| panic!("cannot open {url}: {e:#}"))
}

/// A repository config holding `keys`' verifiers (the server refuses one without them).
pub fn config_for(keys: &KeyFile, id: &str) -> Vec<u8> {
    archiver::session::config_bytes(keys, id, archiver::chunker::Keying::CURRENT)
}

/// `env` with its commands sent to the repository at `url` (`ARCHIVER_REPO` is the URL).
pub fn client_env(env: &Env, url: &str) -> Env {
    Env { repo: PathBuf::from(url), ..env.view() }
}

impl Env {
    /// This environment with a cache directory of its own (a second client on the same key).
    pub fn with_cache(&self, cache: &str) -> Env {
        Env { cache: self.root.join(cache), ..self.view() }
    }

    /// Runs the binary with extra environment variables (e.g. `ARCHIVER_RETRIES`).
    pub fn run_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Out {
        let mut c = self.command(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        out_of(c.output().expect("cannot run archiver"))
    }

    /// Starts the binary with extra environment variables, stdout and stderr piped.
    pub fn spawn_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Child {
        let mut c = self.command(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("cannot spawn archiver")
    }
}

/// A seed for a test's random choices: `ARCHIVER_TEST_SEED` if set, else from the clock (so
/// repeated runs explore more). Print it with every failure message.
pub fn test_seed() -> u64 {
    std::env::var("ARCHIVER_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            % 1_000_000
    })
}
