//! Signed webhooks: decisions and their effects, pushed to HTTP endpoints.
//!
//! ## Why an outbox derived from the log
//!
//! The log is the truth and every accepted event is in it with its
//! decision, so webhooks are derived from the log instead of being written
//! by the engine beside it: the hot path gains no second write, and nothing
//! acknowledged can be missed. Three parts:
//!
//! 1. **Derivation** ([`derive`]): a pure function from a stored record to
//!    its webhooks, with stable ids `<seq>.<n>`.
//! 2. **Dispatcher** (one task): tails the log after a cursor kept in the
//!    store, plans the outbox rows of each page of records for every
//!    endpoint that wants them, and inserts them together with the new
//!    cursor in one transaction. A crash between a commit and the enqueue
//!    only means the records are read again; rows are unique per
//!    `(endpoint, id)`, so nothing is enqueued twice. The cursor is written
//!    only with rows (or every few thousand events): pages that give no
//!    webhook cost no write.
//! 3. **Senders** (one task per endpoint): POST due rows, at most
//!    `webhook_delivery.concurrency` at a time, sign each attempt afresh
//!    ([`signature`]), and record the outcome: delivered, or a retry at a
//!    deterministic, doubling backoff ([`retry_delay`]), or dead after
//!    `max_attempts`. One task per endpoint keeps a slow or dead endpoint
//!    from delaying the others.
//!
//! Delivery is at least once (a crash or stop after the receiver answered
//! but before the outcome is stored sends it again), so receivers dedupe on
//! the id. Order is not guaranteed: retries overtake, endpoints run apart.
//!
//! When webhooks are first configured on a store, the cursor starts at the
//! end of the log: history is not replayed. Afterwards the cursor is kept,
//! so events accepted while the server was down, or while the dispatcher
//! lagged, still give their webhooks after the next start.
//!
//! The outbox relies on the log becoming visible in `seq` order (the single
//! writer thread commits groups in order), so a cursor never skips a record.
//!
//! Only `http://` is supported: see `docs/webhooks.md` for why and what to do
//! for TLS. The user guide, with the envelope and every type, is there too.

mod delivery;
pub mod derive;
pub mod signature;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use custos_store::{EventStore, WebhookState};
use serde_json::json;

pub use delivery::{Retry, WebhookService, retry_delay, retry_plan, start};
pub use signature::{
    DEFAULT_TOLERANCE, SIGNATURE_HEADER, SignatureError, WEBHOOK_ID_HEADER, sign, verify_signature,
};

use crate::AppState;
use crate::error::{ApiError, Code};
use crate::extract::{Path, Query};

/// `GET /v1/webhooks`: per endpoint with undelivered rows, how many are
/// pending and dead and the latest error; and how far the log has been
/// turned into webhooks. Read from the store only.
pub async fn get_webhooks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store: Arc<dyn EventStore> = state.runtime.store().clone();
    let (cursor, last_seq, stats) = tokio::task::spawn_blocking(move || {
        Ok::<_, custos_store::StoreError>((
            store.webhook_cursor()?,
            store.last_seq()?,
            store.webhook_stats()?,
        ))
    })
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))?
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let endpoints: Vec<_> = stats
        .into_iter()
        .map(|s| {
            json!({
                "endpoint": s.endpoint,
                "pending": s.pending,
                "dead": s.dead,
                "last_error": s.last_error,
                "last_error_at_ms": s.last_error_ms,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "cursor": cursor,
        "last_seq": last_seq,
        "endpoints": endpoints,
    }))
    .into_response())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    /// Only this endpoint's dead deliveries.
    endpoint: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// `GET /v1/webhooks/dead`: deliveries given up, newest first, with the
/// error that ended them: what `POST /v1/webhooks/{id}/retry` takes.
pub async fn get_dead_webhooks(
    State(state): State<AppState>,
    Query(query): Query<DeadQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let store: Arc<dyn EventStore> = state.runtime.store().clone();
    let rows = tokio::task::spawn_blocking(move || {
        store.list_webhooks(query.endpoint.as_deref(), WebhookState::Dead, limit)
    })
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))?
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let dead: Vec<_> = rows
        .into_iter()
        .map(|row| {
            json!({
                "webhook_id": row.webhook_id,
                "endpoint": row.endpoint,
                "type": row.webhook_type,
                "attempts": row.attempts,
                "last_error": row.last_error,
                "given_up_at_ms": row.finished_ms,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "dead": dead })).into_response())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RetryQuery {
    /// Only this endpoint's dead delivery of the webhook.
    endpoint: Option<String>,
}

/// `POST /v1/webhooks/{webhook_id}/retry`: a dead delivery goes back to
/// pending, due at once, its attempts counted afresh.
pub async fn retry_webhook(
    State(state): State<AppState>,
    Path(webhook_id): Path<String>,
    Query(query): Query<RetryQuery>,
) -> Result<Response, ApiError> {
    let store: Arc<dyn EventStore> = state.runtime.store().clone();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let id = webhook_id.clone();
    let endpoints = tokio::task::spawn_blocking(move || {
        store.retry_webhook(&id, query.endpoint.as_deref(), now_ms)
    })
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))?
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if endpoints.is_empty() {
        return Err(ApiError::new(
            Code::DeadWebhookNotFound,
            format!("webhook_id: no dead delivery of {webhook_id:?} to retry"),
        )
        .with_field("webhook_id"));
    }
    tracing::info!(webhook_id = %webhook_id, endpoints = ?endpoints, "dead webhook delivery retried");
    Ok(axum::Json(json!({
        "webhook_id": webhook_id,
        "retried": endpoints,
    }))
    .into_response())
}
