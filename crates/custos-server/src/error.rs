//! The API's error responses: one JSON shape, stable codes.
//!
//! Every error body is `{"message", "code", "type"}`, plus `field` and
//! `index` when a specific field of a specific event is at fault. `code` is
//! the stable, machine-readable part (listed in `docs/errors.md`); `message`
//! is for people and may be reworded.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// The request is wrong; fix it and retry.
    InvalidRequest,
    /// Missing or wrong credentials.
    Auth,
    /// Our side failed; retry later with the same event ids.
    System,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub message: String,
    pub code: &'static str,
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Every problem, when there are several (an invalid rule set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        let error_type = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorType::Auth,
            s if s.is_server_error() => ErrorType::System,
            _ => ErrorType::InvalidRequest,
        };
        ApiError {
            status,
            message: message.into(),
            code,
            error_type,
            field: None,
            index: None,
            errors: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            message,
        )
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
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let status = self.status;
        (status, axum::Json(self)).into_response()
    }
}
