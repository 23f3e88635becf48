//! Delivery on the secondary's connection: bytes cut as the chunking says, stopping where
//! the secondary drops the connection.

use crate::network::Chunking;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use rand::Rng;

use super::{World, WorldError};

impl World {
    /// Delivers bytes on the connection as the current chunking cuts them; stops when the
    /// secondary drops the connection (the rest is lost, as on a real socket).
    pub fn deliver(&mut self, bytes: &[u8]) -> Result<(), WorldError> {
        if self.network.connection.is_none() {
            return Err(WorldError::NotConnected);
        }
        let generation = self.current()?;
        if self.chunk_rng.is_some() {
            let mut rest = bytes;
            while !rest.is_empty() && self.network.connection.is_some() {
                let rng = self.chunk_rng.as_mut().expect("checked above");
                let n = random_chunk(rng).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                self.observe(generation, crate::coverage::Input::Data);
                self.secondaries[generation].data_received(chunk);
                self.dispatch(generation);
            }
            return Ok(());
        }
        let chunking = self.chunking.clone();
        for chunk in chunking.split(bytes) {
            if self.network.connection.is_none() {
                break;
            }
            self.observe(generation, crate::coverage::Input::Data);
            self.secondaries[generation].data_received(chunk);
            self.dispatch(generation);
        }
        Ok(())
    }

    /// Sets how deliveries are cut.
    pub fn set_chunking(&mut self, chunking: Chunking) {
        self.chunk_rng = match chunking {
            Chunking::Random(seed) => Some(ChaCha8Rng::seed_from_u64(seed)),
            _ => None,
        };
        self.chunking = chunking;
    }
}

/// A chunk size for `chunking random`: often tiny (inside a header), often a few hundred
/// bytes, sometimes tens of KiB.
pub fn random_chunk(rng: &mut ChaCha8Rng) -> usize {
    match rng.gen_range(0..10) {
        0..=2 => rng.gen_range(1..=16),
        3..=6 => rng.gen_range(17..=1024),
        _ => rng.gen_range(1025..=65536),
    }
}
