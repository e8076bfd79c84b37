//! Rule conditions from arbitrary bytes: parsing, type checking, error
//! reporting and evaluation must never panic, and error spans must lie in
//! the input. See `../src/rules_input.rs` for what one run checks.

#![no_main]

use custos_core as custos;
use libfuzzer_sys::fuzz_target;

#[path = "../src/rules_input.rs"]
mod rules_input;

fuzz_target!(|data: &[u8]| {
    rules_input::check(data);
});
