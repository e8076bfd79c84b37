//! The console's pages and form handlers.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custos_config::Scope;
use custos_core::cases::CaseStatus;
use custos_core::event::AnalystActionKind;
use custos_core::holds::{Hold, HoldStatus};
use serde::Deserialize;
use serde_json::Value;

use super::db::{
    Approval, AuditEntry, DISMISS_CAMPAIGN, RELEASE_CAMPAIGN, RELEASE_PAYOUT, RULES_CHANGE,
};
use super::{LOGIN_COOKIE, Person, SESSION_COOKIE, audit, cookie, person, posted, posted_act};
use crate::AppState;
use crate::analyst::ActionBody;
use crate::error::ApiError;

/// Open holds listed on one queue page at most.
const QUEUE_ROWS: usize = 200;
/// Events per page of an account's timeline.
const TIMELINE_PAGE: usize = 50;
/// Audit entries per page.
const AUDIT_PAGE: usize = 100;

/// The header of every page for a logged-in person.
pub struct Nav {
    pub user: String,
    pub role: String,
    pub csrf: String,
    pub admin: bool,
}

pub(super) fn nav(person: &Person) -> Option<Nav> {
    Some(Nav {
        user: person.name().to_string(),
        role: person.session.role.to_string(),
        csrf: person.session.csrf.clone(),
        admin: person.may(Scope::Admin),
    })
}

pub(super) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Option<Nav>,
    status: String,
    message: &'a str,
}

pub(crate) fn error_page(person: Option<&Person>, status: StatusCode, message: &str) -> Response {
    html(
        status,
        &ErrorPage {
            nav: person.and_then(nav),
            status: status.to_string(),
            message,
        },
    )
}

/// An API error (from the shared analyst path) as a page.
pub(super) fn api_error_page(person: &Person, e: ApiError) -> Response {
    error_page(Some(person), e.status(), &e.message)
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

/// The person, or a redirect to the login page.
pub(super) async fn reader(state: &AppState, request: &Parts) -> Result<Person, Response> {
    let person = person(state, &request.headers, &request.extensions)
        .await
        .ok_or_else(to_login)?;
    person.authorize(Scope::Read, "the console")?;
    Ok(person)
}

pub async fn not_found(State(state): State<AppState>, request: Request) -> Response {
    let person = person(&state, request.headers(), request.extensions()).await;
    error_page(
        person.as_ref(),
        StatusCode::NOT_FOUND,
        "there is no such page",
    )
}

pub async fn home() -> Response {
    Redirect::to("/console/queue").into_response()
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    nav: Option<Nav>,
    csrf: &'a str,
    error: Option<&'a str>,
}

fn cookie_header(state: &AppState, name: &str, value: &str, max_age: Option<u32>) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if state.console.config.secure_cookie {
        text.push_str("; Secure");
    }
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn login_form(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let Ok(csrf) = super::session::random_token() else {
        return error_page(
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "no randomness available",
        );
    };
    let mut response = html(
        status,
        &LoginPage {
            nav: None,
            csrf: &csrf,
            error,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(state, LOGIN_COOKIE, &csrf, None),
    );
    response
}

pub async fn login_page(State(state): State<AppState>, request: Request) -> Response {
    if person(&state, request.headers(), request.extensions())
        .await
        .is_some()
    {
        return Redirect::to("/console/queue").into_response();
    }
    login_form(&state, StatusCode::OK, None)
}

pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let address = super::address_of(&parts.extensions);
    let form = match super::read_form(&state, &parts.headers, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    // The login form's token, against the cookie set with the form: a
    // page elsewhere cannot log a browser into an account of its choosing.
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    let presented = form.get("csrf").map(String::as_str).unwrap_or_default();
    if expected.is_empty()
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            presented.as_bytes(),
        ))
    {
        return error_page(
            None,
            StatusCode::FORBIDDEN,
            "the login form's security token is missing or out of date; reload the login page",
        );
    }
    let typed = form.get("name").map(|n| n.trim()).unwrap_or_default();
    // A valid name has at most 64 bytes: a longer one logs nobody in, and
    // is cut so that the failure counts and the audit trail stay small.
    let too_long = typed.len() > 64;
    let name: String = typed.chars().take(64).collect();
    let password = form.get("password").cloned().unwrap_or_default();
    let console = state.console.clone();
    if !console.limiter.allows(&name, &address) {
        audit(
            &state,
            &name,
            &address,
            "login_throttled",
            &name,
            "too many failed logins",
        )
        .await;
        return login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some("too many failed logins for this name or from this address; wait and try again"),
        );
    }
    let db = console.db.clone();
    let lookup = name.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let user = if too_long {
            None
        } else {
            db.user(&lookup).ok().flatten()
        };
        let valid = super::session::verify_password(
            &password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        );
        user.filter(|u| valid && !u.disabled)
    })
    .await
    .ok()
    .flatten();
    let Some(user) = checked else {
        console.limiter.failed(&name, &address);
        audit(&state, &name, &address, "login_failed", &name, "").await;
        return login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("wrong name or password, or the user is disabled"),
        );
    };
    console.limiter.succeeded(&name);
    let Ok(token) = console
        .sessions
        .open(&user.name, user.role, user.generation)
    else {
        return error_page(
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "no randomness available",
        );
    };
    audit(
        &state,
        &user.name,
        &address,
        "login",
        &user.name,
        user.role.as_str(),
    )
    .await;
    let mut response = Redirect::to("/console/queue").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie_header(&state, SESSION_COOKIE, &token, None),
    );
    headers.append(
        header::SET_COOKIE,
        cookie_header(&state, LOGIN_COOKIE, "", Some(0)),
    );
    response
}

pub async fn logout(State(state): State<AppState>, request: Request) -> Response {
    let token = cookie(request.headers(), SESSION_COOKIE).map(str::to_string);
    let (person, _) = match posted(&state, request).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    if let Some(token) = token {
        state.console.sessions.close(&token);
    }
    audit(
        &state,
        person.name(),
        &person.address,
        "logout",
        person.name(),
        "",
    )
    .await;
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(&state, SESSION_COOKIE, "", Some(0)),
    );
    response
}

// ---------------------------------------------------------------- formatting

/// An amount in minor units as `1,234.56 GBP`.
pub fn money(amount: u64, currency: &str) -> String {
    let major = amount / 100;
    let minor = amount % 100;
    let digits = major.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped}.{minor:02} {currency}")
}

/// Seconds since the epoch as `2018-05-01 12:00:00`.
pub fn when(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

pub(super) fn when_ms(ms: i64) -> String {
    when(ms.div_euclid(1000))
}

/// What remains of a cool-off, in words.
pub fn time_left(expires_at: i64, now: i64) -> String {
    let left = expires_at - now;
    if left <= 0 {
        return "cool-off ended".into();
    }
    let (days, hours, minutes) = (left / 86_400, left % 86_400 / 3600, left % 3600 / 60);
    if days > 0 {
        format!("{days}d {hours}h left")
    } else if hours > 0 {
        format!("{hours}h {minutes}m left")
    } else {
        format!("{}m left", minutes.max(1))
    }
}

/// A rule that fired, in words.
pub struct Why {
    pub code: String,
    pub message: String,
    /// What it saw, `path = value, ...`.
    pub saw: String,
}

/// A stored decision's JSON, `Null` when absent or unreadable.
fn parsed(decision_json: Option<&str>) -> Value {
    decision_json
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

/// The reasons of a stored decision that asked for the hold (`codes`);
/// the codes alone when the decision cannot be read.
fn why_of(decision: &Value, codes: &[String]) -> Vec<Why> {
    let reasons = decision
        .get("reasons")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Why> = reasons
        .iter()
        .filter(|r| {
            r.get("code")
                .and_then(Value::as_str)
                .is_some_and(|c| codes.iter().any(|k| k == c))
        })
        .map(|r| Why {
            code: r
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            message: r
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            saw: r
                .get("saw")
                .and_then(Value::as_object)
                .map(|saw| {
                    saw.iter()
                        .map(|(k, v)| format!("{k} = {}", super::why::saw_value(k, v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        })
        .collect();
    if out.is_empty() {
        out = codes
            .iter()
            .map(|c| Why {
                code: c.clone(),
                message: c.replace('_', " "),
                saw: String::new(),
            })
            .collect();
    }
    out
}

/// URL path segment, percent-encoded.
pub(super) fn seg(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub(super) fn hold_href(account_id: &str, hold_id: &str) -> String {
    format!("/console/holds/{}/{}", seg(account_id), seg(hold_id))
}

pub(super) fn account_href(account_id: &str) -> String {
    format!("/console/accounts/{}", seg(account_id))
}

pub(super) fn case_href(case_id: &str) -> String {
    format!("/console/cases/{}", seg(case_id))
}

pub(super) fn campaign_href(campaign_id: &str) -> String {
    format!("/console/campaigns/{}", seg(campaign_id))
}

/// The engine's time: holds expire against the newest event time.
pub(super) fn engine_now(engine: &custos_core::Engine) -> i64 {
    let now = engine.clock().now();
    if now == i64::MIN {
        time::OffsetDateTime::now_utc().unix_timestamp()
    } else {
        now
    }
}

/// Decisions of stored events by event id (what the rules saw).
async fn decisions(state: &AppState, event_ids: Vec<String>) -> HashMap<String, String> {
    let store = state.runtime.store().clone();
    tokio::task::spawn_blocking(move || {
        event_ids
            .into_iter()
            .filter_map(|id| {
                let record = store.get_event(&id).ok().flatten()?;
                Some((id, record.decision_json))
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Runs `f` on the console database off the async threads; the error as
/// text for a page.
pub(super) async fn console_db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&super::db::ConsoleDb) -> Result<T, super::db::ConsoleDbError> + Send + 'static,
) -> Result<T, String> {
    let db = state.console.db.clone();
    match tokio::task::spawn_blocking(move || f(&db)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

// ---------------------------------------------------------------- queue

#[derive(Deserialize, Default)]
pub struct QueueFilter {
    #[serde(default)]
    campaign: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    min_amount: String,
    /// A user name, `me`, or `none`.
    #[serde(default)]
    assignee: String,
    /// The destination's institution id.
    #[serde(default)]
    institution: String,
    /// Held at least this many hours ago (by the engine's clock).
    #[serde(default)]
    older_than_hours: String,
}

struct QueueRow {
    href: String,
    account_href: String,
    campaign_href: String,
    amount: String,
    account_id: String,
    hold_id: String,
    kind: String,
    /// The reasons in one line of plain words; empty when the facts say
    /// nothing.
    summary: String,
    why: Vec<Why>,
    left: String,
    campaign: Option<String>,
    /// The case the hold opened in, and its page.
    case: Option<(String, String)>,
    pending: usize,
    assignee: Option<String>,
    institution: String,
    age: String,
    /// What else the account could lose, as far as the engine knows.
    exposure: String,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    nav: Option<Nav>,
    count: usize,
    total: String,
    open_total: usize,
    filter: QueueFilter,
    rules: Vec<String>,
    institutions: Vec<String>,
    rows: Vec<QueueRow>,
}

#[derive(serde::Serialize, Deserialize)]
struct OpenHold {
    hold: Hold,
    campaign: Option<String>,
    /// The case the hold opened in (or was merged into).
    #[serde(default)]
    case: Option<String>,
    /// The account's money in the hold's currency, if the engine counted any.
    #[serde(default)]
    money: Option<custos_core::state::Money>,
    /// The session that set the bank account the hold would pay.
    #[serde(default)]
    change_session: Option<super::why::ChangeSession>,
}

/// The institution a hold's money would go to.
fn institution_of(hold: &Hold) -> &str {
    hold.destination
        .as_ref()
        .map_or("", |d| d.institution_id.as_str())
}

/// A duration in whole hours as `3d 4h` or `5h`.
fn age_of(secs: i64) -> String {
    let hours = secs.max(0) / 3600;
    if hours >= 24 {
        format!("{}d {}h", hours / 24, hours % 24)
    } else {
        format!("{hours}h")
    }
}

/// What more the account stands to lose, in words: the sales balance the
/// next payout would send and the loans disbursed to it. Custos hears of
/// no repayments, so open loans are not known; it says so.
fn exposure_of(counted: Option<&custos_core::state::Money>, currency: &str) -> String {
    match counted {
        None => "balance and loans not known (no sales or loans seen)".into(),
        Some(m) => {
            let balance = m.balance();
            let balance = if balance >= 0 {
                format!(
                    "next payout would send up to {} (sales balance)",
                    money(u64::try_from(balance).unwrap_or(u64::MAX), currency)
                )
            } else {
                format!(
                    "no sales balance left ({} more paid out than sales seen)",
                    money(u64::try_from(-balance).unwrap_or(u64::MAX), currency)
                )
            };
            let loans = if m.loans_disbursed > 0 {
                format!(
                    "loans disbursed {} (repayments not known)",
                    money(m.loans_disbursed, currency)
                )
            } else {
                "no loans seen".into()
            };
            format!("{balance}; {loans}")
        }
    }
}

#[derive(serde::Serialize, Deserialize)]
struct QueueRead {
    now: i64,
    holds: Vec<OpenHold>,
    rules: Vec<String>,
}

/// An amount typed in major units (`1500`, `1500.50`) as minor units.
fn parse_amount(text: &str) -> Option<u64> {
    let text = text.trim().replace(',', "");
    if text.is_empty() {
        return None;
    }
    let (major, minor) = text.split_once('.').unwrap_or((&text, "0"));
    let major: u64 = major.parse().ok()?;
    let minor: u64 = match minor.len() {
        0 => 0,
        1 => minor.parse::<u64>().ok()? * 10,
        2 => minor.parse().ok()?,
        _ => return None,
    };
    major.checked_mul(100)?.checked_add(minor)
}

pub async fn queue(
    State(state): State<AppState>,
    Query(filter): Query<QueueFilter>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let min_amount = match filter.min_amount.trim() {
        "" => 0,
        text => match parse_amount(text) {
            Some(a) => a,
            None => {
                return error_page(
                    Some(&person),
                    StatusCode::BAD_REQUEST,
                    "at least (amount): write a number such as 1500 or 1500.50",
                );
            }
        },
    };
    let older_than = match filter.older_than_hours.trim() {
        "" => None,
        text => match text.parse::<u32>() {
            Ok(hours) => Some(i64::from(hours) * 3600),
            Err(_) => {
                return error_page(
                    Some(&person),
                    StatusCode::BAD_REQUEST,
                    "older than (hours): write a whole number of hours such as 24",
                );
            }
        },
    };
    let read = state
        .runtime
        .read(|engine| {
            let open = engine.holds().open();
            let keys: Vec<(&str, &str)> = open
                .iter()
                .map(|h| (h.account_id.as_str(), h.hold_id.as_str()))
                .collect();
            let cases = engine.cases().cases_of_holds(&keys);
            let holds = open
                .into_iter()
                .zip(cases)
                .map(|(h, case)| OpenHold {
                    money: engine
                        .account(&h.account_id)
                        .and_then(|a| a.money.get(&h.currency))
                        .cloned(),
                    change_session: engine
                        .account(&h.account_id)
                        .and_then(|a| super::why::change_session_of(a, h)),
                    campaign: engine
                        .campaigns()
                        .account_in_live_campaign(&h.account_id)
                        .map(|c| c.id.clone()),
                    case: case.map(|c| c.id.clone()),
                    hold: h.clone(),
                })
                .collect();
            QueueRead {
                now: engine_now(engine),
                holds,
                rules: engine
                    .rules()
                    .source()
                    .rules
                    .iter()
                    .map(|r| r.id.clone())
                    .collect(),
            }
        })
        .await;
    let read: QueueRead = match read.map(serde_json::from_value) {
        Ok(Ok(read)) => read,
        _ => {
            return error_page(
                Some(&person),
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine did not answer; try again",
            );
        }
    };
    let open_total = read.holds.len();
    let institutions: Vec<String> = read
        .holds
        .iter()
        .map(|h| institution_of(&h.hold).to_string())
        .filter(|i| !i.is_empty())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let institution = filter.institution.trim();
    let now = read.now;
    let mut holds: Vec<OpenHold> = read
        .holds
        .into_iter()
        .filter(|h| h.hold.amount >= min_amount)
        .filter(|h| {
            filter.campaign.trim().is_empty()
                || h.campaign.as_deref() == Some(filter.campaign.trim())
        })
        .filter(|h| filter.rule.is_empty() || h.hold.reasons.contains(&filter.rule))
        .filter(|h| institution.is_empty() || institution_of(&h.hold) == institution)
        .filter(|h| older_than.is_none_or(|age| now - h.hold.held_at.0 >= age))
        .collect();
    // The most money first; the hold that expires first among equals.
    holds.sort_by(|a, b| {
        b.hold
            .amount
            .cmp(&a.hold.amount)
            .then(a.hold.expires_at.0.cmp(&b.hold.expires_at.0))
    });
    let assignees = console_db(&state, |db| db.assignees())
        .await
        .unwrap_or_default();
    let assignee_of = |h: &Hold| {
        assignees
            .get(&(h.account_id.clone(), h.hold_id.clone()))
            .cloned()
    };
    let wanted = match filter.assignee.trim() {
        "" => None,
        "me" => Some(Some(person.name().to_string())),
        "none" => Some(None),
        name => Some(Some(name.to_string())),
    };
    if let Some(wanted) = &wanted {
        holds.retain(|h| assignee_of(&h.hold) == *wanted);
    }
    let count = holds.len();
    let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
    for h in &holds {
        let total = totals.entry(h.hold.currency.to_string()).or_default();
        *total = total.saturating_add(h.hold.amount);
    }
    holds.truncate(QUEUE_ROWS);
    let found = decisions(
        &state,
        holds.iter().map(|h| h.hold.event_id.clone()).collect(),
    )
    .await;
    // Holds with a pending release: their own request, or their campaign's.
    let pending: std::collections::HashSet<(String, String)> = console_db(&state, |db| {
        let mut holds: Vec<(String, String)> = db
            .pending()?
            .into_iter()
            .map(|a| (a.account_id, a.hold_id))
            .collect();
        holds.extend(db.pending_campaign_holds()?);
        Ok(holds)
    })
    .await
    .unwrap_or_default()
    .into_iter()
    .collect();
    let rows = holds
        .into_iter()
        .map(
            |OpenHold {
                 hold,
                 campaign,
                 case,
                 money: counted,
                 change_session,
             }| {
                let decision = parsed(found.get(&hold.event_id).map(String::as_str));
                QueueRow {
                    summary: super::why::summary(
                        &super::why::facts_of(&decision),
                        campaign.as_deref(),
                        change_session.as_ref(),
                    ),
                    case: case.map(|c| (case_href(&c), c)),
                    institution: institution_of(&hold).to_string(),
                    age: age_of(now - hold.held_at.0),
                    exposure: exposure_of(counted.as_ref(), hold.currency.as_str()),
                    assignee: assignee_of(&hold),
                    href: hold_href(&hold.account_id, &hold.hold_id),
                    account_href: account_href(&hold.account_id),
                    campaign_href: campaign.as_deref().map(campaign_href).unwrap_or_default(),
                    amount: money(hold.amount, hold.currency.as_str()),
                    why: why_of(&decision, &hold.reasons),
                    left: if hold.awaiting_analyst {
                        "waits for an analyst".into()
                    } else {
                        time_left(hold.expires_at.0, read.now)
                    },
                    pending: usize::from(
                        pending.contains(&(hold.account_id.clone(), hold.hold_id.clone())),
                    ),
                    kind: hold.kind.as_str().into(),
                    account_id: hold.account_id,
                    hold_id: hold.hold_id,
                    campaign,
                }
            },
        )
        .collect();
    let total = if totals.is_empty() {
        "0".to_string()
    } else {
        totals
            .iter()
            .map(|(c, a)| money(*a, c))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    html(
        StatusCode::OK,
        &QueuePage {
            nav: nav(&person),
            count,
            total,
            open_total,
            filter,
            rules: read.rules,
            institutions,
            rows,
        },
    )
}

// ---------------------------------------------------------------- one hold

struct PendingView {
    requested_by: String,
    requested_at: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "hold.html")]
struct HoldPage {
    nav: Option<Nav>,
    notice: Option<String>,
    href: String,
    account_href: String,
    campaign_href: String,
    csrf: String,
    kind: String,
    hold_id: String,
    account_id: String,
    amount: String,
    status: String,
    held_at: String,
    expires_at: String,
    left: String,
    destination: String,
    campaign: Option<String>,
    case: Option<(String, String)>,
    score: u32,
    awaiting: Option<String>,
    why: Vec<Why>,
    pending: Vec<PendingView>,
    open: bool,
    can_act: bool,
    needs_second: bool,
    assignee: Option<String>,
    /// Who a hold can be given to: enabled users who may work holds.
    workers: Vec<String>,
}

#[derive(serde::Serialize, Deserialize)]
struct HoldRead {
    now: i64,
    hold: Option<Hold>,
    campaign: Option<String>,
    /// The case the hold went to, if it is still the account's open one.
    #[serde(default)]
    case: Option<String>,
}

async fn read_hold(state: &AppState, account_id: &str, hold_id: &str) -> Option<HoldRead> {
    let (account, id) = (account_id.to_string(), hold_id.to_string());
    let value = state
        .runtime
        .read(move |engine| HoldRead {
            now: engine_now(engine),
            hold: engine.holds().get(&account, &id).cloned(),
            campaign: engine
                .campaigns()
                .account_in_live_campaign(&account)
                .map(|c| c.id.clone()),
            case: engine.cases().current_of(&account).map(|c| c.id.clone()),
        })
        .await
        .ok()?;
    serde_json::from_value(value).ok()
}

async fn hold_page(
    state: &AppState,
    person: &Person,
    account_id: &str,
    hold_id: &str,
    notice: Option<String>,
) -> Response {
    let Some(read) = read_hold(state, account_id, hold_id).await else {
        return error_page(
            Some(person),
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine did not answer; try again",
        );
    };
    let Some(hold) = read.hold else {
        return error_page(
            Some(person),
            StatusCode::NOT_FOUND,
            "there is no such hold on this account",
        );
    };
    let found = decisions(state, vec![hold.event_id.clone()]).await;
    let (a, h) = (hold.account_id.clone(), hold.hold_id.clone());
    let pending = console_db(state, move |db| db.pending_for_hold(&a, &h))
        .await
        .unwrap_or_default();
    let destination = hold
        .destination
        .as_ref()
        .and_then(|d| serde_json::to_value(d).ok())
        .map(|d| {
            let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            format!(
                "{} {} ending {}",
                field("institution_id"),
                field("country"),
                field("account_last4")
            )
        })
        .unwrap_or_else(|| "not known".into());
    let open = hold.status == HoldStatus::Held;
    let key = (hold.account_id.clone(), hold.hold_id.clone());
    let (assignee, workers) = console_db(state, move |db| {
        let assignee = db.assignees()?.remove(&key);
        let workers = db
            .users()?
            .into_iter()
            .filter(|u| !u.disabled && u.role.scopes().allows(Scope::HoldsWrite))
            .map(|u| u.name)
            .collect();
        Ok((assignee, workers))
    })
    .await
    .unwrap_or_default();
    html(
        StatusCode::OK,
        &HoldPage {
            nav: nav(person),
            notice,
            href: hold_href(&hold.account_id, &hold.hold_id),
            account_href: account_href(&hold.account_id),
            campaign_href: read
                .campaign
                .as_deref()
                .map(campaign_href)
                .unwrap_or_default(),
            csrf: person.session.csrf.clone(),
            kind: hold.kind.as_str().into(),
            amount: money(hold.amount, hold.currency.as_str()),
            status: hold.status.as_str().into(),
            held_at: when(hold.held_at.0),
            expires_at: when(hold.expires_at.0),
            left: time_left(hold.expires_at.0, read.now),
            destination,
            campaign: read.campaign,
            case: read.case.map(|c| (case_href(&c), c)),
            score: hold.score,
            awaiting: hold.awaiting_reason.clone().or_else(|| {
                hold.awaiting_analyst.then(|| {
                    "its cool-off ended while something still argues against paying".into()
                })
            }),
            why: why_of(
                &parsed(found.get(&hold.event_id).map(String::as_str)),
                &hold.reasons,
            ),
            pending: pending
                .into_iter()
                .map(|p| PendingView {
                    requested_by: p.requested_by,
                    requested_at: when_ms(p.requested_ms),
                    reason: p.reason,
                })
                .collect(),
            open,
            can_act: person.may(Scope::HoldsWrite),
            needs_second: hold.amount > state.console.config.four_eyes_above,
            assignee,
            workers,
            hold_id: hold.hold_id,
            account_id: hold.account_id,
        },
    )
}

pub async fn hold(
    State(state): State<AppState>,
    Path((account_id, hold_id)): Path<(String, String)>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    hold_page(&state, &person, &account_id, &hold_id, None).await
}

pub(super) fn reason_of(form: &HashMap<String, String>) -> Option<String> {
    form.get("reason")
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
}

/// Releases or cancels the hold as `person`, audits it as `release` or
/// `cancel`, and shows the hold page with what happened.
async fn close_and_show(
    state: &AppState,
    person: &Person,
    account_id: &str,
    hold_id: &str,
    reason: String,
    kind: AnalystActionKind,
) -> Response {
    let (action, notice) = if kind == AnalystActionKind::ReleasePayout {
        ("release", "released")
    } else {
        ("cancel", "cancelled")
    };
    match close(
        state,
        account_id,
        hold_id,
        person.name().to_string(),
        reason.clone(),
        kind,
    )
    .await
    {
        Ok(_) => {
            audit(
                state,
                person.name(),
                &person.address,
                action,
                &format!("hold {account_id}/{hold_id}"),
                &reason,
            )
            .await;
            hold_page(state, person, account_id, hold_id, Some(notice.into())).await
        }
        Err(e) => api_error_page(person, e),
    }
}

/// Releases or cancels through the API's path, as `analyst`.
async fn close(
    state: &AppState,
    account_id: &str,
    hold_id: &str,
    analyst: String,
    reason: String,
    action: AnalystActionKind,
) -> Result<Value, ApiError> {
    crate::analyst::close_hold_with(
        state,
        hold_id,
        ActionBody {
            analyst: Some(analyst),
            reason: Some(reason),
            action_id: None,
            account_id: Some(account_id.to_string()),
        },
        action,
    )
    .await
}

pub async fn release(
    State(state): State<AppState>,
    Path((account_id, hold_id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (person, reason) =
        match posted_act(&state, request, Scope::HoldsWrite, "releasing a hold").await {
            Ok(posted) => posted,
            Err(r) => return r,
        };
    let Some(read) = read_hold(&state, &account_id, &hold_id).await else {
        return error_page(
            Some(&person),
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine did not answer",
        );
    };
    let Some(hold) = read.hold else {
        return error_page(
            Some(&person),
            StatusCode::NOT_FOUND,
            "there is no such hold on this account",
        );
    };
    if hold.amount > state.console.config.four_eyes_above {
        let request = Approval {
            id: 0,
            kind: RELEASE_PAYOUT.into(),
            hold_id: hold.hold_id.clone(),
            account_id: hold.account_id.clone(),
            amount: hold.amount,
            currency: hold.currency.to_string(),
            requested_by: person.name().to_string(),
            requested_ms: 0,
            reason: reason.clone(),
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
        let id = match console_db(&state, move |db| db.request_approval(&request)).await {
            Ok(id) => id,
            Err(e) => return error_page(Some(&person), StatusCode::SERVICE_UNAVAILABLE, &e),
        };
        audit(
            &state,
            person.name(),
            &person.address,
            "release_requested",
            &format!("hold {}/{}", hold.account_id, hold.hold_id),
            &format!("request {id}: {reason}"),
        )
        .await;
        let notice = format!(
            "{} is above the four-eyes amount: request {id} waits for a lead's approval",
            money(hold.amount, hold.currency.as_str())
        );
        return hold_page(&state, &person, &account_id, &hold_id, Some(notice)).await;
    }
    close_and_show(
        &state,
        &person,
        &account_id,
        &hold_id,
        reason,
        AnalystActionKind::ReleasePayout,
    )
    .await
}

pub async fn cancel(
    State(state): State<AppState>,
    Path((account_id, hold_id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (person, reason) =
        match posted_act(&state, request, Scope::HoldsWrite, "cancelling a hold").await {
            Ok(posted) => posted,
            Err(r) => return r,
        };
    close_and_show(
        &state,
        &person,
        &account_id,
        &hold_id,
        reason,
        AnalystActionKind::CancelPayout,
    )
    .await
}

/// `take`: the hold is mine; `assign`: the hold is the named user's, who
/// must be enabled and allowed to work holds.
pub async fn assign(
    State(state): State<AppState>,
    Path((account_id, hold_id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (person, form) = match posted(&state, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = person.authorize(Scope::HoldsWrite, "assigning a hold") {
        return r;
    }
    let assignee = match form.get("assignee").map(|a| a.trim()) {
        None | Some("") => person.name().to_string(),
        Some(name) => name.to_string(),
    };
    match read_hold(&state, &account_id, &hold_id).await {
        Some(HoldRead { hold: Some(_), .. }) => {}
        Some(_) => {
            return error_page(
                Some(&person),
                StatusCode::NOT_FOUND,
                "there is no such hold on this account",
            );
        }
        None => {
            return error_page(
                Some(&person),
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine did not answer",
            );
        }
    }
    let (a, h, who, by) = (
        account_id.clone(),
        hold_id.clone(),
        assignee.clone(),
        person.name().to_string(),
    );
    let assigned = console_db(&state, move |db| {
        let user = db.user(&who)?;
        if !user.is_some_and(|u| !u.disabled && u.role.scopes().allows(Scope::HoldsWrite)) {
            return Ok(false);
        }
        db.assign(&a, &h, &who, &by)?;
        Ok(true)
    })
    .await;
    match assigned {
        Ok(true) => {
            let action = if assignee == person.name() {
                "hold_taken"
            } else {
                "hold_assigned"
            };
            audit(
                &state,
                person.name(),
                &person.address,
                action,
                &format!("hold {account_id}/{hold_id}"),
                &assignee,
            )
            .await;
            hold_page(
                &state,
                &person,
                &account_id,
                &hold_id,
                Some(format!("assigned to {assignee}")),
            )
            .await
        }
        Ok(false) => error_page(
            Some(&person),
            StatusCode::BAD_REQUEST,
            "assignee: must be an enabled user who may work holds (analyst, lead or admin)",
        ),
        Err(e) => error_page(Some(&person), StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

// ---------------------------------------------------------------- approvals

struct ApprovalView {
    id: i64,
    /// A campaign request: what it asks, the campaign's link and id, and
    /// what it covered when asked.
    campaign: Option<(&'static str, String, String)>,
    /// A rules change: the proposed text's link and the version it was
    /// written over.
    rules: Option<(String, u64)>,
    summary: String,
    /// The approve button's words.
    verb: &'static str,
    hold_href: String,
    hold_id: String,
    account_id: String,
    amount: String,
    requested_by: String,
    requested_at: String,
    reason: String,
    status: String,
    pending: bool,
    decided_by: Option<String>,
    decided_at: String,
    decision_reason: String,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    nav: Option<Nav>,
    notice: Option<String>,
    nav_user: String,
    csrf: String,
    can_approve: bool,
    rows: Vec<ApprovalView>,
}

pub(super) async fn approvals_page(
    state: &AppState,
    person: &Person,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let rows = match console_db(state, |db| db.approvals(500)).await {
        Ok(rows) => rows,
        Err(e) => return error_page(Some(person), StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    html(
        status,
        &ApprovalsPage {
            nav: nav(person),
            notice,
            nav_user: person.name().to_string(),
            csrf: person.session.csrf.clone(),
            can_approve: person.may(Scope::HoldsApprove),
            rows: rows
                .into_iter()
                .map(|a| ApprovalView {
                    id: a.id,
                    campaign: (!a.campaign_id.is_empty()).then(|| {
                        let what = match a.kind.as_str() {
                            DISMISS_CAMPAIGN => "dismiss campaign",
                            _ => "release every open hold of campaign",
                        };
                        (what, campaign_href(&a.campaign_id), a.campaign_id.clone())
                    }),
                    rules: (a.kind == RULES_CHANGE)
                        .then(|| (format!("/console/approvals/{}/rules", a.id), a.base_version)),
                    summary: a.summary.clone(),
                    verb: match a.kind.as_str() {
                        DISMISS_CAMPAIGN => "Approve and dismiss",
                        RULES_CHANGE => "Approve and install",
                        _ => "Approve and release",
                    },
                    hold_href: hold_href(&a.account_id, &a.hold_id),
                    amount: if a.campaign_id.is_empty() && a.kind != RULES_CHANGE {
                        money(a.amount, &a.currency)
                    } else {
                        String::new()
                    },
                    requested_at: when_ms(a.requested_ms),
                    pending: a.status == "pending",
                    decided_at: a.decided_ms.map(when_ms).unwrap_or_default(),
                    decision_reason: a.decision_reason.unwrap_or_default(),
                    decided_by: a.decided_by,
                    hold_id: a.hold_id,
                    account_id: a.account_id,
                    requested_by: a.requested_by,
                    reason: a.reason,
                    status: a.status,
                })
                .collect(),
        },
    )
}

pub async fn approvals(State(state): State<AppState>, request: Parts) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    approvals_page(&state, &person, None, StatusCode::OK).await
}

/// The pending request `id` that `person` may decide, or the page saying
/// why not.
async fn decidable(
    state: &AppState,
    person: &Person,
    id: &str,
    form: &HashMap<String, String>,
) -> Result<(Approval, String), Response> {
    person.authorize(Scope::HoldsApprove, "approving a request")?;
    let Ok(id) = id.parse::<i64>() else {
        return Err(error_page(
            Some(person),
            StatusCode::NOT_FOUND,
            "there is no such request",
        ));
    };
    let approval = console_db(state, move |db| db.approval(id))
        .await
        .map_err(|e| error_page(Some(person), StatusCode::SERVICE_UNAVAILABLE, &e))?
        .ok_or_else(|| {
            error_page(
                Some(person),
                StatusCode::NOT_FOUND,
                "there is no such request",
            )
        })?;
    if approval.status != "pending" {
        return Err(error_page(
            Some(person),
            StatusCode::CONFLICT,
            &format!("request {id} is {} already", approval.status),
        ));
    }
    if approval.requested_by == person.name() {
        return Err(error_page(
            Some(person),
            StatusCode::FORBIDDEN,
            "nobody approves their own request: another lead must",
        ));
    }
    let reason = reason_of(form)
        .ok_or_else(|| error_page(Some(person), StatusCode::BAD_REQUEST, "reason: say why"))?;
    Ok((approval, reason))
}

/// A lead's verdict on request `id`: the posted form checked, the request
/// decidable by this person, and the verdict recorded, at most once even
/// when two leads decide at the same moment.
async fn decide(
    state: &AppState,
    id: &str,
    request: Request,
    verdict: &'static str,
) -> Result<(Person, Approval, String), Response> {
    let (person, form) = posted(state, request).await?;
    let (approval, reason) = decidable(state, &person, id, &form).await?;
    let (approval_id, by, why) = (approval.id, person.name().to_string(), reason.clone());
    match console_db(state, move |db| db.decide(approval_id, verdict, &by, &why)).await {
        Ok(true) => Ok((person, approval, reason)),
        Ok(false) => Err(error_page(
            Some(&person),
            StatusCode::CONFLICT,
            "the request was decided meanwhile",
        )),
        Err(e) => Err(error_page(
            Some(&person),
            StatusCode::SERVICE_UNAVAILABLE,
            &e,
        )),
    }
}

pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    // Decided first, so that two leads approving at once release once.
    let (person, approval, reason) = match decide(&state, &id, request, "approved").await {
        Ok(decided) => decided,
        Err(r) => return r,
    };
    if approval.kind == RULES_CHANGE {
        return match super::rules::carry_out(&state, &person, &approval, &reason).await {
            Ok(notice) => approvals_page(&state, &person, Some(notice), StatusCode::OK).await,
            Err(r) => r,
        };
    }
    if approval.kind != RELEASE_PAYOUT {
        return match super::campaigns::carry_out(&state, &person, &approval, &reason).await {
            Ok(notice) => approvals_page(&state, &person, Some(notice), StatusCode::OK).await,
            Err(r) => r,
        };
    }
    let released = close(
        &state,
        &approval.account_id,
        &approval.hold_id,
        format!("{}, approved by {}", approval.requested_by, person.name()),
        format!("{} (approved: {reason})", approval.reason),
        AnalystActionKind::ReleasePayout,
    )
    .await;
    let target = format!("hold {}/{}", approval.account_id, approval.hold_id);
    match released {
        Ok(_) => {
            audit(
                &state,
                person.name(),
                &person.address,
                "release_approved",
                &target,
                &format!(
                    "request {} by {}: {reason}",
                    approval.id, approval.requested_by
                ),
            )
            .await;
            approvals_page(
                &state,
                &person,
                Some(format!(
                    "request {} approved; the payout is released",
                    approval.id
                )),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            audit(
                &state,
                person.name(),
                &person.address,
                "release_approved_failed",
                &target,
                &e.message,
            )
            .await;
            api_error_page(&person, e)
        }
    }
}

pub async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (person, approval, reason) = match decide(&state, &id, request, "rejected").await {
        Ok(decided) => decided,
        Err(r) => return r,
    };
    let (action, target, stays) = match approval.kind.as_str() {
        RELEASE_CAMPAIGN => (
            "campaign_release_rejected",
            format!("campaign {}", approval.campaign_id),
            "the campaign's payouts stay held",
        ),
        DISMISS_CAMPAIGN => (
            "campaign_dismiss_rejected",
            format!("campaign {}", approval.campaign_id),
            "the campaign stays as it is",
        ),
        RULES_CHANGE => (
            "rules_change_rejected",
            format!("rules v{}", approval.base_version),
            "the rules stay as they are",
        ),
        _ => (
            "release_rejected",
            format!("hold {}/{}", approval.account_id, approval.hold_id),
            "the payout stays held",
        ),
    };
    audit(
        &state,
        person.name(),
        &person.address,
        action,
        &target,
        &format!(
            "request {} by {}: {reason}",
            approval.id, approval.requested_by
        ),
    )
    .await;
    approvals_page(
        &state,
        &person,
        Some(format!("request {} rejected; {stays}", approval.id)),
        StatusCode::OK,
    )
    .await
}

// ---------------------------------------------------------------- audit

struct AuditView {
    id: i64,
    at: String,
    actor: String,
    address: String,
    action: String,
    target: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    rows: Vec<AuditView>,
    next: Option<i64>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
}

pub async fn audit_trail(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = person.authorize(Scope::Admin, "the audit trail") {
        return r;
    }
    let before = query.before;
    let rows: Vec<AuditEntry> =
        match console_db(&state, move |db| db.audit_page(before, AUDIT_PAGE)).await {
            Ok(rows) => rows,
            Err(e) => return error_page(Some(&person), StatusCode::SERVICE_UNAVAILABLE, &e),
        };
    let next = (rows.len() == AUDIT_PAGE)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    html(
        StatusCode::OK,
        &AuditPage {
            nav: nav(&person),
            next,
            rows: rows
                .into_iter()
                .map(|e| AuditView {
                    id: e.id,
                    at: when_ms(e.at_ms),
                    actor: e.actor,
                    address: e.address,
                    action: e.action,
                    target: e.target,
                    detail: e.detail,
                })
                .collect(),
        },
    )
}

pub async fn audit_export(State(state): State<AppState>, request: Parts) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = person.authorize(Scope::Admin, "the audit trail") {
        return r;
    }
    let body = console_db(&state, |db| {
        let mut out = String::new();
        db.audit_all(|entry| {
            if let Ok(line) = serde_json::to_string(&entry) {
                out.push_str(&line);
                out.push('\n');
            }
        })?;
        Ok(out)
    })
    .await;
    match body {
        Ok(body) => {
            audit(
                &state,
                person.name(),
                &person.address,
                "audit_exported",
                "audit",
                "",
            )
            .await;
            (
                [
                    (header::CONTENT_TYPE, "application/x-ndjson"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"custos-audit.ndjson\"",
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => error_page(Some(&person), StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

// ---------------------------------------------------------------- account

struct EventRow {
    time: String,
    event_type: String,
    event_id: String,
    action: String,
    reasons: String,
    detail: String,
}

struct HoldRow {
    href: String,
    hold_id: String,
    amount: String,
    status: String,
    held_at: String,
}

struct CaseRow {
    href: String,
    id: String,
    title: String,
    /// `open`, `investigating`, or `resolved: how`.
    status: String,
    assignee: Option<String>,
    updated: String,
}

/// What the account page shows of one of the account's cases.
#[derive(serde::Serialize, Deserialize)]
struct AccountCase {
    id: String,
    title: String,
    status: custos_core::cases::CaseStatus,
    resolution: Option<custos_core::cases::CaseResolution>,
    merged_into: Option<String>,
    assignee: Option<String>,
    updated_at: i64,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Option<Nav>,
    logins: String,
    distinct: Vec<(String, String)>,
    countries: Vec<(String, String, String)>,
    asns: Vec<(String, String, String)>,
    account_id: String,
    at_risk: String,
    campaign: Option<String>,
    campaign_href: String,
    holds: Vec<HoldRow>,
    cases: Vec<CaseRow>,
    events: Vec<EventRow>,
    page: usize,
    next_page: Option<String>,
    prev_page: Option<String>,
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<usize>,
}

#[derive(serde::Serialize, Deserialize)]
struct AccountRead {
    found: bool,
    /// `crate::login_profile_view`: distinct traits, countries, ASNs.
    profile: Value,
    at_risk: Option<Value>,
    campaign: Option<String>,
    holds: Vec<Hold>,
    /// Its cases, open ones first, the last changed first within each.
    #[serde(default)]
    cases: Vec<AccountCase>,
}

/// What an event says beyond its type, for the timeline.
fn event_detail(event: &Value) -> String {
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_string);
    let mut parts = Vec::new();
    if let Some(ip) = text("ip") {
        parts.push(format!("ip {ip}"));
    }
    if let Some(device) = text("device_id") {
        parts.push(format!("device {device}"));
    }
    if let Some(session) = text("session_id") {
        parts.push(format!("session {session}"));
    }
    if let (Some(amount), Some(currency)) = (
        event.get("amount").and_then(Value::as_u64),
        text("currency"),
    ) {
        parts.push(money(amount, &currency));
    }
    if let Some(d) = event.get("destination") {
        let f = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        parts.push(format!(
            "destination {} ending {}",
            f("institution_id"),
            f("account_last4")
        ));
    }
    parts.join(", ")
}

pub async fn account(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    Query(query): Query<PageQuery>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let lookup = account_id.clone();
    let read = state
        .runtime
        .read(move |engine| {
            let state = engine.account(&lookup);
            AccountRead {
                found: state.is_some(),
                profile: state
                    .map(|s| crate::login_profile_view(&s.profile))
                    .unwrap_or(Value::Null),
                at_risk: state
                    .and_then(|s| s.at_risk.as_ref())
                    .and_then(|r| serde_json::to_value(r).ok()),
                campaign: engine
                    .campaigns()
                    .account_in_live_campaign(&lookup)
                    .map(|c| c.id.clone()),
                holds: engine
                    .holds()
                    .of_account(&lookup)
                    .into_iter()
                    .cloned()
                    .collect(),
                cases: {
                    let mut cases: Vec<AccountCase> = engine
                        .cases()
                        .of_account(&lookup)
                        .into_iter()
                        .map(|c| AccountCase {
                            id: c.id.clone(),
                            title: c.title.clone(),
                            status: c.status,
                            resolution: c.resolution,
                            merged_into: c.merged_into.clone(),
                            assignee: c.assignee.clone(),
                            updated_at: c.updated_at,
                        })
                        .collect();
                    // Case ids sort as text (`case-10` before `case-9`):
                    // order by the last change instead.
                    cases.sort_by_key(|c| {
                        (
                            c.status == CaseStatus::Resolved,
                            std::cmp::Reverse(c.updated_at),
                        )
                    });
                    cases
                },
            }
        })
        .await
        .ok()
        .and_then(|v| serde_json::from_value::<AccountRead>(v).ok());
    let Some(read) = read else {
        return error_page(
            Some(&person),
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine did not answer",
        );
    };
    if !read.found {
        return error_page(
            Some(&person),
            StatusCode::NOT_FOUND,
            "no events seen for this account",
        );
    }
    let page = query.page.unwrap_or(0).min(10_000);
    let store = state.runtime.store().clone();
    let lookup = account_id.clone();
    // Newest first; a page is the tail of the newest (page + 1) * size.
    let wanted = (page + 1) * TIMELINE_PAGE + 1;
    let records = tokio::task::spawn_blocking(move || store.account_events(&lookup, wanted))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let more = records.len() == wanted;
    let events = records
        .into_iter()
        .skip(page * TIMELINE_PAGE)
        .take(TIMELINE_PAGE)
        .map(|r| {
            let decision: Value = serde_json::from_str(&r.decision_json).unwrap_or(Value::Null);
            let mut event: Value = serde_json::from_str(&r.event_json).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut event {
                state.runtime.parser().open_stored(map);
            }
            EventRow {
                time: when(r.event_time),
                event_type: r.event_type,
                event_id: r.event_id,
                action: decision
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                reasons: decision
                    .get("reasons")
                    .and_then(Value::as_array)
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|r| r.get("message").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default(),
                detail: event_detail(&event),
            }
        })
        .collect();
    let base = account_href(&account_id);
    let profile = &read.profile;
    let seen = |key: &str| -> Vec<(String, String, String)> {
        profile
            .get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|t| {
                        let text = |v: Option<&Value>| match v {
                            Some(Value::String(s)) => s.clone(),
                            Some(v) => v.to_string(),
                            None => String::new(),
                        };
                        (
                            text(t.get("value")),
                            text(t.get("count")),
                            text(t.get("last_seen")),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let countries = seen("countries");
    let asns = seen("asns");
    let distinct = profile
        .get("distinct")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.replace('_', " "), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let logins = profile
        .get("logins")
        .map(Value::to_string)
        .unwrap_or_default();
    html(
        StatusCode::OK,
        &AccountPage {
            nav: nav(&person),
            logins,
            distinct,
            countries,
            asns,
            at_risk: read
                .at_risk
                .map(|r| r.to_string())
                .unwrap_or_else(|| "no".into()),
            campaign_href: read
                .campaign
                .as_deref()
                .map(campaign_href)
                .unwrap_or_default(),
            campaign: read.campaign,
            holds: read
                .holds
                .into_iter()
                .map(|h| HoldRow {
                    href: hold_href(&h.account_id, &h.hold_id),
                    amount: money(h.amount, h.currency.as_str()),
                    status: h.status.as_str().into(),
                    held_at: when(h.held_at.0),
                    hold_id: h.hold_id,
                })
                .collect(),
            cases: read
                .cases
                .into_iter()
                .map(|c| CaseRow {
                    href: case_href(&c.id),
                    status: match (&c.merged_into, c.resolution) {
                        (Some(into), _) => format!("merged into {into}"),
                        (None, Some(how)) => {
                            format!("resolved: {}", how.as_str().replace('_', " "))
                        }
                        (None, None) => c.status.as_str().into(),
                    },
                    id: c.id,
                    title: c.title,
                    assignee: c.assignee,
                    updated: when(c.updated_at),
                })
                .collect(),
            events,
            page,
            next_page: more.then(|| format!("{base}?page={}", page + 1)),
            prev_page: (page > 0).then(|| format!("{base}?page={}", page - 1)),
            account_id,
        },
    )
}

// ---------------------------------------------------------------- evidence

/// Downloads the campaign's evidence pack (`GET
/// /v1/campaigns/{id}/evidence`'s, under the same scope).
pub async fn campaign_evidence(
    State(state): State<AppState>,
    Path(campaign_id): Path<String>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    evidence_download(&state, &person, "campaign", &campaign_id).await
}

/// A campaign's or a case's evidence pack for a person allowed to export
/// ([`crate::evidence::EXPORT_SCOPE`], the API's scope), recorded in the
/// audit trail as `evidence_exported`.
pub(super) async fn evidence_download(
    state: &AppState,
    person: &Person,
    kind: &str,
    id: &str,
) -> Response {
    if let Err(r) = person.authorize(crate::evidence::EXPORT_SCOPE, "evidence packs") {
        return r;
    }
    let scope = if kind == "case" {
        crate::evidence::case_scope(state, id).await
    } else {
        crate::evidence::campaign_scope(state, id).await
    };
    let scope = match scope {
        Ok(s) => s,
        Err(e) => return api_error_page(person, e),
    };
    let accounts = scope.accounts.len();
    match crate::evidence::build_pack(state, scope, &person.caller).await {
        Ok(pack) => {
            audit(
                state,
                person.name(),
                &person.address,
                "evidence_exported",
                &format!("{kind} {id}"),
                &format!("{accounts} accounts, {} bytes", pack.len),
            )
            .await;
            crate::evidence::pack_response(id, pack)
        }
        Err(e) => api_error_page(person, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_times_read_as_people_write_them() {
        assert_eq!(money(123_456_789, "GBP"), "1,234,567.89 GBP");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(parse_amount("1,500.5"), Some(150_050));
        assert_eq!(parse_amount("12"), Some(1_200));
        assert_eq!(parse_amount("1.234"), None);
        assert_eq!(parse_amount("x"), None);
        assert_eq!(time_left(100, 200), "cool-off ended");
        assert_eq!(time_left(200_000, 0), "2d 7h left");
        assert_eq!(time_left(3_700, 0), "1h 1m left");
        assert_eq!(when(1_525_132_800), "2018-05-01 00:00:00");
        assert_eq!(age_of(3 * 3600 + 59), "3h");
        assert_eq!(age_of(50 * 3600), "2d 2h");
    }

    #[test]
    fn exposure_says_what_the_engine_knows_and_what_it_does_not() {
        assert_eq!(
            exposure_of(None, "GBP"),
            "balance and loans not known (no sales or loans seen)"
        );
        let counted = custos_core::state::Money {
            sales: 150_000,
            paid_out: 20_000,
            loans_disbursed: 500_000,
            ..Default::default()
        };
        assert_eq!(
            exposure_of(Some(&counted), "GBP"),
            "next payout would send up to 1,300.00 GBP (sales balance); \
             loans disbursed 5,000.00 GBP (repayments not known)"
        );
        let overpaid = custos_core::state::Money {
            sales: 0,
            paid_out: 2_500,
            ..Default::default()
        };
        assert_eq!(
            exposure_of(Some(&overpaid), "EUR"),
            "no sales balance left (25.00 EUR more paid out than sales seen); no loans seen"
        );
    }
}
