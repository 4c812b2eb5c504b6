//! Worked examples of the retention rules (the ones docs/RETENTION.md shows), in UTC; the
//! oracle test (tests/retention.rs) checks local zones against restic.

use super::*;
use crate::archive::Stats;
use crate::calendar::{days_from_civil, Zone};
use crate::manifest::ArchiveRef;

fn at(y: i64, m: i64, d: i64, h: i64) -> i64 {
    days_from_civil(y, m, d) * 86_400 + h * 3600
}

fn archive(name: &str, time: i64, partial: bool) -> ArchiveRef {
    ArchiveRef {
        name: name.into(),
        root: Default::default(),
        root_len: 0,
        time,
        partial,
        stats: Stats::default(),
    }
}

fn kept(archives: &[ArchiveRef], p: &Policy) -> Vec<String> {
    let now = at(2027, 1, 1, 0);
    apply(archives, p, now, Zone::Utc).into_iter().filter(|d| d.keep).map(|d| d.name).collect()
}

/// Two archives a day at 01:00 and 13:00, from 2026-03-01 for `days` days, named `MM-DD-HH`.
fn twice_daily(days: i64) -> Vec<ArchiveRef> {
    (0..days * 2)
        .map(|i| {
            let t = at(2026, 3, 1 + i / 2, 1 + 12 * (i % 2));
            let c = crate::calendar::utc(t);
            archive(&format!("{:02}-{:02}-{:02}", c.month, c.day, c.hour), t, false)
        })
        .collect()
}

#[test]
fn keep_last_and_daily_take_the_newest_of_each_day() {
    let a = twice_daily(10);
    let p = Policy { last: 3, ..Default::default() };
    assert_eq!(kept(&a, &p), ["03-10-13", "03-10-01", "03-09-13"]);
    let p = Policy { daily: 3, ..Default::default() };
    assert_eq!(kept(&a, &p), ["03-10-13", "03-09-13", "03-08-13"]);
    // Rules add up; an archive kept by two rules counts for both.
    let p = Policy { last: 2, daily: 3, ..Default::default() };
    assert_eq!(kept(&a, &p), ["03-10-13", "03-10-01", "03-09-13", "03-08-13"]);
}

#[test]
fn a_rule_with_counts_left_also_keeps_the_oldest_archive() {
    let a = twice_daily(3);
    let p = Policy { daily: 7, ..Default::default() };
    // Three days fill three of seven periods; the oldest archive (first of day one) stays too.
    assert_eq!(kept(&a, &p), ["03-03-13", "03-02-13", "03-01-13", "03-01-01"]);
}

#[test]
fn within_counts_back_from_the_newest_archive_not_from_now() {
    let a = twice_daily(10);
    let p = Policy { within: Span::parse("2d").unwrap(), ..Default::default() };
    // Newest 03-10 13:00; two days back is 03-08 13:00, which is not after itself.
    assert_eq!(kept(&a, &p), ["03-10-13", "03-10-01", "03-09-13", "03-09-01"]);
    let p = Policy { within: Span::parse("1m").unwrap(), ..Default::default() };
    assert_eq!(kept(&a, &p).len(), 20);
}

#[test]
fn checkpoints_are_never_counted_and_only_the_newest_newer_one_stays() {
    let mut a = twice_daily(2);
    a.push(archive("old.part", at(2026, 3, 1, 5), true));
    a.push(archive("new.part", at(2026, 3, 2, 20), true));
    a.push(archive("newer.part", at(2026, 3, 2, 21), true));
    let p = Policy { last: 1, ..Default::default() };
    let d = apply(&a, &p, at(2027, 1, 1, 0), Zone::Utc);
    let keep: Vec<&str> = d.iter().filter(|d| d.keep).map(|d| d.name.as_str()).collect();
    assert_eq!(keep, ["newer.part", "03-02-13"]);
    // Once a complete archive is newer, the checkpoint goes.
    a.push(archive("03-02-22", at(2026, 3, 2, 22), false));
    assert_eq!(kept(&a, &p), ["03-02-22"]);
}

#[test]
fn spans_parse_as_restic_writes_them_and_refuse_the_rest() {
    assert_eq!(Span::parse("1y2m3d4h").unwrap(), Span { years: 1, months: 2, days: 3, hours: 4 });
    assert_eq!(Span::parse("36h").unwrap().to_string(), "36h");
    for bad in ["", "3", "d", "3w", "1d1y", "2d3d", "-1d", "1.5d", "99999999999d"] {
        assert!(Span::parse(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(Span::parse("3w").unwrap_err().to_string().contains("unknown unit 'w'"));
}
