//! tarsnap's modes that read one archive: `-x` (restore, with `-k`, `--keep-newer-files`,
//! `-O`), `-t` (bsdtar's listing, with patterns) and `-r` (the archive as a tar stream on
//! stdout). A missing archive gets tarsnap's two lines; a closed stdout ends a listing quietly.

use super::format::{safe, Long};
use super::modes::{exists, failed};
use super::options::Opts;
use super::{err, Fail, Ran};
use archiver::progress::Event;
use archiver::query;
use archiver::session::Session;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub fn extract(
    session: &Session,
    o: &Opts,
    operands: &[OsString],
    progress: &(dyn Fn(Event) + Sync),
) -> Result<Ran, Fail> {
    let name = &o.files[0];
    if !exists(session, name, "Error opening archive")? {
        return Ok(Ran { errors: true, modified: false });
    }
    let patterns: Vec<String> = operands.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let mut ran = Ran::default();
    if o.to_stdout {
        let [path] = &patterns[..] else {
            return Err(Fail::msg(
                "-O writes one file in archiver's tarsnap mode: give its path as the only pattern".into(),
            ));
        };
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = archiver::extract::to_writer(session, name, path, &mut stdout, progress) {
            failed(e, &mut ran);
        }
        return Ok(ran);
    }
    let opts = archiver::extract::ExtractOptions {
        name: name.clone(),
        dir: o.dir.clone().unwrap_or_else(|| PathBuf::from(".")),
        patterns,
        resume: o.resume,
        // bsdtar replaces what is there unless -k (or --keep-newer-files) asks to keep it.
        overwrite: !o.resume && !o.keep_old && !o.keep_newer,
        numeric_owner: o.numeric_owner,
        keep: match (o.keep_old, o.keep_newer) {
            (true, _) => archiver::extract::Keep::Existing,
            (false, true) => archiver::extract::Keep::Newer,
            _ => archiver::extract::Keep::Nothing,
        },
    };
    match archiver::extract::extract(session, &opts, progress) {
        Ok(res) if res.incomplete > 0 => ran.errors = true,
        Ok(_) => {}
        Err(e) => failed(e, &mut ran),
    }
    Ok(ran)
}

/// Whether bsdtar's pattern `p` selects `path`: the path itself, or a directory above it.
fn selects(p: &[u8], path: &[u8]) -> bool {
    let p = p.strip_suffix(b"/").unwrap_or(p);
    let p = p.strip_prefix(b"./").unwrap_or(p);
    let (Ok(pat), Ok(s)) = (std::ffi::CString::new(p), std::ffi::CString::new(path)) else { return false };
    // SAFETY: both are NUL-terminated and outlive the call.
    if unsafe { libc::fnmatch(pat.as_ptr(), s.as_ptr(), 0) } == 0 {
        return true;
    }
    let mut at = path.len();
    while let Some(slash) = path[..at].iter().rposition(|&b| b == b'/') {
        let Ok(dir) = std::ffi::CString::new(&path[..slash]) else { return false };
        // SAFETY: as above.
        if unsafe { libc::fnmatch(pat.as_ptr(), dir.as_ptr(), 0) } == 0 {
            return true;
        }
        at = slash;
    }
    false
}

pub fn list(
    session: &Session,
    o: &Opts,
    operands: &[OsString],
    progress: &(dyn Fn(Event) + Sync),
) -> Result<Ran, Fail> {
    let name = &o.files[0];
    if !exists(session, name, "Error opening archive")? {
        return Ok(Ran { errors: true, modified: false });
    }
    let mut found = vec![false; operands.len()];
    let mut long = Long::new(o.iso_dates);
    let mut ran = Ran::default();
    let sep: &[u8] = if o.null_output { b"\0" } else { b"\n" };
    let listed = query::ls(session, name, progress, |n| {
        if !operands.is_empty() {
            let mut any = false;
            for (i, p) in operands.iter().enumerate() {
                if selects(p.as_bytes(), &n.path) {
                    found[i] = true;
                    any = true;
                }
            }
            if !any {
                return Ok(());
            }
        }
        let line = match o.verbose {
            0 | 1 => safe(&n.path),
            _ => long.line(&n, o.numeric_owner),
        };
        let write = |w: &mut dyn Write| w.write_all(line.as_bytes()).and_then(|_| w.write_all(sep));
        let r = match o.to_stdout {
            true => write(&mut std::io::stderr().lock()),
            false => write(&mut std::io::stdout().lock()),
        };
        r.map_err(anyhow::Error::from)
    });
    if let Err(e) = listed {
        if broken_pipe(&e) {
            return Ok(ran);
        }
        failed(e, &mut ran);
    }
    for (p, f) in operands.iter().zip(found) {
        if !f {
            err(&format!("{}: Not found in archive", p.to_string_lossy()));
            ran.errors = true;
        }
    }
    Ok(ran)
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn read(session: &Session, o: &Opts, progress: &(dyn Fn(Event) + Sync)) -> Result<Ran, Fail> {
    let name = &o.files[0];
    if !exists(session, name, "Error reading archive")? {
        return Ok(Ran { errors: true, modified: false });
    }
    let mut ran = Ran::default();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    match archiver::extract::to_tar(session, name, &mut out, progress).and_then(|w| {
        out.flush()?;
        Ok(w)
    }) {
        Ok(w) => ran.errors |= w.incomplete > 0,
        Err(e) if broken_pipe(&e) => {}
        Err(e) => failed(e, &mut ran),
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_select_paths_and_what_is_under_them() {
        use super::selects;
        assert!(selects(b"etc", b"etc"));
        assert!(selects(b"etc", b"etc/passwd"));
        assert!(selects(b"etc/", b"etc/passwd"));
        assert!(selects(b"*.txt", b"a.txt"));
        assert!(selects(b"e*", b"etc/x/y"));
        assert!(!selects(b"etc", b"etcetera"));
        assert!(!selects(b"x", b"etc/x"));
    }
}
