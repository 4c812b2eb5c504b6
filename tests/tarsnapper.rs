//! tarsnapper (PyPI; `.ci/run` installs it) runs unchanged against archiver through a `tarsnap`
//! symlink first in PATH: `expire` deletes exactly what its deltas say (checked against a port of
//! its own algorithm, tarsnapper/expire.py), and `make` stores a backup that restores byte for
//! byte, then expires. tarsnapper drives tarsnap on a pseudo-terminal (stdout and stderr merged)
//! and takes every line of `--list-archives` as an archive name, so any extra output would show.

mod util;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use util::*;

/// The `tarsnapper` script: `TARSNAPPER`, else the first on PATH (or in ~/.local/bin, where
/// `pip install --user` puts it).
fn tarsnapper() -> PathBuf {
    if let Some(p) = std::env::var_os("TARSNAPPER") {
        return p.into();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).map(|h| h.join(".local/bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(home)
        .map(|d| d.join("tarsnapper"))
        .find(|p| p.is_file())
        .expect("tarsnapper is not installed: `pip install tarsnapper` (.ci/run does), or set TARSNAPPER")
}

/// A day as tarsnapper names archives (`%Y%m%d-%H%M%S`), and its seconds since the epoch.
fn day(y: i64, m: i64, d: i64) -> (String, i64) {
    let t = archiver::calendar::days_from_civil(y, m, d) * 86_400;
    (format!("{y:04}{m:02}{d:02}-000000"), t)
}

/// tarsnapper's expire (tarsnapper/expire.py), ported: which names it keeps.
fn keeps(backups: &[(String, i64)], deltas: &[i64]) -> BTreeSet<String> {
    let mut bl: Vec<&(String, i64)> = backups.iter().collect();
    bl.sort_by_key(|b| std::cmp::Reverse(b.1)); // newest first, stable
    let mut ds = deltas.to_vec();
    ds.sort();
    let newest = bl[0].1;
    let mut kept = BTreeSet::from([bl[0].0.clone()]);
    let mut last = ds.pop().unwrap();
    while let Some(cur) = ds.pop() {
        let (mut p, mut sel): (i64, Option<&String>) = (newest - last, None);
        while p < newest {
            // The first of the closest (the newer on a tie).
            let best = bl.iter().min_by_key(|b| (b.1 - p).abs()).unwrap();
            if sel == Some(&best.0) {
                p += cur;
            } else {
                sel = Some(&best.0);
                kept.insert(best.0.clone());
                p = best.1 + cur;
            }
        }
        last = cur;
    }
    kept
}

fn names(env: &Env) -> BTreeSet<String> {
    env.ok(["list"]).stdout.lines().map(String::from).collect()
}

#[test]
fn tarsnapper_makes_and_expires_through_a_tarsnap_symlink() {
    let env = Env::new();
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("tarsnap")).unwrap();
    let src = env.path("src");
    write_data(&src.join("db.dump"), 7, 2 * MIB);
    std::fs::write(src.join("notes"), b"kept\n").unwrap();
    std::fs::write(src.join("skip.tmp"), b"excluded\n").unwrap();
    // Backups from before, named as tarsnapper names them; one of another job, which its
    // expire must leave alone.
    let old: Vec<(String, i64)> =
        [day(2024, 1, 10), day(2024, 1, 9), day(2024, 1, 8), day(2024, 1, 1), day(2023, 12, 1)].into();
    for (date, t) in &old {
        let name = format!("/host/web-{date}");
        env.ok(["create", "--creationtime", &t.to_string(), &name, "src"]);
    }
    env.ok(["create", "/host/other-20230101-000000", "src"]);
    let config = env.path("tarsnapper.yml");
    std::fs::write(
        &config,
        format!(
            "target: /host/$name-$date\ndeltas: 1d 7d\njobs:\n  web:\n    sources:\n      - {}\n    excludes:\n      - {}\n",
            src.display(),
            src.join("skip.tmp").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut c = Command::new(tarsnapper());
        // tarsnap's options pass through -o, as tarsnapper's README shows.
        c.args([
            "-o",
            "keyfile",
            env.key.to_str().unwrap(),
            "-o",
            "cachedir",
            env.path("tcache").to_str().unwrap(),
        ]);
        c.arg("-c").arg(&config).args(args).current_dir(&env.root).env("PATH", path);
        for (k, v) in env.command(["x"]).get_envs() {
            if let (Some(v), false) = (v, k == "PATH") {
                c.env(k, v);
            }
        }
        let out = c.output().expect("cannot run tarsnapper");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "tarsnapper {args:?} failed:\n{stdout}\n{stderr}");
        assert!(!stderr.contains("Traceback"), "tarsnapper {args:?}:\n{stderr}");
        stdout.into_owned()
    };

    // expire: deletes what its deltas say, nothing of the other job.
    run(&["expire"]);
    let want: BTreeSet<String> = keeps(&old, &[86_400, 7 * 86_400])
        .into_iter()
        .map(|d| format!("/host/web-{d}"))
        .chain(["/host/other-20230101-000000".to_string()])
        .collect();
    assert_eq!(want.len(), 5, "the port keeps 20240110, 0109, 0108 and 0101 (tarsnapper's worked example)");
    assert_eq!(names(&env), want);

    // make: a new backup (named with today's UTC date), then expire: the new one is newest.
    run(&["make"]);
    let now: BTreeSet<String> = names(&env);
    let new: Vec<&String> = now.iter().filter(|n| !want.contains(*n)).collect();
    assert!(new.len() == 1 && new[0].starts_with("/host/web-20"), "make stored {new:?}");
    let mut dated: Vec<(String, i64)> =
        old.iter().filter(|(d, _)| want.contains(&format!("/host/web-{d}"))).cloned().collect();
    let stamp = new[0].trim_start_matches("/host/web-").to_string();
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    dated.push((stamp, secs));
    let kept: BTreeSet<String> = keeps(&dated, &[86_400, 7 * 86_400])
        .into_iter()
        .map(|d| format!("/host/web-{d}"))
        .chain(["/host/other-20230101-000000".to_string()])
        .collect();
    assert_eq!(names(&env), kept);
    // The backup restores byte for byte, without the excluded file.
    let dir = env.extract(new[0], &[]);
    let restored = dir.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored.join("db.dump")).unwrap(), std::fs::read(src.join("db.dump")).unwrap());
    assert_eq!(std::fs::read(restored.join("notes")).unwrap(), b"kept\n");
    assert!(!restored.join("skip.tmp").exists());
}
