//! The HTTP protocol between `HttpRepo` and `archiver serve`, written once (docs/PROTOCOL.md):
//! every route as a `Route` value, which the client turns into a method and a path, the server
//! parses back from the method and path it received, and access control asks what permission
//! it needs (`need`); the body limits of each route in both directions (`limits` holds the
//! sizes); the status code of each storage error kind and the kind of each status; and the
//! percent-encoding of the lock owner in the query.
//!
//! Invariants: `Route::parse(r.method(), &r.path())` gives back `r` for every route the client
//! builds (tested below), so the client signs with the permission the server will ask for and
//! sends no body larger than the server reads; `kind_of(status_of(k))` is `k` for every error
//! kind the server sends.

use super::limits;
use crate::access::Perm;
use crate::backend::ErrorKind;
use crate::repo::CommitRequest;

/// What kind of object a transaction uploads, and whose names a listing gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Packs,
    Index,
}

/// What a listing lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Packs,
    Index,
    Manifests,
}

/// One request of the protocol: method and path after `/v1/NAME/` (and the lock owner's query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    ReadConfig,
    CreateConfig,
    /// The newest access list (`access::list`).
    ReadAccess,
    /// Creates access list generation N (a delete key's, signed, the one after the newest).
    PutAccess(u64),
    TakeLock {
        owner: String,
    },
    RenewLock(&'a str),
    ReleaseLock(&'a str),
    Head,
    Begin(&'a str),
    Upload {
        txn: &'a str,
        kind: Kind,
        seq: u32,
    },
    PutCheckpoint {
        txn: &'a str,
        seq: u32,
    },
    GetCheckpoint {
        txn: &'a str,
        seq: u32,
    },
    Commit(&'a str),
    Finish(&'a str),
    Abort(&'a str),
    Pending,
    CleanPartial,
    /// A pack, `TXN/SEQ` as the repository names it (a range of it with a Range header).
    Pack {
        txn: &'a str,
        seq: &'a str,
    },
    PackSize {
        txn: &'a str,
        seq: &'a str,
    },
    Index(&'a str),
    Manifest(u64),
    List(Listing),
}

/// Why the server cannot take a request's method and path: a status and a one-line text.
pub type Refusal = (u16, &'static str);

const SEQ_HEX: Refusal = (400, "sequence numbers are hex");

impl<'a> Route<'a> {
    /// The route of pack `name` (`TXN/SEQ`, as `put_pack` returned it).
    pub fn pack(name: &'a str) -> Route<'a> {
        let (txn, seq) = name.split_once('/').unwrap_or((name, ""));
        Route::Pack { txn, seq }
    }

    pub fn method(&self) -> &'static str {
        use Route::*;
        match self {
            ReadConfig
            | ReadAccess
            | Head
            | GetCheckpoint { .. }
            | Pending
            | Pack { .. }
            | PackSize { .. }
            | Index(_)
            | Manifest(_)
            | List(_) => "GET",
            CreateConfig | PutAccess(_) | Begin(_) | Upload { .. } | PutCheckpoint { .. } => "PUT",
            TakeLock { .. } | RenewLock(_) | Commit(_) | Finish(_) | Abort(_) | CleanPartial => "POST",
            ReleaseLock(_) => "DELETE",
        }
    }

    /// The path after `/v1/NAME/`, with the query if any.
    pub fn path(&self) -> String {
        use Route::*;
        match self {
            ReadConfig | CreateConfig => "config".into(),
            ReadAccess => "access".into(),
            PutAccess(gen) => format!("access/{gen}"),
            TakeLock { owner } => format!("lock?owner={}", percent_encode(owner)),
            RenewLock(t) | ReleaseLock(t) => format!("lock/{t}"),
            Head => "head".into(),
            Begin(txn) => format!("txn/{txn}/begin"),
            Upload { txn, kind: Kind::Packs, seq } => format!("txn/{txn}/packs/{seq:08x}"),
            Upload { txn, kind: Kind::Index, seq } => format!("txn/{txn}/index/{seq:06x}"),
            PutCheckpoint { txn, seq } | GetCheckpoint { txn, seq } => {
                format!("txn/{txn}/checkpoint/{seq:08x}")
            }
            Commit(txn) => format!("txn/{txn}/commit"),
            Finish(txn) => format!("txn/{txn}/finish"),
            Abort(txn) => format!("txn/{txn}/abort"),
            Pending => "pending".into(),
            CleanPartial => "clean-partial".into(),
            Pack { txn, seq } => format!("packs/{txn}/{seq}"),
            PackSize { txn, seq } => format!("size/packs/{txn}/{seq}"),
            Index(name) => format!("index/{name}"),
            Manifest(gen) => format!("manifest/{gen}"),
            List(Listing::Packs) => "list/packs".into(),
            List(Listing::Index) => "list/index".into(),
            List(Listing::Manifests) => "list/manifest".into(),
        }
    }

    /// The route of `method` on `path` (after `/v1/NAME/`, query included), as the server reads
    /// it: names are checked (`hex_name`), sequence numbers parsed.
    pub fn parse(method: &str, path: &'a str) -> Result<Route<'a>, Refusal> {
        use Route::*;
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let rest: Vec<&'a str> = path.split('/').collect();
        let seq = |s: &str| u32::from_str_radix(s, 16).map_err(|_| SEQ_HEX);
        Ok(match (method, rest.as_slice()) {
            ("GET", ["config"]) => ReadConfig,
            ("PUT", ["config"]) => CreateConfig,
            ("GET", ["access"]) => ReadAccess,
            ("PUT", ["access", gen]) => {
                PutAccess(gen.parse().map_err(|_| (400, "generations are decimal numbers"))?)
            }
            ("POST", ["lock"]) => {
                TakeLock { owner: query.strip_prefix("owner=").map(percent_decode).unwrap_or_default() }
            }
            ("POST", ["lock", t]) => RenewLock(t),
            ("DELETE", ["lock", t]) => ReleaseLock(t),
            ("GET", ["head"]) => Head,
            ("PUT", ["txn", txn, "begin"]) if hex_name(txn) => Begin(txn),
            ("PUT", ["txn", txn, "packs", s]) if hex_name(txn) => {
                Upload { txn, kind: Kind::Packs, seq: seq(s)? }
            }
            ("PUT", ["txn", txn, "index", s]) if hex_name(txn) => {
                Upload { txn, kind: Kind::Index, seq: seq(s)? }
            }
            ("PUT", ["txn", txn, "checkpoint", s]) if hex_name(txn) => PutCheckpoint { txn, seq: seq(s)? },
            ("GET", ["txn", txn, "checkpoint", s]) if hex_name(txn) => GetCheckpoint { txn, seq: seq(s)? },
            ("POST", ["txn", txn, "commit"]) if hex_name(txn) => Commit(txn),
            ("POST", ["txn", txn, "finish"]) if hex_name(txn) => Finish(txn),
            ("POST", ["txn", txn, "abort"]) if hex_name(txn) => Abort(txn),
            ("GET", ["pending"]) => Pending,
            ("POST", ["clean-partial"]) => CleanPartial,
            ("GET", ["packs", txn, seq]) if hex_name(txn) && hex_name(seq) => Pack { txn, seq },
            ("GET", ["size", "packs", txn, seq]) if hex_name(txn) && hex_name(seq) => PackSize { txn, seq },
            ("GET", ["index", name]) if hex_name(name) => Index(name),
            ("GET", ["manifest", gen]) => {
                Manifest(gen.parse().map_err(|_| (400, "generations are decimal numbers"))?)
            }
            ("GET", ["list", "packs"]) => List(Listing::Packs),
            ("GET", ["list", "index"]) => List(Listing::Index),
            ("GET", ["list", "manifest"]) => List(Listing::Manifests),
            _ => return Err((404, "no such route")),
        })
    }

    /// The permissions any one of which suffices for this route with `body`, in the order a
    /// client prefers to sign with them. Without the body (the server before reading it) a
    /// commit answers write-or-delete; its body can only narrow that to delete.
    pub fn need(&self, body: &[u8]) -> &'static [Perm] {
        const ANY: &[Perm] = &[Perm::Read, Perm::Write, Perm::Delete];
        const READ: &[Perm] = &[Perm::Read];
        const WRITE: &[Perm] = &[Perm::Write, Perm::Delete];
        const DELETE: &[Perm] = &[Perm::Delete];
        match self {
            // Pack contents are the archives' data and metadata: reading them is reading.
            Route::Pack { .. } => READ,
            // Listing, the manifest, index segments, sizes: needed by writers too (to deduplicate).
            r if r.method() == "GET" => ANY,
            Route::TakeLock { .. } | Route::RenewLock(_) | Route::ReleaseLock(_) => ANY,
            Route::Commit(_) => match CommitRequest::decode(body) {
                Ok(req) if req.deletes() => DELETE,
                _ => WRITE,
            },
            // Delete first, so a key file that holds it signs with it: the server lets only a
            // delete key discard a transaction that holds a checkpoint (the user's data).
            Route::Abort(_) => &[Perm::Delete, Perm::Write],
            // Retiring a write key and naming the next is the delete key's (docs/SECURITY.md).
            Route::PutAccess(_) => DELETE,
            _ => WRITE,
        }
    }

    /// Whether the route changes the repository, and so needs the lock's token (creating a
    /// repository and the lock's own routes excepted).
    pub fn mutates(&self) -> bool {
        self.method() != "GET"
            && !matches!(
                self,
                Route::CreateConfig
                    | Route::PutAccess(_)
                    | Route::TakeLock { .. }
                    | Route::RenewLock(_)
                    | Route::ReleaseLock(_)
            )
    }

    /// The largest request body the server reads for this route.
    pub fn request_limit(&self) -> u64 {
        match self {
            Route::CreateConfig => limits::CONFIG,
            Route::PutAccess(_) => crate::access::list::MAX_BYTES as u64,
            Route::Begin(_) => limits::RECORD,
            Route::Upload { kind: Kind::Packs, seq, .. } if *seq >= crate::layout::CHECKPOINT_PACK => {
                limits::CHECKPOINT_PACK
            }
            Route::Upload { kind: Kind::Packs, .. } => limits::PACK,
            Route::Upload { kind: Kind::Index, .. } => limits::INDEX,
            Route::PutCheckpoint { .. } => limits::CHECKPOINT,
            Route::Commit(_) => limits::COMMIT,
            _ => limits::SMALL,
        }
    }

    /// The largest successful response body the client reads for this route (a range read of a
    /// pack is held to its range by the caller).
    pub fn response_limit(&self) -> u64 {
        match self {
            Route::ReadConfig => limits::CONFIG,
            Route::ReadAccess => crate::access::list::MAX_BYTES as u64,
            Route::Pack { seq, .. } => match u32::from_str_radix(seq, 16) {
                Ok(seq) if seq >= crate::layout::CHECKPOINT_PACK => limits::CHECKPOINT_PACK,
                _ => limits::PACK,
            },
            Route::Index(_) => limits::INDEX,
            Route::GetCheckpoint { .. } => limits::CHECKPOINT,
            Route::Head | Route::Manifest(_) => limits::COMMIT,
            Route::List(_) | Route::Pending => limits::LIST,
            _ => limits::RECORD,
        }
    }
}

/// Transaction ids, pack sequence numbers and segment names: hex digits and '-', 1 to 64.
pub fn hex_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The status the server answers a storage error of `kind` with.
pub fn status_of(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::NotFound => 404,
        ErrorKind::Exists => 409,
        ErrorKind::NoSpace => 507,
        ErrorKind::Transient => 503,
        // The server's permanent storage failure, as it is locally.
        ErrorKind::Permanent => 500,
    }
}

/// The kind of error a status means to the client (401, 403 and the lost lease's 409 are told
/// apart by the client before it asks this).
pub fn kind_of(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Exists,
        507 => ErrorKind::NoSpace,
        500 => ErrorKind::Permanent,
        408 | 429 | 501..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// Percent-encodes everything but unreserved characters (the lock owner in the query).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Undoes `percent_encode` (and reads '+' as a space); a malformed escape is kept as it is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_route() -> Vec<Route<'static>> {
        use Route::*;
        vec![
            ReadConfig,
            CreateConfig,
            ReadAccess,
            PutAccess(7),
            TakeLock { owner: "me@host 12/ä%+".into() },
            RenewLock("0123abcd"),
            ReleaseLock("0123abcd"),
            Head,
            Begin("ab12"),
            Upload { txn: "ab12", kind: Kind::Packs, seq: 3 },
            Upload { txn: "ab12", kind: Kind::Packs, seq: crate::layout::CHECKPOINT_PACK },
            Upload { txn: "ab12", kind: Kind::Index, seq: 0x10 },
            PutCheckpoint { txn: "ab12", seq: 7 },
            GetCheckpoint { txn: "ab12", seq: 7 },
            Commit("ab12"),
            Finish("ab12"),
            Abort("ab12"),
            Pending,
            CleanPartial,
            Route::pack("ab12/00000003"),
            PackSize { txn: "ab12", seq: "00000003" },
            Index("ab12-000001"),
            Manifest(42),
            List(Listing::Packs),
            List(Listing::Index),
            List(Listing::Manifests),
        ]
    }

    #[test]
    fn every_route_parses_back_to_itself() {
        for r in every_route() {
            let path = r.path();
            assert_eq!(Route::parse(r.method(), &path), Ok(r.clone()), "{} {path}", r.method());
        }
        assert_eq!(Route::parse("GET", "nothing"), Err((404, "no such route")));
        assert_eq!(Route::parse("PUT", "txn/ab/packs/zz"), Err(SEQ_HEX));
        assert_eq!(Route::parse("GET", "packs/../config"), Err((404, "no such route")));
        assert_eq!(Route::parse("DELETE", "config"), Err((404, "no such route")));
    }

    #[test]
    fn what_is_stored_can_be_sent_and_read_back() {
        use Route::*;
        let pairs = [
            (Upload { txn: "ab", kind: Kind::Index, seq: 1 }, Index("ab-000001")),
            (Commit("ab"), Head),
            (CreateConfig, ReadConfig),
            (PutAccess(1), ReadAccess),
            (Upload { txn: "ab", kind: Kind::Packs, seq: 3 }, Route::pack("ab/00000003")),
            (Upload { txn: "ab", kind: Kind::Packs, seq: 0x8000_0000 }, Route::pack("ab/80000000")),
            (PutCheckpoint { txn: "ab", seq: 0 }, GetCheckpoint { txn: "ab", seq: 0 }),
        ];
        for (put, get) in pairs {
            assert!(get.response_limit() >= put.request_limit(), "{put:?} then {get:?}");
        }
        assert_eq!(Upload { txn: "ab", kind: Kind::Packs, seq: 3 }.request_limit(), limits::PACK);
        assert_eq!(Head.request_limit(), limits::SMALL);
    }

    #[test]
    fn permissions_follow_the_route() {
        assert_eq!(Route::pack("ab/00000001").need(b""), &[Perm::Read]);
        assert_eq!(Route::Head.need(b"").len(), 3);
        assert_eq!(Route::Abort("ab").need(b""), &[Perm::Delete, Perm::Write]);
        assert_eq!(Route::Commit("ab").need(b"garbage"), &[Perm::Write, Perm::Delete]);
        assert_eq!(Route::PutAccess(1).need(b""), &[Perm::Delete]);
        assert!(!Route::PutAccess(1).mutates(), "an access list is created once, without the lock");
        assert!(Route::Begin("ab").mutates() && !Route::TakeLock { owner: String::new() }.mutates());
    }

    #[test]
    fn statuses_and_error_kinds_round_trip() {
        for k in [
            ErrorKind::NotFound,
            ErrorKind::Exists,
            ErrorKind::NoSpace,
            ErrorKind::Transient,
            ErrorKind::Permanent,
        ] {
            assert_eq!(kind_of(status_of(k)), k);
        }
        assert_eq!(kind_of(429), ErrorKind::Transient);
        assert_eq!(kind_of(418), ErrorKind::Permanent);
    }

    #[test]
    fn owners_survive_the_query() {
        for s in ["plain", "me@host pid 12", "100%", "a+b", "ä/ö?&=", "%zz", "%4"] {
            assert_eq!(percent_decode(&percent_encode(s)), s);
        }
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
