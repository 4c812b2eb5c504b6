//! Format 2 archive references: each manifest entry and checkpoint record shows writers only a
//! name tag, and seals the archive's name, root, time and sizes to readers (`datakeys`).
//!
//! A name `BASE`, `BASE.part` or `BASE.part.N` is listed as `(base tag, part)`, part 0, 1 or N,
//! where the base tag is BLAKE3 keyed by the id-key over `BASE`. So a write key, which cannot
//! open references, still refuses a name that exists (it computes the tag of the name it was
//! given) and gives a promoted checkpoint the first free `.part` number (the checkpoint record
//! carries the base tag). What a write key learns from tags: whether a name it guesses exists.
//!
//! Invariants: a sealed reference is bound to its base tag, so it cannot be moved to another
//! name undetected; the part number lives outside the seal, since recovery picks it without
//! opening the reference; opening checks the name inside against the tag.

use super::ArchiveRef;
use crate::codec::{Reader, Writer};
use crate::crypto::Keys;
use anyhow::{bail, Result};

/// The largest sealed reference (a name of at most a few KiB, an id and eight numbers).
const MAX_SEALED: usize = 64 << 10;

/// An archive reference as a writer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hidden {
    pub base_tag: [u8; 32],
    /// 0: `BASE`; 1: `BASE.part`; N ≥ 2: `BASE.part.N`.
    pub part: u64,
    /// The reference with name `BASE`, sealed to readers.
    pub sealed: Vec<u8>,
}

/// The tag of archive base name `base`.
pub fn base_tag(keys: &Keys, base: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&keys.id);
    h.update(b"archiver name tag v2\0").update(base.as_bytes());
    *h.finalize().as_bytes()
}

/// `name` as (base, part): `x.part` is (`x`, 1), `x.part.N` (`x`, N) for N ≥ 2 written as
/// `join` writes it; any other name is itself with part 0.
pub fn split(name: &str) -> (&str, u64) {
    if let Some(base) = name.strip_suffix(".part") {
        return (base, 1);
    }
    if let Some((base, n)) = name.rsplit_once(".part.") {
        if let Ok(n) = n.parse::<u64>() {
            if n >= 2 && join(base, n) == name {
                return (base, n);
            }
        }
    }
    (name, 0)
}

/// The name of part `part` of `base`.
pub fn join(base: &str, part: u64) -> String {
    match part {
        0 => base.to_string(),
        1 => format!("{base}.part"),
        n => format!("{base}.part.{n}"),
    }
}

/// The tag and part of archive name `name`.
pub fn tag_of(keys: &Keys, name: &str) -> ([u8; 32], u64) {
    let (base, part) = split(name);
    (base_tag(keys, base), part)
}

fn ad(base_tag: &[u8; 32]) -> Vec<u8> {
    let mut ad = b"archiver archive ref v2 ".to_vec();
    ad.extend_from_slice(base_tag);
    ad
}

/// Seals `a` to readers under its tag.
pub fn hide(keys: &Keys, a: &ArchiveRef) -> Hidden {
    let (base, part) = split(&a.name);
    let tag = base_tag(keys, base);
    let mut w = Writer::new();
    ArchiveRef { name: base.to_string(), ..a.clone() }.encode(&mut w);
    Hidden { base_tag: tag, part, sealed: keys.seal_reader(&ad(&tag), &w.finish()) }
}

/// Opens a reference `hide` sealed; fails for a key without `data-secret`, or if it was damaged
/// or moved to another name.
pub fn reveal(keys: &Keys, h: &Hidden) -> Result<ArchiveRef> {
    let plain = keys.open_reader(&ad(&h.base_tag), &h.sealed)?;
    let mut r = Reader::new(&plain, "archive reference");
    let mut a = ArchiveRef::decode(&mut r)?;
    if base_tag(keys, &a.name) != h.base_tag || split(&a.name) != (a.name.as_str(), 0) {
        bail!("an archive reference does not match its name tag");
    }
    a.name = join(&a.name, h.part);
    a.partial = h.part > 0;
    Ok(a)
}

impl Hidden {
    pub fn encode(&self, w: &mut Writer) {
        w.id(&self.base_tag).uvar(self.part).bytes(&self.sealed);
    }

    pub fn decode(r: &mut Reader) -> Result<Hidden> {
        let (base_tag, part) = (r.id()?, r.uvar()?);
        let sealed = r.bytes()?;
        if sealed.len() > MAX_SEALED {
            bail!("an archive reference of {} bytes is longer than the {MAX_SEALED} allowed", sealed.len());
        }
        Ok(Hidden { base_tag, part, sealed: sealed.to_vec() })
    }

    pub fn key(&self) -> ([u8; 32], u64) {
        (self.base_tag, self.part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Stats;

    #[test]
    fn names_split_join_and_references_open_only_for_readers() {
        for (name, base, part) in [
            ("n", "n", 0),
            ("n.part", "n", 1),
            ("n.part.2", "n", 2),
            ("n.part.1", "n.part.1", 0),
            ("a.part.02", "a.part.02", 0),
        ] {
            assert_eq!(split(name), (base, part), "{name}");
            if part > 0 || base == name {
                assert_eq!(join(base, part), name);
            }
        }
        let (full, _) = Keys::generate().unwrap();
        let d = full.data.as_ref().unwrap();
        let writer = full.clone().with_data(crate::crypto::datakeys::DataKeys::new(d.public, d.psk, None));
        let a = ArchiveRef {
            name: "nightly.part.3".into(),
            root: [5; 32],
            root_len: 9,
            time: 77,
            partial: true,
            stats: Stats { files: 4, ..Default::default() },
        };
        let h = hide(&writer, &a);
        assert_eq!(h.key(), (base_tag(&full, "nightly"), 3));
        assert_eq!(reveal(&full, &h).unwrap(), a);
        assert!(reveal(&writer, &h).unwrap_err().to_string().contains("write-only"));
        let moved = Hidden { base_tag: base_tag(&full, "other"), ..h.clone() };
        assert!(reveal(&full, &moved).is_err(), "bound to its tag");
        let promoted = Hidden { part: 1, ..h };
        assert_eq!(reveal(&full, &promoted).unwrap().name, "nightly.part");
    }
}
