//! API keys, the development key, and the open endpoints.

use serde_json::Value;

use super::*;

#[tokio::test]
async fn v1_needs_a_valid_bearer_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let url = format!("{}/v1/accounts/a", s.base);
    let no_key = s.client.get(&url).send().await.unwrap();
    let status = no_key.status();
    assert_error(
        status,
        &no_key.json::<Value>().await.unwrap(),
        401,
        "missing_api_key",
    );
    let wrong = s
        .client
        .get(&url)
        .bearer_auth("not-the-key-0123456789")
        .send()
        .await
        .unwrap();
    let status = wrong.status();
    assert_error(
        status,
        &wrong.json::<Value>().await.unwrap(),
        401,
        "invalid_api_key",
    );
    let dev = s
        .client
        .get(&url)
        .bearer_auth(custos_config::DEVELOPMENT_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dev.status(),
        401,
        "the development key is off once real keys are configured"
    );
    let basic = s
        .client
        .get(&url)
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    let ok = s.client.get(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(
        ok.status(),
        404,
        "authenticated; the account does not exist"
    );
    // Health and metrics are open.
    assert_eq!(
        s.client
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s.client
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn the_development_key_works_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.api_keys.clear();
    let s = TestServer::start(cfg.clone()).await;
    let response = s
        .client
        .get(format!("{}/v1/accounts/a", s.base))
        .bearer_auth(custos_config::DEVELOPMENT_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    s.server.stop().await.unwrap();

    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let err = custos_server::start(cfg).await.err().expect("refused");
    assert!(err.to_string().contains("not loopback"), "{err}");
}

#[tokio::test]
async fn metrics_count_events_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let (status, _) = s.post(&Value::Array(story("seller-m"))).await;
    assert_eq!(status, 200);
    let text = s.metrics().await;
    assert!(
        text.contains(r#"custos_events_total{type="payout",action="hold"}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"custos_http_requests_total{method="POST",route="/v1/events",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains("custos_commit_seconds"), "{text}");
}
