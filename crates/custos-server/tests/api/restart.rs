//! Durability across restarts.

use serde_json::Value;

use super::*;

#[tokio::test]
async fn state_and_decisions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // No configured token key: the generated key file must be reused.
    let mut cfg = config(dir.path());
    cfg.destination_token_key = None;
    let s = TestServer::start(cfg).await;
    let events = story("seller-r");
    let (status, first) = s.post(&Value::Array(events.clone())).await;
    assert_eq!(status, 200);
    let (_, account) = s.get("/v1/accounts/seller-r").await;
    let (_, stored) = s.get("/v1/events/seller-r-atk-payout").await;

    let s = s.restart().await;
    let (_, account_after) = s.get("/v1/accounts/seller-r").await;
    assert_eq!(account, account_after);
    let (_, stored_after) = s.get("/v1/events/seller-r-atk-payout").await;
    assert_eq!(stored, stored_after);
    let (status, again) = s.post(&Value::Array(events)).await;
    assert_eq!(status, 200);
    for (a, b) in first
        .as_array()
        .unwrap()
        .iter()
        .zip(again.as_array().unwrap())
    {
        assert_eq!((&a["action"], &a["reasons"]), (&b["action"], &b["reasons"]));
        assert_eq!(b["duplicate"], true);
    }
    // The same destination sent again after the restart gets the same token.
    let (status, _) = s.post(&serde_json::json!({"event_id": "seller-r-again", "type": "payout", "account_id": "seller-r",
        "time": at(22, 0), "payout_id": "p2", "amount": 5, "currency": "GBP",
        "destination": {"institution_id": "236972", "account_number": "40001234"}})).await;
    assert_eq!(status, 200);
    let (_, payout) = s.get("/v1/events/seller-r-again").await;
    assert_eq!(
        payout["event"]["destination"]["account_token"],
        account["destination"]["destination"]["account_token"]
    );
    assert_eq!(
        payout["decision"]["action"], "hold",
        "recognised as the destination set in the risky session"
    );
    s.server.stop().await.unwrap();
}
