//! The embedded backend: the event log ([`crate::event_log`]) for events
//! and their decisions, beside one SQLite database in WAL mode for
//! everything else (snapshots, rule sets, metadata, the webhook outbox).
//!
//! Durability comes from `synchronous = FULL`: in WAL mode SQLite then
//! fsyncs the log on every commit, so a returned `append` survives a power
//! cut. One writer connection and one reader connection, each behind its own
//! mutex: readers never wait for a commit's fsync, thanks to WAL. The event
//! log has its own lock and never waits for the database.
//!
//! Checkpoints (copying the WAL back into the database file) run on a
//! background thread with its own connection instead of inside a commit, so
//! that the engine thread, the only writer, never pays for them.
//!
//! ## Schema versions
//!
//! `PRAGMA user_version` holds the schema version. Every change so far only
//! adds tables and indexes, so [`SCHEMA`] is written with `IF NOT EXISTS`
//! throughout and running it on an older database is the migration:
//!
//! - 1: events, snapshots, rule sets, metadata.
//! - 2: the webhook outbox (`webhook_outbox`); its cursor lives in `meta`
//!   under [`WEBHOOK_CURSOR_KEY`].
//! - 3: chunked snapshots: `snapshot_chunks` holds the pieces,
//!   `chunked_snapshots` one row per complete snapshot, written after its
//!   last chunk. Single-blob snapshots in `snapshots` (versions 1 and 2,
//!   which failed past SQLite's 1 GB value limit) are still read, and
//!   dropped once newer chunked snapshots replace them.
//! - 4: events and decisions in the event log beside the database
//!   ([`crate::event_log`]). The `events` table stays: it is how a backup
//!   or a rewritten copy carries them, and the open moves whatever it holds
//!   into the log ([`open_log`]).
//!
//! A database written by a newer version is refused.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::event_log::EventLog;
use crate::{
    EventStore, NewRecord, NewWebhook, OutboxEntry, SNAPSHOT_CHUNK_BYTES, SnapshotInfo, StoreError,
    StoreResult, StoredRecord, WebhookEndpointStats, WebhookFailure, WebhookState, compress,
};

/// Schema version written to `PRAGMA user_version`.
pub(crate) const SCHEMA_VERSION: i64 = 4;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    account_id     TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    event_time     INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    event          TEXT    NOT NULL,
    decision       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_account ON events (account_id, seq);
CREATE TABLE IF NOT EXISTS snapshots (
    seq        INTEGER PRIMARY KEY,
    state      BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot_chunks (
    seq   INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    bytes BLOB    NOT NULL,
    PRIMARY KEY (seq, idx)
);
CREATE TABLE IF NOT EXISTS chunked_snapshots (
    seq    INTEGER PRIMARY KEY,
    chunks INTEGER NOT NULL,
    bytes  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_sets (
    version        INTEGER PRIMARY KEY,
    installed_at   INTEGER NOT NULL,
    source         TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id              INTEGER PRIMARY KEY,
    endpoint        TEXT    NOT NULL,
    webhook_id      TEXT    NOT NULL,
    webhook_type    TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_attempt_ms INTEGER,
    last_error      TEXT,
    finished_ms     INTEGER,
    UNIQUE (endpoint, webhook_id)
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due
    ON webhook_outbox (endpoint, next_attempt_ms) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS webhook_outbox_finished
    ON webhook_outbox (state, finished_ms);
";

macro_rules! outbox_columns {
    () => {
        "id, endpoint, webhook_id, webhook_type, payload, created_ms, state, attempts,
         next_attempt_ms, last_attempt_ms, last_error, finished_ms"
    };
}

macro_rules! record_columns {
    () => {
        "seq, event_id, account_id, event_type, event_time, received_at_ms, event, decision"
    };
}

/// The event log's directory beside the database at `database`
/// (`custos.db-events` for `custos.db`), named the way SQLite names the
/// database's other files.
pub(crate) fn event_log_dir(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-events");
    PathBuf::from(name)
}

/// Events moved from the `events` table into the log per append.
const MIGRATE_GROUP: usize = 10_000;

/// Opens the event log beside the database at `path`.
///
/// Events found in the `events` table (a store of schema version 3 or
/// before, a restored backup, a rewritten copy) are the truth: whatever log
/// lies beside them is from before and is replaced by them, and the table
/// is emptied only once they are all in the log. A crash half-way leaves
/// the table as it was, and the next open starts over.
fn open_log(path: &Path, conn: &Connection) -> StoreResult<EventLog> {
    let dir = event_log_dir(path);
    let in_table: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .map_err(backend("open"))?;
    if in_table == 0 {
        return EventLog::open(&dir);
    }
    let log = EventLog::open_emptied(&dir)?;
    {
        let mut stmt = conn
            .prepare(concat!(
                "SELECT ",
                record_columns!(),
                " FROM events ORDER BY seq"
            ))
            .map_err(backend("move events into the log"))?;
        let mut rows = stmt
            .query([])
            .map_err(backend("move events into the log"))?;
        let mut group: Vec<StoredRecord> = Vec::with_capacity(MIGRATE_GROUP);
        loop {
            let row = rows.next().map_err(backend("move events into the log"))?;
            if let Some(row) = row {
                group.push(read_record(row).map_err(backend("move events into the log"))?);
            }
            if group.len() == MIGRATE_GROUP || (row.is_none() && !group.is_empty()) {
                let records: Vec<NewRecord<'_>> = group
                    .iter()
                    .map(|r| NewRecord {
                        seq: r.seq,
                        event_id: &r.event_id,
                        account_id: &r.account_id,
                        event_type: &r.event_type,
                        event_time: r.event_time,
                        received_at_ms: r.received_at_ms,
                        event_json: &r.event_json,
                        decision_json: &r.decision_json,
                    })
                    .collect();
                log.append(&records)?;
                group.clear();
            }
            if row.is_none() {
                break;
            }
        }
    }
    conn.execute("DELETE FROM events", [])
        .map_err(backend("move events into the log"))?;
    tracing::info!(
        events = in_table,
        log = %dir.display(),
        "moved the stored events from the database into the event log"
    );
    Ok(log)
}

/// Copies the committed records of the event log beside `database` into
/// the `events` table of the database `into` (a backup or a copy being
/// made), compressed as they are, in one transaction. Returns how many.
pub(crate) fn copy_log_into_table(database: &Path, into: &mut Connection) -> StoreResult<u64> {
    let tx = into.transaction().map_err(backend("copy the event log"))?;
    let copied = {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (seq, event_id, account_id, event_type, event_time,
                                     received_at_ms, event, decision)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(backend("copy the event log"))?;
        crate::event_log::read_committed(&event_log_dir(database), &mut |raw| {
            let (account_id, event_type, event_time, received_at_ms) = raw.fields();
            let (event, decision) = raw.stored_texts();
            insert
                .execute(params![
                    raw.seq() as i64,
                    raw.event_id(),
                    account_id,
                    event_type,
                    event_time,
                    received_at_ms,
                    event,
                    decision
                ])
                .map_err(backend("copy the event log"))?;
            Ok(())
        })?
    };
    tx.commit().map_err(backend("copy the event log"))?;
    Ok(copied)
}

/// The `meta` key of the webhook cursor: the last `seq` turned into outbox
/// rows.
pub(crate) const WEBHOOK_CURSOR_KEY: &str = "webhook_cursor";

/// Snapshots kept; older ones are deleted when a new one is saved.
const SNAPSHOTS_KEPT: i64 = 2;

/// How often the background thread checkpoints the WAL.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// WAL size above which checkpoints stop being passive.
const WAL_RESTART_BYTES: u64 = 64 << 20;

/// How a database file is created and cached.
///
/// The write cost of an event is dominated by the index pages it dirties
/// (event id and account are random keys), and every dirtied page goes to
/// the WAL whole. Small commits, as under HTTP load, dirty a few pages per
/// event, so small pages are cheaper; bulk loads dirty each page for many
/// events, so larger pages mean fewer, bigger writes. A larger page cache
/// saves re-reading index pages but costs a scan of the cache on every
/// commit, which small commits notice.
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// Page size for a new database file (512 to 65536, a power of two).
    pub page_size: u32,
    /// Page cache of the writing connection, in bytes.
    pub cache_bytes: u64,
}

impl Default for SqliteOptions {
    /// For serving: many small group commits.
    fn default() -> Self {
        SqliteOptions {
            page_size: 4096,
            cache_bytes: 8 << 20,
        }
    }
}

impl SqliteOptions {
    /// For bulk loads (`custos replay` into a new database): few large commits.
    pub fn bulk() -> Self {
        SqliteOptions {
            page_size: 16384,
            cache_bytes: 64 << 20,
        }
    }
}

pub struct SqliteStore {
    path: PathBuf,
    /// The events and their decisions ([`crate::event_log`]); the database
    /// keeps everything else.
    log: EventLog,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    checkpointer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.checkpointer.take() {
            drop(stop);
            let _ = handle.join();
        }
        // Leave a compact database behind: fold the WAL in and empty it.
        let writer = lock(&self.writer);
        if let Err(e) = writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "final wal checkpoint failed");
        }
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_INTERVAL`] until told to stop.
///
/// PASSIVE never blocks the writer, but under steady writes it never quite
/// catches up, and SQLite only starts the WAL over once a checkpoint has
/// caught up: the WAL would grow without end (740 MB in 22 s at 3,000
/// events/s). So once the WAL passes [`WAL_RESTART_BYTES`], a RESTART
/// checkpoint briefly holds commits back until it has caught up, and the
/// next commit writes the WAL from its start again. Measured: WAL bounded
/// near 70–85 MB, p99 17.8 ms at 2,000 events/s (TRUNCATE at 256 MB instead
/// stalled commits for 300–600 ms).
fn run_checkpoints(conn: Connection, wal_path: PathBuf, stop: mpsc::Receiver<()>) {
    loop {
        match stop.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let wal_bytes = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
        let mode = if wal_bytes > WAL_RESTART_BYTES {
            "RESTART"
        } else {
            "PASSIVE"
        };
        let sql = format!("PRAGMA wal_checkpoint({mode})");
        if let Err(e) = conn.query_row(&sql, [], |_| Ok(())) {
            // Retried on the next tick; the WAL only grows meanwhile.
            tracing::warn!(error = %e, mode, wal_bytes, "wal checkpoint failed");
        }
    }
}

/// Wraps a driver error with what the store was doing.
fn backend(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// [`backend`] for an I/O error, such as one of (de)compression.
fn backend_io(context: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// A row limit as SQLite takes it (it has no unsigned integers).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves the connection usable: SQLite
    // rolls back an unfinished transaction itself.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, tuned for serving.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let writer = Connection::open(&path).map_err(backend("open"))?;
        // page_size only takes effect before the first table exists, so an
        // existing database keeps the page size it was created with.
        writer
            .execute_batch(&format!(
                "PRAGMA page_size = {page_size};
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA cache_size = -{cache_kib};
                 PRAGMA busy_timeout = 5000;
                 PRAGMA wal_autocheckpoint = 0;
                 PRAGMA foreign_keys = ON;",
                page_size = options.page_size,
                cache_kib = options.cache_bytes / 1024,
            ))
            .map_err(backend("open"))?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend("open"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        writer.execute_batch(SCHEMA).map_err(backend("open"))?;
        writer
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(backend("open"))?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend("open"))?;
        reader
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(backend("open"))?;
        let checkpoint_conn = Connection::open(&path).map_err(backend("open"))?;
        checkpoint_conn
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(backend("open"))?;
        let (stop, stopped) = mpsc::channel();
        let mut wal_path = path.clone().into_os_string();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        let handle = std::thread::Builder::new()
            .name("custos-checkpoint".into())
            .spawn(move || run_checkpoints(checkpoint_conn, wal_path, stopped))
            .map_err(|e| StoreError::backend("start the checkpoint thread", e))?;
        let log = open_log(&path, &writer)?;
        Ok(SqliteStore {
            path,
            log,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            checkpointer: Some((stop, handle)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `state` as chunks of `seq`, each in its own transaction so
    /// that appends from the writer thread get the connection between them.
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
            let conn = lock(&self.writer);
            conn.execute(
                "INSERT INTO snapshot_chunks (seq, idx, bytes) VALUES (?1, ?2, ?3)",
                params![seq as i64, info.chunks as i64, &buf[..filled]],
            )
            .map_err(backend("save a snapshot chunk"))?;
            drop(conn);
            info.chunks += 1;
            info.bytes += filled as u64;
            if filled < buf.len() {
                return Ok(info);
            }
        }
    }

    /// Drops chunks that belong to no complete snapshot: those of dropped
    /// snapshots and of saves that failed part way. One chunk per
    /// transaction, as they were written.
    fn prune_snapshot_chunks(&self) -> StoreResult<u64> {
        let orphans: Vec<(i64, i64)> = {
            let conn = lock(&self.writer);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, idx FROM snapshot_chunks
                      WHERE seq NOT IN (SELECT seq FROM chunked_snapshots)",
                )
                .map_err(backend("prune snapshot chunks"))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend("prune snapshot chunks"))?
                .collect::<Result<_, _>>()
                .map_err(backend("prune snapshot chunks"))?
        };
        for (seq, idx) in &orphans {
            lock(&self.writer)
                .execute(
                    "DELETE FROM snapshot_chunks WHERE seq = ?1 AND idx = ?2",
                    [seq, idx],
                )
                .map_err(backend("prune snapshot chunks"))?;
        }
        Ok(orphans.len() as u64)
    }
}

/// Reads until `buf` is full or `input` ends; returns how much was read.
pub(crate) fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads a chunked snapshot one chunk at a time, through the reader
/// connection: at most one chunk is in memory.
struct ChunkReader<'a> {
    store: &'a SqliteStore,
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
            let conn = lock(&self.store.reader);
            // Into the buffer of the chunk before: a fresh buffer per chunk
            // costs the kernel zeroing its pages every time, a large part of
            // a restart's time.
            let chunk = &mut self.chunk;
            let found = conn
                .query_row(
                    "SELECT bytes FROM snapshot_chunks WHERE seq = ?1 AND idx = ?2",
                    [self.seq, self.next],
                    |r| {
                        chunk.clear();
                        chunk.extend_from_slice(r.get_ref(0)?.as_blob()?);
                        Ok(())
                    },
                )
                .optional()
                .map_err(std::io::Error::other)?;
            if found.is_none() {
                return Err(std::io::Error::other(format!(
                    "snapshot {}: chunk {} of {} is missing",
                    self.seq, self.next, self.chunks
                )));
            }
            self.pos = 0;
            self.next += 1;
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        seq: row.get::<_, i64>(0)? as u64,
        event_id: row.get(1)?,
        account_id: row.get(2)?,
        event_type: row.get(3)?,
        event_time: row.get(4)?,
        received_at_ms: row.get(5)?,
        event_json: record_text(row, 6)?,
        decision_json: record_text(row, 7)?,
    })
}

/// An event or decision column: TEXT as written before compression, a
/// BLOB as [`compress::compress_record`] writes it.
pub(crate) fn record_text(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<String> {
    use rusqlite::types::{Type, ValueRef};
    match row.get_ref(column)? {
        ValueRef::Blob(stored) => compress::decompress_record(stored)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Blob, e.into())),
        _ => row.get(column),
    }
}

fn read_outbox_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let state: String = row.get(6)?;
    Ok(OutboxEntry {
        id: row.get::<_, i64>(0)? as u64,
        endpoint: row.get(1)?,
        webhook_id: row.get(2)?,
        webhook_type: row.get(3)?,
        payload: row.get(4)?,
        created_ms: row.get(5)?,
        state: WebhookState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("webhook_outbox.state: unknown state {state:?}").into(),
            )
        })?,
        attempts: row.get::<_, i64>(7)?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_ms: row.get(8)?,
        last_attempt_ms: row.get(9)?,
        last_error: row.get(10)?,
        finished_ms: row.get(11)?,
    })
}

fn read_cursor(conn: &Connection) -> StoreResult<Option<u64>> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [WEBHOOK_CURSOR_KEY],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend("read the webhook cursor"))?;
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

impl EventStore for SqliteStore {
    fn append(&self, records: &[NewRecord<'_>]) -> StoreResult<()> {
        self.log.append(records)
    }

    fn get_event(&self, event_id: &str) -> StoreResult<Option<StoredRecord>> {
        self.log.get_event(event_id)
    }

    fn account_events(&self, account_id: &str, limit: usize) -> StoreResult<Vec<StoredRecord>> {
        self.log.account_events(account_id, limit)
    }

    fn scan(
        &self,
        after_seq: u64,
        visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.log.scan(after_seq, usize::MAX, visit)
    }

    fn scan_accounts(
        &self,
        accounts: &BTreeSet<String>,
        visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()> {
        // The positions first, from the index (4 bytes a record), then the
        // records in log order: no sort that holds whole records.
        let positions = self.log.account_positions(accounts);
        self.log.visit_positions(&positions, Some(accounts), visit)
    }

    fn scan_event_ids(&self, visit: &mut dyn FnMut(&str)) -> StoreResult<()> {
        self.log.scan_raw(0, usize::MAX, &mut |raw| {
            visit(raw.event_id());
            Ok(())
        })
    }

    fn may_hold_event_id(&self, event_id: &str) -> Option<bool> {
        Some(self.log.may_hold(event_id))
    }

    fn last_seq(&self) -> StoreResult<u64> {
        Ok(self.log.last_seq())
    }

    fn event_count(&self) -> StoreResult<u64> {
        Ok(self.log.event_count())
    }

    fn save_snapshot(&self, seq: u64, state: &mut dyn Read) -> StoreResult<SnapshotInfo> {
        // A snapshot already stored at this seq is replaced whole.
        {
            let mut conn = lock(&self.writer);
            let tx = conn.transaction().map_err(backend("save a snapshot"))?;
            tx.execute("DELETE FROM chunked_snapshots WHERE seq = ?1", [seq as i64])
                .map_err(backend("save a snapshot"))?;
            tx.execute("DELETE FROM snapshots WHERE seq = ?1", [seq as i64])
                .map_err(backend("save a snapshot"))?;
            // And so are chunks a failed save of this seq left behind.
            tx.execute("DELETE FROM snapshot_chunks WHERE seq = ?1", [seq as i64])
                .map_err(backend("save a snapshot"))?;
            tx.commit().map_err(backend("save a snapshot"))?;
        }
        let written = compress::compress_snapshot(state)
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
        {
            let mut conn = lock(&self.writer);
            let tx = conn.transaction().map_err(backend("save a snapshot"))?;
            tx.execute(
                "INSERT INTO chunked_snapshots (seq, chunks, bytes) VALUES (?1, ?2, ?3)",
                params![seq as i64, info.chunks as i64, info.bytes as i64],
            )
            .map_err(backend("save a snapshot"))?;
            tx.execute(
                "DELETE FROM chunked_snapshots WHERE seq NOT IN
                   (SELECT seq FROM chunked_snapshots ORDER BY seq DESC LIMIT ?1)",
                [SNAPSHOTS_KEPT],
            )
            .map_err(backend("save a snapshot"))?;
            // Single-blob snapshots from before chunking go once as many
            // newer chunked ones are kept.
            tx.execute(
                "DELETE FROM snapshots WHERE seq < (SELECT MIN(seq) FROM
                   (SELECT seq FROM chunked_snapshots ORDER BY seq DESC LIMIT ?1))
                   AND (SELECT COUNT(*) FROM chunked_snapshots) >= ?1",
                [SNAPSHOTS_KEPT],
            )
            .map_err(backend("save a snapshot"))?;
            tx.commit().map_err(backend("save a snapshot"))?;
        }
        // The snapshot is saved; dropping the older chunks may fail (a full
        // disk) without undoing that, and is retried by the next save.
        if let Err(e) = self.prune_snapshot_chunks() {
            tracing::warn!(error = %e, seq, "cannot drop the chunks of older snapshots");
        }
        Ok(info)
    }

    fn latest_snapshot(&self) -> StoreResult<Option<(u64, Box<dyn Read + '_>)>> {
        let conn = lock(&self.reader);
        let chunked: Option<(i64, i64)> = conn
            .query_row(
                "SELECT seq, chunks FROM chunked_snapshots ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend("read the latest snapshot"))?;
        let blob_seq: Option<i64> = conn
            .query_row(
                "SELECT seq FROM snapshots ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend("read the latest snapshot"))?;
        let blob_is_newer = match (chunked, blob_seq) {
            (Some((chunked, _)), Some(blob)) => blob > chunked,
            (None, Some(_)) => true,
            _ => false,
        };
        if let (true, Some(seq)) = (blob_is_newer, blob_seq) {
            // A snapshot from before chunking: one blob, read whole.
            let state: Vec<u8> = conn
                .query_row("SELECT state FROM snapshots WHERE seq = ?1", [seq], |r| {
                    r.get(0)
                })
                .map_err(backend("read the latest snapshot"))?;
            drop(conn);
            let state = compress::read_snapshot(Box::new(std::io::Cursor::new(state)))
                .map_err(backend_io("read the latest snapshot"))?;
            return Ok(Some((seq as u64, state)));
        }
        // The chunk reader takes the reader connection for each chunk.
        drop(conn);
        let Some((seq, chunks)) = chunked else {
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
        let state =
            compress::read_snapshot(stored).map_err(backend_io("read the latest snapshot"))?;
        Ok(Some((seq as u64, state)))
    }

    fn snapshots(&self) -> StoreResult<Vec<SnapshotInfo>> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, chunks, bytes FROM chunked_snapshots
                 UNION ALL
                 SELECT seq, 1, length(state) FROM snapshots
                 ORDER BY seq DESC",
            )
            .map_err(backend("list snapshots"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SnapshotInfo {
                    seq: r.get::<_, i64>(0)? as u64,
                    chunks: r.get::<_, i64>(1)? as u64,
                    bytes: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(backend("list snapshots"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(backend("list snapshots"))
    }

    fn get_meta(&self, key: &str) -> StoreResult<Option<String>> {
        let conn = lock(&self.reader);
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(backend("read meta"))
    }

    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        let conn = lock(&self.writer);
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )
        .map(|_| ())
        .map_err(backend("write meta"))
    }

    fn save_rule_set(
        &self,
        version: u64,
        installed_at_ms: i64,
        source_json: &str,
    ) -> StoreResult<()> {
        let conn = lock(&self.writer);
        let inserted = conn
            .execute(
                "INSERT INTO rule_sets (version, installed_at, source) VALUES (?1, ?2, ?3)
                 ON CONFLICT (version) DO NOTHING",
                params![version as i64, installed_at_ms, source_json],
            )
            .map_err(backend("save a rule set"))?;
        if inserted == 0 {
            return Err(StoreError::Duplicate {
                event_id: format!("rule set version {version}"),
                seq: version,
            });
        }
        Ok(())
    }

    fn rule_set(&self, version: u64) -> StoreResult<Option<(i64, String)>> {
        let conn = lock(&self.reader);
        conn.query_row(
            "SELECT installed_at, source FROM rule_sets WHERE version = ?1",
            [version as i64],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()
        .map_err(backend("read a rule set"))
    }

    fn latest_rule_set(&self) -> StoreResult<Option<(u64, String)>> {
        let conn = lock(&self.reader);
        conn.query_row(
            "SELECT version, source FROM rule_sets ORDER BY version DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)),
        )
        .optional()
        .map_err(backend("read the latest rule set"))
    }

    fn read_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<StoredRecord>> {
        let mut records = Vec::new();
        self.log.scan(after_seq, limit, &mut |record| {
            records.push(record);
            Ok(())
        })?;
        Ok(records)
    }

    fn webhook_cursor(&self) -> StoreResult<Option<u64>> {
        read_cursor(&lock(&self.reader))
    }

    fn enqueue_webhooks(&self, rows: &[NewWebhook<'_>], cursor: u64) -> StoreResult<u64> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend("enqueue webhooks"))?;
        let mut inserted = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO webhook_outbox
                       (endpoint, webhook_id, webhook_type, payload, created_ms, next_attempt_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT (endpoint, webhook_id) DO NOTHING",
                )
                .map_err(backend("enqueue webhooks"))?;
            for row in rows {
                inserted += insert
                    .execute(params![
                        row.endpoint,
                        row.webhook_id,
                        row.webhook_type,
                        row.payload,
                        row.created_ms
                    ])
                    .map_err(backend("enqueue webhooks"))? as u64;
            }
        }
        let current = read_cursor(&tx)?;
        if current.is_none_or(|c| c < cursor) {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![WEBHOOK_CURSOR_KEY, cursor.to_string()],
            )
            .map_err(backend("enqueue webhooks"))?;
        }
        tx.commit().map_err(backend("enqueue webhooks"))?;
        Ok(inserted)
    }

    fn due_webhooks(
        &self,
        endpoint: &str,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxEntry>> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM webhook_outbox
                  WHERE endpoint = ?1 AND state = 'pending' AND next_attempt_ms <= ?2
                  ORDER BY next_attempt_ms, id LIMIT ?3"
            ))
            .map_err(backend("read due webhooks"))?;
        let rows = stmt
            .query_map(
                params![endpoint, now_ms, sql_limit(limit)],
                read_outbox_entry,
            )
            .map_err(backend("read due webhooks"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(backend("read due webhooks"))
    }

    fn webhook_delivered(&self, id: u64, at_ms: i64) -> StoreResult<()> {
        let conn = lock(&self.writer);
        conn.execute(
            "UPDATE webhook_outbox
                SET state = 'delivered', attempts = attempts + 1, last_attempt_ms = ?2,
                    finished_ms = ?2, last_error = NULL
              WHERE id = ?1 AND state = 'pending'",
            params![id as i64, at_ms],
        )
        .map(|_| ())
        .map_err(backend("mark a webhook delivered"))
    }

    fn webhook_failed(&self, id: u64, failure: &WebhookFailure<'_>) -> StoreResult<()> {
        let conn = lock(&self.writer);
        let (state, finished) = if failure.dead {
            (WebhookState::Dead, Some(failure.at_ms))
        } else {
            (WebhookState::Pending, None)
        };
        conn.execute(
            "UPDATE webhook_outbox
                SET state = ?2, attempts = ?3, last_attempt_ms = ?4, next_attempt_ms = ?5,
                    last_error = ?6, finished_ms = ?7
              WHERE id = ?1 AND state = 'pending'",
            params![
                id as i64,
                state.as_str(),
                i64::from(failure.attempts),
                failure.at_ms,
                failure.next_attempt_ms,
                failure.error,
                finished
            ],
        )
        .map(|_| ())
        .map_err(backend("record a webhook failure"))
    }

    fn retry_webhook(
        &self,
        webhook_id: &str,
        endpoint: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let conn = lock(&self.writer);
        let mut stmt = conn
            .prepare_cached(
                "UPDATE webhook_outbox
                    SET state = 'pending', attempts = 0, next_attempt_ms = ?3, finished_ms = NULL
                  WHERE webhook_id = ?1 AND state = 'dead' AND (?2 IS NULL OR endpoint = ?2)
              RETURNING endpoint",
            )
            .map_err(backend("retry a webhook"))?;
        let mut endpoints = stmt
            .query_map(params![webhook_id, endpoint, now_ms], |r| {
                r.get::<_, String>(0)
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(backend("retry a webhook"))?;
        endpoints.sort();
        Ok(endpoints)
    }

    fn webhook_stats(&self) -> StoreResult<Vec<WebhookEndpointStats>> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT endpoint,
                        SUM(state = 'pending'),
                        SUM(state = 'dead'),
                        MAX(CASE WHEN last_error IS NOT NULL THEN last_attempt_ms END)
                   FROM webhook_outbox
                  WHERE state IN ('pending', 'dead')
                  GROUP BY endpoint ORDER BY endpoint",
            )
            .map_err(backend("read webhook stats"))?;
        let counts = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .map_err(backend("read webhook stats"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend("read webhook stats"))?;
        let mut last_error = conn
            .prepare_cached(
                "SELECT last_error FROM webhook_outbox
                  WHERE endpoint = ?1 AND state IN ('pending', 'dead') AND last_attempt_ms = ?2
                    AND last_error IS NOT NULL
                  LIMIT 1",
            )
            .map_err(backend("read webhook stats"))?;
        let mut out = Vec::with_capacity(counts.len());
        for (endpoint, pending, dead, last_error_ms) in counts {
            let error = match last_error_ms {
                Some(at) => last_error
                    .query_row(params![endpoint, at], |r| r.get::<_, String>(0))
                    .optional()
                    .map_err(backend("read webhook stats"))?,
                None => None,
            };
            out.push(WebhookEndpointStats {
                endpoint,
                pending,
                dead,
                last_error: error,
                last_error_ms,
            });
        }
        Ok(out)
    }

    fn list_webhooks(
        &self,
        endpoint: Option<&str>,
        state: WebhookState,
        limit: usize,
    ) -> StoreResult<Vec<OutboxEntry>> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM webhook_outbox
                  WHERE state = ?1 AND (?2 IS NULL OR endpoint = ?2)
                  ORDER BY id DESC LIMIT ?3"
            ))
            .map_err(backend("list webhooks"))?;
        let rows = stmt
            .query_map(
                params![state.as_str(), endpoint, sql_limit(limit)],
                read_outbox_entry,
            )
            .map_err(backend("list webhooks"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(backend("list webhooks"))
    }

    fn prune_webhooks(&self, before_ms: i64, limit: usize) -> StoreResult<u64> {
        let conn = lock(&self.writer);
        conn.execute(
            "DELETE FROM webhook_outbox WHERE id IN (
                SELECT id FROM webhook_outbox
                 WHERE state = 'delivered' AND finished_ms < ?1 LIMIT ?2)",
            params![before_ms, sql_limit(limit)],
        )
        .map(|n| n as u64)
        .map_err(backend("prune webhooks"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store_test_suite!(sqlite, {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("custos.db")).unwrap();
        (dir, store)
    });

    #[test]
    fn wal_and_full_sync_are_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("custos.db")).unwrap();
        let conn = lock(&store.writer);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
    }

    #[test]
    fn a_backend_error_keeps_the_driver_error_as_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteStore::open(dir.path().join("missing-dir").join("custos.db"))
            .err()
            .expect("a database in a missing directory cannot be opened");
        let StoreError::Backend { context, .. } = &err else {
            panic!("expected a backend error, got {err:?}");
        };
        assert_eq!(*context, "open");
        let source = std::error::Error::source(&err).expect("the driver error is kept");
        assert!(source.is::<rusqlite::Error>(), "{source:?}");
        assert_eq!(err.to_string(), format!("store i/o failed: open: {source}"));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        match SqliteStore::open(&path) {
            Err(StoreError::SchemaTooNew { found: 99, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn page_size_is_chosen_at_creation_and_the_wal_is_emptied_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.db");
        let page_size = |store: &SqliteStore| -> i64 {
            lock(&store.writer)
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let store = SqliteStore::open_with(&path, SqliteOptions::bulk()).unwrap();
        assert_eq!(page_size(&store), 16384);
        store.set_meta("k", &"v".repeat(100_000)).unwrap();
        let wal = dir.path().join("custos.db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        drop(store);
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
        // Reopened with serving options, the file keeps its page size.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(page_size(&store), 16384);
        assert_eq!(store.get_meta("k").unwrap().unwrap().len(), 100_000);
    }

    /// The schema as version 1 wrote it, to test the upgrade.
    const SCHEMA_V1: &str = "
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,
            account_id TEXT NOT NULL, event_type TEXT NOT NULL,
            event_time INTEGER NOT NULL, received_at_ms INTEGER NOT NULL,
            event TEXT NOT NULL, decision TEXT NOT NULL);
        CREATE INDEX events_by_account ON events (account_id, seq);
        CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, state BLOB NOT NULL);
        CREATE TABLE rule_sets (version INTEGER PRIMARY KEY,
            installed_at INTEGER NOT NULL, source TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO events VALUES (1, 'e1', 'acct', 'login', 1526000000,
            1700000000000, '{}', '{\"action\":\"allow\"}');
        INSERT INTO meta VALUES ('token_key_id', 'abc');
        PRAGMA user_version = 1;";

    #[test]
    fn a_version_1_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(SCHEMA_V1)
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let version: i64 = lock(&store.writer)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(store.get_event("e1").unwrap().unwrap().account_id, "acct");
        assert_eq!(
            store.get_meta("token_key_id").unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(store.webhook_cursor().unwrap(), None);
        let row = NewWebhook {
            endpoint: "ops",
            webhook_id: "1.0",
            webhook_type: "decision.created",
            payload: "{}",
            created_ms: 5,
        };
        assert_eq!(store.enqueue_webhooks(&[row], 1).unwrap(), 1);
        drop(store);
        // Opening again (now at version 2) changes nothing.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.webhook_cursor().unwrap(), Some(1));
        assert_eq!(store.due_webhooks("ops", 5, 10).unwrap().len(), 1);
        store
            .append(&[NewRecord {
                seq: 2,
                event_id: "e2",
                account_id: "acct",
                event_type: "login",
                event_time: 1_526_000_001,
                received_at_ms: 1_700_000_000_001,
                event_json: "{}",
                decision_json: "{}",
            }])
            .unwrap();
        assert_eq!(store.last_seq().unwrap(), 2);
    }

    #[test]
    fn events_of_the_table_move_into_the_log_and_text_stored_before_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(SCHEMA_V1)
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let event = r#"{"event_id":"e2","type":"login","account_id":"acct","status":"success"}"#;
        let decision = r#"{"action":"challenge","score":40,"reasons":["new device"]}"#;
        store
            .append(&[NewRecord {
                seq: 2,
                event_id: "e2",
                account_id: "acct",
                event_type: "login",
                event_time: 1_526_000_001,
                received_at_ms: 1_700_000_000_001,
                event_json: event,
                decision_json: decision,
            }])
            .unwrap();
        // The version-1 row (text) was moved into the log at the open; the
        // table is empty and the log holds both, compressed.
        let in_table: i64 = lock(&store.reader)
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(in_table, 0);
        let log_bytes: u64 = std::fs::read_dir(event_log_dir(&path))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(log_bytes > 0);
        let old = store.get_event("e1").unwrap().unwrap();
        assert_eq!(
            (old.event_json.as_str(), old.decision_json.as_str()),
            ("{}", r#"{"action":"allow"}"#)
        );
        let new = store.get_event("e2").unwrap().unwrap();
        assert_eq!(
            (new.event_json.as_str(), new.decision_json.as_str()),
            (event, decision)
        );
        let mut scanned = Vec::new();
        store
            .scan(0, &mut |r| {
                scanned.push(r.decision_json);
                Ok(())
            })
            .unwrap();
        assert_eq!(scanned, [r#"{"action":"allow"}"#, decision]);
        // Opened again, the log is read as it is: nothing is moved twice.
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.event_count().unwrap(), 2);
        assert_eq!(store.get_event("e1").unwrap().unwrap().seq, 1);
    }

    fn chunk_rows(store: &SqliteStore) -> i64 {
        lock(&store.writer)
            .query_row("SELECT COUNT(*) FROM snapshot_chunks", [], |r| r.get(0))
            .unwrap()
    }

    fn read_latest(store: &SqliteStore) -> (u64, Vec<u8>) {
        let (seq, mut reader) = store.latest_snapshot().unwrap().unwrap();
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).unwrap();
        (seq, bytes)
    }

    #[test]
    fn a_single_blob_snapshot_from_version_2_is_read_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute("INSERT INTO snapshots (seq, state) VALUES (1, x'7b7d')", [])
            .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(read_latest(&store), (1, b"{}".to_vec()));
        assert_eq!(
            store.snapshots().unwrap(),
            [SnapshotInfo {
                seq: 1,
                bytes: 2,
                chunks: 1
            }]
        );
        // A newer chunked snapshot wins; the blob goes once two are kept.
        store.save_snapshot(2, &mut &b"two"[..]).unwrap();
        assert_eq!(read_latest(&store), (2, b"two".to_vec()));
        assert_eq!(store.snapshots().unwrap().len(), 2);
        store.save_snapshot(3, &mut &b"three"[..]).unwrap();
        let seqs: Vec<u64> = store.snapshots().unwrap().iter().map(|s| s.seq).collect();
        assert_eq!(seqs, [3, 2]);
    }

    #[test]
    fn chunks_of_dropped_and_failed_snapshots_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("custos.db")).unwrap();
        // Bytes that do not compress, so that the chunks stored are as
        // many as given.
        let big = crate::testsuite::pattern(SNAPSHOT_CHUNK_BYTES + 1, 1);
        for seq in 1..=3 {
            store.save_snapshot(seq, &mut &big[..]).unwrap();
        }
        // Two snapshots of two chunks each.
        assert_eq!(chunk_rows(&store), 4);
        // A save whose source fails after one full chunk leaves nothing.
        let mut failing = (&big[..SNAPSHOT_CHUNK_BYTES]).chain(FailAfter);
        assert!(store.save_snapshot(4, &mut failing).is_err());
        assert_eq!(chunk_rows(&store), 4);
        // Chunks left by a crash part way are dropped by the next save.
        lock(&store.writer)
            .execute(
                "INSERT INTO snapshot_chunks (seq, idx, bytes) VALUES (9, 0, x'00')",
                [],
            )
            .unwrap();
        assert_eq!(
            read_latest(&store).0,
            3,
            "an incomplete snapshot is not read"
        );
        store.save_snapshot(5, &mut &b"five"[..]).unwrap();
        assert_eq!(chunk_rows(&store), 3);
    }

    /// A reader that always fails.
    struct FailAfter;

    impl Read for FailAfter {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
    }

    #[test]
    fn a_failed_enqueue_moves_neither_rows_nor_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.db");
        let store = SqliteStore::open(&path).unwrap();
        store.enqueue_webhooks(&[], 4).unwrap();
        // Make the second insert fail, as a full disk would.
        lock(&store.writer)
            .execute_batch(
                "CREATE TRIGGER fail_boom BEFORE INSERT ON webhook_outbox
                 WHEN NEW.webhook_id = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END;",
            )
            .unwrap();
        let ok = NewWebhook {
            endpoint: "ops",
            webhook_id: "5.0",
            webhook_type: "decision.created",
            payload: "{}",
            created_ms: 5,
        };
        let boom = NewWebhook {
            webhook_id: "boom",
            ..ok
        };
        assert!(store.enqueue_webhooks(&[ok, boom], 9).is_err());
        assert_eq!(store.webhook_cursor().unwrap(), Some(4));
        assert!(store.due_webhooks("ops", i64::MAX, 10).unwrap().is_empty());
        assert_eq!(store.enqueue_webhooks(&[ok], 9).unwrap(), 1);
        assert_eq!(store.webhook_cursor().unwrap(), Some(9));
    }
}
