//! Packs: many sealed blocks in one stored object, so object counts stay small on disks and S3.
//!
//! Layout: `sealed block*  sealed-header  header-length (u32 LE)  "ARCPACK1"`. The header lists
//! every block (id, kind, stored length, plain length) and is sealed bound to the pack's name, so
//! the block index can be rebuilt from packs alone (fsck) even when index segments are lost.
//! Blocks are stored sealed exactly as `Keys::seal_block` produced them and can be copied between
//! packs without decrypting (repacking on delete).

use crate::codec::{Reader, Writer};
use crate::crypto::{BlockId, Keys};
use anyhow::{bail, Context, Result};

pub const TARGET_SIZE: usize = 16 << 20;
const MAGIC: &[u8; 8] = b"ARCPACK1";
const TRAILER: usize = 4 + MAGIC.len();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Data = 0,
    Meta = 1,
    Root = 2,
}

impl Kind {
    pub fn from_u8(v: u8) -> Result<Kind> {
        Ok(match v {
            0 => Kind::Data,
            1 => Kind::Meta,
            2 => Kind::Root,
            _ => bail!("unknown block kind {v}"),
        })
    }
}

/// Where one block lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: String,
    pub offset: u64,
    pub len: u32,
    pub plain_len: u32,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub id: BlockId,
    pub kind: Kind,
    pub offset: u64,
    pub len: u32,
    pub plain_len: u32,
}

/// Accumulates sealed blocks until the pack is big enough to store.
#[derive(Default)]
pub struct PackBuilder {
    pub buf: Vec<u8>,
    pub entries: Vec<Entry>,
}

impl PackBuilder {
    pub fn add(&mut self, id: BlockId, kind: Kind, sealed: &[u8], plain_len: u32) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(TARGET_SIZE + (4 << 20));
        }
        self.entries.push(Entry {
            id,
            kind,
            offset: self.buf.len() as u64,
            len: sealed.len() as u32,
            plain_len,
        });
        self.buf.extend_from_slice(sealed);
    }

    pub fn is_full(&self) -> bool {
        self.buf.len() >= TARGET_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the sealed header and trailer; returns the pack bytes and its entries.
    pub fn finish(mut self, keys: &Keys, name: &str) -> (Vec<u8>, Vec<Entry>) {
        let mut w = Writer::new();
        w.u8(1).uvar(self.entries.len() as u64);
        for e in &self.entries {
            w.id(&e.id).u8(e.kind as u8).uvar(e.len as u64).uvar(e.plain_len as u64);
        }
        let header = crate::crypto::seal_object(keys, &header_ad(name), &w.finish());
        self.buf.extend_from_slice(&header);
        self.buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(MAGIC);
        (self.buf, self.entries)
    }
}

fn header_ad(name: &str) -> Vec<u8> {
    format!("archiver pack header {name}").into_bytes()
}

/// Reads a pack's header given its last bytes: returns the header's length when `tail` is the
/// trailer, so a caller can fetch just the header with one range read.
pub fn header_len_from_trailer(tail: &[u8]) -> Result<usize> {
    if tail.len() < TRAILER || &tail[tail.len() - MAGIC.len()..] != MAGIC {
        bail!("pack trailer is missing or damaged");
    }
    let n = &tail[tail.len() - TRAILER..tail.len() - MAGIC.len()];
    let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
    if n > crate::limits::MAX_PACK_HEADER {
        bail!(
            "pack trailer claims a header of {n} bytes, more than the {} allowed: the pack is damaged or hostile",
            crate::limits::MAX_PACK_HEADER
        );
    }
    Ok(n)
}

pub const TRAILER_LEN: usize = TRAILER;

/// Decodes a sealed pack header into entries with their offsets, each checked against `limits`.
pub fn parse_header(keys: &Keys, name: &str, sealed: &[u8]) -> Result<Vec<Entry>> {
    let max = crate::limits::struct_plain_max(sealed.len(), crate::limits::MAX_PACK_HEADER);
    let plain = crate::crypto::open_object(keys, &header_ad(name), sealed, max)
        .with_context(|| format!("pack {name} header"))?;
    let mut r = Reader::new(&plain, "pack header");
    if r.u8()? != 1 {
        bail!("pack header has an unknown version");
    }
    let entries = (|| {
        let n = r.count(35)?;
        let mut offset = 0u64;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.id()?;
            let kind = Kind::from_u8(r.u8()?)?;
            let (len, plain_len) = crate::limits::block_lens(r.uvar()?, r.uvar()?)?;
            crate::limits::block_reach(offset, len)?;
            out.push(Entry { id, kind, offset, len, plain_len });
            offset += len as u64;
        }
        Ok::<_, anyhow::Error>(out)
    })();
    entries.with_context(|| format!("pack {name} header is damaged or hostile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_beyond_the_limits_are_refused() {
        let (keys, _) = Keys::generate().unwrap();
        let mut b = PackBuilder::default();
        let data = b"some block".to_vec();
        let id = keys.block_id(&data);
        b.add(id, Kind::Data, &keys.seal_block(&id, &data), data.len() as u32);
        let (pack, _) = b.finish(&keys, "ab/00000000");
        let hlen = header_len_from_trailer(&pack).unwrap();
        let header = &pack[pack.len() - TRAILER - hlen..pack.len() - TRAILER];
        assert_eq!(parse_header(&keys, "ab/00000000", header).unwrap().len(), 1);

        // A header whose entry claims a 1 GiB block, sealed with the right key.
        let mut w = Writer::new();
        w.u8(1).uvar(1).id(&id).u8(0).uvar(1 << 30).uvar(1 << 30);
        let hostile = crate::crypto::seal_object(&keys, &header_ad("ab/00000000"), &w.finish());
        let err = format!("{:#}", parse_header(&keys, "ab/00000000", &hostile).unwrap_err());
        assert!(err.contains("damaged or hostile"), "{err}");

        // A trailer claiming a header larger than any pack's.
        let mut tail = ((crate::limits::MAX_PACK_HEADER + 1) as u32).to_le_bytes().to_vec();
        tail.extend_from_slice(MAGIC);
        assert!(header_len_from_trailer(&tail).unwrap_err().to_string().contains("hostile"));
    }
}
