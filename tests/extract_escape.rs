//! Extract stays inside `-C DIR` against crafted archives (written through the library, as a holder
//! of a write key could) and against a target that changes under it: a symlink already in the
//! target is never followed or replaced (stored `x/.`, `x/./evil`, `x//y` and plain `x/evil`),
//! `--overwrite` replaces a symlink only where a file goes, a directory swapped for a symlink in a
//! tight loop while thousands of files are restored gets nothing written outside, a 1,000-deep
//! tree whose paths exceed PATH_MAX restores with 1,024 file descriptors, and bad stored paths
//! (empty, NUL, duplicate, `..`, absolute, under a file) are skipped with a warning while the rest
//! is restored, exit code 3. Each runs with `openat2` and with the per-component fallback
//! (`ARCHIVER_EXTRACT_NO_OPENAT2=1`).

mod util;

use archiver::archive::{Node, NodeKind};
use archiver::session::{Session, Settings};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::*;

/// The two ways extract resolves paths: `openat2` (this kernel has it) and the fallback.
const MODES: [Option<&str>; 2] = [None, Some("1")];

fn run_extract(env: &Env, mode: Option<&str>, args: &[&str]) -> Out {
    let mut c = env.command(["extract"].iter().chain(args));
    if let Some(v) = mode {
        c.env("ARCHIVER_EXTRACT_NO_OPENAT2", v);
    }
    out_of(c.output().expect("run archiver"))
}

fn node(path: &[u8], kind: NodeKind, mode: u32, uid: u32) -> Node {
    Node { mode, uid, gid: uid, mtime: 1_234_567_890, mtime_ns: 5, ..Node::new(path.to_vec(), kind) }
}

fn file(path: &[u8], mode: u32, uid: u32, content: &[u8]) -> (Node, Vec<u8>) {
    (node(path, NodeKind::File, 0o100000 | mode, uid), content.to_vec())
}

fn dir(path: &[u8], mode: u32, uid: u32) -> (Node, Vec<u8>) {
    (node(path, NodeKind::Dir, 0o040000 | mode, uid), Vec::new())
}

fn link(path: &[u8], target: &[u8]) -> (Node, Vec<u8>) {
    let mut n = node(path, NodeKind::Symlink, 0o120777, 0);
    n.target = target.to_vec();
    (n, Vec::new())
}

/// Stores `nodes` as archive `name`, exactly as given.
fn craft(env: &Env, name: &str, nodes: Vec<(Node, Vec<u8>)>) {
    let settings = Settings {
        repo: env.repo.display().to_string(),
        keyfile: env.key.clone(),
        cachedir: env.cache.clone(),
        ca_cert: None,
        lock_wait: None,
        rates: Default::default(),
        passphrase: None,
    };
    let session = Session::open(&settings).expect("open the repository");
    archiver::craft::store_archive(&session, name, nodes).expect("store the crafted archive");
}

/// Everything about the entries under `dir` (and `dir`) that a hostile extract could change:
/// kind, mode, mtime, content, link target, owner and group.
fn state(dir: &Path) -> BTreeMap<PathBuf, (Meta, u32, u32)> {
    snapshot(dir)
        .into_iter()
        .map(|(rel, m)| {
            let md = fs::symlink_metadata(dir.join(&rel)).unwrap();
            (rel, (m, md.uid(), md.gid()))
        })
        .collect()
}

/// A directory outside the target with a file in it, and the target holding `x`, a symlink to it.
fn outside_and_target(env: &Env) -> (PathBuf, PathBuf) {
    let outside = env.path("outside");
    write(&outside.join("victim"), b"precious");
    chmod(&outside, 0o755);
    set_mtime(&outside, 1_000_000_000, 0);
    let out = env.path("out");
    mkdir(&out);
    symlink(&outside, &out.join("x"));
    (outside, out)
}

fn assert_skipped(out: &Out, paths: &[&str]) {
    assert_eq!(out.code, 3, "extract should finish incomplete (exit 3):\n{}", out.stderr);
    out.assert_no_panic();
    for l in out.stderr.lines() {
        assert!(l.starts_with("archiver: "), "stderr line lacks the `archiver: ` prefix: {l}");
    }
    for p in paths {
        let line = format!("skipped {p}:");
        assert!(out.stderr.contains(&line), "no warning {line:?} in:\n{}", out.stderr);
    }
}

#[test]
fn a_symlink_in_the_target_is_never_followed_by_dot_paths_or_plain_ones() {
    for mode in MODES {
        let env = Env::new();
        let (outside, out) = outside_and_target(&env);
        craft(
            &env,
            "dots",
            vec![
                dir(b"x/.", 0o7777, 1234),
                file(b"x/./evil", 0o4755, 0, b"#!/bin/sh\n"),
                file(b"x//y", 0o4755, 0, b"y"),
                file(b"fine.txt", 0o644, 0, b"fine"),
            ],
        );
        craft(
            &env,
            "plain",
            vec![
                dir(b"x", 0o777, 1234),
                file(b"x/evil2", 0o4755, 0, b"evil2"),
                link(b"x/lnk", b"/etc"),
                file(b"fine2.txt", 0o644, 0, b"fine"),
            ],
        );
        let before = state(&outside);
        for (name, skipped) in
            [("dots", &["x/.", "x/./evil", "x//y"][..]), ("plain", &["x", "x/evil2", "x/lnk"])]
        {
            let res = run_extract(&env, mode, &[name, "-C", "out"]);
            let changed = state(&outside) != before;
            assert!(!changed, "{mode:?} {name}: something outside the target changed:\n{}", res.stderr);
            assert_skipped(&res, skipped);
            assert!(fs::symlink_metadata(out.join("x")).unwrap().is_symlink(), "the symlink was replaced");
        }
        assert_eq!(fs::read(out.join("fine.txt")).unwrap(), b"fine");
        assert_eq!(entries_below(&out), ["fine.txt", "fine2.txt", "x"]);
    }
}

#[test]
fn overwrite_replaces_a_symlink_where_a_file_goes_but_never_one_on_the_path() {
    for mode in MODES {
        let env = Env::new();
        let (outside, out) = outside_and_target(&env);
        write(&outside.join("other"), b"also precious");
        symlink(outside.join("other"), &out.join("fine.txt"));
        craft(
            &env,
            "evil",
            vec![
                file(b"fine.txt", 0o644, 0, b"fine"),
                dir(b"x/.", 0o7777, 1234),
                file(b"x/./victim", 0o644, 0, b"replaced"),
                file(b"x/victim", 0o644, 0, b"replaced"),
                file(b"x/new", 0o644, 0, b"new"),
            ],
        );
        let before = state(&outside);
        let res = run_extract(&env, mode, &["evil", "-C", "out", "--overwrite"]);
        assert_eq!(
            state(&outside),
            before,
            "{mode:?}: something outside the target changed:\n{}",
            res.stderr
        );
        assert_skipped(&res, &["x/.", "x/./victim", "x/victim", "x/new"]);
        assert!(fs::symlink_metadata(out.join("x")).unwrap().is_symlink(), "the symlink was replaced");
        let md = fs::symlink_metadata(out.join("fine.txt")).unwrap();
        assert!(md.is_file(), "the symlink where a file goes should be replaced by the file");
        assert_eq!(fs::read(out.join("fine.txt")).unwrap(), b"fine");
    }
}

fn exchange(a: &CString, b: &CString) {
    // SAFETY: two valid NUL-terminated paths; renameat2 only reads them.
    unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
}

#[test]
fn a_directory_swapped_for_a_symlink_during_extract_gets_nothing_outside() {
    const FILES: usize = 3000;
    let env = Env::new();
    let mut nodes = vec![dir(b"d", 0o755, 0)];
    for i in 0..FILES {
        nodes.push(file(format!("d/f{i:04}").as_bytes(), 0o644, 0, &data(i as u64, 2048)));
    }
    craft(&env, "many", nodes);
    for mode in MODES {
        let outside = env.fresh_dir("outside");
        mkdir(&outside);
        let out = env.fresh_dir("out");
        mkdir(&out.join("d"));
        symlink(&outside, &out.join("s"));
        let (d, s) = (out.join("d"), out.join("s"));
        let cs = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
        let (cd, css) = (cs(&d), cs(&s));
        let mut c = env.command(["extract", "many", "-C", out.to_str().unwrap()]);
        if let Some(v) = mode {
            c.env("ARCHIVER_EXTRACT_NO_OPENAT2", v);
        }
        let child =
            c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let swapper = {
            let done = done.clone();
            std::thread::spawn(move || {
                // Start once files are being written into d, then swap d and s as fast as possible.
                let d = PathBuf::from(std::ffi::OsStr::from_bytes(cd.as_bytes()));
                let start = Instant::now();
                while !done.load(Ordering::Relaxed)
                    && fs::read_dir(&d).map(|mut r| r.next().is_none()).unwrap_or(true)
                    && start.elapsed() < Duration::from_secs(20)
                {
                    std::hint::spin_loop();
                }
                let mut swaps = 0u64;
                while !done.load(Ordering::Relaxed) {
                    exchange(&cd, &css);
                    swaps += 1;
                }
                swaps
            })
        };
        let started = Instant::now();
        let output = child.wait_with_output().unwrap();
        done.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code().unwrap_or(-1);
        let escaped = entries_below(&outside);
        assert!(
            escaped.is_empty(),
            "{mode:?}: {} files written outside the target: {:?}",
            escaped.len(),
            &escaped[..escaped.len().min(5)]
        );
        assert!(code == 0 || code == 3, "{mode:?}: exit {code}: {stderr}");
        assert!(took < Duration::from_secs(60), "{mode:?}: extract took {took:?}");
        // Whichever name holds the real directory now, what is in it is exact; what is missing
        // was skipped with a warning.
        let real = if fs::symlink_metadata(&d).unwrap().is_dir() { &d } else { &s };
        let mut restored = 0;
        for ent in fs::read_dir(real).unwrap() {
            let ent = ent.unwrap();
            let name = ent.file_name().into_string().unwrap();
            let i: u64 = name[1..].parse().unwrap();
            assert_eq!(fs::read(ent.path()).unwrap(), data(i, 2048), "{name}");
            restored += 1;
        }
        let skipped = stderr.lines().filter(|l| l.contains("warning: skipped d/")).count();
        assert_eq!(restored + skipped, FILES, "{mode:?}: restored {restored}, skipped {skipped}:\n{stderr}");
        eprintln!("{mode:?}: {swaps} swaps in {took:?}; {restored} restored, {skipped} skipped");
    }
}

/// Opens `path` (components joined by `/`, possibly longer than PATH_MAX) one component at a time.
fn open_deep(root: &Path, comps: &[String]) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let open = |at: i32, name: &str, flags: i32| {
        let c = CString::new(name).unwrap();
        // SAFETY: a valid NUL-terminated name; the result is checked before use.
        let fd = unsafe { libc::openat(at, c.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
        assert!(fd >= 0, "open {name}: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let mut fd = open(libc::AT_FDCWD, root.to_str().unwrap(), libc::O_RDONLY | libc::O_DIRECTORY);
    for c in comps {
        fd = open(fd.as_raw_fd(), c, libc::O_RDONLY);
    }
    fd
}

#[test]
fn a_tree_1000_deep_beyond_path_max_restores_with_1024_descriptors() {
    const DEPTH: usize = 1000;
    let env = Env::new();
    let comps: Vec<String> = (0..DEPTH).map(|i| format!("d{i:04}")).collect();
    let mut nodes = Vec::new();
    for i in 1..=DEPTH {
        nodes.push(dir(comps[..i].join("/").as_bytes(), 0o750, 0));
    }
    let bottom = format!("{}/deep.txt", comps.join("/"));
    assert!(bottom.len() > 4096, "the deepest path should exceed PATH_MAX");
    nodes.push(file(bottom.as_bytes(), 0o640, 0, b"at the bottom"));
    craft(&env, "deep", nodes);
    for mode in MODES {
        let out = env.fresh_dir("out");
        let mut c = env.command(["extract", "deep", "-C", out.to_str().unwrap()]);
        if let Some(v) = mode {
            c.env("ARCHIVER_EXTRACT_NO_OPENAT2", v);
        }
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child before exec.
        unsafe {
            c.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{mode:?}: {}", String::from_utf8_lossy(&o.stderr));
        let mut all = comps.clone();
        all.push("deep.txt".into());
        let fd = open_deep(&out, &all);
        let mut content = String::new();
        std::io::Read::read_to_string(&mut fs::File::from(fd), &mut content).unwrap();
        assert_eq!(content, "at the bottom");
        for depth in [1, DEPTH / 2, DEPTH] {
            let f = fs::File::from(open_deep(&out, &comps[..depth]));
            let md = f.metadata().unwrap();
            assert_eq!(
                (md.mode() & 0o7777, md.mtime(), md.mtime_nsec()),
                (0o750, 1_234_567_890, 5),
                "depth {depth}"
            );
        }
    }
}

#[test]
fn bad_stored_paths_are_skipped_with_a_warning_and_the_rest_restored() {
    for mode in MODES {
        let env = Env::new();
        craft(
            &env,
            "bad",
            vec![
                file(b"a.txt", 0o644, 0, b"A"),
                file(b"", 0o644, 0, b"empty"),
                file(b"nul\0name", 0o644, 0, b"N"),
                file(b"dup", 0o644, 0, b"first"),
                file(b"dup", 0o600, 0, b"second"),
                dir(b"d", 0o755, 0),
                file(b"d/b.txt", 0o644, 0, b"B"),
                file(b"/abs", 0o644, 0, b"abs"),
                file(b"../up", 0o644, 0, b"up"),
                file(b"d/../x", 0o644, 0, b"x"),
                file(b"d/", 0o644, 0, b"slash"),
                file(b"a.txt/c", 0o644, 0, b"under a file"),
                file(b".", 0o644, 0, b"the target itself"),
                file(b"new\nline", 0o644, 0, b"fine"),
            ],
        );
        let out = env.fresh_dir("out");
        let res = run_extract(&env, mode, &["bad", "-C", out.to_str().unwrap()]);
        assert_skipped(
            &res,
            &["an entry", "nul\\x00name", "dup", "/abs", "../up", "d/../x", "d/", "a.txt/c", "."],
        );
        assert_eq!(res.stderr.matches("skipped dup:").count(), 1, "{}", res.stderr);
        assert_eq!(entries_below(&out), ["a.txt", "d", "d/b.txt", "dup", "new\nline"]);
        assert_eq!(fs::read(out.join("dup")).unwrap(), b"first");
        assert_eq!(fs::read(out.join("d/b.txt")).unwrap(), b"B");
    }
}

/// Runs `cmd` as uid and gid 65534 (nobody).
fn as_nobody(cmd: &mut std::process::Command) {
    // SAFETY: setgroups, setgid and setuid are async-signal-safe; nothing else runs before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn owners_and_setuid_setgid_bits_are_restored_only_as_root() {
    if !is_root() {
        return unavailable("needs root to compare with an extract as another user");
    }
    let env = Env::new();
    craft(
        &env,
        "modes",
        vec![
            dir(b"d", 0o3775, 1234),
            file(b"d/su", 0o4755, 1234, b"su"),
            file(b"d/sg", 0o2750, 1234, b"sg"),
            file(b"d/plain", 0o640, 1234, b"plain"),
        ],
    );
    let mode_owner = |p: &Path| {
        let md = fs::symlink_metadata(p).unwrap();
        (md.mode() & 0o7777, md.uid(), md.gid())
    };
    let out = env.extract("modes", &[]);
    let want = [("d", 0o3775), ("d/su", 0o4755), ("d/sg", 0o2750), ("d/plain", 0o640)];
    for (p, mode) in want {
        assert_eq!(mode_owner(&out.join(p)), (mode, 1234, 1234), "{p} as root");
    }
    // As another user: no owner, no setuid/setgid bits, no warning; the sticky bit stays.
    let status = std::process::Command::new("chown").arg("-R").arg("65534:65534").arg(&env.root).status();
    assert!(status.unwrap().success());
    let out = env.fresh_dir("out");
    let mut c = env.command(["extract", "modes", "-C", out.to_str().unwrap()]);
    as_nobody(&mut c);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "no warning expected");
    let want = [("d", 0o1775), ("d/su", 0o755), ("d/sg", 0o750), ("d/plain", 0o640)];
    for (p, mode) in want {
        assert_eq!(mode_owner(&out.join(p)), (mode, 65534, 65534), "{p} as nobody");
    }
}
