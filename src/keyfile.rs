//! The key file: a small text file holding the client's secrets, one `name hex` pair per line.
//!
//! Keys are stored as separate derived parts (not one master secret), so that a restricted key
//! file (`archiver keymgmt`) carries only some of them: every key file holds the keys that
//! writing needs (`enc-key`, `id-key`, `chunk-seed` and, in format 2, `data-public` and
//! `data-psk`), only key files with the read permission hold `data-secret`, which opens archive
//! data (docs/FORMAT.md), and each holds one to three access keys (`access-read`,
//! `access-write`, `access-delete`). The file is written
//! with mode 0600 and never overwritten. A key file may be sealed under a passphrase
//! (`keyseal`): its plain text is then inside, and reading it needs the passphrase.

use crate::access::{AccessKeys, Perm, PERMS};
use crate::crypto::datakeys::DataKeys;
use crate::crypto::Keys;
use crate::keyseal::{self, Kdf, OpenError, Passphrase};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

const MAGIC: &str = "archiver-keyfile 1";

/// What a key file holds: the data keys (`crypto`), and the access keys that say what a server
/// lets this client do (`access`). Kept apart so that sealing never depends on permissions.
#[derive(Clone)]
pub struct KeyFile {
    pub keys: Keys,
    pub access: AccessKeys,
}

impl KeyFile {
    /// A new key file's secrets: data keys and all three access keys, from fresh random bytes.
    pub fn generate() -> Result<KeyFile> {
        let (keys, master) = Keys::generate()?;
        Ok(KeyFile { keys, access: AccessKeys::derive(&master) })
    }
}

/// How a new key file is protected: sealed under a passphrase with these scrypt parameters.
pub type Seal<'a> = Option<(&'a Passphrase, Kdf)>;

/// `keygen`: writes a new key file at `path` (the `--keyfile`), creating its directory.
pub fn write_new(path: &Path, keys: &KeyFile, seal: Seal) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the key file's directory {}", dir.display()))?;
    }
    write_file(path, keys, "--keyfile", seal)
}

/// Writes a new key file at `path`, given as option `option`; never overwrites, never creates
/// a directory.
fn write_file(path: &Path, kf: &KeyFile, option: &str, seal: Seal) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "key file {} already exists; refusing to overwrite it (choose another {option})",
                path.display()
            ),
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "cannot create key file {} ({option}): its directory does not exist; create it first or choose another {option}",
                path.display()
            ),
            _ => anyhow::Error::new(e).context(format!("cannot create key file {} ({option})", path.display())),
        },
    )?;
    let text = match seal {
        None => plain_text(kf),
        Some((pass, kdf)) => {
            let comment = format!(
                "archiver key file protected by a passphrase (access: {}). Keep a copy, and the passphrase, somewhere safe.",
                kf.access.describe()
            );
            zeroize::Zeroizing::new(keyseal::seal(&plain_text(kf), pass, kdf, &comment)?)
        }
    };
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing key file {}", path.display()))?;
    Ok(())
}

/// A key file's plain text.
fn plain_text(kf: &KeyFile) -> zeroize::Zeroizing<String> {
    let keys = &kf.keys;
    let mut text = format!(
        "# archiver key file (access: {}). Keep a copy somewhere safe: without it no backup can be read.\n\
         {MAGIC}\nenc-key {}\nid-key {}\nchunk-seed {:016x}\n",
        kf.access.describe(),
        hex::encode(keys.enc),
        hex::encode(keys.id),
        keys.chunk_seed
    );
    if let Some(d) = &keys.data {
        text.push_str(&format!("data-public {}\ndata-psk {}\n", hex::encode(d.public), hex::encode(d.psk)));
        if let Some(secret) = zeroize::Zeroizing::new(d.secret()).as_ref() {
            text.push_str(&format!("data-secret {}\n", hex::encode(secret)));
        }
    }
    for p in PERMS {
        if let Some(seed) = kf.access.seed(p) {
            text.push_str(&format!("access-{} {}\n", p.name(), hex::encode(seed)));
        }
    }
    zeroize::Zeroizing::new(text)
}

/// A one-line warning when `path` is a valid key file open to its group or others (mode &
/// 0o077): whoever can read it can read every archive, and use its write or delete key. (A file
/// that is no key file gets the error about that instead.)
pub fn exposure(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    let ours = std::fs::read_to_string(path).is_ok_and(|t| keyseal::is_sealed(&t) || parse(&t).is_ok());
    (mode & 0o077 != 0 && ours).then(|| {
        format!(
            "key file {} is open to its group or others (mode {mode:04o}): anyone who can read it can read your archives; run `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
}

/// Reads a key file that is not protected by a passphrase (tests and tools).
pub fn read(path: &Path) -> Result<KeyFile> {
    read_with(path, None)
}

/// Whether the key file at `path` is protected by a passphrase (false when it cannot be read:
/// reading it then says why).
pub fn is_passphrased(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| keyseal::is_sealed(&t))
}

/// Reads the key file at `path`, opening it with `pass` if it is protected by a passphrase.
pub fn read_with(path: &Path, pass: Option<&Passphrase>) -> Result<KeyFile> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "key file {} not found: pass --keyfile (or ARCHIVER_KEYFILE), or run `archiver keygen` to create one",
            path.display()
        ),
        _ => anyhow::anyhow!("cannot read key file {}: {e}", path.display()),
    })?;
    if keyseal::is_sealed(&text) {
        let Some(pass) = pass else {
            bail!(
                "key file {} is protected by a passphrase: give it with --passphrase METHOD:ARG (env:VAR, file:PATH, dev:stdin-once) or run on a terminal to be asked",
                path.display()
            );
        };
        let plain = keyseal::open(&text, pass).map_err(|e| match e {
            OpenError::WrongPassphrase => anyhow::anyhow!("wrong passphrase for key file {}", path.display()),
            OpenError::Damaged(why) => {
                anyhow::anyhow!("key file {} is damaged ({why}): use your copy of it", path.display())
            }
        })?;
        return parse(&plain)
            .with_context(|| format!("key file {} is damaged inside its seal", path.display()));
    }
    parse(&text).with_context(|| format!("key file {} is not a valid archiver key file", path.display()))
}

/// Parses a key file's text (`read` after reading it; the fuzz targets directly).
pub fn parse(text: &str) -> Result<KeyFile> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    if lines.next() != Some(MAGIC) {
        bail!("missing the `{MAGIC}` header");
    }
    let (mut enc, mut id, mut seed) = (None, None, None);
    let (mut public, mut psk, mut secret) = (None, None, None);
    let mut access = AccessKeys::default();
    for line in lines {
        let (name, value) = line.split_once(' ').unwrap_or((line, ""));
        match name {
            "enc-key" => enc = Some(key32(value)?),
            "id-key" => id = Some(key32(value)?),
            "chunk-seed" => seed = Some(u64::from_str_radix(value.trim(), 16).context("bad chunk-seed")?),
            "data-public" => public = Some(key32(value)?),
            "data-psk" => psk = Some(key32(value)?),
            "data-secret" => secret = Some(key32(value)?),
            // Parts added by later versions are ignored.
            _ => {
                if let Some(p) = PERMS.into_iter().find(|p| name.strip_prefix("access-") == Some(p.name())) {
                    access.set(p, key32(value)?);
                }
            }
        }
    }
    let (Some(e), Some(i), Some(s)) = (enc, id, seed) else {
        bail!("it lacks the data keys (enc-key, id-key, chunk-seed)")
    };
    if PERMS.into_iter().all(|p| !access.has(p)) {
        bail!("it holds no access key (access-read, access-write or access-delete)");
    }
    let keys = match (public, psk) {
        (Some(public), Some(psk)) => Keys::new(e, i, s).with_data(DataKeys::new(public, psk, secret)),
        (None, None) if secret.is_none() => Keys::new(e, i, s),
        _ => bail!("it holds only some of the data keys (data-public, data-psk)"),
    };
    Ok(KeyFile { keys, access })
}

/// `archiver keymgmt`: writes to `out` (the `--outkeyfile`, whose directory must exist) a key
/// file holding the keys writing needs, `data-secret` only with the read permission (format 2),
/// and only the access keys in `perms`, each of which `keys` must hold.
pub fn write_restricted(out: &Path, full: &KeyFile, perms: &[Perm], seal: Seal) -> Result<()> {
    write_file(out, &restricted(full, perms)?, "--outkeyfile", seal)
}

/// The key file `write_restricted` writes: `full`'s keys restricted to `perms`, or why `full`
/// cannot grant them.
pub fn restricted(full: &KeyFile, perms: &[Perm]) -> Result<KeyFile> {
    if perms.is_empty() {
        bail!("choose the permissions the new key file gets: -r (read), -w (write), -d (delete)");
    }
    let mut keys = full.keys.clone();
    if let Some(d) = &full.keys.data {
        let secret = perms.contains(&Perm::Read).then(|| d.secret()).flatten();
        if perms.contains(&Perm::Read) && secret.is_none() {
            bail!(
                "the key file lacks the data-secret, so it cannot grant reading (it holds {})",
                full.access.describe()
            );
        }
        keys.data = Some(std::sync::Arc::new(DataKeys::new(d.public, d.psk, secret)));
    }
    let mut restricted = KeyFile { keys, access: AccessKeys::default() };
    for &p in perms {
        let Some(seed) = full.access.seed(p) else {
            bail!(
                "the key file lacks the {} key, so it cannot grant it (it holds {})",
                p.name(),
                full.access.describe()
            );
        };
        restricted.access.set(p, seed);
    }
    Ok(restricted)
}

fn key32(hexstr: &str) -> Result<[u8; 32]> {
    let v = hex::decode(hexstr.trim()).context("a key is not hexadecimal")?;
    v.try_into().map_err(|_| anyhow::anyhow!("a key has the wrong length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = KeyFile::generate().unwrap();
        write_new(&p, &k, None).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(
            (back.keys.enc, back.keys.id, back.keys.chunk_seed),
            (k.keys.enc, k.keys.id, k.keys.chunk_seed)
        );
        assert_eq!(back.access.verifiers(), k.access.verifiers());
        let w = dir.path().join("w");
        write_restricted(&w, &k, &[Perm::Write], None).unwrap();
        let wk = read(&w).unwrap();
        assert_eq!((wk.access.has(Perm::Read), wk.access.has(Perm::Write)), (false, true));
        assert!(back.keys.reads_data() && !wk.keys.reads_data(), "a write key gets no data-secret");
        let wtext = std::fs::read_to_string(&w).unwrap();
        assert!(wtext.contains("data-public ") && !wtext.contains("data-secret"), "{wtext}");
        let r = dir.path().join("r");
        write_restricted(&r, &k, &[Perm::Read], None).unwrap();
        assert_eq!(read(&r).unwrap().keys.data.unwrap().secret(), k.keys.data.as_ref().unwrap().secret());
        assert_eq!(wk.access.seed(Perm::Write), k.access.seed(Perm::Write));
        let err = write_restricted(&dir.path().join("x"), &wk, &[Perm::Delete], None).unwrap_err();
        assert!(err.to_string().contains("lacks the delete key"), "{err}");
        assert!(write_new(&p, &k, None).unwrap_err().to_string().contains("already exists"));
        std::fs::write(&p, "garbage").unwrap();
        assert!(read(&p).is_err());
    }
}
