//! # custos-server
//!
//! The HTTP API of Custos, an axum adapter around [`custos_runtime`]. It
//! parses and validates requests, hands events to the engine thread, and
//! turns answers and failures into JSON.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/events` | one event, a JSON array, or NDJSON; answers a decision per event |
//! | `GET /v1/events/{event_id}` | a stored event with its decision |
//! | `GET /v1/accounts/{account_id}` | the account's state and recent events |
//! | `GET`, `POST /v1/rules`; `POST /v1/rules/check` | the live rule set; install or check one (see [`rules`]) |
//! | `GET`, `PUT`, `PATCH /v1/lists/{name}` | named lists |
//! | `GET /v1/holds`, `POST /v1/payouts/{id}/release` … | holds, account risk, campaigns (see [`analyst`]) |
//! | `GET /v1/webhooks` | webhook delivery per endpoint: pending, dead, last error (see [`webhooks`]) |
//! | `POST /v205/events`; `GET /v205/score/{user_id}`; `GET`, `POST /v205/users/{user_id}/score` | Sift's Events and Score APIs, in Sift's shapes (see `sift`) |
//! | `POST`, `DELETE /v205/users/{user_id}/labels` | Sift's Labels API |
//! | `GET /v3/accounts/{account_id}/decisions`; `GET`, `POST /v3/accounts/{account_id}/users/{user_id}/decisions` | Sift's Decisions API |
//! | `GET /livez` (or `/healthz`); `GET /readyz` | liveness of the process and the engine thread; readiness to commit (see `health`) |
//! | `GET /metrics` | Prometheus text |
//!
//! The router is built from one table ([`routes::ROUTES`], rendered into
//! `docs/keys.md`) that gives every route its key and scope. `/v1` needs
//! `Authorization: Bearer <key>` with the route's scope ([`auth`]); see
//! [`custos_config::Config`] for how keys and their scopes are set and when
//! the development key is allowed. The Sift routes take the same keys where
//! Sift's clients send them (`$api_key` in the body, `api_key` in the
//! query, or HTTP Basic). `/metrics` takes a key with `read` when
//! `http.metrics_require_key` says so.
//!
//! Before any route, the accept loop (`connections`) bounds how many
//! connections are open and how long a client may take to send its
//! headers, and every request passes the checks of `edge` (host, origin,
//! content type, URI length, a deadline on the body).
//!
//! This crate is HTTP only: its settings are a [`custos_config::Config`],
//! and [`start`] opens the runtime with [`custos_runtime::open`], as every
//! other entry point does.

mod analyst;
pub mod auth;
mod cases;
mod connections;
// Handlers return a finished page early as `Err(Response)`; once per request,
// its size costs nothing worth a box.
#[allow(clippy::result_large_err)]
pub mod console;
mod edge;
pub mod error;
mod events;
mod evidence;
mod extract;
#[cfg(test)]
mod generated_docs;
mod health;
mod openapi;
pub mod routes;
pub mod rules;
mod sift;
pub mod tls;
#[doc(hidden)]
pub use sift::translate_for_fuzzing as sift_translate_for_fuzzing;
mod telemetry;
mod tokens;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use custos_config::{Config, ConfigError};
use custos_runtime::Runtime;
use custos_store::SqliteOptions;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use error::{ApiError, Code};
use extract::Path as UrlPath;

/// Most recent events listed in an account summary.
const ACCOUNT_RECENT_EVENTS: usize = 20;

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub api_keys: Arc<auth::ApiKeys>,
    pub limits: custos_config::Limits,
    /// What an event's `time` may be, around the server's clock.
    pub time_bound: custos_runtime::TimeBound,
    /// The analyst console's users, sessions and audit trail.
    pub console: Arc<console::Console>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The runtime did not open (config, key, enrichment, rules, store).
    #[error(transparent)]
    Open(#[from] custos_runtime::OpenError),
    /// A webhook endpoint cannot be set up.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The console's database could not be opened.
    #[error(transparent)]
    Console(#[from] console::db::ConsoleDbError),
    /// The webhook outbox could not be read.
    #[error("cannot open the store: {0}")]
    Store(#[from] custos_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The router with all routes of [`routes::ROUTES`], each behind the key
/// and scope the table gives it, and the body limit; [`start`] adds the
/// checks of `edge` and the request metrics around it.
/// `metrics_require_key`: whether `/metrics` needs a key (see
/// `http.metrics_require_key`).
pub fn router(state: AppState, metrics_require_key: bool) -> Router {
    routes::router(&state, metrics_require_key)
        .merge(console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read with our own limit so that the error is JSON.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// What a connection above `http.max_connections` is answered by: the
/// liveness routes as usual (a busy server is alive), `503 overloaded`
/// for everything else.
fn shed_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::livez))
        .route("/livez", get(health::livez))
        .fallback(overloaded)
        .with_state(state)
}

async fn overloaded(uri: axum::http::Uri) -> Response {
    let mut response = sift::error_for_path(
        uri.path(),
        ApiError::new(
            Code::Overloaded,
            "too many open connections; retry in a moment",
        ),
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// A server listening and serving; stop it with [`RunningServer::stop`].
pub struct RunningServer {
    pub addr: SocketAddr,
    pub runtime: Arc<Runtime>,
    shutdown: Option<oneshot::Sender<()>>,
    serve: JoinHandle<std::io::Result<()>>,
    /// The webhook dispatcher and senders, when endpoints are configured.
    webhooks: Option<webhooks::WebhookService>,
}

impl RunningServer {
    /// Stops accepting, finishes requests in flight, then snapshots and
    /// stops the engine.
    pub async fn stop(mut self) -> Result<(), custos_runtime::RuntimeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(30), &mut self.serve).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "http server stopped with an error"),
            Ok(Err(e)) => tracing::error!(error = %e, "http server task failed"),
            Err(_) => tracing::warn!("requests still in flight after 30s; stopping anyway"),
            Ok(Ok(Ok(()))) => {}
        }
        // Undelivered webhooks stay in the outbox and go out after the next
        // start.
        if let Some(webhooks) = self.webhooks.take() {
            webhooks.stop().await;
        }
        self.runtime.shutdown().await
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(&mut self) {
        let _ = (&mut self.serve).await;
    }
}

/// Validates the config, recovers state, binds and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let runtime = Arc::new(custos_runtime::open(&config, SqliteOptions::default())?);
    start_with_runtime(config, runtime).await
}

/// Installs the process's metrics recorder, once: what records metrics
/// before the server starts (a cluster node joining) calls it first, or
/// its series are lost.
pub fn install_metrics_recorder() {
    telemetry::install_recorder();
}

/// Binds and serves a runtime opened already (for tests, and stores other
/// than the default).
pub async fn start_with_runtime(
    config: Config,
    runtime: Arc<Runtime>,
) -> Result<RunningServer, StartError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let keys = config.resolve_api_keys(|name| std::env::var(name).ok())?;
    if keys
        .iter()
        .any(|k| k.name == custos_config::DEVELOPMENT_KEY_NAME)
    {
        tracing::warn!(
            %addr,
            key = custos_config::DEVELOPMENT_API_KEY,
            "no api keys configured: accepting the development key (admin) on loopback only"
        );
    }
    if !config.api_keys.is_empty() {
        tracing::warn!(
            keys = config.api_keys.len(),
            "api_keys (or CUSTOS_API_KEYS) are unscoped: each may do everything (admin); \
             give each client an [[api_key]] table with only the scopes it needs (docs/keys.md)"
        );
    }
    for key in &keys {
        tracing::info!(key = %key.name, scopes = %key.scopes, "api key configured");
    }
    telemetry::install_recorder();
    // Before serving: a new outbox cursor must not miss the first events.
    let webhooks = webhooks::start(runtime.store().clone(), &config).await?;
    let state = AppState {
        runtime: runtime.clone(),
        api_keys: Arc::new(auth::ApiKeys::new(&keys)),
        limits: config.limits.clone(),
        time_bound: custos_runtime::TimeBound::from_config(&config.engine),
        console: Arc::new(console::Console::new(
            console::db::ConsoleDb::open_in(&config.data_dir)?,
            &config.console,
        )),
    };
    if config.engine.max_future_skew.is_none() {
        tracing::warn!(
            "engine.max_future_skew is off: an event dated in the future is accepted and moves \
             time for its account"
        );
    }
    let edge = Arc::new(edge::Edge::new(&config));
    let metrics_require_key = config.http.metrics_require_key(config.listen);
    // Requests refused at the edge are counted and timed like the others.
    let guarded = |app: Router| {
        app.layer(axum::middleware::from_fn_with_state(
            edge.clone(),
            edge::guard,
        ))
        .layer(axum::middleware::from_fn(telemetry::track_http))
    };
    let services = connections::Services {
        app: guarded(router(state.clone(), metrics_require_key)),
        shed: guarded(shed_router(state)),
    };
    let nofile = connections::open_file_limit();
    let limits = connections::ConnectionLimits::new(&config.http, nofile);
    if (limits.served + limits.shed) as u64 + connections::RESERVED_DESCRIPTORS > nofile {
        tracing::warn!(
            nofile,
            max_connections = limits.served,
            shed_connections = limits.shed,
            reserved = connections::RESERVED_DESCRIPTORS,
            "http.max_connections and http.shed_connections exceed the open-file limit: \
             the server can run out of descriptors; raise the limit (ulimit -n) or lower them"
        );
    }
    let settings = connections::Settings {
        limits,
        header_timeout: config.http.header_timeout,
        grace: Duration::from_secs(30),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let serve = tokio::spawn(connections::serve(listener, services, settings, rx));
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        nofile,
        max_connections = limits.served,
        shed_connections = limits.shed,
        "custos is listening"
    );
    Ok(RunningServer {
        addr,
        runtime,
        shutdown: Some(tx),
        serve,
        webhooks,
    })
}

async fn get_event(
    State(state): State<AppState>,
    UrlPath(event_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let store = state.runtime.store().clone();
    let lookup = event_id.clone();
    let record = tokio::task::spawn_blocking(move || store.get_event(&lookup))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let Some(record) = record else {
        return Err(ApiError::new(
            Code::EventNotFound,
            format!("no event with event_id {event_id:?}"),
        ));
    };
    let mut event: Value = serde_json::from_str(&record.event_json).unwrap_or(Value::Null);
    // Callers of this route hold a key that may read events: they see
    // personal values in clear, as sent; only the stored copy is sealed
    // (docs/security.md).
    if let Value::Object(map) = &mut event {
        state.runtime.parser().open_stored(map);
    }
    let decision: Value = serde_json::from_str(&record.decision_json).unwrap_or(Value::Null);
    Ok(axum::Json(json!({
        "event_id": record.event_id,
        "seq": record.seq,
        "received_at_ms": record.received_at_ms,
        "event": event,
        "decision": decision,
    }))
    .into_response())
}

async fn get_account(
    State(state): State<AppState>,
    UrlPath(account_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let account = state
        .runtime
        .account(&account_id)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let Some(account) = account else {
        return Err(ApiError::new(
            Code::AccountNotFound,
            format!("no events seen for account_id {account_id:?}"),
        ));
    };
    let store = state.runtime.store().clone();
    let recent = tokio::task::spawn_blocking(move || {
        store.account_events(&account_id, ACCOUNT_RECENT_EVENTS)
    })
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))?
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let recent: Vec<Value> = recent
        .into_iter()
        .map(|r| {
            let decision: Value = serde_json::from_str(&r.decision_json).unwrap_or(Value::Null);
            json!({
                "event_id": r.event_id,
                "type": r.event_type,
                "time": custos_core::state::Timestamp(r.event_time),
                "action": decision.get("action"),
                "score": decision.get("score"),
                "features": decision.get("features"),
            })
        })
        .collect();
    let login_profile = login_profile_view(&account.profile);
    let mut body = serde_json::to_value(&account).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        // The raw tallies hold hashed keys; show what an analyst can read.
        map.remove("profile");
        map.insert("login_profile".into(), login_profile);
        map.insert("recent_events".into(), Value::Array(recent));
    }
    Ok(axum::Json(body).into_response())
}

/// The behavioural profile as an analyst reads it: how many distinct values
/// of each trait the account uses, and the countries and ASNs themselves.
pub(crate) fn login_profile_view(profile: &custos_core::profile::BehaviourProfile) -> Value {
    use custos_core::profile::{TraitKind, unpack_code};
    let day = |d: u16| custos_core::state::Timestamp(i64::from(d) * 86_400);
    let mut distinct = serde_json::Map::new();
    for kind in TraitKind::ALL {
        distinct.insert(kind.as_str().into(), json!(profile.distinct(kind)));
    }
    let listed = |kind: TraitKind, show: &dyn Fn(u64) -> Value| -> Vec<Value> {
        let mut tallies: Vec<_> = profile.tallies(kind).collect();
        tallies.sort_by_key(|t| std::cmp::Reverse(t.count));
        tallies
            .into_iter()
            .map(|t| json!({"value": show(t.key), "count": t.count, "last_seen": day(t.last_day)}))
            .collect()
    };
    json!({
        "logins": profile.logins(),
        "distinct": distinct,
        "countries": listed(TraitKind::Country, &|k| json!(unpack_code(k))),
        "asns": listed(TraitKind::Asn, &|k| json!(k)),
    })
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(stats) = state.runtime.stats().await {
        ::metrics::gauge!("custos_accounts").set(stats.accounts as f64);
        ::metrics::gauge!("custos_last_seq").set(stats.last_seq as f64);
        ::metrics::gauge!("custos_events_since_snapshot").set(stats.events_since_snapshot as f64);
        ::metrics::gauge!("custos_engine_queue_depth").set(stats.queue_depth as f64);
        ::metrics::gauge!("custos_holds_open").set(stats.holds_open as f64);
        ::metrics::gauge!("custos_holds_awaiting_analyst").set(stats.holds_awaiting_analyst as f64);
        ::metrics::gauge!("custos_campaigns_suspected").set(stats.campaigns_suspected as f64);
        ::metrics::gauge!("custos_last_commit_failed")
            .set(f64::from(u8::from(stats.last_commit_failed)));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        telemetry::render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        Code::RouteNotFound,
        "no such route; see the README for the API",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        "this route does not take that HTTP method",
    )
}
