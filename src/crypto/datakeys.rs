//! Format 2 data sealing: what only a read key opens. Blocks (file data, archive metadata,
//! roots), archive references and intent records are sealed under a key derived per
//! transaction from an ephemeral X25519 pair and the repository's `data-public` key, mixed with
//! the symmetric `data-psk` (docs/FORMAT.md, docs/SECURITY.md).
//!
//! Invariants: the ephemeral secret exists only in this process's memory, inside one `Sealer`,
//! and is dropped once its shared secret is derived, so nothing stored or kept by a writer
//! opens what it sealed; a sealed object carries its ephemeral public key, so a reader needs
//! nothing else to open it; opening needs `data-secret`, which only key files with the read
//! permission hold; a low-order ephemeral key (a shared secret of zeros) is refused; breaking
//! X25519 alone opens nothing without `data-psk`.

use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::sync::{Arc, Mutex};
use x25519_dalek::{PublicKey, StaticSecret};

/// Bytes of the ephemeral public key in front of every object sealed here.
pub const EPHEMERAL_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// How many transactions' derived keys a reader keeps (one X25519 each to derive again).
const OPENED: usize = 64;

/// The format 2 data keys of a key file: every key holds the public key and the pre-shared
/// secret; read keys also hold the secret key.
pub struct DataKeys {
    pub public: [u8; 32],
    pub psk: [u8; 32],
    secret: Option<StaticSecret>,
    sealer: Sealer,
    opened: Mutex<Vec<([u8; EPHEMERAL_LEN], XChaCha20Poly1305)>>,
}

/// One ephemeral key's sealing state: its public half and the derived cipher.
struct Sealer {
    ephemeral: [u8; EPHEMERAL_LEN],
    cipher: XChaCha20Poly1305,
}

fn cipher(shared: &[u8; 32], ephemeral: &[u8; 32], public: &[u8; 32], psk: &[u8; 32]) -> XChaCha20Poly1305 {
    let mut h = blake3::Hasher::new_derive_key("archiver 2026-11 data v2");
    h.update(shared).update(ephemeral).update(public).update(psk);
    XChaCha20Poly1305::new(h.finalize().as_bytes().into())
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("system random number generator failed");
    b
}

impl Sealer {
    fn draw(public: &[u8; 32], psk: &[u8; 32]) -> Sealer {
        let e = StaticSecret::from(random32());
        let ephemeral = PublicKey::from(&e).to_bytes();
        let shared = e.diffie_hellman(&PublicKey::from(*public));
        let cipher = cipher(shared.as_bytes(), &ephemeral, public, psk);
        // `e` and `shared` are zeroed on drop, here.
        Sealer { ephemeral, cipher }
    }
}

/// The public key of secret key `secret` (keygen; the config's `data-public`).
pub fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

impl DataKeys {
    pub fn new(public: [u8; 32], psk: [u8; 32], secret: Option<[u8; 32]>) -> DataKeys {
        DataKeys {
            public,
            psk,
            secret: secret.map(StaticSecret::from),
            sealer: Sealer::draw(&public, &psk),
            opened: Mutex::new(Vec::new()),
        }
    }

    /// Fresh data keys from 32 random bytes: (secret, public, psk).
    pub fn derive(master: &[u8; 32]) -> ([u8; 32], [u8; 32], [u8; 32]) {
        let secret = blake3::derive_key("archiver 2026-11 data secret", master);
        let psk = blake3::derive_key("archiver 2026-11 data psk", master);
        (secret, public_of(&secret), psk)
    }

    /// The same keys with a new ephemeral key: one per transaction.
    pub fn fresh(&self) -> DataKeys {
        DataKeys::new(self.public, self.psk, self.secret.as_ref().map(|s| s.to_bytes()))
    }

    /// The secret key, if this key file holds it (read keys).
    pub fn secret(&self) -> Option<[u8; 32]> {
        self.secret.as_ref().map(|s| s.to_bytes())
    }

    pub fn can_open(&self) -> bool {
        self.secret.is_some()
    }

    /// Seals `plain` bound to `ad`: ephemeral public key ‖ nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, ad: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random32()[..NONCE_LEN].try_into().expect("24 bytes");
        let ct = self
            .sealer
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: ad })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(EPHEMERAL_LEN + NONCE_LEN + ct.len());
        out.extend_from_slice(&self.sealer.ephemeral);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens what `seal` made; fails if a bit differs, or if this key file holds no secret key.
    pub fn open(&self, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < EPHEMERAL_LEN + NONCE_LEN + TAG_LEN {
            bail!("sealed object is truncated");
        }
        let (ephemeral, rest) = sealed.split_at(EPHEMERAL_LEN);
        let ephemeral: [u8; EPHEMERAL_LEN] = ephemeral.try_into().expect("32 bytes");
        let cipher = self.cipher_for(&ephemeral)?;
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: ad })
            .map_err(|_| anyhow::anyhow!("authentication failed (data damaged or wrong key)"))
    }

    /// The cipher of ephemeral key `ephemeral`, derived once and kept for the next objects.
    fn cipher_for(&self, ephemeral: &[u8; EPHEMERAL_LEN]) -> Result<XChaCha20Poly1305> {
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = opened.iter().position(|(e, _)| e == ephemeral) {
            return Ok(opened[i].1.clone());
        }
        let Some(secret) = &self.secret else {
            bail!("{}", WRITE_ONLY);
        };
        let shared = secret.diffie_hellman(&PublicKey::from(*ephemeral));
        if !shared.was_contributory() {
            bail!("sealed object names an invalid ephemeral key (damaged or forged)");
        }
        let c = cipher(shared.as_bytes(), ephemeral, &self.public, &self.psk);
        if opened.len() >= OPENED {
            opened.remove(0);
        }
        opened.push((*ephemeral, c.clone()));
        Ok(c)
    }
}

/// What opening says to a key file without the secret key.
pub const WRITE_ONLY: &str =
    "this key file holds no data-secret (a write-only key): it cannot read archive data or metadata";

/// Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication
/// with PURBs", 2019): `len` rounded up so that at most O(log log len) bits of it show, at most
/// 12% (3% from 64 KiB) more.
pub fn padme(len: usize) -> usize {
    if len < 2 {
        return len;
    }
    let e = usize::BITS - 1 - len.leading_zeros(); // floor(log2 len)
    let s = u32::BITS - e.leading_zeros(); // floor(log2 e) + 1
    let mask = (1usize << (e - s.min(e))) - 1;
    (len + mask) & !mask
}

/// `framed` with its length in front, padded with zeros to Padmé's size.
pub fn pad(framed: &[u8]) -> Vec<u8> {
    let inner = 4 + framed.len();
    let mut out = Vec::with_capacity(padme(inner));
    out.extend_from_slice(&(framed.len() as u32).to_le_bytes());
    out.extend_from_slice(framed);
    out.resize(padme(inner), 0);
    out
}

/// What `pad` padded.
pub fn unpad(padded: &[u8]) -> Result<&[u8]> {
    let n = padded.get(..4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
    n.and_then(|n| padded.get(4..4 + n)).context("padded block has a bad length")
}

/// Keeps `Keys` cheap to clone: one set of data keys shared.
pub type Shared = Arc<DataKeys>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_opens_and_each_transaction_has_its_own_ephemeral() {
        let (secret, public, psk) = DataKeys::derive(&[7u8; 32]);
        let writer = DataKeys::new(public, psk, None);
        let reader = DataKeys::new(public, psk, Some(secret));
        let sealed = writer.seal(b"ad", b"hello");
        assert_eq!(reader.open(b"ad", &sealed).unwrap(), b"hello");
        assert!(reader.open(b"other", &sealed).is_err());
        let err = writer.open(b"ad", &sealed).unwrap_err().to_string();
        assert!(err.contains("write-only"), "{err}");
        let wrong_psk = DataKeys::new(public, [1; 32], Some(secret));
        assert!(wrong_psk.open(b"ad", &sealed).is_err(), "the psk is mixed in");
        let next = writer.fresh().seal(b"ad", b"hello");
        assert_ne!(sealed[..EPHEMERAL_LEN], next[..EPHEMERAL_LEN]);
        assert_eq!(reader.open(b"ad", &next).unwrap(), b"hello");
        for i in [0, EPHEMERAL_LEN, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(reader.fresh().open(b"ad", &bad).is_err(), "flip at {i}");
        }
        let mut low = sealed.clone();
        low[..EPHEMERAL_LEN].fill(0); // the identity: a low-order point
        assert!(reader.open(b"ad", &low).unwrap_err().to_string().contains("invalid ephemeral"));
    }

    #[test]
    fn padme_bounds_and_round_trip() {
        for len in (0..5000).chain([65536, 1 << 20, (1 << 20) + 1, 4 << 20, (4 << 20) + 77]) {
            let p = padme(len);
            assert!(p >= len && p <= len + len / 8 + 1, "{len} -> {p}");
            if len >= 1 << 16 {
                assert!(p - len <= len / 32, "{len} -> {p}");
            }
        }
        assert_eq!(padme((1 << 20) + 1), (1 << 20) + (1 << 15));
        let framed = b"abcdef".repeat(50);
        assert_eq!(unpad(&pad(&framed)).unwrap(), &framed[..]);
        assert!(unpad(&[9, 0, 0, 0, 1]).is_err());
    }
}
