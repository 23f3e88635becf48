//! Sized-message framing: chunkings (as zc.zrs's tests deliver data, and random ones), the
//! three ways to take frames out, limits and their errors, zero-length messages.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::protocol::framing::{
    frame, write_frame, FrameDecoder, FrameError, DEFAULT_SECONDARY_LIMIT, PRIMARY_LIMIT,
};

fn stream_of(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        write_frame(&mut out, m);
    }
    out
}

/// Feed `chunks` one by one, taking frames with `next_frame` after each.
fn decode_chunks<'a>(
    d: &mut FrameDecoder,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c);
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
    }
    Ok(out)
}

fn sample_messages() -> Vec<Vec<u8>> {
    vec![
        b"zrs2.1".to_vec(),
        vec![],
        b"\x03lk\x90\xfb\xbb\xbb\xbb".to_vec(),
        vec![7; 300],
        vec![],
        (0..=255).collect(),
        vec![0; 70_000],
        b"x".to_vec(),
    ]
}

#[test]
fn frame_is_big_endian_length_then_payload() {
    assert_eq!(frame(b""), b"\0\0\0\0");
    assert_eq!(frame(b"zrs2.0"), b"\0\0\0\x06zrs2.0");
    assert_eq!(
        &frame(&[1; 0x0102_0304 % 100_000])[..4],
        &(0x0102_0304u32 % 100_000).to_be_bytes()
    );
    let mut out = b"keep".to_vec();
    write_frame(&mut out, b"ab");
    assert_eq!(out, b"keep\0\0\0\x02ab");
}

#[test]
fn reference_doubling_chunks_per_message() {
    // zc.zrs's MessageTransport.send: each framed message in pieces of 1, 2, 4, 8, ... bytes.
    let messages = sample_messages();
    let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    let mut got = Vec::new();
    for m in &messages {
        let mut record = &frame(m)[..];
        let mut n = 1;
        while !record.is_empty() {
            let (chunk, rest) = record.split_at(n.min(record.len()));
            record = rest;
            n *= 2;
            got.extend(decode_chunks(&mut d, [chunk]).unwrap());
        }
    }
    assert_eq!(got, messages);
    assert_eq!((d.buffered(), d.finish()), (0, Ok(())));
}

#[test]
fn one_byte_at_a_time_and_all_at_once() {
    let messages = sample_messages();
    let stream = stream_of(&messages);
    let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    assert_eq!(decode_chunks(&mut d, stream.chunks(1)).unwrap(), messages);
    let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    assert_eq!(decode_chunks(&mut d, [&stream[..]]).unwrap(), messages);
    assert_eq!(d.offset(), stream.len() as u64);
}

#[test]
fn split_inside_the_length_prefix() {
    let messages = vec![b"abc".to_vec(), vec![], b"defgh".to_vec()];
    let stream = stream_of(&messages);
    // Every way of cutting the stream in three.
    for i in 0..=stream.len() {
        for j in i..=stream.len() {
            let mut d = FrameDecoder::new(PRIMARY_LIMIT);
            let chunks = [&stream[..i], &stream[i..j], &stream[j..]];
            assert_eq!(
                decode_chunks(&mut d, chunks).unwrap(),
                messages,
                "cut at {i}, {j}"
            );
            assert_eq!(d.buffered(), 0);
        }
    }
}

#[test]
fn partial_frames_wait_for_more() {
    let mut d = FrameDecoder::new(PRIMARY_LIMIT);
    d.feed(b"\0\0");
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.buffered(), 2);
    assert!(matches!(
        d.finish(),
        Err(FrameError::Truncated {
            offset: 0,
            buffered: 2,
            missing: 2
        })
    ));
    d.feed(b"\0\x03ab");
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(
        d.finish(),
        Err(FrameError::Truncated {
            offset: 0,
            buffered: 6,
            missing: 1
        })
    );
    d.feed(b"c\0\0\0\0");
    assert_eq!(d.next_frame(), Ok(Some(b"abc".to_vec())));
    assert_eq!(d.next_frame(), Ok(Some(vec![])), "keep-alive");
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.finish(), Ok(()));
}

#[test]
fn zero_length_frames() {
    let mut d = FrameDecoder::new(0);
    d.feed(&[0; 4 * 5]);
    for _ in 0..5 {
        assert_eq!(d.next_frame(), Ok(Some(vec![])));
    }
    assert_eq!(d.next_frame(), Ok(None));
    d.feed(b"\0\0\0\x01x");
    assert_eq!(
        d.next_frame(),
        Err(FrameError::TooLarge {
            length: 1,
            limit: 0,
            offset: 20
        })
    );
}

#[test]
fn limit_is_inclusive_and_errors_are_sticky() {
    let mut d = FrameDecoder::new(PRIMARY_LIMIT);
    let mut stream = frame(b"zrs2.1");
    stream.extend(frame(b"12345678"));
    stream.extend(frame(b"123456789"));
    stream.extend(frame(b"after"));
    let err = FrameError::TooLarge {
        length: 9,
        limit: 8,
        offset: 22,
    };
    // Whatever the chunking, the two good frames come out, then the error, then only it.
    for size in 1..=stream.len() {
        let mut d2 = FrameDecoder::new(PRIMARY_LIMIT);
        let mut got = Vec::new();
        let mut result = Ok(());
        'outer: for c in stream.chunks(size) {
            d2.feed(c);
            loop {
                match d2.next_frame() {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break 'outer;
                    }
                }
            }
        }
        assert_eq!(
            got,
            [b"zrs2.1".to_vec(), b"12345678".to_vec()],
            "chunks of {size}"
        );
        assert_eq!(result, Err(err.clone()), "chunks of {size}");
        d2.feed(b"\0\0\0\0");
        assert_eq!(d2.next_frame(), Err(err.clone()));
        assert_eq!(d2.error(), Some(&err));
    }
    // The error comes as soon as the prefix is in, before the payload.
    d.feed(&stream[..26]);
    assert_eq!(d.next_frame().unwrap().unwrap(), b"zrs2.1");
    assert_eq!(d.next_frame().unwrap().unwrap(), b"12345678");
    assert_eq!(d.next_frame(), Err(err.clone()));
    assert_eq!(d.finish(), Err(err));
    // The message says what and where.
    let text = FrameError::TooLarge {
        length: 9,
        limit: 8,
        offset: 22,
    }
    .to_string();
    assert!(text.contains("offset 22") && text.contains("9 bytes") && text.contains("limit of 8"));
}

#[test]
fn declared_length_allocates_nothing() {
    let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    d.feed(&u32::MAX.to_be_bytes());
    d.feed(b"0123456789");
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.buffered(), 14);
    assert!(
        d.allocated() < 1024,
        "allocated {} for 14 bytes",
        d.allocated()
    );
    let mut d = FrameDecoder::new(1000);
    d.feed(&u32::MAX.to_be_bytes());
    assert!(matches!(
        d.next_frame(),
        Err(FrameError::TooLarge {
            length: 0xffff_ffff,
            ..
        })
    ));
    assert_eq!(d.allocated(), 0, "a failed decoder frees its buffer");
}

/// A long stream whose chunks never end on a message boundary (a few bytes of the next
/// message are always held): the bytes already returned are let go, so memory follows the
/// bytes held, not every byte ever received.
#[test]
fn memory_follows_the_bytes_held_not_the_bytes_received() {
    let message = frame(b"sixsix"); // 10 bytes framed
    let stream = message.repeat(10_000);
    let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    d.feed(&stream[..3]);
    let mut frames = 0;
    for chunk in stream[3..].chunks(message.len()) {
        d.feed(chunk);
        while let Some(f) = d.next_frame_slice().unwrap() {
            assert_eq!(f, b"sixsix");
            frames += 1;
        }
        let held = d.buffered();
        assert!(held == 3 || held == 0, "holds {held}");
        assert!(
            held <= d.allocated() && d.allocated() <= 256,
            "{} allocated to hold {held} bytes, after {frames} messages",
            d.allocated()
        );
    }
    assert_eq!(frames, 10_000);
}

#[test]
fn big_frame_in_small_chunks_is_linear() {
    // 4 MiB in 7-byte chunks: quadratic copying would take minutes in a debug build.
    let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let stream = frame(&payload);
    let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
    let mut got = None;
    for c in stream.chunks(7) {
        d.feed(c);
        if let Some(f) = d.next_frame().unwrap() {
            got = Some(f);
        }
        assert!(d.allocated() <= 2 * stream.len() + 64);
    }
    assert!(got.as_deref() == Some(&payload[..]));
}

/// The three ways of taking frames agree on random messages and random chunkings.
#[test]
fn random_chunkings_all_apis() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_f4a3);
    for round in 0..300 {
        let messages: Vec<Vec<u8>> = (0..rng.gen_range(0..20))
            .map(|_| {
                let len = match rng.gen_range(0..4) {
                    0 => 0,
                    1 => rng.gen_range(1..8),
                    2 => rng.gen_range(8..300),
                    _ => rng.gen_range(300..5000),
                };
                (0..len).map(|_| rng.gen()).collect()
            })
            .collect();
        let stream = stream_of(&messages);
        let mut chunks = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = match rng.gen_range(0..3) {
                0 => rng.gen_range(0..5),
                1 => rng.gen_range(0..100),
                _ => rng.gen_range(0..10_000),
            };
            let (c, r) = rest.split_at(n.min(rest.len()));
            chunks.push(c);
            rest = r;
        }

        let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
        assert_eq!(
            decode_chunks(&mut d, chunks.iter().copied()).unwrap(),
            messages,
            "round {round}"
        );

        let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
        let mut got = Vec::new();
        for c in &chunks {
            d.feed(c);
            while let Some(f) = d.next_frame_slice().unwrap() {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got, messages, "slices, round {round}");

        let mut d = FrameDecoder::new(DEFAULT_SECONDARY_LIMIT);
        let mut got = Vec::new();
        for c in &chunks {
            d.decode(c, |f| got.push(f.to_vec())).unwrap();
        }
        assert_eq!(got, messages, "decode, round {round}");
        assert_eq!((d.buffered(), d.offset()), (0, stream.len() as u64));
    }
}
