//! `zrs status PATH`, a node's status socket (`--status`, `zrs status --node`), the lag a
//! secondary learns from its primary's status (`--primary-status`), and `zrs check` — and
//! zc.zrs's own `zrs-nagios` against zrs nodes (needs Python).
//!
//! The "nodes" here are `zrs secondary` processes whose primary address leads nowhere: they
//! hold their Data.fs as it is and answer status requests, which is all these tests need.
//! The primary-side node serves `tests/fixtures/capture/primary.fs` (made by Python ZODB, one second
//! between transactions); the secondary-side node
//! a clean prefix of it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use zrs::net::status::tid_hex;
use zrs::storage::{FileStorage, Options, ReadStorage, Storage};
use zrs::Tid;

const PATIENCE: Duration = Duration::from_secs(60);

fn zrs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(args)
        .output()
        .expect("run zrs")
}

fn fixture() -> PathBuf {
    common::root().join("tests/fixtures/capture/primary.fs")
}

fn read_only(path: &Path) -> FileStorage {
    FileStorage::open(
        path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap()
}

/// A node killed and reaped when dropped; its status address read from its log.
struct Node {
    child: Child,
    status: String,
    _lines: Receiver<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn node(storage: &Path, extra: &[&str]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(["secondary", "--log-format", "plain"])
        .args(["--storage", storage.to_str().unwrap()])
        .args(["--primary", &format!("127.0.0.1:{}", dead_port())])
        .args(["--status", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the node never logged its status address");
        if let Some(a) = line.strip_prefix("INFO zrs.status: Status on ") {
            break a.to_string();
        }
    };
    Node {
        child,
        status,
        _lines: rx,
    }
}

/// The fixture and a clean prefix of it `behind` transactions short, in `dir`.
fn primary_and_secondary_files(dir: &Path, behind: usize) -> (PathBuf, PathBuf, Tid, Tid) {
    let full = dir.join("primary.fs");
    let part = dir.join("secondary.fs");
    std::fs::copy(fixture(), &full).unwrap();
    let s = read_only(&full);
    let tids: Vec<Tid> = s
        .iterator(None, None)
        .map(|t| t.unwrap().meta.tid)
        .collect();
    let cut_tid = tids[tids.len() - 1 - behind];
    let after = s.file_reader().after(cut_tid).unwrap();
    assert_eq!(after.transactions, behind as u64);
    let bytes = std::fs::read(&full).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() - after.bytes as usize]).unwrap();
    (full, part, *tids.last().unwrap(), cut_tid)
}

#[test]
fn status_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    std::fs::copy(fixture(), &path).unwrap();
    let (last, objects, transactions) = {
        let s = read_only(&path);
        (
            s.last_transaction(),
            s.len(),
            s.iterator(None, None).count(),
        )
    };
    let out = zrs(&["status", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    for want in [
        format!("last-transaction: {}", tid_hex(last)),
        format!("last-transaction-time: {last}"),
        format!("size: {size}"),
        format!("objects: {objects}"),
        format!("transactions: {transactions}"),
        "ends-cleanly: true".to_string(),
    ] {
        assert!(text.lines().any(|l| l == want), "no {want:?} in:\n{text}");
    }
    // A torn last transaction: reported, and the file is left alone (read-only).
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0x03, 0xd4, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    std::fs::write(&path, &bytes).unwrap();
    let out = zrs(&["status", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ends-cleanly"], false);
    assert_eq!(v["damaged-tail"]["at"], size);
    assert_eq!(v["last-transaction"], tid_hex(last));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // A missing file is an error naming it.
    let out = zrs(&["status", dir.path().join("nope.fs").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.fs: no such file"));
}

#[test]
fn a_node_answers_status_and_learns_its_lag_from_the_primary() {
    let dir = tempfile::tempdir().unwrap();
    let (full, part, last, cut) = primary_and_secondary_files(dir.path(), 7);
    let primary = node(&full, &[]);
    let secondary = node(&part, &["--primary-status", &primary.status]);

    let out = zrs(&["status", "--json", "--node", &primary.status]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["1"]["last-transaction"], tid_hex(last));
    assert_eq!(v["1"]["role"], "secondary");
    assert_eq!(v["1"]["size"], std::fs::metadata(&full).unwrap().len());

    // The secondary asks its primary at once, then every 10 s.
    let deadline = Instant::now() + PATIENCE;
    let s = loop {
        let out = zrs(&["status", "--json", "--node", &secondary.status]);
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if !v["1"]["primary"].is_null() {
            break v["1"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the secondary never learned its lag: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(s["last-transaction"], tid_hex(cut));
    assert_eq!(s["primary"]["last-transaction"], tid_hex(last));
    assert_eq!(s["primary"]["transactions-behind"], 7);
    let gap = std::fs::metadata(&full).unwrap().len() - std::fs::metadata(&part).unwrap().len();
    assert_eq!(s["primary"]["bytes-behind"], gap);
    assert_eq!(s["connection"], "disconnected");

    // The text form.
    let out = zrs(&["status", "--node", &secondary.status]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("    transactions-behind: 7\n"), "{text}");

    // A client that connects and says nothing holds up no other (each waits 10 s at most).
    let _silent = std::net::TcpStream::connect(&primary.status).unwrap();
    let started = Instant::now();
    let out = zrs(&["status", "--json", "--node", &primary.status]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a silent client held up the status socket"
    );
}

#[test]
fn check_reports_lag_in_seconds_and_transactions_with_nagios_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (full, part, last, cut) = primary_and_secondary_files(dir.path(), 5);
    let primary = node(&full, &[]);
    let secondary = node(&part, &[]);
    let delta = last.to_unix() - cut.to_unix();
    assert!(delta > 1.0, "the fixture's tids are apart: {delta}");
    let bytes = std::fs::metadata(&full).unwrap().len() - std::fs::metadata(&part).unwrap().len();
    let human = zrs::net::status::human_bytes(bytes as f64);

    let check = |args: &[&str]| {
        let mut all = vec!["check"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[primary.status.as_str(), secondary.status.as_str()]);
        let out = zrs(&all);
        (
            String::from_utf8(out.stdout).unwrap(),
            out.status.code().unwrap(),
        )
    };
    assert_eq!(
        check(&["-m"]),
        (
            format!(
                "Secondary behind primary by {delta:.4} seconds ({bytes_t} transactions, {human})\
                 |'lag'={delta:.4}seconds 'lag_transactions'=5\n",
                bytes_t = 5
            ),
            0
        )
    );
    let w = (delta as u64).saturating_sub(1);
    assert_eq!(
        check(&["-w", &w.to_string()]),
        (
            format!(
                "Secondary behind primary by {delta:.4} seconds > {w} (5 transactions, {human})\n"
            ),
            1
        )
    );
    assert_eq!(
        check(&["-w", &w.to_string(), "-e", &w.to_string()]).1,
        2,
        "beyond -e is an error"
    );
    // Up to date: the primary against itself.
    let out = zrs(&["check", "-w", "10", &primary.status, &primary.status]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Secondary up to date.\n"
    );
    assert_eq!(out.status.code(), Some(0));
    // Usage, and a server that is not there.
    let out = zrs(&["check", &primary.status, &secondary.status]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("Usage: "));
    let gone = format!("127.0.0.1:{}", dead_port());
    let out = zrs(&["check", "-m", &primary.status, &gone]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with(&format!("Can't connect to secondary at '{gone}': ")),);
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn zc_zrs_nagios_reads_zrs_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let (full, part, last, cut) = primary_and_secondary_files(dir.path(), 3);
    let primary = node(&full, &[]);
    let secondary = node(&part, &[]);
    let delta = last.to_unix() - cut.to_unix();
    let out = Command::new(common::python())
        .args([
            "-c",
            "import sys, zc.zrs.nagios as n; sys.exit(n.basic(sys.argv[1:]))",
            "-m",
            "-w",
            "1",
            &primary.status,
            &secondary.status,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!("Secondary behind primary by {delta:.4} seconds > 1|'lag'={delta:.4}seconds\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn after_counts_the_transactions_and_bytes_past_any_tid() {
    // 100 transactions: over three of the index's marks (one every 32 transactions).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    {
        let mut w = FileStorage::open(&path, Options::default()).unwrap();
        for i in 1..=100u64 {
            let tid = Tid::from_u64(0x03d4_dc04_0000_0000 + i * 0x1000);
            w.tpc_begin(zrs::storage::TransactionMeta {
                tid,
                status: b' ',
                user: vec![],
                description: format!("txn {i}").into_bytes(),
                extension: vec![],
            })
            .unwrap();
            let data = vec![b'x'; i as usize];
            w.restore(zrs::Oid::from_u64(i % 7), tid, Some(&data), b"", None)
                .unwrap();
            w.tpc_vote().unwrap();
            w.tpc_finish().unwrap();
        }
    }
    let s = read_only(&path);
    let reader = s.file_reader();
    let txns: Vec<Tid> = s
        .iterator(None, None)
        .map(|t| t.unwrap().meta.tid)
        .collect();
    assert!(txns.len() > 64, "the fixture spans several index marks");
    let size = s.size();
    for (i, &tid) in txns.iter().enumerate() {
        let a = reader.after(tid).unwrap();
        assert_eq!(a.transactions, (txns.len() - 1 - i) as u64, "after {tid:?}");
        // Every later transaction's bytes: the file from the next transaction on.
        let next = reader.after(Tid::from_u64(tid.as_u64() - 1)).unwrap();
        assert!(next.bytes > a.bytes);
        // Between two tids (not a tid of the file) counts the same as the earlier tid.
        let between = reader.after(Tid::from_u64(tid.as_u64() + 1)).unwrap();
        assert_eq!(between, a);
    }
    assert_eq!(
        reader.after(Tid::ZERO).unwrap().transactions,
        txns.len() as u64
    );
    assert_eq!(reader.after(Tid::ZERO).unwrap().bytes, size - 4);
    assert_eq!(reader.after(*txns.last().unwrap()).unwrap().bytes, 0);
}
