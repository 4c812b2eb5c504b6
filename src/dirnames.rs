//! A directory's entry names in byte order, in memory bounded by `BATCH` names whatever the
//! directory holds: `create` stores a tree in path order, so it needs each directory's names
//! sorted, and a directory of millions of entries must not hold them all. Up to `BATCH` names
//! are sorted in memory; beyond that, each full batch is sorted and written to an unnamed
//! temporary file (a run), and the names come out of a k-way merge of the runs.
//!
//! A run is a sequence of (u32 length, bytes); the temporary files are unlinked when made, so
//! a killed run leaves nothing behind. Names that cannot be read (`read_dir` errors) are
//! skipped, as before: the walker reports what it cannot open when it gets there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::ffi::OsStringExt;

/// Names held in memory at once (a name is at most 255 bytes: at most about 18 MB).
pub const BATCH: usize = 65_536;

pub struct DirNames {
    memory: std::vec::IntoIter<Vec<u8>>,
    runs: Vec<BufReader<File>>,
    /// The smallest unread name of each run (and of `memory`, index `runs.len()`).
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl DirNames {
    /// The names `entries` yields, sorted by bytes, keeping those `keep` accepts.
    pub fn sorted(entries: impl Iterator<Item = OsString>, keep: impl Fn(&[u8]) -> bool) -> io::Result<Self> {
        Self::sorted_in(entries, keep, BATCH)
    }

    fn sorted_in(
        entries: impl Iterator<Item = OsString>,
        keep: impl Fn(&[u8]) -> bool,
        batch: usize,
    ) -> io::Result<Self> {
        let (mut names, mut runs) = (Vec::new(), Vec::new());
        for name in entries.map(OsString::into_vec).filter(|n| keep(n)) {
            if names.len() == batch {
                runs.push(spill(&mut names)?);
            }
            names.push(name);
        }
        names.sort_unstable();
        let mut d = DirNames { memory: names.into_iter(), runs, heap: BinaryHeap::new() };
        if !d.runs.is_empty() {
            for i in 0..=d.runs.len() {
                d.refill(i)?;
            }
        }
        Ok(d)
    }

    fn refill(&mut self, i: usize) -> io::Result<()> {
        let next = match self.runs.get_mut(i) {
            Some(r) => read_name(r)?,
            None => self.memory.next(),
        };
        if let Some(n) = next {
            self.heap.push(Reverse((n, i)));
        }
        Ok(())
    }
}

impl Iterator for DirNames {
    type Item = io::Result<OsString>;

    fn next(&mut self) -> Option<io::Result<OsString>> {
        if self.runs.is_empty() {
            return self.memory.next().map(|n| Ok(OsString::from_vec(n)));
        }
        let Reverse((name, i)) = self.heap.pop()?;
        Some(self.refill(i).map(|_| OsString::from_vec(name)))
    }
}

/// The names in directory `dir` in byte order (only those `only` lists, when it is given),
/// spilled to sorted runs on disk past `BATCH` names.
pub fn read_sorted(dir: &std::path::Path, only: Option<&[&str]>) -> io::Result<DirNames> {
    let entries = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.file_name()));
    DirNames::sorted(entries, |n| only.is_none_or(|k| k.iter().any(|k| k.as_bytes() == n)))
}

/// `read_sorted` for a directory open as `fd`, read with `getdents64` from the descriptor's
/// offset: a descriptor just opened lists every entry (and can still name entries afterwards).
pub fn read_sorted_fd(fd: std::os::fd::BorrowedFd, only: Option<&[&str]>) -> io::Result<DirNames> {
    let entries = Entries { fd, buf: vec![0u8; 32 << 10], at: 0, end: 0 };
    DirNames::sorted(entries, |n| only.is_none_or(|k| k.iter().any(|k| k.as_bytes() == n)))
}

/// The entries `getdents64` returns, a buffer at a time, without `.` and `..`; they end at the
/// first error, as `std::fs::read_dir`'s do once `read_sorted` skipped it.
struct Entries<'a> {
    fd: std::os::fd::BorrowedFd<'a>,
    buf: Vec<u8>,
    at: usize,
    end: usize,
}

/// Where a `linux_dirent64`'s record length and name start (after `d_ino`, `d_off`; `d_type`).
const RECLEN_AT: usize = 16;
const NAME_AT: usize = 19;

impl Iterator for Entries<'_> {
    type Item = OsString;

    fn next(&mut self) -> Option<OsString> {
        use std::os::fd::AsRawFd;
        loop {
            if self.at >= self.end {
                // SAFETY: an open descriptor and a buffer of `buf.len()` bytes for the kernel to fill.
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_getdents64,
                        self.fd.as_raw_fd(),
                        self.buf.as_mut_ptr(),
                        self.buf.len(),
                    )
                };
                if n <= 0 {
                    return None;
                }
                (self.at, self.end) = (0, (n as usize).min(self.buf.len()));
            }
            // Each record as the kernel lays it out, its bounds checked all the same.
            let rec = &self.buf[self.at..self.end];
            let len = rec.get(RECLEN_AT..RECLEN_AT + 2).map(|l| u16::from_ne_bytes([l[0], l[1]]) as usize);
            let Some(len) = len.filter(|&l| l > NAME_AT && l <= rec.len()) else {
                self.end = 0;
                return None;
            };
            self.at += len;
            let name = &rec[NAME_AT..len];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                return Some(OsString::from_vec(name.to_vec()));
            }
        }
    }
}

/// Sorts `names` and writes them to a new temporary file, leaving `names` empty.
fn spill(names: &mut Vec<Vec<u8>>) -> io::Result<BufReader<File>> {
    names.sort_unstable();
    let mut file = tempfile::tempfile()?;
    let mut w = BufWriter::with_capacity(64 << 10, &mut file);
    for n in names.drain(..) {
        w.write_all(&(n.len() as u32).to_le_bytes())?;
        w.write_all(&n)?;
    }
    w.flush()?;
    drop(w);
    file.rewind()?;
    Ok(BufReader::with_capacity(16 << 10, file))
}

fn read_name(r: &mut BufReader<File>) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > 4096 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a sorted run of names is damaged"));
    }
    let mut name = vec![0u8; len];
    r.read_exact(&mut name)?;
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn names(n: u32) -> Vec<OsString> {
        // Distinct, unordered, with bytes that are not UTF-8.
        (0..n)
            .map(|i| OsString::from_vec(vec![(i * 7919 % 251) as u8, 0xff, (i % 13) as u8, (i / 13) as u8]))
            .collect()
    }

    #[test]
    fn names_come_out_sorted_whether_or_not_they_spill() {
        for batch in [3, 100, 10_000] {
            let got: Vec<OsString> = DirNames::sorted_in(names(1000).into_iter(), |_| true, batch)
                .unwrap()
                .map(|n| n.unwrap())
                .collect();
            let mut want = names(1000);
            want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            assert_eq!(got, want, "batch {batch}");
        }
    }

    #[test]
    fn only_kept_names_are_held_and_returned() {
        let all = names(50);
        let keep = vec![all[7].clone(), all[3].clone()];
        let got: Vec<OsString> =
            DirNames::sorted_in(all.into_iter(), |n| keep.iter().any(|k| k.as_bytes() == n), 2)
                .unwrap()
                .map(|n| n.unwrap())
                .collect();
        let mut want = keep.clone();
        want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(got, want);
    }

    #[test]
    fn an_open_directory_lists_as_its_path_does() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300u32 {
            // Not UTF-8, never `/` or NUL.
            let n = OsString::from_vec([format!("{:x}", i * 7919 % 997).as_bytes(), &[0xff]].concat());
            std::fs::write(dir.path().join(&n), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let fd = File::open(dir.path()).unwrap();
        let by_fd: Vec<OsString> =
            read_sorted_fd(std::os::fd::AsFd::as_fd(&fd), None).unwrap().map(|n| n.unwrap()).collect();
        let by_path: Vec<OsString> = read_sorted(dir.path(), None).unwrap().map(|n| n.unwrap()).collect();
        assert_eq!(by_fd.len(), 301, "no `.` or `..`");
        assert_eq!(by_fd, by_path);
        let only = ["sub"];
        let fd = File::open(dir.path()).unwrap();
        let some: Vec<OsString> =
            read_sorted_fd(std::os::fd::AsFd::as_fd(&fd), Some(&only)).unwrap().map(|n| n.unwrap()).collect();
        assert_eq!(some, [OsString::from("sub")]);
        let empty = tempfile::tempdir().unwrap();
        let fd = File::open(empty.path()).unwrap();
        assert_eq!(read_sorted_fd(std::os::fd::AsFd::as_fd(&fd), None).unwrap().count(), 0);
    }
}
