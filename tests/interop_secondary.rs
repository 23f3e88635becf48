//! The `zrs secondary` binary against the real Python zc.zrs 3.1.0 primary (Twisted), over
//! 127.0.0.1: catch-up, following new commits, the primary killed mid-stream and restarted,
//! the secondary killed mid-stream and restarted. Each ends with the secondary's Data.fs
//! byte-identical to the primary's, and accepted by ZODB's fstest.
//!
//! Needs the Python venv (`ZRS_PYTHON`, else `<root>/.venv/bin/python`; `.ci/setup-python`
//! makes it); fails, never skips, without it. Every wait is bounded; children are killed
//! when a test fails (a Drop guard).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{zrs_secondary, Process, ScriptedPrimary};
use common::{python, root, run_python};

/// How long any one wait may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// The Python primary (`tests/python/zrs_primary.py`) serving `path` (building it first
/// with `create` transactions, if given); its log is its Data.fs path with `.log`.
fn start_primary(path: &Path, create: Option<u32>, port: u16, extra: &[&str]) -> ScriptedPrimary {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/python/zrs_primary.py"))
        .arg(path)
        .args(["--port", &port.to_string()]);
    if let Some(n) = create {
        cmd.args(["--create", &n.to_string()]);
    }
    cmd.args(extra);
    ScriptedPrimary::start(
        "the Python primary",
        &mut cmd,
        path.with_extension("log"),
        PATIENCE,
    )
}

/// A `zrs secondary` process logging into `log`.
fn start_secondary(storage: &Path, port: u16, log: &Path) -> Process {
    start_secondary_with(storage, port, log, &[])
}

/// As [`start_secondary`], with more arguments.
fn start_secondary_with(
    storage: &Path,
    port: u16,
    log: &Path,
    more: &[&std::ffi::OsStr],
) -> Process {
    zrs_secondary(storage, port, "0.5", log, more, PATIENCE)
}

use common::file_size as size;

/// Waits (bounded) until `cond` holds; panics with `what` and the secondary's log.
fn wait_until(what: &str, log: &Path, cond: impl FnMut() -> bool) {
    common::wait_until(what, PATIENCE, &[log], cond)
}

/// Waits for the replica to equal the primary's file; a timeout prints both logs (the
/// primary's is its Data.fs path with `.log`, as `Primary::start` writes it).
fn wait_identical(primary: &Path, secondary: &Path, log: &Path) {
    let primary_log = primary.with_extension("log");
    common::wait_until(
        "the secondary catches up",
        PATIENCE,
        &[log, &primary_log],
        || common::same_bytes(primary, secondary),
    );
}

/// Stops the secondary with SIGTERM; it must exit cleanly, logging the close.
fn stop(mut secondary: Process, log: &Path) -> String {
    secondary.signal("TERM");
    let status = secondary.wait();
    let text = fs::read_to_string(log).unwrap();
    assert!(
        status.success(),
        "zrs secondary exited with {status}:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("INFO zc.zrs.secondary: Closing ")),
        "no Closing line:\n{text}"
    );
    text
}

/// Byte-identical, and ZODB (fstest, loads, every record) agrees.
fn assert_same(primary: &Path, secondary: &Path) {
    let a = fs::read(primary).unwrap();
    let b = fs::read(secondary).unwrap();
    assert_eq!(a.len(), b.len(), "sizes differ");
    assert!(a == b, "the secondary's Data.fs is not byte-identical");
    let out = run_python("check_datafs.py", &[Path::new("same"), primary, secondary]);
    assert!(out.starts_with("ok: "), "{out}");
}

struct Dir {
    _temp: tempfile::TempDir,
    primary: PathBuf,
    secondary: PathBuf,
    log: PathBuf,
}

fn dir() -> Dir {
    let temp = tempfile::tempdir().unwrap();
    Dir {
        primary: temp.path().join("primary.fs"),
        secondary: temp.path().join("secondary.fs"),
        log: temp.path().join("secondary.log"),
        _temp: temp,
    }
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn catches_up_and_follows_new_commits() {
    let d = dir();
    let mut primary = start_primary(&d.primary, Some(200), 0, &[]);
    let secondary = start_secondary(&d.secondary, primary.port, &d.log);
    wait_identical(&d.primary, &d.secondary, &d.log);

    let before = size(&d.primary);
    let after = primary.commit(25);
    assert!(after > before, "the commits grew the primary's file");
    wait_identical(&d.primary, &d.secondary, &d.log);

    let log = stop(secondary, &d.log);
    let peer = format!("IPv4Address(TCP, '127.0.0.1', {})", primary.port);
    let expected_start = [
        format!(
            "INFO zc.zrs.secondary: Opening {} ('127.0.0.1', {})",
            d.secondary.display(),
            primary.port
        ),
        "INFO zc.zrs.reactor: Starting factory <zc.zrs.secondary.SecondaryFactory instance>"
            .to_string(),
        format!("INFO zc.zrs.secondary: {peer}: Connected"),
    ];
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[..3], expected_start, "log:\n{log}");
    primary.quit();
    assert_same(&d.primary, &d.secondary);
}

/// Where each transaction of a Data.fs ends: after the 4-byte magic, a transaction's
/// header holds its length at bytes 8..16, and the length is repeated after it.
fn transaction_ends(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).unwrap();
    let mut ends = Vec::new();
    let mut pos = 4usize;
    while pos < bytes.len() {
        let len = u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        pos += len as usize + 8;
        ends.push(pos as u64);
    }
    assert_eq!(
        pos,
        bytes.len(),
        "{}: transactions do not add up",
        path.display()
    );
    ends
}

/// The primary (`--stall-in 120`) stops mid-way through its 120th transaction: the secondary
/// commits the 119 before it, exactly, and nothing more (an event, whatever the load).
const STALL_IN: usize = 120;

fn wait_for_stall(primary: &mut ScriptedPrimary, d: &Dir) {
    assert_eq!(primary.line("stalled"), STALL_IN.to_string());
    let before = transaction_ends(&d.primary)[STALL_IN - 2];
    wait_until(
        "the secondary commits what came before the stall",
        &d.log,
        || size(&d.secondary) == before,
    );
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn reconnects_after_the_primary_dies_mid_stream() {
    let d = dir();
    let mut primary = start_primary(&d.primary, Some(200), 0, &["--stall-in", "120"]);
    let port = primary.port;
    let full = size(&d.primary);
    let secondary = start_secondary(&d.secondary, port, &d.log);
    wait_for_stall(&mut primary, &d);
    assert!(size(&d.secondary) < full);
    drop(primary); // SIGKILL, mid-transaction: the connection ends without a goodbye

    // The secondary notices, and has a reconnect refused (its factory stopped twice: at the
    // loss, and at the refusal) before the primary is back.
    wait_until("a refused reconnect", &d.log, || {
        fs::read_to_string(&d.log).is_ok_and(|l| {
            l.contains(": Disconnected ") && l.matches("Stopping factory").count() >= 2
        })
    });
    let mut primary = start_primary(&d.primary, None, port, &[]);
    wait_identical(&d.primary, &d.secondary, &d.log);
    primary.commit(5);
    wait_identical(&d.primary, &d.secondary, &d.log);

    let log = stop(secondary, &d.log);
    assert!(
        log.matches(": Connected").count() >= 2,
        "one connection before the kill, one after:\n{log}"
    );
    primary.quit();
    assert_same(&d.primary, &d.secondary);
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn resumes_after_the_secondary_is_killed_mid_stream() {
    let d = dir();
    let mut primary = start_primary(&d.primary, Some(200), 0, &["--stall-in", "120"]);
    let full = size(&d.primary);
    let mut secondary = start_secondary(&d.secondary, primary.port, &d.log);
    wait_for_stall(&mut primary, &d);
    assert!(secondary.is_running());
    secondary.signal("KILL");
    secondary.wait();
    assert!(size(&d.secondary) < full, "killed mid-stream");

    // Restarted on the file it left, it asks for what follows its last transaction (the
    // primary's next stream is not stalled).
    let secondary = start_secondary(&d.secondary, primary.port, &d.log);
    wait_identical(&d.primary, &d.secondary, &d.log);
    stop(secondary, &d.log);
    primary.quit();
    assert_same(&d.primary, &d.secondary);
}

/// Every file under `dir` (the `tmp` folder's contents aside: ZODB's scratch space) with its
/// bytes' md5, and every directory, by relative path, sorted.
fn blob_tree(dir: &Path) -> Vec<(String, Option<String>)> {
    use md5::{Digest, Md5};
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<String>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.push((relative.clone(), None));
                if relative != "tmp" {
                    walk(root, &path, out);
                }
            } else {
                let digest = Md5::digest(fs::read(&path).unwrap());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                out.push((relative, Some(hex)));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn replicates_blobs_from_a_python_blob_primary() {
    let d = dir();
    let primary_blobs = d.primary.with_extension("blobs");
    let secondary_blobs = d.secondary.with_extension("blobs");
    // Blobs of 0, 1, 64 KiB - 1, 64 KiB, 64 KiB + 1 ... 3 MB bytes, changed, and undone
    // (the primary's undo of a creation copies the blob file to the undo's tid).
    let blobs_arg = primary_blobs.to_str().expect("a UTF-8 temporary path");
    let mut primary = start_primary(&d.primary, Some(80), 0, &["--blobs", blobs_arg]);
    let more = [
        std::ffi::OsStr::new("--blob-dir"),
        secondary_blobs.as_os_str(),
    ];
    let secondary = start_secondary_with(&d.secondary, primary.port, &d.log, &more);
    wait_identical(&d.primary, &d.secondary, &d.log);
    primary.commit(30);
    wait_identical(&d.primary, &d.secondary, &d.log);
    let log = stop(secondary, &d.log);
    primary.quit();
    assert_same(&d.primary, &d.secondary);

    // Same paths, same bytes: empty blobs and undo copies included (zc.zrs's secondary
    // lacks both), and nothing left in tmp.
    let expected = blob_tree(&primary_blobs);
    let empty = expected
        .iter()
        .filter(|(_, md5)| md5.as_deref() == Some("d41d8cd98f00b204e9800998ecf8427e"))
        .count();
    assert!(empty >= 2, "the workload makes empty blobs: {expected:?}");
    assert!(expected.len() > 40, "{expected:?}");
    assert_eq!(blob_tree(&secondary_blobs), expected, "log:\n{log}");
    assert_eq!(
        fs::read_dir(secondary_blobs.join("tmp")).unwrap().count(),
        0
    );
    assert!(
        log.contains("Connected"),
        "the secondary connected with zrs2.1:\n{log}"
    );

    // Python ZODB reads every blob of the replica as it reads the primary's.
    let want = run_python("check_blobs.py", &[&d.primary, &primary_blobs]);
    let got = run_python("check_blobs.py", &[&d.secondary, &secondary_blobs]);
    assert!(want.contains(" missing 0\n"), "{want}");
    assert_eq!(got, want);
}
