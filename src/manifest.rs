//! The manifest: the root of a repository's committed state at one generation. It names every
//! archive (with its root block) and every index segment. A commit writes a new manifest at
//! generation + 1; nothing else a commit writes is visible until then.
//!
//! Sealed bound to its generation, so an old manifest cannot be replayed under a newer number.
//! Format 1 lists archive references in the open (inside the `enc-key` seal); format 2 lists
//! them as name tags with references sealed to readers (`sealed`): a key that cannot open them
//! (a write key) keeps them as `hidden` and carries them verbatim into the next generation.

use crate::archive::Stats;
use crate::codec::{Reader, Writer};
use crate::crypto::{open_object, seal_object, BlockId, Keys};
use crate::limits;
use anyhow::{bail, Context, Result};

pub mod sealed;
pub use sealed::Hidden;

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
    /// Damage marks recorded by fsck: block copies (id, pack) found damaged, sorted, unique.
    /// Advisory (see `damage`): a marked copy is not offered for dedup, so the next create
    /// stores the block again; readers use it only when no other copy exists. Encoded after the
    /// index list only when there are any, so a manifest without marks is unchanged.
    pub damaged: Vec<(BlockId, String)>,
    /// Format 2, for a key that cannot open archive references (a write key): the references,
    /// by name tag. Empty for keys that read (their references are in `archives`).
    pub hidden: Vec<Hidden>,
}

const VERSION: u8 = 1;
const VERSION_2: u8 = 2;

/// A checkpoint's archive, open or (for a write key, format 2) by its tag only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listed {
    Open(ArchiveRef),
    Hidden(Hidden),
}

impl Listed {
    /// The base tag and part of this archive's name.
    pub fn tag(&self, keys: &Keys) -> ([u8; 32], u64) {
        match self {
            Listed::Open(a) => sealed::tag_of(keys, &a.name),
            Listed::Hidden(h) => h.key(),
        }
    }
}

impl ArchiveRef {
    pub fn encode(&self, w: &mut Writer) {
        w.str(&self.name).id(&self.root).uvar(self.root_len as u64).ivar(self.time).u8(self.partial as u8);
        let s = &self.stats;
        for v in [s.files, s.dirs, s.symlinks, s.raw, s.stored, s.new_raw, s.new_stored] {
            w.uvar(v);
        }
    }

    pub fn decode(r: &mut Reader) -> Result<ArchiveRef> {
        let (name, root, root_len, time, partial) = (r.string()?, r.id()?, r.u32()?, r.ivar()?, r.u8()? != 0);
        if root_len > crate::limits::MAX_PLAIN {
            bail!("archive {name:?} has a root of {root_len} bytes, more than a block can hold");
        }
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
        Ok(ArchiveRef { name, root, root_len, time, partial, stats })
    }
}

/// A checkpoint: the archive so far (`NAME.part`) and what of the transaction it needs. Written
/// by `Txn::checkpoint`, promoted to a commit by recovery.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub archive: Listed,
    pub indexes: Vec<String>,
    pub packs: Vec<String>,
}

impl Checkpoint {
    fn ad(txn: &str) -> Vec<u8> {
        format!("archiver checkpoint {txn}").into_bytes()
    }

    pub fn seal(&self, keys: &Keys, txn: &str) -> Vec<u8> {
        let mut w = Writer::new();
        match (&self.archive, keys.data.is_some()) {
            (Listed::Open(a), false) => a.encode(w.u8(VERSION)),
            (Listed::Open(a), true) => sealed::hide(keys, a).encode(w.u8(VERSION_2)),
            (Listed::Hidden(h), _) => h.encode(w.u8(VERSION_2)),
        }
        for list in [&self.indexes, &self.packs] {
            w.uvar(list.len() as u64);
            for s in list {
                w.str(s);
            }
        }
        seal_object(keys, &Self::ad(txn), &w.finish())
    }

    pub fn open(keys: &Keys, txn: &str, sealed: &[u8]) -> Result<Checkpoint> {
        let max = limits::struct_plain_max(sealed.len(), 1 << 30);
        let plain = open_object(keys, &Self::ad(txn), sealed, max)
            .with_context(|| format!("checkpoint record of transaction {txn} is damaged"))?;
        let mut r = Reader::new(&plain, "checkpoint record");
        let v = r.u8()?;
        if v != VERSION && v != VERSION_2 {
            bail!("checkpoint record has an unknown format; upgrade archiver");
        }
        if (v == VERSION_2) != keys.data.is_some() {
            bail!("checkpoint record of transaction {txn} is in format {v}, not its repository's: damaged or forged");
        }
        let decoded = (|| -> Result<_> {
            let archive = match v {
                VERSION => Listed::Open(ArchiveRef::decode(&mut r)?),
                _ => match sealed::Hidden::decode(&mut r)? {
                    h if keys.reads_data() => Listed::Open(sealed::reveal(keys, &h)?),
                    h => Listed::Hidden(h),
                },
            };
            let mut lists = [Vec::new(), Vec::new()];
            for (list, check) in lists.iter_mut().zip([limits::segment_name, limits::pack_name]) {
                for _ in 0..r.count(1)? {
                    let name = r.string()?;
                    check(&name)?;
                    list.push(name);
                }
            }
            let [indexes, packs] = lists;
            Ok(Checkpoint { archive, indexes, packs })
        })();
        decoded.with_context(|| format!("checkpoint record of transaction {txn} is damaged or hostile"))
    }
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

    /// Whether an archive named `name` exists, whether or not these keys open references.
    pub fn holds(&self, keys: &Keys, name: &str) -> bool {
        self.find(name).is_some() || self.taken(keys, sealed::tag_of(keys, name))
    }

    /// Whether the archive of base tag and part `key` exists.
    pub fn taken(&self, keys: &Keys, key: ([u8; 32], u64)) -> bool {
        self.hidden.iter().any(|h| h.key() == key)
            || (!self.archives.is_empty()
                && self.archives.iter().any(|a| sealed::tag_of(keys, &a.name) == key))
    }

    /// How many archives there are, open or hidden.
    pub fn len(&self) -> usize {
        self.archives.len() + self.hidden.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds archive `a`, replacing one of the same name.
    pub fn put(&mut self, a: Listed, keys: &Keys) {
        match a {
            Listed::Open(a) => self.insert(a),
            Listed::Hidden(h) => {
                self.archives.retain(|a| sealed::tag_of(keys, &a.name) != h.key());
                self.hidden.retain(|x| x.key() != h.key());
                self.hidden.push(h);
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<ArchiveRef> {
        let i = self.archives.binary_search_by(|a| a.name.as_str().cmp(name)).ok()?;
        Some(self.archives.remove(i))
    }

    pub fn seal(&self, keys: &Keys) -> Vec<u8> {
        let mut w = Writer::new();
        if keys.data.is_none() {
            debug_assert!(self.hidden.is_empty(), "format 1 hides nothing");
            w.u8(VERSION).uvar(self.gen).str(&self.txn).uvar(self.archives.len() as u64);
            for a in &self.archives {
                a.encode(&mut w);
            }
        } else {
            let mut all: Vec<Hidden> = self.archives.iter().map(|a| sealed::hide(keys, a)).collect();
            all.extend(self.hidden.iter().cloned());
            all.sort_by_key(|h| h.key());
            w.u8(VERSION_2).uvar(self.gen).str(&self.txn).uvar(all.len() as u64);
            for h in &all {
                h.encode(&mut w);
            }
        }
        w.uvar(self.indexes.len() as u64);
        for i in &self.indexes {
            w.str(i);
        }
        if !self.damaged.is_empty() {
            w.uvar(self.damaged.len() as u64);
            for (id, pack) in &self.damaged {
                w.id(id).str(pack);
            }
        }
        seal_object(keys, &ad(self.gen), &w.finish())
    }

    pub fn open(keys: &Keys, gen: u64, sealed: &[u8]) -> Result<Manifest> {
        let max = limits::struct_plain_max(sealed.len(), 1 << 30);
        let plain = open_object(keys, &ad(gen), sealed, max)
            .with_context(|| format!("manifest of generation {gen} is damaged"))?;
        let mut r = Reader::new(&plain, "manifest");
        let v = r.u8()?;
        if v != VERSION && v != VERSION_2 {
            bail!("manifest format {v} is not supported by this archiver (it reads {VERSION} and {VERSION_2}); upgrade archiver");
        }
        if (v == VERSION_2) != keys.data.is_some() {
            bail!("manifest of generation {gen} is in format {v}, not its repository's: damaged or forged");
        }
        let mut m = Manifest { gen: r.uvar()?, txn: r.string()?, ..Default::default() };
        if m.gen != gen {
            bail!("manifest claims generation {} but is stored as {gen}", m.gen);
        }
        let decoded = (|| -> Result<_> {
            for _ in 0..r.count(35)? {
                match v {
                    VERSION => m.archives.push(ArchiveRef::decode(&mut r)?),
                    // An entry a read key cannot open (damaged, or written with a damaged key) is
                    // kept as it is, unlisted, and carried into the next generation.
                    _ => match Hidden::decode(&mut r)? {
                        h if keys.reads_data() => match sealed::reveal(keys, &h) {
                            Ok(a) => m.archives.push(a),
                            Err(_) => m.hidden.push(h),
                        },
                        h => m.hidden.push(h),
                    },
                }
            }
            m.archives.sort_by(|a, b| a.name.cmp(&b.name));
            m.hidden.sort_by_key(|h| h.key());
            let names_repeat = m.archives.windows(2).any(|w| w[0].name == w[1].name);
            if names_repeat || m.hidden.windows(2).any(|w| w[0].key() == w[1].key()) {
                bail!("it lists an archive name twice");
            }
            for _ in 0..r.count(1)? {
                let name = r.string()?;
                limits::segment_name(&name)?;
                m.indexes.push(name);
            }
            if !r.is_empty() {
                for _ in 0..r.count(34)? {
                    let (id, pack) = (r.id()?, r.string()?);
                    limits::pack_name(&pack)?;
                    m.damaged.push((id, pack));
                }
                m.damaged.sort();
                m.damaged.dedup();
            }
            Ok(m)
        })();
        decoded.with_context(|| format!("manifest of generation {gen} is damaged or hostile"))
    }
}
