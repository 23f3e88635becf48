//! `zrs primary` and `zrs secondary --listen` against real Python, over 127.0.0.1:
//!
//! - `zrs primary` → the Python zc.zrs 3.1.0 secondary (with the one-attribute
//!   `extension_bytes` shim of `tests/python/zrs_secondary.py`: zc.zrs 3.1.0's secondary does
//!   not run on ZODB ≥ 5.6 without it): byte-identical Data.fs;
//! - the Python zc.zrs primary → `zrs secondary --listen` → a chained `zrs secondary`: all
//!   three byte-identical, also after new commits;
//! - `zrs primary` on a Data.fs a plain ZODB application keeps committing to → `zrs
//!   secondary`: equal after every burst; the follow latency (commit returned in Python →
//!   the secondary's file holds it) is measured and printed; then the writer packs (ZODB
//!   replaces the file) and the primary goes on from the new file.
//!
//! Needs the Python venv (`ZRS_PYTHON`, else `<root>/.venv/bin/python`); every wait is
//! bounded and on an event (a line printed, a file's bytes); children are killed when a test
//! fails.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::{append, free_port, LineChild, Process};
use common::{python, root, run_python};

const PATIENCE: Duration = Duration::from_secs(60);

fn zrs(args: &[&str], log: &Path) -> Process {
    Process::spawn(
        &format!("zrs {}", args[0]),
        Command::new(env!("CARGO_BIN_EXE_zrs"))
            .args(["--log-format", "plain"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(append(log)),
        PATIENCE,
    )
}

fn wait_until(what: &str, logs: &[&Path], cond: impl FnMut() -> bool) {
    common::wait_until(what, PATIENCE, logs, cond)
}

fn log_has(log: &Path, needle: &str) -> bool {
    fs::read_to_string(log).is_ok_and(|t| t.contains(needle))
}

fn identical(a: &Path, b: &Path) -> bool {
    let (Ok(x), Ok(y)) = (fs::read(a), fs::read(b)) else {
        return false;
    };
    x.len() > 4 && x == y
}

/// ZODB agrees too: fstest, every transaction and record, every object loads.
fn assert_same(a: &Path, b: &Path) {
    assert!(
        identical(a, b),
        "{} and {} differ",
        a.display(),
        b.display()
    );
    let out = run_python("check_datafs.py", &[Path::new("same"), a, b]);
    assert!(out.starts_with("ok: "), "{out}");
}

/// A script of `tests/python`, driven by lines on its stdin, answering on its stdout.
fn script(name: &str, args: &[&str]) -> LineChild {
    LineChild::spawn(
        name,
        Command::new(python())
            .arg(root().join("tests/python").join(name))
            .args(args)
            .stderr(Stdio::inherit()),
        PATIENCE,
    )
}

struct Dir {
    temp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            temp: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Starts `zrs primary` on `storage`; returns it and its port once it listens.
fn start_primary(storage: &Path, log: &Path) -> (Process, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let guard = zrs(
        &["primary", "--storage", s(storage), "--listen", &listen],
        log,
    );
    wait_until("zrs primary listens", &[log], || {
        log_has(log, &format!("listening on {listen}"))
    });
    (guard, port)
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn zrs_primary_serves_the_python_secondary() {
    let d = Dir::new();
    let (p, sec, plog) = (
        d.path("primary.fs"),
        d.path("secondary.fs"),
        d.path("primary.log"),
    );
    let out = run_python(
        "zrs_primary.py",
        &[
            &p,
            Path::new("--create"),
            Path::new("300"),
            Path::new("--no-serve"),
        ],
    );
    assert!(out.starts_with("size "), "{out}");
    let (primary, port) = start_primary(&p, &plog);
    let secondary = script("zrs_secondary.py", &[s(&sec), &format!("127.0.0.1:{port}")]);
    secondary.line("start");
    wait_until("the Python secondary catches up", &[&plog], || {
        identical(&p, &sec)
    });
    // SIGTERM closes the Python secondary, then the primary.
    secondary.process.terminate();
    primary.terminate();
    let log = fs::read_to_string(&plog).unwrap();
    assert!(log.contains(": Connected"), "{log}");
    assert!(
        log.contains(
            "start b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' (1900-01-01 00:00:00.000000)"
        ),
        "{log}"
    );
    assert!(log.contains("INFO zc.zrs.primary: Closing "), "{log}");
    assert_same(&p, &sec);
}

/// A chain of two `zrs secondary`s below the primary at `port`: `s1` (with blob directory
/// `blobs.0`, if given) replicates from it and serves `s2` (blob directory `blobs.1`).
/// Returns them, first and second, once the first listens.
fn chain(
    port: u16,
    (s1, log1): (&Path, &Path),
    (s2, log2): (&Path, &Path),
    blobs: Option<(&Path, &Path)>,
) -> (Process, Process) {
    let middle = free_port();
    let secondary = |storage: &Path, blob_dir: Option<&Path>, from: u16, more: &[&str], log| {
        let mut args = vec!["secondary", "--storage", s(storage)];
        if let Some(dir) = blob_dir {
            args.extend(["--blob-dir", s(dir)]);
        }
        let from = format!("127.0.0.1:{from}");
        args.extend(["--primary", &from, "--reconnect", "0.2"]);
        args.extend(more);
        zrs(&args, log)
    };
    let listen = format!("127.0.0.1:{middle}");
    let first = secondary(s1, blobs.map(|b| b.0), port, &["--listen", &listen], log1);
    wait_until("the middle secondary listens", &[log1], || {
        log_has(log1, &format!("listening on {listen}"))
    });
    let second = secondary(s2, blobs.map(|b| b.1), middle, &[], log2);
    (first, second)
}

/// Runs a `chain` below the Python `primary` (writing `p`) until both secondaries hold
/// `p`'s bytes, then again after `commits` more transactions, and stops all three.
fn replicate_down_a_chain(
    mut primary: LineChild,
    p: &Path,
    (s1, log1): (&Path, &Path),
    (s2, log2): (&Path, &Path),
    blobs: Option<(&Path, &Path)>,
    commits: u32,
) {
    let port: u16 = primary.line("port").parse().unwrap();
    primary.line("size");
    let (first, second) = chain(port, (s1, log1), (s2, log2), blobs);
    wait_until("the chain catches up", &[log1, log2], || {
        identical(p, s1) && identical(p, s2)
    });
    primary.send(&format!("commit {commits}"));
    primary.line("size");
    wait_until("new commits go down the chain", &[log1, log2], || {
        identical(p, s1) && identical(p, s2)
    });
    second.terminate();
    first.terminate();
    primary.quit();
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn python_primary_feeds_a_chain_of_zrs_secondaries() {
    let d = Dir::new();
    let (p, s1, s2) = (d.path("primary.fs"), d.path("s1.fs"), d.path("s2.fs"));
    let (log1, log2) = (d.path("s1.log"), d.path("s2.log"));
    let primary = script("zrs_primary.py", &[s(&p), "--create", "200"]);
    replicate_down_a_chain(primary, &p, (&s1, &log1), (&s2, &log2), None, 40);
    let middle_log = fs::read_to_string(&log1).unwrap();
    assert!(
        middle_log.contains("INFO zc.zrs.primary: Opening "),
        "{middle_log}"
    );
    assert!(
        middle_log.contains("INFO zc.zrs.primary: Closing "),
        "{middle_log}"
    );
    assert_same(&p, &s1);
    assert_same(&p, &s2);
}

/// The tid of a Data.fs's last transaction (through the redundant length at its end).
fn last_tid(path: &Path) -> Option<[u8; 8]> {
    let b = fs::read(path).ok()?;
    if b.len() < 12 {
        return None;
    }
    let tlen = u64::from_be_bytes(b[b.len() - 8..].try_into().unwrap()) as usize;
    let start = b.len().checked_sub(8 + tlen)?;
    b.get(start..start + 8)?.try_into().ok()
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn zrs_primary_follows_a_zodb_application_writing_the_file() {
    let d = Dir::new();
    let (p, sec) = (d.path("primary.fs"), d.path("secondary.fs"));
    let (plog, slog) = (d.path("primary.log"), d.path("secondary.log"));
    let mut writer = script("zodb_writer.py", &[s(&p)]);
    writer.line("size");
    writer.send("commit 50");
    writer.line("committed");
    let (primary, port) = start_primary(&p, &plog);
    let secondary = zrs(
        &[
            "secondary",
            "--storage",
            s(&sec),
            "--primary",
            &format!("127.0.0.1:{port}"),
            "--reconnect",
            "0.2",
        ],
        &slog,
    );
    wait_until("the secondary catches up", &[&plog, &slog], || {
        identical(&p, &sec)
    });

    // Bursts while both run: the latency from Python's commit returning to the
    // secondary's file holding it.
    let mut latencies = Vec::new();
    for _ in 0..20 {
        writer.send("commit 2");
        let line = writer.line("committed");
        let committed: f64 = line.split(' ').next().unwrap().parse().unwrap();
        wait_until("the commit reaches the secondary", &[&plog, &slog], || {
            identical(&p, &sec)
        });
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        latencies.push(now - committed);
    }
    latencies.sort_by(f64::total_cmp);
    let ms = |x: f64| x * 1000.0;
    eprintln!(
        "follow latency (ZODB commit returned -> secondary's Data.fs holds it), 20 bursts, \
         --poll 0.02: median {:.1} ms, max {:.1} ms",
        ms(latencies[10]),
        ms(latencies[19])
    );
    assert!(latencies[19] < 5.0, "a commit took {:.1} s", latencies[19]);

    // The writer packs: ZODB replaces the file; the primary reopens it and goes on.
    writer.send("pack");
    writer.line("size");
    writer.send("commit 3");
    writer.line("committed");
    wait_until("the primary reopens the packed file", &[&plog], || {
        log_has(&plog, "was replaced (packed): reopened")
    });
    wait_until(
        "commits after the pack reach the secondary",
        &[&plog, &slog],
        || last_tid(&p).is_some() && last_tid(&p) == last_tid(&sec),
    );
    secondary.terminate();
    primary.terminate();
    writer.quit();
    // The secondary holds the unpacked history: fstest accepts it and it loads every
    // object as the packed primary does.
    let out = run_python("check_datafs.py", &[Path::new("prefix"), &sec, &sec]);
    assert!(out.starts_with("ok: "), "{out}");
}

/// Every file under a blob directory (its `tmp` folder aside) with its bytes, sorted.
fn blob_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                if relative != "tmp" {
                    walk(root, &path, out);
                }
            } else {
                out.push((relative, fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn zrs_primary_sends_blobs_to_the_python_blob_secondary() {
    let d = Dir::new();
    let (p, pb, sec, sb, plog) = (
        d.path("primary.fs"),
        d.path("primary.blobs"),
        d.path("secondary.fs"),
        d.path("secondary.blobs"),
        d.path("primary.log"),
    );
    // Blobs of 0, 1, 64 KiB ± 1 ... 3 MB, changed and undone, by ZODB's BlobStorage.
    let out = run_python(
        "zrs_primary.py",
        &[
            &p,
            Path::new("--create"),
            Path::new("80"),
            Path::new("--blobs"),
            &pb,
            Path::new("--no-serve"),
        ],
    );
    assert!(out.starts_with("size "), "{out}");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let primary = zrs(
        &[
            "primary",
            "--storage",
            s(&p),
            "--listen",
            &listen,
            "--blob-dir",
            s(&pb),
        ],
        &plog,
    );
    wait_until("zrs primary listens", &[&plog], || {
        log_has(&plog, &format!("listening on {listen}"))
    });
    let secondary = script("zrs_secondary.py", &[s(&sec), &listen, s(&sb)]);
    secondary.line("start");
    wait_until("the Python blob secondary catches up", &[&plog], || {
        identical(&p, &sec)
    });
    secondary.process.terminate();
    primary.terminate();
    assert_same(&p, &sec);

    // Every blob the Python secondary can hold is there, with the primary's bytes; what it
    // lacks is what zc.zrs's secondary never stores (empty blobs: README, "Where zrs
    // differs").
    let want = run_python("check_blobs.py", &[&p, &pb]);
    let got = run_python("check_blobs.py", &[&sec, &sb]);
    let (want, got): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    assert_eq!(want.len(), got.len(), "{want:?}\n{got:?}");
    let mut empty = 0;
    for (w, g) in want.iter().zip(&got) {
        if w.starts_with("blobs ") {
            continue;
        }
        if w.ends_with(EMPTY_MD5) && g.ends_with(" missing") {
            empty += 1;
            continue;
        }
        assert_eq!(w, g);
    }
    assert!(empty > 0, "the workload has empty blobs: {want:?}");
    let read = got
        .iter()
        .filter(|l| l.len() > 32 && !l.ends_with(" missing"));
    assert!(read.count() > 20, "{got:?}");
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn chained_zrs_secondaries_pass_blobs_on() {
    let d = Dir::new();
    let (p, pb) = (d.path("primary.fs"), d.path("primary.blobs"));
    let (s1, b1, s2, b2) = (
        d.path("s1.fs"),
        d.path("s1.blobs"),
        d.path("s2.fs"),
        d.path("s2.blobs"),
    );
    let (log1, log2) = (d.path("s1.log"), d.path("s2.log"));
    let primary = script(
        "zrs_primary.py",
        &[s(&p), "--create", "60", "--blobs", s(&pb)],
    );
    replicate_down_a_chain(
        primary,
        &p,
        (&s1, &log1),
        (&s2, &log2),
        Some((&b1, &b2)),
        25,
    );
    assert_same(&p, &s1);
    assert_same(&p, &s2);
    let want = blob_files(&pb);
    assert!(want.len() > 20, "{}", want.len());
    assert!(
        blob_files(&b1) == want,
        "the middle secondary's blobs differ"
    );
    assert!(
        blob_files(&b2) == want,
        "the chained secondary's blobs differ"
    );
}
