//! A campaign's summary, its file format, and the merge of shard summaries.
//!
//! The file is plain lines, `key value…`, in a fixed order:
//!
//! ```text
//! zrs-sim fuzz summary 1
//! seed 20261126
//! runs 1000
//! steps 250
//! swarm off
//! shard 0/2              (shard files only)
//! completed 500
//! simulated-steps 131072
//! virtual-time-ns 90210000000
//! replicated 20480
//! fault disconnect 812   (one line per kind, every kind)
//! cover input idle accept 0 never reached        (one line per pair, every pair:
//! cover input connected data 9120                 secondary phase × input, then
//! cover fault crash down 0 unreachable: …         fault kind × phase; see coverage)
//! digest 5f1e0c3a9b7d2e41
//! violations 1
//! failure 17 prefix transaction 3 (…): record 0 (…): data differs (…)
//! ```
//!
//! Everything in it is a function of the campaign's settings (no wall-clock figures), and
//! every figure adds up across shards — the digest too, being a wrapping sum of per-run
//! shares — so merging the shards of a campaign gives, byte for byte, the summary of the
//! whole campaign.

use std::fmt;

use crate::coverage::{Coverage, Pair};

use super::execute::RunReport;
use super::oracle::Oracle;
use super::swarm::Fault;
use super::trace::digest_share;

const HEADER: &str = "zrs-sim fuzz summary 1";

/// One failed run, as the summary lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureLine {
    pub index: u64,
    pub oracle: Oracle,
    /// The violation, on one line.
    pub message: String,
}

/// A campaign's (or a shard's) summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub seed: u64,
    /// Runs in the whole campaign.
    pub runs: u64,
    /// Body steps per run.
    pub steps: usize,
    pub swarm: bool,
    /// `(index, count)` for a shard's summary.
    pub shard: Option<(u64, u64)>,
    /// Runs done here.
    pub completed: u64,
    pub simulated_steps: u64,
    pub virtual_nanos: u128,
    pub replicated: u64,
    pub faults: [u64; Fault::COUNT],
    pub digest: u64,
    /// Which phases met which inputs and faults.
    pub coverage: Coverage,
    /// Failed runs, by index.
    pub failures: Vec<FailureLine>,
}

/// A summary file that does not parse, or shards that do not make a campaign.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SummaryError {
    #[error("{file}:{line}: {what}")]
    Parse {
        file: String,
        line: usize,
        what: String,
    },
    #[error("cannot merge: {0}")]
    Merge(String),
}

impl Summary {
    /// An empty summary for a campaign (or one shard of it).
    pub fn new(
        seed: u64,
        runs: u64,
        steps: usize,
        swarm: bool,
        shard: Option<(u64, u64)>,
    ) -> Summary {
        Summary {
            seed,
            runs,
            steps,
            swarm,
            shard,
            completed: 0,
            simulated_steps: 0,
            virtual_nanos: 0,
            replicated: 0,
            faults: [0; Fault::COUNT],
            digest: 0,
            coverage: Coverage::default(),
            failures: Vec::new(),
        }
    }

    /// Adds a run (in index order, so failures stay sorted).
    pub fn add(&mut self, run: &RunReport, failure: Option<(Oracle, String)>) {
        self.completed += 1;
        self.simulated_steps += run.steps;
        self.virtual_nanos += run.virtual_time.as_nanos();
        self.replicated += run.replicated;
        for (total, n) in self.faults.iter_mut().zip(run.faults) {
            *total += n;
        }
        self.digest = self.digest.wrapping_add(digest_share(run.index, run.hash));
        self.coverage.add(&run.coverage);
        if let Some((oracle, message)) = failure {
            self.failures.push(FailureLine {
                index: run.index,
                oracle,
                message: one_line(&message),
            });
        }
    }

    /// Reads a summary file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Summary, SummaryError> {
        let mut s = Summary::new(0, 0, 0, false, None);
        let mut seen_header = false;
        for (i, line) in text.lines().enumerate() {
            let error = |what: String| SummaryError::Parse {
                file: file.to_string(),
                line: i + 1,
                what,
            };
            if !seen_header {
                if line != HEADER {
                    return Err(error(format!("expected {HEADER:?}, got {line:?}")));
                }
                seen_header = true;
                continue;
            }
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            let number = |v: &str| -> Result<u64, SummaryError> {
                v.parse()
                    .map_err(|_| error(format!("{key}: {v:?} is not a number")))
            };
            match key {
                "seed" => s.seed = number(rest)?,
                "runs" => s.runs = number(rest)?,
                "steps" => s.steps = number(rest)? as usize,
                "swarm" => {
                    s.swarm = match rest {
                        "on" => true,
                        "off" => false,
                        _ => return Err(error(format!("swarm on or off, not {rest:?}"))),
                    }
                }
                "shard" => {
                    let (a, b) = rest
                        .split_once('/')
                        .ok_or_else(|| error(format!("shard I/N, not {rest:?}")))?;
                    s.shard = Some((number(a)?, number(b)?));
                }
                "completed" => s.completed = number(rest)?,
                "simulated-steps" => s.simulated_steps = number(rest)?,
                "virtual-time-ns" => {
                    s.virtual_nanos = rest
                        .parse()
                        .map_err(|_| error(format!("{rest:?} is not a number")))?
                }
                "replicated" => s.replicated = number(rest)?,
                "fault" => {
                    let (name, n) = rest
                        .split_once(' ')
                        .ok_or_else(|| error("fault KIND COUNT".into()))?;
                    let fault = Fault::from_name(name)
                        .ok_or_else(|| error(format!("unknown fault kind {name:?}")))?;
                    s.faults[fault.index()] = number(n)?;
                }
                "digest" => {
                    s.digest = u64::from_str_radix(rest, 16)
                        .map_err(|_| error(format!("digest {rest:?} is not hex")))?
                }
                "cover" => {
                    let words: Vec<&str> = rest.split(' ').collect();
                    let [kind, a, b, n, ..] = words[..] else {
                        return Err(error("cover input|fault A B COUNT".into()));
                    };
                    let pair = Pair::parse(kind, a, b)
                        .ok_or_else(|| error(format!("unknown pair {kind} {a} {b}")))?;
                    let n = number(n)?;
                    if n > 0 {
                        s.coverage.counts.insert(pair, n);
                    }
                }
                "violations" => {}
                "failure" => {
                    let mut parts = rest.splitn(3, ' ');
                    let index = number(parts.next().unwrap_or(""))?;
                    let name = parts.next().unwrap_or("");
                    let oracle = Oracle::from_name(name)
                        .ok_or_else(|| error(format!("unknown oracle {name:?}")))?;
                    s.failures.push(FailureLine {
                        index,
                        oracle,
                        message: parts.next().unwrap_or("").to_string(),
                    });
                }
                _ => return Err(error(format!("unknown line {key:?}"))),
            }
        }
        if !seen_header {
            return Err(SummaryError::Parse {
                file: file.to_string(),
                line: 0,
                what: "empty file".into(),
            });
        }
        Ok(s)
    }

    /// Merges the shard summaries of one campaign into its summary.
    pub fn merge(shards: &[Summary]) -> Result<Summary, SummaryError> {
        let merge_error = |what: String| SummaryError::Merge(what);
        let first = shards
            .first()
            .ok_or_else(|| merge_error("no summaries".into()))?;
        let Some((_, count)) = first.shard else {
            return Err(merge_error("the first summary is not a shard's".into()));
        };
        let mut seen = vec![false; count as usize];
        let mut out = Summary::new(first.seed, first.runs, first.steps, first.swarm, None);
        for s in shards {
            if (s.seed, s.runs, s.steps, s.swarm)
                != (first.seed, first.runs, first.steps, first.swarm)
            {
                return Err(merge_error(format!(
                    "shards of different campaigns (seed {} runs {} vs seed {} runs {})",
                    s.seed, s.runs, first.seed, first.runs
                )));
            }
            match s.shard {
                Some((i, n)) if n == count && i < n => {
                    if std::mem::replace(&mut seen[i as usize], true) {
                        return Err(merge_error(format!("shard {i}/{n} given twice")));
                    }
                }
                other => {
                    return Err(merge_error(format!(
                        "shard {other:?} does not belong to a campaign of {count} shards"
                    )))
                }
            }
            out.completed += s.completed;
            out.simulated_steps += s.simulated_steps;
            out.virtual_nanos += s.virtual_nanos;
            out.replicated += s.replicated;
            for (total, n) in out.faults.iter_mut().zip(s.faults) {
                *total += n;
            }
            out.digest = out.digest.wrapping_add(s.digest);
            out.coverage.add(&s.coverage);
            out.failures.extend(s.failures.iter().cloned());
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(merge_error(format!("shard {missing}/{count} is missing")));
        }
        out.failures.sort_by_key(|f| f.index);
        Ok(out)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{HEADER}")?;
        writeln!(f, "seed {}", self.seed)?;
        writeln!(f, "runs {}", self.runs)?;
        writeln!(f, "steps {}", self.steps)?;
        writeln!(f, "swarm {}", if self.swarm { "on" } else { "off" })?;
        if let Some((i, n)) = self.shard {
            writeln!(f, "shard {i}/{n}")?;
        }
        writeln!(f, "completed {}", self.completed)?;
        writeln!(f, "simulated-steps {}", self.simulated_steps)?;
        writeln!(f, "virtual-time-ns {}", self.virtual_nanos)?;
        writeln!(f, "replicated {}", self.replicated)?;
        for kind in Fault::ALL {
            writeln!(f, "fault {kind} {}", self.faults[kind.index()])?;
        }
        for pair in Pair::all() {
            match (self.coverage.count(pair), pair.unreachable()) {
                (0, Some(why)) => writeln!(f, "cover {pair} 0 unreachable: {why}")?,
                (0, None) => writeln!(f, "cover {pair} 0 never reached")?,
                (n, _) => writeln!(f, "cover {pair} {n}")?,
            }
        }
        writeln!(f, "digest {:016x}", self.digest)?;
        writeln!(f, "violations {}", self.failures.len())?;
        for failure in &self.failures {
            writeln!(
                f,
                "failure {} {} {}",
                failure.index, failure.oracle, failure.message
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coverage::{Input, State};

    fn sample(shard: Option<(u64, u64)>, completed: u64) -> Summary {
        let mut s = Summary::new(7, 10, 50, true, shard);
        s.completed = completed;
        s.simulated_steps = 100 * completed;
        s.virtual_nanos = 1 << 40;
        s.faults[3] = completed;
        s.digest = 0xdead_beef + completed;
        for _ in 0..completed {
            s.coverage.note(Pair::Input(State::Connected, Input::Data));
        }
        s.coverage.note(Pair::Fault(Fault::Crash, State::Idle));
        s
    }

    #[test]
    fn file_round_trips() {
        let mut s = sample(Some((1, 2)), 5);
        s.failures.push(FailureLine {
            index: 3,
            oracle: Oracle::Prefix,
            message: "data differs (3 bytes)".into(),
        });
        let text = s.to_string();
        assert_eq!(Summary::parse("s", &text).unwrap(), s);
        assert_eq!(Summary::parse("s", &text).unwrap().to_string(), text);
    }

    #[test]
    fn merge_checks_the_shards_make_one_campaign() {
        let merged = Summary::merge(&[sample(Some((1, 2)), 5), sample(Some((0, 2)), 5)]).unwrap();
        assert_eq!(merged.shard, None);
        assert_eq!(merged.completed, 10);
        let data = Pair::Input(State::Connected, Input::Data);
        assert_eq!(merged.coverage.count(data), 10);
        assert_eq!(merged.digest, (0xdead_beefu64 + 5).wrapping_mul(2));
        let e = Summary::merge(&[sample(Some((0, 2)), 5)]).unwrap_err();
        assert!(e.to_string().contains("1/2 is missing"), "{e}");
        let e = Summary::merge(&[sample(Some((0, 2)), 5), sample(Some((0, 2)), 5)]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let mut other = sample(Some((1, 2)), 5);
        other.seed = 8;
        assert!(Summary::merge(&[sample(Some((0, 2)), 5), other]).is_err());
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = Summary::parse("f", "zrs-sim fuzz summary 1\nseed x\n").unwrap_err();
        assert_eq!(e.to_string(), "f:2: seed: \"x\" is not a number");
        assert!(Summary::parse("f", "").is_err());
        assert!(Summary::parse("f", "nope").is_err());
    }
}
