//! Extract's plan on disk: a temporary SQLite database, so that what extract keeps per entry of
//! the archive lives on disk and memory stays flat in the number of entries (issue 17;
//! docs/STREAMING.md, step 3).
//!
//! It holds: the kind of every entry accepted for restoring (`kinds`: duplicates, what an
//! ancestor is, a hard link's file, and the entries `tree::check_targets` looks at), the
//! directories to create in creation order (`needed`), the nodes restored after the files
//! (`kept`: directories, symlinks, hard links, FIFOs and devices, encoded as in an archive), hard
//! links restored as copies of a file not selected (`copies`, `sources`), and the archive's
//! metadata blocks as pass 1 fetched them (`meta`), so pass 2 reads them again without a download.
//!
//! The database is a file under the cache directory (`extract-PID-RANDOM.sqlite`), deleted when
//! the extract ends; one left by a killed extract is removed by the next one (its process is
//! gone). Without a usable cache directory SQLite's own temporary file is used. Nothing here is
//! durable or shared: no journal, no fsync.

use crate::archive::{Node, NodeKind};
use crate::codec::{Reader, Writer};
use crate::crypto::BlockId;
use anyhow::{anyhow, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

pub(super) struct Scratch {
    conn: Connection,
    file: Option<PathBuf>,
}

impl Scratch {
    /// A new, empty plan database in `dir` (or SQLite's temporary file when `dir` is `None` or
    /// unusable).
    pub fn open(dir: Option<&Path>) -> Result<Scratch> {
        let file = dir.and_then(|d| {
            remove_stale(d);
            let name = format!("extract-{}-{}.sqlite", std::process::id(), crate::process::random_id().ok()?);
            Some(d.join(name))
        });
        let (conn, file) = match file.as_ref().map(Connection::open) {
            Some(Ok(c)) => (c, file),
            _ => (Connection::open("").context("cannot create extract's temporary database")?, None),
        };
        let s = Scratch { conn, file };
        s.conn
            .execute_batch(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-2000;
                 PRAGMA temp_store=FILE;
                 CREATE TABLE kinds (path BLOB PRIMARY KEY, kind INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE needed (ord INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE,
                     restored INTEGER NOT NULL);
                 CREATE TABLE kept (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, node BLOB NOT NULL);
                 CREATE INDEX kept_kind ON kept (kind, seq);
                 CREATE TABLE copies (seq INTEGER PRIMARY KEY, target BLOB NOT NULL, node BLOB NOT NULL);
                 CREATE INDEX copies_target ON copies (target);
                 CREATE TABLE sources (path BLOB PRIMARY KEY, node BLOB NOT NULL) WITHOUT ROWID;
                 CREATE TABLE meta (id BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
                 BEGIN;",
            )
            .context("cannot set up extract's temporary database")?;
        Ok(s)
    }

    /// Makes what was written so far readable by later statements in one go (the plan is
    /// written in one transaction, then only read).
    pub fn done_writing(&self) -> Result<()> {
        self.conn.execute_batch("COMMIT; BEGIN;")?;
        Ok(())
    }

    pub fn kind(&self, path: &[u8]) -> Result<Option<NodeKind>> {
        let mut st = self.conn.prepare_cached("SELECT kind FROM kinds WHERE path = ?1")?;
        let code: Option<u8> = st.query_row([path], |r| r.get(0)).optional()?;
        code.map(|c| NodeKind::of(c).ok_or_else(|| anyhow!("extract's plan: kind {c}"))).transpose()
    }

    pub fn set_kind(&self, path: &[u8], kind: NodeKind) -> Result<()> {
        let mut st = self.conn.prepare_cached("INSERT INTO kinds (path, kind) VALUES (?1, ?2)")?;
        st.execute(params![path, kind.code()])?;
        Ok(())
    }

    pub fn is_needed(&self, path: &[u8]) -> Result<bool> {
        let mut st = self.conn.prepare_cached("SELECT 1 FROM needed WHERE path = ?1")?;
        Ok(st.exists([path])?)
    }

    /// Adds `path` to the directories to create (if it is not there yet); `restored`: the
    /// archive has a node for it.
    pub fn need(&self, path: &[u8], restored: bool) -> Result<()> {
        let mut st = self.conn.prepare_cached(
            "INSERT INTO needed (path, restored) VALUES (?1, ?2)
             ON CONFLICT (path) DO UPDATE SET restored = restored OR excluded.restored",
        )?;
        st.execute(params![path, restored])?;
        Ok(())
    }

    /// Every directory to create, parents first: (stored path, has a node).
    pub fn each_needed(&self, mut f: impl FnMut(&[u8], bool) -> Result<()>) -> Result<()> {
        let mut st = self.conn.prepare("SELECT path, restored FROM needed ORDER BY ord")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            f(r.get_ref(0)?.as_blob()?, r.get(1)?)?;
        }
        Ok(())
    }

    /// Every entry accepted other than a directory: (stored path, kind), in path order.
    pub fn each_entry(&self, mut f: impl FnMut(&[u8], NodeKind) -> Result<()>) -> Result<()> {
        let mut st = self.conn.prepare("SELECT path, kind FROM kinds WHERE kind != ?1")?;
        let mut rows = st.query([NodeKind::Dir.code()])?;
        while let Some(r) = rows.next()? {
            let code: u8 = r.get(1)?;
            let kind = NodeKind::of(code).ok_or_else(|| anyhow!("extract's plan: kind {code}"))?;
            f(r.get_ref(0)?.as_blob()?, kind)?;
        }
        Ok(())
    }

    /// Keeps node number `seq` of the archive for after the files.
    pub fn keep(&self, seq: u64, node: &Node) -> Result<()> {
        let mut st = self.conn.prepare_cached("INSERT INTO kept (seq, kind, node) VALUES (?1, ?2, ?3)")?;
        st.execute(params![seq, node.kind.code(), encode(node)])?;
        Ok(())
    }

    /// The kept nodes of `kinds`, in archive order (`rev`: reversed), one at a time.
    pub fn each_kept(
        &self,
        kinds: &[NodeKind],
        rev: bool,
        mut f: impl FnMut(Node) -> Result<()>,
    ) -> Result<()> {
        let codes: Vec<String> = kinds.iter().map(|k| k.code().to_string()).collect();
        let order = if rev { "DESC" } else { "ASC" };
        let sql = format!("SELECT node FROM kept WHERE kind IN ({}) ORDER BY seq {order}", codes.join(","));
        let mut st = self.conn.prepare(&sql)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            f(decode(r.get_ref(0)?.as_blob()?)?)?;
        }
        Ok(())
    }

    /// Hard link `link` (node number `seq`) is restored as a copy of the file at its target.
    pub fn add_copy(&self, seq: u64, link: &Node) -> Result<()> {
        let mut st =
            self.conn.prepare_cached("INSERT INTO copies (seq, target, node) VALUES (?1, ?2, ?3)")?;
        st.execute(params![seq, &link.target, encode(link)])?;
        Ok(())
    }

    /// Whether some hard link is to be a copy of the file at `path`.
    pub fn is_copied(&self, path: &[u8]) -> Result<bool> {
        let mut st = self.conn.prepare_cached("SELECT 1 FROM copies WHERE target = ?1")?;
        Ok(st.exists([path])?)
    }

    /// Keeps `file`, a file some hard link is a copy of.
    pub fn add_source(&self, file: &Node) -> Result<()> {
        let mut st =
            self.conn.prepare_cached("INSERT OR IGNORE INTO sources (path, node) VALUES (?1, ?2)")?;
        st.execute(params![&file.path, encode(file)])?;
        Ok(())
    }

    /// Each hard link to be a copy, in archive order, with its file if the archive has one.
    pub fn each_copy(&self, mut f: impl FnMut(Node, Option<Node>) -> Result<()>) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT c.node, s.node FROM copies c LEFT JOIN sources s ON s.path = c.target ORDER BY c.seq",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let source = r.get_ref(1)?.as_blob_or_null()?.map(decode).transpose()?;
            f(decode(r.get_ref(0)?.as_blob()?)?, source)?;
        }
        Ok(())
    }

    pub fn put_meta(&self, id: &BlockId, data: &[u8]) -> Result<()> {
        let mut st = self.conn.prepare_cached("INSERT OR IGNORE INTO meta (id, data) VALUES (?1, ?2)")?;
        st.execute(params![&id[..], data])?;
        Ok(())
    }

    pub fn meta(&self, id: &BlockId) -> Result<Option<Vec<u8>>> {
        let mut st = self.conn.prepare_cached("SELECT data FROM meta WHERE id = ?1")?;
        Ok(st.query_row([&id[..]], |r| r.get(0)).optional()?)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn encode(node: &Node) -> Vec<u8> {
    let mut w = Writer::new();
    node.encode(&mut w);
    w.finish()
}

fn decode(b: &[u8]) -> Result<Node> {
    Node::decode(&mut Reader::new(b, "extract's plan"))
}

/// Removes plan databases in `dir` left by extracts that were killed (their process is gone).
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("extract-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
