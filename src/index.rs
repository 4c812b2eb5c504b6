//! Index segments: which blocks each pack holds and where. A transaction writes one segment per
//! commit (and, with checkpoints, per checkpoint), listing only the packs it wrote since the
//! previous segment, so writing one costs what changed, not the size of the repository. The manifest names the segments
//! that are live; together they map every stored block to its pack.

use crate::codec::{Reader, Writer};
use crate::crypto::{open_object, seal_object, Keys};
use crate::pack::{Entry, Kind};
use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, Default)]
pub struct Segment {
    pub packs: Vec<(String, Vec<Entry>)>,
}

pub fn key(name: &str) -> String {
    format!("index/{name}")
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

    pub fn open(keys: &Keys, name: &str, sealed: &[u8]) -> Result<Segment> {
        let plain = open_object(keys, &ad(name), sealed, 1 << 31)
            .with_context(|| format!("index segment {name} of the repository is damaged"))?;
        let mut r = Reader::new(&plain, "index segment");
        if r.u8()? != 1 {
            bail!("index segment {name} has an unknown format; upgrade archiver");
        }
        let mut seg = Segment::default();
        for _ in 0..r.count(2)? {
            let pack = r.string()?;
            let n = r.count(36)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(Entry {
                    id: r.id()?,
                    kind: Kind::from_u8(r.u8()?)?,
                    offset: r.uvar()?,
                    len: r.uvar()? as u32,
                    plain_len: r.uvar()? as u32,
                });
            }
            seg.packs.push((pack, entries));
        }
        Ok(seg)
    }
}
