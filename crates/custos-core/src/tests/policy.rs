//! The bootstrap policy against the account-takeover chain.

use serde_json::{Value, json};

use super::{DAY, at, event};
use crate::{Action, BootstrapPolicy, Decision, Engine};

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
        Script::with_history_and(BootstrapPolicy::default())
    }

    fn with_history_and(policy: BootstrapPolicy) -> Script {
        let mut s = Script {
            engine: Engine::new(policy),
            n: 0,
        };
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
    let mut s = Script::with_history_and(BootstrapPolicy {
        login_risk_threshold: f64::INFINITY,
        ..BootstrapPolicy::default()
    });
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
fn the_takeover_chain_is_reviewed_then_held() {
    let mut s = Script::with_history();
    s.login(40 * DAY, "atk", "185.220.101.4", "attacker-box");
    let change = s.send(
        40 * DAY + 60,
        "payout_destination_change",
        json!({"session_id": "atk", "destination": mule()}),
    );
    assert_eq!(change.action, Action::Review);
    assert_eq!(
        codes(&change),
        [
            "sensitive_change_in_risky_session",
            "destination_at_e_money_or_prepaid_issuer"
        ]
    );
    // The payout comes days later from another session: still held.
    let payout = s.send(
        42 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 250000, "currency": "GBP"}),
    );
    assert_eq!(payout.action, Action::Hold);
    assert_eq!(
        codes(&payout),
        ["payout_to_destination_set_in_risky_session"]
    );
    assert!(
        payout.reasons[0].message.contains("ending 0001"),
        "{}",
        payout.reasons[0].message
    );
    let loan = s.send(
        42 * DAY,
        "loan_disbursement",
        json!({"loan_id": "l1", "amount": 900000, "currency": "GBP"}),
    );
    assert_eq!(loan.action, Action::Hold);
    // After the cool-off the bootstrap policy lets it go.
    let late = s.send(
        48 * DAY,
        "payout",
        json!({"payout_id": "p2", "amount": 1000, "currency": "GBP"}),
    );
    assert_eq!(late.action, Action::Allow);
    let state = s.engine.account("seller-1").unwrap();
    let money = &state.money[&crate::event::Currency::parse("GBP").unwrap()];
    assert_eq!((money.withheld, money.paid_out), (1_150_000, 1000));
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
    assert_eq!(change.action, Action::Allow);
    let payout = s.send(
        41 * DAY,
        "payout",
        json!({"payout_id": "p1", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(payout.action, Action::Allow);

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
    assert_eq!(released.action, Action::Allow);
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
        ["payout_in_risky_session_after_destination_change"]
    );
    assert_eq!(d.action, Action::Hold);
}

#[test]
fn payout_to_an_unregistered_destination_is_reviewed() {
    let mut s = Script::with_history();
    let d = s.send(
        35 * DAY,
        "payout",
        json!({"payout_id": "p", "amount": 5, "currency": "GBP", "destination": mule()}),
    );
    assert_eq!(
        (d.action, codes(&d)),
        (Action::Review, vec!["payout_to_unregistered_destination"])
    );
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
    assert_eq!(change.action, Action::Review);
    let much_later = s.send(52 * DAY, "phone_change", json!({}));
    assert_eq!(
        much_later.action,
        Action::Allow,
        "outside the implicit session window"
    );
}
