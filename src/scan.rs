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
use crate::place::Place;
use crate::progress::{Event, Progress};
use crate::select::{DirRule, Selection};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
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
        if !s.walk(&Place::new(&o.path), o.stored.clone()) {
            return;
        }
    }
    progress(Event::Total { files: s.files, bytes: s.bytes, complete: true });
}

/// A directory being scanned: its entries not yet visited.
struct Open {
    dir: Place,
    stored: Vec<u8>,
    device: u64,
    names: std::vec::IntoIter<std::ffi::OsString>,
}

impl Scan<'_> {
    /// Scans the tree at `at` depth first with an explicit stack (any depth); false once stopped.
    fn walk(&mut self, at: &Place, stored: Vec<u8>) -> bool {
        let mut stack: Vec<Open> = self.visit(at, stored, None).into_iter().collect();
        while let Some(top) = stack.last_mut() {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let Some(name) = top.names.next() else {
                stack.pop();
                continue;
            };
            let (child, stored) = (top.dir.child(&name), join(&top.stored, name.as_bytes()));
            let device = top.device;
            stack.extend(self.visit(&child, stored, Some(device)));
        }
        !self.stop.load(Ordering::Relaxed)
    }

    /// Counts one entry; a directory to be entered is returned with its names.
    fn visit(&mut self, at: &Place, stored: Vec<u8>, device: Option<u64>) -> Option<Open> {
        let path = at.sys();
        if self.select.excluded_given(&stored, at.real.is_absolute()) {
            return None;
        }
        let md = fs::symlink_metadata(path).ok()?;
        let device = device.unwrap_or(md.dev());
        if md.is_file() {
            self.files += 1;
            self.bytes += md.size();
            if self.files.is_multiple_of(4096) {
                (self.progress)(Event::Total { files: self.files, bytes: self.bytes, complete: false });
            }
            return None;
        }
        if !md.is_dir()
            || self.own.contains(&(md.dev(), md.ino()))
            || self.select.excluded_dir(path)
            || (self.select.one_file_system && md.dev() != device)
        {
            return None;
        }
        let dir = at.enter();
        let rd = fs::read_dir(dir.sys()).ok()?;
        let mut names: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        if let DirRule::Only(keep) = self.select.dir_rule(path) {
            names.retain(|n| keep.iter().any(|k| n.as_bytes() == k.as_bytes()));
        }
        Some(Open { dir, stored, device, names: names.into_iter() })
    }
}
