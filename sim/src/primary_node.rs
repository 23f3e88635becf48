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
//! The primary process is opened lazily, when a connection first reaches it (so a
//! scenario that plays the primary by hand never sees its log lines), and a crash drops
//! it: the next connection opens a new one over the same storage.
//!
//! A node made [`PrimaryNode::with_blobs`] keeps a blob directory (zrs's [`BlobStorage`]
//! over the MemoryStorage, its directory on a simulated disk of its own, never crashed: the
//! node is the run's reference): each blob file the workload
//! writes goes in through `blob_begin` / `blob_write` / `restore_blob`, each file an undo
//! copies through `copy_blob`, so the real primary serves `B` + 64 KiB blocks to `zrs2.1`
//! secondaries and refuses `zrs2.0` ones, as `zrs primary --blob-dir` does.
//!
//! Hosting: the node keeps what the primary transmitted per connection until the link
//! takes it ([`PrimaryNode::pull`]); a link asks for more only once it has delivered what
//! it holds, and only then is [`Primary::writable`] called — the flow control of a real
//! socket. Which connections the primary closed itself is kept until the world acts on
//! it ([`PrimaryNode::take_disconnects`]).

use std::collections::{BTreeMap, VecDeque};

use zrs::pickle::dumps_extension;
use zrs::primary::{Action, Config, ConnectionId, Primary};
use zrs::protocol::encoder::BLOB_BLOCK_SIZE;
use zrs::protocol::encoder::{header, record_header};
use zrs::protocol::{FrameSink, StreamEncoder};

/// The simulated primary's send window: small, so that flow control (a primary that
/// transmits only as the link drains) is exercised by every catch-up, not only by
/// histories of megabytes.
pub const SEND_WINDOW: usize = 16 * 1024;
use zrs::secondary::{Address, LossReason};
use zrs::storage::{BlobStorage, MemoryStorage, ReadStorage, Storage, TransactionMeta};
use zrs::Tid;

use crate::disk::SimDisk;
use crate::workload::{RecordBlob, Transaction};
use zrs::storage::blob::BlobFs;

/// What a hosted primary serves: a read handle on its node's storage.
pub type Served = Box<dyn ReadStorage + Send + Sync>;

/// A real [`Primary`] hosted by the simulator over one node's storage: opened lazily (at
/// the first connection, so a scenario that plays the primary by hand never sees its log
/// lines), dropped by a crash, and holding what it transmitted per connection until the
/// link takes it. The primary node and every chained secondary that serves downstream
/// (`zrs secondary --listen`) host one.
pub struct Host {
    address: Address,
    primary: Option<Primary<Served>>,
    /// Bytes transmitted and not yet taken by the link, per connection.
    outgoing: BTreeMap<ConnectionId, VecDeque<Vec<u8>>>,
    /// Connections the primary closed (after the bytes transmitted before).
    disconnects: Vec<ConnectionId>,
    /// The largest single `Transmit` so far (bounded memory per connection: at most one
    /// send window, or one transaction where a transaction is larger).
    pub largest_transmit: usize,
}

impl Host {
    /// A host whose primary, once opened, serves at `address`.
    pub fn new(address: Address) -> Host {
        Host {
            address,
            primary: None,
            outgoing: BTreeMap::new(),
            disconnects: Vec::new(),
            largest_transmit: 0,
        }
    }

    /// Where the primary listens (printed in `Opening …`), if it is not open yet.
    pub fn set_address(&mut self, address: Address) {
        if self.primary.is_none() {
            self.address = address;
        }
    }

    /// Whether the primary process is running.
    pub fn running(&self) -> bool {
        self.primary.is_some()
    }

    /// Where the primary listens.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The primary, opened over `open()` if it is not running.
    fn primary(&mut self, open: impl FnOnce() -> Served) -> &mut Primary<Served> {
        let address = self.address.clone();
        self.primary.get_or_insert_with(|| {
            let mut config = Config::new(address);
            config.send_window = SEND_WINDOW;
            Primary::new(open(), config)
        })
    }

    /// The storage committed a transaction (a running primary follows it).
    pub fn committed(&mut self) {
        if let Some(p) = self.primary.as_mut() {
            p.committed();
        }
        self.collect();
    }

    /// A secondary connected (`peer` as Twisted prints it).
    pub fn connected(&mut self, id: ConnectionId, peer: &str, open: impl FnOnce() -> Served) {
        self.primary(open).connected(id, peer);
        self.collect();
    }

    /// Bytes from a secondary.
    pub fn data_received(&mut self, id: ConnectionId, bytes: &[u8], open: impl FnOnce() -> Served) {
        self.primary(open).data_received(id, bytes);
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
    pub fn close(&mut self, open: impl FnOnce() -> Served) {
        self.primary(open).close();
        self.collect();
    }

    /// The process crashes: its connections vanish with it.
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

    /// Whether the primary closed `id` (forgetting it: it is reported once).
    pub fn take_disconnect(&mut self, id: ConnectionId) -> bool {
        let before = self.disconnects.len();
        self.disconnects.retain(|d| *d != id);
        self.disconnects.len() != before
    }

    /// Gives back closes [`Host::take_disconnects`] took that another connection's owner
    /// acts on.
    pub fn keep_disconnects(&mut self, ids: Vec<ConnectionId>) {
        self.disconnects.extend(ids);
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
                // Hosted primaries seal in their core (`Config::new`), as a simulator's
                // must for its transmitted bytes to be final.
                Action::TransmitUnsealed(..) => unreachable!("a simulated primary seals in core"),
            }
        }
    }
}

/// The longest a `C` message pickles to: its digest's bytes all from 0x80 (or an escaped
/// byte, should an encoding escape any).
fn longest_commit() -> usize {
    [0x00u8, 0x0a, 0x5c, 0x7f, 0x80, 0xff]
        .into_iter()
        .map(|b| {
            zrs::protocol::message::Message::Commit {
                checksum: Some([b; 16]),
            }
            .encode_fast()
            .len()
        })
        .max()
        .unwrap_or(0)
}

/// Counts the framed bytes of an encoded stream without keeping them.
struct Count(usize);

impl FrameSink for Count {
    fn frame(&mut self, payload: &[u8]) {
        self.0 += 4 + payload.len();
    }
}

/// The primary node; see the module docs.
pub struct PrimaryNode {
    storage: Box<dyn Storage + Send + Sync>,
    /// Whether the node keeps a blob directory.
    blobs: bool,
    /// The real primary serving the storage.
    pub host: Host,
    /// The largest transaction committed, in bytes as the primary sends it, measured by
    /// encoding it as committed (what one `Transmit` may hold beyond the send window).
    pub largest_transaction: usize,
}

impl std::fmt::Debug for PrimaryNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryNode")
            .field("last", &self.storage.last_transaction())
            .field("running", &self.host.running())
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
            blobs: false,
            host: Host::new(address),
            largest_transaction: 0,
        }
    }

    /// A node with an empty `Data.fs` and a new blob directory (on a simulated disk).
    pub fn with_blobs(address: Address) -> Result<PrimaryNode, String> {
        let disk: std::sync::Arc<dyn BlobFs> = SimDisk::new();
        let storage = BlobStorage::open_on(
            MemoryStorage::new("Data.fs"),
            disk,
            "primary.blobs".as_ref(),
            true,
        )
        .map_err(|e| format!("the primary's blob directory: {e}"))?;
        let mut node = PrimaryNode::new(address);
        node.storage = Box::new(storage);
        node.blobs = true;
        Ok(node)
    }

    /// The node's storage, as clients read it.
    pub fn storage(&self) -> &dyn ReadStorage {
        &*self.storage
    }

    /// Whether the node keeps a blob directory.
    pub fn keeps_blobs(&self) -> bool {
        self.blobs
    }

    /// Where the primary listens.
    pub fn address(&self) -> &Address {
        self.host.address()
    }

    /// The host and the storage it serves (to open its primary).
    pub fn parts(&mut self) -> (&mut Host, &dyn ReadStorage) {
        (&mut self.host, &*self.storage)
    }

    /// Where the primary listens (printed in `Opening …`).
    pub fn set_address(&mut self, address: Address) {
        self.host.set_address(address);
    }

    /// About how many bytes the primary hands the network per `writable`.
    pub fn send_window(&self) -> usize {
        SEND_WINDOW
    }

    /// Whether the primary process is running.
    pub fn running(&self) -> bool {
        self.host.running()
    }

    /// The most bytes the primary handed the network at once for one connection.
    pub fn largest_transmit(&self) -> usize {
        self.host.largest_transmit
    }

    /// Writes a transaction the workload committed into the storage, as replication
    /// writes (records as the application's storage holds them: data, or a backpointer;
    /// blob files as written or copied), and tells the primary.
    pub fn commit(&mut self, t: &Transaction) -> Result<(), String> {
        // The node is the run's reference: a bug planted to test the oracles is the
        // secondary's, never this storage's (both are zrs's storages).
        let _unplanted = zrs::planted::plant(None);
        let blobs = t.records.iter().any(|r| r.blob.is_some());
        if blobs && !self.blobs {
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
        self.host.committed();
        Ok(())
    }

    /// The bytes the primary sends for the transaction just committed after `before`:
    /// read back from the storage and encoded by the one stream encoder, so the memory
    /// oracle's bound is exact (a model's estimate drifted from what is really sent).
    /// Each record's data goes out as a raw message of its own (4 bytes of size, then the
    /// data, whatever it holds): only the headers are encoded, and the data counted, so
    /// the oracle does not hash every committed byte a third time. Without that hash the
    /// `C`'s digest is unknown, and a digest pickles to a length that depends on its bytes
    /// (as latin-1 text, two UTF-8 bytes for each byte from 0x80): the `C` is counted at
    /// its longest, so the size is exact within 16 bytes, never below.
    fn sent_size(&self, before: Tid) -> Result<usize, String> {
        let txn = match self.storage.cursor(before).next() {
            Ok(Some(txn)) => txn,
            Ok(None) => return Err("the primary's storage lost the commit".into()),
            Err(e) => return Err(format!("the primary's storage: {e}")),
        };
        let mut count = Count(0);
        let mut encoder = StreamEncoder::new(before);
        let header = header(&txn.meta)
            .map_err(|e| format!("the primary cannot encode its own commit: {e}"))?;
        encoder.transaction_header(&header, &mut count);
        for record in &txn.records {
            encoder.store(&record_header(record), None, &mut count);
            count.0 += record.data.as_ref().map_or(0, |d| d.len());
        }
        count.0 += 4 + longest_commit();
        Ok(count.0)
    }

    /// A secondary connected (`peer` as Twisted prints it).
    pub fn connected(&mut self, id: ConnectionId, peer: &str) {
        let storage = &*self.storage;
        self.host.connected(id, peer, || storage.reader());
    }

    /// Bytes from a secondary.
    pub fn data_received(&mut self, id: ConnectionId, bytes: &[u8]) {
        let storage = &*self.storage;
        self.host.data_received(id, bytes, || storage.reader());
    }

    /// The connection ended from the network's or the secondary's side.
    pub fn connection_lost(&mut self, id: ConnectionId, reason: &LossReason) {
        self.host.connection_lost(id, reason);
    }

    /// The primary's `close`.
    pub fn close(&mut self) {
        let storage = &*self.storage;
        self.host.close(|| storage.reader());
    }

    /// The primary's process crashes: its connections vanish with it; the storage keeps
    /// every finished transaction (the workload commits whole transactions only).
    pub fn crash(&mut self) {
        self.host.crash();
    }

    /// The next bytes for connection `id`.
    pub fn pull(&mut self, id: ConnectionId) -> Option<Vec<u8>> {
        self.host.pull(id)
    }

    /// Connections the primary closed since the last call.
    pub fn take_disconnects(&mut self) -> Vec<ConnectionId> {
        self.host.take_disconnects()
    }

    /// Whether bytes for `id` wait to be taken.
    pub fn has_outgoing(&self, id: ConnectionId) -> bool {
        self.host.has_outgoing(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Change, Database, Meta};

    /// The counted size equals the whole transaction encoded, hashed and kept, for new
    /// objects, data of a few hundred KiB, an undo's backpointers and no-data records.
    #[test]
    fn the_counted_size_is_what_the_encoder_sends() {
        let mut db = Database::new();
        let mut node = PrimaryNode::default();
        node.commit(&db.transactions()[0]).unwrap();
        let commits: Vec<Vec<Change>> = vec![
            vec![Change::AddMapping {
                parent: vec![],
                key: "a".into(),
            }],
            vec![Change::SetBytes {
                parent: vec!["a".into()],
                key: "big".into(),
                len: 300_000,
                seed: 1,
            }],
            vec![Change::AddMappings {
                parent: vec!["a".into()],
                prefix: "c".into(),
                count: 50,
            }],
        ];
        let meta = Meta {
            user: "b\u{f6}b".as_bytes().to_vec(),
            description: b"d".to_vec(),
            extension: vec![("note".into(), "x".into())],
        };
        let check = |db: &Database, node: &mut PrimaryNode| {
            let before = db.transactions()[db.transactions().len() - 2].tid;
            node.commit(db.transactions().last().unwrap()).unwrap();
            let txn = node.storage().cursor(before).next().unwrap().unwrap();
            let mut whole = Vec::new();
            StreamEncoder::new(before)
                .transaction(&txn, &mut whole)
                .unwrap();
            let counted = node.sent_size(before).unwrap();
            assert!(
                (whole.len()..=whole.len() + 16).contains(&counted),
                "counted {counted}, sent {}",
                whole.len()
            );
        };
        for changes in &commits {
            db.commit(changes, &meta).unwrap();
            check(&db, &mut node);
        }
        // Undoing the creations: backpointers, and records without data.
        db.undo_back(1).unwrap();
        check(&db, &mut node);
        db.undo_back(1).unwrap();
        check(&db, &mut node);
    }
}
