//! The client side of `archiver serve`: the `Repository` API over HTTP (docs/PROTOCOL.md), with
//! reqwest's blocking client. Each call is one request (`http_wire` builds, signs and sends it
//! and reads its answer), on a kept-alive connection.
//!
//! Retry does not live here. Every request is idempotent (puts store the same bytes again, commit
//! and finish roll forward to the same state, deletes of missing objects succeed), so the client
//! makes one attempt per call and reports a transient failure (connection refused or cut,
//! timeout, 408, 429, 5xx other than 500 and 507, with the server's `Retry-After`) as
//! `ErrorKind::Transient`; `repo::open` wraps it in `retrying::RetryingRepo`, which retries under
//! `ARCHIVER_RETRIES` with backoff and jitter (`backend::retry`). What stays here is protocol:
//! a write refused because the lease was lost (409) is sent once more after the lock is taken
//! again (`relock`, `lease`), and the lock itself (which the decorator passes through) runs its
//! own requests under the same `retry::Policy`, since taking a lock again blindly is not safe.
//!
//! The lock is a lease renewed by a background thread while the guard lives (`lease`). Every
//! request is signed with the key file's access key the route needs (`access`); with an
//! `https://` URL the connection is TLS (rustls), trusting `--cacert` alone when given. What a
//! server can make the client hold or wait for is bounded (`http_body`): response sizes per
//! route, per-read timeouts, the wait for a held lock, the lease length; redirects are refused.

use super::http_body::{self, MAX_LOCK_WAIT};
use super::http_wire::{error_chain, lease_lost, Answer, Signer, Wire};
use super::lease::{LeaseGuard, Ledger};
use super::protocol::{Kind, Listing, Route};
use super::{decode_pending, CommitRequest, Connect, LockGuard, Pending, Repository};
use crate::backend::retry::Policy;
use crate::backend::{ErrorKind, StoreError, StoreResult};
use crate::codec::Reader;
use anyhow::{bail, Result};
use bytes::Bytes;
use reqwest::blocking::{Client, RequestBuilder};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use super::http_wire::LEASE_LOST;

pub struct HttpRepo {
    url: String,
    wire: Wire,
    /// For the lock's own requests only: taking it (`lock`) and taking it again (`relock`).
    retry: Policy,
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
    /// A client of the repository at `url`; `retry` is the policy its lock requests run under
    /// (the caller retries everything else: `repo::open`).
    pub fn new(url: &str, conn: &Connect, retry: Policy) -> Result<HttpRepo> {
        let (scheme, rest) = url.trim_end_matches('/').split_once("://").unwrap_or(("http", url));
        let Some((host, name)) = rest.split_once('/') else {
            bail!("repository URL {url} names no repository: use {scheme}://HOST:PORT/NAME");
        };
        if name.is_empty() || name.contains('/') {
            bail!(
                "repository URL {url}: the repository name must be one path segment ({scheme}://HOST:PORT/NAME)"
            );
        }
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
        let wire = Wire {
            base: format!("{scheme}://{host}/v1/{name}"),
            signer: Signer { access: Arc::new(conn.access.clone()), prefix: format!("/v1/{name}/") },
            client,
            token: Arc::new(Mutex::new(None)),
            timeout,
        };
        Ok(HttpRepo {
            url: url.to_string(),
            wire,
            retry,
            ledger: Ledger::default(),
            owner: Mutex::new(None),
            relocking: Mutex::new(()),
            txn_keys: Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn to(&self, c: &Client, route: &Route) -> RequestBuilder {
        self.wire.to(c, route)
    }

    /// `rb` with the secret of transaction `txn`, if this client began it.
    fn as_owner(&self, rb: RequestBuilder, txn: &str) -> RequestBuilder {
        match self.txn_keys.lock().unwrap_or_else(|p| p.into_inner()).get(txn) {
            Some(k) => rb.header(TXN_KEY, k.as_str()),
            None => rb,
        }
    }

    /// Sends a request once and reads its answer; a status other than 2xx and those in `accept`
    /// is an error. A write refused because this client lost its lease is sent once more if the
    /// lock could be taken again with the transaction untouched (`relock`): that is the lease
    /// protocol, not a retry.
    fn call(
        &self,
        what: &str,
        accept: &[u16],
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> StoreResult<Answer> {
        let a = self.wire.once(what, &build)?;
        if a.status == 409 && lease_lost(&a.body) && self.relock(&a) {
            return self.wire.once(what, &build)?.accepted(what, accept);
        }
        a.accepted(what, accept)
    }

    /// After a write was refused for want of the lease (the server restarted, or we stalled past
    /// the TTL): takes the lock again and says whether the write's transaction may go on. Its
    /// requests are retried here, under the lock's policy: the write that needs them is itself
    /// being retried by the caller, which cannot tell a half-done relock from a failed write.
    fn relock(&self, refused: &Answer) -> bool {
        let Some(txn) = refused.route.strip_prefix("txn/").and_then(|r| r.split('/').next()) else {
            return false;
        };
        let Some(owner) = self.owner.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return false };
        if !self.ledger.knows(txn) {
            return false;
        }
        let _one = self.relocking.lock().unwrap_or_else(|p| p.into_inner());
        if self.wire.token() != refused.token {
            return true; // a concurrent upload already took the lock again and checked
        }
        let what = "taking the repository lock again";
        let take = Route::TakeLock { owner: owner.clone() };
        let Ok(a) = self.retry.run(what, || self.call(what, &[423], |c| self.to(c, &take))) else {
            return false;
        };
        if a.status != 200 {
            return false;
        }
        self.wire.set_token(Some(String::from_utf8_lossy(&a.body).into_owned()));
        let r = &self.retry;
        match (
            r.run("listing pending transactions", || self.pending()),
            r.run("listing packs", || self.list_packs()),
            r.run("listing index segments", || self.list_indexes()),
        ) {
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

    fn access_list(&self) -> StoreResult<Option<Vec<u8>>> {
        match self.bytes("reading the access list", |c| self.to(c, &Route::ReadAccess)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put_access_list(&self, gen: u64, list: &[u8]) -> StoreResult<()> {
        let body = list.to_vec();
        self.bytes("storing the access list", |c| self.to(c, &Route::PutAccess(gen)).body(body.clone()))?;
        Ok(())
    }

    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        let what = "taking the repository lock";
        let take = Route::TakeLock { owner: owner.to_string() };
        let mut waited = false;
        let answer = loop {
            let a = self.retry.run(what, || self.call(what, &[423], |c| self.to(c, &take)))?;
            if a.status != 423 {
                break a;
            }
            // Taken. A lease whose holder died runs out: wait for it once (if it runs out soon
            // enough to be worth waiting for), then give up.
            let holder: String =
                String::from_utf8_lossy(&a.body).chars().filter(|c| !c.is_control()).take(400).collect();
            let left = a.header_u64("X-Archiver-Lock-Remaining-Ms").map(Duration::from_millis);
            match left {
                // Without a lease's remaining time, the refusal is the server's own store lock (a
                // local archiver's flock, another server's lease in a shared bucket, a store it
                // cannot reach): its text says it all.
                None => return super::lock::locked(holder),
                Some(left) if !waited && left <= MAX_LOCK_WAIT => {
                    waited = true;
                    std::thread::sleep(left + Duration::from_millis(100));
                }
                Some(left) if left > MAX_LOCK_WAIT => return super::lock::locked(format!(
                    "repository is locked by another archiver ({holder}) whose lease runs for {} s more, longer than the {} s a client waits; retry after it ends",
                    left.as_secs(),
                    MAX_LOCK_WAIT.as_secs()
                )),
                _ => return super::lock::locked(format!(
                    "repository is locked by another archiver ({holder}); wait for it to finish, then retry"
                )),
            }
        };
        let ttl = http_body::lease_ttl(answer.header_u64("X-Archiver-Lock-Ttl-Ms"));
        self.wire.set_token(Some(String::from_utf8_lossy(&answer.body).into_owned()));
        *self.owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(owner.to_string());
        Ok(Box::new(LeaseGuard::start(self.wire.clone(), ttl)))
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

    fn put_pack(&self, txn: &str, seq: u32, data: Bytes) -> StoreResult<String> {
        let b = self.bytes("storing a pack", |c| {
            let route = Route::Upload { txn, kind: Kind::Packs, seq };
            self.as_owner(self.to(c, &route), txn).body(data.clone())
        })?;
        let name = String::from_utf8_lossy(&b).into_owned();
        self.ledger.pack(txn, &name);
        Ok(name)
    }

    fn put_index(&self, txn: &str, seq: u32, data: &[u8]) -> StoreResult<String> {
        let body = Bytes::copy_from_slice(data);
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
