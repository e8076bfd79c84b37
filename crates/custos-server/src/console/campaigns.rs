//! The campaign page and its actions.
//!
//! The page shows what the engine holds about a campaign: its victims in
//! the order they joined with the money each lost (paid out since its
//! first risky change) and the money stopped (held), and, per institution
//! of its destinations, the destination changes of the burst window
//! against the institution's baseline as an inline SVG bar chart drawn on
//! the server (no script; coordinates are computed here, every text is
//! escaped by the template); and the graph of who used which shared
//! artefact (`graph`), with the same links as a table.
//!
//! Confirming a campaign is an analyst's action. Releasing every open
//! hold of a campaign, or dismissing it, touches many sellers' money at
//! once, so both always need a second person: an analyst's (or lead's)
//! request is recorded in `console.db`, and another person who may approve
//! (a lead) carries it out from `/console/approvals`. A release request
//! fixes the holds it covers when it is asked; approving it releases
//! those still held, each through the API's `analyst_action` path naming
//! both people, and never holds that arrived after the request.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use custos_config::Scope;
use custos_core::campaigns::{Campaign, CampaignLinks, CampaignMoney};
use custos_core::event::AnalystActionKind;
use custos_core::holds::HoldStatus;
use serde::{Deserialize, Serialize};

use super::db::{Approval, DISMISS_CAMPAIGN, RELEASE_CAMPAIGN};
use super::graph::{DRAWN_ACCOUNTS, Graph, graph};
use super::pages::{
    Nav, account_href, api_error_page, campaign_href, console_db, error_page, html, money, nav,
    reader, when, when_ms,
};
use super::{Person, audit, posted_act};
use crate::AppState;
use crate::analyst::ActionBody;
use crate::error::Code;

/// Chart size in SVG user units.
const CHART_WIDTH: f64 = 560.0;
const CHART_HEIGHT: f64 = 180.0;
/// Room under the bars for the day labels, and above for the counts.
const CHART_BOTTOM: f64 = 24.0;
const CHART_TOP: f64 = 18.0;
/// Institutions charted at most (the campaign lists up to its limit).
const MAX_CHARTS: usize = 6;

struct MemberRow {
    href: String,
    account_id: String,
    joined_at: String,
    via: String,
    cleared: bool,
    /// Paid out since its first risky change, per currency.
    stolen: String,
    /// Held since then, per currency.
    stopped: String,
    open_holds: usize,
}

struct DestinationRow {
    institution: String,
    last4: String,
    token: String,
}

struct Bar {
    x: String,
    width: String,
    /// The whole bar (all changes) and its risky part, from the bottom.
    y: String,
    height: String,
    risky_y: String,
    risky_height: String,
    label_x: String,
    count: u32,
    risky: u32,
    day: String,
}

struct Chart {
    institution: String,
    bars: Vec<Bar>,
    baseline_y: String,
    baseline: String,
    observed: u32,
    expected: String,
    score: String,
    bursting: bool,
}

struct PendingRow {
    id: i64,
    what: &'static str,
    requested_by: String,
    requested_at: String,
    reason: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    href: String,
    can_act: bool,
    /// May download the campaign's evidence pack.
    can_export: bool,
    id: String,
    status: String,
    detected_at: String,
    institutions: String,
    money: Vec<String>,
    members: Vec<MemberRow>,
    more_members: u32,
    destinations: Vec<DestinationRow>,
    charts: Vec<Chart>,
    open_holds: usize,
    open_total: String,
    pending: Vec<PendingRow>,
    chart_width: f64,
    chart_height: f64,
    chart_axis_y: String,
    graph: Graph,
}

/// An institution's burst window as the engine counts it.
#[derive(Serialize, Deserialize)]
struct ChartRead {
    institution: String,
    days: Vec<(i64, u32, u32)>,
    baseline_daily: f64,
    observed: u32,
    expected: f64,
    score: f64,
    bursting: bool,
}

/// What the page needs of an open hold: the engine thread serializes
/// every one of a thousand members' holds, so only this.
#[derive(Serialize, Deserialize)]
struct OpenHold {
    account_id: String,
    hold_id: String,
    amount: u64,
    currency: String,
}

#[derive(Serialize, Deserialize)]
struct CampaignRead {
    campaign: Campaign,
    /// The open holds of its listed members.
    holds: Vec<OpenHold>,
    /// Per listed member: money since its first risky change.
    money: Vec<(String, BTreeMap<String, CampaignMoney>)>,
    charts: Vec<ChartRead>,
    /// Who used which shared artefact, for the graph.
    links: Option<CampaignLinks>,
}

async fn read_campaign(state: &AppState, campaign_id: &str) -> Result<Option<CampaignRead>, ()> {
    let lookup = campaign_id.to_string();
    let value = state
        .runtime
        .read(move |engine| {
            let campaigns = engine.campaigns();
            let c = campaigns.campaign(&lookup)?;
            Some(CampaignRead {
                holds: c
                    .accounts
                    .iter()
                    .flat_map(|m| engine.holds().of_account(&m.account_id))
                    .filter(|h| h.status == HoldStatus::Held)
                    .map(|h| OpenHold {
                        account_id: h.account_id.clone(),
                        hold_id: h.hold_id.clone(),
                        amount: h.amount,
                        currency: h.currency.to_string(),
                    })
                    .collect(),
                money: c
                    .accounts
                    .iter()
                    .map(|m| {
                        let money = campaigns
                            .account_money(&m.account_id)
                            .map(|per| {
                                per.iter()
                                    .map(|(currency, m)| (currency.to_string(), *m))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (m.account_id.clone(), money)
                    })
                    .collect(),
                charts: c
                    .institutions
                    .iter()
                    .take(MAX_CHARTS)
                    .filter_map(|institution| {
                        let days = campaigns.institution_days(institution)?;
                        Some(ChartRead {
                            institution: institution.clone(),
                            days: days.days,
                            baseline_daily: days.baseline_daily,
                            observed: days.burst.observed,
                            expected: days.burst.expected,
                            score: days.burst.score,
                            bursting: days.burst.bursting,
                        })
                    })
                    .collect(),
                links: engine.campaign_links(&lookup, DRAWN_ACCOUNTS),
                campaign: c.clone(),
            })
        })
        .await
        .map_err(|_| ())?;
    serde_json::from_value(value).map_err(|_| ())
}

/// Amounts per currency as `12.00 GBP + 3.00 EUR`, or `none`.
fn amounts(per: &BTreeMap<String, u64>) -> String {
    let shown: Vec<String> = per
        .iter()
        .filter(|(_, a)| **a > 0)
        .map(|(c, a)| money(*a, c))
        .collect();
    if shown.is_empty() {
        "none".into()
    } else {
        shown.join(" + ")
    }
}

fn open_holds(read: &CampaignRead) -> Vec<&OpenHold> {
    read.holds.iter().collect()
}

fn total_of(holds: &[&OpenHold]) -> String {
    let mut per: BTreeMap<String, u64> = BTreeMap::new();
    for h in holds {
        let total = per.entry(h.currency.clone()).or_default();
        *total = total.saturating_add(h.amount);
    }
    amounts(&per)
}

/// A day number since the epoch as `05-21`.
fn day_label(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
        .map(|t| format!("{:02}-{:02}", u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// The bars of one chart: one per day, scaled so that the tallest bar or
/// the baseline (whichever is higher) fills the plot.
fn chart(read: ChartRead) -> Chart {
    let plot = CHART_HEIGHT - CHART_BOTTOM - CHART_TOP;
    let bottom = CHART_HEIGHT - CHART_BOTTOM;
    let top = read
        .days
        .iter()
        .map(|d| f64::from(d.1))
        .fold(read.baseline_daily, f64::max)
        .max(1.0);
    let scale = |v: f64| v / top * plot;
    let slots = read.days.len().max(1) as f64;
    let slot = CHART_WIDTH / slots;
    let width = (slot * 0.7).max(1.0);
    let bars = read
        .days
        .iter()
        .enumerate()
        .map(|(i, &(day, count, risky))| {
            let x = i as f64 * slot + (slot - width) / 2.0;
            let height = scale(f64::from(count));
            let risky_height = scale(f64::from(risky));
            Bar {
                x: format!("{x:.1}"),
                width: format!("{width:.1}"),
                y: format!("{:.1}", bottom - height),
                height: format!("{height:.1}"),
                risky_y: format!("{:.1}", bottom - risky_height),
                risky_height: format!("{risky_height:.1}"),
                label_x: format!("{:.1}", x + width / 2.0),
                count,
                risky,
                day: day_label(day),
            }
        })
        .collect();
    Chart {
        institution: read.institution,
        bars,
        baseline_y: format!("{:.1}", bottom - scale(read.baseline_daily)),
        baseline: format!("{:.2}", read.baseline_daily),
        observed: read.observed,
        expected: format!("{:.1}", read.expected),
        score: format!("{:.1}", read.score),
        bursting: read.bursting,
    }
}

pub async fn campaign(
    State(state): State<AppState>,
    Path(campaign_id): Path<String>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    campaign_page(&state, &person, &campaign_id, None).await
}

async fn found(
    state: &AppState,
    person: &Person,
    campaign_id: &str,
) -> Result<CampaignRead, Response> {
    match read_campaign(state, campaign_id).await {
        Ok(Some(read)) => Ok(read),
        Ok(None) => Err(error_page(
            Some(person),
            StatusCode::NOT_FOUND,
            "there is no such campaign",
        )),
        Err(()) => Err(error_page(
            Some(person),
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine did not answer",
        )),
    }
}

fn what_of(kind: &str) -> &'static str {
    match kind {
        RELEASE_CAMPAIGN => "release every open hold",
        DISMISS_CAMPAIGN => "dismiss the campaign",
        _ => "release a hold",
    }
}

async fn campaign_page(
    state: &AppState,
    person: &Person,
    campaign_id: &str,
    notice: Option<String>,
) -> Response {
    let read = match found(state, person, campaign_id).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    let lookup = read.campaign.id.clone();
    let pending = console_db(state, move |db| db.pending_for_campaign(&lookup))
        .await
        .unwrap_or_default();
    let open = open_holds(&read);
    let open_total = total_of(&open);
    let open_count = open.len();
    let c = &read.campaign;
    // A thousand members: look their money and holds up, do not scan the
    // lists once per member.
    let money_of: HashMap<&str, &BTreeMap<String, CampaignMoney>> = read
        .money
        .iter()
        .map(|(a, per)| (a.as_str(), per))
        .collect();
    let mut open_of: HashMap<&str, usize> = HashMap::new();
    for h in &open {
        *open_of.entry(h.account_id.as_str()).or_default() += 1;
    }
    let mut members: Vec<MemberRow> = c
        .accounts
        .iter()
        .map(|m| {
            let per = money_of.get(m.account_id.as_str());
            let stolen = per
                .into_iter()
                .flat_map(|per| per.iter())
                .map(|(c, m)| (c.clone(), m.paid))
                .collect();
            let stopped = per
                .into_iter()
                .flat_map(|per| per.iter())
                .map(|(c, m)| (c.clone(), m.held))
                .collect();
            MemberRow {
                href: account_href(&m.account_id),
                account_id: m.account_id.clone(),
                joined_at: when(m.joined_at.0),
                via: m
                    .via
                    .iter()
                    .filter_map(|v| serde_json::to_value(v).ok())
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                cleared: m.cleared,
                stolen: amounts(&stolen),
                stopped: amounts(&stopped),
                open_holds: open_of.get(m.account_id.as_str()).copied().unwrap_or(0),
            }
        })
        .collect();
    // Stable: members who joined at the same second keep the engine's order.
    members.sort_by(|a, b| a.joined_at.cmp(&b.joined_at));
    let page = CampaignPage {
        nav: nav(person),
        notice,
        csrf: person.session.csrf.clone(),
        href: campaign_href(&c.id),
        can_act: person.may(Scope::HoldsWrite),
        can_export: person.may(crate::evidence::EXPORT_SCOPE),
        status: c.status.as_str().to_string(),
        detected_at: when(c.detected_at.0),
        institutions: c.institutions.join(", "),
        money: c
            .money
            .iter()
            .map(|(currency, m)| {
                format!(
                    "held {}, paid {}",
                    money(m.held, currency.as_str()),
                    money(m.paid, currency.as_str())
                )
            })
            .collect(),
        members,
        more_members: c.more_accounts,
        destinations: c
            .destinations
            .iter()
            .map(|d| DestinationRow {
                institution: d.institution_id.clone(),
                last4: d.account_last4.clone().unwrap_or_default(),
                token: d.account_token.chars().take(12).collect(),
            })
            .collect(),
        charts: read.charts.into_iter().map(chart).collect(),
        open_holds: open_count,
        open_total,
        pending: pending
            .into_iter()
            .map(|a| PendingRow {
                id: a.id,
                what: what_of(&a.kind),
                requested_by: a.requested_by,
                requested_at: when_ms(a.requested_ms),
                reason: a.reason,
                summary: a.summary,
            })
            .collect(),
        chart_width: CHART_WIDTH,
        chart_height: CHART_HEIGHT,
        chart_axis_y: format!("{:.1}", CHART_HEIGHT - CHART_BOTTOM),
        graph: graph(read.links.as_ref().unwrap_or(&CampaignLinks {
            campaign_id: c.id.clone(),
            accounts: Vec::new(),
            more_accounts: c.account_count(),
            artefacts: Vec::new(),
        })),
        id: c.id.clone(),
    };
    html(StatusCode::OK, &page)
}

/// Confirms a campaign: its victims' holds then wait for an analyst, its
/// destinations count as fraud's (`docs/holds.md`).
pub async fn confirm_campaign(
    State(state): State<AppState>,
    Path(campaign_id): Path<String>,
    request: Request,
) -> Response {
    let (person, reason) =
        match posted_act(&state, request, Scope::HoldsWrite, "confirming a campaign").await {
            Ok(posted) => posted,
            Err(r) => return r,
        };
    let settled = crate::analyst::settle_campaign_with(
        &state,
        &campaign_id,
        ActionBody {
            analyst: Some(person.name().to_string()),
            reason: Some(reason.clone()),
            action_id: None,
            account_id: None,
        },
        AnalystActionKind::ConfirmCampaign,
    )
    .await;
    match settled {
        Ok(_) => {
            audit(
                &state,
                person.name(),
                &person.address,
                "campaign_confirmed",
                &format!("campaign {campaign_id}"),
                &reason,
            )
            .await;
            campaign_page(&state, &person, &campaign_id, Some("confirmed".into())).await
        }
        Err(e) => api_error_page(&person, e),
    }
}

/// A campaign request by `person`, recorded and audited; the campaign
/// page saying so.
async fn request_for(
    state: &AppState,
    person: &Person,
    read: &CampaignRead,
    kind: &'static str,
    reason: String,
    summary: String,
    holds: Vec<(String, String)>,
) -> Response {
    let campaign_id = read.campaign.id.clone();
    let request = Approval {
        id: 0,
        kind: kind.into(),
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
        campaign_id: campaign_id.clone(),
        summary: summary.clone(),
        payload: String::new(),
        base_version: 0,
        outcome: String::new(),
    };
    let id = match console_db(state, move |db| db.request_approval_of(&request, &holds)).await {
        Ok(id) => id,
        Err(e) => return error_page(Some(person), StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let action = if kind == RELEASE_CAMPAIGN {
        "campaign_release_requested"
    } else {
        "campaign_dismiss_requested"
    };
    audit(
        state,
        person.name(),
        &person.address,
        action,
        &format!("campaign {campaign_id}"),
        &format!("request {id}: {reason} ({summary})"),
    )
    .await;
    let notice = format!(
        "request {id} to {} waits for a lead's approval",
        what_of(kind)
    );
    campaign_page(state, person, &campaign_id, Some(notice)).await
}

/// Asks for every open hold of the campaign to be released.
pub async fn request_release_all(
    State(state): State<AppState>,
    Path(campaign_id): Path<String>,
    request: Request,
) -> Response {
    let (person, reason) = match posted_act(
        &state,
        request,
        Scope::HoldsWrite,
        "releasing a campaign's holds",
    )
    .await
    {
        Ok(posted) => posted,
        Err(r) => return r,
    };
    let read = match found(&state, &person, &campaign_id).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    let open = open_holds(&read);
    if open.is_empty() {
        return error_page(
            Some(&person),
            StatusCode::CONFLICT,
            "the campaign has no open hold to release",
        );
    }
    let summary = format!("{} open holds, {}", open.len(), total_of(&open));
    let holds = open
        .iter()
        .map(|h| (h.account_id.clone(), h.hold_id.clone()))
        .collect();
    request_for(
        &state,
        &person,
        &read,
        RELEASE_CAMPAIGN,
        reason,
        summary,
        holds,
    )
    .await
}

/// Asks for the campaign to be dismissed.
pub async fn request_dismiss(
    State(state): State<AppState>,
    Path(campaign_id): Path<String>,
    request: Request,
) -> Response {
    let (person, reason) =
        match posted_act(&state, request, Scope::HoldsWrite, "dismissing a campaign").await {
            Ok(posted) => posted,
            Err(r) => return r,
        };
    let read = match found(&state, &person, &campaign_id).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    if read.campaign.status.as_str() == "dismissed" {
        return error_page(
            Some(&person),
            StatusCode::CONFLICT,
            "the campaign is dismissed already",
        );
    }
    let summary = format!(
        "{} members, status {}",
        read.campaign.account_count(),
        read.campaign.status.as_str()
    );
    request_for(
        &state,
        &person,
        &read,
        DISMISS_CAMPAIGN,
        reason,
        summary,
        Vec::new(),
    )
    .await
}

/// Carries out an approved campaign request (decided already, so at most
/// once); the notice for the approvals page, or the error page.
pub(super) async fn carry_out(
    state: &AppState,
    person: &Person,
    approval: &Approval,
    reason: &str,
) -> Result<String, Response> {
    let analyst = format!("{}, approved by {}", approval.requested_by, person.name());
    let why = format!("{} (approved: {reason})", approval.reason);
    let target = format!("campaign {}", approval.campaign_id);
    if approval.kind == DISMISS_CAMPAIGN {
        let settled = crate::analyst::settle_campaign_with(
            state,
            &approval.campaign_id,
            ActionBody {
                analyst: Some(analyst),
                reason: Some(why),
                action_id: None,
                account_id: None,
            },
            AnalystActionKind::DismissCampaign,
        )
        .await;
        return match settled {
            Ok(_) => {
                audit(
                    state,
                    person.name(),
                    &person.address,
                    "campaign_dismiss_approved",
                    &target,
                    &format!(
                        "request {} by {}: {reason}",
                        approval.id, approval.requested_by
                    ),
                )
                .await;
                Ok(format!(
                    "request {} approved; campaign {} is dismissed",
                    approval.id, approval.campaign_id
                ))
            }
            Err(e) => {
                audit(
                    state,
                    person.name(),
                    &person.address,
                    "campaign_dismiss_approved_failed",
                    &target,
                    &e.message,
                )
                .await;
                Err(api_error_page(person, e))
            }
        };
    }
    let id = approval.id;
    let holds = console_db(state, move |db| db.approval_holds(id))
        .await
        .map_err(|e| error_page(Some(person), StatusCode::SERVICE_UNAVAILABLE, &e))?;
    let (mut released, mut not_held, mut failed) = (0usize, 0usize, 0usize);
    for (account_id, hold_id) in &holds {
        let closed = crate::analyst::close_hold_with(
            state,
            hold_id,
            ActionBody {
                analyst: Some(analyst.clone()),
                reason: Some(why.clone()),
                action_id: None,
                account_id: Some(account_id.clone()),
            },
            AnalystActionKind::ReleasePayout,
        )
        .await;
        let hold = format!("hold {account_id}/{hold_id}");
        let (action, detail) = match closed {
            Ok(_) => {
                released += 1;
                (
                    "release",
                    format!("campaign request {id} by {}", approval.requested_by),
                )
            }
            // Released, cancelled or gone since the request: nothing to do.
            Err(e) if matches!(e.code, Code::HoldNotOpen | Code::HoldNotFound) => {
                not_held += 1;
                (
                    "release_skipped",
                    format!("campaign request {id}: {}", e.message),
                )
            }
            // The request is decided: a hold that could not be released
            // now needs a request of its own, so the trail says which.
            Err(e) => {
                failed += 1;
                (
                    "release_failed",
                    format!("campaign request {id}: {}", e.message),
                )
            }
        };
        audit(
            state,
            person.name(),
            &person.address,
            action,
            &hold,
            &detail,
        )
        .await;
    }
    audit(
        state,
        person.name(),
        &person.address,
        "campaign_release_approved",
        &target,
        &format!(
            "request {id} by {}: {reason}; released {released} of {} holds",
            approval.requested_by,
            holds.len()
        ),
    )
    .await;
    let mut notice = format!(
        "request {id} approved; {released} of {} holds released",
        holds.len()
    );
    if not_held > 0 {
        notice.push_str(&format!(" ({not_held} no longer held)"));
    }
    if failed > 0 {
        notice.push_str(&format!(
            "; {failed} could not be released now (see the audit trail) and need a new request"
        ));
    }
    Ok(notice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_tallest_day_or_the_baseline() {
        let c = chart(ChartRead {
            institution: "23-69-72".into(),
            days: vec![(17_652, 1, 0), (17_653, 4, 2)],
            baseline_daily: 0.5,
            observed: 5,
            expected: 3.5,
            score: 2.0,
            bursting: false,
        });
        let bottom = CHART_HEIGHT - CHART_BOTTOM;
        let plot = bottom - CHART_TOP;
        assert_eq!(c.bars.len(), 2);
        // The tallest bar fills the plot; the risky half of it is half as tall.
        assert_eq!(c.bars[1].height, format!("{plot:.1}"));
        assert_eq!(c.bars[1].risky_height, format!("{:.1}", plot / 2.0));
        assert_eq!(c.bars[0].height, format!("{:.1}", plot / 4.0));
        assert_eq!(c.baseline_y, format!("{:.1}", bottom - plot / 8.0));
        assert_eq!(c.bars[1].day, "05-02");
        // A baseline above every day sets the scale instead.
        let quiet = chart(ChartRead {
            institution: "x".into(),
            days: vec![(0, 1, 0)],
            baseline_daily: 2.0,
            observed: 1,
            expected: 14.0,
            score: 0.0,
            bursting: false,
        });
        assert_eq!(quiet.baseline_y, format!("{CHART_TOP:.1}"));
    }
}
