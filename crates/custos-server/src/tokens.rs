//! `POST /v1/tokens/match`: which of the platform's destination numbers
//! Custos has seen, by token, as `custos tokens match` does offline.
//!
//! The platform posts `{"destinations": [{"institution_id",
//! "account_number"}, ...]}`; each number is turned into its token with
//! the server's token key, and one walk of the accounts' state says which
//! accounts set each token as their payout destination. The answer gives,
//! per entry and by its index, the institution, the token and the
//! accounts; never the number, not even its last digits: the platform
//! joins the answer back to its own list by index. Numbers are never
//! logged, and a body that does not parse is refused without quoting it
//! (serde's messages quote the value they choke on).
//!
//! Admin keys only: a number in, the accounts that paid to it out.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, Code};

/// Destinations per request at most.
pub const MAX_DESTINATIONS: usize = 10_000;
/// Accounts walked at most (the console search's bound).
const SCAN_LIMIT: usize = 200_000;

/// The platform's destination numbers to match.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchBody {
    #[schema(max_items = 10_000)]
    destinations: Vec<Written>,
}

/// One destination as the platform holds it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DestinationNumber)]
pub(crate) struct Written {
    institution_id: String,
    account_number: String,
}

pub async fn match_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = crate::events::read_body(&headers, body, state.limits.max_body_bytes).await?;
    let body: MatchBody = serde_json::from_slice(&bytes).map_err(|e| {
        // Only where it failed: serde's own message may quote a number.
        ApiError::new(
            Code::InvalidJson,
            format!(
                "expected {{\"destinations\": [{{\"institution_id\": \"...\", \"account_number\": \"...\"}}]}} \
                 (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if body.destinations.len() > MAX_DESTINATIONS {
        return Err(ApiError::new(
            Code::BatchTooLarge,
            format!(
                "destinations: {} entries, at most {MAX_DESTINATIONS}",
                body.destinations.len()
            ),
        )
        .with_field("destinations"));
    }
    let tokenizer = state.runtime.parser().tokenizer();
    let mut tokenized = Vec::with_capacity(body.destinations.len());
    for (index, written) in body.destinations.iter().enumerate() {
        let Some(pair) =
            tokenizer.token_of_written(&written.institution_id, &written.account_number)
        else {
            return Err(ApiError::new(
                Code::InvalidField,
                format!(
                    "destinations[{index}]: institution_id and account_number need letters or digits"
                ),
            )
            .with_field(format!("destinations[{index}]")));
        };
        tokenized.push(pair);
    }
    drop(body);
    let tokens: Vec<String> = tokenized.iter().map(|(_, token)| token.clone()).collect();
    let found = state
        .runtime
        .read(move |engine| engine.accounts_by_destination_token(&tokens, SCAN_LIMIT))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let found: custos_core::search::TokenMatches = serde_json::from_value(found)
        .map_err(|e| ApiError::new(Code::Internal, format!("reading the matches: {e}")))?;
    let mut matched = 0;
    let destinations: Vec<serde_json::Value> = tokenized
        .into_iter()
        .enumerate()
        .map(|(index, (institution_id, token))| {
            let accounts = found.accounts.get(&token).cloned().unwrap_or_default();
            if !accounts.is_empty() {
                matched += 1;
            }
            json!({
                "index": index,
                "institution_id": institution_id,
                "destination_token": token,
                "matched": !accounts.is_empty(),
                "accounts": accounts,
            })
        })
        .collect();
    tracing::info!(
        destinations = destinations.len(),
        matched,
        "destination numbers matched against tokens"
    );
    Ok(Json(json!({
        "destinations": destinations,
        "matched": matched,
        "accounts_scanned": found.scanned,
        "cut": found.cut,
    }))
    .into_response())
}
