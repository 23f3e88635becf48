//! The driver serving a primary on real loopback sockets (TCP and Unix): a zrs secondary
//! driven by the same driver catches up, follows commits the primary learns of through its
//! follow poll, and a raw client that never reads holds back only its own stream. Every
//! wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use zrs::net::{Driver, DriverOptions, Follow, Followed, Listener, StopHandle};
use zrs::primary::{Config as PrimaryConfig, Primary, Sealing};
use zrs::protocol::handshake::hello;
use zrs::protocol::ZRS_2_0;
use zrs::secondary::{Address, Config, Secondary};
use zrs::storage::{MemoryStorage, ReadStorage, Storage, TransactionMeta};
use zrs::{Oid, Tid};

const PATIENCE: Duration = Duration::from_secs(20);

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn commit(s: &mut MemoryStorage, n: u64, size: usize) {
    let tid = Tid::from_u64(n);
    s.tpc_begin(TransactionMeta {
        tid,
        status: b' ',
        user: b"u".to_vec(),
        description: Vec::new(),
        extension: Vec::new(),
    })
    .unwrap();
    s.restore(
        Oid::from_u64(n % 7),
        tid,
        Some(&vec![n as u8; size]),
        b"",
        None,
    )
    .unwrap();
    s.tpc_vote().unwrap();
    s.tpc_finish().unwrap();
}

/// A served primary on its own thread, over a storage the test commits to.
struct Served {
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
    address: Address,
}

impl Served {
    fn start(storage: &MemoryStorage, address: Address) -> Served {
        let listener = Listener::bind(&address).unwrap();
        let address = match address {
            Address::Tcp { .. } => {
                let port = listener
                    .local()
                    .rsplit_once(':')
                    .unwrap()
                    .1
                    .parse()
                    .unwrap();
                Address::tcp("127.0.0.1", port)
            }
            unix => unix,
        };
        // As the commands configure it: the writer threads seal.
        let config = PrimaryConfig {
            sealing: Sealing::ByHost,
            ..PrimaryConfig::new(address.clone())
        };
        let primary = Primary::new(storage.reader(), config);
        // The test commits in-process: the poll notices a new last transaction.
        let watched = storage.reader();
        let mut seen = watched.last_transaction();
        let follow = Follow {
            interval: Duration::from_millis(5),
            poll: Box::new(move || {
                let last = watched.last_transaction();
                Ok(if last != seen {
                    seen = last;
                    Followed::Appended
                } else {
                    Followed::Unchanged
                })
            }),
        };
        let driver = Driver::<MemoryStorage>::serving(primary, listener, DriverOptions::default())
            .follow(follow);
        let stop = driver.stop_handle();
        let thread = thread::spawn(move || driver.run_primary().expect("clean stop"));
        Served {
            stop,
            thread: Some(thread),
            address,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A zrs secondary on its own thread; returns a reader of its storage.
fn secondary(address: Address) -> (StopHandle, Box<dyn ReadStorage + Send + Sync>) {
    let config = Config {
        address: Some(address),
        reconnect_delay: Duration::from_millis(50),
        ..Config::default()
    };
    let s = Secondary::new(MemoryStorage::new("S.fs"), config);
    let reader = s.storage().reader();
    let driver = Driver::new(s, DriverOptions::default());
    let stop = driver.stop_handle();
    thread::spawn(move || driver.run());
    (stop, reader)
}

fn same(a: &dyn ReadStorage, b: &dyn ReadStorage) -> bool {
    let x: Vec<_> = a.iterator(None, None).map(Result::unwrap).collect();
    let y: Vec<_> = b.iterator(None, None).map(Result::unwrap).collect();
    x == y
}

#[test]
fn a_secondary_catches_up_then_follows_commits() {
    let mut storage = MemoryStorage::new("P.fs");
    for n in 1..=200 {
        commit(&mut storage, n, 1000);
    }
    let served = Served::start(&storage, Address::tcp("127.0.0.1", 0));
    let (stop, replica) = secondary(served.address.clone());
    wait_until("catch-up", || {
        replica.last_transaction() == Tid::from_u64(200)
    });
    for n in 201..=230 {
        commit(&mut storage, n, 10);
    }
    wait_until("new commits", || {
        replica.last_transaction() == Tid::from_u64(230)
    });
    assert!(same(&storage, &*replica));
    stop.stop();
}

#[test]
fn serves_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("primary.sock")
        .to_str()
        .unwrap()
        .to_string();
    let mut storage = MemoryStorage::new("P.fs");
    commit(&mut storage, 1, 10);
    let served = Served::start(&storage, Address::Unix(path));
    let (stop, replica) = secondary(served.address.clone());
    wait_until("catch-up", || {
        replica.last_transaction() == Tid::from_u64(1)
    });
    stop.stop();
}

#[test]
fn a_client_that_does_not_read_holds_back_only_itself() {
    let mut storage = MemoryStorage::new("P.fs");
    // 16 MB: more than the socket buffers and the primary's window hold.
    for n in 1..=16 {
        commit(&mut storage, n, 1 << 20);
    }
    let served = Served::start(&storage, Address::tcp("127.0.0.1", 0));
    let Address::Tcp { port, .. } = served.address.clone() else {
        unreachable!()
    };
    let mut stuck = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for m in hello(ZRS_2_0, Tid::ZERO) {
        stuck.write_all(&m).unwrap();
    }
    // It reads a little, then nothing more; a real secondary is served meanwhile.
    let mut first = vec![0u8; 1000];
    stuck.set_read_timeout(Some(PATIENCE)).unwrap();
    stuck.read_exact(&mut first).unwrap();
    let (stop, replica) = secondary(served.address.clone());
    wait_until("the other secondary catches up", || {
        replica.last_transaction() == Tid::from_u64(16)
    });
    stop.stop();
    // The stuck client still gets its stream, whole, once it reads.
    let received = Arc::new(Mutex::new(0usize));
    let counter = received.clone();
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stuck.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut c = counter.lock().unwrap();
                    *c += n;
                    if *c + 1000 >= 16 << 20 {
                        return;
                    }
                }
            }
        }
    });
    reader.join().unwrap();
    assert!(*received.lock().unwrap() + 1000 >= 16 << 20);
}
