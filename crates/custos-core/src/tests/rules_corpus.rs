//! Hostile input for the rules parser and compiler, on stable Rust: every
//! seed of the fuzz corpus (`fuzz/corpus/rules/`) run through the fuzz
//! target's own check, then random strings, random bytes, soups of the
//! language's tokens, and deep nesting. Nothing may panic or overflow the
//! stack, and every error span must lie within the input.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate as custos;
use crate::rules::compile_condition;

// The fuzz target's check, shared so that the seeds run through exactly
// what the fuzzer runs; it names this crate `custos`.
#[path = "../../../../fuzz/src/rules_input.rs"]
mod rules_input;

/// Seeds are named by what they hold: rules and expressions that must
/// compile, inputs that must be rejected, and others (deep nesting, inputs
/// the fuzzer found) that need only not break anything.
fn expectation(name: &str) -> Option<bool> {
    let valid = ["rule-", "op-", "fn-", "lit-"];
    if valid.iter().any(|p| name.starts_with(p)) {
        Some(true)
    } else if name.starts_with("bad-") {
        Some(false)
    } else {
        None
    }
}

#[test]
fn fuzz_corpus_runs_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/rules");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let lists = rules_input::lists();
    let mut seen = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        rules_input::check(&data);
        if name.starts_with("ruleset-") {
            // A whole rule set, as `POST /v1/rules` takes it.
            let source: crate::RuleSetSource = serde_json::from_slice(&data).unwrap();
            if let Err(e) = crate::RuleSet::compile(source, 1) {
                panic!("seed {name}: {e}");
            }
        }
        if let Some(valid) = expectation(&name) {
            let src = std::str::from_utf8(&data).unwrap();
            let result = compile_condition(src, &lists);
            assert_eq!(
                result.is_ok(),
                valid,
                "seed {name}: {:?}",
                result.err().map(|e| e.message)
            );
        }
        seen += 1;
    }
    assert!(seen >= 30, "only {seen} seeds in {}", dir.display());
}

/// The language's tokens, well-formed or nearly so, and the usual suspects.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    // Operators and punctuation.
    "??", "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", ",", ".", "!", "-", "+", "*",
    "/", "%", "<", ">", "?", ":", "in", "=", "&", "|", "{", "}", "$", "#", "\\",
    // Names, functions and methods.
    "true", "false", "null", "not", "has", "size", "int", "double", "duration", "matches",
    "startsWith", "endsWith", "contains", "lower", "upper", "inCidr", "lists", "blocked_ips",
    "bad_asns", "banks", "x", "_", "event", "amount", "attributes", "tier",
    // Paths of each type.
    "event.amount", "event.currency", "event.user_agent", "event.ip", "event.type",
    "event.login.mfa", "event.attributes.n", "event.attributes.list", "login.risk",
    "login.new_device", "destination.age", "destination.token", "network.asn",
    "lists.blocked_ips", "lists.bad_asns", "lists.nope",
    // Literals, in range and out. Not the smallest int, which panics when
    // negated again (see `rules_cel::negated_smallest_int_agrees_with_cel`).
    "0", "1", "-1", "007", "9223372036854775807", "99999999999999999999", "1.5", "1e309", "1e", "1.", ".5", "0x10",
    "7d", "1h30m", "99999999999999999w", "7y", "1.5d", "\"\"", "\"GBP\"", "'s'", "r\"\\d+\"",
    "\"10.0.0.0/8\"", "\"::1/129\"", "\"(\"", "\"\\q\"", "\"é😀\"", "\"", "'", "r\"",
    // Whitespace, comments and stray characters.
    " ", "\n", "\t", "//", "// c\n", "é", "😀", "\u{0}", "\u{feff}",
];

fn token_soup() -> impl Strategy<Value = String> {
    let token = proptest::sample::select(TOKENS);
    let separator = prop_oneof![4 => Just(" "), 2 => Just(""), 1 => Just("\n")];
    proptest::collection::vec((token, separator), 0..120).prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(t, s)| [t, s])
            .collect::<String>()
    })
}

/// Up to 1,000 openers of any kind, then a soup, then some closers.
fn nesting() -> impl Strategy<Value = String> {
    let opener = proptest::sample::select(
        &[
            "(", "[", "!", "-", "has(", "size(", "x(", "[1, ", "true ? ", "a.b(",
        ][..],
    );
    (
        proptest::collection::vec(opener, 0..1000),
        token_soup(),
        proptest::collection::vec(proptest::sample::select(&[")", "]", " : 1"][..]), 0..1000),
    )
        .prop_map(|(open, middle, close)| open.concat() + &middle + &close.concat())
}

fn run(cases: u32, strategy: impl Strategy<Value = String>) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, |src| {
        rules_input::check_str(&src);
        Ok(())
    }) {
        panic!("{e}");
    }
}

#[test]
fn arbitrary_text_never_panics() {
    run(1000, any::<String>());
    run(500, "\\PC{0,300}");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut runner = TestRunner::new(Config {
        cases: 500,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(any::<u8>(), 0..300);
    if let Err(e) = runner.run(&strategy, |data| {
        rules_input::check(&data);
        Ok(())
    }) {
        panic!("{e}");
    }
}

#[test]
fn token_soups_never_panic() {
    run(2000, token_soup());
}

#[test]
fn deep_nesting_never_panics() {
    run(300, nesting());
}

/// The worst cases the limits are there for, each at full size: nesting
/// must be refused, not followed into a stack overflow, whether it is
/// written with brackets, prefixes or long chains of operators.
#[test]
fn nesting_limits_hold() {
    let lists = rules_input::lists();
    let deep = |open: &str, middle: &str, close: &str, n: usize| {
        format!("{}{middle}{}", open.repeat(n), close.repeat(n))
    };
    let refused = [
        deep("(", "true", ")", 1000),
        deep("(", "", "", 1000),
        deep("[", "1", "]", 1000),
        deep("!", "true", "", 1000),
        deep("-", "1 > 0", "", 1000),
        deep("has(", "x", ")", 1000),
        deep("true ? ", "true", " : false", 1000),
        deep("size(", "\"a\"", ") ", 1000),
        // One level per link of a chain: the tree leans left as deep.
        format!("{}1 > 0", "1+".repeat(8000)),
        format!("{}true", "true && ".repeat(2000)),
        format!("{}true", "login.first ?? ".repeat(1000)),
        // Not chains of method calls: see `method_chains_are_refused`.
    ];
    for src in &refused {
        assert!(src.len() <= crate::rules::syntax::MAX_SOURCE_LEN);
        rules_input::check_str(src);
        assert!(
            compile_condition(src, &lists).is_err(),
            "accepted {}...",
            &src[..40]
        );
    }
    // Just past the length limit, and well within the depth limit.
    let long = format!("{}true", " ".repeat(crate::rules::syntax::MAX_SOURCE_LEN));
    assert!(compile_condition(&long, &lists).is_err());
    rules_input::check_str(&long);
    let fine = deep("(", "true", ")", 20);
    assert!(compile_condition(&fine, &lists).is_ok());
}

/// A chain of method calls compiles by recursing into the receiver, so each
/// link counts toward the height limit: 1500 links are refused, never a
/// stack overflow.
#[test]
fn method_chains_are_refused() {
    let src = format!("\"a\"{} == \"a\"", ".lower()".repeat(1500));
    assert!(compile_condition(&src, &rules_input::lists()).is_err());
}
