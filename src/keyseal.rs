//! Passphrase-protected key files (`keygen --passphrased`, `keymgmt --passphrased`): the plain key
//! file's text sealed with XChaCha20-Poly1305 under a key derived from the passphrase by scrypt,
//! as tarsnap does, with parameters calibrated on the machine that seals and stored in the file.
//!
//! The file is text: the magic line, `scrypt LOG_N R P`, `salt HEX`, `sealed HEX`, then
//! `check HEX`, an unkeyed BLAKE3 hash of the lines before it. The check tells damage (it does
//! not match) from a wrong passphrase (it matches, but the seal does not open), so each gets its
//! own one-line error. The header lines are the seal's associated data, so parameters cannot be
//! swapped undetected. Invariants: parameters read from a file are bounded (memory and work)
//! before scrypt runs; the passphrase and the derived key never appear in messages or `Debug`.

use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub const MAGIC: &str = "archiver-keyfile-passphrased 1";
const NONCE: usize = 24;
/// The most memory a key file may ask scrypt for (2 GiB), whatever the machine.
const MAX_MEM: u64 = 2 << 30;
/// The most work a key file may ask for, as N·r·p (about a minute on a slow core).
const MAX_WORK: u64 = 1 << 27;

/// scrypt's parameters: N = 2^log_n, block size r, parallelism p.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kdf {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl Kdf {
    /// Bytes of memory scrypt needs with these parameters.
    pub fn memory(&self) -> u64 {
        128 * self.r as u64 * (1u64 << self.log_n)
    }

    fn check(&self) -> Result<scrypt::Params> {
        let work = (1u64 << self.log_n.min(62)) * self.r as u64 * self.p as u64;
        if !(10..=30).contains(&self.log_n) || self.r == 0 || self.r > 64 || self.p == 0 || self.p > 64 {
            bail!("its scrypt parameters (N=2^{}, r={}, p={}) are out of range", self.log_n, self.r, self.p);
        }
        if self.memory() > MAX_MEM || work > MAX_WORK {
            bail!(
                "its scrypt parameters ask for {} of memory and N·r·p = {work}, more than archiver allows ({} and {MAX_WORK})",
                crate::units::human(self.memory()),
                crate::units::human(MAX_MEM)
            );
        }
        scrypt::Params::new(self.log_n, self.r, self.p)
            .map_err(|_| anyhow::anyhow!("invalid scrypt parameters"))
    }
}

/// What sealing may spend (tarsnap's `--passphrase-mem` and `--passphrase-time`).
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub max_mem: u64,
    pub max_time: Duration,
}

impl Default for Cost {
    /// One second and at most 1 GiB (or an eighth of the machine's memory, if less).
    fn default() -> Cost {
        // SAFETY: sysconf only reads system constants.
        let (pages, page) =
            unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
        let ram = (pages.max(0) as u64).saturating_mul(page.max(0) as u64);
        let max_mem = if ram == 0 { 1 << 30 } else { (ram / 8).min(1 << 30) };
        Cost { max_mem, max_time: Duration::from_secs(1) }
    }
}

/// Picks scrypt parameters that take about `cost.max_time` on this machine within
/// `cost.max_mem`, from timed runs of a small N (as scrypt's own `pickparams` does): N as large as time
/// and memory allow (at least 2^10), then p to use the time memory did not.
pub fn calibrate(cost: Cost) -> Kdf {
    const PROBE: u8 = 14;
    let probe = Kdf { log_n: PROBE, r: 8, p: 1 };
    let params = probe.check().expect("probe parameters are valid");
    // The fastest of three runs (the first pays for page faults the real run amortises), of an
    // N whose 16 MiB is out of cache, as the real one is.
    let per_probe = (0..3)
        .map(|_| {
            let start = Instant::now();
            let mut out = [0u8; 32];
            scrypt::scrypt(b"calibrate", b"calibrate", &params, &mut out).expect("32-byte output");
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
        .max(1e-6);
    // How many probe-sized runs fit in the time: N·p grows with it.
    // A large N runs slower per step than the probe (page faults, TLB misses): measured here,
    // 2^19 took 1.35x what the probe predicted, so allow 1.5x to stay within the time.
    let budget = cost.max_time.as_secs_f64() / per_probe / 1.5 * (1u64 << PROBE) as f64;
    let mem_n = (cost.max_mem / (128 * 8)).max(1 << 10) as f64;
    let log2 = |x: f64| x.log2().floor().clamp(10.0, 30.0) as u8;
    let log_n = log2(budget.min(mem_n));
    let p = (budget / (1u64 << log_n) as f64).floor().clamp(1.0, 64.0) as u32;
    let mut kdf = Kdf { log_n, r: 8, p };
    while kdf.check().is_err() && kdf.p > 1 {
        kdf.p /= 2;
    }
    while kdf.check().is_err() && kdf.log_n > 10 {
        kdf.log_n -= 1;
    }
    kdf
}

/// A passphrase, with the keys derived from it kept so that a command that opens its key file
/// twice runs scrypt once. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Passphrase {
    secret: Arc<Zeroizing<Vec<u8>>>,
    derived: Arc<Mutex<Vec<(Kdf, [u8; 32], Zeroizing<[u8; 32]>)>>>,
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(hidden)")
    }
}

impl Passphrase {
    pub fn new(secret: Vec<u8>) -> Passphrase {
        Passphrase { secret: Arc::new(Zeroizing::new(secret)), derived: Default::default() }
    }

    fn key(&self, kdf: Kdf, salt: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        let mut memo = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, k)) = memo.iter().find(|(k, s, _)| *k == kdf && s == salt) {
            return Ok(k.clone());
        }
        let mut key = Zeroizing::new([0u8; 32]);
        scrypt::scrypt(&self.secret, salt, &kdf.check()?, &mut key[..]).expect("32-byte output");
        memo.push((kdf, *salt, key.clone()));
        Ok(key)
    }
}

/// Whether `text` is a passphrase-protected key file (its first line that is not a comment).
pub fn is_sealed(text: &str) -> bool {
    lines(text).next() == Some(MAGIC)
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn check_of(body: &str) -> String {
    hex::encode(&blake3::hash(body.as_bytes()).as_bytes()[..16])
}

/// Seals a plain key file's `inner` text under `pass`; `comment` (one line, no secrets) heads it.
pub fn seal(inner: &str, pass: &Passphrase, kdf: Kdf, comment: &str) -> Result<String> {
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; NONCE];
    getrandom::getrandom(&mut salt).context("reading the system's random number generator")?;
    getrandom::getrandom(&mut nonce).context("reading the system's random number generator")?;
    let header = format!("{MAGIC}\nscrypt {} {} {}\nsalt {}\n", kdf.log_n, kdf.r, kdf.p, hex::encode(salt));
    let cipher = XChaCha20Poly1305::new((&*pass.key(kdf, &salt)?).into());
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: inner.as_bytes(), aad: header.as_bytes() })
        .expect("in-memory encryption cannot fail");
    let body = format!("{header}sealed {}{}\n", hex::encode(nonce), hex::encode(ct));
    Ok(format!("# {comment}\n{body}check {}\n", check_of(&body)))
}

/// Why a sealed key file did not open.
#[derive(Debug)]
pub enum OpenError {
    /// The file's structure or checksum is wrong: it was damaged (or is not a key file).
    Damaged(String),
    /// The file is intact but the passphrase does not open it.
    WrongPassphrase,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Damaged(why) => write!(f, "it is damaged ({why})"),
            OpenError::WrongPassphrase => f.write_str("the passphrase is wrong"),
        }
    }
}

impl std::error::Error for OpenError {}

/// The parameters and parts of a sealed key file, checked against its checksum.
struct Parsed {
    header: String,
    kdf: Kdf,
    salt: [u8; 32],
    sealed: Vec<u8>,
}

fn parse(text: &str) -> std::result::Result<Parsed, String> {
    let l: Vec<&str> = lines(text).collect();
    let [magic, scrypt, salt, sealed, check] = l[..] else {
        return Err(format!("it has {} lines where a sealed key file has 5", l.len()));
    };
    let body = format!("{magic}\n{scrypt}\n{salt}\n{sealed}\n");
    if check.strip_prefix("check ") != Some(check_of(&body).as_str()) {
        return Err("its checksum does not match its contents".into());
    }
    fn field<'a>(line: &str, v: &'a str) -> std::result::Result<&'a str, String> {
        v.strip_prefix(line).map(str::trim).ok_or(format!("no `{line}` line"))
    }
    let nums: Vec<u32> = field("scrypt ", scrypt)?.split(' ').filter_map(|n| n.parse().ok()).collect();
    let [log_n, r, p] = nums[..] else { return Err("bad scrypt line".into()) };
    let kdf = Kdf { log_n: log_n.min(255) as u8, r, p };
    let salt_bytes =
        hex::decode(field("salt ", salt)?).ok().and_then(|s| s.try_into().ok()).ok_or("bad salt")?;
    let sealed = hex::decode(field("sealed ", sealed)?).map_err(|_| "sealed part is not hexadecimal")?;
    if sealed.len() < NONCE + 16 || sealed.len() > 64 << 10 {
        return Err(format!("its sealed part has {} bytes", sealed.len()));
    }
    Ok(Parsed { header: format!("{magic}\n{scrypt}\n{salt}\n"), kdf, salt: salt_bytes, sealed })
}

/// Opens a sealed key file's text with `pass`, returning the plain key file's text.
pub fn open(text: &str, pass: &Passphrase) -> std::result::Result<Zeroizing<String>, OpenError> {
    let p = parse(text).map_err(OpenError::Damaged)?;
    let key = pass.key(p.kdf, &p.salt).map_err(|e| OpenError::Damaged(e.to_string()))?;
    let (nonce, ct) = p.sealed.split_at(NONCE);
    let plain = XChaCha20Poly1305::new((&*key).into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: p.header.as_bytes() })
        .map_err(|_| OpenError::WrongPassphrase)?;
    String::from_utf8(plain)
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Damaged("its contents are not text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Kdf = Kdf { log_n: 10, r: 8, p: 1 };

    #[test]
    fn seal_open_wrong_and_damaged() {
        let pass = Passphrase::new(b"correct horse".to_vec());
        let text = seal("archiver-keyfile 1\nsecret stuff\n", &pass, FAST, "comment").unwrap();
        assert!(is_sealed(&text) && !text.contains("secret"));
        assert_eq!(&*open(&text, &pass).unwrap(), "archiver-keyfile 1\nsecret stuff\n");
        let wrong = Passphrase::new(b"battery staple".to_vec());
        assert!(matches!(open(&text, &wrong), Err(OpenError::WrongPassphrase)));
        // A flipped hex digit anywhere after the comment is damage, not a wrong passphrase.
        let at = text.find("sealed ").unwrap() + 20;
        let mut bad = text.clone().into_bytes();
        bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(matches!(open(&bad, &pass), Err(OpenError::Damaged(_))), "{:?}", open(&bad, &pass));
        // Parameters swapped with a matching checksum still fail the seal (they are its AD).
        let body: Vec<&str> = lines(&text).collect();
        let forged = format!("{}\nscrypt 11 8 1\n{}\n{}\n", body[0], body[2], body[3]);
        let forged = format!("{forged}check {}\n", check_of(&forged));
        assert!(matches!(open(&forged, &pass), Err(OpenError::WrongPassphrase)));
    }

    #[test]
    fn hostile_parameters_are_refused_before_scrypt_runs() {
        for (log_n, r, p) in [(40, 8, 1), (24, 64, 1), (20, 8, 64), (9, 8, 1), (14, 0, 1)] {
            assert!(Kdf { log_n, r, p }.check().is_err(), "{log_n} {r} {p}");
        }
        assert!(Kdf { log_n: 20, r: 8, p: 1 }.check().is_ok());
    }

    #[test]
    fn calibration_respects_memory_and_time() {
        let k = calibrate(Cost { max_mem: 4 << 20, max_time: Duration::from_millis(200) });
        assert!(k.memory() <= 4 << 20 && k.check().is_ok(), "{k:?}");
        let tiny = calibrate(Cost { max_mem: 1 << 30, max_time: Duration::from_millis(1) });
        assert_eq!((tiny.log_n, tiny.p), (10, 1));
    }
}
