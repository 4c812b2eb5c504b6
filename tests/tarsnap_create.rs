//! More of archiver as tarsnap (docs/TARSNAP.md): how `-c` ends when stopped (`--maxbw`), the
//! repair modes and `--nuke`, a libarchive pax stream's extended attributes through `@FILE`, `-L`
//! and its loops, and synthetic file systems left unentered, each through a `tarsnap` symlink.

mod util;

use std::process::{Command, Stdio};
use util::tarsnap::*;
use util::*;

#[test]
fn maxbw_and_the_repair_modes_end_as_tarsnap_does() {
    let env = Env::new();
    tree(&env);
    // --maxbw: the archive is truncated as NAME.part, with tarsnap's lines and exit 2.
    let out = ts(&env, &["-c", "--maxbw", "1M", "--checkpoint-bytes", "1M", "-f", "cut", "data"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "tarsnap: quit signal received or bandwidth limit reached; archive is being truncated\ntarsnap: Archive truncated\ntarsnap: Error exit delayed from previous errors.\ntarsnap: Data on server was modified, but it might notbe exactly what you requested\n"
    );
    assert_eq!(ts_ok(&env, &["--list-archives"]).stdout, "cut.part\n");
    // --recover, --fsck and --fsck-prune print nothing on a sound repository.
    for mode in ["--recover", "--fsck", "--fsck-prune"] {
        ts_ok(&env, &[mode]);
    }
    // --nuke: anything but `No Tomorrow` changes nothing; with it, every archive goes.
    let nuke = |answer: &str| {
        let mut c = command(&env, "tarsnap", &["--nuke"]);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        out_of(child.wait_with_output().unwrap())
    };
    let out = nuke("no tomorrow\n");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Please type 'No Tomorrow' to continue\ntarsnap: You didn't type 'No Tomorrow'\ntarsnap: Error exit delayed from previous errors.\n"
    );
    assert_eq!(ts_ok(&env, &["--list-archives"]).stdout, "cut.part\n");
    let out = nuke("No Tomorrow\n");
    assert_eq!((out.code, out.stderr.as_str()), (0, "Please type 'No Tomorrow' to continue\n"));
    assert_eq!(ts_ok(&env, &["--list-archives"]).stdout, "");
}

#[test]
fn a_libarchive_pax_stream_keeps_extended_attributes() {
    // tarsnap -r writes through libarchive, as bsdtar does: LIBARCHIVE.xattr records.
    let env = Env::new();
    let d = env.path("x");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("f"), b"content\n").unwrap();
    let set = Command::new("setfattr")
        .args(["-n", "user.note", "-v", "0sAP8=", d.join("f").to_str().unwrap()])
        .status();
    assert!(set.unwrap().success(), "setfattr (package attr) is needed; .ci/run installs it");
    let tar = env.path("x.tar");
    let made = Command::new("bsdtar")
        .args(["--format", "pax", "--xattrs", "-cf"])
        .arg(&tar)
        .arg("x")
        .current_dir(&env.root)
        .status();
    assert!(made.unwrap().success(), "bsdtar (package libarchive-tools) is needed; .ci/run installs it");
    let text = std::fs::read(&tar).unwrap();
    assert!(text.windows(17).any(|w| w == b"LIBARCHIVE.xattr."), "bsdtar wrote no LIBARCHIVE.xattr record");
    ts_ok(&env, &["-c", "-f", "migrated", &format!("@{}", tar.display())]);
    let dir = env.fresh_dir("out");
    std::fs::create_dir_all(&dir).unwrap();
    ts_ok(&env, &["-x", "-C", dir.to_str().unwrap(), "-f", "migrated"]);
    let got = Command::new("getfattr")
        .args(["--only-values", "-n", "user.note"])
        .arg(dir.join("x/f"))
        .output()
        .unwrap();
    assert_eq!(got.stdout, b"\x00\xff", "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(std::fs::read(dir.join("x/f")).unwrap(), b"content\n");

    // bsdtar also wrote SCHILY.xattr; a stream with the LIBARCHIVE form alone (URL-encoded name,
    // base64 value without padding) must give the same attribute.
    let mut b = tar::Builder::new(Vec::new());
    let record = b"36 LIBARCHIVE.xattr.user.n%6Fte=AP8\n";
    let mut pax = tar::Header::new_ustar();
    pax.set_entry_type(tar::EntryType::XHeader);
    pax.set_path("PaxHeader/f").unwrap();
    pax.set_size(record.len() as u64);
    pax.set_mode(0o644);
    pax.set_uid(0);
    pax.set_gid(0);
    pax.set_mtime(0);
    pax.set_cksum();
    b.append(&pax, &record[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("y/f").unwrap();
    h.set_size(8);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    b.append(&h, &b"content\n"[..]).unwrap();
    let only = env.path("only.tar");
    std::fs::write(&only, b.into_inner().unwrap()).unwrap();
    ts_ok(&env, &["-c", "-f", "libarchive-only", &format!("@{}", only.display())]);
    ts_ok(&env, &["-x", "-C", dir.to_str().unwrap(), "-f", "libarchive-only"]);
    let got = Command::new("getfattr")
        .args(["--only-values", "-n", "user.note"])
        .arg(dir.join("y/f"))
        .output()
        .unwrap();
    assert_eq!(got.stdout, b"\x00\xff", "{}", String::from_utf8_lossy(&got.stderr));
}

#[test]
fn dash_l_stores_what_symlinks_point_to_and_stops_at_loops() {
    let env = Env::new();
    let (d, outside) = (env.path("d"), env.path("outside"));
    std::fs::create_dir_all(outside.join("inner")).unwrap();
    std::fs::write(outside.join("inner/f"), b"pointed to\n").unwrap();
    std::fs::create_dir_all(&d).unwrap();
    std::os::unix::fs::symlink(&outside, d.join("dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("inner/f"), d.join("file")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", d.join("dangling")).unwrap();
    std::os::unix::fs::symlink("..", outside.join("inner/up")).unwrap();
    // Without -L the links are links.
    ts_ok(&env, &["-c", "-f", "links", "d"]);
    let listing = ts_ok(&env, &["-tv", "-f", "links"]).stdout;
    assert!(listing.contains("d/dir -> ") && listing.contains("d/file -> "), "{listing}");
    // With -L: a directory and a file in their place; the dangling link stays a link; the loop
    // back up is stored empty with a warning (and tarsnap's error exit after the commit).
    let out = ts(&env, &["-c", "-L", "-f", "followed", "d"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("a symlink loop"), "{}", out.stderr);
    let names = ts_ok(&env, &["-t", "-f", "followed"]).stdout;
    for want in ["d/dir\n", "d/dir/inner/f\n", "d/file\n", "d/dangling\n", "d/dir/inner/up\n"] {
        assert!(names.contains(want), "{want:?} missing from {names:?}");
    }
    assert!(!names.contains("d/dir/inner/up/"), "the loop was followed: {names}");
    let dir = env.fresh_dir("x");
    std::fs::create_dir_all(&dir).unwrap();
    ts(&env, &["-x", "-C", dir.to_str().unwrap(), "-f", "followed"]);
    assert_eq!(std::fs::read(dir.join("d/file")).unwrap(), b"pointed to\n");
    assert!(std::fs::symlink_metadata(dir.join("d/dir")).unwrap().is_dir());
    assert!(std::fs::symlink_metadata(dir.join("d/dangling")).unwrap().file_type().is_symlink());
    // -L is for -c only, as in tarsnap.
    let out = ts(&env, &["-x", "-L", "-f", "followed"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, "tarsnap: Option -L is not permitted in mode -x\n"));
}

#[test]
fn synthetic_file_systems_are_not_entered() {
    // As tarsnap: a directory on proc, sysfs, devpts (...) met below an operand is stored but not
    // entered, with tarsnap's line and no error. Reached here through -L and a link to /proc.
    let env = Env::new();
    let d = env.path("d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("f"), b"x").unwrap();
    std::os::unix::fs::symlink("/proc", d.join("p")).unwrap();
    let out = ts(&env, &["-c", "-L", "-f", "x", "d"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, "tarsnap: Not descending into filesystem of type proc: d/p\n")
    );
    assert_eq!(ts_ok(&env, &["-t", "-f", "x"]).stdout, "d\nd/f\nd/p\n");
    // --quiet: the same, silently.
    let out = ts(&env, &["-c", "-L", "--quiet", "-f", "y", "d"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
}
