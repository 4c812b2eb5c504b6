//! Shared helpers for the integration tests, one concern per module: `env` (a scratch environment
//! that runs the real `archiver` binary against a repository, key file and cache in a temporary
//! directory), `data` (deterministic test data), `files` (building, walking and damaging trees
//! on disk), `tree` (snapshots that compare content, mode bits, nanosecond mtimes and symlink
//! targets), `crash` (crash, checkpoint and signal tests: failpoints, transaction records,
//! invariant 3), `s3` (a real S3 server, moto), and the HTTP helpers `server`, `proxy` and `hostile`, `craft` (repository
//! content made through the library) `mem` (memory-measured runs), `oracle` (rsync as the judge of a round trip) and `tarsnap`
//! (the binary run as `tarsnap`).
#![allow(dead_code)]

pub mod craft;
pub mod crash;
mod data;
mod env;
mod files;
pub mod hostile;
pub mod mem;
pub mod nightly;
pub mod oracle;
pub mod proxy;
pub mod s3;
pub mod s3fs;
pub mod server;
pub mod server_kill;
pub mod tarsnap;
mod tree;

pub use data::*;
pub use env::*;
pub use files::*;
pub use tree::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_archiver");
pub const MIB: u64 = 1 << 20;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// For a test whose prerequisite this machine lacks (root, a tmpfs mount, the openssl command,
/// /proc): a failure naming it, so a test never passes without running. CI (`.ci/run`, as root)
/// has them all; `ARCHIVER_TEST_SKIP_UNAVAILABLE=1` skips such tests knowingly, each with a
/// SKIPPED line.
pub fn unavailable(why: &str) {
    if std::env::var_os("ARCHIVER_TEST_SKIP_UNAVAILABLE").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: {why}");
        return;
    }
    panic!("this test cannot run here: {why} (CI has it; ARCHIVER_TEST_SKIP_UNAVAILABLE=1 skips such tests knowingly)");
}
