//! Seeded choices, so the same plan and seed make the same run: stateless SplitMix64
//! hashes of (seed, index) answer "is request `i` private?", "does storm `j` drop
//! listener `i`?" without replaying earlier draws (so every agent derives every other
//! agent's choices from the plan alone); Zipf popularity (rank 0 hottest, weight
//! `1 / (r + 1)^s`) picks tags, bookmarks to like, rooms and pages from a ChaCha8 stream
//! seeded from the plan.

use rand::Rng;

/// SplitMix64's output function: a well-mixed 64-bit hash of `z`.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits of `x` as a float in `[0, 1)`.
pub fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform draw in `[0, 1)` for `key` (a seed mixed with indices).
pub fn draw(key: u64) -> f64 {
    unit(splitmix64(key))
}

/// Σ 1/k for k in 1..=n: the normaliser of Zipf(1) weights.
pub fn harmonic(n: usize) -> f64 {
    (1..=n).map(|k| 1.0 / k as f64).sum()
}

/// Zipf(s) over `n` ranks, sampled by inverting the cumulative weights.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// Zipf(1) over `n` ranks (at least one).
    pub fn new(n: usize) -> Self {
        Self::with_exponent(n, 1.0)
    }

    pub fn with_exponent(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    pub fn ranks(&self) -> usize {
        self.cumulative.len()
    }

    /// A rank, drawn from `rng`.
    pub fn sample(&self, rng: &mut impl Rng) -> u32 {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let x = rng.random::<f64>() * total;
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len() - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn draws_are_uniform_enough_and_repeatable() {
        let below: usize = (0..10_000u64).filter(|&i| draw(42 ^ i.wrapping_mul(0x9E37_79B9)) < 0.25).count();
        assert!((2_200..2_800).contains(&below), "{below}");
        assert_eq!(draw(7), draw(7));
        assert!((0..1000).map(draw).all(|x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn rank_zero_is_drawn_most_and_every_rank_is_in_range() {
        let z = Zipf::new(10);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        assert!(counts[0] > 2 * counts[4] && counts[4] > 0, "{counts:?}");
        // Zipf(1) over 10: rank 0 has 1/H(10) ≈ 34 %.
        assert!((3_000..3_800).contains(&counts[0]), "{counts:?}");
        assert!((harmonic(4) - (1.0 + 0.5 + 1.0 / 3.0 + 0.25)).abs() < 1e-12);
    }
}
