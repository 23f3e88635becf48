//! Running a scenario: each step echoed as `>>> step`, then its output — the log lines it
//! caused (as zc.zrs's test handler prints them) and any value it prints.
//!
//! Same file, same bytes, every run: the world is virtual, and the storage lives in a fresh
//! directory of its own (or where the scenario or the command line says).
//!
//! A [`Session`] carries out steps one at a time; [`run`] drives one through a scenario
//! file, and fuzz campaigns drive one through the steps they generate, so a campaign run
//! and the replay of its scenario file execute the same code. After `oracles on` the
//! session checks the oracles after every step (a violation ends the run with an error),
//! and a step that cannot be carried out is skipped with a note instead of ending it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zrs::pickle::Value;
use zrs::planted::{plant, Bug};
use zrs::secondary::{Config, LossReason, Secondary};
use zrs::storage::file::Durability;
use zrs::storage::ReadStorage;
use zrs::Tid;

use crate::disk::SimDisk;
use crate::fuzz::oracle::{Checker, Violation};
use crate::scenario::literal::repr;
use crate::scenario::{Expr, Open, Outgoing, Scenario, Step, StorageKind};
use crate::storage::{BlobPlace, Place, SimStorage};
use crate::transcript::{Capture, Sink};
use crate::world::{SimSecondary, World, WorldError};
use crate::zodb::root_repr;

/// Adjusts every secondary's configuration.
#[derive(Clone)]
pub struct ConfigHook(pub Arc<dyn Fn(&mut Config) + Send + Sync>);

impl std::fmt::Debug for ConfigHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigHook")
    }
}

/// Where a run keeps its files, and how its secondaries are configured.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Put storage files here (kept after the run) instead of a fresh temporary directory.
    pub storage_dir: Option<PathBuf>,
    /// Applied to every secondary's configuration after the scenario's options.
    pub configure: Option<ConfigHook>,
    /// A deliberate bug planted in zrs while each step runs (mutation tests; needs zrs's
    /// feature `deliberate-bugs`, see [`zrs::planted`]).
    pub bug: Option<Bug>,
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
    /// The oracle violation that ended the run, if that is what ended it.
    pub violation: Option<Box<Violation>>,
}

/// Runs a scenario; returns its transcript.
pub fn run(scenario: &Scenario, options: &RunOptions) -> Result<String, RunError> {
    let sink = Sink::default();
    tracing::subscriber::with_default(Capture::new(sink.clone()), || {
        let mut session = Session::new(options, &scenario.path, sink);
        let mut transcript = String::new();
        for line in &scenario.lines {
            let _ = writeln!(transcript, ">>> {}", line.text);
            let outcome = session.execute(&line.step);
            transcript.push_str(&outcome.output);
            let (message, violation) = match outcome.end {
                None => continue,
                Some(End::Error(message)) => (message, None),
                Some(End::Violation(v)) => (v.to_string(), Some(Box::new(v))),
            };
            return Err(RunError {
                file: scenario.path.display().to_string(),
                line: line.number,
                text: line.text.clone(),
                message,
                transcript,
                violation,
            });
        }
        Ok(transcript)
    })
}

/// Runs a scenario file.
pub fn run_file(path: &Path, options: &RunOptions) -> Result<String, Box<dyn std::error::Error>> {
    let scenario = Scenario::load(path)?;
    Ok(run(&scenario, options)?)
}

/// Why a step ended the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The step could not be carried out (without oracles).
    Error(String),
    /// An oracle failed after the step.
    Violation(Violation),
}

/// What one step did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Its transcript lines (log lines, then what it printed), without the echo.
    pub output: String,
    /// Set when the run must stop here.
    pub end: Option<End>,
}

/// One run's world and what the steps keep between them.
pub struct Session {
    world: World,
    sink: Sink,
    vars: Vec<(String, Value)>,
    options: RunOptions,
    /// The scenario file: relative paths in it are taken from its folder.
    base: PathBuf,
    /// The run's own directory (removed at the end), made when a file storage needs it.
    temp: Option<tempfile::TempDir>,
    /// Oracles, once `oracles on` ran.
    checker: Option<Checker>,
}

impl Session {
    /// A session whose log lines go to `sink` (install [`Capture`] on it around the steps).
    pub fn new(options: &RunOptions, base: &Path, sink: Sink) -> Session {
        Session {
            world: World::new(),
            sink,
            vars: Vec::new(),
            options: options.clone(),
            base: base.to_path_buf(),
            temp: None,
            checker: None,
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// Whether the oracles are on.
    pub fn checking(&self) -> bool {
        self.checker.is_some()
    }

    /// Carries out one step, then (when on) checks the oracles.
    pub fn execute(&mut self, step: &Step) -> Outcome {
        let _planted = plant(self.options.bug);
        let result = self.step(step);
        let mut output = self.sink.take();
        let mut end = None;
        match result {
            Ok(Some(printed)) => {
                output.push_str(&printed);
                output.push('\n');
            }
            Ok(None) => {}
            Err(message) if self.checker.is_some() => {
                let _ = writeln!(output, "(skipped: {message})");
            }
            Err(message) => end = Some(End::Error(message)),
        }
        if let Some(checker) = self.checker.as_mut() {
            if let Err(v) = checker.check(&mut self.world) {
                end = Some(End::Violation(v));
            }
        }
        Outcome { output, end }
    }

    /// Carries out one step; returns what it prints.
    fn step(&mut self, step: &Step) -> Result<Option<String>, String> {
        let w = &mut self.world;
        let world = |r: Result<(), WorldError>| r.map(|()| None).map_err(|e| e.to_string());
        match step {
            Step::Open(open) => {
                let secondary = self.open(open)?;
                self.world.open(secondary);
                Ok(None)
            }
            Step::Close => world(w.close()),
            Step::Address(address) => world(w.set_address(address.clone())),
            Step::Accept => world(w.accept()),
            Step::Reject => world(w.reject()),
            Step::Fail => world(w.lose_connection(LossReason::Other("failed".into()))),
            Step::Drop => world(w.lose_connection(LossReason::Done)),
            Step::Later => Ok(Some(w.later_repr())),
            Step::DoLater => {
                w.do_later();
                Ok(None)
            }
            Step::Advance(by) => {
                w.advance(*by);
                Ok(None)
            }
            Step::Clients => Ok(Some(w.clients_repr())),
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
                world(self.world.init_md5(tid))
            }
            Step::Commit { changes, meta } => w
                .commit(changes, meta)
                .map(|_| None)
                .map_err(|e| e.to_string()),
            Step::Undo(n) => w.undo(*n).map(|_| None).map_err(|e| e.to_string()),
            Step::Send(send) => self.send(send),
            Step::Chunking(chunking) => {
                w.set_chunking(chunking.clone());
                Ok(None)
            }
            Step::Blob(e) => {
                let oid = match self.eval(e)? {
                    Value::Bytes(b) => zrs::Oid::from_slice(&b),
                    _ => None,
                }
                .ok_or("blob takes an oid: 8 bytes")?;
                let secondary = self.world.secondary().map_err(|e| e.to_string())?;
                crate::zodb::blob_repr(secondary.storage(), oid).map(Some)
            }
            Step::BlobFiles => {
                let secondary = w.secondary().map_err(|e| e.to_string())?;
                let blobs = secondary
                    .storage()
                    .blob_dir()
                    .ok_or("the secondary keeps no blobs (open … blobs=on)")?;
                blobs.inspect(crate::zodb::blob_dir_repr).map(Some)
            }
            Step::Root => {
                let secondary = w.secondary().map_err(|e| e.to_string())?;
                root_repr(secondary.storage()).map(Some)
            }
            Step::Oracles => {
                self.checker.get_or_insert_with(Checker::new);
                Ok(None)
            }
            Step::VirtualClock => {
                w.use_virtual_clock();
                Ok(None)
            }
            Step::PrimaryBlobs => self
                .world
                .primary_blobs()
                .map(|()| None)
                .map_err(|e| e.to_string()),
            Step::Serve(limit) => world(w.serve(*limit).map(|_| ())),
            Step::Corrupt { offset, mask } => world(w.corrupt(*offset, *mask)),
            Step::Truncate(n) => world(w.truncate(*n)),
            Step::Duplicate => world(w.duplicate()),
            Step::BadChecksum => world(w.bad_checksum()),
            Step::Crash { keep, tear } => match w.crash(*keep, *tear) {
                Ok(Some(r)) => Ok(Some(crash_report(&r))),
                Ok(None) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            Step::Restart => world(w.restart()),
            Step::Disk(fault) => world(w.disk(*fault)),
            Step::PrimaryRestart => world(w.primary_restart()),
            Step::Outage(length) => world(w.outage(*length)),
            Step::Client { index, action } => w.client(*index, action),
            Step::PrimaryClose => world(w.primary_close()),
            Step::PrimaryCheckpoint => {
                w.checkpoint();
                Ok(None)
            }
            Step::PrimaryFailover => world(w.failover()),
            Step::Node {
                number,
                upstream,
                open,
            } => {
                let secondary = self.open_as(open, Some(*number))?;
                world(self.world.add_node(*number, *upstream, secondary))
            }
            Step::At { number: 1, step } => self.step(step),
            Step::At { number, step } => self.node_step(*number, step),
            Step::Heal(bound) => w.heal(*bound).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// A step addressed to node `s<number>` (2 on).
    fn node_step(&mut self, number: usize, step: &Step) -> Result<Option<String>, String> {
        let w = &mut self.world;
        let world = |r: Result<(), WorldError>| r.map(|()| None).map_err(|e| e.to_string());
        fn node(w: &World, number: usize) -> Result<&crate::world::Node, String> {
            w.nodes()
                .get(number.wrapping_sub(2))
                .ok_or_else(|| WorldError::NoNode(number).to_string())
        }
        match step {
            Step::Accept => world(w.node_accept(number)),
            Step::Reject => world(w.node_reject(number)),
            Step::Fail => world(w.node_lose(number, LossReason::Other("failed".into()))),
            Step::Drop => world(w.node_lose(number, LossReason::Done)),
            Step::Serve(limit) => world(w.node_serve(number, *limit).map(|_| ())),
            Step::Corrupt { offset, mask } => {
                world(w.node_damage(number, |l, s| l.corrupt(*offset, *mask, s)))
            }
            Step::Truncate(n) => world(w.node_damage(number, |l, s| l.truncate(*n, s))),
            Step::Duplicate => world(w.node_damage(number, |l, s| l.duplicate(s))),
            Step::BadChecksum => world(w.node_damage(number, |l, s| l.bad_checksum(s))),
            Step::Close => world(w.node_close(number)),
            Step::Crash { keep, tear } => match w.node_crash(number, *keep, *tear) {
                Ok(Some(r)) => Ok(Some(crash_report(&r))),
                Ok(None) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            Step::Restart => world(w.node_restart(number)),
            Step::Root => root_repr(node(w, number)?.secondary().storage()).map(Some),
            Step::Print(Expr::LastTransaction) => Ok(Some(repr(&Value::Bytes(
                node(w, number)?.last_transaction().0.to_vec(),
            )))),
            other => Err(format!("{other} cannot be addressed to a node")),
        }
    }

    fn send(&mut self, send: &Outgoing) -> Result<Option<String>, String> {
        let w = &mut self.world;
        let result = match send {
            Outgoing::Transaction => w.send_transaction(),
            Outgoing::All => {
                while w.workload().next_after(w.trans_tid()).is_some() {
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
                let path = relative_to(&self.base, path);
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
            Expr::TransTid => Ok(Value::Bytes(self.world.trans_tid().0.to_vec())),
            Expr::LastTransaction => {
                let secondary = self.world.secondary().map_err(|e| e.to_string())?;
                Ok(Value::Bytes(
                    secondary.storage().last_transaction().0.to_vec(),
                ))
            }
        }
    }

    /// The directory storage files go in, and whether it is kept after the run.
    fn dir(&mut self) -> (PathBuf, bool) {
        if let Some(dir) = &self.options.storage_dir {
            return (dir.clone(), true);
        }
        if self.temp.is_none() {
            self.temp = tempfile::tempdir_in(scratch_root())
                .or_else(|_| tempfile::tempdir())
                .ok();
        }
        match &self.temp {
            Some(t) => (t.path().to_path_buf(), false),
            None => (std::env::temp_dir(), true),
        }
    }

    fn open(&mut self, open: &Open) -> Result<SimSecondary, String> {
        self.open_as(open, None)
    }

    /// Opens a secondary; a node's (`s<number>`) files are named after it.
    fn open_as(&mut self, open: &Open, node: Option<usize>) -> Result<SimSecondary, String> {
        let file_name = match node {
            Some(n) => format!("s{n}-{}", open.name),
            None => open.name.clone(),
        };
        let place = match &open.storage {
            StorageKind::Memory => Place::Memory,
            StorageKind::File { path } => {
                let (dir, kept) = self.dir();
                // Files the user asked to keep are written as in production.
                let durable = path.is_some() || kept;
                let path = path.clone().unwrap_or_else(|| dir.join(&file_name));
                Place::File { path, durable }
            }
            StorageKind::Disk { batch } => Place::Disk {
                disk: SimDisk::new(),
                durability: match batch {
                    Some(n) => Durability::Batch(*n),
                    None => Durability::EveryTransaction,
                },
            },
        };
        // The blob directory is on the storage's disk: the simulated one (a disk of its own
        // beside a MemoryStorage), or the host's beside a real file.
        let blobs = open.blobs.then(|| {
            let root = format!("{file_name}.blobs");
            match &place {
                Place::Disk { disk, .. } => BlobPlace::simulated(disk.clone(), root),
                Place::Memory => BlobPlace::simulated(SimDisk::new(), root),
                Place::File { .. } => BlobPlace {
                    root: self.dir().0.join(root),
                    disk: None,
                },
            }
        });
        let storage = SimStorage::open(&open.name, place, blobs)?;
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
        if let Some(hook) = &self.options.configure {
            (hook.0)(&mut config);
        }
        Ok(Secondary::new(storage, config))
    }
}

/// Where runs make their own directories: `/dev/shm` where there is one (a run's blob
/// directories create and delete thousands of files and directories; on a disk file system
/// that alone made a campaign with blobs several times slower), else the system's.
/// Nothing a run prints depends on it.
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// What a crash on a simulated disk kept.
fn crash_report(r: &crate::disk::CrashReport) -> String {
    format!(
        "the disk kept {} of {} unsynced writes{}",
        r.kept,
        r.unsynced,
        if r.torn > 0 {
            format!(" and {} bytes of the next", r.torn)
        } else {
            String::new()
        }
    )
}

/// `path` taken relative to the scenario file's folder.
fn relative_to(scenario: &Path, path: &Path) -> PathBuf {
    match scenario.parent() {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    }
}
