//! The repository config and how a key file is bound to it.
//!
//! `keygen` writes the plain `config` object once (create-if-absent, never changed). Besides the
//! format and the repository id it holds one verifier per secret a key file can hold, and
//! opening a repository checks every secret the key file holds against its verifier before
//! anything is read or written with it: `enc-key` must open the sealed `key-check`, `id-key`
//! and `chunk-seed` must give `check-id-key` and `check-chunk-seed`, and each access key must be
//! the secret half of its `access-*` verifier. A key file holding only some secrets (keymgmt) is
//! checked on the ones it holds, so no check needs a secret a key file lacks. Invariant: a key
//! file with one bit of any secret changed is refused in one line; verifiers reveal nothing of the
//! secrets (keyed BLAKE3 under fixed contexts, the chunk-seed's keyed by the 256-bit id-key).
//!
//! Format 2 configs (docs/FORMAT.md) add `data-public`, the key blocks are sealed to, and
//! `check-data-psk`: a key file's `data-public` and `data-psk` must match them, and its
//! `data-secret`, when it holds one, must be the secret half of `data-public`. A writer with a
//! wrong `data-public` would seal data no reader opens, so this check comes before any write.
//!
//! Repositories made before the `check-*` lines existed have none: there `id-key` and
//! `chunk-seed` are not checked (the rest is), and the local cache, kept per key id, keeps a
//! damaged key file from spoiling the cache of the right one (docs/FORMAT.md).
//!
//! A config that is lost or damaged is written again by `archiver fsck --rebuild-config`
//! (`rebuild`), so every error about one says so (`rebuild_advice`).

pub mod in_force;

use crate::access::{Perm, PERMS};
use crate::chunker::Keying;
use crate::crypto::Keys;
use crate::keyfile::KeyFile;
use anyhow::{bail, Result};
use std::path::Path;

/// The format `keygen` writes; format 1 repositories (everything sealed with `enc-key`) are
/// still read and written in their own format.
pub const FORMAT: u32 = 2;
const FORMATS: [u32; 2] = [1, 2];

/// What a repository config says (the access verifiers are read by `Verifiers::from_config`).
pub struct RepoConfig {
    pub id: String,
    /// How the chunker's gear table is keyed (`chunker` line; none: `SeedXor`).
    pub chunking: Keying,
    /// 1 or 2.
    pub format: u32,
    key_check: Vec<u8>,
    data_public: Option<[u8; 32]>,
    check_data_psk: Option<[u8; 32]>,
    check_id_key: Option<[u8; 32]>,
    check_chunk_seed: Option<[u8; 32]>,
}

fn key_check_ad(repo_id: &str) -> Vec<u8> {
    format!("archiver key check {repo_id}").into_bytes()
}

fn id_key_check(keys: &Keys) -> [u8; 32] {
    *blake3::keyed_hash(&keys.id, b"archiver key check v1 id-key").as_bytes()
}

fn chunk_seed_check(keys: &Keys) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&keys.id);
    h.update(b"archiver key check v1 chunk-seed").update(&keys.chunk_seed.to_le_bytes());
    *h.finalize().as_bytes()
}

/// A hash of the 256-bit random `data-psk` alone, so that it is checked whatever else differs.
fn data_psk_check(psk: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("archiver key check v2 data-psk", psk)
}

/// The id naming the secrets a key file shares with the restricted key files made from it
/// (`id-key` and `chunk-seed`, which every key that reads or writes archives holds): 32 hex.
pub fn key_id(keys: &Keys) -> String {
    let mut h = blake3::Hasher::new_keyed(&keys.id);
    h.update(b"archiver key id v1").update(&keys.chunk_seed.to_le_bytes());
    hex::encode(&h.finalize().as_bytes()[..16])
}

/// The plain `config` object `keygen` writes for `keys` (docs/FORMAT.md).
/// A repository keyed `SeedXor` gets no `chunker` line, as before the line existed.
pub fn config_bytes(kf: &KeyFile, repo_id: &str, chunking: Keying) -> Vec<u8> {
    let keys = &kf.keys;
    let check = keys.seal(&key_check_ad(repo_id), b"archiver");
    let chunker = match chunking {
        Keying::SeedXor => String::new(),
        k => format!("chunker {}\n", k.name()),
    };
    let (format, data) = match &keys.data {
        None => (1, String::new()),
        Some(d) => (
            FORMAT,
            format!(
                "data-public {}\ncheck-data-psk {}\n",
                hex::encode(d.public),
                hex::encode(data_psk_check(&d.psk))
            ),
        ),
    };
    format!(
        "archiver-repository\nformat {format}\nid {repo_id}\nkey-check {}\ncheck-id-key {}\ncheck-chunk-seed {}\n{data}{chunker}{}",
        hex::encode(check),
        hex::encode(id_key_check(keys)),
        hex::encode(chunk_seed_check(keys)),
        kf.access.verifiers().config_lines()
    )
    .into_bytes()
}

/// What to do about the lost or damaged config of repository `repo` (a directory or a URL).
pub fn rebuild_advice(repo: &str) -> String {
    if repo.starts_with("http://") || repo.starts_with("https://") {
        "the server's operator rebuilds it by running `archiver fsck --rebuild-config --repo STORE/NAME` on the server's directory, with the repository's full key file".into()
    } else {
        "with the full key file made by `archiver keygen` (every access key), `archiver fsck --rebuild-config` checks it against the stored data and writes a new config".into()
    }
}

/// Whether directory `dir` holds repository data (a `packs`, `index` or `manifest` folder): a
/// repository that lost its config, not an empty or foreign directory.
pub fn holds_repository_data(dir: &Path) -> bool {
    ["packs", "index", "manifest"].iter().any(|d| dir.join(d).is_dir())
}

/// Whether `keys` open the sealed key check `sealed` made for repository id `repo_id`.
pub fn key_check_opens(keys: &Keys, repo_id: &str, sealed: &[u8]) -> bool {
    keys.open(&key_check_ad(repo_id), sealed).is_ok()
}

/// Whether `config` is an archiver config, perhaps damaged: its first line, or any of our lines
/// after it, is there.
pub fn looks_ours(config: &[u8]) -> bool {
    String::from_utf8_lossy(config).lines().enumerate().any(|(i, l)| {
        (i == 0 && l == "archiver-repository") || l.starts_with("key-check ") || l.starts_with("format ")
    })
}

/// Reads a repository config (`repo` names it in errors). Every error is one line.
pub fn parse(config: &[u8], repo: &str) -> Result<RepoConfig> {
    let damaged = |what: &str| {
        anyhow::anyhow!("repository {repo} has a damaged config file ({what}); {}", rebuild_advice(repo))
    };
    let text = String::from_utf8_lossy(config);
    let mut lines = text.lines();
    if lines.next() != Some("archiver-repository") {
        if looks_ours(config) {
            return Err(damaged("its first line"));
        }
        bail!("{repo} is not an archiver repository (its config file is not ours)");
    }
    let (mut format, mut id, mut key_check) = (None, None, None);
    let (mut check_id_key, mut check_chunk_seed) = (None, None);
    let mut chunking = None;
    let (mut data_public, mut check_data_psk) = (None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(' ') else { continue };
        let slot = match name {
            "format" => {
                let f = value.parse::<u32>().map_err(|_| damaged("its format line"))?;
                if !FORMATS.contains(&f) {
                    bail!("repository {repo} has format version {f}; this archiver reads versions 1 and {FORMAT}: upgrade archiver");
                }
                format = Some(f);
                continue;
            }
            "id" => {
                id = Some(value.to_string());
                continue;
            }
            "key-check" => {
                key_check = Some(hex::decode(value).map_err(|_| damaged("its key-check line"))?);
                continue;
            }
            "chunker" => {
                let Some(k) = Keying::parse(value) else {
                    bail!("repository {repo} cuts files with chunker {value:?}, which this archiver does not know: upgrade archiver");
                };
                if chunking.replace(k).is_some() {
                    return Err(damaged("its chunker line"));
                }
                continue;
            }
            "check-id-key" => &mut check_id_key,
            "data-public" => &mut data_public,
            "check-data-psk" => &mut check_data_psk,
            "check-chunk-seed" => &mut check_chunk_seed,
            _ => continue, // later versions' lines
        };
        let v: Option<[u8; 32]> = hex::decode(value).ok().and_then(|v| v.try_into().ok());
        if slot.is_some() || v.is_none() {
            return Err(damaged(&format!("its {name} line")));
        }
        *slot = v;
    }
    let Some(format) = format else {
        return Err(damaged("it has no format line"));
    };
    if (format == 2) != (data_public.is_some() && check_data_psk.is_some()) {
        return Err(damaged("its data-public and check-data-psk lines do not fit its format"));
    }
    let (Some(id), Some(key_check)) = (id, key_check) else {
        return Err(damaged("it lacks the id or key-check line"));
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(damaged("its id line"));
    }
    let chunking = chunking.unwrap_or(Keying::SeedXor);
    Ok(RepoConfig {
        id,
        chunking,
        format,
        key_check,
        data_public,
        check_data_psk,
        check_id_key,
        check_chunk_seed,
    })
}

/// Checks every secret `keys` holds against `config` (of which `parsed` is the parse) under the
/// newest access list `list`: one line naming the secrets that do not match, or `Ok` with when
/// the key file's write key was retired (revoked), if it was.
pub fn check(
    kf: &KeyFile,
    parsed: &RepoConfig,
    config: &[u8],
    list: Option<&[u8]>,
    keyfile: &Path,
    repo: &str,
) -> Result<Option<u64>> {
    let keys = &kf.keys;
    let mut wrong: Vec<String> = Vec::new();
    if keys.open(&key_check_ad(&parsed.id), &parsed.key_check).is_err() {
        wrong.push("enc-key".into());
    }
    let id_ok = parsed.check_id_key.is_none_or(|c| c == id_key_check(keys));
    if !id_ok {
        wrong.push("id-key".into());
    }
    // Keyed by the id-key: only meaningful when that matched.
    if id_ok && parsed.check_chunk_seed.is_some_and(|c| c != chunk_seed_check(keys)) {
        wrong.push("chunk-seed".into());
    }
    match (&keys.data, parsed.data_public, parsed.check_data_psk) {
        (None, None, _) => {}
        (Some(d), Some(public), Some(psk_check)) => {
            if d.public != public {
                wrong.push("data-public".into());
            } else {
                if data_psk_check(&d.psk) != psk_check {
                    wrong.push("data-psk".into());
                }
                if d.secret().is_some_and(|s| crate::crypto::datakeys::public_of(&s) != public) {
                    wrong.push("data-secret".into());
                }
            }
        }
        // A format 1 key file for a format 2 repository, or the other way round.
        _ => wrong.push("format (data-public)".into()),
    }
    let verifiers = in_force::verifiers(config, &parsed.id, list).map_err(|what| match list {
        Some(_) if what.starts_with("its access list") => anyhow::anyhow!(
            "repository {repo} has a damaged access list (the newest access/ object, which says which write key is in force: {what}); nothing was written: restore access/ from a copy of the repository"
        ),
        _ => anyhow::anyhow!("repository {repo} has a damaged config file ({what}); {}", rebuild_advice(repo)),
    })?;
    let ours = kf.access.verifiers();
    let mut retired = None;
    for p in PERMS.into_iter().filter(|&p| kf.access.has(p) && ours.get(p) != verifiers.get(p)) {
        match ours.get(p).and_then(|k| verifiers.retired_at(p, k)) {
            Some(t) if p == Perm::Write => retired = Some(t),
            _ => wrong.push(format!("access-{}", p.name())),
        }
    }
    let Some(last) = wrong.pop() else { return Ok(retired) };
    let what = match wrong.is_empty() {
        true => format!("its {last} does not match"),
        false => format!("its {} and {last} do not match", wrong.join(", ")),
    };
    bail!(
        "key file {} does not belong to repository {repo}, or is damaged ({what} the repository's): use the key file made by `archiver keygen` for this repository (if it is that key file, the repository's config may be damaged: {})",
        keyfile.display(),
        rebuild_advice(repo)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(keys: &KeyFile, config: &[u8]) -> Result<()> {
        let parsed = parse(config, "R")?;
        check(keys, &parsed, config, None, Path::new("K"), "R").map(|_| ())
    }

    #[test]
    fn every_secret_is_checked_and_malformed_lines_are_one_line_errors() {
        let k = KeyFile::generate().unwrap();
        let config = config_bytes(&k, "00ff", Keying::CURRENT);
        checked(&k, &config).unwrap();
        let mut id = k.clone();
        id.keys.id[31] ^= 1;
        let err = checked(&id, &config).unwrap_err().to_string();
        assert!(err.contains("(its id-key does not match the repository's)"), "{err}");
        let mut seed = k.clone();
        seed.keys.chunk_seed ^= 1 << 40;
        let err = checked(&seed, &config).unwrap_err().to_string();
        assert!(err.contains("(its chunk-seed does not match"), "{err}");
        assert_ne!(key_id(&seed.keys), key_id(&k.keys));
        let other = KeyFile::generate().unwrap();
        let err = checked(&other, &config).unwrap_err().to_string();
        assert!(
            err.contains(
                "its enc-key, id-key, data-public, access-read, access-write and access-delete do not"
            ),
            "{err}"
        );
        // Format 2 data keys: each is checked; a wrong data-public would seal what no one opens.
        let d = k.keys.data.as_ref().unwrap();
        for (public, psk, secret, what) in [
            ([9; 32], d.psk, d.secret(), "(its data-public does not"),
            (d.public, [9; 32], d.secret(), "(its data-psk does not"),
            (d.public, d.psk, Some([9; 32]), "(its data-secret does not"),
        ] {
            let mut bad = k.clone();
            bad.keys = bad.keys.with_data(crate::crypto::datakeys::DataKeys::new(public, psk, secret));
            let err = checked(&bad, &config).unwrap_err().to_string();
            assert!(err.contains(what), "{what}: {err}");
        }
        let mut format1 = k.clone();
        format1.keys.data = None;
        let err = checked(&format1, &config).unwrap_err().to_string();
        assert!(err.contains("format (data-public)"), "{err}");
        // A format 1 repository made before the check lines: id-key and chunk-seed are not checked.
        let text1 = String::from_utf8(config_bytes(&format1, "00ff", Keying::CURRENT)).unwrap();
        let old: String =
            text1.lines().filter(|l| !l.starts_with("check-")).map(|l| format!("{l}\n")).collect();
        let mut id1 = format1.clone();
        id1.keys.id[31] ^= 1;
        checked(&id1, old.as_bytes()).unwrap();
        let text = String::from_utf8(config.clone()).unwrap();
        for bad in ["check-id-key zz", "check-id-key 00", "check-chunk-seed ", "format x", "key-check q"] {
            let line = bad.split(' ').next().unwrap();
            let damaged: String = text
                .lines()
                .map(|l| if l.starts_with(&format!("{line} ")) { bad.to_string() } else { l.to_string() })
                .map(|l| l + "\n")
                .collect();
            let err = checked(&k, damaged.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("damaged config file") && !err.contains('\n'), "{bad}: {err}");
        }
        let twice = format!("{text}check-id-key {}\n", hex::encode(id_key_check(&k.keys)));
        assert!(checked(&k, twice.as_bytes()).unwrap_err().to_string().contains("check-id-key"));
    }
}
