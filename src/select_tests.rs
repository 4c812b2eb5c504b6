//! The path matcher against libarchive's documented behaviour, case by case (the integration test
//! `tests/selection.rs` compares whole trees with bsdtar itself).

use super::*;

fn ex(p: &str, s: &str) -> bool {
    path_match(p.as_bytes(), s.as_bytes(), true)
}

fn inc(p: &str, s: &str) -> bool {
    path_match(p.as_bytes(), s.as_bytes(), false)
}

#[test]
fn an_exclusion_matches_any_element_and_covers_what_is_below() {
    assert!(ex("tmp", "tmp"));
    assert!(ex("tmp", "a/tmp"));
    assert!(ex("tmp", "a/tmp/x"));
    assert!(!ex("tmp", "a/tmpx"));
    assert!(!ex("tmp", "a/xtmp"));
    assert!(ex("b/c", "a/b/c/d"));
    assert!(!ex("b/c", "a/bb/c"));
    assert!(ex("^a/b", "a/b/c"));
    assert!(!ex("^b", "a/b"));
    assert!(ex("a$", "x/a"));
    assert!(!ex("a$", "a/b"));
}

#[test]
fn an_inclusion_is_anchored_at_the_start() {
    assert!(inc("home", "home"));
    assert!(inc("home", "home/ann/x"));
    assert!(!inc("ann", "home/ann"));
    assert!(!inc("home/ann", "home"));
    assert!(inc("home$", "home"));
    assert!(!inc("home$", "home/bob"));
}

#[test]
fn wildcards_classes_and_escapes() {
    assert!(ex("*.o", "src/a.o"));
    assert!(ex("*.o", "a.o"));
    assert!(!ex("*.o", "a.oo"));
    // `*` crosses '/': "*.o" anchored at the start still matches deep paths.
    assert!(inc("*.o", "src/deep/a.o"));
    assert!(ex("a?c", "x/abc"));
    assert!(!ex("a?c", "x/ac"));
    assert!(ex("[ab]x", "bx"));
    assert!(!ex("[!ab]x", "bx"));
    assert!(ex("[^ab]x", "cx"));
    assert!(ex("[a-c]x", "bx"));
    assert!(!ex("[a-c]x", "dx"));
    assert!(ex("[a-]x", "-x"));
    assert!(ex("a\\*", "a*"));
    assert!(!ex("a\\*", "ab"));
    assert!(ex("[x", "[x"));
    assert!(ex("./a/b", "a/b"));
    assert!(ex("a//b", "a/b"));
    assert!(ex("/a", "/a"));
    assert!(!ex("/a", "a"));
}

#[test]
fn bad_selections_are_refused_before_anything_runs() {
    let s = Selection { exclude: vec![String::new()], ..Default::default() };
    assert!(s.with_exclude_files(&[]).is_err());
    let s = Selection { exclude_if_present: vec!["a/b".into()], ..Default::default() };
    assert!(s.with_exclude_files(&[]).is_err());
    let missing = Selection::default().with_exclude_files(&["/nonexistent/patterns".into()]);
    let err = format!("{:#}", missing.unwrap_err());
    assert!(err.contains("--exclude-file /nonexistent/patterns"), "{err}");
}

#[test]
fn exclusions_win_over_inclusions() {
    let s = Selection { include: vec!["a".into()], exclude: vec!["*.tmp".into()], ..Default::default() };
    assert!(!s.excluded(b"a/x"));
    assert!(s.excluded(b"a/x.tmp"));
    assert!(s.excluded(b"b/x"));
}

#[test]
fn absolute_patterns_match_entries_of_absolute_operands_as_given() {
    // `tarsnap -c --exclude /home/u/cache -f x /home/u` (tarsnapper writes excludes this way):
    // bsdtar matches the path as given, before the leading '/' is dropped from the stored name.
    let s = Selection { exclude: vec!["/home/u/cache".into()], ..Default::default() };
    assert!(s.excluded_given(b"home/u/cache", true));
    assert!(s.excluded_given(b"home/u/cache/f", true));
    assert!(!s.excluded_given(b"home/u/cache", false), "a relative operand's entry is not /home/...");
    assert!(!s.excluded_given(b"home/u/other", true));
    let s = Selection { include: vec!["/home/u/keep".into()], ..Default::default() };
    assert!(!s.excluded_given(b"home/u/keep/f", true));
    assert!(s.excluded_given(b"home/u/other", true));
}
