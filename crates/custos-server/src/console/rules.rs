//! The rules page: the live rule set for every role, its stored versions,
//! and changes to it under four eyes.
//!
//! A person who may install rules (`rules:write`: an admin) edits the rule
//! file's text (TOML, as in a rules directory; an `[override]` table
//! confirms a removal of protection, as for `POST /v1/rules`). The text is
//! checked by the same compiler as `POST /v1/rules/check`, and errors are
//! shown with the form, nothing recorded. A valid text only records a
//! `rules_change` request, with the version it was written over and what
//! it adds, removes and changes by rule name. A second person who may
//! approve (`holds:approve`: a lead or an admin, never the requester)
//! carries it out through the API's install path
//! ([`crate::rules::install_source`]), so the version history, the live
//! swap and the removal checks are the API's. The request is marked
//! decided before the install runs, so it runs at most once; when the live
//! version is no longer the one it was written over, the install is
//! refused as stale and the request ends `refused`: a change made
//! meanwhile is never overwritten by one that did not see it.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use custos_config::Scope;
use custos_core::rules::{Removal, RuleSet, RuleSetSource};
use custos_runtime::REMOVAL_OVERRIDE_KEY;

use super::db::{Approval, RULES_CHANGE};
use super::pages::{
    Nav, approvals_page, console_db, error_page, html, nav, reader, reason_of, when_ms,
};
use super::{Person, audit, posted};
use crate::AppState;
use crate::error::Code;
use crate::rules::{TomlSourceError, install_source, source_from_toml};

/// The longest rule file's text the form takes, in bytes.
const MAX_TEXT_BYTES: usize = 256 * 1024;

struct RuleView {
    id: String,
    action: String,
    mode: String,
    events: String,
    when: String,
    description: String,
}

struct ListView {
    name: String,
    kind: String,
    size: usize,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    nav: Option<Nav>,
    notice: Option<String>,
    version: u64,
    name: String,
    description: String,
    installed: String,
    installed_by: Option<String>,
    rules: Vec<RuleView>,
    lists: Vec<ListView>,
    versions: Vec<u64>,
    pending: usize,
    can_edit: bool,
    csrf: String,
    text: String,
    reason: String,
    errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "rules_text.html")]
struct RulesTextPage {
    nav: Option<Nav>,
    title: String,
    facts: Vec<String>,
    text: String,
}

/// A rule set as the rule file's text (TOML).
fn as_text(source: &RuleSetSource) -> String {
    toml::to_string(source).unwrap_or_else(|e| format!("# the rule set cannot be shown: {e}\n"))
}

/// What an edit is not (yet), in the words shown with the form.
fn problems(live: &RuleSet, text: &str) -> Result<RuleSetSource, Vec<String>> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(vec![format!(
            "rules: at most {MAX_TEXT_BYTES} bytes, is {}",
            text.len()
        )]);
    }
    let (source, confirmation) = source_from_toml(text).map_err(|e| match e {
        // toml's own message names the line and column, with the line.
        TomlSourceError::Toml(e) => vec![format!("the text is not a rule set: {e}")],
        TomlSourceError::Override(e) => vec![format!("override: {e}")],
    })?;
    let compiled = RuleSet::compile(source.clone(), 0)
        .map_err(|e| e.errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    // Refused now rather than when a lead approves it.
    Removal::between(live, &compiled)
        .check(confirmation.as_ref())
        .map_err(|e| {
            vec![format!(
                "{e}, in an [override] table: confirm_removal = [...], reason = ..., analyst = ..."
            )]
        })?;
    if &source == live.source() && confirmation.is_none() {
        return Err(vec![
            "the text is the same rule set as the live one: nothing to change".into(),
        ]);
    }
    Ok(source)
}

/// The rules a change adds, removes and changes, by name; and the lists and
/// settings it changes.
pub(super) fn diff_summary(old: &RuleSetSource, new: &RuleSetSource) -> String {
    let ids = |s: &RuleSetSource| {
        s.rules
            .iter()
            .map(|r| r.id.clone())
            .collect::<BTreeSet<_>>()
    };
    let (before, after) = (ids(old), ids(new));
    let added: Vec<&str> = after.difference(&before).map(String::as_str).collect();
    let removed: Vec<&str> = before.difference(&after).map(String::as_str).collect();
    let changed: Vec<&str> = new
        .rules
        .iter()
        .filter(|r| old.rules.iter().any(|o| o.id == r.id && o != *r))
        .map(|r| r.id.as_str())
        .collect();
    let lists: BTreeSet<&str> = old
        .lists
        .keys()
        .chain(new.lists.keys())
        .filter(|name| old.lists.get(*name) != new.lists.get(*name))
        .map(String::as_str)
        .collect();
    let settings = old.name != new.name
        || old.description != new.description
        || old.max_action != new.max_action
        || old.hold_cool_off != new.hold_cool_off;
    let mut parts = Vec::new();
    for (what, names) in [
        ("rules added", added),
        ("rules removed", removed),
        ("rules changed", changed),
        ("lists changed", lists.into_iter().collect()),
    ] {
        if !names.is_empty() {
            parts.push(format!("{what}: {}", names.join(", ")));
        }
    }
    if settings {
        parts.push("settings changed (name, description, max_action or hold_cool_off)".into());
    }
    if parts.is_empty() {
        "no rule changed (an override only)".into()
    } else {
        parts.join("; ")
    }
}

async fn rules_page(
    state: &AppState,
    person: &Person,
    edit: Option<(String, String, Vec<String>)>,
    status: StatusCode,
) -> Response {
    let live = state.runtime.rules();
    let version = live.version();
    let store = state.runtime.store().clone();
    let installed_at = tokio::task::spawn_blocking(move || store.rule_set(version))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .map(|(at_ms, _)| at_ms);
    let looked_up = console_db(state, move |db| {
        let by = db.rules_change_that_installed(version)?;
        let pending = db
            .pending()?
            .into_iter()
            .filter(|a| a.kind == RULES_CHANGE)
            .count();
        Ok((by, pending))
    })
    .await;
    let (installed_by, pending) = match looked_up {
        Ok(found) => found,
        Err(e) => return error_page(Some(person), StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let source = live.source();
    let (text, reason, errors) =
        edit.unwrap_or_else(|| (as_text(source), String::new(), Vec::new()));
    html(
        status,
        &RulesPage {
            nav: nav(person),
            notice: None,
            version,
            name: live.name().to_string(),
            description: source.description.clone(),
            installed: installed_at.map(when_ms).unwrap_or_default(),
            installed_by: installed_by.map(|a| {
                format!(
                    "asked by {}, approved by {} (request {})",
                    a.requested_by,
                    a.decided_by.unwrap_or_default(),
                    a.id
                )
            }),
            rules: source
                .rules
                .iter()
                .map(|r| RuleView {
                    id: r.id.clone(),
                    action: r.action.to_string(),
                    mode: format!("{:?}", r.mode).to_lowercase(),
                    events: r
                        .events
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    when: r.when.clone(),
                    description: r.description.clone(),
                })
                .collect(),
            lists: source
                .lists
                .iter()
                .map(|(name, list)| ListView {
                    name: name.clone(),
                    kind: list.kind.as_str().to_string(),
                    size: list.entries.len(),
                })
                .collect(),
            versions: (1..=version).rev().collect(),
            pending,
            can_edit: person.may(Scope::RulesWrite),
            csrf: person.session.csrf.clone(),
            text,
            reason,
            errors,
        },
    )
}

pub async fn show(State(state): State<AppState>, request: Parts) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    rules_page(&state, &person, None, StatusCode::OK).await
}

/// A stored version's text.
pub async fn version(
    State(state): State<AppState>,
    Path(version): Path<String>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let not_found = || {
        error_page(
            Some(&person),
            StatusCode::NOT_FOUND,
            "there is no such rule-set version",
        )
    };
    let Ok(number) = version.parse::<u64>() else {
        return not_found();
    };
    let store = state.runtime.store().clone();
    let stored = match tokio::task::spawn_blocking(move || store.rule_set(number)).await {
        Ok(Ok(stored)) => stored,
        Ok(Err(e)) => {
            return error_page(
                Some(&person),
                StatusCode::SERVICE_UNAVAILABLE,
                &e.to_string(),
            );
        }
        Err(e) => {
            return error_page(
                Some(&person),
                StatusCode::SERVICE_UNAVAILABLE,
                &e.to_string(),
            );
        }
    };
    let Some((installed_at_ms, json)) = stored else {
        return not_found();
    };
    let mut facts = vec![format!("installed {}", when_ms(installed_at_ms))];
    if state.runtime.rules().version() == number {
        facts.push("live now".into());
    }
    let text = match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(mut value) => {
            if let Some(confirmed) = value
                .as_object_mut()
                .and_then(|o| o.remove(REMOVAL_OVERRIDE_KEY))
            {
                facts.push(format!("installed over a confirmed removal: {confirmed}"));
            }
            match serde_json::from_value::<RuleSetSource>(value) {
                Ok(source) => as_text(&source),
                Err(e) => format!("# stored rule set {number} is unreadable: {e}\n"),
            }
        }
        Err(e) => format!("# stored rule set {number} is unreadable: {e}\n"),
    };
    html(
        StatusCode::OK,
        &RulesTextPage {
            nav: nav(&person),
            title: format!("Rule set version {number}"),
            facts,
            text,
        },
    )
}

/// The text a rules change proposes, for whoever decides it.
pub async fn proposal(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let found = match id.parse::<i64>() {
        Ok(id) => console_db(&state, move |db| db.approval(id)).await,
        Err(_) => Ok(None),
    };
    let approval = match found {
        Ok(Some(a)) if a.kind == RULES_CHANGE => a,
        Ok(_) => {
            return error_page(
                Some(&person),
                StatusCode::NOT_FOUND,
                "there is no such rules change",
            );
        }
        Err(e) => return error_page(Some(&person), StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    html(
        StatusCode::OK,
        &RulesTextPage {
            nav: nav(&person),
            title: format!("Rules change {}", approval.id),
            facts: vec![
                format!(
                    "asked by {}, {}: {}",
                    approval.requested_by,
                    when_ms(approval.requested_ms),
                    approval.reason
                ),
                format!("written over version {}", approval.base_version),
                approval.summary.clone(),
                format!("status: {}", approval.status),
            ],
            text: approval.payload,
        },
    )
}

/// A proposed change: checked, and recorded as a request when valid.
pub async fn request_change(State(state): State<AppState>, request: Request) -> Response {
    let (person, form) = match posted(&state, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = person.authorize(Scope::RulesWrite, "changing the rules") {
        return r;
    }
    let text = form.get("rules").cloned().unwrap_or_default();
    let reason = reason_of(&form);
    let live = state.runtime.rules();
    let checked = {
        let (live, text) = (live.clone(), text.clone());
        // Compiling blocks: off the async workers.
        tokio::task::spawn_blocking(move || problems(&live, &text)).await
    };
    let mut errors = match checked {
        Ok(Ok(source)) => Ok(source),
        Ok(Err(errors)) => Err(errors),
        Err(e) => Err(vec![e.to_string()]),
    };
    if reason.is_none() {
        let mut all = errors.err().unwrap_or_default();
        all.push("reason: say why the rules should change".into());
        errors = Err(all);
    }
    let source = match errors {
        Ok(source) => source,
        Err(errors) => {
            let reason = reason.unwrap_or_default();
            return rules_page(
                &state,
                &person,
                Some((text, reason, errors)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let reason = reason.unwrap_or_default();
    let summary = diff_summary(live.source(), &source);
    let request = Approval {
        id: 0,
        kind: RULES_CHANGE.into(),
        hold_id: String::new(),
        account_id: String::new(),
        amount: 0,
        currency: String::new(),
        requested_by: person.name().to_string(),
        requested_ms: 0,
        reason: reason.clone(),
        status: "pending".into(),
        decided_by: None,
        decided_ms: None,
        decision_reason: None,
        campaign_id: String::new(),
        summary: summary.clone(),
        payload: text,
        base_version: live.version(),
        outcome: String::new(),
    };
    let id = match console_db(&state, move |db| db.request_approval(&request)).await {
        Ok(id) => id,
        Err(e) => return error_page(Some(&person), StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    audit(
        &state,
        person.name(),
        &person.address,
        "rules_change_requested",
        &format!("rules v{}", live.version()),
        &format!("request {id}: {reason} ({summary})"),
    )
    .await;
    approvals_page(
        &state,
        &person,
        Some(format!(
            "rules change requested (request {id}: {summary}); another lead or admin must approve it"
        )),
        StatusCode::OK,
    )
    .await
}

/// Carries out an approved rules change (already marked approved): the
/// notice to show, or the page saying why it was not installed.
pub(super) async fn carry_out(
    state: &AppState,
    person: &Person,
    approval: &Approval,
    reason: &str,
) -> Result<String, Response> {
    let target = format!("rules v{}", approval.base_version);
    let detail = format!(
        "request {} by {}: {reason}",
        approval.id, approval.requested_by
    );
    let installed = {
        let (state, text, base) = (
            state.clone(),
            approval.payload.clone(),
            approval.base_version,
        );
        tokio::task::spawn_blocking(move || {
            let (source, confirmation) = source_from_toml(&text).map_err(|e| match e {
                TomlSourceError::Toml(e) | TomlSourceError::Override(e) => {
                    crate::error::ApiError::new(Code::InvalidToml, e.to_string())
                }
            })?;
            install_source(&state, source, Some(base), confirmation.as_ref())
        })
        .await
        .map_err(|e| crate::error::ApiError::unavailable(e.to_string()))
        .and_then(|r| r)
    };
    let id = approval.id;
    match installed {
        Ok(rules) => {
            let outcome = format!("v{}", rules.version());
            let recorded = outcome.clone();
            if let Err(e) = console_db(state, move |db| {
                db.record_outcome(id, "approved", &recorded)
            })
            .await
            {
                tracing::error!(error = %e, "rules change outcome not recorded");
            }
            audit(
                state,
                person.name(),
                &person.address,
                "rules_change_approved",
                &format!("rules {outcome}"),
                &format!("{detail} ({})", approval.summary),
            )
            .await;
            Ok(format!(
                "request {id} approved; rule-set version {} is live",
                rules.version()
            ))
        }
        Err(e) => {
            let stale = e.code == Code::RulesChanged;
            let (status, action, message) = if stale {
                (
                    "refused",
                    "rules_change_refused_stale",
                    format!(
                        "request {id} is stale and was not installed: it was written over \
                         version {}, and the rules changed since ({}); ask for the change \
                         again over the live rules",
                        approval.base_version, e.message
                    ),
                )
            } else {
                (
                    "failed",
                    "rules_change_failed",
                    format!("request {id} could not be installed: {}", e.message),
                )
            };
            if let Err(e) = console_db(state, move |db| db.record_outcome(id, status, "")).await {
                tracing::error!(error = %e, "rules change outcome not recorded");
            }
            audit(
                state,
                person.name(),
                &person.address,
                action,
                &target,
                &format!("{detail}: {}", e.message),
            )
            .await;
            Err(error_page(Some(person), StatusCode::CONFLICT, &message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> RuleSetSource {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_summary_names_rules_added_removed_and_changed() {
        let old = source(
            r#"
            [[rules]]
            id = "kept"
            when = "true"
            action = "review"
            [[rules]]
            id = "edited"
            when = "true"
            action = "review"
            [[rules]]
            id = "dropped"
            when = "true"
            action = "review"
            "#,
        );
        let new = source(
            r#"
            [[rules]]
            id = "kept"
            when = "true"
            action = "review"
            [[rules]]
            id = "edited"
            when = "true"
            action = "hold"
            [[rules]]
            id = "fresh"
            when = "true"
            action = "review"
            [lists.mules]
            kind = "destination"
            "#,
        );
        assert_eq!(
            diff_summary(&old, &new),
            "rules added: fresh; rules removed: dropped; rules changed: edited; lists changed: mules"
        );
        assert_eq!(
            diff_summary(&old, &old),
            "no rule changed (an override only)"
        );
    }

    #[test]
    fn the_live_rules_read_back_from_their_text() {
        let live = custos_core::rules::default_rule_set();
        let text = as_text(live.source());
        let (back, confirmation) = source_from_toml(&text).ok().unwrap();
        assert_eq!(&back, live.source());
        assert!(confirmation.is_none());
    }
}
