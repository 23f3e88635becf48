//! The primary on its own, as zc.zrs's `primary.test` and the primary cases of its
//! `tests.py` exercise it: events in, actions and logs out, over a MemoryStorage; what it
//! streams is replayed into a real secondary.

use super::*;
use crate::protocol::framing::{frame, FrameDecoder};
use crate::protocol::Message;
use crate::secondary::{self, Secondary};
use crate::storage::{MemoryStorage, ReadStorage, Storage, TransactionMeta, TransactionRecord};
use crate::tid::Oid;

const A: ConnectionId = ConnectionId(1);
const B: ConnectionId = ConnectionId(2);
/// The primary reads through a handle; the tests commit through the storage.
type P = Primary<Box<dyn ReadStorage + Send + Sync>>;

const PEER: &str = "IPv4Address(TCP, '127.0.0.1', 47245)";

use crate::test_log::capture as logs;

fn tid(n: u64) -> Tid {
    // 2007-03-21 20:32:57 and on, a second apart, as in primary.test.
    Tid::from_u64(0x036c_6b90_f000_0000 + n * 0x0444_4444)
}

/// A record to commit: oid, data, and the transaction `data_txn` names, if any.
type Rec<'a> = (u64, Option<&'a [u8]>, Option<u64>);

/// Commits transaction `n` storing `records`.
fn commit(s: &mut MemoryStorage, n: u64, records: &[Rec<'_>]) {
    s.tpc_begin(TransactionMeta {
        tid: tid(n),
        status: b' ',
        user: Vec::new(),
        description: if n == 0 {
            b"initial database creation".to_vec()
        } else {
            Vec::new()
        },
        extension: Vec::new(),
    })
    .unwrap();
    for &(oid, data, data_txn) in records {
        s.restore(Oid::from_u64(oid), tid(n), data, b"", data_txn.map(tid))
            .unwrap();
    }
    s.tpc_vote().unwrap();
    s.tpc_finish().unwrap();
}

/// primary.test's database: the root, then the root and `x`.
fn database() -> MemoryStorage {
    let mut s = MemoryStorage::new("Data.fs");
    commit(&mut s, 0, &[(0, Some(b"root 0"), None)]);
    commit(
        &mut s,
        1,
        &[(0, Some(b"root 1"), None), (1, Some(b"x 1"), None)],
    );
    s
}

/// A primary reading what `storage` commits, with a send window of `window` bytes.
fn primary_with(storage: &MemoryStorage, window: usize) -> P {
    Primary::new(
        storage.reader(),
        Config {
            send_window: window,
            ..Config::new(Address::tcp("", 8000))
        },
    )
}

fn primary(storage: &MemoryStorage) -> P {
    primary_with(storage, DEFAULT_SEND_WINDOW)
}

fn drain(p: &mut P) -> Vec<Action> {
    std::iter::from_fn(|| p.poll_action()).collect()
}

/// The messages of everything transmitted on `id` (pickles decoded, raw data as bytes).
fn transmitted(actions: &[Action], id: ConnectionId) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit(c, bytes) if *c == id => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut d = FrameDecoder::new(u32::MAX);
    d.feed(bytes);
    std::iter::from_fn(|| d.next_frame().unwrap()).collect()
}

/// The kinds of the messages (`T`, `S`, `C`, and `data` for raw ones).
fn kinds(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut raw_next = false;
    for m in messages(bytes) {
        if raw_next {
            out.push("data".to_string());
            raw_next = false;
            continue;
        }
        out.push(match Message::decode(&m).unwrap() {
            Message::Transaction(_) => "T".into(),
            Message::Store(_) => {
                raw_next = true;
                "S".into()
            }
            Message::Blob { .. } => "B".into(),
            Message::Commit { .. } => "C".into(),
        });
    }
    out
}

/// Sends the secondary's handshake from `start`.
fn hello(p: &mut P, id: ConnectionId, start: Tid) {
    for m in crate::protocol::handshake::hello(crate::protocol::ZRS_2_0, start) {
        p.data_received(id, &m);
    }
}

/// Replays a stream into a fresh secondary over a MemoryStorage; returns its transactions.
fn replicate(start_storage: MemoryStorage, stream: &[u8]) -> Vec<TransactionRecord> {
    let config = secondary::Config {
        address: Some(Address::tcp("", 8000)),
        ..secondary::Config::default()
    };
    let mut s = Secondary::new(start_storage, config);
    s.connected(PEER);
    s.data_received(stream);
    while let Some(a) = s.poll_action() {
        assert!(
            !matches!(a, secondary::Action::Disconnect),
            "the secondary refused the stream"
        );
    }
    s.storage()
        .iterator(None, None)
        .map(Result::unwrap)
        .collect()
}

#[test]
fn streams_everything_after_the_start_then_new_commits() {
    let mut storage = database();
    let (mut p, text) = logs(|| {
        let mut p = primary(&storage);
        p.connected(A, PEER);
        hello(&mut p, A, Tid::ZERO);
        p.data_received(A, &frame(b""));
        p
    });
    assert_eq!(
        text.lines()
            .map(|l| l.split_once(": ").map_or(l, |(_, m)| m))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(" py_level=\"INFO\"", "")
            .replace(" py_level=\"DEBUG\"", ""),
        format!(
            "Opening Data.fs ('', 8000)\n\
             {PEER}: Connected\n\
             {PEER}: start b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' (1900-01-01 00:00:00.000000)\n\
             {PEER}: keep-alive"
        )
    );
    let actions = drain(&mut p);
    assert_eq!(actions.len(), 1, "one window: {actions:?}");
    let first = transmitted(&actions, A);
    assert_eq!(
        kinds(&first),
        ["T", "S", "data", "C", "T", "S", "data", "S", "data", "C"]
    );
    // The secondary takes it, md5s and all, into the same transactions.
    let expected: Vec<_> = storage.iterator(None, None).map(Result::unwrap).collect();
    assert_eq!(replicate(MemoryStorage::new("S.fs"), &first), expected);

    // Nothing more until a commit, and a commit waits for the host's `writable`.
    p.committed();
    assert_eq!(drain(&mut p), []);
    p.writable(A);
    assert_eq!(drain(&mut p), []);
    // An undo-like record (data_txn) and a new object.
    commit(
        &mut storage,
        2,
        &[(1, Some(b"x 1"), Some(1)), (2, Some(b"new"), None)],
    );
    p.committed();
    let more = transmitted(&drain(&mut p), A);
    assert_eq!(kinds(&more), ["T", "S", "data", "S", "data", "C"]);
    let Message::Store(s) = Message::decode(&messages(&more)[1]).unwrap() else {
        panic!("S")
    };
    assert_eq!(s.data_txn, Some(tid(1)));
    assert_eq!(p.storage().last_transaction(), tid(2));

    // Another connection from a saved tid gets only what follows it.
    p.connected(B, "IPv4Address(TCP, '127.0.0.1', 47246)");
    hello(&mut p, B, tid(1));
    let from_saved = transmitted(&drain(&mut p), B);
    assert_eq!(kinds(&from_saved), kinds(&more));
    // Its md5 starts from the saved tid: a secondary holding the first two transactions
    // takes it.
    let replica = replicate(database(), &from_saved);
    assert_eq!(replica.len(), 3);
    assert_eq!(replica[2].meta.tid, tid(2));

    // A secondary that goes away is forgotten.
    let ((), text) = logs(|| p.connection_lost(A, &LossReason::Done));
    assert!(text.contains(&format!(
        "{PEER}: Disconnected <twisted.python.failure.Failure <class 'twisted.internet.error.ConnectionDone'>>"
    )));
    assert_eq!(p.connections(), 1);
}

/// Runs a bad handshake; returns the actions and the logs.
fn refused(messages: &[&[u8]]) -> (Vec<Action>, String) {
    logs(|| {
        let storage = database();
        let mut p = primary(&storage);
        p.connected(A, PEER);
        for m in messages {
            p.data_received(A, &frame(m));
        }
        assert_eq!(p.connections(), 0, "the connection is closed");
        drain(&mut p)
    })
}

fn has(text: &str, level: &str, message: &str) -> bool {
    text.lines()
        .any(|l| l.contains(level) && l.contains("zc.zrs.primary") && l.contains(message))
}

#[test]
fn bad_handshakes_are_logged_and_closed_as_zc_zrs_does() {
    let cases: [(&[&[u8]], &str); 5] = [
        (&[b"Hi"], "Invalid protocol b'Hi'"),
        (&[b"xxxxxxxxxxxxxxx"], "message too large: (8, 15)"),
        (
            &[b"zrs2.0", b"xxxxxxxxxxxxxxx"],
            "message too large: (8, 15)",
        ),
        (
            &[b"zrs2.0", b"xxxxxxx"],
            "Invalid transaction id, b'xxxxxxx'",
        ),
        (&[b"zrs2.0", &[0; 8], b"", b"Hi"], "Too many messages"),
    ];
    for (messages, error) in cases {
        let (actions, text) = refused(messages);
        assert_eq!(actions.last(), Some(&Action::Disconnect(A)), "{error}");
        assert!(has(&text, "ERROR", &format!("{PEER}: {error}")), "{text}");
        // As zc.zrs: the error, then Disconnected, then Closed.
        let error_at = text.find(error).unwrap();
        let disconnected = text.find("Disconnected").unwrap();
        let closed = text.find(&format!("{PEER}: Closed")).unwrap();
        assert!(error_at < disconnected && disconnected < closed, "{text}");
    }
}

#[test]
fn a_start_later_than_the_last_transaction_is_tid_too_high() {
    let too_high = Tid::from_u64(tid(1).as_u64() + 1);
    let (actions, text) = refused(&[b"zrs2.0", too_high.as_bytes()]);
    assert_eq!(actions, [Action::Disconnect(A)]);
    assert!(
        has(
            &text,
            "ERROR",
            &format!("TidTooHigh: {}", py3_bytes_repr(too_high.as_bytes()))
        ),
        "{text}"
    );
    assert!(
        text.contains("start b'"),
        "the start is logged first: {text}"
    );
    assert!(!text.contains("Closed"), "{text}");
}

#[test]
fn a_start_naming_no_transaction_is_another_history_and_refused() {
    // Between the two transactions: zc.zrs would stream the second into it.
    let foreign = Tid::from_u64(tid(0).as_u64() + 1);
    let (actions, text) = refused(&[b"zrs2.0", foreign.as_bytes()]);
    assert_eq!(actions, [Action::Disconnect(A)]);
    assert!(
        has(
            &text,
            "ERROR",
            &format!("Refusing start {}", py3_bytes_repr(foreign.as_bytes()))
        ),
        "{text}"
    );
    assert!(text.contains("another history"), "{text}");
}

#[test]
fn output_waits_for_the_host_a_window_at_a_time() {
    let mut storage = MemoryStorage::new("Data.fs");
    for n in 0..50 {
        commit(&mut storage, n, &[(n, Some(&[7u8; 100][..]), None)]);
    }
    let mut p = primary_with(&storage, 1);
    p.connected(A, PEER);
    hello(&mut p, A, Tid::ZERO);
    let mut all = Vec::new();
    for n in 0..50 {
        let actions = drain(&mut p);
        // One transaction per window of 1 byte, and nothing until the host asks.
        assert_eq!(actions.len(), 1, "transaction {n}");
        let bytes = transmitted(&actions, A);
        assert_eq!(kinds(&bytes), ["T", "S", "data", "C"]);
        all.extend(bytes);
        assert_eq!(drain(&mut p), []);
        p.writable(A);
    }
    assert_eq!(drain(&mut p), [], "caught up");
    assert_eq!(replicate(MemoryStorage::new("S.fs"), &all).len(), 50);
}

#[test]
fn close_stops_listening_sends_what_is_committed_then_closes() {
    let mut storage = MemoryStorage::new("Data.fs");
    for n in 0..3 {
        commit(&mut storage, n, &[(n, Some(b"x"), None)]);
    }
    let mut p = primary_with(&storage, 1);
    p.connected(A, PEER);
    hello(&mut p, A, Tid::ZERO);
    p.connected(B, "IPv4Address(TCP, '127.0.0.1', 47246)");
    p.data_received(B, &frame(b"zrs2.0"));
    let first = transmitted(&drain(&mut p), A);
    let ((), text) = logs(|| p.close());
    assert!(has(&text, "INFO", "Closing Data.fs ('', 8000)"), "{text}");
    assert!(has(&text, "INFO", &format!("{PEER}: Closed")), "{text}");
    // The connection still in its handshake goes at once; the streaming one catches up.
    assert_eq!(
        drain(&mut p),
        [Action::StopListening, Action::Disconnect(B)]
    );
    assert!(!p.is_closed());
    let mut rest = Vec::new();
    loop {
        p.writable(A);
        let actions = drain(&mut p);
        if actions == [Action::Disconnect(A)] {
            break;
        }
        rest.extend(transmitted(&actions, A));
    }
    assert!(p.is_closed());
    let stream = [first, rest].concat();
    assert_eq!(replicate(MemoryStorage::new("S.fs"), &stream).len(), 3);
}

#[test]
fn a_connection_accepted_while_closing_is_closed_at_once() {
    let storage = database();
    let mut p = primary(&storage);
    p.close();
    p.connected(A, PEER);
    assert_eq!(
        drain(&mut p),
        [Action::StopListening, Action::Disconnect(A)]
    );
    assert!(p.is_closed());
}

#[test]
fn a_replaced_storage_is_streamed_on_from_where_the_stream_was() {
    // The writer packed: the file is replaced by one with the same later history. The
    // stream goes on after the last transaction sent, its md5 unbroken.
    let mut before = database();
    let mut p = primary(&before);
    p.connected(A, PEER);
    hello(&mut p, A, Tid::ZERO);
    let first = transmitted(&drain(&mut p), A);
    let mut packed = MemoryStorage::new("Data.fs");
    commit(
        &mut packed,
        1,
        &[(0, Some(b"root 1"), None), (1, Some(b"x 1"), None)],
    );
    commit(&mut packed, 2, &[(2, Some(b"after the pack"), None)]);
    commit(&mut before, 2, &[(2, Some(b"after the pack"), None)]);
    p.writable(A);
    p.replace_storage(packed.reader());
    let rest = transmitted(&drain(&mut p), A);
    assert_eq!(kinds(&rest), ["T", "S", "data", "C"]);
    let replica = replicate(MemoryStorage::new("S.fs"), &[first, rest].concat());
    let expected: Vec<_> = before.iterator(None, None).map(Result::unwrap).collect();
    assert_eq!(replica, expected);
}

/// Everything transmitted on each connection, windows sealed (with one [`Sealer`] per
/// connection, as the driver's writer threads do) where the primary left them unsealed;
/// and the largest window.
#[derive(Default)]
struct Wire {
    streams: BTreeMap<ConnectionId, Vec<u8>>,
    sealers: BTreeMap<ConnectionId, crate::protocol::Sealer>,
    largest: usize,
    window: usize,
}

impl Wire {
    /// Takes the primary's actions; returns whether any bytes went out.
    fn take(&mut self, p: &mut P) -> bool {
        let mut sent = false;
        for action in drain(p) {
            let (id, bytes) = match action {
                Action::Transmit(id, bytes) => (id, bytes),
                Action::TransmitUnsealed(id, window) => {
                    if let Some(start) = window.start() {
                        let fresh = crate::protocol::Sealer::new(start);
                        assert!(self.sealers.insert(id, fresh).is_none(), "one start");
                    }
                    let sealer = self.sealers.get_mut(&id).expect("the first window starts");
                    (id, sealer.seal(window).to_vec())
                }
                _ => continue,
            };
            self.largest = self.largest.max(bytes.len());
            self.streams.entry(id).or_default().extend(bytes);
            sent = true;
        }
        sent
    }
}

/// Commits transaction `n` of seeded random records into `storage` (new objects, updates,
/// undo-style records naming an earlier transaction, now and then a large one); returns
/// its size as encoded.
fn commit_random(storage: &mut MemoryStorage, n: u64, rng: &mut impl rand::Rng) -> usize {
    let objects = storage.iterator(None, None).count() as u64 * 5;
    let mut records: Vec<(u64, Vec<u8>, Option<u64>)> = Vec::new();
    for _ in 0..rng.gen_range(1..6) {
        let oid = rng.gen_range(0..=objects);
        if records.iter().any(|r| r.0 == oid) {
            continue;
        }
        let len = if rng.gen_bool(0.05) {
            rng.gen_range(6_000..20_000)
        } else {
            rng.gen_range(0..500)
        };
        let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // An undo-style record: the data of an earlier transaction, which it names.
        let undo = (n > 0 && rng.gen_bool(0.1)).then(|| rng.gen_range(0..n));
        records.push((oid, data, undo));
    }
    // No data (a record undoing an object's creation) where the length came out 0.
    let recs: Vec<Rec<'_>> = records
        .iter()
        .map(|(o, d, t)| (*o, (!d.is_empty()).then_some(&d[..]), *t))
        .collect();
    commit(storage, n, &recs);
    let txn = storage
        .iterator(Some(tid(n)), Some(tid(n)))
        .next()
        .unwrap()
        .unwrap();
    let mut encoded = Vec::new();
    crate::protocol::StreamEncoder::new(Tid::ZERO)
        .transaction(&txn, &mut encoded)
        .unwrap();
    encoded.len()
}

/// One seeded run: two connections (from zero and from a middle tid) taking windows in a
/// random order while more is committed, until both have everything. Returns what went out
/// on the wire, the largest transaction, and how many were committed.
fn seeded_run(seed: u64, sealing: Sealing) -> (Wire, usize, u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let window = [1, 300, 5_000, 1 << 20][rng.gen_range(0..4)];
    let mut storage = MemoryStorage::new("Data.fs");
    let mut largest_txn = 0;
    let early = rng.gen_range(1..30);
    for n in 0..early {
        largest_txn = largest_txn.max(commit_random(&mut storage, n, &mut rng));
    }
    let total = early + rng.gen_range(0..30);
    let mut p = Primary::new(
        storage.reader(),
        Config {
            send_window: window,
            sealing,
            ..Config::new(Address::tcp("", 8000))
        },
    );
    let mut wire = Wire::default();
    p.connected(A, PEER);
    hello(&mut p, A, Tid::ZERO);
    p.connected(B, PEER);
    hello(&mut p, B, tid(rng.gen_range(0..early)));
    wire.take(&mut p);
    let mut n = early;
    for _ in 0..60 {
        if rng.gen_bool(0.3) && n < total {
            largest_txn = largest_txn.max(commit_random(&mut storage, n, &mut rng));
            n += 1;
            p.committed();
        }
        p.writable([A, B][rng.gen_range(0..2)]);
        wire.take(&mut p);
    }
    while n < total {
        largest_txn = largest_txn.max(commit_random(&mut storage, n, &mut rng));
        n += 1;
        p.committed();
    }
    loop {
        p.writable(A);
        p.writable(B);
        if !wire.take(&mut p) {
            break;
        }
    }
    wire.window = window;
    (wire, largest_txn, total)
}

#[test]
fn sealing_in_the_host_sends_the_same_bytes_as_sealing_in_the_core() {
    for seed in 0..16 {
        let (core, largest_txn, committed) = seeded_run(seed, Sealing::InCore);
        let (host, _, _) = seeded_run(seed, Sealing::ByHost);
        assert_eq!(core.streams, host.streams, "seed {seed}");
        for wire in [&core, &host] {
            // Both hold a window and one transaction at most (a transaction's `C` is up to
            // 16 bytes longer on the wire than when it was measured, with another digest).
            assert!(
                wire.largest < wire.window + largest_txn + 16,
                "seed {seed}: {} for a window of {} (largest transaction {largest_txn})",
                wire.largest,
                wire.window
            );
        }
        // And the stream is one a secondary takes: everything committed.
        let replica = replicate(MemoryStorage::new("S.fs"), &host.streams[&A]);
        assert_eq!(replica.len() as u64, committed, "seed {seed}");
    }
}
