//! # custos-store
//!
//! The durable side of Custos: an append-only log of accepted events, each
//! with the decision made for it, plus snapshots of engine state and a little
//! metadata. Everything the engine knows can be rebuilt from this log.
//!
//! Backends implement [`EventStore`] and must pass the shared suite in
//! [`testsuite`] (run it with [`store_test_suite!`]). The embedded backend is
//! [`SqliteStore`]; [`PgStore`] keeps the same log in PostgreSQL.
//!
//! ## Contract
//!
//! - [`EventStore::append`] writes a whole group of records in one
//!   transaction and returns only once it is durable (fsynced). Either all
//!   records of the group are stored or none.
//! - `seq` numbers are assigned by the caller, strictly increasing; event ids
//!   are unique. A duplicate of either fails the whole group.
//! - Readers see only committed records.
//! - A snapshot of engine state is stored in chunks of at most
//!   [`SNAPSHOT_CHUNK_BYTES`] and counts only once complete
//!   ([`EventStore::save_snapshot`]); it is read back as a stream
//!   ([`EventStore::latest_snapshot`]), so neither side needs the whole
//!   serialized state in one buffer.
//! - The store never sees a raw bank account number: events arrive
//!   normalized, with keyed-hash tokens.
//!
//! ## The webhook outbox
//!
//! Webhooks are derived from the log, not written beside it on the hot
//! path: a dispatcher reads records after a stored cursor
//! ([`EventStore::read_after`]) and puts one row per (endpoint, webhook) in
//! the outbox together with the new cursor, in one transaction
//! ([`EventStore::enqueue_webhooks`]). Whatever was committed to the log is
//! therefore delivered eventually, even if the process dies between the
//! commit and the enqueue: the cursor has not moved, so the records are
//! read again. Rows are unique per `(endpoint, webhook_id)`, so enqueueing
//! the same rows twice is harmless.
//!
//! A row is `pending` until an attempt succeeds (`delivered`) or the sender
//! gives up (`dead`). Delivered rows are kept for a while for inspection and
//! then pruned ([`EventStore::prune_webhooks`]); dead rows are kept.
//!
//! The outbox methods have default bodies that answer
//! [`StoreError::Unsupported`], so that wrappers and test doubles that never
//! send webhooks need not implement them; every real backend must, and the
//! shared suite checks it.

pub mod backup;
pub mod compress;
mod event_log;
mod postgres;
pub mod rewrite;
mod sqlite;
pub mod testsuite;

use std::collections::BTreeSet;
use std::io::Read;

pub use postgres::{PG_SCHEMA_VERSION, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore};

/// One event and its decision, as handed to [`EventStore::append`].
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub seq: u64,
    pub event_id: &'a str,
    pub account_id: &'a str,
    pub event_type: &'a str,
    /// Event time, seconds since the Unix epoch.
    pub event_time: i64,
    /// When Custos accepted it, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The normalized event, as JSON.
    pub event_json: &'a str,
    /// The decision, as JSON.
    pub decision_json: &'a str,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub seq: u64,
    pub event_id: String,
    pub account_id: String,
    pub event_type: String,
    pub event_time: i64,
    pub received_at_ms: i64,
    pub event_json: String,
    pub decision_json: String,
}

/// The most bytes of a snapshot a backend stores in one piece. Far below
/// SQLite's 1 GB limit on a value, and small enough that a chunk's commit
/// holds appends back for a few milliseconds: with 16 MiB chunks a group
/// commit waited about 90 ms behind one, and the soak's p99 in a snapshot
/// minute was 42-135 ms instead of 9-39 ms (BENCHMARKS.md, "Soak").
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// A complete snapshot as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The last record the snapshot reflects.
    pub seq: u64,
    /// Bytes stored, compressed ([`compress`]).
    pub bytes: u64,
    /// How many pieces it is stored in.
    pub chunks: u64,
}

/// The underlying error of a [`StoreError::Backend`]: whatever the backend's
/// driver reports (a `rusqlite::Error` for SQLite), kept for `source()`.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from a store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed at `context` (what the store was doing, e.g.
    /// `append`); `source` is the driver's own error.
    #[error("store i/o failed: {context}: {source}")]
    Backend {
        context: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("event id {event_id:?} or seq {seq} is already stored")]
    Duplicate { event_id: String, seq: u64 },
    #[error("store was written by a newer schema version {found}; this build knows {known}")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("callback stopped the scan: {0}")]
    Visitor(String),
    #[error("this store backend does not support {0}")]
    Unsupported(&'static str),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// A [`StoreError::Backend`] for a failure while doing `context`.
    pub fn backend(context: &'static str, source: impl Into<BackendError>) -> StoreError {
        StoreError::Backend {
            context,
            source: source.into(),
        }
    }
}

/// A webhook delivery to put in the outbox, as handed to
/// [`EventStore::enqueue_webhooks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewWebhook<'a> {
    /// The endpoint's stable name (from the configuration).
    pub endpoint: &'a str,
    /// The webhook's id, the same for every endpoint and every attempt.
    pub webhook_id: &'a str,
    /// The webhook's type, e.g. `decision.created`.
    pub webhook_type: &'a str,
    /// The exact body to send.
    pub payload: &'a str,
    /// When it was enqueued (Unix ms); it is due from then.
    pub created_ms: i64,
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookState {
    /// Not delivered yet; due at `next_attempt_ms`.
    Pending,
    /// An attempt succeeded.
    Delivered,
    /// The sender gave up.
    Dead,
}

impl WebhookState {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookState::Pending => "pending",
            WebhookState::Delivered => "delivered",
            WebhookState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<WebhookState> {
        match text {
            "pending" => Some(WebhookState::Pending),
            "delivered" => Some(WebhookState::Delivered),
            "dead" => Some(WebhookState::Dead),
            _ => None,
        }
    }
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The row's own id, for [`EventStore::webhook_delivered`] and
    /// [`EventStore::webhook_failed`].
    pub id: u64,
    pub endpoint: String,
    pub webhook_id: String,
    pub webhook_type: String,
    pub payload: String,
    pub created_ms: i64,
    pub state: WebhookState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When a pending row is due (Unix ms).
    pub next_attempt_ms: i64,
    pub last_attempt_ms: Option<i64>,
    /// Why the last attempt failed; cleared on delivery.
    pub last_error: Option<String>,
    /// When the row was delivered or given up (Unix ms).
    pub finished_ms: Option<i64>,
}

/// A failed attempt, as recorded by [`EventStore::webhook_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookFailure<'a> {
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// When this attempt was made (Unix ms).
    pub at_ms: i64,
    /// When to try again (Unix ms); ignored when `dead`.
    pub next_attempt_ms: i64,
    /// What went wrong, for people. Must not hold secrets.
    pub error: &'a str,
    /// Give up: the row will not be tried again.
    pub dead: bool,
}

/// The outbox of one endpoint at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpointStats {
    pub endpoint: String,
    pub pending: u64,
    pub dead: u64,
    /// The most recent failure among rows not delivered, and when.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// The durable event log behind Custos. Implementations are shared between
/// the engine thread (the only writer) and HTTP handlers (readers).
pub trait EventStore: Send + Sync {
    /// Appends a group of records durably, all or nothing.
    fn append(&self, records: &[NewRecord<'_>]) -> StoreResult<()>;

    /// The record with this event id, if stored.
    fn get_event(&self, event_id: &str) -> StoreResult<Option<StoredRecord>>;

    /// The most recent records of an account, newest first.
    fn account_events(&self, account_id: &str, limit: usize) -> StoreResult<Vec<StoredRecord>>;

    /// Visits every record with `seq > after_seq`, in `seq` order.
    fn scan(
        &self,
        after_seq: u64,
        visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()>;

    /// Visits every record of `accounts`, in `seq` order: what an evidence
    /// pack reads. This default scans the whole log and skips the others;
    /// the backends read through their account index instead, so a pack of
    /// a thousand accounts does not read (nor parse) a log of millions.
    fn scan_accounts(
        &self,
        accounts: &BTreeSet<String>,
        visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.scan(0, &mut |record| {
            if accounts.contains(&record.account_id) {
                visit(record)
            } else {
                Ok(())
            }
        })
    }

    /// Visits every stored event id (in no particular order).
    fn scan_event_ids(&self, visit: &mut dyn FnMut(&str)) -> StoreResult<()>;

    /// Whether `event_id` may be stored, answered from memory: `Some(false)`
    /// when it certainly is not, `Some(true)` when it may be (confirm with
    /// [`EventStore::get_event`]). `None` (the default) when the backend
    /// keeps no index in memory: the caller then keeps its own set of ids
    /// ([`EventStore::scan_event_ids`]) rather than ask the store for every
    /// new event.
    fn may_hold_event_id(&self, event_id: &str) -> Option<bool> {
        let _ = event_id;
        None
    }

    /// The highest stored `seq`, or 0 for an empty log.
    fn last_seq(&self) -> StoreResult<u64>;

    /// Number of stored events.
    fn event_count(&self) -> StoreResult<u64>;

    /// Stores a snapshot of engine state taken after record `seq`, read from
    /// `state` to its end, as chunks of at most [`SNAPSHOT_CHUNK_BYTES`]:
    /// its size is not bounded by what one row can hold. The snapshot counts
    /// only once its last chunk is stored; a failure part way (of `state` or
    /// of the store) leaves the previous snapshots as they were, and the
    /// chunks written are dropped then or by the next save. Snapshots older
    /// than the newest few are dropped. One save at a time: callers do not
    /// save two snapshots concurrently.
    ///
    /// Chunks may be committed separately, so that appends are not held
    /// back for the whole of a large snapshot.
    fn save_snapshot(&self, seq: u64, state: &mut dyn Read) -> StoreResult<SnapshotInfo>;

    /// The newest complete snapshot, the `seq` it was taken after and a
    /// reader over its bytes, which fetches one chunk at a time.
    #[allow(clippy::type_complexity)]
    fn latest_snapshot(&self) -> StoreResult<Option<(u64, Box<dyn Read + '_>)>>;

    /// Every complete snapshot kept, newest first.
    fn snapshots(&self) -> StoreResult<Vec<SnapshotInfo>>;

    fn get_meta(&self, key: &str) -> StoreResult<Option<String>>;

    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()>;

    /// Stores a rule-set version: its source as JSON and when it was
    /// installed (Unix ms). Every version is kept, for audit; a version that
    /// is already stored is refused with [`StoreError::Duplicate`].
    fn save_rule_set(
        &self,
        version: u64,
        installed_at_ms: i64,
        source_json: &str,
    ) -> StoreResult<()>;

    /// The newest stored rule-set version and its source.
    fn latest_rule_set(&self) -> StoreResult<Option<(u64, String)>>;

    /// One stored rule-set version: when it was installed (Unix ms) and its
    /// source. For audits: which rules decided an event months ago.
    fn rule_set(&self, version: u64) -> StoreResult<Option<(i64, String)>>;

    /// Up to `limit` records with `seq > after_seq`, in `seq` order.
    fn read_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<StoredRecord>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // Stop the scan once the page is full; the sentinel error is ours.
        let result = self.scan(after_seq, &mut |record| {
            out.push(record);
            if out.len() >= limit {
                return Err(StoreError::Visitor(READ_AFTER_FULL.into()));
            }
            Ok(())
        });
        match result {
            Err(StoreError::Visitor(m)) if m == READ_AFTER_FULL => Ok(out),
            other => other.map(|()| out),
        }
    }

    /// The `seq` up to which the log has been turned into outbox rows, or
    /// `None` if webhooks were never set up on this store.
    fn webhook_cursor(&self) -> StoreResult<Option<u64>> {
        Err(StoreError::Unsupported("the webhook outbox"))
    }

    /// In one transaction: inserts `rows` (skipping any whose
    /// `(endpoint, webhook_id)` is already in the outbox, whatever its state)
    /// and moves the cursor to `cursor` (never backwards). Returns how many
    /// rows were new.
    fn enqueue_webhooks(&self, rows: &[NewWebhook<'_>], cursor: u64) -> StoreResult<u64> {
        let _ = (rows, cursor);
        Err(StoreError::Unsupported("the webhook outbox"))
    }

    /// Up to `limit` pending rows of `endpoint` due at `now_ms`, the most
    /// overdue first (then in enqueue order).
    fn due_webhooks(
        &self,
        endpoint: &str,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxEntry>> {
        let _ = (endpoint, now_ms, limit);
        Err(StoreError::Unsupported("the webhook outbox"))
    }

    /// Marks a pending row delivered (a row no longer pending is left as
    /// it is).
    fn webhook_delivered(&self, id: u64, at_ms: i64) -> StoreResult<()> {
        let _ = (id, at_ms);
        Err(StoreError::Unsupported("the webhook outbox"))
    }

    /// Records a failed attempt on a pending row: reschedules it, or marks
    /// it dead (a row no longer pending is left as it is).
    fn webhook_failed(&self, id: u64, failure: &WebhookFailure<'_>) -> StoreResult<()> {
        let _ = (id, failure);
        Err(StoreError::Unsupported("the webhook outbox"))
    }

    /// Pending and dead counts and the latest error, per endpoint that has
    /// pending or dead rows, by endpoint name.
    fn webhook_stats(&self) -> StoreResult<Vec<WebhookEndpointStats>> {
        Err(StoreError::Unsupported("the webhook outbox"))
    }

    /// Up to `limit` rows in `state` (of one endpoint, or all), newest first.
    fn list_webhooks(
        &self,
        endpoint: Option<&str>,
        state: WebhookState,
        limit: usize,
    ) -> StoreResult<Vec<OutboxEntry>> {
        let _ = (endpoint, state, limit);
        Err(StoreError::Unsupported("the webhook outbox"))
    }

    /// Deletes delivered rows delivered before `before_ms`, at most `limit`
    /// of them (so that a large prune does not hold the writer for long).
    /// Returns how many were deleted.
    /// Puts the dead rows of `webhook_id` (of `endpoint` only, when given)
    /// back to pending, due at `now_ms` with their attempts counted afresh;
    /// the last error stays until the next attempt. Returns the endpoints
    /// whose row was revived, empty when none was dead.
    fn retry_webhook(
        &self,
        webhook_id: &str,
        endpoint: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let _ = (webhook_id, endpoint, now_ms);
        Err(StoreError::Unsupported("the webhook outbox"))
    }
    fn prune_webhooks(&self, before_ms: i64, limit: usize) -> StoreResult<u64> {
        let _ = (before_ms, limit);
        Err(StoreError::Unsupported("the webhook outbox"))
    }
}

/// Marks the scan that [`EventStore::read_after`] stops on purpose.
const READ_AFTER_FULL: &str = "read_after: page full";
