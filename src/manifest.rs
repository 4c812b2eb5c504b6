//! The manifest: the root of a repository's committed state at one generation. It names every
//! archive (with its root block) and every index segment. A commit writes a new manifest at
//! generation + 1; nothing else a commit writes is visible until then.
//!
//! Sealed bound to its generation, so an old manifest cannot be replayed under a newer number.

use crate::archive::Stats;
use crate::codec::{Reader, Writer};
use crate::crypto::{open_object, seal_object, BlockId, Keys};
use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveRef {
    pub name: String,
    pub root: BlockId,
    pub root_len: u32,
    /// Creation time, seconds since the epoch.
    pub time: i64,
    /// A checkpoint of an interrupted run (`NAME.part`), not a complete archive.
    pub partial: bool,
    pub stats: Stats,
}

#[derive(Clone, Debug, Default)]
pub struct Manifest {
    pub gen: u64,
    /// The transaction that produced this generation.
    pub txn: String,
    /// Sorted by name; names are unique.
    pub archives: Vec<ArchiveRef>,
    pub indexes: Vec<String>,
}

const VERSION: u8 = 1;

pub fn key(gen: u64) -> String {
    format!("manifest/{gen:016x}")
}

pub fn gen_from_key(key: &str) -> Option<u64> {
    u64::from_str_radix(key.strip_prefix("manifest/")?, 16).ok()
}

fn ad(gen: u64) -> Vec<u8> {
    format!("archiver manifest {gen}").into_bytes()
}

impl Manifest {
    pub fn find(&self, name: &str) -> Option<&ArchiveRef> {
        self.archives.binary_search_by(|a| a.name.as_str().cmp(name)).ok().map(|i| &self.archives[i])
    }

    pub fn insert(&mut self, a: ArchiveRef) {
        match self.archives.binary_search_by(|x| x.name.cmp(&a.name)) {
            Ok(i) => self.archives[i] = a,
            Err(i) => self.archives.insert(i, a),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<ArchiveRef> {
        let i = self.archives.binary_search_by(|a| a.name.as_str().cmp(name)).ok()?;
        Some(self.archives.remove(i))
    }

    pub fn seal(&self, keys: &Keys) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION).uvar(self.gen).str(&self.txn).uvar(self.archives.len() as u64);
        for a in &self.archives {
            w.str(&a.name).id(&a.root).uvar(a.root_len as u64).ivar(a.time).u8(a.partial as u8);
            let s = &a.stats;
            for v in [s.files, s.dirs, s.symlinks, s.raw, s.stored, s.new_raw, s.new_stored] {
                w.uvar(v);
            }
        }
        w.uvar(self.indexes.len() as u64);
        for i in &self.indexes {
            w.str(i);
        }
        seal_object(keys, &ad(self.gen), &w.finish())
    }

    pub fn open(keys: &Keys, gen: u64, sealed: &[u8]) -> Result<Manifest> {
        let plain = open_object(keys, &ad(gen), sealed, 1 << 30)
            .with_context(|| format!("manifest of generation {gen} is damaged"))?;
        let mut r = Reader::new(&plain, "manifest");
        let v = r.u8()?;
        if v != VERSION {
            bail!("manifest format {v} is not supported by this archiver (it reads {VERSION}); upgrade archiver");
        }
        let mut m = Manifest { gen: r.uvar()?, txn: r.string()?, ..Default::default() };
        if m.gen != gen {
            bail!("manifest claims generation {} but is stored as {gen}", m.gen);
        }
        for _ in 0..r.count(35)? {
            let (name, root, root_len, time, partial) =
                (r.string()?, r.id()?, r.uvar()? as u32, r.ivar()?, r.u8()? != 0);
            let mut f = [0u64; 7];
            for v in f.iter_mut() {
                *v = r.uvar()?;
            }
            let stats = Stats {
                files: f[0],
                dirs: f[1],
                symlinks: f[2],
                raw: f[3],
                stored: f[4],
                new_raw: f[5],
                new_stored: f[6],
            };
            m.archives.push(ArchiveRef { name, root, root_len, time, partial, stats });
        }
        for _ in 0..r.count(1)? {
            m.indexes.push(r.string()?);
        }
        Ok(m)
    }
}
