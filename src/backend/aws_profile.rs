//! The AWS shared configuration files, which `object_store` does not read: `AWS_PROFILE` (or
//! `default`) in `~/.aws/credentials` and `~/.aws/config` (or the files `AWS_SHARED_CREDENTIALS_FILE`
//! and `AWS_CONFIG_FILE` name), as the AWS CLI reads them: `[NAME]` sections in the credentials
//! file, `[profile NAME]` (and `[default]`) in the config file, a key in the credentials file
//! winning over the same key in the config file.
//!
//! Precedence, as everywhere in AWS tooling: variables first (`AWS_ACCESS_KEY_ID`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, ...), then the profile, then the defaults (region `us-east-1`; without
//! any credentials, object_store's own chain: container or instance credentials).
//!
//! Invariants: no value read here appears in a message (an error names the file, the profile and
//! the key, never what a key holds); a profile named by `AWS_PROFILE` that neither file has is an
//! error, not a silent fall-back to other credentials; only the keys below are read.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a profile sets (each `None` when neither file sets it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The INI sections of `text`: section name → key → value (keys lowercased, values trimmed).
/// Comments (`#`, `;`) and lines outside a section are skipped.
fn sections(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            // Nested settings (`s3 =` followed by indented lines) are not read: their keys are
            // not ours, and the indented lines have no section of their own.
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => bail!("cannot read the AWS configuration file {}: {e}", path.display()),
    }
}

/// The shared files' paths: the variables', else `~/.aws/credentials` and `~/.aws/config`.
fn paths() -> (Option<PathBuf>, Option<PathBuf>) {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let var = |name: &str, file: &str| {
        std::env::var_os(name).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(file)))
    };
    (var("AWS_SHARED_CREDENTIALS_FILE", "credentials"), var("AWS_CONFIG_FILE", "config"))
}

/// The profile `AWS_PROFILE` names (else `default`) from the shared files. `None` when it is
/// the default profile and neither file has it.
pub fn load() -> Result<Option<Profile>> {
    let named = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let (creds, config) = paths();
    let creds = match creds {
        Some(p) => read(&p)?,
        None => None,
    };
    let config = match config {
        Some(p) => read(&p)?,
        None => None,
    };
    let name = named.clone().unwrap_or_else(|| "default".into());
    let found = resolve(&name, creds.as_deref(), config.as_deref());
    match (found, named) {
        (Some(p), _) => Ok(Some(p)),
        (None, Some(name)) => bail!(
            "AWS_PROFILE={name}: no profile {name:?} in ~/.aws/credentials or ~/.aws/config (or the files AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name); add it, or unset AWS_PROFILE"
        ),
        (None, None) => Ok(None),
    }
}

/// Profile `name` from the texts of the credentials and config files; `None` if neither has it.
pub fn resolve(name: &str, creds: Option<&str>, config: Option<&str>) -> Option<Profile> {
    let creds = creds.map(sections).unwrap_or_default();
    let config = config.map(sections).unwrap_or_default();
    let in_config = if name == "default" { "default".to_string() } else { format!("profile {name}") };
    let (a, b) = (creds.get(name), config.get(&in_config));
    if a.is_none() && b.is_none() {
        return None;
    }
    let get = |key: &str| a.and_then(|s| s.get(key)).or_else(|| b.and_then(|s| s.get(key))).cloned();
    Some(Profile {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: get("region"),
        endpoint_url: get("endpoint_url"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDS: &str = "# comment\n[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key = s3cr3t\n\n[backup]\nAWS_ACCESS_KEY_ID=AKIBACKUP\naws_secret_access_key = other\naws_session_token = tok\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile backup]\nregion = eu-central-1\nendpoint_url = http://127.0.0.1:9000\naws_access_key_id = IGNORED\ns3 =\n  addressing_style = path\n[profile onlyconfig]\nregion=us-west-2\n";

    #[test]
    fn profiles_are_read_as_the_aws_cli_reads_them() {
        let d = resolve("default", Some(CREDS), Some(CONFIG)).unwrap();
        assert_eq!(d.access_key_id.as_deref(), Some("AKIDEFAULT"));
        assert_eq!(d.region.as_deref(), Some("eu-west-1"));
        let b = resolve("backup", Some(CREDS), Some(CONFIG)).unwrap();
        assert_eq!(b.access_key_id.as_deref(), Some("AKIBACKUP"), "the credentials file wins");
        assert_eq!(b.session_token.as_deref(), Some("tok"));
        assert_eq!(b.region.as_deref(), Some("eu-central-1"));
        assert_eq!(b.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        let c = resolve("onlyconfig", Some(CREDS), Some(CONFIG)).unwrap();
        assert_eq!((c.access_key_id, c.region.as_deref()), (None, Some("us-west-2")));
        assert_eq!(resolve("missing", Some(CREDS), Some(CONFIG)), None);
        // `[backup]` in the config file is not `[profile backup]`.
        assert_eq!(resolve("x", None, Some("[x]\nregion=a\n")), None);
        assert_eq!(resolve("default", None, None), None);
    }
}
