//! The analyst console at `/console`: server-rendered pages for the people
//! who work the held payouts (`docs/console.md`).
//!
//! Pages are askama templates, compiled and checked with the binary and
//! HTML-escaped by default, so an account id like `<script>` renders as
//! text. The stylesheet is embedded; there is no script at all, and every
//! answer carries a Content-Security-Policy that allows none, inline or
//! not, and loads nothing from elsewhere.
//!
//! People log in with a name and password (`custos users`; see `session`
//! for cookies, expiry, CSRF and the login limit). A person's role is a
//! set of API scopes ([`custos_config::Role::scopes`]) and every action is
//! checked by [`crate::auth::authorize`], the same check as for keys: a
//! viewer reads, an analyst releases and cancels holds, a lead also
//! approves, an admin reads the audit trail and downloads evidence packs
//! (the API's scope for them, `crate::evidence::EXPORT_SCOPE`; each
//! download is in the audit trail).
//!
//! Actions on holds go through the same path as the API's
//! (`analyst::close_hold_with`): an `analyst_action` event in the log
//! naming the person. Releasing a hold above `console.four_eyes_above`,
//! and releasing every hold of a campaign or dismissing it (`campaigns`),
//! only records a request; a second person with `holds:approve` (a lead)
//! carries it out, and nobody approves their own request. Changing the
//! rules (`rules`: an admin proposes, another lead or admin approves) is a
//! request of the same kind, installed through the API's path. Every login,
//! logout, request, approval and action is written to the audit trail
//! (`db`), with who, when and from which address.
//!
//! State changes only by `POST` with the session's CSRF token; the edge
//! accepts form bodies and same-origin `Origin` headers on `/console` only.

mod campaigns;
mod cases;
pub mod db;
mod graph;
mod pages;
mod rules;
mod search;
pub mod session;
mod why;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use custos_config::{ConsoleConfig, Role, Scope};

use crate::AppState;
use crate::auth::Caller;
use db::ConsoleDb;
use session::{LoginLimiter, Session, Sessions};

/// The session cookie.
const SESSION_COOKIE: &str = "custos_session";
/// The login form's CSRF cookie (before there is a session).
const LOGIN_COOKIE: &str = "custos_login";

/// The client's address, put into every request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The console's state, shared by its handlers.
pub struct Console {
    pub db: Arc<ConsoleDb>,
    sessions: Sessions,
    limiter: Arc<LoginLimiter>,
    config: ConsoleConfig,
}

impl Console {
    pub fn new(db: ConsoleDb, config: &ConsoleConfig) -> Console {
        Console {
            db: Arc::new(db),
            sessions: Sessions::new(config),
            limiter: LoginLimiter::new(config),
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &ConsoleConfig {
        &self.config
    }
}

/// Routes under `/console`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route("/console/login", get(pages::login_page).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/queue", get(pages::queue))
        .route("/console/holds/{account_id}/{hold_id}", get(pages::hold))
        .route(
            "/console/holds/{account_id}/{hold_id}/release",
            post(pages::release),
        )
        .route(
            "/console/holds/{account_id}/{hold_id}/cancel",
            post(pages::cancel),
        )
        .route(
            "/console/holds/{account_id}/{hold_id}/assign",
            post(pages::assign),
        )
        .route("/console/approvals", get(pages::approvals))
        .route("/console/approvals/{id}/approve", post(pages::approve))
        .route("/console/approvals/{id}/reject", post(pages::reject))
        .route("/console/approvals/{id}/rules", get(rules::proposal))
        .route(
            "/console/rules",
            get(rules::show).post(rules::request_change),
        )
        .route("/console/rules/{version}", get(rules::version))
        .route("/console/accounts/{account_id}", get(pages::account))
        .route("/console/campaigns/{campaign_id}", get(campaigns::campaign))
        .route(
            "/console/campaigns/{campaign_id}/evidence",
            get(pages::campaign_evidence),
        )
        .route(
            "/console/campaigns/{campaign_id}/confirm",
            post(campaigns::confirm_campaign),
        )
        .route(
            "/console/campaigns/{campaign_id}/release-all",
            post(campaigns::request_release_all),
        )
        .route(
            "/console/campaigns/{campaign_id}/dismiss",
            post(campaigns::request_dismiss),
        )
        .route("/console/search", get(search::search))
        .route("/console/cases", get(cases::list).post(cases::open))
        .route("/console/cases/{case_id}", get(cases::show))
        .route("/console/cases/{case_id}/evidence", get(cases::evidence))
        .route("/console/cases/{case_id}/notes", post(cases::note))
        .route("/console/cases/{case_id}/assign", post(cases::assign))
        .route("/console/cases/{case_id}/status", post(cases::status))
        .route(
            "/console/cases/{case_id}/accounts",
            post(cases::add_account),
        )
        .route("/console/cases/{case_id}/merge", post(cases::merge))
        .route("/console/cases/{case_id}/resolve", post(cases::resolve))
        .route("/console/audit", get(pages::audit_trail))
        .route("/console/audit.ndjson", get(pages::audit_export))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/{*rest}", any(pages::not_found))
        .layer(axum::middleware::map_response(security_headers))
}

/// The headers of every console answer: nothing runs but what the page
/// is, nothing loads from elsewhere, nothing is cached or framed.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it browsers send `Origin: null` on the
    // console's own form posts, which the edge (rightly) refuses.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../assets/console.css"),
    )
        .into_response()
}

/// A logged-in person making a request.
pub(crate) struct Person {
    pub session: Session,
    pub caller: Caller,
    pub address: String,
}

impl Person {
    pub fn name(&self) -> &str {
        &self.session.user
    }

    pub fn may(&self, scope: Scope) -> bool {
        self.caller.scopes.allows(scope)
    }

    /// [`crate::auth::authorize`] for the person; a `403` page when not.
    pub fn authorize(&self, scope: Scope, what: &str) -> Result<(), Response> {
        crate::auth::authorize(&self.caller, scope, what)
            .map_err(|e| pages::error_page(Some(self), StatusCode::FORBIDDEN, &e.message))
    }
}

/// The caller a person acts as: the role's scopes, under `user:NAME`.
pub fn caller_of(user: &str, role: Role) -> Caller {
    Caller {
        key_name: Arc::from(format!("user:{user}").as_str()),
        scopes: role.scopes(),
    }
}

fn address_of(parts: &axum::http::Extensions) -> String {
    parts
        .get::<PeerAddr>()
        .map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string())
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The person behind the request's session cookie, if the session is live
/// and the user still enabled with the same password.
async fn person(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<Person> {
    let console = &state.console;
    let token = cookie(headers, SESSION_COOKIE)?;
    let session = console.sessions.touch(token)?;
    let db = console.db.clone();
    let name = session.user.clone();
    let user = tokio::task::spawn_blocking(move || db.user(&name))
        .await
        .ok()?
        .ok()?;
    match user {
        Some(user) if !user.disabled && user.generation == session.generation => {
            let mut session = session;
            session.role = user.role;
            let caller = caller_of(&user.name, user.role);
            crate::auth::record_caller(&caller);
            Some(Person {
                caller,
                session,
                address: address_of(extensions),
            })
        }
        _ => {
            // Disabled, deleted or password reset: every session ends now.
            console.sessions.close_user(&session.user);
            None
        }
    }
}

/// Reads a form body (`application/x-www-form-urlencoded`).
async fn read_form(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<HashMap<String, String>, Response> {
    let bytes = crate::events::read_body(headers, body, state.limits.max_body_bytes)
        .await
        .map_err(|e| pages::error_page(None, StatusCode::BAD_REQUEST, &e.message))?;
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// A state-changing request: a live session and its CSRF token in the
/// form, else `403`.
async fn posted(
    state: &AppState,
    request: axum::extract::Request,
) -> Result<(Person, HashMap<String, String>), Response> {
    let (parts, body) = request.into_parts();
    let Some(person) = person(state, &parts.headers, &parts.extensions).await else {
        return Err(pages::error_page(
            None,
            StatusCode::FORBIDDEN,
            "you are not logged in, or your session ended; log in again",
        ));
    };
    let form = read_form(state, &parts.headers, body).await?;
    let presented = form.get("csrf").map(String::as_str).unwrap_or_default();
    if !person.session.csrf_matches(presented) {
        tracing::info!(user = %person.name(), "console post refused: csrf token missing or wrong");
        return Err(pages::error_page(
            Some(&person),
            StatusCode::FORBIDDEN,
            "the form's security token is missing or out of date; reload the page and try again",
        ));
    }
    Ok((person, form))
}

/// A posted form ([`posted`]) from a person allowed `scope` (`what` names
/// the act in the refusal), with the reason every such act must give.
async fn posted_act(
    state: &AppState,
    request: axum::extract::Request,
    scope: Scope,
    what: &str,
) -> Result<(Person, String), Response> {
    let (person, form) = posted(state, request).await?;
    person.authorize(scope, what)?;
    let Some(reason) = pages::reason_of(&form) else {
        return Err(pages::error_page(
            Some(&person),
            StatusCode::BAD_REQUEST,
            "reason: say why",
        ));
    };
    Ok((person, reason))
}

/// Writes to the audit trail; a failure is logged, not shown (the action
/// itself is in the event log already).
async fn audit(
    state: &AppState,
    actor: &str,
    address: &str,
    action: &str,
    target: &str,
    detail: &str,
) {
    let db = state.console.db.clone();
    let (actor, address, action, target, detail) = (
        actor.to_string(),
        address.to_string(),
        action.to_string(),
        target.to_string(),
        detail.to_string(),
    );
    let written =
        tokio::task::spawn_blocking(move || db.audit(&actor, &address, &action, &target, &detail))
            .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "audit trail write failed"),
        Err(e) => tracing::error!(error = %e, "audit trail write failed"),
    }
}

/// A label or an analyst action that reached Custos as an event (through
/// `POST /v1/events` or a Sift route), as the audit trail writes it.
pub(crate) struct ActionSentAsEvent {
    event_id: String,
    action: String,
    target: String,
    detail: String,
}

/// The labels and analyst actions among `events`. They change what Custos
/// does (deny destinations, confirm campaigns, release holds), so the audit
/// trail names them whichever route brought them; ordinary account events
/// are data and stay out of it.
pub(crate) fn actions_sent_as_events(
    events: &[custos_runtime::PreparedEvent],
) -> Vec<ActionSentAsEvent> {
    use custos_core::event::Details;
    events
        .iter()
        .filter_map(|prepared| {
            let event = &prepared.event;
            let (action, target, detail) = match &event.details {
                Details::Label {
                    label,
                    target_event_id,
                    analyst,
                } => {
                    let mut detail = label.as_str().to_string();
                    if let Some(target) = target_event_id {
                        detail.push_str(&format!(" on event {target}"));
                    }
                    if let Some(analyst) = analyst {
                        detail.push_str(&format!(" by {analyst}"));
                    }
                    ("label".to_string(), event.account_id.clone(), detail)
                }
                Details::AnalystAction {
                    action,
                    target_id,
                    analyst,
                    reason,
                    value,
                } => {
                    let target = match target_id {
                        Some(id) => format!("{}/{id}", event.account_id),
                        None => event.account_id.clone(),
                    };
                    let mut detail = format!("by {analyst}: {reason}");
                    if let Some(value) = value {
                        detail.push_str(&format!(" ({value})"));
                    }
                    (
                        format!("analyst_action:{}", action.as_str()),
                        target,
                        detail,
                    )
                }
                _ => return None,
            };
            Some(ActionSentAsEvent {
                event_id: event.event_id.clone(),
                action,
                target,
                detail,
            })
        })
        .collect()
}

/// Writes the actions among a request's events that were applied (not
/// duplicates of ones already stored) to the audit trail, as `key:NAME`
/// from `address`, with the event id in the detail.
pub(crate) async fn audit_actions_sent_as_events(
    state: &AppState,
    key_name: &str,
    address: Option<&PeerAddr>,
    actions: Vec<ActionSentAsEvent>,
    outcomes: &[custos_runtime::Outcome],
) {
    if actions.is_empty() {
        return;
    }
    let duplicates: std::collections::HashSet<&str> = outcomes
        .iter()
        .filter(|o| o.duplicate)
        .map(|o| o.event_id.as_str())
        .collect();
    let actor = format!("key:{key_name}");
    let address = address.map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string());
    let rows: Vec<db::AuditRow> = actions
        .into_iter()
        .filter(|a| !duplicates.contains(a.event_id.as_str()))
        .map(|a| db::AuditRow {
            actor: actor.clone(),
            address: address.clone(),
            action: a.action,
            target: a.target,
            detail: format!("{} (event {})", a.detail, a.event_id),
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let db = state.console.db.clone();
    match tokio::task::spawn_blocking(move || db.audit_many(&rows)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "audit trail write failed"),
        Err(e) => tracing::error!(error = %e, "audit trail write failed"),
    }
}

/// Writes what an API key changed to the audit trail, once the route
/// answered with success: `key:NAME`, the address, the route and the path.
/// (`POST /v1/events` is left to [`audit_actions_sent_as_events`]: its
/// labels and analyst actions are audited, its account events are data.)
pub(crate) async fn audit_api_action(
    state: AppState,
    route: &'static str,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let key = request
        .extensions()
        .get::<Caller>()
        .map(|c| c.key_name.to_string());
    let address = address_of(request.extensions());
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if let Some(key) = key
        && response.status().is_success()
    {
        audit(
            &state,
            &format!("key:{key}"),
            &address,
            route,
            &path,
            response.status().as_str(),
        )
        .await;
    }
    response
}
