//! tarsnap's output formats, byte for byte (tools parse them): the statistics table and its
//! numbers (`humansize`), `--list-archives` lines, and bsdtar's `-t`/`-tv` listing with its
//! escaping, column widths that grow through a run, and the six-month date rule.

use archiver::archive::{Node, NodeKind};

/// tarsnap's `humansize`: decimal units, truncated (999 B, 1.2 kB, 12 kB, 1.2 MB).
pub fn humansize(size: u64) -> String {
    if size < 1000 {
        return format!("{size} B");
    }
    let (mut s, mut shift) = (size / 100, 1);
    while s >= 10000 {
        s /= 1000;
        shift += 1;
    }
    let prefix = " kMGTPE".as_bytes()[shift] as char;
    match s < 100 {
        true => format!("{}.{} {prefix}B", s / 10, s % 10),
        false => format!("{} {prefix}B", s / 10),
    }
}

/// The statistics table, row by row (each ends in a newline).
pub struct Table {
    pub humanize: bool,
}

impl Table {
    pub fn header(&self) -> String {
        format!("{:<32}  {:>15}  {:>15}\n", "", "Total size", "Compressed size")
    }

    pub fn row(&self, name: &str, (total, compressed): (u64, u64)) -> String {
        let n = |v: u64| if self.humanize { humansize(v) } else { v.to_string() };
        format!("{:<32}  {:>15}  {:>15}\n", name, n(total), n(compressed))
    }
}

/// bsdtar's `safe_fprintf`: printable ASCII as is, `\\` for a backslash, C escapes for the
/// usual controls, `\ooo` for any other byte.
pub fn safe(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0b => out.push_str("\\v"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out
}

/// `strftime(fmt, localtime(t))`.
pub fn local_time(t: i64, fmt: &str) -> String {
    let fmt = std::ffi::CString::new(fmt).unwrap_or_default();
    let mut buf = [0u8; 64];
    // SAFETY: localtime_r fills `tm`; strftime writes at most `buf.len()` bytes into `buf` and
    // returns how many (0 when it did not fit).
    let n = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let tt = t as libc::time_t;
        if libc::localtime_r(&tt, &mut tm).is_null() {
            return t.to_string();
        }
        libc::strftime(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), fmt.as_ptr(), &tm)
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// bsdtar's `-tv` lines: the owner and the group-and-size columns widen as wider values come
/// and stay wide for the rest of the listing, as bsdtar's do.
pub struct Long {
    u_width: usize,
    gs_width: usize,
    now: i64,
    iso_dates: bool,
}

impl Long {
    pub fn new(iso_dates: bool) -> Long {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Long { u_width: 6, gs_width: 13, now, iso_dates }
    }

    /// The line for `n` (without its newline). tarsnap archives record no link count: bsdtar
    /// shows 0, so does this.
    pub fn line(&mut self, n: &Node, numeric_owner: bool) -> String {
        let user = match (&n.uname[..], numeric_owner) {
            (name, false) if !name.is_empty() => String::from_utf8_lossy(name).into_owned(),
            _ => n.uid.to_string(),
        };
        let group = match (&n.gname[..], numeric_owner) {
            (name, false) if !name.is_empty() => String::from_utf8_lossy(name).into_owned(),
            _ => n.gid.to_string(),
        };
        self.u_width = self.u_width.max(user.len());
        let size = match n.kind {
            NodeKind::CharDev | NodeKind::BlockDev => {
                format!("{},{}", libc::major(n.rdev), libc::minor(n.rdev))
            }
            _ => n.size.to_string(),
        };
        if group.len() + size.len() >= self.gs_width {
            self.gs_width = group.len() + size.len() + 1;
        }
        let fmt = if self.iso_dates {
            "%F %T"
        } else if (n.mtime - self.now).abs() > (365 / 2) * 86400 {
            "%b %e  %Y"
        } else {
            "%b %e %H:%M"
        };
        let mut line = format!(
            "{} 0 {:<uw$} {group}{size:>sw$} {} {}",
            strmode(n),
            user,
            local_time(n.mtime, fmt),
            safe(&n.path),
            uw = self.u_width,
            sw = self.gs_width - group.len(),
        );
        match n.kind {
            NodeKind::Hardlink => line.push_str(&format!(" link to {}", safe(&n.target))),
            NodeKind::Symlink => line.push_str(&format!(" -> {}", safe(&n.target))),
            _ => {}
        }
        line
    }
}

/// libarchive's `archive_entry_strmode`: the type, nine permission characters and a space
/// (`+` when the entry has an access ACL).
fn strmode(n: &Node) -> String {
    let mut s = archiver::query::mode_string(n);
    let acl = n.xattrs.iter().any(|(k, _)| k == archiver::fsmeta::ACL_ACCESS);
    s.push(if acl { '+' } else { ' ' });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humansize_truncates_in_decimal_units() {
        for (n, s) in [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (1234, "1.2 kB"),
            (12345, "12 kB"),
            (999_999, "999 kB"),
            (1_234_567, "1.2 MB"),
            (1_000_000_000, "1.0 GB"),
        ] {
            assert_eq!(humansize(n), s, "{n}");
        }
    }

    #[test]
    fn the_table_is_tarsnaps() {
        let t = Table { humanize: false };
        assert_eq!(t.header(), format!("{}Total size  Compressed size\n", " ".repeat(39)));
        assert_eq!(
            t.row("All archives", (104491640436, 51510524844)),
            "All archives                         104491640436      51510524844\n"
        );
        assert_eq!(
            t.row("  (unique data)", (14830618089, 7733620463)),
            "  (unique data)                       14830618089       7733620463\n"
        );
    }

    #[test]
    fn long_lines_are_bsdtars() {
        let mut n = Node::new(b"etc/passwd".to_vec(), NodeKind::File);
        (n.mode, n.size, n.uname, n.gname) = (0o100644, 1234, b"root".to_vec(), b"wheel".to_vec());
        let mut l = Long::new(false);
        l.now = n.mtime + 3600;
        let line = l.line(&n, false);
        let date = local_time(n.mtime, "%b %e %H:%M");
        assert_eq!(line, format!("-rw-r--r--  0 root   wheel    1234 {date} etc/passwd"));
        n.mtime = l.now - 200 * 86400;
        let line = l.line(&n, true);
        assert!(line.contains(&local_time(n.mtime, "%b %e  %Y")), "{line}");
        assert_eq!(safe(b"a\\b\nc\xff d"), "a\\\\b\\nc\\377 d");
    }
}
