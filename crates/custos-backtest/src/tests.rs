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
        victims: None,
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
        victims: None,
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

/// The rules of [`exact_history`], on purpose not the default ones (those
/// change with the policy; these figures test the backtest's arithmetic):
/// hold a payout of 500.00 or more, a payout to a destination set less than
/// 7 days before, and one to a destination set in a risky session. Cool-off
/// 7 days.
fn exact_rules(dir: &Path) -> RulesUnderTest {
    let rules = dir.join("exact-rules");
    std::fs::create_dir(&rules).expect("mkdir");
    std::fs::write(
        rules.join("ruleset.toml"),
        "name = \"exact\"\nhold_cool_off = \"7d\"\n",
    )
    .expect("write");
    std::fs::write(
        rules.join("payouts.toml"),
        r#"
[[rule]]
id = "large_payout"
events = ["payout"]
when = "event.amount >= 50000"
action = "hold"
score = 50

[[rule]]
id = "fresh_destination"
events = ["payout"]
when = "destination.age < 7d"
action = "hold"
score = 40

[[rule]]
id = "destination_set_in_risky_session"
events = ["payout"]
when = "destination.set_in_risky_session"
action = "hold"
score = 80
"#,
    )
    .expect("write");
    rules_from_dir(&rules)
}

/// Three honest sellers and two crews, every figure worked out below.
///
/// Honest sellers `h1`, `h2`, `h3` and the victims `v1`…`v4` log in from
/// their own laptop and home address every day from day 0 to day 9 (10
/// logins each, 70) and set their own bank on day 0, in their first
/// session (a first login is not risky). `h2` logs in once more on day 10
/// and sets a new bank in that ordinary session: 71 honest logins.
///
/// Honest payouts (EUR, 6 of them, 2,000.00 in all):
/// - `h1`: 200.00 on day 14, allowed; 600.00 on day 30, held (large), and
///   cancelled by an analyst on day 31: held, never released.
/// - `h2`: 200.00 on day 16, held (its bank is 6 days old), cool-off ends 7
///   days after the change, day 17 00:00 exactly; 200.00 on day 17 00:00,
///   its bank exactly 7 days old: the window is `< 7d`, so allowed, and
///   this event of `h2`'s own releases the day-16 hold: 24 h.
/// - `h3`: 700.00 on day 20, held (large), released by an analyst 3 h
///   later; 100.00 on day 25, allowed.
///
/// So 3 of 6 held (1,500.00), 2 released (900.00) after 3 h and 24 h, 1 never
/// (600.00). The median delay is the nearest rank: ceil(0.5 × 2) = the 1st
/// of [3, 24], 3 h; the 90th percentile the 2nd, 24 h.
///
/// Crew A (one laptop, one address at a hosting network, one mule `M1`):
/// - `v1`: login day 40 00:00 (the crew's first act), bank changed to `M1`
///   5 minutes later, payout 300.00 on day 41;
/// - `v2`: login day 45 00:00, change to `M1` at 00:30: the second account
///   linked to `M1` and the laptop: the campaign is detected here,
///   120.5 h after the crew's first act, with 2 victims taken by then;
///   payout 200.00 on day 46;
/// - `v3`: login day 48, change to `M1`, payout 100.00 on day 49: a victim
///   after detection.
///
/// Crew B (another laptop and network, mule `M2`):
/// - `v4`: login day 50, change to `M2`, payout 400.00 on day 51;
/// - `v5`, an account with no history: the crew's login is its first (not
///   risky), so the change to `M2` on day 55 links nothing and puts
///   nothing at risk; its payout of 50.00 on day 63 (the bank 8 days old)
///   is paid. Crew B has one linked account: never detected.
///
/// Every stolen payout but `v5`'s goes to a destination set in a risky
/// session: held, and at its cool-off left for an analyst (the account is
/// at risk), so still held at the end. Stolen: 5 payouts, 1,050.00; stopped
/// 4, 1,000.00 (share 1000/1050); paid 1, 50.00; none blocked or released.
fn exact_history() -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |account: &str, t: i64, actor: &str, crew: Option<&str>, fields: Value| {
        let mut event = json!({"event_id": format!("x{}", out.len() + 1), "account_id": account,
                               "time": time(T0 + t),
                               "truth": {"actor": actor, "fraud": crew.is_some()}});
        if let Some(crew) = crew {
            event["truth"]["campaign"] = json!(crew);
            event["truth"]["scenario"] = json!("hand-written");
        }
        for (key, value) in fields.as_object().expect("an object") {
            event[key] = value.clone();
        }
        out.push(event);
    };
    let bank = |number: &str| json!({"institution_id": "BANKGB01", "account_number": number});
    let payout = |id: &str, amount: u64| json!({"type": "payout", "payout_id": id, "amount": amount, "currency": "EUR"});
    for (n, seller) in ["h1", "h2", "h3", "v1", "v2", "v3", "v4"]
        .iter()
        .enumerate()
    {
        let home = format!("81.2.{}.10", 60 + n);
        for day in 0..10 {
            push(
                seller,
                day * DAY,
                "seller",
                None,
                json!({"type": "login", "status": "success", "session_id": format!("{seller}-{day}"),
                       "ip": home, "device_id": format!("{seller}-laptop")}),
            );
        }
        push(
            seller,
            60,
            "seller",
            None,
            json!({"type": "payout_destination_change", "session_id": format!("{seller}-0"),
                   "ip": home, "device_id": format!("{seller}-laptop"),
                   "destination": bank(&format!("1000{n}"))}),
        );
    }
    push(
        "h2",
        10 * DAY,
        "seller",
        None,
        json!({"type": "login", "status": "success", "session_id": "h2-10",
               "ip": "81.2.61.10", "device_id": "h2-laptop"}),
    );
    push(
        "h2",
        10 * DAY,
        "seller",
        None,
        json!({"type": "payout_destination_change", "session_id": "h2-10",
               "ip": "81.2.61.10", "device_id": "h2-laptop", "destination": bank("20002")}),
    );
    push("h1", 14 * DAY, "platform", None, payout("h1-a", 20_000));
    push("h2", 16 * DAY, "platform", None, payout("h2-a", 20_000));
    push("h2", 17 * DAY, "platform", None, payout("h2-b", 20_000));
    push("h3", 20 * DAY, "platform", None, payout("h3-a", 70_000));
    push(
        "h3",
        20 * DAY + 3 * 3_600,
        "platform",
        None,
        json!({"type": "analyst_action", "action": "release_payout", "target_id": "h3-a",
               "analyst": "ana", "reason": "called the seller"}),
    );
    push("h3", 25 * DAY, "platform", None, payout("h3-b", 10_000));
    push("h1", 30 * DAY, "platform", None, payout("h1-b", 60_000));
    push(
        "h1",
        31 * DAY,
        "platform",
        None,
        json!({"type": "analyst_action", "action": "cancel_payout", "target_id": "h1-b",
               "analyst": "ana", "reason": "not what the seller asked for"}),
    );
    let mule = |number: &str| {
        json!({"institution_id": "EMONGB02", "institution_type": "e_money",
                                     "account_number": number})
    };
    let crews = [
        // (victim, crew, day, minutes to the change, payout day, amount, mule, address, device)
        (
            "v1",
            "crew-a",
            40,
            5,
            41,
            30_000,
            "9000000001",
            "167.99.1.2",
            "crew-a-box",
        ),
        (
            "v2",
            "crew-a",
            45,
            30,
            46,
            20_000,
            "9000000001",
            "167.99.1.2",
            "crew-a-box",
        ),
        (
            "v3",
            "crew-a",
            48,
            5,
            49,
            10_000,
            "9000000001",
            "167.99.1.2",
            "crew-a-box",
        ),
        (
            "v4",
            "crew-b",
            50,
            5,
            51,
            40_000,
            "9000000002",
            "45.33.7.9",
            "crew-b-box",
        ),
        (
            "v5",
            "crew-b",
            55,
            5,
            63,
            5_000,
            "9000000002",
            "45.33.7.9",
            "crew-b-box",
        ),
    ];
    for (victim, crew, day, minutes, paid_on, amount, number, ip, device) in crews {
        let session = format!("{crew}-{victim}");
        push(
            victim,
            day * DAY,
            "attacker",
            Some(crew),
            json!({"type": "login", "status": "success", "session_id": session,
                   "ip": ip, "device_id": device}),
        );
        push(
            victim,
            day * DAY + minutes * 60,
            "attacker",
            Some(crew),
            json!({"type": "payout_destination_change", "session_id": session,
                   "ip": ip, "device_id": device, "destination": mule(number)}),
        );
        push(
            victim,
            paid_on * DAY,
            "platform",
            Some(crew),
            payout(&format!("{victim}-stolen"), amount),
        );
    }
    // In time order (stable: same-time events keep the order above).
    out.sort_by_key(|e| e["time"].as_str().expect("a time").to_string());
    out
}

#[test]
fn a_hand_built_history_with_two_crews_gives_every_headline_figure_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = exact_history();
    let path = write_history(dir.path(), &events);
    let evaluation = Evaluation {
        responses: false,
        ..Evaluation::new(path, exact_rules(dir.path()))
    };
    let Outcome::Single(report) = evaluate(&evaluation).expect("evaluates") else {
        panic!("no comparison was asked for");
    };
    assert_eq!(report.events.read, events.len() as u64);
    // The 5 victims: the crews' logins and changes, 2 each.
    assert_eq!(report.events.by_attackers, 10);
    assert_eq!(
        (report.logins.legit, report.logins.legit_challenged),
        (71, 0)
    );
    assert_eq!(report.logins.attacker, 5);

    let amounts = |count, value| Amounts { count, value };
    let stolen = &report.stolen["EUR"];
    assert_eq!(stolen.attempted, amounts(5, 105_000));
    assert_eq!(stolen.stopped, amounts(4, 100_000));
    assert_eq!(stolen.held, amounts(4, 100_000));
    assert_eq!(stolen.blocked, amounts(0, 0));
    assert_eq!(stolen.held_then_released, amounts(0, 0));
    assert_eq!(stolen.paid, amounts(1, 5_000));
    assert_eq!(stolen.share_stopped, Some(100_000.0 / 105_000.0));
    assert_eq!(
        report.headline.share_stolen_stopped,
        Some(100_000.0 / 105_000.0)
    );

    let legit = &report.legit_payouts["EUR"];
    assert_eq!(legit.total, amounts(6, 200_000));
    assert_eq!(legit.held, amounts(3, 150_000));
    assert_eq!(legit.released, amounts(2, 90_000));
    assert_eq!(legit.never_released, amounts(1, 60_000));
    assert_eq!(legit.share_held, Some(0.5));
    assert_eq!(report.headline.share_legit_payouts_held, Some(0.5));
    assert_eq!(legit.median_delay_hours, Some(3.0));
    assert_eq!(legit.p90_delay_hours, Some(24.0));
    let histogram: Vec<(Option<f64>, u64)> = legit
        .delay_histogram
        .iter()
        .map(|b| (b.up_to_hours, b.count))
        .collect();
    assert_eq!(
        histogram,
        [
            (Some(1.0), 0),
            (Some(6.0), 1),
            (Some(24.0), 1),
            (Some(72.0), 0),
            (Some(168.0), 0),
            (Some(336.0), 0),
            (Some(720.0), 0),
            (None, 0)
        ]
    );

    assert_eq!(report.campaigns.len(), 2);
    let a = &report.campaigns[0];
    assert_eq!((a.campaign.as_str(), a.victims), ("crew-a", 3));
    assert_eq!(a.started_at.as_deref(), Some(time(T0 + 40 * DAY).as_str()));
    assert_eq!(
        a.detected_at.as_deref(),
        Some(time(T0 + 45 * DAY + 30 * 60).as_str())
    );
    assert_eq!(a.victims_at_detection, Some(2));
    assert_eq!(a.delay_hours, Some(120.5));
    assert_eq!(a.victims_linked, 3);
    let b = &report.campaigns[1];
    assert_eq!((b.campaign.as_str(), b.victims), ("crew-b", 2));
    assert_eq!(
        (b.detected_at.as_deref(), b.victims_at_detection),
        (None, None)
    );
    assert_eq!(b.victims_linked, 0);
    // One crew never detected: no worst case to report, one missed.
    assert_eq!(report.headline.worst_victims_at_detection, None);
    assert_eq!(report.headline.campaigns_missed, 1);
}
