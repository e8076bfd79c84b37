//! Input limits over HTTP: whatever `/v1/events` acknowledges must read back
//! after a restart, and what it refuses is a 400 naming the field.

use serde_json::{Value, json};

use crate::{TestServer, assert_error, config};

fn sale(id: &str) -> Value {
    json!({"event_id": id, "type": "sale", "account_id": "seller-in", "amount": 100,
           "currency": "GBP", "time": "2018-05-16T09:30:00Z"})
}

fn nested(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = json!({ "n": value });
    }
    value
}

/// Posts `event` and expects a 400 of type `invalid_request` naming `field`;
/// returns the message.
async fn refused(s: &TestServer, event: &Value, field: &str) -> String {
    let (status, body) = s.post(event).await;
    let message = assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["type"], "invalid_request", "{body}");
    assert_eq!(body["field"], field, "{body}");
    message
}

#[tokio::test]
async fn custom_fields_too_deep_are_refused_and_what_is_accepted_reads_back_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.engine.record_features = custos_config::RecordFeatures::All;
    let s = TestServer::start(config).await;

    // 126 levels: answered 200 before, then unreadable (`"event": null`,
    // a 503 on resend, and no restart).
    let mut deep = sale("deep");
    deep["deep"] = nested(126);
    let message = refused(&s, &deep, "deep.n.n.n.n.n.n.n.n.n.n.n.n.n.n.n.n").await;
    assert!(message.contains("nest more than 16 deep"), "{message}");

    // The same line in NDJSON, after a good one: nothing is applied.
    let lines = format!("{}\n{}\n", sale("nd-good"), deep);
    let (status, _, text) = s.send(Some("application/x-ndjson"), lines).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(
        (body["index"].as_u64(), body["type"].as_str()),
        (Some(1), Some("invalid_request"))
    );
    let (status, _) = s.get("/v1/events/nd-good").await;
    assert_eq!(status, 404);

    // A latitude past the globe made a travel speed of infinity, stored as
    // null when every feature is recorded.
    let mut far = json!({"event_id": "far", "type": "login", "account_id": "seller-in",
        "status": "success", "time": "2018-05-16T09:30:00Z", "ip": "81.2.69.160",
        "enrichment": {"network": {"latitude": 1e308, "longitude": 0.0}}});
    let message = refused(&s, &far, "enrichment.network.latitude").await;
    assert!(message.contains("-90 to 90"), "{message}");

    // At the limits: accepted, and identical after a restart.
    let mut edge = sale("edge");
    edge["deep"] = nested(16);
    edge["note"] = json!("é".repeat(1024));
    edge["ratio"] = json!(0.1 + 0.2);
    let (status, body) = s.post(&edge).await;
    assert_eq!(status, 200, "{body}");
    far["event_id"] = json!("near");
    far["enrichment"]["network"]["latitude"] = json!(51.5);
    let (status, body) = s.post(&far).await;
    assert_eq!(status, 200, "{body}");
    let (_, before_edge) = s.get("/v1/events/edge").await;
    let (_, before_near) = s.get("/v1/events/near").await;
    assert_eq!(before_edge["event"]["attributes"]["deep"], nested(16));
    assert_eq!(
        before_edge["event"]["attributes"]["ratio"],
        json!(0.1 + 0.2)
    );
    let s = s.restart().await;
    let (status, after_edge) = s.get("/v1/events/edge").await;
    assert_eq!(status, 200);
    assert_eq!(after_edge, before_edge);
    let (_, after_near) = s.get("/v1/events/near").await;
    assert_eq!(after_near, before_near);
    for features in [
        &after_edge["decision"]["features"],
        &after_near["decision"]["features"],
    ] {
        for (name, value) in features.as_object().unwrap() {
            assert!(!value.is_null(), "feature {name} stored as null");
        }
    }
    // A resend is the same event, not a 503.
    let (status, body) = s.post(&edge).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn times_at_the_edge_of_the_calendar_are_400s_not_panics_or_500s() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Without the server's own time bounds the parser must still refuse.
    config.engine.max_future_skew = None;
    config.engine.max_event_age = None;
    let s = TestServer::start(config).await;
    for (id, time) in [
        ("late", "9999-12-31T23:59:59-01:00"),
        ("early", "0000-01-01T00:00:00+01:00"),
    ] {
        let mut event = sale(id);
        event["time"] = json!(time);
        let message = refused(&s, &event, "time").await;
        assert!(
            message.contains("outside the years 0000 to 9999"),
            "{message}"
        );
    }
    // The connection survived and the server still answers.
    let (status, body) = s.post(&sale("fine")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn control_characters_in_ids_and_bank_number_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    for (field, value) in [
        ("account_id", "seller\u{1b}[2J"),
        ("event_id", "e\u{0}1"),
        ("session_id", "s\u{9b}1"),
    ] {
        let mut event = sale("ctl");
        event[field] = json!(value);
        let message = refused(&s, &event, field).await;
        assert!(message.contains("control characters"), "{message}");
    }
    let mut event = sale("bank");
    event["iban"] = json!("GB29NWBK60161331926819");
    let message = refused(&s, &event, "iban").await;
    assert!(!message.contains("GB29"), "{message}");
    let (status, _) = s.get("/v1/events/bank").await;
    assert_eq!(status, 404);
}
