//! Retention policies: which archives `prune --keep-*` keeps, with restic's `forget` semantics
//! (docs/RETENTION.md has worked examples). Pure: archives and a policy in, a decision with its
//! reasons per archive out; `prune` applies it in one transaction.
//!
//! Rules, as restic (0.17 and later) applies them: the selected complete archives are taken
//! newest first; `--keep-last N` keeps the N newest; each calendar rule (hourly, daily, weekly,
//! monthly, yearly, in the local time zone, ISO weeks) keeps the newest archive of each of its N
//! most recent periods that hold one, and when archives run out before N periods are filled, the
//! oldest archive too; `--keep-within SPAN` keeps every archive newer than SPAN before the newest
//! (not counting archives dated in the future). An archive is kept if any rule keeps it.
//! `NAME.part` archives are never counted by a rule: the newest is kept while it is newer than
//! every complete archive selected, every other one is removed.
//!
//! Invariant: with no rule given nothing is decided (the caller refuses), so a typo cannot empty
//! a repository; the result only ever names archives that were selected.

use crate::calendar::{Civil, Zone};
use crate::manifest::ArchiveRef;
use anyhow::{bail, Result};

/// A `--keep-within` span: years, months, days and hours (restic's `1y2m3d4h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl Span {
    /// Parses `1y6m`, `7d`, `36h`, `2y3m4d5h` (each unit at most once, in this order).
    pub fn parse(text: &str) -> Result<Span> {
        let advice =
            "give a number and a unit, y (years), m (months), d (days) or h (hours), e.g. 7d or 1y6m";
        let mut span = Span::default();
        let (mut rest, mut last) = (text, 0usize);
        if rest.is_empty() {
            bail!("an empty duration: {advice}");
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let unit = rest[digits..].chars().next();
            let Some(unit) = unit.filter(|_| digits > 0) else {
                bail!("{text:?} is not a duration: {advice}");
            };
            let n: u32 = rest[..digits]
                .parse()
                .ok()
                .filter(|&n| n <= 100_000)
                .ok_or_else(|| anyhow::anyhow!("{text:?}: {} is too large", &rest[..digits]))?;
            let (slot, order) = match unit {
                'y' => (&mut span.years, 1),
                'm' => (&mut span.months, 2),
                'd' => (&mut span.days, 3),
                'h' => (&mut span.hours, 4),
                u => bail!("{text:?}: unknown unit {u:?}; {advice}"),
            };
            if order <= last {
                bail!("{text:?}: give each unit once, in the order y, m, d, h");
            }
            *slot = n;
            last = order;
            rest = &rest[digits + unit.len_utf8()..];
        }
        Ok(span)
    }

    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, u) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if n > 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

/// The `--keep-*` options. A count of 0 is the rule not given.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Span,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        [self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly].iter().all(|&n| n == 0)
            && self.within.is_zero()
    }
}

/// What the policy decided for one selected archive.
#[derive(Clone, Debug)]
pub struct Decision {
    pub name: String,
    pub time: i64,
    pub partial: bool,
    pub keep: bool,
    /// Why it is kept (`last`, `daily`, `within 7d`, `newest checkpoint`), or removed (one reason).
    pub reasons: Vec<String>,
}

/// The calendar rules in restic's order: label and the period an archive time falls in.
type Bucket = (&'static str, fn(&Civil) -> i64);
const BUCKETS: [Bucket; 5] = [
    ("hourly", |c| ((c.year * 100 + i64::from(c.month)) * 100 + i64::from(c.day)) * 100 + i64::from(c.hour)),
    ("daily", |c| (c.year * 100 + i64::from(c.month)) * 100 + i64::from(c.day)),
    ("weekly", |c| {
        let (y, w) = c.iso_week();
        y * 100 + i64::from(w)
    }),
    ("monthly", |c| c.year * 100 + i64::from(c.month)),
    ("yearly", |c| c.year),
];

/// Applies `policy` to `archives` (the selection), at time `now`, reading calendar periods in
/// `zone`: one decision per archive, newest first (ties by name).
pub fn apply(archives: &[ArchiveRef], policy: &Policy, now: i64, zone: Zone) -> Vec<Decision> {
    let mut sorted: Vec<&ArchiveRef> = archives.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.name.cmp(&b.name)));
    let complete: Vec<&ArchiveRef> = sorted.iter().copied().filter(|a| !a.partial).collect();

    // --keep-within counts back from the newest complete archive not in the future.
    let latest = complete.iter().map(|a| a.time).filter(|&t| t < now).max();
    let within_from = latest.map(|t| {
        let w = policy.within;
        zone.back(t, w.years.into(), w.months.into(), w.days.into(), w.hours.into())
    });

    let mut counts = [policy.last, policy.hourly, policy.daily, policy.weekly, policy.monthly, policy.yearly];
    let mut last_period: [Option<i64>; 6] = [None; 6];
    let mut reasons_of = std::collections::HashMap::new();
    for (nr, a) in complete.iter().enumerate() {
        let mut reasons = Vec::new();
        if !policy.within.is_zero() && within_from.is_none_or(|from| a.time > from) {
            reasons.push(format!("within {}", policy.within));
        }
        let civil = zone.civil(a.time);
        let oldest = nr + 1 == complete.len();
        for (i, count) in counts.iter_mut().enumerate() {
            if *count == 0 {
                continue;
            }
            let (label, period) =
                if i == 0 { ("last", nr as i64) } else { (BUCKETS[i - 1].0, BUCKETS[i - 1].1(&civil)) };
            // A new period, or the oldest archive while the rule still has counts left.
            if last_period[i] != Some(period) || oldest {
                last_period[i] = Some(period);
                *count -= 1;
                reasons.push(label.to_string());
            }
        }
        reasons_of.insert(a.name.as_str(), reasons);
    }

    let newest_complete = complete.first().map(|a| a.time);
    let newest_part = sorted.iter().find(|a| a.partial).map(|a| a.name.as_str());
    sorted
        .into_iter()
        .map(|a| {
            let (keep, reasons) = if a.partial {
                let newest = newest_part == Some(a.name.as_str());
                if newest && newest_complete.is_none_or(|t| a.time > t) {
                    (true, vec!["newest checkpoint, newer than every complete archive".to_string()])
                } else if newest {
                    (false, vec!["checkpoint older than a complete archive".to_string()])
                } else {
                    (false, vec!["checkpoint superseded by a newer one".to_string()])
                }
            } else {
                let r = reasons_of.remove(a.name.as_str()).unwrap_or_default();
                if r.is_empty() {
                    (false, vec!["no rule keeps it".to_string()])
                } else {
                    (true, r)
                }
            };
            Decision { name: a.name.clone(), time: a.time, partial: a.partial, keep, reasons }
        })
        .collect()
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
