//! The running checksum against a stream and digests made by Python the way zc.zrs's primary
//! makes them (`tests/fixtures/checksum/generate.py`).

use zrs::protocol::checksum::StreamChecksum;
use zrs::protocol::framing::{FrameDecoder, DEFAULT_SECONDARY_LIMIT};
use zrs::Tid;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn matches_primary_md5_over_fixture_stream() {
    let stream = include_bytes!("fixtures/checksum/stream.bin");
    let mut expected = include_str!("fixtures/checksum/expected.txt").lines();
    let start = expected.next().unwrap().strip_prefix("start ").unwrap();
    let start = Tid::from_u64(u64::from_str_radix(start, 16).unwrap());
    let mut sum = StreamChecksum::new(start);

    // Deliver the stream as zc.zrs's test transport does: 1, 2, 4, 8, ... bytes.
    let mut decoder = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    let (mut rest, mut n) = (&stream[..], 1);
    let mut messages = 0;
    let mut commits = 0;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        n *= 2;
        decoder.feed(chunk);
        while let Some(payload) = decoder.next_frame().unwrap() {
            let line = expected.next().expect("more messages than expected");
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f[0].parse::<usize>().unwrap(), messages);
            assert_eq!(
                f[1].parse::<usize>().unwrap(),
                payload.len(),
                "message {messages}"
            );
            if let Some(carried) = f.get(3) {
                // A `C` carries the digest of everything before it...
                assert_eq!(hex(&sum.digest()), *carried, "C message {messages}");
                assert_eq!(hex(&sum.digest()), *carried, "digest() consumed state");
                commits += 1;
            }
            // ...and is then hashed like any other message.
            sum.update(&payload);
            assert_eq!(hex(&sum.digest()), f[2], "md5 after message {messages}");
            messages += 1;
        }
    }
    assert_eq!(decoder.finish(), Ok(()));
    assert!(expected.next().is_none(), "fewer messages than expected");
    assert!(
        messages > 300 && commits == 40,
        "{messages} messages, {commits} commits"
    );
}

#[test]
fn known_digests() {
    // Python: hashlib.md5(b'\0' * 8).hexdigest()
    assert_eq!(
        hex(&StreamChecksum::new(Tid::ZERO).digest()),
        "7dea362b3fac8e00956a4952a3d4f474"
    );
    let mut sum = StreamChecksum::new(Tid(*b"\x03lk\x90\xfb\xbb\xbb\xbb"));
    sum.update(b"abc");
    // Python: hashlib.md5(b'\x03lk\x90\xfb\xbb\xbb\xbb' + b'abc').hexdigest()
    assert_eq!(hex(&sum.digest()), "8c9a0d30f13379f77f24bd78cdde9d62");
    let snapshot = sum.clone();
    sum.update(b"");
    assert_eq!(
        sum.digest(),
        snapshot.digest(),
        "an empty message adds nothing"
    );
    sum.update(&[0; 100]);
    assert_eq!(hex(&sum.digest()), "cb8fb610e1fb2eeea96f2b79b6d820fd");
}

#[test]
fn debug_shows_the_running_digest() {
    // md5 of the 8 zero bytes of an empty storage's start tid.
    let c = zrs::protocol::checksum::StreamChecksum::new(zrs::Tid::ZERO);
    assert_eq!(
        format!("{c:?}"),
        "StreamChecksum(7dea362b3fac8e00956a4952a3d4f474)"
    );
}
