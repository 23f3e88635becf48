//! A run's random stream: ChaCha8 seeded with the campaign's seed, on the stream numbered
//! by the run's index — so run `i` is the same whatever the number of jobs, the shard, or
//! the runs before it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The stream run `index` of campaign `seed` draws everything from.
pub fn run_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn runs_are_independent_streams_of_one_seed() {
        let a: Vec<u64> = (0..4).map(|_| run_rng(1, 0).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same run, same stream");
        assert_ne!(run_rng(1, 0).next_u64(), run_rng(1, 1).next_u64());
        assert_ne!(run_rng(1, 0).next_u64(), run_rng(2, 0).next_u64());
    }
}
