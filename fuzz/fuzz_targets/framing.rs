//! Fuzz the framing decoder: input = [limit selector, chunk-size seed, stream...]. The decoder,
//! fed the stream in chunks through a mix of its APIs, must give what a naive whole-stream
//! parse gives, and never hold more than it was fed. (`tests/framing_mutation.rs` runs the
//! same check from a seeded generator in `cargo test`.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use zrs::protocol::framing::{FrameDecoder, FrameError};

fn model(stream: &[u8], limit: u32) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let mut frames = Vec::new();
    let mut at = 0usize;
    loop {
        let rest = &stream[at..];
        if rest.is_empty() {
            return (frames, Ok(()));
        }
        let truncated = |missing: usize| FrameError::Truncated {
            offset: at as u64,
            buffered: rest.len() as u64,
            missing: missing as u64,
        };
        if rest.len() < 4 {
            return (frames, Err(truncated(4 - rest.len())));
        }
        let length = u32::from_be_bytes(rest[..4].try_into().unwrap());
        if length > limit {
            let offset = at as u64;
            return (frames, Err(FrameError::TooLarge { length: length.into(), limit, offset }));
        }
        let end = 4 + length as usize;
        if rest.len() < end {
            return (frames, Err(truncated(end - rest.len())));
        }
        frames.push(rest[4..end].to_vec());
        at += end;
    }
}

fuzz_target!(|data: &[u8]| {
    let [sel, seed, stream @ ..] = data else { return };
    let limit = [0, 1, 8, 255, 4096, u32::MAX][usize::from(*sel) % 6];
    let (want, want_end) = model(stream, limit);

    let mut d = FrameDecoder::new(limit);
    let mut got = Vec::new();
    let mut error = None;
    let (mut rest, mut fed, mut state) = (stream, 0usize, u32::from(*seed) | 1);
    while !rest.is_empty() && error.is_none() {
        // A tiny xorshift picks chunk sizes and APIs from the seed byte.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 17).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        fed += n;
        let result = if state & 0x100 == 0 {
            d.decode(chunk, |f| got.push(f.to_vec()))
        } else {
            d.feed(chunk);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
        };
        assert!(d.buffered() <= fed);
        error = result.err();
    }
    assert_eq!(got, want);
    match error {
        Some(e) => assert_eq!(Err(e), want_end),
        None => assert_eq!(d.finish(), want_end),
    }
});
