//! Seeded mutation test of the framing decoder: random byte streams and mutated valid
//! streams, cut into random chunks and decoded through a random mix of the decoder's APIs,
//! must give exactly what a naive whole-stream parser gives — same frames, same error (kind,
//! length, offset), same end-of-stream verdict — without panics and with memory bounded by
//! the bytes fed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::protocol::framing::{write_frame, FrameDecoder, FrameError};

/// The obvious parser over the whole stream: frames, then the error or the end verdict.
fn model(stream: &[u8], limit: u32) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let mut frames = Vec::new();
    let mut at = 0usize;
    loop {
        let rest = &stream[at..];
        if rest.len() < 4 {
            if rest.is_empty() {
                return (frames, Ok(()));
            }
            let missing = 4 - rest.len() as u64;
            return (frames, Err(truncated(at, rest.len(), missing)));
        }
        let length = u32::from_be_bytes(rest[..4].try_into().unwrap());
        if length > limit {
            let offset = at as u64;
            return (
                frames,
                Err(FrameError::TooLarge {
                    length: length.into(),
                    limit,
                    offset,
                }),
            );
        }
        let end = 4 + length as usize;
        if rest.len() < end {
            let missing = (end - rest.len()) as u64;
            return (frames, Err(truncated(at, rest.len(), missing)));
        }
        frames.push(rest[4..end].to_vec());
        at += end;
    }
}

fn truncated(offset: usize, buffered: usize, missing: u64) -> FrameError {
    FrameError::Truncated {
        offset: offset as u64,
        buffered: buffered as u64,
        missing,
    }
}

fn random_stream(rng: &mut ChaCha8Rng) -> Vec<u8> {
    match rng.gen_range(0..4) {
        // Noise: the first prefix is usually huge.
        0 => (0..rng.gen_range(0..600)).map(|_| rng.gen()).collect(),
        // Noise from a small alphabet: many small and zero lengths.
        1 => (0..rng.gen_range(0..600))
            .map(|_| rng.gen_range(0..3))
            .collect(),
        // A valid stream, mutated.
        _ => {
            let mut s = Vec::new();
            for _ in 0..rng.gen_range(0..12) {
                let len = match rng.gen_range(0..3) {
                    0 => 0,
                    1 => rng.gen_range(1..10),
                    _ => rng.gen_range(10..400),
                };
                let payload: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                write_frame(&mut s, &payload);
            }
            for _ in 0..rng.gen_range(0..4) {
                mutate(rng, &mut s);
            }
            s
        }
    }
}

fn mutate(rng: &mut ChaCha8Rng, s: &mut Vec<u8>) {
    if s.is_empty() {
        s.extend((0..rng.gen_range(1..9)).map(|_| rng.gen::<u8>()));
        return;
    }
    let i = rng.gen_range(0..s.len());
    match rng.gen_range(0..6) {
        0 => s[i] ^= 1 << rng.gen_range(0..8),
        1 => s[i] = rng.gen(),
        2 => {
            s.remove(i);
        }
        3 => s.insert(i, rng.gen()),
        4 => s.truncate(i),
        _ => {
            // Duplicate a slice somewhere else.
            let j = rng.gen_range(i..=s.len());
            let piece = s[i..j].to_vec();
            let at = rng.gen_range(0..=s.len());
            s.splice(at..at, piece);
        }
    }
}

fn random_chunks<'a>(rng: &mut ChaCha8Rng, mut s: &'a [u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let max = [1usize, 3, 10, 100, 1000][rng.gen_range(0..5)];
    while !s.is_empty() {
        let (c, r) = s.split_at(rng.gen_range(0..=max).min(s.len()));
        chunks.push(c);
        s = r;
    }
    chunks
}

#[test]
fn decoder_agrees_with_model_on_mutated_streams() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xf4a3_1e55);
    let mut errors = 0;
    let mut truncations = 0;
    for case in 0..3000 {
        let stream = random_stream(&mut rng);
        let limit = [0, 1, 8, 100, 399, 1 << 20, u32::MAX][rng.gen_range(0..7)];
        let (want_frames, want_end) = model(&stream, limit);

        let mut d = FrameDecoder::new(limit);
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut error = None;
        let mut fed = 0usize;
        for chunk in random_chunks(&mut rng, &stream) {
            fed += chunk.len();
            let result = match rng.gen_range(0..3) {
                0 => d.decode(chunk, |f| frames.push(f.to_vec())),
                1 => {
                    d.feed(chunk);
                    (|| {
                        while let Some(f) = d.next_frame()? {
                            frames.push(f);
                        }
                        Ok(())
                    })()
                }
                _ => {
                    d.feed(chunk);
                    (|| {
                        while let Some(f) = d.next_frame_slice()? {
                            frames.push(f.to_vec());
                        }
                        Ok(())
                    })()
                }
            };
            assert!(
                d.buffered() <= fed,
                "case {case}: holds {} of {fed} bytes",
                d.buffered()
            );
            assert!(
                d.allocated() <= 2 * fed + 64,
                "case {case}: {} allocated",
                d.allocated()
            );
            if let Err(e) = result {
                error = Some(e);
                break;
            }
        }
        assert_eq!(frames, want_frames, "case {case}: frames");
        match error {
            Some(e) => {
                errors += 1;
                assert_eq!(Err(e.clone()), want_end, "case {case}: error");
                // Sticky, whatever comes next.
                d.feed(b"\0\0\0\0");
                assert_eq!(d.next_frame(), Err(e.clone()), "case {case}");
                assert_eq!(
                    d.decode(b"\0\0\0\0", |_| panic!("frame after error")),
                    Err(e.clone())
                );
                assert_eq!((d.buffered(), d.finish()), (0, Err(e)), "case {case}");
            }
            None => {
                if want_end.is_err() {
                    truncations += 1;
                }
                assert_eq!(d.finish(), want_end, "case {case}: end of stream");
                assert_eq!(d.next_frame(), Ok(None), "case {case}");
            }
        }
    }
    // The generator must reach all three endings often.
    assert!(
        errors > 500 && truncations > 500,
        "{errors} errors, {truncations} truncations"
    );
}
