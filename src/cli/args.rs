//! Command-line arguments as clap structs, and their resolution (with environment variables and
//! config files) into library settings. The command line and environment win over config files.

use archiver::config::{home, Config};
use archiver::session::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "archiver", version, about = "Deduplicating, encrypting backups in crash-safe transactions")]
pub struct Cli {
    /// Repository: a local directory, or http(s)://HOST:PORT/NAME on an `archiver serve`
    #[arg(long, global = true, env = "ARCHIVER_REPO", value_name = "PATH|URL")]
    pub repo: Option<String>,
    /// For https:// repositories: trust only this PEM certificate (e.g. the server's self-signed one)
    #[arg(long, global = true, env = "ARCHIVER_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Key file made by `archiver keygen`
    #[arg(long, global = true, env = "ARCHIVER_KEYFILE", value_name = "PATH")]
    pub keyfile: Option<PathBuf>,
    /// Directory for the local cache (safe to delete)
    #[arg(long, global = true, env = "ARCHIVER_CACHEDIR", value_name = "DIR")]
    pub cachedir: Option<PathBuf>,
    /// Config file in tarsnap's format (default: /etc/archiver.conf then ~/.archiverrc)
    #[arg(long, global = true, env = "ARCHIVER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not read the default config files
    #[arg(long, global = true)]
    pub no_default_config: bool,
    /// More output: list files as they are processed; long listings
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Less output: no notices, only warnings and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print JSON lines on stdout, each with a message_type (docs/SCRIPTING.md); an error ends
    /// as one exit_error object on stderr
    #[arg(long, global = true)]
    pub json: bool,
    /// Show progress (create, extract, fsck, delete, prune) even when stderr is not a terminal
    #[arg(long, global = true, conflicts_with = "no_progress")]
    pub progress: bool,
    /// Never show progress (by default it is shown when stderr is a terminal)
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Limit upload and download to RATE bytes per second each (e.g. 500K, 2M)
    #[arg(long, global = true, value_name = "RATE", value_parser = parse_rate)]
    pub maxbw_rate: Option<u64>,
    /// Limit upload to RATE bytes per second (overrides --maxbw-rate for uploads)
    #[arg(long, global = true, value_name = "RATE", value_parser = parse_rate)]
    pub maxbw_rate_up: Option<u64>,
    /// Limit download to RATE bytes per second (overrides --maxbw-rate for downloads)
    #[arg(long, global = true, value_name = "RATE", value_parser = parse_rate)]
    pub maxbw_rate_down: Option<u64>,
    /// Wait up to DURATION (e.g. 90s, 15m, 2h) for another archiver's lock instead of failing
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_wait)]
    pub lock_wait: Option<std::time::Duration>,
    /// Where a passphrase-protected key file's passphrase comes from: dev:tty-stdin,
    /// dev:stdin-once, dev:tty-once, env:VAR or file:PATH (default: ask on the terminal)
    #[arg(long, global = true, value_name = "METHOD:ARG", value_parser = super::passphrase::parse_method)]
    pub passphrase: Option<super::passphrase::Method>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a key file and initialise an empty repository for it
    Keygen {
        #[command(flatten)]
        new: super::passphrase::NewKey,
    },
    /// Write a key file holding only some permissions (e.g. write-only for nightly scripts),
    /// with, without or with another passphrase
    Keymgmt {
        #[command(flatten)]
        new: super::passphrase::NewKey,
        /// With --passphrased: where the new key file's passphrase comes from (as --passphrase)
        #[arg(long, value_name = "METHOD:ARG", value_parser = super::passphrase::parse_method, requires = "passphrased")]
        new_passphrase: Option<super::passphrase::Method>,
        /// The new key file (never overwritten)
        #[arg(long, value_name = "FILE")]
        outkeyfile: PathBuf,
        /// Include the read key: ls, extract, fsck (any key file can run list, stats, generations)
        #[arg(short = 'r')]
        read: bool,
        /// Include the write key: create, recover, rollback
        #[arg(short = 'w')]
        write: bool,
        /// Include the delete key: delete, fsck --prune (both also need -r)
        #[arg(short = 'd')]
        delete: bool,
        /// Retire the repository's write key in force (every key file holding it, e.g. a stolen
        /// machine's) and give the new key file a new one; needs the delete key and -w
        #[arg(long, requires = "write")]
        revoke_write: bool,
    },
    /// Store PATHs as a new archive NAME
    Create {
        /// Print the size table after the archive is stored
        #[arg(long)]
        print_stats: bool,
        /// Checkpoint after every SIZE bytes uploaded (e.g. 64M, 1G): a crash then keeps NAME.part
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        checkpoint_bytes: Option<u64>,
        /// Checkpoint at least every SECS seconds
        #[arg(long, value_name = "SECS")]
        checkpoint_interval: Option<u64>,
        /// Stop after SIZE bytes uploaded, storing what was done as NAME.part
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        maxbw: Option<u64>,
        /// Keep NAME.part (from an interrupted earlier run) when NAME is stored
        #[arg(long)]
        keep_part: bool,
        /// Leave out entries matching PATTERN (bsdtar's rules; repeatable)
        #[arg(long, value_name = "PATTERN")]
        exclude: Vec<String>,
        /// Store only entries matching PATTERN (bsdtar's rules; repeatable)
        #[arg(long, value_name = "PATTERN")]
        include: Vec<String>,
        /// Read --exclude patterns from FILE, one per line (repeatable)
        #[arg(long, value_name = "FILE")]
        exclude_file: Vec<PathBuf>,
        /// Store directories holding a valid CACHEDIR.TAG with only the tag
        #[arg(long)]
        exclude_caches: bool,
        /// Leave out directories holding a file named NAME (repeatable)
        #[arg(long, value_name = "NAME")]
        exclude_if_present: Vec<String>,
        /// Do not descend into directories on other file systems than their operand's
        #[arg(long)]
        one_file_system: bool,
        /// Store no extended attributes (POSIX ACLs are still stored unless --no-acls)
        #[arg(long)]
        no_xattrs: bool,
        /// Store no POSIX ACLs
        #[arg(long)]
        no_acls: bool,
        /// Store owners by numeric id only, without user and group names
        #[arg(long)]
        numeric_owner: bool,
        /// Record EPOCH (seconds since 1970-01-01 UTC) as the archive's creation time
        #[arg(long, value_name = "EPOCH", value_parser = parse_epoch)]
        creationtime: Option<i64>,
        /// Walk, chunk and consult the cache; print what would be stored and how much would be
        /// new; store nothing (-v lists the files)
        #[arg(long)]
        dry_run: bool,
        /// With `-` as the only PATH (standard input, e.g. a database dump): the file name to
        /// store it under (default: stdin)
        #[arg(long, value_name = "FILENAME")]
        stdin_name: Option<String>,
        name: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List archive names, sorted (-v: with time and size)
    List,
    /// List the paths in an archive (-v: long format)
    Ls { name: String },
    /// Restore an archive, or the paths matching PATTERNs, under a directory
    Extract {
        name: String,
        /// Directory to restore into (default: the current directory)
        #[arg(short = 'C', value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Continue an interrupted extract: keep what is already restored and verified, restore the rest
        #[arg(long, conflicts_with = "overwrite")]
        resume: bool,
        /// Replace files that already exist under DIR (by default extract refuses to)
        #[arg(long)]
        overwrite: bool,
        /// Print what was restored and how much was fetched from the repository
        #[arg(long)]
        print_stats: bool,
        /// Write one file's content to stdout instead (give its stored path as the only PATTERN)
        #[arg(long, conflicts_with_all = ["resume", "overwrite"])]
        to_stdout: bool,
        /// As root, restore owners by their stored ids, ignoring user and group names
        #[arg(long)]
        numeric_owner: bool,
        /// Shell patterns; a pattern matching a directory selects all under it
        patterns: Vec<String>,
    },
    /// Delete archives and reclaim the space only they used
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete the archives a retention policy does not keep (restic's rules; docs/RETENTION.md)
    Prune {
        /// Keep the N newest archives
        #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
        keep_last: Option<u32>,
        /// Keep the newest archive of each of the N most recent hours that have one
        #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
        keep_hourly: Option<u32>,
        /// Keep the newest archive of each of the N most recent days that have one
        #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
        keep_daily: Option<u32>,
        /// Keep the newest archive of each of the N most recent ISO weeks that have one
        #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
        keep_weekly: Option<u32>,
        /// Keep the newest archive of each of the N most recent months that have one
        #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
        keep_monthly: Option<u32>,
        /// Keep the newest archive of each of the N most recent years that have one
        #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
        keep_yearly: Option<u32>,
        /// Keep every archive made within SPAN before the newest one (e.g. 7d, 1y6m, 36h)
        #[arg(long, value_name = "SPAN", value_parser = parse_span)]
        keep_within: Option<archiver::retention::Span>,
        /// Only archives whose names match this shell glob take part (e.g. 'nightly-*')
        #[arg(long = "match", value_name = "GLOB")]
        glob: Option<String>,
        /// Print what would be kept and deleted; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Print sizes: all archives, unique data, and each NAME given
    Stats { names: Vec<String> },
    /// Finish or discard an interrupted write now (every write command also does this first)
    Recover {
        /// Also discard interrupted writes whose checkpoint cannot be read (damaged, or planted
        /// with another key); needs the delete key
        #[arg(long)]
        discard_damaged: bool,
    },
    /// List the kept manifest generations, newest first, with the archives each added and removed
    /// (commits by keys without the delete permission keep the generations they replace)
    Generations,
    /// Make an earlier generation's archives current again, as a new generation (deletes nothing)
    Rollback {
        /// The generation to go back to (`archiver generations` lists them)
        generation: u64,
    },
    /// Serve repositories under DIR or in a bucket over HTTP (`--repo http://HOST:PORT/NAME` reaches them)
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port)
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// Directory holding one repository per NAME, or s3://BUCKET[/PREFIX] (each NAME under
        /// PREFIX/NAME/; several servers may front one bucket)
        #[arg(long, value_name = "DIR|S3-URL")]
        store: PathBuf,
        /// Seconds a client's lock lasts without renewal (a killed client's lock frees after this)
        #[arg(long, value_name = "SECS", default_value_t = 15)]
        lock_ttl: u64,
        /// PEM certificate chain: serve HTTPS (with --tls-key)
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Let clients create repositories (`archiver keygen --repo URL`); without it a repository
        /// is created in the store directly (`archiver keygen --repo DIR/NAME`)
        #[arg(long)]
        allow_create: bool,
        /// Seconds a request body may send nothing before it is cut with 408 (after them it must
        /// also average at least 16 KiB/s)
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        body_timeout: u64,
    },
    /// Check the repository and rebuild the local cache from it
    Fsck {
        /// Also delete stored data that no archive references
        #[arg(long)]
        prune: bool,
        /// Also read and authenticate every stored block, naming the archives and paths a damaged
        /// one affects; `--verify-data=N%` reads a random sample of about N% of the stored bytes
        #[arg(long, value_name = "N%", num_args = 0..=1, require_equals = true, default_missing_value = "100%", value_parser = parse_percent)]
        verify_data: Option<f64>,
        /// Only write the repository's config again, when it is lost or damaged: needs the full key
        /// file, which is first checked against the stored data (a local directory only)
        #[arg(long, conflicts_with_all = ["prune", "verify_data"])]
        rebuild_config: bool,
    },
    /// The newest complete archive (of those matching GLOB) and its age; with --max-age, fail when
    /// it is older than SPAN (for monitoring)
    Newest {
        /// Only archives whose names match this shell glob (e.g. 'nightly-*')
        #[arg(long = "match", value_name = "GLOB")]
        glob: Option<String>,
        /// Exit 1 when the newest is older than SPAN before now (e.g. 26h, 2d, 1m)
        #[arg(long, value_name = "SPAN", value_parser = parse_span)]
        max_age: Option<archiver::retention::Span>,
    },
    /// Print the completion script for SHELL to stdout
    Completions {
        /// The shell to complete for
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page to stdout, or write one per command into a directory
    Man {
        /// Write archiver.1 and one archiver-COMMAND.1 per command into DIR (made if missing;
        /// earlier pages are replaced), e.g. /usr/local/share/man/man1
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The latest creation time accepted: 9999-12-31 23:59:59 UTC.
const MAX_EPOCH: i64 = 253_402_300_799;

fn parse_epoch(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if (0..=MAX_EPOCH).contains(&n) => Ok(n),
        _ => Err(format!("give whole seconds since 1970-01-01 UTC, from 0 to {MAX_EPOCH}")),
    }
}

/// `N%` or `N`, 0 < N <= 100, as a fraction.
fn parse_percent(s: &str) -> Result<f64, String> {
    match s.strip_suffix('%').unwrap_or(s).parse::<f64>() {
        Ok(n) if n > 0.0 && n <= 100.0 => Ok(n / 100.0),
        _ => Err("give a share of the stored data above 0 and at most 100, e.g. --verify-data=10%".into()),
    }
}

/// A rate in bytes per second (`parse_size`'s syntax), at least 1 KiB/s.
fn parse_rate(s: &str) -> Result<u64, String> {
    match archiver::units::parse_size(s).map_err(|e| e.to_string())? {
        n if n < 1024 => Err(format!("{s:?} is below the least rate, 1K (1024 bytes per second)")),
        n => Ok(n),
    }
}

/// `90`, `90s`, `15m`, `2h` (at most a week).
fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| {
        format!("{s:?} is not a duration: give seconds, or a number with s, m or h (e.g. 15m)")
    })?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m or h (e.g. 15m)")),
    };
    if secs > 7 * 86_400 {
        return Err(format!("{s:?} is longer than a week"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

fn parse_count(s: &str) -> Result<u32, String> {
    s.parse::<u32>().map_err(|_| format!("give a count: a whole number from 0 to {}", u32::MAX))
}

fn parse_span(s: &str) -> Result<archiver::retention::Span, String> {
    archiver::retention::Span::parse(s).map_err(|e| e.to_string())
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    archiver::units::parse_size(s).map_err(|e| e.to_string())
}

impl Cli {
    /// Reads config files and fills in defaults.
    pub fn resolve(&self) -> anyhow::Result<(Settings, Config)> {
        let mut cfg = Config::default();
        match &self.config {
            Some(p) => cfg.load(p)?,
            None if !self.no_default_config => {
                let user = home().map(|h| h.join(".archiverrc"));
                for p in std::iter::once(PathBuf::from("/etc/archiver.conf")).chain(user) {
                    if p.exists() {
                        cfg.load(&p)?;
                    }
                }
            }
            None => {}
        }
        // Which default paths this command uses (the others stay empty).
        let (need_repo, need_key, need_cache) = match self.cmd {
            Cmd::Serve { .. } | Cmd::Completions { .. } | Cmd::Man { .. } => (false, false, false),
            Cmd::Keymgmt { .. } => (false, true, false),
            Cmd::Keygen { .. } => (true, true, false),
            _ => (true, true, true),
        };
        let repo = match self.repo.clone().or_else(|| cfg.get("repo").map(String::from)) {
            Some(r) => r,
            None => default_path(need_repo, REPO)?.display().to_string(),
        };
        let keyfile = match self.keyfile.clone().or_else(|| cfg.get("keyfile").map(PathBuf::from)) {
            Some(k) => k,
            None => default_path(need_key, KEYFILE)?,
        };
        let cachedir = match self.cachedir.clone().or_else(|| cfg.get("cachedir").map(PathBuf::from)) {
            Some(c) => c,
            None => default_path(need_cache, CACHEDIR)?,
        };
        let ca_cert = self.cacert.clone().or_else(|| cfg.get("cacert").map(PathBuf::from));
        let lock_wait = match (self.lock_wait, cfg.get("lock-wait")) {
            (Some(w), _) => Some(w),
            (None, Some(text)) => {
                Some(parse_wait(text).map_err(|e| anyhow::anyhow!("config option lock-wait: {e}"))?)
            }
            (None, None) => None,
        };
        let rate = |flag: Option<u64>, key: &str| -> anyhow::Result<Option<u64>> {
            match (flag, cfg.get(key)) {
                (Some(r), _) => Ok(Some(r)),
                (None, Some(text)) => {
                    Ok(Some(parse_rate(text).map_err(|e| anyhow::anyhow!("config option {key}: {e}"))?))
                }
                (None, None) => Ok(None),
            }
        };
        let both = rate(self.maxbw_rate, "maxbw-rate")?;
        let rates = archiver::repo::throttled::Rates {
            up: rate(self.maxbw_rate_up, "maxbw-rate-up")?.or(both),
            down: rate(self.maxbw_rate_down, "maxbw-rate-down")?.or(both),
        };
        Ok((Settings { repo, keyfile, cachedir, ca_cert, lock_wait, rates, passphrase: None }, cfg))
    }
}

/// Where a default path lives: (XDG variable, its fallback under HOME, the path below it, what it
/// is, the option and the environment variable that set it).
type DefaultPath = [&'static str; 6];
const REPO: DefaultPath =
    ["XDG_DATA_HOME", ".local/share", "archiver/repo", "repository", "--repo", "ARCHIVER_REPO"];
const KEYFILE: DefaultPath =
    ["XDG_CONFIG_HOME", ".config", "archiver/archiver.key", "key file", "--keyfile", "ARCHIVER_KEYFILE"];
const CACHEDIR: DefaultPath =
    ["XDG_CACHE_HOME", ".cache", "archiver", "cache directory", "--cachedir", "ARCHIVER_CACHEDIR"];

/// The default path `d` under its XDG directory or HOME. With neither set: an empty path when the
/// command does not `need` it, else one line saying HOME is unset and what to set instead (never
/// a path under `/`).
fn default_path(need: bool, d: DefaultPath) -> anyhow::Result<PathBuf> {
    let [var, fallback, rest, what, option, env] = d;
    let base = std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    match base.or_else(|| home().map(|h| h.join(fallback))) {
        Some(base) => Ok(base.join(rest)),
        None if !need => Ok(PathBuf::new()),
        None => anyhow::bail!(
            "HOME is unset, so there is no default {what}: pass {option} (or set {env} or {var})"
        ),
    }
}
