//! Which entries `create` stores: bsdtar's `--exclude` and `--include` patterns, matched against
//! the stored relative path, with libarchive's path-matching rules (so that tarsnap users' patterns
//! mean what they meant there):
//!
//! - `*` matches any run of characters, `/` included; `?` any one character; `[...]` a class
//!   (`!` or `^` first negates it, `a-z` is a range, `\` escapes); `\` escapes any character.
//!   A leading `./` and repeated slashes are ignored, in the pattern and in the path.
//! - An exclusion may match from the start of any path element, and a match of a directory covers
//!   everything below it: `--exclude tmp` excludes `tmp`, `a/tmp` and `a/tmp/x`; `--exclude b/c`
//!   excludes `a/b/c`. A leading `^` anchors it at the start of the stored path; a trailing `$`
//!   makes it match only the whole path (not what is below).
//! - An inclusion is anchored at the start of the stored path and also covers what is below.
//!   When any is given, an entry that matches none is not stored, and a directory that is not
//!   stored is not descended into (bsdtar's rule: `--include 'home/ann'` with operand `home`
//!   stores nothing, since `home` itself does not match; write `--include 'home$' --include
//!   'home/ann'`). Exclusions win over inclusions.
//!
//! Also `--exclude-caches` (a directory holding a valid `CACHEDIR.TAG` is stored, with the tag,
//! but nothing else in it, as bsdtar and GNU tar do), `--exclude-if-present NAME` (a directory
//! holding NAME is not stored at all) and `--one-file-system` (directories on another file system
//! than their operand's are stored empty). Invariant: selection only drops entries; it never
//! changes what a stored entry holds.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The CACHEDIR.TAG signature (https://bford.info/cachedir/): a tag file must begin with it.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Patterns longer than this are refused (a typo'd file, not a pattern).
const MAX_PATTERN: usize = 4096;

#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub exclude: Vec<String>,
    pub include: Vec<String>,
    pub exclude_caches: bool,
    pub exclude_if_present: Vec<String>,
    pub one_file_system: bool,
    /// Store no extended attributes (`--no-xattrs`; POSIX ACLs are kept unless `no_acls`).
    pub no_xattrs: bool,
    /// Store no POSIX ACLs (`--no-acls`).
    pub no_acls: bool,
    /// Store owners by id only, without their names (`--numeric-owner`).
    pub numeric_owner: bool,
    /// Leave out files and directories marked nodump (`chattr +d`; tarsnap's `--nodump`).
    pub nodump: bool,
    /// Store what symlinks point to instead of the links (bsdtar's `-L`); a loop is stored as an
    /// empty directory with a warning, a dangling link as the link.
    pub dereference: bool,
    /// Do not enter synthetic file systems (proc, sysfs, devpts, ...) met below an operand, as
    /// tarsnap does unless `--insane-filesystems`; an operand on one is still walked.
    pub skip_synthetic: bool,
}

/// What to do with a directory once it is known to be stored.
#[derive(Debug, PartialEq, Eq)]
pub enum DirRule {
    /// Store it and descend.
    All,
    /// Store it and only these names in it (a cache directory: its tag).
    Only(Vec<&'static str>),
}

impl Selection {
    /// Checks the patterns and adds those of each `--exclude-file` (one per line; empty lines
    /// skipped), so that bad input fails before the repository is touched.
    pub fn with_exclude_files(mut self, files: &[PathBuf]) -> Result<Selection> {
        for f in files {
            let text =
                std::fs::read(f).with_context(|| format!("cannot read --exclude-file {}", f.display()))?;
            for line in text.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !line.is_empty() {
                    let p = String::from_utf8(line.to_vec()).map_err(|_| {
                        anyhow::anyhow!("--exclude-file {}: a pattern is not UTF-8", f.display())
                    })?;
                    self.exclude.push(p);
                }
            }
        }
        for (what, list) in [("--exclude", &self.exclude), ("--include", &self.include)] {
            for p in list {
                if p.is_empty() || p.len() > MAX_PATTERN {
                    bail!("{what} {p:?}: a pattern must have 1 to {MAX_PATTERN} bytes");
                }
            }
        }
        for name in &self.exclude_if_present {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                bail!("--exclude-if-present {name:?}: give a file name, without '/'");
            }
        }
        Ok(self)
    }

    /// Whether the entry at stored path `stored` is left out by the patterns.
    pub fn excluded(&self, stored: &[u8]) -> bool {
        self.excluded_given(stored, false)
    }

    /// `excluded`, for an entry reached from an absolute operand (`/home/u`, stored as `home/u`)
    /// when `absolute`: a pattern then also matches the path as given (`/home/u/cache`), as
    /// bsdtar and tarsnap match it, so `--exclude /home/u/cache` works as their users expect.
    pub fn excluded_given(&self, stored: &[u8], absolute: bool) -> bool {
        if self.exclude.is_empty() && self.include.is_empty() {
            return false; // the usual walk: nothing to match, nothing to build per entry
        }
        // Built once, and only when a pattern did not match the stored path.
        let given = std::cell::OnceCell::new();
        let matches = |p: &String, any_start: bool| {
            path_match(p.as_bytes(), stored, any_start)
                || (absolute
                    && path_match(
                        p.as_bytes(),
                        given.get_or_init(|| [&b"/"[..], stored].concat()),
                        any_start,
                    ))
        };
        if self.exclude.iter().any(|p| matches(p, true)) {
            return true;
        }
        !self.include.is_empty() && !self.include.iter().any(|p| matches(p, false))
    }

    /// Whether directory `dir` is left out with all it holds (`--exclude-if-present`).
    pub fn excluded_dir(&self, dir: &Path) -> bool {
        self.exclude_if_present.iter().any(|n| dir.join(n).symlink_metadata().is_ok())
    }

    /// What of directory `dir` (stored) is stored: all of it, or only its cache tag.
    pub fn dir_rule(&self, dir: &Path) -> DirRule {
        if self.exclude_caches && is_cache_dir(dir) {
            DirRule::Only(vec!["CACHEDIR.TAG"])
        } else {
            DirRule::All
        }
    }
}

/// Whether `dir` holds a regular file `CACHEDIR.TAG` that begins with the signature.
fn is_cache_dir(dir: &Path) -> bool {
    use std::io::Read;
    let tag = dir.join("CACHEDIR.TAG");
    match tag.symlink_metadata() {
        Ok(m) if m.is_file() => {}
        _ => return false,
    }
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    std::fs::File::open(&tag).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == CACHEDIR_SIGNATURE
}

/// libarchive's path match of pattern `p` against path `s`: unanchored at the start (any path
/// element) if `any_start`, and always unanchored at the end at a `/` (a directory's match
/// covers what is below it).
pub fn path_match(p: &[u8], s: &[u8], any_start: bool) -> bool {
    if p.is_empty() {
        return s.is_empty();
    }
    let (p, any_start) = match p.strip_prefix(b"^") {
        Some(rest) => (rest, false),
        None => (p, any_start),
    };
    if p.first() == Some(&b'/') && s.first() != Some(&b'/') {
        return false;
    }
    if p.first() == Some(&b'*') || p.first() == Some(&b'/') || s.first() == Some(&b'/') {
        return pm(trim_slashes(p), trim_slashes(s));
    }
    if !any_start {
        return pm(p, s);
    }
    let mut rest = s;
    loop {
        if pm(p, rest) {
            return true;
        }
        match rest.iter().position(|&c| c == b'/') {
            Some(i) => rest = &rest[i + 1..],
            None => return false,
        }
    }
}

fn trim_slashes(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'/').count();
    &s[n..]
}

/// Skips `/`, `./` and a final `.` at the start of `s`.
fn slash_skip(mut s: &[u8]) -> &[u8] {
    loop {
        match s {
            [b'/', rest @ ..] => s = rest,
            [b'.', b'/', rest @ ..] => s = rest,
            [b'.'] => s = &[],
            _ => return s,
        }
    }
}

/// Matches from the start of both; the end is anchored except at a `/` of the path.
fn pm(mut p: &[u8], mut s: &[u8]) -> bool {
    if let [b'.', b'/', ..] = s {
        s = slash_skip(&s[1..]);
    }
    if let [b'.', b'/', ..] = p {
        p = slash_skip(&p[1..]);
    }
    loop {
        let Some(&c) = p.first() else {
            // The pattern is used up: a match if the path is too, or goes on below a directory.
            return s.is_empty() || s[0] == b'/';
        };
        match c {
            b'?' => {
                if s.is_empty() {
                    return false;
                }
            }
            b'*' => {
                let rest = trim_stars(p);
                if rest.is_empty() {
                    return true;
                }
                return (0..s.len()).any(|i| path_match(rest, &s[i..], false));
            }
            b'[' => match class_end(p) {
                Some(end) => {
                    let Some(&ch) = s.first() else { return false };
                    if !class_matches(&p[1..end], ch) {
                        return false;
                    }
                    p = &p[end..]; // at the closing ']', stepped over below
                }
                None => {
                    if s.first() != Some(&b'[') {
                        return false;
                    }
                }
            },
            b'\\' => {
                if p.len() == 1 {
                    if s.first() != Some(&b'\\') {
                        return false;
                    }
                } else {
                    p = &p[1..];
                    if s.first() != Some(&p[0]) {
                        return false;
                    }
                }
            }
            b'/' => {
                if !(s.is_empty() || s[0] == b'/') {
                    return false;
                }
                p = slash_skip(p);
                s = slash_skip(s);
                if p.is_empty() {
                    return true;
                }
                continue;
            }
            b'$' if p.len() == 1 => return slash_skip(s).is_empty(),
            _ => {
                if s.first() != Some(&c) {
                    return false;
                }
            }
        }
        p = &p[1..];
        s = if s.is_empty() { s } else { &s[1..] };
    }
}

fn trim_stars(p: &[u8]) -> &[u8] {
    let n = p.iter().take_while(|&&c| c == b'*').count();
    &p[n..]
}

/// The index of the `]` closing the class that starts at `p[0] == '['`, if any.
fn class_end(p: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < p.len() && p[i] != b']' {
        if p[i] == b'\\' && i + 1 < p.len() {
            i += 1;
        }
        i += 1;
    }
    (i < p.len()).then_some(i)
}

/// Whether `c` is in the class `body` (between the brackets).
fn class_matches(body: &[u8], c: u8) -> bool {
    let (negated, body) = match body.first() {
        Some(b'!' | b'^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut i = 0;
    let mut found = false;
    while i < body.len() {
        let mut lo = body[i];
        if lo == b'\\' && i + 1 < body.len() {
            i += 1;
            lo = body[i];
        }
        if i + 2 < body.len() && body[i + 1] == b'-' {
            let mut hi = body[i + 2];
            i += 2;
            if hi == b'\\' && i + 1 < body.len() {
                i += 1;
                hi = body[i];
            }
            found |= lo <= c && c <= hi;
        } else {
            found |= lo == c;
        }
        i += 1;
    }
    found != negated
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
