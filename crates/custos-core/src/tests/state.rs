//! Account state: bounds, replay determinism and snapshots.

use serde_json::json;

use super::{event, examples};
use crate::state::{MAX_KNOWN_IDENTIFIERS, MAX_SESSIONS, NetworkPrefix};
use crate::{Decision, Engine};

#[test]
fn network_prefixes_are_slash_24_and_slash_48() {
    let p = |s: &str| NetworkPrefix::of(s.parse().unwrap()).to_string();
    assert_eq!(p("81.2.69.160"), "81.2.69.0/24");
    assert_eq!(p("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
}

#[test]
fn collections_stay_bounded() {
    let mut engine = Engine::default();
    // Allowed logins (challenged ones teach nothing until verified).
    let allow = Decision::from_reasons("test".into(), 1, vec![], vec![], crate::Action::Block);
    for i in 0..200 {
        engine.apply(&event(json!({"event_id": format!("e{i}"), "type": "login", "account_id": "a",
            "time": format!("2018-05-16T09:{:02}:{:02}Z", i / 60, i % 60), "status": "success",
            "session_id": format!("s{i}"), "ip": format!("10.{}.{}.1", i / 250, i % 250), "device_id": format!("d{i}")})), &allow);
    }
    let state = engine.account("a").unwrap();
    assert_eq!(state.devices.len(), MAX_KNOWN_IDENTIFIERS);
    assert_eq!(state.networks.len(), MAX_KNOWN_IDENTIFIERS);
    assert_eq!(state.sessions.len(), MAX_SESSIONS);
    assert!(
        state.devices.contains("d199") && !state.devices.contains("d0"),
        "least recent is evicted"
    );
    assert_eq!(state.logins_succeeded, 200);
}

#[test]
fn replaying_events_with_their_decisions_rebuilds_the_same_state() {
    let mut live = Engine::default();
    let mut log: Vec<(crate::Event, Decision)> = Vec::new();
    for value in examples() {
        let e = event(value);
        let d = live.process(&e);
        log.push((e, d));
    }
    let mut replayed = Engine::default();
    for (e, d) in &log {
        replayed.apply(e, d);
    }
    assert_eq!(live.snapshot().unwrap(), replayed.snapshot().unwrap());

    let mut restored = Engine::default();
    restored.restore(&live.snapshot().unwrap()).unwrap();
    assert_eq!(restored.account("seller-1"), live.account("seller-1"));
    assert_eq!(restored.snapshot().unwrap(), live.snapshot().unwrap());
}

#[test]
fn snapshots_of_another_format_are_refused() {
    let mut engine = Engine::default();
    let err = engine
        .restore(br#"{"format": 99, "accounts": []}"#)
        .unwrap_err();
    assert!(err.to_string().contains("format 99"), "{err}");
    assert!(engine.restore(b"not json").is_err());
    // The same through a stream.
    let err = engine
        .restore_from(&br#"{"format":99,"accounts":[]}"#[..])
        .unwrap_err();
    assert!(err.to_string().contains("format 99"), "{err}");
    let err = engine
        .restore_from(&br#"{"accounts":[],"format":99}"#[..])
        .unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
    assert!(engine.restore_from(&b"not json"[..]).is_err());
    assert!(engine.restore_from(&b"{\"format\":5"[..]).is_err());
}

/// A reader that hands out at most `step` bytes per read, as a store
/// reading a snapshot chunk by chunk does at chunk edges.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn a_snapshot_streamed_in_and_out_equals_the_one_in_memory() {
    let mut live = Engine::default();
    for value in examples() {
        live.process(&event(value));
    }
    let bytes = live.snapshot().unwrap();
    let mut streamed = Vec::new();
    live.snapshot_to(&mut streamed).unwrap();
    assert_eq!(streamed, bytes);
    for step in [1, 7, 4096] {
        let mut restored = Engine::default();
        restored
            .restore_from(Trickle {
                bytes: &bytes,
                step,
            })
            .unwrap();
        assert_eq!(
            restored.snapshot().unwrap(),
            bytes,
            "read {step} bytes at a time"
        );
    }
    // Trailing garbage after the document is refused, not ignored.
    let mut damaged = bytes.clone();
    damaged.extend_from_slice(b"{}");
    assert!(Engine::default().restore_from(&damaged[..]).is_err());
}

#[test]
fn account_state_and_its_snapshots_keep_no_holder_name() {
    let mut engine = Engine::default();
    engine.process(&event(
        json!({"event_id": "d1", "type": "payout_destination_change",
        "account_id": "a", "time": "2018-05-16T09:30:00Z",
        "destination": {"institution_id": "200000", "account_number": "55551234",
                        "holder_name": "Jane Doe"}}),
    ));
    let state = engine.account("a").unwrap();
    let record = state.destination.as_ref().unwrap();
    assert_eq!(record.destination.holder_name, None);
    assert_eq!(record.destination.account_last4.as_deref(), Some("1234"));
    let snapshot = serde_json::to_string(state).unwrap();
    assert!(!snapshot.contains("Jane"), "{snapshot}");

    // A snapshot written before holder names were dropped loses it on restore.
    let mut old = serde_json::to_value(record).unwrap();
    old["destination"]["holder_name"] = json!("Jane Doe");
    let restored: crate::state::DestinationRecord = serde_json::from_value(old).unwrap();
    assert_eq!(restored.destination.holder_name, None);
    assert_eq!(&restored, record);
}
