//! The `archiver` binary: parses arguments, runs one command, prints errors on one line and maps
//! outcomes to the documented exit codes (0 ok; 1 failed, repository unchanged; 2 failed or
//! incomplete after the repository changed).

mod cli;

use clap::Parser;
use std::sync::atomic::AtomicU64;

fn main() {
    let cli = match cli::args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("archiver: {first}; see `archiver --help`");
            std::process::exit(1);
        }
    };
    let out = cli::output::Output { verbose: cli.verbose, quiet: cli.quiet, warnings: AtomicU64::new(0) };
    let code = match cli::run(cli, &out) {
        Ok(cli::Done::Complete) => 0,
        Ok(cli::Done::Incomplete) => 2,
        Err(e) if e.downcast_ref::<cli::output::BrokenPipe>().is_some() => 0,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("archiver: {msg}");
            1
        }
    };
    std::process::exit(code);
}
