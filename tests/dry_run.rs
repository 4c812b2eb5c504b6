//! `create --dry-run`: it walks, chunks and consults the cache, and says how much would be new,
//! exactly what the real run then adds; it changes no byte of the repository or the cache, not
//! even to recover an interrupted run (that is left to the next write command).

mod util;

use serde_json::Value;
use util::crash::KILLED;
use util::*;

fn summary(out: &Out) -> Value {
    let last = out.stdout.lines().last().expect("a summary line");
    let v: Value = serde_json::from_str(last).expect("JSON");
    assert_eq!(v["message_type"], "summary", "{last}");
    v
}

#[test]
fn a_dry_run_reports_what_the_real_run_adds_and_changes_nothing() {
    let env = Env::new();
    small_tree(&env.path("d"), 1, 30, 100_000);
    write_data(&env.path("d/big"), 2, 4 * MIB);
    env.create("base", &["d"]);
    // Some of it changes, some is new, most is stored already.
    write_data(&env.path("d/new"), 3, 3 * MIB);
    write_data(&env.path("d/sub/changed"), 4, MIB);
    let (repo, cache) = (hashed_files(&env.repo), hashed_files(&env.cache));

    let args = ["--json", "create", "--dry-run", "--creationtime", "1790000000", "night", "d"];
    let dry = env.ok(args);
    assert_eq!(hashed_files(&env.repo), repo, "a dry run changed the repository");
    assert_eq!(hashed_files(&env.cache), cache, "a dry run changed the cache");
    assert!(!env.list().contains(&"night".to_string()));
    let dry = summary(&dry);
    assert_eq!(dry["dry_run"], true);

    let real = summary(&env.ok(["--json", "create", "--creationtime", "1790000000", "night", "d"]));
    for field in ["files", "dirs", "symlinks", "size", "new_size"] {
        assert_eq!(
            dry[field], real[field],
            "{field}: the dry run said {}, the real run did {}",
            dry[field], real[field]
        );
    }
    let new = real["new_size"].as_u64().unwrap();
    assert!((4 * MIB..5 * MIB).contains(&new), "about 4 MiB should be new: {new}");

    // In text: one line saying what would be stored; -v lists each file.
    let out = env.ok(["-v", "create", "--dry-run", "again", "d"]);
    out.assert_stderr_contains("dry run: \"again\" would hold").assert_stderr_contains("a d/new");
    // A name that exists is refused as the real run refuses it.
    env.run(["create", "--dry-run", "night", "d"]).assert_one_line_error(1);
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_dry_run_leaves_an_interrupted_run_to_the_next_write_command() {
    let env = Env::new();
    write_data(&env.path("d/a"), 5, 12 * MIB);
    let out = env.run_at("checkpoint-recorded", &["create", "--checkpoint-bytes", "4M", "night", "d"]);
    assert_eq!(out.code, KILLED, "the create was not killed: {}", out.stderr);
    // (The cache is not compared here: SQLite merges the write-ahead log the killed process left
    // into the cache file when it is opened, which changes its bytes but not what it holds.)
    let repo = hashed_files(&env.repo);
    env.ok(["create", "--dry-run", "other", "d"]);
    assert_eq!(hashed_files(&env.repo), repo, "a dry run touched the interrupted transaction");
    env.ok(["recover"]).assert_stderr_contains("committed the last checkpoint");
    assert!(env.list().contains(&"night.part".to_string()));
}
