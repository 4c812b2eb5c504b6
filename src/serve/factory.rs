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

#[cfg(test)]
mod tests {
    use super::super::{handle, lock::Locks, Incoming, State};
    use super::*;
    use crate::access::{AccessKeys, Signed};
    use crate::backend::memory::MemoryBackend;
    use crate::repo::lock::ProcessLock;
    use crate::repo::protocol::Route;
    use crate::repo::Repository;
    use std::time::Duration;

    /// Repositories in memory, each kept to one writer by a process lock: a store that is not a
    /// directory, as an S3 factory would be.
    #[derive(Default)]
    struct InMemory {
        repos: std::sync::Mutex<std::collections::HashMap<String, (MemoryBackend, ProcessLock)>>,
    }

    impl RepoFactory for InMemory {
        fn describe(&self) -> String {
            "memory".into()
        }
        fn open(&self, name: &str) -> StoreResult<Arc<ObjectRepo>> {
            let mut repos = self.repos.lock().unwrap();
            let (b, l) = repos.entry(name.to_string()).or_default().clone();
            Ok(Arc::new(ObjectRepo::new(Box::new(b), Box::new(l))))
        }
        fn holds_data(&self, _name: &str) -> bool {
            false
        }
        fn hide(&self, text: &str) -> String {
            text.to_string()
        }
    }

    fn request(keys: &AccessKeys, route: &Route) -> Incoming {
        let url = format!("/v1/r/{}", route.path());
        let signed = Signed { method: route.method(), path: &url, range: "", lock: "", body: &[] };
        Incoming {
            method: route.method().to_string(),
            auth: keys.sign(route.need(&[]), &signed),
            url,
            token: None,
            range: None,
            txn_key: None,
            body: Vec::new(),
            signed: None,
        }
    }

    /// The server serves whatever its factory opens, and its lease holds that repository's own
    /// lock strategy (here a process lock, not `flock`).
    #[test]
    fn the_server_serves_the_repositories_its_factory_opens() {
        let keys = AccessKeys::derive(&[9; 32]);
        let config = format!("archiver-repository\n{}", keys.verifiers().config_lines());
        let factory = InMemory::default();
        factory.open("r").unwrap().init(config.as_bytes()).unwrap();
        let state = State {
            repos: Box::new(factory),
            locks: Locks::new(Duration::from_secs(30)),
            allow_create: false,
            body_timeout: Duration::from_secs(30),
        };
        let reply = handle(&state, request(&keys, &Route::ReadConfig));
        assert_eq!((reply.status, reply.body), (200, config.into_bytes()));
        let reply = handle(&state, request(&keys, &Route::TakeLock { owner: "tester".into() }));
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        let held = state.repos.open("r").unwrap().lock("another").err().expect("the lease holds the lock");
        assert!(format!("{held:#}").contains("tester (through archiver serve)"), "{held:#}");
        let reply = handle(&state, request(&keys, &Route::ReadConfig).with_url("/v1/other/config"));
        assert_eq!(reply.status, 404, "a repository the factory has nothing for");
    }

    impl Incoming {
        fn with_url(self, url: &str) -> Incoming {
            Incoming { url: url.to_string(), ..self }
        }
    }
}
