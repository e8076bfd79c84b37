//! The replay end to end: hand-written histories with exact figures, a
//! comparison, and a small simulated campaign.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use custos_core::rules::RuleFiles;
use serde_json::{Value, json};

use super::*;
use crate::report::{Amounts, RuleStats};

const DAY: i64 = 86_400;
/// 2018-03-01.
const T0: i64 = 1_519_862_400;

fn time(t: i64) -> String {
    custos_sim::logins::rfc3339(t)
}

/// A seller with a month of logins from home, a bank account, sales
/// and two payouts; and a second one, taken over from a hosting
/// network on day 40 and paid out to the mule on day 41.
fn history() -> Vec<Value> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut push = |account: &str, t: i64, actor: &str, fraud: bool, fields: Value| {
        n += 1;
        let mut event = json!({"event_id": format!("h{n}"), "account_id": account,
                               "time": time(T0 + t),
                               "truth": {"actor": actor, "fraud": fraud}});
        if fraud {
            event["truth"]["campaign"] = json!("test-crew");
            event["truth"]["scenario"] = json!("hand-written");
        }
        for (key, value) in fields.as_object().expect("an object") {
            event[key] = value.clone();
        }
        out.push(event);
    };
    let home = json!({"network": {"country": "GB", "city": "London", "asn": 5089,
                                  "as_org": "Home Broadband"}});
    let hosting = json!({"network": {"country": "NL", "city": "Amsterdam", "asn": 14061,
                                     "as_org": "DigitalOcean"}});
    for seller in ["s1", "s2"] {
        for day in 0..30 {
            push(
                seller,
                day * DAY,
                "seller",
                false,
                json!({"type": "login",
                "status": "success", "session_id": format!("{seller}-{day}"),
                "ip": "81.2.69.160", "device_id": format!("{seller}-laptop"),
                "enrichment": home}),
            );
        }
        push(
            seller,
            60,
            "seller",
            false,
            json!({"type": "payout_destination_change",
            "session_id": format!("{seller}-0"), "ip": "81.2.69.160",
            "device_id": format!("{seller}-laptop"), "enrichment": home,
            "destination": {"institution_id": "BANKGB01", "account_number": format!("1000{seller}")}}),
        );
        push(
            seller,
            DAY,
            "platform",
            false,
            json!({"type": "sale", "amount": 90_000, "currency": "EUR"}),
        );
        for (i, day) in [14, 28].into_iter().enumerate() {
            push(
                seller,
                day * DAY,
                "platform",
                false,
                json!({"type": "payout",
                "payout_id": format!("{seller}-p{i}"), "amount": 30_000, "currency": "EUR"}),
            );
        }
    }
    push(
        "s2",
        40 * DAY,
        "attacker",
        true,
        json!({"type": "login", "status": "success",
        "session_id": "crew-1", "ip": "167.99.1.2", "device_id": "crew-box", "enrichment": hosting}),
    );
    push(
        "s2",
        40 * DAY + 300,
        "attacker",
        true,
        json!({"type": "payout_destination_change",
        "session_id": "crew-1", "ip": "167.99.1.2", "device_id": "crew-box", "enrichment": hosting,
        "destination": {"institution_id": "EMONGB02", "institution_type": "e_money",
                        "account_number": "9999000011"}}),
    );
    push(
        "s2",
        41 * DAY,
        "platform",
        true,
        json!({"type": "payout", "payout_id": "s2-stolen",
        "amount": 25_000, "currency": "EUR"}),
    );
    // Something past the stolen payout's cool-off, to show it stays held.
    push(
        "s1",
        60 * DAY,
        "platform",
        false,
        json!({"type": "sale", "amount": 100, "currency": "EUR"}),
    );
    out
}

fn write_history(dir: &Path, events: &[Value]) -> PathBuf {
    let path = dir.join("history.ndjson");
    let mut file = std::fs::File::create(&path).expect("create");
    for event in events {
        writeln!(file, "{event}").expect("write");
    }
    path
}

fn args(file: PathBuf) -> Evaluation {
    Evaluation::new(file, RulesUnderTest::built_in())
}

/// A rules directory (`*.toml`, `lists/*.txt`) read the way the binary
/// reads one, compiled as version 1: the library itself reads no rule
/// directories.
pub(crate) fn rules_from_dir(dir: &Path) -> RulesUnderTest {
    let mut files = RuleFiles::default();
    for sub in ["", "lists"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            if path.is_file() && (name.ends_with(".toml") || name.ends_with(".txt")) {
                let relative = if sub.is_empty() {
                    name
                } else {
                    format!("{sub}/{name}")
                };
                let text = std::fs::read_to_string(&path).expect("a rule file");
                files.files.push((relative, text));
            }
        }
    }
    let source = files.check().expect("valid rules");
    RulesUnderTest {
        rules: Arc::new(RuleSet::compile(source, 1).expect("rules that compile")),
        dir: Some(dir.to_path_buf()),
    }
}

/// The history replayed as written: no step-up ends the attacker's session,
/// so the rules' own figures show (the closed loop has its tests in
/// `platform/tests.rs`).
fn open_loop(file: PathBuf) -> Evaluation {
    Evaluation {
        responses: false,
        ..args(file)
    }
}

#[test]
fn a_hand_written_history_gives_exact_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_history(dir.path(), &history());
    let Outcome::Single(report) = evaluate(&open_loop(path)).expect("evaluates") else {
        panic!("no comparison was asked for");
    };
    assert_eq!(report.events.read, 72);
    assert_eq!(report.events.by_attackers, 2);
    let stolen = &report.stolen["EUR"];
    assert_eq!(
        stolen.attempted,
        Amounts {
            count: 1,
            value: 25_000
        }
    );
    assert_eq!(
        stolen.stopped,
        Amounts {
            count: 1,
            value: 25_000
        }
    );
    assert_eq!(
        stolen.held,
        Amounts {
            count: 1,
            value: 25_000
        }
    );
    assert_eq!(stolen.paid, Amounts::default());
    assert_eq!(stolen.share_stopped, Some(1.0));
    let legit = &report.legit_payouts["EUR"];
    assert_eq!(
        legit.total,
        Amounts {
            count: 4,
            value: 120_000
        }
    );
    assert_eq!(legit.held, Amounts::default());
    assert_eq!(legit.share_held, Some(0.0));
    assert_eq!(report.logins.legit, 60);
    assert_eq!(report.logins.attacker, 1);
    assert_eq!(report.campaigns.len(), 1);
    assert_eq!(report.campaigns[0].campaign, "test-crew");
    assert_eq!(report.campaigns[0].scenario, "hand-written");
    assert_eq!(report.campaigns[0].victims, 1);
    // One victim cannot make a campaign.
    assert_eq!(report.campaigns[0].victims_at_detection, None);
    assert_eq!(report.headline.campaigns_missed, 1);
    let decided: u64 = report.events.decisions.values().sum();
    assert_eq!(decided, report.events.read);
    assert_eq!(report.rules_hit.len(), report.rules.rule_count);
    let fired: Vec<&RuleStats> = report
        .rules_hit
        .iter()
        .filter(|r| r.fraud_hits > 0)
        .collect();
    assert!(!fired.is_empty());
    for rule in &report.rules_hit {
        assert!(
            rule.fraud_hits <= rule.hits && rule.fraud_hits <= rule.fraud_events,
            "{rule:?}"
        );
    }
    // The charts start with the first payout.
    assert_eq!(
        report.days.first().map(|d| d.day.as_str()),
        Some("2018-03-15")
    );
    // evaluate() returns the report; writing it is the caller's (the
    // binary's) job, so nothing appears next to the history.
    let html = std::fs::read_to_string(dir.path().join("history.report.html"));
    assert!(html.is_err(), "evaluate() alone writes nothing");
}

#[test]
fn a_rule_set_that_holds_nothing_is_compared_event_by_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_history(dir.path(), &history());
    let rules = dir.path().join("lenient");
    std::fs::create_dir(&rules).expect("mkdir");
    std::fs::write(rules.join("ruleset.toml"), "name = \"lenient\"\n").expect("write");
    std::fs::write(
        rules.join("only.toml"),
        "[[rule]]\nid = \"hold_huge_payouts\"\nevents = [\"payout\"]\n\
         when = \"event.amount > 100000000\"\naction = \"hold\"\n",
    )
    .expect("write");
    let mut args = open_loop(path);
    args.candidate = Some(rules_from_dir(&rules));
    let Outcome::Compared(comparison) = evaluate(&args).expect("evaluates") else {
        panic!("a comparison was asked for");
    };
    assert_eq!(comparison.base.headline.share_stolen_stopped, Some(1.0));
    assert_eq!(
        comparison.candidate.headline.share_stolen_stopped,
        Some(0.0)
    );
    assert_eq!(comparison.candidate.rules.name, "lenient");
    let payout_change = comparison
        .changed
        .iter()
        .find(|c| c.from == "hold" && c.to == "allow")
        .expect("the stolen payout is allowed by the lenient rules");
    // The attacker's bank change and the stolen payout.
    assert_eq!(payout_change.fraud, 2);
    let example = comparison
        .examples
        .iter()
        .find(|e| e.event_type == "payout")
        .expect("an example");
    assert!(example.fraud && example.rules_added.is_empty() && !example.rules_removed.is_empty());
}

#[test]
fn the_default_rules_catch_a_small_simulated_2018_campaign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sim.ndjson");
    let config = custos_sim::model::MarketConfig {
        sellers: 600,
        days: 120,
        seed: 3,
        scenarios: vec![custos_sim::model::Scenario::SellerPhishing2018],
        honest: custos_sim::model::HonestModel::Baseline,
    };
    let file = std::fs::File::create(&path).expect("create");
    custos_sim::market::write(&config, file).expect("write");
    // Linking needs the attackers' destinations: in the open loop every
    // victim's attacker gets to set one.
    let Outcome::Single(open) = evaluate(&open_loop(path.clone())).expect("evaluates") else {
        panic!("no comparison was asked for");
    };
    let campaign = &open.campaigns[0];
    assert_eq!(campaign.campaign, "phishing-2018");
    assert!(campaign.victims >= 5, "{campaign:?}");
    let at = campaign.victims_at_detection.expect("detected");
    assert!(at <= 4, "{campaign:?}");
    let Outcome::Single(report) = evaluate(&args(path)).expect("evaluates") else {
        panic!("no comparison was asked for");
    };
    let stopped = report
        .headline
        .share_stolen_stopped
        .expect("money was stolen");
    assert!(stopped >= 0.9, "{stopped}");
    let held = report.headline.share_legit_payouts_held.expect("payouts");
    assert!(held <= 0.02, "{held}");
    assert!(report.responses.verifications_passed > 0);
}

#[test]
fn per_class_and_per_cause_tallies_add_up_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sim.ndjson");
    let config = custos_sim::model::MarketConfig {
        sellers: 300,
        days: 90,
        seed: 11,
        scenarios: custos_sim::model::Scenario::ALL.to_vec(),
        honest: custos_sim::model::HonestModel::Noisy,
    };
    let file = std::fs::File::create(&path).expect("create");
    custos_sim::market::write(&config, file).expect("write");
    for responses in [true, false] {
        let mut evaluation = args(path.clone());
        evaluation.responses = responses;
        let Outcome::Single(report) = evaluate(&evaluation).expect("evaluates") else {
            panic!("no comparison was asked for");
        };
        assert!(report.stolen_by_class.len() >= 2, "{responses}");
        // The classes add up to the overall figures, amount by amount.
        let mut summed: BTreeMap<String, crate::report::StolenMoney> = BTreeMap::new();
        for class in report.stolen_by_class.values() {
            for (currency, stolen) in &class.currencies {
                summed.entry(currency.clone()).or_default().absorb(stolen);
                assert_eq!(
                    stolen.stopped.value,
                    stolen.blocked.value + stolen.held.value + stolen.prevented_by_step_up.value
                );
                assert_eq!(
                    stolen.attempted.value,
                    stolen.stopped.value + stolen.held_then_released.value + stolen.paid.value,
                    "every stolen payout is stopped, released or paid"
                );
            }
        }
        for (currency, overall) in &report.stolen {
            let summed = &summed[currency];
            assert_eq!(
                (
                    summed.attempted,
                    summed.stopped,
                    summed.blocked,
                    summed.held
                ),
                (
                    overall.attempted,
                    overall.stopped,
                    overall.blocked,
                    overall.held
                )
            );
            assert_eq!(
                (summed.prevented_by_step_up, summed.paid, summed.loans),
                (overall.prevented_by_step_up, overall.paid, overall.loans)
            );
        }
        assert_eq!(summed.len(), report.stolen.len());
        if !responses {
            assert!(
                report
                    .stolen
                    .values()
                    .all(|s| s.prevented_by_step_up == Amounts::default())
            );
        }
        // Each honest hit has exactly one cause; every cause is a rule
        // that asked for it, or none.
        let cost = &report.honest_cost;
        for tally in [
            &cost.payouts_held,
            &cost.destination_changes_held,
            &cost.logins_challenged,
        ] {
            assert_eq!(tally.by_cause.values().sum::<u64>(), tally.hit);
            assert!(
                tally.by_rule.values().sum::<u64>()
                    >= tally.by_cause.values().sum::<u64>()
                        - tally.by_cause.get("(no rule)").copied().unwrap_or(0)
            );
            for rule in tally.by_cause.keys() {
                assert!(
                    rule == "(no rule)" || tally.by_rule.contains_key(rule),
                    "{rule}"
                );
            }
        }
        let legit_total: u64 = report.legit_payouts.values().map(|l| l.total.count).sum();
        let legit_held: u64 = report.legit_payouts.values().map(|l| l.held.count).sum();
        assert_eq!(
            (cost.payouts_held.total, cost.payouts_held.hit),
            (legit_total, legit_held)
        );
        assert_eq!(
            (cost.logins_challenged.total, cost.logins_challenged.hit),
            (report.logins.legit, report.logins.legit_challenged)
        );
        assert!(
            cost.logins_challenged.hit > 0,
            "the history challenges some owners"
        );
        assert!(cost.destination_changes_held.total > 0);
    }
}
