//! Rules evaluation, next to the `cel` crate on the same rules.
//!
//! Goals: one simple rule in at most 50 ns, 100 rules on one event in at
//! most 5 µs in total. Custos reads features by slot and event fields
//! through compiled field functions; CEL reads maps bound as variables.
//! CEL has no durations without its `chrono` feature, nor addresses or
//! named lists, so its copies of the rules use seconds, plain strings and
//! list variables. Each benchmark runs briefly (0.5 s warm-up, 2 s
//! measured) so that the whole file takes about a minute.
//!
//! Run with `cargo bench -p custos-core --bench rules`.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use custos_core::features::{Feature, Features};
use custos_core::rules::{
    EvalContext, ListSource, Mode, NamedList, RuleSet, RuleSetSource, RuleSource, Value,
    compile_condition, default_rule_set,
};
use custos_core::{Action, Destination, DestinationTokenizer, Details, Event, EventParser};
use serde_json::json;

fn parse(wire: serde_json::Value) -> Event {
    let tokenizer =
        DestinationTokenizer::new(b"bench-key-0123456789abcdef").expect("the bench key is valid");
    EventParser::new(tokenizer)
        .parse_value(wire)
        .expect("the bench events are valid")
}

/// A payout of £1,234.56 from a bot-like client to a fresh destination.
fn payout() -> Event {
    parse(json!({
        "event_id": "e1", "type": "payout", "account_id": "seller-1",
        "time": "2018-05-16T09:30:00Z", "session_id": "s-1", "ip": "81.2.69.160",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0", "device_id": "dev-1",
        "payout_id": "p1", "amount": 123456, "currency": "GBP", "source": "sales",
        "destination": {"institution_id": "60-83-71", "institution_type": "e_money",
                        "country": "gb", "account_number": "99990001"},
        "enrichment": {"network": {"asn": 9009, "as_org": "M247 Ltd", "country": "GB", "city": "London"},
                       "client": {"browser": "HeadlessChrome", "os": "Linux", "device_type": "desktop"}}
    }))
}

/// A successful login from a new device on a new network.
fn login() -> Event {
    parse(json!({
        "event_id": "e2", "type": "login", "account_id": "seller-1",
        "time": "2018-05-16T09:30:00Z", "session_id": "s-1", "ip": "81.2.69.160",
        "user_agent": "Mozilla/5.0", "device_id": "dev-9", "status": "success",
        "enrichment": {"network": {"asn": 9009, "country": "GB"},
                       "client": {"browser": "Chrome", "os": "Windows", "device_type": "desktop"}}
    }))
}

/// Features of a risky session that set the payout destination yesterday.
fn features() -> Features {
    let mut f = Features::default();
    f.number(Feature::LoginRisk, 1.5);
    f.flag(Feature::LoginFirst, false);
    f.flag(Feature::LoginNewDevice, true);
    f.flag(Feature::LoginNewNetwork, true);
    f.number(Feature::IpFailedLogins1h, 3.0);
    f.number(Feature::AccountFailedLogins1h, 1.0);
    f.number(Feature::AccountAge, 400.0 * 86_400.0);
    f.number(Feature::SessionRisk, 1.5);
    f.flag(Feature::SessionRisky, true);
    f.flag(Feature::SessionVerified, false);
    f.number(Feature::DestinationAge, 86_400.0);
    f.flag(Feature::DestinationKnown, true);
    f.flag(Feature::DestinationSetInRiskySession, false);
    f
}

fn destination(event: &Event) -> Option<&Destination> {
    match &event.details {
        Details::Payout { destination, .. } => destination.as_ref(),
        _ => None,
    }
}

fn map(entries: &[(&str, cel::Value)]) -> cel::Value {
    let m: HashMap<String, cel::Value> = entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    m.into()
}

/// What CEL needs bound to read the same as Custos: one map per prefix.
fn cel_variables(event: &Event, features: &Features) -> Vec<(&'static str, cel::Value)> {
    let number = |f: Feature| cel::Value::Float(features.number_of(f.name()).unwrap_or_default());
    let flag = |f: Feature| cel::Value::Bool(features.flag_of(f.name()).unwrap_or_default());
    let seconds = |f: Feature| cel::Value::Int(features.number_of(f.name()).unwrap_or(0.0) as i64);
    let text = |s: Option<&str>| cel::Value::from(s.unwrap_or_default());
    let (amount, currency) = match &event.details {
        Details::Payout {
            amount, currency, ..
        } => (*amount as i64, currency.as_str()),
        _ => (0, ""),
    };
    let dest = destination(event);
    let mut event_entries = vec![
        ("type", cel::Value::from(event.event_type.as_str())),
        ("amount", cel::Value::Int(amount)),
        ("currency", cel::Value::from(currency)),
        ("user_agent", text(event.user_agent.as_deref())),
        ("device_id", text(event.device_id.as_deref())),
        ("ip", cel::Value::from(event.ip.map(|ip| ip.to_string()))),
    ];
    if let Details::Payout { source, .. } = &event.details {
        event_entries.push(("payout", map(&[("source", source.as_str().into())])));
    }
    if let Details::Login { status, .. } = &event.details {
        event_entries.push(("login", map(&[("status", status.as_str().into())])));
    }
    let network = &event.enrichment.network;
    let client = &event.enrichment.client;
    vec![
        ("event", map(&event_entries)),
        (
            "login",
            map(&[
                ("risk", number(Feature::LoginRisk)),
                ("first", flag(Feature::LoginFirst)),
                ("new_device", flag(Feature::LoginNewDevice)),
                ("new_network", flag(Feature::LoginNewNetwork)),
            ]),
        ),
        (
            "account",
            map(&[
                ("age", seconds(Feature::AccountAge)),
                ("failed_logins_1h", number(Feature::AccountFailedLogins1h)),
            ]),
        ),
        (
            "ip",
            map(&[("failed_logins_1h", number(Feature::IpFailedLogins1h))]),
        ),
        (
            "session",
            map(&[
                ("risk", number(Feature::SessionRisk)),
                ("risky", flag(Feature::SessionRisky)),
                ("verified", flag(Feature::SessionVerified)),
            ]),
        ),
        (
            "destination",
            map(&[
                ("age", seconds(Feature::DestinationAge)),
                ("known", flag(Feature::DestinationKnown)),
                (
                    "set_in_risky_session",
                    flag(Feature::DestinationSetInRiskySession),
                ),
                ("token", text(dest.map(|d| d.account_token.as_str()))),
                ("country", text(dest.and_then(|d| d.country.as_deref()))),
                (
                    "institution_type",
                    text(dest.and_then(|d| d.institution_type).map(|t| t.as_str())),
                ),
            ]),
        ),
        (
            "network",
            map(&[
                ("asn", cel::Value::Int(network.asn.map_or(0, i64::from))),
                ("country", text(network.country.as_deref())),
                ("as_org", text(network.as_org.as_deref())),
            ]),
        ),
        (
            "client",
            map(&[
                ("browser", text(client.browser.as_deref())),
                ("os", text(client.os.as_deref())),
            ]),
        ),
        (
            "lists",
            map(&[
                ("blocked_ips", vec!["185.220.101.7", "185.220.101.8"].into()),
                ("denied_destinations", vec!["tok-1", "tok-2"].into()),
            ]),
        ),
    ]
}

fn cel_context(event: &Event, features: &Features) -> cel::Context<'static, 'static> {
    let mut ctx = cel::Context::default();
    for (name, value) in cel_variables(event, features) {
        ctx.add_variable_from_value(name, value);
    }
    ctx
}

fn cel_program(src: &str) -> cel::Program {
    cel::Program::compile(src).unwrap_or_else(|e| panic!("cel cannot parse `{src}`: {e}"))
}

fn cel_fires(program: &cel::Program, ctx: &cel::Context<'_, '_>) -> bool {
    matches!(program.execute(ctx), Ok(cel::Value::Bool(true)))
}

/// One rule in both languages.
struct Pair {
    custos: String,
    cel: String,
}

/// 100 realistic payout rules: fifteen shapes with varied thresholds, over
/// amounts, features, enrichment, strings, regular expressions and lists.
fn hundred_rules() -> Vec<Pair> {
    let mut rules = Vec::new();
    let mut add = |custos: String, cel: String| rules.push(Pair { custos, cel });
    for i in 0..7i64 {
        let amount = 200_000 + i * 50_000;
        let days = 1 + i;
        let risk = 2.0 + i as f64 / 4.0;
        let both = |s: String| (s.clone(), s);
        let (a, b) = both(format!("event.amount > {amount}"));
        add(a, b);
        let (a, b) = both(format!(
            "login.risk >= {risk:.2} && event.amount > {}",
            amount / 2
        ));
        add(a, b);
        add(
            format!("session.risky && destination.age < {days}d"),
            format!("session.risky && destination.age < {}", days * 86_400),
        );
        let (a, b) = both(format!(
            "event.currency in [\"USD\", \"EUR\", \"CHF\"] && event.amount >= {amount}"
        ));
        add(a, b);
        let (a, b) = both(format!("network.asn in [60068, 14061, {}]", 20_000 + i));
        add(a, b);
        let (a, b) = both(format!(
            "client.browser.startsWith(\"Headless\") && event.amount > {}",
            amount * 2
        ));
        add(a, b);
        if i < 3 {
            let (a, b) = both(format!(
                "event.ip in lists.blocked_ips && event.amount >= {}",
                i * 1000
            ));
            add(a, b);
            let (a, b) = both(format!(
                "destination.token in lists.denied_destinations || event.amount == {}",
                i + 1
            ));
            add(a, b);
        }
        let (a, b) = both(format!(
            "!destination.known && event.amount > {}",
            amount / 4
        ));
        add(a, b);
        add(
            format!("account.age < {}d && event.amount >= {amount}", 30 * days),
            format!(
                "account.age < {} && event.amount >= {amount}",
                30 * days * 86_400
            ),
        );
        let (a, b) = both(format!(
            "has(event.device_id) && login.new_device && event.amount > {}",
            amount * 3
        ));
        add(a, b);
        let (a, b) = both(format!(
            "network.country != destination.country.upper() && event.amount > {amount}"
        ));
        // CEL has no `upper` without its strings extension: destination
        // countries are bound in upper case there.
        add(a, b.replace(".upper()", ""));
        let (a, b) = both(format!(
            "event.user_agent.contains(\"curl/{i}\") || event.user_agent.contains(\"python\")"
        ));
        add(a, b);
        let (a, b) = both(format!(
            "matches(event.user_agent, \"(?i)(wget|scrapy|bot{i})\")"
        ));
        add(a, b);
        let (a, b) = both(format!(
            "ip.failed_logins_1h >= {:.1} && session.risk >= {risk:.2}",
            10.0 + i as f64
        ));
        add(a, b);
    }
    for i in 0..3i64 {
        add(
            format!(
                "event.payout.source == \"loan\" && destination.age < {}d",
                2 + i
            ),
            format!(
                "event.payout.source == \"loan\" && destination.age < {}",
                (2 + i) * 86_400
            ),
        );
    }
    rules
}

fn lists() -> BTreeMap<String, ListSource> {
    let list = |kind, entries: &[&str]| ListSource {
        kind,
        description: String::new(),
        entries: entries.iter().map(|e| e.to_string()).collect(),
    };
    BTreeMap::from([
        (
            "blocked_ips".to_string(),
            list(
                custos_core::rules::ListKind::Ip,
                &["185.220.101.7", "185.220.101.8"],
            ),
        ),
        (
            "denied_destinations".to_string(),
            list(
                custos_core::rules::ListKind::Destination,
                &["tok-1", "tok-2"],
            ),
        ),
    ])
}

fn rule_set(rules: &[Pair]) -> RuleSet {
    let source = RuleSetSource {
        name: "bench".into(),
        description: String::new(),
        max_action: None,
        hold_cool_off: None,
        rules: rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleSource {
                id: format!("rule-{i}"),
                description: String::new(),
                when: r.custos.clone(),
                action: Action::Review,
                score: 10,
                priority: 0,
                mode: Mode::Active,
                tags: Vec::new(),
                events: Vec::new(),
            })
            .collect(),
        lists: lists(),
    };
    RuleSet::compile(source, 1).unwrap_or_else(|e| panic!("the bench rules are invalid: {e}"))
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// Compiles a condition with no lists and checks it is true on `ctx`, so
/// that both sides do all the work.
fn custos_condition(src: &str, ctx: &EvalContext<'_>) -> custos_core::rules::CompiledExpr {
    let lists: BTreeMap<String, Arc<NamedList>> = BTreeMap::new();
    let compiled =
        compile_condition(src, &lists).unwrap_or_else(|e| panic!("`{src}`: {}", e.message));
    assert!(
        matches!((compiled.node)(ctx), Value::Bool(true)),
        "`{src}` must hold in the bench"
    );
    compiled
}

/// Custos and CEL on one rule that holds on `event`; `group` is left open
/// for more variants.
fn one_rule<'c>(
    c: &'c mut Criterion,
    name: &str,
    custos_src: &str,
    cel_src: &str,
    event: &Event,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let features = features();
    let ctx = EvalContext {
        event,
        features: &features,
        destination: destination(event),
    };
    let compiled = custos_condition(custos_src, &ctx);
    let program = cel_program(cel_src);
    let cel_ctx = cel_context(event, &features);
    assert!(
        cel_fires(&program, &cel_ctx),
        "`{cel_src}` must hold in CEL"
    );

    let mut group = c.benchmark_group(name);
    group.bench_function("custos", |b| {
        b.iter(|| matches!((compiled.node)(black_box(&ctx)), Value::Bool(true)))
    });
    group.bench_function("cel", |b| {
        b.iter(|| cel_fires(&program, black_box(&cel_ctx)))
    });
    group
}

fn simple_rule(c: &mut Criterion) {
    let src = "login.risk >= 1.0 && event.amount > 1000";
    let event = payout();
    let mut group = one_rule(c, "simple_rule", src, src, &event);
    // What CEL costs when each event's variables must be bound first, as
    // they would be in an engine: only the two this rule reads.
    let features = features();
    let program = cel_program(src);
    group.bench_function("cel_bind_and_execute", |b| {
        b.iter(|| {
            let event = black_box(&event);
            let risk = features.number_of("login.risk").unwrap_or_default();
            let amount = match &event.details {
                Details::Payout { amount, .. } => *amount as i64,
                _ => 0,
            };
            let mut ctx = cel::Context::default();
            ctx.add_variable_from_value("login", map(&[("risk", cel::Value::Float(risk))]));
            ctx.add_variable_from_value("event", map(&[("amount", cel::Value::Int(amount))]));
            cel_fires(&program, &ctx)
        })
    });
    group.finish();
}

fn four_clause_rule(c: &mut Criterion) {
    let src = "event.login.status == \"success\" && !login.first && login.new_device && login.risk >= 1.0";
    one_rule(c, "four_clause_rule", src, src, &login()).finish();
}

fn hundred_rules_one_event(c: &mut Criterion) {
    let rules = hundred_rules();
    assert_eq!(rules.len(), 100);
    let set = rule_set(&rules);
    let event = payout();
    let features = features();
    let ctx = EvalContext {
        event: &event,
        features: &features,
        destination: destination(&event),
    };
    let programs: Vec<cel::Program> = rules.iter().map(|r| cel_program(&r.cel)).collect();
    let cel_ctx = cel_context(&event, &features);
    // Both must agree on which rules fire, or the comparison is unfair.
    let decision = set.decide(&ctx);
    let cel_fired = programs.iter().filter(|p| cel_fires(p, &cel_ctx)).count();
    assert_eq!(decision.reasons.len(), cel_fired, "custos and cel disagree");
    assert!(cel_fired > 0 && cel_fired < 50, "{cel_fired} rules fire");
    eprintln!("hundred_rules: {cel_fired} of 100 rules fire");
    // The `cel` crate compiles a `matches` pattern on every call: this shows
    // CEL without that cost.
    let plain: Vec<&cel::Program> = rules
        .iter()
        .zip(&programs)
        .filter(|(r, _)| !r.cel.contains("matches("))
        .map(|(_, p)| p)
        .collect();

    let mut group = c.benchmark_group("hundred_rules");
    group.bench_function("custos_decide", |b| b.iter(|| set.decide(black_box(&ctx))));
    group.bench_function("custos_conditions_only", |b| {
        b.iter(|| {
            set.rules()
                .iter()
                .filter(|r| r.fires(black_box(&ctx)))
                .count()
        })
    });
    group.bench_function("cel", |b| {
        b.iter(|| {
            programs
                .iter()
                .filter(|p| cel_fires(p, black_box(&cel_ctx)))
                .count()
        })
    });
    group.bench_function(format!("cel_{}_without_matches", plain.len()), |b| {
        b.iter(|| {
            plain
                .iter()
                .filter(|p| cel_fires(p, black_box(&cel_ctx)))
                .count()
        })
    });
    group.finish();
}

fn default_rules(c: &mut Criterion) {
    let set = default_rule_set();
    let features = features();
    let mut group = c.benchmark_group("default_rules");
    for (name, event) in [("payout", payout()), ("login", login())] {
        let ctx = EvalContext {
            event: &event,
            features: &features,
            destination: destination(&event),
        };
        group.bench_function(name, |b| b.iter(|| set.decide(black_box(&ctx))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = simple_rule, four_clause_rule, hundred_rules_one_event, default_rules
}
criterion_main!(benches);
