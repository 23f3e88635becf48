//! Replaying real traffic: `scenarios/replay/python-primary.scn` delivers what a Python
//! zc.zrs 3.1.0 primary sent (`tests/fixtures/capture/python-primary.bin`, recorded with
//! `zrs capture` by `tests/fixtures/capture/generate.sh`) to the simulated secondary. The
//! Data.fs the secondary writes must be byte-identical to that primary's own
//! (`tests/fixtures/capture/primary.fs`); likewise for a Python 2.7 primary on ZODB 4.4.5
//! (`scenarios/replay/python2-primary.scn`). No Python needed.

use std::path::{Path, PathBuf};

use zrs_sim::runner::{run_file, RunOptions};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `scenario` and returns the Data.fs it wrote, after checking it equals `primary`.
fn replay(scenario: &str, primary: &str) -> Vec<u8> {
    let root = workspace();
    let dir = tempfile::tempdir().unwrap();
    let transcript = run_file(
        &root.join(scenario),
        &RunOptions {
            storage_dir: Some(dir.path().to_path_buf()),
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The run got through the whole capture without an input error.
    assert!(!transcript.contains("CRITICAL"), "{transcript}");

    let expected = std::fs::read(root.join(primary)).unwrap();
    let written = std::fs::read(dir.path().join("Data.fs")).unwrap();
    assert_eq!(written.len(), expected.len(), "Data.fs sizes differ");
    let first_difference = written.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "Data.fs differs at this byte offset"
    );
    written
}

#[test]
fn a_captured_python_stream_rebuilds_the_primary_byte_for_byte() {
    let written = replay(
        "scenarios/replay/python-primary.scn",
        "tests/fixtures/capture/primary.fs",
    );
    assert_eq!(&written[..4], b"FS30");
}

/// `scenarios/replay/python2-primary.scn`: a Python 2.7 zc.zrs primary on ZODB 4.4.5
/// (`tests/fixtures/capture/generate.sh python2`). The new file takes that primary's format,
/// `FS21`, and its extensions are pickled as Python 2's cPickle does.
#[test]
fn a_captured_python2_stream_rebuilds_the_fs21_primary_byte_for_byte() {
    let written = replay(
        "scenarios/replay/python2-primary.scn",
        "tests/fixtures/capture/primary2.fs",
    );
    assert_eq!(&written[..4], b"FS21");
}
