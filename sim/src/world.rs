//! The simulated world of one run: the reactor, the network, the secondary under test and
//! the primary database — and the dispatch of the secondary's actions, which is all the
//! "driver" the simulator is.
//!
//! Secondaries are kept by generation: a scenario may close one and open another on the
//! same storage, and the first one's already-scheduled calls still fire on it, as in the
//! reference harness (where the reactor holds the old factory's bound methods).

use std::time::Duration;

use zrs::protocol::framing::frame;
use zrs::protocol::message::{Message, RecordHeader, TransactionHeader};
use zrs::secondary::{Action, LossReason, Secondary, Timer};
use zrs::storage::Storage;
use zrs::{Oid, Tid};

use crate::network::{peer, Chunking, Network};
use crate::primary::{Database, Transaction};
use crate::reactor::{DelayedCall, Reactor};

/// A secondary over any storage.
pub type SimSecondary = Secondary<Box<dyn Storage + Send>>;

/// What went wrong in a step (not in the secondary: those are logged by it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorldError {
    #[error("no secondary is open")]
    NoSecondary,
    #[error("no connection attempt is waiting (clients is empty)")]
    NoAttempt,
    #[error("not connected")]
    NotConnected,
    #[error("the secondary wrote nothing more to read")]
    NothingToRead,
    #[error("what the secondary wrote is not framed: {0}")]
    BadOutput(String),
    #[error("no transaction to send: the primary has nothing after {0:?}")]
    NothingToSend(Tid),
    #[error("no transaction begun: send T first")]
    NoCurrentTransaction,
    #[error("the transaction has no more records")]
    NoMoreRecords,
}

/// What the primary side of the network has sent of its transactions.
#[derive(Debug, Default, Clone)]
pub struct Feed {
    /// `trans.tid`: the last transaction whose `C` was sent.
    pub sent: Tid,
    /// The transaction being sent (its index), and how many of its records went out.
    pub current: Option<(usize, usize)>,
}

/// One run's world.
pub struct World {
    pub reactor: Reactor,
    pub network: Network,
    /// Every secondary opened, by generation; the last is the current one.
    pub secondaries: Vec<SimSecondary>,
    /// Which generation owns each pending call and attempt, by call number / port.
    owners: Vec<(u64, usize)>,
    attempt_owner: Option<usize>,
    pub primary: Database,
    pub feed: Feed,
    pub chunking: Chunking,
    /// Committed transactions the secondary reported, for invalidation.
    pub invalidations: Vec<(Tid, Vec<Oid>)>,
}

impl Default for World {
    fn default() -> World {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        World {
            reactor: Reactor::new(),
            network: Network::new(),
            secondaries: Vec::new(),
            owners: Vec::new(),
            attempt_owner: None,
            primary: Database::new(),
            feed: Feed::default(),
            chunking: Chunking::Doubling,
            invalidations: Vec::new(),
        }
    }

    pub fn secondary(&self) -> Result<&SimSecondary, WorldError> {
        self.secondaries.last().ok_or(WorldError::NoSecondary)
    }

    fn current(&self) -> Result<usize, WorldError> {
        self.secondaries
            .len()
            .checked_sub(1)
            .ok_or(WorldError::NoSecondary)
    }

    /// Adds a secondary (already constructed, with its opening actions queued).
    pub fn open(&mut self, secondary: SimSecondary) {
        self.secondaries.push(secondary);
        let generation = self.secondaries.len() - 1;
        self.dispatch(generation);
    }

    /// Performs every action the secondary of `generation` queued.
    fn dispatch(&mut self, generation: usize) {
        while let Some(action) = self.secondaries[generation].poll_action() {
            match action {
                Action::Connect(_) => {
                    self.network.start_attempt();
                    self.attempt_owner = Some(generation);
                }
                Action::AbortConnect => {
                    self.network.abort_attempt();
                    self.attempt_owner = None;
                }
                Action::Transmit(bytes) => self.network.write(&bytes),
                Action::Disconnect => self.network.connection = None,
                Action::SetTimer { timer, delay } => {
                    let n = self.reactor.call_later(timer, delay);
                    self.owners.push((n, generation));
                }
                Action::CancelTimer(timer) => {
                    // Cancel this generation's call of that kind.
                    let owned: Vec<u64> = self
                        .owners
                        .iter()
                        .filter(|(_, g)| *g == generation)
                        .map(|(n, _)| *n)
                        .collect();
                    if let Some(call) = self
                        .reactor
                        .later()
                        .iter()
                        .find(|c| c.timer == timer && owned.contains(&c.number))
                        .cloned()
                    {
                        self.reactor.cancel_number(call.number);
                        self.owners.retain(|(n, _)| *n != call.number);
                    }
                }
                Action::Invalidate { tid, oids } => self.invalidations.push((tid, oids)),
            }
        }
    }

    fn owner_of(&mut self, call: &DelayedCall) -> Option<usize> {
        let i = self.owners.iter().position(|(n, _)| *n == call.number)?;
        Some(self.owners.remove(i).1)
    }

    /// Fires one delayed call on the secondary that scheduled it.
    pub fn fire(&mut self, call: DelayedCall) {
        if let Some(generation) = self.owner_of(&call) {
            self.secondaries[generation].timeout(call.timer);
            self.dispatch(generation);
        }
    }

    /// `doLater`: runs the calls queued now, in order.
    pub fn do_later(&mut self) {
        for call in self.reactor.take_all() {
            self.fire(call);
        }
    }

    /// Moves virtual time by `by`, firing what falls due in due order.
    pub fn advance(&mut self, by: Duration) {
        let to = self.reactor.now() + by;
        while let Some(call) = self.reactor.advance_to(to) {
            self.fire(call);
        }
    }

    /// The primary accepts the oldest attempt.
    pub fn accept(&mut self) -> Result<(), WorldError> {
        let attempt = self.network.take_attempt().ok_or(WorldError::NoAttempt)?;
        let generation = self.attempt_owner.take().ok_or(WorldError::NoAttempt)?;
        let port = attempt.port;
        self.network.establish(attempt);
        self.secondaries[generation].connected(&peer(port));
        self.dispatch(generation);
        Ok(())
    }

    /// The primary rejects the oldest attempt.
    pub fn reject(&mut self) -> Result<(), WorldError> {
        self.network.take_attempt().ok_or(WorldError::NoAttempt)?;
        let generation = self.attempt_owner.take().ok_or(WorldError::NoAttempt)?;
        self.secondaries[generation].connection_failed(&LossReason::Other("rejected".into()));
        self.dispatch(generation);
        Ok(())
    }

    /// The connection ends from the network's side, for `reason`.
    pub fn lose_connection(&mut self, reason: LossReason) -> Result<(), WorldError> {
        self.network
            .connection
            .take()
            .ok_or(WorldError::NotConnected)?;
        let generation = self.current()?;
        self.secondaries[generation].connection_lost(&reason);
        self.dispatch(generation);
        Ok(())
    }

    /// Closes the current secondary.
    pub fn close(&mut self) -> Result<(), WorldError> {
        let generation = self.current()?;
        if let Err(e) = self.secondaries[generation].close() {
            zrs::log::critical(zrs::secondary::LOGGER, &format!("closing the storage: {e}"));
        }
        self.dispatch(generation);
        Ok(())
    }

    /// Delivers bytes on the connection as the current chunking cuts them; stops when the
    /// secondary drops the connection (the rest is lost, as on a real socket).
    pub fn deliver(&mut self, bytes: &[u8]) -> Result<(), WorldError> {
        if self.network.connection.is_none() {
            return Err(WorldError::NotConnected);
        }
        let generation = self.current()?;
        let chunking = self.chunking.clone();
        for chunk in chunking.split(bytes) {
            if self.network.connection.is_none() {
                break;
            }
            self.secondaries[generation].data_received(chunk);
            self.dispatch(generation);
        }
        Ok(())
    }

    /// Sends one message: framed, hashed into the connection's md5, delivered.
    pub fn send_message(&mut self, payload: &[u8]) -> Result<(), WorldError> {
        let connection = self
            .network
            .connection
            .as_mut()
            .ok_or(WorldError::NotConnected)?;
        connection.md5.update(payload);
        self.deliver(&frame(payload))
    }

    /// The next message the secondary wrote.
    pub fn read(&mut self) -> Result<Vec<u8>, WorldError> {
        let connection = self
            .network
            .connection
            .as_mut()
            .ok_or(WorldError::NotConnected)?;
        connection
            .read()
            .map_err(|e| WorldError::BadOutput(e.to_string()))?
            .ok_or(WorldError::NothingToRead)
    }

    /// The primary's next transaction to send: the one after `trans`.
    fn next_transaction(&self) -> Result<usize, WorldError> {
        let i = self
            .primary
            .transactions()
            .partition_point(|t| t.tid <= self.feed.sent);
        if i < self.primary.transactions().len() {
            Ok(i)
        } else {
            Err(WorldError::NothingToSend(self.feed.sent))
        }
    }

    fn transaction(&self, index: usize) -> &Transaction {
        &self.primary.transactions()[index]
    }

    /// Sends the `T` of the next transaction (starting it over if begun before).
    pub fn send_t(&mut self) -> Result<(), WorldError> {
        let index = self.next_transaction()?;
        let t = self.transaction(index);
        let message = Message::Transaction(TransactionHeader {
            tid: t.tid,
            status: t.status,
            user: t.user.clone(),
            description: t.description.clone(),
            extension: t.extension.clone(),
        });
        self.feed.current = Some((index, 0));
        self.send_message(&message.encode_fast())
    }

    /// Sends the current transaction's next record: `S`, then its data.
    pub fn send_s(&mut self) -> Result<(), WorldError> {
        let (index, sent) = self.feed.current.ok_or(WorldError::NoCurrentTransaction)?;
        let t = self.transaction(index);
        let record = t.records.get(sent).ok_or(WorldError::NoMoreRecords)?;
        let header = Message::Store(RecordHeader {
            oid: record.oid,
            serial: t.tid,
            version: Vec::new(),
            data_txn: record.data_txn,
        })
        .encode_fast();
        let data = record.data.clone().unwrap_or_default();
        self.feed.current = Some((index, sent + 1));
        self.send_message(&header)?;
        self.send_message(&data)
    }

    /// Sends the current transaction's `C` with the connection's running md5 (or, `legacy`,
    /// without a checksum, as old primaries do).
    pub fn send_c(&mut self, legacy: bool) -> Result<(), WorldError> {
        let (index, _) = self.feed.current.ok_or(WorldError::NoCurrentTransaction)?;
        let digest = self
            .network
            .connection
            .as_ref()
            .ok_or(WorldError::NotConnected)?
            .md5
            .digest();
        self.feed.sent = self.transaction(index).tid;
        self.feed.current = None;
        self.send_message(
            &Message::Commit {
                checksum: (!legacy).then_some(digest),
            }
            .encode_fast(),
        )
    }

    /// Sends the next transaction whole.
    pub fn send_transaction(&mut self) -> Result<(), WorldError> {
        self.send_t()?;
        let (index, _) = self.feed.current.expect("send_t set it");
        for _ in 0..self.transaction(index).records.len() {
            self.send_s()?;
        }
        self.send_c(false)
    }

    /// Whether the secondary of the current generation is connected.
    pub fn connected(&self) -> bool {
        self.network.connection.is_some()
    }

    /// Calls scheduled by the current generation for `timer`.
    pub fn pending(&self, timer: Timer) -> usize {
        let Ok(generation) = self.current() else {
            return 0;
        };
        self.reactor
            .later()
            .iter()
            .filter(|c| {
                c.timer == timer
                    && self
                        .owners
                        .iter()
                        .any(|(n, g)| *n == c.number && *g == generation)
            })
            .count()
    }
}
