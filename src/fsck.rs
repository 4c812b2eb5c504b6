//! `fsck`: checks the repository against itself and rebuilds the local cache from it.
//!
//! (Being written: see issue 4.)

use crate::progress::Progress;
use crate::session::Session;
use anyhow::Result;

#[derive(Debug, Default, Clone)]
pub struct FsckOptions {
    pub prune: bool,
    pub verify_data: bool,
}

#[derive(Debug, Default)]
pub struct FsckReport {
    pub problems: Vec<String>,
}

impl FsckReport {
    pub fn lines(&self) -> Vec<String> {
        self.problems.clone()
    }
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
    pub fn verdict(&self) -> String {
        format!("the repository has {} problem(s), listed above", self.problems.len())
    }
}

pub fn fsck(_session: &Session, _opts: &FsckOptions, _progress: Progress) -> Result<FsckReport> {
    anyhow::bail!("fsck is not built yet")
}
