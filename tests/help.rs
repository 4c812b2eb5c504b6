//! Discoverability: `archiver help COMMAND` and `archiver COMMAND --help` show examples for every
//! command, and the examples are right (the read-only ones run against a real repository, every
//! other one is accepted by clap); `archiver man` prints a roff man page naming every command and
//! `man --dir` writes one page per command; `archiver completions SHELL` prints a script the
//! shell accepts. (src/cli/docs.rs's unit test also parses every example, required arguments and
//! conflicts included.)

mod util;

use util::*;

/// Every command; a new one must be added here (the test checks `--help` lists no other).
const COMMANDS: &[&str] = &[
    "keygen",
    "keymgmt",
    "create",
    "list",
    "ls",
    "extract",
    "delete",
    "prune",
    "stats",
    "recover",
    "generations",
    "rollback",
    "serve",
    "fsck",
    "newest",
    "completions",
    "man",
];

/// The command names in the "Commands:" section of `archiver --help`.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// The lines of a help text's "Examples:" section that run `archiver`, as argument lists
/// (without the leading `archiver`).
fn examples(help: &str) -> Vec<Vec<String>> {
    let section = help.split_once("\nExamples:\n").map(|(_, s)| s).unwrap_or("");
    section.lines().filter_map(|l| words(l.trim())).collect()
}

/// A command line split as a shell would (single and double quotes), up to a pipe or
/// redirection, without its first word; `None` unless that word is `archiver`.
fn words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let (mut word, mut quote, mut any) = (String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => (quote, any) = (Some(c), true),
            (None, '|' | '>' | '<' | ';' | '&') => break,
            (None, ' ') => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    (words.first()? == "archiver").then(|| words.split_off(1))
}

#[test]
fn every_command_has_help_with_examples() {
    let env = Env::bare();
    let top = env.ok(["--help"]);
    assert!(!examples(&top.stdout).is_empty(), "`archiver --help` has no examples:\n{}", top.stdout);
    let mut listed = listed_commands(&top.stdout);
    listed.retain(|c| c != "help");
    assert_eq!(listed, COMMANDS, "`archiver --help` lists other commands than this test knows");
    for cmd in COMMANDS {
        for args in [vec!["help", cmd], vec![cmd, "--help"], vec![cmd, "-h"]] {
            let out = env.ok(&args);
            assert!(out.stderr.is_empty(), "archiver {args:?} wrote to stderr:\n{}", out.stderr);
            assert!(
                out.stdout.contains("\nExamples:\n"),
                "archiver {args:?} shows no examples:\n{}",
                out.stdout
            );
            let ex = examples(&out.stdout);
            assert!(!ex.is_empty(), "archiver {args:?}: no example runs archiver:\n{}", out.stdout);
            assert!(
                ex.iter().any(|a| a.contains(&cmd.to_string())),
                "archiver {args:?}: no example runs `{cmd}`:\n{}",
                out.stdout
            );
        }
    }
}

#[test]
fn every_example_is_accepted_by_clap() {
    // `--help` appended: clap still refuses unknown options and bad values before it, but runs
    // nothing (a `serve` or `create` example would otherwise start serving or back up /home).
    let env = Env::bare();
    let mut checked = 0;
    let helps = std::iter::once(vec!["--help"]).chain(COMMANDS.iter().map(|c| vec![*c, "--help"]));
    for help in helps {
        for mut args in examples(&env.ok(&help).stdout) {
            // (`help COMMAND` runs nothing and takes no --help.)
            if args[0] != "help" {
                args.push("--help".into());
            }
            let out = env.run(&args);
            out.assert_no_panic();
            assert!(
                out.code == 0 && !out.stderr.contains("see `archiver --help`"),
                "example `archiver {}` is refused:\n{}",
                args.join(" "),
                out.stderr
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} examples checked");
}

#[test]
fn read_only_examples_run_against_a_real_repository() {
    let env = Env::new();
    small_tree(&env.path("t"), 1, 4, 10_000);
    // The archive names the examples use.
    env.create("home-2026-11-22", &["t"]);
    env.create("home-2026-11-23", &["t"]);
    let mut ran = 0;
    for cmd in ["list", "ls", "stats", "generations"] {
        for args in examples(&env.ok([cmd, "--help"]).stdout) {
            let out = env.run(&args);
            out.assert_no_panic();
            assert_eq!(out.code, 0, "example `archiver {}` failed:\n{}", args.join(" "), out.stderr);
            assert!(!out.stdout.is_empty(), "example `archiver {}` printed nothing", args.join(" "));
            ran += 1;
        }
    }
    assert!(ran >= 8, "only {ran} examples ran");
}

#[test]
fn man_prints_a_roff_page_naming_every_command() {
    let env = Env::bare();
    let out = env.ok(["man"]);
    assert!(out.stdout.starts_with(".TH archiver 1 "), "not a man page:\n{}", &out.stdout[..200]);
    assert!(out.stdout.contains("\n.SH SYNOPSIS\n") && out.stdout.contains("\n.SH EXAMPLES\n"));
    for cmd in COMMANDS {
        assert!(out.stdout.contains(&format!("archiver\\-{cmd}(1)")), "archiver.1 does not name {cmd}");
    }
    assert!(!out.stdout.contains("archiver\\-help"), "the help command has no page");
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let env = Env::bare();
    let dir = env.path("share/man/man1");
    for _ in 0..2 {
        // The second run replaces the pages.
        let out = env.ok([std::ffi::OsStr::new("man"), "--dir".as_ref(), dir.as_os_str()]);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(out.stderr.starts_with("archiver: wrote archiver.1, "), "{}", out.stderr);
    }
    let mut want: Vec<String> = COMMANDS.iter().map(|c| format!("archiver-{c}.1")).collect();
    want.push("archiver.1".into());
    want.sort();
    let mut got: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    got.sort();
    assert_eq!(got, want);
    for cmd in COMMANDS {
        let page = std::fs::read_to_string(dir.join(format!("archiver-{cmd}.1"))).unwrap();
        assert!(page.starts_with(&format!(".TH archiver-{cmd} 1 ")), "{cmd}: {}", &page[..100]);
        assert!(page.contains("\n.SH EXAMPLES\n"), "archiver-{cmd}.1 has no examples");
        assert!(page.contains(&format!("archiver {cmd}")), "archiver-{cmd}.1 has no synopsis");
    }
}

#[test]
fn completion_scripts_are_valid() {
    let env = Env::bare();
    let bash = env.ok(["completions", "bash"]).stdout;
    for cmd in COMMANDS {
        assert!(bash.contains(cmd), "bash completions lack {cmd}");
    }
    let script = env.path("archiver.bash");
    std::fs::write(&script, &bash).unwrap();
    let check = std::process::Command::new("bash").arg("-n").arg(&script).output().expect("bash runs");
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    for (shell, checker) in
        [("zsh", Some("zsh")), ("fish", Some("fish")), ("elvish", None), ("powershell", None)]
    {
        let text = env.ok(["completions", shell]).stdout;
        assert!(text.contains("create") && text.contains("checkpoint-bytes"), "{shell} completions:\n{text}");
        // A syntax check where the shell is installed (neither zsh nor fish is a prerequisite
        // of the test suite); elvish and PowerShell get none.
        let Some(checker) = checker else { continue };
        let file = env.path(format!("archiver.{shell}"));
        std::fs::write(&file, &text).unwrap();
        match std::process::Command::new(checker).arg("-n").arg(&file).output() {
            Ok(check) => {
                assert!(check.status.success(), "{checker} -n: {}", String::from_utf8_lossy(&check.stderr))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("no {checker}: its syntax check skipped")
            }
            Err(e) => panic!("cannot run {checker}: {e}"),
        }
    }
    // No repository, key or home needed.
    let out = util::out_of(
        env.command(["completions", "zsh"])
            .env_remove("HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("ARCHIVER_REPO")
            .env_remove("ARCHIVER_KEYFILE")
            .env_remove("ARCHIVER_CACHEDIR")
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    env.run(["completions", "tcsh"]).assert_one_line_error(1).assert_stderr_contains("possible values");
}
