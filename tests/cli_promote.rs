//! `zrs promote PATH`: a clean, stopped secondary's file is declared ready; a running one
//! (its lock held) and a torn one are refused, naming why; `--truncate-tail` cuts the torn
//! transaction off.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use zrs::net::status::tid_hex;
use zrs::storage::{FileStorage, Options, ReadStorage};

fn zrs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(args)
        .output()
        .expect("run zrs")
}

fn copy_fixture(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("Data.fs");
    std::fs::copy(
        common::root().join("tests/fixtures/capture/primary.fs"),
        &path,
    )
    .unwrap();
    path
}

#[test]
fn a_clean_stopped_secondary_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    let last = FileStorage::open(
        &path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap()
    .last_transaction();
    let before = std::fs::read(&path).unwrap();
    let out = zrs(&["promote", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("ends cleanly; ") && text.contains(&tid_hex(last)),
        "{text}"
    );
    assert!(text.contains("Ready to serve as a primary"), "{text}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is unchanged"
    );
}

#[test]
fn a_running_secondary_is_refused_naming_its_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(["secondary", "--storage", path.to_str().unwrap()])
        .args(["--primary", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("Data.fs.lock");
    let want = format!(" {}\n", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&lock).ok().as_deref() != Some(want.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the secondary never took its lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = zrs(&["promote", path.to_str().unwrap()]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("Data.fs.lock is locked by pid {}", child.id())),
        "{err}"
    );
}

#[test]
fn a_torn_tail_is_refused_or_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    let clean = std::fs::read(&path).unwrap();
    let mut torn = clean.clone();
    torn.extend_from_slice(&[0x03, 0xd4, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    std::fs::write(&path, &torn).unwrap();
    let out = zrs(&["promote", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "does not end cleanly: a damaged transaction at byte {}",
            clean.len()
        )) && err.contains("--truncate-tail"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        torn,
        "refusing changes nothing"
    );
    let out = zrs(&["promote", "--truncate-tail", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("cut off a damaged transaction"), "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), clean);
}
