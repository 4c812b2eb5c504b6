//! The chunker's keying is the repository's: a new repository says `chunker keyed-gear-256k-1` in
//! its config and cuts files into 256 KiB chunks (on average) with a gear table derived wholly
//! from the key; one made from 2026-11-28 (`keyed-gear-1`) keeps cutting 1 MiB chunks with that
//! table, and one made before the line existed (its config has none) keeps cutting with
//! fastcdc's seeded table, so what each already stores keeps deduplicating. `fsck --rebuild-config` finds the keying from the
//! stored files and writes it back. Boundaries are checked against the library's chunkers, cut
//! in the test from the file's bytes.

mod util;

use archiver::chunker::{Chunker, Keying};
use std::fs;
use util::*;

/// The block lengths of `path` in archive `name`, as stored.
fn stored_cuts(env: &Env, name: &str, path: &str) -> Vec<u32> {
    let session = util::craft::crafter(env);
    let mut nodes = Vec::new();
    archiver::query::ls(&session, name, &|_| {}, |n| {
        nodes.push(n);
        Ok(())
    })
    .unwrap();
    let node =
        nodes.iter().find(|n| n.path == path.as_bytes()).unwrap_or_else(|| panic!("{path} not stored"));
    node.blocks.iter().map(|b| b.1).collect()
}

/// The block lengths `keying`'s chunker gives `data` with `env`'s key.
fn cuts(env: &Env, keying: Keying, data: &[u8]) -> Vec<u32> {
    let keys = archiver::keyfile::read(&env.key).unwrap().keys;
    let chunker = Chunker::keyed(&keys, keying);
    let mut out = Vec::new();
    chunker
        .split(data, &mut Vec::new(), |batch| {
            out.extend(batch.iter().map(|b| b.len() as u32));
            Ok(())
        })
        .unwrap();
    out
}

fn chunker_line(env: &Env) -> Option<String> {
    let text = fs::read_to_string(env.repo.join("config")).unwrap();
    text.lines().find(|l| l.starts_with("chunker")).map(String::from)
}

/// Makes the `chunker` line `keyed-gear-1`: the config as releases from 2026-11-28 wrote it.
fn make_1m(env: &Env) {
    let path = env.repo.join("config");
    let text = fs::read_to_string(&path).unwrap();
    let mid = text.replace("chunker keyed-gear-256k-1\n", "chunker keyed-gear-1\n");
    assert_ne!(mid, text);
    fs::write(&path, mid).unwrap();
}

/// Removes the `chunker` line: the config as the release before it wrote it.
fn make_older(env: &Env) {
    let path = env.repo.join("config");
    let text = fs::read_to_string(&path).unwrap();
    let older: String =
        text.lines().filter(|l| !l.starts_with("chunker")).map(|l| format!("{l}\n")).collect();
    assert_ne!(older, text);
    fs::write(&path, older).unwrap();
}

#[test]
fn new_repositories_cut_with_the_keyed_table_older_ones_as_they_did() {
    let new = Env::new();
    assert_eq!(chunker_line(&new).as_deref(), Some("chunker keyed-gear-256k-1"));
    let mid = Env::new();
    make_1m(&mid);
    let old = Env::new();
    make_older(&old);
    for env in [&new, &mid, &old] {
        write_data(&env.path("t/big.bin"), 5, 12 * MIB);
        env.create("a", &["t"]);
    }
    let data = fs::read(new.path("t/big.bin")).unwrap();
    let small = cuts(&new, Keying::KeyedGear256K, &data);
    let (keyed, seeded) = (cuts(&new, Keying::KeyedGear, &data), cuts(&new, Keying::SeedXor, &data));
    assert!(keyed.len() >= 4 && keyed != seeded, "the two keyings must cut differently here");
    assert!(small.len() >= 2 * keyed.len() && small != keyed, "256k chunks must be smaller here");
    assert_eq!(stored_cuts(&new, "a", "t/big.bin"), small);
    assert_eq!(stored_cuts(&mid, "a", "t/big.bin"), cuts(&mid, Keying::KeyedGear, &data));
    assert_eq!(stored_cuts(&old, "a", "t/big.bin"), cuts(&old, Keying::SeedXor, &data));

    // The older repository keeps deduplicating what it stores: the same bytes under another
    // name, with the cache gone, add no data block.
    fs::rename(old.path("t/big.bin"), old.path("t/moved.bin")).unwrap();
    fs::remove_dir_all(&old.cache).unwrap();
    let before = old.repo_size();
    old.create("b", &["t"]);
    let grown = old.repo_size() - before;
    assert!(grown < 64 * 1024, "a renamed file grew the older repository by {grown} bytes");
    assert_eq!(stored_cuts(&old, "b", "t/moved.bin"), stored_cuts(&old, "a", "t/big.bin"));
}

#[test]
fn a_rebuilt_config_keeps_the_repositorys_keying() {
    for keying in Keying::ALL {
        let env = Env::new();
        match keying {
            Keying::KeyedGear256K => {}
            Keying::KeyedGear => make_1m(&env),
            Keying::SeedXor => make_older(&env),
        }
        write_data(&env.path("t/big.bin"), 6, 6 * MIB);
        env.create("a", &["t"]);
        let line = chunker_line(&env);
        fs::remove_file(env.repo.join("config")).unwrap();
        let out = env.ok(["fsck", "--rebuild-config"]);
        assert!(out.stdout.contains(&format!("chunker {}", keying.name())), "{}", out.stdout);
        assert_eq!(chunker_line(&env), line, "{keying:?}");
        let x = env.extract("a", &[]);
        assert_same_tree(&env.path("t"), &x.join("t"));
    }
}

#[test]
fn an_unknown_keying_is_refused_in_one_line() {
    let env = Env::new();
    let path = env.repo.join("config");
    let text =
        fs::read_to_string(&path).unwrap().replace("chunker keyed-gear-256k-1", "chunker keyed-gear-9");
    fs::write(&path, text).unwrap();
    env.run(["list"]).assert_one_line_error(1).assert_stderr_contains("upgrade archiver");
}
