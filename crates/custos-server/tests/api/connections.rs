//! The accept loop over raw sockets: header, body and idle timeouts, the
//! connection limit and load shedding.
//!
//! Timeouts are short here so the tests are quick, and the waits generous:
//! each test proves that a connection is closed or answered at all, never
//! how fast.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Longest wait for something the server must do by itself. Without the
/// timeouts under test, these waits would run out and the test fail.
const PATIENCE: Duration = Duration::from_secs(20);

/// An answer read off a raw connection.
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

/// Opens a raw connection to the server.
pub async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.server.addr).await.unwrap()
}

/// Reads one answer with a `Content-Length` body; `None` when the server
/// closes (or resets) the connection before a complete answer.
pub async fn read_answer(stream: &mut TcpStream) -> Option<RawAnswer> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                let status = head.split(' ').nth(1)?.parse().ok()?;
                return Some(RawAnswer { status, head, body });
            }
        }
        match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no answer and no close within {PATIENCE:?}"),
        }
    }
}

/// Waits until the server closes the connection; fails if it sends
/// anything first or keeps it open past [`PATIENCE`].
pub async fn closed_without_answer(stream: &mut TcpStream) {
    let mut chunk = [0u8; 1024];
    match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!(
            "expected a close, got {:?}",
            String::from_utf8_lossy(&chunk[..n])
        ),
        Err(_) => panic!("the connection is still open after {PATIENCE:?}"),
    }
}

/// Sends a request and reads its answer.
pub async fn exchange(stream: &mut TcpStream, request: &str) -> Option<RawAnswer> {
    stream.write_all(request.as_bytes()).await.ok()?;
    read_answer(stream).await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n\r\n")
}

fn with_http(dir: &Path, http: custos_config::HttpConfig) -> Config {
    Config {
        http,
        ..config(dir)
    }
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(with_http(
        dir.path(),
        custos_config::HttpConfig {
            header_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    ))
    .await;
    let mut slow = connect(&s).await;
    slow.write_all(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        .await
        .unwrap();
    closed_without_answer(&mut slow).await;
    // A client that never sends a byte is closed the same way.
    let mut silent = connect(&s).await;
    closed_without_answer(&mut silent).await;
    // Others are served all along.
    let mut good = connect(&s).await;
    let answer = exchange(&mut good, &get("/livez")).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_gets_408_and_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(with_http(
        dir.path(),
        custos_config::HttpConfig {
            body_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    ))
    .await;
    for (path, auth) in [
        ("/v1/events", format!("Authorization: Bearer {KEY}\r\n")),
        ("/v205/events", String::new()),
    ] {
        let mut stream = connect(&s).await;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"event_id\":"
        );
        let answer = exchange(&mut stream, &request)
            .await
            .expect("an answer, not a hang");
        assert_eq!(answer.status, 408, "{path}: {}", answer.body);
        let body = answer.json();
        if path == "/v1/events" {
            let message = assert_error(StatusCode::REQUEST_TIMEOUT, &body, 408, "body_timeout");
            assert!(message.contains("body"), "{message}");
        } else {
            // Sift's shape: 57, the body could not be read.
            assert_eq!(body["status"], 57, "{body}");
        }
        closed_without_answer(&mut stream).await;
    }
    // The server is fine.
    let (status, _) = s.post(&json!(story("seller-t")[0])).await;
    assert_eq!(status, 200);
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(with_http(
        dir.path(),
        custos_config::HttpConfig {
            header_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    ))
    .await;
    let mut stream = connect(&s).await;
    let first = exchange(&mut stream, &get("/livez")).await.unwrap();
    assert_eq!(first.status, 200);
    assert_ne!(
        first.header("connection").as_deref(),
        Some("close"),
        "kept alive after an answer"
    );
    let second = exchange(&mut stream, &get("/readyz")).await.unwrap();
    assert_eq!(second.status, 200, "the same connection serves again");
    closed_without_answer(&mut stream).await;
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn above_the_limit_connections_are_shed_then_refused_and_served_again_once_load_goes_down() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(with_http(
        dir.path(),
        custos_config::HttpConfig {
            max_connections: Some(2),
            shed_connections: Some(1),
            header_timeout: Duration::from_secs(60),
            ..Default::default()
        },
    ))
    .await;
    // Two connections take the two places: one idle, one kept alive.
    // Connections are accepted in order, so once the second is answered,
    // the first holds its place too.
    let idle = connect(&s).await;
    let mut kept = connect(&s).await;
    assert_eq!(
        exchange(&mut kept, &get("/livez")).await.unwrap().status,
        200
    );

    // The next one takes the only shed place and stays idle; the one after
    // it is closed at once, unanswered.
    let shed_idle = connect(&s).await;
    let mut refused = connect(&s).await;
    let _ = refused.write_all(get("/livez").as_bytes()).await;
    closed_without_answer(&mut refused).await;

    // With the shed place free again, new connections get 503 overloaded
    // (JSON, Retry-After), and liveness still answers on them.
    drop(shed_idle);
    let overloaded = eventually(&s, &get("/v1/accounts/a"), 503).await;
    assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        &overloaded.json(),
        503,
        "overloaded",
    );
    assert_eq!(overloaded.header("retry-after").as_deref(), Some("1"));
    assert_eq!(overloaded.header("connection").as_deref(), Some("close"));
    let live = eventually(&s, &get("/livez"), 200).await;
    assert_eq!(live.json()["status"], "ok");
    // The connection already open is served as usual.
    let answer = exchange(&mut kept, &get("/healthz")).await.unwrap();
    assert_eq!(answer.status, 200);
    let answer = exchange(&mut kept, &get("/v1/accounts/a")).await.unwrap();
    assert_eq!(answer.status, 404, "{}", answer.body);

    // Load goes down: new connections are served again.
    drop(idle);
    drop(kept);
    let answer = eventually(&s, &get("/v1/accounts/a"), 404).await;
    assert_eq!(answer.json()["code"], "account_not_found");
    let metrics = eventually(&s, &get("/metrics"), 200).await;
    assert!(
        metrics.body.contains("custos_http_shed_connections_total"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("custos_http_refused_connections_total"),
        "{}",
        metrics.body
    );
    s.server.stop().await.unwrap();
}

/// Sends `request` on new connections until one is answered with `status`
/// (places are freed when the server has seen a close, a moment after the
/// client closed).
async fn eventually(s: &TestServer, request: &str, status: u16) -> RawAnswer {
    let mut last = None;
    for _ in 0..100 {
        let mut stream = connect(s).await;
        match exchange(&mut stream, request).await {
            Some(answer) if answer.status == status => return answer,
            other => last = other.map(|a| (a.status, a.body)),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never answered {status}; last: {last:?}");
}
