//! Server configuration: a TOML file, environment overrides, and checks
//! that refuse an unsafe setup before anything listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use custos_core::features::FeatureConfig;
use custos_core::login_risk::Mixture;
use serde::Deserialize;

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
    /// Bearer tokens that may call `/v1`. Empty: the development key works,
    /// on a loopback address only.
    pub api_keys: Vec<String>,
    /// Secret for destination tokens (at least 16 bytes). Empty: a random key
    /// is generated into `data_dir` on first start and reused after.
    pub destination_token_key: Option<String>,
    pub limits: Limits,
    pub rules: RulesConfig,
    /// MaxMind databases for IP enrichment; without them network features
    /// that need them read as unknown.
    pub geo: custos_enrich::GeoConfig,
    pub login_risk: LoginRiskConfig,
    pub engine: EngineConfig,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./custos-data"),
            api_keys: Vec::new(),
            destination_token_key: None,
            limits: Limits::default(),
            rules: RulesConfig::default(),
            geo: custos_enrich::GeoConfig::default(),
            login_risk: LoginRiskConfig::default(),
            engine: EngineConfig::default(),
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

    /// Applies `CUSTOS_API_KEYS` (comma-separated) and
    /// `CUSTOS_DESTINATION_TOKEN_KEY`, so secrets can stay out of files.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(keys) = get("CUSTOS_API_KEYS") {
            self.api_keys = keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(key) = get("CUSTOS_DESTINATION_TOKEN_KEY").filter(|k| !k.is_empty()) {
            self.destination_token_key = Some(key);
        }
    }

    /// Refuses configurations that would be unsafe or cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let loopback = self.listen.ip().is_loopback();
        if self.api_keys.is_empty() && !loopback {
            return Err(ConfigError::Invalid(format!(
                "listen address {} is not loopback and no api_keys are configured; \
                 set api_keys (or CUSTOS_API_KEYS) to keys of at least {MIN_API_KEY_LEN} characters",
                self.listen
            )));
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            if key == DEVELOPMENT_API_KEY {
                if !loopback {
                    return Err(ConfigError::Invalid(format!(
                        "api_keys[{i}] is the development key, which is refused on the non-loopback address {}",
                        self.listen
                    )));
                }
            } else if key.len() < MIN_API_KEY_LEN {
                return Err(ConfigError::Invalid(format!(
                    "api_keys[{i}] is {} characters long; at least {MIN_API_KEY_LEN} are required",
                    key.len()
                )));
            }
        }
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
        Ok(())
    }

    /// The keys `/v1` accepts: the configured ones, or the development key.
    pub fn effective_api_keys(&self) -> Vec<String> {
        if self.api_keys.is_empty() {
            vec![DEVELOPMENT_API_KEY.to_string()]
        } else {
            self.api_keys.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn example_file_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../custos.example.toml");
        let example = Config::from_file(&path).unwrap();
        let defaults = Config::default();
        assert_eq!(example.listen, defaults.listen);
        assert_eq!(example.data_dir, defaults.data_dir);
        assert_eq!(example.api_keys, defaults.api_keys);
        assert_eq!(
            example.destination_token_key,
            defaults.destination_token_key
        );
        assert_eq!(
            example.limits.max_body_bytes,
            defaults.limits.max_body_bytes
        );
        assert_eq!(
            example.limits.max_batch_events,
            defaults.limits.max_batch_events
        );
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
        example.validate().unwrap();
    }
}
