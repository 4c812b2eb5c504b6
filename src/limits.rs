//! Bounds on every size and name read from the repository, a server or archive metadata, in one
//! place (DESIGN invariant 8: nothing from outside is trusted for size or shape).
//!
//! Everything a repository holds is authenticated, but authentication only proves that some key
//! holder wrote it: a stolen write key can store well-formed structures that claim anything. So
//! each length, count and name is checked against what archiver itself can produce before memory
//! is allocated for it or a path is built from it. A structure that breaks a limit is refused as
//! "damaged or hostile"; the limits are generous multiples of what archiver writes, so that no
//! honest repository ever meets them. The result: no input makes one allocation larger than these
//! constants, and reading an archive allocates at most a fixed multiple of the distinct metadata
//! it really references (docs/FORMAT.md, "Limits").

/// What sealing adds to a block, the largest plaintext a block can have (the chunker's maximum:
/// archive roots, file data and metadata blocks alike; `create` refuses to write a larger root),
/// and the check of a block's claimed lengths: defined by `crypto`, which opens blocks.
pub use crate::crypto::{block_lens, MAX_PLAIN, SEAL_OVERHEAD};
use anyhow::{bail, Result};

/// The largest sealed block: its plaintext stored raw plus what sealing adds (format 2: the
/// ephemeral key, a length and Padmé's padding).
pub const MAX_SEALED: u32 = crate::crypto::max_sealed(MAX_PLAIN as u64) as u32;
/// Bytes of blocks one pack may hold (a pack is stored once it reaches 16 MiB, so archiver's
/// own packs hold at most 16 MiB plus one block).
pub const MAX_PACK_DATA: u64 = 64 << 20;
/// The largest sealed pack header (archiver's own stay under 16 MiB even for packs of the
/// smallest blocks).
pub const MAX_PACK_HEADER: usize = 64 << 20;
/// The metadata blocks one archive root lists, counted per listing, may add up to at most this
/// many times the distinct blocks it lists (`create` refuses to write an archive that would not).
/// A tree given several times on one command line repeats its metadata blocks.
pub const META_REPEAT: u64 = 4;
/// The longest stored path or symlink target (Linux refuses paths of 4 KiB and more).
pub const MAX_PATH: usize = 64 << 10;
/// Extended attributes of one node: Linux lists at most 64 KiB of names (`XATTR_LIST_MAX`), so
/// at most about 10,000 attributes, names of at most 255 bytes (`XATTR_NAME_MAX`) and values of
/// at most 64 KiB (`XATTR_SIZE_MAX`).
pub const MAX_XATTRS: usize = 10_000;
pub const MAX_XATTR_NAME: usize = 255;
pub const MAX_XATTR_VALUE: usize = 64 << 10;
/// A user or group name kept with a node (glibc's `LOGIN_NAME_MAX` is 256).
pub const MAX_OWNER_NAME: usize = 256;
/// A sealed structure (manifest, index segment, pack header, checkpoint record) may decompress
/// to at most `STRUCT_RATIO` times its sealed size, or `STRUCT_FLOOR`, whichever is larger: what
/// archiver writes is mostly random block ids, which do not compress, while a hostile zstd frame
/// can expand a few kilobytes into gigabytes.
pub const STRUCT_RATIO: usize = 64;
pub const STRUCT_FLOOR: usize = 16 << 20;

/// The most a sealed structure of `sealed` bytes may decompress to, given its own hard `cap`.
pub fn struct_plain_max(sealed: usize, cap: usize) -> usize {
    cap.min(sealed.saturating_mul(STRUCT_RATIO).max(STRUCT_FLOOR))
}

/// Checks where a block lies in its pack.
pub fn block_reach(offset: u64, len: u32) -> Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= MAX_PACK_DATA => Ok(()),
        _ => bail!(
            "a block claims to lie at bytes {offset}.. of its pack, beyond the {MAX_PACK_DATA} bytes of blocks a pack can hold"
        ),
    }
}

fn hex_part(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a pack name (`<txn>/<seq>`, hex) read from an index segment or a checkpoint: a name
/// becomes part of an object's path, so `..` or `/` in it must never reach a backend.
pub fn pack_name(name: &str) -> Result<()> {
    match name.split_once('/') {
        Some((txn, seq)) if hex_part(txn, 64) && hex_part(seq, 16) => Ok(()),
        _ => bail!("it names a pack {name:?}, which is not a pack name (<txn>/<seq>, hexadecimal)"),
    }
}

/// Checks an index segment name (`<txn>-<seq>`, hex) read from a manifest or a checkpoint.
pub fn segment_name(name: &str) -> Result<()> {
    match name.split_once('-') {
        Some((txn, seq)) if hex_part(txn, 64) && hex_part(seq, 16) => Ok(()),
        _ => bail!(
            "it names an index segment {name:?}, which is not a segment name (<txn>-<seq>, hexadecimal)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lengths_and_names() {
        assert!(block_lens(41, 0).is_ok());
        assert!(block_lens(MAX_SEALED as u64, MAX_PLAIN as u64).is_ok());
        assert!(block_lens(40, 0).is_err());
        assert!(block_lens(1 << 30, MAX_PLAIN as u64).is_err());
        assert!(block_lens(100, MAX_PLAIN as u64 + 1).is_err());
        assert!(block_lens(u64::MAX, u64::MAX).is_err());
        assert!(block_reach(MAX_PACK_DATA - 10, 10).is_ok());
        assert!(block_reach(MAX_PACK_DATA - 10, 11).is_err());
        assert!(block_reach(u64::MAX, 100).is_err());
        assert!(pack_name("0123abcd/00000001").is_ok());
        for bad in ["../../etc/x", "abc", "ab/../c", "a/", "/a", "ab/c/d", "ab/0g"] {
            assert!(pack_name(bad).is_err(), "{bad}");
        }
        assert!(segment_name("0123abcd-000001").is_ok());
        for bad in ["../x-1", "abc", "-1", "a-", "a/b-1"] {
            assert!(segment_name(bad).is_err(), "{bad}");
        }
        assert_eq!(struct_plain_max(10, 1 << 30), STRUCT_FLOOR);
        assert_eq!(struct_plain_max(1 << 20, 1 << 30), 64 << 20);
        assert_eq!(struct_plain_max(usize::MAX, 1 << 30), 1 << 30);
    }
}
