//! `newest --match GLOB --max-age SPAN`, the check a monitor runs: exit 0 while the newest
//! complete archive of the series is younger than SPAN, exit 1 with one line naming it and its
//! age once it is older, or when none exists; a newer `NAME.part` does not count.

mod util;

use util::*;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn a_stale_series_fails_and_a_fresh_one_passes() {
    let env = Env::new();
    write(&env.path("d/f"), b"x");
    write_data(&env.path("big/f"), 1, 3 * MIB);
    let t = now();
    for (name, age) in [("nightly-1", 50 * 3600), ("nightly-2", 30 * 3600), ("weekly-1", 2 * 3600)] {
        env.ok(["create", "--creationtime", &(t - age).to_string(), name, "d"]);
    }
    // A newer run of the series that stopped early: NAME.part never counts as a backup.
    let out =
        env.run(["create", "--maxbw", "1M", "--creationtime", &(t - 60).to_string(), "nightly-3", "big"]);
    assert_eq!(out.code, 3, "{}", out.stderr);

    let out = env.ok(["newest", "--match", "weekly-*", "--max-age", "26h"]);
    assert!(out.stdout.starts_with("weekly-1\t"), "{}", out.stdout);
    env.ok(["newest", "--max-age", "3h"]); // weekly-1 is the newest of all
    let out = env.run(["newest", "--match", "nightly-*", "--max-age", "26h"]);
    out.assert_one_line_error(1).assert_stderr_contains("\"nightly-2\"").assert_stderr_contains("1d 6h");
    assert!(out.stdout.starts_with("nightly-2\t"), "it still prints what it found: {}", out.stdout);
    env.ok(["newest", "--match", "nightly-*", "--max-age", "2d"]);
    // Calendar spans: 1 month is older than 2 days.
    env.ok(["newest", "--match", "nightly-*", "--max-age", "1m"]);
    env.run(["newest", "--match", "none-*"])
        .assert_one_line_error(1)
        .assert_stderr_contains("no complete archive");
    env.run(["newest", "--max-age", "3w"]).assert_one_line_error(1).assert_stderr_contains("unknown unit");
    let out = env.run(["--json", "newest", "--match", "nightly-*", "--max-age", "1d"]);
    assert_eq!(out.code, 1);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!((v["name"].as_str(), v["stale"].as_bool()), (Some("nightly-2"), Some(true)), "{v}");
}
