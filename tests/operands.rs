//! The paths given to `create` are normalised and each file is stored once: a directory given
//! inside another given directory (in either order), a path given twice, or spelled differently
//! (`./x//t/./sub/`), is stored once, so a plain extract restores the tree exactly and the size
//! table counts it once. Two different files that would be stored under one name, a path under a
//! symlink that is given too, and a `..` after a symlink (whose stored name would be wrong) are
//! refused in one line before anything is stored.

mod util;

use std::path::Path;
use util::*;

/// `x/t` with `x/t/sub/f`, `x/t/g`, and `F`.
fn tree(env: &Env) {
    write(&env.path("x/t/sub/f"), b"in sub\n");
    write(&env.path("x/t/g"), b"in t\n");
    write_data(&env.path("F"), 3, 300_000);
}

fn abs(env: &Env, rel: &str) -> String {
    env.path(rel).to_str().unwrap().to_string()
}

/// The stored paths of `name`, and that none is listed twice.
fn listed_once(env: &Env, name: &str) -> Vec<String> {
    let paths = env.ok(["ls", name]).lines();
    let mut sorted = paths.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), paths.len(), "{name} lists a path more than once: {paths:?}");
    paths
}

/// Total size of archive `name` in `archiver stats NAME`.
fn total_size(env: &Env, name: &str) -> u64 {
    let out = env.ok(["stats", name]).stdout;
    let row =
        out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no row for {name}:\n{out}"));
    row.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_directory_inside_another_given_one_is_stored_once_in_either_order() {
    let env = Env::new();
    tree(&env);
    let (t, sub) = (abs(&env, "x/t"), abs(&env, "x/t/sub"));
    for (name, args) in [("ovl", [&t, &sub]), ("rev", [&sub, &t])] {
        let out = env.ok(["create", name, args[0], args[1]]);
        let paths = listed_once(&env, name);
        out.assert_stderr_contains("stored once");
        let stored_t = t.trim_start_matches('/');
        assert_eq!(paths.iter().filter(|p| p.starts_with(stored_t)).count(), 4, "{name}: {paths:?}");
        // A plain extract (no --resume) restores it exactly, with exit 0.
        let out = env.extract(name, &[]);
        assert_same_tree(&env.path("x/t"), &out.join(stored_t));
    }
}

#[test]
fn a_path_given_twice_or_spelled_differently_is_stored_and_counted_once() {
    let env = Env::new();
    tree(&env);
    env.create("one", &["F", "x"]);
    env.create("dup", &["F", "F", "x", "./x//t/./sub/", "x/t/../t/g"]);
    assert_eq!(listed_once(&env, "dup"), listed_once(&env, "one"));
    assert_eq!(total_size(&env, "dup"), total_size(&env, "one"), "the size table counts F more than once");
    let out = env.extract("dup", &[]);
    assert_same_tree(&env.path("x"), &out.join("x"));
}

#[test]
fn two_different_files_under_one_stored_name_are_refused() {
    let env = Env::new();
    tree(&env);
    // `ROOT/F` is stored as `ROOT/F` without its leading `/`; the relative path of that name is
    // another file.
    let rel = env.path("F").to_str().unwrap().trim_start_matches('/').to_string();
    write(&env.path(&rel), b"another file\n");
    let out = env.run(["create", "clash", &abs(&env, "F"), &rel]);
    out.assert_one_line_error(1).assert_stderr_contains("different files");
    assert!(env.list().is_empty(), "something was stored");
}

#[test]
fn a_path_under_a_given_symlink_is_refused() {
    let env = Env::new();
    tree(&env);
    symlink("x/t", &env.path("lnk"));
    let out = env.run(["create", "s", "lnk", "lnk/sub"]);
    out.assert_one_line_error(1).assert_stderr_contains("lnk/sub");
    assert!(env.list().is_empty(), "something was stored");
}

#[test]
fn dot_dot_after_a_symlink_is_refused() {
    let env = Env::new();
    tree(&env);
    // `lnk/../g` is x/t/g to the system (beside what lnk points to), but would be stored as `g`.
    symlink("x/t/sub", &env.path("lnk"));
    assert!(Path::new(&env.path("lnk/../g")).exists());
    let out = env.run(["create", "s", "lnk/../g"]);
    out.assert_one_line_error(1).assert_stderr_contains("symlink");
    assert!(env.list().is_empty(), "something was stored");
    // Without a symlink, `..` is plain: `x/t/sub/../g` is stored as x/t/g.
    env.create("plain", &["x/t/sub/../g"]);
    assert_eq!(env.ok(["ls", "plain"]).lines(), ["x/t/g"]);
}
