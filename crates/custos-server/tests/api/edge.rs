//! The checks every request passes: host, origin, content type, URI
//! length, the key of `/metrics`, and JSON bodies for every error the
//! server produces.

use reqwest::Method;
use serde_json::Value;

use super::*;

/// A server with the development key only, as a developer runs it.
async fn development_server(dir: &Path) -> TestServer {
    let mut cfg = config(dir);
    cfg.api_keys.clear();
    TestServer::start(cfg).await
}

/// A held payout on `seller-x`, through the development key.
async fn hold_a_payout(s: &TestServer) {
    let response = s
        .client
        .post(format!("{}/v1/events", s.base))
        .bearer_auth(custos_config::DEVELOPMENT_API_KEY)
        .header("content-type", "application/json")
        .body(Value::Array(story("seller-x")).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let holds = open_holds(s).await;
    assert_eq!(holds, 1, "the attacker's payout is held");
}

async fn open_holds(s: &TestServer) -> usize {
    let holds: Value = s
        .client
        .get(format!("{}/v1/holds?account_id=seller-x", s.base))
        .bearer_auth(custos_config::DEVELOPMENT_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    holds["holds"]
        .as_array()
        .unwrap_or_else(|| panic!("{holds}"))
        .len()
}

/// What a page on another site can send to the Sift labels route: a form
/// post (`text/plain`, no preflight) with the development key in the body.
fn cross_site_label() -> String {
    json!({"$api_key": custos_config::DEVELOPMENT_API_KEY, "$is_bad": false,
        "$abuse_type": "account_takeover", "$analyst": "mallory"})
    .to_string()
}

#[tokio::test]
async fn a_cross_site_label_cannot_release_a_hold() {
    let dir = tempfile::tempdir().unwrap();
    let s = development_server(dir.path()).await;
    hold_a_payout(&s).await;
    let url = format!("{}/v205/users/seller-x/labels", s.base);

    // From another origin: refused on the origin, in Sift's shape.
    let response = s
        .client
        .post(&url)
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(cross_site_label())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error_message"].as_str().unwrap().contains("origin"),
        "{body}"
    );
    // An older browser that sends no Origin: refused on the content type.
    let response = s
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body(cross_site_label())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{body}"
    );
    for form in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = s
            .client
            .post(&url)
            .header("content-type", form)
            .body(cross_site_label())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{form}");
    }
    assert_eq!(open_holds(&s).await, 1, "the hold is still open");

    // The same label as JSON, from no page at all, is what a platform sends.
    let response = s
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(cross_site_label())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(open_holds(&s).await, 0, "a legit label releases it");
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn only_configured_origins_may_send_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.http.allowed_origins = vec!["https://admin.example.com".into()];
    let s = TestServer::start(cfg).await;
    let send = |origin: &'static str| {
        s.client
            .get(format!("{}/v1/accounts/a", s.base))
            .bearer_auth(KEY)
            .header("origin", origin)
            .send()
    };
    let response = send("https://admin.example.com").await.unwrap();
    assert_eq!(
        response.status(),
        404,
        "allowed; the account does not exist"
    );
    for origin in [
        "https://evil.example",
        "null",
        "https://admin.example.com.evil.example",
    ] {
        let response = send(origin).await.unwrap();
        let status = response.status();
        let message = assert_error(
            status,
            &response.json().await.unwrap(),
            403,
            "origin_not_allowed",
        );
        assert!(message.starts_with("origin: "), "{message}");
    }
    // Refusals are counted with the route they were meant for (the
    // recorder is shared by the tests of this binary: no exact count).
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(
            r#"custos_http_requests_total{method="GET",route="/v1/accounts/{account_id}",status="403"}"#
        ),
        "{metrics}"
    );
    // The v3 Sift routes answer in their own shape.
    let response = s
        .client
        .get(format!("{}/v3/accounts/x/decisions", s.base))
        .basic_auth(KEY, Some(""))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["description"].as_str().unwrap().contains("origin"),
        "{body}"
    );
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn on_loopback_only_loopback_host_names_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.http.allowed_hosts = vec!["custos.internal".into()];
    let s = TestServer::start(cfg).await;
    let port = s.server.addr.port();
    for (host, want) in [
        (format!("evil.example:{port}"), 403),
        ("evil.example".to_string(), 403),
        (format!("127.0.0.1.nip.io:{port}"), 403),
        (format!("localhost:{port}"), 404),
        (format!("127.0.0.1:{port}"), 404),
        (format!("[::1]:{port}"), 404),
        ("custos.internal".to_string(), 404),
    ] {
        let response = s
            .client
            .get(format!("{}/v1/accounts/a", s.base))
            .bearer_auth(KEY)
            .header("host", host.as_str())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if want == 403 {
            let message = assert_error(status, &body, 403, "host_not_allowed");
            assert!(message.starts_with("host: "), "{message}");
        } else {
            assert_error(status, &body, 404, "account_not_found");
        }
    }
    // Off loopback, any host is answered (keys are required there).
    s.server.stop().await.unwrap();
    let mut cfg = config(dir.path());
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let s = TestServer::start(cfg).await;
    let response = s
        .client
        .get(format!(
            "http://127.0.0.1:{}/v1/accounts/a",
            s.server.addr.port()
        ))
        .bearer_auth(KEY)
        .header("host", "custos.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn state_changes_need_a_json_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let event = json!(story("seller-c")[0]).to_string();
    // What `curl -d` and HTML forms send.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, body) = s
            .send_to(Method::POST, "/v1/events", content_type, event.clone())
            .await;
        let message = assert_error(status, &body, 415, "unsupported_media_type");
        assert!(message.contains("application/x-ndjson"), "{message}");
        let (status, body) = s
            .send_to(Method::POST, "/v1/rules", content_type, "[[rule]]".into())
            .await;
        let message = assert_error(status, &body, 415, "unsupported_media_type");
        assert!(message.contains("application/toml"), "{message}");
        let (status, body) = s
            .send_to(
                Method::PUT,
                "/v1/lists/denied_destinations",
                content_type,
                r#"{"entries": []}"#.into(),
            )
            .await;
        assert_error(status, &body, 415, "unsupported_media_type");
        let (status, body) = s
            .send_to(
                Method::POST,
                "/v1/payouts/p1/release",
                content_type,
                r#"{"analyst": "a", "reason": "r"}"#.into(),
            )
            .await;
        assert_error(status, &body, 415, "unsupported_media_type");
    }
    // NDJSON only where NDJSON is read.
    let (status, body) = s
        .send_to(
            Method::POST,
            "/v1/payouts/p1/release",
            "application/x-ndjson",
            r#"{"analyst": "a", "reason": "r"}"#.into(),
        )
        .await;
    assert_error(status, &body, 415, "unsupported_media_type");
    // JSON, with parameters, and no content type at all are accepted.
    let (status, body) = s
        .send_to(
            Method::POST,
            "/v1/events",
            "Application/JSON; charset=utf-8",
            event.clone(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, text) = s.send(None, event).await;
    assert_eq!(status, 200, "{text}");
    // Reads carry no body to check.
    let response = s
        .client
        .get(format!("{}/v1/accounts/seller-c", s.base))
        .bearer_auth(KEY)
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    s.server.stop().await.unwrap();
}

/// One request of [`every_error_is_the_json_error_body`] and its answer.
struct Case {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
}

/// Every error the server produces has the JSON error body, including
/// those axum would answer in plain text.
#[tokio::test]
async fn every_error_is_the_json_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let long = "a".repeat(9000);
    let big = format!("[\"{}\"]", "x".repeat(2 * 1024 * 1024));
    let get = |path: String, status: u16, code: &'static str| Case {
        method: Method::GET,
        path,
        content_type: None,
        body: String::new(),
        status,
        code,
    };
    let post = |content_type: &'static str, body: String, status: u16, code: &'static str| Case {
        method: Method::POST,
        path: "/v1/events".into(),
        content_type: Some(content_type),
        body,
        status,
        code,
    };
    let cases = [
        get("/nope".into(), 404, "route_not_found"),
        Case {
            method: Method::DELETE,
            ..get("/v1/events".into(), 405, "method_not_allowed")
        },
        get(format!("/v1/events/{long}"), 414, "uri_too_long"),
        get("/v1/events/%FF%FE".into(), 400, "invalid_path"),
        get("/v1/accounts/%C3%28".into(), 400, "invalid_path"),
        get("/v1/holds?limit=many".into(), 400, "invalid_query"),
        get("/v1/holds?colour=red".into(), 400, "invalid_query"),
        get("/v1/campaigns?limit=-1".into(), 400, "invalid_query"),
        post("application/json", big, 413, "payload_too_large"),
        post(
            "application/xml",
            "<e/>".into(),
            415,
            "unsupported_media_type",
        ),
        post("application/json", "{".into(), 400, "invalid_json"),
    ];
    for Case {
        method,
        path,
        content_type,
        body,
        status,
        code,
    } in cases
    {
        let mut request = s
            .client
            .request(method.clone(), format!("{}{path}", s.base))
            .bearer_auth(KEY);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct).body(body);
        }
        let response = request.send().await.unwrap();
        let got = response.status();
        let ct = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let short = &path[..path.len().min(40)];
        assert_eq!(ct, "application/json", "{method} {short}: {text}");
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {short}: {e}: {text}"));
        let message = assert_error(got, &json, status, code);
        assert_eq!(
            message.chars().next().map(char::is_lowercase),
            Some(true),
            "{message}"
        );
    }
    // A Sift route answers an unreadable path in Sift's shape.
    let response = s
        .client
        .get(format!("{}/v205/score/%FF?api_key={KEY}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["status"].is_i64(), "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .starts_with("path: "),
        "{body}"
    );
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_can_require_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.http.metrics_require_key = Some(true);
    let s = TestServer::start(cfg).await;
    let url = format!("{}/metrics", s.base);
    let response = s.client.get(&url).send().await.unwrap();
    let status = response.status();
    assert_error(
        status,
        &response.json().await.unwrap(),
        401,
        "missing_api_key",
    );
    let response = s
        .client
        .get(&url)
        .bearer_auth("not-the-key-0123456789")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_error(
        status,
        &response.json().await.unwrap(),
        401,
        "invalid_api_key",
    );
    let response = s.client.get(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("custos_http_requests_total")
    );
    // Liveness stays open: orchestrators probe without keys.
    let response = s
        .client
        .get(format!("{}/livez", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    s.server.stop().await.unwrap();
}
