//! A FileStorage on the simulated disk: after any crash — unsynced writes lost, or some
//! kept and the next torn — it reopens as a clean prefix of what was committed, and holds
//! at least every transaction that was synced.

use std::sync::Arc;

use zrs::storage::file::{Durability, FileStorage, Options};
use zrs::storage::ReadStorage;
use zrs::storage::{Storage, TransactionMeta};
use zrs::{Oid, Tid};
use zrs_sim::disk::SimDisk;

fn open(disk: &Arc<SimDisk>, durability: Durability) -> FileStorage {
    FileStorage::open_with_backend(
        "Data.fs",
        Box::new(disk.clone()),
        Options {
            read_only: false,
            durability,
        },
    )
    .unwrap()
}

fn commit(s: &mut FileStorage, n: u64) {
    let tid = Tid::from_u64(0x0300_0000_0000_0000 + n);
    s.tpc_begin(TransactionMeta {
        tid,
        status: b' ',
        user: b"u".to_vec(),
        description: format!("txn {n}").into_bytes(),
        extension: Vec::new(),
    })
    .unwrap();
    let data = vec![n as u8; 100 + n as usize * 37];
    s.restore(Oid::from_u64(n % 3), tid, Some(&data), b"", None)
        .unwrap();
    s.tpc_vote().unwrap();
    s.tpc_finish().unwrap();
}

fn tids(s: &FileStorage) -> Vec<Tid> {
    s.iterator(None, None)
        .map(|t| t.unwrap().meta.tid)
        .collect()
}

#[test]
fn every_crash_leaves_a_clean_prefix() {
    for durability in [Durability::EveryTransaction, Durability::Batch(3)] {
        for keep in 0..6 {
            for tear in [0, 1, 5, 40, 10_000] {
                let disk = SimDisk::new();
                let mut s = open(&disk, durability);
                for n in 1..=5 {
                    commit(&mut s, n);
                }
                let committed = tids(&s);
                // A sixth transaction voted (written) but not finished.
                let tid = Tid::from_u64(0x0300_0000_0000_0006);
                s.tpc_begin(TransactionMeta {
                    tid,
                    status: b' ',
                    user: vec![],
                    description: vec![],
                    extension: vec![],
                })
                .unwrap();
                s.restore(Oid::from_u64(9), tid, Some(b"pending"), b"", None)
                    .unwrap();
                s.tpc_vote().unwrap();
                let synced_before = disk.syncs();
                s.crash();
                let report = disk.crash(keep, tear);
                assert!(report.kept <= report.unsynced);
                let s = open(&disk, durability);
                let after = tids(&s);
                let what = format!("{durability:?} keep={keep} tear={tear}: {after:?}");
                assert!(committed.starts_with(&after), "not a prefix: {what}");
                if durability == Durability::EveryTransaction {
                    assert_eq!(after, committed, "a synced transaction was lost: {what}");
                }
                assert!(synced_before > 0);
                assert_eq!(
                    s.last_transaction(),
                    after.last().copied().unwrap_or(Tid::ZERO)
                );
            }
        }
    }
}

#[test]
fn unsynced_transactions_are_lost_and_synced_ones_kept() {
    let disk = SimDisk::new();
    let mut s = open(&disk, Durability::Batch(2));
    for n in 1..=3 {
        commit(&mut s, n);
    }
    // Two were synced as a batch; the third was not.
    s.crash();
    disk.crash(0, 0);
    let s = open(&disk, Durability::Batch(2));
    assert_eq!(tids(&s).len(), 2);
}
