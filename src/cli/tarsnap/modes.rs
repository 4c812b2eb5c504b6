//! tarsnap's modes over archiver's library: each resolves where the repository, key and cache
//! are (`place`), calls the same functions as archiver's own commands, and prints what tarsnap
//! prints, where it prints it. Library notices are dropped; warnings become `tarsnap: ...` lines
//! and make the run end with tarsnap's error exit (1, or 2 after the repository changed).

use super::format::{local_time, Table};
use super::options::{io_text, Mode, Opts};
use super::{err, Fail, Ran};
use archiver::progress::Event;
use archiver::query;
use archiver::session::Session;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

pub fn run(mode: Mode, o: &Opts, operands: &[OsString], argv: &[OsString]) -> Result<Ran, Fail> {
    let settings = super::place::settings(o, mode)?;
    if mode == Mode::InitializeCachedir {
        std::fs::create_dir_all(&settings.cachedir)
            .map_err(|e| Fail::msg(format!("Failed to ensure that cachedir exists: {}", io_text(&e))))?;
        return Ok(Ran::default());
    }
    let session = Session::open(&settings).map_err(fail)?;
    let warned = AtomicBool::new(false);
    let letter = match mode {
        Mode::Create => Some('a'),
        Mode::Extract => Some('x'),
        _ => None,
    };
    let (verbose, quiet) = (o.verbose, o.quiet);
    let progress = |e: Event| match e {
        Event::Warning(m) => {
            warned.store(true, Relaxed);
            err(&m);
        }
        Event::LeftOut(m) if !quiet => err(&m),
        Event::File(path) if verbose > 0 => {
            if let Some(l) = letter {
                let _ = writeln!(std::io::stderr().lock(), "{l} {path}");
            }
        }
        _ => {}
    };
    let mut ran = match mode {
        Mode::Create => super::create::create(&session, o, operands, argv, &progress)?,
        Mode::Extract => super::read::extract(&session, o, operands, &progress)?,
        Mode::List => super::read::list(&session, o, operands, &progress)?,
        Mode::Read => super::read::read(&session, o, &progress)?,
        Mode::Delete => delete(&session, o, &progress)?,
        Mode::ListArchives => list_archives(&session, o, &progress)?,
        Mode::PrintStats => print_stats(&session, o, &progress)?,
        Mode::Recover | Mode::Fsck | Mode::FsckPrune | Mode::Nuke => repair(&session, mode, &progress)?,
        Mode::VerifyConfig | Mode::InitializeCachedir => Ran::default(),
    };
    ran.errors |= warned.load(Relaxed);
    Ok(ran)
}

/// A library error as one `tarsnap: ...` line, exit 1 (2 when it says the repository changed).
pub fn fail(e: anyhow::Error) -> Fail {
    let code = if e.downcast_ref::<archiver::txn::RepositoryChanged>().is_some() { 2 } else { 1 };
    Fail { message: Some(format!("{e:#}").replace('\n', " ")), usage: false, code }
}

/// A failure inside a mode that ran: printed, and counted as tarsnap counts a runtime error.
pub fn failed(e: anyhow::Error, ran: &mut Ran) {
    ran.modified |= e.downcast_ref::<archiver::txn::RepositoryChanged>().is_some();
    ran.errors = true;
    err(&format!("{e:#}").replace('\n', " "));
}

/// Whether archive `name` exists; if not, tarsnap's two lines.
pub fn exists(session: &Session, name: &str, then: &str) -> Result<bool, Fail> {
    let head = session.head().map_err(fail)?;
    if head.0.find(name).is_some() {
        return Ok(true);
    }
    err(&format!("Archive does not exist: {name}"));
    err(then);
    Ok(false)
}

/// Names read from a `-T` file (`-` for standard input): one per line, or NUL-separated with
/// `--null`.
pub fn names_from(path: &std::path::Path, null: bool) -> Result<Vec<OsString>, Fail> {
    use std::io::Read;
    let mut buf = Vec::new();
    let read = match path.as_os_str() == "-" {
        true => std::io::stdin().lock().read_to_end(&mut buf),
        false => std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf)),
    };
    read.map_err(|e| Fail::msg(format!("Couldn't open {}: {}", path.display(), io_text(&e))))?;
    let sep = if null { b'\0' } else { b'\n' };
    Ok(buf
        .split(|&b| b == sep)
        .map(|l| if null { l } else { l.strip_suffix(b"\r").unwrap_or(l) })
        .filter(|l| !l.is_empty())
        .map(|l| OsStr::from_bytes(l).to_os_string())
        .collect())
}

/// All archives' sizes (from the manifest) and the unique data (from the cache).
pub fn totals(
    session: &Session,
    progress: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<((u64, u64), (u64, u64))> {
    let head = session.head()?;
    let all = head.0.archives.iter().fold((0, 0), |(r, s), a| (r + a.stats.raw, s + a.stats.stored));
    let (raw, stored, _) = session.open_cache(&head, progress)?.totals()?;
    Ok((all, (raw, stored)))
}

fn delete(session: &Session, o: &Opts, progress: &(dyn Fn(Event) + Sync)) -> Result<Ran, Fail> {
    let mut ran = Ran::default();
    let table = Table { humanize: o.humanize };
    for name in &o.files {
        if o.verbose > 0 {
            let _ = writeln!(std::io::stderr().lock(), "Deleting archive \"{name}\"");
        }
        let head = match session.head() {
            Ok(h) => h,
            Err(e) => {
                failed(e, &mut ran);
                break;
            }
        };
        if head.0.find(name).is_none() {
            err(&format!("Archive does not exist: {name}"));
            if o.keep_going {
                continue;
            }
            err("Error deleting archive");
            ran.errors = true;
            break;
        }
        let own = head.0.find(name).map_or((0, 0), |a| (a.stats.raw, a.stats.stored));
        let before = match o.print_stats.then(|| totals(session, progress)).transpose() {
            Ok(b) => b,
            Err(e) => {
                failed(e, &mut ran);
                break;
            }
        };
        if let Err(e) = archiver::delete::delete(session, std::slice::from_ref(name), progress) {
            failed(e, &mut ran);
            err("Error deleting archive");
            break;
        }
        ran.modified = true;
        if let Some((_, (raw0, stored0))) = before {
            let (all, unique) = match totals(session, progress) {
                Ok(t) => t,
                Err(e) => {
                    failed(e, &mut ran);
                    break;
                }
            };
            let label = if o.files.len() > 1 { name.as_str() } else { "This archive" };
            let text = [
                table.header(),
                table.row("All archives", all),
                table.row("  (unique data)", unique),
                table.row(label, own),
                table.row("Deleted data", (raw0.saturating_sub(unique.0), stored0.saturating_sub(unique.1))),
            ]
            .concat();
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
    Ok(ran)
}

fn list_archives(session: &Session, o: &Opts, progress: &(dyn Fn(Event) + Sync)) -> Result<Ran, Fail> {
    if !o.files.is_empty() {
        err("--list-archives: can only use -f with --hashes");
        err("Error listing archives");
        return Ok(Ran { errors: true, modified: false });
    }
    let archives = query::list(session).map_err(fail)?;
    let (rec, field, word): (&[u8], &[u8], &[u8]) = match o.null_output {
        true => (b"\0", b"\0\0", b"\0\0\0"),
        false => (b"\n", b"\t", b" "),
    };
    let head = session.head().map_err(fail)?;
    let cache = match o.verbose > 1 {
        true => Some(session.open_cache(&head, progress).map_err(fail)?),
        false => None,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for a in archives {
        let mut line = a.name.as_bytes().to_vec();
        if o.verbose > 0 {
            line.extend_from_slice(field);
            line.extend_from_slice(local_time(a.time, "%F %T").as_bytes());
        }
        if let Some(cache) = &cache {
            let root = archiver::reader::locate(cache, &a.root)
                .and_then(|loc| archiver::reader::fetch(session, &a.root, &loc))
                .and_then(|b| archiver::archive::Root::decode(&b))
                .map_err(fail)?;
            line.extend_from_slice(field);
            for (i, arg) in root.command.iter().enumerate() {
                if i > 0 {
                    line.extend_from_slice(word);
                }
                line.extend_from_slice(arg);
            }
        }
        line.extend_from_slice(rec);
        if out.write_all(&line).is_err() {
            return Ok(Ran::default()); // a closed pipe: the reader has what it wanted
        }
    }
    let _ = out.flush();
    Ok(Ran::default())
}

fn print_stats(session: &Session, o: &Opts, progress: &(dyn Fn(Event) + Sync)) -> Result<Ran, Fail> {
    let table = Table { humanize: o.humanize };
    let (all, unique) = totals(session, progress).map_err(fail)?;
    let mut text =
        [table.header(), table.row("All archives", all), table.row("  (unique data)", unique)].concat();
    let head = session.head().map_err(fail)?;
    let names: Vec<String> = match &o.files[..] {
        [star] if star == "*" => head.0.archives.iter().map(|a| a.name.clone()).collect(),
        names => names.to_vec(),
    };
    let mut ran = Ran::default();
    for name in &names {
        match head.0.find(name) {
            Some(a) => {
                text.push_str(&table.row(name, (a.stats.raw, a.stats.stored)));
                text.push_str(&table.row("  (unique data)", (a.stats.new_raw, a.stats.new_stored)));
            }
            None => {
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
                text.clear();
                err(&format!("Archive does not exist: {name}"));
                err("Error generating archive statistics");
                ran.errors = true;
                break;
            }
        }
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(ran)
}

/// `--recover`, `--fsck`, `--fsck-prune`, `--nuke`.
fn repair(session: &Session, mode: Mode, progress: &(dyn Fn(Event) + Sync)) -> Result<Ran, Fail> {
    let mut ran = Ran::default();
    match mode {
        Mode::Recover => {
            let how = archiver::txn::recover::How::default();
            match archiver::txn::lock(session, "recover", progress, how) {
                Ok(w) => ran.modified = w.recovered.found > 0,
                Err(e) => {
                    failed(e, &mut ran);
                    err("Error recovering archive");
                }
            }
        }
        Mode::Fsck | Mode::FsckPrune => {
            let opts = archiver::fsck::FsckOptions {
                prune: mode == Mode::FsckPrune,
                verify_data: false,
                sample: None,
            };
            // A prune may have deleted data before a failure.
            ran.modified = mode == Mode::FsckPrune;
            match archiver::fsck::fsck(session, &opts, progress) {
                Ok(report) if !report.is_clean() => {
                    for line in report.lines() {
                        err(&line);
                    }
                    err("Error fscking archives");
                    ran.errors = true;
                }
                Ok(_) => {}
                Err(e) => {
                    failed(e, &mut ran);
                    err("Error fscking archives");
                }
            }
        }
        _ => {
            // Every archive's name must be readable to delete them all.
            session
                .require(
                    &[archiver::access::Perm::Read, archiver::access::Perm::Delete],
                    "delete all archives (--nuke)",
                )
                .map_err(fail)?;
            let _ = writeln!(std::io::stderr().lock(), "Please type 'No Tomorrow' to continue");
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() || line.is_empty() {
                err("Error reading string from standard input");
                return Ok(Ran { errors: true, modified: false });
            }
            if line != "No Tomorrow\n" {
                err("You didn't type 'No Tomorrow'");
                return Ok(Ran { errors: true, modified: false });
            }
            let names: Vec<String> =
                session.head().map_err(fail)?.0.archives.iter().map(|a| a.name.clone()).collect();
            if !names.is_empty() {
                match archiver::delete::delete(session, &names, progress) {
                    Ok(_) => ran.modified = true,
                    Err(e) => {
                        failed(e, &mut ran);
                        err("Error nuking archives");
                    }
                }
            }
        }
    }
    Ok(ran)
}
