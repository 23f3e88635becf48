//! The secondary: a sans-IO state machine that keeps a storage in step with a primary.
//!
//! It holds no socket, no clock and no randomness. A driver (the simulator in `zrs-sim`, or
//! [`crate::net`] over real TCP) feeds it events and performs the [`Action`]s it queues:
//!
//! - events: [`Secondary::connected`], [`Secondary::connection_failed`],
//!   [`Secondary::connection_lost`], [`Secondary::data_received`] (or
//!   [`Secondary::data_received_scanned`]), [`Secondary::timeout`],
//!   [`Secondary::set_replication_address`], [`Secondary::close`];
//! - work out: [`Secondary::poll_action`] — connect, abort an attempt, transmit, disconnect,
//!   set and cancel timers, invalidate committed objects.
//!
//! It plays the parts zc.zrs splits between `SecondaryFactory`, `SecondaryProtocol` and the
//! Twisted connector: connection lifecycle, handshake, replication stream, keep-alive,
//! reconnects, close. It logs what they log, where they log it (`zc.zrs.secondary`, and the
//! connector's `Starting factory` / `Stopping factory` under `zc.zrs.reactor`), so that a
//! transcript of a run reads like the reference's.
//!
//! The running md5 that checks each transaction is kept by a
//! [`ChecksumScanner`](crate::protocol::checksum::ChecksumScanner) over the received bytes.
//! By default the secondary runs it itself; a driver may take it when the connection is made
//! ([`Secondary::take_checksum_scanner`]), run it on another thread, and hand the input over
//! with its checkpoints. Both compute the same checksums from the same bytes; only where md5
//! runs differs.
//!
//! To clients it is a read-only storage: it implements [`ReadStorage`](crate::storage::ReadStorage)
//! (reads pass through) and nothing that writes.

mod action;
mod config;
mod read_only;
mod stream;

use std::collections::VecDeque;

pub use action::{Action, LossReason, Timer};
pub use config::{format_delay, Address, Config};
pub use stream::InputError;

use crate::log;
use crate::planted::{planted, Bug};
use crate::protocol::framing::frame;
use crate::protocol::{handshake, ZRS_2_0, ZRS_2_1};
use crate::storage::{Storage, StorageError};
use stream::Stream;

/// The logger zc.zrs's secondary logs under.
pub const LOGGER: &str = "zc.zrs.secondary";
/// The logger Twisted's messages reach through zc.zrs.
pub const REACTOR_LOGGER: &str = "zc.zrs.reactor";
/// How Twisted names the secondary's factory in `Starting factory` / `Stopping factory`.
const FACTORY: &str = "<zc.zrs.secondary.SecondaryFactory instance>";

/// Where the secondary is in its connection lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No address yet, or waiting for the reconnect timer.
    Idle,
    /// A connection attempt is in progress.
    Connecting,
    /// Connected: replicating.
    Connected,
    /// Closed for good.
    Closed,
}

struct Connection {
    /// The peer as zc.zrs prints it, followed by `: `.
    peer: String,
    stream: Stream,
    /// Whether a keep-alive is scheduled (the first firing only reschedules).
    keep_alive_pending: bool,
    keep_alive_started: bool,
    /// The start tid sent in the handshake.
    start: crate::tid::Tid,
    /// Whether the primary sent anything on this connection.
    received: bool,
}

/// A replicating secondary over storage `S`.
pub struct Secondary<S: Storage> {
    storage: S,
    config: Config,
    phase: Phase,
    connection: Option<Connection>,
    actions: VecDeque<Action>,
    /// For the planted bug `StartFromReceived` only: the last `T` received, committed or
    /// not (never set otherwise).
    last_received: Option<crate::tid::Tid>,
}

impl<S: Storage> Secondary<S> {
    /// Opens a secondary over `storage`; connects at once when an address is configured.
    pub fn new(storage: S, config: Config) -> Secondary<S> {
        let mut secondary = Secondary {
            storage,
            config,
            phase: Phase::Idle,
            connection: None,
            actions: VecDeque::new(),
            last_received: None,
        };
        log::info(
            LOGGER,
            &format!(
                "Opening {} {}",
                secondary.storage.name(),
                secondary.address_repr()
            ),
        );
        if secondary.config.address.is_some() {
            secondary.connect();
        }
        secondary
    }

    /// The protocol id this secondary speaks: `zrs2.1` only for storages that keep blobs.
    pub fn protocol(&self) -> &'static [u8] {
        if self.storage.keeps_blobs() {
            ZRS_2_1
        } else {
            ZRS_2_0
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether a replicated transaction is begun but not yet committed.
    pub fn in_transaction(&self) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|c| c.stream.in_transaction())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The storage replicated into (to read it; writing goes through replication only).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Sets the primary's address; connects now if there was none before.
    pub fn set_replication_address(&mut self, address: Address) {
        let had = self.config.address.replace(address).is_some();
        if !had {
            self.connect();
        }
    }

    /// The connection attempt succeeded: send the handshake and start replicating.
    pub fn connected(&mut self, peer: &str) {
        if self.phase != Phase::Connecting {
            debug_assert!(false, "connected while {:?}", self.phase);
            return;
        }
        let mut start = self.storage.last_transaction();
        if planted(Bug::StartFromReceived) {
            start = start.max(self.last_received.unwrap_or(start));
        }
        for message in handshake::hello(self.protocol(), start) {
            self.transmit(message);
        }
        self.phase = Phase::Connected;
        self.connection = Some(Connection {
            peer: format!("{peer}: "),
            stream: Stream::new(
                start,
                self.config.frame_limit,
                self.config.format,
                self.config.py2_extensions,
            ),
            keep_alive_pending: false,
            keep_alive_started: false,
            start,
            received: false,
        });
        self.info("Connected");
        if !self.config.keep_alive_delay.is_zero() {
            self.keep_alive();
        }
    }

    /// The connection attempt failed or was rejected.
    pub fn connection_failed(&mut self, _reason: &LossReason) {
        if self.phase != Phase::Connecting {
            debug_assert!(false, "connection failed while {:?}", self.phase);
            return;
        }
        self.phase = Phase::Idle;
        self.stop_factory();
        if planted(Bug::NoReconnectAfterReject) {
            return;
        }
        self.schedule_reconnect();
    }

    /// The established connection ended (the peer closed it, or it broke).
    pub fn connection_lost(&mut self, reason: &LossReason) {
        if self.phase != Phase::Connected {
            debug_assert!(false, "connection lost while {:?}", self.phase);
            return;
        }
        let refused = self.connection.as_ref().and_then(|c| {
            let silent = *reason == LossReason::Done && !c.received;
            (silent && c.start != crate::tid::Tid::ZERO).then(|| (c.peer.clone(), c.start))
        });
        self.lose_connection(reason);
        if let Some((peer, start)) = refused {
            // The protocol has no error message: a primary that refuses a start just
            // closes. Say what that means, once per such connection.
            log::warning(
                LOGGER,
                &format!(
                    "{peer}The primary closed the connection without sending anything after \
                     start {} ({start}). Unless it was being stopped, it refused the start: a \
                     zrs primary refuses a tid it holds no transaction of (this secondary then \
                     holds another database's history: a wrong address, or a failover to a \
                     primary that diverged; rebuild it from the primary), and one later than \
                     its last transaction (TidTooHigh: the primary is behind this secondary). \
                     The primary's log says which.",
                    crate::repr::py3_bytes_repr(start.as_bytes())
                ),
            );
        }
    }

    /// Takes the checksum scanner of the connection just made, for the driver to run over
    /// the input itself (on another thread) and feed the secondary through
    /// [`data_received_scanned`](Self::data_received_scanned) from then on. `None` when not
    /// connected or already taken.
    pub fn take_checksum_scanner(&mut self) -> Option<crate::protocol::checksum::ChecksumScanner> {
        self.connection.as_mut()?.stream.take_scanner()
    }

    /// Bytes arrived from the primary.
    pub fn data_received(&mut self, bytes: &[u8]) {
        self.receive(bytes, None);
    }

    /// Bytes arrived from the primary, with the checkpoints the scanner taken by
    /// [`take_checksum_scanner`](Self::take_checksum_scanner) made of them.
    pub fn data_received_scanned(
        &mut self,
        bytes: &[u8],
        checkpoints: Vec<crate::protocol::checksum::StreamChecksum>,
    ) {
        self.receive(bytes, Some(checkpoints));
    }

    fn receive(
        &mut self,
        bytes: &[u8],
        checkpoints: Option<Vec<crate::protocol::checksum::StreamChecksum>>,
    ) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        connection.received |= !bytes.is_empty();
        let actions = &mut self.actions;
        let check_checksums = self.config.check_checksums && !planted(Bug::IgnoreChecksum);
        let storage = &mut self.storage;
        let committed = &mut |c: stream::Committed| {
            actions.push_back(Action::Invalidate {
                tid: c.tid,
                oids: c.oids,
            })
        };
        let stream = &mut connection.stream;
        let result = match checkpoints {
            None => stream.receive(bytes, storage, check_checksums, committed),
            Some(checkpoints) => {
                stream.receive_scanned(bytes, checkpoints, storage, check_checksums, committed)
            }
        };
        if let Err(error) = result {
            let peer = &connection.peer;
            log::critical(LOGGER, &format!("{peer}Input data error\n{error}"));
            // As zc.zrs: disconnect; the loss aborts the partial transaction and, since we
            // are not closed, a reconnect follows.
            self.actions.push_back(Action::Disconnect);
            self.lose_connection(&LossReason::Done);
        }
    }

    /// A timer set by [`Action::SetTimer`] fired.
    pub fn timeout(&mut self, timer: Timer) {
        match timer {
            Timer::KeepAlive => {
                if let Some(connection) = self.connection.as_mut() {
                    connection.keep_alive_pending = false;
                    self.keep_alive();
                }
            }
            Timer::Connect => self.connect(),
        }
    }

    /// Makes every replicated transaction durable ([`Storage::sync`]). The driver calls it
    /// when the input goes idle, so a storage that batches its fsyncs during catch-up
    /// syncs once per burst; a no-op for storages that fsync at every commit.
    ///
    /// A failed sync leaves the storage failed (its unsynced writes of unknown state): the
    /// secondary then drops its connection, and reopens the storage before it connects again.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        let result = self.storage.sync();
        if let (Err(e), Some(connection)) = (&result, &self.connection) {
            log::critical(LOGGER, &format!("{}Storage error\n{e}", connection.peer));
            self.actions.push_back(Action::Disconnect);
            self.lose_connection(&LossReason::Done);
        }
        result
    }

    /// Closes the secondary: aborts any partial transaction, drops the connection, never
    /// reconnects, and closes the storage.
    ///
    /// A reconnect already pending is left to fire, as in zc.zrs; it then finds the
    /// secondary closed and stops at once.
    pub fn close(&mut self) -> Result<(), StorageError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        log::info(
            LOGGER,
            &format!("Closing {} {}", self.storage.name(), self.address_repr()),
        );
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        match phase {
            Phase::Connecting => {
                self.actions.push_back(Action::AbortConnect);
                self.stop_factory();
            }
            Phase::Connected => {
                self.actions.push_back(Action::Disconnect);
                self.drop_connection(&LossReason::Done);
            }
            Phase::Idle | Phase::Closed => {}
        }
        self.storage.close()
    }

    fn connect(&mut self) {
        log::info(REACTOR_LOGGER, &format!("Starting factory {FACTORY}"));
        let Some(address) = self.config.address.clone() else {
            return;
        };
        if self.phase != Phase::Closed && !self.recover_storage() {
            // Not while the storage cannot take transactions: try again later.
            self.stop_factory();
            self.schedule_reconnect();
            return;
        }
        self.actions.push_back(Action::Connect(address));
        if self.phase == Phase::Closed {
            // As zc.zrs's factory once closed: the connector has started its attempt (and
            // taken a client port) when the factory hears of it and stops it at once.
            self.actions.push_back(Action::AbortConnect);
            self.stop_factory();
            return;
        }
        self.phase = Phase::Connecting;
    }

    /// A storage that failed (a failed write or fsync: its state unknown) refuses
    /// everything until reopened from what is known durable; zc.zrs would go on failing
    /// each transaction. Whether the storage can take transactions now.
    fn recover_storage(&mut self) -> bool {
        match self.storage.recover() {
            Ok(false) => true,
            Ok(true) => {
                log::info(
                    LOGGER,
                    &format!("Reopened {} after a storage failure", self.storage.name()),
                );
                true
            }
            Err(e) => {
                log::critical(
                    LOGGER,
                    &format!(
                        "{} failed and cannot be reopened yet: {e}",
                        self.storage.name()
                    ),
                );
                false
            }
        }
    }

    fn keep_alive(&mut self) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        // The first call only schedules; later firings send an empty message.
        if connection.keep_alive_started {
            self.actions.push_back(Action::Transmit(frame(b"")));
        }
        connection.keep_alive_started = true;
        connection.keep_alive_pending = true;
        self.actions.push_back(Action::SetTimer {
            timer: Timer::KeepAlive,
            delay: self.config.keep_alive_delay,
        });
    }

    /// A connection lost while not closed: the protocol's side (`drop_connection`), then
    /// the factory's — the connector stops, and a reconnect is scheduled.
    fn lose_connection(&mut self, reason: &LossReason) {
        self.drop_connection(reason);
        self.phase = Phase::Idle;
        self.stop_factory();
        self.schedule_reconnect();
    }

    /// The protocol's side of a lost connection: stop keep-alives, abort, log.
    fn drop_connection(&mut self, reason: &LossReason) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if connection.keep_alive_pending && !planted(Bug::KeepAliveAfterDisconnect) {
            self.actions
                .push_back(Action::CancelTimer(Timer::KeepAlive));
        }
        if planted(Bug::StartFromReceived) {
            self.last_received = connection.stream.transaction().or(self.last_received);
        }
        let kept = planted(Bug::KeepPartialTransaction)
            || (planted(Bug::KeepBegunTransaction) && connection.stream.records() == 0);
        if connection.stream.in_transaction() && !kept {
            self.storage.tpc_abort();
        }
        log::info(LOGGER, &format!("{}Disconnected {reason}", connection.peer));
    }

    fn schedule_reconnect(&mut self) {
        if self.phase != Phase::Closed {
            self.actions.push_back(Action::SetTimer {
                timer: Timer::Connect,
                delay: self.config.reconnect_delay,
            });
        }
    }

    fn stop_factory(&self) {
        log::info(REACTOR_LOGGER, &format!("Stopping factory {FACTORY}"));
    }

    fn transmit(&mut self, bytes: Vec<u8>) {
        self.actions.push_back(Action::Transmit(bytes));
    }

    fn info(&self, message: &str) {
        let peer = self.connection.as_ref().map_or("", |c| c.peer.as_str());
        log::info(LOGGER, &format!("{peer}{message}"));
    }

    fn address_repr(&self) -> String {
        self.config
            .address
            .as_ref()
            .map_or_else(|| "None".to_string(), |a| a.to_string())
    }
}

#[cfg(test)]
mod tests;
