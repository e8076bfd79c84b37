//! Behavioural features and the login-risk model, through the engine.

use serde_json::{Value, json};

use super::{DAY, at, event};
use crate::features::FEATURE_NAMES;
use crate::{Action, Decision, Engine};

const CHROME_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/67.0.3396.99 Safari/537.36";

fn home() -> Value {
    json!({"network": {"country": "GB", "city": "Leeds", "latitude": 53.8, "longitude": -1.55,
                       "asn": 2856, "as_org": "British Telecommunications"},
           "client": {"browser": "Chrome", "browser_version": "67", "os": "Windows", "os_version": "10",
                      "device_type": "desktop"}})
}

struct World {
    engine: Engine,
    n: u32,
    names: std::collections::BTreeSet<String>,
    log: Vec<(crate::Event, Decision)>,
}

impl World {
    fn new() -> World {
        // Every feature, not only those the default rules read.
        let config = crate::features::FeatureConfig {
            record: crate::features::FeatureSet::ALL,
            ..Default::default()
        };
        World {
            engine: Engine::with_features(
                std::sync::Arc::new(crate::rules::default_rule_set()),
                config,
            ),
            n: 0,
            names: Default::default(),
            log: Vec::new(),
        }
    }

    fn send(&mut self, account: &str, t: i64, ty: &str, fields: Value) -> Decision {
        self.n += 1;
        let mut v = json!({"event_id": format!("e{}", self.n), "type": ty, "account_id": account, "time": at(t)});
        for (k, x) in fields.as_object().unwrap() {
            v[k] = x.clone();
        }
        let e = event(v);
        let d = self.engine.process(&e);
        self.log.push((e, d.clone()));
        self.names
            .extend(d.features.iter().map(|(n, _)| n.to_string()));
        d
    }

    /// 40 sellers, each logging in daily for 60 days from their own home
    /// address on the same ISP, with their own laptop.
    fn with_history() -> World {
        let mut w = World::new();
        for day in 0..60 {
            for seller in 0..40 {
                w.send(
                    &format!("seller-{seller}"),
                    day * DAY + seller * 60,
                    "login",
                    json!({"status": "success", "session_id": format!("s{seller}-{day}"),
                           "ip": format!("81.2.{seller}.10"), "device_id": format!("laptop-{seller}"),
                           "user_agent": CHROME_WIN, "enrichment": home()}),
                );
            }
        }
        w
    }
}

fn flag(d: &Decision, name: &str) -> bool {
    d.features
        .flag_of(name)
        .unwrap_or_else(|| panic!("{name} missing in {:?}", d.features))
}

fn number(d: &Decision, name: &str) -> f64 {
    d.features
        .number_of(name)
        .unwrap_or_else(|| panic!("{name} missing in {:?}", d.features))
}

#[test]
fn an_attackers_login_stands_out_and_its_risk_follows_the_session() {
    let mut w = World::with_history();
    let t = 61 * DAY;
    let owner = w.send("seller-7", t, "login", json!({"status": "success", "session_id": "own",
        "ip": "81.2.7.10", "device_id": "laptop-7", "user_agent": CHROME_WIN, "enrichment": home()}));
    assert!(number(&owner, "login.risk") < 1.0, "{:?}", owner.features);
    assert!(!flag(&owner, "login.new_device"));
    assert_eq!(owner.action, Action::Allow);

    // Phished: same browser, but a hosting network abroad and a new device.
    let attacker = w.send("seller-7", t + 3600, "login", json!({"status": "success", "session_id": "atk",
        "ip": "185.220.101.4", "device_id": "box", "user_agent": CHROME_WIN,
        "enrichment": {"network": {"country": "NL", "city": "Amsterdam", "latitude": 52.37, "longitude": 4.9,
                                   "asn": 60068, "as_org": "Datacamp"},
                       "client": home()["client"]}}));
    for name in [
        "login.new_device",
        "login.new_ip",
        "login.new_network",
        "login.new_asn",
        "login.new_country",
        "login.hosting_network",
    ] {
        assert!(flag(&attacker, name), "{name}: {:?}", attacker.features);
    }
    let risk = number(&attacker, "login.risk");
    assert!(
        risk > number(&owner, "login.risk") + 2.0,
        "{:?}",
        attacker.features
    );
    assert_eq!(attacker.action, Action::Challenge);

    let change = w.send("seller-7", t + 3700, "payout_destination_change", json!({"session_id": "atk",
        "destination": {"institution_id": "608371", "institution_type": "e_money", "account_number": "99990001"}}));
    assert!(
        (number(&change, "session.risk") - risk).abs() < 0.01,
        "{:?}",
        change.features
    );
    assert_eq!(change.action, Action::Hold, "held until verified");
    // A day later, outside any session: the payout still sees how recent the
    // destination change is.
    let payout = w.send(
        "seller-7",
        t + 3700 + 86_400,
        "payout",
        json!({"payout_id": "p1",
        "amount": 250_000, "currency": "GBP"}),
    );
    assert_eq!(
        number(&payout, "account.hours_since_sensitive_change"),
        24.0
    );
    assert!(payout.features.get("session.risk").is_none());
}

#[test]
fn a_risky_login_on_a_known_network_is_challenged_by_the_model_alone() {
    let mut w = World::with_history();
    // Known /24 and device id never seen but the bootstrap check needs both
    // new: here only the model can tell. Same ISP, a neighbour's address.
    let d = w.send("seller-3", 61 * DAY, "login", json!({"status": "success", "session_id": "x",
        "ip": "81.2.3.99", "device_id": "stranger", "user_agent": "curl/7.58.0",
        "enrichment": {"network": {"country": "RU", "asn": 12389}, "client": {"device_type": "other"}}}));
    assert!(flag(&d, "login.new_device"));
    assert!(!flag(&d, "login.new_network"));
    // The default rule `high_login_risk` challenges at 1.0.
    let risky = d.features.number_of("login.risk").unwrap() >= 1.0;
    assert_eq!(
        risky,
        d.reasons.iter().any(|r| r.code == "high_login_risk"),
        "{d:?}"
    );
    assert!(risky, "{:?}", d.features);
    assert_eq!(d.action, Action::Challenge);
}

#[test]
fn failed_logins_are_counted_per_account_and_per_address_across_accounts() {
    let mut w = World::with_history();
    let t = 61 * DAY;
    // Credential stuffing: one address tries ten accounts.
    let mut last = None;
    for seller in 0..10 {
        last = Some(w.send(
            &format!("seller-{seller}"),
            t + seller * 10,
            "login",
            json!({"status": "failure", "ip": "203.0.113.9", "failure_reason": "wrong_password"}),
        ));
    }
    let last = last.unwrap();
    assert_eq!(
        number(&last, "ip.failed_logins_1h"),
        9.0,
        "counted before this one"
    );
    assert_eq!(number(&last, "account.failed_logins_1h"), 0.0);
    let again = w.send(
        "seller-9",
        t + 200,
        "login",
        json!({"status": "failure", "ip": "203.0.113.9"}),
    );
    assert_eq!(number(&again, "ip.failed_logins_1h"), 10.0);
    assert_eq!(number(&again, "account.failed_logins_1h"), 1.0);
    // An hour later the windows are empty again.
    let later = w.send(
        "seller-9",
        t + 2 * 3600,
        "login",
        json!({"status": "failure", "ip": "203.0.113.9"}),
    );
    assert_eq!(number(&later, "ip.failed_logins_1h"), 0.0);
    assert_eq!(number(&later, "account.failed_logins_1h"), 0.0);
}

#[test]
fn impossible_travel_and_a_new_device_right_after_a_password_reset() {
    let mut w = World::with_history();
    let t = 61 * DAY;
    w.send(
        "seller-1",
        t,
        "login",
        json!({"status": "success", "ip": "81.2.1.10", "device_id": "laptop-1",
        "user_agent": CHROME_WIN, "enrichment": home()}),
    );
    w.send("seller-1", t + 600, "password_reset_request", json!({}));
    // Lagos, 30 minutes after a login in Leeds.
    let d = w.send("seller-1", t + 1800, "login", json!({"status": "success", "ip": "102.89.1.1", "device_id": "phone-x",
        "enrichment": {"network": {"country": "NG", "city": "Lagos", "latitude": 6.45, "longitude": 3.39, "asn": 29465}}}));
    assert!(number(&d, "login.travel_kmh") > 5_000.0, "{:?}", d.features);
    assert!(flag(&d, "login.impossible_travel"));
    assert!(flag(&d, "login.new_device_after_password_reset"));
    // The owner's next login from home a day later travels at a sane speed.
    let home_again = w.send(
        "seller-1",
        t + 3 * DAY,
        "login",
        json!({"status": "success", "ip": "81.2.1.10",
        "device_id": "laptop-1", "user_agent": CHROME_WIN, "enrichment": home()}),
    );
    assert!(!flag(&home_again, "login.impossible_travel"));
}

#[test]
fn every_feature_emitted_is_a_documented_name() {
    let mut w = World::with_history();
    let t = 61 * DAY;
    // An honest bank account, sales and a first payout, for the payout
    // features that compare with history.
    w.send(
        "seller-2",
        t - 7_100,
        "payout_destination_change",
        json!({"destination": {"institution_id": "200000", "account_number": "11112222",
               "country": "GB", "institution_type": "bank", "holder_name": "Jane Seller"}}),
    );
    w.send(
        "seller-2",
        t - 7_000,
        "sale",
        json!({"amount": 900, "currency": "GBP"}),
    );
    w.send(
        "seller-2",
        t - 6_900,
        "payout",
        json!({"payout_id": "p0", "amount": 2, "currency": "GBP"}),
    );
    // Six payouts in the owner's own sessions: the sixth has a pace to
    // compare with.
    for day in 54..60 {
        w.send(
            "seller-3",
            day * DAY + 3 * 60 + 120,
            "payout",
            json!({"session_id": format!("s3-{day}"), "payout_id": format!("q{day}"),
                   "amount": 1, "currency": "GBP"}),
        );
    }
    // After the first payout: a contact change opens the lock-out window.
    w.send("seller-2", t - 6_800, "email_change", json!({}));
    w.send("seller-2", t, "password_reset_request", json!({}));
    w.send(
        "seller-2",
        t + 1,
        "login",
        json!({"status": "failure", "ip": "203.0.113.9"}),
    );
    w.send("seller-2", t + 60, "login", json!({"status": "success", "session_id": "z", "ip": "102.89.1.1",
        "device_id": "new", "user_agent": "x", "enrichment": {"network": {"country": "NG", "city": "Lagos",
        "latitude": 6.45, "longitude": 3.39, "asn": 29465}, "client": {"browser": "Opera"}}}));
    w.send(
        "seller-2",
        t + 80,
        "payout_destination_change",
        json!({"session_id": "z",
        "destination": {"institution_id": "608371", "account_number": "99990001",
                        "country": "IE", "institution_type": "e_money", "holder_name": "Mule Co"}}),
    );
    w.send(
        "seller-2",
        t + 90,
        "payout",
        json!({"session_id": "z", "payout_id": "p", "amount": 5, "currency": "GBP"}),
    );
    w.send(
        "seller-2",
        t + 99,
        "mfa_change",
        json!({"session_id": "z", "change": "disabled"}),
    );
    let documented = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/login-risk.md"
    ))
    .unwrap();
    for name in &w.names {
        assert!(
            FEATURE_NAMES.contains(&name.as_str()),
            "{name} is not in FEATURE_NAMES"
        );
        assert!(
            documented.contains(&format!("`{name}`")),
            "{name} is not documented in docs/login-risk.md"
        );
    }
    assert_eq!(
        w.names.len(),
        FEATURE_NAMES.len(),
        "every name is emitted by this scenario: {:?}",
        w.names
    );
}

#[test]
fn replay_with_stored_decisions_rebuilds_profiles_population_and_windows() {
    let mut live = World::with_history();
    live.send(
        "seller-1",
        61 * DAY,
        "login",
        json!({"status": "failure", "ip": "203.0.113.9"}),
    );
    for seller in ["seller-1", "seller-2"] {
        live.send(
            seller,
            61 * DAY + 60,
            "payout_destination_change",
            json!({"destination": {"institution_id": "608371", "account_number": "99990001"}}),
        );
    }
    let snapshot = live.engine.snapshot().unwrap();
    let mut replayed = Engine::default();
    for (e, d) in &live.log {
        replayed.apply(e, d);
    }
    assert_eq!(replayed.snapshot().unwrap(), snapshot);
    let mut restored = Engine::default();
    restored.restore(&snapshot).unwrap();
    assert_eq!(restored.snapshot().unwrap(), snapshot);
    assert_eq!(restored.population().logins(), 60 * 40);
    assert_eq!(restored.population().accounts(), 40);
    assert_eq!(
        restored.destinations().len(),
        1,
        "the cross-account index too"
    );
}

#[test]
fn destination_and_payout_features_compare_with_the_accounts_history() {
    let mut w = World::with_history();
    let t = 61 * DAY;
    w.send(
        "seller-3",
        t,
        "payout_destination_change",
        json!({"session_id": "s3-59", "destination": {"institution_id": "200000",
               "account_number": "11112222", "country": "GB"}}),
    );
    w.send(
        "seller-3",
        t + 60,
        "sale",
        json!({"amount": 100_000, "currency": "GBP"}),
    );
    for (i, amount) in [10_000, 10_000, 10_000].into_iter().enumerate() {
        let d = w.send(
            "seller-3",
            t + 120 + i as i64,
            "payout",
            json!({"payout_id": format!("p{i}"), "amount": amount, "currency": "GBP"}),
        );
        assert!(!flag(&d, "account.at_risk"));
    }
    // The attacker moves the money to another bank in another country.
    w.send(
        "seller-3",
        t + 3_600,
        "login",
        json!({"status": "success", "session_id": "atk",
        "ip": "185.220.101.4", "device_id": "box", "user_agent": "curl"}),
    );
    let change = w.send(
        "seller-3",
        t + 3_660,
        "payout_destination_change",
        json!({"session_id": "atk", "destination": {"institution_id": "608371",
               "account_number": "99990001", "country": "IE"}}),
    );
    assert!(flag(&change, "destination.previous_other_institution"));
    assert!(flag(&change, "destination.previous_other_country"));
    let session_risk = number(&change, "destination.set_session_risk");
    assert!(session_risk > 1.0, "{session_risk}");
    assert!(
        !flag(&change, "account.at_risk"),
        "features are from before the event"
    );
    let payout = w.send(
        "seller-3",
        t + 7_260,
        "payout",
        json!({"payout_id": "p9", "amount": 40_000, "currency": "GBP"}),
    );
    assert!(flag(&payout, "account.at_risk"));
    assert_eq!(number(&payout, "payout.amount_ratio"), 4.0);
    // 40,000 of the 70,000 left after three payouts of 10,000.
    assert_eq!(number(&payout, "payout.balance_share"), 0.571);
    assert_eq!(
        number(&payout, "destination.set_session_risk"),
        session_risk
    );
    assert_eq!(number(&payout, "account.since_destination_change"), 3_600.0);
    assert!(flag(&payout, "destination.previous_other_institution"));
    assert!(!flag(&payout, "destination.set_during_burst"));
    assert!(!flag(&payout, "institution.burst"));
    assert_eq!(number(&payout, "account.linked_accounts"), 0.0);
    // A change back to a known destination at the same bank and country.
    let back = w.send(
        "seller-3",
        t + 8_000,
        "payout_destination_change",
        json!({"session_id": "atk", "destination": {"institution_id": "608371",
               "account_number": "99990002", "country": "IE"}}),
    );
    assert!(!flag(&back, "destination.previous_other_institution"));
    assert!(!flag(&back, "destination.previous_other_country"));
}

#[test]
fn money_features_follow_what_was_paid_where() {
    let mut w = World::with_history();
    let t = 61 * DAY;
    let bank = |n: &str| json!({"institution_id": "200000", "account_number": n, "country": "GB"});
    w.send(
        "seller-5",
        t,
        "payout_destination_change",
        json!({"session_id": "s5-59", "destination": bank("11110000")}),
    );
    w.send(
        "seller-5",
        t + 60,
        "sale",
        json!({"amount": 100_000, "currency": "GBP"}),
    );
    // The account's first destination: never paid, but it replaced nothing.
    let p0 = w.send(
        "seller-5",
        t + 120,
        "payout",
        json!({"payout_id": "p0", "amount": 10_000, "currency": "GBP"}),
    );
    assert!(flag(&p0, "destination.first_payout"));
    assert!(!flag(&p0, "destination.replaced"));
    assert!(p0.features.number_of("payout.largest_ratio").is_none());
    assert_eq!(number(&p0, "account.new_destinations_7d"), 1.0);
    assert_eq!(p0.action, Action::Allow, "{:?}", p0.reasons);
    let p1 = w.send(
        "seller-5",
        t + 180,
        "payout",
        json!({"payout_id": "p1", "amount": 25_000, "currency": "GBP"}),
    );
    assert!(!flag(&p1, "destination.first_payout"), "paid into before");
    assert_eq!(number(&p1, "payout.largest_ratio"), 2.5);
    // Ten days later the owner moves to another bank account.
    let t = t + 10 * DAY;
    let change = w.send(
        "seller-5",
        t,
        "payout_destination_change",
        json!({"destination": bank("22220000")}),
    );
    assert_eq!(
        number(&change, "account.new_destinations_7d"),
        1.0,
        "the one it sets; the first is older than 7 days"
    );
    let p2 = w.send(
        "seller-5",
        t + 60,
        "payout",
        json!({"payout_id": "p2", "amount": 10_000, "currency": "GBP"}),
    );
    assert!(flag(&p2, "destination.first_payout"));
    assert!(flag(&p2, "destination.replaced"));
    assert_eq!(p2.action, Action::Hold);
    assert_eq!(number(&p2, "payout.largest_ratio"), 0.4);
    // A payout naming a destination no change registered.
    let named = w.send(
        "seller-5",
        t + 120,
        "payout",
        json!({"payout_id": "p3", "amount": 10_000, "currency": "GBP", "destination": bank("33330000")}),
    );
    assert!(flag(&named, "destination.first_payout"));
    assert!(!flag(&named, "destination.known"));
    assert_eq!(number(&named, "account.new_destinations_7d"), 2.0);
    // A loan paid into the new, never-paid destination: cash-out.
    let loan = w.send(
        "seller-5",
        t + 180,
        "loan_disbursement",
        json!({"loan_id": "l1", "amount": 500_000, "currency": "GBP"}),
    );
    assert!(flag(&loan, "destination.first_payout"));
    assert_eq!(loan.action, Action::Hold);
    // The owner confirms out of band: the holds go out and the new
    // destination counts as paid into.
    w.send(
        "seller-5",
        t + 240,
        "verification",
        json!({"status": "passed", "channel": "identity_document"}),
    );
    let p4 = w.send(
        "seller-5",
        t + 300,
        "payout",
        json!({"payout_id": "p4", "amount": 10_000, "currency": "GBP"}),
    );
    assert!(!flag(&p4, "destination.first_payout"));
    assert_eq!(p4.action, Action::Allow, "{:?}", p4.reasons);
    // A phone change starts the lock-out window.
    w.send("seller-5", t + 400, "phone_change", json!({}));
    let p5 = w.send(
        "seller-5",
        t + 400 + 3_600,
        "payout",
        json!({"payout_id": "p5", "amount": 10_000, "currency": "GBP"}),
    );
    assert_eq!(number(&p5, "account.since_credential_change"), 3_600.0);
}
