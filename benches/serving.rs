//! Serving benchmark of the primary core (see BENCHMARKS.md, "## Serving a catch-up"): a
//! whole FileStorage streamed by `zrs::primary::Primary` — cursor, record reads, `T` / `S` /
//! `C` encoding, running md5, one window per `writable` — with no network, next to md5 alone
//! over the same stream (the floor: every primary must hash every byte it sends).
//!
//! Next to it, the same with the windows left unsealed (`Sealing::ByHost`, as the real
//! driver runs the core: the md5 then runs on each connection's sealer thread), alone and
//! followed by the sealing, to show how the work splits between the two threads.
//!
//! Next to it, the same with the windows left unsealed (`Sealing::ByHost`, as the real
//! driver runs the core: the md5 then runs on each connection's sealer thread), alone and
//! followed by the sealing, to show how the work splits between the two threads.
//!
//! Run with `cargo bench --bench serving`. The data is synthetic and seeded (small and
//! large pickles, some backpointers), held in memory. Without `--bench` (e.g. `cargo test
//! --benches`) everything runs once, small.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use md5::{Digest, Md5};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::primary::{Action, Config, ConnectionId, Primary, Sealing};
use zrs::protocol::handshake::hello;
use zrs::protocol::{Sealer, ZRS_2_0};
use zrs::secondary::Address;
use zrs::storage::file::backend::MemoryBackend;
use zrs::storage::{FileStorage, Options, ReadStorage, Storage, TransactionMeta};
use zrs::{Oid, Tid};

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A FileStorage in memory of about `target` bytes.
fn storage(target: u64) -> FileStorage {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut s = FileStorage::open_with_backend(
        "Data.fs",
        Box::new(MemoryBackend::new()),
        Options::default(),
    )
    .unwrap();
    let mut n = 0u64;
    let mut last_of: Vec<Tid> = Vec::new();
    while s.size() < target {
        n += 1;
        let tid = Tid::from_u64(0x03d0_0000_0000_0000 + n * 0x1000);
        s.tpc_begin(TransactionMeta {
            tid,
            status: b' ',
            user: b"/ bench".to_vec(),
            description: format!("transaction {n}").into_bytes(),
            extension: Vec::new(),
        })
        .unwrap();
        for _ in 0..rng.gen_range(1..8) {
            let len = if rng.gen_bool(0.01) {
                rng.gen_range(64 * 1024..200 * 1024)
            } else {
                rng.gen_range(60..2000)
            };
            let data: Vec<u8> = (0..len).map(|_| rng.gen::<u8>() & 0x3f).collect();
            let i = if last_of.is_empty() || rng.gen_bool(0.3) {
                last_of.push(tid);
                last_of.len() - 1
            } else {
                rng.gen_range(0..last_of.len())
            };
            s.restore(Oid::from_u64(i as u64), tid, Some(&data), b"", None)
                .unwrap();
            last_of[i] = tid;
        }
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
    }
    s
}

/// Streams everything to one connection; returns the stream.
fn serve(s: &FileStorage) -> Vec<u8> {
    let mut p = Primary::new(s.reader(), Config::new(Address::tcp("", 8000)));
    let id = ConnectionId(1);
    p.connected(id, "peer");
    for m in hello(ZRS_2_0, Tid::ZERO) {
        p.data_received(id, &m);
    }
    let mut stream = Vec::new();
    loop {
        let mut sent = false;
        while let Some(a) = p.poll_action() {
            if let Action::Transmit(_, bytes) = a {
                stream.extend_from_slice(&bytes);
                sent = true;
            }
        }
        if !sent {
            return stream;
        }
        p.writable(id);
    }
}

/// As [`serve`], with the primary leaving its windows unsealed (`Sealing::ByHost`, as the
/// real driver runs it): the reading thread's share of the work. With `seal`, each window
/// is then sealed as the driver's sealer thread does (both shares on one thread here).
fn serve_unsealed(s: &FileStorage, seal: bool) -> usize {
    let config = Config {
        sealing: Sealing::ByHost,
        ..Config::new(Address::tcp("", 8000))
    };
    let mut p = Primary::new(s.reader(), config);
    let id = ConnectionId(1);
    p.connected(id, "peer");
    for m in hello(ZRS_2_0, Tid::ZERO) {
        p.data_received(id, &m);
    }
    let mut sealer: Option<Sealer> = None;
    let mut sent = 0;
    loop {
        let mut any = false;
        while let Some(a) = p.poll_action() {
            if let Action::TransmitUnsealed(_, window) = a {
                any = true;
                if seal {
                    if let Some(start) = window.start() {
                        sealer = Some(Sealer::new(start));
                    }
                    sent += sealer.as_mut().expect("first window").seal(window).len();
                } else {
                    sent += window.len();
                }
            }
        }
        if !any {
            return sent;
        }
        p.writable(id);
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let s = storage(if bench_mode() { 40 << 20 } else { 1 << 20 });
    let stream = serve(&s);
    let mut g = c.benchmark_group("serving");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("primary core: whole storage", |b| {
        b.iter(|| serve(&s).len())
    });
    g.bench_function("primary core, unsealed: the reading thread's share", |b| {
        b.iter(|| serve_unsealed(&s, false))
    });
    g.bench_function(
        "primary core, unsealed, then sealed: both threads' shares",
        |b| b.iter(|| serve_unsealed(&s, true)),
    );
    g.bench_function("md5 over the same stream", |b| {
        b.iter(|| Md5::digest(&stream)[0])
    });
    g.finish();
    c.final_summary();
}
