//! Prometheus metrics: one process-wide recorder, and per-request counters.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global metrics recorder once per process.
pub fn install_recorder() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => {
                register_alerted_metrics();
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics will be empty");
                None
            }
        }
    });
}

/// The counters that deploy/prometheus/alerts.yml reads, exported at zero
/// from the start: an alert on a series that appears only after the first
/// failure cannot tell "no failure" from "not scraped".
fn register_alerted_metrics() {
    for counter in [
        "custos_commit_failures_total",
        "custos_webhooks_dead_total",
        "custos_http_shed_connections_total",
        "custos_http_refused_connections_total",
        "custos_webhooks_delivered_total",
        "custos_webhooks_failed_attempts_total",
    ] {
        metrics::counter!(counter).increment(0);
    }
    metrics::gauge!("custos_snapshot_last_failed").set(0.0);
    metrics::gauge!("custos_webhook_outbox_pending").set(0.0);
}

pub fn render() -> String {
    HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Counts requests by route and status, and times them.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("custos_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("custos_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
