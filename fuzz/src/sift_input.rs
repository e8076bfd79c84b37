//! One step of the `sift` fuzz target: the Sift translation of an Events
//! API body (or, after a `label ` prefix, a Labels API body) must answer
//! with Custos events or with a Sift error code and message, never panic;
//! and every Custos event it produces that the event parser accepts must
//! round-trip through its stored form (see `event_input.rs`).
//!
//! The corpus test in custos-server (`tests/api/fuzz_corpus.rs`) includes
//! this file as well; the including module must also include
//! `event_input.rs` as its sibling `event_input`.

use serde_json::Value;

use super::event_input;

/// A fixed "now" (2023-11-14), for bodies without `$time`.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// What became of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Refused by the translation, with this Sift status.
    Refused(i32),
    /// Translated; the number of events the parser accepted and that
    /// round-tripped, and of those it refused.
    Translated { recorded: usize, refused: usize },
}

pub fn check(data: &[u8]) -> Outcome {
    let (body, label_user) = match data.strip_prefix(b"label ") {
        Some(body) => (body, Some("fuzz-user")),
        None => (data, None),
    };
    match custos_server::sift_translate_for_fuzzing(body, label_user, NOW_MS) {
        Err((status, message)) => {
            assert!(status > 0, "a refusal with status {status}: {message}");
            assert!(!message.is_empty(), "a refusal without a message");
            Outcome::Refused(status)
        }
        Ok(events) => {
            let (mut recorded, mut refused) = (0, 0);
            for event in events {
                match event_input::check_value(Value::Object(event)) {
                    event_input::Outcome::RoundTrips => recorded += 1,
                    _ => refused += 1,
                }
            }
            Outcome::Translated { recorded, refused }
        }
    }
}
