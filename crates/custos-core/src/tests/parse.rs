use serde_json::json;

use super::{event, examples, parser};
use crate::event::*;
use crate::parse::EventErrorKind;

#[test]
fn every_type_parses_and_round_trips_through_its_stored_form() {
    let examples = examples();
    assert_eq!(examples.len(), EventType::ALL.len() + 1);
    for value in examples {
        let parsed = event(value.clone());
        let stored = serde_json::to_value(&parsed).unwrap();
        let reparsed = event(stored.clone());
        assert_eq!(parsed, reparsed, "stored form {stored}");
        assert_eq!(stored["type"], value["type"]);
    }
}

#[test]
fn account_numbers_become_tokens_and_never_appear_in_the_stored_form() {
    let value = examples()
        .into_iter()
        .find(|v| v["type"] == "payout_destination_change")
        .unwrap();
    let parsed = event(value);
    let stored = serde_json::to_string(&parsed).unwrap();
    assert!(!stored.contains("5555"), "{stored}");
    assert!(!stored.contains("account_number"), "{stored}");
    let Details::PayoutDestinationChange { destination, .. } = &parsed.details else {
        panic!("wrong details {:?}", parsed.details)
    };
    assert_eq!(destination.institution_id, "200000");
    assert_eq!(destination.country.as_deref(), Some("GB"));
    assert_eq!(destination.account_last4.as_deref(), Some("1234"));
    assert!(destination.account_token.starts_with("tk_"));
    // Formatting differences do not change the token.
    let other = event(
        json!({"event_id": "x", "type": "payout_destination_change", "account_id": "a",
        "time": "2018-05-16T09:30:00Z",
        "destination": {"institution_id": "200000", "account_number": "55551234"}}),
    );
    let Details::PayoutDestinationChange {
        destination: d2, ..
    } = &other.details
    else {
        panic!()
    };
    assert_eq!(d2.account_token, destination.account_token);
}

#[test]
fn unknown_top_level_fields_go_to_attributes() {
    let parsed = event(
        json!({"event_id": "x", "type": "sale", "account_id": "a", "time": "2018-05-16T10:30:00+01:00",
        "amount": 10, "currency": "usd", "order_id": "o-1", "attributes": {"channel": "web"}}),
    );
    assert_eq!(parsed.attributes.get("order_id"), Some(&json!("o-1")));
    assert_eq!(parsed.attributes.get("channel"), Some(&json!("web")));
    assert_eq!(parsed.time.unix_timestamp(), 1526463000);
    assert_eq!(
        serde_json::to_value(&parsed).unwrap()["time"],
        "2018-05-16T09:30:00Z"
    );
}

fn rejection(value: serde_json::Value) -> (String, EventErrorKind, String) {
    let err = parser().parse_value(value).unwrap_err();
    (err.field.clone(), err.kind, err.to_string())
}

#[test]
fn bad_input_names_the_field_and_the_problem() {
    let base = json!({"event_id": "x", "type": "payout", "account_id": "a", "time": "2018-05-16T09:30:00Z",
                      "payout_id": "p", "amount": 100, "currency": "GBP"});
    let cases: Vec<(serde_json::Value, &str, EventErrorKind, &str)> = vec![
        (
            json!({"type": "login"}),
            "event_id",
            EventErrorKind::MissingField,
            "is required",
        ),
        (
            json!({"event_id": 7}),
            "event_id",
            EventErrorKind::InvalidField,
            "expected a string, found an integer",
        ),
        (
            json!({"event_id": "x", "type": "teleport"}),
            "type",
            EventErrorKind::UnknownEventType,
            "unknown event type \"teleport\"",
        ),
        (
            json!({"event_id": "x", "type": "login", "account_id": "a", "time": "yesterday"}),
            "time",
            EventErrorKind::InvalidField,
            "not an RFC 3339",
        ),
        (
            json!({"event_id": "x", "type": "login", "account_id": "a", "time": "2018-05-16T09:30:00Z", "status": "maybe"}),
            "status",
            EventErrorKind::InvalidField,
            "expected one of: success, failure",
        ),
        (
            json!({"event_id": "x", "type": "login", "account_id": "a", "time": "2018-05-16T09:30:00Z"}),
            "status",
            EventErrorKind::MissingField,
            "required",
        ),
        (
            json!({"event_id": "x", "type": "login", "account_id": "a", "time": "2018-05-16T09:30:00Z", "status": "success", "ip": "999.1.1.1"}),
            "ip",
            EventErrorKind::InvalidField,
            "not an IPv4 or IPv6",
        ),
        (
            json!({"event_id": "x", "type": "login", "account_id": "a", "time": "2018-05-16T09:30:00Z", "status": "success", "mfa": "yes"}),
            "mfa",
            EventErrorKind::InvalidField,
            "expected true or false",
        ),
        (
            json!({"event_id": "", "type": "login"}),
            "event_id",
            EventErrorKind::InvalidField,
            "must not be empty",
        ),
        (
            json!([1, 2]),
            "",
            EventErrorKind::NotAnObject,
            "must be a JSON object",
        ),
    ];
    for (value, field, kind, text) in cases {
        let (f, k, message) = rejection(value.clone());
        assert_eq!((f.as_str(), k), (field, kind), "{value} -> {message}");
        assert!(
            message.contains(text),
            "{value}: {message:?} lacks {text:?}"
        );
    }
    let with = |field: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[field] = v;
        b
    };
    let amount_cases = [
        (json!(12.5), "decimal number"),
        (json!("100"), "found a string"),
        (json!(0), "greater than zero"),
        (json!(-5), "greater than zero"),
    ];
    for (v, text) in amount_cases {
        let (f, _, message) = rejection(with("amount", v));
        assert_eq!(f, "amount");
        assert!(message.contains(text), "{message}");
    }
    let (f, _, message) = rejection(with("currency", json!("pounds")));
    assert_eq!(f, "currency");
    assert!(message.contains("ISO 4217"), "{message}");
    let (f, _, message) = rejection(with(
        "destination",
        json!({"institution_id": "20-00-00", "account_number": 12345678}),
    ));
    assert_eq!(f, "destination.account_number");
    assert!(message.contains("expected a string"), "{message}");
    assert!(!message.contains("12345678"), "{message}");
    let (f, _, message) = rejection(with(
        "destination",
        json!({"institution_id": "200000", "account_number": "12!45678"}),
    ));
    assert_eq!(f, "destination.account_number");
    assert!(!message.contains("12!45678"), "{message}");
    let (f, k, _) = rejection(with("destination", json!({"institution_id": "200000"})));
    assert_eq!(
        (f.as_str(), k),
        ("destination.account_number", EventErrorKind::MissingField)
    );
    let (f, _, _) = rejection(with(
        "destination",
        json!({"institution_id": "200000", "account_token": "t", "iban": "x"}),
    ));
    assert_eq!(f, "destination.iban");
    let (f, _, _) = rejection(with(
        "destination",
        json!({"institution_id": "200000", "account_token": "t", "country": "GBR"}),
    ));
    assert_eq!(f, "destination.country");
    let (f, _, _) = rejection(with(
        "destination",
        json!({"institution_id": "200000", "account_token": "t", "institution_type": "crypto"}),
    ));
    assert_eq!(f, "destination.institution_type");
    let (f, _, message) = rejection(with("attributes", json!("text")));
    assert_eq!(f, "attributes");
    assert!(message.contains("expected"), "{message}");
    let mut dup = base.clone();
    dup["note"] = json!(1);
    dup["attributes"] = json!({"note": 2});
    assert_eq!(rejection(dup).0, "note");
}
