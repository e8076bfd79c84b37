//! Sift's Decisions API (v3): the decisions an analyst or a platform can
//! apply to a user, applying one, and reading the latest applied.
//!
//! Custos's decisions on events are its actions (`allow` ... `block`, in
//! `workflow_statuses` at `/v205/events`). What this API applies is a
//! person's judgement about an account, and Custos records those as
//! labels, with their effects (docs/holds.md):
//!
//! | decision | category | Custos |
//! |---|---|---|
//! | `looks_ok_account_takeover` | `ACCEPT` | `legit` label: clears the account, releases its holds |
//! | `looks_bad_account_takeover` | `BLOCK` | `compromise_reported` label: account at risk, holds cancelled, attacker's destinations denied |
//! | `looks_ok_payment_abuse` | `ACCEPT` | `legit` label |
//! | `looks_bad_payment_abuse` | `BLOCK` | `fraud` label |
//!
//! Only users: Custos has no orders, sessions or content to decide on, so
//! those entity types are refused. The `{account_id}` in the path is Sift's
//! account; Custos serves one platform and takes any.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use custos_store::StoredRecord;
use serde_json::{Map, Value, json};

use super::auth::{authorize, basic_key};
use super::events::{Check, Plan, Step, base_id};
use super::execute::{Sender, execute};
use super::score::load;
use super::{V3Error, now_millis};
use crate::AppState;
use crate::extract::Path as UrlPath;
use crate::routes::Required;

/// One decision that can be applied to a user.
struct Catalogued {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    category: &'static str,
    abuse_type: &'static str,
    /// The Custos label it records.
    label: &'static str,
}

const CATALOG: &[Catalogued] = &[
    Catalogued {
        id: "looks_ok_account_takeover",
        name: "Looks OK (account takeover)",
        description: "the account is its owner's: clears its risk and releases its held payouts",
        category: "ACCEPT",
        abuse_type: "account_takeover",
        label: "legit",
    },
    Catalogued {
        id: "looks_bad_account_takeover",
        name: "Looks bad (account takeover)",
        description: "the account was taken over: holds its payouts, cancels open holds and \
                      denies the destinations the attacker set",
        category: "BLOCK",
        abuse_type: "account_takeover",
        label: "compromise_reported",
    },
    Catalogued {
        id: "looks_ok_payment_abuse",
        name: "Looks OK (payment abuse)",
        description: "the account's payouts are legitimate: clears its risk and releases its \
                      held payouts",
        category: "ACCEPT",
        abuse_type: "payment_abuse",
        label: "legit",
    },
    Catalogued {
        id: "looks_bad_payment_abuse",
        name: "Looks bad (payment abuse)",
        description: "the account is fraudulent: cancels its open holds and denies the \
                      destinations it set",
        category: "BLOCK",
        abuse_type: "payment_abuse",
        label: "fraud",
    },
];

const SOURCES: &[&str] = &["MANUAL_REVIEW", "AUTOMATED_RULE", "CHARGEBACK"];
const MAX_LIMIT: usize = 100;

fn authenticate(
    state: &AppState,
    required: &Required,
    headers: &HeaderMap,
) -> Result<crate::auth::Caller, V3Error> {
    Ok(authorize(state, basic_key(headers).as_deref(), required)?)
}

fn query(uri: &Uri) -> Result<Vec<(String, String)>, V3Error> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(params)| params)
        .map_err(|e| V3Error::bad_request("query", format!("cannot be read: {e}")))
}

fn catalogued(c: &Catalogued) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "entity_type": "user",
        "abuse_type": c.abuse_type,
        "category": c.category,
        "webhook_url": "",
        "created_at": 0,
        "created_by": "custos",
        "updated_at": 0,
        "updated_by": "custos",
    })
}

/// `GET /v3/accounts/{account_id}/decisions`: `entity_type`, `abuse_types`,
/// `limit`, `from`.
pub(crate) async fn list_decisions(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    UrlPath(account_id): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, V3Error> {
    authenticate(&state, &required, &headers)?;
    let mut abuse_types: Option<Vec<String>> = None;
    let mut limit = MAX_LIMIT;
    let mut from = 0usize;
    for (name, value) in query(&uri)? {
        match name.as_str() {
            "entity_type" => {
                if !value.eq_ignore_ascii_case("user") {
                    return Err(V3Error::bad_request(
                        "entity_type",
                        format!("Custos decides on users only, not {value:?}"),
                    ));
                }
            }
            "abuse_types" => {
                let wanted: Vec<String> = value
                    .split(',')
                    .map(|a| a.trim().to_ascii_lowercase())
                    .filter(|a| !a.is_empty())
                    .collect();
                if let Some(unknown) = wanted
                    .iter()
                    .find(|a| !super::events::SIFT_ABUSE_TYPES.contains(&a.as_str()))
                {
                    return Err(V3Error::bad_request(
                        "abuse_types",
                        format!("unknown abuse type {unknown:?}"),
                    ));
                }
                abuse_types = Some(wanted);
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        V3Error::bad_request("limit", format!("must be 1 to {MAX_LIMIT}"))
                    })?;
            }
            "from" => {
                from = value
                    .parse::<usize>()
                    .map_err(|_| V3Error::bad_request("from", "must be a non-negative integer"))?;
            }
            other => {
                return Err(V3Error::bad_request(other, "unknown query parameter"));
            }
        }
    }
    let matching: Vec<&Catalogued> = CATALOG
        .iter()
        .filter(|c| {
            abuse_types
                .as_ref()
                .is_none_or(|wanted| wanted.iter().any(|a| a == c.abuse_type))
        })
        .collect();
    let data: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(limit)
        .map(|c| catalogued(c))
        .collect();
    let has_more = from + data.len() < matching.len();
    let mut body = json!({"data": data, "has_more": has_more, "total_results": matching.len()});
    if has_more {
        let mut next = format!(
            "/v3/accounts/{account_id}/decisions?entity_type=user&from={}&limit={limit}",
            from + limit
        );
        if let Some(wanted) = &abuse_types {
            next.push_str(&format!("&abuse_types={}", wanted.join(",")));
        }
        body["next_ref"] = json!(next);
    }
    Ok(Json(body).into_response())
}

/// The latest decision applied through this API for each abuse type, from
/// the account's stored label events (newest first). `detailed` gives the
/// shape of `latest_decisions` in a user score; otherwise the shape of
/// `GET .../users/{user_id}/decisions`.
pub(crate) fn latest_applied(records: &[StoredRecord], detailed: bool) -> Value {
    let mut latest = Map::new();
    for record in records.iter().filter(|r| r.event_type == "label") {
        let Ok(event) = serde_json::from_str::<Value>(&record.event_json) else {
            continue;
        };
        let attributes = event.get("attributes");
        let attribute = |name: &str| attributes.and_then(|a| a.get(name)).and_then(Value::as_str);
        let Some(decision) =
            attribute("sift_decision_id").and_then(|id| CATALOG.iter().find(|c| c.id == id))
        else {
            continue;
        };
        if latest.contains_key(decision.abuse_type) {
            continue;
        }
        let time_ms = record.event_time.saturating_mul(1000);
        let entry = if detailed {
            json!({
                "id": decision.id,
                "category": decision.category,
                "source": attribute("sift_decision_source"),
                "description": attribute("sift_description").unwrap_or(decision.description),
                "time": time_ms,
            })
        } else {
            json!({"decision": {"id": decision.id}, "time": time_ms})
        };
        latest.insert(decision.abuse_type.to_string(), entry);
    }
    Value::Object(latest)
}

/// `GET /v3/accounts/{account_id}/users/{user_id}/decisions`.
pub(crate) async fn get_user_decisions(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    UrlPath((_account_id, user_id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, V3Error> {
    authenticate(&state, &required, &headers)?;
    let view = load(&state, &user_id).await?;
    Ok(Json(json!({"decisions": latest_applied(&view.records, false)})).into_response())
}

/// `POST /v3/accounts/{account_id}/users/{user_id}/decisions`: `{"decision_id",
/// "source", "analyst", "description", "time"}`, recorded as a Custos label.
pub(crate) async fn apply_user_decision(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    peer: Option<Extension<crate::console::PeerAddr>>,
    UrlPath((_account_id, user_id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V3Error> {
    let caller = authenticate(&state, &required, &headers)?;
    let bytes = crate::events::read_body(&headers, body, state.limits.max_body_bytes)
        .await
        .map_err(|e| V3Error::from(super::SiftError::from_api(e)))?;
    let body: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(V3Error::bad_request("body", "expected a JSON object")),
        Err(e) => return Err(V3Error::bad_request("body", format!("invalid json: {e}"))),
    };
    if let Some(name) = body.keys().find(|k| {
        !["decision_id", "source", "analyst", "description", "time"].contains(&k.as_str())
    }) {
        return Err(V3Error::bad_request(name, "unknown field"));
    }
    let text = |name: &str| -> Result<Option<String>, V3Error> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(V3Error::bad_request(name, "expected a string")),
        }
    };
    let decision_id =
        text("decision_id")?.ok_or_else(|| V3Error::bad_request("decision_id", "required"))?;
    let decision = CATALOG
        .iter()
        .find(|c| c.id == decision_id)
        .ok_or_else(|| {
            let known: Vec<&str> = CATALOG.iter().map(|c| c.id).collect();
            V3Error::bad_request(
                "decision_id",
                format!(
                    "unknown decision {decision_id:?}; expected one of {}",
                    known.join(", ")
                ),
            )
        })?;
    let source = text("source")?
        .map(|s| s.to_ascii_uppercase())
        .ok_or_else(|| V3Error::bad_request("source", "required"))?;
    if !SOURCES.contains(&source.as_str()) {
        return Err(V3Error::bad_request(
            "source",
            format!("expected one of {}", SOURCES.join(", ")),
        ));
    }
    let analyst = text("analyst")?;
    if source == "MANUAL_REVIEW" && analyst.is_none() {
        return Err(V3Error::bad_request(
            "analyst",
            "required when source is MANUAL_REVIEW",
        ));
    }
    let time_ms = match body.get("time") {
        None | Some(Value::Null) => now_millis(),
        Some(Value::Number(n)) => n.as_i64().filter(|t| *t > 0).ok_or_else(|| {
            V3Error::bad_request("time", "expected positive milliseconds since the epoch")
        })?,
        Some(_) => {
            return Err(V3Error::bad_request(
                "time",
                "expected milliseconds since the epoch",
            ));
        }
    };
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or_else(|| V3Error::bad_request("time", "out of range"))?;
    let mut attributes = Map::new();
    attributes.insert("sift_type".into(), json!("$apply_decision"));
    attributes.insert("sift_decision_id".into(), json!(decision.id));
    attributes.insert("sift_decision_source".into(), json!(source));
    attributes.insert("sift_abuse_type".into(), json!(decision.abuse_type));
    if let Some(description) = text("description")? {
        attributes.insert("sift_description".into(), json!(description));
    }
    let mut event = Map::new();
    event.insert(
        "event_id".into(),
        json!(format!(
            "{}.label",
            base_id("$apply_decision", &user_id, &body, time_ms)
        )),
    );
    event.insert("type".into(), json!("label"));
    event.insert("account_id".into(), json!(user_id));
    event.insert("time".into(), json!(time));
    event.insert("label".into(), json!(decision.label));
    event.insert(
        "analyst".into(),
        json!(analyst.unwrap_or_else(|| source.to_ascii_lowercase())),
    );
    event.insert("attributes".into(), Value::Object(attributes));
    let plan = Plan {
        account_id: user_id.clone(),
        steps: vec![Step {
            event,
            check: Check::Always,
            destination_path: None,
        }],
        not_recorded: None,
    };
    let sender = Sender {
        key_name: &caller.key_name,
        address: peer.as_deref(),
    };
    let executed = execute(&state, sender, plan).await?;
    Ok(Json(json!({
        "entity": {"id": user_id, "type": "user"},
        "decision": {"id": decision.id},
        "time": time_ms,
        "custos": executed.summary(),
    }))
    .into_response())
}
