//! Index segments: which blocks each pack holds and where. A transaction writes one segment per
//! commit (and, with checkpoints, per checkpoint), listing only the packs it wrote since the
//! previous segment, so writing one costs what changed, not the size of the repository. The manifest names the segments
//! that are live; together they map every stored block to its pack.

use crate::codec::{Reader, Writer};
use crate::crypto::{open_object, seal_object, Keys};
use crate::limits;
use crate::pack::{Entry, Kind};
use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, Default)]
pub struct Segment {
    pub packs: Vec<(String, Vec<Entry>)>,
}

fn ad(name: &str) -> Vec<u8> {
    format!("archiver index {name}").into_bytes()
}

impl Segment {
    pub fn block_count(&self) -> usize {
        self.packs.iter().map(|(_, e)| e.len()).sum()
    }

    pub fn seal(&self, keys: &Keys, name: &str) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1).uvar(self.packs.len() as u64);
        for (pack, entries) in &self.packs {
            w.str(pack).uvar(entries.len() as u64);
            for e in entries {
                w.id(&e.id).u8(e.kind as u8).uvar(e.offset).uvar(e.len as u64).uvar(e.plain_len as u64);
            }
        }
        seal_object(keys, &ad(name), &w.finish())
    }

    /// Opens a segment. Every entry is checked against `limits` (lengths a block can have, a
    /// position inside what a pack can hold, a pack name that is one): a segment breaking them is
    /// refused whole, as damaged or hostile.
    pub fn open(keys: &Keys, name: &str, sealed: &[u8]) -> Result<Segment> {
        let max = limits::struct_plain_max(sealed.len(), 1 << 31);
        let plain = open_object(keys, &ad(name), sealed, max)
            .with_context(|| format!("index segment {name} of the repository is damaged"))?;
        let mut r = Reader::new(&plain, "index segment");
        if r.u8()? != 1 {
            bail!("index segment {name} has an unknown format; upgrade archiver");
        }
        Self::decode(r).with_context(|| format!("index segment {name} is damaged or hostile"))
    }

    fn decode(mut r: Reader) -> Result<Segment> {
        let mut seg = Segment::default();
        for _ in 0..r.count(2)? {
            let pack = r.string()?;
            limits::pack_name(&pack)?;
            let n = r.count(36)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let (id, kind, offset) = (r.id()?, Kind::from_u8(r.u8()?)?, r.uvar()?);
                let (len, plain_len) = limits::block_lens(r.uvar()?, r.uvar()?)?;
                limits::block_reach(offset, len)?;
                entries.push(Entry { id, kind, offset, len, plain_len });
            }
            seg.packs.push((pack, entries));
        }
        Ok(seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, len: u32, plain_len: u32) -> Entry {
        Entry { id: [7; 32], kind: Kind::Data, offset, len, plain_len }
    }

    #[test]
    fn refuses_entries_beyond_the_limits() {
        let (keys, _) = Keys::generate().unwrap();
        let open = |pack: &str, e: Entry| {
            let seg = Segment { packs: vec![(pack.to_string(), vec![e])] };
            Segment::open(&keys, "ab-000000", &seg.seal(&keys, "ab-000000")).map(|s| s.block_count())
        };
        assert_eq!(open("ab/00000000", entry(100, 141, 100)).unwrap(), 1);
        for (pack, e) in [
            ("ab/00000000", entry(0, 1 << 30, 1 << 30)),
            ("ab/00000000", entry(0, 1 << 30, 4 << 20)),
            ("ab/00000000", entry(0, 10, 100)),
            ("ab/00000000", entry(u64::MAX - 5, 100, 100)),
            ("../../etc/passwd", entry(0, 141, 100)),
        ] {
            let err = format!("{:#}", open(pack, e).unwrap_err());
            assert!(err.contains("damaged or hostile"), "{err}");
        }
    }

    #[test]
    fn a_small_object_that_decompresses_hugely_is_refused() {
        let (keys, _) = Keys::generate().unwrap();
        let bomb = seal_object(&keys, &ad("ab-000000"), &vec![0u8; 32 << 20]);
        assert!(bomb.len() < 64 << 10, "zstd should shrink zeros: {}", bomb.len());
        let err = format!("{:#}", Segment::open(&keys, "ab-000000", &bomb).unwrap_err());
        assert!(err.contains("more than the 16777216 allowed"), "{err}");
    }
}
