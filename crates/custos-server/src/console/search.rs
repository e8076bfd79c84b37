//! The console's search: by account id, event id, payout id, case id,
//! destination token, last four digits (with an institution), IP address
//! or prefix, and device id.
//!
//! Ids are looked up directly (the engine's accounts, holds and cases, the
//! store's events). Destinations, networks and devices have no index: the
//! search walks at most [`SCAN_LIMIT`] accounts of the engine's state and
//! stops at [`MAX_HITS`] matches (`custos_core::search`), saying so.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use custos_core::search::{AccountQuery, AccountSearch};
use serde::{Deserialize, Serialize};

use super::pages::{Nav, account_href, hold_href, html, nav, reader, seg};
use crate::AppState;

/// Accounts walked at most by one search.
pub const SCAN_LIMIT: usize = 200_000;
/// Matches listed at most.
pub const MAX_HITS: usize = 200;

#[derive(Deserialize, Default)]
pub struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    institution: String,
}

#[derive(Serialize, Deserialize)]
struct Hit {
    href: String,
    label: String,
    matched: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    nav: Option<Nav>,
    q: String,
    institution: String,
    hits: Vec<Hit>,
    cut: bool,
    scanned: usize,
    max_hits: usize,
}

/// The walks a query calls for, by its shape: an address, a prefix, four
/// digits, a token; a device id may be anything, so always that.
fn walks(q: &str, institution: &str) -> Vec<AccountQuery> {
    let mut out = Vec::new();
    if let Ok(ip) = q.parse() {
        out.push(AccountQuery::Ip(ip));
    } else if q.len() >= 2
        && q.chars()
            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
        && q.contains(['.', ':'])
    {
        out.push(AccountQuery::IpPrefix(q.to_string()));
    }
    if q.len() == 4 && q.bytes().all(|b| b.is_ascii_digit()) {
        out.push(AccountQuery::Last4 {
            last4: q.to_string(),
            institution: institution
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect(),
        });
    }
    out.push(AccountQuery::DestinationToken(q.to_string()));
    out.push(AccountQuery::Device(q.to_string()));
    out
}

pub async fn search(
    State(state): State<AppState>,
    Query(form): Query<SearchForm>,
    request: Parts,
) -> Response {
    let person = match reader(&state, &request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let q = form.q.trim().to_string();
    let institution = form.institution.trim().to_string();
    let mut hits = Vec::new();
    let mut cut = false;
    let mut scanned = 0;
    if !q.is_empty() {
        let lookup = q.clone();
        let queries = walks(&q, &institution);
        let found = state
            .runtime
            .read(move |engine| {
                let mut hits = Vec::new();
                if engine.account(&lookup).is_some() {
                    hits.push(Hit {
                        href: account_href(&lookup),
                        label: format!("account {lookup}"),
                        matched: "account id".into(),
                    });
                }
                for hold in engine.holds().find(&lookup) {
                    hits.push(Hit {
                        href: hold_href(&hold.account_id, &hold.hold_id),
                        label: format!(
                            "{} {} of {}",
                            hold.kind.as_str(),
                            hold.hold_id,
                            hold.account_id
                        ),
                        matched: format!("payout id, {}", hold.status.as_str()),
                    });
                }
                if let Some(case) = engine.cases().get(&lookup) {
                    hits.push(Hit {
                        href: format!("/console/cases/{}", seg(&case.id)),
                        label: format!("case {}", case.id),
                        matched: format!("case id, {}", case.status.as_str()),
                    });
                }
                let mut walked = AccountSearch::default();
                for query in &queries {
                    let found = engine.search_accounts(query, SCAN_LIMIT, MAX_HITS);
                    walked.scanned = walked.scanned.max(found.scanned);
                    walked.cut |= found.cut;
                    walked.hits.extend(found.hits);
                }
                for hit in walked.hits {
                    hits.push(Hit {
                        href: account_href(&hit.account_id),
                        label: format!("account {}", hit.account_id),
                        matched: hit.matched,
                    });
                }
                (hits, walked.cut, walked.scanned)
            })
            .await
            .ok()
            .and_then(|v| serde_json::from_value::<(Vec<Hit>, bool, usize)>(v).ok());
        if let Some((found, was_cut, walked)) = found {
            hits = found;
            cut = was_cut;
            scanned = walked;
        }
        let store = state.runtime.store().clone();
        let id = q.clone();
        let event = tokio::task::spawn_blocking(move || store.get_event(&id).ok().flatten())
            .await
            .ok()
            .flatten();
        if let Some(record) = event {
            hits.insert(
                0,
                Hit {
                    href: account_href(&record.account_id),
                    label: format!("event {} of {}", record.event_id, record.account_id),
                    matched: format!("event id, {}", record.event_type),
                },
            );
        }
    }
    html(
        StatusCode::OK,
        &SearchPage {
            nav: nav(&person),
            q,
            institution,
            hits,
            cut,
            scanned,
            max_hits: MAX_HITS,
        },
    )
}
