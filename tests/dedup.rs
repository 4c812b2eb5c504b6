//! Deduplication and space reclamation, measured on the repository directory itself: an unchanged
//! tree stored again costs almost nothing (with or without the local cache), an edit in the middle
//! of a large file costs about one block, and `delete` gives back the space only the deleted
//! archives used while what remains still restores exactly.

mod util;

use std::fs;
use util::*;

/// Largest block the chunker makes.
const MAX_BLOCK: u64 = 4 * MIB;

/// A 64 MiB file plus a few dozen small ones, all unique to `seed`.
fn tree(env: &Env, dir: &str, seed: u64) {
    write_data(&env.path(dir).join("large.bin"), seed, 64 * MIB);
    small_tree(&env.path(dir).join("small"), seed + 1, 40, 200_000);
}

/// Runs `f` and returns by how many bytes it grew the repository (negative: shrank).
fn growth(env: &Env, f: impl FnOnce()) -> i64 {
    let before = env.repo_size() as i64;
    f();
    let grew = env.repo_size() as i64 - before;
    eprintln!("repository grew by {grew} bytes");
    grew
}

#[test]
fn storing_an_unchanged_or_slightly_edited_tree_again_adds_almost_nothing() {
    let env = Env::new();
    tree(&env, "t", 1);
    let first = growth(&env, || drop(env.create("t1", &["t"])));
    assert!(first > 40 * MIB as i64, "the first archive stored only {first} bytes");

    let again = growth(&env, || drop(env.create("t2", &["t"])));
    assert!(again < first / 100, "an unchanged tree added {again} bytes, 1% of {first} allowed");

    // Insert 100 bytes in the middle of the large file: the chunker resynchronises after the
    // edit, so only the blocks around it are new.
    let large = env.path("t/large.bin");
    let mut content = fs::read(&large).unwrap();
    content.splice(32 * MIB as usize..32 * MIB as usize, [0xAB; 100]);
    fs::write(&large, &content).unwrap();
    let edited = growth(&env, || drop(env.create("t3", &["t"])));
    assert!(edited > 0);
    assert!(edited < 3 * MAX_BLOCK as i64, "a 100-byte insert added {edited} bytes, more than 3 blocks");

    // Without the cache, every file is read again, but the repository's index still dedups.
    fs::remove_dir_all(&env.cache).unwrap();
    let uncached = growth(&env, || drop(env.create("t4", &["t"])));
    assert!(uncached < first / 100, "re-create without cache added {uncached} bytes of {first}");

    for name in ["t3", "t4"] {
        assert_same_tree(&env.path("t"), &env.extract(name, &[]).join("t"));
    }
}

#[test]
fn an_overwrite_in_the_middle_of_a_large_file_adds_about_one_block() {
    let env = Env::new();
    write_data(&env.path("t/large.bin"), 9, 64 * MIB);
    env.create("before", &["t"]);
    let large = env.path("t/large.bin");
    let mut content = fs::read(&large).unwrap();
    content[40 * MIB as usize..40 * MIB as usize + 100].copy_from_slice(&[0x5A; 100]);
    fs::write(&large, &content).unwrap();
    let added = growth(&env, || drop(env.create("after", &["t"])));
    assert!(added < 2 * MAX_BLOCK as i64, "a 100-byte overwrite added {added} bytes");
    assert_same_tree(&env.path("t"), &env.extract("after", &[]).join("t"));
}

#[test]
fn the_same_data_under_another_path_or_in_the_same_archive_is_stored_once() {
    let env = Env::new();
    write_data(&env.path("x/one.bin"), 4, 24 * MIB);
    fs::copy(env.path("x/one.bin"), env.path("x/copy.bin")).unwrap();
    let both = growth(&env, || drop(env.create("x", &["x"])));
    assert!(both < 24 * MIB as i64, "two copies of 24 MiB took {both} bytes");

    fs::create_dir_all(env.path("moved")).unwrap();
    fs::rename(env.path("x/one.bin"), env.path("moved/renamed.bin")).unwrap();
    let moved = growth(&env, || drop(env.create("moved", &["moved"])));
    assert!(moved < both / 100, "a renamed file added {moved} bytes");
}

#[test]
fn delete_reclaims_the_space_only_the_deleted_archive_used() {
    let env = Env::new();
    tree(&env, "a", 100);
    tree(&env, "b", 200);
    let a_size = growth(&env, || drop(env.create("a", &["a"])));
    env.create("b", &["b"]);

    let shrink = -growth(&env, || drop(env.ok(["delete", "a"])));
    let slack = a_size / 50 + 64 * 1024;
    assert!((shrink - a_size).abs() < slack, "deleting a ({a_size} bytes stored) reclaimed {shrink}");
    assert_eq!(env.list(), ["b"]);
    env.run(["extract", "a", "-C", "gone"]).assert_one_line_error(1);
    assert_same_tree(&env.path("b"), &env.extract("b", &[]).join("b"));
    // Without the cache too: the index the delete rewrote describes the remaining data.
    fs::remove_dir_all(&env.cache).unwrap();
    assert_same_tree(&env.path("b"), &env.extract("b", &[]).join("b"));

    env.ok(["delete", "b"]);
    assert_eq!(env.list(), Vec::<String>::new());
    assert_eq!(entries_below(&env.repo.join("packs")), Vec::<String>::new(), "packs left behind");
    assert_eq!(entries_below(&env.repo.join("index")), Vec::<String>::new(), "index segments left behind");
}

#[test]
fn deleting_one_of_two_archives_sharing_data_keeps_the_shared_data() {
    let env = Env::new();
    tree(&env, "t", 300);
    env.create("first", &["t"]);
    write_data(&env.path("t/extra.bin"), 301, 8 * MIB);
    env.create("second", &["t"]);
    let shrink = -growth(&env, || drop(env.ok(["delete", "first"])));
    assert!(shrink < 4 * MIB as i64, "deleting an archive whose data is shared reclaimed {shrink} bytes");
    fs::remove_dir_all(&env.cache).unwrap();
    assert_same_tree(&env.path("t"), &env.extract("second", &[]).join("t"));
}

/// The (total, compressed) numbers of the first row labelled `label` in a `--print-stats` table.
fn row(table: &str, label: &str) -> (u64, u64) {
    let line = table.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| {
        panic!("no {label:?} row in:\n{table}");
    });
    let nums: Vec<u64> = line.split_whitespace().rev().take(2).map(|n| n.parse().unwrap()).collect();
    (nums[1], nums[0])
}

#[test]
fn print_stats_reports_what_each_backup_added() {
    let env = Env::new();
    write_data(&env.path("t/large.bin"), 50, 12 * MIB);
    small_tree(&env.path("t/small"), 51, 20, 100_000);
    let first = env.ok(["create", "--print-stats", "one", "t"]).stderr;
    let (this, new) = (row(&first, "This archive"), row(&first, "New data"));
    assert!(this.0 >= 12 * MIB && this.1 < this.0, "{first}");
    assert_eq!(new, this, "everything in the first archive is new:\n{first}");

    let second = env.ok(["create", "--print-stats", "two", "t"]).stderr;
    let (this2, new2) = (row(&second, "This archive"), row(&second, "New data"));
    assert_eq!(this2.0, this.0, "the same tree has the same size:\n{second}");
    assert!(new2.1 < this.1 / 100, "an unchanged tree stored {} new bytes:\n{second}", new2.1);
    assert_eq!(row(&second, "All archives"), (this.0 + this2.0, this.1 + this2.1), "{second}");

    let stats = env.ok(["stats"]).stdout;
    let unique = row(&stats, "(unique data)");
    let packs: u64 = env.repo_files().iter().filter(|(k, _)| k.starts_with("packs/")).map(|(_, v)| v).sum();
    assert!(unique.1 <= packs && unique.1 > packs / 100 * 95, "unique {unique:?}, packs {packs}:\n{stats}");
}
