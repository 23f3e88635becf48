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
//!
//! Why `s1` is dispatched apart from the other nodes (`secondaries` vs `nodes`): `s1` is the
//! reference harness's secondary, and the spec transcript depends on its harness's shape — a
//! scripted network whose attempts the steps `accept` / `reject` answer in order, shared by
//! every generation (an old generation's attempt or timer still fires on it), with the
//! primary's side played by hand or by the primary node. The other nodes have one process
//! each and dial their upstream's host directly. Both drive the same [`Secondary`] core; only
//! where its actions go differs, and one dispatcher for both would carry the harness's
//! generations into every node.
//!
//! One concept per module, each an `impl World` block over the state kept here:
//! - `secondaries`: the secondary nodes, their actions, connection events, crashes;
//! - `workload`: commits on the primary's history, written into the node's storage;
//! - `serving`: hosting the real primary node (links, scripted clients, close);
//! - `script`: the scripted primary (`send …`, `read`);
//! - `delivery`: chunked delivery on the secondary's connection;
//! - `faults`: link and disk faults, primary crash / failover, outages;
//! - `heal`: the heal phase, which checks every node catches up;
//! - `nodes`: the topology — secondary nodes beyond the first, chains;
//! - [`OracleView`]: what the oracles may read.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use zrs::protocol::handshake::HandshakeReader;
use zrs::secondary::Secondary;
use zrs::{Oid, Tid};

use crate::clients::Clients;
use crate::link::Link;
use crate::network::{Chunking, Network};
use crate::primary_node::{Host, PrimaryNode};
use crate::reactor::Reactor;
use crate::storage::SimStorage;
use crate::workload::database::DatabaseError;
use crate::workload::Database;

mod delivery;
pub use delivery::random_chunk;
pub use view::{OracleView, PrimaryMemory};
mod faults;
mod heal;
mod nodes;
pub use nodes::{listen_address, Node, Upstream};
mod script;
mod secondaries;
mod serving;
mod view;
mod workload;

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
    #[error("the storage is not on a simulated disk (open it with storage=disk)")]
    NoDisk,
    #[error("no node s{0} (s1 is opened by open, s2 on are declared by node)")]
    NoNode(usize),
    #[error("{0}")]
    Topology(String),
    #[error("the primary's blob file: {0}")]
    PrimaryBlob(String),
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
    /// The heal phase ended with node `s<node>` behind its upstream.
    NodeNotCaughtUp {
        bound: Duration,
        node: usize,
        upstream: Upstream,
        upstream_last: Tid,
        last: Tid,
    },
}

/// What the primary side of the network has sent of its transactions.
#[derive(Debug, Default, Clone)]
pub struct Feed {
    /// `trans.tid`: the last transaction whose `C` was sent.
    pub sent: Tid,
    /// The transaction being sent (its index), and how many of its records went out.
    pub current: Option<(usize, usize)>,
}

/// One run's world. Its state is its own: steps change it through its methods, and
/// oracles read it through [`OracleView`].
pub struct World {
    reactor: Reactor,
    network: Network,
    /// Every secondary opened, by generation; the last is the current one.
    secondaries: Vec<SimSecondary>,
    /// Which generation owns each pending call and attempt, by call number / port.
    owners: Vec<(u64, usize)>,
    /// Which generation owns each waiting attempt, oldest first (as `network.clients`):
    /// a closed generation's late reconnect may start one beside the current one's.
    attempt_owners: Vec<usize>,
    primary: Database,
    feed: Feed,
    chunking: Chunking,
    /// Committed transactions the secondary reported, for invalidation.
    invalidations: Vec<(Tid, Vec<Oid>)>,
    /// Transactions the secondaries committed.
    replicated: u64,
    /// Which generations crashed.
    dead: Vec<bool>,
    /// The primary node: a real storage the workload commits into, and the real primary.
    node: PrimaryNode,
    /// The link of the connection the primary node serves (faults act on it).
    link: Option<Link>,
    /// The handshake the secondary sent on that connection (judges what follows).
    handshake: Option<HandshakeReader>,
    /// Scripted clients of the primary node (`client …` steps).
    clients: Clients,
    /// The history `primary checkpoint` remembered.
    checkpoint: Option<Database>,
    /// The stream `chunking random` draws sizes from.
    chunk_rng: Option<ChaCha8Rng>,
    /// Whether the primary's tids come from the virtual clock.
    virtual_clock: bool,
    /// What oracles are to judge, oldest first (they take it).
    events: Vec<Event>,
    /// How many times a storage was reopened (after a crash or close): its whole content
    /// is then checked again.
    reopens: u64,
    /// Which phases met which inputs (see [`crate::coverage`]).
    coverage: crate::coverage::Coverage,
    /// The secondary nodes beyond the first (`s2`, `s3`, …).
    nodes: Vec<Node>,
    /// Which node owns each pending call, by call number.
    node_owners: Vec<(u64, usize)>,
    /// The first secondary's host, serving downstream nodes from its storage.
    s1_host: Host,
    /// The histories of the primaries failed over from (oldest first).
    abandoned: Vec<Database>,
    /// The largest transaction any primary node committed, in bytes as sent.
    largest_transaction: usize,
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
            attempt_owners: Vec::new(),
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
            coverage: Default::default(),
            nodes: Vec::new(),
            node_owners: Vec::new(),
            s1_host: Host::new(nodes::listen_address(1)),
            abandoned: Vec::new(),
            largest_transaction: 0,
        }
    }
}

/// What the steps and the campaign read of a world, and the settings they change.
impl World {
    /// The virtual time now.
    pub fn now(&self) -> std::time::Duration {
        self.reactor.now()
    }

    /// When the next delayed call falls due, if any is pending.
    pub fn next_due(&self) -> Option<std::time::Duration> {
        self.reactor.next_due()
    }

    /// The reactor's queue of delayed calls, as `later` prints it.
    pub fn later_repr(&self) -> String {
        crate::reactor::Queue(self.reactor.later()).to_string()
    }

    /// The waiting attempts, as `clients` prints them.
    pub fn clients_repr(&self) -> String {
        self.network.clients_repr()
    }

    /// The workload's model of the primary's database (its committed history).
    pub fn workload(&self) -> &Database {
        &self.primary
    }

    /// Transactions the secondaries committed (counting each again after a crash took it
    /// back).
    pub fn replicated(&self) -> u64 {
        self.replicated
    }

    /// Which phases met which inputs (see [`crate::coverage`]).
    pub fn coverage(&self) -> &crate::coverage::Coverage {
        &self.coverage
    }

    /// The primary node.
    pub fn primary_node(&self) -> &PrimaryNode {
        &self.node
    }

    /// The primary node, to plant a fault in it (the oracles' own tests).
    #[cfg(test)]
    pub(crate) fn primary_node_mut(&mut self) -> &mut PrimaryNode {
        &mut self.node
    }

    /// `primary clock virtual`: the primary's tids come from the virtual clock.
    pub fn use_virtual_clock(&mut self) {
        self.virtual_clock = true;
    }

    /// `trans.tid`: the last transaction whose `C` the scripted primary sent.
    pub fn trans_tid(&self) -> Tid {
        self.feed.sent
    }

    /// `init_md5 TID`: the connection's running md5 starts again from `tid`.
    pub fn init_md5(&mut self, tid: Tid) -> Result<(), WorldError> {
        let connection = self
            .network
            .connection
            .as_mut()
            .ok_or(WorldError::NotConnected)?;
        connection.encoder = zrs::protocol::StreamEncoder::new(tid);
        Ok(())
    }
}

/// Most rounds `outage` and `heal` play before giving up: a secondary that retries without
/// any delay must not hang the simulator.
const MAX_ROUNDS: usize = 100_000;
