//! The Sift-compatible routes over HTTP: Sift's paths, auth styles, answer
//! shapes and status codes, and what each request does in Custos.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{KEY, TestServer};

/// Milliseconds since the epoch, `day` days and `secs` seconds after
/// 2018-05-01 (Sift's `$time`).
fn ms(day: i64, secs: i64) -> i64 {
    (1_525_132_800 + day * 86_400 + secs) * 1000
}

/// Sends a request the way Sift's clients do: no bearer token; HTTP Basic
/// with the key as user name when `basic` is given.
async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    basic: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = s.client.request(method, format!("{}{path}", s.base));
    if let Some(user) = basic {
        request = request.basic_auth(user, Some(""));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// `POST /v205/events` with the key in the body.
async fn track(s: &TestServer, query: &str, mut event: Value) -> (u16, Value) {
    event["$api_key"] = json!(KEY);
    call(
        s,
        Method::POST,
        &format!("/v205/events{query}"),
        None,
        Some(&event),
    )
    .await
}

/// Tracks an event that must be accepted; returns the answer.
async fn accepted(s: &TestServer, query: &str, event: Value) -> Value {
    let (status, answer) = track(s, query, event.clone()).await;
    assert_eq!(status, 200, "{event} -> {answer}");
    assert_eq!(answer["status"], 0, "{answer}");
    assert_eq!(answer["error_message"], "OK");
    answer
}

/// The Custos event ids a Sift answer reports.
fn event_ids(answer: &Value) -> Vec<String> {
    answer["custos"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn actions(answer: &Value) -> Vec<&str> {
    answer["custos"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// Asserts Sift's error shape and code; returns the message.
fn sift_error(status: u16, body: &Value, want_http: u16, want_status: i64) -> String {
    assert_eq!(status, want_http, "{body}");
    assert_eq!(body["status"], want_status, "{body}");
    assert!(body["time"].as_i64().unwrap() > 1_600_000_000, "{body}");
    let message = body["error_message"].as_str().unwrap().to_string();
    assert!(!message.is_empty());
    message
}

fn ach(routing: &str, last5: &str) -> Value {
    json!([{"$payment_type": "$ach_credit", "$routing_number": routing,
            "$account_number_last5": last5, "$account_holder_name": "Jane Doe",
            "$bank_country": "US"}])
}

fn home_login(user: &str, day: i64) -> Value {
    json!({"$type": "$login", "$user_id": user, "$time": ms(day, 0),
           "$session_id": format!("{user}-home-{day}"), "$ip": "81.2.69.160",
           "$login_status": "$success",
           "$app": {"$device_unique_id": "laptop-1", "$os": "macOS"},
           "$browser": {"$user_agent": "Mozilla/5.0 (Macintosh) Safari/605.1"}})
}

#[tokio::test]
async fn events_take_the_key_in_the_body_or_as_basic_auth_and_never_echo_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let login = home_login("key-user", 0);
    let answer = accepted(&s, "", login.clone()).await;
    assert!(answer["time"].as_i64().unwrap() > 1_600_000_000);
    let echoed: Value = serde_json::from_str(answer["request"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["$user_id"], "key-user");
    assert!(echoed.get("$api_key").is_none(), "{echoed}");
    assert!(!answer.to_string().contains(KEY));
    // HTTP Basic, key as user name, no key in the body.
    let logout = json!({"$type": "$logout", "$user_id": "key-user", "$time": ms(0, 60)});
    let (status, answer) = call(&s, Method::POST, "/v205/events", Some(KEY), Some(&logout)).await;
    assert_eq!((status, &answer["status"]), (200, &json!(0)), "{answer}");
    assert_eq!(answer["custos"]["events"][0]["type"], "logout");

    // A wrong key in the body wins over a right one in the header.
    let mut wrong = logout.clone();
    wrong["$api_key"] = json!("not-the-key-0123456789");
    let (status, body) = call(&s, Method::POST, "/v205/events", Some(KEY), Some(&wrong)).await;
    sift_error(status, &body, 400, 51);
    assert!(!body.to_string().contains("not-the-key"), "{body}");
    let echoed: Value = serde_json::from_str(body["request"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["$type"], "$logout");
    // No key at all, or a bearer token (that is /v1's style, not Sift's).
    let (status, body) = call(&s, Method::POST, "/v205/events", None, Some(&logout)).await;
    sift_error(status, &body, 400, 51);
    let response = s
        .client
        .post(format!("{}/v205/events", s.base))
        .bearer_auth(KEY)
        .body(logout.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 51);
    let (status, body) = call(
        &s,
        Method::POST,
        "/v205/events",
        Some("wrong-key-0123456789"),
        Some(&logout),
    )
    .await;
    sift_error(status, &body, 400, 51);
}

#[tokio::test]
async fn bad_json_gets_sift_status_56_with_the_request_echoed_without_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let raw = format!(r#"{{"$type": "$login", "$api_key": "{KEY}", "$user_id": "u1",,}}"#);
    let response = s
        .client
        .post(format!("{}/v205/events", s.base))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let message = sift_error(status, &body, 400, 56);
    assert!(message.contains("json"), "{message}");
    let request = body["request"].as_str().unwrap();
    assert!(request.contains(r#""$user_id": "u1""#), "{request}");
    assert!(!request.contains(KEY), "{request}");
    // Valid JSON that is not one event object.
    let (status, body) = call(
        &s,
        Method::POST,
        "/v205/events",
        Some(KEY),
        Some(&json!([{"$type": "$logout"}])),
    )
    .await;
    sift_error(status, &body, 400, 56);
    // Bad JSON is bad before the key is looked at.
    let response = s
        .client
        .post(format!("{}/v205/events", s.base))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], 56);
}

#[tokio::test]
async fn unsupported_types_and_fields_are_refused_in_sift_shape_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let cases = [
        (
            json!({"$type": "$create_order", "$user_id": "nope", "$order_id": "o1"}),
            53,
            "$create_order",
        ),
        (
            json!({"$type": "make_call", "$user_id": "nope"}),
            53,
            "custom event",
        ),
        (
            json!({"$type": "$login", "$user_id": "nope", "$login_status": "$success",
                   "$order_id": "o1"}),
            105,
            "$order_id",
        ),
        (
            json!({"$type": "$login", "$user_id": "nope", "$login_status": "$success",
                   "$browser": {"$user_agent": "x", "$screen": "big"}}),
            105,
            "$browser.$screen",
        ),
        (
            json!({"$type": "$login", "$user_id": "nope", "$login_status": "$maybe"}),
            53,
            "$login_status",
        ),
        (
            json!({"$type": "$login", "$user_id": "nope"}),
            55,
            "$login_status",
        ),
        (
            json!({"$type": "$login", "$login_status": "$success"}),
            55,
            "$user_id",
        ),
        (
            json!({"$type": "$logout", "$user_id": "nope", "shop-tier": "gold"}),
            52,
            "shop-tier",
        ),
        (
            json!({"$type": "$logout", "$user_id": "nope", "$ip": "999.1.1.1"}),
            53,
            "$ip",
        ),
        (
            json!({"$type": "$update_account", "$user_id": "nope",
                   "$payment_methods": [{"$payment_type": "$gift_card"}]}),
            53,
            "$payment_methods[0].$payment_type",
        ),
        (
            json!({"$type": "$transaction", "$user_id": "nope", "$transaction_type": "$refund",
                   "$amount": 1_000_000, "$currency_code": "USD"}),
            53,
            "$refund",
        ),
        (
            json!({"$type": "$transaction", "$user_id": "nope",
                   "$transaction_type": "$withdrawal", "$amount": 1_000_000,
                   "$currency_code": "USD"}),
            55,
            "$transaction_id",
        ),
        (
            json!({"$type": "$login", "$user_id": "nope", "$login_status": "$success",
                   "$browser": {"$user_agent": "x".repeat(3000)}}),
            53,
            "$browser.$user_agent",
        ),
    ];
    for (event, code, named) in cases {
        let (status, body) = track(&s, "", event.clone()).await;
        let message = sift_error(status, &body, 400, code);
        assert!(message.contains(named), "{event}: {message}");
        assert!(body["request"].is_string(), "{body}");
    }
    let (status, _) = s.get("/v1/accounts/nope").await;
    assert_eq!(status, 404, "nothing of a refused request is recorded");
}

#[tokio::test]
async fn custom_fields_and_unread_reserved_fields_are_kept_as_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let mut login = home_login("attr-user", 0);
    login["$user_email"] = json!("bill@example.com");
    login["$username"] = json!("billy");
    login["$browser"]["$accept_language"] = json!("en-GB");
    login["shop_tier"] = json!("gold");
    login["listings_live"] = json!(12);
    let answer = accepted(&s, "", login).await;
    let ids = event_ids(&answer);
    assert_eq!(ids.len(), 1);
    let (status, stored) = s.get(&format!("/v1/events/{}", ids[0])).await;
    assert_eq!(status, 200, "{stored}");
    let event = &stored["event"];
    assert_eq!(event["type"], "login");
    assert_eq!(event["status"], "success");
    assert_eq!(event["account_id"], "attr-user");
    assert_eq!(event["session_id"], "attr-user-home-0");
    assert_eq!(event["ip"], "81.2.69.160");
    assert_eq!(event["device_id"], "laptop-1");
    assert_eq!(event["user_agent"], "Mozilla/5.0 (Macintosh) Safari/605.1");
    assert_eq!(event["time"], "2018-05-01T00:00:00Z");
    assert_eq!(
        event["attributes"],
        json!({
            "shop_tier": "gold",
            "listings_live": 12,
            "sift_type": "$login",
            "sift_user_email": "bill@example.com",
            "sift_username": "billy",
            "sift_app": {"$os": "macOS"},
            "sift_browser": {"$accept_language": "en-GB"},
        })
    );
    assert!(!stored.to_string().contains(KEY));
}

#[tokio::test]
async fn payment_methods_set_the_payout_destination_only_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let created = accepted(
        &s,
        "",
        json!({"$type": "$create_account", "$user_id": "pm-user", "$time": ms(0, 0),
               "$session_id": "pm-s0", "$ip": "81.2.69.160", "$user_email": "pm@example.com",
               "$name": "Jane Doe", "$payment_methods": ach("072403005", "12345")}),
    )
    .await;
    let types: Vec<&str> = created["custos"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["login", "payout_destination_change"]);
    let (_, account) = s.get("/v1/accounts/pm-user").await;
    let destination = &account["destination"]["destination"];
    assert_eq!(destination["institution_id"], "072403005");
    assert_eq!(destination["institution_type"], "bank");
    assert_eq!(destination["account_last4"], "2345");
    assert_eq!(
        destination.get("holder_name"),
        None,
        "account state (snapshotted unsealed) keeps no holder name; the event does"
    );
    let set_by = account["destination"]["set_by_event"].as_str().unwrap();
    let (_, set_by) = s.get(&format!("/v1/events/{set_by}")).await;
    assert_eq!(set_by["event"]["destination"]["holder_name"], "Jane Doe");
    assert_eq!(destination["country"], "US");
    let first_token = destination["account_token"].as_str().unwrap().to_string();
    assert!(first_token.starts_with("tk_"), "{first_token}");

    // The same payment method again (a profile edit): no destination change.
    let same = accepted(
        &s,
        "",
        json!({"$type": "$update_account", "$user_id": "pm-user", "$time": ms(1, 0),
               "$name": "Jane A. Doe", "$payment_methods": ach("07-24-03005", "12345")}),
    )
    .await;
    assert_eq!(same["custos"]["events"], json!([]));
    assert!(
        same["custos"]["not_recorded"]
            .as_str()
            .unwrap()
            .contains("nothing Custos tracks"),
        "{same}"
    );
    // A new bank account is a payout destination change, with the
    // previous one remembered.
    let changed = accepted(
        &s,
        "",
        json!({"$type": "$update_account", "$user_id": "pm-user", "$time": ms(2, 0),
               "$session_id": "pm-s2", "$payment_methods": ach("021000021", "99881")}),
    )
    .await;
    let ids = event_ids(&changed);
    assert_eq!(ids.len(), 1);
    let (_, stored) = s.get(&format!("/v1/events/{}", ids[0])).await;
    assert_eq!(stored["event"]["type"], "payout_destination_change");
    assert_eq!(
        stored["event"]["attributes"]["sift_payment_methods"][0]["$routing_number"],
        "021000021"
    );
    let (_, account) = s.get("/v1/accounts/pm-user").await;
    assert_eq!(
        account["destination"]["destination"]["account_last4"],
        "9881"
    );
    assert_eq!(
        account["previous_destinations"][0]["destination"]["account_token"],
        first_token
    );
    // E-mail and phone: a change only against a value seen before.
    let email = accepted(
        &s,
        "",
        json!({"$type": "$update_account", "$user_id": "pm-user", "$time": ms(3, 0),
               "$user_email": "PM@example.com", "$phone": "+1 415 555 6040"}),
    )
    .await;
    assert_eq!(
        email["custos"]["events"],
        json!([]),
        "same e-mail, and no phone known yet"
    );
    let email = accepted(
        &s,
        "",
        json!({"$type": "$update_account", "$user_id": "pm-user", "$time": ms(4, 0),
               "$user_email": "attacker@example.net", "$changed_password": true}),
    )
    .await;
    let types: Vec<&str> = email["custos"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["password_change", "email_change"]);
    // More than one payment method is refused, not guessed at.
    let mut two = ach("021000021", "99881");
    two.as_array_mut().unwrap().push(
        json!({"$payment_type": "$credit_card", "$card_bin": "542486",
                     "$card_last4": "4444"}),
    );
    let (status, body) = track(
        &s,
        "",
        json!({"$type": "$update_account", "$user_id": "pm-user", "$payment_methods": two}),
    )
    .await;
    let message = sift_error(status, &body, 400, 53);
    assert!(message.contains("$payment_methods"), "{message}");
}

#[tokio::test]
async fn a_withdrawal_after_a_takeover_is_held_and_reported_as_sift_workflows_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let user = "seller-ato";
    accepted(
        &s,
        "",
        json!({"$type": "$create_account", "$user_id": user, "$time": ms(0, 0),
               "$session_id": "seller-ato-home-0", "$ip": "81.2.69.160",
               "$app": {"$device_unique_id": "laptop-1"},
               "$payment_methods": ach("072403005", "12345")}),
    )
    .await;
    for day in 1..10 {
        let answer = accepted(&s, "", home_login(user, day)).await;
        assert_eq!(actions(&answer), ["allow"], "{answer}");
        let sale = accepted(
            &s,
            "",
            json!({"$type": "$transaction", "$user_id": format!("buyer-{day}"),
                   "$seller_user_id": user, "$time": ms(day, 60),
                   "$transaction_type": "$sale", "$transaction_status": "$success",
                   "$amount": 100_000_000, "$currency_code": "USD",
                   "$transaction_id": format!("sale-{day}"), "$ip": "203.0.113.9"}),
        )
        .await;
        assert_eq!(sale["custos"]["account_id"], user);
    }
    // The attacker logs in from a new device and network...
    let login = accepted(
        &s,
        "?return_score=true&return_workflow_status=true",
        json!({"$type": "$login", "$user_id": user, "$time": ms(20, 0),
               "$session_id": "atk", "$ip": "185.220.101.4", "$login_status": "$success",
               "$app": {"$device_unique_id": "unknown-pc"}}),
    )
    .await;
    assert_eq!(actions(&login), ["challenge"]);
    let history = &login["score_response"]["workflow_statuses"][0]["history"];
    assert_eq!(history[0]["app"], "decision");
    assert_eq!(history[0]["config"]["decision_id"], "challenge");
    // Two challenge rules fire (new device and network, and the login-risk
    // model), their scores add up to the cap: 100, so 1.0.
    let takeover = &login["score_response"]["scores"]["account_takeover"];
    assert_eq!(takeover["score"], 1.0, "{takeover}");
    assert!(
        takeover["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "new_device_and_network_login"),
        "{takeover}"
    );
    // ...points the payouts at a new bank account in that session...
    let change = accepted(
        &s,
        "?return_action=true",
        json!({"$type": "$update_account", "$user_id": user, "$time": ms(20, 60),
               "$session_id": "atk", "$ip": "185.220.101.4",
               "$payment_methods": ach("021000021", "99881")}),
    )
    .await;
    assert_eq!(actions(&change), ["hold"]);
    let action = &change["score_response"]["actions"][0];
    assert_eq!(action["action"]["id"], "hold");
    assert_eq!(action["entity"]["id"], user);
    assert_eq!(
        action["triggers"][0]["trigger"]["id"],
        "destination_change_in_risky_session"
    );
    // ...and asks for a withdrawal the next day: Custos's rules hold it.
    let withdrawal = json!({"$type": "$transaction", "$user_id": user, "$time": ms(21, 0),
        "$transaction_type": "$withdrawal", "$transaction_status": "$pending",
        "$transaction_id": "wd-1", "$amount": 1_000_000_000, "$currency_code": "USD"});
    let answer = accepted(
        &s,
        "?return_score=true&return_workflow_status=true&return_action=true",
        withdrawal.clone(),
    )
    .await;
    assert_eq!(actions(&answer), ["hold"]);
    let score_response = &answer["score_response"];
    assert_eq!(score_response["status"], 0);
    assert_eq!(score_response["user_id"], user);
    let payment = score_response["scores"]["payment_abuse"]["score"]
        .as_f64()
        .unwrap();
    let takeover = score_response["scores"]["account_takeover"]["score"]
        .as_f64()
        .unwrap();
    // Several hold rules fire (a destination set in a risky session, an
    // account at risk); their scores add up to the cap.
    assert_eq!(payment, 1.0);
    assert!((0.7..=1.0).contains(&takeover), "{takeover}");
    let reasons = &score_response["scores"]["payment_abuse"]["reasons"];
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "payout_to_destination_set_in_risky_session"),
        "{reasons}"
    );
    let status = &score_response["workflow_statuses"][0];
    assert_eq!(status["entity"], json!({"type": "user", "id": user}));
    assert_eq!(status["abuse_types"], json!(["payment_abuse"]));
    assert_eq!(status["history"][0]["app"], "decision");
    assert_eq!(status["history"][0]["config"]["decision_id"], "hold");
    let payout_id = &event_ids(&answer)[0];
    let (_, stored) = s.get(&format!("/v1/events/{payout_id}")).await;
    assert_eq!(stored["event"]["payout_id"], "wd-1");
    assert_eq!(stored["event"]["amount"], 100_000, "micros to cents");
    assert_eq!(stored["event"]["currency"], "USD");
    let (_, holds) = s.get("/v1/holds").await;
    assert_eq!(holds["open"], 1, "{holds}");
    assert_eq!(holds["holds"][0]["hold_id"], "wd-1");

    // The withdrawal's $success is the same payout, answered from the log.
    let mut success = withdrawal.clone();
    success["$transaction_status"] = json!("$success");
    success["$time"] = json!(ms(21, 30));
    let again = accepted(&s, "", success).await;
    assert_eq!(&event_ids(&again), std::slice::from_ref(payout_id));
    assert_eq!(again["custos"]["events"][0]["action"], "hold");
    assert_eq!(again["custos"]["events"][0]["duplicate"], true);
    let (_, holds) = s.get("/v1/holds").await;
    assert_eq!(holds["open"], 1);
    let (_, account) = s.get(&format!("/v1/accounts/{user}")).await;
    assert_eq!(account["money"]["USD"]["withheld"], 100_000);
    assert_eq!(account["money"]["USD"]["sales"], 90_000);
}

#[tokio::test]
async fn scores_answer_with_both_auth_styles_in_unit_range() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    accepted(&s, "", home_login("score-user", 0)).await;
    accepted(
        &s,
        "",
        json!({"$type": "$login", "$user_id": "score-user", "$time": ms(5, 0),
               "$session_id": "x", "$ip": "185.220.101.4", "$login_status": "$success",
               "$app": {"$device_unique_id": "box"}}),
    )
    .await;
    let check = |body: &Value| {
        for abuse in ["account_takeover", "payment_abuse"] {
            let score = body["scores"][abuse]["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score), "{body}");
        }
    };
    let path = format!("/v205/score/score-user?api_key={KEY}");
    let (status, body) = call(&s, Method::GET, &path, None, None).await;
    assert_eq!((status, &body["status"]), (200, &json!(0)), "{body}");
    assert_eq!(body["user_id"], "score-user");
    check(&body);
    assert_eq!(body["scores"]["account_takeover"]["score"], 0.6);
    assert_eq!(body["scores"]["payment_abuse"]["score"], 0.0);
    let (status, basic) = call(&s, Method::GET, "/v205/score/score-user", Some(KEY), None).await;
    assert_eq!(status, 200);
    assert_eq!(basic["scores"], body["scores"]);
    let (status, only) = call(
        &s,
        Method::GET,
        "/v205/score/score-user?abuse_types=payment_abuse",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(only["scores"].get("account_takeover").is_none(), "{only}");
    for method in [Method::GET, Method::POST] {
        let (status, user) = call(
            &s,
            method.clone(),
            "/v205/users/score-user/score",
            Some(KEY),
            None,
        )
        .await;
        assert_eq!(status, 200, "{method} {user}");
        assert_eq!(
            (&user["entity_type"], &user["entity_id"]),
            (&json!("user"), &json!("score-user"))
        );
        assert_eq!(user["scores"], body["scores"]);
        assert_eq!(user["latest_decisions"], json!({}));
        check(&user);
        let (status, _) = call(
            &s,
            method,
            &format!("/v205/users/score-user/score?api_key={KEY}"),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200);
    }
    // Errors in Sift's shape.
    let (status, body) = call(&s, Method::GET, "/v205/score/score-user", None, None).await;
    sift_error(status, &body, 400, 51);
    let (status, body) = call(
        &s,
        Method::GET,
        "/v205/score/score-user?api_key=wrong-key-0123456789",
        None,
        None,
    )
    .await;
    sift_error(status, &body, 400, 51);
    let (status, body) = call(&s, Method::GET, "/v205/score/nobody", Some(KEY), None).await;
    sift_error(status, &body, 404, 54);
    let (status, body) = call(
        &s,
        Method::GET,
        "/v205/users/score-user/score?abuse_types=content_abuse",
        Some(KEY),
        None,
    )
    .await;
    sift_error(status, &body, 400, 53);
    let (status, body) = call(
        &s,
        Method::GET,
        "/v205/users/score-user/score?fields=SCORE_PERCENTILES",
        Some(KEY),
        None,
    )
    .await;
    sift_error(status, &body, 400, 53);
}

#[tokio::test]
async fn labels_become_custos_labels_and_unlabel_ends_the_risk_they_caused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    accepted(&s, "", home_login("label-user", 0)).await;
    let label = json!({"$api_key": KEY, "$type": "$label", "$is_bad": true,
        "$abuse_type": "account_takeover", "$description": "the seller says it was not them",
        "$source": "support call", "$analyst": "ana@example.com"});
    let (status, answer) = call(
        &s,
        Method::POST,
        "/v205/users/label-user/labels",
        None,
        Some(&label),
    )
    .await;
    assert_eq!((status, &answer["status"]), (200, &json!(0)), "{answer}");
    assert!(!answer["request"].as_str().unwrap().contains(KEY));
    let (_, stored) = s
        .get(&format!("/v1/events/{}", event_ids(&answer)[0]))
        .await;
    assert_eq!(stored["event"]["type"], "label");
    assert_eq!(stored["event"]["label"], "compromise_reported");
    assert_eq!(stored["event"]["analyst"], "ana@example.com");
    assert_eq!(
        stored["event"]["attributes"]["sift_abuse_type"],
        "account_takeover"
    );
    assert_eq!(stored["event"]["attributes"]["sift_source"], "support call");
    let (_, account) = s.get("/v1/accounts/label-user").await;
    assert_eq!(account["at_risk"]["event_type"], "label", "{account}");
    let (_, score) = call(&s, Method::GET, "/v205/score/label-user", Some(KEY), None).await;
    assert_eq!(score["scores"]["account_takeover"]["score"], 0.7);

    // Unlabel: a wrong key, another abuse type, then the real thing.
    let (status, body) = call(
        &s,
        Method::DELETE,
        "/v205/users/label-user/labels?api_key=wrong-key-0123456789",
        None,
        None,
    )
    .await;
    sift_error(status, &body, 400, 51);
    let (status, body) = call(
        &s,
        Method::DELETE,
        "/v205/users/label-user/labels?abuse_type=payment_abuse",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!((status, &body), (204, &Value::Null));
    let (_, account) = s.get("/v1/accounts/label-user").await;
    assert!(
        account["at_risk"].is_object(),
        "a label of another abuse type is not undone"
    );
    let (status, _) = call(
        &s,
        Method::DELETE,
        &format!("/v205/users/label-user/labels?api_key={KEY}&abuse_type=account_takeover"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, account) = s.get("/v1/accounts/label-user").await;
    assert!(account["at_risk"].is_null(), "{account}");
    let (_, recent) = s.get("/v1/accounts/label-user").await;
    let last = &recent["recent_events"][0];
    assert_eq!(last["type"], "analyst_action");
    let (_, action) = s
        .get(&format!(
            "/v1/events/{}",
            last["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(action["event"]["action"], "clear_account");
    assert_eq!(action["event"]["analyst"], "sift-labels-api");
    assert_eq!(action["decision"]["effects"][0]["type"], "account.cleared");
    let (_, score) = call(&s, Method::GET, "/v205/score/label-user", Some(KEY), None).await;
    assert_eq!(score["scores"]["account_takeover"]["score"], 0.0);
    // Nothing left to undo: still 204, nothing recorded.
    let (status, _) = call(
        &s,
        Method::DELETE,
        "/v205/users/label-user/labels",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, after) = s.get("/v1/accounts/label-user").await;
    assert_eq!(after["recent_events"][0]["event_id"], last["event_id"]);

    // A good label with HTTP Basic; labels Custos does not judge are refused.
    let good = json!({"$is_bad": false, "$abuse_type": "payment_abuse"});
    let (status, answer) = call(
        &s,
        Method::POST,
        "/v205/users/label-user/labels",
        Some(KEY),
        Some(&good),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, stored) = s
        .get(&format!("/v1/events/{}", event_ids(&answer)[0]))
        .await;
    assert_eq!(stored["event"]["label"], "legit");
    let spam = json!({"$is_bad": true, "$abuse_type": "content_abuse"});
    let (status, body) = call(
        &s,
        Method::POST,
        "/v205/users/label-user/labels",
        Some(KEY),
        Some(&spam),
    )
    .await;
    sift_error(status, &body, 400, 53);
    let (status, body) = call(
        &s,
        Method::POST,
        "/v205/users/label-user/labels",
        None,
        Some(&good),
    )
    .await;
    sift_error(status, &body, 400, 51);
}

#[tokio::test]
async fn decisions_are_listed_applied_as_labels_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let base = "/v3/accounts/acct-1";
    let (status, list) = call(
        &s,
        Method::GET,
        &format!("{base}/decisions?entity_type=user"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_results"], 4);
    assert_eq!(list["has_more"], false);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "looks_ok_account_takeover",
            "looks_bad_account_takeover",
            "looks_ok_payment_abuse",
            "looks_bad_payment_abuse"
        ]
    );
    assert_eq!(list["data"][1]["category"], "BLOCK");
    let (_, page) = call(
        &s,
        Method::GET,
        &format!("{base}/decisions?entity_type=user&abuse_types=payment_abuse&limit=1"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(page["data"][0]["id"], "looks_ok_payment_abuse");
    assert_eq!(page["has_more"], true);
    assert!(
        page["next_ref"].as_str().unwrap().contains("from=1"),
        "{page}"
    );
    // v3 errors have their own shape.
    let (status, body) = call(&s, Method::GET, &format!("{base}/decisions"), None, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    assert!(body["description"].is_string());
    let (status, body) = call(
        &s,
        Method::GET,
        &format!("{base}/decisions"),
        Some("wrong-key-0123456789"),
        None,
    )
    .await;
    assert_eq!((status, &body["error"]), (401, &json!("unauthorized")));
    let (status, body) = call(
        &s,
        Method::GET,
        &format!("{base}/decisions?entity_type=order"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert!(body["issues"]["entity_type"].is_array(), "{body}");

    // A seller whose payout is held, then judged.
    let (_, answer) = s.post(&Value::Array(crate::story("decided-user"))).await;
    assert_eq!(answer.as_array().unwrap().last().unwrap()["action"], "hold");
    let path = format!("{base}/users/decided-user/decisions");
    let (status, body) = call(
        &s,
        Method::POST,
        &path,
        Some(KEY),
        Some(&json!({"decision_id": "looks_bad_payment_abuse", "source": "MANUAL_REVIEW"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["issues"]["analyst"].is_array(), "{body}");
    let (status, body) = call(
        &s,
        Method::POST,
        &path,
        Some(KEY),
        Some(&json!({"decision_id": "ban_forever", "source": "AUTOMATED_RULE"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["issues"]["decision_id"].is_array(), "{body}");
    let (status, applied) = call(
        &s,
        Method::POST,
        &path,
        Some(KEY),
        Some(
            &json!({"decision_id": "looks_bad_payment_abuse", "source": "MANUAL_REVIEW",
                     "analyst": "ana@example.com", "description": "mule account",
                     "time": ms(22, 0)}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(
        applied["entity"],
        json!({"id": "decided-user", "type": "user"})
    );
    assert_eq!(applied["decision"]["id"], "looks_bad_payment_abuse");
    assert_eq!(applied["time"], ms(22, 0));
    let (_, stored) = s
        .get(&format!(
            "/v1/events/{}",
            applied["custos"]["events"][0]["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(stored["event"]["label"], "fraud");
    assert_eq!(stored["event"]["analyst"], "ana@example.com");
    let effects: Vec<&str> = stored["decision"]["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(effects.contains(&"hold.cancelled"), "{effects:?}");
    assert!(effects.contains(&"destination.denied"), "{effects:?}");
    let (_, hold) = s.get("/v1/holds/p1").await;
    assert_eq!(hold["status"], "cancelled");

    let (status, read) = call(&s, Method::GET, &path, Some(KEY), None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read["decisions"]["payment_abuse"]["decision"]["id"],
        "looks_bad_payment_abuse"
    );
    assert_eq!(read["decisions"]["payment_abuse"]["time"], ms(22, 0));
    assert!(read["decisions"].get("account_takeover").is_none());
    let (_, score) = call(
        &s,
        Method::GET,
        "/v205/users/decided-user/score",
        Some(KEY),
        None,
    )
    .await;
    let latest = &score["latest_decisions"]["payment_abuse"];
    assert_eq!(latest["id"], "looks_bad_payment_abuse");
    assert_eq!(latest["category"], "BLOCK");
    assert_eq!(latest["source"], "MANUAL_REVIEW");
    assert_eq!(latest["description"], "mule account");

    // Looks OK clears the account through a legit label.
    let (status, applied) = call(
        &s,
        Method::POST,
        &path,
        Some(KEY),
        Some(&json!({"decision_id": "looks_ok_account_takeover", "source": "AUTOMATED_RULE"})),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    let (_, account) = s.get("/v1/accounts/decided-user").await;
    assert!(account["at_risk"].is_null(), "{account}");
    let (_, read) = call(&s, Method::GET, &path, Some(KEY), None).await;
    assert_eq!(
        read["decisions"]["account_takeover"]["decision"]["id"],
        "looks_ok_account_takeover"
    );
    let (status, _) = call(&s, Method::GET, &path, None, None).await;
    assert_eq!(status, 401);
}

/// Request examples from Sift's public API documentation (shortened), as
/// a platform already sends them: each is accepted with `status: 0`.
#[tokio::test]
async fn sift_documentation_examples_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let address = json!({"$name": "Bill Jones", "$phone": "1-415-555-6041",
        "$address_1": "2100 Main Street", "$address_2": "Apt 3B", "$city": "New London",
        "$region": "New Hampshire", "$country": "US", "$zipcode": "03257"});
    let app = json!({"$os": "iOS", "$os_version": "10.1.3", "$device_manufacturer": "Apple",
        "$device_model": "iPhone 4,2", "$device_unique_id": "A3D261E4-DE0A-470B-9E4A-720F3D3D22E6",
        "$app_name": "Calculator", "$app_version": "3.2.7", "$client_language": "en-US"});
    let examples: Vec<(Value, &[&str])> = vec![
        (
            json!({"$type": "$create_account", "$user_id": "billy_jones_301",
                "$session_id": "gigtleqddo84l8cm15qe4il", "$user_email": "bill@gmail.com",
                "$name": "Bill Jones", "$phone": "1-415-555-6040",
                "$referrer_user_id": "janejane101",
                "$payment_methods": [{"$payment_type": "$credit_card", "$card_bin": "542486",
                                      "$card_last4": "4444"}],
                "$billing_address": address, "$shipping_address": address,
                "$promotions": [{"$promotion_id": "FriendReferral", "$status": "$success",
                                 "$referrer_user_id": "janejane102",
                                 "$credit_point": {"$amount": 100,
                                                   "$credit_point_type": "account karma"}}],
                "$social_sign_on_type": "$twitter", "$account_types": ["merchant", "premium"],
                "$merchant_profile": {"$merchant_id": "12345", "$merchant_name": "ABC Merchant"},
                "twitter_handle": "billyjones", "work_phone": "1-347-555-5921",
                "location": "New London, NH", "referral_code": "MIKEFRIENDS",
                "email_confirmed_status": "$pending", "phone_confirmed_status": "$pending",
                "$verification_phone_number": "+12345678901"}),
            &["login", "payout_destination_change"],
        ),
        (
            json!({"$type": "$login", "$user_id": "billy_jones_301",
                "$session_id": "gigtleqddo84l8cm15qe4il", "$login_status": "$success",
                "$ip": "128.148.1.135", "$user_email": "billjones1@example.com",
                "$browser": {"$user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/56.0.2924.87 Safari/537.36",
                             "$accept_language": "en-US", "$content_language": "en-GB"},
                "$username": "billjones1@example.com", "$social_sign_on_type": "$linkedin",
                "$account_types": ["merchant", "premium"], "$brand_name": "sift",
                "$site_country": "US", "$site_domain": "sift.com"}),
            &["login"],
        ),
        (
            json!({"$type": "$update_account", "$user_id": "billy_jones_301",
                "$changed_password": true, "$user_email": "bill@gmail.com",
                "$name": "Bill Jones", "$phone": "1-415-555-6040",
                "$referrer_user_id": "janejane102",
                "$payment_methods": [{"$payment_type": "$credit_card", "$card_bin": "542486",
                                      "$card_last4": "4444"}],
                "$billing_address": address, "$shipping_address": address,
                "$social_sign_on_type": "$twitter", "email_confirmed_status": "$success",
                "phone_confirmed_status": "$success", "$account_types": ["merchant", "premium"]}),
            // The same card and phone as at creation; the e-mail differs from the
            // last one seen (the login's), so it is an e-mail change.
            &["password_change", "email_change"],
        ),
        (
            json!({"$type": "$update_password", "$user_id": "billy_jones_301",
                "$session_id": "gigtleqddo84l8cm15qe4il", "$app": app,
                "$reason": "$forced_reset", "$status": "$success", "$ip": "128.148.1.135",
                "$user_email": "billy_jones_301@email.com",
                "$verification_phone_number": "+12345678901"}),
            &["password_change"],
        ),
        (
            json!({"$type": "$verification", "$user_id": "billy_jones_301",
                "$session_id": "gigtleqddo84l8cm15qe4il", "$app": app, "$status": "$pending",
                "$verification_type": "$sms", "$verified_value": "14155551212",
                "$verified_event": "$login", "$verified_entity_id": "SOME_SESSION_ID",
                "$reason": "$automated_rule", "$ip": "128.148.1.135"}),
            &[],
        ),
        (
            json!({"$type": "$verification", "$user_id": "billy_jones_301",
                "$session_id": "gigtleqddo84l8cm15qe4il", "$status": "$success",
                "$verification_type": "$sms", "$verified_event": "$login"}),
            &["verification"],
        ),
        (
            json!({"$type": "$security_notification", "$user_id": "billy_jones_301",
                "$session_id": "gigtleqddo84l8cm15qe4il", "$notification_status": "$sent",
                "$notification_type": "$email", "$notified_value": "billy123@domain.com"}),
            &[],
        ),
        (
            json!({"$type": "$transaction", "$user_id": "billy_jones_301",
                "$amount": 506_790_000, "$currency_code": "USD", "$user_email": "bill@gmail.com",
                "$transaction_type": "$sale", "$transaction_status": "$failure",
                "$order_id": "ORDER-123124124", "$transaction_id": "719637215",
                "$decline_category": "$lost", "$billing_address": address,
                "$payment_method": {"$payment_type": "$credit_card", "$payment_gateway": "$braintree",
                                    "$card_bin": "542486", "$card_last4": "4444"},
                "$shipping_address": address, "$session_id": "gigtleqddo84l8cm15qe4il",
                "$seller_user_id": "slinkys_emporium", "$site_country": "US",
                "$site_domain": "sift.com", "$brand_name": "sift"}),
            &[],
        ),
        (
            json!({"$type": "$transaction", "$user_id": "billy_jones_301",
                "$amount": 506_790_000, "$currency_code": "USD",
                "$transaction_type": "$sale", "$transaction_status": "$success",
                "$transaction_id": "719637216", "$seller_user_id": "slinkys_emporium"}),
            &["sale"],
        ),
        (
            json!({"$type": "$chargeback", "$user_id": "billy_jones_301",
                "$order_id": "ORDER-123124124", "$transaction_id": "719637215",
                "$chargeback_state": "$lost", "$chargeback_reason": "$duplicate",
                "$ach_return_code": "B02"}),
            &["label"],
        ),
        (
            json!({"$type": "$logout", "$user_id": "billy_jones_301",
                "$browser": {"$user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/56.0.2924.87 Safari/537.36"}}),
            &["logout"],
        ),
    ];
    for (example, want) in examples {
        let answer = accepted(&s, "", example.clone()).await;
        let types: Vec<&str> = answer["custos"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, want, "{example} -> {answer}");
        if want.is_empty() {
            assert!(answer["custos"]["not_recorded"].is_string(), "{answer}");
        }
    }
    // The Labels API example.
    let (status, answer) = call(
        &s,
        Method::POST,
        "/v205/users/billy_jones_301/labels",
        None,
        Some(&json!({"$api_key": KEY, "$type": "$label", "$is_bad": true,
                     "$abuse_type": "payment_abuse", "$description": "Listed a fake item",
                     "$source": "Internal Review Queue", "$analyst": "someone@your-site.com"})),
    )
    .await;
    assert_eq!((status, &answer["status"]), (200, &json!(0)), "{answer}");
    let (_, account) = s.get("/v1/accounts/billy_jones_301").await;
    // Newest first.
    assert_eq!(account["labels"][0]["label"], "fraud", "{account}");
    assert_eq!(account["labels"][1]["label"], "chargeback");
    // The sale was credited to the seller, not the buyer.
    let (_, seller) = s.get("/v1/accounts/slinkys_emporium").await;
    assert_eq!(seller["money"]["USD"]["sales"], 50_679);
}

#[tokio::test]
async fn amounts_convert_from_micros_exactly_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let withdrawal = |amount: u64, currency: &str, id: &str| {
        json!({"$type": "$transaction", "$user_id": "yen-user", "$transaction_type": "$withdrawal",
               "$transaction_id": id, "$amount": amount, "$currency_code": currency})
    };
    let answer = accepted(&s, "", withdrawal(1_500_000_000, "JPY", "y1")).await;
    let (_, stored) = s
        .get(&format!("/v1/events/{}", event_ids(&answer)[0]))
        .await;
    assert_eq!(stored["event"]["amount"], 1500);
    assert_eq!(stored["event"]["currency"], "JPY");
    let answer = accepted(&s, "", withdrawal(1_234_000, "KWD", "k1")).await;
    let (_, stored) = s
        .get(&format!("/v1/events/{}", event_ids(&answer)[0]))
        .await;
    assert_eq!(stored["event"]["amount"], 1234);
    let (status, body) = track(&s, "", withdrawal(1_500_000, "JPY", "y2")).await;
    let message = sift_error(status, &body, 400, 53);
    assert!(message.contains("$amount"), "{message}");
    let (status, body) = track(&s, "", withdrawal(1_000_000, "DOLLARS", "y3")).await;
    let message = sift_error(status, &body, 400, 53);
    assert!(message.contains("$currency_code"), "{message}");
}

#[tokio::test]
async fn a_sift_event_from_the_future_is_refused_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    // 9999-01-01T00:00:00Z in milliseconds.
    let mut login = home_login("sift-future", 0);
    login["$time"] = json!(253_370_764_800_000_i64);
    let (status, body) = track(&s, "", login).await;
    let message = sift_error(status, &body, 400, 53);
    assert!(
        message.starts_with("`$time`: 9999-01-01T00:00:00Z is ")
            && message.contains("engine.max_future_skew"),
        "{message}"
    );
    let (status, _) = s.get("/v1/accounts/sift-future").await;
    assert_eq!(status, 404, "nothing was recorded");
    // The same label through the Labels API.
    let label = json!({"$api_key": KEY, "$type": "$label", "$is_bad": false,
                       "$abuse_type": "account_takeover", "$time": 253_370_764_800_000_i64});
    let (status, body) = call(
        &s,
        Method::POST,
        "/v205/users/sift-future/labels",
        None,
        Some(&label),
    )
    .await;
    sift_error(status, &body, 400, 53);
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn custom_fields_ids_and_bank_numbers_keep_the_v1_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let logout = |extra: Value| {
        let mut event = json!({"$type": "$logout", "$user_id": "sift-in", "$time": ms(1, 0)});
        for (k, v) in extra.as_object().unwrap() {
            event[k] = v.clone();
        }
        event
    };
    let mut deep = json!(1);
    for _ in 0..126 {
        deep = json!({ "n": deep });
    }
    let (status, body) = track(&s, "", logout(json!({"deep": deep}))).await;
    let message = sift_error(status, &body, 400, 53);
    assert!(message.contains("nest more than 16 deep"), "{message}");
    let (status, body) = track(&s, "", logout(json!({"$user_id": "sift\u{1b}[2J"}))).await;
    let message = sift_error(status, &body, 400, 53);
    assert!(message.starts_with("`$user_id`"), "{message}");
    let (status, body) = track(&s, "", logout(json!({"customerIban": "GB29"}))).await;
    let message = sift_error(status, &body, 400, 53);
    assert!(message.contains("never stores"), "{message}");
    let (status, body) = s.get("/v1/accounts/sift-in").await;
    assert_eq!(status, 404, "nothing was recorded: {body}");
    accepted(&s, "", logout(json!({"shallow": {"a": [1, 2]}}))).await;
}

#[tokio::test]
async fn stored_payment_methods_keep_no_iban_fragment_or_account_digits() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let created = accepted(
        &s,
        "",
        json!({"$type": "$create_account", "$user_id": "iban-user", "$time": ms(0, 0),
               "$session_id": "iban-s0", "$ip": "81.2.69.160",
               "$payment_methods": [{"$payment_type": "$sepa_credit",
                   "$bank_name": "Bank of Ireland", "$bank_country": "IE",
                   "$shortened_iban_first6": "IE29QZ", "$shortened_iban_last4": "7731",
                   "$account_holder_name": "Oisin Wexford-Quill"}]}),
    )
    .await;
    let ids = event_ids(&created);
    let (_, stored) = s.get(&format!("/v1/events/{}", ids[1])).await;
    let event = &stored["event"];
    assert_eq!(event["destination"]["account_last4"], "7731");
    assert!(
        event["destination"]["account_token"]
            .as_str()
            .unwrap()
            .starts_with("tk_")
    );
    assert_eq!(
        event["destination"]["holder_name"], "Oisin Wexford-Quill",
        "shown to a caller with a key"
    );
    assert_eq!(
        event["attributes"]["sift_payment_methods"],
        json!([{"$payment_type": "$sepa_credit", "$bank_name": "Bank of Ireland",
                "$bank_country": "IE"}]),
        "the stored payment method lost its identifiers"
    );
    s.server.stop().await.unwrap();
    let bytes = super::pii::data_dir_bytes(dir.path());
    for clear in ["IE29QZ", "IE29QZ7731", "Oisin", "Wexford"] {
        assert!(
            !super::pii::contains(&bytes, clear),
            "{clear} is stored in clear"
        );
    }
}
