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

fn sale() -> serde_json::Value {
    json!({"event_id": "x", "type": "sale", "account_id": "a", "time": "2018-05-16T09:30:00Z",
           "amount": 10, "currency": "GBP"})
}

/// `depth` objects nested inside each other, around a number.
fn nested(depth: usize) -> serde_json::Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = json!({ "n": value });
    }
    value
}

fn with_field(name: &str, value: serde_json::Value) -> serde_json::Value {
    let mut v = sale();
    v[name] = value;
    v
}

#[test]
fn custom_fields_past_the_limits_are_refused_naming_the_field() {
    use crate::parse::{MAX_CUSTOM_BYTES, MAX_CUSTOM_DEPTH, MAX_CUSTOM_ENTRIES, MAX_CUSTOM_STRING};
    // 126 levels gained one more in the stored form, past serde_json's
    // recursion limit: the stored event could not be read back.
    let (f, k, message) = rejection(with_field("deep", nested(126)));
    assert_eq!(
        (f.as_str(), k),
        (
            "deep.n.n.n.n.n.n.n.n.n.n.n.n.n.n.n.n",
            EventErrorKind::InvalidField
        )
    );
    assert!(message.contains("nest more than 16 deep"), "{message}");
    // The same inside an explicit `attributes` object and inside arrays.
    let (f, _, _) = rejection(with_field("attributes", json!({"deep": nested(40)})));
    assert!(f.starts_with("deep.n"), "{f}");
    let mut array = json!(1);
    for _ in 0..MAX_CUSTOM_DEPTH + 1 {
        array = json!([array]);
    }
    let (f, _, _) = rejection(with_field("list", array));
    assert!(f.starts_with("list[0][0]"), "{f}");
    // Exactly at the limit is accepted and round-trips.
    let parsed = event(with_field("deep", nested(MAX_CUSTOM_DEPTH)));
    let stored = serde_json::to_string(&parsed).unwrap();
    let reread = parser()
        .parse_stored(serde_json::from_str(&stored).unwrap())
        .unwrap();
    assert_eq!(reread, parsed);

    let entries = |n: usize| serde_json::Value::Array((0..n).map(|i| json!(i)).collect());
    event(with_field("many", entries(MAX_CUSTOM_ENTRIES)));
    let (f, _, message) = rejection(with_field("many", entries(MAX_CUSTOM_ENTRIES + 1)));
    assert_eq!(f, "many");
    assert!(
        message.contains("1025 entries; the limit is 1024"),
        "{message}"
    );
    let (f, _, message) = rejection(with_field(
        "note",
        json!({"inner": ["ok", "x".repeat(MAX_CUSTOM_STRING + 1)]}),
    ));
    assert_eq!(f, "note.inner[1]");
    assert!(
        message.contains("2049 bytes long; the limit is 2048"),
        "{message}"
    );
    let (f, _, message) = rejection(with_field(
        "note",
        json!({ "k".repeat(MAX_CUSTOM_STRING + 1): 1 }),
    ));
    assert!(f.starts_with("note.kkk"), "{f}");
    assert!(message.contains("the key is 2049 bytes"), "{message}");
    let (f, _, message) = rejection(with_field(&"n".repeat(MAX_CUSTOM_STRING + 1), json!(1)));
    assert_eq!(f.len(), 64);
    assert!(message.contains("name is 2049 bytes"), "{message}");
    // Under every other limit, but too much altogether.
    let mut big = sale();
    for i in 0..20 {
        big[format!("f{i}")] = json!("y".repeat(MAX_CUSTOM_BYTES / 20));
    }
    let (f, _, message) = rejection(big);
    assert_eq!(f, "attributes");
    assert!(message.contains("the limit is 32768"), "{message}");
    let mut many = sale();
    for i in 0..65 {
        many[format!("f{i}")] = json!(i);
    }
    let (f, _, message) = rejection(many);
    assert_eq!(f, "attributes");
    assert!(
        message.contains("65 custom fields; the limit is 64"),
        "{message}"
    );
}

#[test]
fn events_stored_before_the_limits_still_read_back() {
    // Recovery reads the log with the stored-form parser: an event accepted
    // before a limit existed must not stop a restart.
    let mut stored = serde_json::to_value(event(sale())).unwrap();
    stored["attributes"] = json!({"deep": nested(40), "iban": "x"});
    stored["account_id"] = json!("a\u{1b}[2J");
    let read = parser().parse_stored(stored).unwrap();
    assert_eq!(read.account_id, "a\u{1b}[2J");
    assert!(
        parser()
            .parse_value(serde_json::to_value(&read).unwrap())
            .is_err()
    );
}

#[test]
fn enrichment_coordinates_must_lie_on_the_globe() {
    let with_network =
        |network: serde_json::Value| with_field("enrichment", json!({ "network": network }));
    let (f, k, message) = rejection(with_network(json!({"latitude": 1e308, "longitude": 0.0})));
    assert_eq!(
        (f.as_str(), k),
        ("enrichment.network.latitude", EventErrorKind::InvalidField)
    );
    assert!(message.contains("from -90 to 90"), "{message}");
    let (f, _, _) = rejection(with_network(json!({"latitude": 10.0, "longitude": -180.5})));
    assert_eq!(f, "enrichment.network.longitude");
    let (f, _, _) = rejection(with_network(json!({"latitude": 10.0})));
    assert_eq!(f, "enrichment.network");
    let (f, _, _) = rejection(with_network(json!({"city": "x".repeat(300)})));
    assert_eq!(f, "enrichment.network.city");
    let parsed = event(with_network(json!({"latitude": -90.0, "longitude": 180.0})));
    assert_eq!(parsed.enrichment.network.latitude, Some(-90.0));
}

#[test]
fn times_outside_four_digit_utc_years_are_refused_not_panicking() {
    for text in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
        let (f, k, message) = rejection(with_field("time", json!(text)));
        assert_eq!(
            (f.as_str(), k),
            ("time", EventErrorKind::InvalidField),
            "{text}"
        );
        assert!(
            message.contains("outside the years 0000 to 9999"),
            "{message}"
        );
    }
    // The edges themselves are representable, and round-trip.
    for (text, utc) in [
        ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
        ("0000-01-01T00:30:00+00:30", "0000-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T22:59:59-01:00", "9999-12-31T23:59:59Z"),
    ] {
        let parsed = event(with_field("time", json!(text)));
        let stored = serde_json::to_value(&parsed).unwrap();
        assert_eq!(stored["time"], utc);
        assert_eq!(event(stored), parsed);
    }
}

#[test]
fn control_characters_in_ids_are_refused_naming_the_field() {
    let payout = json!({"event_id": "x", "type": "payout", "account_id": "a",
        "time": "2018-05-16T09:30:00Z", "session_id": "s", "payout_id": "p", "amount": 100,
        "currency": "GBP", "destination": {"institution_id": "200000", "account_token": "t"}});
    let fields: [&[&str]; 6] = [
        &["event_id"],
        &["account_id"],
        &["session_id"],
        &["payout_id"],
        &["destination", "institution_id"],
        &["destination", "account_token"],
    ];
    for path in fields {
        for bad in [
            "a\0b",
            "a\u{1b}[31mred",
            "a\u{9b}b",
            "a\u{7f}",
            "a\nb",
            "a\u{202e}b",
        ] {
            let mut v = payout.clone();
            let mut slot = &mut v;
            for p in path {
                slot = &mut slot[*p];
            }
            *slot = json!(bad);
            let (f, k, message) = rejection(v);
            assert_eq!(
                (f, k),
                (path.join("."), EventErrorKind::InvalidField),
                "{bad:?}"
            );
            assert!(message.contains("control characters"), "{message}");
        }
    }
    // Free text keeps its line breaks, but not escapes.
    let login = json!({"event_id": "x", "type": "login", "account_id": "a",
        "time": "2018-05-16T09:30:00Z", "status": "failure"});
    let mut ok = login.clone();
    ok["failure_reason"] = json!("line one\nline two\ttab");
    event(ok);
    let mut bad = login;
    bad["user_agent"] = json!("Mozilla\u{1b}]0;title\u{7}");
    assert_eq!(rejection(bad).0, "user_agent");
}

#[test]
fn custom_fields_named_like_bank_or_card_numbers_are_refused() {
    use crate::parse::names_a_bank_or_card_number;
    for name in [
        "iban",
        "IBAN",
        "customer_iban",
        "iban_code",
        "account_number",
        "bankAccountNumber",
        "card-number",
        "CardNumber",
        "acct_number",
        "pan",
    ] {
        assert!(names_a_bank_or_card_number(name), "{name}");
        let (f, _, message) = rejection(with_field(name, json!("GB29NWBK60161331926819")));
        assert_eq!(f, name);
        assert!(message.contains("never stores"), "{message}");
        assert!(!message.contains("GB29"), "{message}");
    }
    for name in [
        "order_id",
        "panel",
        "span",
        "company",
        "account_age",
        "card_brand",
        "tibane",
    ] {
        assert!(!names_a_bank_or_card_number(name), "{name}");
    }
}

#[test]
fn holder_names_get_a_keyed_token_derived_again_from_the_stored_form() {
    let parsed = event(
        json!({"event_id": "h1", "type": "payout_destination_change",
        "account_id": "seller-1", "time": "2018-06-01T10:00:00Z",
        "destination": {"institution_id": "20-00-00", "account_number": "11112222",
                        "holder_name": "Jane Smith"},
        "previous_destination": {"institution_id": "40-00-00", "account_number": "33334444",
                                 "holder_name": "SMITH, jane"}}),
    );
    let Details::PayoutDestinationChange {
        destination,
        previous_destination: Some(previous),
    } = &parsed.details
    else {
        panic!("a destination change with its previous destination: {parsed:?}");
    };
    let token = destination.holder_token.as_deref().expect("a holder token");
    assert!(token.starts_with("hn_"), "{token}");
    assert_eq!(previous.holder_token.as_deref(), Some(token));
    // The token is never stored: the stored form is parsed again and the
    // token derived again from the name.
    let stored = serde_json::to_value(&parsed).unwrap();
    assert!(!stored.to_string().contains(token), "{stored}");
    let reparsed = parser().parse_stored(stored).unwrap();
    assert_eq!(parsed, reparsed);
}

/// Reading an event as a [`crate::parse::RawEvent`] (the server's way in)
/// and as a `Value` must give the same event or the same error, for any
/// JSON: valid events, fields of the wrong type, unknown fields, names sent
/// twice, and bodies that are not objects.
#[test]
fn raw_and_value_parsing_agree_on_every_input() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let parser = parser();
    let agree = |text: &str| -> Result<(), TestCaseError> {
        let as_value = serde_json::from_str::<serde_json::Value>(text);
        let as_raw = serde_json::from_str::<crate::parse::RawEvent>(text);
        prop_assert_eq!(as_value.is_ok(), as_raw.is_ok(), "{}", text);
        if let (Ok(value), Ok(raw)) = (as_value, as_raw) {
            prop_assert_eq!(parser.parse_value(value), parser.parse_raw(raw), "{}", text);
        }
        Ok(())
    };
    let fixed = [
        "[]",
        "[1, {\"a\": 2}]",
        "7",
        "-7",
        "7.5",
        "\"an event\"",
        "null",
        "true",
        "{}",
        // A name sent twice: the last value counts, both ways.
        r#"{"event_id": "x", "type": "teleport", "type": "sale", "account_id": "a", "time": "2018-05-16T09:30:00Z", "amount": 5, "currency": "GBP", "order_id": "o"}"#,
        r#"{"event_id": "x", "type": "sale", "type": "teleport"}"#,
        r#"{"event_id": "x", "type": "sale", "account_id": "a", "time": "2018-05-16T09:30:00Z", "amount": 5, "currency": "GBP", "order_id": "o", "note": 1, "note": null}"#,
        r#"{"event_id": "x", "type": "sale", "account_id": "a", "time": "2018-05-16T09:30:00Z", "amount": 5, "currency": "GBP", "order_id": "o", "note": 1, "attributes": {"note": 2}}"#,
    ];
    for text in fixed {
        agree(text).unwrap();
    }
    for example in examples() {
        agree(&example.to_string()).unwrap();
    }

    // Examples with fields replaced, added or sent twice.
    let names = prop_oneof![
        Just("event_id"),
        Just("type"),
        Just("account_id"),
        Just("time"),
        Just("amount"),
        Just("currency"),
        Just("ip"),
        Just("status"),
        Just("destination"),
        Just("attributes"),
        Just("session_id"),
        Just("custom_note"),
    ];
    let values = prop_oneof![
        Just(json!(null)),
        Just(json!(true)),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(2.5)),
        "[a-z0-9 ]{0,12}".prop_map(|s| json!(s)),
        Just(json!("2018-05-16T09:30:00Z")),
        Just(json!("GBP")),
        Just(json!({"note": "x"})),
        Just(json!([1, "two"])),
    ];
    let count = examples().len();
    let strategy = (
        0..count,
        proptest::collection::vec((names.clone(), values.clone()), 0..4),
        proptest::collection::vec((names, values), 0..3),
    );
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(index, replaced, twice)| {
            let mut example = examples().swap_remove(index);
            for (name, value) in replaced {
                example[name] = value;
            }
            let mut text = example.to_string();
            // Names sent a second time, after the first, in the text.
            text.pop();
            for (name, value) in twice {
                text.push_str(&format!(",{}:{}", json!(name), value));
            }
            text.push('}');
            agree(&text)
        })
        .unwrap();
}
