//! Child processes for the tests that run real programs (`zrs`, the Python scripts of
//! `tests/python`): a guard that kills and reaps its child when the test fails, a child
//! driven by lines on its stdin and answering on its stdout, the zc.zrs primary scripts
//! built on that, and the `zrs secondary` they replicate to. Every wait is bounded by the
//! caller's patience and waits on an event (a line, an exit), never on a guessed sleep.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A child process, killed (and reaped) when dropped, so a failing test leaves none behind.
pub struct Process {
    child: Child,
    /// What it is, for messages.
    what: String,
    patience: Duration,
}

impl Process {
    /// Starts `cmd`; `what` names it in every message about it.
    pub fn spawn(what: &str, cmd: &mut Command, patience: Duration) -> Process {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        Process {
            child,
            what: what.to_string(),
            patience,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) for the child to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + self.patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {:?}",
                self.what,
                self.patience
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (a name `kill` knows: TERM, KILL, INT…).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -{signal} {} ({}) failed",
            self.pid(),
            self.what
        );
    }

    /// SIGTERM, then waits for a clean exit (status 0).
    pub fn terminate(mut self) {
        self.signal("TERM");
        let status = self.wait();
        assert!(status.success(), "{} exited with {status}", self.what);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child driven by lines on its stdin, answering with lines on its stdout (read by a
/// thread, so a wait for a line is bounded).
pub struct LineChild {
    pub process: Process,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl LineChild {
    /// Starts `cmd` with piped stdin and stdout (its stderr as `cmd` sets it).
    pub fn spawn(what: &str, cmd: &mut Command, patience: Duration) -> LineChild {
        let mut process = Process::spawn(
            what,
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()),
            patience,
        );
        let stdin = process.child.stdin.take();
        let stdout = process.child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LineChild {
            process,
            stdin,
            lines,
        }
    }

    /// The next line, which must start with `prefix`.
    pub fn expect(&self, prefix: &str) -> String {
        let what = &self.process.what;
        let line = self
            .lines
            .recv_timeout(self.process.patience)
            .unwrap_or_else(|_| panic!("{what} printed no `{prefix}` line"));
        assert!(
            line.starts_with(prefix),
            "{what}: expected `{prefix}…`, got {line:?}"
        );
        line
    }

    /// The value of the next line, which must be `WORD value`.
    pub fn line(&self, word: &str) -> String {
        let line = self.expect(&format!("{word} "));
        line[word.len() + 1..].to_string()
    }

    /// Writes `command` as a line to its stdin.
    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{command}").expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    /// Ends its input and waits (bounded) for a clean exit.
    pub fn quit(mut self) {
        drop(self.stdin.take());
        let status = self.process.wait();
        assert!(
            status.success(),
            "{} exited with {status}",
            self.process.what
        );
    }
}

/// A zc.zrs primary script (`tests/python/zrs_primary.py`, `zrs_primary2.py`): it prints
/// `port N` once it listens and `size N` once its Data.fs is built, and takes `commit N`.
/// Its stderr (zc.zrs's own log lines, which say why it closed a connection) goes to `log`.
pub struct ScriptedPrimary {
    pub script: LineChild,
    pub port: u16,
    pub log: PathBuf,
}

impl ScriptedPrimary {
    pub fn start(what: &str, cmd: &mut Command, log: PathBuf, patience: Duration) -> Self {
        let script = LineChild::spawn(what, cmd.stderr(append(&log)), patience);
        let port = script.line("port").parse().expect("port number");
        script.line("size");
        ScriptedPrimary { script, port, log }
    }

    /// Commits `n` more transactions; returns the Data.fs's new size.
    pub fn commit(&mut self, n: u32) -> u64 {
        self.script.send(&format!("commit {n}"));
        self.script.line("size").parse().expect("a size")
    }

    /// The value of the next `WORD value` line.
    pub fn line(&self, word: &str) -> String {
        self.script.line(word)
    }

    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Closes it cleanly.
    pub fn quit(self) {
        self.script.quit()
    }
}

/// `path` opened for appending (created if absent): a child's log.
pub fn append(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// `zrs secondary` replicating into `storage` from the primary at 127.0.0.1:`port`,
/// reconnecting after `reconnect` seconds, with `more` arguments; it logs (plain) into `log`.
pub fn zrs_secondary(
    storage: &Path,
    port: u16,
    reconnect: &str,
    log: &Path,
    more: &[&std::ffi::OsStr],
    patience: Duration,
) -> Process {
    Process::spawn(
        "zrs secondary",
        Command::new(env!("CARGO_BIN_EXE_zrs"))
            .args(["secondary", "--log-format", "plain"])
            .arg("--storage")
            .arg(storage)
            .args(["--primary", &format!("127.0.0.1:{port}")])
            .args(["--reconnect", reconnect])
            .args(more)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(append(log)),
        patience,
    )
}

/// A free port on 127.0.0.1 (bound, then released for a child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}
