//! `POST /v1/events`: one event, a JSON array of events, or NDJSON.
//!
//! A request is all or nothing: every event is validated before any is
//! decided, and the first bad one rejects the request with its index and
//! field. Validation includes the event's `time`, against the server's
//! clock (`engine.max_future_skew`, `engine.max_event_age`:
//! `time_out_of_range`), and the key's scopes: a `label` needs
//! `labels:write`, an `analyst_action` `holds:write` (`insufficient_scope`).
//! The answer mirrors the request's shape: an object for an object,
//! an array for an array, one line per event for NDJSON.
//!
//! `Content-Type: application/x-ndjson` selects NDJSON; `application/json`
//! and no content type are read as JSON. What `curl -d` sends
//! (`application/x-www-form-urlencoded`) is refused at the edge, with every
//! type an HTML form can send (see `edge`): add
//! `-H 'Content-Type: application/json'`.

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use custos_core::features::Features;
use custos_core::parse::RawEvent;
use custos_core::{Action, EventErrorKind, Reason};
use custos_runtime::{Outcome, PreparedEvent, SubmitError};
use serde::Serialize;

use crate::AppState;
use crate::auth::{Caller, authorize_event};
use crate::error::{ApiError, Code};

const NDJSON: &str = "application/x-ndjson";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single,
    Array,
    Lines,
}

/// What the client gets back for each event.
#[derive(Serialize)]
struct EventAnswer<'a> {
    event_id: &'a str,
    action: Action,
    score: u32,
    reasons: &'a [Reason],
    #[serde(skip_serializing_if = "<[Reason]>::is_empty")]
    shadow: &'a [Reason],
    policy: &'a str,
    rules_version: u64,
    #[serde(skip_serializing_if = "Features::is_empty")]
    features: &'a Features,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

impl<'a> From<&'a Outcome> for EventAnswer<'a> {
    fn from(o: &'a Outcome) -> Self {
        EventAnswer {
            event_id: &o.event_id,
            action: o.decision.action,
            score: o.decision.score,
            reasons: &o.decision.reasons,
            shadow: &o.decision.shadow,
            policy: &o.decision.policy,
            rules_version: o.decision.rules_version,
            features: &o.decision.features,
            duplicate: o.duplicate,
        }
    }
}

pub async fn post_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    peer: Option<Extension<crate::console::PeerAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let lines = match headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) {
        None => false,
        Some(Ok(v)) => {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match essence.as_str() {
                "application/json" => false,
                NDJSON | "application/jsonl" | "application/json-seq" => true,
                _ => return Err(unsupported_media_type()),
            }
        }
        Some(Err(_)) => return Err(unsupported_media_type()),
    };
    let bytes = read_body(&headers, body, state.limits.max_body_bytes).await?;
    let (values, shape) = if lines {
        (split_lines(&bytes)?, Shape::Lines)
    } else {
        let not_json = |e: serde_json::Error| {
            ApiError::new(
                Code::InvalidJson,
                format!("the body is not valid JSON: {e}"),
            )
        };
        // Checked as UTF-8 once here, so that JSON reading does not check
        // every string again (a tenth of the cost of parsing an event).
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ApiError::new(
                Code::InvalidJson,
                format!(
                    "the body is not valid JSON: it is not UTF-8 from byte {}",
                    e.valid_up_to()
                ),
            )
        })?;
        // The first character says which shape to read, so that each event
        // is read straight into its fields (`RawEvent`), never a map first.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => (
                serde_json::from_str::<Vec<RawEvent>>(text).map_err(not_json)?,
                Shape::Array,
            ),
            Some(b'{') => (
                vec![serde_json::from_str::<RawEvent>(text).map_err(not_json)?],
                Shape::Single,
            ),
            _ => {
                // Not JSON at all, or JSON of another kind: say which.
                serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(not_json)?;
                return Err(ApiError::new(
                    Code::InvalidJson,
                    "the body must be an event object or an array of event objects",
                ));
            }
        }
    };
    if values.is_empty() {
        return Err(ApiError::new(
            Code::EmptyBatch,
            "the request holds no events",
        ));
    }
    if values.len() > state.limits.max_batch_events {
        return Err(ApiError::new(
            Code::BatchTooLarge,
            format!(
                "the request holds {} events; the limit is {} per request",
                values.len(),
                state.limits.max_batch_events
            ),
        ));
    }
    let events = parse_all(&state, &caller, values, shape)?;
    let actions = crate::console::actions_sent_as_events(&events);
    let outcomes = state.runtime.submit(events).await.map_err(|e| match e {
        SubmitError::Conflict {
            index,
            ref event_id,
        } if shape != Shape::Single => ApiError::new(
            Code::EventIdConflict,
            format!(
                "event {index}: event_id {event_id:?} is already stored with a different body; \
                 reuse an event_id only to retry the identical event; nothing in this request \
                 was applied"
            ),
        )
        .with_index(index)
        .with_field("event_id"),
        e => submit_error(e),
    })?;
    crate::console::audit_actions_sent_as_events(
        &state,
        &caller.key_name,
        peer.as_deref(),
        actions,
        &outcomes,
    )
    .await;
    respond(&outcomes, shape)
}

/// The error for a refused submission of one event.
pub(crate) fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Conflict { ref event_id, .. } => ApiError::new(
            Code::EventIdConflict,
            format!(
                "event_id {event_id:?} is already stored with a different body; reuse an \
                 event_id only to retry the identical event"
            ),
        )
        .with_field("event_id"),
        SubmitError::Storage(_) => ApiError::unavailable(e.to_string()),
        SubmitError::ShuttingDown => ApiError::new(
            Code::ShuttingDown,
            "the server is shutting down; retry against another instance or later",
        ),
    }
}

/// The error for an event that does not parse, naming its field.
pub(crate) fn event_error(e: custos_core::EventError) -> ApiError {
    let code = match e.kind {
        EventErrorKind::NotAnObject => Code::InvalidEvent,
        EventErrorKind::MissingField => Code::MissingField,
        EventErrorKind::InvalidField => Code::InvalidField,
        EventErrorKind::UnknownEventType => Code::UnknownEventType,
    };
    let message = if e.field.is_empty() {
        e.problem.clone()
    } else {
        e.to_string()
    };
    ApiError::new(code, message).with_field(e.field)
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        Code::UnsupportedMediaType,
        format!("Content-Type must be application/json or {NDJSON}"),
    )
}

fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the body exceeds the limit of {limit} bytes; split it into smaller requests"),
    )
}

pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(payload_too_large(limit));
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(payload_too_large(limit));
                }
                if let Some(timed_out) = err.downcast_ref::<crate::edge::BodyTimedOut>() {
                    return Err(ApiError::new(
                        Code::BodyTimeout,
                        format!("body: {timed_out}; send the whole body at once"),
                    ));
                }
                source = err.source();
            }
            Err(ApiError::new(
                Code::InvalidBody,
                format!("the body could not be read: {e}"),
            ))
        }
    }
}

fn split_lines(bytes: &[u8]) -> Result<Vec<RawEvent>, ApiError> {
    let mut values = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Checked as UTF-8 once, as the body is (`post_events`).
        let text = std::str::from_utf8(line).map_err(|e| {
            ApiError::new(
                Code::InvalidJson,
                format!(
                    "line {} is not valid JSON: it is not UTF-8 from byte {} of the line",
                    n + 1,
                    e.valid_up_to()
                ),
            )
            .with_index(values.len())
        })?;
        let value = serde_json::from_str::<RawEvent>(text).map_err(|e| {
            ApiError::new(
                Code::InvalidJson,
                format!("line {} is not valid JSON: {e}", n + 1),
            )
            .with_index(values.len())
        })?;
        values.push(value);
    }
    Ok(values)
}

fn parse_all(
    state: &AppState,
    caller: &Caller,
    values: Vec<RawEvent>,
    shape: Shape,
) -> Result<Vec<PreparedEvent>, ApiError> {
    let parser = state.runtime.parser();
    let mut events = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        match parser.parse_raw(value) {
            Ok(event) => {
                // A label or analyst action needs its own scope: an ingest
                // key must not release holds by posting one.
                if let Err(error) = authorize_event(caller, event.event_type) {
                    return Err(match shape {
                        Shape::Single => error,
                        _ => ApiError {
                            message: format!(
                                "event {index}: {}; nothing in this request was applied",
                                error.message
                            ),
                            ..error
                        }
                        .with_index(index),
                    });
                }
                if let Err(e) = state.time_bound.check_now(&event) {
                    let error =
                        ApiError::new(Code::TimeOutOfRange, e.to_string()).with_field("time");
                    return Err(match shape {
                        Shape::Single => error,
                        _ => ApiError {
                            message: format!(
                                "event {index}: {e}; nothing in this request was applied"
                            ),
                            ..error
                        }
                        .with_index(index),
                    });
                }
                events.push(
                    PreparedEvent::new(event, parser)
                        .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?,
                )
            }
            Err(e) if shape == Shape::Single => return Err(event_error(e)),
            Err(e) => {
                let message = if e.field.is_empty() {
                    e.problem.clone()
                } else {
                    e.to_string()
                };
                let field = e.field.clone();
                let mut error = event_error(e);
                error.message =
                    format!("event {index}: {message}; nothing in this request was applied");
                return Err(error.with_index(index).with_field(field));
            }
        }
    }
    Ok(events)
}

fn respond(outcomes: &[Outcome], shape: Shape) -> Result<Response, ApiError> {
    let encode_error = |e: serde_json::Error| ApiError::new(Code::Internal, e.to_string());
    match shape {
        Shape::Single => {
            let answer = EventAnswer::from(&outcomes[0]);
            Ok(axum::Json(answer).into_response())
        }
        Shape::Array => {
            let answers: Vec<EventAnswer> = outcomes.iter().map(EventAnswer::from).collect();
            Ok(axum::Json(answers).into_response())
        }
        Shape::Lines => {
            let mut body = Vec::with_capacity(outcomes.len() * 160);
            for outcome in outcomes {
                serde_json::to_writer(&mut body, &EventAnswer::from(outcome))
                    .map_err(encode_error)?;
                body.push(b'\n');
            }
            Ok(([(header::CONTENT_TYPE, NDJSON)], body).into_response())
        }
    }
}
