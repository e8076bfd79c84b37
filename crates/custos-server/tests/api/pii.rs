//! Personal data at rest: what the database file holds, what callers see.

use custos_store::{EventStore, SqliteStore};
use serde_json::{Value, json};

use super::*;

const HOLDER: &str = "Zebulon Quixote-Marchbanks";
const EMAIL: &str = "zebulon.q@example.org";
const PHONE: &str = "+44 7700 900123";
const ACCOUNT_NUMBER: &str = "40917733";

/// Every byte of every file in the data directory (database, WAL, keys),
/// then what the store holds compressed, decompressed: every record's event
/// and decision and the newest snapshot. Compressed bytes would hide a
/// value stored in clear from a search of the files alone.
pub fn data_dir_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    let store = SqliteStore::open(dir.join("custos.db")).unwrap();
    let mut records = 0;
    store
        .scan(0, &mut |record| {
            records += 1;
            bytes.extend(record.event_json.as_bytes());
            bytes.extend(record.decision_json.as_bytes());
            Ok(())
        })
        .unwrap();
    assert!(records > 0, "the data directory holds no records");
    if let Some((_, mut snapshot)) = store.latest_snapshot().unwrap() {
        std::io::Read::read_to_end(&mut snapshot, &mut bytes).unwrap();
    }
    bytes
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn destination_change() -> Value {
    json!({"event_id": "pii-1", "type": "payout_destination_change", "account_id": "pii-seller",
           "time": at(0, 0), "ip": "81.2.69.160",
           "destination": {"institution_id": "236972", "account_number": ACCOUNT_NUMBER,
                           "holder_name": HOLDER},
           "email": EMAIL, "attributes": {"contact": {"phone": PHONE}, "plan": "gold"}})
}

#[tokio::test]
async fn holder_names_and_personal_fields_are_sealed_in_the_file_and_clear_to_callers() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let (status, first) = s.post(&destination_change()).await;
    assert_eq!(status, 200, "{first}");

    let (status, stored) = s.get("/v1/events/pii-1").await;
    assert_eq!(status, 200);
    let event = &stored["event"];
    assert_eq!(event["destination"]["holder_name"], HOLDER);
    assert_eq!(event["attributes"]["email"], EMAIL);
    assert_eq!(event["attributes"]["contact"]["phone"], PHONE);
    assert_eq!(event["attributes"]["plan"], "gold");
    assert_eq!(event["destination"]["account_last4"], "7733");

    // A resend is the same event: the sealed bytes are the same.
    let (status, again) = s.post(&destination_change()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["seq"], first["seq"]);

    // Stopped (snapshot written, WAL checkpointed): nothing in the data
    // directory holds the personal values or the account number in clear.
    s.server.stop().await.unwrap();
    let bytes = data_dir_bytes(dir.path());
    assert!(contains(&bytes, "enc:v1:"), "the event is stored, sealed");
    assert!(contains(&bytes, "gold"), "what is not personal stays clear");
    for clear in [HOLDER, "Zebulon", EMAIL, PHONE, ACCOUNT_NUMBER] {
        assert!(!contains(&bytes, clear), "{clear} is stored in clear");
    }

    // After a restart the same holds: callers read clear text, a resend is
    // still a duplicate (recovery opened the sealed values).
    let s = TestServer::in_dir(dir.path()).await;
    let (_, after) = s.get("/v1/events/pii-1").await;
    assert_eq!(after, stored);
    let (status, again) = s.post(&destination_change()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    // The same id with another holder name is another event.
    let mut changed = destination_change();
    changed["destination"]["holder_name"] = json!("Someone Else");
    let (status, body) = s.post(&changed).await;
    assert_error(status, &body, 409, "event_id_conflict");
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_store_opened_with_another_pii_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.secrets.pii_key = Some("the-first-pii-key-0123456789".into());
    let s = TestServer::start(cfg.clone()).await;
    let (status, _) = s.post(&destination_change()).await;
    assert_eq!(status, 200);
    s.server.stop().await.unwrap();
    assert!(
        !dir.path().join(custos_config::PII_KEY_FILE).exists(),
        "a key from the environment is not written into the data directory"
    );
    cfg.secrets.pii_key = Some("another-pii-key-0123456789".into());
    let err = custos_server::start(cfg).await.err().expect("refused");
    let err = format!("{err:#}");
    assert!(err.contains("pii key"), "{err}");
}

#[tokio::test]
async fn custom_fields_named_like_account_numbers_are_refused_on_v1_as_on_sift() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let mut event = destination_change();
    event["payout_iban"] = json!("GB29NWBK60161331926819");
    let (status, body) = s.post(&event).await;
    let message = assert_error(status, &body, 400, "invalid_field");
    assert!(message.contains("payout_iban"), "{message}");
    assert!(!message.contains("60161331926819"), "{message}");
    s.server.stop().await.unwrap();
}
