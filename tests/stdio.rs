//! Standard input and output for nightly jobs: `create NAME -` stores a stream (a database dump)
//! as one file (`--stdin-name`), deduplicated against the last dump and checkpointed like any
//! file; `extract --to-stdout NAME PATH` writes one stored file back, exactly, stops quietly
//! on a closed pipe, and refuses what is not one regular file in one line.

mod util;

use std::io::Write;
use std::process::Stdio;
use util::*;

/// Runs `args` with `input` on stdin.
fn with_stdin(env: &Env, args: &[&str], input: &[u8]) -> Out {
    let mut child = env
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out_of(out)
}

fn to_stdout(env: &Env, name: &str, path: &str) -> std::process::Output {
    env.command(["extract", "--to-stdout", name, path]).output().unwrap()
}

#[test]
fn a_stream_is_stored_as_one_file_and_written_back_exactly() {
    let env = Env::new();
    let dump = data(7, 24 * MIB as usize);
    let out = with_stdin(
        &env,
        &["create", "--checkpoint-bytes", "4M", "--stdin-name", "db.sql", "monday", "-"],
        &dump,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ls = env.ok(["ls", "-v", "monday"]).lines();
    assert_eq!(ls.len(), 1, "one file: {ls:?}");
    assert!(
        ls[0].starts_with("-rw-------") && ls[0].ends_with(" db.sql") && ls[0].contains(" 25165824 "),
        "{ls:?}"
    );
    let back = to_stdout(&env, "monday", "db.sql");
    assert!(back.status.success(), "{}", String::from_utf8_lossy(&back.stderr));
    assert!(back.stdout == dump, "extract --to-stdout did not give the dump back");

    // Tomorrow's dump differs a little: little is new. The default name is `stdin`.
    let mut tuesday = dump.clone();
    tuesday[12 * MIB as usize..12 * MIB as usize + 1000].fill(b'x');
    let out = with_stdin(&env, &["--json", "create", "tuesday", "-"], &tuesday);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary: serde_json::Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    let new = summary["new_size"].as_u64().unwrap();
    // At most the block holding the edit and its neighbour (each up to the chunker's 4 MiB
    // maximum; where the keyed chunker cuts differs with every key), not the 24 MiB stream.
    assert!(new <= 2 * archiver::chunker::MAX as u64, "a small change stored {new} new bytes");
    assert!(to_stdout(&env, "tuesday", "stdin").stdout == tuesday);
    // The dump restores as a file too.
    assert_eq!(std::fs::read(env.extract("tuesday", &[]).join("stdin")).unwrap(), tuesday);
}

#[test]
fn to_stdout_refuses_what_is_not_one_file_and_stops_quietly_on_a_closed_pipe() {
    let env = Env::new();
    write_data(&env.path("d/big"), 1, 8 * MIB);
    symlink("big", &env.path("d/link"));
    env.create("a", &["d"]);
    for (path, says) in [("d", "is a directory"), ("d/link", "is a symlink"), ("d/none", "holds no")] {
        let out = out_of(to_stdout(&env, "a", path));
        out.assert_one_line_error(1).assert_stderr_contains(says);
    }
    env.run(["extract", "--to-stdout", "a"]).assert_one_line_error(1).assert_stderr_contains("only PATH");
    env.run(["extract", "--to-stdout", "a", "d/big", "d/link"]).assert_one_line_error(1);
    let out = env.run(["--json", "extract", "--to-stdout", "a", "d/big"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty() && out.stderr.contains("\"exit_error\""), "{}", out.stderr);
    // A reader that goes away early (`| head -c 100`): exit 0, nothing on stderr.
    let mut child = env
        .command(["extract", "--to-stdout", "a", "d/big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = out_of(child.wait_with_output().unwrap());
    assert_eq!(out.code, 0, "a closed pipe is not an error: {}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn stdin_names_and_operands_are_checked() {
    let env = Env::new();
    write(&env.path("f"), b"x");
    for (args, says) in [
        (&["create", "--stdin-name", "a/b", "x", "-"][..], "not a file name"),
        (&["create", "--stdin-name", "..", "x", "-"][..], "not a file name"),
        (&["create", "x", "-", "f"][..], "only PATH"),
        (&["create", "--stdin-name", "db.sql", "x", "f"][..], "give `-`"),
    ] {
        with_stdin(&env, args, b"data").assert_one_line_error(1).assert_stderr_contains(says);
    }
    assert!(env.list().is_empty());
}
