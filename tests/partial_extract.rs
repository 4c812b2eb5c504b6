//! Extracting a file an archive holds only a prefix of (`ls -v` marks it `[partial]`: a
//! checkpoint cut it, here `--maxbw`): extract restores the prefix but warns, naming the file, and
//! exits 3 ("done but incomplete"); the file keeps the time of the restore as its mtime, not the
//! original, so that make or rsync do not take it for the complete file. The complete files beside
//! it are restored exactly, mtimes included; `--resume` says the same again.

mod util;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};
use util::*;

/// The original mtime of every source file.
const OLD: i64 = 1_000_000_000;

/// `night.part` of `d/` (a small file, then a 16 MiB one cut by `--maxbw 4M`).
fn cut_archive() -> Env {
    let env = Env::new();
    write(&env.path("d/a.txt"), b"complete\n");
    write_data(&env.path("d/big.bin"), 7, 16 * MIB);
    for p in ["d/a.txt", "d/big.bin"] {
        set_mtime(&env.path(p), OLD, 0);
    }
    let out = env.run(["create", "--maxbw", "4M", "night", "d"]);
    assert_eq!(out.code, 3, "--maxbw stops the run as night.part:\n{}", out.stderr);
    assert_eq!(env.list(), ["night.part"]);
    let long = env.ok(["ls", "-v", "night.part"]).stdout;
    assert!(long.lines().any(|l| l.ends_with(" d/big.bin [partial]")), "big.bin is not partial:\n{long}");
    env
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Extracts night.part into `dir` (with `flags`) and checks the outcome.
fn extract_cut(env: &Env, dir: &std::path::Path, flags: &[&str]) {
    let started = now();
    let mut args = vec!["extract", "night.part", "-C", dir.to_str().unwrap()];
    args.extend_from_slice(flags);
    let out = env.run(&args);
    out.assert_no_panic();
    assert_eq!(
        out.code, 3,
        "a file restored cut short is exit code 3 (done but incomplete):\n{}",
        out.stderr
    );
    let warning = out.stderr.lines().find(|l| l.starts_with("archiver: warning: d/big.bin"));
    let warning = warning.unwrap_or_else(|| panic!("no warning names d/big.bin:\n{}", out.stderr));
    assert!(warning.contains("[partial]") && warning.contains("cut short"), "{warning}");
    let warnings = out.stderr.lines().filter(|l| l.starts_with("archiver: warning:")).count();
    assert_eq!(warnings, 1, "only the cut file is warned about:\n{}", out.stderr);

    let (src, got) = (fs::read(env.path("d/big.bin")).unwrap(), fs::read(dir.join("d/big.bin")).unwrap());
    assert!(got.len() < src.len() && src.starts_with(&got), "the restored file is not a proper prefix");
    let mtime = fs::metadata(dir.join("d/big.bin")).unwrap().mtime();
    assert_ne!(mtime, OLD, "the cut file got its original mtime: tools would take it for complete");
    assert!(mtime >= started - 2, "the cut file's mtime {mtime} is not the time of the restore ({started})");
    let small = fs::metadata(dir.join("d/a.txt")).unwrap();
    assert_eq!(fs::read(dir.join("d/a.txt")).unwrap(), b"complete\n");
    assert_eq!(small.mtime(), OLD, "a complete file keeps its original mtime");
}

#[test]
fn a_file_cut_by_a_checkpoint_is_warned_about_exits_3_and_keeps_a_fresh_mtime() {
    let env = cut_archive();
    let dir = env.fresh_dir("out");
    extract_cut(&env, &dir, &[]);
    // Resuming over it finds it complete (as far as the archive goes) and says the same again.
    extract_cut(&env, &dir, &["--resume"]);
}

#[test]
fn extracting_only_the_complete_files_of_a_part_archive_exits_0() {
    let env = cut_archive();
    let dir = env.fresh_dir("out");
    let out = env.run(["extract", "night.part", "-C", dir.to_str().unwrap(), "d/a.txt"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}
