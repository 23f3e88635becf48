//! The real network driver of the sans-IO [`Secondary`]: sockets, a clock, and signals.
//!
//! [`Driver::run`] performs the secondary's [`Action`]s on real sockets (TCP, or a
//! Unix-domain socket) and feeds it what happens (`connected`, `connection_failed`,
//! `connection_lost`, `data_received`, `timeout`). Every protocol decision stays in the
//! core; the driver only moves bytes, keeps time, and decides when to fsync.
//!
//! How it runs: one loop on the calling thread owns the secondary and waits on a bounded
//! channel. A connection attempt runs on a short-lived thread (so that a 30 s connect
//! timeout never holds up timers or a stop); an established connection has one reader
//! thread that forwards what it reads. Each attempt and connection has an id, so whatever
//! arrives from one the secondary already gave up on is dropped. The channel is bounded, so
//! a primary that sends faster than the storage writes is held back by TCP flow control,
//! not buffered here. Timers live in a small table keyed by [`Timer`](crate::secondary::Timer) on
//! [`std::time::Instant`] — the one place in the crate a clock is used.
//!
//! Durability: a secondary opened on a FileStorage with `Durability::Batch(n)` fsyncs once
//! every `n` transactions; the driver adds a [`Secondary::sync`] whenever the input has
//! been idle for [`DriverOptions::idle_sync`], so a catch-up burst costs one fsync per
//! batch while each transaction of the steady state is durable moments after it arrives.
//! (Nothing is lost to a crash in between: replication asks again from the last durable
//! transaction.)

pub mod address;
pub mod status;
pub mod stream;
mod timers;

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub use address::{parse_address, tcp_peer, unix_peer, AddressError};
pub use stream::{connect, Stream, DEFAULT_CONNECT_TIMEOUT};
use timers::Timers;

use crate::secondary::{Action, LossReason, Secondary};
use crate::storage::{Storage, StorageError};

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
    },
    /// The reader saw end of file (`error: None`) or an error.
    Closed {
        link: u64,
        error: Option<io::Error>,
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
}

/// Runs a [`Secondary`] over real sockets.
pub struct Driver<S: Storage> {
    secondary: Secondary<S>,
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
        let (sender, events) = mpsc::sync_channel(options.queue_depth.max(1));
        Driver {
            secondary,
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
    pub fn run(mut self) -> Result<Secondary<S>, DriverError> {
        loop {
            self.dispatch();
            let now = Instant::now();
            // Timers first, even while data keeps arriving, so keep-alives are not starved.
            if let Some(timer) = self.timers.pop_due(now) {
                self.secondary.timeout(timer);
                continue;
            }
            if self.sync_at.is_some_and(|at| at <= now) {
                self.sync_at = None;
                if let Err(e) = self.secondary.sync() {
                    self.drop_link();
                    return Err(DriverError::Sync(e));
                }
                continue;
            }
            let deadline = match (self.timers.next_deadline(), self.sync_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
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
                self.report_connection("closed");
                let closed = self.secondary.close();
                self.dispatch();
                self.drop_link();
                return match closed {
                    Ok(()) => Ok(self.secondary),
                    Err(e) => Err(DriverError::Close(e)),
                };
            }
            self.handle(event);
        }
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
                match self.start_link(stream) {
                    Ok(()) => {
                        self.report_connection("connected");
                        if let Some(status) = &self.status {
                            status.set_peers(vec![peer.clone()]);
                        }
                        self.secondary.connected(&peer)
                    }
                    Err(e) => self
                        .secondary
                        .connection_failed(&LossReason::Other(e.to_string())),
                }
            }
            Event::ConnectFailed { attempt, error } => {
                if self.attempt != Some(attempt) {
                    return;
                }
                self.attempt = None;
                self.report_connection("disconnected");
                tracing::debug!(target: LOG_TARGET, "connection attempt failed: {error}");
                self.secondary
                    .connection_failed(&LossReason::Other(error.to_string()));
            }
            Event::Data { link, bytes } => {
                if self.link.as_ref().is_some_and(|l| l.id == link) {
                    self.secondary.data_received(&bytes);
                    self.sync_at = Some(Instant::now() + self.options.idle_sync);
                }
            }
            Event::Closed { link, error } => {
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
                self.secondary.connection_lost(&reason);
            }
            Event::Stop => {}
        }
    }

    /// Performs every queued action.
    fn dispatch(&mut self) {
        while let Some(action) = self.secondary.poll_action() {
            match action {
                Action::Connect(address) => {
                    self.next_id += 1;
                    let attempt = self.next_id;
                    self.attempt = Some(attempt);
                    self.report_connection("connecting");
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
                        self.secondary
                            .connection_failed(&LossReason::Other(e.to_string()));
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
                Action::Disconnect => self.drop_link(),
                Action::SetTimer { timer, delay } => self.timers.set(timer, Instant::now(), delay),
                Action::CancelTimer(timer) => self.timers.cancel(timer),
                Action::Invalidate { tid, oids } => {
                    tracing::debug!(target: LOG_TARGET, "committed {tid:?}: {} objects", oids.len());
                    if let Some(status) = &self.status {
                        status.committed(self.secondary.storage().size());
                    }
                }
            }
        }
    }

    fn start_link(&mut self, stream: Stream) -> io::Result<()> {
        stream.set_write_timeout(Some(self.options.write_timeout))?;
        let reader = stream.try_clone()?;
        self.next_id += 1;
        let id = self.next_id;
        let sender = self.sender.clone();
        let read_size = self.options.read_size.max(1);
        thread::Builder::new()
            .name("zrs-reader".into())
            .spawn(move || read_loop(reader, id, read_size, sender))?;
        self.link = Some(Link {
            id,
            writer: stream,
            write_failed: false,
        });
        Ok(())
    }

    /// Closes the connection without reporting it (the secondary already counts it lost).
    fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            let _ = link.writer.shutdown();
        }
    }
}

/// The reader thread: forwards what the socket yields until it ends or the loop is gone.
fn read_loop(mut stream: Stream, link: u64, read_size: usize, events: SyncSender<Event>) {
    let mut buf = vec![0u8; read_size];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                let _ = events.send(Event::Closed { link, error: None });
                return;
            }
            Ok(n) => {
                let bytes = buf[..n].to_vec();
                if events.send(Event::Data { link, bytes }).is_err() {
                    return;
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
