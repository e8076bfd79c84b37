//! HTTP integration tests: a real server on a random loopback port, driven
//! over HTTP. One test binary for the crate.

mod analyst;
mod auth;
mod connections;
mod console;
mod docs;
mod edge;
mod events;
mod evidence;
mod fuzz_corpus;
mod health;
mod input;
mod openapi;
mod pii;
mod restart;
mod rules;
mod scopes;
mod sift;
mod webhooks;

use std::path::{Path, PathBuf};

use custos_config::Config;
use custos_server::RunningServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const KEY: &str = "integration-test-key-0123456789";

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub client: reqwest::Client,
    pub config: Config,
}

pub fn config(data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        api_keys: vec![KEY.to_string()],
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let server = custos_server::start(config.clone())
            .await
            .expect("server starts");
        TestServer {
            base: format!("http://{}", server.addr),
            server,
            client: custos_server::tls::client(),
            config,
        }
    }

    pub async fn in_dir(dir: &Path) -> TestServer {
        TestServer::start(config(dir)).await
    }

    /// Stops cleanly and starts again on the same data directory.
    pub async fn restart(self) -> TestServer {
        let config = self.config.clone();
        self.server.stop().await.expect("clean stop");
        TestServer::start(config).await
    }

    pub async fn send(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, String, String) {
        let mut request = self
            .client
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(KEY)
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let ct = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ct, response.text().await.unwrap())
    }

    /// Posts JSON and parses the JSON answer.
    pub async fn post(&self, body: &Value) -> (StatusCode, Value) {
        let (status, _, text) = self.send(Some("application/json"), body.to_string()).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }

    /// The Prometheus text of `/metrics` (no key needed).
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, None, String::new())
            .await
    }

    /// Sends any request with the test key; parses a JSON answer, keeps any
    /// other as a string.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: String,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct).body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// [`TestServer::request`] with a body of the given type.
    pub async fn send_to(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (StatusCode, Value) {
        self.request(method, path, Some(content_type), body).await
    }
}

/// Asserts the stable error shape and returns the body.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) -> String {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(
        matches!(
            body["type"].as_str(),
            Some("invalid_request" | "auth" | "system")
        ),
        "{body}"
    );
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"));
    assert!(!message.is_empty());
    message.to_string()
}

/// The examples in docs/events.md, in order: the documentation is tested.
pub fn documented_examples() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut examples = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```json") => block = Some(String::new()),
            (Some(b), "```") => {
                let value: Value = serde_json::from_str(b)
                    .unwrap_or_else(|e| panic!("docs/events.md example: {e}\n{b}"));
                if value.get("event_id").is_some() {
                    examples.push(value);
                }
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    examples
}

pub fn at(day: i64, secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(1_525_132_800 + day * 86_400 + secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// An honest seller with history, then a takeover chain.
pub fn story(account: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for day in 0..10 {
        events.push(json!({"event_id": format!("{account}-home-{day}"), "type": "login", "account_id": account,
            "time": at(day, 0), "status": "success", "session_id": format!("{account}-h{day}"),
            "ip": "81.2.69.160", "device_id": "laptop"}));
        events.push(json!({"event_id": format!("{account}-sale-{day}"), "type": "sale", "account_id": account,
            "time": at(day, 60), "amount": 10_000, "currency": "GBP", "session_id": format!("{account}-h{day}")}));
    }
    events.push(json!({"event_id": format!("{account}-atk-login"), "type": "login", "account_id": account,
        "time": at(20, 0), "status": "success", "session_id": "atk", "ip": "185.220.101.4", "device_id": "box"}));
    events.push(json!({"event_id": format!("{account}-atk-change"), "type": "payout_destination_change", "account_id": account,
        "time": at(20, 60), "session_id": "atk",
        "destination": {"institution_id": "23-69-72", "institution_type": "e_money", "country": "GB", "account_number": "4000 1234"}}));
    events.push(
        json!({"event_id": format!("{account}-atk-payout"), "type": "payout", "account_id": account,
        "time": at(21, 0), "payout_id": "p1", "amount": 100_000, "currency": "GBP"}),
    );
    events
}
