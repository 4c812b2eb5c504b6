//! Entry points for the cargo-fuzz targets in `fuzz/` and for the corpus replay test
//! (`tests/fuzz_corpus.rs`): one function per target, each feeding arbitrary bytes to the real
//! decoders that read outside input. Not part of the library's API.
//!
//! Invariant under test: no function here panics, hangs or makes a huge allocation, whatever
//! `data` holds; decoders may only return errors. Sealed objects (pack headers, index segments,
//! manifests, checkpoint records, archive blocks) are sealed here with fixed test keys before
//! the real `open` runs, because a write-key holder has the data keys and can craft any
//! plaintext: what is fuzzed is the plaintext parser behind the authentication. The first byte
//! of such inputs picks how: odd seals the rest as a codec frame the fuzzer controls (codec
//! byte, zstd frame and all), even compresses the rest first as the library does.

use crate::access::{AccessKeys, Perm, Signed, Verifiers};
use crate::archive::{decode_nodes, Root};
use crate::crypto::{seal_object, BlockId, Keys};
use crate::manifest::{ArchiveRef, Checkpoint, Manifest};
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

/// The pack, transaction and generation every sealed input is bound to.
pub const PACK: &str = "00000000000000000000000000000000/00000000";
pub const SEGMENT: &str = "00000000000000000000000000000000-000000";
pub const TXN: &str = "00000000000000000000000000000000";
pub const GEN: u64 = 1;
/// The archive name `archive_meta` expects in the root (a crafted root may name any other).
pub const ARCHIVE: &str = "fuzz";
/// Separates an `archive_meta` input into its root and metadata blocks.
pub const SPLIT: &[u8] = b"\n--block--\n";

/// The fixed keys all sealed inputs use (the corpus generator seals with the same ones).
pub fn keys() -> Keys {
    Keys::new([1; 32], [2; 32], 3)
}

/// The fixed access keys signed inputs use (the corpus generator signs with the same ones).
pub fn access() -> AccessKeys {
    AccessKeys::derive(&[4; 32])
}

/// Seals `data[1..]` bound to `ad` as the first byte says (see the module comment).
fn seal(keys: &Keys, ad: &[u8], data: &[u8]) -> Vec<u8> {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => keys.seal(ad, rest),
        Some((_, rest)) => seal_object(keys, ad, rest),
        None => Vec::new(),
    }
}

/// The corpus form of a plaintext: the mode byte that makes `seal` compress it.
pub fn sealed_input(plain: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(plain);
    out
}

/// A pack: its trailer read from raw bytes, and its header opened and decoded.
pub fn pack_header(data: &[u8]) {
    let _ = crate::pack::header_len_from_trailer(data);
    let k = keys();
    let ad = format!("archiver pack header {PACK}").into_bytes();
    let sealed = seal(&k, &ad, data);
    // The trailer names the header's length: the last bytes of a pack as the reader sees them.
    let mut pack = sealed.clone();
    pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    pack.extend_from_slice(b"ARCPACK1");
    let tail = &pack[pack.len().saturating_sub(crate::pack::TRAILER_LEN)..];
    if let Ok(n) = crate::pack::header_len_from_trailer(tail) {
        let start = (pack.len() - crate::pack::TRAILER_LEN).saturating_sub(n);
        let _ = crate::pack::parse_header(&k, PACK, &pack[start..pack.len() - crate::pack::TRAILER_LEN]);
    }
}

/// An index segment, opened and decoded.
pub fn index_segment(data: &[u8]) {
    let k = keys();
    let ad = format!("archiver index {SEGMENT}").into_bytes();
    if let Ok(seg) = crate::index::Segment::open(&k, SEGMENT, &seal(&k, &ad, data)) {
        let _ = seg.block_count();
    }
}

/// A manifest of generation `GEN`, opened and decoded, then looked up as the client does.
pub fn manifest(data: &[u8]) {
    let k = keys();
    let ad = format!("archiver manifest {GEN}").into_bytes();
    if let Ok(m) = Manifest::open(&k, GEN, &seal(&k, &ad, data)) {
        for a in &m.archives {
            let _ = m.find(&a.name);
            let _ = crate::query::escape(a.name.as_bytes());
            let _ = crate::query::format_time(a.time);
        }
    }
}

/// A checkpoint record of transaction `TXN`, opened and decoded.
pub fn checkpoint(data: &[u8]) {
    let k = keys();
    let ad = format!("archiver checkpoint {TXN}").into_bytes();
    if let Ok(c) = Checkpoint::open(&k, TXN, &seal(&k, &ad, data)) {
        if let crate::manifest::Listed::Open(a) = &c.archive {
            let _ = crate::query::format_time(a.time);
        }
    }
}

/// The plain records a server and client exchange: a commit record (checked against its
/// BLAKE3 sum, which a writer computes as easily as we do: odd first byte appends the right
/// one), what a commit needs (`protocol::Route::need`), and the pending-transaction list.
pub fn commit_record(data: &[u8]) {
    let record = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => {
            let mut r = rest.to_vec();
            r.extend_from_slice(blake3::hash(rest).as_bytes());
            r
        }
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    };
    if let Ok(req) = crate::repo::CommitRequest::decode(&record) {
        let _ = req.deletes();
    }
    let _ = crate::repo::protocol::Route::Commit(TXN).need(&record);
    if let Ok(list) = crate::repo::decode_pending(data) {
        for p in list {
            let _ = p.checkpoint_seqs.iter().max();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::layout::parse(text);
        let _ = crate::layout::needed_by_checkpoint(text, 1);
    }
}

/// Archive metadata as a write-key holder could craft it: `data` is a root block, then
/// metadata blocks, separated by `SPLIT`. Each is sealed as a block and read back through
/// `reader::read_with` (a root's reference to an unknown id gets block `id[0] % n`), then the
/// root and stream are decoded directly, and the nodes formatted as `ls -v` shows them.
pub fn archive_meta(data: &[u8]) {
    let _ = Root::decode(data);
    let _ = decode_nodes(data);
    let k = keys();
    let parts = split(data);
    let mut store: HashMap<BlockId, (Vec<u8>, usize)> = HashMap::new();
    let mut ids = Vec::new();
    for p in &parts {
        let id = k.block_id(p);
        store.insert(id, (k.seal_block(&id, p), p.len()));
        ids.push(id);
    }
    let root = ArchiveRef {
        name: ARCHIVE.into(),
        root: ids[0],
        root_len: parts[0].len() as u32,
        time: 0,
        partial: false,
        stats: Default::default(),
    };
    let read = crate::reader::read_with(&root, |id| {
        // The real reader authenticates by id; an unknown id stands for the block it maps to.
        let real = if store.contains_key(id) { *id } else { ids[id[0] as usize % ids.len()] };
        let (sealed, len) = &store[&real];
        k.open_block(&real, sealed, *len)
    });
    if let Ok((_, nodes)) = read {
        for n in &nodes {
            let _ = crate::query::long_line(n);
        }
    }
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SPLIT.len()).position(|w| w == SPLIT) {
        out.push(&rest[..i]);
        rest = &rest[i + SPLIT.len()..];
    }
    out.push(rest);
    out
}

/// The text files a user or a server hands us: the key file, the config file (tarsnap's
/// format), the repository config (its lines and its access verifiers) and an access list.
pub fn text_files(data: &[u8]) {
    let _ = crate::keycheck::parse(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = crate::keyfile::parse(text) {
            let _ = k.access.describe();
        }
        let _ = crate::config::Config::default().parse(text, std::path::Path::new("fuzz.conf"));
        let _ = crate::access::list::parse(text);
    }
    if let Some(v) = Verifiers::from_config(data) {
        let _ = v.config_lines();
    }
}

/// The signature header as the server checks it: `data` is the server's clock (8 bytes,
/// milliseconds, little-endian), the `X-Archiver-Auth` value, a newline, then the body.
pub fn signature(data: &[u8]) {
    let Some((clock, rest)) = data.split_first_chunk::<8>() else { return };
    let now = UNIX_EPOCH.checked_add(Duration::from_millis(u64::from_le_bytes(*clock))).unwrap_or(UNIX_EPOCH);
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let v = access().verifiers();
    let _ = v.verify(Some(&header), &signed_request(body), now);
}

/// The request `signature` inputs are checked against (the corpus generator signs it).
pub fn signed_request(body: &[u8]) -> Signed<'_> {
    Signed { method: "PUT", path: "/v1/fuzz/txn/00/packs/0", range: "", lock: "t", body }
}

/// The permission the corpus generator signs `signature` inputs with.
pub const SIGNER: Perm = Perm::Write;

/// The server's parsing of a request before it touches a store: `data` is the method, the
/// path and query, and the Range header, one per line, then the body (`serve::parse_request`).
pub fn serve_request(data: &[u8]) {
    let mut lines = data.splitn(4, |&b| b == b'\n');
    let mut next = || String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let (method, url, range) = (next(), next(), next());
    let body = lines.next().unwrap_or_default();
    let _ = crate::serve::parse_request(&method, &url, &range, body);
}
