//! `archiver create`: resolves the command line and config file into create's options
//! (selection, checkpoints, limits, signals), runs it, and reports how it ended.

use super::args::Cmd;
use super::output::Output;
use super::{json, meter, print_stats_table, signals, Done};
use archiver::config::Config;
use archiver::create::{create, CreateOptions};
use archiver::progress::{Event, Progress};
use archiver::query;
use archiver::session::{Session, Settings};
use archiver::walker::Limits;

/// The smallest `--checkpoint-bytes` accepted: 1 MiB.
const MIN_CHECKPOINT_BYTES: u64 = 1 << 20;

pub fn run(
    cmd: &Cmd,
    settings: &Settings,
    cfg: &Config,
    out: &Output,
    mode: Option<meter::Mode>,
    progress: Progress,
) -> anyhow::Result<Done> {
    let Cmd::Create {
        print_stats,
        checkpoint_bytes,
        checkpoint_interval,
        maxbw,
        keep_part,
        exclude,
        include,
        exclude_file,
        exclude_caches,
        exclude_if_present,
        one_file_system,
        no_xattrs,
        no_acls,
        numeric_owner,
        creationtime,
        dry_run,
        stdin_name,
        name,
        paths,
    } = cmd
    else {
        unreachable!("create::run is called for `create` only")
    };
    // Command-line values add to the config file's.
    let both =
        |flag: &[String], key: &str| -> Vec<String> { cfg.all(key).iter().chain(flag).cloned().collect() };
    let files: Vec<std::path::PathBuf> =
        cfg.all("exclude-file").iter().map(std::path::PathBuf::from).chain(exclude_file.clone()).collect();
    let select = archiver::select::Selection {
        exclude: both(exclude, "exclude"),
        include: both(include, "include"),
        exclude_caches: *exclude_caches || cfg.flag("exclude-caches"),
        exclude_if_present: both(exclude_if_present, "exclude-if-present"),
        one_file_system: *one_file_system || cfg.flag("one-file-system"),
        no_xattrs: *no_xattrs || cfg.flag("no-xattrs"),
        no_acls: *no_acls || cfg.flag("no-acls"),
        numeric_owner: *numeric_owner,
        nodump: false,
        dereference: false,
        skip_synthetic: false,
    }
    .with_exclude_files(&files)?;
    let size = |flag: Option<u64>, key: &str| -> anyhow::Result<Option<u64>> {
        match (flag, cfg.get(key)) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(text)) => Ok(Some(
                archiver::units::parse_size(text).map_err(|e| anyhow::anyhow!("config option {key}: {e}"))?,
            )),
            (None, None) => Ok(None),
        }
    };
    let interval = match (checkpoint_interval, cfg.get("checkpoint-interval")) {
        (Some(v), _) => Some(*v),
        (None, Some(t)) => Some(t.parse::<u64>().map_err(|_| {
            anyhow::anyhow!("config option checkpoint-interval: {t:?} is not a whole number of seconds")
        })?),
        (None, None) => None,
    };
    let checkpoint_bytes = size(*checkpoint_bytes, "checkpoint-bytes")?;
    // As tarsnap refuses below its 1 MB: each checkpoint stores a record and flushes a
    // pack, so a tiny size turns a backup into thousands of tiny objects.
    if let Some(n) = checkpoint_bytes.filter(|&n| n < MIN_CHECKPOINT_BYTES) {
        anyhow::bail!(
            "--checkpoint-bytes {n} is too small: checkpoints must be at least 1M (1048576 bytes) apart"
        );
    }
    if interval == Some(0) {
        anyhow::bail!("--checkpoint-interval must be at least 1 second");
    }
    let control = signals::install()?;
    let limits = Limits {
        checkpoint_bytes,
        checkpoint_interval: interval.map(std::time::Duration::from_secs),
        maxbw: size(*maxbw, "maxbw")?,
        control,
    };
    let session = Session::open(&settings)?;
    let opts = CreateOptions {
        name: name.clone(),
        paths: paths.clone(),
        limits,
        keep_part: *keep_part || cfg.flag("keep-part"),
        select,
        creationtime: *creationtime,
        scan_totals: mode.is_some(),
        dry_run: *dry_run,
        stdin_name: stdin_name.clone(),
        sources: Vec::new(),
        command: Vec::new(),
    };
    let started = std::time::Instant::now();
    let res = create(&session, &opts, &progress)?;
    if out.json {
        let mut v = json::archive(&res.archive);
        v["message_type"] = "summary".into();
        v["command"] = "create".into();
        v["warnings"] = res.warnings.into();
        v["stopped"] = res.stopped.clone().into();
        v["duration_seconds"] = started.elapsed().as_secs_f64().into();
        v["dry_run"] = (*dry_run).into();
        out.json(&v)?;
    }
    if *dry_run && !out.json {
        let s = &res.archive.stats;
        progress(Event::Notice(format!(
            "dry run: {name:?} would hold {} files, {} directories and {} symlinks, {} in all, of which {} would be new; nothing was stored",
            s.files,
            s.dirs,
            s.symlinks,
            archiver::units::human(s.raw),
            archiver::units::human(s.new_raw)
        )));
    }
    if *dry_run {
        return Ok(if res.warnings > 0 { Done::Incomplete } else { Done::Complete });
    }
    if let Some(reason) = &res.stopped {
        progress(Event::Notice(format!("{reason}: stored what was done as {:?}", res.archive.name)));
        return Ok(Done::Incomplete);
    }
    if (*print_stats || cfg.flag("print-stats")) && !out.json {
        let report = query::created_stats(&session, &res.archive, &progress)?;
        print_stats_table(&report, true, &mut |l| {
            out.err_line(l);
            Ok(())
        })?;
    }
    if res.warnings > 0 {
        progress(Event::Notice(format!(
            "archive {name:?} was stored but is incomplete: {} problem(s) reported above",
            res.warnings
        )));
        return Ok(Done::Incomplete);
    }
    Ok(Done::Complete)
}
