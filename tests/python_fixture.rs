//! A Data.fs written by Python ZODB, committed with Python's own reading of it
//! (`tests/fixtures/storage/`): Rust must read it identically and rewrite it byte for
//! byte through the replication write path. Needs no Python.

mod common;

use std::sync::Arc;

use zrs::storage::file::backend::MemoryBackend;
use zrs::storage::ReadStorage;
use zrs::storage::{copy_transactions, FileStorage, MemoryStorage, Options};

fn fixture() -> std::path::PathBuf {
    common::root().join("tests/fixtures/storage/small.fs")
}

fn source() -> FileStorage {
    FileStorage::open(
        fixture(),
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn reads_python_fixture_as_python_does() {
    let python =
        std::fs::read_to_string(common::root().join("tests/fixtures/storage/small.dump.txt"))
            .unwrap();
    let s = source();
    common::assert_same_dump(&python, &common::dump(&s));
    let txns: Vec<_> = s.iterator(None, None).map(Result::unwrap).collect();
    assert!(txns.iter().any(|t| t.meta.status == b'p'));
    assert!(txns
        .iter()
        .flat_map(|t| &t.records)
        .any(|r| r.data_txn.is_some()));
}

#[test]
fn copy_of_python_fixture_is_byte_identical() {
    let want = std::fs::read(fixture()).unwrap();
    let disk = Arc::new(MemoryBackend::new());
    let mut dst =
        FileStorage::open_with_backend("copy.fs", Box::new(disk.clone()), Options::default())
            .unwrap();
    let stats = copy_transactions(&source(), &mut dst).unwrap();
    assert_eq!(
        stats.transactions as usize,
        source().iterator(None, None).count()
    );
    assert!(
        disk.contents() == want,
        "copy differs from the Python-written file"
    );
    // Copying into memory keeps the same transactions and the same size.
    let mut mem = MemoryStorage::new("mem");
    copy_transactions(&source(), &mut mem).unwrap();
    assert_eq!(mem.size(), want.len() as u64);
    assert_eq!(common::dump(&mem), common::dump(&source()));
    // A copy into a storage that already has everything adds nothing.
    assert_eq!(
        copy_transactions(&source(), &mut dst).unwrap().transactions,
        0
    );
}
