//! Revoking write keys: the repository's access lists.
//!
//! The config is written once. The verifiers a server checks requests against (and a client
//! checks its key file against) are the config's, except that the newest access list
//! (`access/<gen>`, generations 1, 2, ...) names the write verifier in force and every write
//! verifier retired so far. `archiver keymgmt --revoke-write` makes the next generation: a new
//! write key, the one in force retired. A list is signed by the repository's delete key (the
//! config's `access-delete` verifier is the root: only a holder of the delete key retires or
//! issues a write key), names the repository id and its own generation, and is created only if
//! absent. Invariants: a list cannot be forged without the delete key, moved to another
//! repository, or replayed over a newer one; a list that does not check out is an error, never
//! skipped (falling back to the config would revive a retired key); a list is bounded
//! (`MAX_BYTES`, `MAX_RETIRED`).

use super::{AccessKeys, Perm, Verifiers};
use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};

/// The most bytes an access list may have (the server's request limit for one).
pub const MAX_BYTES: usize = 128 * 1024;
/// The most retired write keys a list names.
pub const MAX_RETIRED: usize = 1000;
const MAGIC: &str = "archiver-access 1";

/// One generation of a repository's access list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessList {
    pub generation: u64,
    /// When it was made (Unix seconds, the maker's clock: for messages only).
    pub time: u64,
    /// The write verifier in force.
    pub write: VerifyingKey,
    /// Every write verifier retired so far, with when (Unix seconds), oldest first.
    pub retired: Vec<(VerifyingKey, u64)>,
}

impl AccessList {
    /// The generation after `prev` (None: the config's verifiers, generation 0): `new_write` in
    /// force, the write verifier in force before it retired at `now`.
    pub fn next(
        prev: Option<&AccessList>,
        config: &Verifiers,
        new_write: VerifyingKey,
        now: u64,
    ) -> Result<AccessList, String> {
        let (generation, old, mut retired) = match prev {
            Some(p) => (p.generation + 1, p.write, p.retired.clone()),
            None => (
                1,
                *config.get(Perm::Write).ok_or("the repository config has no write verifier")?,
                Vec::new(),
            ),
        };
        if retired.len() >= MAX_RETIRED {
            return Err(format!(
                "this repository has retired {MAX_RETIRED} write keys, the most an access list holds"
            ));
        }
        retired.push((old, now));
        Ok(AccessList { generation, time: now, write: new_write, retired })
    }

    /// What is signed: every line but the signature.
    fn body(&self, repo_id: &str) -> String {
        let mut s = format!(
            "{MAGIC}\nrepository {repo_id}\ngeneration {}\ntime {}\naccess-write {}\n",
            self.generation,
            self.time,
            hex::encode(self.write.as_bytes())
        );
        for (k, t) in &self.retired {
            s.push_str(&format!("retired-write {} {t}\n", hex::encode(k.as_bytes())));
        }
        s
    }

    /// The list as stored, signed with `keys`' delete key (None: it holds none).
    pub fn encode(&self, repo_id: &str, keys: &AccessKeys) -> Option<Vec<u8>> {
        let delete = keys.keys[Perm::Delete.index()].as_ref()?;
        let body = self.body(repo_id);
        let sig = delete.sign(body.as_bytes());
        Some(format!("{body}signature {}\n", hex::encode(sig.to_bytes())).into_bytes())
    }

    /// Reads a stored list of repository `repo_id` and checks its signature against `config`'s
    /// delete verifier; every refusal is one phrase.
    pub fn decode(bytes: &[u8], repo_id: &str, config: &Verifiers) -> Result<AccessList, String> {
        if bytes.len() > MAX_BYTES {
            return Err(format!("it is larger than {MAX_BYTES} bytes"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "it is not text")?;
        let (body, sig_line) = text
            .strip_suffix('\n')
            .and_then(|t| t.rsplit_once('\n'))
            .map(|(b, s)| (format!("{b}\n"), s))
            .ok_or("it has no signature line")?;
        let sig: [u8; 64] = sig_line
            .strip_prefix("signature ")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or("its signature line is malformed")?;
        let delete = config.get(Perm::Delete).ok_or("the repository config has no delete verifier")?;
        delete
            .verify(body.as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| "its signature is not the repository's delete key's")?;
        let list = parse(&body)?;
        if list.1 != repo_id {
            return Err("it belongs to another repository".into());
        }
        Ok(list.0)
    }
}

/// The signed part of a list: the list and the repository it names (also for `crate::fuzzing`,
/// which cannot sign).
pub(crate) fn parse(body: &str) -> Result<(AccessList, String), String> {
    let mut lines = body.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("its first line is not {MAGIC:?}"));
    }
    let mut field = |name: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|v| v.strip_prefix(' '))
            .map(str::to_string)
            .ok_or(format!("its {name} line is missing or malformed"))
    };
    let repo = field("repository")?;
    let number =
        |v: String, what: &str| v.parse::<u64>().map_err(|_| format!("its {what} line is malformed"));
    let generation = number(field("generation")?, "generation")?;
    let time = number(field("time")?, "time")?;
    let write = verifier(&field("access-write")?).ok_or("its access-write line is malformed")?;
    let mut retired = Vec::new();
    for line in lines {
        let entry = line.strip_prefix("retired-write ").and_then(|v| {
            let (k, t) = v.split_once(' ')?;
            Some((verifier(k)?, t.parse::<u64>().ok()?))
        });
        retired.push(entry.ok_or("a retired-write line is malformed")?);
        if retired.len() > MAX_RETIRED {
            return Err(format!("it names more than {MAX_RETIRED} retired write keys"));
        }
    }
    if generation == 0 || retired.is_empty() || retired.iter().any(|(k, _)| *k == write) {
        return Err("its generation, or its write keys, do not make sense".into());
    }
    Ok((AccessList { generation, time, write, retired }, repo))
}

fn verifier(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> AccessKeys {
        AccessKeys::derive(&[n; 32])
    }

    #[test]
    fn a_list_round_trips_and_only_the_delete_key_makes_one() {
        let full = keys(1);
        let config = full.verifiers();
        let new = keys(2).verifiers();
        let l1 = AccessList::next(None, &config, *new.get(Perm::Write).unwrap(), 100).unwrap();
        assert_eq!(l1.generation, 1);
        assert_eq!(l1.retired, vec![(*config.get(Perm::Write).unwrap(), 100)]);
        let bytes = l1.encode("ab", &full).unwrap();
        assert_eq!(AccessList::decode(&bytes, "ab", &config).unwrap(), l1);
        // The next generation keeps what was retired before.
        let l2 = AccessList::next(Some(&l1), &config, *keys(3).verifiers().get(Perm::Write).unwrap(), 200)
            .unwrap();
        assert_eq!((l2.generation, l2.retired.len()), (2, 2));
        assert_eq!(AccessList::decode(&l2.encode("ab", &full).unwrap(), "ab", &config).unwrap(), l2);
        // Another repository, another delete key, a key without one, a changed byte: refused.
        assert!(AccessList::decode(&bytes, "cd", &config).unwrap_err().contains("another repository"));
        let err = AccessList::decode(&l1.encode("ab", &keys(9)).unwrap(), "ab", &config).unwrap_err();
        assert!(err.contains("not the repository's delete key"), "{err}");
        let mut write_only = AccessKeys::default();
        write_only.set(Perm::Write, full.seed(Perm::Write).unwrap());
        assert!(l1.encode("ab", &write_only).is_none());
        let text = String::from_utf8(bytes.clone()).unwrap();
        for (from, to) in
            [("generation 1", "generation 2"), ("time 100", "time 101"), ("retired-write", "retired-writ")]
        {
            let changed = text.replacen(from, to, 1);
            assert!(AccessList::decode(changed.as_bytes(), "ab", &config).is_err(), "{from}");
        }
        assert!(AccessList::decode(&bytes[..bytes.len() - 2], "ab", &config).is_err());
        assert!(AccessList::decode(&vec![b'a'; MAX_BYTES + 1], "ab", &config).is_err());
    }
}
