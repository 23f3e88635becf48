//! The primary: a sans-IO state machine that streams a storage's transactions to
//! secondaries.
//!
//! It holds no socket, no clock, no thread and no randomness. Its host (the real driver in
//! [`crate::net`], or a simulator) listens, accepts, moves bytes and reports what happened;
//! the primary decides everything else and queues [`Action`]s. It reads the storage it is
//! given only through [`ReadStorage`]: whoever commits to that storage (a ZODB writing the
//! same file, a secondary replicating into it, a simulated workload) tells the primary with
//! [`Primary::committed`].
//!
//! # API (for hosts)
//!
//! - [`Primary::new`]`(storage: S: ReadStorage, config: `[`Config`]`)`: logs
//!   `Opening <name> <address>`. The host listens on the address itself.
//! - Events, each naming the connection by a host-chosen [`ConnectionId`]:
//!   - [`Primary::connected`]`(id, peer)`: a secondary connected (`peer` as Twisted prints
//!     it, `IPv4Address(TCP, '127.0.0.1', 47245)`); logs `<peer>: Connected`;
//!   - [`Primary::data_received`]`(id, bytes)`: bytes in any chunking;
//!   - [`Primary::writable`]`(id)`: the host can take more for this connection (flow
//!     control, below): it has written what was handed to it, or (the real driver) has
//!     started writing the last window and keeps it while the next is read;
//!   - [`Primary::connection_lost`]`(id, reason)`: the secondary went away (not reported for
//!     connections the primary closed itself with [`Action::Disconnect`]);
//!   - [`Primary::committed`]`()`: new transactions are committed in the storage;
//!   - [`Primary::replace_storage`]`(storage)`: the file was packed and reopened; streams go
//!     on from where they were;
//!   - [`Primary::close`]`()`: stop listening, send what is committed, then close.
//! - Work out, drained in order with [`Primary::poll_action`]:
//!   - [`Action::Transmit`]`(id, bytes)`: write these bytes on the connection;
//!   - [`Action::Disconnect`]`(id)`: close the connection once the bytes transmitted before
//!     are written; the primary already counts it as gone;
//!   - [`Action::StopListening`]: accept no more connections (after `close`).
//! - [`Primary::is_closed`]: `close` was called and every connection is gone.
//!
//! # Behaviour (zc.zrs's `primary.py`, and where zrs does better)
//!
//! Logs go to `zc.zrs.primary` as zc.zrs words them. The handshake is checked by
//! [`HandshakeReader`] and the framing limit of 8 bytes: an unknown protocol, a message over
//! 8 bytes (`message too large: (8, 15)`), a start tid that is not 8 bytes, or a non-empty
//! message after the start (`Too many messages`) logs an error and closes that connection
//! (`Disconnected …`, then `Closed`, as zc.zrs). Empty messages after the start are
//! keep-alives (logged at DEBUG). On the start tid the primary logs
//! `<peer>: start b'…' (<timestamp>)`, then:
//!
//! - a start later than the last transaction is zc.zrs's `TidTooHigh`: logged, closed;
//! - a start that is not zero and names no transaction of the storage is refused with an
//!   error naming the tid: the secondary holds another history (zc.zrs would stream the
//!   later transactions into it, mixing two databases);
//! - otherwise every later transaction is streamed — `T`, `S` + data per record, `C` with the
//!   running md5 ([`StreamEncoder`]) — and then new commits as they are reported. Where the
//!   storage keeps blobs (protocol `zrs2.1`; a `zrs2.0` secondary is refused, `Invalid
//!   protocol b'zrs2.0'. Require >= 2.1`), a blob record goes as `B` + data + its file in
//!   64 KiB blocks, sent a window at a time ([`blobs`]).
//!
//! **Flow control.** A connection is *writable* right after its start tid, and again each
//! time the host calls [`Primary::writable`]. Only then does the primary read transactions
//! (through an owned [`Cursor`], [`ReadStorage::cursor`]) and transmit, about [`Config::send_window`] bytes at a time
//! (whole transactions, so one large transaction may exceed it); after a `Transmit` it
//! waits for the next `writable`. So however far behind a secondary is, its connection holds
//! at most one window (or one transaction) in the primary and whatever the host buffers.
//!
//! **Sealing.** md5 over every byte is most of a primary's work, and every `C` needs the
//! md5 of everything before it. With [`Sealing::InCore`] (the default: the simulator, the
//! tests) the primary hashes as it encodes and transmits finished bytes. With
//! [`Sealing::ByHost`] (the real driver) it hashes nothing: it transmits
//! [`Unsealed`] windows ([`Action::TransmitUnsealed`]) whose `C`s a
//! [`Sealer`](crate::protocol::Sealer) of the host completes, one per connection, seeded
//! from the start tid the connection's first window carries — the driver does it on each
//! connection's writer thread, so the hashing of one window runs beside the reading and
//! encoding of the next. The bytes on the wire are the same (tested on seeded histories);
//! an unsealed window counts each `C` at its longest, so the window bound holds as well.
//!
//! **Close.** [`Primary::close`] logs `Closing <name> <address>`, stops listening, closes
//! connections still in their handshake, and lets streaming connections catch up with what
//! is committed: each is disconnected once its cursor has nothing more and its last bytes
//! were written.

mod blobs;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::log;
use crate::protocol::encoder::{Commits, Deferred, FrameSink, BLOB_BLOCK_SIZE};
use crate::protocol::framing::{FrameDecoder, FrameError, PRIMARY_LIMIT};
use crate::protocol::handshake::{HandshakeReader, Received};
use crate::protocol::{StreamEncoder, Unsealed};
use crate::repr::py3_bytes_repr;
use crate::secondary::{Address, LossReason};
use crate::storage::{Cursor, ReadStorage};
use crate::tid::Tid;

/// The logger zc.zrs's primary logs under.
pub const LOGGER: &str = "zc.zrs.primary";

/// Bytes handed to the host per `writable` (unless one transaction is larger). The real
/// driver keeps a few windows per connection in flight (see `net::listen`); at 256 KiB
/// they stream as fast as 1 MiB ones did (BENCHMARKS.md, "Serving a catch-up") in a
/// quarter of the memory.
pub const DEFAULT_SEND_WINDOW: usize = 256 << 10;

/// A connection, as the host names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// Work for the host, drained with [`Primary::poll_action`] in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes on the connection; call [`Primary::writable`] once they (and
    /// everything before) are written.
    Transmit(ConnectionId, Vec<u8>),
    /// With [`Sealing::ByHost`], instead of `Transmit`: seal this window with the
    /// connection's [`Sealer`](crate::protocol::Sealer) (made from the start tid of the
    /// connection's first window, [`Unsealed::start`]), then write it as `Transmit`.
    TransmitUnsealed(ConnectionId, Unsealed),
    /// Close the connection after writing what was transmitted before. The primary
    /// already counts it as gone: do not report its loss.
    Disconnect(ConnectionId),
    /// Stop accepting connections.
    StopListening,
}

/// The primary's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the host listens (only printed: `Opening Data.fs ('', 8000)`).
    pub address: Address,
    /// About how many bytes to hand the host per [`Primary::writable`].
    pub send_window: usize,
    /// Who computes the running checksum.
    pub sealing: Sealing,
}

impl Config {
    pub fn new(address: Address) -> Config {
        Config {
            address,
            send_window: DEFAULT_SEND_WINDOW,
            sealing: Sealing::InCore,
        }
    }
}

/// Who hashes a connection's stream (md5 is most of a primary's work): the bytes on the
/// wire are the same either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sealing {
    /// The primary hashes as it encodes and transmits finished bytes
    /// ([`Action::Transmit`]): the simulator, the tests.
    #[default]
    InCore,
    /// The primary transmits windows whose `C` messages are left to the host
    /// ([`Action::TransmitUnsealed`]), which seals each connection's windows in order with
    /// a [`Sealer`](crate::protocol::Sealer): the real driver, on each connection's writer
    /// thread, so the hashing runs beside the reading and encoding of the next window.
    ByHost,
}

/// One secondary's connection.
struct Connection {
    /// The peer as zc.zrs prints it, followed by `: `.
    peer: String,
    frames: FrameDecoder,
    handshake: HandshakeReader,
    /// Set once the start tid is accepted.
    stream: Option<Stream>,
    /// `close` was called: disconnect once caught up.
    closing: bool,
}

/// A connection's outbound stream.
struct Stream {
    cursor: Cursor,
    encoder: Encoder,
    /// The host can take more output.
    writable: bool,
    /// With blobs: the transaction being sent, when a window ended inside it.
    outgoing: Option<blobs::Outgoing>,
}

/// A stream's encoder, as [`Config::sealing`] asks.
enum Encoder {
    InCore(StreamEncoder),
    ByHost {
        encoder: StreamEncoder<Deferred>,
        /// The start tid, until the first window carries it to the host.
        start: Option<Tid>,
    },
}

/// What a window is written into: finished bytes, or an [`Unsealed`] window.
trait Window: FrameSink {
    /// How much the window holds (sealed, at most).
    fn len(&self) -> usize;
}

impl Window for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

impl Window for Unsealed {
    fn len(&self) -> usize {
        Unsealed::len(self)
    }
}

/// Why a connection is to be closed.
enum Failure {
    /// A bad handshake: logged, then closed as zc.zrs's `error` does (`Closed` follows).
    Handshake(String),
    /// The stream cannot go on: logged, closed (no `Closed`, as zc.zrs's producer ends).
    Stream(String),
}

/// A primary serving storage `S`; see the module docs.
pub struct Primary<S: ReadStorage> {
    storage: S,
    config: Config,
    connections: BTreeMap<ConnectionId, Connection>,
    actions: VecDeque<Action>,
    closing: bool,
}

impl<S: ReadStorage> Primary<S> {
    /// A primary serving `storage`.
    pub fn new(storage: S, config: Config) -> Primary<S> {
        log::info(
            LOGGER,
            &format!("Opening {} {}", storage.name(), config.address),
        );
        Primary {
            storage,
            config,
            connections: BTreeMap::new(),
            actions: VecDeque::new(),
            closing: false,
        }
    }

    /// The storage served.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next thing for the host to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Whether `close` was called and every connection is gone.
    pub fn is_closed(&self) -> bool {
        self.closing && self.connections.is_empty()
    }

    /// A secondary connected.
    pub fn connected(&mut self, id: ConnectionId, peer: &str) {
        let connection = Connection {
            peer: format!("{peer}: "),
            frames: FrameDecoder::new(PRIMARY_LIMIT),
            handshake: HandshakeReader::new(self.storage.keeps_blobs()),
            stream: None,
            closing: self.closing,
        };
        log::info(LOGGER, &format!("{}Connected", connection.peer));
        self.connections.insert(id, connection);
        if self.closing {
            // Accepted before the listener stopped: nothing to stream, so close at once.
            self.disconnect(id);
        }
    }

    /// Bytes arrived from a secondary.
    pub fn data_received(&mut self, id: ConnectionId, bytes: &[u8]) {
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        connection.frames.feed(bytes);
        loop {
            let Some(connection) = self.connections.get_mut(&id) else {
                return;
            };
            let message = match connection.frames.next_frame() {
                Ok(Some(message)) => message,
                Ok(None) => return,
                Err(FrameError::TooLarge { length, limit, .. }) => {
                    let what = format!("message too large: ({limit}, {length})");
                    return self.fail(id, Failure::Handshake(what));
                }
                Err(e) => return self.fail(id, Failure::Handshake(e.to_string())),
            };
            match connection.handshake.receive(&message) {
                Ok(Received::Protocol(_)) => {}
                Ok(Received::KeepAlive) => {
                    log::debug(LOGGER, &format!("{}keep-alive", connection.peer));
                }
                Ok(Received::Start(start)) => self.start(id, start),
                Err(e) => return self.fail(id, Failure::Handshake(e.to_string())),
            }
        }
    }

    /// The host wrote everything transmitted on the connection: it can take more.
    pub fn writable(&mut self, id: ConnectionId) {
        if let Some(stream) = self
            .connections
            .get_mut(&id)
            .and_then(|c| c.stream.as_mut())
        {
            stream.writable = true;
            self.pump(id);
        }
    }

    /// New transactions are committed in the storage: stream them to every connection
    /// that can take them.
    pub fn committed(&mut self) {
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for id in ids {
            self.pump(id);
        }
    }

    /// The storage was replaced by another holding the same history and more (the file
    /// was packed by its writer and reopened): every stream goes on from the last
    /// transaction it sent, its checksum unchanged, as zc.zrs's iterator reopens the file.
    pub fn replace_storage(&mut self, storage: S) {
        self.storage = storage;
        for connection in self.connections.values_mut() {
            if let Some(stream) = connection.stream.as_mut() {
                stream.cursor = self.storage.cursor(stream.cursor.after());
            }
        }
        self.committed();
    }

    /// A connection ended (the secondary closed it, or it broke).
    pub fn connection_lost(&mut self, id: ConnectionId, reason: &LossReason) {
        if let Some(connection) = self.connections.remove(&id) {
            log::info(LOGGER, &format!("{}Disconnected {reason}", connection.peer));
        }
    }

    /// Stops listening, closes connections still in their handshake, and disconnects the
    /// others once they have everything committed.
    pub fn close(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        log::info(
            LOGGER,
            &format!("Closing {} {}", self.storage.name(), self.config.address),
        );
        self.actions.push_back(Action::StopListening);
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for id in ids {
            let connection = self.connections.get_mut(&id).expect("listed");
            connection.closing = true;
            if connection.stream.is_some() {
                log::info(LOGGER, &format!("{}Closed", connection.peer));
                self.pump(id);
            } else {
                let peer = connection.peer.clone();
                self.disconnect(id);
                log::info(LOGGER, &format!("{peer}Closed"));
            }
        }
    }

    /// The start tid arrived: check it, then stream.
    fn start(&mut self, id: ConnectionId, start: Tid) {
        let connection = self.connections.get_mut(&id).expect("caller found it");
        log::info(
            LOGGER,
            &format!(
                "{}start {} ({start})",
                connection.peer,
                py3_bytes_repr(start.as_bytes())
            ),
        );
        let last = self.storage.last_transaction();
        if start > last {
            let what = format!(
                "TidTooHigh: {}: the start is later than the last transaction, {} ({last})",
                py3_bytes_repr(start.as_bytes()),
                py3_bytes_repr(last.as_bytes()),
            );
            return self.fail(id, Failure::Stream(what));
        }
        if start != Tid::ZERO {
            match self.storage.has_transaction(start) {
                Ok(true) => {}
                Ok(false) => {
                    let what = format!(
                        "Refusing start {} ({start}): no transaction of {} has this id, so the \
                         secondary holds another history (a wrong address, or a primary that \
                         diverged from it); it must be rebuilt from this primary",
                        py3_bytes_repr(start.as_bytes()),
                        self.storage.name(),
                    );
                    return self.fail(id, Failure::Stream(what));
                }
                Err(e) => return self.fail(id, Failure::Stream(e.to_string())),
            }
        }
        let encoder = match self.config.sealing {
            Sealing::InCore => Encoder::InCore(StreamEncoder::new(start)),
            Sealing::ByHost => Encoder::ByHost {
                encoder: StreamEncoder::unsealed(),
                start: Some(start),
            },
        };
        let stream = Stream {
            cursor: self.storage.cursor(start),
            encoder,
            writable: true,
            outgoing: None,
        };
        connection.stream = Some(stream);
        self.pump(id);
    }

    /// Streams what the connection can take now; disconnects a closing connection that
    /// has everything.
    fn pump(&mut self, id: ConnectionId) {
        let window = self.config.send_window;
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        let Some(stream) = connection.stream.as_mut() else {
            return;
        };
        if !stream.writable {
            return;
        }
        // Room for the window and the transaction (or blob block) that crosses its end.
        let capacity = window
            .saturating_add(window / 4)
            .saturating_add(BLOB_BLOCK_SIZE + 8)
            .min(64 << 20);
        let Stream {
            cursor,
            encoder,
            outgoing,
            ..
        } = stream;
        let (filled, action) = match encoder {
            Encoder::InCore(encoder) => {
                let mut out = Vec::with_capacity(capacity);
                let filled = fill(&self.storage, cursor, outgoing, encoder, &mut out, window);
                (
                    filled,
                    (!out.is_empty()).then_some(Action::Transmit(id, out)),
                )
            }
            Encoder::ByHost { encoder, start } => {
                let mut out = Unsealed::with_capacity(capacity);
                let filled = fill(&self.storage, cursor, outgoing, encoder, &mut out, window);
                let action = (!out.is_empty()).then(|| {
                    if let Some(start) = start.take() {
                        out.set_start(start);
                    }
                    Action::TransmitUnsealed(id, out)
                });
                (filled, action)
            }
        };
        match filled {
            Err(e) => self.fail(id, Failure::Stream(e)),
            Ok(caught_up) => {
                if let Some(action) = action {
                    stream.writable = false;
                    self.actions.push_back(action);
                } else if caught_up && connection.closing {
                    self.disconnect(id);
                }
            }
        }
    }

    /// Logs why the connection is closed, and closes it as zc.zrs does.
    fn fail(&mut self, id: ConnectionId, failure: Failure) {
        let Some(connection) = self.connections.get(&id) else {
            return;
        };
        let peer = connection.peer.clone();
        match failure {
            Failure::Handshake(what) => {
                log::error(LOGGER, &format!("{peer}{what}"));
                self.disconnect(id);
                log::info(LOGGER, &format!("{peer}Closed"));
            }
            Failure::Stream(what) => {
                log::error(LOGGER, &format!("{peer}{what}"));
                self.disconnect(id);
            }
        }
    }

    /// Closes the connection from this side.
    fn disconnect(&mut self, id: ConnectionId) {
        if let Some(connection) = self.connections.remove(&id) {
            self.actions.push_back(Action::Disconnect(id));
            log::info(
                LOGGER,
                &format!("{}Disconnected {}", connection.peer, LossReason::Done),
            );
        }
    }
}

/// Reads and encodes a connection's next transactions into `out` until it holds about
/// `window` bytes (whole transactions; with blobs, a window may end inside one, kept in
/// `outgoing`) or the cursor has nothing more; returns whether it has nothing more.
fn fill<S, C, O>(
    storage: &S,
    cursor: &mut Cursor,
    outgoing: &mut Option<blobs::Outgoing>,
    encoder: &mut StreamEncoder<C>,
    out: &mut O,
    window: usize,
) -> Result<bool, String>
where
    S: ReadStorage,
    O: Window,
    C: Commits<O>,
{
    while out.len() < window {
        if let Some(sending) = outgoing.as_mut() {
            if !sending.fill(storage, encoder, out, window)? {
                break;
            }
            *outgoing = None;
            continue;
        }
        match cursor.next() {
            // Undone transactions (status 'u', a legacy of old undo) are skipped, as
            // zc.zrs's iterator skips them.
            Ok(Some(txn)) if txn.meta.status == b'u' => {}
            // Blob records go block by block, a window at a time (see `blobs`).
            Ok(Some(txn)) if storage.keeps_blobs() => {
                *outgoing = Some(blobs::Outgoing::start(txn, encoder, out)?);
            }
            Ok(Some(txn)) => encoder.transaction(&txn, out).map_err(|e| e.to_string())?,
            Ok(None) => return Ok(true),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(false)
}

impl<S: ReadStorage> fmt::Debug for Primary<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Primary")
            .field("storage", &self.storage.name())
            .field("connections", &self.connections.len())
            .field("closing", &self.closing)
            .finish()
    }
}

#[cfg(test)]
mod tests;
