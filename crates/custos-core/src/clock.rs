//! The engine's clock: the time payout holds expire against.
//!
//! The core has no clock of its own; time comes from events. The simplest
//! clock, the newest event time seen, lets one event move every account's
//! time: a single event dated `9999-01-01` would end every open hold's
//! cool-off at once, and a clock cannot go back. The HTTP server refuses
//! event times far from its own clock (`engine.max_future_skew`), but the
//! engine also replays historical files with that bound off (`custos
//! replay`, the backtest), so it does not rely on it.
//!
//! So the clock follows the newest event time only as far as a second
//! account vouches for it. It keeps the newest event time of the account
//! furthest ahead (the *leader*) and the newest event time of any other
//! account (the *runner-up*), and is
//!
//! ```text
//! clock = max over time of min(leader, runner-up + CLOCK_LEAD_SECS)
//! ```
//!
//! - On ordinary traffic, where many accounts send events, the leader is at
//!   most minutes ahead of the runner-up and the clock is the newest event
//!   time, as before: every hold is released at the same event as before.
//! - One account alone, however far ahead its events claim to be, moves the
//!   clock at most [`CLOCK_LEAD_SECS`] past what some other account has
//!   reached: a far-future event brings other accounts' hold releases
//!   forward by at most that much, never by years.
//! - After a quiet spell longer than the lead, the first event moves the
//!   clock only by the lead; the next event of another account brings it up
//!   to date. Holds are then released a few events late, never early.
//! - An old event never moves it back (the clock is a running maximum).
//!
//! An account's own holds also expire against the account's own newest
//! event time (`effects.rs`), so an account that is alone, or the first to
//! come back after a quiet spell, sees its holds released on time. What an
//! account's own events claim can only release its own holds.
//!
//! The clock is a function of the order and times of the events applied,
//! nothing else: a replay of the log reaches the same clock at the same
//! event, and the clock is kept in snapshots.

use serde::{Deserialize, Serialize};

/// How far past the newest event time of a second account one account's
/// events may move the clock: longer than the usual gap between two events
/// of different accounts on a live platform, short against a hold's
/// cool-off (days).
pub const CLOCK_LEAD_SECS: i64 = 3_600;

/// The time holds expire against (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineClock {
    /// The clock; `i64::MIN` until two accounts have been seen.
    now: i64,
    /// The account whose newest event time is the newest, and that time.
    leader: Option<(String, i64)>,
    /// The newest event time of any account but the leader; `i64::MIN`
    /// while there is none.
    runner_up: i64,
}

impl Default for EngineClock {
    fn default() -> Self {
        EngineClock {
            now: i64::MIN,
            leader: None,
            runner_up: i64::MIN,
        }
    }
}

impl EngineClock {
    /// The clock: `i64::MIN` until two accounts have sent events.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The newest event time seen, whatever account sent it.
    pub fn newest(&self) -> Option<i64> {
        self.leader.as_ref().map(|(_, t)| *t)
    }

    /// Counts an event of `account_id` at `at`; returns the clock after it.
    pub fn observe(&mut self, account_id: &str, at: i64) -> i64 {
        match &mut self.leader {
            None => self.leader = Some((account_id.to_string(), at)),
            Some((leader, newest)) => {
                if leader == account_id {
                    *newest = (*newest).max(at);
                } else if at > *newest {
                    // The old leader's time is now the newest of the others.
                    self.runner_up = self.runner_up.max(*newest);
                    leader.clear();
                    leader.push_str(account_id);
                    *newest = at;
                } else {
                    self.runner_up = self.runner_up.max(at);
                }
            }
        }
        if let Some((_, newest)) = &self.leader
            && self.runner_up != i64::MIN
        {
            let vouched = (*newest).min(self.runner_up.saturating_add(CLOCK_LEAD_SECS));
            self.now = self.now.max(vouched);
        }
        self.now
    }

    /// The clock a log replay would have reached, from each account's
    /// newest event time: for snapshots written before the clock was kept
    /// this way. (Both the leader and the runner-up only grow, so the
    /// running maximum is the last value, whatever the order.)
    pub fn from_newest_times<'a>(accounts: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        let mut clock = EngineClock::default();
        for (account_id, newest) in accounts {
            clock.observe(account_id, newest);
        }
        clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn follows_the_newest_time_while_accounts_keep_up() {
        let mut clock = EngineClock::default();
        assert_eq!(clock.observe("a", 1_000), i64::MIN, "one account alone");
        assert_eq!(clock.observe("b", 1_060), 1_060);
        assert_eq!(clock.observe("c", 1_200), 1_200);
        assert_eq!(clock.observe("a", 1_100), 1_200, "never back");
        assert_eq!(clock.observe("a", 1_300), 1_300);
        assert_eq!(clock.newest(), Some(1_300));
    }

    #[test]
    fn one_account_far_ahead_moves_it_by_the_lead_only() {
        let mut clock = EngineClock::default();
        clock.observe("a", 10 * DAY);
        clock.observe("b", 10 * DAY + 60);
        // Year 9999, twice: the clock moves an hour past b, no more.
        let future = 253_370_764_800;
        assert_eq!(
            clock.observe("mallory", future),
            10 * DAY + 60 + CLOCK_LEAD_SECS
        );
        assert_eq!(
            clock.observe("mallory", future + 1),
            10 * DAY + 60 + CLOCK_LEAD_SECS
        );
        // Honest traffic carries on; the clock stays an hour ahead at most.
        clock.observe("a", 11 * DAY);
        assert_eq!(clock.now(), 11 * DAY + CLOCK_LEAD_SECS);
        clock.observe("b", 12 * DAY);
        assert_eq!(clock.now(), 12 * DAY + CLOCK_LEAD_SECS);
        assert_eq!(clock.newest(), Some(future + 1));
    }

    #[test]
    fn after_a_quiet_spell_a_second_account_brings_it_up_to_date() {
        let mut clock = EngineClock::default();
        clock.observe("a", 0);
        clock.observe("b", 60);
        assert_eq!(clock.observe("a", 3 * DAY), 60 + CLOCK_LEAD_SECS);
        assert_eq!(clock.observe("b", 3 * DAY + 30), 3 * DAY + 30);
    }

    #[test]
    fn rebuilt_from_newest_times_it_matches_the_event_by_event_clock() {
        let events = [
            ("a", 100),
            ("b", 200),
            ("a", 5_000),
            ("c", 150),
            ("mallory", 9_000_000),
            ("b", 7_000),
        ];
        let mut live = EngineClock::default();
        for (account, at) in events {
            live.observe(account, at);
        }
        let newest = [
            ("mallory", 9_000_000),
            ("c", 150),
            ("b", 7_000),
            ("a", 5_000),
        ];
        let rebuilt = EngineClock::from_newest_times(newest);
        assert_eq!(rebuilt.now(), live.now());
        assert_eq!(rebuilt.now(), 7_000 + CLOCK_LEAD_SECS);
        assert_eq!(rebuilt.newest(), live.newest());
    }
}
