//! Model tests: the phoenix.js client model of `client_model.rs` against the tracker,
//! over seeded random histories (the fuzz target `presence_merge` drives the same
//! checks from its input).

use super::client_model::{Choices, check_associative, check_convergence, check_rejoin};

/// Deterministic pseudo-random numbers (splitmix64), so a failing seed reproduces.
struct Rng(u64);

impl Choices for Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn client_model_converges_to_the_tracker_state() {
    for seed in 0..300 {
        check_convergence(&mut Rng(seed), 80).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn client_model_converges_with_diffs_before_the_state_and_on_rejoin() {
    for seed in 1000..1300 {
        check_rejoin(&mut Rng(seed), 80).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn merge_is_associative_on_tracker_histories() {
    for seed in 2000..2100 {
        check_associative(&mut Rng(seed), 40).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}
