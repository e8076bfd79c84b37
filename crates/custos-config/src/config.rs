//! The configuration: a TOML file, environment overrides, and checks
//! that refuse an unsafe setup before anything listens or writes.
//!
//! Webhook endpoints (`[[webhooks]]`) and their delivery settings
//! (`[webhook_delivery]`) are checked here too, down to the secret named by
//! `secret_env`, so a missing secret stops the start with an error that
//! names the field instead of failing on the first delivery.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use custos_core::decision::{Action, EffectKind};
use custos_core::features::FeatureConfig;
use custos_core::login_risk::Mixture;
use serde::Deserialize;

use crate::http::HttpConfig;
use crate::keys::{ApiKey, ApiKeyConfig};

/// The key accepted when no API key is configured, and only on loopback.
pub const DEVELOPMENT_API_KEY: &str = "custos-dev-key";
/// Shortest API key accepted in configuration.
pub const MIN_API_KEY_LEN: usize = 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the database and the generated token key.
    pub data_dir: PathBuf,
    /// Unscoped keys, each allowed everything (`admin`); kept for older
    /// files and `CUSTOS_API_KEYS`. Prefer `[[api_key]]`. With neither, the
    /// development key works, on a loopback address only.
    pub api_keys: Vec<String>,
    /// Keys with names and scopes, one `[[api_key]]` table each (see
    /// `keys.rs` and `docs/keys.md`).
    pub api_key: Vec<ApiKeyConfig>,
    /// Secret for destination tokens (at least 16 bytes). Empty: a random key
    /// is generated into `data_dir` on first start and reused after.
    pub destination_token_key: Option<String>,
    pub limits: Limits,
    /// Timeouts, connection limits and request checks at the HTTP edge.
    pub http: HttpConfig,
    pub rules: RulesConfig,
    /// MaxMind databases for IP enrichment; without them network features
    /// that need them read as unknown.
    pub geo: custos_enrich::GeoConfig,
    pub login_risk: LoginRiskConfig,
    pub engine: EngineConfig,
    /// Signed webhooks, one `[[webhooks]]` table per endpoint (see
    /// `docs/webhooks.md`). Empty: no webhooks are derived or sent.
    pub webhooks: Vec<WebhookEndpointConfig>,
    /// How webhooks are delivered and retried, for all endpoints.
    pub webhook_delivery: WebhookDeliveryConfig,
    /// Where the token key and the key for personal values come from
    /// (`docs/security.md`).
    pub secrets: crate::SecretsConfig,
    /// Where the event log lives (`docs/store.md`).
    pub store: StoreConfig,
    /// The analyst console at `/console` (`docs/console.md`).
    pub console: ConsoleConfig,
    /// Several nodes over NATS JetStream (`custos serve --cluster`,
    /// `docs/cluster.md`); unused otherwise.
    pub cluster: ClusterConfig,
}

/// `[cluster]`: how a node joins a cluster of Custos nodes over NATS
/// JetStream (`docs/cluster.md`). Read only by `custos serve --cluster` and
/// `custos cluster status`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// NATS servers to connect to, e.g. `["nats://10.0.0.1:4222"]`.
    pub nats_urls: Vec<String>,
    /// This node's name, unique in the cluster (letters, digits, `-`, `_`).
    /// Empty: the host name.
    pub node_id: String,
    /// Partitions of the account space; the same on every node and fixed
    /// for the life of the cluster.
    pub partitions: u32,
    /// Copies of each stream and bucket NATS keeps (1 on a single NATS
    /// server, 3 on a cluster of three).
    pub replicas: usize,
    /// How long a node owns a partition without renewing its lease: how
    /// soon the others take over the partitions of a node that died.
    #[serde(with = "duration")]
    pub lease_ttl: Duration,
    /// How long a node waits for the owner's answer to an event it
    /// received before answering 503 (the client retries with the same
    /// event id, which is safe).
    #[serde(with = "duration")]
    pub answer_timeout: Duration,
    /// How long the stream of decisions keeps them: a node that was away
    /// longer must start again from a copy of another node's data.
    #[serde(with = "duration")]
    pub decision_retention: Duration,
    /// Prefix of the streams, subjects and buckets, so that several
    /// clusters can share one NATS (letters, digits, `_`).
    pub name: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_urls: vec!["nats://127.0.0.1:4222".into()],
            node_id: String::new(),
            partitions: 64,
            replicas: 1,
            lease_ttl: Duration::from_secs(3),
            answer_timeout: Duration::from_secs(30),
            decision_retention: Duration::from_secs(7 * 86_400),
            name: "custos".into(),
        }
    }
}

impl ClusterConfig {
    /// Checks the settings a node cannot run without.
    pub fn validate(&self) -> Result<(), String> {
        if self.nats_urls.is_empty() {
            return Err("cluster.nats_urls: give at least one NATS server".into());
        }
        let name_ok = |s: &str, extra: &[u8]| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        };
        if !self.node_id.is_empty() && !name_ok(&self.node_id, b"-_") {
            return Err(format!(
                "cluster.node_id: {:?}: use 1 to 64 letters, digits, - and _",
                self.node_id
            ));
        }
        if !name_ok(&self.name, b"_") {
            return Err(format!(
                "cluster.name: {:?}: use 1 to 64 letters, digits and _",
                self.name
            ));
        }
        if self.partitions == 0 || self.partitions > 4096 {
            return Err("cluster.partitions: must be between 1 and 4096".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return Err("cluster.replicas: must be between 1 and 5".into());
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err("cluster.lease_ttl: must be at least 1s".into());
        }
        if self.answer_timeout <= self.lease_ttl {
            return Err("cluster.answer_timeout: must be longer than cluster.lease_ttl, or a takeover would time every waiting request out".into());
        }
        if self.decision_retention < Duration::from_secs(3600) {
            return Err("cluster.decision_retention: must be at least 1h".into());
        }
        Ok(())
    }
}

/// `[store]`: where the event log, snapshots and outbox live.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user[:password]@host[:port]/database`: keep them in
    /// PostgreSQL. Unset (or empty): the embedded SQLite database in
    /// `data_dir`. `CUSTOS_STORE_URL` overrides it.
    pub url: Option<String>,
    /// The PostgreSQL schema to keep the tables in, created if missing
    /// (lowercase letters, digits and `_`). Unset: the connection's
    /// default (`public`). Several instances may share one database, each
    /// in its own schema.
    pub schema: Option<String>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .finish()
    }
}

impl StoreConfig {
    /// The PostgreSQL URL, when one is set.
    pub fn postgres_url(&self) -> Option<&str> {
        self.url.as_deref().filter(|u| !u.is_empty())
    }

    /// The URL with its password (if any) replaced by `***`, for logs.
    pub fn redacted_url(&self) -> Option<String> {
        let raw = self.postgres_url()?;
        Some(match url::Url::parse(raw) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "(not a url)".to_string(),
        })
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(schema) = &self.schema
            && (schema.is_empty()
                || schema.len() > 63
                || !schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        {
            return Err(format!(
                "store.schema: {schema:?}: use 1 to 63 lowercase letters, digits and _"
            ));
        }
        let Some(raw) = self.postgres_url() else {
            return Ok(());
        };
        let url = url::Url::parse(raw).map_err(|e| format!("store.url: not a URL: {e}"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "store.url: scheme {:?} is not postgres:// (leave it unset for the embedded SQLite store)",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("store.url: has no host".into());
        }
        for (key, value) in url.query_pairs() {
            if key == "sslmode" && !matches!(value.as_ref(), "disable" | "prefer") {
                return Err(format!(
                    "store.url: sslmode={value} needs TLS, which the PostgreSQL store does not \
                     support yet; use a private network or a TLS tunnel (see docs/store.md)"
                ));
            }
        }
        Ok(())
    }
}

/// The analyst console's sessions, login limits and four-eyes threshold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Mark the session cookie `Secure`: set it whenever TLS is in front.
    pub secure_cookie: bool,
    /// A session unused this long ends.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    #[serde(with = "duration")]
    pub absolute_timeout: Duration,
    /// Releasing a hold of more than this amount (minor units, any
    /// currency) needs a second person with the `lead` role.
    pub four_eyes_above: u64,
    /// Failed logins allowed per user name, and per address ten times
    /// this, within `login_window`; further attempts are refused unchecked.
    pub max_failed_logins: u32,
    #[serde(with = "duration")]
    pub login_window: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            secure_cookie: false,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            four_eyes_above: 100_000,
            max_failed_logins: 5,
            login_window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_batch_events: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// A rules directory (like the repository's `rules/`), installed at
    /// start as a new version when it differs from the newest stored one.
    /// Unset: the newest stored version, or the built-in default policy.
    pub dir: Option<PathBuf>,
    /// Confirms that `dir` removes protection from the stored version
    /// (`custos serve --confirm-removal ...`). Never read from the file: an
    /// override is for one start, not for every start after.
    #[serde(skip)]
    pub removal_override: Option<custos_core::rules::RemovalOverride>,
}

/// Which features every decision records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFeatures {
    /// Those the rules read (cheapest).
    #[default]
    Used,
    /// Every feature, for analysts and offline evaluation.
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginRiskConfig {
    /// Days of history kept in each account's behavioural profile.
    pub horizon_days: u32,
    /// Pseudo-count pulling an account's estimates toward the population.
    pub alpha: f64,
    /// `geometric` (default) or `arithmetic` (Freeman et al. as published).
    pub mixture: Mixture,
    /// Score device ids as a third feature family (the paper has two).
    pub device_family: bool,
    /// ASNs of hosting, datacenter and VPN networks, added to the built-in list.
    pub hosting_asns: Vec<u32>,
    /// Travel faster than this between logins is impossible.
    pub impossible_travel_kmh: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Events between snapshots of engine state (0: only at shutdown).
    pub snapshot_every_events: u64,
    /// Most events decided and committed together.
    pub max_group_events: usize,
    /// `used` (default): decisions record the features their rules read;
    /// `all`: every feature.
    pub record_features: RecordFeatures,
    /// How far ahead of the server's clock an event's `time` may be (5m by
    /// default; `"off"`: no bound). Event time drives windows, profiles and
    /// the clock payout holds expire on; an event from the future is refused
    /// with `time_out_of_range`. `custos replay` checks it too.
    #[serde(with = "duration::optional")]
    pub max_future_skew: Option<Duration>,
    /// How far behind the server's clock an event's `time` may be (`"off"`
    /// by default: late events, backfills and labels of old events are the
    /// platform's to send). Set it, e.g. `"30d"`, to refuse events dated in
    /// the far past on the HTTP API; `custos replay` never checks it.
    #[serde(with = "duration::optional")]
    pub max_event_age: Option<Duration>,
}

/// The default `engine.max_future_skew`: generous for clocks kept by NTP,
/// tight against a client clock that is simply wrong.
pub const DEFAULT_MAX_FUTURE_SKEW: Duration = Duration::from_secs(300);

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./custos-data"),
            api_keys: Vec::new(),
            api_key: Vec::new(),
            destination_token_key: None,
            limits: Limits::default(),
            http: HttpConfig::default(),
            rules: RulesConfig::default(),
            geo: custos_enrich::GeoConfig::default(),
            login_risk: LoginRiskConfig::default(),
            engine: EngineConfig::default(),
            webhooks: Vec::new(),
            webhook_delivery: WebhookDeliveryConfig::default(),
            secrets: crate::SecretsConfig::default(),
            store: StoreConfig::default(),
            console: ConsoleConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_batch_events: 1000,
        }
    }
}

impl Default for LoginRiskConfig {
    fn default() -> Self {
        let features = FeatureConfig::default();
        LoginRiskConfig {
            horizon_days: features.horizon_days,
            alpha: features.risk.alpha,
            mixture: features.risk.mixture,
            device_family: features.risk.device_family,
            hosting_asns: Vec::new(),
            impossible_travel_kmh: features.impossible_travel_kmh,
        }
    }
}

impl LoginRiskConfig {
    /// The engine's feature settings.
    pub fn features(&self) -> FeatureConfig {
        let mut features = FeatureConfig {
            horizon_days: self.horizon_days,
            impossible_travel_kmh: self.impossible_travel_kmh,
            ..FeatureConfig::default()
        };
        features.risk.alpha = self.alpha;
        features.risk.mixture = self.mixture;
        features.risk.device_family = self.device_family;
        features
            .hosting_asns
            .extend(self.hosting_asns.iter().copied());
        features
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            snapshot_every_events: 1_000_000,
            max_group_events: 8192,
            record_features: RecordFeatures::Used,
            max_future_skew: Some(DEFAULT_MAX_FUTURE_SKEW),
            max_event_age: None,
        }
    }
}

/// Webhook types that endpoints can subscribe to: `decision.created` and
/// every kind of decision effect.
pub fn webhook_types() -> Vec<&'static str> {
    let mut types = vec![DECISION_CREATED];
    types.extend(EffectKind::ALL.iter().map(|k| k.as_str()));
    types
}

/// The webhook sent for a decision at or above an endpoint's `min_action`.
pub const DECISION_CREATED: &str = "decision.created";

/// Shortest webhook secret accepted.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// One `[[webhooks]]` endpoint.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointConfig {
    /// Stable name: the endpoint's key in the outbox, in metrics and logs.
    /// Unset: the URL without its query string. Set it when the URL holds a
    /// token, or before changing the URL, so pending deliveries follow.
    #[serde(default)]
    pub name: Option<String>,
    /// Where to POST: an `https://` URL (certificates verified against the
    /// platform's trust store, plus `ca_file`), or `http://` on a private
    /// network.
    pub url: String,
    /// A PEM file of extra root certificates trusted for this endpoint only
    /// (a private CA), besides the platform's trust store. `https://` only.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Signing secret, at least 16 characters. Or:
    #[serde(default)]
    pub secret: Option<String>,
    /// The name of an environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Types to send: exact names, `prefix.*` or `*` (all, the default).
    #[serde(default = "all_webhook_types")]
    pub events: Vec<String>,
    /// Weakest decision action that sends `decision.created` (default
    /// `review`). Effects are sent whatever the action.
    #[serde(default = "default_min_action")]
    pub min_action: Action,
    /// How long one attempt may take, connecting included (default 10s).
    #[serde(default = "default_webhook_timeout", with = "duration")]
    pub timeout: Duration,
}

fn all_webhook_types() -> Vec<String> {
    vec!["*".to_string()]
}

fn default_min_action() -> Action {
    Action::Review
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Never prints the secret.
impl std::fmt::Debug for WebhookEndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpointConfig")
            .field("name", &self.name())
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .field("ca_file", &self.ca_file)
            .field("events", &self.events)
            .field("min_action", &self.min_action)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookEndpointConfig {
    /// An endpoint with the defaults for everything but URL and secret.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> WebhookEndpointConfig {
        WebhookEndpointConfig {
            name: None,
            url: url.into(),
            ca_file: None,
            secret: Some(secret.into()),
            secret_env: None,
            events: all_webhook_types(),
            min_action: default_min_action(),
            timeout: default_webhook_timeout(),
        }
    }

    /// The endpoint's name: `name`, or the URL without query, fragment and
    /// credentials (which may hold tokens and are never logged).
    pub fn name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match url::Url::parse(&self.url) {
            Ok(mut url) => {
                url.set_query(None);
                url.set_fragment(None);
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            }
            Err(_) => "<invalid url>".to_string(),
        }
    }

    /// Does this endpoint take webhooks of type `kind`?
    pub fn subscribes_to(&self, kind: &str) -> bool {
        self.events.iter().any(|p| pattern_matches(p, kind))
    }

    /// The secret, from `secret` or the variable named by `secret_env`.
    /// Errors start with the field name, without the `webhooks[i].` prefix.
    pub fn resolve_secret(
        &self,
        get_env: impl Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        let secret = match (&self.secret, &self.secret_env) {
            (Some(_), Some(_)) => {
                return Err("secret: set either secret or secret_env, not both".into());
            }
            (None, None) => return Err("secret: set secret or secret_env".into()),
            (Some(secret), None) => secret.clone(),
            (None, Some(var)) => get_env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("secret_env: environment variable {var} is not set or empty")
            })?,
        };
        if secret.len() < MIN_WEBHOOK_SECRET_LEN {
            let field = if self.secret.is_some() {
                "secret"
            } else {
                "secret_env"
            };
            return Err(format!(
                "{field}: the secret is {} characters long; at least {MIN_WEBHOOK_SECRET_LEN} are required",
                secret.len()
            ));
        }
        Ok(secret)
    }

    /// Checks everything but the secret. Errors start with the field name.
    fn validate(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| format!("url: {:?} is not a URL: {e}", self.name()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.ca_file.is_some() => {
                return Err("ca_file: only for an https:// url".into());
            }
            "http" => {}
            other => return Err(format!("url: scheme {other:?} is not https or http")),
        }
        if let Some(file) = &self.ca_file
            && !file.is_file()
        {
            return Err(format!(
                "ca_file: {} is not a readable file",
                file.display()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("url: has no host".into());
        }
        if let Some(name) = &self.name
            && (name.is_empty() || name.len() > 200 || name.chars().any(char::is_control))
        {
            return Err("name: must be 1 to 200 printable characters".into());
        }
        if self.events.is_empty() {
            return Err("events: subscribes to nothing; list types, \"prefix.*\" or \"*\"".into());
        }
        let known = webhook_types();
        for (j, pattern) in self.events.iter().enumerate() {
            if !known.iter().any(|k| pattern_matches(pattern, k)) {
                return Err(format!(
                    "events[{j}]: {pattern:?} matches no webhook type; known types: {}",
                    known.join(", ")
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err("timeout: must be positive".into());
        }
        Ok(())
    }
}

/// `*` matches every type, `prefix.*` every type under `prefix.`, anything
/// else only itself.
pub fn pattern_matches(pattern: &str, kind: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => kind
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == kind,
    }
}

/// `[webhook_delivery]`: shared by all endpoints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookDeliveryConfig {
    /// How often the log is checked for new events to turn into webhooks.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Wait after the first failed attempt; doubled after each failure.
    #[serde(with = "duration")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "duration")]
    pub max_backoff: Duration,
    /// Attempts before a delivery is given up and marked dead.
    pub max_attempts: u32,
    /// Attempts in flight at once, per endpoint.
    pub concurrency: usize,
    /// How long delivered rows stay in the outbox, for inspection.
    #[serde(with = "duration")]
    pub keep_delivered: Duration,
}

impl Default for WebhookDeliveryConfig {
    /// 10s, 20s, 40s … 1h, 1h …: the 80th attempt comes about three days
    /// after the first.
    fn default() -> Self {
        WebhookDeliveryConfig {
            poll_interval: Duration::from_millis(200),
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 80,
            concurrency: 4,
            keep_delivered: Duration::from_secs(7 * 86_400),
        }
    }
}

impl WebhookDeliveryConfig {
    fn validate(&self) -> Result<(), String> {
        let field = |name: &str, problem: &str| format!("webhook_delivery.{name}: {problem}");
        if self.poll_interval.is_zero() {
            return Err(field("poll_interval", "must be positive"));
        }
        if self.initial_backoff.is_zero() {
            return Err(field("initial_backoff", "must be positive"));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(field("max_backoff", "must be at least initial_backoff"));
        }
        if self.max_attempts == 0 {
            return Err(field("max_attempts", "must be at least 1"));
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(field("concurrency", "must be 1 to 64"));
        }
        Ok(())
    }
}

/// Durations written as `"10s"`, `"1h30m"` or `"250ms"` (units ms, s, m, h,
/// d, w).
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Parses a duration; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Duration> {
        if let Some(ms) = text.strip_suffix("ms")
            && !ms.is_empty()
            && ms.bytes().all(|b| b.is_ascii_digit())
        {
            return ms.parse().ok().map(Duration::from_millis);
        }
        let secs = custos_core::rules::syntax::parse_duration(text)?;
        u64::try_from(secs).ok().map(Duration::from_secs)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration: use ms, s, m, h, d or w, e.g. \"10s\""
            ))
        })
    }

    /// A duration, or `"off"` for none.
    pub mod optional {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer};

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            let text = String::deserialize(deserializer)?;
            if text == "off" {
                return Ok(None);
            }
            super::parse(&text).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a duration or \"off\": use ms, s, m, h, d or w, e.g. \"5m\""
                ))
            })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Applies `CUSTOS_API_KEYS` (comma-separated), `CUSTOS_TOKEN_KEY` (or
    /// `CUSTOS_DESTINATION_TOKEN_KEY`), `CUSTOS_PII_KEY` and
    /// `CUSTOS_STORE_URL` (which may hold a database password), so secrets
    /// can stay out of files.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(keys) = get("CUSTOS_API_KEYS") {
            self.api_keys = keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
        }
        // `CUSTOS_TOKEN_KEY` is the newer name; either works.
        for name in ["CUSTOS_DESTINATION_TOKEN_KEY", "CUSTOS_TOKEN_KEY"] {
            if let Some(key) = get(name).filter(|k| !k.is_empty()) {
                self.destination_token_key = Some(key);
            }
        }
        self.secrets.apply_env(&get);
        if let Some(url) = get("CUSTOS_STORE_URL").filter(|u| !u.is_empty()) {
            self.store.url = Some(url);
        }
    }

    /// Refuses configurations that would be unsafe or cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.resolve_api_keys(|name| std::env::var(name).ok())?;
        if self.limits.max_body_bytes == 0 || self.limits.max_batch_events == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_body_bytes and limits.max_batch_events must be positive".into(),
            ));
        }
        let risk = &self.login_risk;
        if !(risk.alpha > 0.0 && risk.alpha.is_finite()) {
            return Err(ConfigError::Invalid(
                "login_risk.alpha must be a positive number".into(),
            ));
        }
        if risk.horizon_days == 0 {
            return Err(ConfigError::Invalid(
                "login_risk.horizon_days must be positive".into(),
            ));
        }
        if self.engine.max_group_events == 0 {
            return Err(ConfigError::Invalid(
                "engine.max_group_events must be positive".into(),
            ));
        }
        for (name, bound) in [
            ("max_future_skew", self.engine.max_future_skew),
            ("max_event_age", self.engine.max_event_age),
        ] {
            if bound.is_some_and(|d| d.is_zero()) {
                return Err(ConfigError::Invalid(format!(
                    "engine.{name}: must be positive, or \"off\" for no bound"
                )));
            }
        }
        self.http.validate().map_err(ConfigError::Invalid)?;
        self.store.validate().map_err(ConfigError::Invalid)?;
        self.validate_webhooks(|name| std::env::var(name).ok())
            .map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// Checks `[[webhooks]]` and `[webhook_delivery]`; `get_env` reads the
    /// variables named by `secret_env`.
    fn validate_webhooks(&self, get_env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        self.webhook_delivery.validate()?;
        let mut names = std::collections::HashSet::new();
        for (i, endpoint) in self.webhooks.iter().enumerate() {
            endpoint
                .validate()
                .and_then(|()| endpoint.resolve_secret(&get_env).map(drop))
                .map_err(|e| format!("webhooks[{i}].{e}"))?;
            let name = endpoint.name();
            if !names.insert(name.clone()) {
                return Err(format!(
                    "webhooks[{i}].name: another endpoint is already called {name:?}; \
                     give each endpoint its own name"
                ));
            }
        }
        Ok(())
    }

    /// Every key the server accepts, with its name and scopes: the
    /// `[[api_key]]` tables, the unscoped `api_keys` as `admin`, or the
    /// development key on loopback when neither is set. `get_env` reads the
    /// variables named by `key_env`.
    pub fn resolve_api_keys(
        &self,
        get_env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<ApiKey>, ConfigError> {
        crate::keys::resolve(&self.api_key, &self.api_keys, self.listen, get_env)
            .map_err(ConfigError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_sqlite_unless_a_postgres_url_is_given() {
        let c = Config::default();
        assert_eq!(c.store.postgres_url(), None);
        let mut c: Config =
            toml::from_str("[store]\nurl = \"postgres://custos:hunter2@db:5432/custos\"\n")
                .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.store.postgres_url(),
            Some("postgres://custos:hunter2@db:5432/custos")
        );
        let shown = format!("{:?}", c.store);
        assert!(
            shown.contains("postgres://custos:***@db:5432/custos") && !shown.contains("hunter2"),
            "{shown}"
        );
        // The environment wins over the file; an empty value changes nothing.
        c.apply_env(|n| (n == "CUSTOS_STORE_URL").then(|| "postgresql://other/x".into()));
        assert_eq!(c.store.postgres_url(), Some("postgresql://other/x"));
        c.apply_env(|n| (n == "CUSTOS_STORE_URL").then(String::new));
        assert_eq!(c.store.postgres_url(), Some("postgresql://other/x"));
        c.validate().unwrap();
    }

    #[test]
    fn a_store_url_that_cannot_work_is_refused() {
        for (url, problem) in [
            ("sqlite:///var/custos.db", "is not postgres://"),
            ("postgres://", "has no host"),
            ("not a url", "not a URL"),
            ("postgres://db/custos?sslmode=require", "needs TLS"),
        ] {
            let c = Config {
                store: StoreConfig {
                    url: Some(url.into()),
                    schema: None,
                },
                ..Config::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(
                err.contains("store.url") && err.contains(problem),
                "{url}: {err}"
            );
        }
    }

    fn config(listen: &str, keys: &[&str]) -> Config {
        Config {
            listen: listen.parse().unwrap(),
            api_keys: keys.iter().map(|k| k.to_string()).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn development_key_only_on_loopback() {
        assert!(config("127.0.0.1:8080", &[]).validate().is_ok());
        assert!(config("[::1]:8080", &[]).validate().is_ok());
        let err = config("0.0.0.0:8080", &[]).validate().unwrap_err();
        assert!(err.to_string().contains("not loopback"), "{err}");
        let err = config("0.0.0.0:8080", &[DEVELOPMENT_API_KEY])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("development key"), "{err}");
        assert!(
            config("0.0.0.0:8080", &["a-real-key-of-enough-length"])
                .validate()
                .is_ok()
        );
        let err = config("0.0.0.0:8080", &["short"]).validate().unwrap_err();
        assert!(err.to_string().contains("api_keys[0]"), "{err}");
    }

    #[test]
    fn files_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\n[limits]\nmax_batch_events = 5\n",
        )
        .unwrap();
        let mut c = Config::from_file(&path).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.limits.max_batch_events, 5);
        assert_eq!(
            c.limits.max_body_bytes,
            1024 * 1024,
            "defaults fill the rest"
        );
        c.apply_env(|name| match name {
            "CUSTOS_API_KEYS" => Some("key-one-0123456789abc, key-two-0123456789abc".into()),
            _ => None,
        });
        assert_eq!(c.api_keys.len(), 2);
        std::fs::write(&path, "listn = \"x\"\n").unwrap();
        let err = Config::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn event_time_bounds_parse_and_can_be_turned_off() {
        let defaults = Config::default();
        assert_eq!(
            defaults.engine.max_future_skew,
            Some(Duration::from_secs(300))
        );
        assert_eq!(defaults.engine.max_event_age, None);
        let c: Config =
            toml::from_str("[engine]\nmax_future_skew = \"1m\"\nmax_event_age = \"30d\"\n")
                .unwrap();
        assert_eq!(c.engine.max_future_skew, Some(Duration::from_secs(60)));
        assert_eq!(
            c.engine.max_event_age,
            Some(Duration::from_secs(30 * 86_400))
        );
        let c: Config = toml::from_str("[engine]\nmax_future_skew = \"off\"\n").unwrap();
        assert_eq!(c.engine.max_future_skew, None);
        let err = toml::from_str::<Config>("[engine]\nmax_future_skew = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("max_future_skew"), "{err}");
        let zero: Config = toml::from_str("[engine]\nmax_event_age = \"0s\"\n").unwrap();
        let err = zero.validate().unwrap_err();
        assert!(
            err.to_string()
                .contains("engine.max_event_age: must be positive"),
            "{err}"
        );
    }

    fn webhooks_config(toml_text: &str) -> Result<Config, String> {
        toml::from_str::<Config>(toml_text).map_err(|e| e.to_string())
    }

    fn webhook_error(toml_text: &str, env: &[(&str, &str)]) -> String {
        let config = webhooks_config(toml_text).unwrap();
        config
            .validate_webhooks(|name| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap_err()
    }

    #[test]
    fn webhook_endpoints_parse_with_defaults() {
        let config = webhooks_config(
            r#"
            [[webhooks]]
            url = "http://127.0.0.1:9000/hooks?token=abc"
            secret = "0123456789abcdef"

            [[webhooks]]
            name = "risk-team"
            url = "http://risk.internal/custos"
            secret_env = "RISK_HOOK_SECRET"
            events = ["hold.*", "campaign.confirmed"]
            min_action = "hold"
            timeout = "2500ms"

            [webhook_delivery]
            initial_backoff = "1s"
            "#,
        )
        .unwrap();
        let (ops, risk) = (&config.webhooks[0], &config.webhooks[1]);
        assert_eq!(
            ops.name(),
            "http://127.0.0.1:9000/hooks",
            "no token in the name"
        );
        assert_eq!(
            (ops.events.as_slice(), ops.min_action),
            (&["*".to_string()][..], Action::Review)
        );
        assert_eq!(ops.timeout, Duration::from_secs(10));
        assert_eq!(risk.name(), "risk-team");
        assert_eq!(
            (risk.min_action, risk.timeout),
            (Action::Hold, Duration::from_millis(2500))
        );
        assert!(risk.subscribes_to("hold.released") && risk.subscribes_to("campaign.confirmed"));
        assert!(!risk.subscribes_to("decision.created") && !risk.subscribes_to("campaign.updated"));
        assert_eq!(
            config.webhook_delivery.initial_backoff,
            Duration::from_secs(1)
        );
        assert_eq!(
            config.webhook_delivery.max_attempts, 80,
            "defaults fill the rest"
        );
        let env = |name: &str| (name == "RISK_HOOK_SECRET").then(|| "s".repeat(32));
        assert_eq!(config.validate_webhooks(env), Ok(()));
        assert_eq!(risk.resolve_secret(env).unwrap(), "s".repeat(32));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("0123456789abcdef"),
            "secrets are never printed: {shown}"
        );
        assert!(!shown.contains("token=abc"), "{shown}");
    }

    #[test]
    fn webhook_errors_name_the_field() {
        let endpoint = |extra: &str| {
            format!(
                "[[webhooks]]\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"0123456789abcdef\"\n{extra}"
            )
        };
        let cases: Vec<(String, &str)> = vec![
            (
                "[[webhooks]]\nurl = \"http://example.com/h\"\nsecret = \"0123456789abcdef\"\nca_file = \"/etc/hostname\"\n"
                    .into(),
                "webhooks[0].ca_file: only for an https:// url",
            ),
            (
                "[[webhooks]]\nurl = \"https://example.com/h\"\nsecret = \"0123456789abcdef\"\nca_file = \"/no/such/ca.pem\"\n"
                    .into(),
                "webhooks[0].ca_file: /no/such/ca.pem is not a readable file",
            ),
            (
                "[[webhooks]]\nurl = \"not a url\"\nsecret = \"0123456789abcdef\"\n".into(),
                "webhooks[0].url: ",
            ),
            (
                "[[webhooks]]\nurl = \"ftp://x/h\"\nsecret = \"0123456789abcdef\"\n".into(),
                "webhooks[0].url: scheme \"ftp\" is not https or http",
            ),
            (
                "[[webhooks]]\nurl = \"http://x/h\"\n".into(),
                "webhooks[0].secret: set secret or secret_env",
            ),
            (
                "[[webhooks]]\nurl = \"http://x/h\"\nsecret = \"short\"\n".into(),
                "webhooks[0].secret: the secret is 5 characters long",
            ),
            (
                "[[webhooks]]\nurl = \"http://x/h\"\nsecret_env = \"NOPE\"\n".into(),
                "webhooks[0].secret_env: environment variable NOPE is not set",
            ),
            (
                endpoint("secret_env = \"HOOK\""),
                "webhooks[0].secret: set either secret or secret_env, not both",
            ),
            (
                endpoint("events = []"),
                "webhooks[0].events: subscribes to nothing",
            ),
            (
                endpoint("events = [\"hold.*\", \"holds.*\"]"),
                "webhooks[0].events[1]: \"holds.*\" matches no webhook type; known types: decision.created, hold.created",
            ),
            (
                endpoint("events = [\"hold.create\"]"),
                "webhooks[0].events[0]: \"hold.create\"",
            ),
            (
                endpoint("timeout = \"0s\""),
                "webhooks[0].timeout: must be positive",
            ),
            (
                format!("{}{}", endpoint(""), endpoint("")),
                "webhooks[1].name: another endpoint is already called \"http://127.0.0.1:9/h\"",
            ),
            (
                "[webhook_delivery]\nmax_backoff = \"1s\"\ninitial_backoff = \"2s\"\n".into(),
                "webhook_delivery.max_backoff: must be at least initial_backoff",
            ),
            (
                "[webhook_delivery]\nmax_attempts = 0\n".into(),
                "webhook_delivery.max_attempts: must be at least 1",
            ),
        ];
        for (text, want) in cases {
            let err = webhook_error(&text, &[("HOOK", "0123456789abcdef")]);
            assert!(err.starts_with(want), "{text}\n-> {err}\nwant {want}");
        }
        // A secret from the environment is checked like one in the file.
        let err = webhook_error(
            "[[webhooks]]\nurl = \"http://x/h\"\nsecret_env = \"HOOK\"\n",
            &[("HOOK", "tiny")],
        );
        assert!(
            err.starts_with("webhooks[0].secret_env: the secret is 4 characters"),
            "{err}"
        );
        // Bad values inside the file are parse errors that name the key.
        let err = webhooks_config(&endpoint("min_action = \"severe\"")).unwrap_err();
        assert!(
            err.contains("min_action") && err.contains("severe"),
            "{err}"
        );
        let err = webhooks_config(&endpoint("timeout = \"soon\"")).unwrap_err();
        assert!(
            err.contains("timeout") && err.contains("not a duration"),
            "{err}"
        );
        let err = webhooks_config(&endpoint("secrett = \"x\"")).unwrap_err();
        assert!(err.contains("secrett"), "{err}");
        // Through validate(), as the binary calls it.
        let mut config = webhooks_config(&endpoint("")).unwrap();
        config.webhooks[0].url = "gopher://example.com/h".into();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("webhooks[0].url"), "{err}");
        config.webhooks[0].url = "https://example.com/h".into();
        config.validate().expect("https is accepted");
    }

    #[test]
    fn webhook_patterns_and_durations() {
        for (pattern, kind, want) in [
            ("*", "decision.created", true),
            ("*", "campaign.detected", true),
            ("hold.*", "hold.created", true),
            ("hold.*", "holdings.created", false),
            ("hold.*", "hold", false),
            ("campaign.*", "hold.created", false),
            ("hold.created", "hold.created", true),
            ("hold.created", "hold.released", false),
            ("decision.created", "decision.created", true),
        ] {
            assert_eq!(pattern_matches(pattern, kind), want, "{pattern} {kind}");
        }
        let types = webhook_types();
        assert_eq!(types.len(), 1 + EffectKind::ALL.len());
        assert!(types.contains(&"decision.created") && types.contains(&"destination.denied"));
        for (text, want) in [
            ("250ms", Some(Duration::from_millis(250))),
            ("10s", Some(Duration::from_secs(10))),
            ("1h30m", Some(Duration::from_secs(5400))),
            ("7d", Some(Duration::from_secs(7 * 86_400))),
            ("ms", None),
            ("10", None),
            ("-5s", None),
            ("1.5s", None),
        ] {
            assert_eq!(duration::parse(text), want, "{text}");
        }
    }

    #[test]
    fn example_file_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../custos.example.toml");
        let example = Config::from_file(&path).unwrap();
        let defaults = Config::default();
        assert_eq!(example.console, defaults.console);
        assert_eq!(example.listen, defaults.listen);
        assert_eq!(example.data_dir, defaults.data_dir);
        assert_eq!(example.api_keys, defaults.api_keys);
        assert_eq!(
            example.destination_token_key,
            defaults.destination_token_key
        );
        assert_eq!(
            example.secrets.require_external_keys,
            defaults.secrets.require_external_keys
        );
        assert_eq!(
            example.limits.max_body_bytes,
            defaults.limits.max_body_bytes
        );
        assert_eq!(
            example.limits.max_batch_events,
            defaults.limits.max_batch_events
        );
        assert_eq!(example.http, defaults.http);
        assert_eq!(example.rules.dir, defaults.rules.dir);
        assert_eq!(example.geo, defaults.geo);
        assert_eq!(
            example.login_risk.features(),
            defaults.login_risk.features()
        );
        assert_eq!(
            example.engine.record_features,
            defaults.engine.record_features
        );
        assert_eq!(
            example.engine.snapshot_every_events,
            defaults.engine.snapshot_every_events
        );
        assert_eq!(
            example.engine.max_group_events,
            defaults.engine.max_group_events
        );
        assert!(
            example.webhooks.is_empty(),
            "the example's endpoints are commented out"
        );
        // The commented [[webhooks]] example is valid once uncommented.
        let text = std::fs::read_to_string(&path).unwrap();
        let endpoint: String = text
            .lines()
            .skip_while(|l| *l != "# [[webhooks]]")
            .take_while(|l| l.starts_with('#'))
            .filter(|l| !l.starts_with("# #"))
            .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
            .collect();
        let uncommented: Config = toml::from_str(&endpoint).unwrap();
        assert_eq!(uncommented.webhooks.len(), 1, "{endpoint}");
        let env = |name: &str| (name == "CUSTOS_WEBHOOK_SECRET").then(|| "s".repeat(32));
        uncommented.validate_webhooks(env).unwrap();
        assert_eq!(example.webhook_delivery, defaults.webhook_delivery);
        example.validate().unwrap();
    }
}
