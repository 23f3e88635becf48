//! Executing one run: generated from its stream (with the trace hashed and the oracles
//! checked after every step), or replayed from a fixed list of steps (shrinking).
//!
//! Either way the steps go through a [`Session`], as a scenario file's do, and a panic
//! anywhere is caught and reported as a violation of [`Oracle::Panic`].

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use zrs::storage::ReadStorage;

use crate::coverage::{BlobFault, Coverage, Pair, State};
use crate::runner::{End, RunOptions, Session};
use crate::scenario::Step;
use crate::transcript::{Capture, Sink};

use super::generate::{Generator, Settings};
use super::oracle::{Oracle, Violation};
use super::swarm::Fault;
use super::trace::Trace;

/// What one run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub index: u64,
    /// Steps executed.
    pub steps: u64,
    /// Virtual time at the end.
    pub virtual_time: Duration,
    /// Faults injected, by kind ([`Fault::ALL`] order).
    pub faults: [u64; Fault::COUNT],
    /// Transactions the secondaries committed.
    pub replicated: u64,
    /// The trace hash.
    pub hash: u64,
    /// Which phases met which inputs and faults.
    pub coverage: Coverage,
    /// The violation that ended the run, if one did.
    pub violation: Option<Violation>,
    /// The steps executed (up to the violation).
    pub executed: Vec<Step>,
}

fn panic_violation(payload: Box<dyn std::any::Any + Send>) -> Violation {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    Violation {
        oracle: Oracle::Panic,
        message,
    }
}

/// Runs run `index` of campaign `seed`.
pub fn generated_run(seed: u64, index: u64, settings: Settings, options: &RunOptions) -> RunReport {
    let mut report = RunReport {
        index,
        steps: 0,
        virtual_time: Duration::ZERO,
        faults: [0; Fault::COUNT],
        replicated: 0,
        hash: 0,
        coverage: Coverage::default(),
        violation: None,
        executed: Vec::new(),
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut trace = Trace::new();
    let sink = Sink::default();
    let result = catch_unwind(AssertUnwindSafe(|| {
        tracing::subscriber::with_default(Capture::new(sink.clone()), || {
            let mut session = Session::new(options, Path::new("campaign.scn"), sink.clone());
            let mut generator = Generator::new(seed, index, settings);
            let mut end = None;
            while let Some((step, fault)) = generator.next_step(session.world()) {
                let _ = writeln!(trace, ">>> {step}");
                if let Some(f) = fault {
                    report.faults[f.index()] += 1;
                    let state = State::of(session.world().phase());
                    report.coverage.note(Pair::Fault(f, state));
                    let world = session.world();
                    if world
                        .secondary()
                        .is_ok_and(|s| s.storage().receiving_blob())
                    {
                        if let Some(class) = BlobFault::of(f) {
                            report.coverage.note(Pair::MidBlob(class));
                        }
                    }
                }
                steps.push(step);
                let outcome = session.execute(steps.last().expect("just pushed"));
                trace.bytes(outcome.output.as_bytes());
                let world = session.world();
                trace.u64(world.now().as_nanos() as u64);
                trace.bytes(&world.workload().last_tid().0);
                if let Ok(s) = world.secondary() {
                    trace.bytes(&s.storage().last_transaction().0);
                }
                for node in world.nodes() {
                    trace.bytes(&node.last_transaction().0);
                }
                report.virtual_time = world.now();
                report.replicated = world.replicated();
                if let Some(e) = outcome.end {
                    end = Some(e);
                    break;
                }
            }
            report.coverage.add(session.world().coverage());
            end
        })
    }));
    let violation = match result {
        Ok(None) => None,
        Ok(Some(End::Violation(v))) => Some(v),
        // Campaign runs check oracles from their first step: a step error cannot end one.
        Ok(Some(End::Error(message))) => Some(Violation {
            oracle: Oracle::Panic,
            message: format!("a step failed: {message}"),
        }),
        Err(payload) => Some(panic_violation(payload)),
    };
    if let Some(v) = &violation {
        let _ = write!(trace, "{v}");
    }
    report.steps = steps.len() as u64;
    report.hash = trace.finish();
    report.violation = violation;
    report.executed = steps;
    report
}

/// Replays `steps`; returns the violation that ends the replay and the index of the step
/// it came after, if any.
pub fn replay(steps: &[Step], options: &RunOptions) -> Option<(Violation, usize)> {
    let mut at = 0;
    let result = catch_unwind(AssertUnwindSafe(|| {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            let mut session = Session::new(options, Path::new("replay.scn"), Sink::default());
            for (i, step) in steps.iter().enumerate() {
                at = i;
                if let Some(End::Violation(v)) = session.execute(step).end {
                    return Some(v);
                }
            }
            None
        })
    }));
    match result {
        Ok(v) => v.map(|v| (v, at)),
        Err(payload) => Some((panic_violation(payload), at)),
    }
}

/// Faults by kind, as `name count` pairs.
pub fn fault_counts(faults: &[u64; Fault::COUNT]) -> impl Iterator<Item = (Fault, u64)> + '_ {
    Fault::ALL.into_iter().map(|f| (f, faults[f.index()]))
}
