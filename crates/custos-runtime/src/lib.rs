//! # custos-runtime
//!
//! Runs the engine against a durable store. One thread, the *engine thread*,
//! owns all account state and is the only writer to the store. Callers (HTTP
//! handlers, `custos replay`) send it submissions over a bounded channel and
//! wait for the answer.
//!
//! ## Group commit
//!
//! The engine thread takes everything waiting in its queue (up to
//! `max_group_events` events), decides each event in arrival order, then
//! writes all of them in one transaction and one fsync. Only after that
//! commit does any caller get its decisions: an acknowledged event is
//! durable. While one group is being fsynced, the next one queues up, so
//! throughput grows with load instead of being capped by fsync latency.
//!
//! ## Idempotency
//!
//! Event ids are client-chosen idempotency keys. A 64-bit fingerprint of
//! every stored id is kept in memory; a hit is confirmed against the store.
//! The same id with the same normalized body returns the stored decision and
//! changes nothing; with a different body the whole submission is refused
//! with [`SubmitError::Conflict`] before any of it is applied.
//!
//! ## Recovery
//!
//! On start the engine loads the newest snapshot and replays the log after
//! it, applying each stored decision (not deciding again), so state is
//! exactly what it was. A failed commit leaves memory ahead of the log; the
//! engine then rebuilds itself from the store before taking more work.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use custos_core::{AccountState, BootstrapPolicy, Decision, Engine, Event, EventParser, EventType};
use custos_store::{EventStore, NewRecord, StoreError, StoredRecord};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Meta key under which the destination-token key id is kept.
const TOKEN_KEY_META: &str = "destination_token_key_id";

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub policy: BootstrapPolicy,
    /// Most events decided and committed together in one transaction.
    pub max_group_events: usize,
    /// Write a snapshot after this many events (0: only at shutdown).
    pub snapshot_every_events: u64,
    /// Submissions that may wait for the engine thread before senders block.
    pub queue_depth: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            policy: BootstrapPolicy::default(),
            max_group_events: 8192,
            snapshot_every_events: 1_000_000,
            queue_depth: 4096,
        }
    }
}

/// An event with its normalized JSON, encoded by the caller (an HTTP worker
/// or the replay reader) so that the single engine thread does not have to.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub event: Event,
    pub json: String,
}

impl PreparedEvent {
    pub fn new(event: Event) -> Result<PreparedEvent, SubmitError> {
        let json = serde_json::to_string(&event)
            .map_err(|e| SubmitError::Storage(format!("cannot encode event: {e}")))?;
        Ok(PreparedEvent { event, json })
    }
}

/// How a submission treats an event id reused with a different body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atomicity {
    /// Refuse the whole submission (the HTTP API).
    AllOrNothing,
    /// Skip just that event, answering `None` for it (file replay).
    PerEvent,
}

/// The answer for one submitted event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub event_id: String,
    /// Position in the log.
    pub seq: u64,
    pub decision: Decision,
    /// The event id was already stored with the same body; `decision` is
    /// the stored one and no state changed.
    pub duplicate: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    #[error(
        "event {index} reuses event_id {event_id:?} with a different body; nothing in this request was applied"
    )]
    Conflict { index: usize, event_id: String },
    #[error("the store could not write: {0}; nothing in this request was applied")]
    Storage(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the destination token key changed (stored data uses key id {stored}, config gives {configured}); \
         tokens would no longer match: restore the old key or start with a new data directory"
    )]
    TokenKeyChanged { stored: String, configured: String },
    #[error("stored record seq {seq} ({event_id}) cannot be read: {problem}")]
    CorruptRecord {
        seq: u64,
        event_id: String,
        problem: String,
    },
    #[error("snapshot failed: {0}")]
    Snapshot(String),
    #[error("the engine thread has stopped")]
    Stopped,
}

/// Counts the engine thread reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub accounts: u64,
    pub last_seq: u64,
    pub events_since_snapshot: u64,
}

enum Command {
    Submit {
        events: Vec<PreparedEvent>,
        atomicity: Atomicity,
        reply: oneshot::Sender<Result<Vec<Option<Outcome>>, SubmitError>>,
    },
    Account {
        account_id: String,
        reply: oneshot::Sender<Option<AccountState>>,
    },
    Stats {
        reply: oneshot::Sender<EngineStats>,
    },
    Stop {
        snapshot: bool,
        reply: oneshot::Sender<Result<(), RuntimeError>>,
    },
}

/// Handle to the engine thread. Cheap to share behind an `Arc`.
pub struct Runtime {
    tx: mpsc::Sender<Command>,
    store: Arc<dyn EventStore>,
    parser: EventParser,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// A submission on its way, for callers that keep several in flight.
pub struct Ticket(oneshot::Receiver<Result<Vec<Option<Outcome>>, SubmitError>>);

impl Ticket {
    /// Blocks until the submission is committed (not for async contexts).
    /// `None` marks an event skipped for an id conflict ([`Atomicity::PerEvent`]).
    pub fn wait_blocking(self) -> Result<Vec<Option<Outcome>>, SubmitError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(SubmitError::ShuttingDown))
    }
}

impl Runtime {
    /// Recovers state from the store and starts the engine thread.
    pub fn start(
        store: Arc<dyn EventStore>,
        parser: EventParser,
        config: RuntimeConfig,
    ) -> Result<Runtime, RuntimeError> {
        check_token_key(store.as_ref(), &parser)?;
        let started = Instant::now();
        let mut worker = Worker {
            engine: Engine::new(config.policy),
            store: store.clone(),
            parser: parser.clone(),
            seen: FingerprintSet::default(),
            next_seq: 1,
            events_since_snapshot: 0,
            needs_recovery: false,
            config: config.clone(),
        };
        worker.recover()?;
        tracing::info!(
            accounts = worker.engine.account_count(),
            last_seq = worker.next_seq - 1,
            replayed = worker.events_since_snapshot,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "engine state recovered"
        );
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        let handle = std::thread::Builder::new()
            .name("custos-engine".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| RuntimeError::Snapshot(format!("cannot start engine thread: {e}")))?;
        Ok(Runtime {
            tx,
            store,
            parser,
            worker: Mutex::new(Some(handle)),
        })
    }

    /// The store, for reads that need no engine state.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn parser(&self) -> &EventParser {
        &self.parser
    }

    /// Decides and durably records a batch of events, all or nothing.
    pub async fn submit(&self, events: Vec<PreparedEvent>) -> Result<Vec<Outcome>, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Submit {
                events,
                atomicity: Atomicity::AllOrNothing,
                reply,
            })
            .await
            .map_err(|_| SubmitError::ShuttingDown)?;
        let answers = answer.await.unwrap_or(Err(SubmitError::ShuttingDown))?;
        // All-or-nothing submissions never skip an event.
        Ok(answers.into_iter().flatten().collect())
    }

    /// Queues a batch from a blocking context; the ticket yields its answer.
    pub fn enqueue_blocking(
        &self,
        events: Vec<PreparedEvent>,
        atomicity: Atomicity,
    ) -> Result<Ticket, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .blocking_send(Command::Submit {
                events,
                atomicity,
                reply,
            })
            .map_err(|_| SubmitError::ShuttingDown)?;
        Ok(Ticket(answer))
    }

    /// The state of one account, as of the last commit.
    pub async fn account(&self, account_id: &str) -> Result<Option<AccountState>, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Account {
                account_id: account_id.to_string(),
                reply,
            })
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        answer.await.map_err(|_| RuntimeError::Stopped)
    }

    pub async fn stats(&self) -> Result<EngineStats, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Stats { reply })
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        answer.await.map_err(|_| RuntimeError::Stopped)
    }

    /// Finishes queued work, writes a snapshot and stops the engine thread.
    pub async fn shutdown(&self) -> Result<(), RuntimeError> {
        self.stop(true).await
    }

    /// Stops without a snapshot, as a crash would: the next start rebuilds
    /// from the log alone. For tests and benchmarks of recovery.
    pub async fn halt(&self) -> Result<(), RuntimeError> {
        self.stop(false).await
    }

    async fn stop(&self, snapshot: bool) -> Result<(), RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Stop { snapshot, reply })
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        let result = answer.await.map_err(|_| RuntimeError::Stopped)?;
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            // The thread has answered and is returning; joining is quick.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        result
    }

    /// Blocking variant of [`Runtime::shutdown`] for non-async callers.
    pub fn shutdown_blocking(&self) -> Result<(), RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .blocking_send(Command::Stop {
                snapshot: true,
                reply,
            })
            .map_err(|_| RuntimeError::Stopped)?;
        let result = answer.blocking_recv().map_err(|_| RuntimeError::Stopped)?;
        if let Some(handle) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = handle.join();
        }
        result
    }
}

fn check_token_key(store: &dyn EventStore, parser: &EventParser) -> Result<(), RuntimeError> {
    let configured = parser.token_key_id();
    match store.get_meta(TOKEN_KEY_META)? {
        Some(stored) if stored != configured => Err(RuntimeError::TokenKeyChanged {
            stored,
            configured: configured.to_string(),
        }),
        Some(_) => Ok(()),
        None => Ok(store.set_meta(TOKEN_KEY_META, configured)?),
    }
}

/// Fingerprints are already hashes: hash them by identity.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FingerprintSet = HashSet<u64, BuildHasherDefault<IdentityHasher>>;

/// Event ids decided in the current group, to their entry.
type GroupIndex = HashMap<String, usize, foldhash::fast::RandomState>;

fn fingerprint(event_id: &str) -> u64 {
    // A fixed seed: fingerprints are rebuilt from the store at every start,
    // and a collision only costs one extra store lookup.
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5EED_C057_05E7_1D00).hash_one(event_id)
}

/// How one event of a submission will be answered.
enum Plan {
    New,
    /// Reuses a stored id with another body.
    Conflict,
    /// Duplicate of a stored event or of one earlier in this group.
    Stored(Outcome),
    /// Duplicate of an earlier event in the same submission.
    SameAs(usize),
}

struct PendingReply {
    reply: oneshot::Sender<Result<Vec<Option<Outcome>>, SubmitError>>,
    result: Result<Vec<Option<Outcome>>, SubmitError>,
}

struct Worker {
    engine: Engine,
    store: Arc<dyn EventStore>,
    parser: EventParser,
    seen: FingerprintSet,
    next_seq: u64,
    events_since_snapshot: u64,
    needs_recovery: bool,
    config: RuntimeConfig,
}

/// An event of the current group, decided, waiting for its commit.
struct GroupEntry {
    outcome: Outcome,
    event_type: EventType,
    account_id: String,
    event_time: i64,
    event_json: String,
    decision_json: String,
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut commands = vec![first];
            let mut events = commands[0].event_count();
            while events < self.config.max_group_events {
                match rx.try_recv() {
                    Ok(c) => {
                        events += c.event_count();
                        commands.push(c);
                    }
                    Err(_) => break,
                }
            }
            if self.handle_group(commands) {
                return;
            }
        }
        // Every sender is gone without a stop command: stop cleanly anyway.
        if let Err(e) = self.snapshot() {
            tracing::error!(error = %e, "final snapshot failed");
        }
    }

    /// Handles one group of commands; returns true when told to stop.
    fn handle_group(&mut self, commands: Vec<Command>) -> bool {
        if self.needs_recovery {
            match self.recover() {
                Ok(()) => {
                    self.needs_recovery = false;
                    tracing::warn!(
                        last_seq = self.next_seq - 1,
                        "engine rebuilt from the store"
                    );
                }
                Err(e) => tracing::error!(error = %e, "engine rebuild from the store failed"),
            }
        }
        let mut group: Vec<GroupEntry> = Vec::new();
        let mut group_index: GroupIndex = HashMap::default();
        let mut pending: Vec<PendingReply> = Vec::new();
        let mut reads: Vec<Command> = Vec::new();
        let mut stop: Option<(bool, oneshot::Sender<Result<(), RuntimeError>>)> = None;

        for command in commands {
            match command {
                Command::Submit {
                    events,
                    atomicity,
                    reply,
                } => {
                    let result = if self.needs_recovery {
                        Err(SubmitError::Storage(
                            "engine state is being rebuilt after a store failure".into(),
                        ))
                    } else if stop.is_some() {
                        Err(SubmitError::ShuttingDown)
                    } else {
                        self.submit(events, atomicity, &mut group, &mut group_index)
                    };
                    pending.push(PendingReply { reply, result });
                }
                Command::Stop { snapshot, reply } => stop = Some((snapshot, reply)),
                read => reads.push(read),
            }
        }

        let started = Instant::now();
        let committed = self.commit(&group);
        if !group.is_empty() {
            metrics::histogram!("custos_commit_seconds").record(started.elapsed().as_secs_f64());
            metrics::histogram!("custos_commit_group_events").record(group.len() as f64);
        }
        match committed {
            Ok(()) => {
                for entry in &group {
                    self.seen.insert(fingerprint(&entry.outcome.event_id));
                    metrics::counter!(
                        "custos_events_total",
                        "type" => entry.event_type.as_str(),
                        "action" => entry.outcome.decision.action.as_str()
                    )
                    .increment(1);
                }
                self.events_since_snapshot += group.len() as u64;
                for p in pending {
                    let _ = p.reply.send(p.result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = group.len(), "group commit failed; rebuilding engine state");
                metrics::counter!("custos_commit_failures_total").increment(1);
                self.needs_recovery = true;
                for p in pending {
                    let result = match p.result {
                        Ok(_) => Err(SubmitError::Storage(e.to_string())),
                        err => err,
                    };
                    let _ = p.reply.send(result);
                }
            }
        }

        for read in reads {
            self.answer_read(read);
        }
        if let Some((snapshot, reply)) = stop {
            let result = if snapshot { self.snapshot() } else { Ok(()) };
            let _ = reply.send(result);
            return true;
        }
        if self.config.snapshot_every_events > 0
            && self.events_since_snapshot >= self.config.snapshot_every_events
            && let Err(e) = self.snapshot()
        {
            tracing::error!(error = %e, "periodic snapshot failed");
        }
        false
    }

    /// Plans, decides and stages one submission; with
    /// [`Atomicity::AllOrNothing`] nothing is applied if any event conflicts.
    fn submit(
        &mut self,
        events: Vec<PreparedEvent>,
        atomicity: Atomicity,
        group: &mut Vec<GroupEntry>,
        group_index: &mut GroupIndex,
    ) -> Result<Vec<Option<Outcome>>, SubmitError> {
        let mut plans = Vec::with_capacity(events.len());
        let mut local: HashMap<&str, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(events.len(), Default::default());
        for (index, prepared) in events.iter().enumerate() {
            let (event, json) = (&prepared.event, &prepared.json);
            let plan = if let Some(&earlier) = local.get(event.event_id.as_str()) {
                if events[earlier].json == *json {
                    Plan::SameAs(earlier)
                } else {
                    Plan::Conflict
                }
            } else if let Some(&at) = group_index.get(&event.event_id) {
                let entry = &group[at];
                if entry.event_json == *json {
                    Plan::Stored(Outcome {
                        duplicate: true,
                        ..entry.outcome.clone()
                    })
                } else {
                    Plan::Conflict
                }
            } else if self.seen.contains(&fingerprint(&event.event_id)) {
                match self.stored_outcome(&event.event_id, json) {
                    Ok(Some(Ok(outcome))) => Plan::Stored(outcome),
                    Ok(Some(Err(()))) => Plan::Conflict,
                    Ok(None) => Plan::New,
                    Err(e) => return Err(SubmitError::Storage(e.to_string())),
                }
            } else {
                Plan::New
            };
            if matches!(plan, Plan::Conflict) {
                metrics::counter!("custos_conflicting_events_total").increment(1);
                if atomicity == Atomicity::AllOrNothing {
                    return Err(SubmitError::Conflict {
                        index,
                        event_id: event.event_id.clone(),
                    });
                }
            } else {
                local.insert(&event.event_id, index);
            }
            plans.push(plan);
        }

        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(events.len());
        for (prepared, plan) in events.into_iter().zip(plans) {
            let PreparedEvent { event, json } = prepared;
            let outcome = match plan {
                Plan::New => {
                    let decision = self.engine.process(&event);
                    let decision_json = serde_json::to_string(&decision).map_err(|e| {
                        SubmitError::Storage(format!("cannot encode decision: {e}"))
                    })?;
                    let outcome = Outcome {
                        event_id: event.event_id.clone(),
                        seq: self.next_seq,
                        decision,
                        duplicate: false,
                    };
                    self.next_seq += 1;
                    group_index.insert(event.event_id.clone(), group.len());
                    group.push(GroupEntry {
                        outcome: outcome.clone(),
                        event_type: event.event_type,
                        account_id: event.account_id,
                        event_time: event.time.unix_timestamp(),
                        event_json: json,
                        decision_json,
                    });
                    Some(outcome)
                }
                Plan::Conflict => None,
                Plan::Stored(outcome) => {
                    metrics::counter!("custos_duplicate_events_total").increment(1);
                    Some(outcome)
                }
                Plan::SameAs(earlier) => {
                    metrics::counter!("custos_duplicate_events_total").increment(1);
                    outcomes[earlier].clone().map(|o| Outcome {
                        duplicate: true,
                        ..o
                    })
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// For a fingerprint hit: `Some(Ok)` when the stored body matches,
    /// `Some(Err)` when it differs, `None` when the id is not stored after
    /// all (a fingerprint collision).
    fn stored_outcome(
        &self,
        event_id: &str,
        json: &str,
    ) -> Result<Option<Result<Outcome, ()>>, RuntimeError> {
        let Some(record) = self.store.get_event(event_id)? else {
            return Ok(None);
        };
        if record.event_json != json {
            return Ok(Some(Err(())));
        }
        let decision = decode_decision(&record)?;
        Ok(Some(Ok(Outcome {
            event_id: record.event_id,
            seq: record.seq,
            decision,
            duplicate: true,
        })))
    }

    fn commit(&self, group: &[GroupEntry]) -> Result<(), StoreError> {
        if group.is_empty() {
            return Ok(());
        }
        let received_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let records: Vec<NewRecord<'_>> = group
            .iter()
            .map(|e| NewRecord {
                seq: e.outcome.seq,
                event_id: &e.outcome.event_id,
                account_id: &e.account_id,
                event_type: e.event_type.as_str(),
                event_time: e.event_time,
                received_at_ms,
                event_json: &e.event_json,
                decision_json: &e.decision_json,
            })
            .collect();
        self.store.append(&records)
    }

    fn answer_read(&self, command: Command) {
        match command {
            Command::Account { account_id, reply } => {
                let _ = reply.send(self.engine.account(&account_id).cloned());
            }
            Command::Stats { reply } => {
                let _ = reply.send(EngineStats {
                    accounts: self.engine.account_count() as u64,
                    last_seq: self.next_seq - 1,
                    events_since_snapshot: self.events_since_snapshot,
                });
            }
            Command::Submit { .. } | Command::Stop { .. } => {}
        }
    }

    fn snapshot(&mut self) -> Result<(), RuntimeError> {
        if self.needs_recovery || self.events_since_snapshot == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let bytes = self
            .engine
            .snapshot()
            .map_err(|e| RuntimeError::Snapshot(e.to_string()))?;
        let seq = self.next_seq - 1;
        self.store.save_snapshot(seq, &bytes)?;
        self.events_since_snapshot = 0;
        tracing::info!(
            seq,
            bytes = bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok(())
    }

    /// Rebuilds engine state, the next seq and the id fingerprints from the store.
    fn recover(&mut self) -> Result<(), RuntimeError> {
        let mut engine = Engine::new(self.config.policy);
        let mut from = 0;
        if let Some((seq, bytes)) = self.store.latest_snapshot()? {
            match engine.restore(&bytes) {
                Ok(()) => from = seq,
                Err(e) => {
                    tracing::warn!(error = %e, seq, "ignoring snapshot; replaying the whole log");
                    engine = Engine::new(self.config.policy);
                }
            }
        }
        let mut replayed = 0u64;
        let mut last_seq = from;
        let mut failure: Option<RuntimeError> = None;
        let parser = &self.parser;
        self.store
            .scan(from, &mut |record| {
                let decoded = decode_event(parser, &record)
                    .and_then(|event| Ok((event, decode_decision(&record)?)));
                match decoded {
                    Ok((event, decision)) => {
                        engine.apply(&event, &decision);
                        replayed += 1;
                        last_seq = record.seq;
                        Ok(())
                    }
                    Err(e) => {
                        failure = Some(e);
                        Err(StoreError::Visitor("corrupt record".into()))
                    }
                }
            })
            .map_err(|e| failure.take().unwrap_or(RuntimeError::Store(e)))?;
        let mut seen = FingerprintSet::default();
        self.store.scan_event_ids(&mut |id| {
            seen.insert(fingerprint(id));
        })?;
        self.engine = engine;
        self.seen = seen;
        self.next_seq = last_seq.max(self.store.last_seq()?) + 1;
        self.events_since_snapshot = replayed;
        Ok(())
    }
}

impl Command {
    fn event_count(&self) -> usize {
        match self {
            Command::Submit { events, .. } => events.len(),
            _ => 1,
        }
    }
}

fn decode_event(parser: &EventParser, record: &StoredRecord) -> Result<Event, RuntimeError> {
    let corrupt = |problem: String| RuntimeError::CorruptRecord {
        seq: record.seq,
        event_id: record.event_id.clone(),
        problem,
    };
    let value: serde_json::Value =
        serde_json::from_str(&record.event_json).map_err(|e| corrupt(e.to_string()))?;
    parser
        .parse_value(value)
        .map_err(|e| corrupt(e.to_string()))
}

fn decode_decision(record: &StoredRecord) -> Result<Decision, RuntimeError> {
    serde_json::from_str(&record.decision_json).map_err(|e| RuntimeError::CorruptRecord {
        seq: record.seq,
        event_id: record.event_id.clone(),
        problem: format!("decision: {e}"),
    })
}

#[cfg(test)]
mod tests;
