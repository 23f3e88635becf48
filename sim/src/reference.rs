//! Differential runs against zc.zrs: the same scenario run by zrs-sim and by the real zc.zrs
//! 3.1.0 secondary, and the two transcripts compared step by step.
//!
//! The reference side is `sim/reference/zrs_reference.py`, a Python adapter that interprets
//! the scenario language with zc.zrs's own test reactor and transports over real ZODB (its
//! module doc says how, and which rules it needs to run zc.zrs at all). This module runs it,
//! runs zrs-sim's [`runner`](crate::runner) on the same scenario, and compares them.
//!
//! The transcripts are compared only up to the deviations README's "Where zrs differs from
//! zc.zrs" section lists, each an explicit [`Rule`] applied to one side's text; anything else
//! that differs is a disagreement. Each comparison counts how often each rule changed a
//! transcript, so a report shows exactly what was tolerated. A step the reference cannot
//! express (the adapter prints `!!! not comparable: REASON`) ends the comparison there: the
//! steps before it are compared, the rest reported as not compared, with the reason.
//!
//! Python is found as the interop tests find it: `ZRS_PYTHON`, else the workspace's `.venv`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::runner::{run, RunOptions};
use crate::scenario::{Scenario, Step};

/// A normalisation the differ applies: a deviation README lists, made explicit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    /// The README deviation (or representation difference) it stands for, and why.
    pub why: &'static str,
}

/// The differ's rules. The adapter's own (`extension-bytes`, `self-drop-notifies`,
/// `memory-is-file`, `limit`, `connector-repr`) are in its module doc: they make zc.zrs
/// run the scenario; these make the two transcripts comparable.
pub const RULES: [Rule; 6] = [
    Rule {
        name: "object-repr",
        why: "Python 3 prints `<zc.zrs.secondary.SecondaryFactory object at 0x…>` where the \
              spec's Python 2 transcript (and zrs) print `<… instance>` (README: \
              \"Peers print as in the spec\")",
    },
    Rule {
        name: "failure-repr",
        why: "today's Twisted prints a Failure as `<twisted.python.failure.Failure \
              twisted.internet.error.ConnectionDone: Connection was closed cleanly.>`; the \
              spec's Twisted (and zrs) as `<twisted.python.failure.Failure <class \
              'twisted.internet.error.ConnectionDone'>>` (README: \"Peers print as in the \
              spec\")",
    },
    Rule {
        name: "primary-log",
        why: "the comparison is of the secondary: zrs-sim's `serve` runs zrs's own primary, \
              which logs as zc.zrs's primary does (`zc.zrs.primary`), while the reference's \
              `serve` is the adapter's stream builder over real ZODB (zc.zrs's primary runs \
              its producer in a thread, outside the test reactor's control); zrs's \
              one-line `zc.zrs.primary` records are left out of zrs's transcript",
    },
    Rule {
        name: "refused-start-warning",
        why: "when a primary closes without sending anything after a non-zero start, zrs \
              logs a WARNING saying what that means; zc.zrs logs nothing (README: \"A \
              primary refuses another database's history\"); that one-line record is left \
              out of zrs's transcript",
    },
    Rule {
        name: "empty-blob",
        why: "a `blob` step on an empty blob (the primary sent `B` with 0 blocks): zc.zrs's \
              secondary stores the record without a file and prints `POSKeyError: No blob \
              file`, zrs writes the empty file and prints `''` (README: \"The replica holds \
              every blob file the primary holds\")",
    },
    Rule {
        name: "error-explained",
        why: "after `Input data error`, zc.zrs logs a Python traceback and zrs one line \
              naming the message and what was wrong; the rest of that log record is left \
              out on both sides (README: \"Errors are explained\")",
    },
];

/// How a scenario compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every step agrees.
    Agree,
    /// The steps before `line` agree; the reference cannot express the step at `line`.
    NotComparable {
        line: usize,
        step: String,
        reason: String,
    },
    /// The step at `line` differs (after the rules).
    Disagree {
        line: usize,
        step: String,
        zrs: String,
        reference: String,
    },
}

/// The comparison of one scenario.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub file: String,
    /// Steps in the scenario, and how many were compared (and agreed, unless disagreeing).
    pub steps: usize,
    pub compared: usize,
    pub verdict: Verdict,
    /// How many times each rule (in [`RULES`] order) changed a transcript.
    pub applied: [usize; RULES.len()],
}

impl Comparison {
    pub fn agrees(&self) -> bool {
        !matches!(self.verdict, Verdict::Disagree { .. })
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<String> = RULES
            .iter()
            .zip(self.applied)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{} ×{n}", r.name))
            .collect();
        let rules = if rules.is_empty() {
            "no rule needed".to_string()
        } else {
            format!("rules: {}", rules.join(", "))
        };
        match &self.verdict {
            Verdict::Agree if self.compared == self.steps => write!(
                f,
                "{}: agrees with zc.zrs, all {} steps ({rules})",
                self.file, self.steps
            ),
            Verdict::Agree => write!(
                f,
                "{}: agrees with zc.zrs: both stopped at the same error after {} of {} steps ({rules})",
                self.file, self.compared, self.steps
            ),
            Verdict::NotComparable { line, step, reason } => write!(
                f,
                "{}: agrees with zc.zrs for the {} steps before line {line}; `{step}` is not \
                 comparable ({reason}), {} steps not compared ({rules})",
                self.file,
                self.compared,
                self.steps - self.compared
            ),
            Verdict::Disagree {
                line,
                step,
                zrs,
                reference,
            } => {
                writeln!(
                    f,
                    "{}: DISAGREES with zc.zrs at line {line}, `{step}` (after {} agreeing steps; {rules})",
                    self.file, self.compared
                )?;
                writeln!(f, "--- zrs")?;
                for l in zrs.lines() {
                    writeln!(f, "  {l}")?;
                }
                writeln!(f, "--- zc.zrs")?;
                for l in reference.lines() {
                    writeln!(f, "  {l}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a differential run could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("no Python with zc.zrs at {0}: run .ci/setup-python or set ZRS_PYTHON")]
    NoPython(PathBuf),
    #[error("running the reference adapter ({adapter}): {message}")]
    Adapter { adapter: PathBuf, message: String },
    #[error("the reference transcript does not follow the scenario: {0}")]
    Mismatch(String),
}

/// The Python that has zc.zrs: `ZRS_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> Result<PathBuf, ReferenceError> {
    let python = std::env::var_os("ZRS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    if python.exists() {
        Ok(python)
    } else {
        Err(ReferenceError::NoPython(python))
    }
}

/// The adapter script, in the source tree.
pub fn adapter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/zrs_reference.py")
}

/// The reference transcript of a scenario file (`text` is sent on stdin when the scenario
/// has no file: a campaign's generated run).
pub fn reference_transcript(
    python: &Path,
    file: Option<&Path>,
    text: &str,
) -> Result<String, ReferenceError> {
    let adapter = adapter();
    let fail = |message: String| ReferenceError::Adapter {
        adapter: adapter.clone(),
        message,
    };
    let mut command = Command::new(python);
    command.arg(&adapter);
    match file {
        Some(f) => command.arg(f).stdin(Stdio::null()),
        None => command.arg("-").stdin(Stdio::piped()),
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", python.display())))?;
    if file.is_none() {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| fail(format!("writing the scenario: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for it: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(fail(format!("{}:\n{}", output.status, tail.join("\n"))));
    }
    String::from_utf8(output.stdout).map_err(|e| fail(format!("output is not UTF-8: {e}")))
}

/// zrs-sim's transcript of a scenario; a step that cannot be carried out ends it with
/// `!!! error: MESSAGE` (as the adapter ends its), an oracle violation with
/// `!!! oracle violated: …` (which the reference never prints: a disagreement).
pub fn zrs_transcript(scenario: &Scenario, options: &RunOptions) -> String {
    match run(scenario, options) {
        Ok(t) => t,
        Err(e) => match &e.violation {
            Some(v) => format!("{}!!! oracle violated: {v}\n", e.transcript),
            None => format!("{}!!! error: {}\n", e.transcript, e.message),
        },
    }
}

/// One step of a transcript: its echo and its output.
struct StepText<'a> {
    echo: &'a str,
    output: String,
}

fn steps(transcript: &str) -> Result<Vec<StepText<'_>>, String> {
    let mut out: Vec<StepText> = Vec::new();
    for line in transcript.split_inclusive('\n') {
        if let Some(echo) = line.strip_prefix(">>> ") {
            out.push(StepText {
                echo: echo.trim_end_matches('\n'),
                output: String::new(),
            });
        } else {
            match out.last_mut() {
                Some(s) => s.output.push_str(line),
                None => return Err(format!("output before the first step: {line:?}")),
            }
        }
    }
    Ok(out)
}

/// Whether a line starts a log record as zc.zrs's test handler prints one.
fn is_record_header(line: &str) -> bool {
    let Some((level, rest)) = line.split_once(' ') else {
        return false;
    };
    matches!(level, "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL")
        && rest.ends_with(':')
        && !rest[..rest.len() - 1].contains(' ')
}

/// `error-explained`: drops what follows `Input data error` in its record.
fn fold_explanations(output: &str, applied: &mut usize) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in output.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if skipping {
            if is_record_header(bare) || bare.starts_with("!!! ") {
                skipping = false;
            } else {
                continue;
            }
        }
        out.push_str(line);
        if bare.ends_with(": Input data error") {
            skipping = true;
            *applied += 1;
        }
    }
    out
}

/// `primary-log`: drops each one-line record of the `zc.zrs.primary` logger (a longer one
/// keeps its further lines, so they show as a difference).
fn drop_primary_records(output: &str, applied: &mut usize) -> String {
    drop_records(output, applied, |header, _| {
        header.ends_with(" zc.zrs.primary:")
    })
}

/// The message of zrs's `refused-start-warning`.
const REFUSED_START: &str =
    "The primary closed the connection without sending anything after start ";

/// `refused-start-warning`: drops zrs's one-line WARNING about a silent close after a
/// non-zero start.
fn drop_refused_start_warnings(output: &str, applied: &mut usize) -> String {
    drop_records(output, applied, |header, message| {
        header == "WARNING zc.zrs.secondary:" && message.contains(REFUSED_START)
    })
}

/// Drops the one-line log records `matches(header, message)` picks.
fn drop_records(output: &str, applied: &mut usize, matches: impl Fn(&str, &str) -> bool) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = output.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let header = lines[i].trim_end_matches('\n');
        let message = lines.get(i + 1).map_or("", |l| l.trim_end_matches('\n'));
        if is_record_header(header) && matches(header, message) {
            i += 2;
            *applied += 1;
            continue;
        }
        out.push_str(lines[i]);
        i += 1;
    }
    out
}

/// `empty-blob`: on a `blob` step, the reference's `POSKeyError: No blob file` where zrs
/// printed an empty blob, `''`, taken as zrs's.
fn fold_empty_blob(step: &Step, reference: &str, zrs: &str, applied: &mut usize) -> String {
    if matches!(step, Step::Blob(_)) && reference == "POSKeyError: No blob file\n" && zrs == "''\n"
    {
        *applied += 1;
        return zrs.to_string();
    }
    reference.to_string()
}

/// `object-repr`: `<X object at 0x…>` as `<X instance>`.
fn fold_object_reprs(text: &str, applied: &mut usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" object at 0x") {
        let tail = &rest[i + " object at 0x".len()..];
        let hex = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex == 0 || !tail[hex..].starts_with('>') {
            out.push_str(&rest[..i + 1]);
            rest = &rest[i + 1..];
            continue;
        }
        out.push_str(&rest[..i]);
        out.push_str(" instance>");
        rest = &tail[hex + 1..];
        *applied += 1;
    }
    out.push_str(rest);
    out
}

/// `failure-repr`: `<twisted.python.failure.Failure MODULE.CLASS: text>` as the spec's
/// `<twisted.python.failure.Failure <class 'MODULE.CLASS'>>`.
fn fold_failure_reprs(text: &str, applied: &mut usize) -> String {
    const START: &str = "<twisted.python.failure.Failure ";
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(START) {
        let tail = &rest[i + START.len()..];
        let name = tail
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'_')
            .count();
        let end = tail.find('>');
        match end {
            Some(end) if name > 0 && tail[name..].starts_with(": ") && end > name => {
                out.push_str(&rest[..i]);
                let _ = write!(out, "{START}<class '{}'>>", &tail[..name]);
                rest = &tail[end + 1..];
                *applied += 1;
            }
            _ => {
                out.push_str(&rest[..i + START.len()]);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Compares two transcripts of `scenario`.
pub fn compare(
    scenario: &Scenario,
    zrs: &str,
    reference: &str,
) -> Result<Comparison, ReferenceError> {
    let mut applied = [0; RULES.len()];
    let zrs_steps = steps(zrs).map_err(ReferenceError::Mismatch)?;
    let ref_steps = steps(reference).map_err(ReferenceError::Mismatch)?;
    let total = scenario.lines.len();
    let mut comparison = Comparison {
        file: scenario.path.display().to_string(),
        steps: total,
        compared: 0,
        verdict: Verdict::Agree,
        applied,
    };
    for (i, line) in scenario.lines.iter().enumerate() {
        let (Some(z), Some(r)) = (zrs_steps.get(i), ref_steps.get(i)) else {
            // One side ended early (an error it printed): that must have shown as a
            // difference already, unless both ended here.
            if zrs_steps.len() == ref_steps.len() {
                break;
            }
            return Err(ReferenceError::Mismatch(format!(
                "zrs ran {} steps, the reference {}, with no difference before",
                zrs_steps.len(),
                ref_steps.len()
            )));
        };
        if z.echo != line.text || r.echo != line.text {
            return Err(ReferenceError::Mismatch(format!(
                "step {} is `{}` in the scenario, `{}` in zrs's transcript, `{}` in the reference's",
                i + 1,
                line.text,
                z.echo,
                r.echo
            )));
        }
        if let Some(reason) = r
            .output
            .lines()
            .find_map(|l| l.strip_prefix("!!! not comparable: "))
        {
            comparison.verdict = Verdict::NotComparable {
                line: line.number,
                step: line.text.clone(),
                reason: reason.to_string(),
            };
            comparison.applied = applied;
            return Ok(comparison);
        }
        let [object, failure, primary, refused, empty, explained] = &mut applied;
        let r_out = fold_empty_blob(&line.step, &r.output, &z.output, empty);
        let r_out = fold_object_reprs(&r_out, object);
        let r_out = fold_failure_reprs(&r_out, failure);
        let r_out = fold_explanations(&r_out, explained);
        let z_out = drop_primary_records(&z.output, primary);
        let z_out = drop_refused_start_warnings(&z_out, refused);
        let z_out = fold_explanations(&z_out, &mut 0);
        if z_out != r_out {
            comparison.verdict = Verdict::Disagree {
                line: line.number,
                step: line.text.clone(),
                zrs: z_out,
                reference: r_out,
            };
            comparison.applied = applied;
            return Ok(comparison);
        }
        comparison.compared += 1;
    }
    comparison.applied = applied;
    Ok(comparison)
}

/// Runs a scenario file both ways and compares.
pub fn compare_file(python: &Path, file: &Path) -> Result<Comparison, Box<dyn std::error::Error>> {
    let scenario = Scenario::load(file)?;
    let zrs = zrs_transcript(&scenario, &RunOptions::default());
    let reference = reference_transcript(python, Some(file), "")?;
    Ok(compare(&scenario, &zrs, &reference)?)
}

/// Runs scenario text (a campaign's generated run) both ways and compares; `name` names it.
pub fn compare_text(
    python: &Path,
    name: &str,
    text: &str,
) -> Result<Comparison, Box<dyn std::error::Error>> {
    let scenario = Scenario::parse(Path::new(name), text)?;
    let zrs = zrs_transcript(&scenario, &RunOptions::default());
    let reference = reference_transcript(python, None, text)?;
    Ok(compare(&scenario, &zrs, &reference)?)
}

/// `n` of a campaign's run indices, evenly spread over them (all of them if fewer).
pub fn sample(indices: &[u64], n: u64) -> Vec<u64> {
    let len = indices.len() as u64;
    if n >= len {
        return indices.to_vec();
    }
    (0..n).map(|k| indices[(k * len / n) as usize]).collect()
}

/// The scenario text of run `index` of a campaign: its generated steps, one per line, as
/// the shrinker writes a failing run.
pub fn generated_scenario(campaign: &crate::fuzz::campaign::Campaign, index: u64) -> String {
    let report = crate::fuzz::execute::generated_run(
        campaign.seed,
        index,
        campaign.settings,
        &campaign.options,
    );
    let mut text = String::new();
    for step in &report.executed {
        let _ = writeln!(text, "{step}");
    }
    text
}

/// The first `n` chunk sizes of `chunking random SEED` (the adapter draws the same).
pub fn random_chunks(seed: u64, n: usize) -> Vec<usize> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| crate::world::random_chunk(&mut rng))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fold_only_what_they_name() {
        let mut n = 0;
        assert_eq!(
            fold_object_reprs(
                "Starting factory <zc.zrs.secondary.SecondaryFactory object at 0x7f05ab>\n",
                &mut n
            ),
            "Starting factory <zc.zrs.secondary.SecondaryFactory instance>\n"
        );
        assert_eq!(n, 1);
        assert_eq!(
            fold_object_reprs("an object at 0xzz>", &mut n),
            "an object at 0xzz>"
        );
        assert_eq!(n, 1);

        let mut n = 0;
        assert_eq!(
            fold_failure_reprs(
                "Disconnected <twisted.python.failure.Failure twisted.internet.error.ConnectionDone: Connection was closed cleanly.>",
                &mut n
            ),
            "Disconnected <twisted.python.failure.Failure <class 'twisted.internet.error.ConnectionDone'>>"
        );
        assert_eq!(n, 1);
        let spec =
            "<twisted.python.failure.Failure <class 'twisted.internet.error.ConnectionLost'>>";
        assert_eq!(fold_failure_reprs(spec, &mut n), spec);
        assert_eq!(n, 1);

        let mut n = 0;
        let record = "CRITICAL zc.zrs.secondary:\nX: Input data error\nTraceback (most recent call last):\n  File \"x\"\nValueError: b'X'\nINFO zc.zrs.secondary:\nX: Disconnected\n";
        assert_eq!(
            fold_explanations(record, &mut n),
            "CRITICAL zc.zrs.secondary:\nX: Input data error\nINFO zc.zrs.secondary:\nX: Disconnected\n"
        );
        assert_eq!(n, 1);
        // Other records keep every line.
        let other = "INFO zc.zrs.secondary:\nline one\nline two\n";
        assert_eq!(fold_explanations(other, &mut n), other);
        assert_eq!(n, 1);
    }

    #[test]
    fn only_the_primarys_one_line_records_are_dropped() {
        let mut n = 0;
        let out = "INFO zc.zrs.primary:\nX: Connected\nINFO zc.zrs.secondary:\nX: Connected\ncaught up after 0 s\n";
        assert_eq!(
            drop_primary_records(out, &mut n),
            "INFO zc.zrs.secondary:\nX: Connected\ncaught up after 0 s\n"
        );
        assert_eq!(n, 1);
        let warning = format!("WARNING zc.zrs.secondary:\nX: {REFUSED_START}b'\\x03' (…).\n");
        let other = "WARNING zc.zrs.secondary:\nX: something else\n";
        let mut n = 0;
        assert_eq!(
            drop_refused_start_warnings(&(warning + other), &mut n),
            other
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn a_difference_outside_the_rules_is_a_disagreement() {
        let scenario = Scenario::parse(Path::new("t.scn"), "later\nclients\n").unwrap();
        let zrs = ">>> later\n[<1 60 connect () {}>]\n>>> clients\n[]\n";
        let same = compare(&scenario, zrs, zrs).unwrap();
        assert_eq!(same.verdict, Verdict::Agree);
        assert_eq!(same.compared, 2);
        let other = ">>> later\n[<2 60 connect () {}>]\n>>> clients\n[]\n";
        let c = compare(&scenario, zrs, other).unwrap();
        assert!(
            matches!(c.verdict, Verdict::Disagree { line: 1, .. }),
            "{c}"
        );
        assert!(!c.agrees());
        let cut = ">>> later\n[<1 60 connect () {}>]\n>>> clients\n!!! not comparable: because\n";
        let c = compare(&scenario, zrs, cut).unwrap();
        assert!(
            matches!(&c.verdict, Verdict::NotComparable { line: 2, reason, .. } if reason == "because"),
            "{c}"
        );
        assert_eq!(c.compared, 1);
    }
}
