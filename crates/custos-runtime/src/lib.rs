//! # custos-runtime
//!
//! Runs the engine against a durable store. One thread, the *engine thread*,
//! owns all account state and is the only writer to the store. Callers (HTTP
//! handlers, `custos replay`) send it submissions over a bounded channel and
//! wait for the answer.
//!
//! ## Group commit, pipelined
//!
//! The engine thread takes everything waiting in its queue (up to
//! `max_group_events` events), decides each event in arrival order, and hands
//! the group to the *writer thread*, which writes it in one transaction and
//! one fsync. Only after that commit does any caller get its answers: an
//! acknowledged event is durable. While the writer commits one group the
//! engine decides the next, and while either works new requests queue up,
//! so throughput grows with load instead of being capped by fsync latency.
//!
//! ## Idempotency
//!
//! Event ids are client-chosen idempotency keys. A 64-bit fingerprint of
//! every stored id is kept in memory; a hit is confirmed against the store.
//! The same id with the same normalized body returns the stored decision and
//! changes nothing; with a different body the whole submission is refused
//! with [`SubmitError::Conflict`] before any of it is applied.
//!
//! ## Rules
//!
//! The live [`RuleSet`] sits in an `ArcSwap`. [`Runtime::install_rules`]
//! validates a new source, stores it as the next version, then swaps it in;
//! the engine thread picks the new set up at the start of its next group, so
//! no event waits for an install and every event is decided by exactly one
//! version, which its decision records. At start the newest stored version
//! is used; a configured source is installed over it only when it differs.
//!
//! A new version that would take away what the live one protects (every
//! active rule, the holds on payouts and loan disbursements, a list the
//! rules read: `custos_core::rules::removal`) is refused, at an install and
//! at start alike, unless a [`RemovalOverride`] confirms each item lost and
//! says who and why. The override is stored with the version it installed
//! (`removal_override` beside the source, see [`RemovalAudit`]), so the
//! rule-set history shows who switched what off.
//!
//! ## Recovery
//!
//! On start the engine loads the newest snapshot and replays the log after
//! it, applying each stored decision (not deciding again), so state is
//! exactly what it was. For a snapshot the engine thread copies its state;
//! a snapshot thread serializes the copy and stores it in chunks while
//! ingest goes on; a failed one is retried after exponentially more events,
//! not on every group (see `snapshots`). A failed commit leaves memory ahead of the log: every
//! group decided on top of it is refused too, and the engine rebuilds itself
//! from the store before taking more work.
//!
//! ## Event time
//!
//! The engine never reads the wall clock; entry points bound an event's
//! `time` against theirs before submitting it ([`TimeBound`], from
//! `[engine] max_future_skew` and `max_event_age`).
//!
//! ## Opening
//!
//! [`open`] turns a checked `custos_config::Config` into a running
//! [`Runtime`]: data directory, token key, enrichment, rules, SQLite store,
//! recovery. Every entry point opens its runtime this way; [`Runtime::start`]
//! is the lower-level call for tests and other stores.

mod engine_thread;
mod messages;
mod open;
pub mod secrets;
mod snapshots;
mod time_bound;
mod writer;

/// Serializes an engine's state into a store as the snapshot after `seq`,
/// serializing and storing at once (for `custos bench snapshot`).
pub use snapshots::write as write_snapshot;

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use arc_swap::ArcSwap;
use custos_core::features::FeatureConfig;
use custos_core::rules::{Removal, RemovalOverride, RemovalRefused, RuleSetError, default_source};
use custos_core::{AccountState, Decision, Event, EventParser, RuleSet, RuleSetSource};
use custos_store::{EventStore, StoreError};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use open::{OpenError, open, open_with_log};
pub use time_bound::{TimeBound, TimeBoundError};

/// Meta key under which the destination-token key id is kept (public for
/// `custos tokens rotate`, which records the new key's id there).
pub const TOKEN_KEY_META: &str = "destination_token_key_id";
/// Meta key under which the id of the key that seals personal values is
/// kept (public for `custos tokens rotate --new-pii-key-file`).
pub const PII_KEY_META: &str = "pii_key_id";

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Rules to install at start if they differ from the newest stored
    /// version (`custos serve --rules DIR`). `None`: the newest stored
    /// version, or the built-in default when none is stored.
    pub rules: Option<RuleSetSource>,
    /// Confirms what `rules` removes from the newest stored version, if it
    /// removes protection (for this start only; see the module docs).
    pub rules_override: Option<RemovalOverride>,
    pub features: FeatureConfig,
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
            rules: None,
            rules_override: None,
            features: FeatureConfig::default(),
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
    /// Fingerprint of the event without its enrichment: what decides
    /// whether a reused event id carries the same event. Enrichment is left
    /// out because it may change with the databases while the client's
    /// retry stays the same.
    pub identity: u64,
    /// Where a clustered owner took the event from; `None` outside a cluster.
    pub origin: Option<Origin>,
}

/// An event's place in a cluster's input stream: its partition and the
/// stream sequence it was read at. A [`CommitLog`] publishes it with the
/// decision, so that the next owner of the partition knows where to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub partition: u32,
    pub input_seq: u64,
}

/// A decided event as a [`CommitLog`] publishes it.
#[derive(Debug, Clone, Copy)]
pub struct LoggedRecord<'a> {
    pub origin: Origin,
    pub event_id: &'a str,
    pub account_id: &'a str,
    pub event_json: &'a str,
    pub decision_json: &'a str,
}

/// A log outside the store that a decided group must reach before the store
/// commits it (a cluster's replicated stream of decisions). Called on the
/// writer thread with the group's events that carry an [`Origin`]; an error
/// fails the commit like a store error: nobody is answered and the engine
/// rebuilds from the store.
pub trait CommitLog: Send + Sync {
    fn publish(&self, records: &[LoggedRecord<'_>]) -> Result<(), String>;
}

/// Sends submissions somewhere else to be decided (a cluster's owner of each
/// event's partition) instead of this runtime's engine thread.
pub trait Forward: Send + Sync {
    fn submit(
        &self,
        events: Vec<PreparedEvent>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<Outcome>, SubmitError>> + Send + 'static>,
    >;
}

/// An event and the decision another node made for it, to apply here as
/// it was decided (see [`Runtime::replicate`]).
#[derive(Debug, Clone)]
pub struct Replicated {
    pub prepared: PreparedEvent,
    pub decision: Decision,
    /// The decision as the deciding node stored it, stored here verbatim.
    pub decision_json: String,
}

/// A fixed-seed 64-bit hash: fingerprints of stored ids are rebuilt at every
/// start, and a collision costs only one extra store lookup.
pub(crate) fn fingerprint(text: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5EED_C057_05E7_1D00).hash_one(text)
}

impl PreparedEvent {
    /// Encodes `event` for the store, with its personal values sealed by
    /// `parser`'s cipher (`custos_core::pii`): the engine keeps the clear
    /// event, the store gets the sealed copy, and the identity is taken over
    /// the sealed copy, which a resend reproduces byte for byte.
    pub fn new(mut event: Event, parser: &EventParser) -> Result<PreparedEvent, SubmitError> {
        let encode =
            |e: serde_json::Error| SubmitError::Storage(format!("cannot encode event: {e}"));
        // Encode once without the enrichment (the identity), then splice the
        // enrichment in as the last field, where serde would have put it.
        let enrichment = std::mem::take(&mut event.enrichment);
        let mut json = match parser.sealed_for_storage(&event) {
            Some(sealed) => serde_json::to_string(&sealed),
            None => serde_json::to_string(&event),
        }
        .map_err(encode)?;
        let identity = fingerprint(&json);
        if !enrichment.is_empty() {
            json.pop(); // the closing brace
            json.push_str(",\"enrichment\":");
            json.push_str(&serde_json::to_string(&enrichment).map_err(encode)?);
            json.push('}');
        }
        event.enrichment = enrichment;
        Ok(PreparedEvent {
            event,
            json,
            identity,
            origin: None,
        })
    }
}

/// What the store holds under an event id ([`Runtime::stored`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Absent,
    /// The same event: its stored outcome, marked `duplicate` (boxed: a
    /// decision is large beside the other answers).
    Same(Box<Outcome>),
    /// Another event under the same id.
    Different,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    #[error(
        "the pii key (id {configured}) is not the one this store was written with (id {stored}); \
         sealed holder names and personal fields would no longer open: restore the old key"
    )]
    PiiKeyChanged { stored: String, configured: String },
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
    #[error("the rules are invalid:\n{0}")]
    Rules(#[from] RuleSetError),
    #[error("the stored rule set version {version} cannot be read: {problem}")]
    CorruptRules { version: u64, problem: String },
    #[error(
        "the configured rules were not installed over version {live}: {refused} (start with \
         `--confirm-removal ITEM` for each item, `--override-reason` and `--override-analyst`)"
    )]
    RulesRemoval {
        live: u64,
        refused: Box<RemovalRefused>,
    },
}

/// Why a rule set was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the rules are invalid")]
    Invalid(#[from] RuleSetError),
    #[error("the rule set could not be stored: {0}")]
    Storage(String),
    #[error("the edit was based on version {base}, but version {live} is live now")]
    Stale { base: u64, live: u64 },
    /// It would remove what the live version protects, unconfirmed.
    #[error(transparent)]
    Removes(#[from] RemovalRefused),
    /// Cluster nodes take their rules from their rules directory at start,
    /// the same on every node (`docs/cluster.md`).
    #[error(
        "this node is part of a cluster: rules are installed from the rules directory of every node at start, not through this api"
    )]
    Clustered,
}

/// Key of the audit record stored beside a rule-set version's source.
pub const REMOVAL_OVERRIDE_KEY: &str = "removal_override";

/// Who installed a version that removed protection, why, and what it removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RemovalAudit {
    pub analyst: String,
    pub reason: String,
    /// What the version removed, as confirmed.
    pub removed: Removal,
    /// The version it replaced.
    pub replaced_version: u64,
    /// `api` (an install or a list edit) or `rules_dir` (at start).
    pub via: String,
}

impl RemovalAudit {
    fn of(removal: Removal, confirmation: &RemovalOverride, replaced: u64, via: &str) -> Self {
        RemovalAudit {
            analyst: confirmation.analyst.trim().to_string(),
            reason: confirmation.reason.trim().to_string(),
            removed: removal,
            replaced_version: replaced,
            via: via.to_string(),
        }
    }
}

/// A stored rule-set version: its source, and the removal it was
/// installed over, if any. Stored as the source's JSON object with
/// [`REMOVAL_OVERRIDE_KEY`] beside its fields (older versions have none).
pub fn decode_stored_rules(
    json: &str,
) -> Result<(RuleSetSource, Option<RemovalAudit>), serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_str(json)?;
    let audit = match value
        .as_object_mut()
        .and_then(|o| o.remove(REMOVAL_OVERRIDE_KEY))
    {
        Some(audit) => Some(serde_json::from_value(audit)?),
        None => None,
    };
    Ok((serde_json::from_value(value)?, audit))
}

/// Counts the engine thread reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub accounts: u64,
    pub last_seq: u64,
    pub events_since_snapshot: u64,
    /// The newest group commit failed, and none has succeeded since: the
    /// store may not be writable (a full disk). Readiness reads it.
    pub last_commit_failed: bool,
    /// The newest snapshot attempt failed, and none has succeeded since.
    /// Ingest goes on (restarts replay more of the log); the next attempt
    /// backs off.
    pub last_snapshot_failed: bool,
    /// Holds still open (payouts and disbursements kept back).
    pub holds_open: u64,
    /// Of those, past their cool-off and waiting for a person.
    pub holds_awaiting_analyst: u64,
    /// Campaigns found and not yet confirmed or dismissed.
    pub campaigns_suspected: u64,
    /// Submissions queued for the engine thread (filled in by
    /// [`Runtime::stats`], not by the engine thread).
    pub queue_depth: u64,
}

pub(crate) enum Command {
    Submit {
        events: Vec<PreparedEvent>,
        atomicity: Atomicity,
        reply: oneshot::Sender<Result<Vec<Option<Outcome>>, SubmitError>>,
    },
    Account {
        account_id: String,
        reply: oneshot::Sender<Option<AccountState>>,
    },
    Replicate {
        records: Vec<Replicated>,
        reply: oneshot::Sender<Result<Vec<Option<Outcome>>, SubmitError>>,
    },
    Stats {
        reply: oneshot::Sender<EngineStats>,
    },
    Read {
        read: ReadFn,
        reply: oneshot::Sender<serde_json::Value>,
    },
    Stop {
        snapshot: bool,
        reply: oneshot::Sender<Result<(), RuntimeError>>,
    },
}

impl Command {
    fn event_count(&self) -> usize {
        match self {
            Command::Submit { events, .. } => events.len(),
            Command::Replicate { records, .. } => records.len(),
            _ => 1,
        }
    }
}

/// A read of engine state, run on the engine thread.
pub(crate) type ReadFn = Box<dyn FnOnce(&custos_core::Engine) -> serde_json::Value + Send>;

/// Handle to the engine thread. Cheap to share behind an `Arc`.
pub struct Runtime {
    tx: mpsc::Sender<Command>,
    store: Arc<dyn EventStore>,
    parser: EventParser,
    worker: Mutex<Option<JoinHandle<()>>>,
    rules: Arc<ArcSwap<RuleSet>>,
    /// Serializes installs, so versions are assigned in order.
    installing: Mutex<()>,
    /// Where [`open`] found its data directory (for files kept beside the
    /// store, such as the evidence signing key); none for a runtime started
    /// directly on a store.
    data_dir: Option<std::path::PathBuf>,
    /// Set when this runtime is a cluster node: submissions go to the owner
    /// of each event's partition.
    forward: std::sync::OnceLock<Arc<dyn Forward>>,
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
        Runtime::start_with_log(store, parser, config, None)
    }

    /// [`Runtime::start`], with every commit of events that carry an
    /// [`Origin`] published to `log` before the store commits it.
    pub fn start_with_log(
        store: Arc<dyn EventStore>,
        parser: EventParser,
        config: RuntimeConfig,
        log: Option<Arc<dyn CommitLog>>,
    ) -> Result<Runtime, RuntimeError> {
        check_token_key(store.as_ref(), &parser)?;
        let rules = Arc::new(ArcSwap::from_pointee(initial_rules(
            store.as_ref(),
            config.rules.clone(),
            config.rules_override.as_ref(),
        )?));
        let started = Instant::now();
        let engine = engine_thread::EngineThread::recover(
            store.clone(),
            parser.clone(),
            config.clone(),
            rules.clone(),
            log,
        )?;
        tracing::info!(
            accounts = engine.account_count(),
            last_seq = engine.last_seq(),
            replayed = engine.events_since_snapshot(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "engine state recovered"
        );
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        let handle = std::thread::Builder::new()
            .name("custos-engine".into())
            .spawn(move || engine.run(rx))
            .map_err(|e| RuntimeError::Snapshot(format!("cannot start engine thread: {e}")))?;
        Ok(Runtime {
            tx,
            store,
            parser,
            worker: Mutex::new(Some(handle)),
            rules,
            installing: Mutex::new(()),
            data_dir: None,
            forward: std::sync::OnceLock::new(),
        })
    }

    /// Makes this runtime a cluster node: from now on [`Runtime::submit`]
    /// hands events to `forward`. Only the first call takes effect.
    pub fn set_forward(&self, forward: Arc<dyn Forward>) {
        let _ = self.forward.set(forward);
    }

    /// Whether submissions are forwarded to a cluster.
    pub fn is_clustered(&self) -> bool {
        self.forward.get().is_some()
    }

    /// Records the data directory this runtime was opened in.
    pub fn with_data_dir(mut self, data_dir: std::path::PathBuf) -> Runtime {
        self.data_dir = Some(data_dir);
        self
    }

    /// The data directory, when opened with [`open`].
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    /// The live rule set.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Validates a rule-set source, stores it as the next version and makes
    /// it live. Events already queued may be decided by either version;
    /// each decision records which.
    /// A version that removes protection is refused
    /// ([`InstallError::Removes`]); see [`Runtime::install_rules_over`].
    pub fn install_rules(&self, source: RuleSetSource) -> Result<Arc<RuleSet>, InstallError> {
        self.install_rules_over(source, None, None)
    }

    /// [`Runtime::install_rules`], refused with [`InstallError::Stale`]
    /// unless version `base` is still live (for edits derived from the live
    /// source, list edits, so that two concurrent edits cannot lose one),
    /// and with [`InstallError::Removes`] if it removes what the live
    /// version protects and `confirmation` does not confirm exactly that.
    /// A confirmed removal is stored with the new version.
    pub fn install_rules_over(
        &self,
        source: RuleSetSource,
        base: Option<u64>,
        confirmation: Option<&RemovalOverride>,
    ) -> Result<Arc<RuleSet>, InstallError> {
        if self.is_clustered() {
            return Err(InstallError::Clustered);
        }
        let _guard = self.installing.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.rules.load_full();
        if let Some(base) = base
            && base != live.version()
        {
            return Err(InstallError::Stale {
                base,
                live: live.version(),
            });
        }
        let version = live.version() + 1;
        let rules = Arc::new(RuleSet::compile(source, version)?);
        let removal = Removal::between(&live, &rules);
        removal.check(confirmation)?;
        let audit = confirmation
            .filter(|_| !removal.is_empty())
            .map(|c| RemovalAudit::of(removal, c, live.version(), "api"));
        store_rules(self.store.as_ref(), &rules, audit.as_ref())
            .map_err(|e| InstallError::Storage(e.to_string()))?;
        self.rules.store(rules.clone());
        match &audit {
            Some(audit) => tracing::warn!(
                version,
                name = rules.name(),
                analyst = %audit.analyst,
                reason = %audit.reason,
                removed = %audit.removed,
                "rule set installed over a confirmed removal of protection"
            ),
            None => tracing::info!(
                version,
                name = rules.name(),
                rules = rules.rules().len(),
                "rule set installed"
            ),
        }
        Ok(rules)
    }

    /// The store, for reads that need no engine state.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn parser(&self) -> &EventParser {
        &self.parser
    }

    /// Decides and durably records a batch of events, all or nothing (in a
    /// cluster, each event on its own: see [`Runtime::set_forward`]).
    pub async fn submit(&self, events: Vec<PreparedEvent>) -> Result<Vec<Outcome>, SubmitError> {
        if let Some(forward) = self.forward.get() {
            return forward.submit(events).await;
        }
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

    /// Decides events on this node's engine thread even when clustered (a
    /// partition's owner); `None` marks an event skipped for an id conflict
    /// under [`Atomicity::PerEvent`].
    pub async fn submit_here(
        &self,
        events: Vec<PreparedEvent>,
        atomicity: Atomicity,
    ) -> Result<Vec<Option<Outcome>>, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Submit {
                events,
                atomicity,
                reply,
            })
            .await
            .map_err(|_| SubmitError::ShuttingDown)?;
        answer.await.unwrap_or(Err(SubmitError::ShuttingDown))
    }

    /// Applies events decided elsewhere with their decisions, as recovery
    /// does, and stores them; an event id already stored is skipped (its
    /// outcome says `duplicate`). Answers once they are durable.
    pub async fn replicate(
        &self,
        records: Vec<Replicated>,
    ) -> Result<Vec<Option<Outcome>>, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Replicate { records, reply })
            .await
            .map_err(|_| SubmitError::ShuttingDown)?;
        answer.await.unwrap_or(Err(SubmitError::ShuttingDown))
    }

    /// What the store holds under `event_id`, compared with an event of
    /// this `identity` ([`PreparedEvent::identity`]); read off the engine
    /// thread, for a cluster node answering a resend.
    pub fn stored(&self, event_id: &str, identity: u64) -> Result<Stored, RuntimeError> {
        engine_thread::stored(self.store.as_ref(), &self.parser, event_id, identity)
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

    /// Reads engine state (holds, campaigns, ...) as JSON, as of the last
    /// commit: the answer waits until the events it reflects are durable.
    pub async fn read<T: Serialize>(
        &self,
        read: impl FnOnce(&custos_core::Engine) -> T + Send + 'static,
    ) -> Result<serde_json::Value, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        let read: ReadFn = Box::new(move |engine| {
            serde_json::to_value(read(engine)).unwrap_or(serde_json::Value::Null)
        });
        self.tx
            .send(Command::Read { read, reply })
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        answer.await.map_err(|_| RuntimeError::Stopped)
    }

    pub async fn stats(&self) -> Result<EngineStats, RuntimeError> {
        let queue_depth = self.tx.max_capacity().saturating_sub(self.tx.capacity()) as u64;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Stats { reply })
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        let mut stats = answer.await.map_err(|_| RuntimeError::Stopped)?;
        stats.queue_depth = queue_depth;
        Ok(stats)
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn store_rules(
    store: &dyn EventStore,
    rules: &RuleSet,
    audit: Option<&RemovalAudit>,
) -> Result<(), StoreError> {
    let encode = |e| StoreError::backend("encode the rule set", e);
    let mut value = serde_json::to_value(rules.source()).map_err(encode)?;
    if let (Some(audit), Some(object)) = (audit, value.as_object_mut()) {
        object.insert(
            REMOVAL_OVERRIDE_KEY.into(),
            serde_json::to_value(audit).map_err(encode)?,
        );
    }
    let json = serde_json::to_string(&value).map_err(encode)?;
    store.save_rule_set(rules.version(), now_ms(), &json)
}

/// The rule set to start with: the newest stored version, unless the
/// configuration brings a different source (then that, as the next version).
fn initial_rules(
    store: &dyn EventStore,
    configured: Option<RuleSetSource>,
    confirmation: Option<&RemovalOverride>,
) -> Result<RuleSet, RuntimeError> {
    let stored = match store.latest_rule_set()? {
        None => None,
        Some((version, json)) => {
            let (source, _) =
                decode_stored_rules(&json).map_err(|e| RuntimeError::CorruptRules {
                    version,
                    problem: e.to_string(),
                })?;
            Some((version, source))
        }
    };
    let install = |rules: RuleSet, audit: Option<RemovalAudit>| -> Result<RuleSet, RuntimeError> {
        store_rules(store, &rules, audit.as_ref())?;
        tracing::info!(
            version = rules.version(),
            name = rules.name(),
            "rule set installed at start"
        );
        Ok(rules)
    };
    match (stored, configured) {
        (Some((version, stored)), Some(configured)) if stored != configured => {
            let new = RuleSet::compile(configured, version + 1)?;
            let audit = match RuleSet::compile(stored, version) {
                Ok(live) => {
                    let removal = Removal::between(&live, &new);
                    removal
                        .check(confirmation)
                        .map_err(|refused| RuntimeError::RulesRemoval {
                            live: version,
                            refused: Box::new(refused),
                        })?;
                    confirmation
                        .filter(|_| !removal.is_empty())
                        .map(|c| RemovalAudit::of(removal, c, version, "rules_dir"))
                }
                Err(e) => {
                    // Nothing to compare with: the stored version no longer
                    // compiles with this build, and the new one replaces it.
                    tracing::warn!(version, error = %e, "the stored rule set does not compile; replacing it unchecked");
                    None
                }
            };
            if let Some(audit) = &audit {
                tracing::warn!(
                    analyst = %audit.analyst,
                    reason = %audit.reason,
                    removed = %audit.removed,
                    "the configured rules remove protection, as confirmed"
                );
            }
            install(new, audit)
        }
        (Some((version, stored)), _) => {
            // A stored version no longer valid for this build (a field was
            // renamed) is an error to fix, not to skip silently.
            Ok(RuleSet::compile(stored, version)?)
        }
        (None, configured) => install(
            RuleSet::compile(configured.unwrap_or_else(default_source), 1)?,
            None,
        ),
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
        None => store
            .set_meta(TOKEN_KEY_META, configured)
            .map_err(RuntimeError::from),
    }?;
    // A store first opened without a PII key (before sealing existed) holds
    // clear values only, and takes the key it is next opened with.
    let Some(cipher) = parser.pii() else {
        return Ok(());
    };
    match store.get_meta(PII_KEY_META)? {
        Some(stored) if stored != cipher.key_id() => Err(RuntimeError::PiiKeyChanged {
            stored,
            configured: cipher.key_id().to_string(),
        }),
        Some(_) => Ok(()),
        None => Ok(store.set_meta(PII_KEY_META, cipher.key_id())?),
    }
}

#[cfg(test)]
mod tests;
