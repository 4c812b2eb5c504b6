//! Which entries an extract selects: every entry, or those matching a pattern (`fnmatch(3)`, as
//! tarsnap and bsdtar match), where a match on a directory selects everything under it. A
//! pattern that matches nothing in the whole archive is an error, said once the archive was read.

use anyhow::{bail, Context, Result};
use std::ffi::CString;

pub(super) struct Patterns<'a> {
    given: &'a [String],
    pats: Vec<CString>,
    used: Vec<bool>,
}

impl<'a> Patterns<'a> {
    pub fn new(given: &'a [String]) -> Result<Patterns<'a>> {
        let pats: Vec<CString> = given
            .iter()
            .map(|p| CString::new(p.trim_end_matches('/').as_bytes()).context("pattern contains a NUL byte"))
            .collect::<Result<_>>()?;
        Ok(Patterns { given, used: vec![false; pats.len()], pats })
    }

    /// Whether the entry at `path` is selected; counts the patterns that matched it.
    pub fn select(&mut self, path: &[u8]) -> bool {
        if self.pats.is_empty() {
            return true;
        }
        let mut hit = false;
        for (i, p) in self.pats.iter().enumerate() {
            if matches(p, path) {
                self.used[i] = true;
                hit = true;
            }
        }
        hit
    }

    /// Whether an entry at `path` would be selected (counts nothing).
    pub fn would_select(&self, path: &[u8]) -> bool {
        self.pats.is_empty() || self.pats.iter().any(|p| matches(p, path))
    }

    /// After every entry was offered to `select`: fails on a pattern that matched none.
    pub fn check_used(&self) -> Result<()> {
        if let Some(i) = self.used.iter().position(|u| !u) {
            bail!(
                "pattern {:?} matches nothing in the archive: `archiver ls NAME` lists its paths",
                self.given[i]
            );
        }
        Ok(())
    }
}

fn matches(pat: &CString, path: &[u8]) -> bool {
    // SAFETY: both are NUL-terminated strings that outlive the call.
    let fnm =
        |s: &[u8]| CString::new(s).is_ok_and(|c| unsafe { libc::fnmatch(pat.as_ptr(), c.as_ptr(), 0) } == 0);
    fnm(path) || path.iter().enumerate().any(|(i, &b)| b == b'/' && fnm(&path[..i]))
}
