use serde_json::json;

use super::*;
use crate::tests::parser as plain_parser;

fn parser() -> crate::EventParser {
    plain_parser()
}

fn cipher(key: &[u8]) -> PiiCipher {
    PiiCipher::new(key).unwrap()
}

fn destination_change(holder: &str, extra: Value) -> Value {
    let mut v = json!({"event_id": "e-1", "type": "payout_destination_change",
        "account_id": "seller-1", "time": "2018-05-16T09:30:00Z",
        "destination": {"institution_id": "200000", "account_number": "55551234",
                        "holder_name": holder}});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn a_value_seals_deterministically_and_opens_only_under_its_key_and_field() {
    let a = cipher(b"pii-key-a-0123456789");
    let b = cipher(b"pii-key-b-0123456789");
    let name = json!("Jane Doe");
    let sealed = a.seal_value("holder_name", &name);
    let text = sealed.as_str().unwrap();
    assert!(text.starts_with(SEALED_PREFIX), "{text}");
    assert!(!text.contains("Jane"), "{text}");
    assert_eq!(
        a.seal_value("holder_name", &name),
        sealed,
        "same input, same bytes"
    );
    assert_ne!(a.seal_value("holder_name", &json!("Jane Dough")), sealed);
    assert_ne!(
        a.seal_value("email", &name),
        sealed,
        "the field is part of the nonce"
    );
    assert_eq!(a.open_value("holder_name", text), Some(name));
    assert_eq!(b.open_value("holder_name", text), None, "another key");
    assert_eq!(a.open_value("email", text), None, "moved to another field");
    let mut altered = text.to_string();
    altered.pop();
    altered.push(if text.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(a.open_value("holder_name", &altered), None, "altered");
    assert_eq!(a.open_value("holder_name", "enc:v1:!!"), None);
    assert_eq!(a.open_value("holder_name", "enc:v1:"), None);
    assert_ne!(a.key_id(), b.key_id());
    assert_eq!(
        PiiCipher::new(b"short").unwrap_err(),
        PiiKeyError::TooShort { len: 5 }
    );
}

#[test]
fn personal_and_account_number_names() {
    for name in [
        "email",
        "user_email",
        "$phone",
        "billing_address",
        "first_name",
        "userName",
        "date_of_birth",
        "dob",
        "postcode",
        "sift_name",
    ] {
        assert!(is_personal_name(name), "{name}");
    }
    for name in [
        "plan",
        "amount",
        "sift_type",
        "sift_ip",
        "channel",
        "referrer",
    ] {
        assert!(!is_personal_name(name), "{name}");
    }
    for name in [
        "account_number",
        "bank_account_number",
        "iban",
        "payout_iban",
        "pan",
        "cardNumber",
        "$account_number",
    ] {
        assert!(crate::parse::names_a_bank_or_card_number(name), "{name}");
    }
    for name in ["account_token", "accounts", "panel"] {
        assert!(!crate::parse::names_a_bank_or_card_number(name), "{name}");
    }
}

#[test]
fn the_stored_copy_is_sealed_and_reads_back_as_the_event() {
    let sealing = parser().with_pii(cipher(b"pii-key-a-0123456789"));
    let parser = &sealing;
    let event = parser
        .parse_value(destination_change(
            "Jane Doe",
            json!({"customer": {"email": "jane@example.com", "plan": "pro"},
                   "phone": 4155550100_u64, "channel": "web",
                   "contacts": [{"name": "Bob"}]}),
        ))
        .unwrap();
    let sealed = parser
        .sealed_for_storage(&event)
        .expect("there is personal data");
    let json = serde_json::to_string(&sealed).unwrap();
    for clear in ["Jane", "jane@example.com", "4155550100", "Bob"] {
        assert!(!json.contains(clear), "{clear} in {json}");
    }
    assert!(
        json.contains("\"plan\":\"pro\"") && json.contains("\"channel\":\"web\""),
        "{json}"
    );
    assert_eq!(
        serde_json::to_string(&parser.sealed_for_storage(&event).unwrap()).unwrap(),
        json,
        "a resend stores the same bytes"
    );
    let back = parser
        .parse_stored(serde_json::from_str(&json).unwrap())
        .unwrap();
    assert_eq!(
        back, event,
        "the engine sees the clear event after a restart"
    );

    // Without the key, or with another, sealed values read as redacted.
    for reader in [
        plain_parser(),
        plain_parser().with_pii(cipher(b"pii-key-b-0123456789")),
    ] {
        let back = reader
            .parse_stored(serde_json::from_str(&json).unwrap())
            .unwrap();
        let Details::PayoutDestinationChange { destination, .. } = &back.details else {
            panic!("{back:?}")
        };
        assert_eq!(destination.holder_name.as_deref(), Some(REDACTED));
        assert_eq!(back.attributes["phone"], json!(REDACTED));
        assert_eq!(back.attributes["customer"]["plan"], json!("pro"));
    }
}

#[test]
fn events_without_personal_data_and_clear_old_records_are_left_alone() {
    let parser = parser().with_pii(cipher(b"pii-key-a-0123456789"));
    let login = parser
        .parse_value(
            json!({"event_id": "e-2", "type": "login", "account_id": "a",
            "time": "2018-05-16T09:30:00Z", "status": "success", "plan": "pro"}),
        )
        .unwrap();
    assert!(parser.sealed_for_storage(&login).is_none());
    // A record written before sealing existed keeps its clear holder name.
    let old = parser
        .parse_value(destination_change("Jane Doe", json!({})))
        .unwrap();
    let back = parser
        .parse_stored(serde_json::to_value(&old).unwrap())
        .unwrap();
    assert_eq!(back, old);
}

#[test]
fn custom_fields_named_like_account_numbers_are_refused_without_echoing_them() {
    for body in [
        json!({"bank_account_number": "GB29NWBK60161331926819"}),
        json!({"attributes": {"iban": "GB29NWBK60161331926819"}}),
    ] {
        let err = parser()
            .parse_value(destination_change("Jane", body))
            .unwrap_err();
        assert_eq!(err.kind, crate::EventErrorKind::InvalidField, "{err}");
        assert!(!err.to_string().contains("60161331926819"), "{err}");
        assert!(
            err.field == "bank_account_number" || err.field == "iban",
            "{err}"
        );
    }
}
