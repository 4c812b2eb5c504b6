//! `extract --to-stdout NAME PATH`: one stored file's content written to a stream (a pipe to
//! `psql`, `tar`, a checksum), fetched ahead in windows as a restore does, written in order.
//!
//! Invariants: only a regular file is written (a directory, a symlink or a missing path is one
//! error naming what is there instead); every block is authenticated before a byte of it is
//! written; a file cut short by a checkpoint is written as stored and reported by a warning.

use super::fetch::Fetcher;
use crate::access::Perm;
use crate::archive::NodeKind;
use crate::progress::{Event, Progress};
use crate::query::escape;
use crate::reader;
use crate::session::Session;
use anyhow::{bail, Context, Result};
use std::io::Write;

/// What was written: the file's bytes, and whether it was stored cut short.
pub struct Written {
    pub bytes: u64,
    pub partial: bool,
}

pub fn to_writer(
    session: &Session,
    name: &str,
    path: &str,
    out: &mut dyn Write,
    progress: Progress,
) -> Result<Written> {
    session.require(&[Perm::Read], "extract archives")?;
    let head = session.head()?;
    let archive = reader::find(&head.0, name)?.clone();
    let cache = session.open_cache(&head, progress)?;
    let want = path.trim_end_matches('/').trim_start_matches("./").as_bytes();
    // The node, found as the metadata streams by (memory stays flat).
    let find = |want: &[u8]| -> Result<Option<crate::archive::Node>> {
        for n in reader::stream(session, &cache, &archive)?.1 {
            let n = n?;
            if n.path == want {
                return Ok(Some(n));
            }
        }
        Ok(None)
    };
    let Some(mut node) = find(want)? else {
        bail!("archive {name:?} holds no {path:?}: `archiver ls {name}` lists its paths");
    };
    // A hard link writes its file's content (stored before it: a second pass finds it).
    if node.kind == NodeKind::Hardlink {
        if let Some(file) = find(&node.target)?.filter(|n| n.kind == NodeKind::File) {
            node = file;
        }
    }
    if node.kind != NodeKind::File {
        bail!(
            "{} in archive {name:?} is a {}: --to-stdout writes one regular file",
            escape(want),
            node.kind.name()
        );
    }
    let ids: Vec<_> = node.blocks.iter().map(|(id, _)| *id).collect();
    let locs = ids
        .iter()
        .map(|id| reader::locate(&cache, id))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("archive {name:?}: {}", escape(&node.path)))?;
    progress(Event::Total { files: 1, bytes: node.size, complete: true });
    let fetcher = Fetcher::new(session.repo.clone(), session.keys.clone())?;
    let all: Vec<usize> = (0..ids.len()).collect();
    let mut windows = fetcher.file(&all, &ids, &locs);
    let mut bytes = 0;
    while let Some(window) = windows.next() {
        let (_, blocks, _permit) =
            window.wait().with_context(|| format!("archive {name:?}: {}", escape(&node.path)))?;
        for b in &blocks {
            out.write_all(b)?;
            bytes += b.len() as u64;
            progress(Event::Advance { files: 0, bytes: b.len() as u64 });
        }
    }
    out.flush()?;
    progress(Event::Advance { files: 1, bytes: 0 });
    if node.partial {
        progress(Event::Warning(format!(
            "{} was cut short when the archive was made (it is marked [partial]): wrote its first {bytes} bytes only",
            escape(&node.path)
        )));
    }
    Ok(Written { bytes, partial: node.partial })
}
