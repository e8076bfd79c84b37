//! Population statistics: how common each login trait value is across all
//! accounts, updated online with every successful login.
//!
//! Low-cardinality traits (ASN, country, city, browser, OS, device type) are
//! counted exactly in hash maps. High-cardinality ones (address, network
//! prefix, user agent, device id) go into a count-min sketch per trait: fixed
//! memory whatever the traffic (512 KiB per trait), at the price of
//! overestimating rare values a little. For those traits the model hardly depends on the population
//! count: an unseen value's risk depends on the account's history length, and
//! a seen value's population probability is tiny either way.
//!
//! Counts only grow. The model uses ratios of counts, so a constant stream
//! needs no decay; a change of the population's habits is followed slowly.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::profile::{LoginTraits, TraitKind};

/// Counters per cache line (64 bytes of `u32`).
const BLOCK: usize = 16;
/// Cache-line blocks per sketch: 8,192 × 64 bytes = 512 KiB per trait.
const SKETCH_BLOCKS: usize = 1 << 13;
/// Counters a key updates, all within its one block.
const SKETCH_DEPTH: usize = 3;

/// A blocked count-min sketch with conservative update: a key's counters all
/// lie in one 64-byte block, so a lookup costs one cache miss, not three.
/// (Blocking makes collisions within a block correlated; at the sizes used
/// here the overestimate stays a few counts.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CountMin {
    counters: Vec<u32>,
}

impl CountMin {
    fn new() -> CountMin {
        CountMin {
            counters: vec![0; SKETCH_BLOCKS * BLOCK],
        }
    }

    /// The key's counter indexes: one block, three distinct slots in it.
    fn slots(key: u64) -> [usize; SKETCH_DEPTH] {
        let h = (key ^ (key >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let block = (h >> 51) as usize % SKETCH_BLOCKS * BLOCK;
        let a = (h & 0xF) as usize;
        let b = (a + 1 + ((h >> 4) as usize % (BLOCK - 1))) % BLOCK;
        let mut c = (h >> 8) as usize % BLOCK;
        while c == a || c == b {
            c = (c + 1) % BLOCK;
        }
        [block + a, block + b, block + c]
    }

    fn estimate(&self, key: u64) -> u32 {
        Self::slots(key)
            .iter()
            .map(|i| self.counters[*i])
            .min()
            .unwrap_or(0)
    }

    /// Adds one; returns the estimate before adding.
    fn increment(&mut self, key: u64) -> u32 {
        let slots = Self::slots(key);
        let before = slots.iter().map(|i| self.counters[*i]).min().unwrap_or(0);
        for i in slots {
            // Conservative update: only raise counters that hold the minimum.
            if self.counters[i] == before {
                self.counters[i] = before.saturating_add(1);
            }
        }
        before
    }
}

type ExactCounts = HashMap<u64, u32, foldhash::fast::RandomState>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Counter {
    Exact(#[serde(with = "sorted")] ExactCounts),
    Sketch(CountMin),
}

/// Exact counts are written sorted by key, so that equal statistics give
/// equal snapshot bytes whatever the hash map's seed.
mod sorted {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ExactCounts;

    pub fn serialize<S: Serializer>(map: &ExactCounts, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(u64, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        entries.sort_unstable();
        entries.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<ExactCounts, D::Error> {
        Ok(Vec::<(u64, u32)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
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
                        Counter::Exact(ExactCounts::default())
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
