//! A fixed-seed guard over everything the simulator, the bench generator and
//! the backtest produce: the generated histories byte for byte, every
//! decision the engine makes on them, and the JSON and HTML reports, for one
//! rule set and for a comparison of two.
//!
//! The digests were taken before the code moved into its own crates; a move
//! that changes behaviour anywhere along the way changes one of them. If a
//! change is *meant* to alter what Custos decides or reports, update the
//! digest in the same commit and say why there.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::report::Report;
use super::*;
use crate::tests::rules_from_dir;
use custos_sim::logins::{self, LoginWorldConfig};
use custos_sim::model::{MarketConfig, Scenario};

fn hex_of(hasher: Sha256) -> String {
    hex::encode(hasher.finalize())
}

/// Run time is the one figure of a report that differs between runs.
fn without_timing(report: &mut Report) {
    report.events.seconds = 1.0;
    report.events.events_per_second = report.events.read as f64;
}

fn default_rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

/// The default rules without the sensitive-change rules: a candidate that
/// decides many events differently.
fn candidate_rules(into: &Path) -> PathBuf {
    let source = default_rules_dir();
    let target = into.join("candidate");
    std::fs::create_dir_all(target.join("lists")).expect("mkdir");
    for name in ["ruleset.toml", "login.toml", "payouts.toml"] {
        std::fs::copy(source.join(name), target.join(name)).expect("copy a rule file");
    }
    for entry in std::fs::read_dir(source.join("lists")).expect("lists") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("a file name");
        std::fs::copy(&path, target.join("lists").join(name)).expect("copy a list");
    }
    target
}

struct Digests {
    decisions: [Sha256; 2],
    decided: [u64; 2],
}

fn evaluate_digested(args: &Evaluation) -> (Outcome, Digests) {
    let mut digests = Digests {
        decisions: [Sha256::new(), Sha256::new()],
        decided: [0, 0],
    };
    let outcome = evaluate_observed(args, |side, event, decision| {
        let hasher = &mut digests.decisions[side];
        hasher.update(event.event_id.as_bytes());
        // Cases (`case.updated` effects) follow from the other effects and
        // came after these digests: the guard is over what was decided.
        let mut decided = decision.clone();
        decided
            .effects
            .retain(|e| e.kind != custos_core::decision::EffectKind::CaseUpdated);
        hasher.update(serde_json::to_vec(&decided).expect("a decision serializes"));
        digests.decided[side] += 1;
    })
    .expect("evaluates");
    (outcome, digests)
}

#[test]
fn simulation_decisions_and_reports_are_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("sim.ndjson");
    let config = MarketConfig {
        sellers: 300,
        days: 90,
        seed: 5,
        scenarios: Scenario::ALL.to_vec(),
        honest: custos_sim::model::HonestModel::Baseline,
        victims: None,
    };
    let file = std::fs::File::create(&history).expect("create");
    custos_sim::market::write(&config, file).expect("write");
    let bytes = std::fs::read(&history).expect("read back");
    let history_digest = hex_of(Sha256::new_with_prefix(&bytes));

    // One rule set.
    let mut args = Evaluation::new(history.clone(), RulesUnderTest::built_in());
    let (Outcome::Single(mut report), digests) = evaluate_digested(&args) else {
        panic!("no comparison was asked for");
    };
    without_timing(&mut report);
    let single_decided = digests.decided[0];
    let single = [
        hex_of(digests.decisions[0].clone()),
        hex_of(Sha256::new_with_prefix(
            serde_json::to_string_pretty(&*report).expect("json"),
        )),
        hex_of(Sha256::new_with_prefix(html::render_report(&report))),
    ];

    // Two rule sets side by side.
    args.candidate = Some(rules_from_dir(&candidate_rules(dir.path())));
    let (Outcome::Compared(mut comparison), digests) = evaluate_digested(&args) else {
        panic!("a comparison was asked for");
    };
    without_timing(&mut comparison.base);
    without_timing(&mut comparison.candidate);
    // The candidate's directory is a temporary path.
    comparison.candidate.rules.dir = Some("candidate".into());
    let compared = [
        hex_of(digests.decisions[0].clone()),
        hex_of(digests.decisions[1].clone()),
        hex_of(Sha256::new_with_prefix(
            serde_json::to_string_pretty(&*comparison).expect("json"),
        )),
        hex_of(Sha256::new_with_prefix(html::render_comparison(
            &comparison,
        ))),
    ];

    let figures = format!(
        "history {} events, {history_digest}\n\
         single: decisions {} {}, json {}, html {}\n\
         compared: base {} {}, candidate {} {}, json {}, html {}\n",
        bytes.iter().filter(|b| **b == b'\n').count(),
        single_decided,
        single[0],
        single[1],
        single[2],
        digests.decided[0],
        compared[0],
        digests.decided[1],
        compared[1],
        compared[2],
        compared[3],
    );
    assert_eq!(figures, EXPECTED_SIMULATION, "\n{figures}");
}

#[test]
fn generated_worlds_are_unchanged() {
    let mut synth = Sha256::new();
    let mut count = 0u64;
    custos_sim::synth::generate(
        &custos_sim::synth::SynthSpec {
            events: 20_000,
            accounts: 500,
            seed: 3,
            takeover_rate: 0.01,
        },
        |event| {
            count += 1;
            synth.update(event.to_string());
            synth.update(b"\n");
        },
    );
    let mut world = Sha256::new();
    let samples = logins::generate(&LoginWorldConfig {
        accounts: 200,
        days: 90,
        seed: 4,
        attacks_per_model: 100,
        warmup_days: 30,
    });
    for sample in &samples {
        world.update(sample.event.to_string());
        world.update(format!("{:?}\n", sample.kind));
    }
    let figures = format!(
        "synth {count} {}\nlogins {} {}\n",
        hex_of(synth),
        samples.len(),
        hex_of(world)
    );
    assert_eq!(figures, EXPECTED_WORLDS, "\n{figures}");
}

const EXPECTED_SIMULATION: &str = "\
history 71501 events, \
9efcb7b1aae6aa09be5f025a5ed539abef83b006e09a691d3bc8cffd1f4b87b8
single: decisions 71425 1af64a53ec1e67b0788ba35d87ecd3ba9156b18d992e4f66be9afb90dab1b542, \
json 0821de86077d8167c4b5de3aa00ec360776362a3e34f042e8891b2d0247f9910, \
html 5375b34f35dd9d2445d0bdef90b294e5e73032c602c57ff538ce6a102987c441
compared: base 71425 1af64a53ec1e67b0788ba35d87ecd3ba9156b18d992e4f66be9afb90dab1b542, \
candidate 71425 da1e6954f719db79b2ecd19d801b8a804521f76519673073f68db8318c8925e9, \
json b8b21c59547a497d9438b6e8db60eb91272a42edc1b845ea2d88780fc0c2424a, \
html 50c1b25f0f9e5f580fcd3ca48866316bab1a9c0396a740bbfc2ea650d26e029c
";
const EXPECTED_WORLDS: &str = "\
synth 20000 2decb3c66b486869137d768793482ca963027041bddf4407aa86e87fd5b88208
logins 16019 4ab9fc26690df57ba9429536ed1af0fdcf71f6a8df9a89757856c06e01e56560
";
