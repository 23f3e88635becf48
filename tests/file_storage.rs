//! FileStorage specifics: reopening, crash recovery of damaged tails (with its warning),
//! corruption before the tail, durability modes, and an in-process crash test through a
//! backend that loses unsynced writes or tears the last one.

mod common;
use common::CountingBackend;

use std::io;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::storage::file::backend::{Backend, MemoryBackend};
use zrs::storage::ReadStorage;
use zrs::storage::{
    Durability, FileStorage, Format, Options, Storage, StorageError, TransactionMeta,
    TransactionRecord,
};
use zrs::{Oid, Tid};

fn t(n: u64) -> Tid {
    Tid::from_u64(n)
}
fn o(n: u64) -> Oid {
    Oid::from_u64(n)
}
fn meta(n: u64) -> TransactionMeta {
    TransactionMeta {
        tid: t(n),
        status: b' ',
        user: b"u".to_vec(),
        description: format!("txn {n}").into_bytes(),
        extension: Vec::new(),
    }
}

fn commit(s: &mut dyn Storage, n: u64, records: &[(u64, &[u8])]) {
    s.tpc_begin(meta(n)).unwrap();
    for &(oid, data) in records {
        s.restore(o(oid), t(n), Some(data), b"", None).unwrap();
    }
    s.tpc_vote().unwrap();
    s.tpc_finish().unwrap();
}

fn all(s: &dyn Storage) -> Vec<TransactionRecord> {
    s.iterator(None, None).collect::<Result<_, _>>().unwrap()
}

fn open_bytes(
    bytes: Vec<u8>,
    options: Options,
) -> (zrs::storage::Result<FileStorage>, Arc<MemoryBackend>) {
    let b = Arc::new(MemoryBackend::with_bytes(bytes));
    (
        FileStorage::open_with_backend("t.fs", Box::new(b.clone()), options),
        b,
    )
}

/// Opens `bytes` expecting them refused as corrupt: where, and the message.
fn refused_as_corrupt(bytes: Vec<u8>) -> (u64, String) {
    match open_bytes(bytes, Options::default()).0 {
        Err(StorageError::Corrupt { pos, what, .. }) => (pos, what),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("the damaged file opened"),
    }
}

/// Three transactions; returns the file and the end position of each transaction.
fn three_txns() -> (Vec<u8>, Vec<u64>) {
    let b = Arc::new(MemoryBackend::new());
    let mut s =
        FileStorage::open_with_backend("t.fs", Box::new(b.clone()), Options::default()).unwrap();
    let mut ends = vec![s.size()];
    commit(&mut s, 10, &[(0, b"root"), (1, b"one")]);
    ends.push(s.size());
    commit(&mut s, 20, &[(1, b"one-v2"), (2, &[7u8; 300])]);
    ends.push(s.size());
    commit(&mut s, 30, &[(2, b"two-v2")]);
    ends.push(s.size());
    drop(s);
    (b.contents(), ends)
}

/// The second transaction of [`three_txns`] (tid 20): its length, and its first data
/// record's offset in it and position in the file. The record follows the 23-byte
/// transaction header, user "u" and description "txn 20"; its data length is the last 8
/// bytes of its 42-byte header.
fn second_txn(ends: &[u64]) -> (u64, u64, u64) {
    let tlen = ends[2] - 8 - ends[1];
    let off = 23 + 1 + 6;
    (tlen, off, ends[1] + off)
}

/// Capture what the storage logs while `f` runs.
fn logged<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .with_target(true)
        .finish();
    let r = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (r, text)
}

#[test]
fn reopen_finds_everything_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    let mut s = FileStorage::open(&path, Options::default()).unwrap();
    // The magic waits for the first transaction (a replica takes its primary's format).
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    commit(&mut s, 10, &[(0, b"root"), (1, b"one")]);
    assert_eq!(&std::fs::read(&path).unwrap()[..4], b"FS30");
    commit(&mut s, 20, &[(1, b"one-v2")]);
    let before = all(&s);
    s.close().unwrap();
    let mut s = FileStorage::open(&path, Options::default()).unwrap();
    assert!(s.recovered_tail().is_none());
    assert_eq!(all(&s), before);
    assert_eq!(s.last_transaction(), t(20));
    assert_eq!(s.len(), 2);
    assert_eq!(s.size(), std::fs::metadata(&path).unwrap().len());
    assert_eq!(s.load(o(1)).unwrap(), (b"one-v2".to_vec(), t(20)));
    assert!(matches!(
        s.tpc_begin(meta(20)),
        Err(StorageError::TidNotIncreasing { .. })
    ));
    commit(&mut s, 30, &[(1, b"one-v3")]);
    drop(s);
    let s = FileStorage::open(&path, Options::default()).unwrap();
    assert_eq!(s.load(o(1)).unwrap(), (b"one-v3".to_vec(), t(30)));
    assert_eq!(s.load_before(o(1), t(30)).unwrap().unwrap().0, b"one-v2");
}

#[test]
fn read_only_storage_refuses_writes() {
    let (bytes, _) = three_txns();
    let (s, _) = open_bytes(
        bytes,
        Options {
            read_only: true,
            ..Options::default()
        },
    );
    let mut s = s.unwrap();
    assert!(matches!(s.tpc_begin(meta(40)), Err(StorageError::ReadOnly)));
    assert!(matches!(
        s.restore(o(1), t(40), Some(b"x"), b"", None),
        Err(StorageError::ReadOnly)
    ));
    assert_eq!(s.load(o(2)).unwrap().0, b"two-v2");
}

#[test]
fn every_truncation_of_the_last_transaction_is_cut_off_with_a_warning() {
    let (bytes, ends) = three_txns();
    let (prev_end, end) = (ends[2], ends[3]);
    for cut in prev_end + 1..end {
        let (r, log) = logged(|| open_bytes(bytes[..cut as usize].to_vec(), Options::default()));
        let (s, backend) = r;
        let s = s.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let tail = s.recovered_tail().expect("a tail");
        assert_eq!(
            (tail.pos, tail.len),
            (prev_end, cut - prev_end),
            "cut at {cut}"
        );
        assert_eq!(backend.len().unwrap(), prev_end);
        assert_eq!(s.last_transaction(), t(20));
        assert_eq!(s.load(o(2)).unwrap().0, vec![7u8; 300]);
        assert!(log.contains("WARN") && log.contains("zrs.storage"), "{log}");
        assert!(log.contains(&format!("at byte {prev_end}")), "{log}");
        assert!(log.contains(&format!("{} bytes", cut - prev_end)), "{log}");
        assert!(log.contains(&format!("{cut} -> {prev_end}")), "{log}");
    }
    // Cut exactly at a transaction boundary: nothing to recover, nothing logged.
    let ((s, _), log) =
        logged(|| open_bytes(bytes[..prev_end as usize].to_vec(), Options::default()));
    assert!(s.unwrap().recovered_tail().is_none());
    assert!(log.is_empty(), "{log}");
}

/// A last transaction cut anywhere after its header: the tail says its length runs past
/// the end of the file, and how many bytes were left.
#[test]
fn a_last_transaction_cut_after_its_header_runs_past_the_end_of_the_file() {
    let (bytes, ends) = three_txns();
    let (prev_end, end) = (ends[2], ends[3]);
    let tlen = end - 8 - prev_end;
    for cut in prev_end + 23..end {
        let s = open_bytes(bytes[..cut as usize].to_vec(), Options::default())
            .0
            .unwrap();
        let tail = s.recovered_tail().expect("a tail");
        assert_eq!(
            tail.what,
            format!(
                "transaction of {} bytes runs past the end of the file ({} bytes left)",
                tlen + 8,
                cut - prev_end
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn read_only_open_ignores_a_damaged_tail_without_cutting() {
    let (bytes, ends) = three_txns();
    let cut = ends[3] - 5;
    let (s, backend) = open_bytes(
        bytes[..cut as usize].to_vec(),
        Options {
            read_only: true,
            ..Options::default()
        },
    );
    let s = s.unwrap();
    assert_eq!(s.recovered_tail().map(|t| t.pos), Some(ends[2]));
    assert_eq!(backend.len().unwrap(), cut);
    assert_eq!(s.last_transaction(), t(20));
    assert_eq!(s.size(), ends[2]);
}

#[test]
fn voted_but_unfinished_transaction_is_cut_off() {
    let b = Arc::new(MemoryBackend::new());
    let mut s =
        FileStorage::open_with_backend("t.fs", Box::new(b.clone()), Options::default()).unwrap();
    commit(&mut s, 10, &[(1, b"one")]);
    let end = s.size();
    s.tpc_begin(meta(20)).unwrap();
    s.restore(o(1), t(20), Some(b"two"), b"", None).unwrap();
    s.tpc_vote().unwrap();
    // The process dies here: the file holds a complete transaction with status 'c'.
    let image = b.contents();
    assert_eq!(image[end as usize + 16], b'c');
    let reader = s.file_reader();
    s.crash(); // no cleanup: the 'c' transaction stays
    assert!(matches!(reader.load(o(1)), Err(StorageError::Closed)));
    assert_eq!(b.contents(), image);
    let ((s, b2), log) = logged(|| open_bytes(image.clone(), Options::default()));
    let s = s.unwrap();
    assert_eq!(
        s.recovered_tail().map(|t| (t.pos, t.len)),
        Some((end, image.len() as u64 - end))
    );
    assert!(log.contains("checkpoint"), "{log}");
    assert_eq!(b2.len().unwrap(), end);
    assert_eq!(s.load(o(1)).unwrap().0, b"one");
}

#[test]
fn a_whole_last_transaction_with_damaged_records_is_a_tail_not_corruption() {
    // Framed whole (its length and the redundant length agree) but a record inside does
    // not add up: torn writes before the fsync, the trace of a crash. The "complete
    // transaction after the damage" that makes damage corruption must start *after* it.
    let (bytes, ends) = three_txns();
    let last = ends[2] as usize;
    let mut b = bytes.clone();
    b[last + 23 + 1 + 6 + 24] ^= 0x41; // the record's transaction position
    let ((s, backend), log) = logged(|| open_bytes(b.clone(), Options::default()));
    let s = s.unwrap();
    assert_eq!(
        s.recovered_tail().map(|t| (t.pos, t.len)),
        Some((ends[2], ends[3] - ends[2]))
    );
    assert_eq!(backend.len().unwrap(), ends[2], "cut off");
    assert_eq!(s.last_transaction(), t(20));
    assert!(log.contains("WARN"), "{log}");
}

#[test]
fn a_file_cut_under_a_reader_is_corruption_not_a_half_header() {
    // Another process truncates the file inside the last transaction's header after the
    // reader indexed it: counting what follows a tid must not decode the header's missing
    // bytes as zeros.
    let (bytes, ends) = three_txns();
    let b = Arc::new(MemoryBackend::with_bytes(bytes));
    let s =
        FileStorage::open_with_backend("t.fs", Box::new(b.clone()), Options::default()).unwrap();
    let reader = s.file_reader();
    assert_eq!(reader.after(t(20)).unwrap().transactions, 1);
    b.set_len(ends[2] + 10).unwrap();
    match reader.after(t(20)) {
        Err(StorageError::Corrupt { pos, what, .. }) => {
            assert_eq!(pos, ends[2], "{what}");
            assert!(what.contains("cut short"), "{what}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// What a primary's status reports of a secondary's lag: the transactions later than any
/// tid, and their bytes; and the number of transactions.
#[test]
fn after_counts_the_transactions_and_bytes_later_than_a_tid() {
    let (bytes, ends) = three_txns();
    let s = open_bytes(bytes, Options::default()).0.unwrap();
    let reader = s.file_reader();
    assert_eq!(reader.transaction_count(), 3);
    // Where transactions 10, 20 and 30 start (the first after the magic), and the end.
    let starts = [4, ends[1], ends[2], ends[3]];
    for tid in 0..35 {
        let later = [10, 20, 30].iter().filter(|&&x| x > tid).count();
        let from = starts[3 - later];
        assert_eq!(
            reader.after(t(tid)).unwrap(),
            zrs::storage::file::After {
                transactions: later as u64,
                bytes: ends[3] - from,
            },
            "after {tid}"
        );
    }
}

#[test]
fn a_whole_transaction_after_the_damage_that_does_not_follow_in_tid_order_is_tail() {
    // Damage at the end, then the bytes of a transaction the file already holds (a tid not
    // later than the last good one): no later transaction survives the damage, so it is
    // all the tail of a crash, cut off; not corruption in the middle.
    let (bytes, ends) = three_txns();
    let second = &bytes[ends[1] as usize..ends[2] as usize];
    let mut b = bytes[..ends[2] as usize].to_vec();
    b.extend_from_slice(b"xxxxx");
    b.extend_from_slice(second);
    let len = b.len() as u64;
    let (s, backend) = open_bytes(b, Options::default());
    let s = s.unwrap();
    assert_eq!(
        s.recovered_tail().map(|t| (t.pos, t.len)),
        Some((ends[2], len - ends[2]))
    );
    assert_eq!(backend.len().unwrap(), ends[2]);
    assert_eq!(s.last_transaction(), t(20));
}

/// A transaction without records (begun, voted and finished with nothing stored: ZODB
/// writes one, and a primary sends a `T` then a `C` for it) is its header alone, and a
/// whole transaction: the file reopens with it, in the middle and at the end.
#[test]
fn a_transaction_without_records_reopens_as_a_transaction() {
    let b = Arc::new(MemoryBackend::new());
    let mut s =
        FileStorage::open_with_backend("t.fs", Box::new(b.clone()), Options::default()).unwrap();
    commit(&mut s, 10, &[(0, b"root")]);
    commit(&mut s, 20, &[]);
    commit(&mut s, 30, &[(1, b"one")]);
    commit(&mut s, 40, &[]);
    drop(s);
    let (s, backend) = open_bytes(b.contents(), Options::default());
    let s = s.unwrap();
    assert!(s.recovered_tail().is_none());
    assert_eq!(backend.contents(), b.contents(), "nothing cut");
    let txns = all(&s);
    let tids: Vec<Tid> = txns.iter().map(|t| t.meta.tid).collect();
    assert_eq!(tids, [t(10), t(20), t(30), t(40)]);
    assert!(txns[1].records.is_empty() && txns[3].records.is_empty());
    assert_eq!(s.load(o(1)).unwrap(), (b"one".to_vec(), t(30)));
}

#[test]
fn a_transaction_length_shorter_than_its_header_is_named() {
    let (bytes, ends) = three_txns();
    let mut b = bytes.clone();
    b[ends[1] as usize + 8..ends[1] as usize + 16].copy_from_slice(&10u64.to_be_bytes());
    let (pos, what) = refused_as_corrupt(b);
    assert_eq!(pos, ends[1], "{what}");
    assert!(
        what.contains("transaction length 10 shorter than its header"),
        "{what}"
    );
}

/// A data record whose length runs past its transaction, found by the open-time scan: the
/// error names that record and says so (not only that the records do not add up).
#[test]
fn a_record_running_past_its_transaction_is_named_by_the_scan() {
    let (bytes, ends) = three_txns();
    let (tlen, off, record) = second_txn(&ends);
    for over in [1, 1000] {
        let plen = tlen - off - 42 + over;
        let mut b = bytes.clone();
        b[record as usize + 34..record as usize + 42].copy_from_slice(&plen.to_be_bytes());
        let (pos, what) = refused_as_corrupt(b);
        assert_eq!(pos, ends[1], "{over} bytes past: {what}");
        let named = format!(
            "data record at byte {record} of {} bytes exceeds the transaction",
            42 + plen
        );
        assert!(what.contains(&named), "{what}");
    }
}

/// A transaction length that ends inside a record's header, or right after it (no room
/// for its data): the scan names which, at that record.
#[test]
fn a_transaction_ending_inside_or_just_after_a_record_header_is_named() {
    let (bytes, ends) = three_txns();
    // The second transaction's first record's data is "one-v2".
    let (_, off, record) = second_txn(&ends);
    for (tlen, named) in [
        (
            off + 20,
            format!("data record header at byte {record} exceeds the transaction"),
        ),
        (
            off + 42,
            format!("data record at byte {record} of 48 bytes exceeds the transaction"),
        ),
    ] {
        let mut b = bytes.clone();
        b[ends[1] as usize + 8..ends[1] as usize + 16].copy_from_slice(&tlen.to_be_bytes());
        let (pos, what) = refused_as_corrupt(b);
        assert_eq!(pos, ends[1], "length {tlen}: {what}");
        assert!(what.contains(&named), "length {tlen}: {what}");
    }
}

#[test]
fn damage_before_the_tail_is_corruption_naming_the_position() {
    let (bytes, ends) = three_txns();
    let t2 = ends[1] as usize; // second transaction's header
                               // (what to break, offset inside the second transaction)
    let cases: [(&str, usize); 5] = [
        ("status", 16),
        ("transaction length", 8),
        ("record's transaction position", 23 + 1 + 6 + 24),
        ("redundant length", (ends[2] as usize - 8) - t2),
        ("tid", 7),
    ];
    for (what, off) in cases {
        let mut b = bytes.clone();
        b[t2 + off] ^= if what == "tid" { 0xff } else { 0x41 };
        if what == "tid" {
            b[t2..t2 + 8].copy_from_slice(&t(5).0);
        }
        for read_only in [false, true] {
            let (r, backend) = open_bytes(
                b.clone(),
                Options {
                    read_only,
                    ..Options::default()
                },
            );
            match r {
                Err(StorageError::Corrupt { pos, what: msg, .. }) => {
                    assert_eq!(pos, ends[1], "{what}: {msg}");
                }
                other => panic!("{what}: expected Corrupt, got {other:?}"),
            }
            // Nothing was cut.
            assert_eq!(backend.len().unwrap(), bytes.len() as u64, "{what}");
        }
    }
}

#[test]
fn bad_magic_and_empty_files() {
    let (bytes, _) = three_txns();
    let mut b = bytes.clone();
    b[..4].copy_from_slice(b"FS99");
    assert!(matches!(
        open_bytes(b, Options::default()).0,
        Err(StorageError::Corrupt { pos: 0, .. })
    ));
    assert!(matches!(
        open_bytes(b"FX".to_vec(), Options::default()).0,
        Err(StorageError::Corrupt { pos: 0, .. })
    ));
    // A magic cut short by a crash at creation: an empty storage.
    let (s, backend) = open_bytes(b"FS".to_vec(), Options::default());
    assert_eq!(s.unwrap().recovered_tail().map(|t| t.len), Some(2));
    assert_eq!(backend.contents(), b"");
    let (s, backend) = open_bytes(b"FS2".to_vec(), Options::default());
    assert_eq!(s.unwrap().recovered_tail().map(|t| t.len), Some(3));
    assert_eq!(backend.contents(), b"");
    // Python 2's magic: same layout, read as is.
    let mut b = bytes.clone();
    b[..4].copy_from_slice(b"FS21");
    let s = open_bytes(b, Options::default()).0.unwrap();
    assert_eq!(s.last_transaction(), t(30));
    // An empty file is an empty storage, without a format until one is chosen.
    let (s, backend) = open_bytes(Vec::new(), Options::default());
    let s = s.unwrap();
    assert_eq!((s.size(), s.format()), (0, None));
    assert_eq!(backend.contents(), b"");
}

#[test]
fn a_new_file_takes_the_format_chosen_and_an_existing_one_keeps_its_own() {
    // Chosen before the first transaction: FS21, and the transactions follow it.
    let (s, backend) = open_bytes(Vec::new(), Options::default());
    let mut s = s.unwrap();
    s.set_format(Format::Fs21).unwrap();
    assert_eq!(backend.contents(), b"FS21");
    assert_eq!((s.size(), s.format()), (4, Some(Format::Fs21)));
    commit(&mut s, 10, &[(0, b"root")]);
    s.set_format(Format::Fs21).unwrap();
    let err = s.set_format(Format::Fs30).unwrap_err();
    assert!(matches!(
        err,
        StorageError::FormatMismatch {
            have: Format::Fs21,
            want: Format::Fs30,
            ..
        }
    ));
    assert!(err.to_string().contains("is an FS21 file"), "{err}");
    s.close().unwrap();
    let bytes = backend.contents();
    assert_eq!(&bytes[..4], b"FS21");
    // Reopened, it keeps it (and so do its read handles).
    let (s, _) = open_bytes(bytes.clone(), Options::default());
    let s = s.unwrap();
    assert_eq!(s.format(), Some(Format::Fs21));
    assert_eq!(s.reader().format(), Some(Format::Fs21));
    // Nobody chose: the first transaction writes FS30, as Python 3 ZODB creates files.
    let (s, backend) = open_bytes(Vec::new(), Options::default());
    let mut s = s.unwrap();
    commit(&mut s, 10, &[(0, b"root")]);
    assert_eq!(s.format(), Some(Format::Fs30));
    assert_eq!(&backend.contents()[..4], b"FS30");
}

#[test]
fn durability_modes_fsync_per_transaction_or_per_batch() {
    for (durability, after_7, after_sync) in [
        (Durability::EveryTransaction, 7, 7),
        (Durability::Batch(3), 2, 3),
        (Durability::Batch(1), 7, 7),
    ] {
        let b = Arc::new(CountingBackend::default());
        let mut s = FileStorage::open_with_backend(
            "t.fs",
            Box::new(b.clone()),
            Options {
                read_only: false,
                durability,
            },
        )
        .unwrap();
        s.set_format(Format::Fs30).unwrap();
        let base = b.syncs(); // the magic of a new file
        for n in 1..=7 {
            commit(&mut s, n, &[(n, b"x")]);
        }
        assert_eq!(b.syncs() - base, after_7, "{durability:?}");
        s.sync().unwrap();
        assert_eq!(b.syncs() - base, after_sync, "{durability:?}");
        s.close().unwrap();
        assert_eq!(b.syncs() - base, after_sync, "{durability:?}: nothing left");
    }
    assert!(FileStorage::open_with_backend(
        "t.fs",
        Box::new(MemoryBackend::new()),
        Options {
            read_only: false,
            durability: Durability::Batch(0)
        }
    )
    .is_err());
}

/// A new storage syncing in batches of 10 transactions, over a backend that counts fsyncs.
fn batched_on_counting_backend() -> (FileStorage, Arc<CountingBackend>) {
    let b = Arc::new(CountingBackend::default());
    let s = FileStorage::open_with_backend(
        "t.fs",
        Box::new(b.clone()),
        Options {
            read_only: false,
            durability: Durability::Batch(10),
        },
    )
    .unwrap();
    (s, b)
}

/// Switching to per-transaction durability syncs, at once, what a batch left unsynced;
/// switching to batches syncs nothing.
#[test]
fn switching_to_per_transaction_durability_syncs_the_batch_at_once() {
    let (mut s, b) = batched_on_counting_backend();
    s.set_format(Format::Fs30).unwrap();
    let base = b.syncs();
    for n in 1..=3 {
        commit(&mut s, n, &[(n, b"x")]);
    }
    assert_eq!(b.syncs(), base, "a batch of 10 not yet full");
    s.set_durability(Durability::EveryTransaction).unwrap();
    assert_eq!(b.syncs(), base + 1, "the three synced on switching");
    s.set_durability(Durability::EveryTransaction).unwrap();
    assert_eq!(b.syncs(), base + 1, "nothing more to sync");
    s.set_durability(Durability::Batch(10)).unwrap();
    assert_eq!(b.syncs(), base + 1, "switching to batches syncs nothing");
    commit(&mut s, 4, &[(4, b"x")]);
    assert_eq!(b.syncs(), base + 1);
    s.set_durability(Durability::EveryTransaction).unwrap();
    assert_eq!(b.syncs(), base + 2);
}

/// Dropping a storage closes it: the transaction in progress is aborted (nothing of the
/// voted one stays in the file), the finished ones not yet synced are synced, and its
/// readers see it closed.
#[test]
fn dropping_a_storage_closes_it() {
    let (mut s, b) = batched_on_counting_backend();
    commit(&mut s, 1, &[(0, b"root")]);
    commit(&mut s, 2, &[(1, b"one")]);
    let committed = b.inner.contents();
    let syncs = b.syncs();
    s.tpc_begin(meta(3)).unwrap();
    s.restore(o(1), t(3), Some(b"three"), b"", None).unwrap();
    s.tpc_vote().unwrap();
    let reader = s.file_reader();
    assert_eq!(reader.load(o(1)).unwrap(), (b"one".to_vec(), t(2)));
    drop(s);
    let left = b.inner.contents();
    assert!(
        left == committed,
        "the voted transaction is gone: {} bytes left, {} committed",
        left.len(),
        committed.len()
    );
    assert_eq!(b.syncs(), syncs + 1, "the batch is synced");
    assert!(matches!(reader.load(o(1)), Err(StorageError::Closed)));
}

/// A disk that remembers which writes are synced. Every operation is logged, so one run
/// yields the disk image of a crash at any point: the synced state, plus a prefix of the
/// unsynced operations, the last of them possibly torn.
#[derive(Debug, Default)]
struct CrashDisk {
    state: Mutex<DiskState>,
}

#[derive(Debug, Default)]
struct DiskState {
    current: Vec<u8>,
    log: Vec<Op>,
}

#[derive(Clone, Debug)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
    Sync,
}

fn apply(img: &mut Vec<u8>, op: &Op, tear: Option<usize>) {
    match op {
        Op::Write(pos, data) => {
            let data = &data[..tear.unwrap_or(data.len()).min(data.len())];
            let (pos, end) = (*pos as usize, *pos as usize + data.len());
            if img.len() < end {
                img.resize(end, 0);
            }
            img[pos..end].copy_from_slice(data);
        }
        Op::SetLen(n) => img.resize(*n as usize, 0),
        Op::Sync => {}
    }
}

impl CrashDisk {
    fn log(&self) -> Vec<Op> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Backend for CrashDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().unwrap().current.len() as u64)
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        zrs::storage::file::backend::read_from(&self.state.lock().unwrap().current, pos, buf)
    }
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let op = Op::Write(pos, data.to_vec());
        apply(&mut s.current, &op, None);
        s.log.push(op);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let op = Op::SetLen(len);
        apply(&mut s.current, &op, None);
        s.log.push(op);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.state.lock().unwrap().log.push(Op::Sync);
        Ok(())
    }
}

#[test]
fn crash_at_any_point_leaves_a_clean_prefix() {
    for (seed, durability) in [
        (1, Durability::EveryTransaction),
        (2, Durability::Batch(4)),
        (3, Durability::EveryTransaction),
    ] {
        let disk = Arc::new(CrashDisk::default());
        let mut s = FileStorage::open_with_backend(
            "crash.fs",
            Box::new(disk.clone()),
            Options {
                read_only: false,
                durability,
            },
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // For each committed transaction: its tid and the log index of its status flip.
        let mut committed: Vec<(Tid, usize)> = Vec::new();
        for n in 1..=40u64 {
            let tid = t(n * 10);
            s.tpc_begin(meta(n * 10)).unwrap();
            for _ in 0..rng.gen_range(1..4) {
                let oid = o(rng.gen_range(0..8));
                let len = rng.gen_range(1..3000);
                let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                let back = committed.last().filter(|_| rng.gen_bool(0.2)).map(|c| c.0);
                s.restore(oid, tid, Some(&data), b"", back).unwrap();
            }
            s.tpc_vote().unwrap();
            if rng.gen_bool(0.15) {
                s.tpc_abort();
                continue;
            }
            let flip = disk.log().len();
            s.tpc_finish().unwrap();
            committed.push((tid, flip));
        }
        s.close().unwrap();
        let final_bytes = disk.state.lock().unwrap().current.clone();
        let log = disk.log();

        let mut images = 0;
        for crash in 0..=log.len() {
            // Operations before the crash; the last sync before it bounds what is durable.
            let done = &log[..crash];
            let synced = done
                .iter()
                .rposition(|op| matches!(op, Op::Sync))
                .map_or(0, |i| i + 1);
            let durable = committed.iter().filter(|c| c.1 < synced).count();
            let mut base = Vec::new();
            for op in &done[..synced] {
                apply(&mut base, op, None);
            }
            // Variants: lose every unsynced op; keep them all; keep a random prefix and
            // tear the next one.
            let unsynced = &done[synced..];
            let mut variants = vec![(0, None), (unsynced.len(), None)];
            if !unsynced.is_empty() {
                let k = rng.gen_range(0..unsynced.len());
                let tear = match &unsynced[k] {
                    Op::Write(_, d) => Some(rng.gen_range(0..=d.len())),
                    _ => None,
                };
                variants.push((k, tear));
            }
            for (keep, tear) in variants {
                let mut img = base.clone();
                for op in &unsynced[..keep] {
                    apply(&mut img, op, None);
                }
                if let (Some(op), Some(_)) = (unsynced.get(keep), tear) {
                    apply(&mut img, op, tear);
                }
                images += 1;
                let (r, b) = open_bytes(img, Options::default());
                let s = r.unwrap_or_else(|e| panic!("seed {seed} crash {crash}: {e}"));
                let k = s.iterator(None, None).count();
                let maybe = committed.iter().filter(|c| c.1 < crash).count();
                assert!(
                    durable <= k && k <= maybe,
                    "seed {seed} crash {crash}: {k} transactions, durable {durable}, at most {maybe}"
                );
                assert_eq!(
                    s.last_transaction(),
                    if k == 0 {
                        Tid::ZERO
                    } else {
                        committed[k - 1].0
                    }
                );
                // Byte for byte a prefix of the final file, ending at a transaction.
                let got = b.contents();
                assert!(
                    got.len() <= 4 || final_bytes.starts_with(&got),
                    "seed {seed} crash {crash}: not a prefix"
                );
                assert_eq!(s.size(), got.len() as u64);
                // Reopening again finds nothing left to repair.
                drop(s);
                let again =
                    FileStorage::open_with_backend("again.fs", Box::new(b), Options::default())
                        .unwrap();
                assert!(again.recovered_tail().is_none());
            }
        }
        assert!(images > 100, "{images}");
    }
}

#[test]
fn legacy_undone_status_is_skipped_by_the_index_but_found_by_restore() {
    let b = Arc::new(MemoryBackend::new());
    let mut s =
        FileStorage::open_with_backend("u.fs", Box::new(b.clone()), Options::default()).unwrap();
    commit(&mut s, 10, &[(1, b"a")]);
    let t20 = s.size();
    commit(&mut s, 20, &[(1, b"b")]);
    commit(&mut s, 30, &[(2, b"c")]);
    drop(s);
    let mut bytes = b.contents();
    bytes[t20 as usize + 16] = b'u';
    let (s, _) = open_bytes(bytes, Options::default());
    let mut s = s.unwrap();
    // As ZODB's read_index: the 'u' transaction's records are not in the index.
    assert_eq!(s.load(o(1)).unwrap(), (b"a".to_vec(), t(10)));
    let txns = all(&s);
    assert_eq!(
        txns.iter().map(|t| t.meta.status).collect::<Vec<_>>(),
        vec![b' ', b'u', b' ']
    );
    // restore still finds the record in it (ZODB scans the transaction too).
    s.tpc_begin(meta(40)).unwrap();
    s.restore(o(1), t(40), Some(b"b"), b"", Some(t(20)))
        .unwrap();
    s.tpc_vote().unwrap();
    s.tpc_finish().unwrap();
    let last = all(&s).pop().unwrap();
    assert_eq!(last.records[0].data_txn, Some(t(20)));
    assert_eq!(s.load(o(1)).unwrap(), (b"b".to_vec(), t(40)));
}

/// A restore naming a transaction that holds two records of the object (a transaction
/// may store an object twice) points back at the later one, as ZODB's `_data_find` does:
/// the data it holds is the object's state as of that transaction.
#[test]
fn a_backpointer_into_a_transaction_with_two_records_of_the_object_takes_the_later() {
    for others in [0u64, 1, 2, 5] {
        let b = Arc::new(MemoryBackend::new());
        let mut s = FileStorage::open_with_backend("t.fs", Box::new(b.clone()), Options::default())
            .unwrap();
        // Transaction 10: objects before and after oid 50 (so the two records of oid 50 sit
        // anywhere in the sorted list), and oid 50 twice.
        s.tpc_begin(meta(10)).unwrap();
        for k in 0..others {
            s.restore(o(k), t(10), Some(b"before"), b"", None).unwrap();
        }
        s.restore(o(50), t(10), Some(b"first"), b"", None).unwrap();
        s.restore(o(50), t(10), Some(b"second"), b"", None).unwrap();
        for k in 0..others * 2 {
            s.restore(o(100 + k), t(10), Some(b"after"), b"", None)
                .unwrap();
        }
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
        assert_eq!(s.load(o(50)).unwrap(), (b"second".to_vec(), t(10)));
        s.tpc_begin(meta(20)).unwrap();
        s.restore(o(50), t(20), Some(b"second"), b"", Some(t(10)))
            .unwrap();
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
        let last = all(&s).pop().unwrap();
        assert_eq!(
            last.records[0].data_txn,
            Some(t(10)),
            "{others}: a backpointer"
        );
        assert_eq!(s.load(o(50)).unwrap(), (b"second".to_vec(), t(20)));
    }
}

/// The writer below commits `oid@n` to object `n % 10` in transaction `n` (2..=300), after
/// `0@1` in transaction 1: the last revision of `oid` as of transaction `last`, if any.
fn latest_revision(oid: u64, last: u64) -> Option<u64> {
    let writer = (2..=last.min(300)).rev().find(|n| n % 10 == oid);
    writer.or((oid == 0 && last >= 1).then_some(1))
}

#[test]
fn readers_load_consistently_while_the_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStorage::open(
        dir.path().join("Data.fs"),
        Options {
            read_only: false,
            durability: Durability::Batch(50),
        },
    )
    .unwrap();
    commit(&mut s, 1, &[(0, b"0@1")]);
    let readers: Vec<_> = (0..2).map(|_| s.file_reader()).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = readers
            .iter()
            .map(|r| {
                let done = &done;
                scope.spawn(move || {
                    let mut checks = 0u64;
                    let mut last_seen = Tid::ZERO;
                    while !done.load(std::sync::atomic::Ordering::SeqCst) || checks == 0 {
                        let before = r.last_transaction();
                        assert!(before >= last_seen);
                        last_seen = before;
                        for oid in 0..10 {
                            match r.load(o(oid)) {
                                Ok((data, serial)) => {
                                    // Every revision says which object and serial it is,
                                    // and is no older than the one committed by `before`.
                                    assert_eq!(
                                        data,
                                        format!("{oid}@{}", serial.as_u64()).into_bytes()
                                    );
                                    assert!(serial <= r.last_transaction());
                                    if let Some(latest) = latest_revision(oid, before.as_u64()) {
                                        assert!(
                                            serial.as_u64() >= latest,
                                            "oid {oid}: serial {} older than {latest}",
                                            serial.as_u64()
                                        );
                                    }
                                }
                                // Only an object not yet committed when the load began may
                                // be missing; any other error (a half-written record read)
                                // fails.
                                Err(StorageError::NoSuchKey(missing)) => {
                                    assert_eq!(missing, o(oid));
                                    assert_eq!(
                                        latest_revision(oid, before.as_u64()),
                                        None,
                                        "oid {oid} committed by {} but not found",
                                        before.as_u64()
                                    );
                                }
                                Err(e) => panic!("oid {oid}: {e}"),
                            }
                        }
                        let mut n = 0u64;
                        for txn in r.iterator(None, None) {
                            txn.unwrap();
                            n += 1;
                        }
                        assert!(n >= before.as_u64());
                        checks += 1;
                    }
                    checks
                })
            })
            .collect();
        for n in 2..=300u64 {
            let oid = n % 10;
            let data = format!("{oid}@{n}");
            commit(&mut s, n, &[(oid, data.as_bytes())]);
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in handles {
            assert!(h.join().unwrap() > 0);
        }
    });
    assert_eq!(readers[0].last_transaction(), t(300));
}

/// Damaged files never panic: every open either fails with a typed error or yields a
/// storage whose every read answers consistently. A truncated file, or one with garbage
/// appended, reads as a prefix of what was written; flipped bytes may change what reads
/// back, but never its consistency (increasing tids, loads that agree with `load_serial`),
/// and every error is a typed storage error, never I/O trouble from reading past the end.
#[test]
fn random_damage_never_panics() {
    let (bytes, _) = three_txns();
    let original = all(&open_bytes(bytes.clone(), Options::default()).0.unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut outcomes = [0usize; 4];
    for case in 0..600 {
        let mut b = bytes.clone();
        match case % 3 {
            0 => {
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(4..b.len());
                    b[i] = rng.gen();
                }
            }
            1 => b.truncate(rng.gen_range(0..b.len())),
            _ => {
                let extra: Vec<u8> = (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect();
                b.extend_from_slice(&extra);
            }
        }
        let read_only = rng.gen_bool(0.5);
        let s = match open_bytes(
            b,
            Options {
                read_only,
                ..Options::default()
            },
        )
        .0
        {
            Ok(s) => s,
            Err(StorageError::Corrupt { .. }) => {
                outcomes[1] += 1;
                continue;
            }
            Err(e) => panic!("case {case}: unexpected error {e}"),
        };
        outcomes[0] += 1;
        let mut expected_error = |what: &str, e: &StorageError| {
            assert!(
                matches!(
                    e,
                    StorageError::Corrupt { .. }
                        | StorageError::NoSuchKey(_)
                        | StorageError::NoSuchSerial { .. }
                ),
                "case {case}: {what}: unexpected error {e}"
            );
            outcomes[3] += 1;
        };
        let mut txns = Vec::new();
        for txn in s.iterator(None, None) {
            match txn {
                Ok(txn) => txns.push(txn),
                Err(e) => expected_error("iterator", &e),
            }
        }
        let last = s.last_transaction();
        assert!(
            txns.windows(2).all(|w| w[0].meta.tid < w[1].meta.tid),
            "case {case}: tids not increasing"
        );
        assert!(txns.iter().all(|t| t.meta.tid <= last), "case {case}");
        // Flipped bytes may change what reads back (ZODB does not check a data record's
        // serial against its transaction either): only typed errors, never a panic.
        let intact = case % 3 != 0;
        if intact {
            // Cut or extended, never altered: what reads back is what was written.
            assert_eq!(txns, original[..txns.len()], "case {case}");
            assert_eq!(last, txns.last().map_or(Tid::ZERO, |t| t.meta.tid));
        }
        for oid in 0..4 {
            // The newest revision in what was kept, and the newest before tid 25.
            let revisions: Vec<(Tid, Option<Vec<u8>>)> = txns
                .iter()
                .flat_map(|t| &t.records)
                .filter(|r| r.oid == o(oid))
                .map(|r| (r.serial, r.data.as_deref().map(<[u8]>::to_vec)))
                .collect();
            let newest = revisions.last().cloned();
            let before_25 = revisions.iter().rev().find(|r| r.0 < t(25)).cloned();
            match s.load(o(oid)) {
                Ok((data, serial)) => {
                    if intact {
                        assert_eq!(Some((serial, Some(data.clone()))), newest, "case {case}");
                        assert_eq!(s.load_serial(o(oid), serial).unwrap(), data);
                        let history = s.history(o(oid), 5).unwrap();
                        assert_eq!(history.first().map(|e| e.tid), Some(serial));
                    } else {
                        if let Err(e) = s.load_serial(o(oid), serial) {
                            expected_error("load_serial", &e);
                        }
                        if let Err(e) = s.history(o(oid), 5) {
                            expected_error("history", &e);
                        }
                    }
                }
                Err(e) => {
                    if intact {
                        assert!(newest.is_none(), "case {case}: oid {oid}: {e}");
                    }
                    expected_error("load", &e);
                }
            }
            match s.load_before(o(oid), t(25)) {
                Ok(found) => {
                    if intact {
                        let found = found.map(|(data, serial, _)| (serial, Some(data)));
                        assert_eq!(found, before_25, "case {case}: oid {oid}");
                    }
                }
                Err(e) => {
                    if intact {
                        assert!(before_25.is_none(), "case {case}: oid {oid}: {e}");
                    }
                    expected_error("load_before", &e);
                }
            }
        }
        outcomes[2] += 1;
    }
    assert!(outcomes[0] > 100 && outcomes[1] > 10, "{outcomes:?}");
}

/// Disk faults on a real file (`FaultyBackend` over `FileBackend`): a failed write leaves
/// nothing of the transaction; a failed fsync leaves the storage refusing everything until
/// `recover` cuts the file back to what was known durable; a reopened file reads clean.
#[test]
fn disk_faults_on_a_real_file_leave_a_clean_prefix() {
    use zrs::storage::file::backend::FileBackend;
    use zrs::storage::file::faulty::{DiskError, DiskFault, DiskOp, FaultyBackend};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    let disk = Arc::new(FaultyBackend::new(FileBackend::open(&path, false).unwrap()));
    let mut s =
        FileStorage::open_with_backend("Data.fs", Box::new(disk.clone()), Options::default())
            .unwrap();
    commit(&mut s, 1, &[(0, b"root")]);
    let durable = std::fs::read(&path).unwrap();
    let fault = |op, error, partial| DiskFault {
        op,
        after: 0,
        error,
        partial,
        sticky: false,
    };

    // A write that lands 7 bytes, then ENOSPC: the vote fails, the abort leaves no byte.
    disk.arm(fault(DiskOp::Write, DiskError::NoSpace, 7));
    s.tpc_begin(meta(2)).unwrap();
    s.restore(o(1), t(2), Some(b"one"), b"", None).unwrap();
    let e = s.tpc_vote().unwrap_err();
    assert!(
        matches!(&e, StorageError::Io(io) if io.raw_os_error() == Some(28)),
        "{e}"
    );
    s.tpc_abort();
    assert_eq!(std::fs::read(&path).unwrap(), durable);
    commit(&mut s, 2, &[(1, b"one")]);
    let durable = std::fs::read(&path).unwrap();

    // A failed fsync: the transaction is not committed, the storage refuses everything.
    disk.arm(fault(DiskOp::Sync, DiskError::Io, 0));
    s.tpc_begin(meta(3)).unwrap();
    s.restore(o(1), t(3), Some(b"three"), b"", None).unwrap();
    s.tpc_vote().unwrap();
    assert!(matches!(s.tpc_finish(), Err(StorageError::Io(_))));
    assert!(s.failed());
    assert!(
        s.tpc_begin(meta(4)).is_err(),
        "refuses writes until recovered"
    );
    assert!(s.load(o(1)).is_err(), "and reads");
    // While the disk fails, it stays failed; then it recovers at the durable length.
    disk.arm(DiskFault {
        sticky: true,
        ..fault(DiskOp::Sync, DiskError::Io, 0)
    });
    assert!(s.recover().is_err());
    assert!(s.failed());
    disk.heal();
    assert!(s.recover().unwrap());
    assert!(!s.recover().unwrap(), "nothing more to recover");
    assert_eq!(std::fs::read(&path).unwrap(), durable);
    assert_eq!(s.last_transaction(), t(2));
    commit(&mut s, 3, &[(1, b"three")]);
    assert_eq!(s.load(o(1)).unwrap(), (b"three".to_vec(), t(3)));

    // A failed read is an error for that read only.
    disk.arm(fault(DiskOp::Read, DiskError::Io, 0));
    assert!(s.load_serial(o(1), t(2)).is_err());
    assert_eq!(s.load_serial(o(1), t(2)).unwrap(), b"one");
    drop(s);
    let reopened = FileStorage::open(&path, Options::default()).unwrap();
    assert_eq!(reopened.last_transaction(), t(3));
    assert!(reopened.recovered_tail().is_none());
}

/// Closing a failed storage cuts the file back to what the last fsync made durable, and
/// syncs that cut: while the disk still fails, the cut is not known durable, so the storage
/// stays failed and closing again tries again.
#[test]
fn closing_a_failed_storage_while_the_disk_still_fails_leaves_it_failed() {
    use zrs::storage::file::faulty::{DiskError, DiskFault, DiskOp, FaultyBackend};
    let disk = Arc::new(FaultyBackend::new(MemoryBackend::new()));
    let mut s =
        FileStorage::open_with_backend("t.fs", Box::new(disk.clone()), Options::default()).unwrap();
    commit(&mut s, 1, &[(0, b"root")]);
    let durable = disk.inner().contents();
    disk.arm(DiskFault {
        sticky: true,
        ..DiskFault::once(DiskOp::Sync, DiskError::Io)
    });
    s.tpc_begin(meta(2)).unwrap();
    s.restore(o(1), t(2), Some(b"one"), b"", None).unwrap();
    s.tpc_vote().unwrap();
    assert!(s.tpc_finish().is_err());
    assert!(s.failed());
    let fired = disk.fired();
    s.close().unwrap();
    assert_eq!(disk.inner().contents(), durable, "cut back");
    assert_eq!(
        disk.fired(),
        fired + 1,
        "the cut was synced, and that failed"
    );
    assert!(s.failed(), "the cut is not known durable");
    disk.heal();
    s.close().unwrap();
    assert!(!s.failed(), "cut and synced");
    assert_eq!(disk.inner().contents(), durable);
}

/// Loading a revision walks the object's records from the newest back to that one and no
/// further: damage to an older record does not reach it.
#[test]
fn load_serial_reads_no_record_older_than_the_one_asked_for() {
    let (bytes, _) = three_txns();
    let (s, backend) = open_bytes(bytes, Options::default());
    let s = s.unwrap();
    // Oid 1's record in the first transaction: after the magic, the header, user "u",
    // description "txn 10" and the root's record (a 42-byte header and "root"). Its oid is
    // damaged.
    let older = 4 + 23 + 1 + 6 + 42 + 4;
    backend.write_at(older, &o(9).0).unwrap();
    match s.load_serial(o(1), t(10)) {
        Err(StorageError::Corrupt { pos, .. }) => assert_eq!(pos, older),
        other => panic!("expected Corrupt at {older}, got {other:?}"),
    }
    assert_eq!(s.load_serial(o(1), t(20)).unwrap(), b"one-v2");
}

/// A file longer than FileStorage positions can address (6 bytes: 256 TiB) is refused on
/// open, naming the limit; one of exactly that length is not refused for its length.
#[test]
fn a_file_past_the_addressable_length_is_refused() {
    use zrs::storage::file::index::MAX_POS;
    /// The bytes of `0`, with the length `1` claimed for them.
    #[derive(Debug)]
    struct Claims(MemoryBackend, u64);
    impl Backend for Claims {
        fn len(&self) -> io::Result<u64> {
            Ok(self.1)
        }
        fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read_at(pos, buf)
        }
        fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
            self.0.write_at(pos, data)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.set_len(len)
        }
        fn sync(&self) -> io::Result<()> {
            Ok(())
        }
    }
    let (bytes, ends) = three_txns();
    let open = |len| {
        FileStorage::open_with_backend(
            "t.fs",
            Box::new(Claims(MemoryBackend::with_bytes(bytes.clone()), len)),
            Options {
                read_only: true,
                ..Options::default()
            },
        )
    };
    match open(MAX_POS + 1) {
        Err(StorageError::Corrupt { pos, what, .. }) => {
            assert_eq!(pos, MAX_POS, "{what}");
            assert!(what.contains(&format!("end at {MAX_POS} bytes")), "{what}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a file of {} bytes opened", MAX_POS + 1),
    }
    // At MAX_POS: read as far as the bytes go; what the length claims past them is a tail.
    let s = open(MAX_POS).unwrap();
    assert_eq!(s.last_transaction(), t(30));
    assert_eq!(s.recovered_tail().map(|t| t.pos), Some(ends[3]));
}

/// A vote whose write failed (the disk full for a moment) leaves the transaction as it was
/// before the vote: voting again writes it whole, once.
#[test]
fn a_vote_that_failed_to_write_can_be_retried() {
    use zrs::storage::file::faulty::{DiskError, DiskFault, DiskOp, FaultyBackend};
    let disk = Arc::new(FaultyBackend::new(MemoryBackend::new()));
    let mut s =
        FileStorage::open_with_backend("t.fs", Box::new(disk.clone()), Options::default()).unwrap();
    commit(&mut s, 1, &[(0, b"root")]);
    let want_bytes = Arc::new(MemoryBackend::new());
    let mut want =
        FileStorage::open_with_backend("want.fs", Box::new(want_bytes.clone()), Options::default())
            .unwrap();
    commit(&mut want, 1, &[(0, b"root")]);
    commit(&mut want, 2, &[(1, b"one"), (2, b"two")]);

    disk.arm(DiskFault {
        op: DiskOp::Write,
        after: 0,
        error: DiskError::NoSpace,
        partial: 5,
        sticky: false,
    });
    s.tpc_begin(meta(2)).unwrap();
    s.restore(o(1), t(2), Some(b"one"), b"", None).unwrap();
    s.restore(o(2), t(2), Some(b"two"), b"", None).unwrap();
    assert!(s.tpc_vote().is_err());
    s.tpc_vote().unwrap();
    s.tpc_finish().unwrap();
    drop((s, want));
    assert_eq!(
        disk.inner().contents(),
        want_bytes.contents(),
        "the same file"
    );
    let reopened = FileStorage::open_with_backend(
        "t.fs",
        Box::new(MemoryBackend::with_bytes(disk.inner().contents())),
        Options::default(),
    )
    .unwrap();
    assert!(reopened.recovered_tail().is_none());
    assert_eq!(reopened.load(o(2)).unwrap(), (b"two".to_vec(), t(2)));
}

/// What an fsync made durable stays durable: after a batch is synced (by `sync`, or by
/// switching back to per-transaction durability), a later failed fsync cuts the file back
/// to that batch's end, not before it.
#[test]
fn a_failed_fsync_cuts_back_only_to_what_the_last_sync_made_durable() {
    use zrs::storage::file::faulty::{DiskError, DiskFault, DiskOp, FaultyBackend};
    for switch in [false, true] {
        let disk = Arc::new(FaultyBackend::new(MemoryBackend::new()));
        let mut s = FileStorage::open_with_backend(
            "t.fs",
            Box::new(disk.clone()),
            Options {
                read_only: false,
                durability: Durability::Batch(10),
            },
        )
        .unwrap();
        commit(&mut s, 1, &[(0, b"root")]);
        commit(&mut s, 2, &[(1, b"one")]);
        if switch {
            s.set_durability(Durability::EveryTransaction).unwrap();
            s.set_durability(Durability::Batch(10)).unwrap();
        } else {
            s.sync().unwrap();
        }
        commit(&mut s, 3, &[(1, b"three")]);
        disk.arm(DiskFault::once(DiskOp::Sync, DiskError::Io));
        assert!(s.sync().is_err(), "switch {switch}");
        assert!(s.failed());
        assert!(s.recover().unwrap());
        assert_eq!(s.last_transaction(), t(2), "switch {switch}");
        assert_eq!(s.load(o(1)).unwrap(), (b"one".to_vec(), t(2)));
        assert_eq!(all(&s).len(), 2);
    }
}

/// A data length damaged after the file was indexed (another process, a bad disk) is a
/// `Corrupt` error naming the record, whether it overshoots the file by one byte or asks
/// for an absurd allocation.
#[test]
fn a_data_length_running_past_the_file_is_corruption() {
    let (bytes, ends) = three_txns();
    // The third transaction: header, user "u", description "txn 30", then its one record
    // (of oid 2), whose data length is the last 8 bytes of its 42-byte header.
    let record = ends[2] + 23 + 1 + 6;
    let data = record + 42;
    for plen in [ends[3] - data + 1, u64::MAX / 2] {
        let (s, backend) = open_bytes(bytes.clone(), Options::default());
        let s = s.unwrap();
        backend.write_at(record + 34, &plen.to_be_bytes()).unwrap();
        match s.load(o(2)) {
            Err(StorageError::Corrupt { pos, what, .. }) => {
                assert_eq!(pos, record, "{what}");
                assert!(what.contains("runs past the end"), "{what}");
            }
            other => panic!("length {plen}: expected Corrupt, got {other:?}"),
        }
        // The record before it is intact.
        assert_eq!(s.load(o(1)).unwrap(), (b"one-v2".to_vec(), t(20)));
    }
}

/// A data record damaged after the file was indexed so that it runs one byte past its
/// transaction: the iterator reports `Corrupt` at the record (the slice it would take
/// otherwise lies past the transaction's bytes).
#[test]
fn a_record_running_past_its_transaction_is_corruption_for_the_iterator() {
    let (bytes, ends) = three_txns();
    let (tlen, off, record) = second_txn(&ends);
    let plen = tlen - off - 42 + 1;
    let (s, backend) = open_bytes(bytes, Options::default());
    let s = s.unwrap();
    backend.write_at(record + 34, &plen.to_be_bytes()).unwrap();
    let read: Vec<_> = s.iterator(None, None).collect();
    assert_eq!(read.len(), 2, "{read:?}");
    assert_eq!(read[0].as_ref().unwrap().meta.tid, t(10));
    match &read[1] {
        Err(StorageError::Corrupt { pos, what, .. }) => {
            assert_eq!(*pos, record, "{what}");
            assert!(what.contains("exceeds its transaction"), "{what}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Damage found after the file was indexed, each a `Corrupt` error naming what and where:
/// a backpointer to a record header the file cuts short, a backpointer record whose
/// pointer the file cuts short, a transaction length running past the committed end.
#[test]
fn headers_and_lengths_cut_short_or_too_long_are_corruption() {
    let (bytes, ends) = three_txns();
    let len = bytes.len() as u64;
    // Oid 1's current record, in the second transaction: made a backpointer (data length
    // 0), whose 8 bytes of pointer take the place of its data.
    let record = ends[1] + 23 + 1 + 6;
    let expect = |s: &FileStorage, at: u64, says: &str| match s.load(o(1)) {
        Err(StorageError::Corrupt { pos, what, .. }) => {
            assert_eq!(pos, at, "{what}");
            assert!(what.contains(says), "{what}");
        }
        other => panic!("expected Corrupt ({says}), got {other:?}"),
    };

    // The pointer names a header of which the file holds only 10 bytes.
    let (s, backend) = open_bytes(bytes.clone(), Options::default());
    let s = s.unwrap();
    backend.write_at(record + 34, &0u64.to_be_bytes()).unwrap();
    backend
        .write_at(record + 42, &(len - 10).to_be_bytes())
        .unwrap();
    expect(&s, len - 10, "data record header cut short");

    // The pointer names a backpointer record of oid 1 with 3 of its 8 pointer bytes.
    let (s, backend) = open_bytes(bytes.clone(), Options::default());
    let s = s.unwrap();
    let tail = len - 45;
    let mut header = bytes[record as usize..record as usize + 42].to_vec();
    header[34..42].copy_from_slice(&0u64.to_be_bytes());
    backend.write_at(tail, &header).unwrap();
    backend.write_at(record + 34, &0u64.to_be_bytes()).unwrap();
    backend.write_at(record + 42, &tail.to_be_bytes()).unwrap();
    expect(&s, tail, "backpointer cut short");

    // The second transaction's length runs past the end: the iterator says so.
    let (s, backend) = open_bytes(bytes, Options::default());
    let s = s.unwrap();
    backend.write_at(ends[1] + 8, &len.to_be_bytes()).unwrap();
    let read: Vec<_> = s.iterator(None, None).collect();
    match &read[1] {
        Err(StorageError::Corrupt { pos, what, .. }) => {
            assert_eq!(*pos, ends[1], "{what}");
            assert!(what.contains("runs past the end"), "{what}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
