//! The local SQLite cache: which blocks the repository holds (and where), and the file-change
//! cache that lets unchanged files be skipped without reading them.
//!
//! The cache is only an optimisation. It records the generation and manifest hash it mirrors, and
//! which index segments its block table was loaded from (every block row belongs to a pack row,
//! every pack row to a segment row, so a segment's blocks can be dropped exactly). A cache that
//! is missing, unreadable, fails SQLite's integrity check, has another schema, has a file this
//! process cannot write (a read-only `-shm` or `-wal` left by another user's run), or mirrors
//! another state is brought in line by `session::open_cache` (recreated, or re-synced segment by
//! segment), never trusted as it is. Where no cache can be written at all (a read-only or full
//! file system), the process uses a temporary cache in memory, said once per run (`Cache::open`).
//! Blocks are inserted only after the repository durably
//! acknowledged them (invariant 1): the write transaction keeps one SQLite transaction open and
//! commits it only at a checkpoint or after the repository commit.
//!
//! The file name carries the schema version, so archiver versions with different schemas keep
//! separate caches instead of destroying each other's. There is one cache per repository and key
//! id (`keycheck::key_id`): a full key file and the restricted ones made from it share it; a
//! damaged key file (accepted by a repository made before key checks) never does.
//!
//! This file opens, validates, recreates or replaces the database and runs its transactions; the
//! block index is `blocks`, the file-change records `files`, the damage marks `damage`. Every
//! query runs under `guard`, so SQLite reporting damage or a read-only file mid-command discards
//! the cache and stops with one line, never a panic or a wrong answer.

mod blocks;
mod damage;
mod drops;
mod files;
mod load;

pub use files::{FileRecord, Verified};
pub use load::{Loader, LOADING};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};

const SCHEMA: i64 = 3;

pub struct Cache {
    conn: Connection,
    pub path: PathBuf,
    /// The block table's drop count and drop log, as last read (`drops`).
    drops: std::cell::Cell<Option<i64>>,
    drop_log: std::cell::RefCell<Option<drops::Log>>,
}

/// Index segments loaded into the cache per SQLite transaction (about 1M blocks) by a sync or
/// a reload: one transaction for a large index grows the WAL to the database's size, and every
/// page read searches the WAL (quadratic at 100M blocks).
pub const LOAD_BATCH: usize = 16;

impl Cache {
    /// Opens (creating if needed) the cache for repository `repo_id` and key id `key_id` under
    /// `dir`, at `dir/<repo id>/<key id>/`. A cache that cannot be opened or has another schema is
    /// discarded and recreated; the returned note says so. Caches from before key ids (directly in
    /// `dir/<repo id>/`, filled by whichever key file was used, maybe a damaged one) are removed.
    /// If no cache can be created there (a read-only or full file system), this process uses a
    /// temporary one in memory (`temporary`), which the caller loads from the repository like a new
    /// cache; the note says so the first time in the process, and later opens share it.
    pub fn open(dir: &Path, repo_id: &str, key_id: &str) -> Result<(Cache, Option<String>)> {
        let repo_dir = dir.join(repo_id);
        let dir = repo_dir.join(key_id);
        let path = dir.join(format!("cache-v{SCHEMA}.sqlite"));
        Self::open_file(&repo_dir, &dir, &path, repo_id).or_else(|e| Self::temporary(&path, repo_id, e))
    }

    fn open_file(repo_dir: &Path, dir: &Path, path: &Path, repo_id: &str) -> Result<(Cache, Option<String>)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        let mut notes = Vec::new();
        upgrade_v2(&dir.join("cache-v2.sqlite"), path);
        for old in ["cache.sqlite", "cache-v2.sqlite"].map(|n| repo_dir.join(n)) {
            if old.ends_with("cache-v2.sqlite") && old.exists() {
                notes.push(format!("the cache is now kept per key file, at {}; removed the one from before ({}), so the next create reads every file once", path.display(), old.display()));
            }
            remove_files(&old);
        }
        let c = match writable(path).and_then(|_| Self::try_open(path, repo_id)) {
            Ok(c) => c,
            Err(e) => {
                remove_files(path);
                notes.push(format!("cache {} was unusable ({e:#}); recreated it", path.display()));
                Self::try_open(path, repo_id)
                    .with_context(|| format!("cannot create cache {}", path.display()))?
            }
        };
        Ok((c, (!notes.is_empty()).then(|| notes.join("; "))))
    }

    /// A cache in memory for this process, in place of the one at `path` that cannot be written
    /// (`why`). An open connection kept for the life of the process keeps the database, so later
    /// opens see what the first loaded; the note is given until it was loaded (once per run).
    fn temporary(path: &Path, repo_id: &str, why: anyhow::Error) -> Result<(Cache, Option<String>)> {
        static KEEP: std::sync::Mutex<Option<Connection>> = std::sync::Mutex::new(None);
        let uri = format!("file:archiver-temporary-cache-{repo_id}?mode=memory&cache=shared");
        let mut keep = KEEP.lock().unwrap_or_else(|p| p.into_inner());
        if keep.is_none() {
            *keep = Some(Connection::open(&uri)?);
        }
        let c = Self::setup(Connection::open(&uri)?, path, repo_id)?;
        let note = c.synced()?.is_none().then(|| {
            format!(
                "{why:#}, so this run uses a temporary cache in memory, loaded from the repository, and reads unchanged files again: free space or fix permissions there to keep the cache between runs"
            )
        });
        Ok((c, note))
    }

    fn try_open(path: &Path, repo_id: &str) -> Result<Cache> {
        Self::setup(Connection::open(path)?, path, repo_id)
    }

    fn setup(conn: Connection, path: &Path, repo_id: &str) -> Result<Cache> {
        if conn.is_readonly(rusqlite::DatabaseName::Main)? {
            anyhow::bail!("it can only be read");
        }
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // The cache can always be rebuilt, so it need not survive power loss: no fsync per commit.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;")?;
        // A crash of the machine (synchronous=OFF) or stray bytes can damage pages SQLite would
        // otherwise only trip over in the middle of a run, or worse, read without noticing.
        let verdict: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
        if verdict != "ok" {
            anyhow::bail!("it is damaged ({verdict})");
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS segments (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             CREATE TABLE IF NOT EXISTS packs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                 seg INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS packs_seg ON packs (seg);
             CREATE TABLE IF NOT EXISTS files (path BLOB PRIMARY KEY, size INTEGER NOT NULL,
                 mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,
                 blocks BLOB NOT NULL, chk INTEGER NOT NULL) WITHOUT ROWID;",
        )?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS blocks (id BLOB PRIMARY KEY, pack INTEGER NOT NULL,
                 offset INTEGER NOT NULL, len INTEGER NOT NULL, plain_len INTEGER NOT NULL,
                 kind INTEGER NOT NULL, chk INTEGER NOT NULL) WITHOUT ROWID;",
        )?;
        let old: Option<String> =
            conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).optional()?;
        if old.as_deref() == Some("2") {
            // Builds of schema 2 with a drop count of their own, kept by a trigger.
            conn.execute_batch("DROP TRIGGER IF EXISTS blocks_dropped; DROP TABLE IF EXISTS drops;")?;
        }
        conn.execute_batch(drops::TABLES)?;
        files::add_columns(&conn)?;
        if old.as_deref() == Some("2") {
            // Nothing a record says it was verified at can be trusted: start past all of it.
            conn.execute_batch(
                "UPDATE drops SET n = 1 + (SELECT COALESCE(MAX(verified), 0) FROM files);
                 UPDATE drops SET horizon = n;",
            )?;
        }
        conn.execute_batch(damage::TABLE)?;
        let c =
            Cache { conn, path: path.to_path_buf(), drops: Default::default(), drop_log: Default::default() };
        match c.meta("schema")? {
            None => {
                c.set_meta("schema", &SCHEMA.to_string())?;
                c.set_meta("repo", repo_id)?;
            }
            Some(v) if v == SCHEMA.to_string() => {}
            // Schema 2 (renamed by `open_file`) gained the drop tables and the record columns
            // above; its records were never verified.
            Some(v) if v == "2" => c.set_meta("schema", &SCHEMA.to_string())?,
            Some(v) => anyhow::bail!("schema version {v}, this archiver uses {SCHEMA}"),
        }
        if c.meta("repo")?.as_deref() != Some(repo_id) {
            anyhow::bail!("it belongs to another repository");
        }
        Ok(c)
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.guard(|| {
            Ok(self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.guard(|| {
            self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", [key, value])?;
            Ok(())
        })
    }

    /// The repository state this cache mirrors: generation and manifest hash.
    pub fn synced(&self) -> Result<Option<String>> {
        self.meta("synced")
    }

    pub fn set_synced(&self, state: &str) -> Result<()> {
        self.set_meta("synced", state)
    }

    pub fn begin(&self) -> Result<()> {
        self.forget_drops();
        self.guard(|| {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            Ok(())
        })
    }

    pub fn commit(&self) -> Result<()> {
        self.forget_drops();
        self.guard(|| {
            self.conn.execute_batch("COMMIT")?;
            Ok(())
        })
    }

    pub fn rollback(&self) {
        self.forget_drops();
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    /// Runs `f` in one SQLite transaction: committed if it succeeds, rolled back if not.
    pub fn transaction<T>(&self, f: impl FnOnce(&Cache) -> Result<T>) -> Result<T> {
        self.begin()?;
        match f(self) {
            Ok(v) => {
                self.commit()?;
                Ok(v)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Runs a query; SQLite reporting damage (or a file that is not a database) discards the
    /// cache and says so in one line, any other failure names the cache file.
    fn guard<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        f().map_err(|e| {
            let code = e.downcast_ref::<rusqlite::Error>().and_then(|e| e.sqlite_error_code());
            match code {
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                    self.discard();
                    anyhow::anyhow!(
                        "the local cache {} is damaged ({e}); it was removed and is rebuilt from the repository on the next run: run the command again, or `archiver fsck`",
                        self.path.display()
                    )
                }
                // A file of the cache became read-only while we use it (see `writable`).
                Some(rusqlite::ErrorCode::ReadOnly) => {
                    self.discard();
                    anyhow::anyhow!(
                        "the local cache {} cannot be written ({e}); it was removed and is rebuilt from the repository on the next run: run the command again",
                        self.path.display()
                    )
                }
                Some(rusqlite::ErrorCode::DiskFull) => anyhow::anyhow!(
                    "the disk holding the local cache {} is full: free some space (the cache can be deleted safely)",
                    self.path.display()
                ),
                _ if e.downcast_ref::<rusqlite::Error>().is_some() => {
                    e.context(format!("local cache {}", self.path.display()))
                }
                _ => e,
            }
        })
    }

    /// Removes the cache's files (this connection keeps working on the unlinked file).
    fn discard(&self) {
        remove_files(&self.path);
    }
}

/// Schema 2's cache (the same tables, less the drop log and three record columns) becomes this
/// schema's, kept rather than rebuilt (a rebuild would read every file again): its log is written
/// into it and it is renamed, once no other process has it open in WAL mode. Anything failing
/// leaves it, and this schema's cache starts empty.
fn upgrade_v2(old: &Path, path: &Path) {
    if path.exists() || !old.exists() {
        return;
    }
    let Ok(conn) = Connection::open(old) else { return };
    let done = conn
        .busy_timeout(std::time::Duration::from_secs(5))
        .and_then(|_| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)))
        .is_ok_and(|busy| busy == 0);
    drop(conn);
    if done && std::fs::rename(old, path).is_ok() {
        remove_files(old);
    }
}

/// The side files SQLite keeps beside a database.
const SIDE_FILES: [&str; 4] = ["", "-wal", "-shm", "-journal"];

fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Fails if the database or one of its side files exists but this process cannot write it (a
/// `-shm` left by a run as another user, say). SQLite would then open the cache read-only, or
/// fail at its first write, on every run; the cache is recreated instead.
fn writable(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    for suffix in SIDE_FILES {
        let file = side_file(path, suffix);
        let c = std::ffi::CString::new(file.as_os_str().as_bytes())?;
        // SAFETY: `c` is a valid NUL-terminated path; faccessat only reads it.
        let denied =
            unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) } != 0;
        if denied && std::io::Error::last_os_error().kind() != std::io::ErrorKind::NotFound {
            anyhow::bail!("{} cannot be written", file.display());
        }
    }
    Ok(())
}

/// Removes a cache database and its SQLite side files.
fn remove_files(path: &Path) {
    for suffix in SIDE_FILES {
        let _ = std::fs::remove_file(side_file(path, suffix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{Entry, Kind};

    #[test]
    fn survives_reopen_and_replaces_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let e = Entry { id: [1; 32], kind: Kind::Data, offset: 5, len: 10, plain_len: 20 };
        {
            let (c, note) = Cache::open(dir.path(), "r1", "k1").unwrap();
            assert!(note.is_none());
            c.begin().unwrap();
            c.add_pack("s", "p", std::slice::from_ref(&e)).unwrap();
            c.set_synced("1 abc").unwrap();
            c.commit().unwrap();
        }
        let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
        assert_eq!(c.lookup(&[1; 32]).unwrap().unwrap().offset, 5);
        assert_eq!(c.synced().unwrap().as_deref(), Some("1 abc"));
        drop(c);
        std::fs::write(dir.path().join(format!("r1/k1/cache-v{SCHEMA}.sqlite")), b"not a database, garbage")
            .unwrap();
        let (c, note) = Cache::open(dir.path(), "r1", "k1").unwrap();
        assert!(note.is_some());
        assert!(c.lookup(&[1; 32]).unwrap().is_none());
    }

    #[test]
    fn a_schema_2_cache_is_kept_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let rec = files::tests::plain_record();
        let e = Entry { id: rec.blocks[0].0, kind: Kind::Data, offset: 5, len: 5, plain_len: 5 };
        let v3 = {
            let (c, _) = Cache::open(dir.path(), "r1", "k1").unwrap();
            c.begin().unwrap();
            c.add_pack("s", "p", std::slice::from_ref(&e)).unwrap();
            c.put_file(b"/f", &rec).unwrap();
            c.put_file(
                b"/g",
                &FileRecord { verified: Some(Verified { drops: 7, stored: 10 }), ..rec.clone() },
            )
            .unwrap();
            c.set_synced("1 abc").unwrap();
            c.commit().unwrap();
            // Back to what schema 2 had (and a build of it that verified records by its own count).
            c.conn
                .execute_batch(
                    "DROP TABLE dropped; DROP TABLE drops;
                     UPDATE meta SET value = '2' WHERE key = 'schema';
                     CREATE TABLE drops (n INTEGER NOT NULL); INSERT INTO drops VALUES (7);",
                )
                .unwrap();
            c.path.clone()
        };
        let v2 = v3.with_file_name("cache-v2.sqlite");
        std::fs::rename(&v3, &v2).unwrap();
        let (c, note) = Cache::open(dir.path(), "r1", "k1").unwrap();
        assert_eq!(note, None, "kept, not recreated");
        assert!(!v2.exists(), "the schema 2 file was renamed");
        assert_eq!(c.synced().unwrap().as_deref(), Some("1 abc"));
        assert_eq!(c.lookup(&rec.blocks[0].0).unwrap().unwrap().offset, 5);
        assert_eq!(c.file(b"/f").unwrap(), Some(rec));
        let g = c.file(b"/g").unwrap().unwrap();
        assert!(c.drops().unwrap() > 7, "past any count a schema 2 build verified at");
        assert!(!c.still_held(g.verified.unwrap(), &g.blocks).unwrap(), "its verification is not trusted");
        assert_eq!(c.meta("schema").unwrap().as_deref(), Some("3"));
    }
}
