//! `archiver fsck --rebuild-config`: writes the plain `config` object of a local repository again
//! when it is lost (deleted) or damaged (unparseable, or failing `keycheck::check`), from a key
//! file holding every secret. The config holds nothing that is not derived from the key file and
//! the repository id, so it can be made again (`keycheck::config_bytes`), once it is sure the key
//! file is this repository's. Steps, in order; each refusal is one line and writes nothing:
//!
//! 1. the key file must hold every access key (a restricted key cannot make the verifiers of the
//!    secrets it lacks), and the repository must be a local directory holding repository data
//!    (a served one is rebuilt on the server, on its directory: there is no route for it);
//! 2. under the repository lock, a config that parses and passes `check` with this key file is
//!    intact: refused;
//! 3. the key file is proven against the stored data (`proof`): something sealed opens with it,
//!    and its id-key and chunk-seed are checked where a stored block or file can check them;
//! 4. a readable line of the damaged config that disagrees with the key file about a secret the
//!    data could not check, by more than a few digits (a damaged line differs in the digits a
//!    flip hit; another key file's verifier in all of them), is a conflict nothing can settle:
//!    refused;
//! 5. the repository id is kept when the damaged config still names one (confirmed by its key
//!    check when that opens), so the local cache, kept per repository id, stays valid; otherwise
//!    a new one is drawn as `keygen` does;
//! 6. the damaged config is kept beside it as `config.damaged-<UTC time>` (create-if-absent), then
//!    the new one replaces it atomically (temporary file, fsync, rename, fsync of the directory:
//!    the local backend's `put`, used for nothing else), and the repository is opened with it.

mod proof;

use crate::access::PERMS;
use crate::backend::local::LocalBackend;
use crate::backend::{Backend, ErrorKind};
use crate::chunker::Keying;
use crate::crypto::Keys;
use crate::keycheck;
use crate::keyfile::KeyFile;
use crate::session::{Session, Settings};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;

/// Verifier lines of the config, and the secret each is derived from.
const VERIFIERS: [(&str, &str); 5] = [
    ("check-id-key", "id-key"),
    ("check-chunk-seed", "chunk-seed"),
    ("access-read", "access-read"),
    ("access-write", "access-write"),
    ("access-delete", "access-delete"),
];

/// A damaged verifier line differs from the key file's in the digits the damage hit; one made
/// from another secret differs in nearly all of its 64.
const FEW_DIGITS: usize = 4;

/// Rebuilds the config of the repository `settings` names; returns what it did, one line each.
pub fn rebuild_config(settings: &Settings) -> Result<Vec<String>> {
    let repo = settings.repo.as_str();
    if repo.contains("://") {
        bail!(
            "repository {repo} is not a local directory: a config is rebuilt where the repository is stored; {}",
            keycheck::rebuild_advice(repo)
        );
    }
    let kf = crate::keyfile::read_with(&settings.keyfile, settings.passphrase.as_ref())?;
    if let Some(missing) = PERMS.into_iter().find(|&p| !kf.access.has(p)) {
        bail!(
            "key file {} holds {}, but rebuilding a config needs the full key file made by `archiver keygen`: the config holds a verifier for every access key, and the {} key is missing",
            settings.keyfile.display(),
            kf.access.describe(),
            missing.name()
        );
    }
    let dir = Path::new(repo);
    let backend = LocalBackend::new(dir);
    let old = current(&backend, &kf, settings)?;
    if !keycheck::holds_repository_data(dir) {
        bail!(
            "{repo} holds no repository data (no packs, index or manifest folder): there is nothing to rebuild a config for; `archiver keygen` makes a new repository"
        );
    }
    let r = crate::repo::open(repo, &settings.connect(&kf.access))?;
    let _lock = r.lock(&crate::process::owner("fsck --rebuild-config"))?;
    // Again under the lock: another rebuild may have finished meanwhile.
    let old = match current(&backend, &kf, settings)? {
        again if again == old => again,
        _ => bail!(
            "the config of repository {repo} changed while this rebuild waited for the lock; run it again"
        ),
    };
    let old_text = old.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
    let (id, id_note) = choose_id(&old_text, &kf.keys, &settings.cachedir)?;
    let key_id = keycheck::key_id(&kf.keys);
    let kf2 = kf.clone();
    let (keys, access) = (Arc::new(kf.keys), kf.access);
    let chunking = Keying::CURRENT;
    let session = Session {
        repo: r,
        keys,
        access,
        repo_id: id.clone(),
        key_id,
        chunking,
        settings: settings.clone(),
        write_retired: None,
    };
    let proof = proof::prove(&session, &backend)?;
    let new = keycheck::config_bytes(&kf2, &id, old_chunking(&old_text, &proof));
    conflicts(&old_text, &String::from_utf8_lossy(&new), &proof, &settings.keyfile)?;

    let mut lines = vec![proof.describe(&settings.keyfile)];
    match &old {
        Some(old) => {
            let kept = keep_damaged(&backend, old)?;
            lines.push(format!("kept the damaged config as {}", dir.join(kept).display()));
        }
        None => lines.push("the config was missing".into()),
    }
    // Atomic: readers see the old config or the new one, never a part.
    backend
        .put(crate::layout::CONFIG, &new)
        .with_context(|| format!("cannot write the new config of repository {repo}"))?;
    lines.push(format!("wrote a new config for repository id {id} ({id_note})"));
    Session::open(settings).context("the new config was written but does not open; this is a bug")?;
    lines.push("run `archiver fsck` to check the rest of the repository".into());
    Ok(lines)
}

/// The stored config, if any; refuses when it is intact (parses and passes `check` with `keys`).
fn current(backend: &LocalBackend, keys: &KeyFile, settings: &Settings) -> Result<Option<Vec<u8>>> {
    let repo = settings.repo.as_str();
    let old = match backend.get(crate::layout::CONFIG) {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => bail!("cannot read the config of repository {repo}: {e}"),
    };
    // The newest access list, read as every client reads it (`Repository::access_list`).
    use crate::repo::Repository;
    let list = crate::repo::objects::ObjectRepo::local(repo)
        .access_list()
        .map_err(|e| anyhow::anyhow!("cannot read the access list of repository {repo}: {e}"))?;
    let intact = keycheck::parse(&old, repo)
        .and_then(|p| keycheck::check(keys, &p, &old, list.as_deref(), &settings.keyfile, repo));
    if intact.is_ok() {
        bail!(
            "the config of repository {repo} is intact and key file {} belongs to it: nothing to rebuild, nothing was written",
            settings.keyfile.display()
        );
    }
    Ok(Some(old))
}

/// The value of the first line `name VALUE` of a config's text.
/// How the rebuilt config keys the chunker: as a stored file proved it was cut, else as the
/// damaged config's readable `chunker` line says, else as a config that has the lines before
/// it but none (`SeedXor`: made before the line existed), else as `keygen` would.
fn old_chunking(old: &str, proof: &proof::Proof) -> Keying {
    let line = value(old, "chunker").and_then(Keying::parse);
    let older =
        line.is_none() && value(old, "check-chunk-seed").is_some() && value(old, "access-read").is_some();
    proof.chunking.or(line).unwrap_or(if older { Keying::SeedXor } else { Keying::CURRENT })
}

fn value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.split_once(' ').filter(|(n, _)| *n == name).map(|(_, v)| v))
}

/// The repository id for the new config, and where it comes from.
fn choose_id(old: &str, keys: &Keys, cachedir: &Path) -> Result<(String, &'static str)> {
    let is_id = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let line_id = value(old, "id").filter(|v| is_id(v)).map(String::from);
    // The key check is sealed with the id: if it opens with a candidate, that is the id. The
    // local cache keeps one folder per repository id, so those are candidates too.
    if let Some(check) = value(old, "key-check").and_then(|v| hex::decode(v).ok()) {
        let cached = std::fs::read_dir(cachedir).into_iter().flatten().flatten();
        let cached = cached.filter_map(|e| e.file_name().into_string().ok()).filter(|n| is_id(n));
        for candidate in line_id.clone().into_iter().chain(cached) {
            if keycheck::key_check_opens(keys, &candidate, &check) {
                return Ok((
                    candidate,
                    "the damaged config's key check confirms it; the local cache stays valid",
                ));
            }
        }
    }
    match line_id {
        Some(id) => Ok((id, "kept from the damaged config, so the local cache stays valid")),
        None => Ok((
            crate::process::random_id()?,
            "a new id, since the old one could not be read: the next command rebuilds the local cache from the repository's index",
        )),
    }
}

/// Refuses when a readable verifier line of the damaged config `old` disagrees with the key
/// file's (`new`) about a secret the stored data did not check, in more than a few digits.
fn conflicts(old: &str, new: &str, proof: &proof::Proof, keyfile: &Path) -> Result<()> {
    for (line, secret) in VERIFIERS {
        let (Some(was), Some(now)) = (value(old, line), value(new, line)) else { continue };
        if was.len() != now.len() || !was.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue; // unreadable: it tells nothing
        }
        let differ = was.bytes().zip(now.bytes()).filter(|(a, b)| a != b).count();
        let proven = match line {
            "check-id-key" => proof.id_key,
            "check-chunk-seed" => proof.id_key && proof.chunking.is_some(),
            _ => false,
        };
        if differ > FEW_DIGITS && !proven {
            bail!(
                "the damaged config's {line} line is readable and does not match key file {}'s {secret} ({differ} of {} digits differ), and nothing stored can tell which of the two is damaged: no config was written; use an intact copy of the key file made by `archiver keygen` for this repository",
                keyfile.display(),
                now.len()
            );
        }
    }
    Ok(())
}

/// Stores the damaged config as `config.damaged-<UTC time>` (create-if-absent, fsynced); returns
/// the name.
fn keep_damaged(backend: &LocalBackend, old: &[u8]) -> Result<String> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stamp = crate::query::format_time(secs as i64).replace(' ', "T").replace(':', "");
    let mut n = 0;
    loop {
        let name = match n {
            0 => format!("config.damaged-{stamp}Z"),
            n => format!("config.damaged-{stamp}Z-{n}"),
        };
        match backend.put_new(&name, old) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind == ErrorKind::Exists => n += 1,
            Err(e) => bail!("cannot keep the damaged config: {e}"),
        }
    }
}
