//! `zrs-sim`: run scenario files; run fault-injection campaigns; merge shard summaries.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use zrs_sim::fuzz::campaign::{scenario_text, Campaign};
use zrs_sim::fuzz::generate::Settings;
use zrs_sim::fuzz::summary::Summary;
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

/// `I/N`: the I-th of N shards.
fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let i: u64 = i.parse().map_err(|_| format!("{i:?} is not a number"))?;
    let n: u64 = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
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
        /// Also run each scenario against the real zc.zrs secondary (Python: `ZRS_PYTHON`
        /// or `.venv`) and compare the transcripts, up to README's listed deviations.
        #[arg(long, conflicts_with = "storage_dir")]
        reference: bool,
    },
    /// Run a fault-injection campaign: seeded runs checked by oracles after every step;
    /// each failing run is shrunk into a scenario file.
    Fuzz {
        /// The campaign's seed (default: a fresh one, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Runs in the campaign.
        #[arg(long, default_value_t = 1000)]
        runs: u64,
        /// Steps per run (before the heal phase).
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Threads.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Each run draws which fault kinds it injects, and their rates.
        #[arg(long)]
        swarm: bool,
        /// Where failing runs' scenarios are written.
        #[arg(long, default_value = "scenarios/regressions")]
        out: PathBuf,
        /// Run only every N-th run starting at I.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Write the summary to this file (for `zrs-sim merge`).
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Run every run twice and compare their traces.
        #[arg(long)]
        check_determinism: bool,
        /// No progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Replays shrinking a failing run may spend (0: keep it whole).
        #[arg(long, default_value_t = 2000)]
        shrink_budget: usize,
        /// Also send N of the campaign's runs (evenly spread over it) through the real
        /// zc.zrs secondary, as scenario text, and report where the transcripts disagree.
        #[arg(long, value_name = "N")]
        reference_sample: Option<u64>,
    },
    /// Merge shard summaries (`fuzz --shard I/N --summary FILE`) into the campaign's.
    Merge {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            files,
            reference: true,
            ..
        } => compare_with_reference(&files),
        Command::Run {
            files, storage_dir, ..
        } => {
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
        Command::Fuzz {
            seed,
            runs,
            steps,
            jobs,
            swarm,
            out,
            shard,
            summary,
            check_determinism,
            no_progress,
            shrink_budget,
            reference_sample,
        } => {
            // The one place OS randomness is used: to pick a seed when none is given.
            let seed = seed.unwrap_or_else(rand::random);
            println!("zrs-sim fuzz --seed {seed}");
            let campaign = Campaign {
                seed,
                runs,
                settings: Settings { steps, swarm },
                jobs,
                shard,
                check_determinism,
                shrink_budget,
                options: RunOptions::default(),
            };
            let code = fuzz(&campaign, &out, summary.as_deref(), no_progress);
            match reference_sample {
                Some(n) if code == ExitCode::SUCCESS => {
                    sample_against_reference(&campaign, n, &out)
                }
                _ => code,
            }
        }
        Command::Merge { files } => {
            let mut shards = Vec::new();
            for file in &files {
                let text = match std::fs::read_to_string(file) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("zrs-sim: {}: {e}", file.display());
                        return ExitCode::FAILURE;
                    }
                };
                match Summary::parse(&file.display().to_string(), &text) {
                    Ok(s) => shards.push(s),
                    Err(e) => {
                        eprintln!("zrs-sim: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            match Summary::merge(&shards) {
                Ok(s) => {
                    print!("{s}");
                    if s.failures.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("zrs-sim: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn fuzz(
    campaign: &Campaign,
    out: &std::path::Path,
    summary_file: Option<&std::path::Path>,
    no_progress: bool,
) -> ExitCode {
    let total = campaign.indices().len() as u64;
    let bar = ProgressBar::new(total);
    if no_progress || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    let started = Instant::now();
    let outcome = campaign.run(&|| bar.inc(1));
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let s = &outcome.summary;
    for failure in &outcome.failures {
        println!(
            "run {} of seed {} failed: {}",
            failure.index, campaign.seed, failure.violation
        );
        if let Err(e) = std::fs::create_dir_all(out) {
            eprintln!("zrs-sim: {}: {e}", out.display());
            continue;
        }
        let path = out.join(format!("{}-{}.scn", campaign.seed, failure.index));
        match std::fs::write(&path, scenario_text(campaign.seed, failure)) {
            Ok(()) => println!(
                "  {} {} steps (from {}): {}",
                if failure.shrunk { "shrunk to" } else { "kept" },
                failure.steps.len(),
                failure.original_steps,
                path.display()
            ),
            Err(e) => eprintln!("zrs-sim: {}: {e}", path.display()),
        }
    }
    print!("{s}");
    println!(
        "virtual time {:.1} h; {:.2} s wall, {:.0} runs/s, {:.0} simulated steps/s",
        s.virtual_nanos as f64 / 3.6e12,
        wall,
        s.completed as f64 / wall.max(1e-9),
        s.simulated_steps as f64 / wall.max(1e-9)
    );
    if let Some(path) = summary_file {
        if let Err(e) = std::fs::write(path, s.to_string()) {
            eprintln!("zrs-sim: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if s.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `run --reference`: each file run by zrs-sim and by zc.zrs, compared.
fn compare_with_reference(files: &[PathBuf]) -> ExitCode {
    let python = match zrs_sim::reference::python() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("zrs-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for file in files {
        match zrs_sim::reference::compare_file(&python, file) {
            Ok(c) => {
                println!("{c}");
                failed |= !c.agrees();
            }
            Err(e) => {
                println!("{}: cannot compare: {e}", file.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `fuzz --reference-sample N`: N of the campaign's runs, evenly spread, replayed as
/// scenario text by zrs-sim and by zc.zrs, compared.
fn sample_against_reference(campaign: &Campaign, n: u64, out: &std::path::Path) -> ExitCode {
    let python = match zrs_sim::reference::python() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("zrs-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let indices = campaign.indices();
    let picked = zrs_sim::reference::sample(&indices, n);
    println!(
        "reference sample: {} of {} runs through zc.zrs",
        picked.len(),
        indices.len()
    );
    let (mut agree, mut partial, mut disagree) = (0, 0, 0);
    for index in picked {
        let text = zrs_sim::reference::generated_scenario(campaign, index);
        let name = format!("seed {} run {index}", campaign.seed);
        match zrs_sim::reference::compare_text(&python, &name, &text) {
            Ok(c) => match c.verdict {
                zrs_sim::reference::Verdict::Agree => agree += 1,
                zrs_sim::reference::Verdict::NotComparable { .. } => {
                    partial += 1;
                    println!("{c}");
                }
                zrs_sim::reference::Verdict::Disagree { .. } => {
                    disagree += 1;
                    println!("{c}");
                    // Kept as a scenario, so `run --reference` replays the disagreement.
                    let path = out.join(format!("{}-{index}-reference.scn", campaign.seed));
                    let header = format!(
                        "# Run {index} of `zrs-sim fuzz --seed {}`: zrs and zc.zrs disagree \
                         (zrs-sim run --reference replays it).\n",
                        campaign.seed
                    );
                    match std::fs::create_dir_all(out)
                        .and_then(|()| std::fs::write(&path, header + &text))
                    {
                        Ok(()) => println!("  written to {}", path.display()),
                        Err(e) => eprintln!("zrs-sim: {}: {e}", path.display()),
                    }
                }
            },
            Err(e) => {
                disagree += 1;
                println!("{name}: cannot compare: {e}");
            }
        }
    }
    println!(
        "reference sample: {agree} agree, {partial} agree up to a step zc.zrs cannot express, {disagree} disagree"
    );
    if disagree > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
