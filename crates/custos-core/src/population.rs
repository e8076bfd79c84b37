//! Population statistics: how common each login trait value is across all
//! accounts, updated online with every successful login.
//!
//! Low-cardinality traits (ASN, country, city, browser, OS, device type) are
//! counted exactly in hash maps. High-cardinality ones (address, network
//! prefix, user agent, device id) go into a count-min sketch per trait: fixed
//! memory whatever the traffic, at the price of overestimating rare values a
//! little. For those traits the model hardly depends on the population
//! count: an unseen value's risk depends on the account's history length, and
//! a seen value's population probability is tiny either way.
//!
//! Counts only grow. The model uses ratios of counts, so a constant stream
//! needs no decay; a change of the population's habits is followed slowly.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::profile::{LoginTraits, TraitKind};

const SKETCH_DEPTH: usize = 3;
const SKETCH_WIDTH: usize = 1 << 15;

/// A count-min sketch with conservative update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CountMin {
    rows: Vec<Vec<u32>>,
}

impl CountMin {
    fn new() -> CountMin {
        CountMin {
            rows: vec![vec![0; SKETCH_WIDTH]; SKETCH_DEPTH],
        }
    }

    fn slot(key: u64, row: usize) -> usize {
        // Different odd multipliers per row give independent-enough indexes.
        const MULTIPLIERS: [u64; SKETCH_DEPTH] = [
            0x9E37_79B9_7F4A_7C15,
            0xC2B2_AE3D_27D4_EB4F,
            0x1656_67B1_9E37_79F9,
        ];
        ((key ^ (key >> 29)).wrapping_mul(MULTIPLIERS[row]) >> 49) as usize % SKETCH_WIDTH
    }

    fn estimate(&self, key: u64) -> u32 {
        (0..SKETCH_DEPTH)
            .map(|row| self.rows[row][Self::slot(key, row)])
            .min()
            .unwrap_or(0)
    }

    /// Adds one; returns the estimate before adding.
    fn increment(&mut self, key: u64) -> u32 {
        let before = self.estimate(key);
        for row in 0..SKETCH_DEPTH {
            let cell = &mut self.rows[row][Self::slot(key, row)];
            // Conservative update: only raise cells that hold the minimum.
            if *cell == before {
                *cell = cell.saturating_add(1);
            }
        }
        before
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Counter {
    Exact(HashMap<u64, u32>),
    Sketch(CountMin),
}

/// Counts of one trait across the population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TraitCounts {
    counter: Counter,
    /// Logins that carried a value of this trait.
    observed: u64,
    /// Distinct values seen (estimated for sketched traits).
    distinct: u64,
}

/// How common each trait value is across all accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Population {
    traits: Vec<TraitCounts>,
    /// Successful logins counted.
    logins: u64,
    /// Accounts with at least one successful login.
    accounts: u64,
}

impl Default for Population {
    fn default() -> Self {
        Population::new()
    }
}

fn sketched(kind: TraitKind) -> bool {
    matches!(
        kind,
        TraitKind::Ip | TraitKind::Network | TraitKind::UserAgent | TraitKind::Device
    )
}

impl Population {
    pub fn new() -> Population {
        Population {
            traits: TraitKind::ALL
                .iter()
                .map(|kind| TraitCounts {
                    counter: if sketched(*kind) {
                        Counter::Sketch(CountMin::new())
                    } else {
                        Counter::Exact(HashMap::new())
                    },
                    observed: 0,
                    distinct: 0,
                })
                .collect(),
            logins: 0,
            accounts: 0,
        }
    }

    pub fn logins(&self) -> u64 {
        self.logins
    }

    pub fn accounts(&self) -> u64 {
        self.accounts
    }

    /// Counts one successful login; `first_for_account` when the account had
    /// none before.
    pub fn record(&mut self, traits: &LoginTraits, first_for_account: bool) {
        self.logins += 1;
        if first_for_account {
            self.accounts += 1;
        }
        for kind in TraitKind::ALL {
            let Some(key) = traits.get(kind) else {
                continue;
            };
            let counts = &mut self.traits[kind as usize];
            counts.observed += 1;
            let before = match &mut counts.counter {
                Counter::Exact(map) => {
                    let count = map.entry(key).or_insert(0);
                    *count = count.saturating_add(1);
                    *count - 1
                }
                Counter::Sketch(sketch) => sketch.increment(key),
            };
            if before == 0 {
                counts.distinct += 1;
            }
        }
    }

    /// Logins with this value of the trait.
    pub fn count(&self, kind: TraitKind, key: u64) -> u32 {
        match &self.traits[kind as usize].counter {
            Counter::Exact(map) => map.get(&key).copied().unwrap_or(0),
            Counter::Sketch(sketch) => sketch.estimate(key),
        }
    }

    /// p(value) with add-one smoothing over the distinct values seen, so an
    /// unseen value gets the mass of one more sighting, never zero.
    pub fn probability(&self, kind: TraitKind, key: u64) -> f64 {
        let counts = &self.traits[kind as usize];
        let count = f64::from(self.count(kind, key));
        (count + 1.0) / (counts.observed as f64 + counts.distinct as f64 + 1.0)
    }

    /// Distinct values of a trait seen so far.
    pub fn distinct(&self, kind: TraitKind) -> u64 {
        self.traits[kind as usize].distinct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_values_are_more_probable_and_unseen_ones_are_not_zero() {
        let mut p = Population::new();
        for i in 0..1_000u64 {
            let country = if i % 10 == 0 { 2 } else { 1 };
            let t = LoginTraits::with(&[(TraitKind::Country, country), (TraitKind::Ip, i)]);
            p.record(&t, i < 100);
        }
        assert_eq!(p.logins(), 1_000);
        assert_eq!(p.accounts(), 100);
        assert_eq!(p.count(TraitKind::Country, 1), 900);
        assert!(p.probability(TraitKind::Country, 1) > 0.85);
        assert!(p.probability(TraitKind::Country, 2) < 0.15);
        let unseen = p.probability(TraitKind::Country, 3);
        assert!(unseen > 0.0 && unseen < 0.002);
        assert_eq!(p.distinct(TraitKind::Country), 2);
        // Sketched: 1,000 distinct addresses, each counted once.
        assert_eq!(p.count(TraitKind::Ip, 500), 1);
        assert!(p.distinct(TraitKind::Ip) >= 990);
    }
}
