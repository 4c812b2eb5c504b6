//! The size scan behind `create`'s progress display: a walk of the operands, concurrent with the
//! backup, that only stats, applying the same selection as the walker (`select`), and reports
//! the files and bytes ahead as `Event::Total` (a running count every 4,096 files, then the
//! final one).
//!
//! Invariants: it reads nothing but directory listings and metadata, follows no symlink, never
//! fails the backup (an unreadable entry is simply not counted), and stops as soon as `stop` is
//! set (the backup ended first).

use crate::archive::join;
use crate::operands::Operand;
use crate::progress::{Event, Progress};
use crate::select::{DirRule, Selection};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

struct Scan<'a> {
    select: &'a Selection,
    own: &'a [(u64, u64)],
    stop: &'a AtomicBool,
    progress: Progress<'a>,
    files: u64,
    bytes: u64,
}

/// Scans `operands` as the walker will store them, reporting totals through `progress`.
pub fn scan(
    operands: &[Operand],
    select: &Selection,
    own: &[(u64, u64)],
    stop: &AtomicBool,
    progress: Progress,
) {
    let mut s = Scan { select, own, stop, progress, files: 0, bytes: 0 };
    for o in operands {
        if !s.visit(&o.path, o.stored.clone(), None) {
            return;
        }
    }
    progress(Event::Total { files: s.files, bytes: s.bytes, complete: true });
}

impl Scan<'_> {
    /// False once stopped.
    fn visit(&mut self, path: &Path, stored: Vec<u8>, device: Option<u64>) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self.select.excluded(&stored) {
            return true;
        }
        let Ok(md) = fs::symlink_metadata(path) else { return true };
        let device = device.unwrap_or(md.dev());
        if md.is_file() {
            self.files += 1;
            self.bytes += md.size();
            if self.files % 4096 == 0 {
                (self.progress)(Event::Total { files: self.files, bytes: self.bytes, complete: false });
            }
            return true;
        }
        if !md.is_dir()
            || self.own.contains(&(md.dev(), md.ino()))
            || self.select.excluded_dir(path)
            || (self.select.one_file_system && md.dev() != device)
        {
            return true;
        }
        let Ok(rd) = fs::read_dir(path) else { return true };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        if let DirRule::Only(keep) = self.select.dir_rule(path) {
            names.retain(|n| keep.iter().any(|k| n.as_bytes() == k.as_bytes()));
        }
        for name in names {
            if !self.visit(&path.join(&name), join(&stored, name.as_bytes()), Some(device)) {
                return false;
            }
        }
        true
    }
}
