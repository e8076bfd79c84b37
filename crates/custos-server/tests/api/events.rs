//! POST /v1/events: every type, batches, idempotency, bad input.

use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn every_documented_example_is_accepted_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let examples = documented_examples();
    let types: std::collections::BTreeSet<&str> = examples
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.len(),
        custos_core::EventType::ALL.len(),
        "docs/events.md covers every type: {types:?}"
    );
    for example in &examples {
        let (status, body) = s.post(example).await;
        assert_eq!(status, 200, "{example} -> {body}");
        assert_eq!(body["event_id"], example["event_id"]);
        assert!(
            ["allow", "challenge", "review", "hold", "block"]
                .contains(&body["action"].as_str().unwrap()),
            "{body}"
        );
        assert!(body["score"].as_u64().unwrap() <= 100);
        assert!(body["reasons"].is_array());
        let (status, stored) = s
            .get(&format!(
                "/v1/events/{}",
                example["event_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(stored["event"]["type"], example["type"]);
        assert_eq!(stored["decision"]["action"], body["action"]);
        assert!(
            !stored.to_string().contains("account_number"),
            "raw account numbers are never stored: {stored}"
        );
    }
    s.server.stop().await.unwrap();
    // Not in the database file, its WAL, the event log or anywhere else in
    // the data directory.
    let mut files = Vec::new();
    let mut dirs = vec![dir.path().to_path_buf()];
    while let Some(next) = dirs.pop() {
        for entry in std::fs::read_dir(next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "log")),
        "the event log is among the files read: {files:?}"
    );
    for file in files {
        let bytes = std::fs::read(file).unwrap();
        for example in &examples {
            for field in ["destination", "previous_destination"] {
                if let Some(number) = example
                    .get(field)
                    .and_then(|d| d.get("account_number"))
                    .and_then(Value::as_str)
                {
                    let compact: String = number
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric())
                        .collect();
                    assert!(
                        !bytes
                            .windows(compact.len())
                            .any(|w| w == compact.as_bytes()),
                        "{compact} found on disk"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_takeover_story_is_challenged_and_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::config(dir.path());
    config.engine.record_features = custos_config::RecordFeatures::All;
    let s = TestServer::start(config).await;
    let (status, answers) = s.post(&Value::Array(story("seller-7"))).await;
    assert_eq!(status, 200, "{answers}");
    let answers = answers.as_array().unwrap();
    let actions: Vec<&str> = answers
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[..20], ["allow"; 20]);
    assert_eq!(actions[20..], ["challenge", "hold", "hold"]);
    assert_eq!(
        answers[22]["reasons"][0]["code"],
        "payout_to_destination_set_in_risky_session"
    );
    // Named features travel with the decisions: the login's risk, and the
    // same risk carried by its session to the destination change.
    let login_risk = answers[20]["features"]["login.risk"].as_f64().unwrap();
    assert!(login_risk > 1.0, "{}", answers[20]);
    assert_eq!(answers[20]["features"]["login.new_device"], true);
    assert_eq!(answers[21]["features"]["session.risk"], login_risk);
    assert_eq!(answers[21]["rules_version"], 1);
    assert_eq!(answers[21]["policy"], "default");
    // Every event of a known account carries the account's features.
    assert_eq!(
        answers[11]["features"]["account.logins"], 6.0,
        "{}",
        answers[11]
    );
    let (status, account) = s.get("/v1/accounts/seller-7").await;
    assert_eq!(status, 200);
    assert_eq!(account["logins_succeeded"], 11);
    assert_eq!(
        account["destination"]["destination"]["account_last4"],
        "1234"
    );
    assert_eq!(account["destination"]["set_in_risky_session"], true);
    assert_eq!(account["money"]["GBP"]["sales"], 100_000);
    assert_eq!(account["money"]["GBP"]["withheld"], 100_000);
    assert_eq!(account["last_notable_decision"]["action"], "hold");
    assert_eq!(
        account["recent_events"][0]["event_id"],
        "seller-7-atk-payout"
    );
    assert_eq!(account["recent_events"][0]["action"], "hold");
    assert_eq!(
        account["recent_events"][2]["features"]["login.risk"],
        login_risk
    );
    // The attacker's login was challenged and never verified: it did not
    // teach the profile (logins_succeeded still counts it).
    assert_eq!(account["login_profile"]["logins"], 10);
    assert_eq!(account["login_profile"]["distinct"]["device"], 1);
    assert!(account.get("profile").is_none());
    let (status, body) = s.get("/v1/accounts/nobody").await;
    assert_error(status, &body, 404, "account_not_found");
    let (status, body) = s.get("/v1/events/nothing").await;
    assert_error(status, &body, 404, "event_not_found");
}

#[tokio::test]
async fn batches_answer_in_the_shape_and_order_they_came() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let events = story("seller-nd");
    let ndjson: String = events.iter().map(|e| format!("{e}\n\n")).collect();
    let (status, ct, text) = s.send(Some("application/x-ndjson"), ndjson).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ct, "application/x-ndjson");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), events.len());
    for (line, event) in lines.iter().zip(&events) {
        assert_eq!(line["event_id"], event["event_id"]);
    }
    assert_eq!(lines.last().unwrap()["action"], "hold");
    // No content type (as curl -d sends) is read as JSON.
    let (status, _, text) = s
        .send(
            None,
            json!({"event_id": "plain", "type": "logout", "account_id": "a",
        "time": "2018-05-01T00:00:00Z"})
            .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn the_same_event_id_returns_the_stored_decision_and_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let events = story("seller-i");
    let (_, first) = s.post(&Value::Array(events.clone())).await;
    let (_, account_before) = s.get("/v1/accounts/seller-i").await;
    let payout = events.last().unwrap();
    let (status, again) = s.post(payout).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["action"], first[22]["action"]);
    assert_eq!(again["reasons"], first[22]["reasons"]);
    // The whole batch again, plus one new event: only the new one counts.
    let mut batch = events.clone();
    batch.push(json!({"event_id": "seller-i-new", "type": "sale", "account_id": "seller-i", "time": at(22, 0),
        "amount": 1, "currency": "GBP"}));
    let (status, answers) = s.post(&Value::Array(batch)).await;
    assert_eq!(status, 200);
    assert_eq!(
        answers
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["duplicate"] == true)
            .count(),
        events.len()
    );
    let (_, account_after) = s.get("/v1/accounts/seller-i").await;
    assert_eq!(
        account_after["money"]["GBP"]["sales"],
        account_before["money"]["GBP"]["sales"].as_u64().unwrap() + 1
    );
    assert_eq!(
        account_after["logins_succeeded"],
        account_before["logins_succeeded"]
    );
    // Same id, different body: 409, and nothing of that request applied.
    let mut changed = payout.clone();
    changed["amount"] = json!(999_999);
    let (status, body) = s.post(&changed).await;
    let message = assert_error(status, &body, 409, "event_id_conflict");
    assert!(message.contains("seller-i-atk-payout"), "{message}");
    let fresh = json!({"event_id": "seller-i-fresh", "type": "sale", "account_id": "seller-i", "time": at(23, 0),
        "amount": 5, "currency": "GBP"});
    let (status, body) = s.post(&json!([fresh, changed])).await;
    assert_error(status, &body, 409, "event_id_conflict");
    assert_eq!(body["index"], 1);
    let (status, _) = s.get("/v1/events/seller-i-fresh").await;
    assert_eq!(
        status, 404,
        "the valid event of a rejected batch was not applied"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.limits.max_body_bytes = 4096;
    config.limits.max_batch_events = 3;
    let s = TestServer::start(config).await;
    let good = json!({"event_id": "g", "type": "sale", "account_id": "a", "time": "2018-05-01T00:00:00Z",
        "amount": 100, "currency": "GBP"});

    let (status, _, text) = s.send(Some("application/json"), "{\"event_id\": ").await;
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = assert_error(status, &body, 400, "invalid_json");
    assert!(message.contains("not valid JSON"), "{message}");

    // Bytes that are not UTF-8 inside a string, in a body and in a line.
    let mut not_utf8 = br#"{"event_id": "g", "note": ""#.to_vec();
    not_utf8.extend_from_slice(&[0xff, b'"', b'}']);
    let (status, _, text) = s.send(Some("application/json"), not_utf8.clone()).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = assert_error(status, &body, 400, "invalid_json");
    assert!(message.contains("not UTF-8 from byte 27"), "{message}");
    let mut lines = format!("{good}\n").into_bytes();
    lines.extend_from_slice(&not_utf8);
    let (status, _, text) = s.send(Some("application/x-ndjson"), lines).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = assert_error(status, &body, 400, "invalid_json");
    assert!(
        message.starts_with("line 2 is not valid JSON: it is not UTF-8"),
        "{message}"
    );
    assert_eq!(body["index"], 1);

    let mut unknown = good.clone();
    unknown["type"] = json!("teleport");
    let (status, body) = s.post(&unknown).await;
    let message = assert_error(status, &body, 400, "unknown_event_type");
    assert_eq!(body["field"], "type");
    assert!(
        message.contains("teleport") && message.contains("payout_destination_change"),
        "{message}"
    );

    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("currency");
    let (status, body) = s.post(&missing).await;
    let message = assert_error(status, &body, 400, "missing_field");
    assert_eq!(body["field"], "currency");
    assert!(message.contains("`currency`"), "{message}");

    let mut mistyped = good.clone();
    mistyped["amount"] = json!("100");
    let (status, body) = s.post(&json!([good, mistyped])).await;
    let message = assert_error(status, &body, 400, "invalid_field");
    assert_eq!(
        (body["field"].as_str(), body["index"].as_u64()),
        (Some("amount"), Some(1))
    );
    assert!(message.starts_with("event 1: field `amount`"), "{message}");
    let (status, _) = s.get("/v1/events/g").await;
    assert_eq!(status, 404, "a rejected batch applies nothing");

    let mut bad_destination = good.clone();
    bad_destination["type"] = json!("payout_destination_change");
    bad_destination["destination"] =
        json!({"institution_id": "200000", "account_number": 12345678});
    let (status, body) = s.post(&bad_destination).await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["field"], "destination.account_number");
    assert!(!body.to_string().contains("12345678"));

    let big = "x".repeat(5000);
    let mut oversize = good.clone();
    oversize["note"] = json!(big);
    let (status, body) = s.post(&oversize).await;
    let message = assert_error(status, &body, 413, "payload_too_large");
    assert!(message.contains("4096"), "{message}");

    let (status, body) = s.post(&json!([good, good, good, good])).await;
    assert_error(status, &body, 413, "batch_too_large");
    let (status, body) = s.post(&json!([])).await;
    assert_error(status, &body, 400, "empty_batch");
    let (status, body) = s.post(&json!("just a string")).await;
    assert_error(status, &body, 400, "invalid_json");
    let (status, body) = s.post(&json!([1])).await;
    assert_error(status, &body, 400, "invalid_event");

    let (status, _, text) = s
        .send(Some("application/x-ndjson"), format!("{good}\nnot json\n"))
        .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = assert_error(status, &body, 400, "invalid_json");
    assert!(message.contains("line 2"), "{message}");

    let (status, _, text) = s.send(Some("application/xml"), "<event/>").await;
    assert_error(
        status,
        &serde_json::from_str(&text).unwrap(),
        415,
        "unsupported_media_type",
    );

    // The server is still healthy and accepts the good event.
    let (status, body) = s.post(&good).await;
    assert_eq!(status, 200, "{body}");
    let health = custos_server::tls::client()
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn events_are_enriched_from_the_configured_databases_and_stored_so() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../custos-enrich/tests/fixtures");
    let mut cfg = super::config(dir.path());
    cfg.geo.city_db = Some(fixtures.join("test-city.mmdb"));
    cfg.geo.asn_db = Some(fixtures.join("test-asn.mmdb"));
    let s = TestServer::start(cfg).await;
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let (status, answer) = s
        .post(
            &json!({"event_id": "geo-1", "type": "login", "account_id": "seller-geo",
            "time": "2018-05-01T08:00:00Z", "status": "success", "ip": "81.2.69.160",
            "user_agent": chrome, "device_id": "laptop",
            // What the client sends itself wins over the databases.
            "enrichment": {"network": {"city": "Leeds"}}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, stored) = s.get("/v1/events/geo-1").await;
    assert_eq!(status, 200, "{stored}");
    let enrichment = &stored["event"]["enrichment"];
    assert_eq!(enrichment["network"]["country"], "GB", "{stored}");
    assert_eq!(enrichment["network"]["city"], "Leeds");
    assert_eq!(enrichment["network"]["asn"], 20712);
    assert_eq!(enrichment["client"]["browser"], "Chrome");
    assert_eq!(enrichment["client"]["browser_version"], "120");
    assert_eq!(enrichment["client"]["os"], "Windows");
    assert_eq!(enrichment["client"]["device_type"], "desktop");
    let (_, account) = s.get("/v1/accounts/seller-geo").await;
    assert_eq!(
        account["login_profile"]["countries"][0]["value"], "GB",
        "{account}"
    );
    assert_eq!(account["login_profile"]["asns"][0]["value"], 20712);

    // A missing database file stops the start with the key and the path.
    let mut broken = super::config(dir.path());
    broken.geo.city_db = Some(dir.path().join("nope.mmdb"));
    s.server.stop().await.unwrap();
    let err = custos_server::start(broken).await.err().expect("refused");
    assert!(err.to_string().contains("geo.city_db"), "{err}");
    assert!(err.to_string().contains("nope.mmdb"), "{err}");
}

/// One event dated 9999 used to be accepted and, since holds expired on
/// the newest event time, released every other seller's holds.
#[tokio::test]
async fn event_times_far_from_the_servers_clock_are_refused_naming_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.engine.max_event_age = Some(std::time::Duration::from_secs(3_650 * 86_400));
    let s = TestServer::start(config).await;
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let sale = |id: &str, time: String| {
        json!({"event_id": id, "type": "sale", "account_id": "seller-t", "time": time,
               "amount": 100, "currency": "GBP"})
    };

    let (status, body) = s
        .post(&sale("t-future", "9999-01-01T00:00:00Z".into()))
        .await;
    let message = assert_error(status, &body, 400, "time_out_of_range");
    assert_eq!(body["field"], "time");
    assert!(
        message.starts_with("time: 9999-01-01T00:00:00Z is ")
            && message.contains("engine.max_future_skew"),
        "{message}"
    );
    // In a batch: its index, and nothing of the batch applied.
    let ok = sale("t-now", rfc3339(now));
    let soon = sale("t-soon", rfc3339(now + time::Duration::minutes(10)));
    let (status, body) = s.post(&json!([ok, soon])).await;
    let message = assert_error(status, &body, 400, "time_out_of_range");
    assert_eq!(
        (body["field"].as_str(), body["index"].as_u64()),
        (Some("time"), Some(1))
    );
    assert!(message.starts_with("event 1: time: "), "{message}");
    // NDJSON likewise.
    let lines = format!("{ok}\n{}\n", sale("t-old", "0001-01-01T00:00:00Z".into()));
    let (status, _, text) = s.send(Some("application/x-ndjson"), lines).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = assert_error(status, &body, 400, "time_out_of_range");
    assert_eq!(body["index"], 1);
    assert!(message.contains("engine.max_event_age"), "{message}");
    for id in ["t-future", "t-now", "t-soon", "t-old"] {
        let (status, _) = s.get(&format!("/v1/events/{id}")).await;
        assert_eq!(status, 404, "{id} was not stored");
    }
    // Within the bounds: a minute ahead (a client clock slightly fast) and
    // an old event inside the configured age.
    let (status, body) = s
        .post(&json!([
            sale("t-fast", rfc3339(now + time::Duration::minutes(1))),
            sale("t-2018", "2018-05-01T00:00:00Z".into())
        ]))
        .await;
    assert_eq!(status, 200, "{body}");
    s.server.stop().await.unwrap();
}
