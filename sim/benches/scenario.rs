//! The scenario runner's speed: the spec scenario, parsed and run in-process (a fresh
//! temporary directory and FileStorage each time, as `zrs-sim run` does), and steps/s.
//! The Python reference is `benches/reference/secondary_doctest.py` (zc.zrs's own
//! secondary.test under its test reactor); both figures are in BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use zrs_sim::runner::{run, RunOptions};
use zrs_sim::scenario::Scenario;

fn spec_scenario(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/secondary.scn");
    let text = std::fs::read_to_string(&path).unwrap();
    let scenario = Scenario::parse(&path, &text).unwrap();
    let steps = scenario.lines.len();
    let options = RunOptions::default();

    c.bench_function("parse secondary.scn", |b| {
        b.iter(|| Scenario::parse(&path, &text).unwrap())
    });
    c.bench_function("run secondary.scn (FileStorage in a fresh temp dir)", |b| {
        b.iter(|| run(&scenario, &options).unwrap())
    });

    // Steps per second, from a plain loop (criterion reports time per run).
    let rounds = 2000;
    let start = Instant::now();
    for _ in 0..rounds {
        run(&scenario, &options).unwrap();
    }
    let per_run = start.elapsed() / rounds;
    println!(
        "secondary.scn: {steps} steps, {:.1} µs per run, {:.0} steps/s",
        per_run.as_secs_f64() * 1e6,
        steps as f64 / per_run.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = spec_scenario
}
criterion_main!(benches);
