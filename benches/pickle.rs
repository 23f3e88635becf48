//! Decoding the messages a zc.zrs primary sends (`T`, `S`, `C`, fast protocol 1, as the
//! Python 3 fixtures hold them): the bare pickle decoder and the full `Message::decode`.
//! Python's `pickle.loads` on the same bytes is measured with `timeit` (see BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use zrs::pickle::{dumps_fast, loads};
use zrs::protocol::Message;

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pickles/messages_py3.txt"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let line = text
        .lines()
        .find(|l| l.split('\t').next() == Some(name))
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let h = line.split('\t').nth(1).unwrap();
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

pub const CASES: &[(&str, &str)] = &[
    (
        "T (empty user, no extension)",
        "T_tid0_nouser_empty_p1_fast",
    ),
    (
        "T (user, description, extension)",
        "T_tid0_nonascii_unicode_p1_fast",
    ),
    ("S", "S_oid1_backptr_p1_fast"),
    ("C", "C_digest_p1_fast"),
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pickle decode");
    g.throughput(Throughput::Elements(1));
    for (label, name) in CASES {
        let data = fixture(name);
        g.bench_function(format!("loads {label}"), |b| {
            b.iter(|| loads(black_box(&data)).unwrap())
        });
        g.bench_function(format!("Message::decode {label}"), |b| {
            b.iter(|| Message::decode(black_box(&data)).unwrap())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("pickle encode");
    g.throughput(Throughput::Elements(1));
    for (label, name) in CASES {
        let m = Message::decode(&fixture(name)).unwrap();
        let v = m.to_value();
        g.bench_function(format!("dumps_fast {label}"), |b| {
            b.iter(|| dumps_fast(black_box(&v), 1))
        });
    }
    g.finish();
}

/// A `T` message of `tests/fixtures/pickles/extension_py2.txt` (a Python 2 primary's).
fn py2_fixture(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pickles/extension_py2.txt"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let line = text
        .lines()
        .find(|l| {
            let mut f = l.split('\t');
            f.next() == Some(name) && f.next() == Some("referenced")
        })
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let h = line.split('\t').nth(2).unwrap();
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

/// Re-encoding a Python 2 primary's extension as ZODB 4 stores it (once per transaction):
/// the pickler and, for dicts of up to six keys, the search for the pickled order.
fn bench_py2_extension(c: &mut Criterion) {
    use zrs::pickle::{dumps_py2_extension, Identity};
    let mut g = c.benchmark_group("py2 extension encode");
    g.throughput(Throughput::Elements(1));
    for name in ["note", "zope_like", "ints", "dict_1001"] {
        let Message::Transaction(t) = Message::decode(&py2_fixture(name)).unwrap() else {
            panic!("{name}: not a T");
        };
        g.bench_function(name, |b| {
            b.iter(|| dumps_py2_extension(black_box(&t.extension), Identity::Referenced))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_py2_extension);
criterion_main!(benches);
