//! The `archiver` binary: parses arguments, runs one command, prints errors on one line and maps
//! outcomes to the documented exit codes (README's table, `../shared/DESIGN.md`'s): 0 complete;
//! 1 failed, repository unchanged; 2 failed after the repository changed; 3 done but incomplete
//! (an archive stored with warnings or as `NAME.part` on request, an extract that skipped
//! entries or restored files cut short); 130 and 143 stopped by SIGINT and SIGTERM.

mod cli;

use clap::Parser;

fn main() {
    let cli = match cli::args::Cli::try_parse() {
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
            eprintln!("archiver: {msg}; see `archiver --help`");
            std::process::exit(1);
        }
    };
    let code = match cli::run(cli) {
        Ok(cli::Done::Complete) => 0,
        Ok(cli::Done::Incomplete) => 3,
        Ok(cli::Done::Skipped) => 3,
        Err(e) if e.downcast_ref::<cli::output::BrokenPipe>().is_some() => 0,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            cli::output::err(&format!("archiver: {msg}"));
            if let Some(sig) = e.downcast_ref::<archiver::progress::Interrupted>() {
                128 + sig.0
            } else if e.downcast_ref::<archiver::txn::RepositoryChanged>().is_some() {
                2
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}
