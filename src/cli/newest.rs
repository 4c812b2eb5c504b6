//! `archiver newest [--match GLOB] [--max-age SPAN]`: the newest complete archive of a series and
//! its age, for monitoring. With `--max-age` it fails (exit 1, one line naming the archive and its
//! age) when that archive is older than SPAN before now, or when no complete archive matches.

use super::output::Output;
use archiver::calendar::Zone;
use archiver::query::{escape_name, format_time, newest, Glob};
use archiver::retention::Span;
use archiver::session::{Session, Settings};
use serde_json::json;

pub fn run(
    settings: &Settings,
    out: &Output,
    glob: Option<&str>,
    max_age: Option<Span>,
) -> anyhow::Result<()> {
    let session = Session::open(settings)?;
    let what = match glob {
        Some(g) => format!("matching {g:?}"),
        None => "in the repository".into(),
    };
    let Some(a) = newest(&session, &Glob::new(glob)?)? else {
        anyhow::bail!(
            "no complete archive {what}: the backups it should hold were never made, or all failed"
        );
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let age = now - a.time;
    // The oldest time still fresh: SPAN before now, on the local calendar (as --keep-within).
    let limit = max_age
        .map(|s| Zone::Local.back(now, s.years.into(), s.months.into(), s.days.into(), s.hours.into()));
    let stale = limit.is_some_and(|l| a.time < l);
    let text = || format!("{}\t{}\tage {}", escape_name(&a.name), format_time(a.time), span(age));
    let v = || {
        json!({
            "message_type": "newest",
            "name": escape_name(&a.name),
            "time": super::json::time(a.time),
            "time_unix": a.time,
            "age_seconds": age,
            "max_age": max_age.map(|s| s.to_string()),
            "stale": stale,
        })
    };
    out.item(text, v)?;
    if stale {
        anyhow::bail!(
            "the newest complete archive {what}, {:?}, was made {} ago ({} UTC): older than --max-age {}",
            a.name,
            span(age),
            format_time(a.time),
            max_age.unwrap_or_default()
        );
    }
    Ok(())
}

/// `3d 2h`, `5h 10m`, `42m`, `7s` (a future time shows as negative seconds).
fn span(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}
