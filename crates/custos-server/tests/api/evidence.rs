//! `GET /v1/campaigns/{id}/evidence`: a signed pack for a campaign the
//! server found, and the standard 404 for one it did not.

use serde_json::json;

use crate::{KEY, TestServer, assert_error, story};

#[tokio::test]
async fn a_campaigns_evidence_pack_is_served_signed_and_an_unknown_one_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    for seller in ["s1", "s2", "s3"] {
        let (status, answer) = server.post(&json!(story(seller))).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (_, list) = server.get("/v1/campaigns").await;
    let id = list["campaigns"][0]["id"].as_str().unwrap().to_string();

    let response = custos_server::tls::client()
        .get(format!("{}/v1/campaigns/{id}/evidence", server.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-tar"
    );
    let pack = response.bytes().await.unwrap();
    let key = custos_evidence::load_or_create_signing_key(dir.path()).unwrap();
    let public = custos_evidence::sign::public_key_hex(&key);
    let report = custos_evidence::verify(pack.as_ref(), Some(&public));
    assert!(report.passed(), "{:?}", report.failures);
    assert_eq!(report.scope.as_ref().unwrap()["id"], json!(id));
    let mut members: Vec<String> = report.scope.as_ref().unwrap()["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    members.sort();
    assert_eq!(members, ["s1", "s2", "s3"]);

    let (status, body) = server.get("/v1/campaigns/cmp_999/evidence").await;
    assert_error(status, &body, 404, "campaign_not_found");
    server.server.stop().await.unwrap();
}
