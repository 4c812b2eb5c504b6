//! The `archiver` binary: parses arguments, runs one command, prints errors on one line and maps
//! outcomes to the documented exit codes (README's table, `../shared/DESIGN.md`'s): 0 complete;
//! 1 failed, repository unchanged; 2 failed after the repository changed; 3 done but incomplete
//! (an archive stored with warnings or as `NAME.part` on request, an extract that skipped
//! entries or restored files cut short); 130 and 143 stopped by SIGINT and SIGTERM.

mod cli;

use clap::FromArgMatches;

fn main() {
    // Invoked as `tarsnap` (a symlink or link to this binary), or as `archiver tarsnap ARGS`:
    // tarsnap's command line, handled apart from archiver's own (cli::tarsnap).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let tarsnap = argv.first().and_then(|a| cli::tarsnap::invoked_as(a));
    if let Some(program) = tarsnap {
        std::process::exit(cli::tarsnap::main(program, argv));
    }
    if let Some(program) = argv
        .get(1)
        .and_then(|a| cli::tarsnap::invoked_as(a))
        .filter(|_| argv[1].to_str().is_some_and(|a| !a.contains('/')))
    {
        std::process::exit(cli::tarsnap::main(program, argv[1..].to_vec()));
    }
    // Known before parsing, so that a command line clap refuses also ends in JSON.
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    // Parsed through `docs::command()`, so that help shows each command's examples.
    let parsed = cli::docs::command().try_get_matches().and_then(|m| cli::args::Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            // clap's message spans lines (what is wrong, then the arguments concerned, then usage):
            // keep everything before the usage, on one line.
            let text = e.to_string();
            let head: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let msg = head.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg).trim_end_matches(':');
            fail(json, 1, &format!("{msg}; see `archiver --help`"));
            std::process::exit(1);
        }
    };
    let code = match cli::run(cli) {
        Ok(cli::Done::Complete) => 0,
        Ok(cli::Done::Incomplete) => 3,
        Ok(cli::Done::Skipped) => 3,
        Err(e) if e.downcast_ref::<cli::output::BrokenPipe>().is_some() => 0,
        Err(e) => {
            let code = if let Some(sig) = e.downcast_ref::<archiver::progress::Interrupted>() {
                128 + sig.0
            } else if e.downcast_ref::<archiver::txn::RepositoryChanged>().is_some() {
                2
            } else {
                1
            };
            fail(json, code, &format!("{e:#}").replace('\n', " "));
            code
        }
    };
    std::process::exit(code);
}

/// The error a command ends with, on stderr: one line, or one `exit_error` object.
fn fail(json: bool, code: i32, msg: &str) {
    match json {
        true => cli::output::err(&cli::json::exit_error(code, msg).to_string()),
        false => cli::output::err(&format!("archiver: {msg}")),
    }
}
