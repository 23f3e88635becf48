//! Framing decode + running checksum over a realistic replication stream, next to plain md5
//! over the same bytes.
//!
//! The stream: transactions of 1–10 records, each an `S`-sized pickle (~60 B) and a data
//! record of 100 B – 100 KiB (log-uniform), with `T` (~110 B) and `C` (~70 B) messages around
//! them; about 8 MiB, delivered in 64 KiB chunks as reads from a TCP socket would be.
//!
//! Run: `cargo bench --bench framing`; figures are in BENCHMARKS.md, next to
//! `benches/framing_reference.py` (the same work in zc.zrs's Python).

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use md5::{Digest, Md5};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::protocol::checksum::StreamChecksum;
use zrs::protocol::framing::{write_frame, FrameDecoder, DEFAULT_SECONDARY_LIMIT};
use zrs::Tid;

const CHUNK: usize = 64 * 1024;
const TARGET: usize = 8 << 20;

fn stream() -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut out = Vec::with_capacity(TARGET + (200 << 10));
    let payload = |n: usize, rng: &mut ChaCha8Rng| (0..n).map(|_| rng.gen()).collect::<Vec<u8>>();
    while out.len() < TARGET {
        write_frame(&mut out, &payload(110, &mut rng));
        for _ in 0..rng.gen_range(1..=10) {
            write_frame(&mut out, &payload(60, &mut rng));
            let size = (100f64 * 1024f64.powf(rng.gen::<f64>())) as usize;
            write_frame(&mut out, &payload(size, &mut rng));
        }
        write_frame(&mut out, &payload(70, &mut rng));
    }
    out
}

fn md5_plain(stream: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    for chunk in stream.chunks(CHUNK) {
        md5.update(chunk);
    }
    md5.finalize().into()
}

/// How frames are taken out of the decoder: as owned `Vec`s, or borrowed from its buffer.
#[derive(Clone, Copy)]
enum Pull {
    Vec,
    Slice,
}

/// Feeds `stream` to a decoder in `CHUNK`-byte reads, as a socket would deliver it, and
/// hands every frame it yields (pulled `how`) to `each`.
fn for_each_frame(stream: &[u8], how: Pull, mut each: impl FnMut(&[u8])) {
    let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    for chunk in stream.chunks(CHUNK) {
        d.feed(chunk);
        match how {
            Pull::Vec => {
                while let Some(f) = d.next_frame().unwrap() {
                    each(&f);
                }
            }
            Pull::Slice => {
                while let Some(f) = d.next_frame_slice().unwrap() {
                    each(f);
                }
            }
        }
    }
}

/// The frames' total length: decoding alone.
fn decode_only(stream: &[u8], how: Pull) -> usize {
    let mut n = 0;
    for_each_frame(stream, how, |f| n += f.len());
    n
}

/// The running checksum over every frame, pulled `how`.
fn checksum(stream: &[u8], how: Pull) -> [u8; 16] {
    let mut sum = StreamChecksum::new(Tid::ZERO);
    for_each_frame(stream, how, |f| sum.update(f));
    sum.digest()
}

fn with_vec(stream: &[u8]) -> [u8; 16] {
    checksum(stream, Pull::Vec)
}

fn with_slice(stream: &[u8]) -> [u8; 16] {
    checksum(stream, Pull::Slice)
}

fn with_callback(stream: &[u8]) -> [u8; 16] {
    let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    let mut sum = StreamChecksum::new(Tid::ZERO);
    for chunk in stream.chunks(CHUNK) {
        d.decode(chunk, |f| sum.update(f)).unwrap();
    }
    sum.digest()
}

/// On a shared machine criterion's back-to-back groups see different contention; here each
/// round runs every variant once, and the best round of each is compared.
/// A way to get a stream's final digest.
type Variant = (&'static str, fn(&[u8]) -> [u8; 16]);

fn paired(stream: &[u8]) {
    let variants: [Variant; 4] = [
        ("md5 plain", md5_plain),
        ("decode + checksum (next_frame, Vec)", with_vec),
        ("decode + checksum (next_frame_slice)", with_slice),
        ("decode + checksum (decode callback)", with_callback),
    ];
    let mut best = [f64::MAX; 4];
    for _ in 0..60 {
        for (i, (_, f)) in variants.iter().enumerate() {
            let t = Instant::now();
            black_box(f(black_box(stream)));
            best[i] = best[i].min(t.elapsed().as_secs_f64());
        }
    }
    let mib = stream.len() as f64 / f64::from(1 << 20);
    println!("paired, best of 60 interleaved rounds, {mib:.2} MiB in {CHUNK}-byte chunks:");
    for (i, (name, _)) in variants.iter().enumerate() {
        println!(
            "  {name:<38} {:7.2} ms {:7.1} MiB/s {:+6.1}% vs md5 plain",
            best[i] * 1e3,
            mib / best[i],
            (best[i] / best[0] - 1.0) * 100.0
        );
    }
}

fn bench(c: &mut Criterion) {
    let stream = stream();
    assert_eq!(with_vec(&stream), with_slice(&stream));
    assert_eq!(with_vec(&stream), with_callback(&stream));
    paired(&stream);
    let mut group = c.benchmark_group("framing");
    group
        .throughput(Throughput::Bytes(stream.len() as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    group.bench_function("md5 plain", |b| b.iter(|| black_box(md5_plain(&stream))));
    group.bench_function("decode only (next_frame, Vec)", |b| {
        b.iter(|| black_box(decode_only(&stream, Pull::Vec)))
    });
    group.bench_function("decode only (next_frame_slice)", |b| {
        b.iter(|| black_box(decode_only(&stream, Pull::Slice)))
    });
    for (name, f) in [
        (
            "decode + checksum (next_frame, Vec)",
            with_vec as fn(&[u8]) -> [u8; 16],
        ),
        ("decode + checksum (next_frame_slice)", with_slice),
        ("decode + checksum (decode callback)", with_callback),
    ] {
        group.bench_function(name, |b| b.iter(|| black_box(f(&stream))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
