//! The bound on an accepted event's `time`, against the wall clock.
//!
//! Event time is the engine's only time: it places events in windows and
//! profiles and drives the clock payout holds expire on. The core has no
//! clock, so it cannot tell a wrong time from a right one; an entry point
//! that knows "now" can. The HTTP server refuses an event dated more than
//! `engine.max_future_skew` (5 minutes by default) ahead of its clock, and,
//! when `engine.max_event_age` is set, one dated longer ago than that; the
//! error names `time` (`time_out_of_range`). `custos replay` applies the
//! future bound only (a historical file holds old events by nature, but no
//! event from the future), and the backtest none: it replays history, and
//! relies on the engine's own defence (`custos_core::clock`).
//!
//! The check runs on the caller's thread, before the event reaches the
//! engine, so the engine thread never reads the clock and a replay of the log
//! never depends on when it runs.

use std::time::Duration;

use custos_core::Event;
use time::OffsetDateTime;

/// What an entry point accepts as an event's time, around its clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeBound {
    /// Furthest ahead of the clock accepted; `None`: no bound.
    pub max_future_skew: Option<Duration>,
    /// Furthest behind the clock accepted; `None`: no bound.
    pub max_event_age: Option<Duration>,
}

/// Why an event's time was refused. Displays as `time: <problem>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: {problem}")]
pub struct TimeBoundError {
    /// The problem, without the field name (for callers that name the field
    /// their own way, as the Sift routes do with `$time`).
    pub problem: String,
}

impl TimeBound {
    /// No bound at all (the backtest, `custos replay --no-time-bound`).
    pub const NONE: TimeBound = TimeBound {
        max_future_skew: None,
        max_event_age: None,
    };

    /// The bound the configuration asks for (`[engine]`).
    pub fn from_config(engine: &custos_config::EngineConfig) -> TimeBound {
        TimeBound {
            max_future_skew: engine.max_future_skew,
            max_event_age: engine.max_event_age,
        }
    }

    /// Checks an event's time against the wall clock now.
    pub fn check_now(&self, event: &Event) -> Result<(), TimeBoundError> {
        self.check(event.time, OffsetDateTime::now_utc())
    }

    /// Checks `time` against `now`.
    pub fn check(&self, time: OffsetDateTime, now: OffsetDateTime) -> Result<(), TimeBoundError> {
        let shown = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        let ahead = time - now;
        if let Some(skew) = self.max_future_skew
            && ahead > skew
        {
            return Err(TimeBoundError {
                problem: format!(
                    "{} is {} ahead of the server's clock; at most {} ahead is accepted \
                     (engine.max_future_skew): send the time the event happened, from a \
                     synchronized clock",
                    shown(time),
                    human(ahead.whole_seconds()),
                    human(secs(skew)),
                ),
            });
        }
        let behind = now - time;
        if let Some(age) = self.max_event_age
            && behind > age
        {
            return Err(TimeBoundError {
                problem: format!(
                    "{} is {} behind the server's clock; events older than {} are refused \
                     (engine.max_event_age): replay history with `custos replay`",
                    shown(time),
                    human(behind.whole_seconds()),
                    human(secs(age)),
                ),
            });
        }
        Ok(())
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A length of time in its largest whole unit: `5m`, `2h`, `3d`, `7974 years`.
fn human(secs: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    // A Gregorian year on average.
    const YEAR: i64 = 31_556_952;
    if secs >= YEAR {
        return format!("{} years", secs / YEAR);
    }
    for (size, unit) in UNITS {
        if secs >= size && secs % size == 0 || secs >= size * 10 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

    #[test]
    fn refuses_the_far_future_and_accepts_a_small_skew() {
        let bound = TimeBound {
            max_future_skew: Some(Duration::from_secs(300)),
            max_event_age: None,
        };
        assert_eq!(bound.check(NOW, NOW), Ok(()));
        assert_eq!(bound.check(datetime!(2026-03-01 12:05:00 UTC), NOW), Ok(()));
        let err = bound
            .check(datetime!(2026-03-01 12:05:01 UTC), NOW)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("time: 2026-03-01T12:05:01Z is 301s ahead"),
            "{err}"
        );
        let err = bound
            .check(datetime!(9999-01-01 00:00:00 UTC), NOW)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "time: 9999-01-01T00:00:00Z is 7972 years ahead of the server's clock; at most 5m \
             ahead is accepted (engine.max_future_skew): send the time the event happened, \
             from a synchronized clock"
        );
        // No age bound: the far past is accepted.
        assert_eq!(bound.check(datetime!(0001-01-01 00:00:00 UTC), NOW), Ok(()));
        assert_eq!(
            TimeBound::NONE.check(datetime!(9999-01-01 00:00:00 UTC), NOW),
            Ok(())
        );
    }

    #[test]
    fn refuses_events_older_than_the_age_bound_when_set() {
        let bound = TimeBound {
            max_future_skew: None,
            max_event_age: Some(Duration::from_secs(30 * 86_400)),
        };
        assert_eq!(bound.check(datetime!(2026-02-01 12:00:00 UTC), NOW), Ok(()));
        let err = bound
            .check(datetime!(0001-01-01 00:00:00 UTC), NOW)
            .unwrap_err();
        assert!(
            err.problem
                .contains("behind the server's clock; events older than 30d are refused"),
            "{err}"
        );
        assert_eq!(bound.check(datetime!(9999-01-01 00:00:00 UTC), NOW), Ok(()));
    }
}
