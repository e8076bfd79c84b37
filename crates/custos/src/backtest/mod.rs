//! `custos evaluate`: replays a history through the engine and measures what
//! a fraud team judges an engine by: the stolen money it stopped, the honest
//! sellers it delayed, and how early it saw each campaign.
//!
//! # The replay
//!
//! Events are read in file order (a history is in time order) and decided
//! and applied exactly as the server would, by one [`Engine`] per rule set.
//! The ground truth rides along in each event's `truth` object
//! ([`custos_sim::market`]), which is removed before the event is parsed:
//! the engine never sees it. A history without `truth` (your own log) is
//! replayed all the same; the figures that need ground truth are then
//! empty.
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
//!   `verification` six hours later (the platform asks them to confirm),
//!   which ends their account's at-risk state, so that the hold is released
//!   when its cool-off ends.
//!
//! Nothing else is assumed: attackers carry on after a failed challenge (the
//! history has their later events), and no analyst acts. A stolen payout
//! counts as stopped only if it was blocked, or held and never released.
//!
//! # Comparing rule sets
//!
//! With `--compare DIR` both rule sets run side by side on the same parsed
//! events, each with its own engine and its own responses, and every event
//! decided differently is counted by ground truth.

pub(crate) mod html;
pub(crate) mod report;
#[cfg(test)]
mod unchanged;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use custos_core::decision::{Action, Decision, EffectKind};
use custos_core::event::{Details, EventType, LoginStatus};
use custos_core::features::FeatureConfig;
use custos_core::rules::{Mode, RuleSet};
use custos_core::{DestinationTokenizer, Engine, Event, EventParser};
use serde_json::{Map, Value, json};

use self::report::{
    Amounts, CampaignDetection, ChangedDecisions, ChangedExample, Comparison, DayPoint,
    DelayBucket, Headline, LegitPayouts, Report, RuleStats, RulesUsed, StolenMoney,
};

/// Lines per batch handed between threads.
const BATCH: usize = 4_096;
/// The owner confirms a held payout this long after the hold.
const OWNER_CONFIRMS_AFTER: i64 = 6 * 3_600;
/// The person in a challenged session answers this long after.
const CHALLENGE_ANSWERED_AFTER: i64 = 60;
const MAX_EXAMPLES: usize = 50;

#[derive(clap::Args, Debug, Clone)]
pub struct EvaluateArgs {
    /// NDJSON history, in time order (as `custos simulate` writes it).
    pub file: PathBuf,
    /// Rules directory; default: the built-in default rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// A second rules directory to run on the same history and compare.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Config file for the token key and feature settings (hosting ASNs).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Where to write the JSON report; default: next to the history, as
    /// `<name>.report.json`.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where to write the HTML report; default: `<name>.report.html`.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Do not play the platform's side (no added verifications).
    #[arg(long)]
    pub no_responses: bool,
}

pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    let outcome = evaluate(&args)?;
    let (json_path, html_path) = output_paths(&args);
    let (json_text, html_text, report) = match &outcome {
        Outcome::Single(report) => (
            serde_json::to_string_pretty(report)?,
            html::render_report(report),
            &**report,
        ),
        Outcome::Compared(comparison) => (
            serde_json::to_string_pretty(comparison)?,
            html::render_comparison(comparison),
            &comparison.base,
        ),
    };
    std::fs::write(&json_path, json_text)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    std::fs::write(&html_path, html_text)
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    print_headline(report, "");
    if let Outcome::Compared(comparison) = &outcome {
        print_headline(&comparison.candidate, "compare: ");
        let changed: u64 = comparison.changed.iter().map(|c| c.fraud + c.legit).sum();
        println!("events decided differently: {changed}");
    }
    println!(
        "report: {} and {}",
        html_path.display(),
        json_path.display()
    );
    Ok(())
}

fn output_paths(args: &EvaluateArgs) -> (PathBuf, PathBuf) {
    let stem = args
        .file
        .file_stem()
        .map_or_else(|| "history".into(), |s| s.to_string_lossy().into_owned());
    let dir = args.file.parent().unwrap_or(Path::new("."));
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| dir.join(format!("{stem}.report.json")));
    let html_path = args
        .html
        .clone()
        .unwrap_or_else(|| dir.join(format!("{stem}.report.html")));
    (json_path, html_path)
}

pub(crate) fn print_headline(report: &Report, prefix: &str) {
    let share = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.2}%", s * 100.0));
    let rules = match &report.rules.dir {
        Some(dir) => format!("{} ({dir})", report.rules.name),
        None => format!("{} (built-in)", report.rules.name),
    };
    println!(
        "{prefix}rules {rules} on {}: {} events in {:.1} s ({:.0} events/s)",
        report.input, report.events.read, report.events.seconds, report.events.events_per_second
    );
    for (currency, stolen) in &report.stolen {
        println!(
            "{prefix}stolen value stopped: {} ({:.2} of {:.2} {currency}, {} of {} payouts)",
            share(stolen.share_stopped),
            stolen.stopped.value as f64 / 100.0,
            stolen.attempted.value as f64 / 100.0,
            stolen.stopped.count,
            stolen.attempted.count
        );
    }
    for (currency, legit) in &report.legit_payouts {
        println!(
            "{prefix}legitimate payouts held: {} ({} of {}, {:.2} {currency}; median delay {} h)",
            share(legit.share_held),
            legit.held.count,
            legit.total.count,
            legit.held.value as f64 / 100.0,
            legit
                .median_delay_hours
                .map_or("-".to_string(), |h| format!("{h:.1}"))
        );
    }
    println!(
        "{prefix}legitimate logins challenged: {} ({} of {})",
        share(report.logins.share_legit_challenged),
        report.logins.legit_challenged,
        report.logins.legit
    );
    for campaign in &report.campaigns {
        match (campaign.victims_at_detection, campaign.delay_hours) {
            (Some(victims), Some(hours)) => println!(
                "{prefix}campaign {}: detected at victim {victims} of {}, {hours:.1} h after the first",
                campaign.campaign, campaign.victims
            ),
            _ => println!(
                "{prefix}campaign {}: not detected ({} victims)",
                campaign.campaign, campaign.victims
            ),
        }
    }
}

pub(crate) enum Outcome {
    Single(Box<Report>),
    Compared(Box<Comparison>),
}

/// Replays `args.file` under the rule set(s) and builds the report(s).
pub(crate) fn evaluate(args: &EvaluateArgs) -> anyhow::Result<Outcome> {
    evaluate_observed(args, |_, _, _| {})
}

/// [`evaluate`], showing `observe` every decision of the history in order,
/// with the side that made it (`0` the base rule set, `1` the candidate).
pub(crate) fn evaluate_observed(
    args: &EvaluateArgs,
    mut observe: impl FnMut(usize, &Event, &Decision),
) -> anyhow::Result<Outcome> {
    let config = match &args.config {
        Some(path) => Some(crate::load_config(Some(path), None, None)?),
        None => None,
    };
    // Tokens only need to be stable within the replay, unless the history
    // carries tokens made under your key.
    let tokenizer = match &config {
        Some(config) if config.destination_token_key.is_some() => {
            custos_server::load_token_key(config)?
        }
        _ => DestinationTokenizer::new(b"evaluate-key-0123456789abcdef")?,
    };
    let parser = EventParser::new(tokenizer);
    let mut features = config
        .as_ref()
        .map_or_else(FeatureConfig::default, |c| c.login_risk.features());
    let simulated = first_event_has_truth(&args.file)?;
    if simulated {
        // The synthetic internet's hosting networks are made up; the
        // default list cannot know them.
        features
            .hosting_asns
            .extend(custos_sim::logins::hosting_asns());
    }
    let base_rules = load_rules(args.rules.as_deref())?;
    let candidate_rules = args
        .compare
        .as_deref()
        .map(|dir| load_rules(Some(dir)))
        .transpose()?;
    let input = args
        .file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut base = Run::new(base_rules, features.clone(), !args.no_responses);
    let mut candidate =
        candidate_rules.map(|rules| Run::new(rules, features.clone(), !args.no_responses));
    let mut diff = Diff::default();
    let started = std::time::Instant::now();
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
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
    let base_report = base.finish(&input, args.rules.as_deref(), &read, seconds);
    Ok(match candidate {
        None => Outcome::Single(Box::new(base_report)),
        Some(candidate) => Outcome::Compared(Box::new(Comparison {
            base: base_report,
            candidate: candidate.finish(&input, args.compare.as_deref(), &read, seconds),
            changed: diff.changed(),
            examples: diff.examples,
        })),
    })
}

fn load_rules(dir: Option<&Path>) -> anyhow::Result<Arc<RuleSet>> {
    let rules = match dir {
        None => custos_core::rules::default_rule_set(),
        Some(dir) => {
            let source = custos_server::rules::load_rules_dir(dir)
                .with_context(|| format!("cannot load rules from {}", dir.display()))?;
            RuleSet::compile(source, 1)
                .with_context(|| format!("invalid rules in {}", dir.display()))?
        }
    };
    Ok(Arc::new(rules))
}

fn first_event_has_truth(path: &Path) -> anyhow::Result<bool> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line)?;
    Ok(serde_json::from_str::<Map<String, Value>>(&line)
        .is_ok_and(|event| event.get("truth").is_some_and(Value::is_object)))
}

/// Who made an event, by the history's ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Who {
    /// No ground truth.
    #[default]
    Unknown,
    Owner,
    Attacker,
    Platform,
}

/// The ground truth of one event.
#[derive(Debug, Clone, Default)]
pub(crate) struct Truth {
    pub who: Who,
    pub fraud: bool,
    pub campaign: Option<String>,
    pub scenario: Option<String>,
}

impl Truth {
    fn take(event: &mut Map<String, Value>) -> Truth {
        let Some(Value::Object(truth)) = event.remove("truth") else {
            return Truth::default();
        };
        Truth {
            who: match truth.get("actor").and_then(Value::as_str) {
                Some("seller") => Who::Owner,
                Some("attacker") => Who::Attacker,
                Some("platform") => Who::Platform,
                _ => Who::Unknown,
            },
            fraud: truth.get("fraud").and_then(Value::as_bool).unwrap_or(false),
            campaign: truth
                .get("campaign")
                .and_then(Value::as_str)
                .map(str::to_string),
            scenario: truth
                .get("scenario")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// Lines read, and those refused (with the first few reasons).
#[derive(Debug, Default)]
pub(crate) struct ReadSummary {
    pub events: u64,
    pub rejected: u64,
    pub first_rejections: Vec<String>,
}

type Parsed = Vec<Result<(Event, Truth), String>>;

/// Reads NDJSON events, parses them on worker threads, and calls `each`
/// with every valid one in file order.
pub(crate) fn for_each_event(
    input: impl std::io::Read + Send,
    parser: &EventParser,
    mut each: impl FnMut(&Event, &Truth),
) -> anyhow::Result<ReadSummary> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let mut summary = ReadSummary::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (raw_tx, raw_rx) = shared_receiver::channel::<(u64, Vec<(u64, String)>)>(workers * 2);
        let (parsed_tx, parsed_rx) = std::sync::mpsc::sync_channel::<(u64, Parsed)>(workers * 2);
        let reader = scope.spawn(move || -> std::io::Result<()> {
            let mut lines = std::io::BufReader::with_capacity(1 << 20, input).lines();
            let mut batch_index = 0u64;
            let mut line_number = 0u64;
            loop {
                let mut batch = Vec::with_capacity(BATCH);
                for line in lines.by_ref() {
                    line_number += 1;
                    let line = line?;
                    if !line.trim().is_empty() {
                        batch.push((line_number, line));
                    }
                    if batch.len() == BATCH {
                        break;
                    }
                }
                if batch.is_empty() {
                    return Ok(());
                }
                if raw_tx.send((batch_index, batch)).is_err() {
                    return Ok(());
                }
                batch_index += 1;
            }
        });
        for _ in 0..workers {
            let raw_rx = raw_rx.clone();
            let parsed_tx = parsed_tx.clone();
            scope.spawn(move || {
                while let Some((index, batch)) = raw_rx.recv() {
                    let parsed = batch
                        .iter()
                        .map(|(number, line)| {
                            parse_line(parser, line).map_err(|e| format!("line {number}: {e}"))
                        })
                        .collect();
                    if parsed_tx.send((index, parsed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(parsed_tx);
        drop(raw_rx);
        let mut waiting: BTreeMap<u64, Parsed> = BTreeMap::new();
        let mut next = 0u64;
        for (index, parsed) in parsed_rx {
            waiting.insert(index, parsed);
            while let Some(parsed) = waiting.remove(&next) {
                next += 1;
                for item in parsed {
                    match item {
                        Ok((event, truth)) => {
                            summary.events += 1;
                            each(&event, &truth);
                        }
                        Err(message) => {
                            summary.rejected += 1;
                            if summary.first_rejections.len() < 5 {
                                summary.first_rejections.push(message);
                            }
                        }
                    }
                }
            }
        }
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?
            .context("cannot read the history")?;
        Ok(())
    })?;
    Ok(summary)
}

fn parse_line(parser: &EventParser, line: &str) -> Result<(Event, Truth), String> {
    let mut object: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("invalid json: {e}"))?;
    let truth = Truth::take(&mut object);
    let event = parser.parse_object(object).map_err(|e| e.to_string())?;
    Ok((event, truth))
}

/// A bounded multi-consumer channel over a mutex: the standard library's
/// receivers cannot be shared, and this is the only place that needs one.
mod shared_receiver {
    use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
    use std::sync::{Arc, Mutex};

    pub struct SharedReceiver<T>(Arc<Mutex<Receiver<T>>>);

    impl<T> Clone for SharedReceiver<T> {
        fn clone(&self) -> Self {
            SharedReceiver(Arc::clone(&self.0))
        }
    }

    impl<T> SharedReceiver<T> {
        /// The next item, or `None` once every sender is gone.
        pub fn recv(&self) -> Option<T> {
            let receiver = self.0.lock().ok()?;
            receiver.recv().ok()
        }
    }

    pub fn channel<T>(bound: usize) -> (SyncSender<T>, SharedReceiver<T>) {
        let (tx, rx) = sync_channel(bound);
        (tx, SharedReceiver(Arc::new(Mutex::new(rx))))
    }
}

/// A verification the replay adds on the platform's behalf.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Response {
    time: i64,
    order: u64,
    account_id: String,
    session_id: Option<String>,
    passed: bool,
}

/// A held payout, until its hold is closed.
#[derive(Debug, Clone)]
struct OpenHold {
    fraud: bool,
    currency: String,
    amount: u64,
    held_at: i64,
    day: usize,
}

/// One rule set's replay and its tallies.
struct Run {
    engine: Engine,
    rules: Arc<RuleSet>,
    responses_on: bool,
    pending: BinaryHeap<Reverse<Response>>,
    answered_sessions: HashSet<u64>,
    response_order: u64,
    open_holds: HashMap<(String, String), OpenHold>,
    tally: Tally,
}

#[derive(Default)]
struct Tally {
    decisions: BTreeMap<String, u64>,
    by_attackers: u64,
    first_time: Option<i64>,
    last_time: Option<i64>,
    stolen: BTreeMap<String, StolenMoney>,
    legit: BTreeMap<String, LegitPayouts>,
    legit_delays: BTreeMap<String, Vec<f64>>,
    logins: report::Logins,
    /// Ground-truth campaigns by name: first attacker time of each victim.
    campaigns: BTreeMap<String, TruthCampaign>,
    rule_hits: HashMap<String, (u64, u64)>,
    fraud_by_type: HashMap<EventType, u64>,
    days: BTreeMap<i64, DayPoint>,
    responses: report::Responses,
}

#[derive(Default)]
struct TruthCampaign {
    scenario: String,
    first_attack: HashMap<String, i64>,
    started_at: Option<i64>,
    detected: Option<(i64, String, u64)>,
}

impl Run {
    fn new(rules: Arc<RuleSet>, features: FeatureConfig, responses_on: bool) -> Run {
        Run {
            engine: Engine::with_features(Arc::clone(&rules), features),
            rules,
            responses_on,
            pending: BinaryHeap::new(),
            answered_sessions: HashSet::new(),
            response_order: 0,
            open_holds: HashMap::new(),
            tally: Tally::default(),
        }
    }

    /// Decides and applies one event of the history, after any response
    /// due by its time; returns its decision.
    fn step(&mut self, parser: &EventParser, event: &Event, truth: &Truth) -> Decision {
        let at = event.unix_time();
        while self.pending.peek().is_some_and(|r| r.0.time <= at) {
            if let Some(Reverse(response)) = self.pending.pop() {
                self.respond(parser, &response);
            }
        }
        let decision = self.engine.process(event);
        self.count(event, truth, &decision);
        decision
    }

    fn respond(&mut self, parser: &EventParser, response: &Response) {
        let mut object = Map::new();
        object.insert(
            "event_id".into(),
            json!(format!("evaluate-response-{}", response.order)),
        );
        object.insert("type".into(), json!("verification"));
        object.insert("account_id".into(), json!(response.account_id));
        object.insert(
            "time".into(),
            json!(custos_sim::logins::rfc3339(response.time)),
        );
        if let Some(session) = &response.session_id {
            object.insert("session_id".into(), json!(session));
        }
        object.insert(
            "status".into(),
            json!(if response.passed { "passed" } else { "failed" }),
        );
        object.insert("method".into(), json!("platform_step_up"));
        let Ok(event) = parser.parse_object(object) else {
            return;
        };
        let decision = self.engine.process(&event);
        if response.passed {
            self.tally.responses.verifications_passed += 1;
        } else {
            self.tally.responses.verifications_failed += 1;
        }
        // A response can release or cancel holds like any event.
        self.close_holds(&event, &decision);
    }

    fn schedule(&mut self, time: i64, account_id: &str, session_id: Option<&str>, passed: bool) {
        self.response_order += 1;
        self.pending.push(Reverse(Response {
            time,
            order: self.response_order,
            account_id: account_id.to_string(),
            session_id: session_id.map(str::to_string),
            passed,
        }));
    }

    fn count(&mut self, event: &Event, truth: &Truth, decision: &Decision) {
        let at = event.unix_time();
        let day = day_of(at);
        let tally = &mut self.tally;
        *tally
            .decisions
            .entry(decision.action.as_str().to_string())
            .or_default() += 1;
        tally.first_time = Some(tally.first_time.map_or(at, |t| t.min(at)));
        tally.last_time = Some(tally.last_time.map_or(at, |t| t.max(at)));
        if truth.who == Who::Attacker {
            tally.by_attackers += 1;
        }
        if truth.fraud {
            *tally.fraud_by_type.entry(event.event_type).or_default() += 1;
        }
        for reason in decision.reasons.iter().chain(&decision.shadow) {
            let hits = tally.rule_hits.entry(reason.code.clone()).or_default();
            hits.0 += 1;
            if truth.fraud {
                hits.1 += 1;
            }
        }
        // Campaigns of the ground truth: victims in order of takeover. A
        // failed login is an attempt, not a takeover: credential stuffing
        // tries thousands of accounts to get into a few.
        let attempt_only = matches!(
            event.details,
            Details::Login {
                status: LoginStatus::Failure,
                ..
            }
        );
        if truth.who == Who::Attacker
            && !attempt_only
            && let Some(name) = &truth.campaign
        {
            let campaign = tally.campaigns.entry(name.clone()).or_default();
            campaign.started_at.get_or_insert(at);
            if campaign.scenario.is_empty()
                && let Some(scenario) = &truth.scenario
            {
                campaign.scenario.clone_from(scenario);
            }
            if !campaign.first_attack.contains_key(&event.account_id) {
                campaign.first_attack.insert(event.account_id.clone(), at);
                tally.days.entry(day).or_default().new_victims += 1;
            }
        }
        let successful_login = matches!(
            event.details,
            Details::Login {
                status: LoginStatus::Success,
                ..
            }
        );
        if successful_login {
            let challenged = decision.action >= Action::Challenge;
            match truth.who {
                Who::Owner => {
                    tally.logins.legit += 1;
                    let point = tally.days.entry(day).or_default();
                    point.legit_logins += 1;
                    if challenged {
                        tally.logins.legit_challenged += 1;
                        point.legit_logins_challenged += 1;
                    }
                }
                Who::Attacker => {
                    tally.logins.attacker += 1;
                    if challenged {
                        tally.logins.attacker_challenged += 1;
                    }
                }
                _ => {}
            }
        }
        self.money(event, truth, decision, day);
        if decision.action == Action::Challenge
            && self.responses_on
            && let Some(session) = event.session_id.as_deref()
            && matches!(truth.who, Who::Owner | Who::Attacker)
            && self
                .answered_sessions
                .insert(session_hash(&event.account_id, session))
        {
            let passed = truth.who == Who::Owner;
            self.schedule(
                at + CHALLENGE_ANSWERED_AFTER,
                &event.account_id,
                Some(session),
                passed,
            );
        }
        self.close_holds(event, decision);
        self.campaign_alerts(event, decision, day);
    }

    /// Payouts and disbursements: stolen or legitimate, held or paid.
    fn money(&mut self, event: &Event, truth: &Truth, decision: &Decision, day: i64) {
        let (hold_id, amount, currency) = match &event.details {
            Details::Payout {
                payout_id,
                amount,
                currency,
                ..
            } => (payout_id, *amount, currency.as_str().to_string()),
            Details::Loan {
                loan_id,
                amount,
                currency,
            } if event.event_type == EventType::LoanDisbursement => {
                (loan_id, *amount, currency.as_str().to_string())
            }
            _ => return,
        };
        let at = event.unix_time();
        let held = decision.action == Action::Hold;
        let blocked = decision.action == Action::Block;
        let tally = &mut self.tally;
        let point = tally.days.entry(day).or_default();
        if truth.fraud {
            let stolen = tally.stolen.entry(currency.clone()).or_default();
            add(&mut stolen.attempted, amount);
            point.stolen_attempted += amount;
            if event.event_type == EventType::LoanDisbursement {
                add(&mut stolen.loans, amount);
            }
            if blocked {
                add(&mut stolen.blocked, amount);
                point.stolen_stopped += amount;
            } else if held {
                point.stolen_stopped += amount;
            } else {
                add(&mut stolen.paid, amount);
            }
        } else {
            let legit = tally.legit.entry(currency.clone()).or_default();
            add(&mut legit.total, amount);
            point.legit_payouts += 1;
            if held || blocked {
                add(&mut legit.held, amount);
                point.legit_held += 1;
            }
            if blocked {
                add(&mut legit.never_released, amount);
            }
        }
        if held {
            self.open_holds.insert(
                (event.account_id.clone(), hold_id.clone()),
                OpenHold {
                    fraud: truth.fraud,
                    currency,
                    amount,
                    held_at: at,
                    day: day as usize,
                },
            );
            if !truth.fraud && truth.who != Who::Unknown && self.responses_on {
                self.schedule(at + OWNER_CONFIRMS_AFTER, &event.account_id, None, true);
            }
        }
    }

    /// Holds released or cancelled by this event.
    fn close_holds(&mut self, event: &Event, decision: &Decision) {
        let at = event.unix_time();
        for effect in &decision.effects {
            let released = match effect.kind {
                EffectKind::HoldReleased => true,
                EffectKind::HoldCancelled => false,
                _ => continue,
            };
            let (Some(account), Some(hold)) = (
                effect.data.get("account_id").and_then(Value::as_str),
                effect.data.get("hold_id").and_then(Value::as_str),
            ) else {
                continue;
            };
            let Some(open) = self
                .open_holds
                .remove(&(account.to_string(), hold.to_string()))
            else {
                continue;
            };
            let tally = &mut self.tally;
            if open.fraud {
                if released {
                    let stolen = tally.stolen.entry(open.currency).or_default();
                    add(&mut stolen.held_then_released, open.amount);
                    if let Some(point) = tally.days.get_mut(&(open.day as i64)) {
                        point.stolen_stopped = point.stolen_stopped.saturating_sub(open.amount);
                    }
                } else {
                    // Cancelled: stopped for good; counted with the held.
                    let stolen = tally.stolen.entry(open.currency).or_default();
                    add(&mut stolen.held, open.amount);
                }
            } else {
                let legit = tally.legit.entry(open.currency.clone()).or_default();
                if released {
                    add(&mut legit.released, open.amount);
                    tally
                        .legit_delays
                        .entry(open.currency)
                        .or_default()
                        .push((at - open.held_at) as f64 / 3_600.0);
                } else {
                    add(&mut legit.never_released, open.amount);
                }
            }
        }
    }

    fn cancelled_fraud(&mut self, open: OpenHold) {
        let stolen = self.tally.stolen.entry(open.currency).or_default();
        add(&mut stolen.held, open.amount);
    }

    /// Campaign alerts, and the first one that holds a victim of each
    /// ground-truth campaign.
    fn campaign_alerts(&mut self, event: &Event, decision: &Decision, day: i64) {
        let at = event.unix_time();
        for effect in &decision.effects {
            match effect.kind {
                EffectKind::CampaignDetected => {
                    self.tally.days.entry(day).or_default().campaign_alerts += 1;
                }
                EffectKind::CampaignUpdated => {}
                _ => continue,
            }
            let Some(id) = effect.data.get("id").and_then(Value::as_str) else {
                continue;
            };
            let Some(found) = self.engine.campaigns().campaign(id) else {
                continue;
            };
            for truth in self.tally.campaigns.values_mut() {
                if truth.detected.is_some() {
                    continue;
                }
                if truth
                    .first_attack
                    .keys()
                    .any(|victim| found.member(victim).is_some())
                {
                    let victims = truth.first_attack.values().filter(|t| **t <= at).count();
                    truth.detected = Some((at, id.to_string(), victims as u64));
                }
            }
        }
    }

    fn finish(
        mut self,
        input: &str,
        dir: Option<&Path>,
        read: &ReadSummary,
        seconds: f64,
    ) -> Report {
        // Holds still open at the end of the history: fraud ones stopped.
        let open: Vec<OpenHold> = self.open_holds.drain().map(|(_, h)| h).collect();
        for hold in open {
            if hold.fraud {
                self.cancelled_fraud(hold);
            } else {
                let legit = self.tally.legit.entry(hold.currency).or_default();
                add(&mut legit.never_released, hold.amount);
            }
        }
        let tally = &mut self.tally;
        for stolen in tally.stolen.values_mut() {
            stolen.stopped = Amounts {
                count: stolen.blocked.count + stolen.held.count,
                value: stolen.blocked.value + stolen.held.value,
            };
            stolen.share_stopped = ratio(stolen.stopped.value, stolen.attempted.value);
        }
        for (currency, legit) in tally.legit.iter_mut() {
            legit.share_held = ratio(legit.held.count, legit.total.count);
            let mut delays = tally.legit_delays.remove(currency).unwrap_or_default();
            delays.sort_by(f64::total_cmp);
            legit.median_delay_hours = quantile(&delays, 0.5);
            legit.p90_delay_hours = quantile(&delays, 0.9);
            legit.delay_histogram = histogram(&delays);
        }
        let logins = &mut tally.logins;
        logins.share_legit_challenged = ratio(logins.legit_challenged, logins.legit);
        logins.share_attacker_challenged = ratio(logins.attacker_challenged, logins.attacker);

        let mut campaigns: Vec<CampaignDetection> = tally
            .campaigns
            .iter()
            .map(|(name, truth)| {
                let linked = truth
                    .first_attack
                    .keys()
                    .filter(|v| self.engine.campaigns().campaign_of_account(v).is_some())
                    .count();
                CampaignDetection {
                    campaign: name.clone(),
                    scenario: truth.scenario.clone(),
                    victims: truth.first_attack.len() as u64,
                    started_at: truth.started_at.map(custos_sim::logins::rfc3339),
                    detected_at: truth
                        .detected
                        .as_ref()
                        .map(|d| custos_sim::logins::rfc3339(d.0)),
                    detected_as: truth.detected.as_ref().map(|d| d.1.clone()),
                    delay_hours: match (truth.started_at, &truth.detected) {
                        (Some(start), Some(d)) => Some((d.0 - start) as f64 / 3_600.0),
                        _ => None,
                    },
                    victims_at_detection: truth.detected.as_ref().map(|d| d.2),
                    victims_linked: linked as u64,
                }
            })
            .collect();
        campaigns.sort_by(|a, b| a.started_at.cmp(&b.started_at));

        let rules_hit = self
            .rules
            .rules()
            .iter()
            .map(|rule| {
                let source = &rule.source;
                let (hits, fraud_hits) =
                    tally.rule_hits.get(&source.id).copied().unwrap_or_default();
                let fraud_events = if source.events.is_empty() {
                    tally.fraud_by_type.values().sum()
                } else {
                    source
                        .events
                        .iter()
                        .map(|t| tally.fraud_by_type.get(t).copied().unwrap_or(0))
                        .sum()
                };
                RuleStats {
                    id: source.id.clone(),
                    action: source.action.as_str().to_string(),
                    events: source
                        .events
                        .iter()
                        .map(|t| t.as_str().to_string())
                        .collect(),
                    shadow: source.mode == Mode::Shadow,
                    hits,
                    fraud_hits,
                    fraud_events,
                    precision: ratio(fraud_hits, hits),
                    recall: ratio(fraud_hits, fraud_events),
                }
            })
            .collect();

        // Days from the first payout (a simulation's creation history
        // before it has none).
        let first_money_day = tally
            .days
            .iter()
            .find(|(_, p)| p.legit_payouts + p.stolen_attempted > 0)
            .map(|(d, _)| *d);
        let days = match (first_money_day, tally.days.keys().next_back()) {
            (Some(first), Some(last)) => (first..=*last)
                .map(|d| {
                    let mut point = tally.days.get(&d).cloned().unwrap_or_default();
                    point.day = day_name(d);
                    point
                })
                .collect(),
            _ => Vec::new(),
        };

        let attempted: u64 = tally.stolen.values().map(|s| s.attempted.value).sum();
        let stopped: u64 = tally.stolen.values().map(|s| s.stopped.value).sum();
        let legit_total: u64 = tally.legit.values().map(|l| l.total.count).sum();
        let legit_held: u64 = tally.legit.values().map(|l| l.held.count).sum();
        let headline = Headline {
            share_stolen_stopped: ratio(stopped, attempted),
            share_legit_payouts_held: ratio(legit_held, legit_total),
            share_legit_logins_challenged: tally.logins.share_legit_challenged,
            worst_victims_at_detection: if campaigns.is_empty()
                || campaigns.iter().any(|c| c.victims_at_detection.is_none())
            {
                None
            } else {
                campaigns
                    .iter()
                    .filter_map(|c| c.victims_at_detection)
                    .max()
            },
            campaigns_missed: campaigns
                .iter()
                .filter(|c| c.victims_at_detection.is_none())
                .count() as u64,
        };
        Report {
            input: input.to_string(),
            rules: RulesUsed {
                name: self.rules.name().to_string(),
                dir: dir.map(|d| d.display().to_string()),
                rule_count: self.rules.rules().len(),
            },
            events: report::EventCounts {
                read: read.events,
                by_attackers: tally.by_attackers,
                decisions: std::mem::take(&mut tally.decisions),
                first_time: tally.first_time.map(custos_sim::logins::rfc3339),
                last_time: tally.last_time.map(custos_sim::logins::rfc3339),
                seconds,
                events_per_second: if seconds > 0.0 {
                    read.events as f64 / seconds
                } else {
                    0.0
                },
            },
            stolen: std::mem::take(&mut tally.stolen),
            legit_payouts: std::mem::take(&mut tally.legit),
            logins: tally.logins.clone(),
            campaigns,
            rules_hit,
            days,
            responses: tally.responses.clone(),
            headline,
        }
    }
}

/// Events decided differently by two rule sets.
#[derive(Default)]
struct Diff {
    changed: BTreeMap<(Action, Action), (u64, u64)>,
    examples: Vec<ChangedExample>,
}

impl Diff {
    fn observe(&mut self, event: &Event, truth: &Truth, base: &Decision, candidate: &Decision) {
        if base.action == candidate.action {
            return;
        }
        let counts = self
            .changed
            .entry((base.action, candidate.action))
            .or_default();
        if truth.fraud {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(ChangedExample {
                event_id: event.event_id.clone(),
                event_type: event.event_type.as_str().to_string(),
                account_id: event.account_id.clone(),
                fraud: truth.fraud,
                from: base.action.as_str().to_string(),
                to: candidate.action.as_str().to_string(),
                rules_added: codes_missing_from(candidate, base),
                rules_removed: codes_missing_from(base, candidate),
            });
        }
    }

    fn changed(&self) -> Vec<ChangedDecisions> {
        self.changed
            .iter()
            .map(|((from, to), (fraud, legit))| ChangedDecisions {
                from: from.as_str().to_string(),
                to: to.as_str().to_string(),
                fraud: *fraud,
                legit: *legit,
            })
            .collect()
    }
}

/// Rule codes that fired in `decision` and not in `other`.
fn codes_missing_from(decision: &Decision, other: &Decision) -> Vec<String> {
    decision
        .reasons
        .iter()
        .filter(|r| !other.reasons.iter().any(|o| o.code == r.code))
        .map(|r| r.code.clone())
        .collect()
}

fn add(amounts: &mut Amounts, value: u64) {
    amounts.count += 1;
    amounts.value += value;
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Hold delays in buckets: up to 1 h, 6 h, 1 d, 3 d, 7 d, 14 d, 30 d, more.
fn histogram(delays: &[f64]) -> Vec<DelayBucket> {
    let bounds = [1.0, 6.0, 24.0, 72.0, 168.0, 336.0, 720.0];
    let mut buckets: Vec<DelayBucket> = bounds
        .iter()
        .map(|b| DelayBucket {
            up_to_hours: Some(*b),
            count: 0,
        })
        .chain(std::iter::once(DelayBucket {
            up_to_hours: None,
            count: 0,
        }))
        .collect();
    for delay in delays {
        let index = bounds
            .iter()
            .position(|b| delay <= b)
            .unwrap_or(bounds.len());
        buckets[index].count += 1;
    }
    buckets
}

fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

fn day_name(day: i64) -> String {
    let rfc = custos_sim::logins::rfc3339(day * 86_400);
    rfc.get(..10).unwrap_or(&rfc).to_string()
}

fn session_hash(account_id: &str, session_id: &str) -> u64 {
    use std::hash::Hasher as _;
    // Fixed keys: the same session must hash the same way every time.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(account_id.as_bytes());
    hasher.write_u8(0);
    hasher.write(session_id.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use serde_json::json;

    use super::*;

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

    fn args(file: PathBuf) -> EvaluateArgs {
        EvaluateArgs {
            file,
            rules: None,
            compare: None,
            config: None,
            json: None,
            html: None,
            no_responses: false,
        }
    }

    #[test]
    fn a_hand_written_history_gives_exact_figures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_history(dir.path(), &history());
        let Outcome::Single(report) = evaluate(&args(path)).expect("evaluates") else {
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
        // The reports were written next to the history.
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
        let mut args = args(path);
        args.compare = Some(rules);
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
        assert!(
            example.fraud && example.rules_added.is_empty() && !example.rules_removed.is_empty()
        );
    }

    #[test]
    fn a_bad_line_is_counted_with_its_number_and_the_rest_is_replayed() {
        let parser =
            EventParser::new(DestinationTokenizer::new(b"test-key-0123456789abcdef").expect("key"));
        let text = format!(
            "{}\nnot json\n\n{}\n",
            json!({"event_id": "a", "type": "sale", "account_id": "s", "time": time(T0), "amount": 5, "currency": "EUR"}),
            json!({"event_id": "b", "type": "sale", "account_id": "s", "time": time(T0 + 1), "amount": -5, "currency": "EUR"}),
        );
        let mut seen = Vec::new();
        let summary = for_each_event(text.as_bytes(), &parser, |event, _| {
            seen.push(event.event_id.clone());
        })
        .expect("reads");
        assert_eq!(seen, ["a"]);
        assert_eq!(summary.events, 1);
        assert_eq!(summary.rejected, 2);
        assert!(
            summary.first_rejections[0].starts_with("line 2: invalid json"),
            "{:?}",
            summary.first_rejections
        );
        assert!(
            summary.first_rejections[1].starts_with("line 4:"),
            "{:?}",
            summary.first_rejections
        );
    }

    #[test]
    fn events_come_out_in_file_order_across_batches() {
        let parser =
            EventParser::new(DestinationTokenizer::new(b"test-key-0123456789abcdef").expect("key"));
        let count = BATCH * 5 + 17;
        let text: String = (0..count)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"event_id": format!("e{i}"), "type": "sale", "account_id": "s",
                           "time": time(T0 + i as i64), "amount": 5, "currency": "EUR"})
                )
            })
            .collect();
        let mut seen = Vec::new();
        for_each_event(text.as_bytes(), &parser, |event, _| {
            seen.push(event.event_id.clone())
        })
        .expect("reads");
        let wanted: Vec<String> = (0..count).map(|i| format!("e{i}")).collect();
        assert_eq!(seen, wanted);
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
        };
        let file = std::fs::File::create(&path).expect("create");
        custos_sim::market::write(&config, file).expect("write");
        let Outcome::Single(report) = evaluate(&args(path)).expect("evaluates") else {
            panic!("no comparison was asked for");
        };
        let campaign = &report.campaigns[0];
        assert_eq!(campaign.campaign, "phishing-2018");
        assert!(campaign.victims >= 5, "{campaign:?}");
        let at = campaign.victims_at_detection.expect("detected");
        assert!(at <= 4, "{campaign:?}");
        let stopped = report
            .headline
            .share_stolen_stopped
            .expect("money was stolen");
        assert!(stopped >= 0.9, "{stopped}");
        let held = report.headline.share_legit_payouts_held.expect("payouts");
        assert!(held <= 0.02, "{held}");
        assert!(report.responses.verifications_passed > 0);
    }
}
