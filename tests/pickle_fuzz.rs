//! Seeded mutation fuzzing of the decoder (runs in `cargo test`, well under 5 s): the
//! Python-made fixture pickles, bit-flipped, truncated, spliced, given huge lengths and
//! deep nesting. No input may panic, and what a decode holds stays proportional to the
//! input by construction: we check the decoder's own counters.

mod pickle_support;

use pickle_support::{cases, unhex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::pickle::{loads_with_stats, opcodes, DecodeStats, Limits};
use zrs::protocol::Message;

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for row in cases("messages_py3.txt") {
        out.push(unhex(&row[1]));
    }
    for row in cases("messages_py2.txt") {
        out.push(unhex(&row[1]));
    }
    for row in cases("values_py3.txt").iter().step_by(7) {
        let p = unhex(&row[3]);
        if p.len() < 4000 {
            out.push(p);
        }
    }
    for row in cases("opaque_py3.txt") {
        out.push(unhex(&row[2]));
    }
    out
}

/// Every resource the decoder holds is bounded by the input length.
fn check_bounds(input: &[u8], s: &DecodeStats, limits: &Limits) {
    let n = input.len();
    assert!(s.nodes <= n + 4, "nodes {} for {n} bytes", s.nodes);
    assert!(s.peak_stack <= n, "stack {} for {n} bytes", s.peak_stack);
    assert!(s.peak_marks <= n, "marks {} for {n} bytes", s.peak_marks);
    assert!(
        s.child_refs <= n,
        "child refs {} for {n} bytes",
        s.child_refs
    );
    assert!(
        s.memo_slots <= 2 * n + 65,
        "memo {} for {n} bytes",
        s.memo_slots
    );
    // UTF-8 of a protocol-0 Latin-1 character takes two bytes.
    assert!(
        s.payload_bytes <= 2 * n,
        "payload {} for {n} bytes",
        s.payload_bytes
    );
    let budget = limits.output_factor * n + limits.output_floor;
    // The check fires on the value that crosses the budget, so allow one value over.
    assert!(
        s.output_bytes <= budget + n + 64,
        "output {} for {n} bytes",
        s.output_bytes
    );
}

const INTERESTING: &[u8] = &[
    0x00,
    0xff,
    0x7f,
    0x80,
    opcodes::MARK,
    opcodes::STOP,
    opcodes::APPENDS,
    opcodes::SETITEMS,
    opcodes::TUPLE,
    opcodes::BINGET,
    opcodes::BINPUT,
    opcodes::REDUCE,
    opcodes::BUILD,
    opcodes::LONG4,
    opcodes::BINUNICODE8,
    opcodes::FRAME,
    opcodes::DUP,
    opcodes::POP_MARK,
    opcodes::EMPTY_LIST,
    opcodes::APPEND,
    opcodes::STACK_GLOBAL,
    opcodes::NEWOBJ,
];

fn mutate(rng: &mut ChaCha8Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut p = seed.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        if p.is_empty() {
            p.push(b'N');
        }
        let at = rng.gen_range(0..p.len());
        match rng.gen_range(0..9) {
            0 => p[at] ^= 1 << rng.gen_range(0..8),
            1 => p[at] = INTERESTING[rng.gen_range(0..INTERESTING.len())],
            2 => p.truncate(at),
            3 => {
                // Splice a piece of another pickle in.
                let a = rng.gen_range(0..other.len());
                let b = rng.gen_range(a..=other.len());
                p.splice(at..at, other[a..b].iter().copied());
            }
            4 => {
                // A huge length right after an opcode.
                let huge: [u8; 8] = match rng.gen_range(0..3) {
                    0 => [0xff; 8],
                    1 => [0, 0, 0, 0x80, 0, 0, 0, 0],
                    _ => [0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0],
                };
                let end = (at + 1 + rng.gen_range(1..=8)).min(p.len());
                let k = end.saturating_sub(at + 1);
                p[at + 1..end].copy_from_slice(&huge[..k]);
            }
            5 => {
                // Duplicate a region (repeats memo ops, marks...).
                let b = rng.gen_range(at..=p.len().min(at + 64));
                let piece = p[at..b].to_vec();
                for _ in 0..rng.gen_range(1..50) {
                    p.splice(at..at, piece.iter().copied());
                }
            }
            6 => {
                let b = rng.gen_range(at..=p.len());
                p.drain(at..b);
            }
            7 => p.insert(at, INTERESTING[rng.gen_range(0..INTERESTING.len())]),
            _ => {
                let junk: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.gen()).collect();
                p.splice(at..at, junk);
            }
        }
    }
    p
}

#[test]
fn mutated_fixtures_never_panic_and_stay_bounded() {
    let seeds = seeds();
    assert!(seeds.len() > 300);
    let limits = Limits::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0x05ee_d0f2_c0de);
    let (mut ok, mut failed) = (0, 0);
    for i in 0..20_000 {
        let seed = &seeds[i % seeds.len()];
        let other = &seeds[rng.gen_range(0..seeds.len())];
        let p = mutate(&mut rng, seed, other);
        let (r, stats) = loads_with_stats(&p, &limits);
        check_bounds(&p, &stats, &limits);
        match r {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.offset <= p.len(), "{e}");
                failed += 1;
            }
        }
        let _ = Message::decode(&p);
    }
    // The mutations must exercise both paths.
    assert!(ok > 1000 && failed > 1000, "ok {ok}, failed {failed}");
}

#[test]
fn pathological_shapes_in_a_megabyte() {
    let limits = Limits::default();
    let mb = 1 << 20;
    let shapes: Vec<Vec<u8>> = vec![
        vec![b'('; mb],
        vec![b']'; mb],
        vec![b')'; mb],
        vec![b'N'; mb],
        b"N".iter().copied().chain(vec![b'2'; mb]).collect(), // DUP
        b"]q\x00"
            .iter()
            .copied()
            .chain(b"h\x00".repeat(mb / 2))
            .collect(),
        b"(".repeat(mb / 2)
            .into_iter()
            .chain(b"t".repeat(mb / 2))
            .collect(),
        b"]".repeat(mb / 2)
            .into_iter()
            .chain(b"a".repeat(mb / 2))
            .collect(),
        b"}".iter().copied().chain(b"(NNu".repeat(mb / 4)).collect(),
        b"K\x01".repeat(mb / 2),
        b"K\x01q\x01".repeat(mb / 4),
        b"I1\n".repeat(mb / 3),
        b"\x95\x00\x00\x00\x00\x00\x00\x00\x00".repeat(mb / 9),
    ];
    for (i, mut p) in shapes.into_iter().enumerate() {
        for with_stop in [false, true] {
            if with_stop {
                p.push(b'.');
            }
            let (r, stats) = loads_with_stats(&p, &limits);
            check_bounds(&p, &stats, &limits);
            // Deep ones fail cleanly; flat ones may decode.
            if let Err(e) = r {
                assert!(e.offset <= p.len(), "shape {i}: {e}");
            }
        }
    }
}
