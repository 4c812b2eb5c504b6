//! A lost or damaged repository config is written again (`archiver fsck --rebuild-config`) from
//! the full key file, once the stored data proves the key file is this repository's. Before the
//! rebuild every command refuses in one line (exit 1) and says how to rebuild; after it every
//! archive restores exactly and fsck is clean. A foreign key, a restricted key, a damaged key
//! file, an intact config and an empty directory are refused in one line, writing nothing. Over
//! HTTP the server refuses to serve the repository and says that its operator rebuilds it.
//! Before this, nothing could restore a repository whose config was damaged or deleted, although
//! all its data was intact.

mod util;

use std::fs;
use std::path::Path;
use util::server::Server;
use util::*;

#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip,
    Truncate,
    Delete,
}

fn damage(path: &Path, how: Damage) {
    let len = fs::metadata(path).unwrap().len();
    match how {
        Damage::Flip => flip_bit(path, len / 2),
        Damage::Truncate => truncate(path, len / 2),
        Damage::Delete => fs::remove_file(path).unwrap(),
    }
}

/// Archives "one" (`t1/`, with a file of several blocks) and "two" (`t2/`).
fn setup() -> Env {
    let env = Env::new();
    write_data(&env.path("t1/big.bin"), 1, 3 * MIB);
    small_tree(&env.path("t1/small"), 2, 8, 60_000);
    small_tree(&env.path("t2"), 3, 8, 60_000);
    env.create("one", &["t1"]);
    env.create("two", &["t2"]);
    env
}

fn id_line(config: &[u8]) -> String {
    String::from_utf8_lossy(config).lines().find(|l| l.starts_with("id ")).unwrap().to_string()
}

fn with_key(env: &Env, key: &Path, args: &[&str]) -> Out {
    util::out_of(env.command(args).env("ARCHIVER_KEYFILE", key).output().unwrap())
}

#[test]
fn a_lost_or_damaged_config_is_rebuilt_from_the_full_key_and_every_archive_restores() {
    let env = setup();
    let original = fs::read(env.repo.join("config")).unwrap();
    write(&env.path("t3/new.txt"), b"new");
    for how in [Damage::Flip, Damage::Truncate, Damage::Delete] {
        let copy = env.fork(&format!("{how:?}"));
        damage(&copy.repo.join("config"), how);
        let damaged = fs::read(copy.repo.join("config")).ok();
        let before = hashed_files(&copy.repo);
        let out_dir = copy.fresh_dir("out");
        let commands: [&[&str]; 9] = [
            &["list"],
            &["ls", "one"],
            &["extract", "one", "-C", out_dir.to_str().unwrap()],
            &["stats"],
            &["create", "three", "t3"],
            &["delete", "two"],
            &["fsck"],
            &["recover"],
            &["generations"],
        ];
        for args in commands {
            let out = copy.run(args);
            out.assert_one_line_error(1).assert_stderr_contains("archiver fsck --rebuild-config");
            assert_eq!(hashed_files(&copy.repo), before, "{how:?}: `{args:?}` changed the repository");
        }

        let out = copy.ok(["fsck", "--rebuild-config"]);
        eprintln!("{how:?}:\n{}", out.stdout);
        assert!(out.stdout.contains("wrote a new config"), "{how:?}: {}", out.stdout);
        assert!(out.stdout.contains("the current manifest (generation 2) opens with it"), "{}", out.stdout);
        assert!(out.stdout.contains("its chunk-seed cuts a stored file where it was cut"), "{}", out.stdout);
        let kept: Vec<String> =
            copy.repo_files().into_keys().filter(|k| k.starts_with("config.damaged-")).collect();
        match damaged {
            // The damaged original is kept, and the id it still names (the cache's) too.
            Some(bytes) => {
                assert_eq!(kept.len(), 1, "{how:?}: {kept:?}");
                assert_eq!(fs::read(copy.repo.join(&kept[0])).unwrap(), bytes);
                assert_eq!(id_line(&fs::read(copy.repo.join("config")).unwrap()), id_line(&original));
            }
            None => assert!(kept.is_empty(), "{kept:?}"),
        }
        for (name, src) in [("one", "t1"), ("two", "t2")] {
            assert_same_tree(&env.path(src), &copy.extract(name, &[]).join(src));
        }
        copy.ok(["fsck", "--verify-data"]);
        copy.ok(["create", "three", "t3"]);
        // The new config is intact: a second rebuild refuses.
        copy.run(["fsck", "--rebuild-config"]).assert_one_line_error(1).assert_stderr_contains("is intact");
    }
}

#[test]
fn a_foreign_restricted_or_damaged_key_is_refused_and_nothing_is_written() {
    let env = setup();
    let other = Env::new();
    let restricted = env.path("rw.key");
    env.ok(["keymgmt", "-r", "-w", "--outkeyfile", restricted.to_str().unwrap()]);
    let damaged_key = |secret: &str, name: &str| {
        let text = fs::read_to_string(&env.key).unwrap();
        let line = text.lines().find(|l| l.starts_with(&format!("{secret} "))).unwrap();
        let mut bad = line.to_string().into_bytes();
        let at = bad.len() - 3;
        bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
        let path = env.path(name);
        write(&path, text.replace(line, &String::from_utf8(bad).unwrap()).as_bytes());
        chmod(&path, 0o600);
        path
    };
    let bad_id = damaged_key("id-key", "bad-id.key");
    let bad_seed = damaged_key("chunk-seed", "bad-seed.key");
    let cases: [(&Path, &str); 4] = [
        (&other.key, "is not this repository's key file"),
        (&restricted, "needs the full key file"),
        (&bad_id, "its id-key"),
        (&bad_seed, "its chunk-seed cuts stored files elsewhere"),
    ];
    for how in [Damage::Flip, Damage::Delete] {
        for (key, why) in cases {
            let copy = env.fork(&format!("{how:?}-{}", key.file_name().unwrap().to_str().unwrap()));
            damage(&copy.repo.join("config"), how);
            let before = hashed_files(&copy.repo);
            let out = with_key(&copy, key, &["fsck", "--rebuild-config"]);
            out.assert_one_line_error(1).assert_stderr_contains(why);
            assert_eq!(hashed_files(&copy.repo), before, "{how:?} {}: the repository changed", key.display());
        }
    }
    // An intact config is never replaced; an empty directory has nothing to prove a key by.
    let before = hashed_files(&env.repo);
    env.run(["fsck", "--rebuild-config"]).assert_one_line_error(1).assert_stderr_contains("is intact");
    assert_eq!(hashed_files(&env.repo), before);
    let empty = Env::new();
    fs::remove_file(empty.repo.join("config")).unwrap();
    empty.run(["list"]).assert_one_line_error(1).assert_stderr_contains("no repository at");
    empty
        .run(["fsck", "--rebuild-config"])
        .assert_one_line_error(1)
        .assert_stderr_contains("holds no repository data");
    assert!(empty.repo_files().is_empty(), "{:?}", empty.repo_files());
}

#[test]
fn a_served_repository_without_its_config_names_the_rebuild_on_the_server() {
    let env = Env::bare();
    let server = Server::start(&env.path("store"));
    let client = server.client(&env, "home");
    client.ok(["keygen"]);
    small_tree(&env.path("t"), 4, 10, 80_000);
    client.ok(["create", "one", "t"]);
    let local = server.local(&env, "home");
    for how in [Damage::Flip, Damage::Delete] {
        damage(&local.repo.join("config"), how);
        let out = client.run(["list"]);
        out.assert_one_line_error(1)
            .assert_stderr_contains("operator")
            .assert_stderr_contains("--rebuild-config");
        // No route rebuilds it: the client is told to do it on the server.
        let out = client.run(["fsck", "--rebuild-config"]);
        out.assert_one_line_error(1).assert_stderr_contains("server's directory");
        local.ok(["fsck", "--rebuild-config"]);
        assert_eq!(client.list(), vec!["one".to_string()], "{how:?}");
        assert_same_tree(&env.path("t"), &client.extract("one", &[]).join("t"));
    }
}

/// A config overwritten with garbage is damaged beyond recognition, but the directory holds data:
/// the errors name the rebuild, which draws a new repository id.
#[test]
fn a_config_overwritten_with_garbage_is_rebuilt_with_a_new_id() {
    let env = setup();
    fs::write(env.repo.join("config"), [0u8; 100]).unwrap();
    env.run(["list"]).assert_one_line_error(1).assert_stderr_contains("archiver fsck --rebuild-config");
    let out = env.ok(["fsck", "--rebuild-config"]);
    assert!(out.stdout.contains("a new id"), "{}", out.stdout);
    for (name, src) in [("one", "t1"), ("two", "t2")] {
        assert_same_tree(&env.path(src), &env.extract(name, &[]).join(src));
    }
}

/// Where the stored data cannot check a secret (no file of several blocks, so not the chunk
/// seed; never the access keys), a readable verifier line of the config that disagrees with the
/// key file entirely is a conflict: refused, nothing written. One that differs in a digit is the
/// config's damage: rebuilt.
#[test]
fn a_verifier_line_nothing_can_check_is_kept_unless_it_differs_by_a_digit_or_so() {
    let env = Env::new();
    small_tree(&env.path("t"), 5, 10, 100_000);
    env.create("a", &["t"]);
    let change_digit = |text: &str, line: &str| -> String {
        let old = text.lines().find(|l| l.starts_with(&format!("{line} "))).unwrap();
        let mut bad = old.as_bytes().to_vec();
        let at = bad.len() - 5;
        bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
        text.replace(old, &String::from_utf8(bad).unwrap())
    };
    let key_text = fs::read_to_string(&env.key).unwrap();
    for secret in ["chunk-seed", "access-write"] {
        let key = env.path(format!("bad-{secret}.key"));
        write(&key, change_digit(&key_text, secret).as_bytes());
        chmod(&key, 0o600);
        let before = hashed_files(&env.repo);
        let out = with_key(&env, &key, &["fsck", "--rebuild-config"]);
        out.assert_one_line_error(1)
            .assert_stderr_contains("nothing stored can tell which of the two is damaged");
        assert_eq!(hashed_files(&env.repo), before, "{secret}: the repository changed");
    }
    let config = fs::read_to_string(env.repo.join("config")).unwrap();
    fs::write(env.repo.join("config"), change_digit(&config, "access-read")).unwrap();
    env.ok(["fsck", "--rebuild-config"]);
    assert_eq!(fs::read_to_string(env.repo.join("config")).unwrap().lines().nth(2), config.lines().nth(2));
    assert_same_tree(&env.path("t"), &env.extract("a", &[]).join("t"));
}
