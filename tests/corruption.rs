//! Damaged repositories. For every stored object (each pack and each index segment) of a
//! repository holding two archives with disjoint data, a copy of the repository gets that object
//! bit-flipped in the middle, truncated to half, or removed. Extracting the archive whose data
//! lived there must fail, naming the archive, without a panic; the other archive must still
//! restore byte for byte. A damaged index segment may go unnoticed while the local cache holds
//! the block index; without the cache it must give a clean one-line error or a correct restore.
//! A damaged manifest makes every command fail with one line and exit code 1.

mod util;

use std::collections::BTreeMap;
use std::fs;
use util::*;

#[derive(Clone, Copy, Debug)]
enum Damage {
    FlipBit,
    Truncate,
    Remove,
}

const DAMAGES: [Damage; 3] = [Damage::FlipBit, Damage::Truncate, Damage::Remove];

fn damage(path: &std::path::Path, how: Damage) {
    let len = fs::metadata(path).unwrap().len();
    match how {
        Damage::FlipBit => flip_bit(path, len / 2),
        Damage::Truncate => truncate(path, len / 2),
        Damage::Remove => fs::remove_file(path).unwrap(),
    }
}

/// A repository with archive "a" of tree `a/` (big enough for two packs) and archive "b" of the
/// disjoint tree `b/`, each created in its own transaction. Returns the environment and, for
/// every pack and index object, the archive whose data it holds.
fn two_archives() -> (Env, BTreeMap<String, &'static str>) {
    let env = Env::new();
    write_data(&env.path("a/large.bin"), 1, 24 * MIB);
    small_tree(&env.path("a/small"), 2, 20, 200_000);
    write_data(&env.path("b/large.bin"), 3, 3 * MIB);
    small_tree(&env.path("b/small"), 4, 10, 100_000);
    let mut txn_of = BTreeMap::new();
    for name in ["a", "b"] {
        let before = env.pack_folders();
        env.create(name, &[name]);
        let new: Vec<String> = env.pack_folders().difference(&before).cloned().collect();
        assert_eq!(new.len(), 1, "one create should make one pack folder, made {new:?}");
        txn_of.insert(new[0].clone(), name);
    }
    let owners: BTreeMap<String, &str> = env
        .objects()
        .into_iter()
        .map(|obj| {
            let owner = txn_of.iter().find(|(txn, _)| obj.contains(txn.as_str())).map(|(_, n)| *n);
            let owner = owner.unwrap_or_else(|| panic!("{obj} belongs to no archive's transaction"));
            (obj, owner)
        })
        .collect();
    let packs = owners.keys().filter(|k| k.starts_with("packs/") && owners[*k] == "a").count();
    assert!(packs >= 2, "archive a should span several packs, has {packs}");
    (env, owners)
}

fn other(name: &str) -> &'static str {
    if name == "a" {
        "b"
    } else {
        "a"
    }
}

/// Extracts `name` from `env` into a fresh directory; true if it restored exactly, false if it
/// failed cleanly (non-zero exit, no panic, every stderr line an `archiver: ` message).
fn extract_or_clean_error(env: &Env, name: &str, one_line: bool) -> bool {
    let dir = env.fresh_dir("out");
    let out = env.run(["extract", name, "-C", dir.to_str().unwrap()]);
    if out.code == 0 {
        out.assert_no_panic();
        assert_same_tree(&env.path(name), &dir.join(name));
        return true;
    }
    if one_line {
        out.assert_one_line_error(1);
    } else {
        out.assert_failed();
    }
    false
}

#[test]
fn damage_to_any_pack_fails_only_the_archive_whose_data_it_holds() {
    let (env, owners) = two_archives();
    for (obj, owner) in owners.iter().filter(|(o, _)| o.starts_with("packs/")) {
        for how in DAMAGES {
            let case = format!("{how:?} {obj}");
            let copy = env.fork(&format!("case-{}", obj.replace('/', "-")));
            damage(&copy.repo.join(obj), how);

            let dir = copy.fresh_dir("out");
            let out = copy.run(["extract", owner, "-C", dir.to_str().unwrap()]);
            out.assert_failed().assert_stderr_contains(&format!("{owner:?}"));
            eprintln!("{case}: {}", out.stderr.lines().last().unwrap_or(""));

            let unaffected = other(owner);
            assert_same_tree(&env.path(unaffected), &copy.extract(unaffected, &[]).join(unaffected));
            // Also when the cache must first be rebuilt from the (intact) index segments.
            fs::remove_dir_all(&copy.cache).unwrap();
            assert_same_tree(&env.path(unaffected), &copy.extract(unaffected, &[]).join(unaffected));
            fs::remove_dir_all(copy.repo.parent().unwrap()).unwrap();
        }
    }
}

#[test]
fn damage_to_any_index_segment_gives_a_clean_error_or_a_correct_restore() {
    let (env, owners) = two_archives();
    for obj in owners.keys().filter(|o| o.starts_with("index/")) {
        for how in DAMAGES {
            let copy = env.fork(&format!("case-{}", obj.replace('/', "-")));
            damage(&copy.repo.join(obj), how);
            // The cache still holds the block index: the segment is not needed.
            for name in ["a", "b"] {
                extract_or_clean_error(&copy, name, false);
            }
            fs::remove_dir_all(&copy.cache).unwrap();
            for name in ["a", "b"] {
                let restored = extract_or_clean_error(&copy, name, true);
                eprintln!("{how:?} {obj}: extract {name} without cache restored: {restored}");
            }
            // A failed rebuild must not leave a cache that later trusts the damaged state.
            extract_or_clean_error(&copy, "b", true);
            fs::remove_dir_all(copy.repo.parent().unwrap()).unwrap();
        }
    }
}

#[test]
fn a_damaged_manifest_makes_every_command_fail_with_one_line_and_change_nothing() {
    let (env, _) = two_archives();
    write(&env.path("c/new.txt"), b"new data");
    for how in [Damage::FlipBit, Damage::Truncate] {
        let copy = env.fork(&format!("manifest-{how:?}"));
        let manifests: Vec<String> =
            copy.repo_files().into_keys().filter(|k| k.starts_with("manifest/")).collect();
        assert_eq!(manifests.len(), 1, "one current manifest expected: {manifests:?}");
        damage(&copy.repo.join(&manifests[0]), how);
        let before = copy.repo_files();
        let out_dir = copy.fresh_dir("out");
        let commands: [&[&str]; 7] = [
            &["list"],
            &["ls", "a"],
            &["extract", "b", "-C", out_dir.to_str().unwrap()],
            &["stats"],
            &["create", "c", "c"],
            &["delete", "b"],
            &["list", "-v"],
        ];
        for args in commands {
            let out = copy.run(args);
            eprintln!("{how:?} manifest, {args:?}: {}", out.stderr.trim_end());
            out.assert_one_line_error(1);
            assert_eq!(copy.repo_files(), before, "`archiver {args:?}` changed the damaged repository");
        }
        // Without the cache, too.
        fs::remove_dir_all(&copy.cache).unwrap();
        copy.run(["ls", "b"]).assert_one_line_error(1);
        assert_eq!(copy.repo_files(), before);
    }
}
