//! Opening a repository for use: resolves the repository and key, checks the repository's format
//! and that every secret of the key file belongs to it (`keycheck`), and brings the local cache
//! (one per repository and key id) in line with the repository's current generation (rebuilding
//! it from index segments when it is missing, stale or foreign).

use crate::access::{AccessKeys, Perm};
use crate::cache::Cache;
use crate::crypto::Keys;
use crate::index::Segment;
use crate::keycheck;
use crate::manifest::Manifest;
use crate::progress::{Event, Progress};
use crate::repo::{self, Repository};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// What bringing the cache up to date took.
#[derive(Debug, Default)]
pub struct CacheSync {
    pub added: usize,
    pub blocks: usize,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub repo: String,
    pub keyfile: PathBuf,
    pub cachedir: PathBuf,
    /// A PEM certificate to trust (alone) for `https://` repositories, e.g. a self-signed one.
    pub ca_cert: Option<PathBuf>,
    /// How long a write command waits for another writer's lock before giving up
    /// (`--lock-wait`; none: it fails at once, in one line naming the holder).
    pub lock_wait: Option<std::time::Duration>,
    /// Bandwidth limits (`--maxbw-rate-up`, `--maxbw-rate-down`), for every kind of repository.
    pub rates: repo::throttled::Rates,
    /// The passphrase of a passphrase-protected key file (the binary asks for it).
    pub passphrase: Option<crate::keyseal::Passphrase>,
}

impl Settings {
    /// How to reach the repository with the access keys `access`.
    pub fn connect(&self, access: &AccessKeys) -> repo::Connect {
        repo::Connect { access: access.clone(), ca_cert: self.ca_cert.clone() }
    }
}

pub struct Session {
    pub repo: Arc<dyn Repository>,
    pub keys: Arc<Keys>,
    /// The key file's access keys: what this client may do (`require`, `can`).
    pub access: AccessKeys,
    pub repo_id: String,
    /// Names the key file's id-key and chunk-seed (`keycheck::key_id`): the local cache is kept
    /// per repository and key id, so a full key and its restricted keys share one.
    pub key_id: String,
    /// How this repository's chunker is keyed (its config's `chunker` line).
    pub chunking: crate::chunker::Keying,
    pub settings: Settings,
    /// When the key file's write key was revoked (`keymgmt --revoke-write`), if it was: the key
    /// file then neither writes nor deletes (`require`), and a server refuses its writes too.
    pub write_retired: Option<u64>,
}

/// Kept here for callers that make ids (`process::random_id`).
pub use crate::process::random_id;

/// Kept here for callers that build a repository config (keygen, tests).
pub use crate::keycheck::{config_bytes, FORMAT};

impl Session {
    /// Opens the repository `settings` names with its key file, after checking every secret the
    /// key file holds against the repository's config (`keycheck`): nothing is read or written
    /// with a key file that does not belong.
    pub fn open(settings: &Settings) -> Result<Session> {
        let kf = crate::keyfile::read_with(&settings.keyfile, settings.passphrase.as_ref())?;
        let mut repo = repo::open(&settings.repo, &settings.connect(&kf.access))?;
        if settings.rates.any() {
            repo = std::sync::Arc::new(repo::throttled::Throttled::new(repo, settings.rates));
        }
        let config = repo
            .read_config()
            .with_context(|| format!("cannot read repository {}", settings.repo))?
            .ok_or_else(|| no_config(&settings.repo))?;
        let parsed = keycheck::parse(&config, &settings.repo).map_err(|e| {
            // Not even ours, in a directory holding repository data: damaged beyond recognition.
            match keycheck::looks_ours(&config) || !holds_data(&settings.repo) {
                true => e,
                false => anyhow::anyhow!(
                    "repository {} has a damaged config file (nothing in it is an archiver config's), though it holds archived data; {}",
                    settings.repo,
                    keycheck::rebuild_advice(&settings.repo)
                ),
            }
        })?;
        let list = repo
            .access_list()
            .with_context(|| format!("cannot read the access list of repository {}", settings.repo))?;
        let write_retired =
            keycheck::check(&kf, &parsed, &config, list.as_deref(), &settings.keyfile, &settings.repo)?;
        let key_id = keycheck::key_id(&kf.keys);
        let (keys, access) = (Arc::new(kf.keys), kf.access);
        let chunking = parsed.chunking;
        Ok(Session {
            repo,
            keys,
            access,
            repo_id: parsed.id,
            key_id,
            chunking,
            settings: settings.clone(),
            write_retired,
        })
    }

    /// Opens (creating if needed) the local cache of this repository and key id, not synced.
    pub fn cache(&self) -> Result<(Cache, Option<String>)> {
        Cache::open(&self.settings.cachedir, &self.repo_id, &self.key_id)
    }

    /// The chunker this repository cuts files with.
    pub fn chunker(&self) -> crate::chunker::Chunker {
        crate::chunker::Chunker::keyed(&self.keys, self.chunking)
    }

    /// Refuses, in one line, a command this key file has no permission for (`needs` all held).
    pub fn require(&self, needs: &[Perm], what: &str) -> Result<()> {
        if let Some(missing) = needs.iter().find(|p| !self.access.has(**p)) {
            let wanted: Vec<&str> = needs.iter().map(|p| p.name()).collect();
            bail!(
                "key file {} cannot {what}: that needs the {} key{}, and it holds {} (the {} key is missing)",
                self.settings.keyfile.display(),
                wanted.join(" and "),
                if needs.len() > 1 { "s" } else { "" },
                self.access.describe(),
                missing.name()
            );
        }
        if needs.contains(&Perm::Read) {
            self.require_data(what)?;
        }
        match self.write_retired {
            Some(t) if needs.contains(&Perm::Write) || needs.contains(&Perm::Delete) => bail!(
                "key file {} cannot {what}: {}",
                self.settings.keyfile.display(),
                crate::access::retired_message(t).replacen("this write key", "its write key", 1)
            ),
            _ => Ok(()),
        }
    }

    /// Refuses, in one line, to `what` with a key file that cannot open archive data (a format 2
    /// write key, even one whose access lines were edited to claim reading).
    pub fn require_data(&self, what: &str) -> Result<()> {
        if !self.keys.reads_data() {
            bail!(
                "key file {} cannot {what}: it holds no data-secret, so it cannot open archives (a write-only key made by `archiver keymgmt -w`; use a key file with the read permission)",
                self.settings.keyfile.display()
            );
        }
        Ok(())
    }

    pub fn can(&self, p: Perm) -> bool {
        self.access.has(p)
    }

    /// The committed manifest and a token naming this exact state (generation and content hash).
    pub fn head(&self) -> Result<(Manifest, String)> {
        let (gen, sealed) = self.repo.head().context("cannot read the repository's manifest")?;
        match sealed {
            None => {
                self.manifest_not_lost()?;
                Ok((Manifest::default(), "0".to_string()))
            }
            Some(bytes) => {
                let m = Manifest::open(&self.keys, gen, &bytes).map_err(|e| {
                    anyhow::anyhow!("{e:#}; `archiver generations` lists the kept generations, and `archiver rollback GEN` makes a readable one current (when none is kept, `archiver fsck` with a key that may write rebuilds it from the packs)")
                })?;
                Ok((m, format!("{gen} {}", blake3::hash(&bytes).to_hex())))
            }
        }
    }

    /// Refuses a repository at generation 0 (no manifest) that holds index segments of committed
    /// transactions (not of pending ones): its manifest was lost, and it would otherwise look
    /// empty (`list` printing nothing, `create` committing a manifest without the archives).
    fn manifest_not_lost(&self) -> Result<()> {
        let indexes = self.repo.list_indexes().context("cannot list the repository's index segments")?;
        if indexes.is_empty() {
            return Ok(());
        }
        let pending: HashSet<String> = self.repo.pending()?.into_iter().map(|p| p.txn).collect();
        let committed =
            indexes.iter().filter(|i| i.rsplit_once('-').is_none_or(|(t, _)| !pending.contains(t)));
        let n = committed.count();
        // A first commit may have become visible meanwhile: then nothing was lost.
        if n == 0 || self.repo.head().context("cannot read the repository's manifest")?.0 > 0 {
            return Ok(());
        }
        bail!(
            "repository {} has no manifest, though it holds {n} index segment(s) of committed transactions: its manifest was lost; `archiver fsck` with a key that may write lists its archives again from the packs",
            self.settings.repo
        )
    }

    /// Opens the cache and makes sure it mirrors `head`: segments the repository dropped are
    /// forgotten, segments it gained are read, and the cache records the new state. A fresh or
    /// recreated cache is loaded whole. Either way only index segments are read (about 75 bytes
    /// per stored block), so this is done automatically and reported in one line.
    pub fn open_cache(&self, head: &(Manifest, String), progress: Progress) -> Result<Cache> {
        let (cache, note) = self.cache()?;
        let synced = cache.synced()?;
        if synced.as_deref() == Some(head.1.as_str()) && marks_applied(&cache, &head.0)? {
            return Ok(cache);
        }
        let sync = self.sync_cache(&cache, head)?;
        let why = match (note, &synced) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => Some(format!(
                "cache {} was behind the repository (commits it did not record: made with another cache or on another machine, finished by recovery after the run that made them was interrupted, or this is an older copy of the cache)",
                cache.path.display()
            )),
            // A new cache for this repository: nothing to say unless there was something to load.
            (None, None) => (sync.added > 0).then(|| format!("no cache at {}", cache.path.display())),
        };
        if let Some(why) = why {
            progress(Event::Notice(format!(
                "{why}; brought it up to repository generation {} from {} index segment(s) ({} blocks)",
                head.0.gen, sync.added, sync.blocks
            )));
        }
        Ok(cache)
    }

    /// Opens the cache made to mirror `state` (a manifest and its token) silently: for a commit
    /// that replaces the current manifest by another one (a rollback).
    pub fn mirror_cache(&self, state: &(Manifest, String)) -> Result<Cache> {
        let (cache, _) = self.cache()?;
        if cache.synced()?.as_deref() != Some(state.1.as_str()) || !marks_applied(&cache, &state.0)? {
            self.sync_cache(&cache, state)?;
        }
        Ok(cache)
    }

    /// Makes `cache` hold exactly the blocks of `head`'s index segments, less the copies its
    /// damage marks name. Marks that changed reload every segment (rare: fsck changes them), as
    /// does a load cut short (`cache::LOADING`). A cache holding no segment is loaded in id
    /// order (`cache::Loader`); one behind by some segments has just those added.
    fn sync_cache(&self, cache: &Cache, head: &(Manifest, String)) -> Result<CacheSync> {
        let want: HashSet<&str> = head.0.indexes.iter().map(String::as_str).collect();
        let (empty, todo): (bool, Vec<&String>) = cache.transaction(|cache| {
            let cut_short = cache.synced()?.as_deref() == Some(crate::cache::LOADING);
            if cut_short || !marks_applied(cache, &head.0)? {
                cache.clear_blocks()?;
                cache.set_marks(&head.0.damaged, &crate::damage::token(&head.0))?;
            }
            let have = cache.segments()?;
            let gone: Vec<String> = have.iter().filter(|n| !want.contains(n.as_str())).cloned().collect();
            cache.drop_segments(&gone)?;
            let have: HashSet<&str> = have.iter().map(String::as_str).collect();
            // Behind until the last batch below is in (never a manifest's token).
            cache.set_synced("syncing")?;
            Ok((have.is_empty(), head.0.indexes.iter().filter(|n| !have.contains(n.as_str())).collect()))
        })?;
        let read = |name: &str| {
            self.read_segment(name).map_err(|e| {
                e.context(format!(
                    "the local cache cannot be brought up to date because index segment {name} cannot be used: run `archiver fsck` to rebuild the index from the packs"
                ))
            })
        };
        let mut sync = CacheSync::default();
        if empty {
            let mut loader = cache.loader(cache.path.parent().map(|d| d.to_path_buf()))?;
            for name in &todo {
                loader.add(name, &read(name)?)?;
                sync.added += 1;
            }
            sync.blocks = loader.blocks as usize;
            loader.finish(&head.1)?;
            return Ok(sync);
        }
        // Committed every `cache::LOAD_BATCH` segments. The segments table says what is in, so a
        // sync cut short goes on later.
        for batch in todo.chunks(crate::cache::LOAD_BATCH) {
            cache.transaction(|cache| {
                for name in batch {
                    let seg = read(name)?;
                    for (pack, entries) in &seg.packs {
                        cache.add_pack(name, pack, entries)?;
                        sync.blocks += entries.len();
                    }
                    sync.added += 1;
                }
                Ok(())
            })?;
        }
        cache.set_synced(&head.1)?;
        Ok(sync)
    }

    pub fn read_segment(&self, name: &str) -> Result<Segment> {
        let bytes = self.repo.get_index(name).with_context(|| format!("cannot read index segment {name}"))?;
        Segment::open(&self.keys, name, &bytes)
    }
}

/// The error for a repository with no config: a directory holding repository data lost it
/// (`keycheck::rebuild_advice`); anything else is no repository.
fn no_config(repo: &str) -> anyhow::Error {
    if holds_data(repo) {
        return anyhow::anyhow!(
            "repository {repo} has no config file (it was deleted or lost), though it holds archived data; {}",
            keycheck::rebuild_advice(repo)
        );
    }
    anyhow::anyhow!(
        "no repository at {repo}: check --repo (or ARCHIVER_REPO), or run `archiver keygen` to create one"
    )
}

/// Whether `repo` is a local directory holding repository data (`keycheck::holds_repository_data`).
fn holds_data(repo: &str) -> bool {
    !repo.contains("://") && keycheck::holds_repository_data(std::path::Path::new(repo))
}

/// Whether `cache` applied the damage marks of `m` (a cache from before marks: if `m` has none).
fn marks_applied(cache: &Cache, m: &Manifest) -> Result<bool> {
    Ok(cache.marks_token()?.unwrap_or_else(|| "none".into()) == crate::damage::token(m))
}
