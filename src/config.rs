//! Configuration files in tarsnap's format: one option per line, `name value` or a bare `name`
//! for flags, `#` starts a comment, a leading `~` in a value means the home directory. Option
//! names equal the long command-line options; the command line and environment win over files.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every key a config file may set, with whether it takes a value.
pub const KEYS: &[(&str, bool)] = &[
    ("repo", true),
    ("keyfile", true),
    ("cachedir", true),
    ("cacert", true),
    ("passphrase", true),
    ("print-stats", false),
    ("quiet", false),
    ("lock-wait", true),
    ("maxbw-rate", true),
    ("maxbw-rate-up", true),
    ("maxbw-rate-down", true),
    ("checkpoint-bytes", true),
    ("checkpoint-interval", true),
    ("maxbw", true),
    ("keep-part", false),
    ("exclude", true),
    ("include", true),
    ("exclude-file", true),
    ("exclude-caches", false),
    ("exclude-if-present", true),
    ("one-file-system", false),
    ("no-xattrs", false),
    ("no-acls", false),
];

/// Keys that may be given on several lines, each adding a value (patterns, names).
pub const REPEATABLE: &[&str] = &["exclude", "include", "exclude-file", "exclude-if-present"];

#[derive(Debug, Default, Clone)]
pub struct Config {
    pub values: BTreeMap<String, String>,
    /// The values of the `REPEATABLE` keys, in the order read.
    pub lists: BTreeMap<String, Vec<String>>,
}

impl Config {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// Every value of a repeatable key (none if it was not given).
    pub fn all(&self, key: &str) -> &[String] {
        self.lists.get(key).map_or(&[], Vec::as_slice)
    }

    /// Reads `path` over the values already present (later files override earlier ones).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        self.parse(&text, path)
    }

    pub fn parse(&mut self, text: &str, path: &Path) -> Result<()> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = match line.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim()),
                None => (line, ""),
            };
            let at = || format!("config file {} line {}", path.display(), i + 1);
            let Some(&(_, takes_value)) = KEYS.iter().find(|(k, _)| *k == key) else {
                bail!("{}: unknown option {key:?} (tarsnap.conf.sample lists the options)", at());
            };
            if takes_value && value.is_empty() {
                bail!("{}: option {key:?} needs a value", at());
            }
            if !takes_value && !value.is_empty() {
                bail!("{}: option {key:?} takes no value", at());
            }
            let value = expand_tilde(value).ok_or_else(|| {
                anyhow::anyhow!("{}: {key} starts with `~` but HOME is unset: write the path in full", at())
            })?;
            if REPEATABLE.contains(&key) {
                self.lists.entry(key.to_string()).or_default().push(value);
            } else {
                self.values.insert(key.to_string(), value);
            }
        }
        Ok(())
    }
}

/// The home directory, from HOME; None when HOME is unset or empty (then there is no default
/// path under it: callers say so instead of using `/`).
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// `~` or `~/...` with the home directory; None when that is needed and HOME is unset.
pub fn expand_tilde(v: &str) -> Option<String> {
    match v.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            Some(format!("{}{rest}", home()?.display()))
        }
        _ => Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tarsnap_format() {
        let mut c = Config::default();
        c.parse("# comment\n\nrepo ~/r  # trailing\nprint-stats\n", Path::new("f")).unwrap();
        assert_eq!(c.get("repo").unwrap(), format!("{}/r", home().unwrap().display()));
        assert!(c.flag("print-stats"));
        let err = Config::default().parse("bogus 1\n", Path::new("f")).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("bogus"), "{err}");
        assert!(Config::default().parse("repo\n", Path::new("f")).is_err());
    }
}
