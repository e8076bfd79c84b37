//! Each adaptive class does what defines it, on one small noisy run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use custos_core::{DestinationTokenizer, EventParser};
use serde_json::Value;

use crate::logins::DAY;
use crate::market::generate;
use crate::model::{HonestModel, MarketConfig, Scenario};

fn config(honest: HonestModel) -> MarketConfig {
    MarketConfig {
        sellers: 600,
        days: 180,
        seed: 4,
        scenarios: Scenario::ADAPTIVE.to_vec(),
        honest,
        victims: None,
    }
}

fn run(config: &MarketConfig) -> Vec<Value> {
    let mut out = Vec::new();
    generate(config, |e| out.push(e));
    out
}

/// One adaptive run with noisy honest sellers, shared by the tests.
fn noisy() -> &'static [Value] {
    static EVENTS: OnceLock<Vec<Value>> = OnceLock::new();
    EVENTS.get_or_init(|| run(&config(HonestModel::Noisy)))
}

fn text<'a>(event: &'a Value, path: &[&str]) -> &'a str {
    let mut value = event;
    for key in path {
        value = &value[*key];
    }
    value.as_str().unwrap_or_default()
}

fn time(event: &Value) -> i64 {
    time::OffsetDateTime::parse(
        text(event, &["time"]),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc 3339")
    .unix_timestamp()
}

fn of_scenario<'a>(events: &'a [Value], scenario: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            text(e, &["truth", "scenario"]) == scenario
                && text(e, &["truth", "actor"]) == "attacker"
        })
        .collect()
}

fn by_account<'a>(events: &[&'a Value]) -> BTreeMap<&'a str, Vec<&'a Value>> {
    let mut accounts: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for event in events {
        accounts
            .entry(text(event, &["account_id"]))
            .or_default()
            .push(event);
    }
    accounts
}

fn controls(event: &Value) -> BTreeSet<&str> {
    event["truth"]["controls"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn prefix24(ip: &str) -> &str {
    ip.rsplit_once('.').map_or(ip, |(net, _)| net)
}

fn destination(event: &Value) -> (String, String) {
    (
        text(event, &["destination", "institution_id"]).to_string(),
        text(event, &["destination", "account_number"]).to_string(),
    )
}

#[test]
fn the_same_arguments_give_the_same_history() {
    let small = MarketConfig {
        sellers: 150,
        days: 90,
        ..config(HonestModel::Noisy)
    };
    let first = run(&small);
    assert!(first.iter().any(|e| e["truth"]["fraud"] == true));
    assert!(run(&small) == first, "a second run differs");
}

#[test]
fn every_event_parses_and_every_class_attacks() {
    let parser = EventParser::new(DestinationTokenizer::new(b"test-key-0123456789abcdef").unwrap());
    let mut types = BTreeSet::new();
    for event in noisy() {
        let mut object = event.as_object().expect("an object").clone();
        object.remove("truth");
        let parsed = parser
            .parse_object(object)
            .unwrap_or_else(|e| panic!("{e}: {event}"));
        types.insert(parsed.event_type.as_str().to_string());
        for channel in controls(event) {
            assert!(
                !["prior_email", "prior_phone", "identity_document"].contains(&channel),
                "{event}"
            );
        }
    }
    for wanted in ["phone_change", "mfa_change", "payout", "loan_application"] {
        assert!(types.contains(wanted), "no {wanted}: {types:?}");
    }
    for scenario in Scenario::ADAPTIVE {
        let events = of_scenario(noisy(), scenario.name());
        assert!(by_account(&events).len() >= 2, "{}", scenario.name());
        let stolen = noisy().iter().filter(|e| {
            text(e, &["truth", "scenario"]) == scenario.name()
                && e["truth"]["fraud"] == true
                && matches!(text(e, &["type"]), "payout" | "loan_disbursement")
        });
        assert!(stolen.count() > 0, "{} steals nothing", scenario.name());
    }
}

#[test]
fn a_session_thief_acts_in_the_victims_session_with_the_victims_device_from_a_new_address() {
    let attacks = of_scenario(noisy(), "session-theft");
    let victims = by_account(&attacks);
    assert!(victims.len() >= 3, "{}", victims.len());
    let mut in_victims_session = 0;
    for (account, attacks) in &victims {
        let own: Vec<&Value> = noisy()
            .iter()
            .filter(|e| {
                text(e, &["account_id"]) == *account
                    && text(e, &["type"]) == "login"
                    && text(e, &["truth", "actor"]) == "seller"
            })
            .collect();
        let first = attacks[0];
        // In the phished session itself, or in a login of his own replayed
        // with the stolen device cookie just after the phished login.
        let session = text(first, &["session_id"]);
        let phished = match own.iter().find(|e| text(e, &["session_id"]) == session) {
            Some(phished) => {
                in_victims_session += 1;
                assert_ne!(text(first, &["type"]), "login", "{first}");
                phished
            }
            None => {
                assert_eq!(text(first, &["type"]), "login", "{first}");
                own.iter()
                    .rfind(|e| time(e) <= time(first) && text(e, &["status"]) == "success")
                    .expect("the phished login comes first")
            }
        };
        assert!(time(phished) <= time(first));
        assert_eq!(text(first, &["device_id"]), text(phished, &["device_id"]));
        assert_eq!(text(first, &["user_agent"]), text(phished, &["user_agent"]));
        let city = text(first, &["enrichment", "network", "city"]);
        assert_eq!(city, text(phished, &["enrichment", "network", "city"]));
        for attack in attacks.iter().filter(|e| !text(e, &["ip"]).is_empty()) {
            let net = prefix24(text(attack, &["ip"]));
            assert!(
                own.iter().all(|e| prefix24(text(e, &["ip"])) != net),
                "{attack}"
            );
        }
        // The kit relays the owner's factor in the phished session only.
        let relayed = controls(first);
        assert_eq!(relayed.len(), 1, "{first}");
        for attack in attacks {
            let answers = controls(attack);
            assert!(answers.is_empty() || answers == relayed, "{attack}");
            assert!(answers.is_empty() || time(attack) - time(first) < 6 * 3_600);
        }
    }
    assert!(in_victims_session >= 1);
}

#[test]
fn a_factor_takeover_waits_past_the_cool_off_and_then_answers_through_what_it_moved() {
    let attacks = of_scenario(noisy(), "factor-takeover");
    let victims = by_account(&attacks);
    assert!(victims.len() >= 3, "{}", victims.len());
    for attacks in victims.values() {
        let moved = attacks
            .iter()
            .find(|e| {
                matches!(
                    text(e, &["type"]),
                    "phone_change" | "email_change" | "mfa_change"
                )
            })
            .expect("a contact or factor moved first");
        let change = attacks
            .iter()
            .find(|e| text(e, &["type"]) == "payout_destination_change")
            .expect("then the destination");
        assert!(time(change) - time(moved) >= 8 * DAY, "{moved} {change}");
        let channel = match text(moved, &["type"]) {
            "phone_change" => "sms",
            "email_change" => "email",
            _ => {
                assert_eq!(text(moved, &["change"]), "method_changed");
                text(moved, &["method"])
            }
        };
        assert!(controls(change).contains(channel), "{change}");
    }
}

#[test]
fn a_profile_poisoner_comes_back_from_one_machine_for_days_before_the_takeover() {
    let attacks = of_scenario(noisy(), "profile-poisoning");
    let victims = by_account(&attacks);
    assert!(victims.len() >= 3, "{}", victims.len());
    for attacks in victims.values() {
        let change = attacks
            .iter()
            .find(|e| text(e, &["type"]) == "payout_destination_change")
            .expect("a takeover");
        let before: Vec<&&Value> = attacks
            .iter()
            .filter(|e| text(e, &["type"]) == "login" && time(e) < time(change))
            .collect();
        assert!(before.len() >= 5, "{}", before.len());
        let devices: BTreeSet<&str> = before.iter().map(|e| text(e, &["device_id"])).collect();
        assert_eq!(devices.len(), 1);
        assert!(time(change) - time(before[0]) >= 5 * DAY);
        assert_eq!(
            text(change, &["device_id"]),
            text(before[0], &["device_id"])
        );
    }
}

#[test]
fn money_evasion_splits_names_unregistered_destinations_and_takes_loans_past_the_loan_rule() {
    let attacks = of_scenario(noisy(), "money-evasion");
    let victims = by_account(&attacks);
    assert!(victims.len() >= 4, "{}", victims.len());
    let (mut split, mut unregistered, mut loans) = (0, 0, 0);
    for (account, attacks) in &victims {
        let registered: BTreeSet<(String, String)> = noisy()
            .iter()
            .filter(|e| {
                text(e, &["account_id"]) == *account
                    && text(e, &["type"]) == "payout_destination_change"
            })
            .map(destination)
            .collect();
        let changes: Vec<&&Value> = attacks
            .iter()
            .filter(|e| text(e, &["type"]) == "payout_destination_change")
            .collect();
        if changes.len() >= 2 {
            split += 1;
        }
        let payouts: Vec<&&Value> = attacks
            .iter()
            .filter(|e| text(e, &["type"]) == "payout")
            .collect();
        if payouts
            .iter()
            .any(|p| !registered.contains(&destination(p)))
        {
            unregistered += 1;
            assert!(changes.is_empty());
        }
        for payout in &payouts {
            assert!(payout["truth"]["fraud"] == true);
            assert!(!text(payout, &["destination", "account_number"]).is_empty());
        }
        if let Some(loan) = attacks
            .iter()
            .find(|e| text(e, &["type"]) == "loan_application")
        {
            loans += 1;
            assert!(time(loan) - time(changes[0]) >= 14 * DAY);
        }
    }
    assert!(
        split >= 1 && unregistered >= 1 && loans >= 1,
        "{split} {unregistered} {loans}"
    );
}

#[test]
fn a_mule_ring_reuses_its_mules_weeks_apart_from_other_networks() {
    let attacks = of_scenario(noisy(), "mule-ring");
    /// When, which account and from which network.
    type Victim<'a> = (i64, &'a str, u64);
    let mut by_mule: HashMap<(String, String), Vec<Victim>> = HashMap::new();
    for change in attacks
        .iter()
        .filter(|e| text(e, &["type"]) == "payout_destination_change")
    {
        let asn = change["enrichment"]["network"]["asn"].as_u64().unwrap_or(0);
        by_mule.entry(destination(change)).or_default().push((
            time(change),
            text(change, &["account_id"]),
            asn,
        ));
    }
    let reused: Vec<&Vec<Victim>> = by_mule.values().filter(|v| v.len() >= 2).collect();
    assert!(!reused.is_empty(), "{by_mule:?}");
    for victims in reused {
        for pair in victims.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= 30 * DAY, "{victims:?}");
            assert_ne!(pair[0].1, pair[1].1);
            assert_ne!(pair[0].2, pair[1].2, "each victim from another network");
        }
    }
}

#[test]
fn noisy_honest_sellers_share_accounts_change_factors_and_pay_out_instantly() {
    let honest = |e: &&Value| text(e, &["truth", "actor"]) == "seller";
    let mut holders: HashMap<(String, String), BTreeSet<&str>> = HashMap::new();
    let mut current: HashMap<&str, (String, String)> = HashMap::new();
    let (mut instant, mut factors) = (0, 0);
    for event in noisy().iter().filter(honest) {
        let account = text(event, &["account_id"]);
        match text(event, &["type"]) {
            "payout_destination_change" => {
                holders
                    .entry(destination(event))
                    .or_default()
                    .insert(account);
                current.insert(account, destination(event));
            }
            "payout" => {
                instant += 1;
                assert_eq!(current.get(account), Some(&destination(event)), "{event}");
            }
            "phone_change" | "mfa_change" => factors += 1,
            _ => {}
        }
    }
    assert!(holders.values().any(|h| h.len() >= 2), "no shared account");
    assert!(instant > 20 && factors > 5, "{instant} {factors}");
    let baseline = run(&MarketConfig {
        sellers: 200,
        days: 90,
        scenarios: Vec::new(),
        ..config(HonestModel::Baseline)
    });
    let noise = |e: &Value| match text(e, &["type"]) {
        "phone_change" | "mfa_change" => true,
        "payout" => e.get("destination").is_some(),
        _ => false,
    };
    assert!(
        !baseline.iter().any(noise),
        "the baseline has none of the noise"
    );
}
