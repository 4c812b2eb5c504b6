//! `--maxbw-rate-up`, `--maxbw-rate-down` and `--maxbw-rate` (tarsnap's names): uploads and
//! downloads to a local directory, through `archiver serve` and to S3 (moto) average at most the rate given,
//! after a one-second burst, and what is stored and restored is unchanged. Only lower bounds on
//! time are asserted (a busy machine may be slower, never faster than the limit allows).

mod util;

use std::time::{Duration, Instant};
use util::server::{client_env, Server};
use util::*;

/// Creates `night` of `t/` at 1 MiB/s up, restores it at 1 MiB/s down, timing both.
fn paced_round_trip(env: &Env) {
    let start = Instant::now();
    env.ok(["--maxbw-rate-up", "1M", "create", "night", "t"]);
    let up = start.elapsed();
    let stored = env.ok(["--json", "list"]).stdout;
    let v: serde_json::Value = serde_json::from_str(stored.lines().next().unwrap()).unwrap();
    let bytes = v["stored_size"].as_u64().unwrap();
    // bytes at 1 MiB/s, less the one-second burst.
    let least = Duration::from_secs_f64((bytes as f64 / MIB as f64 - 1.0).max(0.0));
    assert!(up >= least, "{bytes} bytes went up in {up:?}, faster than 1 MiB/s allows ({least:?})");

    let dir = env.fresh_dir("x");
    let start = Instant::now();
    env.ok(["--maxbw-rate", "1M", "extract", "-C", dir.to_str().unwrap(), "night"]);
    let down = start.elapsed();
    assert!(down >= least, "{bytes} bytes came down in {down:?}, faster than 1 MiB/s allows");
    assert_same_tree(&env.path("t"), &dir.join("t"));
    eprintln!("{bytes} stored bytes: up {up:?}, down {down:?} at 1 MiB/s");
}

#[test]
fn a_local_repository_is_paced_both_ways() {
    let env = Env::new();
    write_data(&env.path("t/f"), 1, 4 * MIB);
    paced_round_trip(&env);
    // Unpaced, the same is quick: the limit, not the machine, made it slow.
    let start = Instant::now();
    env.ok(["delete", "night"]);
    env.ok(["create", "night", "t"]);
    assert!(start.elapsed() < Duration::from_secs(2), "unpaced create took {:?}", start.elapsed());
}

#[test]
fn a_served_repository_is_paced_both_ways() {
    let base = Env::bare();
    let server = Server::start(&base.path("store"));
    let env = client_env(&base, &server.url("home"));
    env.ok(["keygen"]);
    write_data(&env.path("t/f"), 2, 4 * MIB);
    paced_round_trip(&env);
}

#[test]
fn an_s3_repository_is_paced_both_ways() {
    let Some(s3) = util::s3::S3::start() else { return };
    let env = s3.env(&Env::bare(), &format!("s3://{}/paced", s3.bucket()));
    env.ok(["keygen"]);
    write_data(&env.path("t/f"), 3, 4 * MIB);
    paced_round_trip(&env);
}

#[test]
fn rates_below_one_kib_or_unreadable_are_refused() {
    let env = Env::new();
    for bad in [["--maxbw-rate", "100"], ["--maxbw-rate-up", "0"], ["--maxbw-rate-down", "fast"]] {
        let mut args = bad.to_vec();
        args.push("list");
        env.run(&args).assert_one_line_error(1);
    }
    write(&env.path("conf"), b"maxbw-rate-down 10\n");
    env.run(["--config", env.path("conf").to_str().unwrap(), "list"])
        .assert_one_line_error(1)
        .assert_stderr_contains("maxbw-rate-down");
}
