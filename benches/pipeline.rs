//! End-to-end pipeline benchmark: `create` (first and unchanged) and `extract` through the library,
//! each compared with a reference measured in the same run on the same data: zstd level 3 over the
//! data on all cores, the necessary stage of any compressing archiver (DESIGN.md: within 1.25x).
//! Also the first create with a checkpoint every 64 MiB against none (issue: within 5%).
//!
//! Data: $BENCH_DATA, else the nightly toolchain's lib directory (the peers.sh large-file set),
//! else 256 MiB generated. Runs: $BENCH_RUNS (default 5). Reports medians and ratios.
//! Run: `cargo bench --bench pipeline`.

use archiver::create::{create, CreateOptions};
use archiver::extract::{extract, ExtractOptions};
use archiver::progress::silent;
use archiver::query::keygen;
use archiver::session::{Session, Settings};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn data_dir(scratch: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("BENCH_DATA") {
        return d.into();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let tc = home.join(".rustup/toolchains/nightly-x86_64-unknown-linux-gnu/lib");
    if tc.is_dir() {
        return tc;
    }
    let d = scratch.join("gen");
    std::fs::create_dir_all(&d).unwrap();
    let mut x = 0x9e3779b97f4a7c15u64;
    for f in 0..8 {
        let mut buf = vec![0u8; 32 << 20];
        for (i, b) in buf.iter_mut().enumerate() {
            if i % 4096 < 2048 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            } else {
                *b = (i / 7) as u8;
            }
        }
        std::fs::write(d.join(format!("f{f}")), buf).unwrap();
    }
    d
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            files(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let scratch = tempfile::tempdir().unwrap();
    let data = data_dir(scratch.path());
    let mut paths = Vec::new();
    files(&data, &mut paths);
    let bytes: u64 = paths.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    let mb = bytes as f64 / 1e6;
    println!("data: {} ({} files, {:.0} MB), {} runs", data.display(), paths.len(), mb, runs);

    let (mut floor, mut first, mut unchanged, mut restore) = (vec![], vec![], vec![], vec![]);
    let mut checkpointed = vec![];
    for run in 0..runs {
        // Reference: read every file and zstd-3 it in 1 MiB pieces on all cores.
        let t = Instant::now();
        let out: usize = paths
            .par_iter()
            .map(|p| {
                let d = std::fs::read(p).unwrap();
                d.chunks(1 << 20).map(|c| zstd::bulk::compress(c, 3).unwrap().len()).sum::<usize>()
            })
            .sum();
        floor.push(t.elapsed().as_secs_f64());
        assert!(out > 0);

        let dir = scratch.path().join(format!("run{run}"));
        let settings = Settings {
            repo: dir.join("repo").display().to_string(),
            keyfile: dir.join("key"),
            cachedir: dir.join("cache"),
            ca_cert: None,
            lock_wait: None,
            rates: Default::default(),
            passphrase: None,
        };
        keygen(&settings, None).unwrap();
        let session = Session::open(&settings).unwrap();
        let opts = |name: &str| CreateOptions {
            name: name.into(),
            paths: vec![data.clone()],
            limits: Default::default(),
            keep_part: false,
            select: Default::default(),
            creationtime: None,
            scan_totals: false,
            dry_run: false,
            stdin_name: None,
            sources: Vec::new(),
            command: Vec::new(),
        };
        // The same first backup with a checkpoint every 64 MiB, into a repository of its own.
        let ck_settings = Settings {
            repo: dir.join("repo-ck").display().to_string(),
            keyfile: dir.join("key-ck"),
            cachedir: dir.join("cache-ck"),
            ca_cert: None,
            lock_wait: None,
            rates: Default::default(),
            passphrase: None,
        };
        keygen(&ck_settings, None).unwrap();
        let ck_session = Session::open(&ck_settings).unwrap();
        let mut ck = opts("first");
        ck.limits.checkpoint_bytes = Some(64 << 20);
        let t = Instant::now();
        create(&ck_session, &ck, &silent).unwrap();
        checkpointed.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        create(&session, &opts("first"), &silent).unwrap();
        first.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        create(&session, &opts("again"), &silent).unwrap();
        unchanged.push(t.elapsed().as_secs_f64());
        let target = dir.join("out");
        let t = Instant::now();
        let x = ExtractOptions {
            name: "first".into(),
            dir: target.clone(),
            patterns: vec![],
            resume: false,
            overwrite: false,
            numeric_owner: false,
            keep: Default::default(),
        };
        extract(&session, &x, &silent).unwrap();
        restore.push(t.elapsed().as_secs_f64());
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let f = median(floor);
    let report = |label: &str, v: Vec<f64>| {
        let m = median(v);
        println!("{label:<18} median {m:7.3} s  {:7.1} MB/s  {:5.2}x the zstd-3 floor", mb / m, m / f);
    };
    println!("{:<18} median {f:7.3} s  {:7.1} MB/s", "zstd-3 floor", mb / f);
    let (a, b) = (median(first.clone()), median(checkpointed.clone()));
    report("create first", first);
    report("create, 64M ckpts", checkpointed);
    println!("checkpoint overhead: {:+.1}% (median with 64 MiB checkpoints vs none)", (b / a - 1.0) * 100.0);
    report("create unchanged", unchanged);
    report("extract", restore);
}
