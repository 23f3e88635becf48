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
        let mut rest = bytes;
        let mut i = 0;
        while !rest.is_empty() && self.network.connection.is_some() {
            let n = self.chunk_size(i).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            i += 1;
            self.hand_over(chunk)?;
        }
        Ok(())
    }

    /// Delivers what the primary node sends on the current link, up to `limit` bytes (all
    /// it sends, if `None`), cut as [`deliver`](Self::deliver) cuts, and taken from the link
    /// a chunk at a time: a secondary that drops the connection partway stops the primary's
    /// sending there, as a full socket buffer holds a real primary back (taking it all
    /// first had the primary encode and hash what was then dropped). Returns how many bytes
    /// were delivered.
    pub(super) fn deliver_from_link(&mut self, limit: Option<usize>) -> Result<usize, WorldError> {
        let mut delivered = 0;
        let mut i = 0;
        loop {
            let remaining = limit.map_or(usize::MAX, |l| l - delivered);
            if remaining == 0 || self.network.connection.is_none() || !self.link_ready() {
                return Ok(delivered);
            }
            let n = self.chunk_size(i).min(remaining);
            let chunk = self.take(Some(n));
            delivered += chunk.len();
            i += 1;
            self.hand_over(&chunk)?;
        }
    }

    /// The size of a delivery's `i`-th chunk (`usize::MAX`: all that is left).
    fn chunk_size(&mut self, i: usize) -> usize {
        match self.chunk_rng.as_mut() {
            Some(rng) => random_chunk(rng),
            None => self.chunking.size(i).unwrap_or(usize::MAX),
        }
    }

    /// The current secondary receives one chunk.
    fn hand_over(&mut self, chunk: &[u8]) -> Result<(), WorldError> {
        let generation = self.current()?;
        self.observe(generation, crate::coverage::Input::Data);
        self.secondaries[generation].data_received(chunk);
        self.dispatch(generation);
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
