//! Any input: the decoder returns a value or an error, never panics, and what it holds
//! stays proportional to the input; decoded messages re-encode and decode to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zrs::pickle::{loads_with_stats, Limits};
use zrs::protocol::Message;

fuzz_target!(|data: &[u8]| {
    let (_, s) = loads_with_stats(data, &Limits::default());
    let n = data.len();
    assert!(s.nodes <= n + 4 && s.peak_stack <= n && s.child_refs <= n);
    if let Ok(m) = Message::decode(data) {
        for p in 0..=5 {
            let again = Message::decode(&m.encode(p)).expect("our encoding decodes");
            assert_eq!(again.encode(p), m.encode(p));
        }
    }
});
