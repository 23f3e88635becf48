//! ZODB object records of `persistent.mapping.PersistentMapping`, byte for byte as ZODB 6
//! writes them, so Python ZODB can load what the simulated primary sends.
//!
//! A record is two protocol-3 pickles written by one pickler (so the second's memo continues
//! the first's): the class, then the state `{'data': {key: value, …}}`. A value is a
//! reference to another persistent mapping or to a `ZODB.blob.Blob` — `(oid, class)` as a
//! persistent id — or bytes. A blob's own record is [`BLOB_RECORD`].
//! Only this shape is written, so it is written directly rather than through a general
//! pickler; `tests` pins it to bytes made by Python ZODB.

use std::sync::Arc;

use zrs::Oid;

/// A value held in a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Another persistent mapping.
    Ref(Oid),
    /// Plain bytes (a payload of any size), shared: a commit copies the items of every
    /// mapping it changes, and payloads run to hundreds of KiB.
    Bytes(Arc<[u8]>),
    /// A `ZODB.blob.Blob`.
    Blob(Oid),
}

/// The record of every `ZODB.blob.Blob`, as ZODB 6 writes it: the class, and the state
/// `None` (the bytes live in the blob file).
pub const BLOB_RECORD: &[u8] = b"\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.";

/// The record of a mapping with these items, in insertion order.
pub fn mapping_record(items: &[(String, Value)]) -> Vec<u8> {
    let mut w = Writer::default();
    // The class pickle.
    w.out
        .extend_from_slice(b"\x80\x03cpersistent.mapping\nPersistentMapping\n");
    let class_memo = w.put();
    w.out.push(b'.');
    // The state pickle: {'data': {items}}.
    w.out.extend_from_slice(b"\x80\x03}");
    w.put();
    w.unicode("data");
    w.out.push(b'}');
    w.put();
    let mut blob_class = None;
    // CPython batches dict items by 1000: one item takes SETITEM, more MARK … SETITEMS.
    for batch in items.chunks(1000) {
        if batch.len() > 1 {
            w.out.push(b'(');
        }
        for (key, value) in batch {
            w.unicode(key);
            match value {
                Value::Ref(oid) => {
                    w.bytes(&oid.0);
                    w.get(class_memo);
                    w.out.push(0x86); // TUPLE2
                    w.put();
                    w.out.push(b'Q'); // BINPERSID
                }
                Value::Blob(oid) => {
                    w.bytes(&oid.0);
                    // The class is written (and memoized) where first needed.
                    match blob_class {
                        Some(memo) => w.get(memo),
                        None => {
                            w.out.extend_from_slice(b"cZODB.blob\nBlob\n");
                            blob_class = Some(w.put());
                        }
                    }
                    w.out.push(0x86); // TUPLE2
                    w.put();
                    w.out.push(b'Q'); // BINPERSID
                }
                Value::Bytes(b) => w.bytes(b),
            }
        }
        w.out.push(if batch.len() > 1 { b'u' } else { b's' });
    }
    w.out.extend_from_slice(b"s.");
    w.out
}

#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    memo: u32,
}

impl Writer {
    fn put(&mut self) -> u32 {
        let n = self.memo;
        if n < 256 {
            self.out.extend_from_slice(&[b'q', n as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend_from_slice(&n.to_le_bytes());
        }
        self.memo += 1;
        n
    }

    fn get(&mut self, n: u32) {
        if n < 256 {
            self.out.extend_from_slice(&[b'h', n as u8]);
        } else {
            self.out.push(b'j');
            self.out.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn unicode(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
        self.put();
    }

    fn bytes(&mut self, b: &[u8]) {
        if b.len() < 256 {
            self.out.extend_from_slice(&[b'C', b.len() as u8]);
        } else {
            self.out.push(b'B');
            self.out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        }
        self.out.extend_from_slice(b);
        self.put();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bytes written by Python ZODB 6.4 (persistent 6) for the same mappings.
    #[test]
    fn empty_mapping_matches_zodb() {
        assert_eq!(
            mapping_record(&[]),
            b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s.".to_vec()
        );
    }

    #[test]
    fn one_reference_matches_zodb() {
        let r = mapping_record(&[("x".into(), Value::Ref(Oid::from_u64(1)))]);
        assert_eq!(r, b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03X\x01\x00\x00\x00xq\x04C\x08\x00\x00\x00\x00\x00\x00\x00\x01q\x05h\x00\x86q\x06Qss.".to_vec());
    }

    #[test]
    fn two_references_match_zodb() {
        let r = mapping_record(&[
            ("a".into(), Value::Ref(Oid::from_u64(1))),
            ("b".into(), Value::Ref(Oid::from_u64(2))),
        ]);
        assert_eq!(r, b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03(X\x01\x00\x00\x00aq\x04C\x08\x00\x00\x00\x00\x00\x00\x00\x01q\x05h\x00\x86q\x06QX\x01\x00\x00\x00bq\x07C\x08\x00\x00\x00\x00\x00\x00\x00\x02q\x08h\x00\x86q\tQus.".to_vec());
    }

    #[test]
    fn bytes_values_match_zodb() {
        let r = mapping_record(&[
            ("v".into(), Value::Bytes(b"xy".as_slice().into())),
            ("w".into(), Value::Bytes(vec![b'z'; 300].into())),
        ]);
        let mut expected = b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03(X\x01\x00\x00\x00vq\x04C\x02xyq\x05X\x01\x00\x00\x00wq\x06B,\x01\x00\x00".to_vec();
        expected.extend(vec![b'z'; 300]);
        expected.extend_from_slice(b"q\x07us.");
        assert_eq!(r.len(), 395);
        assert_eq!(r, expected);
    }

    #[test]
    fn blob_references_match_zodb() {
        // `x['f'] = Blob(b'hi'); x['g'] = Blob()` in one commit, as ZODB 6.4 stored `x`.
        let r = mapping_record(&[
            ("f".into(), Value::Blob(Oid::from_u64(2))),
            ("g".into(), Value::Blob(Oid::from_u64(3))),
        ]);
        assert_eq!(r, b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03(X\x01\x00\x00\x00fq\x04C\x08\x00\x00\x00\x00\x00\x00\x00\x02q\x05cZODB.blob\nBlob\nq\x06\x86q\x07QX\x01\x00\x00\x00gq\x08C\x08\x00\x00\x00\x00\x00\x00\x00\x03q\th\x06\x86q\nQus.".to_vec());
        // A mapping and a blob side by side (the root after `root['y'] = Blob(b'')`).
        let r = mapping_record(&[
            ("x".into(), Value::Ref(Oid::from_u64(1))),
            ("y".into(), Value::Blob(Oid::from_u64(4))),
        ]);
        assert_eq!(r, b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03(X\x01\x00\x00\x00xq\x04C\x08\x00\x00\x00\x00\x00\x00\x00\x01q\x05h\x00\x86q\x06QX\x01\x00\x00\x00yq\x07C\x08\x00\x00\x00\x00\x00\x00\x00\x04q\x08cZODB.blob\nBlob\nq\t\x86q\nQus.".to_vec());
        assert!(zrs::storage::blob::is_blob_record(BLOB_RECORD));
    }
}
