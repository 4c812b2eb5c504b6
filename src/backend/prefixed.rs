//! One backend seen under a key prefix: `Prefixed { inner, prefix: "NAME/" }` stores key `k` as
//! `NAME/k` in `inner`. `archiver serve --store s3://BUCKET/PREFIX` serves each repository `NAME`
//! this way over one shared S3 client (`serve::s3_store`), instead of building a client per
//! request.
//!
//! Invariants: every key this backend touches starts with `prefix` in `inner`, and `list` gives
//! back keys without it, so nothing outside the prefix is ever read, listed or deleted; `prefix`
//! is non-empty and ends in `/` (a repository's keys never run into another's).

use super::{Backend, StoreResult};
use std::sync::Arc;

#[derive(Clone)]
pub struct Prefixed {
    inner: Arc<dyn Backend>,
    prefix: String,
}

impl Prefixed {
    /// `inner` under `name/` (`name` one path segment, checked by the caller).
    pub fn new(inner: Arc<dyn Backend>, name: &str) -> Prefixed {
        Prefixed { inner, prefix: format!("{}/", name.trim_matches('/')) }
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }
}

impl Backend for Prefixed {
    fn describe(&self) -> String {
        format!("{}/{}", self.inner.describe().trim_end_matches('/'), self.prefix.trim_end_matches('/'))
    }
    fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.inner.put(&self.key(key), data)
    }
    fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.inner.put_new(&self.key(key), data)
    }
    fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
        self.inner.get(&self.key(key))
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.inner.get_range(&self.key(key), offset, len)
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let keys = self.inner.list(&self.key(prefix))?;
        Ok(keys.into_iter().filter_map(|k| k.strip_prefix(&self.prefix).map(String::from)).collect())
    }
    fn delete(&self, key: &str) -> StoreResult<()> {
        self.inner.delete(&self.key(key))
    }
    fn size(&self, key: &str) -> StoreResult<u64> {
        self.inner.size(&self.key(key))
    }
    fn clean_partial(&self) -> StoreResult<()> {
        self.inner.clean_partial()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;

    #[test]
    fn a_prefixed_backend_sees_only_its_prefix() {
        let inner: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        inner.put("ab/x", b"neighbour").unwrap();
        inner.put("a/x", b"ours").unwrap();
        let a = Prefixed::new(inner.clone(), "a");
        assert_eq!(a.get("x").unwrap(), b"ours");
        assert_eq!(a.list("").unwrap(), ["x"]);
        a.put_new("y/z", b"1").unwrap();
        assert_eq!(inner.get("a/y/z").unwrap(), b"1");
        a.delete("x").unwrap();
        assert_eq!(inner.get("ab/x").unwrap(), b"neighbour");
    }
}
