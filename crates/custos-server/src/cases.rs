//! Case routes, and the case actions the console shares with them.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/cases` | cases, newest first (`?status=open\|investigating\|resolved`, `?assignee=`, `?account_id=`, `?limit=`) |
//! | `GET /v1/cases/{case_id}` | one case with its notes and history |
//! | `POST /v1/cases` | open a case: `{"analyst", "reason", "account_id"}` |
//! | `POST /v1/cases/{case_id}/notes` | add a note (the `reason`) |
//! | `POST /v1/cases/{case_id}/assign` | `{"assignee"}` |
//! | `POST /v1/cases/{case_id}/status` | `{"status": "open"\|"investigating"}` |
//! | `POST /v1/cases/{case_id}/accounts` | add `{"account_id"}` |
//! | `POST /v1/cases/{case_id}/merge` | merge into `{"into"}` |
//! | `POST /v1/cases/{case_id}/resolve` | `{"resolution"}`, and its feedback |
//!
//! The engine opens cases itself (`custos_core::cases`); every action here
//! is an `analyst_action` event in the log, like a hold's release. Each
//! body carries `analyst` and `reason`, and may carry `action_id`.
//!
//! Resolving feeds back through the same paths as the other actions:
//! `fraud_confirmed` records a `fraud` label on each of the case's accounts
//! (which denies the destination each pays to) and confirms its campaign;
//! `false_positive` clears each account and releases its open holds, those
//! above `console.four_eyes_above` excepted: they stay held, listed under
//! `left_held`, for a release that passes four-eyes. The case is marked
//! resolved last, so a resolve that fails halfway can be retried.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use custos_core::campaigns::CampaignStatus;
use custos_core::cases::{Case, CaseResolution, CaseStatus};
use custos_core::decision::EffectKind;
use custos_core::event::AnalystActionKind;
use custos_core::holds::Hold;
use custos_runtime::PreparedEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::analyst::ActionBody;
use crate::error::{ApiError, Code};
use crate::extract::{Path as UrlPath, Query};

const MAX_LIST: usize = 1_000;
const DEFAULT_LIST: usize = 100;

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e.to_string())
}

pub(crate) fn case_not_found(id: &str) -> ApiError {
    ApiError::new(Code::CaseNotFound, format!("no case {id:?}"))
}

/// A case as stored, `None` when there is none.
pub(crate) async fn read_case(state: &AppState, id: &str) -> Result<Option<Case>, ApiError> {
    let lookup = id.to_string();
    let value = state
        .runtime
        .read(move |engine| engine.cases().get(&lookup).cloned())
        .await
        .map_err(unavailable)?;
    serde_json::from_value(value).map_err(unavailable)
}

/// Case filters, for the API and the console's list.
#[derive(Deserialize, Default, Clone, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A case in a list: no notes or history.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct CaseRow {
    pub id: String,
    pub title: String,
    pub status: CaseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<CaseResolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    pub opened_at: i64,
    pub updated_at: i64,
    pub accounts: Vec<String>,
    pub holds: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    pub notes: usize,
}

/// Cases matching `query`, newest first, at most `limit`; and how many
/// matched in all.
pub(crate) async fn list(
    state: &AppState,
    query: CaseQuery,
) -> Result<(Vec<CaseRow>, usize), ApiError> {
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(name) => Some(CaseStatus::from_name(name).ok_or_else(|| {
            ApiError::new(
                Code::InvalidField,
                format!("status: must be open, investigating or resolved, is {name:?}"),
            )
            .with_field("status")
        })?),
    };
    let limit = match query.limit {
        None => DEFAULT_LIST,
        Some(n) if (1..=MAX_LIST).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::new(
                Code::InvalidField,
                format!("limit: must be 1 to {MAX_LIST}, is {n}"),
            )
            .with_field("limit"));
        }
    };
    let assignee = query.assignee.filter(|a| !a.is_empty());
    let account = query.account_id.filter(|a| !a.is_empty());
    let value = state
        .runtime
        .read(move |engine| {
            let matching = engine.cases().all().rev().filter(|c| {
                status.is_none_or(|s| c.status == s)
                    && assignee.as_ref().is_none_or(|a| match a.as_str() {
                        "none" => c.assignee.is_none(),
                        a => c.assignee.as_deref() == Some(a),
                    })
                    && account
                        .as_ref()
                        .is_none_or(|a| c.accounts.iter().any(|x| x == a))
            });
            let mut total = 0usize;
            let mut rows = Vec::new();
            for c in matching {
                total += 1;
                if rows.len() < limit {
                    rows.push(CaseRow {
                        id: c.id.clone(),
                        title: c.title.clone(),
                        status: c.status,
                        resolution: c.resolution,
                        assignee: c.assignee.clone(),
                        opened_at: c.opened_at,
                        updated_at: c.updated_at,
                        accounts: c.accounts.clone(),
                        holds: c.holds.len(),
                        campaign: c.campaign.clone(),
                        notes: c.notes.len(),
                    });
                }
            }
            (rows, total)
        })
        .await
        .map_err(unavailable)?;
    serde_json::from_value(value).map_err(unavailable)
}

/// Who acts and why.
pub(crate) struct Actor {
    pub analyst: String,
    pub reason: String,
    pub action_id: Option<String>,
}

impl Actor {
    fn body(&self) -> ActionBody {
        ActionBody {
            analyst: Some(self.analyst.clone()),
            reason: Some(self.reason.clone()),
            action_id: self.action_id.clone(),
            account_id: None,
        }
    }
}

/// A case action on the case `id` (which must exist; not resolved unless a
/// note); `account_id` is the event's account (the case's first when
/// `None`). The case afterwards.
pub(crate) async fn act(
    state: &AppState,
    id: &str,
    action: AnalystActionKind,
    value: Option<&str>,
    account_id: Option<&str>,
    actor: &Actor,
) -> Result<Case, ApiError> {
    let case = if action == AnalystActionKind::OpenCase {
        None
    } else {
        let case = read_case(state, id)
            .await?
            .ok_or_else(|| case_not_found(id))?;
        if case.status == CaseStatus::Resolved && action != AnalystActionKind::NoteCase {
            return Err(ApiError::new(
                Code::CaseResolved,
                match &case.merged_into {
                    Some(into) => format!("case {id:?} was merged into {into:?}; act on that one"),
                    None => format!("case {id:?} is resolved"),
                },
            ));
        }
        Some(case)
    };
    if action == AnalystActionKind::MergeCase {
        let into = value.unwrap_or_default();
        match read_case(state, into).await? {
            None => return Err(case_not_found(into).with_field("into")),
            Some(c) if c.id == id => {
                return Err(ApiError::new(
                    Code::InvalidField,
                    "into: a case cannot be merged into itself",
                )
                .with_field("into"));
            }
            Some(c) if c.status == CaseStatus::Resolved => {
                return Err(ApiError::new(
                    Code::CaseResolved,
                    format!("case {into:?} is resolved"),
                )
                .with_field("into"));
            }
            Some(_) => {}
        }
    }
    if let Some(account) = account_id {
        let lookup = account.to_string();
        let known = state
            .runtime
            .read(move |engine| engine.account(&lookup).is_some())
            .await
            .map_err(unavailable)?;
        if known != Value::Bool(true) {
            return Err(ApiError::new(
                Code::AccountNotFound,
                format!("no events seen for account_id {account:?}"),
            )
            .with_field("account_id"));
        }
    }
    let account = account_id
        .map(str::to_string)
        .or_else(|| case.as_ref().and_then(|c| c.accounts.first().cloned()))
        .unwrap_or_else(|| id.to_string());
    let effects =
        crate::analyst::record_action_value(state, &account, action, Some(id), value, actor.body())
            .await?;
    let changed = effects
        .iter()
        .find(|e| e.kind == EffectKind::CaseUpdated)
        .and_then(|e| e.data.get("case_id"))
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_string();
    read_case(state, &changed)
        .await?
        .ok_or_else(|| case_not_found(&changed))
}

/// A new case id for a case a person opens.
pub(crate) fn new_case_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(unavailable)?;
    Ok(format!("case-{}", hex::encode(bytes)))
}

/// What resolving did besides marking the case.
#[derive(Serialize, Default)]
pub(crate) struct Feedback {
    /// Accounts labelled `fraud` (their destinations denied).
    pub labelled: Vec<String>,
    pub campaign_confirmed: Option<String>,
    pub cleared: Vec<String>,
    pub released: Vec<Value>,
    /// Open holds above the four-eyes amount, still held.
    pub left_held: Vec<Hold>,
}

/// Records an event built here (a label), through the same parse and
/// submit as every other event.
async fn submit(state: &AppState, event: Value) -> Result<(), ApiError> {
    let parsed = state
        .runtime
        .parser()
        .parse_value(event)
        .map_err(crate::events::event_error)?;
    let prepared =
        PreparedEvent::new(parsed, state.runtime.parser()).map_err(crate::events::submit_error)?;
    state
        .runtime
        .submit(vec![prepared])
        .await
        .map_err(crate::events::submit_error)?;
    Ok(())
}

fn now_rfc3339() -> Result<String, ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .map_err(unavailable)
}

/// Resolves case `id` and feeds the resolution back; holds above
/// `four_eyes_above` are not released (see the module's doc).
pub(crate) async fn resolve(
    state: &AppState,
    id: &str,
    resolution: CaseResolution,
    actor: &Actor,
    four_eyes_above: u64,
) -> Result<(Case, Feedback), ApiError> {
    let case = read_case(state, id)
        .await?
        .ok_or_else(|| case_not_found(id))?;
    if case.status == CaseStatus::Resolved {
        return Err(ApiError::new(
            Code::CaseResolved,
            format!("case {id:?} is resolved"),
        ));
    }
    let mut feedback = Feedback::default();
    let accounts = case.accounts.clone();
    let lookup = accounts.clone();
    let read = state
        .runtime
        .read(move |engine| {
            let holds: Vec<Hold> = lookup
                .iter()
                .flat_map(|a| engine.holds().of_account(a))
                .filter(|h| h.status == custos_core::holds::HoldStatus::Held)
                .cloned()
                .collect();
            // Not only live ones: the victims cleared as false positives
            // before may have left it too small to be live.
            let campaigns: Vec<(String, CampaignStatus)> = lookup
                .iter()
                .filter_map(|a| engine.campaigns().campaign_of_account(a))
                .map(|c| (c.id.clone(), c.status))
                .collect();
            let at_risk: Vec<String> = lookup
                .iter()
                .filter(|a| {
                    engine.account(a).is_some_and(|s| s.at_risk.is_some())
                        || engine.campaigns().account_in_live_campaign(a).is_some()
                })
                .cloned()
                .collect();
            json!({"holds": holds, "campaigns": campaigns, "at_risk": at_risk})
        })
        .await
        .map_err(unavailable)?;
    let holds: Vec<Hold> = serde_json::from_value(read["holds"].clone()).unwrap_or_default();
    let campaigns: Vec<(String, CampaignStatus)> =
        serde_json::from_value(read["campaigns"].clone()).unwrap_or_default();
    let at_risk: Vec<String> = serde_json::from_value(read["at_risk"].clone()).unwrap_or_default();
    match resolution {
        CaseResolution::FraudConfirmed => {
            for account in &accounts {
                let mut bytes = [0u8; 12];
                getrandom::fill(&mut bytes).map_err(unavailable)?;
                submit(
                    state,
                    json!({
                        "event_id": format!("lbl_{}", hex::encode(bytes)),
                        "type": "label",
                        "account_id": account,
                        "time": now_rfc3339()?,
                        "label": "fraud",
                        "analyst": actor.analyst,
                    }),
                )
                .await?;
                feedback.labelled.push(account.clone());
            }
            let campaign = case
                .campaign
                .clone()
                .into_iter()
                .chain(campaigns.into_iter().map(|(c, _)| c))
                .next();
            if let Some(campaign_id) = campaign {
                let current = state
                    .runtime
                    .read({
                        let c = campaign_id.clone();
                        move |engine| engine.campaigns().campaign(&c).map(|c| c.status)
                    })
                    .await
                    .map_err(unavailable)?;
                let current: Option<CampaignStatus> =
                    serde_json::from_value(current).unwrap_or(None);
                if current.is_some_and(|s| s != CampaignStatus::Confirmed) {
                    crate::analyst::record_action(
                        state,
                        accounts.first().map_or(id, String::as_str),
                        AnalystActionKind::ConfirmCampaign,
                        Some(&campaign_id),
                        actor.body_fresh(),
                    )
                    .await?;
                }
                // A fraud label on a member confirms it already.
                if current.is_some() {
                    feedback.campaign_confirmed = Some(campaign_id);
                }
            }
        }
        CaseResolution::FalsePositive => {
            for account in &at_risk {
                crate::analyst::record_action(
                    state,
                    account,
                    AnalystActionKind::ClearAccount,
                    None,
                    actor.body_fresh(),
                )
                .await?;
                feedback.cleared.push(account.clone());
            }
            for hold in holds {
                if hold.amount > four_eyes_above {
                    feedback.left_held.push(hold);
                    continue;
                }
                let mut body = actor.body_fresh();
                body.account_id = Some(hold.account_id.clone());
                // Clearing may have released it already.
                match crate::analyst::close_hold_with(
                    state,
                    &hold.hold_id,
                    body,
                    AnalystActionKind::ReleasePayout,
                )
                .await
                {
                    Ok(released) => feedback.released.push(released),
                    Err(e) if e.code == Code::HoldNotOpen => {}
                    Err(e) => return Err(e),
                }
            }
        }
        CaseResolution::Inconclusive => {}
    }
    let case = act(
        state,
        id,
        AnalystActionKind::ResolveCase,
        Some(resolution.as_str()),
        None,
        actor,
    )
    .await?;
    Ok((case, feedback))
}

impl Actor {
    /// The body for a follow-up event: never the caller's `action_id`,
    /// which names the resolve itself.
    fn body_fresh(&self) -> ActionBody {
        ActionBody {
            action_id: None,
            ..self.body()
        }
    }
}

// ---------------------------------------------------------------- routes

/// Every case action's body; which fields a route needs, it checks.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"analyst": "ana", "reason": "payout after a new device", "account_id": "acct-example"})))]
pub struct CaseBody {
    analyst: Option<String>,
    reason: Option<String>,
    action_id: Option<String>,
    account_id: Option<String>,
    assignee: Option<String>,
    status: Option<String>,
    into: Option<String>,
    resolution: Option<String>,
}

fn needed<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, ApiError> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::new(
            Code::MissingField,
            format!("{field}: required, and not empty"),
        )
        .with_field(field)),
    }
}

async fn case_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(CaseBody, Actor), ApiError> {
    let bytes = crate::events::read_body(headers, body, state.limits.max_body_bytes).await?;
    let body: CaseBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("expected {{\"analyst\": ..., \"reason\": ..., ...}}: {e}"),
        )
    })?;
    let actor = Actor {
        analyst: needed(&body.analyst, "analyst")?.to_string(),
        reason: needed(&body.reason, "reason")?.to_string(),
        action_id: body.action_id.clone(),
    };
    Ok((body, actor))
}

pub async fn list_cases(
    State(state): State<AppState>,
    Query(query): Query<CaseQuery>,
) -> Result<Response, ApiError> {
    let (cases, total) = list(&state, query).await?;
    Ok(Json(json!({"cases": cases, "total": total})).into_response())
}

pub async fn get_case(
    State(state): State<AppState>,
    UrlPath(case_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let case = read_case(&state, &case_id)
        .await?
        .ok_or_else(|| case_not_found(&case_id))?;
    Ok(Json(case).into_response())
}

pub async fn open_case(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, actor) = case_body(&state, &headers, body).await?;
    let account = needed(&body.account_id, "account_id")?;
    let id = new_case_id()?;
    let case = act(
        &state,
        &id,
        AnalystActionKind::OpenCase,
        None,
        Some(account),
        &actor,
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(case)).into_response())
}

/// One case action route: what the body must name, and as what value.
async fn case_route(
    state: AppState,
    case_id: String,
    headers: HeaderMap,
    body: Body,
    action: AnalystActionKind,
) -> Result<Response, ApiError> {
    let (body, actor) = case_body(&state, &headers, body).await?;
    let (value, account) = match action {
        AnalystActionKind::AssignCase => (Some(needed(&body.assignee, "assignee")?), None),
        AnalystActionKind::SetCaseStatus => {
            let status = needed(&body.status, "status")?;
            if !matches!(status, "open" | "investigating") {
                return Err(ApiError::new(
                    Code::InvalidField,
                    format!(
                        "status: must be open or investigating (resolve with /resolve), is {status:?}"
                    ),
                )
                .with_field("status"));
            }
            (Some(status), None)
        }
        AnalystActionKind::MergeCase => (Some(needed(&body.into, "into")?), None),
        AnalystActionKind::AddCaseAccount => (None, Some(needed(&body.account_id, "account_id")?)),
        _ => (None, None),
    };
    let case = act(&state, &case_id, action, value, account, &actor).await?;
    Ok(Json(case).into_response())
}

pub async fn note_case(
    State(state): State<AppState>,
    UrlPath(case_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    case_route(state, case_id, headers, body, AnalystActionKind::NoteCase).await
}

pub async fn assign_case(
    State(state): State<AppState>,
    UrlPath(case_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    case_route(state, case_id, headers, body, AnalystActionKind::AssignCase).await
}

pub async fn set_case_status(
    State(state): State<AppState>,
    UrlPath(case_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    case_route(
        state,
        case_id,
        headers,
        body,
        AnalystActionKind::SetCaseStatus,
    )
    .await
}

pub async fn add_case_account(
    State(state): State<AppState>,
    UrlPath(case_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    case_route(
        state,
        case_id,
        headers,
        body,
        AnalystActionKind::AddCaseAccount,
    )
    .await
}

pub async fn merge_case(
    State(state): State<AppState>,
    UrlPath(case_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    case_route(state, case_id, headers, body, AnalystActionKind::MergeCase).await
}

pub async fn resolve_case(
    State(state): State<AppState>,
    UrlPath(case_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, actor) = case_body(&state, &headers, body).await?;
    let name = needed(&body.resolution, "resolution")?;
    let resolution = CaseResolution::from_name(name).ok_or_else(|| {
        ApiError::new(
            Code::InvalidField,
            format!(
                "resolution: must be one of {}, is {name:?}",
                CaseResolution::WIRE_NAMES.join(", ")
            ),
        )
        .with_field("resolution")
    })?;
    let above = state.console.config().four_eyes_above;
    let (case, feedback) = resolve(&state, &case_id, resolution, &actor, above).await?;
    Ok(Json(json!({"case": case, "feedback": feedback})).into_response())
}
