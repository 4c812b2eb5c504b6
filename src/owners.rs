//! User and group names, as tar and tarsnap keep them: `create` stores each entry's owner by name
//! as well as by id, and `extract` as root gives an entry the id its names have on this system,
//! falling back to the stored id when a name is unknown here (or with `--numeric-owner`, which
//! at create stores no names and at extract uses the ids alone).
//!
//! Names come from the system's user and group databases (NSS: files, LDAP, ...) through the
//! reentrant `getpw*_r`/`getgr*_r` calls. Invariants: a name is 1 to `MAX_OWNER_NAME` bytes
//! without NUL (anything else is treated as unknown); the caches hold at most `CACHED` entries
//! each, so a tree of many distinct owners costs lookups, not memory.

use crate::archive::Node;
use crate::limits::MAX_OWNER_NAME;
use std::collections::HashMap;
use std::ffi::{CStr, CString};

/// Entries each cache holds at most.
const CACHED: usize = 4096;

#[derive(Default)]
pub struct Names {
    users: HashMap<u32, Option<Vec<u8>>>,
    groups: HashMap<u32, Option<Vec<u8>>>,
    uids: HashMap<Vec<u8>, Option<u32>>,
    gids: HashMap<Vec<u8>, Option<u32>>,
}

impl Names {
    /// Fills in `node`'s owner names from its ids (empty where this system has no name).
    pub fn name(&mut self, node: &mut Node) {
        node.uname = cached(&mut self.users, node.uid, |id| lookup(Db::UserById(id))).unwrap_or_default();
        node.gname = cached(&mut self.groups, node.gid, |id| lookup(Db::GroupById(id))).unwrap_or_default();
    }

    /// The ids `node` should be given here: those its names have on this system, else its own.
    pub fn ids(&mut self, node: &Node) -> (u32, u32) {
        let by_name = |cache: &mut HashMap<Vec<u8>, Option<u32>>, name: &[u8], db: fn(CString) -> Db| {
            if name.is_empty() {
                return None;
            }
            cached(cache, name.to_vec(), |n| {
                let c = CString::new(n).ok()?;
                let found = lookup(db(c))?;
                std::str::from_utf8(&found).ok()?.parse().ok()
            })
        };
        let uid = by_name(&mut self.uids, &node.uname, Db::UserByName).unwrap_or(node.uid);
        let gid = by_name(&mut self.gids, &node.gname, Db::GroupByName).unwrap_or(node.gid);
        (uid, gid)
    }
}

fn cached<K: std::hash::Hash + Eq + Clone, V: Clone>(
    cache: &mut HashMap<K, Option<V>>,
    key: K,
    find: impl FnOnce(K) -> Option<V>,
) -> Option<V> {
    if let Some(v) = cache.get(&key) {
        return v.clone();
    }
    let v = find(key.clone());
    if cache.len() < CACHED {
        cache.insert(key, v.clone());
    }
    v
}

enum Db {
    UserById(u32),
    GroupById(u32),
    UserByName(CString),
    GroupByName(CString),
}

/// One lookup: a name (for the ById queries) or an id in decimal (for the ByName ones); `None`
/// if there is no such entry, the database fails, or the name is not one an archive keeps.
fn lookup(q: Db) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let (r, out) = match &q {
            Db::UserById(_) | Db::UserByName(_) => {
                // SAFETY: passwd is plain data; the call fills it with pointers into `buf`.
                let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
                let mut res: *mut libc::passwd = std::ptr::null_mut();
                let (p, len) = (buf.as_mut_ptr() as *mut libc::c_char, buf.len());
                // SAFETY: valid out-pointers and a buffer of `len` bytes; the name is NUL-terminated.
                let r = unsafe {
                    match &q {
                        Db::UserById(id) => libc::getpwuid_r(*id, &mut pw, p, len, &mut res),
                        Db::UserByName(n) => libc::getpwnam_r(n.as_ptr(), &mut pw, p, len, &mut res),
                        _ => unreachable!(),
                    }
                };
                // SAFETY: on success with a result, pw_name points to a NUL-terminated name in `buf`.
                let out = (r == 0 && !res.is_null()).then(|| match &q {
                    Db::UserById(_) => unsafe { CStr::from_ptr(pw.pw_name) }.to_bytes().to_vec(),
                    _ => pw.pw_uid.to_string().into_bytes(),
                });
                (r, out)
            }
            Db::GroupById(_) | Db::GroupByName(_) => {
                // SAFETY: group is plain data; the call fills it with pointers into `buf`.
                let mut gr: libc::group = unsafe { std::mem::zeroed() };
                let mut res: *mut libc::group = std::ptr::null_mut();
                let (p, len) = (buf.as_mut_ptr() as *mut libc::c_char, buf.len());
                // SAFETY: valid out-pointers and a buffer of `len` bytes; the name is NUL-terminated.
                let r = unsafe {
                    match &q {
                        Db::GroupById(id) => libc::getgrgid_r(*id, &mut gr, p, len, &mut res),
                        Db::GroupByName(n) => libc::getgrnam_r(n.as_ptr(), &mut gr, p, len, &mut res),
                        _ => unreachable!(),
                    }
                };
                // SAFETY: on success with a result, gr_name points to a NUL-terminated name in `buf`.
                let out = (r == 0 && !res.is_null()).then(|| match &q {
                    Db::GroupById(_) => unsafe { CStr::from_ptr(gr.gr_name) }.to_bytes().to_vec(),
                    _ => gr.gr_gid.to_string().into_bytes(),
                });
                (r, out)
            }
        };
        if r == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return out.filter(|n| !n.is_empty() && n.len() <= MAX_OWNER_NAME);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::NodeKind;

    #[test]
    fn root_is_named_and_names_map_back_to_ids() {
        let mut names = Names::default();
        let mut n = Node::new(b"f".to_vec(), NodeKind::File);
        names.name(&mut n);
        assert_eq!((n.uname.as_slice(), n.gname.as_slice()), (&b"root"[..], &b"root"[..]));
        // A name wins over the stored id; an unknown name falls back to it.
        n.uid = 4242;
        assert_eq!(names.ids(&n), (0, 0));
        n.uname = b"no-such-user-archiver".to_vec();
        assert_eq!(names.ids(&n), (4242, 0));
        n.uid = 3_999_999_999;
        names.name(&mut n);
        assert!(n.uname.is_empty(), "an id without a name has no name");
    }
}
