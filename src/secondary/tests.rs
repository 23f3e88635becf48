//! The state machine on its own: events in, actions out, over a MemoryStorage.

use std::time::Duration;

use super::*;
use crate::pickle::Value;
use crate::protocol::{Message, RecordHeader, StreamEncoder, TransactionHeader};
use crate::storage::memory::MemoryStorage;
use crate::storage::Format;
use crate::storage::ReadStorage;
use crate::tid::{Oid, Tid};

fn config() -> Config {
    Config {
        address: Some(Address::tcp("", 8000)),
        keep_alive_delay: Duration::from_secs(60),
        ..Config::default()
    }
}

fn drain<S: Storage>(s: &mut Secondary<S>) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// A primary's side of one connection: the protocol's encoder, and what it wrote.
struct Primary {
    encoder: StreamEncoder,
    out: Vec<u8>,
}

impl Primary {
    fn new(start: Tid) -> Primary {
        Primary {
            encoder: StreamEncoder::new(start),
            out: Vec::new(),
        }
    }
    fn transaction(&mut self, tid: Tid, records: &[(Oid, &[u8])]) {
        let header = TransactionHeader {
            tid,
            status: b' ',
            user: b"u".to_vec(),
            description: Vec::new(),
            extension: Value::Dict(vec![]),
        };
        self.encoder.transaction_header(&header, &mut self.out);
        for (oid, data) in records {
            let record = RecordHeader {
                oid: *oid,
                serial: tid,
                version: Vec::new(),
                data_txn: None,
            };
            self.encoder.store(&record, Some(*data), &mut self.out);
        }
    }
    /// The `C`: with the running md5, or with `checksum` (a wrong one) in its place.
    fn commit(&mut self, checksum: Option<[u8; 16]>) {
        match checksum {
            None => self.encoder.commit(&mut self.out),
            Some(wrong) => {
                let c = Message::Commit {
                    checksum: Some(wrong),
                };
                self.encoder.message(&c.encode_fast(), &mut self.out);
            }
        }
    }
}

/// What a primary sends from start zero with one transaction (tid 5: the root): its `C`
/// with the running md5, or with `checksum` (a wrong one) in its place.
fn root_stream(checksum: Option<[u8; 16]>) -> Vec<u8> {
    let mut p = Primary::new(Tid::ZERO);
    p.transaction(Tid::from_u64(5), &[(Oid::ZERO, b"root")]);
    p.commit(checksum);
    p.out
}

/// After a lost connection: fires the connect timer and connects `s` again.
fn reconnect_when_the_timer_fires<S: Storage>(s: &mut Secondary<S>) {
    s.timeout(Timer::Connect);
    drain(s);
    s.connected("peer");
}

/// Connects `s` to a primary that sends one transaction (tid 5: the root) and checks
/// that it is committed.
fn connect_and_commit_root<S: Storage>(s: &mut Secondary<S>) {
    s.connected("peer");
    drain(s);
    s.data_received(&root_stream(None));
    assert_eq!(s.storage().last_transaction(), Tid::from_u64(5));
}

fn connected() -> Secondary<MemoryStorage> {
    let mut s = Secondary::new(MemoryStorage::new("Data.fs"), config());
    assert_eq!(drain(&mut s), vec![Action::Connect(Address::tcp("", 8000))]);
    s.connected("peer");
    s
}

#[test]
fn handshake_sends_protocol_and_last_tid_then_schedules_keep_alive() {
    let mut s = connected();
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Transmit(b"\0\0\0\x06zrs2.0".to_vec()),
            Action::Transmit(b"\0\0\0\x08\0\0\0\0\0\0\0\0".to_vec()),
            Action::SetTimer {
                timer: Timer::KeepAlive,
                delay: Duration::from_secs(60)
            },
        ]
    );
    // Each later firing sends an empty message and reschedules.
    s.timeout(Timer::KeepAlive);
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Transmit(b"\0\0\0\0".to_vec()),
            Action::SetTimer {
                timer: Timer::KeepAlive,
                delay: Duration::from_secs(60)
            },
        ]
    );
}

/// A storage without a blob directory can hold blob records (a database replicated with
/// `zrs2.0`, its blobs elsewhere): the undo of a blob's creation then commits as any
/// undo, with no blob file to copy.
#[test]
fn without_blobs_the_undo_of_a_blob_record_commits_with_no_blob_to_copy() {
    let blob_record: &[u8] = b"cZODB.blob\nBlob\nq\x01.N.";
    assert!(crate::storage::blob::is_blob_record(blob_record));
    let (created, undone) = (Tid::from_u64(5), Tid::from_u64(6));
    let oid = Oid::from_u64(1);
    let mut p = Primary::new(Tid::ZERO);
    p.transaction(created, &[(Oid::ZERO, b"root"), (oid, blob_record)]);
    p.commit(None);
    let header = TransactionHeader {
        tid: undone,
        status: b' ',
        user: Vec::new(),
        description: b"undo".to_vec(),
        extension: Value::Dict(vec![]),
    };
    p.encoder.transaction_header(&header, &mut p.out);
    let record = RecordHeader {
        oid,
        serial: undone,
        version: Vec::new(),
        data_txn: None,
    };
    p.encoder.store(&record, None, &mut p.out);
    p.commit(None);

    let mut s = connected();
    assert!(!s.keeps_blobs());
    drain(&mut s);
    s.data_received(&p.out);
    let actions = drain(&mut s);
    assert!(
        actions.contains(&Action::Invalidate {
            tid: undone,
            oids: vec![oid]
        }),
        "{actions:?}"
    );
    assert_eq!(s.storage().last_transaction(), undone);
    assert!(s.storage().load(oid).is_err(), "the creation is undone");
}

#[test]
fn a_whole_transaction_commits_in_any_chunking() {
    let tid = Tid::from_u64(5);
    let mut p = Primary::new(Tid::ZERO);
    p.transaction(tid, &[(Oid::ZERO, b"root"), (Oid::from_u64(1), b"x")]);
    p.commit(None);
    for chunk in [1, 3, 7, p.out.len()] {
        let mut s = connected();
        drain(&mut s);
        for piece in p.out.chunks(chunk) {
            s.data_received(piece);
        }
        assert_eq!(
            drain(&mut s),
            vec![Action::Invalidate {
                tid,
                oids: vec![Oid::ZERO, Oid::from_u64(1)]
            }]
        );
        assert_eq!(s.storage().last_transaction(), tid);
        assert_eq!(s.storage().load(Oid::from_u64(1)).unwrap().0, b"x");
    }
}

#[test]
fn a_bad_checksum_commits_nothing_disconnects_and_reconnects_later() {
    let mut s = connected();
    drain(&mut s);
    s.data_received(&root_stream(Some([0; 16])));
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Disconnect,
            Action::CancelTimer(Timer::KeepAlive),
            Action::SetTimer {
                timer: Timer::Connect,
                delay: Duration::from_secs(60)
            },
        ]
    );
    assert_eq!(s.storage().last_transaction(), Tid::ZERO);
    assert!(!s.in_transaction());
    assert_eq!(s.phase(), Phase::Idle);
    // Further bytes on the dropped connection are ignored.
    s.data_received(b"garbage");
    assert_eq!(drain(&mut s), vec![]);
}

/// A secondary is in a transaction from a `T` to its `C`: not before the first, not
/// between two.
#[test]
fn in_a_transaction_only_from_its_t_to_its_c() {
    let mut s = connected();
    drain(&mut s);
    assert!(!s.in_transaction(), "connected, nothing received yet");
    let mut p = Primary::new(Tid::ZERO);
    p.transaction(Tid::from_u64(5), &[(Oid::ZERO, b"root")]);
    s.data_received(&p.out);
    assert!(s.in_transaction());
    p.out.clear();
    p.commit(None);
    s.data_received(&p.out);
    assert_eq!(s.storage().last_transaction(), Tid::from_u64(5));
    assert!(!s.in_transaction(), "between transactions");
}

#[test]
fn a_lost_connection_aborts_the_partial_transaction() {
    let mut s = connected();
    drain(&mut s);
    let mut p = Primary::new(Tid::ZERO);
    p.transaction(Tid::from_u64(5), &[(Oid::ZERO, b"root")]);
    s.data_received(&p.out);
    assert!(s.in_transaction());
    s.connection_lost(&LossReason::Other("failed".into()));
    assert!(!s.in_transaction());
    assert_eq!(s.storage().last_transaction(), Tid::ZERO);
    // The next connection starts over from the last committed tid.
    assert_eq!(
        drain(&mut s),
        vec![
            Action::CancelTimer(Timer::KeepAlive),
            Action::SetTimer {
                timer: Timer::Connect,
                delay: Duration::from_secs(60)
            },
        ]
    );
    s.timeout(Timer::Connect);
    assert_eq!(drain(&mut s), vec![Action::Connect(Address::tcp("", 8000))]);
    // And the storage is free for it: the aborted transaction left nothing behind.
    connect_and_commit_root(&mut s);
}

/// Without keep-alives (zc.zrs's default, a delay of 0) no keep-alive timer is set, so a
/// lost connection has none to cancel: its actions are the reconnect alone.
#[test]
fn without_keep_alives_a_lost_connection_cancels_no_timer() {
    let mut s = Secondary::new(
        MemoryStorage::new("Data.fs"),
        Config {
            address: Some(Address::tcp("", 8000)),
            ..Config::default()
        },
    );
    assert!(s.config.keep_alive_delay.is_zero());
    assert_eq!(drain(&mut s), vec![Action::Connect(Address::tcp("", 8000))]);
    s.connected("peer");
    let actions = drain(&mut s);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SetTimer { .. } | Action::CancelTimer(_))),
        "{actions:?}"
    );
    s.connection_lost(&LossReason::Done);
    assert_eq!(
        drain(&mut s),
        vec![Action::SetTimer {
            timer: Timer::Connect,
            delay: s.config.reconnect_delay,
        }]
    );
}

#[test]
fn close_in_each_phase_never_reconnects() {
    // Connecting: the attempt is abandoned.
    let mut s = Secondary::new(MemoryStorage::new("Data.fs"), config());
    drain(&mut s);
    s.close().unwrap();
    assert_eq!(drain(&mut s), vec![Action::AbortConnect]);
    // Connected: disconnect, keep-alive cancelled, no reconnect.
    let mut s = connected();
    drain(&mut s);
    s.close().unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Action::Disconnect, Action::CancelTimer(Timer::KeepAlive)]
    );
    // A reconnect that was already pending fires into a closed secondary: it goes nowhere.
    let mut s = Secondary::new(MemoryStorage::new("Data.fs"), config());
    drain(&mut s);
    s.connection_failed(&LossReason::Other("rejected".into()));
    drain(&mut s);
    s.close().unwrap();
    s.timeout(Timer::Connect);
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Connect(Address::tcp("", 8000)),
            Action::AbortConnect
        ]
    );
    assert!(s.is_closed());
}

#[test]
fn the_secondary_reads_as_a_read_only_storage() {
    // A secondary is a ReadStorage and nothing more: writing through it does not compile.
    let mut s = connected();
    drain(&mut s);
    let mut p = Primary::new(Tid::ZERO);
    p.transaction(
        Tid::from_u64(5),
        &[(Oid::ZERO, b"root"), (Oid::from_u64(1), b"one")],
    );
    p.commit(None);
    s.data_received(&p.out);
    let reads: &dyn ReadStorage = &s;
    assert_eq!(reads.last_transaction(), Tid::from_u64(5));
    assert_eq!(
        reads.load(Oid::ZERO).unwrap(),
        (b"root".to_vec(), Tid::from_u64(5))
    );
    assert!(reads.has_transaction(Tid::from_u64(5)).unwrap());
    assert!(!reads.has_transaction(Tid::from_u64(4)).unwrap());
    assert_eq!(reads.reader().iterator(None, None).count(), 1);
    // Every read answers what the storage under it answers.
    assert_eq!(reads.name(), "Data.fs");
    assert_eq!(reads.len(), 2);
    assert!(reads.size() > 0);
    assert_eq!(reads.size(), s.storage.size());
    assert_eq!(reads.format(), Some(Format::Fs30));
    assert!(!reads.keeps_blobs());
    assert_eq!(
        reads.load_before(Oid::ZERO, Tid::from_u64(6)).unwrap(),
        Some((b"root".to_vec(), Tid::from_u64(5), None))
    );
    assert_eq!(
        reads.load_before(Oid::ZERO, Tid::from_u64(5)).unwrap(),
        None
    );
    assert_eq!(
        reads.load_serial(Oid::ZERO, Tid::from_u64(5)).unwrap(),
        b"root"
    );
    assert_eq!(reads.history(Oid::ZERO, 10).unwrap().len(), 1);
    assert_eq!(reads.iterator(Some(Tid::from_u64(6)), None).count(), 0);
    assert_eq!(reads.iterator(None, Some(Tid::from_u64(5))).count(), 1);
    // Over a blob storage, it keeps blobs, and opens those it replicated.
    let dir = tempfile::tempdir().unwrap();
    let blobs = crate::storage::blob::BlobStorage::open(
        MemoryStorage::new("Data.fs"),
        &dir.path().join("blobs"),
        false,
    )
    .unwrap();
    let mut s = Secondary::new(blobs, config());
    assert!(s.keeps_blobs());
    drain(&mut s);
    s.connected("peer");
    drain(&mut s);
    let mut p = Primary::new(Tid::ZERO);
    p.transaction(Tid::from_u64(5), &[(Oid::ZERO, b"root")]);
    let record = RecordHeader {
        oid: Oid::from_u64(1),
        serial: Tid::from_u64(5),
        version: Vec::new(),
        data_txn: None,
    };
    let content = b"the blob's bytes";
    p.encoder
        .blob(
            &record,
            Some(b"cZODB.blob\nBlob\nq\x01.N."),
            content.len() as u64,
            &mut &content[..],
            &mut p.out,
        )
        .unwrap();
    p.commit(None);
    s.data_received(&p.out);
    let reads: &dyn ReadStorage = &s;
    assert_eq!(reads.last_transaction(), Tid::from_u64(5));
    let blob = reads
        .open_blob(Oid::from_u64(1), Tid::from_u64(5))
        .unwrap()
        .expect("the blob replicated");
    assert_eq!(blob.read_all().unwrap(), content);
    assert!(reads
        .open_blob(Oid::from_u64(1), Tid::from_u64(4))
        .unwrap()
        .is_none());
}

#[test]
fn no_address_means_no_connection_until_one_is_set() {
    let mut s = Secondary::new(MemoryStorage::new("Data.fs"), Config::default());
    assert_eq!(drain(&mut s), vec![]);
    s.set_replication_address(Address::tcp("primary", 8100));
    assert_eq!(
        drain(&mut s),
        vec![Action::Connect(Address::tcp("primary", 8100))]
    );
}

#[test]
fn a_primary_that_closes_before_sending_anything_is_explained() {
    // From a non-empty storage: the start is not zero.
    let mut s = connected();
    drain(&mut s);
    s.data_received(&root_stream(None));
    s.connection_lost(&LossReason::Done);
    reconnect_when_the_timer_fires(&mut s);
    let ((), text) = crate::test_log::capture(|| s.connection_lost(&LossReason::Done));
    assert!(
        text.contains("peer: The primary closed the connection without sending anything after start b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x05'"),
        "{text}"
    );
    assert!(text.contains("another database's history"), "{text}");
    // Not after a connection that carried data, nor from an empty storage.
    let mut s = connected();
    let ((), text) = crate::test_log::capture(|| s.connection_lost(&LossReason::Done));
    assert!(!text.contains("without sending anything"), "{text}");
}

/// `('T', (tid 0x03d2a71b4ccccccc, ' ', '', '', {'note': u'ok'}))` as a Python 2 zc.zrs
/// primary pickles it (cPickle, protocol 1, fast; tests/fixtures/pickles/extension_py2.txt).
const PY2_T: &str = "2855015428550803d2a71b4ccccccc550120550055007d55046e6f7465580200\
                     00006f6b7374742e";
/// What ZODB 4 on Python 2 stores for that extension (the same fixture).
const PY2_EXT: &[u8] = b"}q\x01U\x04noteq\x02X\x02\x00\x00\x00okq\x03s.";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A Python 2 primary's transaction (one record), committed.
fn python2_stream() -> (Tid, Vec<u8>) {
    let tid = Tid::from_u64(0x03d2a71b4ccccccc);
    let mut p = Primary::new(Tid::ZERO);
    p.encoder.message(&unhex(PY2_T), &mut p.out);
    let record = RecordHeader {
        oid: Oid::ZERO,
        serial: tid,
        version: Vec::new(),
        data_txn: None,
    };
    p.encoder.store(&record, Some(b"root"), &mut p.out);
    p.commit(None);
    (tid, p.out)
}

fn stored_extension<S: Storage>(s: &Secondary<S>) -> Vec<u8> {
    let txn = s.storage().iterator(None, None).next().unwrap().unwrap();
    txn.meta.extension
}

#[test]
fn a_python2_primary_makes_a_new_storage_fs21_with_python2_extensions() {
    let (tid, stream) = python2_stream();
    let mut s = connected();
    drain(&mut s);
    s.data_received(&stream);
    assert_eq!(s.storage().last_transaction(), tid);
    assert_eq!(s.storage().format(), Some(Format::Fs21));
    assert_eq!(stored_extension(&s), PY2_EXT);
    // Configured for a primary behind ZEO (extensions unpickled there): no string memoized.
    let mut s = Secondary::new(
        MemoryStorage::new("Data.fs"),
        Config {
            py2_extensions: crate::pickle::Identity::Unpickled,
            ..config()
        },
    );
    drain(&mut s);
    s.connected("peer");
    drain(&mut s);
    s.data_received(&stream);
    assert_eq!(
        stored_extension(&s),
        b"}q\x01U\x04noteX\x02\x00\x00\x00oks."
    );
    // A Python 3 primary's stream leaves a new storage FS30.
    let mut s = connected();
    drain(&mut s);
    s.data_received(&root_stream(None));
    assert_eq!(s.storage().format(), Some(Format::Fs30));
}

#[test]
fn a_storage_of_the_other_format_is_an_input_error_unless_configured() {
    let (tid, stream) = python2_stream();
    let mut storage = MemoryStorage::new("Data.fs");
    storage.set_format(Format::Fs30).unwrap();
    let mut s = Secondary::new(storage, config());
    drain(&mut s);
    s.connected("peer");
    drain(&mut s);
    let ((), logs) = crate::test_log::capture(|| s.data_received(&stream));
    assert!(drain(&mut s).contains(&Action::Disconnect));
    assert_eq!(s.storage().last_transaction(), Tid::ZERO);
    assert!(
        logs.contains("the primary writes FS21 files (it pickles as Python 2 does), but Data.fs is an FS30 file"),
        "{logs}"
    );
    // Configured FS30: the transaction goes in, its extension pickled as Python 3 does.
    let mut storage = MemoryStorage::new("Data.fs");
    storage.set_format(Format::Fs30).unwrap();
    let mut s = Secondary::new(
        storage,
        Config {
            format: Some(Format::Fs30),
            ..config()
        },
    );
    drain(&mut s);
    s.connected("peer");
    drain(&mut s);
    s.data_received(&stream);
    assert_eq!(s.storage().last_transaction(), tid);
    assert_eq!(
        stored_extension(&s),
        crate::pickle::dumps_extension(&Value::Dict(vec![(
            Value::Bytes(b"note".to_vec()),
            Value::Str("ok".into())
        )]))
    );
}

#[test]
fn with_checksums_off_a_wrong_checksum_is_not_checked() {
    // zc.zrs's `check_checksums=False`: the `C`'s digest is not compared at all.
    let config = Config {
        check_checksums: false,
        ..config()
    };
    let mut s = Secondary::new(MemoryStorage::new("Data.fs"), config);
    s.connected("peer");
    drain(&mut s);
    s.data_received(&root_stream(Some([0; 16])));
    assert_eq!(s.storage().last_transaction(), Tid::from_u64(5));
    assert!(!drain(&mut s).contains(&Action::Disconnect));
}

#[test]
fn a_close_is_explained_only_when_the_primary_closed_cleanly_having_sent_nothing() {
    // From a non-empty storage (start 5): a connection that carried a transaction and then
    // closed is not explained, nor one lost (not closed) before anything came.
    let mut s = connected();
    drain(&mut s);
    s.data_received(&root_stream(None));
    s.connection_lost(&LossReason::Done);
    reconnect_when_the_timer_fires(&mut s);
    let mut p = Primary::new(Tid::from_u64(5));
    p.transaction(Tid::from_u64(6), &[(Oid::ZERO, b"root 2")]);
    p.commit(None);
    s.data_received(&p.out);
    assert_eq!(s.storage().last_transaction(), Tid::from_u64(6));
    let ((), text) = crate::test_log::capture(|| s.connection_lost(&LossReason::Done));
    assert!(!text.contains("without sending anything"), "{text}");
    reconnect_when_the_timer_fires(&mut s);
    let ((), text) = crate::test_log::capture(|| s.connection_lost(&LossReason::Lost));
    assert!(!text.contains("without sending anything"), "{text}");
}

/// The streams both ways of hashing must agree on: good ones, a wrong checksum in the
/// middle (after one good transaction), a wrong first one, a `C` without checksum, and a
/// stream cut inside a transaction.
fn checksum_streams() -> Vec<(&'static str, Vec<u8>)> {
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let records = |n: u64| -> Vec<(Oid, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    Oid::from_u64(i),
                    if i == 1 {
                        big.clone()
                    } else {
                        vec![i as u8; 3]
                    },
                )
            })
            .collect()
    };
    let build = |wrong: Option<usize>, legacy: Option<usize>, cut: bool| {
        let mut p = Primary::new(Tid::ZERO);
        for t in 0..3 {
            let rs = records(t as u64 + 1);
            let rs: Vec<(Oid, &[u8])> = rs.iter().map(|(o, d)| (*o, &d[..])).collect();
            p.transaction(Tid::from_u64(5 + t as u64), &rs);
            if legacy == Some(t) {
                p.encoder.legacy_commit(&mut p.out);
            } else {
                p.commit((wrong == Some(t)).then_some([7; 16]));
            }
        }
        if cut {
            p.out.truncate(p.out.len() - 30);
        }
        p.out
    };
    vec![
        ("good", build(None, None, false)),
        ("wrong second checksum", build(Some(1), None, false)),
        ("wrong first checksum", build(Some(0), None, false)),
        ("no checksum in the second C", build(None, Some(1), false)),
        ("cut in the last transaction", build(None, None, true)),
    ]
}

/// What a secondary did with `stream` in pieces of `chunk` bytes: its actions, its last
/// transaction, whether one is in progress, and its log. `driver_scans`: the scanner is
/// taken and run outside, in scans of at most `max` checkpoints, as the network driver does.
fn replicate(
    stream: &[u8],
    chunk: usize,
    driver_scans: Option<usize>,
) -> (Vec<Action>, Tid, bool, String) {
    let mut s = connected();
    drain(&mut s);
    let mut scanner = driver_scans.map(|_| s.take_checksum_scanner().expect("a scanner"));
    let ((), log) = crate::test_log::capture(|| {
        for piece in stream.chunks(chunk) {
            match (scanner.as_mut(), driver_scans) {
                (Some(scanner), Some(max)) => {
                    let mut rest = piece;
                    while !rest.is_empty() {
                        let mut checkpoints = Vec::new();
                        let used = scanner.scan(rest, max, &mut checkpoints);
                        s.data_received_scanned(&rest[..used], checkpoints);
                        rest = &rest[used..];
                    }
                }
                _ => s.data_received(piece),
            }
        }
    });
    let in_transaction = s.in_transaction();
    (
        drain(&mut s),
        s.storage().last_transaction(),
        in_transaction,
        log,
    )
}

#[test]
fn the_driver_run_scanner_and_the_inline_one_decide_alike() {
    for (name, stream) in checksum_streams() {
        for chunk in [1, 7, 100, 4096, stream.len()] {
            let inline = replicate(&stream, chunk, None);
            for max in [1, 3, 1024] {
                let outside = replicate(&stream, chunk, Some(max));
                assert_eq!(inline, outside, "{name}, chunks of {chunk}, scans of {max}");
            }
        }
    }
    // And what they decide is right: the good stream commits all three transactions, a
    // wrong checksum stops before the transaction it ends.
    let streams = checksum_streams();
    let (_, last, _, _) = replicate(&streams[0].1, 100, Some(1024));
    assert_eq!(last, Tid::from_u64(7));
    let (actions, last, in_txn, log) = replicate(&streams[1].1, 100, Some(1024));
    assert_eq!(last, Tid::from_u64(5));
    assert!(!in_txn, "the partial transaction is aborted");
    assert!(actions.contains(&Action::Disconnect));
    assert!(log.contains("bad checksum: received 07070707"), "{log}");
    let (_, last, _, _) = replicate(&streams[2].1, 100, Some(1024));
    assert_eq!(last, Tid::ZERO);
    let (_, last, _, _) = replicate(&streams[3].1, 100, Some(1024));
    assert_eq!(last, Tid::from_u64(5));
    let (_, last, in_txn, _) = replicate(&streams[4].1, 100, Some(1024));
    assert_eq!((last, in_txn), (Tid::from_u64(6), true));
}

#[test]
fn input_without_checkpoints_after_the_scanner_was_taken_is_refused() {
    let mut s = connected();
    drain(&mut s);
    let mut scanner = s.take_checksum_scanner().expect("a scanner");
    assert!(s.take_checksum_scanner().is_none());
    // One transaction with its checkpoints: committed.
    let mut p = Primary::new(Tid::ZERO);
    p.transaction(Tid::from_u64(5), &[(Oid::ZERO, b"root")]);
    p.commit(None);
    let mut checkpoints = Vec::new();
    assert_eq!(scanner.scan(&p.out, 100, &mut checkpoints), p.out.len());
    s.data_received_scanned(&p.out, checkpoints);
    assert_eq!(s.storage().last_transaction(), Tid::from_u64(5));
    // The next without: refused, naming the message that follows those four (T, S, data, C).
    p.out.clear();
    p.transaction(Tid::from_u64(6), &[(Oid::ZERO, b"root 2")]);
    p.commit(None);
    let ((), log) = crate::test_log::capture(|| s.data_received(&p.out));
    assert!(log.contains("message 5: no checksum checkpoint"), "{log}");
    assert_eq!(s.storage().last_transaction(), Tid::from_u64(5));
    assert!(drain(&mut s).contains(&Action::Disconnect));
}

/// The driver's idle sync: a storage that fails it is left failed, and the secondary says
/// so (the error back, a CRITICAL log, its connection dropped) rather than carrying on
/// with writes of unknown state.
#[test]
fn a_failed_idle_sync_is_an_error_and_drops_the_connection() {
    use crate::storage::file::backend::MemoryBackend;
    use crate::storage::file::faulty::{DiskError, DiskFault, DiskOp, FaultyBackend};
    use crate::storage::{Durability, FileStorage, Options};
    use std::sync::Arc;
    let disk = Arc::new(FaultyBackend::new(MemoryBackend::new()));
    let storage = FileStorage::open_with_backend(
        "Data.fs",
        Box::new(disk.clone()),
        Options {
            read_only: false,
            durability: Durability::Batch(100),
        },
    )
    .unwrap();
    let mut s = Secondary::new(storage, config());
    drain(&mut s);
    connect_and_commit_root(&mut s);
    disk.arm(DiskFault::once(DiskOp::Sync, DiskError::Io));
    let (result, logs) = crate::test_log::capture(|| s.sync());
    assert!(result.is_err());
    assert!(drain(&mut s).contains(&Action::Disconnect));
    assert!(logs.contains("Storage error"), "{logs}");
    // Healthy again, the storage syncs.
    s.storage.recover().unwrap();
    assert!(s.sync().is_ok());
}
