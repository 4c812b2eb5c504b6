//! The client side of `archiver serve`: the `Repository` API over HTTP (docs/PROTOCOL.md), with
//! reqwest's blocking client.
//!
//! Every request is idempotent (puts overwrite with the same bytes, commit and finish roll forward
//! to the same state, deletes of missing objects succeed), so a transient failure (connection
//! refused or cut, timeout, 5xx other than 507) is retried with exponential backoff, up to
//! `ARCHIVER_RETRIES` attempts (default 8, about a minute; `forever` never gives up). A 4xx is
//! never retried. The lock is a lease renewed by a background thread while the guard lives.
//! Every request is signed with the key file's access key the route needs (`access`); with an
//! `https://` URL the connection is TLS (rustls), trusting `--cacert` alone when given. What a
//! server can make the client hold or wait for is bounded (`http_body`): response sizes per
//! route, per-read timeouts, the wait for a held lock, the lease length; redirects are refused.

use super::http_body::{self, MAX_LOCK_WAIT};
use super::lease::{LeaseGuard, Ledger};
use super::protocol::{self, Kind, Listing, Route};
use super::{decode_pending, CommitRequest, Connect, LockGuard, Pending, Repository};
use crate::access::{AccessKeys, Signed};
use crate::backend::{ErrorKind, StoreError, StoreResult};
use crate::codec::Reader;
use anyhow::{bail, Result};
use reqwest::blocking::{Client, Request, RequestBuilder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct HttpRepo {
    url: String,
    base: String,
    signer: Signer,
    client: Client,
    token: Arc<Mutex<Option<String>>>,
    attempts: Option<u32>,
    /// The read timeout (`http_body`): `ARCHIVER_TIMEOUT` seconds, else 30.
    timeout: Duration,
    /// What our transactions stored, and who we said we are when locking: to take the lock
    /// again after a server restart (see `lease`).
    ledger: Ledger,
    owner: Mutex<Option<String>>,
    relocking: Mutex<()>,
    /// The secret of each transaction this client began (`TXN_KEY`): the server lets only the
    /// client that began a transaction store into it.
    txn_keys: Mutex<std::collections::HashMap<String, String>>,
}

/// The header carrying a transaction's secret (docs/PROTOCOL.md, "Transactions").
pub const TXN_KEY: &str = "X-Archiver-Txn-Key";

impl HttpRepo {
    pub fn new(url: &str, conn: &Connect) -> Result<HttpRepo> {
        let (scheme, rest) = url.trim_end_matches('/').split_once("://").unwrap_or(("http", url));
        let Some((host, name)) = rest.split_once('/') else {
            bail!("repository URL {url} names no repository: use {scheme}://HOST:PORT/NAME");
        };
        if name.is_empty() || name.contains('/') {
            bail!(
                "repository URL {url}: the repository name must be one path segment ({scheme}://HOST:PORT/NAME)"
            );
        }
        let attempts = match std::env::var("ARCHIVER_RETRIES").ok().as_deref() {
            Some("forever") => None,
            Some(n) => Some(n.parse::<u32>().map_err(|_| {
                anyhow::anyhow!("ARCHIVER_RETRIES={n}: give a number of attempts, or `forever`")
            })?),
            None => Some(8),
        };
        let timeout = match std::env::var("ARCHIVER_TIMEOUT").ok().as_deref() {
            Some(n) => match n.parse::<u64>() {
                Ok(s) if s > 0 => Duration::from_secs(s),
                _ => bail!("ARCHIVER_TIMEOUT={n}: give the seconds to wait for the server (default 30)"),
            },
            None => http_body::DEFAULT_TIMEOUT,
        };
        // One process-wide TLS provider (ring); a second install attempt is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Per wait, not per request: the answer must begin within this, and each read of
            // its body too (requests that send a body or change things get longer: `once`).
            .timeout(timeout)
            // A redirect would carry the signature, the lock token and the body to another host.
            .redirect(reqwest::redirect::Policy::none())
            // Connections are kept alive (one TCP and TLS setup serves many requests), but
            // dropped after idling for less than the server's 30 s head timeout, so the client
            // rarely picks a connection the server is closing.
            .pool_idle_timeout(Duration::from_secs(20))
            .tcp_nodelay(true);
        // An upload the server stops taking (its window stays shut) fails instead of waiting.
        #[cfg(target_os = "linux")]
        {
            builder = builder.tcp_user_timeout(timeout);
        }
        if let Some(path) = &conn.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read the CA certificate {}: {e}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!("{} is not a PEM certificate: {}", path.display(), error_chain(&e))
            })?;
            builder = builder.tls_certs_only([cert]);
        }
        let client =
            builder.build().map_err(|e| anyhow::anyhow!("cannot set up HTTP: {}", error_chain(&e)))?;
        Ok(HttpRepo {
            url: url.to_string(),
            base: format!("{scheme}://{host}/v1/{name}"),
            signer: Signer { access: Arc::new(conn.access.clone()), prefix: format!("/v1/{name}/") },
            client,
            token: Arc::new(Mutex::new(None)),
            attempts: attempts.map(|n| n.max(1)),
            timeout,
            ledger: Ledger::default(),
            owner: Mutex::new(None),
            relocking: Mutex::new(()),
            txn_keys: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// A request for `route` (the protocol's one description of it, `protocol::Route`).
    fn to(&self, c: &Client, route: &Route) -> RequestBuilder {
        let method = reqwest::Method::from_bytes(route.method().as_bytes()).unwrap_or(reqwest::Method::GET);
        c.request(method, format!("{}/{}", self.base, route.path()))
    }

    /// `rb` with the secret of transaction `txn`, if this client began it.
    fn as_owner(&self, rb: RequestBuilder, txn: &str) -> RequestBuilder {
        match self.txn_keys.lock().unwrap_or_else(|p| p.into_inner()).get(txn) {
            Some(k) => rb.header(TXN_KEY, k.as_str()),
            None => rb,
        }
    }

    fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One attempt: the request, and the whole response body (up to the route's cap). A failed
    /// connection or a body cut short or stalled is transient; a redirect is permanent.
    fn once(&self, what: &str, build: &impl Fn(&Client) -> RequestBuilder) -> StoreResult<Answer> {
        let token = self.token();
        let mut req = self.signer.sign(what, build(&self.client), token.as_deref())?;
        let route = req.url().path().strip_prefix(&self.signer.prefix).unwrap_or("").to_string();
        let method = req.method().as_str().to_string();
        let range = req.headers().get("Range").and_then(|v| v.to_str().ok()).map(String::from);
        let sending = req.body().and_then(|b| b.as_bytes()).map_or(0, <[u8]>::len);
        if let Some(t) = http_body::request_timeout(&method, sending, self.timeout) {
            *req.timeout_mut() = Some(t);
        }
        let transient = |e: reqwest::Error| {
            let msg = error_chain(&e);
            // A certificate the client does not trust will not become trusted by retrying.
            let kind = if msg.contains("certificate") { ErrorKind::Permanent } else { ErrorKind::Transient };
            StoreError::new(kind, format!("{what}: {msg}"))
        };
        let resp = self.client.execute(req).map_err(transient)?;
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        if (300..400).contains(&status) {
            let location = headers.get("Location").and_then(|v| v.to_str().ok());
            return Err(http_body::redirected(what, status, location));
        }
        let cap = http_body::cap(Route::parse(&method, &route).ok().as_ref(), range.as_deref(), status);
        let body = http_body::read(resp, cap, what, self.timeout)?;
        Ok(Answer { status, headers, body, token, route })
    }

    /// Sends a request (rebuilt for every attempt) and reads its answer, retrying transient
    /// failures with backoff. A status other than 2xx and those in `accept` is an error.
    fn call(
        &self,
        what: &str,
        accept: &[u16],
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> StoreResult<Answer> {
        let (mut attempt, mut relocked) = (0u32, false);
        loop {
            attempt += 1;
            let err = match self.once(what, &build) {
                Ok(a) if (200..300).contains(&a.status) || accept.contains(&a.status) => return Ok(a),
                Ok(a) if a.status == 409 && !relocked && lease_lost(&a.body) && self.relock(&a) => {
                    relocked = true;
                    continue;
                }
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

    /// After a write was refused for want of the lease (the server restarted, or we stalled past
    /// the TTL): takes the lock again and says whether the write's transaction may go on.
    fn relock(&self, refused: &Answer) -> bool {
        let Some(txn) = refused.route.strip_prefix("txn/").and_then(|r| r.split('/').next()) else {
            return false;
        };
        let Some(owner) = self.owner.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return false };
        if !self.ledger.knows(txn) {
            return false;
        }
        let _one = self.relocking.lock().unwrap_or_else(|p| p.into_inner());
        if self.token() != refused.token {
            return true; // a concurrent upload already took the lock again and checked
        }
        let take = Route::TakeLock { owner: owner.clone() };
        let Ok(a) = self.call("taking the repository lock again", &[423], |c| self.to(c, &take)) else {
            return false;
        };
        if a.status != 200 {
            return false;
        }
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(String::from_utf8_lossy(&a.body).into_owned());
        match (self.pending(), self.list_packs(), self.list_indexes()) {
            (Ok(p), Ok(packs), Ok(idx)) => self.ledger.untouched(txn, &p, &packs, &idx),
            _ => false,
        }
    }

    /// `call` for the response body only.
    fn bytes(&self, what: &str, build: impl Fn(&Client) -> RequestBuilder) -> StoreResult<Vec<u8>> {
        Ok(self.call(what, &[], build)?.body)
    }

    fn names(&self, what: &str, listing: Listing) -> StoreResult<Vec<String>> {
        let body = self.bytes(what, |c| self.to(c, &Route::List(listing)))?;
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

/// Signs requests for one repository with the access key each route needs.
#[derive(Clone)]
struct Signer {
    access: Arc<AccessKeys>,
    /// `/v1/NAME/`: what precedes the route in every path.
    prefix: String,
}

impl Signer {
    fn sign(&self, what: &str, rb: RequestBuilder, token: Option<&str>) -> StoreResult<Request> {
        let mut req = rb
            .build()
            .map_err(|e| StoreError::new(ErrorKind::Permanent, format!("{what}: {}", error_chain(&e))))?;
        let header = |name: &'static str, v: &str| {
            reqwest::header::HeaderValue::from_str(v)
                .map(|v| (name, v))
                .map_err(|_| StoreError::new(ErrorKind::Permanent, format!("{what}: bad header value")))
        };
        if let Some(t) = token {
            let (k, v) = header("X-Archiver-Lock", t)?;
            req.headers_mut().insert(k, v);
        }
        let path = match req.url().query() {
            Some(q) => format!("{}?{q}", req.url().path()),
            None => req.url().path().to_string(),
        };
        let route = req.url().path().strip_prefix(&self.prefix).unwrap_or("");
        let route = match req.url().query() {
            Some(q) => format!("{route}?{q}"),
            None => route.to_string(),
        };
        let route = Route::parse(req.method().as_str(), &route).map_err(|(_, why)| {
            StoreError::new(ErrorKind::Permanent, format!("{what}: not a route of the protocol ({why})"))
        })?;
        let text =
            |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = req.body().and_then(|b| b.as_bytes()).unwrap_or(&[]);
        let need = route.need(body);
        let signed = Signed {
            method: req.method().as_str(),
            path: &path,
            range: &text("Range"),
            lock: &text("X-Archiver-Lock"),
            body,
        };
        let Some(auth) = self.access.sign(need, &signed) else {
            let names: Vec<&str> = need.iter().map(|p| p.name()).collect();
            return Err(StoreError::new(
                ErrorKind::Permanent,
                format!(
                    "{what}: the key file holds {}, and this needs the {} key",
                    self.access.describe(),
                    names.join(" or ")
                ),
            ));
        };
        let (k, v) = header(crate::access::HEADER, &auth)?;
        req.headers_mut().insert(k, v);
        Ok(req)
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

/// The body of the server's `409` to a write without the live lease.
pub const LEASE_LOST: &str = "this client does not hold the repository lock (it was lost or never taken)";

fn lease_lost(body: &[u8]) -> bool {
    body.starts_with(LEASE_LOST.as_bytes())
}

fn status_error(what: &str, code: u16, body: &[u8]) -> StoreError {
    let text = String::from_utf8_lossy(body);
    let text = text.lines().next().unwrap_or("").to_string();
    let kind = match code {
        404 => ErrorKind::NotFound,
        401 => {
            return StoreError::new(
                ErrorKind::Permanent,
                format!(
                "{what}: the server refused the key file ({text}): is it the key file for this repository?"
            ),
            )
        }
        403 => return StoreError::new(ErrorKind::Permanent, format!("{what}: the server refused: {text}")),
        // The server's lost-lease answer; other 409s (whose text may name a path that happens
        // to contain "lock") are `Exists`.
        409 if lease_lost(body) => ErrorKind::Permanent,
        _ => protocol::kind_of(code),
    };
    StoreError::new(kind, format!("{what}: server answered {code}: {text}"))
}

/// A response read whole.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    /// The lock token the request carried, and its route (the path after `/v1/NAME/`).
    token: Option<String>,
    route: String,
}

impl Answer {
    fn header_u64(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }
}

impl Repository for HttpRepo {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn read_config(&self) -> StoreResult<Option<Vec<u8>>> {
        match self.bytes("reading the repository config", |c| self.to(c, &Route::ReadConfig)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn init(&self, config: &[u8]) -> StoreResult<()> {
        let body = config.to_vec();
        self.bytes("creating the repository", |c| self.to(c, &Route::CreateConfig).body(body.clone()))?;
        Ok(())
    }

    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        let take = Route::TakeLock { owner: owner.to_string() };
        let mut waited = false;
        let answer = loop {
            let a = self.call("taking the repository lock", &[423], |c| self.to(c, &take))?;
            if a.status != 423 {
                break a;
            }
            // Taken. A lease whose holder died runs out: wait for it once (if it runs out soon
            // enough to be worth waiting for), then give up.
            let holder: String =
                String::from_utf8_lossy(&a.body).chars().filter(|c| !c.is_control()).take(200).collect();
            let left = a.header_u64("X-Archiver-Lock-Remaining-Ms").map(Duration::from_millis);
            match left {
                Some(left) if !waited && left <= MAX_LOCK_WAIT => {
                    waited = true;
                    std::thread::sleep(left + Duration::from_millis(100));
                }
                Some(left) if left > MAX_LOCK_WAIT => bail!(
                    "repository is locked by another archiver ({holder}) whose lease runs for {} s more, longer than the {} s a client waits; retry after it ends",
                    left.as_secs(),
                    MAX_LOCK_WAIT.as_secs()
                ),
                _ => bail!(
                    "repository is locked by another archiver ({holder}); wait for it to finish, then retry"
                ),
            }
        };
        let ttl = http_body::lease_ttl(answer.header_u64("X-Archiver-Lock-Ttl-Ms"));
        let token = String::from_utf8_lossy(&answer.body).into_owned();
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
        *self.owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(owner.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let (client, signer, stop2) = (self.client.clone(), self.signer.clone(), stop.clone());
        // The token may change (`relock`): renew and release whichever is current.
        let (slot, base) = (self.token.clone(), self.base.clone());
        let current = move || slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // A renewal lost to the network is tried again within a second rather than a third of
        // the lease later, so a short outage does not cost the lease. A lease that already ran
        // out (409) is not renewed: the next write takes the lock again (`relock`).
        let renewer = std::thread::spawn(move || {
            let mut wait = ttl / 3;
            while !stop2.load(Ordering::Relaxed) {
                std::thread::park_timeout(wait);
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Some(token) = current() else { break };
                let status = signer
                    .sign(
                        "renewing the lock",
                        client.post(format!("{base}/{}", Route::RenewLock(&token).path())),
                        None,
                    )
                    .ok()
                    .and_then(|req| client.execute(req).ok())
                    .map(|resp| resp.status().as_u16());
                // At most four renewals a second, however short the lease (`lease_ttl`).
                wait = match status {
                    Some(s) if (200..300).contains(&s) || (400..500).contains(&s) => ttl / 3,
                    _ => (ttl / 10).clamp(Duration::from_millis(250), Duration::from_secs(1)),
                };
            }
        });
        let (client, signer, slot, base) =
            (self.client.clone(), self.signer.clone(), self.token.clone(), self.base.clone());
        let release = Box::new(move || {
            let token = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(token) = token {
                if let Ok(req) = signer.sign(
                    "releasing the lock",
                    client.delete(format!("{base}/{}", Route::ReleaseLock(&token).path())),
                    None,
                ) {
                    let _ = client.execute(req);
                }
            }
        });
        Ok(Box::new(LeaseGuard { stop, renewer: Some(renewer), release }))
    }

    fn head(&self) -> StoreResult<(u64, Option<Vec<u8>>)> {
        let a = self.call("reading the manifest", &[], |c| self.to(c, &Route::Head))?;
        let gen = a
            .header_u64("X-Archiver-Generation")
            .ok_or_else(|| StoreError::new(ErrorKind::Permanent, "the server sent no generation"))?;
        Ok((gen, (gen > 0).then_some(a.body)))
    }

    fn generations(&self) -> StoreResult<Vec<u64>> {
        let names = self.names("listing manifest generations", Listing::Manifests)?;
        let bad = |n: &String| {
            StoreError::new(ErrorKind::Permanent, format!("the server sent a bad generation {n:?}"))
        };
        names.iter().map(|n| n.parse::<u64>().map_err(|_| bad(n))).collect()
    }

    fn manifest(&self, gen: u64) -> StoreResult<Vec<u8>> {
        Ok(self.call("reading a manifest", &[], |c| self.to(c, &Route::Manifest(gen)))?.body)
    }

    fn begin(&self, txn: &str, intent: &[u8]) -> StoreResult<()> {
        let body = intent.to_vec();
        let mut raw = [0u8; 16];
        getrandom::getrandom(&mut raw).map_err(|e| {
            StoreError::new(ErrorKind::Permanent, format!("beginning a transaction: no random numbers: {e}"))
        })?;
        let secret = hex::encode(raw);
        self.txn_keys.lock().unwrap_or_else(|p| p.into_inner()).entry(txn.to_string()).or_insert(secret);
        self.bytes("beginning a transaction", |c| {
            self.as_owner(self.to(c, &Route::Begin(txn)), txn).body(body.clone())
        })?;
        self.ledger.begun(txn);
        Ok(())
    }

    fn put_pack(&self, txn: &str, seq: u32, data: Vec<u8>) -> StoreResult<String> {
        let body = bytes::Bytes::from(data);
        let b = self.bytes("storing a pack", |c| {
            let route = Route::Upload { txn, kind: Kind::Packs, seq };
            self.as_owner(self.to(c, &route), txn).body(body.clone())
        })?;
        let name = String::from_utf8_lossy(&b).into_owned();
        self.ledger.pack(txn, &name);
        Ok(name)
    }

    fn put_index(&self, txn: &str, seq: u32, data: &[u8]) -> StoreResult<String> {
        let body = bytes::Bytes::copy_from_slice(data);
        let b = self.bytes("storing an index segment", |c| {
            let route = Route::Upload { txn, kind: Kind::Index, seq };
            self.as_owner(self.to(c, &route), txn).body(body.clone())
        })?;
        let name = String::from_utf8_lossy(&b).into_owned();
        self.ledger.index(txn, &name);
        Ok(name)
    }

    fn checkpoint(&self, txn: &str, seq: u32, record: &[u8]) -> StoreResult<()> {
        let body = record.to_vec();
        self.bytes("storing a checkpoint", |c| {
            self.as_owner(self.to(c, &Route::PutCheckpoint { txn, seq }), txn).body(body.clone())
        })?;
        self.ledger.checkpoint(txn, record);
        Ok(())
    }

    fn checkpoint_record(&self, txn: &str, seq: u32) -> StoreResult<Vec<u8>> {
        self.bytes("reading a checkpoint record", |c| self.to(c, &Route::GetCheckpoint { txn, seq }))
    }

    fn commit(&self, txn: &str, req: &CommitRequest) -> StoreResult<()> {
        let body = req.encode();
        self.bytes("committing", |c| self.as_owner(self.to(c, &Route::Commit(txn)), txn).body(body.clone()))?;
        self.ledger.ended(txn);
        Ok(())
    }

    fn finish(&self, txn: &str) -> StoreResult<()> {
        self.bytes("finishing a commit", |c| self.to(c, &Route::Finish(txn)))?;
        Ok(())
    }

    fn abort(&self, txn: &str) -> StoreResult<()> {
        self.bytes("discarding a transaction", |c| self.as_owner(self.to(c, &Route::Abort(txn)), txn))?;
        self.ledger.ended(txn);
        Ok(())
    }

    fn pending(&self) -> StoreResult<Vec<Pending>> {
        let b = self.bytes("listing pending transactions", |c| self.to(c, &Route::Pending))?;
        decode_pending(&b).map_err(|e| StoreError::new(ErrorKind::Permanent, format!("{e:#}")))
    }

    fn clean_partial(&self) -> StoreResult<()> {
        self.bytes("removing partial uploads", |c| self.to(c, &Route::CleanPartial))?;
        Ok(())
    }

    fn read_pack(&self, pack: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        if len == 0 {
            // No range to ask for, but a missing pack is NotFound here too, as it is locally.
            self.pack_size(pack)?;
            return Ok(Vec::new());
        }
        let range = format!("bytes={}-{}", offset, offset + len - 1);
        let b = self.bytes(&format!("reading pack {pack}"), |c| {
            self.to(c, &Route::pack(pack)).header("Range", range.clone())
        })?;
        if b.len() as u64 != len {
            return Err(StoreError::new(ErrorKind::Transient, format!("reading pack {pack}: short read")));
        }
        Ok(b)
    }

    fn pack_size(&self, pack: &str) -> StoreResult<u64> {
        let b = self.bytes(&format!("reading the size of pack {pack}"), |c| {
            let Route::Pack { txn, seq } = Route::pack(pack) else { unreachable!() };
            self.to(c, &Route::PackSize { txn, seq })
        })?;
        String::from_utf8_lossy(&b)
            .trim()
            .parse()
            .map_err(|_| StoreError::new(ErrorKind::Permanent, "the server sent a bad size"))
    }

    fn get_index(&self, name: &str) -> StoreResult<Vec<u8>> {
        self.bytes(&format!("reading index segment {name}"), |c| self.to(c, &Route::Index(name)))
    }

    fn list_packs(&self) -> StoreResult<Vec<String>> {
        self.names("listing packs", Listing::Packs)
    }

    fn list_indexes(&self) -> StoreResult<Vec<String>> {
        self.names("listing index segments", Listing::Index)
    }

    /// Four: round trips and the server's fsyncs overlap (the server serves requests in parallel).
    fn uploads_in_flight(&self) -> usize {
        4
    }
}
