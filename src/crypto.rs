//! Keys and the sealing of everything stored: keyed BLAKE3 block ids, zstd compression and
//! XChaCha20-Poly1305 authenticated encryption.
//!
//! Invariants: a block id is the keyed hash of the block's plaintext, so the repository learns
//! nothing from ids; every sealed object is bound to its identity through the associated data
//! (a block to its id, the manifest to its generation), so a stored object cannot be swapped for
//! another undetected; a fresh random 192-bit nonce is drawn for every seal.
//!
//! Format 2 repositories (`data` present) seal blocks to readers only (`datakeys`): `enc-key`
//! then seals only what every writer must read (index segments, pack headers, the manifest's
//! envelope, checkpoint records), and blocks are padded (Padmé) so their stored lengths do not
//! give away exact chunk boundaries.

use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::cell::RefCell;

pub mod datakeys;

pub type BlockId = [u8; 32];
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// The fewest bytes a sealed block carries beyond its (compressed) plaintext (format 1).
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN + 1;
/// The most: format 2 adds the ephemeral key, a length and Padmé's padding (`max_sealed`).
const SEAL_OVERHEAD_2: usize = datakeys::EPHEMERAL_LEN + SEAL_OVERHEAD + 4 + 1;

/// The largest sealed form of a block of `plain_len` bytes, in either format.
pub const fn max_sealed(plain_len: u64) -> u64 {
    plain_len + plain_len / 8 + SEAL_OVERHEAD_2 as u64 + (SEAL_OVERHEAD_2 as u64) / 8
}
/// The largest plaintext a block can have (the chunker's maximum, which `chunker` checks).
pub const MAX_PLAIN: u32 = 4 << 20;

const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;
const ZSTD_LEVEL: i32 = 3;

/// The secrets a client holds: the encryption key (format 1: of everything; format 2: of what
/// writers read), the block-id key, the chunker seed and, in format 2, the data keys that seal
/// blocks to readers. The access keys, which say what a server lets this client do, are not
/// here: `keyfile::KeyFile` holds both.
#[derive(Clone)]
pub struct Keys {
    pub enc: [u8; 32],
    pub id: [u8; 32],
    pub chunk_seed: u64,
    cipher: XChaCha20Poly1305,
    /// Format 2: blocks, archive references and intents are sealed to readers with these.
    pub data: Option<datakeys::Shared>,
}

impl Keys {
    pub fn new(enc: [u8; 32], id: [u8; 32], chunk_seed: u64) -> Self {
        let cipher = XChaCha20Poly1305::new((&enc).into());
        Keys { enc, id, chunk_seed, cipher, data: None }
    }

    /// These keys with format 2 data keys.
    pub fn with_data(mut self, data: datakeys::DataKeys) -> Self {
        self.data = Some(std::sync::Arc::new(data));
        self
    }

    /// Fresh format 2 keys derived from 32 random bytes.
    pub fn generate() -> Result<(Self, [u8; 32])> {
        let mut master = [0u8; 32];
        getrandom::getrandom(&mut master).context("reading the system's random number generator")?;
        let enc = blake3::derive_key("archiver 2026-11 data encryption", &master);
        let id = blake3::derive_key("archiver 2026-11 block ids", &master);
        let seed = blake3::derive_key("archiver 2026-11 chunker seed", &master);
        let chunk_seed = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")) | 1;
        let (secret, public, psk) = datakeys::DataKeys::derive(&master);
        let data = datakeys::DataKeys::new(public, psk, Some(secret));
        Ok((Keys::new(enc, id, chunk_seed).with_data(data), master))
    }

    /// The same keys sealing under a new ephemeral key (format 2): one per transaction.
    pub fn for_transaction(&self) -> Keys {
        let mut k = self.clone();
        k.data = self.data.as_ref().map(|d| std::sync::Arc::new(d.fresh()));
        k
    }

    /// Whether these keys open blocks: format 1 keys all do, format 2 keys with `data-secret`.
    pub fn reads_data(&self) -> bool {
        self.data.as_ref().is_none_or(|d| d.can_open())
    }

    /// Seals what only readers may open (format 2), else with `enc-key` (format 1).
    pub fn seal_reader(&self, ad: &[u8], plain: &[u8]) -> Vec<u8> {
        match &self.data {
            Some(d) => d.seal(ad, plain),
            None => self.seal(ad, plain),
        }
    }

    /// Opens what `seal_reader` made.
    pub fn open_reader(&self, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        match &self.data {
            Some(d) => d.open(ad, sealed),
            None => self.open(ad, sealed),
        }
    }

    pub fn block_id(&self, plain: &[u8]) -> BlockId {
        *blake3::keyed_hash(&self.id, plain).as_bytes()
    }

    /// Encrypts `plain` bound to `ad`: output is nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, ad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).expect("system random number generator failed");
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: ad })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Authenticates and decrypts; fails if a single bit of `sealed` or `ad` differs.
    pub fn open(&self, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            bail!("sealed object is truncated");
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: ad })
            .map_err(|_| anyhow::anyhow!("authentication failed (data damaged or wrong key)"))
    }

    /// Compresses then seals a block's plaintext, bound to its id (format 2: padded, to readers).
    pub fn seal_block(&self, id: &BlockId, plain: &[u8]) -> Vec<u8> {
        match &self.data {
            Some(d) => d.seal(id, &datakeys::pad(&compress(plain))),
            None => self.seal(id, &compress(plain)),
        }
    }

    /// Opens a sealed block, decompresses it and checks the plaintext hashes back to `id`. Lengths
    /// beyond what a block can have are refused before anything is allocated.
    pub fn open_block(&self, id: &BlockId, sealed: &[u8], plain_len: usize) -> Result<Vec<u8>> {
        block_lens(sealed.len() as u64, plain_len as u64)?;
        let plain = match &self.data {
            Some(d) => decompress(datakeys::unpad(&d.open(id, sealed)?)?, plain_len)?,
            None => decompress(&self.open(id, sealed)?, plain_len)?,
        };
        if &self.block_id(&plain) != id {
            bail!("block content does not match its id");
        }
        Ok(plain)
    }
}

/// Checks a block's stored and plain lengths as an index segment, pack header or cache claims
/// them: the plaintext at most `MAX_PLAIN`, the sealed form between `SEAL_OVERHEAD` and
/// `max_sealed` bytes (compression only ever shrinks it; format 2 pads it).
pub fn block_lens(len: u64, plain_len: u64) -> Result<(u32, u32)> {
    if plain_len > MAX_PLAIN as u64 {
        bail!("a block claims {plain_len} bytes of plaintext, more than the {MAX_PLAIN} a block can hold");
    }
    if len < SEAL_OVERHEAD as u64 || len > max_sealed(plain_len) {
        bail!(
            "a block claims {len} stored bytes for {plain_len} bytes of plaintext (a sealed block has {SEAL_OVERHEAD} to {} bytes)",
            max_sealed(plain_len)
        );
    }
    Ok((len as u32, plain_len as u32))
}

/// Seals a variable-length structure (manifest, index segment, header): compress then encrypt.
pub fn seal_object(keys: &Keys, ad: &[u8], plain: &[u8]) -> Vec<u8> {
    keys.seal(ad, &compress(plain))
}

/// Opens what `seal_object` made; `max_len` caps the decompressed size against hostile input.
pub fn open_object(keys: &Keys, ad: &[u8], sealed: &[u8], max_len: usize) -> Result<Vec<u8>> {
    let framed = keys.open(ad, sealed)?;
    match framed.split_first() {
        Some((&CODEC_RAW, body)) => Ok(body.to_vec()),
        Some((&CODEC_ZSTD, body)) => {
            let n = zstd::zstd_safe::get_frame_content_size(body)
                .ok()
                .flatten()
                .ok_or_else(|| anyhow::anyhow!("object has no content size"))?;
            if n as usize > max_len {
                bail!("object claims {n} bytes, more than the {max_len} allowed");
            }
            decompress(&framed, n as usize)
        }
        _ => bail!("object has an unknown codec"),
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// One codec byte then the payload; data zstd cannot shrink is stored raw.
pub fn compress(plain: &[u8]) -> Vec<u8> {
    let packed = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.get_or_insert_with(|| zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd context"));
        let z = c.compress(plain).ok()?;
        (z.len() < plain.len()).then(|| {
            let mut out = Vec::with_capacity(z.len() + 1);
            out.push(CODEC_ZSTD);
            out.extend_from_slice(&z);
            out
        })
    });
    packed.unwrap_or_else(|| {
        let mut out = Vec::with_capacity(plain.len() + 1);
        out.push(CODEC_RAW);
        out.extend_from_slice(plain);
        out
    })
}

pub fn decompress(framed: &[u8], plain_len: usize) -> Result<Vec<u8>> {
    match framed.split_first() {
        Some((&CODEC_RAW, body)) => Ok(body.to_vec()),
        Some((&CODEC_ZSTD, body)) => DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            let d = d.get_or_insert_with(|| zstd::bulk::Decompressor::new().expect("zstd context"));
            let out = d.decompress(body, plain_len).context("decompressing a block")?;
            if out.len() != plain_len {
                bail!("block decompressed to {} bytes, expected {plain_len}", out.len());
            }
            Ok(out)
        }),
        _ => bail!("block has an unknown codec"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_binds_id_and_detects_flips() {
        let (k, _) = Keys::generate().unwrap();
        let data = b"hello hello hello hello hello hello".repeat(100);
        let id = k.block_id(&data);
        let sealed = k.seal_block(&id, &data);
        assert!(sealed.len() < data.len());
        assert_eq!(k.open_block(&id, &sealed, data.len()).unwrap(), data);
        let mut other = id;
        other[0] ^= 1;
        assert!(k.open_block(&other, &sealed, data.len()).is_err());
        for i in [0, NONCE_LEN, sealed.len() / 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(k.open_block(&id, &bad, data.len()).is_err());
        }
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut data = vec![0u8; 4096];
        getrandom::getrandom(&mut data).unwrap();
        let framed = compress(&data);
        assert_eq!(framed[0], CODEC_RAW);
        assert_eq!(decompress(&framed, data.len()).unwrap(), data);
        assert_eq!(decompress(&compress(b""), 0).unwrap(), b"");
    }
}
