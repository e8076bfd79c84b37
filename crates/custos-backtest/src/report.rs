//! What `custos evaluate` reports: the figures a fraud team judges an engine
//! by, computed from one replay of a history with ground truth.
//!
//! Money is in minor units, per currency: a report never adds euros to
//! pounds. Shares are in `[0, 1]` and `None` when their denominator is zero
//! (nothing to divide), never `NaN`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One replay of a history through one rule set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The history replayed (its file name).
    pub input: String,
    pub rules: RulesUsed,
    pub events: EventCounts,
    /// Payouts and loan disbursements to destinations an attacker set.
    pub stolen: BTreeMap<String, StolenMoney>,
    /// The same money per attack class (`truth.scenario`; `unknown` when
    /// the history does not say). The classes add up to `stolen` exactly.
    #[serde(default)]
    pub stolen_by_class: BTreeMap<String, ClassStolen>,
    /// Payouts and loan disbursements to the seller's own destinations.
    pub legit_payouts: BTreeMap<String, LegitPayouts>,
    pub logins: Logins,
    /// What the policy cost honest sellers, per kind of friction and per
    /// rule that caused it.
    #[serde(default)]
    pub honest_cost: HonestCost,
    /// One entry per campaign of the ground truth, in order of first victim.
    pub campaigns: Vec<CampaignDetection>,
    /// One entry per rule of the rule set, in rule order.
    pub rules_hit: Vec<RuleStats>,
    /// Per day of event time, from the first payout, for the charts.
    pub days: Vec<DayPoint>,
    /// Events `custos evaluate` added to play the platform's side
    /// (verifications after challenges and holds).
    pub responses: Responses,
    /// The headline figures reached (no targets: the report holds none),
    /// when the history is a simulation with ground truth.
    pub headline: Headline,
}

impl Report {
    /// The headline figures as lines of text, each starting with `prefix`,
    /// as `custos evaluate` prints them.
    pub fn headline_text(&self, prefix: &str) -> String {
        let mut out = String::new();
        let share = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.2}%", s * 100.0));
        let rules = match &self.rules.dir {
            Some(dir) => format!("{} ({dir})", self.rules.name),
            None => format!("{} (built-in)", self.rules.name),
        };
        let _ = writeln!(
            out,
            "{prefix}rules {rules} on {}: {} events in {:.1} s ({:.0} events/s)",
            self.input, self.events.read, self.events.seconds, self.events.events_per_second
        );
        for (currency, stolen) in &self.stolen {
            let _ = writeln!(
                out,
                "{prefix}stolen value stopped: {} ({:.2} of {:.2} {currency}, {} of {} payouts)",
                share(stolen.share_stopped),
                stolen.stopped.value as f64 / 100.0,
                stolen.attempted.value as f64 / 100.0,
                stolen.stopped.count,
                stolen.attempted.count
            );
        }
        for (class, stolen) in &self.stolen_by_class {
            let (stopped, attempted): (u64, u64) =
                stolen.currencies.values().fold((0, 0), |(s, a), m| {
                    (s + m.stopped.count, a + m.attempted.count)
                });
            let _ = writeln!(
                out,
                "{prefix}  class {class}: {} stopped ({} by a failed step-up), {stopped} of {attempted} payouts",
                share(stolen.share_stopped),
                share(stolen.share_prevented_by_step_up),
            );
        }
        for (currency, legit) in &self.legit_payouts {
            let _ = writeln!(
                out,
                "{prefix}legitimate payouts held: {} ({} of {}, {:.2} {currency}; median delay {} h)",
                share(legit.share_held),
                legit.held.count,
                legit.total.count,
                legit.held.value as f64 / 100.0,
                legit
                    .median_delay_hours
                    .map_or("-".to_string(), |h| format!("{h:.1}"))
            );
        }
        let _ = writeln!(
            out,
            "{prefix}legitimate logins challenged: {} ({} of {})",
            share(self.logins.share_legit_challenged),
            self.logins.legit_challenged,
            self.logins.legit
        );
        for (what, tally) in [
            ("payouts held", &self.honest_cost.payouts_held),
            (
                "destination changes held or reviewed",
                &self.honest_cost.destination_changes_held,
            ),
            (
                "destination changes challenged or more",
                &self.honest_cost.destination_changes_challenged,
            ),
            ("logins challenged", &self.honest_cost.logins_challenged),
        ] {
            if tally.hit == 0 {
                continue;
            }
            let causes: Vec<String> = tally
                .by_cause
                .iter()
                .map(|(rule, count)| format!("{rule} {count}"))
                .collect();
            let _ = writeln!(
                out,
                "{prefix}  honest {what}: {} ({} of {}) by cause: {}",
                share(tally.share),
                tally.hit,
                tally.total,
                causes.join(", ")
            );
        }
        for campaign in &self.campaigns {
            let _ = match (campaign.victims_at_detection, campaign.delay_hours) {
                (Some(victims), Some(hours)) => writeln!(
                    out,
                    "{prefix}campaign {}: detected at victim {victims} of {}, {hours:.1} h after the first",
                    campaign.campaign, campaign.victims
                ),
                _ => writeln!(
                    out,
                    "{prefix}campaign {}: not detected ({} victims)",
                    campaign.campaign, campaign.victims
                ),
            };
        }
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RulesUsed {
    /// The rule set's name, e.g. `default`.
    pub name: String,
    /// The directory it was read from; `None` for the built-in default rules.
    pub dir: Option<String>,
    pub rule_count: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventCounts {
    /// Events read from the history.
    pub read: u64,
    /// Of those, made by attackers (ground truth).
    pub by_attackers: u64,
    /// Decisions by action (`allow`, `challenge`, `review`, `hold`, `block`),
    /// over the history's events (not the added responses).
    pub decisions: BTreeMap<String, u64>,
    /// First and last event time, RFC 3339.
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// Wall-clock seconds the replay took, and events per second.
    pub seconds: f64,
    pub events_per_second: f64,
}

/// Money paid toward an attacker: what was tried and what Custos stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StolenMoney {
    pub attempted: Amounts,
    /// Blocked, held and never released (cancelled, or still held at the
    /// end of the history), or prevented by a failed step-up.
    pub stopped: Amounts,
    /// Of `attempted`: decided `block`.
    pub blocked: Amounts,
    /// Of `attempted`: held and still held or cancelled at the end.
    pub held: Amounts,
    /// Of `attempted`: held, then released (paid late, but paid).
    pub held_then_released: Amounts,
    /// Of `attempted`: not held at all (allow, challenge or review).
    pub paid: Amounts,
    /// Of `attempted`, and counted in `stopped`: never reached Custos's
    /// payout rules because a step-up the attacker failed ended his session
    /// first, so the destination change it needed never happened and the
    /// money went to the owner (or the payout was never asked for).
    #[serde(default)]
    pub prevented_by_step_up: Amounts,
    /// Of `attempted`: loan disbursements.
    pub loans: Amounts,
    /// `stopped.value / attempted.value`.
    pub share_stopped: Option<f64>,
}

impl StolenMoney {
    /// Adds every amount of `other` to this one's (shares are left as they
    /// are: they are computed once the sums are final).
    pub fn absorb(&mut self, other: &StolenMoney) {
        for (mine, theirs) in [
            (&mut self.attempted, &other.attempted),
            (&mut self.stopped, &other.stopped),
            (&mut self.blocked, &other.blocked),
            (&mut self.held, &other.held),
            (&mut self.held_then_released, &other.held_then_released),
            (&mut self.paid, &other.paid),
            (&mut self.loans, &other.loans),
            (&mut self.prevented_by_step_up, &other.prevented_by_step_up),
        ] {
            mine.count += theirs.count;
            mine.value += theirs.value;
        }
    }
}

/// The stolen money of one attack class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassStolen {
    /// Per currency, as in [`Report::stolen`].
    pub currencies: BTreeMap<String, StolenMoney>,
    /// Stopped over attempted, summed over currencies in minor units (as
    /// the headline's share is).
    pub share_stopped: Option<f64>,
    /// Of the attempted value, the share prevented by a failed step-up.
    pub share_prevented_by_step_up: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    pub count: u64,
    /// Minor units (cents, pence).
    pub value: u64,
}

/// The friction honest sellers felt, per kind and per cause.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HonestCost {
    /// Payouts and disbursements to the owner's destination decided `hold`
    /// or `block` (the same population as `legit_payouts`, by count).
    pub payouts_held: CauseTally,
    /// The owners' own payout-destination changes decided `review` or
    /// stronger.
    pub destination_changes_held: CauseTally,
    /// The owners' own payout-destination changes decided `challenge` or
    /// stronger: the step-ups asked of them (with the owner confirmation a
    /// replacing bank account asks for, most of them).
    #[serde(default)]
    pub destination_changes_challenged: CauseTally,
    /// The owners' successful logins decided `challenge` or stronger (as in
    /// `logins`).
    pub logins_challenged: CauseTally,
}

/// How many honest events of one kind met friction, and which rules caused
/// it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CauseTally {
    /// Honest events of the kind.
    pub total: u64,
    /// Of those, decided at the kind's threshold or above.
    pub hit: u64,
    /// `hit / total`.
    pub share: Option<f64>,
    /// Every rule that asked for the threshold or more, by code: an event
    /// that two rules held counts under both, so these can add up to more
    /// than `hit`.
    pub by_rule: BTreeMap<String, u64>,
    /// Each hit under one cause: the strongest rule that asked for it (the
    /// highest score, the first on a tie), or `(no rule)` when no reason
    /// asked for that much (a hold the engine placed by itself). These add
    /// up to `hit` exactly.
    pub by_cause: BTreeMap<String, u64>,
}

/// The friction honest sellers felt on their payouts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LegitPayouts {
    pub total: Amounts,
    /// Decided `hold` or `block`.
    pub held: Amounts,
    /// Of `held`: released before the end of the history.
    pub released: Amounts,
    /// Of `held`: still held at the end, or cancelled.
    pub never_released: Amounts,
    /// `held.count / total.count`.
    pub share_held: Option<f64>,
    /// Hours from hold to release, over the released holds.
    pub median_delay_hours: Option<f64>,
    pub p90_delay_hours: Option<f64>,
    /// Delays of the released holds, in hours, bucketed for a histogram:
    /// `[upper bound in hours, count]`, the last bound is `f64::MAX` as
    /// `null`.
    pub delay_histogram: Vec<DelayBucket>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DelayBucket {
    /// Upper bound in hours; `None` for the open last bucket.
    pub up_to_hours: Option<f64>,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Logins {
    /// Successful logins by the account's owner.
    pub legit: u64,
    /// Of those, answered `challenge` or stronger.
    pub legit_challenged: u64,
    pub share_legit_challenged: Option<f64>,
    /// Successful logins by attackers.
    pub attacker: u64,
    pub attacker_challenged: u64,
    pub share_attacker_challenged: Option<f64>,
}

/// When Custos first saw a campaign of the ground truth.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignDetection {
    /// The ground truth's name, e.g. `phishing-2018`.
    pub campaign: String,
    pub scenario: String,
    /// Accounts the campaign took over (an attacker event other than a
    /// failed login).
    pub victims: u64,
    /// The first attacker event on the first victim, RFC 3339.
    pub started_at: Option<String>,
    /// The first `campaign.detected` or `campaign.updated` effect whose
    /// campaign holds one of this campaign's victims, RFC 3339.
    pub detected_at: Option<String>,
    /// The Custos campaign id that first held a victim.
    pub detected_as: Option<String>,
    /// Hours from `started_at` to `detected_at`.
    pub delay_hours: Option<f64>,
    /// Victims whose first attacker event came at or before detection
    /// (`4` means detected at the fourth victim).
    pub victims_at_detection: Option<u64>,
    /// Victims Custos's campaigns held by the end.
    pub victims_linked: u64,
}

/// How one rule did against the ground truth.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleStats {
    pub id: String,
    pub action: String,
    /// Event types the rule reads.
    pub events: Vec<String>,
    pub shadow: bool,
    /// Events the rule fired on.
    pub hits: u64,
    /// Of those, fraudulent (made by an attacker, or paying an attacker).
    pub fraud_hits: u64,
    /// Fraudulent events of the rule's types.
    pub fraud_events: u64,
    /// `fraud_hits / hits`.
    pub precision: Option<f64>,
    /// `fraud_hits / fraud_events`.
    pub recall: Option<f64>,
}

/// One day of event time (UTC), for the charts. Stolen money is summed
/// over currencies, in minor units: charts show shape, tables show
/// per-currency figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayPoint {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Value of the stolen payouts asked for that day, and of those blocked
    /// or held and never released.
    pub stolen_attempted: u64,
    pub stolen_stopped: u64,
    /// Number of legitimate payouts that day, and of those held or blocked.
    pub legit_payouts: u64,
    pub legit_held: u64,
    /// Successful legitimate logins, and those challenged.
    pub legit_logins: u64,
    pub legit_logins_challenged: u64,
    /// Ground-truth victims whose first attacker event fell on that day.
    pub new_victims: u64,
    /// Campaign alerts (`campaign.detected`) that day.
    pub campaign_alerts: u64,
}

/// What the replay played on the platform's behalf (docs/evaluate.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Responses {
    /// Passed verifications added, step-ups and hold confirmations alike.
    pub verifications_passed: u64,
    /// Failed verifications added, step-ups and hold confirmations alike.
    pub verifications_failed: u64,
    /// Step-ups after a challenge: passed by the owner, failed by the owner
    /// (the channel's contact or factor was the attacker's), passed by the
    /// attacker (he controlled the channel), failed by the attacker.
    #[serde(default)]
    pub step_ups: StepUps,
    /// Confirmations the platform asked of the owner after a payout hold.
    #[serde(default)]
    pub hold_confirmations: HoldConfirmations,
    /// `compromise_reported` labels the owners sent after denying a payout.
    #[serde(default)]
    pub compromise_reports: u64,
    /// Holds those reports cancelled.
    #[serde(default)]
    pub holds_cancelled_by_reports: u64,
    /// Attackers' events never replayed: they came after a step-up the
    /// attacker failed had ended his session (or, for payouts, went to the
    /// owner because the attacker's destination change never happened).
    #[serde(default)]
    pub attacker_events_not_replayed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUps {
    pub owner_passed: u64,
    pub owner_failed: u64,
    pub attacker_passed: u64,
    pub attacker_failed: u64,
    /// Step-ups by channel (wire name), whoever answered.
    pub by_channel: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldConfirmations {
    /// The owner confirmed their own payout.
    pub owner_confirmed: u64,
    /// The owner denied a payout to the attacker's destination.
    pub owner_denied: u64,
    /// The attacker answered through a channel he controlled, and passed.
    pub attacker_passed: u64,
    /// Confirmations by channel (wire name), whoever answered.
    pub by_channel: BTreeMap<String, u64>,
}

/// The figures a fraud team looks at first, as reached: shares of stolen
/// value stopped, of legitimate payouts held and of legitimate logins
/// challenged, and how campaigns were detected. Targets are theirs to set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// Stolen value stopped, over all currencies' shares weighted by value.
    pub share_stolen_stopped: Option<f64>,
    /// Legitimate payouts held, by count.
    pub share_legit_payouts_held: Option<f64>,
    pub share_legit_logins_challenged: Option<f64>,
    /// The most victims any campaign took before it was detected; `None`
    /// when there was no campaign or one was never detected.
    pub worst_victims_at_detection: Option<u64>,
    /// Campaigns of the ground truth never detected.
    pub campaigns_missed: u64,
}

/// Two rule sets on the same history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub base: Report,
    pub candidate: Report,
    /// Events decided differently, by `base action -> candidate action`
    /// (e.g. `allow -> hold`), split by ground truth.
    pub changed: Vec<ChangedDecisions>,
    /// Up to 50 events decided differently, for a first look.
    pub examples: Vec<ChangedExample>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedDecisions {
    pub from: String,
    pub to: String,
    pub fraud: u64,
    pub legit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedExample {
    pub event_id: String,
    pub event_type: String,
    pub account_id: String,
    pub fraud: bool,
    pub from: String,
    pub to: String,
    /// Rules that fired in the candidate and not in the base, and the other
    /// way round.
    pub rules_added: Vec<String>,
    pub rules_removed: Vec<String>,
}
