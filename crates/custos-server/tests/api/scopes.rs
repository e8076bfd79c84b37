//! Key scopes: every route of the route table refuses a key without its
//! scope and serves a key with it; labels and analyst actions need their
//! own scope whatever route they come through, Sift's included.

use custos_config::{ApiKeyConfig, Scope};
use custos_server::routes::{Access, ROUTES};
use reqwest::Method;
use serde_json::Value;

use super::*;

fn secret(name: &str) -> String {
    format!("{name}-secret-0123456789")
}

/// A key name for a scope: `events-write`.
fn slug(scope: Scope) -> String {
    scope.as_str().replace(':', "-")
}

fn table(name: &str, scopes: &[Scope]) -> ApiKeyConfig {
    ApiKeyConfig {
        name: name.to_string(),
        key: Some(secret(name)),
        key_env: None,
        scopes: scopes.iter().map(|s| s.as_str().to_string()).collect(),
    }
}

/// Per scope: `only-<scope>`, a key with that scope alone, and
/// `all-but-<scope>`, a key with every other scope but `admin`; plus
/// `ingest` and `labeller`, as clients would have them.
fn scoped_config(dir: &Path) -> Config {
    let mut cfg = config(dir);
    cfg.api_keys.clear();
    cfg.http.metrics_require_key = Some(true);
    for scope in Scope::ALL {
        cfg.api_key
            .push(table(&format!("only-{}", slug(scope)), &[scope]));
        let others: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| *s != scope && *s != Scope::Admin)
            .collect();
        cfg.api_key
            .push(table(&format!("all-but-{}", slug(scope)), &others));
    }
    cfg.api_key.push(table("ingest", &[Scope::EventsWrite]));
    cfg.api_key
        .push(table("labeller", &[Scope::EventsWrite, Scope::LabelsWrite]));
    cfg.api_key
        .push(table("analyst", &[Scope::EventsWrite, Scope::HoldsWrite]));
    cfg
}

/// Sends a route's method to its path (parameters filled in) with a key,
/// where the route takes it: bearer, or HTTP Basic on Sift's routes.
async fn call_route(
    s: &TestServer,
    method: &str,
    path: &str,
    access: Access,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut filled = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                filled.push('1');
            }
            c if !in_param => filled.push(c),
            _ => {}
        }
    }
    let method: Method = method.parse().unwrap();
    let mut request = s
        .client
        .request(method.clone(), format!("{}{filled}", s.base));
    if let Some(key) = key {
        request = match access {
            Access::Sift(_) => request.basic_auth(key, None::<&str>),
            _ => request.bearer_auth(key),
        };
    }
    if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        request = request
            .header("content-type", "application/json")
            .body("{}");
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The walk over the whole table: a key without the route's scope (even
/// one with every other scope) gets 403 naming the scope, in the route's
/// error shape; a key with only that scope, and an admin key, do not get
/// 401 or 403. Open routes need no key.
#[tokio::test]
async fn every_route_refuses_a_key_without_its_scope_and_serves_one_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(scoped_config(dir.path())).await;
    let admin = secret(&format!("only-{}", slug(Scope::Admin)));
    let mut checked = 0;
    for route in ROUTES {
        let name = route.name;
        let Some(scope) = route.access.scope() else {
            let (status, body) = call_route(&s, route.method, route.path, route.access, None).await;
            assert!(status.is_success(), "{name} is open: {status} {body}");
            continue;
        };
        let without = secret(&format!("all-but-{}", slug(scope)));
        let (status, body) =
            call_route(&s, route.method, route.path, route.access, Some(&without)).await;
        assert_eq!(status, 403, "{name} without {scope}: {body}");
        let message = if route.path.starts_with("/v205/") {
            assert_eq!(body["status"], 51, "{name}: {body}");
            body["error_message"].as_str()
        } else if route.path.starts_with("/v3/") {
            assert_eq!(body["error"], "insufficient_scope", "{name}: {body}");
            body["description"].as_str()
        } else {
            assert_eq!(body["code"], "insufficient_scope", "{name}: {body}");
            assert_eq!(body["type"], "auth", "{name}: {body}");
            body["message"].as_str()
        };
        let message = message.unwrap_or_else(|| panic!("{name}: no message in {body}"));
        assert!(
            message.contains(&format!("`{scope}`")) && message.contains(name),
            "{name}: the error names the route and the scope: {message}"
        );
        assert!(!message.contains(&without), "{name}: no key in errors");
        for key in [secret(&format!("only-{}", slug(scope))), admin.clone()] {
            let (status, body) =
                call_route(&s, route.method, route.path, route.access, Some(&key)).await;
            assert!(
                status != 403 && status != 401,
                "{name} with {scope}: {status} {body}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 29, "every keyed route was walked: {checked}");
    // Without any key, keyed routes answer 401 as before.
    let (status, _) = call_route(&s, "GET", "/v1/holds", Access::Open, None).await;
    assert_eq!(status, 401);
    let (status, _) = call_route(&s, "GET", "/metrics", Access::Open, None).await;
    assert_eq!(status, 401, "metrics_require_key is on");
    s.server.stop().await.unwrap();
}

async fn post_as(s: &TestServer, key: &str, body: &Value) -> (StatusCode, Value) {
    post_json(s, "/v1/events", Some(key), body).await
}

/// POSTs `body` to `path`, with `key` as a bearer key when given.
async fn post_json(
    s: &TestServer,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    let mut request = s.client.post(format!("{}{path}", s.base)).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Regression: an ingest key could post a `legit` label or an analyst
/// action through `POST /v1/events` and release holds with it.
#[tokio::test]
async fn labels_and_analyst_actions_need_their_scope_on_the_events_route() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(scoped_config(dir.path())).await;
    let login = json!({"event_id": "sc-login", "type": "login", "account_id": "sc-1",
        "time": at(0, 0), "status": "success", "ip": "81.2.69.160"});
    let label = json!({"event_id": "sc-label", "type": "label", "account_id": "sc-1",
        "time": at(0, 60), "label": "legit", "analyst": "ops-ana"});
    let action = json!({"event_id": "sc-act", "type": "analyst_action", "account_id": "sc-1",
        "time": at(0, 120), "action": "clear_account", "analyst": "ops-ana", "reason": "checked"});

    let ingest = secret("ingest");
    let (status, body) = post_as(&s, &ingest, &json!([login, label])).await;
    let message = assert_error(status, &body, 403, "insufficient_scope");
    assert_eq!(body["index"], 1, "{body}");
    assert!(
        message.contains("`labels:write`") && message.contains("type label"),
        "{message}"
    );
    // All or nothing: the login before it was not recorded either.
    let stored = s
        .client
        .get(format!("{}/v1/events/sc-login", s.base))
        .bearer_auth(secret(&format!("only-{}", slug(Scope::Read))))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 404);
    let (status, body) = post_as(&s, &ingest, &action).await;
    let message = assert_error(status, &body, 403, "insufficient_scope");
    assert!(message.contains("`holds:write`"), "{message}");
    assert!(body.get("index").is_none(), "one event, no index: {body}");
    // The labeller may label but not act on holds; the analyst the reverse.
    let (status, body) = post_as(&s, &secret("labeller"), &action).await;
    assert_error(status, &body, 403, "insufficient_scope");
    let (status, body) = post_as(&s, &secret("analyst"), &label).await;
    assert_error(status, &body, 403, "insufficient_scope");
    let (status, body) = post_as(&s, &secret("labeller"), &json!([login, label])).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_as(&s, &secret("analyst"), &action).await;
    assert_ne!(status, 403, "{body}");
    // Other events need only events:write.
    let (status, body) = post_as(
        &s,
        &ingest,
        &json!({"event_id": "sc-logout",
        "type": "logout", "account_id": "sc-1", "time": at(0, 180)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    s.server.stop().await.unwrap();
}

async fn sift_post(s: &TestServer, path: &str, body: &Value) -> (StatusCode, Value) {
    post_json(s, path, None, body).await
}

/// Regression: a Sift client key sent as `$api_key` in the body could
/// label an account legit and release its holds. The body key maps to the
/// same keys and scopes as a bearer key.
#[tokio::test]
async fn sift_body_keys_carry_their_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(scoped_config(dir.path())).await;
    let label = |key: &str| {
        json!({"$api_key": key, "$type": "$label", "$is_bad": false,
            "$abuse_type": "account_takeover", "$analyst": "ops-ana"})
    };
    let (status, body) =
        sift_post(&s, "/v205/users/sift-1/labels", &label(&secret("ingest"))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["status"], 51, "{body}");
    let message = body["error_message"].as_str().unwrap();
    assert!(message.contains("`labels:write`"), "{message}");
    assert!(
        !body.to_string().contains(&secret("ingest")),
        "the key is not echoed: {body}"
    );
    let (status, body) = sift_post(
        &s,
        "/v205/users/sift-1/labels",
        &label(&secret(&format!("only-{}", slug(Scope::LabelsWrite)))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 0, "{body}");

    // A chargeback is a label, through the events route too.
    let chargeback = |key: &str| {
        json!({"$api_key": key, "$type": "$chargeback", "$user_id": "sift-2",
            "$order_id": "o-1", "$transaction_id": "t-1", "$chargeback_state": "$lost"})
    };
    let (status, body) = sift_post(&s, "/v205/events", &chargeback(&secret("ingest"))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["status"], 51, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("`labels:write`"),
        "{body}"
    );
    let (status, body) = sift_post(&s, "/v205/events", &chargeback(&secret("labeller"))).await;
    assert_eq!(status, 200, "{body}");
    // An ordinary event needs only events:write.
    let login = json!({"$api_key": secret("ingest"), "$type": "$login", "$user_id": "sift-2",
        "$login_status": "$success", "$ip": "81.2.69.160"});
    let (status, body) = sift_post(&s, "/v205/events", &login).await;
    assert_eq!(status, 200, "{body}");
    // A key that is not configured is still Sift's 400 with status 51.
    let (status, body) = sift_post(&s, "/v205/events", &chargeback("no-such-key-0123456789")).await;
    assert_eq!(
        (status.as_u16(), &body["status"]),
        (400, &json!(51)),
        "{body}"
    );
    s.server.stop().await.unwrap();
}

/// Collects what a subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs and request spans name the key a request came with, never the key.
#[tokio::test]
async fn logs_name_the_key_and_never_show_it() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    // The process-wide subscriber, not a scoped one: a callsite first hit by
    // another test's thread while no subscriber was live can stay disabled
    // for a scoped one. Other tests' lines land here too, which only widens
    // the check that no key is ever logged.
    tracing::subscriber::set_global_default(subscriber)
        .expect("no other test sets the global subscriber");
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(scoped_config(dir.path())).await;
    let ingest = secret("ingest");
    let (status, _) = call_route(&s, "POST", "/v1/rules", Access::Open, None).await;
    assert_eq!(status, 401);
    let response = s
        .client
        .post(format!("{}/v1/rules", s.base))
        .bearer_auth(&ingest)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let (status, _) = sift_post(
        &s,
        "/v205/users/log-1/labels",
        &json!({"$api_key": ingest, "$type": "$label", "$is_bad": true}),
    )
    .await;
    assert_eq!(status, 403);
    s.server.stop().await.unwrap();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains(r#"request{method="POST" route="/v1/rules" key="ingest"}"#),
        "the request span names the key: {logs}"
    );
    assert!(
        logs.contains(r#"route="/v205/users/{user_id}/labels" key="ingest"}"#),
        "Sift's body key too: {logs}"
    );
    assert!(
        logs.contains("request refused: the key lacks the scope"),
        "{logs}"
    );
    assert!(logs.contains("api key configured key=ingest"), "{logs}");
    for (name, secret) in [("ingest", ingest), ("admin", secret("only-admin"))] {
        assert!(!logs.contains(&secret), "the {name} key is never logged");
    }
}
