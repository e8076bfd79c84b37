//! Rewriting a copy of the embedded store: what `custos tokens rotate`
//! needs to move every stored destination token to a new key.
//!
//! The store never knows what a token is; the caller hands a function that
//! rewrites one stored text (an event, a decision, a rule-set source, a
//! webhook body) or leaves it alone. The source database is only read, and
//! nothing is created beside it ([`copy_untouched`]: SQLite would otherwise
//! create the `-wal` and `-shm` files of a reader): [`rewrite_copy`] first
//! writes a checked copy of it, then rewrites the copy in one transaction, drops
//! its snapshots (they hold state derived from the old texts, so the next
//! start rebuilds state from the rewritten log) and sets metadata. A copy
//! that fails part way is removed; the caller puts a finished one in place.
//!
//! The copy is brought to this build's schema first, as a start would: a
//! store of an older schema is rewritten too, one of a newer schema is
//! refused before anything is written.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::backup::BackupError;
use crate::compress;
use crate::sqlite::{SCHEMA, SCHEMA_VERSION};

/// What a store holds, read without writing to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFacts {
    pub schema_version: i64,
    pub events: u64,
    /// `meta` values asked for, in the order asked.
    pub meta: Vec<Option<String>>,
}

/// What [`rewrite_copy`] changed in the copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewriteStats {
    pub events: u64,
    /// Events whose stored event text changed.
    pub events_rewritten: u64,
    /// Events whose stored decision text changed.
    pub decisions_rewritten: u64,
    /// Rule-set versions whose source changed.
    pub rule_sets_rewritten: u64,
    /// Webhook outbox rows whose body changed.
    pub webhooks_rewritten: u64,
    /// Snapshots dropped.
    pub snapshots_dropped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("store was written by a newer schema version {found}; this build knows {known}")]
    SchemaTooNew { found: i64, known: i64 },
    #[error(transparent)]
    Copy(#[from] BackupError),
    #[error("cannot read the event log: {0}")]
    Log(crate::StoreError),
    #[error("{what}: {source}")]
    Sqlite {
        what: &'static str,
        source: rusqlite::Error,
    },
}

fn sqlite(what: &'static str) -> impl FnOnce(rusqlite::Error) -> RewriteError {
    move |source| RewriteError::Sqlite { what, source }
}

/// Reads the schema version, the event count and some `meta` values of the
/// database at `database`, opened read-only. A database of a newer schema
/// is refused, one that is not a custos store too.
pub fn inspect(database: &Path, meta_keys: &[&str]) -> Result<StoreFacts, RewriteError> {
    if !database.is_file() {
        return Err(BackupError::NoDatabase(database.to_path_buf()).into());
    }
    let connection = open_untouched(database)?;
    let schema_version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite("read the schema version"))?;
    if schema_version > SCHEMA_VERSION {
        return Err(RewriteError::SchemaTooNew {
            found: schema_version,
            known: SCHEMA_VERSION,
        });
    }
    for table in ["events", "meta", "rule_sets"] {
        let found: Option<String> = connection
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite("read the tables"))?;
        if found.is_none() {
            return Err(BackupError::NotABackup {
                path: database.to_path_buf(),
                reason: format!("it has no `{table}` table"),
            }
            .into());
        }
    }
    let in_table: i64 = connection
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .map_err(sqlite("count the events"))?;
    let in_log =
        crate::event_log::read_committed(&crate::sqlite::event_log_dir(database), &mut |_| Ok(()))
            .map_err(RewriteError::Log)?;
    let events = u64::try_from(in_table).unwrap_or(0) + in_log;
    let mut meta = Vec::with_capacity(meta_keys.len());
    for key in meta_keys {
        meta.push(
            connection
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(sqlite("read the metadata"))?,
        );
    }
    Ok(StoreFacts {
        schema_version,
        events,
        meta,
    })
}

/// Opens `database` to read it, writing nothing beside it. SQLite creates
/// the `-wal` and `-shm` files of a database in WAL mode for any reader,
/// even a read-only one; when there is no write-ahead log to read (none,
/// or an empty one: a store closed cleanly), the database is opened as
/// immutable instead, which reads the file alone and creates nothing.
fn open_untouched(database: &Path) -> Result<Connection, RewriteError> {
    let wal = with_suffix(database, "-wal");
    let wal_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
    let connection = if wal_empty {
        Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(database)),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
    } else {
        Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }
    .map_err(sqlite("open the database to read"))?;
    connection
        .execute_batch("PRAGMA busy_timeout = 10000;")
        .map_err(sqlite("open the database to read"))?;
    Ok(connection)
}

/// `path` as the path of a `file:` URI: the characters a URI gives a
/// meaning to are escaped.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Writes a copy of the database at `database` into the new file `out`,
/// leaving the source's directory as it was ([`open_untouched`]): written
/// under a temporary name, checked whole, synced and renamed, as a backup
/// is. For the store and the data directory's other databases (the
/// console's) alike. Returns the copy's size in bytes.
pub fn copy_untouched(database: &Path, out: &Path) -> Result<u64, RewriteError> {
    if !database.is_file() {
        return Err(BackupError::NoDatabase(database.to_path_buf()).into());
    }
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_path_buf()).into());
    }
    let partial = with_suffix(out, ".partial");
    let _ = std::fs::remove_file(&partial);
    let copied = open_untouched(database).and_then(|connection| {
        connection
            .execute("VACUUM INTO ?1", [partial.to_string_lossy()])
            .map_err(sqlite("copy the database"))
    });
    let checked = copied.and_then(|_| {
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|source| BackupError::Io {
                what: "sync",
                path: partial.clone(),
                source,
            })?;
        crate::backup::check_companion(&partial)?;
        Ok(std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0))
    });
    match checked {
        Ok(bytes) => {
            std::fs::rename(&partial, out).map_err(|source| BackupError::Io {
                what: "rename the copy to",
                path: out.to_path_buf(),
                source,
            })?;
            Ok(bytes)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Rows read and rewritten per statement: bounds memory on a large log.
const PAGE: i64 = 10_000;

/// Writes a consistent copy of `database` to the new file `out`, then, in
/// one transaction on the copy: passes every stored event, decision,
/// rule-set source and webhook body through `rewrite` (`None` keeps the
/// text), drops every snapshot, and sets `meta`. On any error `out` is
/// removed. `database` is only read.
pub fn rewrite_copy(
    database: &Path,
    out: &Path,
    rewrite: &mut dyn FnMut(&str) -> Option<String>,
    meta: &[(&str, &str)],
) -> Result<RewriteStats, RewriteError> {
    inspect(database, &[])?;
    copy_untouched(database, out)?;
    // The events, from the log beside the database, into the copy's table:
    // the copy carries them there, and its first open moves them into a
    // log of its own.
    let result = Connection::open(out)
        .map_err(sqlite("open the copy"))
        .and_then(|mut connection| {
            crate::sqlite::copy_log_into_table(database, &mut connection).map_err(RewriteError::Log)
        })
        .and_then(|_| rewrite_in_place(out, rewrite, meta));
    if result.is_err() {
        let _ = std::fs::remove_file(out);
        for suffix in ["-journal", "-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(out, suffix));
        }
    }
    result
}

fn rewrite_in_place(
    file: &Path,
    rewrite: &mut dyn FnMut(&str) -> Option<String>,
    meta: &[(&str, &str)],
) -> Result<RewriteStats, RewriteError> {
    let mut connection = Connection::open(file).map_err(sqlite("open the copy"))?;
    connection
        .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(sqlite("open the copy"))?;
    // Migrate an older copy the way a start would; what follows reads
    // this build's tables.
    connection
        .execute_batch(SCHEMA)
        .map_err(sqlite("bring the copy to this schema"))?;
    connection
        .pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sqlite("bring the copy to this schema"))?;
    let tx = connection
        .transaction()
        .map_err(sqlite("begin the rewrite"))?;
    let mut stats = RewriteStats::default();

    let mut after = 0i64;
    loop {
        let page: Vec<(i64, String, String)> = {
            let mut select = tx
                .prepare_cached(
                    "SELECT seq, event, decision FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(sqlite("read the events"))?;
            select
                .query_map(params![after, PAGE], |r| {
                    Ok((
                        r.get(0)?,
                        crate::sqlite::record_text(r, 1)?,
                        crate::sqlite::record_text(r, 2)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sqlite("read the events"))?
        };
        let Some(last) = page.last() else { break };
        after = last.0;
        let mut update_event = tx
            .prepare_cached("UPDATE events SET event = ?2 WHERE seq = ?1")
            .map_err(sqlite("rewrite the events"))?;
        let mut update_decision = tx
            .prepare_cached("UPDATE events SET decision = ?2 WHERE seq = ?1")
            .map_err(sqlite("rewrite the events"))?;
        for (seq, event, decision) in &page {
            stats.events += 1;
            if let Some(event) = rewrite(event) {
                let event =
                    compress::compress_record(&event).map_err(|e| RewriteError::Sqlite {
                        what: "compress the events",
                        source: rusqlite::Error::ToSqlConversionFailure(e.into()),
                    })?;
                update_event
                    .execute(params![seq, event])
                    .map_err(sqlite("rewrite the events"))?;
                stats.events_rewritten += 1;
            }
            if let Some(decision) = rewrite(decision) {
                let decision =
                    compress::compress_record(&decision).map_err(|e| RewriteError::Sqlite {
                        what: "compress the decisions",
                        source: rusqlite::Error::ToSqlConversionFailure(e.into()),
                    })?;
                update_decision
                    .execute(params![seq, decision])
                    .map_err(sqlite("rewrite the decisions"))?;
                stats.decisions_rewritten += 1;
            }
        }
    }

    let rule_sets: Vec<(i64, String)> = tx
        .prepare("SELECT version, source FROM rule_sets ORDER BY version")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite("read the rule sets"))?;
    for (version, source) in &rule_sets {
        if let Some(source) = rewrite(source) {
            tx.execute(
                "UPDATE rule_sets SET source = ?2 WHERE version = ?1",
                params![version, source],
            )
            .map_err(sqlite("rewrite the rule sets"))?;
            stats.rule_sets_rewritten += 1;
        }
    }

    let mut after = 0i64;
    loop {
        let page: Vec<(i64, String)> = {
            let mut select = tx
                .prepare_cached(
                    "SELECT id, payload FROM webhook_outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(sqlite("read the webhook outbox"))?;
            select
                .query_map(params![after, PAGE], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sqlite("read the webhook outbox"))?
        };
        let Some(last) = page.last() else { break };
        after = last.0;
        for (id, payload) in &page {
            if let Some(payload) = rewrite(payload) {
                tx.execute(
                    "UPDATE webhook_outbox SET payload = ?2 WHERE id = ?1",
                    params![id, payload],
                )
                .map_err(sqlite("rewrite the webhook outbox"))?;
                stats.webhooks_rewritten += 1;
            }
        }
    }

    // Snapshots hold state built from the old texts: without them the next
    // start rebuilds state from the rewritten log.
    let single: i64 = tx
        .query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get(0))
        .map_err(sqlite("count the snapshots"))?;
    let chunked: i64 = tx
        .query_row("SELECT COUNT(*) FROM chunked_snapshots", [], |r| r.get(0))
        .map_err(sqlite("count the snapshots"))?;
    stats.snapshots_dropped = u64::try_from(single + chunked).unwrap_or(0);
    tx.execute_batch(
        "DELETE FROM snapshots; DELETE FROM chunked_snapshots; DELETE FROM snapshot_chunks;",
    )
    .map_err(sqlite("drop the snapshots"))?;

    for (key, value) in meta {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )
        .map_err(sqlite("write the metadata"))?;
    }
    tx.commit().map_err(sqlite("commit the rewrite"))?;
    // The dropped snapshots' pages would otherwise stay in the file.
    connection
        .execute_batch("VACUUM;")
        .map_err(sqlite("compact the copy"))?;
    Ok(stats)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventStore, NewRecord, SqliteStore};

    fn store_at(db: &Path) {
        let store = SqliteStore::open(db).expect("open");
        let records = [
            NewRecord {
                seq: 1,
                event_id: "e1",
                account_id: "a1",
                event_type: "login",
                event_time: 1,
                received_at_ms: 1,
                event_json: r#"{"token":"old-1"}"#,
                decision_json: r#"{"saw":"old-1","other":"keep"}"#,
            },
            NewRecord {
                seq: 2,
                event_id: "e2",
                account_id: "a2",
                event_type: "login",
                event_time: 2,
                received_at_ms: 2,
                event_json: r#"{"token":"none"}"#,
                decision_json: "{}",
            },
        ];
        store.append(&records).expect("append");
        store
            .save_rule_set(1, 1, r#"{"lists":["old-1"]}"#)
            .expect("rules");
        store.set_meta("key_id", "old").expect("meta");
        store
            .save_snapshot(2, &mut &b"state"[..])
            .expect("snapshot");
    }

    fn rename_old(text: &str) -> Option<String> {
        text.contains("old-1")
            .then(|| text.replace("old-1", "new-1"))
    }

    #[test]
    fn the_copy_is_rewritten_without_snapshots_and_the_source_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("custos.db");
        store_at(&db);
        let before = std::fs::read(&db).unwrap();
        let listing = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name != "out.db")
                .collect();
            names.sort();
            names
        };
        let beside = listing();
        let out = dir.path().join("out.db");
        let stats =
            rewrite_copy(&db, &out, &mut rename_old, &[("key_id", "new")]).expect("rewrite");
        assert_eq!(
            stats,
            RewriteStats {
                events: 2,
                events_rewritten: 1,
                decisions_rewritten: 1,
                rule_sets_rewritten: 1,
                webhooks_rewritten: 0,
                snapshots_dropped: 1,
            }
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            before,
            "the source is unchanged"
        );
        assert_eq!(listing(), beside, "nothing is created beside it");

        let copy = SqliteStore::open(&out).unwrap();
        let mut texts = Vec::new();
        copy.scan(0, &mut |r| {
            texts.push((r.event_json, r.decision_json));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            texts,
            [
                (
                    r#"{"token":"new-1"}"#.to_string(),
                    r#"{"saw":"new-1","other":"keep"}"#.to_string()
                ),
                (r#"{"token":"none"}"#.to_string(), "{}".to_string()),
            ]
        );
        assert_eq!(
            copy.latest_rule_set().unwrap(),
            Some((1, r#"{"lists":["new-1"]}"#.to_string()))
        );
        assert_eq!(copy.get_meta("key_id").unwrap().as_deref(), Some("new"));
        assert!(copy.latest_snapshot().unwrap().is_none());
        assert!(copy.snapshots().unwrap().is_empty());

        let facts = inspect(&db, &["key_id", "missing"]).unwrap();
        assert_eq!(facts.events, 2);
        assert_eq!(facts.meta, [Some("old".to_string()), None]);
    }

    #[test]
    fn a_newer_schema_is_refused_and_an_existing_output_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("custos.db");
        store_at(&db);
        let out = dir.path().join("out.db");
        std::fs::write(&out, "mine").unwrap();
        let err = rewrite_copy(&db, &out, &mut rename_old, &[]).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "mine");

        Connection::open(&db)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let fresh = dir.path().join("fresh.db");
        let err = rewrite_copy(&db, &fresh, &mut rename_old, &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("store was written by a newer schema version"),
            "{err}"
        );
        assert!(!fresh.exists());
    }
}
