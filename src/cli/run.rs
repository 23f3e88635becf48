//! `zrs run --config FILE`: run the `<zrs>` sections of a zc.zrs configuration.
//!
//! A zc.zrs deployment configures replication inside its `zeo.conf` (or `zope.conf`):
//!
//! ```text
//! %import zc.zrs
//! <zrs>
//!   replicate-from primary.example.com:8000
//!   keep-alive-delay 60
//!   <filestorage>
//!     path /var/db/Data.fs
//!   </filestorage>
//! </zrs>
//! ```
//!
//! Every `<zrs>` section found (at any depth, e.g. inside `<zodb_db>`) becomes a node, as
//! zc.zrs's `ZRS.open` decides: `replicate-to` alone makes a primary serving that address,
//! `replicate-from` alone a secondary of that primary, both a chained node (a secondary
//! that serves its own secondaries); neither, or both the same, is an error with zc.zrs's
//! words. A primary is `zrs primary`: it serves the file read-only and follows what its
//! writer commits — zc.zrs's primary lives inside the ZEO server, zrs's beside it, so the
//! ZEO server's own configuration keeps a plain `<filestorage>` (without `<zrs>`) and this
//! file's `<zrs>` section tells zrs what to serve. Its one storage must be a
//! `<filestorage>` with a `path`. Everything else in the file (`<zeo>`, `<eventlog>`,
//! other storages, `%import`) is ignored, as zrs serves no ZEO clients. The node's status id is the section's name (`<zrs main>`), else `1`, as ZEO
//! names storages.
//!
//! Keys ZConfig's schema allows but zrs has no use for (`create`, `quota`, `pack-gc`, …)
//! are ignored with a warning; unknown keys are errors naming the file and line. A
//! `blob-dir` keeps blobs, as ZODB's does: a secondary replicates them into it (speaking
//! `zrs2.1`), a primary serves them from it. One key is zrs's own: `primary-status`, the
//! primary's status address (see `zrs secondary --primary-status`); Python's ZConfig would
//! refuse it, so a file shared with zc.zrs should leave it out and pass it on the command
//! line instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use zrs::net::status::{NodeStatus, Role};
use zrs::net::{parse_address, Driver, DriverOptions, StopHandle};
use zrs::secondary::{Address, Config, Secondary};
use zrs::storage::{BlobStorage, Durability, FileStorage, Options, Storage};

use super::observe::{address_text, Watched};
use super::secondary::{downstream, parse_durability, parse_seconds};
use super::zconfig::{parse_file, ConfigError, Location, Section};

/// Run the `<zrs>` sections of a zc.zrs configuration file (a zeo.conf): each as a primary
/// (replicate-to), a secondary (replicate-from) or a chained node (both), until SIGINT or
/// SIGTERM.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file (ZConfig syntax, as zc.zrs reads it).
    #[arg(long, short = 'C', value_name = "FILE")]
    config: PathBuf,
    /// Only read the configuration and print the nodes it describes.
    #[arg(long)]
    check: bool,
    /// Answer status requests for every node here (ids: the sections' names, else `1`).
    #[arg(long, value_name = "ADDRESS", value_parser = parse_status)]
    status: Option<Address>,
    /// Log progress this often while transactions arrive (0: never).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    progress: Duration,
    /// When secondaries fsync (as `zrs secondary --durability`).
    #[arg(long, value_name = "every|batch:N", default_value = "batch:1000", value_parser = parse_durability)]
    durability: Durability,
}

/// How often a primary looks for transactions its writer appended (as `zrs primary`'s
/// default `--poll`).
const PRIMARY_POLL: Duration = Duration::from_millis(20);

fn parse_status(s: &str) -> Result<Address, String> {
    zrs::net::status::parse_listen_address(s).map_err(|e| e.to_string())
}

/// One node, as a `<zrs>` section describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Status id: the section's name, else `1`.
    pub id: String,
    pub role: Role,
    pub path: PathBuf,
    /// The `<filestorage>`'s `blob-dir`: blobs are replicated into (or served from) it.
    pub blob_dir: Option<PathBuf>,
    pub replicate_from: Option<Address>,
    pub replicate_to: Option<Address>,
    pub keep_alive: Duration,
    pub primary_status: Option<Address>,
    pub at: Location,
}

/// ZODB's `<filestorage>` keys that mean nothing to a replica's file; ignored with a warning.
const IGNORED_FILESTORAGE_KEYS: [&str; 6] = [
    "create",
    "quota",
    "packer",
    "pack-gc",
    "pack-keep-old",
    "pack-keep-old-files",
];

fn error(at: &Location, what: impl Into<String>) -> ConfigError {
    ConfigError {
        location: at.clone(),
        what: what.into(),
    }
}

/// A ZConfig `socket-address`: `host:port`, `[v6]:port`, a bare port (host `''`), or a
/// path containing `/` (a Unix socket).
fn socket_address(value: &str, at: &Location, key: &str) -> Result<Address, ConfigError> {
    if value.contains('/') {
        return Ok(Address::Unix(value.to_string()));
    }
    if let Ok(port) = value.parse::<u16>() {
        if port > 0 {
            return Ok(Address::tcp("", port));
        }
    }
    parse_address(value)
        .map(|a| match a {
            Address::Tcp { host, port } => Address::tcp(host.to_lowercase(), port),
            unix => unix,
        })
        .map_err(|e| error(at, format!("{key}: {e}")))
}

/// The nodes a configuration describes.
pub fn nodes(top: &Section) -> Result<Vec<Node>, ConfigError> {
    let mut found = Vec::new();
    collect_zrs(top, &mut found);
    if found.is_empty() {
        let file = top.at.as_ref().map(|l| l.file.clone()).unwrap_or_default();
        return Err(error(
            &Location { file, line: 0 },
            "no <zrs> section: nothing to replicate",
        ));
    }
    let mut nodes: Vec<Node> = Vec::new();
    for section in found {
        let node = node(section)?;
        if let Some(other) = nodes.iter().find(|n| n.id == node.id) {
            return Err(error(
                &node.at,
                format!(
                    "a second <zrs> section named {:?} (the first is at line {}); name them apart",
                    node.id, other.at.line
                ),
            ));
        }
        if let Some(other) = nodes.iter().find(|n| n.path == node.path) {
            return Err(error(
                &node.at,
                format!(
                    "{} is already the storage of the <zrs> section at line {}",
                    node.path.display(),
                    other.at.line
                ),
            ));
        }
        nodes.push(node);
    }
    Ok(nodes)
}

fn collect_zrs<'a>(section: &'a Section, out: &mut Vec<&'a Section>) {
    for s in &section.sections {
        if s.kind == "zrs" {
            out.push(s);
        } else {
            collect_zrs(s, out);
        }
    }
}

fn node(section: &Section) -> Result<Node, ConfigError> {
    let at = section.at.clone().expect("sections have a location");
    let mut replicate_from = None;
    let mut replicate_to = None;
    let mut keep_alive = Duration::ZERO;
    let mut primary_status = None;
    let mut seen: Vec<&str> = Vec::new();
    for key in &section.keys {
        if seen.contains(&key.name.as_str()) {
            return Err(error(&key.at, format!("{} given twice in <zrs>", key.name)));
        }
        seen.push(&key.name);
        match key.name.as_str() {
            "replicate-from" => {
                replicate_from = Some(socket_address(&key.value, &key.at, &key.name)?)
            }
            "replicate-to" => replicate_to = Some(socket_address(&key.value, &key.at, &key.name)?),
            "keep-alive-delay" => {
                let secs: u64 = key.value.parse().map_err(|_| {
                    error(
                        &key.at,
                        format!(
                            "keep-alive-delay: {:?} is not a whole number of seconds",
                            key.value
                        ),
                    )
                })?;
                keep_alive = Duration::from_secs(secs);
            }
            "primary-status" => {
                primary_status = Some(
                    zrs::net::status::parse_listen_address(&key.value)
                        .map_err(|e| error(&key.at, format!("primary-status: {e}")))?,
                )
            }
            other => {
                return Err(error(
                    &key.at,
                    format!(
                        "unknown key {other:?} in <zrs> (zc.zrs knows replicate-from, \
                         replicate-to, keep-alive-delay; zrs adds primary-status)"
                    ),
                ))
            }
        }
    }
    let role = match (&replicate_from, &replicate_to) {
        (None, None) => {
            return Err(error(
                &at,
                "You must specify replicate-to and/or replicate-from.",
            ))
        }
        (Some(from), Some(to)) if from == to => {
            return Err(error(
                &at,
                "Values for replicate-to and replicate-from must be different.",
            ))
        }
        (Some(_), Some(_)) => Role::Chain,
        (Some(_), None) => Role::Secondary,
        (None, Some(_)) => Role::Primary,
    };
    let (path, blob_dir) = filestorage_path(section, &at)?;
    Ok(Node {
        id: section.name.clone().unwrap_or_else(|| "1".into()),
        role,
        path,
        blob_dir,
        replicate_from,
        replicate_to,
        keep_alive,
        primary_status,
        at,
    })
}

/// The `<filestorage>`'s `path` and `blob-dir`.
fn filestorage_path(
    section: &Section,
    at: &Location,
) -> Result<(PathBuf, Option<PathBuf>), ConfigError> {
    let storage = match section.sections.as_slice() {
        [one] => one,
        [] => return Err(error(at, "<zrs> needs a storage section: <filestorage>")),
        [_, second, ..] => {
            return Err(error(
                second.at.as_ref().unwrap_or(at),
                "<zrs> takes one storage section",
            ))
        }
    };
    let sat = storage.at.clone().expect("sections have a location");
    if storage.kind != "filestorage" {
        return Err(error(
            &sat,
            format!(
                "zrs replicates a <filestorage> only, not <{}>",
                storage.kind
            ),
        ));
    }
    if let Some(inner) = storage.sections.first() {
        return Err(error(
            inner.at.as_ref().unwrap_or(&sat),
            format!("<filestorage> takes no <{}> section", inner.kind),
        ));
    }
    let mut path = None;
    let mut blob_dir = None;
    for key in &storage.keys {
        match key.name.as_str() {
            "path" if path.is_some() => {
                return Err(error(&key.at, "path given twice in <filestorage>"))
            }
            "path" => path = Some(PathBuf::from(&key.value)),
            "blob-dir" if blob_dir.is_some() => {
                return Err(error(&key.at, "blob-dir given twice in <filestorage>"))
            }
            "blob-dir" => blob_dir = Some(PathBuf::from(&key.value)),
            "read-only" if key.value.eq_ignore_ascii_case("true") => {
                return Err(error(
                    &key.at,
                    "read-only true: a replicated storage is written by replication",
                ))
            }
            "read-only" => {}
            k if IGNORED_FILESTORAGE_KEYS.contains(&k) => tracing::warn!(
                target: "zrs.config",
                "{}: {k} means nothing to zrs; ignored",
                key.at
            ),
            other => {
                return Err(error(
                    &key.at,
                    format!("unknown key {other:?} in <filestorage>"),
                ))
            }
        }
    }
    let path = path.ok_or_else(|| error(&sat, "<filestorage> needs a path"))?;
    if path.as_os_str().is_empty() {
        return Err(error(&sat, "<filestorage> path is empty"));
    }
    Ok((path, blob_dir))
}

/// Reads the nodes of the file at `path`.
pub fn read(path: &Path) -> Result<Vec<Node>, ConfigError> {
    let mut top = parse_file(path)?;
    top.at = Some(Location {
        file: path.to_path_buf(),
        line: 0,
    });
    nodes(&top)
}

fn describe(node: &Node) -> String {
    let mut s = format!(
        "{} {} ({}): {}",
        node.role.name(),
        node.id,
        node.at,
        node.path.display()
    );
    if let Some(dir) = &node.blob_dir {
        s.push_str(&format!(", blob-dir {}", dir.display()));
    }
    if let Some(a) = &node.replicate_from {
        s.push_str(&format!(", replicate-from {}", address_text(a)));
    }
    if let Some(a) = &node.replicate_to {
        s.push_str(&format!(", replicate-to {}", address_text(a)));
    }
    if !node.keep_alive.is_zero() {
        s.push_str(&format!(", keep-alive-delay {}", node.keep_alive.as_secs()));
    }
    if let Some(a) = &node.primary_status {
        s.push_str(&format!(", primary-status {}", address_text(a)));
    }
    s
}

/// A node ready to run on a thread of its own, and how to stop it.
struct Runner {
    stop: StopHandle,
    run: Box<dyn FnOnce() -> Result<(), String> + Send>,
}

/// A secondary (or chained node: it also serves its own secondaries from the storage it
/// replicates into) over `storage`.
fn secondary_runner<S: Storage + Send + 'static>(
    storage: S,
    node: &Node,
    from: Address,
    status: Arc<NodeStatus>,
) -> Result<Runner, String> {
    let served = match &node.replicate_to {
        Some(to) => Some(downstream(&storage, to)?),
        None => None,
    };
    let config = Config {
        address: Some(from),
        keep_alive_delay: node.keep_alive,
        ..Config::default()
    };
    let mut driver =
        Driver::new(Secondary::new(storage, config), DriverOptions::default()).with_status(status);
    if let Some((primary, listener)) = served {
        driver = driver.serve(primary, listener);
    }
    Ok(Runner {
        stop: driver.stop_handle(),
        run: Box::new(move || driver.run().map(drop).map_err(|e| e.to_string())),
    })
}

pub fn run(args: Args) -> Result<(), String> {
    let nodes = read(&args.config).map_err(|e| e.to_string())?;
    if args.check {
        for node in &nodes {
            println!("{}", describe(node));
        }
        return Ok(());
    }
    // One runner per node, in file order. Everything is opened and bound before anything
    // runs, so a bad section stops the whole start.
    let mut runners: Vec<Runner> = Vec::new();
    let mut statuses: Vec<(String, Arc<NodeStatus>)> = Vec::new();
    for node in &nodes {
        let at = |e: String| format!("{}: {e}", node.at);
        if node.role == Role::Primary {
            let to = node.replicate_to.as_ref().expect("a primary");
            let (driver, status) = super::primary::serving_driver(
                &node.path,
                node.blob_dir.clone(),
                to,
                PRIMARY_POLL,
                &node.id,
                args.progress,
            )
            .map_err(at)?;
            statuses.push((node.id.clone(), status));
            runners.push(Runner {
                stop: driver.stop_handle(),
                run: Box::new(move || driver.run_primary().map_err(|e| e.to_string())),
            });
            continue;
        }
        let storage = FileStorage::open(
            &node.path,
            Options {
                read_only: false,
                durability: args.durability,
            },
        )
        .map_err(|e| at(format!("opening {}: {e}", node.path.display())))?;
        let from = node.replicate_from.clone().expect("a secondary");
        let status = Watched {
            id: node.id.clone(),
            role: node.role,
            reader: storage.file_reader(),
            replicate_from: Some(address_text(&from)),
            replicate_to: node.replicate_to.as_ref().map(address_text),
            primary_status: node.primary_status.clone(),
        }
        .start(args.progress)?;
        statuses.push((node.id.clone(), status.clone()));
        let runner = match &node.blob_dir {
            Some(dir) => {
                // Fsyncs as the Data.fs does: a blob is durable before its transaction.
                let storage = BlobStorage::open(storage, dir, true)
                    .map_err(|e| at(format!("opening {}: {e}", dir.display())))?;
                secondary_runner(storage, node, from, status).map_err(at)?
            }
            None => secondary_runner(storage, node, from, status).map_err(at)?,
        };
        runners.push(runner);
    }
    super::observe::serve(args.status.as_ref(), statuses)?;
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("installing signal handlers: {e}"))?;
    let stops: Vec<_> = runners.iter().map(|r| r.stop.clone()).collect();
    let signal_handle = signals.handle();
    let watcher = std::thread::spawn(move || {
        for _ in signals.forever() {
            for stop in &stops {
                stop.stop();
            }
        }
    });
    let threads: Vec<_> = runners
        .into_iter()
        .zip(&nodes)
        .map(|(runner, node)| {
            let at = node.at.clone();
            std::thread::spawn(move || (runner.run)().map_err(|e| format!("{at}: {e}")))
        })
        .collect();
    let mut result = Ok(());
    for t in threads {
        let r = t
            .join()
            .unwrap_or_else(|_| Err("a node's thread panicked".into()));
        if result.is_ok() {
            result = r;
        }
    }
    signal_handle.close();
    let _ = watcher.join();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::zconfig::parse_str;

    fn read_str(text: &str) -> Result<Vec<Node>, ConfigError> {
        let mut top = parse_str(text, Path::new("zeo.conf"))?;
        top.at = Some(Location {
            file: "zeo.conf".into(),
            line: 0,
        });
        nodes(&top)
    }

    #[test]
    fn roles_as_zc_zrs_decides_them() {
        let nodes = read_str(
            "%import zc.zrs\n<zeo>\naddress 8100\n</zeo>\n\
             <zrs a>\nreplicate-from primary.example.com:8000\nkeep-alive-delay 60\n\
             <filestorage>\npath /db/a.fs\n</filestorage>\n</zrs>\n\
             <zodb_db main>\n<zrs b>\nreplicate-to 8001\n<filestorage>\npath /db/b.fs\n</filestorage>\n</zrs>\n</zodb_db>\n\
             <zrs c>\nreplicate-from /run/p.sock\nreplicate-to [::1]:8002\n\
             <filestorage x>\npath /db/c.fs\n</filestorage>\n</zrs>\n",
        )
        .unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].role, Role::Secondary);
        assert_eq!(nodes[0].id, "a");
        assert_eq!(
            nodes[0].replicate_from,
            Some(Address::tcp("primary.example.com", 8000))
        );
        assert_eq!(nodes[0].keep_alive, Duration::from_secs(60));
        assert_eq!(nodes[1].role, Role::Primary);
        assert_eq!(nodes[1].replicate_to, Some(Address::tcp("", 8001)));
        assert_eq!(nodes[2].role, Role::Chain);
        assert_eq!(
            nodes[2].replicate_from,
            Some(Address::Unix("/run/p.sock".into()))
        );
        assert_eq!(nodes[2].replicate_to, Some(Address::tcp("::1", 8002)));
        assert_eq!(nodes[2].path, PathBuf::from("/db/c.fs"));
        assert_eq!(nodes[2].at.line, 20);
    }

    #[test]
    fn errors_name_file_line_and_what() {
        let fs = "<filestorage>\npath /db/a.fs\n</filestorage>\n";
        let cases: Vec<(String, &str)> = vec![
            ("<zeo>\n</zeo>\n".into(), "zeo.conf, line 0: no <zrs> section"),
            (format!("<zrs>\n{fs}</zrs>\n"), "zeo.conf, line 1: You must specify replicate-to and/or replicate-from."),
            (format!("<zrs>\nreplicate-to 8000\nreplicate-from 8000\n{fs}</zrs>\n"), "zeo.conf, line 1: Values for replicate-to and replicate-from must be different."),
            ("<zrs>\nreplicate-to 8000\n</zrs>\n".into(), "zeo.conf, line 1: <zrs> needs a storage section"),
            ("<zrs>\nreplicate-to 8000\n<mappingstorage>\n</mappingstorage>\n</zrs>\n".into(), "zeo.conf, line 3: zrs replicates a <filestorage> only, not <mappingstorage>"),
            ("<zrs>\nreplicate-to 8000\n<filestorage>\n</filestorage>\n</zrs>\n".into(), "zeo.conf, line 3: <filestorage> needs a path"),
            ("<zrs>\nreplicate-to 8000\n<filestorage>\npath a.fs\nblob-dir b1\nblob-dir b2\n</filestorage>\n</zrs>\n".into(), "zeo.conf, line 6: blob-dir given twice in <filestorage>"),
            ("<zrs>\nreplicate-to 8000\n<filestorage>\npath a.fs\ncolour blue\n</filestorage>\n</zrs>\n".into(), "zeo.conf, line 5: unknown key \"colour\" in <filestorage>"),
            (format!("<zrs>\nreplicate-too 8000\n{fs}</zrs>\n"), "zeo.conf, line 2: unknown key \"replicate-too\" in <zrs>"),
            (format!("<zrs>\nreplicate-to 8000\nreplicate-to 8001\n{fs}</zrs>\n"), "zeo.conf, line 3: replicate-to given twice"),
            (format!("<zrs>\nreplicate-from host:port\n{fs}</zrs>\n"), "zeo.conf, line 2: replicate-from: \"host:port\": port \"port\" is not a number"),
            (format!("<zrs>\nreplicate-from :8000\nkeep-alive-delay soon\n{fs}</zrs>\n"), "zeo.conf, line 3: keep-alive-delay: \"soon\" is not a whole number"),
            (format!("<zrs>\nreplicate-to 8000\n{fs}</zrs>\n<zrs>\nreplicate-to 8001\n<filestorage>\npath b.fs\n</filestorage>\n</zrs>\n"), "zeo.conf, line 7: a second <zrs> section named \"1\" (the first is at line 1)"),
            (format!("<zrs a>\nreplicate-to 8000\n{fs}</zrs>\n<zrs b>\nreplicate-to 8001\n{fs}</zrs>\n"), "zeo.conf, line 7: /db/a.fs is already the storage of the <zrs> section at line 1"),
        ];
        for (text, want) in cases {
            let e = read_str(&text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}:\n  got  {e}\n  want {want}");
        }
    }
}
