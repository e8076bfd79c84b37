//! Sift Events and Labels API bodies from arbitrary bytes: the translation
//! must answer or refuse, never panic, and what it produces must round-trip
//! like any event. See `../src/sift_input.rs` for what one run checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

// Only its round trip is used here; the rest serves the `event` target.
#[allow(dead_code)]
#[path = "../src/event_input.rs"]
mod event_input;
#[path = "../src/sift_input.rs"]
mod sift_input;

fuzz_target!(|data: &[u8]| {
    sift_input::check(data);
});
