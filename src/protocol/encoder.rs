//! The primary's side of the replication stream: the one encoder of `T` / `S` + data / `C`.
//!
//! A [`StreamEncoder`] is made for one connection from the start tid the secondary sent
//! (its running md5 is seeded with it, see [`checksum`](super::checksum)). Each call
//! pickles one message as zc.zrs's primary does ([`Message::encode_fast`]: protocol 1,
//! fast mode), hashes its payload, and hands the payload to a [`FrameSink`], which frames
//! it (a `Vec<u8>` appends the length prefix and the payload). The real primary, the
//! simulator's scripted `send` steps and every test that plays a primary go through it, so
//! there is one definition of what a primary sends.
//!
//! Blob records (protocol `zrs2.1`): [`StreamEncoder::blob`] sends `B`, the record's data,
//! then the blob file in 64 KiB blocks ([`BLOB_BLOCK_SIZE`]), read as they are sent.
//!
//! Hashing: [`StreamEncoder::new`] hashes each message as it writes it and writes each `C`
//! itself. [`StreamEncoder::unsealed`] hashes nothing and writes into an [`Unsealed`]
//! window, marking where each `C` goes, for a [`Sealer`](super::seal::Sealer) to hash and
//! complete elsewhere ([`seal`](super::seal)): the same bytes, the md5 off the encoding
//! thread. The two differ only in their [`Commits`] parameter.

use std::io::{self, Read};

use crate::pickle::encode::dumps_fast;
use crate::pickle::{loads, Value};
use crate::protocol::checksum::StreamChecksum;
use crate::protocol::framing::{write_frame, PREFIX_LEN};
use crate::protocol::message::{Message, RecordHeader, TransactionHeader};
use crate::protocol::seal::{commit_message, Unsealed};
use crate::storage::{DataRecord, TransactionMeta, TransactionRecord};
use crate::tid::Tid;

/// Where encoded messages go, one payload at a time (without its length prefix).
pub trait FrameSink {
    fn frame(&mut self, payload: &[u8]);

    /// One message of what `input` yields, up to `max` bytes (fewer only where it ends):
    /// a blob block, handed to `hash` once in place; returns its length. Sinks that hold
    /// their bytes read it into place ([`read_frame`]); this default reads it into a buffer
    /// first.
    fn frame_from(
        &mut self,
        input: &mut dyn Read,
        max: usize,
        hash: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        let mut payload = vec![0; max];
        let n = read_block(input, &mut payload)?;
        payload.truncate(n);
        hash(&payload);
        self.frame(&payload);
        Ok(payload.len())
    }
}

/// Appends each message framed: the bytes to write on the connection.
impl FrameSink for Vec<u8> {
    fn frame(&mut self, payload: &[u8]) {
        write_frame(self, payload);
    }

    fn frame_from(
        &mut self,
        input: &mut dyn Read,
        max: usize,
        hash: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        let payload = read_frame(self, input, max)?;
        hash(&self[payload..]);
        Ok(self.len() - payload)
    }
}

/// [`FrameSink::frame_from`] straight into `out`: the length prefix, then up to `max`
/// bytes read into the buffer's own memory (one `read` per block; the room is zeroed
/// first, which costs far less than copying a block from a buffer). Returns where the
/// payload starts; on an error `out` is as it was.
pub(crate) fn read_frame(out: &mut Vec<u8>, input: &mut dyn Read, max: usize) -> io::Result<usize> {
    let start = out.len();
    let payload = start + PREFIX_LEN;
    out.resize(payload + max, 0);
    match read_block(input, &mut out[payload..]) {
        Ok(n) => {
            out.truncate(payload + n);
            let length = u32::try_from(n).expect("a block is less than 4 GiB");
            out[start..payload].copy_from_slice(&length.to_be_bytes());
            Ok(payload)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The size of a blob's blocks on the wire, as zc.zrs's primary sends them (the last block
/// of a blob is shorter, unless the blob's size is a multiple of it).
pub const BLOB_BLOCK_SIZE: usize = 1 << 16;

/// How a [`StreamEncoder`] keeps the running checksum for a sink of type `O`: hashing as
/// it goes ([`StreamChecksum`], any sink), or leaving it to a sealer ([`Deferred`], into an
/// [`Unsealed`] window).
pub trait Commits<O: ?Sized> {
    /// A message's payload goes out.
    fn update(&mut self, payload: &[u8]);
    /// A transaction ends: its `C` goes here.
    fn commit(&mut self, out: &mut O);
}

impl<O: FrameSink + ?Sized> Commits<O> for StreamChecksum {
    fn update(&mut self, payload: &[u8]) {
        StreamChecksum::update(self, payload);
    }

    fn commit(&mut self, out: &mut O) {
        out.frame(&commit_message(self));
    }
}

/// No checksum in the encoder: each `C` is marked in the [`Unsealed`] window, for its
/// [`Sealer`](super::seal::Sealer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deferred;

impl Commits<Unsealed> for Deferred {
    fn update(&mut self, _payload: &[u8]) {}

    fn commit(&mut self, out: &mut Unsealed) {
        out.commit_here();
    }
}

/// The primary's encoder of one connection's stream; see the module docs.
#[derive(Clone, Debug)]
pub struct StreamEncoder<C = StreamChecksum> {
    checksum: C,
    /// Reused for `S` messages, the one message sent per record.
    scratch: Vec<u8>,
}

impl StreamEncoder {
    /// An encoder for a stream that continues after `start` (the tid the secondary sent),
    /// hashing as it goes.
    pub fn new(start: Tid) -> StreamEncoder {
        StreamEncoder {
            checksum: StreamChecksum::new(start),
            scratch: Vec::new(),
        }
    }

    /// The digest a `C` sent now would carry.
    pub fn digest(&self) -> [u8; 16] {
        self.checksum.digest()
    }
}

impl StreamEncoder<Deferred> {
    /// An encoder that hashes nothing: it writes into [`Unsealed`] windows, which a
    /// [`Sealer`](super::seal::Sealer) seeded with the start tid completes.
    pub fn unsealed() -> StreamEncoder<Deferred> {
        StreamEncoder {
            checksum: Deferred,
            scratch: Vec::new(),
        }
    }
}

impl<C> StreamEncoder<C> {
    /// Sends any payload as one message, hashed like every message of the stream (the
    /// scripted primary's literal messages; the data message after an `S`).
    pub fn message<O: FrameSink>(&mut self, payload: &[u8], out: &mut O)
    where
        C: Commits<O>,
    {
        self.checksum.update(payload);
        out.frame(payload);
    }

    /// One message of up to `max` bytes read from `input` ([`FrameSink::frame_from`]),
    /// hashed like every message; returns its length (0 where `input` had nothing more).
    pub fn message_from<O: FrameSink>(
        &mut self,
        input: &mut dyn Read,
        max: usize,
        out: &mut O,
    ) -> io::Result<usize>
    where
        C: Commits<O>,
    {
        let checksum = &mut self.checksum;
        out.frame_from(input, max, &mut |payload| checksum.update(payload))
    }

    /// `('T', (tid, status, user, description, extension))`: a transaction begins.
    pub fn transaction_header<O: FrameSink>(&mut self, header: &TransactionHeader, out: &mut O)
    where
        C: Commits<O>,
    {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        transaction_message(header, &mut scratch);
        self.message(&scratch, out);
        self.scratch = scratch;
    }

    /// `('S', (oid, serial, version, data_txn))` followed by the record's data as a raw
    /// message (empty where the record has no data: it undoes the object's creation).
    pub fn store<O: FrameSink>(&mut self, record: &RecordHeader, data: Option<&[u8]>, out: &mut O)
    where
        C: Commits<O>,
    {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        if record.version.is_empty() {
            store_message(record, &mut scratch);
        } else {
            scratch.extend_from_slice(&Message::Store(record.clone()).encode_fast());
        }
        self.message(&scratch, out);
        self.scratch = scratch;
        self.message(data.unwrap_or_default(), out);
    }

    /// `('B', (oid, serial, version, data_txn, blocks))`, the record's data as a raw
    /// message, then the blob file, `len` bytes read from `blob`, in `blocks` messages of
    /// [`BLOB_BLOCK_SIZE`] — what zc.zrs's primary sends for a record whose blob file it
    /// has. Memory stays one block whatever the size. A file shorter than `len` is an
    /// error (zc.zrs: "Too much blob data") that leaves the stream mid-blob: the caller
    /// must drop the connection.
    pub fn blob<O: FrameSink>(
        &mut self,
        record: &RecordHeader,
        data: Option<&[u8]>,
        len: u64,
        blob: &mut impl Read,
        out: &mut O,
    ) -> io::Result<()>
    where
        C: Commits<O>,
    {
        let blocks = self.blob_header(record, data, len, out);
        let mut block = vec![0u8; BLOB_BLOCK_SIZE.min(usize::try_from(len).unwrap_or(usize::MAX))];
        for sent in 0..blocks {
            let n = read_block(blob, &mut block)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "blob of oid {:?} at {:?}: the file ended after {sent} of {blocks} blocks",
                        record.oid, record.serial
                    ),
                ));
            }
            self.message(&block[..n], out);
        }
        Ok(())
    }

    /// The `B` message and the record's data; returns how many blocks must follow (each a
    /// [`StreamEncoder::message`] of [`BLOB_BLOCK_SIZE`] bytes, the last one shorter), for
    /// a sender that sends them as its connection can take them.
    pub fn blob_header<O: FrameSink>(
        &mut self,
        record: &RecordHeader,
        data: Option<&[u8]>,
        len: u64,
        out: &mut O,
    ) -> u64
    where
        C: Commits<O>,
    {
        let blocks = len.div_ceil(BLOB_BLOCK_SIZE as u64);
        let header = Message::Blob {
            record: record.clone(),
            blocks,
        };
        self.message(&header.encode_fast(), out);
        self.message(data.unwrap_or_default(), out);
        blocks
    }

    /// `('C', (md5,))`: the transaction ends; the digest covers everything sent before.
    pub fn commit<O: FrameSink>(&mut self, out: &mut O)
    where
        C: Commits<O>,
    {
        self.checksum.commit(out);
    }

    /// `('C', ())`: a commit without checksum, as primaries before zc.zrs 2 sent it.
    pub fn legacy_commit<O: FrameSink>(&mut self, out: &mut O)
    where
        C: Commits<O>,
    {
        self.message(&Message::Commit { checksum: None }.encode_fast(), out);
    }

    /// A whole committed transaction as a storage holds it: `T`, `S` + data per record,
    /// `C`. Fails only where the stored extension is not a pickled dict.
    pub fn transaction<O: FrameSink>(
        &mut self,
        txn: &TransactionRecord,
        out: &mut O,
    ) -> Result<(), ExtensionError>
    where
        C: Commits<O>,
    {
        self.transaction_header(&header(&txn.meta)?, out);
        for record in &txn.records {
            self.store(&record_header(record), record.data.as_deref(), out);
        }
        self.commit(out);
        Ok(())
    }
}

/// Reads until `buf` is full or the input ends, as Python's `file.read(n)` does.
pub fn read_block(input: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match input.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `('S', (oid, serial, '', data_txn))` exactly as [`Message::encode_fast`] pickles it (protocol
/// 1, fast mode: Python 3 writes each 8-byte id as `_codecs.encode(<latin-1 str>, 'latin1')`),
/// written directly: it is the one message sent per record, and building the generic value
/// tree for it cost as much as the rest of the serving. `tests` check it against the generic
/// encoder.
fn store_message(record: &RecordHeader, out: &mut Vec<u8>) {
    out.extend_from_slice(b"(X\x01\x00\x00\x00S(");
    pickled_bytes(&record.oid.0, out);
    pickled_bytes(&record.serial.0, out);
    out.extend_from_slice(b"X\x00\x00\x00\x00");
    match &record.data_txn {
        None => out.push(b'N'),
        Some(t) => pickled_bytes(&t.0, out),
    }
    out.extend_from_slice(b"tt.");
}

/// `('T', (tid, status, user, description, extension))` exactly as [`Message::encode_fast`]
/// pickles it, the fixed parts written directly and only the extension dict through the
/// generic pickler (in fast mode nothing is memoized, so its pickle, without the final
/// STOP, is what it is inside the message). Building the whole message as a value tree
/// cloned the header and its extension for every transaction. `tests` check it against
/// the generic encoder.
fn transaction_message(t: &TransactionHeader, out: &mut Vec<u8>) {
    if !t.status.is_ascii() {
        // A status is ' ' or 'p' (or 'u', skipped); anything else the generic way.
        out.extend_from_slice(&Message::Transaction(t.clone()).encode_fast());
        return;
    }
    out.extend_from_slice(b"(X\x01\x00\x00\x00T(");
    pickled_bytes(&t.tid.0, out);
    out.extend_from_slice(b"X\x01\x00\x00\x00");
    out.push(t.status);
    for text in [&t.user, &t.description] {
        if text.is_empty() {
            // Python 3 pickles b'' below protocol 3 as `bytes()`.
            out.extend_from_slice(b"c__builtin__\nbytes\n)R");
        } else {
            pickled_bytes(text, out);
        }
    }
    let extension = dumps_fast(&t.extension, 1);
    out.extend_from_slice(extension.strip_suffix(b".").unwrap_or(&extension));
    out.extend_from_slice(b"tt.");
}

/// Bytes as protocol 1 pickles non-empty Python 3 bytes: the latin-1 text (as UTF-8)
/// re-encoded.
pub(crate) fn pickled_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"c_codecs\nencode\n(X");
    let len: u32 = bytes.iter().map(|&b| if b < 0x80 { 1 } else { 2 }).sum();
    out.extend_from_slice(&len.to_le_bytes());
    for &b in bytes {
        if b < 0x80 {
            out.push(b);
        } else {
            out.extend_from_slice(&[0xc0 | (b >> 6), 0x80 | (b & 0x3f)]);
        }
    }
    out.extend_from_slice(b"X\x06\x00\x00\x00latin1tR");
}

/// A stored transaction extension that is not a pickled dict (it cannot be sent as the
/// dict zc.zrs's `T` message carries).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transaction {tid:?}: its extension is not a pickled dict: {what}")]
pub struct ExtensionError {
    pub tid: Tid,
    pub what: String,
}

/// The `T` message of a stored transaction: the extension decoded (empty bytes are `{}`),
/// as ZODB's iterator hands it to zc.zrs.
pub fn header(meta: &TransactionMeta) -> Result<TransactionHeader, ExtensionError> {
    let extension = if meta.extension.is_empty() {
        Value::Dict(Vec::new())
    } else {
        let error = |what: String| ExtensionError {
            tid: meta.tid,
            what,
        };
        match loads(&meta.extension).map_err(|e| error(e.to_string()))? {
            dict @ Value::Dict(_) => dict,
            _ => return Err(error("not a dict".into())),
        }
    };
    Ok(TransactionHeader {
        tid: meta.tid,
        status: meta.status,
        user: meta.user.clone(),
        description: meta.description.clone(),
        extension,
    })
}

/// The `S` message of a stored record.
pub fn record_header(record: &DataRecord) -> RecordHeader {
    RecordHeader {
        oid: record.oid,
        serial: record.serial,
        version: Vec::new(),
        data_txn: record.data_txn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::framing::FrameDecoder;
    use crate::tid::Oid;

    #[test]
    fn a_transaction_is_t_s_data_c_with_the_running_md5() {
        let start = Tid::from_u64(7);
        let txn = TransactionRecord {
            meta: TransactionMeta {
                tid: Tid::from_u64(9),
                status: b' ',
                user: b"u".to_vec(),
                description: b"d".to_vec(),
                extension: Vec::new(),
            },
            records: vec![
                DataRecord {
                    oid: Oid::ZERO,
                    serial: Tid::from_u64(9),
                    data: Some(b"root".as_slice().into()),
                    data_txn: None,
                },
                DataRecord {
                    oid: Oid::from_u64(1),
                    serial: Tid::from_u64(9),
                    data: None,
                    data_txn: Some(Tid::from_u64(8)),
                },
            ],
        };
        let mut out = Vec::new();
        StreamEncoder::new(start)
            .transaction(&txn, &mut out)
            .unwrap();
        let mut d = FrameDecoder::new(u32::MAX);
        d.feed(&out);
        let frames: Vec<Vec<u8>> = std::iter::from_fn(|| d.next_frame().unwrap()).collect();
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[2], b"root");
        assert_eq!(frames[4], b"", "no data: an empty message");
        let Message::Transaction(t) = Message::decode(&frames[0]).unwrap() else {
            panic!("T first")
        };
        assert_eq!(
            (t.tid, t.extension),
            (Tid::from_u64(9), Value::Dict(vec![]))
        );
        let Message::Store(s) = Message::decode(&frames[3]).unwrap() else {
            panic!("S")
        };
        assert_eq!(s.data_txn, Some(Tid::from_u64(8)));
        let mut md5 = StreamChecksum::new(start);
        for f in &frames[..5] {
            md5.update(f);
        }
        assert_eq!(
            Message::decode(&frames[5]).unwrap(),
            Message::Commit {
                checksum: Some(md5.digest())
            }
        );
    }

    #[test]
    fn the_direct_s_encoding_is_the_generic_one() {
        let ids = [
            0u64,
            1,
            0x036c_6b90_f777_7778,
            0x8080_8080_ffff_ffff,
            u64::MAX,
            0x7f80_00ff_1234_c3a9,
        ];
        for &a in &ids {
            for &b in &ids {
                for data_txn in [None, Some(Tid::from_u64(a ^ b))] {
                    let record = RecordHeader {
                        oid: Oid::from_u64(a),
                        serial: Tid::from_u64(b),
                        version: Vec::new(),
                        data_txn,
                    };
                    let mut direct = Vec::new();
                    store_message(&record, &mut direct);
                    assert_eq!(direct, Message::Store(record).encode_fast());
                }
            }
        }
    }

    /// Yields its bytes a few at a time, interrupted now and then.
    struct Dribble<'a>(&'a [u8], usize);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 += 1;
            if self.1 == 4 {
                self.1 = 0;
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// `read_block` fills the buffer, a few bytes per read, and reads no further once it is
    /// full: a source with nothing more to give yet (a pipe, a socket) could block or fail
    /// on one more read. Where the input ends first, it returns what there was.
    #[test]
    fn read_block_reads_until_the_buffer_is_full_and_no_further() {
        /// Yields its bytes three at a time, then fails every read.
        struct Then<'a>(&'a [u8]);
        impl Read for Then<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("read past the bytes asked for"));
                }
                let n = buf.len().min(self.0.len()).min(3);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut buf = [0u8; 8];
        assert_eq!(read_block(&mut Then(b"12345678"), &mut buf).unwrap(), 8);
        assert_eq!(&buf, b"12345678");
        let mut buf = [0u8; 8];
        assert_eq!(read_block(&mut &b"abc"[..], &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    }

    /// A sink that only takes whole payloads (the trait's default `frame_from`).
    struct Plain(Vec<u8>);

    impl FrameSink for Plain {
        fn frame(&mut self, payload: &[u8]) {
            write_frame(&mut self.0, payload);
        }
    }

    #[test]
    fn blocks_read_into_place_are_the_blocks_framed_and_hashed() {
        let content: Vec<u8> = (0..150_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut expected = Vec::new();
        let mut encoder = StreamEncoder::new(Tid::ZERO);
        for block in content.chunks(BLOB_BLOCK_SIZE) {
            encoder.message(block, &mut expected);
        }
        encoder.message(b"", &mut expected);

        let mut in_vec = StreamEncoder::new(Tid::ZERO);
        let mut vec = b"before".to_vec();
        let mut plain_encoder = StreamEncoder::new(Tid::ZERO);
        let mut plain = Plain(b"before".to_vec());
        let mut unsealed = Unsealed::default();
        let (mut a, mut b, mut c) = (
            Dribble(&content, 0),
            Dribble(&content, 0),
            Dribble(&content, 0),
        );
        let mut sizes = Vec::new();
        loop {
            let n = in_vec
                .message_from(&mut a, BLOB_BLOCK_SIZE, &mut vec)
                .unwrap();
            assert_eq!(
                plain_encoder
                    .message_from(&mut b, BLOB_BLOCK_SIZE, &mut plain)
                    .unwrap(),
                n
            );
            assert_eq!(
                StreamEncoder::unsealed()
                    .message_from(&mut c, BLOB_BLOCK_SIZE, &mut unsealed)
                    .unwrap(),
                n,
                "the length read into an unsealed window"
            );
            sizes.push(n);
            if n == 0 {
                break;
            }
        }
        assert_eq!(sizes, [65_536, 65_536, 18_928, 0]);
        assert_eq!(&vec[6..], &expected[..]);
        assert_eq!(&plain.0[6..], &expected[..]);
        assert_eq!(in_vec.digest(), encoder.digest());
        assert_eq!(plain_encoder.digest(), encoder.digest());
        let mut sealer = crate::protocol::Sealer::new(Tid::ZERO);
        assert_eq!(sealer.seal(unsealed).to_vec(), expected);

        // A read error leaves the sink as it was.
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk"))
            }
        }
        let before = vec.clone();
        assert!(in_vec.message_from(&mut Broken, 10, &mut vec).is_err());
        assert_eq!(vec, before);
    }

    #[test]
    fn the_direct_t_encoding_is_the_generic_one() {
        let extensions = [
            Value::Dict(vec![]),
            Value::Dict(vec![
                (Value::Str("n".into()), Value::Int(2)),
                (
                    Value::Str("nested".into()),
                    Value::Dict(vec![(
                        Value::Str("list".into()),
                        Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(2)]),
                    )]),
                ),
                (Value::Str("bytes".into()), Value::Bytes(vec![0, 0xff])),
                (Value::Str("empty".into()), Value::Bytes(vec![])),
                (Value::Str("é".into()), Value::Str("ü".into())),
            ]),
        ];
        let texts: [&[u8]; 5] = [b"", b"/ plain", b"\xe9t\xe9", &[0x80; 300], b"initial"];
        for (i, extension) in extensions.iter().enumerate() {
            for (j, user) in texts.iter().enumerate() {
                for description in texts {
                    for status in [b' ', b'p', 0xe9] {
                        let header = TransactionHeader {
                            tid: Tid::from_u64(0x036c_6b90_f777_7778 ^ ((i * 7 + j) as u64)),
                            status,
                            user: user.to_vec(),
                            description: description.to_vec(),
                            extension: extension.clone(),
                        };
                        let mut direct = Vec::new();
                        transaction_message(&header, &mut direct);
                        assert_eq!(direct, Message::Transaction(header).encode_fast());
                    }
                }
            }
        }
    }

    #[test]
    fn an_extension_that_is_not_a_dict_is_refused_naming_the_transaction() {
        let meta = TransactionMeta {
            tid: Tid::from_u64(3),
            status: b' ',
            user: Vec::new(),
            description: Vec::new(),
            extension: b"\x80\x03K\x01.".to_vec(),
        };
        let e = header(&meta).unwrap_err();
        assert_eq!(e.tid, Tid::from_u64(3));
        assert!(header(&TransactionMeta {
            extension: b"junk".to_vec(),
            ..meta
        })
        .is_err());
    }

    #[test]
    fn a_blob_goes_in_64_kib_blocks_hashed_like_everything_else() {
        let record = RecordHeader {
            oid: Oid::from_u64(3),
            serial: Tid::from_u64(9),
            version: Vec::new(),
            data_txn: None,
        };
        for (len, sizes) in [
            (0usize, vec![]),
            (1, vec![1]),
            (65_536, vec![65_536]),
            (65_537, vec![65_536, 1]),
            (200_000, vec![65_536, 65_536, 65_536, 3_392]),
        ] {
            let content: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut encoder = StreamEncoder::new(Tid::ZERO);
            let mut out = Vec::new();
            encoder
                .blob(
                    &record,
                    Some(b"data"),
                    len as u64,
                    &mut &content[..],
                    &mut out,
                )
                .unwrap();
            let mut d = FrameDecoder::new(u32::MAX);
            d.feed(&out);
            let frames: Vec<Vec<u8>> = std::iter::from_fn(|| d.next_frame().unwrap()).collect();
            assert_eq!(
                Message::decode(&frames[0]).unwrap(),
                Message::Blob {
                    record: record.clone(),
                    blocks: sizes.len() as u64
                }
            );
            assert_eq!(frames[1], b"data");
            let blocks: Vec<usize> = frames[2..].iter().map(Vec::len).collect();
            assert_eq!(blocks, sizes, "a blob of {len} bytes");
            assert_eq!(frames[2..].concat(), content);
            let mut md5 = StreamChecksum::new(Tid::ZERO);
            for f in &frames {
                md5.update(f);
            }
            assert_eq!(encoder.digest(), md5.digest());
        }
        // A file shorter than announced: an error naming the blob.
        let e = StreamEncoder::new(Tid::ZERO)
            .blob(&record, None, 70_000, &mut &[0u8; 10][..], &mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("after 1 of 2 blocks"), "{e}");
    }
}
