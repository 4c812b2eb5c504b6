//! The access verifiers in force: the config's, under the newest access list (`access::list`),
//! for the server (which checks requests against them) and the client (which checks its key
//! file against them before anything is written). Also what the server checks before it stores
//! the next access list. Invariant: a list that does not check out makes the repository's access
//! an error, never the config's alone (that would revive retired keys); each new list extends the
//! one before (the same generation plus one, every key retired before still retired).

use crate::access::list::AccessList;
use crate::access::Verifiers;

/// The verifiers of `config` (repository `repo_id`) under `list`, the newest access list if
/// any; the error names what is damaged ("its access verifiers", "its access list: ...").
pub fn verifiers(config: &[u8], repo_id: &str, list: Option<&[u8]>) -> Result<Verifiers, String> {
    let base = Verifiers::from_config(config).ok_or("its access verifiers")?;
    match list {
        None => Ok(base),
        Some(bytes) => {
            let l = AccessList::decode(bytes, repo_id, &base).map_err(|e| format!("its access list: {e}"))?;
            Ok(base.under(&l))
        }
    }
}

/// Whether `next`, offered as access list generation `gen`, may be stored after `current` (the
/// newest stored list, if any): the refusal (an HTTP status and one line) if not.
pub fn check_next(
    config: &[u8],
    repo_id: &str,
    current: Option<&[u8]>,
    gen: u64,
    next: &[u8],
) -> Result<(), (u16, String)> {
    let base = Verifiers::from_config(config)
        .ok_or((500, "the repository config names no access verifiers".into()))?;
    let prev = match current {
        Some(bytes) => Some(
            AccessList::decode(bytes, repo_id, &base)
                .map_err(|e| (500, format!("the stored access list is damaged: {e}")))?,
        ),
        None => None,
    };
    let offered = AccessList::decode(next, repo_id, &base)
        .map_err(|e| (400, format!("the access list is refused: {e}")))?;
    let want = prev.as_ref().map_or(1, |p| p.generation + 1);
    if offered.generation != gen || gen != want {
        return Err((
            409,
            format!(
                "access list generation {want} is the next one, not {gen} (another revocation came first?)"
            ),
        ));
    }
    let kept = match &prev {
        Some(p) => {
            offered.retired.starts_with(&p.retired) && offered.retired.iter().any(|(k, _)| *k == p.write)
        }
        None => {
            base.get(crate::access::Perm::Write).is_some_and(|w| offered.retired.iter().any(|(k, _)| k == w))
        }
    };
    if !kept {
        return Err((
            400,
            "the access list must keep every retired write key and retire the one in force".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{AccessKeys, Perm};

    #[test]
    fn lists_follow_each_other_and_a_damaged_one_is_an_error() {
        let full = AccessKeys::derive(&[1; 32]);
        let config = full.verifiers().config_lines().into_bytes();
        let base = Verifiers::from_config(&config).unwrap();
        let w = |n: u8| *AccessKeys::derive(&[n; 32]).verifiers().get(Perm::Write).unwrap();
        let l1 = AccessList::next(None, &base, w(2), 10).unwrap();
        let b1 = l1.encode("ab", &full).unwrap();
        check_next(&config, "ab", None, 1, &b1).unwrap();
        let v = verifiers(&config, "ab", Some(&b1)).unwrap();
        assert_eq!(v.get(Perm::Write), Some(&w(2)));
        assert_eq!(v.retired_at(Perm::Write, base.get(Perm::Write).unwrap()), Some(10));
        // Generation 1 again, or 3 before 2, is refused; so is a list that forgets a retired key.
        assert_eq!(check_next(&config, "ab", Some(&b1), 1, &b1).unwrap_err().0, 409);
        let l2 = AccessList::next(Some(&l1), &base, w(3), 20).unwrap();
        let b2 = l2.encode("ab", &full).unwrap();
        check_next(&config, "ab", Some(&b1), 2, &b2).unwrap();
        assert_eq!(check_next(&config, "ab", Some(&b1), 3, &b2).unwrap_err().0, 409);
        let mut forgets = l2.clone();
        forgets.retired.remove(0);
        let err = check_next(&config, "ab", Some(&b1), 2, &forgets.encode("ab", &full).unwrap()).unwrap_err();
        assert_eq!(err.0, 400, "{}", err.1);
        // A damaged list is an error, not the config's verifiers.
        let mut damaged = b1.clone();
        damaged[30] ^= 1;
        assert!(verifiers(&config, "ab", Some(&damaged)).unwrap_err().contains("access list"));
    }
}
