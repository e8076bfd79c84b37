//! Running a [`Plan`]: the checks that need state, Custos's parser, and one
//! all-or-nothing submission to the engine.
//!
//! Every step is parsed first (so a bad field is reported even when a
//! check would have skipped its event), then checked, then the survivors
//! are submitted together: either all of them are recorded or none.

use std::collections::BTreeMap;

use custos_core::decision::Decision;
use custos_core::{Details, EventError, EventErrorKind};
use custos_runtime::{PreparedEvent, SubmitError};
use serde_json::{Value, json};

use super::events::{Check, Plan, Step};
use super::{SiftError, unavailable};
use crate::AppState;

/// Stored events read, newest first, to find an account's last e-mail or
/// phone number, its scores and its applied decisions.
pub(crate) const ACCOUNT_SCAN_LIMIT: usize = 1000;

/// One Custos event recorded for a Sift request (or found already stored).
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub event_id: String,
    pub event_type: String,
    pub decision: Decision,
    /// Already stored: answered from the log, nothing changed.
    pub duplicate: bool,
}

/// What a Sift request did.
#[derive(Debug, Clone)]
pub(crate) struct Executed {
    pub account_id: String,
    pub recorded: Vec<Recorded>,
    /// Why nothing was recorded, when nothing was.
    pub not_recorded: Option<String>,
}

impl Executed {
    /// The `custos` object of an answer: what Custos did with the request.
    pub fn summary(&self) -> Value {
        let events: Vec<Value> = self
            .recorded
            .iter()
            .map(|r| {
                let mut event = json!({
                    "event_id": r.event_id,
                    "type": r.event_type,
                    "action": r.decision.action,
                    "score": r.decision.score,
                });
                if r.duplicate {
                    event["duplicate"] = json!(true);
                }
                // Which channels may vouch for the account now: the platform
                // steps up or confirms a hold through these (docs/sift.md).
                if let Some(verification) = &r.decision.verification {
                    event["verification"] = json!(verification);
                }
                event
            })
            .collect();
        let mut summary = json!({"account_id": self.account_id, "events": events});
        if let Some(why) = &self.not_recorded {
            summary["not_recorded"] = json!(why);
        }
        summary
    }
}

/// Who sent the request, for the audit trail: the key's name and the
/// client's address.
pub(crate) struct Sender<'a> {
    pub key_name: &'a str,
    pub address: Option<&'a crate::console::PeerAddr>,
}

pub(crate) async fn execute(
    state: &AppState,
    sender: Sender<'_>,
    plan: Plan,
) -> Result<Executed, SiftError> {
    let Plan {
        account_id,
        steps,
        not_recorded,
    } = plan;
    let parser = state.runtime.parser();
    let mut parsed = Vec::with_capacity(steps.len());
    for step in steps {
        let event = parser
            .parse_value(Value::Object(step.event.clone()))
            .map_err(|e| translate(e, &step))?;
        state
            .time_bound
            .check_now(&event)
            .map_err(|e| SiftError::invalid(format!("`$time`: {}", e.problem)))?;
        parsed.push((step, event));
    }
    let current_destination = if parsed
        .iter()
        .any(|(s, _)| s.check == Check::IfDestinationChanged)
    {
        state
            .runtime
            .account(&account_id)
            .await
            .map_err(unavailable)?
            .and_then(|a| a.destination.map(|d| d.destination))
    } else {
        None
    };
    let wanted: Vec<&'static str> = parsed
        .iter()
        .filter_map(|(s, _)| match &s.check {
            Check::IfContactChanged { attribute, .. } => Some(*attribute),
            _ => None,
        })
        .collect();
    let previous = if wanted.is_empty() {
        BTreeMap::new()
    } else {
        last_attribute_values(state, &account_id, wanted).await?
    };
    let store = state.runtime.store().clone();
    // Index in the plan, and what answers it.
    let mut answers: Vec<(usize, Recorded)> = Vec::new();
    let mut submit: Vec<(usize, PreparedEvent)> = Vec::new();
    for (index, (step, event)) in parsed.into_iter().enumerate() {
        match &step.check {
            Check::Always => {}
            Check::IfDestinationChanged => {
                if let (Details::PayoutDestinationChange { destination, .. }, Some(current)) =
                    (&event.details, &current_destination)
                    && destination.same_account(current)
                {
                    continue;
                }
            }
            Check::IfContactChanged { attribute, value } => match previous.get(*attribute) {
                Some(last)
                    if Check::normalize(attribute, last) != Check::normalize(attribute, value) => {}
                _ => continue,
            },
            Check::OncePerEventId => {
                let store = store.clone();
                let lookup = event.event_id.clone();
                let stored = tokio::task::spawn_blocking(move || store.get_event(&lookup))
                    .await
                    .map_err(unavailable)?
                    .map_err(unavailable)?;
                if let Some(record) = stored {
                    let decision: Decision = serde_json::from_str(&record.decision_json)
                        .map_err(|e| SiftError::internal(format!("stored decision: {e}")))?;
                    answers.push((
                        index,
                        Recorded {
                            event_id: record.event_id,
                            event_type: record.event_type,
                            decision,
                            duplicate: true,
                        },
                    ));
                    continue;
                }
            }
        }
        let prepared = PreparedEvent::new(event, parser)
            .map_err(|e| SiftError::from_api(crate::events::submit_error(e)))?;
        submit.push((index, prepared));
    }
    if !submit.is_empty() {
        let (indexes, events): (Vec<usize>, Vec<PreparedEvent>) = submit.into_iter().unzip();
        let types: Vec<String> = events
            .iter()
            .map(|e| e.event.event_type.as_str().to_string())
            .collect();
        let actions = crate::console::actions_sent_as_events(&events);
        let outcomes = state.runtime.submit(events).await.map_err(|e| match e {
            SubmitError::Conflict { event_id, .. } => SiftError::invalid(format!(
                "event {event_id:?} is already recorded with a different body; send the \
                 same request to retry"
            )),
            e => SiftError::from_api(crate::events::submit_error(e)),
        })?;
        crate::console::audit_actions_sent_as_events(
            state,
            sender.key_name,
            sender.address,
            actions,
            &outcomes,
        )
        .await;
        for ((index, event_type), outcome) in indexes.into_iter().zip(types).zip(outcomes) {
            answers.push((
                index,
                Recorded {
                    event_id: outcome.event_id,
                    event_type,
                    decision: outcome.decision,
                    duplicate: outcome.duplicate,
                },
            ));
        }
    }
    answers.sort_by_key(|(index, _)| *index);
    let recorded: Vec<Recorded> = answers.into_iter().map(|(_, r)| r).collect();
    let not_recorded = if recorded.is_empty() {
        Some(
            not_recorded
                .unwrap_or("nothing in the request changes what Custos tracks")
                .to_string(),
        )
    } else {
        None
    };
    Ok(Executed {
        account_id,
        recorded,
        not_recorded,
    })
}

/// The last recorded value of each attribute, from the account's newest
/// [`ACCOUNT_SCAN_LIMIT`] events.
async fn last_attribute_values(
    state: &AppState,
    account_id: &str,
    wanted: Vec<&'static str>,
) -> Result<BTreeMap<&'static str, String>, SiftError> {
    let store = state.runtime.store().clone();
    let account = account_id.to_string();
    let records =
        tokio::task::spawn_blocking(move || store.account_events(&account, ACCOUNT_SCAN_LIMIT))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
    let mut found = BTreeMap::new();
    for record in records {
        if found.len() == wanted.len() {
            break;
        }
        let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(&record.event_json) else {
            continue;
        };
        // Contact attributes (e-mail, phone) are sealed at rest.
        state.runtime.parser().open_stored(&mut event);
        for attribute in &wanted {
            if found.contains_key(attribute) {
                continue;
            }
            if let Some(value) = event
                .get("attributes")
                .and_then(|a| a.get(*attribute))
                .and_then(Value::as_str)
            {
                found.insert(*attribute, value.to_string());
            }
        }
    }
    Ok(found)
}

/// A Custos parser error, renamed to the Sift field it came from.
fn translate(e: EventError, step: &Step) -> SiftError {
    let field = match e.field.as_str() {
        "account_id" => "$user_id".to_string(),
        "session_id" => "$session_id".to_string(),
        "ip" => "$ip".to_string(),
        "user_agent" => "$browser.$user_agent".to_string(),
        "device_id" => "$app.$device_unique_id".to_string(),
        "failure_reason" => "$failure_reason".to_string(),
        "method" => "$verification_type".to_string(),
        "payout_id" => "$transaction_id".to_string(),
        "amount" => "$amount".to_string(),
        "currency" => "$currency_code".to_string(),
        "analyst" => "$analyst".to_string(),
        "attributes" => "custom fields".to_string(),
        other if other.starts_with("destination") => {
            let path = step.destination_path.unwrap_or("$payment_methods[0]");
            format!("{path} ({other})")
        }
        other => other.to_string(),
    };
    let message = format!("`{field}`: {}", e.problem);
    match e.kind {
        EventErrorKind::MissingField => SiftError::new(
            axum::http::StatusCode::BAD_REQUEST,
            super::status::MISSING_FIELD,
            message,
        ),
        _ => SiftError::invalid(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_core::decision::VerificationRequest;
    use custos_core::event::{Credential, VerificationChannel};

    fn recorded(verification: Option<VerificationRequest>) -> Recorded {
        let mut decision = Decision::from_reasons(
            "default".into(),
            1,
            Vec::new(),
            Vec::new(),
            custos_core::Action::Block,
        );
        decision.verification = verification;
        Recorded {
            event_id: "e1".into(),
            event_type: "login".into(),
            decision,
            duplicate: false,
        }
    }

    #[test]
    fn the_summary_carries_which_channels_may_vouch() {
        let request =
            VerificationRequest::for_untrusted(&[Credential::Phone], vec!["phone_change".into()]);
        let executed = Executed {
            account_id: "seller-42".into(),
            recorded: vec![recorded(request), recorded(None)],
            not_recorded: None,
        };
        let summary = executed.summary();
        let first = &summary["events"][0]["verification"];
        assert_eq!(first["channels"][0], json!(VerificationChannel::PriorPhone));
        assert!(
            first["refused"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("sms"))),
            "{first}"
        );
        assert_eq!(first["because"], json!(["phone_change"]));
        assert!(summary["events"][1].get("verification").is_none());
    }
}
