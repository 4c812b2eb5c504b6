//! Repositories behind a real `archiver serve` on 127.0.0.1: the whole life cycle over HTTP
//! (keygen, create, dedup, extract, delete, fsck) restores byte-identical; two clients racing
//! for one repository get one winner and one clear message; a client killed with `kill -9` at
//! random moments leaves a repository the next command recovers (its lease runs out), with every
//! committed archive restoring exactly and `NAME.part` holding a prefix of the run.

mod util;

use std::time::Instant;
use util::server::{client_env, Server};
use util::*;

fn run(env: &Env, url: &str, args: &[&str]) -> Out {
    client_env(env, url).run(args)
}

fn ok(env: &Env, url: &str, args: &[&str]) -> Out {
    let out = run(env, url, args);
    out.assert_no_panic();
    assert_eq!(out.code, 0, "{args:?} over HTTP failed:\n{}", out.stderr);
    out
}

fn extract(env: &Env, url: &str, name: &str) -> std::path::PathBuf {
    let dir = env.fresh_dir("out");
    ok(env, url, &["extract", name, "-C", dir.to_str().unwrap()]);
    dir
}

#[test]
fn the_whole_life_cycle_over_http_restores_exactly() {
    let env = Env::bare();
    let server = Server::start(&env.path("store"));
    let url = server.url("home");
    ok(&env, &url, &["keygen"]);
    write_data(&env.path("t/big.bin"), 1, 20 * MIB);
    small_tree(&env.path("t/small"), 2, 30, 100_000);
    ok(&env, &url, &["create", "one", "t"]);
    let stored = dir_size(&env.path("store/home"));
    // Unchanged, and then without the cache: almost nothing new is sent.
    ok(&env, &url, &["create", "two", "t"]);
    std::fs::remove_dir_all(&env.cache).unwrap();
    ok(&env, &url, &["create", "three", "t"]);
    let grew = dir_size(&env.path("store/home")) - stored;
    assert!(grew < stored / 100, "unchanged creates over HTTP stored {grew} of {stored} bytes");
    assert_eq!(ok(&env, &url, &["list"]).lines(), ["one", "three", "two"]);
    for name in ["one", "three"] {
        assert_same_tree(&env.path("t"), &extract(&env, &url, name).join("t"));
    }
    ok(&env, &url, &["delete", "one", "two"]);
    let out = ok(&env, &url, &["fsck", "--verify-data"]);
    assert!(out.stdout.contains("all intact"), "{}", out.stdout);
    assert_same_tree(&env.path("t"), &extract(&env, &url, "three").join("t"));
    // The store holds one ordinary repository per name: the same data reads locally too.
    let out = server.local(&env, "home").run(["list"]);
    assert_eq!(out.lines(), ["three"], "{}", out.stderr);
}

#[test]
fn a_missing_repository_or_dead_server_is_one_clear_line() {
    let env = Env::bare();
    let server = Server::start(&env.path("store"));
    ok(&env, &server.url("a"), &["keygen"]);
    run(&env, &server.url("nothing-here"), &["list"]).assert_one_line_error(1);
    let dead = "http://127.0.0.1:9/x";
    let out = client_env(&env, dead).run_with(&[("ARCHIVER_RETRIES", "2")], &["list"]);
    out.assert_one_line_error(1).assert_stderr_contains("gave up after 2 attempts");
}

#[test]
fn two_clients_racing_for_one_repository_one_wins_the_other_is_told() {
    let env = Env::bare();
    let server = Server::start(&env.path("store"));
    let url = server.url("shared");
    ok(&env, &url, &["keygen"]);
    write_data(&env.path("t/big.bin"), 3, 96 * MIB);
    let spawn = |name: &str, cache: &str| {
        client_env(&env, &url).with_cache(cache).spawn_with(&[], &["create", name, "t"])
    };
    let (a, b) = (spawn("a", "cache-a"), spawn("b", "cache-b"));
    let (a, b) = (out_of(a.wait_with_output().unwrap()), out_of(b.wait_with_output().unwrap()));
    a.assert_no_panic();
    b.assert_no_panic();
    let (won, lost) = if a.code == 0 { (&a, &b) } else { (&b, &a) };
    assert_eq!(won.code, 0, "neither create succeeded:\n{}\n{}", a.stderr, b.stderr);
    if lost.code != 0 {
        // It lost the race: told so in one line (runs that did not overlap both succeed).
        lost.assert_one_line_error(1).assert_stderr_contains("locked by another archiver");
    }
    for name in ok(&env, &url, &["list"]).lines() {
        assert_same_tree(&env.path("t"), &extract(&env, &url, &name).join("t"));
    }
}

#[test]
fn a_client_killed_at_random_moments_leaves_a_recoverable_repository() {
    let env = Env::bare();
    let server = Server::start(&env.path("store"));
    let url = server.url("night");
    ok(&env, &url, &["keygen"]);
    write_data(&env.path("base/x.bin"), 5, 4 * MIB);
    ok(&env, &url, &["create", "base", "base"]);
    for i in 0..4u64 {
        write_data(&env.path(format!("t/f{i}.bin")), 10 + i, 12 * MIB);
    }
    let create = ["create", "--checkpoint-bytes", "8M", "night", "t"];
    let start = Instant::now();
    ok(&env, &url, &create);
    let full = start.elapsed();
    ok(&env, &url, &["delete", "night"]);
    let mut rng = Rng::new(7);
    let (mut parts, runs) = (0, 20);
    for i in 0..runs {
        let delay = full.mul_f64(0.05 + 0.9 * (rng.below(1000) as f64 / 1000.0));
        let mut child = client_env(&env, &url).spawn(create);
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        // The next command waits for the dead client's lease, then recovers.
        ok(&env, &url, &["recover"]);
        let names = ok(&env, &url, &["list"]).lines();
        assert!(names.contains(&"base".to_string()), "run {i}: base is gone: {names:?}");
        assert_same_tree(&env.path("base"), &extract(&env, &url, "base").join("base"));
        for n in names.iter().filter(|n| n.starts_with("night")) {
            let out = match n == "night" {
                true => extract(&env, &url, n),
                false => client_env(&env, &url).extract_part(n), // exit 3 if a file is cut short
            };
            if n == "night" {
                assert_same_tree(&env.path("t"), &out.join("t"));
            } else {
                parts += 1;
                for f in entries_below(&out.join("t")) {
                    let (got, want) = (
                        std::fs::read(out.join("t").join(&f)).unwrap(),
                        std::fs::read(env.path("t").join(&f)).unwrap(),
                    );
                    assert!(want.starts_with(&got), "run {i}: {n}: t/{f} is not a prefix of the source");
                }
            }
            ok(&env, &url, &["delete", n]);
        }
        let leftovers = entries_below(&env.path("store/night/txn"));
        assert!(leftovers.is_empty(), "run {i}: transaction records left: {leftovers:?}");
    }
    eprintln!("{runs} kills over HTTP (full run {full:?}): {parts} left night.part");
    // Most of the run lies after its first checkpoint: kills that never leave night.part would
    // leave its checks above untested.
    assert!(parts > 0, "none of {runs} kills left night.part");
}
