//! API keys and what each may do.
//!
//! A key is configured as an `[[api_key]]` table: a `name` (what logs and
//! request spans show; the key itself never is), the key itself (`key`, or
//! `key_env`: the environment variable holding it, so it can stay out of
//! the file) and `scopes`, the kinds of work it may do ([`Scope`]). The
//! server checks every route against one scope (its route table,
//! `docs/keys.md`), so an ingest key cannot install rules or release holds.
//!
//! The older `api_keys = [...]` list (and `CUSTOS_API_KEYS`) keeps working:
//! each entry is a key with every scope (`admin`), named `api_keys[i]`, and
//! the server warns at start that they are unscoped. Without any key, the
//! development key is accepted, on a loopback address only, as `admin`.
//!
//! Everything is checked before anything listens ([`resolve`]): an unknown
//! scope, a short key, a missing variable, two keys with one name or one
//! secret each stop the start with an error naming the field
//! (`api_key[1].scopes[0]: ...`). Two entries with the same secret would
//! make the key's scopes depend on which one matched first, so they are
//! refused rather than merged.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

use crate::config::{DEVELOPMENT_API_KEY, MIN_API_KEY_LEN};

/// One kind of work a key may be allowed. Public names: a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send events (`POST /v1/events`, Sift's events).
    EventsWrite,
    /// Read anything; change nothing.
    Read,
    /// Record labels (legit, fraud, chargeback, compromise reported).
    LabelsWrite,
    /// Analyst actions: release or cancel holds, clear accounts, settle
    /// campaigns.
    HoldsWrite,
    /// The second pair of eyes: approve what another person asked for
    /// (a large release in the console).
    HoldsApprove,
    /// Export evidence packs (a campaign's or a case's events and the
    /// holder names its accounts paid to).
    EvidenceExport,
    /// Install rule sets and edit lists.
    RulesWrite,
    /// Every scope.
    Admin,
}

impl Scope {
    /// Every scope, in the order of `docs/keys.md`.
    pub const ALL: [Scope; 8] = [
        Scope::EventsWrite,
        Scope::Read,
        Scope::LabelsWrite,
        Scope::HoldsWrite,
        Scope::HoldsApprove,
        Scope::EvidenceExport,
        Scope::RulesWrite,
        Scope::Admin,
    ];

    /// The name in configuration and errors.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::Read => "read",
            Scope::LabelsWrite => "labels:write",
            Scope::HoldsWrite => "holds:write",
            Scope::HoldsApprove => "holds:approve",
            Scope::EvidenceExport => "evidence:export",
            Scope::RulesWrite => "rules:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// What the scope allows, one line of Markdown (`docs/keys.md`).
    pub const fn description(self) -> &'static str {
        match self {
            Scope::EventsWrite => {
                "Send events: `POST /v1/events` and Sift's `POST /v205/events`. Events of type \
                 `label` need `labels:write` too, `analyst_action` events `holds:write` too."
            }
            Scope::Read => {
                "Read anything: events, accounts, rule sets, lists, holds, campaigns, webhook \
                 status, Sift scores and decisions; check a rule set without installing it."
            }
            Scope::LabelsWrite => {
                "Record labels (`legit` releases an account's holds; `fraud`, `chargeback` and \
                 `compromise_reported` cancel them): Sift's labels and decisions APIs, and \
                 `label` events on the events routes (Sift's `$chargeback` and a \
                 `$security_notification` answered `$compromised` are labels)."
            }
            Scope::HoldsWrite => {
                "Analyst actions: release or cancel held payouts, clear an account's risk, \
                 confirm or dismiss a campaign, and `analyst_action` events on `POST /v1/events`."
            }
            Scope::HoldsApprove => {
                "Approve, as the second person, what another asked for in the console: \
                 releasing a hold above `console.four_eyes_above`. Nobody approves their own \
                 request."
            }
            Scope::EvidenceExport => {
                "Export a campaign's or a case's signed evidence pack (its accounts' events \
                 and the holder names they paid to; docs/evidence.md). Leads hold it."
            }
            Scope::RulesWrite => "Install a rule set and edit lists.",
            Scope::Admin => "Every scope above, and any added later.",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a console user may do. Each role is a set of [`Scope`]s, so a
/// person and a key pass the same check (`custos_server::auth::authorize`);
/// this mapping is the only place a role means anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Works holds, accounts and campaigns; records labels.
    Analyst,
    /// An analyst who may also approve another person's request.
    Lead,
    /// Everything: rules, users, the audit trail.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Analyst, Role::Lead, Role::Admin];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Lead => "lead",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The scopes the role holds.
    pub fn scopes(self) -> Scopes {
        use Scope::{EvidenceExport, HoldsApprove, HoldsWrite, LabelsWrite, Read};
        match self {
            Role::Viewer => Scopes::of([Read]),
            Role::Analyst => Scopes::of([Read, HoldsWrite, LabelsWrite]),
            Role::Lead => Scopes::of([Read, HoldsWrite, LabelsWrite, HoldsApprove, EvidenceExport]),
            Role::Admin => Scopes::ADMIN,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes a key holds. `admin` allows every scope.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);
    pub const ADMIN: Scopes = Scopes(Scope::Admin.bit());

    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        Scopes(scopes.into_iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Whether a key with these scopes may do work that needs `scope`.
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Admin.bit()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes held, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }
}

/// `events:write read`.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// One `[[api_key]]` table, as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// What logs, request spans and errors call the key.
    pub name: String,
    /// The key, at least 20 characters. Or:
    #[serde(default)]
    pub key: Option<String>,
    /// The name of an environment variable holding the key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// What the key may do: names of [`Scope`]s.
    pub scopes: Vec<String>,
}

/// Never prints the key.
impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("name", &self.name)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_env", &self.key_env)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A key ready to be checked: its name, the secret and its scopes.
#[derive(Clone)]
pub struct ApiKey {
    pub name: String,
    pub secret: String,
    pub scopes: Scopes,
}

/// Never prints the secret.
impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The name the development key goes by in logs.
pub const DEVELOPMENT_KEY_NAME: &str = "development";

/// Longest key name.
const MAX_NAME_LEN: usize = 64;

/// Every key the server accepts: the `[[api_key]]` tables, then the
/// unscoped `api_keys` as `admin`, or the development key when there are
/// neither. `get_env` reads the variables named by `key_env`. Errors name
/// the field at fault and never contain a key.
pub fn resolve(
    tables: &[ApiKeyConfig],
    unscoped: &[String],
    listen: SocketAddr,
    get_env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ApiKey>, String> {
    let loopback = listen.ip().is_loopback();
    if tables.is_empty() && unscoped.is_empty() {
        if !loopback {
            return Err(format!(
                "listen address {listen} is not loopback and no API keys are configured; add \
                 [[api_key]] tables (or api_keys, or CUSTOS_API_KEYS) with keys of at least \
                 {MIN_API_KEY_LEN} characters"
            ));
        }
        return Ok(vec![ApiKey {
            name: DEVELOPMENT_KEY_NAME.to_string(),
            secret: DEVELOPMENT_API_KEY.to_string(),
            scopes: Scopes::ADMIN,
        }]);
    }
    let mut keys = Vec::with_capacity(tables.len() + unscoped.len());
    // Field path of the entry that holds each secret, to name duplicates.
    let mut secrets: HashMap<String, String> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    // `at`: the field that holds the secret; `entry`: the entry it is in.
    let mut admit = |at: &str, entry: String, key: ApiKey| -> Result<ApiKey, String> {
        check_secret(&key.secret, listen, loopback).map_err(|e| format!("{at}: {e}"))?;
        if let Some(first) = secrets.get(&key.secret) {
            return Err(format!(
                "{at}: the same key as {first}; give each key its own secret"
            ));
        }
        secrets.insert(key.secret.clone(), entry);
        Ok(key)
    };
    for (i, table) in tables.iter().enumerate() {
        let path = format!("api_key[{i}]");
        let name = table.name.trim();
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(format!(
                "{path}.name: {:?} must be 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-' \
                 (it is written to logs)",
                table.name
            ));
        }
        if let Some(first) = names.insert(name.to_string(), i) {
            return Err(format!(
                "{path}.name: api_key[{first}] is already called {name:?}; give each key its \
                 own name"
            ));
        }
        let (secret, field) = match (&table.key, &table.key_env) {
            (Some(_), Some(_)) => {
                return Err(format!("{path}.key: set either key or key_env, not both"));
            }
            (None, None) => return Err(format!("{path}.key: set key or key_env")),
            (Some(key), None) => (key.clone(), "key"),
            (None, Some(var)) => {
                let key = get_env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    format!("{path}.key_env: environment variable {var} is not set or empty")
                })?;
                (key, "key_env")
            }
        };
        if table.scopes.is_empty() {
            return Err(format!(
                "{path}.scopes: grants nothing; list scopes from {}",
                scope_names()
            ));
        }
        let mut scopes = Vec::with_capacity(table.scopes.len());
        for (j, written) in table.scopes.iter().enumerate() {
            let scope = Scope::parse(written.trim()).ok_or_else(|| {
                format!(
                    "{path}.scopes[{j}]: {written:?} is not a scope; known scopes: {}",
                    scope_names()
                )
            })?;
            scopes.push(scope);
        }
        let key = ApiKey {
            name: name.to_string(),
            secret,
            scopes: Scopes::of(scopes),
        };
        keys.push(admit(&format!("{path}.{field}"), path, key)?);
    }
    for (i, secret) in unscoped.iter().enumerate() {
        let path = format!("api_keys[{i}]");
        if names.contains_key(&path) {
            return Err(format!(
                "{path}: an [[api_key]] table is called {path:?}, the name this key goes by; \
                 rename the table"
            ));
        }
        let key = ApiKey {
            name: path.clone(),
            secret: secret.clone(),
            scopes: Scopes::ADMIN,
        };
        keys.push(admit(&path, path.clone(), key)?);
    }
    Ok(keys)
}

/// The development key only on loopback; any other at least
/// [`MIN_API_KEY_LEN`] long.
fn check_secret(secret: &str, listen: SocketAddr, loopback: bool) -> Result<(), String> {
    if secret == DEVELOPMENT_API_KEY {
        if !loopback {
            return Err(format!(
                "is the development key, which is refused on the non-loopback address {listen}"
            ));
        }
        return Ok(());
    }
    if secret.len() < MIN_API_KEY_LEN {
        return Err(format!(
            "the key is {} characters long; at least {MIN_API_KEY_LEN} are required",
            secret.len()
        ));
    }
    Ok(())
}

fn scope_names() -> String {
    Scope::ALL.map(Scope::as_str).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_holds_the_scopes_of_the_one_below_and_more() {
        let can = |role: Role, scope: Scope| role.scopes().allows(scope);
        assert!(can(Role::Viewer, Scope::Read) && !can(Role::Viewer, Scope::HoldsWrite));
        assert!(can(Role::Analyst, Scope::HoldsWrite) && !can(Role::Analyst, Scope::HoldsApprove));
        assert!(can(Role::Lead, Scope::HoldsApprove) && !can(Role::Lead, Scope::RulesWrite));
        assert!(!can(Role::Lead, Scope::Admin));
        assert!(Scope::ALL.into_iter().all(|s| can(Role::Admin, s)));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert!(!role.scopes().allows(Scope::EventsWrite) || role == Role::Admin);
        }
        assert_eq!(Role::parse("root"), None);
    }
    use crate::Config;

    const LOOPBACK: &str = "127.0.0.1:8080";
    const PUBLIC: &str = "0.0.0.0:8080";

    fn parse(text: &str) -> Config {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn keys_of(text: &str, listen: &str, env: &[(&str, &str)]) -> Result<Vec<ApiKey>, String> {
        let config = parse(text);
        resolve(
            &config.api_key,
            &config.api_keys,
            listen.parse().unwrap(),
            |name| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            },
        )
    }

    #[test]
    fn admin_allows_every_scope_and_others_only_their_own() {
        let ingest = Scopes::of([Scope::EventsWrite]);
        assert!(ingest.allows(Scope::EventsWrite));
        for scope in Scope::ALL.into_iter().filter(|s| *s != Scope::EventsWrite) {
            assert!(!ingest.allows(scope), "{scope}");
            assert!(Scopes::ADMIN.allows(scope), "{scope}");
        }
        assert!(!Scopes::NONE.allows(Scope::Read));
        let analyst = Scopes::of([Scope::Read, Scope::HoldsWrite]);
        assert_eq!(analyst.to_string(), "read holds:write");
        assert!(!analyst.allows(Scope::LabelsWrite));
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("events"), None);
        assert_eq!(Scope::parse("Admin"), None, "names are exact");
    }

    #[test]
    fn tables_parse_with_keys_from_the_file_or_the_environment() {
        let text = r#"
            [[api_key]]
            name = "ingest"
            key = "ingest-key-0123456789abc"
            scopes = ["events:write"]

            [[api_key]]
            name = "analyst-console"
            key_env = "CONSOLE_KEY"
            scopes = ["read", "holds:write", "labels:write"]
        "#;
        let keys = keys_of(
            text,
            PUBLIC,
            &[("CONSOLE_KEY", "console-key-0123456789abc")],
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[0].name.as_str(), keys[0].secret.as_str()),
            ("ingest", "ingest-key-0123456789abc")
        );
        assert_eq!(keys[0].scopes, Scopes::of([Scope::EventsWrite]));
        assert_eq!(keys[1].name, "analyst-console");
        assert_eq!(keys[1].secret, "console-key-0123456789abc");
        assert_eq!(
            keys[1].scopes,
            Scopes::of([Scope::Read, Scope::HoldsWrite, Scope::LabelsWrite])
        );
        let shown = format!("{:?} {keys:?}", parse(text));
        assert!(
            !shown.contains("ingest-key-0123456789abc") && !shown.contains("console-key"),
            "keys are never printed: {shown}"
        );
    }

    #[test]
    fn unscoped_keys_are_admin_and_no_keys_mean_the_development_key_on_loopback() {
        let keys = keys_of(
            r#"
            api_keys = ["old-key-0123456789abcdef"]
            [[api_key]]
            name = "reader"
            key = "reader-key-0123456789abc"
            scopes = ["read"]
            "#,
            PUBLIC,
            &[],
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].name, "api_keys[0]");
        assert_eq!(keys[1].scopes, Scopes::ADMIN);
        let dev = keys_of("", LOOPBACK, &[]).unwrap();
        assert_eq!(dev.len(), 1);
        assert_eq!(
            (dev[0].name.as_str(), dev[0].secret.as_str()),
            (DEVELOPMENT_KEY_NAME, DEVELOPMENT_API_KEY)
        );
        assert_eq!(dev[0].scopes, Scopes::ADMIN);
        let err = keys_of("", PUBLIC, &[]).unwrap_err();
        assert!(err.contains("not loopback"), "{err}");
        // Scoped keys only: the development key is off.
        let keys = keys_of(
            "[[api_key]]\nname = \"r\"\nkey = \"reader-key-0123456789abc\"\nscopes = [\"read\"]\n",
            LOOPBACK,
            &[],
        )
        .unwrap();
        assert!(keys.iter().all(|k| k.secret != DEVELOPMENT_API_KEY));
    }

    #[test]
    fn errors_name_the_field_and_never_the_key() {
        let table = |body: &str| format!("[[api_key]]\n{body}\n");
        let ok = "name = \"a\"\nkey = \"first-key-0123456789abc\"\nscopes = [\"read\"]";
        let cases: Vec<(String, &str, &str)> = vec![
            (
                table(
                    "name = \"a\"\nkey = \"first-key-0123456789abc\"\nscopes = [\"read\", \"events:wrte\"]",
                ),
                LOOPBACK,
                "api_key[0].scopes[1]: \"events:wrte\" is not a scope; known scopes: \
                 events:write, read, labels:write, holds:write, holds:approve, evidence:export, rules:write, admin",
            ),
            (
                table("name = \"a\"\nkey = \"first-key-0123456789abc\"\nscopes = []"),
                LOOPBACK,
                "api_key[0].scopes: grants nothing",
            ),
            (
                table("name = \"a\"\nkey = \"short\"\nscopes = [\"read\"]"),
                LOOPBACK,
                "api_key[0].key: the key is 5 characters long; at least 20 are required",
            ),
            (
                table("name = \"a\"\nkey_env = \"SHORT\"\nscopes = [\"read\"]"),
                LOOPBACK,
                "api_key[0].key_env: the key is 4 characters long",
            ),
            (
                table("name = \"a\"\nkey_env = \"UNSET\"\nscopes = [\"read\"]"),
                LOOPBACK,
                "api_key[0].key_env: environment variable UNSET is not set or empty",
            ),
            (
                table("name = \"a\"\nscopes = [\"read\"]"),
                LOOPBACK,
                "api_key[0].key: set key or key_env",
            ),
            (
                table(
                    "name = \"a\"\nkey = \"first-key-0123456789abc\"\nkey_env = \"SHORT\"\nscopes = [\"read\"]",
                ),
                LOOPBACK,
                "api_key[0].key: set either key or key_env, not both",
            ),
            (
                table("name = \"a b\"\nkey = \"first-key-0123456789abc\"\nscopes = [\"read\"]"),
                LOOPBACK,
                "api_key[0].name: \"a b\" must be 1 to 64 letters",
            ),
            (
                format!(
                    "{}{}",
                    table(ok),
                    table("name = \"a\"\nkey = \"other-key-0123456789abc\"\nscopes = [\"read\"]")
                ),
                LOOPBACK,
                "api_key[1].name: api_key[0] is already called \"a\"",
            ),
            (
                format!(
                    "{}{}",
                    table(ok),
                    table("name = \"b\"\nkey = \"first-key-0123456789abc\"\nscopes = [\"admin\"]")
                ),
                LOOPBACK,
                "api_key[1].key: the same key as api_key[0]",
            ),
            (
                format!("api_keys = [\"first-key-0123456789abc\"]\n{}", table(ok)),
                LOOPBACK,
                "api_keys[0]: the same key as api_key[0]",
            ),
            (
                "api_keys = [\"old-key-0123456789abcdef\", \"old-key-0123456789abcdef\"]".into(),
                LOOPBACK,
                "api_keys[1]: the same key as api_keys[0]",
            ),
            (
                "api_keys = [\"short\"]".into(),
                LOOPBACK,
                "api_keys[0]: the key is 5 characters long",
            ),
            (
                table("name = \"dev\"\nkey = \"custos-dev-key\"\nscopes = [\"read\"]"),
                PUBLIC,
                "api_key[0].key: is the development key, which is refused on the non-loopback address",
            ),
            (
                "api_keys = [\"custos-dev-key\"]".into(),
                PUBLIC,
                "api_keys[0]: is the development key",
            ),
        ];
        for (text, listen, want) in cases {
            let err = keys_of(&text, listen, &[("SHORT", "tiny")]).unwrap_err();
            assert!(err.starts_with(want), "{text}\n-> {err}\nwant {want}");
            assert!(
                !err.contains("first-key") && !err.contains("old-key"),
                "no key in errors: {err}"
            );
        }
        // The development key stays allowed on loopback, short as it is.
        assert!(
            keys_of(
                &table("name = \"dev\"\nkey = \"custos-dev-key\"\nscopes = [\"read\"]"),
                LOOPBACK,
                &[]
            )
            .is_ok()
        );
        // Unknown keys in a table are parse errors naming them.
        let err = toml::from_str::<Config>(&table(&format!("{ok}\nscope = [\"read\"]")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("scope"), "{err}");
    }

    #[test]
    fn the_example_file_shows_a_valid_table() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../custos.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let table: String = text
            .lines()
            .skip_while(|l| *l != "# [[api_key]]")
            .take_while(|l| l.starts_with('#'))
            .filter(|l| !l.starts_with("# #"))
            .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
            .collect();
        let keys = keys_of(
            &table,
            PUBLIC,
            &[("CUSTOS_INGEST_KEY", "ingest-key-0123456789abc")],
        )
        .unwrap();
        assert_eq!(keys.len(), 1, "{table}");
        assert_eq!(keys[0].scopes, Scopes::of([Scope::EventsWrite]));
    }
}
