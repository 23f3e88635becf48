//! The `zrs capture` and `zrs secondary` command lines: what capture sends and records
//! (against a scripted primary on 127.0.0.1), and bad arguments refused by name.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::Duration;

use common::read_message;

fn zrs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(args)
        .output()
        .expect("run zrs")
}

/// Runs `zrs capture` from the primary at `port` into `out`, with `more` arguments, and
/// checks that it succeeded.
fn capture(port: u16, out: &Path, more: &[&str]) -> Output {
    let address = format!("127.0.0.1:{port}");
    let mut args = vec!["capture", &address, out.to_str().unwrap()];
    args.extend(more);
    let result = zrs(&args);
    assert!(result.status.success(), "{result:?}");
    result
}

/// The protocol id and start tid a secondary sent.
type Handshake = (Vec<u8>, Vec<u8>);

/// A primary that reads the handshake, sends `reply` (then stays quiet, or closes), and
/// returns the handshake it got.
fn scripted_primary(reply: Vec<u8>, close: bool) -> (u16, thread::JoinHandle<Handshake>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let protocol = read_message(&mut s);
        let start = read_message(&mut s);
        s.write_all(&reply).unwrap();
        if !close {
            // Quiet but open until capture hangs up.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        }
        (protocol, start)
    });
    (port, handle)
}

#[test]
#[allow(clippy::assertions_on_constants)] // a check of how this build was configured
fn the_binary_under_test_is_the_released_configuration() {
    // The `zrs` these tests run is built with the same features as this test crate; the
    // deliberate bugs must not leak into it through feature unification (zrs-sim's mutation
    // tests have a feature of their own for that).
    assert!(
        !cfg!(feature = "deliberate-bugs"),
        "zrs was built with deliberate-bugs: the CLI tests would run a broken binary"
    );
}

#[test]
fn capture_records_every_byte_after_the_handshake() {
    // Not even framed: capture keeps bytes as they come. The primary closes when done, so
    // the capture ends on that event, whatever the machine's load.
    let reply: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (port, primary) = scripted_primary(reply.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture.bin");
    let result = capture(
        port,
        &out,
        &[
            "--start",
            "03c4f2a1b2c3d4e5",
            "--protocol",
            "zrs2.1",
            "--idle",
            "60",
        ],
    );
    let (protocol, start) = primary.join().unwrap();
    assert_eq!(protocol, b"zrs2.1");
    assert_eq!(start, [0x03, 0xc4, 0xf2, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5]);
    assert_eq!(std::fs::read(&out).unwrap(), reply);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("200000 bytes"), "{stderr}");
    assert!(
        stderr.contains("the primary closed the connection"),
        "{stderr}"
    );
}

#[test]
fn capture_stops_once_the_stream_is_quiet() {
    // The primary answers and stays open: only the idle time ends the capture. It starts
    // counting after the handshake, so a primary thread the machine's load delays longer
    // than it leaves the capture short; then the idle time is doubled and the capture
    // retried, until it has everything (the event this waits for) or the bound is reached.
    let reply = vec![0u8, 0, 0, 3, b'a', b'b', b'c'];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture.bin");
    let mut idle = 0.25;
    loop {
        let (port, primary) = scripted_primary(reply.clone(), false);
        let result = capture(port, &out, &["--idle", &idle.to_string()]);
        primary.join().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(
            stderr.contains(&format!("(quiet for {idle} s)")),
            "{stderr}"
        );
        let got = std::fs::read(&out).unwrap();
        assert!(
            reply.starts_with(&got),
            "{got:?} is not what the primary sent"
        );
        if got == reply {
            assert!(stderr.contains("7 bytes, 1 messages"), "{stderr}");
            break;
        }
        idle *= 2.0;
        assert!(idle <= 16.0, "the capture never received the whole reply");
    }
}

#[test]
fn capture_stops_at_max_bytes_and_when_the_primary_closes() {
    let reply = vec![0u8, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 1];
    let (port, primary) = scripted_primary(reply.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture.bin");
    let result = capture(port, &out, &["--max-bytes", "9"]);
    let (protocol, start) = primary.join().unwrap();
    assert_eq!(protocol, b"zrs2.0", "the default protocol");
    assert_eq!(start, [0; 8], "the default start: zero");
    assert_eq!(std::fs::read(&out).unwrap(), &reply[..9]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("1 messages"), "{stderr}");
    assert!(stderr.contains("ends inside a message"), "{stderr}");
}

#[test]
fn bad_arguments_are_refused_by_name() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["secondary", "--storage", "x.fs", "--primary", "8000"],
            "--primary",
        ),
        (
            &[
                "secondary",
                "--storage",
                "x.fs",
                "--primary",
                ":8000",
                "--reconnect=-1",
            ],
            "--reconnect",
        ),
        (
            &[
                "secondary",
                "--storage",
                "x.fs",
                "--primary",
                ":8000",
                "--durability",
                "batch:0",
            ],
            "--durability",
        ),
        (&["secondary", "--primary", ":8000"], "--storage"),
        (
            &["capture", "127.0.0.1:8000", "out.bin", "--start", "xyz"],
            "--start",
        ),
        (
            &["capture", "127.0.0.1:8000", "out.bin", "--idle", "0"],
            "--idle",
        ),
        (&["capture", "nowhere", "out.bin"], "ADDRESS"),
    ];
    for (args, name) in cases {
        let result = zrs(args);
        assert!(!result.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains(name), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreadable_storage_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Data.fs");
    std::fs::write(&bad, b"not a FileStorage").unwrap();
    let result = zrs(&[
        "secondary",
        "--storage",
        bad.to_str().unwrap(),
        "--primary",
        "127.0.0.1:9",
    ]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("Data.fs"), "{stderr}");
}

#[test]
fn secondary_logs_like_zc_zrs_and_stops_on_sigterm() {
    use std::io::BufRead;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("Data.fs");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args([
            "secondary",
            "--log-format",
            "plain",
            "--storage",
            storage.to_str().unwrap(),
        ])
        .args([
            "--primary",
            &format!("127.0.0.1:{port}"),
            "--reconnect",
            "30",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the child if anything below fails.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    let _guard = Kill(child.id());
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < deadline, "zrs never connected");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let client = conn.peer_addr().unwrap();
    assert_eq!(read_message(&mut conn), b"zrs2.0");
    read_message(&mut conn);
    conn.write_all(&[0, 0, 0, 3, b'b', b'a', b'd']).unwrap();
    let mut seen = Vec::new();
    let next = |seen: &mut Vec<String>| {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no more log lines after {seen:#?}"));
        seen.push(line.clone());
        line
    };
    while !next(&mut seen).starts_with("CRITICAL ") {}
    let peer = format!("IPv4Address(TCP, '127.0.0.1', {port})");
    assert_eq!(
        seen.last().unwrap(),
        &format!("CRITICAL zc.zrs.secondary: {peer}: Input data error"),
        "{seen:#?}"
    );
    assert_ne!(client.port(), port);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    while !next(&mut seen).contains("Closing") {}
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "zrs did not exit on SIGTERM"
        );
        thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "exit status {status}; log {seen:#?}");
    assert_eq!(
        seen[0],
        format!(
            "INFO zc.zrs.secondary: Opening {} ('127.0.0.1', {port})",
            storage.display()
        )
    );
}
