//! Unit tests of the core, sharing one test binary.

mod default_rules;
mod features;
mod login_risk;
mod parse;
mod rules_cel;
mod rules_corpus;
mod rules_docs;
mod rules_lang;
mod session_theft;
mod state;

use serde_json::{Value, json};

use crate::{DestinationTokenizer, Event, EventParser};

pub(crate) const DAY: i64 = 86_400;

/// RFC 3339 time `offset_secs` after a fixed start in May 2018.
pub(crate) fn at(offset_secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(1_526_000_000 + offset_secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub(crate) fn parser() -> EventParser {
    EventParser::new(DestinationTokenizer::new(b"test-key-0123456789abcdef").unwrap())
}

pub(crate) fn event(value: Value) -> Event {
    match parser().parse_value(value.clone()) {
        Ok(event) => event,
        Err(e) => panic!("{e} in {value}"),
    }
}

/// One valid example of each event type, in wire form.
pub(crate) fn examples() -> Vec<Value> {
    let base = |id: &str, ty: &str| {
        json!({"event_id": id, "type": ty, "account_id": "seller-1", "time": "2018-05-16T09:30:00Z",
               "session_id": "s-1", "ip": "81.2.69.160", "user_agent": "Mozilla/5.0", "device_id": "dev-1"})
    };
    let with = |mut v: Value, extra: Value| {
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let destination = json!({"institution_id": "20-00-00", "institution_type": "bank", "country": "gb",
                             "account_number": "5555 1234", "holder_name": "A Seller"});
    vec![
        with(
            base("e1", "login"),
            json!({"status": "success", "mfa": true}),
        ),
        with(
            base("e2", "login"),
            json!({"status": "failure", "failure_reason": "wrong_password"}),
        ),
        base("e3", "logout"),
        with(base("e4", "password_change"), json!({"reason": "reset"})),
        base("e5", "password_reset_request"),
        with(
            base("e6", "mfa_change"),
            json!({"change": "disabled", "method": "totp"}),
        ),
        base("e7", "email_change"),
        base("e8", "phone_change"),
        with(
            base("e9", "payout_destination_change"),
            json!({"destination": destination,
            "previous_destination": {"institution_id": "400000", "account_token": "tok-prev", "account_last4": "9999"}}),
        ),
        with(
            base("e10", "payout"),
            json!({"payout_id": "p1", "amount": 125000, "currency": "gbp", "source": "sales"}),
        ),
        with(
            base("e11", "loan_application"),
            json!({"loan_id": "l1", "amount": 500000, "currency": "GBP"}),
        ),
        with(
            base("e12", "loan_disbursement"),
            json!({"loan_id": "l1", "amount": 500000, "currency": "GBP"}),
        ),
        with(
            base("e13", "sale"),
            json!({"amount": 4999, "currency": "EUR", "order_id": "o-77"}),
        ),
        with(
            base("e14", "verification"),
            json!({"status": "passed", "method": "sms"}),
        ),
        with(
            base("e15", "label"),
            json!({"label": "fraud", "target_event_id": "e10", "analyst": "ana"}),
        ),
        with(
            base("e16", "analyst_action"),
            json!({"action": "release_payout", "target_id": "p1", "analyst": "ana",
                   "reason": "seller confirmed the payout by phone"}),
        ),
    ]
}
