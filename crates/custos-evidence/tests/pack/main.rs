//! A pack built from a small hand-written log: scope, money, CSV safety,
//! and verification that fails when any byte changes.

use std::io::Read as _;

use custos_core::campaigns::Campaign;
use custos_core::{DestinationTokenizer, EventParser};
use custos_evidence::{ExportOptions, export_campaign, verify};
use custos_store::{EventStore, NewRecord, SqliteStore};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000;
const HOLDER: &str = "=Evil, \"Corp\"\nМария 王";

fn time(at: i64) -> String {
    custos_evidence::pack::rfc3339(at)
}

fn event(id: &str, account: &str, ty: &str, at: i64, extra: Value) -> Value {
    let mut e = json!({
        "event_id": id, "type": ty, "account_id": account, "time": time(at),
        "session_id": format!("s-{account}-{}", if id.contains("honest") { "h" } else { "x" }),
        "ip": "203.0.113.7", "device_id": "dev-attacker",
        "user_agent": "Mozilla/5.0 (attack)",
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut e, extra) {
        map.extend(more);
    }
    e
}

fn decision(action: &str, effects: Value) -> Value {
    json!({"action": action, "score": 0, "reasons": [], "shadow": [], "policy": "default",
           "rules_version": 3, "features": {}, "effects": effects})
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    campaign: Campaign,
    parser: EventParser,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("store");
    let dest = json!({"institution_id": "MULEBANK", "account_token": "tk_0123456789abcdef0123456789abcdef",
                      "account_last4": "4321", "holder_name": HOLDER});
    let records = [
        (
            "e1",
            "victim",
            "login",
            T0,
            event("e1", "victim", "login", T0, json!({"status": "success"})),
            decision("challenge", json!([])),
        ),
        (
            "e2",
            "victim",
            "payout_destination_change",
            T0 + 60,
            event(
                "e2",
                "victim",
                "payout_destination_change",
                T0 + 60,
                json!({"destination": dest}),
            ),
            decision("review", json!([])),
        ),
        (
            "e3",
            "victim",
            "payout",
            T0 + 120,
            event(
                "e3",
                "victim",
                "payout",
                T0 + 120,
                json!({"payout_id": "p1", "amount": 5000, "currency": "EUR", "source": "sales"}),
            ),
            decision("allow", json!([])),
        ),
        (
            "e4",
            "victim",
            "payout",
            T0 + 180,
            event(
                "e4",
                "victim",
                "payout",
                T0 + 180,
                json!({"payout_id": "p2", "amount": 7000, "currency": "EUR", "source": "sales"}),
            ),
            decision("hold", json!([])),
        ),
        (
            "e5",
            "victim",
            "label",
            T0 + 240,
            event("e5", "victim", "label", T0 + 240, json!({"label": "fraud"})),
            decision(
                "allow",
                json!([{"type": "hold.cancelled", "data": {"account_id": "victim", "hold_id": "p2"}}]),
            ),
        ),
        // An application moves no money: it is an event of the pack, not a
        // row of its money trail (its disbursement would be).
        (
            "e6",
            "victim",
            "loan_application",
            T0 + 200,
            event(
                "e6",
                "victim",
                "loan_application",
                T0 + 200,
                json!({"loan_id": "l1", "amount": 1_748_564, "currency": "EUR"}),
            ),
            decision("allow", json!([])),
        ),
        (
            "honest1",
            "honest",
            "payout",
            T0 + 130,
            event(
                "honest1",
                "honest",
                "payout",
                T0 + 130,
                json!({"payout_id": "hp", "amount": 999, "currency": "EUR", "source": "sales"}),
            ),
            decision("allow", json!([])),
        ),
    ];
    let texts: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.4.to_string(), r.5.to_string()))
        .collect();
    let new: Vec<NewRecord<'_>> = records
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(i, (r, (e, d)))| NewRecord {
            seq: i as u64 + 1,
            event_id: r.0,
            account_id: r.1,
            event_type: r.2,
            event_time: r.3,
            received_at_ms: r.3 * 1000,
            event_json: e,
            decision_json: d,
        })
        .collect();
    store.append(&new).expect("append");
    let campaign: Campaign = serde_json::from_value(json!({
        "id": "cmp_1", "status": "suspected", "detected_at": time(T0 + 60), "last_activity": time(T0 + 240),
        "accounts": [{"account_id": "victim", "joined_at": time(T0 + 60), "via": ["shared_destination"], "cleared": false}],
        "destinations": [], "institutions": ["MULEBANK"],
        "links": {"shared_destination": 1, "shared_device": 0, "shared_ip": 0, "shared_network": 0, "institution_burst": 0},
        "money": {}, "timeline": [{"at": time(T0 + 60), "event_id": "e2", "account_id": "victim", "kind": "sensitive_change", "detail": "<b>destination</b>"}],
    }))
    .expect("a campaign");
    let parser = EventParser::new(DestinationTokenizer::new(&[7u8; 32]).expect("token key"));
    Fixture {
        _dir: dir,
        store,
        campaign,
        parser,
    }
}

fn build(f: &Fixture) -> (Vec<u8>, tempfile::TempDir) {
    let keys = tempfile::tempdir().expect("temp dir");
    let key = custos_evidence::load_or_create_signing_key(keys.path()).expect("key");
    let mut out = Vec::new();
    let mut options = ExportOptions::now("test");
    options.margin_secs = 3600;
    export_campaign(&f.campaign, &f.store, &f.parser, &key, &options, &mut out).expect("export");
    (out, keys)
}

fn file_of(pack: &[u8], name: &str) -> String {
    let mut archive = tar::Archive::new(pack);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_string_lossy() == name {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("utf-8");
            return text;
        }
    }
    panic!("{name} not in the pack");
}

#[test]
fn the_pack_holds_only_members_and_their_money_with_fates() {
    let f = fixture();
    let (pack, _keys) = build(&f);
    let events = file_of(&pack, "events.ndjson");
    assert_eq!(events.lines().count(), 6, "{events}");
    assert!(!events.contains("honest"));
    for line in events.lines() {
        let v: Value = serde_json::from_str(line).expect("each line is JSON");
        let stored = f
            .store
            .get_event(v["event_id"].as_str().expect("id"))
            .expect("read")
            .expect("stored");
        assert_eq!(
            v["event"].to_string(),
            serde_json::from_str::<Value>(&stored.event_json)
                .expect("json")
                .to_string()
        );
    }
    let trail = file_of(&pack, "money-trail.csv");
    let mut reader = csv::Reader::from_reader(trail.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 2, "{trail}");
    assert!(!trail.contains("1748564"), "{trail}");
    let headers = reader.headers().expect("headers").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    assert_eq!(&rows[0][col("fate")], "paid");
    assert_eq!(&rows[1][col("fate")], "cancelled");
    assert_eq!(&rows[0][col("destination_set_by_event")], "e2");
    // The attacker's holder name: neutralised, and otherwise intact.
    assert_eq!(&rows[0][col("holder_name")], &format!("'{HOLDER}"));
    let victims = file_of(&pack, "victims.csv");
    assert!(victims.contains("victim") && !victims.contains("honest"));
    let mut reader = csv::Reader::from_reader(victims.as_bytes());
    let row = reader.records().next().expect("a victim").expect("row");
    assert_eq!(
        (&row[6], &row[7], &row[8], &row[9]),
        ("5000", "5000", "0", "7000")
    );
    let summary = file_of(&pack, "summary.html");
    assert!(
        summary.contains("&lt;b&gt;destination&lt;/b&gt;") && !summary.contains("<b>destination")
    );
    assert!(summary.contains("<code>e2</code>"));
    let artefacts = file_of(&pack, "artefacts.csv");
    assert!(artefacts.contains("203.0.113.0/24") && artefacts.contains("dev-attacker"));
    let manifest: Value = serde_json::from_str(&file_of(&pack, "manifest.json")).expect("manifest");
    assert_eq!(manifest["scope"]["id"], "cmp_1");
    assert_eq!(manifest["rules_versions"], json!([3]));
}

#[test]
fn verification_passes_and_fails_when_any_byte_of_any_file_changes() {
    let f = fixture();
    let (pack, keys) = build(&f);
    let public = custos_evidence::sign::public_key_hex(
        &custos_evidence::load_or_create_signing_key(keys.path()).expect("key"),
    );
    let report = verify(pack.as_slice(), Some(&public));
    assert!(report.passed(), "{:?}", report.failures);
    assert_eq!(report.ok_files.len(), custos_evidence::FILES.len());

    // Flip one byte inside each file's data block in turn.
    let mut offset = 0;
    let mut names = Vec::new();
    {
        let mut archive = tar::Archive::new(pack.as_slice());
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            names.push((
                entry.path().expect("path").to_string_lossy().into_owned(),
                entry.raw_file_position() as usize,
                entry.size() as usize,
            ));
        }
    }
    for (name, start, size) in &names {
        assert!(*size > 0, "{name} is empty");
        let mut tampered = pack.clone();
        tampered[start + size / 2] ^= 0x01;
        let report = verify(tampered.as_slice(), Some(&public));
        assert!(!report.passed(), "changing {name} went unnoticed");
        assert!(
            report.failures.iter().any(|m| m.contains(name.as_str())
                || (name == "manifest.json" && m.contains("manifest"))),
            "{name}: {:?}",
            report.failures
        );
        offset += 1;
    }
    assert_eq!(offset, 8);

    // Another key's pack, checked against ours, fails.
    let other = tempfile::tempdir().expect("temp dir");
    let other_key = custos_evidence::load_or_create_signing_key(other.path()).expect("key");
    let report = verify(
        pack.as_slice(),
        Some(&custos_evidence::sign::public_key_hex(&other_key)),
    );
    assert!(!report.passed());
    // Without a key, the key inside is used and the pack still checks out.
    assert!(verify(pack.as_slice(), None).passed());
}
