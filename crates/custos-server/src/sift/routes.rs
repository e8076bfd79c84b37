//! The v205 routes: events, scores and labels, answered in Sift's shapes.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use custos_core::Action;
use custos_core::event::EventType;
use serde_json::{Map, Value, json};

use super::auth::{authorize, authorize_plan, basic_key};
use super::events::{Check, Plan, SIFT_ABUSE_TYPES, Step, map_event, map_label, short_hash};
use super::execute::{Executed, Sender, execute};
use super::score::{AbuseTypes, AccountView, load, scores};
use super::{SiftError, now_millis, now_seconds, status, unavailable};
use crate::AppState;
use crate::extract::Path as UrlPath;
use crate::routes::Required;

/// Who records an unlabel, as the analyst of its `clear_account` action.
const UNLABEL_ANALYST: &str = "sift-labels-api";

/// The query parameters, in order; a malformed query is Sift's 53.
fn query(uri: &Uri) -> Result<Vec<(String, String)>, SiftError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(params)| params)
        .map_err(|e| SiftError::invalid(format!("the query string cannot be read: {e}")))
}

fn flag(name: &str, value: &str) -> Result<bool, SiftError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SiftError::invalid(format!(
            "`{name}`: expected true or false, found {value:?}"
        ))),
    }
}

/// What `/v205/events` is asked to return.
#[derive(Debug, Clone, Copy)]
struct TrackFlags {
    score: bool,
    action: bool,
    workflow: bool,
    warnings: bool,
    abuse: AbuseTypes,
}

fn track_flags(params: &[(String, String)]) -> Result<TrackFlags, SiftError> {
    let mut flags = TrackFlags {
        score: false,
        action: false,
        workflow: false,
        warnings: false,
        abuse: AbuseTypes::ALL,
    };
    for (name, value) in params {
        match name.as_str() {
            "return_score" => flags.score = flag(name, value)?,
            "return_action" => flags.action = flag(name, value)?,
            "return_workflow_status" => flags.workflow = flag(name, value)?,
            "abuse_types" => flags.abuse = AbuseTypes::parse(value)?,
            "fields" => flags.warnings = fields_param(value, true)?,
            "return_route_info" | "force_workflow_run" => {
                if flag(name, value)? {
                    return Err(SiftError::invalid(format!(
                        "`{name}`: Custos has no workflow routes to report or force; every \
                         event is decided as it arrives"
                    )));
                }
            }
            other => {
                return Err(SiftError::invalid(format!(
                    "unknown query parameter `{other}`"
                )));
            }
        }
    }
    Ok(flags)
}

/// `fields`: `WARNINGS` is answered (Custos refuses rather than warns, so
/// there are none); `SCORE_PERCENTILES` is not computed.
fn fields_param(value: &str, warnings_allowed: bool) -> Result<bool, SiftError> {
    let mut warnings = false;
    for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match field.to_ascii_uppercase().as_str() {
            "WARNINGS" if warnings_allowed => warnings = true,
            "SCORE_PERCENTILES" => {
                return Err(SiftError::invalid(
                    "`fields`: Custos does not compute score percentiles",
                ));
            }
            other => {
                return Err(SiftError::invalid(format!(
                    "`fields`: unknown field {other:?}"
                )));
            }
        }
    }
    Ok(warnings)
}

/// Reads a JSON object body. Errors carry the request, without its key.
async fn object_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Map<String, Value>, String), SiftError> {
    let bytes = crate::events::read_body(headers, body, state.limits.max_body_bytes)
        .await
        .map_err(SiftError::from_api)?;
    let text = String::from_utf8_lossy(&bytes);
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        SiftError::new(
            StatusCode::BAD_REQUEST,
            status::INVALID_JSON,
            format!("invalid json in request: {e}"),
        )
        .with_request(Some(redact_raw(&text)))
    })?;
    let Value::Object(map) = value else {
        return Err(SiftError::new(
            StatusCode::BAD_REQUEST,
            status::INVALID_JSON,
            "invalid json in request: expected one event object",
        )
        .with_request(Some(redact_raw(&text))));
    };
    let mut echoed = map.clone();
    echoed.remove("$api_key");
    Ok((map, Value::Object(echoed).to_string()))
}

/// The body key if there is one, else the HTTP Basic user name.
fn body_key(body: &Map<String, Value>, headers: &HeaderMap) -> Option<String> {
    match body.get("$api_key") {
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => None,
        None => basic_key(headers),
    }
}

/// The raw text of a body that is not JSON, with the string after every
/// `"$api_key"` blanked: it cannot be parsed, but must not be echoed.
fn redact_raw(text: &str) -> String {
    const KEY: &str = "\"$api_key\"";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = text[from..].find(KEY) {
        let mut i = from + found + KEY.len();
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b':') {
            i += 1;
        }
        out.push_str(&text[from..i]);
        if i < bytes.len() && bytes[i] == b'"' {
            let mut end = i + 1;
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            from = (end + 1).min(bytes.len());
        } else {
            from = i;
        }
    }
    out.push_str(&text[from..]);
    out
}

pub(crate) async fn post_events(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    peer: Option<Extension<crate::console::PeerAddr>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, SiftError> {
    let (body, echoed) = object_body(&state, &headers, body).await?;
    let with_request = |e: SiftError| e.with_request(Some(echoed.clone()));
    let caller = authorize(&state, body_key(&body, &headers).as_deref(), &required)
        .map_err(|e| with_request(e.into()))?;
    let flags = track_flags(&query(&uri)?).map_err(with_request)?;
    let plan = map_event(&body, now_millis()).map_err(with_request)?;
    authorize_plan(&caller, &plan).map_err(with_request)?;
    let sender = Sender {
        key_name: &caller.key_name,
        address: peer.as_deref(),
    };
    let executed = execute(&state, sender, plan).await.map_err(with_request)?;
    let mut answer = json!({
        "status": status::OK,
        "error_message": "OK",
        "time": now_seconds(),
        "request": echoed,
        "custos": executed.summary(),
    });
    if flags.score || flags.workflow || flags.action {
        let view = load(&state, &executed.account_id)
            .await
            .map_err(with_request)?;
        let mut score_response = if view.known {
            json!({
                "status": status::OK,
                "error_message": "OK",
                "user_id": executed.account_id,
                "scores": scores(&view, flags.abuse),
            })
        } else {
            let e = SiftError::no_scoreable_events(&executed.account_id);
            json!({"status": e.status, "error_message": e.message, "user_id": executed.account_id})
        };
        if flags.workflow {
            score_response["workflow_statuses"] = workflow_statuses(&executed);
        }
        if flags.action {
            score_response["actions"] = actions(&executed);
        }
        answer["score_response"] = score_response;
    }
    if flags.warnings {
        answer["warnings"] = json!({"count": 0, "items": []});
    }
    Ok(Json(answer).into_response())
}

/// Which Sift abuse type a Custos event type is judged for.
fn abuse_types_of(event_type: &str) -> Value {
    match event_type {
        "payout" | "loan_application" | "loan_disbursement" | "sale" => json!(["payment_abuse"]),
        "label" | "analyst_action" => json!(["account_takeover", "payment_abuse"]),
        _ => json!(["account_takeover"]),
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Allow => "Allow",
        Action::Challenge => "Challenge",
        Action::Review => "Review",
        Action::Hold => "Hold",
        Action::Block => "Block",
    }
}

/// One workflow status per Custos event: Custos's rules are the workflow,
/// and their action is the decision (`config.decision_id`).
fn workflow_statuses(executed: &Executed) -> Value {
    executed
        .recorded
        .iter()
        .map(|r| {
            json!({
                "id": r.event_id,
                "state": "finished",
                "config": {"id": r.decision.policy, "version": r.decision.rules_version.to_string()},
                "config_display_name": format!("custos {} rules v{}", r.decision.policy,
                                               r.decision.rules_version),
                "abuse_types": abuse_types_of(&r.event_type),
                "entity": {"type": "user", "id": executed.account_id},
                "history": [
                    {"app": "decision", "name": action_name(r.decision.action), "state": "finished",
                     "config": {"decision_id": r.decision.action}},
                    {"app": "event", "name": r.event_type, "state": "finished",
                     "config": {"event_id": r.event_id}},
                    {"app": "user", "name": "Entity", "state": "finished"},
                ],
            })
        })
        .collect()
}

/// `return_action`: one action per Custos event decided stronger than
/// `allow`, triggered by the rules that fired.
fn actions(executed: &Executed) -> Value {
    executed
        .recorded
        .iter()
        .filter(|r| r.decision.action != Action::Allow)
        .map(|r| {
            let triggers: Vec<Value> = r
                .decision
                .reasons
                .iter()
                .filter(|reason| reason.action == r.decision.action)
                .map(|reason| {
                    json!({"type": "formula", "source": "synchronous_action",
                           "trigger": {"id": reason.code}})
                })
                .collect();
            json!({
                "id": format!("{}:{}", r.event_id, r.decision.action),
                "action": {"id": r.decision.action},
                "entity": {"id": executed.account_id},
                "time": now_millis(),
                "triggers": triggers,
            })
        })
        .collect()
}

/// Score routes: the key comes as `api_key` or HTTP Basic; `abuse_types`
/// and `fields` may be given.
async fn score_view(
    state: &AppState,
    required: &Required,
    user_id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    extra: &[&str],
) -> Result<(AccountView, AbuseTypes, Vec<(String, String)>), SiftError> {
    let params = query(uri)?;
    let key = params
        .iter()
        .find(|(name, _)| name == "api_key")
        .map(|(_, value)| value.clone())
        .or_else(|| basic_key(headers));
    authorize(state, key.as_deref(), required)?;
    let mut wanted = AbuseTypes::ALL;
    for (name, value) in &params {
        match name.as_str() {
            "api_key" => {}
            "abuse_types" => wanted = AbuseTypes::parse(value)?,
            "fields" => {
                fields_param(value, false)?;
            }
            other if extra.contains(&other) => {}
            other => {
                return Err(SiftError::invalid(format!(
                    "unknown query parameter `{other}`"
                )));
            }
        }
    }
    let view = load(state, user_id).await?;
    if !view.known {
        return Err(SiftError::no_scoreable_events(user_id));
    }
    Ok((view, wanted, params))
}

/// `GET /v205/score/{user_id}`.
pub(crate) async fn get_score(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    UrlPath(user_id): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, SiftError> {
    let (view, wanted, _) = score_view(&state, &required, &user_id, &uri, &headers, &[]).await?;
    Ok(Json(json!({
        "status": status::OK,
        "error_message": "OK",
        "user_id": user_id,
        "scores": scores(&view, wanted),
    }))
    .into_response())
}

async fn user_score(
    state: AppState,
    required: Required,
    user_id: String,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, SiftError> {
    let (view, wanted, _) = score_view(&state, &required, &user_id, &uri, &headers, &[]).await?;
    Ok(Json(json!({
        "status": status::OK,
        "error_message": "OK",
        "entity_type": "user",
        "entity_id": user_id,
        "scores": scores(&view, wanted),
        "latest_decisions": super::decisions::latest_applied(&view.records, true),
    }))
    .into_response())
}

/// `GET` and `POST /v205/users/{user_id}/score`: the latest scores. Sift
/// re-scores on `POST`; Custos's scores are read from its decisions, which
/// are already current, so both answer the same.
pub(crate) async fn get_user_score(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    UrlPath(user_id): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, SiftError> {
    user_score(state, required, user_id, uri, headers).await
}

/// `POST /v205/users/{user_id}/labels`.
pub(crate) async fn post_label(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    peer: Option<Extension<crate::console::PeerAddr>>,
    UrlPath(user_id): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, SiftError> {
    let (body, echoed) = object_body(&state, &headers, body).await?;
    let with_request = |e: SiftError| e.with_request(Some(echoed.clone()));
    let caller = authorize(&state, body_key(&body, &headers).as_deref(), &required)
        .map_err(|e| with_request(e.into()))?;
    // The client sends labels through its `track`, which adds no query
    // parameters unless asked; none change what a label does.
    if let Some((name, _)) = query(&uri).map_err(with_request)?.first() {
        return Err(with_request(SiftError::invalid(format!(
            "unknown query parameter `{name}`"
        ))));
    }
    let plan = map_label(&body, &user_id, now_millis()).map_err(with_request)?;
    authorize_plan(&caller, &plan).map_err(with_request)?;
    let sender = Sender {
        key_name: &caller.key_name,
        address: peer.as_deref(),
    };
    let executed = execute(&state, sender, plan).await.map_err(with_request)?;
    Ok(Json(json!({
        "status": status::OK,
        "error_message": "OK",
        "time": now_seconds(),
        "request": echoed,
        "custos": executed.summary(),
    }))
    .into_response())
}

/// `DELETE /v205/users/{user_id}/labels`: Custos cannot take a label's
/// effects back (cancelled holds stay cancelled, denied destinations stay
/// denied), but the at-risk state a `fraud` or `compromise_reported` label
/// put the account in ends, as an analyst's `clear_account` would end it.
/// With `abuse_type`, only a label of that abuse type is undone. Anything
/// else has nothing to undo. Answers 204, as Sift does.
pub(crate) async fn delete_labels(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    peer: Option<Extension<crate::console::PeerAddr>>,
    UrlPath(user_id): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, SiftError> {
    let params = query(&uri)?;
    let key = params
        .iter()
        .find(|(name, _)| name == "api_key")
        .map(|(_, value)| value.clone())
        .or_else(|| basic_key(&headers));
    // The unlabel is recorded as a `clear_account` analyst action; the
    // route's `labels:write` covers it, as it covers the label it undoes.
    let caller = authorize(&state, key.as_deref(), &required)?;
    let mut abuse_type = None;
    for (name, value) in &params {
        match name.as_str() {
            "api_key" => {}
            "abuse_type" => {
                let value = value.trim().to_ascii_lowercase();
                if !SIFT_ABUSE_TYPES.contains(&value.as_str()) {
                    return Err(SiftError::invalid(format!(
                        "`abuse_type`: unknown abuse type {value:?}; expected one of {}",
                        SIFT_ABUSE_TYPES.join(", ")
                    )));
                }
                abuse_type = Some(value);
            }
            other => {
                return Err(SiftError::invalid(format!(
                    "unknown query parameter `{other}`"
                )));
            }
        }
    }
    let no_content = || StatusCode::NO_CONTENT.into_response();
    let account = state.runtime.account(&user_id).await.map_err(unavailable)?;
    let Some(at_risk) = account.and_then(|a| a.at_risk) else {
        return Ok(no_content());
    };
    if at_risk.event_type != EventType::Label {
        return Ok(no_content());
    }
    if let Some(wanted) = &abuse_type {
        let store = state.runtime.store().clone();
        let lookup = at_risk.event_id.clone();
        let record = tokio::task::spawn_blocking(move || store.get_event(&lookup))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        let labelled = record.and_then(|r| {
            let event: Value = serde_json::from_str(&r.event_json).ok()?;
            Some(
                event
                    .get("attributes")?
                    .get("sift_abuse_type")?
                    .as_str()?
                    .to_string(),
            )
        });
        if labelled.is_some_and(|labelled| &labelled != wanted) {
            return Ok(no_content());
        }
    }
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(unavailable)?;
    let reason = match &abuse_type {
        Some(abuse) => format!("label removed through the Sift labels api (abuse_type {abuse})"),
        None => "label removed through the Sift labels api".to_string(),
    };
    let mut event = Map::new();
    event.insert(
        "event_id".into(),
        json!(format!(
            "sift-unlabel-{}",
            short_hash(&[&user_id, &at_risk.event_id])
        )),
    );
    event.insert("type".into(), json!("analyst_action"));
    event.insert("account_id".into(), json!(user_id));
    event.insert("time".into(), json!(time));
    event.insert("action".into(), json!("clear_account"));
    event.insert("analyst".into(), json!(UNLABEL_ANALYST));
    event.insert("reason".into(), json!(reason));
    let plan = Plan {
        account_id: user_id,
        steps: vec![Step {
            event,
            // The same label is undone once: a second call is answered
            // from the log.
            check: Check::OncePerEventId,
            destination_path: None,
        }],
        not_recorded: None,
    };
    let sender = Sender {
        key_name: &caller.key_name,
        address: peer.as_deref(),
    };
    execute(&state, sender, plan).await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bodies_are_echoed_without_their_key() {
        assert_eq!(
            redact_raw(r#"{"$api_key": "secret-key", "$type": "$login",,}"#),
            r#"{"$api_key": "", "$type": "$login",,}"#
        );
        assert_eq!(
            redact_raw(r#"{"$api_key":"a\"b", "x": {"$api_key" :"c"}"#),
            r#"{"$api_key":"", "x": {"$api_key" :""}"#
        );
        assert_eq!(
            redact_raw(r#"{"$api_key": "unterminated"#),
            r#"{"$api_key": """#
        );
        assert_eq!(redact_raw("not json at all"), "not json at all");
    }

    #[test]
    fn flags_are_read_and_unsupported_ones_refused() {
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let flags = track_flags(&params(&[
            ("return_score", "true"),
            ("return_workflow_status", "TRUE"),
            ("abuse_types", "payment_abuse"),
            ("return_route_info", "false"),
        ]))
        .unwrap();
        assert!(flags.score && flags.workflow && !flags.action);
        assert!(!flags.abuse.account_takeover && flags.abuse.payment_abuse);
        for bad in [
            ("return_score", "yes"),
            ("force_workflow_run", "true"),
            ("fields", "SCORE_PERCENTILES"),
            ("abuse_types", "content_abuse"),
            ("something", "1"),
        ] {
            assert_eq!(
                track_flags(&params(&[bad])).unwrap_err().status,
                53,
                "{bad:?}"
            );
        }
    }
}
