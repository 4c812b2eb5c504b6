//! The transactional protocol over a dumb object store (see `backend`). Object names:
//!
//! ```text
//! config                      plain: format version, repository id, key check
//! lock                        single-writer lock (local: flock)
//! manifest/<gen, 16 hex>      sealed manifest; the highest generation is current
//! packs/<txn>/<seq, 8 hex>    packs, grouped by the transaction that wrote them
//! index/<txn>-<seq, 6 hex>    sealed index segments
//! txn/<txn>/...               the transaction's records (`records`): begin, numbered
//!                             checkpoints, commit
//! decided/<txn>               its decision, `commit` or `abort` (`decision`), kept for good
//! ```
//!
//! Because every object a transaction uploads carries its id in the name, recovery finds what a
//! dead transaction left by listing its own prefixes, never by scanning the repository.
//!
//! Append-only invariants, kept here for every kind of repository (the server adds who may do
//! what, `serve::guard`): a transaction id is used once (`begin` refuses an id that has stored
//! anything, so a committed transaction can never be "begun" again and aborted); packs, index
//! segments and records are create-if-absent (the same bytes again is success, a retry);
//! uploads go only into a transaction that is begun and not yet decided; a commit is decided only
//! for the next generation; a manifest is written only for a transaction decided `commit`, and
//! uploads are deleted by an abort only once it is decided `abort` (`decision`: of a commit and
//! an abort racing, the first to create the decision wins), and only of a transaction that is
//! still begun.

use super::decision::{discarded, Decision};
use super::finish::current;
use super::{CommitRequest, LockGuard, Pending, Repository};
use crate::backend::local::LocalBackend;
use crate::backend::{Backend, ErrorKind, StoreError, StoreResult};
use crate::layout;
use anyhow::Result;
use std::collections::HashSet;
use std::path::PathBuf;

pub struct ObjectRepo {
    pub(super) backend: Box<dyn Backend>,
    locker: Box<dyn super::lock::Locker>,
    in_flight: usize,
}

impl ObjectRepo {
    /// The repository protocol over any backend, kept to one writer by `locker`.
    pub fn new(backend: Box<dyn Backend>, locker: Box<dyn super::lock::Locker>) -> Self {
        ObjectRepo { backend, locker, in_flight: 2 }
    }

    /// How many pack uploads may be in flight at once (2 unless set: see `uploads_in_flight`).
    pub fn with_uploads_in_flight(self, n: usize) -> Self {
        ObjectRepo { in_flight: n.max(1), ..self }
    }

    /// A repository in a local directory: files, and `flock` on its `lock` file.
    pub fn local(dir: &str) -> Self {
        Self::new(
            Box::new(LocalBackend::new(dir)),
            Box::new(super::lock::Flock(PathBuf::from(dir).join(layout::LOCK))),
        )
    }

    /// The names of the objects under `prefix` (`layout::PACKS` or `layout::INDEXES`).
    fn names(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let keys = self.backend.list(prefix)?;
        Ok(keys.iter().filter_map(|k| layout::name_of(prefix, k)).map(String::from).collect())
    }

    pub(super) fn delete_all(&self, keys: impl IntoIterator<Item = String>) -> StoreResult<()> {
        for k in keys {
            self.backend.delete(&k)?;
        }
        Ok(())
    }

    /// `put_new`, except that finding the same bytes already stored is success: a client that
    /// retries after a lost response must not be told that its own object exists.
    pub(super) fn put_new_same(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.put_new_created(key, data).map(|_| ())
    }

    /// `put_new_same`, saying whether this call created the object (false: it was there).
    fn put_new_created(&self, key: &str, data: &[u8]) -> StoreResult<bool> {
        match self.backend.put_new(key, data) {
            Ok(()) => Ok(true),
            Err(e) if e.kind == ErrorKind::Exists && self.backend.get(key).is_ok_and(|b| b == data) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes what transaction `txn` uploaded that `keep` does not name.
    pub(super) fn delete_unkept(
        &self,
        txn: &str,
        keep_packs: &[String],
        keep_idx: &[String],
    ) -> StoreResult<()> {
        let kp: HashSet<String> = keep_packs.iter().map(|p| layout::pack_key(p)).collect();
        let packs = self.backend.list(&layout::packs_of(txn))?;
        self.delete_all(packs.into_iter().filter(|k| !kp.contains(k)))?;
        let ki: HashSet<String> = keep_idx.iter().map(|i| layout::segment_key(i)).collect();
        let idx = self.backend.list(&layout::segments_of(txn))?;
        self.delete_all(idx.into_iter().filter(|k| !ki.contains(k)))
    }

    pub(super) fn exists(&self, key: &str) -> StoreResult<bool> {
        match self.backend.size(key) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores `key` of transaction `txn` (create-if-absent; the same bytes again is success), only
    /// while the transaction is open (`open_for_upload`), checked after the put: a writer
    /// paused between its check and its put (past its lease, on shared storage) can land the put
    /// after another client's recovery ended the transaction, and then takes back what it just
    /// created (never an object that was there before it: that one may be committed data).
    fn put_upload(&self, txn: &str, key: &str, data: &[u8]) -> StoreResult<()> {
        // Checked after the put only: the check before it would add two requests per upload and
        // prove nothing the check after does not.
        if !self.put_new_created(key, data)? {
            return Ok(());
        }
        if let Err(e) = self.open_for_upload(txn) {
            let _ = self.backend.delete(key);
            return Err(e);
        }
        Ok(())
    }

    /// Uploads go only into a transaction that is begun and not decided.
    pub(super) fn open_for_upload(&self, txn: &str) -> StoreResult<()> {
        if !self.exists(&layout::begin(txn))? {
            return Err(StoreError::new(
                ErrorKind::NotFound,
                format!("no transaction {txn} is under way (it was never begun, or it ended)"),
            ));
        }
        if self.exists(&layout::decision(txn))? {
            return Err(StoreError::new(
                ErrorKind::Exists,
                format!("transaction {txn} is already decided; nothing more may be stored in it"),
            ));
        }
        Ok(())
    }

    /// `begin`, recording first who began it (`layout::owner`: the hash of a secret the
    /// beginning client holds; the server lets only it write into the transaction).
    pub fn begin_owned(&self, txn: &str, intent: &[u8], owner: Option<&[u8]>) -> StoreResult<()> {
        let begin = layout::begin(txn);
        let same_begin = match self.backend.get(&begin) {
            Ok(b) if b == intent => true,
            Ok(_) => {
                return Err(StoreError::new(
                    ErrorKind::Exists,
                    format!("transaction {txn} was begun with another intent"),
                ))
            }
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e),
        };
        if !same_begin {
            // A transaction id is used once: whatever it stored may be committed data now. A
            // decision says so in one request; for a server's clients (`owner`: they may be
            // hostile, and transactions of older archivers have no decision) everything is looked
            // at. A client with direct access chose its id at random and could delete anything
            // anyway.
            let used = self.exists(&layout::decision(txn))?
                || owner.is_some()
                    && (!self.backend.list(&layout::packs_of(txn))?.is_empty()
                        || !self.backend.list(&layout::segments_of(txn))?.is_empty()
                        || self
                            .backend
                            .list(&layout::records_of(txn))?
                            .iter()
                            .any(|k| *k != layout::owner(txn)));
            if used {
                return Err(StoreError::new(
                    ErrorKind::Exists,
                    format!("transaction id {txn} was used before; a new transaction needs a new id"),
                ));
            }
        }
        if let Some(owner) = owner {
            self.put_new_same(&layout::owner(txn), owner)?;
        }
        self.put_new_same(&begin, intent)
    }

    /// Whether transaction `txn` is begun and not yet ended.
    pub fn begun(&self, txn: &str) -> StoreResult<bool> {
        self.exists(&layout::begin(txn))
    }

    /// The owner hash `begin_owned` recorded, if any.
    pub fn owner(&self, txn: &str) -> StoreResult<Option<Vec<u8>>> {
        match self.backend.get(&layout::owner(txn)) {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the transaction's records, the begin record last (while it stands, a retried
    /// abort still finds the transaction).
    pub(super) fn delete_records(&self, txn: &str) -> StoreResult<()> {
        let (begin, commit) = (layout::begin(txn), layout::commit(txn));
        let rest =
            self.backend.list(&layout::records_of(txn))?.into_iter().filter(|k| *k != begin && *k != commit);
        self.delete_all(rest)?;
        // Then begin, then commit: a finish interrupted in between still finds its decision.
        self.backend.delete(&begin)?;
        self.backend.delete(&commit)
    }
}

impl Repository for ObjectRepo {
    fn describe(&self) -> String {
        self.backend.describe()
    }

    fn read_config(&self) -> StoreResult<Option<Vec<u8>>> {
        match self.backend.get(layout::CONFIG) {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn init(&self, config: &[u8]) -> StoreResult<()> {
        self.put_new_same(layout::CONFIG, config)
    }

    fn access_list(&self) -> StoreResult<Option<Vec<u8>>> {
        let newest = self.backend.list(layout::ACCESS)?.iter().filter_map(|k| layout::access_gen_of(k)).max();
        newest.map(|g| self.backend.get(&layout::access(g))).transpose()
    }

    fn put_access_list(&self, gen: u64, list: &[u8]) -> StoreResult<()> {
        self.put_new_same(&layout::access(gen), list)
    }

    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        self.locker.lock(owner)
    }

    fn head(&self) -> StoreResult<(u64, Option<Vec<u8>>)> {
        let gens = self.backend.list(layout::MANIFESTS)?;
        match gens.iter().filter_map(|k| layout::gen_of(k)).max() {
            None => Ok((0, None)),
            Some(g) => Ok((g, Some(self.backend.get(&layout::manifest(g))?))),
        }
    }

    fn generations(&self) -> StoreResult<Vec<u64>> {
        let mut gens: Vec<u64> =
            self.backend.list(layout::MANIFESTS)?.iter().filter_map(|k| layout::gen_of(k)).collect();
        gens.sort_unstable();
        Ok(gens)
    }

    fn manifest(&self, gen: u64) -> StoreResult<Vec<u8>> {
        self.backend.get(&layout::manifest(gen))
    }

    fn begin(&self, txn: &str, intent: &[u8]) -> StoreResult<()> {
        self.begin_owned(txn, intent, None)
    }

    fn put_pack(&self, txn: &str, seq: u32, data: bytes::Bytes) -> StoreResult<String> {
        let name = layout::pack_name(txn, seq);
        self.put_upload(txn, &layout::pack_key(&name), &data)?;
        Ok(name)
    }

    fn spool(&self) -> StoreResult<Option<crate::backend::Spool>> {
        self.backend.spool()
    }

    /// As `put_upload`, except that the pack's name found taken is an error: a spooled pack is
    /// stored once, never retried, so the object there is not ours.
    fn put_spooled(&self, txn: &str, seq: u32, spool: crate::backend::Spool) -> StoreResult<String> {
        let name = layout::pack_name(txn, seq);
        let key = layout::pack_key(&name);
        self.backend.put_new_spooled(&key, spool)?;
        if let Err(e) = self.open_for_upload(txn) {
            let _ = self.backend.delete(&key);
            return Err(e);
        }
        Ok(name)
    }

    fn put_index(&self, txn: &str, seq: u32, data: &[u8]) -> StoreResult<String> {
        let name = layout::segment_name(txn, seq);
        self.put_upload(txn, &layout::segment_key(&name), data)?;
        Ok(name)
    }

    fn checkpoint(&self, txn: &str, seq: u32, record: &[u8]) -> StoreResult<()> {
        self.put_upload(txn, &layout::checkpoint(txn, seq), record)
    }

    fn checkpoint_record(&self, txn: &str, seq: u32) -> StoreResult<Vec<u8>> {
        self.backend.get(&layout::checkpoint(txn, seq))
    }

    fn commit(&self, txn: &str, req: &CommitRequest) -> StoreResult<()> {
        let record = req.encode();
        match self.backend.get(&layout::commit(txn)) {
            // Decided already (a retry after a lost answer): roll it forward.
            Ok(stored) if stored == record => return self.finish(txn),
            Ok(_) => {
                return Err(StoreError::new(
                    ErrorKind::Exists,
                    format!("transaction {txn} is already decided with another commit record"),
                ))
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        if !self.exists(&layout::begin(txn))? {
            // Finished already (a retry whose first attempt went all the way), or never begun.
            return match self.backend.get(&layout::manifest(req.gen)) {
                Ok(m) if m == req.manifest => self.finish(txn),
                _ => Err(StoreError::new(
                    ErrorKind::NotFound,
                    format!("no transaction {txn} is under way (it was never begun, or it ended)"),
                )),
            };
        }
        let manifests = self.backend.list(layout::MANIFESTS)?;
        let gen = current(&manifests);
        if req.gen == gen {
            // Its manifest may be current already, its record lost (`lost_decision`).
            if let Some(done) = self.redecide(txn, req, &record) {
                return done;
            }
        }
        if req.gen != gen + 1 {
            // Under the lock this cannot happen to an honest client; the transaction is left as
            // it is for recovery (it may hold a checkpoint: the user's data).
            return Err(StoreError::new(
                ErrorKind::Permanent,
                format!(
                    "transaction {txn} lost a race for generation {} (the repository is at {gen}); nothing was committed",
                    req.gen
                ),
            ));
        }
        // The commit record first (what the commit changes), then `finish` decides and completes.
        self.put_new_same(&layout::commit(txn), &record)?;
        crate::failpoint::hit("commit-recorded");
        self.finish_record(txn, record, Some(manifests))
    }

    fn finish(&self, txn: &str) -> StoreResult<()> {
        let rec = match self.backend.get(&layout::commit(txn)) {
            Ok(rec) => rec,
            // No records at all: the cleanup already ran to its end (it deletes the commit record
            // last), so a retried finish is done. A transaction with records but no commit
            // record was never decided: NotFound.
            Err(e) if e.is_not_found() => {
                let records = self.backend.list(&layout::records_of(txn))?;
                return match self.decision(txn)? {
                    Some(Decision::Abort) => Err(discarded(txn)),
                    _ if records.is_empty() => Ok(()),
                    // Decided, its record lost (damaged storage): nothing to carry out and
                    // nothing may be discarded; keep every object, remove the records.
                    Some(Decision::Commit) => self.delete_records(txn),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        self.finish_record(txn, rec, None)
    }

    fn abort(&self, txn: &str) -> StoreResult<()> {
        self.discard(txn)
    }

    fn pending(&self) -> StoreResult<Vec<Pending>> {
        self.list_pending()
    }

    fn clean_partial(&self) -> StoreResult<()> {
        self.backend.clean_partial()
    }
    fn read_pack(&self, pack: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.backend.get_range(&layout::pack_key(pack), offset, len)
    }

    fn pack_size(&self, pack: &str) -> StoreResult<u64> {
        self.backend.size(&layout::pack_key(pack))
    }

    fn get_index(&self, name: &str) -> StoreResult<Vec<u8>> {
        self.backend.get(&layout::segment_key(name))
    }

    fn list_packs(&self) -> StoreResult<Vec<String>> {
        self.names(layout::PACKS)
    }

    fn check_store(&self) -> Result<()> {
        let key = format!("probe-{}", crate::process::random_id()?);
        crate::backend::probe::create_if_absent_holds(&*self.backend, &key)
    }

    /// Two for a directory (one pack's write and fsync overlap the next one's; temporary names
    /// are unique); more over a network, where each upload waits on round trips.
    fn uploads_in_flight(&self) -> usize {
        self.in_flight
    }

    fn list_indexes(&self) -> StoreResult<Vec<String>> {
        self.names(layout::INDEXES)
    }
}
