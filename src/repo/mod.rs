//! The transactional repository API, shared by every kind of repository (a local directory now;
//! `archiver serve` over HTTP and S3-compatible storage later). It deals only in opaque sealed
//! bytes: a server implementing it never sees plaintext or keys.
//!
//! Life cycle of a write: `lock` → `begin` → `put_pack`/`put_index`* → `checkpoint`* → `commit`
//! (or `abort`). `commit` first stores a commit record holding the new manifest and everything to
//! clean up, then decides (`decision`: created only if absent, so a commit and a recovery's abort
//! cannot both win); from then on `finish` rolls it forward after a crash.
//! The visible commit point is the create-if-absent write of `manifest/<gen>`.

mod covers;
pub mod decision;
mod finish;
pub mod http;
mod http_body;
mod http_wire;
mod lease;
pub mod lease_lock;
pub mod limits;
pub mod lock;
mod lost_decision;
pub mod objects;
#[cfg(test)]
mod over_memory;
mod pending;
pub mod protocol;
pub mod retrying;
pub mod throttled;

use crate::backend::StoreResult;
use crate::codec::{Reader, Writer};
use anyhow::{Context, Result};

/// A transaction that was begun and not yet cleaned up.
#[derive(Debug, Clone)]
pub struct Pending {
    pub txn: String,
    pub intent: Option<Vec<u8>>,
    /// The newest checkpoint record.
    pub checkpoint: Option<Vec<u8>>,
    /// The numbers of all its checkpoint records, ascending (older ones: `checkpoint_record`).
    pub checkpoint_seqs: Vec<u32>,
    /// A commit record or a `commit` decision exists: `finish` carries it out.
    pub committing: bool,
}

impl Pending {
    pub fn new(txn: &str) -> Pending {
        Pending {
            txn: txn.to_string(),
            intent: None,
            checkpoint: None,
            checkpoint_seqs: Vec::new(),
            committing: false,
        }
    }
}

/// Everything a commit changes, stored before the manifest so a crash can be rolled forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitRequest {
    pub gen: u64,
    pub manifest: Vec<u8>,
    /// This transaction's packs and index segments that the new manifest references; the rest of
    /// what the transaction uploaded (after its last checkpoint) is deleted.
    pub keep_packs: Vec<String>,
    pub keep_indexes: Vec<String>,
    /// Older packs and index segments the new manifest no longer references (delete, repack).
    pub delete_packs: Vec<String>,
    pub delete_indexes: Vec<String>,
    /// Keep the manifest generations this commit supersedes (a commit without the delete
    /// permission: see `access`). Otherwise they are deleted once the new one is visible.
    pub keep_history: bool,
}

impl CommitRequest {
    /// Whether committing removes stored data other than this transaction's own leftovers.
    pub fn deletes(&self) -> bool {
        !self.delete_packs.is_empty() || !self.delete_indexes.is_empty()
    }

    /// The record, ending in a BLAKE3 hash of what precedes it: it is stored plain (the server
    /// finishes commits without keys), so a damaged record must be refused, never obeyed.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(2).uvar(self.gen).bytes(&self.manifest);
        for list in [&self.keep_packs, &self.keep_indexes, &self.delete_packs, &self.delete_indexes] {
            w.uvar(list.len() as u64);
            for s in list {
                w.str(s);
            }
        }
        w.u8(self.keep_history as u8);
        let mut out = w.finish();
        let sum = *blake3::hash(&out).as_bytes();
        out.extend_from_slice(&sum);
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Self> {
        let Some(split) = buf.len().checked_sub(32) else { anyhow::bail!("commit record is truncated") };
        let (body, sum) = buf.split_at(split);
        anyhow::ensure!(blake3::hash(body).as_bytes() == sum, "commit record is damaged (checksum mismatch)");
        let mut r = Reader::new(body, "commit record");
        anyhow::ensure!(r.u8()? == 2, "commit record has an unknown version");
        let mut c = CommitRequest { gen: r.uvar()?, manifest: r.bytes()?.to_vec(), ..Default::default() };
        for list in [&mut c.keep_packs, &mut c.keep_indexes, &mut c.delete_packs, &mut c.delete_indexes] {
            for _ in 0..r.count(1)? {
                list.push(r.string()?);
            }
        }
        c.keep_history = r.u8()? == 1;
        // The names become object paths when the commit is finished (by a server, without keys):
        // a `../` in one would delete outside the repository.
        for p in c.keep_packs.iter().chain(&c.delete_packs) {
            crate::limits::pack_name(p).context("commit record")?;
        }
        for i in c.keep_indexes.iter().chain(&c.delete_indexes) {
            crate::limits::segment_name(i).context("commit record")?;
        }
        Ok(c)
    }
}

/// The pending-transaction list as `archiver serve` sends it.
pub fn encode_pending(list: &[Pending]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(2).uvar(list.len() as u64);
    for p in list {
        w.str(&p.txn).u8(p.committing as u8);
        for part in [&p.intent, &p.checkpoint] {
            match part {
                Some(b) => w.u8(1).bytes(b),
                None => w.u8(0),
            };
        }
        w.uvar(p.checkpoint_seqs.len() as u64);
        for s in &p.checkpoint_seqs {
            w.uvar(*s as u64);
        }
    }
    w.finish()
}

pub fn decode_pending(buf: &[u8]) -> Result<Vec<Pending>> {
    let mut r = Reader::new(buf, "pending list");
    anyhow::ensure!(r.u8()? == 2, "pending list has an unknown version");
    let mut out = Vec::new();
    for _ in 0..r.count(4)? {
        let txn = r.string()?;
        let committing = r.u8()? == 1;
        let mut parts = [None, None];
        for part in parts.iter_mut() {
            if r.u8()? == 1 {
                *part = Some(r.bytes()?.to_vec());
            }
        }
        let [intent, checkpoint] = parts;
        let mut checkpoint_seqs = Vec::new();
        for _ in 0..r.count(1)? {
            let seq = r.uvar()?;
            checkpoint_seqs.push(
                u32::try_from(seq).map_err(|_| anyhow::anyhow!("pending list: bad checkpoint number"))?,
            );
        }
        out.push(Pending { txn, intent, checkpoint, checkpoint_seqs, committing });
    }
    Ok(out)
}

/// Releases the repository lock when dropped.
pub trait LockGuard: Send {
    /// What taking the lock did that the user should hear of (a stale lock taken over).
    fn notice(&self) -> Option<String> {
        None
    }
    /// Whether the lock was found taken by another since (a lease broken while this holder was
    /// paused): the holder should stop writing.
    fn lost(&self) -> bool {
        false
    }
    /// Whether the lock is still this holder's, checked now (for a lease: read from the store).
    /// A holder that finds it is not must not recover anything: another client holds the lock
    /// and may be writing.
    fn still_held(&self) -> bool {
        !self.lost()
    }
}

pub trait Repository: Send + Sync {
    fn describe(&self) -> String;
    /// The plain `config` object, or None when no repository exists here.
    fn read_config(&self) -> StoreResult<Option<Vec<u8>>>;
    /// Creates the repository; fails with `Exists` if one with another config is already there
    /// (the same config is success: a retry after a lost answer).
    fn init(&self, config: &[u8]) -> StoreResult<()>;
    /// The newest access list (`access::list`), or None when the config's verifiers are in force.
    fn access_list(&self) -> StoreResult<Option<Vec<u8>>>;
    /// Stores access list `gen`, created only if absent (`Exists` when the generation is taken by
    /// other bytes; the same bytes again is success). A server takes it only from a delete key,
    /// signed, and only as the generation after its newest.
    fn put_access_list(&self, gen: u64, list: &[u8]) -> StoreResult<()>;
    /// Takes the single-writer lock; `owner` describes us to whoever finds it taken.
    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>>;
    /// The current generation and its sealed manifest (generation 0 has none).
    fn head(&self) -> StoreResult<(u64, Option<Vec<u8>>)>;
    /// The generations whose manifests are stored, ascending: the current one, and those that
    /// commits without the delete permission kept (`CommitRequest::keep_history`).
    fn generations(&self) -> StoreResult<Vec<u64>>;
    /// The sealed manifest of generation `gen` (`NotFound` if it is not kept).
    fn manifest(&self, gen: u64) -> StoreResult<Vec<u8>>;
    /// Records the intent; `Exists` if the transaction has another one (the same is success), or
    /// if the id was used before (a transaction id is never reused).
    fn begin(&self, txn: &str, intent: &[u8]) -> StoreResult<()>;
    /// Stores a pack durably and returns its name. Takes the pack as `Bytes`: an HTTP client
    /// sends it, and `retrying` sends it again, without a copy (packs are 16 MiB; several may be
    /// in flight).
    fn put_pack(&self, txn: &str, seq: u32, data: bytes::Bytes) -> StoreResult<String>;
    /// A file to build the next pack in where `put_spooled` takes it without a copy (a local
    /// directory), so no pack is held in memory; None: packs are built in memory for `put_pack`.
    fn spool(&self) -> StoreResult<Option<crate::backend::Spool>> {
        Ok(None)
    }
    /// `put_pack` of a pack built in a `spool`. The default reads it back and calls `put_pack`.
    fn put_spooled(&self, txn: &str, seq: u32, mut spool: crate::backend::Spool) -> StoreResult<String> {
        self.put_pack(txn, seq, spool.contents()?.into())
    }
    /// Stores an index segment durably and returns its name.
    fn put_index(&self, txn: &str, seq: u32, data: &[u8]) -> StoreResult<String>;
    /// Durably stores checkpoint record `seq` of the transaction (create-if-absent: the same
    /// bytes again is success, other bytes `Exists`). Recovery uses the highest-numbered one.
    fn checkpoint(&self, txn: &str, seq: u32, record: &[u8]) -> StoreResult<()>;
    /// Checkpoint record `seq` of a pending transaction (`Pending::checkpoint_seqs`).
    fn checkpoint_record(&self, txn: &str, seq: u32) -> StoreResult<Vec<u8>>;
    /// Decides and finishes a commit for the next generation; a request for the current one
    /// whose manifest is already stored there (a visible commit that lost its record) is decided
    /// again only keeping everything the transaction stored (`lost_decision`).
    fn commit(&self, txn: &str, req: &CommitRequest) -> StoreResult<()>;
    /// Decides (`decision`) and rolls forward a transaction whose commit record exists; a
    /// transaction that left no records (finished already) is success, one without a commit
    /// record is `NotFound`, one decided `abort` meanwhile is an error and stays discarded. A
    /// commit record that cannot be read is not obeyed: only the transaction's records are
    /// removed, every object it stored is kept (`lost_decision`).
    fn finish(&self, txn: &str) -> StoreResult<()>;
    /// Decides `abort` (`decision`), then deletes everything the transaction uploaded and the
    /// transaction itself. `Exists` if its commit is recorded or decided; a transaction that is
    /// no longer begun loses only its records.
    fn abort(&self, txn: &str) -> StoreResult<()>;
    fn pending(&self) -> StoreResult<Vec<Pending>>;
    /// Removes leftovers of uploads that never completed. Call under the lock, before recovery.
    fn clean_partial(&self) -> StoreResult<()>;
    fn read_pack(&self, pack: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>>;
    fn pack_size(&self, pack: &str) -> StoreResult<u64>;
    fn get_index(&self, name: &str) -> StoreResult<Vec<u8>>;
    fn list_packs(&self) -> StoreResult<Vec<String>>;
    fn list_indexes(&self) -> StoreResult<Vec<String>>;
    /// How many `put_pack` calls a writer keeps in flight at once (each holds one pack, ≤ 20 MiB,
    /// in memory). More hides round trips and fsyncs; an implementation returning more than 1
    /// must accept concurrent `put_pack` calls of one transaction.
    fn uploads_in_flight(&self) -> usize {
        1
    }
    /// Before a repository is made here: checks that the store keeps what the protocol rests on
    /// (create-if-absent really refuses a second create: `backend::probe`). Stores that cannot
    /// fail it (a directory, a server that checked its own store) need not check.
    fn check_store(&self) -> Result<()> {
        Ok(())
    }
}

/// What a client needs to reach a repository besides its address.
#[derive(Clone, Default)]
pub struct Connect {
    /// Access keys to sign requests with (servers check them; local directories do not).
    pub access: crate::access::AccessKeys,
    /// For `https://`: trust only this PEM certificate (else the system's roots).
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Opens the repository a `--repo` value names: `http://HOST:PORT/NAME` or `https://…` for
/// `archiver serve` (one attempt per request, retried by `retrying` under `ARCHIVER_RETRIES`),
/// `s3://BUCKET[/PREFIX]` for S3-compatible storage (`s3`), otherwise a local directory.
pub fn open(spec: &str, conn: &Connect) -> Result<std::sync::Arc<dyn Repository>> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        let policy = crate::backend::retry::Policy::from_env()?;
        let client = http::HttpRepo::new(spec, conn, policy.clone())?;
        return Ok(std::sync::Arc::new(retrying::RetryingRepo::new(std::sync::Arc::new(client), policy)));
    }
    if spec.starts_with("s3://") {
        return Ok(std::sync::Arc::new(s3(spec)?));
    }
    // A mistyped URL must not quietly become a local directory named like one.
    let lower = spec.to_ascii_lowercase();
    if ["s3:", "http:", "https:"].iter().any(|s| lower.starts_with(s)) {
        anyhow::bail!(
            "repository {spec:?} looks like a mistyped URL: write s3://BUCKET[/PREFIX], http://HOST:PORT/NAME or https://..., or ./{spec} for a local directory"
        );
    }
    Ok(std::sync::Arc::new(objects::ObjectRepo::local(spec)))
}

/// How long a lease lock on shared storage lives without a heartbeat (`ARCHIVER_LOCK_TTL`,
/// seconds): a lock left by a dead client frees itself after this long.
pub fn lease_ttl() -> Result<std::time::Duration> {
    match std::env::var("ARCHIVER_LOCK_TTL").ok().filter(|v| !v.is_empty()) {
        None => Ok(std::time::Duration::from_secs(DEFAULT_LEASE_TTL_SECS)),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=86_400).contains(&n) => Ok(std::time::Duration::from_secs(n)),
            _ => anyhow::bail!("ARCHIVER_LOCK_TTL={v}: give a number of seconds from 1 to 86400"),
        },
    }
}

/// The S3 backend of `spec`, retried in one layer (see `backend::s3`).
pub fn s3_backend(spec: &str) -> Result<crate::backend::retry::Retrying<crate::backend::s3::S3Backend>> {
    let policy = crate::backend::retry::Policy::from_env()?;
    let s3 = crate::backend::s3::S3Backend::open(spec, Some(1))?;
    Ok(crate::backend::retry::Retrying::new(s3, policy))
}

/// The default lease TTL: renewed every 20 s, a dead client's lock is free after a minute.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 60;

/// A repository in S3-compatible storage (`s3://BUCKET[/PREFIX]`): the transactional protocol
/// over the S3 backend (one attempt per request, retried by `Retrying` alone under
/// `ARCHIVER_RETRIES`: see `backend::s3`), kept to one writer by a lease object in the bucket.
pub fn s3(spec: &str) -> Result<objects::ObjectRepo> {
    Ok(shared_store(std::sync::Arc::new(s3_backend(spec)?), lease_ttl()?))
}

/// The repository protocol over a store shared between machines (a bucket, or one repository's
/// prefix in it): the lock is a lease on its `lock` object, four uploads in flight.
pub fn shared_store(
    backend: std::sync::Arc<dyn crate::backend::Backend>,
    ttl: std::time::Duration,
) -> objects::ObjectRepo {
    let lock = lease_lock::LeaseLock { backend: backend.clone(), key: crate::layout::LOCK.into(), ttl };
    objects::ObjectRepo::new(Box::new(backend), Box::new(lock)).with_uploads_in_flight(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 11 review): a commit record naming `../..` was obeyed by `finish`, which
    /// deleted files outside the repository (any repository of the same `archiver serve` store).
    #[test]
    fn a_commit_record_naming_paths_outside_the_repository_is_refused() {
        let good = CommitRequest { gen: 1, keep_packs: vec!["ab/00000001".into()], ..Default::default() };
        assert!(CommitRequest::decode(&good.encode()).is_ok());
        for bad in [
            CommitRequest { delete_packs: vec!["../../other/config".into()], ..good.clone() },
            CommitRequest { keep_packs: vec!["ab/../../x".into()], ..good.clone() },
            CommitRequest { delete_indexes: vec!["../x-1".into()], ..good.clone() },
            CommitRequest { keep_indexes: vec!["ab-00/1".into()], ..good.clone() },
        ] {
            assert!(CommitRequest::decode(&bad.encode()).is_err(), "{bad:?} was accepted");
        }
    }
}
