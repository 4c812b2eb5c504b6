//! Discoverability: the clap command with an "Examples:" section for the top level and every
//! subcommand (what `archiver help COMMAND` and `archiver COMMAND --help` show), and what is
//! generated from the same definitions: man pages (`archiver man`, clap_mangen: `archiver.1` and
//! one `archiver-COMMAND.1` per subcommand, each ending in the same examples) and shell
//! completion scripts (`archiver completions SHELL`, clap_complete).
//!
//! Examples are kept in one table, as text: a `# ` line says what the example does, the lines
//! after it are commands, a blank line separates examples. tests/help.rs runs the read-only
//! ones against a real repository; the unit test below parses every one through clap.

use super::args::Cli;
use clap::{Command, CommandFactory};
use std::io::Write;
use std::path::Path;

/// The examples of the top level ("") and of each subcommand.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "",
        "# Make a key file and a repository, back up, list, restore
archiver keygen
archiver create home-2026-11-22 /home/alice
archiver list -v
archiver extract home-2026-11-22 -C /tmp/restore

# Keep the repository in an S3 bucket (credentials from AWS_* or ~/.aws)
archiver keygen --repo s3://my-backups/laptop

# A command's options and examples
archiver help create

# tarsnap's command line, for tarsnap scripts and tools (docs/TARSNAP.md); or link the
# binary as `tarsnap`
archiver tarsnap --list-archives -v",
    ),
    (
        "keygen",
        "# A key file and a repository at the default paths
archiver keygen

# A repository in a directory of its own, the key file named
archiver keygen --repo /mnt/backup/repo --keyfile ~/.config/archiver/backup.key

# A repository in an S3 bucket, under the prefix laptop/
archiver keygen --repo s3://my-backups/laptop

# A repository on a server started with `archiver serve --allow-create`
archiver keygen --repo https://backup.example.com:8443/laptop --cacert server.pem

# A key file protected by a passphrase (asked twice on the terminal)
archiver keygen --passphrased",
    ),
    (
        "keymgmt",
        "# A write-only key for nightly jobs: it can add archives, not read or delete them
archiver keymgmt --outkeyfile nightly.key -w

# A key that can list and restore, but not write or delete
archiver keymgmt --outkeyfile restore.key -r

# Read and delete (what delete, prune and fsck --prune need), without write
archiver keymgmt --outkeyfile admin.key -r -d

# Change a full key file's passphrase (old one from a file, new one asked twice)
archiver --passphrase file:/root/old-pw keymgmt --outkeyfile new.key -r -w -d --passphrased

# The nightly machine was stolen: retire its write key, get a new full key, then a new write key
archiver keymgmt --revoke-write --outkeyfile /root/archiver-2.key -r -w -d
archiver --keyfile /root/archiver-2.key keymgmt --outkeyfile nightly-2.key -w",
    ),
    (
        "create",
        "# Back up two directories as a new archive
archiver create home-2026-11-22 /home/alice /etc

# Nightly: a checkpoint every 1 GiB or 10 minutes, cache directories left out, sizes printed
archiver create --checkpoint-bytes 1G --checkpoint-interval 600 --exclude-caches --print-stats nightly-2026-11-22 /home /etc

# Leave out object files and directories marked .nobackup; stay on one file system
archiver create --exclude '*.o' --exclude-if-present .nobackup --one-file-system home-2026-11-22 /home

# From cron, with a write-only key, named by date
archiver create --quiet --keyfile /root/nightly.key \"nightly-$(date +%F)\" /home /etc

# Into an S3 bucket, stopping after 10 GiB uploaded (kept as NAME.part; run it again to go on)
archiver create --repo s3://my-backups/laptop --maxbw 10G nightly-2026-11-22 /home

# How much would be stored and how much of it is new, storing nothing
archiver create --dry-run nightly-2026-11-22 /home /etc

# A database dump from standard input, stored as the file mydb.sql
archiver create --stdin-name mydb.sql db-2026-11-22 -",
    ),
    (
        "list",
        "# Archive names, one per line
archiver list

# With creation time (UTC) and size, tab-separated
archiver list -v

# As JSON lines, for scripts
archiver list --json",
    ),
    (
        "ls",
        "# The paths stored in an archive
archiver ls home-2026-11-22

# In ls -l style: mode, owner, size, mtime; [partial] marks a file cut short
archiver ls -v home-2026-11-22

# Find a file
archiver ls home-2026-11-22 | grep report.odt",
    ),
    (
        "extract",
        "# Restore a whole archive under /tmp/restore
archiver extract home-2026-11-22 -C /tmp/restore

# Restore one directory and every .conf file
archiver extract home-2026-11-22 -C /tmp/restore home/alice/docs '*.conf'

# Put one file back in place, replacing the current one
archiver extract home-2026-11-22 -C / --overwrite etc/fstab

# Continue an interrupted restore, fetching only what is missing
archiver extract home-2026-11-22 -C /tmp/restore --resume --print-stats

# One file to standard output (a dump into psql)
archiver extract --to-stdout db-2026-11-22 mydb.sql",
    ),
    (
        "delete",
        "# Delete two archives and reclaim the space only they used
archiver delete home-2026-11-01 home-2026-11-02

# Delete what an interrupted run left as a checkpoint
archiver delete nightly-2026-11-22.part",
    ),
    (
        "prune",
        "# See what a policy would keep and delete, changing nothing
archiver prune --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --match 'nightly-*' --dry-run

# Apply it
archiver prune --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --match 'nightly-*'

# Keep the last 10 archives and all made within 30 days of the newest
archiver prune --keep-last 10 --keep-within 30d",
    ),
    (
        "stats",
        "# All archives and the unique data they hold
archiver stats

# Also the size and new data of two archives
archiver stats home-2026-11-22 home-2026-11-23",
    ),
    (
        "recover",
        "# Finish or discard an interrupted write now
archiver recover

# Also remove a checkpoint that cannot be read (needs the delete key)
archiver recover --discard-damaged",
    ),
    (
        "generations",
        "# The kept manifest generations, newest first, with what each added and removed
archiver generations

# As JSON lines
archiver generations --json",
    ),
    (
        "rollback",
        "# A stolen write key dropped archives: find the last good generation, go back to it
archiver generations
archiver rollback 41",
    ),
    (
        "serve",
        "# Serve the repositories under /srv/archiver (clients: --repo http://127.0.0.1:8080/NAME)
archiver serve --listen 127.0.0.1:8080 --store /srv/archiver

# Over HTTPS, letting clients create repositories
archiver serve --listen 0.0.0.0:8443 --store /srv/archiver --tls-cert cert.pem --tls-key key.pem --allow-create

# Front an S3 bucket: each repository NAME under backups/NAME/
archiver serve --listen 127.0.0.1:8080 --store s3://my-bucket/backups

# A client of the first server
archiver list --repo http://127.0.0.1:8080/laptop",
    ),
    (
        "fsck",
        "# Check the repository and rebuild the local cache
archiver fsck

# Also read and authenticate every stored block
archiver fsck --verify-data

# Read a random tenth of the stored data (bounds the download from S3)
archiver fsck --verify-data=10%

# Also delete stored data no archive references (needs a key with -r and -d)
archiver fsck --prune

# Write a lost or damaged repository config again (full key file, local directory)
archiver fsck --rebuild-config --repo /srv/archiver/laptop",
    ),
    (
        "newest",
        "# The newest complete archive of a series, and its age
archiver newest --match 'nightly-*'

# For monitoring: exit 1 (and say why) when the last nightly is older than 26 hours
archiver newest --match 'nightly-*' --max-age 26h",
    ),
    (
        "completions",
        "# Install completions for bash, zsh or fish
archiver completions bash > /etc/bash_completion.d/archiver
archiver completions zsh > /usr/local/share/zsh/site-functions/_archiver
archiver completions fish > ~/.config/fish/completions/archiver.fish

# Only in the current bash session
source <(archiver completions bash)",
    ),
    (
        "man",
        "# Read the manual page without installing it
archiver man | man -l -

# Install archiver.1 and archiver-COMMAND.1 for every command (then: man archiver-create)
archiver man --dir /usr/local/share/man/man1",
    ),
];

/// The examples of `name` ("" for the top level), in the table's text form.
pub fn examples(name: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

/// The command line as clap parses it (`<Cli as CommandFactory>::command()`), with an
/// "Examples:" section after the help of the top level and of every subcommand.
pub fn command() -> Command {
    let cmd = Cli::command();
    let header = *cmd.get_styles().get_header();
    let with = move |c: Command, name: &str| match examples(name) {
        Some(text) => {
            let body: String =
                text.lines().map(|l| format!("\n  {l}").trim_end_matches(' ').to_string()).collect();
            c.after_help(format!("{}Examples:{}{body}", header.render(), header.render_reset()))
        }
        None => c,
    };
    let cmd = with(cmd, "");
    cmd.mut_subcommands(|c| {
        let name = c.get_name().to_string();
        with(c, &name)
    })
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "archiver", &mut out);
    out
}

/// The man pages: `archiver.1`, then `archiver-COMMAND.1` for each subcommand, as (file name,
/// roff text).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    // The examples go into a section of their own (`after_help` would be an EXTRA section,
    // filled as one paragraph); `help` is no command of its own here.
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let source = format!("archiver {}", root.get_version().unwrap_or_default());
    let mut pages = vec![page(root.clone(), "", &source)];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(page(sub.clone(), sub.get_name(), &source));
    }
    pages
}

/// The main man page, `archiver.1`.
pub fn man_page() -> Vec<u8> {
    man_pages().swap_remove(0).1
}

/// One man page (a built command: a subcommand's display name is `archiver-NAME`) with the
/// examples of `name`, from `source` ("archiver VERSION"). The `.TH` line comes first, before
/// roff's apostrophe preamble.
fn page(cmd: Command, name: &str, source: &str) -> (String, Vec<u8>) {
    use clap_mangen::roff::{roman, Roff};
    let man = clap_mangen::Man::new(cmd).source(source);
    let file = man.get_filename();
    let mut text = Vec::new();
    man.render(&mut text).expect("writing to a Vec cannot fail");
    let text = String::from_utf8_lossy(&text).into_owned();
    let preamble = Roff::new().render();
    let body = text.strip_prefix(&preamble).unwrap_or(&text);
    let (title, body) = body.split_once('\n').unwrap_or((body, ""));
    let mut roff = Roff::new();
    if let Some(examples) = examples(name) {
        roff.control("SH", ["EXAMPLES"]);
        for example in examples.split("\n\n") {
            let (said, commands): (Vec<&str>, Vec<&str>) = example.lines().partition(|l| l.starts_with("# "));
            roff.control("PP", []);
            for l in said {
                roff.text([roman(&l[2..])]);
            }
            roff.control("RS", ["4"]).control("nf", []);
            for l in commands {
                roff.text([roman(l)]);
            }
            roff.control("fi", []).control("RE", []);
        }
    }
    let examples = roff.render();
    let examples = examples.strip_prefix(&preamble).unwrap_or(&examples);
    // Before the VERSION section, if there is one.
    let (head, tail) = match body.find("\n.SH VERSION\n") {
        Some(i) => body.split_at(i + 1),
        None => (body, ""),
    };
    (file, format!("{title}\n{preamble}{head}{examples}{tail}").into_bytes())
}

/// Writes every man page into `dir` (made if missing; earlier pages are replaced) and returns
/// their file names.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names = Vec::new();
    for (name, text) in man_pages() {
        let path = dir.join(&name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        names.push(name);
    }
    Ok(names)
}

/// Writes `bytes` to stdout; a closed pipe (`archiver man | head`) ends the command quietly.
pub fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(super::output::BrokenPipe.into()),
        r => Ok(r?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    /// A command line split as a shell would (single and double quotes), up to a pipe or
    /// redirection; `None` for a line that does not run `archiver` itself.
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
        (words.first()? == "archiver").then_some(words)
    }

    #[test]
    fn every_command_has_examples_and_every_example_parses() {
        let cmd = command();
        let mut names: Vec<&str> = vec![""];
        names.extend(cmd.get_subcommands().map(|c| c.get_name()).filter(|n| *n != "help"));
        for (name, _) in EXAMPLES {
            assert!(names.contains(name), "examples for {name:?}, which is no command");
        }
        let mut parsed = 0;
        for name in names {
            let text = examples(name).unwrap_or_else(|| panic!("no examples for {name:?}"));
            for example in text.split("\n\n") {
                assert!(example.lines().next().is_some_and(|l| l.starts_with("# ")), "{example}");
                for line in example.lines().filter(|l| !l.starts_with("# ")) {
                    let Some(args) = words(line) else { continue };
                    // `archiver tarsnap ARGS` never reaches clap: main hands it to tarsnap's parser.
                    if args.get(1).is_some_and(|a| a == "tarsnap") {
                        let rest: Vec<std::ffi::OsString> = args[2..].iter().map(Into::into).collect();
                        crate::cli::tarsnap::getopt::parse(&rest).unwrap_or_else(|e| panic!("{line}: {e:?}"));
                        parsed += 1;
                        continue;
                    }
                    let m = match command().try_get_matches_from(&args) {
                        // `archiver help COMMAND` parses to the help it shows.
                        Err(e) if args[1] == "help" && e.kind() == clap::error::ErrorKind::DisplayHelp => {
                            continue
                        }
                        m => m.unwrap_or_else(|e| panic!("{line}: {e}")),
                    };
                    Cli::from_arg_matches(&m).unwrap_or_else(|e| panic!("{line}: {e}"));
                    parsed += 1;
                }
            }
        }
        assert!(parsed > 40, "only {parsed} examples parsed");
    }

    #[test]
    fn man_pages_hold_their_examples() {
        let pages = man_pages();
        assert_eq!(pages[0].0, "archiver.1");
        for (file, text) in &pages {
            let text = String::from_utf8(text.clone()).unwrap();
            assert!(text.starts_with(".TH "), "{file}: {}", &text[..40]);
            assert!(text.contains("\n.SH EXAMPLES\n"), "{file} has no examples");
            assert!(!text.contains(".SH EXTRA"), "{file}");
        }
    }
}
