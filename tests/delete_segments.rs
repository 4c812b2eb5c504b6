//! `delete` writes index in proportion to what it changed (docs/STREAMING.md, step 4): an index
//! segment none of whose packs lost a block stays in the manifest under its own name; a segment
//! that lost one is replaced by the delete's segments, which list its unchanged packs again.
//! Afterwards every remaining archive restores exactly, fsck finds nothing wrong, and the cache
//! (updated by the delete, not rebuilt) still knows every surviving block: an unchanged create
//! uploads almost nothing.

mod util;

use std::collections::BTreeSet;
use util::*;

fn indexes(env: &Env) -> Vec<String> {
    util::craft::crafter(env).head().unwrap().0.indexes
}

/// Every pack the live index lists.
fn indexed_packs(env: &Env) -> BTreeSet<String> {
    let session = util::craft::crafter(env);
    let head = session.head().unwrap();
    let mut packs = BTreeSet::new();
    for name in &head.0.indexes {
        packs.extend(session.read_segment(name).unwrap().packs.into_iter().map(|(p, _)| p));
    }
    packs
}

fn txn_of(segment: &str) -> &str {
    segment.rsplit_once('-').unwrap().0
}

#[test]
fn delete_keeps_the_segments_it_did_not_change_and_replaces_the_others() {
    let env = Env::new();
    // `a` stores x and y (about six packs), `b` the same y (only its metadata is new), `c`
    // new data of its own. y spans at least three packs (of 16 to 20 MiB, their blocks in the
    // order they were sealed): one holds y's blocks alone, neither x's nor a's metadata. (With
    // 30 MiB of y, a's packs sometimes all held one of those, and all were repacked.)
    write_data(&env.path("a/x"), 1, 40 * MIB);
    write_data(&env.path("a/y"), 2, 60 * MIB);
    env.create("a", &["a"]);
    write_data(&env.path("b/y"), 2, 60 * MIB);
    env.create("b", &["b"]);
    write_data(&env.path("c/z"), 3, 20 * MIB);
    env.create("c", &["c"]);
    let before = indexes(&env);
    assert_eq!(before.len(), 3, "one segment per create: {before:?}");
    let a_packs: BTreeSet<String> = indexed_packs(&env)
        .into_iter()
        .filter(|p| p.starts_with(&format!("{}/", txn_of(&before[0]))))
        .collect();

    let out = env.ok(["delete", "a"]);
    let after = indexes(&env);
    // b's and c's packs lost nothing: their segments are kept as they were.
    assert!(
        after.contains(&before[1]) && after.contains(&before[2]),
        "{before:?} -> {after:?}\n{}",
        out.stderr
    );
    // a's lost x: its segment is replaced by the delete's, which lists a's packs holding only
    // y's blocks again (kept as they are, not repacked).
    assert!(!after.contains(&before[0]), "{before:?} -> {after:?}");
    assert_eq!(after.len(), 3, "{after:?}");
    let now = indexed_packs(&env);
    let untouched: Vec<&String> = a_packs.iter().filter(|p| now.contains(*p)).collect();
    assert!(!untouched.is_empty(), "every pack of a was rewritten: {a_packs:?} -> {now:?}");
    assert!(untouched.len() < a_packs.len(), "no pack of a was deleted or repacked: {a_packs:?}");

    // The delete's cache: an unchanged create finds every block of b and c in it.
    let stored = env.repo_size();
    env.ok(["create", "b2", "b", "c"]);
    let grew = env.repo_size() - stored;
    assert!(grew * 100 < stored, "the create after the delete uploaded {grew} of {stored} bytes");
    for (name, dir) in [("b", "b"), ("c", "c"), ("b2", "b")] {
        assert_same_tree(&env.path(dir), &env.extract(name, &[]).join(dir));
    }
    let fsck = env.ok(["fsck"]);
    assert!(!fsck.stdout.contains("damaged") && !fsck.stdout.contains("found "), "{}", fsck.stdout);
}
