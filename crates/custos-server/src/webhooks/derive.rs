//! Turning log records into webhooks, and webhooks into outbox rows.
//!
//! Pure functions of a stored record: the same record always gives the same
//! webhooks with the same ids, whichever process reads it and however often
//! (after a crash the dispatcher reads records again, and the outbox's
//! unique `(endpoint, id)` key drops the copies). A record gives:
//!
//! - `<seq>.0`: `decision.created`, sent to endpoints whose `min_action` the
//!   decision's action reaches;
//! - `<seq>.<n>` for the decision's n-th effect (from 1): the effect's type
//!   and data, plus the record's `event_id` and `account_id` where the data
//!   has none of its own (a hold's `event_id` stays the held payout's).
//!
//! The numbering does not depend on subscriptions, so one webhook has one id
//! at every endpoint. Records are read as JSON values rather than as
//! `Decision`s so that effect types added later pass through unchanged.

use custos_config::{DECISION_CREATED, WebhookEndpointConfig};
use custos_core::Action;
use custos_core::state::Timestamp;
use custos_store::{NewWebhook, StoredRecord};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Version of the envelope and of the data inside it.
pub const API_VERSION: u32 = 1;

/// One webhook, before it is addressed to endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// `<seq>.<n>`.
    pub id: String,
    /// `decision.created` or an effect's type.
    pub kind: String,
    pub data: Value,
}

/// What one record gives.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWebhooks {
    /// The decision's action; `None` if it is not one Custos knows, in which
    /// case `decision.created` goes to every endpoint that subscribes to it
    /// (a webhook too many beats a missed block).
    pub action: Option<Action>,
    /// `decision.created` first, then the effects in order.
    pub webhooks: Vec<Webhook>,
}

/// The webhooks a stored record gives. Fails only if its decision is not a
/// JSON object.
pub fn record_webhooks(record: &StoredRecord) -> Result<RecordWebhooks, String> {
    let decision: Value = serde_json::from_str(&record.decision_json)
        .map_err(|e| format!("seq {}: decision is not JSON: {e}", record.seq))?;
    let Value::Object(decision) = decision else {
        return Err(format!("seq {}: decision is not an object", record.seq));
    };
    let action = decision
        .get("action")
        .and_then(|a| serde_json::from_value::<Action>(a.clone()).ok());
    let field = |name: &str, default: Value| decision.get(name).cloned().unwrap_or(default);
    let mut webhooks = vec![Webhook {
        id: format!("{}.0", record.seq),
        kind: DECISION_CREATED.to_string(),
        data: json!({
            "event_id": record.event_id,
            "account_id": record.account_id,
            "event_type": record.event_type,
            "time": Timestamp(record.event_time),
            "seq": record.seq,
            "decision": {
                "action": field("action", Value::Null),
                "score": field("score", Value::Null),
                "reasons": field("reasons", json!([])),
                "shadow": field("shadow", json!([])),
                "policy": field("policy", Value::Null),
                "rules_version": field("rules_version", json!(0)),
            },
        }),
    }];
    let effects = decision.get("effects").and_then(Value::as_array);
    for (i, effect) in effects.into_iter().flatten().enumerate() {
        let Some(kind) = effect.get("type").and_then(Value::as_str) else {
            tracing::warn!(
                seq = record.seq,
                index = i,
                "decision effect without a type; skipped"
            );
            continue;
        };
        let mut data = match effect.get("data") {
            Some(Value::Object(map)) => map.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(other) => Map::from_iter([("value".to_string(), other.clone())]),
        };
        // The effect's own ids win: a hold's `event_id` is the held payout,
        // also when a later event (a label, an analyst) releases it.
        data.entry("event_id")
            .or_insert_with(|| Value::from(record.event_id.as_str()));
        data.entry("account_id")
            .or_insert_with(|| Value::from(record.account_id.as_str()));
        webhooks.push(Webhook {
            id: format!("{}.{}", record.seq, i + 1),
            kind: kind.to_string(),
            data: Value::Object(data),
        });
    }
    Ok(RecordWebhooks { action, webhooks })
}

/// Does `endpoint` get `webhook`, from a record decided `action`?
pub fn endpoint_wants(
    endpoint: &WebhookEndpointConfig,
    webhook: &Webhook,
    action: Option<Action>,
) -> bool {
    if !endpoint.subscribes_to(&webhook.kind) {
        return false;
    }
    webhook.kind != DECISION_CREATED || action.is_none_or(|a| a >= endpoint.min_action)
}

/// The body sent for a webhook: the envelope around its data.
pub fn envelope(webhook: &Webhook, created_secs: i64) -> String {
    #[derive(Serialize)]
    struct Envelope<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        created: i64,
        api_version: u32,
        data: &'a Value,
    }
    serde_json::to_string(&Envelope {
        id: &webhook.id,
        kind: &webhook.kind,
        created: created_secs,
        api_version: API_VERSION,
        data: &webhook.data,
    })
    .expect("a JSON value with string keys always serializes")
}

/// Outbox rows for a page of records: one per (endpoint, webhook) the
/// endpoint wants. Owns the strings that [`NewWebhook`]s borrow.
#[derive(Debug, Default)]
pub struct OutboxPlan {
    /// (id, type, body) of every webhook that some endpoint wants.
    bodies: Vec<(String, String, String)>,
    /// (endpoint index, body index).
    rows: Vec<(usize, usize)>,
    created_ms: i64,
}

impl OutboxPlan {
    /// Plans the rows for `records`, enqueued at `created_ms`. Records whose
    /// decision cannot be read are logged and skipped: they can never give
    /// a webhook, and must not stop the ones after them.
    pub fn new(
        records: &[StoredRecord],
        endpoints: &[WebhookEndpointConfig],
        created_ms: i64,
    ) -> OutboxPlan {
        let mut plan = OutboxPlan {
            created_ms,
            ..OutboxPlan::default()
        };
        for record in records {
            let derived = match record_webhooks(record) {
                Ok(derived) => derived,
                Err(e) => {
                    tracing::error!(seq = record.seq, error = %e, "record skipped for webhooks");
                    continue;
                }
            };
            for webhook in &derived.webhooks {
                let wanted: Vec<usize> = (0..endpoints.len())
                    .filter(|&i| endpoint_wants(&endpoints[i], webhook, derived.action))
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                let body = envelope(webhook, created_ms.div_euclid(1000));
                plan.bodies
                    .push((webhook.id.clone(), webhook.kind.clone(), body));
                let index = plan.bodies.len() - 1;
                plan.rows.extend(wanted.into_iter().map(|e| (e, index)));
            }
        }
        plan
    }

    /// The rows, addressed to endpoints by the names in `names` (same order
    /// as the endpoints the plan was made for).
    pub fn rows<'a>(&'a self, names: &'a [String]) -> Vec<NewWebhook<'a>> {
        self.rows
            .iter()
            .map(|&(endpoint, body)| {
                let (id, kind, payload) = &self.bodies[body];
                NewWebhook {
                    endpoint: &names[endpoint],
                    webhook_id: id,
                    webhook_type: kind,
                    payload,
                    created_ms: self.created_ms,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, decision: Value) -> StoredRecord {
        StoredRecord {
            seq,
            event_id: format!("evt-{seq}"),
            account_id: "seller-1".into(),
            event_type: "payout".into(),
            event_time: 1_526_000_000,
            received_at_ms: 1_700_000_000_000,
            event_json: "{}".into(),
            decision_json: decision.to_string(),
        }
    }

    fn decided(action: &str) -> Value {
        json!({"action": action, "score": 70, "policy": "default", "rules_version": 3,
               "reasons": [{"code": "r", "action": action, "score": 70, "message": "m"}],
               "features": {"login.risk": 0.9}})
    }

    fn endpoint(events: &[&str], min_action: Action) -> WebhookEndpointConfig {
        let mut e = WebhookEndpointConfig::new("http://127.0.0.1:9/hook", "0123456789abcdef");
        e.events = events.iter().map(|s| s.to_string()).collect();
        e.min_action = min_action;
        e
    }

    fn planned(records: &[StoredRecord], endpoints: &[WebhookEndpointConfig]) -> Vec<String> {
        let names: Vec<String> = (0..endpoints.len()).map(|i| format!("ep{i}")).collect();
        let plan = OutboxPlan::new(records, endpoints, 1_700_000_000_500);
        plan.rows(&names)
            .iter()
            .map(|r| format!("{}:{}:{}", r.endpoint, r.webhook_id, r.webhook_type))
            .collect()
    }

    #[test]
    fn decision_created_carries_the_decision_without_features() {
        let derived = record_webhooks(&record(7, decided("hold"))).unwrap();
        assert_eq!(derived.action, Some(Action::Hold));
        assert_eq!(derived.webhooks.len(), 1);
        let webhook = &derived.webhooks[0];
        assert_eq!(
            (webhook.id.as_str(), webhook.kind.as_str()),
            ("7.0", "decision.created")
        );
        assert_eq!(
            webhook.data,
            json!({"event_id": "evt-7", "account_id": "seller-1", "event_type": "payout",
                   "time": "2018-05-11T00:53:20Z", "seq": 7,
                   "decision": {"action": "hold", "score": 70, "policy": "default",
                                "rules_version": 3, "shadow": [],
                                "reasons": [{"code": "r", "action": "hold", "score": 70, "message": "m"}]}})
        );
    }

    #[test]
    fn a_decision_below_min_action_gives_nothing() {
        let records = [
            record(1, decided("allow")),
            record(2, decided("challenge")),
            record(3, decided("review")),
            record(4, decided("block")),
        ];
        assert_eq!(
            planned(&records, &[endpoint(&["*"], Action::Review)]),
            ["ep0:3.0:decision.created", "ep0:4.0:decision.created"]
        );
        assert_eq!(
            planned(&records, &[endpoint(&["*"], Action::Block)]),
            ["ep0:4.0:decision.created"]
        );
        assert_eq!(
            planned(&records, &[endpoint(&["*"], Action::Allow)]).len(),
            4
        );
    }

    #[test]
    fn each_effect_is_one_webhook_with_a_stable_id() {
        let mut decision = decided("allow");
        decision["effects"] = json!([
            {"type": "hold.created", "data": {"hold_id": "h1", "amount": 500}},
            {"type": "account.at_risk", "data": null},
            {"type": "hold.released", "data": {"hold_id": "h0", "event_id": "payout-9", "account_id": "seller-1"}},
        ]);
        let r = record(42, decision);
        let derived = record_webhooks(&r).unwrap();
        let ids: Vec<(&str, &str)> = derived
            .webhooks
            .iter()
            .map(|w| (w.id.as_str(), w.kind.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("42.0", "decision.created"),
                ("42.1", "hold.created"),
                ("42.2", "account.at_risk"),
                ("42.3", "hold.released"),
            ]
        );
        assert_eq!(
            derived.webhooks[1].data,
            json!({"hold_id": "h1", "amount": 500, "event_id": "evt-42", "account_id": "seller-1"})
        );
        assert_eq!(
            derived.webhooks[2].data,
            json!({"event_id": "evt-42", "account_id": "seller-1"})
        );
        assert_eq!(
            derived.webhooks[3].data,
            json!({"hold_id": "h0", "event_id": "payout-9", "account_id": "seller-1"}),
            "the effect's own ids are kept"
        );
        assert_eq!(derived, record_webhooks(&r).unwrap(), "the same every time");

        // Effects ignore min_action; subscriptions filter without renumbering.
        let endpoints = [
            endpoint(&["*"], Action::Review),
            endpoint(&["hold.created", "account.*"], Action::Allow),
            endpoint(&["decision.created"], Action::Allow),
        ];
        assert_eq!(
            planned(std::slice::from_ref(&r), &endpoints),
            [
                "ep2:42.0:decision.created",
                "ep0:42.1:hold.created",
                "ep1:42.1:hold.created",
                "ep0:42.2:account.at_risk",
                "ep1:42.2:account.at_risk",
                "ep0:42.3:hold.released",
            ]
        );
    }

    #[test]
    fn unreadable_decisions_and_untyped_effects_are_skipped() {
        let mut broken = record(1, json!(null));
        broken.decision_json = "not json".into();
        assert!(record_webhooks(&broken).unwrap_err().contains("seq 1"));
        let mut decision = decided("block");
        decision["effects"] = json!([{"data": {}}, {"type": "hold.released", "data": {}}]);
        let ok = record(2, decision);
        assert_eq!(
            planned(&[broken, ok], &[endpoint(&["*"], Action::Review)]),
            ["ep0:2.0:decision.created", "ep0:2.2:hold.released"]
        );
        let unknown = record(3, json!({"action": "quarantine"}));
        assert_eq!(record_webhooks(&unknown).unwrap().action, None);
        assert_eq!(
            planned(&[unknown], &[endpoint(&["*"], Action::Block)]),
            ["ep0:3.0:decision.created"],
            "an action we do not know is sent rather than lost"
        );
    }

    #[test]
    fn the_envelope_has_id_type_created_version_and_data() {
        let derived = record_webhooks(&record(5, decided("block"))).unwrap();
        let body = envelope(&derived.webhooks[0], 1_700_000_000);
        assert!(body.starts_with(r#"{"id":"5.0","type":"decision.created","created":1700000000,"api_version":1,"data":{"#), "{body}");
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["data"], derived.webhooks[0].data);
        let names = ["ops".to_string()];
        let plan = OutboxPlan::new(
            &[record(5, decided("block"))],
            &[endpoint(&["*"], Action::Review)],
            1_700_000_000_999,
        );
        let rows = plan.rows(&names);
        assert_eq!(
            (rows[0].payload, rows[0].created_ms),
            (body.as_str(), 1_700_000_000_999)
        );
    }
}
