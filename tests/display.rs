//! Issue 11, finding 8, what the binary prints: names from a repository or from a tree are
//! escaped everywhere (archive names in `list`, `list -v`, `stats`, `generations` and notices;
//! paths in `-v` output), so a name can neither drive the terminal nor forge lines; `ls -v`
//! shows setuid, setgid and sticky bits as `ls -l` does; a key file readable by group or others
//! gets one warning line.

mod util;

use util::craft::commit_edit;
use util::*;

/// An archive name that clears the screen and sets the terminal's title when printed raw.
const ESC_NAME: &str = "evil\x1b[2J\x1b]0;owned\x07";
const ESC_SHOWN: &str = "evil\\x1b[2J\\x1b]0;owned\\x07";
/// A name create refuses (newline), as a key holder can commit it through the library.
const NL_NAME: &str = "forged\narchive";

/// No control character but the newlines that end lines and the tabs of `list -v`.
fn assert_clean(what: &str, out: &Out) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let bad: Vec<char> = text.chars().filter(|c| c.is_control() && *c != '\n' && *c != '\t').collect();
        assert!(bad.is_empty(), "`{what}` printed control characters {bad:?} on {stream}:\n{text}");
    }
    for l in out.stderr.lines() {
        assert!(l.starts_with("archiver: ") || l.starts_with("a "), "`{what}`: a forged stderr line {l:?}");
    }
}

#[test]
fn names_are_escaped_everywhere_they_are_printed() {
    let env = Env::new();
    write(&env.path("t/plain.txt"), b"x");
    write(&bpath(&[env.path("t").as_os_str().as_encoded_bytes(), b"/esc\x1b[31mred"].concat()), b"y");
    write(&bpath(&[env.path("t").as_os_str().as_encoded_bytes(), b"/two\nlines"].concat()), b"z");
    let out = env.ok(["-v", "create", ESC_NAME, "t"]);
    assert_clean("create -v", &out);
    assert_eq!(out.stderr.lines().filter(|l| l.starts_with("a ")).count(), 4, "{}", out.stderr);
    assert!(out.stderr.contains("a t/two\\nlines"), "{}", out.stderr);
    let out = env.run(["-v", "fsck"]);
    assert_clean("fsck -v", &out);

    commit_edit(&env, |m| {
        let mut a = m.find(ESC_NAME).unwrap().clone();
        a.name = NL_NAME.into();
        m.insert(a);
    });
    let out = env.ok(["list"]);
    assert_clean("list", &out);
    assert_eq!(out.lines(), vec![ESC_SHOWN.to_string(), "forged\\narchive".to_string()]);
    let out = env.ok(["-v", "list"]);
    assert_clean("list -v", &out);
    assert_eq!(out.lines().len(), 2, "{}", out.stdout);
    assert!(out.lines().iter().all(|l| l.matches('\t').count() == 2), "{}", out.stdout);
    let out = env.ok(["stats", ESC_NAME, NL_NAME]);
    assert_clean("stats", &out);
    assert_eq!(out.lines().len(), 7, "{}", out.stdout);
    let out = env.ok(["generations"]);
    assert_clean("generations", &out);
    assert_eq!(out.lines().len(), 2, "{}", out.stdout);
    assert!(out.stdout.contains("added forged\\narchive"), "{}", out.stdout);

    let dir = env.fresh_dir("out");
    let out = env.ok(["-v", "extract", ESC_NAME, "-C", dir.to_str().unwrap()]);
    assert_clean("extract -v", &out);
    assert_eq!(
        out.stderr.lines().filter(|l| l.starts_with("a ")).count(),
        3,
        "one per file:\n{}",
        out.stderr
    );
    let out = env.ok(["-v", "ls", ESC_NAME]);
    assert_clean("ls -v", &out);
    let out = env.run(["ls", "no\x1bsuch"]);
    assert_clean("ls of a missing archive", &out);
    let out = env.ok(["delete", NL_NAME]);
    assert_clean("delete", &out);
    out.assert_stderr_contains("forged\\narchive");
}

#[test]
fn ls_v_shows_setuid_setgid_and_sticky_bits() {
    let env = Env::new();
    let cases = [
        ("t/suid", 0o4755, "-rwsr-xr-x"),
        ("t/suid-nox", 0o4644, "-rwSr--r--"),
        ("t/sgid", 0o2750, "-rwxr-s---"),
        ("t/sgid-nox", 0o2640, "-rw-r-S---"),
        ("t/sticky-nox", 0o1644, "-rw-r--r-T"),
        ("t/all", 0o7777, "-rwsrwsrwt"),
    ];
    for (path, mode, _) in cases {
        write(&env.path(path), b"x");
        chmod(&env.path(path), mode);
    }
    mkdir(&env.path("t/tmp"));
    chmod(&env.path("t/tmp"), 0o1777);
    env.create("a", &["t"]);
    let lines = env.ok(["-v", "ls", "a"]).lines();
    let line = |path: &str| lines.iter().find(|l| l.ends_with(&format!(" {path}"))).cloned().unwrap();
    for (path, _, shown) in cases {
        assert!(line(path).starts_with(&format!("{shown} ")), "{path}: {}", line(path));
    }
    assert!(line("t/tmp").starts_with("drwxrwxrwt "), "{}", line("t/tmp"));
}

#[test]
fn a_key_file_readable_by_group_or_others_gets_one_warning() {
    let env = Env::new();
    write(&env.path("t/f"), b"x");
    env.create("a", &["t"]);
    assert_eq!(env.ok(["list"]).stderr, "", "a key file of mode 0600 needs no warning");
    for mode in [0o644, 0o640, 0o604] {
        chmod(&env.key, mode);
        for args in [&["list"][..], &["ls", "a"], &["create", &format!("b{mode:o}"), "t"]] {
            let out = env.ok(args);
            let lines: Vec<&str> = out.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "mode {mode:o}, {args:?}: one line expected:\n{}", out.stderr);
            assert!(lines[0].starts_with("archiver: warning: key file "), "{}", lines[0]);
            assert!(lines[0].contains(&env.key.display().to_string()) && lines[0].contains("chmod 600"));
        }
    }
}
