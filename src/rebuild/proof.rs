//! Proving, from what a repository stores, that a key file is this repository's, when the config
//! that would say so is lost or damaged. Each secret is checked where the stored data can check
//! it:
//!
//! - `enc-key`: something sealed must open (AEAD) with it: the current manifest, else a kept
//!   generation, a commit or checkpoint record, an index segment or a pack header. Nothing opens:
//!   refused (a foreign key, or nothing stored to prove it by).
//! - `id-key`: a stored block that opens must hash to its id under it. A block that opens but
//!   hashes to another id: refused (the key file is damaged). No block readable: not proven.
//! - `chunk-seed`: a stored file of several blocks must be cut where it was cut: the chunker keyed
//!   by this key file (any `Keying`), given the file's bytes from its first block on, must end
//!   the first block where it ends; the keying that does for every file that fits one is the
//!   repository's (two keyings share a table and can agree on a file; the files tried narrow
//!   them down, then the newest left wins). Cut elsewhere by all, every time: refused. No such
//!   file: not proven.
//!
//! Bounded work: every pack header is read once (one small range read each, as fsck does when it
//! rebuilds the index), then at most `MAX_BLOCKS` blocks and `MAX_STREAMS` files.

use crate::backend::Backend;
use crate::chunker::{Chunker, Keying, MAX};
use crate::crypto::BlockId;
use crate::layout;
use crate::manifest::{Checkpoint, Manifest};
use crate::pack::Entry;
use crate::repo::CommitRequest;
use crate::session::Session;
use anyhow::{bail, Result};
use std::collections::HashMap;

const MAX_SEGMENTS: usize = 32;
const MAX_BLOCKS: usize = 64;
const MAX_STREAMS: usize = 8;

/// What the stored data proved about the key file.
pub struct Proof {
    /// What opened with the enc-key, e.g. "the current manifest (generation 7)".
    pub enc: String,
    /// A stored block hashed to its id under the id-key.
    pub id_key: bool,
    /// A stored file was cut where the chunker keyed this way cuts it with the key file.
    pub chunking: Option<Keying>,
}

impl Proof {
    pub fn describe(&self, keyfile: &std::path::Path) -> String {
        let mut what = vec![format!("{} opens with it", self.enc)];
        what.push(match self.id_key {
            true => "stored blocks hash to their ids under its id-key".into(),
            false => "its id-key is not checked (no stored block could be read)".into(),
        });
        what.push(match self.chunking {
            Some(k) => format!("its chunk-seed cuts a stored file where it was cut (chunker {})", k.name()),
            None => "its chunk-seed is not checked (no stored file of several blocks could be read)".into(),
        });
        format!("key file {} belongs to this repository: {}", keyfile.display(), what.join("; "))
    }
}

/// Checks `session`'s key file (not yet bound to any config) against what its repository stores;
/// `backend` is the repository's directory, for commit records. Refuses in one line when nothing
/// opens or when a secret is proven wrong.
pub fn prove(session: &Session, backend: &dyn Backend) -> Result<Proof> {
    let keys = &session.keys;
    let repo = &session.repo;
    let keyfile = session.settings.keyfile.display();
    let stored = crate::fsck::packs::list(session)?;
    let headers = crate::fsck::packs::rebuild_index(session, &stored)?.0.packs;
    let (manifest, mut tried) = opened_manifest(session)?;
    let mut enc = manifest.as_ref().map(|(m, what)| format!("{what} (generation {})", m.gen));
    let pending = repo.pending()?;
    for p in &pending {
        if enc.is_some() {
            break;
        }
        tried.push(format!("transaction {}'s records", p.txn));
        if p.checkpoint.as_ref().is_some_and(|ck| Checkpoint::open(keys, &p.txn, ck).is_ok()) {
            enc = Some(format!("the checkpoint record of transaction {}", p.txn));
        }
        let commit = backend.get(&layout::commit(&p.txn)).ok();
        let req = commit.and_then(|c| CommitRequest::decode(&c).ok());
        if req.is_some_and(|r| Manifest::open(keys, r.gen, &r.manifest).is_ok()) {
            enc = Some(format!("the commit record of transaction {}", p.txn));
        }
    }
    if enc.is_none() {
        let segments = repo.list_indexes()?;
        for name in segments.iter().take(MAX_SEGMENTS) {
            let opened = repo
                .get_index(name)
                .ok()
                .is_some_and(|b| crate::index::Segment::open(keys, name, &b).is_ok());
            if opened {
                enc = Some(format!("index segment {name}"));
                break;
            }
        }
        if !segments.is_empty() {
            tried.push(format!("{} index segment(s)", segments.len().min(MAX_SEGMENTS)));
        }
    }
    if enc.is_none() {
        enc = headers.first().map(|(p, _)| format!("the header of pack {p}"));
        if !stored.is_empty() {
            tried.push(format!("the headers of {} pack(s)", stored.len()));
        }
    }
    let Some(enc) = enc else {
        if tried.is_empty() {
            bail!(
                "repository {} holds no manifest, index segment, pack or transaction record that could prove key file {keyfile} belongs to it, so no config was written; if it is empty, `archiver keygen` makes a new repository",
                session.settings.repo
            );
        }
        bail!(
            "nothing stored in repository {} opens with key file {keyfile} (tried {}): it is not this repository's key file, so no config was written",
            session.settings.repo,
            tried.join(", ")
        );
    };
    let id_key = id_key_names_blocks(session, &headers)?;
    let chunking = match &manifest {
        Some((m, _)) => chunk_seed_cuts(session, m, &headers)?,
        None => None,
    };
    Ok(Proof { enc, id_key, chunking })
}

/// A manifest that opened, and what it is ("the current manifest").
type Opened = Option<(Manifest, String)>;

/// The newest stored manifest that opens, with what it is, and what was tried.
fn opened_manifest(session: &Session) -> Result<(Opened, Vec<String>)> {
    let mut gens = session.repo.generations()?;
    gens.reverse();
    let mut tried = Vec::new();
    for (i, gen) in gens.iter().enumerate() {
        let what = if i == 0 { "the current manifest" } else { "a kept earlier manifest" };
        if let Ok(m) = session
            .repo
            .manifest(*gen)
            .map_err(anyhow::Error::new)
            .and_then(|b| Manifest::open(&session.keys, *gen, &b))
        {
            return Ok((Some((m, what.to_string())), tried));
        }
        tried.push(format!("manifest generation {gen}"));
    }
    Ok((None, tried))
}

/// Whether a stored block hashes to its id under the key file's id-key (false: none could be
/// read); refuses when a block opens but hashes to another id.
fn id_key_names_blocks(session: &Session, headers: &[(String, Vec<Entry>)]) -> Result<bool> {
    let keys = &session.keys;
    let blocks = headers.iter().flat_map(|(p, es)| es.iter().map(move |e| (p, e)));
    for (pack, e) in blocks.take(MAX_BLOCKS) {
        let Ok(sealed) = session.repo.read_pack(pack, e.offset, e.len as u64) else { continue };
        if keys.open_block(&e.id, &sealed, e.plain_len as usize).is_ok() {
            return Ok(true);
        }
        if keys.open_reader(&e.id, &sealed).is_ok() {
            bail!(
                "key file {} is damaged: block {} of pack {pack} opens with its enc-key but does not hash to its id under its id-key; no config was written (use an intact copy of the key file)",
                session.settings.keyfile.display(),
                hex::encode(&e.id[..8])
            );
        }
    }
    Ok(false)
}

/// How the chunker keyed with the key file cuts a stored file where it was cut (None: no file of
/// several blocks could be read); refuses when every keying cuts every file tried elsewhere.
fn chunk_seed_cuts(
    session: &Session,
    m: &Manifest,
    headers: &[(String, Vec<Entry>)],
) -> Result<Option<Keying>> {
    let at: HashMap<BlockId, (&str, &Entry)> =
        headers.iter().flat_map(|(p, es)| es.iter().map(move |e| (e.id, (p.as_str(), e)))).collect();
    let fetch = |id: &BlockId| -> Result<Vec<u8>> {
        let Some((pack, e)) = at.get(id) else { bail!("block not stored") };
        let sealed = session.repo.read_pack(pack, e.offset, e.len as u64)?;
        session.keys.open_block(id, &sealed, e.plain_len as usize)
    };
    let chunkers: Vec<(Keying, Chunker)> =
        Keying::ALL.into_iter().map(|k| (k, Chunker::keyed(&session.keys, k))).collect();
    // The keyings that cut every file so far that one of them cuts (in `Keying::ALL`'s order).
    let mut left: Vec<&(Keying, Chunker)> = chunkers.iter().collect();
    let (mut tried, mut wrong) = (0, 0);
    'archives: for a in m.archives.iter().filter(|a| !a.partial) {
        let Ok((_, nodes)) = crate::reader::read_with(a, fetch) else { continue };
        // A first block of MAX bytes is cut there whatever the seed: it proves nothing.
        for n in nodes.iter().filter(|n| n.blocks.len() >= 2 && (n.blocks[0].1 as usize) < MAX) {
            if tried == MAX_STREAMS {
                break 'archives;
            }
            let mut data = Vec::new();
            let complete = n.blocks.iter().try_for_each(|(id, _)| {
                if data.len() < MAX {
                    data.extend_from_slice(&fetch(id)?);
                }
                anyhow::Ok(())
            });
            if complete.is_err() {
                continue;
            }
            tried += 1;
            let fit: Vec<_> =
                left.iter().copied().filter(|(_, c)| c.cut(&data) == n.blocks[0].1 as usize).collect();
            if fit.is_empty() {
                wrong += 1;
                continue;
            }
            left = fit;
            if left.len() == 1 {
                break 'archives;
            }
        }
    }
    if tried > wrong {
        return Ok(Some(left[0].0));
    }
    if wrong > 0 {
        bail!(
            "key file {} is damaged: its chunk-seed cuts stored files elsewhere than they were cut ({wrong} file(s) tried); no config was written (use an intact copy of the key file)",
            session.settings.keyfile.display()
        );
    }
    Ok(None)
}
