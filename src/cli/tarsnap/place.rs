//! Where a tarsnap-mode run finds its repository, key file and cache. tarsnap's files name only
//! the key file and the cache directory, so the repository comes from archiver's side:
//! `ARCHIVER_REPO`, else the `repo` key of archiver's own config file (`ARCHIVER_CONFIG`, or
//! `/etc/archiver.conf` then `~/.archiverrc`), else archiver's default. The key file is
//! `--keyfile` (or a tarsnap config's `keyfile`), else archiver's own (`ARCHIVER_KEYFILE`, its
//! config, its default). A real tarsnap key file is refused in one line: archiver cannot read
//! one. The cache lives in an `archiver` subdirectory of tarsnap's cache directory, so nothing
//! of archiver's is ever written among tarsnap's own cache files.

use super::options::{Mode, Opts};
use super::Fail;
use archiver::config::{home, Config};
use archiver::session::Settings;
use std::path::PathBuf;

/// archiver's own config file, and the repository it names (absolute).
fn archiver_side() -> Result<(Config, String), Fail> {
    let mut cfg = Config::default();
    let files: Vec<PathBuf> = match env("ARCHIVER_CONFIG") {
        Some(f) => vec![PathBuf::from(f)],
        None => std::iter::once(PathBuf::from("/etc/archiver.conf"))
            .chain(home().map(|h| h.join(".archiverrc")))
            .filter(|p| p.exists())
            .collect(),
    };
    for f in files {
        cfg.load(&f).map_err(|e| Fail::msg(format!("{e:#}")))?;
    }
    let repo = env("ARCHIVER_REPO")
        .map(|r| r.to_string_lossy().into_owned())
        .or_else(|| cfg.get("repo").map(String::from))
        .or_else(|| xdg("XDG_DATA_HOME", ".local/share", "archiver/repo").map(|p| p.display().to_string()))
        .ok_or_else(|| {
            Fail::msg("HOME is unset, so there is no default repository: set ARCHIVER_REPO".into())
        })?;
    let repo = match repo.contains("://") {
        true => repo,
        false => abs(PathBuf::from(repo)).display().to_string(),
    };
    Ok((cfg, repo))
}

fn env(v: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(v).filter(|s| !s.is_empty())
}

fn xdg(var: &str, fallback: &str, rest: &str) -> Option<PathBuf> {
    let base = env(var).map(PathBuf::from).or_else(|| home().map(|h| h.join(fallback)))?;
    Some(base.join(rest))
}

/// Absolute, before a `-C` changes the working directory.
fn abs(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// The settings `tarsnap-keygen` needs: the repository to create, the key file to write.
pub fn own_settings(keyfile: PathBuf) -> Result<Settings, Fail> {
    let (cfg, repo) = archiver_side()?;
    let ca_cert = env("ARCHIVER_CACERT").map(PathBuf::from).or_else(|| cfg.get("cacert").map(PathBuf::from));
    Ok(Settings {
        repo,
        keyfile,
        cachedir: PathBuf::new(),
        ca_cert,
        lock_wait: None,
        rates: Default::default(),
        passphrase: None,
    })
}

pub fn settings(o: &Opts, mode: Mode) -> Result<Settings, Fail> {
    let (cfg, repo) = archiver_side()?;
    let keyfile = o
        .keyfile
        .clone()
        .or_else(|| env("ARCHIVER_KEYFILE").map(PathBuf::from))
        .or_else(|| cfg.get("keyfile").map(PathBuf::from))
        .or_else(|| xdg("XDG_CONFIG_HOME", ".config", "archiver/archiver.key").filter(|k| k.exists()))
        .ok_or_else(|| Fail::msg("Keys must be provided via --keyfile option".into()))?;
    refuse_tarsnap_key(&keyfile)?;
    let cachedir = match &o.cachedir {
        Some(dir) => dir.join("archiver"),
        None => env("ARCHIVER_CACHEDIR")
            .map(PathBuf::from)
            .or_else(|| cfg.get("cachedir").map(PathBuf::from))
            .or_else(|| xdg("XDG_CACHE_HOME", ".cache", "archiver"))
            .ok_or_else(|| Fail::msg(format!("Cache directory must be specified for {}", modestr(o))))?,
    };
    let (keyfile, cachedir) = (abs(keyfile), abs(cachedir));
    let ca_cert = env("ARCHIVER_CACERT").map(PathBuf::from).or_else(|| cfg.get("cacert").map(PathBuf::from));
    let rates = archiver::repo::throttled::Rates { up: o.rate_up, down: o.rate_down };
    let mut settings =
        Settings { repo, keyfile, cachedir, ca_cert, lock_wait: None, rates, passphrase: None };
    if mode != Mode::VerifyConfig && archiver::keyfile::is_passphrased(&settings.keyfile) {
        let method = match &o.passphrase {
            Some(m) => Some(
                crate::cli::passphrase::parse_method(m)
                    .map_err(|_| Fail::msg(format!("Cannot parse passphraseentry method: {m}")))?,
            ),
            None => None,
        };
        let pass = crate::cli::passphrase::existing(method.as_ref(), &settings.keyfile)
            .map_err(|e| Fail::msg(format!("{e:#}")))?;
        settings.passphrase = Some(pass);
    }
    Ok(settings)
}

fn modestr(o: &Opts) -> &'static str {
    o.mode.map_or("", |m| m.1)
}

/// A tarsnap key file (its first line says so) cannot be used: say which and what to do.
pub fn refuse_tarsnap_key(path: &std::path::Path) -> Result<(), Fail> {
    use std::io::Read;
    let mut head = [0u8; 27];
    let is_tarsnaps = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head == b"# START OF TARSNAP KEY FILE");
    match is_tarsnaps {
        true => Err(Fail::msg(format!(
            "Cannot read key file: {}: it is a key for the tarsnap service, which archiver cannot use; make an archiver key with `tarsnap-keygen --keyfile NEW --user U --machine M` (archiver's) and name it with --keyfile",
            path.display()
        ))),
        false => Ok(()),
    }
}
