//! Evidence packs over the API: `GET /v1/campaigns/{id}/evidence` and
//! `GET /v1/cases/{id}/evidence`, signed, scoped to their accounts, and the
//! standard 404 for an id the server does not know.

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

/// The rows of a pack's CSV file, header first (no quoted commas in
/// these tests' cells).
fn csv_rows(pack: &[u8], name: &str) -> Vec<Vec<String>> {
    let bytes = custos_evidence::pack_file(pack, name)
        .unwrap()
        .unwrap_or_else(|| panic!("no {name} in the pack"));
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| line.split(',').map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn a_cases_evidence_pack_holds_the_cases_accounts_only_and_an_unknown_case_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    for seller in ["s1", "s2", "s3"] {
        let (status, answer) = server.post(&json!(story(seller))).await;
        assert_eq!(status, 200, "{answer}");
    }
    // Opened by hand, long after the attack, on two of the three victims.
    let (status, case) = server
        .send_to(
            reqwest::Method::POST,
            "/v1/cases",
            "application/json",
            json!({"analyst": "ana", "reason": "two sellers paid the same mule", "account_id": "s1"})
                .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{case}");
    let id = case["id"].as_str().unwrap().to_string();
    let (status, case) = server
        .send_to(
            reqwest::Method::POST,
            &format!("/v1/cases/{id}/accounts"),
            "application/json",
            json!({"analyst": "ana", "reason": "same mule", "account_id": "s2"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["accounts"], json!(["s1", "s2"]), "{case}");

    let response = custos_server::tls::client()
        .get(format!("{}/v1/cases/{id}/evidence", server.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-tar"
    );
    assert_eq!(
        response.headers()["content-disposition"].to_str().unwrap(),
        format!("attachment; filename=\"{id}-evidence.tar\"")
    );
    let pack = response.bytes().await.unwrap();
    let key = custos_evidence::load_or_create_signing_key(dir.path()).unwrap();
    let public = custos_evidence::sign::public_key_hex(&key);
    let report = custos_evidence::verify(pack.as_ref(), Some(&public));
    assert!(report.passed(), "{:?}", report.failures);
    let scope = report.scope.as_ref().unwrap();
    assert_eq!(scope["kind"], "case");
    assert_eq!(scope["id"], json!(id));
    assert_eq!(scope["accounts"], json!(["s1", "s2"]));
    for file in custos_evidence::FILES {
        assert!(report.ok_files.iter().any(|f| f == file), "{file} missing");
    }

    // The money trail: the two accounts' attack payouts, and nothing of s3.
    let rows = csv_rows(&pack, "money-trail.csv");
    let header = &rows[0];
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (account, event, after) = (
        column("account_id"),
        column("event_id"),
        column("after_risky_change"),
    );
    let mut payouts: Vec<(&str, &str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[account].as_str(), r[event].as_str(), r[after].as_str()))
        .collect();
    payouts.sort();
    assert_eq!(
        payouts,
        [
            ("s1", "s1-atk-payout", "yes"),
            ("s2", "s2-atk-payout", "yes")
        ]
    );
    let events = custos_evidence::pack_file(pack.as_ref(), "events.ndjson")
        .unwrap()
        .unwrap();
    let events = String::from_utf8(events).unwrap();
    assert!(
        events.contains("\"s1-atk-change\""),
        "the attack is in the window"
    );
    assert!(!events.contains("\"account_id\":\"s3\""), "{events}");

    let (status, body) = server.get("/v1/cases/case-nope/evidence").await;
    assert_error(status, &body, 404, "case_not_found");
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn token_match_says_which_numbers_custos_has_seen_and_never_echoes_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    for seller in ["s1", "s2"] {
        let (status, answer) = server.post(&json!(story(seller))).await;
        assert_eq!(status, 200, "{answer}");
    }
    let post = |body: String| {
        server.send_to(
            reqwest::Method::POST,
            "/v1/tokens/match",
            "application/json",
            body,
        )
    };
    // The story's mule, written the platform's way, and a number never seen.
    let (status, answer) = post(
        json!({"destinations": [
            {"institution_id": "236972", "account_number": "40001234"},
            {"institution_id": "23-69-72", "account_number": "9876 5432"},
        ]})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let text = answer.to_string();
    for number in ["40001234", "4000 1234", "98765432", "9876 5432", "5432"] {
        assert!(!text.contains(number), "{number} echoed: {text}");
    }
    let found = &answer["destinations"];
    assert_eq!(found[0]["index"], 0);
    assert_eq!(found[0]["matched"], true, "{answer}");
    assert_eq!(found[0]["accounts"], json!(["s1", "s2"]));
    assert!(
        found[0]["destination_token"]
            .as_str()
            .unwrap()
            .starts_with("tk_")
    );
    assert_eq!(found[1]["matched"], false);
    assert_eq!(found[1]["accounts"], json!([]));
    assert_eq!(answer["matched"], 1);
    // The token is the one the log holds for the mule.
    let (_, account) = server.get("/v1/accounts/s1").await;
    assert_eq!(
        found[0]["destination_token"], account["destination"]["destination"]["account_token"],
        "{account}"
    );

    // A number the body cannot parse is not quoted back.
    let (status, body) = post(
        r#"{"destinations": [{"institution_id": "236972", "account_number": 40001234}]}"#.into(),
    )
    .await;
    let message = assert_error(status, &body, 400, "invalid_json");
    assert!(!message.contains("40001234"), "{message}");
    let (status, body) = post(
        json!({"destinations": [{"institution_id": "236972", "account_number": "--"}]}).to_string(),
    )
    .await;
    assert_error(status, &body, 400, "invalid_field");
    server.server.stop().await.unwrap();
}
