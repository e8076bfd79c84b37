//! The closed loop: who answers the platform's step-ups and hold
//! confirmations, and what an attacker's failed step-up keeps from
//! happening. Unit tests drive [`Platform`] with hand-made decisions (the
//! channels a decision allows are the engine's to fill); the replay tests
//! run small hand-written histories through [`crate::evaluate`] under a
//! rule set of their own, so that they test the loop and not the default
//! policy.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_core::rules::{RuleFiles, RuleSet};
use custos_core::{DestinationTokenizer, EventParser};
use serde_json::{Value, json};

use super::*;
use crate::report::{Amounts, Report};
use crate::{Evaluation, Outcome, RulesUnderTest, evaluate};

const DAY: i64 = 86_400;
/// 2018-03-01.
const T0: i64 = 1_519_862_400;

fn time(t: i64) -> String {
    custos_sim::logins::rfc3339(t)
}

fn parser() -> EventParser {
    EventParser::new(DestinationTokenizer::new(b"test-key-0123456789abcdef").expect("key"))
}

fn event(fields: Value) -> Event {
    let Value::Object(object) = fields else {
        panic!("an object");
    };
    parser().parse_object(object).expect("a valid event")
}

fn truth(fields: Value) -> Truth {
    let mut event = json!({ "truth": fields });
    let Value::Object(event) = &mut event else {
        panic!("an object");
    };
    Truth::take(event)
}

fn challenge(channels: &[&str]) -> Decision {
    let mut decision = json!({"action": "challenge", "score": 60, "reasons": [],
                              "policy": "test"});
    if !channels.is_empty() {
        decision["verification"] = json!({"channels": channels});
    }
    serde_json::from_value(decision).expect("a decision")
}

fn login(account: &str, session: &str) -> Event {
    event(
        json!({"event_id": format!("{account}-{session}"), "type": "login",
                 "account_id": account, "session_id": session, "time": time(T0),
                 "status": "success", "ip": "81.2.69.160", "device_id": "box"}),
    )
}

#[test]
fn an_attacker_who_controls_sms_passes_an_sms_step_up_but_not_a_prior_email_one() {
    let attacker = truth(json!({"actor": "attacker", "fraud": true, "controls": ["sms"]}));
    let mut responses = Responses::default();
    let mut platform = Platform::default();

    let sms = platform.after(
        &login("s1", "a"),
        &attacker,
        &challenge(&["sms"]),
        &mut responses,
    );
    assert_eq!(
        sms,
        Some(StepUp {
            channel: VerificationChannel::Sms,
            passed: true
        })
    );
    let next = event(
        json!({"event_id": "n1", "type": "logout", "account_id": "s1",
                            "session_id": "a", "time": time(T0 + 60)}),
    );
    assert_eq!(platform.not_replayed(&next, &attacker), None);

    let prior = platform.after(
        &login("s1", "b"),
        &attacker,
        &challenge(&["prior_email", "sms"]),
        &mut responses,
    );
    assert_eq!(
        prior,
        Some(StepUp {
            channel: VerificationChannel::PriorEmail,
            passed: false
        })
    );
    let next = event(
        json!({"event_id": "n2", "type": "logout", "account_id": "s1",
                            "session_id": "b", "time": time(T0 + 60)}),
    );
    assert_eq!(
        platform.not_replayed(&next, &attacker),
        Some(NotReplayed::SessionEnded),
        "the platform ended the session whose step-up failed"
    );
    // The owner is reached through the e-mail address on file before any
    // change, whatever the attacker did.
    let owner = truth(json!({"actor": "seller", "fraud": false}));
    let passed = platform.after(
        &login("s1", "c"),
        &owner,
        &challenge(&["prior_email"]),
        &mut responses,
    );
    assert_eq!(passed.map(|s| s.passed), Some(true));
    assert_eq!(responses.step_ups.attacker_passed, 1);
    assert_eq!(responses.step_ups.attacker_failed, 1);
    assert_eq!(responses.step_ups.owner_passed, 1);
    assert_eq!(responses.step_ups.by_channel["prior_email"], 2);
}

#[test]
fn a_phone_the_attacker_moved_answers_for_him_until_the_owner_takes_it_back() {
    let mut responses = Responses::default();
    let mut platform = Platform::default();
    let owner = truth(json!({"actor": "seller", "fraud": false}));
    // The owner's usual channel is sms: a step-up with no channel named
    // goes there.
    platform.after(
        &event(
            json!({"event_id": "v", "type": "verification", "account_id": "s1",
                      "time": time(T0), "status": "passed", "channel": "sms"}),
        ),
        &owner,
        &serde_json::from_value(json!({"action": "allow", "score": 0, "reasons": [],
                                       "policy": "test"}))
        .expect("a decision"),
        &mut responses,
    );
    let attacker = truth(json!({"actor": "attacker", "fraud": true}));
    platform.after(
        &event(
            json!({"event_id": "p", "type": "phone_change", "account_id": "s1",
                      "session_id": "a", "time": time(T0 + 10)}),
        ),
        &attacker,
        &serde_json::from_value(json!({"action": "allow", "score": 0, "reasons": [],
                                       "policy": "test"}))
        .expect("a decision"),
        &mut responses,
    );
    let step_up = platform.after(&login("s1", "o"), &owner, &challenge(&[]), &mut responses);
    assert_eq!(
        step_up,
        Some(StepUp {
            channel: VerificationChannel::Sms,
            passed: false
        }),
        "the code went to the attacker's phone"
    );
    assert_eq!(
        platform.hold_answer("s1", VerificationChannel::Sms, true),
        HoldAnswer::AttackerPasses
    );
    assert_eq!(
        platform.hold_answer("s1", VerificationChannel::PriorPhone, true),
        HoldAnswer::OwnerDenies
    );
    platform.after(
        &event(
            json!({"event_id": "back", "type": "phone_change", "account_id": "s1",
                      "session_id": "o2", "time": time(T0 + DAY)}),
        ),
        &owner,
        &serde_json::from_value(json!({"action": "allow", "score": 0, "reasons": [],
                                       "policy": "test"}))
        .expect("a decision"),
        &mut responses,
    );
    assert_eq!(
        platform.hold_answer("s1", VerificationChannel::Sms, false),
        HoldAnswer::OwnerConfirms
    );
    assert_eq!(responses.step_ups.owner_failed, 1);
}

// ---------------------------------------------------------------------------
// Through the replay
// ---------------------------------------------------------------------------

/// Challenges a login from a device the account never used, and holds
/// every payout: nothing else, so the tests see the loop alone.
fn test_rules() -> RulesUnderTest {
    let files = RuleFiles {
        files: vec![
            (
                "ruleset.toml".to_string(),
                "name = \"loop-test\"\nhold_cool_off = \"7d\"\n".to_string(),
            ),
            (
                "rules.toml".to_string(),
                r#"
[[rule]]
id = "login_from_new_device"
description = "A login from a device this account never used."
events = ["login"]
when = 'event.login.status == "success" && !login.first && login.new_device'
action = "challenge"
score = 60

[[rule]]
id = "hold_every_payout"
description = "Every payout waits for the owner's confirmation."
events = ["payout"]
when = "event.amount > 0"
action = "hold"
score = 80
"#
                .to_string(),
            ),
        ],
    };
    let source = files.check().expect("valid rules");
    RulesUnderTest {
        rules: Arc::new(RuleSet::compile(source, 1).expect("rules that compile")),
        dir: None,
    }
}

struct History {
    events: Vec<Value>,
}

impl History {
    /// An owner with a week of logins from one laptop, their own bank
    /// account and a sale.
    fn new(owner_channel: Option<&str>) -> History {
        let mut history = History { events: Vec::new() };
        for day in 0..7 {
            history.push(
                day * DAY,
                json!({"actor": "seller", "fraud": false}),
                json!({"type": "login", "status": "success",
                       "session_id": format!("own-{day}"), "ip": "81.2.69.160",
                       "device_id": "laptop"}),
            );
        }
        if let Some(channel) = owner_channel {
            history.push(
                60,
                json!({"actor": "seller", "fraud": false}),
                json!({"type": "verification", "session_id": "own-0", "status": "passed",
                       "channel": channel}),
            );
        }
        history.push(
            120,
            json!({"actor": "seller", "fraud": false}),
            json!({"type": "payout_destination_change", "session_id": "own-0",
                   "ip": "81.2.69.160", "device_id": "laptop",
                   "destination": {"institution_id": "BANKGB01", "account_number": "10001000"}}),
        );
        history.push(
            DAY,
            json!({"actor": "platform", "fraud": false}),
            json!({"type": "sale", "amount": 90_000, "currency": "EUR"}),
        );
        history
    }

    fn push(&mut self, t: i64, truth: Value, fields: Value) {
        let mut event = json!({"event_id": format!("e{}", self.events.len()),
                               "account_id": "s1", "time": time(T0 + t), "truth": truth});
        for (key, value) in fields.as_object().expect("an object") {
            event[key] = value.clone();
        }
        self.events.push(event);
    }

    /// An attacker's session on day 10 from `device`, in which he sets his
    /// own destination; a stolen payout the next day; and something two
    /// weeks later, past any cool-off.
    fn with_takeover(mut self, device: &str, controls: &[&str]) -> History {
        let attacker = json!({"actor": "attacker", "fraud": true, "campaign": "crew",
                              "scenario": "test-class", "controls": controls});
        self.push(
            10 * DAY,
            attacker.clone(),
            json!({"type": "login", "status": "success", "session_id": "crew-1",
                   "ip": "167.99.1.2", "device_id": device}),
        );
        self.push(
            10 * DAY + 300,
            attacker,
            json!({"type": "payout_destination_change", "session_id": "crew-1",
                   "ip": "167.99.1.2", "device_id": device,
                   "destination": {"institution_id": "EMONGB02", "account_number": "99990000"}}),
        );
        self.push(
            11 * DAY,
            json!({"actor": "platform", "fraud": true, "campaign": "crew",
                   "scenario": "test-class"}),
            json!({"type": "payout", "payout_id": "stolen", "amount": 25_000,
                   "currency": "EUR"}),
        );
        self.push(
            30 * DAY,
            json!({"actor": "platform", "fraud": false}),
            json!({"type": "sale", "amount": 100, "currency": "EUR"}),
        );
        self
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("history.ndjson");
        let mut file = std::fs::File::create(&path).expect("create");
        for event in &self.events {
            writeln!(file, "{event}").expect("write");
        }
        path
    }
}

fn replay(history: &History, responses: bool) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut evaluation = Evaluation::new(history.write(dir.path()), test_rules());
    evaluation.responses = responses;
    let Outcome::Single(report) = evaluate(&evaluation).expect("evaluates") else {
        panic!("no comparison was asked for");
    };
    *report
}

fn stolen_25k() -> Amounts {
    Amounts {
        count: 1,
        value: 25_000,
    }
}

#[test]
fn the_owner_passes_a_step_up_and_the_attacker_fails_it_and_never_gets_his_destination() {
    let mut history = History::new(None).with_takeover("crew-box", &[]);
    // The owner on a new phone: challenged too, and passes.
    history.push(
        12 * DAY,
        json!({"actor": "seller", "fraud": false}),
        json!({"type": "login", "status": "success", "session_id": "own-phone",
               "ip": "81.2.69.160", "device_id": "phone"}),
    );
    let report = replay(&history, true);
    let responses = &report.responses;
    assert_eq!(responses.step_ups.owner_passed, 1);
    assert_eq!(responses.step_ups.attacker_failed, 1);
    assert_eq!(responses.step_ups.attacker_passed, 0);
    assert_eq!(responses.step_ups.by_channel["totp"], 2);
    // His destination change and the payout to it never happened.
    assert_eq!(responses.attacker_events_not_replayed, 2);
    let stolen = &report.stolen["EUR"];
    assert_eq!(stolen.attempted, stolen_25k());
    assert_eq!(stolen.prevented_by_step_up, stolen_25k());
    assert_eq!(stolen.stopped, stolen_25k());
    assert_eq!(stolen.held, Amounts::default());
    let class = &report.stolen_by_class["test-class"];
    assert_eq!(class.share_stopped, Some(1.0));
    assert_eq!(class.share_prevented_by_step_up, Some(1.0));
    assert!(
        report.campaigns.is_empty(),
        "an attacker who failed the step-up took nothing over: {:?}",
        report.campaigns
    );

    // Open loop: the same history replayed as written.
    let open = replay(&history, false);
    assert_eq!(open.responses.attacker_events_not_replayed, 0);
    assert_eq!(open.stolen["EUR"].prevented_by_step_up, Amounts::default());
    assert_eq!(open.stolen["EUR"].held, stolen_25k());
    assert_eq!(open.campaigns.len(), 1);
}

#[test]
fn an_attacker_relaying_the_owners_sms_passes_the_step_up_and_his_payout_is_judged() {
    let history = History::new(Some("sms")).with_takeover("crew-box", &["sms"]);
    let report = replay(&history, true);
    assert_eq!(report.responses.step_ups.attacker_passed, 1);
    assert_eq!(report.responses.step_ups.by_channel["sms"], 1);
    assert_eq!(report.responses.attacker_events_not_replayed, 0);
    let stolen = &report.stolen["EUR"];
    assert_eq!(stolen.prevented_by_step_up, Amounts::default());
    // Held, and the confirmation went through sms, which he answers.
    assert_eq!(report.responses.hold_confirmations.attacker_passed, 1);
    assert_eq!(report.responses.hold_confirmations.by_channel["sms"], 1);
    assert_eq!(report.campaigns.len(), 1);
}

#[test]
fn a_held_fraud_payout_is_denied_by_the_owner_and_cancelled_by_the_compromise_report() {
    // The attacker uses the owner's own device (a stolen cookie): no step-up.
    let mut history = History::new(None).with_takeover("laptop", &[]);
    // An honest payout too, held by the same rule and confirmed.
    history.push(
        2 * DAY,
        json!({"actor": "platform", "fraud": false}),
        json!({"type": "payout", "payout_id": "own", "amount": 10_000, "currency": "EUR"}),
    );
    history
        .events
        .sort_by_key(|e| e["time"].as_str().unwrap_or_default().to_string());
    let report = replay(&history, true);
    let responses = &report.responses;
    assert_eq!(responses.step_ups, Default::default());
    assert_eq!(responses.hold_confirmations.owner_confirmed, 1);
    assert_eq!(responses.hold_confirmations.owner_denied, 1);
    assert_eq!(responses.hold_confirmations.attacker_passed, 0);
    assert_eq!(responses.compromise_reports, 1);
    assert_eq!(responses.holds_cancelled_by_reports, 1);
    let stolen = &report.stolen["EUR"];
    assert_eq!(stolen.held, stolen_25k(), "cancelled: stopped for good");
    assert_eq!(stolen.held_then_released, Amounts::default());
    assert_eq!(stolen.stopped, stolen_25k());
    let legit = &report.legit_payouts["EUR"];
    assert_eq!(legit.held.count, 1);
    assert_eq!(report.honest_cost.payouts_held.hit, 1);
    assert_eq!(
        report.honest_cost.payouts_held.by_cause["hold_every_payout"],
        1
    );

    // The same, with the attacker answering the confirmation: the payout is
    // not denied and nothing is reported.
    let history = History::new(None).with_takeover("laptop", &["totp"]);
    let report = replay(&history, true);
    assert_eq!(report.responses.hold_confirmations.attacker_passed, 1);
    assert_eq!(report.responses.compromise_reports, 0);
}
