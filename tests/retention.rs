//! `prune --keep-*` against restic as the oracle: 60 complete archives at known creation times
//! across 15 months (two series, several per day, an ISO year boundary, daylight saving changes)
//! and `.part` archives among them. For each of several policies, in UTC and in Europe/Berlin,
//! the archives `prune --dry-run` keeps must be exactly the snapshots `restic forget --dry-run`
//! keeps when made with the same times (restic from Debian's packages; restic before 0.17 lacks
//! the rule that keeps the oldest snapshot while a rule has counts left, which the test adds to
//! its answer from restic's own counters). `.part` archives follow their own rule (never
//! counted; the newest kept while newer than every complete archive). Then one policy is applied
//! for real: exactly the kept archives remain, and they restore exactly.

mod util;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use util::*;

const ZONES: [&str; 2] = ["UTC", "Europe/Berlin"];

/// Archive (name, creation time, is a `.part`).
type Made = (String, i64, bool);

fn day(y: i64, m: u32, d: u32) -> i64 {
    let (y, m) = if m <= 2 { (y - 1, m + 12) } else { (y, m) };
    // Days since 1970-01-01 (proleptic Gregorian), independent of the code under test.
    let days =
        365 * y + y / 4 - y / 100 + y / 400 + (153 * (i64::from(m) - 3) + 2) / 5 + i64::from(d) - 719_469;
    days * 86_400
}

/// The creation times: edges first (an ISO year boundary where UTC and Berlin disagree on the
/// day, daylight saving days), then pseudo-random gaps from 0 to 20 days, at hours that are never
/// ambiguous in Berlin (01:00-03:59 is, on the change days).
fn complete_times() -> Vec<i64> {
    let h = 3600;
    let mut times = vec![
        day(2025, 12, 28) + 22 * h,
        day(2025, 12, 29) + 5 * h,
        day(2026, 1, 3) + 23 * h,
        day(2026, 1, 4) + 23 * h + 1800, // 2026-01-05 00:30 in Berlin: the next ISO week
        day(2026, 3, 29) + 4 * h,
        day(2025, 10, 26) + 12 * h,
    ];
    let mut rng = Rng::new(60);
    let mut t = day(2025, 8, 3) + 9 * h;
    while times.len() < 60 {
        let gap = [0, 0, 1, 1, 2, 3, 5, 7, 9, 13, 20][rng.below(11) as usize];
        let hour = [0, 4, 7, 9, 12, 13, 18, 21, 23][rng.below(9) as usize];
        t = (t / 86_400 + gap) * 86_400 + hour * h + rng.below(60) as i64 * 60;
        if !times.contains(&t) {
            times.push(t);
        }
    }
    times.sort();
    times
}

fn series(i: usize) -> &'static str {
    if i % 4 == 3 {
        "weekly"
    } else {
        "nightly"
    }
}

/// Makes the archives: 60 complete ones and 6 `.part`s (one newer than every complete archive).
fn make_archives(env: &Env) -> Vec<Made> {
    write(&env.path("d/small"), b"small");
    let mut made = Vec::new();
    let times = complete_times();
    for (i, &t) in times.iter().enumerate() {
        let name = format!("{}-{i:02}", series(i));
        env.ok(["create", "--creationtime", &t.to_string(), &name, "d"]);
        made.push((name, t, false));
    }
    let last = *times.last().unwrap();
    for (k, t) in [times[5] + 60, times[20] + 60, times[41] + 60, times[55] + 60, last + 60, last + 120]
        .iter()
        .enumerate()
    {
        let name = format!("{}-p{k}", if k == 3 { "weekly" } else { "nightly" });
        // New data each time: --maxbw counts bytes uploaded, and stored data is not uploaded again.
        write_data(&env.path("big/f"), 7 + k as u64, 3 * MIB);
        let out = env.run(["create", "--maxbw", "1M", "--creationtime", &t.to_string(), &name, "big"]);
        assert_eq!(out.code, 3, "a --maxbw run should store {name}.part:\n{}", out.stderr);
        made.push((format!("{name}.part"), *t, true));
    }
    made
}

/// `date`'s rendering of `t` in `zone`, as restic's `--time` reads it.
fn local_text(t: i64, zone: &str) -> String {
    let out =
        Command::new("date").env("TZ", zone).args(["-d", &format!("@{t}"), "+%Y-%m-%d %H:%M:%S"]).output();
    let out = out.expect("run date");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Restic {
    repo: std::path::PathBuf,
    data: std::path::PathBuf,
    /// Whether this restic keeps the oldest snapshot while a rule has counts left (0.17 on).
    keeps_oldest: bool,
}

impl Restic {
    fn cmd(&self, zone: &str) -> Command {
        let mut c = Command::new("restic");
        c.env("RESTIC_PASSWORD", "oracle")
            .env("TZ", zone)
            .arg("-r")
            .arg(&self.repo)
            .args(["-q", "--no-lock"]);
        c
    }

    /// A restic repository holding one snapshot per complete archive and zone, tagged with the
    /// zone, the series and the archive's name, made at the archive's time in that zone.
    fn new(root: &Path, made: &[Made]) -> Option<Restic> {
        let version = Command::new("restic").arg("version").output().ok()?;
        let text = String::from_utf8_lossy(&version.stdout).to_string();
        let v: Vec<u32> = text.split_whitespace().nth(1)?.split('.').filter_map(|p| p.parse().ok()).collect();
        eprintln!("oracle: {}", text.trim());
        let r = Restic { repo: root.join("restic"), data: root.join("d"), keeps_oldest: v >= vec![0, 17] };
        assert!(r.cmd("UTC").arg("init").status().unwrap().success(), "restic init failed");
        let jobs: Vec<(&str, &Made)> =
            ZONES.iter().flat_map(|z| made.iter().filter(|m| !m.2).map(move |m| (*z, m))).collect();
        std::thread::scope(|s| {
            for lane in 0..4 {
                let (r, jobs) = (&r, &jobs);
                s.spawn(move || {
                    for (zone, (name, t, _)) in jobs.iter().skip(lane).step_by(4) {
                        let tags = format!("{zone},{},{name}", name.split('-').next().unwrap());
                        let st = r
                            .cmd(zone)
                            .args(["backup", "--host", "h", "--tag", &tags, "--time", &local_text(*t, zone)])
                            .arg(&r.data)
                            .status()
                            .unwrap();
                        assert!(st.success(), "restic backup {name} failed");
                    }
                });
            }
        });
        Some(r)
    }

    /// The names restic keeps among the snapshots tagged `zone` (and `series`, if given).
    fn keeps(&self, zone: &str, series: Option<&str>, policy: &[&str]) -> BTreeSet<String> {
        let tags = match series {
            Some(s) => format!("{zone},{s}"),
            None => zone.to_string(),
        };
        let out = self
            .cmd(zone)
            .args(["forget", "--dry-run", "--json", "--tag", &tags])
            .args(policy)
            .output()
            .unwrap();
        assert!(out.status.success(), "restic forget failed: {}", String::from_utf8_lossy(&out.stderr));
        let groups: serde_json::Value = serde_json::from_slice(&out.stdout).expect("restic's JSON");
        let groups = groups.as_array().expect("a list of groups");
        assert_eq!(groups.len(), 1, "one group expected");
        let g = &groups[0];
        let name = |snap: &serde_json::Value| -> String {
            let tags = snap["tags"].as_array().expect("tags");
            let n = tags.iter().filter_map(|t| t.as_str()).find(|t| t.contains('-')).expect("name tag");
            n.to_string()
        };
        let mut keep: BTreeSet<String> = g["keep"].as_array().unwrap().iter().map(name).collect();
        if !self.keeps_oldest {
            // restic 0.17 added: a rule with counts left after the last snapshot also keeps the
            // oldest. Its counters after the last kept snapshot say whether any had counts left.
            let reasons = g["reasons"].as_array().unwrap();
            let counts_left = reasons
                .last()
                .and_then(|r| r["counters"].as_object())
                .is_some_and(|c| c.values().any(|v| v.as_i64().unwrap_or(0) > 0));
            let remove = g["remove"].as_array().cloned().unwrap_or_default();
            let all = g["keep"].as_array().unwrap().iter().chain(&remove);
            let oldest = all.min_by_key(|s| s["time"].as_str().map(str::to_string));
            if counts_left {
                keep.insert(name(oldest.unwrap()));
            }
        }
        keep
    }
}

/// The names `prune --dry-run` keeps, and checks each line's form.
fn archiver_keeps(env: &Env, zone: &str, args: &[&str]) -> BTreeSet<String> {
    let out = env.command(["prune", "--dry-run"]).args(args).env("TZ", zone).output().unwrap();
    let out = out_of(out);
    assert_eq!(out.code, 0, "prune --dry-run {args:?} failed:\n{}", out.stderr);
    out.assert_stderr_contains("dry run");
    let mut keep = BTreeSet::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["keep", _, _, _, name, ..] => keep.insert(name.to_string()),
            ["would", "delete", _, _, _, ..] => false,
            _ => panic!("unexpected line from prune --dry-run: {line:?}"),
        };
    }
    keep
}

const POLICIES: &[&[&str]] = &[
    &["--keep-last", "5"],
    &["--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12"],
    &["--keep-hourly", "30"],
    &["--keep-weekly", "80"],
    &["--keep-monthly", "6", "--keep-yearly", "10"],
    &["--keep-within", "2m15d"],
    &["--keep-within", "1y2m", "--keep-last", "3"],
    &["--keep-within", "36h", "--keep-daily", "3", "--keep-yearly", "1"],
    &[
        "--keep-last",
        "2",
        "--keep-hourly",
        "5",
        "--keep-daily",
        "5",
        "--keep-weekly",
        "5",
        "--keep-monthly",
        "5",
        "--keep-yearly",
        "5",
    ],
];

/// The `.part` archives among `made` (selected by `prefix`) that prune must keep: the newest,
/// if it is newer than every complete one.
fn parts_kept(made: &[Made], prefix: &str) -> BTreeSet<String> {
    let sel: Vec<&Made> = made.iter().filter(|m| m.0.starts_with(prefix)).collect();
    let newest_complete = sel.iter().filter(|m| !m.2).map(|m| m.1).max().unwrap();
    let newest_part = sel.iter().filter(|m| m.2).max_by_key(|m| m.1);
    newest_part.filter(|p| p.1 > newest_complete).map(|p| p.0.clone()).into_iter().collect()
}

#[test]
fn prune_keeps_exactly_what_restic_forget_keeps() {
    let env = Env::new();
    let made = make_archives(&env);
    if !Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
        unavailable("the Europe/Berlin zone file (Debian package tzdata)");
        return;
    }
    let Some(restic) = Restic::new(&env.root, &made) else {
        unavailable("restic (Debian package restic), the oracle for the calendar rules");
        return;
    };
    let cases: Vec<(&str, &[&str], Option<&str>)> = ZONES
        .iter()
        .flat_map(|z| POLICIES.iter().flat_map(move |p| [None, Some("weekly")].map(|s| (*z, *p, s))))
        .collect();
    // restic spends most of a run deriving its key: ask it about several cases at once.
    let answers: Vec<BTreeSet<String>> = std::thread::scope(|s| {
        let lanes: Vec<_> = (0..4)
            .map(|lane| {
                let (restic, cases) = (&restic, &cases);
                s.spawn(move || {
                    let mine = cases.iter().enumerate().filter(|(i, _)| i % 4 == lane);
                    mine.map(|(i, (z, p, series))| (i, restic.keeps(z, *series, p))).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, BTreeSet<String>)> =
            lanes.into_iter().flat_map(|l| l.join().unwrap()).collect();
        all.sort_by_key(|a| a.0);
        all.into_iter().map(|a| a.1).collect()
    });
    let mut checked = 0;
    for ((zone, policy, series), mut expected) in cases.into_iter().zip(answers) {
        let mut args: Vec<&str> = policy.to_vec();
        if series.is_some() {
            args.extend(["--match", "weekly-*"]);
        }
        let ours = archiver_keeps(&env, zone, &args);
        expected.extend(parts_kept(&made, series.unwrap_or("")));
        assert_eq!(ours, expected, "{zone}, prune {args:?}: archiver keeps the left, restic the right");
        assert!(ours.len() < made.len(), "{zone} {args:?}: the policy should delete something");
        checked += 1;
    }
    eprintln!("{checked} policy/zone/selection cases agree with restic");

    // Applied for real (in Berlin): exactly the kept archives remain and restore exactly.
    let policy = ["--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12", "--match", "nightly-*"];
    let keep = archiver_keeps(&env, "Europe/Berlin", &policy);
    let out = out_of(env.command(["prune"]).args(policy).env("TZ", "Europe/Berlin").output().unwrap());
    assert_eq!(out.code, 0, "prune failed:\n{}", out.stderr);
    let left: BTreeSet<String> = env.list().into_iter().collect();
    let weekly: BTreeSet<String> =
        made.iter().filter(|m| m.0.starts_with("weekly")).map(|m| m.0.clone()).collect();
    assert_eq!(left, keep.union(&weekly).cloned().collect(), "prune left other archives than it said");
    for name in left.iter().filter(|n| !n.ends_with(".part")).take(5) {
        assert_same_tree(&env.path("d"), &env.extract(name, &[]).join("d"));
    }
    env.ok(["fsck"]);
    // Nothing more to do: a second run deletes nothing.
    let again = out_of(env.command(["prune"]).args(policy).env("TZ", "Europe/Berlin").output().unwrap());
    again.assert_stderr_contains("nothing to delete");
}
