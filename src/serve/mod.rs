//! `archiver serve`: the transactional repository API over HTTP (docs/PROTOCOL.md).
//!
//! Each repository `NAME` is an `ObjectRepo` the server's `RepoFactory` opens (`factory`; for
//! `archiver serve DIR`, an ordinary local repository in `DIR/NAME`), and every route maps onto
//! one `Repository` call on it, so the server keeps exactly that repository's guarantees (for a
//! local directory: an object is acknowledged only after it was written to a temporary file,
//! fsynced, renamed and its directory fsynced); a commit is decided by its commit record and finished by
//! the server. The server never sees plaintext or keys: packs, segments, manifests and records
//! arrive sealed (the commit record is plain by design: it only names objects).
//!
//! Every request must carry a signature by one of the repository's access keys that the route
//! allows (`repo::protocol::Route::need`), checked against the verifiers in the repository's config: a missing
//! or wrong signature gets 401 and a key without the permission 403, before its body is read
//! (`admit`: the signature covers the head and the body hash it names, and is verified once);
//! once the body is in, `authorize` checks it is the body that hash names and that the route
//! accepts the permission for this body, before anything is written. Bodies are read under per-route limits and
//! timeouts (`limits`), connections are held under a cap that peers without a key cannot exhaust
//! (`conns`). What a key may do to a transaction (a write key only adds) is `guard`'s to decide.
//! Creating a repository (PUT config) needs `serve --allow-create` and a signature by a key the
//! config it stores names.
//!
//! Writes must carry the token of the lock connection that holds the repository (see `lock`):
//! a client that lost its lock can never write over the next holder's transaction.

mod admit;
mod conns;
mod factory;
mod guard;
mod lock;
mod net;
mod s3_store;

pub use admit::parse_request;
pub use factory::{LocalDirs, RepoFactory};
pub use s3_store::S3Repos;

use crate::access::{Perm, Signed, Verifiers};
use crate::backend::StoreError;
use crate::codec::Writer;
use crate::progress::Progress;
use crate::repo::objects::ObjectRepo;
use crate::repo::protocol::{self, Kind, Listing, Route};
use crate::repo::{CommitRequest, Repository};
use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;

pub struct ServeOptions {
    pub listen: String,
    /// How long a client's lock survives without renewal (a killed client's lock then frees).
    pub lock_ttl: std::time::Duration,
    /// PEM certificate chain and private key: serve HTTPS (rustls) instead of plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Whether `PUT config` may create repositories (`serve --allow-create`).
    pub allow_create: bool,
    /// A request body idle this long, or slower than `limits::BODY_FLOOR` after it, gets 408.
    pub body_timeout: std::time::Duration,
}

/// A response: status and body.
pub(crate) struct Reply {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn ok(body: Vec<u8>) -> Reply {
        Reply { status: 200, body, headers: Vec::new() }
    }
    fn empty(status: u16) -> Reply {
        Reply { status, body: Vec::new(), headers: Vec::new() }
    }
    fn text(status: u16, msg: impl Into<String>) -> Reply {
        Reply { status, body: msg.into().into_bytes(), headers: Vec::new() }
    }
}

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Reply {
        Reply::text(protocol::status_of(e.kind), e.msg)
    }
}

struct State {
    repos: Box<dyn RepoFactory>,
    locks: lock::Locks,
    allow_create: bool,
    body_timeout: std::time::Duration,
}

/// Runs the server until the process is stopped, serving the repositories `repos` opens.
/// Reports the address it listens on first.
pub fn serve(opts: &ServeOptions, repos: Box<dyn RepoFactory>, progress: Progress) -> Result<()> {
    let state = Arc::new(State {
        repos,
        locks: lock::Locks::new(opts.lock_ttl),
        allow_create: opts.allow_create,
        body_timeout: opts.body_timeout,
    });
    let tls = opts.tls.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let cap = conns::cap_for(conns::raise_fd_limit());
    net::run(&opts.listen, tls, state, cap, progress)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s != "."
        && s != ".."
}

/// A whole request, as `net` read it.
pub(crate) struct Incoming {
    method: String,
    /// Path and query as received.
    url: String,
    token: Option<String>,
    range: Option<String>,
    auth: Option<String>,
    /// The transaction secret (`X-Archiver-Txn-Key`): proves the caller began the transaction.
    txn_key: Option<String>,
    body: Vec<u8>,
    /// The permission `admit` verified the signature for (None: checked in `authorize`).
    signed: Option<Perm>,
}

fn handle(state: &State, req: Incoming) -> Reply {
    let extra = Extra {
        token: req.token.as_deref(),
        range: req.range.as_deref(),
        auth: req.auth.as_deref(),
        txn_key: req.txn_key.as_deref(),
        url: &req.url,
        allow_create: state.allow_create,
        signed: req.signed,
    };
    let mut reply = route(state, &req.method, req.body, &extra);
    if reply.status >= 400 {
        // Errors name objects as the client knows them (NAME/packs/...), not where the store is.
        let text = state.repos.hide(&String::from_utf8_lossy(&reply.body));
        reply.body = text.into_bytes();
    }
    reply
}

/// The repository name and the route of `method` on `url` (path and query as received).
pub(crate) fn parse<'a>(method: &str, url: &'a str) -> Result<(&'a str, Route<'a>), Reply> {
    let Some((repo, rest)) = url.strip_prefix("/v1/").and_then(|p| p.split_once('/')) else {
        return Err(Reply::text(404, "no such route"));
    };
    if !valid_name(repo) {
        return Err(Reply::text(400, "repository names are letters, digits, '-', '_' and '.'"));
    }
    let route = Route::parse(method, rest).map_err(|(status, why)| Reply::text(status, why))?;
    Ok((repo, route))
}

/// What a route may need besides method, path and body.
struct Extra<'a> {
    token: Option<&'a str>,
    range: Option<&'a str>,
    auth: Option<&'a str>,
    txn_key: Option<&'a str>,
    /// Path and query as received: what the signature covers.
    url: &'a str,
    allow_create: bool,
    /// The permission the head's signature proved in `admit`.
    signed: Option<Perm>,
}

/// Checks the request's signature, body included, against the repository's verifiers: the
/// permission it proves, or the refusal to send. Creating a repository is checked against the
/// verifiers the new config names (`admit` let it in only with `--allow-create`); a `PUT config`
/// to an existing repository changes nothing, so `init` answers it (201 or 409) unchecked.
fn authorize(
    state: &State,
    name: &str,
    r: &ObjectRepo,
    method: &str,
    route: &Route,
    body: &[u8],
    x: &Extra,
) -> Result<Option<Perm>, Reply> {
    let signed =
        Signed { method, path: x.url, range: x.range.unwrap_or(""), lock: x.token.unwrap_or(""), body };
    if *route == Route::CreateConfig {
        if !x.allow_create {
            return Err(Reply::text(403, admit::CREATE_REFUSED));
        }
        let Some(verifiers) = Verifiers::from_config(body) else {
            return Err(Reply::text(400, "the repository config names no access verifiers"));
        };
        // An existing repository is never changed by `init` (the same bytes: 201, others: 409).
        if matches!(r.read_config(), Ok(Some(_))) {
            return Ok(None);
        }
        verifiers.verify(x.auth, &signed, std::time::SystemTime::now()).map_err(|m| Reply::text(401, m))?;
        return Ok(None);
    }
    let perm = match x.signed {
        // The signature was verified on the head; the body must be the one it names.
        Some(perm) => Verifiers::body_matches(x.auth, body).map(|()| perm),
        None => admit::verifiers_of(state, name, r)?.verify(x.auth, &signed, std::time::SystemTime::now()),
    }
    .map_err(|m| Reply::text(401, m))?;
    permitted(perm, route.need(body))?;
    Ok(Some(perm))
}

/// The 403 for a key whose permission `perm` is not among those a route accepts (`can`).
pub(crate) fn permitted(perm: Perm, can: &[Perm]) -> Result<(), Reply> {
    if can.contains(&perm) {
        return Ok(());
    }
    let names: Vec<&str> = can.iter().map(|p| p.name()).collect();
    Err(Reply::text(
        403,
        format!(
            "a key with only the {} permission may not do this (it needs {})",
            perm.name(),
            names.join(" or ")
        ),
    ))
}

fn route(state: &State, method: &str, body: Vec<u8>, x: &Extra) -> Reply {
    let (token, range) = (x.token, x.range);
    let (repo, route) = match parse(method, x.url) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let r = match state.repos.open(repo) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let perm = match authorize(state, repo, &r, method, &route, &body, x) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    // Mutations require the lock token (init and the lock's own routes excepted).
    if route.mutates() && !state.locks.holds(repo, token) {
        return Reply::text(409, crate::repo::http::LEASE_LOST);
    }
    let who = guard::Caller { perm, txn_key: x.txn_key };
    let res: Result<Reply, StoreError> = (|| match route {
        Route::ReadConfig => Ok(match r.read_config()? {
            Some(c) => Reply::ok(c),
            None => Reply::text(404, "no repository here"),
        }),
        Route::CreateConfig => r.init(&body).map(|_| Reply::empty(201)),
        Route::ReadAccess => Ok(match r.access_list()? {
            Some(l) => Reply::ok(l),
            None => Reply::text(404, "no access list: the config's access keys are in force"),
        }),
        Route::PutAccess(gen) => guard::access_list(&r, gen, &body),
        Route::TakeLock { owner } => {
            if r.read_config()?.is_none() {
                return Ok(Reply::text(404, "no repository here"));
            }
            Ok(match state.locks.take(repo, &*r, &owner) {
                Ok(token) => {
                    let mut reply = Reply::ok(token.into_bytes());
                    reply.headers.push(("X-Archiver-Lock-Ttl-Ms", state.locks.ttl().as_millis().to_string()));
                    reply
                }
                Err(Ok(taken)) => {
                    let mut reply = Reply::text(423, taken.owner);
                    reply
                        .headers
                        .push(("X-Archiver-Lock-Remaining-Ms", taken.remaining.as_millis().to_string()));
                    reply
                }
                Err(Err(msg)) => Reply::text(423, msg),
            })
        }
        Route::RenewLock(tok) => Ok(match state.locks.renew(repo, tok) {
            true => Reply::empty(200),
            false => Reply::text(409, "the lock's lease ran out and may have been taken by another client"),
        }),
        Route::ReleaseLock(tok) => {
            state.locks.release(repo, tok);
            Ok(Reply::empty(204))
        }
        Route::Head => {
            let (gen, m) = r.head()?;
            let mut reply = match m {
                Some(m) => Reply::ok(m),
                None => Reply::empty(200),
            };
            reply.headers.push(("X-Archiver-Generation", gen.to_string()));
            Ok(reply)
        }
        Route::Begin(txn) => guard::begin(&r, txn, &body, &who),
        Route::Upload { txn, kind, seq } => {
            if let Some(refused) = guard::upload(&r, txn, &who) {
                return Ok(refused);
            }
            let name = match kind {
                Kind::Packs => r.put_pack(txn, seq, body.into())?,
                Kind::Index => r.put_index(txn, seq, &body)?,
            };
            Ok(Reply { status: 201, body: name.into_bytes(), headers: Vec::new() })
        }
        Route::PutCheckpoint { txn, seq } => guard::checkpoint(&r, txn, seq, &body, &who),
        Route::GetCheckpoint { txn, seq } => Ok(Reply::ok(r.checkpoint_record(txn, seq)?)),
        Route::Commit(txn) => match CommitRequest::decode(&body) {
            Ok(req) => guard::commit(&r, txn, req, &who),
            Err(e) => Ok(Reply::text(400, format!("bad commit request: {e:#}"))),
        },
        Route::Finish(txn) => r.finish(txn).map(|_| Reply::empty(200)),
        Route::Abort(txn) => guard::abort(&r, txn, &who),
        Route::Pending => Ok(Reply::ok(crate::repo::encode_pending(&r.pending()?))),
        Route::CleanPartial => r.clean_partial().map(|_| Reply::empty(200)),
        Route::Pack { txn, seq } => {
            let name = format!("{txn}/{seq}");
            let size = r.pack_size(&name)?;
            match range.and_then(|h| parse_range(h, size)) {
                Some((start, len)) => {
                    Ok(Reply { status: 206, body: r.read_pack(&name, start, len)?, headers: Vec::new() })
                }
                None if range.is_some() => Ok(Reply::text(416, "bad range")),
                None => Ok(Reply::ok(r.read_pack(&name, 0, size)?)),
            }
        }
        Route::PackSize { txn, seq } => {
            Ok(Reply::ok(r.pack_size(&format!("{txn}/{seq}"))?.to_string().into_bytes()))
        }
        Route::Index(name) => Ok(Reply::ok(r.get_index(name)?)),
        Route::Manifest(gen) => Ok(Reply::ok(r.manifest(gen)?)),
        Route::List(what) => {
            let names = match what {
                Listing::Packs => r.list_packs()?,
                Listing::Index => r.list_indexes()?,
                Listing::Manifests => r.generations()?.iter().map(u64::to_string).collect(),
            };
            let mut w = Writer::new();
            w.uvar(names.len() as u64);
            for n in &names {
                w.str(n);
            }
            Ok(Reply::ok(w.finish()))
        }
    })();
    res.unwrap_or_else(Reply::from)
}

/// `bytes=START-END` (inclusive) within an object of `size` bytes.
fn parse_range(h: &str, size: u64) -> Option<(u64, u64)> {
    let (a, b) = h.strip_prefix("bytes=")?.split_once('-')?;
    let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b && b < size).then(|| (a, b - a + 1))
}
