//! Running a scenario: each step echoed as `>>> step`, then its output — the log lines it
//! caused (as zc.zrs's test handler prints them) and any value it prints.
//!
//! Same file, same bytes, every run: the world is virtual, and the storage lives in a fresh
//! directory of its own (or where the scenario or the command line says).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use zrs::pickle::Value;
use zrs::secondary::{Config, LossReason, Secondary};
use zrs::storage::memory::MemoryStorage;
use zrs::storage::Storage;
use zrs::Tid;

use crate::reactor::Queue;
use crate::scenario::literal::repr;
use crate::scenario::{Expr, Line, Open, Outgoing, Scenario, Step, StorageKind};
use crate::storage::open_file_storage;
use crate::transcript::{Capture, Sink};
use crate::world::{SimSecondary, World, WorldError};
use crate::zodb::root_repr;

/// Where a run keeps its files.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Put storage files here (kept after the run) instead of a fresh temporary directory.
    pub storage_dir: Option<PathBuf>,
}

/// A step that could not be carried out: `file:line: step: what`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {text}: {message}")]
pub struct RunError {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub message: String,
    /// The transcript up to and including the failed step's echo.
    pub transcript: String,
}

/// Runs a scenario; returns its transcript.
pub fn run(scenario: &Scenario, options: &RunOptions) -> Result<String, RunError> {
    let sink = Sink::default();
    tracing::subscriber::with_default(Capture::new(sink.clone()), || {
        Runner::new(scenario, options, sink).run()
    })
}

/// Runs a scenario file.
pub fn run_file(path: &Path, options: &RunOptions) -> Result<String, Box<dyn std::error::Error>> {
    let scenario = Scenario::load(path)?;
    Ok(run(&scenario, options)?)
}

struct Runner<'a> {
    scenario: &'a Scenario,
    world: World,
    sink: Sink,
    vars: Vec<(String, Value)>,
    /// The run's own directory (removed at the end), unless the options name one.
    _temp: Option<tempfile::TempDir>,
    dir: PathBuf,
    /// Whether `dir` is kept after the run.
    kept: bool,
    transcript: String,
}

impl<'a> Runner<'a> {
    fn new(scenario: &'a Scenario, options: &RunOptions, sink: Sink) -> Runner<'a> {
        let (temp, dir) = match &options.storage_dir {
            Some(dir) => (None, dir.clone()),
            None => match tempfile::tempdir() {
                Ok(t) => {
                    let dir = t.path().to_path_buf();
                    (Some(t), dir)
                }
                Err(_) => (None, std::env::temp_dir()),
            },
        };
        Runner {
            scenario,
            world: World::new(),
            sink,
            vars: Vec::new(),
            kept: temp.is_none(),
            _temp: temp,
            dir,
            transcript: String::new(),
        }
    }

    fn run(mut self) -> Result<String, RunError> {
        for line in &self.scenario.lines {
            let _ = writeln!(self.transcript, ">>> {}", line.text);
            let result = self.step(line);
            self.transcript.push_str(&self.sink.take());
            match result {
                Ok(Some(printed)) => {
                    self.transcript.push_str(&printed);
                    self.transcript.push('\n');
                }
                Ok(None) => {}
                Err(message) => {
                    return Err(RunError {
                        file: self.scenario.path.display().to_string(),
                        line: line.number,
                        text: line.text.clone(),
                        message,
                        transcript: self.transcript,
                    })
                }
            }
        }
        Ok(self.transcript)
    }

    /// Carries out one step; returns what it prints.
    fn step(&mut self, line: &Line) -> Result<Option<String>, String> {
        let w = &mut self.world;
        let world = |r: Result<(), WorldError>| r.map(|()| None).map_err(|e| e.to_string());
        match &line.step {
            Step::Open(open) => {
                let secondary = self.open(open)?;
                self.world.open(secondary);
                Ok(None)
            }
            Step::Close => world(w.close()),
            Step::Accept => world(w.accept()),
            Step::Reject => world(w.reject()),
            Step::Fail => world(w.lose_connection(LossReason::Other("failed".into()))),
            Step::Drop => world(w.lose_connection(LossReason::Done)),
            Step::Later => Ok(Some(Queue(w.reactor.later()).to_string())),
            Step::DoLater => {
                w.do_later();
                Ok(None)
            }
            Step::Advance(by) => {
                w.advance(*by);
                Ok(None)
            }
            Step::Clients => Ok(Some(w.network.clients_repr())),
            Step::Print(expr) => Ok(Some(repr(&self.eval(expr)?))),
            Step::Compare { left, right, equal } => {
                let same = self.eval(left)? == self.eval(right)?;
                Ok(Some(if same == *equal { "True" } else { "False" }.into()))
            }
            Step::Let { name, value } => {
                let value = self.eval(value)?;
                self.vars.retain(|(n, _)| n != name);
                self.vars.push((name.clone(), value));
                Ok(None)
            }
            Step::InitMd5(expr) => {
                let Value::Bytes(tid) = self.eval(expr)? else {
                    return Err("init_md5 takes a byte string".into());
                };
                let tid = Tid::from_slice(&tid)
                    .ok_or_else(|| format!("init_md5 takes 8 bytes, got {}", tid.len()))?;
                let connection = self
                    .world
                    .network
                    .connection
                    .as_mut()
                    .ok_or("not connected")?;
                connection.md5 = zrs::protocol::checksum::StreamChecksum::new(tid);
                Ok(None)
            }
            Step::Commit { changes, meta } => w
                .primary
                .commit(changes, meta)
                .map(|_| None)
                .map_err(|e| e.to_string()),
            Step::Undo => w
                .primary
                .undo_last()
                .map(|_| None)
                .map_err(|e| e.to_string()),
            Step::Send(send) => self.send(send),
            Step::Chunking(chunking) => {
                w.chunking = chunking.clone();
                Ok(None)
            }
            Step::Root => {
                let secondary = w.secondary().map_err(|e| e.to_string())?;
                root_repr(secondary.storage()).map(Some)
            }
        }
    }

    fn send(&mut self, send: &Outgoing) -> Result<Option<String>, String> {
        let w = &mut self.world;
        let result = match send {
            Outgoing::Transaction => w.send_transaction(),
            Outgoing::All => {
                while w.primary.next_after(w.feed.sent).is_some() {
                    w.send_transaction().map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Outgoing::T => w.send_t(),
            Outgoing::S => w.send_s(),
            Outgoing::C => w.send_c(false),
            Outgoing::LegacyC => w.send_c(true),
            Outgoing::Message { value, protocol } => {
                w.send_message(&zrs::pickle::dumps(value, *protocol))
            }
            Outgoing::Raw(bytes) => w.send_message(bytes),
            Outgoing::Bytes(bytes) => w.deliver(bytes),
            Outgoing::File(path) => {
                let path = relative_to(&self.scenario.path, path);
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                w.deliver(&bytes)
            }
        };
        result.map(|()| None).map_err(|e| e.to_string())
    }

    fn eval(&mut self, expr: &Expr) -> Result<Value, String> {
        match expr {
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Var(name) => self
                .vars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("no variable {name:?} (set it with let)")),
            Expr::Read => self
                .world
                .read()
                .map(Value::Bytes)
                .map_err(|e| e.to_string()),
            Expr::TransTid => Ok(Value::Bytes(self.world.feed.sent.0.to_vec())),
            Expr::LastTransaction => {
                let secondary = self.world.secondary().map_err(|e| e.to_string())?;
                Ok(Value::Bytes(
                    secondary.storage().last_transaction().0.to_vec(),
                ))
            }
        }
    }

    fn open(&mut self, open: &Open) -> Result<SimSecondary, String> {
        let storage: Box<dyn Storage + Send> = match &open.storage {
            StorageKind::Memory => Box::new(MemoryStorage::new(&open.name)),
            StorageKind::File { path } => {
                // Files the user asked to keep are written as in production.
                let durable = path.is_some() || self.kept;
                let path = path.clone().unwrap_or_else(|| self.dir.join(&open.name));
                Box::new(open_file_storage(&open.name, &path, durable)?)
            }
        };
        let mut config = Config {
            address: open.address.clone(),
            reconnect_delay: open.reconnect,
            keep_alive_delay: open.keep_alive,
            check_checksums: open.check_checksums,
            ..Config::default()
        };
        if let Some(limit) = open.frame_limit {
            config.frame_limit = limit;
        }
        Ok(Secondary::new(storage, config))
    }
}

/// `path` taken relative to the scenario file's folder.
fn relative_to(scenario: &Path, path: &Path) -> PathBuf {
    match scenario.parent() {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    }
}
