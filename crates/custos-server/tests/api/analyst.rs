//! The analyst routes: holds, account risk and campaigns, over HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestServer, assert_error, story};

async fn act(server: &TestServer, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
    server
        .send_to(Method::POST, path, "application/json", body.to_string())
        .await
}

fn by_ana(reason: &str) -> Value {
    json!({"analyst": "ana", "reason": reason})
}

#[tokio::test]
async fn a_held_payout_is_listed_then_released_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    let (status, answer) = server.post(&json!(story("s1"))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer[answer.as_array().unwrap().len() - 1]["action"],
        "hold"
    );

    let (status, list) = server.get("/v1/holds").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["status"], "held");
    assert_eq!(list["open"], 1);
    let hold = &list["holds"][0];
    assert_eq!(hold["hold_id"], "p1");
    assert_eq!(hold["account_id"], "s1");
    assert_eq!(hold["event_id"], "s1-atk-payout");
    assert_eq!(hold["amount"], 100_000);
    assert!(hold["expires_at"].as_str().is_some(), "{hold}");
    assert!(
        hold["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("payout_while_account_at_risk"))
    );
    let (status, one) = server.get("/v1/holds/p1").await;
    assert_eq!((status.as_u16(), &one["hold_id"]), (200, &json!("p1")));

    // Who and why are required.
    let (status, body) = act(&server, "/v1/payouts/p1/release", json!({"analyst": "ana"})).await;
    let message = assert_error(status, &body, 400, "missing_field");
    assert_eq!(body["field"], "reason", "{message}");
    let (status, body) = act(
        &server,
        "/v1/payouts/p1/release",
        json!({"analyst": "ana", "reason": "ok", "extra": 1}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_json");
    let (status, body) = act(&server, "/v1/payouts/nope/release", by_ana("x")).await;
    assert_error(status, &body, 404, "hold_not_found");

    let (status, released) = act(
        &server,
        "/v1/payouts/p1/release",
        by_ana("seller confirmed on the phone"),
    )
    .await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["status"], "released");
    assert_eq!(released["resolution"]["by"], "ana");
    assert_eq!(
        released["resolution"]["reason"],
        "seller confirmed on the phone"
    );
    let (status, body) = act(&server, "/v1/payouts/p1/cancel", by_ana("too late")).await;
    let message = assert_error(status, &body, 409, "hold_not_open");
    assert!(message.contains("released"), "{message}");

    let (_, open) = server.get("/v1/holds").await;
    assert_eq!(open["holds"], json!([]));
    let (_, done) = server.get("/v1/holds?status=released&account_id=s1").await;
    assert_eq!(done["holds"][0]["hold_id"], "p1");
    let (status, body) = server.get("/v1/holds?status=paid").await;
    assert_error(status, &body, 400, "invalid_field");
    let (status, body) = server.get("/v1/holds?limit=0").await;
    assert_error(status, &body, 400, "invalid_field");

    // The action is an event in the account's log.
    let (_, account) = server.get("/v1/accounts/s1").await;
    assert_eq!(account["recent_events"][0]["type"], "analyst_action");

    // A rebuild from the log keeps it.
    let server = server.restart().await;
    let (_, after) = server.get("/v1/holds/p1").await;
    assert_eq!(after["status"], "released");
    assert_eq!(after["resolution"]["by"], "ana");
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_retried_action_with_its_action_id_does_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    server.post(&json!(story("s1"))).await;
    let body = json!({"analyst": "ana", "reason": "mule", "action_id": "case-7-cancel"});
    let (status, first) = act(&server, "/v1/payouts/p1/cancel", body.clone()).await;
    assert_eq!(
        (status.as_u16(), &first["status"]),
        (200, &json!("cancelled"))
    );
    // The retry comes in a later second than the action it repeats.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, again) = act(&server, "/v1/payouts/p1/cancel", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first, "answered from the log");
    let (status, body) = act(
        &server,
        "/v1/payouts/p1/cancel",
        json!({"analyst": "bob", "reason": "other", "action_id": "case-7-cancel"}),
    )
    .await;
    assert_error(status, &body, 409, "event_id_conflict");
    assert_eq!(body["field"], "action_id", "{body}");
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn clearing_an_account_ends_its_risk() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    server.post(&json!(story("s1"))).await;
    let (_, account) = server.get("/v1/accounts/s1").await;
    assert_eq!(account["at_risk"]["event_id"], "s1-atk-change", "{account}");
    let (status, cleared) = act(
        &server,
        "/v1/accounts/s1/clear",
        by_ana("verified by phone"),
    )
    .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["cleared"]["by"], "ana");
    let (_, account) = server.get("/v1/accounts/s1").await;
    assert!(account.get("at_risk").is_none(), "{account}");
    let (status, body) = act(&server, "/v1/accounts/s1/clear", by_ana("again")).await;
    assert_error(status, &body, 409, "account_not_at_risk");
    let (status, body) = act(&server, "/v1/accounts/nobody/clear", by_ana("x")).await;
    assert_error(status, &body, 404, "account_not_found");
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_shared_mule_makes_a_campaign_an_analyst_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    // Three sellers taken over, all paid to one mule account.
    for seller in ["s1", "s2", "s3"] {
        let (status, answer) = server.post(&json!(story(seller))).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, list) = server.get("/v1/campaigns").await;
    assert_eq!(status, 200, "{list}");
    let campaigns = list["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 1, "{list}");
    let id = campaigns[0]["id"].as_str().unwrap().to_string();
    assert_eq!(campaigns[0]["status"], "suspected");
    let (status, campaign) = server.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(status, 200, "{campaign}");
    let mut members: Vec<&str> = campaign["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["account_id"].as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["s1", "s2", "s3"]);
    assert_eq!(campaign["destinations"][0]["account_last4"], "1234");
    assert_eq!(campaign["holds"].as_array().unwrap().len(), 3, "{campaign}");
    // The three payouts share the id `p1`: a lookup must name the account.
    let (status, body) = server.get("/v1/holds/p1").await;
    assert_error(status, &body, 409, "hold_ambiguous");
    let (status, hold) = server.get("/v1/holds/p1?account_id=s2").await;
    assert_eq!((status.as_u16(), &hold["account_id"]), (200, &json!("s2")));
    let (status, body) = act(&server, "/v1/payouts/p1/release", by_ana("x")).await;
    assert_error(status, &body, 409, "hold_ambiguous");
    let (status, cancelled) = act(
        &server,
        "/v1/payouts/p1/cancel",
        json!({"analyst": "ana", "reason": "mule", "account_id": "s3"}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), &cancelled["account_id"]),
        (200, &json!("s3"))
    );

    let (status, body) = server.get("/v1/campaigns/cmp_999").await;
    assert_error(status, &body, 404, "campaign_not_found");
    let (status, body) = server.get("/v1/campaigns?status=open").await;
    assert_error(status, &body, 400, "invalid_field");

    let (status, confirmed) = act(
        &server,
        &format!("/v1/campaigns/{id}/confirm"),
        by_ana("three sellers, one mule"),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    let (status, body) = act(
        &server,
        &format!("/v1/campaigns/{id}/confirm"),
        by_ana("again"),
    )
    .await;
    assert_error(status, &body, 409, "campaign_unchanged");
    let (_, confirmed_list) = server.get("/v1/campaigns?status=confirmed").await;
    assert_eq!(confirmed_list["campaigns"][0]["id"], json!(id));

    // s1's owner confirms the account (no session): no longer at risk, but
    // still a live member of the confirmed campaign. Support can clear it
    // out of the campaign; the campaign stays confirmed.
    let (status, answer) = server
        .post(
            &json!({"event_id": "s1-owner-confirms", "type": "verification",
                      "account_id": "s1", "time": crate::at(22, 0), "status": "passed"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, account) = server.get("/v1/accounts/s1").await;
    assert!(account.get("at_risk").is_none(), "{account}");
    let (status, cleared) = act(&server, "/v1/accounts/s1/clear", by_ana("owner back")).await;
    assert_eq!(status, 200, "{cleared}");
    let (_, campaign) = server.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(campaign["status"], "confirmed", "{campaign}");
    let s1 = campaign["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["account_id"] == "s1")
        .unwrap();
    assert_eq!(s1["cleared"], true, "{campaign}");
    let (status, body) = act(&server, "/v1/accounts/s1/clear", by_ana("again")).await;
    assert_error(status, &body, 409, "account_not_at_risk");
    server.server.stop().await.unwrap();
}
