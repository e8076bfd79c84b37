//! # custos-store
//!
//! The durable side of Custos: an append-only log of accepted events, each
//! with the decision made for it, plus snapshots of engine state and a little
//! metadata. Everything the engine knows can be rebuilt from this log.
//!
//! Backends implement [`EventStore`] and must pass the shared suite in
//! [`testsuite`] (run it with [`store_test_suite!`]). The embedded backend is
//! [`SqliteStore`]; a PostgreSQL backend will sit behind the same trait.
//!
//! ## Contract
//!
//! - [`EventStore::append`] writes a whole group of records in one
//!   transaction and returns only once it is durable (fsynced). Either all
//!   records of the group are stored or none.
//! - `seq` numbers are assigned by the caller, strictly increasing; event ids
//!   are unique. A duplicate of either fails the whole group.
//! - Readers see only committed records.
//! - The store never sees a raw bank account number: events arrive
//!   normalized, with keyed-hash tokens.

mod sqlite;
pub mod testsuite;

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

/// Errors from a store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store i/o failed: {0}")]
    Backend(String),
    #[error("event id {event_id:?} or seq {seq} is already stored")]
    Duplicate { event_id: String, seq: u64 },
    #[error("store was written by a newer schema version {found}; this build knows {known}")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("callback stopped the scan: {0}")]
    Visitor(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

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

    /// Visits every stored event id (in no particular order).
    fn scan_event_ids(&self, visit: &mut dyn FnMut(&str)) -> StoreResult<()>;

    /// The highest stored `seq`, or 0 for an empty log.
    fn last_seq(&self) -> StoreResult<u64>;

    /// Number of stored events.
    fn event_count(&self) -> StoreResult<u64>;

    /// Stores a snapshot of engine state taken after record `seq`; older
    /// snapshots may be dropped.
    fn save_snapshot(&self, seq: u64, state: &[u8]) -> StoreResult<()>;

    /// The newest snapshot and the `seq` it was taken after.
    fn latest_snapshot(&self) -> StoreResult<Option<(u64, Vec<u8>)>>;

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
}
