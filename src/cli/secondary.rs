//! `zrs secondary`: replicate a primary into a FileStorage, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use zrs::net::{parse_address, Driver, DriverOptions, Listener, ServedPrimary};
use zrs::pickle::Identity;
use zrs::primary::Primary;
use zrs::secondary::{Address, Config, Secondary};
use zrs::storage::{BlobStorage, Durability, FileStorage, Format, Options, ReadStorage, Storage};

/// Replicate a zc.zrs primary into a FileStorage (a Data.fs), as zc.zrs's secondary does,
/// until interrupted (SIGINT or SIGTERM close it cleanly). Logs to stderr.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Data.fs to replicate into (created if missing).
    #[arg(long, value_name = "PATH")]
    storage: PathBuf,
    /// The primary: HOST:PORT, [IPV6]:PORT, :PORT (local host) or unix:PATH.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_primary)]
    primary: Address,
    /// Send an empty message this often while connected (0: never).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_seconds)]
    keep_alive: Duration,
    /// Wait this long before reconnecting after a failed or lost connection.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    reconnect: Duration,
    /// Do not check the commit messages' checksums (for primaries that send none).
    #[arg(long)]
    no_checksums: bool,
    /// When to fsync: `every` transaction, or once per `batch:N` transactions and whenever
    /// the input goes quiet (catch-up runs at disk speed; a crash loses nothing that
    /// replication does not fetch again).
    #[arg(long, value_name = "every|batch:N", default_value = "batch:1000", value_parser = parse_durability)]
    durability: Durability,
    /// The Data.fs format: `fs30` (Python 3 ZODB) or `fs21` (Python 2 ZODB 4). By default
    /// a new file takes the primary's (its pickles tell), and an existing file must match.
    #[arg(long, value_name = "fs30|fs21")]
    format: Option<Format>,
    /// How a Python 2 primary's ZODB memoized its extensions' strings: `referenced` (an
    /// application's own values; the default) or `unpickled` (a ZEO server's, decoded
    /// from its client's message).
    #[arg(long, value_name = "referenced|unpickled", default_value = "referenced", value_parser = parse_identity)]
    py2_extensions: Identity,
    /// Keep blobs in this ZODB blob directory (created if missing; `bushy` layout, an
    /// existing `lawn` one is used as it is): the secondary then speaks protocol zrs2.1.
    #[arg(long, value_name = "DIR")]
    blob_dir: Option<PathBuf>,
    /// Also serve downstream secondaries from this storage (chaining): HOST:PORT,
    /// [IPV6]:PORT, :PORT (every interface) or unix:PATH. Each transaction goes downstream
    /// as soon as it is committed here.
    #[arg(long, value_name = "ADDRESS", value_parser = super::primary::parse_listen)]
    listen: Option<Address>,
    #[command(flatten)]
    observe: super::observe::ObserveArgs,
}

fn parse_identity(s: &str) -> Result<Identity, String> {
    match s {
        "referenced" => Ok(Identity::Referenced),
        "unpickled" => Ok(Identity::Unpickled),
        _ => Err(format!("{s:?}: expected `referenced` or `unpickled`")),
    }
}

fn parse_primary(s: &str) -> Result<Address, String> {
    parse_address(s).map_err(|e| e.to_string())
}

/// Seconds as a non-negative decimal number: `60`, `0.5`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?}: seconds must be a finite number, 0 or more"))
}

pub fn parse_durability(s: &str) -> Result<Durability, String> {
    if s == "every" {
        return Ok(Durability::EveryTransaction);
    }
    let n = s
        .strip_prefix("batch:")
        .ok_or_else(|| format!("{s:?}: expected `every` or `batch:N`"))?;
    match n.parse::<u32>() {
        Ok(n) if n > 0 => Ok(Durability::Batch(n)),
        _ => Err(format!(
            "{s:?}: N must be a whole number of transactions, 1 or more"
        )),
    }
}

pub fn run(args: Args) -> Result<(), String> {
    let storage = FileStorage::open(
        &args.storage,
        Options {
            read_only: false,
            durability: args.durability,
        },
    )
    .map_err(|e| format!("opening {}: {e}", args.storage.display()))?;
    if let (Some(want), Some(have)) = (args.format, storage.format()) {
        if want != have {
            return Err(format!(
                "{} is an {have} file; --format {} would mix formats in it",
                args.storage.display(),
                want.name()
            ));
        }
    }
    let node = super::observe::Watched {
        id: "1".into(),
        role: if args.listen.is_some() {
            zrs::net::status::Role::Chain
        } else {
            zrs::net::status::Role::Secondary
        },
        reader: storage.file_reader(),
        replicate_from: Some(super::observe::address_text(&args.primary)),
        replicate_to: args.listen.as_ref().map(super::observe::address_text),
        primary_status: args.observe.primary_status.clone(),
    }
    .start(args.observe.progress)?;
    super::observe::serve(
        args.observe.status.as_ref(),
        vec![("1".into(), node.clone())],
    )?;
    match &args.blob_dir {
        Some(dir) => {
            // Fsyncs as the Data.fs does: a blob is durable before its transaction commits.
            let storage = BlobStorage::open(storage, dir, true)
                .map_err(|e| format!("opening {}: {e}", dir.display()))?;
            replicate(storage, args, node)
        }
        None => replicate(storage, args, node),
    }
}

/// A chained node's primary: `address` bound, and the real primary over the node's own
/// storage (its read handle, which with blobs reads the blob files too), its windows sealed
/// by the driver's writer threads.
pub(super) fn downstream<S: Storage>(
    storage: &S,
    address: &Address,
) -> Result<(ServedPrimary, Listener), String> {
    let listener = Listener::bind(address).map_err(|e| format!("listening on {address}: {e}"))?;
    let reader: Box<dyn ReadStorage + Send + Sync> = storage.reader();
    let primary = Primary::new(
        reader,
        zrs::primary::Config {
            sealing: zrs::primary::Sealing::ByHost,
            ..zrs::primary::Config::new(address.clone())
        },
    );
    Ok((primary, listener))
}

fn replicate<S: Storage + Send + 'static>(
    storage: S,
    args: Args,
    node: std::sync::Arc<zrs::net::status::NodeStatus>,
) -> Result<(), String> {
    let config = Config {
        address: Some(args.primary),
        reconnect_delay: args.reconnect,
        keep_alive_delay: args.keep_alive,
        check_checksums: !args.no_checksums,
        format: args.format,
        py2_extensions: args.py2_extensions,
        ..Config::default()
    };
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("installing signal handlers: {e}"))?;
    let served = match &args.listen {
        Some(address) => Some(downstream(&storage, address)?),
        None => None,
    };
    let mut driver =
        Driver::new(Secondary::new(storage, config), DriverOptions::default()).with_status(node);
    if let Some((primary, listener)) = served {
        driver = driver.serve(primary, listener);
    }
    let stop = driver.stop_handle();
    let signal_handle = signals.handle();
    let watcher = std::thread::spawn(move || {
        for _ in signals.forever() {
            stop.stop();
        }
    });
    let result = driver.run();
    signal_handle.close();
    let _ = watcher.join();
    result.map(drop).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("soon").unwrap_err().contains("soon"));
    }

    #[test]
    fn durability() {
        assert_eq!(parse_durability("every"), Ok(Durability::EveryTransaction));
        assert_eq!(parse_durability("batch:50"), Ok(Durability::Batch(50)));
        assert!(parse_durability("batch:0").is_err());
        assert!(parse_durability("batch:").is_err());
        assert!(parse_durability("sometimes").is_err());
    }
}
