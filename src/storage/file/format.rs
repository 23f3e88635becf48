//! The byte layout of a FileStorage (`Data.fs`) as Python ZODB 6.4 writes it: the file
//! magic, transaction headers and data record headers, encoded and decoded.
//!
//! Only layouts live here; reading files, indexing and writing transactions are in the
//! sibling modules. `FORMAT.md` next to this file describes the format in prose.

/// The first four bytes of a FileStorage written by Python 3 ZODB (ZODB 6.4's
/// `FILESTORAGE_MAGIC`); new files get it.
pub const MAGIC: &[u8; 4] = b"FS30";
/// The magic of files written by Python 2 ZODB. The record layout is the same (only the
/// pickles inside differ), so such files are read and appended to as they are.
pub const MAGIC_PY2: &[u8; 4] = b"FS21";
/// Size of the transaction header before user, description and extension.
pub const TXN_HEADER_LEN: usize = 23;
/// Size of a data record header.
pub const DATA_HEADER_LEN: usize = 42;
/// Offset of the status byte inside a transaction header.
pub const STATUS_OFFSET: u64 = 16;
/// Longest user, description or extension a header can record (a 2-byte length).
pub const MAX_META_LEN: usize = u16::MAX as usize;

/// Transaction status: committed and not packed.
pub const STATUS_COMMITTED: u8 = b' ';
/// Transaction status: kept by a pack.
pub const STATUS_PACKED: u8 = b'p';
/// Transaction status: voted but not finished (only ever at the end of a file).
pub const STATUS_CHECKPOINT: u8 = b'c';
/// Transaction status: "uncertain", a legacy marker of non-transactional undo.
pub const STATUS_UNDONE: u8 = b'u';

/// The fixed part of a transaction header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnHeader {
    pub tid: [u8; 8],
    /// Length of the transaction record not counting the trailing redundant length.
    pub tlen: u64,
    pub status: u8,
    pub ulen: u16,
    pub dlen: u16,
    pub elen: u16,
}

impl TxnHeader {
    pub fn decode(b: &[u8; TXN_HEADER_LEN]) -> TxnHeader {
        TxnHeader {
            tid: b[0..8].try_into().expect("8 bytes"),
            tlen: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
            status: b[16],
            ulen: u16::from_be_bytes([b[17], b[18]]),
            dlen: u16::from_be_bytes([b[19], b[20]]),
            elen: u16::from_be_bytes([b[21], b[22]]),
        }
    }

    pub fn encode(&self) -> [u8; TXN_HEADER_LEN] {
        let mut b = [0u8; TXN_HEADER_LEN];
        b[0..8].copy_from_slice(&self.tid);
        b[8..16].copy_from_slice(&self.tlen.to_be_bytes());
        b[16] = self.status;
        b[17..19].copy_from_slice(&self.ulen.to_be_bytes());
        b[19..21].copy_from_slice(&self.dlen.to_be_bytes());
        b[21..23].copy_from_slice(&self.elen.to_be_bytes());
        b
    }

    /// Header length including user, description and extension.
    pub fn header_len(&self) -> u64 {
        TXN_HEADER_LEN as u64 + self.ulen as u64 + self.dlen as u64 + self.elen as u64
    }
}

/// A data record header. `plen == 0` means an 8-byte backpointer follows instead of data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataHeader {
    pub oid: [u8; 8],
    pub tid: [u8; 8],
    /// Position of the object's previous record, 0 for none.
    pub prev: u64,
    /// Position of the transaction header this record belongs to.
    pub tloc: u64,
    /// The retired version length; ZODB 6 refuses anything but 0.
    pub vlen: u16,
    pub plen: u64,
}

impl DataHeader {
    pub fn decode(b: &[u8; DATA_HEADER_LEN]) -> DataHeader {
        DataHeader {
            oid: b[0..8].try_into().expect("8 bytes"),
            tid: b[8..16].try_into().expect("8 bytes"),
            prev: u64::from_be_bytes(b[16..24].try_into().expect("8 bytes")),
            tloc: u64::from_be_bytes(b[24..32].try_into().expect("8 bytes")),
            vlen: u16::from_be_bytes([b[32], b[33]]),
            plen: u64::from_be_bytes(b[34..42].try_into().expect("8 bytes")),
        }
    }

    pub fn encode(&self) -> [u8; DATA_HEADER_LEN] {
        let mut b = [0u8; DATA_HEADER_LEN];
        b[0..8].copy_from_slice(&self.oid);
        b[8..16].copy_from_slice(&self.tid);
        b[16..24].copy_from_slice(&self.prev.to_be_bytes());
        b[24..32].copy_from_slice(&self.tloc.to_be_bytes());
        b[32..34].copy_from_slice(&self.vlen.to_be_bytes());
        b[34..42].copy_from_slice(&self.plen.to_be_bytes());
        b
    }

    /// Length of the whole record: header plus data, or plus the 8-byte backpointer.
    /// Saturates so that a corrupt `plen` cannot overflow (the caller bounds-checks).
    pub fn record_len(&self) -> u64 {
        (DATA_HEADER_LEN as u64).saturating_add(if self.plen == 0 { 8 } else { self.plen })
    }
}

/// Encode a whole data record into `out`: header, then data or backpointer.
pub fn encode_record(out: &mut Vec<u8>, header: &DataHeader, body: RecordBody<'_>) {
    out.extend_from_slice(&header.encode());
    match body {
        RecordBody::Data(d) => out.extend_from_slice(d),
        RecordBody::Back(pos) => out.extend_from_slice(&pos.to_be_bytes()),
    }
}

/// What follows a data record header.
#[derive(Clone, Copy, Debug)]
pub enum RecordBody<'a> {
    Data(&'a [u8]),
    /// A backpointer: position of a record holding the data; 0 undoes the creation.
    Back(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_header_round_trips_big_endian() {
        let h = TxnHeader {
            tid: [1, 2, 3, 4, 5, 6, 7, 8],
            tlen: 0x0102_0304_0506_0708,
            status: b'p',
            ulen: 0x0a0b,
            dlen: 3,
            elen: 0xffff,
        };
        let b = h.encode();
        assert_eq!(&b[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b[16], b'p');
        assert_eq!(&b[17..19], &[0x0a, 0x0b]);
        assert_eq!(TxnHeader::decode(&b), h);
        assert_eq!(h.header_len(), 23 + 0x0a0b + 3 + 0xffff);
    }

    #[test]
    fn data_header_round_trips_and_record_len_counts_backpointer() {
        let h = DataHeader {
            oid: [0, 0, 0, 0, 0, 0, 0, 7],
            tid: [9; 8],
            prev: 4,
            tloc: 1234,
            vlen: 0,
            plen: 0,
        };
        let b = h.encode();
        assert_eq!(&b[32..34], &[0, 0]);
        assert_eq!(DataHeader::decode(&b), h);
        assert_eq!(h.record_len(), 50);
        let h2 = DataHeader { plen: 100, ..h };
        assert_eq!(h2.record_len(), 142);
        let huge = DataHeader {
            plen: u64::MAX,
            ..h
        };
        assert_eq!(huge.record_len(), u64::MAX);
    }

    #[test]
    fn encode_record_appends_data_or_backpointer() {
        let h = DataHeader {
            oid: [0; 8],
            tid: [0; 8],
            prev: 0,
            tloc: 4,
            vlen: 0,
            plen: 3,
        };
        let mut out = Vec::new();
        encode_record(&mut out, &h, RecordBody::Data(b"abc"));
        assert_eq!(out.len(), 45);
        assert_eq!(&out[42..], b"abc");
        out.clear();
        encode_record(&mut out, &DataHeader { plen: 0, ..h }, RecordBody::Back(77));
        assert_eq!(&out[42..], &77u64.to_be_bytes());
    }
}
