//! What a request must pass before the server reads a byte of its body: a route it knows, a
//! signature that verifies over the request head and the body hash it names, by a key of this
//! repository whose permission the route can accept, and a declared length within the route's
//! limit (`limits::request_body`). A peer without a key thus gets its 401 at once and can make
//! the server neither buffer nor wait for a body; the body that follows is read under the route's
//! limit and timeouts (`net`) and checked against the signed hash (`authorize`).
//!
//! Creating a repository (`PUT config`) is the one route without a repository to check against:
//! it is refused unless the server runs with `--allow-create`, and its body (the config, which
//! names the verifiers the signature is then checked with) is limited to the config's limit.
//!
//! A repository whose config is lost or damaged cannot be served (`verifiers_of`): the answer
//! says that the operator rebuilds it on the server's directory (no route does).
//!
//! `parse_request` runs the same parsing (and `route`'s) for the fuzz targets.

use super::{Reply, State};
use crate::access::{Perm, Verifiers};
use crate::repo::objects::ObjectRepo;
use crate::repo::protocol::Route;
use crate::repo::Repository;

/// A request as far as its head: what admission looks at.
pub(crate) struct Head {
    pub method: String,
    /// Path and query as received.
    pub url: String,
    pub token: Option<String>,
    pub range: Option<String>,
    pub auth: Option<String>,
    /// The transaction secret (`X-Archiver-Txn-Key`).
    pub txn_key: Option<String>,
    /// `Content-Length`, when given.
    pub declared: Option<u64>,
}

/// A request let in: the most body to read, and the permission its signature proves when it was
/// verified here (its connection is then trusted: `conns`; `authorize` then checks only that the
/// body is the one the signature names).
pub(crate) struct Admitted {
    pub limit: u64,
    pub signed: Option<Perm>,
}

/// Whether the request behind `head` may go on to send its body.
pub(crate) fn admit(state: &State, head: &Head) -> Result<Admitted, Reply> {
    let method = head.method.as_str();
    let (repo, route) = super::parse(method, &head.url)?;
    let limit = route.request_limit();
    let too_big = || {
        Reply::text(
            413,
            format!("this request's body is limited to {} bytes ({} MiB)", limit, limit as f64 / 1048576.0),
        )
    };
    if route == Route::CreateConfig {
        if !state.allow_create {
            return Err(Reply::text(403, CREATE_REFUSED));
        }
        // Checked against the verifiers the config names once it is in (`authorize`).
        if head.auth.is_none() {
            return Err(Reply::text(401, "the request carries no access signature (X-Archiver-Auth)"));
        }
        return match head.declared {
            Some(n) if n > limit => Err(too_big()),
            _ => Ok(Admitted { limit, signed: None }),
        };
    }
    let r = state.repos.open(repo)?;
    let verifiers = verifiers_of(state, repo, &r)?;
    let signed = crate::access::Signed {
        method,
        path: &head.url,
        range: head.range.as_deref().unwrap_or(""),
        lock: head.token.as_deref().unwrap_or(""),
        body: &[],
    };
    let perm = verifiers
        .verify_head(head.auth.as_deref(), &signed, std::time::SystemTime::now())
        .map_err(|m| Reply::text(401, m))?;
    // Without the body, `need` answers with every permission the route can accept for some body
    // (a commit's body can only narrow write-or-delete to delete); `authorize` decides exactly.
    super::permitted(perm, route.need(&[]))?;
    match head.declared {
        Some(n) if n > limit => Err(too_big()),
        _ => Ok(Admitted { limit, signed: Some(perm) }),
    }
}

/// The answer to `PUT config` on a server without `--allow-create`.
pub const CREATE_REFUSED: &str = "this server does not create repositories: start archiver serve with --allow-create, or create the repository in its store directly (archiver keygen --repo STORE/NAME)";

/// The access verifiers in the config of repository `name` (opened as `r`), or the refusal to
/// send (no repository, or one whose config names none).
pub(crate) fn verifiers_of(state: &State, name: &str, r: &ObjectRepo) -> Result<Verifiers, Reply> {
    // A repository that lost its config, or whose config is damaged, cannot be served: the
    // client's error says that the operator rebuilds it here (`rebuild`; no route does it).
    let advice = || crate::keycheck::rebuild_advice("http://");
    let config = match r.read_config() {
        Ok(Some(c)) => c,
        Ok(None) if state.repos.holds_data(name) => {
            return Err(Reply::text(
                500,
                format!(
                    "this repository holds archived data but has no config file (deleted or lost); {}",
                    advice()
                ),
            ))
        }
        Ok(None) => return Err(Reply::text(404, "no repository here")),
        Err(e) => return Err(e.into()),
    };
    let parsed = crate::keycheck::parse(&config, "");
    let damaged =
        parsed.is_err() || String::from_utf8_lossy(&config).lines().any(|l| l.starts_with("access-"));
    let Some(base) = Verifiers::from_config(&config) else {
        return Err(match damaged {
            true => Reply::text(500, format!("this repository's config file is damaged; {}", advice())),
            false => Reply::text(
                401,
                "this repository's config has no access verifiers (made by an older archiver)",
            ),
        });
    };
    // The newest access list says which write key is in force; a damaged one is an error, never
    // skipped (the config's verifiers alone would let retired keys in again).
    let Some(list) = r.access_list()? else { return Ok(base) };
    let id = parsed.map(|p| p.id).unwrap_or_default();
    crate::keycheck::in_force::verifiers(&config, &id, Some(&list)).map_err(|what| {
        Reply::text(
            500,
            format!("this repository's access list is damaged ({what}): the operator restores access/ from a copy"),
        )
    })
}

/// For `crate::fuzzing` only: the parsing `route` does before touching a store (the repository
/// name, the route with its names, sequence numbers and owner query, the permission it needs,
/// its body limits, the Range header). Returns whether the request named a route.
#[doc(hidden)]
pub fn parse_request(method: &str, url: &str, range: &str, body: &[u8]) -> bool {
    let parsed = super::parse(method, url).map(|(_, route)| {
        let _ = (route.need(body), route.request_limit(), route.response_limit(), route.path());
    });
    let _ = (super::parse_range(range, body.len() as u64), super::parse_range(range, u64::MAX));
    parsed.is_ok()
}
