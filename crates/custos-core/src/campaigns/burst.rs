//! The burst detector: destination changes per institution and per
//! institution type, against what is normal for each.
//!
//! Mules rotate, but they sit at the few institutions that opened them, so
//! every payout-destination change is counted in UTC-day buckets and the
//! trailing window is tested against a Poisson law around an EWMA baseline
//! (the rules and the calibration are in the module docs of
//! [`super`]). Each institution has a [`RateTracker`] of its own; the
//! trackers are private to this file, and the detector reaches them only
//! through [`BurstDetector`]: it counts a change, and it is told which risky
//! changers to link when an institution bursts. The arithmetic is done in
//! log space ([`poisson_tail_score`]) so that the tiny tails of a real
//! attack neither underflow nor round to zero.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use super::graph::burst_key;
use super::snapshot::f64_bits;
use super::{CampaignConfig, DAY, SensitiveChange};
use crate::event::{Destination, InstitutionType};

/// Risky changes toward one institution remembered for burst linking.
const MAX_RECENT_RISKY: usize = 64;
/// Institutions with no change for this long may be forgotten when the
/// tracker table is full.
const INSTITUTION_FORGET_DAYS: i64 = 365;

/// Destination changes toward an institution (or a type) in the window,
/// against what is normal for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Burst {
    /// Changes in the window.
    pub observed: u32,
    /// Of those, risky ones.
    pub risky: u32,
    /// Changes expected in the window.
    pub expected: f64,
    /// `-log10 P(X ≥ observed)` under Poisson(expected); 0 when observed is
    /// not above expected.
    pub score: f64,
    pub bursting: bool,
}

/// Changes counted on one day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct DayCount {
    day: i64,
    count: u32,
    risky: u32,
    /// In the window of a burst: kept out of the baseline.
    excluded: bool,
}

/// A risky destination change toward an institution, for burst linking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RecentRisky {
    at: i64,
    account_id: String,
}

/// Destination changes toward an institution per day of the window, and
/// the daily rate its baseline expects: what a chart of a burst shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurstDays {
    /// Every day of the window ending on the newest day counted, oldest
    /// first, as (day number since the epoch, changes, risky changes).
    pub days: Vec<(i64, u32, u32)>,
    /// The baseline's daily rate (never below the configured floor).
    pub baseline_daily: f64,
    pub burst: Burst,
}

/// Daily counts of destination changes toward one institution or type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RateTracker {
    /// Newest day counted.
    day: i64,
    /// The first day of history (the detector's first day).
    history_from: i64,
    /// Days up to this one are in the baseline (or were left out).
    folded_through: i64,
    /// Days in the window with changes, oldest first.
    days: VecDeque<DayCount>,
    /// Baseline daily rate. Stored as bits: JSON floats may not round-trip.
    #[serde(with = "f64_bits")]
    mean: f64,
    /// Days of history behind `mean` (prior included), up to the memory.
    #[serde(with = "f64_bits")]
    weight: f64,
    bursting: bool,
    /// Last day found bursting, and the first day of that burst episode.
    last_burst_day: Option<i64>,
    episode_start: i64,
    /// The burst node key of the current episode.
    burst_key: Option<u64>,
    recent_risky: VecDeque<RecentRisky>,
    total: u64,
}

impl RateTracker {
    /// A tracker whose history starts on `history_from`: the detector's
    /// first day, not the institution's first change. Days with no change
    /// toward an institution are evidence that it is quiet.
    fn new(history_from: i64, config: &CampaignConfig) -> RateTracker {
        let day = history_from;
        RateTracker {
            day,
            history_from: day,
            folded_through: day - 1,
            days: VecDeque::new(),
            mean: config.prior_daily_rate,
            weight: config.prior_days,
            bursting: false,
            last_burst_day: None,
            episode_start: day,
            burst_key: None,
            recent_risky: VecDeque::new(),
            total: 0,
        }
    }

    /// Counts one change on `day`; false if that day has left the window.
    fn count(&mut self, day: i64, risky: bool, config: &CampaignConfig) -> bool {
        if day > self.day {
            self.advance(day, config);
        }
        if day <= self.day - config.window() {
            return false;
        }
        let i = match self.days.binary_search_by_key(&day, |d| d.day) {
            Ok(i) => i,
            Err(i) => {
                self.days.insert(
                    i,
                    DayCount {
                        day,
                        count: 0,
                        risky: 0,
                        excluded: false,
                    },
                );
                i
            }
        };
        let counted = &mut self.days[i];
        counted.count = counted.count.saturating_add(1);
        counted.risky = counted.risky.saturating_add(u32::from(risky));
        self.total = self.total.saturating_add(1);
        true
    }

    /// Moves the newest day to `day`, folding days that left the window.
    fn advance(&mut self, day: i64, config: &CampaignConfig) {
        let cutoff = day - config.window();
        while let Some(front) = self.days.front().copied() {
            if front.day > cutoff {
                break;
            }
            self.days.pop_front();
            // A day before history began (counted out of order) is dropped.
            if front.day > self.folded_through {
                self.fold_zeros(front.day - self.folded_through - 1, config);
                if !front.excluded {
                    self.fold_value(f64::from(front.count), config);
                }
                self.folded_through = front.day;
            }
        }
        if cutoff > self.folded_through {
            self.fold_zeros(cutoff - self.folded_through, config);
            self.folded_through = cutoff;
        }
        self.day = day;
        let window = config.window();
        self.recent_risky
            .retain(|r| r.at.div_euclid(DAY) > day - window);
    }

    fn fold_value(&mut self, value: f64, config: &CampaignConfig) {
        let memory = f64::from(config.baseline_days);
        self.weight = (self.weight + 1.0).min(memory);
        self.mean += (value - self.mean) / self.weight;
    }

    /// Folds `days` days without changes, in closed form once the running
    /// mean has become an exponential one (gaps may be years long).
    fn fold_zeros(&mut self, mut days: i64, config: &CampaignConfig) {
        let memory = f64::from(config.baseline_days);
        while days > 0 && self.weight < memory {
            self.fold_value(0.0, config);
            days -= 1;
        }
        if days > 0 {
            let keep = 1.0 - 1.0 / memory;
            self.mean *= keep.powf(days as f64);
        }
    }

    fn evaluate(&self, day: i64, config: &CampaignConfig) -> Burst {
        let window = config.window();
        let (observed, risky) = self
            .days
            .iter()
            .filter(|d| d.day > day - window && d.day <= day)
            .fold((0u32, 0u32), |(all, risky), d| {
                (all.saturating_add(d.count), risky.saturating_add(d.risky))
            });
        let history = self.folded_through.saturating_sub(self.history_from) + 1;
        let warm = history >= i64::from(config.warmup_days);
        burst_of(observed, risky, self.mean, warm, config)
    }

    /// Records that the tracker is bursting on `day`: the days in the window
    /// stay out of the baseline. True when a new burst episode begins.
    fn mark_bursting(&mut self, day: i64, config: &CampaignConfig) -> bool {
        let window = config.window();
        let new_episode =
            !self.bursting && self.last_burst_day.is_none_or(|last| day - last > window);
        if new_episode {
            self.episode_start = day - window + 1;
        }
        self.bursting = true;
        self.last_burst_day = Some(day);
        let limit = i64::from(config.max_excluded_burst_days);
        for d in self.days.iter_mut() {
            if d.day > day - window && d.day - self.episode_start < limit {
                d.excluded = true;
            }
        }
        new_episode
    }
}

/// The burst statistics of `observed` changes (`risky` of them risky)
/// against a daily rate.
/// Before warm-up nothing bursts.
fn burst_of(
    observed: u32,
    risky: u32,
    daily_rate: f64,
    warm: bool,
    config: &CampaignConfig,
) -> Burst {
    let expected = daily_rate.max(config.min_daily_rate) * config.window() as f64;
    let score = poisson_tail_score(observed, expected);
    let bursting = warm
        && observed >= config.min_burst_count
        && risky >= config.min_risky_in_burst
        && score >= -config.burst_p_value.log10()
        && f64::from(observed) >= config.min_burst_ratio * expected;
    Burst {
        observed,
        risky,
        expected,
        score,
        bursting,
    }
}

/// `-log10 P(X ≥ k)` for X ~ Poisson(lambda), computed in log space so tiny
/// tails do not underflow; 0 when `k` is not above `lambda` (the tail is
/// then about one half or more, never evidence).
pub(super) fn poisson_tail_score(k: u32, lambda: f64) -> f64 {
    if k == 0 || lambda.is_nan() || lambda <= 0.0 || f64::from(k) <= lambda {
        return 0.0;
    }
    let k_f = f64::from(k);
    let log_first = -lambda + k_f * lambda.ln() - ln_factorial(k);
    // Sum of P(X = i) / P(X = k) for i ≥ k: terms shrink by lambda / i.
    let mut sum = 1.0;
    let mut term = 1.0;
    let mut i = k_f;
    let mut converged = false;
    for _ in 0..100_000 {
        i += 1.0;
        term *= lambda / i;
        sum += term;
        if term < sum * 1e-16 {
            converged = true;
            break;
        }
    }
    if !converged {
        // The rest is below a geometric series with the current ratio.
        let ratio = lambda / (i + 1.0);
        sum += term * ratio / (1.0 - ratio);
    }
    let log_p = log_first + sum.ln();
    (-log_p / std::f64::consts::LN_10).max(0.0)
}

/// `ln(n!)`: exact sum for small `n`, Stirling's series beyond (error far
/// below 1e-10 there).
fn ln_factorial(n: u32) -> f64 {
    if n < 32 {
        return (2..=n).map(|i| f64::from(i).ln()).sum();
    }
    let n = f64::from(n);
    n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
        - 1.0 / (360.0 * n * n * n)
}

fn type_index(kind: InstitutionType) -> usize {
    match kind {
        InstitutionType::Bank => 0,
        InstitutionType::EMoney => 1,
        InstitutionType::Prepaid => 2,
        InstitutionType::Other => 3,
    }
}

const TYPES: [InstitutionType; 4] = [
    InstitutionType::Bank,
    InstitutionType::EMoney,
    InstitutionType::Prepaid,
    InstitutionType::Other,
];

/// The rate trackers of every institution and institution type.
#[derive(Debug, Clone, Default)]
pub(super) struct BurstDetector {
    institutions: HashMap<String, RateTracker, RandomState>,
    types: [Option<RateTracker>; 4],
    /// The first day a destination change was counted.
    first_day: Option<i64>,
}

/// What a snapshot keeps of the burst detector, in a deterministic order.
pub(super) struct BurstState {
    pub(super) first_day: Option<i64>,
    /// Sorted by institution id.
    pub(super) institutions: Vec<(String, RateTracker)>,
    /// In the order of [`InstitutionType`]'s variants.
    pub(super) institution_types: Vec<(InstitutionType, RateTracker)>,
}

impl BurstDetector {
    /// Counts a destination change toward its institution. When it is
    /// bursting, returns the burst node key, the risky changers in the
    /// window to link to it, the burst, and whether it just began.
    pub(super) fn count_institution(
        &mut self,
        destination: &Destination,
        change: &SensitiveChange<'_>,
        now: i64,
        config: &CampaignConfig,
    ) -> Option<(u64, Vec<String>, Burst, bool)> {
        let institution = destination.institution_id.as_str();
        let day = change.at.div_euclid(DAY);
        let history_from = self.history_from(day);
        if !self.institutions.contains_key(institution) {
            if self.institutions.len() >= config.max_institutions {
                let horizon = now.div_euclid(DAY) - INSTITUTION_FORGET_DAYS;
                self.institutions.retain(|_, t| t.day >= horizon);
                if self.institutions.len() >= config.max_institutions {
                    return None;
                }
            }
            self.institutions.insert(
                institution.to_string(),
                RateTracker::new(history_from, config),
            );
        }
        let tracker = self.institutions.get_mut(institution)?;
        if !tracker.count(day, change.risky, config) {
            return None;
        }
        if change.risky {
            if tracker.recent_risky.len() >= MAX_RECENT_RISKY {
                tracker.recent_risky.pop_front();
            }
            tracker.recent_risky.push_back(RecentRisky {
                at: change.at,
                account_id: change.account_id.to_string(),
            });
        }
        let burst = tracker.evaluate(tracker.day, config);
        if !burst.bursting {
            tracker.bursting = false;
            return None;
        }
        let today = tracker.day;
        let started = !tracker.bursting;
        if tracker.mark_bursting(today, config) || tracker.burst_key.is_none() {
            tracker.burst_key = Some(burst_key(institution, today));
        }
        let key = tracker.burst_key?;
        let window = config.window();
        let accounts = tracker
            .recent_risky
            .iter()
            .filter(|r| r.at.div_euclid(DAY) > today - window)
            .map(|r| r.account_id.clone())
            .collect();
        Some((key, accounts, burst, started))
    }

    /// The day burst history starts: the first day a destination change was
    /// counted.
    fn history_from(&mut self, day: i64) -> i64 {
        *self.first_day.get_or_insert(day)
    }

    pub(super) fn count_type(
        &mut self,
        kind: InstitutionType,
        at: i64,
        risky: bool,
        config: &CampaignConfig,
    ) {
        let day = at.div_euclid(DAY);
        let history_from = self.history_from(day);
        let tracker = self.types[type_index(kind)]
            .get_or_insert_with(|| RateTracker::new(history_from, config));
        if !tracker.count(day, risky, config) {
            return;
        }
        let today = tracker.day;
        if tracker.evaluate(today, config).bursting {
            tracker.mark_bursting(today, config);
        } else {
            tracker.bursting = false;
        }
    }

    /// Destination changes toward the institution in the window ending on
    /// `at`'s day (or on the newest day counted, if later), against its
    /// baseline as of its last change.
    pub(super) fn institution_burst(
        &self,
        institution_id: &str,
        at: i64,
        config: &CampaignConfig,
    ) -> Burst {
        match self.institutions.get(institution_id) {
            Some(tracker) => tracker.evaluate(at.div_euclid(DAY).max(tracker.day), config),
            None => burst_of(0, 0, config.prior_daily_rate, false, config),
        }
    }

    /// The same for all institutions of a type.
    pub(super) fn institution_type_burst(
        &self,
        kind: InstitutionType,
        at: i64,
        config: &CampaignConfig,
    ) -> Burst {
        match &self.types[type_index(kind)] {
            Some(tracker) => tracker.evaluate(at.div_euclid(DAY).max(tracker.day), config),
            None => burst_of(0, 0, config.prior_daily_rate, false, config),
        }
    }

    /// The graph key of the institution's latest burst episode (what
    /// its bursts linked accounts to), if it ever burst.
    pub(super) fn latest_burst_key(&self, institution_id: &str) -> Option<u64> {
        self.institutions.get(institution_id)?.burst_key
    }

    /// The days of the window ending on the institution's newest day
    /// counted; `None` for an institution never counted.
    pub(super) fn institution_days(
        &self,
        institution_id: &str,
        config: &CampaignConfig,
    ) -> Option<BurstDays> {
        let tracker = self.institutions.get(institution_id)?;
        let last = tracker.day;
        let window = config.window();
        let days = (last - window + 1..=last)
            .map(|day| {
                tracker
                    .days
                    .iter()
                    .find(|d| d.day == day)
                    .map_or((day, 0, 0), |d| (day, d.count, d.risky))
            })
            .collect();
        Some(BurstDays {
            days,
            baseline_daily: tracker.mean.max(config.min_daily_rate),
            burst: tracker.evaluate(last, config),
        })
    }

    /// Institutions tracked.
    pub(super) fn institution_count(&self) -> usize {
        self.institutions.len()
    }

    pub(super) fn to_state(&self) -> BurstState {
        let mut institutions: Vec<(String, RateTracker)> = self
            .institutions
            .iter()
            .map(|(i, t)| (i.clone(), t.clone()))
            .collect();
        institutions.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let institution_types = TYPES
            .iter()
            .filter_map(|&kind| self.types[type_index(kind)].clone().map(|t| (kind, t)))
            .collect();
        BurstState {
            first_day: self.first_day,
            institutions,
            institution_types,
        }
    }

    pub(super) fn from_state(state: BurstState) -> BurstDetector {
        let mut detector = BurstDetector {
            first_day: state.first_day,
            institutions: state.institutions.into_iter().collect(),
            types: [None, None, None, None],
        };
        for (kind, tracker) in state.institution_types {
            detector.types[type_index(kind)] = Some(tracker);
        }
        detector
    }
}
