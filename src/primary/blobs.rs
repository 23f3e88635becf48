//! A transaction on its way to a secondary record by record, blobs block by block: how a
//! primary whose storage keeps blobs sends (protocol `zrs2.1`).
//!
//! As zc.zrs's `PrimaryProducer`: a record whose data is a blob's (its class pickle is
//! `ZODB.blob.Blob`) and whose blob file the storage has goes as `B`, the data, then the
//! file in 64 KiB blocks; any other record (a blob record whose file is gone included) as
//! `S` + data. Unlike zc.zrs, which writes a whole blob at once, [`Outgoing::fill`] stops
//! when the connection's window is full, mid-transaction or mid-blob, and goes on at the
//! next `writable`: a primary holds one window per connection whatever the blob's size.

use super::Window;
use crate::protocol::encoder::{header, record_header, Commits, BLOB_BLOCK_SIZE};
use crate::protocol::StreamEncoder;
use crate::storage::blob::is_blob_record;
use crate::storage::{DataRecord, ReadStorage, TransactionRecord};
use crate::tid::{Oid, Tid};

/// The rest of a transaction being sent.
pub(super) struct Outgoing {
    records: std::vec::IntoIter<DataRecord>,
    blob: Option<BlobBlocks>,
}

/// The blocks of a blob still to send.
struct BlobBlocks {
    oid: Oid,
    serial: Tid,
    file: Box<dyn std::io::Read + Send>,
    left: u64,
    blocks: u64,
}

impl Outgoing {
    /// Sends the transaction's `T`; the rest follows with [`Outgoing::fill`].
    pub(super) fn start<C, O>(
        txn: TransactionRecord,
        encoder: &mut StreamEncoder<C>,
        out: &mut O,
    ) -> Result<Outgoing, String>
    where
        O: Window,
        C: Commits<O>,
    {
        encoder.transaction_header(&header(&txn.meta).map_err(|e| e.to_string())?, out);
        Ok(Outgoing {
            records: txn.records.into_iter(),
            blob: None,
        })
    }

    /// Sends until `out` holds `window` bytes or the transaction is done (its `C` sent);
    /// returns whether it is done. An error leaves the stream mid-transaction: the
    /// connection must be closed.
    pub(super) fn fill<S, C, O>(
        &mut self,
        storage: &S,
        encoder: &mut StreamEncoder<C>,
        out: &mut O,
        window: usize,
    ) -> Result<bool, String>
    where
        S: ReadStorage + ?Sized,
        O: Window,
        C: Commits<O>,
    {
        while out.len() < window {
            if let Some(blob) = self.blob.as_mut() {
                if blob.left == 0 {
                    self.blob = None;
                    continue;
                }
                // Read straight into the window (no block buffer to copy from).
                let n = encoder
                    .message_from(&mut blob.file, BLOB_BLOCK_SIZE, out)
                    .map_err(|e| {
                        format!(
                            "reading the blob of {:?} at {:?}: {e}",
                            blob.oid, blob.serial
                        )
                    })?;
                if n == 0 {
                    // zc.zrs: AssertionError("Too much blob data"). (The empty message
                    // just framed goes nowhere: the window is dropped with the stream.)
                    return Err(format!(
                        "the blob file of {:?} at {:?} ended after {} of {} blocks",
                        blob.oid,
                        blob.serial,
                        blob.blocks - blob.left,
                        blob.blocks
                    ));
                }
                blob.left -= 1;
                continue;
            }
            let Some(record) = self.records.next() else {
                encoder.commit(out);
                return Ok(true);
            };
            let header = record_header(&record);
            let data = record.data.as_deref();
            if let Some(data) = data.filter(|d| is_blob_record(d)) {
                let file = storage
                    .open_blob(record.oid, record.serial)
                    .map_err(|e| e.to_string())?;
                if let Some(file) = file {
                    let blocks = encoder.blob_header(&header, Some(data), file.len, out);
                    self.blob = Some(BlobBlocks {
                        oid: record.oid,
                        serial: record.serial,
                        file: file.file,
                        left: blocks,
                        blocks,
                    });
                    continue;
                }
            }
            encoder.store(&header, data, out);
        }
        Ok(false)
    }
}
