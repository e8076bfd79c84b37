//! Sift compatibility: the routes Sift's official clients call, answering
//! in Sift's shapes, backed by Custos's engine.
//!
//! A platform that already sends Sift events points its client's `api_url`
//! at Custos and changes nothing else. Each Sift request is translated into
//! Custos events (`events.rs`, with payment methods turned into payout
//! destinations in `destination.rs`), validated by the ordinary
//! [`custos_core::EventParser`], decided and durably recorded like events
//! sent to `/v1/events`, and answered in Sift's shape. `docs/sift.md` is the
//! field-by-field contract; this header says how the code is laid out and why.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `POST /v205/events` | `$api_key` in the body, or HTTP Basic | a reserved event, mapped to one or more Custos events; `return_score`, `return_action`, `return_workflow_status`, `abuse_types` |
//! | `GET /v205/score/{user_id}` | `api_key` query parameter, or HTTP Basic | the account's scores |
//! | `GET`, `POST /v205/users/{user_id}/score` | same | the account's scores and latest applied decisions (`POST` does not re-decide anything) |
//! | `POST /v205/users/{user_id}/labels` | `$api_key` in the body, or HTTP Basic | a Custos `label` event |
//! | `DELETE /v205/users/{user_id}/labels` | `api_key` query parameter, or HTTP Basic | ends the at-risk state a label caused (`clear_account`) |
//! | `GET /v3/accounts/{account_id}/decisions` | HTTP Basic | the decisions that can be applied |
//! | `GET`, `POST /v3/accounts/{account_id}/users/{user_id}/decisions` | HTTP Basic | the latest applied decisions; apply one (a Custos `label` event) |
//!
//! Why translation and not a second engine: Sift's reserved events are a
//! superset of what Custos decides on, so the translation either lands a
//! field in a Custos field, keeps it as an attribute (reserved fields as
//! `sift_<name>`, custom fields under their own name), or rejects the
//! request in Sift's error shape. Nothing is dropped without saying so: a
//! request that changes nothing Custos tracks (a pending verification, an
//! `$update_account` with no new destination, password, email or phone) is
//! answered `status: 0` with `custos.not_recorded` saying why.
//!
//! Keys are the same keys as `/v1` ([`crate::auth::ApiKeys`], compared in
//! constant time), with the same scopes: the route table
//! (`crate::routes`) gives each Sift route its scope, checked in `auth.rs`
//! once the handler has the key (a key without it gets HTTP 403 with
//! status 51, or `insufficient_scope` on v3). Only where the key travels
//! differs, as in Sift. The
//! `$api_key` is never stored and never echoed: the `request` Sift echoes
//! back has it removed.
//!
//! Event ids: Sift events carry none, so each Custos event id is derived
//! from the request (a SHA-256 of the account, the request without its key
//! and the event time). The same request sent twice is answered from the log
//! and changes nothing; a `$withdrawal`'s id comes from its
//! `$transaction_id`, so its `$pending` and `$success` are one payout.
//!
//! Scores (`score.rs`) are derived from stored decisions, not from a model of
//! Sift's: see `docs/sift.md` for the exact rule.

pub(crate) mod auth;
pub(crate) mod decisions;
mod destination;
mod events;
mod execute;
pub(crate) mod routes;
mod score;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, Code};

/// Translates one Events API body the way `POST /v205/events` does, up to
/// the Custos events it would record, recording nothing: the entry of the
/// Sift fuzz target (`fuzz/`). A refusal is its Sift status and message.
/// `user_id` set translates a Labels API body for that user instead.
#[doc(hidden)]
pub fn translate_for_fuzzing(
    body: &[u8],
    label_user_id: Option<&str>,
    now_ms: i64,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, (i32, String)> {
    let body = match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => return Err((status::INVALID_BODY, "the body must be an object".into())),
        Err(e) => return Err((status::INVALID_JSON, e.to_string())),
    };
    let plan = match label_user_id {
        None => events::map_event(&body, now_ms),
        Some(user) => events::map_label(&body, user, now_ms),
    };
    plan.map(|plan| plan.steps.into_iter().map(|step| step.event).collect())
        .map_err(|e| (e.status, e.message))
}

/// Sift's Events API status codes (the `status` field of every answer).
pub(crate) mod status {
    pub const OK: i32 = 0;
    /// Unexpected server-side error.
    pub const SERVER_ERROR: i32 = -1;
    /// Service currently unavailable; retry later.
    pub const UNAVAILABLE: i32 = -4;
    pub const INVALID_API_KEY: i32 = 51;
    pub const INVALID_FIELD_NAME: i32 = 52;
    pub const INVALID_FIELD_VALUE: i32 = 53;
    pub const NO_SCOREABLE_EVENTS: i32 = 54;
    pub const MISSING_FIELD: i32 = 55;
    pub const INVALID_JSON: i32 = 56;
    pub const INVALID_BODY: i32 = 57;
    pub const NOT_RESERVED_FIELD: i32 = 105;
}

/// An error in the shape of Sift's Events, Score and Labels APIs:
/// `{"status", "error_message", "time", "request"}`.
#[derive(Debug, Clone)]
pub(crate) struct SiftError {
    pub http: StatusCode,
    pub status: i32,
    pub message: String,
    /// The request body as a string, without its `$api_key`; only for
    /// requests that have a body.
    pub request: Option<String>,
}

impl SiftError {
    pub fn new(http: StatusCode, status: i32, message: impl Into<String>) -> SiftError {
        SiftError {
            http,
            status,
            message: message.into(),
            request: None,
        }
    }

    /// Status 51. Sift answers a bad key with HTTP 400, like its other
    /// request errors.
    pub fn invalid_key() -> SiftError {
        SiftError::new(
            StatusCode::BAD_REQUEST,
            status::INVALID_API_KEY,
            "invalid api key: send a configured key as `$api_key` in the body, as the \
             `api_key` query parameter, or as the user name of HTTP Basic auth",
        )
    }

    pub fn invalid_name(message: impl Into<String>) -> SiftError {
        SiftError::new(StatusCode::BAD_REQUEST, status::INVALID_FIELD_NAME, message)
    }

    pub fn invalid(message: impl Into<String>) -> SiftError {
        SiftError::new(
            StatusCode::BAD_REQUEST,
            status::INVALID_FIELD_VALUE,
            message,
        )
    }

    pub fn missing(field: &str) -> SiftError {
        SiftError::new(
            StatusCode::BAD_REQUEST,
            status::MISSING_FIELD,
            format!("missing required field `{field}`"),
        )
    }

    pub fn not_reserved(field: &str, sift_type: &str) -> SiftError {
        SiftError::new(
            StatusCode::BAD_REQUEST,
            status::NOT_RESERVED_FIELD,
            format!(
                "`{field}` is not a valid reserved field for `{sift_type}` (fields starting \
                 with `$` are Sift's; see docs/sift.md for those Custos reads)"
            ),
        )
    }

    pub fn no_scoreable_events(user_id: &str) -> SiftError {
        SiftError::new(
            StatusCode::NOT_FOUND,
            status::NO_SCOREABLE_EVENTS,
            format!("user_id {user_id:?} has no scoreable events"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> SiftError {
        SiftError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            status::UNAVAILABLE,
            message,
        )
    }

    pub fn internal(message: impl Into<String>) -> SiftError {
        SiftError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            status::SERVER_ERROR,
            message,
        )
    }

    pub fn with_request(mut self, request: Option<String>) -> SiftError {
        self.request = request;
        self
    }

    /// Turns a Custos API error (an unreadable body, a refused submission)
    /// into Sift's codes, keeping its HTTP status.
    pub fn from_api(e: ApiError) -> SiftError {
        let code = match e.code {
            Code::InvalidBody | Code::PayloadTooLarge | Code::BodyTimeout => status::INVALID_BODY,
            Code::InvalidJson => status::INVALID_JSON,
            Code::MissingField => status::MISSING_FIELD,
            Code::StorageUnavailable | Code::ShuttingDown | Code::Overloaded | Code::NotReady => {
                status::UNAVAILABLE
            }
            Code::Internal => status::SERVER_ERROR,
            // Sift has no code of its own for a key that may not do this;
            // its bad-key code, with HTTP 403, is the nearest.
            Code::InsufficientScope | Code::InvalidApiKey | Code::MissingApiKey => {
                status::INVALID_API_KEY
            }
            _ => status::INVALID_FIELD_VALUE,
        };
        SiftError::new(e.status(), code, e.message)
    }
}

impl IntoResponse for SiftError {
    fn into_response(self) -> Response {
        if self.http.is_server_error() {
            tracing::error!(status = self.status, message = %self.message, "sift request failed");
        }
        let body = SiftWireError {
            status: self.status,
            error_message: self.message,
            time: now_seconds(),
            request: self.request,
        };
        (self.http, axum::Json(body)).into_response()
    }
}

/// A `/v205` error on the wire (`SiftError` in the OpenAPI description).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = SiftError)]
pub(crate) struct SiftWireError {
    /// Sift's status code: never 0 on an error (docs/sift.md).
    status: i32,
    error_message: String,
    /// Seconds since the Unix epoch.
    time: i64,
    /// The request body, without its `$api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<String>,
}

/// A `/v3` error on the wire (`SiftV3Error` in the OpenAPI description).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = SiftV3Error)]
pub(crate) struct V3WireError {
    error: &'static str,
    description: String,
    /// The fields at fault, each with its problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    issues: Option<Value>,
}

/// A Custos error raised before a route's own code runs (a refused host,
/// origin or content type, an unreadable path, an overloaded server), in
/// the shape of the route it was meant for: Sift's on the Sift routes, so
/// that a Sift client reads it as it reads Sift's own errors.
pub(crate) fn error_for_path(path: &str, e: ApiError) -> Response {
    if path.starts_with("/v205/") {
        SiftError::from_api(e).into_response()
    } else if path.starts_with("/v3/") {
        V3Error::from(SiftError::from_api(e)).into_response()
    } else {
        e.into_response()
    }
}

/// An error in the shape of Sift's v3 (Decisions) APIs:
/// `{"error", "description", "issues"?}`.
#[derive(Debug, Clone)]
pub(crate) struct V3Error {
    pub http: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// The fields at fault, each with its problems.
    pub issues: Option<Value>,
}

impl V3Error {
    /// A valid key without the scope the route needs.
    pub fn forbidden(description: String) -> V3Error {
        V3Error {
            http: StatusCode::FORBIDDEN,
            error: "insufficient_scope",
            description,
            issues: None,
        }
    }

    pub fn unauthorized() -> V3Error {
        V3Error {
            http: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            description: "send a configured api key as the user name of HTTP Basic auth".into(),
            issues: None,
        }
    }

    pub fn bad_request(field: &str, problem: impl Into<String>) -> V3Error {
        let problem = problem.into();
        V3Error {
            http: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: format!("{field}: {problem}"),
            issues: Some(json!({ field: [problem] })),
        }
    }
}

impl From<SiftError> for V3Error {
    fn from(e: SiftError) -> V3Error {
        let error = if e.http.is_server_error() {
            "internal_server_error"
        } else {
            "invalid_request"
        };
        V3Error {
            http: e.http,
            error,
            description: e.message,
            issues: None,
        }
    }
}

impl IntoResponse for V3Error {
    fn into_response(self) -> Response {
        if self.http.is_server_error() {
            tracing::error!(error = self.error, description = %self.description, "sift v3 request failed");
        }
        let body = V3WireError {
            error: self.error,
            description: self.description,
            issues: self.issues,
        };
        (self.http, axum::Json(body)).into_response()
    }
}

/// Seconds since the Unix epoch, as Sift's `time` fields.
pub(crate) fn now_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Milliseconds since the Unix epoch, as Sift's `$time`.
pub(crate) fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A storage or engine failure while answering.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> SiftError {
    SiftError::unavailable(e.to_string())
}
