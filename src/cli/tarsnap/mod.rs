//! archiver speaking tarsnap 1.0.41's command line (docs/TARSNAP.md): chosen when the program is
//! invoked as `tarsnap`, `tarsnap-keygen` or `tarsnap-keymgmt` (a symlink to the binary), or
//! explicitly as `archiver tarsnap ARGS`. A thin layer over the same library calls as archiver's
//! own commands: it parses tarsnap's options and config files, and prints tarsnap's output and
//! messages (`tarsnap: ...`), its exit codes (0; 1 failed; 2 failed after the repository
//! changed) and nothing else: no progress, no notices, since tools parse what tarsnap prints,
//! often from a terminal where stdout and stderr are merged.

mod create;
mod format;
pub(crate) mod getopt;
mod keys;
mod modes;
mod options;
mod place;
mod read;

use options::{Mode, Opts};
use std::ffi::OsString;
use std::io::Write;

/// The tarsnap release whose interface this implements (`tarsnap --version`).
pub const VERSION: &str = "1.0.41";

/// The program name in messages.
pub const PROG: &str = "tarsnap";

/// How a tarsnap run failed before or instead of doing its work: a message (printed after
/// `tarsnap: `), the usage text, and the exit code.
#[derive(Debug)]
pub struct Fail {
    pub message: Option<String>,
    pub usage: bool,
    pub code: i32,
}

impl Fail {
    pub fn msg(m: String) -> Fail {
        Fail { message: Some(m), usage: false, code: 1 }
    }

    pub fn usage() -> Fail {
        Fail { message: None, usage: true, code: 1 }
    }
}

/// What a mode that ran reports: whether errors were printed (tarsnap's `return_value`) and
/// whether the repository changed in this run (its `storage_modified`).
#[derive(Default)]
pub struct Ran {
    pub errors: bool,
    pub modified: bool,
}

/// Which tarsnap program the binary was invoked as, from `argv[0]`'s file name.
pub fn invoked_as(argv0: &std::ffi::OsStr) -> Option<&'static str> {
    let name = std::path::Path::new(argv0).file_name()?.to_str()?;
    ["tarsnap", "tarsnap-keygen", "tarsnap-keymgmt"].into_iter().find(|p| *p == name)
}

/// Runs `program` (`tarsnap`, `tarsnap-keygen`, `tarsnap-keymgmt`) with `argv` (the first word
/// the name it was invoked as) and returns the exit code.
pub fn main(program: &str, argv: Vec<OsString>) -> i32 {
    let _ = PROGRAM.set(match program {
        "tarsnap-keygen" => "tarsnap-keygen",
        "tarsnap-keymgmt" => "tarsnap-keymgmt",
        _ => PROG,
    });
    let result = match program {
        "tarsnap-keygen" => keys::keygen(&argv[1..]),
        "tarsnap-keymgmt" => keys::keymgmt(&argv[1..]),
        _ => tarsnap(argv),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            if let Some(m) = &f.message {
                err(m);
            }
            if f.usage {
                usage();
            }
            if f.code == 2 {
                return finish(Ran { errors: true, modified: true });
            }
            f.code
        }
    }
}

/// The program messages are signed with: `tarsnap`, `tarsnap-keygen` or `tarsnap-keymgmt`.
static PROGRAM: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// One line on stderr, after `tarsnap: ` (or the key tool's name).
pub fn err(msg: &str) {
    let p = PROGRAM.get().copied().unwrap_or(PROG);
    let _ = writeln!(std::io::stderr().lock(), "{p}: {msg}");
}

fn usage() {
    let p = PROG;
    let text = format!(
        "Usage:\n  List:          {p} [options...] -tf <archive>\n  Extract:       {p} [options...] -xf <archive>\n  Create:        {p} [options...] -cf <archive> [filenames...]\n  Delete:        {p} [options...] -df <archive>\n  Tar output:    {p} [options...] -rf <archive>\n  List archives: {p} [options...] --list-archives\n  Print stats:   {p} [options...] --print-stats\n  Help:    {p} --help\n"
    );
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn help() {
    let p = PROG;
    let text = format!(
        "{p}: create and manipulate archives on the Tarsnap backup service\nFirst option must be a mode specifier:\n  -c Create  -d Delete  -r Output as tar file  -t List  -x Extract\n  --list-archives List archives  --print-stats Print archive statistics\nCommon Options:\n  -f <archive>  Archive name\n  --keyfile <file>        Key file\n  --cachedir <directory>  Cache directory\n  -v    Verbose\n  -w    Interactive\nCreate: {p} -c [options] [<file> | <dir> | @@<archive> | -C <dir>] ...\n  <file>, <dir>  add these items to archive\n  --exclude <pattern>  Skip files that match pattern\n  -C <dir>  Change to <dir> before processing remaining files\n  @@<archive>  Add entries from tarsnap archive <archive>\nList: {p} -t [options] [<patterns>]\n  <patterns>  If specified, list only entries that match\nExtract: {p} -x [options] [<patterns>]\n  <patterns>  If specified, extract only entries that match\n  -k    Keep (don't overwrite) existing files\n  -m    Don't restore modification times\n  -O    Write entries to stdout, don't restore to disk\n  -p    Restore permissions (including ACLs, owner, file flags)\n{p} {VERSION}\n(archiver {}: archiver's tarsnap mode; docs/TARSNAP.md lists what differs)\n",
        env!("CARGO_PKG_VERSION")
    );
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `tarsnap ARGS`: options, config files, the checks tarsnap makes in its order, then the mode.
fn tarsnap(argv: Vec<OsString>) -> Result<i32, Fail> {
    let (given, mut operands) =
        getopt::parse(&argv[1..]).map_err(|e| Fail { message: e.0, usage: true, code: 1 })?;
    let mut o = Opts::default();
    let mut delayed = Vec::new();
    for g in &given {
        let arg = g.arg.as_ref().map(|a| a.to_string_lossy().into_owned());
        let mode = match g.opt {
            "create" => Some((Mode::Create, "-c")),
            "delete" => Some((Mode::Delete, "-d")),
            "read" => Some((Mode::Read, "-r")),
            "list" => Some((Mode::List, "-t")),
            "extract" => Some((Mode::Extract, "-x")),
            "fsck" => Some((Mode::Fsck, "--fsck")),
            "fsck-prune" => Some((Mode::FsckPrune, "--fsck-prune")),
            "initialize-cachedir" => Some((Mode::InitializeCachedir, "--initialize-cachedir")),
            "list-archives" => Some((Mode::ListArchives, "--list-archives")),
            "nuke" => Some((Mode::Nuke, "--nuke")),
            "recover" => Some((Mode::Recover, "--recover")),
            "verify-config" => Some((Mode::VerifyConfig, "--verify-config")),
            _ => None,
        };
        if let Some(new) = mode {
            if let Some(old) = o.mode {
                return Err(Fail::msg(format!("Can't specify both {} and {}", new.1, old.1)));
            }
            o.mode = Some(new);
            if new.0 == Mode::List {
                o.verbose += 1;
            }
            continue;
        }
        match g.opt {
            "version" => {
                println!("{PROG} {VERSION}");
                return Ok(0);
            }
            "help" => {
                help();
                return Ok(0);
            }
            "verbose" => o.verbose += 1,
            "file" => o.files.push(arg.unwrap_or_default()),
            "directory" => match arg.as_deref() {
                Some("") => return Err(Fail::msg("Meaningless option: -C ''".into())),
                _ => o.dir = g.arg.clone().map(Into::into),
            },
            "configfile" => o.configfiles.push(g.arg.clone().unwrap_or_default().into()),
            "no-default-config" => o.no_default_config = true,
            "files-from" => o.files_from.push(g.arg.clone().unwrap_or_default().into()),
            "exclude-from" => o.exclude_from.push(g.arg.clone().unwrap_or_default().into()),
            "null" => o.null = true,
            "null-output" => o.null_output = true,
            "keep-old-files" => o.keep_old = true,
            "keep-newer-files" => o.keep_newer = true,
            "one-file-system" => o.one_file_system = true,
            "dereference" | "h" => o.dereference = true,
            "numeric-owner" => o.numeric_owner = true,
            "to-stdout" => o.to_stdout = true,
            "keep-going" => o.keep_going = true,
            "resume-extract" => o.resume = true,
            "dry-run" => o.dry_run = true,
            "dump-config" => o.dump_config = true,
            "creationtime" => {
                let a = arg.unwrap_or_default();
                match strtol(&a) {
                    Some(t) if t != 0 => o.creationtime = Some(t),
                    _ => return Err(Fail::msg(format!("Invalid --creationtime argument: {a}"))),
                }
            }
            opt if options::REFUSED.contains(&opt) => {
                return Err(Fail::msg(format!(
                    "Option {} is not supported by archiver's tarsnap mode (docs/TARSNAP.md lists what is)",
                    g.spelled
                )))
            }
            opt if options::NO_EFFECT.contains(&opt) && opt != "absolute-paths" => {}
            "absolute-paths" => delayed.push((g.opt, arg, g.spelled.clone())),
            _ => delayed.push((g.opt, arg, g.spelled.clone())),
        }
    }
    if o.mode.is_none() && given.iter().any(|g| g.opt == "print-stats") {
        o.mode = Some((Mode::PrintStats, "--print-stats"));
    }
    // `-h` without a mode is tarsnap's help.
    if o.mode.is_none() && given.iter().any(|g| g.opt == "h") {
        help();
        return Ok(0);
    }
    if o.mode.is_none() && o.dump_config {
        o.mode = Some((Mode::VerifyConfig, "--verify-config"));
    }
    let Some((mode, modestr)) = o.mode else {
        return Err(Fail::msg(
            "Must specify one of -c, -d, -r, -t, -x, --list-archives, --print-stats, --fsck, --fsck-prune, or --nuke"
                .into(),
        ));
    };
    let mut absolute = false;
    for (opt, arg, _) in &delayed {
        if *opt == "absolute-paths" {
            absolute = true;
            continue;
        }
        o.apply(opt, arg.as_deref(), false)?;
    }
    for f in o.configfiles.clone() {
        o.config_file(&f, true)?;
    }
    if !o.no_default_config {
        for f in Opts::default_files() {
            o.config_file(&f, false)?;
        }
    }
    let needs_name = matches!(mode, Mode::Create | Mode::Delete | Mode::Extract | Mode::List | Mode::Read);
    if needs_name && o.files.is_empty() {
        if mode == Mode::Create && o.dry_run {
            o.files.push("(dry-run)".into());
        } else {
            return Err(Fail::msg("Archive name must be specified".into()));
        }
    }
    if o.files.len() > 1 && !matches!(mode, Mode::Delete | Mode::PrintStats | Mode::ListArchives) {
        return Err(Fail::msg(format!("Option -f may only be specified once in mode {modestr}")));
    }
    if mode == Mode::Create {
        match o.files[0].len() {
            0 => return Err(Fail::msg("Cannot create an archive with an empty name".into())),
            n if n > 1023 => {
                return Err(Fail::msg("Cannot create an archive with a name > 1023 characters".into()))
            }
            _ => {}
        }
    }
    // Options some modes alone take (tarsnap's `only_mode`).
    let only = |what: &str, ok: bool| match ok {
        true => Ok(()),
        false => Err(Fail::msg(format!("Option {what} is not permitted in mode {modestr}"))),
    };
    let cxt = matches!(mode, Mode::Create | Mode::Extract | Mode::List);
    let xt = matches!(mode, Mode::Extract | Mode::List);
    if !o.files.is_empty() {
        only("-f", needs_name || matches!(mode, Mode::PrintStats | Mode::ListArchives))?;
    }
    if o.dir.is_some() {
        only("-C", cxt)?;
    }
    if !o.files_from.is_empty() {
        only("-T", cxt)?;
    }
    if absolute {
        only("-P", cxt)?;
    }
    if o.null {
        only("--null", cxt)?;
    }
    if o.null_output {
        only("--null-output", xt || matches!(mode, Mode::ListArchives | Mode::PrintStats))?;
    }
    if o.one_file_system {
        only("--one-file-system", mode == Mode::Create)?;
    }
    if o.dereference {
        only("-L", mode == Mode::Create)?;
    }
    if o.dry_run {
        only("--dry-run", mode == Mode::Create)?;
    }
    if o.to_stdout {
        only("-O", xt)?;
    }
    if !operands.is_empty() && !cxt {
        return Err(Fail::msg("Cannot have unused command-line args in this mode.".into()));
    }
    if mode == Mode::VerifyConfig {
        return Ok(0);
    }
    if absolute && mode == Mode::Extract {
        return Err(Fail::msg(
            "Option -P is not supported with -x: archiver stores and restores paths relative to the target; restore with -C / to put files back at their absolute paths".into(),
        ));
    }
    for f in o.files_from.clone() {
        operands.extend(modes::names_from(&f, o.null)?);
    }
    let ran = modes::run(mode, &o, &operands, &argv)?;
    Ok(finish(ran))
}

/// tarsnap's ending: after errors, exit 1, or 2 when the repository changed in this run.
fn finish(ran: Ran) -> i32 {
    if !ran.errors {
        return 0;
    }
    err("Error exit delayed from previous errors.");
    if ran.modified {
        // tarsnap 1.0.41's words, missing space included: tools match on them.
        err("Data on server was modified, but it might notbe exactly what you requested");
        return 2;
    }
    1
}

/// C's `strtol(s, NULL, 0)`: an optional sign, `0x` hex, `0` octal or decimal, trailing text
/// ignored; `None` when no digit was read or it overflows.
fn strtol(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let v = i64::from_str_radix(&digits[..end], radix).ok()?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    #[test]
    fn strtol_reads_as_c_does() {
        use super::strtol;
        assert_eq!(strtol("1700000000"), Some(1_700_000_000));
        assert_eq!(strtol("123abc"), Some(123));
        assert_eq!(strtol("0x10"), Some(16));
        assert_eq!(strtol("010"), Some(8));
        assert_eq!(strtol("-5"), Some(-5));
        assert_eq!(strtol("abc"), None);
    }

    #[test]
    fn invoked_as_reads_the_file_name() {
        use super::invoked_as;
        use std::ffi::OsStr;
        assert_eq!(invoked_as(OsStr::new("/usr/local/bin/tarsnap")), Some("tarsnap"));
        assert_eq!(invoked_as(OsStr::new("tarsnap-keygen")), Some("tarsnap-keygen"));
        assert_eq!(invoked_as(OsStr::new("/bin/archiver")), None);
    }
}
