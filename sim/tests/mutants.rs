//! The oracles bite: each deliberately broken zrs (`zrs::planted`, feature `deliberate-bugs`)
//! is caught within a fixed number of runs of a fixed seed, and shrunk to a scenario of a
//! few dozen steps at most that `zrs-sim run`'s runner replays to the same violation.

use zrs::planted::Bug;
use zrs_sim::fuzz::campaign::{scenario_text, Campaign};
use zrs_sim::fuzz::generate::Settings;
use zrs_sim::fuzz::oracle::Oracle;
use zrs_sim::runner::{run_file, RunError, RunOptions};

fn options(bug: Bug) -> RunOptions {
    RunOptions {
        bug: Some(bug),
        ..RunOptions::default()
    }
}

/// Runs until the first failure (at most `runs`), shrinks it, replays its scenario file.
fn caught(bug: Bug, runs: u64, expected: &[Oracle]) {
    let options = options(bug);
    let mut found = None;
    for index in 0..runs {
        let campaign = Campaign {
            seed: 20261126,
            runs: index + 1,
            settings: Settings {
                steps: 60,
                swarm: false,
            },
            jobs: 1,
            shard: Some((index, runs)),
            check_determinism: false,
            shrink_budget: 400,
            options: options.clone(),
        };
        let outcome = campaign.run(&|| {});
        if let Some(f) = outcome.failures.into_iter().next() {
            found = Some(f);
            break;
        }
    }
    let failure = found.unwrap_or_else(|| panic!("{bug:?}: not caught in {runs} runs"));
    eprintln!(
        "{bug:?}: run {} fails {} ({}), shrunk from {} to {} steps",
        failure.index,
        failure.violation.oracle,
        failure.violation.message,
        failure.original_steps,
        failure.steps.len()
    );
    assert!(
        expected.contains(&failure.violation.oracle),
        "{bug:?} caught by {} ({}), expected one of {expected:?}",
        failure.violation.oracle,
        failure.violation.message
    );
    assert!(failure.shrunk, "{bug:?}: not shrunk");
    assert!(
        failure.steps.len() <= 40,
        "{bug:?}: shrunk only to {} steps",
        failure.steps.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regression.scn");
    std::fs::write(&path, scenario_text(20261126, &failure)).unwrap();
    let error = run_file(&path, &options).expect_err("the scenario replays to a failure");
    let run = error.downcast_ref::<RunError>().expect("a run error");
    let v = run.violation.as_ref().expect("an oracle violation");
    assert_eq!(v.oracle, failure.violation.oracle, "{}", run.transcript);
    // Without the bug the same scenario passes.
    run_file(&path, &RunOptions::default()).unwrap_or_else(|e| panic!("{bug:?}: {e}"));
}

#[test]
fn a_replica_without_undo_copies_is_caught() {
    caught(Bug::NoUndoBlobCopy, 400, &[Oracle::Blobs]);
}

#[test]
fn unchecked_checksums_are_caught() {
    // A corrupted byte accepted lands in a record (prefix) or, in a run with blobs, in a
    // blob file (blobs).
    caught(Bug::IgnoreChecksum, 40, &[Oracle::Prefix, Oracle::Blobs]);
}

#[test]
fn a_partial_transaction_kept_after_disconnect_is_caught() {
    caught(Bug::KeepPartialTransaction, 40, &[Oracle::Partial]);
}

#[test]
fn a_start_tid_from_the_last_received_transaction_is_caught() {
    caught(
        Bug::StartFromReceived,
        40,
        &[Oracle::StartTid, Oracle::Prefix],
    );
}

#[test]
fn no_reconnect_after_reject_is_caught() {
    caught(Bug::NoReconnectAfterReject, 40, &[Oracle::Connection]);
}

#[test]
fn a_keep_alive_left_running_after_disconnect_is_caught() {
    caught(Bug::KeepAliveAfterDisconnect, 40, &[Oracle::Connection]);
}

#[test]
fn a_byte_dropped_from_a_split_length_prefix_is_caught() {
    caught(
        Bug::SplitPrefixDropsByte,
        400,
        &[Oracle::Liveness, Oracle::Prefix, Oracle::Reader],
    );
}

#[test]
fn a_transaction_left_begun_before_its_first_record_is_caught() {
    caught(Bug::KeepBegunTransaction, 400, &[Oracle::Partial]);
}

#[test]
fn a_reopen_keeping_a_voted_unfinished_transaction_is_caught() {
    caught(
        Bug::ReopenKeepsVoted,
        400,
        &[Oracle::Prefix, Oracle::Reader],
    );
}

#[test]
fn an_abort_leaving_a_failed_write_in_the_file_is_caught() {
    caught(
        Bug::AbortKeepsFailedWrite,
        400,
        &[Oracle::Reader, Oracle::Prefix],
    );
}
