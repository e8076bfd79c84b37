//! The behaviour every [`EventStore`] backend must show, as plain functions
//! and a macro that turns them into `#[test]`s for one backend:
//!
//! ```text
//! custos_store::store_test_suite!(sqlite, {
//!     let dir = tempfile::tempdir().unwrap();
//!     (dir, SqliteStore::open(dir.path().join("db")).unwrap())
//! });
//! ```
//!
//! The block must evaluate to `(guard, store)` for a new, empty store; the
//! guard is dropped after the test (a temporary directory, a schema to drop).

use std::io::Read;

use crate::{
    EventStore, NewRecord, NewWebhook, SNAPSHOT_CHUNK_BYTES, StoreError, WebhookFailure,
    WebhookState,
};

fn record<'a>(seq: u64, event_id: &'a str, account_id: &'a str) -> NewRecord<'a> {
    NewRecord {
        seq,
        event_id,
        account_id,
        event_type: "login",
        event_time: 1_526_000_000 + seq as i64,
        received_at_ms: 1_700_000_000_000,
        event_json: r#"{"event_id":"x"}"#,
        decision_json: r#"{"action":"allow"}"#,
    }
}

/// Appended records can be read back by id, by account and in order.
pub fn append_and_read(store: &dyn EventStore) {
    assert_eq!(store.last_seq().unwrap(), 0);
    assert!(store.get_event("a1").unwrap().is_none());
    store
        .append(&[record(1, "a1", "acct-a"), record(2, "b1", "acct-b")])
        .unwrap();
    store.append(&[record(3, "a2", "acct-a")]).unwrap();
    let a1 = store.get_event("a1").unwrap().unwrap();
    assert_eq!(
        (a1.seq, a1.account_id.as_str(), a1.event_time),
        (1, "acct-a", 1_526_000_001)
    );
    assert_eq!(a1.decision_json, r#"{"action":"allow"}"#);
    assert_eq!(store.last_seq().unwrap(), 3);
    assert_eq!(store.event_count().unwrap(), 3);
    let recent: Vec<u64> = store
        .account_events("acct-a", 10)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(recent, [3, 1]);
    assert_eq!(store.account_events("acct-a", 1).unwrap().len(), 1);
    let mut seen = Vec::new();
    store
        .scan(1, &mut |r| {
            seen.push(r.seq);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, [2, 3]);
    let mut ids = Vec::new();
    store
        .scan_event_ids(&mut |id| ids.push(id.to_string()))
        .unwrap();
    ids.sort();
    assert_eq!(ids, ["a1", "a2", "b1"]);
}

/// A group with a duplicate event id or seq is rejected whole.
pub fn duplicate_rejects_the_whole_group(store: &dyn EventStore) {
    store.append(&[record(1, "a1", "acct")]).unwrap();
    let err = store
        .append(&[record(2, "fresh", "acct"), record(3, "a1", "acct")])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Duplicate { ref event_id, seq: 3 } if event_id == "a1"),
        "{err:?}"
    );
    assert!(
        store.get_event("fresh").unwrap().is_none(),
        "nothing of the failed group is stored"
    );
    assert!(store.append(&[record(1, "other", "acct")]).is_err());
    assert_eq!(store.event_count().unwrap(), 1);
}

/// A visitor error stops a scan and comes back to the caller.
pub fn scan_stops_on_visitor_error(store: &dyn EventStore) {
    store
        .append(&[
            record(1, "a", "x"),
            record(2, "b", "x"),
            record(3, "c", "x"),
        ])
        .unwrap();
    let mut visited = 0;
    let err = store
        .scan(0, &mut |_| {
            visited += 1;
            Err(StoreError::Visitor("stop".into()))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Visitor(_)));
    assert_eq!(visited, 1);
}

/// An account scan visits those accounts' records only, in log order
/// across accounts, past a page of records, and stops on a visitor error.
pub fn scan_accounts_reads_those_accounts_in_log_order(store: &dyn EventStore) {
    let names: Vec<String> = (0..2_600).map(|i| format!("e{i}")).collect();
    let accounts = ["a", "b", "c", "d"];
    // Four accounts interleaved; two of them asked for, and one with none.
    let records: Vec<NewRecord<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, id)| record(i as u64 + 1, id, accounts[(i * 7 + i / 5) % 4]))
        .collect();
    store.append(&records).unwrap();
    let wanted: std::collections::BTreeSet<String> =
        ["a", "b", "nobody"].map(String::from).into_iter().collect();
    let mut seen = Vec::new();
    store
        .scan_accounts(&wanted, &mut |r| {
            seen.push((r.seq, r.account_id.clone(), r.event_id.clone()));
            Ok(())
        })
        .unwrap();
    let expected: Vec<(u64, String, String)> = records
        .iter()
        .filter(|r| wanted.contains(r.account_id))
        .map(|r| (r.seq, r.account_id.to_string(), r.event_id.to_string()))
        .collect();
    assert!(expected.len() > 1_100, "{}", expected.len());
    assert_eq!(seen, expected);
    let mut visited = 0;
    let err = store
        .scan_accounts(&wanted, &mut |_| {
            visited += 1;
            Err(StoreError::Visitor("stop".into()))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Visitor(_)));
    assert_eq!(visited, 1);
    let mut none = 0;
    store
        .scan_accounts(&Default::default(), &mut |_| {
            none += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(none, 0);
}

/// The newest complete snapshot and its bytes, read to the end.
fn latest(store: &dyn EventStore) -> Option<(u64, Vec<u8>)> {
    let (seq, mut reader) = store.latest_snapshot().unwrap()?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    Some((seq, bytes))
}

/// Bytes that differ from chunk to chunk, so a chunk read twice or out of
/// order shows, and that do not compress (xorshift64), so they are stored
/// as about as many bytes as given.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect()
}

/// A snapshot source that fails after `good` bytes, as a serializer that
/// runs out of memory or a disk that fills up would.
struct FailingSource {
    bytes: Vec<u8>,
    at: usize,
}

impl std::io::Read for FailingSource {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.bytes.len() {
            return Err(std::io::Error::other("disk full"));
        }
        let n = buf.len().min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The newest snapshot wins; old ones may go.
pub fn snapshots_and_meta(store: &dyn EventStore) {
    assert!(store.latest_snapshot().unwrap().is_none());
    store.save_snapshot(10, &mut &b"ten"[..]).unwrap();
    store.save_snapshot(30, &mut &b"thirty"[..]).unwrap();
    store.save_snapshot(20, &mut &b"twenty"[..]).unwrap();
    assert_eq!(latest(store), Some((30, b"thirty".to_vec())));
    assert_eq!(store.get_meta("k").unwrap(), None);
    store.set_meta("k", "v1").unwrap();
    store.set_meta("k", "v2").unwrap();
    assert_eq!(store.get_meta("k").unwrap().as_deref(), Some("v2"));
}

/// A snapshot larger than several chunks reads back byte for byte, and an
/// empty one is a snapshot too. `bytes` counts what is stored: about as
/// many bytes as were given for bytes that do not compress, far fewer for
/// a state that repeats itself as JSON does.
pub fn snapshot_chunks_round_trip(store: &dyn EventStore) {
    let big = pattern(2 * SNAPSHOT_CHUNK_BYTES + 12_345, 7);
    let info = store.save_snapshot(5, &mut &big[..]).unwrap();
    assert_eq!((info.seq, info.chunks), (5, 3));
    assert!(
        info.bytes.abs_diff(big.len() as u64) < big.len() as u64 / 100,
        "{} bytes stored for {} that do not compress",
        info.bytes,
        big.len()
    );
    let (seq, bytes) = latest(store).unwrap();
    assert_eq!(seq, 5);
    assert!(bytes == big, "the bytes read back differ");
    let json_lines = "{\"account_id\":\"seller-1\",\"logins\":[1,2,3]}\n"
        .repeat(SNAPSHOT_CHUNK_BYTES / 20)
        .into_bytes();
    let info = store.save_snapshot(6, &mut &json_lines[..]).unwrap();
    assert_eq!(info.chunks, 1);
    assert!(info.bytes < json_lines.len() as u64 / 10, "{info:?}");
    assert!(latest(store).unwrap().1 == json_lines);
    assert!(store.save_snapshot(7, &mut &b""[..]).unwrap().bytes < 100);
    assert_eq!(latest(store), Some((7, Vec::new())));
}

/// A save that fails part way leaves no snapshot behind: the newest
/// complete one is still the one read, and a later save works.
pub fn an_incomplete_snapshot_is_ignored(store: &dyn EventStore) {
    store.save_snapshot(10, &mut &b"ten"[..]).unwrap();
    let mut failing = FailingSource {
        bytes: pattern(SNAPSHOT_CHUNK_BYTES + 100, 3),
        at: 0,
    };
    assert!(store.save_snapshot(20, &mut failing).is_err());
    assert_eq!(latest(store), Some((10, b"ten".to_vec())));
    let seqs: Vec<u64> = store.snapshots().unwrap().iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [10]);
    // The same seq can be saved again once the cause is gone.
    store.save_snapshot(20, &mut &b"twenty"[..]).unwrap();
    assert_eq!(latest(store), Some((20, b"twenty".to_vec())));
}

/// Only the newest snapshots are kept; saving one again at the same seq
/// replaces it.
pub fn older_snapshots_are_pruned(store: &dyn EventStore) {
    for seq in 1..=5u64 {
        let bytes = pattern(1000 * seq as usize, seq as u8);
        store.save_snapshot(seq, &mut &bytes[..]).unwrap();
    }
    let kept = store.snapshots().unwrap();
    let seqs: Vec<u64> = kept.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [5, 4]);
    assert!(kept[0].bytes > kept[1].bytes, "{kept:?}");
    store.save_snapshot(5, &mut &b"again"[..]).unwrap();
    assert_eq!(latest(store), Some((5, b"again".to_vec())));
    assert_eq!(store.snapshots().unwrap().len(), 2);
}

/// Rule-set versions are kept, the newest is found, and a version cannot be
/// stored twice.
pub fn rule_sets_are_versioned(store: &dyn EventStore) {
    assert_eq!(store.latest_rule_set().unwrap(), None);
    store
        .save_rule_set(1, 1_700_000_000_000, r#"{"name":"a"}"#)
        .unwrap();
    store
        .save_rule_set(2, 1_700_000_000_001, r#"{"name":"b"}"#)
        .unwrap();
    assert_eq!(
        store.latest_rule_set().unwrap(),
        Some((2, r#"{"name":"b"}"#.to_string()))
    );
    assert!(matches!(
        store.save_rule_set(2, 1_700_000_000_002, r#"{"name":"c"}"#),
        Err(StoreError::Duplicate { .. })
    ));
    assert_eq!(
        store.latest_rule_set().unwrap().unwrap().1,
        r#"{"name":"b"}"#
    );
}

/// `read_after` pages through the log in `seq` order.
pub fn read_after_pages_in_order(store: &dyn EventStore) {
    assert!(store.read_after(0, 10).unwrap().is_empty());
    store
        .append(&[
            record(1, "a", "x"),
            record(2, "b", "y"),
            record(3, "c", "x"),
        ])
        .unwrap();
    let seqs = |after, limit| -> Vec<u64> {
        store
            .read_after(after, limit)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect()
    };
    assert_eq!(seqs(0, 2), [1, 2]);
    assert_eq!(seqs(2, 10), [3]);
    assert!(seqs(3, 10).is_empty());
    assert!(seqs(0, 0).is_empty());
    let first = &store.read_after(1, 1).unwrap()[0];
    assert_eq!(
        (first.event_id.as_str(), first.account_id.as_str()),
        ("b", "y")
    );
}

fn webhook<'a>(endpoint: &'a str, webhook_id: &'a str, created_ms: i64) -> NewWebhook<'a> {
    NewWebhook {
        endpoint,
        webhook_id,
        webhook_type: "decision.created",
        payload: r#"{"id":"x"}"#,
        created_ms,
    }
}

fn due_ids(store: &dyn EventStore, endpoint: &str, now_ms: i64) -> Vec<String> {
    store
        .due_webhooks(endpoint, now_ms, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.webhook_id)
        .collect()
}

/// Rows and the cursor arrive together; the cursor never moves back.
pub fn outbox_enqueue_moves_the_cursor(store: &dyn EventStore) {
    assert_eq!(store.webhook_cursor().unwrap(), None, "never set up");
    assert_eq!(store.enqueue_webhooks(&[], 0).unwrap(), 0);
    assert_eq!(store.webhook_cursor().unwrap(), Some(0));
    let rows = [webhook("a", "1.0", 1_000), webhook("b", "1.0", 1_000)];
    assert_eq!(store.enqueue_webhooks(&rows, 5).unwrap(), 2);
    assert_eq!(store.webhook_cursor().unwrap(), Some(5));
    let due = store.due_webhooks("a", 1_000, 10).unwrap();
    assert_eq!(due.len(), 1);
    let row = &due[0];
    assert_eq!(
        (
            row.endpoint.as_str(),
            row.webhook_id.as_str(),
            row.webhook_type.as_str(),
            row.payload.as_str(),
        ),
        ("a", "1.0", "decision.created", r#"{"id":"x"}"#)
    );
    assert_eq!(
        (row.state, row.attempts, row.created_ms, row.next_attempt_ms),
        (WebhookState::Pending, 0, 1_000, 1_000)
    );
    assert_eq!((row.last_error.as_deref(), row.finished_ms), (None, None));
    assert!(
        store.due_webhooks("a", 999, 10).unwrap().is_empty(),
        "not due before it was created"
    );
    store.enqueue_webhooks(&[], 3).unwrap();
    assert_eq!(store.webhook_cursor().unwrap(), Some(5), "never backwards");
}

/// Enqueueing the same rows again (after a crash between reading the log
/// and moving the cursor) adds nothing and changes no row.
pub fn outbox_reenqueue_is_idempotent(store: &dyn EventStore) {
    let rows = [webhook("a", "7.0", 1_000), webhook("a", "7.1", 1_000)];
    assert_eq!(store.enqueue_webhooks(&rows, 7).unwrap(), 2);
    let delivered = store.due_webhooks("a", 1_000, 10).unwrap()[0].id;
    store.webhook_delivered(delivered, 2_000).unwrap();
    let mut again = rows;
    again[0].payload = r#"{"id":"changed"}"#;
    again[1].created_ms = 5_000;
    assert_eq!(store.enqueue_webhooks(&again, 7).unwrap(), 0);
    assert_eq!(
        due_ids(store, "a", 10_000),
        ["7.1"],
        "delivered stays delivered"
    );
    let pending = &store.due_webhooks("a", 10_000, 10).unwrap()[0];
    assert_eq!(
        (pending.created_ms, pending.payload.as_str()),
        (1_000, r#"{"id":"x"}"#),
        "the first copy is kept"
    );
    // The same webhook for another endpoint is another row.
    assert_eq!(
        store
            .enqueue_webhooks(&[webhook("b", "7.0", 1_000)], 7)
            .unwrap(),
        1
    );
    assert_eq!(due_ids(store, "b", 10_000), ["7.0"]);
}

/// Due rows come most overdue first, per endpoint; outcomes move rows out
/// of the due set, reschedule them or bury them.
pub fn outbox_due_rows_and_outcomes(store: &dyn EventStore) {
    store
        .enqueue_webhooks(
            &[
                webhook("a", "3.0", 3_000),
                webhook("a", "1.0", 1_000),
                webhook("a", "2.0", 1_000),
                webhook("b", "1.0", 1_000),
                webhook("a", "9.0", 9_000),
            ],
            9,
        )
        .unwrap();
    assert_eq!(due_ids(store, "a", 5_000), ["1.0", "2.0", "3.0"]);
    assert_eq!(store.due_webhooks("a", 5_000, 2).unwrap().len(), 2);
    assert_eq!(due_ids(store, "b", 5_000), ["1.0"]);
    assert!(due_ids(store, "nobody", 5_000).is_empty());
    let due = store.due_webhooks("a", 5_000, 10).unwrap();
    let (one, two, three) = (due[0].id, due[1].id, due[2].id);

    store.webhook_delivered(one, 5_100).unwrap();
    store
        .webhook_failed(
            two,
            &WebhookFailure {
                attempts: 1,
                at_ms: 5_200,
                next_attempt_ms: 15_200,
                error: "http 500",
                dead: false,
            },
        )
        .unwrap();
    store
        .webhook_failed(
            three,
            &WebhookFailure {
                attempts: 8,
                at_ms: 5_300,
                next_attempt_ms: 0,
                error: "connection refused",
                dead: true,
            },
        )
        .unwrap();
    assert_eq!(
        due_ids(store, "a", 10_000),
        ["9.0"],
        "rescheduled and done rows wait"
    );
    assert_eq!(due_ids(store, "a", 15_200), ["9.0", "2.0"]);
    let retried = store
        .due_webhooks("a", 15_200, 10)
        .unwrap()
        .into_iter()
        .find(|e| e.id == two)
        .unwrap();
    assert_eq!(
        (
            retried.attempts,
            retried.last_attempt_ms,
            retried.last_error.as_deref()
        ),
        (1, Some(5_200), Some("http 500"))
    );

    // Outcomes for rows no longer pending change nothing.
    store.webhook_delivered(three, 6_000).unwrap();
    store
        .webhook_failed(
            one,
            &WebhookFailure {
                attempts: 9,
                at_ms: 6_000,
                next_attempt_ms: 6_000,
                error: "late",
                dead: false,
            },
        )
        .unwrap();
    let dead = store
        .list_webhooks(Some("a"), WebhookState::Dead, 10)
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].id,
            dead[0].attempts,
            dead[0].finished_ms,
            dead[0].last_error.as_deref()
        ),
        (three, 8, Some(5_300), Some("connection refused"))
    );
    let delivered = store
        .list_webhooks(None, WebhookState::Delivered, 10)
        .unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        (
            delivered[0].id,
            delivered[0].attempts,
            delivered[0].finished_ms
        ),
        (one, 1, Some(5_100))
    );
    let pending: Vec<String> = store
        .list_webhooks(None, WebhookState::Pending, 10)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}/{}", e.endpoint, e.webhook_id))
        .collect();
    assert_eq!(pending, ["a/9.0", "b/1.0", "a/2.0"], "newest first");
    assert_eq!(
        store
            .list_webhooks(Some("b"), WebhookState::Pending, 10)
            .unwrap()
            .len(),
        1
    );

    let stats = store.webhook_stats().unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (stats[0].endpoint.as_str(), stats[0].pending, stats[0].dead),
        ("a", 2, 1)
    );
    assert_eq!(
        (stats[0].last_error.as_deref(), stats[0].last_error_ms),
        (Some("connection refused"), Some(5_300)),
        "the latest failure"
    );
    assert_eq!(
        (stats[1].endpoint.as_str(), stats[1].pending, stats[1].dead),
        ("b", 1, 0)
    );
    assert_eq!(stats[1].last_error, None);

    // Pruning removes old delivered rows only.
    assert_eq!(
        store.prune_webhooks(5_100, 100).unwrap(),
        0,
        "strictly before"
    );
    assert_eq!(store.prune_webhooks(1_000_000, 100).unwrap(), 1);
    assert!(
        store
            .list_webhooks(None, WebhookState::Delivered, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_webhooks(None, WebhookState::Dead, 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(due_ids(store, "a", 20_000), ["9.0", "2.0"]);
}

/// The PostgreSQL server the tests use: `CUSTOS_TEST_PG_URL`, else
/// `postgres://postgres@127.0.0.1:5432/test`.
pub fn pg_test_url() -> String {
    std::env::var("CUSTOS_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema of its own on the test server, dropped with everything in it
/// when this is dropped: tests run side by side and leave nothing behind.
#[derive(Debug)]
pub struct PgTestSchema {
    pub url: String,
    pub schema: String,
}

impl Drop for PgTestSchema {
    fn drop(&mut self) {
        let dropped = crate::PgStore::connect_admin(&self.url).and_then(|admin| {
            admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
        });
        if let Err(e) = dropped {
            eprintln!("cannot drop test schema {}: {e}", self.schema);
        }
    }
}

/// A new, empty [`crate::PgStore`] in a schema of its own on the test
/// server. When the server cannot be reached: `None`, after saying so on
/// stderr; under CI (`CI` set) the test fails instead.
pub fn pg_test_store() -> Option<(PgTestSchema, crate::PgStore)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let url = pg_test_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "custos_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    match crate::PgStore::connect_in_schema(&url, Some(&schema)) {
        Ok(store) => Some((PgTestSchema { url, schema }, store)),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED: postgresql store test: cannot reach {url}: {e} (under CI this fails)"
            );
            None
        }
        Err(e) => panic!("postgresql at {url} is required under CI: {e}"),
    }
}

/// Dead rows come back to pending on request, per endpoint or for all,
/// due at once and with their attempts counted afresh; others are left.
pub fn dead_webhooks_can_be_retried(store: &dyn EventStore) {
    store
        .enqueue_webhooks(
            &[
                webhook("a", "1.0", 1_000),
                webhook("b", "1.0", 1_000),
                webhook("a", "2.0", 1_000),
            ],
            2,
        )
        .unwrap();
    let dead = |endpoint: &str, at_ms: i64| {
        let row = store.due_webhooks(endpoint, 5_000, 10).unwrap();
        for entry in row.into_iter().filter(|e| e.webhook_id == "1.0") {
            store
                .webhook_failed(
                    entry.id,
                    &WebhookFailure {
                        attempts: 80,
                        at_ms,
                        next_attempt_ms: 0,
                        error: "tls: unknown issuer",
                        dead: true,
                    },
                )
                .unwrap();
        }
    };
    dead("a", 5_000);
    dead("b", 5_000);
    // Not dead: nothing to retry.
    assert!(store.retry_webhook("2.0", None, 6_000).unwrap().is_empty());
    assert!(store.retry_webhook("9.9", None, 6_000).unwrap().is_empty());
    assert_eq!(store.retry_webhook("1.0", Some("b"), 6_000).unwrap(), ["b"]);
    let revived = store
        .due_webhooks("b", 6_000, 10)
        .unwrap()
        .into_iter()
        .find(|e| e.webhook_id == "1.0")
        .expect("due again");
    assert_eq!(
        (
            revived.state,
            revived.attempts,
            revived.finished_ms,
            revived.last_error.as_deref()
        ),
        (WebhookState::Pending, 0, None, Some("tls: unknown issuer"))
    );
    assert_eq!(
        store
            .list_webhooks(Some("a"), WebhookState::Dead, 10)
            .unwrap()
            .len(),
        1,
        "the other endpoint's row stays dead"
    );
    assert_eq!(store.retry_webhook("1.0", None, 7_000).unwrap(), ["a"]);
    assert!(store.retry_webhook("1.0", None, 7_000).unwrap().is_empty());
}

/// Generates one `#[test]` per suite function for a backend.
#[macro_export]
macro_rules! store_test_suite {
    ($backend:ident, $make:block) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            $crate::store_test_suite!(@tests $make;
                append_and_read,
                duplicate_rejects_the_whole_group,
                scan_stops_on_visitor_error,
                scan_accounts_reads_those_accounts_in_log_order,
                snapshots_and_meta,
                snapshot_chunks_round_trip,
                an_incomplete_snapshot_is_ignored,
                older_snapshots_are_pruned,
                rule_sets_are_versioned,
                read_after_pages_in_order,
                outbox_enqueue_moves_the_cursor,
                outbox_reenqueue_is_idempotent,
                outbox_due_rows_and_outcomes,
                dead_webhooks_can_be_retried);
        }
    };
    (@tests $make:block; $($name:ident),+) => {
        $(
            #[test]
            fn $name() {
                let (_guard, store) = $make;
                $crate::testsuite::$name(&store);
            }
        )+
    };
}
