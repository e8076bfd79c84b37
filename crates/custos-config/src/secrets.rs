//! `[secrets]`: where the keys come from that protect stored data.
//!
//! Two keys, for two different jobs: the destination token key turns bank
//! account numbers into `tk_…` tokens (a keyed hash that must stay stable
//! for the life of the data), and the PII key seals holder names and
//! personal custom fields at rest. Each comes from the environment
//! (`CUSTOS_TOKEN_KEY`, `CUSTOS_PII_KEY`), or from a file named here, which
//! should live outside the data directory: a key kept beside the data
//! protects nothing from whoever copies the data (a backup, a disk image).
//! Without either, a key is generated into the data directory, so that one
//! command still starts a working server; `require_external_keys` refuses
//! that instead. Loading and the checks are `custos_runtime::secrets`.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// A file holding the destination token key (at least 16 bytes of text),
    /// outside the data directory. `CUSTOS_TOKEN_KEY` or
    /// `destination_token_key` win over it.
    pub token_key_file: Option<PathBuf>,
    /// A file holding the key that seals personal values (at least 16
    /// bytes of text), outside the data directory. `CUSTOS_PII_KEY` wins
    /// over it.
    pub pii_key_file: Option<PathBuf>,
    /// Refuse to start when a key would be read from (or generated into)
    /// the data directory.
    pub require_external_keys: bool,
    /// The PII key itself, from `CUSTOS_PII_KEY` only: a key written into
    /// the config file would travel with it.
    #[serde(skip)]
    pub pii_key: Option<String>,
}

impl SecretsConfig {
    /// `CUSTOS_PII_KEY`; `CUSTOS_TOKEN_KEY` is read by `Config::apply_env`
    /// into `destination_token_key`, where the older
    /// `CUSTOS_DESTINATION_TOKEN_KEY` also lands.
    pub(crate) fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(key) = get("CUSTOS_PII_KEY").filter(|k| !k.is_empty()) {
            self.pii_key = Some(key);
        }
    }
}

/// Never prints the key itself.
impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("token_key_file", &self.token_key_file)
            .field("pii_key_file", &self.pii_key_file)
            .field("require_external_keys", &self.require_external_keys)
            .field("pii_key", &self.pii_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}
