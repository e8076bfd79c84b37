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

use crate::{EventStore, NewRecord, StoreError};

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

/// The newest snapshot wins; old ones may go.
pub fn snapshots_and_meta(store: &dyn EventStore) {
    assert!(store.latest_snapshot().unwrap().is_none());
    store.save_snapshot(10, b"ten").unwrap();
    store.save_snapshot(30, b"thirty").unwrap();
    store.save_snapshot(20, b"twenty").unwrap();
    assert_eq!(
        store.latest_snapshot().unwrap(),
        Some((30, b"thirty".to_vec()))
    );
    assert_eq!(store.get_meta("k").unwrap(), None);
    store.set_meta("k", "v1").unwrap();
    store.set_meta("k", "v2").unwrap();
    assert_eq!(store.get_meta("k").unwrap().as_deref(), Some("v2"));
}

/// Generates one `#[test]` per suite function for a backend.
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
                snapshots_and_meta,
                rule_sets_are_versioned);
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
