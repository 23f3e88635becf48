//! The primary node: a real storage the workload commits into, and the real
//! [`zrs::primary::Primary`] serving it — the simulator only hosts it, as the TCP driver
//! does in production.
//!
//! The workload ([`crate::workload::Database`], a model of a ZODB application) decides what
//! each commit writes; the node writes it into its [`MemoryStorage`] through the storage's
//! replication-write path (`tpc_begin`, `restore` per record, `tpc_vote`, `tpc_finish`)
//! and tells the primary ([`Primary::committed`]). The primary reads the storage through a
//! read handle, exactly as it reads a `Data.fs` another process writes.
//!
//! A node made [`PrimaryNode::with_blobs`] keeps a blob directory (zrs's [`BlobStorage`]
//! over the MemoryStorage, in a real scratch directory): each blob file the workload
//! writes goes in through `blob_begin` / `blob_write` / `restore_blob`, each file an undo
//! copies through `copy_blob`, so the real primary serves `B` + 64 KiB blocks to `zrs2.1`
//! secondaries and refuses `zrs2.0` ones, as `zrs primary --blob-dir` does.
//!
//! The primary process is opened lazily, when a connection first reaches it (so a
//! scenario that plays the primary by hand never sees its log lines), and a crash drops
//! it: the next connection opens a new one over the same storage.
//!
//! Hosting: the node keeps what the primary transmitted per connection until the link
//! takes it ([`PrimaryNode::pull`]); a link asks for more only once it has delivered what
//! it holds, and only then is [`Primary::writable`] called — the flow control of a real
//! socket. Which connections the primary closed itself is kept until the world acts on
//! it ([`PrimaryNode::take_disconnects`]).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use zrs::pickle::dumps_extension;
use zrs::primary::{Action, Config, ConnectionId, Primary};
use zrs::protocol::encoder::BLOB_BLOCK_SIZE;
use zrs::protocol::StreamEncoder;

/// The simulated primary's send window: small, so that flow control (a primary that
/// transmits only as the link drains) is exercised by every catch-up, not only by
/// histories of megabytes.
pub const SEND_WINDOW: usize = 16 * 1024;
use zrs::secondary::{Address, LossReason};
use zrs::storage::{BlobStorage, MemoryStorage, ReadStorage, Storage, TransactionMeta};
use zrs::Tid;

use crate::workload::{RecordBlob, Transaction};

/// What the primary serves: a read handle on the node's storage.
type Served = Box<dyn ReadStorage + Send + Sync>;

/// The primary node; see the module docs.
pub struct PrimaryNode {
    storage: Box<dyn Storage + Send + Sync>,
    /// The blob directory, for a node that keeps blobs.
    blob_dir: Option<PathBuf>,
    address: Address,
    primary: Option<Primary<Served>>,
    /// Bytes transmitted and not yet taken by the link, per connection.
    outgoing: BTreeMap<ConnectionId, VecDeque<Vec<u8>>>,
    /// Connections the primary closed (after the bytes transmitted before).
    disconnects: Vec<ConnectionId>,
    /// The largest single `Transmit` so far (bounded memory per connection: at most one
    /// send window, or one transaction where a transaction is larger).
    pub largest_transmit: usize,
    /// The largest transaction committed, in bytes as the primary sends it, measured by
    /// encoding it as committed (what one `Transmit` may hold beyond the send window).
    pub largest_transaction: usize,
}

impl std::fmt::Debug for PrimaryNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryNode")
            .field("last", &self.storage.last_transaction())
            .field("running", &self.primary.is_some())
            .finish()
    }
}

impl Default for PrimaryNode {
    fn default() -> PrimaryNode {
        PrimaryNode::new(Address::tcp("", 8000))
    }
}

impl PrimaryNode {
    /// A node with an empty `Data.fs` (in memory), serving at `address` once opened.
    pub fn new(address: Address) -> PrimaryNode {
        PrimaryNode {
            storage: Box::new(MemoryStorage::new("Data.fs")),
            blob_dir: None,
            address,
            primary: None,
            outgoing: BTreeMap::new(),
            disconnects: Vec::new(),
            largest_transmit: 0,
            largest_transaction: 0,
        }
    }

    /// A node with an empty `Data.fs` and a new blob directory at `dir` (a scratch
    /// directory: nothing is fsynced).
    pub fn with_blobs(address: Address, dir: &Path) -> Result<PrimaryNode, String> {
        let storage = BlobStorage::open(MemoryStorage::new("Data.fs"), dir, false)
            .map_err(|e| format!("the primary's blob directory: {e}"))?;
        let mut node = PrimaryNode::new(address);
        node.storage = Box::new(storage);
        node.blob_dir = Some(dir.to_path_buf());
        Ok(node)
    }

    /// The node's storage, as clients read it.
    pub fn storage(&self) -> &dyn ReadStorage {
        &*self.storage
    }

    /// The blob directory, if the node keeps blobs.
    pub fn blob_dir(&self) -> Option<&Path> {
        self.blob_dir.as_deref()
    }

    /// Where the primary listens.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Where the primary listens (printed in `Opening …`).
    pub fn set_address(&mut self, address: Address) {
        if self.primary.is_none() {
            self.address = address;
        }
    }

    /// About how many bytes the primary hands the network per `writable`.
    pub fn send_window(&self) -> usize {
        SEND_WINDOW
    }

    /// Whether the primary process is running.
    pub fn running(&self) -> bool {
        self.primary.is_some()
    }

    /// Writes a transaction the workload committed into the storage, as replication
    /// writes (records as the application's storage holds them: data, or a backpointer;
    /// blob files as written or copied), and tells the primary.
    pub fn commit(&mut self, t: &Transaction) -> Result<(), String> {
        // The node is the run's reference: a bug planted to test the oracles is the
        // secondary's, never this storage's (both are zrs's storages).
        let _unplanted = zrs::planted::plant(None);
        let blobs = t.records.iter().any(|r| r.blob.is_some());
        if blobs && self.blob_dir.is_none() {
            return Err("the primary keeps no blob directory (primary blobs on)".into());
        }
        let meta = TransactionMeta {
            tid: t.tid,
            status: t.status,
            user: t.user.clone(),
            description: t.description.clone(),
            extension: dumps_extension(&t.extension),
        };
        let before = self.storage.last_transaction();
        let write = |s: &mut dyn Storage| -> zrs::storage::Result<()> {
            s.tpc_begin(meta)?;
            for r in &t.records {
                let data = r.data.as_deref();
                match &r.blob {
                    None => s.restore(r.oid, t.tid, data, b"", r.data_txn)?,
                    Some(RecordBlob::Written(content)) => {
                        s.blob_begin()?;
                        for chunk in content.bytes().chunks(BLOB_BLOCK_SIZE) {
                            s.blob_write(chunk)?;
                        }
                        s.restore_blob(r.oid, t.tid, data, b"", r.data_txn)?;
                    }
                    Some(RecordBlob::Copied { from, .. }) => {
                        s.restore(r.oid, t.tid, data, b"", r.data_txn)?;
                        s.copy_blob(r.oid, *from, t.tid)?;
                    }
                }
            }
            s.tpc_vote()?;
            s.tpc_finish()?;
            Ok(())
        };
        if let Err(e) = write(&mut *self.storage) {
            self.storage.tpc_abort();
            return Err(format!("the primary's storage refused the commit: {e}"));
        }
        let mut size = self.sent_size(before)?;
        if blobs {
            // With blobs the primary fills its window message by message, mid-transaction
            // too: beyond the window, one message — a record's data (within the size
            // above) or a block of a blob file.
            size = size.max(BLOB_BLOCK_SIZE + 4);
        }
        self.largest_transaction = self.largest_transaction.max(size);
        if let Some(p) = self.primary.as_mut() {
            p.committed();
        }
        self.collect();
        Ok(())
    }

    /// The bytes the primary sends for the transaction just committed after `before`:
    /// read back from the storage and encoded by the one stream encoder, so the memory
    /// oracle's bound is exact (a model's estimate drifted from what is really sent).
    fn sent_size(&self, before: Tid) -> Result<usize, String> {
        let txn = match self.storage.cursor(before).next() {
            Ok(Some(txn)) => txn,
            Ok(None) => return Err("the primary's storage lost the commit".into()),
            Err(e) => return Err(format!("the primary's storage: {e}")),
        };
        let mut out = Vec::new();
        StreamEncoder::new(before)
            .transaction(&txn, &mut out)
            .map_err(|e| format!("the primary cannot encode its own commit: {e}"))?;
        Ok(out.len())
    }

    /// The primary, opened over the storage if it is not running.
    fn primary(&mut self) -> &mut Primary<Served> {
        let address = self.address.clone();
        let storage = &*self.storage;
        self.primary.get_or_insert_with(|| {
            let mut config = Config::new(address);
            config.send_window = SEND_WINDOW;
            Primary::new(storage.reader(), config)
        })
    }

    /// A secondary connected (`peer` as Twisted prints it).
    pub fn connected(&mut self, id: ConnectionId, peer: &str) {
        self.primary().connected(id, peer);
        self.collect();
    }

    /// Bytes from a secondary.
    pub fn data_received(&mut self, id: ConnectionId, bytes: &[u8]) {
        self.primary().data_received(id, bytes);
        self.collect();
    }

    /// The connection ended from the network's or the secondary's side.
    pub fn connection_lost(&mut self, id: ConnectionId, reason: &LossReason) {
        self.outgoing.remove(&id);
        if let Some(p) = self.primary.as_mut() {
            p.connection_lost(id, reason);
        }
        self.collect();
    }

    /// The primary's `close`: stops listening, lets streaming connections catch up, then
    /// closes them.
    pub fn close(&mut self) {
        self.primary().close();
        self.collect();
    }

    /// The primary's process crashes: its connections vanish with it; the storage keeps
    /// every finished transaction (the workload commits whole transactions only).
    pub fn crash(&mut self) {
        self.primary = None;
        self.outgoing.clear();
        self.disconnects.clear();
    }

    /// The next bytes for connection `id`: what was transmitted, or else what the primary
    /// transmits once told the link can take more.
    pub fn pull(&mut self, id: ConnectionId) -> Option<Vec<u8>> {
        if let Some(bytes) = self.outgoing.get_mut(&id).and_then(|q| q.pop_front()) {
            return Some(bytes);
        }
        self.primary.as_mut()?.writable(id);
        self.collect();
        self.outgoing.get_mut(&id).and_then(|q| q.pop_front())
    }

    /// Connections the primary closed since the last call.
    pub fn take_disconnects(&mut self) -> Vec<ConnectionId> {
        std::mem::take(&mut self.disconnects)
    }

    /// Whether bytes for `id` wait to be taken.
    pub fn has_outgoing(&self, id: ConnectionId) -> bool {
        self.outgoing.get(&id).is_some_and(|q| !q.is_empty())
    }

    fn collect(&mut self) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        while let Some(action) = p.poll_action() {
            match action {
                Action::Transmit(id, bytes) => {
                    self.largest_transmit = self.largest_transmit.max(bytes.len());
                    self.outgoing.entry(id).or_default().push_back(bytes);
                }
                Action::Disconnect(id) => self.disconnects.push(id),
                Action::StopListening => {}
            }
        }
    }
}
