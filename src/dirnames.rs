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
}
