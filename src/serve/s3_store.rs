//! `archiver serve --store s3://BUCKET[/PREFIX]`: the split-key server in front of a bucket. Each
//! repository `NAME` lives under `PREFIX/NAME/` (`backend::prefixed` over one shared S3 client),
//! kept to one writer by a lease object in the bucket (`repo::lease_lock`), so several servers,
//! and clients reaching the bucket directly with a full key, can share it: the lock, every
//! create-if-absent and every decision live in the bucket, not in any one server.
//!
//! Invariants: the store is probed once at start (`backend::probe`: a bucket that ignores
//! conditional writes is refused before any client is served); nothing outside `PREFIX/NAME/` is
//! touched on behalf of `NAME`; error texts sent to clients leave out the bucket's URL (`hide`).

use super::factory::RepoFactory;
use crate::backend::prefixed::Prefixed;
use crate::backend::{Backend, StoreResult};
use crate::repo::objects::ObjectRepo;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

pub struct S3Repos {
    root: Arc<dyn Backend>,
    url: String,
    ttl: Duration,
}

impl S3Repos {
    /// The repositories under `url`, after checking that the bucket keeps conditional writes.
    pub fn new(url: &str) -> Result<S3Repos> {
        let root: Arc<dyn Backend> = Arc::new(crate::repo::s3_backend(url)?);
        let probe = format!("probe-{}", crate::process::random_id()?);
        crate::backend::probe::create_if_absent_holds(&*root, &probe)?;
        let url = url.trim_end_matches('/').to_string();
        Ok(S3Repos { root, url, ttl: crate::repo::lease_ttl()? })
    }
}

impl RepoFactory for S3Repos {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn open(&self, name: &str) -> StoreResult<Arc<ObjectRepo>> {
        let backend = Arc::new(Prefixed::new(self.root.clone(), name));
        Ok(Arc::new(crate::repo::shared_store(backend, self.ttl)))
    }

    fn holds_data(&self, name: &str) -> bool {
        let b = Prefixed::new(self.root.clone(), name);
        [crate::layout::MANIFESTS, crate::layout::TXNS].iter().any(|p| b.list(p).is_ok_and(|l| !l.is_empty()))
    }

    fn hide(&self, text: &str) -> String {
        text.replace(&format!("{}/", self.url), "").replace(&self.url, "the store")
    }
}
