//! `extract` into a directory that already holds files: without a flag it refuses before writing
//! anything; `--overwrite` replaces (never writing through a symlink); `--resume` keeps only what
//! verifies against the archive, block by block, and fetches the rest. Real `kill -9` of extract
//! at deterministic moments spread over one uninterrupted run (24 runs here, 200 in an ignored
//! test), each followed by `--resume`: the tree must be exact and the data fetched bounded by what
//! the killed run had not written (plus one block per file in flight). Tampered files (same size
//! and mtime) are repaired, truncated ones finished, long ones cut. A real disk-full extract (a
//! small tmpfs; only when run as root with mount rights) fails with one line and resume finishes it.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use util::*;

/// The chunker's largest block.
const MAX_BLOCK: u64 = 4 * MIB;

/// The tests time kills and measure reads: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `len` random (incompressible) bytes at `path`, deterministic per seed.
fn write_random(path: &Path, seed: u64, len: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let (mut rng, mut buf, mut left) = (Rng::new(seed), vec![0u8; MIB as usize], len);
    while left > 0 {
        let n = left.min(MIB) as usize;
        for w in buf[..n].chunks_mut(8) {
            w.copy_from_slice(&rng.next().to_le_bytes()[..w.len()]);
        }
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

/// `data/`: large random files (sizes in MiB, plus an odd tail), `small` small files, a symlink,
/// a read-only file and a private directory; every entry with its own nanosecond mtime.
fn data_tree(root: &Path, large: &[u64], small: usize) {
    for (i, mib) in large.iter().enumerate() {
        write_random(&root.join(format!("large/f{i}.bin")), 100 + i as u64, mib * MIB + 1234 * i as u64);
    }
    small_tree(&root.join("small"), 7, small, 40_000);
    write(&root.join("small/empty"), b"");
    write(&root.join("private/ro.txt"), b"read only");
    chmod(&root.join("private/ro.txt"), 0o444);
    chmod(&root.join("private"), 0o700);
    symlink("../large/f0.bin", &root.join("small/link"));
    stamp_mtimes(root, 11);
}

/// The numbers of a `--print-stats` line:
/// `restored F files, B bytes (H); C already complete; fetched N blocks, P bytes (H), S bytes stored (H)`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stats {
    restored: u64,
    restored_bytes: u64,
    complete: u64,
    blocks: u64,
    fetched: u64,
    stored: u64,
}

fn stats(out: &Out) -> Stats {
    let line = out.stderr.lines().find(|l| l.starts_with("restored ")).expect("no --print-stats line");
    let mut plain = String::new();
    let mut depth = 0;
    for c in line.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let n: Vec<u64> = plain.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    assert_eq!(n.len(), 6, "unexpected stats line: {line}");
    Stats { restored: n[0], restored_bytes: n[1], complete: n[2], blocks: n[3], fetched: n[4], stored: n[5] }
}

fn extract(env: &Env, dir: &Path, flags: &[&str]) -> Out {
    let mut args = vec!["extract", "x", "-C", dir.to_str().unwrap()];
    args.extend_from_slice(flags);
    env.run(args)
}

/// `extract --resume --print-stats`, which must succeed; its stats.
fn resume(env: &Env, dir: &Path) -> Stats {
    let out = extract(env, dir, &["--resume", "--print-stats"]);
    out.assert_no_panic();
    assert_eq!(out.code, 0, "resume failed:\n{}", out.stderr);
    stats(&out)
}

/// Files (path relative to the tree, size) of a snapshot.
fn files(snap: &BTreeMap<PathBuf, Meta>) -> Vec<(PathBuf, u64)> {
    snap.iter().filter(|(_, m)| m.kind == 'f').map(|(p, m)| (p.clone(), m.size)).collect()
}

fn setup(large: &[u64], small: usize) -> Env {
    let env = Env::new();
    data_tree(&env.path("data"), large, small);
    env.create("x", &["data"]);
    env
}

#[test]
fn existing_files_are_refused_without_a_flag_and_replaced_with_overwrite() {
    let _s = serial();
    let env = setup(&[6], 20);
    let src = env.path("data");
    let n_files = files(&snapshot(&src)).len() as u64;
    let n_entries = snapshot(&src).values().filter(|m| m.kind != 'd').count(); // files and the symlink
                                                                               // Into a directory holding other things: merged, the others untouched.
    let out = env.path("out");
    write(&out.join("unrelated/keep.txt"), b"mine");
    let first = extract(&env, &out, &["--print-stats"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(stats(&first), Stats { restored: n_files, complete: 0, ..stats(&first) });
    assert_same_tree(&src, &out.join("data"));
    assert_eq!(fs::read(out.join("unrelated/keep.txt")).unwrap(), b"mine");

    // Again without a flag: refused before anything is written.
    let before = snapshot(&out);
    let again = extract(&env, &out, &[]);
    again.assert_one_line_error(1);
    for s in [
        &format!("{n_entries} files to restore already exist under"),
        "(first: data/",
        "--resume",
        "--overwrite",
    ] {
        again.assert_stderr_contains(s);
    }
    assert_eq!(snapshot(&out), before, "a refused extract changed the tree");

    // --overwrite replaces files modified locally, and a symlink where a file goes is replaced,
    // never written through.
    fs::write(out.join("data/large/f0.bin"), b"modified").unwrap();
    write(&out.join("data/small/d0/f000.bin"), b"changed too");
    write(&env.path("victim"), b"outside");
    fs::remove_file(out.join("data/private/ro.txt")).unwrap();
    symlink(env.path("victim"), &out.join("data/private/ro.txt"));
    let over = extract(&env, &out, &["--overwrite", "--print-stats"]);
    assert_eq!(over.code, 0, "{}", over.stderr);
    assert_eq!(stats(&over).restored, n_files);
    assert_same_tree(&src, &out.join("data"));
    assert_eq!(fs::read(env.path("victim")).unwrap(), b"outside", "wrote through a symlink");

    // A directory where a file goes: an error naming it, before anything is written.
    fs::remove_file(out.join("data/small/empty")).unwrap();
    mkdir(&out.join("data/small/empty"));
    fs::write(out.join("data/large/f0.bin"), b"modified again").unwrap();
    let before = snapshot(&out);
    for flag in ["--overwrite", "--resume"] {
        let e = extract(&env, &out, &[flag]);
        e.assert_one_line_error(1).assert_stderr_contains("data/small/empty");
        assert_eq!(snapshot(&out), before, "{flag}: a refused extract changed the tree");
    }
    // A file where a directory goes: refused without a flag, replaced with one.
    fs::remove_dir(out.join("data/small/empty")).unwrap();
    fs::remove_dir_all(out.join("data/private")).unwrap();
    write(&out.join("data/private"), b"a file in the way");
    extract(&env, &out, &[]).assert_one_line_error(1).assert_stderr_contains("already exist");
    assert_eq!(extract(&env, &out, &["--overwrite"]).code, 0);
    assert_same_tree(&src, &out.join("data"));
}

#[test]
fn resume_repairs_tampered_files_without_trusting_sizes_or_mtimes() {
    let _s = serial();
    let env = setup(&[12, 9, 5], 12);
    let src = env.path("data");
    let snap = snapshot(&src);
    let n_files = files(&snap).len() as u64;
    let out = env.fresh_dir("out");
    assert_eq!(extract(&env, &out, &[]).code, 0);
    let t = |rel: &str| out.join("data").join(rel);
    let restore_mtime = |rel: &str| {
        let m = &snap[Path::new(rel)];
        set_mtime(&t(rel), m.mtime.0, m.mtime.1 as u32);
    };

    // One byte changed in the middle, size and mtime as restored: exactly one block is fetched.
    flip_bit(&t("large/f0.bin"), 6 * MIB + 17);
    restore_mtime("large/f0.bin");
    let s = resume(&env, &out);
    assert_same_tree(&src, &out.join("data"));
    assert_eq!((s.restored, s.complete, s.blocks), (1, n_files - 1, 1), "{s:?}");
    assert!(s.fetched <= MAX_BLOCK && s.stored > 0, "{s:?}");

    // Cut short, too long, attributes never set, a symlink pointing elsewhere.
    let cut = 3 * MIB + 123;
    truncate(&t("large/f1.bin"), cut);
    let mut f = fs::OpenOptions::new().append(true).open(t("large/f2.bin")).unwrap();
    f.write_all(&vec![7u8; MIB as usize]).unwrap();
    drop(f);
    restore_mtime("large/f2.bin");
    chmod(&t("private/ro.txt"), 0o600);
    set_mtime(&t("small/d1/f001.bin"), 5, 0);
    fs::remove_file(t("small/link")).unwrap();
    symlink("elsewhere", &t("small/link"));
    let s = resume(&env, &out);
    assert_same_tree(&src, &out.join("data"));
    let missing = snap[Path::new("large/f1.bin")].size - cut;
    assert_eq!((s.restored, s.complete), (1, n_files - 1), "{s:?}");
    assert!(s.fetched >= missing && s.fetched <= missing + MAX_BLOCK, "missing {missing}: {s:?}");
}

#[test]
fn resume_restores_everything_into_nothing_and_fetches_nothing_for_a_complete_tree() {
    let _s = serial();
    let env = setup(&[5], 30);
    let src = env.path("data");
    let fs_ = files(&snapshot(&src));
    let total: u64 = fs_.iter().map(|f| f.1).sum();
    for empty_dir_exists in [false, true] {
        let out = env.fresh_dir("out");
        if empty_dir_exists {
            mkdir(&out);
        }
        let s = resume(&env, &out);
        assert_same_tree(&src, &out.join("data"));
        let want =
            Stats { restored: fs_.len() as u64, restored_bytes: total, complete: 0, fetched: total, ..s };
        assert_eq!(s, want);
        let s = resume(&env, &out);
        assert_same_tree(&src, &out.join("data"));
        let nothing = Stats {
            restored: 0,
            restored_bytes: 0,
            complete: fs_.len() as u64,
            blocks: 0,
            fetched: 0,
            stored: 0,
        };
        assert_eq!(s, nothing);
    }
}

/// What a killed extract left, measured against the source: bytes missing (each file's size less
/// the common prefix of what was written and the source), files present but not complete (in
/// flight), and files complete (content exact; attributes may still be missing).
fn left_by_kill(src: &Path, out: &Path, files: &[(PathBuf, u64)]) -> (u64, u64, u64) {
    let (mut missing, mut in_flight, mut complete) = (0, 0, 0);
    for (rel, size) in files {
        let Ok(got) = fs::read(out.join(rel)) else {
            missing += size;
            continue;
        };
        let want = fs::read(src.join(rel)).unwrap();
        if got == want {
            complete += 1;
            continue;
        }
        let common = got.iter().zip(&want).take_while(|(a, b)| a == b).count() as u64;
        missing += size - common;
        in_flight += 1;
    }
    (missing, in_flight, complete)
}

#[derive(Debug, Default)]
struct Tally {
    /// Kills after which nothing / some files but not all / everything was in place.
    nothing: u64,
    partial: u64,
    finished: u64,
    /// Kills that left a file partly written.
    cut_inside: u64,
    fetched: u64,
    bound: u64,
    /// The largest (fetched − bytes missing) over all runs.
    worst_excess: i64,
    /// Kills that left extract's plan database behind (the next extract removes it).
    left_plan: u64,
}

/// Extract's temporary plan databases (`extract-PID-ID.sqlite`) anywhere under `dir`.
fn plan_databases(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(plan_databases(&p));
        } else if e.file_name().to_string_lossy().starts_with("extract-") {
            found.push(p);
        }
    }
    found
}

fn kill_runs(runs: u64, seed: u64) -> Tally {
    let _s = serial();
    let env = setup(&[48, 24, 16], 150);
    let src = env.path("data");
    let want = snapshot(&src);
    let files = files(&want);
    let total: u64 = files.iter().map(|f| f.1).sum();

    // One uninterrupted extract, twice (the first warms the page cache), keeping the slower.
    let mut full = Duration::ZERO;
    for _ in 0..2 {
        let out = env.fresh_dir("timing");
        // SAFETY: sync has no preconditions; earlier writes must not slow this run down.
        unsafe { libc::sync() };
        let start = Instant::now();
        assert_eq!(extract(&env, &out, &[]).code, 0);
        full = full.max(start.elapsed());
        fs::remove_dir_all(out).unwrap();
    }
    eprintln!("an uninterrupted extract of {total} bytes in {} files takes {full:?}", files.len());

    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for i in 0..runs {
        let frac = (i as f64 + rng.below(1000) as f64 / 1000.0) / runs as f64;
        let delay = full.mul_f64(frac);
        let when = format!("run {i}, kill after {delay:?}");
        let out = env.fresh_dir("run");
        // SAFETY: as above.
        unsafe { libc::sync() };
        let mut child = env.spawn(["extract", "x", "-C", out.to_str().unwrap()]);
        std::thread::sleep(delay);
        let done = child.try_wait().unwrap();
        child.kill().ok();
        let status = child.wait().unwrap();
        if let Some(st) = done {
            assert!(st.success(), "{when}: extract failed on its own: {st}");
            full = full.min(delay); // quicker than measured: aim the next kills earlier
        }

        let (missing, in_flight, complete) = left_by_kill(&src, &out.join("data"), &files);
        tally.left_plan += u64::from(!plan_databases(&env.cache).is_empty());
        let s = resume(&env, &out);
        // The killed run's plan database is gone (removed by the resume), and the resume's too.
        let plans = plan_databases(&env.cache);
        assert!(plans.is_empty(), "{when}: extract's temporary databases left: {plans:?}");
        if snapshot(&out.join("data")) != want {
            assert_same_tree(&src, &out.join("data")); // names the differences
        }
        let bound = missing + in_flight * MAX_BLOCK;
        eprintln!(
            "{when}: {status}; {complete} files complete, {in_flight} in flight, {missing} bytes missing; \
             resume fetched {} bytes in {} blocks (bound {bound})",
            s.fetched, s.blocks
        );
        assert!(s.fetched <= bound, "{when}: resume fetched {} bytes; bound {bound}: {s:?}", s.fetched);
        assert!(s.fetched >= missing, "{when}: resume fetched less than was missing: {s:?}");
        assert_eq!(s.complete, complete, "{when}: a file already complete was fetched again: {s:?}");
        assert_eq!(s.restored, files.len() as u64 - complete, "{when}: {s:?}");
        match complete {
            0 if in_flight == 0 => tally.nothing += 1,
            c if c == files.len() as u64 => tally.finished += 1,
            _ => tally.partial += 1,
        }
        tally.cut_inside += u64::from(in_flight > 0);
        tally.fetched += s.fetched;
        tally.bound += bound;
        tally.worst_excess = tally.worst_excess.max(s.fetched as i64 - missing as i64);
        fs::remove_dir_all(out).unwrap();
    }
    eprintln!("{runs} kills: {tally:?}");
    assert_eq!(tally.nothing + tally.partial + tally.finished, runs);
    assert!(tally.cut_inside >= runs / 3, "too few kills left a file partly written: {tally:?}");
    assert!(tally.left_plan > 0, "no kill left a plan database, so its removal went untested: {tally:?}");
    tally
}

#[test]
fn kill_9_during_extract_then_resume_24_runs() {
    kill_runs(24, 24);
}

#[test]
#[ignore = "long: 200 kill -9 runs (about 2 minutes)"]
fn kill_9_during_extract_then_resume_200_runs() {
    kill_runs(200, 200);
}

#[test]
fn a_full_disk_stops_extract_with_one_line_and_resume_finishes() {
    let _s = serial();
    if !is_root() {
        return unavailable("needs root to mount a small tmpfs");
    }
    let env = setup(&[24, 8], 40);
    let Some(disk) = Tmpfs::mount(&env.path("disk"), "20m") else {
        return unavailable("cannot mount a tmpfs here");
    };
    let out = disk.0.join("out");
    let e = extract(&env, &out, &[]);
    e.assert_one_line_error(1).assert_stderr_contains("No space left on device");
    e.assert_stderr_contains("free some space").assert_stderr_contains("--resume");
    // The same command without --resume now refuses (files exist); resume finishes.
    extract(&env, &out, &[]).assert_one_line_error(1).assert_stderr_contains("--resume");
    disk.resize("64m");
    let s = resume(&env, &out);
    assert_same_tree(&env.path("data"), &out.join("data"));
    assert!(s.complete > 0, "nothing restored before the disk filled up: {s:?}");
}
