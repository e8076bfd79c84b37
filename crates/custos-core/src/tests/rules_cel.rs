//! Differential test of the rules language against the `cel` crate, on the
//! subset the two share: random well-typed boolean expressions over int and
//! string literals, `event.amount`, `event.currency` and `event.user_agent`,
//! with `+ - * / %`, unary `-`, comparisons, `&& || !`, `? :`, `in [..]`,
//! `size`, `has`, `startsWith`, `endsWith` and `contains`. Custos reads a
//! parsed payout event; CEL reads a map `event` with the same keys.
//!
//! Where Custos gives `true` or `false`, CEL must give the same bool; where
//! Custos gives null (an absent field, overflow, division by zero), CEL must
//! give an error, and the other way round. Both use commutative
//! three-valued `&&` and `||`, so `false && error` and `error && false` are
//! `false` in each.
//!
//! Intended differences, which the generator leaves out:
//! - Custos checks types when a rule loads and rejects `1 == "1"`; CEL
//!   fails at run time. Every generated expression is well-typed.
//! - Custos mixes ints and floats (`1 == 1.0`, `1 + 0.5`); CEL has no such
//!   overloads. No floats are generated.
//! - Comparisons do not chain in Custos, and the elements of a list after
//!   `in` must be literals; CEL takes any expression. The generator
//!   parenthesises every operator and builds lists of literals.
//! - Only CEL has uint, bytes, maps, macros other than `has`, `\x`, `\u`
//!   and octal escapes, and the `null` literal; only Custos has durations,
//!   addresses, `??`, named lists, `lower`/`upper` and `inCidr`. The
//!   generated strings hold no escapes.
//!
//! The smallest int literal, `-9223372036854775808`, is kept out of the
//! generator (negating it overflows on both sides); the fixed cases in
//! `negated_smallest_int_agrees_with_cel` cover it.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

use super::event;
use crate::Event;
use crate::features::Features;
use crate::rules::{EvalContext, Value, compile_condition};

/// Strategies for expressions of each type, up to some depth.
#[derive(Clone)]
struct Exprs {
    bool: BoxedStrategy<String>,
    int: BoxedStrategy<String>,
    string: BoxedStrategy<String>,
}

fn int_literal() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (-1000i64..1000).prop_map(|n| n.to_string()),
        // Division by zero, and overflow a few operations away.
        2 => Just("0".to_string()),
        1 => Just(i64::MAX.to_string()),
        1 => Just((-i64::MAX).to_string()),
        1 => Just("4611686018427387904".to_string()),
        // Not `i64::MIN`, which may end up negated: see the module docs.
    ]
    .boxed()
}

/// Plain text, some of it matching the events' values, some of it not
/// ASCII (`size` counts characters in both).
fn text() -> BoxedStrategy<String> {
    const PIECES: &[&str] = &[
        "",
        "a",
        "GBP",
        "GB",
        "P",
        "EUR",
        "Moz",
        "Mozilla/5.0",
        "5.0",
        "é",
        "😀",
        " ",
        "/",
    ];
    proptest::collection::vec(proptest::sample::select(PIECES), 0..3)
        .prop_map(|parts| parts.concat())
        .boxed()
}

fn string_literal() -> BoxedStrategy<String> {
    text().prop_map(|s| format!("\"{s}\"")).boxed()
}

fn leaves() -> Exprs {
    Exprs {
        bool: prop_oneof![
            Just("true".to_string()),
            Just("false".to_string()),
            Just("has(event.user_agent)".to_string()),
        ]
        .boxed(),
        int: prop_oneof![3 => int_literal(), 1 => Just("event.amount".to_string())].boxed(),
        string: prop_oneof![
            3 => string_literal(),
            1 => Just("event.currency".to_string()),
            1 => Just("event.user_agent".to_string()),
        ]
        .boxed(),
    }
}

fn one_of(options: &'static [&'static str]) -> BoxedStrategy<&'static str> {
    proptest::sample::select(options).boxed()
}

/// Expressions one level deeper than `e`, or as deep.
fn deeper(e: &Exprs) -> Exprs {
    let comparison = one_of(&["==", "!=", "<", "<=", ">", ">="]);
    let ternary = |branch: &BoxedStrategy<String>| {
        (e.bool.clone(), branch.clone(), branch.clone())
            .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})"))
    };
    let int = prop_oneof![
        3 => e.int.clone(),
        4 => (e.int.clone(), one_of(&["+", "-", "*", "/", "%"]), e.int.clone())
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        1 => e.int.clone().prop_map(|a| format!("-({a})")),
        1 => ternary(&e.int),
        1 => e.string.clone().prop_map(|s| format!("size({s})")),
        1 => e.string.clone().prop_map(|s| format!("{s}.size()")),
    ]
    .boxed();
    let string = prop_oneof![
        3 => e.string.clone(),
        1 => (e.string.clone(), e.string.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
        1 => ternary(&e.string),
    ]
    .boxed();
    let int_list = proptest::collection::vec(int_literal(), 0..4).prop_map(|v| v.join(", "));
    let string_list = proptest::collection::vec(string_literal(), 0..4).prop_map(|v| v.join(", "));
    let bool = prop_oneof![
        2 => e.bool.clone(),
        3 => (e.int.clone(), comparison.clone(), e.int.clone())
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        2 => (e.string.clone(), comparison, e.string.clone())
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        1 => (e.bool.clone(), one_of(&["==", "!="]), e.bool.clone())
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        2 => (e.bool.clone(), one_of(&["&&", "||"]), e.bool.clone())
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        1 => e.bool.clone().prop_map(|a| format!("!({a})")),
        1 => ternary(&e.bool),
        2 => (
            e.string.clone(),
            one_of(&["startsWith", "endsWith", "contains"]),
            e.string.clone()
        )
            .prop_map(|(s, m, t)| format!("{s}.{m}({t})")),
        1 => (e.int.clone(), int_list).prop_map(|(a, l)| format!("({a} in [{l}])")),
        1 => (e.string.clone(), string_list).prop_map(|(a, l)| format!("({a} in [{l}])")),
    ]
    .boxed();
    Exprs { bool, int, string }
}

fn bool_expr(depth: usize) -> BoxedStrategy<String> {
    let mut e = leaves();
    for _ in 0..depth {
        e = deeper(&e);
    }
    e.bool
}

/// One event as Custos and as CEL see it.
struct Fixture {
    event: Event,
    cel: cel::Context<'static, 'static>,
    shown: String,
}

fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for amount in [1, 7, 999, 1000, 1234, 100_000, i64::MAX] {
        for currency in ["GBP", "EUR"] {
            for user_agent in [None, Some("Mozilla/5.0"), Some("Mozilla/5.0 (é😀)")] {
                let mut wire = json!({"event_id": "e1", "type": "payout", "account_id": "a",
                    "time": "2018-05-16T09:30:00Z", "payout_id": "p", "amount": amount,
                    "currency": currency, "source": "sales"});
                let mut map = HashMap::from([
                    ("amount".to_string(), cel::Value::Int(amount)),
                    ("currency".to_string(), cel::Value::from(currency)),
                ]);
                if let Some(ua) = user_agent {
                    wire["user_agent"] = ua.into();
                    map.insert("user_agent".to_string(), cel::Value::from(ua));
                }
                let mut cel = cel::Context::default();
                cel.add_variable_from_value("event", map);
                out.push(Fixture {
                    event: event(wire.clone()),
                    cel,
                    shown: wire.to_string(),
                });
            }
        }
    }
    out
}

/// What CEL gives: `Some(b)` for a bool, `None` for an error.
fn cel_result(src: &str, ctx: &cel::Context<'_, '_>) -> Result<Option<bool>, String> {
    let program =
        cel::Program::compile(src).map_err(|e| format!("cel cannot parse `{src}`: {e}"))?;
    match program.execute(ctx) {
        Ok(cel::Value::Bool(b)) => Ok(Some(b)),
        Ok(other) => Err(format!("cel gives a non-bool {other:?} for `{src}`")),
        Err(_) => Ok(None),
    }
}

fn custos_result(src: &str, event: &Event) -> Result<Option<bool>, String> {
    let compiled = compile_condition(src, &BTreeMap::new())
        .map_err(|e| format!("custos rejects `{src}`: {}", e.message))?;
    let features = Features::default();
    let ctx = EvalContext {
        event,
        features: &features,
        destination: None,
    };
    match (compiled.node)(&ctx) {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        other => Err(format!("custos gives a non-bool {other:?} for `{src}`")),
    }
}

/// Checks that Custos and CEL agree on `src`; returns what they gave.
fn agree(src: &str, fixture: &Fixture) -> Result<Option<bool>, TestCaseError> {
    let ours = custos_result(src, &fixture.event).map_err(TestCaseError::fail)?;
    let theirs = cel_result(src, &fixture.cel).map_err(TestCaseError::fail)?;
    let show = |r: Option<bool>| r.map_or("null/error".to_string(), |b| b.to_string());
    prop_assert!(
        ours == theirs,
        "`{src}` on {}: custos {}, cel {}",
        fixture.shown,
        show(ours),
        show(theirs)
    );
    Ok(ours)
}

#[test]
fn random_expressions_agree_with_cel() {
    let fixtures = fixtures();
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    // Outcomes seen: true, false, null.
    let seen = Cell::new([0u32; 3]);
    let strategy = (bool_expr(4), 0..fixtures.len());
    let result = runner.run(&strategy, |(src, i)| {
        let outcome = agree(&src, &fixtures[i])?;
        let mut counts = seen.get();
        counts[outcome.map_or(2, |b| usize::from(!b))] += 1;
        seen.set(counts);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // A generator that drifted to constant answers would prove little.
    let [yes, no, null] = seen.get();
    assert!(
        yes > 200 && no > 200 && null > 100,
        "too few of some outcome: {yes} true, {no} false, {null} null"
    );
}

/// Cases worth keeping whatever the generator draws: error absorption on
/// either side of `&&` and `||`, overflow at the edges, truncating `/` and
/// `%`, an absent field, and `size` on characters rather than bytes.
#[test]
fn chosen_expressions_agree_with_cel() {
    let fixtures = fixtures();
    let cases = [
        "false && (1 / 0 == 1)",
        "(1 / 0 == 1) && false",
        "true || (1 % 0 == 1)",
        "(1 % 0 == 1) || true",
        "(1 / 0 == 1) || false",
        "!(1 / 0 == 1)",
        "(1 / 0 == 1) ? true : true",
        "true ? true : (1 / 0 == 1)",
        "9223372036854775807 + 1 > 0",
        "-9223372036854775807 - 1 < 0",
        "-9223372036854775807 - 2 < 0",
        "(-9223372036854775807 - 1) / -1 < 0",
        "(-9223372036854775807 - 1) % -1 == 0",
        "-(-9223372036854775807 - 1) > 0",
        "-9223372036854775808 < 0 && -9223372036854775808 == -9223372036854775807 - 1",
        "-9223372036854775808 - 1 < 0",
        "4611686018427387904 * 2 > 0",
        "-7 / 2 == -3 && -7 % 2 == -1 && 7 % -2 == 1",
        "event.amount * event.amount > 0",
        "event.user_agent == \"Mozilla/5.0\"",
        "has(event.user_agent) || event.user_agent.size() > 0",
        "size(\"é😀\") == 2 && \"é😀\".size() == 2",
        "event.currency in [\"GBP\", \"EUR\"] && event.amount in [1, 7, 1000]",
        "\"\".startsWith(\"\") && \"abc\".contains(\"\") && !(\"a\" < \"\")",
        "(\"GBP\" + event.currency).endsWith(event.currency)",
    ];
    for src in cases {
        for fixture in &fixtures {
            if let Err(e) = agree(src, fixture) {
                panic!("{e}");
            }
        }
    }
}

/// Negating the smallest int overflows: CEL gives an error and Custos null.
#[test]
fn negated_smallest_int_agrees_with_cel() {
    let fixtures = fixtures();
    for src in [
        "-(-9223372036854775808) < 0",
        "-(-9223372036854775807 - 1) < 0",
    ] {
        if let Err(e) = agree(src, &fixtures[0]) {
            panic!("{e}");
        }
    }
}
