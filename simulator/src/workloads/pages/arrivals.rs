//! Where each page reader goes: reader `k` reads hot path `path(k)`, drawn Zipf over the
//! paths from the run's own seed (so a run repeats, and another agent's readers differ),
//! and is the `local(k)`-th reader of that path. Listeners number the readers of their
//! page densely by `local`, so what each one saw stays a handful of ranges.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::plan::seeded::Zipf;

/// Mixed into the seed so the paths are not the same draws as another workload's.
const SALT: u64 = 0x7061_6765_7061_7468;

/// Every reader's path and place among its path's readers.
#[derive(Debug, Clone, Default)]
pub struct Arrivals {
    path: Vec<u8>,
    local: Vec<u32>,
    /// Per path, its readers in arrival order.
    by_path: Vec<Vec<u32>>,
}

impl Arrivals {
    /// `readers` readers over `paths` hot paths (at most 256), drawn from `seed`.
    pub fn new(readers: u64, paths: usize, seed: u64) -> Self {
        let paths = paths.clamp(1, 256);
        let zipf = Zipf::new(paths);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SALT);
        let n = usize::try_from(readers).unwrap_or(usize::MAX);
        let (mut path, mut local) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut by_path: Vec<Vec<u32>> = vec![Vec::new(); paths];
        for k in 0..readers {
            let p = zipf.sample(&mut rng) as usize;
            local.push(by_path[p].len() as u32);
            by_path[p].push(u32::try_from(k).unwrap_or(u32::MAX));
            path.push(p as u8);
        }
        Self { path, local, by_path }
    }

    /// Readers in the run.
    pub fn len(&self) -> u64 {
        self.path.len() as u64
    }

    /// The path reader `k` reads.
    pub fn path(&self, k: u64) -> usize {
        self.path.get(k as usize).map_or(0, |&p| usize::from(p))
    }

    /// Reader `k`'s place among its path's readers.
    pub fn local(&self, k: u64) -> u64 {
        self.local.get(k as usize).map_or(0, |&j| u64::from(j))
    }

    /// The readers of `path`, in arrival order.
    pub fn on(&self, path: usize) -> &[u32] {
        self.by_path.get(path).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_go_to_zipf_hot_paths_repeatably_and_are_numbered_densely_per_path() {
        let a = Arrivals::new(4000, 4, 7);
        let b = Arrivals::new(4000, 4, 7);
        assert_eq!(a.path, b.path, "same seed, same paths");
        assert_ne!(a.path, Arrivals::new(4000, 4, 8).path, "another seed (agent), other paths");
        let counts: Vec<usize> = (0..4).map(|p| a.on(p).len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 4000);
        // Zipf(1) over 4: 48 %, 24 %, 16 %, 12 %.
        assert!(counts[0] > counts[1] && counts[1] > counts[2] && counts[2] > counts[3], "{counts:?}");
        assert!((1750..2100).contains(&counts[0]), "{counts:?}");
        for p in 0..4 {
            for (j, &k) in a.on(p).iter().enumerate() {
                assert_eq!(a.path(u64::from(k)), p);
                assert_eq!(a.local(u64::from(k)), j as u64);
            }
        }
        assert_eq!(Arrivals::new(0, 4, 1).len(), 0);
    }
}
