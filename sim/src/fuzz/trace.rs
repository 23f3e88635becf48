//! A run's trace hash: FNV-1a (64 bit) over everything the run printed — each step's
//! text and output — and a digest of the state after each step. Fixed and portable (not
//! Rust's randomly keyed hasher), so two executions of a run can be compared, and a
//! campaign's digest is the same on every machine.

use std::fmt;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// An FNV-1a hasher; text can be written into it with `write!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace(u64);

impl Default for Trace {
    fn default() -> Trace {
        Trace(OFFSET)
    }
}

impl Trace {
    pub fn new() -> Trace {
        Trace::default()
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
        self.0 = h;
    }

    pub fn u64(&mut self, n: u64) {
        self.bytes(&n.to_le_bytes());
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl fmt::Write for Trace {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// A run's share of the campaign digest: the run's index and hash, mixed. Shares add up
/// (wrapping), so the digest does not depend on the order runs finish in, and shard
/// digests add up to the whole campaign's.
pub fn digest_share(index: u64, hash: u64) -> u64 {
    let mut t = Trace::new();
    t.u64(index);
    t.u64(hash);
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn fnv1a_known_values() {
        // Published FNV-1a 64 test vectors.
        let mut t = Trace::new();
        assert_eq!(t.finish(), 0xcbf29ce484222325);
        t.bytes(b"a");
        assert_eq!(t.finish(), 0xaf63dc4c8601ec8c);
        let mut t = Trace::new();
        write!(t, "foobar").unwrap();
        assert_eq!(t.finish(), 0x85944171f73967e8);
    }

    #[test]
    fn shares_depend_on_index_and_hash() {
        assert_ne!(digest_share(0, 1), digest_share(1, 1));
        assert_ne!(digest_share(0, 1), digest_share(0, 2));
    }
}
