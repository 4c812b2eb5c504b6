//! Packs: many sealed blocks in one stored object, so object counts stay small on disks and S3.
//!
//! Layout: `sealed block*  sealed-header  header-length (u32 LE)  "ARCPACK1"`. The header lists
//! every block (id, kind, stored length, plain length) and is sealed bound to the pack's name, so
//! the block index can be rebuilt from packs alone (fsck) even when index segments are lost.
//! Blocks are stored sealed exactly as `Keys::seal_block` produced them and can be copied between
//! packs without decrypting (repacking on delete). A pack is built in memory, or written as it
//! is built to a file the repository takes as it is (`PackBuilder::spooled`, a local directory).

use crate::backend::Spool;
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
    buf: Vec<u8>,
    pub entries: Vec<Entry>,
    /// Where the blocks go instead of `buf`.
    spool: Option<Spool>,
    len: u64,
}

/// A finished pack: its bytes, or the file they were written to.
pub enum Built {
    Memory(Vec<u8>),
    Spooled(Spool),
}

impl PackBuilder {
    /// A builder writing its pack to `spool` as blocks come, not to memory.
    pub fn spooled(spool: Spool) -> Self {
        PackBuilder { spool: Some(spool), ..Default::default() }
    }

    pub fn is_spooled(&self) -> bool {
        self.spool.is_some()
    }

    /// Appends a sealed block (an error only from a spool's file).
    pub fn add(&mut self, id: BlockId, kind: Kind, sealed: &[u8], plain_len: u32) -> std::io::Result<()> {
        let offset = self.len;
        match &mut self.spool {
            Some(spool) => spool.write(sealed)?,
            None => {
                if self.buf.capacity() == 0 {
                    self.buf.reserve(TARGET_SIZE + (4 << 20));
                }
                self.buf.extend_from_slice(sealed);
            }
        }
        self.len += sealed.len() as u64;
        self.entries.push(Entry { id, kind, offset, len: sealed.len() as u32, plain_len });
        Ok(())
    }

    pub fn is_full(&self) -> bool {
        self.len >= TARGET_SIZE as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the sealed header and trailer; returns the pack and its entries.
    pub fn finish(self, keys: &Keys, name: &str) -> std::io::Result<(Built, Vec<Entry>)> {
        let mut w = Writer::new();
        w.u8(1).uvar(self.entries.len() as u64);
        for e in &self.entries {
            w.id(&e.id).u8(e.kind as u8).uvar(e.len as u64).uvar(e.plain_len as u64);
        }
        let header = crate::crypto::seal_object(keys, &header_ad(name), &w.finish());
        let (mut buf, spool, entries) = (self.buf, self.spool, self.entries);
        let tail = [&header[..], &(header.len() as u32).to_le_bytes(), MAGIC];
        match spool {
            Some(mut spool) => {
                tail.iter().try_for_each(|t| spool.write(t))?;
                Ok((Built::Spooled(spool), entries))
            }
            None => {
                tail.iter().for_each(|t| buf.extend_from_slice(t));
                Ok((Built::Memory(buf), entries))
            }
        }
    }

    /// `finish` of a builder that is not spooled: the pack's bytes.
    pub fn finish_in_memory(self, keys: &Keys, name: &str) -> (Vec<u8>, Vec<Entry>) {
        assert!(self.spool.is_none(), "a spooled pack is not in memory");
        match self.finish(keys, name).expect("memory does not fail") {
            (Built::Memory(bytes), entries) => (bytes, entries),
            (Built::Spooled(_), _) => unreachable!("not spooled"),
        }
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

    /// A pack written to a spool as it is built is laid out as one built in memory: the same
    /// blocks at the same offsets, and a header that lists them.
    #[test]
    fn a_spooled_pack_is_the_pack_built_in_memory() {
        let (keys, _) = Keys::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut spooled = PackBuilder::spooled(Spool::create(dir.path().join("p")).unwrap());
        let mut memory = PackBuilder::default();
        for n in 0..300u32 {
            let data = vec![n as u8; 1 + (n as usize * 997) % 70_000];
            let id = keys.block_id(&data);
            let sealed = keys.seal_block(&id, &data);
            spooled.add(id, Kind::Data, &sealed, data.len() as u32).unwrap();
            memory.add(id, Kind::Data, &sealed, data.len() as u32).unwrap();
        }
        assert!(spooled.is_spooled() && !memory.is_spooled());
        let (Built::Spooled(mut spool), entries) = spooled.finish(&keys, "ab/00000001").unwrap() else {
            panic!("not spooled")
        };
        let (bytes, mem_entries) = memory.finish_in_memory(&keys, "ab/00000001");
        let file = spool.read_all().unwrap();
        let data_len = entries.last().map(|e| e.offset + e.len as u64).unwrap() as usize;
        assert_eq!(file[..data_len], bytes[..data_len]);
        let hlen = header_len_from_trailer(&file).unwrap();
        assert_eq!(file.len(), data_len + hlen + TRAILER);
        let parsed = parse_header(&keys, "ab/00000001", &file[data_len..data_len + hlen]).unwrap();
        let key = |e: &Entry| (e.id, e.offset, e.len, e.plain_len);
        assert_eq!(parsed.iter().map(key).collect::<Vec<_>>(), entries.iter().map(key).collect::<Vec<_>>());
        assert_eq!(
            mem_entries.iter().map(key).collect::<Vec<_>>(),
            entries.iter().map(key).collect::<Vec<_>>()
        );
    }

    #[test]
    fn headers_beyond_the_limits_are_refused() {
        let (keys, _) = Keys::generate().unwrap();
        let mut b = PackBuilder::default();
        let data = b"some block".to_vec();
        let id = keys.block_id(&data);
        b.add(id, Kind::Data, &keys.seal_block(&id, &data), data.len() as u32).unwrap();
        let (pack, _) = b.finish_in_memory(&keys, "ab/00000000");
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
