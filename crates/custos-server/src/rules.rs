//! Rule-set routes: show, check and install rule sets, and edit named lists.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/rules` | the live rule set: version, rules, what each reads, lists |
//! | `POST /v1/rules` | validate a rule set (JSON or TOML) and make it live as the next version |
//! | `POST /v1/rules/check` | validate only |
//! | `GET /v1/rules/{version}` | a stored version's source and install time (audit) |
//! | `GET /v1/lists/{name}` | a named list and its entries |
//! | `PUT /v1/lists/{name}` | replace its entries (`{"entries": [...]}`) |
//! | `PATCH /v1/lists/{name}` | add and remove entries (`{"add": [...], "remove": [...]}`) |
//!
//! Every change, lists included, installs a new rule-set version: a
//! decision names the exact rules and lists it saw.
//!
//! A change that would remove what the live version protects (every active
//! rule, the holds on payouts and loan disbursements, a list its active
//! rules read: `custos_core::rules::removal`) is refused with
//! `409 rules_removal_unconfirmed`, which lists what would be lost and the
//! items to confirm. The same body with an `override` object
//! (`{"confirm_removal": [every item], "reason", "analyst"}`; a TOML body
//! takes an `[override]` table) installs it, and the override is stored with
//! the version and shown by `GET /v1/rules/{version}`. `POST
//! /v1/rules/check` says what a set would remove (`would_remove`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custos_core::rules::{
    Removal, RemovalOverride, RemovalRefused, RuleSet, RuleSetError, RuleSetSource,
};
use custos_runtime::{InstallError, REMOVAL_OVERRIDE_KEY};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, Code};
use crate::events::read_body;
use crate::extract::Path as UrlPath;

fn invalid_rules(e: &RuleSetError) -> ApiError {
    let mut error = ApiError::new(
        Code::InvalidRules,
        format!(
            "the rule set has {} problem{}; nothing was changed. First: {}",
            e.errors.len(),
            if e.errors.len() == 1 { "" } else { "s" },
            e.errors
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
    );
    error.errors = serde_json::to_value(&e.errors).ok();
    error
}

/// The error for a version refused because it removes protection.
fn removal_refused(refused: RemovalRefused) -> ApiError {
    match refused {
        RemovalRefused::Unconfirmed {
            ref removal,
            ref missing,
        } => {
            let mut error = ApiError::new(
                Code::RulesRemovalUnconfirmed,
                format!(
                    "{refused}, in an \"override\": {{\"confirm_removal\": [...], \"reason\": \
                     ..., \"analyst\": ...}} sent with the same request"
                ),
            );
            let mut errors = removal_details(removal);
            errors.push(json!({
                "field": "confirm_removal",
                "message": "items an override must confirm",
                "items": missing,
            }));
            error.errors = Some(Value::Array(errors));
            error
        }
        RemovalRefused::InvalidOverride { ref field, .. } => {
            ApiError::new(Code::InvalidRemovalOverride, refused.to_string())
                .with_field(format!("override.{field}"))
        }
    }
}

/// One `{"field", "message", "items"}` per kind of thing removed.
fn removal_details(removal: &Removal) -> Vec<Value> {
    let protection: Vec<&str> = removal
        .lost_payout_protection
        .iter()
        .map(|t| t.as_str())
        .collect();
    [
        (
            "removed_rules",
            "the new version has no active rule; these are the live version's active rules",
            json!(removal.removed_rules),
        ),
        (
            "lost_payout_protection",
            "no active rule of the new version can hold or block these event types",
            json!(protection),
        ),
        (
            "removed_lists",
            "lists the live version's active rules read, absent from the new version",
            json!(removal.removed_lists),
        ),
        (
            "emptied_lists",
            "lists the live version's active rules read, left without entries",
            json!(removal.emptied_lists),
        ),
    ]
    .into_iter()
    .filter(|(_, _, items)| items.as_array().is_some_and(|a| !a.is_empty()))
    .map(|(field, message, items)| json!({"field": field, "message": message, "items": items}))
    .collect()
}

fn install(
    state: &AppState,
    source: RuleSetSource,
    base: Option<u64>,
    confirmation: Option<&RemovalOverride>,
) -> Result<Response, ApiError> {
    let rules = install_source(state, source, base, confirmation)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "version": rules.version(),
            "name": rules.name(),
            "rules": rules.rules().len(),
        })),
    )
        .into_response())
}

/// Installs `source` as the next version, the one way every route and the
/// console's approved rules changes do: versioned in the store, swapped in
/// live, refused as stale (`rules_changed`) when `base` is given and no
/// longer live, and refused when it removes protection unconfirmed.
pub(crate) fn install_source(
    state: &AppState,
    source: RuleSetSource,
    base: Option<u64>,
    confirmation: Option<&RemovalOverride>,
) -> Result<std::sync::Arc<RuleSet>, ApiError> {
    match state.runtime.install_rules_over(source, base, confirmation) {
        Ok(rules) => Ok(rules),
        Err(InstallError::Invalid(e)) => Err(invalid_rules(&e)),
        Err(InstallError::Storage(message)) => Err(ApiError::unavailable(message)),
        Err(e @ InstallError::Stale { .. }) => Err(ApiError::new(
            Code::RulesChanged,
            format!("{e}; retry the edit"),
        )),
        Err(InstallError::Removes(refused)) => Err(removal_refused(refused)),
        Err(e @ InstallError::Clustered) => {
            Err(ApiError::new(Code::RulesInstalledAtStart, e.to_string()))
        }
    }
}

fn invalid_override(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        Code::InvalidRemovalOverride,
        format!(
            "override: {e}; expected {{\"confirm_removal\": [...], \"reason\": ..., \
             \"analyst\": ...}}"
        ),
    )
    .with_field("override")
}

/// Takes the `override` object out of a JSON body.
fn take_override(value: &mut Value) -> Result<Option<RemovalOverride>, ApiError> {
    match value.as_object_mut().and_then(|o| o.remove("override")) {
        None => Ok(None),
        Some(o) => serde_json::from_value(o)
            .map(Some)
            .map_err(invalid_override),
    }
}

/// Why a TOML text is not a rule set.
pub(crate) enum TomlSourceError {
    /// Not TOML, or not the shape of a rule set (the error knows where,
    /// when the TOML itself is at fault).
    Toml(toml::de::Error),
    /// The `[override]` table is not one.
    Override(toml::de::Error),
}

/// A rule set written as TOML, as in a rules file, and the `[override]`
/// table written with it, if any: the body of `POST /v1/rules` as TOML and
/// the text of the console's rules form.
pub(crate) fn source_from_toml(
    text: &str,
) -> Result<(RuleSetSource, Option<RemovalOverride>), TomlSourceError> {
    let mut table: toml::Table = toml::from_str(text).map_err(TomlSourceError::Toml)?;
    let confirmation = match table.remove("override") {
        None => None,
        Some(o) => Some(o.try_into().map_err(TomlSourceError::Override)?),
    };
    let source = toml::Value::Table(table)
        .try_into()
        .map_err(TomlSourceError::Toml)?;
    Ok((source, confirmation))
}

/// Reads a rule-set source from a JSON or TOML body, and the `override`
/// sent with it, if any.
async fn read_source(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(RuleSetSource, Option<RemovalOverride>), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let toml_body = match essence.as_deref() {
        None | Some("application/json") => false,
        Some("application/toml" | "text/toml") => true,
        Some(_) => {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "Content-Type must be application/json or application/toml",
            ));
        }
    };
    let bytes = read_body(headers, body, state.limits.max_body_bytes).await?;
    if toml_body {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::new(Code::InvalidToml, "the body is not valid UTF-8"))?;
        source_from_toml(text).map_err(|e| match e {
            TomlSourceError::Toml(e) => ApiError::new(
                Code::InvalidToml,
                format!("the body is not a valid rule set: {}", e.message()),
            ),
            TomlSourceError::Override(e) => invalid_override(e),
        })
    } else {
        let invalid = |e: serde_json::Error| {
            ApiError::new(
                Code::InvalidJson,
                format!("the body is not a valid rule set: {e}"),
            )
        };
        let mut value: Value = serde_json::from_slice(&bytes).map_err(invalid)?;
        let confirmation = take_override(&mut value)?;
        let source = serde_json::from_value(value).map_err(invalid)?;
        Ok((source, confirmation))
    }
}

pub async fn post_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (source, confirmation) = read_source(&state, &headers, body).await?;
    // Compiling and storing block: off the async workers.
    tokio::task::spawn_blocking(move || install(&state, source, None, confirmation.as_ref()))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
}

pub async fn check_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (source, _) = read_source(&state, &headers, body).await?;
    let live = state.runtime.rules();
    let (rules, removal) = tokio::task::spawn_blocking(move || {
        RuleSet::compile(source, 0).map(|rules| {
            let removal = Removal::between(&live, &rules);
            (rules, removal)
        })
    })
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))?
    .map_err(|e| invalid_rules(&e))?;
    Ok(axum::Json(json!({
        "valid": true,
        "rules": describe_rules(&rules),
        "would_remove": removal.items(),
    }))
    .into_response())
}

fn describe_rules(rules: &RuleSet) -> Vec<Value> {
    rules
        .rules()
        .iter()
        .map(|rule| {
            let mut v = serde_json::to_value(&rule.source).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                map.insert("reads".into(), json!(rule.reads().collect::<Vec<_>>()));
                map.insert("lists".into(), json!(rule.lists()));
            }
            v
        })
        .collect()
}

pub async fn get_rules(State(state): State<AppState>) -> Response {
    let rules = state.runtime.rules();
    let source = rules.source();
    let lists: serde_json::Map<String, Value> = source
        .lists
        .iter()
        .map(|(name, list)| {
            (
                name.clone(),
                json!({"kind": list.kind, "description": list.description, "size": list.entries.len()}),
            )
        })
        .collect();
    axum::Json(json!({
        "version": rules.version(),
        "name": rules.name(),
        "description": source.description,
        "max_action": source.max_action,
        "rules": describe_rules(&rules),
        "lists": lists,
    }))
    .into_response()
}

pub async fn get_rule_version(
    State(state): State<AppState>,
    UrlPath(version): UrlPath<String>,
) -> Result<Response, ApiError> {
    let Ok(number) = version.parse::<u64>() else {
        return Err(ApiError::new(
            Code::InvalidField,
            format!("the rule-set version must be a positive integer, not {version:?}"),
        )
        .with_field("version"));
    };
    let store = state.runtime.store().clone();
    let stored = tokio::task::spawn_blocking(move || store.rule_set(number))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let Some((installed_at_ms, json)) = stored else {
        return Err(ApiError::new(
            Code::RulesVersionNotFound,
            format!("no rule-set version {number} was ever installed"),
        ));
    };
    let mut source: Value = serde_json::from_str(&json).map_err(|e| {
        ApiError::unavailable(format!("stored rule set {number} is unreadable: {e}"))
    })?;
    let removal_override = source
        .as_object_mut()
        .and_then(|o| o.remove(REMOVAL_OVERRIDE_KEY));
    let mut answer = json!({
        "version": number,
        "installed_at_ms": installed_at_ms,
        "live": state.runtime.rules().version() == number,
        "source": source,
    });
    if let Some(audit) = removal_override {
        answer[REMOVAL_OVERRIDE_KEY] = audit;
    }
    Ok(axum::Json(answer).into_response())
}

fn list_not_found(name: &str) -> ApiError {
    ApiError::new(
        Code::ListNotFound,
        format!("the live rule set has no list named {name:?}; add it with POST /v1/rules"),
    )
}

pub async fn get_list(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let rules = state.runtime.rules();
    let list = rules
        .source()
        .lists
        .get(&name)
        .ok_or_else(|| list_not_found(&name))?;
    Ok(axum::Json(json!({
        "name": name,
        "version": rules.version(),
        "kind": list.kind,
        "description": list.description,
        "entries": list.entries,
    }))
    .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplaceEntries {
    entries: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditEntries {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// A list edit's body: the edit, and an `override` when the edit empties a
/// list the rules read.
async fn edit_list(
    state: AppState,
    name: String,
    headers: HeaderMap,
    body: Body,
    edit: fn(&mut Vec<String>, Value) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, state.limits.max_body_bytes).await?;
    let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let confirmation = take_override(&mut value)?;
    tokio::task::spawn_blocking(move || {
        // The edit applies to the version read here; an install in between
        // makes the runtime refuse it rather than lose that install.
        let live = state.runtime.rules();
        let mut source = live.source().clone();
        let list = source
            .lists
            .get_mut(&name)
            .ok_or_else(|| list_not_found(&name))?;
        edit(&mut list.entries, value)?;
        install(&state, source, Some(live.version()), confirmation.as_ref())
    })
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))?
}

pub async fn put_list(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    edit_list(state, name, headers, body, |entries, value| {
        let replace: ReplaceEntries = serde_json::from_value(value).map_err(|e| {
            ApiError::new(
                Code::InvalidListEdit,
                format!("expected {{\"entries\": [...]}}: {e}"),
            )
            .with_field("entries")
        })?;
        *entries = replace.entries;
        Ok(())
    })
    .await
}

pub async fn patch_list(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    edit_list(state, name, headers, body, |entries, value| {
        let edit: EditEntries = serde_json::from_value(value).map_err(|e| {
            ApiError::new(
                Code::InvalidListEdit,
                format!("expected {{\"add\": [...], \"remove\": [...]}}: {e}"),
            )
        })?;
        let trimmed = |v: Vec<String>| {
            v.into_iter()
                .map(|e| e.trim().to_string())
                .collect::<Vec<_>>()
        };
        let remove = trimmed(edit.remove);
        entries.retain(|e| !remove.contains(&e.trim().to_string()));
        for entry in trimmed(edit.add) {
            if !entry.is_empty() && !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        Ok(())
    })
    .await
}
