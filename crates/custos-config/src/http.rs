//! `[http]`: what the HTTP edge tolerates before a request reaches a route.
//!
//! Timeouts, the connection limit and load shedding keep slow or idle
//! clients from holding descriptors forever; the origin and host lists keep
//! a browser on another site (or a DNS-rebinding page) from driving a
//! server that listens on loopback. The server reads these settings
//! (`custos-server`'s `connections` and `edge` modules); this module only
//! parses and checks them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;

/// Longest request URI accepted by default, in bytes.
pub const DEFAULT_MAX_URI_BYTES: usize = 8192;
/// Longest request URI that can be configured: hyper refuses longer ones
/// itself, without our JSON body.
pub const MAX_URI_BYTES_LIMIT: usize = 65_534;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Longest time a client may take to send a request's headers, counted
    /// from when the connection opens or its previous answer was sent; so
    /// it is also how long an idle keep-alive connection stays open.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// Longest time to receive a request body once its headers are in.
    #[serde(with = "duration")]
    pub body_timeout: Duration,
    /// Connections served at once. Unset: derived from the process's
    /// open-file limit at start.
    pub max_connections: Option<usize>,
    /// Connections above `max_connections` that are still read and answered
    /// `503 overloaded`; beyond them new connections are closed at once.
    /// Unset: derived with `max_connections`.
    pub shed_connections: Option<usize>,
    /// Longest request URI (path and query), in bytes.
    pub max_uri_bytes: usize,
    /// Browser origins (`scheme://host[:port]`) allowed to send requests. A
    /// request with any other `Origin` header is refused. Empty: none.
    pub allowed_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback names,
    /// when the server listens on loopback (e.g. the name a local reverse
    /// proxy forwards). Ignored on other addresses.
    pub allowed_hosts: Vec<String>,
    /// Whether `/metrics` needs an API key. Unset: only when the server
    /// does not listen on loopback.
    pub metrics_require_key: Option<bool>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: None,
            shed_connections: None,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            metrics_require_key: None,
        }
    }
}

impl HttpConfig {
    /// Whether `/metrics` needs a key when listening on `listen`.
    pub fn metrics_require_key(&self, listen: SocketAddr) -> bool {
        self.metrics_require_key
            .unwrap_or(!listen.ip().is_loopback())
    }

    /// Checks every setting; errors start with `http.<field>`.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let field = |name: &str, problem: &str| format!("http.{name}: {problem}");
        if self.header_timeout.is_zero() {
            return Err(field("header_timeout", "must be positive"));
        }
        if self.body_timeout.is_zero() {
            return Err(field("body_timeout", "must be positive"));
        }
        if self.max_connections == Some(0) {
            return Err(field("max_connections", "must be at least 1"));
        }
        if !(256..=MAX_URI_BYTES_LIMIT).contains(&self.max_uri_bytes) {
            return Err(field(
                "max_uri_bytes",
                &format!("must be 256 to {MAX_URI_BYTES_LIMIT}"),
            ));
        }
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            check_origin(origin).map_err(|p| format!("http.allowed_origins[{i}]: {p}"))?;
        }
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            check_host_name(host).map_err(|p| format!("http.allowed_hosts[{i}]: {p}"))?;
        }
        Ok(())
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing more.
fn check_origin(origin: &str) -> Result<(), String> {
    let problem = || {
        format!(
            "{origin:?} is not an origin; write scheme, host and port only, e.g. \
             \"https://admin.example.com\""
        )
    };
    let url = url::Url::parse(origin).map_err(|_| problem())?;
    if url.origin().ascii_serialization() != origin.trim_end_matches('/') {
        return Err(problem());
    }
    Ok(())
}

/// A host name or address without a port.
fn check_host_name(host: &str) -> Result<(), String> {
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a host name; write the name only, without scheme or port, \
             e.g. \"custos.internal\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<HttpConfig, String> {
        let config: HttpConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        config.validate().map(|()| config)
    }

    #[test]
    fn settings_parse_and_errors_name_the_field() {
        let config = check(
            "header_timeout = \"2s\"\nbody_timeout = \"500ms\"\nmax_connections = 10\n\
             allowed_origins = [\"https://admin.example.com\", \"http://localhost:3000\"]\n\
             allowed_hosts = [\"custos.internal\"]\nmetrics_require_key = true\n",
        )
        .unwrap();
        assert_eq!(config.header_timeout, Duration::from_secs(2));
        assert_eq!(config.body_timeout, Duration::from_millis(500));
        assert_eq!(config.max_connections, Some(10));
        assert!(config.metrics_require_key("127.0.0.1:1".parse().unwrap()));

        for (text, want) in [
            (
                "header_timeout = \"0s\"",
                "http.header_timeout: must be positive",
            ),
            (
                "body_timeout = \"0ms\"",
                "http.body_timeout: must be positive",
            ),
            (
                "max_connections = 0",
                "http.max_connections: must be at least 1",
            ),
            (
                "max_uri_bytes = 100",
                "http.max_uri_bytes: must be 256 to 65534",
            ),
            (
                "allowed_origins = [\"https://a.example.com/path\"]",
                "http.allowed_origins[0]: \"https://a.example.com/path\" is not an origin",
            ),
            (
                "allowed_origins = [\"a.example.com\"]",
                "http.allowed_origins[0]: \"a.example.com\" is not an origin",
            ),
            (
                "allowed_hosts = [\"ok.example\", \"custos.internal:8080\"]",
                "http.allowed_hosts[1]: \"custos.internal:8080\" is not a host name",
            ),
        ] {
            let err = check(text).unwrap_err();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn metrics_need_a_key_off_loopback_unless_told_otherwise() {
        let defaults = HttpConfig::default();
        assert!(!defaults.metrics_require_key("127.0.0.1:8080".parse().unwrap()));
        assert!(!defaults.metrics_require_key("[::1]:8080".parse().unwrap()));
        assert!(defaults.metrics_require_key("0.0.0.0:8080".parse().unwrap()));
        let open = HttpConfig {
            metrics_require_key: Some(false),
            ..HttpConfig::default()
        };
        assert!(!open.metrics_require_key("0.0.0.0:8080".parse().unwrap()));
    }
}
