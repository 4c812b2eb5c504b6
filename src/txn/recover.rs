//! Recovery of interrupted transactions, run under the lock at the start of every write command
//! (`lock`: the one way a write command starts). It works from the repository's state alone: no
//! local file is consulted.
//!
//! - commit record present: the commit was decided; roll it forward (`finish`). These go first:
//!   a decided commit owns the next generation. A record that cannot be read is not obeyed: the
//!   repository removes the transaction's records and keeps what it stored (`repo::lost_decision`).
//! - the current manifest is the transaction's own commit (its record was lost after the commit
//!   point): decide it again keeping everything it stored; never discard it.
//! - checkpoint record present: commit the archive it describes as `NAME.part`; everything the
//!   transaction uploaded after that checkpoint is deleted by the same commit (it keeps only what
//!   the record names).
//! - otherwise: discard everything the transaction uploaded.
//!
//! Nothing a write key could plant is trusted (docs/SECURITY.md). A checkpoint is promoted only to
//! a name ending in `.part`, and never over an existing archive: if `NAME.part` exists, the
//! checkpoint becomes `NAME.part.2` (`.3`, ...), except that `create` may replace the `NAME.part`
//! of its own transaction's earlier run (`own`). A checkpoint that cannot be opened falls back
//! to the transaction's earlier checkpoints; if none opens, it is reported and left alone (the
//! transaction stays pending: `archiver recover --discard-damaged` with a delete key removes it).
//!
//! Partial uploads (objects a killed writer was in the middle of storing) are removed first.

use super::commit::{request, Objects};
use super::Txn;
use super::PART;
use crate::access::Perm;
use crate::crypto::Keys;
use crate::manifest::{sealed, Checkpoint, Listed, Manifest};
use crate::progress::{Event, Progress};
use crate::repo::{LockGuard, Pending};
use crate::session::Session;
use anyhow::{Context, Result};

/// The repository's write lock, held until this is dropped, with recovery done.
pub struct Writing {
    _lock: Box<dyn LockGuard>,
    /// What recovery did.
    pub recovered: Recovered,
}

impl Writing {
    /// Whether the lock is still ours (`LockGuard::still_held`): a run stopped longer than a
    /// lease's TTL finds another client holding it, and must then leave everything to it.
    pub fn still_held(&self) -> bool {
        self._lock.still_held()
    }
}

/// Why a run that lost its lock stopped (see `Writing::still_held`).
pub const LOCK_LOST: &str = "this run lost the repository's lock (it was stopped longer than the lock's TTL, ARCHIVER_LOCK_TTL, and another client took the lock over): what it stored is that client's to finish or discard, and nothing more was stored";

/// Takes the repository's write lock for `command` (named to whoever finds it taken) and
/// recovers every interrupted transaction: the preamble of every write command. Hold the result
/// for as long as the command writes.
pub fn lock(session: &Session, command: &str, progress: Progress, how: How) -> Result<Writing> {
    let lock = wait_for_lock(session, command, progress)?;
    if let Some(notice) = lock.notice() {
        progress(Event::Notice(notice));
    }
    let recovered = recover_how(session, progress, how)?;
    Ok(Writing { _lock: lock, recovered })
}

/// Takes the lock; while another archiver holds it, tries again every second for up to
/// `--lock-wait` (saying once whom it waits for), then fails with the holder's line.
fn wait_for_lock(
    session: &Session,
    command: &str,
    progress: Progress,
) -> Result<Box<dyn crate::repo::LockGuard>> {
    let until = session.settings.lock_wait.map(|w| std::time::Instant::now() + w);
    let mut said = false;
    loop {
        match session.repo.lock(&crate::process::owner(command)) {
            Err(e) if e.downcast_ref::<crate::repo::lock::Locked>().is_some() => {
                let Some(until) = until.filter(|&u| std::time::Instant::now() < u) else {
                    return match until {
                        Some(_) => Err(e.context("gave up waiting for the lock (--lock-wait)")),
                        None => Err(e),
                    };
                };
                if !said {
                    progress(Event::Notice(format!("waiting for the lock: {e}")));
                    said = true;
                }
                let left = until.saturating_duration_since(std::time::Instant::now());
                std::thread::sleep(left.min(std::time::Duration::from_secs(1)));
            }
            r => return r,
        }
    }
}

/// What one recovery did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Interrupted transactions found.
    pub found: usize,
    /// The checkpoints it committed.
    pub promoted: Vec<Promoted>,
}

/// A checkpoint recovery committed: its transaction and the archive name it got.
#[derive(Debug, Clone)]
pub struct Promoted {
    pub txn: String,
    pub name: String,
    /// It replaced an archive of that name (`How::own`), whose space the caller reclaims
    /// (`reclaim::delete_locked`; recovery does not reclaim). False when history is kept.
    pub replaced: bool,
}

/// How recovery runs: which history it keeps, whose `NAME.part` it may replace, and whether
/// it discards transactions whose checkpoints cannot be read.
#[derive(Default, Clone, Copy)]
pub struct How<'a> {
    /// Keep the manifest generations its commits supersede (always without the delete key).
    pub keep_history: bool,
    /// A transaction of this very process (`create` ending at its checkpoint): its checkpoint may
    /// replace the `NAME.part` an earlier run left.
    pub own: Option<&'a str>,
    /// Discard pending transactions whose checkpoints cannot be read (needs the delete key).
    pub discard_damaged: bool,
    /// The archive the caller creates: a write key (format 2), which cannot read the name in a
    /// checkpoint, names that archive's checkpoints by it (their tags match).
    pub name: Option<&'a str>,
}

/// Recovers every interrupted transaction; the caller holds the write lock (see `lock`).
pub fn recover_how(session: &Session, progress: Progress, how: How) -> Result<Recovered> {
    let how = How { keep_history: how.keep_history || !session.can(Perm::Delete), ..how };
    // Under the lock no upload of ours is under way: partial uploads belong to dead writers.
    session.repo.clean_partial().context("cannot remove partial uploads")?;
    let mut pending = session.repo.pending().context("cannot list pending transactions")?;
    if !pending.is_empty() {
        session.require(&[Perm::Write], "finish or discard the interrupted write it found")?;
    }
    if how.discard_damaged {
        session.require(&[Perm::Delete], "discard a damaged checkpoint")?;
    }
    // Decided commits first: each owns the generation it names.
    pending.sort_by_key(|p| !p.committing);
    let (found, mut promoted) = (pending.len(), Vec::new());
    for p in pending {
        let what = intent(session, &p);
        if p.committing {
            session
                .repo
                .finish(&p.txn)
                .with_context(|| format!("cannot finish interrupted transaction {}", p.txn))?;
            progress(Event::Notice(match visible(session, &p) {
                Some(_) => format!("recovered: finished the commit of an interrupted `{what}`"),
                None => format!(
                    "the commit record of an interrupted `{what}` (transaction {}) cannot be read, so its commit could not be finished; what it stored is kept: `archiver fsck` lists its archive again if all of it was stored",
                    p.txn
                ),
            }));
        } else if let Some((gen, manifest)) = visible(session, &p) {
            redecide(session, &p, gen, manifest)
                .with_context(|| format!("cannot finish interrupted transaction {}", p.txn))?;
            progress(Event::Notice(format!(
                "recovered: finished the commit of an interrupted `{what}` (generation {gen}), whose commit record was lost after its commit became visible; everything it stored is kept"
            )));
        } else if p.checkpoint.is_some() {
            match open_checkpoint(session, &p) {
                Ok(ck) => promoted.push(promote(session, &p.txn, ck, &what, how, progress)?),
                Err(e) if how.discard_damaged => {
                    session
                        .repo
                        .abort(&p.txn)
                        .with_context(|| format!("cannot discard interrupted transaction {}", p.txn))?;
                    progress(Event::Notice(format!(
                        "discarded transaction {} whose checkpoint cannot be read ({e:#})",
                        p.txn
                    )));
                }
                Err(e) => progress(Event::Notice(format!(
                    "left transaction {} alone: its checkpoint cannot be read ({e:#}); it was damaged or not written with this key file. `archiver recover --discard-damaged` with a delete key removes it",
                    p.txn
                ))),
            }
        } else {
            session
                .repo
                .abort(&p.txn)
                .with_context(|| format!("cannot discard interrupted transaction {}", p.txn))?;
            progress(Event::Notice(format!(
                "recovered: discarded an interrupted `{what}`; none of it had been committed"
            )));
        }
    }
    Ok(Recovered { found, promoted })
}

impl Txn {
    /// Ends this process's run at its last checkpoint (a stop request, or a failure after a
    /// checkpoint): recovery commits the checkpoint now, as `NAME.part` (replacing the `NAME.part`
    /// of an earlier run: this one is ours, and newer). Returns what it became. Recovery runs
    /// without notices: what became of the checkpoint is for the caller to say, once.
    pub fn end_at_checkpoint(self, session: &Session, name: &str) -> Result<Promoted> {
        let own = self.id.clone();
        self.suspend();
        let how = How { own: Some(&own), name: Some(name), ..Default::default() };
        let recovered = recover_how(session, &|_| {}, how)?;
        let promoted = recovered.promoted.into_iter().find(|p| p.txn == own);
        promoted.ok_or_else(|| anyhow::anyhow!("the checkpoint was not committed"))
    }
}

/// What the interrupted transaction `p` was doing (`create NAME`), from its intent record.
fn intent(session: &Session, p: &Pending) -> String {
    p.intent
        .as_ref()
        .and_then(|i| session.keys.open_reader(&super::intent_ad(&p.txn), i).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|| "write".to_string())
}

/// For readers, which take no lock and never recover: each interrupted run whose checkpoint
/// recovery would commit now, as (what it was doing, the name it would get). Best effort: a
/// repository that cannot say, or a checkpoint that cannot be read, gives nothing.
pub fn pending_parts(session: &Session) -> Vec<(String, String)> {
    let (Ok(pending), Ok((mut m, _))) = (session.repo.pending(), session.head()) else { return Vec::new() };
    let mut out = Vec::new();
    for p in pending.iter().filter(|p| !p.committing && p.checkpoint.is_some()) {
        let Ok((ck, _)) = open_checkpoint(session, p) else { continue };
        let (listed, name, _) = promoted_as(&m, &session.keys, ck.archive, &p.txn, How::default());
        m.put(listed, &session.keys);
        out.push((intent(session, p), name.unwrap_or_else(|| UNNAMED.into())));
    }
    out
}

/// The current manifest's generation and sealed bytes, if `p` committed it: its commit point
/// was passed. A current manifest that cannot be opened says nothing.
fn visible(session: &Session, p: &Pending) -> Option<(u64, Vec<u8>)> {
    let (gen, sealed) = session.repo.head().ok()?;
    let sealed = sealed?;
    let m = Manifest::open(&session.keys, gen, &sealed).ok()?;
    (m.txn == p.txn).then_some((gen, sealed))
}

/// Decides again the visible commit of `p` (generation `gen`, its manifest `manifest`) whose
/// record was lost, keeping everything it stored (`repo::lost_decision`).
fn redecide(session: &Session, p: &Pending, gen: u64, manifest: Vec<u8>) -> Result<()> {
    let own = |names: Vec<String>, of: fn(&str, &str) -> bool| {
        names.into_iter().filter(|n| of(n, &p.txn)).collect()
    };
    let keep = Objects {
        packs: own(session.repo.list_packs()?, crate::layout::is_pack_of),
        indexes: own(session.repo.list_indexes()?, crate::layout::is_segment_of),
    };
    session.repo.commit(&p.txn, &request(gen, manifest, keep, Objects::default(), true))?;
    Ok(())
}

/// The newest checkpoint of `p` that opens, falling back to older ones, with a line saying so
/// when it fell back; the newest one's error if none opens.
fn open_checkpoint(session: &Session, p: &Pending) -> Result<(Checkpoint, Option<String>)> {
    let newest = p.checkpoint.as_deref().unwrap_or_default();
    let first = match Checkpoint::open(&session.keys, &p.txn, newest) {
        Ok(ck) => return Ok((ck, None)),
        Err(e) => e,
    };
    for seq in p.checkpoint_seqs.iter().rev().skip(1) {
        if let Ok(ck) = session
            .repo
            .checkpoint_record(&p.txn, *seq)
            .map_err(anyhow::Error::new)
            .and_then(|rec| Checkpoint::open(&session.keys, &p.txn, &rec))
        {
            let newest = p.checkpoint_seqs.last().map_or("?".into(), |n| n.to_string());
            return Ok((
                ck,
                Some(format!(
                    "its newest checkpoint record ({newest}) cannot be read ({first:#}), so its checkpoint {seq} was used"
                )),
            ));
        }
    }
    Err(first)
}

/// How a write key (format 2) names a checkpoint whose name it cannot read.
const UNNAMED: &str = "a .part archive (its name is sealed: this write-only key cannot read it)";

/// The base name a checkpoint of archive `name` is promoted under: `name` without `.part`, or
/// `checkpoint-TXN` when that would not make valid `.part.N` names.
fn base_of(name: &str, txn: &str) -> String {
    let base = name.strip_suffix(PART).unwrap_or(name);
    match crate::archive::validate_name(&format!("{base}.part.99")) {
        Ok(()) if !base.is_empty() => base.to_string(),
        _ => format!("checkpoint-{}", &txn[..txn.len().min(12)]),
    }
}

/// What checkpoint archive `archive` of transaction `txn` becomes in `m`: `BASE.part`, or the
/// first free `BASE.part.N` (`how.own == txn`: `BASE.part` may be taken over, the caller's own
/// earlier run's), with its name when these keys can say it. The bool: it replaces an archive.
fn promoted_as(
    m: &Manifest,
    keys: &Keys,
    archive: Listed,
    txn: &str,
    how: How,
) -> (Listed, Option<String>, bool) {
    let mut archive = archive;
    if let Listed::Open(a) = &mut archive {
        a.name = format!("{}{PART}", base_of(&a.name, txn));
    }
    let (tag, _) = archive.tag(keys);
    let first_taken = m.taken(keys, (tag, 1));
    let part = match !first_taken || how.own == Some(txn) {
        true => 1,
        false => (2u64..).find(|n| !m.taken(keys, (tag, *n))).expect("a free number"),
    };
    let replaced = part == 1 && first_taken;
    let name = match &mut archive {
        Listed::Open(a) => {
            a.name = sealed::join(sealed::split(&a.name).0, part);
            Some(a.name.clone())
        }
        Listed::Hidden(h) => {
            h.part = part;
            how.name.filter(|n| sealed::base_tag(keys, n) == tag).map(|n| sealed::join(n, part))
        }
    };
    (archive, name, replaced)
}

fn promote(
    session: &Session,
    txn: &str,
    (ck, fell_back): (Checkpoint, Option<String>),
    what: &str,
    how: How,
    progress: Progress,
) -> Result<Promoted> {
    crate::failpoint::hit("recover-promoting");
    let (mut m, before) = session.head()?;
    let keys = session.keys.for_transaction();
    let files = match &ck.archive {
        Listed::Open(a) => format!(" ({} files)", a.stats.files),
        Listed::Hidden(_) => String::new(),
    };
    let (archive, name, replaced) = promoted_as(&m, &keys, ck.archive, txn, how);
    let shown = name.as_ref().map_or(UNNAMED.to_string(), |n| format!("{n:?}"));
    m.gen += 1;
    m.txn = txn.to_string();
    m.put(archive, &keys);
    m.indexes.extend(ck.indexes.iter().cloned());
    let keep = Objects { packs: ck.packs.clone(), indexes: ck.indexes.clone() };
    let req = request(m.gen, m.seal(&keys), keep, Objects::default(), how.keep_history);
    session.repo.commit(txn, &req).with_context(|| format!("cannot commit the checkpoint of `{what}`"))?;
    catch_up_cache(session, &before);
    progress(Event::Notice(match fell_back {
        None => format!(
            "recovered: committed the last checkpoint of an interrupted `{what}` as {shown}{files}; discarded what was uploaded after it"
        ),
        Some(why) => format!(
            "recovered: committed an earlier checkpoint of an interrupted `{what}` (transaction {txn}) as {shown}{files}: {why}; discarded what was uploaded after it"
        ),
    }));
    if replaced && how.keep_history {
        progress(Event::Notice(format!(
            "the replaced {shown} stays in the previous manifest generation (kept history); its space is reclaimed by `archiver fsck --prune` with a delete key"
        )));
    }
    let name = name.unwrap_or_else(|| UNNAMED.to_string());
    Ok(Promoted { txn: txn.to_string(), name, replaced: replaced && !how.keep_history })
}

/// After recovery's own commit, brings the local cache along if it mirrored the state just before
/// that commit, so that the next command does not find it behind as if another client had
/// committed. Best effort: a cache that cannot be opened or synced now is brought up to date
/// (and reported) by the next command that uses it.
fn catch_up_cache(session: &Session, before: &str) {
    let cache = session.cache();
    let current = cache.ok().and_then(|(c, _)| c.synced().ok().flatten()).is_some_and(|s| s == before);
    if current {
        if let Ok(head) = session.head() {
            let _ = session.mirror_cache(&head);
        }
    }
}
