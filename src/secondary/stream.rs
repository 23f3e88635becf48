//! One connection's replication stream: frames in, transactions out.
//!
//! Decodes sized messages, checks each `C` against the running checksum, and applies `T` / `S` + data /
//! `B` + data + blocks / `C` to the storage through its two-phase commit. A transaction
//! reaches the storage's `tpc_finish` only on a `C` whose checksum matches; anything else
//! leaves it begun, for the caller to abort when the connection ends (which drops its blob
//! files too).
//!
//! Blobs (protocol `zrs2.1`): every message after a `B`'s data message is one of its
//! `blocks` chunks, whatever it holds, as zc.zrs reads them; each goes to the storage as it
//! arrives, so memory does not grow with a blob. Where zrs does better than zc.zrs (README,
//! "Where zrs differs"): a `B` with 0 blocks restores an empty blob file, not a record
//! without one; and a record without data (an undo of an object's creation) whose object
//! currently has a blob gets a copy of that blob file, as the primary's undo made one.
//!
//! Each `T` also settles the storage's [`Format`]: the configured one, else the primary's
//! as its pickles show it (Python 2 writes `str` opcodes, Python 3 never does); a new
//! storage takes it, an existing one of another format is an input error rather than a
//! file of mixed pickles. The extension is re-encoded for that format.
//!
//! The running checksum comes from a [`ChecksumScanner`] over the same bytes, as one
//! checkpoint per message (the checksum before it). The stream runs its scanner itself
//! ([`Stream::receive`]), unless the driver took it ([`Stream::take_scanner`]) to run it on
//! another thread; the driver then hands each piece of input over with its checkpoints
//! ([`Stream::receive_scanned`]). Everything after that is one path: frame, take the
//! message's checkpoint, apply.

use std::collections::VecDeque;

use crate::pickle::Identity;
use crate::protocol::checksum::{ChecksumScanner, StreamChecksum};
use crate::protocol::framing::{FrameDecoder, FrameError};
use crate::protocol::message::{MessageError, RecordHeader};
use crate::protocol::Message;
use crate::storage::blob::is_blob_record;
use crate::storage::{encode_extension, Format, Storage, StorageError, TransactionMeta};
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
    #[error(
        "message {index}: the primary writes {want} files ({how}), but {name} is an {have} \
         file; not mixing them: replicate into a new file, or choose with --format"
    )]
    Format {
        index: u64,
        name: String,
        have: Format,
        want: Format,
        how: &'static str,
    },
    #[error(
        "message {index}: no checksum checkpoint for it (the checksum scanner the driver \
         runs is out of step with the stream: a bug)"
    )]
    Unscanned { index: u64 },
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
    /// The raw data of the record announced by a `B`, then its blob's chunks.
    BlobData { record: RecordHeader, blocks: u64 },
    /// The `remaining` chunks of a blob, then its record is restored with `data`.
    BlobChunks {
        record: RecordHeader,
        data: Option<Vec<u8>>,
        remaining: u64,
    },
}

/// A transaction that was committed, for invalidation.
pub struct Committed {
    pub tid: Tid,
    pub oids: Vec<Oid>,
}

/// The inbound half of one connection.
pub struct Stream {
    frames: FrameDecoder,
    /// Hashes the input ahead of the framing; `None` once the driver took it.
    scanner: Option<ChecksumScanner>,
    replication: Replication,
}

/// Checkpoints one [`Stream::receive`] makes at most before applying what it scanned: the
/// memory it holds for them is bounded however small the messages are.
const CHECKPOINTS_PER_SCAN: usize = 1024;

/// What the stream's messages have built up (apart from the framing, so that a message can
/// be applied while it is still borrowed from the frame buffer, uncopied).
struct Replication {
    /// The running checksum at the start of each message received (in part or whole) and
    /// not yet applied, oldest first.
    checkpoints: VecDeque<StreamChecksum>,
    expect: Expect,
    /// The transaction begun on the storage, if any.
    transaction: Option<Tid>,
    /// Oids stored in the current transaction, in arrival order.
    oids: Vec<Oid>,
    /// Messages received so far (for error messages).
    index: u64,
    /// The format chosen by configuration, overriding what the primary's pickles say.
    format: Option<Format>,
    /// How Python 2 extensions were memoized (configuration).
    identity: Identity,
}

impl Stream {
    /// A stream that continues from `start`, the last tid the secondary holds, into a
    /// storage of `format` (`None`: the primary's).
    pub fn new(start: Tid, frame_limit: u32, format: Option<Format>, identity: Identity) -> Stream {
        Stream {
            frames: FrameDecoder::new(frame_limit),
            scanner: Some(ChecksumScanner::new(start)),
            replication: Replication {
                checkpoints: VecDeque::new(),
                expect: Expect::Message,
                transaction: None,
                oids: Vec::new(),
                index: 0,
                format,
                identity,
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

    /// Takes the stream's checksum scanner, for the driver to run over the input before
    /// handing it to [`receive_scanned`](Self::receive_scanned) (see the module docs).
    /// `None` if already taken.
    pub fn take_scanner(&mut self) -> Option<ChecksumScanner> {
        self.scanner.take()
    }

    /// Feeds received bytes; every transaction they complete is finished on `storage` and
    /// reported to `committed`. On error the stream must not be fed again.
    pub fn receive<S: Storage + ?Sized>(
        &mut self,
        mut bytes: &[u8],
        storage: &mut S,
        check_checksums: bool,
        committed: &mut impl FnMut(Committed),
    ) -> Result<(), InputError> {
        let Some(mut scanner) = self.scanner.take() else {
            // The driver runs the scanner: input without checkpoints cannot be checked.
            return Err(InputError::Unscanned {
                index: self.replication.index + 1,
            });
        };
        let mut result = Ok(());
        while !bytes.is_empty() && result.is_ok() {
            let r = &mut self.replication;
            let n = scanner.scan(bytes, CHECKPOINTS_PER_SCAN, &mut r.checkpoints);
            result = self.apply(&bytes[..n], storage, check_checksums, committed);
            bytes = &bytes[n..];
        }
        self.scanner = Some(scanner);
        result
    }

    /// Feeds received bytes with the checkpoints the stream's scanner, run by the driver
    /// ([`take_scanner`](Self::take_scanner)), made of them; otherwise as
    /// [`receive`](Self::receive).
    pub fn receive_scanned<S: Storage + ?Sized>(
        &mut self,
        bytes: &[u8],
        checkpoints: impl IntoIterator<Item = StreamChecksum>,
        storage: &mut S,
        check_checksums: bool,
        committed: &mut impl FnMut(Committed),
    ) -> Result<(), InputError> {
        self.replication.checkpoints.extend(checkpoints);
        self.apply(bytes, storage, check_checksums, committed)
    }

    /// Frames scanned bytes and applies every whole message with its checkpoint. Messages
    /// whole within `bytes` are applied from `bytes`, uncopied.
    fn apply<S: Storage + ?Sized>(
        &mut self,
        bytes: &[u8],
        storage: &mut S,
        check_checksums: bool,
        committed: &mut impl FnMut(Committed),
    ) -> Result<(), InputError> {
        let r = &mut self.replication;
        self.frames.try_decode(bytes, |message| {
            r.index += 1;
            let checkpoint = r
                .checkpoints
                .pop_front()
                .ok_or(InputError::Unscanned { index: r.index })?;
            r.apply(message, &checkpoint, storage, check_checksums, committed)
        })
    }
}

impl Replication {
    /// Applies one message; `checkpoint` is the running checksum before it.
    fn apply<S: Storage + ?Sized>(
        &mut self,
        message: &[u8],
        checkpoint: &StreamChecksum,
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
        match std::mem::replace(&mut self.expect, Expect::Message) {
            Expect::Message => {}
            Expect::RecordData(record) => {
                // An empty data message means "no data": the record undoes the object's
                // creation.
                let data = (!message.is_empty()).then_some(message);
                let copy_from = match data {
                    None if storage.keeps_blobs() => {
                        current_blob_serial(storage, record.oid).map_err(storage_error)?
                    }
                    _ => None,
                };
                storage
                    .restore(
                        record.oid,
                        record.serial,
                        data,
                        &record.version,
                        record.data_txn,
                    )
                    .map_err(storage_error)?;
                if let Some(from) = copy_from {
                    // The primary's undo copied the blob file to the undo's tid.
                    storage
                        .copy_blob(record.oid, from, record.serial)
                        .map_err(storage_error)?;
                }
                self.oids.push(record.oid);
                return Ok(());
            }
            Expect::BlobData { record, blocks } => {
                let data = (!message.is_empty()).then(|| message.to_vec());
                self.oids.push(record.oid);
                storage.blob_begin().map_err(storage_error)?;
                if blocks == 0 {
                    restore_blob(storage, &record, data.as_deref()).map_err(storage_error)?;
                } else {
                    self.expect = Expect::BlobChunks {
                        record,
                        data,
                        remaining: blocks,
                    };
                }
                return Ok(());
            }
            Expect::BlobChunks {
                record,
                data,
                remaining,
            } => {
                storage.blob_write(message).map_err(storage_error)?;
                if remaining == 1 {
                    restore_blob(storage, &record, data.as_deref()).map_err(storage_error)?;
                } else {
                    self.expect = Expect::BlobChunks {
                        record,
                        data,
                        remaining: remaining - 1,
                    };
                }
                return Ok(());
            }
        }
        let (decoded, python2) = Message::decode_python2(message)
            .map_err(|source| InputError::Message { index, source })?;
        match decoded {
            Message::Transaction(header) => {
                if let Some(tid) = self.transaction {
                    return Err(sequence(&format!(
                        "'T' for {:?} while transaction {:?} is in progress",
                        header.tid, tid
                    )));
                }
                let format = self.storage_format(storage, python2, index)?;
                let meta = TransactionMeta {
                    tid: header.tid,
                    status: header.status,
                    user: header.user,
                    description: header.description,
                    extension: encode_extension(&header.extension, format, self.identity),
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
            Message::Blob { record, blocks } => {
                if !storage.keeps_blobs() {
                    return Err(sequence(
                        "'B' (a blob record) but this secondary keeps no blobs (protocol zrs2.0)",
                    ));
                }
                if self.transaction.is_none() {
                    return Err(sequence("'B' outside a transaction"));
                }
                self.expect = Expect::BlobData { record, blocks };
            }
            Message::Commit { checksum } => {
                let computed = checkpoint.digest();
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

fn restore_blob<S: Storage + ?Sized>(
    storage: &mut S,
    record: &RecordHeader,
    data: Option<&[u8]>,
) -> Result<(), StorageError> {
    storage.restore_blob(
        record.oid,
        record.serial,
        data,
        &record.version,
        record.data_txn,
    )
}

/// The serial of `oid`'s current revision, if that revision is a blob's.
fn current_blob_serial<S: Storage + ?Sized>(
    storage: &S,
    oid: Oid,
) -> Result<Option<Tid>, StorageError> {
    match storage.load(oid) {
        Ok((data, serial)) => Ok(is_blob_record(&data).then_some(serial)),
        Err(StorageError::NoSuchKey(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Replication {
    /// The format a transaction is written in: the configured one, else the primary's
    /// (Python 2 pickles: `FS21`). A new storage takes it; an existing one must have it.
    fn storage_format<S: Storage + ?Sized>(
        &self,
        storage: &mut S,
        python2: bool,
        index: u64,
    ) -> Result<Format, InputError> {
        let (want, how) = match (self.format, python2) {
            (Some(f), _) => (f, "as configured"),
            (None, true) => (Format::Fs21, "it pickles as Python 2 does"),
            (None, false) => (Format::Fs30, "it pickles as Python 3 does"),
        };
        match storage.format() {
            Some(have) if have != want => Err(InputError::Format {
                index,
                name: storage.name().to_string(),
                have,
                want,
                how,
            }),
            Some(_) => Ok(want),
            None => {
                storage
                    .set_format(want)
                    .map_err(|source| InputError::Storage { index, source })?;
                Ok(want)
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
