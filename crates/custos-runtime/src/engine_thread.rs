//! The engine thread: owns all account state, decides events in order and
//! hands decided groups to the writer thread.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use custos_core::{Decision, Engine, Event, EventParser, RuleSet};
use custos_store::{EventStore, StoreError, StoredRecord};
use tokio::sync::{mpsc, oneshot};

use crate::messages::{GroupEntry, Job, Note, Reply};
use crate::snapshots::{self, Backoff, SnapshotDone, SnapshotJob, SnapshotThread};
use crate::writer;
use crate::{
    Atomicity, Command, CommitLog, EngineStats, Outcome, PreparedEvent, Replicated, RuntimeConfig,
    RuntimeError, Stored, SubmitError, fingerprint,
};

/// Groups the engine may decide ahead of the writer's commits.
const GROUPS_AHEAD: usize = 2;

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

/// An event decided but not yet confirmed durable by the writer.
struct Unconfirmed {
    body_hash: u64,
    outcome: Outcome,
}

/// How one event of a submission will be answered.
enum Plan {
    New,
    /// Reuses a stored id with another body.
    Conflict,
    /// Duplicate of a stored or unconfirmed event.
    Stored(Box<Outcome>),
    /// Duplicate of an earlier event in the same submission.
    SameAs(usize),
}

pub(crate) struct EngineThread {
    engine: Engine,
    /// The live rule set, swapped by installs; read once per group.
    rules: Arc<ArcSwap<RuleSet>>,
    store: Arc<dyn EventStore>,
    parser: EventParser,
    config: RuntimeConfig,
    /// Fingerprints of every stored or unconfirmed event id, unless the
    /// store answers for stored ids itself (`ids_in_store`).
    seen: FingerprintSet,
    /// The store keeps its event ids in memory
    /// (`EventStore::may_hold_event_id`): `seen` stays empty.
    ids_in_store: bool,
    /// Decided events the writer has not confirmed yet, by event id.
    unconfirmed: HashMap<String, Unconfirmed, foldhash::fast::RandomState>,
    /// Ids of each group sent to the writer, with its last seq, oldest first.
    sent: VecDeque<(u64, Vec<String>)>,
    next_seq: u64,
    events_since_snapshot: u64,
    /// Bumped by each rebuild; the writer refuses groups of a failed generation.
    generation: u64,
    needs_recovery: bool,
    /// The writer's newest note was a failure (cleared by the next commit).
    last_commit_failed: bool,
    writer: Option<(std_mpsc::SyncSender<Job>, JoinHandle<()>)>,
    notes: Option<std_mpsc::Receiver<Note>>,
    snapshotter: Option<SnapshotThread>,
    /// Events counted into the snapshot being written, if one is.
    snapshot_in_flight: Option<u64>,
    /// When the next periodic snapshot is due.
    snapshot_backoff: Backoff,
    /// The newest snapshot attempt failed (cleared by the next success).
    last_snapshot_failed: bool,
    /// Where decided groups go before the store (a cluster's decisions).
    log: Option<Arc<dyn CommitLog>>,
}

impl EngineThread {
    /// Builds the engine from the store's snapshot and log.
    pub(crate) fn recover(
        store: Arc<dyn EventStore>,
        parser: EventParser,
        config: RuntimeConfig,
        rules: Arc<ArcSwap<RuleSet>>,
        log: Option<Arc<dyn CommitLog>>,
    ) -> Result<EngineThread, RuntimeError> {
        let mut thread = EngineThread {
            engine: Engine::with_features(rules.load_full(), config.features.clone()),
            rules,
            store,
            parser,
            seen: FingerprintSet::default(),
            ids_in_store: false,
            unconfirmed: HashMap::default(),
            sent: VecDeque::new(),
            next_seq: 1,
            events_since_snapshot: 0,
            generation: 0,
            needs_recovery: false,
            last_commit_failed: false,
            writer: None,
            notes: None,
            snapshotter: None,
            snapshot_in_flight: None,
            snapshot_backoff: Backoff::new(config.snapshot_every_events),
            config,
            last_snapshot_failed: false,
            log,
        };
        thread.rebuild()?;
        Ok(thread)
    }

    pub(crate) fn account_count(&self) -> usize {
        self.engine.account_count()
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub(crate) fn events_since_snapshot(&self) -> u64 {
        self.events_since_snapshot
    }

    /// The thread's main loop: runs until told to stop or every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let (jobs, notes, handle) =
            writer::spawn(self.store.clone(), self.log.clone(), GROUPS_AHEAD);
        let handle = match handle {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the writer thread");
                return;
            }
        };
        self.writer = Some((jobs, handle));
        self.notes = Some(notes);
        match snapshots::spawn(self.store.clone()) {
            Ok(thread) => self.snapshotter = Some(thread),
            // Snapshots are then written on this thread, as before.
            Err(e) => tracing::error!(error = %e, "cannot start the snapshot thread"),
        }
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
        if let Err(e) = self.stop(true) {
            tracing::error!(error = %e, "final snapshot failed");
        }
    }

    /// Handles one group of commands; returns true when told to stop.
    fn handle_group(&mut self, commands: Vec<Command>) -> bool {
        self.read_notes();
        let live = self.rules.load();
        if !Arc::ptr_eq(self.engine.rules(), &live) {
            self.engine.set_rules(Arc::clone(&live));
        }
        if self.needs_recovery {
            self.recover_after_failure();
        }
        let mut entries: Vec<GroupEntry> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut stop: Option<(bool, oneshot::Sender<Result<(), RuntimeError>>)> = None;

        for command in commands {
            match command {
                Command::Submit {
                    events,
                    atomicity,
                    reply,
                } => {
                    let result = match self.refusal(stop.is_some()) {
                        Some(refused) => Err(refused),
                        None => self.submit(events, atomicity, &mut entries),
                    };
                    replies.push(Reply::Submit { reply, result });
                }
                Command::Replicate { records, reply } => {
                    let result = match self.refusal(stop.is_some()) {
                        Some(refused) => Err(refused),
                        None => self.replicate(records, &mut entries),
                    };
                    replies.push(Reply::Submit { reply, result });
                }
                Command::Account { account_id, reply } => replies.push(Reply::Account {
                    reply,
                    state: self.engine.account(&account_id).cloned().map(Box::new),
                }),
                Command::Read { read, reply } => replies.push(Reply::Read {
                    reply,
                    value: read(&self.engine),
                }),
                Command::Stats { reply } => {
                    let _ = reply.send(EngineStats {
                        accounts: self.engine.account_count() as u64,
                        last_seq: self.next_seq - 1,
                        events_since_snapshot: self.events_since_snapshot,
                        last_commit_failed: self.last_commit_failed,
                        last_snapshot_failed: self.last_snapshot_failed,
                        holds_open: self.engine.holds().open_count() as u64,
                        holds_awaiting_analyst: self
                            .engine
                            .holds()
                            .open()
                            .iter()
                            .filter(|h| h.awaiting_analyst)
                            .count() as u64,
                        campaigns_suspected: self
                            .engine
                            .campaigns()
                            .campaigns()
                            .filter(|c| {
                                c.status == custos_core::campaigns::CampaignStatus::Suspected
                            })
                            .count() as u64,
                        queue_depth: 0,
                    });
                }
                Command::Stop { snapshot, reply } => stop = Some((snapshot, reply)),
            }
        }

        if !entries.is_empty() {
            let ids: Vec<String> = entries.iter().map(|e| e.outcome.event_id.clone()).collect();
            self.sent.push_back((self.next_seq - 1, ids));
            self.events_since_snapshot += entries.len() as u64;
        }
        if !entries.is_empty() || !replies.is_empty() {
            self.send_job(Job::Commit {
                generation: self.generation,
                entries,
                replies,
            });
        }

        if let Some((snapshot, reply)) = stop {
            let _ = reply.send(self.stop(snapshot));
            return true;
        }
        if self.config.snapshot_every_events > 0
            && self.snapshot_in_flight.is_none()
            && !self.needs_recovery
            && self.events_since_snapshot >= self.snapshot_backoff.due_at
        {
            // The snapshot must hold only what the log holds.
            self.wait_for_writer();
            self.start_snapshot();
        }
        false
    }

    /// Copies the state and hands the copy to the snapshot thread, which
    /// serializes and stores it while ingest goes on (without a snapshot
    /// thread, writes it here).
    fn start_snapshot(&mut self) {
        if self.needs_recovery || self.events_since_snapshot == 0 {
            return;
        }
        let seq = self.next_seq - 1;
        let events = self.events_since_snapshot;
        let Some((jobs, _, _)) = &self.snapshotter else {
            let started = Instant::now();
            let result = snapshots::write(self.store.as_ref(), seq, &self.engine);
            self.snapshot_finished(SnapshotDone {
                seq,
                events,
                copy: Duration::ZERO,
                write: started.elapsed(),
                result,
            });
            return;
        };
        // The only stall a periodic snapshot causes: a copy, not the
        // serialization (several times slower).
        let started = Instant::now();
        let engine = Box::new(self.engine.clone());
        let copy = started.elapsed();
        metrics::histogram!("custos_snapshot_copy_seconds").record(copy.as_secs_f64());
        let job = SnapshotJob {
            seq,
            engine,
            events,
            copy,
        };
        match jobs.try_send(job) {
            Ok(()) => self.snapshot_in_flight = Some(events),
            Err(std_mpsc::TrySendError::Full(job) | std_mpsc::TrySendError::Disconnected(job)) => {
                let done = snapshots::save(self.store.as_ref(), job);
                self.snapshot_finished(done);
            }
        }
    }

    /// Takes the outcome of a snapshot: on success the interval starts
    /// over; on failure the next attempt backs off.
    fn snapshot_finished(&mut self, done: SnapshotDone) {
        self.snapshot_in_flight = None;
        let every = self.config.snapshot_every_events;
        metrics::histogram!("custos_snapshot_write_seconds").record(done.write.as_secs_f64());
        match done.result {
            Ok(info) => {
                self.events_since_snapshot = self.events_since_snapshot.saturating_sub(done.events);
                self.snapshot_backoff.succeeded(every);
                self.last_snapshot_failed = false;
                metrics::counter!("custos_snapshots_total", "result" => "ok").increment(1);
                metrics::gauge!("custos_snapshot_bytes").set(info.bytes as f64);
                metrics::gauge!("custos_snapshot_last_failed").set(0.0);
                tracing::info!(
                    seq = done.seq,
                    bytes = info.bytes,
                    chunks = info.chunks,
                    copy_ms = done.copy.as_millis() as u64,
                    write_ms = done.write.as_millis() as u64,
                    "snapshot written"
                );
            }
            Err(error) => {
                self.snapshot_backoff.failed(every, done.events);
                self.last_snapshot_failed = true;
                metrics::counter!("custos_snapshots_total", "result" => "failed").increment(1);
                metrics::gauge!("custos_snapshot_last_failed").set(1.0);
                tracing::error!(
                    seq = done.seq,
                    error = %error,
                    failures = self.snapshot_backoff.failures,
                    next_attempt_after_events = self.snapshot_backoff.due_at,
                    "snapshot failed; the next attempt backs off"
                );
            }
        }
    }

    /// Takes the snapshot thread's outcomes; with `wait`, blocks until no
    /// snapshot is in flight.
    fn read_snapshot_notes(&mut self, wait: bool) {
        loop {
            let Some((_, done, _)) = &self.snapshotter else {
                return;
            };
            let next = if wait && self.snapshot_in_flight.is_some() {
                done.recv().ok()
            } else {
                done.try_recv().ok()
            };
            match next {
                Some(done) => self.snapshot_finished(done),
                None => {
                    if wait && self.snapshot_in_flight.is_some() {
                        // The thread is gone with the job: count it failed.
                        self.snapshot_in_flight = None;
                        self.last_snapshot_failed = true;
                    }
                    return;
                }
            }
        }
    }

    fn send_job(&mut self, job: Job) {
        let sent = match &self.writer {
            Some((jobs, _)) => jobs.send(job).is_ok(),
            None => false,
        };
        if !sent {
            tracing::error!("the writer thread is gone; answers are lost");
            self.needs_recovery = true;
        }
    }

    /// Takes the writer's confirmations and failures, and the snapshot
    /// thread's outcomes.
    fn read_notes(&mut self) {
        self.read_snapshot_notes(false);
        let Some(notes) = &self.notes else { return };
        while let Ok(note) = notes.try_recv() {
            match note {
                Note::Committed { last_seq } => {
                    self.last_commit_failed = false;
                    while self.sent.front().is_some_and(|(seq, _)| *seq <= last_seq) {
                        if let Some((_, ids)) = self.sent.pop_front() {
                            for id in ids {
                                self.unconfirmed.remove(&id);
                            }
                        }
                    }
                }
                Note::Failed => {
                    self.needs_recovery = true;
                    self.last_commit_failed = true;
                }
            }
        }
    }

    /// Blocks until the writer has handled every job sent so far.
    fn wait_for_writer(&mut self) {
        let (ack, acked) = std_mpsc::sync_channel(1);
        self.send_job(Job::Barrier { ack });
        let _ = acked.recv();
        self.read_notes();
    }

    fn recover_after_failure(&mut self) {
        // Every group sent before now is refused by the writer; wait for it
        // to be done with them, then rebuild from what is durable. A
        // snapshot being written would have its chunks read half-written.
        self.wait_for_writer();
        self.read_snapshot_notes(true);
        self.generation += 1;
        match self.rebuild() {
            Ok(()) => {
                self.needs_recovery = false;
                tracing::warn!(
                    last_seq = self.next_seq - 1,
                    "engine rebuilt from the store after a failed commit"
                );
            }
            Err(e) => tracing::error!(error = %e, "engine rebuild from the store failed"),
        }
    }

    fn stop(&mut self, snapshot: bool) -> Result<(), RuntimeError> {
        self.wait_for_writer();
        self.read_snapshot_notes(true);
        let result = if snapshot && !self.needs_recovery {
            self.snapshot()
        } else {
            Ok(())
        };
        if let Some((jobs, _, handle)) = self.snapshotter.take() {
            drop(jobs);
            let _ = handle.join();
        }
        if let Some((jobs, handle)) = self.writer.take() {
            drop(jobs);
            let _ = handle.join();
        }
        result
    }

    /// Plans, decides and stages one submission; with
    /// [`Atomicity::AllOrNothing`] nothing is applied if any event conflicts.
    fn submit(
        &mut self,
        events: Vec<PreparedEvent>,
        atomicity: Atomicity,
        entries: &mut Vec<GroupEntry>,
    ) -> Result<Vec<Option<Outcome>>, SubmitError> {
        let mut plans = Vec::with_capacity(events.len());
        let mut local: HashMap<&str, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(events.len(), Default::default());
        for (index, prepared) in events.iter().enumerate() {
            let (event, identity) = (&prepared.event, prepared.identity);
            let plan = if let Some(&earlier) = local.get(event.event_id.as_str()) {
                if events[earlier].identity == identity {
                    Plan::SameAs(earlier)
                } else {
                    Plan::Conflict
                }
            } else if let Some(pending) = self.unconfirmed.get(&event.event_id) {
                if pending.body_hash == identity {
                    Plan::Stored(Box::new(Outcome {
                        duplicate: true,
                        ..pending.outcome.clone()
                    }))
                } else {
                    Plan::Conflict
                }
            } else if self.may_be_stored(&event.event_id) {
                match stored(self.store.as_ref(), &self.parser, &event.event_id, identity) {
                    Ok(Stored::Same(outcome)) => Plan::Stored(outcome),
                    Ok(Stored::Different) => Plan::Conflict,
                    // A fingerprint collision: the id is not stored after all.
                    Ok(Stored::Absent) => Plan::New,
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
            let outcome = match plan {
                Plan::New => Some(self.decide(prepared, entries)?),
                Plan::Conflict => None,
                Plan::Stored(outcome) => {
                    metrics::counter!("custos_duplicate_events_total").increment(1);
                    Some(*outcome)
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

    /// Whether `event_id` may be stored already (decided and committed):
    /// false for certain, or true to be confirmed against the store.
    fn may_be_stored(&self, event_id: &str) -> bool {
        if self.ids_in_store {
            self.store.may_hold_event_id(event_id).unwrap_or(true)
        } else {
            self.seen.contains(&fingerprint(event_id))
        }
    }

    /// Why new events cannot be taken now, if they cannot.
    fn refusal(&self, stopping: bool) -> Option<SubmitError> {
        if self.needs_recovery {
            Some(SubmitError::Storage(
                "engine state is being rebuilt after a store failure".into(),
            ))
        } else if stopping {
            Some(SubmitError::ShuttingDown)
        } else {
            None
        }
    }

    /// Applies events decided elsewhere with their decisions; an id already
    /// stored or waiting for its commit is skipped as a duplicate.
    fn replicate(
        &mut self,
        records: Vec<Replicated>,
        entries: &mut Vec<GroupEntry>,
    ) -> Result<Vec<Option<Outcome>>, SubmitError> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let event_id = record.prepared.event.event_id.as_str();
            let known = if let Some(pending) = self.unconfirmed.get(event_id) {
                Some(Outcome {
                    duplicate: true,
                    ..pending.outcome.clone()
                })
            } else if self.may_be_stored(event_id) {
                match self.store.get_event(event_id) {
                    Ok(Some(stored)) => Some(Outcome {
                        event_id: stored.event_id.clone(),
                        seq: stored.seq,
                        decision: decode_decision(&stored)
                            .map_err(|e| SubmitError::Storage(e.to_string()))?,
                        duplicate: true,
                    }),
                    Ok(None) => None,
                    Err(e) => return Err(SubmitError::Storage(e.to_string())),
                }
            } else {
                None
            };
            if let Some(known) = known {
                outcomes.push(Some(known));
                continue;
            }
            self.engine.apply(&record.prepared.event, &record.decision);
            outcomes.push(Some(self.stage(
                record.prepared,
                record.decision,
                record.decision_json,
                entries,
            )));
        }
        Ok(outcomes)
    }

    fn decide(
        &mut self,
        prepared: PreparedEvent,
        entries: &mut Vec<GroupEntry>,
    ) -> Result<Outcome, SubmitError> {
        let decision = self.engine.process(&prepared.event);
        let decision_json = serde_json::to_string(&decision)
            .map_err(|e| SubmitError::Storage(format!("cannot encode decision: {e}")))?;
        Ok(self.stage(prepared, decision, decision_json, entries))
    }

    /// Gives an applied event its seq and stages it for the writer.
    fn stage(
        &mut self,
        prepared: PreparedEvent,
        decision: Decision,
        decision_json: String,
        entries: &mut Vec<GroupEntry>,
    ) -> Outcome {
        let PreparedEvent {
            event,
            json,
            identity,
            origin,
        } = prepared;
        let outcome = Outcome {
            event_id: event.event_id.clone(),
            seq: self.next_seq,
            decision,
            duplicate: false,
        };
        self.next_seq += 1;
        if !self.ids_in_store {
            self.seen.insert(fingerprint(&event.event_id));
        }
        self.unconfirmed.insert(
            event.event_id.clone(),
            Unconfirmed {
                body_hash: identity,
                outcome: outcome.clone(),
            },
        );
        entries.push(GroupEntry {
            outcome: outcome.clone(),
            event_type: event.event_type,
            event_time: event.time.unix_timestamp(),
            account_id: event.account_id,
            event_json: json,
            decision_json,
            origin,
        });
        outcome
    }

    /// Writes a snapshot here and now (at shutdown); the caller makes sure
    /// every group is committed and no snapshot is in flight.
    fn snapshot(&mut self) -> Result<(), RuntimeError> {
        if self.needs_recovery || self.events_since_snapshot == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let result = snapshots::write(self.store.as_ref(), self.next_seq - 1, &self.engine);
        let outcome = match &result {
            Ok(_) => Ok(()),
            Err(e) => Err(RuntimeError::Snapshot(e.clone())),
        };
        self.snapshot_finished(SnapshotDone {
            seq: self.next_seq - 1,
            events: self.events_since_snapshot,
            copy: Duration::ZERO,
            write: started.elapsed(),
            result,
        });
        outcome
    }

    /// Rebuilds engine state, the next seq and the id fingerprints from the store.
    fn rebuild(&mut self) -> Result<(), RuntimeError> {
        let mut engine =
            Engine::with_features(self.rules.load_full(), self.config.features.clone());
        let mut from = 0;
        if let Some((seq, reader)) = self.store.latest_snapshot()? {
            // Streamed: the serialized snapshot is never in memory whole.
            match engine.restore_from(reader) {
                Ok(()) => from = seq,
                Err(e) => {
                    tracing::warn!(error = %e, seq, "ignoring snapshot; replaying the whole log");
                    engine =
                        Engine::with_features(self.rules.load_full(), self.config.features.clone());
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
        // A store that answers for its ids from memory spares reading every
        // id of the log again.
        self.ids_in_store = self.store.may_hold_event_id("").is_some();
        let mut seen = FingerprintSet::default();
        if !self.ids_in_store {
            // Sized for every stored event at once: growing a set of
            // millions of ids step by step rehashes it a dozen times.
            let stored = usize::try_from(self.store.last_seq()?).unwrap_or(0);
            seen.reserve(stored);
            self.store.scan_event_ids(&mut |id| {
                seen.insert(fingerprint(id));
            })?;
        }
        self.engine = engine;
        self.seen = seen;
        self.unconfirmed.clear();
        self.sent.clear();
        self.next_seq = last_seq.max(self.store.last_seq()?) + 1;
        self.events_since_snapshot = replayed;
        Ok(())
    }
}

/// What `store` holds under `event_id`, compared with an event of this
/// identity: re-encoded the way a fresh submission is, so a resend of the
/// same event has the same identity.
pub(crate) fn stored(
    store: &dyn EventStore,
    parser: &EventParser,
    event_id: &str,
    identity: u64,
) -> Result<Stored, RuntimeError> {
    let Some(record) = store.get_event(event_id)? else {
        return Ok(Stored::Absent);
    };
    let event = decode_event(parser, &record)?;
    let encoded = PreparedEvent::new(event, parser).map_err(|e| RuntimeError::CorruptRecord {
        seq: record.seq,
        event_id: record.event_id.clone(),
        problem: e.to_string(),
    })?;
    if encoded.identity != identity {
        return Ok(Stored::Different);
    }
    let decision = decode_decision(&record)?;
    Ok(Stored::Same(Box::new(Outcome {
        event_id: record.event_id,
        seq: record.seq,
        decision,
        duplicate: true,
    })))
}

pub(crate) fn decode_event(
    parser: &EventParser,
    record: &StoredRecord,
) -> Result<Event, RuntimeError> {
    let corrupt = |problem: String| RuntimeError::CorruptRecord {
        seq: record.seq,
        event_id: record.event_id.clone(),
        problem,
    };
    let value: serde_json::Value =
        serde_json::from_str(&record.event_json).map_err(|e| corrupt(e.to_string()))?;
    parser
        .parse_stored(value)
        .map_err(|e| corrupt(e.to_string()))
}

pub(crate) fn decode_decision(record: &StoredRecord) -> Result<Decision, RuntimeError> {
    serde_json::from_str(&record.decision_json).map_err(|e| RuntimeError::CorruptRecord {
        seq: record.seq,
        event_id: record.event_id.clone(),
        problem: format!("decision: {e}"),
    })
}
