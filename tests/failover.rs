//! A failover, end to end with real processes: the old primary (Python zc.zrs) stops, a zrs
//! secondary is promoted (`zrs promote`) and served as the new primary, another zrs
//! secondary follows it (byte-identical, new commits included), and a zrs secondary that
//! is ahead of the new primary (it received transactions the promoted one never did) is
//! refused and keeps its file unchanged rather than diverging.
//!
//! - `failover_to_a_promoted_secondary`: the new primary is zc.zrs's own, serving the
//!   promoted file as a zc.zrs operator would (its zeo.conf switched from `replicate-from`
//!   to `replicate-to`). It refuses the node that is ahead with `TidTooHigh`, because that
//!   node's last tid is later than anything the promoted file holds.
//! - `failover_to_a_promoted_secondary_served_by_zrs_primary`: the promoted file gets a
//!   writer (a ZODB application, real clock) and `zrs primary`; the new history goes past
//!   the ahead node's last tid — where zc.zrs's primary would stream the later
//!   transactions into it — and zrs's primary refuses it because no transaction of its
//!   file has that id.
//!
//! (A primary can only compare tids: two histories that share a tid value — possible only
//! with a clock that repeats, like the test scripts' fake one — are not told apart.)
//!
//! Needs the Python venv (`ZRS_PYTHON`, else `<root>/.venv/bin/python`).

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{python, root};

const PATIENCE: Duration = Duration::from_secs(60);

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `tests/python/zrs_primary.py` with its log (stderr) in a file.
struct Primary {
    child: Guard,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    port: u16,
    log: PathBuf,
}

impl Primary {
    fn start(path: &Path, create: Option<u32>, log: PathBuf) -> Primary {
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/python/zrs_primary.py"))
            .arg(path);
        if let Some(n) = create {
            cmd.args(["--create", &n.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the Python primary");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Primary {
            child: Guard(child),
            stdin,
            lines,
            port: 0,
            log,
        };
        p.port = p.line("port").parse().unwrap();
        p.line("size");
        p
    }

    fn line(&mut self, word: &str) -> String {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("the primary printed no `{word}` line"));
        line.strip_prefix(&format!("{word} "))
            .unwrap_or_else(|| panic!("expected `{word} …`, got {line:?}"))
            .to_string()
    }

    fn commit(&mut self, n: u32) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "commit {n}").unwrap();
        stdin.flush().unwrap();
        self.line("size");
    }

    fn quit(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + PATIENCE;
        while self.child.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the Python primary did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn secondary(storage: &Path, port: u16, log: &Path) -> Guard {
    Guard(
        Command::new(env!("CARGO_BIN_EXE_zrs"))
            .args(["secondary", "--log-format", "plain"])
            .args(["--storage", storage.to_str().unwrap()])
            .args(["--primary", &format!("127.0.0.1:{port}")])
            .args(["--reconnect", "0.3"])
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .unwrap(),
    )
}

fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    common::wait_until(what, PATIENCE, &[], cond)
}

fn same(a: &Path, b: &Path) -> bool {
    fs::read(a)
        .ok()
        .is_some_and(|x| Some(x) == fs::read(b).ok())
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn failover_to_a_promoted_secondary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (p1, a, b, c) = (
        d.join("p1.fs"),
        d.join("a.fs"),
        d.join("b.fs"),
        d.join("c.fs"),
    );

    // The old primary and three secondaries, all caught up.
    let mut old = Primary::start(&p1, Some(60), d.join("p1.log"));
    let sa = secondary(&a, old.port, &d.join("a.log"));
    let sb = secondary(&b, old.port, &d.join("b.log"));
    let sc = secondary(&c, old.port, &d.join("c.log"));
    for s in [&a, &b, &c] {
        wait_until("catching up with the old primary", || same(&p1, s));
    }
    // A and C stop; B goes on receiving: B is now ahead of A.
    sa.stop();
    sc.stop();
    old.commit(10);
    wait_until("B follows the old primary", || same(&p1, &b));
    sb.stop();
    old.quit();
    let b_before = fs::read(&b).unwrap();

    // Promote A.
    let out = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(["promote", a.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("ends cleanly"), "{said}");

    // A is served as the new primary; C and B point at it; it commits more.
    let mut new = Primary::start(&a, None, d.join("p2.log"));
    let sc = secondary(&c, new.port, &d.join("c.log"));
    let sb = secondary(&b, new.port, &d.join("b.log"));
    new.commit(5);
    wait_until("C follows the new primary", || same(&a, &c));
    wait_until("the new primary refuses B", || {
        new.log().contains("TidTooHigh")
    });
    sc.stop();
    sb.stop();
    new.quit();
    assert!(same(&a, &c), "C is byte-identical to the new primary");
    assert_eq!(fs::read(&b).unwrap(), b_before, "B did not diverge");
    // ZODB agrees C is sound.
    let out = common::run_python("check_datafs.py", &[Path::new("same"), &a, &c]);
    assert!(out.starts_with("ok: "), "{out}");
}

/// `tests/python/clock_writer.py`: a ZODB application writing a Data.fs (no zc.zrs), its
/// tids from the real clock.
struct Writer {
    child: Guard,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Writer {
    fn start(path: &Path) -> Writer {
        let mut child = Command::new(python())
            .arg(root().join("tests/python/clock_writer.py"))
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let w = Writer {
            child: Guard(child),
            stdin,
            lines,
        };
        w.expect("ready");
        w
    }

    fn expect(&self, prefix: &str) -> String {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .expect("the writer went quiet");
        assert!(
            line.starts_with(prefix),
            "expected {prefix:?}, got {line:?}"
        );
        line
    }

    fn commit(&mut self, n: u32) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "commit {n}").unwrap();
        stdin.flush().unwrap();
        self.expect("committed");
    }

    fn quit(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + PATIENCE;
        while self.child.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the writer did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn last_tid(path: &Path) -> zrs::Tid {
    use zrs::storage::ReadStorage;
    zrs::storage::FileStorage::open(
        path,
        zrs::storage::Options {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap()
    .last_transaction()
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn failover_to_a_promoted_secondary_served_by_zrs_primary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (p1, a, b, c) = (
        d.join("p1.fs"),
        d.join("a.fs"),
        d.join("b.fs"),
        d.join("c.fs"),
    );

    let mut old = Primary::start(&p1, Some(60), d.join("p1.log"));
    let sa = secondary(&a, old.port, &d.join("a.log"));
    let sb = secondary(&b, old.port, &d.join("b.log"));
    let sc = secondary(&c, old.port, &d.join("c.log"));
    for s in [&a, &b, &c] {
        wait_until("catching up with the old primary", || same(&p1, s));
    }
    sa.stop();
    sc.stop();
    old.commit(10);
    wait_until("B follows the old primary", || same(&p1, &b));
    sb.stop();
    old.quit();
    let b_before = fs::read(&b).unwrap();
    let b_last = last_tid(&b);

    let out = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(["promote", a.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // The promoted file gets a writer (the application, failed over) and a zrs primary.
    // The writer's history goes past B's last tid: the case where zc.zrs's own primary
    // would stream its later transactions into B, mixing two histories.
    let mut writer = Writer::start(&a);
    writer.commit(3);
    assert!(last_tid(&a) > b_last, "the new history is later than B's");
    let port = free_port();
    let primary_log = d.join("p2.log");
    let new = Guard(
        Command::new(env!("CARGO_BIN_EXE_zrs"))
            .args(["primary", "--log-format", "plain"])
            .args(["--storage", a.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(fs::File::create(&primary_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || fs::read_to_string(&primary_log).unwrap_or_default();
    wait_until("the new primary listens", || log().contains("listening on"));
    let sc = secondary(&c, port, &d.join("c.log"));
    let sb = secondary(&b, port, &d.join("b.log"));
    writer.commit(5);
    wait_until("C follows the new primary", || same(&a, &c));
    let deadline = Instant::now() + PATIENCE;
    while !log().contains("Refusing start") {
        assert!(
            Instant::now() < deadline,
            "the new primary never refused B:\n{}\nB's log:\n{}",
            log(),
            fs::read_to_string(d.join("b.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        log().contains("so the secondary holds another history"),
        "{}",
        log()
    );
    sc.stop();
    sb.stop();
    new.stop();
    writer.quit();
    assert!(same(&a, &c));
    assert_eq!(fs::read(&b).unwrap(), b_before, "B did not diverge");
    let out = common::run_python("check_datafs.py", &[Path::new("same"), &a, &c]);
    assert!(out.starts_with("ok: "), "{out}");
}
