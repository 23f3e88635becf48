//! Replaying real traffic: `scenarios/replay/python-primary.scn` delivers what a Python
//! zc.zrs 3.1.0 primary sent (`tests/fixtures/capture/python-primary.bin`, recorded with
//! `zrs capture` by `tests/fixtures/capture/generate.sh`) to the simulated secondary. The
//! Data.fs the secondary writes must be byte-identical to that primary's own
//! (`tests/fixtures/capture/primary.fs`). No Python needed.

use std::path::{Path, PathBuf};

use zrs_sim::runner::{run_file, RunOptions};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn a_captured_python_stream_rebuilds_the_primary_byte_for_byte() {
    let root = workspace();
    let dir = tempfile::tempdir().unwrap();
    let transcript = run_file(
        &root.join("scenarios/replay/python-primary.scn"),
        &RunOptions {
            storage_dir: Some(dir.path().to_path_buf()),
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The run got through the whole capture without an input error.
    assert!(!transcript.contains("CRITICAL"), "{transcript}");

    let expected = std::fs::read(root.join("tests/fixtures/capture/primary.fs")).unwrap();
    let written = std::fs::read(dir.path().join("Data.fs")).unwrap();
    assert_eq!(written.len(), expected.len(), "Data.fs sizes differ");
    let first_difference = written.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "Data.fs differs at this byte offset"
    );
}
