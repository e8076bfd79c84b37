//! One step of the `event` fuzz target: whatever the event parser accepts
//! must round-trip through its stored form. The input is a request body;
//! if it is JSON, it is parsed as an event the way `POST /v1/events` does.
//! An accepted event is encoded as the store keeps it
//! ([`PreparedEvent`], what the runtime writes), read back the way
//! recovery reads it (`serde_json`, then [`EventParser::parse_stored`]), and
//! must come back equal and encode to the same text. A refusal must say
//! what is wrong. Nothing may panic.
//!
//! The corpus test in custos-server (`tests/api/fuzz_corpus.rs`) includes
//! this file as well, so that the seeds run through exactly this code on
//! stable Rust.

use std::sync::OnceLock;

use custos_core::{DestinationTokenizer, Event, EventParser, PiiCipher};
use custos_runtime::PreparedEvent;
use serde_json::Value;

/// What became of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not JSON: the route answers `invalid_json` before the parser.
    NotJson,
    Refused,
    /// Accepted, and its stored form read back identically.
    RoundTrips,
}

pub fn parser() -> &'static EventParser {
    static PARSER: OnceLock<EventParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        let key = DestinationTokenizer::new(b"fuzz-destination-token-key-0123")
            .expect("the fuzz token key is long enough");
        // Sealing on, as in production: personal values take the sealed
        // path through the stored form.
        let pii = PiiCipher::new(b"fuzz-pii-key-0123456789-abcdefgh")
            .expect("the fuzz pii key is long enough");
        EventParser::new(key).with_pii(pii)
    })
}

pub fn check(data: &[u8]) -> Outcome {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return Outcome::NotJson;
    };
    check_value(value)
}

pub fn check_value(value: Value) -> Outcome {
    match parser().parse_value(value) {
        Ok(event) => {
            round_trip(event);
            Outcome::RoundTrips
        }
        Err(e) => {
            assert!(!e.problem.is_empty(), "a refusal without a reason: {e:?}");
            Outcome::Refused
        }
    }
}

/// Stores `event` the way the runtime does and reads it back the way
/// recovery does.
pub fn round_trip(event: Event) {
    let prepared = PreparedEvent::new(event, parser())
        .unwrap_or_else(|e| panic!("an accepted event cannot be encoded: {e}"));
    let stored: Value = serde_json::from_str(&prepared.json)
        .unwrap_or_else(|e| panic!("stored form does not read back: {e}\n{}", prepared.json));
    let read = parser()
        .parse_stored(stored)
        .unwrap_or_else(|e| panic!("stored form is refused: {e}\n{}", prepared.json));
    assert_eq!(read, prepared.event, "stored form {}", prepared.json);
    let again = PreparedEvent::new(read, parser()).expect("a read-back event encodes");
    assert_eq!(again.json, prepared.json, "the stored form is not stable");
    assert_eq!(again.identity, prepared.identity);
}
