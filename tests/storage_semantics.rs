//! The storage trait's semantics, one suite run against every implementation:
//! `MemoryStorage`, `FileStorage` on a real file, and `FileStorage` on a memory backend.
//! A seeded random workload then checks that all of them agree record for record and on
//! size (MemoryStorage reports the size the same transactions take in a Data.fs).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::storage::file::backend::MemoryBackend;
use zrs::storage::ReadStorage;
use zrs::storage::{
    FileStorage, MemoryStorage, Options, Storage, StorageError, TransactionMeta, TransactionRecord,
};
use zrs::{Oid, Tid};

type Factory = fn(&tempfile::TempDir) -> Box<dyn Storage>;

fn memory(_: &tempfile::TempDir) -> Box<dyn Storage> {
    Box::new(MemoryStorage::new("mem"))
}
fn file(dir: &tempfile::TempDir) -> Box<dyn Storage> {
    Box::new(FileStorage::open(dir.path().join("Data.fs"), Options::default()).unwrap())
}
fn file_in_memory(_: &tempfile::TempDir) -> Box<dyn Storage> {
    Box::new(
        FileStorage::open_with_backend(
            "mem.fs",
            Box::new(MemoryBackend::new()),
            Options::default(),
        )
        .unwrap(),
    )
}

const FACTORIES: [(&str, Factory); 3] = [
    ("memory", memory),
    ("file", file),
    ("file_in_memory", file_in_memory),
];

fn each(test: impl Fn(&mut dyn Storage)) {
    for (name, make) in FACTORIES {
        let dir = tempfile::tempdir().unwrap();
        let mut s = make(&dir);
        eprintln!("-- {name}");
        test(s.as_mut());
    }
}

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
        user: format!("user{n}").into_bytes(),
        description: format!("txn {n}").into_bytes(),
        extension: Vec::new(),
    }
}

type Rec<'a> = (u64, Option<&'a [u8]>, Option<u64>);

fn commit(s: &mut dyn Storage, n: u64, records: &[Rec<'_>]) {
    s.tpc_begin(meta(n)).unwrap();
    for &(oid, data, data_txn) in records {
        s.restore(o(oid), t(n), data, b"", data_txn.map(t)).unwrap();
    }
    s.tpc_vote().unwrap();
    assert_eq!(s.tpc_finish().unwrap(), t(n));
}

fn all(s: &dyn Storage) -> Vec<TransactionRecord> {
    s.iterator(None, None).collect::<Result<_, _>>().unwrap()
}

/// Size of a transaction in a Data.fs, from the format: header, metadata, records, length.
fn txn_size(m: &TransactionMeta, records: &[Rec<'_>]) -> u64 {
    let mut n = 23 + m.user.len() + m.description.len() + m.extension.len() + 8;
    for (_, data, _) in records {
        n += 42 + data.map_or(8, |d| d.len());
    }
    n as u64
}

#[test]
fn empty_storage() {
    each(|s| {
        assert_eq!(s.last_transaction(), Tid::ZERO);
        assert_eq!(s.len(), 0);
        assert!(s.is_empty());
        // No magic yet: a new storage takes its format with its first transaction.
        assert_eq!(s.size(), 0);
        assert!(matches!(s.load(o(0)), Err(StorageError::NoSuchKey(k)) if k == o(0)));
        assert!(matches!(
            s.load_before(o(0), t(5)),
            Err(StorageError::NoSuchKey(_))
        ));
        assert!(matches!(
            s.load_serial(o(0), t(5)),
            Err(StorageError::NoSuchKey(_))
        ));
        assert!(matches!(
            s.history(o(0), 5),
            Err(StorageError::NoSuchKey(_))
        ));
        assert!(all(s).is_empty());
    });
}

#[test]
fn commit_load_and_iterate() {
    each(|s| {
        commit(s, 10, &[(0, Some(b"root"), None), (1, Some(b"one"), None)]);
        assert_eq!(s.last_transaction(), t(10));
        assert_eq!(s.len(), 2);
        assert_eq!(s.load(o(0)).unwrap(), (b"root".to_vec(), t(10)));
        assert_eq!(s.load(o(1)).unwrap(), (b"one".to_vec(), t(10)));
        assert_eq!(
            s.size(),
            4 + txn_size(
                &meta(10),
                &[(0, Some(b"root"), None), (1, Some(b"one"), None)]
            )
        );
        let txns = all(s);
        assert_eq!(txns.len(), 1);
        assert_eq!(txns[0].meta, meta(10));
        let recs: Vec<_> = txns[0]
            .records
            .iter()
            .map(|r| {
                (
                    r.oid,
                    r.serial,
                    r.data.as_deref().map(<[u8]>::to_vec),
                    r.data_txn,
                )
            })
            .collect();
        assert_eq!(
            recs,
            vec![
                (o(0), t(10), Some(b"root".to_vec()), None),
                (o(1), t(10), Some(b"one".to_vec()), None)
            ]
        );
    });
}

#[test]
fn revisions_load_before_serial_history() {
    each(|s| {
        commit(s, 10, &[(1, Some(b"v1"), None)]);
        commit(s, 20, &[(2, Some(b"other"), None)]);
        commit(s, 30, &[(1, Some(b"v3-longer"), None)]);
        assert_eq!(s.load(o(1)).unwrap(), (b"v3-longer".to_vec(), t(30)));
        assert_eq!(s.load_before(o(1), t(10)).unwrap(), None);
        assert_eq!(
            s.load_before(o(1), t(11)).unwrap(),
            Some((b"v1".to_vec(), t(10), Some(t(30))))
        );
        assert_eq!(
            s.load_before(o(1), t(30)).unwrap(),
            Some((b"v1".to_vec(), t(10), Some(t(30))))
        );
        assert_eq!(
            s.load_before(o(1), t(31)).unwrap(),
            Some((b"v3-longer".to_vec(), t(30), None))
        );
        assert_eq!(s.load_serial(o(1), t(10)).unwrap(), b"v1");
        assert_eq!(s.load_serial(o(1), t(30)).unwrap(), b"v3-longer");
        assert!(matches!(
            s.load_serial(o(1), t(20)),
            Err(StorageError::NoSuchSerial { oid, serial }) if oid == o(1) && serial == t(20)
        ));
        let h = s.history(o(1), 10).unwrap();
        assert_eq!(
            h.iter().map(|e| (e.tid, e.size)).collect::<Vec<_>>(),
            vec![(t(30), 9), (t(10), 2)]
        );
        assert_eq!(h[0].user, b"user30");
        assert_eq!(h[1].description, b"txn 10");
        assert_eq!(s.history(o(1), 1).unwrap().len(), 1);
        assert!(s.history(o(1), 0).unwrap().is_empty());
    });
}

#[test]
fn identical_data_in_data_txn_becomes_a_backpointer() {
    each(|s| {
        commit(s, 10, &[(1, Some(b"original"), None)]);
        commit(s, 20, &[(1, Some(b"changed"), None)]);
        // An undo of txn 20 as a primary sends it: full data plus data_txn.
        let undo: [Rec<'_>; 1] = [(1, Some(b"original"), Some(10))];
        let before = s.size();
        commit(s, 30, &undo);
        assert_eq!(s.size() - before, txn_size(&meta(30), &[(1, None, None)]));
        assert_eq!(s.load(o(1)).unwrap(), (b"original".to_vec(), t(30)));
        let last = all(s).pop().unwrap();
        assert_eq!(last.records[0].data.as_deref(), Some(&b"original"[..]));
        assert_eq!(last.records[0].data_txn, Some(t(10)));
        // A backpointer's history entry has size 0, as ZODB reports it.
        assert_eq!(s.history(o(1), 1).unwrap()[0].size, 0);
        assert_eq!(s.load_serial(o(1), t(30)).unwrap(), b"original");
        // A backpointer to a backpointer: trusted, and data_txn names the one it points to.
        commit(s, 40, &[(1, Some(b"original"), Some(30))]);
        let last = all(s).pop().unwrap();
        assert_eq!(last.records[0].data_txn, Some(t(30)));
        assert_eq!(last.records[0].data.as_deref(), Some(&b"original"[..]));
        assert_eq!(s.load(o(1)).unwrap(), (b"original".to_vec(), t(40)));
    });
}

#[test]
fn different_or_missing_data_txn_writes_the_data() {
    each(|s| {
        commit(
            s,
            10,
            &[(1, Some(b"original"), None), (2, Some(b"two"), None)],
        );
        let before = s.size();
        // Same length, different bytes; other length; no such transaction; oid not in it.
        commit(
            s,
            20,
            &[
                (1, Some(b"ORIGINAL"), Some(10)),
                (2, Some(b"three"), Some(10)),
                (3, Some(b"new"), Some(15)),
            ],
        );
        commit(s, 30, &[(3, Some(b"new"), Some(10))]);
        let expected = txn_size(
            &meta(20),
            &[
                (1, Some(b"ORIGINAL"), None),
                (2, Some(b"three"), None),
                (3, Some(b"new"), None),
            ],
        ) + txn_size(&meta(30), &[(3, Some(b"new"), None)]);
        assert_eq!(s.size() - before, expected);
        for txn in &all(s)[1..] {
            for r in &txn.records {
                assert_eq!(r.data_txn, None, "{r:?}");
            }
        }
        assert_eq!(s.load(o(2)).unwrap().0, b"three");
    });
}

#[test]
fn undone_creation_has_no_data() {
    each(|s| {
        commit(s, 10, &[(5, Some(b"x"), None)]);
        commit(s, 20, &[(5, None, None)]);
        assert_eq!(s.len(), 1);
        assert!(matches!(s.load(o(5)), Err(StorageError::NoSuchKey(_))));
        assert!(matches!(
            s.load_serial(o(5), t(20)),
            Err(StorageError::NoSuchKey(_))
        ));
        assert!(matches!(
            s.load_before(o(5), t(21)),
            Err(StorageError::NoSuchKey(_))
        ));
        assert_eq!(
            s.load_before(o(5), t(20)).unwrap(),
            Some((b"x".to_vec(), t(10), Some(t(20))))
        );
        let last = all(s).pop().unwrap();
        assert_eq!(last.records[0].data, None);
        assert_eq!(last.records[0].data_txn, None);
        // A record pointing at the undone creation: data None, data_txn kept.
        commit(s, 30, &[(5, None, Some(20))]);
        let last = all(s).pop().unwrap();
        assert_eq!(last.records[0].data, None);
        assert_eq!(last.records[0].data_txn, Some(t(20)));
        // No data but the record in data_txn has data: refused, as ZODB fails too.
        s.tpc_begin(meta(40)).unwrap();
        assert!(matches!(
            s.restore(o(5), t(40), None, b"", Some(t(10))),
            Err(StorageError::Transaction(_))
        ));
        s.tpc_abort();
    });
}

#[test]
fn two_records_of_one_object_in_a_transaction() {
    each(|s| {
        commit(
            s,
            10,
            &[(1, Some(b"first"), None), (1, Some(b"second"), None)],
        );
        assert_eq!(s.load(o(1)).unwrap().0, b"second");
        assert_eq!(s.len(), 1);
        assert_eq!(s.history(o(1), 5).unwrap().len(), 1);
        // data_txn resolves to the later record, like ZODB's _data_find.
        commit(s, 20, &[(1, Some(b"second"), Some(10))]);
        assert_eq!(all(s).pop().unwrap().records[0].data_txn, Some(t(10)));
        assert_eq!(all(s)[0].records.len(), 2);
    });
}

#[test]
fn write_errors() {
    each(|s| {
        assert!(matches!(
            s.restore(o(1), t(1), Some(b"x"), b"", None),
            Err(StorageError::Transaction(_))
        ));
        assert!(matches!(s.tpc_vote(), Err(StorageError::Transaction(_))));
        assert!(matches!(s.tpc_finish(), Err(StorageError::Transaction(_))));
        assert!(matches!(
            s.tpc_begin(TransactionMeta {
                tid: Tid::ZERO,
                ..meta(0)
            }),
            Err(StorageError::TidNotIncreasing { .. })
        ));
        commit(s, 10, &[(1, Some(b"x"), None)]);
        for n in [10, 9] {
            match s.tpc_begin(meta(n)) {
                Err(StorageError::TidNotIncreasing { tid, last }) => {
                    assert_eq!((tid, last), (t(n), t(10)))
                }
                other => panic!("{other:?}"),
            }
        }
        s.tpc_begin(meta(11)).unwrap();
        assert!(matches!(
            s.tpc_begin(meta(12)),
            Err(StorageError::Transaction(_))
        ));
        assert!(matches!(
            s.restore(o(1), t(11), Some(b"x"), b"v", None),
            Err(StorageError::Transaction(_))
        ));
        assert!(matches!(
            s.restore(o(1), t(11), Some(b""), b"", None),
            Err(StorageError::Transaction(_))
        ));
        assert!(matches!(s.tpc_finish(), Err(StorageError::Transaction(_))));
        s.restore(o(1), t(11), Some(b"y"), b"", None).unwrap();
        s.tpc_vote().unwrap();
        assert!(matches!(s.tpc_vote(), Err(StorageError::Transaction(_))));
        assert!(matches!(
            s.restore(o(2), t(11), Some(b"z"), b"", None),
            Err(StorageError::Transaction(_))
        ));
        s.tpc_finish().unwrap();
        for bad in [
            TransactionMeta {
                status: b'c',
                ..meta(12)
            },
            TransactionMeta {
                status: b'x',
                ..meta(12)
            },
            TransactionMeta {
                user: vec![b'u'; 65536],
                ..meta(12)
            },
            TransactionMeta {
                description: vec![b'd'; 65536],
                ..meta(12)
            },
            TransactionMeta {
                extension: vec![b'e'; 65536],
                ..meta(12)
            },
        ] {
            assert!(matches!(
                s.tpc_begin(bad),
                Err(StorageError::Transaction(_))
            ));
        }
        // The longest allowed metadata works.
        s.tpc_begin(TransactionMeta {
            user: vec![b'u'; 65535],
            ..meta(12)
        })
        .unwrap();
        s.tpc_abort();
        assert_eq!(s.last_transaction(), t(11));
    });
}

#[test]
fn abort_before_and_after_vote_leaves_nothing() {
    each(|s| {
        commit(s, 10, &[(1, Some(b"x"), None)]);
        let size = s.size();
        s.tpc_begin(meta(20)).unwrap();
        s.restore(o(2), t(20), Some(b"y"), b"", None).unwrap();
        s.tpc_abort();
        s.tpc_begin(meta(20)).unwrap();
        s.restore(o(2), t(20), Some(b"y"), b"", None).unwrap();
        s.tpc_vote().unwrap();
        s.tpc_abort();
        s.tpc_abort(); // nothing in progress: still fine
        assert_eq!(s.size(), size);
        assert_eq!(s.last_transaction(), t(10));
        assert!(matches!(s.load(o(2)), Err(StorageError::NoSuchKey(_))));
        assert_eq!(all(s).len(), 1);
        commit(s, 20, &[(2, Some(b"z"), None)]);
        assert_eq!(s.load(o(2)).unwrap().0, b"z");
        assert_eq!(all(s).len(), 2);
    });
}

#[test]
fn readers_see_committed_transactions_only() {
    each(|s| {
        commit(s, 10, &[(1, Some(b"x"), None)]);
        let reader = s.reader();
        s.tpc_begin(meta(20)).unwrap();
        s.restore(o(2), t(20), Some(b"y"), b"", None).unwrap();
        s.restore(o(1), t(20), Some(b"x2"), b"", None).unwrap();
        s.tpc_vote().unwrap();
        let seen = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    (
                        reader.last_transaction(),
                        reader.load(o(1)).unwrap(),
                        matches!(reader.load(o(2)), Err(StorageError::NoSuchKey(_))),
                        reader.iterator(None, None).count(),
                        reader.size(),
                    )
                })
                .join()
                .unwrap()
        });
        assert_eq!(seen, (t(10), (b"x".to_vec(), t(10)), true, 1, s.size()));
        s.tpc_finish().unwrap();
        assert_eq!(reader.last_transaction(), t(20));
        assert_eq!(reader.load(o(1)).unwrap().0, b"x2");
        assert_eq!(reader.iterator(None, None).count(), 2);
        assert_eq!(reader.name(), s.name());
        // A reader has no write methods (a `ReadStorage`): writing through it does not
        // compile.
    });
}

#[test]
fn iterator_bounds() {
    each(|s| {
        for n in [10, 20, 30, 40] {
            commit(s, n, &[(n, Some(b"d"), None)]);
        }
        let tids = |start: Option<u64>, stop: Option<u64>| -> Vec<u64> {
            s.iterator(start.map(t), stop.map(t))
                .map(|r| r.unwrap().meta.tid.as_u64())
                .collect()
        };
        assert_eq!(tids(None, None), vec![10, 20, 30, 40]);
        assert_eq!(tids(Some(20), None), vec![20, 30, 40]);
        assert_eq!(tids(Some(21), Some(40)), vec![30, 40]);
        assert_eq!(tids(None, Some(29)), vec![10, 20]);
        assert_eq!(tids(Some(41), None), Vec::<u64>::new());
        assert_eq!(tids(Some(30), Some(30)), vec![30]);
    });
}

#[test]
fn packed_status_and_metadata_are_kept() {
    each(|s| {
        let m = TransactionMeta {
            tid: t(10),
            status: b'p',
            user: "üser".as_bytes().to_vec(),
            description: "déscription".as_bytes().to_vec(),
            extension: b"\x80\x03}q\x00X\x01\x00\x00\x00kq\x01K\x01s.".to_vec(),
        };
        s.tpc_begin(m.clone()).unwrap();
        s.restore(o(0), t(10), Some(b"root"), b"", None).unwrap();
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
        assert_eq!(all(s)[0].meta, m);
    });
}

#[test]
fn closed_storage_refuses_everything() {
    each(|s| {
        commit(s, 10, &[(1, Some(b"x"), None)]);
        s.close().unwrap();
        assert!(matches!(s.load(o(1)), Err(StorageError::Closed)));
        assert!(matches!(s.tpc_begin(meta(20)), Err(StorageError::Closed)));
        assert!(matches!(
            s.iterator(None, None).next(),
            Some(Err(StorageError::Closed))
        ));
        s.close().unwrap();
    });
}

/// The times the random workload's `load_before`s ask about.
const LOAD_BEFORE: [u64; 7] = [1, 50_000, 99_999, 100_000, 100_001, 201_000, 250_001];

/// A seeded random replication workload: every storage answers every read as a model of
/// the primary's history says, and all of them end up identical.
#[test]
fn random_workload_agrees_across_storages() {
    let mut results = Vec::new();
    for (name, make) in FACTORIES {
        let dir = tempfile::tempdir().unwrap();
        let mut s = make(&dir);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // What the "primary" holds: per oid, the history of (tid, data).
        let mut history: Vec<Vec<(u64, Option<Vec<u8>>)>> = Vec::new();
        for n in 1..=250u64 {
            let tid = n * 1000;
            s.tpc_begin(TransactionMeta {
                extension: if rng.gen_bool(0.3) {
                    vec![0x80, 3, b'}', b'.']
                } else {
                    vec![]
                },
                ..meta(tid)
            })
            .unwrap();
            let k = rng.gen_range(1..5);
            for _ in 0..k {
                let new = history.is_empty() || rng.gen_bool(0.3);
                let oid = if new {
                    history.push(Vec::new());
                    history.len() - 1
                } else {
                    rng.gen_range(0..history.len())
                };
                let choice = rng.gen_range(0..10);
                let (data, data_txn): (Option<Vec<u8>>, Option<u64>) =
                    if choice < 2 && !history[oid].is_empty() {
                        // Undo-like: an older revision, sent with its data_txn.
                        let (t0, d) = history[oid][rng.gen_range(0..history[oid].len())].clone();
                        (d, Some(t0))
                    } else if choice == 2 && !history[oid].is_empty() {
                        (None, None)
                    } else {
                        let len = rng.gen_range(1..200);
                        (Some((0..len).map(|_| rng.gen()).collect()), None)
                    };
                s.restore(o(oid as u64), t(tid), data.as_deref(), b"", data_txn.map(t))
                    .unwrap();
                history[oid].push((tid, data));
            }
            if rng.gen_bool(0.1) {
                s.tpc_abort();
                for h in history.iter_mut() {
                    h.retain(|(t0, _)| *t0 != tid);
                }
                while history.last().is_some_and(|h| h.is_empty()) {
                    history.pop();
                }
                continue;
            }
            s.tpc_vote().unwrap();
            s.tpc_finish().unwrap();
        }
        // Every read answers as the model says (a load of an object whose newest revision
        // has no data, or of one never committed, is ZODB's POSKeyError: `NoSuchKey`).
        for (oid, revisions) in history.iter().enumerate() {
            // One revision per transaction: a later record of the object in the same
            // transaction replaces an earlier one.
            let mut revisions: Vec<(u64, Option<Vec<u8>>)> = revisions.clone();
            revisions.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    earlier.1 = later.1.take();
                }
                same
            });
            let oid = o(oid as u64);
            let what = format!("{name}: {oid:?}");
            match (s.load(oid), revisions.last()) {
                (Ok(got), Some((tid, Some(data)))) => {
                    assert_eq!(got, (data.clone(), t(*tid)), "{what}: load")
                }
                (Err(StorageError::NoSuchKey(k)), None | Some((_, None))) => assert_eq!(k, oid),
                (got, want) => panic!("{what}: load gave {got:?}, the model {want:?}"),
            }
            let tids: Vec<Tid> = s
                .history(oid, 100)
                .unwrap_or_else(|e| panic!("{what}: history: {e}"))
                .iter()
                .map(|h| h.tid)
                .collect();
            let want: Vec<Tid> = revisions.iter().rev().map(|r| t(r.0)).collect();
            assert_eq!(tids, want, "{what}: history");
            for before in LOAD_BEFORE {
                let at = revisions.iter().rposition(|r| r.0 < before);
                match (s.load_before(oid, t(before)), at) {
                    (Ok(None), None) => {}
                    (Ok(Some(got)), Some(i)) => {
                        let (tid, data) = &revisions[i];
                        let next = revisions.get(i + 1).map(|r| t(r.0));
                        let data = data.clone().unwrap_or_else(|| panic!("{what}: no data"));
                        assert_eq!(got, (data, t(*tid), next), "{what}: load_before {before}");
                    }
                    (Err(StorageError::NoSuchKey(k)), Some(i)) if revisions[i].1.is_none() => {
                        assert_eq!(k, oid)
                    }
                    (got, i) => {
                        panic!("{what}: load_before {before} gave {got:?}, the model {i:?}")
                    }
                }
            }
            for (tid, data) in &revisions {
                match (s.load_serial(oid, t(*tid)), data) {
                    (Ok(got), Some(data)) => assert_eq!(&got, data, "{what}: load_serial {tid}"),
                    (Err(StorageError::NoSuchKey(k)), None) => assert_eq!(k, oid),
                    (got, want) => panic!("{what}: load_serial {tid} gave {got:?}, want {want:?}"),
                }
            }
            assert!(
                matches!(
                    s.load_serial(oid, t(1)),
                    Err(StorageError::NoSuchSerial { .. } | StorageError::NoSuchKey(_))
                ),
                "{what}: load_serial of a tid it never had"
            );
        }
        // And the storages agree with each other, errors included: every read walks older
        // revisions at several times, every serial, ranges of transactions starting and
        // ending anywhere (the file index remembers only every 32nd transaction and walks
        // from there).
        let said = |e: StorageError| e.to_string();
        let loads: Vec<_> = (0..history.len() as u64)
            .map(|oid| {
                (
                    s.load(o(oid)).map_err(said),
                    s.history(o(oid), 100).map_err(said),
                    s.history(o(oid), 2).map_err(said),
                    LOAD_BEFORE.map(|at| s.load_before(o(oid), t(at)).map_err(said)),
                    history[oid as usize]
                        .iter()
                        .map(|(tid, _)| s.load_serial(o(oid), t(*tid)).map_err(said))
                        .collect::<Vec<_>>(),
                    s.load_serial(o(oid), t(1)).map_err(said),
                )
            })
            .collect();
        let ranges: Vec<Vec<Tid>> = [
            (0, 0),
            (1, 31_000),
            (33_000, 34_000),
            (31_999, 200_500),
            (64_500, 300_000),
        ]
        .iter()
        .map(|&(a, b)| {
            let got: Vec<Tid> = s
                .iterator(Some(t(a)), Some(t(b)))
                .map(|r| r.unwrap().meta.tid)
                .collect();
            let committed: Vec<Tid> = all(s.as_ref())
                .iter()
                .map(|r| r.meta.tid)
                .filter(|tid| (t(a)..=t(b)).contains(tid))
                .collect();
            assert_eq!(got, committed, "{name}: iterator {a}..={b}");
            got
        })
        .collect();
        results.push((name, all(s.as_ref()), s.size(), s.len(), (loads, ranges)));
    }
    let (n0, first) = (results[0].0, &results[0]);
    assert!(first.1.len() > 100);
    assert!(first
        .1
        .iter()
        .any(|t| t.records.iter().any(|r| r.data_txn.is_some())));
    assert!(first
        .1
        .iter()
        .any(|t| t.records.iter().any(|r| r.data.is_none())));
    for other in &results[1..] {
        assert_eq!(first.1, other.1, "{n0} vs {}: transactions", other.0);
        assert_eq!(first.2, other.2, "{n0} vs {}: size", other.0);
        assert_eq!(first.3, other.3, "{n0} vs {}: len", other.0);
        assert_eq!(first.4, other.4, "{n0} vs {}: reads", other.0);
    }
}

#[test]
fn memory_crash_drops_unfinished_transaction() {
    let mut s = MemoryStorage::new("sim-1");
    assert_eq!(s.name(), "sim-1");
    commit(&mut s, 10, &[(1, Some(b"x"), None)]);
    s.tpc_begin(meta(20)).unwrap();
    s.restore(o(1), t(20), Some(b"y"), b"", None).unwrap();
    s.tpc_vote().unwrap();
    s.crash();
    assert_eq!(s.last_transaction(), t(10));
    assert_eq!(s.load(o(1)).unwrap().0, b"x");
    assert!(matches!(s.tpc_finish(), Err(StorageError::Transaction(_))));
    commit(&mut s, 20, &[(1, Some(b"z"), None)]);
    assert_eq!(s.load(o(1)).unwrap().0, b"z");
}
