//! tarsnap's options resolved into one set: the command line first, then each `--configfile`,
//! then (unless `--no-default-config`) `~/.tarsnaprc`, `$XDG_CONFIG_HOME/tarsnap/tarsnap.conf`
//! (or `~/.config/tarsnap/tarsnap.conf`), `/usr/local/etc/tarsnap.conf` and `/etc/tarsnap.conf`.
//! As in tarsnap 1.0.41, the first setter wins (`--exclude` and `--include` add up), a config
//! file's unknown key stops the run, and a key a file sets for another mode, or sets again, is
//! ignored where the command line would be refused. Files are read in tarsnap's format only:
//! nothing archiver-only is read from them (the repository comes from `ARCHIVER_REPO` or
//! archiver's own config file), so one file serves both programs.

use super::Fail;
use std::collections::HashSet;
use std::path::PathBuf;

/// What tarsnap is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    Delete,
    Read,
    List,
    Extract,
    ListArchives,
    PrintStats,
    Recover,
    Fsck,
    FsckPrune,
    Nuke,
    VerifyConfig,
    InitializeCachedir,
}

#[derive(Default, Debug)]
pub struct Opts {
    /// The mode and how tarsnap names it in messages (`-c`, `--list-archives`).
    pub mode: Option<(Mode, &'static str)>,
    pub files: Vec<String>,
    pub dir: Option<PathBuf>,
    pub verbose: u8,
    pub quiet: bool,
    pub keyfile: Option<PathBuf>,
    pub cachedir: Option<PathBuf>,
    pub configfiles: Vec<PathBuf>,
    pub no_default_config: bool,
    pub checkpoint_bytes: Option<u64>,
    pub maxbw: Option<u64>,
    pub rate_up: Option<u64>,
    pub rate_down: Option<u64>,
    pub dry_run: bool,
    pub exclude: Vec<String>,
    pub include: Vec<String>,
    pub exclude_from: Vec<PathBuf>,
    pub files_from: Vec<PathBuf>,
    pub null: bool,
    pub keep_old: bool,
    pub keep_newer: bool,
    pub one_file_system: bool,
    /// `-L` (or `-h` with a mode): follow symlinks.
    pub dereference: bool,
    /// Enter synthetic file systems (`--insane-filesystems`).
    pub insane_filesystems: bool,
    pub nodump: bool,
    pub humanize: bool,
    pub creationtime: Option<i64>,
    pub null_output: bool,
    pub print_stats: bool,
    pub numeric_owner: bool,
    pub to_stdout: bool,
    pub keep_going: bool,
    pub iso_dates: bool,
    pub totals: bool,
    pub resume: bool,
    pub dump_config: bool,
    pub passphrase: Option<String>,
    /// Options set once (tarsnap's `*_set` flags): a second setting is ignored from a file and
    /// refused on the command line.
    set: HashSet<&'static str>,
    no_config_exclude: bool,
    no_config_include: bool,
}

/// Options tarsnap accepts that change nothing here (network tuning, memory hints, its cache's
/// own safeguards): docs/TARSNAP.md says why each is not needed.
pub const NO_EFFECT: &[&str] = &[
    "read-full-blocks",
    "aggressive-networking",
    "no-aggressive-networking",
    "check-links",
    "debug-network-stats",
    "disk-pause",
    "no-disk-pause",
    "fast-read",
    "force-resources",
    "no-force-resources",
    "lowmem",
    "normalmem",
    "verylowmem",
    "noatime",
    "no-noatime",
    "noisy-warnings",
    "preserve-permissions",
    "same-owner",
    "no-same-permissions",
    "progress-bytes",
    "no-progress-bytes",
    "retry-forever",
    "no-retry-forever",
    "snaptime",
    "no-snaptime",
    "no-store-atime",
    "sparse",
    "unlink-first",
    "absolute-paths",
];

/// tarsnap options that would change what is stored or restored in ways archiver does not
/// implement: refused in one line rather than ignored.
pub const REFUSED: &[&str] = &[
    "archive-names",
    "chroot",
    "csv-file",
    "dry-run-metadata",
    "hashes",
    "interactive",
    "modification-time",
    "newer-ctime",
    "newer-ctime-than",
    "newer-mtime",
    "newer-mtime-than",
    "norecurse",
    "no-same-owner",
    "store-atime",
    "strip-components",
    "substitute",
    "H",
];

/// The keys a tarsnap config file may hold.
const CONFIG_KEYS: &[(&str, bool)] = &[
    ("aggressive-networking", false),
    ("cachedir", true),
    ("checkpoint-bytes", true),
    ("disk-pause", true),
    ("exclude", true),
    ("force-resources", false),
    ("humanize-numbers", false),
    ("include", true),
    ("insane-filesystems", false),
    ("iso-dates", false),
    ("keyfile", true),
    ("lowmem", false),
    ("maxbw", true),
    ("maxbw-rate", true),
    ("maxbw-rate-down", true),
    ("maxbw-rate-up", true),
    ("noatime", false),
    ("nodump", false),
    ("normalmem", false),
    ("no-aggressive-networking", false),
    ("no-config-exclude", false),
    ("no-config-include", false),
    ("no-disk-pause", false),
    ("no-force-resources", false),
    ("no-humanize-numbers", false),
    ("no-insane-filesystems", false),
    ("no-iso-dates", false),
    ("no-maxbw", false),
    ("no-maxbw-rate-down", false),
    ("no-maxbw-rate-up", false),
    ("no-noatime", false),
    ("no-nodump", false),
    ("no-print-stats", false),
    ("no-progress-bytes", false),
    ("no-quiet", false),
    ("no-retry-forever", false),
    ("no-snaptime", false),
    ("no-store-atime", false),
    ("no-totals", false),
    ("passphrase", true),
    ("print-stats", false),
    ("progress-bytes", true),
    ("quiet", false),
    ("retry-forever", false),
    ("snaptime", true),
    ("store-atime", false),
    ("totals", false),
    ("verylowmem", false),
];

impl Opts {
    /// Applies one option from the command line (`file` None) or a config file.
    pub fn apply(&mut self, opt: &'static str, arg: Option<&str>, file: bool) -> Result<(), Fail> {
        let mode = self.mode.map(|m| m.0);
        let modestr = self.mode.map_or("", |m| m.1);
        // Options for some modes only; from a file they are ignored elsewhere.
        let only: Option<&[Mode]> = match opt {
            "checkpoint-bytes"
            | "maxbw"
            | "nodump"
            | "totals"
            | "aggressive-networking"
            | "disk-pause"
            | "lowmem"
            | "normalmem"
            | "verylowmem"
            | "noatime"
            | "snaptime"
            | "store-atime" => Some(&[Mode::Create]),
            "print-stats" => Some(&[Mode::Create, Mode::Delete, Mode::PrintStats]),
            "progress-bytes" => Some(&[Mode::Create, Mode::Extract]),
            _ => None,
        };
        if let (Some(modes), Some(m)) = (only, mode) {
            if !modes.contains(&m) {
                return match file {
                    true => Ok(()),
                    false => Err(Fail::msg(format!("Option --{opt} is not permitted in mode {modestr}"))),
                };
            }
        }
        // The `*_set` groups: an option and its `no-` twin share one.
        let group: Option<&'static str> = match opt {
            "cachedir" | "keyfile" | "checkpoint-bytes" | "passphrase" | "snaptime" | "disk-pause"
            | "progress-bytes" => Some(opt),
            "maxbw" | "no-maxbw" => Some("maxbw"),
            "maxbw-rate-up" | "no-maxbw-rate-up" => Some("maxbw-rate-up"),
            "maxbw-rate-down" | "no-maxbw-rate-down" => Some("maxbw-rate-down"),
            "humanize-numbers" | "no-humanize-numbers" => Some("humanize"),
            "print-stats" | "no-print-stats" => Some("print-stats"),
            "quiet" | "no-quiet" => Some("quiet"),
            "nodump" | "no-nodump" => Some("nodump"),
            "totals" | "no-totals" => Some("totals"),
            "iso-dates" | "no-iso-dates" => Some("iso-dates"),
            "insane-filesystems" | "no-insane-filesystems" => Some("insane"),
            _ => None,
        };
        if let Some(g) = group {
            if !self.set.insert(g) {
                return match file {
                    true => Ok(()),
                    false => Err(Fail::usage()),
                };
            }
        }
        let arg_str = || arg.unwrap_or("").to_string();
        let path = || PathBuf::from(arg.unwrap_or(""));
        match opt {
            "cachedir" => self.cachedir = Some(path()),
            "keyfile" => self.keyfile = Some(path()),
            "passphrase" => self.passphrase = Some(arg_str()),
            "humanize-numbers" => self.humanize = true,
            "print-stats" => self.print_stats = true,
            "quiet" => self.quiet = true,
            "nodump" => self.nodump = true,
            "totals" => self.totals = true,
            "iso-dates" => self.iso_dates = true,
            "insane-filesystems" => self.insane_filesystems = true,
            "checkpoint-bytes" => {
                let n = decimal_size(arg.unwrap_or(""))
                    .ok_or_else(|| Fail::msg(format!("Cannot parse #bytes per checkpoint: {}", arg_str())))?;
                if n < 1_000_000 {
                    return Err(Fail::msg("checkpoint-bytes value must be at least 1M".into()));
                }
                self.checkpoint_bytes = Some(n);
            }
            "maxbw" => {
                let n = decimal_size(arg.unwrap_or(""))
                    .ok_or_else(|| Fail::msg(format!("Cannot parse bandwidth limit: {}", arg_str())))?;
                self.maxbw = Some(n);
            }
            "maxbw-rate" | "maxbw-rate-up" | "maxbw-rate-down" => {
                let rate = arg
                    .and_then(|a| a.parse::<f64>().ok())
                    .filter(|r| (8000.0..=1e9).contains(r))
                    .ok_or_else(|| Fail::msg(format!("Invalid bandwidth rate limit: {}", arg_str())))?
                    as u64;
                // `maxbw-rate` sets each direction not set yet (here or by its `no-` option).
                let both = opt == "maxbw-rate";
                if opt == "maxbw-rate-up" || (both && self.set.insert("maxbw-rate-up")) {
                    self.rate_up = Some(rate);
                }
                if opt == "maxbw-rate-down" || (both && self.set.insert("maxbw-rate-down")) {
                    self.rate_down = Some(rate);
                }
            }
            "exclude" if !(file && self.no_config_exclude) => self.exclude.push(arg_str()),
            "include" if !(file && self.no_config_include) => self.include.push(arg_str()),
            "no-config-exclude" => self.no_config_exclude = true,
            "no-config-include" => self.no_config_include = true,
            _ => {}
        }
        Ok(())
    }

    /// Reads one config file in tarsnap's format (docs/TARSNAP.md, "Where the repository, key and cache come from").
    pub fn config_file(&mut self, path: &std::path::Path, must_exist: bool) -> Result<(), Fail> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(()),
            Err(e) => {
                return Err(Fail::msg(format!(
                    "Cannot read config file: {}: {}",
                    path.display(),
                    io_text(&e)
                )))
            }
        };
        let text = String::from_utf8_lossy(&text);
        for line in text.split(['\n', '\r']) {
            let line = line.trim_start_matches([' ', '\t']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, rest) = match line.find([' ', '\t']) {
                Some(p) => (&line[..p], line[p..].trim_start_matches([' ', '\t'])),
                None => (line, ""),
            };
            let Some(&(name, takes)) = CONFIG_KEYS.iter().find(|k| k.0 == key) else {
                return Err(Fail::msg(format!("Unrecognized configuration file option: \"{key}\"")));
            };
            if takes && rest.is_empty() {
                return Err(Fail::msg(format!("Argument required for configuration file option: {key}")));
            }
            let value = match rest.strip_prefix('~') {
                Some(after) => match tarsnap_home() {
                    Some(h) => format!("{}{after}", h.display()),
                    None => rest.to_string(),
                },
                None => rest.to_string(),
            };
            self.apply(name, takes.then_some(value.as_str()), true)?;
        }
        Ok(())
    }

    /// The default config files, in the order read (the first setter wins).
    pub fn default_files() -> Vec<PathBuf> {
        let mut files = Vec::new();
        let home = tarsnap_home();
        if let Some(h) = &home {
            files.push(h.join(".tarsnaprc"));
        }
        match std::env::var_os("XDG_CONFIG_HOME") {
            Some(x) => files.push(PathBuf::from(format!("{}/tarsnap/tarsnap.conf", x.to_string_lossy()))),
            None => files.extend(home.map(|h| h.join(".config/tarsnap/tarsnap.conf"))),
        }
        // tarsnap built from source reads /usr/local/etc, distribution packages /etc.
        files.push(PathBuf::from("/usr/local/etc/tarsnap.conf"));
        files.push(PathBuf::from("/etc/tarsnap.conf"));
        files
    }
}

/// The home directory tarsnap uses: the effective user's, from the password database (not HOME).
pub fn tarsnap_home() -> Option<PathBuf> {
    // SAFETY: getpwuid returns a pointer into static storage or NULL; it is read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_dir.is_null() {
            return archiver::config::home();
        }
        let dir = std::ffi::CStr::from_ptr((*pw).pw_dir);
        Some(PathBuf::from(std::ffi::OsStr::new(std::str::from_utf8(dir.to_bytes()).ok()?)))
    }
}

/// tarsnap's sizes (`humansize_parse`): digits, an optional space, an optional decimal unit
/// `k M G T P E` (only `k` in lower case), an optional `B`.
pub fn decimal_size(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let mut rest = &s[digits..];
    rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (mult, rest) = match rest.as_bytes().first() {
        Some(b'k') => (1e3 as u64, &rest[1..]),
        Some(b'M') => (1e6 as u64, &rest[1..]),
        Some(b'G') => (1e9 as u64, &rest[1..]),
        Some(b'T') => (1e12 as u64, &rest[1..]),
        Some(b'P') => (1e15 as u64, &rest[1..]),
        Some(b'E') => (1e18 as u64, &rest[1..]),
        _ => (1, rest),
    };
    match rest {
        "" | "B" => n.checked_mul(mult),
        _ => None,
    }
}

/// An I/O error as strerror words it (without Rust's ` (os error N)`).
pub fn io_text(e: &std::io::Error) -> String {
    let t = e.to_string();
    match t.find(" (os error") {
        Some(p) => t[..p].to_string(),
        None => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_tarsnaps_decimal_ones() {
        for (s, n) in
            [("1M", 1_000_000), ("1 MB", 1_000_000), ("5k", 5_000), ("2G", 2_000_000_000), ("1000", 1000)]
        {
            assert_eq!(decimal_size(s), Some(n), "{s}");
        }
        for bad in ["1K", "1m", "1.5M", "M", "1MiB", "", "1  M"] {
            assert_eq!(decimal_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_files_first_setter_wins_and_unknown_keys_stop() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "# mine\n  cachedir /first\nexclude x\nprint-stats\n").unwrap();
        std::fs::write(&b, "cachedir /second\nexclude y\nkeyfile /k\n").unwrap();
        let mut o = Opts { mode: Some((Mode::Create, "-c")), ..Default::default() };
        o.config_file(&a, true).unwrap();
        o.config_file(&b, true).unwrap();
        assert_eq!(o.cachedir, Some(PathBuf::from("/first")));
        assert_eq!(o.keyfile, Some(PathBuf::from("/k")));
        assert_eq!(o.exclude, vec!["x", "y"]);
        assert!(o.print_stats);
        std::fs::write(&a, "repo /r\n").unwrap();
        let err = o.config_file(&a, true).unwrap_err();
        assert_eq!(err.message.as_deref(), Some("Unrecognized configuration file option: \"repo\""));
        assert!(o.config_file(&dir.path().join("none"), false).is_ok());
    }
}
