//! # custos-config
//!
//! Everything an entry point of Custos reads from disk before it can run:
//!
//! - the configuration ([`Config`]): the TOML schema, its environment
//!   overrides and the checks that refuse an unsafe or unworkable setup,
//!   webhook endpoints and the HTTP edge ([`HttpConfig`]) included;
//! - API keys with their names and scopes ([`Scope`], `[[api_key]]`,
//!   resolved by [`Config::resolve_api_keys`]);
//! - the layering of file, environment and flags ([`load`]);
//! - the data directory's fixed names and the destination token key kept
//!   there ([`load_token_key`]);
//! - rule directories ([`load_rules_dir`]).
//!
//! ## Why a crate of its own
//!
//! `custos serve`, `custos replay`, the backtest and, later, a NATS consumer
//! all start from the same file, the same token key and the same rules, but
//! only one of them speaks HTTP. Kept apart from the server, the offline
//! entry points link neither axum nor reqwest, and a new entry point reads
//! its settings exactly as the others do. So this crate depends on the core
//! and the enrichment settings only: no async runtime, no HTTP, no store.
//! Opening a runtime from a [`Config`] is `custos_runtime::open`.

mod config;
mod data_dir;
mod http;
mod keys;
mod load;
mod rules_dir;
mod secrets;

pub use config::{
    ClusterConfig, Config, ConfigError, ConsoleConfig, DECISION_CREATED, DEFAULT_MAX_FUTURE_SKEW,
    DEVELOPMENT_API_KEY, EngineConfig, Limits, LoginRiskConfig, MIN_API_KEY_LEN,
    MIN_WEBHOOK_SECRET_LEN, RecordFeatures, RulesConfig, StoreConfig, WebhookDeliveryConfig,
    WebhookEndpointConfig, duration, pattern_matches, webhook_types,
};
pub use data_dir::{
    DATABASE_FILE, LoadTokenKeyError, PII_KEY_FILE, TOKEN_KEY_FILE, load_token_key,
    read_or_create_key_file,
};
pub use http::{DEFAULT_MAX_URI_BYTES, HttpConfig, MAX_URI_BYTES_LIMIT};
pub use keys::{ApiKey, ApiKeyConfig, DEVELOPMENT_KEY_NAME, Role, Scope, Scopes};
pub use load::{Overrides, load, load_with_env};
pub use rules_dir::{LoadRulesError, load_rules_dir};
pub use secrets::SecretsConfig;
