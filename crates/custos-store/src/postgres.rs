//! The PostgreSQL backend, for operators who keep their data in the
//! database their team already runs (selected by `[store] url`, see
//! `docs/store.md`).
//!
//! The [`EventStore`] trait is synchronous and the driver
//! (`tokio-postgres`) is not: the store owns a one-thread tokio runtime that
//! drives its connections, and every call waits for its query on the
//! calling thread ([`wait`]), which therefore needs no runtime of its own
//! and may be any thread, as with SQLite.
//!
//! Three connections, each behind its own mutex: the writer (appends and
//! the outbox), the readers' and the snapshots' (chunks are large; on their
//! own connection they never hold an append back). A connection that has
//! dropped is opened again on its next use. Reads are retried once on a
//! new connection. A write is retried once only when it certainly did not
//! take effect: a transaction whose connection failed before its COMMIT was
//! sent (the server then rolled it back), or a single-statement append the
//! server answered with an error. When the answer to a commit is lost,
//! whether it took effect is unknown, so the error goes to the caller, and
//! the engine rebuilds from the log, which holds the answer.
//!
//! ## Group commit
//!
//! The runtime's writer thread merges queued groups into one
//! [`EventStore::append`]; here that is one multi-row
//! `INSERT ... SELECT FROM UNNEST(...)` (prepared once per connection) of
//! up to [`INSERT_ROWS`] rows, its own transaction, or one transaction of
//! several such statements for a larger group: either way one commit (one
//! WAL flush on the server) covers the whole merged group.
//!
//! ## Schema migrations
//!
//! `custos_migrations` records every applied version of [`MIGRATIONS`].
//! At open, under a transaction-scoped advisory lock (two nodes starting at
//! once migrate one after the other), the missing versions are applied in
//! order, each in the same transaction as its row. A database migrated by
//! a newer build is refused.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Read;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::sqlite::{WEBHOOK_CURSOR_KEY, read_full};
use crate::{
    EventStore, NewRecord, NewWebhook, OutboxEntry, SNAPSHOT_CHUNK_BYTES, SnapshotInfo, StoreError,
    StoreResult, StoredRecord, WebhookEndpointStats, WebhookFailure, WebhookState,
};

/// Schema versions in order: `(version, what it adds, SQL)`. Append only;
/// never edit an applied one.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "events, chunked snapshots, rule sets, metadata, webhook outbox",
    "
CREATE TABLE events (
    seq            BIGINT PRIMARY KEY,
    event_id       TEXT   NOT NULL UNIQUE,
    account_id     TEXT   NOT NULL,
    event_type     TEXT   NOT NULL,
    event_time     BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    event          TEXT   NOT NULL,
    decision       TEXT   NOT NULL
);
CREATE INDEX events_by_account ON events (account_id, seq);
CREATE TABLE snapshot_chunks (
    seq   BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    bytes BYTEA  NOT NULL,
    PRIMARY KEY (seq, idx)
);
CREATE TABLE snapshots (
    seq    BIGINT PRIMARY KEY,
    chunks BIGINT NOT NULL,
    bytes  BIGINT NOT NULL
);
CREATE TABLE rule_sets (
    version      BIGINT PRIMARY KEY,
    installed_at BIGINT NOT NULL,
    source       TEXT   NOT NULL
);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE webhook_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint        TEXT   NOT NULL,
    webhook_id      TEXT   NOT NULL,
    webhook_type    TEXT   NOT NULL,
    payload         TEXT   NOT NULL,
    created_ms      BIGINT NOT NULL,
    state           TEXT   NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    last_attempt_ms BIGINT,
    last_error      TEXT,
    finished_ms     BIGINT,
    UNIQUE (endpoint, webhook_id)
);
CREATE INDEX webhook_outbox_due
    ON webhook_outbox (endpoint, next_attempt_ms) WHERE state = 'pending';
CREATE INDEX webhook_outbox_finished ON webhook_outbox (state, finished_ms);
",
)];

/// The newest schema version this build knows.
pub const PG_SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Key of the advisory lock held while migrating ("custos" in ASCII).
const MIGRATION_LOCK: i64 = 0x637573746f73;

/// Rows per `INSERT ... UNNEST` statement of an append: bounds one
/// message's size while a merged group (up to 262,144 events) still
/// commits once.
const INSERT_ROWS: usize = 4096;

/// Rows fetched per page by [`EventStore::scan`] and
/// [`EventStore::scan_event_ids`]: a scan of the whole log never holds it
/// all in memory nor one transaction open.
const SCAN_PAGE: i64 = 10_000;

/// Snapshots kept, as with SQLite.
const SNAPSHOTS_KEPT: i64 = 2;

/// How long opening a connection may take before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `fut` to completion on the calling thread, parking it between
/// polls. The connections' I/O is driven by the store's runtime, so the
/// driver's futures only need waking, not a runtime of the caller's.
fn wait<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Wraps a driver error with what the store was doing.
fn backend(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves at worst a connection with an
    // open transaction, which the next use rolls back or replaces.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A row limit as PostgreSQL takes it.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Whether the error means the connection is gone: closed, or the server
/// ended the session (class 08, connection exception; 57P01 to 57P03,
/// terminated by an administrator, a shutdown or a restart).
fn connection_lost(client: &Client, e: &StoreError) -> bool {
    if client.is_closed() {
        return true;
    }
    let StoreError::Backend { source, .. } = e else {
        return false;
    };
    let Some(e) = source.downcast_ref::<tokio_postgres::Error>() else {
        return false;
    };
    e.is_closed()
        || e.code().is_some_and(|code| {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P0")
        })
}

/// A failed connect, shown with its cause ("connection refused", "password
/// authentication failed"), which the driver's own message leaves out.
#[derive(Debug)]
struct ConnectError(tokio_postgres::Error);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        if let Some(cause) = std::error::Error::source(&self.0) {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A store in a PostgreSQL database, in the default schema of the
/// connection (its `search_path`) or in one named schema.
pub struct PgStore {
    config: tokio_postgres::Config,
    runtime: Option<tokio::runtime::Runtime>,
    writer: Mutex<Option<Link>>,
    reader: Mutex<Option<Link>>,
    snapshotter: Mutex<Option<Link>>,
}

/// One connection and the statements prepared on it (a statement given as
/// text is parsed on every call: one more round trip).
struct Link {
    client: Client,
    prepared: std::collections::HashMap<&'static str, Statement>,
}

impl Link {
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = wait(self.client.prepare(sql))?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }
}

impl std::ops::Deref for Link {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Link {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for slot in [&self.writer, &self.reader, &self.snapshotter] {
            lock(slot).take();
        }
        // Not `drop`: that blocks, and panics on a thread inside a runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`,
    /// or libpq's `key=value` form) and applies missing migrations.
    pub fn connect(url: &str) -> StoreResult<PgStore> {
        PgStore::connect_in_schema(url, None)
    }

    /// [`PgStore::connect`] with every table in `schema` (created if
    /// missing) instead of the connection's default schema.
    pub fn connect_in_schema(url: &str, schema: Option<&str>) -> StoreResult<PgStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::backend("parse the postgresql url", e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("custos");
        }
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if let Some(schema) = schema {
            if schema.is_empty()
                || !schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StoreError::backend(
                    "open",
                    format!("schema {schema:?}: use lowercase letters, digits and _"),
                ));
            }
            let options = match config.get_options() {
                Some(o) => format!("{o} -c search_path={schema}"),
                None => format!("-c search_path={schema}"),
            };
            config.options(options);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("custos-pg")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StoreError::backend("start the postgresql runtime", e))?;
        let store = PgStore {
            config,
            runtime: Some(runtime),
            writer: Mutex::new(None),
            reader: Mutex::new(None),
            snapshotter: Mutex::new(None),
        };
        {
            let mut slot = lock(&store.writer);
            let client = store.ready(&mut slot)?;
            if let Some(schema) = schema {
                wait(client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
                    .map_err(backend("open"))?;
            }
            migrate(client)?;
            let sync: String = wait(client.query_one("SHOW synchronous_commit", &[]))
                .and_then(|r| r.try_get(0))
                .map_err(backend("open"))?;
            if sync == "off" || sync == "local" {
                tracing::warn!(
                    synchronous_commit = %sync,
                    "postgresql may lose acknowledged events on a crash (or, with local, on failover); see docs/store.md"
                );
            }
        }
        Ok(store)
    }

    /// A live connection in `slot`, opened again if it dropped.
    fn ready<'a>(&self, slot: &'a mut Option<Link>) -> StoreResult<&'a mut Link> {
        if slot.as_ref().is_none_or(|link| link.client.is_closed()) {
            *slot = None;
            let config = self.config.clone();
            let runtime = self
                .runtime
                .as_ref()
                .ok_or_else(|| StoreError::backend("connect", "the store is closing"))?;
            let connecting = runtime.spawn(async move {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "postgresql connection lost; reconnecting on next use");
                    }
                });
                Ok::<_, tokio_postgres::Error>(client)
            });
            let client = wait(connecting)
                .map_err(|e| StoreError::backend("connect to postgresql", e))?
                .map_err(|e| StoreError::backend("connect to postgresql", ConnectError(e)))?;
            *slot = Some(Link {
                client,
                prepared: Default::default(),
            });
        }
        slot.as_mut()
            .ok_or_else(|| StoreError::backend("connect to postgresql", "no connection"))
    }

    /// Runs `f` on a live connection of `slot`; runs it once more on a new
    /// connection when the first failed because the connection dropped
    /// and `retry` says a second run is safe.
    fn with<T>(
        &self,
        slot: &Mutex<Option<Link>>,
        retry: impl Fn(&StoreError) -> bool,
        mut f: impl FnMut(&mut Link) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut slot = lock(slot);
        let client = self.ready(&mut slot)?;
        match f(client) {
            Err(e) if connection_lost(client, &e) && retry(&e) => {
                tracing::warn!(error = %e, "postgresql connection lost; retrying on a new one");
                *slot = None;
                f(self.ready(&mut slot)?)
            }
            other => other,
        }
    }

    /// A read: retried on a new connection whenever it dropped.
    fn read<T>(&self, f: impl FnMut(&mut Link) -> StoreResult<T>) -> StoreResult<T> {
        self.with(&self.reader, |_| true, f)
    }

    /// A single-statement write: not retried (whether it took effect is
    /// unknown), but the next call reconnects.
    fn write<T>(&self, f: impl FnMut(&mut Link) -> StoreResult<T>) -> StoreResult<T> {
        self.with(&self.writer, |_| false, f)
    }

    /// A transaction on the writer connection, retried when it failed
    /// before its COMMIT was sent.
    fn transaction<T>(
        &self,
        context: &'static str,
        mut body: impl FnMut(&tokio_postgres::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.with(
            &self.writer,
            |e| {
                !matches!(
                    e,
                    StoreError::Backend {
                        context: "commit",
                        ..
                    }
                )
            },
            |client| {
                let tx = wait(client.transaction()).map_err(backend(context))?;
                let out = body(&tx)?;
                wait(tx.commit()).map_err(backend("commit"))?;
                Ok(out)
            },
        )
    }

    /// Drops chunks that belong to no complete snapshot.
    fn prune_snapshot_chunks(&self) -> StoreResult<u64> {
        self.with(
            &self.snapshotter,
            |_| true,
            |c| {
                wait(c.execute(
                    "DELETE FROM snapshot_chunks WHERE seq NOT IN (SELECT seq FROM snapshots)",
                    &[],
                ))
                .map_err(backend("prune snapshot chunks"))
            },
        )
    }

    fn write_chunks(&self, seq: u64, state: &mut dyn Read) -> StoreResult<SnapshotInfo> {
        let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        let mut info = SnapshotInfo {
            seq,
            bytes: 0,
            chunks: 0,
        };
        loop {
            let filled = read_full(state, &mut buf)
                .map_err(|e| StoreError::backend("read the snapshot to save", e))?;
            if filled == 0 {
                return Ok(info);
            }
            let chunk = &buf[..filled];
            let idx = info.chunks as i64;
            self.with(
                &self.snapshotter,
                |_| true,
                |c| {
                    wait(c.execute(
                        "INSERT INTO snapshot_chunks (seq, idx, bytes) VALUES ($1, $2, $3)
                         ON CONFLICT (seq, idx) DO UPDATE SET bytes = excluded.bytes",
                        &[&(seq as i64), &idx, &chunk],
                    ))
                    .map_err(backend("save a snapshot chunk"))
                },
            )?;
            info.chunks += 1;
            info.bytes += filled as u64;
            if filled < buf.len() {
                return Ok(info);
            }
        }
    }

    /// The first record of `records` that repeats a stored or an earlier
    /// record's event id or seq: what SQLite, inserting one by one, would
    /// have stopped on.
    fn find_duplicate(&self, records: &[NewRecord<'_>]) -> StoreResult<Option<StoreError>> {
        let ids: Vec<&str> = records.iter().map(|r| r.event_id).collect();
        let seqs: Vec<i64> = records.iter().map(|r| r.seq as i64).collect();
        let stored = self.read(|c| {
            wait(c.query(
                "SELECT seq, event_id FROM events WHERE event_id = ANY($1) OR seq = ANY($2)",
                &[&ids, &seqs],
            ))
            .map_err(backend("append"))
        })?;
        let mut seen_ids = std::collections::HashSet::new();
        let mut seen_seqs = std::collections::HashSet::new();
        for row in &stored {
            seen_seqs.insert(row.try_get::<_, i64>(0).map_err(backend("append"))?);
            seen_ids.insert(row.try_get::<_, String>(1).map_err(backend("append"))?);
        }
        for r in records {
            if !seen_ids.insert(r.event_id.to_string()) || !seen_seqs.insert(r.seq as i64) {
                return Ok(Some(StoreError::Duplicate {
                    event_id: r.event_id.to_string(),
                    seq: r.seq,
                }));
            }
        }
        Ok(None)
    }

    #[cfg(test)]
    fn backend_pids(&self) -> Vec<i32> {
        [&self.writer, &self.reader]
            .into_iter()
            .map(|slot| {
                let mut slot = lock(slot);
                let client = self.ready(&mut slot).unwrap();
                wait(client.query_one("SELECT pg_backend_pid()", &[]))
                    .unwrap()
                    .get(0)
            })
            .collect()
    }
}

/// Applies the migrations this database lacks, in order.
fn migrate(client: &mut Client) -> StoreResult<()> {
    let tx = wait(client.transaction()).map_err(backend("migrate"))?;
    wait(tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
         CREATE TABLE IF NOT EXISTS custos_migrations (
             version     INTEGER PRIMARY KEY,
             description TEXT        NOT NULL,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         );"
    )))
    .map_err(backend("migrate"))?;
    let applied: i32 = wait(tx.query_one(
        "SELECT COALESCE(MAX(version), 0) FROM custos_migrations",
        &[],
    ))
    .and_then(|r| r.try_get(0))
    .map_err(backend("migrate"))?;
    if applied > PG_SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: i64::from(applied),
            known: i64::from(PG_SCHEMA_VERSION),
        });
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        wait(tx.batch_execute(sql)).map_err(backend("migrate"))?;
        wait(tx.execute(
            "INSERT INTO custos_migrations (version, description) VALUES ($1, $2)",
            &[version, description],
        ))
        .map_err(backend("migrate"))?;
        tracing::info!(version, description, "postgresql schema migrated");
    }
    wait(tx.commit()).map_err(backend("migrate"))
}

macro_rules! record_columns {
    () => {
        "seq, event_id, account_id, event_type, event_time, received_at_ms, event, decision"
    };
}

const APPEND_SQL: &str = concat!(
    "INSERT INTO events (",
    record_columns!(),
    ") SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[],
         $4::TEXT[], $5::BIGINT[], $6::BIGINT[], $7::TEXT[], $8::TEXT[])"
);

/// Records as the arrays [`APPEND_SQL`] takes, one per column.
struct AppendColumns<'a> {
    seqs: Vec<i64>,
    ids: Vec<&'a str>,
    accounts: Vec<&'a str>,
    types: Vec<&'a str>,
    times: Vec<i64>,
    received: Vec<i64>,
    events: Vec<&'a str>,
    decisions: Vec<&'a str>,
}

impl<'a> AppendColumns<'a> {
    fn of(records: &[NewRecord<'a>]) -> AppendColumns<'a> {
        AppendColumns {
            seqs: records.iter().map(|r| r.seq as i64).collect(),
            ids: records.iter().map(|r| r.event_id).collect(),
            accounts: records.iter().map(|r| r.account_id).collect(),
            types: records.iter().map(|r| r.event_type).collect(),
            times: records.iter().map(|r| r.event_time).collect(),
            received: records.iter().map(|r| r.received_at_ms).collect(),
            events: records.iter().map(|r| r.event_json).collect(),
            decisions: records.iter().map(|r| r.decision_json).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.seqs,
            &self.ids,
            &self.accounts,
            &self.types,
            &self.times,
            &self.received,
            &self.events,
            &self.decisions,
        ]
    }
}

/// Whether the server answered with an error (so the statement failed
/// whole), rather than the answer being lost with the connection.
fn answered_by_server(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend { source, .. }
        if source.downcast_ref::<tokio_postgres::Error>().is_some_and(|e| e.code().is_some()))
}

macro_rules! outbox_columns {
    () => {
        "id, endpoint, webhook_id, webhook_type, payload, created_ms, state, attempts,
         next_attempt_ms, last_attempt_ms, last_error, finished_ms"
    };
}

fn read_record(row: &Row) -> Result<StoredRecord, tokio_postgres::Error> {
    Ok(StoredRecord {
        seq: row.try_get::<_, i64>(0)? as u64,
        event_id: row.try_get(1)?,
        account_id: row.try_get(2)?,
        event_type: row.try_get(3)?,
        event_time: row.try_get(4)?,
        received_at_ms: row.try_get(5)?,
        event_json: row.try_get(6)?,
        decision_json: row.try_get(7)?,
    })
}

/// Visits records page by page in `seq` order, from after `after`:
/// `page(after)` reads the next `SCAN_PAGE` records after `after`; a short
/// page is the last.
fn scan_pages(
    mut after: i64,
    visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    mut page: impl FnMut(i64) -> StoreResult<Vec<StoredRecord>>,
) -> StoreResult<()> {
    loop {
        let records = page(after)?;
        let full = records.len() as i64 == SCAN_PAGE;
        for record in records {
            after = record.seq as i64;
            visit(record)?;
        }
        if !full {
            return Ok(());
        }
    }
}

fn read_records(rows: &[Row], context: &'static str) -> StoreResult<Vec<StoredRecord>> {
    rows.iter()
        .map(|r| read_record(r).map_err(backend(context)))
        .collect()
}

fn read_outbox_entry(row: &Row, context: &'static str) -> StoreResult<OutboxEntry> {
    let get = backend(context);
    let state: String = row.try_get(6).map_err(&get)?;
    Ok(OutboxEntry {
        id: row.try_get::<_, i64>(0).map_err(&get)? as u64,
        endpoint: row.try_get(1).map_err(&get)?,
        webhook_id: row.try_get(2).map_err(&get)?,
        webhook_type: row.try_get(3).map_err(&get)?,
        payload: row.try_get(4).map_err(&get)?,
        created_ms: row.try_get(5).map_err(&get)?,
        state: WebhookState::parse(&state).ok_or_else(|| {
            StoreError::backend(
                context,
                format!("webhook_outbox.state: unknown state {state:?}"),
            )
        })?,
        attempts: row
            .try_get::<_, i64>(7)
            .map_err(&get)?
            .clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_ms: row.try_get(8).map_err(&get)?,
        last_attempt_ms: row.try_get(9).map_err(&get)?,
        last_error: row.try_get(10).map_err(&get)?,
        finished_ms: row.try_get(11).map_err(&get)?,
    })
}

fn read_outbox(rows: &[Row], context: &'static str) -> StoreResult<Vec<OutboxEntry>> {
    rows.iter().map(|r| read_outbox_entry(r, context)).collect()
}

fn parse_cursor(value: Option<String>) -> StoreResult<Option<u64>> {
    value
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                StoreError::backend(
                    "read the webhook cursor",
                    format!("meta.{WEBHOOK_CURSOR_KEY}: {v:?} is not a seq"),
                )
            })
        })
        .transpose()
}

/// Reads a snapshot one chunk at a time, through the snapshot connection.
struct ChunkReader<'a> {
    store: &'a PgStore,
    seq: i64,
    chunks: i64,
    next: i64,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.next == self.chunks {
                return Ok(0);
            }
            let (seq, idx) = (self.seq, self.next);
            let chunk: Option<Vec<u8>> = self
                .store
                .with(
                    &self.store.snapshotter,
                    |_| true,
                    |c| {
                        wait(c.query_opt(
                            "SELECT bytes FROM snapshot_chunks WHERE seq = $1 AND idx = $2",
                            &[&seq, &idx],
                        ))
                        .and_then(|row| row.map(|r| r.try_get(0)).transpose())
                        .map_err(backend("read a snapshot chunk"))
                    },
                )
                .map_err(std::io::Error::other)?;
            self.chunk = chunk.ok_or_else(|| {
                std::io::Error::other(format!(
                    "snapshot {}: chunk {} of {} is missing",
                    self.seq, self.next, self.chunks
                ))
            })?;
            self.pos = 0;
            self.next += 1;
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl EventStore for PgStore {
    fn append(&self, records: &[NewRecord<'_>]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let columns: Vec<AppendColumns<'_>> =
            records.chunks(INSERT_ROWS).map(AppendColumns::of).collect();
        let result = if let [only] = columns.as_slice() {
            // One statement is a transaction of its own: one round trip.
            // Retried only when the server answered it with an error (it
            // failed whole), not when the answer was lost.
            self.with(&self.writer, answered_by_server, |c| {
                let insert = c.prepared(APPEND_SQL).map_err(backend("append"))?;
                wait(c.execute(&insert, &only.params()))
                    .map(|_| ())
                    .map_err(backend("append"))
            })
        } else {
            self.with(
                &self.writer,
                |e| {
                    !matches!(
                        e,
                        StoreError::Backend {
                            context: "commit",
                            ..
                        }
                    )
                },
                |c| {
                    let insert = c.prepared(APPEND_SQL).map_err(backend("append"))?;
                    let tx = wait(c.transaction()).map_err(backend("append"))?;
                    for part in &columns {
                        wait(tx.execute(&insert, &part.params())).map_err(backend("append"))?;
                    }
                    wait(tx.commit()).map_err(backend("commit"))
                },
            )
        };
        match result {
            Err(StoreError::Backend { context, source })
                if source
                    .downcast_ref::<tokio_postgres::Error>()
                    .and_then(tokio_postgres::Error::code)
                    == Some(&SqlState::UNIQUE_VIOLATION) =>
            {
                // The transaction was rolled back; name the record at fault.
                match self.find_duplicate(records)? {
                    Some(duplicate) => Err(duplicate),
                    None => Err(StoreError::Backend { context, source }),
                }
            }
            other => other,
        }
    }

    fn get_event(&self, event_id: &str) -> StoreResult<Option<StoredRecord>> {
        self.read(|c| {
            let row = wait(c.query_opt(
                concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM events WHERE event_id = $1"
                ),
                &[&event_id],
            ))
            .map_err(backend("get an event"))?;
            row.map(|r| read_record(&r).map_err(backend("get an event")))
                .transpose()
        })
    }

    fn account_events(&self, account_id: &str, limit: usize) -> StoreResult<Vec<StoredRecord>> {
        self.read(|c| {
            let rows = wait(c.query(
                concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM events WHERE account_id = $1 ORDER BY seq DESC LIMIT $2"
                ),
                &[&account_id, &sql_limit(limit)],
            ))
            .map_err(backend("read account events"))?;
            read_records(&rows, "read account events")
        })
    }

    fn scan(
        &self,
        after_seq: u64,
        visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()> {
        scan_pages(after_seq as i64, visit, |after| {
            self.read(|c| {
                let rows = wait(c.query(
                    concat!(
                        "SELECT ",
                        record_columns!(),
                        " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
                    ),
                    &[&after, &SCAN_PAGE],
                ))
                .map_err(backend("scan the log"))?;
                read_records(&rows, "scan the log")
            })
        })
    }

    fn scan_accounts(
        &self,
        accounts: &BTreeSet<String>,
        visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
        scan_pages(0, visit, |after| {
            self.read(|c| {
                let rows = wait(c.query(
                    concat!(
                        "SELECT ",
                        record_columns!(),
                        " FROM events WHERE account_id = ANY($1) AND seq > $2 ORDER BY seq LIMIT $3"
                    ),
                    &[&accounts, &after, &SCAN_PAGE],
                ))
                .map_err(backend("scan accounts"))?;
                read_records(&rows, "scan accounts")
            })
        })
    }

    fn scan_event_ids(&self, visit: &mut dyn FnMut(&str)) -> StoreResult<()> {
        let mut after = String::new();
        loop {
            let page: Vec<String> = self.read(|c| {
                let rows = wait(c.query(
                    "SELECT event_id FROM events WHERE event_id > $1 ORDER BY event_id LIMIT $2",
                    &[&after, &SCAN_PAGE],
                ))
                .map_err(backend("scan event ids"))?;
                rows.iter()
                    .map(|r| r.try_get(0).map_err(backend("scan event ids")))
                    .collect()
            })?;
            let full = page.len() as i64 == SCAN_PAGE;
            for id in &page {
                visit(id);
            }
            match page.into_iter().last() {
                Some(last) if full => after = last,
                _ => return Ok(()),
            }
        }
    }

    fn last_seq(&self) -> StoreResult<u64> {
        self.read(|c| {
            wait(c.query_one("SELECT COALESCE(MAX(seq), 0) FROM events", &[]))
                .and_then(|r| r.try_get::<_, i64>(0))
                .map(|s| s as u64)
                .map_err(backend("read the last seq"))
        })
    }

    fn event_count(&self) -> StoreResult<u64> {
        self.read(|c| {
            wait(c.query_one("SELECT COUNT(*) FROM events", &[]))
                .and_then(|r| r.try_get::<_, i64>(0))
                .map(|s| s as u64)
                .map_err(backend("count events"))
        })
    }

    fn save_snapshot(&self, seq: u64, state: &mut dyn Read) -> StoreResult<SnapshotInfo> {
        let key = seq as i64;
        // A snapshot already stored at this seq is replaced whole, and so
        // are chunks a failed save of this seq left behind.
        self.with(
            &self.snapshotter,
            |_| true,
            |c| {
                let tx = wait(c.transaction()).map_err(backend("save a snapshot"))?;
                wait(tx.execute("DELETE FROM snapshots WHERE seq = $1", &[&key]))
                    .map_err(backend("save a snapshot"))?;
                wait(tx.execute("DELETE FROM snapshot_chunks WHERE seq = $1", &[&key]))
                    .map_err(backend("save a snapshot"))?;
                wait(tx.commit()).map_err(backend("save a snapshot"))
            },
        )?;
        let written = crate::compress::compress_snapshot(state)
            .map_err(|e| StoreError::backend("compress the snapshot", e))
            .and_then(|mut compressed| self.write_chunks(seq, &mut compressed));
        let info = match written {
            Ok(info) => info,
            Err(e) => {
                // Best effort: the next save drops whatever is left.
                if let Err(cleanup) = self.prune_snapshot_chunks() {
                    tracing::warn!(error = %cleanup, seq, "cannot drop the chunks of a failed snapshot");
                }
                return Err(e);
            }
        };
        self.with(
            &self.snapshotter,
            |_| true,
            |c| {
                let tx = wait(c.transaction()).map_err(backend("save a snapshot"))?;
                wait(tx.execute(
                    "INSERT INTO snapshots (seq, chunks, bytes) VALUES ($1, $2, $3)",
                    &[&key, &(info.chunks as i64), &(info.bytes as i64)],
                ))
                .map_err(backend("save a snapshot"))?;
                wait(tx.execute(
                    "DELETE FROM snapshots WHERE seq NOT IN
                       (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT $1)",
                    &[&SNAPSHOTS_KEPT],
                ))
                .map_err(backend("save a snapshot"))?;
                wait(tx.commit()).map_err(backend("save a snapshot"))
            },
        )?;
        if let Err(e) = self.prune_snapshot_chunks() {
            tracing::warn!(error = %e, seq, "cannot drop the chunks of older snapshots");
        }
        Ok(info)
    }

    fn latest_snapshot(&self) -> StoreResult<Option<(u64, Box<dyn Read + '_>)>> {
        let newest: Option<(i64, i64)> = self.read(|c| {
            wait(c.query_opt(
                "SELECT seq, chunks FROM snapshots ORDER BY seq DESC LIMIT 1",
                &[],
            ))
            .and_then(|row| row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose())
            .map_err(backend("read the latest snapshot"))
        })?;
        let Some((seq, chunks)) = newest else {
            return Ok(None);
        };
        let stored: Box<dyn Read + '_> = Box::new(ChunkReader {
            store: self,
            seq,
            chunks,
            next: 0,
            chunk: Vec::new(),
            pos: 0,
        });
        let state = crate::compress::read_snapshot(stored)
            .map_err(|e| StoreError::backend("read the latest snapshot", e))?;
        Ok(Some((seq as u64, state)))
    }

    fn snapshots(&self) -> StoreResult<Vec<SnapshotInfo>> {
        self.read(|c| {
            let rows = wait(c.query(
                "SELECT seq, chunks, bytes FROM snapshots ORDER BY seq DESC",
                &[],
            ))
            .map_err(backend("list snapshots"))?;
            rows.iter()
                .map(|r| {
                    Ok(SnapshotInfo {
                        seq: r.try_get::<_, i64>(0)? as u64,
                        chunks: r.try_get::<_, i64>(1)? as u64,
                        bytes: r.try_get::<_, i64>(2)? as u64,
                    })
                })
                .collect::<Result<_, tokio_postgres::Error>>()
                .map_err(backend("list snapshots"))
        })
    }

    fn get_meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.read(|c| {
            wait(c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key]))
                .and_then(|row| row.map(|r| r.try_get(0)).transpose())
                .map_err(backend("read meta"))
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        self.write(|c| {
            wait(c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            ))
            .map(|_| ())
            .map_err(backend("write meta"))
        })
    }

    fn save_rule_set(
        &self,
        version: u64,
        installed_at_ms: i64,
        source_json: &str,
    ) -> StoreResult<()> {
        let inserted = self.write(|c| {
            wait(c.execute(
                "INSERT INTO rule_sets (version, installed_at, source) VALUES ($1, $2, $3)
                 ON CONFLICT (version) DO NOTHING",
                &[&(version as i64), &installed_at_ms, &source_json],
            ))
            .map_err(backend("save a rule set"))
        })?;
        if inserted == 0 {
            return Err(StoreError::Duplicate {
                event_id: format!("rule set version {version}"),
                seq: version,
            });
        }
        Ok(())
    }

    fn latest_rule_set(&self) -> StoreResult<Option<(u64, String)>> {
        self.read(|c| {
            wait(c.query_opt(
                "SELECT version, source FROM rule_sets ORDER BY version DESC LIMIT 1",
                &[],
            ))
            .and_then(|row| {
                row.map(|r| Ok((r.try_get::<_, i64>(0)? as u64, r.try_get(1)?)))
                    .transpose()
            })
            .map_err(backend("read the latest rule set"))
        })
    }

    fn rule_set(&self, version: u64) -> StoreResult<Option<(i64, String)>> {
        self.read(|c| {
            wait(c.query_opt(
                "SELECT installed_at, source FROM rule_sets WHERE version = $1",
                &[&(version as i64)],
            ))
            .and_then(|row| row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose())
            .map_err(backend("read a rule set"))
        })
    }

    fn read_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<StoredRecord>> {
        self.read(|c| {
            let rows = wait(c.query(
                concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&(after_seq as i64), &sql_limit(limit)],
            ))
            .map_err(backend("read the log"))?;
            read_records(&rows, "read the log")
        })
    }

    fn webhook_cursor(&self) -> StoreResult<Option<u64>> {
        let value = self.get_meta(WEBHOOK_CURSOR_KEY)?;
        parse_cursor(value)
    }

    fn enqueue_webhooks(&self, rows: &[NewWebhook<'_>], cursor: u64) -> StoreResult<u64> {
        let endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint).collect();
        let ids: Vec<&str> = rows.iter().map(|r| r.webhook_id).collect();
        let types: Vec<&str> = rows.iter().map(|r| r.webhook_type).collect();
        let payloads: Vec<&str> = rows.iter().map(|r| r.payload).collect();
        let created: Vec<i64> = rows.iter().map(|r| r.created_ms).collect();
        let cursor_text = cursor.to_string();
        self.transaction("enqueue webhooks", |tx| {
            // Ordered by position so that ids follow enqueue order.
            let inserted = wait(tx.execute(
                "INSERT INTO webhook_outbox
                   (endpoint, webhook_id, webhook_type, payload, created_ms, next_attempt_ms)
                 SELECT e, w, t, p, c, c
                   FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[])
                        WITH ORDINALITY AS r (e, w, t, p, c, n)
                  ORDER BY n
                 ON CONFLICT (endpoint, webhook_id) DO NOTHING",
                &[&endpoints, &ids, &types, &payloads, &created],
            ))
            .map_err(backend("enqueue webhooks"))?;
            let current: Option<String> = wait(tx.query_opt(
                "SELECT value FROM meta WHERE key = $1 FOR UPDATE",
                &[&WEBHOOK_CURSOR_KEY],
            ))
            .and_then(|row| row.map(|r| r.try_get(0)).transpose())
            .map_err(backend("enqueue webhooks"))?;
            if parse_cursor(current)?.is_none_or(|c| c < cursor) {
                wait(tx.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&WEBHOOK_CURSOR_KEY, &cursor_text],
                ))
                .map_err(backend("enqueue webhooks"))?;
            }
            Ok(inserted)
        })
    }

    fn due_webhooks(
        &self,
        endpoint: &str,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxEntry>> {
        self.read(|c| {
            let rows = wait(c.query(
                concat!(
                    "SELECT ",
                    outbox_columns!(),
                    " FROM webhook_outbox
                      WHERE endpoint = $1 AND state = 'pending' AND next_attempt_ms <= $2
                      ORDER BY next_attempt_ms, id LIMIT $3"
                ),
                &[&endpoint, &now_ms, &sql_limit(limit)],
            ))
            .map_err(backend("read due webhooks"))?;
            read_outbox(&rows, "read due webhooks")
        })
    }

    fn webhook_delivered(&self, id: u64, at_ms: i64) -> StoreResult<()> {
        self.write(|c| {
            wait(c.execute(
                "UPDATE webhook_outbox
                    SET state = 'delivered', attempts = attempts + 1, last_attempt_ms = $2,
                        finished_ms = $2, last_error = NULL
                  WHERE id = $1 AND state = 'pending'",
                &[&(id as i64), &at_ms],
            ))
            .map(|_| ())
            .map_err(backend("mark a webhook delivered"))
        })
    }

    fn webhook_failed(&self, id: u64, failure: &WebhookFailure<'_>) -> StoreResult<()> {
        let (state, finished) = if failure.dead {
            (WebhookState::Dead, Some(failure.at_ms))
        } else {
            (WebhookState::Pending, None)
        };
        self.write(|c| {
            wait(c.execute(
                "UPDATE webhook_outbox
                    SET state = $2, attempts = $3, last_attempt_ms = $4, next_attempt_ms = $5,
                        last_error = $6, finished_ms = $7
                  WHERE id = $1 AND state = 'pending'",
                &[
                    &(id as i64),
                    &state.as_str(),
                    &i64::from(failure.attempts),
                    &failure.at_ms,
                    &failure.next_attempt_ms,
                    &failure.error,
                    &finished,
                ],
            ))
            .map(|_| ())
            .map_err(backend("record a webhook failure"))
        })
    }

    fn retry_webhook(
        &self,
        webhook_id: &str,
        endpoint: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        self.write(|c| {
            let rows = wait(c.query(
                "UPDATE webhook_outbox
                    SET state = 'pending', attempts = 0, next_attempt_ms = $3, finished_ms = NULL
                  WHERE webhook_id = $1 AND state = 'dead'
                    AND ($2::text IS NULL OR endpoint = $2)
              RETURNING endpoint",
                &[&webhook_id, &endpoint, &now_ms],
            ))
            .map_err(backend("retry a webhook"))?;
            let mut endpoints: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            endpoints.sort();
            Ok(endpoints)
        })
    }

    fn webhook_stats(&self) -> StoreResult<Vec<WebhookEndpointStats>> {
        self.read(|c| {
            // The latest failure per endpoint: the row with the greatest
            // last_attempt_ms among those with an error.
            let rows = wait(c.query(
                "SELECT s.endpoint, s.pending, s.dead, s.last_error_ms,
                        (SELECT o.last_error FROM webhook_outbox o
                          WHERE o.endpoint = s.endpoint AND o.state IN ('pending', 'dead')
                            AND o.last_attempt_ms = s.last_error_ms
                            AND o.last_error IS NOT NULL
                          LIMIT 1)
                   FROM (SELECT endpoint,
                                COUNT(*) FILTER (WHERE state = 'pending') AS pending,
                                COUNT(*) FILTER (WHERE state = 'dead') AS dead,
                                MAX(last_attempt_ms) FILTER (WHERE last_error IS NOT NULL)
                                    AS last_error_ms
                           FROM webhook_outbox
                          WHERE state IN ('pending', 'dead')
                          GROUP BY endpoint) s
                  ORDER BY s.endpoint",
                &[],
            ))
            .map_err(backend("read webhook stats"))?;
            rows.iter()
                .map(|r| {
                    Ok(WebhookEndpointStats {
                        endpoint: r.try_get(0)?,
                        pending: r.try_get::<_, i64>(1)? as u64,
                        dead: r.try_get::<_, i64>(2)? as u64,
                        last_error_ms: r.try_get(3)?,
                        last_error: r.try_get(4)?,
                    })
                })
                .collect::<Result<_, tokio_postgres::Error>>()
                .map_err(backend("read webhook stats"))
        })
    }

    fn list_webhooks(
        &self,
        endpoint: Option<&str>,
        state: WebhookState,
        limit: usize,
    ) -> StoreResult<Vec<OutboxEntry>> {
        self.read(|c| {
            let rows = wait(c.query(
                concat!(
                    "SELECT ",
                    outbox_columns!(),
                    " FROM webhook_outbox
                      WHERE state = $1 AND ($2::TEXT IS NULL OR endpoint = $2)
                      ORDER BY id DESC LIMIT $3"
                ),
                &[&state.as_str(), &endpoint, &sql_limit(limit)],
            ))
            .map_err(backend("list webhooks"))?;
            read_outbox(&rows, "list webhooks")
        })
    }

    fn prune_webhooks(&self, before_ms: i64, limit: usize) -> StoreResult<u64> {
        self.write(|c| {
            wait(c.execute(
                "DELETE FROM webhook_outbox WHERE id IN (
                    SELECT id FROM webhook_outbox
                     WHERE state = 'delivered' AND finished_ms < $1 LIMIT $2)",
                &[&before_ms, &sql_limit(limit)],
            ))
            .map_err(backend("prune webhooks"))
        })
    }
}

impl PgStore {
    /// A connection for housekeeping only (no schema, no migrations).
    pub(crate) fn connect_admin(url: &str) -> StoreResult<PgStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::backend("parse the postgresql url", e))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StoreError::backend("start the postgresql runtime", e))?;
        Ok(PgStore {
            config,
            runtime: Some(runtime),
            writer: Mutex::new(None),
            reader: Mutex::new(None),
            snapshotter: Mutex::new(None),
        })
    }

    /// Runs `sql` (statements without parameters) on the writer connection.
    pub(crate) fn batch_execute(&self, sql: &str) -> StoreResult<()> {
        self.write(|c| wait(c.batch_execute(sql)).map_err(backend("execute")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store_test_suite!(postgres, {
        match crate::testsuite::pg_test_store() {
            Some(pair) => pair,
            None => return,
        }
    });

    fn record(seq: u64, event_id: &str) -> NewRecord<'_> {
        NewRecord {
            seq,
            event_id,
            account_id: "acct",
            event_type: "login",
            event_time: 1_526_000_000,
            received_at_ms: 1_700_000_000_000,
            event_json: "{}",
            decision_json: "{}",
        }
    }

    fn terminate(url: &str, pids: &[i32]) {
        let admin = PgStore::connect_admin(url).unwrap();
        let mut slot = lock(&admin.writer);
        let client = admin.ready(&mut slot).unwrap();
        for pid in pids {
            let killed: bool = wait(client.query_one("SELECT pg_terminate_backend($1)", &[pid]))
                .unwrap()
                .get(0);
            assert!(killed, "backend {pid} was terminated");
        }
    }

    #[test]
    fn the_store_reconnects_after_its_connections_are_killed() {
        let Some((schema, store)) = crate::testsuite::pg_test_store() else {
            return;
        };
        store.append(&[record(1, "a")]).unwrap();
        assert_eq!(store.event_count().unwrap(), 1);
        let before = store.backend_pids();
        terminate(&schema.url, &before);
        // Reads come back on a new connection.
        assert_eq!(store.get_event("a").unwrap().unwrap().seq, 1);
        // So do appends: a connection found dead before COMMIT is replaced.
        store.append(&[record(2, "b")]).unwrap();
        assert_eq!(store.last_seq().unwrap(), 2);
        let after = store.backend_pids();
        assert!(
            before.iter().all(|pid| !after.contains(pid)),
            "{before:?} vs {after:?}"
        );
        // Idempotency holds across the reconnect.
        assert!(matches!(
            store.append(&[record(3, "a")]),
            Err(StoreError::Duplicate { seq: 3, .. })
        ));
    }

    #[test]
    fn a_large_group_commits_as_one_transaction() {
        let Some((_schema, store)) = crate::testsuite::pg_test_store() else {
            return;
        };
        let ids: Vec<String> = (1..=10_000).map(|i| format!("e{i}")).collect();
        let mut group: Vec<NewRecord<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| record(i as u64 + 1, id))
            .collect();
        store.append(&group).unwrap();
        assert_eq!(store.event_count().unwrap(), 10_000);
        // A duplicate in the third statement of a group rolls back all three.
        let more: Vec<String> = (10_001..=19_000).map(|i| format!("e{i}")).collect();
        group = more
            .iter()
            .enumerate()
            .map(|(i, id)| record(i as u64 + 10_001, id))
            .collect();
        group[8_999].event_id = "e5";
        match store.append(&group) {
            Err(StoreError::Duplicate { event_id, seq }) => {
                assert_eq!((event_id.as_str(), seq), ("e5", 19_000));
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
        assert_eq!(store.event_count().unwrap(), 10_000);
        let mut ids_seen = 0;
        store.scan_event_ids(&mut |_| ids_seen += 1).unwrap();
        assert_eq!(ids_seen, 10_000, "paged scan sees every id once");
        let mut seqs = Vec::new();
        store
            .scan(9_990, &mut |r| {
                seqs.push(r.seq);
                Ok(())
            })
            .unwrap();
        assert_eq!(seqs, (9_991..=10_000).collect::<Vec<u64>>());
    }

    #[test]
    fn migrations_are_recorded_and_a_newer_schema_is_refused() {
        let Some((schema, store)) = crate::testsuite::pg_test_store() else {
            return;
        };
        let versions: Vec<i32> = {
            let mut slot = lock(&store.writer);
            let client = store.ready(&mut slot).unwrap();
            wait(client.query(
                "SELECT version FROM custos_migrations ORDER BY version",
                &[],
            ))
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
        };
        assert_eq!(versions, (1..=PG_SCHEMA_VERSION).collect::<Vec<_>>());
        store.append(&[record(1, "kept")]).unwrap();
        drop(store);
        // Opening again applies nothing and keeps the data.
        let again = PgStore::connect_in_schema(&schema.url, Some(&schema.schema)).unwrap();
        assert_eq!(again.event_count().unwrap(), 1);
        {
            let mut slot = lock(&again.writer);
            let client = again.ready(&mut slot).unwrap();
            wait(client.execute(
                "INSERT INTO custos_migrations (version, description) VALUES (999, 'future')",
                &[],
            ))
            .unwrap();
        }
        match PgStore::connect_in_schema(&schema.url, Some(&schema.schema)) {
            Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn an_unreachable_server_is_a_backend_error() {
        // Port 1 on loopback: nothing listens there.
        let err = PgStore::connect("postgres://postgres@127.0.0.1:1/test").unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    context: "connect to postgresql",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
