//! Content-defined chunking: FastCDC (2020) with a gear table keyed by the key file's chunk seed,
//! so block boundaries do not fingerprint content for anyone without the key.
//!
//! We drive fastcdc's `cut_gear` over our own reusable buffer instead of `StreamCDC`, which moves
//! its whole buffer after every chunk. Invariant: a cut is only taken when at least `MAX` bytes are
//! buffered or the input has ended, so boundaries depend on content alone, never on read sizes.

use fastcdc::v2020::{cut_gear, get_gear_with_seed, logarithm2, Normalization, MASKS};
use std::io::Read;

pub const MIN: usize = 256 * 1024;
pub const AVG: usize = 1024 * 1024;
pub const MAX: usize = 4 * 1024 * 1024;
const _: () = assert!(MAX == crate::crypto::MAX_PLAIN as usize);

pub struct Chunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    pub fn new(seed: u64) -> Self {
        let bits = logarithm2(AVG as u32);
        let norm = Normalization::Level1.bits();
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Chunker {
            gear,
            gear_ls,
            mask_s: MASKS[(bits + norm) as usize],
            mask_l: MASKS[(bits - norm) as usize],
        }
    }

    /// Length of the next chunk at the start of `data`. `data` must hold at least `MAX` bytes
    /// unless it is the end of the input.
    pub fn cut(&self, data: &[u8]) -> usize {
        if data.len() <= MIN {
            return data.len();
        }
        let (_, n) = cut_gear(
            data,
            MIN,
            AVG,
            MAX,
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
        const FILL: usize = 4 * MAX;
        buf.resize(FILL, 0);
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            while !eof && end < FILL {
                match src.read(&mut buf[end..]) {
                    Ok(0) => eof = true,
                    Ok(n) => end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut batch = Vec::new();
            while end - start >= MAX || (eof && end > start) {
                let n = self.cut(&buf[start..end]);
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
}
