//! Where `archiver serve` finds the repository a request names: a `RepoFactory`, chosen when the
//! server starts. `archiver serve DIR` uses `LocalDirs` (each repository `NAME` an ordinary local
//! repository in `DIR/NAME`, kept to one writer by `flock`); another store (S3, issue 14) plugs in
//! by providing its own factory, building `ObjectRepo::new(backend, locker)` over its backend.
//!
//! Invariants a factory keeps: `open` is cheap (it runs for every request) and has no effect on
//! the store (a repository that does not exist opens, and its `read_config` says None); `name`
//! has been checked to be one safe path segment (`valid_name`) before any factory sees it; error
//! texts sent to clients never say where the store lives (`hide`).

use crate::backend::StoreResult;
use crate::repo::objects::ObjectRepo;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Opens the repositories a server serves.
pub trait RepoFactory: Send + Sync {
    /// Where the repositories live, for the startup notice.
    fn describe(&self) -> String;
    /// The repository `name` (a valid name: letters, digits, '-', '_', '.'), existing or not.
    fn open(&self, name: &str) -> StoreResult<Arc<ObjectRepo>>;
    /// Whether `name` holds archived data though its config is missing: the answer then tells
    /// the client that the operator must rebuild it (`admit::verifiers_of`).
    fn holds_data(&self, name: &str) -> bool;
    /// `text` without the store's own location, so errors name objects as clients know them
    /// (`NAME/packs/...`).
    fn hide(&self, text: &str) -> String;
}

/// The repositories in a local directory: `STORE/NAME`, each with its `flock`.
pub struct LocalDirs {
    /// Absolute, without a trailing slash.
    store: PathBuf,
}

impl LocalDirs {
    /// The store directory `store`, created if missing.
    pub fn new(store: &std::path::Path) -> Result<LocalDirs> {
        std::fs::create_dir_all(store)
            .with_context(|| format!("cannot create the store directory {}", store.display()))?;
        // Absolute and without a trailing slash, so error texts can leave it out (`hide`).
        let store = std::fs::canonicalize(store)
            .with_context(|| format!("cannot open the store directory {}", store.display()))?;
        Ok(LocalDirs { store })
    }
}

impl RepoFactory for LocalDirs {
    fn describe(&self) -> String {
        self.store.display().to_string()
    }
    fn open(&self, name: &str) -> StoreResult<Arc<ObjectRepo>> {
        Ok(Arc::new(ObjectRepo::local(&self.store.join(name).display().to_string())))
    }
    fn holds_data(&self, name: &str) -> bool {
        crate::keycheck::holds_repository_data(&self.store.join(name))
    }
    fn hide(&self, text: &str) -> String {
        text.replace(&format!("{}/", self.store.display()), "")
    }
}
