//! Every request the client sends may be carried out by the server and its answer lost (the
//! connection dies after the server acted). For each route, a relay (`util::proxy`,
//! `lose_reply`) swallows the answer to the first such request of one command, which must then
//! retry and succeed as if nothing happened: init (`keygen`), lock, begin, pack, index segment,
//! checkpoint, commit, lock release, a pack read, and in recovery clean-partial, abort (of a
//! client killed after `begin`) and finish (of a commit decided when the server was killed,
//! through its `commit-decided` failpoint). Afterwards every archive restores byte-exact,
//! `fsck --verify-data` is clean, and nothing is left over or orphaned.

mod util;

use util::crash::*;
use util::proxy::{Policy, Proxy};
use util::server::{client_env, Server};
use util::*;

const RETRIES: (&str, &str) = ("ARCHIVER_RETRIES", "4");

/// Runs `args` through a relay that swallows the answer to the first request whose request line
/// contains `pattern`; the command must succeed and the answer must really have been lost.
fn lose(server: &Server, env: &Env, pattern: &str, args: &[&str]) -> Out {
    let proxy = Proxy::start(&server.addr, Policy { lose_reply: Some(pattern.into()), ..Default::default() });
    let out = client_env(env, &proxy.url("lost")).run_with(&[RETRIES], args);
    out.assert_no_panic();
    assert_eq!(out.code, 0, "{args:?} after losing the answer to {pattern:?}:\n{}", out.stderr);
    let t = proxy.tally();
    assert_eq!(t.cuts, 1, "no answer to {pattern:?} was lost during {args:?}: {}", t.summary());
    eprintln!("{:<28} {}", pattern, t.log.join(""));
    out
}

/// A fresh source directory `src-N` with its own data (so every create uploads packs).
fn source(env: &Env, n: u64) -> String {
    let src = format!("src-{n}");
    write_data(&env.path(&src).join("data.bin"), n, 3 * MIB);
    small_tree(&env.path(&src).join("small"), 100 + n, 6, 50_000);
    src
}

#[test]
fn every_route_survives_a_lost_answer() {
    let env = Env::bare();
    let mut server = Server::start(&env.path("store"));
    let mut archives = Vec::new();
    lose(&server, &env, "PUT /v1/lost/config", &["keygen"]);
    let creates: &[(&str, &[&str])] = &[
        ("POST /v1/lost/lock?", &[]),
        ("/begin ", &[]),
        ("/packs/", &[]),
        ("/index/", &[]),
        ("/checkpoint/", &["--checkpoint-bytes", "1M"]),
        ("/commit ", &[]),
        ("DELETE /v1/lost/lock/", &[]),
    ];
    for (n, (pattern, flags)) in creates.iter().enumerate() {
        let (name, src) = (format!("a{n}"), source(&env, n as u64));
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend([name.as_str(), src.as_str()]);
        lose(&server, &env, pattern, &args);
        archives.push((name, src));
    }
    let out = env.fresh_dir("out");
    lose(&server, &env, "GET /v1/lost/packs/", &["extract", "a0", "-C", out.to_str().unwrap()]);
    assert_same_tree(&env.path("src-0"), &out.join("src-0"));

    // Recovery: nothing pending (clean-partial only), then a client killed after `begin`.
    lose(&server, &env, "/clean-partial", &["recover"]);
    let src = source(&env, 50);
    let killed =
        server.client(&env, "lost").run_with(&[("ARCHIVER_FAILPOINT", "txn-begun")], &["create", "x", &src]);
    assert_eq!(killed.code, KILLED, "the failpoint did not fire: {}", killed.stderr);
    lose(&server, &env, "/abort ", &["recover"]).assert_stderr_contains("discarded an interrupted");

    // A commit decided (its record stored) when the server died: recovery finishes it.
    server.restart_with(&[("ARCHIVER_FAILPOINT", "commit-decided")]);
    let src = source(&env, 60);
    let out =
        server.client(&env, "lost").run_with(&[("ARCHIVER_RETRIES", "2")], &["create", "decided", &src]);
    out.assert_one_line_error(2);
    assert!(!server.is_running(), "the server's commit-decided failpoint did not fire");
    server.restart_with(&[]);
    lose(&server, &env, "/finish ", &["recover"]).assert_stderr_contains("finished the commit");
    archives.push(("decided".into(), src));

    let direct = server.client(&env, "lost");
    let mut names: Vec<String> = archives.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(direct.list(), names);
    for (name, src) in &archives {
        assert_extracts_exactly(&direct, name, src, name);
    }
    let fsck = direct.ok(["fsck", "--verify-data"]);
    assert!(
        fsck.stdout.contains("all intact") && !fsck.stdout.contains("nothing references"),
        "{}",
        fsck.stdout
    );
    let local = server.local(&env, "lost");
    assert_no_leftovers(&local, "at the end");
    assert_nothing_orphaned(&local, "at the end");
    assert!(!server.log().contains("panicked"), "the server panicked:\n{}", server.log());
}
