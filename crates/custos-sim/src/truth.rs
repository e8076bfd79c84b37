//! The ground truth of a simulated event: who made it, whether it is fraud,
//! and which campaign and scenario it belongs to.
//!
//! [`crate::market`] writes it into every event as a `truth` object, which
//! the engine never sees: the backtest removes it before parsing. This type
//! is the one contract between the two, so the simulator and the backtest
//! cannot drift apart on a field name or a value:
//!
//! ```json
//! "truth": {"actor": "seller" | "attacker" | "platform", "fraud": bool,
//!           "campaign": "phishing-2018", "scenario": "seller-phishing-2018",
//!           "controls": ["sms", "totp"]}
//! ```
//!
//! `controls` (attacker events only, omitted when empty) lists the
//! verification channels (`docs/events.md`, `verification`) the attacker
//! can answer on this account at that moment: the ones whose contact or
//! factor he moved to himself, and the ones a phishing kit relays from the
//! owner in real time. The backtest plays the platform's step-ups and hold
//! confirmations with it: whoever controls the channel asked answers.
//!
//! Reading is tolerant on purpose: a history from your own log has no
//! `truth`, and one from another tool or version may name actors or carry
//! fields this version does not know. Such an event is replayed all the
//! same; each field that is missing or has another shape reads as unknown
//! (no actor, not fraud, no campaign), the others as written.

use serde::Serialize;
use serde_json::{Map, Value};

/// Who made an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The account's owner.
    Seller,
    Attacker,
    /// The platform itself: sales, payouts, disbursements, labels, support.
    Platform,
}

impl Actor {
    /// The actor a history names, as written by [`Truth::attach`].
    pub fn from_name(name: &str) -> Option<Actor> {
        match name {
            "seller" => Some(Actor::Seller),
            "attacker" => Some(Actor::Attacker),
            "platform" => Some(Actor::Platform),
            _ => None,
        }
    }
}

/// The ground truth of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Truth {
    /// `None` when the history does not say, or names an actor this version
    /// does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// True for every attacker event and for every payout or loan
    /// disbursement paid while an attacker's destination was the account's
    /// current one.
    pub fraud: bool,
    /// The ground-truth campaign of a fraud event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// The scenario that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Verification channels (wire names) the attacker can answer on this
    /// account at this event's time; empty for everyone else.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
}

impl Truth {
    /// Removes an event's `truth` and reads it; an event without one (or
    /// with one that is not an object) has the unknown truth, the default.
    pub fn take(event: &mut Map<String, Value>) -> Truth {
        // Read field by field rather than through serde: this runs once per
        // replayed event, and a field of another shape must read as unknown
        // without failing the others.
        let Some(Value::Object(mut truth)) = event.remove("truth") else {
            return Truth::default();
        };
        let mut text = |key: &str| match truth.remove(key) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        let campaign = text("campaign");
        let scenario = text("scenario");
        let controls = match truth.remove("controls") {
            Some(Value::Array(channels)) => channels
                .into_iter()
                .filter_map(|c| match c {
                    Value::String(channel) => Some(channel),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Truth {
            actor: truth
                .get("actor")
                .and_then(Value::as_str)
                .and_then(Actor::from_name),
            fraud: truth.get("fraud").and_then(Value::as_bool).unwrap_or(false),
            campaign,
            scenario,
            controls,
        }
    }

    /// Adds the truth to an event, as its `truth` object.
    pub fn attach(&self, event: &mut Map<String, Value>) {
        let value = serde_json::to_value(self)
            .expect("a truth serializes to json: string keys and plain values only");
        event.insert("truth".into(), value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn take(event: Value) -> (Truth, Map<String, Value>) {
        let Value::Object(mut event) = event else {
            panic!("an object");
        };
        (Truth::take(&mut event), event)
    }

    #[test]
    fn a_truth_is_written_with_the_fields_it_has_and_read_back() {
        let truth = Truth {
            actor: Some(Actor::Attacker),
            fraud: true,
            campaign: Some("phishing-2018".into()),
            scenario: Some("seller-phishing-2018".into()),
            controls: vec!["sms".into()],
        };
        let mut event = Map::new();
        truth.attach(&mut event);
        assert_eq!(
            serde_json::to_string(&event).expect("json"),
            r#"{"truth":{"actor":"attacker","campaign":"phishing-2018","controls":["sms"],"fraud":true,"scenario":"seller-phishing-2018"}}"#
        );
        assert_eq!(Truth::take(&mut event), truth);
        assert!(event.is_empty(), "take removes the truth");

        let honest = Truth {
            actor: Some(Actor::Platform),
            ..Truth::default()
        };
        honest.attach(&mut event);
        assert_eq!(
            serde_json::to_string(&event).expect("json"),
            r#"{"truth":{"actor":"platform","fraud":false}}"#
        );
    }

    #[test]
    fn every_actor_reads_back_by_the_name_it_is_written_with() {
        for actor in [Actor::Seller, Actor::Attacker, Actor::Platform] {
            let name = serde_json::to_value(actor).expect("json");
            assert_eq!(name.as_str().and_then(Actor::from_name), Some(actor));
        }
    }

    #[test]
    fn an_unknown_or_missing_truth_reads_as_unknown_field_by_field() {
        let (truth, event) = take(json!({"event_id": "a"}));
        assert_eq!(truth, Truth::default());
        assert_eq!(event.len(), 1);
        let (truth, event) = take(json!({"event_id": "a", "truth": "attacker"}));
        assert_eq!(truth, Truth::default());
        assert!(!event.contains_key("truth"));
        let (truth, _) = take(json!({"truth": {"actor": "robot", "fraud": true,
                                               "campaign": 7, "scenario": "s", "extra": 1}}));
        assert_eq!(
            truth,
            Truth {
                actor: None,
                fraud: true,
                campaign: None,
                scenario: Some("s".into()),
                controls: Vec::new(),
            }
        );
        let (truth, _) = take(json!({"truth": {"actor": "seller", "fraud": "yes"}}));
        assert_eq!(truth.actor, Some(Actor::Seller));
        assert!(!truth.fraud);
    }
}
