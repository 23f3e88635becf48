//! `zrs run --config FILE`: the shipped example configurations parse into the nodes they
//! describe; errors name file and line; a secondary configured the zc.zrs way replicates
//! (from a scripted primary replaying a recorded Python zc.zrs stream) into the same bytes
//! as the Python primary's file, answers status, and stops on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use zrs::storage::ReadStorage;

use common::{read_message, root};

fn zrs_in_root(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zrs"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run zrs")
}

#[test]
fn every_example_parses_into_its_nodes() {
    let expected = [
        (
            "examples/blobs.conf",
            "secondary 1 (examples/blobs.conf, line 5): /var/lib/zodb/Data.fs, \
             blob-dir /var/lib/zodb/blobs, replicate-from primary.example.com:8000\n",
        ),
        (
            "examples/secondary.conf",
            "secondary 1 (examples/secondary.conf, line 11): /var/lib/zodb/Data.fs, \
             replicate-from primary.example.com:8000, keep-alive-delay 60\n",
        ),
        (
            "examples/primary.conf",
            "primary 1 (examples/primary.conf, line 9): /var/lib/zodb/Data.fs, replicate-to :8000\n",
        ),
        (
            "examples/chain.conf",
            "chain 1 (examples/chain.conf, line 10): /var/lib/zodb/Data.fs, \
             replicate-from primary.example.com:8000, replicate-to :8001, keep-alive-delay 60\n",
        ),
        (
            "examples/two-databases.conf",
            "secondary main (examples/two-databases.conf, line 8): /var/lib/zodb/main.fs, \
             replicate-from primary.example.com:8000, primary-status primary.example.com:8090\n\
             secondary catalog (examples/two-databases.conf, line 18): /var/lib/zodb/catalog.fs, \
             replicate-from primary.example.com:8001\n",
        ),
    ];
    let mut shipped: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| format!("examples/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".conf"))
        .collect();
    shipped.sort();
    let mut tested: Vec<String> = expected.iter().map(|(f, _)| f.to_string()).collect();
    tested.sort();
    assert_eq!(shipped, tested, "every shipped example is tested");
    for (file, want) in expected {
        let out = zrs_in_root(&["run", "--config", file, "--check"]);
        assert!(out.status.success(), "{file}: {out:?}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want, "{file}");
    }
}

#[test]
fn errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("zeo.conf");
    std::fs::write(
        &conf,
        "%import zc.zrs\n<zrs>\n  replicate-from primary:8000\n  keep-alive 60\n</zrs>\n",
    )
    .unwrap();
    let out = zrs_in_root(&["run", "--config", conf.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "zrs: {}, line 4: unknown key \"keep-alive\" in <zrs> (zc.zrs knows replicate-from, \
             replicate-to, keep-alive-delay; zrs adds primary-status)\n",
            conf.display()
        )
    );
    let out = zrs_in_root(&["run", "--config", "examples/nope.conf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .starts_with("zrs: examples/nope.conf, line 0: cannot read examples/nope.conf: "));
}

/// Waits (bounded) for `child` to exit after SIGTERM.
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("zrs run did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `zrs run --log-format plain --config conf` with `more` arguments; its log lines
/// come through a channel, so that every wait on the log is bounded.
fn spawn_run(conf: &Path, more: &[&str]) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args([
            "run",
            "--log-format",
            "plain",
            "--config",
            conf.to_str().unwrap(),
        ])
        .args(more)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// What `zrs status --json` says of the node whose status address is `status`.
fn status_json(status: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_zrs"))
        .args(["status", "--json", "--node", status])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sends SIGTERM to `child` and waits (bounded) for it to exit.
fn terminate(child: &mut Child) -> ExitStatus {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    wait_exit(child)
}

#[test]
fn a_configured_secondary_replicates_answers_status_and_stops() {
    let fixtures = root().join("tests/fixtures/capture");
    let stream = std::fs::read(fixtures.join("python-primary.bin")).unwrap();
    let want = std::fs::read(fixtures.join("primary.fs")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The recorded stream answers a secondary starting from zero, then stays open.
    let primary = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        assert_eq!(read_message(&mut s), b"zrs2.0");
        assert_eq!(read_message(&mut s), [0u8; 8]);
        s.write_all(&stream).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("Data.fs");
    let conf = dir.path().join("zeo.conf");
    std::fs::write(
        &conf,
        format!(
            "%import zc.zrs\n<zeo>\n  address 8100\n</zeo>\n<zrs>\n  replicate-from 127.0.0.1:{port}\n\
             <filestorage>\n    path {}\n  </filestorage>\n</zrs>\n",
            data.display()
        ),
    )
    .unwrap();
    let (mut child, rx) = spawn_run(&conf, &["--status", "127.0.0.1:0", "--progress", "0.2"]);
    let next = || {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("zrs run logged nothing more within 60 s")
    };
    let status = loop {
        let line = next();
        if let Some(a) = line.strip_prefix("INFO zrs.status: Status on ") {
            break a.to_string();
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(&data).ok().as_deref() != Some(&want[..]) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the configured secondary never caught up");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = status_json(&status);
    assert_eq!(v["1"]["role"], "secondary");
    assert_eq!(v["1"]["connection"], "connected");
    assert_eq!(v["1"]["replicate-from"], format!("127.0.0.1:{port}"));
    assert_eq!(v["1"]["size"], want.len());
    // Progress is logged (within 0.2 s of the commits), with where the node is.
    let last = zrs::net::status::tid_hex(
        zrs::storage::FileStorage::open(
            &data,
            zrs::storage::Options {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap()
        .file_reader()
        .last_transaction(),
    );
    let progress = loop {
        let line = next();
        if line.starts_with("INFO zrs.status: Replicated ") && line.contains(&last) {
            break line;
        }
    };
    assert!(progress.contains("behind by commit time"), "{progress}");
    let exit = terminate(&mut child);
    // Up to the end of its output (the reader's channel closes at end of file).
    let rest: Vec<String> =
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(60)).ok()).collect();
    assert!(exit.success(), "{exit}: {rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("INFO zc.zrs.secondary: Closing ")),
        "{rest:#?}"
    );
    primary.join().unwrap();
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_configured_primary_chain_and_secondary_replicate_and_report() {
    let fixture = root().join("tests/fixtures/capture/primary.fs");
    let want = std::fs::read(&fixture).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.fs");
    let c = dir.path().join("c.fs");
    let s = dir.path().join("s.fs");
    std::fs::copy(&fixture, &p).unwrap();
    let (p_port, c_port) = (free_port(), free_port());
    let conf = dir.path().join("zeo.conf");
    std::fs::write(
        &conf,
        format!(
            "%import zc.zrs\n\
             <zrs primary>\n  replicate-to 127.0.0.1:{p_port}\n  <filestorage>\n    path {}\n  </filestorage>\n</zrs>\n\
             <zrs chain>\n  replicate-from 127.0.0.1:{p_port}\n  replicate-to 127.0.0.1:{c_port}\n\
             \x20 <filestorage>\n    path {}\n  </filestorage>\n</zrs>\n\
             <zrs secondary>\n  replicate-from 127.0.0.1:{c_port}\n  <filestorage>\n    path {}\n  </filestorage>\n</zrs>\n",
            p.display(),
            c.display(),
            s.display()
        ),
    )
    .unwrap();
    let (mut child, rx) = spawn_run(&conf, &["--status", "127.0.0.1:0"]);
    let mut seen = Vec::new();
    let status = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no status address in {seen:#?}"));
        if let Some(a) = line.strip_prefix("INFO zrs.status: Status on ") {
            break a.to_string();
        }
        seen.push(line);
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while [&c, &s]
        .iter()
        .any(|f| std::fs::read(f).ok().as_deref() != Some(&want[..]))
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            let rest: Vec<String> = rx.try_iter().collect();
            panic!("the chain never delivered: {seen:#?} {rest:#?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = status_json(&status);
    assert_eq!(v["primary"]["role"], "primary");
    assert_eq!(v["primary"]["replicate-to"], format!("127.0.0.1:{p_port}"));
    assert_eq!(v["chain"]["role"], "chain");
    assert_eq!(v["chain"]["connection"], "connected");
    assert_eq!(v["secondary"]["role"], "secondary");
    for id in ["primary", "chain", "secondary"] {
        assert_eq!(v[id]["size"], want.len(), "{id}");
    }
    assert_eq!(
        v["primary"]["secondaries"].as_array().unwrap().len(),
        1,
        "{v}"
    );
    assert_eq!(
        v["chain"]["secondaries"].as_array().unwrap().len(),
        1,
        "{v}"
    );
    let exit = terminate(&mut child);
    assert!(exit.success(), "{exit}");
}
