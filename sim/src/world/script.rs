//! The scripted primary: steps that play the primary by hand on the secondary's connection
//! (`send T`, `send S`, `send C`, literal messages, `read`), through the one stream encoder.

use crate::workload::Transaction;
use zrs::protocol::message::{RecordHeader, TransactionHeader};
use zrs::protocol::StreamEncoder;

use zrs::protocol::FrameSink;

use super::{World, WorldError};

/// Encoded messages, each kept apart (each is delivered on its own).
struct Messages(Vec<Vec<u8>>);

impl FrameSink for Messages {
    fn frame(&mut self, payload: &[u8]) {
        self.0.push(zrs::protocol::framing::frame(payload));
    }
}

impl World {
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
    pub(super) fn next_transaction(&self) -> Result<usize, WorldError> {
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

    pub(super) fn transaction(&self, index: usize) -> &Transaction {
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

    /// Sends the current transaction's next record: `S`, then its data — or, for a blob
    /// record whose file the primary node holds, `B`, the data and the file in 64 KiB
    /// blocks, as zc.zrs's primary (and `secondary-blob.test`'s `send_transaction`) does.
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
        let blob = match &data {
            Some(d) if zrs::storage::blob::is_blob_record(d) => self
                .node
                .storage()
                .open_blob(record.oid, t.tid)
                .map_err(|e| WorldError::PrimaryBlob(e.to_string()))?,
            _ => None,
        };
        self.feed.current = Some((index, sent + 1));
        match blob {
            Some(mut blob) => {
                let mut result = Ok(());
                self.send_with(|encoder, out| {
                    result = encoder.blob(&header, data.as_deref(), blob.len, &mut blob.file, out)
                })?;
                result.map_err(|e| WorldError::PrimaryBlob(e.to_string()))
            }
            None => self.send_with(|encoder, out| encoder.store(&header, data.as_deref(), out)),
        }
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
}
