//! What the HTTP client lets a server (or whatever answers on its path) make it hold or wait for:
//! response bodies read incrementally under a cap per route (`protocol::Route::response_limit`; a
//! pack range read never more than the range asked for), per-read timeouts with a floor rate
//! instead of one long request timeout, a bounded wait for a held lock, and a lease length kept
//! in a sane range. Redirects are never followed (the client is built with no redirect policy
//! and a 3xx is a permanent error): a redirect would carry the signed request, its lock token
//! and its body to another host.
//!
//! Invariant: no answer makes the client allocate more than the route's cap, wait more than the
//! read timeout for a byte (or for a slow answer more than the floor rate allows), or renew a
//! lease more than a few times a second; every refusal is one line naming what was wrong.

use super::limits;
use super::protocol::Route;
use crate::backend::{ErrorKind, StoreError, StoreResult};
use std::io::Read;
use std::time::{Duration, Instant};

/// The longest the client waits for a response to begin (for a request without a body), or for
/// any further bytes of it, unless `ARCHIVER_TIMEOUT` says otherwise: the read timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// A response body must also average this rate after its first read timeout.
pub const DOWNLOAD_FLOOR: u64 = 16 << 10;
/// Requests that change the repository may take the server a while (a commit deletes many
/// packs): twice the read timeout; with a body, they are also given the time to send it at
/// `UPLOAD_FLOOR`.
pub const UPLOAD_FLOOR: u64 = 64 << 10;
/// The longest the client waits for another client's lease to run out.
pub const MAX_LOCK_WAIT: Duration = Duration::from_secs(60);
/// The range a lease length announced by the server is held to (renewals come every third).
pub const MIN_LEASE: Duration = Duration::from_secs(1);
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// The whole-request timeout for `method` with a body of `body_len` bytes, or None for reads,
/// which the client holds to the read timeout `timeout` per wait.
pub fn request_timeout(method: &str, body_len: usize, timeout: Duration) -> Option<Duration> {
    (method != "GET").then(|| 2 * timeout + Duration::from_secs(body_len as u64 / UPLOAD_FLOOR))
}

/// The lease the client keeps renewing: the server's announced length, held to a sane range.
pub fn lease_ttl(announced_ms: Option<u64>) -> Duration {
    announced_ms.map_or(Duration::from_secs(30), Duration::from_millis).clamp(MIN_LEASE, MAX_LEASE)
}

/// The most bytes to accept in the body of a response with `status` to `route` (None: a route
/// the protocol does not know, which the signer already refused), and whether more is an error
/// (a successful answer) or is cut off (an error text, of which only the first line is used).
pub fn cap(route: Option<&Route>, range: Option<&str>, status: u16) -> (u64, bool) {
    if !(200..300).contains(&status) {
        return (limits::SMALL, false);
    }
    match (route, range.and_then(range_len)) {
        (Some(Route::Pack { .. }), Some(r)) => (r, true),
        (Some(route), _) => (route.response_limit(), true),
        (None, _) => (limits::SMALL, true),
    }
}

/// The length of a `bytes=A-B` range.
fn range_len(h: &str) -> Option<u64> {
    let (a, b) = h.strip_prefix("bytes=")?.split_once('-')?;
    let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    b.checked_sub(a)?.checked_add(1)
}

/// Reads `resp`'s body: at most `max` bytes (beyond that an error when `strict`, else cut off),
/// each read within the read timeout `timeout` (the client enforces it), the whole at
/// `DOWNLOAD_FLOOR` after the first `timeout`.
pub fn read(
    resp: reqwest::blocking::Response,
    (max, strict): (u64, bool),
    what: &str,
    timeout: Duration,
) -> StoreResult<Vec<u8>> {
    let too_big = || {
        StoreError::new(
            ErrorKind::Permanent,
            format!("{what}: the server's answer is larger than the {max} bytes this request may receive"),
        )
    };
    let declared = resp.content_length();
    if strict && declared.is_some_and(|n| n > max) {
        return Err(too_big());
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(max) as usize);
    let mut body = Floor { inner: resp, start: Instant::now(), received: 0, grace: timeout }.take(max + 1);
    body.read_to_end(&mut buf).map_err(|e| {
        let msg = if e.kind() == std::io::ErrorKind::TimedOut || super::http_wire::error_chain(&e).contains("timed out") {
            format!(
                "the server stopped sending its answer (nothing for {} s, or slower than {} KiB/s; ARCHIVER_TIMEOUT=SECS waits longer)",
                timeout.as_secs(),
                DOWNLOAD_FLOOR >> 10
            )
        } else {
            format!("the answer was cut short: {}", super::http_wire::error_chain(&e))
        };
        StoreError::new(ErrorKind::Transient, format!("{what}: {msg}"))
    })?;
    if buf.len() as u64 > max {
        if strict {
            return Err(too_big());
        }
        buf.truncate(max as usize);
    }
    Ok(buf)
}

/// A response body that fails once it averages less than `DOWNLOAD_FLOOR` after `grace`.
struct Floor<R> {
    inner: R,
    start: Instant,
    received: u64,
    grace: Duration,
}

impl<R: Read> Read for Floor<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if limits::trickling(self.received, self.start.elapsed(), self.grace, DOWNLOAD_FLOOR) {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the answer trickles in"));
        }
        let n = self.inner.read(buf)?;
        self.received += n as u64;
        Ok(n)
    }
}

/// The error for a 3xx answer, which is never followed.
pub fn redirected(what: &str, status: u16, location: Option<&str>) -> StoreError {
    let to = location
        .map(|l| format!(" to {}", l.chars().filter(|c| !c.is_control()).take(200).collect::<String>()))
        .unwrap_or_default();
    StoreError::new(
        ErrorKind::Permanent,
        format!(
            "{what}: the server answered {status}, a redirect{to}; archiver does not follow redirects (they would carry signed requests elsewhere): give the server's own URL with --repo"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::protocol::Listing;
    use super::*;

    #[test]
    fn caps_follow_the_route_and_the_range() {
        let pack = Route::pack("ab/00000001");
        assert_eq!(cap(Some(&pack), Some("bytes=10-19"), 206), (10, true));
        assert_eq!(cap(Some(&pack), None, 200), (limits::PACK, true));
        assert_eq!(cap(Some(&Route::List(Listing::Packs)), None, 200), (limits::LIST, true));
        assert_eq!(cap(Some(&Route::ReadConfig), None, 200), (limits::CONFIG, true));
        assert_eq!(cap(Some(&Route::List(Listing::Packs)), None, 404), (limits::SMALL, false));
        assert_eq!(range_len("bytes=5-4"), None);
    }

    #[test]
    fn leases_and_timeouts_stay_in_range() {
        assert_eq!(lease_ttl(Some(0)), MIN_LEASE);
        assert_eq!(lease_ttl(Some(u64::MAX)), MAX_LEASE);
        assert_eq!(lease_ttl(Some(15_000)), Duration::from_secs(15));
        let t = DEFAULT_TIMEOUT;
        assert_eq!(request_timeout("GET", 0, t), None);
        assert_eq!(request_timeout("PUT", 64 << 20, t), Some(2 * t + Duration::from_secs(1024)));
    }
}
