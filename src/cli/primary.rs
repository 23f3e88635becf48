//! `zrs primary`: serve a Data.fs to secondaries, following what another process commits.
//!
//! The usual deployment has a ZODB application or a ZEO server writing `Data.fs`; `zrs
//! primary` opens the same file read-only (it takes no lock and writes nothing) and streams
//! it to every secondary that connects. It learns of new transactions by polling the file
//! every `--poll` seconds: [`FileStorage::refresh`] indexes the transactions finished since
//! (never one still being written). When the writer packs, ZODB replaces the file; the poll
//! notices (another inode, or a shorter file), reopens it and the streams go on from where
//! they were, as zc.zrs's primary reopens its file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use zrs::net::status::{NodeStatus, Role};
use zrs::net::{parse_address, Driver, DriverOptions, Follow, Followed, Listener};
use zrs::primary::{Config, Primary, Sealing};
use zrs::secondary::Address;
use zrs::storage::{BlobReader, FileStorage, Options, ReadStorage};

/// Serve a Data.fs to zc.zrs / zrs secondaries until interrupted (SIGINT or SIGTERM close
/// it cleanly: connected secondaries first get what is committed). Another process (ZODB,
/// ZEO) may write the file: new transactions are streamed as they are finished.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Data.fs to serve (it must exist; it is opened read-only).
    #[arg(long, value_name = "PATH")]
    storage: PathBuf,
    /// Where to listen: HOST:PORT, [IPV6]:PORT, :PORT (every interface) or unix:PATH.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_listen)]
    listen: Address,
    /// How often to look for transactions another process appended (seconds).
    #[arg(long, value_name = "SECS", default_value = "0.02", value_parser = super::secondary::parse_seconds)]
    poll: Duration,
    /// The storage's ZODB blob directory (as ZODB's `blob_dir`; it must exist): blob
    /// records go with their files (`B` + 64 KiB blocks), and only zrs2.1 secondaries are
    /// served, as zc.zrs's primary does when its storage keeps blobs.
    #[arg(long, value_name = "DIR")]
    blob_dir: Option<PathBuf>,
    #[command(flatten)]
    observe: super::observe::ObserveArgs,
}

pub fn parse_listen(s: &str) -> Result<Address, String> {
    parse_address(s).map_err(|e| e.to_string())
}

/// The file served and how to notice that it was replaced.
struct ServedFile {
    path: PathBuf,
    storage: FileStorage,
    inode: (u64, u64),
    blob_dir: Option<PathBuf>,
    /// The node's status reads the file served (the new one after a pack).
    status: Arc<NodeStatus>,
}

fn open(path: &Path) -> Result<(FileStorage, (u64, u64)), String> {
    if !path.exists() {
        return Err(format!(
            "{}: no such file (zrs primary serves a Data.fs that ZODB writes; create it with ZODB first)",
            path.display()
        ));
    }
    let storage = FileStorage::open(
        path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((storage, (meta.dev(), meta.ino())))
}

impl ServedFile {
    fn poll(&mut self) -> Result<Followed, String> {
        let meta =
            std::fs::metadata(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if (meta.dev(), meta.ino()) != self.inode || meta.len() < self.storage.size() {
            let (storage, inode) = open(&self.path)?;
            tracing::info!(
                target: "zc.zrs.primary",
                "{} was replaced (packed): reopened, {} bytes",
                self.path.display(),
                storage.size()
            );
            self.storage = storage;
            self.inode = inode;
            self.status.replace_reader(self.storage.file_reader());
            return Ok(Followed::Replaced(served(&self.storage, &self.blob_dir)?));
        }
        match self.storage.refresh() {
            Ok(0) => Ok(Followed::Unchanged),
            Ok(_) => Ok(Followed::Appended),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What the primary reads: the file, with its blob files when it keeps blobs.
fn served(
    storage: &FileStorage,
    blob_dir: &Option<PathBuf>,
) -> Result<Box<dyn ReadStorage + Send + Sync>, String> {
    match blob_dir {
        Some(dir) => Ok(Box::new(
            BlobReader::open(storage.reader(), dir).map_err(|e| e.to_string())?,
        )),
        None => Ok(storage.reader()),
    }
}

/// A driver serving the Data.fs at `path` (with its blobs in `blob_dir`) on `listen` and
/// following its writer every `poll`, with its status node (id `id`; progress logged every
/// `progress`).
pub fn serving_driver(
    path: &Path,
    blob_dir: Option<PathBuf>,
    listen: &Address,
    poll: Duration,
    id: &str,
    progress: Duration,
) -> Result<(Driver<FileStorage>, Arc<NodeStatus>), String> {
    let (storage, inode) = open(path)?;
    let listener = Listener::bind(listen).map_err(|e| format!("listening on {listen}: {e}"))?;
    let status = super::observe::Watched {
        id: id.to_string(),
        role: Role::Primary,
        reader: storage.file_reader(),
        replicate_from: None,
        replicate_to: Some(super::observe::address_text(listen)),
        primary_status: None,
    }
    .start(progress)?;
    let primary = Primary::new(
        served(&storage, &blob_dir)?,
        Config {
            // The md5 runs on each connection's writer thread, beside the reading.
            sealing: Sealing::ByHost,
            ..Config::new(listen.clone())
        },
    );
    let mut followed = ServedFile {
        path: path.to_path_buf(),
        storage,
        inode,
        blob_dir,
        status: status.clone(),
    };
    let driver = Driver::<FileStorage>::serving(primary, listener, DriverOptions::default())
        .follow(Follow {
            interval: poll,
            poll: Box::new(move || followed.poll()),
        })
        .with_status(status.clone());
    Ok((driver, status))
}

pub fn run(args: Args) -> Result<(), String> {
    if args.observe.primary_status.is_some() {
        return Err("--primary-status is for secondaries: a primary is the one asked".into());
    }
    let (driver, status) = serving_driver(
        &args.storage,
        args.blob_dir.clone(),
        &args.listen,
        args.poll,
        "1",
        args.observe.progress,
    )?;
    super::observe::serve(args.observe.status.as_ref(), vec![("1".into(), status)])?;
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("installing signal handlers: {e}"))?;
    let stop = driver.stop_handle();
    let signal_handle = signals.handle();
    let watcher = std::thread::spawn(move || {
        for _ in signals.forever() {
            stop.stop();
        }
    });
    let result = driver.run_primary();
    signal_handle.close();
    let _ = watcher.join();
    result.map_err(|e| e.to_string())
}
