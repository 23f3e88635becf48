//! A seeded campaign with blobs: the real primary core serves a blob storage to the real
//! secondary core, bytes moved in random pieces, connections cut and secondaries closed and
//! reopened at random points (mid-blob included), with oracles after every step:
//!
//! - the secondary's transactions are a prefix of the primary's, record for record;
//! - every blob file the secondary holds is the primary's file, byte for byte, and it holds
//!   one for every committed record the primary has one for (empty blobs and undo copies
//!   included); none for transactions it does not hold, and no temporary file once idle;
//! - after the faults stop, it catches up: Data.fs and blob directory identical.
//!
//! Blob sizes: empty, 1 byte, 64 KiB - 1, exactly 64 KiB, 64 KiB + 1, random up to 200 KB,
//! and now and then 3 MB. Every random choice comes from ChaCha8 seeded per run.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::primary::{Action as PAction, Config as PConfig, ConnectionId, Primary};
use zrs::secondary::{Action, Address, Config, LossReason, Secondary, Timer};
use zrs::storage::{
    BlobStorage, Durability, FileStorage, MemoryStorage, Options, ReadStorage, Storage,
    TransactionMeta,
};
use zrs::{Oid, Tid};

const BLOB_RECORD: &[u8] = b"\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.";
const ROOT_RECORD: &[u8] = b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.}q\x01.";

fn tid(n: u64) -> Tid {
    Tid::from_u64(0x03f5_8e00_0000_0000 + n * 0x1000)
}

fn blob_size(rng: &mut ChaCha8Rng) -> usize {
    match rng.gen_range(0..10) {
        0 => 0,
        1 => 1,
        2 => 65_535,
        3 => 65_536,
        4 => 65_537,
        5 if rng.gen_ratio(1, 4) => 3_000_000,
        _ => rng.gen_range(2..200_000),
    }
}

/// The primary's database: `n` transactions of blobs (new, changed, undone).
fn primary_storage(dir: &Path, rng: &mut ChaCha8Rng, n: u64) -> BlobStorage<MemoryStorage> {
    let mut s = BlobStorage::open(MemoryStorage::new("Data.fs"), dir, false).unwrap();
    let mut blobs: Vec<u64> = Vec::new();
    for i in 1..=n {
        let t = tid(i);
        s.tpc_begin(TransactionMeta {
            tid: t,
            status: b' ',
            user: Vec::new(),
            description: Vec::new(),
            extension: Vec::new(),
        })
        .unwrap();
        s.restore(Oid::ZERO, t, Some(ROOT_RECORD), b"", None)
            .unwrap();
        // Each object at most once per transaction; undo only what is committed.
        let mut touched: Vec<u64> = Vec::new();
        for _ in 0..rng.gen_range(0..3) {
            let committed: Vec<u64> = blobs
                .iter()
                .copied()
                .filter(|o| !touched.contains(o))
                .collect();
            let undo = !committed.is_empty() && rng.gen_ratio(1, 6);
            if undo {
                // An undo leaving the object without data: the primary's BlobStorage copies
                // its current blob file to the undo's tid.
                let oid = committed[rng.gen_range(0..committed.len())];
                blobs.retain(|o| *o != oid);
                touched.push(oid);
                let (_, serial) = s.load(Oid::from_u64(oid)).unwrap();
                s.restore(Oid::from_u64(oid), t, None, b"", None).unwrap();
                s.copy_blob(Oid::from_u64(oid), serial, t).unwrap();
                continue;
            }
            let oid = if !committed.is_empty() && rng.gen_bool(0.3) {
                committed[rng.gen_range(0..committed.len())]
            } else {
                let oid = 1 + i * 8 + touched.len() as u64;
                blobs.push(oid);
                oid
            };
            touched.push(oid);
            let mut content = vec![0u8; blob_size(rng)];
            rng.fill(&mut content[..]);
            s.blob_begin().unwrap();
            for chunk in content.chunks(100_000) {
                s.blob_write(chunk).unwrap();
            }
            s.restore_blob(Oid::from_u64(oid), t, Some(BLOB_RECORD), b"", None)
                .unwrap();
        }
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
    }
    s
}

fn open_secondary(place: &Path) -> Secondary<BlobStorage<FileStorage>> {
    let options = Options {
        read_only: false,
        durability: Durability::Batch(50),
    };
    let fs = FileStorage::open(place.join("Data.fs"), options).unwrap();
    let storage = BlobStorage::open(fs, &place.join("blobs"), false).unwrap();
    let config = Config {
        address: Some(Address::tcp("", 8000)),
        keep_alive_delay: Duration::ZERO,
        reconnect_delay: Duration::from_secs(1),
        ..Config::default()
    };
    Secondary::new(storage, config)
}

/// The oracles: a prefix, record for record; blob files equal, present where the primary
/// has them, absent beyond the last transaction held.
fn check(primary: &dyn ReadStorage, secondary: &dyn ReadStorage, idle: bool, blobs: &Path) {
    let held: Vec<_> = secondary.iterator(None, None).map(|t| t.unwrap()).collect();
    let want: Vec<_> = primary
        .iterator(None, None)
        .take(held.len())
        .map(|t| t.unwrap())
        .collect();
    assert_eq!(held, want, "the secondary is not a prefix of the primary");
    for txn in &held {
        for r in &txn.records {
            let a = primary.open_blob(r.oid, r.serial).unwrap();
            let b = secondary.open_blob(r.oid, r.serial).unwrap();
            match (a, b) {
                (None, None) => {}
                (Some(a), Some(b)) => assert!(
                    a.read_all().unwrap() == b.read_all().unwrap(),
                    "blob {:?} at {:?} differs",
                    r.oid,
                    r.serial
                ),
                (a, b) => panic!(
                    "blob {:?} at {:?}: primary has {}, secondary {}",
                    r.oid,
                    r.serial,
                    a.is_some(),
                    b.is_some()
                ),
            }
        }
    }
    // Nothing of the transactions not held (a cut or a close mid-blob leaves no file).
    let last = secondary.last_transaction();
    for txn in primary.iterator(None, None).map(|t| t.unwrap()) {
        if txn.meta.tid > last {
            for r in &txn.records {
                assert!(
                    secondary.open_blob(r.oid, r.serial).unwrap().is_none(),
                    "a blob file of {:?}, a transaction the secondary does not hold",
                    txn.meta.tid
                );
            }
        }
    }
    if idle {
        let temps = fs::read_dir(blobs.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .count();
        assert_eq!(temps, 0, "temporary blob files left while idle");
    }
}

/// What one run did: faults, faults that hit a transaction in progress, blob files held.
fn run(seed: u64) -> (usize, usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let temp = tempfile::tempdir().unwrap();
    let primary_storage = primary_storage(&temp.path().join("primary"), &mut rng, 12);
    let place: PathBuf = temp.path().join("secondary");
    fs::create_dir_all(&place).unwrap();
    let mut config = PConfig::new(Address::tcp("", 8000));
    config.send_window = rng.gen_range(1_000..300_000);
    let mut primary = Primary::new(primary_storage.reader(), config);
    let mut secondary = open_secondary(&place);
    let mut next_id = 0u64;
    let mut connection: Option<ConnectionId> = None;
    let mut pending: Vec<u8> = Vec::new();
    let faults = rng.gen_range(0..8);
    let mut faults_done = 0;
    let mut mid_transaction = 0;
    for step in 0..4_000 {
        // The secondary's actions: connect, handshake bytes to the primary.
        while let Some(action) = secondary.poll_action() {
            match action {
                Action::Connect(_) => {
                    next_id += 1;
                    let id = ConnectionId(next_id);
                    primary.connected(id, "peer");
                    connection = Some(id);
                    pending.clear();
                    secondary.connected("peer");
                }
                Action::Transmit(bytes) => {
                    if let Some(id) = connection {
                        primary.data_received(id, &bytes);
                    }
                }
                Action::Disconnect => {
                    if let Some(id) = connection.take() {
                        primary.connection_lost(id, &LossReason::Done);
                    }
                }
                Action::SetTimer {
                    timer: Timer::Connect,
                    ..
                } => secondary.timeout(Timer::Connect),
                _ => {}
            }
        }
        while let Some(action) = primary.poll_action() {
            if let PAction::Transmit(_, bytes) = action {
                pending.extend_from_slice(&bytes);
            }
        }
        if pending.is_empty() {
            if let Some(id) = connection {
                primary.writable(id);
                while let Some(action) = primary.poll_action() {
                    if let PAction::Transmit(_, bytes) = action {
                        pending.extend_from_slice(&bytes);
                    }
                }
            }
        }
        let caught_up = pending.is_empty()
            && secondary.storage().last_transaction() == primary_storage.last_transaction();
        if caught_up && faults_done >= faults {
            break;
        }
        // A fault, now and then, until the run's share is used.
        if faults_done < faults && connection.is_some() && rng.gen_ratio(1, 15) {
            faults_done += 1;
            if secondary.in_transaction() {
                mid_transaction += 1;
            }
            let id = connection.take().unwrap();
            pending.clear();
            if rng.gen_bool(0.5) {
                // The connection is cut.
                secondary.connection_lost(&LossReason::Lost);
                primary.connection_lost(id, &LossReason::Lost);
            } else {
                // The secondary is closed and opened again (mid-blob, maybe).
                secondary.close().unwrap();
                primary.connection_lost(id, &LossReason::Done);
                drop(secondary);
                secondary = open_secondary(&place);
            }
            check(
                &primary_storage,
                secondary.storage(),
                true,
                &place.join("blobs"),
            );
            continue;
        }
        if !pending.is_empty() {
            let n = rng.gen_range(1..=pending.len().min(150_000));
            let piece: Vec<u8> = pending.drain(..n).collect();
            secondary.data_received(&piece);
        }
        if step % 7 == 0 {
            check(
                &primary_storage,
                secondary.storage(),
                false,
                &place.join("blobs"),
            );
        }
    }
    // Healed: everything, identical.
    secondary.sync().unwrap();
    assert_eq!(
        secondary.storage().last_transaction(),
        primary_storage.last_transaction(),
        "seed {seed}: the secondary did not catch up"
    );
    check(
        &primary_storage,
        secondary.storage(),
        true,
        &place.join("blobs"),
    );
    let files = walk(&place.join("blobs"));
    secondary.close().unwrap();
    (faults_done, mid_transaction, files)
}

fn walk(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                walk(&p)
            } else {
                usize::from(p.extension().is_some_and(|e| e == "blob"))
            }
        })
        .sum()
}

#[test]
fn seeded_blob_campaign() {
    // About ten seconds in a debug build; each seed is one run.
    let (mut faults, mut mid, mut files) = (0, 0, 0);
    for seed in 0..12 {
        let (f, m, b) = run(20261130 + seed);
        faults += f;
        mid += m;
        files += b;
    }
    // The campaign does what it claims: faults, some inside a transaction, many blobs.
    assert!(
        faults > 10 && mid > 3 && files > 100,
        "{faults} {mid} {files}"
    );
    println!("{faults} faults, {mid} inside a transaction, {files} blob files replicated");
}
