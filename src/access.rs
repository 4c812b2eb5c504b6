//! Access keys: who may read, write and delete in a repository served by `archiver serve`.
//!
//! As in tarsnap, a key file carries up to three access keys (read, write, delete), and
//! `archiver keymgmt` writes key files holding only some of them. Each access key is an Ed25519
//! signing key; the repository's plain config holds the matching public keys ("verifiers"), so
//! the server can check requests without holding any secret. Every request is signed over its
//! method, path, range, lock token, time and a BLAKE3 hash of its body: a listener on a plain
//! HTTP link can neither forge a request nor change a body, and a captured request replays only
//! within `MAX_SKEW` (and every request is idempotent).
//!
//! What each route needs is decided once, by the protocol (`repo::protocol::Route::need`), for
//! the server (which enforces it) and the client (which picks the key to sign with).
//!
//! The header also names the body's hash, which the signature covers: the server checks the
//! signature on the request head alone (`Verifiers::verify_head`) before it reads a byte of the
//! body, so a peer without a key can never make it read, buffer or wait for a body; once the body
//! is in, `verify` checks it hashes to what was signed. Invariant: a key without the delete permission
//! can never make stored data unrecoverable: its commits may not name packs or index segments
//! to delete, and the manifest generations they supersede are kept (`CommitRequest::keep_history`).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
pub mod list;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a request's time may be from the server's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);
pub const HEADER: &str = "X-Archiver-Auth";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    Read,
    Write,
    Delete,
}

pub const PERMS: [Perm; 3] = [Perm::Read, Perm::Write, Perm::Delete];

impl Perm {
    pub fn name(self) -> &'static str {
        match self {
            Perm::Read => "read",
            Perm::Write => "write",
            Perm::Delete => "delete",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
    fn parse(s: &str) -> Option<Perm> {
        PERMS.into_iter().find(|p| p.name() == s)
    }
}

/// The access keys a key file holds (each optional).
#[derive(Clone, Default)]
pub struct AccessKeys {
    keys: [Option<SigningKey>; 3],
}

impl AccessKeys {
    /// All three keys, derived from a new key file's master secret.
    pub fn derive(master: &[u8; 32]) -> AccessKeys {
        let mut a = AccessKeys::default();
        for p in PERMS {
            let seed = blake3::derive_key(&format!("archiver 2026-11 access {}", p.name()), master);
            a.set(p, seed);
        }
        a
    }

    pub fn set(&mut self, p: Perm, seed: [u8; 32]) {
        self.keys[p.index()] = Some(SigningKey::from_bytes(&seed));
    }

    pub fn seed(&self, p: Perm) -> Option<[u8; 32]> {
        self.keys[p.index()].as_ref().map(|k| k.to_bytes())
    }

    pub fn has(&self, p: Perm) -> bool {
        self.keys[p.index()].is_some()
    }

    /// The permissions held, for messages: "only the read and write keys".
    pub fn describe(&self) -> String {
        let held: Vec<&str> = PERMS.into_iter().filter(|p| self.has(*p)).map(Perm::name).collect();
        match held.len() {
            0 => "no access key".into(),
            1 => format!("only the {} key", held[0]),
            2 => format!("only the {} and {} keys", held[0], held[1]),
            _ => "the read, write and delete keys".into(),
        }
    }

    pub fn verifiers(&self) -> Verifiers {
        Verifiers { keys: self.keys.clone().map(|k| k.map(|k| k.verifying_key())), retired: Vec::new() }
    }

    /// The header value authorising a request, signed with the first key held among `need`.
    pub fn sign(&self, need: &[Perm], req: &Signed) -> Option<String> {
        let p = need.iter().copied().find(|p| self.has(*p))?;
        let key = self.keys[p.index()].as_ref()?;
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let hash = blake3::hash(req.body).to_hex();
        let sig = key.sign(&req.message(p, ms, &hash));
        Some(format!("{} {ms} {} {hash}", p.name(), hex::encode(sig.to_bytes())))
    }
}

/// The public halves of a repository's access keys, as its config stores them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifiers {
    keys: [Option<VerifyingKey>; 3],
    /// Write verifiers retired by an access list (`list`), with when: refused, by name.
    retired: Vec<(VerifyingKey, u64)>,
}

impl Verifiers {
    pub fn get(&self, p: Perm) -> Option<&VerifyingKey> {
        self.keys[p.index()].as_ref()
    }

    /// The verifiers in force under access list `list` (checked by `AccessList::decode` against
    /// these, the config's): its write verifier instead of the config's, its retired ones refused.
    pub fn under(&self, list: &list::AccessList) -> Verifiers {
        let mut v = self.clone();
        v.keys[Perm::Write.index()] = Some(list.write);
        v.retired = list.retired.clone();
        v
    }

    /// When `p`'s key `ours` was retired, if it was (Unix seconds).
    pub fn retired_at(&self, p: Perm, ours: &VerifyingKey) -> Option<u64> {
        let retired = self.retired.iter().find(|(k, _)| p == Perm::Write && k == ours);
        retired.map(|(_, t)| *t)
    }

    /// `access-read HEX` lines for the repository config.
    pub fn config_lines(&self) -> String {
        let mut s = String::new();
        for p in PERMS {
            if let Some(k) = &self.keys[p.index()] {
                s.push_str(&format!("access-{} {}\n", p.name(), hex::encode(k.to_bytes())));
            }
        }
        s
    }

    /// The verifiers in a repository config; None when it has none (or a damaged one).
    pub fn from_config(config: &[u8]) -> Option<Verifiers> {
        let mut keys: [Option<VerifyingKey>; 3] = [None, None, None];
        for line in String::from_utf8_lossy(config).lines() {
            let Some((name, value)) = line.split_once(' ') else { continue };
            let Some(p) = name.strip_prefix("access-").and_then(Perm::parse) else { continue };
            let bytes: [u8; 32] = hex::decode(value).ok()?.try_into().ok()?;
            keys[p.index()] = Some(VerifyingKey::from_bytes(&bytes).ok()?);
        }
        keys.iter().all(Option::is_some).then_some(Verifiers { keys, retired: Vec::new() })
    }

    /// Checks a request's header against the whole request, body included; returns the
    /// permission it proves, or why it is refused.
    pub fn verify(&self, header: Option<&str>, req: &Signed, now: SystemTime) -> Result<Perm, String> {
        Self::body_matches(header, req.body)?;
        self.check(&Header::parse(header)?, req, now)
    }

    /// Checks that `body` is the one whose hash the (already verified) header names.
    pub fn body_matches(header: Option<&str>, body: &[u8]) -> Result<(), String> {
        let h = Header::parse(header)?;
        if blake3::hash(body).to_hex().as_str() != h.hash {
            return Err("the request body is not the one that was signed (changed on the way?)".into());
        }
        Ok(())
    }

    /// Checks a request's header against its head alone (`req.body` is not looked at): the
    /// signature over the body hash the header names. What `verify` later accepts, this accepts.
    pub fn verify_head(&self, header: Option<&str>, req: &Signed, now: SystemTime) -> Result<Perm, String> {
        self.check(&Header::parse(header)?, req, now)
    }

    fn check(&self, h: &Header, req: &Signed, now: SystemTime) -> Result<Perm, String> {
        let now_ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        if now_ms.abs_diff(h.ms) > MAX_SKEW.as_millis() as u64 {
            return Err(
                "the request's time is more than 5 minutes from the server's clock (check both clocks)"
                    .into(),
            );
        }
        let key = self.keys[h.perm.index()].as_ref().ok_or("the repository has no such access key")?;
        let (message, sig) = (req.message(h.perm, h.ms, h.hash), Signature::from_bytes(&h.sig));
        if key.verify(&message, &sig).is_ok() {
            return Ok(h.perm);
        }
        let retired =
            self.retired.iter().find(|(k, _)| h.perm == Perm::Write && k.verify(&message, &sig).is_ok());
        match retired {
            Some((_, t)) => Err(retired_message(*t)),
            None => {
                Err("the access signature does not match this repository's keys (wrong key file?)".into())
            }
        }
    }
}

/// Why a retired write key is refused, and what to use instead.
pub fn retired_message(at: u64) -> String {
    format!(
        "this write key was revoked at {} by `archiver keymgmt --revoke-write`: use the key file made then, or one made from it",
        crate::calendar::utc(at as i64).format() + " UTC"
    )
}

/// A parsed `X-Archiver-Auth` value: `PERM UNIX_MS SIGNATURE_HEX BODY_BLAKE3_HEX`.
struct Header<'a> {
    perm: Perm,
    ms: u64,
    sig: [u8; 64],
    hash: &'a str,
}

impl<'a> Header<'a> {
    fn parse(header: Option<&'a str>) -> Result<Header<'a>, String> {
        let header = header.ok_or("the request carries no access signature (X-Archiver-Auth)")?;
        let mut parts = header.split(' ');
        let (Some(p), Some(ms), Some(sig), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed X-Archiver-Auth header (PERM UNIX_MS SIGNATURE BODY_HASH)".into());
        };
        let perm = Perm::parse(p).ok_or("unknown permission in X-Archiver-Auth")?;
        let ms: u64 = ms.parse().map_err(|_| "malformed time in X-Archiver-Auth")?;
        let sig: [u8; 64] = hex::decode(sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("malformed signature in X-Archiver-Auth")?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err("malformed body hash in X-Archiver-Auth".into());
        }
        Ok(Header { perm, ms, sig, hash })
    }
}

/// The parts of a request a signature covers.
pub struct Signed<'a> {
    pub method: &'a str,
    /// Path and query, as sent.
    pub path: &'a str,
    pub range: &'a str,
    pub lock: &'a str,
    pub body: &'a [u8],
}

impl Signed<'_> {
    /// What is signed; `hash`: the body's BLAKE3 in lowercase hex.
    fn message(&self, p: Perm, ms: u64, hash: &str) -> Vec<u8> {
        format!(
            "archiver-request 1\n{}\n{ms}\n{}\n{}\n{}\n{}\n{hash}",
            p.name(),
            self.method,
            self.path,
            self.range,
            self.lock,
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &[u8]) -> Signed<'_> {
        Signed { method: "PUT", path: "/v1/r/txn/ab/packs/0", range: "", lock: "t", body }
    }

    #[test]
    fn signatures_bind_every_part() {
        let keys = AccessKeys::derive(&[7; 32]);
        let v = Verifiers::from_config(keys.verifiers().config_lines().as_bytes()).unwrap();
        let now = SystemTime::now();
        let h = keys.sign(&[Perm::Write], &req(b"pack")).unwrap();
        assert_eq!(v.verify(Some(&h), &req(b"pack"), now), Ok(Perm::Write));
        assert!(v.verify(Some(&h), &req(b"pacK"), now).is_err());
        let other = Signed { path: "/v1/r/txn/ab/packs/1", ..req(b"pack") };
        assert!(v.verify(Some(&h), &other, now).is_err());
        assert!(v.verify(Some(&h.replacen("write", "delete", 1)), &req(b"pack"), now).is_err());
        assert!(v.verify(Some(&h), &req(b"pack"), now + MAX_SKEW * 2).is_err());
        assert!(v.verify(None, &req(b"pack"), now).is_err());
        let wrong = AccessKeys::derive(&[8; 32]).sign(&[Perm::Write], &req(b"pack")).unwrap();
        assert!(v.verify(Some(&wrong), &req(b"pack"), now).is_err());
    }

    #[test]
    fn the_head_is_checked_before_the_body_arrives() {
        let keys = AccessKeys::derive(&[7; 32]);
        let v = keys.verifiers();
        let now = SystemTime::now();
        let h = keys.sign(&[Perm::Write], &req(b"pack")).unwrap();
        // The head alone verifies (whatever body is at hand), the whole request only with its body.
        assert_eq!(v.verify_head(Some(&h), &req(b""), now), Ok(Perm::Write));
        assert!(v.verify(Some(&h), &req(b"other"), now).unwrap_err().contains("not the one that was signed"));
        // Naming another body's hash breaks the signature; so does any change to the head.
        let other_hash = format!("{}", blake3::hash(b"other").to_hex());
        let (signed_part, _) = h.rsplit_once(' ').unwrap();
        assert!(v.verify_head(Some(&format!("{signed_part} {other_hash}")), &req(b""), now).is_err());
        let other = Signed { path: "/v1/r/txn/ab/packs/1", ..req(b"") };
        assert!(v.verify_head(Some(&h), &other, now).is_err());
        // The old three-field form and a forged signature are refused.
        assert!(v.verify_head(Some(signed_part), &req(b""), now).unwrap_err().contains("malformed"));
        let forged = format!("write {} {} {other_hash}", now_ms(now), "ab".repeat(64));
        assert!(v.verify_head(Some(&forged), &req(b""), now).is_err());
    }

    fn now_ms(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn restricted_keys_sign_only_what_they_hold() {
        let full = AccessKeys::derive(&[1; 32]);
        let mut w = AccessKeys::default();
        w.set(Perm::Write, full.seed(Perm::Write).unwrap());
        assert!(w.sign(&[Perm::Read], &req(b"")).is_none());
        assert!(w.sign(&PERMS, &req(b"")).unwrap().starts_with("write "));
        assert_eq!(w.describe(), "only the write key");
    }
}
