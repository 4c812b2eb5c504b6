//! tarsnap's `-c`: operands are paths, `@@ARCHIVE` (another archive's entries, copied without
//! reading or uploading file data) and `@FILE`/`@-` (a tar stream's entries); the whole command
//! line is recorded in the archive for `--list-archives -vv`; `--print-stats` prints the table
//! on stderr; SIGQUIT or `--maxbw` ends the archive as `NAME.part` with tarsnap's messages and
//! exit code 2. Checkpoints, recovery and crash safety are archiver's own.

use super::format::Table;
use super::modes::fail;
use super::options::Opts;
use super::{err, Fail, Ran};
use archiver::create::CreateOptions;
use archiver::inputs::Source;
use archiver::progress::Event;
use archiver::session::Session;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The most of the command line recorded, as tarsnap records at most 128 kB of it.
const MAX_ARGV: usize = 128_000;

pub fn create(
    session: &Session,
    o: &Opts,
    operands: &[OsString],
    argv: &[OsString],
    progress: &(dyn Fn(Event) + Sync),
) -> Result<Ran, Fail> {
    let name = o.files[0].clone();
    if let Some(d) = &o.dir {
        if std::env::set_current_dir(d).is_err() {
            // tarsnap 1.0.41 ends this message with a blank line of its own.
            return Err(Fail::msg(format!("could not chdir to '{}'\n", d.display())));
        }
    }
    let (mut paths, mut sources, mut absolute) = (Vec::new(), Vec::new(), false);
    for op in operands {
        let b = op.as_bytes();
        if b == b"-C" {
            return Err(Fail::msg(
                "-C among the files is not supported by archiver's tarsnap mode: give -C DIR before the files, or run once per directory".into(),
            ));
        }
        if let Some(archive) = b.strip_prefix(b"@@") {
            sources.push(Source::Archive(String::from_utf8_lossy(archive).into_owned()));
        } else if let Some(file) = b.strip_prefix(b"@") {
            sources.push(Source::Tar(PathBuf::from(OsStr::from_bytes(file))));
        } else {
            if b.starts_with(b"--") {
                err(&format!(
                    "List of objects to archive includes '{}'.  This might not be what you intended.",
                    op.to_string_lossy()
                ));
            }
            absolute |= b.starts_with(b"/");
            paths.push(PathBuf::from(op));
        }
    }
    if paths.is_empty() && sources.is_empty() {
        return Err(Fail::msg("no files or directories specified".into()));
    }
    let head = session.head().map_err(fail)?;
    if !o.dry_run && head.0.holds(&session.keys, &name) {
        err(&format!("An archive already exists with the name \"{name}\""));
        err("Error creating new archive");
        return Ok(Ran { errors: true, modified: false });
    }
    if absolute && !o.quiet {
        err("Removing leading '/' from member names");
    }
    let select = archiver::select::Selection {
        exclude: o.exclude.clone(),
        include: o.include.clone(),
        one_file_system: o.one_file_system,
        numeric_owner: o.numeric_owner,
        nodump: o.nodump,
        dereference: o.dereference,
        skip_synthetic: !o.insane_filesystems,
        ..Default::default()
    }
    .with_exclude_files(&o.exclude_from)
    .map_err(fail)?;
    let control = crate::cli::signals::install().map_err(fail)?;
    let mut command = Vec::new();
    let mut len = 0;
    for a in argv {
        len += a.len() + 1;
        if len > MAX_ARGV {
            err("Argument vector exceeds 128 kB in length; vector stored in archive is being truncated.");
            break;
        }
        command.push(a.as_bytes().to_vec());
    }
    let opts = CreateOptions {
        name: name.clone(),
        paths,
        limits: archiver::walker::Limits {
            checkpoint_bytes: o.checkpoint_bytes,
            checkpoint_interval: None,
            maxbw: o.maxbw,
            control,
        },
        keep_part: false,
        select,
        creationtime: o.creationtime,
        scan_totals: false,
        dry_run: o.dry_run,
        stdin_name: None,
        sources,
        command,
    };
    let mut ran = Ran::default();
    let res = match archiver::create::create(session, &opts, progress) {
        Ok(r) => r,
        Err(e) => {
            ran.modified = e.downcast_ref::<archiver::txn::RepositoryChanged>().is_some();
            ran.errors = true;
            err(&format!("{e:#}").replace('\n', " "));
            return Ok(ran);
        }
    };
    ran.modified = !o.dry_run;
    if res.stopped.is_some() {
        err("quit signal received or bandwidth limit reached; archive is being truncated");
        err("Archive truncated");
        ran.errors = true;
    }
    ran.errors |= res.warnings > 0;
    if o.print_stats {
        // After the commit: a failure here is an error after a change (exit 2), not a refusal.
        match stats_table(session, o, &res.archive.stats, progress) {
            Ok(text) => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            Err(e) => super::modes::failed(e, &mut ran),
        }
    }
    if o.totals && !ran.errors {
        let _ = writeln!(std::io::stderr().lock(), "Total bytes written: {}", res.archive.stats.raw);
    }
    Ok(ran)
}

/// tarsnap's table after `-c --print-stats`: all archives, the unique data, this archive and
/// the data it added.
fn stats_table(
    session: &Session,
    o: &Opts,
    s: &archiver::archive::Stats,
    progress: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<String> {
    let table = Table { humanize: o.humanize };
    let (all, unique) = super::modes::totals(session, progress)?;
    Ok([
        table.header(),
        table.row("All archives", all),
        table.row("  (unique data)", unique),
        table.row("This archive", (s.raw, s.stored)),
        table.row("New data", (s.new_raw, s.new_stored)),
    ]
    .concat())
}
