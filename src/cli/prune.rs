//! `archiver prune`: resolves the `--keep-*` options into a policy, runs it, and prints one line
//! per selected archive (kept or deleted, and why), then what the delete reclaimed.

use super::args::Cmd;
use super::output::Output;
use archiver::calendar::Zone;
use archiver::progress::{Event, Progress};
use archiver::prune::{prune, PruneOptions};
use archiver::query::escape_name;
use archiver::retention::Policy;
use archiver::session::{Session, Settings};

pub fn run(cmd: &Cmd, settings: &Settings, out: &Output, progress: Progress) -> anyhow::Result<()> {
    let Cmd::Prune {
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        keep_within,
        glob,
        dry_run,
    } = cmd
    else {
        unreachable!("prune::run is called for `prune` only")
    };
    let policy = Policy {
        last: keep_last.unwrap_or(0),
        hourly: keep_hourly.unwrap_or(0),
        daily: keep_daily.unwrap_or(0),
        weekly: keep_weekly.unwrap_or(0),
        monthly: keep_monthly.unwrap_or(0),
        yearly: keep_yearly.unwrap_or(0),
        within: keep_within.unwrap_or_default(),
    };
    let opts = PruneOptions { policy, glob: glob.clone(), dry_run: *dry_run, zone: Zone::Local };
    let session = Session::open(settings)?;
    let res = prune(&session, &opts, progress)?;
    if res.decisions.is_empty() {
        let what = match glob {
            Some(g) => format!("no archive name matches {g:?}"),
            None => "the repository holds no archives".into(),
        };
        progress(Event::Notice(format!("nothing to do: {what}")));
        return Ok(());
    }
    let width = res.decisions.iter().map(|d| escape_name(&d.name).chars().count()).max().unwrap_or(0);
    for d in res.decisions.iter().filter(|_| out.json) {
        out.json(&super::json::decision(d, *dry_run))?;
    }
    for d in res.decisions.iter().filter(|_| !out.json) {
        let verb = match (d.keep, dry_run) {
            (true, _) => "keep",
            (false, true) => "would delete",
            (false, false) => "delete",
        };
        let time = archiver::calendar::local(d.time).format_zoned();
        let name = escape_name(&d.name);
        out.line(&format!("{verb:<12}  {time}  {name:<width$}  {}", d.reasons.join(", ")))?;
    }
    let removed = res.removed().count();
    let kept = res.decisions.len() - removed;
    if out.json {
        out.json(&serde_json::json!({
            "message_type": "summary",
            "command": "prune",
            "dry_run": dry_run,
            "kept": kept,
            "deleted": if *dry_run { 0 } else { removed },
            "would_delete": if *dry_run { removed } else { 0 },
            "bytes_reclaimed": res.deleted.as_ref().map_or(0, |d| d.reclaimed),
        }))?;
    }
    let summary = match (&res.deleted, dry_run) {
        (_, true) => {
            format!("dry run: would keep {kept} and delete {removed} archive(s); nothing was changed")
        }
        (Some(_), false) => format!("kept {kept} archive(s)"),
        (None, false) => format!("kept all {kept} archive(s): nothing to delete"),
    };
    progress(Event::Notice(summary));
    Ok(())
}
