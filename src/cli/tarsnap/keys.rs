//! `tarsnap-keygen` and `tarsnap-keymgmt` over archiver's keygen and restricted key files, with
//! their options (libcperciva's getopt: `--opt value` or `--opt=value`, no abbreviations) and
//! their usage text. `--user` and `--machine` are accepted (tarsnap's account and machine names):
//! there is no account to register with, so they are not used. The repository is created where
//! archiver's own settings put it (`ARCHIVER_REPO`, archiver's config, its default).

use super::{Fail, VERSION};
use archiver::access::Perm;
use std::ffi::OsString;
use std::path::PathBuf;

/// Options as `(name, value)`, in order.
type Given = Vec<(String, String)>;

/// Options as `(name, value)` in order, and the operands; `takes` lists the options with values.
fn getopt(args: &[OsString], takes: &[&str], flags: &[&str]) -> Result<(Given, Vec<OsString>), ()> {
    let (mut out, mut i) = (Vec::new(), 0);
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        if !a.starts_with('-') || a == "-" {
            break;
        }
        i += 1;
        if a == "--" {
            break;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if a.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.to_string(), None),
        };
        if takes.contains(&name.as_str()) {
            let v = match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i).ok_or(())?.to_string_lossy().into_owned();
                    i += 1;
                    v
                }
            };
            out.push((name, v));
        } else if flags.contains(&name.as_str()) && inline.is_none() {
            out.push((name, String::new()));
        } else if !name.starts_with("--") && name.len() > 2 && inline.is_none() {
            // Bundled short flags: -rw.
            for c in name[1..].chars() {
                let f = format!("-{c}");
                if !flags.contains(&f.as_str()) {
                    return Err(());
                }
                out.push((f, String::new()));
            }
        } else {
            return Err(());
        }
    }
    Ok((out, args[i.min(args.len())..].to_vec()))
}

fn kdf(opts: &[(String, String)]) -> Result<crate::cli::passphrase::NewKey, Fail> {
    let mut new = crate::cli::passphrase::NewKey::default();
    for (k, v) in opts {
        match k.as_str() {
            "--passphrased" => new.passphrased = true,
            "--passphrase-mem" => {
                new.passphrase_mem = Some(
                    super::options::decimal_size(v)
                        .ok_or_else(|| Fail::msg(format!("Cannot parse --passphrase-mem argument: {v}")))?,
                )
            }
            "--passphrase-time" => {
                let t = v.parse::<f64>().ok().filter(|t| (0.05..=86400.0).contains(t));
                let t = t.ok_or_else(|| Fail::msg(format!("Invalid --passphrase-time argument: {v}")))?;
                new.passphrase_time = Some(std::time::Duration::from_secs_f64(t));
            }
            _ => {}
        }
    }
    Ok(new)
}

fn keygen_usage() -> Fail {
    eprintln!("usage: tarsnap-keygen --keyfile key-file --user user-name --machine machine-name [--passphrased] [--passphrase-mem maxmem] [--passphrase-time maxtime]");
    eprintln!("       tarsnap-keygen --version");
    Fail { message: None, usage: false, code: 1 }
}

/// `tarsnap-keygen`: a new key file and an empty repository for it; prints nothing.
pub fn keygen(args: &[OsString]) -> Result<i32, Fail> {
    let takes = ["--keyfile", "--user", "--machine", "--passphrase-mem", "--passphrase-time"];
    let (opts, rest) = getopt(args, &takes, &["--passphrased", "--version"]).map_err(|_| keygen_usage())?;
    if opts.iter().any(|o| o.0 == "--version") {
        eprintln!("tarsnap-keygen {VERSION}");
        return Ok(0);
    }
    let get = |k: &str| opts.iter().find(|o| o.0 == k).map(|o| o.1.clone());
    let (Some(keyfile), Some(_user), Some(_machine)) = (get("--keyfile"), get("--user"), get("--machine"))
    else {
        return Err(keygen_usage());
    };
    if !rest.is_empty() {
        return Err(keygen_usage());
    }
    let keyfile = std::path::absolute(PathBuf::from(&keyfile)).unwrap_or_else(|_| PathBuf::from(&keyfile));
    if keyfile.symlink_metadata().is_ok() {
        return Err(Fail::msg(format!("Key file already exists, not overwriting: {}", keyfile.display())));
    }
    let new = kdf(&opts)?;
    let settings = super::place::own_settings(keyfile.clone())?;
    let pass = match new.passphrased {
        true => Some(crate::cli::passphrase::new(None, &keyfile).map_err(|e| Fail::msg(format!("{e:#}")))?),
        false => None,
    };
    let kdf = new.kdf();
    archiver::query::keygen(&settings, pass.as_ref().zip(kdf)).map_err(|e| Fail::msg(format!("{e:#}")))?;
    Ok(0)
}

fn keymgmt_usage() -> Fail {
    eprintln!("usage: tarsnap-keymgmt --outkeyfile new-key-file [--passphrased] [--passphrase-mem maxmem] [--passphrase-time maxtime] [-r] [-w] [-d] [--nuke] key-file ...");
    eprintln!("       tarsnap-keymgmt --print-key-id key-file");
    eprintln!("       tarsnap-keymgmt --print-key-permissions key-file");
    eprintln!("       tarsnap-keymgmt --version");
    Fail { message: None, usage: false, code: 1 }
}

/// `tarsnap-keymgmt`: a key file with some of the permissions of another, or what a key file
/// holds.
pub fn keymgmt(args: &[OsString]) -> Result<i32, Fail> {
    let takes = ["--outkeyfile", "--passphrase-mem", "--passphrase-time", "--keylist"];
    let flags = [
        "-r",
        "-w",
        "-d",
        "--nuke",
        "--passphrased",
        "--version",
        "--print-key-id",
        "--print-key-permissions",
    ];
    let (opts, files) = getopt(args, &takes, &flags).map_err(|_| keymgmt_usage())?;
    let has = |k: &str| opts.iter().any(|o| o.0 == k);
    if has("--version") {
        eprintln!("tarsnap-keymgmt {VERSION}");
        return Ok(0);
    }
    let read = |f: &OsString| -> Result<archiver::keyfile::KeyFile, Fail> {
        let path = PathBuf::from(f);
        super::place::refuse_tarsnap_key(&path)?;
        let pass = match archiver::keyfile::is_passphrased(&path) {
            true => {
                Some(crate::cli::passphrase::existing(None, &path).map_err(|e| Fail::msg(format!("{e:#}")))?)
            }
            false => None,
        };
        archiver::keyfile::read_with(&path, pass.as_ref())
            .map_err(|e| Fail::msg(format!("Cannot read key file: {}: {e:#}", path.display())))
    };
    if has("--print-key-id") || has("--print-key-permissions") {
        let [file] = &files[..] else { return Err(keymgmt_usage()) };
        let keys = read(file)?;
        if has("--print-key-id") {
            let id = archiver::keycheck::key_id(&keys.keys);
            println!("{}", u64::from_str_radix(&id[..16], 16).unwrap_or(0));
        } else {
            let (r, w, d) =
                (keys.access.has(Perm::Read), keys.access.has(Perm::Write), keys.access.has(Perm::Delete));
            let what = match (r, w, d) {
                (true, true, true) => "reading, writing, and deleting.",
                (true, true, false) => "reading and writing.",
                (true, false, true) => "reading and deleting.",
                (true, false, false) => "reading.",
                (false, true, true) => "writing and nuking.",
                (false, true, false) => "writing.",
                (false, false, true) => "nuking.",
                (false, false, false) => "nothing.",
            };
            println!("This key has permissions for: {what}");
        }
        return Ok(0);
    }
    let Some(out) = opts.iter().find(|o| o.0 == "--outkeyfile").map(|o| PathBuf::from(&o.1)) else {
        return Err(keymgmt_usage());
    };
    let [file] = &files[..] else {
        if files.is_empty() {
            return Err(keymgmt_usage());
        }
        return Err(Fail::msg(
            "archiver's tarsnap-keymgmt reads one key file: give the full key file once".into(),
        ));
    };
    let mut perms = Vec::new();
    for (flag, p) in [
        ("-r", [Some(Perm::Read), None]),
        ("-w", [Some(Perm::Write), None]),
        ("-d", [Some(Perm::Read), Some(Perm::Delete)]),
        ("--nuke", [Some(Perm::Delete), None]),
    ] {
        if has(flag) {
            perms.extend(p.into_iter().flatten().filter(|p| !perms.contains(p)).collect::<Vec<_>>());
        }
    }
    if perms.is_empty() {
        super::err("None of {-r, -w, -d, --nuke} options are specified.  This will create a key file with no keys, which is probably not what you intended.");
    }
    let keys = read(file)?;
    let new = kdf(&opts)?;
    let pass = match new.passphrased {
        true => Some(crate::cli::passphrase::new(None, &out).map_err(|e| Fail::msg(format!("{e:#}")))?),
        false => None,
    };
    let kdf = new.kdf();
    archiver::keyfile::write_restricted(&out, &keys, &perms, pass.as_ref().zip(kdf))
        .map_err(|e| Fail::msg(format!("{e:#}")))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn getopt_reads_libcperciva_style() {
        let args: Vec<std::ffi::OsString> =
            ["--outkeyfile=/o", "-rw", "--nuke", "/k"].iter().map(Into::into).collect();
        let (opts, rest) = super::getopt(&args, &["--outkeyfile"], &["-r", "-w", "--nuke"]).unwrap();
        let names: Vec<&str> = opts.iter().map(|o| o.0.as_str()).collect();
        assert_eq!(names, ["--outkeyfile", "-r", "-w", "--nuke"]);
        assert_eq!(opts[0].1, "/o");
        assert_eq!(rest, vec![std::ffi::OsString::from("/k")]);
        assert!(super::getopt(&["--outkey".into()], &["--outkeyfile"], &[]).is_err(), "no abbreviations");
    }
}
