//! The console's own records: people, the audit trail and four-eyes
//! requests, in `console.db` beside the event log in the data directory.
//!
//! They live in a database of their own, not in the event log's: the log
//! has one writer, the engine thread, whose group commits must not wait
//! behind a login; and `custos users` can change a user while the server
//! runs (SQLite locks the file for the moment of the write). Analyst
//! actions themselves are not kept here: they are `analyst_action` events
//! in the log, like those of the API.
//!
//! The audit trail is append-only: this module has no statement that
//! changes or deletes a row, and triggers in the schema refuse any that
//! another client tries.
//!
//! Every user row carries a `generation`, raised when the user is disabled
//! or their password reset: a session remembers the generation it was
//! opened under and ends when the row's differs, so such a change ends the
//! user's sessions at their next request, even when made by another
//! process.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use custos_config::Role;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The database's file name in the data directory.
pub const CONSOLE_DATABASE_FILE: &str = "console.db";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA busy_timeout = 5000;
CREATE TABLE IF NOT EXISTS users (
    name          TEXT    PRIMARY KEY,
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    generation    INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    address TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_is_not_updated BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS audit_is_not_deleted BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail cannot be changed'); END;
CREATE TABLE IF NOT EXISTS approvals (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    hold_id         TEXT    NOT NULL,
    account_id      TEXT    NOT NULL,
    amount          INTEGER NOT NULL,
    currency        TEXT    NOT NULL,
    requested_by    TEXT    NOT NULL,
    requested_ms    INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    decided_by      TEXT,
    decided_ms      INTEGER,
    decision_reason TEXT
);
CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (status, id);
CREATE TABLE IF NOT EXISTS approval_holds (
    approval_id INTEGER NOT NULL,
    account_id  TEXT    NOT NULL,
    hold_id     TEXT    NOT NULL,
    PRIMARY KEY (approval_id, account_id, hold_id)
);
CREATE TABLE IF NOT EXISTS assignments (
    account_id  TEXT    NOT NULL,
    hold_id     TEXT    NOT NULL,
    assignee    TEXT    NOT NULL,
    assigned_by TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (account_id, hold_id)
);
";

#[derive(Debug, thiserror::Error)]
pub enum ConsoleDbError {
    #[error("console database: {context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("user {0:?} exists already")]
    UserExists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("user name: must be 1 to 64 letters, digits, '.', '_', '-' or '@', is {0:?}")]
    BadName(String),
}

fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> ConsoleDbError {
    move |source| ConsoleDbError::Sqlite { context, source }
}

/// Whether `name` may be a user name.
pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// A console user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
    pub generation: i64,
    pub created_ms: i64,
}

/// A line to append to the audit trail (its id and time are given by the
/// trail).
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub actor: String,
    pub address: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    /// The user (or `cli` for `custos users`).
    pub actor: String,
    /// Where from: the client's address.
    pub address: String,
    /// What was done, e.g. `login`, `login_failed`, `release_requested`.
    pub action: String,
    /// What it was done to: a hold, account, campaign or user.
    pub target: String,
    /// The rest, e.g. the reason given.
    pub detail: String,
}

/// A request that waits for a second person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub id: i64,
    /// `release_payout` (one hold), `release_campaign` (every hold of a
    /// campaign open when it was asked), `dismiss_campaign` or
    /// `rules_change` (install a new rule set).
    pub kind: String,
    pub hold_id: String,
    pub account_id: String,
    pub amount: u64,
    pub currency: String,
    pub requested_by: String,
    pub requested_ms: i64,
    pub reason: String,
    /// `pending`, `approved` or `rejected`; a rules change that could not
    /// be carried out once approved becomes `refused` (stale) or `failed`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    pub decision_reason: Option<String>,
    /// The campaign of a campaign request; empty for a hold's.
    pub campaign_id: String,
    /// What a campaign request covers, in words, as it was asked; for a
    /// rules change, the rules added, removed and changed.
    pub summary: String,
    /// A rules change: the proposed rule file's text. Empty otherwise.
    pub payload: String,
    /// A rules change: the version that was live when it was asked, which
    /// must still be live when it is approved.
    pub base_version: u64,
    /// A rules change once carried out: the version it installed (`v7`).
    pub outcome: String,
}

/// Kinds of request.
pub const RELEASE_PAYOUT: &str = "release_payout";
pub const RELEASE_CAMPAIGN: &str = "release_campaign";
pub const DISMISS_CAMPAIGN: &str = "dismiss_campaign";
pub const RULES_CHANGE: &str = "rules_change";

pub struct ConsoleDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl ConsoleDb {
    /// Opens (creating if needed) the console database in `data_dir`.
    pub fn open_in(data_dir: &Path) -> Result<ConsoleDb, ConsoleDbError> {
        ConsoleDb::open(&data_dir.join(CONSOLE_DATABASE_FILE))
    }

    pub fn open(path: &Path) -> Result<ConsoleDb, ConsoleDbError> {
        let conn = Connection::open(path).map_err(sql("open"))?;
        conn.execute_batch(SCHEMA)
            .map_err(sql("create the schema"))?;
        // Campaign requests came later: a database made before them gains
        // the columns (empty for the requests it holds).
        for (column, definition) in [
            ("campaign_id", "TEXT NOT NULL DEFAULT ''"),
            ("summary", "TEXT NOT NULL DEFAULT ''"),
            // Rules changes came later still.
            ("payload", "TEXT NOT NULL DEFAULT ''"),
            ("base_version", "INTEGER NOT NULL DEFAULT 0"),
            ("outcome", "TEXT NOT NULL DEFAULT ''"),
        ] {
            let present: bool = conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('approvals') WHERE name = ?1",
                    params![column],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(sql("read the schema"))?
                > 0;
            if !present {
                conn.execute_batch(&format!(
                    "ALTER TABLE approvals ADD COLUMN {column} {definition}"
                ))
                .map_err(sql("add a column"))?;
            }
        }
        Ok(ConsoleDb {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // SQLite rolls back an unfinished transaction itself.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<(), ConsoleDbError> {
        if !valid_user_name(name) {
            return Err(ConsoleDbError::BadName(name.to_string()));
        }
        let changed = self
            .conn()
            .execute(
                "INSERT INTO users (name, role, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![name, role.as_str(), password_hash, now_ms()],
            )
            .map_err(sql("add a user"))?;
        if changed == 0 {
            return Err(ConsoleDbError::UserExists(name.to_string()));
        }
        Ok(())
    }

    pub fn user(&self, name: &str) -> Result<Option<User>, ConsoleDbError> {
        self.conn()
            .query_row(
                "SELECT name, role, password_hash, disabled, generation, created_ms
                 FROM users WHERE name = ?1",
                params![name],
                user_row,
            )
            .optional()
            .map_err(sql("read a user"))
    }

    pub fn users(&self) -> Result<Vec<User>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT name, role, password_hash, disabled, generation, created_ms
                 FROM users ORDER BY name",
            )
            .map_err(sql("list users"))?;
        let rows = statement
            .query_map([], user_row)
            .map_err(sql("list users"))?;
        rows.collect::<Result<_, _>>().map_err(sql("list users"))
    }

    /// Disables (or enables) a user; disabling ends their sessions.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), ConsoleDbError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE users SET disabled = ?2, generation = generation + 1 WHERE name = ?1",
                params![name, disabled],
            )
            .map_err(sql("disable a user"))?;
        if changed == 0 {
            return Err(ConsoleDbError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    /// Sets a new password hash; ends the user's sessions.
    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<(), ConsoleDbError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE users SET password_hash = ?2, generation = generation + 1 WHERE name = ?1",
                params![name, password_hash],
            )
            .map_err(sql("reset a password"))?;
        if changed == 0 {
            return Err(ConsoleDbError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    /// Appends to the audit trail.
    pub fn audit(
        &self,
        actor: &str,
        address: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), ConsoleDbError> {
        self.conn()
            .execute(
                "INSERT INTO audit (at_ms, actor, address, action, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now_ms(), actor, address, action, target, detail],
            )
            .map_err(sql("write the audit trail"))?;
        Ok(())
    }

    /// Appends several entries to the audit trail in one transaction.
    pub fn audit_many(&self, rows: &[AuditRow]) -> Result<(), ConsoleDbError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("write the audit trail"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit (at_ms, actor, address, action, target, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql("write the audit trail"))?;
            let at = now_ms();
            for row in rows {
                insert
                    .execute(params![
                        at,
                        row.actor,
                        row.address,
                        row.action,
                        row.target,
                        row.detail
                    ])
                    .map_err(sql("write the audit trail"))?;
            }
        }
        tx.commit().map_err(sql("write the audit trail"))?;
        Ok(())
    }

    /// Audit entries, newest first, with ids below `before` (all when
    /// `None`), at most `limit`.
    pub fn audit_page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT id, at_ms, actor, address, action, target, detail FROM audit
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(sql("read the audit trail"))?;
        let rows = statement
            .query_map(
                params![
                    before.unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                audit_row,
            )
            .map_err(sql("read the audit trail"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read the audit trail"))
    }

    /// Every audit entry, oldest first, one call of `each` per entry.
    pub fn audit_all(&self, mut each: impl FnMut(AuditEntry)) -> Result<(), ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT id, at_ms, actor, address, action, target, detail FROM audit ORDER BY id",
            )
            .map_err(sql("read the audit trail"))?;
        let rows = statement
            .query_map([], audit_row)
            .map_err(sql("read the audit trail"))?;
        for row in rows {
            each(row.map_err(sql("read the audit trail"))?);
        }
        Ok(())
    }

    /// Records a request for a second person; its id. A pending request of
    /// the same kind for the same hold or campaign is answered with its own
    /// id instead of a second one.
    pub fn request_approval(&self, request: &Approval) -> Result<i64, ConsoleDbError> {
        self.request_approval_of(request, &[])
    }

    /// [`Self::request_approval`] for a request that covers `holds`
    /// (account, hold), fixed when asked: approving it acts on those only.
    pub fn request_approval_of(
        &self,
        request: &Approval,
        holds: &[(String, String)],
    ) -> Result<i64, ConsoleDbError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("request an approval"))?;
        let pending: Option<i64> = tx
            .query_row(
                "SELECT id FROM approvals WHERE status = 'pending' AND kind = ?1
                 AND hold_id = ?2 AND account_id = ?3 AND campaign_id = ?4
                 AND payload = ?5 AND base_version = ?6",
                params![
                    request.kind,
                    request.hold_id,
                    request.account_id,
                    request.campaign_id,
                    request.payload,
                    i64::try_from(request.base_version).unwrap_or(i64::MAX)
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("read approvals"))?;
        if let Some(id) = pending {
            return Ok(id);
        }
        tx.execute(
            "INSERT INTO approvals (kind, hold_id, account_id, amount, currency, requested_by,
                 requested_ms, reason, campaign_id, summary, payload, base_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                request.kind,
                request.hold_id,
                request.account_id,
                i64::try_from(request.amount).unwrap_or(i64::MAX),
                request.currency,
                request.requested_by,
                now_ms(),
                request.reason,
                request.campaign_id,
                request.summary,
                request.payload,
                i64::try_from(request.base_version).unwrap_or(i64::MAX)
            ],
        )
        .map_err(sql("request an approval"))?;
        let id = tx.last_insert_rowid();
        for (account_id, hold_id) in holds {
            tx.execute(
                "INSERT OR IGNORE INTO approval_holds (approval_id, account_id, hold_id)
                 VALUES (?1, ?2, ?3)",
                params![id, account_id, hold_id],
            )
            .map_err(sql("request an approval"))?;
        }
        tx.commit().map_err(sql("request an approval"))?;
        Ok(id)
    }

    /// The holds a request covers (account, hold), as fixed when asked.
    pub fn approval_holds(&self, id: i64) -> Result<Vec<(String, String)>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT account_id, hold_id FROM approval_holds WHERE approval_id = ?1
                 ORDER BY account_id, hold_id",
            )
            .map_err(sql("read approvals"))?;
        let rows = statement
            .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql("read approvals"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read approvals"))
    }

    /// The holds covered by pending campaign release requests.
    pub fn pending_campaign_holds(&self) -> Result<Vec<(String, String)>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT h.account_id, h.hold_id FROM approval_holds h
                 JOIN approvals a ON a.id = h.approval_id WHERE a.status = 'pending'",
            )
            .map_err(sql("read approvals"))?;
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql("read approvals"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read approvals"))
    }

    /// Pending requests on one campaign.
    pub fn pending_for_campaign(&self, campaign_id: &str) -> Result<Vec<Approval>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(&format!(
                "{APPROVAL_COLUMNS} WHERE status = 'pending' AND campaign_id = ?1 ORDER BY id"
            ))
            .map_err(sql("list approvals"))?;
        let rows = statement
            .query_map(params![campaign_id], approval_row)
            .map_err(sql("list approvals"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("list approvals"))
    }

    pub fn approval(&self, id: i64) -> Result<Option<Approval>, ConsoleDbError> {
        self.conn()
            .query_row(
                &format!("{APPROVAL_COLUMNS} WHERE id = ?1"),
                params![id],
                approval_row,
            )
            .optional()
            .map_err(sql("read an approval"))
    }

    /// Requests, pending first, then the newest decided ones.
    pub fn approvals(&self, limit: usize) -> Result<Vec<Approval>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(&format!(
                "{APPROVAL_COLUMNS} ORDER BY status != 'pending', id DESC LIMIT ?1"
            ))
            .map_err(sql("list approvals"))?;
        let rows = statement
            .query_map(
                params![i64::try_from(limit).unwrap_or(i64::MAX)],
                approval_row,
            )
            .map_err(sql("list approvals"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("list approvals"))
    }

    /// Gives a hold to `assignee` (replacing whoever had it).
    pub fn assign(
        &self,
        account_id: &str,
        hold_id: &str,
        assignee: &str,
        assigned_by: &str,
    ) -> Result<(), ConsoleDbError> {
        self.conn()
            .execute(
                "INSERT INTO assignments (account_id, hold_id, assignee, assigned_by, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id, hold_id) DO UPDATE SET
                     assignee = excluded.assignee, assigned_by = excluded.assigned_by,
                     at_ms = excluded.at_ms",
                params![account_id, hold_id, assignee, assigned_by, now_ms()],
            )
            .map_err(sql("assign a hold"))?;
        Ok(())
    }

    /// Who has each assigned hold, by (account, hold).
    pub fn assignees(
        &self,
    ) -> Result<std::collections::HashMap<(String, String), String>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare("SELECT account_id, hold_id, assignee FROM assignments")
            .map_err(sql("read assignments"))?;
        let rows = statement
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
            .map_err(sql("read assignments"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read assignments"))
    }

    /// Every pending request.
    pub fn pending(&self) -> Result<Vec<Approval>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(&format!(
                "{APPROVAL_COLUMNS} WHERE status = 'pending' ORDER BY id"
            ))
            .map_err(sql("list approvals"))?;
        let rows = statement
            .query_map([], approval_row)
            .map_err(sql("list approvals"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("list approvals"))
    }

    /// Pending requests on one hold.
    pub fn pending_for_hold(
        &self,
        account_id: &str,
        hold_id: &str,
    ) -> Result<Vec<Approval>, ConsoleDbError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(&format!(
                "{APPROVAL_COLUMNS} WHERE status = 'pending' AND account_id = ?1 AND hold_id = ?2"
            ))
            .map_err(sql("list approvals"))?;
        let rows = statement
            .query_map(params![account_id, hold_id], approval_row)
            .map_err(sql("list approvals"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("list approvals"))
    }

    /// Settles a pending request; false when it was not pending.
    pub fn decide(
        &self,
        id: i64,
        status: &str,
        decided_by: &str,
        reason: &str,
    ) -> Result<bool, ConsoleDbError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE approvals SET status = ?2, decided_by = ?3, decided_ms = ?4,
                     decision_reason = ?5 WHERE id = ?1 AND status = 'pending'",
                params![id, status, decided_by, now_ms(), reason],
            )
            .map_err(sql("decide an approval"))?;
        Ok(changed == 1)
    }

    /// What came of an approved request carried out afterwards: its status
    /// (`approved` stays, `refused` or `failed` replace it) and outcome.
    pub fn record_outcome(
        &self,
        id: i64,
        status: &str,
        outcome: &str,
    ) -> Result<(), ConsoleDbError> {
        self.conn()
            .execute(
                "UPDATE approvals SET status = ?2, outcome = ?3 WHERE id = ?1 AND status = 'approved'",
                params![id, status, outcome],
            )
            .map_err(sql("record an outcome"))?;
        Ok(())
    }

    /// The approved rules change that installed `version`, if one did.
    pub fn rules_change_that_installed(
        &self,
        version: u64,
    ) -> Result<Option<Approval>, ConsoleDbError> {
        self.conn()
            .query_row(
                &format!(
                    "{APPROVAL_COLUMNS} WHERE kind = '{RULES_CHANGE}' AND status = 'approved'
                     AND outcome = ?1"
                ),
                params![format!("v{version}")],
                approval_row,
            )
            .optional()
            .map_err(sql("read an approval"))
    }
}

const APPROVAL_COLUMNS: &str = "SELECT id, kind, hold_id, account_id, amount, currency, \
     requested_by, requested_ms, reason, status, decided_by, decided_ms, decision_reason, \
     campaign_id, summary, payload, base_version, outcome FROM approvals";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(1)?;
    Ok(User {
        name: r.get(0)?,
        // An unknown role (written by a newer version) reads as the least.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        password_hash: r.get(2)?,
        disabled: r.get(3)?,
        generation: r.get(4)?,
        created_ms: r.get(5)?,
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        at_ms: r.get(1)?,
        actor: r.get(2)?,
        address: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        detail: r.get(6)?,
    })
}

fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let amount: i64 = r.get(4)?;
    Ok(Approval {
        id: r.get(0)?,
        kind: r.get(1)?,
        hold_id: r.get(2)?,
        account_id: r.get(3)?,
        amount: u64::try_from(amount).unwrap_or(0),
        currency: r.get(5)?,
        requested_by: r.get(6)?,
        requested_ms: r.get(7)?,
        reason: r.get(8)?,
        status: r.get(9)?,
        decided_by: r.get(10)?,
        decided_ms: r.get(11)?,
        decision_reason: r.get(12)?,
        campaign_id: r.get(13)?,
        summary: r.get(14)?,
        payload: r.get(15)?,
        base_version: u64::try_from(r.get::<_, i64>(16)?).unwrap_or(0),
        outcome: r.get(17)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_once_and_changes_raise_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let db = ConsoleDb::open_in(dir.path()).unwrap();
        db.add_user("ana", Role::Analyst, "h1").unwrap();
        assert!(matches!(
            db.add_user("ana", Role::Lead, "h2"),
            Err(ConsoleDbError::UserExists(_))
        ));
        assert!(matches!(
            db.add_user("a b", Role::Lead, "h2"),
            Err(ConsoleDbError::BadName(_))
        ));
        let before = db.user("ana").unwrap().unwrap();
        assert_eq!((before.role, before.disabled), (Role::Analyst, false));
        db.set_disabled("ana", true).unwrap();
        let after = db.user("ana").unwrap().unwrap();
        assert!(after.disabled);
        assert!(after.generation > before.generation);
        db.set_password("ana", "h3").unwrap();
        assert_eq!(db.user("ana").unwrap().unwrap().password_hash, "h3");
        assert!(matches!(
            db.set_disabled("nobody", true),
            Err(ConsoleDbError::NoSuchUser(_))
        ));
    }

    fn campaign_request(kind: &str, by: &str) -> Approval {
        Approval {
            id: 0,
            kind: kind.into(),
            hold_id: String::new(),
            account_id: String::new(),
            amount: 0,
            currency: String::new(),
            requested_by: by.into(),
            requested_ms: 0,
            reason: "why".into(),
            status: "pending".into(),
            decided_by: None,
            decided_ms: None,
            decision_reason: None,
            campaign_id: "cmp_1".into(),
            summary: "2 open holds".into(),
            payload: String::new(),
            base_version: 0,
            outcome: String::new(),
        }
    }

    #[test]
    fn a_database_from_before_campaign_requests_gains_their_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONSOLE_DATABASE_FILE);
        {
            // The approvals table as it was before.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE approvals (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,
                 hold_id TEXT NOT NULL, account_id TEXT NOT NULL, amount INTEGER NOT NULL,
                 currency TEXT NOT NULL, requested_by TEXT NOT NULL,
                 requested_ms INTEGER NOT NULL, reason TEXT NOT NULL,
                 status TEXT NOT NULL DEFAULT 'pending', decided_by TEXT, decided_ms INTEGER,
                 decision_reason TEXT);
                 INSERT INTO approvals (kind, hold_id, account_id, amount, currency,
                 requested_by, requested_ms, reason)
                 VALUES ('release_payout', 'p1', 'a1', 500, 'GBP', 'ana', 1, 'old');",
            )
            .unwrap();
        }
        let db = ConsoleDb::open(&path).unwrap();
        let old = db.approval(1).unwrap().unwrap();
        assert_eq!(
            (old.kind.as_str(), old.campaign_id.as_str()),
            ("release_payout", "")
        );
        // Opened twice: the columns are added once.
        drop(db);
        let db = ConsoleDb::open(&path).unwrap();
        let holds = vec![
            ("a1".to_string(), "p1".to_string()),
            ("a2".to_string(), "p7".to_string()),
        ];
        let id = db
            .request_approval_of(&campaign_request(RELEASE_CAMPAIGN, "ana"), &holds)
            .unwrap();
        // The same pending request is not asked twice; another kind is.
        assert_eq!(
            db.request_approval_of(&campaign_request(RELEASE_CAMPAIGN, "bob"), &[])
                .unwrap(),
            id
        );
        let dismiss = db
            .request_approval(&campaign_request(DISMISS_CAMPAIGN, "bob"))
            .unwrap();
        assert_ne!(dismiss, id);
        assert_eq!(db.approval_holds(id).unwrap(), holds);
        assert_eq!(db.pending_campaign_holds().unwrap(), holds);
        assert!(db.approval_holds(dismiss).unwrap().is_empty());
        let pending = db.pending_for_campaign("cmp_1").unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].summary, "2 open holds");
        assert!(db.decide(id, "approved", "lea", "ok").unwrap());
        assert!(!db.decide(id, "approved", "lou", "again").unwrap());
        assert!(db.pending_campaign_holds().unwrap().is_empty());
        assert_eq!(db.pending_for_campaign("cmp_1").unwrap().len(), 1);
    }

    #[test]
    fn the_audit_trail_cannot_be_changed_or_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = ConsoleDb::open_in(dir.path()).unwrap();
        db.audit("ana", "127.0.0.1", "login", "ana", "").unwrap();
        db.audit("ana", "127.0.0.1", "logout", "ana", "").unwrap();
        let conn = Connection::open(db.path()).unwrap();
        assert!(conn.execute("UPDATE audit SET actor = 'eve'", []).is_err());
        assert!(conn.execute("DELETE FROM audit", []).is_err());
        let page = db.audit_page(None, 10).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].action, "logout");
        assert_eq!(db.audit_page(Some(page[0].id), 10).unwrap().len(), 1);
    }
}
