//! The network driver (`zrs::net::Driver`) on real loopback sockets against a scripted
//! primary written here: handshake, replication, reconnects from the last transaction,
//! keep-alives, input errors, Unix-domain sockets, stopping. (The real Python primary is in
//! `interop_secondary.rs`.) Every wait is bounded.

mod common;
use common::{read_message, CountingBackend};

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use zrs::net::{Driver, DriverError, DriverOptions, StopHandle};
use zrs::pickle::Value;
use zrs::protocol::framing::frame;
use zrs::protocol::handshake::{HandshakeReader, Received};
use zrs::protocol::message::{Message, RecordHeader, TransactionHeader};
use zrs::protocol::{StreamEncoder, ZRS_2_0};
use zrs::secondary::{Address, Config, Secondary};
use zrs::storage::ReadStorage;
use zrs::storage::{Durability, FileStorage, MemoryStorage, Options, Storage};
use zrs::{Oid, Tid};

const PATIENCE: Duration = Duration::from_secs(10);

/// Log lines of one driver thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A driver running on its own thread; stopped (and joined) when dropped.
struct Running<S: Storage> {
    stop: StopHandle,
    thread: Option<JoinHandle<Result<Secondary<S>, DriverError>>>,
    storage: Box<dyn ReadStorage + Send + Sync>,
    logs: Logs,
}

impl Running<MemoryStorage> {
    fn start(address: Address, tweak: impl FnOnce(&mut Config)) -> Running<MemoryStorage> {
        Running::start_on(MemoryStorage::new("Data.fs"), address, tweak)
    }
}

impl<S: Storage + Send + 'static> Running<S> {
    fn start_on(storage: S, address: Address, tweak: impl FnOnce(&mut Config)) -> Running<S> {
        let mut config = Config {
            address: Some(address),
            reconnect_delay: Duration::from_millis(50),
            ..Config::default()
        };
        tweak(&mut config);
        let logs = Logs::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_logs = logs.clone();
        let thread = thread::spawn(move || {
            let writer = thread_logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .without_time()
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                let secondary = Secondary::new(storage, config);
                let storage = secondary.storage().reader();
                let driver = Driver::new(secondary, DriverOptions::default());
                tx.send((driver.stop_handle(), storage)).unwrap();
                driver.run()
            })
        });
        let (stop, storage) = rx.recv_timeout(PATIENCE).expect("driver started");
        Running {
            stop,
            thread: Some(thread),
            storage,
            logs,
        }
    }

    fn last(&self) -> Tid {
        self.storage.last_transaction()
    }

    fn wait_for_last(&self, tid: Tid) {
        wait_until("the transaction arrives", || self.last() == tid);
    }

    /// Stops the driver; returns the closed secondary.
    fn stop(mut self) -> Secondary<S> {
        self.stop.stop();
        let thread = self.thread.take().unwrap();
        let deadline = Instant::now() + PATIENCE;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the driver did not stop");
            thread::sleep(Duration::from_millis(5));
        }
        thread.join().unwrap().expect("clean stop")
    }
}

impl<S: Storage> Drop for Running<S> {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(PATIENCE)).unwrap();
                return s;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection attempt");
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Reads the handshake as a primary does; returns the start tid.
fn handshake(s: &mut impl Read) -> Tid {
    let mut reader = HandshakeReader::new(false);
    assert_eq!(
        reader.receive(&read_message(s)),
        Ok(Received::Protocol(ZRS_2_0))
    );
    match reader.receive(&read_message(s)) {
        Ok(Received::Start(tid)) => tid,
        other => panic!("expected the start tid, got {other:?}"),
    }
}

/// The bytes of one whole transaction (one record), as the primary's encoder sends it.
fn transaction(encoder: &mut StreamEncoder, tid: Tid, oid: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let header = TransactionHeader {
        tid,
        status: b' ',
        user: b"u".to_vec(),
        description: b"d".to_vec(),
        extension: Value::Dict(vec![]),
    };
    encoder.transaction_header(&header, &mut out);
    let record = RecordHeader {
        oid: Oid::from_u64(oid),
        serial: tid,
        version: vec![],
        data_txn: None,
    };
    encoder.store(&record, Some(data), &mut out);
    encoder.commit(&mut out);
    out
}

fn tid(n: u64) -> Tid {
    Tid::from_u64(0x03c0_0000_0000_0000 + n)
}

/// Reads until the peer closes (EOF or reset); panics if it does not within PATIENCE.
fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected the secondary to close the connection: {e}"),
        }
    }
}

fn tcp_address(listener: &TcpListener) -> (Address, u16) {
    let port = listener.local_addr().unwrap().port();
    (Address::tcp("127.0.0.1", port), port)
}

#[test]
fn replicates_and_reconnects_from_its_last_transaction() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (address, port) = tcp_address(&listener);
    let running = Running::start(address, |_| {});

    let mut conn = accept(&listener);
    assert_eq!(handshake(&mut conn), Tid::ZERO);
    let mut encoder = StreamEncoder::new(Tid::ZERO);
    for n in 1..=3 {
        conn.write_all(&transaction(&mut encoder, tid(n), n, b"state"))
            .unwrap();
    }
    running.wait_for_last(tid(3));
    drop(conn); // the primary goes away cleanly

    // Reconnects (after 50 ms) and asks for what follows its last transaction.
    let mut conn = accept(&listener);
    assert_eq!(handshake(&mut conn), tid(3));
    let mut encoder = StreamEncoder::new(tid(3));
    conn.write_all(&transaction(&mut encoder, tid(4), 1, b"new state"))
        .unwrap();
    running.wait_for_last(tid(4));
    assert_eq!(
        running.storage.load(Oid::from_u64(1)).unwrap(),
        (b"new state".to_vec(), tid(4))
    );

    let logs = running.logs.clone();
    let secondary = running.stop();
    assert!(secondary.is_closed());
    expect_closed(&mut conn);
    let text = logs.text();
    let peer = format!("IPv4Address(TCP, '127.0.0.1', {port})");
    assert_eq!(
        text.matches(&format!("{peer}: Connected")).count(),
        2,
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{peer}: Disconnected <twisted.python.failure.Failure <class 'twisted.internet.error.ConnectionDone'>>"
        )),
        "{text}"
    );
    assert!(text.contains("Closing Data.fs ('127.0.0.1', "), "{text}");
}

#[test]
fn keep_alives_are_empty_messages() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (address, _) = tcp_address(&listener);
    let started = Instant::now();
    let running = Running::start(address, |c| c.keep_alive_delay = Duration::from_millis(20));
    let mut conn = accept(&listener);
    handshake(&mut conn);
    assert_eq!(read_message(&mut conn), b"");
    assert_eq!(read_message(&mut conn), b"");
    // One delay after connecting, then one more: timers never fire early.
    assert!(started.elapsed() >= Duration::from_millis(40));
    running.stop();
}

/// A secondary (on a MemoryStorage) started against a fresh listener, its first
/// connection accepted and the handshake (from zero) read: the listener, the secondary
/// and that connection.
fn connected_from_zero() -> (TcpListener, Running<MemoryStorage>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (address, _) = tcp_address(&listener);
    let running = Running::start(address, |_| {});
    let mut conn = accept(&listener);
    handshake(&mut conn);
    (listener, running, conn)
}

/// After bad input on `conn`: the secondary closes it, connects again asking for the
/// transactions after `last` (`why`: what that says), has committed up to `last`, and
/// has logged `logged`.
fn assert_closed_and_reconnects_from(
    mut conn: TcpStream,
    listener: &TcpListener,
    running: Running<MemoryStorage>,
    (last, why): (Tid, &str),
    logged: &str,
) {
    expect_closed(&mut conn);

    let mut conn = accept(listener);
    assert_eq!(handshake(&mut conn), last, "{why}");
    assert_eq!(running.last(), last);
    let logs = running.logs.clone();
    running.stop();
    assert!(logs.text().contains(logged), "{}", logs.text());
}

#[test]
fn bad_input_aborts_disconnects_and_reconnects() {
    let (listener, running, mut conn) = connected_from_zero();
    // A transaction begun, then garbage where a message is due.
    let mut encoder = StreamEncoder::new(Tid::ZERO);
    let whole = transaction(&mut encoder, tid(1), 1, b"state");
    let t_len = 4 + u32::from_be_bytes(whole[..4].try_into().unwrap()) as usize;
    conn.write_all(&whole[..t_len]).unwrap();
    conn.write_all(&frame(b"not a pickle")).unwrap();
    assert_closed_and_reconnects_from(
        conn,
        &listener,
        running,
        (Tid::ZERO, "nothing was committed"),
        "Input data error",
    );
}

#[test]
fn a_bad_checksum_commits_nothing_of_its_transaction_and_reconnects() {
    // The driver hashes on its reader thread: the check at `C` must still stop the
    // transaction it ends, and only that one.
    let (listener, running, mut conn) = connected_from_zero();
    let mut encoder = StreamEncoder::new(Tid::ZERO);
    let mut bytes = transaction(&mut encoder, tid(1), 1, b"state");
    // The second transaction up to its `C`, then a `C` whose digest has one bit flipped.
    let header = TransactionHeader {
        tid: tid(2),
        status: b' ',
        user: b"u".to_vec(),
        description: b"d".to_vec(),
        extension: Value::Dict(vec![]),
    };
    let mut second = Vec::new();
    encoder.transaction_header(&header, &mut second);
    let record = RecordHeader {
        oid: Oid::from_u64(2),
        serial: tid(2),
        version: vec![],
        data_txn: None,
    };
    encoder.store(&record, Some(b"other state"), &mut second);
    let mut wrong = encoder.digest();
    wrong[15] ^= 1;
    let commit = Message::Commit {
        checksum: Some(wrong),
    };
    encoder.message(&commit.encode_fast(), &mut second);
    bytes.extend_from_slice(&second);
    conn.write_all(&bytes).unwrap();
    assert_closed_and_reconnects_from(
        conn,
        &listener,
        running,
        (tid(1), "the first transaction is committed"),
        "bad checksum",
    );
}

#[test]
fn retries_a_refused_connection() {
    // A port nobody listens on (yet).
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let running = Running::start(Address::tcp("127.0.0.1", port), |_| {});
    // Refused once: its factory stopped, it has started again (the retry, 50 ms on).
    wait_until("a refused attempt and a retry", || {
        running.logs.text().matches("Starting factory").count() >= 2
    });
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut conn = accept(&listener);
    assert_eq!(handshake(&mut conn), Tid::ZERO);
    let logs = running.logs.clone();
    running.stop();
    let text = logs.text();
    assert!(
        text.matches("Starting factory").count() >= 2,
        "refused at least once, then connected:\n{text}"
    );
}

#[test]
fn stops_promptly_while_waiting_to_reconnect() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let running = Running::start(Address::tcp("127.0.0.1", port), |c| {
        c.reconnect_delay = Duration::from_secs(3600)
    });
    // Refused: now waiting an hour to reconnect.
    wait_until("the refused attempt", || {
        running.logs.text().contains("Stopping factory")
    });
    // `stop` allows PATIENCE, far less than the hour the reconnect would take.
    let secondary = running.stop();
    assert!(secondary.is_closed());
}

#[test]
fn replicates_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("primary.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let path = path.to_str().unwrap().to_string();
    let running = Running::start(Address::Unix(path.clone()), |_| {});
    let (tx, rx) = std::sync::mpsc::channel::<UnixStream>();
    thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            let _ = tx.send(s);
        }
    });
    let mut conn = rx.recv_timeout(PATIENCE).expect("a connection");
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(handshake(&mut conn), Tid::ZERO);
    let mut encoder = StreamEncoder::new(Tid::ZERO);
    conn.write_all(&transaction(&mut encoder, tid(1), 0, b"root"))
        .unwrap();
    running.wait_for_last(tid(1));
    let logs = running.logs.clone();
    running.stop();
    let text = logs.text();
    assert!(
        text.contains(&format!("UNIXAddress('{path}'): Connected")),
        "{text}"
    );
}

#[test]
fn a_burst_in_batch_mode_is_synced_once_the_input_goes_quiet() {
    let backend = CountingBackend::default();
    let syncs = backend.syncs.clone();
    let storage = FileStorage::open_with_backend(
        "Data.fs",
        Box::new(backend),
        Options {
            read_only: false,
            durability: Durability::Batch(1000),
        },
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (address, _) = tcp_address(&listener);
    let running = Running::start_on(storage, address, |_| {});
    let mut conn = accept(&listener);
    handshake(&mut conn);
    let before = syncs.load(Ordering::SeqCst);
    let mut encoder = StreamEncoder::new(Tid::ZERO);
    let mut burst = Vec::new();
    for n in 1..=50 {
        burst.extend(transaction(&mut encoder, tid(n), n, b"state"));
    }
    conn.write_all(&burst).unwrap();
    running.wait_for_last(tid(50));
    // Not one fsync per transaction (the batch is 1000): by the time all 50 are committed,
    // at most a few idle syncs (a loaded machine may deliver the burst in pieces).
    let at_commit = syncs.load(Ordering::SeqCst) - before;
    assert!(
        at_commit <= 10,
        "{at_commit} fsyncs for a burst of 50 transactions"
    );
    // And one once the input is quiet.
    wait_until("the idle sync", || syncs.load(Ordering::SeqCst) > before);
    running.stop();
}
