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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{free_port, zrs_secondary, LineChild, Process, ScriptedPrimary};
use common::{python, root, same_bytes as same};

const PATIENCE: Duration = Duration::from_secs(60);

/// `tests/python/zrs_primary.py` serving `path` (built first with `create` transactions,
/// if given), its log (stderr) in `log`.
fn start_primary(path: &Path, create: Option<u32>, log: PathBuf) -> ScriptedPrimary {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/python/zrs_primary.py"))
        .arg(path);
    if let Some(n) = create {
        cmd.args(["--create", &n.to_string()]);
    }
    ScriptedPrimary::start("the Python primary", &mut cmd, log, PATIENCE)
}

fn secondary(storage: &Path, port: u16, log: &Path) -> Process {
    zrs_secondary(storage, port, "0.3", log, &[], PATIENCE)
}

fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    common::wait_until(what, PATIENCE, &[], cond)
}

/// The files of a failover: the old primary's, and secondaries A, B and C's.
struct Nodes {
    _dir: tempfile::TempDir,
    d: PathBuf,
    p1: PathBuf,
    a: PathBuf,
    b: PathBuf,
    c: PathBuf,
}

/// The old primary (Python zc.zrs) and three zrs secondaries, all caught up; then A and C
/// stop while B goes on receiving, so B is ahead of A; then everything stops and A is
/// promoted (`zrs promote`). Returns the files, and what B held at the end.
fn b_ahead_of_promoted_a() -> (Nodes, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let n = Nodes {
        p1: d.join("p1.fs"),
        a: d.join("a.fs"),
        b: d.join("b.fs"),
        c: d.join("c.fs"),
        d,
        _dir: dir,
    };
    let mut old = start_primary(&n.p1, Some(60), n.d.join("p1.log"));
    let sa = secondary(&n.a, old.port, &n.d.join("a.log"));
    let sb = secondary(&n.b, old.port, &n.d.join("b.log"));
    let sc = secondary(&n.c, old.port, &n.d.join("c.log"));
    for s in [&n.a, &n.b, &n.c] {
        wait_until("catching up with the old primary", || same(&n.p1, s));
    }
    sa.terminate();
    sc.terminate();
    old.commit(10);
    wait_until("B follows the old primary", || same(&n.p1, &n.b));
    sb.terminate();
    old.quit();
    let b_before = fs::read(&n.b).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(["promote", n.a.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("ends cleanly"), "{said}");
    (n, b_before)
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn failover_to_a_promoted_secondary() {
    let (n, b_before) = b_ahead_of_promoted_a();
    let (d, a, b, c) = (&n.d, &n.a, &n.b, &n.c);

    // A is served as the new primary; C and B point at it; it commits more.
    let mut new = start_primary(a, None, d.join("p2.log"));
    let sc = secondary(c, new.port, &d.join("c.log"));
    let sb = secondary(b, new.port, &d.join("b.log"));
    new.commit(5);
    wait_until("C follows the new primary", || same(a, c));
    wait_until("the new primary refuses B", || {
        new.log_text().contains("TidTooHigh")
    });
    sc.terminate();
    sb.terminate();
    new.quit();
    assert!(same(a, c), "C is byte-identical to the new primary");
    assert_eq!(fs::read(b).unwrap(), b_before, "B did not diverge");
    // ZODB agrees C is sound.
    let out = common::run_python("check_datafs.py", &[Path::new("same"), a, c]);
    assert!(out.starts_with("ok: "), "{out}");
}

/// `tests/python/clock_writer.py`: a ZODB application writing a Data.fs (no zc.zrs), its
/// tids from the real clock; it says `ready`, and `committed …` after each `commit N`.
fn start_writer(path: &Path) -> LineChild {
    let writer = LineChild::spawn(
        "the ZODB writer",
        Command::new(python())
            .arg(root().join("tests/python/clock_writer.py"))
            .arg(path),
        PATIENCE,
    );
    writer.expect("ready");
    writer
}

fn commit(writer: &mut LineChild, n: u32) {
    writer.send(&format!("commit {n}"));
    writer.expect("committed");
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
    let (n, b_before) = b_ahead_of_promoted_a();
    let (d, a, b, c) = (&n.d, &n.a, &n.b, &n.c);
    let b_last = last_tid(b);

    // The promoted file gets a writer (the application, failed over) and a zrs primary.
    // The writer's history goes past B's last tid: the case where zc.zrs's own primary
    // would stream its later transactions into B, mixing two histories.
    let mut writer = start_writer(a);
    commit(&mut writer, 3);
    assert!(last_tid(a) > b_last, "the new history is later than B's");
    let port = free_port();
    let primary_log = d.join("p2.log");
    let new = Process::spawn(
        "zrs primary",
        Command::new(env!("CARGO_BIN_EXE_zrs"))
            .args(["primary", "--log-format", "plain"])
            .args(["--storage", a.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(fs::File::create(&primary_log).unwrap()),
        PATIENCE,
    );
    let log = || fs::read_to_string(&primary_log).unwrap_or_default();
    wait_until("the new primary listens", || log().contains("listening on"));
    let sc = secondary(c, port, &d.join("c.log"));
    let sb = secondary(b, port, &d.join("b.log"));
    commit(&mut writer, 5);
    wait_until("C follows the new primary", || same(a, c));
    common::wait_until(
        "the new primary refuses B",
        PATIENCE,
        &[&primary_log, &d.join("b.log")],
        || log().contains("Refusing start"),
    );
    assert!(
        log().contains("so the secondary holds another history"),
        "{}",
        log()
    );
    sc.terminate();
    sb.terminate();
    new.terminate();
    writer.quit();
    assert!(same(a, c));
    assert_eq!(fs::read(b).unwrap(), b_before, "B did not diverge");
    let out = common::run_python("check_datafs.py", &[Path::new("same"), a, c]);
    assert!(out.starts_with("ok: "), "{out}");
}
