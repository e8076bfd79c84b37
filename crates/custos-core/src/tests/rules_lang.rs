//! The rules language end to end: golden snapshots of load-time errors and
//! of parse trees, the meaning of every operator and function on real
//! events and features, and how a compiled rule set turns fired rules into
//! a decision.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::event;
use crate::features::{Feature, FeatureSet, Features};
use crate::rules::syntax::{self, Expr, ExprKind, UnaryOp};
use crate::rules::{
    EvalContext, ListKind, ListSource, Mode, NamedList, RuleFiles, RuleSet, RuleSetSource,
    RuleSource, Value, compile_condition, default_rule_set, default_source,
};
use crate::{Action, Decision, Destination, Details, Event, EventType};

// ---------------------------------------------------------------------------
// Shared fixtures
// ---------------------------------------------------------------------------

/// The named lists every test here can use, one of each interesting kind.
fn list_sources() -> BTreeMap<String, ListSource> {
    let list = |kind: ListKind, entries: &[&str]| ListSource {
        kind,
        description: String::new(),
        entries: entries.iter().map(|e| e.to_string()).collect(),
    };
    BTreeMap::from([
        (
            "blocked_ips".to_string(),
            list(ListKind::Ip, &["185.220.101.0/24", "2001:db8::/32"]),
        ),
        (
            "hosting_asns".to_string(),
            list(ListKind::Asn, &["AS9009", "as60068", "16276"]),
        ),
        (
            "mule_banks".to_string(),
            list(ListKind::Institution, &["60-83-71", "ab cd 12"]),
        ),
        (
            "denied_destinations".to_string(),
            list(ListKind::Destination, &[]),
        ),
        (
            "bad_devices".to_string(),
            list(ListKind::Device, &["dev-9"]),
        ),
    ])
}

fn compiled_lists(sources: &BTreeMap<String, ListSource>) -> BTreeMap<String, Arc<NamedList>> {
    sources
        .iter()
        .map(|(name, l)| {
            let built = NamedList::build(l.kind, l.entries.iter().map(String::as_str))
                .unwrap_or_else(|e| panic!("list {name}: {e}"));
            (name.clone(), Arc::new(built))
        })
        .collect()
}

fn rule(id: &str, when: &str, action: Action, score: u32) -> RuleSource {
    RuleSource {
        id: id.to_string(),
        description: format!("{id} fired"),
        when: when.to_string(),
        action,
        score,
        priority: 0,
        mode: Mode::Active,
        tags: Vec::new(),
        events: Vec::new(),
    }
}

fn source(rules: Vec<RuleSource>) -> RuleSetSource {
    RuleSetSource {
        name: "test".to_string(),
        description: String::new(),
        max_action: None,
        hold_cool_off: None,
        rules,
        lists: list_sources(),
    }
}

fn compile_set(rules: Vec<RuleSource>) -> RuleSet {
    RuleSet::compile(source(rules), 7).unwrap_or_else(|e| panic!("{e}"))
}

/// The destination a rule sees for an event: the new one of a destination
/// change.
fn destination_of(event: &Event) -> Option<&Destination> {
    match &event.details {
        Details::PayoutDestinationChange { destination, .. } => Some(destination),
        _ => None,
    }
}

fn decide(set: &RuleSet, event: &Event, features: &Features) -> Decision {
    set.decide(&EvalContext {
        event,
        features,
        destination: destination_of(event),
    })
}

/// A successful login without a device id, with custom attributes of each
/// JSON kind and enrichment from the client.
fn login() -> Event {
    event(json!({
        "event_id": "e-login", "type": "login", "account_id": "seller-1",
        "time": "2018-05-16T09:30:00Z", "status": "success",
        "session_id": "s-1", "ip": "81.2.69.160",
        "vip": true, "loyalty_points": 42, "channel": "Web", "ratio": 0.25,
        "tags": ["a", "b"],
        "enrichment": {
            "network": {"asn": 9009, "as_org": "M247 Europe SRL", "country": "GB"},
            "client": {"browser": "HeadlessChrome", "os": "Linux", "device_type": "desktop"}
        }
    }))
}

/// A payout of 1,250.00 GBP from sales.
fn payout() -> Event {
    event(json!({
        "event_id": "e-payout", "type": "payout", "account_id": "seller-1",
        "time": "2018-05-16T09:30:00Z", "session_id": "s-1", "ip": "2001:db8::7",
        "device_id": "dev-1", "payout_id": "p1", "amount": 125000, "currency": "gbp",
        "source": "sales"
    }))
}

/// A new payout destination at an e-money institution.
fn destination_change() -> Event {
    event(json!({
        "event_id": "e-change", "type": "payout_destination_change", "account_id": "seller-1",
        "time": "2018-05-16T09:30:00Z", "ip": "185.220.101.4", "device_id": "dev-9",
        "destination": {"institution_id": "60-83-71", "institution_type": "e_money",
                        "country": "gb", "account_number": "9999 0001"}
    }))
}

/// Compiles `src` as a condition against the shared lists and evaluates it.
fn eval_with(
    src: &str,
    event: &Event,
    features: &Features,
    lists: &BTreeMap<String, Arc<NamedList>>,
) -> Json {
    let compiled =
        compile_condition(src, lists).unwrap_or_else(|e| panic!("`{src}` does not compile: {e:?}"));
    let ctx = EvalContext {
        event,
        features,
        destination: destination_of(event),
    };
    (compiled.node)(&ctx).to_json()
}

/// Evaluates each `(condition, expected)` pair and reports every mismatch
/// at once.
fn check(event: &Event, features: &Features, cases: &[(&str, Json)]) {
    let lists = compiled_lists(&list_sources());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(src, want)| {
            let got = eval_with(src, event, features, &lists);
            (got != *want).then(|| format!("`{src}`: expected {want}, got {got}"))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const T: Json = Json::Bool(true);
const F: Json = Json::Bool(false);
const N: Json = Json::Null;

// ---------------------------------------------------------------------------
// 1. Golden load-time errors
// ---------------------------------------------------------------------------

/// Compiles each `when` as the only rule of a set and renders what the rule
/// set loader reports, as an author would see it.
fn render_rule_errors(cases: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, when) in cases {
        writeln!(out, "=== {name}").unwrap();
        for line in when.lines() {
            writeln!(out, "> {line}").unwrap();
        }
        match RuleSet::compile(source(vec![rule("r1", when, Action::Review, 10)]), 1) {
            Ok(_) => writeln!(out, "(compiles: no error)").unwrap(),
            Err(e) => writeln!(out, "{e}").unwrap(),
        }
        out.push('\n');
    }
    out
}

fn owned(cases: &[(&str, &str)]) -> Vec<(String, String)> {
    cases
        .iter()
        .map(|(name, when)| (name.to_string(), when.to_string()))
        .collect()
}

#[test]
fn syntax_errors() {
    let mut cases = owned(&[
        ("chained comparison", "0 < login.risk < 2"),
        ("chained equality", "event.amount == 1 == true"),
        ("`=` instead of `==`", "event.type = \"login\""),
        ("single `&`", "session.risky & login.first"),
        ("single `|`", "session.risky | login.first"),
        ("`and` instead of `&&`", "session.risky and login.first"),
        ("`not` instead of `!`", "not session.risky"),
        (
            "unterminated double-quoted string",
            "event.device_id == \"abc",
        ),
        (
            "unterminated single-quoted string",
            "event.device_id == 'abc",
        ),
        ("string ending in a backslash", "event.device_id == \"abc\\"),
        ("bad escape", "event.device_id == \"a\\qb\""),
        ("bad duration unit", "destination.age < 7x"),
        ("duration spelled out", "destination.age < 7days"),
        ("fractional duration", "destination.age < 1.5h"),
        (
            "duration out of range",
            "destination.age < 99999999999999999999d",
        ),
        ("float without a leading digit", "login.risk > .5"),
        ("`in` after a comparison", "event.amount == 1 in [true]"),
        (
            "integer literal overflow",
            "event.amount > 99999999999999999999",
        ),
        (
            "most negative integer literal",
            "event.amount > -9223372036854775808",
        ),
        ("float literal overflow", "login.risk < 1e999"),
        ("`null` literal", "event.device_id == null"),
        (
            "multi-line, error on line 2",
            "event.type == \"login\"\n  && login.rsk >= 1.0",
        ),
        (
            "multi-line after a comment, error on line 3",
            "// risky logins\nevent.type == \"login\" &&\n  login.risk >= 1.0 & session.risky",
        ),
        ("tab before the error", "\tlogin.rsk > 1"),
        (
            "non-ASCII text before the error",
            "client.browser == \"Zoë's browser\" && login.rsk > 1",
        ),
        ("unclosed parenthesis", "(login.risk > 1 && session.risky"),
        ("stray closing parenthesis", "login.risk > 1)"),
        ("missing right operand", "login.risk >"),
        ("missing operator", "login.risk >= 1 login.first"),
        ("empty condition", ""),
        ("only a comment", "   // nothing here"),
        ("missing comma", "has(event.device_id event.ip)"),
        ("unclosed list", "event.amount in [1, 2"),
        ("ternary without `:`", "login.risk > 1 ? true"),
        ("`in` with nothing on its left", "in lists.blocked_ips"),
        ("unknown character", "event.amount # 2"),
        ("number after `.`", "event.1 == 2"),
        ("trailing `.`", "event.amount > 10."),
        (
            "field access on a method result",
            "client.browser.lower().x == \"a\"",
        ),
    ]);
    let depth = syntax::MAX_DEPTH as usize + 6;
    cases.push((
        "parentheses nested deeper than the limit".to_string(),
        format!("{}true{}", "(".repeat(depth), ")".repeat(depth)),
    ));
    cases.push((
        "`!` nested deeper than the limit".to_string(),
        format!("{}true", "!".repeat(depth)),
    ));
    insta::assert_snapshot!("syntax_errors", render_rule_errors(&cases));
}

#[test]
fn type_errors() {
    let cases = owned(&[
        // Unknown names.
        ("unknown field, did you mean", "event.devce_id == \"x\""),
        ("unknown feature, did you mean", "login.rsik >= 1.0"),
        ("unknown field, no suggestion", "velocity.payouts_24h > 3"),
        ("bare `event.attributes`", "event.attributes == 1"),
        ("nested custom attribute", "event.attributes.a.b == 1"),
        ("unknown function", "lookup(event.ip)"),
        (
            "unknown method on a string",
            "client.browser.reverse() == \"x\"",
        ),
        ("string method on an ip", "event.ip.startsWith(\"10.\")"),
        ("method on an int", "event.amount.size() == 1"),
        // Mismatched operands.
        ("string compared with an int", "event.account_id == 42"),
        ("int ordered against a string", "event.amount > \"100\""),
        ("ip ordered against a string", "event.ip > \"10.0.0.1\""),
        ("arithmetic on a bool", "session.risky + 1 > 0"),
        ("bool literal arithmetic", "true * 2 == 2"),
        ("duration compared with a number", "destination.age < 3600"),
        ("duration plus a number", "destination.age + 5 > 7d"),
        ("`%` on floats", "login.risk % 2 == 0"),
        ("`!` on an int", "!event.amount"),
        ("`-` on a string", "-event.account_id == \"x\""),
        ("`&&` on an int", "event.amount && session.risky"),
        ("`??` with two types", "(event.device_id ?? 0) == 0"),
        // Conditions that are not bools.
        ("int condition", "event.amount"),
        ("string condition", "client.browser.lower()"),
        ("int ternary condition", "(event.amount ? 1 : 2) == 1"),
        (
            "ternary branches of two types",
            "(session.risky ? 1 : \"one\") == 1",
        ),
        // Enums.
        ("impossible enum literal", "event.type == \"payot\""),
        (
            "impossible enum literal on the left",
            "\"payot\" == event.type",
        ),
        ("enum literal in the wrong case", "event.type != \"Login\""),
        (
            "impossible enum literal in a list",
            "event.type in [\"login\", \"payot\"]",
        ),
        ("impossible device type", "client.device_type == \"phone\""),
        // Functions and methods.
        (
            "function with too many arguments",
            "has(event.device_id, event.ip)",
        ),
        ("function with no arguments", "size() > 1"),
        ("method with no arguments", "client.browser.startsWith()"),
        (
            "method with an extra argument",
            "client.browser.lower(1) == \"x\"",
        ),
        ("`has` of an expression", "has(event.amount + 1)"),
        ("`size` of an int", "size(event.amount) > 1"),
        ("`startsWith` of an int", "client.browser.startsWith(1)"),
        ("`int` of an ip", "int(event.ip) == 1"),
        ("`double` of a duration", "double(destination.age) > 1.0"),
        ("`duration` of a bad literal", "duration(\"7x\") > 1d"),
        ("`duration` of a field", "duration(event.device_id) > 1d"),
        // Regular expressions.
        (
            "`matches` with a bad regex",
            "matches(client.browser, \"(unclosed\")",
        ),
        (
            "`.matches` with a bad regex",
            "client.browser.matches(\"[a-\")",
        ),
        (
            "`matches` with a non-literal pattern",
            "client.browser.matches(event.device_id)",
        ),
        ("`matches` on an int", "matches(event.amount, \"1\")"),
        // Addresses.
        (
            "`inCidr` prefix too long",
            "event.ip.inCidr(\"10.0.0.0/33\")",
        ),
        ("`inCidr` not an address", "event.ip.inCidr(\"10.0.0\")"),
        ("`inCidr` of a field", "event.ip.inCidr(event.device_id)"),
        (
            "bad address in an ip list literal",
            "event.ip in [\"10.0.0.0/8\", \"300.1.1.1\"]",
        ),
        // Lists.
        ("unknown named list", "event.ip in lists.blocked"),
        (
            "int tested against a destination list",
            "event.amount in lists.denied_destinations",
        ),
        (
            "ip tested against an asn list",
            "event.ip in lists.hosting_asns",
        ),
        (
            "asn tested against an ip list",
            "network.asn in lists.blocked_ips",
        ),
        ("named list outside `in`", "event.ip == lists.blocked_ips"),
        (
            "list literal outside `in`",
            "[\"a\", \"b\"] == event.device_id",
        ),
        ("list literal of two types", "event.amount in [1, \"two\"]"),
        (
            "non-literal list element",
            "event.amount in [1, event.amount]",
        ),
        ("`in` a field", "event.amount in event.device_id"),
    ]);
    insta::assert_snapshot!("type_errors", render_rule_errors(&cases));
}

/// Renders a rule set's errors, or a rule directory's.
fn render_set_errors(cases: Vec<(&str, Result<RuleSet, String>)>) -> String {
    let mut out = String::new();
    for (name, result) in cases {
        writeln!(out, "=== {name}").unwrap();
        match result {
            Ok(_) => writeln!(out, "(loads: no error)").unwrap(),
            Err(e) => writeln!(out, "{e}").unwrap(),
        }
        out.push('\n');
    }
    out
}

fn load_dir(files: &[(&str, &str)]) -> Result<RuleSet, String> {
    let files = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    let source = RuleFiles { files }
        .into_source()
        .map_err(|e| e.to_string())?;
    RuleSet::compile(source, 1).map_err(|e| e.to_string())
}

const MANIFEST: &str = "name = \"t\"\n";

#[test]
fn rule_file_errors() {
    let compile =
        |rules: Vec<RuleSource>| RuleSet::compile(source(rules), 1).map_err(|e| e.to_string());
    let ok = |id: &str| rule(id, "session.risky", Action::Review, 10);
    let with_score = |score| rule("too_much", "session.risky", Action::Block, score);
    let cases = vec![
        (
            "duplicate rule ids",
            compile(vec![ok("risky"), ok("other"), ok("risky")]),
        ),
        (
            "rule id with capitals and spaces",
            compile(vec![ok("High Risk!")]),
        ),
        ("empty rule id", compile(vec![ok("")])),
        (
            "rule id over 64 characters",
            compile(vec![ok(&"x".repeat(65))]),
        ),
        ("score over 100", compile(vec![with_score(150)])),
        ("score of exactly 100", compile(vec![with_score(100)])),
        (
            "several problems in one rule set",
            compile(vec![
                rule("Bad", "login.rsk > 1", Action::Block, 101),
                ok("fine"),
                rule("fine", "event.type == \"payot\"", Action::Allow, 0),
            ]),
        ),
        (
            "bad list name and bad entry",
            RuleSet::compile(
                RuleSetSource {
                    lists: BTreeMap::from([
                        (
                            "Bad Name".to_string(),
                            ListSource {
                                kind: ListKind::String,
                                description: String::new(),
                                entries: vec![],
                            },
                        ),
                        (
                            "ips".to_string(),
                            ListSource {
                                kind: ListKind::Ip,
                                description: String::new(),
                                entries: vec!["10.0.0.0/8".into(), "not-an-ip".into()],
                            },
                        ),
                        (
                            "asns".to_string(),
                            ListSource {
                                kind: ListKind::Asn,
                                description: String::new(),
                                entries: vec!["AS-13335".into()],
                            },
                        ),
                    ]),
                    ..source(vec![])
                },
                1,
            )
            .map_err(|e| e.to_string()),
        ),
        (
            "TOML syntax error in a rule file",
            load_dir(&[
                ("ruleset.toml", MANIFEST),
                (
                    "login.toml",
                    "[[rule]]\nid = \"a\"\nwhen = \"session.risky\naction = \"block\"\n",
                ),
            ]),
        ),
        (
            "TOML syntax error in ruleset.toml",
            load_dir(&[("ruleset.toml", "name = \"t\"\nmax_action = review\n")]),
        ),
        (
            "unknown key in a rule",
            load_dir(&[
                ("ruleset.toml", MANIFEST),
                (
                    "login.toml",
                    "[[rule]]\nid = \"a\"\nwhen = \"session.risky\"\naction = \"block\"\nseverity = 3\n",
                ),
            ]),
        ),
        (
            "unknown key in ruleset.toml",
            load_dir(&[("ruleset.toml", "name = \"t\"\nversion = 2\n")]),
        ),
        (
            "unknown action",
            load_dir(&[
                ("ruleset.toml", MANIFEST),
                (
                    "login.toml",
                    "[[rule]]\nid = \"a\"\nwhen = \"session.risky\"\naction = \"deny\"\n",
                ),
            ]),
        ),
        (
            "unknown event type",
            load_dir(&[
                ("ruleset.toml", MANIFEST),
                (
                    "login.toml",
                    "[[rule]]\nid = \"a\"\nwhen = \"session.risky\"\naction = \"block\"\nevents = [\"payot\"]\n",
                ),
            ]),
        ),
        (
            "rule without `when`",
            load_dir(&[
                ("ruleset.toml", MANIFEST),
                ("login.toml", "[[rule]]\nid = \"a\"\naction = \"block\"\n"),
            ]),
        ),
        (
            "missing list file",
            load_dir(&[(
                "ruleset.toml",
                "name = \"t\"\n[lists.blocked_ips]\nkind = \"ip\"\nfile = \"lists/blocked_ips.txt\"\n",
            )]),
        ),
        (
            "bad entry in a list file",
            load_dir(&[
                (
                    "ruleset.toml",
                    "name = \"t\"\n[lists.blocked_ips]\nkind = \"ip\"\nfile = \"lists/blocked_ips.txt\"\n",
                ),
                (
                    "lists/blocked_ips.txt",
                    "# comment\n10.0.0.0/8\n10.0.0.0/40 # too long\n",
                ),
            ]),
        ),
        (
            "unknown list kind",
            load_dir(&[(
                "ruleset.toml",
                "name = \"t\"\n[lists.x]\nkind = \"email\"\nentries = []\n",
            )]),
        ),
        ("no ruleset.toml", load_dir(&[("login.toml", "")])),
        (
            "duplicate rule ids across files",
            load_dir(&[
                ("ruleset.toml", MANIFEST),
                (
                    "a.toml",
                    "[[rule]]\nid = \"same\"\nwhen = \"session.risky\"\naction = \"block\"\n",
                ),
                (
                    "b.toml",
                    "[[rule]]\nid = \"same\"\nwhen = \"login.first\"\naction = \"review\"\n",
                ),
            ]),
        ),
        (
            "condition error in a rule file",
            load_dir(&[
                ("ruleset.toml", MANIFEST),
                (
                    "login.toml",
                    "[[rule]]\nid = \"a\"\nwhen = '''\nevent.type == \"login\" &&\n  login.rsk > 1'''\naction = \"block\"\n",
                ),
            ]),
        ),
    ];
    insta::assert_snapshot!("rule_file_errors", render_set_errors(cases));
}

#[test]
fn error_positions_are_structured_too() {
    let e = RuleSet::compile(
        source(vec![rule(
            "r1",
            "event.type == \"login\"\n  && login.rsk >= 1.0",
            Action::Review,
            1,
        )]),
        1,
    )
    .unwrap_err();
    assert_eq!(e.errors.len(), 1);
    let error = &e.errors[0];
    assert_eq!(error.rule.as_deref(), Some("r1"));
    assert_eq!(error.field, "when");
    let position = error.position.as_ref().unwrap();
    assert_eq!((position.line, position.column), (2, 6));
    assert!(error.message.contains("did you mean `login.risk`"));
}

// ---------------------------------------------------------------------------
// 2. Golden parse trees
// ---------------------------------------------------------------------------

/// A compact, fully parenthesised form of a parse tree.
fn sexpr(e: &Expr) -> String {
    let list = |items: &[Expr]| items.iter().map(sexpr).collect::<Vec<_>>().join(" ");
    match &e.kind {
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Float(n) => format!("{n:?}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Duration(secs) => format!("<{secs}s>"),
        ExprKind::Path(parts) => parts.join("."),
        ExprKind::List(items) => format!("[{}]", list(items)),
        ExprKind::Unary(UnaryOp::Not, x) => format!("(! {})", sexpr(x)),
        ExprKind::Unary(UnaryOp::Neg, x) => format!("(neg {})", sexpr(x)),
        ExprKind::Binary(op, a, b) => format!("({op} {} {})", sexpr(a), sexpr(b)),
        ExprKind::Ternary(c, a, b) => format!("(?: {} {} {})", sexpr(c), sexpr(a), sexpr(b)),
        ExprKind::Call(name, args) => format!("({name} {})", list(args)).replace(" )", ")"),
        ExprKind::Method(recv, name, args) => {
            format!("(.{name} {} {})", sexpr(recv), list(args)).replace(" )", ")")
        }
    }
}

fn parsed(src: &str) -> Expr {
    syntax::parse(src).unwrap_or_else(|e| panic!("`{src}` does not parse: {e:?}"))
}

#[test]
fn parse_trees() {
    let mut out = String::new();
    for src in [
        "a || b && c",
        "!a == b",
        "-x * y + z",
        "a ?? b || c",
        "a ? b : c ? d : e",
        "s.lower().startsWith(\"x\")",
    ] {
        writeln!(out, "=== {src}\n{:#?}\n", parsed(src)).unwrap();
    }
    insta::assert_snapshot!("parse_trees", out);
}

#[test]
fn precedence_and_associativity() {
    let mut out = String::new();
    for src in [
        // Loosest to tightest: ?: ?? || && compare + * unary postfix.
        "a || b && c",
        "a && b || c",
        "(a || b) && c",
        "!a == b",
        "!a && b",
        "!!a",
        "-x * y + z",
        "x + y * z % w",
        "1 + 2 == 3 && x < 4",
        "a ?? b || c",
        "a || b ?? c",
        "a ?? b ? c : d",
        "x in [1, 2,] && y",
        "x in lists.deny || !(y in [\"a\"])",
        // Left associativity.
        "x - y - z",
        "x / y / z",
        "a ?? b ?? c",
        "a || b || c",
        // Ternaries nest to the right, and inside the middle.
        "a ? b : c ? d : e",
        "a ? b ? c : d : e",
        "(a ? b : c) ? d : e",
        // Negative literals fold; negated paths do not.
        "-5 * 2",
        "- -5",
        "-x.y",
        "-1.5e3",
        // Postfix binds tightest.
        "s.lower().startsWith(\"x\")",
        "!s.contains(\"x\")",
        "-a.b.size()",
        "has(a.b) || size(s) > 3",
        // Literals.
        "1h30m + 7d + 90s + 2w",
        "r\"\\d+\" + '\\'' + \"\\n\"",
        "x == true // trailing comment",
    ] {
        writeln!(out, "{src:<40} => {}", sexpr(&parsed(src))).unwrap();
    }
    insta::assert_snapshot!("precedence", out);
}

#[test]
fn spans_cover_the_whole_expression() {
    let src = "  s.lower().startsWith(\"x\") && !a";
    let e = parsed(src);
    assert_eq!(
        &src[e.span.start..e.span.end],
        "s.lower().startsWith(\"x\") && !a"
    );
    let ExprKind::Binary(_, lhs, rhs) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(
        &src[lhs.span.start..lhs.span.end],
        "s.lower().startsWith(\"x\")"
    );
    assert_eq!(&src[rhs.span.start..rhs.span.end], "!a");
}

#[test]
fn nesting_at_the_limit_parses_and_past_it_does_not() {
    // Each `(` is one level; the outermost expression is level 0.
    let ok = syntax::MAX_DEPTH as usize;
    let nested = |n: usize| format!("{}true{}", "(".repeat(n), ")".repeat(n));
    assert!(syntax::parse(&nested(ok)).is_ok());
    let e = syntax::parse(&nested(ok + 1)).unwrap_err();
    assert!(e.message.contains("nests deeper"), "{e:?}");
    // Very deep input is an error, never a stack overflow.
    assert!(syntax::parse(&nested(100_000 / 2 - 10)).is_err());
    assert!(syntax::parse(&"!".repeat(syntax::MAX_SOURCE_LEN - 4)).is_err());
    let long = format!("true{}", " ".repeat(syntax::MAX_SOURCE_LEN));
    let e = syntax::parse(&long).unwrap_err();
    assert!(e.message.contains("the limit is"), "{e:?}");
}

// ---------------------------------------------------------------------------
// 3. Semantics
// ---------------------------------------------------------------------------

/// `event.device_id` is absent from `login()`, so this is null.
const NULL_COND: &str = "event.device_id == \"x\"";

fn operand(v: &Json) -> &'static str {
    match v {
        Json::Bool(true) => "true",
        Json::Bool(false) => "false",
        _ => NULL_COND,
    }
}

#[test]
fn logic_is_three_valued() {
    let values = [T, F, N];
    let and = |a: &Json, b: &Json| match (a, b) {
        (Json::Bool(false), _) | (_, Json::Bool(false)) => F,
        (Json::Bool(true), Json::Bool(true)) => T,
        _ => N,
    };
    let or = |a: &Json, b: &Json| match (a, b) {
        (Json::Bool(true), _) | (_, Json::Bool(true)) => T,
        (Json::Bool(false), Json::Bool(false)) => F,
        _ => N,
    };
    let mut cases = Vec::new();
    for a in &values {
        cases.push((
            format!("!({})", operand(a)),
            a.as_bool().map_or(N, |b| Json::Bool(!b)),
        ));
        for b in &values {
            cases.push((format!("({}) && ({})", operand(a), operand(b)), and(a, b)));
            cases.push((format!("({}) || ({})", operand(a), operand(b)), or(a, b)));
        }
    }
    let cases: Vec<(&str, Json)> = cases.iter().map(|(s, v)| (s.as_str(), v.clone())).collect();
    let ev = login();
    let features = Features::default();
    check(&ev, &features, &cases);
    // Null is not false: a null condition compared or negated stays null.
    check(
        &ev,
        &features,
        &[
            (NULL_COND, N),
            ("(event.device_id == \"x\") == false", N),
            ("event.device_id != \"x\"", N),
            ("!has(event.device_id)", T),
            // A null ternary condition takes neither branch.
            ("(event.device_id == \"x\") ? true : false", N),
            ("session.risky ? true : false", N),
        ],
    );
}

#[test]
fn null_makes_a_rule_not_fire_even_when_negated() {
    let set = compile_set(vec![
        rule(
            "negated_null",
            "!(event.device_id == \"x\")",
            Action::Block,
            10,
        ),
        rule("ne_null", "event.device_id != \"x\"", Action::Block, 10),
        rule(
            "or_true",
            "event.device_id == \"x\" || true",
            Action::Review,
            10,
        ),
    ]);
    let d = decide(&set, &login(), &Features::default());
    let codes: Vec<&str> = d.reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["or_true"]);
}

#[test]
fn coalesce_and_has() {
    let mut f = Features::default();
    f.number(Feature::LoginRisk, 1.5);
    check(
        &login(),
        &f,
        &[
            ("(event.device_id ?? \"none\") == \"none\"", T),
            ("(event.session_id ?? \"none\") == \"s-1\"", T),
            ("(event.amount ?? 0) == 0", T),
            ("(session.risky ?? false) == false", T),
            ("session.risky ?? true", T),
            ("(session.risk ?? login.risk) == 1.5", T),
            (
                "(event.device_id ?? event.session_id ?? \"-\") == \"s-1\"",
                T,
            ),
            // `??` also catches errors.
            ("(event.attributes.loyalty_points / 0 ?? -1) == -1", T),
            ("has(event.device_id)", F),
            ("has(event.session_id)", T),
            ("has(event.amount)", F),
            ("has(login.risk)", T),
            ("has(session.risk)", F),
            ("has(event.attributes.vip)", T),
            ("has(event.attributes.nope)", F),
            // Arrays and objects read as null.
            ("has(event.attributes.tags)", F),
            ("has(network.asn) && has(client.browser)", T),
            ("has(destination.token)", F),
        ],
    );
    check(
        &payout(),
        &Features::default(),
        &[("has(event.amount) && has(event.device_id)", T)],
    );
}

#[test]
fn arithmetic_errors_are_null_and_do_not_fire() {
    let mut f = Features::default();
    f.number(Feature::LoginRisk, 1.5);
    let ev = payout();
    check(
        &ev,
        &f,
        &[
            ("event.amount * 9223372036854775807 > 0", N),
            ("event.amount + 9223372036854775807 > 0", N),
            ("-9223372036854775807 - event.amount < 0", N),
            ("event.amount / 0 > 0", N),
            ("event.amount % 0 == 0", N),
            (
                "-(event.amount - event.amount - 9223372036854775807 - 1) > 0",
                N,
            ),
            ("(event.amount / 0 > 0) || true", T),
            ("(event.amount / 0 > 0) && false", F),
            ("event.amount / 3 == 41666", T),
            ("event.amount % 7 == 125000 - 7 * (125000 / 7)", T),
            ("-7 / 2 == -3 && -7 % 2 == -1", T),
            ("2w - 7d - 7d == 0s", T),
        ],
    );
    let set = compile_set(vec![
        rule(
            "overflow",
            "event.amount * 9223372036854775807 > 0",
            Action::Block,
            50,
        ),
        rule("div_zero", "event.amount / 0 >= 0", Action::Block, 50),
        rule("rem_zero", "event.amount % 0 == 0", Action::Block, 50),
    ]);
    let d = decide(&set, &ev, &f);
    assert_eq!((d.action, d.score, d.reasons.len()), (Action::Allow, 0, 0));
}

/// Floating division by zero: an infinity makes `>` true and the rule fire,
/// unlike integer division by zero.
#[test]
fn float_division_by_zero_is_null() {
    let mut f = Features::default();
    f.number(Feature::LoginRisk, 1.5);
    check(
        &login(),
        &f,
        &[
            ("login.risk / 0 > 1", N),
            ("login.risk / 0.0 > 1", N),
            ("1 / 0.0 > 1", N),
        ],
    );
}

/// List literals hold numbers as floats, so large ints that differ only
/// beyond 2^53 are taken for equal, while `==` tells them apart.
#[test]
fn large_ints_in_list_literals_are_exact() {
    let ev = event(json!({
        "event_id": "e", "type": "logout", "account_id": "a", "time": "2018-05-16T09:30:00Z",
        "big": 9_007_199_254_740_993_i64
    }));
    check(
        &ev,
        &Features::default(),
        &[
            ("event.attributes.big == 9007199254740992", F),
            ("event.attributes.big in [9007199254740992]", F),
        ],
    );
}

#[test]
fn ints_and_floats_mix() {
    let mut f = Features::default();
    f.number(Feature::LoginRisk, 1.5);
    f.number(Feature::AccountLogins, 3.0);
    check(
        &payout(),
        &f,
        &[
            ("event.amount == 125000.0", T),
            ("event.amount > 124999.5", T),
            ("event.amount / 2.0 == 62500", T),
            ("event.amount / 100000 == 1", T),
            ("double(event.amount) / 100000 == 1.25", T),
            ("login.risk + 1 == 2.5", T),
            ("login.risk * 2 == 3", T),
            ("account.logins == 3", T),
            ("account.logins in [3]", T),
            ("event.amount in [125000.0, 1]", T),
            ("1 < 1.5 && 2.0 >= 2", T),
            ("0.1 + 0.2 == 0.3", F),
            ("1e3 == 1000", T),
            ("-login.risk < -1", T),
            ("event.amount != 125000.5", T),
        ],
    );
}

#[test]
fn durations() {
    let mut f = Features::default();
    f.number(Feature::DestinationAge, 3600.0);
    f.number(Feature::AccountAge, 40.0 * 86_400.0);
    check(
        &destination_change(),
        &f,
        &[
            ("7d == 604800s", T),
            ("1w == 7d", T),
            ("1h30m == 90m", T),
            ("1h30m == 5400s", T),
            ("1d2h3m4s == 93784s", T),
            ("duration(\"1h30m\") == 90m", T),
            ("destination.age < 7d", T),
            ("destination.age == 1h", T),
            ("destination.age == 60m", T),
            ("destination.age < 1h", F),
            ("destination.age <= 1h", T),
            ("destination.age > 59m59s", T),
            ("destination.age + 1h == 2h", T),
            ("destination.age - 2h < 0s", T),
            ("-destination.age == -1h", T),
            ("account.age >= 30d && account.age < 6w", T),
            ("int(destination.age) == 3600", T),
            ("destination.age in [1h, 2h]", T),
            ("(destination.age ?? 0s) == 1h", T),
        ],
    );
    // A duration feature the event does not have is null.
    check(
        &destination_change(),
        &Features::default(),
        &[
            ("destination.age < 7d", N),
            ("(destination.age ?? 0s) < 7d", T),
        ],
    );
}

#[test]
fn strings_and_regular_expressions() {
    check(
        &login(),
        &Features::default(),
        &[
            ("client.browser.startsWith(\"Headless\")", T),
            ("client.browser.endsWith(\"Chrome\")", T),
            ("network.as_org.contains(\"Europe\")", T),
            ("network.as_org.contains(\"europe\")", F),
            ("network.as_org.lower().contains(\"europe\")", T),
            ("client.browser.upper() == \"HEADLESSCHROME\"", T),
            ("client.browser.lower() == \"headlesschrome\"", T),
            ("\"ÉCOLE\".lower() == \"école\"", T),
            ("size(\"héllo\") == 5 && \"héllo\".size() == 5", T),
            ("size(network.as_org) == 15", T),
            (
                "event.account_id + \"/\" + event.session_id == \"seller-1/s-1\"",
                T,
            ),
            ("\"abc\" < \"abd\" && \"b\" > \"abc\"", T),
            ("matches(network.as_org, \"^M247\")", T),
            ("network.as_org.matches(r\"^M\\d+ \\w+ SRL$\")", T),
            ("network.as_org.matches(\"^M\\\\d+ \\\\w+ SRL$\")", T),
            ("client.browser.matches(\"(?i)^headlesschrome$\")", T),
            ("client.browser.matches(\"^Chrome\")", F),
            ("client.browser.matches(\"\")", T),
            ("'it\\'s' == \"it's\"", T),
            ("\"tab\\there\".contains(\"\\t\")", T),
            // Null receivers and arguments give null.
            ("event.device_id.startsWith(\"d\")", N),
            ("client.browser.startsWith(event.device_id)", N),
            ("event.device_id.matches(\".*\")", N),
            ("event.device_id.lower() == \"x\"", N),
            ("size(event.device_id) == 0", N),
            ("(event.device_id + \"x\") == \"x\"", N),
        ],
    );
}

#[test]
fn membership_in_list_literals() {
    check(
        &login(),
        &Features::default(),
        &[
            ("event.ip in [\"81.2.69.0/24\"]", T),
            ("event.ip in [\"81.2.69.160\"]", T),
            ("event.ip in [\"10.0.0.0/8\", \"::/0\"]", F),
            ("event.ip in []", F),
            ("event.ip.inCidr(\"81.2.0.0/16\")", T),
            ("event.ip.inCidr(\"0.0.0.0/0\")", T),
            ("event.ip.inCidr(\"::/0\")", F),
            ("network.asn in [9009, 60068]", T),
            ("network.asn in [1]", F),
            ("event.session_id in [\"s-1\", \"s-2\"]", T),
            ("event.session_id in [\"S-1\"]", F),
            ("event.type in [\"login\", \"logout\"]", T),
            ("event.login.mfa in [true]", N),
            ("session.risky in [true, false]", N),
            ("event.device_id in [\"a\"]", N),
            ("event.attributes.channel in [\"Web\", \"App\"]", T),
            ("event.attributes.loyalty_points in [42]", T),
            ("event.attributes.vip in [true]", T),
            ("!(event.ip in [\"185.220.101.0/24\"])", T),
        ],
    );
    check(
        &payout(),
        &Features::default(),
        &[
            ("event.ip in [\"2001:db8::/32\"]", T),
            ("event.ip in [\"0.0.0.0/0\"]", F),
            ("event.ip.inCidr(\"2001:db8::7\")", T),
            ("event.currency in [\"GBP\", \"EUR\"]", T),
            ("event.amount in [125000, 1]", T),
        ],
    );
}

#[test]
fn membership_in_named_lists_of_each_kind() {
    let ev = destination_change();
    let token = destination_of(&ev).unwrap().account_token.clone();
    let mut sources = list_sources();
    sources.get_mut("denied_destinations").unwrap().entries = vec![token.clone()];
    let lists = compiled_lists(&sources);
    let f = Features::default();
    let run = |src: &str, event: &Event| eval_with(src, event, &f, &lists);
    // Institution ids are normalised on both sides.
    assert_eq!(destination_of(&ev).unwrap().institution_id, "608371");
    let cases: &[(&str, &Event, Json)] = &[
        ("event.ip in lists.blocked_ips", &ev, T),
        ("event.ip in lists.blocked_ips", &login(), F),
        ("event.ip in lists.blocked_ips", &payout(), T),
        ("network.asn in lists.hosting_asns", &login(), T),
        ("network.asn in lists.hosting_asns", &ev, N),
        (
            "event.attributes.loyalty_points in lists.hosting_asns",
            &login(),
            F,
        ),
        ("destination.institution_id in lists.mule_banks", &ev, T),
        ("\"ABCD12\" in lists.mule_banks", &ev, T),
        ("\"60-83-71\" in lists.mule_banks", &ev, F),
        ("destination.token in lists.denied_destinations", &ev, T),
        ("\"tok-other\" in lists.denied_destinations", &ev, F),
        (
            "destination.token in lists.denied_destinations",
            &payout(),
            N,
        ),
        ("event.device_id in lists.bad_devices", &ev, T),
        ("event.device_id in lists.bad_devices", &payout(), F),
        ("event.device_id in lists.bad_devices", &login(), N),
        ("event.type in lists.bad_devices", &ev, F),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(src, event, want)| {
            let got = run(src, event);
            (got != *want)
                .then(|| format!("`{src}` on {}: expected {want}, got {got}", event.event_id))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The lists a condition uses are recorded once each.
    let c = compile_condition(
        "event.ip in lists.blocked_ips || network.asn in lists.hosting_asns || event.ip in lists.blocked_ips",
        &lists,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.lists, ["blocked_ips", "hosting_asns"]);
}

/// An IPv4 client seen through a dual-stack proxy arrives as an
/// IPv4-mapped IPv6 address; IPv4 ranges do not match it today.
#[test]
fn ipv4_mapped_addresses_match_ipv4_ranges() {
    let ev = event(json!({
        "event_id": "e", "type": "login", "account_id": "a", "time": "2018-05-16T09:30:00Z",
        "status": "success", "ip": "::ffff:185.220.101.4"
    }));
    check(
        &ev,
        &Features::default(),
        &[
            ("event.ip in lists.blocked_ips", T),
            ("event.ip in [\"185.220.101.0/24\"]", T),
            ("event.ip.inCidr(\"185.220.0.0/16\")", T),
        ],
    );
}

#[test]
fn custom_attributes_are_read_dynamically() {
    check(
        &login(),
        &Features::default(),
        &[
            ("event.attributes.vip", T),
            ("!event.attributes.vip", F),
            ("event.attributes.vip && true", T),
            ("event.attributes.vip == true", T),
            ("event.attributes.loyalty_points > 40", T),
            ("event.attributes.loyalty_points + 1 == 43", T),
            ("event.attributes.loyalty_points % 5 == 2", T),
            ("event.attributes.ratio * 4 == 1", T),
            ("event.attributes.ratio < 0.5", T),
            ("event.attributes.channel == \"Web\"", T),
            ("event.attributes.channel.lower() == \"web\"", T),
            ("event.attributes.channel.startsWith(\"W\")", T),
            ("size(event.attributes.channel) == 3", T),
            ("int(event.attributes.loyalty_points) == 42", T),
            ("int(event.attributes.ratio) == 0", T),
            ("double(event.attributes.loyalty_points) == 42.0", T),
            // Absent and mismatched attributes are null or unequal.
            ("event.attributes.nope", N),
            ("event.attributes.nope == 1", N),
            ("!event.attributes.nope", N),
            ("(event.attributes.nope ?? 7) == 7", T),
            ("event.attributes.tags == \"a\"", N),
            ("event.attributes.channel > 40", N),
            ("event.attributes.vip + 1 == 2", N),
            ("event.attributes.loyalty_points.startsWith(\"4\")", N),
            ("event.attributes.vip == 1", F),
            ("event.attributes.channel == 1", F),
            ("!event.attributes.channel", N),
        ],
    );
    // A dyn condition fires only on `true`.
    let set = compile_set(vec![
        rule("vip", "event.attributes.vip", Action::Review, 1),
        rule("channel", "event.attributes.channel", Action::Block, 1),
        rule(
            "points",
            "event.attributes.loyalty_points",
            Action::Block,
            1,
        ),
    ]);
    let d = decide(&set, &login(), &Features::default());
    assert_eq!((d.action, d.reasons.len()), (Action::Review, 1));
    assert_eq!(d.reasons[0].saw["event.attributes.vip"], json!(true));
}

#[test]
fn enum_fields() {
    check(
        &login(),
        &Features::default(),
        &[
            ("event.type == \"login\"", T),
            ("event.type != \"payout\"", T),
            ("\"login\" == event.type", T),
            ("event.login.status == \"success\"", T),
            ("event.login.status != \"failure\"", T),
            ("client.device_type == \"desktop\"", T),
            ("event.type.startsWith(\"log\")", T),
            ("event.type.upper() == \"LOGIN\"", T),
            ("event.type < \"logout\"", T),
            ("event.type == event.login.status", F),
            ("event.payout.source == \"sales\"", N),
            ("event.mfa.change == \"disabled\"", N),
        ],
    );
    check(
        &payout(),
        &Features::default(),
        &[
            ("event.type == \"payout\"", T),
            ("event.payout.source == \"sales\"", T),
            ("event.payout.source in [\"loan\", \"reserve\"]", F),
            ("event.login.status == \"success\"", N),
            ("client.device_type == \"unknown\"", T),
        ],
    );
    check(
        &destination_change(),
        &Features::default(),
        &[
            ("destination.institution_type == \"e_money\"", T),
            ("destination.country == \"GB\"", T),
            ("destination.last4 == \"0001\"", T),
        ],
    );
}

#[test]
fn conversions() {
    check(
        &payout(),
        &Features::default(),
        &[
            ("int(\"42\") == 42", T),
            ("int(\" 42 \") == 42", T),
            ("int(\"4.2\") == 4", N),
            ("int(\"x\") == 0", N),
            ("int(2.9) == 2 && int(-2.9) == -2", T),
            ("int(1e19) == 0", N),
            ("int(1h) == 3600", T),
            ("int(event.amount) == 125000", T),
            ("int(event.currency) == 0", N),
            ("double(\"1.5\") == 1.5", T),
            ("double(\" 2 \") == 2", T),
            ("double(\"x\") == 0", N),
            ("double(3) / 2 == 1.5", T),
            ("double(event.amount) / 100 == 1250", T),
            ("duration(\"1h30m\") == 90m", T),
            ("duration(\"2w\") == 14d", T),
            ("int(event.device_id) == 0", N),
            ("int(event.session_id) == 0", N),
        ],
    );
}

// ---------------------------------------------------------------------------
// 4. Rule sets
// ---------------------------------------------------------------------------

fn codes(reasons: &[crate::Reason]) -> Vec<&str> {
    reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn the_strongest_active_action_wins_and_scores_add_up() {
    let set = compile_set(vec![
        rule("allow", "true", Action::Allow, 10),
        rule("review", "true", Action::Review, 20),
        rule("challenge", "true", Action::Challenge, 30),
        rule("unfired_block", "false", Action::Block, 40),
    ]);
    let d = decide(&set, &login(), &Features::default());
    assert_eq!(d.action, Action::Review);
    assert_eq!(d.score, 60);
    assert_eq!(codes(&d.reasons), ["allow", "review", "challenge"]);
    assert_eq!(d.rules_version, 7);
    assert_eq!(d.policy, "test");
    assert!(d.shadow.is_empty());

    let d = decide(&compile_set(vec![]), &login(), &Features::default());
    assert_eq!((d.action, d.score, d.reasons.len()), (Action::Allow, 0, 0));
}

#[test]
fn the_score_is_capped_at_100() {
    let set = compile_set(vec![
        rule("a", "true", Action::Allow, 50),
        rule("b", "true", Action::Allow, 40),
        rule("c", "true", Action::Allow, 30),
    ]);
    let d = decide(&set, &login(), &Features::default());
    assert_eq!((d.action, d.score), (Action::Allow, 100));
    // Each reason keeps its own score.
    let scores: Vec<u32> = d.reasons.iter().map(|r| r.score).collect();
    assert_eq!(scores, [50, 40, 30]);
}

#[test]
fn max_action_caps_the_action() {
    let mut src = source(vec![
        rule("block", "true", Action::Block, 90),
        rule("challenge", "true", Action::Challenge, 5),
    ]);
    src.max_action = Some(Action::Review);
    let set = RuleSet::compile(src.clone(), 1).unwrap();
    let d = decide(&set, &login(), &Features::default());
    assert_eq!((d.action, d.score), (Action::Review, 95));
    // The reasons still say what each rule asked for.
    assert_eq!(d.reasons[0].action, Action::Block);

    // A cap above the strongest action changes nothing; a cap below every
    // action applies to all.
    src.max_action = Some(Action::Block);
    let d = decide(
        &RuleSet::compile(src.clone(), 1).unwrap(),
        &login(),
        &Features::default(),
    );
    assert_eq!(d.action, Action::Block);
    src.max_action = Some(Action::Allow);
    let d = decide(
        &RuleSet::compile(src, 1).unwrap(),
        &login(),
        &Features::default(),
    );
    assert_eq!((d.action, d.score), (Action::Allow, 95));
}

#[test]
fn shadow_rules_are_recorded_and_never_act() {
    let mut loud = rule("shadow_block", "session.risky", Action::Block, 100);
    loud.mode = Mode::Shadow;
    let mut quiet = rule("shadow_unfired", "!session.risky", Action::Block, 100);
    quiet.mode = Mode::Shadow;
    let set = compile_set(vec![
        loud,
        quiet,
        rule("active", "true", Action::Challenge, 5),
    ]);
    let mut f = Features::default();
    f.flag(Feature::SessionRisky, true);
    let d = decide(&set, &login(), &f);
    assert_eq!((d.action, d.score), (Action::Challenge, 5));
    assert_eq!(codes(&d.reasons), ["active"]);
    assert_eq!(codes(&d.shadow), ["shadow_block"]);
    assert_eq!(d.shadow[0].action, Action::Block);
    assert_eq!(d.shadow[0].saw["session.risky"], json!(true));

    // Only shadow rules fire: the event is allowed with a zero score.
    let mut only = rule("only_shadow", "true", Action::Block, 80);
    only.mode = Mode::Shadow;
    let d = decide(&compile_set(vec![only]), &login(), &f);
    assert_eq!((d.action, d.score, d.reasons.len()), (Action::Allow, 0, 0));
    assert_eq!(codes(&d.shadow), ["only_shadow"]);
}

#[test]
fn rules_run_only_for_their_event_types() {
    let mut payouts = rule("payouts", "true", Action::Hold, 30);
    payouts.events = vec![EventType::Payout];
    let mut logins = rule("logins", "true", Action::Challenge, 20);
    logins.events = vec![EventType::Login, EventType::Logout];
    let set = compile_set(vec![payouts, logins, rule("all", "true", Action::Allow, 1)]);
    let f = Features::default();
    assert_eq!(
        codes(&decide(&set, &login(), &f).reasons),
        ["logins", "all"]
    );
    let d = decide(&set, &payout(), &f);
    assert_eq!(
        (d.action, codes(&d.reasons)),
        (Action::Hold, vec!["payouts", "all"])
    );
    assert_eq!(
        codes(&decide(&set, &destination_change(), &f).reasons),
        ["all"]
    );
}

#[test]
fn priority_orders_evaluation_and_reasons() {
    let with_priority = |id: &str, priority: i32| RuleSource {
        priority,
        ..rule(id, "true", Action::Allow, 1)
    };
    let set = compile_set(vec![
        with_priority("low", -5),
        with_priority("first_zero", 0),
        with_priority("high", 100),
        with_priority("middle", 10),
        with_priority("second_zero", 0),
        with_priority("also_high", 100),
    ]);
    let order = [
        "high",
        "also_high",
        "middle",
        "first_zero",
        "second_zero",
        "low",
    ];
    let d = decide(&set, &login(), &Features::default());
    assert_eq!(codes(&d.reasons), order);
    let ids: Vec<&str> = set.rules().iter().map(|r| r.source.id.as_str()).collect();
    assert_eq!(ids, order);
}

#[test]
fn saw_holds_what_each_fired_rule_read() {
    let mut f = Features::default();
    f.number(Feature::LoginRisk, 1.5);
    f.flag(Feature::SessionRisky, true);
    f.number(Feature::DestinationAge, 3600.0);
    let set = compile_set(vec![
        rule(
            "mixed",
            "login.risk > 1 && (session.risky || event.device_id == \"x\") && !(event.ip in lists.blocked_ips) && login.risk < 9",
            Action::Review,
            10,
        ),
        rule(
            "short_circuited",
            "true || event.amount > 0 || event.attributes.channel == \"x\" || destination.age < 1d",
            Action::Allow,
            0,
        ),
        rule(
            "unfired",
            "event.account_id == \"nobody\"",
            Action::Block,
            100,
        ),
    ]);
    let d = decide(&set, &login(), &f);
    assert_eq!(codes(&d.reasons), ["mixed", "short_circuited"]);
    let saw = |i: usize| serde_json::to_value(&d.reasons[i].saw).unwrap();
    // Every path read, once, with the value it had; absent ones as null.
    assert_eq!(
        saw(0),
        json!({
            "login.risk": 1.5,
            "session.risky": true,
            "event.device_id": null,
            "event.ip": "81.2.69.160",
        })
    );
    // Paths on the branch not taken are shown too; durations in seconds.
    assert_eq!(
        saw(1),
        json!({
            "event.amount": null,
            "event.attributes.channel": "Web",
            "destination.age": 3600,
        })
    );
    assert_eq!(d.reasons[0].message, "mixed fired");
    let reads: Vec<&str> = set.rules()[0].reads().collect();
    assert_eq!(
        reads,
        ["login.risk", "session.risky", "event.device_id", "event.ip"]
    );
    assert_eq!(set.rules()[0].lists(), ["blocked_ips"]);
}

#[test]
fn needs_holds_exactly_the_features_applicable_rules_read() {
    let mut on_login = rule(
        "on_login",
        "login.risk > 1 && session.risky && event.device_id == \"x\"",
        Action::Review,
        1,
    );
    on_login.events = vec![EventType::Login];
    let mut on_payout = rule(
        "on_payout",
        "destination.age < 1d && (destination.known ?? false)",
        Action::Hold,
        1,
    );
    on_payout.events = vec![EventType::Payout];
    let mut shadow = rule("shadow", "ip.failed_logins_1h > 10", Action::Block, 1);
    shadow.events = vec![EventType::Login];
    shadow.mode = Mode::Shadow;
    let everywhere = rule(
        "everywhere",
        "account.age < 1d || has(event.attributes.vip) || network.asn == 1",
        Action::Allow,
        1,
    );
    let set = compile_set(vec![on_login, on_payout, shadow, everywhere]);
    assert_eq!(
        set.needs(EventType::Login),
        FeatureSet::of(&[
            Feature::LoginRisk,
            Feature::SessionRisky,
            Feature::IpFailedLogins1h,
            Feature::AccountAge,
        ])
    );
    assert_eq!(
        set.needs(EventType::Payout),
        FeatureSet::of(&[
            Feature::DestinationAge,
            Feature::DestinationKnown,
            Feature::AccountAge,
        ])
    );
    for ty in EventType::ALL {
        if !matches!(ty, EventType::Login | EventType::Payout) {
            assert_eq!(
                set.needs(ty),
                FeatureSet::of(&[Feature::AccountAge]),
                "{ty:?}"
            );
        }
    }
    assert_eq!(
        set.rules()[0].features(),
        FeatureSet::of(&[Feature::LoginRisk, Feature::SessionRisky])
    );
    // Without rules nothing is needed.
    assert_eq!(
        compile_set(vec![]).needs(EventType::Login),
        FeatureSet::EMPTY
    );
}

#[test]
fn the_default_rule_set_compiles_and_describes_every_rule() {
    let set = default_rule_set();
    assert_eq!(set.name(), "default");
    assert_eq!(set.version(), 1);
    assert!(!set.rules().is_empty());
    for r in set.rules() {
        assert!(
            !r.source.description.trim().is_empty(),
            "rule `{}` has no description",
            r.source.id
        );
    }
    assert!(set.list("blocked_ips").is_some());
    assert!(set.list("denied_destinations").is_some());
    // The source round-trips through compilation unchanged.
    assert_eq!(set.source(), &default_source());
    let again = RuleSet::compile(default_source(), 2).unwrap();
    assert_eq!(again.rules().len(), set.rules().len());
}

#[test]
fn values_render_as_json() {
    assert_eq!(Value::Null.to_json(), Json::Null);
    assert_eq!(Value::Duration(90).to_json(), json!(90));
    assert_eq!(Value::Float(f64::NAN).to_json(), Json::Null);
    assert_eq!(Value::Ip("::1".parse().unwrap()).to_json(), json!("::1"));
}

/// A long flat chain such as `true || true || ...` nests only one level at
/// a time while parsing, but builds a tree as deep as the chain is long,
/// which compiling and evaluating walk recursively.
#[test]
fn long_flat_chains_within_the_size_limit_load() {
    let terms = (syntax::MAX_SOURCE_LEN - 4) / 6;
    let src = format!("{}true", "true||".repeat(terms));
    assert!(src.len() <= syntax::MAX_SOURCE_LEN);
    let result = RuleSet::compile(source(vec![rule("long", &src, Action::Review, 1)]), 1);
    // Either a clear error or a rule that evaluates; never a crash.
    if let Ok(set) = result {
        let d = decide(&set, &login(), &Features::default());
        assert_eq!(d.action, Action::Review);
    }
}
