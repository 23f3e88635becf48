//! `zrs-sim`: run scenario files; run fault-injection campaigns.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use zrs_sim::runner::{run_file, RunOptions};

#[derive(Parser)]
#[command(
    name = "zrs-sim",
    version,
    about = "Deterministic simulator for the zrs secondary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files and print their transcripts.
    Run {
        /// Scenario files (`*.scn`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Keep the secondary's storage files in this directory instead of a temporary one.
        #[arg(long)]
        storage_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { files, storage_dir } => {
            let options = RunOptions {
                storage_dir,
                ..RunOptions::default()
            };
            let many = files.len() > 1;
            for file in &files {
                if many {
                    println!("=== {}", file.display());
                }
                match run_file(file, &options) {
                    Ok(transcript) => print!("{transcript}"),
                    Err(e) => {
                        if let Some(run) = e.downcast_ref::<zrs_sim::runner::RunError>() {
                            print!("{}", run.transcript);
                        }
                        eprintln!("zrs-sim: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}
