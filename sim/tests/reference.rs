//! Differential runs against zc.zrs: every shipped scenario, run by zrs-sim and by the real
//! zc.zrs 3.1.0 secondary (`sim/reference/zrs_reference.py`), must give the same
//! transcript up to README's listed deviations (`zrs_sim::reference::RULES`).
//!
//! Needs the Python venv (`ZRS_PYTHON`, else `<root>/.venv`; `.ci/setup-python` makes it),
//! so the tests are ignored by a plain `cargo test`; `.ci/test` runs them.

use std::path::{Path, PathBuf};

use zrs_sim::reference::{compare_file, python, Verdict};

fn scenario_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            scenario_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "scn") {
            out.push(path);
        }
    }
}

/// Scenarios with a step zc.zrs's test reactor cannot express, and that step: compared up
/// to it. A scenario that newly stops being comparable fails the test until listed here.
const NOT_COMPARABLE: &[(&str, &str)] = &[
    // The simulated disk's crash (keeping some unsynced writes, tearing one) has no
    // counterpart: zc.zrs runs over a real FileStorage.
    ("faults/crash-disk.scn", "crash"),
    // Nor do the simulated disk's failing writes, fsyncs and reads.
    ("faults/disk.scn", "disk fail write error=enospc partial=10"),
    // Scripted clients and the primary's close act on zrs's real primary; the reference
    // harness runs zc.zrs's secondary against a stand-in primary.
    ("primary/close-catching-up.scn", "primary close"),
    // A listing of the blob directory: zc.zrs's has no empty blobs nor undo copies.
    ("blobs/served.scn", "blobs"),
    ("blobs/crash.scn", "blobs"),
    (
        "regressions/20261126-1523-blobdisk.scn",
        "disk fail sync after=6 error=enospc",
    ),
    (
        "regressions/20261126-2383-blobdisk.scn",
        "disk fail write after=4 error=enospc partial=1",
    ),
    (
        "regressions/20261126-266-blobdisk.scn",
        "disk fail write after=6 partial=1",
    ),
    (
        "regressions/20261126-345-blobdisk.scn",
        "disk fail sync after=6",
    ),
    (
        "regressions/20261126-26-blobs.scn",
        "disk fail sync after=16 error=enospc",
    ),
    (
        "regressions/20261126-375-blobs.scn",
        "disk fail sync after=13 error=enospc",
    ),
    (
        "regressions/20261126-3435-blobs.scn",
        "disk fail write after=14 partial=1",
    ),
    ("primary/failover-lagging.scn", "primary failover"),
    // Several secondaries: zrs's chained nodes serve with zrs's own primary, and the
    // harness runs one zc.zrs secondary.
    (
        "topology/chain-crash.scn",
        "node s2 from s1 storage=memory reconnect=5",
    ),
    (
        "topology/chain.scn",
        "node s2 from s1 storage=memory reconnect=5",
    ),
    (
        "topology/failover-chain.scn",
        "node s2 from s1 storage=memory reconnect=5",
    ),
    (
        "topology/two-secondaries.scn",
        "node s2 from primary storage=memory reconnect=5",
    ),
    ("primary/handshakes.scn", "client connect"),
    ("primary/primary-test.scn", "client connect"),
];

/// Scenarios that end on a step where zrs does better than zc.zrs on purpose (README,
/// "Where zrs differs"), and that step: everything before it must agree, and it must
/// differ (if zc.zrs ever agreed, the entry would be stale).
const DIFFERS_ON_PURPOSE: &[(&str, &str)] = &[
    // A Python 2 primary's stream: zc.zrs's secondary on Python 3 cannot read its
    // messages (an input data error at once); zrs replicates it into an FS21 file.
    (
        "replay/python2-primary.scn",
        "send file ../../tests/fixtures/capture/python2-primary.bin",
    ),
];

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn every_shipped_scenario_agrees_with_zc_zrs() {
    let python = python().unwrap_or_else(|e| panic!("{e}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files = Vec::new();
    scenario_files(&root, &mut files);
    assert!(
        files.len() >= 10,
        "too few scenarios under {}",
        root.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let c = match compare_file(&python, file) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: cannot compare: {e}"));
                continue;
            }
        };
        println!("{c}");
        if let Some((_, at)) = DIFFERS_ON_PURPOSE.iter().find(|(n, _)| *n == name) {
            match &c.verdict {
                Verdict::Disagree { step, .. } if step == at => {
                    assert!(c.compared > 0, "{name}: nothing compared before {step}")
                }
                _ => failures.push(format!("{c}\n(expected to differ only at `{at}`)")),
            }
            continue;
        }
        let expected = NOT_COMPARABLE.iter().find(|(n, _)| *n == name);
        match (&c.verdict, expected) {
            (Verdict::Agree, None) => assert!(c.compared > 0, "{name}: nothing compared"),
            (Verdict::NotComparable { step, .. }, Some((_, at))) if step == at => {
                assert!(c.compared > 0, "{name}: nothing compared before {step}")
            }
            _ => failures.push(c.to_string()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn the_adapter_draws_the_same_random_chunks() {
    let python = python().unwrap_or_else(|e| panic!("{e}"));
    for seed in [0u64, 7, 20261126, u64::MAX] {
        let out = std::process::Command::new(&python)
            .arg(zrs_sim::reference::adapter())
            .args(["--chunks", &seed.to_string(), "300"])
            .output()
            .expect("run the adapter");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let python_sizes: Vec<usize> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            python_sizes,
            zrs_sim::reference::random_chunks(seed, 300),
            "seed {seed}"
        );
    }
}
