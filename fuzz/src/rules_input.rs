//! One step of the `rules` fuzz target: compile the input as a rule
//! condition, report any error the way a rule set does, and evaluate what
//! compiles against a few events.
//!
//! The corpus test in custos-core includes this file as well, so that the
//! seeds run through exactly the code the fuzzer runs. The including module
//! must bring the core crate into scope as `custos`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use super::custos::features::{Feature, FeatureKind, Features};
use super::custos::rules::{EvalContext, ListKind, NamedList, RuleError, compile_condition};
use super::custos::{
    Destination, DestinationTokenizer, Details, Event, EventParser, RuleSet, RuleSetSource,
};

/// Named lists the inputs may use, one of each element type.
pub fn lists() -> BTreeMap<String, Arc<NamedList>> {
    let build = |kind, entries: &[&str]| {
        NamedList::build(kind, entries.iter().copied())
            .unwrap_or_else(|e| panic!("fuzz list is invalid: {e}"))
    };
    BTreeMap::from([
        (
            "blocked_ips".to_string(),
            Arc::new(build(ListKind::Ip, &["185.220.101.0/24", "2001:db8::/32"])),
        ),
        (
            "bad_asns".to_string(),
            Arc::new(build(ListKind::Asn, &["AS9009", "60068"])),
        ),
        (
            "denied_destinations".to_string(),
            Arc::new(build(ListKind::Destination, &["tok-1", "tok-2"])),
        ),
        (
            "banks".to_string(),
            Arc::new(build(ListKind::Institution, &["60-83-71"])),
        ),
    ])
}

/// An event, its features and its destination, to evaluate inputs on.
pub struct Fixture {
    pub event: Event,
    pub features: Features,
    pub with_destination: bool,
}

impl Fixture {
    fn destination(&self) -> Option<&Destination> {
        match &self.event.details {
            Details::PayoutDestinationChange { destination, .. } if self.with_destination => {
                Some(destination)
            }
            _ => None,
        }
    }
}

fn features(flag: bool, number: f64) -> Features {
    let mut f = Features::default();
    for feature in Feature::ALL.iter().copied() {
        match feature.kind() {
            FeatureKind::Flag => f.flag(feature, flag),
            FeatureKind::Number | FeatureKind::Duration => f.number(feature, number),
        }
    }
    f
}

/// A login with nothing known, a payout with every feature and odd custom
/// attributes, and a destination change with a destination.
pub fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let tokenizer = DestinationTokenizer::new(b"fuzz-key-0123456789abcdef")
            .unwrap_or_else(|e| panic!("fuzz key is invalid: {e}"));
        let parser = EventParser::new(tokenizer);
        let parse = |text: &str| {
            let value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("fuzz event is not json: {e}"));
            parser
                .parse_value(value)
                .unwrap_or_else(|e| panic!("fuzz event is invalid: {e}"))
        };
        vec![
            Fixture {
                event: parse(
                    r#"{"event_id": "e1", "type": "login", "account_id": "a",
                        "time": "2018-05-16T09:30:00Z", "status": "failure"}"#,
                ),
                features: Features::default(),
                with_destination: false,
            },
            Fixture {
                event: parse(
                    r#"{"event_id": "e2", "type": "payout", "account_id": "a",
                        "time": "2018-05-16T09:30:00Z", "payout_id": "p", "amount": 9223372036854775807,
                        "currency": "GBP", "source": "sales", "ip": "185.220.101.7",
                        "user_agent": "Mozilla/5.0 (X11; Linux) éß😀", "device_id": "d",
                        "enrichment": {"network": {"asn": 9009, "country": "GB", "city": "London"},
                                       "client": {"browser": "HeadlessChrome", "os": "Linux", "device_type": "bot"}},
                        "attributes": {"tier": "gold", "n": -9223372036854775808, "big": 18446744073709551615,
                                       "x": 1.5e300, "ok": true, "list": [1, 2], "obj": {"a": 1}, "nothing": null}}"#,
                ),
                features: features(true, 1e15),
                with_destination: false,
            },
            Fixture {
                event: parse(
                    r#"{"event_id": "e3", "type": "payout_destination_change", "account_id": "a",
                        "time": "2018-05-16T09:30:00Z", "ip": "2001:db8::1",
                        "destination": {"institution_id": "60-83-71", "institution_type": "e_money",
                                        "country": "gb", "account_number": "99990001"}}"#,
                ),
                features: features(false, -0.0),
                with_destination: true,
            },
        ]
    })
}

/// Runs one input. Panics when an invariant breaks: an error span outside
/// the input or off a character boundary, or a panic while compiling,
/// reporting or evaluating.
pub fn check(data: &[u8]) {
    // The language is text; other bytes never reach the compiler.
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    check_str(src);
}

/// [`check`] on text. Text that reads as a whole rule set (the JSON body of
/// `POST /v1/rules`) is compiled as one instead: every rule, list and
/// setting, which must give the set or errors, never a panic.
pub fn check_str(src: &str) {
    if src.trim_start().starts_with('{')
        && let Ok(source) = serde_json::from_str::<RuleSetSource>(src)
    {
        if let Err(e) = RuleSet::compile(source, 1) {
            assert!(
                !e.to_string().is_empty(),
                "a rule set refused without a reason"
            );
        }
        return;
    }
    static LISTS: OnceLock<BTreeMap<String, Arc<NamedList>>> = OnceLock::new();
    let lists = LISTS.get_or_init(lists);
    match compile_condition(src, lists) {
        Err(e) => {
            let span = e.span;
            assert!(
                span.start <= span.end && span.end <= src.len(),
                "error span {}..{} outside the input ({} bytes): {}",
                span.start,
                span.end,
                src.len(),
                e.message
            );
            assert!(
                src.is_char_boundary(span.start) && src.is_char_boundary(span.end),
                "error span {}..{} splits a character: {}",
                span.start,
                span.end,
                e.message
            );
            assert!(!e.message.is_empty(), "empty error message");
            // What `custos rules check` and the API show: must not panic.
            let shown = RuleError::at("when", e.message, src, span).to_string();
            assert!(!shown.is_empty());
        }
        Ok(compiled) => {
            for fixture in fixtures() {
                let ctx = EvalContext {
                    event: &fixture.event,
                    features: &fixture.features,
                    destination: fixture.destination(),
                };
                let _ = (compiled.node)(&ctx);
                for read in &compiled.reads {
                    let _ = (read.node)(&ctx).to_json();
                }
            }
        }
    }
}
