//! Who may do what to a transaction on `archiver serve`: the rules that make a write key append
//! only (docs/SECURITY.md). The object store below (`ObjectRepo`) already refuses to reuse a
//! transaction id, to overwrite anything, to store into a transaction that is not begun, and to
//! abort a decided one; these rules add what depends on the caller:
//!
//! - A transaction belongs to the client that began it: `begin` records the BLAKE3 hash of a
//!   secret the client sends (`X-Archiver-Txn-Key`), and only a request carrying that secret may
//!   store packs, index segments or checkpoints into it. Another client, once the first one's
//!   lease is gone, may only finish it: promote its last checkpoint, or discard it.
//! - Discarding a transaction that holds a checkpoint (the user's data: recovery commits it as
//!   `NAME.part`) needs the delete key.
//! - A commit without the delete key names nothing to delete (`Route::need`), keeps the
//!   generations it supersedes (`keep_history`), and, when it commits someone else's
//!   transaction, keeps every object its last checkpoint needs (`ObjectRepo::covered`, the
//!   server's own account taken when the checkpoint was stored), or everything it stored.

use super::Reply;
use crate::access::Perm;
use crate::backend::StoreError;
use crate::repo::objects::ObjectRepo;
use crate::repo::{CommitRequest, Repository};

/// Who is asking: the permission its signature proved, and the transaction secret it sent.
pub struct Caller<'a> {
    pub perm: Option<Perm>,
    pub txn_key: Option<&'a str>,
}

type Outcome = Result<Reply, StoreError>;

fn owner_hash(key: &str) -> [u8; 32] {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// Whether the caller began `txn` (a transaction begun without a secret belongs to nobody).
fn is_owner(r: &ObjectRepo, txn: &str, who: &Caller) -> Result<bool, StoreError> {
    Ok(match (r.owner(txn)?, who.txn_key) {
        (Some(stored), Some(key)) => stored == owner_hash(key),
        _ => false,
    })
}

pub fn begin(r: &ObjectRepo, txn: &str, intent: &[u8], who: &Caller) -> Outcome {
    let Some(key) = who.txn_key.filter(|k| (16..=128).contains(&k.len())) else {
        return Ok(Reply::text(
            400,
            "beginning a transaction needs its secret (X-Archiver-Txn-Key, 16 to 128 characters)",
        ));
    };
    r.begin_owned(txn, intent, Some(&owner_hash(key)))?;
    Ok(Reply::empty(201))
}

/// Refuses a store into `txn` by anyone but the client that began it.
pub fn upload(r: &ObjectRepo, txn: &str, who: &Caller) -> Option<Reply> {
    match r.begun(txn).and_then(|begun| Ok(begun && is_owner(r, txn, who)?)) {
        Ok(true) => None,
        // Not under way: the store says so in its own words (404), as it does locally.
        Ok(false) if !r.begun(txn).unwrap_or(true) => None,
        Ok(false) => {
            Some(Reply::text(403, format!("only the client that began transaction {txn} may store into it")))
        }
        Err(e) => Some(e.into()),
    }
}

/// Stores checkpoint `seq`, with the server's account of what it needs taken first.
pub fn checkpoint(r: &ObjectRepo, txn: &str, seq: u32, record: &[u8], who: &Caller) -> Outcome {
    if let Some(refused) = upload(r, txn, who) {
        return Ok(refused);
    }
    r.record_covers(txn, seq)?;
    r.checkpoint(txn, seq, record)?;
    Ok(Reply::empty(201))
}

pub fn commit(r: &ObjectRepo, txn: &str, mut req: CommitRequest, who: &Caller) -> Outcome {
    let delete = who.perm == Some(Perm::Delete);
    // Without the delete permission nothing committed may become unreachable.
    req.keep_history |= !delete;
    // (A transaction that is no longer begun is a retry of a finished commit, or nothing: the
    // store answers that itself, changing nothing that is not this very commit's.)
    // Someone else's transaction, kept whole (a visible commit that lost its record, decided
    // again by recovery: `repo::lost_decision`), loses nothing: allowed like one's own.
    if !delete && r.begun(txn)? && !is_owner(r, txn, who)? && !r.keeps_everything(txn, &req)? {
        // Someone else's transaction: only its last checkpoint may be promoted, keeping all of it.
        let Some(covered) = r.covered(txn)? else {
            return Ok(Reply::text(
                403,
                format!("transaction {txn} was begun by another client and holds no checkpoint: a key without the delete permission may only discard it"),
            ));
        };
        let kept: std::collections::HashSet<String> = req
            .keep_packs
            .iter()
            .map(|p| crate::layout::pack_key(p))
            .chain(req.keep_indexes.iter().map(|i| crate::layout::segment_key(i)))
            .collect();
        let dropped = covered.iter().filter(|k| !kept.contains(*k)).count();
        if dropped > 0 {
            return Ok(Reply::text(
                403,
                format!("a key without the delete permission may not drop what the checkpoint of transaction {txn} holds ({dropped} object(s))"),
            ));
        }
    }
    r.commit(txn, &req)?;
    Ok(Reply::empty(200))
}

pub fn abort(r: &ObjectRepo, txn: &str, who: &Caller) -> Outcome {
    // A checkpoint is the user's data (recovery commits it as NAME.part): only a delete key may
    // throw it away, as only a delete key may make committed data unreachable.
    let checkpointed = r.pending()?.iter().any(|p| p.txn == *txn && p.checkpoint.is_some());
    if checkpointed && who.perm != Some(Perm::Delete) {
        return Ok(Reply::text(
            403,
            "a key without the delete permission may not discard a checkpointed transaction (recovery commits it as NAME.part)",
        ));
    }
    r.abort(txn)?;
    Ok(Reply::empty(200))
}

/// Stores access list `gen` (the route already proved the delete key): only the generation after
/// the newest, signed by the repository's delete key, keeping every write key retired before
/// (`keycheck::in_force::check_next`). Two revocations racing: the generation is created once.
pub fn access_list(r: &ObjectRepo, gen: u64, body: &[u8]) -> Outcome {
    let Some(config) = r.read_config()? else {
        return Ok(Reply::text(404, "no repository here"));
    };
    let Ok(parsed) = crate::keycheck::parse(&config, "") else {
        return Ok(Reply::text(500, "this repository's config file is damaged"));
    };
    let current = r.access_list()?;
    if current.as_deref() == Some(body) {
        return Ok(Reply::empty(201)); // the same list again: a retry after a lost answer
    }
    if let Err((status, msg)) =
        crate::keycheck::in_force::check_next(&config, &parsed.id, current.as_deref(), gen, body)
    {
        return Ok(Reply::text(status, msg));
    }
    r.put_access_list(gen, body).map(|()| Reply::empty(201))
}
