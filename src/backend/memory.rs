//! A backend in memory: the contract of `Backend` with nothing durable, for unit tests of the
//! layers above (`repo::objects`, the transaction pipeline) and as the base the fault-injecting
//! backend (`faulty`) wraps. Keys form one flat, sorted name space: `list(prefix)` is every key
//! that starts with `prefix`, which is what the local backend's directory walk gives and what an
//! object store's prefix listing gives.
//!
//! Invariant: every operation is atomic under one mutex, so readers see an object whole or not
//! at all, and `put_new` is a true create-if-absent.

use super::{Backend, ErrorKind, StoreError, StoreResult};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A backend holding its objects in memory. Clones share the same objects (as two clients of
/// one store would).
#[derive(Clone, Default)]
pub struct MemoryBackend {
    objects: Arc<Mutex<BTreeMap<String, Arc<Vec<u8>>>>>,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Vec<u8>>>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn object(&self, key: &str) -> StoreResult<Arc<Vec<u8>>> {
        self.objects()
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::new(ErrorKind::NotFound, format!("no object {key} in memory")))
    }
}

impl Backend for MemoryBackend {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.objects().insert(key.to_string(), Arc::new(data.to_vec()));
        Ok(())
    }

    fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        let mut objects = self.objects();
        if objects.contains_key(key) {
            return Err(StoreError::new(ErrorKind::Exists, format!("object {key} exists")));
        }
        objects.insert(key.to_string(), Arc::new(data.to_vec()));
        Ok(())
    }

    fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
        Ok(self.object(key)?.as_ref().clone())
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let data = self.object(key)?;
        let end = offset.checked_add(len).filter(|&e| e <= data.len() as u64).ok_or_else(|| {
            StoreError::new(
                ErrorKind::Permanent,
                format!("{key} is truncated (wanted bytes {offset}..{})", offset.saturating_add(len)),
            )
        })?;
        Ok(data[offset as usize..end as usize].to_vec())
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        Ok(self
            .objects()
            .range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        self.objects().remove(key);
        Ok(())
    }

    fn size(&self, key: &str) -> StoreResult<u64> {
        Ok(self.object(key)?.len() as u64)
    }

    fn clean_partial(&self) -> StoreResult<()> {
        // A put here is never half done.
        Ok(())
    }
}
