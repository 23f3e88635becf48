//! `zrs`'s log lines: ZEO's default format with a local-time stamp, `plain`, JSON lines,
//! and `RUST_LOG` filtering. Each test runs `zrs secondary` towards a port nothing listens
//! on (it logs its opening lines, then waits to reconnect) and reads its first lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The first `n` stderr lines of `zrs secondary` run with `args` and `env`.
fn first_lines(args: &[&str], env: &[(&str, &str)], n: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("Data.fs");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zrs"));
    cmd.arg("secondary")
        .args(["--storage", storage.to_str().unwrap()])
        .args(["--primary", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = Guard(cmd.spawn().unwrap());
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (0..n)
        .map(|i| {
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("line {i} never came"))
        })
        .collect()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Parses `YYYY-MM-DDTHH:MM:SS` as seconds since the epoch, read as UTC.
fn parse_stamp(s: &str) -> i64 {
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, se) = (num(11..13), num(14..16), num(17..19));
    assert_eq!(
        (&s[4..5], &s[7..8], &s[10..11], &s[13..14], &s[16..17]),
        ("-", "-", "T", ":", ":"),
        "{s}"
    );
    // Days from civil (Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + mi * 60 + se
}

#[test]
fn zeo_format_is_runzeos_default_in_local_time() {
    // A POSIX TZ string needs no tz database: local time is UTC+5:30.
    let before = now_secs();
    let lines = first_lines(&[], &[("TZ", "ZRS-5:30")], 4);
    let after = now_secs();
    assert_eq!(lines[0], "------", "{lines:#?}");
    assert_eq!(lines[2], "------", "{lines:#?}");
    let (stamp, rest) = lines[1].split_at(19);
    let local = parse_stamp(stamp);
    let offset = 5 * 3600 + 30 * 60;
    assert!(
        (before + offset..=after + offset).contains(&local),
        "{stamp} is not local time (UTC+5:30) between {before} and {after}"
    );
    assert!(
        rest.starts_with(" INFO zc.zrs.secondary Opening "),
        "{lines:#?}"
    );
    assert!(
        lines[3].ends_with(
            " INFO zc.zrs.reactor Starting factory <zc.zrs.secondary.SecondaryFactory instance>"
        ),
        "{lines:#?}"
    );
}

#[test]
fn plain_format_has_no_time() {
    let lines = first_lines(&["--log-format", "plain"], &[], 2);
    assert!(
        lines[0].starts_with("INFO zc.zrs.secondary: Opening "),
        "{lines:#?}"
    );
    assert_eq!(
        lines[1],
        "INFO zc.zrs.reactor: Starting factory <zc.zrs.secondary.SecondaryFactory instance>"
    );
}

#[test]
fn json_lines_carry_time_level_logger_message() {
    let before = now_secs();
    let lines = first_lines(&["--log-format", "json"], &[], 2);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["logger"], "zc.zrs.secondary");
    assert!(first["message"].as_str().unwrap().starts_with("Opening "));
    let time = first["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    assert!(parse_stamp(&time[..19]) >= before, "{time}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["logger"], "zc.zrs.reactor");
}

#[test]
fn rust_log_filters_by_logger() {
    // Only the reactor's INFO lines (and anything at WARNING or worse) remain.
    let lines = first_lines(
        &["--log-format", "plain"],
        &[("RUST_LOG", "warn,zc.zrs.reactor=info")],
        1,
    );
    assert_eq!(
        lines[0],
        "INFO zc.zrs.reactor: Starting factory <zc.zrs.secondary.SecondaryFactory instance>"
    );
}
