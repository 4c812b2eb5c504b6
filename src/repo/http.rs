//! The client side of `archiver serve`: the `Repository` API over HTTP (docs/PROTOCOL.md), with
//! reqwest's blocking client.
//!
//! Every request is idempotent (puts overwrite with the same bytes, commit and finish roll forward
//! to the same state, deletes of missing objects succeed), so a transient failure (connection
//! refused or cut, timeout, 5xx other than 507) is retried with exponential backoff, up to
//! `ARCHIVER_RETRIES` attempts (default 8, about a minute; `forever` never gives up). A 4xx is
//! never retried. The lock is a lease renewed by a background thread while the guard lives.

use super::{decode_pending, CommitRequest, LockGuard, Pending, Repository};
use crate::backend::{ErrorKind, StoreError, StoreResult};
use crate::codec::Reader;
use anyhow::{bail, Result};
use reqwest::blocking::{Client, RequestBuilder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct HttpRepo {
    url: String,
    base: String,
    client: Client,
    token: Arc<Mutex<Option<String>>>,
    attempts: Option<u32>,
}

impl HttpRepo {
    pub fn new(url: &str) -> Result<HttpRepo> {
        let rest = url.trim_end_matches('/').strip_prefix("http://").unwrap_or(url);
        let Some((host, name)) = rest.split_once('/') else {
            bail!("repository URL {url} names no repository: use http://HOST:PORT/NAME");
        };
        if name.is_empty() || name.contains('/') {
            bail!(
                "repository URL {url}: the repository name must be one path segment (http://HOST:PORT/NAME)"
            );
        }
        let attempts = match std::env::var("ARCHIVER_RETRIES").ok().as_deref() {
            Some("forever") => None,
            Some(n) => Some(n.parse::<u32>().map_err(|_| {
                anyhow::anyhow!("ARCHIVER_RETRIES={n}: give a number of attempts, or `forever`")
            })?),
            None => Some(8),
        };
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            // No keep-alive: a tiny_http server gives each connection a thread from a pool for
            // as long as it stays open and can leave a new connection waiting unserved while
            // idle kept-alive ones hold every thread (seen as 300 s stalls with many requests in
            // flight). A fresh connection per request costs one local round trip.
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(HttpRepo {
            url: url.to_string(),
            base: format!("http://{host}/v1/{name}"),
            client,
            token: Arc::new(Mutex::new(None)),
            attempts: attempts.map(|n| n.max(1)),
        })
    }

    fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One attempt: the request, and the whole response body. A failed connection or a body cut
    /// short is transient.
    fn once(&self, what: &str, build: &impl Fn(&Client) -> RequestBuilder) -> StoreResult<Answer> {
        let mut req = build(&self.client);
        if let Some(t) = self.token() {
            req = req.header("X-Archiver-Lock", t);
        }
        let transient =
            |e: reqwest::Error| StoreError::new(ErrorKind::Transient, format!("{what}: {}", error_chain(&e)));
        let resp = req.send().map_err(transient)?;
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        // Vec::from takes the collected buffer over without copying it.
        let body = Vec::from(resp.bytes().map_err(transient)?);
        Ok(Answer { status, headers, body })
    }

    /// Sends a request (rebuilt for every attempt) and reads its answer, retrying transient
    /// failures with backoff. A status other than 2xx and those in `accept` is an error.
    fn call(
        &self,
        what: &str,
        accept: &[u16],
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> StoreResult<Answer> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match self.once(what, &build) {
                Ok(a) if (200..300).contains(&a.status) || accept.contains(&a.status) => return Ok(a),
                Ok(a) => status_error(what, a.status, &a.body),
                Err(e) => e,
            };
            if err.kind != ErrorKind::Transient || self.attempts.is_some_and(|n| attempt >= n) {
                let mut err = err;
                if err.kind == ErrorKind::Transient {
                    err.msg = format!(
                        "{} (gave up after {attempt} attempts; ARCHIVER_RETRIES=forever keeps trying)",
                        err.msg
                    );
                }
                return Err(err);
            }
            let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(7)))
                .min(Duration::from_secs(10));
            std::thread::sleep(backoff);
        }
    }

    /// `call` for the response body only.
    fn bytes(&self, what: &str, build: impl Fn(&Client) -> RequestBuilder) -> StoreResult<Vec<u8>> {
        Ok(self.call(what, &[], build)?.body)
    }

    fn names(&self, what: &str, path: &str) -> StoreResult<Vec<String>> {
        let body = self.bytes(what, |c| c.get(format!("{}/{path}", self.base)))?;
        let mut r = Reader::new(&body, "name list");
        let parse = |r: &mut Reader| -> Result<Vec<String>> {
            let mut out = Vec::new();
            for _ in 0..r.count(1)? {
                out.push(r.string()?);
            }
            Ok(out)
        };
        parse(&mut r).map_err(|e| StoreError::new(ErrorKind::Permanent, format!("{what}: {e:#}")))
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

fn status_error(what: &str, code: u16, body: &[u8]) -> StoreError {
    let text = String::from_utf8_lossy(body);
    let text = text.lines().next().unwrap_or("").to_string();
    let kind = match code {
        404 => ErrorKind::NotFound,
        409 if text.contains("lock") => ErrorKind::Permanent,
        409 => ErrorKind::Exists,
        507 => ErrorKind::NoSpace,
        408 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    StoreError::new(kind, format!("{what}: server answered {code}: {text}"))
}

/// A response read whole.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header_u64(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }
}

struct LeaseGuard {
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
    release: Box<dyn Fn() + Send>,
}

impl LockGuard for LeaseGuard {}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.renewer.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        (self.release)();
    }
}

impl Repository for HttpRepo {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn read_config(&self) -> StoreResult<Option<Vec<u8>>> {
        match self.bytes("reading the repository config", |c| c.get(format!("{}/config", self.base))) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn init(&self, config: &[u8]) -> StoreResult<()> {
        let body = config.to_vec();
        self.bytes("creating the repository", |c| c.put(format!("{}/config", self.base)).body(body.clone()))?;
        Ok(())
    }

    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        let url = format!("{}/lock", self.base);
        let with_owner = format!("{url}?owner={}", percent_encode(owner));
        let mut waited = false;
        let answer = loop {
            let a = self.call("taking the repository lock", &[423], |c| c.post(&with_owner))?;
            if a.status != 423 {
                break a;
            }
            // Taken. A lease whose holder died runs out: wait for it once, then give up.
            let holder = String::from_utf8_lossy(&a.body).into_owned();
            match a.header_u64("X-Archiver-Lock-Remaining-Ms") {
                Some(ms) if !waited => {
                    waited = true;
                    std::thread::sleep(Duration::from_millis(ms + 100));
                }
                _ => bail!(
                    "repository is locked by another archiver ({holder}); wait for it to finish, then retry"
                ),
            }
        };
        let ttl = answer.header_u64("X-Archiver-Lock-Ttl-Ms").unwrap_or(30_000);
        let token = String::from_utf8_lossy(&answer.body).into_owned();
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let (client, renew_url, stop2) = (self.client.clone(), format!("{url}/{token}"), stop.clone());
        let renewer = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(ttl / 3));
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let _ = client.post(&renew_url).send();
            }
        });
        let (client, slot) = (self.client.clone(), self.token.clone());
        let release = Box::new(move || {
            let _ = client.delete(format!("{url}/{token}")).send();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
        Ok(Box::new(LeaseGuard { stop, renewer: Some(renewer), release }))
    }

    fn head(&self) -> StoreResult<(u64, Option<Vec<u8>>)> {
        let a = self.call("reading the manifest", &[], |c| c.get(format!("{}/head", self.base)))?;
        let gen = a
            .header_u64("X-Archiver-Generation")
            .ok_or_else(|| StoreError::new(ErrorKind::Permanent, "the server sent no generation"))?;
        Ok((gen, (gen > 0).then_some(a.body)))
    }

    fn begin(&self, txn: &str, intent: &[u8]) -> StoreResult<()> {
        let body = intent.to_vec();
        self.bytes("beginning a transaction", |c| {
            c.put(format!("{}/txn/{txn}/begin", self.base)).body(body.clone())
        })?;
        Ok(())
    }

    fn put_pack(&self, txn: &str, seq: u32, data: Vec<u8>) -> StoreResult<String> {
        let body = bytes::Bytes::from(data);
        let b = self.bytes("storing a pack", |c| {
            c.put(format!("{}/txn/{txn}/packs/{seq:08x}", self.base)).body(body.clone())
        })?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    fn put_index(&self, txn: &str, seq: u32, data: &[u8]) -> StoreResult<String> {
        let body = bytes::Bytes::copy_from_slice(data);
        let b = self.bytes("storing an index segment", |c| {
            c.put(format!("{}/txn/{txn}/index/{seq:06x}", self.base)).body(body.clone())
        })?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    fn checkpoint(&self, txn: &str, record: &[u8]) -> StoreResult<()> {
        let body = record.to_vec();
        self.bytes("storing a checkpoint", |c| {
            c.put(format!("{}/txn/{txn}/checkpoint", self.base)).body(body.clone())
        })?;
        Ok(())
    }

    fn commit(&self, txn: &str, req: &CommitRequest) -> StoreResult<()> {
        let body = req.encode();
        self.bytes("committing", |c| c.post(format!("{}/txn/{txn}/commit", self.base)).body(body.clone()))?;
        Ok(())
    }

    fn finish(&self, txn: &str) -> StoreResult<()> {
        self.bytes("finishing a commit", |c| c.post(format!("{}/txn/{txn}/finish", self.base)))?;
        Ok(())
    }

    fn abort(&self, txn: &str) -> StoreResult<()> {
        self.bytes("discarding a transaction", |c| c.post(format!("{}/txn/{txn}/abort", self.base)))?;
        Ok(())
    }

    fn pending(&self) -> StoreResult<Vec<Pending>> {
        let b = self.bytes("listing pending transactions", |c| c.get(format!("{}/pending", self.base)))?;
        decode_pending(&b).map_err(|e| StoreError::new(ErrorKind::Permanent, format!("{e:#}")))
    }

    fn clean_partial(&self) -> StoreResult<()> {
        self.bytes("removing partial uploads", |c| c.post(format!("{}/clean-partial", self.base)))?;
        Ok(())
    }

    fn read_pack(&self, pack: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={}-{}", offset, offset + len - 1);
        let b = self.bytes(&format!("reading pack {pack}"), |c| {
            c.get(format!("{}/packs/{pack}", self.base)).header("Range", range.clone())
        })?;
        if b.len() as u64 != len {
            return Err(StoreError::new(ErrorKind::Transient, format!("reading pack {pack}: short read")));
        }
        Ok(b)
    }

    fn pack_size(&self, pack: &str) -> StoreResult<u64> {
        let b = self.bytes(&format!("reading the size of pack {pack}"), |c| {
            c.get(format!("{}/size/packs/{pack}", self.base))
        })?;
        String::from_utf8_lossy(&b)
            .trim()
            .parse()
            .map_err(|_| StoreError::new(ErrorKind::Permanent, "the server sent a bad size"))
    }

    fn get_index(&self, name: &str) -> StoreResult<Vec<u8>> {
        self.bytes(&format!("reading index segment {name}"), |c| c.get(format!("{}/index/{name}", self.base)))
    }

    fn list_packs(&self) -> StoreResult<Vec<String>> {
        self.names("listing packs", "list/packs")
    }

    fn list_indexes(&self) -> StoreResult<Vec<String>> {
        self.names("listing index segments", "list/index")
    }

    /// Four: round trips and the server's fsyncs overlap (the server serves requests in parallel).
    fn uploads_in_flight(&self) -> usize {
        4
    }
}
