//! Damaged blocks heal (issue 12, finding 1): `fsck --verify-data` run with a key that may write
//! records each damaged copy in the repository; the next create of the unchanged tree then reads
//! the files holding it again and stores the block again, which repairs every archive that uses
//! it (blocks are named by their contents); fsck says which archives are repaired; `--prune`
//! drops the damaged copy. A key that cannot write records nothing and says so. Before this,
//! the next create reused the damaged block and produced another archive that did not restore.

mod util;

use std::fs;
use util::*;

fn tree(env: &Env, dir: &str, seed: u64) {
    write_data(&env.path(format!("{dir}/big.bin")), seed, 24 * MIB);
    small_tree(&env.path(format!("{dir}/small")), seed + 1, 20, 100_000);
}

/// Flips a bit in the middle of the largest pack (a data block of big.bin).
fn damage_a_data_block(env: &Env) -> String {
    let (pack, size) = env
        .repo_files()
        .into_iter()
        .filter(|(k, _)| k.starts_with("packs/"))
        .max_by_key(|(_, n)| *n)
        .expect("a pack");
    flip_bit(&env.repo.join(&pack), size / 2);
    pack
}

/// The stored bytes of the "New data" row of a `--print-stats` table.
fn new_data(out: &Out) -> u64 {
    let line = out.stderr.lines().find(|l| l.trim_start().starts_with("New data")).expect("a New data row");
    line.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn fsck_records_a_damaged_block_and_the_next_create_heals_every_archive() {
    let env = Env::new();
    tree(&env, "t", 1);
    env.create("one", &["t"]);
    let pack = damage_a_data_block(&env);

    let out = env.run(["fsck", "--verify-data"]);
    out.assert_one_line_error(1);
    assert!(out.stdout.contains("recorded 1 damaged block(s)"), "{}", out.stdout);
    assert!(out.stdout.contains("archive \"one\": t/big.bin: 1 block(s)"), "{}", out.stdout);
    // Readers do not write; they name the damage and what heals it.
    let out = env.run(["extract", "-C", "out-before", "one"]);
    assert_ne!(out.code, 0);
    out.assert_stderr_contains("is damaged").assert_stderr_contains("fsck");

    // The unchanged tree: big.bin is read again and the damaged block stored again.
    let two = env.ok(["create", "--print-stats", "two", "t"]);
    assert!(new_data(&two) > 0, "nothing new was stored:\n{}{}", two.stdout, two.stderr);
    assert_same_tree(&env.path("t"), &env.extract("two", &[]).join("t"));
    // The archive made before the damage restores too: the block is the same block.
    assert_same_tree(&env.path("t"), &env.extract("one", &[]).join("t"));

    // fsck: the damaged copy is still there, but both archives are repaired.
    let out = env.ok(["fsck", "--verify-data"]);
    for name in ["one", "two"] {
        assert!(out.stdout.contains(&format!("archive \"{name}\": repaired")), "{}", out.stdout);
    }
    // --prune drops the damaged copy; everything is intact afterwards.
    assert!(env.repo.join(&pack).exists());
    env.ok(["fsck", "--prune"]);
    assert!(!env.repo.join(&pack).exists(), "the pack with the damaged copy was kept");
    let out = env.ok(["fsck", "--verify-data"]);
    assert!(out.stdout.contains("all intact"), "{}", out.stdout);
    for name in ["one", "two"] {
        assert_same_tree(&env.path("t"), &env.extract(name, &[]).join("t"));
    }
}

#[test]
fn a_fresh_cache_heals_too() {
    let env = Env::new();
    tree(&env, "t", 2);
    env.create("one", &["t"]);
    damage_a_data_block(&env);
    env.run(["fsck", "--verify-data"]).assert_one_line_error(1);
    fs::remove_dir_all(&env.cache).unwrap();
    env.ok(["create", "two", "t"]);
    assert_same_tree(&env.path("t"), &env.extract("two", &[]).join("t"));
    assert_same_tree(&env.path("t"), &env.extract("one", &[]).join("t"));
}

#[test]
fn a_key_that_cannot_write_records_nothing_and_says_so() {
    let env = Env::new();
    tree(&env, "t", 3);
    env.create("one", &["t"]);
    let read_key = env.path("read.key");
    env.ok(["keymgmt", "-r", "--outkeyfile", read_key.to_str().unwrap()]);
    damage_a_data_block(&env);
    let before = hashed_files(&env.repo);
    let out = util::out_of(
        env.command(["fsck", "--verify-data"]).env("ARCHIVER_KEYFILE", &read_key).output().unwrap(),
    );
    out.assert_one_line_error(1);
    assert!(out.stdout.contains("not recorded in the repository (this key cannot write)"), "{}", out.stdout);
    assert_eq!(hashed_files(&env.repo), before, "a read key changed the repository");
}

/// The manifest is one object: lost, flipped or cut short, fsck (with a key that may write)
/// lists every stored archive again from its root in the packs, and each restores exactly.
/// Before, a lost manifest made every pack an orphan, and `fsck --prune` deleted them all.
#[test]
fn a_lost_or_damaged_manifest_is_rebuilt_from_the_packs() {
    for damage in ["delete", "flip", "truncate"] {
        let env = Env::new();
        small_tree(&env.path("t"), 4, 20, 200_000);
        small_tree(&env.path("u"), 5, 20, 200_000);
        env.create("one", &["t"]);
        env.create("two", &["u"]);
        let (manifest, size) = env
            .repo_files()
            .into_iter()
            .filter(|(k, _)| k.starts_with("manifest/"))
            .max()
            .expect("a manifest");
        let path = env.repo.join(&manifest);
        match damage {
            "delete" => fs::remove_file(&path).unwrap(),
            "flip" => flip_bit(&path, size / 2),
            _ => truncate(&path, size / 2),
        }
        let out = env.run(["fsck", "--prune"]);
        assert_eq!(out.code, 1, "{damage}: {}", out.stderr);
        out.assert_no_panic().assert_stderr_contains("the repository is damaged");
        for name in ["one", "two"] {
            assert!(
                out.stdout.contains(&format!("listed archive {name} again")),
                "{damage}:\n{}",
                out.stdout
            );
        }
        assert_eq!(env.list(), vec!["one".to_string(), "two".to_string()], "{damage}");
        assert_same_tree(&env.path("t"), &env.extract("one", &[]).join("t"));
        assert_same_tree(&env.path("u"), &env.extract("two", &[]).join("u"));
        env.ok(["fsck", "--verify-data"]);
    }
}
