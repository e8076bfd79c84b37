//! One rule set's replay: its [`Engine`], the platform's side (the
//! verifications and labels it adds after challenges and holds, played by
//! [`crate::platform`]), the tally of every decision against the ground
//! truth, and the [`Report`] it ends with.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use custos_core::decision::{Action, Decision, EffectKind};
use custos_core::event::{Details, EventType, LoginStatus, VerificationChannel};
use custos_core::features::FeatureConfig;
use custos_core::rules::{Mode, RuleSet};
use custos_core::{Engine, Event, EventParser};
use custos_sim::logins::rfc3339;
use custos_sim::truth::{Actor, Truth};
use serde_json::{Map, Value, json};

use crate::RulesUnderTest;
use crate::platform::{HoldAnswer, Platform};
use crate::read::ReadSummary;
use crate::report::{
    self, Amounts, CampaignDetection, CauseTally, ClassStolen, DayPoint, Headline, LegitPayouts,
    Report, RuleStats, RulesUsed, StolenMoney,
};
use crate::stats::{add, day_name, day_of, histogram, quantile, ratio};

/// The platform asks for a held payout's confirmation this long after the
/// hold, and whoever controls the channel answers then.
const HOLD_CONFIRMED_AFTER: i64 = 6 * 3_600;
/// The person in a challenged session answers this long after.
const CHALLENGE_ANSWERED_AFTER: i64 = 60;
/// An owner who denied a payout reports the compromise this long after.
const COMPROMISE_REPORTED_AFTER: i64 = 10 * 60;
/// The attack class of stolen money whose truth names no scenario.
const UNKNOWN_CLASS: &str = "unknown";

/// An event the replay adds on the platform's behalf, when it is due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Response {
    time: i64,
    order: u64,
    account_id: String,
    kind: ResponseKind,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ResponseKind {
    /// The answer to a step-up in a session, decided when it was asked.
    StepUp {
        session_id: String,
        channel: VerificationChannel,
        passed: bool,
    },
    /// The platform asks the owner to confirm a held payout through
    /// `channel`; who answers is decided when it is due.
    HoldConfirmation {
        hold_id: String,
        channel: VerificationChannel,
        payout_event_id: String,
    },
    /// The owner reports the compromise after denying a payout.
    CompromiseReported { payout_event_id: String },
}

/// A held payout, until its hold is closed.
#[derive(Debug, Clone)]
struct OpenHold {
    fraud: bool,
    class: String,
    currency: String,
    amount: u64,
    held_at: i64,
    day: usize,
}

/// One rule set's replay and its tallies.
pub(crate) struct Run {
    engine: Engine,
    rules: Arc<RuleSet>,
    /// Where the rules came from, for the report.
    dir: Option<PathBuf>,
    responses_on: bool,
    pending: BinaryHeap<Reverse<Response>>,
    platform: Platform,
    response_order: u64,
    open_holds: HashMap<(String, String), OpenHold>,
    tally: Tally,
}

#[derive(Default)]
struct Tally {
    decisions: BTreeMap<String, u64>,
    by_attackers: u64,
    first_time: Option<i64>,
    last_time: Option<i64>,
    /// Stolen money by attack class, then currency.
    stolen: BTreeMap<String, BTreeMap<String, StolenMoney>>,
    legit: BTreeMap<String, LegitPayouts>,
    legit_delays: BTreeMap<String, Vec<f64>>,
    logins: report::Logins,
    /// Ground-truth campaigns by name: first attacker time of each victim.
    campaigns: BTreeMap<String, TruthCampaign>,
    rule_hits: HashMap<String, (u64, u64)>,
    fraud_by_type: HashMap<EventType, u64>,
    days: BTreeMap<i64, DayPoint>,
    responses: report::Responses,
    honest_cost: report::HonestCost,
}

#[derive(Default)]
struct TruthCampaign {
    scenario: String,
    first_attack: HashMap<String, i64>,
    started_at: Option<i64>,
    detected: Option<(i64, String, u64)>,
}

impl Run {
    pub(crate) fn new(rules: &RulesUnderTest, features: FeatureConfig, responses_on: bool) -> Run {
        Run {
            engine: Engine::with_features(Arc::clone(&rules.rules), features),
            rules: Arc::clone(&rules.rules),
            dir: rules.dir.clone(),
            responses_on,
            pending: BinaryHeap::new(),
            platform: Platform::default(),
            response_order: 0,
            open_holds: HashMap::new(),
            tally: Tally::default(),
        }
    }

    /// Decides and applies one event of the history, after any response
    /// due by its time; returns its decision, or `None` when the platform
    /// would never have seen the event (the closed loop ended the
    /// attacker's session, or his payout went to the owner).
    pub(crate) fn step(
        &mut self,
        parser: &EventParser,
        event: &Event,
        truth: &Truth,
    ) -> Option<Decision> {
        let at = event.unix_time();
        while self.pending.peek().is_some_and(|r| r.0.time <= at) {
            if let Some(Reverse(response)) = self.pending.pop() {
                self.respond(parser, response);
            }
        }
        if self.responses_on && self.platform.not_replayed(event, truth).is_some() {
            self.not_replayed(event, truth);
            return None;
        }
        let decision = self.engine.process(event);
        self.count(event, truth, &decision);
        Some(decision)
    }

    /// Counts an event the closed loop kept from the platform.
    fn not_replayed(&mut self, event: &Event, truth: &Truth) {
        let tally = &mut self.tally;
        tally.responses.attacker_events_not_replayed += 1;
        if truth.actor == Some(Actor::Attacker) {
            tally.by_attackers += 1;
        }
        let Some((_, amount, currency)) = money_of(event) else {
            return;
        };
        if !truth.fraud {
            return;
        }
        let at = event.unix_time();
        let point = tally.days.entry(day_of(at)).or_default();
        point.stolen_attempted += amount;
        point.stolen_stopped += amount;
        let stolen = stolen_entry(&mut tally.stolen, truth, &currency);
        add(&mut stolen.attempted, amount);
        add(&mut stolen.prevented_by_step_up, amount);
        if event.event_type == EventType::LoanDisbursement {
            add(&mut stolen.loans, amount);
        }
    }

    fn respond(&mut self, parser: &EventParser, response: Response) {
        let mut object = Map::new();
        object.insert(
            "event_id".into(),
            json!(format!("evaluate-response-{}", response.order)),
        );
        object.insert("account_id".into(), json!(response.account_id));
        object.insert("time".into(), json!(rfc3339(response.time)));
        let mut verified = None;
        match &response.kind {
            ResponseKind::StepUp {
                session_id,
                channel,
                passed,
            } => {
                object.insert("session_id".into(), json!(session_id));
                verified = Some((*channel, *passed, "platform_step_up"));
            }
            ResponseKind::HoldConfirmation {
                hold_id,
                channel,
                payout_event_id,
            } => {
                if !self
                    .open_holds
                    .contains_key(&(response.account_id.clone(), hold_id.clone()))
                {
                    // Closed before the platform asked: nothing to confirm.
                    return;
                }
                let fraud = self
                    .open_holds
                    .get(&(response.account_id.clone(), hold_id.clone()))
                    .is_some_and(|h| h.fraud);
                let answer = self
                    .platform
                    .hold_answer(&response.account_id, *channel, fraud);
                let confirmations = &mut self.tally.responses.hold_confirmations;
                *confirmations
                    .by_channel
                    .entry(channel.as_str().to_string())
                    .or_default() += 1;
                let passed = match answer {
                    HoldAnswer::AttackerPasses => {
                        confirmations.attacker_passed += 1;
                        true
                    }
                    HoldAnswer::OwnerConfirms => {
                        confirmations.owner_confirmed += 1;
                        true
                    }
                    HoldAnswer::OwnerDenies => {
                        confirmations.owner_denied += 1;
                        self.schedule(
                            response.time + COMPROMISE_REPORTED_AFTER,
                            &response.account_id,
                            ResponseKind::CompromiseReported {
                                payout_event_id: payout_event_id.clone(),
                            },
                        );
                        false
                    }
                };
                verified = Some((*channel, passed, "platform_hold_confirmation"));
            }
            ResponseKind::CompromiseReported { payout_event_id } => {
                object.insert("type".into(), json!("label"));
                object.insert("label".into(), json!("compromise_reported"));
                object.insert("target_event_id".into(), json!(payout_event_id));
                self.tally.responses.compromise_reports += 1;
            }
        }
        if let Some((channel, passed, method)) = verified {
            object.insert("type".into(), json!("verification"));
            object.insert(
                "status".into(),
                json!(if passed { "passed" } else { "failed" }),
            );
            object.insert("method".into(), json!(method));
            object.insert("channel".into(), json!(channel.as_str()));
            if passed {
                self.tally.responses.verifications_passed += 1;
            } else {
                self.tally.responses.verifications_failed += 1;
            }
        }
        let Ok(event) = parser.parse_object(object) else {
            return;
        };
        let decision = self.engine.process(&event);
        if event.event_type == EventType::Label {
            self.tally.responses.holds_cancelled_by_reports += decision
                .effects
                .iter()
                .filter(|e| e.kind == EffectKind::HoldCancelled)
                .count() as u64;
        }
        // A response can release or cancel holds like any event.
        self.close_holds(&event, &decision);
    }

    fn schedule(&mut self, time: i64, account_id: &str, kind: ResponseKind) {
        self.response_order += 1;
        self.pending.push(Reverse(Response {
            time,
            order: self.response_order,
            account_id: account_id.to_string(),
            kind,
        }));
    }

    fn count(&mut self, event: &Event, truth: &Truth, decision: &Decision) {
        let at = event.unix_time();
        let day = day_of(at);
        // The platform's step-up comes first: an attacker who fails it
        // never got in, whatever the history says he did next.
        let step_up = if self.responses_on {
            self.platform
                .after(event, truth, decision, &mut self.tally.responses)
        } else {
            None
        };
        if let (Some(step_up), Some(session)) = (step_up, event.session_id.as_deref()) {
            self.schedule(
                at + CHALLENGE_ANSWERED_AFTER,
                &event.account_id,
                ResponseKind::StepUp {
                    session_id: session.to_string(),
                    channel: step_up.channel,
                    passed: step_up.passed,
                },
            );
        }
        let tally = &mut self.tally;
        *tally
            .decisions
            .entry(decision.action.as_str().to_string())
            .or_default() += 1;
        tally.first_time = Some(tally.first_time.map_or(at, |t| t.min(at)));
        tally.last_time = Some(tally.last_time.map_or(at, |t| t.max(at)));
        if truth.actor == Some(Actor::Attacker) {
            tally.by_attackers += 1;
        }
        if truth.fraud {
            *tally.fraud_by_type.entry(event.event_type).or_default() += 1;
        }
        for reason in decision.reasons.iter().chain(&decision.shadow) {
            let hits = tally.rule_hits.entry(reason.code.clone()).or_default();
            hits.0 += 1;
            if truth.fraud {
                hits.1 += 1;
            }
        }
        // Campaigns of the ground truth: victims in order of takeover. A
        // failed login is an attempt, not a takeover: credential stuffing
        // tries thousands of accounts to get into a few. So is a session
        // whose step-up the attacker failed.
        let attempt_only = matches!(
            event.details,
            Details::Login {
                status: LoginStatus::Failure,
                ..
            }
        ) || step_up.is_some_and(|s| !s.passed);
        if truth.actor == Some(Actor::Attacker)
            && !attempt_only
            && let Some(name) = &truth.campaign
        {
            let campaign = tally.campaigns.entry(name.clone()).or_default();
            campaign.started_at.get_or_insert(at);
            if campaign.scenario.is_empty()
                && let Some(scenario) = &truth.scenario
            {
                campaign.scenario.clone_from(scenario);
            }
            if !campaign.first_attack.contains_key(&event.account_id) {
                campaign.first_attack.insert(event.account_id.clone(), at);
                tally.days.entry(day).or_default().new_victims += 1;
            }
        }
        let successful_login = matches!(
            event.details,
            Details::Login {
                status: LoginStatus::Success,
                ..
            }
        );
        if successful_login {
            let challenged = decision.action >= Action::Challenge;
            match truth.actor {
                Some(Actor::Seller) => {
                    cause(
                        &mut tally.honest_cost.logins_challenged,
                        decision,
                        Action::Challenge,
                    );
                    tally.logins.legit += 1;
                    let point = tally.days.entry(day).or_default();
                    point.legit_logins += 1;
                    if challenged {
                        tally.logins.legit_challenged += 1;
                        point.legit_logins_challenged += 1;
                    }
                }
                Some(Actor::Attacker) => {
                    tally.logins.attacker += 1;
                    if challenged {
                        tally.logins.attacker_challenged += 1;
                    }
                }
                _ => {}
            }
        }
        if event.event_type == EventType::PayoutDestinationChange
            && truth.actor == Some(Actor::Seller)
            && !truth.fraud
        {
            cause(
                &mut tally.honest_cost.destination_changes_held,
                decision,
                Action::Review,
            );
            cause(
                &mut tally.honest_cost.destination_changes_challenged,
                decision,
                Action::Challenge,
            );
        }
        self.money(event, truth, decision, day);
        self.close_holds(event, decision);
        self.campaign_alerts(event, decision, day);
    }

    /// Payouts and disbursements: stolen or legitimate, held or paid.
    fn money(&mut self, event: &Event, truth: &Truth, decision: &Decision, day: i64) {
        let Some((hold_id, amount, currency)) = money_of(event) else {
            return;
        };
        let at = event.unix_time();
        let held = decision.action == Action::Hold;
        let blocked = decision.action == Action::Block;
        let tally = &mut self.tally;
        let point = tally.days.entry(day).or_default();
        if truth.fraud {
            let stolen = stolen_entry(&mut tally.stolen, truth, &currency);
            add(&mut stolen.attempted, amount);
            point.stolen_attempted += amount;
            if event.event_type == EventType::LoanDisbursement {
                add(&mut stolen.loans, amount);
            }
            if blocked {
                add(&mut stolen.blocked, amount);
                point.stolen_stopped += amount;
            } else if held {
                point.stolen_stopped += amount;
            } else {
                add(&mut stolen.paid, amount);
            }
        } else {
            cause(&mut tally.honest_cost.payouts_held, decision, Action::Hold);
            let legit = tally.legit.entry(currency.clone()).or_default();
            add(&mut legit.total, amount);
            point.legit_payouts += 1;
            if held || blocked {
                add(&mut legit.held, amount);
                point.legit_held += 1;
            }
            if blocked {
                add(&mut legit.never_released, amount);
            }
        }
        if held {
            self.open_holds.insert(
                (event.account_id.clone(), hold_id.clone()),
                OpenHold {
                    fraud: truth.fraud,
                    class: class_of(truth).to_string(),
                    currency,
                    amount,
                    held_at: at,
                    day: day as usize,
                },
            );
            if truth.actor.is_some() && self.responses_on {
                let channel = self.platform.channel_for(&event.account_id, decision);
                self.schedule(
                    at + HOLD_CONFIRMED_AFTER,
                    &event.account_id,
                    ResponseKind::HoldConfirmation {
                        hold_id,
                        channel,
                        payout_event_id: event.event_id.clone(),
                    },
                );
            }
        }
    }

    /// Holds released or cancelled by this event.
    fn close_holds(&mut self, event: &Event, decision: &Decision) {
        let at = event.unix_time();
        for effect in &decision.effects {
            let released = match effect.kind {
                EffectKind::HoldReleased => true,
                EffectKind::HoldCancelled => false,
                _ => continue,
            };
            let (Some(account), Some(hold)) = (
                effect.data.get("account_id").and_then(Value::as_str),
                effect.data.get("hold_id").and_then(Value::as_str),
            ) else {
                continue;
            };
            let Some(open) = self
                .open_holds
                .remove(&(account.to_string(), hold.to_string()))
            else {
                continue;
            };
            let tally = &mut self.tally;
            if open.fraud {
                let stolen = tally
                    .stolen
                    .entry(open.class)
                    .or_default()
                    .entry(open.currency)
                    .or_default();
                if released {
                    add(&mut stolen.held_then_released, open.amount);
                    if let Some(point) = tally.days.get_mut(&(open.day as i64)) {
                        point.stolen_stopped = point.stolen_stopped.saturating_sub(open.amount);
                    }
                } else {
                    // Cancelled: stopped for good; counted with the held.
                    add(&mut stolen.held, open.amount);
                }
            } else {
                let legit = tally.legit.entry(open.currency.clone()).or_default();
                if released {
                    add(&mut legit.released, open.amount);
                    tally
                        .legit_delays
                        .entry(open.currency)
                        .or_default()
                        .push((at - open.held_at) as f64 / 3_600.0);
                } else {
                    add(&mut legit.never_released, open.amount);
                }
            }
        }
    }

    fn cancelled_fraud(&mut self, open: OpenHold) {
        let stolen = self
            .tally
            .stolen
            .entry(open.class)
            .or_default()
            .entry(open.currency)
            .or_default();
        add(&mut stolen.held, open.amount);
    }

    /// Campaign alerts, and the first one that holds a victim of each
    /// ground-truth campaign.
    fn campaign_alerts(&mut self, event: &Event, decision: &Decision, day: i64) {
        let at = event.unix_time();
        for effect in &decision.effects {
            match effect.kind {
                EffectKind::CampaignDetected => {
                    self.tally.days.entry(day).or_default().campaign_alerts += 1;
                }
                EffectKind::CampaignUpdated => {}
                _ => continue,
            }
            let Some(id) = effect.data.get("id").and_then(Value::as_str) else {
                continue;
            };
            let Some(found) = self.engine.campaigns().campaign(id) else {
                continue;
            };
            for truth in self.tally.campaigns.values_mut() {
                if truth.detected.is_some() {
                    continue;
                }
                if truth
                    .first_attack
                    .keys()
                    .any(|victim| found.member(victim).is_some())
                {
                    let victims = truth.first_attack.values().filter(|t| **t <= at).count();
                    truth.detected = Some((at, id.to_string(), victims as u64));
                }
            }
        }
    }

    pub(crate) fn finish(mut self, input: &str, read: &ReadSummary, seconds: f64) -> Report {
        // Holds still open at the end of the history: fraud ones stopped.
        let open: Vec<OpenHold> = self.open_holds.drain().map(|(_, h)| h).collect();
        for hold in open {
            if hold.fraud {
                self.cancelled_fraud(hold);
            } else {
                let legit = self.tally.legit.entry(hold.currency).or_default();
                add(&mut legit.never_released, hold.amount);
            }
        }
        let tally = &mut self.tally;
        let mut stolen_overall: BTreeMap<String, StolenMoney> = BTreeMap::new();
        let mut stolen_by_class: BTreeMap<String, ClassStolen> = BTreeMap::new();
        for (class, currencies) in std::mem::take(&mut tally.stolen) {
            let mut attempted = 0;
            let mut stopped = 0;
            let mut prevented = 0;
            let mut finished = BTreeMap::new();
            for (currency, mut stolen) in currencies {
                stolen.stopped = Amounts {
                    count: stolen.blocked.count
                        + stolen.held.count
                        + stolen.prevented_by_step_up.count,
                    value: stolen.blocked.value
                        + stolen.held.value
                        + stolen.prevented_by_step_up.value,
                };
                stolen.share_stopped = ratio(stolen.stopped.value, stolen.attempted.value);
                attempted += stolen.attempted.value;
                stopped += stolen.stopped.value;
                prevented += stolen.prevented_by_step_up.value;
                stolen_overall
                    .entry(currency.clone())
                    .or_default()
                    .absorb(&stolen);
                finished.insert(currency, stolen);
            }
            stolen_by_class.insert(
                class,
                ClassStolen {
                    currencies: finished,
                    share_stopped: ratio(stopped, attempted),
                    share_prevented_by_step_up: ratio(prevented, attempted),
                },
            );
        }
        for stolen in stolen_overall.values_mut() {
            stolen.share_stopped = ratio(stolen.stopped.value, stolen.attempted.value);
        }
        for tally in [
            &mut tally.honest_cost.payouts_held,
            &mut tally.honest_cost.destination_changes_held,
            &mut tally.honest_cost.destination_changes_challenged,
            &mut tally.honest_cost.logins_challenged,
        ] {
            tally.share = ratio(tally.hit, tally.total);
        }
        for (currency, legit) in tally.legit.iter_mut() {
            legit.share_held = ratio(legit.held.count, legit.total.count);
            let mut delays = tally.legit_delays.remove(currency).unwrap_or_default();
            delays.sort_by(f64::total_cmp);
            legit.median_delay_hours = quantile(&delays, 0.5);
            legit.p90_delay_hours = quantile(&delays, 0.9);
            legit.delay_histogram = histogram(&delays);
        }
        let logins = &mut tally.logins;
        logins.share_legit_challenged = ratio(logins.legit_challenged, logins.legit);
        logins.share_attacker_challenged = ratio(logins.attacker_challenged, logins.attacker);

        let mut campaigns: Vec<CampaignDetection> = tally
            .campaigns
            .iter()
            .map(|(name, truth)| {
                let linked = truth
                    .first_attack
                    .keys()
                    .filter(|v| self.engine.campaigns().campaign_of_account(v).is_some())
                    .count();
                CampaignDetection {
                    campaign: name.clone(),
                    scenario: truth.scenario.clone(),
                    victims: truth.first_attack.len() as u64,
                    started_at: truth.started_at.map(rfc3339),
                    detected_at: truth.detected.as_ref().map(|d| rfc3339(d.0)),
                    detected_as: truth.detected.as_ref().map(|d| d.1.clone()),
                    delay_hours: match (truth.started_at, &truth.detected) {
                        (Some(start), Some(d)) => Some((d.0 - start) as f64 / 3_600.0),
                        _ => None,
                    },
                    victims_at_detection: truth.detected.as_ref().map(|d| d.2),
                    victims_linked: linked as u64,
                }
            })
            .collect();
        campaigns.sort_by(|a, b| a.started_at.cmp(&b.started_at));

        let rules_hit = self
            .rules
            .rules()
            .iter()
            .map(|rule| {
                let source = &rule.source;
                let (hits, fraud_hits) =
                    tally.rule_hits.get(&source.id).copied().unwrap_or_default();
                let fraud_events = if source.events.is_empty() {
                    tally.fraud_by_type.values().sum()
                } else {
                    source
                        .events
                        .iter()
                        .map(|t| tally.fraud_by_type.get(t).copied().unwrap_or(0))
                        .sum()
                };
                RuleStats {
                    id: source.id.clone(),
                    action: source.action.as_str().to_string(),
                    events: source
                        .events
                        .iter()
                        .map(|t| t.as_str().to_string())
                        .collect(),
                    shadow: source.mode == Mode::Shadow,
                    hits,
                    fraud_hits,
                    fraud_events,
                    precision: ratio(fraud_hits, hits),
                    recall: ratio(fraud_hits, fraud_events),
                }
            })
            .collect();

        // Days from the first payout (a simulation's creation history
        // before it has none).
        let first_money_day = tally
            .days
            .iter()
            .find(|(_, p)| p.legit_payouts + p.stolen_attempted > 0)
            .map(|(d, _)| *d);
        let days = match (first_money_day, tally.days.keys().next_back()) {
            (Some(first), Some(last)) => (first..=*last)
                .map(|d| {
                    let mut point = tally.days.get(&d).cloned().unwrap_or_default();
                    point.day = day_name(d);
                    point
                })
                .collect(),
            _ => Vec::new(),
        };

        let attempted: u64 = stolen_overall.values().map(|s| s.attempted.value).sum();
        let stopped: u64 = stolen_overall.values().map(|s| s.stopped.value).sum();
        let legit_total: u64 = tally.legit.values().map(|l| l.total.count).sum();
        let legit_held: u64 = tally.legit.values().map(|l| l.held.count).sum();
        let headline = Headline {
            share_stolen_stopped: ratio(stopped, attempted),
            share_legit_payouts_held: ratio(legit_held, legit_total),
            share_legit_logins_challenged: tally.logins.share_legit_challenged,
            worst_victims_at_detection: if campaigns.is_empty()
                || campaigns.iter().any(|c| c.victims_at_detection.is_none())
            {
                None
            } else {
                campaigns
                    .iter()
                    .filter_map(|c| c.victims_at_detection)
                    .max()
            },
            campaigns_missed: campaigns
                .iter()
                .filter(|c| c.victims_at_detection.is_none())
                .count() as u64,
        };
        Report {
            input: input.to_string(),
            rules: RulesUsed {
                name: self.rules.name().to_string(),
                dir: self.dir.as_ref().map(|d| d.display().to_string()),
                rule_count: self.rules.rules().len(),
            },
            events: report::EventCounts {
                read: read.events,
                by_attackers: tally.by_attackers,
                decisions: std::mem::take(&mut tally.decisions),
                first_time: tally.first_time.map(rfc3339),
                last_time: tally.last_time.map(rfc3339),
                seconds,
                events_per_second: if seconds > 0.0 {
                    read.events as f64 / seconds
                } else {
                    0.0
                },
            },
            stolen: stolen_overall,
            stolen_by_class,
            legit_payouts: std::mem::take(&mut tally.legit),
            logins: tally.logins.clone(),
            honest_cost: std::mem::take(&mut tally.honest_cost),
            campaigns,
            rules_hit,
            days,
            responses: tally.responses.clone(),
            headline,
        }
    }
}

/// A payout's or loan disbursement's hold id, amount and currency.
fn money_of(event: &Event) -> Option<(String, u64, String)> {
    match &event.details {
        Details::Payout {
            payout_id,
            amount,
            currency,
            ..
        } => Some((payout_id.clone(), *amount, currency.as_str().to_string())),
        Details::Loan {
            loan_id,
            amount,
            currency,
        } if event.event_type == EventType::LoanDisbursement => {
            Some((loan_id.clone(), *amount, currency.as_str().to_string()))
        }
        _ => None,
    }
}

/// The attack class stolen money is counted under.
fn class_of(truth: &Truth) -> &str {
    truth.scenario.as_deref().unwrap_or(UNKNOWN_CLASS)
}

fn stolen_entry<'a>(
    stolen: &'a mut BTreeMap<String, BTreeMap<String, StolenMoney>>,
    truth: &Truth,
    currency: &str,
) -> &'a mut StolenMoney {
    stolen
        .entry(class_of(truth).to_string())
        .or_default()
        .entry(currency.to_string())
        .or_default()
}

/// Counts one honest event of a kind whose friction starts at `threshold`,
/// under the rules that asked for it.
fn cause(tally: &mut CauseTally, decision: &Decision, threshold: Action) {
    tally.total += 1;
    if decision.action < threshold {
        return;
    }
    tally.hit += 1;
    let mut strongest: Option<&custos_core::Reason> = None;
    for reason in decision.reasons.iter().filter(|r| r.action >= threshold) {
        *tally.by_rule.entry(reason.code.clone()).or_default() += 1;
        if strongest.is_none_or(|s| reason.score > s.score) {
            strongest = Some(reason);
        }
    }
    let name = strongest.map_or(NO_RULE, |r| r.code.as_str());
    *tally.by_cause.entry(name.to_string()).or_default() += 1;
}

/// The cause of friction no reason asked for.
const NO_RULE: &str = "(no rule)";
