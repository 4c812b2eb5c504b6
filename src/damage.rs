//! Damage marks: how a damaged block heals.
//!
//! Blocks are named by a keyed hash of their contents, so a damaged copy in a pack is healed by
//! storing the same block again anywhere: every archive that names the block then restores from
//! the new copy. What stops that today is dedup: the index still lists the damaged copy, so
//! create never stores the block again. fsck, which finds the damage, therefore records each
//! damaged copy (block id and pack) in the manifest (`Manifest::damaged`), committed under the
//! lock with a key that may write; readers never write marks.
//!
//! A mark is advisory, never destructive on its own: the cache does not offer a marked copy for
//! dedup (`cache::damage`), so the next create that meets the block (its files' change rows no
//! longer count as stored, so they are read again) stores it again; readers prefer an unmarked
//! copy and still try a marked one when there is no other (it is authenticated when read, so a
//! wrong mark costs a second upload, never data); `delete`/`fsck --prune` drop a marked copy only
//! once they have read it and seen it fail authentication, or another copy exists. A later
//! `fsck --verify-data` that finds a marked copy intact removes its mark.

use crate::crypto::BlockId;
use crate::manifest::Manifest;
use std::collections::BTreeSet;

/// What a reader says about a block whose only copy is damaged.
pub const HEAL_HINT: &str = "`archiver fsck --verify-data` (with a key that may write) records it, so that the next `archiver create` of the files holding it stores it again and heals every archive that uses it";

/// A name for the set of marks in `m`: the cache records the one it applied.
pub fn token(m: &Manifest) -> String {
    token_of(&m.damaged)
}

/// The name of a set of marks (sorted, as a manifest holds them).
pub fn token_of(marks: &[(BlockId, String)]) -> String {
    if marks.is_empty() {
        return "none".into();
    }
    let mut h = blake3::Hasher::new();
    for (id, pack) in marks {
        h.update(id).update(&(pack.len() as u64).to_le_bytes()).update(pack.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// The marks fsck leaves: the damaged copies it found, and (unless it read every block, so that
/// an old mark it did not find again was seen intact) the old marks on copies the index still
/// lists. `indexed` says whether the index lists a copy.
pub fn updated(
    old: &[(BlockId, String)],
    found: &BTreeSet<(BlockId, String)>,
    verified_all: bool,
    indexed: impl Fn(&BlockId, &str) -> bool,
) -> Vec<(BlockId, String)> {
    let mut marks: BTreeSet<(BlockId, String)> = found.clone();
    if !verified_all {
        marks.extend(old.iter().filter(|(id, p)| indexed(id, p)).cloned());
    }
    marks.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keys;

    #[test]
    fn marks_survive_the_manifest_and_a_manifest_without_marks_is_unchanged() {
        let (keys, _) = Keys::generate().unwrap();
        let mut m = Manifest { gen: 3, txn: "t".into(), ..Default::default() };
        let plain = m.seal(&keys);
        assert_eq!(Manifest::open(&keys, 3, &plain).unwrap().damaged, vec![]);
        m.damaged = vec![([9; 32], "ab/00000001".into()), ([1; 32], "ab/00000000".into())];
        let back = Manifest::open(&keys, 3, &m.seal(&keys)).unwrap();
        assert_eq!(back.damaged, vec![([1; 32], "ab/00000000".into()), ([9; 32], "ab/00000001".into())]);
        assert_ne!(token(&back), token(&Manifest::default()));
        m.damaged = vec![([1; 32], "../../etc".into())];
        let err = format!("{:#}", Manifest::open(&keys, 3, &m.seal(&keys)).unwrap_err());
        assert!(err.contains("damaged or hostile"), "{err}");
    }

    #[test]
    fn old_marks_stay_unless_every_block_was_read() {
        let old = vec![([1; 32], "p1".to_string()), ([2; 32], "gone".to_string())];
        let found: BTreeSet<_> = [([3; 32], "p3".to_string())].into();
        let indexed = |_: &BlockId, p: &str| p != "gone";
        let kept = updated(&old, &found, false, indexed);
        assert_eq!(kept, vec![([1; 32], "p1".to_string()), ([3; 32], "p3".to_string())]);
        assert_eq!(updated(&old, &found, true, indexed), vec![([3; 32], "p3".to_string())]);
    }
}
