//! The names of a transaction's records under `txn/<txn>/`, in one place: the object store
//! (`objects`) writes and lists them, and the server's append-only rules (`serve::guard`) read
//! them.
//!
//! ```text
//! txn/<txn>/owner                 BLAKE3 of the secret of the client that began it (serve only)
//! txn/<txn>/begin                 the intent (sealed by the client); present while under way
//! txn/<txn>/checkpoint-<8 hex>    checkpoint records, numbered, each create-if-absent
//! txn/<txn>/covers-<8 hex>        what the transaction had stored when that checkpoint was
//!                                 recorded (written by `archiver serve`, plain)
//! txn/<txn>/commit                the commit decision
//! ```
//!
//! Invariant: no record is ever overwritten. Numbered checkpoints replace the single
//! `txn/<txn>/checkpoint` of format 1, which a writer could overwrite; it is still read (as
//! the oldest checkpoint) so a transaction interrupted by an older archiver is recovered.

/// Checkpoint `k`'s own pack is numbered `CHECKPOINT_PACK | k` and its own index segment
/// `CHECKPOINT_INDEX | k` (they hold the metadata tail and root of `NAME.part`, which only that
/// checkpoint needs); every other pack and segment of a transaction is numbered below these.
pub const CHECKPOINT_PACK: u32 = 0x8000_0000;
pub const CHECKPOINT_INDEX: u32 = 0x80_0000;

/// Whether stored object `key` (`packs/<txn>/<8 hex>` or `index/<txn>-<6 hex>`) is needed by
/// checkpoint `k` of its transaction: every ordinary pack and segment, and checkpoint `k`'s own.
pub fn needed_by_checkpoint(key: &str, k: u32) -> bool {
    let (seq, base) = if let Some(rest) = key.strip_prefix("packs/") {
        (rest.rsplit('/').next().and_then(|s| u32::from_str_radix(s, 16).ok()), CHECKPOINT_PACK)
    } else if let Some(rest) = key.strip_prefix("index/") {
        (rest.rsplit('-').next().and_then(|s| u32::from_str_radix(s, 16).ok()), CHECKPOINT_INDEX)
    } else {
        (None, 0)
    };
    match seq {
        Some(s) => s < base || s == base | k,
        None => true, // not ours to judge: keep it
    }
}

pub fn dir(txn: &str) -> String {
    format!("txn/{txn}/")
}

pub fn begin(txn: &str) -> String {
    format!("txn/{txn}/begin")
}

pub fn owner(txn: &str) -> String {
    format!("txn/{txn}/owner")
}

pub fn commit(txn: &str) -> String {
    format!("txn/{txn}/commit")
}

pub fn checkpoint(txn: &str, seq: u32) -> String {
    format!("txn/{txn}/checkpoint-{seq:08x}")
}

pub fn covers(txn: &str, seq: u32) -> String {
    format!("txn/{txn}/covers-{seq:08x}")
}

/// The format-1 single checkpoint record.
pub fn legacy_checkpoint(txn: &str) -> String {
    format!("txn/{txn}/checkpoint")
}

/// What one key under `txn/` is.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Owner,
    Begin,
    Commit,
    /// A checkpoint record; `None` is the format-1 unnumbered one (older than any numbered one).
    Checkpoint(Option<u32>),
    Covers(u32),
    Other(&'a str),
}

/// Splits `txn/<txn>/<record>` into the transaction and the record; None for other keys.
pub fn parse(key: &str) -> Option<(&str, Record<'_>)> {
    let rest = key.strip_prefix("txn/")?;
    let (txn, what) = rest.split_once('/')?;
    let seq = |s: &str| (s.len() == 8).then(|| u32::from_str_radix(s, 16).ok()).flatten();
    let rec = match what {
        "owner" => Record::Owner,
        "begin" => Record::Begin,
        "commit" => Record::Commit,
        "checkpoint" => Record::Checkpoint(None),
        w => match (w.strip_prefix("checkpoint-"), w.strip_prefix("covers-")) {
            (Some(s), _) if seq(s).is_some() => Record::Checkpoint(seq(s)),
            (_, Some(s)) if seq(s).is_some() => Record::Covers(seq(s).unwrap_or_default()),
            _ => Record::Other(w),
        },
    };
    Some((txn, rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        assert_eq!(parse(&checkpoint("ab", 0x1f)), Some(("ab", Record::Checkpoint(Some(0x1f)))));
        assert_eq!(parse(&legacy_checkpoint("ab")), Some(("ab", Record::Checkpoint(None))));
        assert_eq!(parse(&covers("ab", 3)), Some(("ab", Record::Covers(3))));
        assert_eq!(parse(&begin("ab")), Some(("ab", Record::Begin)));
        assert_eq!(parse("txn/ab/checkpoint-zz"), Some(("ab", Record::Other("checkpoint-zz"))));
        assert_eq!(parse("packs/ab/00000000"), None);
    }

    #[test]
    fn a_checkpoint_needs_ordinary_objects_and_its_own() {
        assert!(needed_by_checkpoint("packs/ab/0000001f", 2));
        assert!(needed_by_checkpoint("packs/ab/80000002", 2));
        assert!(!needed_by_checkpoint("packs/ab/80000001", 2));
        assert!(needed_by_checkpoint("index/ab-000003", 2));
        assert!(needed_by_checkpoint("index/ab-800002", 2));
        assert!(!needed_by_checkpoint("index/ab-800000", 2));
    }
}
