//! archiver as a drop-in for tarsnap's command line (docs/TARSNAP.md): the command lines real tools
//! send, run through a `tarsnap` symlink to the binary, with their output checked against the
//! formats tarsnap 1.0.41 prints and the regular expressions tools parse it with; tarsnap's
//! messages and exit codes for bad input; `@@ARCHIVE` copies that upload no file data; a tar
//! stream from `-r` stored again with `@-`.

mod util;

use regex::Regex;
use std::path::Path;
use std::process::Command;
use util::tarsnap::*;
use util::*;

#[test]
fn the_command_lines_tools_send_get_tarsnaps_output() {
    let env = Env::new();
    tree(&env);
    // tarsnapper's create, with an archive name holding '/', and the front-ends' version check.
    assert_eq!(ts_ok(&env, &["--version"]).stdout, "tarsnap 1.0.41\n");
    let out = ts_ok(&env, &["-c", "--exclude", "data/sub/small", "-f", "/host/web-20261129-010203", "data"]);
    assert_eq!(out.stdout, "");
    ts_ok(&env, &["-c", "-f", "second", "data"]);

    // tarsnapper's list: one name per line, matched with ^escape(target)$.
    let names = ts_ok(&env, &["--list-archives"]).stdout;
    let mut lines: Vec<&str> = names.lines().collect();
    lines.sort();
    assert_eq!(lines, ["/host/web-20261129-010203", "second"]);
    let target = Regex::new(r"^/host/web\-(?P<date>.*?)$").unwrap();
    assert_eq!(&target.captures(lines[0]).unwrap()["date"], "20261129-010203");

    // A front-end's --list-archives -vv: name, local time, the command line, tab-separated.
    let vv =
        Regex::new(r"^(?P<name>[^\t]+)\t(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\t(?P<cmd>.*)$").unwrap();
    let out = ts_ok(&env, &["--list-archives", "-vv"]);
    let second = out.stdout.lines().find(|l| l.starts_with("second\t")).expect("second listed");
    let caps = vv.captures(second).unwrap_or_else(|| panic!("not tarsnap's -vv line: {second:?}"));
    let link = links(&env).join("tarsnap");
    assert_eq!(&caps["cmd"], format!("{} -c -f second data", link.display()));
    let v = Regex::new(r"^[^\t]+\t\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").unwrap();
    assert!(ts_ok(&env, &["--list-archives", "-v"]).stdout.lines().all(|l| v.is_match(l)));
    let nul = ts_ok(&env, &["--list-archives", "--null-output"]).stdout;
    assert_eq!(nul.matches('\0').count(), 2, "{nul:?}");

    // --print-stats --no-humanize-numbers -f NAME: tarsnap's table, on stdout.
    let out = ts_ok(&env, &["--print-stats", "--no-humanize-numbers", "-f", "second"]);
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(rows[0], format!("{}Total size  Compressed size", " ".repeat(39)));
    let row = |label: &str| Regex::new(&format!(r"^{} +(\d+)  +(\d+)$", regex::escape(label))).unwrap();
    for (line, label) in
        rows[1..].iter().zip(["All archives", "  (unique data)", "second", "  (unique data)"])
    {
        assert!(row(label).is_match(line), "{line:?} is not the {label:?} row");
        assert_eq!(line.len(), 66, "{line:?}: columns of 32, 15 and 15");
    }
    let humanized = ts_ok(&env, &["--print-stats", "--humanize-numbers"]).stdout;
    assert!(Regex::new(r"(?m)^All archives +\d+(\.\d)? [kMG]?B +\d+(\.\d)? [kMG]?B$")
        .unwrap()
        .is_match(&humanized));

    // -tv -f NAME: bsdtar's long listing; -t: names only.
    let out = ts_ok(&env, &["-tv", "-f", "second"]);
    let long = Regex::new(
        r"^[-dlpcb][-rwxsStT]{9}[ +] \d+ \S+ +\S+ +\d+ \w{3} [ \d]\d (\d\d:\d\d| \d{4}) (?P<path>.+)$",
    )
    .unwrap();
    let mut paths = Vec::new();
    for line in out.stdout.lines() {
        let caps = long.captures(line).unwrap_or_else(|| panic!("not bsdtar's -tv line: {line:?}"));
        paths.push(caps["path"].to_string());
    }
    assert!(paths.contains(&"data/sub/link -> text".to_string()), "{paths:?}");
    let names = ts_ok(&env, &["-t", "-f", "second", "data/sub"]).stdout;
    assert_eq!(names, "data/sub\ndata/sub/link\ndata/sub/small\ndata/sub/text\n");

    // -x -C DIR -f NAME: the tree comes back; a second extract replaces files as bsdtar does.
    let dir = env.fresh_dir("x");
    std::fs::create_dir_all(&dir).unwrap();
    ts_ok(&env, &["-x", "-C", dir.to_str().unwrap(), "-f", "second"]);
    assert_same_tree(&env.path("data"), &dir.join("data"));
    ts_ok(&env, &["-x", "-C", dir.to_str().unwrap(), "-f", "second"]);
    // -v names each entry on stderr as bsdtar does.
    let out = ts(&env, &["-x", "-v", "-C", dir.to_str().unwrap(), "-f", "second", "data/sub/text"]);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "", "x data/sub/text\n"));

    // -k keeps what is there, each with a warning, and ends with tarsnap's error exit;
    // --keep-newer-files keeps what is not older than the archive's, quietly, and replaces the rest.
    let text = dir.join("data/sub/text");
    std::fs::write(&text, b"edited\n").unwrap();
    let out = ts(&env, &["-x", "-k", "-C", dir.to_str().unwrap(), "-f", "second"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("data/sub/text: it already exists"), "{}", out.stderr);
    assert!(out.stderr.ends_with("tarsnap: Error exit delayed from previous errors.\n"), "{}", out.stderr);
    assert_eq!(std::fs::read(&text).unwrap(), b"edited\n");
    ts_ok(&env, &["-x", "--keep-newer-files", "-C", dir.to_str().unwrap(), "-f", "second"]);
    assert_eq!(std::fs::read(&text).unwrap(), b"edited\n", "a newer file was replaced");
    filetime::set_file_mtime(&text, filetime::FileTime::from_unix_time(1_000_000, 0)).unwrap();
    ts_ok(&env, &["-x", "--keep-newer-files", "-C", dir.to_str().unwrap(), "-f", "second"]);
    assert_same_tree(&env.path("data"), &dir.join("data"));

    // -d -f A -f B deletes both, printing nothing.
    ts_ok(&env, &["-d", "-f", "/host/web-20261129-010203", "-f", "second"]);
    assert_eq!(ts_ok(&env, &["--list-archives"]).stdout, "");
}

#[test]
fn delete_of_a_missing_archive_stops_as_tarsnaps_does() {
    let env = Env::new();
    tree(&env);
    for n in ["a", "c", "d"] {
        ts_ok(&env, &["-c", "-f", n, "data"]);
    }
    // `b` is missing: `a` is deleted, `c` is not tried, and the run ends with exit 2 because
    // the repository changed.
    let out = ts(&env, &["-d", "-f", "a", "-f", "b", "-f", "c"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "tarsnap: Archive does not exist: b\ntarsnap: Error deleting archive\ntarsnap: Error exit delayed from previous errors.\ntarsnap: Data on server was modified, but it might notbe exactly what you requested\n"
    );
    let mut left: Vec<String> = ts_ok(&env, &["--list-archives"]).stdout.lines().map(String::from).collect();
    left.sort();
    assert_eq!(left, ["c", "d"]);
    // Nothing deleted before the missing one: exit 1.
    let out = ts(&env, &["-d", "-f", "b", "-f", "c"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // --keep-going: the missing one is reported, the rest deleted, exit 0.
    let out = ts(&env, &["-d", "--keep-going", "-f", "b", "-f", "c", "-f", "d"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, "tarsnap: Archive does not exist: b\n"));
    assert_eq!(ts_ok(&env, &["--list-archives"]).stdout, "");
}

#[test]
fn bad_input_gets_tarsnaps_message_and_exit_code() {
    let env = Env::new();
    tree(&env);
    ts_ok(&env, &["-c", "-f", "one", "data"]);
    let usage_head = "Usage:\n  List:          tarsnap [options...] -tf <archive>\n";
    for (args, code, first) in [
        (&[][..], 1, "tarsnap: Must specify one of -c, -d, -r, -t, -x, --list-archives, --print-stats, --fsck, --fsck-prune, or --nuke\n"),
        (&["-c", "-d", "-f", "x"], 1, "tarsnap: Can't specify both -d and -c\n"),
        (&["-c", "data"], 1, "tarsnap: Archive name must be specified\n"),
        (&["-x"], 1, "tarsnap: Archive name must be specified\n"),
        (&["--frobnicate", "-c"], 1, "tarsnap: Option --frobnicate is not supported\n"),
        (&["-d", "-f", "nope"], 1, "tarsnap: Archive does not exist: nope\n"),
        (&["-c", "-f", "one", "data"], 1, "tarsnap: An archive already exists with the name \"one\"\n"),
        (&["-c", "--checkpoint-bytes", "999999", "-f", "y", "data"], 1, "tarsnap: checkpoint-bytes value must be at least 1M\n"),
        (&["-x", "--checkpoint-bytes", "1M", "-f", "one"], 1, "tarsnap: Option --checkpoint-bytes is not permitted in mode -x\n"),
        (&["--list-archives", "extra"], 1, "tarsnap: Cannot have unused command-line args in this mode.\n"),
        (&["-x", "-P", "-f", "one"], 1, "tarsnap: Option -P is not supported with -x"),
    ] {
        let out = ts(&env, args);
        out.assert_no_panic();
        assert_eq!(out.code, code, "tarsnap {args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with(first), "tarsnap {args:?} printed {:?}", out.stderr);
    }
    // An unknown short option: tarsnap's usage alone.
    let out = ts(&env, &["-cZ"]);
    assert_eq!((out.code, out.stderr.starts_with(usage_head)), (1, true), "{}", out.stderr);
    // `archiver tarsnap ARGS` is the same program; archiver's own --version stays its own.
    let out = env.run(["tarsnap", "--version"]);
    assert_eq!(out.stdout, "tarsnap 1.0.41\n");
    assert!(env.run(["--version"]).stdout.starts_with("archiver "));
}

#[test]
fn config_files_are_read_in_tarsnaps_format_and_a_tarsnap_key_is_refused() {
    let env = Env::new();
    tree(&env);
    let conf = env.path("tarsnap.conf");
    std::fs::write(
        &conf,
        format!(
            "# as tarsnap.conf.sample\ncachedir {}\nnodump\nprint-stats\ncheckpoint-bytes 1G\n",
            env.path("tcache").display()
        ),
    )
    .unwrap();
    // print-stats from the file: -c prints the table on stderr.
    let out = ts(&env, &["--configfile", conf.to_str().unwrap(), "-c", "-f", "one", "data"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(rows.len(), 5, "{}", out.stderr);
    for (row, label) in rows[1..].iter().zip(["All archives", "  (unique data)", "This archive", "New data"])
    {
        assert!(row.starts_with(label), "{row:?}");
    }
    // archiver's cache went into a subdirectory of tarsnap's cache directory.
    assert!(env.path("tcache/archiver").is_dir());
    assert_eq!(std::fs::read_dir(env.path("tcache")).unwrap().count(), 1);
    // An unknown key stops the run, as tarsnap's does.
    std::fs::write(&conf, "repo /somewhere\n").unwrap();
    let out = ts(&env, &["--configfile", conf.to_str().unwrap(), "--list-archives"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "tarsnap: Unrecognized configuration file option: \"repo\"\n")
    );
    // A key file of the tarsnap service cannot be used: one line, nothing touched.
    let key = env.path("tarsnap.key");
    std::fs::write(&key, "# START OF TARSNAP KEY FILE\ndGFyc25hcAAA\n# END OF TARSNAP KEY FILE\n").unwrap();
    let out = ts(&env, &["--keyfile", key.to_str().unwrap(), "--list-archives"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("tarsnap: Cannot read key file: "), "{}", out.stderr);
}

#[test]
fn a_copy_with_at_at_uploads_no_file_data_and_a_tar_stream_is_stored_again() {
    let env = Env::new();
    tree(&env);
    ts_ok(&env, &["-c", "-f", "old", "data"]);
    let before = env.repo_size();
    // A shell script's `-c -f NEW @@OLD`: only metadata is stored again.
    ts_ok(&env, &["-c", "-f", "new", "@@old"]);
    let grew = env.repo_size() - before;
    assert!(grew < 64 * 1024, "the copy stored {grew} bytes: file data was uploaded again");
    let dir = env.fresh_dir("x");
    std::fs::create_dir_all(&dir).unwrap();
    ts_ok(&env, &["-x", "-C", dir.to_str().unwrap(), "-f", "new"]);
    assert_same_tree(&env.path("data"), &dir.join("data"));

    // `tarsnap -r -f OLD | tarsnap -c -f NEW @-`: the tar stream's entries are stored.
    let tar = env.path("old.tar");
    let out = command(&env, "tarsnap", &["-r", "-f", "old"])
        .stdout(std::fs::File::create(&tar).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("data/sub/text"));
    let mut c = command(&env, "tarsnap", &["-c", "-f", "migrated", "@-"]);
    let out = c.stdin(std::fs::File::open(&tar).unwrap()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = env.fresh_dir("y");
    std::fs::create_dir_all(&dir).unwrap();
    ts_ok(&env, &["-x", "-C", dir.to_str().unwrap(), "-f", "migrated"]);
    assert_same_tree(&env.path("data"), &dir.join("data"));
    // A stream cut short stores nothing and says so.
    let bytes = std::fs::read(&tar).unwrap();
    let cut = env.path("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = ts(&env, &["-c", "-f", "cut", &format!("@{}", cut.display())]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("malformed or cut short"), "{}", out.stderr);
    assert!(!ts_ok(&env, &["--list-archives"]).stdout.lines().any(|l| l.starts_with("cut")));
}

#[test]
fn the_key_tools_make_and_restrict_key_files() {
    let env = Env::bare();
    let key = env.path("made.key");
    let k = key.to_str().unwrap();
    let out = out_of(
        command(&env, "tarsnap-keygen", &["--keyfile", k, "--user", "me@example.com", "--machine", "box"])
            .output()
            .unwrap(),
    );
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "", ""));
    let w = env.path("write.key");
    let out = out_of(
        command(&env, "tarsnap-keymgmt", &["--outkeyfile", w.to_str().unwrap(), "-w", k]).output().unwrap(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let perms = |f: &Path| {
        out_of(
            command(&env, "tarsnap-keymgmt", &["--print-key-permissions", f.to_str().unwrap()])
                .output()
                .unwrap(),
        )
        .stdout
    };
    assert_eq!(perms(&key), "This key has permissions for: reading, writing, and deleting.\n");
    assert_eq!(perms(&w), "This key has permissions for: writing.\n");
    // The write key stores archives through tarsnap's -c.
    std::fs::write(env.path("f"), b"x").unwrap();
    ts_ok(&env, &["--keyfile", w.to_str().unwrap(), "-c", "-f", "nightly", "f"]);
    assert_eq!(ts_ok(&env, &["--keyfile", k, "--list-archives"]).stdout, "nightly\n");
}
