//! Calendar arithmetic for archive times (seconds since the epoch): civil dates in UTC, the
//! local time zone's broken-down time (through the C library, so `TZ` and the system zone
//! files apply, as for `date`), ISO 8601 weeks, and Go's `AddDate` normalisation, which
//! retention (`retention`) needs to agree with restic's `forget` to the second.
//!
//! Invariant: every function is total over the archive times the manifest accepts (0 to the end
//! of year 9999), and pure apart from reading the time zone.

extern "C" {
    fn tzset();
}

/// A broken-down time in some zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Seconds east of UTC.
    pub offset: i64,
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm; month and day may be out
/// of range and are normalised, as C's `mktime` and Go's `time.Date` do).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let (year, month) = (year + (month - 1).div_euclid(12), (month - 1).rem_euclid(12) + 1);
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 + (day - 1)
}

/// The civil date (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m as u32, d as u32)
}

/// `secs` in UTC.
pub fn utc(secs: i64) -> Civil {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        offset: 0,
    }
}

/// `secs` in the local time zone (`TZ`, else the system's), or UTC if the C library cannot say.
pub fn local(secs: i64) -> Civil {
    let t = secs as libc::time_t;
    // localtime_r need not read `TZ` again (glibc's does not): tzset makes a changed TZ count.
    // SAFETY: tzset only reads the environment.
    unsafe { tzset() };
    // SAFETY: `tm` is plain data, zeroed is a valid value; localtime_r writes only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return utc(secs);
    }
    Civil {
        year: i64::from(tm.tm_year) + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
        offset: tm.tm_gmtoff,
    }
}

impl Civil {
    /// The ISO 8601 (year, week) of the date, as Go's `Time.ISOWeek`: the week belongs to the
    /// year holding its Thursday.
    pub fn iso_week(&self) -> (i64, u32) {
        let days = days_from_civil(self.year, i64::from(self.month), i64::from(self.day));
        let weekday = (days + 3).rem_euclid(7) + 1; // Monday 1 .. Sunday 7 (1970-01-01 was a Thursday)
        let thursday = days + 4 - weekday;
        let (year, _, _) = civil_from_days(thursday);
        let yday = thursday - days_from_civil(year, 1, 1);
        (year, (yday / 7 + 1) as u32)
    }

    /// `YYYY-MM-DD HH:MM:SS`.
    pub fn format(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYY-MM-DD HH:MM:SS +HHMM`.
    pub fn format_zoned(&self) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let off = self.offset.abs();
        format!("{} {sign}{:02}{:02}", self.format(), off / 3600, off % 3600 / 60)
    }
}

/// Which zone calendar rules read times in: the local one (`TZ`, else the system's), or UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Local,
    Utc,
}

impl Zone {
    pub fn civil(self, secs: i64) -> Civil {
        match self {
            Zone::Local => local(secs),
            Zone::Utc => utc(secs),
        }
    }

    /// `secs` moved back by whole `years`, `months` and `days`, keeping the wall clock time,
    /// with out-of-range dates normalised (31 March less a month is 3 March), then back by
    /// `hours`: Go's `t.AddDate(-y, -m, -d).Add(-h * time.Hour)`, which restic's
    /// `--keep-within` uses.
    pub fn back(self, secs: i64, years: i64, months: i64, days: i64, hours: i64) -> i64 {
        let c = self.civil(secs);
        let (y, mo, d) = (c.year - years, i64::from(c.month) - months, i64::from(c.day) - days);
        let wall = i64::from(c.hour) * 3600 + i64::from(c.minute) * 60 + i64::from(c.second);
        let in_utc = days_from_civil(y, mo, d) * 86_400 + wall;
        let moved = match self {
            Zone::Utc => in_utc,
            // The moved wall clock time mapped back through the zone (its offset may differ
            // across a daylight saving change); mktime normalises the fields as Go does.
            Zone::Local => {
                // SAFETY: `tm` is plain data; mktime reads and normalises only the struct given.
                let mut tm: libc::tm = unsafe { std::mem::zeroed() };
                tm.tm_year = (y - 1900) as libc::c_int;
                tm.tm_mon = (mo - 1) as libc::c_int;
                tm.tm_mday = d as libc::c_int;
                tm.tm_hour = c.hour as libc::c_int;
                tm.tm_min = c.minute as libc::c_int;
                tm.tm_sec = c.second as libc::c_int;
                tm.tm_isdst = -1;
                match unsafe { libc::mktime(&mut tm) } {
                    -1 => in_utc - c.offset,
                    t => t as i64,
                }
            }
        };
        moved.saturating_sub(hours.saturating_mul(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip_and_normalise() {
        for days in [-800_000, -1, 0, 1, 59, 365, 10_956, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 2, 31), days_from_civil(2026, 3, 3));
        assert_eq!(days_from_civil(2026, 0, 1), days_from_civil(2025, 12, 1));
        assert_eq!(days_from_civil(2026, -13, 1), days_from_civil(2024, 11, 1));
    }

    #[test]
    fn iso_weeks_at_year_ends() {
        let week = |y, m, d| utc(days_from_civil(y, m, d) * 86_400).iso_week();
        assert_eq!(week(2025, 12, 28), (2025, 52)); // a Sunday
        assert_eq!(week(2025, 12, 29), (2026, 1)); // Monday of 2026's first week
        assert_eq!(week(2026, 1, 4), (2026, 1));
        assert_eq!(week(2026, 1, 5), (2026, 2));
        assert_eq!(week(2021, 1, 3), (2020, 53));
        assert_eq!(week(2020, 12, 31), (2020, 53));
        assert_eq!(week(2024, 12, 30), (2025, 1));
    }

    #[test]
    fn moving_back_normalises_as_go_add_date() {
        let t = |y: i64, m: i64, d: i64, h: i64| days_from_civil(y, m, d) * 86_400 + h * 3600;
        assert_eq!(Zone::Utc.back(t(2026, 3, 31, 5), 0, 1, 0, 0), t(2026, 3, 3, 5));
        assert_eq!(Zone::Utc.back(t(2024, 2, 29, 0), 1, 0, 0, 0), t(2023, 3, 1, 0));
        assert_eq!(Zone::Utc.back(t(2026, 1, 1, 1), 0, 0, 1, 2), t(2025, 12, 30, 23));
    }

    #[test]
    fn utc_formats_as_list_does() {
        assert_eq!(utc(0).format(), "1970-01-01 00:00:00");
        assert_eq!(utc(1_764_288_000 + 3661).format(), "2025-11-28 01:01:01");
        assert_eq!(utc(253_402_300_799).format(), "9999-12-31 23:59:59");
    }
}
