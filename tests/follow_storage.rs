//! A FileStorage opened read-only on a file another writer appends to (what `zrs primary`
//! serves): `refresh` indexes finished transactions only, never one still voting (status
//! `c`) or a torn tail, and a cursor opened before sees what follows.

use std::io::Write;

use zrs::storage::{FileStorage, Options, ReadStorage, Storage, TransactionMeta};
use zrs::{Oid, Tid};

fn meta(n: u64) -> TransactionMeta {
    TransactionMeta {
        tid: Tid::from_u64(n),
        status: b' ',
        user: b"u".to_vec(),
        description: Vec::new(),
        extension: Vec::new(),
    }
}

fn write(s: &mut FileStorage, n: u64) {
    s.tpc_begin(meta(n)).unwrap();
    s.restore(Oid::from_u64(n), Tid::from_u64(n), Some(b"data"), b"", None)
        .unwrap();
    s.tpc_vote().unwrap();
}

#[test]
fn refresh_indexes_finished_transactions_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Data.fs");
    let mut writer = FileStorage::open(&path, Options::default()).unwrap();
    write(&mut writer, 10);
    writer.tpc_finish().unwrap();
    let reader = FileStorage::open(
        &path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(reader.last_transaction(), Tid::from_u64(10));
    let mut cursor = reader.cursor(Tid::from_u64(10));
    assert!(cursor.next().unwrap().is_none());

    // Voted, not finished: in the file with status 'c', not visible.
    write(&mut writer, 20);
    assert_eq!(reader.refresh().unwrap(), 0);
    assert_eq!(reader.last_transaction(), Tid::from_u64(10));
    writer.tpc_finish().unwrap();
    assert_eq!(reader.refresh().unwrap(), 1);
    assert_eq!(reader.last_transaction(), Tid::from_u64(20));
    assert_eq!(cursor.next().unwrap().unwrap().meta.tid, Tid::from_u64(20));
    assert!(reader.has_transaction(Tid::from_u64(20)).unwrap());
    // Its records are indexed: the object it wrote loads.
    assert_eq!(
        reader.load(Oid::from_u64(20)).unwrap(),
        (b"data".to_vec(), Tid::from_u64(20))
    );

    // A torn tail (a write under way) is left for later, without an error.
    writer.close().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&Tid::from_u64(30).0).unwrap();
    f.write_all(&[0, 0, 0]).unwrap();
    drop(f);
    assert_eq!(reader.refresh().unwrap(), 0);
    assert_eq!(reader.size(), size);
    assert!(cursor.next().unwrap().is_none());
}

#[test]
fn a_writable_storage_does_not_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStorage::open(dir.path().join("Data.fs"), Options::default()).unwrap();
    assert!(s.refresh().is_err());
}
