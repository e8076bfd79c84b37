//! `custos replay FILE.ndjson`: the whole write path offline, from a file
//! instead of HTTP: parse, decide, durably store, summarize.
//!
//! History is old by nature, so `engine.max_event_age` is not checked; but
//! no history holds events from the future: a line dated more than
//! `engine.max_future_skew` ahead of the wall clock is rejected like an
//! invalid one (`--no-time-bound` accepts it, for a synthetic history set in
//! the future).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use custos_core::{Action, EventType};
use custos_runtime::{Atomicity, Outcome, PreparedEvent, Runtime, Ticket, TimeBound};
use serde_json::json;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// NDJSON file, one event per line ("-" for standard input).
    pub file: PathBuf,
    /// Keep the data here (and continue from what it holds). Default: a
    /// temporary directory, removed afterwards.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Config file for the token key and policy settings.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Events per submission to the engine. Up to four submissions are
    /// committed together, so larger batches mean fewer, larger transactions.
    #[arg(long, default_value_t = 32_768)]
    pub batch: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Accept events dated in the future. By default a line whose time is
    /// more than `engine.max_future_skew` ahead of the wall clock is rejected.
    #[arg(long)]
    pub no_time_bound: bool,
}

#[derive(Default)]
struct Summary {
    events: u64,
    duplicates: u64,
    rejected: u64,
    first_rejections: Vec<String>,
    by_action: BTreeMap<Action, u64>,
    by_type: BTreeMap<EventType, BTreeMap<Action, u64>>,
}

impl Summary {
    fn count(&mut self, types: &[EventType], ids: &[String], outcomes: &[Option<Outcome>]) {
        for ((ty, id), o) in types.iter().zip(ids).zip(outcomes) {
            let Some(o) = o else {
                self.reject(format!(
                    "{id}: event_id already stored with a different body; skipped"
                ));
                continue;
            };
            self.events += 1;
            if o.duplicate {
                self.duplicates += 1;
            }
            *self.by_action.entry(o.decision.action).or_default() += 1;
            *self
                .by_type
                .entry(*ty)
                .or_default()
                .entry(o.decision.action)
                .or_default() += 1;
        }
    }

    fn reject(&mut self, what: String) {
        self.rejected += 1;
        if self.first_rejections.len() < 10 {
            self.first_rejections.push(what);
        }
    }
}

/// Submissions kept in flight so that parsing overlaps deciding and fsync.
const IN_FLIGHT: usize = 4;

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let temp;
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary data directory")?;
            temp.path().to_path_buf()
        }
    };
    let overrides = custos_config::Overrides {
        data_dir: Some(data_dir),
        ..custos_config::Overrides::default()
    };
    let mut config = custos_config::load(args.config.as_deref(), overrides)?;
    // A bulk load commits far larger groups than live traffic forms: each
    // commit rewrites the index pages it touches, so fewer commits win.
    config.engine.max_group_events = config
        .engine
        .max_group_events
        .max(args.batch.max(1) * IN_FLIGHT);
    let runtime = custos_runtime::open(&config, custos_store::SqliteOptions::bulk())?;
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };

    let started = Instant::now();
    let mut summary = Summary::default();
    let mut in_flight: InFlight = Default::default();
    let mut batch: Vec<PreparedEvent> = Vec::with_capacity(args.batch);
    let parser = runtime.parser().clone();
    let time_bound = if args.no_time_bound {
        TimeBound::NONE
    } else {
        TimeBound {
            max_future_skew: config.engine.max_future_skew,
            max_event_age: None,
        }
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str(&line)
            .map_err(|e| format!("line {}: invalid JSON: {e}", n + 1))
            .and_then(|v| {
                parser
                    .parse_value(v)
                    .map_err(|e| format!("line {}: {e}", n + 1))
            })
            .and_then(|event| {
                time_bound
                    .check_now(&event)
                    .map(|()| event)
                    .map_err(|e| format!("line {}: {e}", n + 1))
            });
        match parsed {
            Ok(event) => batch.push(PreparedEvent::new(event, &parser)?),
            Err(why) => summary.reject(why),
        }
        if batch.len() >= args.batch.max(1) {
            submit(
                &runtime,
                std::mem::take(&mut batch),
                &mut in_flight,
                &mut summary,
            )?;
        }
    }
    if !batch.is_empty() {
        submit(&runtime, batch, &mut in_flight, &mut summary)?;
    }
    while let Some(entry) = in_flight.pop_front() {
        settle(entry, &mut summary)?;
    }
    let elapsed = started.elapsed();
    runtime.shutdown_blocking()?;
    print_summary(&summary, elapsed.as_secs_f64(), args.json);
    Ok(())
}

/// Submissions on their way, with what is needed to summarize them.
type InFlight = std::collections::VecDeque<(Vec<EventType>, Vec<String>, Ticket)>;

fn submit(
    runtime: &Runtime,
    events: Vec<PreparedEvent>,
    in_flight: &mut InFlight,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let types: Vec<EventType> = events.iter().map(|e| e.event.event_type).collect();
    let ids: Vec<String> = events.iter().map(|e| e.event.event_id.clone()).collect();
    // Per event: an id reused with another body skips that line only.
    let ticket = runtime.enqueue_blocking(events, Atomicity::PerEvent)?;
    in_flight.push_back((types, ids, ticket));
    while in_flight.len() > IN_FLIGHT {
        if let Some(entry) = in_flight.pop_front() {
            settle(entry, summary)?;
        }
    }
    Ok(())
}

fn settle(
    (types, ids, ticket): (Vec<EventType>, Vec<String>, Ticket),
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let outcomes = ticket.wait_blocking()?;
    summary.count(&types, &ids, &outcomes);
    Ok(())
}

fn print_summary(summary: &Summary, secs: f64, as_json: bool) {
    let rate = summary.events as f64 / secs.max(1e-9);
    if as_json {
        let by_type: BTreeMap<&str, BTreeMap<&str, u64>> = summary
            .by_type
            .iter()
            .map(|(t, m)| {
                (
                    t.as_str(),
                    m.iter().map(|(a, n)| (a.as_str(), *n)).collect(),
                )
            })
            .collect();
        let out = json!({
            "events": summary.events,
            "duplicates": summary.duplicates,
            "rejected": summary.rejected,
            "rejections": summary.first_rejections,
            "actions": summary.by_action.iter().map(|(a, n)| (a.as_str(), *n)).collect::<BTreeMap<_, _>>(),
            "by_type": by_type,
            "seconds": secs,
            "events_per_second": rate,
        });
        println!("{out:#}");
        return;
    }
    println!(
        "replayed {} events in {secs:.2}s: {rate:.0} events/s (durable writes)",
        summary.events
    );
    if summary.duplicates > 0 {
        println!("  {} were duplicates of stored events", summary.duplicates);
    }
    println!("actions:");
    for action in Action::ALL {
        let n = summary.by_action.get(&action).copied().unwrap_or(0);
        println!("  {:<10} {n}", action.as_str());
    }
    println!("non-allow decisions by event type:");
    for (ty, actions) in &summary.by_type {
        let flagged: Vec<String> = actions
            .iter()
            .filter(|(a, _)| **a != Action::Allow)
            .map(|(a, n)| format!("{a} {n}"))
            .collect();
        if !flagged.is_empty() {
            println!("  {:<26} {}", ty.as_str(), flagged.join(", "));
        }
    }
    if summary.rejected > 0 {
        println!("{} lines rejected; the first ones:", summary.rejected);
        for why in &summary.first_rejections {
            println!("  {why}");
        }
    }
}
