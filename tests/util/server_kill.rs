//! What the server-kill tests share (`tests/http_server_kill.rs` for `archiver serve`,
//! `tests/s3_server_kill.rs` for an S3 server): the backup they interrupt, the retry settings of
//! the two kinds of run (the server back at once, or down past the client's retries), and the
//! tally of what each kill led to.

use super::*;

/// The create every run starts: checkpoints every 3 MiB of `data` (`tree`).
pub const CREATE: &[&str] = &["create", "--checkpoint-bytes", "3M", "night", "data"];
/// The relay's rate: ~20 MiB take about two seconds, so kills land at spread-out points.
pub const RATE: u64 = 8 * MIB;
/// Enough retries to carry a client through a quick restart.
pub const RETRIES: (&str, &str) = ("ARCHIVER_RETRIES", "6");
/// About 0.2 s of retrying: an outage of the server outlasts it.
pub const FEW_RETRIES: (&str, &str) = ("ARCHIVER_RETRIES", "2");

/// ~20 MiB: 40 small files, a 14 MiB file that checkpoints cut, a 3 MiB file and a symlink.
pub fn tree(dir: &std::path::Path) {
    small_tree(&dir.join("a-small"), 20, 40, 150_000);
    write_data(&dir.join("big.bin"), 21, 14 * MIB);
    write_data(&dir.join("z/last.bin"), 22, 3 * MIB);
    symlink("../big.bin", &dir.join("z/link"));
    stamp_mtimes(dir, 23);
}

#[derive(Debug, Default)]
pub struct Tally {
    /// Client outcomes: finished before the kill, retried through it, failed cleanly.
    pub done_before: u64,
    pub retried_through: u64,
    pub failed: u64,
    /// What the kill left: nothing, night.part, night (commit decided).
    pub nothing: u64,
    pub part: u64,
    pub whole: u64,
}

impl Tally {
    /// Counts how the client ended (`done_before`: it had exited before the kill); a failure
    /// must be one line, exit 1 or 2, no panic.
    pub fn client(&mut self, out: &Out, done_before: bool, when: &str) {
        out.assert_no_panic();
        match (out.code, done_before) {
            (0, true) => self.done_before += 1,
            (0, false) => self.retried_through += 1,
            _ => {
                out.assert_one_line_error(out.code);
                assert!([1, 2].contains(&out.code), "{when}: exit code {}", out.code);
                self.failed += 1;
            }
        }
    }

    /// Counts what the kill left in the repository.
    pub fn left(&mut self, part: bool, whole: bool) {
        match (part, whole) {
            (_, true) => self.whole += 1,
            (true, false) => self.part += 1,
            _ => self.nothing += 1,
        }
    }
}
