//! Evaluation data: synthetic worlds with known ground truth, to measure how
//! well Custos's models separate attackers from the people they attack.
//!
//! Unlike [`crate::synth`], which only has to be fast and shaped like real
//! traffic, the generators here have to be *plausible*: a model evaluated on
//! them is only as credible as the behaviour they simulate. Every choice that
//! shapes the difficulty of the task (how often people change networks, buy
//! devices, travel) is stated in the module docs of the generator.
//!
//! - [`logins`]: seller login histories with three attacker models, for the
//!   login-risk model. Built on [`world`] (countries, cities, ISPs and their
//!   address pools) and [`clients`] (devices and their user agents).
//!
//! Everything is deterministic for a given seed: the same configuration
//! gives byte-for-byte the same events on every machine, so an evaluation
//! result can be reproduced and compared across model changes.

pub(crate) mod clients;
pub(crate) mod logins;
pub(crate) mod market;
pub(crate) mod scenarios;
pub(crate) mod world;

use crate::synth::Rng;

/// Draws from the distributions the simulations need, on top of the
/// project's deterministic SplitMix64 generator.
pub(crate) trait Draw {
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64;
    /// Uniform in `[low, high)`.
    fn uniform(&mut self, low: f64, high: f64) -> f64;
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64;
    /// Exponential with the given mean.
    fn exponential(&mut self, mean: f64) -> f64;
    /// Poisson with the given mean (Knuth's method: the means used here are
    /// small).
    fn poisson(&mut self, mean: f64) -> u32;
    /// An index drawn with probability proportional to its weight; `None`
    /// only if no weight is positive.
    fn weighted(&mut self, weights: &[f64]) -> Option<usize>;
    /// A uniformly chosen element; `None` only if the slice is empty.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T>;
}

impl Draw for Rng {
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    fn normal(&mut self) -> f64 {
        // 1 - unit() is in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.unit()).cos()
    }

    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    fn poisson(&mut self, mean: f64) -> u32 {
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

    fn weighted(&mut self, weights: &[f64]) -> Option<usize> {
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

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

/// An independent generator for one stream of a simulation (one account,
/// one attacker model), so that streams do not shift each other when one of
/// them draws more or fewer numbers.
pub(crate) fn stream(seed: u64, family: u64, index: u64) -> Rng {
    let mut mixer = Rng::new(
        seed ^ family.wrapping_mul(0xA076_1D64_78BD_642F)
            ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB),
    );
    Rng::new(mixer.next_u64())
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
        let a = stream(1, 1, 0).next_u64();
        assert_ne!(a, stream(1, 1, 1).next_u64());
        assert_ne!(a, stream(1, 2, 0).next_u64());
        assert_ne!(a, stream(2, 1, 0).next_u64());
        assert_eq!(a, stream(1, 1, 0).next_u64());
    }
}
