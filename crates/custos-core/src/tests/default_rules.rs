//! The default rules (`rules/`) against the account-takeover chain: each
//! rule is shown firing on the attack it answers, and not on honest use.

use serde_json::{Value, json};

use super::{DAY, at, event};
use std::sync::Arc;

use crate::decision::EffectKind;
use crate::event::VerificationChannel;
use crate::rules::{RuleSet, default_source};
use crate::{Action, Decision, Engine};

struct Script {
    engine: Engine,
    n: u32,
}

impl Script {
    fn new() -> Script {
        Script {
            engine: Engine::default(),
            n: 0,
        }
    }

    fn send(&mut self, t: i64, ty: &str, fields: Value) -> Decision {
        self.n += 1;
        let mut v = json!({"event_id": format!("e{}", self.n), "type": ty, "account_id": "seller-1", "time": at(t)});
        for (k, x) in fields.as_object().unwrap() {
            v[k] = x.clone();
        }
        self.engine.process(&event(v))
    }

    fn login(&mut self, t: i64, session: &str, ip: &str, device: &str) -> Decision {
        self.send(
            t,
            "login",
            json!({"status": "success", "session_id": session, "ip": ip, "device_id": device}),
        )
    }

    /// An honest seller with a month of history from home.
    fn with_history() -> Script {
        Script::with_history_and(crate::rules::default_rule_set())
    }

    fn with_history_and(rules: RuleSet) -> Script {
        Script::with_history_in(Engine::new(Arc::new(rules)))
    }

    /// [`Script::with_history`] recording every feature, also those no
    /// default rule reads.
    fn with_history_recording_all() -> Script {
        let config = crate::features::FeatureConfig {
            record: crate::features::FeatureSet::ALL,
            ..Default::default()
        };
        Script::with_history_in(Engine::with_features(
            Arc::new(crate::rules::default_rule_set()),
            config,
        ))
    }

    fn with_history_in(engine: Engine) -> Script {
        let mut s = Script { engine, n: 0 };
        for day in 0..30 {
            s.login(day * DAY, &format!("home-{day}"), "81.2.69.160", "laptop");
        }
        s.send(
            DAY,
            "payout_destination_change",
            json!({"session_id": "home-1",
            "destination": {"institution_id": "20-00-00", "account_number": "11112222"}}),
        );
        s
    }
}

fn codes(d: &Decision) -> Vec<&str> {
    d.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn mule() -> Value {
    json!({"institution_id": "60-83-71", "institution_type": "e_money", "account_number": "99990001"})
}

#[test]
fn first_login_and_known_logins_are_allowed() {
    let mut s = Script::new();
    let first = s.login(0, "a", "81.2.69.160", "laptop");
    assert_eq!((first.action, first.score), (Action::Allow, 0));
    let again = s.login(DAY, "b", "81.2.69.99", "laptop");
    assert_eq!(
        (again.action, again.score),
        (Action::Allow, 0),
        "same /24 and device"
    );
}

#[test]
fn login_from_new_device_and_network_is_challenged_but_one_alone_is_not() {
    // The device-and-network check alone, with the login-risk model muted.
    let mut source = default_source();
    source.rules.retain(|r| r.id != "high_login_risk");
    let mut s = Script::with_history_and(RuleSet::compile(source, 2).unwrap());
    let d = s.login(31 * DAY, "x", "185.220.101.4", "attacker-box");
    assert_eq!(d.action, Action::Challenge);
    assert_eq!(codes(&d), ["new_device_and_network_login"]);
    let phone = s.login(31 * DAY, "y", "81.2.69.160", "new-phone");
    assert_eq!(
        (phone.action, codes(&phone)),
        (Action::Allow, vec!["new_device"])
    );
    let travel = s.login(31 * DAY, "z", "93.184.216.34", "laptop");
    assert_eq!(
        (travel.action, codes(&travel)),
        (Action::Allow, vec!["new_network"])
    );
}

#[test]
fn the_login_risk_model_challenges_a_new_device_after_a_long_consistent_history() {
    // A month of logins from one laptop: a first login from any new device
    // is unlike the history, and the model steps it up even from home.
    let mut s = Script::with_history();
    let phone = s.login(31 * DAY, "y", "81.2.69.160", "new-phone");
    assert_eq!(phone.action, Action::Challenge);
    assert_eq!(codes(&phone), ["high_login_risk", "new_device"]);
    let known = s.login(31 * DAY + 60, "w", "81.2.69.160", "laptop");
    assert_eq!((known.action, codes(&known)), (Action::Allow, vec![]));
}

#[test]
fn the_takeover_chain_is_held_at_the_change_and_at_the_payout() {
    let mut s = Script::with_history();
    s.login(40 * DAY, "atk", "185.220.101.4", "attacker-box");
    let change = s.send(
        40 * DAY + 60,
        "payout_destination_change",
        json!({"session_id": "atk", "destination": mule()}),
    );
    assert_eq!(change.action, Action::Hold);
    assert_eq!(
        codes(&change),
        [
            "destination_change_in_risky_session",
            "destination_change_needs_owner_confirmation",
            "destination_at_e_money_or_prepaid_issuer",
            "destination_change_straight_after_login"
        ]
    );
    assert_eq!(change.reasons[0].saw["session.risky"], json!(true));
    // The payout comes days later from another session: still held.
    let payout = s.send(
        42 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 250000, "currency": "GBP"}),
    );
    assert_eq!(payout.action, Action::Hold);
    assert_eq!(
        codes(&payout),
        [
            "payout_to_destination_set_in_risky_session",
            "first_payout_to_new_destination",
            "payout_while_account_at_risk"
        ]
    );
    // The explanation shows what the rule saw: set 2 days minus a minute ago.
    let saw = &payout.reasons[0].saw;
    assert_eq!(saw["destination.set_in_risky_session"], json!(true));
    assert_eq!(saw["destination.age"], json!(2 * DAY - 60));
    assert_eq!(payout.policy, "default");
    assert_eq!(payout.rules_version, 1);
    let loan = s.send(
        42 * DAY,
        "loan_disbursement",
        json!({"loan_id": "l1", "amount": 900000, "currency": "GBP"}),
    );
    assert_eq!(loan.action, Action::Hold);
    // The patient attacker waits out the cool-off: the account is still at
    // risk, so the payout is held, and the earlier holds wait for someone.
    let late = s.send(
        48 * DAY,
        "payout",
        json!({"payout_id": "p2", "amount": 1000, "currency": "GBP"}),
    );
    assert_eq!(
        codes(&late),
        [
            "first_payout_to_new_destination",
            "payout_while_account_at_risk"
        ]
    );
    assert!(
        late.effects
            .iter()
            .all(|e| e.kind != EffectKind::HoldReleased)
    );
    let p1 = s.engine.holds().get("seller-1", "p1").unwrap();
    assert!(p1.awaiting_analyst, "{p1:?}");
    // The owner passing a step-up in their own session vouches for that
    // session, not for the attacker's change: the account stays at risk.
    let own_session = s.send(
        48 * DAY + 30,
        "verification",
        json!({"session_id": "owner", "status": "passed"}),
    );
    assert!(own_session.effects.is_empty(), "{:?}", own_session.effects);
    // The owner confirms the account itself (no session: the platform's
    // e-mail link or a support call): the account is cleared, and every
    // hold is released at once, p2 too, whose cool-off is not over (an
    // intended change: the owner's confirmation, not time, releases).
    let verified = s.send(
        48 * DAY + 60,
        "verification",
        json!({"status": "passed", "channel": "identity_document"}),
    );
    let kinds: Vec<EffectKind> = verified.effects.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EffectKind::AccountCleared,
            EffectKind::HoldReleased,
            EffectKind::HoldReleased,
            EffectKind::HoldReleased
        ]
    );
    assert_eq!(s.engine.holds().open_count(), 0);
    let after = s.send(
        48 * DAY + 120,
        "payout",
        json!({"payout_id": "p3", "amount": 1000, "currency": "GBP"}),
    );
    assert_eq!(after.action, Action::Allow);
    let state = s.engine.account("seller-1").unwrap();
    let money = &state.money[&crate::event::Currency::parse("GBP").unwrap()];
    assert_eq!((money.withheld, money.paid_out), (1_151_000, 1000));
}

#[test]
fn a_passed_verification_clears_the_session_and_its_destination() {
    let mut s = Script::with_history();
    s.login(40 * DAY, "trip", "185.220.101.4", "hotel-pc");
    s.send(
        40 * DAY + 10,
        "verification",
        json!({"session_id": "trip", "status": "passed", "method": "sms"}),
    );
    let change = s.send(40 * DAY + 60, "payout_destination_change",
        json!({"session_id": "trip", "destination": {"institution_id": "400000", "account_number": "12345678"}}));
    // The session rules are satisfied; the money side is not: the new bank
    // asks the owner through a channel a session's holder cannot relay.
    assert_eq!(
        (change.action, codes(&change)),
        (
            Action::Challenge,
            vec![
                "destination_change_needs_owner_confirmation",
                "destination_change_straight_after_login"
            ]
        )
    );
    // Unconfirmed, the first payout to the new bank waits for the owner.
    let payout = s.send(
        41 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(codes(&payout), ["first_payout_to_new_destination"]);
    let asked = payout.verification.as_ref().map(|v| v.channels[0]);
    assert_eq!(asked, Some(VerificationChannel::IdentityDocument));
    // A code through the account's current factors is what an attacker
    // holding the session relays: it does not release money bound for a
    // destination never paid before.
    let relayed = s.send(
        41 * DAY + 30,
        "verification",
        json!({"status": "passed", "channel": "totp"}),
    );
    assert!(
        !relayed
            .effects
            .iter()
            .any(|e| e.kind == EffectKind::HoldReleased)
    );
    let confirmed = s.send(
        41 * DAY + 60,
        "verification",
        json!({"status": "passed", "channel": "identity_document"}),
    );
    assert!(
        confirmed
            .effects
            .iter()
            .any(|e| e.kind == EffectKind::HoldReleased)
    );
    let next = s.send(
        42 * DAY,
        "payout",
        json!({"payout_id": "p2", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(next.action, Action::Allow, "{:?}", next.reasons);

    // Verified after the change: the held destination is released too.
    let mut s = Script::with_history();
    s.login(40 * DAY, "atk", "185.220.101.4", "box");
    s.send(
        40 * DAY + 60,
        "payout_destination_change",
        json!({"session_id": "atk", "destination": mule()}),
    );
    s.send(
        40 * DAY + 90,
        "verification",
        json!({"session_id": "atk", "status": "failed"}),
    );
    let still = s.send(
        40 * DAY + 100,
        "payout",
        json!({"payout_id": "p", "amount": 1, "currency": "GBP"}),
    );
    assert_eq!(
        still.action,
        Action::Hold,
        "a failed verification clears nothing"
    );
    s.send(
        40 * DAY + 120,
        "verification",
        json!({"session_id": "atk", "status": "passed"}),
    );
    let released = s.send(
        40 * DAY + 200,
        "payout",
        json!({"payout_id": "p3", "amount": 1, "currency": "GBP"}),
    );
    // The session's rules no longer fire; the first payout to the new
    // destination still waits for the owner (out of band).
    assert_eq!(codes(&released), ["first_payout_to_new_destination"]);
}

#[test]
fn payout_in_risky_session_after_an_honest_change_is_held() {
    let mut s = Script::with_history();
    s.send(
        35 * DAY,
        "payout_destination_change",
        json!({"session_id": "home-29",
        "destination": {"institution_id": "400000", "account_number": "12345678"}}),
    );
    s.login(36 * DAY, "atk", "185.220.101.4", "box");
    let d = s.send(
        36 * DAY + 5,
        "payout",
        json!({"session_id": "atk", "payout_id": "p", "amount": 5, "currency": "GBP"}),
    );
    assert_eq!(
        codes(&d),
        [
            "first_payout_to_new_destination",
            "payout_in_risky_session_after_destination_change"
        ]
    );
    assert_eq!(d.action, Action::Hold);
}

#[test]
fn payout_to_an_unregistered_destination_waits_for_the_owner() {
    let mut s = Script::with_history();
    let d = s.send(
        35 * DAY,
        "payout",
        json!({"payout_id": "p", "amount": 5, "currency": "GBP", "destination": mule()}),
    );
    assert_eq!(
        (d.action, codes(&d)),
        (Action::Hold, vec!["payout_to_unregistered_destination"])
    );
    let hold = s.engine.holds().get("seller-1", "p").expect("held");
    assert!(hold.owner_must_confirm);
    let known = s.send(
        35 * DAY,
        "payout",
        json!({"payout_id": "p2", "amount": 5, "currency": "GBP",
        "destination": {"institution_id": "200000", "account_number": "1111-2222"}}),
    );
    assert_eq!(known.action, Action::Allow);
}

#[test]
fn events_without_session_id_join_the_recent_session() {
    let mut s = Script::with_history();
    s.send(
        50 * DAY,
        "login",
        json!({"status": "success", "ip": "185.220.101.4", "device_id": "box"}),
    );
    let change = s.send(50 * DAY + 600, "email_change", json!({}));
    assert_eq!(change.action, Action::Challenge);
    let much_later = s.send(52 * DAY, "phone_change", json!({}));
    assert_eq!(
        much_later.action,
        Action::Allow,
        "outside the implicit session window"
    );
}

#[test]
fn the_high_login_risk_rule_uses_the_documented_threshold() {
    let source = default_source();
    let rule = source
        .rules
        .iter()
        .find(|r| r.id == "high_login_risk")
        .unwrap();
    let threshold = crate::login_risk::DEFAULT_CHALLENGE_THRESHOLD;
    assert!(
        rule.when.contains(&format!("login.risk >= {threshold:.1}")),
        "{}",
        rule.when
    );
}

/// The default rules with their lists filled in, as an analyst would.
fn with_lists(blocked_ips: &[&str], denied_destinations: &[&str]) -> Script {
    let mut source = default_source();
    let fill = |name: &str, entries: &[&str], source: &mut crate::rules::RuleSetSource| {
        source.lists.get_mut(name).unwrap().entries =
            entries.iter().map(|e| e.to_string()).collect();
    };
    fill("blocked_ips", blocked_ips, &mut source);
    fill("denied_destinations", denied_destinations, &mut source);
    Script::with_history_and(RuleSet::compile(source, 2).unwrap())
}

#[test]
fn a_login_from_a_blocked_range_is_blocked() {
    let mut s = with_lists(&["185.220.100.0/22"], &[]);
    let d = s.login(31 * DAY, "x", "185.220.101.4", "laptop");
    assert_eq!(
        (d.action, d.reasons[0].code.as_str()),
        (Action::Block, "login_blocked_ip")
    );
    let home = s.login(31 * DAY, "y", "81.2.69.160", "laptop");
    assert_eq!(home.action, Action::Allow);
}

#[test]
fn a_destination_on_the_deny_list_is_blocked_when_set_and_when_paid() {
    let mule_token = crate::tests::parser()
        .parse_value(
            json!({"event_id": "t", "type": "payout_destination_change", "account_id": "x",
            "time": super::at(0), "destination": mule()}),
        )
        .map(|e| match e.details {
            crate::Details::PayoutDestinationChange { destination, .. } => {
                destination.account_token
            }
            _ => unreachable!(),
        })
        .unwrap();
    let mut s = with_lists(&[], &[&mule_token]);
    // From the owner's own session: the mule is blocked all the same.
    let change = s.send(
        35 * DAY,
        "payout_destination_change",
        json!({"session_id": "home-29", "destination": mule()}),
    );
    assert_eq!(change.action, Action::Block);
    assert_eq!(change.reasons[0].code, "destination_on_deny_list");
    assert_eq!(
        change.reasons[0].saw["destination.token"],
        json!(mule_token)
    );
    let payout = s.send(
        36 * DAY,
        "payout",
        json!({"payout_id": "p", "amount": 5, "currency": "GBP"}),
    );
    assert_eq!(payout.action, Action::Block);
    // An honest new destination is not.
    let honest = s.send(
        37 * DAY,
        "payout_destination_change",
        json!({"session_id": "home-29",
        "destination": {"institution_id": "400000", "account_number": "12345678"}}),
    );
    assert_eq!(
        (honest.action, codes(&honest)),
        (
            Action::Challenge,
            vec!["destination_change_needs_owner_confirmation"]
        )
    );
}

#[test]
fn switching_off_mfa_in_a_risky_session_is_held_and_in_the_owners_session_is_not() {
    let mut s = Script::with_history();
    let own = s.send(
        31 * DAY,
        "mfa_change",
        json!({"session_id": "home-29", "change": "disabled"}),
    );
    assert_eq!(own.action, Action::Allow);
    s.login(40 * DAY, "atk", "185.220.101.4", "attacker-box");
    let d = s.send(
        40 * DAY + 30,
        "mfa_change",
        json!({"session_id": "atk", "change": "disabled"}),
    );
    assert_eq!(d.action, Action::Hold);
    assert_eq!(
        codes(&d),
        [
            "mfa_disabled_in_risky_session",
            "sensitive_change_in_risky_session"
        ]
    );
    let enabled = s.send(
        40 * DAY + 40,
        "mfa_change",
        json!({"session_id": "atk", "change": "enabled"}),
    );
    assert_eq!(
        (enabled.action, codes(&enabled)),
        (Action::Challenge, vec!["sensitive_change_in_risky_session"])
    );
}

#[test]
fn a_contact_change_in_a_risky_session_is_stepped_up_and_the_owner_passing_ends_the_episode() {
    // The owner's own session: nothing to ask.
    let mut s = Script::with_history();
    let own = s.send(31 * DAY, "email_change", json!({"session_id": "home-29"}));
    assert_eq!(own.action, Action::Allow);

    // A session risky only because of where it comes from: the change is
    // stepped up at once, through a channel that may vouch.
    s.login(40 * DAY, "trip", "185.220.101.4", "hotel-pc");
    let change = s.send(40 * DAY + 30, "phone_change", json!({"session_id": "trip"}));
    assert_eq!(
        (change.action, codes(&change)),
        (Action::Challenge, vec!["sensitive_change_in_risky_session"])
    );
    assert!(s.engine.account("seller-1").unwrap().at_risk.is_some());
    // The owner passes it: the episode the change opened ends, and the
    // next payout to the bank on file is not held.
    s.send(
        40 * DAY + 40,
        "verification",
        json!({"session_id": "trip", "status": "passed", "channel": "totp"}),
    );
    assert!(s.engine.account("seller-1").unwrap().at_risk.is_none());
    let payout = s.send(
        45 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(payout.action, Action::Allow, "{:?}", payout.reasons);

    // Without the step-up passed (an attacker who cannot answer it), the
    // account stays at risk and its payouts wait.
    let mut s = Script::with_history();
    s.login(40 * DAY, "atk", "185.220.101.4", "box");
    s.send(40 * DAY + 30, "email_change", json!({"session_id": "atk"}));
    s.send(
        40 * DAY + 40,
        "verification",
        json!({"session_id": "atk", "status": "failed"}),
    );
    let payout = s.send(
        45 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(codes(&payout), ["payout_while_account_at_risk"]);
}

#[test]
fn an_owner_confirmation_out_of_band_vouches_for_the_destination_set_in_a_risky_session() {
    let mut s = Script::with_history();
    s.login(40 * DAY, "trip", "185.220.101.4", "hotel-pc");
    let change = s.send(40 * DAY + 60, "payout_destination_change",
        json!({"session_id": "trip", "destination": {"institution_id": "400000", "account_number": "12345678"}}));
    assert_eq!(change.action, Action::Hold);
    let first = s.send(
        41 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 100, "currency": "GBP"}),
    );
    assert!(codes(&first).contains(&"payout_to_destination_set_in_risky_session"));
    // The owner confirms out of band, through a channel a takeover cannot
    // pass (money to a new destination asks for one): the payout is
    // released, and the next one, still within the week, is not held a
    // second time.
    s.send(
        41 * DAY + 60,
        "verification",
        json!({"status": "passed", "channel": "identity_document"}),
    );
    let next = s.send(
        43 * DAY,
        "payout",
        json!({"payout_id": "p2", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(next.action, Action::Allow, "{:?}", next.reasons);

    // A confirmation the owner refused vouches for nothing.
    let mut s = Script::with_history();
    s.login(40 * DAY, "atk", "185.220.101.4", "box");
    s.send(
        40 * DAY + 60,
        "payout_destination_change",
        json!({"session_id": "atk", "destination": mule()}),
    );
    s.send(
        41 * DAY + 60,
        "verification",
        json!({"status": "failed", "channel": "email"}),
    );
    let next = s.send(
        43 * DAY,
        "payout",
        json!({"payout_id": "p2", "amount": 100, "currency": "GBP"}),
    );
    assert!(codes(&next).contains(&"payout_to_destination_set_in_risky_session"));
}

#[test]
fn credential_stuffing_success_is_recorded_in_shadow_only() {
    let stuffing = |s: &mut Script| {
        for n in 0..20 {
            s.send(
                40 * DAY + n,
                "login",
                json!({"status": "failure", "ip": "203.0.113.9",
                "account_id": format!("victim-{n}")}),
            );
        }
        s.send(
            40 * DAY + 100,
            "login",
            json!({"status": "success", "session_id": "s",
            "ip": "203.0.113.9", "device_id": "laptop"}),
        )
    };
    let d = stuffing(&mut Script::with_history());
    assert_eq!(d.shadow.len(), 1, "{d:?}");
    assert_eq!(d.shadow[0].code, "login_after_failures_from_address");
    assert_eq!(d.shadow[0].saw["ip.failed_logins_1h"], json!(20.0));
    // Without the shadow rule the decision is the same in every other part.
    let mut source = default_source();
    source
        .rules
        .retain(|r| r.id != "login_after_failures_from_address");
    let without = stuffing(&mut Script::with_history_and(
        RuleSet::compile(source, 2).unwrap(),
    ));
    assert!(without.shadow.is_empty());
    assert_eq!(
        (d.action, d.score, &d.reasons),
        (without.action, without.score, &without.reasons)
    );
}

/// Another seller with a month of logins from its own home and laptop, and
/// its own bank account in its own name.
fn other_seller(s: &mut Script, account: &str, ip: &str, name: &str) {
    for day in 0..30 {
        s.n += 1;
        let e = event(json!({"event_id": format!("h{}", s.n), "type": "login",
            "account_id": account, "time": at(day * DAY), "status": "success",
            "session_id": format!("{account}-{day}"), "ip": ip, "device_id": format!("{account}-laptop")}));
        s.engine.process(&e);
    }
    s.n += 1;
    let e = event(
        json!({"event_id": format!("h{}", s.n), "type": "payout_destination_change",
        "account_id": account, "time": at(DAY + 60), "session_id": format!("{account}-1"),
        "destination": {"institution_id": "20-00-00", "account_number": format!("5555{}", s.n),
                        "holder_name": name}}),
    );
    s.engine.process(&e);
}

/// `account` moves its payouts to `destination` at `t`, from `ip` and `device`.
fn set_destination(
    s: &mut Script,
    account: &str,
    t: i64,
    ip: &str,
    device: &str,
    destination: Value,
) -> Decision {
    s.n += 1;
    let e = event(
        json!({"event_id": format!("x{}", s.n), "type": "payout_destination_change",
        "account_id": account, "time": at(t), "ip": ip, "device_id": device,
        "destination": destination}),
    );
    s.engine.process(&e)
}

fn named_mule(name: &str) -> Value {
    let mut d = mule();
    d["holder_name"] = json!(name);
    d
}

#[test]
fn a_mule_reused_by_unrelated_sellers_weeks_apart_is_reviewed_then_held() {
    let mut s = Script::with_history_recording_all();
    other_seller(&mut s, "victim-1", "81.2.69.1", "Ann Victim");
    other_seller(&mut s, "victim-2", "90.1.2.3", "Bob Victim");
    other_seller(&mut s, "victim-3", "77.4.5.6", "Cid Victim");
    // A patient ring: the attacker on each victim's own device, from an
    // exit near the victim, naming the mule as the victim, weeks apart.
    let first = set_destination(
        &mut s,
        "victim-1",
        31 * DAY,
        "81.2.70.9",
        "victim-1-laptop",
        named_mule("Ann Victim"),
    );
    // Only the owner confirmation every bank change asks for (and the
    // issuer's note).
    assert_eq!(
        (first.action, codes(&first)),
        (
            Action::Challenge,
            vec![
                "destination_change_needs_owner_confirmation",
                "destination_at_e_money_or_prepaid_issuer"
            ]
        )
    );
    let second = set_destination(
        &mut s,
        "victim-2",
        31 * DAY + 60 * DAY,
        "90.1.9.9",
        "victim-2-laptop",
        named_mule("Bob Victim"),
    );
    assert_eq!(second.action, Action::Review, "{:?}", second.reasons);
    assert!(codes(&second).contains(&"destination_used_by_other_accounts"));
    // One ordinary earlier setter under another name is how a partner's
    // or an accountant's account looks too: not linked yet.
    assert!(
        s.engine
            .campaigns()
            .campaign_of_account("victim-1")
            .is_none()
    );
    let f = &second.features;
    assert_eq!(f.number_of("destination.other_accounts_30d"), Some(0.0));
    assert_eq!(f.number_of("destination.other_accounts_180d"), Some(1.0));
    assert_eq!(
        f.number_of("destination.other_accounts_unrelated"),
        Some(1.0)
    );
    assert_eq!(
        f.number_of("destination.other_accounts_other_holder"),
        Some(1.0)
    );
    assert_eq!(
        f.number_of("destination.other_accounts_mule_like"),
        Some(1.0)
    );
    // The second setting was flagged, so it was a risky episode: the third
    // victim, 120 days after the first, has the change held.
    let third = set_destination(
        &mut s,
        "victim-3",
        31 * DAY + 120 * DAY,
        "77.4.9.9",
        "victim-3-laptop",
        named_mule("Cid Victim"),
    );
    assert_eq!(third.action, Action::Hold, "{:?}", third.reasons);
    assert!(codes(&third).contains(&"destination_set_by_other_account_in_risky_episode"));
    assert_eq!(
        third.features.number_of("destination.other_accounts_risky"),
        Some(1.0)
    );
    // A third account makes it a pattern: the first victim, whose own
    // change looked ordinary, is linked back with the other two.
    let campaign = s
        .engine
        .campaigns()
        .campaign_of_account("victim-1")
        .expect("the first victim is linked by the third");
    let mut members: Vec<&str> = campaign
        .accounts
        .iter()
        .map(|m| m.account_id.as_str())
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["victim-1", "victim-2", "victim-3"]);
    let campaign_case = format!("campaign-{}", campaign.id);
    // The same account setting it again is not "another account".
    let again = set_destination(
        &mut s,
        "victim-1",
        31 * DAY + 121 * DAY,
        "81.2.70.9",
        "victim-1-laptop",
        named_mule("Ann Victim"),
    );
    assert_eq!(
        again.features.number_of("destination.other_accounts_180d"),
        Some(2.0)
    );
    // The campaign's case names the three and links each one's own case,
    // once, however often a member's change updates the campaign.
    let cases = s.engine.cases();
    let case = cases.get(&campaign_case).expect("the campaign has a case");
    let mut accounts: Vec<&str> = case.accounts.iter().map(String::as_str).collect();
    accounts.sort_unstable();
    assert_eq!(accounts, ["victim-1", "victim-2", "victim-3"]);
    let mut linked: Vec<&str> = case.linked.iter().map(String::as_str).collect();
    linked.sort_unstable();
    let mut own: Vec<&str> = ["victim-1", "victim-2", "victim-3"]
        .iter()
        .map(|v| {
            cases
                .of_account(v)
                .into_iter()
                .find(|c| c.id != campaign_case)
                .map(|c| c.id.as_str())
                .expect("each victim has a case of its own")
        })
        .collect();
    own.sort_unstable();
    assert_eq!(linked, own);
}

#[test]
fn a_household_or_an_accountant_sharing_one_bank_account_is_not_flagged() {
    let mut s = Script::with_history_recording_all();
    // A couple's two shops, run from one home, months apart; the account is
    // in the family business's name, neither seller's own.
    other_seller(&mut s, "shop-a", "81.2.69.10", "Ann Smith");
    other_seller(&mut s, "shop-b", "81.2.69.11", "Ben Smith");
    let family = || {
        json!({"institution_id": "40-11-22", "account_number": "77001100",
               "holder_name": "Smith Family Trading"})
    };
    let a = set_destination(
        &mut s,
        "shop-a",
        40 * DAY,
        "81.2.69.10",
        "shop-a-laptop",
        family(),
    );
    assert_eq!(codes(&a), ["destination_change_needs_owner_confirmation"]);
    let b = set_destination(
        &mut s,
        "shop-b",
        130 * DAY,
        "81.2.69.11",
        "shop-b-laptop",
        family(),
    );
    assert_eq!(codes(&b), ["destination_change_needs_owner_confirmation"]);
    assert_eq!(
        b.features.number_of("destination.other_accounts_180d"),
        Some(1.0)
    );
    assert_eq!(
        b.features.number_of("destination.other_accounts_unrelated"),
        Some(0.0)
    );
    assert_eq!(
        b.features.number_of("destination.other_accounts_mule_like"),
        Some(0.0)
    );
    // An accountant abroad sets two unrelated clients' bank details to the
    // firm's client account from the office: related through the change.
    other_seller(&mut s, "client-1", "90.1.2.3", "Cat Jones");
    other_seller(&mut s, "client-2", "77.4.5.6", "Dan Brown");
    // The accountant works in both accounts from the office, as usual.
    for client in ["client-1", "client-2"] {
        for day in 40..45 {
            s.n += 1;
            let e = event(json!({"event_id": format!("o{}", s.n), "type": "login",
                "account_id": client, "time": at(day * DAY), "status": "success",
                "session_id": format!("{client}-office-{day}"), "ip": "5.6.7.8", "device_id": "office-pc"}));
            s.engine.process(&e);
            // The first office login is stepped up and passes: a challenged
            // login is learnt only once verified.
            s.n += 1;
            let e = event(
                json!({"event_id": format!("o{}", s.n), "type": "verification",
                "account_id": client, "time": at(day * DAY + 60), "status": "passed",
                "channel": "email", "session_id": format!("{client}-office-{day}")}),
            );
            s.engine.process(&e);
        }
    }
    let firm = || {
        json!({"institution_id": "50-00-01", "account_number": "31415926",
               "holder_name": "Ledger & Co Client Account"})
    };
    let one = set_destination(&mut s, "client-1", 50 * DAY, "5.6.7.8", "office-pc", firm());
    assert_eq!(codes(&one), ["destination_change_needs_owner_confirmation"]);
    let two = set_destination(&mut s, "client-2", 95 * DAY, "5.6.7.8", "office-pc", firm());
    assert_eq!(codes(&two), ["destination_change_needs_owner_confirmation"]);
    assert_eq!(
        two.features
            .number_of("destination.other_accounts_mule_like"),
        Some(0.0)
    );
    // The same client account set by a stranger under another name is not
    // sharing.
    let mut stranger = firm();
    stranger["holder_name"] = json!("Eve Stranger");
    let three = set_destination(&mut s, "victim-9", 96 * DAY, "66.1.1.1", "x", stranger);
    assert_eq!(three.action, Action::Review, "{:?}", three.reasons);
}

#[test]
fn a_holder_name_unlike_the_sellers_own_is_a_feature() {
    let mut s = Script::with_history_recording_all();
    other_seller(&mut s, "seller-9", "81.2.69.10", "Jane Seller");
    let own = set_destination(
        &mut s,
        "seller-9",
        40 * DAY,
        "81.2.69.10",
        "seller-9-laptop",
        json!({"institution_id": "40-11-22", "account_number": "12340000", "holder_name": "SELLER, Jane"}),
    );
    assert_eq!(
        own.features.flag_of("destination.holder_unlike_own"),
        Some(false)
    );
    let other = set_destination(
        &mut s,
        "seller-9",
        41 * DAY,
        "81.2.69.10",
        "seller-9-laptop",
        named_mule("Quick Cash Ltd"),
    );
    assert_eq!(
        other.features.flag_of("destination.holder_unlike_own"),
        Some(true)
    );
}

mod session_theft {
    //! `rules/sessions.toml`: each rule on the session or device theft it
    //! answers, and not on the honest look-alike.

    use serde_json::{Value, json};

    use super::codes;
    use crate::Action;
    use crate::tests::DAY;
    use crate::tests::session_theft::{CHROME_WIN, Sellers, carrier_in_plymouth, lagos, leeds};

    const T: i64 = 41 * DAY + 8 * 3600;

    fn destination(number: &str) -> Value {
        json!({"institution_id": "60-83-71", "institution_type": "bank", "account_number": number})
    }

    #[test]
    fn a_stolen_session_used_abroad_is_held_at_the_change_and_at_the_payout() {
        let mut s = Sellers::with_history("seller");
        s.login("seller", T, "owner", "laptop", leeds());
        let change = s.send(
            "seller",
            T + 1_200,
            "payout_destination_change",
            json!({"session_id": "owner", "device_id": "laptop", "user_agent": CHROME_WIN,
                   "destination": destination("99990001"), "enrichment": lagos()}),
        );
        assert_eq!(change.action, Action::Hold);
        assert!(codes(&change).contains(&"change_or_payout_in_session_seen_from_two_countries"));
        // The session is risky now: the payout into the new destination is
        // held by the payout rules, whatever the payout's own address.
        let payout = s.send(
            "seller",
            T + 1_300,
            "payout",
            json!({"session_id": "owner", "payout_id": "stolen", "amount": 20_000, "currency": "GBP"}),
        );
        assert_eq!(payout.action, Action::Hold);
        assert!(codes(&payout).contains(&"payout_to_destination_set_in_risky_session"));
    }

    #[test]
    fn a_phone_hopping_across_its_carriers_pool_changes_bank_details_unheld() {
        let mut s = Sellers::with_history("seller");
        s.login("seller", T, "owner", "laptop", leeds());
        s.send(
            "seller",
            T + 60,
            "payout",
            json!({"session_id": "owner", "payout_id": "p", "amount": 100, "currency": "GBP"}),
        );
        let change = s.send(
            "seller",
            T + 300,
            "payout_destination_change",
            json!({"session_id": "owner", "device_id": "laptop", "destination": destination("12345678"),
                   "enrichment": carrier_in_plymouth()}),
        );
        // Nothing about the session: only the owner confirmation every new
        // bank asks for.
        assert_eq!(
            (change.action, codes(&change)),
            (
                Action::Challenge,
                vec!["destination_change_needs_owner_confirmation"]
            )
        );
    }

    #[test]
    fn a_device_id_in_another_browser_is_challenged_at_login_and_held_at_a_change() {
        let mut s = Sellers::with_history("seller");
        let firefox_linux = json!({"client": {"browser": "Firefox", "os": "Linux"}});
        let login = s.login("seller", T, "copied", "laptop", firefox_linux.clone());
        assert_eq!(login.action, Action::Challenge);
        assert!(codes(&login).contains(&"login_from_device_on_another_platform"));
        // A cookie replayed without a login, from the copied device.
        let change = s.send(
            "seller",
            T + 600,
            "email_change",
            json!({"session_id": "cookie", "device_id": "laptop", "enrichment": firefox_linux}),
        );
        assert_eq!(change.action, Action::Hold);
        assert!(codes(&change).contains(&"change_or_payout_from_device_on_another_platform"));
        // The owner's browser updating itself is no platform change.
        let update = s.login(
            "seller",
            T + DAY,
            "updated",
            "laptop",
            json!({"client": {"browser": "Chrome", "browser_version": "120", "os": "Windows"}}),
        );
        assert!(!codes(&update).contains(&"login_from_device_on_another_platform"));
    }

    #[test]
    fn a_device_hopping_across_victims_is_held_a_family_computer_is_not() {
        let mut s = Sellers::new();
        for (n, victim) in ["v1", "v2", "v3"].iter().enumerate() {
            let d = s.send(
                victim,
                T + n as i64 * 4 * DAY,
                "payout_destination_change",
                json!({"device_id": "kit-box", "destination": destination(&format!("9999000{n}"))}),
            );
            let held = codes(&d).contains(&"change_or_payout_from_device_new_to_several_sellers");
            assert_eq!(held, n == 2, "victim {victim}: {:?}", codes(&d));
        }
        // Three shops of one family on one computer since the start.
        for shop in ["a", "b", "c"] {
            s.login(shop, 0, &format!("{shop}-0"), "family-pc", leeds());
        }
        let family = s.send(
            "c",
            T,
            "payout_destination_change",
            json!({"device_id": "family-pc", "destination": destination("55556666")}),
        );
        assert!(!codes(&family).contains(&"change_or_payout_from_device_new_to_several_sellers"));
        assert_eq!(
            family.features.number_of("device.other_accounts"),
            Some(2.0)
        );
    }

    #[test]
    fn a_session_replayed_on_another_seller_is_held() {
        let mut s = Sellers::new();
        let payout = |s: &mut Sellers, account: &str, t: i64, id: &str| {
            s.send(
                account,
                t,
                "payout",
                json!({"session_id": "kit-session", "payout_id": id, "amount": 100, "currency": "GBP"}),
            )
        };
        let first = payout(&mut s, "v1", T, "a");
        let again = payout(&mut s, "v1", T + 60, "b");
        assert!(!codes(&first).contains(&"change_or_payout_in_session_of_another_seller"));
        assert!(!codes(&again).contains(&"change_or_payout_in_session_of_another_seller"));
        let replayed = payout(&mut s, "v2", T + 120, "c");
        assert_eq!(replayed.action, Action::Hold);
        assert!(codes(&replayed).contains(&"change_or_payout_in_session_of_another_seller"));
    }

    #[test]
    fn straight_to_payout_settings_at_an_hour_the_owner_never_works_is_flagged_in_shadow() {
        let shadow = |d: &crate::Decision| -> Vec<String> {
            d.shadow.iter().map(|r| r.code.clone()).collect()
        };
        let mut s = Sellers::with_history("seller");
        let night = T + 18 * 3600;
        s.login("seller", night, "night", "laptop", leeds());
        let change = s.send(
            "seller",
            night + 60,
            "payout_destination_change",
            json!({"session_id": "night", "destination": destination("99990001")}),
        );
        assert_eq!(
            shadow(&change),
            ["destination_change_straight_after_login_at_unusual_hour"]
        );
        // Shadow: it decides nothing, and puts no one at risk.
        assert_eq!(
            (change.action, codes(&change)),
            (
                Action::Challenge,
                vec![
                    "destination_change_needs_owner_confirmation",
                    "destination_change_straight_after_login"
                ]
            )
        );
        assert!(s.engine.account("seller").unwrap().at_risk.is_none());
        // At the owner's usual hour only the signal fires.
        let mut usual = Sellers::with_history("seller");
        usual.login("seller", T, "morning", "laptop", leeds());
        let change = usual.send(
            "seller",
            T + 60,
            "payout_destination_change",
            json!({"session_id": "morning", "destination": destination("99990001")}),
        );
        assert!(shadow(&change).is_empty());
        assert_eq!(
            (change.action, codes(&change)),
            (
                Action::Challenge,
                vec![
                    "destination_change_needs_owner_confirmation",
                    "destination_change_straight_after_login"
                ]
            )
        );
    }
}

#[test]
fn the_first_payout_to_a_new_destination_waits_for_the_owner_whatever_the_session() {
    // The attacker holds the owner's session cookie: same session, device
    // and address. No session rule fires; the money side does.
    let mut s = Script::with_history();
    let change = s.send(
        35 * DAY,
        "payout_destination_change",
        json!({"session_id": "home-29", "destination": mule()}),
    );
    // The change asks for the owner's confirmation through a channel the
    // session's holder cannot relay. He answers with a relayed SMS code: that
    // clears the session, but confirms nothing.
    assert_eq!(
        (change.action, codes(&change)),
        (
            Action::Challenge,
            vec![
                "destination_change_needs_owner_confirmation",
                "destination_at_e_money_or_prepaid_issuer"
            ]
        )
    );
    let asked = change
        .verification
        .as_ref()
        .expect("a verification request");
    assert_eq!(
        asked.channels,
        [
            VerificationChannel::IdentityDocument,
            VerificationChannel::SecurityKey
        ]
    );
    assert!(asked.refused.contains(&VerificationChannel::Sms));
    let relayed = s.send(
        35 * DAY + 30,
        "verification",
        json!({"session_id": "home-29", "status": "passed", "channel": "sms"}),
    );
    assert!(relayed.effects.is_empty(), "{:?}", relayed.effects);
    let payout = s.send(
        35 * DAY + 60,
        "payout",
        json!({"session_id": "home-29", "payout_id": "p1", "amount": 90_000, "currency": "GBP"}),
    );
    assert_eq!(
        (payout.action, codes(&payout)),
        (Action::Hold, vec!["first_payout_to_new_destination"])
    );
    assert!(payout.reasons[0].owner_confirms);
    // He passes a step-up in the session (a relayed code): not the owner
    // confirming the payout, so the hold stays.
    let step_up = s.send(
        35 * DAY + 90,
        "verification",
        json!({"session_id": "home-29", "status": "passed", "channel": "sms"}),
    );
    assert!(step_up.effects.is_empty(), "{:?}", step_up.effects);
    // Time passing does not pay him: at expiry the hold waits for a person.
    s.send(50 * DAY, "logout", json!({}));
    let hold = s.engine.holds().get("seller-1", "p1").expect("held");
    assert_eq!(hold.status, crate::holds::HoldStatus::Held);
    assert!(hold.awaiting_analyst && hold.owner_must_confirm);

    // The honest look-alike: the owner's own bank change costs one hold,
    // released as soon as they confirm, not after the cool-off.
    let mut honest = Script::with_history();
    honest.send(
        35 * DAY,
        "payout_destination_change",
        json!({"session_id": "home-29",
               "destination": {"institution_id": "40-00-00", "account_number": "22223333"}}),
    );
    let first = honest.send(
        36 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 90_000, "currency": "GBP"}),
    );
    assert_eq!(first.action, Action::Hold);
    let confirmed = honest.send(
        36 * DAY + 600,
        "verification",
        json!({"status": "passed", "channel": "identity_document"}),
    );
    assert_eq!(
        confirmed.effects.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EffectKind::HoldReleased]
    );
    let next = honest.send(
        50 * DAY,
        "payout",
        json!({"payout_id": "p2", "amount": 90_000, "currency": "GBP"}),
    );
    assert_eq!(next.action, Action::Allow, "{:?}", next.reasons);
    // The owner who confirms the change as they make it, through the
    // channel it asked for, is paid at once.
    let mut confirming = Script::with_history();
    let change = confirming.send(
        35 * DAY,
        "payout_destination_change",
        json!({"session_id": "home-29",
               "destination": {"institution_id": "40-00-00", "account_number": "22223333"}}),
    );
    assert_eq!(change.action, Action::Challenge);
    confirming.send(
        35 * DAY + 60,
        "verification",
        json!({"session_id": "home-29", "status": "passed", "channel": "identity_document"}),
    );
    let paid = confirming.send(
        36 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 90_000, "currency": "GBP"}),
    );
    assert_eq!(paid.action, Action::Allow, "{:?}", paid.reasons);
    // A destination set long ago, or the account's first, is paid at once.
    let mut old = Script::with_history();
    let long_ago = old.send(
        35 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 90_000, "currency": "GBP"}),
    );
    assert_eq!(long_ago.action, Action::Allow, "{:?}", long_ago.reasons);
    let mut fresh = Script::new();
    fresh.login(0, "a", "81.2.69.160", "laptop");
    fresh.send(
        60,
        "payout_destination_change",
        json!({"session_id": "a",
               "destination": {"institution_id": "40-00-00", "account_number": "22223333"}}),
    );
    let onboarding = fresh.send(
        DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 900, "currency": "GBP"}),
    );
    assert_eq!(onboarding.action, Action::Allow, "{:?}", onboarding.reasons);
}

#[test]
fn a_loan_disbursed_to_a_new_destination_waits_for_the_owner() {
    let mut s = Script::with_history();
    s.send(
        35 * DAY,
        "payout_destination_change",
        json!({"session_id": "home-29", "destination": mule()}),
    );
    let loan = s.send(
        50 * DAY,
        "loan_disbursement",
        json!({"loan_id": "l1", "amount": 900_000, "currency": "GBP"}),
    );
    assert_eq!(loan.action, Action::Hold);
    assert!(codes(&loan).contains(&"first_payout_to_new_destination"));
    // Past the 30-day look-back the destination is no longer new.
    let later = s.send(
        66 * DAY,
        "loan_disbursement",
        json!({"loan_id": "l2", "amount": 900_000, "currency": "GBP"}),
    );
    assert!(!codes(&later).contains(&"first_payout_to_new_destination"));
}

#[test]
fn moving_mfa_to_another_method_in_a_risky_session_is_held() {
    let mut s = Script::with_history();
    let own = s.send(
        31 * DAY,
        "mfa_change",
        json!({"session_id": "home-29", "change": "method_changed", "method": "totp"}),
    );
    assert_eq!(own.action, Action::Allow);
    s.login(40 * DAY, "atk", "185.220.101.4", "attacker-box");
    let d = s.send(
        40 * DAY + 30,
        "mfa_change",
        json!({"session_id": "atk", "change": "method_changed", "method": "sms"}),
    );
    assert_eq!(d.action, Action::Hold);
    assert_eq!(codes(&d)[0], "mfa_disabled_in_risky_session");
}

#[test]
fn a_new_destination_soon_after_a_contact_change_is_reviewed() {
    // Lock-out, then cash-out: the phone moved, the bank follows.
    let mut s = Script::with_history();
    s.send(35 * DAY, "phone_change", json!({"session_id": "home-29"}));
    let d = s.send(
        45 * DAY,
        "payout_destination_change",
        json!({"destination": mule()}),
    );
    assert_eq!(
        (d.action, codes(&d)[0]),
        (Action::Review, "destination_change_after_credential_change")
    );
    assert_eq!(
        d.verification.as_ref().map(|v| v.because.clone()),
        Some(vec![
            "phone_change".to_string(),
            "payout_destination_change".to_string()
        ])
    );
    // The honest look-alikes: a bank change long after the phone change,
    // and a change back to a destination the account used before.
    let mut honest = Script::with_history();
    honest.send(35 * DAY, "phone_change", json!({"session_id": "home-29"}));
    let later = honest.send(
        70 * DAY,
        "payout_destination_change",
        json!({"destination": mule()}),
    );
    assert_eq!(
        codes(&later),
        [
            "destination_change_needs_owner_confirmation",
            "destination_at_e_money_or_prepaid_issuer"
        ]
    );
    let back = honest.send(
        71 * DAY,
        "payout_destination_change",
        json!({"destination": {"institution_id": "20-00-00", "account_number": "11112222"}}),
    );
    assert_eq!(back.action, Action::Allow, "{:?}", back.reasons);
}
