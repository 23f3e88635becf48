//! Generates one test function per `scenarios/**/*.scn` (`$OUT_DIR/scenario_tests.rs`,
//! included by `tests/scenarios.rs`), so a failing scenario does not hide the others and a
//! new scenario is a test the moment it is added — with no snapshot yet, it fails until one
//! is reviewed and accepted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn scenario_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            // Cargo watches a directory's own entries only: each folder is watched, so a
            // file added to a subfolder is a new test too.
            println!("cargo:rerun-if-changed={}", path.display());
            scenario_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "scn") {
            out.push(path);
        }
    }
}

fn main() {
    // Read at run time, not baked in with `env!`: a build script compiled in one checkout
    // and reused from a copied target dir would otherwise list another checkout's scenarios.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it");
    let root = Path::new(&manifest_dir).join("../scenarios");
    // A directory makes cargo rerun this when anything under it changes.
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    scenario_files(&root, &mut files);
    let mut code = String::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap().with_extension("");
        let rel = rel.to_string_lossy().replace('\\', "/");
        // The snapshot keeps the name it always had: the path with `/` as `__`.
        let snapshot = rel.replace('/', "__");
        let function: String = snapshot
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        writeln!(
            code,
            "#[test]\n#[allow(non_snake_case)]\nfn scenario_{function}() {{\n    check_scenario({rel:?}, {snapshot:?});\n}}\n"
        )
        .unwrap();
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("scenario_tests.rs");
    std::fs::write(out, code).unwrap();
}
