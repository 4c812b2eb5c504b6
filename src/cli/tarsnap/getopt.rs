//! tarsnap 1.0.41's command-line syntax (its `bsdtar_getopt`), word for word: an old-style first
//! word without a dash (`tarsnap cvf NAME dir`), bundled short options with run-in arguments
//! (`-cvfNAME`), `--long=value` or `--long value`, long options abbreviated to any unique prefix,
//! `-W long=value`; parsing stops at the first word without a dash or after `--`. Errors are
//! tarsnap's own messages (`Option --foo is not supported`); an unknown short letter has none
//! (tarsnap then prints its usage).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// tarsnap's short options: the letter, whether it takes an argument, the option it means.
const SHORT: &[(u8, bool, &str)] = &[
    (b'B', false, "read-full-blocks"),
    (b'C', true, "directory"),
    (b'c', false, "create"),
    (b'd', false, "delete"),
    (b'f', true, "file"),
    (b'H', false, "H"),
    (b'h', false, "h"),
    (b'I', true, "files-from"),
    (b'k', false, "keep-old-files"),
    (b'L', false, "dereference"),
    (b'l', false, "check-links"),
    (b'm', false, "modification-time"),
    (b'n', false, "norecurse"),
    (b'O', false, "to-stdout"),
    (b'o', false, "no-same-owner"),
    (b'P', false, "absolute-paths"),
    (b'p', false, "preserve-permissions"),
    (b'q', false, "fast-read"),
    (b'r', false, "read"),
    (b'S', false, "sparse"),
    (b's', true, "substitute"),
    (b'T', true, "files-from"),
    (b't', false, "list"),
    (b'U', false, "unlink-first"),
    (b'v', false, "verbose"),
    (b'W', true, "W"),
    (b'w', false, "interactive"),
    (b'X', true, "exclude-from"),
    (b'x', false, "extract"),
];

/// tarsnap's long options in its table's order (the order names the two options an ambiguous
/// abbreviation matches): the name, whether it takes an argument, the option it means.
const LONG: &[(&str, bool, &str)] = &[
    ("absolute-paths", false, "absolute-paths"),
    ("aggressive-networking", false, "aggressive-networking"),
    ("archive-names", true, "archive-names"),
    ("cachedir", true, "cachedir"),
    ("cd", true, "directory"),
    ("check-links", false, "check-links"),
    ("checkpoint-bytes", true, "checkpoint-bytes"),
    ("chroot", false, "chroot"),
    ("configfile", true, "configfile"),
    ("confirmation", false, "interactive"),
    ("create", false, "create"),
    ("creationtime", true, "creationtime"),
    ("csv-file", true, "csv-file"),
    ("debug-network-stats", false, "debug-network-stats"),
    ("dereference", false, "dereference"),
    ("directory", true, "directory"),
    ("disk-pause", true, "disk-pause"),
    ("dry-run", false, "dry-run"),
    ("dry-run-metadata", false, "dry-run-metadata"),
    ("dump-config", false, "dump-config"),
    ("exclude", true, "exclude"),
    ("exclude-from", true, "exclude-from"),
    ("extract", false, "extract"),
    ("fast-read", false, "fast-read"),
    ("file", true, "file"),
    ("files-from", true, "files-from"),
    ("force-resources", false, "force-resources"),
    ("fsck", false, "fsck"),
    ("fsck-prune", false, "fsck-prune"),
    ("hashes", false, "hashes"),
    ("help", false, "help"),
    ("humanize-numbers", false, "humanize-numbers"),
    ("include", true, "include"),
    ("initialize-cachedir", false, "initialize-cachedir"),
    ("insane-filesystems", false, "insane-filesystems"),
    ("iso-dates", false, "iso-dates"),
    ("insecure", false, "absolute-paths"),
    ("interactive", false, "interactive"),
    ("keep-going", false, "keep-going"),
    ("keep-newer-files", false, "keep-newer-files"),
    ("keep-old-files", false, "keep-old-files"),
    ("keyfile", true, "keyfile"),
    ("list", false, "list"),
    ("list-archives", false, "list-archives"),
    ("lowmem", false, "lowmem"),
    ("maxbw", true, "maxbw"),
    ("maxbw-rate", true, "maxbw-rate"),
    ("maxbw-rate-down", true, "maxbw-rate-down"),
    ("maxbw-rate-up", true, "maxbw-rate-up"),
    ("modification-time", false, "modification-time"),
    ("newer", true, "newer-ctime"),
    ("newer-ctime", true, "newer-ctime"),
    ("newer-ctime-than", true, "newer-ctime-than"),
    ("newer-mtime", true, "newer-mtime"),
    ("newer-mtime-than", true, "newer-mtime-than"),
    ("newer-than", true, "newer-ctime-than"),
    ("noatime", false, "noatime"),
    ("nodump", false, "nodump"),
    ("noisy-warnings", false, "noisy-warnings"),
    ("norecurse", false, "norecurse"),
    ("normalmem", false, "normalmem"),
    ("no-aggressive-networking", false, "no-aggressive-networking"),
    ("no-config-exclude", false, "no-config-exclude"),
    ("no-config-include", false, "no-config-include"),
    ("no-default-config", false, "no-default-config"),
    ("no-disk-pause", false, "no-disk-pause"),
    ("no-force-resources", false, "no-force-resources"),
    ("no-humanize-numbers", false, "no-humanize-numbers"),
    ("no-insane-filesystems", false, "no-insane-filesystems"),
    ("no-iso-dates", false, "no-iso-dates"),
    ("no-maxbw", false, "no-maxbw"),
    ("no-maxbw-rate-down", false, "no-maxbw-rate-down"),
    ("no-maxbw-rate-up", false, "no-maxbw-rate-up"),
    ("no-noatime", false, "no-noatime"),
    ("no-nodump", false, "no-nodump"),
    ("no-print-stats", false, "no-print-stats"),
    ("no-progress-bytes", false, "no-progress-bytes"),
    ("no-quiet", false, "no-quiet"),
    ("no-recursion", false, "norecurse"),
    ("no-retry-forever", false, "no-retry-forever"),
    ("no-same-owner", false, "no-same-owner"),
    ("no-same-permissions", false, "no-same-permissions"),
    ("no-snaptime", false, "no-snaptime"),
    ("no-store-atime", false, "no-store-atime"),
    ("no-totals", false, "no-totals"),
    ("nuke", false, "nuke"),
    ("null", false, "null"),
    ("null-input", false, "null"),
    ("null-output", false, "null-output"),
    ("numeric-owner", false, "numeric-owner"),
    ("one-file-system", false, "one-file-system"),
    ("passphrase", true, "passphrase"),
    ("preserve-permissions", false, "preserve-permissions"),
    ("print-stats", false, "print-stats"),
    ("quiet", false, "quiet"),
    ("read-full-blocks", false, "read-full-blocks"),
    ("recover", false, "recover"),
    ("resume-extract", false, "resume-extract"),
    ("retry-forever", false, "retry-forever"),
    ("same-owner", false, "same-owner"),
    ("same-permissions", false, "preserve-permissions"),
    ("snaptime", true, "snaptime"),
    ("store-atime", false, "store-atime"),
    ("strip-components", true, "strip-components"),
    ("to-stdout", false, "to-stdout"),
    ("totals", false, "totals"),
    ("unlink", false, "unlink-first"),
    ("unlink-first", false, "unlink-first"),
    ("progress-bytes", true, "progress-bytes"),
    ("verify-config", false, "verify-config"),
    ("verbose", false, "verbose"),
    ("version", false, "version"),
    ("verylowmem", false, "verylowmem"),
];

/// One option as given: what it means (`LONG`'s third column), its argument, and how it was
/// spelled (`-f`, `--cachedir`) for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub opt: &'static str,
    pub arg: Option<OsString>,
    pub spelled: String,
}

/// Why parsing stopped: tarsnap's message (`None`: an unknown short letter, which tarsnap
/// reports with its usage alone).
#[derive(Debug, PartialEq, Eq)]
pub struct BadOption(pub Option<String>);

/// Splits `args` (without the program name) into options, in order, and the operands after them.
pub fn parse(args: &[OsString]) -> Result<(Vec<Given>, Vec<OsString>), BadOption> {
    let mut out = Vec::new();
    let mut i = 0;
    // An old-style first word: each letter an option, arguments from the words after it.
    if let Some(first) = args.first().filter(|a| !a.as_bytes().starts_with(b"-")) {
        i = 1;
        for &c in first.as_bytes() {
            let &(_, takes, opt) = SHORT.iter().find(|s| s.0 == c).ok_or(BadOption(None))?;
            let arg = match takes {
                true => {
                    let a = args.get(i).ok_or_else(|| {
                        BadOption(Some(format!("Option {} requires an argument", c as char)))
                    })?;
                    i += 1;
                    Some(a.clone())
                }
                false => None,
            };
            out.push(Given { opt, arg, spelled: format!("-{}", c as char) });
        }
    }
    while let Some(word) = args.get(i) {
        let w = word.as_bytes();
        if w == b"--" {
            i += 1;
            break;
        }
        if !w.starts_with(b"-") {
            break;
        }
        i += 1;
        if let Some(long) = w.strip_prefix(b"--") {
            out.push(long_option(long, "--", args, &mut i)?);
            continue;
        }
        // Bundled short options; one taking an argument ends the bundle.
        let mut j = 1;
        while j < w.len() {
            let c = w[j];
            let &(_, takes, opt) = SHORT.iter().find(|s| s.0 == c).ok_or(BadOption(None))?;
            j += 1;
            if !takes {
                out.push(Given { opt, arg: None, spelled: format!("-{}", c as char) });
                continue;
            }
            let arg = if j < w.len() {
                OsStr::from_bytes(&w[j..]).to_os_string()
            } else {
                let a = args
                    .get(i)
                    .ok_or_else(|| BadOption(Some(format!("Option -{} requires an argument", c as char))))?;
                i += 1;
                a.clone()
            };
            if c == b'W' {
                let mut none = 0;
                out.push(long_option(arg.as_bytes(), "-W ", &[], &mut none)?);
            } else {
                out.push(Given { opt, arg: Some(arg), spelled: format!("-{}", c as char) });
            }
            break;
        }
    }
    Ok((out, args[i.min(args.len())..].to_vec()))
}

/// A long option `word` (without its `--`): matched exactly or by a unique prefix; its argument
/// after `=` or from the next word.
fn long_option(word: &[u8], prefix: &str, args: &[OsString], i: &mut usize) -> Result<Given, BadOption> {
    let typed = String::from_utf8_lossy(word).into_owned();
    let (name, inline) = match word.iter().position(|&b| b == b'=') {
        Some(p) => (&word[..p], Some(OsStr::from_bytes(&word[p + 1..]).to_os_string())),
        None => (word, None),
    };
    let matches: Vec<&(&str, bool, &str)> =
        LONG.iter().filter(|l| l.0.as_bytes().starts_with(name)).collect();
    let found = match matches.iter().find(|l| l.0.len() == name.len()) {
        Some(exact) => *exact,
        None => match matches[..] {
            [] => return Err(BadOption(Some(format!("Option {prefix}{typed} is not supported")))),
            [one] => one,
            [.., before, last] => {
                return Err(BadOption(Some(format!(
                    "Ambiguous option {prefix}{typed} (matches --{} and --{})",
                    last.0, before.0
                ))))
            }
        },
    };
    let &(full, takes, opt) = found;
    let arg = match (takes, inline) {
        (true, Some(a)) => Some(a),
        (true, None) => {
            let a = args
                .get(*i)
                .ok_or_else(|| BadOption(Some(format!("Option {prefix}{full} requires an argument"))))?;
            *i += 1;
            Some(a.clone())
        }
        (false, Some(_)) => {
            return Err(BadOption(Some(format!("Option {prefix}{full} does not allow an argument"))))
        }
        (false, None) => None,
    };
    Ok(Given { opt, arg, spelled: format!("--{full}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn opts(s: &str) -> Vec<(&'static str, Option<String>)> {
        let (given, _) = parse(&words(s)).unwrap();
        given.into_iter().map(|g| (g.opt, g.arg.map(|a| a.to_string_lossy().into_owned()))).collect()
    }

    #[test]
    fn bundles_run_in_arguments_and_old_style_words() {
        let want = vec![("create", None), ("verbose", None), ("file", Some("NAME".into()))];
        assert_eq!(opts("-cvf NAME dir"), want);
        assert_eq!(opts("-cvfNAME dir"), want);
        assert_eq!(opts("cvf NAME dir"), want);
        let (_, operands) = parse(&words("cvf NAME -C x dir")).unwrap();
        assert_eq!(operands, words("dir"));
        assert_eq!(opts("-W cachedir=/c -d"), vec![("cachedir", Some("/c".into())), ("delete", None)]);
    }

    #[test]
    fn long_options_take_unique_prefixes_and_stop_at_the_first_operand() {
        assert_eq!(
            opts("--list-a --keyf=/k --cachedir /c"),
            vec![("list-archives", None), ("keyfile", Some("/k".into())), ("cachedir", Some("/c".into()))]
        );
        assert_eq!(opts("--print --null"), vec![("print-stats", None), ("null", None)]);
        assert_eq!(opts("--list"), vec![("list", None)]);
        let (given, operands) = parse(&words("-c -f a dir --cachedir x")).unwrap();
        assert_eq!(given.len(), 2);
        assert_eq!(operands, words("dir --cachedir x"));
        let (_, operands) = parse(&words("-c -f a -- -odd")).unwrap();
        assert_eq!(operands, words("-odd"));
    }

    #[test]
    fn errors_are_tarsnaps() {
        let err = |s: &str| parse(&words(s)).unwrap_err().0;
        // The last two matches in the table's order, as tarsnap names them.
        assert_eq!(err("--ver"), Some("Ambiguous option --ver (matches --verylowmem and --version)".into()));
        assert_eq!(err("--foo=bar"), Some("Option --foo=bar is not supported".into()));
        assert_eq!(err("--version=1"), Some("Option --version does not allow an argument".into()));
        assert_eq!(err("--keyfile"), Some("Option --keyfile requires an argument".into()));
        assert_eq!(err("-c -f"), Some("Option -f requires an argument".into()));
        assert_eq!(err("-cZ"), None);
    }
}
