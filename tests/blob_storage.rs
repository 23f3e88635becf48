//! Blobs: the blob directory (`zrs::storage::blob`) on its own and under a secondary fed
//! `zrs2.1` streams: ZODB's layout and file modes, atomic installs, nothing left by an
//! aborted or crashed transaction, errors mid-blob (cut, bad checksum, full disk), empty
//! blobs and the blob files undo makes. Python ZODB reads what zrs wrote (needs Python).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zrs::pickle::Value;
use zrs::protocol::encoder::StreamEncoder;
use zrs::protocol::{Message, RecordHeader, TransactionHeader, ZRS_2_1};
use zrs::secondary::{Action, Address, Config, LossReason, Secondary};
use zrs::storage::blob::Layout;
use zrs::storage::{
    BlobStorage, CommittedBlob, FileStorage, HistoryEntry, LoadBefore, MemoryStorage, Options,
    ReadStorage, Result, Storage, StorageError, TransactionMeta, TransactionRecord,
};
use zrs::{Oid, Tid};

/// A blob record's data as ZODB 6 writes it: the class pickle, then the state (None).
const BLOB_RECORD: &[u8] = b"\x80\x03cZODB.blob\nBlob\nq\x00.N.";
/// A persistent mapping's record: not a blob.
const MAPPING_RECORD: &[u8] =
    b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s.";

fn tid(n: u64) -> Tid {
    Tid::from_u64(0x03f5_8e00_0000_0000 + n)
}

fn meta(t: Tid) -> TransactionMeta {
    TransactionMeta {
        tid: t,
        status: b' ',
        user: Vec::new(),
        description: Vec::new(),
        extension: Vec::new(),
    }
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

struct Place {
    _temp: tempfile::TempDir,
    data_fs: PathBuf,
    blobs: PathBuf,
}

fn place() -> Place {
    let temp = tempfile::tempdir().unwrap();
    Place {
        data_fs: temp.path().join("Data.fs"),
        blobs: temp.path().join("blobs"),
        _temp: temp,
    }
}

fn open(p: &Place) -> BlobStorage<FileStorage> {
    let fs = FileStorage::open(&p.data_fs, Options::default()).unwrap();
    BlobStorage::open(fs, &p.blobs, true).unwrap()
}

fn blob_of<S: ReadStorage + ?Sized>(s: &S, oid: u64, serial: Tid) -> Option<Vec<u8>> {
    s.open_blob(Oid::from_u64(oid), serial)
        .unwrap()
        .map(|b| b.read_all().unwrap())
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Stores one blob through the storage API: begin, chunks, restore_blob.
fn store_blob<S: Storage>(s: &mut S, oid: u64, serial: Tid, content: &[u8]) {
    s.blob_begin().unwrap();
    for chunk in content.chunks(1000) {
        s.blob_write(chunk).unwrap();
    }
    s.restore_blob(Oid::from_u64(oid), serial, Some(BLOB_RECORD), b"", None)
        .unwrap();
}

#[test]
fn writes_zodb_layout_and_modes() {
    let p = place();
    let mut s = open(&p);
    assert!(s.keeps_blobs());
    assert_eq!(
        fs::read_to_string(p.blobs.join(".layout")).unwrap(),
        "bushy"
    );
    assert!(p.blobs.join("tmp").is_dir());
    let t = tid(1);
    s.tpc_begin(meta(t)).unwrap();
    store_blob(&mut s, 1, t, b"");
    store_blob(&mut s, 2, t, b"x");
    store_blob(&mut s, 0x0102, t, &bytes(70_000, 1));
    s.restore(Oid::from_u64(3), t, Some(MAPPING_RECORD), b"", None)
        .unwrap();
    // Nothing under a final name before the transaction votes.
    assert!(files(&p.blobs).iter().all(|f| !f.ends_with(".blob")));
    s.tpc_vote().unwrap();
    s.tpc_finish().unwrap();
    s.sync().unwrap();
    assert_eq!(
        files(&p.blobs),
        vec![
            ".layout",
            "0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x03f58e0000000001.blob",
            "0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x02/0x03f58e0000000001.blob",
            "0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x02/0x03f58e0000000001.blob",
        ]
    );
    assert_eq!(blob_of(&s, 1, t).unwrap(), b"");
    assert_eq!(blob_of(&s, 2, t).unwrap(), b"x");
    assert_eq!(blob_of(&s, 0x0102, t).unwrap(), bytes(70_000, 1));
    assert_eq!(blob_of(&s, 3, t), None);
    // Readers see the committed blobs too.
    assert_eq!(blob_of(&s.reader(), 2, t).unwrap(), b"x");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = p.blobs.join("0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x02");
        let file = dir.join("0x03f58e0000000001.blob");
        // ZODB's set_not_writable: no write bits, the directory's read bits.
        assert_eq!(mode(&file), (0o600 & !0o222) | (mode(&dir) & 0o444));
    }
    s.close().unwrap();
}

#[test]
fn an_aborted_transaction_leaves_no_file() {
    let p = place();
    let mut s = open(&p);
    // Aborted after its vote installed the files.
    s.tpc_begin(meta(tid(1))).unwrap();
    store_blob(&mut s, 1, tid(1), &bytes(5000, 2));
    s.tpc_vote().unwrap();
    assert!(blob_of(&s, 1, tid(1)).is_some());
    s.tpc_abort();
    assert_eq!(blob_of(&s, 1, tid(1)), None);
    // Aborted mid-blob.
    s.tpc_begin(meta(tid(2))).unwrap();
    s.blob_begin().unwrap();
    s.blob_write(b"half").unwrap();
    s.tpc_abort();
    // Aborted with a complete blob not yet voted.
    s.tpc_begin(meta(tid(3))).unwrap();
    store_blob(&mut s, 1, tid(3), b"never");
    s.tpc_abort();
    s.sync().unwrap();
    assert_eq!(files(&p.blobs), vec![".layout"]);
    assert_eq!(s.last_transaction(), Tid::ZERO);
    s.close().unwrap();
}

#[test]
fn a_crash_between_vote_and_commit_is_undone_on_open() {
    let p = place();
    {
        let mut s = open(&p);
        s.tpc_begin(meta(tid(1))).unwrap();
        store_blob(&mut s, 1, tid(1), b"kept");
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
        s.tpc_begin(meta(tid(2))).unwrap();
        store_blob(&mut s, 1, tid(2), b"lost with its transaction");
        store_blob(&mut s, 2, tid(2), b"this one too");
        s.tpc_vote().unwrap();
        // The process dies here: the blob files are installed, the Data.fs never got
        // the transaction.
        s.crash().crash();
    }
    let s = open(&p);
    assert_eq!(s.last_transaction(), tid(1));
    assert_eq!(blob_of(&s, 1, tid(1)).unwrap(), b"kept");
    assert_eq!(blob_of(&s, 1, tid(2)), None);
    assert_eq!(blob_of(&s, 2, tid(2)), None);
    assert_eq!(
        files(&p.blobs),
        vec![
            ".layout",
            "0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x03f58e0000000001.blob"
        ]
    );
}

#[test]
fn temporary_files_of_a_crash_are_removed_on_open() {
    let p = place();
    {
        let mut s = open(&p);
        s.tpc_begin(meta(tid(1))).unwrap();
        s.blob_begin().unwrap();
        s.blob_write(&bytes(10_000, 3)).unwrap();
        s.crash().crash();
    }
    assert_eq!(fs::read_dir(p.blobs.join("tmp")).unwrap().count(), 1);
    let _s = open(&p);
    assert_eq!(fs::read_dir(p.blobs.join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_lawn_directory_is_used_as_it_is() {
    let p = place();
    fs::create_dir_all(&p.blobs).unwrap();
    fs::write(p.blobs.join(".layout"), "lawn").unwrap();
    let mut s = open(&p);
    assert_eq!(s.blob_dir().layout(), Layout::Lawn);
    s.tpc_begin(meta(tid(1))).unwrap();
    store_blob(&mut s, 0x2a, tid(1), b"lawn");
    s.tpc_vote().unwrap();
    s.tpc_finish().unwrap();
    s.sync().unwrap();
    assert_eq!(
        files(&p.blobs),
        vec![".layout", "0x2a/0x03f58e0000000001.blob"]
    );
    // An unknown layout is an error naming the marker.
    fs::write(p.blobs.join(".layout"), "meadow").unwrap();
    let fs2 = FileStorage::open(p.data_fs.with_extension("2"), Options::default()).unwrap();
    let e = BlobStorage::open(fs2, &p.blobs, true)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("meadow") && e.contains(".layout"), "{e}");
}

#[test]
fn storages_without_a_blob_directory_refuse_blobs() {
    let mut m = MemoryStorage::new("Data.fs");
    assert!(!m.keeps_blobs());
    assert!(matches!(m.blob_begin(), Err(StorageError::NoBlobs)));
    assert_eq!(
        m.open_blob(Oid::from_u64(1), tid(1)).unwrap().map(|_| ()),
        None
    );
    // A blob storage's read handles read its blob files (and cannot write: no such method).
    let p = place();
    let s = open(&p);
    assert!(s.reader().keeps_blobs());
}

// ---- the secondary, fed zrs2.1 streams ----

/// A primary's side of one connection, through the one stream encoder.
struct Stream {
    encoder: StreamEncoder,
    out: Vec<u8>,
}

impl Stream {
    fn new(start: Tid) -> Stream {
        Stream {
            encoder: StreamEncoder::new(start),
            out: Vec::new(),
        }
    }
    fn send(&mut self, payload: &[u8]) {
        self.encoder.message(payload, &mut self.out);
    }
    fn begin(&mut self, t: Tid) {
        let header = TransactionHeader {
            tid: t,
            status: b' ',
            user: Vec::new(),
            description: Vec::new(),
            extension: Value::Dict(vec![]),
        };
        self.encoder.transaction_header(&header, &mut self.out);
    }
    fn record(oid: u64, serial: Tid, data_txn: Option<Tid>) -> RecordHeader {
        RecordHeader {
            oid: Oid::from_u64(oid),
            serial,
            version: Vec::new(),
            data_txn,
        }
    }
    fn store(&mut self, oid: u64, serial: Tid, data: &[u8]) {
        let data = (!data.is_empty()).then_some(data);
        self.encoder
            .store(&Stream::record(oid, serial, None), data, &mut self.out);
    }
    /// A `B` as zc.zrs's primary sends it: 64 KiB blocks.
    fn blob(&mut self, oid: u64, serial: Tid, content: &[u8]) {
        self.encoder
            .blob(
                &Stream::record(oid, serial, None),
                Some(BLOB_RECORD),
                content.len() as u64,
                &mut &content[..],
                &mut self.out,
            )
            .unwrap();
    }
    fn commit(&mut self) {
        self.encoder.commit(&mut self.out);
    }
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

fn secondary<S: Storage>(storage: S) -> Secondary<S> {
    let config = Config {
        address: Some(Address::tcp("", 8000)),
        keep_alive_delay: Duration::ZERO,
        ..Config::default()
    };
    let mut s = Secondary::new(storage, config);
    s.connected("peer");
    while s.poll_action().is_some() {}
    s
}

/// Whether the secondary dropped its connection (an input error).
fn disconnected<S: Storage>(s: &mut Secondary<S>) -> bool {
    std::iter::from_fn(|| s.poll_action()).any(|a| a == Action::Disconnect)
}

#[test]
fn the_secondary_streams_blobs_of_every_size() {
    let p = place();
    let mut sec = secondary(open(&p));
    assert_eq!(sec.protocol(), ZRS_2_1);
    let sizes = [0usize, 1, 65_535, 65_536, 65_537, 3 << 20];
    let mut stream = Stream::new(Tid::ZERO);
    stream.begin(tid(1));
    stream.store(0, tid(1), MAPPING_RECORD);
    for (i, size) in sizes.iter().enumerate() {
        stream.blob(i as u64 + 1, tid(1), &bytes(*size, i as u8));
    }
    stream.commit();
    let wire = stream.take();
    // In pieces of every alignment: chunks cross reads.
    for piece in wire.chunks(10_007) {
        sec.data_received(piece);
    }
    assert!(!disconnected(&mut sec));
    assert_eq!(sec.storage().last_transaction(), tid(1));
    for (i, size) in sizes.iter().enumerate() {
        assert_eq!(
            blob_of(sec.storage(), i as u64 + 1, tid(1)).unwrap(),
            bytes(*size, i as u8),
            "blob of {size} bytes"
        );
    }
    // Better than zc.zrs: the empty blob has its (empty) file.
    assert_eq!(blob_of(sec.storage(), 1, tid(1)).unwrap(), b"");
    // Until the storage syncs, the journal lists what the transaction installed.
    assert!(p.blobs.join("tmp/zrs-journal").exists());
    sec.sync().unwrap();
    assert_eq!(fs::read_dir(p.blobs.join("tmp")).unwrap().count(), 0);
}

/// What an interrupted blob transaction must leave: no record, no file, no temporary.
fn assert_nothing_of(sec: &Secondary<BlobStorage<FileStorage>>, p: &Place, t: Tid) {
    assert!(sec.storage().last_transaction() < t);
    assert!(matches!(
        sec.storage().load(Oid::from_u64(7)),
        Err(StorageError::NoSuchKey(_))
    ));
    assert_eq!(blob_of(sec.storage(), 7, t), None);
    let tmp: Vec<_> = fs::read_dir(p.blobs.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
    assert!(files(&p.blobs).iter().all(|f| !f.ends_with(".blob")));
}

#[test]
fn a_connection_cut_mid_blob_leaves_nothing() {
    let p = place();
    let mut sec = secondary(open(&p));
    let mut stream = Stream::new(Tid::ZERO);
    stream.begin(tid(1));
    stream.blob(7, tid(1), &bytes(200_000, 7));
    stream.commit();
    let wire = stream.take();
    sec.data_received(&wire[..150_000]);
    assert!(sec.in_transaction());
    sec.connection_lost(&LossReason::Lost);
    assert!(!sec.in_transaction());
    assert_nothing_of(&sec, &p, tid(1));
    // Reconnected, the whole transaction arrives again.
    sec.timeout(zrs::secondary::Timer::Connect);
    sec.connected("peer");
    while sec.poll_action().is_some() {}
    sec.data_received(&wire);
    assert_eq!(
        blob_of(sec.storage(), 7, tid(1)).unwrap(),
        bytes(200_000, 7)
    );
}

#[test]
fn a_bad_checksum_after_a_blob_leaves_nothing() {
    let p = place();
    let mut sec = secondary(open(&p));
    let mut stream = Stream::new(Tid::ZERO);
    stream.begin(tid(1));
    stream.blob(7, tid(1), &bytes(100_000, 7));
    // The checksum covers every chunk: one flipped bit in the last one is caught at 'C'.
    let mut corrupt = Stream::new(Tid::ZERO);
    corrupt.begin(tid(1));
    let mut content = bytes(100_000, 7);
    content[99_999] ^= 1;
    corrupt.blob(7, tid(1), &content);
    let digest = stream.encoder.digest();
    corrupt.send(
        &Message::Commit {
            checksum: Some(digest),
        }
        .encode_fast(),
    );
    sec.data_received(&corrupt.take());
    assert!(disconnected(&mut sec));
    assert_nothing_of(&sec, &p, tid(1));
}

/// A disk that fills up: blob writes fail after `room` bytes.
struct FullDisk<S> {
    inner: S,
    room: usize,
}

/// One method of a wrapper that passes the call to `self.inner` unchanged.
macro_rules! forward {
    (fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty) => {
        fn $name(&self $(, $arg: $ty)*) -> $ret {
            self.inner.$name($($arg),*)
        }
    };
    (fn $name:ident<$a:lifetime>(&$b:lifetime self $(, $arg:ident: $ty:ty)*) -> $ret:ty) => {
        fn $name<$a>(&$b self $(, $arg: $ty)*) -> $ret {
            self.inner.$name($($arg),*)
        }
    };
    (fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?) => {
        fn $name(&mut self $(, $arg: $ty)*) $(-> $ret)? {
            self.inner.$name($($arg),*)
        }
    };
}

impl<S: Storage> ReadStorage for FullDisk<S> {
    forward!(fn name(&self) -> &str);
    forward!(fn last_transaction(&self) -> Tid);
    forward!(fn len(&self) -> usize);
    forward!(fn size(&self) -> u64);
    fn keeps_blobs(&self) -> bool {
        true
    }
    forward!(fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)>);
    forward!(fn load_before(&self, oid: Oid, t: Tid) -> Result<Option<LoadBefore>>);
    forward!(fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>>);
    forward!(fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>>);
    forward!(fn iterator<'a>(&'a self, start: Option<Tid>, stop: Option<Tid>) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'a>);
    forward!(fn reader(&self) -> Box<dyn ReadStorage + Send + Sync>);
    forward!(fn open_blob(&self, oid: Oid, serial: Tid) -> Result<Option<CommittedBlob>>);
}

impl<S: Storage> Storage for FullDisk<S> {
    forward!(fn tpc_begin(&mut self, meta: TransactionMeta) -> Result<()>);
    forward!(fn restore(&mut self, oid: Oid, serial: Tid, data: Option<&[u8]>, version: &[u8], data_txn: Option<Tid>) -> Result<()>);
    forward!(fn tpc_vote(&mut self) -> Result<()>);
    forward!(fn tpc_finish(&mut self) -> Result<Tid>);
    forward!(fn tpc_abort(&mut self));
    forward!(fn close(&mut self) -> Result<()>);
    forward!(fn blob_begin(&mut self) -> Result<()>);
    fn blob_write(&mut self, chunk: &[u8]) -> Result<()> {
        if chunk.len() > self.room {
            return Err(StorageError::Io(std::io::Error::other(
                "No space left on device",
            )));
        }
        self.room -= chunk.len();
        self.inner.blob_write(chunk)
    }
    forward!(fn restore_blob(&mut self, oid: Oid, serial: Tid, data: Option<&[u8]>, version: &[u8], data_txn: Option<Tid>) -> Result<()>);
}

#[test]
fn a_full_disk_mid_blob_leaves_nothing() {
    let p = place();
    let mut sec = secondary(FullDisk {
        inner: open(&p),
        room: 100_000,
    });
    let mut stream = Stream::new(Tid::ZERO);
    stream.begin(tid(1));
    stream.blob(7, tid(1), &bytes(300_000, 7));
    stream.commit();
    sec.data_received(&stream.take());
    assert!(disconnected(&mut sec));
    assert!(sec.storage().last_transaction() < tid(1));
    assert_eq!(blob_of(sec.storage(), 7, tid(1)), None);
    assert_eq!(
        fs::read_dir(p.blobs.join("tmp")).unwrap().count(),
        0,
        "the temporary file went with the transaction"
    );
}

#[test]
fn undoing_a_blob_creation_copies_its_file_as_the_primary_did() {
    let p = place();
    let mut sec = secondary(open(&p));
    let mut stream = Stream::new(Tid::ZERO);
    stream.begin(tid(1));
    stream.store(1, tid(1), MAPPING_RECORD);
    stream.blob(7, tid(1), b"created");
    stream.commit();
    // The undo: no data for the blob (backpointer 0), a mapping's creation undone too.
    stream.begin(tid(2));
    stream.store(7, tid(2), b"");
    stream.store(1, tid(2), b"");
    stream.commit();
    sec.data_received(&stream.take());
    assert!(!disconnected(&mut sec));
    assert_eq!(sec.storage().last_transaction(), tid(2));
    assert_eq!(blob_of(sec.storage(), 7, tid(1)).unwrap(), b"created");
    assert_eq!(blob_of(sec.storage(), 7, tid(2)).unwrap(), b"created");
    assert_eq!(blob_of(sec.storage(), 1, tid(2)), None);
}

#[test]
fn a_secondary_without_blobs_refuses_b() {
    let mut sec = secondary(MemoryStorage::new("Data.fs"));
    let mut stream = Stream::new(Tid::ZERO);
    stream.begin(tid(1));
    stream.blob(7, tid(1), b"x");
    sec.data_received(&stream.take());
    assert!(disconnected(&mut sec));
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn python_zodb_reads_every_blob_zrs_wrote() {
    for layout in ["bushy", "lawn"] {
        let p = place();
        if layout == "lawn" {
            fs::create_dir_all(&p.blobs).unwrap();
            fs::write(p.blobs.join(".layout"), "lawn").unwrap();
        }
        let mut s = open(&p);
        let sizes = [0usize, 1, 65_536, 65_537, 1 << 20];
        for (i, size) in sizes.iter().enumerate() {
            let t = tid(i as u64 + 1);
            s.tpc_begin(meta(t)).unwrap();
            store_blob(&mut s, 1 + (i as u64 % 2), t, &bytes(*size, i as u8));
            s.tpc_vote().unwrap();
            s.tpc_finish().unwrap();
        }
        s.close().unwrap();
        let out = common::run_python("check_blobs.py", &[&p.data_fs, &p.blobs]);
        assert!(out.contains("blobs 5 readable 5 missing 0\n"), "{out}");
        let md5 = |b: &[u8]| {
            use md5::{Digest, Md5};
            Md5::digest(b)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        };
        for (i, size) in sizes.iter().enumerate() {
            let line = format!(
                "0x{:02x} 0x03f58e00000000{:02x} {}",
                1 + (i % 2),
                i + 1,
                md5(&bytes(*size, i as u8))
            );
            assert!(out.contains(&line), "{layout}: no {line:?} in\n{out}");
        }
    }
}

// ---- the primary core with blobs, replayed into a secondary ----

mod primary {
    use super::*;
    use zrs::primary::{Action as PAction, Config as PConfig, ConnectionId, Primary, Sealing};
    use zrs::protocol::handshake::hello;
    use zrs::protocol::{Sealer, ZRS_2_0};

    const C: ConnectionId = ConnectionId(1);

    /// A primary storage with blobs of every awkward size, one changed, and an undone
    /// creation (the undo's copy made as ZODB's `BlobStorage.undo` makes it).
    fn primary_storage(p: &Place) -> BlobStorage<FileStorage> {
        let mut s = open(p);
        let sizes = [0usize, 1, 65_536, 65_537, 1 << 20];
        for (i, size) in sizes.iter().enumerate() {
            let t = tid(i as u64 + 1);
            s.tpc_begin(meta(t)).unwrap();
            s.restore(Oid::from_u64(0), t, Some(MAPPING_RECORD), b"", None)
                .unwrap();
            store_blob(&mut s, 1 + i as u64 % 3, t, &bytes(*size, i as u8));
            s.tpc_vote().unwrap();
            s.tpc_finish().unwrap();
        }
        // An undo leaving oid 2 without data (its last blob was stored at tid 5, as
        // 1 + 4 % 3): the primary's undo copied that blob file to the undo's tid.
        let t = tid(9);
        s.tpc_begin(meta(t)).unwrap();
        store_blob(&mut s, 7, t, b"seven");
        s.restore(Oid::from_u64(2), t, None, b"", None).unwrap();
        s.copy_blob(Oid::from_u64(2), tid(5), t).unwrap();
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
        s.sync().unwrap();
        s
    }

    /// What the primary transmitted (windows sealed as the driver seals them, with the
    /// connection's `sealer`), and whether it disconnected.
    fn drain(
        p: &mut Primary<Box<dyn ReadStorage + Send + Sync>>,
        sealer: &mut Option<Sealer>,
    ) -> (Vec<Vec<u8>>, bool) {
        let (mut sent, mut closed) = (Vec::new(), false);
        while let Some(a) = p.poll_action() {
            match a {
                PAction::Transmit(_, bytes) => sent.push(bytes),
                PAction::TransmitUnsealed(_, window) => {
                    if let Some(start) = window.start() {
                        *sealer = Some(Sealer::new(start));
                    }
                    sent.push(sealer.as_mut().expect("first window").seal(window).to_vec());
                }
                PAction::Disconnect(_) => closed = true,
                PAction::StopListening => {}
            }
        }
        (sent, closed)
    }

    #[test]
    fn streams_blobs_a_window_at_a_time_into_an_identical_replica() {
        let mut streams = Vec::new();
        for sealing in [Sealing::InCore, Sealing::ByHost] {
            streams.push(stream_blobs(sealing));
        }
        assert_eq!(
            streams[0], streams[1],
            "sealing in the host changes no byte"
        );
    }

    /// Streams the blob database to a secondary; checks the replica; returns the stream.
    fn stream_blobs(sealing: Sealing) -> Vec<u8> {
        let (pp, sp) = (place(), place());
        let storage = primary_storage(&pp);
        let mut config = PConfig::new(Address::tcp("", 8000));
        config.send_window = 10_000;
        config.sealing = sealing;
        let mut primary = Primary::new(storage.reader(), config);
        let mut secondary = secondary(open(&sp));
        primary.connected(C, "peer");
        for message in hello(ZRS_2_1, Tid::ZERO) {
            primary.data_received(C, &message);
        }
        let mut largest = 0;
        let mut sealer = None;
        let mut stream = Vec::new();
        loop {
            let (sent, closed) = drain(&mut primary, &mut sealer);
            assert!(!closed);
            if sent.is_empty() {
                break;
            }
            for bytes in sent {
                largest = largest.max(bytes.len());
                secondary.data_received(&bytes);
                stream.extend_from_slice(&bytes);
            }
            primary.writable(C);
        }
        assert!(!disconnected(&mut secondary));
        // One window and one block at most, whatever the blob's size (1 MiB here).
        assert!(largest < 10_000 + (1 << 16) + 100, "{largest}");
        secondary.sync().unwrap();
        assert_eq!(secondary.storage().last_transaction(), tid(9));
        assert_eq!(
            fs::read(&pp.data_fs).unwrap(),
            fs::read(&sp.data_fs).unwrap()
        );
        let (want, got) = (files(&pp.blobs), files(&sp.blobs));
        assert_eq!(got, want);
        assert_eq!(want.len(), 1 + 5 + 2, "{want:?}");
        for f in &want {
            assert_eq!(
                fs::read(pp.blobs.join(f)).unwrap(),
                fs::read(sp.blobs.join(f)).unwrap(),
                "{f}"
            );
        }
        stream
    }

    #[test]
    fn a_primary_with_blobs_refuses_zrs2_0_as_zc_zrs_does() {
        let pp = place();
        let storage = primary_storage(&pp);
        let mut primary = Primary::new(storage.reader(), PConfig::new(Address::tcp("", 8000)));
        let log = zrs_logs(|| {
            primary.connected(C, "peer");
            primary.data_received(C, &hello(ZRS_2_0, Tid::ZERO)[0]);
        });
        assert!(drain(&mut primary, &mut None).1, "disconnected");
        assert!(
            log.contains("ERROR zc.zrs.primary: peer: Invalid protocol b'zrs2.0'. Require >= 2.1"),
            "{log}"
        );
    }

    /// Log lines (`LEVEL target: message`) written while `f` runs.
    fn zrs_logs(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .without_time()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text
    }
}
