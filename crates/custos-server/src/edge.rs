//! Checks every request passes before it reaches a route.
//!
//! One middleware ([`guard`]) refuses, each with a JSON error in the shape
//! of the route:
//!
//! - a `Host` that is not a loopback name while the server listens on
//!   loopback (`host_not_allowed`): a page whose DNS name was rebound to
//!   127.0.0.1 would otherwise talk to a development server as a
//!   same-origin page;
//! - an `Origin` header not in `http.allowed_origins` (`origin_not_allowed`):
//!   browsers send it on every cross-site `POST`, so a page on another site
//!   cannot drive the API, even through the Sift routes, whose key travels
//!   in the body where a form can put it;
//! - a state-changing request whose `Content-Type` is not JSON (NDJSON on
//!   `POST /v1/events`, TOML on `/v1/rules`) (`unsupported_media_type`): the
//!   types an HTML form or a no-preflight `fetch` can send are never
//!   accepted, which also covers older browsers that send no `Origin`. A
//!   request without `Content-Type` is read as JSON, as before: a browser
//!   cannot send one cross-site without an `Origin` header;
//! - a URI longer than `http.max_uri_bytes` (`uri_too_long`).
//!
//! The console (`/console`) is a set of HTML forms, so there, and only
//! there, form bodies are accepted and so is an `Origin` equal to the
//! request's own host (the console's own pages posting to it). What
//! protects it from other sites is its `SameSite=Strict` session cookie and
//! the CSRF token every form carries (`console::session`).
//!
//! It also puts a deadline on the request body ([`DeadlineBody`]): a body
//! still incomplete `http.body_timeout` after the headers arrived (shorter
//! than its `Content-Length`, or trickled) fails, and the route answers
//! `body_timeout`. Header and idle timeouts are hyper's, set per connection
//! (`connections`).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use custos_config::Config;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::{ApiError, Code};

/// What [`guard`] checks, from `[http]` and the listen address.
pub struct Edge {
    /// The server listens on a loopback address: `Host` is checked.
    loopback: bool,
    /// Extra host names accepted on loopback, lowercase.
    allowed_hosts: Vec<String>,
    /// Origins accepted, lowercase, without a trailing slash.
    allowed_origins: Vec<String>,
    body_timeout: Duration,
    max_uri_bytes: usize,
}

impl Edge {
    pub fn new(config: &Config) -> Edge {
        let http = &config.http;
        Edge {
            loopback: config.listen.ip().is_loopback(),
            allowed_hosts: http
                .allowed_hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            allowed_origins: http
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            body_timeout: http.body_timeout,
            max_uri_bytes: http.max_uri_bytes,
        }
    }

    fn host_allowed(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if !self.loopback {
            return Ok(());
        }
        // Browsers always send Host; a client that sends none is no page.
        let Some(value) = headers.get(header::HOST) else {
            return Ok(());
        };
        let refused = || {
            ApiError::new(
                Code::HostNotAllowed,
                "host: this server listens on loopback and answers only to localhost, \
                 127.0.0.1 or [::1] (and the names in http.allowed_hosts)",
            )
        };
        let name = value.to_str().map_err(|_| refused())?.trim();
        let name = host_name(name).ok_or_else(refused)?.to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if is_loopback_name(name) || self.allowed_hosts.iter().any(|h| h == name) {
            Ok(())
        } else {
            Err(refused())
        }
    }

    fn origin_allowed(&self, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let allowed = value.to_str().is_ok_and(|origin| {
            let origin = origin.trim().trim_end_matches('/');
            self.allowed_origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
                || (is_console(path) && same_origin(origin, headers))
        });
        if allowed {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::OriginNotAllowed,
                "origin: requests from browser pages are refused unless their origin is in \
                 http.allowed_origins",
            ))
        }
    }

    fn uri_allowed(&self, request: &Request) -> Result<(), ApiError> {
        let length = request
            .uri()
            .path_and_query()
            .map_or(0, |pq| pq.as_str().len());
        if length > self.max_uri_bytes {
            return Err(ApiError::new(
                Code::UriTooLong,
                format!(
                    "uri: the path and query are {length} bytes long; the limit is {}",
                    self.max_uri_bytes
                ),
            ));
        }
        Ok(())
    }
}

fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Whether `origin` is `http(s)://` and the request's own `Host`.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|r| r.eq_ignore_ascii_case(host.trim()))
}

/// The host part of a `Host` header: without its port, and an IPv6 address
/// with its brackets.
fn host_name(value: &str) -> Option<&str> {
    if value.starts_with('[') {
        let end = value.find(']')?;
        let rest = &value[end + 1..];
        if !(rest.is_empty() || rest.starts_with(':')) {
            return None;
        }
        return Some(&value[..=end]);
    }
    let name = value.split(':').next().unwrap_or_default();
    (!name.is_empty()).then_some(name)
}

/// `localhost`, a name under `.localhost` (browsers resolve those to
/// loopback themselves, RFC 6761), or a loopback address.
fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .is_ok_and(|ip| IpAddr::V6(ip).to_canonical().is_loopback());
    }
    name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The media type of a `Content-Type` value, lowercase, without parameters.
fn essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a request that changes state may carry this content type.
fn content_type_allowed(path: &str, essence: &str) -> bool {
    match essence {
        "application/json" => true,
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" => {
            path == "/v1/events"
        }
        "application/toml" | "text/toml" => path == "/v1/rules" || path == "/v1/rules/check",
        "application/x-www-form-urlencoded" => is_console(path),
        _ => false,
    }
}

fn content_type_checked(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    if !matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return Ok(());
    }
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value.to_str().map(essence).unwrap_or_default();
    if content_type_allowed(path, &essence) {
        return Ok(());
    }
    let also = match path {
        "/v1/events" => " or application/x-ndjson",
        "/v1/rules" | "/v1/rules/check" => " or application/toml",
        _ => "",
    };
    Err(ApiError::new(
        Code::UnsupportedMediaType,
        format!("content-type: {essence:?} is not accepted here; send application/json{also}"),
    ))
}

/// The checks of this module, in order, then the route with a body that
/// has a deadline.
pub async fn guard(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let checked = edge
        .host_allowed(request.headers())
        .and_then(|()| edge.origin_allowed(&path, request.headers()))
        .and_then(|()| edge.uri_allowed(&request))
        .and_then(|()| content_type_checked(request.method(), &path, request.headers()));
    if let Err(e) = checked {
        tracing::debug!(code = e.code.as_str(), path = %path, "request refused at the edge");
        return crate::sift::error_for_path(&path, e);
    }
    let deadline = Instant::now() + edge.body_timeout;
    let timeout = edge.body_timeout;
    let request = request.map(|body| Body::new(DeadlineBody::new(body, deadline, timeout)));
    next.run(request).await
}

/// The error a [`DeadlineBody`] fails with; `read_body` answers it with
/// `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive within {}s of the headers", .0.as_secs_f64())]
pub struct BodyTimedOut(pub Duration);

/// A request body that fails once its deadline has passed.
///
/// The deadline is fixed when the headers arrive, not reset by each chunk
/// (as `tower_http`'s `TimeoutBody` is), so a body trickled a byte at a
/// time cannot hold a connection longer than `http.body_timeout` either.
pub struct DeadlineBody {
    inner: Body,
    deadline: Instant,
    timeout: Duration,
    /// Made on the first wait: most bodies arrive with their headers.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    pub fn new(inner: Body, deadline: Instant, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline,
            timeout,
            sleep: None,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_and_only_them() {
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::1]",
            "[::ffff:127.0.0.1]:80",
        ] {
            let name = host_name(host).unwrap().to_ascii_lowercase();
            assert!(is_loopback_name(name.trim_end_matches('.')), "{host}");
        }
        for host in [
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1",
            "0.0.0.0",
            "[::2]:80",
            "[::1]x",
            "127.0.0.1.nip.io",
        ] {
            let loopback = host_name(host).is_some_and(is_loopback_name);
            assert!(!loopback, "{host}");
        }
    }

    #[test]
    fn content_types_per_route() {
        assert!(content_type_allowed("/v205/events", "application/json"));
        assert!(content_type_allowed("/v1/events", "application/x-ndjson"));
        assert!(!content_type_allowed(
            "/v205/events",
            "application/x-ndjson"
        ));
        assert!(content_type_allowed("/v1/rules", "application/toml"));
        assert!(!content_type_allowed("/v1/lists/x", "application/toml"));
        for form in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            assert!(!content_type_allowed("/v1/rules", form), "{form}");
            assert!(!content_type_allowed("/v1/events", form), "{form}");
        }
        assert_eq!(
            essence("Application/JSON; charset=utf-8"),
            "application/json"
        );
    }
}
