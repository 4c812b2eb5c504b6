//! `archiver serve`: the transactional repository API over HTTP (docs/PROTOCOL.md).
//!
//! Each repository `NAME` lives in `STORE/NAME` as an ordinary local repository, and every route
//! maps onto one `Repository` call on it, so the server keeps exactly the local repository's
//! guarantees: an object is acknowledged only after it was written to a temporary file, fsynced,
//! renamed and its directory fsynced; a commit is decided by its commit record and finished by
//! the server. The server never sees plaintext or keys: packs, segments, manifests and records
//! arrive sealed (the commit record is plain by design: it only names objects).
//!
//! Writes must carry the token of the lock connection that holds the repository (see `lock`):
//! a client that lost its lock can never write over the next holder's transaction.

mod lock;

use crate::backend::{ErrorKind, StoreError};
use crate::codec::Writer;
use crate::progress::{Event, Progress};
use crate::repo::objects::ObjectRepo;
use crate::repo::{CommitRequest, Repository};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

pub struct ServeOptions {
    pub listen: String,
    pub store: PathBuf,
    /// How long a client's lock survives without renewal (a killed client's lock then frees).
    pub lock_ttl: std::time::Duration,
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
        let status = match e.kind {
            ErrorKind::NotFound => 404,
            ErrorKind::Exists => 409,
            ErrorKind::NoSpace => 507,
            ErrorKind::Transient => 503,
            ErrorKind::Permanent => 500,
        };
        Reply::text(status, e.msg)
    }
}

struct State {
    store: PathBuf,
    locks: lock::Locks,
}

/// Runs the server until the process is stopped. Reports the address it listens on first.
pub fn serve(opts: &ServeOptions, progress: Progress) -> Result<()> {
    std::fs::create_dir_all(&opts.store)
        .with_context(|| format!("cannot create the store directory {}", opts.store.display()))?;
    let server =
        Server::http(&opts.listen).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    let addr = server.server_addr().to_ip().map(|a| a.to_string()).unwrap_or_else(|| opts.listen.clone());
    progress(Event::Notice(format!("serving {} on http://{addr}/", opts.store.display())));
    let state = Arc::new(State { store: opts.store.clone(), locks: lock::Locks::new(opts.lock_ttl) });
    for request in server.incoming_requests() {
        let state = state.clone();
        std::thread::spawn(move || handle(&state, request));
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s != "."
        && s != ".."
}

fn hex_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn handle(state: &State, mut req: Request) {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let parts: Vec<String> = path.trim_start_matches('/').split('/').map(String::from).collect();
    let method = req.method().clone();
    let owner = query.strip_prefix("owner=").map(percent_decode).unwrap_or_default();
    // Sized up front: a 16 MiB pack is not grown (and copied) by doubling.
    let mut body = Vec::with_capacity(req.body_length().unwrap_or(0).min(64 << 20));
    if let Err(e) = req.as_reader().read_to_end(&mut body) {
        let _ = req.respond(
            Response::from_string(format!("cannot read the request body: {e}")).with_status_code(400),
        );
        return;
    }
    let token = req.headers().iter().find(|h| h.field.equiv("X-Archiver-Lock")).map(|h| h.value.to_string());
    let range = req.headers().iter().find(|h| h.field.equiv("Range")).map(|h| h.value.to_string());
    let reply = route(
        state,
        &method,
        &as_strs(&parts),
        body,
        &Extra { token: token.as_deref(), range: range.as_deref(), owner: &owner },
    );
    // A plain body with its length, written with one write_all: `from_data` would send anything
    // over 32 KiB chunked, copied through an 8 KiB buffer, one system call per chunk.
    let len = reply.body.len();
    let mut resp = Response::new(StatusCode(reply.status), Vec::new(), &reply.body[..], Some(len), None)
        .with_chunked_threshold(usize::MAX);
    for (k, v) in reply.headers {
        if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    let _ = req.respond(resp);
}

fn as_strs(parts: &[String]) -> Vec<&str> {
    parts.iter().map(String::as_str).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a route may need besides method, path and body.
struct Extra<'a> {
    token: Option<&'a str>,
    range: Option<&'a str>,
    owner: &'a str,
}

fn route(state: &State, method: &Method, parts: &[&str], body: Vec<u8>, x: &Extra) -> Reply {
    let (token, range) = (x.token, x.range);
    let ["v1", repo, rest @ ..] = parts else {
        return Reply::text(404, "no such route");
    };
    if !valid_name(repo) {
        return Reply::text(400, "repository names are letters, digits, '-', '_' and '.'");
    }
    let dir = state.store.join(repo);
    let r = ObjectRepo::local(&dir.display().to_string());
    // Mutations require the lock token (init and lock release excepted).
    let mutates = !matches!(method, Method::Get) && !matches!(rest, ["config"] | ["lock"] | ["lock", _]);
    if mutates && !state.locks.holds(repo, token) {
        return Reply::text(
            409,
            "this client does not hold the repository lock (it was lost or never taken)",
        );
    }
    let res: Result<Reply, StoreError> = (|| match (method, rest) {
        (Method::Get, ["config"]) => Ok(match r.read_config()? {
            Some(c) => Reply::ok(c),
            None => Reply::text(404, "no repository here"),
        }),
        (Method::Put, ["config"]) => r.init(&body).map(|_| Reply::empty(201)),
        (Method::Post, ["lock"]) => {
            if r.read_config()?.is_none() {
                return Ok(Reply::text(404, "no repository here"));
            }
            Ok(match state.locks.take(repo, &dir, x.owner) {
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
        (Method::Post, ["lock", tok]) => Ok(match state.locks.renew(repo, tok) {
            true => Reply::empty(200),
            false => Reply::text(409, "the lock's lease ran out and may have been taken by another client"),
        }),
        (Method::Delete, ["lock", tok]) => {
            state.locks.release(repo, tok);
            Ok(Reply::empty(204))
        }
        (Method::Get, ["head"]) => {
            let (gen, m) = r.head()?;
            let mut reply = match m {
                Some(m) => Reply::ok(m),
                None => Reply::empty(200),
            };
            reply.headers.push(("X-Archiver-Generation", gen.to_string()));
            Ok(reply)
        }
        (Method::Put, ["txn", txn, "begin"]) if hex_name(txn) => {
            r.begin(txn, &body).map(|_| Reply::empty(201))
        }
        (Method::Put, ["txn", txn, kind @ ("packs" | "index"), seq]) if hex_name(txn) => {
            let Ok(seq) = u32::from_str_radix(seq, 16) else {
                return Ok(Reply::text(400, "sequence numbers are hex"));
            };
            let name =
                if *kind == "packs" { r.put_pack(txn, seq, body)? } else { r.put_index(txn, seq, &body)? };
            Ok(Reply { status: 201, body: name.into_bytes(), headers: Vec::new() })
        }
        (Method::Put, ["txn", txn, "checkpoint"]) if hex_name(txn) => {
            r.checkpoint(txn, &body).map(|_| Reply::empty(201))
        }
        (Method::Post, ["txn", txn, "commit"]) if hex_name(txn) => match CommitRequest::decode(&body) {
            Ok(req) => r.commit(txn, &req).map(|_| Reply::empty(200)),
            Err(e) => Ok(Reply::text(400, format!("bad commit request: {e:#}"))),
        },
        (Method::Post, ["txn", txn, "finish"]) if hex_name(txn) => r.finish(txn).map(|_| Reply::empty(200)),
        (Method::Post, ["txn", txn, "abort"]) if hex_name(txn) => r.abort(txn).map(|_| Reply::empty(200)),
        (Method::Get, ["pending"]) => Ok(Reply::ok(crate::repo::encode_pending(&r.pending()?))),
        (Method::Post, ["clean-partial"]) => r.clean_partial().map(|_| Reply::empty(200)),
        (Method::Get, ["packs", txn, seq]) if hex_name(txn) && hex_name(seq) => {
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
        (Method::Get, ["size", "packs", txn, seq]) if hex_name(txn) && hex_name(seq) => {
            Ok(Reply::ok(r.pack_size(&format!("{txn}/{seq}"))?.to_string().into_bytes()))
        }
        (Method::Get, ["index", name]) if hex_name(name) => Ok(Reply::ok(r.get_index(name)?)),
        (Method::Get, ["list", what @ ("packs" | "index")]) => {
            let names = if *what == "packs" { r.list_packs()? } else { r.list_indexes()? };
            let mut w = Writer::new();
            w.uvar(names.len() as u64);
            for n in &names {
                w.str(n);
            }
            Ok(Reply::ok(w.finish()))
        }
        _ => Ok(Reply::text(404, "no such route")),
    })();
    res.unwrap_or_else(Reply::from)
}

/// `bytes=START-END` (inclusive) within an object of `size` bytes.
fn parse_range(h: &str, size: u64) -> Option<(u64, u64)> {
    let (a, b) = h.strip_prefix("bytes=")?.split_once('-')?;
    let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b && b < size).then_some((a, b - a + 1))
}
