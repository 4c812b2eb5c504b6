//! fsck on a simulated index (issue 17: at 100M blocks, fsck within 300 MB): builds a local
//! repository whose index lists BLOCKS blocks (default 100,000,000) and one archive referencing
//! every one of them, then runs `archiver fsck` under `/usr/bin/time -v` and prints its peak RSS
//! and wall time.
//!
//! Storing 100M real blocks would take terabytes, so the blocks are simulated where fsck does not
//! read them: the index segments are real (sealed with the repository's key, 16,384 blocks each,
//! 1,024 blocks of 40,000 stored bytes per pack, as `create` writes them), and the packs they
//! name are sparse files of the size the index says. The archive is real: its metadata (about
//! 35 bytes per block reference, 3.5 GB at 100M) is stored and read like any other. fsck checks
//! the index against the packs' sizes, reloads the cache from the index, and looks up every
//! reference; it does not read the data blocks (no `--verify-data`).
//!
//! Usage: `cargo bench --bench fsck_index` (BLOCKS=n, OUT=dir, ARCHIVER=path to override; the
//! binary must be built: `cargo build --release`). Needs about 60 bytes of disk per block for
//! the segments and the metadata, and as much again for the cache fsck rebuilds.

use anyhow::{bail, Context, Result};
use archiver::archive::{Node, NodeKind};
use archiver::codec::Writer;
use archiver::index::Segment;
use archiver::pack::{Entry, Kind};
use archiver::session::{Session, Settings};
use archiver::txn::{Draft, Txn};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SEGMENT_BLOCKS: u64 = 16_384;
const PACK_BLOCKS: u64 = 1_024;
const STORED: u32 = 40_000;
const PLAIN: u32 = 65_536;
/// Block references per file node (a 256 MiB file).
const NODE_BLOCKS: u64 = 4_096;
/// The simulated transaction that "wrote" the simulated packs and segments.
const SIM_TXN: &str = "51a1";

fn id(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() -> Result<()> {
    let blocks: u64 = env_or("BLOCKS", "100000000").parse().context("BLOCKS must be a number")?;
    let out = PathBuf::from(env_or("OUT", "/tmp/fsck-index-bench"));
    let bin = PathBuf::from(env_or("ARCHIVER", "target/release/archiver"));
    anyhow::ensure!(bin.exists(), "{} is not built: run `cargo build --release` first", bin.display());
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let (repo, key, cache) = (out.join("repo"), out.join("key"), out.join("cache"));
    let base = |cmd: &mut Command| {
        cmd.arg("--keyfile").arg(&key).arg("--repo").arg(&repo).arg("--cachedir").arg(&cache);
    };
    let mut keygen = Command::new(&bin);
    base(&mut keygen);
    run(keygen.arg("keygen"))?;
    let settings = Settings {
        repo: repo.display().to_string(),
        keyfile: key.clone(),
        cachedir: cache.clone(),
        ca_cert: None,
        lock_wait: None,
        rates: Default::default(),
        passphrase: None,
    };
    let session = Session::open(&settings)?;

    let t = Instant::now();
    store_archive(&session, blocks)?;
    eprintln!("archive of {blocks} block references stored in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let names = store_index(&session, &repo, blocks)?;
    eprintln!("{} index segments and their packs written in {:.1} s", names.len(), t.elapsed().as_secs_f64());
    commit_index(&session, names)?;
    drop(session);

    let mut fsck = Command::new("/usr/bin/time");
    fsck.arg("-v").arg(&bin);
    base(&mut fsck);
    let o = fsck.arg("fsck").output().context("cannot run /usr/bin/time (apt-get install time)")?;
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let field = |name: &str| stderr.lines().find_map(|l| l.trim().strip_prefix(name).map(str::trim));
    let rss_kb: u64 = field("Maximum resident set size (kbytes):").and_then(|v| v.parse().ok()).unwrap_or(0);
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):").unwrap_or("?");
    print!("{stdout}");
    if !o.status.success() {
        bail!("fsck failed: {stderr}");
    }
    println!("fsck at {blocks} indexed blocks: peak RSS {} MB, wall {wall}", rss_kb / 1000);
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let o = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    anyhow::ensure!(o.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    Ok(())
}

fn begin(session: &Session, intent: &[u8]) -> Result<Txn> {
    let head = session.head()?;
    let cache = session.open_cache(&head, &|_| {})?;
    Txn::begin(session, head.0, cache, intent)
}

/// One archive whose files reference every simulated block once, stored as `create` stores
/// metadata (cut by the keyed chunker into metadata blocks).
fn store_archive(session: &Session, blocks: u64) -> Result<()> {
    let mut txn = begin(session, b"bench: archive")?;
    let chunker = session.chunker();
    let (mut stream, mut meta) = (Vec::new(), Vec::new());
    let mut put = |stream: &mut Vec<u8>, all: bool, txn: &mut Txn| -> Result<()> {
        let mut at = 0;
        while stream.len() - at > if all { 0 } else { 8 << 20 } {
            let n = chunker.cut(&stream[at..]);
            meta.push((txn.put(Kind::Meta, &stream[at..at + n])?, n as u32));
            at += n;
        }
        stream.drain(..at);
        Ok(())
    };
    let mut next = 0;
    while next < blocks {
        let n = NODE_BLOCKS.min(blocks - next);
        let mut node = Node::new(format!("sim/f{:09}", next / NODE_BLOCKS).into_bytes(), NodeKind::File);
        node.mode = 0o100644;
        node.size = n * PLAIN as u64;
        node.blocks = (next..next + n).map(|i| (id(i), PLAIN)).collect();
        let mut w = Writer::new();
        node.encode(&mut w);
        stream.extend_from_slice(&w.finish());
        put(&mut stream, false, &mut txn)?;
        next += n;
    }
    put(&mut stream, true, &mut txn)?;
    let time = archiver::process::now_ns() / 1_000_000_000;
    txn.commit_archive(Draft {
        name: "sim".into(),
        time,
        meta,
        stats: Default::default(),
        command: Vec::new(),
    })?;
    Ok(())
}

/// The simulated segments (sealed, in the repository's index folder) and their packs (sparse
/// files of the size their blocks reach, plus room for a header).
fn store_index(session: &Session, repo: &Path, blocks: u64) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let (mut block, mut pack) = (0u64, 0u64);
    while block < blocks {
        let mut seg = Segment::default();
        let end = blocks.min(block + SEGMENT_BLOCKS);
        while block < end {
            let n = PACK_BLOCKS.min(end - block);
            let name = format!("{SIM_TXN}/{pack:08x}");
            let entries: Vec<Entry> = (0..n)
                .map(|i| Entry {
                    id: id(block + i),
                    kind: Kind::Data,
                    offset: i * STORED as u64,
                    len: STORED,
                    plain_len: PLAIN,
                })
                .collect();
            let path = repo.join(archiver::layout::pack_key(&name));
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::File::create(&path)?.set_len(n * STORED as u64 + 4096)?;
            seg.packs.push((name, entries));
            (block, pack) = (block + n, pack + 1);
        }
        let name = format!("{SIM_TXN}-{:06x}", names.len());
        let path = repo.join(archiver::layout::segment_key(&name));
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, seg.seal(&session.keys, &name))?;
        names.push(name);
    }
    Ok(names)
}

/// A commit that adds the simulated segments to the manifest's live index.
fn commit_index(session: &Session, names: Vec<String>) -> Result<()> {
    let txn = begin(session, b"bench: simulated index")?;
    txn.commit(Segment::default(), move |m, _, _| m.indexes.extend(names), Vec::new(), Vec::new())?;
    Ok(())
}
