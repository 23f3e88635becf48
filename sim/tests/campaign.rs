//! Campaigns are deterministic: the same seed gives the same summary bytes whatever the
//! number of jobs; shard summaries merge into the whole campaign's; a run's steps read
//! back from their scenario text and replay through the runner.

use std::path::Path;

use zrs_sim::coverage::Pair;
use zrs_sim::fuzz::campaign::Campaign;
use zrs_sim::fuzz::execute::generated_run;
use zrs_sim::fuzz::generate::Settings;
use zrs_sim::fuzz::summary::Summary;
use zrs_sim::runner::{run, RunOptions};
use zrs_sim::scenario::Scenario;

fn campaign(seed: u64, runs: u64, jobs: usize, shard: Option<(u64, u64)>) -> Campaign {
    Campaign {
        seed,
        runs,
        settings: Settings {
            steps: 60,
            swarm: true,
        },
        jobs,
        shard,
        check_determinism: true,
        shrink_budget: 100,
        options: RunOptions::default(),
    }
}

#[test]
fn same_seed_same_summary_bytes_whatever_the_jobs() {
    let one = campaign(11, 24, 1, None).run(&|| {}).summary.to_string();
    let two = campaign(11, 24, 2, None).run(&|| {}).summary.to_string();
    assert_eq!(one, two);
    let parsed = Summary::parse("one", &one).unwrap();
    assert_eq!(parsed.completed, 24);
    assert!(parsed.simulated_steps > 24 * 60, "{one}");
    assert!(parsed.replicated > 0, "{one}");
    assert!(parsed.faults.iter().sum::<u64>() > 0, "{one}");
    assert!(parsed.failures.is_empty(), "{one}");
    // Coverage lines are in the bytes compared above; they must count something.
    assert!(parsed.coverage.counts.values().sum::<u64>() > 0, "{one}");
    assert!(one.contains("\ncover input connected data "), "{one}");
    let other = campaign(12, 24, 2, None).run(&|| {}).summary;
    assert_ne!(other.digest, parsed.digest);
}

#[test]
fn shard_summaries_merge_into_the_whole_campaign() {
    let whole = campaign(5, 15, 2, None).run(&|| {}).summary;
    let shards: Vec<Summary> = (0..3)
        .map(|i| {
            let text = campaign(5, 15, 1, Some((i, 3)))
                .run(&|| {})
                .summary
                .to_string();
            assert!(text.contains(&format!("shard {i}/3")));
            Summary::parse("shard", &text).unwrap()
        })
        .collect();
    assert_eq!(shards.iter().map(|s| s.completed).sum::<u64>(), 15);
    let merged = Summary::merge(&shards).unwrap();
    assert_eq!(merged.coverage, whole.coverage);
    assert!(!merged.coverage.counts.is_empty());
    assert_eq!(merged.to_string(), whole.to_string());
}

#[test]
fn generated_steps_read_back_from_their_text_and_replay_through_the_runner() {
    let settings = Settings {
        steps: 80,
        swarm: true,
    };
    for index in 0..12 {
        let report = generated_run(3, index, settings, &RunOptions::default());
        assert!(report.violation.is_none(), "{:?}", report.violation);
        let text: String = report.executed.iter().map(|s| format!("{s}\n")).collect();
        let scenario = Scenario::parse(Path::new("run.scn"), &text).unwrap();
        let steps: Vec<_> = scenario.lines.iter().map(|l| l.step.clone()).collect();
        assert_eq!(steps, report.executed, "run {index}:\n{text}");
        let first = run(&scenario, &RunOptions::default()).unwrap();
        let second = run(&scenario, &RunOptions::default()).unwrap();
        assert_eq!(first, second);
        let heal = first.rfind(">>> heal\n").expect("a heal step");
        assert!(first[heal..].contains("\ncaught up after "), "{first}");
    }
}

/// A swarm campaign of 100 runs of 60 steps (a few seconds in debug) reaches every phase ×
/// input and fault × phase pair not marked unreachable, and none marked so; its summary
/// lists each pair. The CI campaign's size (15,000 runs) reaches them all too.
#[test]
fn a_swarm_campaign_reaches_every_reachable_pair() {
    let summary = campaign(20261126, 100, 2, None).run(&|| {}).summary;
    assert_eq!(summary.coverage.missed(), Vec::<Pair>::new(), "{summary}");
    let text = summary.to_string();
    for pair in Pair::all() {
        let n = summary.coverage.count(pair);
        match pair.unreachable() {
            Some(why) => {
                assert_eq!(n, 0, "{pair} is marked unreachable ({why}) but was reached");
                assert!(text.contains(&format!("cover {pair} 0 unreachable: {why}\n")));
            }
            None => assert!(text.contains(&format!("cover {pair} {n}\n")), "{text}"),
        }
    }
    assert_eq!(
        Summary::parse("s", &text).unwrap().coverage,
        summary.coverage
    );
}
