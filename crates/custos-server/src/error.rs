//! The API's error responses: one JSON shape, stable codes.
//!
//! Every error body is `{"message", "code", "type"}`, plus `field` and
//! `index` when a specific field of a specific event is at fault. `code` is
//! the stable, machine-readable part (listed in `docs/errors.md`); `message`
//! is for people and may be reworded.
//!
//! ## One table
//!
//! Every code is one row of the table in `error_codes!` below: the
//! variant of [`Code`] that handlers use, its wire string, its HTTP status,
//! its [`ErrorType`], and one line on when it is returned. The table in
//! `docs/errors.md` is rendered from these rows, and a test fails when the
//! two differ (it prints the table to paste, or rewrites it with
//! `UPDATE_DOCS=1`). A new code is therefore one new row here, and the
//! documentation cannot forget it.
//!
//! The Sift-compatible routes (`src/sift/`) answer in Sift's own shapes and
//! numeric statuses; they only translate these codes (`SiftError::from_api`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// The request is wrong; fix it and retry.
    InvalidRequest,
    /// Missing or wrong credentials.
    Auth,
    /// Our side failed; retry later with the same event ids.
    System,
}

impl ErrorType {
    /// The wire name, as in the `type` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Auth => "auth",
            ErrorType::System => "system",
        }
    }
}

/// One row of the table: what a [`Code`] stands for.
struct Row {
    code: &'static str,
    status: StatusCode,
    error_type: ErrorType,
    when: &'static str,
}

/// Declares [`Code`] from its rows: `Variant = "wire_code", STATUS,
/// ErrorType, "when it is returned";`. The order is the order of the table
/// in `docs/errors.md`.
macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:ident, $error_type:ident, $when:literal;)+) => {
        /// Every error code of the API. Public names: a contract, changed
        /// only with a version bump.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $when] $variant,)+
        }

        impl Code {
            /// Every code, in the order of `docs/errors.md`.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            const fn row(self) -> Row {
                match self {
                    $(Code::$variant => Row {
                        code: $code,
                        status: StatusCode::$status,
                        error_type: ErrorType::$error_type,
                        when: $when,
                    },)+
                }
            }
        }
    };
}

error_codes! {
    InvalidJson = "invalid_json", BAD_REQUEST, InvalidRequest,
        "The body (or an NDJSON line) is not JSON.";
    InvalidBody = "invalid_body", BAD_REQUEST, InvalidRequest,
        "The body could not be read (e.g. the client broke off the upload).";
    EmptyBatch = "empty_batch", BAD_REQUEST, InvalidRequest,
        "An empty array or NDJSON body with no events.";
    InvalidEvent = "invalid_event", BAD_REQUEST, InvalidRequest,
        "An event is not a JSON object.";
    MissingField = "missing_field", BAD_REQUEST, InvalidRequest,
        "A required field is absent or `null` (also `analyst` and `reason` of an analyst action, \
         which may not be empty).";
    InvalidField = "invalid_field", BAD_REQUEST, InvalidRequest,
        "A field has the wrong type, an unknown enum value, a bad format (time, IP, currency, \
         country), or is too long.";
    UnknownEventType = "unknown_event_type", BAD_REQUEST, InvalidRequest,
        "`type` is not one of the types in [events.md](events.md).";
    TimeOutOfRange = "time_out_of_range", BAD_REQUEST, InvalidRequest,
        "An event's `time` is further ahead of the server's clock than `engine.max_future_skew` \
         (5 minutes by default), or older than `engine.max_event_age` when set; `field` is \
         `time`. Send the time the event happened, from a synchronized clock.";
    InvalidRules = "invalid_rules", BAD_REQUEST, InvalidRequest,
        "`POST /v1/rules` (or `/check`, or a list edit) with a rule set that does not compile. \
         `errors` lists every problem: `rule`, `field`, `message`, `position {line, column}`, \
         `snippet` (the line with a caret). Nothing changed.";
    InvalidToml = "invalid_toml", BAD_REQUEST, InvalidRequest,
        "A rule set sent as TOML is not valid TOML or has unknown keys.";
    InvalidRemovalOverride = "invalid_removal_override", BAD_REQUEST, InvalidRequest,
        "An `override` sent with a rule set or list edit is not `{\"confirm_removal\": [...], \
         \"reason\", \"analyst\"}`, leaves `reason` or `analyst` empty, or confirms an item the \
         new version does not remove. `field` names the part at fault. Nothing changed.";
    InvalidListEdit = "invalid_list_edit", BAD_REQUEST, InvalidRequest,
        "A list edit body is not `{\"entries\": [...]}` (`PUT`) or \
         `{\"add\": [...], \"remove\": [...]}` (`PATCH`).";
    InvalidPath = "invalid_path", BAD_REQUEST, InvalidRequest,
        "A part of the path (an id) cannot be read: it is not valid UTF-8 once percent-decoded, \
         or not of the type the route takes.";
    InvalidQuery = "invalid_query", BAD_REQUEST, InvalidRequest,
        "The query string cannot be read: an unknown parameter, or a value of the wrong type.";
    MissingApiKey = "missing_api_key", UNAUTHORIZED, Auth,
        "No `Authorization: Bearer …` header.";
    InvalidAuthorizationHeader = "invalid_authorization_header", UNAUTHORIZED, Auth,
        "The header is not `Bearer <key>`.";
    InvalidApiKey = "invalid_api_key", UNAUTHORIZED, Auth,
        "The key is not one of the configured keys.";
    InsufficientScope = "insufficient_scope", FORBIDDEN, Auth,
        "The key is valid but lacks the scope the route needs (or, on `POST /v1/events`, the \
         scope a `label` or `analyst_action` event needs); the message names the scope. \
         Nothing was done. Scopes per route: [keys.md](keys.md).";
    OriginNotAllowed = "origin_not_allowed", FORBIDDEN, Auth,
        "The request has an `Origin` header that is not in `http.allowed_origins`: a browser \
         page on another site sent it. Nothing was done.";
    HostNotAllowed = "host_not_allowed", FORBIDDEN, Auth,
        "The server listens on loopback and the `Host` header is neither a loopback name nor \
         in `http.allowed_hosts` (DNS rebinding). Nothing was done.";
    EventNotFound = "event_not_found", NOT_FOUND, InvalidRequest,
        "`GET /v1/events/{event_id}` for an id never stored.";
    AccountNotFound = "account_not_found", NOT_FOUND, InvalidRequest,
        "`GET /v1/accounts/{account_id}` for an account with no events.";
    RulesVersionNotFound = "rules_version_not_found", NOT_FOUND, InvalidRequest,
        "`GET /v1/rules/{version}` for a version never installed.";
    ListNotFound = "list_not_found", NOT_FOUND, InvalidRequest,
        "`/v1/lists/{name}` for a list the live rule set does not have.";
    HoldNotFound = "hold_not_found", NOT_FOUND, InvalidRequest,
        "`/v1/holds/{id}` or `/v1/payouts/{id}/…` for a payout or loan id that was never held \
         (or whose closed hold was forgotten).";
    CampaignNotFound = "campaign_not_found", NOT_FOUND, InvalidRequest,
        "`/v1/campaigns/{id}` for an unknown campaign id.";
    CaseNotFound = "case_not_found", NOT_FOUND, InvalidRequest,
        "`/v1/cases/{id}` for an unknown case id (or a merge into one).";
    DeadWebhookNotFound = "dead_webhook_not_found", NOT_FOUND, InvalidRequest,
        "`POST /v1/webhooks/{webhook_id}/retry` for a webhook id with no dead delivery (of \
         that `endpoint`, when given): never dead, already retried, or unknown.";
    RouteNotFound = "route_not_found", NOT_FOUND, InvalidRequest,
        "No such path.";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, InvalidRequest,
        "The path exists but not with this method.";
    BodyTimeout = "body_timeout", REQUEST_TIMEOUT, InvalidRequest,
        "The body did not arrive within `http.body_timeout` of the headers (e.g. it is shorter \
         than its `Content-Length`). The connection is closed; nothing was done.";
    EventIdConflict = "event_id_conflict", CONFLICT, InvalidRequest,
        "The `event_id` is already stored with a different body (for an analyst action: its \
         `action_id` was used for another action). Nothing of the request was applied.";
    HoldNotOpen = "hold_not_open", CONFLICT, InvalidRequest,
        "Release or cancel of a hold already released or cancelled.";
    HoldAmbiguous = "hold_ambiguous", CONFLICT, InvalidRequest,
        "The payout id is held on several accounts: name one with `account_id` (query for \
         `GET`, body for actions).";
    AccountNotAtRisk = "account_not_at_risk", CONFLICT, InvalidRequest,
        "`POST /v1/accounts/{id}/clear` for an account that is neither at risk nor a live \
         member of a campaign.";
    CaseResolved = "case_resolved", CONFLICT, InvalidRequest,
        "An action other than a note on a case that is resolved (or merged into another: act on \
         that one).";
    CampaignUnchanged = "campaign_unchanged", CONFLICT, InvalidRequest,
        "Confirm or dismiss of a campaign that already has that status.";
    RulesRemovalUnconfirmed = "rules_removal_unconfirmed", CONFLICT, InvalidRequest,
        "`POST /v1/rules` or a list edit would remove what the live rule set protects: every \
         active rule, the holds on `payout` or `loan_disbursement`, or a list its active rules \
         read ([rules.md](rules.md#what-a-new-version-may-not-remove)). `errors` lists what \
         (`removed_rules`, `lost_payout_protection`, `removed_lists`, `emptied_lists`) and the \
         items still to confirm (`confirm_removal`). Nothing changed; resend with an \
         `override` to install it anyway.";
    RulesChanged = "rules_changed", CONFLICT, InvalidRequest,
        "A list edit raced with another rule-set install; nothing changed. Retry the edit.";
    RulesInstalledAtStart = "rules_installed_at_start", CONFLICT, InvalidRequest,
        "A rule-set install or list edit on a cluster node: every node takes its rules from its \
         rules directory at start, the same on all of them ([cluster.md](cluster.md)). Nothing \
         changed.";
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, InvalidRequest,
        "The body is over `limits.max_body_bytes`.";
    BatchTooLarge = "batch_too_large", PAYLOAD_TOO_LARGE, InvalidRequest,
        "More events than `limits.max_batch_events`.";
    UriTooLong = "uri_too_long", URI_TOO_LONG, InvalidRequest,
        "The path and query are longer than `http.max_uri_bytes`.";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, InvalidRequest,
        "A request that changes state (`POST`, `PUT`, `PATCH`, `DELETE`) with a `Content-Type` \
         other than `application/json`; `POST /v1/events` also takes NDJSON \
         (`application/x-ndjson`), `/v1/rules` TOML (`application/toml`). The types an HTML \
         form can send (`text/plain`, form-urlencoded, multipart) are refused everywhere.";
    Internal = "internal", INTERNAL_SERVER_ERROR, System,
        "A bug. Logged with details on the server.";
    StorageUnavailable = "storage_unavailable", SERVICE_UNAVAILABLE, System,
        "The store failed to commit; nothing of the request was acknowledged. Retry with the \
         same event ids.";
    ShuttingDown = "shutting_down", SERVICE_UNAVAILABLE, System,
        "The server is stopping. Retry against another instance or later.";
    Overloaded = "overloaded", SERVICE_UNAVAILABLE, System,
        "More connections are open than `http.max_connections`: this one was answered and \
         closed. Retry after the `Retry-After` seconds.";
    NotReady = "not_ready", SERVICE_UNAVAILABLE, System,
        "`GET /readyz`: the engine cannot commit now (its last group commit failed and a test \
         write to the store fails too, or the engine does not answer).";
}

impl Code {
    /// The wire string, as in the `code` field.
    pub const fn as_str(self) -> &'static str {
        self.row().code
    }

    pub const fn status(self) -> StatusCode {
        self.row().status
    }

    pub const fn error_type(self) -> ErrorType {
        self.row().error_type
    }

    /// When the code is returned, one line of Markdown (`docs/errors.md`).
    pub const fn description(self) -> &'static str {
        self.row().when
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub field: Option<String>,
    pub index: Option<usize>,
    /// Every problem, when there are several (an invalid rule set).
    pub errors: Option<serde_json::Value>,
}

/// The body on the wire, in this field order: every error of `/v1` and
/// of the probes (`Error` in the OpenAPI description).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct WireError<'a> {
    message: &'a str,
    #[schema(schema_with = crate::openapi::code_ref)]
    code: Code,
    #[serde(rename = "type")]
    error_type: ErrorType,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    /// Every problem, when there are several (an invalid rule set).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    errors: Option<&'a serde_json::Value>,
}

impl Serialize for ApiError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireError {
            message: &self.message,
            code: self.code,
            error_type: self.code.error_type(),
            field: self.field.as_deref(),
            index: self.index,
            errors: self.errors.as_ref(),
        }
        .serialize(serializer)
    }
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            index: None,
            errors: None,
        }
    }

    /// The store (or the task reading it) failed: `storage_unavailable`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::StorageUnavailable, message)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        let field = field.into();
        if !field.is_empty() {
            self.field = Some(field);
        }
        self
    }

    pub fn with_index(mut self, index: usize) -> ApiError {
        self.index = Some(index);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code.as_str(), message = %self.message, "request failed");
        }
        (status, axum::Json(self)).into_response()
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// The header of the table in `docs/errors.md`.
    const TABLE_HEADER: &str = "| code | HTTP | type | when |";

    /// The table of `docs/errors.md`, rendered from [`Code`].
    fn render_table() -> String {
        let mut table = format!("{TABLE_HEADER}\n|---|---|---|---|\n");
        for code in Code::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                code.as_str(),
                code.status().as_u16(),
                code.error_type().as_str(),
                code.description()
            ));
        }
        table
    }

    /// `docs/errors.md` cut around its table: before, table, after.
    fn split_at_table(doc: &str) -> Option<(&str, &str, &str)> {
        let start = doc.find(&format!("\n{TABLE_HEADER}\n"))? + 1;
        let mut end = start;
        for line in doc[start..].split_inclusive('\n') {
            if !line.starts_with('|') {
                break;
            }
            end += line.len();
        }
        Some((&doc[..start], &doc[start..end], &doc[end..]))
    }

    /// The table in `docs/errors.md` is generated from [`Code`]. When a code
    /// changes, this fails and prints the new table to paste over the old
    /// one; or run `UPDATE_DOCS=1 cargo test -p custos-server error::tests`
    /// to have the table in the file rewritten (the prose around it is
    /// kept), then review the diff.
    #[test]
    fn the_docs_table_is_generated_from_the_codes() {
        let doc = crate::generated_docs::read("errors.md");
        let parts = split_at_table(&doc)
            .unwrap_or_else(|| panic!("docs/errors.md has no table headed {TABLE_HEADER:?}"));
        crate::generated_docs::check("errors.md", "error::Code", parts, &render_table());
    }

    #[test]
    fn codes_are_unique_and_typed_by_their_status() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            let status = code.status();
            let by_status = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorType::Auth,
                s if s.is_server_error() => ErrorType::System,
                _ => ErrorType::InvalidRequest,
            };
            assert_eq!(code.error_type(), by_status, "{}", code.as_str());
            assert_eq!(
                serde_json::to_value(code.error_type()).unwrap(),
                code.error_type().as_str()
            );
            assert!(status.is_client_error() || status.is_server_error());
        }
    }

    #[test]
    fn the_body_keeps_its_shape_and_field_order() {
        let error = ApiError::new(Code::InvalidField, "event 2: country: unknown")
            .with_field("destination.country")
            .with_index(2);
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"message":"event 2: country: unknown","code":"invalid_field","type":"invalid_request","field":"destination.country","index":2}"#
        );
        let plain = ApiError::unavailable("disk full").with_field("");
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"message":"disk full","code":"storage_unavailable","type":"system"}"#
        );
        assert_eq!(plain.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
