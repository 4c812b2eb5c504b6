//! `keygen` (creates a key file and an empty repository) and the read-only commands `list`, `ls`
//! and `stats`, which take no lock and change nothing in the repository.

use crate::archive::{Node, NodeKind};
use crate::manifest::ArchiveRef;
use crate::process::random_id;
use crate::progress::Progress;
use crate::session::{config_bytes, Session, Settings};
use crate::{keyfile, reader, repo};
use anyhow::{bail, Result};

/// Creates a key file and initialises an empty repository for it. Returns the repository id.
pub fn keygen(settings: &Settings, seal: keyfile::Seal) -> Result<String> {
    let keys = crate::keyfile::KeyFile::generate()?;
    let r = repo::open(&settings.repo, &settings.connect(&keys.access))?;
    if r.read_config()?.is_some() {
        bail!(
            "a repository already exists at {}: use the key file made for it, or choose another --repo",
            settings.repo
        );
    }
    if let Ok(mut entries) = std::fs::read_dir(&settings.repo) {
        if entries.next().is_some() {
            bail!(
                "directory {} is not empty: choose a new or empty directory for the repository",
                settings.repo
            );
        }
    }
    keyfile::write_new(&settings.keyfile, &keys, seal)?;
    // Before the repository is made: a store whose create-if-absent does not hold is refused
    // (and the key file made for it removed).
    if let Err(e) = r.check_store() {
        let _ = std::fs::remove_file(&settings.keyfile);
        return Err(e);
    }
    let id = random_id()?;
    if let Err(e) = r.init(&config_bytes(&keys, &id, crate::chunker::Keying::CURRENT)) {
        let _ = std::fs::remove_file(&settings.keyfile);
        bail!("cannot create repository at {}: {e}", settings.repo);
    }
    Ok(id)
}

pub fn list(session: &Session) -> Result<Vec<ArchiveRef>> {
    session.require_data("list archives")?;
    Ok(session.head()?.0.archives)
}

/// Calls `each` with every node of archive `name`, in stored (path) order, as its metadata is
/// fetched: memory stays flat whatever the number of entries.
pub fn ls(
    session: &Session,
    name: &str,
    progress: Progress,
    mut each: impl FnMut(Node) -> Result<()>,
) -> Result<()> {
    session.require(&[crate::access::Perm::Read], "list an archive's contents")?;
    let head = session.head()?;
    let a = reader::find(&head.0, name)?.clone();
    let cache = session.open_cache(&head, progress)?;
    for node in reader::stream(session, &cache, &a)?.1 {
        each(node?)?;
    }
    Ok(())
}

/// Sizes in tarsnap's table: (plain bytes, stored bytes).
pub struct StatsReport {
    /// All archives; none for a write key (format 2), which cannot open their references.
    pub all: Option<(u64, u64)>,
    pub unique: (u64, u64),
    pub archives: Vec<ArchiveRef>,
}

pub fn stats(session: &Session, names: &[String], progress: Progress) -> Result<StatsReport> {
    session.require_data("show archive statistics")?;
    let head = session.head()?;
    let mut archives = Vec::new();
    for n in names {
        archives.push(reader::find(&head.0, n)?.clone());
    }
    let cache = session.open_cache(&head, progress)?;
    let (raw, stored, _) = cache.totals()?;
    let all = head.0.archives.iter().fold((0, 0), |(r, s), a| (r + a.stats.raw, s + a.stats.stored));
    Ok(StatsReport { all: Some(all), unique: (raw, stored), archives })
}

/// `create --print-stats`: the table for archive `archive`, just stored. A write key (format 2)
/// cannot total the other archives: it shows the unique data and this archive.
pub fn created_stats(session: &Session, archive: &ArchiveRef, progress: Progress) -> Result<StatsReport> {
    if session.keys.reads_data() {
        return stats(session, std::slice::from_ref(&archive.name), progress);
    }
    let head = session.head()?;
    let (raw, stored, _) = session.open_cache(&head, progress)?.totals()?;
    Ok(StatsReport { all: None, unique: (raw, stored), archives: vec![archive.clone()] })
}

/// `ls -l`-style line for a node.
pub fn long_line(n: &Node) -> String {
    let mode = mode_string(n);
    // Devices show their major and minor numbers where files show their size, as `ls -l` does.
    let size = match n.kind {
        NodeKind::CharDev | NodeKind::BlockDev => format!("{},{}", libc::major(n.rdev), libc::minor(n.rdev)),
        _ => n.size.to_string(),
    };
    // Owners by name where the archive has one (as tar does), else by id.
    let owner = |name: &[u8], id: u32| match name {
        b"" => id.to_string(),
        name => escape(name),
    };
    let (user, group) = (owner(&n.uname, n.uid), owner(&n.gname, n.gid));
    let mut line =
        format!("{mode} {user:>5} {group:>5} {size:>12} {} {}", format_time(n.mtime), escape(&n.path));
    match n.kind {
        NodeKind::Symlink => line.push_str(&format!(" -> {}", escape(&n.target))),
        NodeKind::Hardlink => line.push_str(&format!(" link to {}", escape(&n.target))),
        _ => {}
    }
    if n.partial {
        line.push_str(" [partial]");
    }
    line
}

/// The type and permission columns of `ls -l` (`drwxr-xr-x`): the setuid, setgid and sticky
/// bits show in the execute column as `ls -l` shows them, s/t over an execute bit, S/T without.
pub fn mode_string(n: &Node) -> String {
    let kind = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::File | NodeKind::Hardlink => '-',
        NodeKind::Fifo => 'p',
        NodeKind::CharDev => 'c',
        NodeKind::BlockDev => 'b',
    };
    let mut mode = String::with_capacity(11);
    mode.push(kind);
    for (shift, special, mark) in [(6u32, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (n.mode >> shift) & 7;
        mode.push(if bits & 4 != 0 { 'r' } else { '-' });
        mode.push(if bits & 2 != 0 { 'w' } else { '-' });
        mode.push(match (n.mode & special != 0, bits & 1 != 0) {
            (false, true) => 'x',
            (false, false) => '-',
            (true, true) => mark,
            (true, false) => mark.to_ascii_uppercase(),
        });
    }
    mode
}

/// A stored path for display on one line: backslash, control characters and bytes that are not
/// UTF-8 are escaped (`\\`, `\n`, `\t`, `\xNN`), so every path prints on exactly one line.
pub fn escape(path: &[u8]) -> String {
    // Most paths are printable ASCII without a backslash: nothing to escape.
    if path.iter().all(|&b| (b' '..=b'~').contains(&b) && b != b'\\') {
        return String::from_utf8(path.to_vec()).expect("ASCII");
    }
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// An archive name for display on one line, escaped as `escape` escapes paths: a name read
/// from a repository may hold anything a key holder put there, terminal escapes and newlines
/// included.
pub fn escape_name(name: &str) -> String {
    escape(name.as_bytes())
}

/// A `--match` shell glob over archive names (fnmatch without flags: `*` matches any
/// characters; names hold no `/`). No glob matches every name.
pub struct Glob(Option<std::ffi::CString>);

impl Glob {
    pub fn new(glob: Option<&str>) -> Result<Glob> {
        match glob {
            None => Ok(Glob(None)),
            Some(g) => Ok(Glob(Some(
                std::ffi::CString::new(g).map_err(|_| anyhow::anyhow!("--match contains a NUL byte"))?,
            ))),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        let Some(glob) = &self.0 else { return true };
        // SAFETY: both are NUL-terminated strings that outlive the call.
        std::ffi::CString::new(name)
            .is_ok_and(|n| unsafe { libc::fnmatch(glob.as_ptr(), n.as_ptr(), 0) } == 0)
    }
}

/// The newest complete archive whose name matches `glob` (ties: the greatest name).
pub fn newest(session: &Session, glob: &Glob) -> Result<Option<ArchiveRef>> {
    let head = session.head()?;
    Ok(head
        .0
        .archives
        .into_iter()
        .filter(|a| !a.partial && glob.matches(&a.name))
        .max_by(|a, b| a.time.cmp(&b.time).then_with(|| a.name.cmp(&b.name))))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_time(secs: i64) -> String {
    crate::calendar::utc(secs).format()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_unprintable_path_bytes() {
        assert_eq!(super::escape(b"a b/\xc3\xbc"), "a b/\u{fc}");
        assert_eq!(super::escape(b"x\ny\\z\xff\x01"), "x\\ny\\\\z\\xff\\x01");
    }

    #[test]
    fn long_lines_show_special_mode_bits_as_ls_does() {
        let mut n = crate::archive::Node::new(b"f".to_vec(), crate::archive::NodeKind::File);
        for (mode, shown) in [
            (0o100755, "-rwxr-xr-x"),
            (0o104755, "-rwsr-xr-x"),
            (0o104644, "-rwSr--r--"),
            (0o102710, "-rwx--s---"),
            (0o102600, "-rw---S---"),
            (0o101777, "-rwxrwxrwt"),
            (0o101666, "-rw-rw-rwT"),
        ] {
            n.mode = mode;
            assert!(
                super::long_line(&n).starts_with(&format!("{shown} ")),
                "{mode:o}: {}",
                super::long_line(&n)
            );
        }
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_time(1_795_305_600), "2026-11-22 00:00:00");
        assert_eq!(super::format_time(-1), "1969-12-31 23:59:59");
    }
}
