//! Online backup and restore of the embedded store.
//!
//! A backup is one SQLite file written by `VACUUM INTO` inside a read
//! transaction on the live database, into whose `events` table the records
//! of the event log are then copied. In WAL mode that transaction sees the
//! database as of one commit while the server keeps committing beside it,
//! and the log only grows, so the copy is consistent: every event committed
//! before the backup began is in it, with its decision, and no half of a
//! group commit is (a group is one checksummed frame of the log). It holds
//! the events, decisions, snapshots, rule sets, webhook endpoints and their
//! outbox, and the metadata; not the destination token key nor the PII key,
//! which are kept apart on purpose (a backup that carried its keys would
//! hand out the account numbers with it).
//!
//! Restoring never half-applies: the file is checked (SQLite's header, the
//! integrity check, the Custos tables, the schema version), copied beside the
//! target, checked again, synced and only then renamed into place. A target
//! that already holds a database is refused.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::sqlite::SCHEMA_VERSION;

/// What a backup file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Stored events (each with its decision).
    pub events: u64,
    /// The log position of the newest event, 0 when empty.
    pub last_seq: u64,
    /// The store schema version the file was written with.
    pub schema_version: i64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no database at {0}")]
    NoDatabase(PathBuf),
    #[error("{0} already exists; choose another file or remove it first")]
    OutputExists(PathBuf),
    #[error("{0} already holds a database; restore into an empty data directory")]
    TargetNotEmpty(PathBuf),
    #[error("{path} is not a custos backup: {reason}")]
    NotABackup { path: PathBuf, reason: String },
    #[error("{path} is damaged or truncated: {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "{path} was written by store schema version {found}; this custos reads version {known}: \
         restore it with the custos version that wrote it, then start this one on it to migrate"
    )]
    OtherVersion {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sqlite {
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("cannot copy the event log: {0}")]
    Log(#[from] crate::StoreError),
}

fn sqlite(what: &'static str) -> impl FnOnce(rusqlite::Error) -> BackupError {
    move |source| BackupError::Sqlite { what, source }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io { what, path, source }
}

/// Writes a consistent copy of the database at `database` (which a server
/// may be writing to) into the new file `out`.
pub fn backup(database: &Path, out: &Path) -> Result<BackupInfo, BackupError> {
    copy_consistent(database, out, |partial| {
        // The events live in the log beside the database: copied into the
        // backup's `events` table after the database, so that whatever the
        // copy refers to (a snapshot, the webhook cursor) was in the log
        // already.
        let mut connection = Connection::open(partial).map_err(sqlite("open the backup"))?;
        crate::sqlite::copy_log_into_table(database, &mut connection)?;
        drop(connection);
        check(partial)
    })
}

/// [`backup`] for a companion SQLite database of the data directory (the
/// console's users and audit trail): checked as a whole SQLite file only.
/// Returns its size in bytes.
pub fn backup_companion(database: &Path, out: &Path) -> Result<u64, BackupError> {
    copy_consistent(database, out, |file| {
        check_sqlite(file)?;
        fs::metadata(file)
            .map(|m| m.len())
            .map_err(io("read", file))
    })
}

/// Checks a companion database's backup ([`backup_companion`]).
pub fn check_companion(file: &Path) -> Result<(), BackupError> {
    check_sqlite(file).map(drop)
}

/// [`restore`] for a companion database ([`backup_companion`]).
pub fn restore_companion(file: &Path, database: &Path) -> Result<(), BackupError> {
    put_in_place(file, database, |f| check_sqlite(f).map(drop))
}

fn copy_consistent<T>(
    database: &Path,
    out: &Path,
    verify: impl Fn(&Path) -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    if !database.is_file() {
        return Err(BackupError::NoDatabase(database.to_path_buf()));
    }
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_path_buf()));
    }
    let connection = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite("open the database to back up"))?;
    connection
        .execute_batch("PRAGMA busy_timeout = 10000;")
        .map_err(sqlite("open the database to back up"))?;
    // Written under a temporary name and renamed: a backup interrupted
    // half-way never looks like a finished one.
    let partial = with_suffix(out, ".partial");
    let _ = fs::remove_file(&partial);
    let target = partial.to_string_lossy().into_owned();
    if let Err(e) = connection.execute("VACUUM INTO ?1", [&target]) {
        let _ = fs::remove_file(&partial);
        return Err(BackupError::Sqlite {
            what: "write the backup",
            source: e,
        });
    }
    drop(connection);
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io("sync", &partial))?;
    let info = match verify(&partial) {
        Ok(info) => info,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, out).map_err(io("rename the backup to", out))?;
    sync_parent(out)?;
    Ok(info)
}

/// A whole, undamaged SQLite file, opened read-only.
fn check_sqlite(file: &Path) -> Result<Connection, BackupError> {
    let mut header = [0u8; 16];
    let read = File::open(file)
        .and_then(|mut f| f.read(&mut header))
        .map_err(io("read", file))?;
    if read < header.len() || &header != b"SQLite format 3\0" {
        return Err(BackupError::NotABackup {
            path: file.to_path_buf(),
            reason: "not an SQLite database".into(),
        });
    }
    let damaged = |detail: String| BackupError::Damaged {
        path: file.to_path_buf(),
        detail,
    };
    let connection = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| damaged(e.to_string()))?;
    // A truncated file fails here: the pages its header promises are gone.
    let verdict: Vec<String> = connection
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| damaged(e.to_string()))?;
    if verdict != ["ok"] {
        return Err(damaged(verdict.join("; ")));
    }
    Ok(connection)
}

/// Checks that `file` is a whole, undamaged custos backup of this schema
/// version, and says what it holds.
pub fn check(file: &Path) -> Result<BackupInfo, BackupError> {
    let bytes = fs::metadata(file).map_err(io("read", file))?.len();
    let connection = check_sqlite(file)?;
    let not_a_backup = |reason: String| BackupError::NotABackup {
        path: file.to_path_buf(),
        reason,
    };
    let damaged = |detail: String| BackupError::Damaged {
        path: file.to_path_buf(),
        detail,
    };
    for table in ["events", "meta", "rule_sets"] {
        let found: Option<String> = connection
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| damaged(e.to_string()))?;
        if found.is_none() {
            return Err(not_a_backup(format!("it has no `{table}` table")));
        }
    }
    let schema_version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| damaged(e.to_string()))?;
    if schema_version != SCHEMA_VERSION {
        return Err(BackupError::OtherVersion {
            path: file.to_path_buf(),
            found: schema_version,
            known: SCHEMA_VERSION,
        });
    }
    let (events, last_seq): (i64, i64) = connection
        .query_row(
            "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| damaged(e.to_string()))?;
    Ok(BackupInfo {
        events: u64::try_from(events).unwrap_or(0),
        last_seq: u64::try_from(last_seq).unwrap_or(0),
        schema_version,
        bytes,
    })
}

/// Restores the backup `file` as the database `database`, which must not
/// exist yet. Checked before and after the copy; renamed into place last.
pub fn restore(file: &Path, database: &Path) -> Result<BackupInfo, BackupError> {
    put_in_place(file, database, check)
}

fn put_in_place<T>(
    file: &Path,
    database: &Path,
    verify: impl Fn(&Path) -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    for existing in [
        database.to_path_buf(),
        with_suffix(database, "-wal"),
        with_suffix(database, "-shm"),
        with_suffix(database, "-journal"),
        with_suffix(database, "-events"),
    ] {
        if existing.exists() {
            return Err(BackupError::TargetNotEmpty(existing));
        }
    }
    verify(file)?;
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let partial = with_suffix(database, ".restoring");
    let _ = fs::remove_file(&partial);
    let copied = copy_synced(file, &partial).and_then(|()| verify(&partial));
    let info = match copied {
        Ok(info) => info,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, database).map_err(io("rename the restored database to", database))?;
    sync_parent(database)?;
    Ok(info)
}

fn copy_synced(from: &Path, to: &Path) -> Result<(), BackupError> {
    let mut source = File::open(from).map_err(io("read", from))?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io("create", to))?;
    std::io::copy(&mut source, &mut target).map_err(io("write", to))?;
    target.flush().map_err(io("write", to))?;
    target.sync_all().map_err(io("sync", to))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// A rename is durable once its directory is synced.
fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventStore, SqliteStore};

    fn store_with_events(dir: &Path, n: u64) -> PathBuf {
        let db = dir.join("custos.db");
        let store = SqliteStore::open(&db).expect("open");
        let ids: Vec<String> = (1..=n).map(|seq| format!("e{seq}")).collect();
        let records: Vec<crate::NewRecord<'_>> = ids
            .iter()
            .zip(1..=n)
            .map(|(id, seq)| crate::NewRecord {
                seq,
                event_id: id,
                account_id: "seller-1",
                event_type: "login",
                event_time: 1_526_000_000 + seq as i64,
                received_at_ms: 1_700_000_000_000,
                event_json: r#"{"event_id":"x","padding":"............................................"}"#,
                decision_json: r#"{"action":"allow"}"#,
            })
            .collect();
        store.append(&records).expect("append");
        db
    }

    #[test]
    fn a_backup_restores_into_a_store_with_every_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store_with_events(dir.path(), 25);
        let out = dir.path().join("backup.db");
        let info = backup(&db, &out).expect("backup");
        assert_eq!((info.events, info.last_seq), (25, 25));
        assert!(matches!(
            backup(&db, &out),
            Err(BackupError::OutputExists(_))
        ));
        let restored = dir.path().join("restored/custos.db");
        let again = restore(&out, &restored).expect("restore");
        assert_eq!(again.events, 25);
        let store = SqliteStore::open(&restored).expect("open the restored store");
        assert_eq!(store.last_seq().expect("last seq"), 25);
        assert!(matches!(
            restore(&out, &restored),
            Err(BackupError::TargetNotEmpty(_))
        ));
    }

    #[test]
    fn a_truncated_or_foreign_file_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store_with_events(dir.path(), 400);
        let out = dir.path().join("backup.db");
        backup(&db, &out).expect("backup");
        let whole = fs::read(&out).expect("read");
        let truncated = dir.path().join("truncated.db");
        fs::write(&truncated, &whole[..whole.len() / 2]).expect("write");
        let target = dir.path().join("restored/custos.db");
        let err = restore(&truncated, &target).expect_err("a truncated backup is refused");
        assert!(matches!(err, BackupError::Damaged { .. }), "{err}");
        let text = dir.path().join("text.db");
        fs::write(&text, "not a database at all").expect("write");
        let err = restore(&text, &target).expect_err("text is refused");
        assert!(err.to_string().contains("not an SQLite database"), "{err}");
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER);"))
            .expect("another database");
        let err = restore(&other, &target).expect_err("another database is refused");
        assert!(err.to_string().contains("no `events` table"), "{err}");
        assert!(!target.exists());
        assert!(!with_suffix(&target, ".restoring").exists());
    }

    #[test]
    fn a_backup_of_another_schema_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store_with_events(dir.path(), 3);
        let out = dir.path().join("backup.db");
        backup(&db, &out).expect("backup");
        Connection::open(&out)
            .and_then(|c| c.pragma_update(None, "user_version", SCHEMA_VERSION + 1))
            .expect("set the version");
        let err = restore(&out, &dir.path().join("r/custos.db")).expect_err("refused");
        assert!(
            matches!(err, BackupError::OtherVersion { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
    }
}
