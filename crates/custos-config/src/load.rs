//! Where a setting comes from: the config file (or the defaults without
//! one), then the environment, then the command line. Each layer overrides
//! the one before, and the result is checked once, after all three, so that
//! a flag can repair what the file alone would not pass (a `--listen` on
//! loopback for a file without API keys).
//!
//! The environment holds what should stay out of files (`CUSTOS_API_KEYS`,
//! `CUSTOS_DESTINATION_TOKEN_KEY`, see [`Config::apply_env`]); flags hold
//! what changes per run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{Config, ConfigError};

/// Settings given on the command line, each overriding the file and the
/// environment when set.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--rules`: a rules directory installed at start.
    pub rules_dir: Option<PathBuf>,
    /// `--confirm-removal`, `--override-reason`, `--override-analyst`: what
    /// the rules directory may remove from the stored version.
    pub rules_override: Option<custos_core::rules::RemovalOverride>,
}

/// Config file (or defaults), then environment, then flags; then checked.
pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
    load_with_env(path, overrides, |name| std::env::var(name).ok())
}

/// [`load`] with the environment read through `get_env`.
pub fn load_with_env(
    path: Option<&Path>,
    overrides: Overrides,
    get_env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut config = match path {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env(get_env);
    if let Some(listen) = overrides.listen {
        config.listen = listen;
    }
    if let Some(dir) = overrides.data_dir {
        config.data_dir = dir;
    }
    if let Some(dir) = overrides.rules_dir {
        config.rules.dir = Some(dir);
    }
    if let Some(confirmation) = overrides.rules_override {
        config.rules.removal_override = Some(confirmation);
    }
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/from/file\"\n\
             api_keys = [\"a-key-from-the-file-0123\"]\n",
        )
        .unwrap();
        let env =
            |name: &str| (name == "CUSTOS_API_KEYS").then(|| "a-key-from-the-env-0123".to_string());
        let config = load_with_env(Some(&path), Overrides::default(), env).unwrap();
        assert_eq!(config.listen.port(), 9000, "from the file");
        assert_eq!(config.data_dir, Path::new("/from/file"));
        assert_eq!(
            config.api_keys,
            ["a-key-from-the-env-0123"],
            "env over file"
        );
        let config = load_with_env(
            Some(&path),
            Overrides {
                listen: Some("127.0.0.1:7000".parse().unwrap()),
                data_dir: Some("/from/flag".into()),
                rules_dir: Some("/rules/from/flag".into()),
                rules_override: None,
            },
            env,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 7000, "flag over file");
        assert_eq!(config.data_dir, Path::new("/from/flag"));
        assert_eq!(
            config.rules.dir.as_deref(),
            Some(Path::new("/rules/from/flag"))
        );
        assert_eq!(config.api_keys, ["a-key-from-the-env-0123"]);
    }

    #[test]
    fn the_result_is_checked_after_every_layer() {
        // Without keys, a public address is refused, and a loopback flag
        // makes the same file acceptable.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\n").unwrap();
        let err = load_with_env(Some(&path), Overrides::default(), |_| None).unwrap_err();
        assert!(err.to_string().contains("not loopback"), "{err}");
        let loopback = Overrides {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Overrides::default()
        };
        assert!(load_with_env(Some(&path), loopback, |_| None).is_ok());
        // No file: the defaults.
        let config = load_with_env(None, Overrides::default(), |_| None).unwrap();
        assert_eq!(config.listen, Config::default().listen);
    }
}
