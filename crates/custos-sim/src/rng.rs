//! The one random-number front end of every generator: SplitMix64, and the
//! draws the simulations need on top of it.
//!
//! SplitMix64 is tiny, fast, and gives the same sequence on every machine,
//! so a seed names a history. Every draw is an inherent method, so a
//! generator needs no trait in scope, and [`Rng::stream`] derives
//! independent streams (one account, one attacker model, one scenario) from
//! a seed, so that streams do not shift each other when one of them draws
//! more or fewer numbers.
//!
//! The number of values each draw consumes is part of the contract: the
//! generated histories are compared byte for byte across changes, so a draw
//! must never take one more or one fewer number than it does now.

/// SplitMix64: tiny, fast, and the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent generator for one stream of a simulation (one account,
    /// one attacker model), so that streams do not shift each other when one
    /// of them draws more or fewer numbers.
    pub fn stream(seed: u64, family: u64, index: u64) -> Rng {
        let mut mixer = Rng::new(
            seed ^ family.wrapping_mul(0xA076_1D64_78BD_642F)
                ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB),
        );
        Rng::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Below `n` (modulo bias is negligible at the sizes used); 0 when `n`
    /// is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() <= p
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        // 1 - unit() is in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Poisson with the given mean (Knuth's method: the means used here are
    /// small).
    pub fn poisson(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 30.0 {
            // Normal approximation: exact tails do not matter at this size.
            return (mean + mean.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let limit = (-mean).exp();
        let mut product = self.unit();
        let mut count = 0;
        while product > limit {
            product *= self.unit();
            count += 1;
        }
        count
    }

    /// An index drawn with probability proportional to its weight; `None`
    /// only if no weight is positive.
    pub fn weighted(&mut self, weights: &[f64]) -> Option<usize> {
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        if total <= 0.0 {
            return None;
        }
        let mut target = self.unit() * total;
        let mut last = None;
        for (index, weight) in weights.iter().enumerate() {
            if *weight <= 0.0 {
                continue;
            }
            if target < *weight {
                return Some(index);
            }
            target -= weight;
            last = Some(index);
        }
        // Rounding can leave a sliver of `target`: it belongs to the last one.
        last
    }

    /// A uniformly chosen element; `None` only if the slice is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_have_the_intended_shape() {
        let mut rng = Rng::new(7);
        let n = 20_000;
        let mean_poisson = (0..n).map(|_| f64::from(rng.poisson(2.5))).sum::<f64>() / n as f64;
        assert!((mean_poisson - 2.5).abs() < 0.1, "{mean_poisson}");
        let mean_exp = (0..n).map(|_| rng.exponential(3.0)).sum::<f64>() / n as f64;
        assert!((mean_exp - 3.0).abs() < 0.15, "{mean_exp}");
        let normals: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = normals.iter().sum::<f64>() / n as f64;
        let var = normals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        let mut counts = [0u32; 3];
        for _ in 0..n {
            let index = rng.weighted(&[1.0, 0.0, 3.0]).expect("positive weights");
            counts[index] += 1;
        }
        assert_eq!(counts[1], 0);
        let share = f64::from(counts[2]) / n as f64;
        assert!((share - 0.75).abs() < 0.02, "{share}");
        assert_eq!(rng.weighted(&[0.0, -1.0]), None);
    }

    #[test]
    fn streams_differ_by_family_and_index() {
        let a = Rng::stream(1, 1, 0).next_u64();
        assert_ne!(a, Rng::stream(1, 1, 1).next_u64());
        assert_ne!(a, Rng::stream(1, 2, 0).next_u64());
        assert_ne!(a, Rng::stream(2, 1, 0).next_u64());
        assert_eq!(a, Rng::stream(1, 1, 0).next_u64());
    }
}
