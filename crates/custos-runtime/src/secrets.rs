//! Loading the two keys that protect stored data, and saying loudly when
//! they are kept where they protect nothing.
//!
//! The destination token key makes `tk_…` tokens from account numbers; the
//! PII key seals holder names and personal custom fields
//! (`custos_core::pii`). Each is taken, in order, from:
//!
//! 1. the environment (`CUSTOS_TOKEN_KEY`, `CUSTOS_PII_KEY`; the token key
//!    also from `destination_token_key` in the config file);
//! 2. the file named by `[secrets] token_key_file` / `pii_key_file`, which
//!    must exist (a key file that vanished must not be silently replaced by
//!    a new key);
//! 3. a file in the data directory, generated on first start.
//!
//! The third keeps the one-command start working, but whoever copies the
//! data directory (a backup, a snapshot of the disk) then holds the keys
//! too: with the token key, a token plus its last four digits gives back
//! the account number in about 10^4 keyed hashes; with the PII key, every
//! sealed value opens. So that case is logged as a warning at every start
//! naming the threat, and `[secrets] require_external_keys = true` refuses
//! it. A key file named in `[secrets]` but inside the data directory counts
//! as the third case. Moving a generated key out of the data directory
//! keeps tokens and sealed values as they were: it is the same key.

use std::path::{Path, PathBuf};

use custos_config::{Config, PII_KEY_FILE, TOKEN_KEY_FILE};
use custos_core::{DestinationTokenizer, PiiCipher};

/// Where a key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The environment, or for the token key `destination_token_key`.
    Configured,
    /// A file outside the data directory.
    File(PathBuf),
    /// A file in the data directory (generated or named there).
    DataDir(PathBuf),
}

/// The keys a runtime opens its store with.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub tokenizer: DestinationTokenizer,
    pub pii: PiiCipher,
    pub token_key_source: KeySource,
    pub pii_key_source: KeySource,
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{key}: cannot read {path}: {problem}")]
    Read {
        key: &'static str,
        path: String,
        problem: String,
    },
    #[error("{key}: {problem}")]
    Unusable { key: &'static str, problem: String },
    #[error(
        "{key} would be kept in the data directory ({path}) and secrets.require_external_keys \
         is set; give it in {env} or in a file outside the data directory (secrets.{file_field})"
    )]
    InDataDir {
        key: &'static str,
        path: String,
        env: &'static str,
        file_field: &'static str,
    },
}

const TOKEN_KEY: &str = "destination token key";
const PII_KEY: &str = "pii key";

impl Secrets {
    /// One line per key kept in the data directory, naming what an attacker
    /// with a copy of the data could do with it. Empty when both keys are
    /// kept elsewhere.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let KeySource::DataDir(path) = &self.token_key_source {
            warnings.push(format!(
                "the destination token key is kept in the data directory ({}): anyone with a \
                 copy of the data, a backup for instance, can turn a token and its last four \
                 digits back into the full account number; set CUSTOS_TOKEN_KEY or \
                 secrets.token_key_file outside the data directory",
                path.display()
            ));
        }
        if let KeySource::DataDir(path) = &self.pii_key_source {
            warnings.push(format!(
                "the pii key is kept in the data directory ({}): anyone with a copy of the \
                 data can read the sealed holder names and personal fields; set \
                 CUSTOS_PII_KEY or secrets.pii_key_file outside the data directory",
                path.display()
            ));
        }
        warnings
    }
}

/// Loads both keys (see the module docs for the order), creating the ones
/// that fall back to the data directory, which must exist.
pub fn load_secrets(config: &Config) -> Result<Secrets, SecretsError> {
    let secrets = &config.secrets;
    let (token_key, token_key_source) = load_key(
        config,
        KeySpec {
            name: TOKEN_KEY,
            configured: config.destination_token_key.as_deref(),
            file: secrets.token_key_file.as_deref(),
            data_dir_file: TOKEN_KEY_FILE,
            env: "CUSTOS_TOKEN_KEY",
            file_field: "token_key_file",
        },
    )?;
    let (pii_key, pii_key_source) = load_key(
        config,
        KeySpec {
            name: PII_KEY,
            configured: secrets.pii_key.as_deref(),
            file: secrets.pii_key_file.as_deref(),
            data_dir_file: PII_KEY_FILE,
            env: "CUSTOS_PII_KEY",
            file_field: "pii_key_file",
        },
    )?;
    let tokenizer = DestinationTokenizer::new(&token_key).map_err(|e| SecretsError::Unusable {
        key: TOKEN_KEY,
        problem: e.to_string(),
    })?;
    let pii = PiiCipher::new(&pii_key).map_err(|e| SecretsError::Unusable {
        key: PII_KEY,
        problem: e.to_string(),
    })?;
    Ok(Secrets {
        tokenizer,
        pii,
        token_key_source,
        pii_key_source,
    })
}

struct KeySpec<'a> {
    name: &'static str,
    configured: Option<&'a str>,
    file: Option<&'a Path>,
    data_dir_file: &'static str,
    env: &'static str,
    file_field: &'static str,
}

fn load_key(config: &Config, spec: KeySpec) -> Result<(Vec<u8>, KeySource), SecretsError> {
    if let Some(key) = spec.configured {
        return Ok((key.as_bytes().to_vec(), KeySource::Configured));
    }
    let refuse = |path: &Path| -> Result<(), SecretsError> {
        if config.secrets.require_external_keys {
            return Err(SecretsError::InDataDir {
                key: spec.name,
                path: path.display().to_string(),
                env: spec.env,
                file_field: spec.file_field,
            });
        }
        Ok(())
    };
    if let Some(path) = spec.file {
        let read_error = |problem: String| SecretsError::Read {
            key: spec.name,
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        let key = text.trim().as_bytes().to_vec();
        if key.is_empty() {
            return Err(read_error("the file is empty".into()));
        }
        if inside(path, &config.data_dir) {
            refuse(path)?;
            return Ok((key, KeySource::DataDir(path.to_path_buf())));
        }
        return Ok((key, KeySource::File(path.to_path_buf())));
    }
    let path = config.data_dir.join(spec.data_dir_file);
    refuse(&path)?;
    let key = custos_config::read_or_create_key_file(&path).map_err(|e| SecretsError::Read {
        key: spec.name,
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    Ok((key, KeySource::DataDir(path)))
}

/// Whether `path` lies inside `dir`, symbolic links and `..` resolved
/// (both exist when this is asked).
fn inside(path: &Path, dir: &Path) -> bool {
    match (path.canonicalize(), dir.canonicalize()) {
        (Ok(path), Ok(dir)) => path.starts_with(dir),
        _ => path.starts_with(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        let config = Config {
            data_dir: dir.join("data"),
            ..Config::default()
        };
        std::fs::create_dir_all(&config.data_dir).unwrap();
        config
    }

    #[test]
    fn without_external_keys_both_are_generated_into_the_data_dir_with_a_warning_each() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let secrets = load_secrets(&config).unwrap();
        let token_path = config.data_dir.join(TOKEN_KEY_FILE);
        let pii_path = config.data_dir.join(PII_KEY_FILE);
        assert_eq!(
            secrets.token_key_source,
            KeySource::DataDir(token_path.clone())
        );
        assert_eq!(secrets.pii_key_source, KeySource::DataDir(pii_path.clone()));
        assert!(token_path.is_file() && pii_path.is_file());
        let token_text = std::fs::read_to_string(&token_path).unwrap();
        assert_ne!(
            token_text,
            std::fs::read_to_string(&pii_path).unwrap(),
            "two keys, not one"
        );
        let warnings = secrets.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("backup") && warnings[0].contains("account number"));
        assert!(warnings[0].contains("CUSTOS_TOKEN_KEY"), "{}", warnings[0]);
        assert!(warnings[1].contains("CUSTOS_PII_KEY"), "{}", warnings[1]);
        let again = load_secrets(&config).unwrap();
        assert_eq!(again.tokenizer.key_id(), secrets.tokenizer.key_id());
        assert_eq!(again.pii.key_id(), secrets.pii.key_id());

        // The generated token key moved out of the data directory is the
        // same key: the same tokens, no warning for it.
        let outside = dir.path().join("token.key");
        std::fs::rename(&token_path, &outside).unwrap();
        let mut moved = config.clone();
        moved.secrets.token_key_file = Some(outside.clone());
        let secrets = load_secrets(&moved).unwrap();
        assert_eq!(secrets.token_key_source, KeySource::File(outside));
        assert_eq!(secrets.tokenizer.key_id(), again.tokenizer.key_id());
        assert!(
            !token_path.exists(),
            "no new key generated into the data dir"
        );
        assert_eq!(
            secrets.warnings().len(),
            1,
            "only the pii key is left inside"
        );
    }

    #[test]
    fn keys_from_the_environment_or_outside_files_leave_the_data_dir_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        config.apply_env(|name| match name {
            "CUSTOS_TOKEN_KEY" => Some("token-key-from-env-0123456789".into()),
            "CUSTOS_PII_KEY" => Some("pii-key-from-env-0123456789".into()),
            _ => None,
        });
        config.secrets.require_external_keys = true;
        let from_env = load_secrets(&config).unwrap();
        assert_eq!(from_env.token_key_source, KeySource::Configured);
        assert_eq!(from_env.pii_key_source, KeySource::Configured);
        assert!(from_env.warnings().is_empty());
        assert_eq!(
            std::fs::read_dir(&config.data_dir).unwrap().count(),
            0,
            "no key written into the data directory"
        );

        let token_file = dir.path().join("token.key");
        let pii_file = dir.path().join("pii.key");
        std::fs::write(&token_file, "token-key-from-env-0123456789\n").unwrap();
        std::fs::write(&pii_file, "a-pii-key-in-a-file-0123456789").unwrap();
        let mut config = config_in(dir.path());
        config.secrets.token_key_file = Some(token_file.clone());
        config.secrets.pii_key_file = Some(pii_file.clone());
        config.secrets.require_external_keys = true;
        let from_files = load_secrets(&config).unwrap();
        assert_eq!(from_files.token_key_source, KeySource::File(token_file));
        assert_eq!(from_files.pii_key_source, KeySource::File(pii_file));
        assert_eq!(
            from_files.tokenizer.key_id(),
            from_env.tokenizer.key_id(),
            "the file's trailing newline is not part of the key"
        );
        assert_ne!(from_files.pii.key_id(), from_env.pii.key_id());
        assert_eq!(std::fs::read_dir(&config.data_dir).unwrap().count(), 0);
    }

    #[test]
    fn require_external_keys_refuses_the_data_dir_and_a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        config.secrets.require_external_keys = true;
        let err = load_secrets(&config).unwrap_err().to_string();
        assert!(
            err.starts_with("destination token key would be kept in the data directory"),
            "{err}"
        );
        assert!(err.contains("CUSTOS_TOKEN_KEY"), "{err}");
        assert_eq!(std::fs::read_dir(&config.data_dir).unwrap().count(), 0);

        // The token key given, the pii key still falls back: refused too.
        config.destination_token_key = Some("token-key-from-env-0123456789".into());
        let err = load_secrets(&config).unwrap_err().to_string();
        assert!(err.starts_with("pii key would be kept"), "{err}");
        assert!(err.contains("secrets.pii_key_file"), "{err}");

        // A key file named in [secrets] but inside the data directory.
        let inside = config.data_dir.join("my-pii.key");
        std::fs::write(&inside, "a-pii-key-in-a-file-0123456789").unwrap();
        config.secrets.pii_key_file = Some(inside.clone());
        let err = load_secrets(&config).unwrap_err().to_string();
        assert!(err.starts_with("pii key would be kept"), "{err}");
        config.secrets.require_external_keys = false;
        let secrets = load_secrets(&config).unwrap();
        assert_eq!(secrets.pii_key_source, KeySource::DataDir(inside));
        assert_eq!(secrets.warnings().len(), 1);

        // A named file that is missing is an error, never a new key.
        config.secrets.pii_key_file = Some(dir.path().join("gone.key"));
        let err = load_secrets(&config).unwrap_err().to_string();
        assert!(err.starts_with("pii key: cannot read"), "{err}");
        assert!(!dir.path().join("gone.key").exists());
    }
}
