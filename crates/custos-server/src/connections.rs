//! The accept loop: how many connections are served, for how long, and
//! what happens above the limit.
//!
//! `axum::serve` sets no header timeout and accepts connections until the
//! process runs out of descriptors; then `accept` fails and even a health
//! check cannot connect. This loop serves each connection with hyper's
//! HTTP/1 server and its own knobs instead:
//!
//! - **Header timeout** (`http.header_timeout`, hyper's
//!   `header_read_timeout`): a connection that has not sent a complete
//!   request head within it is closed. hyper starts the clock whenever it
//!   waits for a head, so the same limit closes idle keep-alive
//!   connections.
//! - **Body timeout** (`http.body_timeout`): a deadline on the request body
//!   (`edge::DeadlineBody`), answered `408 body_timeout`.
//! - **Connection limit** (`http.max_connections`): each served connection
//!   holds a permit of a semaphore. Above the limit, up to
//!   `http.shed_connections` more are *shed*: read, answered `503
//!   overloaded` with `Retry-After` and closed (keep-alive off), except the
//!   liveness routes (`/livez`, `/healthz`), which still answer, so that a
//!   busy server is not mistaken for a dead one. Beyond both, a new
//!   connection is closed as soon as it is accepted. Connections already
//!   open are not disturbed, and new ones are served again as soon as
//!   others close.
//!
//! The two limits default from the open-file limit (`RLIMIT_NOFILE`): they
//! keep [`RESERVED_DESCRIPTORS`] for the store, webhook deliveries and logs,
//! so the server sheds and refuses before `accept` can fail.
//!
//! On stop the listener is closed first, then hyper's graceful shutdown lets
//! requests in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use custos_config::HttpConfig;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Descriptors kept for everything but HTTP connections: the listening
/// socket, the SQLite files of each store connection, webhook deliveries,
/// the runtime's own (epoll, eventfd), standard streams and logs.
pub const RESERVED_DESCRIPTORS: u64 = 128;
/// Most connections shed by default: enough to tell clients to back off.
const MAX_DEFAULT_SHED: usize = 256;

/// How many connections are served and shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub served: usize,
    pub shed: usize,
}

impl ConnectionLimits {
    /// From the settings, with what is unset derived from `nofile` (the
    /// soft open-file limit).
    pub fn new(config: &HttpConfig, nofile: u64) -> ConnectionLimits {
        let budget = nofile.saturating_sub(RESERVED_DESCRIPTORS).max(16) as usize;
        let default_shed = (budget / 8).clamp(1, MAX_DEFAULT_SHED);
        let (served, default_shed) = match config.max_connections {
            Some(served) => (served, served.div_ceil(8).min(MAX_DEFAULT_SHED)),
            None => (budget - default_shed, default_shed),
        };
        let shed = config.shed_connections.unwrap_or(default_shed);
        ConnectionLimits { served, shed }
    }
}

/// The soft open-file limit of this process.
pub fn open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        // "Unlimited": as many as a busy server needs.
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        limit.current.unwrap_or(65_536)
    }
    // No such limit to read: assume the common Unix default.
    #[cfg(not(unix))]
    {
        1024
    }
}

/// The two services a connection can get.
#[derive(Clone)]
pub struct Services {
    /// The API.
    pub app: Router,
    /// What a shed connection is answered by.
    pub shed: Router,
}

/// Per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub limits: ConnectionLimits,
    pub header_timeout: Duration,
    /// Longest wait for requests in flight at stop.
    pub grace: Duration,
}

/// Accepts until `stop` fires, then waits (up to `grace`) for the
/// connections still open.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    settings: Settings,
    mut stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let served = Arc::new(Semaphore::new(settings.limits.served));
    let shed = Arc::new(Semaphore::new(settings.limits.shed));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors despite the limits (another part of
                // the process used them): wait for some to close.
                tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Ok(permit) = served.clone().try_acquire_owned() {
            metrics::gauge!("custos_http_open_connections").increment(1.0);
            spawn_connection(
                &graceful,
                stream,
                peer,
                services.app.clone(),
                permit,
                &settings,
                true,
            );
        } else if let Ok(permit) = shed.clone().try_acquire_owned() {
            metrics::counter!("custos_http_shed_connections_total").increment(1);
            tracing::debug!(%peer, "over http.max_connections: shedding a connection");
            spawn_connection(
                &graceful,
                stream,
                peer,
                services.shed.clone(),
                permit,
                &settings,
                false,
            );
        } else {
            metrics::counter!("custos_http_refused_connections_total").increment(1);
            tracing::debug!(%peer, "over http.max_connections and http.shed_connections: closing a connection");
            drop(stream);
        }
    }
    drop(listener);
    if tokio::time::timeout(settings.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = settings.grace.as_secs(),
            "connections still open after the grace period; stopping anyway"
        );
    }
    Ok(())
}

fn spawn_connection(
    graceful: &GracefulShutdown,
    stream: TcpStream,
    peer: SocketAddr,
    service: Router,
    permit: OwnedSemaphorePermit,
    settings: &Settings,
    served: bool,
) {
    // The client's address, for the console's login limit and audit trail.
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request
                .extensions_mut()
                .insert(crate::console::PeerAddr(peer));
            tower_service::Service::call(&mut service.clone(), request)
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(served);
    let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            // Timeouts, clients that went away, unparseable heads: routine.
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        if served {
            metrics::gauge!("custos_http_open_connections").decrement(1.0);
        }
        drop(permit);
    });
}

/// Errors of one connection that `accept` reports; the next one may work.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_descriptors_for_the_rest_of_the_process() {
        let defaults = HttpConfig::default();
        let common = ConnectionLimits::new(&defaults, 1024);
        assert_eq!(
            common,
            ConnectionLimits {
                served: 784,
                shed: 112
            }
        );
        assert!(common.served as u64 + common.shed as u64 + RESERVED_DESCRIPTORS <= 1024);
        let large = ConnectionLimits::new(&defaults, 1 << 20);
        assert_eq!(large.shed, MAX_DEFAULT_SHED);
        assert_eq!(large.served as u64, (1 << 20) - RESERVED_DESCRIPTORS - 256);
        // A tiny limit still serves a few.
        let tiny = ConnectionLimits::new(&defaults, 100);
        assert!(tiny.served >= 8 && tiny.shed >= 1, "{tiny:?}");
    }

    #[test]
    fn configured_limits_win() {
        let config = HttpConfig {
            max_connections: Some(40),
            ..HttpConfig::default()
        };
        assert_eq!(
            ConnectionLimits::new(&config, 1024),
            ConnectionLimits {
                served: 40,
                shed: 5
            }
        );
        let config = HttpConfig {
            max_connections: Some(40),
            shed_connections: Some(0),
            ..HttpConfig::default()
        };
        assert_eq!(ConnectionLimits::new(&config, 1024).shed, 0);
    }
}
