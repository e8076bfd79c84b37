//! Event bodies from arbitrary bytes: the parser must not panic, and
//! whatever it accepts must read back identically from its stored form.
//! See `../src/event_input.rs` for what one run checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/event_input.rs"]
mod event_input;

fuzz_target!(|data: &[u8]| {
    event_input::check(data);
});
