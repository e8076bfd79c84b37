//! The route table: every route's method, path, key and scope in one place.
//!
//! The router is built from [`ROUTES`] and nothing else, and each row must
//! say how the route is reached ([`Access`]): open (the probes an
//! orchestrator calls), with a bearer key holding a scope, or with a key
//! where Sift's clients send it, holding a scope. A route therefore cannot
//! exist without a scope, and `docs/keys.md` is rendered from the same rows
//! (a test fails when it is stale; `UPDATE_DOCS=1` rewrites it).
//!
//! Bearer routes are checked before their handler runs
//! ([`crate::auth::require_scope`]), which hands the handler the
//! [`crate::auth::Caller`]. Sift's clients may send the key inside the JSON
//! body, which only the handler reads, so on Sift routes the table puts the
//! route's scope into the request ([`Required`]) and the handler checks it
//! with `crate::sift::auth::authorize` once it has the key. Either way the
//! check itself is [`crate::auth::authorize`], and one test walks every row
//! to prove that a key without the scope is refused and a key with it is
//! not.
//!
//! Every routed request runs in a `request` span with its method, route and,
//! once identified, the name of its key (never the key).

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use axum::routing::{MethodFilter, MethodRouter};
use custos_config::Scope::{self, Admin, EventsWrite, HoldsWrite, LabelsWrite, Read, RulesWrite};
use tracing::Instrument;

use crate::{
    AppState, analyst, cases, events, evidence, health, openapi, rules, sift, tokens, webhooks,
};

/// How a route is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key: liveness and readiness probes.
    Open,
    /// `Authorization: Bearer <key>`, with a key that holds the scope.
    Bearer(Scope),
    /// The key where Sift's clients send it (`$api_key` in the body, the
    /// `api_key` query parameter, HTTP Basic), holding the scope.
    Sift(Scope),
    /// `Bearer(scope)` when `http.metrics_require_key` says so, else open.
    BearerIfMetricsKey(Scope),
}

impl Access {
    /// The scope a key needs, if one is needed at all.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Access::Open => None,
            Access::Bearer(s) | Access::Sift(s) | Access::BearerIfMetricsKey(s) => Some(s),
        }
    }
}

/// One row of the table.
pub struct Route {
    /// `GET`, `POST`, ...
    pub method: &'static str,
    /// The path as axum matches it (`{name}` is a parameter).
    pub path: &'static str,
    /// `METHOD path`, as errors and logs name the route.
    pub name: &'static str,
    pub access: Access,
    /// What the route does, one line of Markdown (`docs/keys.md`).
    pub what: &'static str,
    filter: MethodFilter,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

/// The scope a Sift route needs, put into its requests by the table for
/// the handler to check once it has read the key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Required {
    pub scope: Scope,
    /// The route, as the error names it.
    pub route: &'static str,
}

/// Declares [`ROUTES`]: `METHOD "path" => access, handler, "what";`.
macro_rules! route_table {
    ($($method:ident $path:literal => $access:expr, $handler:path, $what:literal;)+) => {
        /// Every route of the API, in the order of `docs/keys.md`.
        pub const ROUTES: &[Route] = &[$(Route {
            method: stringify!($method),
            path: $path,
            name: concat!(stringify!($method), " ", $path),
            access: $access,
            what: $what,
            filter: MethodFilter::$method,
            handler: |filter| axum::routing::on(filter, $handler),
        },)+];
    };
}

use Access::{Bearer, BearerIfMetricsKey, Open, Sift};

route_table! {
    POST "/v1/events" => Bearer(EventsWrite), events::post_events,
        "Send events (one, an array, or NDJSON). `label` events need `labels:write` too, \
         `analyst_action` events `holds:write` too.";
    GET "/v1/events/{event_id}" => Bearer(Read), crate::get_event,
        "A stored event with its decision.";
    GET "/v1/accounts/{account_id}" => Bearer(Read), crate::get_account,
        "An account's state and recent events.";
    GET "/v1/rules" => Bearer(Read), rules::get_rules,
        "The live rule set.";
    POST "/v1/rules" => Bearer(RulesWrite), rules::post_rules,
        "Install a rule set.";
    POST "/v1/rules/check" => Bearer(Read), rules::check_rules,
        "Check a rule set without installing it.";
    GET "/v1/rules/{version}" => Bearer(Read), rules::get_rule_version,
        "A stored rule-set version.";
    GET "/v1/lists/{name}" => Bearer(Read), rules::get_list,
        "A named list.";
    PUT "/v1/lists/{name}" => Bearer(RulesWrite), rules::put_list,
        "Replace a list's entries (a new rule-set version).";
    PATCH "/v1/lists/{name}" => Bearer(RulesWrite), rules::patch_list,
        "Add and remove list entries (a new rule-set version).";
    GET "/v1/webhooks" => Bearer(Read), webhooks::get_webhooks,
        "Webhook delivery per endpoint.";
    GET "/v1/webhooks/dead" => Bearer(Read), webhooks::get_dead_webhooks,
        "Deliveries given up, with the error that ended them.";
    POST "/v1/webhooks/{webhook_id}/retry" => Bearer(Admin), webhooks::retry_webhook,
        "Deliver a dead webhook again (`?endpoint=` for one endpoint only).";
    GET "/v1/holds" => Bearer(Read), analyst::list_holds,
        "Payout holds.";
    GET "/v1/holds/{hold_id}" => Bearer(Read), analyst::get_hold,
        "One hold.";
    POST "/v1/payouts/{payout_id}/release" => Bearer(HoldsWrite), analyst::release_payout,
        "Release a held payout.";
    POST "/v1/payouts/{payout_id}/cancel" => Bearer(HoldsWrite), analyst::cancel_payout,
        "Cancel a held payout.";
    POST "/v1/accounts/{account_id}/clear" => Bearer(HoldsWrite), analyst::clear_account,
        "End an account's at-risk state.";
    GET "/v1/campaigns" => Bearer(Read), analyst::list_campaigns,
        "Campaigns found across accounts.";
    GET "/v1/campaigns/{campaign_id}" => Bearer(Read), analyst::get_campaign,
        "One campaign.";
    GET "/v1/campaigns/{campaign_id}/evidence" => Bearer(evidence::EXPORT_SCOPE),
        evidence::get_campaign_evidence,
        "A campaign's signed evidence pack (a tar file; docs/evidence.md).";
    POST "/v1/campaigns/{campaign_id}/confirm" => Bearer(HoldsWrite), analyst::confirm_campaign,
        "Confirm a campaign.";
    POST "/v1/campaigns/{campaign_id}/dismiss" => Bearer(HoldsWrite), analyst::dismiss_campaign,
        "Dismiss a campaign.";
    POST "/v1/tokens/match" => Bearer(Admin), tokens::match_tokens,
        "Which of the platform's destination numbers Custos has seen: per number (by index), \
         its token and the accounts that paid to it; numbers are never echoed or logged \
         (docs/evidence.md).";
    GET "/v1/cases" => Bearer(Read), cases::list_cases,
        "Cases, newest first (`?status=`, `?assignee=`, `?account_id=`, `?limit=`).";
    POST "/v1/cases" => Bearer(HoldsWrite), cases::open_case,
        "Open a case on an account.";
    GET "/v1/cases/{case_id}/evidence" => Bearer(evidence::EXPORT_SCOPE),
        evidence::get_case_evidence,
        "A case's signed evidence pack: its accounts, from its opening to its last update \
         (docs/evidence.md).";
    GET "/v1/cases/{case_id}" => Bearer(Read), cases::get_case,
        "One case with its notes and history.";
    POST "/v1/cases/{case_id}/notes" => Bearer(HoldsWrite), cases::note_case,
        "Add a note to a case.";
    POST "/v1/cases/{case_id}/assign" => Bearer(HoldsWrite), cases::assign_case,
        "Assign a case.";
    POST "/v1/cases/{case_id}/status" => Bearer(HoldsWrite), cases::set_case_status,
        "Set a case open or investigating.";
    POST "/v1/cases/{case_id}/accounts" => Bearer(HoldsWrite), cases::add_case_account,
        "Add an account to a case.";
    POST "/v1/cases/{case_id}/merge" => Bearer(HoldsWrite), cases::merge_case,
        "Merge a case into another.";
    POST "/v1/cases/{case_id}/resolve" => Bearer(HoldsWrite), cases::resolve_case,
        "Resolve a case; fraud confirmed labels and confirms, false positive clears and \
         releases (not above the four-eyes amount).";
    POST "/v205/events" => Sift(EventsWrite), sift::routes::post_events,
        "Sift's Events API. Events that become labels (`$chargeback`, a \
         `$security_notification` answered `$compromised`) need `labels:write` too.";
    GET "/v205/score/{user_id}" => Sift(Read), sift::routes::get_score,
        "Sift's Score API.";
    GET "/v205/users/{user_id}/score" => Sift(Read), sift::routes::get_user_score,
        "Sift's user score.";
    POST "/v205/users/{user_id}/score" => Sift(Read), sift::routes::get_user_score,
        "Sift's rescore (changes nothing in Custos).";
    POST "/v205/users/{user_id}/labels" => Sift(LabelsWrite), sift::routes::post_label,
        "Sift's Labels API: record a label.";
    DELETE "/v205/users/{user_id}/labels" => Sift(LabelsWrite), sift::routes::delete_labels,
        "Sift's unlabel: ends the at-risk state a label caused.";
    GET "/v3/accounts/{account_id}/decisions" => Sift(Read), sift::decisions::list_decisions,
        "Sift's decisions that can be applied.";
    GET "/v3/accounts/{account_id}/users/{user_id}/decisions" => Sift(Read),
        sift::decisions::get_user_decisions,
        "A user's latest applied decisions.";
    POST "/v3/accounts/{account_id}/users/{user_id}/decisions" => Sift(LabelsWrite),
        sift::decisions::apply_user_decision,
        "Apply a decision to a user (a label).";
    GET "/livez" => Open, health::livez,
        "Liveness of the process and the engine thread.";
    GET "/healthz" => Open, health::livez,
        "`/livez` under its older name.";
    GET "/readyz" => Open, health::readyz,
        "Readiness to commit.";
    GET "/metrics" => BearerIfMetricsKey(Read), crate::metrics,
        "Prometheus text; open unless `http.metrics_require_key` (the default off loopback).";
    GET "/openapi.json" => Open, openapi::get_openapi,
        "This API's OpenAPI 3.1 description (also `docs/openapi.json`).";
}

/// The router of [`ROUTES`], each route behind the checks its [`Access`]
/// names. `metrics_require_key`: `http.metrics_require_key` as resolved for
/// the listen address.
pub(crate) fn router(state: &AppState, metrics_require_key: bool) -> Router<AppState> {
    let mut router = Router::new();
    for route in ROUTES {
        let mut methods = (route.handler)(route.filter);
        let bearer = match route.access {
            Access::Bearer(scope) => Some(scope),
            Access::BearerIfMetricsKey(scope) if metrics_require_key => Some(scope),
            Access::BearerIfMetricsKey(_) | Access::Open | Access::Sift(_) => None,
        };
        // Inside the key check, which leaves the caller in the request:
        // what a key changes goes to the console's audit trail too.
        if bearer.is_some() && route.method != "GET" && route.path != "/v1/events" {
            let state = state.clone();
            methods = methods.route_layer(from_fn(move |request: Request, next: Next| {
                crate::console::audit_api_action(state.clone(), route.name, request, next)
            }));
        }
        if let Some(scope) = bearer {
            let state = state.clone();
            methods = methods.route_layer(from_fn(move |request: Request, next: Next| {
                crate::auth::require_scope(state.clone(), scope, route.name, request, next)
            }));
        }
        if let Access::Sift(scope) = route.access {
            let required = Required {
                scope,
                route: route.name,
            };
            methods = methods.route_layer(from_fn(move |mut request: Request, next: Next| {
                request.extensions_mut().insert(required);
                next.run(request)
            }));
        }
        // Outermost: the key checks above run inside the span.
        methods = methods.route_layer(from_fn(move |request: Request, next: Next| {
            let span = tracing::info_span!(
                "request",
                method = route.method,
                route = route.path,
                key = tracing::field::Empty,
            );
            next.run(request).instrument(span)
        }));
        router = router.route(route.path, methods);
    }
    router
}

/// `docs/keys.md`'s generated part: the scopes, then every route.
pub fn render_doc_tables() -> String {
    let mut out = String::from("| scope | allows |\n|---|---|\n");
    for scope in Scope::ALL {
        out.push_str(&format!("| `{scope}` | {} |\n", scope.description()));
    }
    out.push_str("\n| route | key | scope | what |\n|---|---|---|---|\n");
    for route in ROUTES {
        let (key, scope) = match route.access {
            Access::Open => ("none", "none".to_string()),
            Access::Bearer(s) => ("bearer", format!("`{s}`")),
            Access::Sift(s) => ("Sift", format!("`{s}`")),
            Access::BearerIfMetricsKey(s) => ("bearer, if required", format!("`{s}`")),
        };
        out.push_str(&format!(
            "| `{} {}` | {key} | {scope} | {} |\n",
            route.method, route.path, route.what
        ));
    }
    out
}

#[cfg(test)]
mod tests {

    use super::*;

    const BEGIN: &str = "<!-- generated from crates/custos-server/src/routes.rs -->\n";
    const END: &str = "<!-- end of generated tables -->\n";

    /// `docs/keys.md`'s tables are generated from [`ROUTES`] and
    /// [`Scope`]. When they differ this fails and prints the new tables;
    /// `UPDATE_DOCS=1 cargo test -p custos-server routes::tests` rewrites
    /// them in the file (the prose around them is kept).
    #[test]
    fn the_docs_tables_are_generated_from_the_route_table() {
        let doc = crate::generated_docs::read("keys.md");
        let start = doc.find(BEGIN).expect("docs/keys.md has the begin marker") + BEGIN.len();
        let end = start
            + doc[start..]
                .find(END)
                .expect("docs/keys.md has the end marker");
        crate::generated_docs::check(
            "keys.md",
            "routes::ROUTES",
            (&doc[..start], &doc[start..end], &doc[end..]),
            &render_doc_tables(),
        );
    }

    #[test]
    fn every_route_is_listed_once_and_every_write_needs_more_than_read() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            assert!(seen.insert(route.name), "{} twice", route.name);
            assert_eq!(route.name, format!("{} {}", route.method, route.path));
            let writes = !matches!(route.method, "GET" | "HEAD");
            // Sift's rescore is a POST that changes nothing.
            if writes
                && route.path != "/v205/users/{user_id}/score"
                && route.path != "/v1/rules/check"
            {
                assert!(
                    route.access.scope().is_some_and(|s| s != Read),
                    "{} changes state and needs a write scope",
                    route.name
                );
            }
        }
    }
}
