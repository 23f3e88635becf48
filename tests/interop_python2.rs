//! The `zrs secondary` binary against a real Python 2.7 zc.zrs 3.1.0 primary on ZODB 4.4.5
//! (`tests/python/zrs_primary2.py`), over 127.0.0.1: thousands of transactions written by
//! that stack (byte-string and non-ASCII metadata, extensions holding every value type,
//! deletions, undos), the secondary killed mid-stream and restarted, then new commits. The
//! replica must be an `FS21` file byte-identical to the primary's, which Python 2's ZODB
//! opens (fstest, every object loaded, the database's folders unpickled).
//!
//! Needs Python 2.7 (`ZRS_PYTHON2`, else pyenv's 2.7.18) and the stack `.ci/setup-python2`
//! installs into `<root>/.venv2`; fails, never skips, without them. Every wait is bounded
//! and waits on an event (a line, a file size); children are killed when a test fails.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{zrs_secondary, Process, ScriptedPrimary};
use common::root;

/// How long any one wait may take (building 2000 transactions included).
const PATIENCE: Duration = Duration::from_secs(180);

/// Python 2.7: `ZRS_PYTHON2`, else pyenv's 2.7.18.
fn python2() -> PathBuf {
    let p = std::env::var_os("ZRS_PYTHON2").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".pyenv/versions/2.7.18/bin/python")
        },
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "no Python 2.7 at {}: set ZRS_PYTHON2",
        p.display()
    );
    p
}

/// The pinned Python 2 ZODB 4 / zc.zrs stack.
fn stack() -> PathBuf {
    let dir = root().join(".venv2");
    assert!(
        dir.join(".pins").exists(),
        "no Python 2 stack in {}: run .ci/setup-python2",
        dir.display()
    );
    dir
}

/// The Python 2 primary serving `path`, built first with `create` transactions; its first
/// stream stalls in transaction `stall_in`. Its log is its Data.fs path with `.log`.
fn start_primary(path: &Path, create: u32, stall_in: usize) -> ScriptedPrimary {
    ScriptedPrimary::start(
        "the Python 2 primary",
        Command::new(python2())
            .env("PYTHONPATH", stack())
            .arg(root().join("tests/python/zrs_primary2.py"))
            .arg("serve")
            .arg(path)
            .args(["--create", &create.to_string()])
            .args(["--stall-in", &stall_in.to_string()]),
        path.with_extension("log"),
        PATIENCE,
    )
}

fn start_secondary(storage: &Path, port: u16, log: &Path) -> Process {
    zrs_secondary(storage, port, "0.5", log, &[], PATIENCE)
}

use common::file_size as size;

fn wait_until(what: &str, logs: &[&Path], cond: impl FnMut() -> bool) {
    common::wait_until(what, PATIENCE, logs, cond)
}

fn wait_identical(primary: &Path, secondary: &Path, logs: &[&Path]) {
    wait_until("the secondary catches up", logs, || {
        common::same_bytes(primary, secondary)
    });
}

/// Where each transaction of a Data.fs ends.
fn transaction_ends(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).unwrap();
    let mut ends = Vec::new();
    let mut pos = 4usize;
    while pos < bytes.len() {
        let len = u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        pos += len as usize + 8;
        ends.push(pos as u64);
    }
    assert_eq!(pos, bytes.len(), "transactions do not add up");
    ends
}

/// The first stream stops in the middle of this transaction.
const STALL_IN: usize = 1200;

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn replica_of_a_python2_primary_is_byte_identical_and_opens_in_python2_zodb() {
    let temp = tempfile::tempdir().unwrap();
    let primary_fs = temp.path().join("primary.fs");
    let secondary_fs = temp.path().join("secondary.fs");
    let log = temp.path().join("secondary.log");

    let mut primary = start_primary(&primary_fs, 2000, STALL_IN);
    assert_eq!(&fs::read(&primary_fs).unwrap()[..4], b"FS21");
    let full = size(&primary_fs);
    let mut secondary = start_secondary(&secondary_fs, primary.port, &log);

    // Killed mid-stream: once it holds exactly the transactions before the stall.
    assert_eq!(primary.line("stalled"), STALL_IN.to_string());
    let before = transaction_ends(&primary_fs)[STALL_IN - 2];
    wait_until(
        "the transactions before the stall",
        &[&log, &primary.log],
        || size(&secondary_fs) == before,
    );
    secondary.signal("KILL");
    secondary.wait();
    assert!(size(&secondary_fs) < full, "killed mid-stream");
    let prefix = fs::read(&secondary_fs).unwrap();
    assert!(
        fs::read(&primary_fs).unwrap().starts_with(&prefix),
        "what the secondary held when killed is a prefix of the primary's file"
    );

    // Restarted on its file, it catches up; then it follows new commits.
    let mut secondary = start_secondary(&secondary_fs, primary.port, &log);
    wait_identical(&primary_fs, &secondary_fs, &[&log, &primary.log]);
    let after = primary.commit(60);
    assert!(after > full);
    wait_identical(&primary_fs, &secondary_fs, &[&log, &primary.log]);

    secondary.signal("TERM");
    let status = secondary.wait();
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "zrs secondary exited with {status}:\n{text}"
    );
    assert!(!text.contains("CRITICAL"), "{text}");
    assert_eq!(
        text.matches(": Connected").count(),
        2,
        "one connection before the kill, one after:\n{text}\nprimary log:\n{}",
        primary.log_text()
    );
    primary.quit();

    let a = fs::read(&primary_fs).unwrap();
    let b = fs::read(&secondary_fs).unwrap();
    assert_eq!(&b[..4], b"FS21");
    assert!(
        a == b,
        "the replica is not byte-identical to the primary's Data.fs"
    );

    let out = Command::new(python2())
        .env("PYTHONPATH", stack())
        .arg(root().join("tests/python/zrs_primary2.py"))
        .arg("check")
        .arg(&primary_fs)
        .arg(&secondary_fs)
        .output()
        .expect("run the Python 2 check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok: 2061 transactions"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
