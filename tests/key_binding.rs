//! A key file is bound to its repository: every secret it holds is checked against the
//! repository's config when it is opened, and a key file with one hex digit changed (any
//! secret) is refused in one line, exit 1, before the repository or the cache is touched. The
//! local cache is kept per key id (the id-key and chunk-seed a key file shares with the restricted
//! key files made from it): a write key shares its full key's cache, and a damaged key (on a
//! repository made before the check existed, where it is accepted) never shares it, so it cannot
//! spoil the next backup made with the right key. Also: where `keymgmt` writes, and what happens
//! when HOME is unset.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use util::*;

/// Every secret a full key file holds.
const SECRETS: [&str; 6] =
    ["enc-key", "id-key", "chunk-seed", "access-read", "access-write", "access-delete"];

/// A repository holding archive "a" of tree `t/`.
fn setup() -> Env {
    let env = Env::new();
    small_tree(&env.path("t"), 1, 12, 80_000);
    write_data(&env.path("t/big.bin"), 2, 3 * MIB);
    env.create("a", &["t"]);
    env
}

/// A copy of `env`'s key file with one hex digit of `secret`'s value changed, at `name`.
fn damaged_key(env: &Env, secret: &str, name: &str) -> PathBuf {
    let text = fs::read_to_string(&env.key).unwrap();
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| match l.strip_prefix(&format!("{secret} ")) {
            Some(value) => {
                found = true;
                let mut v: Vec<char> = value.chars().collect();
                v[5] = if v[5] == '0' { '1' } else { '0' };
                format!("{secret} {}", v.into_iter().collect::<String>())
            }
            None => l.to_string(),
        })
        .collect();
    assert!(found, "the key file has no {secret} line:\n{text}");
    let path = env.path(name);
    write(&path, (lines.join("\n") + "\n").as_bytes());
    chmod(&path, 0o600);
    path
}

/// Makes `env`'s repository look like one made before key files were checked: its config
/// without the `check-*` lines.
fn strip_checks(env: &Env) {
    let config = fs::read_to_string(env.repo.join("config")).unwrap();
    // The id-key and chunk-seed checks came after format 1 (format 2's data-psk check is kept).
    let old: Vec<&str> = config
        .lines()
        .filter(|l| !l.starts_with("check-id-key") && !l.starts_with("check-chunk-seed"))
        .collect();
    fs::write(env.repo.join("config"), old.join("\n") + "\n").unwrap();
}

fn with_key(env: &Env, key: &Path, args: &[&str]) -> Out {
    let mut all = vec!["--keyfile", key.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = env.run(&all);
    out.assert_no_panic();
    out
}

/// Every cache database under `dir`.
fn cache_files(dir: &Path) -> Vec<String> {
    entries_below(dir).into_iter().filter(|p| p.ends_with(".sqlite")).collect()
}

fn repo_id(env: &Env) -> String {
    let config = fs::read_to_string(env.repo.join("config")).unwrap();
    config.lines().find_map(|l| l.strip_prefix("id ")).expect("an id line").to_string()
}

#[test]
fn a_key_file_with_any_secret_changed_is_refused_before_anything_is_written() {
    let env = setup();
    let (repo_before, cache_before) = (hashed_files(&env.repo), hashed_files(&env.cache));
    for secret in SECRETS {
        let key = damaged_key(&env, secret, &format!("{secret}.key"));
        for args in [["create", "x", "t"].as_slice(), &["extract", "a", "-C", "out"], &["list"]] {
            let out = with_key(&env, &key, args);
            eprintln!("{secret}: archiver {args:?} -> {}: {}", out.code, out.stderr.trim_end());
            out.assert_one_line_error(1).assert_stderr_contains(key.to_str().unwrap());
            out.assert_stderr_contains(&format!("its {secret} does not match"));
            assert_eq!(hashed_files(&env.repo), repo_before, "{secret}: {args:?} changed the repository");
            assert_eq!(hashed_files(&env.cache), cache_before, "{secret}: {args:?} changed the cache");
            assert!(!env.path("out").exists(), "{secret}: a refused extract made its directory");
        }
    }
    // The key file itself still works, and so does one made by keymgmt from it.
    assert_eq!(env.list(), ["a"]);
    env.ok(["keymgmt", "--outkeyfile", "r.key", "-r"]);
    assert_eq!(with_key(&env, &env.path("r.key"), &["list"]).lines(), ["a"]);
}

#[test]
fn a_damaged_key_cannot_spoil_the_next_backup_made_with_the_right_key() {
    // The issue's scenario: a create with a damaged id-key, then one with the right key and the
    // same cache directory. On a current repository the first is refused; on one made before the
    // check it is accepted (as before), but it keeps a cache of its own.
    for old in [false, true] {
        let env = Env::new();
        small_tree(&env.path("t"), 3, 12, 80_000);
        write_data(&env.path("t/big.bin"), 4, 3 * MIB);
        if old {
            strip_checks(&env);
        }
        let bad = damaged_key(&env, "id-key", "bad.key");
        let out = with_key(&env, &bad, &["create", "spoilt", "t"]);
        if old {
            assert_eq!(out.code, 0, "old repository: {}", out.stderr);
        } else {
            out.assert_one_line_error(1).assert_stderr_contains("id-key");
            assert!(env.list().is_empty());
        }
        env.create("good", &["t"]);
        assert_same_tree(&env.path("t"), &env.extract("good", &[]).join("t"));
        // A second run with the right key (served by its file-change cache) restores too.
        env.create("good2", &["t"]);
        assert_same_tree(&env.path("t"), &env.extract("good2", &[]).join("t"));
    }
}

#[test]
fn a_write_key_shares_its_full_keys_cache_and_a_damaged_or_foreign_key_does_not() {
    let env = setup();
    let full_cache = cache_files(&env.cache);
    assert_eq!(full_cache.len(), 1, "one cache after one create: {full_cache:?}");
    env.ok(["keymgmt", "--outkeyfile", "w.key", "-w"]);
    let out = with_key(&env, &env.path("w.key"), &["create", "b", "t"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("brought it up"), "the write key re-synced a cache: {}", out.stderr);
    assert_eq!(cache_files(&env.cache), full_cache, "the write key used another cache");
    assert_same_tree(&env.path("t"), &env.extract("b", &[]).join("t"));

    // A damaged key on a repository made before key checks: accepted, with a cache of its own.
    strip_checks(&env);
    let bad = damaged_key(&env, "chunk-seed", "bad.key");
    assert_eq!(with_key(&env, &bad, &["create", "c", "t"]).code, 0);
    let after_bad = cache_files(&env.cache);
    assert_eq!(after_bad.len(), 2, "the damaged key shared a cache: {after_bad:?}");
    assert!(after_bad.contains(&full_cache[0]));

    // A key of another repository, with the same cache directory: another cache again.
    let other = Env::new();
    write(&other.path("f"), b"other");
    let out = other.command(["create", "o", "f"]).env("ARCHIVER_CACHEDIR", &env.cache).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cache_files(&env.cache).len(), 3);
}

#[test]
fn a_cache_from_before_key_ids_is_removed_not_left_behind() {
    let env = setup();
    let current = cache_files(&env.cache);
    assert_eq!(current.len(), 1);
    let old_dir = env.cache.join(repo_id(&env));
    let old = old_dir.join("cache-v2.sqlite");
    if env.cache.join(&current[0]) != old {
        fs::copy(env.cache.join(&current[0]), &old).unwrap();
        write(&old_dir.join("cache-v2.sqlite-wal"), b"");
    }
    let out = env.create("b", &["t"]);
    assert!(!old.exists(), "the old cache {} was left behind", old.display());
    assert!(!old_dir.join("cache-v2.sqlite-wal").exists());
    assert_eq!(cache_files(&env.cache), current, "{}", out.stderr);
    assert_same_tree(&env.path("t"), &env.extract("b", &[]).join("t"));
}

#[test]
fn keymgmt_writes_only_where_it_is_told_and_names_outkeyfile() {
    let env = setup();
    let nowhere = env.path("no-such-dir/w.key");
    let out = env.run(["keymgmt", "--outkeyfile", nowhere.to_str().unwrap(), "-w"]);
    out.assert_one_line_error(1).assert_stderr_contains("--outkeyfile").assert_stderr_contains("no-such-dir");
    assert!(!env.path("no-such-dir").exists(), "keymgmt created the directory");
    env.ok(["keymgmt", "--outkeyfile", "w.key", "-w"]);
    let before = fs::read(env.path("w.key")).unwrap();
    let out = env.run(["keymgmt", "--outkeyfile", "w.key", "-r"]);
    out.assert_one_line_error(1)
        .assert_stderr_contains("already exists")
        .assert_stderr_contains("--outkeyfile");
    assert!(!out.stderr.contains("--keyfile"), "names the wrong option: {}", out.stderr);
    assert_eq!(fs::read(env.path("w.key")).unwrap(), before);
}

#[test]
fn with_home_unset_default_paths_are_refused_naming_home_and_what_to_set() {
    let env = setup();
    let bare = |args: &[&str]| {
        let mut c = env.command(args);
        for var in [
            "HOME",
            "ARCHIVER_REPO",
            "ARCHIVER_KEYFILE",
            "ARCHIVER_CACHEDIR",
            "XDG_DATA_HOME",
            "XDG_CONFIG_HOME",
        ] {
            c.env_remove(var);
        }
        c.env_remove("XDG_CACHE_HOME");
        util::out_of(c.output().unwrap())
    };
    for args in [["list"].as_slice(), &["create", "x", "t"], &["--repo", "repo", "list"]] {
        let out = bare(args);
        eprintln!("{args:?} -> {}: {}", out.code, out.stderr.trim_end());
        out.assert_one_line_error(1).assert_stderr_contains("HOME is unset");
        assert!(!out.stderr.contains("/.config") && !out.stderr.contains("/.local"), "{}", out.stderr);
    }
    bare(&["--repo", "repo", "--keyfile", "archiver.key", "list"])
        .assert_one_line_error(1)
        .assert_stderr_contains("--cachedir");
    // Given every path, nothing needs HOME; keymgmt needs only the key file.
    let out = bare(&["--repo", "repo", "--keyfile", "archiver.key", "--cachedir", "cache", "list"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "a\n"), "{}", out.stderr);
    let out = bare(&["--keyfile", "archiver.key", "keymgmt", "--outkeyfile", "w.key", "-w"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
