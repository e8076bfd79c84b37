//! The backtest behind `custos evaluate`: replays a history through the
//! engine and measures what a fraud team judges an engine by: the stolen
//! money it stopped, the honest sellers it delayed, and how early it saw
//! each campaign. Also the login-risk model's evaluation on generated logins
//! ([`login_risk`], `custos evaluate login-risk`).
//!
//! It is a library of its own, not part of the binary, so that the replay,
//! its report and its HTML page can be used and tested without the command
//! line. It reads the history it is given and nothing else: the caller
//! loads the config, the token key and the rule sets and passes them in
//! ([`Evaluation`]), so the backtest does not depend on the HTTP server or
//! on where configuration lives. It never touches a store: it measures
//! decisions, not durability (`custos replay` does that).
//!
//! # The replay
//!
//! Events are read in file order (a history is in time order) and decided
//! and applied exactly as the server would, by one
//! [`Engine`](custos_core::Engine) per rule set. The ground truth rides
//! along in each event's `truth` object ([`custos_sim::truth::Truth`]),
//! which is removed before the event is parsed: the engine never sees it.
//! A history without `truth` (your own log) is replayed all the same; the
//! figures that need ground truth are then empty.
//!
//! Reading and parsing run on worker threads, deciding on the calling
//! thread, so a replay uses every core the machine has and still decides
//! in file order.
//!
//! # The platform's side
//!
//! A history is open loop: it records what people did, not what the
//! platform asked of them. Two answers matter to the figures, so the replay
//! plays them (and counts them in the report's `responses`):
//!
//! - after a `challenge` in a session, the person in it answers the step-up:
//!   the owner passes a `verification` a minute later, an attacker fails it;
//! - after a legitimate seller's payout is held, the owner passes a
//!   `verification` without a session six hours later (the platform asks
//!   them to confirm), which ends their account's risk episode and releases
//!   the hold;
//! - either answer goes through the first channel the decision's
//!   `verification` named, when it named one (a contact changed in the
//!   lock-out window would not vouch).
//!
//! Nothing else is assumed: attackers carry on after a failed challenge (the
//! history has their later events), and no analyst acts. A stolen payout
//! counts as stopped only if it was blocked, or held and never released.
//!
//! # Comparing rule sets
//!
//! With a candidate rule set ([`Evaluation::candidate`], `custos evaluate
//! --compare DIR`) both rule sets run side by side on the same parsed
//! events, each with its own engine and its own responses, and every event
//! decided differently is counted by ground truth.
//!
//! # Modules
//!
//! - `read`: reading and parsing on worker threads, handed on in file
//!   order.
//! - `run`: one rule set's replay: its engine, the platform's responses,
//!   the tally, and the [`report::Report`] it ends with.
//! - `diff`: the events two rule sets decided differently.
//! - `stats`: small figures (shares, quantiles, buckets, days).
//! - [`report`], the figures; [`html`], the page that shows them.

mod diff;
pub mod html;
pub mod login_risk;
mod read;
pub mod report;
mod run;
mod stats;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unchanged;

use std::path::PathBuf;
use std::sync::Arc;

use custos_core::decision::Decision;
use custos_core::features::FeatureConfig;
use custos_core::rules::RuleSet;
use custos_core::{DestinationTokenizer, Event, EventParser};

use self::diff::Diff;
pub use self::read::{ReadSummary, for_each_event};
use self::report::{Comparison, Report};
use self::run::Run;

/// What went wrong in a backtest or an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the history")]
    Read(#[source] std::io::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the reader thread panicked")]
    ReaderPanicked,
    #[error("a generated event did not parse")]
    GeneratedEvent(#[source] custos_core::EventError),
}

/// A rule set under test, and where it came from.
#[derive(Clone)]
pub struct RulesUnderTest {
    pub rules: Arc<RuleSet>,
    /// The directory it was read from, named in the report; `None` for the
    /// built-in default rules.
    pub dir: Option<PathBuf>,
}

impl RulesUnderTest {
    /// The built-in default rules.
    pub fn built_in() -> RulesUnderTest {
        RulesUnderTest {
            rules: Arc::new(custos_core::rules::default_rule_set()),
            dir: None,
        }
    }
}

/// A backtest to run: a history, the rule set(s), and the settings the
/// engine needs, all loaded by the caller.
#[derive(Clone)]
pub struct Evaluation {
    /// NDJSON history, in time order (as `custos simulate` writes it).
    pub history: PathBuf,
    pub base: RulesUnderTest,
    /// A second rule set to run on the same history and compare.
    pub candidate: Option<RulesUnderTest>,
    /// Tokenizes destinations' account numbers. Tokens only need to be
    /// stable within the replay ([`replay_tokenizer`]), unless the history
    /// carries tokens made under your key.
    pub tokenizer: DestinationTokenizer,
    /// Feature settings (hosting ASNs, login risk). For a simulated history
    /// the synthetic internet's hosting networks are added to them.
    pub features: FeatureConfig,
    /// Play the platform's side (verifications after challenges and holds).
    pub responses: bool,
}

impl Evaluation {
    /// `history` under `base` alone, with [`replay_tokenizer`], the default
    /// feature settings, and the platform's responses played.
    pub fn new(history: PathBuf, base: RulesUnderTest) -> Evaluation {
        Evaluation {
            history,
            base,
            candidate: None,
            tokenizer: replay_tokenizer(),
            features: FeatureConfig::default(),
            responses: true,
        }
    }
}

/// The tokenizer of a replay whose history carries no tokens made under
/// your key: a fixed key, so that every replay of a history gives the same
/// tokens.
pub fn replay_tokenizer() -> DestinationTokenizer {
    DestinationTokenizer::new(b"evaluate-key-0123456789abcdef").expect("a fixed key long enough")
}

/// One report, or two side by side.
pub enum Outcome {
    Single(Box<Report>),
    Compared(Box<Comparison>),
}

impl Outcome {
    /// The base rule set's report.
    pub fn base(&self) -> &Report {
        match self {
            Outcome::Single(report) => report,
            Outcome::Compared(comparison) => &comparison.base,
        }
    }

    /// The JSON report (pretty-printed).
    pub fn to_json(&self) -> serde_json::Result<String> {
        match self {
            Outcome::Single(report) => serde_json::to_string_pretty(report),
            Outcome::Compared(comparison) => serde_json::to_string_pretty(comparison),
        }
    }

    /// The HTML report: one self-contained page.
    pub fn to_html(&self) -> String {
        match self {
            Outcome::Single(report) => html::render_report(report),
            Outcome::Compared(comparison) => html::render_comparison(comparison),
        }
    }
}

/// Replays the history under the rule set(s) and builds the report(s).
pub fn evaluate(evaluation: &Evaluation) -> Result<Outcome, Error> {
    evaluate_observed(evaluation, |_, _, _| {})
}

/// [`evaluate`], showing `observe` every decision of the history in order,
/// with the side that made it (`0` the base rule set, `1` the candidate).
pub fn evaluate_observed(
    evaluation: &Evaluation,
    mut observe: impl FnMut(usize, &Event, &Decision),
) -> Result<Outcome, Error> {
    let path = &evaluation.history;
    let parser = EventParser::new(evaluation.tokenizer.clone());
    let mut features = evaluation.features.clone();
    let simulated = read::first_event_has_truth(path)?;
    if simulated {
        // The synthetic internet's hosting networks are made up; the
        // default list cannot know them.
        features
            .hosting_asns
            .extend(custos_sim::logins::hosting_asns());
    }
    let input = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let responses = evaluation.responses;
    let mut base = Run::new(&evaluation.base, features.clone(), responses);
    let mut candidate = evaluation
        .candidate
        .as_ref()
        .map(|rules| Run::new(rules, features.clone(), responses));
    let mut diff = Diff::default();
    let started = std::time::Instant::now();
    let file = read::open(path)?;
    let read = for_each_event(file, &parser, |event, truth| {
        let a = base.step(&parser, event, truth);
        observe(0, event, &a);
        if let Some(candidate) = candidate.as_mut() {
            let b = candidate.step(&parser, event, truth);
            observe(1, event, &b);
            diff.observe(event, truth, &a, &b);
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let base_report = base.finish(&input, &read, seconds);
    Ok(match candidate {
        None => Outcome::Single(Box::new(base_report)),
        Some(candidate) => Outcome::Compared(Box::new(Comparison {
            base: base_report,
            candidate: candidate.finish(&input, &read, seconds),
            changed: diff.changed(),
            examples: diff.examples,
        })),
    })
}
