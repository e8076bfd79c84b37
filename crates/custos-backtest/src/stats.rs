//! Small figures for the report: counts, shares, quantiles, delay
//! buckets and days.

use crate::report::{Amounts, DelayBucket};

pub(crate) fn add(amounts: &mut Amounts, value: u64) {
    amounts.count += 1;
    amounts.value += value;
}

pub(crate) fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The `q` quantile of sorted values (nearest rank).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Hold delays in buckets: up to 1 h, 6 h, 1 d, 3 d, 7 d, 14 d, 30 d, more.
pub(crate) fn histogram(delays: &[f64]) -> Vec<DelayBucket> {
    let bounds = [1.0, 6.0, 24.0, 72.0, 168.0, 336.0, 720.0];
    let mut buckets: Vec<DelayBucket> = bounds
        .iter()
        .map(|b| DelayBucket {
            up_to_hours: Some(*b),
            count: 0,
        })
        .chain(std::iter::once(DelayBucket {
            up_to_hours: None,
            count: 0,
        }))
        .collect();
    for delay in delays {
        let index = bounds
            .iter()
            .position(|b| delay <= b)
            .unwrap_or(bounds.len());
        buckets[index].count += 1;
    }
    buckets
}

pub(crate) fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

pub(crate) fn day_name(day: i64) -> String {
    let rfc = custos_sim::logins::rfc3339(day * 86_400);
    rfc.get(..10).unwrap_or(&rfc).to_string()
}
