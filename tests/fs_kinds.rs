//! Everything a file system holds comes back (issue 17): hard links, extended attributes, POSIX
//! ACLs (access and default), FIFOs and, as root, device nodes, judged after a round trip by an
//! independent oracle, `rsync -naHAXS --checksum -i` (no line of output: nothing differs), as
//! root and as an unprivileged user (`setpriv`, what a normal user gets: FIFOs yes, devices
//! skipped with a warning). Sockets are skipped with a notice, as bsdtar does. A hard link whose
//! file is not selected comes back as a copy; an attribute the file system refuses is a warning
//! naming the file; `--no-xattrs` and `--no-acls` leave them out.

mod util;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use util::oracle;
use util::oracle::{require_tools, sh};
use util::*;

/// The tree with every kind: returns whether device nodes are in it (root only).
fn build(root: &Path) -> bool {
    let d = root.join("d");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    write_data(&d.join("a"), 1, 300_000);
    std::fs::hard_link(d.join("a"), d.join("a-link")).unwrap();
    std::fs::hard_link(d.join("a"), d.join("sub/a-too")).unwrap();
    write_data(&d.join("sub/b"), 2, 1000);
    let (a, sub, b) = (d.join("a"), d.join("sub"), d.join("sub/b"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    sh("setfattr", &["-n", "user.comment", "-v", "hello", &s(&a)]);
    sh("setfattr", &["-n", "user.empty", &s(&b)]);
    sh("setfattr", &["-n", "user.dir", "-v", "0x00ff10", &s(&sub)]);
    sh("setfacl", &["-m", "u:65534:r,g:65534:rw", &s(&b)]);
    sh("setfacl", &["-d", "-m", "u:65534:rx", &s(&sub)]);
    sh("setfacl", &["-m", "u:65534:rwx", &s(&sub)]);
    sh("mkfifo", &["-m", "0640", &s(&d.join("fifo"))]);
    let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    if is_root() {
        sh("mknod", &["-m", "0620", &s(&d.join("null")), "c", "1", "3"]);
        sh("mknod", &[&s(&d.join("loop9")), "b", "7", "9"]);
    }
    is_root()
}

/// What rsync finds different between `a` and `b` (the socket left out: it is not archived).
fn rsync_diff(a: &Path, b: &Path, extra: &[&str]) -> String {
    oracle::rsync_diff(a, b, &[&["--exclude=/d/sock"], extra].concat())
}

#[test]
fn every_kind_comes_back_as_rsync_judges_it() {
    if !require_tools() {
        return;
    }
    if !is_root() {
        return unavailable("device nodes and the trusted namespace need root");
    }
    let env = Env::new();
    let src = env.path("src");
    build(&src);
    let out = env.ok(["create", "all", "src"]);
    assert!(out.stderr.contains("skipped") && out.stderr.contains("sock"), "{}", out.stderr);
    let ls = env.ok(["ls", "-v", "all"]).stdout;
    assert!(ls.contains("src/d/a-link link to src/d/a"), "{ls}");
    assert!(ls.lines().any(|l| l.starts_with('p') && l.ends_with("src/d/fifo")), "{ls}");
    assert!(
        ls.lines().any(|l| l.starts_with('c') && l.contains(" 1,3 ") && l.ends_with("src/d/null")),
        "{ls}"
    );
    let to = env.path("out");
    let x = env.run(["extract", "-C", to.to_str().unwrap(), "all"]);
    assert_eq!(x.code, 0, "{}", x.stderr);
    let diff = rsync_diff(&src, &to.join("src"), &[]);
    assert!(diff.is_empty(), "rsync finds differences:\n{diff}");
    let (a, l) = (
        std::fs::metadata(to.join("src/d/a")).unwrap(),
        std::fs::metadata(to.join("src/d/sub/a-too")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (l.ino(), 3), "one file with three names");
    // Unchanged, the tree stores the same metadata again (hard links and attributes included).
    let again = env.ok(["create", "--print-stats", "again", "src"]);
    assert!(again.stderr.contains("skipped"), "{}", again.stderr);
}

#[test]
fn a_normal_user_gets_fifos_attributes_and_acls_and_a_warning_per_device() {
    if !require_tools() {
        return;
    }
    if !is_root() {
        return unavailable("switching to an unprivileged user (setpriv) needs root");
    }
    // The device nodes are made as root and stored as root; a normal user extracts.
    let env = Env::new();
    let src = env.path("src");
    build(&src);
    env.ok(["create", "all", "src"]);
    let to = env.path("out");
    std::fs::create_dir(&to).unwrap();
    for p in [env.repo.clone(), env.cache.clone(), to.clone(), env.key.clone()] {
        sh("chown", &["-R", "65534:65534", p.to_str().unwrap()]);
    }
    sh("chmod", &["755", env.root.to_str().unwrap()]);
    let mut c = env.command(["extract", "-C", to.to_str().unwrap(), "all"]);
    let program = c.get_program().to_os_string();
    let mut user = Command::new("setpriv");
    user.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(program).args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => user.env(k, v),
            None => user.env_remove(k),
        };
    }
    user.current_dir(&to);
    c = user;
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "devices skipped: exit code 3\n{stderr}");
    for dev in ["null", "loop9"] {
        assert!(stderr.contains(&format!("skipped src/d/{dev}: it is a")), "{stderr}");
        assert!(!to.join("src/d").join(dev).exists());
    }
    std::fs::remove_file(src.join("d/null")).unwrap();
    std::fs::remove_file(src.join("d/loop9")).unwrap();
    // Owners are a normal user's own; everything else as stored (rsync without -o/-g).
    let diff = rsync_diff(&src, &to.join("src"), &["--no-o", "--no-g"]);
    assert!(diff.is_empty(), "rsync finds differences:\n{diff}");
}

#[test]
fn a_link_alone_is_a_copy_and_attributes_can_be_left_out() {
    if !require_tools() {
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    build(&src);
    env.ok(["create", "all", "src"]);
    env.ok(["create", "--no-xattrs", "no-x", "src"]);
    env.ok(["create", "--no-acls", "no-acl", "src"]);
    // Only the link: its file is not selected, so it comes back as a copy of it.
    let one = env.path("one");
    env.ok(["extract", "-C", one.to_str().unwrap(), "all", "src/d/a-link"]);
    assert_eq!(hash_file(&one.join("src/d/a-link")), hash_file(&src.join("d/a")));
    let xattrs = |p: &Path| {
        archiver::fsmeta::xattrs(p, Default::default())
            .unwrap()
            .into_iter()
            .map(|(n, _)| String::from_utf8(n).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(xattrs(&one.join("src/d/a-link")), vec!["user.comment"]);
    for (name, gone, kept) in
        [("no-x", "user.comment", None), ("no-acl", "system.posix_acl_access", Some("user.empty"))]
    {
        let to = env.path(name);
        env.ok(["extract", "-C", to.to_str().unwrap(), name]);
        let b = xattrs(&to.join("src/d/sub/b"));
        assert!(!b.iter().any(|n| n == gone), "{name}: {b:?}");
        if let Some(k) = kept {
            assert!(b.iter().any(|n| n == k), "{name}: {b:?}");
        }
    }
}

#[test]
fn an_attribute_the_file_system_refuses_is_a_warning_naming_the_file() {
    if !is_root() {
        // Without root, extract restores only user.* attributes and ACLs (as rsync does).
        return unavailable("restoring an attribute outside the user namespace needs root");
    }
    let env = Env::new();
    let mut node = util::craft::node(b"f".to_vec(), archiver::archive::NodeKind::File);
    node.xattrs = vec![(b"bogus.x".to_vec(), b"1".to_vec()), (b"user.ok".to_vec(), b"2".to_vec())];
    let mut w = archiver::codec::Writer::new();
    node.encode(&mut w);
    util::craft::commit_archive(&env, "crafted", &[w.finish()], vec![0], Default::default());
    let to = env.path("out");
    let out = env.run(["extract", "-C", to.to_str().unwrap(), "crafted"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    out.assert_stderr_contains("f: cannot restore its extended attribute(s) bogus.x");
    assert!(to.join("f").is_file());
}

/// The issue's measure: a 10 GiB file holding 1 MiB of data (16 pieces of 64 KiB): create reads
/// at most 2 MiB of it (`rchar`, beyond what archiving an empty file reads), the repository
/// grows by at most 2 MiB, and the restored file allocates at most 2 MiB.
#[test]
fn a_sparse_file_is_read_stored_and_restored_by_its_data_alone() {
    use std::io::{Seek, SeekFrom, Write};
    let env = Env::new();
    let (src, empty) = (env.path("src"), env.path("empty"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&empty).unwrap();
    std::fs::File::create(empty.join("sparse")).unwrap();
    let mut f = std::fs::File::create(src.join("sparse")).unwrap();
    for i in 0..16u64 {
        f.seek(SeekFrom::Start(i * (640 << 20) + 12_345)).unwrap();
        f.write_all(&data(i, 64 << 10)).unwrap();
    }
    f.set_len(10 << 30).unwrap();
    drop(f);
    let (out, _, base) = util::mem::run_measured_io(&env, &["create", "e", "empty"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before = dir_size(&env.repo);
    let (out, _, read) = util::mem::run_measured_io(&env, &["create", "s", "src"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(read.saturating_sub(base) <= 2 << 20, "create read {read} bytes, {base} for an empty file");
    let grown = dir_size(&env.repo) - before;
    assert!(grown <= 2 << 20, "the repository grew by {grown} bytes");
    let to = env.path("out");
    env.ok(["extract", "-C", to.to_str().unwrap(), "s"]);
    let (a, b) = (src.join("sparse"), to.join("src/sparse"));
    let md = std::fs::metadata(&b).unwrap();
    assert_eq!(md.len(), 10 << 30);
    assert!(md.blocks() * 512 <= 2 << 20, "restored with {} bytes allocated", md.blocks() * 512);
    // Outside the data extents of both files, both read as zeros: compare within them (reading
    // 20 GiB of holes through rsync would take minutes).
    for (from, to) in extents(&a).into_iter().chain(extents(&b)) {
        let read = |p: &Path| {
            let mut v = vec![0u8; (to - from) as usize];
            std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(p).unwrap(), &mut v, from)
                .unwrap();
            v
        };
        assert!(read(&a) == read(&b), "the files differ in bytes {from}..{to}");
    }
}

/// The data extents of a file, as the file system reports them (SEEK_DATA, SEEK_HOLE).
fn extents(p: &Path) -> Vec<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(p).unwrap();
    let (mut out, mut at) = (Vec::new(), 0i64);
    loop {
        // SAFETY: a valid descriptor; lseek moves only its offset.
        let data = unsafe { libc::lseek(f.as_raw_fd(), at, libc::SEEK_DATA) };
        if data < 0 {
            return out; // ENXIO: no data beyond `at`
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), data, libc::SEEK_HOLE) };
        out.push((data as u64, hole as u64));
        at = hole;
    }
}

/// The id a user or group name has on this system (`getent`), if any.
fn id_of(db: &str, name: &str) -> Option<u32> {
    let out = Command::new("getent").args([db, name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).split(':').nth(2)?.trim().parse().ok()
}

#[test]
fn owners_are_stored_by_name_and_restored_by_name_unless_numeric_owner() {
    if !is_root() {
        return unavailable("restoring owners needs root");
    }
    let (nobody, nogroup) = (id_of("passwd", "nobody").unwrap(), id_of("group", "nogroup").unwrap());
    let env = Env::new();
    // Created here: stored with the names this system gives their ids, or by id alone.
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    write_data(&src.join("theirs"), 1, 10);
    std::os::unix::fs::chown(src.join("theirs"), Some(nobody), Some(nogroup)).unwrap();
    write_data(&src.join("nameless"), 2, 10);
    std::os::unix::fs::chown(src.join("nameless"), Some(3_999_999_001), Some(3_999_999_002)).unwrap();
    env.ok(["create", "named", "src"]);
    env.ok(["create", "--numeric-owner", "numeric", "src"]);
    let line = |archive: &str, path: &str| {
        let ls = env.ok(["ls", "-v", archive]).stdout;
        ls.lines()
            .find(|l| l.ends_with(path))
            .unwrap()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(line("named", "src/theirs").ends_with(" nobody nogroup"), "{}", line("named", "src/theirs"));
    assert!(line("named", "src/nameless").ends_with(" 3999999001 3999999002"));
    assert!(line("numeric", "src/theirs").ends_with(&format!(" {nobody} {nogroup}")));
    let json = env.ok(["--json", "ls", "named"]).stdout;
    assert!(json.contains(r#""user":"nobody","group":"nogroup""#), "{json}");

    // Written elsewhere: a name known here wins over the stored id, unless --numeric-owner; an
    // unknown name, or none, keeps the stored id.
    let file = |path: &str, uname: &str, gname: &str, ids: u32| {
        let mut n = util::craft::node(path.as_bytes().to_vec(), archiver::archive::NodeKind::File);
        (n.uid, n.gid, n.uname, n.gname) = (ids, ids + 1, uname.into(), gname.into());
        n
    };
    let mut w = archiver::codec::Writer::new();
    file("by-name", "nobody", "nogroup", 1234).encode(&mut w);
    file("unknown", "no-such-user-archiver", "no-such-group-archiver", 4321).encode(&mut w);
    file("ids-only", "", "", 777).encode(&mut w);
    util::craft::commit_archive(&env, "elsewhere", &[w.finish()], vec![0], Default::default());
    for (numeric, by_name) in [(false, (nobody, nogroup)), (true, (1234, 1235))] {
        let to = env.path(format!("out-{numeric}"));
        let mut args = vec!["extract", "-C", to.to_str().unwrap(), "elsewhere"];
        if numeric {
            args.insert(1, "--numeric-owner");
        }
        env.ok(args);
        let ids = |p: &str| {
            let md = std::fs::symlink_metadata(to.join(p)).unwrap();
            (md.uid(), md.gid())
        };
        assert_eq!(ids("by-name"), by_name, "--numeric-owner: {numeric}");
        assert_eq!(ids("unknown"), (4321, 4322));
        assert_eq!(ids("ids-only"), (777, 778));
    }
}
