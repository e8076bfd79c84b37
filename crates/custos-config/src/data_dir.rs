//! What an entry point finds in the data directory before the store opens:
//! the name of the database file, and the destination token key.
//!
//! The token key turns bank account numbers into `tk_…` tokens (a keyed
//! HMAC), so every entry point that parses events into a store must use the
//! same key as the one that wrote it (the runtime refuses a different one).
//! When neither `destination_token_key` (`CUSTOS_TOKEN_KEY`) nor `[secrets]
//! token_key_file` is configured, a random key is generated into the data
//! directory on first start, readable by its owner only, and reused after.
//! A key kept there travels with every copy of the data, so the runtime
//! warns about it at every start (`custos_runtime::secrets`, which loads the
//! PII key the same way); keep a copy of it apart from the data's backups.

use std::path::Path;

use custos_core::DestinationTokenizer;

use crate::Config;

/// Name of the generated token key file inside the data directory.
pub const TOKEN_KEY_FILE: &str = "destination-token.key";
/// Name of the generated key for personal values inside the data directory.
pub const PII_KEY_FILE: &str = "pii.key";
/// Name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "custos.db";

/// Why the destination token key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[error("destination token key: {0}")]
pub struct LoadTokenKeyError(String);

/// Loads the configured token key, else the one in `[secrets]
/// token_key_file`, else the one generated into the data directory,
/// creating it on first start: the order `custos_runtime::secrets` uses,
/// without its warnings and checks, for entry points that open no store.
pub fn load_token_key(config: &Config) -> Result<DestinationTokenizer, LoadTokenKeyError> {
    let key: Vec<u8> = match (
        &config.destination_token_key,
        &config.secrets.token_key_file,
    ) {
        (Some(key), _) => key.as_bytes().to_vec(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| LoadTokenKeyError(format!("{}: {e}", path.display())))?
            .trim()
            .as_bytes()
            .to_vec(),
        (None, None) => read_or_create_key_file(&config.data_dir.join(TOKEN_KEY_FILE))?,
    };
    DestinationTokenizer::new(&key).map_err(|e| LoadTokenKeyError(e.to_string()))
}

/// Reads the key kept at `path` (surrounding whitespace ignored), or
/// creates it with 32 random bytes in hex, readable by its owner only.
pub fn read_or_create_key_file(path: &Path) -> Result<Vec<u8>, LoadTokenKeyError> {
    let io = |e: std::io::Error| LoadTokenKeyError(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| LoadTokenKeyError(e.to_string()))?;
    let key = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    std::io::Write::write_all(&mut file, key.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    tracing::warn!(
        path = %path.display(),
        "generated a key; keep a copy of it apart from the data (see docs/security.md)"
    );
    Ok(key.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_in_the_data_dir_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let first = load_token_key(&config).unwrap();
        let path = dir.path().join(TOKEN_KEY_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 64, "32 random bytes, hex: {text:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
        }
        let again = load_token_key(&config).unwrap();
        assert_eq!(first.key_id(), again.key_id(), "the file is reused");

        // A configured key wins over the file.
        let configured = Config {
            destination_token_key: Some("a-configured-key-0123456789".into()),
            ..config.clone()
        };
        assert_ne!(
            load_token_key(&configured).unwrap().key_id(),
            first.key_id()
        );
    }

    #[test]
    fn an_unusable_key_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Config {
            data_dir: dir.path().join("not-created"),
            ..Config::default()
        };
        let err = load_token_key(&missing).unwrap_err().to_string();
        assert!(err.starts_with("destination token key: "), "{err}");
        assert!(err.contains(TOKEN_KEY_FILE), "{err}");
        let short = Config {
            destination_token_key: Some("short".into()),
            ..Config::default()
        };
        let err = load_token_key(&short).unwrap_err().to_string();
        assert!(err.starts_with("destination token key: "), "{err}");
    }

    #[test]
    fn a_key_file_named_in_secrets_is_read_and_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.secrets.token_key_file = Some(path.clone());
        let err = load_token_key(&config).unwrap_err().to_string();
        assert!(err.contains("token.key"), "{err}");
        assert!(!path.exists());
        std::fs::write(&path, "a-key-in-a-file-0123456789\n").unwrap();
        let from_file = load_token_key(&config).unwrap();
        config.secrets.token_key_file = None;
        config.destination_token_key = Some("a-key-in-a-file-0123456789".into());
        assert_eq!(
            load_token_key(&config).unwrap().key_id(),
            from_file.key_id()
        );
    }
}
