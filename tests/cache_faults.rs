//! The local cache is an optimisation, never a requirement: for every way a cache goes wrong
//! (deleted, truncated, overwritten with random bytes, scribbled inside its pages, changed inside
//! a row, from a future schema, an old copy from before the last write, two cache directories
//! taking turns on one repository), the next `create` succeeds, or stops with one line pointing
//! at `archiver fsck` and succeeds after it, and every archive then restores byte-identical.
//!
//! The scenario is built so that trusting a stale cache would be caught: archive `a1` holds a
//! tree `u1` that `delete a1` reclaims; the faulty cache predates that delete (or is damaged),
//! and the next create stores `u1` again. If the cache were believed, the new archive would
//! reference blocks the repository no longer holds and would fail to restore.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use util::crash::KILLED;
use util::*;

/// A shared tree `t` plus unique trees `u1`..`u3`.
fn trees(env: &Env) {
    write_data(&env.path("t/big.bin"), 1, 12 * MIB);
    small_tree(&env.path("t/small"), 2, 20, 100_000);
    for i in 1..=3u64 {
        write_data(&env.path(format!("u{i}/data.bin")), 10 + i, 5 * MIB);
        small_tree(&env.path(format!("u{i}/small")), 20 + i, 8, 60_000);
    }
}

/// Runs a command with another cache directory.
fn run_with_cache(env: &Env, cache: &Path, args: &[&str]) -> Out {
    out_of(env.command(args).env("ARCHIVER_CACHEDIR", cache).output().expect("run archiver"))
}

/// `create NAME PATHS`: must succeed, or stop with the fsck line and succeed after `fsck`.
fn create_after_fault(env: &Env, cache: &Path, name: &str, paths: &[&str], fault: &str) {
    let mut args = vec!["create", name];
    args.extend_from_slice(paths);
    let out = run_with_cache(env, cache, &args);
    out.assert_no_panic();
    if out.code != 0 {
        out.assert_one_line_error(1).assert_stderr_contains("archiver fsck");
        assert!(!env.list().contains(&name.to_string()), "{fault}: a failed create left {name}");
        run_with_cache(env, cache, &["fsck"]).assert_no_panic();
        let again = run_with_cache(env, cache, &args);
        assert_eq!(again.code, 0, "{fault}: create after fsck failed:\n{}", again.stderr);
    } else {
        eprintln!("{fault}: create said:\n{}", out.stderr);
    }
}

/// Every archive restores exactly the trees it was made from.
fn assert_all_restore(env: &Env, archives: &[(&str, &[&str])], fault: &str) {
    assert_eq!(env.list(), archives.iter().map(|a| a.0.to_string()).collect::<Vec<_>>(), "{fault}");
    for (name, dirs) in archives {
        let out = extract_after_fault(env, name, fault);
        for d in *dirs {
            assert_same_tree(&env.path(d), &out.join(d));
        }
    }
}

/// `extract NAME` into a fresh directory. A damaged row the create after the fault did not read
/// (an unchanged file's verified record needs none: `cache::drops`) stops the first command that
/// reads it, in one line that says the cache was removed and to run the command again: that
/// must then succeed.
fn extract_after_fault(env: &Env, name: &str, fault: &str) -> PathBuf {
    let dir = env.fresh_dir("out");
    let args = ["extract", name, "-C", dir.to_str().unwrap()];
    let out = env.run(args);
    out.assert_no_panic();
    if out.code != 0 {
        out.assert_one_line_error(1).assert_stderr_contains("run the command again");
        eprintln!("{fault}: extract {name} said:\n{}", out.stderr);
        env.ok(args);
    }
    dir
}

/// Builds a1 [t u1], a2 [t u2], deletes a1 (reclaiming u1), stores a3 [t u3]; `fault` runs on
/// the cache (given the copy saved before the delete), then a4 [t u1] is stored.
fn scenario(fault_name: &str, fault: impl FnOnce(&Env, &Path)) {
    let env = Env::new();
    trees(&env);
    env.create("a1", &["t", "u1"]);
    env.create("a2", &["t", "u2"]);
    let before_delete = env.path("cache-before-delete");
    copy_dir(&env.cache, &before_delete);
    env.ok(["delete", "a1"]);
    env.create("a3", &["t", "u3"]);
    fault(&env, &before_delete);
    create_after_fault(&env, &env.cache, "a4", &["t", "u1"], fault_name);
    let all: [(&str, &[&str]); 3] = [("a2", &["t", "u2"]), ("a3", &["t", "u3"]), ("a4", &["t", "u1"])];
    assert_all_restore(&env, &all, fault_name);
    // The cache is healthy again: another unchanged create stores almost nothing.
    let before = env.repo_size();
    env.create("a5", &["t", "u1"]);
    let grew = env.repo_size() - before;
    assert!(grew < 256 << 10, "{fault_name}: an unchanged create after recovery stored {grew} bytes");
}

#[test]
fn a_deleted_cache_is_rebuilt() {
    scenario("deleted", |env, _| fs::remove_dir_all(&env.cache).unwrap());
}

#[test]
fn a_truncated_cache_is_rebuilt() {
    scenario("truncated", |env, _| {
        let f = cache_file(&env.cache);
        let len = fs::metadata(&f).unwrap().len();
        truncate(&f, len / 2);
    });
}

#[test]
fn a_cache_of_random_bytes_is_rebuilt() {
    scenario("random bytes", |env, _| {
        let f = cache_file(&env.cache);
        let len = fs::metadata(&f).unwrap().len() as usize;
        fs::write(&f, data(99, len)).unwrap();
    });
}

#[test]
fn a_cache_scribbled_inside_its_pages_is_never_trusted() {
    // Random bytes over parts of the file past SQLite's header: some runs damage page structure
    // (the integrity check sees it), some damage rows (their check values see it).
    for seed in 0..6u64 {
        scenario(&format!("scribbled (seed {seed})"), |env, _| {
            let f = cache_file(&env.cache);
            let mut bytes = fs::read(&f).unwrap();
            let mut rng = Rng::new(seed + 1);
            for _ in 0..4 {
                let at = 100 + rng.below(bytes.len() as u64 - 164) as usize;
                bytes[at..at + 64].copy_from_slice(&data(seed * 10 + at as u64, 64));
            }
            fs::write(&f, bytes).unwrap();
        });
    }
}

#[test]
fn a_cache_with_a_changed_row_is_never_trusted() {
    // A change SQLite itself cannot notice: a block's location moved by one byte.
    scenario("changed row", |env, _| {
        let db = rusqlite::Connection::open(cache_file(&env.cache)).unwrap();
        db.execute("UPDATE blocks SET offset = offset + 1", []).unwrap();
    });
}

#[test]
fn a_cache_from_a_future_schema_is_replaced() {
    scenario("future schema", |env, _| {
        let db = rusqlite::Connection::open(cache_file(&env.cache)).unwrap();
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'", []).unwrap();
    });
}

#[test]
fn an_old_copy_of_the_cache_is_brought_up_to_date() {
    // The copy from before `delete a1` still lists u1's blocks, which the repository reclaimed.
    scenario("old copy", |env, old| {
        fs::remove_dir_all(&env.cache).unwrap();
        copy_dir(old, &env.cache);
    });
}

#[test]
fn two_cache_directories_taking_turns_on_one_repository() {
    let env = Env::new();
    trees(&env);
    let (a, b) = (env.path("cache-a"), env.path("cache-b"));
    let ok = |cache: &Path, args: &[&str]| {
        let out = run_with_cache(&env, cache, args);
        assert_eq!(out.code, 0, "{args:?} with {}:\n{}", cache.display(), out.stderr);
        out
    };
    ok(&a, &["create", "a1", "t", "u1"]);
    ok(&b, &["create", "a2", "t", "u2"]); // b learns of a1's blocks
    ok(&a, &["delete", "a1"]); // ... which a reclaims
                               // b is behind: it must not believe u1's blocks are still stored.
    create_after_fault(&env, &b, "a3", &["t", "u1"], "b behind a's delete");
    ok(&a, &["create", "a4", "t", "u3"]); // a is behind b's create
    ok(&b, &["delete", "a2"]);
    create_after_fault(&env, &a, "a5", &["t", "u2"], "a behind b's delete");
    let all: [(&str, &[&str]); 3] = [("a3", &["t", "u1"]), ("a4", &["t", "u3"]), ("a5", &["t", "u2"])];
    assert_all_restore(&env, &all, "two caches");
}

/// Runs `archiver ARGS` as user `nobody` when the tests run as root (for whom file modes do not
/// bind), else as ourselves.
fn run_unprivileged(env: &Env, args: &[&str]) -> Out {
    use std::os::unix::process::CommandExt;
    let mut cmd = env.command(args);
    if is_root() {
        let st = std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(&env.root).status();
        assert!(st.unwrap().success(), "chown failed");
        cmd.uid(65534).gid(65534);
    }
    out_of(cmd.output().expect("run archiver"))
}

#[test]
fn a_read_only_shm_or_wal_file_beside_the_cache_is_replaced() {
    // Issue 11: a read-only `-shm` file beside the cache (left by a run as another user, or
    // restored from a backup) made every later write command fail with "attempt to write a
    // readonly database". The cache is only an optimisation: it is recreated.
    for suffix in ["-shm", "-wal"] {
        let env = Env::bare();
        write(&env.path("t/f"), b"some data");
        assert_eq!(run_unprivileged(&env, &["keygen"]).code, 0);
        let out = run_unprivileged(&env, &["create", "a", "t"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let side = PathBuf::from(format!("{}{suffix}", cache_file(&env.cache).display()));
        fs::write(&side, data(5, 32 << 10)).unwrap();
        chmod(&side, 0o444);
        for (i, args) in
            [&["create", "b", "t"][..], &["create", "c", "t"], &["ls", "a"]].into_iter().enumerate()
        {
            let out = run_unprivileged(&env, args);
            eprintln!("{suffix}, {args:?}: {}", out.stderr.trim_end());
            assert_eq!(out.code, 0, "{suffix}: {args:?} failed:\n{}", out.stderr);
            if i == 0 && suffix == "-shm" {
                out.assert_stderr_contains("recreated");
            }
        }
        assert_eq!(env.list(), vec!["a", "b", "c"]);
    }
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_cache_load_killed_midway_is_loaded_again() {
    // fsck reloads the cache, and a command finding no cache loads one: both in id order, the
    // segments' rows first and the blocks after. Killed in between, the cache lists every
    // segment and holds no block; trusted as it is, nothing would restore.
    let env = Env::new();
    trees(&env);
    env.create("a1", &["t", "u1"]);
    for (what, args) in [("fsck", &["fsck"][..]), ("a fresh cache's sync", &["ls", "a1"][..])] {
        if what != "fsck" {
            fs::remove_dir_all(&env.cache).unwrap();
        }
        let out = env.run_at("cache-load-appending", args);
        assert_eq!(out.code, KILLED, "{what}: the failpoint was not reached:\n{}", out.stderr);
        let restored = env.extract("a1", &[]);
        for d in ["t", "u1"] {
            assert_same_tree(&env.path(d), &restored.join(d));
        }
        fs::remove_dir_all(&restored).unwrap();
    }
}
