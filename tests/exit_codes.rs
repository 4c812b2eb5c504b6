//! The exit code table (README, docs/SCRIPTING.md) for every command: 0 done; 1 failed with the
//! repository unchanged (each command's typical refusal); 2 failed after the repository changed
//! (a disk that fills after checkpoints were stored); 3 done but incomplete (a `--maxbw` stop, an
//! extract of a file cut short); 130 and 143 for SIGINT and SIGTERM, for `create` (which commits
//! its last checkpoint first: tests/signals.rs) and for the other long commands (an interrupted
//! extract is then finished with `--resume`).

mod util;

use std::time::Duration;
use util::crash::{signal, wait_out};
use util::*;

fn code(env: &Env, args: &[&str]) -> i32 {
    let out = env.run(args);
    out.assert_no_panic();
    if out.code == 1 {
        out.assert_one_line_error(1);
    }
    out.code
}

#[test]
fn every_command_exits_0_when_done_and_1_when_refused() {
    let env = Env::new();
    write_data(&env.path("d/f"), 1, 2 * MIB);
    let dir = env.fresh_dir("x");
    let x = dir.to_str().unwrap();
    let w = env.path("w.key");
    let w = w.to_str().unwrap();
    let cases: &[(&[&str], i32)] = &[
        (&["keygen"], 1), // a key file exists
        (&["keymgmt", "--outkeyfile", w, "-w"], 0),
        (&["keymgmt", "--outkeyfile", w, "-w"], 1), // never overwritten
        (&["create", "a", "d"], 0),
        (&["create", "a", "d"], 1), // the name exists
        (&["create", "b", "no-such-path"], 1),
        (&["list"], 0),
        (&["--repo", "/nonexistent/repo", "list"], 1),
        (&["ls", "a"], 0),
        (&["ls", "zz"], 1),
        (&["extract", "-C", x, "a"], 0),
        (&["extract", "-C", x, "a"], 1), // files exist: refused before writing
        (&["stats", "a"], 0),
        (&["stats", "zz"], 1),
        (&["generations"], 0),
        (&["rollback", "999"], 1),
        (&["recover"], 0),
        (&["--keyfile", w, "delete", "a"], 1), // a write-only key cannot delete
        (&["fsck"], 0),
        (&["--keyfile", w, "fsck"], 1), // nor read
        (&["newest", "--max-age", "1d"], 0),
        (&["newest", "--match", "zz*"], 1),
        (&["prune", "--keep-last", "5"], 0),
        (&["prune"], 1), // no rule
        (&["create", "c", "d"], 0),
        (&["delete", "c"], 0),
        (&["delete", "c"], 1),
        (&["completions", "bash"], 0),
        (&["completions", "tcsh"], 1),
        (&["man"], 0),
        (&["serve", "--listen", "not-an-address", "--store", x], 1),
        (&["no-such-command"], 1),
    ];
    for (args, want) in cases {
        assert_eq!(code(&env, args), *want, "archiver {args:?}");
    }
}

#[test]
fn done_but_incomplete_is_3() {
    let env = Env::new();
    write_data(&env.path("d/big"), 2, 8 * MIB);
    // Stopped by --maxbw: stored as NAME.part.
    assert_eq!(env.run(["create", "--maxbw", "2M", "night", "d"]).code, 3);
    // Extracting the file it cut short.
    let dir = env.fresh_dir("x");
    let out = env.run(["extract", "-C", dir.to_str().unwrap(), "night.part"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cut short"), "{}", out.stderr);
    // Its one file to stdout: written as stored, with a warning.
    assert_eq!(env.run(["extract", "--to-stdout", "night.part", "d/big"]).code, 3);
}

#[test]
fn a_failure_after_a_checkpoint_was_stored_is_2() {
    if !is_root() {
        return unavailable("root, to mount a small tmpfs that fills during the backup");
    }
    let mut env = Env::bare();
    let Some(disk) = Tmpfs::mount(&env.path("disk"), "12m") else {
        return unavailable("mounting a tmpfs");
    };
    env.repo = env.path("disk/repo");
    env.ok(["keygen"]);
    write_data(&env.path("d/big"), 3, 40 * MIB);
    let out = env.run(["create", "--checkpoint-bytes", "1M", "night", "d"]);
    out.assert_one_line_error(2).assert_stderr_contains("night.part");
    // The checkpoint is kept: committed as night.part, or (when the full disk refused that
    // commit too) pending, and committed by the next write command once there is space.
    if !env.list().contains(&"night.part".to_string()) {
        assert!(out.stderr.contains("the next write command commits it as \"night.part\""), "{}", out.stderr);
        disk.resize("64m");
        env.ok(["recover"]);
    }
    assert_eq!(env.list(), ["night.part"], "the checkpoint is kept: {}", out.stderr);
}

#[test]
fn sigint_and_sigterm_end_other_long_commands_with_130_and_143() {
    let env = Env::new();
    for i in 0..4 {
        write_data(&env.path(format!("d/f{i}")), 10 + i, 48 * MIB);
    }
    env.create("a", &["d"]);
    for (sig, want) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let dir = env.fresh_dir("x");
        let x = dir.to_str().unwrap();
        let child = env.spawn_piped(&["extract", "-C", x, "a"]);
        std::thread::sleep(Duration::from_millis(150));
        signal(&child, sig);
        let out = wait_out(child);
        if out.code == 0 {
            eprintln!("the extract finished before signal {sig}: nothing to check this time");
            continue;
        }
        assert_eq!(out.code, want, "extract stopped by signal {sig}: {}", out.stderr);
        // Finished by --resume, exactly.
        env.ok(["extract", "-C", x, "--resume", "a"]);
        assert_same_tree(&env.path("d"), &dir.join("d"));
    }
}

#[test]
fn bad_retention_and_selection_input_is_one_line_with_the_right_code() {
    let env = Env::new();
    write(&env.path("d/f"), b"x");
    env.create("a", &["d"]);
    let one_line = |args: &[&str], says: &str| {
        env.run(args).assert_one_line_error(1).assert_stderr_contains(says);
    };
    one_line(&["prune", "--keep-within", "3w"], "unknown unit 'w'");
    one_line(&["prune", "--keep-daily", "-2"], "--keep-daily");
    one_line(&["prune", "--keep-weekly", "lots"], "--keep-weekly");
    one_line(&["create", "--exclude-file", "no-such-file", "b", "d"], "no-such-file");
    // A glob matching nothing: nothing to do, exit 0, and nothing deleted.
    let out = env.ok(["prune", "--keep-last", "1", "--match", "nothing-*"]);
    out.assert_stderr_contains("nothing to do");
    assert_eq!(env.list(), ["a"]);
    // With --json a failure is one exit_error object on stderr and the same code.
    let out = env.run(["--json", "prune", "--keep-within", "3w"]);
    assert_eq!(out.code, 1);
    let v: serde_json::Value = serde_json::from_str(out.stderr.trim()).expect("one JSON object");
    assert_eq!((v["message_type"].as_str(), v["code"].as_i64()), (Some("exit_error"), Some(1)));
}
