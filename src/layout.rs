//! The repository layout: the name of every object a repository holds, in one place. Names are
//! bound into the sealed objects' associated data (a pack header to its pack name, a segment to
//! its segment name, a manifest to its generation), so the writer (`txn`), the object store
//! (`repo::objects`), the server's append-only rules (`serve::guard`) and recovery must build
//! them identically: they all call these functions, and nothing else spells a name.
//!
//! ```text
//! config                          plain: format version, repository id, key check
//! lock                            single-writer lock (local: flock)
//! manifest/<gen, 16 hex>          sealed manifest; the highest generation is current
//! packs/<txn>/<seq, 8 hex>        packs, grouped by the transaction that wrote them; the pack's
//!                                 name is `<txn>/<seq>` (what its header is sealed to)
//! index/<txn>-<seq, 6 hex>        sealed index segments; the segment's name is `<txn>-<seq>`
//! txn/<txn>/owner                 BLAKE3 of the secret of the client that began it (serve only)
//! txn/<txn>/begin                 the intent (sealed by the client); present while under way
//! txn/<txn>/checkpoint-<8 hex>    checkpoint records, numbered, each create-if-absent
//! txn/<txn>/covers-<8 hex>        what the transaction had stored when that checkpoint was
//!                                 recorded (written by `archiver serve`, plain)
//! txn/<txn>/commit                the commit record: what the commit changes (its manifest, what
//!                                 it keeps and deletes), stored before the decision
//! decided/<txn>                   the decision, create-if-absent: `commit` or `abort`, whoever
//!                                 creates it first wins; kept for good (a tombstone), so a
//!                                 writer paused past its lease cannot commit what a recovery
//!                                 discarded (`repo::decision`)
//! ```
//!
//! Invariants: every object a transaction uploads carries its id in the name, so recovery finds
//! what a dead transaction left by listing its own prefixes (`packs_of`, `segments_of`, `records_of`),
//! never by scanning the repository. No record is ever overwritten, and a decision is never deleted. Numbered checkpoints replace
//! the single `txn/<txn>/checkpoint` of format 1, which a writer could overwrite; it is still read
//! (as the oldest checkpoint) so a transaction interrupted by an older archiver is recovered.
//! This module is a leaf: it uses no other module of the crate.

/// The repository's plain configuration object.
pub const CONFIG: &str = "config";
/// The local single-writer lock file.
pub const LOCK: &str = "lock";
/// Prefixes of the four kinds of objects.
pub const MANIFESTS: &str = "manifest/";
pub const PACKS: &str = "packs/";
pub const INDEXES: &str = "index/";
pub const TXNS: &str = "txn/";
pub const DECISIONS: &str = "decided/";

/// `manifest/<gen>`: the sealed manifest of generation `gen`.
pub fn manifest(gen: u64) -> String {
    format!("{MANIFESTS}{gen:016x}")
}

/// Where the access lists live (`access::list`): `access/<gen>`, created once each.
pub const ACCESS: &str = "access/";

pub fn access(gen: u64) -> String {
    format!("{ACCESS}{gen:016x}")
}

/// The generation an `access/<gen>` key names.
pub fn access_gen_of(key: &str) -> Option<u64> {
    u64::from_str_radix(key.strip_prefix(ACCESS)?, 16).ok()
}

/// The generation a `manifest/<gen>` key names.
pub fn gen_of(key: &str) -> Option<u64> {
    u64::from_str_radix(key.strip_prefix(MANIFESTS)?, 16).ok()
}

/// The name of pack `seq` of transaction `txn` (what its header is sealed to).
pub fn pack_name(txn: &str, seq: u32) -> String {
    format!("{txn}/{seq:08x}")
}

/// The key of the pack named `name`.
pub fn pack_key(name: &str) -> String {
    format!("{PACKS}{name}")
}

/// The prefix of every pack of transaction `txn`.
pub fn packs_of(txn: &str) -> String {
    format!("{PACKS}{txn}/")
}

/// The name of index segment `seq` of transaction `txn` (what it is sealed to).
pub fn segment_name(txn: &str, seq: u32) -> String {
    format!("{txn}-{seq:06x}")
}

/// The key of the index segment named `name`.
pub fn segment_key(name: &str) -> String {
    format!("{INDEXES}{name}")
}

/// The prefix of every index segment of transaction `txn`.
pub fn segments_of(txn: &str) -> String {
    format!("{INDEXES}{txn}-")
}

/// Whether the pack named `name` was stored by transaction `txn`.
pub fn is_pack_of(name: &str, txn: &str) -> bool {
    name.strip_prefix(txn).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether the index segment named `name` was stored by transaction `txn`.
pub fn is_segment_of(name: &str, txn: &str) -> bool {
    name.strip_prefix(txn).is_some_and(|rest| rest.starts_with('-'))
}

/// The name under `prefix` (`PACKS` or `INDEXES`) that `key` holds, if it is one.
pub fn name_of<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix)
}

/// Checkpoint `k`'s own pack is numbered `CHECKPOINT_PACK | k` and its own index segment
/// `CHECKPOINT_INDEX | k` (they hold the metadata tail and root of `NAME.part`, which only that
/// checkpoint needs); every other pack and segment of a transaction is numbered below these.
pub const CHECKPOINT_PACK: u32 = 0x8000_0000;
pub const CHECKPOINT_INDEX: u32 = 0x80_0000;

/// Whether stored object `key` (`packs/<txn>/<8 hex>` or `index/<txn>-<6 hex>`) is needed by
/// checkpoint `k` of its transaction: every ordinary pack and segment, and checkpoint `k`'s own.
pub fn needed_by_checkpoint(key: &str, k: u32) -> bool {
    let (seq, base) = if let Some(rest) = key.strip_prefix(PACKS) {
        (rest.rsplit('/').next().and_then(|s| u32::from_str_radix(s, 16).ok()), CHECKPOINT_PACK)
    } else if let Some(rest) = key.strip_prefix(INDEXES) {
        (rest.rsplit('-').next().and_then(|s| u32::from_str_radix(s, 16).ok()), CHECKPOINT_INDEX)
    } else {
        (None, 0)
    };
    match seq {
        Some(s) => s < base || s == base | k,
        None => true, // not ours to judge: keep it
    }
}

/// The prefix of every record of transaction `txn`.
pub fn records_of(txn: &str) -> String {
    format!("{TXNS}{txn}/")
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

/// `decided/<txn>`: the transaction's decision, outside `txn/` so that listing pending
/// transactions never lists the tombstones of finished ones.
pub fn decision(txn: &str) -> String {
    format!("{DECISIONS}{txn}")
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
    let rest = key.strip_prefix(TXNS)?;
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
    fn object_names_agree() {
        let (pack, seg) = (pack_name("ab", 0x1f), segment_name("ab", 3));
        assert_eq!((pack.as_str(), seg.as_str()), ("ab/0000001f", "ab-000003"));
        assert!(pack_key(&pack).starts_with(&packs_of("ab")));
        assert!(segment_key(&seg).starts_with(&segments_of("ab")));
        assert_eq!(name_of(PACKS, &pack_key(&pack)), Some(pack.as_str()));
        assert!(is_pack_of(&pack, "ab") && !is_pack_of(&pack, "a") && !is_pack_of(&seg, "ab"));
        assert!(is_segment_of(&seg, "ab") && !is_segment_of(&seg, "a") && !is_segment_of(&pack, "ab"));
        assert_eq!(gen_of(&manifest(0x2a)), Some(0x2a));
        assert!(needed_by_checkpoint(&pack_key(&pack_name("ab", CHECKPOINT_PACK | 2)), 2));
        assert!(!needed_by_checkpoint(&segment_key(&segment_name("ab", CHECKPOINT_INDEX | 1)), 2));
    }

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
