//! Opening a runtime from a configuration: the single way every entry point
//! boots the engine (the HTTP server, `custos replay`, and later the NATS
//! consumer), so that all of them check, key, enrich and recover alike.
//!
//! In order: check the config, create the data directory, load the
//! destination token key and the PII key ([`crate::secrets`]: from the
//! environment or files outside the data directory, else generated into it
//! with a warning at every start), open the enrichment
//! databases, read the configured rules directory, open the store (the
//! PostgreSQL database of `[store] url` or `CUSTOS_STORE_URL` when set,
//! else SQLite in the data directory), then recover the engine from it ([`Runtime::start`]).
//! Everything that can be refused is refused before the store is opened,
//! except a token or PII key that differs from the one the store was
//! written with, which only the store can tell.

use std::sync::Arc;

use custos_config::{Config, ConfigError, DATABASE_FILE, LoadRulesError};
use custos_core::EventParser;
use custos_core::features::FeatureSet;
use custos_store::{EventStore, PgStore, SqliteOptions, SqliteStore, StoreError};

use crate::secrets::SecretsError;
use crate::{Runtime, RuntimeConfig, RuntimeError};

/// Why a runtime did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Enrichment(#[from] custos_enrich::EnrichError),
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// Not a `#[source]`: the message already holds it, and `{:#}` would
    /// print it twice.
    #[error("cannot start the engine: {0}")]
    Runtime(RuntimeError),
    #[error(transparent)]
    Rules(#[from] LoadRulesError),
}

impl From<RuntimeError> for OpenError {
    fn from(e: RuntimeError) -> Self {
        OpenError::Runtime(e)
    }
}

/// Checks `config`, opens its store (PostgreSQL when `[store] url` is set,
/// else SQLite in its data directory with `options`: `custos replay` asks
/// for [`SqliteOptions::bulk`]) and recovers the engine.
pub fn open(config: &Config, options: SqliteOptions) -> Result<Runtime, OpenError> {
    open_with_log(config, options, None)
}

/// [`open`], for a cluster node: decided groups of the partitions it owns
/// are published to `log` before the store commits them.
pub fn open_with_log(
    config: &Config,
    options: SqliteOptions,
    log: Option<Arc<dyn crate::CommitLog>>,
) -> Result<Runtime, OpenError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| OpenError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let secrets = crate::secrets::load_secrets(config)?;
    for warning in secrets.warnings() {
        tracing::warn!(data_dir = %config.data_dir.display(), "{warning}");
    }
    let enricher = custos_enrich::GeoUaEnricher::open(&config.geo)?;
    tracing::info!(
        city_db = enricher.has_city_db(),
        asn_db = enricher.has_asn_db(),
        "enrichment ready"
    );
    let rules = match &config.rules.dir {
        Some(dir) => Some(custos_config::load_rules_dir(dir)?),
        None => None,
    };
    let store: Arc<dyn EventStore> = match config.store.postgres_url() {
        Some(url) => {
            let store = PgStore::connect_in_schema(url, config.store.schema.as_deref())?;
            tracing::info!(
                url = config.store.redacted_url().unwrap_or_default(),
                schema = config.store.schema.as_deref().unwrap_or("(default)"),
                "store: postgresql"
            );
            Arc::new(store)
        }
        None => Arc::new(SqliteStore::open_with(
            config.data_dir.join(DATABASE_FILE),
            options,
        )?),
    };
    let mut features = config.login_risk.features();
    if config.engine.record_features == custos_config::RecordFeatures::All {
        features.record = FeatureSet::ALL;
    }
    let runtime = Runtime::start_with_log(
        store,
        EventParser::new(secrets.tokenizer)
            .with_pii(secrets.pii)
            .with_enricher(Arc::new(enricher)),
        RuntimeConfig {
            rules,
            rules_override: config.rules.removal_override.clone(),
            features,
            max_group_events: config.engine.max_group_events,
            snapshot_every_events: config.engine.snapshot_every_events,
            ..RuntimeConfig::default()
        },
        log,
    )?;
    Ok(runtime.with_data_dir(config.data_dir.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &std::path::Path) -> Config {
        Config {
            data_dir: dir.join("data"),
            ..Config::default()
        }
    }

    #[test]
    fn opens_in_a_new_data_dir_and_refuses_another_key_after() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let runtime = open(&config, SqliteOptions::default()).unwrap();
        assert_eq!(runtime.rules().version(), 1, "the built-in rules");
        runtime.shutdown_blocking().unwrap();
        drop(runtime);
        assert!(config.data_dir.join(DATABASE_FILE).is_file());
        assert!(
            config
                .data_dir
                .join(custos_config::TOKEN_KEY_FILE)
                .is_file()
        );
        assert!(config.data_dir.join(custos_config::PII_KEY_FILE).is_file());

        // The generated key is reused, so the same directory opens again ...
        let again = open(&config, SqliteOptions::default()).unwrap();
        again.shutdown_blocking().unwrap();
        drop(again);
        // ... but not with a different key.
        let other_key = Config {
            destination_token_key: Some("another-key-0123456789".into()),
            ..config
        };
        match open(&other_key, SqliteOptions::default()) {
            Err(OpenError::Runtime(RuntimeError::TokenKeyChanged { .. })) => {}
            other => panic!("expected a changed key, got {:?}", other.err()),
        }
    }

    #[test]
    fn keys_in_the_data_dir_are_announced_at_every_start_and_external_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        // What open() logs at every start is `warnings()` of the keys it
        // loaded; capturing the log itself is racy under the parallel test
        // runner (callsite interest is process-wide), so the lines are read
        // from the same source after each start.
        for start in ["first", "second"] {
            let runtime = open(&config, SqliteOptions::default()).unwrap();
            runtime.shutdown_blocking().unwrap();
            drop(runtime);
            let warnings = crate::secrets::load_secrets(&config).unwrap().warnings();
            assert_eq!(warnings.len(), 2, "{start} start: {warnings:?}");
            assert!(warnings[0].contains("account number"), "{}", warnings[0]);
            assert!(warnings[1].contains("pii key"), "{}", warnings[1]);
            let key = std::fs::read_to_string(config.data_dir.join(custos_config::TOKEN_KEY_FILE))
                .unwrap();
            assert!(
                warnings.iter().all(|w| !w.contains(key.trim())),
                "the key itself is never logged"
            );
        }
        // The same keys from outside: the same store opens, silently.
        let outside = dir.path().join("token.key");
        std::fs::rename(
            config.data_dir.join(custos_config::TOKEN_KEY_FILE),
            &outside,
        )
        .unwrap();
        let pii_outside = dir.path().join("pii.key");
        std::fs::rename(
            config.data_dir.join(custos_config::PII_KEY_FILE),
            &pii_outside,
        )
        .unwrap();
        config.secrets.token_key_file = Some(outside);
        config.secrets.pii_key_file = Some(pii_outside);
        config.secrets.require_external_keys = true;
        let runtime = open(&config, SqliteOptions::default()).unwrap();
        runtime.shutdown_blocking().unwrap();
        drop(runtime);
        let warnings = crate::secrets::load_secrets(&config).unwrap().warnings();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn require_external_keys_refuses_to_start_before_the_store_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        config.secrets.require_external_keys = true;
        match open(&config, SqliteOptions::default()) {
            Err(OpenError::Secrets(SecretsError::InDataDir { key, .. })) => {
                assert_eq!(key, "destination token key");
            }
            other => panic!("expected a refusal, got {:?}", other.err()),
        }
        assert!(!config.data_dir.join(DATABASE_FILE).exists());
        assert!(!config.data_dir.join(custos_config::TOKEN_KEY_FILE).exists());

        // Both keys from outside: it starts, and writes no key beside the data.
        config.destination_token_key = Some("a-token-key-from-env-0123456789".into());
        config.secrets.pii_key = Some("a-pii-key-from-env-0123456789".into());
        let runtime = open(&config, SqliteOptions::default()).unwrap();
        runtime.shutdown_blocking().unwrap();
        drop(runtime);
        assert!(config.data_dir.join(DATABASE_FILE).is_file());
        assert!(!config.data_dir.join(custos_config::TOKEN_KEY_FILE).exists());
        assert!(!config.data_dir.join(custos_config::PII_KEY_FILE).exists());
    }

    #[test]
    fn an_invalid_config_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..config_in(dir.path())
        };
        let err = open(&config, SqliteOptions::default()).err();
        assert!(matches!(err, Some(OpenError::Config(_))), "{err:?}");
        assert!(!config.data_dir.exists());
    }

    #[tokio::test]
    async fn a_postgres_url_selects_postgresql_and_the_engine_recovers_from_it() {
        let Some((schema, store)) = custos_store::testsuite::pg_test_store() else {
            return;
        };
        drop(store);
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            store: custos_config::StoreConfig {
                url: Some(schema.url.clone()),
                schema: Some(schema.schema.clone()),
            },
            ..config_in(dir.path())
        };
        let event = serde_json::json!({
            "event_id": "pg-1", "type": "login", "account_id": "acct-pg",
            "time": "2024-01-01T00:00:00Z", "ip": "203.0.113.7", "status": "success"
        });
        let prepare = |runtime: &Runtime| {
            let parsed = runtime.parser().parse_value(event.clone()).unwrap();
            vec![crate::PreparedEvent::new(parsed, runtime.parser()).unwrap()]
        };
        let runtime = open(&config, SqliteOptions::default()).unwrap();
        let first = runtime.submit(prepare(&runtime)).await.unwrap();
        assert_eq!(runtime.store().event_count().unwrap(), 1);
        runtime.shutdown().await.unwrap();
        drop(runtime);
        assert!(
            !config.data_dir.join(DATABASE_FILE).exists(),
            "no SQLite file beside the keys"
        );
        // A new process finds the event in PostgreSQL: the same id is a
        // duplicate answered with the stored decision.
        let runtime = open(&config, SqliteOptions::default()).unwrap();
        let again = runtime.submit(prepare(&runtime)).await.unwrap();
        assert!(again[0].duplicate, "{again:?}");
        assert_eq!(
            (&again[0].event_id, again[0].seq, &again[0].decision),
            (&first[0].event_id, first[0].seq, &first[0].decision)
        );
        assert_eq!(runtime.store().event_count().unwrap(), 1);
        assert!(
            runtime.store().latest_snapshot().unwrap().is_some(),
            "snapshot at shutdown"
        );
        runtime.shutdown().await.unwrap();
    }
}
