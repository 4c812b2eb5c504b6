//! Issue 11, finding 6: a small archive must not exhaust the client's memory. Archives are
//! crafted through the library, as any holder of the write key could: a root that lists one
//! 4 MiB metadata block 2,000 times (8 GiB of metadata from a repository of a few hundred KiB),
//! and an index entry that claims a 1 GiB block in a pack that really is 1 GiB (sparse). The real
//! binary must refuse them in one line naming the archive or segment, with its peak resident
//! memory measured by the kernel under 300 MB, and must still read the same block listed the
//! most times the limits allow within that bound.

mod util;

use archiver::archive::NodeKind;
use archiver::codec::Writer;
use archiver::crypto::BlockId;
use archiver::index::Segment;
use archiver::pack::{Entry, Kind};
use util::craft::{commit_archive, node};
use util::mem::run_measured;
use util::*;

const RSS_BOUND: u64 = 300 << 20;

/// One metadata block of nearly 4 MiB (the chunker's maximum) of small directory nodes.
fn big_meta_block() -> Vec<u8> {
    let mut w = Writer::new();
    for i in 0.. {
        let mut one = Writer::new();
        node(format!("d{i:07}").into_bytes(), NodeKind::Dir).encode(&mut one);
        if w.buf.len() + one.buf.len() > archiver::chunker::MAX {
            break;
        }
        w.buf.extend_from_slice(&one.buf);
    }
    w.finish()
}

#[test]
fn a_root_listing_one_metadata_block_2000_times_is_refused_within_bounded_memory() {
    let env = Env::new();
    small_tree(&env.path("tree"), 1, 10, 50_000);
    env.create("other", &["tree"]);
    let block = big_meta_block();
    commit_archive(&env, "big", std::slice::from_ref(&block), vec![0; 2000], Segment::default());
    // The most repetition the limits allow is read, within the same bound.
    commit_archive(&env, "four", std::slice::from_ref(&block), vec![0; 4], Segment::default());
    assert!(env.repo_size() < 4 << 20, "the repository holds {} bytes", env.repo_size());
    env.ok(["stats"]); // the cache catches up with the crafted commits (a notice of its own)

    let out_dir = env.fresh_dir("out");
    let commands: [&[&str]; 4] = [
        &["ls", "big"],
        &["extract", "big", "-C", out_dir.to_str().unwrap()],
        &["fsck"],
        &["delete", "other"],
    ];
    for args in commands {
        let (out, rss) = run_measured(&env, args);
        eprintln!("{args:?}: peak RSS {} MiB; {}", rss >> 20, out.stderr.trim_end());
        out.assert_one_line_error(1);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(said.contains("archive \"big\" cannot be read"), "{args:?} should name the archive:\n{said}");
        assert!(said.contains("damaged or hostile"), "{args:?} should say why:\n{said}");
        assert!(rss < RSS_BOUND, "{args:?} peaked at {} MiB", rss >> 20);
    }
    assert_eq!(env.list(), vec!["big", "four", "other"], "the refused delete changed nothing");

    let (out, rss) = run_measured(&env, &["ls", "four"]);
    eprintln!("ls four: peak RSS {} MiB", rss >> 20);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let nodes = archiver::archive::decode_nodes(&block).unwrap().len();
    assert_eq!(out.stdout.lines().count(), 4 * nodes);
    assert!(rss < RSS_BOUND, "ls four peaked at {} MiB", rss >> 20);
}

#[test]
fn an_index_entry_claiming_a_1_gib_block_is_refused() {
    let env = Env::new();
    // The archive's one file lists block X (4 MiB, as metadata may); the index places X in a pack
    // the crafter stored beside its own, 1 GiB long, and says X is all of it.
    let x: BlockId = [0xab; 32];
    let mut file = node(b"f".to_vec(), NodeKind::File);
    file.size = 4 << 20;
    file.blocks = vec![(x, 4 << 20)];
    let mut w = Writer::new();
    file.encode(&mut w);
    let pack = format!("{}/00000000", "f".repeat(32));
    let path = env.repo.join("packs").join(&pack);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(&path).unwrap().set_len((1 << 30) + 4096).unwrap();
    let claim = Entry { id: x, kind: Kind::Data, offset: 0, len: 1 << 30, plain_len: 1 << 30 };
    let extra = Segment { packs: vec![(pack, vec![claim])] };
    commit_archive(&env, "a", &[w.finish()], vec![0], extra);

    let out_dir = env.fresh_dir("out");
    let (out, rss) = run_measured(&env, &["extract", "a", "-C", out_dir.to_str().unwrap()]);
    eprintln!("extract: peak RSS {} MiB; {}", rss >> 20, out.stderr.trim_end());
    out.assert_one_line_error(1);
    out.assert_stderr_contains("is damaged or hostile").assert_stderr_contains("1073741824");
    assert!(rss < RSS_BOUND, "extract peaked at {} MiB", rss >> 20);
}
