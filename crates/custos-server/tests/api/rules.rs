//! Rule sets over HTTP: show, check, install, persist, edit lists.

use serde_json::{Value, json};

use crate::{TestServer, assert_error, at, story};

/// A body with an `override` confirming `items`.
fn confirmed(mut body: Value, items: &[&str]) -> Value {
    body["override"] = json!({"confirm_removal": items, "reason": "replacing the default policy",
                              "analyst": "ana"});
    body
}

/// What `deny_rule_set` removes from the default: its lists, and the holds
/// on loan disbursements (it blocks payouts itself).
const DENY_OVER_DEFAULT: [&str; 3] = [
    "list:blocked_ips",
    "list:denied_destinations",
    "protection:loan_disbursement",
];

fn deny_rule_set(extra_rule: Value) -> Value {
    json!({
        "name": "strict",
        "lists": {"mules": {"kind": "destination", "entries": []}},
        "rules": [
            {"id": "mule_destination", "description": "paid or set to a known mule",
             "events": ["payout_destination_change", "payout"],
             "when": "destination.token in lists.mules", "action": "block", "score": 100},
            extra_rule
        ]
    })
}

#[tokio::test]
async fn the_default_rules_are_live_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let (status, body) = s.get("/v1/rules").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["version"].as_u64(), body["name"].as_str()),
        (Some(1), Some("default"))
    );
    let high = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "high_login_risk")
        .unwrap();
    assert_eq!(high["action"], "challenge");
    assert!(
        high["reads"]
            .as_array()
            .unwrap()
            .contains(&json!("login.risk")),
        "{high}"
    );
    assert_eq!(body["lists"]["denied_destinations"]["kind"], "destination");
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_rules_get_every_error_with_position_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let bad = json!({"rules": [
        {"id": "a", "when": "login.rsk > 1", "action": "block"},
        {"id": "b", "when": "event.amount > \"x\"", "action": "hold", "score": 500}
    ]});
    let (status, body) = s
        .send_to(
            reqwest::Method::POST,
            "/v1/rules",
            "application/json",
            bad.to_string(),
        )
        .await;
    let message = assert_error(status, &body, 400, "invalid_rules");
    assert!(message.contains("3 problems"), "{message}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors[0]["rule"], "a");
    assert_eq!(errors[0]["field"], "when");
    assert_eq!(errors[0]["position"], json!({"line": 1, "column": 1}));
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `login.risk`")
    );
    assert!(errors[0]["snippet"].as_str().unwrap().contains("^^^^^^^^^"));
    let (_, live) = s.get("/v1/rules").await;
    assert_eq!(live["version"], 1);
    // A body that is not a rule set at all.
    let (status, body) = s
        .send_to(
            reqwest::Method::POST,
            "/v1/rules",
            "application/json",
            r#"{"rulez": []}"#.into(),
        )
        .await;
    assert_error(status, &body, 400, "invalid_json");
    let (status, body) = s
        .send_to(
            reqwest::Method::POST,
            "/v1/rules",
            "application/toml",
            "[[rule]\nid=".into(),
        )
        .await;
    assert_error(status, &body, 400, "invalid_toml");
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn an_installed_rule_set_decides_survives_restart_and_lists_are_editable() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let (status, body) = s
        .send_to(
            reqwest::Method::POST,
            "/v1/rules/check",
            "application/json",
            deny_rule_set(
                json!({"id": "big_payout", "events": ["payout"], "when": "event.amount >= 50000",
            "action": "review", "mode": "shadow"}),
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true);
    let (_, live) = s.get("/v1/rules").await;
    assert_eq!(live["version"], 1, "check installs nothing");

    let (status, body) = s
        .send_to(
            reqwest::Method::POST,
            "/v1/rules",
            "application/json",
            confirmed(
                deny_rule_set(
                    json!({"id": "big_payout", "events": ["payout"], "when": "event.amount >= 50000",
                "action": "review", "mode": "shadow"}),
                ),
                &DENY_OVER_DEFAULT,
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 2);

    // The attacker's chain under the new set: the change is allowed (no
    // rule for it), the big payout only trips the shadow rule.
    let (status, answer) = s.post(&Value::Array(story("seller-r"))).await;
    assert_eq!(status, 200, "{answer}");
    let answers = answer["results"]
        .as_array()
        .or_else(|| answer.as_array())
        .cloned()
        .unwrap_or_else(|| vec![answer.clone()]);
    let payout = answers.last().unwrap();
    assert_eq!(payout["action"], "allow", "{payout}");
    assert_eq!(payout["policy"], "strict");
    assert_eq!(payout["rules_version"], 2);
    assert_eq!(payout["shadow"][0]["code"], "big_payout");
    assert_eq!(payout["shadow"][0]["saw"]["event.amount"], 100_000);

    // The mule's token goes on the list: a new version blocks it.
    let (_, event) = s.get("/v1/events/seller-r-atk-change").await;
    let token = event["event"]["destination"]["account_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = s
        .send_to(
            reqwest::Method::PATCH,
            "/v1/lists/mules",
            "application/json",
            json!({"add": [token.clone()]}).to_string(),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["version"].as_u64()),
        (201, Some(3)),
        "{body}"
    );
    let (_, list) = s.get("/v1/lists/mules").await;
    assert_eq!(list["entries"], json!([token]));
    let (_, answer) = s
        .post(
            &json!({"event_id": "seller-r-p2", "type": "payout", "account_id": "seller-r",
        "time": at(22, 0), "payout_id": "p2", "amount": 100, "currency": "GBP"}),
        )
        .await;
    assert_eq!(answer["action"], "block", "{answer}");
    assert_eq!(answer["rules_version"], 3);
    assert_eq!(
        answer["reasons"][0]["saw"]["destination.token"],
        json!(token)
    );

    // Bad list edits name the problem; an unknown list is 404.
    let (status, body) = s
        .send_to(
            reqwest::Method::PUT,
            "/v1/lists/mules",
            "application/json",
            r#"{"entrys": []}"#.into(),
        )
        .await;
    assert_error(status, &body, 400, "invalid_list_edit");
    let (status, body) = s
        .send_to(
            reqwest::Method::PATCH,
            "/v1/lists/nope",
            "application/json",
            r#"{"add": ["x"]}"#.into(),
        )
        .await;
    assert_error(status, &body, 404, "list_not_found");

    // Every version is kept; after a restart the newest is still live.
    let s = s.restart().await;
    let (_, live) = s.get("/v1/rules").await;
    assert_eq!(
        (live["version"].as_u64(), live["name"].as_str()),
        (Some(3), Some("strict"))
    );
    assert_eq!(live["lists"]["mules"]["size"], 1);
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn rules_can_be_posted_as_toml() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let toml = r#"
name = "from-toml"

[override]
confirm_removal = ["protection:payout", "protection:loan_disbursement", "list:blocked_ips",
                   "list:denied_destinations"]
reason = "reviews only while the new policy is tried"
analyst = "ana"

[[rule]]
id = "night_payout"
events = ["payout"]
when = '''
event.amount > 10
  && has(event.session_id)
'''
action = "review"
"#;
    let (status, body) = s
        .send_to(
            reqwest::Method::POST,
            "/v1/rules",
            "application/toml",
            toml.into(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, live) = s.get("/v1/rules").await;
    assert_eq!(live["name"], "from-toml");
    let (_, version) = s.get("/v1/rules/2").await;
    assert_eq!(version["removal_override"]["analyst"], "ana", "{version}");
    assert!(version["source"].get("override").is_none(), "{version}");
    assert_eq!(
        live["rules"][0]["reads"],
        json!(["event.amount", "event.session_id"])
    );
    s.server.stop().await.unwrap();
}

/// The value of one `custos_rule_hits_total` series, 0 when absent.
fn rule_hits(text: &str, rule: &str, mode: &str, action: &str) -> f64 {
    let series =
        format!(r#"custos_rule_hits_total{{rule="{rule}",mode="{mode}",action="{action}"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.trim().parse().unwrap_or_else(|e| panic!("{e}: {v}")))
        .unwrap_or(0.0)
}

/// The recorder is process-wide and the tests run in parallel, so the rules
/// counted here have ids no other test uses.
#[tokio::test]
async fn metrics_count_rule_hits() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let rules = json!({"name": "counted", "rules": [
        {"id": "counted_payout_hold", "events": ["payout", "loan_disbursement"],
         "when": "event.amount > 0", "action": "hold", "score": 50},
        {"id": "counted_login_shadow", "events": ["login"], "mode": "shadow",
         "when": "has(event.session_id)", "action": "challenge", "score": 10}]});
    let post = |body: Value| {
        s.send_to(
            reqwest::Method::POST,
            "/v1/rules",
            "application/json",
            body.to_string(),
        )
    };
    let (status, refused) = post(rules.clone()).await;
    assert_eq!(status, 409, "{refused}");
    let items = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "confirm_removal")
        .map(|e| e["items"].clone())
        .unwrap_or_else(|| panic!("no confirm_removal in {refused}"));
    let items: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    let (status, body) = post(confirmed(rules, &items)).await;
    assert_eq!(status, 201, "{body}");

    let before = s.metrics().await;
    assert_eq!(
        rule_hits(&before, "counted_payout_hold", "active", "hold"),
        0.0
    );
    // story(): 10 honest logins and sales, the attacker's login, the
    // destination change and one payout: 11 logins with a session, 1 payout.
    let (status, answers) = s.post(&Value::Array(story("seller-h"))).await;
    assert_eq!(status, 200, "{answers}");
    let text = s.metrics().await;
    assert_eq!(
        rule_hits(&text, "counted_payout_hold", "active", "hold"),
        1.0,
        "{text}"
    );
    assert_eq!(
        rule_hits(&text, "counted_login_shadow", "shadow", "challenge"),
        11.0,
        "{text}"
    );
    // Sending the same events again answers from the log and counts nothing.
    let (status, _) = s.post(&Value::Array(story("seller-h"))).await;
    assert_eq!(status, 200);
    let again = s.metrics().await;
    assert_eq!(
        rule_hits(&again, "counted_login_shadow", "shadow", "challenge"),
        11.0
    );
    s.server.stop().await.unwrap();
}

/// `POST /v1/rules {}` used to answer 201 with zero rules: payouts of
/// accounts at risk were then allowed and the lists were gone.
#[tokio::test]
async fn a_rule_set_that_removes_protection_is_refused_unless_confirmed_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let post = |body: Value| {
        s.send_to(
            reqwest::Method::POST,
            "/v1/rules",
            "application/json",
            body.to_string(),
        )
    };
    let (status, body) = post(json!({})).await;
    let message = assert_error(status, &body, 409, "rules_removal_unconfirmed");
    assert!(
        message.starts_with("the new version would remove every active rule (")
            && message.contains("nothing was changed"),
        "{message}"
    );
    let errors = body["errors"].as_array().unwrap();
    let field = |name: &str| {
        errors
            .iter()
            .find(|e| e["field"] == name)
            .unwrap_or_else(|| panic!("no {name} in {body}"))["items"]
            .clone()
    };
    assert!(
        field("removed_rules")
            .as_array()
            .unwrap()
            .contains(&json!("payout_while_account_at_risk"))
    );
    assert_eq!(
        field("lost_payout_protection"),
        json!(["payout", "loan_disbursement"])
    );
    assert_eq!(
        field("removed_lists"),
        json!(["blocked_ips", "denied_destinations"])
    );
    let items: Vec<String> = serde_json::from_value(field("confirm_removal")).unwrap();
    assert!(items.contains(&"rule:payout_while_account_at_risk".to_string()));
    // Nothing changed: the default still holds the attacker's payout.
    let (_, live) = s.get("/v1/rules").await;
    assert_eq!(live["version"], 1);
    let (_, answers) = s.post(&Value::Array(story("seller-e"))).await;
    assert_eq!(
        answers.as_array().unwrap().last().unwrap()["action"],
        "hold"
    );
    // The check says what a set would remove, and installs nothing.
    let (status, check) = s
        .send_to(
            reqwest::Method::POST,
            "/v1/rules/check",
            "application/json",
            "{}".into(),
        )
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["would_remove"], json!(items));

    // An override needs who and why, and exactly the items removed.
    let mut no_reason = confirmed(json!({}), &[]);
    no_reason["override"]["confirm_removal"] = json!(items);
    no_reason["override"]["reason"] = json!("");
    let (status, body) = post(no_reason).await;
    assert_error(status, &body, 400, "invalid_removal_override");
    assert_eq!(body["field"], "override.reason");
    let mut partial = confirmed(json!({}), &["protection:payout"]);
    let (status, body) = post(partial.clone()).await;
    assert_error(status, &body, 409, "rules_removal_unconfirmed");
    partial["override"]["confirm_removal"] = json!(["list:nope"]);
    let (status, body) = post(partial).await;
    let message = assert_error(status, &body, 400, "invalid_removal_override");
    assert!(message.contains("`list:nope` is not removed"), "{message}");
    let (status, body) = post(json!({"override": {"confirm": []}})).await;
    assert_error(status, &body, 400, "invalid_removal_override");
    let (_, live) = s.get("/v1/rules").await;
    assert_eq!(live["version"], 1, "no refused request changed anything");

    // Confirmed: installed, and the override is kept with the version.
    let mut full = confirmed(json!({}), &[]);
    full["override"]["confirm_removal"] = json!(items);
    let (status, body) = post(full).await;
    assert_eq!(
        (status.as_u16(), body["version"].as_u64()),
        (201, Some(2)),
        "{body}"
    );
    let (_, version) = s.get("/v1/rules/2").await;
    let audit = &version["removal_override"];
    assert_eq!(
        (
            &audit["analyst"],
            &audit["reason"],
            &audit["via"],
            &audit["replaced_version"]
        ),
        (
            &json!("ana"),
            &json!("replacing the default policy"),
            &json!("api"),
            &json!(1)
        ),
        "{version}"
    );
    assert_eq!(
        audit["removed"]["lost_payout_protection"],
        json!(["payout", "loan_disbursement"])
    );
    let (_, first) = s.get("/v1/rules/1").await;
    assert!(first.get("removal_override").is_none(), "{first}");
    // It survives a restart, like every version.
    let s = s.restart().await;
    let (_, version) = s.get("/v1/rules/2").await;
    assert_eq!(version["removal_override"]["analyst"], "ana");
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_list_edit_that_empties_a_list_the_rules_read_needs_an_override() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::in_dir(dir.path()).await;
    let mut rules = deny_rule_set(
        json!({"id": "hold_loans", "events": ["loan_disbursement"], "when": "true", "action": "hold"}),
    );
    rules["lists"]["mules"]["entries"] = json!(["tk_mule_1", "tk_mule_2"]);
    rules["lists"]["unused"] = json!({"kind": "ip", "entries": ["10.0.0.1"]});
    let body = confirmed(rules, &["list:blocked_ips", "list:denied_destinations"]);
    let (status, body) = s
        .send_to(
            reqwest::Method::POST,
            "/v1/rules",
            "application/json",
            body.to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    async fn edit(
        s: &TestServer,
        method: reqwest::Method,
        name: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        s.send_to(
            method,
            &format!("/v1/lists/{name}"),
            "application/json",
            body.to_string(),
        )
        .await
    }

    // Removing one entry is an ordinary edit.
    let (status, body) = edit(
        &s,
        reqwest::Method::PATCH,
        "mules",
        json!({"remove": ["tk_mule_1"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Emptying it, either way, is refused.
    let (status, body) = edit(
        &s,
        reqwest::Method::PATCH,
        "mules",
        json!({"remove": ["tk_mule_2"]}),
    )
    .await;
    let message = assert_error(status, &body, 409, "rules_removal_unconfirmed");
    assert!(
        message.contains("the list mules that active rules read (emptied)"),
        "{message}"
    );
    assert_eq!(body["errors"][0]["field"], "emptied_lists");
    let (status, body) = edit(&s, reqwest::Method::PUT, "mules", json!({"entries": []})).await;
    assert_error(status, &body, 409, "rules_removal_unconfirmed");
    let (_, list) = s.get("/v1/lists/mules").await;
    assert_eq!(list["entries"], json!(["tk_mule_2"]));
    // A list no active rule reads may be emptied.
    let (status, body) = edit(&s, reqwest::Method::PUT, "unused", json!({"entries": []})).await;
    assert_eq!(status, 201, "{body}");
    // With the override, the edit goes through and is audited.
    let body = confirmed(json!({"entries": []}), &["list:mules"]);
    let (status, body) = edit(&s, reqwest::Method::PUT, "mules", body).await;
    assert_eq!(status, 201, "{body}");
    let version = body["version"].as_u64().unwrap();
    let (_, stored) = s.get(&format!("/v1/rules/{version}")).await;
    assert_eq!(
        stored["removal_override"]["removed"]["emptied_lists"],
        json!(["mules"]),
        "{stored}"
    );
    s.server.stop().await.unwrap();
}
