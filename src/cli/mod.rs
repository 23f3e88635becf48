//! Command-line parsing and dispatch for the `zrs` binary.

mod capture;
mod check;
mod copy;
mod logfmt;
mod observe;
mod primary;
mod promote;
mod run;
mod secondary;
mod status;
mod zconfig;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "zrs", about = "ZODB Replicated Storage", version)]
struct Cli {
    /// Also log debug events (connection attempts, commits). `RUST_LOG`, when set, decides
    /// instead (`RUST_LOG=zc.zrs=info,zrs.net=debug`).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Log lines as a ZEO server prints them (`zeo`: time stamp, level, logger), as
    /// `LEVEL logger: message` (`plain`), or as JSON lines (`json`).
    #[arg(long, global = true, value_enum, default_value = "zeo")]
    log_format: logfmt::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Copy(copy::Args),
    Secondary(secondary::Args),
    Primary(primary::Args),
    Capture(capture::Args),
    Status(status::Args),
    Check(check::Args),
    Run(run::Args),
    Promote(promote::Args),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logfmt::init(
        cli.log_format,
        if cli.verbose {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        },
    );
    let result = match cli.command {
        Command::Copy(args) => copy::run(args),
        Command::Secondary(args) => secondary::run(args),
        Command::Primary(args) => primary::run(args),
        Command::Capture(args) => capture::run(args),
        Command::Status(args) => status::run(args),
        Command::Run(args) => run::run(args),
        Command::Promote(args) => promote::run(args),
        // Nagios's exit codes, not ours.
        Command::Check(args) => return check::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zrs: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
