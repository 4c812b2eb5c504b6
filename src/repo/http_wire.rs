//! One request to `archiver serve` and its whole answer: the plumbing under `HttpRepo`. A route
//! becomes a method and URL (`protocol::Route`), is signed with the access key the route needs
//! (`Signer`), sent once, and its answer read whole under the route's cap (`http_body`). A status
//! other than success becomes a `StoreError` of the kind `protocol::kind_of` gives (503 and the
//! other 5xx but 500 and 507, 408 and 429 are `Transient`, as are a failed connection and an
//! answer cut short), carrying the server's `Retry-After`.
//!
//! Nothing here retries: a transient failure is returned as one, and the repository decorator
//! (`repo::retrying`, applied by `repo::open`) decides whether to send the request again.
//!
//! Invariants: every request that leaves is signed for exactly the route its path names (one the
//! protocol does not know is refused before it is sent); an answer keeps the lock token its
//! request carried, so the lease logic can tell whether the lock was taken again meanwhile; every
//! failure is one line naming what was being done.

use super::http_body;
use super::protocol::{self, Route};
use crate::access::{AccessKeys, Signed};
use crate::backend::{ErrorKind, StoreError, StoreResult};
use reqwest::blocking::{Client, Request, RequestBuilder};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The body of the server's `409` to a write without the live lease.
pub const LEASE_LOST: &str = "this client does not hold the repository lock (it was lost or never taken)";

/// Whether an answer's body is the server's lost-lease refusal.
pub(super) fn lease_lost(body: &[u8]) -> bool {
    body.starts_with(LEASE_LOST.as_bytes())
}

/// What every request of one repository shares: where it goes, how it is signed, the connection
/// pool and the current lock token. Clones share the pool and the token.
#[derive(Clone)]
pub(super) struct Wire {
    /// `SCHEME://HOST/v1/NAME`.
    pub base: String,
    pub signer: Signer,
    pub client: Client,
    /// The lock token writes carry (`None` while the lock is not held).
    pub token: Arc<Mutex<Option<String>>>,
    /// The read timeout (`http_body`): `ARCHIVER_TIMEOUT` seconds, else 30.
    pub timeout: Duration,
}

impl Wire {
    /// A request for `route` (the protocol's one description of it, `protocol::Route`).
    pub fn to(&self, c: &Client, route: &Route) -> RequestBuilder {
        let method = reqwest::Method::from_bytes(route.method().as_bytes()).unwrap_or(reqwest::Method::GET);
        c.request(method, format!("{}/{}", self.base, route.path()))
    }

    pub fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_token(&self, token: Option<String>) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// One attempt: the request, and the whole response body (up to the route's cap), whatever
    /// its status. A failed connection or a body cut short or stalled is transient; a redirect
    /// is permanent.
    pub fn once(&self, what: &str, build: &impl Fn(&Client) -> RequestBuilder) -> StoreResult<Answer> {
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

    /// Sends a request whose answer only matters by its status (lease renewals and releases),
    /// without the lock token header; None if it could not be sent or got no answer.
    pub fn status_only(&self, what: &str, rb: RequestBuilder) -> Option<u16> {
        let req = self.signer.sign(what, rb, None).ok()?;
        self.client.execute(req).ok().map(|resp| resp.status().as_u16())
    }
}

/// A response read whole.
pub(super) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    /// The lock token the request carried, and its route (the path after `/v1/NAME/`).
    pub token: Option<String>,
    pub route: String,
}

impl Answer {
    pub fn header_u64(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }

    /// The answer, if its status is a success (2xx) or one of `accept`; otherwise the error it
    /// means.
    pub fn accepted(self, what: &str, accept: &[u16]) -> StoreResult<Answer> {
        if (200..300).contains(&self.status) || accept.contains(&self.status) {
            return Ok(self);
        }
        Err(status_error(what, self.status, &self.body).with_retry_after(retry_after(&self.headers)))
    }
}

/// The wait a `Retry-After` header asks for, in its seconds form (`Retry-After: 120`). The
/// HTTP-date form is ignored (`archiver serve` does not send it; the backoff applies instead).
/// The retry holds any wait to `backend::retry::MAX_RETRY_AFTER`.
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get("Retry-After")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// The error a non-success status `code` with `body` means.
pub(super) fn status_error(what: &str, code: u16, body: &[u8]) -> StoreError {
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

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

/// Signs each request with the key file's access key the route needs.
#[derive(Clone)]
pub(super) struct Signer {
    pub access: Arc<AccessKeys>,
    /// `/v1/NAME/`: what precedes the route in every path.
    pub prefix: String,
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
