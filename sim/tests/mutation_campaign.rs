//! The fixed-seed campaign cargo-mutants runs against every mutant (`.cargo/mutants.toml`,
//! TESTING.md): short, so that a thousand mutants fit in the time there is, and swarm, so
//! that its few runs still draw network and disk faults in every phase. A mutant is caught
//! here when any oracle (replica equals the primary's file, nothing committed lost, no
//! partial transaction visible, memory bounded, ...) fails in one of its runs, or when a run
//! never reaches a state worth checking.

use zrs_sim::fuzz::campaign::{scenario_text, Campaign};
use zrs_sim::fuzz::generate::Settings;
use zrs_sim::runner::RunOptions;

/// Seed and size of the campaign; TESTING.md quotes them.
const SEED: u64 = 11;
const RUNS: u64 = 40;
const STEPS: usize = 60;

#[test]
fn a_short_fixed_seed_swarm_campaign_violates_no_oracle() {
    let outcome = Campaign {
        seed: SEED,
        runs: RUNS,
        settings: Settings {
            steps: STEPS,
            swarm: true,
        },
        jobs: 1,
        shard: None,
        check_determinism: false,
        // A mutant needs only to fail, not a short reproduction.
        shrink_budget: 0,
        options: RunOptions::default(),
    }
    .run(&|| {});
    if let Some(failure) = outcome.failures.first() {
        panic!(
            "run {} violates {:?}:\n{}",
            failure.index,
            failure.violation,
            scenario_text(SEED, failure)
        );
    }
    let summary = outcome.summary;
    assert_eq!(summary.completed, RUNS, "{summary}");
    // A mutant that stops replication, or fault injection, would pass the oracles vacuously.
    assert!(summary.replicated > RUNS, "{summary}");
    assert!(summary.faults.iter().sum::<u64>() > RUNS, "{summary}");
}
