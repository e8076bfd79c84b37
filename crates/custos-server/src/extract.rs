//! Path and query extractors whose rejections are our JSON errors.
//!
//! axum's own `Path` and `Query` answer a path that does not decode (an id
//! that is not UTF-8 once percent-decoded) or a query string of the wrong
//! shape with a plain-text body. These wrappers run axum's extractors and
//! turn a rejection into `invalid_path` or `invalid_query`, in the shape of
//! the route (Sift's on the Sift routes). Handlers use them exactly like
//! axum's: `Path(id): Path<String>`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};

/// `axum::extract::Path` with a JSON rejection.
pub struct Path<T>(pub T);

/// `axum::extract::Query` with a JSON rejection.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(crate::sift::error_for_path(
                parts.uri.path(),
                ApiError::new(
                    Code::InvalidPath,
                    format!("path: {}", lowercase_start(&rejection.body_text())),
                ),
            )),
        }
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(crate::sift::error_for_path(
                parts.uri.path(),
                ApiError::new(
                    Code::InvalidQuery,
                    format!("query string: {}", lowercase_start(&rejection.body_text())),
                ),
            )),
        }
    }
}

/// axum's messages start with a capital; ours do not.
fn lowercase_start(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
