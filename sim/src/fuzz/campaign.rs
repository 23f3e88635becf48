//! A campaign: runs `0..runs` (or one shard's share of them) on `jobs` threads, each run
//! generated from its own stream; the reports are put back in run order before anything
//! is added up, so the summary does not depend on `--jobs`.
//!
//! A failing run is shrunk in the worker that ran it, and becomes a scenario file's text
//! ([`scenario_text`]) that `zrs-sim run` replays to the same failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::runner::RunOptions;
use crate::scenario::Step;

use super::execute::{generated_run, RunReport};
use super::generate::Settings;
use super::oracle::{Oracle, Violation};
use super::shrink::shrink;
use super::summary::Summary;

/// What to run.
#[derive(Clone, Debug)]
pub struct Campaign {
    pub seed: u64,
    /// Runs in the whole campaign.
    pub runs: u64,
    pub settings: Settings,
    pub jobs: usize,
    /// `(index, count)`: run only indices `index, index + count, …`.
    pub shard: Option<(u64, u64)>,
    /// Run every run twice and compare their trace hashes.
    pub check_determinism: bool,
    /// Replays a failing run's shrinking may spend (0: do not shrink).
    pub shrink_budget: usize,
    pub options: RunOptions,
}

/// A failed run.
#[derive(Clone, Debug)]
pub struct Failure {
    pub index: u64,
    pub violation: Violation,
    /// Steps the run executed up to the failure.
    pub original_steps: usize,
    /// The steps of the scenario to keep: shrunk when shrinking succeeded.
    pub steps: Vec<Step>,
    /// Whether `steps` were shrunk (and replay to the same oracle's violation).
    pub shrunk: bool,
}

/// What a campaign found.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub failures: Vec<Failure>,
}

impl Campaign {
    /// The run indices this campaign (shard) runs.
    pub fn indices(&self) -> Vec<u64> {
        let (first, step) = self.shard.unwrap_or((0, 1));
        (first..self.runs).step_by(step.max(1) as usize).collect()
    }

    /// Runs the campaign; `progress` is called once per finished run (from any thread).
    pub fn run(&self, progress: &(dyn Fn() + Sync)) -> Outcome {
        let indices = self.indices();
        let next = AtomicUsize::new(0);
        let done: Mutex<Vec<(RunReport, Option<Failure>)>> = Mutex::new(Vec::new());
        let jobs = self.jobs.max(1);
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = indices.get(i) else {
                            break;
                        };
                        mine.push(self.one(index));
                        progress();
                    }
                    done.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
                });
            }
        });
        let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
        done.sort_by_key(|(r, _)| r.index);
        let mut summary = Summary::new(
            self.seed,
            self.runs,
            self.settings.steps,
            self.settings.swarm,
            self.shard,
        );
        let mut failures = Vec::new();
        for (report, failure) in done {
            summary.add(
                &report,
                failure
                    .as_ref()
                    .map(|f| (f.violation.oracle, f.violation.message.clone())),
            );
            failures.extend(failure);
        }
        Outcome { summary, failures }
    }

    /// Runs (and if need be shrinks) one run.
    fn one(&self, index: u64) -> (RunReport, Option<Failure>) {
        let mut report = generated_run(self.seed, index, self.settings, &self.options);
        if self.check_determinism {
            let again = generated_run(self.seed, index, self.settings, &self.options);
            if again.hash != report.hash && report.violation.is_none() {
                report.violation = Some(Violation {
                    oracle: Oracle::Determinism,
                    message: format!(
                        "two executions of the run left different traces ({:016x}, {:016x})",
                        report.hash, again.hash
                    ),
                });
            }
        }
        let steps = std::mem::take(&mut report.executed);
        let failure = report.violation.take().map(|violation| {
            let original_steps = steps.len();
            let shrunk = (self.shrink_budget > 0 && violation.oracle != Oracle::Determinism)
                .then(|| {
                    shrink(
                        steps.clone(),
                        violation.oracle,
                        &self.options,
                        self.shrink_budget,
                    )
                })
                .flatten();
            match shrunk {
                Some(s) => Failure {
                    index,
                    violation: s.violation,
                    original_steps,
                    steps: s.steps,
                    shrunk: true,
                },
                None => Failure {
                    index,
                    violation,
                    original_steps,
                    steps,
                    shrunk: false,
                },
            }
        });
        // The report keeps the first execution's violation for the summary line.
        (report, failure)
    }
}

/// The scenario file of a failed run: how it came about, then its steps.
pub fn scenario_text(seed: u64, failure: &Failure) -> String {
    let mut out = format!(
        "# Written by `zrs-sim fuzz --seed {seed}`: run {}, {} from {} to {} steps.\n\
         # It fails oracle {}: {}\n\
         # `zrs-sim run` on this file replays it to that violation (and exits non-zero).\n",
        failure.index,
        if failure.shrunk {
            "shrunk"
        } else {
            "not shrunk"
        },
        failure.original_steps,
        failure.steps.len(),
        failure.violation.oracle,
        failure
            .violation
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    );
    for step in &failure.steps {
        out.push_str(&step.to_string());
        out.push('\n');
    }
    out
}
