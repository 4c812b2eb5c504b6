//! Deterministic test data: a seeded generator (`Rng`), partially compressible pseudo-random
//! bytes (`data`, `write_data`), and the trees built from them (`small_tree`, `stamp_mtimes`), so
//! that every run of a test backs up the same bytes and a failure can be replayed.

use super::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// xorshift64*: fast, deterministic, good enough to look random to zstd and the chunker.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SEGMENT: usize = 64 * 1024;

/// Fills `buf` with the next bytes of the stream: 64 KiB stretches that are either random or
/// low-entropy text (16 letters), half each at random, so zstd shrinks the data by about a quarter.
fn fill(rng: &mut Rng, buf: &mut [u8]) {
    for seg in buf.chunks_mut(SEGMENT) {
        let text = rng.next() & 1 == 0;
        for word in seg.chunks_mut(8) {
            let mut w = rng.next();
            if text {
                w = (w & 0x0f0f_0f0f_0f0f_0f0f) | 0x6060_6060_6060_6060;
            }
            word.copy_from_slice(&w.to_le_bytes()[..word.len()]);
        }
    }
}

/// `len` bytes of partially compressible pseudo-random data, unique per seed.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(&mut Rng::new(seed), &mut v);
    v
}

/// Writes `len` bytes of `data(seed, len)` to `path` without holding them all in memory.
pub fn write_data(path: &Path, seed: u64, len: u64) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("mkdir");
    }
    let mut f = std::io::BufWriter::new(fs::File::create(path).expect("create"));
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 16 * SEGMENT];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        fill(&mut rng, &mut buf[..n]);
        f.write_all(&buf[..n]).expect("write");
        left -= n as u64;
    }
    f.into_inner().expect("flush").sync_all().ok();
}

/// Gives every entry under `root` (and `root`) a distinct mtime with nanoseconds, children first
/// so that setting a child's time cannot disturb its parent's.
pub fn stamp_mtimes(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut paths: Vec<PathBuf> = snapshot(root).into_keys().collect();
    paths.reverse(); // "a/b" sorts after "a": reversed, children come first
    for rel in paths {
        let secs = 1_000_000_000 + rng.below(800_000_000) as i64;
        let nanos = rng.below(1_000_000_000) as u32;
        set_mtime(&root.join(rel), secs, nanos);
    }
}

/// Many small and medium files of unique data under `dir` (deterministic per seed).
pub fn small_tree(dir: &Path, seed: u64, files: usize, max_len: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..files {
        let len = rng.below(max_len as u64 + 1) as usize;
        write(&dir.join(format!("d{}/f{i:03}.bin", i % 4)), &data(seed * 1000 + i as u64, len));
    }
}
