//! Rule conditions from arbitrary bytes: parsing, type checking, error
//! reporting and evaluation must never panic, and error spans must lie in
//! the input. See `../src/parse_input.rs` for what one run checks.

#![no_main]

use custos_core as custos;
use libfuzzer_sys::fuzz_target;

#[path = "../src/parse_input.rs"]
mod parse_input;

fuzz_target!(|data: &[u8]| {
    parse_input::check(data);
});
