//! The simulated world of one run: the reactor, the network, the secondary under test and
//! the primary node — and the dispatch of the secondary's actions, which is all the
//! "driver" the simulator is.
//!
//! Secondaries are kept by generation: a scenario may close one and open another on the
//! same storage, and the first one's already-scheduled calls still fire on it, as in the
//! reference harness (where the reactor holds the old factory's bound methods). A crashed
//! generation is dead: its calls, its attempt and its connection vanish with its process.
//!
//! Two things can play the primary on a connection. The scripted steps (`send …`, `read`)
//! play it by hand, byte for byte, through the one stream encoder. Or the connection
//! reaches the primary node ([`PrimaryNode`]: the real [`zrs::primary::Primary`] over a
//! real storage the workload commits into) at its first `serve`: the handshake the
//! secondary wrote goes to it, and what it transmits crosses a [`Link`], whose faults
//! (corrupt, truncate, duplicate, bad checksum, chunking) are the network's. Besides
//! these: crashes and restarts of either side, outages, and the heal phase that checks
//! the secondary catches up.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use zrs::primary::ConnectionId;
use zrs::protocol::framing::frame;
use zrs::protocol::handshake::{HandshakeReader, Received};
use zrs::protocol::message::{RecordHeader, TransactionHeader};
use zrs::protocol::{FrameSink, StreamEncoder};
use zrs::secondary::{Action, LossReason, Phase, Secondary, Timer};
use zrs::storage::ReadStorage;
use zrs::{Oid, Tid};

use crate::clients::Clients;
use crate::disk::CrashReport;
use crate::link::{Link, Source};
use crate::network::{peer, Chunking, Network};
use crate::primary::database::{DatabaseError, START_TIME};
use crate::primary::{Change, Database, Meta, Transaction};
use crate::primary_node::PrimaryNode;
use crate::reactor::{DelayedCall, Reactor};
use crate::scenario::literal::repr;
use crate::scenario::ClientAction;
use crate::storage::SimStorage;
use zrs::pickle::Value as PickleValue;

/// A simulated secondary.
pub type SimSecondary = Secondary<SimStorage>;

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
    #[error("the secondary has not sent its handshake")]
    NoHandshake,
    #[error("nothing to damage: the primary has nothing more to send")]
    NothingToDamage,
    #[error("the secondary is running: close or crash it first")]
    Running,
    #[error("the secondary is not running")]
    NotRunning,
    #[error("no checkpoint to fail over to (primary checkpoint first)")]
    NoCheckpoint,
    #[error("reopening the storage: {0}")]
    Reopen(String),
}

/// Why the workload could not commit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// The primary node's storage refused what the workload wrote.
    #[error("{0}")]
    Storage(String),
}

/// What the world noticed that an oracle judges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The protocol primary read a handshake; `committed` is the storage's last tid then.
    Handshake {
        protocol: Vec<u8>,
        start: Tid,
        committed: Tid,
        /// The secondary's storage keeps blobs (it must then ask for `zrs2.1`).
        blobs: bool,
    },
    /// The secondary sent something other than a keep-alive after its handshake.
    Unexpected(Vec<u8>),
    /// The secondary's first message is not a protocol id a primary accepts.
    BadHandshake(String),
    /// The heal phase ended with the secondary behind.
    NotCaughtUp {
        bound: Duration,
        primary: Tid,
        secondary: Tid,
    },
}

/// Encoded messages, each kept apart (each is delivered on its own).
struct Messages(Vec<Vec<u8>>);

impl FrameSink for Messages {
    fn frame(&mut self, payload: &[u8]) {
        self.0.push(zrs::protocol::framing::frame(payload));
    }
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
    /// Transactions the secondaries committed.
    pub replicated: u64,
    /// Which generations crashed.
    dead: Vec<bool>,
    /// The primary node: a real storage the workload commits into, and the real primary.
    pub node: PrimaryNode,
    /// The link of the connection the primary node serves (faults act on it).
    pub link: Option<Link>,
    /// The handshake the secondary sent on that connection (judges what follows).
    handshake: Option<HandshakeReader>,
    /// Scripted clients of the primary node (`client …` steps).
    clients: Clients,
    /// The history `primary checkpoint` remembered.
    checkpoint: Option<Database>,
    /// The stream `chunking random` draws sizes from.
    chunk_rng: Option<ChaCha8Rng>,
    /// Whether the primary's tids come from the virtual clock.
    pub virtual_clock: bool,
    /// What oracles are to judge, oldest first (they take it).
    pub events: Vec<Event>,
    /// How many times a storage was reopened (after a crash or close): its whole content
    /// is then checked again.
    pub reopens: u64,
}

impl Default for World {
    fn default() -> World {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        let primary = Database::new();
        let mut node = PrimaryNode::default();
        for t in primary.transactions() {
            // The database's creation (the root): a fresh storage always takes it.
            node.commit(t)
                .expect("an empty storage takes the first transaction");
        }
        World {
            reactor: Reactor::new(),
            network: Network::new(),
            secondaries: Vec::new(),
            owners: Vec::new(),
            attempt_owner: None,
            primary,
            feed: Feed::default(),
            chunking: Chunking::Doubling,
            invalidations: Vec::new(),
            replicated: 0,
            dead: Vec::new(),
            node,
            link: None,
            handshake: None,
            clients: Clients::default(),
            checkpoint: None,
            chunk_rng: None,
            virtual_clock: false,
            events: Vec::new(),
            reopens: 0,
        }
    }

    /// Whether generation `g` crashed.
    pub fn is_dead(&self, g: usize) -> bool {
        self.dead.get(g).copied().unwrap_or(false)
    }

    /// Whether the current secondary is running (opened, neither closed nor crashed).
    pub fn running(&self) -> bool {
        match self.current() {
            Ok(g) => !self.dead[g] && !self.secondaries[g].is_closed(),
            Err(_) => false,
        }
    }

    /// The generation that owns the waiting attempt, if any.
    pub fn attempt_owner(&self) -> Option<usize> {
        self.attempt_owner
    }

    /// Calls pending for `timer`, scheduled by generation `g`.
    pub fn pending_of(&self, g: usize, timer: Timer) -> usize {
        self.reactor
            .later()
            .iter()
            .filter(|c| {
                c.timer == timer && self.owners.iter().any(|(n, o)| *n == c.number && *o == g)
            })
            .count()
    }

    /// Sets how deliveries are cut.
    pub fn set_chunking(&mut self, chunking: Chunking) {
        self.chunk_rng = match chunking {
            Chunking::Random(seed) => Some(ChaCha8Rng::seed_from_u64(seed)),
            _ => None,
        };
        self.chunking = chunking;
    }

    /// Commits on the primary (at the virtual clock's time, when it is on).
    pub fn commit(&mut self, changes: &[Change], meta: &Meta) -> Result<Tid, WorkloadError> {
        self.sync_clock();
        let tid = self.primary.commit(changes, meta)?;
        self.store_last()?;
        Ok(tid)
    }

    /// Undoes the `n`-th last transaction on the primary.
    pub fn undo(&mut self, n: usize) -> Result<Tid, WorkloadError> {
        self.sync_clock();
        let tid = self.primary.undo_back(n)?;
        self.store_last()?;
        Ok(tid)
    }

    /// Writes the workload's last transaction into the primary node's storage.
    fn store_last(&mut self) -> Result<(), WorkloadError> {
        let last = self.primary.transactions().last().expect("just committed");
        self.node.commit(last).map_err(WorkloadError::Storage)
    }

    fn sync_clock(&mut self) {
        if self.virtual_clock {
            self.primary
                .set_clock(START_TIME as f64 + self.reactor.now().as_secs_f64());
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
        self.dead.push(false);
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
                Action::Disconnect => self.end_connection(Some(LossReason::Done)),
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
                Action::Invalidate { tid, oids } => {
                    self.replicated += 1;
                    self.invalidations.push((tid, oids))
                }
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
        self.advance_to(to);
    }

    /// Moves virtual time to `to`, firing what falls due in due order.
    pub fn advance_to(&mut self, to: Duration) {
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

    /// The connection (if any) ends; the primary node hears of it for `reason` if it
    /// serves the connection (`None`: it does not, its process is gone).
    fn end_connection(&mut self, reason: Option<LossReason>) {
        let Some(connection) = self.network.connection.take() else {
            return;
        };
        if let Some(link) = self.link.take() {
            self.handshake = None;
            if let (Some(reason), true) = (reason, link.port == connection.port) {
                self.node
                    .connection_lost(ConnectionId(u64::from(link.port)), &reason);
            }
        }
    }

    /// The connection ends from the network's side, for `reason`.
    pub fn lose_connection(&mut self, reason: LossReason) -> Result<(), WorldError> {
        if self.network.connection.is_none() {
            return Err(WorldError::NotConnected);
        }
        self.end_connection(Some(reason.clone()));
        let generation = self.current()?;
        self.secondaries[generation].connection_lost(&reason);
        self.dispatch(generation);
        Ok(())
    }

    /// Gives the current secondary its primary's address.
    pub fn set_address(&mut self, address: zrs::secondary::Address) -> Result<(), WorldError> {
        let generation = self.current()?;
        self.secondaries[generation].set_replication_address(address);
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
        if self.chunk_rng.is_some() {
            let mut rest = bytes;
            while !rest.is_empty() && self.network.connection.is_some() {
                let rng = self.chunk_rng.as_mut().expect("checked above");
                let n = random_chunk(rng).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                self.secondaries[generation].data_received(chunk);
                self.dispatch(generation);
            }
            return Ok(());
        }
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
        self.send_with(|encoder, out| encoder.message(payload, out))
    }

    /// Encodes with the connection's encoder and delivers each message on its own (as
    /// the reference harness does: chunking restarts at every message).
    fn send_with(
        &mut self,
        encode: impl FnOnce(&mut StreamEncoder, &mut Messages),
    ) -> Result<(), WorldError> {
        let connection = self
            .network
            .connection
            .as_mut()
            .ok_or(WorldError::NotConnected)?;
        let mut messages = Messages(Vec::new());
        encode(&mut connection.encoder, &mut messages);
        for message in messages.0 {
            self.deliver(&message)?;
        }
        Ok(())
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
        let header = TransactionHeader {
            tid: t.tid,
            status: t.status,
            user: t.user.clone(),
            description: t.description.clone(),
            extension: t.extension.clone(),
        };
        self.feed.current = Some((index, 0));
        self.send_with(|encoder, out| encoder.transaction_header(&header, out))
    }

    /// Sends the current transaction's next record: `S`, then its data.
    pub fn send_s(&mut self) -> Result<(), WorldError> {
        let (index, sent) = self.feed.current.ok_or(WorldError::NoCurrentTransaction)?;
        let t = self.transaction(index);
        let record = t.records.get(sent).ok_or(WorldError::NoMoreRecords)?;
        let header = RecordHeader {
            oid: record.oid,
            serial: t.tid,
            version: Vec::new(),
            data_txn: record.data_txn,
        };
        let data = record.data.clone();
        self.feed.current = Some((index, sent + 1));
        self.send_with(|encoder, out| encoder.store(&header, data.as_deref(), out))
    }

    /// Sends the current transaction's `C` with the connection's running md5 (or, `legacy`,
    /// without a checksum, as old primaries do).
    /// Without a transaction of the primary's begun (`send T`), it ends a transaction
    /// scripted with `send message` / `send raw` (blob records, say).
    pub fn send_c(&mut self, legacy: bool) -> Result<(), WorldError> {
        if self.network.connection.is_none() {
            return Err(WorldError::NotConnected);
        }
        if let Some((index, _)) = self.feed.current.take() {
            self.feed.sent = self.transaction(index).tid;
        }
        self.send_with(|encoder, out| {
            if legacy {
                encoder.legacy_commit(out)
            } else {
                encoder.commit(out)
            }
        })
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

    /// The link of the current connection to the primary node, attaching the connection
    /// to the node first if it is new: the handshake the secondary wrote is read (and
    /// judged for the oracles) on its way to the real primary.
    fn attach(&mut self) -> Result<(), WorldError> {
        let port = self
            .network
            .connection
            .as_ref()
            .ok_or(WorldError::NotConnected)?
            .port;
        let id = ConnectionId(u64::from(port));
        if self.link.as_ref().map(|l| l.port) != Some(port) {
            self.link = None;
            let mut handshake = HandshakeReader::new(false);
            let message = self.read().map_err(|_| WorldError::NoHandshake)?;
            let protocol = match handshake.receive(&message) {
                Ok(_) => message,
                Err(e) => {
                    self.events.push(Event::BadHandshake(e.to_string()));
                    return Err(WorldError::NoHandshake);
                }
            };
            let message = self.read().map_err(|_| WorldError::NoHandshake)?;
            let Ok(Received::Start(start)) = handshake.receive(&message) else {
                self.events.push(Event::Unexpected(message));
                return Err(WorldError::NoHandshake);
            };
            let storage = self.secondary()?.storage();
            let (committed, blobs) = (storage.last_transaction(), storage.keeps_blobs());
            self.events.push(Event::Handshake {
                protocol: protocol.clone(),
                start,
                committed,
                blobs,
            });
            if let Some(address) = self.secondary()?.config().address.clone() {
                self.node.set_address(address);
            }
            self.link = Some(Link::new(port));
            self.handshake = Some(handshake);
            self.node.connected(id, &peer(port));
            self.node.data_received(id, &frame(&protocol));
            self.node.data_received(id, &frame(&message));
        }
        // After the handshake the secondary only sends keep-alives (empty messages).
        while let Ok(message) = self.read() {
            let handshake = self.handshake.as_mut().expect("set with the link");
            if handshake.receive(&message).is_err() {
                self.events.push(Event::Unexpected(message.clone()));
            }
            self.node.data_received(id, &frame(&message));
        }
        Ok(())
    }

    /// Takes up to `limit` bytes (all it can, if `None`) from the current link, its
    /// primary transmitting as the link drains.
    fn take(&mut self, limit: Option<usize>) -> Vec<u8> {
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        let id = ConnectionId(u64::from(link.port));
        let node = &mut self.node;
        link.take(limit, &mut || node.pull(id))
    }

    /// Closes the connections the primary closed: what it transmitted before is delivered
    /// first, then the secondary sees the connection end cleanly.
    fn primary_disconnects(&mut self) -> Result<(), WorldError> {
        let port = self.network.connection.as_ref().map(|c| c.port);
        let mut ours = false;
        for id in self.node.take_disconnects() {
            if self.clients.owns(id) {
                self.clients.closed_by_primary(id);
            } else if port.map(|p| ConnectionId(u64::from(p))) == Some(id) {
                ours = true;
            }
        }
        let Some(port) = port.filter(|_| ours) else {
            return Ok(());
        };
        let rest = self.take(None);
        if !rest.is_empty() {
            self.deliver(&rest)?;
        }
        if self.network.connection.as_ref().map(|c| c.port) == Some(port) {
            // The primary counts it gone already: only the secondary hears of it.
            self.network.connection = None;
            self.link = None;
            self.handshake = None;
            let generation = self.current()?;
            self.secondaries[generation].connection_lost(&LossReason::Done);
            self.dispatch(generation);
        }
        Ok(())
    }

    /// `serve`: the link delivers up to `limit` bytes (all, if `None`) of what the primary
    /// node sends the secondary. Returns how many bytes it delivered.
    pub fn serve(&mut self, limit: Option<usize>) -> Result<usize, WorldError> {
        self.attach()?;
        self.primary_disconnects()?;
        let bytes = self.take(limit);
        if !bytes.is_empty() {
            self.deliver(&bytes)?;
        }
        self.primary_disconnects()?;
        Ok(bytes.len())
    }

    /// A scripted client's step against the primary node; returns what it prints.
    pub fn client(
        &mut self,
        index: Option<usize>,
        action: &ClientAction,
    ) -> Result<Option<String>, String> {
        let node = &mut self.node;
        let printed = match action {
            ClientAction::Connect => {
                let port = self.network.take_port();
                self.clients.connect(port, node);
                None
            }
            ClientAction::Send(bytes) => {
                self.clients
                    .send(index, bytes, node)
                    .map_err(|e| e.to_string())?;
                None
            }
            ClientAction::Read { raw } => {
                let message = self.clients.read(index, node).map_err(|e| e.to_string())?;
                Some(if *raw {
                    repr(&PickleValue::Bytes(message))
                } else {
                    match zrs::pickle::loads(&message) {
                        Ok(value) => repr(&value),
                        Err(e) => {
                            format!("not a pickle ({e}): {}", repr(&PickleValue::Bytes(message)))
                        }
                    }
                })
            }
            ClientAction::HasData => {
                let has = self
                    .clients
                    .has_data(index, node)
                    .map_err(|e| e.to_string())?;
                Some(if has { "True" } else { "False" }.to_string())
            }
            ClientAction::Close => {
                self.clients.close(index, node).map_err(|e| e.to_string())?;
                None
            }
        };
        self.primary_disconnects().map_err(|e| e.to_string())?;
        Ok(printed)
    }

    /// `primary checkpoint`: remembers the workload's history as it is now.
    pub fn checkpoint(&mut self) {
        self.checkpoint = Some(self.primary.clone());
    }

    /// `primary failover`: the primary's process is lost with its connection (the
    /// secondary sees `ConnectionLost`), and a node holding the last checkpoint's history
    /// takes over at the same address; the workload goes on from that history.
    pub fn failover(&mut self) -> Result<(), WorldError> {
        let history = self.checkpoint.clone().ok_or(WorldError::NoCheckpoint)?;
        self.node.crash();
        if self.network.connection.is_some() {
            self.end_connection(None);
            let generation = self.current()?;
            self.secondaries[generation].connection_lost(&LossReason::Lost);
            self.dispatch(generation);
        }
        let mut node = PrimaryNode::default();
        for t in history.transactions() {
            node.commit(t).map_err(WorldError::Reopen)?;
        }
        self.node = node;
        self.primary = history;
        Ok(())
    }

    /// The primary node's `close`.
    pub fn primary_close(&mut self) -> Result<(), WorldError> {
        self.node.close();
        self.primary_disconnects()
    }

    /// Runs a fault on the current link.
    fn damage(&mut self, f: impl FnOnce(&mut Link, Source) -> bool) -> Result<(), WorldError> {
        self.attach()?;
        let link = self.link.as_mut().expect("attached");
        let id = ConnectionId(u64::from(link.port));
        let node = &mut self.node;
        if f(link, &mut || node.pull(id)) {
            Ok(())
        } else {
            Err(WorldError::NothingToDamage)
        }
    }

    pub fn corrupt(&mut self, offset: usize, mask: u8) -> Result<(), WorldError> {
        self.damage(|l, s| l.corrupt(offset, mask, s))
    }

    pub fn truncate(&mut self, n: usize) -> Result<(), WorldError> {
        self.damage(|l, s| l.truncate(n, s))
    }

    pub fn duplicate(&mut self) -> Result<(), WorldError> {
        self.damage(|l, s| l.duplicate(s))
    }

    pub fn bad_checksum(&mut self) -> Result<(), WorldError> {
        self.damage(|l, s| l.bad_checksum(s))
    }

    /// The current secondary's process crashes: its calls, attempt and connection vanish,
    /// and its storage keeps what it had made durable.
    pub fn crash(&mut self, keep: usize, tear: usize) -> Result<Option<CrashReport>, WorldError> {
        let g = self.current()?;
        if self.dead[g] {
            return Err(WorldError::NotRunning);
        }
        self.dead[g] = true;
        let owned: Vec<u64> = self
            .owners
            .iter()
            .filter(|(_, o)| *o == g)
            .map(|(n, _)| *n)
            .collect();
        for n in owned {
            self.reactor.cancel_number(n);
        }
        self.owners.retain(|(_, o)| *o != g);
        if self.attempt_owner == Some(g) {
            self.network.abort_attempt();
            self.attempt_owner = None;
        }
        if !self.secondaries[g].is_closed() {
            self.end_connection(Some(LossReason::Lost));
        }
        Ok(self.secondaries[g].storage().crash(keep, tear))
    }

    /// Opens a new secondary over the last one's storage, configured as it was.
    pub fn restart(&mut self) -> Result<(), WorldError> {
        let g = self.current()?;
        if !self.dead[g] && !self.secondaries[g].is_closed() {
            return Err(WorldError::Running);
        }
        let storage = self.secondaries[g].storage().clone();
        storage.reopen().map_err(WorldError::Reopen)?;
        self.reopens += 1;
        let config = self.secondaries[g].config().clone();
        self.open(Secondary::new(storage, config));
        Ok(())
    }

    /// The primary restarts: its process (and the connection, if any) is lost; its
    /// storage is kept, and the next connection reaches a new process over it.
    pub fn primary_restart(&mut self) -> Result<(), WorldError> {
        if self.network.connection.is_none() {
            return Err(WorldError::NotConnected);
        }
        self.node.crash();
        self.end_connection(None);
        let generation = self.current()?;
        self.secondaries[generation].connection_lost(&LossReason::Lost);
        self.dispatch(generation);
        Ok(())
    }

    /// The primary is unreachable for `length`: the connection is lost and every attempt
    /// in that time rejected.
    pub fn outage(&mut self, length: Duration) -> Result<(), WorldError> {
        if self.connected() {
            self.lose_connection(LossReason::Lost)?;
        }
        let deadline = self.reactor.now() + length;
        for _ in 0..MAX_ROUNDS {
            while self.attempt_owner.is_some() {
                self.reject()?;
            }
            match self.reactor.next_due() {
                Some(due) if due <= deadline => {
                    if let Some(call) = self.reactor.advance_to(due) {
                        self.fire(call);
                    }
                }
                _ => break,
            }
        }
        self.advance_to(deadline);
        Ok(())
    }

    /// Whether the current secondary's storage holds everything the primary committed.
    pub fn caught_up(&self) -> bool {
        self.secondary()
            .is_ok_and(|s| s.storage().last_transaction() == self.primary.last_tid())
    }

    /// The heal phase: faults stop; a connection whose stream was damaged is reset; the
    /// primary accepts every attempt and serves everything; time passes until the secondary
    /// has caught up, or `bound` (default: three reconnect delays and ten seconds) passes.
    /// Returns what it prints.
    pub fn heal(&mut self, bound: Option<Duration>) -> Result<String, WorldError> {
        let g = self.current()?;
        if !self.running() {
            return Ok("the secondary is not running: nothing to catch up".into());
        }
        let bound = bound.unwrap_or_else(|| {
            self.secondaries[g].config().reconnect_delay * 3 + Duration::from_secs(10)
        });
        let start = self.reactor.now();
        let deadline = start + bound;
        let damaged = self.link.as_ref().is_some_and(|l| {
            l.damaged && self.network.connection.as_ref().map(|c| c.port) == Some(l.port)
        });
        if damaged {
            self.lose_connection(LossReason::Lost)?;
        }
        for _ in 0..MAX_ROUNDS {
            if self.caught_up() {
                let took = self.reactor.now() - start;
                return Ok(format!(
                    "caught up after {} s",
                    crate::scenario::step::seconds(took)
                ));
            }
            if self.attempt_owner.is_some() {
                self.accept()?;
                continue;
            }
            if self.connected() {
                let port = self.network.connection.as_ref().map(|c| c.port);
                let fresh = self.link.as_ref().map(|l| l.port) != port;
                if self.serve(None)? > 0 || fresh {
                    continue;
                }
            }
            match self.reactor.next_due() {
                Some(due) if due <= deadline => {
                    if let Some(call) = self.reactor.advance_to(due) {
                        self.fire(call);
                    }
                }
                _ => break,
            }
        }
        self.advance_to(deadline);
        let secondary = self.secondary()?.storage().last_transaction();
        let primary = self.primary.last_tid();
        self.events.push(Event::NotCaughtUp {
            bound,
            primary,
            secondary,
        });
        Ok(format!(
            "not caught up after {} s: the primary is at {primary:?}, the secondary at {secondary:?}",
            crate::scenario::step::seconds(bound)
        ))
    }

    /// Whether the secondary of the current generation is connected.
    pub fn connected(&self) -> bool {
        self.network.connection.is_some()
    }

    /// The current secondary's phase, `None` if it crashed (or none was opened).
    pub fn phase(&self) -> Option<Phase> {
        let g = self.current().ok()?;
        (!self.dead[g]).then(|| self.secondaries[g].phase())
    }
}

/// Most rounds `outage` and `heal` play before giving up: a secondary that retries without
/// any delay must not hang the simulator.
const MAX_ROUNDS: usize = 100_000;

/// A chunk size for `chunking random`: often tiny (inside a header), often a few hundred
/// bytes, sometimes tens of KiB.
pub fn random_chunk(rng: &mut ChaCha8Rng) -> usize {
    match rng.gen_range(0..10) {
        0..=2 => rng.gen_range(1..=16),
        3..=6 => rng.gen_range(17..=1024),
        _ => rng.gen_range(1025..=65536),
    }
}
