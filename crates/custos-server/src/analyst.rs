//! Analyst routes: payout holds, account risk and campaigns.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/holds` | holds, open ones by default (`?status=held\|released\|cancelled`, `?account_id=`, `?limit=`) |
//! | `GET /v1/holds/{hold_id}` | one hold |
//! | `POST /v1/payouts/{payout_id}/release`, `/cancel` | close a hold: `{"analyst", "reason"}` |
//! | `POST /v1/accounts/{account_id}/clear` | end an account's at-risk state |
//! | `GET /v1/campaigns`, `GET /v1/campaigns/{id}` | campaigns found across accounts |
//! | `POST /v1/campaigns/{id}/confirm`, `/dismiss` | settle a campaign |
//!
//! Every action is recorded as an `analyst_action` event in the log, like
//! any other event: who, why and when are kept for audit, and a rebuild of
//! state replays it. An action may carry `action_id`, which becomes the
//! event id: a retried request with the same `action_id` is answered from
//! the log and does nothing twice.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use custos_core::campaigns::CampaignStatus;
use custos_core::decision::EffectKind;
use custos_core::event::AnalystActionKind;
use custos_core::holds::HoldStatus;
use custos_runtime::PreparedEvent;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, Code};
use crate::extract::{Path as UrlPath, Query};

/// Holds or campaigns listed at most per request.
const MAX_LIST: usize = 1_000;
const DEFAULT_LIST: usize = 100;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HoldQuery {
    status: Option<String>,
    account_id: Option<String>,
    limit: Option<usize>,
}

fn limit_of(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIST),
        Some(n) if (1..=MAX_LIST).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            Code::InvalidField,
            format!("limit: must be 1 to {MAX_LIST}, is {n}"),
        )
        .with_field("limit")),
    }
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e.to_string())
}

pub async fn list_holds(
    State(state): State<AppState>,
    Query(query): Query<HoldQuery>,
) -> Result<Response, ApiError> {
    let status = match query.status.as_deref() {
        None => HoldStatus::Held,
        Some(name) => HoldStatus::from_name(name).ok_or_else(|| {
            ApiError::new(
                Code::InvalidField,
                format!("status: must be held, released or cancelled, is {name:?}"),
            )
            .with_field("status")
        })?,
    };
    let limit = limit_of(query.limit)?;
    let account_id = query.account_id;
    let body = state
        .runtime
        .read(move |engine| {
            let book = engine.holds();
            let holds: Vec<_> = match &account_id {
                Some(account) => book
                    .of_account(account)
                    .into_iter()
                    .filter(|h| h.status == status)
                    .take(limit)
                    .cloned()
                    .collect(),
                None => book
                    .with_status(status, limit)
                    .into_iter()
                    .cloned()
                    .collect(),
            };
            json!({
                "status": status.as_str(),
                "holds": holds,
                "open": book.open_count(),
                "untracked": book.untracked(),
            })
        })
        .await
        .map_err(unavailable)?;
    Ok(Json(body).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OneHoldQuery {
    account_id: Option<String>,
}

pub async fn get_hold(
    State(state): State<AppState>,
    UrlPath(hold_id): UrlPath<String>,
    Query(query): Query<OneHoldQuery>,
) -> Result<Response, ApiError> {
    let hold = find_hold(&state, &hold_id, query.account_id).await?;
    Ok(Json(hold).into_response())
}

/// The hold with this payout or loan id; `account_id` picks one when the
/// platform used the id on several accounts.
pub(crate) async fn find_hold(
    state: &AppState,
    hold_id: &str,
    account_id: Option<String>,
) -> Result<Value, ApiError> {
    let lookup = hold_id.to_string();
    let found = state
        .runtime
        .read(move |engine| {
            engine
                .holds()
                .find(&lookup)
                .into_iter()
                .filter(|h| account_id.as_deref().is_none_or(|a| h.account_id == a))
                .cloned()
                .collect::<Vec<_>>()
        })
        .await
        .map_err(unavailable)?;
    match found {
        Value::Array(mut holds) if holds.len() == 1 => Ok(holds.remove(0)),
        Value::Array(holds) if holds.len() > 1 => {
            let accounts: Vec<&str> = holds
                .iter()
                .filter_map(|h| h.get("account_id").and_then(Value::as_str))
                .collect();
            Err(ApiError::new(
                Code::HoldAmbiguous,
                format!(
                    "payout id {hold_id:?} is held on several accounts ({}); name one with account_id",
                    accounts.join(", ")
                ),
            )
            .with_field("account_id"))
        }
        _ => Err(hold_not_found(hold_id)),
    }
}

fn hold_not_found(hold_id: &str) -> ApiError {
    ApiError::new(
        Code::HoldNotFound,
        format!("no hold for payout or loan id {hold_id:?}"),
    )
}

/// The body of every analyst action.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"analyst": "ana", "reason": "seller confirmed the change by phone"})))]
pub(crate) struct ActionBody {
    pub(crate) analyst: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) action_id: Option<String>,
    /// Picks the hold when a payout id is used on several accounts.
    pub(crate) account_id: Option<String>,
}

/// Reads `{"analyst", "reason", "action_id"?}`; both names are required so
/// that every action can be audited.
async fn action_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<ActionBody, ApiError> {
    let bytes = crate::events::read_body(headers, body, state.limits.max_body_bytes).await?;
    let body: ActionBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("expected {{\"analyst\": ..., \"reason\": ...}}: {e}"),
        )
    })?;
    for (field, value) in [("analyst", &body.analyst), ("reason", &body.reason)] {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Err(ApiError::new(
                Code::MissingField,
                format!("{field}: required, and not empty: who acted and why is kept for audit"),
            )
            .with_field(field));
        }
    }
    Ok(body)
}

/// Records an analyst action as an event on `account_id` and returns the
/// effects it had.
pub(crate) async fn record_action(
    state: &AppState,
    account_id: &str,
    action: AnalystActionKind,
    target_id: Option<&str>,
    body: ActionBody,
) -> Result<Vec<custos_core::decision::Effect>, ApiError> {
    record_action_value(state, account_id, action, target_id, None, body).await
}

/// [`record_action`] with the event's `value` (what a case action sets).
pub(crate) async fn record_action_value(
    state: &AppState,
    account_id: &str,
    action: AnalystActionKind,
    target_id: Option<&str>,
    value: Option<&str>,
    body: ActionBody,
) -> Result<Vec<custos_core::decision::Effect>, ApiError> {
    let event_id = match body.action_id {
        Some(id) => id,
        None => {
            let mut bytes = [0u8; 12];
            getrandom::fill(&mut bytes).map_err(|e| ApiError::unavailable(e.to_string()))?;
            format!("act_{}", hex::encode(bytes))
        }
    };
    // A retry of an action already stored keeps the time it was first
    // recorded at: stamped anew, a retry a second later would differ from
    // the stored action and be refused as another action under its id.
    let time = match recorded_time(state, &event_id).await? {
        Some(time) => time,
        None => time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| ApiError::unavailable(e.to_string()))?,
    };
    let mut event = json!({
        "event_id": event_id,
        "type": "analyst_action",
        "account_id": account_id,
        "time": time,
        "action": action.as_str(),
        "analyst": body.analyst,
        "reason": body.reason,
    });
    if let (Some(target), Value::Object(map)) = (target_id, &mut event) {
        map.insert("target_id".into(), json!(target));
    }
    if let (Some(value), Value::Object(map)) = (value, &mut event) {
        map.insert("value".into(), json!(value));
    }
    let parsed = state
        .runtime
        .parser()
        .parse_value(event)
        .map_err(crate::events::event_error)?;
    let prepared =
        PreparedEvent::new(parsed, state.runtime.parser()).map_err(crate::events::submit_error)?;
    let outcomes = state
        .runtime
        .submit(vec![prepared])
        .await
        .map_err(|e| match e {
            // The action's id is the event id: name the field the caller sent.
            custos_runtime::SubmitError::Conflict { ref event_id, .. } => ApiError::new(
                Code::EventIdConflict,
                format!(
                    "action_id {event_id:?} was already used for another action; reuse an \
                     action_id only to retry the same action"
                ),
            )
            .with_field("action_id"),
            e => crate::events::submit_error(e),
        })?;
    Ok(outcomes
        .into_iter()
        .next()
        .map(|o| o.decision.effects)
        .unwrap_or_default())
}

/// The `time` of the stored event `event_id`, if there is one.
async fn recorded_time(state: &AppState, event_id: &str) -> Result<Option<String>, ApiError> {
    let store = state.runtime.store().clone();
    let lookup = event_id.to_string();
    let record = tokio::task::spawn_blocking(move || store.get_event(&lookup))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(record.and_then(|r| {
        let event: Value = serde_json::from_str(&r.event_json).ok()?;
        event.get("time")?.as_str().map(str::to_string)
    }))
}

async fn close_hold(
    state: AppState,
    hold_id: String,
    headers: HeaderMap,
    body: Body,
    action: AnalystActionKind,
) -> Result<Response, ApiError> {
    let body = action_body(&state, &headers, body).await?;
    let effect = close_hold_with(&state, &hold_id, body, action).await?;
    Ok(Json(effect).into_response())
}

/// Releases or cancels a hold as `body` says (the console's path too); the
/// effect's data.
pub(crate) async fn close_hold_with(
    state: &AppState,
    hold_id: &str,
    mut body: ActionBody,
    action: AnalystActionKind,
) -> Result<Value, ApiError> {
    let state = state.clone();
    let hold_id = hold_id.to_string();
    let hold = find_hold(&state, &hold_id, body.account_id.take()).await?;
    let account_id = hold
        .get("account_id")
        .and_then(Value::as_str)
        .ok_or_else(|| hold_not_found(&hold_id))?
        .to_string();
    let wanted = if action == AnalystActionKind::ReleasePayout {
        EffectKind::HoldReleased
    } else {
        EffectKind::HoldCancelled
    };
    let effects = record_action(&state, &account_id, action, Some(&hold_id), body).await?;
    match effects.into_iter().find(|e| e.kind == wanted) {
        Some(effect) => Ok(effect.data),
        None => {
            let status = hold
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("closed");
            Err(ApiError::new(
                Code::HoldNotOpen,
                format!(
                    "hold {hold_id:?} is {status}: only a held payout can be released or cancelled"
                ),
            ))
        }
    }
}

pub async fn release_payout(
    State(state): State<AppState>,
    UrlPath(hold_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    close_hold(
        state,
        hold_id,
        headers,
        body,
        AnalystActionKind::ReleasePayout,
    )
    .await
}

pub async fn cancel_payout(
    State(state): State<AppState>,
    UrlPath(hold_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    close_hold(
        state,
        hold_id,
        headers,
        body,
        AnalystActionKind::CancelPayout,
    )
    .await
}

pub async fn clear_account(
    State(state): State<AppState>,
    UrlPath(account_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = action_body(&state, &headers, body).await?;
    let lookup = account_id.clone();
    let at_risk = state
        .runtime
        .read(move |engine| {
            engine.account(&lookup).map(|a| {
                a.at_risk.is_some()
                    || engine
                        .campaigns()
                        .account_in_live_campaign(&lookup)
                        .is_some()
            })
        })
        .await
        .map_err(unavailable)?;
    match at_risk.as_bool() {
        None => {
            return Err(ApiError::new(
                Code::AccountNotFound,
                format!("no events seen for account_id {account_id:?}"),
            ));
        }
        Some(false) => return Err(not_at_risk(&account_id)),
        Some(true) => {}
    }
    let effects = record_action(
        &state,
        &account_id,
        AnalystActionKind::ClearAccount,
        None,
        body,
    )
    .await?;
    let released: Vec<Value> = effects
        .iter()
        .filter(|e| e.kind == EffectKind::HoldReleased)
        .map(|e| e.data.clone())
        .collect();
    match effects
        .into_iter()
        .find(|e| e.kind == EffectKind::AccountCleared)
    {
        Some(cleared) => {
            Ok(Json(json!({"cleared": cleared.data, "released": released})).into_response())
        }
        None => Err(not_at_risk(&account_id)),
    }
}

fn not_at_risk(account_id: &str) -> ApiError {
    ApiError::new(
        Code::AccountNotAtRisk,
        format!(
            "account {account_id:?} is neither at risk nor in a live campaign; there is nothing to clear"
        ),
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CampaignQuery {
    status: Option<String>,
    limit: Option<usize>,
}

pub async fn list_campaigns(
    State(state): State<AppState>,
    Query(query): Query<CampaignQuery>,
) -> Result<Response, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(CampaignStatus::from_name(name).ok_or_else(|| {
            ApiError::new(
                Code::InvalidField,
                format!("status: must be suspected, confirmed or dismissed, is {name:?}"),
            )
            .with_field("status")
        })?),
    };
    let limit = limit_of(query.limit)?;
    let body = state
        .runtime
        .read(move |engine| {
            let campaigns: Vec<_> = engine
                .campaigns()
                .campaigns()
                .filter(|c| status.is_none_or(|s| c.status == s))
                .take(limit)
                .map(|c| c.summary())
                .collect();
            json!({ "campaigns": campaigns })
        })
        .await
        .map_err(unavailable)?;
    Ok(Json(body).into_response())
}

pub async fn get_campaign(
    State(state): State<AppState>,
    UrlPath(campaign_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let lookup = campaign_id.clone();
    let campaign = state
        .runtime
        .read(move |engine| {
            engine.campaigns().campaign(&lookup).map(|c| {
                // The holds of its accounts: the money an analyst can still stop.
                let holds: Vec<_> = c
                    .accounts
                    .iter()
                    .flat_map(|m| engine.holds().of_account(&m.account_id))
                    .cloned()
                    .collect();
                let mut body = serde_json::to_value(c).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut body {
                    map.insert("holds".into(), json!(holds));
                }
                body
            })
        })
        .await
        .map_err(unavailable)?;
    if campaign.is_null() {
        return Err(campaign_not_found(&campaign_id));
    }
    Ok(Json(campaign).into_response())
}

fn campaign_not_found(campaign_id: &str) -> ApiError {
    ApiError::new(
        Code::CampaignNotFound,
        format!("no campaign with id {campaign_id:?}"),
    )
}

async fn settle_campaign(
    state: AppState,
    campaign_id: String,
    headers: HeaderMap,
    body: Body,
    action: AnalystActionKind,
) -> Result<Response, ApiError> {
    let body = action_body(&state, &headers, body).await?;
    let effect = settle_campaign_with(&state, &campaign_id, body, action).await?;
    Ok(Json(effect).into_response())
}

/// Confirms or dismisses a campaign as `body` says (the console's path
/// too); the effect's data.
pub(crate) async fn settle_campaign_with(
    state: &AppState,
    campaign_id: &str,
    body: ActionBody,
    action: AnalystActionKind,
) -> Result<Value, ApiError> {
    let lookup = campaign_id.to_string();
    // Recorded on the campaign's first account: every event has one.
    let found = state
        .runtime
        .read(move |engine| {
            engine.campaigns().campaign(&lookup).and_then(|c| {
                let first = c.accounts.first()?;
                Some((c.id.clone(), first.account_id.clone()))
            })
        })
        .await
        .map_err(unavailable)?;
    let (id, account_id): (String, String) =
        serde_json::from_value(found).map_err(|_| campaign_not_found(campaign_id))?;
    let effects = record_action(state, &account_id, action, Some(&id), body).await?;
    let wanted = if action == AnalystActionKind::ConfirmCampaign {
        EffectKind::CampaignConfirmed
    } else {
        EffectKind::CampaignDismissed
    };
    match effects.into_iter().find(|e| e.kind == wanted) {
        Some(effect) => Ok(effect.data),
        None => Err(ApiError::new(
            Code::CampaignUnchanged,
            format!("campaign {campaign_id:?} already has that status"),
        )),
    }
}

pub async fn confirm_campaign(
    State(state): State<AppState>,
    UrlPath(campaign_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    settle_campaign(
        state,
        campaign_id,
        headers,
        body,
        AnalystActionKind::ConfirmCampaign,
    )
    .await
}

pub async fn dismiss_campaign(
    State(state): State<AppState>,
    UrlPath(campaign_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    settle_campaign(
        state,
        campaign_id,
        headers,
        body,
        AnalystActionKind::DismissCampaign,
    )
    .await
}
