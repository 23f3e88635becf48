//! The status socket of a running node, and its client: what `zrs status --node`,
//! `zrs check` and a secondary watching its primary ask.
//!
//! The socket speaks the health check a ZEO server answers, the one zc.zrs's `zrs-nagios`
//! uses, so that `zrs-nagios` itself can watch zrs nodes and `zrs check` can watch ZEO
//! servers: on connecting, the server sends one sized message naming its protocol (ours:
//! [`STATUS_PROTOCOL`]; ZEO sends its own); the client sends the sized message `ruok`; the
//! server answers with one sized message, a JSON object keyed by storage id (`"1"` unless a
//! configuration names the storage), each value holding at least `last-transaction` (16
//! hex digits), and closes.
//!
//! Besides ZEO's `last-transaction`, a zrs node's answer carries `role`, `storage`,
//! `replicate-from` / `replicate-to`, `connection` and `peer`, `size`, `objects`,
//! `transactions`, `rates` (transactions and bytes per second over the last 10 s), and on a
//! secondary `primary`: what it last learned of its primary's position (below).
//!
//! **Real lag.** zc.zrs's wire protocol never tells a secondary how much its primary holds,
//! so the count has to come from the primary. A zrs status server also answers
//! `lag <16 hex digits>`: each storage's status gains `after`, the number of transactions
//! (and their bytes) it holds later than that tid — the secondary's last tid, in a
//! secondary's question. A secondary started with a primary status address polls it with
//! that question every few seconds ([`watch_primary`]); `zrs check` asks the same of the
//! primary with the secondary's tid. A ZEO server (a Python zc.zrs primary) answers `ruok`
//! only: then only its last transaction is known, and the lag is in seconds alone. The
//! client tells the two apart by the protocol the server announces.
//!
//! Node states are shared through [`NodeStatus`], which the driver updates (connection
//! state, commits) and the status server reads along with the storage; rates and
//! timestamps use the wall clock here, never in the protocol core.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::stream::{connect, Stream};
use super::{parse_address, AddressError};
use crate::secondary::Address;
use crate::storage::{FileStorageReader, ReadStorage};
use crate::tid::Tid;

/// What a zrs status server announces on connecting.
pub const STATUS_PROTOCOL: &[u8] = b"zrs-status1";
/// The target of this module's log events.
pub const LOG_TARGET: &str = "zrs.status";
/// Requests and answers larger than this are refused (a status is a few hundred bytes).
const MAX_MESSAGE: u32 = 1 << 20;
/// How long one status exchange may take, either side.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The window rates are measured over.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// A tid as status answers and logs print it: 16 hex digits.
pub fn tid_hex(tid: Tid) -> String {
    format!("{:016x}", tid.as_u64())
}

/// Parses 16 hex digits into a tid.
pub fn parse_tid_hex(s: &str) -> Option<Tid> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
        .map(Tid::from_u64)
}

/// A node's role, as its status names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
    /// A secondary that also serves its own secondaries.
    Chain,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Chain => "chain",
        }
    }
}

/// What a secondary last learned of its primary's position.
#[derive(Clone, Debug, PartialEq)]
pub struct PrimaryPosition {
    pub last_transaction: Tid,
    /// Transactions and bytes the primary holds past the secondary's last tid at the time
    /// of asking; `None` from a primary that does not count them (a ZEO server).
    pub behind: Option<(u64, u64)>,
    /// The secondary's last tid when it asked.
    pub asked_with: Tid,
    /// Unix time of the answer.
    pub at: f64,
}

/// The live state of one node, shared by its driver, its status server and its progress
/// reporter.
#[derive(Debug)]
pub struct NodeStatus {
    role: Role,
    /// Replaced when a primary reopens its packed file.
    reader: Mutex<FileStorageReader>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    replicate_from: Option<String>,
    replicate_to: Option<String>,
    connection: &'static str,
    peers: Vec<String>,
    /// A primary's (or chained node's) connected secondaries.
    secondaries: Vec<String>,
    /// Transactions committed (replicated, or appended by the writer a primary follows)
    /// since start.
    committed: u64,
    /// The storage's transaction count when a primary last looked (see `appended`).
    seen_transactions: u64,
    /// `(when, committed, size)`, one per second at most, over the rate window.
    samples: VecDeque<(Instant, u64, u64)>,
    primary: Option<PrimaryPosition>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // Plain counters: usable after a panic elsewhere.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Rates over the window: (transactions/s, bytes/s).
fn rates(
    samples: &VecDeque<(Instant, u64, u64)>,
    now: Instant,
    committed: u64,
    size: u64,
) -> (f64, f64) {
    let Some(&(t0, c0, s0)) = samples
        .iter()
        .find(|(t, _, _)| now.duration_since(*t) <= RATE_WINDOW)
    else {
        return (0.0, 0.0);
    };
    let secs = now.duration_since(t0).as_secs_f64().max(1.0);
    (
        committed.saturating_sub(c0) as f64 / secs,
        size.saturating_sub(s0) as f64 / secs,
    )
}

impl NodeStatus {
    /// A node of `role` over the storage `reader` reads.
    pub fn new(role: Role, reader: FileStorageReader) -> NodeStatus {
        let size = reader.size();
        let mut inner = Inner {
            connection: if role == Role::Primary {
                "listening"
            } else {
                "idle"
            },
            seen_transactions: reader.transaction_count(),
            ..Inner::default()
        };
        inner.samples.push_back((Instant::now(), 0, size));
        NodeStatus {
            role,
            reader: Mutex::new(reader),
            inner: Mutex::new(inner),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// A handle on the storage (cheap: shared).
    pub fn reader(&self) -> FileStorageReader {
        self.reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The primary reopened its file (after a pack): read the new one from now on.
    pub fn replace_reader(&self, reader: FileStorageReader) {
        let count = reader.transaction_count();
        *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = reader;
        lock(&self.inner).seen_transactions = count;
    }

    /// The secondaries connected to a primary (or chained node).
    pub fn set_secondaries(&self, peers: Vec<String>) {
        lock(&self.inner).secondaries = peers;
    }

    /// A primary found new transactions appended to the file it follows: count them.
    pub fn appended(&self) {
        let reader = self.reader();
        let (count, size) = (reader.transaction_count(), reader.size());
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let new = count.saturating_sub(inner.seen_transactions);
        inner.seen_transactions = count;
        inner.committed += new;
        let committed = inner.committed;
        Self::sample(&mut inner, now, committed, size);
    }

    pub fn set_replicate_from(&self, address: Option<String>) {
        lock(&self.inner).replicate_from = address;
    }

    pub fn set_replicate_to(&self, address: Option<String>) {
        lock(&self.inner).replicate_to = address;
    }

    /// `connecting`, `connected`, `disconnected`, `closed`, or a primary's `listening`.
    pub fn set_connection(&self, state: &'static str) {
        lock(&self.inner).connection = state;
    }

    /// The peers: a secondary's primary, a primary's secondaries.
    pub fn set_peers(&self, peers: Vec<String>) {
        lock(&self.inner).peers = peers;
    }

    /// A replicated transaction was committed; the storage is now `size` bytes.
    pub fn committed(&self, size: u64) {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        inner.committed += 1;
        let committed = inner.committed;
        Self::sample(&mut inner, now, committed, size);
    }

    fn sample(inner: &mut Inner, now: Instant, committed: u64, size: u64) {
        if inner
            .samples
            .back()
            .is_none_or(|(t, _, _)| now.duration_since(*t) >= Duration::from_secs(1))
        {
            inner.samples.push_back((now, committed, size));
        }
        // Keep one sample older than the window as the baseline.
        while inner.samples.len() > 2 && now.duration_since(inner.samples[1].0) > RATE_WINDOW {
            inner.samples.pop_front();
        }
    }

    pub fn committed_count(&self) -> u64 {
        lock(&self.inner).committed
    }

    pub fn set_primary_position(&self, position: PrimaryPosition) {
        lock(&self.inner).primary = Some(position);
    }

    pub fn primary_position(&self) -> Option<PrimaryPosition> {
        lock(&self.inner).primary.clone()
    }

    /// (transactions/s, bytes/s) over the last 10 s.
    pub fn rates(&self) -> (f64, f64) {
        let size = self.reader().size();
        let inner = lock(&self.inner);
        rates(&inner.samples, Instant::now(), inner.committed, size)
    }

    /// The status as the socket answers it; with `after`, also what this storage holds
    /// past that tid.
    pub fn to_json(&self, after: Option<Tid>) -> Value {
        let reader = &self.reader();
        let last = reader.last_transaction();
        let size = reader.size();
        let inner = lock(&self.inner);
        let (tps, bps) = rates(&inner.samples, Instant::now(), inner.committed, size);
        let mut status = json!({
            "last-transaction": tid_hex(last),
            "last-transaction-time": last.to_string(),
            "role": self.role.name(),
            "storage": reader.name(),
            "replicate-from": inner.replicate_from,
            "replicate-to": inner.replicate_to,
            "connection": inner.connection,
            "peers": inner.peers,
            "secondaries": inner.secondaries,
            "size": size,
            "objects": reader.len(),
            "transactions": reader.transaction_count(),
            "replicated-since-start": inner.committed,
            "rates": {"transactions-per-second": round2(tps), "bytes-per-second": round2(bps)},
        });
        if let Some(p) = &inner.primary {
            status["primary"] = json!({
                "last-transaction": tid_hex(p.last_transaction),
                "transactions-behind": p.behind.map(|b| b.0),
                "bytes-behind": p.behind.map(|b| b.1),
                "asked-with": tid_hex(p.asked_with),
                "checked-at": p.at,
            });
        }
        if let Some(tid) = after {
            status["after"] = match reader.after(tid) {
                Ok(a) => json!({
                    "tid": tid_hex(tid),
                    "transactions": a.transactions,
                    "bytes": a.bytes,
                }),
                Err(e) => json!({"tid": tid_hex(tid), "error": e.to_string()}),
            };
        }
        status
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The storages a status server answers for, by storage id.
pub type Nodes = Vec<(String, Arc<NodeStatus>)>;

/// A status address: as [`parse_address`], and port 0 for "any free port".
pub fn parse_listen_address(input: &str) -> Result<Address, AddressError> {
    if let Some(host) = input.strip_suffix(":0") {
        if let Ok(Address::Tcp { host, .. }) = parse_address(&format!("{host}:1")) {
            return Ok(Address::tcp(host, 0));
        }
    }
    parse_address(input)
}

/// A running status server; it serves until the process ends.
#[derive(Debug)]
pub struct StatusServer {
    /// Where it listens, as `host:port` or `unix:PATH` (the real port when 0 was asked).
    pub address: String,
}

/// Status exchanges served at once.
const MAX_CLIENTS: usize = 16;

fn busy_release(busy: &AtomicUsize) {
    busy.fetch_sub(1, Ordering::SeqCst);
}

/// Binds `address` and answers status requests for `nodes` on a thread of its own.
pub fn serve(address: &Address, nodes: Nodes) -> io::Result<StatusServer> {
    let nodes = Arc::new(nodes);
    let (address, accept): (String, Box<dyn FnMut() -> io::Result<Stream> + Send>) = match address {
        Address::Tcp { host, port } => {
            // An empty host listens on every interface, as a replicate-to address does.
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            let listener = TcpListener::bind((host, *port))?;
            let local = listener.local_addr()?;
            (
                local.to_string(),
                Box::new(move || listener.accept().map(|(s, _)| Stream::Tcp(s))),
            )
        }
        Address::Unix(path) => {
            // A stale socket file from an earlier run would make bind fail.
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                let _ = std::fs::remove_file(path);
            }
            let listener = UnixListener::bind(path)?;
            (
                format!("unix:{path}"),
                Box::new(move || listener.accept().map(|(s, _)| Stream::Unix(s))),
            )
        }
    };
    let mut accept = accept;
    let busy = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name("zrs-status".into())
        .spawn(move || loop {
            match accept() {
                Ok(stream) => {
                    // Each exchange on a thread of its own (bounded by its timeouts), so a
                    // client that sends nothing holds up no other; past MAX_CLIENTS at once,
                    // further ones are dropped.
                    if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                        busy_release(&busy);
                        tracing::debug!(target: LOG_TARGET, "status request dropped: busy");
                        continue;
                    }
                    let (client_nodes, client_busy) = (nodes.clone(), busy.clone());
                    let spawned = thread::Builder::new()
                        .name("zrs-status-client".into())
                        .spawn(move || {
                            if let Err(e) = answer(stream, &client_nodes) {
                                tracing::debug!(target: LOG_TARGET, "status request: {e}");
                            }
                            busy_release(&client_busy);
                        });
                    if spawned.is_err() {
                        busy_release(&busy);
                    }
                }
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, "status socket: accept failed: {e}");
                    thread::sleep(Duration::from_millis(100));
                }
            }
        })?;
    tracing::info!(target: LOG_TARGET, "Status on {address}");
    Ok(StatusServer { address })
}

fn write_message(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

fn read_message(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte message is over the {MAX_MESSAGE}-byte limit"),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok(payload)
}

/// The request a status server understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// ZEO's health check: every storage's status.
    Ruok,
    /// The status, plus what each storage holds past this tid.
    Lag(Tid),
}

fn parse_request(payload: &[u8]) -> Option<Request> {
    if payload == b"ruok" {
        return Some(Request::Ruok);
    }
    let tid = std::str::from_utf8(payload.strip_prefix(b"lag ")?).ok()?;
    parse_tid_hex(tid).map(Request::Lag)
}

fn answer(mut stream: Stream, nodes: &Nodes) -> io::Result<()> {
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
    write_message(&mut stream, STATUS_PROTOCOL)?;
    let payload = read_message(&mut stream)?;
    let after = match parse_request(&payload) {
        Some(Request::Ruok) => None,
        Some(Request::Lag(tid)) => Some(tid),
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "unknown request {}",
                    crate::repr::py3_bytes_repr(&payload[..payload.len().min(100)])
                ),
            ))
        }
    };
    let body: BTreeMap<&str, Value> = nodes
        .iter()
        .map(|(id, node)| (id.as_str(), node.to_json(after)))
        .collect();
    write_message(&mut stream, serde_json::to_string(&body)?.as_bytes())?;
    let _ = stream.shutdown();
    Ok(())
}

/// A status answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The protocol the server announced (`zrs-status1`, or a ZEO server's).
    pub protocol: Vec<u8>,
    /// Storage id → status.
    pub storages: BTreeMap<String, Value>,
}

impl Reply {
    pub fn is_zrs(&self) -> bool {
        self.protocol == STATUS_PROTOCOL
    }

    /// Each storage's last transaction.
    pub fn last_transactions(&self) -> Result<BTreeMap<String, Tid>, String> {
        self.storages
            .iter()
            .map(|(id, s)| {
                let hex = s["last-transaction"].as_str().unwrap_or_default();
                parse_tid_hex(hex).map(|t| (id.clone(), t)).ok_or_else(|| {
                    format!("storage {id:?}: last-transaction {hex:?} is not 16 hex digits")
                })
            })
            .collect()
    }
}

/// Asks the status server at `address`: `lag TID` where the server is a zrs one and
/// `lag` is given, else `ruok`.
pub fn query(address: &Address, lag: Option<Tid>) -> io::Result<Reply> {
    let (mut stream, _) = connect(address, EXCHANGE_TIMEOUT)?;
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
    let protocol = read_message(&mut stream)?;
    let request = match lag {
        Some(tid) if protocol == STATUS_PROTOCOL => format!("lag {}", tid_hex(tid)),
        _ => "ruok".to_string(),
    };
    write_message(&mut stream, request.as_bytes())?;
    let body = read_message(&mut stream)?;
    let storages: BTreeMap<String, Value> = serde_json::from_slice(&body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("status is not a JSON object of storages: {e}"),
        )
    })?;
    Ok(Reply { protocol, storages })
}

/// Polls the primary's status server every `every`, asking how far it is past `node`'s
/// last transaction, and records the answer in `node`. Runs on a thread of its own until
/// the process ends; failures are logged at debug level and retried.
pub fn watch_primary(
    node: Arc<NodeStatus>,
    address: Address,
    storage_id: String,
    every: Duration,
) -> io::Result<()> {
    thread::Builder::new()
        .name("zrs-primary-status".into())
        .spawn(move || loop {
            let ours = node.reader().last_transaction();
            match query(&address, Some(ours)) {
                Ok(reply) => match reply.storages.get(&storage_id) {
                    Some(s) => {
                        let last = s["last-transaction"].as_str().and_then(parse_tid_hex);
                        let behind = s["after"]["transactions"]
                            .as_u64()
                            .zip(s["after"]["bytes"].as_u64());
                        if let Some(last) = last {
                            node.set_primary_position(PrimaryPosition {
                                last_transaction: last,
                                behind,
                                asked_with: ours,
                                at: unix_now(),
                            });
                        }
                    }
                    None => tracing::warn!(
                        target: LOG_TARGET,
                        "the primary's status has no storage {storage_id:?}"
                    ),
                },
                Err(e) => tracing::debug!(target: LOG_TARGET, "asking the primary's status: {e}"),
            }
            thread::sleep(every);
        })?;
    Ok(())
}

/// Logs catch-up progress every `every` while transactions arrive: how many, how fast,
/// where the node is, and how far behind its primary (in transactions and bytes where the
/// primary's status says, and by commit time).
pub fn report_progress(node: Arc<NodeStatus>, every: Duration) -> io::Result<()> {
    // Counted from here, not from when the thread first runs: commits made meanwhile count.
    let mut last_count = node.committed_count();
    let mut last_size = node.reader().size();
    thread::Builder::new()
        .name("zrs-progress".into())
        .spawn(move || loop {
            thread::sleep(every);
            let count = node.committed_count();
            let size = node.reader().size();
            if count == last_count {
                continue;
            }
            let secs = every.as_secs_f64();
            let last = node.reader().last_transaction();
            let mut message = format!(
                "Replicated {} transactions in {:.0}s ({:.1}/s, {}/s); at {} ({})",
                count - last_count,
                secs,
                (count - last_count) as f64 / secs,
                human_bytes((size.saturating_sub(last_size)) as f64 / secs),
                tid_hex(last),
                last
            );
            if let Some(p) = node.primary_position() {
                if let Some((t, b)) = p.behind.filter(|_| p.asked_with == last) {
                    message.push_str(&format!(
                        "; behind the primary by {t} transactions, {}",
                        human_bytes(b as f64)
                    ));
                } else if let Some((t, b)) = p.behind {
                    message.push_str(&format!(
                        "; behind the primary by {t} transactions, {} when last asked",
                        human_bytes(b as f64)
                    ));
                }
            }
            let lag = (unix_now() - last.to_unix()).max(0.0);
            message.push_str(&format!("; {} behind by commit time", human_seconds(lag)));
            tracing::info!(target: LOG_TARGET, "{message}");
            last_count = count;
            last_size = size;
        })?;
    Ok(())
}

/// `12.3 MB`, `512 B`.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `3h12m05s`, `42s`.
pub fn human_seconds(s: f64) -> String {
    let s = s.round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        assert_eq!(parse_request(b"ruok"), Some(Request::Ruok));
        assert_eq!(
            parse_request(b"lag 03d4dc043aaaaaaa"),
            Some(Request::Lag(Tid::from_u64(0x03d4dc043aaaaaaa)))
        );
        assert_eq!(parse_request(b"lag 03d4dc043aaaaaa"), None);
        assert_eq!(parse_request(b"lag zzd4dc043aaaaaaa"), None);
        assert_eq!(parse_request(b"RUOK"), None);
    }

    #[test]
    fn listen_addresses_take_port_zero() {
        assert_eq!(
            parse_listen_address("127.0.0.1:0"),
            Ok(Address::tcp("127.0.0.1", 0))
        );
        assert_eq!(parse_listen_address(":8100"), Ok(Address::tcp("", 8100)));
        assert!(parse_listen_address("nonsense").is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(12_345_678.0), "12.3 MB");
        assert_eq!(human_seconds(42.4), "42s");
        assert_eq!(human_seconds(11_525.0), "3h12m05s");
    }
}
