//! The fuzz corpus as a regression suite: every input kept under `fuzz/corpus/TARGET/` (and any
//! crash, leak or timeout input kept under `fuzz/artifacts/TARGET/` as a regression) is fed to
//! the same `archiver::fuzzing` function the cargo-fuzz target calls, so the ordinary test run
//! proves the decoders still refuse every input the fuzzer found interesting without panicking.
//!
//! `generate_seed_corpus` (ignored; run it with `--ignored`) writes the seeds: real objects
//! made through the library with the fuzzing module's fixed keys (a pack, an index segment, a
//! manifest, a checkpoint and commit record, a pending list, archive metadata, a key file, a
//! config file, a repository config, a signed request header, server requests).

use archiver::access::Perm;
use archiver::archive::{Node, NodeKind, Root};
use archiver::codec::Writer;
use archiver::fuzzing::{self as fz, keys, sealed_input};
use archiver::manifest::{ArchiveRef, Checkpoint, Manifest};
use archiver::pack::{Entry, Kind, PackBuilder};
use archiver::repo::{CommitRequest, Pending};
use std::path::{Path, PathBuf};

/// A target's name and the function its fuzz target calls.
type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] = &[
    ("pack_header", fz::pack_header),
    ("index_segment", fz::index_segment),
    ("manifest", fz::manifest),
    ("checkpoint", fz::checkpoint),
    ("commit_record", fz::commit_record),
    ("archive_meta", fz::archive_meta),
    ("text_files", fz::text_files),
    ("signature", fz::signature),
    ("serve_request", fz::serve_request),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn corpus_replays_without_panics() {
    let mut replayed = 0;
    let mut failed = Vec::new();
    for sub in ["corpus", "artifacts"] {
        let Ok(dirs) = std::fs::read_dir(fuzz_dir().join(sub)) else { continue };
        for dir in dirs {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let f = TARGETS.iter().find(|(t, _)| *t == name).unwrap_or_else(|| {
                panic!("{} is not a fuzz target this test knows: add it to TARGETS", dir.display())
            });
            for file in std::fs::read_dir(&dir).unwrap() {
                let path = file.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                if std::panic::catch_unwind(|| (f.1)(&data)).is_err() {
                    failed.push(path.display().to_string());
                }
                replayed += 1;
            }
        }
    }
    assert!(failed.is_empty(), "these inputs panicked: {failed:?}");
    // Every target has a corpus: an empty or missing one would make this test prove nothing.
    for (t, _) in TARGETS {
        let n = std::fs::read_dir(fuzz_dir().join("corpus").join(t)).map(|d| d.count()).unwrap_or(0);
        assert!(n > 0, "fuzz/corpus/{t} is empty or missing");
    }
    assert!(replayed >= TARGETS.len());
}

/// Plaintext of a sealed object, in both corpus forms (compressed by `seal`, or as the frame).
fn both_forms(ad: &str, sealed: &[u8]) -> Vec<Vec<u8>> {
    let k = keys();
    let plain = archiver::crypto::open_object(&k, ad.as_bytes(), sealed, 1 << 30).unwrap();
    let mut frame = vec![1];
    frame.extend_from_slice(&k.open(ad.as_bytes(), sealed).unwrap());
    vec![sealed_input(&plain), frame]
}

fn archive_ref(name: &str) -> ArchiveRef {
    ArchiveRef {
        name: name.into(),
        root: [9; 32],
        root_len: 120,
        time: 1_795_305_600,
        partial: name.ends_with(".part"),
        stats: Default::default(),
    }
}

fn node(path: &str, kind: NodeKind) -> Node {
    Node {
        path: path.as_bytes().to_vec(),
        kind,
        mode: if kind == NodeKind::Dir { 0o40755 } else { 0o104755 },
        uid: 1000,
        gid: 1000,
        mtime: 1_795_305_600,
        mtime_ns: 5,
        size: if kind == NodeKind::File { 70_000 } else { 0 },
        blocks: if kind == NodeKind::File { vec![([5; 32], 65_536), ([6; 32], 4_464)] } else { vec![] },
        target: if kind == NodeKind::Symlink { b"../x/y".to_vec() } else { vec![] },
        partial: false,
        rdev: 0,
        xattrs: Vec::new(),
        uname: if kind == NodeKind::File { b"alice".to_vec() } else { vec![] },
        gname: if kind == NodeKind::File { b"staff".to_vec() } else { vec![] },
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let k = keys();
    let mut out: Vec<(&str, Vec<u8>)> = Vec::new();
    let entries = |n: u8| -> Vec<Entry> {
        (0..n)
            .map(|i| Entry { id: [i; 32], kind: Kind::Data, offset: 0, len: 100 + i as u32, plain_len: 90 })
            .collect()
    };

    // A real pack; its header in both forms, and its last bytes for the raw trailer reader.
    let mut b = PackBuilder::default();
    for i in 0..3u8 {
        let data = vec![i; 1000];
        let id = k.block_id(&data);
        b.add(id, if i == 2 { Kind::Root } else { Kind::Meta }, &k.seal_block(&id, &data), 1000).unwrap();
    }
    let (pack, _) = b.finish_in_memory(&k, fz::PACK);
    let tail = &pack[pack.len() - archiver::pack::TRAILER_LEN..];
    let n = archiver::pack::header_len_from_trailer(tail).unwrap();
    let header =
        &pack[pack.len() - archiver::pack::TRAILER_LEN - n..pack.len() - archiver::pack::TRAILER_LEN];
    for s in both_forms(&format!("archiver pack header {}", fz::PACK), header) {
        out.push(("pack_header", s));
    }
    out.push(("pack_header", tail.to_vec()));

    let seg = archiver::index::Segment {
        packs: vec![(fz::PACK.into(), entries(3)), ("ab/00000001".into(), entries(1))],
    };
    for s in both_forms(&format!("archiver index {}", fz::SEGMENT), &seg.seal(&k, fz::SEGMENT)) {
        out.push(("index_segment", s));
    }

    let m = Manifest {
        gen: fz::GEN,
        txn: fz::TXN.into(),
        archives: vec![archive_ref("a"), archive_ref("b.part"), archive_ref("nightly-2026-11-22")],
        indexes: vec![fz::SEGMENT.into(), "ab-000001".into()],
        hidden: Vec::new(),
        damaged: vec![([5; 32], "ab/00000001".into())],
    };
    for s in both_forms(&format!("archiver manifest {}", fz::GEN), &m.seal(&k)) {
        out.push(("manifest", s));
    }

    let c = Checkpoint {
        archive: archiver::manifest::Listed::Open(archive_ref("a.part")),
        indexes: vec![fz::SEGMENT.into()],
        packs: vec![fz::PACK.into(), "ab/80000001".into()],
    };
    for s in both_forms(&format!("archiver checkpoint {}", fz::TXN), &c.seal(&k, fz::TXN)) {
        out.push(("checkpoint", s));
    }

    // Commit records: whole (sum included), and without the sum for the mode that appends it.
    let req = CommitRequest {
        gen: 2,
        manifest: vec![7; 40],
        keep_packs: vec![fz::PACK.into()],
        keep_indexes: vec![fz::SEGMENT.into()],
        delete_packs: vec!["ab/00000000".into()],
        delete_indexes: vec![],
        keep_history: true,
    };
    let rec = req.encode();
    out.push(("commit_record", [&[0u8][..], &rec].concat()));
    out.push(("commit_record", [&[1u8][..], &rec[..rec.len() - 32]].concat()));
    let mut p = Pending::new(fz::TXN);
    p.intent = Some(vec![1; 30]);
    p.checkpoint = Some(vec![2; 30]);
    p.checkpoint_seqs = vec![0, 1, 2];
    out.push(("commit_record", archiver::repo::encode_pending(&[p, Pending::new("ab")])));
    out.push(("commit_record", format!("txn/{}/checkpoint-00000001", fz::TXN).into_bytes()));

    // Archive metadata: a root naming two metadata blocks, then the blocks (nodes in path order).
    let mut blocks = Vec::new();
    for group in [
        vec![node(".", NodeKind::Dir), node("d", NodeKind::Dir)],
        vec![node("d/f", NodeKind::File), node("d/l", NodeKind::Symlink)],
        // The later kinds and flags: a hard link, a FIFO, a device, extended attributes.
        vec![
            Node { target: b"d/f".to_vec(), ..node("d/h", NodeKind::Hardlink) },
            node("d/p", NodeKind::Fifo),
            Node {
                rdev: 0x0103,
                xattrs: vec![
                    (b"system.posix_acl_access".to_vec(), vec![2, 0, 0, 0]),
                    (b"user.a".to_vec(), b"v".to_vec()),
                ],
                ..node("d/z", NodeKind::CharDev)
            },
        ],
    ] {
        let mut w = Writer::new();
        for n in &group {
            n.encode(&mut w);
        }
        blocks.push(w.finish());
    }
    let root = Root {
        name: fz::ARCHIVE.into(),
        time: 1_795_305_600,
        host: "host".into(),
        meta: blocks.iter().map(|b| (k.block_id(b), b.len() as u32)).collect(),
        command: Vec::new(),
    };
    let mut meta = root.encode();
    for b in &blocks {
        meta.extend_from_slice(fz::SPLIT);
        meta.extend_from_slice(b);
    }
    out.push(("archive_meta", meta));

    // Text files: a key file as keygen writes it, the sample config, a repository config.
    let dir = tempfile::tempdir().unwrap();
    let kf = archiver::keyfile::KeyFile { keys: k.clone(), access: fz::access() };
    archiver::keyfile::write_new(&dir.path().join("key"), &kf, None).unwrap();
    out.push(("text_files", std::fs::read(dir.path().join("key")).unwrap()));
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tarsnap.conf.sample");
    out.push(("text_files", std::fs::read(sample).unwrap()));
    out.push((
        "text_files",
        archiver::session::config_bytes(&kf, "0123456789abcdef", archiver::chunker::Keying::CURRENT),
    ));

    // A signed header with the server's clock at the signing time.
    let body = b"pack bytes";
    let h = kf.access.sign(&[fz::SIGNER], &fz::signed_request(body)).unwrap();
    let ms: u64 = h.split(' ').nth(1).unwrap().parse().unwrap();
    out.push(("signature", [&ms.to_le_bytes()[..], h.as_bytes(), b"\n", body].concat()));
    let h = kf.access.sign(&[Perm::Read], &fz::signed_request(b"")).unwrap();
    out.push(("signature", [&ms.to_le_bytes()[..], h.as_bytes(), b"\n"].concat()));

    for r in [
        format!("PUT\n/v1/fuzz/txn/{}/packs/0000000a\n\nbody", fz::TXN).into_bytes(),
        b"GET\n/v1/fuzz/packs/ab/00000000\nbytes=5-9\n".to_vec(),
        b"POST\n/v1/fuzz/lock?owner=host%20pid+1%zz%4\n\n".to_vec(),
        b"GET\n/v1/fuzz/manifest/12\n\n".to_vec(),
        [format!("POST\n/v1/fuzz/txn/{}/commit\n\n", fz::TXN).as_bytes(), &rec].concat(),
    ] {
        out.push(("serve_request", r));
    }
    out
}

/// Writes the seed corpus (`cargo test --release --test fuzz_corpus -- --ignored`); names are
/// content hashes, as cargo-fuzz names what it finds, so re-running adds nothing twice.
#[test]
#[ignore = "writes the seed corpus into fuzz/corpus: run by hand when a target or its seeds change"]
fn generate_seed_corpus() {
    for (target, data) in seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("seed-{}", &blake3::hash(&data).to_hex()[..16]);
        std::fs::write(dir.join(name), &data).unwrap();
    }
}
