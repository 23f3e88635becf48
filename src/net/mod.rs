//! The real network driver of the sans-IO cores: sockets, a clock, and signals.
//!
//! One [`Driver`] runs a node in either role or both: a [`Secondary`] (it performs its
//! [`Action`]s on real sockets — TCP, or a Unix-domain socket — and feeds it `connected`,
//! `connection_failed`, `connection_lost`, `data_received`, `timeout`), a
//! [`Primary`](crate::primary::Primary) served on a [`Listener`] (`connected`,
//! `data_received`, `writable`, `connection_lost`, `committed`, `close`), or a secondary
//! that serves its own storage downstream (chaining: each of its commits is announced to
//! its primary). Every protocol decision stays in the cores; the driver only moves bytes,
//! keeps time, polls a followed file, and decides when to fsync.
//!
//! How it runs: one loop on the calling thread owns the cores and waits on a bounded
//! channel. A connection attempt runs on a short-lived thread (so that a 30 s connect
//! timeout never holds up timers or a stop); an established connection has one reader
//! thread that forwards what it reads; a served connection also has a sealer thread, which
//! reports when it takes a window the primary transmitted — the primary's cue to read the
//! next — and hashes it ([`Sealing::ByHost`](crate::primary::Sealing)), and a writer thread
//! that writes the sealed bytes (so a secondary that does not read holds back only its own
//! threads, and the primary holds a few windows for it at most: see [`listen`]). Each attempt and connection has an id, so whatever
//! arrives from one already given up on is dropped. The channel is bounded, so a primary
//! that sends faster than the storage writes is held back by TCP flow control, not buffered
//! here. The reader of the connection to the primary also runs the secondary's checksum
//! scanner ([`Secondary::take_checksum_scanner`]): md5 over the stream runs on the reader's
//! core, ahead of the secondary, which gets each read with its checkpoints and only compares
//! digests at each `C` (nothing waits for a hash: the scanner is ahead of the decoding, never
//! behind it). Timers live in a small table keyed by [`Timer`](crate::secondary::Timer) on
//! [`std::time::Instant`] — the one place in the crate a clock is used.
//!
//! Durability: a secondary opened on a FileStorage with `Durability::Batch(n)` fsyncs once
//! every `n` transactions; the driver adds a [`Secondary::sync`] whenever the input has
//! been idle for [`DriverOptions::idle_sync`], so a catch-up burst costs one fsync per
//! batch while each transaction of the steady state is durable moments after it arrives.
//! (Nothing is lost to a crash in between: replication asks again from the last durable
//! transaction.)
//!
//! Stopping ([`StopHandle::stop`]): a served primary is closed first (it stops listening
//! and sends each secondary what is committed, for at most 10 s), then the secondary and
//! its storage.

pub mod address;
pub mod listen;
pub mod status;
pub mod stream;
mod timers;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub use address::{parse_address, tcp_peer, unix_peer, AddressError};
pub use listen::Listener;
pub use stream::{connect, Stream, DEFAULT_CONNECT_TIMEOUT};
use timers::Timers;

use crate::primary::{self, ConnectionId, Primary};
use crate::protocol::checksum::{ChecksumScanner, StreamChecksum};
use crate::secondary::{Action, LossReason, Secondary};
use crate::storage::{ReadStorage, Storage, StorageError};

/// The target of the driver's own (debug) log events.
pub const LOG_TARGET: &str = "zrs.net";

/// How the driver runs.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// How long a connection attempt may take (Twisted's default: 30 s).
    pub connect_timeout: Duration,
    /// Sync the storage once the input has been quiet this long.
    pub idle_sync: Duration,
    /// Largest read from the socket.
    pub read_size: usize,
    /// Reads buffered between the reader thread and the secondary.
    pub queue_depth: usize,
    /// A write (handshake, keep-alive) blocked this long counts as a lost connection.
    pub write_timeout: Duration,
}

impl Default for DriverOptions {
    fn default() -> DriverOptions {
        DriverOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_sync: Duration::from_millis(100),
            read_size: 64 * 1024,
            queue_depth: 32,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the driver stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("syncing the storage: {0}")]
    Sync(#[source] StorageError),
    #[error("closing the storage: {0}")]
    Close(#[source] StorageError),
    #[error("listening: {0}")]
    Listen(#[source] io::Error),
    #[error("this driver runs no secondary (made by Driver::serving): use run_primary")]
    NoSecondary,
}

/// The primary a driver serves, reading its storage through a shared handle.
pub type ServedPrimary = Primary<Box<dyn ReadStorage + Send + Sync>>;

/// What a [`Follow`] poll found in the served storage.
pub enum Followed {
    /// Nothing new.
    Unchanged,
    /// New transactions are committed (another process appended them).
    Appended,
    /// The file was replaced (packed): serve from this handle on it from now on.
    Replaced(Box<dyn ReadStorage + Send + Sync>),
}

/// A poll of a storage that another process writes, run every `interval`: how a primary
/// learns of commits it does not make (see `zrs primary`).
pub struct Follow {
    pub interval: Duration,
    pub poll: Box<dyn FnMut() -> Result<Followed, String> + Send>,
}

/// What reaches the loop from the other threads.
enum Event {
    Connected {
        attempt: u64,
        stream: Stream,
        peer: String,
    },
    ConnectFailed {
        attempt: u64,
        error: io::Error,
    },
    Data {
        link: u64,
        bytes: Vec<u8>,
        /// The checkpoints the reader's checksum scanner made of `bytes`, if it runs one.
        checkpoints: Option<Vec<StreamChecksum>>,
    },
    /// The reader saw end of file (`error: None`) or an error.
    Closed {
        link: u64,
        error: Option<io::Error>,
    },
    /// A secondary connected to the primary served.
    Accepted {
        stream: Stream,
        peer: String,
    },
    /// A served connection's sealer took the last window it was given: the primary may
    /// read the next.
    Ready {
        link: u64,
    },
    Stop,
}

/// Stops a running [`Driver`] from any thread (a signal handler's, a test's).
#[derive(Clone)]
pub struct StopHandle {
    events: SyncSender<Event>,
}

impl StopHandle {
    /// Asks the driver to close the secondary and return. Harmless once it has.
    pub fn stop(&self) {
        let _ = self.events.send(Event::Stop);
    }
}

/// The established connection, from the loop's side.
struct Link {
    id: u64,
    writer: Stream,
    /// A write failed: the loss that follows is reported as `Lost`, not `Done`.
    write_failed: bool,
    /// Gives the reader back the buffers it sent, once the secondary is done with them, so
    /// that it reads into them again rather than copying each read into a new one.
    recycle: Option<Sender<Vec<u8>>>,
}

/// A connection of the primary served, from the loop's side.
struct Downstream {
    /// The secondary as Twisted prints it (for the status).
    peer: String,
    writer: SyncSender<listen::Out>,
    /// To shut the socket down at once (a stop that cannot wait for a slow writer).
    socket: Stream,
    /// A write failed: the loss that follows is reported as `Lost`.
    write_failed: bool,
}

/// The primary role: the core, its listener, its connections, and how it learns of commits.
struct Serving {
    primary: ServedPrimary,
    listener: Option<Listener>,
    accepting: Option<listen::Accepting>,
    downstream: BTreeMap<u64, Downstream>,
    follow: Option<Follow>,
    follow_at: Option<Instant>,
}

/// Runs a [`Secondary`], a [`Primary`], or both (a chained secondary that serves others)
/// over real sockets.
pub struct Driver<S: Storage> {
    secondary: Option<Secondary<S>>,
    serving: Option<Serving>,
    options: DriverOptions,
    sender: SyncSender<Event>,
    events: Receiver<Event>,
    timers: Timers,
    next_id: u64,
    /// The connection attempt the secondary is waiting for.
    attempt: Option<u64>,
    link: Option<Link>,
    /// When to sync if no more input arrives.
    sync_at: Option<Instant>,
    /// Where the node's connection state and commits are reported (status, progress).
    status: Option<Arc<status::NodeStatus>>,
}

impl<S: Storage> Driver<S> {
    /// Takes a freshly made secondary (its opening actions still queued).
    pub fn new(secondary: Secondary<S>, options: DriverOptions) -> Driver<S> {
        Driver::with(Some(secondary), options)
    }

    /// A driver of a primary alone (`zrs primary`): it serves `primary` on `listener` and
    /// runs no secondary (its storage type is unused). Run it with [`Driver::run_primary`].
    pub fn serving(primary: ServedPrimary, listener: Listener, options: DriverOptions) -> Self {
        Driver::with(None, options).serve(primary, listener)
    }

    fn with(secondary: Option<Secondary<S>>, options: DriverOptions) -> Driver<S> {
        let (sender, events) = mpsc::sync_channel(options.queue_depth.max(1));
        Driver {
            secondary,
            serving: None,
            options,
            sender,
            events,
            timers: Timers::default(),
            next_id: 0,
            attempt: None,
            link: None,
            sync_at: None,
            status: None,
        }
    }

    /// Also serves `primary` on `listener`. Over a secondary's storage (chaining), every
    /// transaction the secondary commits is announced to the primary as it is committed.
    pub fn serve(mut self, primary: ServedPrimary, listener: Listener) -> Self {
        self.serving = Some(Serving {
            primary,
            listener: Some(listener),
            accepting: None,
            downstream: BTreeMap::new(),
            follow: None,
            follow_at: None,
        });
        self
    }

    /// Polls the served storage for commits made by another process (see [`Follow`]).
    pub fn follow(mut self, follow: Follow) -> Self {
        if let Some(serving) = self.serving.as_mut() {
            serving.follow_at = Some(Instant::now() + follow.interval);
            serving.follow = Some(follow);
        }
        self
    }

    /// Reports connection state and commits to `status` as they happen.
    pub fn with_status(mut self, status: Arc<status::NodeStatus>) -> Driver<S> {
        self.status = Some(status);
        self
    }

    fn report_connection(&self, state: &'static str) {
        if let Some(status) = &self.status {
            status.set_connection(state);
        }
    }

    /// A handle that stops [`Driver::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            events: self.sender.clone(),
        }
    }

    /// Runs until stopped; then closes the secondary (and its storage) and returns it.
    /// A primary served too is closed first: it sends what is committed, then closes.
    pub fn run(mut self) -> Result<Secondary<S>, DriverError> {
        if self.secondary.is_none() {
            return Err(DriverError::NoSecondary);
        }
        self.run_loop()?;
        Ok(self.secondary.take().expect("checked above"))
    }

    /// Runs a driver made by [`Driver::serving`] until stopped and its primary closed.
    pub fn run_primary(mut self) -> Result<(), DriverError> {
        self.run_loop()
    }

    /// How long a stopping primary waits for its secondaries to take what is committed.
    const CLOSE_GRACE: Duration = Duration::from_secs(10);

    fn run_loop(&mut self) -> Result<(), DriverError> {
        self.start_listening()?;
        let mut stopping: Option<Instant> = None;
        loop {
            self.dispatch();
            let now = Instant::now();
            if let Some(deadline) = stopping {
                let served_closed = self.serving.as_ref().is_none_or(|s| s.primary.is_closed());
                if served_closed || now >= deadline {
                    return self.finish();
                }
            }
            // Timers first, even while data keeps arriving, so keep-alives are not starved.
            if let Some(timer) = self.timers.pop_due(now) {
                if let Some(secondary) = self.secondary.as_mut() {
                    secondary.timeout(timer);
                }
                continue;
            }
            if self.sync_at.is_some_and(|at| at <= now) {
                self.sync_at = None;
                if let Some(Err(e)) = self.secondary.as_mut().map(Secondary::sync) {
                    self.drop_link();
                    return Err(DriverError::Sync(e));
                }
                continue;
            }
            if let Some(serving) = self.serving.as_mut() {
                if serving.follow_at.is_some_and(|at| at <= now) {
                    if serving.poll_follow(now) {
                        if let Some(status) = &self.status {
                            status.appended();
                        }
                    }
                    continue;
                }
            }
            let deadline = [
                self.timers.next_deadline(),
                self.sync_at,
                self.serving.as_ref().and_then(|s| s.follow_at),
                stopping,
            ]
            .into_iter()
            .flatten()
            .min();
            let event = match deadline {
                Some(at) => match self.events.recv_timeout(at.saturating_duration_since(now)) {
                    Ok(event) => event,
                    Err(RecvTimeoutError::Timeout) => continue,
                    // The loop holds a sender: the channel cannot disconnect.
                    Err(RecvTimeoutError::Disconnected) => unreachable!("driver holds a sender"),
                },
                None => match self.events.recv() {
                    Ok(event) => event,
                    Err(_) => unreachable!("driver holds a sender"),
                },
            };
            if let Event::Stop = event {
                if stopping.is_some() {
                    return self.finish(); // asked twice: do not wait
                }
                stopping = Some(Instant::now() + Self::CLOSE_GRACE);
                if let Some(serving) = self.serving.as_mut() {
                    serving.primary.close();
                }
                continue;
            }
            self.handle(event);
        }
    }

    /// After a stop: closes what is still open (the secondary and its storage last).
    fn finish(&mut self) -> Result<(), DriverError> {
        if let Some(serving) = self.serving.as_mut() {
            if let Some(accepting) = serving.accepting.take() {
                accepting.stop();
            }
            for (_, d) in std::mem::take(&mut serving.downstream) {
                let _ = d.socket.shutdown();
            }
        }
        self.report_connection("closed");
        let Some(secondary) = self.secondary.as_mut() else {
            return Ok(());
        };
        let closed = secondary.close();
        self.dispatch();
        self.drop_link();
        closed.map_err(DriverError::Close)
    }

    /// Starts accepting connections for the primary served, if any.
    fn start_listening(&mut self) -> Result<(), DriverError> {
        let Some(serving) = self.serving.as_mut() else {
            return Ok(());
        };
        let Some(listener) = serving.listener.take() else {
            return Ok(());
        };
        tracing::info!(target: LOG_TARGET, "listening on {}", listener.local());
        let sender = self.sender.clone();
        let accepting = listener
            .start(move |stream, peer| sender.send(Event::Accepted { stream, peer }).is_ok())
            .map_err(DriverError::Listen)?;
        serving.accepting = Some(accepting);
        Ok(())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Connected {
                attempt,
                stream,
                peer,
            } => {
                if self.attempt != Some(attempt) {
                    return; // given up on: dropping the stream closes it
                }
                self.attempt = None;
                let Some(secondary) = self.secondary.as_mut() else {
                    return;
                };
                match open_link(stream, &self.options, &mut self.next_id) {
                    Ok((link, reader)) => {
                        let id = link.id;
                        self.link = Some(link);
                        if let Some(status) = &self.status {
                            status.set_connection("connected");
                            status.set_peers(vec![peer.clone()]);
                        }
                        secondary.connected(&peer);
                        // The reader starts after the handshake is queued, with the scanner
                        // of this connection's stream: it hashes everything it reads.
                        let scanner = secondary.take_checksum_scanner();
                        match spawn_reader(reader, id, &self.options, &self.sender, scanner) {
                            Ok(recycle) => {
                                if let Some(link) = self.link.as_mut() {
                                    link.recycle = Some(recycle);
                                }
                            }
                            Err(e) => {
                                if let Some(link) = self.link.take() {
                                    let _ = link.writer.shutdown();
                                }
                                secondary.connection_lost(&LossReason::Other(e.to_string()));
                            }
                        }
                    }
                    Err(e) => secondary.connection_failed(&LossReason::Other(e.to_string())),
                }
            }
            Event::ConnectFailed { attempt, error } => {
                if self.attempt != Some(attempt) {
                    return;
                }
                self.attempt = None;
                self.report_connection("disconnected");
                tracing::debug!(target: LOG_TARGET, "connection attempt failed: {error}");
                if let Some(secondary) = self.secondary.as_mut() {
                    secondary.connection_failed(&LossReason::Other(error.to_string()));
                }
            }
            Event::Data {
                link,
                bytes,
                checkpoints,
            } => {
                if self.link.as_ref().is_some_and(|l| l.id == link) {
                    if let Some(secondary) = self.secondary.as_mut() {
                        match checkpoints {
                            Some(checkpoints) => {
                                secondary.data_received_scanned(&bytes, checkpoints)
                            }
                            None => secondary.data_received(&bytes),
                        }
                    }
                    // (The secondary may have dropped the link meanwhile: then the reader
                    // is gone too, and the buffer with it.)
                    if let Some(recycle) = self.link.as_ref().and_then(|l| l.recycle.as_ref()) {
                        let _ = recycle.send(bytes);
                    }
                    self.sync_at = Some(Instant::now() + self.options.idle_sync);
                } else if let Some(serving) = self.serving.as_mut() {
                    if serving.downstream.contains_key(&link) {
                        serving.primary.data_received(ConnectionId(link), &bytes);
                    }
                }
            }
            Event::Accepted { stream, peer } => self.accept(stream, peer),
            Event::Ready { link } => {
                if let Some(serving) = self.serving.as_mut() {
                    if serving.downstream.contains_key(&link) {
                        serving.primary.writable(ConnectionId(link));
                    }
                }
            }
            Event::Closed { link, error } => {
                if let Some(serving) = self.serving.as_mut() {
                    if let Some(d) = serving.downstream.remove(&link) {
                        if let Some(e) = &error {
                            tracing::debug!(target: LOG_TARGET, "served connection error: {e}");
                        }
                        let _ = d.socket.shutdown();
                        let reason = if error.is_some() || d.write_failed {
                            LossReason::Lost
                        } else {
                            LossReason::Done
                        };
                        serving.primary.connection_lost(ConnectionId(link), &reason);
                        report_secondaries(self.status.as_deref(), &serving.downstream);
                        return;
                    }
                }
                let Some(link) = self.link.take_if(|l| l.id == link) else {
                    return; // a connection already given up on
                };
                if let Some(e) = &error {
                    tracing::debug!(target: LOG_TARGET, "connection error: {e}");
                }
                self.report_connection("disconnected");
                let reason = if error.is_some() || link.write_failed {
                    LossReason::Lost
                } else {
                    LossReason::Done
                };
                if let Some(secondary) = self.secondary.as_mut() {
                    secondary.connection_lost(&reason);
                }
            }
            Event::Stop => {}
        }
    }

    /// Performs every queued action, the secondary's then the primary's (a secondary's
    /// commit announces new transactions to the primary it feeds).
    fn dispatch(&mut self) {
        self.dispatch_secondary();
        self.dispatch_primary();
    }

    /// A connection accepted for the primary served.
    fn accept(&mut self, stream: Stream, peer: String) {
        let Some(serving) = self.serving.as_mut() else {
            return;
        };
        if serving.accepting.is_none() {
            return; // no longer listening: dropping the stream closes it
        }
        match start_downstream(stream, &self.options, &mut self.next_id, &self.sender) {
            Ok((link, mut downstream)) => {
                downstream.peer = peer.clone();
                serving.downstream.insert(link, downstream);
                report_secondaries(self.status.as_deref(), &serving.downstream);
                serving.primary.connected(ConnectionId(link), &peer);
            }
            Err(e) => tracing::debug!(target: LOG_TARGET, "{peer}: {e}"),
        }
    }

    fn dispatch_primary(&mut self) {
        let Some(serving) = self.serving.as_mut() else {
            return;
        };
        while let Some(action) = serving.primary.poll_action() {
            match action {
                primary::Action::Transmit(ConnectionId(link), bytes) => {
                    if let Some(d) = serving.downstream.get_mut(&link) {
                        if d.writer.send(listen::Out::Bytes(bytes)).is_err() {
                            d.write_failed = true;
                        }
                    }
                }
                primary::Action::TransmitUnsealed(ConnectionId(link), window) => {
                    if let Some(d) = serving.downstream.get_mut(&link) {
                        if d.writer.send(listen::Out::Unsealed(window)).is_err() {
                            d.write_failed = true;
                        }
                    }
                }
                primary::Action::Disconnect(ConnectionId(link)) => {
                    if let Some(d) = serving.downstream.remove(&link) {
                        let _ = d.writer.send(listen::Out::Close);
                    }
                    report_secondaries(self.status.as_deref(), &serving.downstream);
                }
                primary::Action::StopListening => {
                    if let Some(accepting) = serving.accepting.take() {
                        accepting.stop();
                    }
                }
            }
        }
    }

    fn dispatch_secondary(&mut self) {
        let Some(secondary) = self.secondary.as_mut() else {
            return;
        };
        while let Some(action) = secondary.poll_action() {
            match action {
                Action::Connect(address) => {
                    self.next_id += 1;
                    let attempt = self.next_id;
                    self.attempt = Some(attempt);
                    if let Some(status) = &self.status {
                        status.set_connection("connecting");
                    }
                    let sender = self.sender.clone();
                    let timeout = self.options.connect_timeout;
                    let spawned =
                        thread::Builder::new()
                            .name("zrs-connect".into())
                            .spawn(move || {
                                let event = match connect(&address, timeout) {
                                    Ok((stream, peer)) => Event::Connected {
                                        attempt,
                                        stream,
                                        peer,
                                    },
                                    Err(error) => Event::ConnectFailed { attempt, error },
                                };
                                let _ = sender.send(event);
                            });
                    if let Err(e) = spawned {
                        self.attempt = None;
                        secondary.connection_failed(&LossReason::Other(e.to_string()));
                    }
                }
                Action::AbortConnect => self.attempt = None,
                Action::Transmit(bytes) => match self.link.as_mut() {
                    Some(link) if !link.write_failed => {
                        if let Err(e) = link.writer.write_all(&bytes) {
                            tracing::debug!(target: LOG_TARGET, "write failed: {e}");
                            // The reader then sees the socket end and reports the loss.
                            link.write_failed = true;
                            let _ = link.writer.shutdown();
                        }
                    }
                    Some(_) => {}
                    None => {
                        tracing::debug!(target: LOG_TARGET, "nothing to transmit on: not connected")
                    }
                },
                Action::Disconnect => {
                    if let Some(link) = self.link.take() {
                        let _ = link.writer.shutdown();
                    }
                }
                Action::SetTimer { timer, delay } => self.timers.set(timer, Instant::now(), delay),
                Action::CancelTimer(timer) => self.timers.cancel(timer),
                Action::Invalidate { tid, oids } => {
                    tracing::debug!(target: LOG_TARGET, "committed {tid:?}: {} objects", oids.len());
                    if let Some(status) = &self.status {
                        status.committed(secondary.storage().size());
                    }
                    if let Some(serving) = self.serving.as_mut() {
                        serving.primary.committed();
                    }
                }
            }
        }
    }

    /// Closes the connection without reporting it (the secondary already counts it lost).
    fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            let _ = link.writer.shutdown();
        }
    }
}

impl Serving {
    /// Runs the follow poll and tells the primary what it found; true when transactions
    /// were appended.
    fn poll_follow(&mut self, now: Instant) -> bool {
        let Some(follow) = self.follow.as_mut() else {
            self.follow_at = None;
            return false;
        };
        self.follow_at = Some(now + follow.interval);
        match (follow.poll)() {
            Ok(Followed::Unchanged) => false,
            Ok(Followed::Appended) => {
                self.primary.committed();
                true
            }
            Ok(Followed::Replaced(storage)) => {
                self.primary.replace_storage(storage);
                false
            }
            Err(e) => {
                tracing::error!(target: LOG_TARGET, "following the storage: {e}");
                false
            }
        }
    }
}

/// Tells the status which secondaries are connected to the primary served.
fn report_secondaries(status: Option<&status::NodeStatus>, downstream: &BTreeMap<u64, Downstream>) {
    if let Some(status) = status {
        status.set_secondaries(downstream.values().map(|d| d.peer.clone()).collect());
    }
}

/// An established connection's link, and the handle its reader thread will read from.
fn open_link(
    stream: Stream,
    options: &DriverOptions,
    next_id: &mut u64,
) -> io::Result<(Link, Stream)> {
    stream.set_write_timeout(Some(options.write_timeout))?;
    let reader = stream.try_clone()?;
    *next_id += 1;
    let link = Link {
        id: *next_id,
        writer: stream,
        write_failed: false,
        recycle: None,
    };
    Ok((link, reader))
}

/// Starts the reader thread of link `id`, hashing with `scanner` if given; returns where to
/// give its buffers back.
fn spawn_reader(
    reader: Stream,
    id: u64,
    options: &DriverOptions,
    sender: &SyncSender<Event>,
    scanner: Option<ChecksumScanner>,
) -> io::Result<Sender<Vec<u8>>> {
    let sender = sender.clone();
    let read_size = options.read_size.max(1);
    let (recycle, recycled) = mpsc::channel();
    thread::Builder::new()
        .name("zrs-reader".into())
        .spawn(move || read_loop(reader, id, read_size, sender, scanner, recycled))?;
    Ok(recycle)
}

/// Starts an established connection with its reader thread (a connection from a secondary
/// served: nothing to hash); returns its link.
fn start_link(
    stream: Stream,
    options: &DriverOptions,
    next_id: &mut u64,
    sender: &SyncSender<Event>,
) -> io::Result<Link> {
    let (mut link, reader) = open_link(stream, options, next_id)?;
    link.recycle = Some(spawn_reader(reader, link.id, options, sender, None)?);
    Ok(link)
}

/// Starts a served connection: its reader and its writer thread.
fn start_downstream(
    stream: Stream,
    options: &DriverOptions,
    next_id: &mut u64,
    sender: &SyncSender<Event>,
) -> io::Result<(u64, Downstream)> {
    let link = start_link(stream, options, next_id, sender)?;
    let id = link.id;
    let socket = link.writer.try_clone()?;
    let ready = sender.clone();
    let failed = sender.clone();
    let writer = listen::start_writer(
        link.writer,
        move || ready.send(Event::Ready { link: id }).is_ok(),
        move |error| {
            let _ = failed.send(Event::Closed {
                link: id,
                error: Some(error),
            });
        },
    )?;
    Ok((
        id,
        Downstream {
            peer: String::new(),
            writer,
            socket,
            write_failed: false,
        },
    ))
}

/// Checkpoints one [`Event::Data`] carries at most: a read of tiny messages is sent in
/// pieces, so that what the queue holds stays bounded by bytes read.
const CHECKPOINTS_PER_EVENT: usize = 1024;

/// The reader thread: forwards what the socket yields until it ends or the loop is gone,
/// with its checkpoints when it runs the stream's checksum scanner. Each read goes into a
/// buffer the loop gave back (`recycled`) or a new one, and is sent as it is.
fn read_loop(
    mut stream: Stream,
    link: u64,
    read_size: usize,
    events: SyncSender<Event>,
    mut scanner: Option<ChecksumScanner>,
    recycled: Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = recycled.try_recv().unwrap_or_default();
        buf.resize(read_size, 0);
        match stream.read(&mut buf) {
            Ok(0) => {
                let _ = events.send(Event::Closed { link, error: None });
                return;
            }
            Ok(n) => {
                buf.truncate(n);
                let Some(scanner) = scanner.as_mut() else {
                    let data = Event::Data {
                        link,
                        bytes: buf,
                        checkpoints: None,
                    };
                    if events.send(data).is_err() {
                        return;
                    }
                    continue;
                };
                let mut start = 0;
                while start < n {
                    let mut checkpoints = Vec::new();
                    let used = scanner.scan(&buf[start..], CHECKPOINTS_PER_EVENT, &mut checkpoints);
                    let bytes = if start == 0 && used == n {
                        std::mem::take(&mut buf)
                    } else {
                        // More messages than one event takes: sent in pieces (rare).
                        buf[start..start + used].to_vec()
                    };
                    start += used;
                    let data = Event::Data {
                        link,
                        bytes,
                        checkpoints: Some(checkpoints),
                    };
                    if events.send(data).is_err() {
                        return;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = events.send(Event::Closed {
                    link,
                    error: Some(e),
                });
                return;
            }
        }
    }
}
