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

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custos_core::rules::{RuleSet, RuleSetError, RuleSetSource};
use custos_runtime::InstallError;
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

fn install(
    state: &AppState,
    source: RuleSetSource,
    base: Option<u64>,
) -> Result<Response, ApiError> {
    match state.runtime.install_rules_over(source, base) {
        Ok(rules) => Ok((
            StatusCode::CREATED,
            axum::Json(json!({
                "version": rules.version(),
                "name": rules.name(),
                "rules": rules.rules().len(),
            })),
        )
            .into_response()),
        Err(InstallError::Invalid(e)) => Err(invalid_rules(&e)),
        Err(InstallError::Storage(message)) => Err(ApiError::unavailable(message)),
        Err(e @ InstallError::Stale { .. }) => Err(ApiError::new(
            Code::RulesChanged,
            format!("{e}; retry the edit"),
        )),
    }
}

/// Reads a rule-set source from a JSON or TOML body.
async fn read_source(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<RuleSetSource, ApiError> {
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
        toml::from_str(text).map_err(|e| {
            ApiError::new(
                Code::InvalidToml,
                format!("the body is not a valid rule set: {}", e.message()),
            )
        })
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                Code::InvalidJson,
                format!("the body is not a valid rule set: {e}"),
            )
        })
    }
}

pub async fn post_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let source = read_source(&state, &headers, body).await?;
    // Compiling and storing block: off the async workers.
    tokio::task::spawn_blocking(move || install(&state, source, None))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
}

pub async fn check_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let source = read_source(&state, &headers, body).await?;
    let rules = tokio::task::spawn_blocking(move || RuleSet::compile(source, 0))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| invalid_rules(&e))?;
    Ok(axum::Json(json!({"valid": true, "rules": describe_rules(&rules)})).into_response())
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
    let source: Value = serde_json::from_str(&json).map_err(|e| {
        ApiError::unavailable(format!("stored rule set {number} is unreadable: {e}"))
    })?;
    Ok(axum::Json(json!({
        "version": number,
        "installed_at_ms": installed_at_ms,
        "live": state.runtime.rules().version() == number,
        "source": source,
    }))
    .into_response())
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceEntries {
    entries: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditEntries {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn edit_list(
    state: AppState,
    name: String,
    headers: HeaderMap,
    body: Body,
    edit: fn(&mut Vec<String>, Value) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, state.limits.max_body_bytes).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
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
        install(&state, source, Some(live.version()))
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
