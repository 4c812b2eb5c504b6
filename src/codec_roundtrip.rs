//! Unit round-trip tests for every codec of stored and exchanged objects: what is written is read
//! back equal, with the same keys and names it was sealed under, and refused under another name
//! (each sealed object binds its name in the AEAD associated data, so an object moved to another
//! name cannot be passed off as that one). Covers the manifest (with and without damage marks),
//! the checkpoint record, an index segment, a pack header, the commit request and the pending
//! list; the archive metadata has its own in `archive.rs`.

use crate::archive::Stats;
use crate::crypto::{BlockId, Keys};
use crate::index::Segment;
use crate::manifest::{ArchiveRef, Checkpoint, Listed, Manifest};
use crate::pack::{Entry, Kind, PackBuilder};
use crate::repo::{decode_pending, encode_pending, CommitRequest, Pending};

fn keys() -> Keys {
    Keys::new([1; 32], [2; 32], 3)
}

/// Format 2 keys: a full key and the write key made from it (no data-secret).
fn keys2() -> (Keys, Keys) {
    let (full, _) = Keys::generate().unwrap();
    let d = full.data.as_ref().unwrap();
    let write = full.clone().with_data(crate::crypto::datakeys::DataKeys::new(d.public, d.psk, None));
    (full, write)
}

fn id(n: u8) -> BlockId {
    [n; 32]
}

fn archive(name: &str, partial: bool) -> ArchiveRef {
    let stats =
        Stats { files: 3, dirs: 1, symlinks: 1, raw: 1 << 40, stored: 12345, new_raw: 7, new_stored: 5 };
    ArchiveRef { name: name.into(), root: id(9), root_len: 4096, time: -5, partial, stats }
}

fn same_entries(a: &[Entry], b: &[Entry]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            (x.id, x.kind, x.offset, x.len, x.plain_len) == (y.id, y.kind, y.offset, y.len, y.plain_len)
        })
}

#[test]
fn manifests_round_trip_with_and_without_damage_marks() {
    let k = keys();
    for damaged in [vec![], vec![(id(4), "ab/00000001".to_string()), (id(5), "cd/00000002".into())]] {
        let m = Manifest {
            gen: 7,
            txn: "0123abcd".into(),
            archives: vec![archive("a", false), archive("b.part", true)],
            indexes: vec!["0123abcd-000001".into()],
            damaged: damaged.clone(),
            hidden: Vec::new(),
        };
        let back = Manifest::open(&k, 7, &m.seal(&k)).unwrap();
        assert_eq!(
            (back.gen, &back.txn, &back.archives, &back.indexes),
            (7, &m.txn, &m.archives, &m.indexes)
        );
        assert_eq!(back.damaged, damaged);
        assert!(Manifest::open(&k, 8, &m.seal(&k)).is_err(), "a manifest opens only as its own generation");
    }
    let empty = Manifest::default();
    assert!(Manifest::open(&keys(), 0, &empty.seal(&keys())).unwrap().archives.is_empty());
}

#[test]
fn format_2_manifests_hide_references_from_write_keys_who_carry_them_on() {
    let (full, write) = keys2();
    let m = Manifest {
        gen: 3,
        txn: "ab".into(),
        archives: vec![archive("a", false), archive("b.part", true), archive("b.part.2", true)],
        indexes: vec!["ab-000001".into()],
        ..Default::default()
    };
    let sealed = m.seal(&full.for_transaction());
    let seen = Manifest::open(&write, 3, &sealed).unwrap();
    assert!(seen.archives.is_empty() && seen.hidden.len() == 3);
    assert!(seen.holds(&write, "a") && seen.holds(&write, "b.part.2") && !seen.holds(&write, "b"));
    // The write key commits the next generation with one archive of its own.
    let mut next = Manifest { gen: 4, ..seen };
    next.insert(archive("c", false));
    let back = Manifest::open(&full, 4, &next.seal(&write.for_transaction())).unwrap();
    let names: Vec<&str> = back.archives.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a", "b.part", "b.part.2", "c"]);
    assert_eq!(back.archives[1], m.archives[1]);
    assert!(Manifest::open(&keys(), 3, &sealed).is_err(), "format 1 keys refuse a format 2 manifest");
    let plain = crate::crypto::open_object(&full, b"archiver manifest 3", &sealed, 1 << 20).unwrap();
    assert!(!plain.windows(6).any(|w| w == b"b.part"), "names are not in the writers' envelope");
}

#[test]
fn checkpoint_records_round_trip() {
    let k = keys();
    let c = Checkpoint {
        archive: Listed::Open(archive("nightly.part", true)),
        indexes: vec!["aa-000001".into(), "aa-000002".into()],
        packs: vec!["aa/00000001".into(), "aa/80000000".into()],
    };
    let back = Checkpoint::open(&k, "aa", &c.seal(&k, "aa")).unwrap();
    assert_eq!(
        (back.archive, back.indexes, back.packs),
        (c.archive.clone(), c.indexes.clone(), c.packs.clone())
    );
    assert!(Checkpoint::open(&k, "bb", &c.seal(&k, "aa")).is_err(), "bound to its transaction");
    let (full, write) = keys2();
    let hidden = Checkpoint::open(&write, "aa", &c.seal(&write, "aa")).unwrap();
    let Listed::Hidden(h) = &hidden.archive else { panic!("a write key opens no reference") };
    assert_eq!(h.key(), (crate::manifest::sealed::base_tag(&write, "nightly"), 1));
    assert_eq!(Checkpoint::open(&full, "aa", &hidden.seal(&write, "aa")).unwrap().archive, c.archive);
}

#[test]
fn index_segments_round_trip() {
    let k = keys();
    let entries = vec![
        Entry { id: id(1), kind: Kind::Data, offset: 0, len: 341, plain_len: 300 },
        Entry { id: id(2), kind: Kind::Meta, offset: 341, len: 45, plain_len: 4 },
    ];
    let s =
        Segment { packs: vec![("aa/00000001".into(), entries.clone()), ("aa/00000002".into(), Vec::new())] };
    let back = Segment::open(&k, "aa-000001", &s.seal(&k, "aa-000001")).unwrap();
    assert_eq!(back.packs.len(), 2);
    assert_eq!(back.packs[0].0, "aa/00000001");
    assert!(same_entries(&back.packs[0].1, &entries) && back.packs[1].1.is_empty());
    assert!(Segment::open(&k, "aa-000002", &s.seal(&k, "aa-000001")).is_err(), "bound to its name");
}

#[test]
fn pack_headers_round_trip() {
    let k = keys();
    let mut b = PackBuilder::default();
    let blocks: Vec<_> = [(Kind::Data, vec![7u8; 1000]), (Kind::Meta, vec![8u8; 10])]
        .into_iter()
        .map(|(kind, data)| {
            let i = k.block_id(&data);
            (i, kind, k.seal_block(&i, &data), data.len() as u32)
        })
        .collect();
    for (i, kind, sealed, plain) in &blocks {
        b.add(*i, *kind, sealed, *plain).unwrap();
    }
    let (bytes, entries) = b.finish_in_memory(&k, "aa/00000001");
    let trailer = crate::pack::TRAILER_LEN;
    let hlen = crate::pack::header_len_from_trailer(&bytes).unwrap();
    let header = &bytes[bytes.len() - trailer - hlen..bytes.len() - trailer];
    let parsed = crate::pack::parse_header(&k, "aa/00000001", header).unwrap();
    assert!(same_entries(&parsed, &entries));
    for (e, (i, kind, sealed, plain)) in parsed.iter().zip(&blocks) {
        assert_eq!((e.id, e.kind, e.len as usize, e.plain_len), (*i, *kind, sealed.len(), *plain));
        assert_eq!(&bytes[e.offset as usize..e.offset as usize + e.len as usize], &sealed[..]);
    }
    assert!(crate::pack::parse_header(&k, "aa/00000002", header).is_err(), "bound to its name");
}

#[test]
fn commit_requests_round_trip_and_refuse_damage() {
    let c = CommitRequest {
        gen: 3,
        manifest: vec![1, 2, 3],
        keep_packs: vec!["aa/00000001".into()],
        keep_indexes: vec!["aa-000001".into()],
        delete_packs: vec!["bb/00000001".into()],
        delete_indexes: vec!["bb-000001".into()],
        keep_history: true,
    };
    let bytes = c.encode();
    assert_eq!(CommitRequest::decode(&bytes).unwrap(), c);
    let mut flipped = bytes.clone();
    flipped[2] ^= 1;
    assert!(CommitRequest::decode(&flipped).is_err(), "a damaged record is refused, never obeyed");
    assert!(CommitRequest::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn pending_lists_round_trip() {
    let mut p = Pending::new("aa");
    p.intent = Some(b"create x".to_vec());
    p.checkpoint = Some(vec![9; 40]);
    p.checkpoint_seqs = vec![0, 1, 5];
    p.committing = true;
    let list = vec![p, Pending::new("bb")];
    let back = decode_pending(&encode_pending(&list)).unwrap();
    assert_eq!(back.len(), 2);
    for (a, b) in back.iter().zip(&list) {
        let key = |p: &Pending| {
            (p.txn.clone(), p.intent.clone(), p.checkpoint.clone(), p.checkpoint_seqs.clone(), p.committing)
        };
        assert_eq!(key(a), key(b));
    }
    assert!(decode_pending(&[0xff]).is_err());
}
