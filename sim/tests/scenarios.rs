//! Every `scenarios/**/*.scn` runs, and its transcript equals its reviewed snapshot in
//! `snapshots/`. CI runs this with `cargo insta test --check`: a changed transcript fails
//! until someone reads the diff against the spec and accepts it (`cargo insta review`).

use std::path::{Path, PathBuf};

use zrs_sim::runner::{run_file, RunOptions};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

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

#[test]
fn every_scenario_matches_its_snapshot() {
    let root = workspace().join("scenarios");
    let mut files = Vec::new();
    scenario_files(&root, &mut files);
    assert!(!files.is_empty(), "no scenarios under {}", root.display());
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(workspace().join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for file in &files {
            let name = file
                .strip_prefix(&root)
                .unwrap()
                .with_extension("")
                .to_string_lossy()
                .replace(['/', '\\'], "__");
            let transcript = run_file(file, &RunOptions::default())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            insta::assert_snapshot!(name, transcript);
        }
    });
}

#[test]
fn a_run_is_the_same_bytes_every_time() {
    let file = workspace().join("scenarios/secondary.scn");
    let first = run_file(&file, &RunOptions::default()).unwrap();
    let second = run_file(&file, &RunOptions::default()).unwrap();
    assert_eq!(first, second);
}
