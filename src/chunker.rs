//! Content-defined chunking: FastCDC (2020) with a keyed gear table, so block boundaries do not
//! fingerprint content for anyone without the key.
//!
//! How the table is keyed and how large data chunks are cut is a property of the repository (its
//! config's `chunker` line, `Keying`), so a repository keeps cutting as it always did and its
//! blocks keep deduplicating: `keyed-gear-256k-1` (every repository made since 2026-11-30) and
//! `keyed-gear-1` (2026-11-28 to 11-30) derive all 256 entries from the key with a PRF (BLAKE3
//! keyed by the id-key, over the chunk-seed), so observed boundaries can only ever reveal PRF
//! outputs, and cut data chunks of 256 KiB and 1 MiB on average; `seed-xor-1` (older
//! repositories, no `chunker` line) is fastcdc's seeded table, its public table XORed with the
//! 64-bit chunk-seed, cutting 1 MiB on average.
//!
//! We drive fastcdc's `cut_gear` over our own reusable buffer instead of `StreamCDC`, which moves
//! its whole buffer after every chunk. Invariant: a cut is only taken when at least `max()` bytes are
//! buffered or the input has ended, so boundaries depend on content alone, never on read sizes.

use crate::crypto::Keys;
use fastcdc::v2020::{cut_gear, get_gear_with_seed, logarithm2, Normalization, MASKS};
use std::io::Read;

/// The largest chunk any scheme cuts.
pub const MAX: usize = 4 * 1024 * 1024;
const _: () = assert!(MAX == crate::crypto::MAX_PLAIN as usize);

/// Chunk sizes: file data is cut with `DATA`; an archive's metadata stream with `META`, smaller
/// so that reading or writing metadata holds a few hundred KiB, not several MiB, whatever the
/// number of files, and an edit re-stores about 128 KiB of unchanged metadata, not 1 MiB. An
/// archive root lists each metadata block in 36 bytes, so within `MAX_PLAIN` a root lists about
/// 14 GiB of metadata at `META`'s average (over 100M files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
}

/// File data in `keyed-gear-256k-1` repositories: an edit re-stores about 256 KiB per changed
/// place, and fewer bytes are in flight (docs/BENCHMARKS.md §7: edits 6.2 → 2.6 MB, no slower).
pub const DATA: Sizes = Sizes { min: 64 << 10, avg: 256 << 10, max: MAX };
/// File data in repositories made before (`keyed-gear-1`, `seed-xor-1`).
pub const DATA_1M: Sizes = Sizes { min: 256 << 10, avg: 1 << 20, max: MAX };
pub const META: Sizes = Sizes { min: 32 << 10, avg: 128 << 10, max: 512 << 10 };

/// How a repository cuts file data: its gear table's keying and its data chunk sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keying {
    /// fastcdc's public table XORed with the 64-bit chunk-seed, `DATA_1M` (repositories made
    /// before 2026-11-28, whose config has no `chunker` line).
    SeedXor,
    /// Every entry derived from the key with a PRF, `DATA_1M`.
    KeyedGear,
    /// The same keyed table, `DATA`.
    KeyedGear256K,
}

impl Keying {
    /// What `keygen` gives a new repository.
    pub const CURRENT: Keying = Keying::KeyedGear256K;
    /// In the order a rebuild tries them (`rebuild::proof`): the newest first.
    pub const ALL: [Keying; 3] = [Keying::KeyedGear256K, Keying::KeyedGear, Keying::SeedXor];

    /// The config's `chunker` value (`SeedXor` is also what no line means).
    pub fn name(self) -> &'static str {
        match self {
            Keying::SeedXor => "seed-xor-1",
            Keying::KeyedGear => "keyed-gear-1",
            Keying::KeyedGear256K => "keyed-gear-256k-1",
        }
    }

    /// The sizes file data is cut to.
    pub fn sizes(self) -> Sizes {
        match self {
            Keying::SeedXor | Keying::KeyedGear => DATA_1M,
            Keying::KeyedGear256K => DATA,
        }
    }

    pub fn parse(s: &str) -> Option<Keying> {
        Keying::ALL.into_iter().find(|k| k.name() == s)
    }
}

pub struct Chunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
    sizes: Sizes,
    /// Where the table cuts a run of zeros: a chunk starting with this many zero bytes is cut
    /// there (the cut at a byte depends on the bytes before it alone), found without the scan.
    zero_cut: usize,
}

impl Chunker {
    /// The chunker of a repository keyed as `keying`, for `keys`.
    pub fn keyed(keys: &Keys, keying: Keying) -> Self {
        let tables = match keying {
            Keying::SeedXor => get_gear_with_seed(keys.chunk_seed),
            Keying::KeyedGear | Keying::KeyedGear256K => gear_table(keys),
        };
        Chunker::with_tables(tables, keying.sizes())
    }

    /// fastcdc's seeded table cutting `DATA_1M` (`Keying::SeedXor`).
    pub fn new(seed: u64) -> Self {
        Chunker::with_tables(get_gear_with_seed(seed), DATA_1M)
    }

    fn with_tables((gear, gear_ls): (Box<[u64; 256]>, Box<[u64; 256]>), sizes: Sizes) -> Self {
        let c = Chunker { gear, gear_ls, mask_s: 0, mask_l: 0, sizes, zero_cut: 0 };
        c.with_sizes(sizes)
    }

    /// The same keyed table cutting chunks of `sizes` (`META` for metadata streams).
    pub fn with_sizes(mut self, sizes: Sizes) -> Self {
        assert!(sizes.min < sizes.avg && sizes.avg < sizes.max && sizes.max <= MAX);
        let bits = logarithm2(sizes.avg as u32);
        let norm = Normalization::Level1.bits();
        self.mask_s = MASKS[(bits + norm) as usize];
        self.mask_l = MASKS[(bits - norm) as usize];
        self.sizes = sizes;
        self.zero_cut = self.cut(&vec![0u8; sizes.max]);
        self
    }

    /// The largest chunk this chunker cuts.
    pub fn max(&self) -> usize {
        self.sizes.max
    }

    /// The length of a chunk of zeros as this table cuts a long run of them.
    pub fn zero_cut(&self) -> usize {
        self.zero_cut
    }

    /// Length of the next chunk at the start of `data`. `data` must hold at least `max()` bytes
    /// unless it is the end of the input.
    pub fn cut(&self, data: &[u8]) -> usize {
        let Sizes { min, avg, max } = self.sizes;
        if data.len() <= min {
            return data.len();
        }
        let (_, n) = cut_gear(
            data,
            min,
            avg,
            max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n
    }

    /// Splits a reader into chunks, calling `f` with each buffer-full of them, in order (a batch
    /// lets the caller hash chunks in parallel); a read error stops and is returned.
    pub fn split<R: Read>(
        &self,
        mut src: R,
        buf: &mut Vec<u8>,
        mut f: impl FnMut(&[&[u8]]) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let (max, fill) = (self.sizes.max, 2 * self.sizes.max);
        buf.resize(fill, 0);
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            while !eof && end < fill {
                match src.read(&mut buf[end..]) {
                    Ok(0) => eof = true,
                    Ok(n) => end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut batch = Vec::new();
            while end - start >= max || (eof && end > start) {
                // A run of zeros (a sparse file's holes, preallocated space) is cut where the
                // table cuts zeros, without the byte-by-byte scan: the same boundaries, faster.
                let zeros = end - start >= max && crate::holes::is_zeros(&buf[start..start + self.zero_cut]);
                let n = if zeros { self.zero_cut } else { self.cut(&buf[start..end]) };
                batch.push(&buf[start..start + n]);
                start += n;
                total += n as u64;
            }
            if !batch.is_empty() {
                f(&batch)?;
            }
            if eof {
                return Ok(total);
            }
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
    }
}

/// The `keyed-gear-1` table and its left-shifted twin: 2 KiB of BLAKE3 output keyed by the
/// id-key over a fixed context and the chunk-seed.
fn gear_table(keys: &Keys) -> (Box<[u64; 256]>, Box<[u64; 256]>) {
    let mut h = blake3::Hasher::new_keyed(&keys.id);
    h.update(b"archiver chunker gear table v1").update(&keys.chunk_seed.to_le_bytes());
    let mut bytes = [0u8; 256 * 8];
    h.finalize_xof().fill(&mut bytes);
    let mut gear = Box::new([0u64; 256]);
    for (g, b) in gear.iter_mut().zip(bytes.chunks_exact(8)) {
        *g = u64::from_le_bytes(b.try_into().expect("8 bytes"));
    }
    let mut gear_ls = Box::new([0u64; 256]);
    for (l, g) in gear_ls.iter_mut().zip(gear.iter()) {
        *l = g << 1;
    }
    (gear, gear_ls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunks(c: &Chunker, data: &[u8], read_size: usize) -> Vec<usize> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(self.1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut v = Vec::new();
        c.split(Trickle(data, read_size), &mut Vec::new(), |batch| {
            v.extend(batch.iter().map(|b| b.len()));
            Ok(())
        })
        .unwrap();
        v
    }

    /// Runs of zeros are cut where the scan would cut them: data with long zero runs (at
    /// unaligned places, between pseudo-random pieces) splits into the same chunks as the plain
    /// scan gives, for both keyings' tables.
    #[test]
    fn zero_runs_are_cut_as_the_scan_cuts_them() {
        for c in [
            Chunker::new(7),
            Chunker::keyed(&crate::crypto::Keys::new([1; 32], [2; 32], 3), Keying::KeyedGear),
            Chunker::keyed(&crate::crypto::Keys::new([1; 32], [2; 32], 3), Keying::KeyedGear256K),
        ] {
            let mut data = pseudo_random(3 << 20, 5);
            data.extend(std::iter::repeat_n(0, 40 << 20));
            data.extend(pseudo_random(123_457, 6));
            data.extend(std::iter::repeat_n(0, (9 << 20) + 17));
            data[20 << 20] = 1; // one byte breaks a run
            let mut scanned = Vec::new();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = c.cut(rest);
                scanned.push(n);
                rest = &rest[n..];
            }
            assert_eq!(chunks(&c, &data, 1 << 20), scanned);
            assert!(scanned.iter().filter(|&&n| n == c.zero_cut()).count() > 5);
        }
    }

    #[test]
    fn metadata_sizes_cut_smaller_chunks_with_the_same_table() {
        let keys = crate::crypto::Keys::new([1; 32], [2; 32], 3);
        let c = Chunker::keyed(&keys, Keying::KeyedGear).with_sizes(META);
        let data = pseudo_random(16 << 20, 9);
        let a = chunks(&c, &data, 1 << 30);
        assert_eq!(a, chunks(&c, &data, 4096 + 3), "boundaries depend on read sizes");
        assert!(a[..a.len() - 1].iter().all(|&n| (META.min..=META.max).contains(&n)));
        let mean = data.len() / a.len();
        assert!(mean > META.avg / 2 && mean < META.avg * 2, "mean chunk {mean}");
        let other = Chunker::keyed(&crate::crypto::Keys::new([1; 32], [5; 32], 3), Keying::KeyedGear);
        assert_ne!(a, chunks(&other.with_sizes(META), &data, 1 << 30), "the key keys the boundaries");
    }

    #[test]
    fn boundaries_ignore_read_sizes_and_resync_after_an_insert() {
        let c = Chunker::new(42);
        let data = pseudo_random(20 << 20, 1);
        let a = chunks(&c, &data, 1 << 30);
        assert_eq!(a, chunks(&c, &data, 65536 + 7));
        assert_eq!(a.iter().sum::<usize>(), data.len());
        assert!(a.iter().all(|&n| n <= MAX));
        let mut edited = data.clone();
        edited.splice(10 << 20..10 << 20, [9u8; 100]);
        let b = chunks(&c, &edited, 1 << 30);
        let same = b.iter().filter(|n| a.contains(n)).count();
        assert!(same + 3 >= b.len(), "an insert should change only a couple of chunks");
        assert_ne!(a, chunks(&Chunker::new(43), &data, 1 << 30), "the seed keys the boundaries");
    }

    #[test]
    fn the_keyed_gear_table_is_the_keys_alone() {
        let (k1, _) = Keys::generate().unwrap();
        let (k2, _) = Keys::generate().unwrap();
        let data = pseudo_random(24 << 20, 7);
        let cut = |k: &Keys, keying| chunks(&Chunker::keyed(k, keying), &data, 1 << 30);
        let a = cut(&k1, Keying::KeyedGear);
        assert_eq!(a, cut(&k1.clone(), Keying::KeyedGear), "the table is a function of the key");
        assert_eq!(a.iter().sum::<usize>(), data.len());
        assert_ne!(a, cut(&k2, Keying::KeyedGear), "another key cuts elsewhere");
        assert_ne!(a, cut(&k1, Keying::SeedXor), "the keyed table is not the seeded one");
        assert_eq!(cut(&k1, Keying::SeedXor), chunks(&Chunker::new(k1.chunk_seed), &data, 1 << 30));
        // No entry of the keyed table is fastcdc's public one XORed with a single value.
        let (gear, _) = gear_table(&k1);
        let (public, _) = get_gear_with_seed(0);
        let xors: std::collections::HashSet<u64> =
            gear.iter().zip(public.iter()).map(|(a, b)| a ^ b).collect();
        assert!(xors.len() > 250);
        let avg = a.len() as f64 / (data.len() as f64 / DATA_1M.avg as f64);
        assert!((0.5..2.0).contains(&avg), "chunks per MiB off: {avg}");
    }

    /// New repositories cut data four times smaller with the same keyed table: the mean chunk
    /// is near `DATA.avg`, every chunk but the last within `DATA`'s bounds, and an insert
    /// re-cuts only the chunks around it.
    #[test]
    fn new_repositories_cut_256k_chunks() {
        let (k, _) = Keys::generate().unwrap();
        assert_eq!(Keying::CURRENT, Keying::KeyedGear256K);
        let c = Chunker::keyed(&k, Keying::CURRENT);
        let data = pseudo_random(24 << 20, 11);
        let a = chunks(&c, &data, 1 << 30);
        assert_eq!(a, chunks(&c, &data, 65536 + 7), "boundaries depend on read sizes");
        assert!(a[..a.len() - 1].iter().all(|&n| (DATA.min..=DATA.max).contains(&n)));
        let mean = data.len() / a.len();
        assert!(mean > DATA.avg / 2 && mean < DATA.avg * 2, "mean chunk {mean}");
        assert_ne!(a, chunks(&Chunker::keyed(&k, Keying::KeyedGear), &data, 1 << 30));
        let mut edited = data.clone();
        edited.splice(10 << 20..10 << 20, [9u8; 100]);
        let b = chunks(&c, &edited, 1 << 30);
        let same = b.iter().filter(|n| a.contains(n)).count();
        assert!(same + 3 >= b.len(), "an insert should change only a couple of chunks");
    }
    #[test]
    fn keying_names_round_trip() {
        for k in Keying::ALL {
            assert_eq!(Keying::parse(k.name()), Some(k));
        }
        assert_eq!(Keying::parse("keyed-gear-2"), None);
    }
}
