//! The transactional protocol over a dumb object store (see `backend`). Object names:
//!
//! ```text
//! config                      plain: format version, repository id, key check
//! lock                        single-writer lock (local: flock)
//! manifest/<gen, 16 hex>      sealed manifest; the highest generation is current
//! packs/<txn>/<seq, 8 hex>    packs, grouped by the transaction that wrote them
//! index/<txn>-<seq, 6 hex>    sealed index segments
//! txn/<txn>/begin             intent: a transaction is under way (sealed by the client)
//! txn/<txn>/checkpoint        the latest checkpoint record (sealed by the client)
//! txn/<txn>/commit            commit record: the decision to commit, with its cleanup list
//! ```
//!
//! Because every object a transaction uploads carries its id in the name, recovery finds what a
//! dead transaction left by listing its own prefixes, never by scanning the repository.

use super::{CommitRequest, LockGuard, Pending, Repository};
use crate::backend::local::LocalBackend;
use crate::backend::{Backend, ErrorKind, StoreError, StoreResult};
use crate::manifest;
use anyhow::Result;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

pub struct ObjectRepo {
    backend: Box<dyn Backend>,
    lock_path: PathBuf,
}

fn pack_key(name: &str) -> String {
    format!("packs/{name}")
}

impl ObjectRepo {
    pub fn local(dir: &str) -> Self {
        ObjectRepo { backend: Box::new(LocalBackend::new(dir)), lock_path: PathBuf::from(dir).join("lock") }
    }

    fn delete_all(&self, keys: impl IntoIterator<Item = String>) -> StoreResult<()> {
        for k in keys {
            self.backend.delete(&k)?;
        }
        Ok(())
    }

    /// `put_new`, except that finding the same bytes already stored is success: a client that
    /// retries after a lost response must not be told that its own object exists.
    fn put_new_same(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        match self.backend.put_new(key, data) {
            Err(e) if e.kind == ErrorKind::Exists && self.backend.get(key).is_ok_and(|b| b == data) => Ok(()),
            r => r,
        }
    }

    /// Deletes what transaction `txn` uploaded that `keep` does not name.
    fn delete_unkept(&self, txn: &str, keep_packs: &[String], keep_idx: &[String]) -> StoreResult<()> {
        let kp: HashSet<String> = keep_packs.iter().map(|p| pack_key(p)).collect();
        let packs = self.backend.list(&format!("packs/{txn}/"))?;
        self.delete_all(packs.into_iter().filter(|k| !kp.contains(k)))?;
        let ki: HashSet<String> = keep_idx.iter().map(|i| crate::index::key(i)).collect();
        let idx = self.backend.list(&format!("index/{txn}-"))?;
        self.delete_all(idx.into_iter().filter(|k| !ki.contains(k)))
    }
}

impl Repository for ObjectRepo {
    fn describe(&self) -> String {
        self.backend.describe()
    }

    fn read_config(&self) -> StoreResult<Option<Vec<u8>>> {
        match self.backend.get("config") {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn init(&self, config: &[u8]) -> StoreResult<()> {
        self.put_new_same("config", config)
    }

    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        super::lock::flock(&self.lock_path, owner)
    }

    fn head(&self) -> StoreResult<(u64, Option<Vec<u8>>)> {
        let gens = self.backend.list("manifest/")?;
        match gens.iter().filter_map(|k| manifest::gen_from_key(k)).max() {
            None => Ok((0, None)),
            Some(g) => Ok((g, Some(self.backend.get(&manifest::key(g))?))),
        }
    }

    fn generations(&self) -> StoreResult<Vec<u64>> {
        let mut gens: Vec<u64> =
            self.backend.list("manifest/")?.iter().filter_map(|k| manifest::gen_from_key(k)).collect();
        gens.sort_unstable();
        Ok(gens)
    }

    fn manifest(&self, gen: u64) -> StoreResult<Vec<u8>> {
        self.backend.get(&manifest::key(gen))
    }

    fn begin(&self, txn: &str, intent: &[u8]) -> StoreResult<()> {
        self.put_new_same(&format!("txn/{txn}/begin"), intent)
    }

    fn put_pack(&self, txn: &str, seq: u32, data: Vec<u8>) -> StoreResult<String> {
        let name = format!("{txn}/{seq:08x}");
        self.backend.put(&pack_key(&name), &data)?;
        Ok(name)
    }

    fn put_index(&self, txn: &str, seq: u32, data: &[u8]) -> StoreResult<String> {
        let name = format!("{txn}-{seq:06x}");
        self.backend.put(&crate::index::key(&name), data)?;
        Ok(name)
    }

    fn checkpoint(&self, txn: &str, record: &[u8]) -> StoreResult<()> {
        self.backend.put(&format!("txn/{txn}/checkpoint"), record)
    }

    fn commit(&self, txn: &str, req: &CommitRequest) -> StoreResult<()> {
        // The commit record is the decision: once it is durable, `finish` completes the commit.
        self.backend.put(&format!("txn/{txn}/commit"), &req.encode())?;
        crate::failpoint::hit("commit-decided");
        self.finish(txn)
    }

    fn finish(&self, txn: &str) -> StoreResult<()> {
        let rec = match self.backend.get(&format!("txn/{txn}/commit")) {
            Ok(rec) => rec,
            // No records at all: the cleanup already ran to its end (it deletes the commit record
            // last), so a retried finish is done. A transaction with records but no commit
            // record was never decided: NotFound.
            Err(e) if e.is_not_found() && self.backend.list(&format!("txn/{txn}/"))?.is_empty() => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let req = CommitRequest::decode(&rec)
            .map_err(|e| StoreError::new(ErrorKind::Permanent, format!("transaction {txn}: {e:#}")))?;
        let (gen, _) = self.head()?;
        if gen + 1 == req.gen {
            // The commit point: generation req.gen becomes visible.
            match self.backend.put_new(&manifest::key(req.gen), &req.manifest) {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Exists => {}
                Err(e) => return Err(e),
            }
            crate::failpoint::hit("commit-manifest-written");
        }
        let stored = self.backend.get(&manifest::key(req.gen));
        if !matches!(&stored, Ok(m) if *m == req.manifest) {
            // Another commit took this generation (impossible under the lock): undo ours.
            self.backend.delete(&format!("txn/{txn}/commit"))?;
            self.abort(txn)?;
            return Err(StoreError::new(
                ErrorKind::Permanent,
                format!("transaction {txn} lost a race for generation {}; nothing was committed", req.gen),
            ));
        }
        // Cleanup after the commit point; every step is idempotent.
        self.delete_unkept(txn, &req.keep_packs, &req.keep_indexes)?;
        self.delete_all(req.delete_packs.iter().map(|p| pack_key(p)))?;
        self.delete_all(req.delete_indexes.iter().map(|i| crate::index::key(i)))?;
        if !req.keep_history {
            let old = self.backend.list("manifest/")?;
            self.delete_all(
                old.into_iter().filter(|k| manifest::gen_from_key(k).is_some_and(|g| g < req.gen)),
            )?;
        }
        crate::failpoint::hit("commit-cleaned");
        self.backend.delete(&format!("txn/{txn}/checkpoint"))?;
        self.backend.delete(&format!("txn/{txn}/begin"))?;
        self.backend.delete(&format!("txn/{txn}/commit"))
    }

    fn abort(&self, txn: &str) -> StoreResult<()> {
        self.delete_unkept(txn, &[], &[])?;
        self.backend.delete(&format!("txn/{txn}/checkpoint"))?;
        self.backend.delete(&format!("txn/{txn}/begin"))
    }

    fn pending(&self) -> StoreResult<Vec<Pending>> {
        let mut by_txn: BTreeMap<String, Pending> = BTreeMap::new();
        for key in self.backend.list("txn/")? {
            let mut parts = key.splitn(3, '/').skip(1);
            let (Some(txn), Some(what)) = (parts.next(), parts.next()) else {
                continue;
            };
            let p = by_txn.entry(txn.to_string()).or_insert_with(|| Pending {
                txn: txn.to_string(),
                intent: None,
                checkpoint: None,
                committing: false,
            });
            match what {
                "begin" => p.intent = Some(self.backend.get(&key)?),
                "checkpoint" => p.checkpoint = Some(self.backend.get(&key)?),
                "commit" => p.committing = true,
                _ => {}
            }
        }
        Ok(by_txn.into_values().collect())
    }

    fn clean_partial(&self) -> StoreResult<()> {
        self.backend.clean_partial()
    }

    fn read_pack(&self, pack: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.backend.get_range(&pack_key(pack), offset, len)
    }

    fn pack_size(&self, pack: &str) -> StoreResult<u64> {
        self.backend.size(&pack_key(pack))
    }

    fn get_index(&self, name: &str) -> StoreResult<Vec<u8>> {
        self.backend.get(&crate::index::key(name))
    }

    fn list_packs(&self) -> StoreResult<Vec<String>> {
        Ok(self.backend.list("packs/")?.into_iter().map(|k| k["packs/".len()..].to_string()).collect())
    }

    /// Two: one pack's write and fsync overlap the next one's (temporary names are unique).
    fn uploads_in_flight(&self) -> usize {
        2
    }

    fn list_indexes(&self) -> StoreResult<Vec<String>> {
        Ok(self.backend.list("index/")?.into_iter().map(|k| k["index/".len()..].to_string()).collect())
    }
}
