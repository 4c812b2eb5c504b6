//! Reading a sparse file without reading its holes: `create` reads a file that has fewer blocks
//! allocated than its size through `HoleAware`, which asks the file system where data lies
//! (`SEEK_DATA`, `SEEK_HOLE`) and gives the holes as zeros without a read. The bytes it yields
//! are exactly the file's, so a hole is chunked, deduplicated (a run of zeros is a handful of
//! blocks, stored once) and restored as a hole (`extract` leaves zero blocks unwritten).
//! Invariant: only what the file system reports as a hole is made up; any error asking it falls
//! back to reading.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Whether `md` looks sparse: fewer 512-byte blocks allocated than its size needs.
pub fn maybe_sparse(md: &crate::stat::Stat) -> bool {
    md.is_file() && md.blocks.saturating_mul(512) < md.size
}

/// `f` read from its start, its holes given as zeros without reading them.
pub struct HoleAware {
    f: File,
    pos: u64,
    /// Where the data region `pos` lies in ends (`pos` or less: not known; ask).
    data_end: u64,
    /// Where the hole `pos` lies in ends (None: `pos` is not in a known hole).
    hole_end: Option<u64>,
    /// The size when it was opened: a hole running to the end stops there.
    size: u64,
}

impl HoleAware {
    pub fn new(f: File, size: u64) -> HoleAware {
        HoleAware { f, pos: 0, data_end: 0, hole_end: None, size }
    }

    fn seek(&self, whence: libc::c_int) -> io::Result<Option<u64>> {
        // SAFETY: a valid descriptor; lseek only moves its offset (reads use pread).
        let r = unsafe { libc::lseek(self.f.as_raw_fd(), self.pos as libc::off_t, whence) };
        if r >= 0 {
            return Ok(Some(r as u64));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None), // no data (SEEK_DATA) at or after pos
            _ => Err(e),
        }
    }

    /// Finds what `pos` lies in: data (up to `data_end`) or a hole (up to `hole_end`).
    fn locate(&mut self) {
        let found = self.seek(libc::SEEK_DATA).and_then(|data| match data {
            // No data after pos: a hole to the end (as long as the file is now, if it shrank).
            None => {
                let now = self.f.metadata().map(|m| m.len()).unwrap_or(self.pos);
                Ok((None, Some(now.min(self.size).max(self.pos))))
            }
            Some(d) if d > self.pos => Ok((None, Some(d))),
            Some(_) => Ok((self.seek(libc::SEEK_HOLE)?, None)),
        });
        match found {
            Ok((data_end, hole_end)) => {
                // In a hole, where it ends is asked again (`data_end` 0); in data without a hole
                // after it, everything left is read.
                self.data_end = data_end.unwrap_or(if hole_end.is_some() { 0 } else { u64::MAX });
                self.hole_end = hole_end;
            }
            // The file system cannot say: read everything that is left.
            Err(_) => (self.data_end, self.hole_end) = (u64::MAX, None),
        }
    }
}

impl Read for HoleAware {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.data_end && self.hole_end.is_none_or(|h| self.pos >= h) {
            self.locate();
        }
        if let Some(h) = self.hole_end.filter(|&h| self.pos < h) {
            let n = buf.len().min((h - self.pos).min(usize::MAX as u64) as usize);
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        self.hole_end = None;
        let want = buf.len().min((self.data_end - self.pos).min(usize::MAX as u64) as usize);
        let n = self.f.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n) // 0: the end of the file
    }
}

/// Whether `b` holds only zero bytes (compared a word at a time).
pub fn is_zeros(b: &[u8]) -> bool {
    // SAFETY: every bit pattern is a valid u64, and `align_to` keeps the words aligned.
    let (head, words, tail) = unsafe { b.align_to::<u64>() };
    head.iter().all(|&x| x == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&x| x == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_sparse_file_reads_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let mut f = File::create(&p).unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.seek(SeekFrom::Start(9 << 20)).unwrap();
        f.write_all(&[7u8; 70_000]).unwrap();
        f.set_len(12 << 20).unwrap();
        drop(f);
        let md = std::fs::metadata(&p).unwrap();
        assert!(maybe_sparse(&(&md).into()), "this file system keeps holes");
        let mut got = Vec::new();
        let mut r = HoleAware::new(File::open(&p).unwrap(), md.size());
        let mut buf = vec![0u8; 100_000];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, std::fs::read(&p).unwrap());
    }
}
