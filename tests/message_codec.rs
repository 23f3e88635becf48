//! The wire messages against what real Python 2 and 3 primaries pickle
//! (`tests/fixtures/pickles/generate.py`): decoding, the exact bytes of encoding, and the
//! errors for messages no primary sends.

mod pickle_support;

use pickle_support::{cases, hex, parse_value, same_unordered, unhex};
use zrs::protocol::{Message, MessageError, RecordHeader, TransactionHeader};
use zrs::{Oid, Tid};

fn field(tok: &str) -> Option<Vec<u8>> {
    match tok {
        "N" => None,
        t => Some(unhex(t.strip_prefix('x').expect("x-prefixed hex"))),
    }
}

fn id8(tok: &str) -> [u8; 8] {
    field(tok).unwrap().try_into().unwrap()
}

/// The expectation column of messages_*.txt.
fn expected(text: &str) -> Message {
    let t: Vec<&str> = text.split(' ').collect();
    let record = |t: &[&str]| RecordHeader {
        oid: Oid(id8(t[0])),
        serial: Tid(id8(t[1])),
        version: field(t[2]).unwrap(),
        data_txn: field(t[3]).map(|b| Tid(b.try_into().unwrap())),
    };
    match t[0] {
        "T" => Message::Transaction(TransactionHeader {
            tid: Tid(id8(t[1])),
            status: field(t[2]).unwrap()[0],
            user: field(t[3]).unwrap(),
            description: field(t[4]).unwrap(),
            extension: parse_value(&t[5..].join(" ")),
        }),
        "S" => Message::Store(record(&t[1..])),
        "B" => Message::Blob {
            record: record(&t[1..]),
            blocks: t[5].parse().unwrap(),
        },
        "C" => Message::Commit {
            checksum: field(t[1]).map(|b| b.try_into().unwrap()),
        },
        other => panic!("bad expectation {other}"),
    }
}

fn same_message(a: &Message, b: &Message) -> bool {
    match (a, b) {
        (Message::Transaction(x), Message::Transaction(y)) => {
            x.tid == y.tid
                && x.status == y.status
                && x.user == y.user
                && x.description == y.description
                && same_unordered(&x.extension, &y.extension)
        }
        _ => a == b,
    }
}

#[test]
fn decodes_what_python_primaries_send() {
    for file in ["messages_py3.txt", "messages_py2.txt"] {
        let rows = cases(file);
        for row in &rows {
            let got = Message::decode(&unhex(&row[1]))
                .unwrap_or_else(|e| panic!("{file} {}: {e}", row[0]));
            let want = expected(&row[3]);
            assert!(
                same_message(&got, &want),
                "{file} {}: {got:?} != {want:?}",
                row[0]
            );
        }
    }
}

#[test]
fn encodes_byte_for_byte_as_python3() {
    let rows = cases("messages_py3.txt");
    let mut fast_checked = 0;
    for row in &rows {
        let name = &row[0];
        let msg = Message::decode(&unhex(&row[1])).unwrap();
        let suffix = name.rsplit_once("_p").unwrap().1;
        let got = if suffix.ends_with("_fast") {
            if suffix == "1_fast" {
                fast_checked += 1;
                // Exactly the bytes a zc.zrs primary on Python 3 writes.
                msg.encode_fast()
            } else {
                continue;
            }
        } else {
            msg.encode(suffix.parse().unwrap())
        };
        assert_eq!(hex(&got), row[1], "{name}");
    }
    assert!(fast_checked >= 20);
}

#[test]
fn encoding_round_trips_at_every_protocol() {
    for row in cases("messages_py3.txt")
        .iter()
        .chain(cases("messages_py2.txt").iter())
    {
        let msg = Message::decode(&unhex(&row[1])).unwrap();
        for proto in 0..=5 {
            let again = Message::decode(&msg.encode(proto)).unwrap();
            assert!(same_message(&again, &msg), "{} p{proto}", row[0]);
        }
        assert!(same_message(
            &Message::decode(&msg.encode_fast()).unwrap(),
            &msg
        ));
    }
}

#[test]
fn rejects_what_no_primary_sends_with_a_precise_error() {
    for row in cases("bad_messages_py3.txt") {
        let err = Message::decode(&unhex(&row[1])).expect_err(&row[0]);
        let text = err.to_string();
        assert!(
            text.contains(&row[2]),
            "{}: error {text:?} does not say {:?}",
            row[0],
            row[2]
        );
    }
}

#[test]
fn errors_name_the_message_and_the_field() {
    let tid = [1u8; 8];
    let seven = Message::Store(RecordHeader {
        oid: Oid(tid),
        serial: Tid(tid),
        version: vec![],
        data_txn: None,
    })
    .encode_fast();
    // At protocol 1 the oid is `_codecs.encode('<8 chars>', 'latin1')`: shorten that str.
    let needle = [b'X', 8, 0, 0, 0];
    let at = seven.windows(5).position(|w| w == needle).unwrap();
    let mut bad = seven[..at].to_vec();
    bad.extend_from_slice(&[b'X', 7, 0, 0, 0]);
    bad.extend_from_slice(&seven[at + 6..]);
    assert_eq!(
        Message::decode(&bad).unwrap_err().to_string(),
        "bad 'S' message: oid must be 8 bytes, got 7"
    );
    let e = Message::decode(b"garbage").unwrap_err();
    assert!(matches!(e, MessageError::Pickle(_)), "{e:?}");
    assert!(e
        .to_string()
        .starts_with("message is not a valid pickle: pickle error at byte 0"));
}

#[test]
fn blob_block_counts_beyond_i64_still_encode() {
    let m = Message::Blob {
        record: RecordHeader {
            oid: Oid([0; 8]),
            serial: Tid([1; 8]),
            version: vec![],
            data_txn: Some(Tid([2; 8])),
        },
        blocks: 5,
    };
    assert_eq!(Message::decode(&m.encode(2)).unwrap(), m);
    let big = Message::Blob {
        record: RecordHeader {
            oid: Oid([0; 8]),
            serial: Tid([1; 8]),
            version: vec![],
            data_txn: None,
        },
        blocks: u64::MAX,
    };
    for proto in 0..=5 {
        assert_eq!(
            Message::decode(&big.encode(proto)).unwrap(),
            big,
            "p{proto}"
        );
    }
    let mut huge = big.to_value();
    if let zrs::pickle::Value::Tuple(t) = &mut huge {
        if let zrs::pickle::Value::Tuple(args) = &mut t[1] {
            args[4] = zrs::pickle::Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 1]);
        }
    }
    assert_eq!(
        Message::decode(&zrs::pickle::dumps(&huge, 2))
            .unwrap_err()
            .to_string(),
        "bad 'B' message: blocks out of range"
    );
}

/// `Message::decode` reads a Python 3 primary's `S` and `C` without the pickle machine
/// (the catch-up's hot path). It must agree with the general decoder on every fixture, on
/// the bad messages, and on every one-byte change and truncation of the `S` / `C` bytes.
#[test]
fn fast_path_agrees_with_the_general_decoder() {
    let mut checked = 0;
    let mut agree = |payload: &[u8]| {
        let fast = Message::decode(payload);
        let general = Message::decode_general(payload);
        match (&fast, &general) {
            (Ok(a), Ok(b)) => assert!(same_message(a, b), "{}: {a:?} != {b:?}", hex(payload)),
            (Err(a), Err(b)) => assert_eq!(a, b, "{}", hex(payload)),
            _ => panic!("{}: {fast:?} vs {general:?}", hex(payload)),
        }
        checked += 1;
    };
    let mut seeds = Vec::new();
    for file in [
        "messages_py3.txt",
        "messages_py2.txt",
        "bad_messages_py3.txt",
    ] {
        for row in cases(file) {
            let payload = unhex(&row[1]);
            if file == "messages_py3.txt" && (row[0].starts_with("S_") || row[0].starts_with("C_"))
            {
                seeds.push(payload.clone());
            }
            agree(&payload);
        }
    }
    assert!(seeds.len() >= 6);
    for seed in &seeds {
        for i in 0..seed.len() {
            agree(&seed[..i]);
            for b in [
                0u8, 0x01, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xc4, 0xff, b'N', b'X', b't',
            ] {
                let mut m = seed.clone();
                m[i] = b;
                agree(&m);
            }
        }
    }
    assert!(checked > 5000, "{checked}");
}
