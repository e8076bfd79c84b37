use std::collections::BTreeMap;

use super::charts::{
    Scale, TITLE_DELAYS, TITLE_LEGIT_DAYS, TITLE_RULES, TITLE_RULES_COMPARED, TITLE_STOLEN,
    TITLE_STOLEN_COMPARED, bucket_labels, merged_delay_histogram,
};
use super::format::{Px, escape, fmt_axis, fmt_count, fmt_hours, fmt_money, fmt_rate, fmt_share};
use super::tables::{Better, Delta, Measure, measure_delta};
use super::*;
use crate::report::{
    Amounts, CampaignDetection, CauseTally, ChangedDecisions, ChangedExample, ClassStolen,
    Comparison, DayPoint, DelayBucket, EventCounts, Headline, HonestCost, LegitPayouts, Logins,
    Report, Responses, RuleStats, RulesUsed, StolenMoney,
};

const HOSTILE_RULE: &str = "<script>alert('x')</script>";
const HOSTILE_CLASS: &str = "<script>class</script>";

fn amounts(count: u64, value: u64) -> Amounts {
    Amounts { count, value }
}

fn histogram() -> Vec<DelayBucket> {
    [(Some(1.0), 3), (Some(4.0), 5), (Some(24.0), 2), (None, 1)]
        .into_iter()
        .map(|(up_to_hours, count)| DelayBucket { up_to_hours, count })
        .collect()
}

fn day(day: &str, attempted: u64, stopped: u64, victims: u64, alerts: u64) -> DayPoint {
    DayPoint {
        day: day.to_string(),
        stolen_attempted: attempted,
        stolen_stopped: stopped,
        legit_payouts: 700,
        legit_held: 3,
        legit_logins: 900,
        legit_logins_challenged: 9,
        new_victims: victims,
        campaign_alerts: alerts,
    }
}

/// A small report whose every data string that could carry markup does.
fn sample_report() -> Report {
    let stolen = StolenMoney {
        attempted: amounts(40, 1_234_567),
        stopped: amounts(36, 1_100_000),
        blocked: amounts(30, 900_000),
        held: amounts(6, 200_000),
        held_then_released: amounts(1, 34_567),
        paid: amounts(3, 100_000),
        loans: amounts(2, 500_000),
        share_stopped: Some(0.891),
        ..StolenMoney::default()
    };
    let legit = LegitPayouts {
        total: amounts(1_000, 98_765_432),
        held: amounts(12, 345_678),
        released: amounts(11, 300_000),
        never_released: amounts(1, 45_678),
        share_held: Some(0.012),
        median_delay_hours: Some(3.25),
        p90_delay_hours: Some(20.04),
        delay_histogram: histogram(),
    };
    let mut decisions = BTreeMap::new();
    decisions.insert("allow".to_string(), 9_000);
    decisions.insert("hold".to_string(), 700);
    decisions.insert("block".to_string(), 300);
    decisions.insert("<i>odd</i>".to_string(), 1);
    Report {
        input: "history <2024> & \"more\".ndjson".to_string(),
        rules: RulesUsed {
            name: "default".to_string(),
            dir: None,
            rule_count: 3,
        },
        events: EventCounts {
            read: 10_001,
            by_attackers: 120,
            decisions,
            first_time: Some("2024-01-01T00:00:00Z".to_string()),
            last_time: Some("2024-01-05T23:59:59Z".to_string()),
            seconds: 1.25,
            events_per_second: 8_000.8,
        },
        stolen: BTreeMap::from([
            ("EUR".to_string(), stolen.clone()),
            ("<GBP>".to_string(), stolen.clone()),
        ]),
        legit_payouts: BTreeMap::from([
            ("EUR".to_string(), legit.clone()),
            ("<GBP>".to_string(), legit),
        ]),
        logins: Logins {
            legit: 4_500,
            legit_challenged: 45,
            share_legit_challenged: Some(0.01),
            attacker: 60,
            attacker_challenged: 57,
            share_attacker_challenged: Some(0.95),
        },
        campaigns: vec![
            CampaignDetection {
                campaign: "phish<ing>-2024".to_string(),
                scenario: "credential \"stuffing\"".to_string(),
                victims: 8,
                started_at: Some("2024-01-02T08:00:00Z".to_string()),
                detected_at: Some("2024-01-02T20:00:00Z".to_string()),
                detected_as: Some("cmp-<1>".to_string()),
                delay_hours: Some(12.0),
                victims_at_detection: Some(3),
                victims_linked: 7,
            },
            CampaignDetection {
                campaign: "quiet-one".to_string(),
                scenario: "sim swap".to_string(),
                victims: 2,
                ..CampaignDetection::default()
            },
        ],
        rules_hit: vec![
            RuleStats {
                id: HOSTILE_RULE.to_string(),
                action: "block".to_string(),
                events: vec!["payout.requested".to_string()],
                shadow: false,
                hits: 40,
                fraud_hits: 36,
                fraud_events: 40,
                precision: Some(0.9),
                recall: Some(0.9),
            },
            RuleStats {
                id: "new_device_login_with_a_rather_long_descriptive_name".to_string(),
                action: "challenge".to_string(),
                events: vec!["login.succeeded".to_string()],
                shadow: true,
                hits: 100,
                fraud_hits: 50,
                fraud_events: 60,
                precision: Some(0.5),
                recall: Some(0.833),
            },
            RuleStats {
                id: "never_fires".to_string(),
                action: "hold".to_string(),
                events: vec!["payout.requested".to_string()],
                shadow: false,
                hits: 0,
                fraud_hits: 0,
                fraud_events: 40,
                precision: None,
                recall: Some(0.0),
            },
        ],
        days: vec![
            day("2024-01-01", 0, 0, 0, 0),
            day("2024-01-02", 600_000, 500_000, 3, 1),
            day("2024-01-03", 400_000, 400_000, 4, 0),
            day("2024-01-04", 234_567, 200_000, 1, 2),
            day("<day>", 0, 0, 0, 0),
        ],
        responses: Responses {
            verifications_passed: 52,
            verifications_failed: 57,
            ..Responses::default()
        },
        headline: Headline {
            share_stolen_stopped: Some(0.95),
            share_legit_payouts_held: Some(0.012),
            share_legit_logins_challenged: Some(0.01),
            worst_victims_at_detection: Some(3),
            campaigns_missed: 1,
        },
        stolen_by_class: BTreeMap::from([(
            HOSTILE_CLASS.to_string(),
            ClassStolen {
                currencies: BTreeMap::from([("EUR".to_string(), stolen)]),
                share_stopped: Some(0.891),
                share_prevented_by_step_up: Some(0.25),
            },
        )]),
        honest_cost: HonestCost {
            payouts_held: CauseTally {
                total: 1_000,
                hit: 12,
                share: Some(0.012),
                by_rule: BTreeMap::from([(HOSTILE_RULE.to_string(), 12)]),
                by_cause: BTreeMap::from([(HOSTILE_RULE.to_string(), 12)]),
            },
            ..HonestCost::default()
        },
    }
}

fn sample_comparison() -> Comparison {
    let base = sample_report();
    let mut candidate = sample_report();
    candidate.rules = RulesUsed {
        name: "strict & <b>bold</b>".to_string(),
        dir: Some("rules/strict".to_string()),
        rule_count: 4,
    };
    candidate.headline.share_stolen_stopped = Some(0.97);
    candidate.headline.share_legit_payouts_held = Some(0.02);
    candidate.headline.campaigns_missed = 0;
    candidate.rules_hit[0].hits = 45;
    candidate.rules_hit[0].precision = Some(0.8);
    candidate.rules_hit.push(RuleStats {
        id: "only_in_candidate".to_string(),
        action: "review".to_string(),
        events: vec!["account.updated".to_string()],
        shadow: false,
        hits: 5,
        fraud_hits: 5,
        fraud_events: 10,
        precision: Some(1.0),
        recall: Some(0.5),
    });
    for day in &mut candidate.days {
        day.stolen_stopped = day.stolen_attempted;
    }
    Comparison {
        base,
        candidate,
        changed: vec![
            ChangedDecisions {
                from: "allow".to_string(),
                to: "hold".to_string(),
                fraud: 4,
                legit: 12,
            },
            ChangedDecisions {
                from: "block".to_string(),
                to: "<allow>".to_string(),
                fraud: 1,
                legit: 0,
            },
        ],
        examples: vec![ChangedExample {
            event_id: "evt-<1>\"".to_string(),
            event_type: "payout.requested".to_string(),
            account_id: "acct-'7'&".to_string(),
            fraud: true,
            from: "allow".to_string(),
            to: "hold".to_string(),
            rules_added: vec!["<added>".to_string()],
            rules_removed: vec![],
        }],
    }
}

/// Every element opened is closed, in order (void elements aside): the
/// document is laid out as written, and no data string opened a tag.
fn assert_well_formed(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link", "wbr"];
    let mut open: Vec<&str> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>').expect("every tag ends with >");
        let tag = &after[..end];
        rest = &after[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let last = open
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(last, name, "</{name}> closes <{last}>");
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        if !tag.ends_with('/') && !VOID.contains(&name) {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "left open: {open:?}");
}

/// Every number in an SVG geometry attribute parses as a finite number.
fn assert_svg_numbers_finite(html: &str) {
    let attributes = [
        " x=\"",
        " y=\"",
        " x1=\"",
        " x2=\"",
        " y1=\"",
        " y2=\"",
        " cx=\"",
        " cy=\"",
        " r=\"",
        " width=\"",
        " height=\"",
        " points=\"",
        " viewBox=\"",
    ];
    let mut checked = 0;
    for attribute in attributes {
        for (at, _) in html.match_indices(attribute) {
            let start = at + attribute.len();
            let end = start + html[start..].find('"').expect("attribute is closed");
            for number in html[start..end].split([' ', ',']).filter(|s| !s.is_empty()) {
                let value: f64 = number
                    .parse()
                    .unwrap_or_else(|_| panic!("{attribute}{number} is not a number"));
                assert!(value.is_finite(), "{attribute}{number}");
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no SVG geometry found");
}

fn assert_no_nan_or_inf(html: &str) {
    assert!(!html.contains("NaN"), "NaN in the page");
    assert!(!html.contains("inf"), "inf in the page");
}

#[test]
fn escape_replaces_all_five_markup_characters() {
    assert_eq!(
        escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
    );
    assert_eq!(escape("plain-rule_1"), "plain-rule_1");
}

#[test]
fn data_strings_are_escaped_in_the_report() {
    let html = render_report(&sample_report());
    assert!(!html.contains("<script"), "a rule id opened a script");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(
        html.contains("&lt;script&gt;class&lt;/script&gt;"),
        "the class row"
    );
    assert!(html.contains("history &lt;2024&gt; &amp; &quot;more&quot;.ndjson"));
    assert!(html.contains("&lt;GBP&gt;"));
    assert!(html.contains("phish&lt;ing&gt;-2024"));
    assert!(html.contains("&lt;i&gt;odd&lt;/i&gt;"));
    assert!(!html.contains("<i>"));
    assert_well_formed(&html);
}

#[test]
fn data_strings_are_escaped_in_the_comparison() {
    let html = render_comparison(&sample_comparison());
    assert!(!html.contains("<script"));
    assert!(!html.contains("<b>"));
    assert!(html.contains("evt-&lt;1&gt;&quot;"));
    assert!(html.contains("acct-&#39;7&#39;&amp;"));
    assert!(html.contains("&lt;added&gt;"));
    assert!(html.contains("&lt;allow&gt;"));
    assert_well_formed(&html);
}

#[test]
fn money_is_major_units_with_separators_and_currency() {
    assert_eq!(fmt_money(1_234_567, "EUR"), "12,345.67 EUR");
    assert_eq!(fmt_money(5, "GBP"), "0.05 GBP");
    assert_eq!(fmt_money(0, "EUR"), "0.00 EUR");
    assert_eq!(fmt_money(100_000_000, "EUR"), "1,000,000.00 EUR");
    assert_eq!(fmt_money(u64::MAX, "EUR"), "184,467,440,737,095,516.15 EUR");
    let html = render_report(&sample_report());
    assert!(html.contains("12,345.67 EUR"));
    assert!(html.contains("987,654.32 EUR"));
}

#[test]
fn shares_hours_and_counts_format_as_specified() {
    assert_eq!(fmt_share(Some(0.991234)), "99.12%");
    assert_eq!(fmt_share(Some(0.0)), "0.00%");
    assert_eq!(fmt_share(None), "\u{2014}");
    assert_eq!(fmt_share(Some(f64::NAN)), "\u{2014}");
    assert_eq!(fmt_hours(Some(20.04)), "20.0 h");
    assert_eq!(fmt_hours(Some(3.25)), "3.2 h");
    assert_eq!(fmt_hours(None), "\u{2014}");
    assert_eq!(fmt_count(1_234_567), "1,234,567");
    assert_eq!(fmt_count(999), "999");
    assert_eq!(fmt_rate(8_000.8), "8,001 events/s");
    assert_eq!(fmt_rate(f64::INFINITY), "\u{2014}");
}

#[test]
fn deltas_are_signed_and_coloured_by_which_way_is_better() {
    let up = measure_delta(
        Measure::Share(Some(0.95)),
        Measure::Share(Some(0.97)),
        "",
        "",
        Better::Higher,
    );
    assert_eq!((up.text.as_str(), up.class), ("+2.00 pp", "better"));
    let held_more = measure_delta(
        Measure::Share(Some(0.012)),
        Measure::Share(Some(0.02)),
        "",
        "",
        Better::Lower,
    );
    assert_eq!(
        (held_more.text.as_str(), held_more.class),
        ("+0.80 pp", "worse")
    );
    let money = measure_delta(
        Measure::Amount(amounts(3, 1_000)),
        Measure::Amount(amounts(1, 250)),
        "EUR",
        "payouts",
        Better::Higher,
    );
    assert_eq!(money.text, "\u{2212}7.50 EUR");
    assert_eq!(money.sub.as_deref(), Some("\u{2212}2 payouts"));
    assert_eq!(money.class, "worse");
    let tiny = Delta::float(-0.000_1, 2, " pp", Better::Higher);
    assert_eq!((tiny.text.as_str(), tiny.class), ("0.00 pp", "same"));
    let missing = measure_delta(
        Measure::Share(None),
        Measure::Share(Some(0.5)),
        "",
        "",
        Better::Higher,
    );
    assert_eq!(missing, Delta::none());
}

#[test]
fn headline_shows_each_goal_and_flags_missed_campaigns() {
    let mut report = sample_report();
    let html = render_report(&report);
    for value in ["95.00%", "1.20%", "1.00%", "3", "1"] {
        assert!(html.contains(&format!("<div class=\"value\">{value}</div>")));
    }
    assert!(html.contains("never detected, of 2."));
    assert_eq!(html.matches("<div class=\"card flag\">").count(), 1);
    report.headline.campaigns_missed = 0;
    report.headline.worst_victims_at_detection = None;
    let html = render_report(&report);
    assert!(!html.contains("card flag"));
    assert!(html.contains("<div class=\"value\">\u{2014}</div>"));
}

#[test]
fn every_chart_appears_with_its_title() {
    let html = render_report(&sample_report());
    for (id, title) in [
        ("chart-stolen", TITLE_STOLEN),
        ("chart-legit-days", TITLE_LEGIT_DAYS),
        ("chart-delays", TITLE_DELAYS),
        ("chart-rules", TITLE_RULES),
    ] {
        let tag = format!("<title id=\"{id}-title\">{title}</title>");
        assert!(html.contains(&tag), "missing {tag}");
    }
    assert_eq!(html.matches("<svg").count(), 4);
    assert_svg_numbers_finite(&html);
}

#[test]
fn stolen_chart_marks_victims_and_alerts_by_day() {
    let html = render_report(&sample_report());
    assert!(html.contains("<title>2024-01-02: 3 new victims</title>"));
    assert!(html.contains("<title>2024-01-04: 2 campaign alerts</title>"));
    // A day without victims gets no marker.
    assert!(!html.contains("2024-01-01: 0 new victims"));
    // The last point of the cumulative line carries the total.
    assert!(html.contains("Attempted: 12.35k by &lt;day&gt;"));
}

#[test]
fn delay_histogram_sums_currencies_bucket_by_bucket() {
    let report = sample_report();
    let merged = merged_delay_histogram(&report.legit_payouts);
    let counts: Vec<u64> = merged.iter().map(|b| b.count).collect();
    assert_eq!(counts, [6, 10, 4, 2]);
    assert_eq!(
        bucket_labels(&merged),
        ["\u{2264} 1 h", "1\u{2013}4 h", "4\u{2013}24 h", "> 24 h"]
    );
    let html = render_report(&report);
    assert!(html.contains("<title>1\u{2013}4 h: 10 released holds</title>"));
}

#[test]
fn rule_chart_shows_only_rules_with_hits_but_the_table_shows_all() {
    let html = render_report(&sample_report());
    let chart_start = html.find("id=\"chart-rules-title\"").expect("rule chart");
    let chart = &html[chart_start..chart_start + html[chart_start..].find("</svg>").expect("end")];
    assert!(chart.contains("new_device_login_with_a_rath\u{2026} (shadow)"));
    assert!(!chart.contains("never_fires"));
    assert!(chart.contains("90.00%"));
    let table = &html[html.find("<h3>All rules</h3>").expect("rule table")..];
    assert!(table.contains("<code>never_<wbr>fires</code>"));
    assert!(table.contains("class=\"badge shadow\""));
}

#[test]
fn empty_report_renders_without_nan_or_inf() {
    let html = render_report(&Report::default());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_no_nan_or_inf(&html);
    assert_svg_numbers_finite(&html);
    assert_well_formed(&html);
    for title in [TITLE_STOLEN, TITLE_LEGIT_DAYS, TITLE_DELAYS, TITLE_RULES] {
        assert!(html.contains(title), "missing {title}");
    }
    assert!(html.contains("No days in this history."));
    assert!(html.contains("No rule fired on this history."));
}

#[test]
fn one_day_renders_finite_svg() {
    let mut report = sample_report();
    report.days.truncate(2);
    report.days.remove(0);
    let html = render_report(&report);
    assert_no_nan_or_inf(&html);
    assert_svg_numbers_finite(&html);
    assert_well_formed(&html);
    // One day has no line to draw, only its point, in the middle.
    let stolen = &html[html.find("id=\"chart-stolen-title\"").expect("chart")..];
    let stolen = &stolen[..stolen.find("</svg>").expect("end")];
    assert!(!stolen.contains("<polyline"));
    assert!(stolen.contains("<circle cx=\"526\""));
    assert!(stolen.contains(">2024-01-02</text>"));
}

#[test]
fn comparison_shows_both_rule_sets_and_their_differences() {
    let html = render_comparison(&sample_comparison());
    assert!(html.contains("default (built-in)"));
    assert!(html.contains("strict &amp; &lt;b&gt;bold&lt;/b&gt; (rules/strict)"));
    // Headline changes, coloured by which way is better.
    assert!(html.contains("<div class=\"delta better\">+2.00 pp</div>"));
    assert!(html.contains("<div class=\"delta worse\">+0.80 pp</div>"));
    assert!(html.contains("<div class=\"delta better\">\u{2212}1</div>"));
    // Per-rule figures for both, and a rule only the candidate has.
    assert!(html.contains("\u{2212}10.00 pp"));
    assert!(html.contains("<span class=\"badge added\">new</span>"));
    // Changed decisions and examples.
    assert!(html.contains("<span class=\"badge stricter\">stricter</span>"));
    assert!(html.contains("<td class=\"num delta worse\">12</td>"));
    assert!(html.contains("<span class=\"badge fraud\">fraud</span>"));
    for (id, title) in [
        ("chart-stolen", TITLE_STOLEN_COMPARED),
        ("chart-rules", TITLE_RULES_COMPARED),
    ] {
        assert!(html.contains(&format!("<title id=\"{id}-title\">{title}</title>")));
    }
    assert_svg_numbers_finite(&html);
    assert_no_nan_or_inf(&html);
}

#[test]
fn comparison_of_empty_reports_renders_without_nan_or_inf() {
    let html = render_comparison(&Comparison {
        base: Report::default(),
        candidate: Report::default(),
        changed: vec![],
        examples: vec![],
    });
    assert_no_nan_or_inf(&html);
    assert_svg_numbers_finite(&html);
    assert_well_formed(&html);
    assert!(html.contains("The two rule sets decided every event the same way."));
}

#[test]
fn comparison_warns_when_histories_differ() {
    let mut comparison = sample_comparison();
    comparison.candidate.input = "other.ndjson".to_string();
    let html = render_comparison(&comparison);
    assert!(html.contains("class=\"warning\""));
    assert!(!render_comparison(&sample_comparison()).contains("class=\"warning\""));
}

#[test]
fn scales_are_round_and_never_degenerate() {
    assert_eq!(
        Scale::new(0.0, 5, false),
        Scale {
            max: 1.0,
            step: 1.0
        }
    );
    assert_eq!(
        Scale::new(f64::NAN, 5, false),
        Scale {
            max: 1.0,
            step: 1.0
        }
    );
    assert_eq!(
        Scale::new(123.0, 5, false),
        Scale {
            max: 125.0,
            step: 25.0
        }
    );
    assert_eq!(
        Scale::new(7.0, 4, true),
        Scale {
            max: 8.0,
            step: 2.0
        }
    );
    assert_eq!(
        Scale::new(1.0, 4, true),
        Scale {
            max: 1.0,
            step: 1.0
        }
    );
    let ticks: Vec<f64> = Scale::new(123.0, 5, false).ticks().collect();
    assert_eq!(ticks, [0.0, 25.0, 50.0, 75.0, 100.0, 125.0]);
    assert_eq!(Px(f64::NAN).to_string(), "0");
    assert_eq!(Px(f64::INFINITY).to_string(), "0");
    assert_eq!(Px(-0.01).to_string(), "0");
    assert_eq!(Px(12.345).to_string(), "12.3");
    assert_eq!(fmt_axis(1_250_000.0), "1.25M");
    assert_eq!(fmt_axis(2_500.0), "2.5k");
    assert_eq!(fmt_axis(0.0), "0");
}

#[test]
fn classes_and_causes_show_each_side_and_the_change() {
    let mut comparison = sample_comparison();
    let class = comparison
        .candidate
        .stolen_by_class
        .get_mut(HOSTILE_CLASS)
        .expect("the sample's class");
    class.share_stopped = Some(0.991);
    let payouts = &mut comparison.candidate.honest_cost.payouts_held;
    payouts.hit = 2;
    payouts.share = Some(0.002);
    payouts.by_cause.insert(HOSTILE_RULE.to_string(), 2);
    payouts.by_rule.insert(HOSTILE_RULE.to_string(), 2);
    let html = render_comparison(&comparison);
    assert_well_formed(&html);
    let classes = &html[html.find("<section id=\"classes\">").expect("classes")..];
    let classes = &classes[..classes.find("</section>").expect("end")];
    assert!(classes.contains("&lt;script&gt;class&lt;/script&gt;"));
    assert!(
        classes.contains("89.10%") && classes.contains("99.10%"),
        "{classes}"
    );
    assert!(classes.contains("<td class=\"num delta better\">+10.00 pp</td>"));
    let honest = &html[html.find("<section id=\"honest\">").expect("honest")..];
    let honest = &honest[..honest.find("</section>").expect("end")];
    assert!(
        honest.contains("12 of 1,000 payouts (1.20%) \u{2192} 2 of 1,000 payouts (0.20%)"),
        "{honest}"
    );
    // Fewer honest payouts held by the rule: better.
    assert!(honest.contains("delta better"), "{honest}");
}
