//! Manifest history: the generations a repository keeps, and rolling back to one of them.
//!
//! A commit signed without the delete permission keeps the manifests it supersedes, so a stolen
//! write-only key can add archives, or commit a manifest that drops them, but cannot make stored
//! data unreachable. `generations` shows what each kept generation holds; `rollback` commits an
//! earlier generation's archives and index segments as the next generation. It deletes nothing
//! and keeps history itself, so it can be undone the same way. Every object a kept generation
//! names is still stored: only a commit signed with the delete key deletes, and such a commit
//! also drops the older generations.

use crate::access::Perm;
use crate::backend::ErrorKind;
use crate::index::Segment;
use crate::manifest::Manifest;
use crate::progress::{Event, Progress};
use crate::session::Session;
use crate::txn::Txn;
use anyhow::{bail, Context, Result};

/// One kept generation: its number and archive names (sorted), or why it cannot be opened.
pub struct Generation {
    pub gen: u64,
    pub archives: Vec<String>,
    /// Set when its manifest cannot be read or opened (damaged, or committed by a hostile
    /// writer): it is listed, so an earlier generation can be rolled back to.
    pub damaged: Option<String>,
}

/// Every kept generation, oldest first (the last is the current one). A generation that cannot
/// be opened is listed as damaged, not an error: that is when this list is needed most.
pub fn generations(session: &Session) -> Result<Vec<Generation>> {
    let gens = session.repo.generations().context("cannot list the manifest generations")?;
    Ok(gens
        .into_iter()
        .map(|gen| match read(session, gen) {
            Ok(m) => {
                // A write key (format 2) sees tags, not names.
                let sealed =
                    m.hidden.iter().map(|h| format!("<sealed {}.{}>", hex::encode(&h.base_tag[..6]), h.part));
                let archives = m.archives.into_iter().map(|a| a.name).chain(sealed).collect();
                Generation { gen, archives, damaged: None }
            }
            Err(e) => Generation { gen, archives: Vec::new(), damaged: Some(format!("{e:#}")) },
        })
        .collect())
}

/// The newest generation whose manifest opens, below `below`.
pub fn newest_readable(session: &Session, below: u64) -> Option<u64> {
    let gens = session.repo.generations().ok()?;
    gens.into_iter().rev().filter(|g| *g < below).find(|g| read(session, *g).is_ok())
}

/// One line per generation, newest first: its archive count, and the archives it added and
/// removed against the generation before it.
pub fn describe(gens: &[Generation]) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, g) in gens.iter().enumerate().rev() {
        let current = if i + 1 == gens.len() { " (current)" } else { "" };
        if let Some(why) = &g.damaged {
            lines.push(format!("generation {}{current}: DAMAGED, cannot be opened ({why})", g.gen));
            continue;
        }
        let mut line = format!("generation {}{current}: {} archive(s)", g.gen, g.archives.len());
        if let Some(prev) = i.checked_sub(1).map(|p| &gens[p]).filter(|p| p.damaged.is_none()) {
            let (added, removed) =
                (missing(&g.archives, &prev.archives), missing(&prev.archives, &g.archives));
            if !added.is_empty() {
                line += &format!("; added {}", shown(&added));
            }
            if !removed.is_empty() {
                line += &format!("; removed {}", shown(&removed));
            }
        }
        lines.push(line);
    }
    lines
}

/// Commits generation `gen`'s archives and index segments as the next generation, keeping the
/// current one. Returns the new generation.
pub fn rollback(session: &Session, gen: u64, progress: Progress) -> Result<u64> {
    if !session.can(Perm::Delete) {
        session.require(&[Perm::Write], "roll back")?;
    }
    // Recovery must not drop the generations this rollback is about.
    let how = crate::txn::recover::How { keep_history: true, ..Default::default() };
    let _writing = crate::txn::lock(session, "rollback", progress, how)?;
    let (head_gen, _) = session.repo.head().context("cannot read the repository's manifest")?;
    if gen == head_gen {
        bail!("generation {gen} is already the current one: `archiver generations` lists the others");
    }
    let bytes = session.repo.manifest(gen).map_err(|e| match e.kind {
        ErrorKind::NotFound => anyhow::anyhow!(
            "generation {gen} is not kept in this repository: `archiver generations` lists those that are"
        ),
        _ => anyhow::Error::new(e).context(format!("cannot read the manifest of generation {gen}")),
    })?;
    let old = Manifest::open(&session.keys, gen, &bytes)?;
    // The current manifest may be the very thing that cannot be opened (a hostile writer's
    // commit): the new generation is built from the old one alone, so only its number matters.
    let base = match session.head() {
        Ok((m, _)) => m,
        Err(_) => Manifest { gen: head_gen, ..old.clone() },
    };
    // The cache must mirror the state being committed: the old generation's segments.
    let cache = session.mirror_cache(&(old.clone(), format!("{gen} {}", blake3::hash(&bytes).to_hex())))?;
    let mut txn = Txn::begin(session, base, cache, format!("rollback to generation {gen}").as_bytes())?;
    txn.keep_history = true;
    let count = old.len();
    let m = txn.commit(
        Segment::default(),
        move |m, _, _| {
            m.archives = old.archives;
            m.hidden = old.hidden;
            m.indexes = old.indexes;
        },
        Vec::new(),
        Vec::new(),
    )?;
    progress(Event::Notice(format!(
        "rolled back: generation {} holds the {count} archive(s) of generation {gen}; generation {} is kept until a commit with the delete key",
        m.gen, head_gen
    )));
    Ok(m.gen)
}

/// Archive names for one line, each escaped (a manifest may name anything).
fn shown(names: &[&str]) -> String {
    names.iter().map(|n| crate::query::escape_name(n)).collect::<Vec<_>>().join(", ")
}

/// The names in `these` (sorted) that `others` (sorted) lacks.
fn missing<'a>(these: &'a [String], others: &[String]) -> Vec<&'a str> {
    these.iter().filter(|a| others.binary_search(a).is_err()).map(String::as_str).collect()
}

fn read(session: &Session, gen: u64) -> Result<Manifest> {
    let bytes = session
        .repo
        .manifest(gen)
        .with_context(|| format!("cannot read the manifest of generation {gen}"))?;
    Manifest::open(&session.keys, gen, &bytes)
}
