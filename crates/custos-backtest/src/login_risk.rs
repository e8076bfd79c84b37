//! The login-risk model's evaluation (`custos evaluate login-risk`): how
//! well it separates attackers from the sellers they attack, on a generated
//! world with known ground truth ([`custos_sim::logins`]).
//!
//! Events run through the engine in time order, as they would in
//! production: legitimate events are decided and applied (profiles and
//! population learn from them; a challenged login only once the owner
//! passes the step-up, which the evaluation sends a minute later), attack logins are only decided, so that one
//! attack cannot make the next one look familiar and every attack is scored
//! against the victim's true history. Only successful logins of accounts with
//! history are scored (a first login has nothing to compare with).
//!
//! The report gives, for each operating point (the share of legitimate
//! logins a threshold challenges), the threshold on `login.risk` and the
//! share of each attacker model's logins at or above it, plus the ROC AUC,
//! for each configuration of the model (two mixtures, with and without the
//! device family). [`generate`] makes the world, [`report`] scores it, and
//! [`table`] renders the report as text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use custos_core::features::FeatureConfig;
use custos_core::login_risk::Mixture;
use custos_core::{DestinationTokenizer, Engine, Event, EventParser};
use custos_sim::logins::{self, AttackerModel, LoginWorldConfig, SampleKind};
use serde_json::Value;

use crate::Error;

/// Scores of legitimate logins and of each attacker model's.
#[derive(Default)]
struct Scores {
    legit: Vec<f64>,
    attacks: BTreeMap<AttackerModel, Vec<f64>>,
}

fn score_world(
    samples: &[(Event, SampleKind)],
    mixture: Mixture,
    device_family: bool,
    hosting: &[u32],
) -> Scores {
    let mut features = FeatureConfig::default();
    features.risk.mixture = mixture;
    features.risk.device_family = device_family;
    features.hosting_asns.extend(hosting.iter().copied());
    let mut engine = Engine::with_features(
        std::sync::Arc::new(custos_core::rules::default_rule_set()),
        features,
    );
    let mut scores = Scores::default();
    for (event, kind) in samples {
        let is_login = matches!(
            event.details,
            custos_core::Details::Login {
                status: custos_core::event::LoginStatus::Success,
                ..
            }
        );
        let decision = match kind {
            SampleKind::Legit => {
                let decision = engine.process(event);
                // The owner passes the step-up: only then does the account
                // learn a challenged login (docs/login-risk.md).
                if is_login && decision.action >= custos_core::Action::Challenge {
                    engine.process(&passed_step_up(event));
                }
                decision
            }
            SampleKind::Attack(_) => engine.decide(event),
        };
        if !is_login || decision.features.flag_of("login.first") != Some(false) {
            continue;
        }
        let risk = decision.features.number_of("login.risk").unwrap_or(0.0);
        match kind {
            SampleKind::Legit => scores.legit.push(risk),
            SampleKind::Attack(model) => scores.attacks.entry(*model).or_default().push(risk),
        }
    }
    scores
}

/// The verification an owner passes a minute after a challenged login, in
/// its session.
fn passed_step_up(login: &Event) -> Event {
    Event {
        event_id: format!("{}-step-up", login.event_id),
        event_type: custos_core::EventType::Verification,
        time: login.time + std::time::Duration::from_secs(60),
        details: custos_core::Details::Verification {
            status: custos_core::event::VerificationStatus::Passed,
            method: None,
            channel: None,
        },
        attributes: Default::default(),
        enrichment: Default::default(),
        ..login.clone()
    }
}

/// The lowest threshold that challenges at most `share` of `legit`.
fn threshold_for(legit_sorted: &[f64], share: f64) -> f64 {
    let allowed = (legit_sorted.len() as f64 * share).floor() as usize;
    if allowed == 0 {
        return legit_sorted.last().map_or(0.0, |m| m + 1e-9);
    }
    // Scores strictly above the (n - allowed)th value are challenged; ties at
    // the boundary are not, so the share challenged never exceeds `share`.
    let boundary = legit_sorted[legit_sorted.len() - allowed - 1];
    let next_up = legit_sorted[legit_sorted.len() - allowed..]
        .iter()
        .copied()
        .find(|s| *s > boundary)
        .unwrap_or(boundary + 1e-9);
    (boundary + next_up) / 2.0
}

fn share_at_or_above(scores: &[f64], threshold: f64) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|s| **s >= threshold).count() as f64 / scores.len() as f64
}

/// Probability that a random attack scores above a random legit login.
fn auc(legit_sorted: &[f64], attacks: &[f64]) -> f64 {
    if legit_sorted.is_empty() || attacks.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for a in attacks {
        let below = legit_sorted.partition_point(|l| l < a);
        let equal = legit_sorted[below..].partition_point(|l| l <= a);
        total += below as f64 + equal as f64 / 2.0;
    }
    total / (attacks.len() as f64 * legit_sorted.len() as f64)
}

/// A generated world, parsed: every event with who made it.
pub type Samples = Vec<(Event, SampleKind)>;

/// Generates the world of `config` and parses its events.
pub fn generate(config: &LoginWorldConfig) -> Result<Samples, Error> {
    let generated = logins::generate(config);
    let parser = EventParser::new(
        DestinationTokenizer::new(b"eval-key-0123456789abcdef").expect("a fixed key long enough"),
    );
    generated
        .into_iter()
        .map(|s| {
            parser
                .parse_value(s.event)
                .map(|e| (e, s.kind))
                .map_err(Error::GeneratedEvent)
        })
        .collect()
}

/// Scores the world under each configuration of the model: one JSON object
/// per configuration, as `custos evaluate login-risk --json` prints them.
pub fn report(samples: &[(Event, SampleKind)]) -> Vec<Value> {
    let hosting = logins::hosting_asns();
    let mut report = Vec::new();
    let variants = [
        (Mixture::Geometric, true),
        (Mixture::Arithmetic, true),
        (Mixture::Geometric, false),
        (Mixture::Arithmetic, false),
    ];
    for (mixture, device_family) in variants {
        let mut scores = score_world(samples, mixture, device_family, &hosting);
        scores.legit.sort_by(f64::total_cmp);
        let mut rows = Vec::new();
        for share in [0.01, 0.05, 0.10] {
            let threshold = threshold_for(&scores.legit, share);
            let detection: BTreeMap<&str, f64> = scores
                .attacks
                .iter()
                .map(|(m, s)| (m.name(), share_at_or_above(s, threshold)))
                .collect();
            rows.push(serde_json::json!({
                "legit_challenged_at_most": share,
                "legit_challenged": share_at_or_above(&scores.legit, threshold),
                "threshold": (threshold * 1000.0).round() / 1000.0,
                "detected": detection,
            }));
        }
        let aucs: BTreeMap<&str, f64> = scores
            .attacks
            .iter()
            .map(|(m, s)| (m.name(), auc(&scores.legit, s)))
            .collect();
        let default_threshold = custos_core::login_risk::DEFAULT_CHALLENGE_THRESHOLD;
        report.push(serde_json::json!({
            "mixture": match mixture { Mixture::Geometric => "geometric", Mixture::Arithmetic => "arithmetic" },
            "families": if device_family { "network, client, device" } else { "network, client (as in the paper)" },
            "legit_logins": scores.legit.len(),
            "attack_logins": scores.attacks.iter().map(|(m, s)| (m.name(), s.len())).collect::<BTreeMap<_, _>>(),
            "operating_points": rows,
            "auc": aucs,
            "at_default_threshold": {
                "threshold": default_threshold,
                "legit_challenged": share_at_or_above(&scores.legit, default_threshold),
                "detected": scores.attacks.iter().map(|(m, s)| (m.name(), share_at_or_above(s, default_threshold))).collect::<BTreeMap<_, _>>(),
            },
        }));
    }
    report
}

/// The report as text tables, one per configuration.
pub fn table(report: &[Value]) -> String {
    let mut out = String::new();
    for r in report {
        let _ = writeln!(
            out,
            "mixture {}, families {}: {} legit logins scored, attacks {}",
            r["mixture"].as_str().unwrap_or("?"),
            r["families"].as_str().unwrap_or("?"),
            r["legit_logins"],
            r["attack_logins"]
        );
        let _ = writeln!(
            out,
            "  legit challenged | threshold | naive  | vpn    | targeted"
        );
        let rows = r["operating_points"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let pct = |v: &serde_json::Value| format!("{:5.1}%", v.as_f64().unwrap_or(0.0) * 100.0);
        for row in rows
            .iter()
            .chain(std::iter::once(&r["at_default_threshold"]))
        {
            let _ = writeln!(
                out,
                "  {:>16} | {:>9.3} | {} | {} | {}",
                pct(&row["legit_challenged"]),
                row["threshold"].as_f64().unwrap_or(0.0),
                pct(&row["detected"]["naive"]),
                pct(&row["detected"]["vpn"]),
                pct(&row["detected"]["targeted"]),
            );
        }
        let _ = writeln!(
            out,
            "  AUC: naive {:.4}, vpn {:.4}, targeted {:.4} (last row: the default threshold)",
            r["auc"]["naive"].as_f64().unwrap_or(0.0),
            r["auc"]["vpn"].as_f64().unwrap_or(0.0),
            r["auc"]["targeted"].as_f64().unwrap_or(0.0)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_never_challenge_more_than_the_share() {
        let legit: Vec<f64> = (0..100).map(|i| (i / 2) as f64).collect(); // ties in pairs
        for share in [0.01, 0.05, 0.1, 0.5] {
            let t = threshold_for(&legit, share);
            assert!(share_at_or_above(&legit, t) <= share, "{share}: {t}");
        }
        assert_eq!(share_at_or_above(&legit, threshold_for(&legit, 0.1)), 0.1);
    }

    #[test]
    fn auc_is_one_for_perfect_separation_and_half_for_none() {
        let legit = vec![0.0, 1.0, 2.0];
        assert_eq!(auc(&legit, &[5.0, 6.0]), 1.0);
        assert_eq!(auc(&legit, &[-1.0]), 0.0);
        assert!((auc(&legit, &[1.0]) - 0.5).abs() < 1e-9);
    }
}
