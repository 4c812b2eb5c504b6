//! The independent judge of a round trip: `rsync -naHAXS --checksum -i` between the source and
//! the extracted tree prints one line per difference (content, mode, owner, times, hard links,
//! ACLs, extended attributes, sparseness), so an empty output means nothing differs. Also the
//! small shell helpers the file system tests share.

use std::path::Path;
use std::process::Command;

/// Runs `cmd args`, failing the test with its stderr if it fails.
pub fn sh(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

/// What rsync finds different between trees `a` and `b` (empty: nothing).
pub fn rsync_diff(a: &Path, b: &Path, extra: &[&str]) -> String {
    let out = Command::new("rsync")
        .args(["-naHAXS", "--checksum", "-i", "--delete"])
        .args(extra)
        .arg(format!("{}/", a.display()))
        .arg(format!("{}/", b.display()))
        .output()
        .expect("rsync");
    assert!(out.status.success(), "rsync: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the tools the oracle and the tree builders need are installed; a test failure naming
/// the missing one otherwise (`super::unavailable`).
pub fn require_tools() -> bool {
    for t in ["rsync", "setfacl", "setfattr"] {
        if !have(t) {
            super::unavailable(&format!("{t} is not installed (.ci/run installs rsync, acl and attr)"));
            return false;
        }
    }
    true
}
