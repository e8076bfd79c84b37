//! Liveness and readiness.
//!
//! - `GET /livez` (and `GET /healthz`, its older name, unchanged): the
//!   process serves HTTP and the engine thread answers within 2 s. When it
//!   fails, restarting the process may help.
//! - `GET /readyz`: the engine can commit. It fails while the newest group
//!   commit failed (a full disk, a store that refuses writes) and a small
//!   test write to the store fails too. The test write is what lets an
//!   instance taken out of rotation come back on its own: no client traffic
//!   reaches it to prove the store writable again. When it fails, send
//!   traffic elsewhere; a restart does not help.
//!
//! Both answer JSON: `{"status": "ok" | "ready", "last_seq", "accounts",
//! "last_snapshot_failed"}`, or the error body (`storage_unavailable`,
//! `not_ready`). A failed snapshot does not make the instance unready: it
//! still decides and commits, only a restart replays more of the log, and
//! the next attempt backs off. `last_snapshot_failed` (and the
//! `custos_snapshot_last_failed` metric) is for alerting on it.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, Code};

/// Longest wait for the engine thread.
const ENGINE_WAIT: Duration = Duration::from_secs(2);

/// The store's meta key the readiness test write sets.
const READINESS_PROBE_KEY: &str = "readiness_probe_ms";

pub async fn livez(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(ENGINE_WAIT, state.runtime.stats()).await {
        Ok(Ok(stats)) => axum::Json(Health::of("ok", &stats)).into_response(),
        Ok(Err(e)) => ApiError::unavailable(e.to_string()).into_response(),
        Err(_) => ApiError::unavailable("the engine did not answer within 2s").into_response(),
    }
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let not_ready = |message: String| ApiError::new(Code::NotReady, message).into_response();
    let stats = match tokio::time::timeout(ENGINE_WAIT, state.runtime.stats()).await {
        Ok(Ok(stats)) => stats,
        Ok(Err(e)) => return not_ready(format!("engine: {e}")),
        Err(_) => return not_ready("engine: did not answer within 2s".into()),
    };
    if stats.last_commit_failed {
        let store = state.runtime.store().clone();
        let now_ms = crate::sift::now_millis().to_string();
        let probe =
            tokio::task::spawn_blocking(move || store.set_meta(READINESS_PROBE_KEY, &now_ms)).await;
        match probe {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return not_ready(format!(
                    "store: the last commit failed and a test write fails too: {e}"
                ));
            }
            Err(e) => return not_ready(format!("store: the test write did not finish: {e}")),
        }
    }
    axum::Json(Health::of("ready", &stats)).into_response()
}

/// The answer of `/livez` and `/readyz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok` (`/livez`) or `ready` (`/readyz`).
    #[schema(pattern = "^(ok|ready)$")]
    status: &'static str,
    /// The newest event's position in the log.
    last_seq: u64,
    /// Accounts the engine holds.
    accounts: u64,
    last_snapshot_failed: bool,
}

impl Health {
    fn of(status: &'static str, stats: &custos_runtime::EngineStats) -> Health {
        Health {
            status,
            last_seq: stats.last_seq,
            accounts: stats.accounts,
            last_snapshot_failed: stats.last_snapshot_failed,
        }
    }
}
