//! The session-theft features through the engine: a session or device seen
//! in two places at once, a device on another platform, a session that goes
//! straight to payout settings, the owner's hours, and identifiers shared
//! across sellers. Each against the honest look-alike it must not fire on.

use serde_json::{Value, json};

use super::{DAY, at, event};
use crate::features::{FeatureConfig, FeatureSet};
use crate::{Decision, Engine};

pub(crate) const CHROME_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/67.0.3396.99 Safari/537.36";

/// Where an event comes from and on what: the enrichment a platform (or
/// the enricher) attaches.
pub(crate) fn from(
    country: &str,
    latitude: f64,
    longitude: f64,
    asn: u32,
    browser: &str,
    os: &str,
) -> Value {
    json!({"network": {"country": country, "latitude": latitude, "longitude": longitude, "asn": asn},
           "client": {"browser": browser, "browser_version": "67", "os": os, "os_version": "10"}})
}

/// The owner at home in Leeds, on BT, Chrome on Windows.
pub(crate) fn leeds() -> Value {
    from("GB", 53.8, -1.55, 2856, "Chrome", "Windows")
}

/// The attacker in Lagos, with the victim's user agent copied.
pub(crate) fn lagos() -> Value {
    from("NG", 6.45, 3.39, 29465, "Chrome", "Windows")
}

/// A phone on a carrier's NAT pool, located 400 km away in the same country.
pub(crate) fn carrier_in_plymouth() -> Value {
    from("GB", 50.37, -4.14, 12576, "Chrome", "Windows")
}

/// Sellers on one engine, each event stamped with an id and a time.
pub(crate) struct Sellers {
    pub engine: Engine,
    n: u32,
    pub log: Vec<(crate::Event, Decision)>,
}

impl Sellers {
    /// The default rules; every feature recorded, so tests can read them.
    pub fn new() -> Sellers {
        let config = FeatureConfig {
            record: FeatureSet::ALL,
            ..Default::default()
        };
        Sellers {
            engine: Engine::with_features(
                std::sync::Arc::new(crate::rules::default_rule_set()),
                config,
            ),
            n: 0,
            log: Vec::new(),
        }
    }

    pub fn send(&mut self, account: &str, t: i64, ty: &str, fields: Value) -> Decision {
        self.n += 1;
        let mut v = json!({"event_id": format!("e{}", self.n), "type": ty, "account_id": account, "time": at(t)});
        for (k, x) in fields.as_object().unwrap() {
            v[k] = x.clone();
        }
        let e = event(v);
        let d = self.engine.process(&e);
        self.log.push((e, d.clone()));
        d
    }

    /// A login from `enrichment` on `device`, opening `session`.
    pub fn login(
        &mut self,
        account: &str,
        t: i64,
        session: &str,
        device: &str,
        enrichment: Value,
    ) -> Decision {
        self.send(
            account,
            t,
            "login",
            json!({"status": "success", "session_id": session, "ip": "81.2.69.160",
                   "device_id": device, "user_agent": CHROME_WIN, "enrichment": enrichment}),
        )
    }

    /// Forty days of an honest seller: a login each morning from home on
    /// the laptop, a bank account set on the first day, a sale and a
    /// payout every week.
    pub fn with_history(account: &str) -> Sellers {
        let mut s = Sellers::new();
        s.history(account);
        s
    }

    pub fn history(&mut self, account: &str) {
        for day in 0..40 {
            let t = day * DAY + 8 * 3600;
            self.login(
                account,
                t,
                &format!("{account}-home-{day}"),
                "laptop",
                leeds(),
            );
            if day == 0 {
                self.send(
                    account,
                    t + 60,
                    "payout_destination_change",
                    json!({"session_id": format!("{account}-home-0"),
                           "destination": {"institution_id": "20-00-00", "account_number": "11112222"}}),
                );
            }
            if day % 7 == 3 {
                self.send(
                    account,
                    t + 120,
                    "sale",
                    json!({"amount": 20_000, "currency": "GBP"}),
                );
                self.send(
                    account,
                    t + 180,
                    "payout",
                    json!({"session_id": format!("{account}-home-{day}"), "payout_id": format!("p{day}"),
                           "amount": 20_000, "currency": "GBP"}),
                );
            }
        }
    }

    pub fn session(&self, account: &str, session: &str) -> &crate::state::SessionState {
        self.engine
            .account(account)
            .and_then(|a| a.sessions.iter().find(|s| s.session_id == session))
            .unwrap_or_else(|| panic!("no session {session} on {account}"))
    }
}

fn flag(d: &Decision, name: &str) -> Option<bool> {
    d.features.flag_of(name)
}

fn number(d: &Decision, name: &str) -> Option<f64> {
    d.features.number_of(name)
}

fn mule() -> Value {
    json!({"institution_id": "60-83-71", "institution_type": "bank", "account_number": "99990001"})
}

const T: i64 = 41 * DAY + 8 * 3600;

#[test]
fn a_session_cookie_used_abroad_minutes_after_the_owner_is_impossible_travel() {
    let mut s = Sellers::with_history("seller");
    s.login("seller", T, "owner", "laptop", leeds());
    // Twenty minutes later the kit's operator acts in the owner's session
    // from Lagos, with the owner's device id and user agent.
    let change = s.send(
        "seller",
        T + 1_200,
        "payout_destination_change",
        json!({"session_id": "owner", "device_id": "laptop", "user_agent": CHROME_WIN,
               "destination": mule(), "enrichment": lagos()}),
    );
    assert_eq!(flag(&change, "session.impossible_travel"), Some(true));
    assert!(number(&change, "session.travel_kmh").unwrap() > 10_000.0);
    // The session is risky from then on, read back from the decision.
    let session = s.session("seller", "owner");
    assert!(session.risky && session.client.theft_suspected);
    assert!(
        s.engine
            .account("seller")
            .unwrap()
            .destination
            .as_ref()
            .unwrap()
            .set_in_risky_session,
        "the change itself counts as made in a risky session"
    );
}

#[test]
fn a_device_id_cloned_into_a_session_of_its_own_is_caught_by_the_devices_place() {
    let mut s = Sellers::with_history("seller");
    s.login("seller", T, "owner", "laptop", leeds());
    // No login, a session id the account never saw, the owner's device id.
    let d = s.send(
        "seller",
        T + 600,
        "email_change",
        json!({"session_id": "forged", "device_id": "laptop", "enrichment": lagos()}),
    );
    assert_eq!(flag(&d, "session.impossible_travel"), Some(true));
    assert!(s.session("seller", "forged").risky);
}

#[test]
fn carrier_nat_roaming_and_a_move_across_town_are_not_impossible_travel() {
    let mut s = Sellers::with_history("seller");
    s.login("seller", T, "owner", "laptop", leeds());
    // A phone on a carrier pool located 400 km away, five minutes later:
    // fast, but inside one country.
    let nat = s.send(
        "seller",
        T + 300,
        "payout",
        json!({"session_id": "owner", "device_id": "laptop", "payout_id": "n1", "amount": 100,
               "currency": "GBP", "enrichment": carrier_in_plymouth()}),
    );
    assert!(number(&nat, "session.travel_kmh").unwrap() > 1_000.0);
    assert_eq!(flag(&nat, "session.impossible_travel"), Some(false));
    // Abroad, a roaming phone exits through the home ISP the account knows.
    s.login(
        "seller",
        T + DAY,
        "trip",
        "laptop",
        from("ES", 40.4, -3.7, 12479, "Chrome", "Windows"),
    );
    let roaming = s.send(
        "seller",
        T + DAY + 300,
        "payout",
        json!({"session_id": "trip", "device_id": "laptop", "payout_id": "r1", "amount": 100,
               "currency": "GBP", "enrichment": leeds()}),
    );
    assert_eq!(flag(&roaming, "session.impossible_travel"), Some(false));
    // Home to the office across town.
    s.login("seller", T + 3 * DAY, "work", "laptop", leeds());
    let office = s.send(
        "seller",
        T + 3 * DAY + 1_800,
        "payout",
        json!({"session_id": "work", "device_id": "laptop", "payout_id": "o1", "amount": 100,
               "currency": "GBP", "enrichment": from("GB", 53.79, -1.50, 5089, "Chrome", "Windows")}),
    );
    assert_eq!(flag(&office, "session.impossible_travel"), Some(false));
    assert!(!s.session("seller", "work").risky);
}

#[test]
fn a_known_device_on_another_browser_family_is_a_platform_change_an_update_is_not() {
    let mut s = Sellers::with_history("seller");
    let update = s.login(
        "seller",
        T,
        "updated",
        "laptop",
        json!({"client": {"browser": "Chrome", "browser_version": "120", "os": "Windows", "os_version": "11"}}),
    );
    assert_eq!(flag(&update, "device.platform_changed"), Some(false));
    let unknown = s.login("seller", T + 60, "bare", "laptop", json!({}));
    assert_eq!(flag(&unknown, "device.platform_changed"), Some(false));
    let copied = s.login(
        "seller",
        T + 120,
        "copied",
        "laptop",
        json!({"client": {"browser": "Firefox", "os": "Linux"}}),
    );
    assert_eq!(flag(&copied, "device.platform_changed"), Some(true));
    assert!(s.session("seller", "copied").client.theft_suspected);
    let new_device = s.login("seller", T + 180, "phone", "new-phone", json!({}));
    assert_eq!(flag(&new_device, "device.platform_changed"), None);
}

#[test]
fn a_passed_verification_re_enrols_the_device_with_the_sessions_platform() {
    let mut s = Sellers::with_history("seller");
    let firefox = || json!({"client": {"browser": "Firefox", "os": "Windows"}});
    s.login("seller", T, "switched", "laptop", firefox());
    s.send(
        "seller",
        T + 60,
        "verification",
        json!({"session_id": "switched", "status": "passed", "method": "sms"}),
    );
    let next = s.login("seller", T + DAY, "next", "laptop", firefox());
    assert_eq!(flag(&next, "device.platform_changed"), Some(false));
}

#[test]
fn a_destination_change_as_the_sessions_first_act_goes_straight_to_payout_settings() {
    let mut s = Sellers::with_history("seller");
    let change = |s: &mut Sellers, t: i64, session: &str| {
        s.send(
            "seller",
            t,
            "payout_destination_change",
            json!({"session_id": session, "destination": mule()}),
        )
    };
    s.login("seller", T, "kit", "laptop", leeds());
    let straight = change(&mut s, T + 90, "kit");
    assert_eq!(
        flag(&straight, "session.straight_to_payout_settings"),
        Some(true)
    );
    // A step-up in between is the platform's, not the seller's act.
    s.login("seller", T + DAY, "stepped", "laptop", leeds());
    s.send(
        "seller",
        T + DAY + 30,
        "verification",
        json!({"session_id": "stepped", "status": "passed"}),
    );
    let after_step_up = change(&mut s, T + DAY + 90, "stepped");
    assert_eq!(
        flag(&after_step_up, "session.straight_to_payout_settings"),
        Some(true)
    );
    // A payout first, or half an hour of other work: not straight there.
    s.login("seller", T + 2 * DAY, "busy", "laptop", leeds());
    s.send(
        "seller",
        T + 2 * DAY + 30,
        "payout",
        json!({"session_id": "busy", "payout_id": "b1", "amount": 100, "currency": "GBP"}),
    );
    let later = change(&mut s, T + 2 * DAY + 90, "busy");
    assert_eq!(
        flag(&later, "session.straight_to_payout_settings"),
        Some(false)
    );
    s.login("seller", T + 3 * DAY, "slow", "laptop", leeds());
    let slow = change(&mut s, T + 3 * DAY + 1_800, "slow");
    assert_eq!(
        flag(&slow, "session.straight_to_payout_settings"),
        Some(false)
    );
}

#[test]
fn the_pace_ratio_is_the_sessions_rate_of_acts_against_the_owners_own() {
    // Features carry three decimals.
    let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-3, "{got} != {want}");
    let mut s = Sellers::with_history("seller");
    let pace = |s: &Sellers| s.engine.account("seller").expect("seller").session_pace;
    let ratio = |d: &Decision| number(d, "session.pace_ratio").expect("a pace ratio");
    // History: a bank change a minute after the first login and six payouts
    // three minutes after theirs: a usual pace of about 23 acts an hour.
    let usual = pace(&s);
    assert!((usual.ratio(23.3).expect("seven acts") - 1.0).abs() < 0.01);
    // A script: the bank change 20 seconds after the login (counted as a
    // minute: 60 acts an hour), then a payout at 40 seconds (2 acts in a
    // minute: 120 an hour).
    s.login("seller", T, "kit", "laptop", leeds());
    let change = s.send(
        "seller",
        T + 20,
        "payout_destination_change",
        json!({"session_id": "kit", "destination": mule()}),
    );
    close(ratio(&change), usual.ratio(60.0).expect("learnt"));
    let payout = s.send(
        "seller",
        T + 40,
        "payout",
        json!({"session_id": "kit", "payout_id": "k1", "amount": 100, "currency": "GBP"}),
    );
    // The change was learnt first (an ordinary-looking session).
    let mut then = usual;
    then.record(60.0);
    close(ratio(&payout), then.ratio(120.0).expect("learnt"));
    assert!(ratio(&payout) > 4.0, "{}", ratio(&payout));
    // The owner's pace: one act an hour after the login.
    s.login("seller", T + DAY, "calm", "laptop", leeds());
    let calm = s.send(
        "seller",
        T + DAY + 3_600,
        "payout",
        json!({"session_id": "calm", "payout_id": "c1", "amount": 100, "currency": "GBP"}),
    );
    assert!(ratio(&calm) < 0.1, "{}", ratio(&calm));
    // A risky session's acts are not learnt.
    let learnt = pace(&s);
    s.send(
        "seller",
        T + 3 * DAY,
        "login",
        json!({"status": "success", "session_id": "stranger", "ip": "185.220.101.4",
               "device_id": "attacker-box", "user_agent": CHROME_WIN, "enrichment": lagos()}),
    );
    assert!(s.session("seller", "stranger").risky);
    for i in 0..5 {
        s.send(
            "seller",
            T + 3 * DAY + 10 + i,
            "payout",
            json!({"session_id": "stranger", "payout_id": format!("x{i}"), "amount": 100, "currency": "GBP"}),
        );
    }
    assert_eq!(pace(&s), learnt, "a risky session's pace is not learnt");
    // No login seen, no pace.
    let sessionless = s.send(
        "seller",
        T + 5 * DAY,
        "payout",
        json!({"payout_id": "n1", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(number(&sessionless, "session.pace_ratio"), None);
}

#[test]
fn the_hour_share_is_the_owners_activity_near_the_events_time_of_day() {
    let mut s = Sellers::new();
    s.login("fresh", T, "a", "laptop", leeds());
    let young = s.send("fresh", T + 60, "email_change", json!({"session_id": "a"}));
    assert_eq!(
        number(&young, "session.hour_share"),
        None,
        "too little history"
    );
    s.history("seller");
    let usual = s.send("seller", T, "email_change", json!({}));
    assert!(number(&usual, "session.hour_share").unwrap() > 0.9);
    let night = s.send("seller", T + 12 * 3600, "email_change", json!({}));
    assert_eq!(number(&night, "session.hour_share"), Some(0.0));
}

#[test]
fn a_device_hopping_across_victims_is_new_sharing_a_family_computer_is_not() {
    let mut s = Sellers::new();
    // Two shops of one family on one computer for forty days.
    s.history("shop-a");
    for day in 0..40 {
        s.login(
            "shop-b",
            day * DAY + 9 * 3600,
            &format!("b-{day}"),
            "laptop",
            leeds(),
        );
    }
    let family = s.send(
        "shop-b",
        T,
        "payout_destination_change",
        json!({"device_id": "laptop", "destination": mule()}),
    );
    assert_eq!(number(&family, "device.other_accounts"), Some(1.0));
    assert_eq!(number(&family, "device.other_accounts_new"), Some(0.0));
    // One attacker's box on three victims within a fortnight.
    for (n, victim) in ["v1", "v2", "v3"].iter().enumerate() {
        let d = s.send(
            victim,
            T + n as i64 * 5 * DAY,
            "payout_destination_change",
            json!({"device_id": "kit-box", "session_id": format!("k{n}"), "destination": mule()}),
        );
        assert_eq!(number(&d, "device.other_accounts_new"), Some(n as f64));
    }
}

#[test]
fn a_session_id_on_another_sellers_payout_is_counted() {
    let mut s = Sellers::new();
    s.send(
        "victim-1",
        T,
        "payout",
        json!({"session_id": "stolen", "payout_id": "x1", "amount": 100, "currency": "GBP"}),
    );
    let own = s.send(
        "victim-1",
        T + 60,
        "payout",
        json!({"session_id": "stolen", "payout_id": "x2", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(number(&own, "session.other_accounts"), Some(0.0));
    let other = s.send(
        "victim-2",
        T + 120,
        "payout",
        json!({"session_id": "stolen", "payout_id": "y1", "amount": 100, "currency": "GBP"}),
    );
    assert_eq!(number(&other, "session.other_accounts"), Some(1.0));
}

#[test]
fn replaying_the_log_marks_the_same_sessions_and_rebuilds_the_identifier_index() {
    let mut s = Sellers::with_history("seller");
    s.login("seller", T, "owner", "laptop", leeds());
    s.send(
        "seller",
        T + 600,
        "payout_destination_change",
        json!({"session_id": "owner", "device_id": "laptop", "destination": mule(),
               "enrichment": lagos()}),
    );
    s.send(
        "other",
        T + 700,
        "payout_destination_change",
        json!({"session_id": "owner", "device_id": "laptop", "destination": mule()}),
    );
    // A replay under rules that read none of the theft features still
    // marks the session: state reads the stored decision, not the rules.
    let mut replayed = Engine::new(std::sync::Arc::new(
        crate::rules::RuleSet::compile(serde_json::from_value(json!({"name": "none"})).unwrap(), 1)
            .unwrap(),
    ));
    for (e, d) in &s.log {
        replayed.apply(e, d);
    }
    assert_eq!(replayed.snapshot().unwrap(), s.engine.snapshot().unwrap());
    assert!(
        replayed
            .account("seller")
            .unwrap()
            .sessions
            .iter()
            .any(|x| x.session_id == "owner" && x.risky)
    );
    let mut restored = Engine::default();
    restored.restore(&s.engine.snapshot().unwrap()).unwrap();
    assert_eq!(restored.snapshot().unwrap(), s.engine.snapshot().unwrap());
    assert_eq!(restored.identifiers.len(), s.engine.identifiers.len());
    assert!(!restored.identifiers.is_empty());
}

#[test]
fn a_step_up_passed_from_the_thiefs_place_clears_neither_session_nor_account() {
    let mut s = Sellers::with_history("seller");
    s.login("seller", T, "owner", "laptop", leeds());
    // The kit's operator changes the bank details from Lagos: held, the
    // account at risk.
    s.send(
        "seller",
        T + 600,
        "payout_destination_change",
        json!({"session_id": "owner", "device_id": "laptop", "destination": mule(),
               "enrichment": lagos()}),
    );
    assert!(s.engine.account("seller").unwrap().at_risk.is_some());
    // The owner, still at home in the same session, is seen again; then a
    // step-up is passed from Lagos, the relayed one-time code.
    s.send(
        "seller",
        T + 700,
        "logout",
        json!({"session_id": "owner", "device_id": "laptop", "enrichment": leeds()}),
    );
    let relayed = s.send(
        "seller",
        T + 760,
        "verification",
        json!({"session_id": "owner", "status": "passed", "device_id": "laptop",
               "enrichment": lagos()}),
    );
    assert_eq!(flag(&relayed, "session.impossible_travel"), Some(true));
    assert!(s.session("seller", "owner").risky);
    assert!(s.engine.account("seller").unwrap().at_risk.is_some());
    // A verification with no theft signal (the owner confirming by an
    // e-mail link, outside any session) still clears as before.
    s.send(
        "seller",
        T + 7_200,
        "verification",
        json!({"status": "passed"}),
    );
    assert!(s.engine.account("seller").unwrap().at_risk.is_none());
}
