//! Sliding-window counters and sums with bounded memory.
//!
//! A [`Window`] splits its span into `N` equal buckets of event time and
//! keeps one running total per bucket. Adding a value or reading the total
//! first retires the buckets that fell out of the span, so both are O(1)
//! amortised (at most `N` buckets are cleared per call, and only when time
//! has moved on by that much). The total is exact at bucket granularity: a
//! value counts until its whole bucket has left the window, so a 10-minute
//! window of 10 buckets may still include a value up to one minute older than
//! ten minutes.
//!
//! Time is event time in whole seconds, never the clock, so replaying a log
//! gives the same totals. Values that arrive late, older than the newest
//! bucket, are added to their own bucket if it is still in the window and
//! dropped if it is not.

use serde::{Deserialize, Serialize};

/// A sum over the last `span_secs` seconds, in `N` buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window<const N: usize> {
    bucket_secs: u32,
    /// Index (time / bucket_secs) of the newest bucket written.
    newest: i64,
    #[serde(with = "serde_arrays")]
    buckets: [u64; N],
}

impl<const N: usize> Window<N> {
    /// A window over `span_secs` seconds (rounded up to whole buckets).
    pub fn new(span_secs: u32) -> Self {
        assert!(N > 0, "a window needs at least one bucket");
        let bucket_secs = span_secs.div_ceil(N as u32).max(1);
        Window {
            bucket_secs,
            newest: i64::MIN,
            buckets: [0; N],
        }
    }

    pub fn span_secs(&self) -> u64 {
        u64::from(self.bucket_secs) * N as u64
    }

    fn bucket_of(&self, at: i64) -> i64 {
        at.div_euclid(i64::from(self.bucket_secs))
    }

    /// Moves the window forward so that `bucket` is its newest.
    fn advance(&mut self, bucket: i64) {
        if self.newest == i64::MIN || bucket - self.newest >= N as i64 {
            self.buckets = [0; N];
        } else {
            for b in (self.newest + 1)..=bucket {
                self.buckets[b.rem_euclid(N as i64) as usize] = 0;
            }
        }
        self.newest = bucket;
    }

    /// Adds `value` at event time `at` (seconds).
    pub fn add(&mut self, at: i64, value: u64) {
        let bucket = self.bucket_of(at);
        if self.newest == i64::MIN || bucket > self.newest {
            self.advance(bucket);
        } else if self.newest - bucket >= N as i64 {
            return; // older than the whole window
        }
        let slot = &mut self.buckets[bucket.rem_euclid(N as i64) as usize];
        *slot = slot.saturating_add(value);
    }

    /// The total of the window ending at event time `at`.
    pub fn total(&self, at: i64) -> u64 {
        if self.newest == i64::MIN {
            return 0;
        }
        let now = self.bucket_of(at).max(self.newest);
        let oldest_kept = now - (N as i64 - 1);
        (oldest_kept..=self.newest)
            .map(|b| self.buckets[b.rem_euclid(N as i64) as usize])
            .fold(0u64, u64::saturating_add)
    }

    /// Whether nothing in the window is left at event time `at`.
    pub fn is_empty_at(&self, at: i64) -> bool {
        self.total(at) == 0
    }
}

/// serde for fixed-size arrays of any length (serde derives only up to 32).
mod serde_arrays {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(
        values: &[u64; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        values.as_slice().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u64; N], D::Error> {
        let values = Vec::<u64>::deserialize(deserializer)?;
        let len = values.len();
        values
            .try_into()
            .map_err(|_| D::Error::custom(format!("expected {N} buckets, found {len}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_span_and_forgets_after_it() {
        let mut w = Window::<10>::new(600); // 10 minutes, 1-minute buckets
        w.add(1_000, 1); // bucket [960, 1020)
        w.add(1_030, 2); // bucket [1020, 1080)
        w.add(1_200, 4); // bucket [1200, 1260)
        assert_eq!(w.total(1_200), 7);
        assert_eq!(w.total(1_559), 7, "ten buckets back from [1500, 1560)");
        assert_eq!(w.total(1_560), 6, "the bucket holding t=1000 has left");
        assert_eq!(w.total(1_620), 4);
        assert_eq!(w.total(1_800), 0);
        assert!(w.is_empty_at(5_000));
    }

    #[test]
    fn late_values_land_in_their_bucket_or_are_dropped() {
        let mut w = Window::<4>::new(40);
        w.add(100, 1);
        w.add(85, 1); // late, still inside
        assert_eq!(w.total(100), 2);
        w.add(10, 1); // older than the window
        assert_eq!(w.total(100), 2);
    }

    #[test]
    fn a_long_gap_clears_everything_in_one_step() {
        let mut w = Window::<60>::new(3_600);
        for t in 0..100 {
            w.add(t * 30, 1);
        }
        assert!(w.total(2_970) > 0);
        w.add(10_000_000, 5);
        assert_eq!(w.total(10_000_000), 5);
    }

    #[test]
    fn survives_a_serde_round_trip() {
        let mut w = Window::<48>::new(86_400);
        w.add(1_526_000_000, 3);
        let json = serde_json::to_string(&w).unwrap();
        let back: Window<48> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, w);
        assert!(serde_json::from_str::<Window<4>>(&json).is_err());
    }

    proptest::proptest! {
        /// The window agrees with a brute-force sum over the same buckets.
        #[test]
        fn matches_a_brute_force_sum(mut adds in proptest::collection::vec((0i64..5_000, 1u64..10), 1..200)) {
            adds.sort_by_key(|(t, _)| *t);
            let mut w = Window::<8>::new(800); // 100-second buckets
            for (t, v) in &adds {
                w.add(*t, *v);
            }
            let now = adds.last().map(|(t, _)| *t).unwrap_or(0);
            let newest = now.div_euclid(100);
            let expected: u64 = adds
                .iter()
                .filter(|(t, _)| newest - t.div_euclid(100) < 8)
                .map(|(_, v)| v)
                .sum();
            proptest::prop_assert_eq!(w.total(now), expected);
        }
    }
}
