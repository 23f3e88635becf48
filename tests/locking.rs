//! `Data.fs.lock`: every writer takes it as ZODB does (zc.lockfile), so zrs and Python ZODB
//! exclude each other in both directions, and two zrs writers exclude each other; the second
//! writer fails at once naming the lock file and the holder's pid. Readers take no lock.
//!
//! The Python tests need the venv (`ZRS_PYTHON`, else `<root>/.venv/bin/python`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{python, root};
use zrs::storage::{FileStorage, Options, ReadStorage, Storage, StorageError};

const PATIENCE: Duration = Duration::from_secs(60);

/// The tests of this file run one at a time: a child forked by one (before its exec closes
/// the descriptors it inherited) briefly shares another's lock, and a flock is released
/// only when every descriptor of it is closed.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A child killed and reaped when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn writable() -> Options {
    Options::default()
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

/// Waits (bounded) until `path` holds exactly zc.lockfile's content for `pid`.
fn wait_for_lock_content(path: &Path, pid: u32) {
    let want = format!(" {pid}\n");
    let deadline = Instant::now() + PATIENCE;
    while std::fs::read_to_string(path).ok().as_deref() != Some(want.as_str()) {
        assert!(
            Instant::now() < deadline,
            "{} never named pid {pid}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn two_writers_in_one_process_exclude_each_other_and_readers_are_free() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    let mut first = FileStorage::open(&path, writable()).unwrap();
    let lock = dir.path().join("Data.fs.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        format!(" {}\n", std::process::id()),
        "the lock file holds the pid as zc.lockfile writes it"
    );
    let err = FileStorage::open(&path, writable()).unwrap_err();
    assert!(matches!(err, StorageError::Locked(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&lock.display().to_string()), "{text}");
    assert!(
        text.contains(&format!("by pid {}", std::process::id())),
        "{text}"
    );
    // A reader opens regardless, and leaves the lock file alone.
    let reader = FileStorage::open(&path, read_only()).unwrap();
    assert_eq!(reader.last_transaction(), zrs::Tid::ZERO);
    first.close().unwrap();
    // Closed: the next writer gets it.
    let second = FileStorage::open(&path, writable()).unwrap();
    drop(second);
    drop(first);
    FileStorage::open(&path, writable()).unwrap();
}

#[test]
fn a_second_zrs_secondary_fails_at_once_naming_the_holder() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    let storage = path.to_str().unwrap();
    // Nothing listens on a port we bound and released: the first secondary just waits to
    // reconnect, holding its storage.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let primary = format!("127.0.0.1:{port}");
    let first = Guard(
        Command::new(env!("CARGO_BIN_EXE_zrs"))
            .args(["secondary", "--storage", storage, "--primary", &primary])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_lock_content(&dir.path().join("Data.fs.lock"), first.0.id());
    let started = Instant::now();
    let second = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(["secondary", "--storage", storage, "--primary", &primary])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it waited instead of failing"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("Data.fs.lock is locked"), "{stderr}");
    assert!(
        stderr.contains(&format!("by pid {}", first.0.id())),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn python_zodb_holding_the_file_keeps_zrs_out() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    let mut holder = Guard(
        Command::new(python())
            .arg(root().join("tests/python/lock_storage.py"))
            .args(["hold", path.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(holder.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = line.trim().strip_prefix("held ").expect(&line).to_string();
    assert_eq!(pid, holder.0.id().to_string());
    let err = FileStorage::open(&path, writable()).unwrap_err();
    assert!(matches!(err, StorageError::Locked(_)), "{err:?}");
    assert!(err.to_string().contains(&format!("by pid {pid}")), "{err}");
    // Reading is still allowed while ZODB writes.
    FileStorage::open(&path, read_only()).unwrap();
    // Python lets go; zrs gets it.
    let mut stdin = holder.0.stdin.take().unwrap();
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    assert!(holder.0.wait().unwrap().success());
    FileStorage::open(&path, writable()).unwrap();
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn zrs_holding_the_file_keeps_python_zodb_out() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    let try_python = || {
        let out = Command::new(python())
            .arg(root().join("tests/python/lock_storage.py"))
            .args(["try", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let storage = FileStorage::open(&path, writable()).unwrap();
    let said = try_python();
    assert!(said.starts_with("locked: Couldn't lock"), "{said}");
    assert!(said.contains("Data.fs.lock"), "{said}");
    drop(storage);
    assert_eq!(try_python(), "opened\n");
}
