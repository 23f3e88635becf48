//! Campaign speed: runs per second and simulated steps per second, one and two jobs.
//!
//! Each iteration runs a fixed campaign (seed 20261126, the CI's) of 100 runs of 200
//! steps, as `zrs-sim fuzz --runs 100 --jobs J` does without determinism checking.
//! Run with `cargo bench -p zrs-sim --bench campaign -- --measurement-time 10`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use zrs_sim::fuzz::campaign::Campaign;
use zrs_sim::fuzz::generate::Settings;
use zrs_sim::runner::RunOptions;

const RUNS: u64 = 100;

fn campaign(jobs: usize) -> Campaign {
    Campaign {
        seed: 20261126,
        runs: RUNS,
        settings: Settings {
            steps: 200,
            swarm: false,
        },
        jobs,
        shard: None,
        check_determinism: false,
        shrink_budget: 2000,
        options: RunOptions::default(),
    }
}

fn bench(c: &mut Criterion) {
    let steps = campaign(1).run(&|| {}).summary.simulated_steps;
    for jobs in [1, 2] {
        let mut group = c.benchmark_group("campaign");
        group.sample_size(10);
        group.throughput(Throughput::Elements(RUNS));
        group.bench_function(format!("runs/jobs={jobs}"), |b| {
            b.iter(|| campaign(jobs).run(&|| {}))
        });
        group.throughput(Throughput::Elements(steps));
        group.bench_function(format!("steps/jobs={jobs}"), |b| {
            b.iter(|| campaign(jobs).run(&|| {}))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
