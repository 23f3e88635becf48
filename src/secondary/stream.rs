//! One connection's replication stream: frames in, transactions out.
//!
//! Decodes sized messages, keeps the running checksum, and applies `T` / `S` + data / `C`
//! to the storage through its two-phase commit. A transaction reaches the storage's
//! `tpc_finish` only on a `C` whose checksum matches; anything else leaves it begun, for
//! the caller to abort when the connection ends.

use crate::pickle;
use crate::protocol::checksum::StreamChecksum;
use crate::protocol::framing::{FrameDecoder, FrameError};
use crate::protocol::message::{MessageError, RecordHeader};
use crate::protocol::Message;
use crate::storage::{Storage, StorageError, TransactionMeta};
use crate::tid::{Oid, Tid};

/// Why the secondary gave up on its input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("message {index}: {source}")]
    Message {
        index: u64,
        #[source]
        source: MessageError,
    },
    #[error("message {index}: bad checksum: received {received}, computed {computed}")]
    Checksum {
        index: u64,
        received: String,
        computed: String,
    },
    #[error("message {index}: {what}")]
    Sequence { index: u64, what: String },
    #[error("message {index}: storage refused it: {source}")]
    Storage {
        index: u64,
        #[source]
        source: StorageError,
    },
}

/// What the next message is.
enum Expect {
    /// A pickled message.
    Message,
    /// The raw data of the record announced by an `S`.
    RecordData(RecordHeader),
}

/// A transaction that was committed, for invalidation.
pub struct Committed {
    pub tid: Tid,
    pub oids: Vec<Oid>,
}

/// The inbound half of one connection.
pub struct Stream {
    frames: FrameDecoder,
    replication: Replication,
}

/// What the stream's messages have built up (apart from the framing, so that a message can
/// be applied while it is still borrowed from the frame buffer, uncopied).
struct Replication {
    checksum: StreamChecksum,
    expect: Expect,
    /// The transaction begun on the storage, if any.
    transaction: Option<Tid>,
    /// Oids stored in the current transaction, in arrival order.
    oids: Vec<Oid>,
    /// Messages received so far (for error messages).
    index: u64,
}

impl Stream {
    /// A stream that continues from `start`, the last tid the secondary holds.
    pub fn new(start: Tid, frame_limit: u32) -> Stream {
        Stream {
            frames: FrameDecoder::new(frame_limit),
            replication: Replication {
                checksum: StreamChecksum::new(start),
                expect: Expect::Message,
                transaction: None,
                oids: Vec::new(),
                index: 0,
            },
        }
    }

    /// Whether a transaction is begun on the storage and not yet finished.
    pub fn in_transaction(&self) -> bool {
        self.replication.transaction.is_some()
    }

    /// The tid of the transaction begun on the storage, if any.
    pub fn transaction(&self) -> Option<Tid> {
        self.replication.transaction
    }

    /// Records restored so far in the transaction in progress.
    pub fn records(&self) -> usize {
        self.replication.oids.len()
    }

    /// Feeds received bytes; every transaction they complete is finished on `storage` and
    /// reported to `committed`. On error the stream must not be fed again.
    pub fn receive<S: Storage + ?Sized>(
        &mut self,
        bytes: &[u8],
        storage: &mut S,
        check_checksums: bool,
        committed: &mut impl FnMut(Committed),
    ) -> Result<(), InputError> {
        self.frames.feed(bytes);
        let r = &mut self.replication;
        while let Some(message) = self.frames.next_frame_slice()? {
            r.index += 1;
            r.apply(message, storage, check_checksums, committed)?;
            // Everything after the handshake is hashed, the `C` included, after it is checked.
            r.checksum.update(message);
        }
        Ok(())
    }
}

impl Replication {
    fn apply<S: Storage + ?Sized>(
        &mut self,
        message: &[u8],
        storage: &mut S,
        check_checksums: bool,
        committed: &mut impl FnMut(Committed),
    ) -> Result<(), InputError> {
        let index = self.index;
        let storage_error = |source| InputError::Storage { index, source };
        let sequence = |what: &str| InputError::Sequence {
            index,
            what: what.to_string(),
        };
        if let Expect::RecordData(record) = std::mem::replace(&mut self.expect, Expect::Message) {
            // An empty data message means "no data": the record undoes the object's creation.
            let data = (!message.is_empty()).then_some(message);
            storage
                .restore(
                    record.oid,
                    record.serial,
                    data,
                    &record.version,
                    record.data_txn,
                )
                .map_err(storage_error)?;
            self.oids.push(record.oid);
            return Ok(());
        }
        let decoded =
            Message::decode(message).map_err(|source| InputError::Message { index, source })?;
        match decoded {
            Message::Transaction(header) => {
                if let Some(tid) = self.transaction {
                    return Err(sequence(&format!(
                        "'T' for {:?} while transaction {:?} is in progress",
                        header.tid, tid
                    )));
                }
                let meta = TransactionMeta {
                    tid: header.tid,
                    status: header.status,
                    user: header.user,
                    description: header.description,
                    extension: pickle::dumps_extension(&header.extension),
                };
                storage.tpc_begin(meta).map_err(storage_error)?;
                self.transaction = Some(header.tid);
                self.oids.clear();
            }
            Message::Store(record) => {
                if self.transaction.is_none() {
                    return Err(sequence("'S' outside a transaction"));
                }
                self.expect = Expect::RecordData(record);
            }
            Message::Blob { .. } => {
                return Err(sequence(
                    "'B' (a blob record) but this secondary keeps no blobs (protocol zrs2.0)",
                ));
            }
            Message::Commit { checksum } => {
                let computed = self.checksum.digest();
                if check_checksums && checksum != Some(computed) {
                    return Err(InputError::Checksum {
                        index,
                        received: checksum.map_or("no checksum ('C', ())".into(), |c| hex(&c)),
                        computed: hex(&computed),
                    });
                }
                let Some(tid) = self.transaction else {
                    return Err(sequence("'C' outside a transaction"));
                };
                storage.tpc_vote().map_err(storage_error)?;
                storage.tpc_finish().map_err(storage_error)?;
                self.transaction = None;
                committed(Committed {
                    tid,
                    oids: std::mem::take(&mut self.oids),
                });
            }
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
