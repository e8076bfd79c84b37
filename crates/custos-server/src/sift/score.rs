//! Sift scores in [0, 1] from Custos's stored decisions.
//!
//! Custos has no model that outputs Sift's probabilities; what it has is a
//! decision with a score from 0 to 100 for every event, and sticky account
//! risk. The two scores Custos answers are read from those, so that they
//! say what Custos will do next:
//!
//! - `account_takeover`: the score of the account's latest decision on a
//!   login or a sensitive change (`login`, `password_reset_request`,
//!   `password_change`, `mfa_change`, `email_change`, `phone_change`,
//!   `payout_destination_change`, `verification`), divided by 100; at
//!   least [`AT_RISK_FLOOR`] while the account is at risk.
//! - `payment_abuse`: the score of the account's latest decision on money
//!   going out (`payout`, `loan_application`, `loan_disbursement`), divided
//!   by 100.
//!
//! An event whose decision cleared the account (a passed verification, a
//! `legit` label, an analyst's clearing) resets both to 0 until the next
//! decision of their kind. Only the account's newest
//! [`ACCOUNT_SCAN_LIMIT`] events are read.

use custos_core::decision::{Decision, EffectKind};
use custos_core::state::AtRisk;
use custos_store::StoredRecord;
use serde_json::{Value, json};

use super::events::SIFT_ABUSE_TYPES;
use super::execute::ACCOUNT_SCAN_LIMIT;
use super::{SiftError, unavailable};
use crate::AppState;

/// `account_takeover` is at least this while the account is at risk: the
/// score of the default policy's hold of a change in a risky session.
pub(crate) const AT_RISK_FLOOR: f64 = 0.7;

const TAKEOVER_EVENTS: &[&str] = &[
    "login",
    "password_reset_request",
    "password_change",
    "mfa_change",
    "email_change",
    "phone_change",
    "payout_destination_change",
    "verification",
];
const PAYMENT_EVENTS: &[&str] = &["payout", "loan_application", "loan_disbursement"];

/// The abuse types a request asks scores for (`abuse_types`): Custos
/// answers `account_takeover` and `payment_abuse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbuseTypes {
    pub account_takeover: bool,
    pub payment_abuse: bool,
}

impl AbuseTypes {
    pub const ALL: AbuseTypes = AbuseTypes {
        account_takeover: true,
        payment_abuse: true,
    };

    /// Reads a comma-separated `abuse_types`; other Sift abuse types are
    /// refused, naming them.
    pub fn parse(text: &str) -> Result<AbuseTypes, SiftError> {
        let mut wanted = AbuseTypes {
            account_takeover: false,
            payment_abuse: false,
        };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "account_takeover" => wanted.account_takeover = true,
                "payment_abuse" => wanted.payment_abuse = true,
                other if SIFT_ABUSE_TYPES.contains(&other) => {
                    return Err(SiftError::invalid(format!(
                        "`abuse_types`: Custos scores account_takeover and payment_abuse, not \
                         {other}"
                    )));
                }
                other => {
                    return Err(SiftError::invalid(format!(
                        "`abuse_types`: unknown abuse type {other:?}"
                    )));
                }
            }
        }
        if wanted.account_takeover || wanted.payment_abuse {
            Ok(wanted)
        } else {
            Ok(AbuseTypes::ALL)
        }
    }
}

/// What the scores and the applied decisions are read from.
pub(crate) struct AccountView {
    /// Custos has seen the account.
    pub known: bool,
    pub at_risk: Option<AtRisk>,
    /// The newest stored events of the account, newest first.
    pub records: Vec<StoredRecord>,
}

pub(crate) async fn load(state: &AppState, account_id: &str) -> Result<AccountView, SiftError> {
    let account = state
        .runtime
        .account(account_id)
        .await
        .map_err(unavailable)?;
    let store = state.runtime.store().clone();
    let lookup = account_id.to_string();
    let records =
        tokio::task::spawn_blocking(move || store.account_events(&lookup, ACCOUNT_SCAN_LIMIT))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
    Ok(AccountView {
        known: account.is_some() || !records.is_empty(),
        at_risk: account.and_then(|a| a.at_risk.map(|r| *r)),
        records,
    })
}

/// The decision a score is read from.
struct Basis {
    score: u32,
    reasons: Vec<Value>,
}

/// The latest decision on an event of `types`, or a zero basis if a
/// decision cleared the account first.
fn latest(records: &[StoredRecord], types: &[&str]) -> Option<Basis> {
    for record in records {
        let Ok(decision) = serde_json::from_str::<Decision>(&record.decision_json) else {
            continue;
        };
        if types.contains(&record.event_type.as_str()) {
            return Some(Basis {
                score: decision.score,
                reasons: decision
                    .reasons
                    .iter()
                    .map(|r| json!({"name": r.code, "value": r.message}))
                    .collect(),
            });
        }
        if decision
            .effects
            .iter()
            .any(|e| e.kind == EffectKind::AccountCleared)
        {
            return Some(Basis {
                score: 0,
                reasons: vec![json!({"name": "account_cleared",
                    "value": format!("the account was cleared by event {}", record.event_id)})],
            });
        }
    }
    None
}

/// Sift's `scores` object: `{"<abuse type>": {"score", "reasons"}}`.
pub(crate) fn scores(view: &AccountView, wanted: AbuseTypes) -> Value {
    let mut scores = serde_json::Map::new();
    if wanted.account_takeover {
        let basis = latest(&view.records, TAKEOVER_EVENTS);
        let (mut score, mut reasons) = basis
            .map(|b| (f64::from(b.score) / 100.0, b.reasons))
            .unwrap_or((0.0, Vec::new()));
        if let Some(at_risk) = &view.at_risk {
            score = score.max(AT_RISK_FLOOR);
            reasons.push(json!({"name": "account_at_risk",
                "value": format!("at risk since event {} ({})", at_risk.event_id,
                                 at_risk.event_type)}));
        }
        scores.insert(
            "account_takeover".into(),
            json!({"score": score.clamp(0.0, 1.0), "reasons": reasons}),
        );
    }
    if wanted.payment_abuse {
        let (score, reasons) = latest(&view.records, PAYMENT_EVENTS)
            .map(|b| (f64::from(b.score) / 100.0, b.reasons))
            .unwrap_or((0.0, Vec::new()));
        scores.insert(
            "payment_abuse".into(),
            json!({"score": score.clamp(0.0, 1.0), "reasons": reasons}),
        );
    }
    Value::Object(scores)
}
