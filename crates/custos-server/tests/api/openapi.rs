//! `GET /openapi.json`: the description a real server serves lists every
//! route of the route table, and real answers match the schemas it gives
//! them (checked here with a small validator of the keywords the
//! description uses; Schemathesis checks every operation in CI).

use custos_server::routes::{Access, ROUTES};
use serde_json::{Value, json};

use super::*;

async fn description(server: &TestServer) -> Value {
    let response = server
        .client
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(content_type, "application/json");
    serde_json::from_str(&response.text().await.unwrap()).expect("the description is JSON")
}

/// Follows a `$ref` of the form `#/components/schemas/Name`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The problems of `value` against `schema`, for the keywords the
/// description uses.
fn problems(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(choices) = schema.get("oneOf").and_then(Value::as_array) {
        let mut each = Vec::new();
        for choice in choices {
            let mut inner = Vec::new();
            problems(doc, choice, value, at, &mut inner);
            each.push(inner);
        }
        let matching = each.iter().filter(|inner| inner.is_empty()).count();
        if matching != 1 {
            out.push(format!("{at}: matches {matching} of oneOf: {each:?}"));
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let type_of = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    // An integer is a number too.
    let fits = types.contains(&type_of) || (type_of == "integer" && types.contains(&"number"));
    if !types.is_empty() && !fits {
        out.push(format!("{at}: is {type_of}, described as {types:?}"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Value::Object(map) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !map.contains_key(name) {
                out.push(format!("{at}: lacks required `{name}`"));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                if let Some(v) = map.get(name) {
                    problems(doc, property, v, &format!("{at}.{name}"), out);
                }
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            problems(doc, item_schema, item, &format!("{at}[{i}]"), out);
        }
    }
}

/// Asserts that `body`, answered by `METHOD path` with `status`, matches
/// the description's schema for that answer.
fn assert_described(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let operation = &doc["paths"][path][method.to_ascii_lowercase()];
    let response = &operation["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the description does not list"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    let mut out = Vec::new();
    problems(doc, schema, body, "body", &mut out);
    assert!(
        out.is_empty(),
        "{method} {path} {status}: the answer does not match the description: {out:#?}\n{body:#}"
    );
}

#[tokio::test]
async fn the_description_is_openapi_3_1_and_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    let doc = description(&server).await;

    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "openapi is {}",
        doc["openapi"]
    );
    let mut operations = 0;
    for route in ROUTES {
        let operation = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{} is not described", route.name);
        operations += 1;
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{} has no success answer",
            route.name
        );
        let shared = if route.path.starts_with("/v205/") {
            "#/components/schemas/SiftError"
        } else if route.path.starts_with("/v3/") {
            "#/components/schemas/SiftV3Error"
        } else {
            "#/components/schemas/Error"
        };
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"], shared,
                    "{} {status} does not use the shared error body",
                    route.name
                );
            }
        }
        let security = operation["security"].as_array().unwrap();
        match route.access {
            Access::Open => assert!(security.is_empty(), "{} is open", route.name),
            Access::Bearer(scope) => assert_eq!(
                operation["security"],
                json!([{"bearer": [scope.as_str()]}]),
                "{}",
                route.name
            ),
            Access::Sift(_) | Access::BearerIfMetricsKey(_) => {
                assert!(!security.is_empty(), "{}", route.name)
            }
        }
    }
    // No operation the route table does not have.
    let described: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(described, operations);
    // Every code of the shared body is one of the code table's.
    let codes = &doc["components"]["schemas"]["Code"]["enum"];
    assert_eq!(
        codes.as_array().unwrap().len(),
        custos_server::error::Code::ALL.len()
    );
}

#[tokio::test]
async fn real_answers_match_the_description() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path()).await;
    let doc = description(&server).await;

    let (status, body) = server.post(&documented_examples()[0]).await;
    assert_described(&doc, "POST", "/v1/events", status, &body);
    let batch = Value::Array(documented_examples().into_iter().skip(1).take(3).collect());
    let (status, body) = server.post(&batch).await;
    assert_described(&doc, "POST", "/v1/events", status, &body);
    let (status, body) = server.post(&json!({"type": "login"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_described(&doc, "POST", "/v1/events", status, &body);

    for path in [
        "/v1/events/nope",
        "/v1/rules",
        "/v1/holds",
        "/v1/cases",
        "/v1/webhooks/dead",
    ] {
        let (status, body) = server.get(path).await;
        let described = ROUTES
            .iter()
            .find(|r| r.method == "GET" && matches(r.path, path))
            .unwrap()
            .path;
        assert_described(&doc, "GET", described, status, &body);
    }
    for path in ["/livez", "/readyz"] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_described(&doc, "GET", path, status, &body);
    }
    // Holds and a campaign: three sellers taken over, paid to one mule.
    for seller in ["s1", "s2", "s3"] {
        let (status, answer) = server.post(&json!(story(seller))).await;
        assert_described(&doc, "POST", "/v1/events", status, &answer);
    }
    let (status, body) = server.get("/v1/holds").await;
    assert_eq!(body["holds"].as_array().map(Vec::len), Some(3), "{body}");
    assert_described(&doc, "GET", "/v1/holds", status, &body);
    let (status, body) = server.get("/v1/holds/p1?account_id=s2").await;
    assert_eq!(status, 200, "{body}");
    assert_described(&doc, "GET", "/v1/holds/{hold_id}", status, &body);
    let (status, body) = server
        .send_to(
            reqwest::Method::POST,
            "/v1/payouts/p1/cancel",
            "application/json",
            json!({"analyst": "ana", "reason": "mule", "account_id": "s3"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_described(
        &doc,
        "POST",
        "/v1/payouts/{payout_id}/cancel",
        status,
        &body,
    );
    let (status, body) = server.get("/v1/campaigns").await;
    assert_described(&doc, "GET", "/v1/campaigns", status, &body);
    let id = body["campaigns"][0]["id"]
        .as_str()
        .expect("a campaign")
        .to_string();
    let (status, body) = server.get(&format!("/v1/campaigns/{id}")).await;
    assert_described(&doc, "GET", "/v1/campaigns/{campaign_id}", status, &body);
    let (status, body) = server
        .send_to(
            reqwest::Method::POST,
            &format!("/v1/campaigns/{id}/confirm"),
            "application/json",
            json!({"analyst": "ana", "reason": "one mule"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_described(
        &doc,
        "POST",
        "/v1/campaigns/{campaign_id}/confirm",
        status,
        &body,
    );
    let (status, body) = server.get("/v1/accounts/s1").await;
    assert_described(&doc, "GET", "/v1/accounts/{account_id}", status, &body);
    let (status, body) = server.get("/v1/events/s1-atk-payout").await;
    assert_eq!(status, 200, "{body}");
    assert_described(&doc, "GET", "/v1/events/{event_id}", status, &body);

    // Sift's answers: an event with the score asked for, then the score.
    let login = json!({"$type": "$login", "$api_key": KEY, "$user_id": "u1",
        "$time": 1_525_132_800_000_i64, "$session_id": "u1-1", "$ip": "81.2.69.160",
        "$login_status": "$success"});
    let response = server
        .client
        .post(format!("{}/v205/events?return_score=true", server.base))
        .header("content-type", "application/json")
        .body(login.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_described(&doc, "POST", "/v205/events", status, &body);
    let response = server
        .client
        .get(format!("{}/v205/score/u1", server.base))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_described(&doc, "GET", "/v205/score/{user_id}", status, &body);

    // Sift's two error shapes: a bad key on v205 and on v3.
    let response = server
        .client
        .get(format!("{}/v205/score/someone?api_key=wrong", server.base))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_described(&doc, "GET", "/v205/score/{user_id}", status, &body);
    let response = server
        .client
        .get(format!("{}/v3/accounts/a/decisions", server.base))
        .basic_auth("wrong", Some(""))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_described(
        &doc,
        "GET",
        "/v3/accounts/{account_id}/decisions",
        status,
        &body,
    );
}

/// Whether a concrete path is matched by a route's path pattern.
fn matches(pattern: &str, path: &str) -> bool {
    let (p, q): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == q.len() && p.iter().zip(&q).all(|(a, b)| a.starts_with('{') || a == b)
}
