//! Shrinking a failing run: fewer steps, fewer transactions and faults, smaller records,
//! simpler options — kept only while the run still fails the same oracle.
//!
//! The run is its list of steps, so shrinking is editing that list and replaying it.
//! First the steps after the failure are dropped; then runs of steps are removed, halving
//! the run length down to single steps (as delta debugging does); then each remaining step
//! is simplified (a commit loses changes or metadata, a byte count or a delay halves, a
//! crash keeps nothing, random chunking becomes whole deliveries, a disk becomes memory).
//! Both passes repeat until neither helps or the replay budget is spent. Deterministic: the
//! same failing run always shrinks to the same steps.

use std::time::Duration;
use zrs::storage::file::faulty::DiskFault;

use crate::network::Chunking;
use crate::runner::RunOptions;
use crate::scenario::{Step, StorageKind};
use crate::workload::{Change, Meta};

use super::execute::replay;
use super::generate::renumber;
use super::oracle::{Oracle, Violation};

/// A shrunk failing run.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub steps: Vec<Step>,
    pub violation: Violation,
    /// Replays spent.
    pub replays: usize,
}

struct Shrinker<'a> {
    target: Oracle,
    options: &'a RunOptions,
    budget: usize,
    replays: usize,
    best: Vec<Step>,
    violation: Violation,
}

impl Shrinker<'_> {
    /// Whether `candidate` still fails the target oracle; if so it becomes the best (cut
    /// after its failing step).
    fn try_candidate(&mut self, candidate: Vec<Step>) -> bool {
        if self.replays >= self.budget {
            return false;
        }
        self.replays += 1;
        match replay(&candidate, self.options) {
            Some((v, at)) if v.oracle == self.target => {
                let mut candidate = candidate;
                candidate.truncate(at + 1);
                self.best = candidate;
                self.violation = v;
                true
            }
            _ => false,
        }
    }

    fn remove_runs(&mut self) -> bool {
        let mut changed = false;
        let mut n = (self.best.len() / 2).max(1);
        loop {
            let mut i = 0;
            while i < self.best.len() && self.replays < self.budget {
                let end = (i + n).min(self.best.len());
                let mut candidate = self.best[..i].to_vec();
                candidate.extend_from_slice(&self.best[end..]);
                if self.try_candidate(candidate) {
                    changed = true;
                } else {
                    i += n;
                }
            }
            if n == 1 || self.replays >= self.budget {
                return changed;
            }
            n /= 2;
        }
    }

    fn simplify_steps(&mut self) -> bool {
        let mut changed = false;
        let mut i = 0;
        while i < self.best.len() && self.replays < self.budget {
            for simpler in simplifications(&self.best[i]) {
                let mut candidate = self.best.clone();
                candidate[i] = simpler;
                if self.try_candidate(candidate) {
                    changed = true;
                    break;
                }
            }
            i += 1;
        }
        changed
    }
}

/// Shrinks `steps`, which fail `target`, spending at most `budget` replays.
pub fn shrink(
    steps: Vec<Step>,
    target: Oracle,
    options: &RunOptions,
    budget: usize,
) -> Option<Shrunk> {
    let (violation, at) = replay(&steps, options)?;
    if violation.oracle != target {
        return None;
    }
    let mut best = steps;
    best.truncate(at + 1);
    let mut s = Shrinker {
        target,
        options,
        budget,
        replays: 1,
        best,
        violation,
    };
    loop {
        let removed = s.remove_runs();
        let simplified = s.simplify_steps();
        if !(removed || simplified) || s.replays >= s.budget {
            break;
        }
    }
    Some(Shrunk {
        steps: s.best,
        violation: s.violation,
        replays: s.replays,
    })
}

fn halve(d: Duration) -> Option<Duration> {
    let ms = d.as_millis() as u64;
    (ms > 1).then(|| Duration::from_millis(ms / 2))
}

/// Simpler versions of a step, simplest first.
fn simplifications(step: &Step) -> Vec<Step> {
    let mut out = Vec::new();
    match step {
        Step::Commit { changes, meta } => {
            if *meta != Meta::default() {
                out.push(commit(changes.clone(), Meta::default()));
            }
            if changes.len() > 1 {
                for i in 0..changes.len().min(8) {
                    let mut fewer = changes.clone();
                    fewer.remove(i);
                    out.push(commit(fewer, meta.clone()));
                }
            }
            for (i, c) in changes.iter().enumerate() {
                let smaller = match c {
                    Change::AddMappings {
                        parent,
                        prefix,
                        count,
                    } if *count > 1 => Some(Change::AddMappings {
                        parent: parent.clone(),
                        prefix: prefix.clone(),
                        count: count / 2,
                    }),
                    Change::SetBytes {
                        parent,
                        key,
                        len,
                        seed,
                    } if *len > 1 => Some(Change::SetBytes {
                        parent: parent.clone(),
                        key: key.clone(),
                        len: len / 2,
                        seed: *seed,
                    }),
                    Change::SetBlob {
                        parent,
                        key,
                        len,
                        seed,
                        literal: None,
                    } if *len > 1 => Some(Change::SetBlob {
                        parent: parent.clone(),
                        key: key.clone(),
                        len: len / 2,
                        seed: *seed,
                        literal: None,
                    }),
                    _ => None,
                };
                if let Some(smaller) = smaller {
                    let mut changes = changes.clone();
                    changes[i] = smaller;
                    out.push(commit(changes, meta.clone()));
                }
            }
        }
        Step::Serve(Some(n)) => {
            out.push(Step::Serve(None));
            if *n > 1 {
                out.push(Step::Serve(Some(n / 2)));
            }
        }
        Step::Advance(d) => out.extend(halve(*d).map(Step::Advance)),
        Step::Outage(d) => out.extend(halve(*d).map(Step::Outage)),
        Step::Crash { keep, tear } if (*keep, *tear) != (0, 0) => {
            out.push(Step::Crash { keep: 0, tear: 0 });
            if *tear > 1 {
                out.push(Step::Crash {
                    keep: *keep,
                    tear: tear / 2,
                });
            }
        }
        Step::Corrupt { offset, mask } if *offset > 0 => {
            out.push(Step::Corrupt {
                offset: 0,
                mask: *mask,
            });
            out.push(Step::Corrupt {
                offset: offset / 2,
                mask: *mask,
            });
        }
        Step::Disk(Some(f)) => {
            let mut simpler = Vec::new();
            if f.sticky {
                simpler.push(DiskFault {
                    sticky: false,
                    ..*f
                });
            }
            if f.after > 0 {
                simpler.push(DiskFault { after: 0, ..*f });
            }
            if f.partial > 1 {
                simpler.push(DiskFault {
                    partial: f.partial / 2,
                    ..*f
                });
            }
            out.extend(simpler.into_iter().map(|f| Step::Disk(Some(f))));
        }
        Step::Truncate(n) if *n > 1 => out.push(Step::Truncate(1)),
        Step::Undo(n) if *n > 1 => out.push(Step::Undo(1)),
        Step::Chunking(Chunking::Random(_)) => out.push(Step::Chunking(Chunking::Whole)),
        Step::Open(open) => {
            if !open.keep_alive.is_zero() {
                let mut o = open.clone();
                o.keep_alive = Duration::ZERO;
                out.push(Step::Open(o));
            }
            if let StorageKind::Disk { batch } = open.storage {
                let mut o = open.clone();
                o.storage = StorageKind::Memory;
                out.push(Step::Open(o));
                if batch.is_some() {
                    let mut o = open.clone();
                    o.storage = StorageKind::Disk { batch: None };
                    out.push(Step::Open(o));
                }
            }
        }
        Step::At { number, step } => out.extend(
            simplifications(step)
                .into_iter()
                .filter(Step::addressable)
                .map(|s| Step::At {
                    number: *number,
                    step: Box::new(s),
                }),
        ),
        _ => {}
    }
    out
}

fn commit(mut changes: Vec<Change>, meta: Meta) -> Step {
    renumber(&mut changes);
    Step::Commit { changes, meta }
}
