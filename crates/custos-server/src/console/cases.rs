//! The console's case pages: the list and one case with its actions,
//! through the same path as `/v1/cases` (`crate::cases`).

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use custos_config::Scope;
use custos_core::cases::{CaseResolution, CaseStatus};
use custos_core::event::AnalystActionKind;
use custos_core::holds::Hold;
use serde::Deserialize;

use super::db::Approval;
use super::pages::{
    Nav, account_href, api_error_page, campaign_href, case_href, console_db, error_page, hold_href,
    html, money, nav, reader, reason_of, when,
};
use super::{Person, audit, posted};
use crate::AppState;
use crate::cases::{Actor, CaseQuery};

struct CaseListRow {
    href: String,
    id: String,
    title: String,
    status: String,
    assignee: Option<String>,
    accounts: String,
    holds: usize,
    campaign: Option<String>,
    updated: String,
}

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    nav: Option<Nav>,
    csrf: String,
    can_act: bool,
    status: String,
    assignee: String,
    statuses: Vec<&'static str>,
    shown: usize,
    total: usize,
    rows: Vec<CaseListRow>,
}

#[derive(Deserialize, Default)]
pub struct CaseFilter {
    #[serde(default)]
    status: String,
    /// A user name, `me`, or `none`.
    #[serde(default)]
    assignee: String,
}

/// Cases listed on one page at most.
const CASE_ROWS: usize = 200;

pub async fn list(
    State(state): State<AppState>,
    Query(filter): Query<CaseFilter>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let assignee = match filter.assignee.trim() {
        "me" => person.name().to_string(),
        a => a.to_string(),
    };
    let query = CaseQuery {
        status: Some(filter.status.trim().to_string()),
        assignee: Some(assignee),
        account_id: None,
        limit: Some(CASE_ROWS),
    };
    let (rows, total) = match crate::cases::list(&state, query).await {
        Ok(found) => found,
        Err(e) => return api_error_page(&person, e),
    };
    html(
        StatusCode::OK,
        &CasesPage {
            nav: nav(&person),
            csrf: person.session.csrf.clone(),
            can_act: person.may(Scope::HoldsWrite),
            status: filter.status.trim().to_string(),
            assignee: filter.assignee.trim().to_string(),
            statuses: vec!["open", "investigating", "resolved"],
            shown: rows.len(),
            total,
            rows: rows
                .into_iter()
                .map(|c| CaseListRow {
                    href: case_href(&c.id),
                    title: c.title,
                    status: match c.resolution {
                        Some(r) => format!("{} ({})", c.status.as_str(), r.as_str()),
                        None => c.status.as_str().to_string(),
                    },
                    assignee: c.assignee,
                    accounts: c.accounts.join(", "),
                    holds: c.holds,
                    campaign: c.campaign,
                    updated: when(c.updated_at),
                    id: c.id,
                })
                .collect(),
        },
    )
}

struct HoldRow {
    href: String,
    hold_id: String,
    account_id: String,
    amount: String,
    status: String,
}

struct NoteRow {
    at: String,
    by: String,
    what: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    href: String,
    id: String,
    title: String,
    status: String,
    resolution: Option<String>,
    merged_into: Option<String>,
    merged_href: String,
    assignee: Option<String>,
    opened_at: String,
    opened_by: String,
    campaign: Option<String>,
    campaign_href: String,
    accounts: Vec<(String, String)>,
    holds: Vec<HoldRow>,
    linked: Vec<(String, String)>,
    notes: Vec<NoteRow>,
    history: Vec<NoteRow>,
    open: bool,
    can_act: bool,
    /// May download the case's evidence pack.
    can_export: bool,
    workers: Vec<String>,
}

async fn case_page(
    state: &AppState,
    person: &Person,
    id: &str,
    status: StatusCode,
    notice: Option<String>,
) -> Response {
    let case = match crate::cases::read_case(state, id).await {
        Ok(Some(case)) => case,
        Ok(None) => {
            return error_page(Some(person), StatusCode::NOT_FOUND, "there is no such case");
        }
        Err(e) => return api_error_page(person, e),
    };
    let keys: Vec<(String, String)> = case
        .holds
        .iter()
        .filter_map(|k| k.split_once('/'))
        .map(|(a, h)| (a.to_string(), h.to_string()))
        .collect();
    let holds: Vec<Hold> = state
        .runtime
        .read(move |engine| {
            keys.iter()
                .filter_map(|(a, h)| engine.holds().get(a, h).cloned())
                .collect::<Vec<_>>()
        })
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let workers = console_db(state, |db| {
        Ok(db
            .users()?
            .into_iter()
            .filter(|u| !u.disabled && u.role.scopes().allows(Scope::HoldsWrite))
            .map(|u| u.name)
            .collect())
    })
    .await
    .unwrap_or_default();
    let entry = |e: &custos_core::cases::CaseEntry| NoteRow {
        at: when(e.at),
        by: e.by.clone(),
        what: e.what.clone(),
        detail: e.detail.clone(),
    };
    html(
        status,
        &CasePage {
            nav: nav(person),
            notice,
            csrf: person.session.csrf.clone(),
            href: case_href(&case.id),
            title: case.title.clone(),
            status: case.status.as_str().into(),
            resolution: case.resolution.map(|r| r.as_str().to_string()),
            merged_href: case
                .merged_into
                .as_deref()
                .map(case_href)
                .unwrap_or_default(),
            merged_into: case.merged_into.clone(),
            assignee: case.assignee.clone(),
            opened_at: when(case.opened_at),
            opened_by: case.opened_by.clone(),
            campaign_href: case
                .campaign
                .as_deref()
                .map(campaign_href)
                .unwrap_or_default(),
            campaign: case.campaign.clone(),
            accounts: case
                .accounts
                .iter()
                .map(|a| (a.clone(), account_href(a)))
                .collect(),
            holds: holds
                .into_iter()
                .map(|h| HoldRow {
                    href: hold_href(&h.account_id, &h.hold_id),
                    amount: money(h.amount, h.currency.as_str()),
                    status: h.status.as_str().into(),
                    hold_id: h.hold_id,
                    account_id: h.account_id,
                })
                .collect(),
            linked: case
                .linked
                .iter()
                .map(|l| (l.clone(), case_href(l)))
                .collect(),
            notes: case.notes.iter().map(entry).collect(),
            history: case.history.iter().rev().map(entry).collect(),
            open: case.status != CaseStatus::Resolved,
            can_act: person.may(Scope::HoldsWrite),
            can_export: person.may(crate::evidence::EXPORT_SCOPE),
            workers,
            id: case.id,
        },
    )
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    case_page(&state, &person, &id, StatusCode::OK, None).await
}

/// Downloads the case's evidence pack (`GET /v1/cases/{id}/evidence`'s,
/// under the same scope).
pub async fn evidence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    super::pages::evidence_download(&state, &person, "case", &id).await
}

/// A posted case form: the person, allowed to work cases, and the form.
async fn worker(
    state: &AppState,
    request: Request,
) -> Result<(Person, std::collections::HashMap<String, String>), Response> {
    let (person, form) = posted(state, request).await?;
    person.authorize(Scope::HoldsWrite, "working a case")?;
    Ok((person, form))
}

fn field<'a>(
    person: &Person,
    form: &'a std::collections::HashMap<String, String>,
    name: &str,
    what: &str,
) -> Result<&'a str, Response> {
    form.get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| error_page(Some(person), StatusCode::BAD_REQUEST, what))
}

fn actor(person: &Person, reason: String) -> Actor {
    Actor {
        analyst: person.name().to_string(),
        reason,
        action_id: None,
    }
}

pub async fn open(State(state): State<AppState>, request: Request) -> Response {
    let (person, form) = match worker(&state, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let account = match field(&person, &form, "account_id", "account: name one") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(reason) = reason_of(&form) else {
        return error_page(
            Some(&person),
            StatusCode::BAD_REQUEST,
            "title: say what it is",
        );
    };
    let id = match crate::cases::new_case_id() {
        Ok(id) => id,
        Err(e) => return api_error_page(&person, e),
    };
    match crate::cases::act(
        &state,
        &id,
        AnalystActionKind::OpenCase,
        None,
        Some(account),
        &actor(&person, reason.clone()),
    )
    .await
    {
        Ok(case) => {
            audit(
                &state,
                person.name(),
                &person.address,
                "case_opened",
                &case.id,
                &reason,
            )
            .await;
            Redirect::to(&case_href(&case.id)).into_response()
        }
        Err(e) => api_error_page(&person, e),
    }
}

/// One case action from its form.
async fn case_action(
    state: AppState,
    id: String,
    request: Request,
    action: AnalystActionKind,
) -> Response {
    let (person, form) = match worker(&state, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let reason = match action {
        AnalystActionKind::AssignCase => Some("assigned".to_string()),
        _ => reason_of(&form),
    };
    let Some(reason) = reason else {
        return error_page(Some(&person), StatusCode::BAD_REQUEST, "reason: say why");
    };
    let assignee;
    let (value, account) = match action {
        AnalystActionKind::AssignCase => {
            assignee = match form.get("assignee").map(|a| a.trim()) {
                None | Some("") => person.name().to_string(),
                Some(a) => a.to_string(),
            };
            let who = assignee.clone();
            let allowed = console_db(&state, move |db| {
                Ok(db
                    .user(&who)?
                    .is_some_and(|u| !u.disabled && u.role.scopes().allows(Scope::HoldsWrite)))
            })
            .await
            .unwrap_or(false);
            if !allowed {
                return error_page(
                    Some(&person),
                    StatusCode::BAD_REQUEST,
                    "assignee: not an enabled user who may work cases",
                );
            }
            (Some(assignee.as_str()), None)
        }
        AnalystActionKind::SetCaseStatus => match form.get("status").map(String::as_str) {
            Some(s @ ("open" | "investigating")) => (Some(s), None),
            _ => {
                return error_page(
                    Some(&person),
                    StatusCode::BAD_REQUEST,
                    "status: open or investigating",
                );
            }
        },
        AnalystActionKind::MergeCase => match field(&person, &form, "into", "into: name a case") {
            Ok(v) => (Some(v), None),
            Err(r) => return r,
        },
        AnalystActionKind::AddCaseAccount => {
            match field(&person, &form, "account_id", "account: name one") {
                Ok(a) => (None, Some(a)),
                Err(r) => return r,
            }
        }
        _ => (None, None),
    };
    match crate::cases::act(
        &state,
        &id,
        action,
        value,
        account,
        &actor(&person, reason.clone()),
    )
    .await
    {
        Ok(case) => {
            let detail = match (value, account) {
                (Some(v), _) | (None, Some(v)) => format!("{v}: {reason}"),
                _ => reason,
            };
            audit(
                &state,
                person.name(),
                &person.address,
                action.as_str(),
                &id,
                &detail,
            )
            .await;
            Redirect::to(&case_href(&case.id)).into_response()
        }
        Err(e) => api_error_page(&person, e),
    }
}

pub async fn note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    case_action(state, id, request, AnalystActionKind::NoteCase).await
}

pub async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    case_action(state, id, request, AnalystActionKind::AssignCase).await
}

pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    case_action(state, id, request, AnalystActionKind::SetCaseStatus).await
}

pub async fn add_account(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    case_action(state, id, request, AnalystActionKind::AddCaseAccount).await
}

pub async fn merge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    case_action(state, id, request, AnalystActionKind::MergeCase).await
}

/// Resolves; a false positive's holds above the four-eyes amount become
/// release requests for a lead, as a release from the hold page would.
pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (person, form) = match worker(&state, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(resolution) = form
        .get("resolution")
        .and_then(|r| CaseResolution::from_name(r))
    else {
        return error_page(
            Some(&person),
            StatusCode::BAD_REQUEST,
            "resolution: fraud_confirmed, false_positive or inconclusive",
        );
    };
    let Some(reason) = reason_of(&form) else {
        return error_page(Some(&person), StatusCode::BAD_REQUEST, "reason: say why");
    };
    let above = state.console.config.four_eyes_above;
    let (case, feedback) = match crate::cases::resolve(
        &state,
        &id,
        resolution,
        &actor(&person, reason.clone()),
        above,
    )
    .await
    {
        Ok(done) => done,
        Err(e) => return api_error_page(&person, e),
    };
    let mut requests = Vec::new();
    for hold in feedback.left_held {
        let approval = Approval {
            id: 0,
            kind: super::db::RELEASE_PAYOUT.into(),
            hold_id: hold.hold_id.clone(),
            account_id: hold.account_id.clone(),
            amount: hold.amount,
            currency: hold.currency.to_string(),
            requested_by: person.name().to_string(),
            requested_ms: 0,
            reason: format!("case {} resolved false positive: {reason}", case.id),
            status: "pending".into(),
            decided_by: None,
            decided_ms: None,
            decision_reason: None,
            campaign_id: String::new(),
            summary: String::new(),
            payload: String::new(),
            base_version: 0,
            outcome: String::new(),
        };
        match console_db(&state, move |db| db.request_approval(&approval)).await {
            Ok(n) => requests.push(n.to_string()),
            Err(e) => tracing::error!(error = %e, "release request for a resolved case failed"),
        }
    }
    audit(
        &state,
        person.name(),
        &person.address,
        "resolve_case",
        &case.id,
        &format!("{}: {reason}", resolution.as_str()),
    )
    .await;
    let mut notice = format!("resolved: {}", resolution.as_str());
    if !feedback.labelled.is_empty() {
        notice.push_str(&format!(
            "; labelled fraud: {}",
            feedback.labelled.join(", ")
        ));
    }
    if let Some(c) = &feedback.campaign_confirmed {
        notice.push_str(&format!("; campaign {c} confirmed"));
    }
    if !feedback.cleared.is_empty() {
        notice.push_str(&format!("; cleared: {}", feedback.cleared.join(", ")));
    }
    if !feedback.released.is_empty() {
        notice.push_str(&format!("; {} hold(s) released", feedback.released.len()));
    }
    if !requests.is_empty() {
        notice.push_str(&format!(
            "; above the four-eyes amount, release request(s) {} wait for a lead",
            requests.join(", ")
        ));
    }
    case_page(&state, &person, &case.id, StatusCode::OK, Some(notice)).await
}
