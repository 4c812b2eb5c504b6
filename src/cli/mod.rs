//! The `archiver` binary's commands: each resolves its inputs, calls the library, and prints.

pub mod args;
mod create;
pub mod docs;
pub mod json;
mod meter;
mod newest;
pub mod output;
pub mod passphrase;
mod prune;
pub mod signals;
pub mod tarsnap;

use archiver::extract::{extract, ExtractOptions};
use archiver::progress::Event;
use archiver::query;
use archiver::session::Session;
use args::{Cli, Cmd};
use output::Output;

/// How a successful command ended: complete, incomplete (`create` with warnings or stopped early
/// as `NAME.part`), or an extract that skipped entries, restored files cut short (`[partial]`) or
/// restored some without their owner (both exit code 3).
pub enum Done {
    Complete,
    Incomplete,
    Skipped,
}

pub fn run(cli: Cli) -> anyhow::Result<Done> {
    let (mut settings, cfg) = cli.resolve()?;
    let quiet = cli.quiet || cfg.flag("quiet");
    let mode = progress_mode(&cli, quiet);
    let unit = match cli.cmd {
        Cmd::Create { .. } | Cmd::Extract { .. } => "files",
        Cmd::Fsck { .. } => "archives",
        _ => "steps",
    };
    let meter = mode.map(|_| std::sync::Arc::new(meter::Meter::new(unit)));
    let out = &Output {
        verbose: cli.verbose,
        quiet,
        json: cli.json,
        warnings: std::sync::atomic::AtomicU64::new(0),
        summarized: Default::default(),
        ticker: std::sync::Mutex::new(meter.clone().zip(mode).map(|(m, mode)| meter::Ticker::start(m, mode))),
        meter,
    };
    let progress = |e: Event| out.event(e);
    // tarsnap warns about a key file others can read; so do we, once, for every command that
    // reads one (not counted as a warning about the command's result).
    let method = match (&cli.passphrase, cfg.get("passphrase")) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(text)) => Some(
            passphrase::parse_method(text).map_err(|e| anyhow::anyhow!("config option passphrase: {e}"))?,
        ),
        (None, None) => None,
    };
    if !matches!(cli.cmd, Cmd::Keygen { .. } | Cmd::Serve { .. } | Cmd::Completions { .. } | Cmd::Man { .. })
    {
        if let Some(w) = archiver::keyfile::exposure(&settings.keyfile) {
            out.aside(&w);
        }
        if archiver::keyfile::is_passphrased(&settings.keyfile) {
            settings.passphrase = Some(passphrase::existing(method.as_ref(), &settings.keyfile)?);
        }
    }
    match &cli.cmd {
        Cmd::Keygen { new } => {
            // The passphrase first: a missing one fails before scrypt is calibrated.
            let pass = match new.passphrased {
                true => Some(passphrase::new(method.as_ref(), &settings.keyfile)?),
                false => None,
            };
            let kdf = new.kdf();
            let id = query::keygen(&settings, pass.as_ref().zip(kdf))?;
            progress(Event::Notice(format!(
                "created key file {} and repository {} (id {id}); keep a copy of the key file somewhere safe",
                settings.keyfile.display(),
                settings.repo
            )));
        }
        Cmd::Keymgmt { outkeyfile, read, write, delete, new, new_passphrase, revoke_write } => {
            use archiver::access::Perm;
            let mut keys = archiver::keyfile::read_with(&settings.keyfile, settings.passphrase.as_ref())?;
            let perms: Vec<Perm> = [(*read, Perm::Read), (*write, Perm::Write), (*delete, Perm::Delete)]
                .into_iter()
                .filter_map(|(on, p)| on.then_some(p))
                .collect();
            let pass = match new.passphrased {
                true => Some(passphrase::new(new_passphrase.as_ref(), outkeyfile)?),
                false => None,
            };
            let kdf = new.kdf();
            if *revoke_write {
                // What the new key file gets is checked before the revocation is stored.
                archiver::keyfile::restricted(&keys, &perms)?;
                keys.access.set(Perm::Write, revoke(&settings, outkeyfile, &progress)?);
            }
            archiver::keyfile::write_restricted(outkeyfile, &keys, &perms, pass.as_ref().zip(kdf))
                .map_err(|e| match revoke_write {
                    true => e.context("the revocation is stored, but its new write key was not written: run `archiver keymgmt --revoke-write` again (with this key file) to put another in force"),
                    false => e,
                })?;
            let names: Vec<&str> = perms.iter().map(|p| p.name()).collect();
            let protection = if kdf.is_some() { "protected by a passphrase" } else { "without a passphrase" };
            let reads = match (keys.keys.data.is_some(), perms.contains(&Perm::Read)) {
                (true, false) => "; it cannot read archives (it holds no data-secret)",
                (false, false) => "; this repository's format (1) lets it read archives if it holds a copy of them: only `archiver serve` refuses its reads",
                _ => "",
            };
            progress(Event::Notice(format!(
                "wrote key file {} with the {} permission(s), {protection}{reads}",
                outkeyfile.display(),
                names.join(", ")
            )));
        }
        Cmd::Create { .. } => return create::run(&cli.cmd, &settings, &cfg, out, mode, &progress),
        Cmd::List => {
            let session = Session::open(&settings)?;
            // An interrupted run's checkpoint is listed only once a write command committed it.
            for (what, name) in archiver::txn::recover::pending_parts(&session) {
                progress(Event::Notice(format!(
                    "an interrupted `{}` is pending: the next write command (or `archiver recover`) commits its last checkpoint as \"{}\"",
                    query::escape_name(&what),
                    query::escape_name(&name)
                )));
            }
            for a in query::list(&session)? {
                let text = || match cli.verbose {
                    true => format!(
                        "{}\t{}\t{}",
                        query::escape_name(&a.name),
                        query::format_time(a.time),
                        archiver::units::human(a.stats.raw)
                    ),
                    false => query::escape_name(&a.name),
                };
                out.item(text, || json::archive(&a))?;
            }
        }
        Cmd::Ls { name } => {
            let session = Session::open(&settings)?;
            query::ls(&session, name, &progress, |n| {
                let text = || match cli.verbose {
                    true => query::long_line(&n),
                    false => query::escape(&n.path),
                };
                out.item(text, || json::node(&n))
            })?;
        }
        Cmd::Extract { name, patterns, to_stdout: true, .. } => {
            if out.json {
                anyhow::bail!("--to-stdout writes the file's bytes to stdout, where --json writes its lines: use one of them");
            }
            let [path] = &patterns[..] else {
                anyhow::bail!("--to-stdout writes one file: give its stored path (`archiver ls {name}` lists them) as the only PATH");
            };
            let session = Session::open(&settings)?;
            let mut stdout = std::io::stdout().lock();
            let w = match archiver::extract::to_writer(&session, name, path, &mut stdout, &progress) {
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
                {
                    return Err(output::BrokenPipe.into())
                }
                r => r?,
            };
            if w.partial {
                return Ok(Done::Skipped);
            }
        }
        Cmd::Extract { name, dir, patterns, resume, overwrite, print_stats, numeric_owner, .. } => {
            let session = Session::open(&settings)?;
            let opts = ExtractOptions {
                name: name.clone(),
                dir: dir.clone(),
                patterns: patterns.clone(),
                resume: *resume,
                overwrite: *overwrite,
                numeric_owner: *numeric_owner,
                keep: Default::default(),
            };
            let res = extract(&session, &opts, &progress)?;
            if out.json {
                out.json(&serde_json::json!({
                    "message_type": "summary",
                    "command": "extract",
                    "archive": query::escape_name(name),
                    "files_restored": res.files_restored,
                    "bytes_restored": res.bytes_restored,
                    "files_complete": res.files_complete,
                    "blocks_fetched": res.blocks_fetched,
                    "bytes_fetched": res.bytes_fetched,
                    "stored_bytes_fetched": res.stored_fetched,
                    "incomplete": res.incomplete,
                }))?;
            } else if *print_stats || cfg.flag("print-stats") {
                out.err_line(&res.summary());
            }
            let warnings = out.warnings.load(std::sync::atomic::Ordering::Relaxed);
            if warnings > res.incomplete {
                anyhow::bail!(
                    "archive {name:?} was not restored completely: {warnings} problem(s) reported above"
                );
            }
            if res.incomplete > 0 {
                progress(Event::Notice(format!(
                    "archive {name:?} was restored incompletely: {} entries skipped, cut short or restored without their owner (warnings above)",
                    res.incomplete
                )));
                return Ok(Done::Skipped);
            }
        }
        Cmd::Delete { names } => {
            let session = Session::open(&settings)?;
            let d = archiver::delete::delete(&session, names, &progress)?;
            if out.json {
                out.json(&serde_json::json!({
                    "message_type": "summary",
                    "command": "delete",
                    "archives_deleted": d.archives,
                    "packs_deleted": d.packs_deleted,
                    "packs_repacked": d.packs_repacked,
                    "bytes_reclaimed": d.reclaimed,
                }))?;
            }
        }
        Cmd::Prune { .. } => prune::run(&cli.cmd, &settings, out, &progress)?,
        Cmd::Generations => {
            let session = Session::open(&settings)?;
            let gens = archiver::history::generations(&session)?;
            if out.json {
                for v in json::generations(&gens) {
                    out.json(&v)?;
                }
            } else {
                for line in archiver::history::describe(&gens) {
                    out.line(&line)?;
                }
            }
        }
        Cmd::Rollback { generation } => {
            let session = Session::open(&settings)?;
            let gen = archiver::history::rollback(&session, *generation, &progress)?;
            if out.json {
                let v = serde_json::json!({ "message_type": "summary", "command": "rollback", "generation": gen, "from": generation });
                out.json(&v)?;
            }
        }
        Cmd::Recover { discard_damaged } => {
            let session = Session::open(&settings)?;
            let how = archiver::txn::recover::How { discard_damaged: *discard_damaged, ..Default::default() };
            let writing = archiver::txn::lock(&session, "recover", &progress, how)?;
            if writing.recovered.found == 0 {
                progress(Event::Notice("nothing to recover".into()));
            }
        }
        Cmd::Serve { listen, store, lock_ttl, tls_cert, tls_key, allow_create, body_timeout } => {
            let repos: Box<dyn archiver::serve::RepoFactory> = match store.to_str() {
                Some(url) if url.starts_with("s3://") => Box::new(archiver::serve::S3Repos::new(url)?),
                _ => Box::new(archiver::serve::LocalDirs::new(store)?),
            };
            let opts = archiver::serve::ServeOptions {
                listen: listen.clone(),
                lock_ttl: std::time::Duration::from_secs((*lock_ttl).max(1)),
                tls: tls_cert.clone().zip(tls_key.clone()),
                allow_create: *allow_create,
                body_timeout: std::time::Duration::from_secs((*body_timeout).max(1)),
            };
            // A request whose handler panics gets 500 and the server lives on (serve::net): say so in
            // one line instead of a panic message and backtrace.
            std::panic::set_hook(Box::new(|info| {
                let at =
                    info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let what = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                output::err(&format!(
                    "archiver: warning: one request failed with an internal error ({what}{at}); it was answered 500 and the server goes on"
                ));
            }));
            archiver::serve::serve(&opts, repos, &progress)?;
        }
        Cmd::Fsck { rebuild_config: true, .. } => {
            for line in archiver::rebuild::rebuild_config(&settings)? {
                out.item(|| line.clone(), || json::message("notice", &line))?;
            }
        }
        Cmd::Fsck { prune, verify_data, .. } => {
            let session = Session::open(&settings)?;
            let opts = archiver::fsck::FsckOptions {
                prune: *prune,
                verify_data: verify_data.is_some(),
                sample: *verify_data,
            };
            let report = archiver::fsck::fsck(&session, &opts, &progress)?;
            if out.json {
                out.json(&json::fsck(&report))?;
            } else {
                for line in report.lines() {
                    out.line(&line)?;
                }
            }
            if !report.is_clean() {
                anyhow::bail!("{}", report.verdict());
            }
        }
        Cmd::Stats { names } => {
            let session = Session::open(&settings)?;
            let report = query::stats(&session, names, &progress)?;
            if out.json {
                out.json(&json::stats_row("all", None, report.all.unwrap_or_default(), None))?;
                out.json(&json::stats_row("unique", None, report.unique, None))?;
                for a in &report.archives {
                    let new = Some((a.stats.new_raw, a.stats.new_stored));
                    out.json(&json::stats_row("archive", Some(&a.name), (a.stats.raw, a.stats.stored), new))?;
                }
            } else {
                print_stats_table(&report, false, &mut |l| out.line(l))?;
            }
        }
        Cmd::Newest { glob, max_age } => newest::run(&settings, out, glob.as_deref(), *max_age)?,
        Cmd::Completions { shell } => docs::print(&docs::completions(*shell))?,
        Cmd::Man { dir: None } => docs::print(&docs::man_page())?,
        Cmd::Man { dir: Some(dir) } => {
            let names = docs::write_man_pages(dir)?;
            progress(Event::Notice(format!("wrote {} into {}", names.join(", "), dir.display())));
        }
    }
    Ok(Done::Complete)
}

/// How progress is shown, if at all: only for the long commands; on a terminal unless
/// `--no-progress` or `--quiet`; elsewhere only with `--progress`; as `status` objects with `--json`.
fn progress_mode(cli: &Cli, quiet: bool) -> Option<meter::Mode> {
    use std::io::IsTerminal;
    let long = matches!(
        cli.cmd,
        Cmd::Create { .. } | Cmd::Extract { .. } | Cmd::Fsck { .. } | Cmd::Delete { .. } | Cmd::Prune { .. }
    );
    let tty = std::io::stderr().is_terminal();
    let on = long && !cli.no_progress && (cli.progress || (tty && !quiet));
    match (on, cli.json, tty) {
        (false, _, _) => None,
        (true, true, _) => Some(meter::Mode::Json),
        (true, false, true) => Some(meter::Mode::Bar),
        (true, false, false) => Some(meter::Mode::Lines),
    }
}

/// tarsnap's table. On create, the archive's row is "This archive" and "New data".
pub(super) fn print_stats_table(
    r: &query::StatsReport,
    just_created: bool,
    emit: &mut dyn FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let row = |label: &str, (a, b): (u64, u64)| format!("{label:<32} {a:>16} {b:>16}");
    emit(&format!("{:<32} {:>16} {:>16}", "", "Total size", "Compressed size"))?;
    if let Some(all) = r.all {
        emit(&row("All archives", all))?;
    }
    emit(&row("  (unique data)", r.unique))?;
    for a in &r.archives {
        let label = if just_created { "This archive".to_string() } else { query::escape_name(&a.name) };
        emit(&row(&label, (a.stats.raw, a.stats.stored)))?;
        emit(&row("New data", (a.stats.new_raw, a.stats.new_stored)))?;
    }
    Ok(())
}

/// Retires the write key in force in the repository `settings` names (`archiver::revoke`);
/// returns the new write key's secret for `outkeyfile`, which must not exist yet (checked first:
/// the new key exists nowhere else once the revocation is stored).
fn revoke(
    settings: &archiver::session::Settings,
    outkeyfile: &std::path::Path,
    progress: &dyn Fn(Event),
) -> anyhow::Result<[u8; 32]> {
    if outkeyfile.symlink_metadata().is_ok() {
        anyhow::bail!(
            "{} exists; a key file is never overwritten: name a new file with --outkeyfile",
            outkeyfile.display()
        );
    }
    let session = Session::open(settings)?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let r = archiver::revoke::revoke_write(&session, now)?;
    progress(Event::Notice(format!(
        "retired the write key in force in repository {} (access list {}); key files holding it can no longer write or delete there",
        settings.repo, r.list.generation
    )));
    Ok(r.write_seed)
}
