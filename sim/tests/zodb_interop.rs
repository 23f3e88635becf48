//! What the simulated primary writes is what ZODB writes: Python ZODB opens the Data.fs a
//! scenario leaves, ZODB's fstest accepts it, every object unpickles, and the root holds what
//! the scenario built.
//!
//! Runs the venv's Python (`ZRS_PYTHON`, else `<root>/.venv/bin/python`, made by
//! `.ci/setup-python`); fails, naming that, when there is none.

use std::path::{Path, PathBuf};
use std::process::Command;

use zrs_sim::runner::{run_file, RunOptions};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn python() -> PathBuf {
    let python = std::env::var_os("ZRS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with ZODB at {}: run .ci/setup-python or set ZRS_PYTHON",
        python.display()
    );
    python
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn python_zodb_loads_what_a_scenario_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        storage_dir: Some(dir.path().to_path_buf()),
        ..RunOptions::default()
    };
    run_file(&workspace().join("scenarios/undo-and-delete.scn"), &options).unwrap();
    let out = Command::new(python())
        .arg(workspace().join("tests/python/load_datafs.py"))
        .arg(dir.path().join("Data.fs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The scenario: +a +b +a.c, then -a, undo of that, then +x x.big=70000 small=12:
    // root, a, b, c and x.
    assert_eq!(
        stdout,
        "{'a': {'c': {}}, 'b': {}, 'small': 12, 'x': {'big': 70000}}\nloaded 5 objects\n"
    );
}
