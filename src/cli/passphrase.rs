//! Getting a key file's passphrase, as tarsnap 1.0.40 does: `--passphrase METHOD:ARG` (or the
//! config key `passphrase`) with the methods `dev:tty-stdin`, `dev:stdin-once`, `dev:tty-once`,
//! `env:VAR` and `file:PATH`; without one, a prompt on the terminal (`/dev/tty`, echo off).
//! A new passphrase asked on a terminal is asked twice, except with `dev:tty-once`.
//!
//! Invariants: a passphrase never appears in a message; with no method and no terminal, the
//! command stops in one line naming the methods instead of waiting on a pipe.

use anyhow::{bail, Context, Result};
use archiver::keyseal::{self, Cost, Kdf, Passphrase};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options for a new key file's protection (`keygen`, `keymgmt`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NewKey {
    /// Protect the new key file with a passphrase (scrypt, calibrated on this machine)
    #[arg(long)]
    pub passphrased: bool,
    /// With --passphrased: let scrypt use at most SIZE of memory (e.g. 256M; default 1G)
    #[arg(long, value_name = "SIZE", value_parser = super::args::parse_size, requires = "passphrased")]
    pub passphrase_mem: Option<u64>,
    /// With --passphrased: let scrypt take about SECS seconds (default 1; e.g. 0.5)
    #[arg(long, value_name = "SECS", value_parser = parse_secs, requires = "passphrased")]
    pub passphrase_time: Option<Duration>,
}

impl NewKey {
    /// The scrypt parameters for the new key file, calibrated now (None: not passphrased).
    pub fn kdf(&self) -> Option<Kdf> {
        self.passphrased.then(|| {
            let mut cost = Cost::default();
            cost.max_mem = self.passphrase_mem.unwrap_or(cost.max_mem);
            cost.max_time = self.passphrase_time.unwrap_or(cost.max_time);
            keyseal::calibrate(cost)
        })
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 3600 (e.g. 0.5, 2)")),
    }
}

/// Where a passphrase comes from (`--passphrase METHOD:ARG`).
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// The terminal if there is one, else one line of standard input.
    TtyStdin,
    /// One line of standard input (asked once, even for a new passphrase).
    StdinOnce,
    /// The terminal, asked once even for a new passphrase.
    TtyOnce,
    Env(String),
    File(PathBuf),
}

pub fn parse_method(s: &str) -> Result<Method, String> {
    let (method, arg) = s.split_once(':').unwrap_or((s, ""));
    match (method, arg) {
        ("dev", "tty-stdin") => Ok(Method::TtyStdin),
        ("dev", "stdin-once") => Ok(Method::StdinOnce),
        ("dev", "tty-once") => Ok(Method::TtyOnce),
        ("env", var) if !var.is_empty() => Ok(Method::Env(var.to_string())),
        ("file", path) if !path.is_empty() => Ok(Method::File(PathBuf::from(path))),
        _ => Err(format!(
            "{s:?} is not a passphrase method: use dev:tty-stdin, dev:stdin-once, dev:tty-once, env:VAR or file:PATH"
        )),
    }
}

/// The passphrase that opens the existing key file `keyfile`.
pub fn existing(method: Option<&Method>, keyfile: &Path) -> Result<Passphrase> {
    get(method, keyfile, false)
}

/// A passphrase for the new key file `keyfile`: confirmed when asked on a terminal (except with
/// `dev:tty-once`); an empty one is refused.
pub fn new(method: Option<&Method>, keyfile: &Path) -> Result<Passphrase> {
    get(method, keyfile, true)
}

fn get(method: Option<&Method>, keyfile: &Path, confirm: bool) -> Result<Passphrase> {
    let k = keyfile.display();
    let secret = match method {
        None | Some(Method::TtyOnce) | Some(Method::TtyStdin) if has_tty() => {
            let twice = confirm && method != Some(&Method::TtyOnce);
            prompt(keyfile, twice)?
        }
        Some(Method::TtyOnce) => bail!("--passphrase dev:tty-once: there is no terminal to ask on for key file {k}"),
        None => bail!(
            "key file {k} needs a passphrase and there is no terminal to ask on: give --passphrase env:VAR, file:PATH or dev:stdin-once"
        ),
        Some(Method::TtyStdin) | Some(Method::StdinOnce) => stdin_line()
            .with_context(|| format!("cannot read the passphrase for key file {k} from standard input"))?,
        Some(Method::Env(var)) => match std::env::var_os(var) {
            Some(v) => std::os::unix::ffi::OsStringExt::into_vec(v),
            None => bail!("--passphrase env:{var}: the environment variable {var} is not set"),
        },
        Some(Method::File(p)) => {
            let text = std::fs::read(p).map_err(|e| {
                anyhow::anyhow!("--passphrase file:{}: cannot read it: {e}", p.display())
            })?;
            let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
            first.strip_suffix(b"\r").unwrap_or(first).to_vec()
        }
    };
    if confirm && secret.is_empty() {
        bail!("an empty passphrase protects nothing: choose one, or leave out --passphrased");
    }
    Ok(Passphrase::new(secret))
}

fn has_tty() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").is_ok()
}

/// Asks on the terminal with echo off (twice when `twice`).
fn prompt(keyfile: &Path, twice: bool) -> Result<Vec<u8>> {
    let k = keyfile.display();
    let first = rpassword::prompt_password(format!("Please enter passphrase for keyfile {k}: "))
        .context("cannot read a passphrase from the terminal")?;
    if twice {
        let again = zeroize::Zeroizing::new(
            rpassword::prompt_password(format!("Please confirm passphrase for keyfile {k}: "))
                .context("cannot read a passphrase from the terminal")?,
        );
        if *again != first {
            bail!("the passphrases do not match; nothing was written");
        }
    }
    Ok(first.into_bytes())
}

/// One line of standard input, read a byte at a time so nothing after it is consumed.
fn stdin_line() -> Result<Vec<u8>> {
    let mut stdin = std::io::stdin().lock();
    if stdin.is_terminal() {
        eprint!("Please enter passphrase: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stdin.read(&mut byte)? {
            0 if line.is_empty() => bail!("standard input is empty"),
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ if line.len() >= 64 << 10 => bail!("the line is longer than 64 KiB"),
            _ => line.push(byte[0]),
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_as_tarsnap_spells_them() {
        assert_eq!(parse_method("dev:tty-stdin"), Ok(Method::TtyStdin));
        assert_eq!(parse_method("dev:stdin-once"), Ok(Method::StdinOnce));
        assert_eq!(parse_method("dev:tty-once"), Ok(Method::TtyOnce));
        assert_eq!(parse_method("env:PW"), Ok(Method::Env("PW".into())));
        assert_eq!(parse_method("file:/a:b"), Ok(Method::File("/a:b".into())));
        for bad in ["", "env:", "file:", "dev:tty", "stdin", "pass:x"] {
            assert!(parse_method(bad).is_err(), "{bad}");
        }
    }
}
