//! Archive roots: the one builder of an archive's root block and manifest entry, for a complete
//! archive (`NAME`, at commit) and for a checkpoint's `NAME.part` (at every checkpoint), so the
//! two cannot drift apart. The root names the archive, its time and host and its metadata blocks;
//! the entry adds the root's id and length. Sizes are filled in by the transaction
//! (`commit::with_sizes`).

use crate::archive::{encode_root, Root, Stats};
use crate::crypto::{BlockId, Keys};
use crate::manifest::ArchiveRef;
use anyhow::Result;

/// What an archive's root is built from.
pub struct Draft {
    /// The archive's name (a checkpoint's root is named `NAME.part`).
    pub name: String,
    /// Creation time, seconds since the epoch.
    pub time: i64,
    /// The metadata blocks, in order.
    pub meta: Vec<(BlockId, u32)>,
    pub stats: Stats,
    /// The command line recorded in the root (`Root::command`).
    pub command: Vec<Vec<u8>>,
}

/// The suffix of a checkpoint's archive name.
pub const PART: &str = ".part";

impl Draft {
    /// The root block and the manifest entry of the archive: complete, or a checkpoint's
    /// `NAME.part` (marked partial).
    pub fn build(self, keys: &Keys, complete: bool) -> Result<(Vec<u8>, ArchiveRef)> {
        let name = if complete { self.name } else { format!("{}{PART}", self.name) };
        let root = encode_root(&Root {
            name: name.clone(),
            time: self.time,
            host: crate::process::hostname(),
            meta: self.meta,
            command: self.command,
        })?;
        let archive = ArchiveRef {
            name,
            root: keys.block_id(&root),
            root_len: root.len() as u32,
            time: self.time,
            partial: !complete,
            stats: self.stats,
        };
        Ok((root, archive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_root_is_the_part_of_the_same_archive() {
        let keys = Keys::new([1; 32], [2; 32], 3);
        let draft = || Draft {
            name: "n".into(),
            time: 7,
            meta: vec![([9; 32], 10)],
            stats: Stats::default(),
            command: vec![b"tarsnap".to_vec()],
        };
        let (whole, a) = draft().build(&keys, true).unwrap();
        let (part, p) = draft().build(&keys, false).unwrap();
        assert_eq!((a.name.as_str(), a.partial), ("n", false));
        assert_eq!((p.name.as_str(), p.partial), ("n.part", true));
        assert_eq!((a.root, p.root), (keys.block_id(&whole), keys.block_id(&part)));
        let decoded = crate::archive::Root::decode(&part).unwrap();
        assert_eq!((decoded.name.as_str(), decoded.time, decoded.meta.len()), ("n.part", 7, 1));
        assert_eq!(decoded.command, vec![b"tarsnap".to_vec()]);
    }
}
