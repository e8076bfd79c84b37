//! Renders a backtest [`Report`] (`custos evaluate`), or a [`Comparison`] of
//! two rule sets on the same history, as one self-contained HTML page.
//!
//! # Layout
//!
//! The page is read by a trust & safety team, often as a file attached to a
//! ticket, opened offline, and kept as the record of why a rule change
//! shipped. So it is one HTML5 document with its style inline, its charts as
//! inline SVG, and no script, font, image or link to anything outside it: it
//! looks the same in any browser, prints, and is safe to open.
//!
//! Sections follow the questions the team asks, in order: did we stop the
//! money (headline, stolen money), what did it cost honest sellers
//! (legitimate payouts, logins), how soon did we see each campaign, which
//! rules did the work, and last the run itself (added responses, event
//! counts, throughput). A comparison adds what changed (decisions that moved
//! between actions, and examples of such events) and shows base, candidate
//! and the change side by side everywhere. A change is green when it is
//! better for that figure and red when it is worse, because "more" is good
//! for stolen value stopped and bad for legitimate payouts held. In charts
//! the base is drawn in grey and the candidate in colour, so the eye goes to
//! the proposal.
//!
//! Tables carry the exact figures, per currency: a report never adds euros
//! to pounds. Charts show shape: the per-day figures are summed over
//! currencies, so their axes read "major units, all currencies" and carry no
//! currency code. The headline shows the figures reached and which way is
//! better, not targets: the report holds no targets, and a page that
//! invented them would mislead.
//!
//! # Safety of the output
//!
//! Every string that comes from data (file names, rule ids, campaign, event
//! and account ids, currency codes, even actions and days) goes through
//! `escape`, which is right for both text and quoted attributes. Functions
//! named `fmt_*` return plain text (escaped where written); functions named
//! `*_html` return markup whose data is already escaped. Every number written
//! into an SVG attribute goes through `Px`, which writes anything not finite
//! as 0, so empty data, a single day or a zero maximum cannot put `NaN` or
//! `inf` into the document. Writing to a `String` cannot fail, so the
//! results of `write!` are ignored with `let _ =`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use super::report::{
    Amounts, CampaignDetection, ChangedDecisions, ChangedExample, Comparison, DayPoint,
    DelayBucket, EventCounts, Headline, LegitPayouts, Logins, Report, Responses, RuleStats,
    RulesUsed, StolenMoney,
};

/// What the page shows for a figure that has no value (`None`).
const DASH: &str = "\u{2014}";
/// The minus sign: as wide as the plus, so signed changes line up.
const MINUS: &str = "\u{2212}";

const TITLE_STOLEN: &str = "Cumulative stolen value: attempted vs stopped";
const TITLE_LEGIT_DAYS: &str = "Legitimate payouts and holds per day";
const TITLE_DELAYS: &str = "Hold-to-release delay of legitimate payouts";
const TITLE_RULES: &str = "Precision and recall per rule";
const TITLE_STOLEN_COMPARED: &str =
    "Cumulative stolen value: attempted vs stopped, base vs candidate";
const TITLE_RULES_COMPARED: &str = "Precision and recall per rule, base vs candidate";

// Chart colours. Meaning stays fixed across charts: red is the attacker's
// money, green what was stopped, grey the base of a comparison.
const RED: &str = "#dc2626";
const GREEN: &str = "#16a34a";
const PURPLE: &str = "#7c3aed";
const BLUE: &str = "#2563eb";
const TEAL: &str = "#0d9488";
const AMBER: &str = "#d97706";
const SKY: &str = "#7db4f5";
const GREY: &str = "#94a3b8";
const GREY_DARK: &str = "#64748b";

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

const REPORT_SECTIONS: &[(&str, &str)] = &[
    ("headline", "Headline"),
    ("stolen", "Stolen money"),
    ("legit", "Legitimate payouts"),
    ("logins", "Logins"),
    ("campaigns", "Campaigns"),
    ("rules", "Rules"),
    ("responses", "Responses"),
    ("events", "Events"),
];

const COMPARISON_SECTIONS: &[(&str, &str)] = &[
    ("headline", "Headline"),
    ("changed", "Changed decisions"),
    ("stolen", "Stolen money"),
    ("legit", "Legitimate payouts"),
    ("logins", "Logins"),
    ("campaigns", "Campaigns"),
    ("rules", "Rules"),
    ("examples", "Examples"),
    ("responses", "Responses"),
    ("events", "Events"),
];

/// Renders one rule set on one history as a self-contained HTML page.
pub fn render_report(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    page_start(
        &mut out,
        &format!("Custos backtest: {} on {}", report.rules.name, report.input),
    );
    report_header(&mut out, report);
    nav(&mut out, REPORT_SECTIONS);
    out.push_str("<main class=\"wrap\">\n");
    headline_section(&mut out, &report.headline, report.campaigns.len());
    stolen_section(&mut out, report);
    legit_section(&mut out, report);
    logins_section(&mut out, &report.logins);
    campaigns_section(&mut out, &report.campaigns);
    rules_section(&mut out, &report.rules_hit);
    responses_section(&mut out, &report.responses);
    events_section(&mut out, &report.events);
    out.push_str("</main>\n");
    page_end(&mut out);
    out
}

/// Renders two rule sets on the same history side by side: base, candidate
/// and the change, with the events decided differently.
pub fn render_comparison(comparison: &Comparison) -> String {
    let (base, candidate) = (&comparison.base, &comparison.candidate);
    let sides = Sides {
        base: rule_set_label(&base.rules),
        candidate: rule_set_label(&candidate.rules),
    };
    let mut out = String::with_capacity(96 * 1024);
    page_start(
        &mut out,
        &format!(
            "Custos backtest comparison: {} vs {} on {}",
            base.rules.name, candidate.rules.name, base.input
        ),
    );
    comparison_header(&mut out, comparison);
    nav(&mut out, COMPARISON_SECTIONS);
    out.push_str("<main class=\"wrap\">\n");
    headline_compare_section(&mut out, base, candidate);
    changed_section(&mut out, &comparison.changed);
    stolen_compare_section(&mut out, &sides, base, candidate);
    legit_compare_section(&mut out, base, candidate);
    logins_compare_section(&mut out, &base.logins, &candidate.logins);
    campaigns_compare_section(&mut out, &base.campaigns, &candidate.campaigns);
    rules_compare_section(&mut out, &sides, &base.rules_hit, &candidate.rules_hit);
    examples_section(&mut out, &comparison.examples);
    responses_compare_section(&mut out, &base.responses, &candidate.responses);
    events_compare_section(&mut out, &base.events, &candidate.events);
    out.push_str("</main>\n");
    page_end(&mut out);
    out
}

/// The two rule sets' labels in a comparison, as plain text.
struct Sides {
    base: String,
    candidate: String,
}

// ---------------------------------------------------------------------------
// Escaping and number formats
// ---------------------------------------------------------------------------

/// Escapes text for HTML (and SVG) text and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// An id, escaped, with a break opportunity after each separator: long
/// snake_case rule ids then wrap between words in narrow columns instead of
/// mid-word.
fn id_html(id: &str) -> String {
    let mut html = String::with_capacity(id.len() + 16);
    for c in id.chars() {
        html.push_str(&escape(c.encode_utf8(&mut [0; 4])));
        if matches!(c, '_' | '.' | '-' | '/' | ':') {
            html.push_str("<wbr>");
        }
    }
    html
}

/// `1234567` → `1,234,567`.
fn group_thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

fn fmt_count(n: u64) -> String {
    group_thousands(u128::from(n))
}

/// Minor units as major units with two decimals: `1234567` → `12,345.67`.
/// Integer arithmetic, so no amount is ever rounded.
fn fmt_minor(minor: u128) -> String {
    format!("{}.{:02}", group_thousands(minor / 100), minor % 100)
}

/// `1234567, "EUR"` → `12,345.67 EUR`.
fn fmt_money(minor: u64, currency: &str) -> String {
    with_unit(fmt_minor(u128::from(minor)), currency)
}

fn with_unit(number: String, unit: &str) -> String {
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

/// A share in `[0, 1]` as a percentage with two decimals; `None` (and
/// anything not finite) as a dash.
fn fmt_share(share: Option<f64>) -> String {
    match share {
        Some(s) if s.is_finite() => format!("{:.2}%", s * 100.0),
        _ => DASH.to_string(),
    }
}

fn fmt_hours(hours: Option<f64>) -> String {
    match hours {
        Some(h) if h.is_finite() => format!("{h:.1} h"),
        _ => DASH.to_string(),
    }
}

fn fmt_seconds(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{seconds:.1} s")
    } else {
        DASH.to_string()
    }
}

fn fmt_rate(per_second: f64) -> String {
    if per_second.is_finite() && per_second >= 0.0 {
        // Saturates at u64::MAX, far beyond any real rate.
        format!("{} events/s", fmt_count(per_second.round() as u64))
    } else {
        DASH.to_string()
    }
}

fn fmt_time(time: Option<&str>) -> String {
    time.map_or_else(|| DASH.to_string(), str::to_string)
}

fn share_of(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn sign(direction: Ordering) -> &'static str {
    match direction {
        Ordering::Greater => "+",
        Ordering::Less => MINUS,
        Ordering::Equal => "",
    }
}

/// `candidate - base`, exactly.
fn difference(base: u64, candidate: u64) -> i128 {
    i128::from(candidate) - i128::from(base)
}

fn fmt_signed_count(d: i128) -> String {
    format!("{}{}", sign(d.cmp(&0)), group_thousands(d.unsigned_abs()))
}

/// Compact axis labels: `0`, `250`, `1.5k`, `2.25M`.
fn fmt_axis(value: f64) -> String {
    if !value.is_finite() {
        return "0".to_string();
    }
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "B"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

/// A delay bucket's bound: `0.5`, `24`.
fn fmt_bound(hours: f64) -> String {
    if !hours.is_finite() {
        return "?".to_string();
    }
    let text = format!("{hours:.1}");
    text.trim_end_matches(".0").to_string()
}

// ---------------------------------------------------------------------------
// Figures, and changes between base and candidate
// ---------------------------------------------------------------------------

/// Which way a figure should move for the engine to be doing better; decides
/// the colour of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    /// Neither way is better by itself (e.g. events read, hits).
    Neither,
}

impl Better {
    fn hint(self) -> &'static str {
        match self {
            Better::Higher => "\u{2191} higher is better",
            Better::Lower => "\u{2193} lower is better",
            Better::Neither => "",
        }
    }

    fn class(self, direction: Ordering) -> &'static str {
        match (direction, self) {
            (Ordering::Equal, _) => "same",
            (_, Better::Neither) => "neutral",
            (Ordering::Greater, Better::Higher) | (Ordering::Less, Better::Lower) => "better",
            _ => "worse",
        }
    }
}

/// One figure of a report, typed so that its cell and its change can be
/// written the same way in every table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    Amount(Amounts),
    Count(u64),
    MaybeCount(Option<u64>),
    Share(Option<f64>),
    Hours(Option<f64>),
    Seconds(f64),
    Rate(f64),
}

/// A figure as table cell markup. `noun` names what an amount counts
/// (`payouts`); a literal of this module.
fn measure_html(measure: Measure, currency: &str, noun: &str) -> String {
    match measure {
        Measure::Amount(a) => format!(
            "{}<span class=\"sub\">{} {noun}</span>",
            escape(&fmt_money(a.value, currency)),
            fmt_count(a.count)
        ),
        Measure::Count(n) => fmt_count(n),
        Measure::MaybeCount(n) => n.map_or_else(|| DASH.to_string(), fmt_count),
        Measure::Share(s) => fmt_share(s),
        Measure::Hours(h) => fmt_hours(h),
        Measure::Seconds(s) => fmt_seconds(s),
        Measure::Rate(r) => fmt_rate(r),
    }
}

/// A change from base to candidate, as plain text, with its colour class.
#[derive(Debug, Clone, PartialEq)]
struct Delta {
    text: String,
    sub: Option<String>,
    class: &'static str,
}

impl Delta {
    /// No change can be told (a side has no value).
    fn none() -> Delta {
        Delta {
            text: DASH.to_string(),
            sub: None,
            class: "same",
        }
    }

    fn count(d: i128, better: Better) -> Delta {
        Delta {
            text: fmt_signed_count(d),
            sub: None,
            class: better.class(d.cmp(&0)),
        }
    }

    /// A change in a float, rounded first so that a change too small to
    /// show is shown as none (and coloured so), never as `-0.00`.
    fn float(d: f64, decimals: usize, unit: &str, better: Better) -> Delta {
        if !d.is_finite() {
            return Delta::none();
        }
        let factor = 10f64.powi(decimals as i32);
        let rounded = (d * factor).round() / factor;
        let direction = rounded.partial_cmp(&0.0).unwrap_or(Ordering::Equal);
        Delta {
            text: format!("{}{:.*}{unit}", sign(direction), decimals, rounded.abs()),
            sub: None,
            class: better.class(direction),
        }
    }
}

fn measure_delta(
    base: Measure,
    candidate: Measure,
    currency: &str,
    noun: &str,
    better: Better,
) -> Delta {
    match (base, candidate) {
        (Measure::Amount(b), Measure::Amount(c)) => {
            let d = difference(b.value, c.value);
            Delta {
                text: with_unit(
                    format!("{}{}", sign(d.cmp(&0)), fmt_minor(d.unsigned_abs())),
                    currency,
                ),
                sub: Some(format!(
                    "{} {noun}",
                    fmt_signed_count(difference(b.count, c.count))
                )),
                class: better.class(d.cmp(&0)),
            }
        }
        (Measure::Count(b), Measure::Count(c))
        | (Measure::MaybeCount(Some(b)), Measure::MaybeCount(Some(c))) => {
            Delta::count(difference(b, c), better)
        }
        (Measure::Share(Some(b)), Measure::Share(Some(c))) => {
            Delta::float((c - b) * 100.0, 2, " pp", better)
        }
        (Measure::Hours(Some(b)), Measure::Hours(Some(c))) => Delta::float(c - b, 1, " h", better),
        (Measure::Seconds(b), Measure::Seconds(c)) => Delta::float(c - b, 1, " s", better),
        (Measure::Rate(b), Measure::Rate(c)) => Delta::float(c - b, 0, " events/s", better),
        _ => Delta::none(),
    }
}

fn delta_html(delta: &Delta) -> String {
    let sub = delta.sub.as_deref().map_or_else(String::new, |s| {
        format!("<span class=\"sub\">{}</span>", escape(s))
    });
    format!("{}{sub}", escape(&delta.text))
}

fn delta_td(out: &mut String, delta: &Delta) {
    let _ = write!(
        out,
        "<td class=\"num delta {}\">{}</td>",
        delta.class,
        delta_html(delta)
    );
}

fn num_td(out: &mut String, html: &str) {
    let _ = write!(out, "<td class=\"num\">{html}</td>");
}

/// Reads one figure of a part of a report.
type Getter<T> = fn(&T) -> Measure;

/// One row of a per-currency table: a label and how to read its figure.
struct MeasureRow<T> {
    label: &'static str,
    better: Better,
    get: Getter<T>,
}

/// One row of a base/candidate table.
struct Compared {
    label: String,
    base: Measure,
    candidate: Measure,
    better: Better,
}

impl Compared {
    fn new(label: impl Into<String>, base: Measure, candidate: Measure, better: Better) -> Self {
        Compared {
            label: label.into(),
            base,
            candidate,
            better,
        }
    }
}

// ---------------------------------------------------------------------------
// Page frame
// ---------------------------------------------------------------------------

fn page_start(out: &mut String, title: &str) {
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light\">\n",
    );
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    out.push_str("<style>\n");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n");
}

fn page_end(out: &mut String) {
    out.push_str(
        "<footer class=\"wrap\">Written by <code>custos evaluate</code>. Money is in major \
         units (minor units / 100) per currency; shares are of the figure's own total; \
         \u{2014} means there was nothing to divide or nothing to show.</footer>\n\
         </body>\n</html>\n",
    );
}

/// A rule set as `name (dir)`, or `name (built-in)` for the default rules.
fn rule_set_label(rules: &RulesUsed) -> String {
    match &rules.dir {
        Some(dir) => format!("{} ({dir})", rules.name),
        None => format!("{} (built-in)", rules.name),
    }
}

/// A name for a heading: an empty one (a report built by hand) as a dash.
fn name_or_dash(name: &str) -> &str {
    if name.is_empty() { DASH } else { name }
}

fn meta_row(out: &mut String, term: &str, value_html: &str) {
    let _ = writeln!(out, "<dt>{term}</dt><dd>{value_html}</dd>");
}

fn time_span(events: &EventCounts) -> String {
    format!(
        "{} \u{2013} {}",
        fmt_time(events.first_time.as_deref()),
        fmt_time(events.last_time.as_deref())
    )
}

fn report_header(out: &mut String, report: &Report) {
    out.push_str("<header class=\"page\"><div class=\"wrap\">\n");
    out.push_str("<p class=\"kicker\">Custos backtest</p>\n");
    let _ = writeln!(
        out,
        "<h1>{} on {}</h1>\n<dl class=\"meta\">",
        escape(name_or_dash(&report.rules.name)),
        escape(name_or_dash(&report.input))
    );
    meta_row(out, "History", &escape(name_or_dash(&report.input)));
    meta_row(
        out,
        "Rule set",
        &format!(
            "{} \u{00b7} {} rules",
            escape(&rule_set_label(&report.rules)),
            fmt_count(report.rules.rule_count as u64)
        ),
    );
    meta_row(out, "Event time", &escape(&time_span(&report.events)));
    meta_row(out, "Events", &fmt_count(report.events.read));
    out.push_str("</dl>\n</div></header>\n");
}

fn comparison_header(out: &mut String, comparison: &Comparison) {
    let (base, candidate) = (&comparison.base, &comparison.candidate);
    out.push_str("<header class=\"page\"><div class=\"wrap\">\n");
    out.push_str("<p class=\"kicker\">Custos backtest comparison</p>\n");
    let _ = writeln!(
        out,
        "<h1>{} <span class=\"vs\">vs</span> {}</h1>\n<dl class=\"meta\">",
        escape(name_or_dash(&base.rules.name)),
        escape(name_or_dash(&candidate.rules.name))
    );
    meta_row(out, "History", &escape(name_or_dash(&base.input)));
    for (term, report) in [("Base", base), ("Candidate", candidate)] {
        meta_row(
            out,
            term,
            &format!(
                "{} \u{00b7} {} rules",
                escape(&rule_set_label(&report.rules)),
                fmt_count(report.rules.rule_count as u64)
            ),
        );
    }
    meta_row(out, "Event time", &escape(&time_span(&base.events)));
    out.push_str("</dl>\n");
    // Differences between two histories are not the rule sets' doing; say so
    // before anyone reads them as such.
    if base.input != candidate.input {
        let _ = writeln!(
            out,
            "<p class=\"warning\">The two reports replayed different histories ({} and {}): \
             the changes below mix rule changes with data changes.</p>",
            escape(&base.input),
            escape(&candidate.input)
        );
    }
    out.push_str("</div></header>\n");
}

fn nav(out: &mut String, sections: &[(&str, &str)]) {
    out.push_str("<nav class=\"toc\"><div class=\"wrap\">");
    for (id, label) in sections {
        let _ = write!(out, "<a href=\"#{id}\">{label}</a>");
    }
    out.push_str("</div></nav>\n");
}

/// Opens a section. `heading` and `lead` are literals of this module,
/// written as markup.
fn section_start(out: &mut String, id: &str, heading: &str, lead: &str) {
    let _ = writeln!(out, "<section id=\"{id}\">\n<h2>{heading}</h2>");
    if !lead.is_empty() {
        let _ = writeln!(out, "<p class=\"lead\">{lead}</p>");
    }
}

fn section_end(out: &mut String) {
    out.push_str("</section>\n");
}

fn note(out: &mut String, text: &str) {
    let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(text));
}

/// Opens a table; `class` is a literal of this module (`""` for none).
fn table_open_with(out: &mut String, class: &str) {
    let _ = writeln!(out, "<div class=\"table-wrap\"><table class=\"{class}\">");
}

fn table_open(out: &mut String) {
    table_open_with(out, "");
}

fn table_close(out: &mut String) {
    out.push_str("</tbody></table></div>\n");
}

/// Rows of `label | value`, for figures that have no columns to share.
fn key_value_table(out: &mut String, rows: &[(String, String)]) {
    out.push_str("<div class=\"table-wrap\"><table class=\"narrow\">\n<tbody>\n");
    for (label, value_html) in rows {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{value_html}</td></tr>",
            escape(label)
        );
    }
    table_close(out);
}

/// Rows of `label | base | candidate | change`.
fn compare_table(out: &mut String, rows: &[Compared]) {
    table_open(out);
    out.push_str(
        "<thead><tr><th></th><th class=\"num\">Base</th><th class=\"num\">Candidate</th>\
         <th class=\"num\">Change</th></tr></thead>\n<tbody>\n",
    );
    for row in rows {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", escape(&row.label));
        num_td(out, &measure_html(row.base, "", ""));
        num_td(out, &measure_html(row.candidate, "", ""));
        delta_td(
            out,
            &measure_delta(row.base, row.candidate, "", "", row.better),
        );
        out.push_str("</tr>\n");
    }
    table_close(out);
}

/// Figures as rows and currencies as columns: there are few currencies and
/// many figures, and each figure reads across currencies.
fn currency_table<T>(
    out: &mut String,
    per_currency: &BTreeMap<String, T>,
    rows: &[MeasureRow<T>],
    noun: &str,
) {
    table_open_with(out, "fit");
    out.push_str("<thead><tr><th></th>");
    for currency in per_currency.keys() {
        let _ = write!(out, "<th class=\"num\">{}</th>", escape(currency));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", row.label);
        for (currency, figures) in per_currency {
            num_td(out, &measure_html((row.get)(figures), currency, noun));
        }
        out.push_str("</tr>\n");
    }
    table_close(out);
}

/// As `currency_table`, with base, candidate and change under each currency.
/// A currency missing on one side counts as zero there.
fn currency_compare_table<T: Default>(
    out: &mut String,
    base: &BTreeMap<String, T>,
    candidate: &BTreeMap<String, T>,
    rows: &[MeasureRow<T>],
    noun: &str,
) {
    let currencies: BTreeSet<&str> = base
        .keys()
        .chain(candidate.keys())
        .map(String::as_str)
        .collect();
    let nothing = T::default();
    table_open_with(out, "dense");
    out.push_str("<thead><tr><th rowspan=\"2\"></th>");
    for currency in &currencies {
        let _ = write!(
            out,
            "<th colspan=\"3\" class=\"group gl\">{}</th>",
            escape(currency)
        );
    }
    out.push_str("</tr>\n<tr>");
    change_subheaders(out, currencies.len());
    for row in rows {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", row.label);
        for currency in &currencies {
            let b = (row.get)(base.get(*currency).unwrap_or(&nothing));
            let c = (row.get)(candidate.get(*currency).unwrap_or(&nothing));
            let _ = write!(
                out,
                "<td class=\"num gl\">{}</td>",
                measure_html(b, currency, noun)
            );
            num_td(out, &measure_html(c, currency, noun));
            delta_td(out, &measure_delta(b, c, currency, noun, row.better));
        }
        out.push_str("</tr>\n");
    }
    table_close(out);
}

// ---------------------------------------------------------------------------
// Headline
// ---------------------------------------------------------------------------

/// One headline figure: the goal it measures, which way is better, and the
/// value reached.
struct Figure {
    label: &'static str,
    hint: String,
    better: Better,
    value: Measure,
    /// Marks the card in red: a failure whatever the goals say.
    flagged: bool,
}

fn headline_figures(headline: &Headline, campaigns: usize) -> [Figure; 5] {
    [
        Figure {
            label: "Stolen value stopped",
            hint: "Blocked, or held and never released; all currencies, weighted by value."
                .to_string(),
            better: Better::Higher,
            value: Measure::Share(headline.share_stolen_stopped),
            flagged: false,
        },
        Figure {
            label: "Legitimate payouts held",
            hint: "Honest sellers' payouts held or blocked, by count.".to_string(),
            better: Better::Lower,
            value: Measure::Share(headline.share_legit_payouts_held),
            flagged: false,
        },
        Figure {
            label: "Legitimate logins challenged",
            hint: "Owners' successful logins answered with a challenge or stronger.".to_string(),
            better: Better::Lower,
            value: Measure::Share(headline.share_legit_logins_challenged),
            flagged: false,
        },
        Figure {
            label: "Worst victims at detection",
            hint: "Most accounts one campaign took over before it was detected; \u{2014} when \
                   there was no campaign or one was never detected."
                .to_string(),
            better: Better::Lower,
            value: Measure::MaybeCount(headline.worst_victims_at_detection),
            flagged: false,
        },
        Figure {
            label: "Campaigns missed",
            hint: format!(
                "Campaigns of the ground truth never detected, of {}.",
                fmt_count(campaigns as u64)
            ),
            better: Better::Lower,
            value: Measure::Count(headline.campaigns_missed),
            // A campaign never seen is the engine's worst outcome.
            flagged: headline.campaigns_missed > 0,
        },
    ]
}

fn headline_section(out: &mut String, headline: &Headline, campaigns: usize) {
    section_start(
        out,
        "headline",
        "Headline",
        "The figures the engine is judged by, against the ground truth of the history.",
    );
    out.push_str("<div class=\"cards\">\n");
    for figure in headline_figures(headline, campaigns) {
        let flag = if figure.flagged { " flag" } else { "" };
        let _ = writeln!(
            out,
            "<div class=\"card{flag}\"><div class=\"label\">{}</div>\
             <div class=\"value\">{}</div><div class=\"hint\">{}</div>\
             <div class=\"dir\">{}</div></div>",
            figure.label,
            measure_html(figure.value, "", ""),
            escape(&figure.hint),
            figure.better.hint()
        );
    }
    out.push_str("</div>\n");
    section_end(out);
}

fn headline_compare_section(out: &mut String, base: &Report, candidate: &Report) {
    section_start(
        out,
        "headline",
        "Headline",
        "The figures the engine is judged by, for both rule sets. The change is green when \
         the candidate does better, red when it does worse.",
    );
    out.push_str("<div class=\"cards\">\n");
    let base_figures = headline_figures(&base.headline, base.campaigns.len());
    let candidate_figures = headline_figures(&candidate.headline, candidate.campaigns.len());
    for (b, c) in base_figures.iter().zip(&candidate_figures) {
        let delta = measure_delta(b.value, c.value, "", "", c.better);
        let flag = if c.flagged { " flag" } else { "" };
        let _ = writeln!(
            out,
            "<div class=\"card{flag}\"><div class=\"label\">{}</div>\
             <div class=\"versus\"><div class=\"base\"><span class=\"who\">Base</span>\
             <span class=\"v\">{}</span></div><div><span class=\"who\">Candidate</span>\
             <span class=\"v\">{}</span></div></div>\
             <div class=\"delta {}\">{}</div><div class=\"hint\">{}</div>\
             <div class=\"dir\">{}</div></div>",
            c.label,
            measure_html(b.value, "", ""),
            measure_html(c.value, "", ""),
            delta.class,
            delta_html(&delta),
            escape(&c.hint),
            c.better.hint()
        );
    }
    out.push_str("</div>\n");
    section_end(out);
}

// ---------------------------------------------------------------------------
// Stolen money
// ---------------------------------------------------------------------------

fn stolen_rows() -> [MeasureRow<StolenMoney>; 8] {
    [
        MeasureRow {
            label: "Attempted",
            better: Better::Neither,
            get: |s| Measure::Amount(s.attempted),
        },
        MeasureRow {
            label: "Stopped",
            better: Better::Higher,
            get: |s| Measure::Amount(s.stopped),
        },
        MeasureRow {
            label: "Share stopped",
            better: Better::Higher,
            get: |s| Measure::Share(s.share_stopped),
        },
        MeasureRow {
            label: "Blocked",
            better: Better::Higher,
            get: |s| Measure::Amount(s.blocked),
        },
        MeasureRow {
            label: "Held, never released",
            better: Better::Higher,
            get: |s| Measure::Amount(s.held),
        },
        MeasureRow {
            label: "Held, then released",
            better: Better::Lower,
            get: |s| Measure::Amount(s.held_then_released),
        },
        MeasureRow {
            label: "Paid (not held)",
            better: Better::Lower,
            get: |s| Measure::Amount(s.paid),
        },
        MeasureRow {
            label: "Of which loans",
            better: Better::Neither,
            get: |s| Measure::Amount(s.loans),
        },
    ]
}

const STOLEN_LEAD: &str = "Payouts and loan disbursements to destinations an attacker set. \
     <em>Stopped</em> is blocked, or held and never released; money held and then released \
     was paid, only late.";

fn stolen_section(out: &mut String, report: &Report) {
    section_start(out, "stolen", "Stolen money", STOLEN_LEAD);
    stolen_day_chart(out, &report.days);
    out.push_str("<h3>Per currency</h3>\n");
    if report.stolen.is_empty() {
        note(out, "No payment in this history went to an attacker.");
    } else {
        currency_table(out, &report.stolen, &stolen_rows(), "payments");
    }
    section_end(out);
}

fn stolen_compare_section(out: &mut String, sides: &Sides, base: &Report, candidate: &Report) {
    section_start(out, "stolen", "Stolen money", STOLEN_LEAD);
    stolen_day_chart_compared(out, sides, &base.days, &candidate.days);
    out.push_str("<h3>Per currency</h3>\n");
    if base.stolen.is_empty() && candidate.stolen.is_empty() {
        note(out, "No payment in this history went to an attacker.");
    } else {
        currency_compare_table(
            out,
            &base.stolen,
            &candidate.stolen,
            &stolen_rows(),
            "payments",
        );
    }
    section_end(out);
}

/// Running totals, in major units.
fn cumulative(minor_per_day: impl Iterator<Item = u64>) -> Vec<f64> {
    let mut total: u64 = 0;
    minor_per_day
        .map(|minor| {
            total = total.saturating_add(minor);
            total as f64 / 100.0
        })
        .collect()
}

fn stolen_day_chart(out: &mut String, days: &[DayPoint]) {
    let labels: Vec<&str> = days.iter().map(|d| d.day.as_str()).collect();
    let series = [
        Series {
            label: "Attempted".to_string(),
            color: RED,
            dashed: false,
            values: cumulative(days.iter().map(|d| d.stolen_attempted)),
        },
        Series {
            label: "Stopped".to_string(),
            color: GREEN,
            dashed: false,
            values: cumulative(days.iter().map(|d| d.stolen_stopped)),
        },
    ];
    let lanes = [
        Lane {
            label: "New victims".to_string(),
            noun: "new victims",
            color: RED,
            shape: Shape::Dot,
            counts: days.iter().map(|d| d.new_victims).collect(),
            guide: false,
        },
        Lane {
            label: "Campaign alerts".to_string(),
            noun: "campaign alerts",
            color: PURPLE,
            shape: Shape::Diamond,
            counts: days.iter().map(|d| d.campaign_alerts).collect(),
            guide: true,
        },
    ];
    line_chart(
        out,
        &LineChart {
            id: "chart-stolen",
            title: TITLE_STOLEN,
            desc: "Running totals per day of event time of the value paid toward attackers \
                   and of the value stopped, summed over currencies, with the days new \
                   victims were taken over and the days campaigns were alerted on.",
            y_caption: "major units, all currencies",
            days: &labels,
            series: &series,
            lanes: &lanes,
        },
    );
}

/// Both reports' days, matched by date: the same history gives the same
/// days, but the charts must not misalign if it did not.
fn aligned_days<'a>(
    base: &'a [DayPoint],
    candidate: &'a [DayPoint],
) -> Vec<(&'a str, Option<&'a DayPoint>, Option<&'a DayPoint>)> {
    type Pair<'a> = (Option<&'a DayPoint>, Option<&'a DayPoint>);
    let mut days: BTreeMap<&str, Pair<'a>> = BTreeMap::new();
    for day in base {
        days.entry(day.day.as_str()).or_default().0 = Some(day);
    }
    for day in candidate {
        days.entry(day.day.as_str()).or_default().1 = Some(day);
    }
    days.into_iter().map(|(day, (b, c))| (day, b, c)).collect()
}

fn stolen_day_chart_compared(
    out: &mut String,
    sides: &Sides,
    base: &[DayPoint],
    candidate: &[DayPoint],
) {
    let days = aligned_days(base, candidate);
    let labels: Vec<&str> = days.iter().map(|(day, _, _)| *day).collect();
    let base_side: Vec<Option<&DayPoint>> = days.iter().map(|(_, b, _)| *b).collect();
    let candidate_side: Vec<Option<&DayPoint>> = days.iter().map(|(_, _, c)| *c).collect();
    let of = |side: &[Option<&DayPoint>], field: fn(&DayPoint) -> u64| -> Vec<u64> {
        side.iter().map(|day| day.map_or(0, field)).collect()
    };

    let attempted_base = cumulative(of(&base_side, |d| d.stolen_attempted).into_iter());
    let attempted_candidate = cumulative(of(&candidate_side, |d| d.stolen_attempted).into_iter());
    let mut series = vec![Series {
        label: "Attempted".to_string(),
        color: RED,
        dashed: false,
        values: attempted_base.clone(),
    }];
    // On one history the attacker tries the same payments whatever the rules;
    // a second "attempted" line would only show if that did not hold.
    if attempted_candidate != attempted_base {
        series[0].label = "Attempted, base".to_string();
        series.push(Series {
            label: "Attempted, candidate".to_string(),
            color: AMBER,
            dashed: false,
            values: attempted_candidate,
        });
    }
    series.push(Series {
        label: format!("Stopped, base: {}", sides.base),
        color: GREY_DARK,
        dashed: true,
        values: cumulative(of(&base_side, |d| d.stolen_stopped).into_iter()),
    });
    series.push(Series {
        label: format!("Stopped, candidate: {}", sides.candidate),
        color: GREEN,
        dashed: false,
        values: cumulative(of(&candidate_side, |d| d.stolen_stopped).into_iter()),
    });
    let lanes = [
        Lane {
            label: "New victims".to_string(),
            noun: "new victims",
            color: RED,
            shape: Shape::Dot,
            counts: of(&base_side, |d| d.new_victims),
            guide: false,
        },
        Lane {
            label: "Alerts, base".to_string(),
            noun: "campaign alerts (base)",
            color: GREY_DARK,
            shape: Shape::Diamond,
            counts: of(&base_side, |d| d.campaign_alerts),
            guide: false,
        },
        Lane {
            label: "Alerts, candidate".to_string(),
            noun: "campaign alerts (candidate)",
            color: PURPLE,
            shape: Shape::Diamond,
            counts: of(&candidate_side, |d| d.campaign_alerts),
            guide: true,
        },
    ];
    line_chart(
        out,
        &LineChart {
            id: "chart-stolen",
            title: TITLE_STOLEN_COMPARED,
            desc: "Running totals per day of the value paid toward attackers, and of the \
                   value each rule set stopped, summed over currencies, with new victims and \
                   each rule set's campaign alerts.",
            y_caption: "major units, all currencies",
            days: &labels,
            series: &series,
            lanes: &lanes,
        },
    );
}

// ---------------------------------------------------------------------------
// Legitimate payouts
// ---------------------------------------------------------------------------

fn legit_rows() -> [MeasureRow<LegitPayouts>; 7] {
    [
        MeasureRow {
            label: "Total",
            better: Better::Neither,
            get: |p| Measure::Amount(p.total),
        },
        MeasureRow {
            label: "Held (hold or block)",
            better: Better::Lower,
            get: |p| Measure::Amount(p.held),
        },
        MeasureRow {
            label: "Share held (by count)",
            better: Better::Lower,
            get: |p| Measure::Share(p.share_held),
        },
        MeasureRow {
            label: "Released",
            better: Better::Neither,
            get: |p| Measure::Amount(p.released),
        },
        MeasureRow {
            label: "Never released",
            better: Better::Lower,
            get: |p| Measure::Amount(p.never_released),
        },
        MeasureRow {
            label: "Median delay to release",
            better: Better::Lower,
            get: |p| Measure::Hours(p.median_delay_hours),
        },
        MeasureRow {
            label: "p90 delay to release",
            better: Better::Lower,
            get: |p| Measure::Hours(p.p90_delay_hours),
        },
    ]
}

const LEGIT_LEAD: &str = "Payouts and loan disbursements to sellers' own destinations: the \
     friction honest sellers felt. Delays run from the hold to its release.";

fn legit_section(out: &mut String, report: &Report) {
    section_start(out, "legit", "Legitimate payouts", LEGIT_LEAD);
    legit_day_chart(out, &report.days);
    out.push_str("<h3>Per currency</h3>\n");
    if report.legit_payouts.is_empty() {
        note(out, "No legitimate payout in this history.");
    } else {
        currency_table(out, &report.legit_payouts, &legit_rows(), "payouts");
    }
    delay_chart(out, &report.legit_payouts);
    section_end(out);
}

fn legit_compare_section(out: &mut String, base: &Report, candidate: &Report) {
    section_start(out, "legit", "Legitimate payouts", LEGIT_LEAD);
    if base.legit_payouts.is_empty() && candidate.legit_payouts.is_empty() {
        note(out, "No legitimate payout in this history.");
    } else {
        currency_compare_table(
            out,
            &base.legit_payouts,
            &candidate.legit_payouts,
            &legit_rows(),
            "payouts",
        );
    }
    section_end(out);
}

fn legit_day_chart(out: &mut String, days: &[DayPoint]) {
    let labels: Vec<&str> = days.iter().map(|d| d.day.as_str()).collect();
    // Two panels with their own scales: holds are a small share of payouts,
    // and on a shared scale their spikes would be invisible.
    let panels = [
        BarPanel {
            label: "Legitimate payouts per day",
            color: SKY,
            values: days.iter().map(|d| d.legit_payouts as f64).collect(),
        },
        BarPanel {
            label: "Of which held (hold or block)",
            color: AMBER,
            values: days.iter().map(|d| d.legit_held as f64).collect(),
        },
    ];
    daily_bars_chart(
        out,
        &BarChart {
            id: "chart-legit-days",
            title: TITLE_LEGIT_DAYS,
            desc: "Number of legitimate payouts per day of event time, and of those held; \
                   each panel has its own scale.",
            y_caption: "payouts",
            days: &labels,
            panels: &panels,
        },
    );
}

/// The delay histograms of all currencies summed bucket by bucket. Buckets
/// are matched by their upper bound; a bound only one currency has stays a
/// bucket of its own.
fn merged_delay_histogram(payouts: &BTreeMap<String, LegitPayouts>) -> Vec<DelayBucket> {
    let mut buckets: Vec<DelayBucket> = payouts
        .values()
        .flat_map(|p| p.delay_histogram.iter().copied())
        .collect();
    // The open bucket (no bound) goes last.
    buckets.sort_by(|a, b| match (a.up_to_hours, b.up_to_hours) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
    let mut merged: Vec<DelayBucket> = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        match merged.last_mut() {
            Some(last)
                if last.up_to_hours.map(f64::to_bits) == bucket.up_to_hours.map(f64::to_bits) =>
            {
                last.count = last.count.saturating_add(bucket.count);
            }
            _ => merged.push(bucket),
        }
    }
    merged
}

/// `≤ 1 h`, `1–4 h`, …, `> 72 h`: each bucket from the previous bound.
fn bucket_labels(buckets: &[DelayBucket]) -> Vec<String> {
    let mut lower: Option<f64> = None;
    buckets
        .iter()
        .map(|bucket| {
            let label = match (lower, bucket.up_to_hours) {
                (None, Some(up)) => format!("\u{2264} {} h", fmt_bound(up)),
                (Some(low), Some(up)) => format!("{}\u{2013}{} h", fmt_bound(low), fmt_bound(up)),
                (Some(low), None) => format!("> {} h", fmt_bound(low)),
                (None, None) => "all".to_string(),
            };
            lower = bucket.up_to_hours.or(lower);
            label
        })
        .collect()
}

fn delay_chart(out: &mut String, payouts: &BTreeMap<String, LegitPayouts>) {
    let merged = merged_delay_histogram(payouts);
    let buckets: Vec<(String, u64)> = bucket_labels(&merged)
        .into_iter()
        .zip(merged.iter().map(|b| b.count))
        .collect();
    histogram_chart(
        out,
        &Histogram {
            id: "chart-delays",
            title: TITLE_DELAYS,
            desc: "Released holds of legitimate payouts by hours from hold to release, all \
                   currencies together.",
            buckets: &buckets,
        },
    );
}

// ---------------------------------------------------------------------------
// Logins, campaigns, responses, events
// ---------------------------------------------------------------------------

const LOGINS_LEAD: &str = "Successful logins, and those answered with a challenge or \
     stronger. Challenging owners is friction; challenging attackers is the point.";

fn logins_section(out: &mut String, logins: &Logins) {
    section_start(out, "logins", "Logins", LOGINS_LEAD);
    table_open_with(out, "fit");
    out.push_str(
        "<thead><tr><th></th><th class=\"num\">Successful logins</th>\
         <th class=\"num\">Challenged or stronger</th><th class=\"num\">Share challenged</th>\
         </tr></thead>\n<tbody>\n",
    );
    for (who, total, challenged, share) in [
        (
            "Owners (legitimate)",
            logins.legit,
            logins.legit_challenged,
            logins.share_legit_challenged,
        ),
        (
            "Attackers",
            logins.attacker,
            logins.attacker_challenged,
            logins.share_attacker_challenged,
        ),
    ] {
        let _ = write!(out, "<tr><th scope=\"row\">{who}</th>");
        num_td(out, &fmt_count(total));
        num_td(out, &fmt_count(challenged));
        num_td(out, &fmt_share(share));
        out.push_str("</tr>\n");
    }
    table_close(out);
    section_end(out);
}

fn logins_compare_section(out: &mut String, base: &Logins, candidate: &Logins) {
    use Measure::{Count, Share};
    section_start(out, "logins", "Logins", LOGINS_LEAD);
    let rows = [
        Compared::new(
            "Owners' logins",
            Count(base.legit),
            Count(candidate.legit),
            Better::Neither,
        ),
        Compared::new(
            "Owners' logins challenged",
            Count(base.legit_challenged),
            Count(candidate.legit_challenged),
            Better::Lower,
        ),
        Compared::new(
            "Share of owners' logins challenged",
            Share(base.share_legit_challenged),
            Share(candidate.share_legit_challenged),
            Better::Lower,
        ),
        Compared::new(
            "Attackers' logins",
            Count(base.attacker),
            Count(candidate.attacker),
            Better::Neither,
        ),
        Compared::new(
            "Attackers' logins challenged",
            Count(base.attacker_challenged),
            Count(candidate.attacker_challenged),
            Better::Higher,
        ),
        Compared::new(
            "Share of attackers' logins challenged",
            Share(base.share_attacker_challenged),
            Share(candidate.share_attacker_challenged),
            Better::Higher,
        ),
    ];
    compare_table(out, &rows);
    section_end(out);
}

const CAMPAIGNS_LEAD: &str = "Each account-takeover campaign of the ground truth, and when \
     Custos first linked one of its victims to a campaign of its own. <em>Victims at \
     detection</em> counts the victims taken over by then.";

fn detected_html(campaign: &CampaignDetection) -> String {
    match &campaign.detected_at {
        Some(at) => time_html(at),
        None => "<span class=\"badge missed\">missed</span>".to_string(),
    }
}

/// A time kept on one line: a date broken at its hyphens is hard to read.
fn time_html(time: &str) -> String {
    format!("<span class=\"nowrap\">{}</span>", escape(time))
}

fn campaign_name_html(campaign: &CampaignDetection) -> String {
    format!(
        "{}<span class=\"sub\">{}</span>",
        escape(&campaign.campaign),
        escape(&campaign.scenario)
    )
}

fn campaigns_section(out: &mut String, campaigns: &[CampaignDetection]) {
    section_start(out, "campaigns", "Campaign detection", CAMPAIGNS_LEAD);
    if campaigns.is_empty() {
        note(out, "The history's ground truth has no campaign.");
        section_end(out);
        return;
    }
    table_open(out);
    out.push_str(
        "<thead><tr><th>Campaign</th><th class=\"num\">Victims</th><th>Started</th>\
         <th>Detected</th><th>Detected as</th><th class=\"num\">Delay</th>\
         <th class=\"num\">Victims at detection</th><th class=\"num\">Victims linked</th>\
         </tr></thead>\n<tbody>\n",
    );
    for campaign in campaigns {
        let row_class = if campaign.detected_at.is_none() {
            " class=\"missed\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{row_class}><th scope=\"row\">{}</th>",
            campaign_name_html(campaign)
        );
        num_td(out, &fmt_count(campaign.victims));
        let _ = write!(
            out,
            "<td>{}</td><td>{}</td><td>{}</td>",
            campaign
                .started_at
                .as_deref()
                .map_or_else(|| DASH.to_string(), time_html),
            detected_html(campaign),
            campaign.detected_as.as_deref().map_or_else(
                || DASH.to_string(),
                |id| format!("<code>{}</code>", escape(id))
            )
        );
        num_td(out, &fmt_hours(campaign.delay_hours));
        num_td(
            out,
            &measure_html(Measure::MaybeCount(campaign.victims_at_detection), "", ""),
        );
        num_td(out, &fmt_count(campaign.victims_linked));
        out.push_str("</tr>\n");
    }
    table_close(out);
    section_end(out);
}

fn campaigns_compare_section(
    out: &mut String,
    base: &[CampaignDetection],
    candidate: &[CampaignDetection],
) {
    section_start(out, "campaigns", "Campaign detection", CAMPAIGNS_LEAD);
    // Campaigns are the ground truth, the same on both sides; match them by
    // name and keep any only one side has.
    let mut pairs: Vec<(Option<&CampaignDetection>, Option<&CampaignDetection>)> = base
        .iter()
        .map(|b| (Some(b), candidate.iter().find(|c| c.campaign == b.campaign)))
        .collect();
    pairs.extend(
        candidate
            .iter()
            .filter(|c| !base.iter().any(|b| b.campaign == c.campaign))
            .map(|c| (None, Some(c))),
    );
    if pairs.is_empty() {
        note(out, "The history's ground truth has no campaign.");
        section_end(out);
        return;
    }
    table_open_with(out, "dense");
    out.push_str(
        "<thead><tr><th rowspan=\"2\">Campaign</th><th rowspan=\"2\" class=\"num\">Victims</th>\
         <th colspan=\"2\" class=\"group gl\">Detected</th>\
         <th colspan=\"3\" class=\"group gl\">Delay</th>\
         <th colspan=\"3\" class=\"group gl\">Victims at detection</th>\
         <th colspan=\"3\" class=\"group gl\">Victims linked</th></tr>\n<tr>\
         <th class=\"gl\">Base</th><th>Candidate</th>",
    );
    change_subheaders(out, 3);
    for (b, c) in pairs {
        let Some(named) = c.or(b) else { continue };
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th>",
            campaign_name_html(named)
        );
        num_td(out, &fmt_count(named.victims));
        let _ = write!(
            out,
            "<td class=\"gl\">{}</td><td>{}</td>",
            b.map_or_else(|| DASH.to_string(), detected_html),
            c.map_or_else(|| DASH.to_string(), detected_html)
        );
        let figures: [(Getter<CampaignDetection>, Better); 3] = [
            (|x| Measure::Hours(x.delay_hours), Better::Lower),
            (
                |x| Measure::MaybeCount(x.victims_at_detection),
                Better::Lower,
            ),
            (|x| Measure::Count(x.victims_linked), Better::Higher),
        ];
        for (get, better) in figures {
            compare_cells(out, b.map(get), c.map(get), better);
        }
        out.push_str("</tr>\n");
    }
    table_close(out);
    section_end(out);
}

/// Base, candidate and change cells for a figure either side may lack.
fn compare_cells(
    out: &mut String,
    base: Option<Measure>,
    candidate: Option<Measure>,
    better: Better,
) {
    let cell = |m: Option<Measure>| m.map_or_else(|| DASH.to_string(), |m| measure_html(m, "", ""));
    let _ = write!(out, "<td class=\"num gl\">{}</td>", cell(base));
    num_td(out, &cell(candidate));
    let delta = match (base, candidate) {
        (Some(b), Some(c)) => measure_delta(b, c, "", "", better),
        _ => Delta::none(),
    };
    delta_td(out, &delta);
}

const RESPONSES_LEAD: &str = "Events <code>custos evaluate</code> added to play the \
     platform's side: verifications after challenges and holds.";

fn responses_section(out: &mut String, responses: &Responses) {
    section_start(out, "responses", "Responses", RESPONSES_LEAD);
    key_value_table(
        out,
        &[
            (
                "Verifications passed (owners)".to_string(),
                fmt_count(responses.verifications_passed),
            ),
            (
                "Verifications failed (attackers)".to_string(),
                fmt_count(responses.verifications_failed),
            ),
        ],
    );
    section_end(out);
}

fn responses_compare_section(out: &mut String, base: &Responses, candidate: &Responses) {
    section_start(out, "responses", "Responses", RESPONSES_LEAD);
    compare_table(
        out,
        &[
            Compared::new(
                "Verifications passed (owners)",
                Measure::Count(base.verifications_passed),
                Measure::Count(candidate.verifications_passed),
                Better::Neither,
            ),
            Compared::new(
                "Verifications failed (attackers)",
                Measure::Count(base.verifications_failed),
                Measure::Count(candidate.verifications_failed),
                Better::Neither,
            ),
        ],
    );
    section_end(out);
}

/// Actions from lightest to strongest, the order the report lists them in;
/// unknown actions after them, alphabetically.
fn action_rank(action: &str) -> Option<u8> {
    match action {
        "allow" => Some(0),
        "challenge" => Some(1),
        "review" => Some(2),
        "hold" => Some(3),
        "block" => Some(4),
        _ => None,
    }
}

fn actions_in_order<'a>(actions: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut ordered: Vec<&str> = actions.collect::<BTreeSet<_>>().into_iter().collect();
    ordered.sort_by_key(|a| (action_rank(a).unwrap_or(u8::MAX), *a));
    ordered
}

/// An action as a coloured tag. The class comes from a fixed list, never
/// from the data.
fn action_html(action: &str) -> String {
    let class = match action_rank(action) {
        Some(0) => "act-allow",
        Some(1) => "act-challenge",
        Some(2) => "act-review",
        Some(3) => "act-hold",
        Some(4) => "act-block",
        _ => "act-other",
    };
    format!("<span class=\"action {class}\">{}</span>", escape(action))
}

const EVENTS_LEAD: &str = "Events read from the history and how they were decided (added \
     responses not counted), and how fast the replay ran on this machine.";

fn events_section(out: &mut String, events: &EventCounts) {
    section_start(out, "events", "Events and throughput", EVENTS_LEAD);
    key_value_table(
        out,
        &[
            ("Events read".to_string(), fmt_count(events.read)),
            (
                "Made by attackers".to_string(),
                format!(
                    "{}<span class=\"sub\">{} of events read</span>",
                    fmt_count(events.by_attackers),
                    fmt_share(share_of(events.by_attackers, events.read))
                ),
            ),
            (
                "First event".to_string(),
                escape(&fmt_time(events.first_time.as_deref())),
            ),
            (
                "Last event".to_string(),
                escape(&fmt_time(events.last_time.as_deref())),
            ),
            ("Replay time".to_string(), fmt_seconds(events.seconds)),
            ("Throughput".to_string(), fmt_rate(events.events_per_second)),
        ],
    );
    out.push_str("<h3>Decisions by action</h3>\n");
    if events.decisions.is_empty() {
        note(out, "No decision was made.");
    } else {
        table_open_with(out, "fit");
        out.push_str(
            "<thead><tr><th>Action</th><th class=\"num\">Events</th>\
             <th class=\"num\">Share of events read</th></tr></thead>\n<tbody>\n",
        );
        for action in actions_in_order(events.decisions.keys().map(String::as_str)) {
            let count = events.decisions.get(action).copied().unwrap_or(0);
            let _ = write!(out, "<tr><td>{}</td>", action_html(action));
            num_td(out, &fmt_count(count));
            num_td(out, &fmt_share(share_of(count, events.read)));
            out.push_str("</tr>\n");
        }
        table_close(out);
    }
    section_end(out);
}

fn events_compare_section(out: &mut String, base: &EventCounts, candidate: &EventCounts) {
    section_start(out, "events", "Events and throughput", EVENTS_LEAD);
    let mut rows = vec![
        Compared::new(
            "Events read",
            Measure::Count(base.read),
            Measure::Count(candidate.read),
            Better::Neither,
        ),
        Compared::new(
            "Made by attackers",
            Measure::Count(base.by_attackers),
            Measure::Count(candidate.by_attackers),
            Better::Neither,
        ),
    ];
    let actions = actions_in_order(
        base.decisions
            .keys()
            .chain(candidate.decisions.keys())
            .map(String::as_str),
    );
    for action in actions {
        rows.push(Compared::new(
            format!("Decided {action}"),
            Measure::Count(base.decisions.get(action).copied().unwrap_or(0)),
            Measure::Count(candidate.decisions.get(action).copied().unwrap_or(0)),
            Better::Neither,
        ));
    }
    // Timings depend on the machine and its load as much as on the rules:
    // shown, never coloured.
    rows.push(Compared::new(
        "Replay time",
        Measure::Seconds(base.seconds),
        Measure::Seconds(candidate.seconds),
        Better::Neither,
    ));
    rows.push(Compared::new(
        "Events per second",
        Measure::Rate(base.events_per_second),
        Measure::Rate(candidate.events_per_second),
        Better::Neither,
    ));
    compare_table(out, &rows);
    section_end(out);
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

const RULES_LEAD: &str = "How each rule did against the ground truth. <em>Precision</em> is \
     the share of its hits that were fraud; <em>recall</em> the share of fraudulent events of \
     its types it hit. Shadow rules are evaluated and counted but do not change decisions.";

const SHADOW_BADGE: &str = "<span class=\"badge shadow\">shadow</span>";

fn event_types_html(events: &[String]) -> String {
    events
        .iter()
        .map(|e| format!("<code>{}</code>", escape(e)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn rules_section(out: &mut String, rules: &[RuleStats]) {
    section_start(out, "rules", "Rules", RULES_LEAD);
    rules_chart(out, rules);
    out.push_str("<h3>All rules</h3>\n");
    if rules.is_empty() {
        note(out, "The rule set has no rule.");
        section_end(out);
        return;
    }
    table_open(out);
    out.push_str(
        "<thead><tr><th>Rule</th><th>Action</th><th>Event types</th>\
         <th class=\"num\">Hits</th><th class=\"num\">Fraud hits</th>\
         <th class=\"num\">Precision</th><th class=\"num\">Recall</th></tr></thead>\n<tbody>\n",
    );
    for rule in rules {
        // Rules that never fired are listed (a dead rule is worth knowing
        // about) but dimmed.
        let row_class = if rule.hits == 0 {
            " class=\"idle\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{row_class}><th scope=\"row\" class=\"rule\"><code>{}</code>{}</th><td>{}</td><td>{}</td>",
            id_html(&rule.id),
            if rule.shadow { SHADOW_BADGE } else { "" },
            action_html(&rule.action),
            event_types_html(&rule.events)
        );
        num_td(out, &fmt_count(rule.hits));
        num_td(out, &fmt_count(rule.fraud_hits));
        num_td(out, &fmt_share(rule.precision));
        num_td(
            out,
            &format!(
                "{}<span class=\"sub\">of {} fraud events</span>",
                fmt_share(rule.recall),
                fmt_count(rule.fraud_events)
            ),
        );
        out.push_str("</tr>\n");
    }
    table_close(out);
    section_end(out);
}

/// Rules of either side by id: the base's in its order, then the ones only
/// the candidate has.
fn paired_rules<'a>(
    base: &'a [RuleStats],
    candidate: &'a [RuleStats],
) -> Vec<(Option<&'a RuleStats>, Option<&'a RuleStats>)> {
    let mut pairs: Vec<_> = base
        .iter()
        .map(|b| (Some(b), candidate.iter().find(|c| c.id == b.id)))
        .collect();
    pairs.extend(
        candidate
            .iter()
            .filter(|c| !base.iter().any(|b| b.id == c.id))
            .map(|c| (None, Some(c))),
    );
    pairs
}

fn rules_compare_section(
    out: &mut String,
    sides: &Sides,
    base: &[RuleStats],
    candidate: &[RuleStats],
) {
    section_start(out, "rules", "Rules", RULES_LEAD);
    let pairs = paired_rules(base, candidate);
    rules_chart_compared(out, sides, &pairs);
    out.push_str("<h3>All rules</h3>\n");
    if pairs.is_empty() {
        note(out, "Neither rule set has a rule.");
        section_end(out);
        return;
    }
    table_open_with(out, "dense");
    out.push_str(
        "<thead><tr><th rowspan=\"2\">Rule</th><th rowspan=\"2\">Action</th>\
         <th colspan=\"3\" class=\"group gl\">Hits</th>\
         <th colspan=\"3\" class=\"group gl\">Fraud hits</th>\
         <th colspan=\"3\" class=\"group gl\">Precision</th>\
         <th colspan=\"3\" class=\"group gl\">Recall</th></tr>\n<tr>",
    );
    change_subheaders(out, 4);
    for (b, c) in pairs {
        let Some(rule) = c.or(b) else { continue };
        let presence = match (b, c) {
            (None, Some(_)) => "<span class=\"badge added\">new</span>",
            (Some(_), None) => "<span class=\"badge removed\">removed</span>",
            _ => "",
        };
        let shadow = if b.is_some_and(|r| r.shadow) || c.is_some_and(|r| r.shadow) {
            SHADOW_BADGE
        } else {
            ""
        };
        let idle = b.is_none_or(|r| r.hits == 0) && c.is_none_or(|r| r.hits == 0);
        let _ = write!(
            out,
            "<tr{}><th scope=\"row\" class=\"rule\"><code>{}</code>{presence}{shadow}\
             <span class=\"sub\">{}</span></th><td>{}</td>",
            if idle { " class=\"idle\"" } else { "" },
            id_html(&rule.id),
            escape(&rule.events.join(", ")),
            compared_action_html(b, c)
        );
        let figures: [(Getter<RuleStats>, Better); 4] = [
            (|r| Measure::Count(r.hits), Better::Neither),
            (|r| Measure::Count(r.fraud_hits), Better::Higher),
            (|r| Measure::Share(r.precision), Better::Higher),
            (|r| Measure::Share(r.recall), Better::Higher),
        ];
        for (get, better) in figures {
            compare_cells(out, b.map(get), c.map(get), better);
        }
        out.push_str("</tr>\n");
    }
    table_close(out);
    section_end(out);
}

fn compared_action_html(base: Option<&RuleStats>, candidate: Option<&RuleStats>) -> String {
    match (base, candidate) {
        (Some(b), Some(c)) if b.action == c.action => action_html(&b.action),
        (Some(b), Some(c)) => format!(
            "{} \u{2192} {}",
            action_html(&b.action),
            action_html(&c.action)
        ),
        (Some(r), None) | (None, Some(r)) => action_html(&r.action),
        (None, None) => DASH.to_string(),
    }
}

/// A rule's name on a chart row: long ids cut (the full id is in the row's
/// tooltip), shadow rules marked.
fn rule_chart_label(rule: &RuleStats) -> String {
    // What fits the chart's label column in its monospace font.
    const MAX_CHARS: usize = 38;
    let suffix = if rule.shadow { " (shadow)" } else { "" };
    let room = MAX_CHARS - suffix.len();
    let mut label: String = rule.id.chars().take(room).collect();
    if rule.id.chars().count() > room {
        label.pop();
        label.push('\u{2026}');
    }
    label.push_str(suffix);
    label
}

fn rules_chart(out: &mut String, rules: &[RuleStats]) {
    let rows: Vec<HRow> = rules
        .iter()
        .filter(|r| r.hits > 0)
        .map(|r| HRow {
            label: rule_chart_label(r),
            full: r.id.clone(),
            values: vec![vec![r.precision], vec![r.recall]],
        })
        .collect();
    let panels = [
        HPanel {
            heading: "Precision",
            series: vec![("Precision".to_string(), BLUE)],
        },
        HPanel {
            heading: "Recall",
            series: vec![("Recall".to_string(), TEAL)],
        },
    ];
    hbar_chart(
        out,
        &HBarChart {
            id: "chart-rules",
            title: TITLE_RULES,
            desc: "Precision and recall of each rule that fired, as horizontal bars from 0% \
                   to 100%.",
            empty: "No rule fired on this history.",
            panels: &panels,
            rows: &rows,
        },
    );
}

fn rules_chart_compared(
    out: &mut String,
    sides: &Sides,
    pairs: &[(Option<&RuleStats>, Option<&RuleStats>)],
) {
    let hit = |r: Option<&RuleStats>| r.is_some_and(|r| r.hits > 0);
    let rows: Vec<HRow> = pairs
        .iter()
        .filter(|(b, c)| hit(*b) || hit(*c))
        .filter_map(|(b, c)| {
            let rule = c.or(*b)?;
            let precision = |r: Option<&RuleStats>| r.and_then(|r| r.precision);
            let recall = |r: Option<&RuleStats>| r.and_then(|r| r.recall);
            Some(HRow {
                label: rule_chart_label(rule),
                full: rule.id.clone(),
                values: vec![
                    vec![precision(*b), precision(*c)],
                    vec![recall(*b), recall(*c)],
                ],
            })
        })
        .collect();
    let series = vec![
        (format!("Base: {}", sides.base), GREY),
        (format!("Candidate: {}", sides.candidate), BLUE),
    ];
    let panels = [
        HPanel {
            heading: "Precision",
            series: series.clone(),
        },
        HPanel {
            heading: "Recall",
            series,
        },
    ];
    hbar_chart(
        out,
        &HBarChart {
            id: "chart-rules",
            title: TITLE_RULES_COMPARED,
            desc: "Precision and recall of each rule that fired under either rule set, base \
                   bar above candidate bar.",
            empty: "No rule fired on this history under either rule set.",
            panels: &panels,
            rows: &rows,
        },
    );
}

// ---------------------------------------------------------------------------
// What changed (comparison only)
// ---------------------------------------------------------------------------

fn changed_section(out: &mut String, changed: &[ChangedDecisions]) {
    section_start(
        out,
        "changed",
        "Changed decisions",
        "Events the two rule sets decided differently, by base action \u{2192} candidate \
         action, split by ground truth. Stricter on fraud and looser on honest events is \
         green; the other way round is red.",
    );
    if changed.is_empty() {
        note(out, "The two rule sets decided every event the same way.");
        section_end(out);
        return;
    }
    table_open(out);
    out.push_str(
        "<thead><tr><th>Base</th><th>Candidate</th><th>Direction</th>\
         <th class=\"num\">Fraud events</th><th class=\"num\">Legitimate events</th>\
         <th class=\"num\">Total</th></tr></thead>\n<tbody>\n",
    );
    let (mut fraud, mut legit) = (0u64, 0u64);
    for row in changed {
        let direction = match (action_rank(&row.from), action_rank(&row.to)) {
            (Some(from), Some(to)) => to.cmp(&from),
            _ => Ordering::Equal,
        };
        let (badge, fraud_better) = match direction {
            Ordering::Greater => (
                "<span class=\"badge stricter\">stricter</span>",
                Better::Higher,
            ),
            Ordering::Less => ("<span class=\"badge looser\">looser</span>", Better::Lower),
            Ordering::Equal => (DASH, Better::Neither),
        };
        // Fraud moved to a stricter action is a catch; honest events moved
        // there are friction. Looser moves the other way round.
        let legit_better = match fraud_better {
            Better::Higher => Better::Lower,
            Better::Lower => Better::Higher,
            Better::Neither => Better::Neither,
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{badge}</td>",
            action_html(&row.from),
            action_html(&row.to)
        );
        let _ = write!(
            out,
            "<td class=\"num delta {}\">{}</td><td class=\"num delta {}\">{}</td>",
            fraud_better.class(row.fraud.cmp(&0)),
            fmt_count(row.fraud),
            legit_better.class(row.legit.cmp(&0)),
            fmt_count(row.legit)
        );
        num_td(out, &fmt_count(row.fraud.saturating_add(row.legit)));
        out.push_str("</tr>\n");
        fraud = fraud.saturating_add(row.fraud);
        legit = legit.saturating_add(row.legit);
    }
    let _ = write!(
        out,
        "</tbody><tfoot><tr><th scope=\"row\" colspan=\"3\">All changed</th>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\
         </tfoot>\n<tbody>",
        fmt_count(fraud),
        fmt_count(legit),
        fmt_count(fraud.saturating_add(legit))
    );
    table_close(out);
    section_end(out);
}

fn rule_list_html(rules: &[String], class: &str) -> String {
    if rules.is_empty() {
        return DASH.to_string();
    }
    rules
        .iter()
        .map(|r| format!("<code class=\"{class}\">{}</code>", id_html(r)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn examples_section(out: &mut String, examples: &[ChangedExample]) {
    section_start(
        out,
        "examples",
        "Examples of changed decisions",
        "Up to 50 events decided differently, for a first look, with the rules that fired \
         only in the candidate (added) or only in the base (removed).",
    );
    if examples.is_empty() {
        note(out, "No event was decided differently.");
        section_end(out);
        return;
    }
    table_open(out);
    out.push_str(
        "<thead><tr><th>Event</th><th>Type</th><th>Account</th><th>Truth</th>\
         <th>Base \u{2192} candidate</th><th>Rules added</th><th>Rules removed</th></tr>\
         </thead>\n<tbody>\n",
    );
    for example in examples {
        let truth = if example.fraud {
            "<span class=\"badge fraud\">fraud</span>"
        } else {
            "<span class=\"badge legit\">legitimate</span>"
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"nowrap\"><code>{}</code></td><td>{}</td>\
             <td class=\"nowrap\"><code>{}</code></td><td>{truth}</td>\
             <td class=\"nowrap\">{} \u{2192} {}</td><td>{}</td><td>{}</td></tr>",
            escape(&example.event_id),
            escape(&example.event_type),
            escape(&example.account_id),
            action_html(&example.from),
            action_html(&example.to),
            rule_list_html(&example.rules_added, "plus"),
            rule_list_html(&example.rules_removed, "minus")
        );
    }
    table_close(out);
    section_end(out);
}

// ---------------------------------------------------------------------------
// SVG charts
// ---------------------------------------------------------------------------

/// Every chart is drawn in a 960-unit-wide view box and scaled to the page
/// by CSS, so the geometry below is in fixed units.
const CHART_W: f64 = 960.0;
const CHART_RIGHT: f64 = 40.0;
/// Room left of the plot for tick labels and marker-lane names.
const DAY_CHART_LEFT: f64 = 132.0;
const LANE_H: f64 = 22.0;

/// An SVG coordinate: one decimal, and 0 for anything not finite, so that no
/// input can put `NaN` or `inf` into the document.
struct Px(f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.0.is_finite() { self.0 } else { 0.0 };
        let rounded = (value * 10.0).round() / 10.0;
        if rounded == 0.0 {
            // Also keeps `-0` out.
            f.write_str("0")
        } else {
            write!(f, "{rounded}")
        }
    }
}

/// A y scale from 0 to a round maximum, in round steps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    max: f64,
    step: f64,
}

impl Scale {
    /// About `ticks` steps up to at least `max_value`; steps of 1, 2, 2.5 or
    /// 5 times a power of ten (whole steps for counts). A maximum of zero or
    /// less gives the scale 0..1, so an empty chart still has an axis.
    fn new(max_value: f64, ticks: usize, whole: bool) -> Scale {
        let unit = Scale {
            max: 1.0,
            step: 1.0,
        };
        if !(max_value.is_finite() && max_value > 0.0) {
            return unit;
        }
        let raw = max_value / ticks.max(1) as f64;
        let magnitude = 10f64.powf(raw.log10().floor());
        let normalized = raw / magnitude;
        let nice = [1.0, 2.0, 2.5, 5.0]
            .into_iter()
            .find(|n| normalized <= *n)
            .unwrap_or(10.0);
        let mut step = nice * magnitude;
        if whole {
            step = step.ceil().max(1.0);
        }
        let max = (max_value / step).ceil() * step;
        if step.is_finite() && step > 0.0 && max.is_finite() && max > 0.0 {
            Scale { max, step }
        } else {
            unit
        }
    }

    fn ticks(self) -> impl Iterator<Item = f64> {
        // At most 20 ticks, whatever the scale: a bound on the loop.
        let count = (self.max / self.step).round().clamp(0.0, 20.0) as usize;
        (0..=count).map(move |k| k as f64 * self.step)
    }

    /// Where `value` falls between 0 and the top, clamped to the plot.
    fn fraction(self, value: f64) -> f64 {
        if self.max > 0.0 && value.is_finite() {
            (value / self.max).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// A plot area. Days are bands of equal width, and a day's point sits in the
/// middle of its band: lines and bars share the x scale, and one day needs
/// no division by `days - 1`.
#[derive(Debug, Clone, Copy)]
struct Plot {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Plot {
    fn bottom(self) -> f64 {
        self.top + self.height
    }

    fn right(self) -> f64 {
        self.left + self.width
    }

    fn band(self, count: usize) -> f64 {
        self.width / count.max(1) as f64
    }

    fn band_x(self, index: usize, count: usize) -> f64 {
        self.left + self.band(count) * (index as f64 + 0.5)
    }

    fn y(self, value: f64, scale: Scale) -> f64 {
        self.bottom() - self.height * scale.fraction(value)
    }
}

/// Opens a chart: a figure with a visible caption, and an SVG with its own
/// `<title>` and `<desc>` for screen readers and tooltips.
fn svg_open(out: &mut String, id: &str, title: &str, desc: &str, height: f64) {
    let _ = write!(
        out,
        "<figure>\n<figcaption>{title}</figcaption>\n\
         <svg class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <title id=\"{id}-title\">{title}</title>\n<desc id=\"{id}-desc\">{}</desc>\n",
        Px(CHART_W),
        Px(height),
        escape(desc),
        title = escape(title),
    );
}

fn svg_close(out: &mut String) {
    out.push_str("</svg>\n</figure>\n");
}

fn empty_note(out: &mut String, plot: Plot, text: &str) {
    let _ = writeln!(
        out,
        "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        Px(plot.left + plot.width / 2.0),
        Px(plot.top + plot.height / 2.0),
        escape(text)
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Line { dashed: bool },
    Block,
    Dot,
    Diamond,
}

struct LegendItem<'a> {
    label: &'a str,
    color: &'static str,
    shape: Shape,
}

/// A legend in one row from `x`, wrapping when the row is full.
fn legend(out: &mut String, items: &[LegendItem<'_>], x: f64, y: f64) {
    let (mut cx, mut cy) = (x, y);
    for item in items {
        // No text measuring in SVG without script: estimate from the length.
        let width = 24.0 + 6.3 * item.label.chars().count() as f64 + 20.0;
        if cx + width > CHART_W - CHART_RIGHT && cx > x {
            cx = x;
            cy += 18.0;
        }
        swatch(out, item.shape, item.color, cx + 8.0, cy - 4.0);
        let _ = writeln!(
            out,
            "<text class=\"legend\" x=\"{}\" y=\"{}\">{}</text>",
            Px(cx + 22.0),
            Px(cy),
            escape(item.label)
        );
        cx += width;
    }
}

fn swatch(out: &mut String, shape: Shape, color: &str, x: f64, y: f64) {
    match shape {
        Shape::Line { dashed } => {
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{color}\" \
                 stroke-width=\"2.5\"{}/>",
                Px(x - 8.0),
                Px(y),
                Px(x + 8.0),
                Px(y),
                if dashed {
                    " stroke-dasharray=\"5 3\""
                } else {
                    ""
                }
            );
        }
        Shape::Block => {
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{color}\"/>",
                Px(x - 6.0),
                Px(y - 6.0)
            );
        }
        Shape::Dot | Shape::Diamond => marker(out, shape, color, x, y, 5.0, ""),
    }
}

/// A dot or diamond of radius `r`, with a tooltip when `tip` is not empty.
fn marker(out: &mut String, shape: Shape, color: &str, x: f64, y: f64, r: f64, tip: &str) {
    let tip = if tip.is_empty() {
        String::new()
    } else {
        format!("<title>{}</title>", escape(tip))
    };
    match shape {
        Shape::Diamond => {
            let _ = writeln!(
                out,
                "<polygon points=\"{},{} {},{} {},{} {},{}\" fill=\"{color}\">{tip}</polygon>",
                Px(x),
                Px(y - r),
                Px(x + r),
                Px(y),
                Px(x),
                Px(y + r),
                Px(x - r),
                Px(y)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{color}\" \
                 fill-opacity=\"0.85\">{tip}</circle>",
                Px(x),
                Px(y),
                Px(r)
            );
        }
    }
}

/// Horizontal grid lines and tick labels, and the axis caption turned along
/// the axis.
fn y_axis(out: &mut String, plot: Plot, scale: Scale, caption: &str) {
    for tick in scale.ticks() {
        let y = plot.y(tick, scale);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            Px(plot.left),
            Px(y),
            Px(plot.right()),
            Px(y),
            Px(plot.left - 8.0),
            Px(y + 4.0),
            fmt_axis(tick)
        );
    }
    if !caption.is_empty() {
        let _ = writeln!(
            out,
            "<text class=\"caption\" transform=\"translate({} {}) rotate(-90)\" \
             text-anchor=\"middle\">{}</text>",
            Px(plot.left - 52.0),
            Px(plot.top + plot.height / 2.0),
            escape(caption)
        );
    }
}

fn x_axis_line(out: &mut String, plot: Plot) {
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
        Px(plot.left),
        Px(plot.bottom()),
        Px(plot.right()),
        Px(plot.bottom())
    );
}

/// Day labels under the plot, as many as fit side by side.
fn x_day_labels(out: &mut String, plot: Plot, days: &[&str]) {
    const LABEL_W: f64 = 80.0;
    let fit = ((plot.width / LABEL_W).floor() as usize).max(1);
    let step = days.len().div_ceil(fit).max(1);
    for (index, day) in days.iter().enumerate().step_by(step) {
        let x = plot.band_x(index, days.len());
        let _ = writeln!(
            out,
            "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            Px(x),
            Px(plot.bottom()),
            Px(x),
            Px(plot.bottom() + 4.0),
            Px(x),
            Px(plot.bottom() + 17.0),
            escape(day)
        );
    }
}

/// A line of a line chart: one value per day.
struct Series {
    label: String,
    color: &'static str,
    dashed: bool,
    values: Vec<f64>,
}

/// A row of markers under a day chart: one marker per day with a count,
/// sized by the count. `guide` also draws a faint line up through the plot,
/// to read the curve at that day.
struct Lane {
    label: String,
    noun: &'static str,
    color: &'static str,
    shape: Shape,
    counts: Vec<u64>,
    guide: bool,
}

struct LineChart<'a> {
    id: &'a str,
    title: &'a str,
    desc: &'a str,
    y_caption: &'a str,
    days: &'a [&'a str],
    series: &'a [Series],
    lanes: &'a [Lane],
}

fn marker_radius(count: u64) -> f64 {
    (2.5 + 1.2 * (count as f64).sqrt()).min(8.0)
}

fn line_chart(out: &mut String, chart: &LineChart<'_>) {
    let plot = Plot {
        left: DAY_CHART_LEFT,
        top: 48.0,
        width: CHART_W - DAY_CHART_LEFT - CHART_RIGHT,
        height: 250.0,
    };
    let lanes_top = plot.bottom() + 30.0;
    let height = lanes_top + LANE_H * chart.lanes.len() as f64 + 10.0;
    svg_open(out, chart.id, chart.title, chart.desc, height);

    let mut items: Vec<LegendItem<'_>> = chart
        .series
        .iter()
        .map(|s| LegendItem {
            label: &s.label,
            color: s.color,
            shape: Shape::Line { dashed: s.dashed },
        })
        .collect();
    items.extend(chart.lanes.iter().map(|lane| LegendItem {
        label: &lane.label,
        color: lane.color,
        shape: lane.shape,
    }));
    legend(out, &items, plot.left, 18.0);

    // f64::max skips NaN, so one bad value cannot spoil the scale.
    let max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    let scale = Scale::new(max, 5, false);
    y_axis(out, plot, scale, chart.y_caption);

    let n = chart.days.len();
    if n == 0 {
        empty_note(out, plot, "No days in this history.");
    } else {
        day_guides(out, plot, chart.lanes, n);
        for series in chart.series {
            series_line(out, plot, scale, series, chart.days);
        }
        x_day_labels(out, plot, chart.days);
    }
    x_axis_line(out, plot);
    for (index, lane) in chart.lanes.iter().enumerate() {
        let y = lanes_top + LANE_H * (index as f64 + 0.5);
        marker_lane(out, plot, lane, chart.days, y);
    }
    svg_close(out);
}

fn day_guides(out: &mut String, plot: Plot, lanes: &[Lane], n: usize) {
    for lane in lanes.iter().filter(|lane| lane.guide) {
        for (index, _) in lane
            .counts
            .iter()
            .enumerate()
            .take(n)
            .filter(|(_, c)| **c > 0)
        {
            let x = plot.band_x(index, n);
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" \
                 stroke-opacity=\"0.35\" stroke-dasharray=\"3 3\"/>",
                Px(x),
                Px(plot.top),
                Px(x),
                Px(plot.bottom()),
                lane.color
            );
        }
    }
}

/// A polyline through the days, and a dot at the last day with the total
/// as its tooltip (also what makes a single day visible).
fn series_line(out: &mut String, plot: Plot, scale: Scale, series: &Series, days: &[&str]) {
    let n = days.len();
    let points: Vec<(f64, f64)> = series
        .values
        .iter()
        .take(n)
        .enumerate()
        .map(|(index, value)| (plot.band_x(index, n), plot.y(*value, scale)))
        .collect();
    if points.len() > 1 {
        let mut path = String::with_capacity(points.len() * 14);
        for (x, y) in &points {
            let _ = write!(path, "{},{} ", Px(*x), Px(*y));
        }
        let _ = writeln!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2.2\" \
             stroke-linejoin=\"round\"{}><title>{}</title></polyline>",
            path.trim_end(),
            series.color,
            if series.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            },
            escape(&series.label)
        );
    }
    if let Some((index, (total, day))) = series.values.iter().zip(days).enumerate().next_back() {
        marker(
            out,
            Shape::Dot,
            series.color,
            plot.band_x(index, n),
            plot.y(*total, scale),
            3.5,
            &format!("{}: {} by {day}", series.label, fmt_axis(*total)),
        );
    }
}

fn marker_lane(out: &mut String, plot: Plot, lane: &Lane, days: &[&str], y: f64) {
    let _ = writeln!(
        out,
        "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <line class=\"lane\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
        Px(plot.left - 8.0),
        Px(y + 4.0),
        escape(&lane.label),
        Px(plot.left),
        Px(y),
        Px(plot.right()),
        Px(y)
    );
    let n = days.len();
    for (index, (count, day)) in lane.counts.iter().zip(days).enumerate() {
        if *count == 0 {
            continue;
        }
        marker(
            out,
            lane.shape,
            lane.color,
            plot.band_x(index, n),
            y,
            marker_radius(*count),
            &format!("{day}: {} {}", fmt_count(*count), lane.noun),
        );
    }
}

/// One panel of a bar chart over days.
struct BarPanel {
    label: &'static str,
    color: &'static str,
    values: Vec<f64>,
}

struct BarChart<'a> {
    id: &'a str,
    title: &'a str,
    desc: &'a str,
    y_caption: &'a str,
    days: &'a [&'a str],
    panels: &'a [BarPanel],
}

/// Panels stacked over one shared day axis, each with its own y scale.
fn daily_bars_chart(out: &mut String, chart: &BarChart<'_>) {
    const PANEL_H: f64 = 130.0;
    const GAP: f64 = 40.0;
    const TOP: f64 = 56.0;
    let panel_at = |index: usize| Plot {
        left: DAY_CHART_LEFT,
        top: TOP + (PANEL_H + GAP) * index as f64,
        width: CHART_W - DAY_CHART_LEFT - CHART_RIGHT,
        height: PANEL_H,
    };
    let last = panel_at(chart.panels.len().saturating_sub(1));
    let height = last.bottom() + 34.0;
    svg_open(out, chart.id, chart.title, chart.desc, height);
    let items: Vec<LegendItem<'_>> = chart
        .panels
        .iter()
        .map(|p| LegendItem {
            label: p.label,
            color: p.color,
            shape: Shape::Block,
        })
        .collect();
    legend(out, &items, DAY_CHART_LEFT, 18.0);

    let n = chart.days.len();
    for (index, panel) in chart.panels.iter().enumerate() {
        let plot = panel_at(index);
        let _ = writeln!(
            out,
            "<text class=\"panel-title\" x=\"{}\" y=\"{}\">{}</text>",
            Px(plot.left),
            Px(plot.top - 10.0),
            escape(panel.label)
        );
        let max = panel.values.iter().copied().fold(0.0, f64::max);
        let scale = Scale::new(max, 3, false);
        y_axis(out, plot, scale, chart.y_caption);
        if n == 0 {
            empty_note(out, plot, "No days in this history.");
        }
        let band = plot.band(n);
        // At least a hairline, so a bar stays visible among hundreds of
        // days; at most a column's width, so a few days do not look like
        // blocks.
        let bar_w = (band * 0.78).clamp(0.6, 48.0);
        for (day_index, (value, day)) in panel.values.iter().zip(chart.days).enumerate() {
            let top = plot.y(*value, scale);
            let bar_h = plot.bottom() - top;
            if bar_h <= 0.0 {
                continue;
            }
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\">\
                 <title>{}: {} (major units, all currencies)</title></rect>",
                Px(plot.band_x(day_index, n) - bar_w / 2.0),
                Px(top),
                Px(bar_w),
                Px(bar_h),
                panel.color,
                escape(day),
                fmt_axis(*value)
            );
        }
        x_axis_line(out, plot);
    }
    x_day_labels(out, last, chart.days);
    svg_close(out);
}

struct Histogram<'a> {
    id: &'a str,
    title: &'a str,
    desc: &'a str,
    /// Bucket labels and counts, in order.
    buckets: &'a [(String, u64)],
}

fn histogram_chart(out: &mut String, chart: &Histogram<'_>) {
    let plot = Plot {
        left: 84.0,
        top: 48.0,
        width: CHART_W - 84.0 - CHART_RIGHT,
        height: 220.0,
    };
    let height = plot.bottom() + 52.0;
    svg_open(out, chart.id, chart.title, chart.desc, height);
    legend(
        out,
        &[LegendItem {
            label: "Released holds",
            color: TEAL,
            shape: Shape::Block,
        }],
        plot.left,
        18.0,
    );
    let max = chart.buckets.iter().map(|(_, c)| *c).max().unwrap_or(0);
    let scale = Scale::new(max as f64, 4, true);
    y_axis(out, plot, scale, "released holds");
    let n = chart.buckets.len();
    if n == 0 {
        empty_note(out, plot, "No released hold of a legitimate payout.");
    }
    let band = plot.band(n);
    // Skip labels that would overlap when there are many buckets.
    let label_step = ((64.0 / band).ceil() as usize).max(1);
    for (index, (label, count)) in chart.buckets.iter().enumerate() {
        let x = plot.band_x(index, n);
        let top = plot.y(*count as f64, scale);
        let bar_w = (band * 0.7).clamp(0.6, 120.0);
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{TEAL}\" rx=\"2\">\
             <title>{}: {} released holds</title></rect>\
             <text class=\"bar-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            Px(x - bar_w / 2.0),
            Px(top),
            Px(bar_w),
            Px(plot.bottom() - top),
            escape(label),
            fmt_count(*count),
            Px(x),
            Px(top - 5.0),
            fmt_count(*count)
        );
        if index % label_step == 0 {
            let _ = writeln!(
                out,
                "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                Px(x),
                Px(plot.bottom() + 17.0),
                escape(label)
            );
        }
    }
    x_axis_line(out, plot);
    let _ = writeln!(
        out,
        "<text class=\"caption\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">hours from hold \
         to release</text>",
        Px(plot.left + plot.width / 2.0),
        Px(plot.bottom() + 40.0)
    );
    svg_close(out);
}

/// A rule's row of a horizontal bar chart: per panel, one value per series.
struct HRow {
    label: String,
    /// The full rule id, for the tooltip.
    full: String,
    values: Vec<Vec<Option<f64>>>,
}

/// A column of bars on a 0–100% scale: precision, or recall.
struct HPanel {
    heading: &'static str,
    series: Vec<(String, &'static str)>,
}

struct HBarChart<'a> {
    id: &'a str,
    title: &'a str,
    desc: &'a str,
    empty: &'a str,
    panels: &'a [HPanel],
    rows: &'a [HRow],
}

/// Rules as rows, with rule names on the left and one 0–100% column per
/// panel: precision and recall read side by side for each rule.
fn hbar_chart(out: &mut String, chart: &HBarChart<'_>) {
    const LABEL_W: f64 = 292.0;
    const GAP: f64 = 36.0;
    const BAR_H: f64 = 11.0;
    const ROWS_TOP: f64 = 72.0;
    let series_count = chart
        .panels
        .iter()
        .map(|p| p.series.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let row_h = series_count as f64 * (BAR_H + 2.0) + 10.0;
    let rows_h = row_h * chart.rows.len().max(2) as f64;
    let height = ROWS_TOP + rows_h + 14.0;
    svg_open(out, chart.id, chart.title, chart.desc, height);

    // One legend entry per distinct series, in order.
    let mut items: Vec<LegendItem<'_>> = Vec::new();
    for (label, color) in chart.panels.iter().flat_map(|p| p.series.iter()) {
        if !items.iter().any(|item| item.label == label.as_str()) {
            items.push(LegendItem {
                label,
                color,
                shape: Shape::Block,
            });
        }
    }
    legend(out, &items, LABEL_W, 18.0);

    let panel_count = chart.panels.len().max(1);
    let panel_w =
        (CHART_W - LABEL_W - CHART_RIGHT - GAP * (panel_count - 1) as f64) / panel_count as f64;
    let panel_x = |index: usize| LABEL_W + (panel_w + GAP) * index as f64;
    let bottom = ROWS_TOP + rows_h;
    for (index, panel) in chart.panels.iter().enumerate() {
        let x0 = panel_x(index);
        let _ = writeln!(
            out,
            "<text class=\"panel-title\" x=\"{}\" y=\"46\">{}</text>",
            Px(x0),
            escape(panel.heading)
        );
        for quarter in 0..=4 {
            let x = x0 + panel_w * f64::from(quarter) / 4.0;
            let _ = writeln!(
                out,
                "<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
                 <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}%</text>",
                Px(x),
                Px(ROWS_TOP - 4.0),
                Px(x),
                Px(bottom),
                Px(x),
                Px(ROWS_TOP - 10.0),
                quarter * 25
            );
        }
        let _ = writeln!(
            out,
            "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
            Px(x0),
            Px(ROWS_TOP - 4.0),
            Px(x0),
            Px(bottom)
        );
    }
    if chart.rows.is_empty() {
        let area = Plot {
            left: LABEL_W,
            top: ROWS_TOP,
            width: CHART_W - LABEL_W - CHART_RIGHT,
            height: rows_h,
        };
        empty_note(out, area, chart.empty);
    }
    for (row_index, row) in chart.rows.iter().enumerate() {
        let y0 = ROWS_TOP + row_h * row_index as f64;
        let _ = writeln!(
            out,
            "<text class=\"rule\" x=\"{}\" y=\"{}\" text-anchor=\"end\"><title>{}</title>{}</text>",
            Px(LABEL_W - 12.0),
            Px(y0 + row_h / 2.0 + 2.0),
            escape(&row.full),
            escape(&row.label)
        );
        if row_index > 0 {
            let _ = writeln!(
                out,
                "<line class=\"lane\" x1=\"8\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                Px(y0),
                Px(CHART_W - CHART_RIGHT),
                Px(y0)
            );
        }
        for (panel_index, panel) in chart.panels.iter().enumerate() {
            for (series_index, (name, color)) in panel.series.iter().enumerate() {
                let value = row
                    .values
                    .get(panel_index)
                    .and_then(|v| v.get(series_index))
                    .copied()
                    .flatten();
                let bar = HBar {
                    x: panel_x(panel_index),
                    y: y0 + 5.0 + series_index as f64 * (BAR_H + 2.0),
                    width: panel_w,
                    height: BAR_H,
                };
                let tip = format!("{}, {name}: {}", row.full, fmt_share(value));
                hbar(out, bar, value, color, &tip);
            }
        }
    }
    svg_close(out);
}

#[derive(Debug, Clone, Copy)]
struct HBar {
    x: f64,
    y: f64,
    /// The width of 100%.
    width: f64,
    height: f64,
}

/// One bar with its value written after it (or inside near 100%, where
/// there is no room after it); a dash where there is no value.
fn hbar(out: &mut String, bar: HBar, value: Option<f64>, color: &str, tip: &str) {
    let text_y = bar.y + bar.height - 2.0;
    let Some(share) = value.filter(|v| v.is_finite()) else {
        let _ = writeln!(
            out,
            "<text class=\"bar-label\" x=\"{}\" y=\"{}\">{DASH}<title>{}</title></text>",
            Px(bar.x + 4.0),
            Px(text_y),
            escape(tip)
        );
        return;
    };
    let width = bar.width * share.clamp(0.0, 1.0);
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{color}\" rx=\"2\">\
         <title>{}</title></rect>",
        Px(bar.x),
        Px(bar.y),
        Px(width),
        Px(bar.height),
        escape(tip)
    );
    let inside = width > bar.width - 52.0;
    let _ = writeln!(
        out,
        "<text class=\"bar-label{}\" x=\"{}\" y=\"{}\"{}>{}</text>",
        if inside { " inside" } else { "" },
        Px(if inside {
            bar.x + width - 4.0
        } else {
            bar.x + width + 4.0
        }),
        Px(text_y),
        if inside { " text-anchor=\"end\"" } else { "" },
        fmt_share(Some(share))
    );
}

// ---------------------------------------------------------------------------
// Style
// ---------------------------------------------------------------------------

/// The page's whole style. System fonts only: nothing is fetched.
const STYLE: &str = r#":root{--ink:#0f172a;--ink-2:#334155;--muted:#64748b;--line:#e2e8f0;--soft:#f1f5f9;--bg:#f8fafc;--better:#15803d;--better-bg:#dcfce7;--worse:#b91c1c;--worse-bg:#fee2e2;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1180px;margin:0 auto;padding-left:32px;padding-right:32px}
header.page{background:var(--ink);color:#f8fafc;padding:26px 0 22px}
header.page .kicker{margin:0;font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:#94a3b8}
header.page h1{margin:2px 0 14px;font-size:24px;font-weight:650;overflow-wrap:anywhere}
header.page h1 .vs{color:#94a3b8;font-weight:400;font-size:18px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;margin:0;font-size:13px}
dl.meta dt{color:#94a3b8}
dl.meta dd{margin:0;color:#e2e8f0;overflow-wrap:anywhere}
p.warning{margin:14px 0 0;padding:8px 12px;border-radius:6px;background:#fef3c7;color:#92400e;font-size:13px}
nav.toc{background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0;z-index:1}
nav.toc .wrap{display:flex;flex-wrap:wrap;gap:4px 20px;padding-top:10px;padding-bottom:10px}
nav.toc a{color:var(--ink-2);text-decoration:none;font-size:13px;font-weight:500}
nav.toc a:hover{color:var(--accent)}
main.wrap{padding-top:24px;padding-bottom:32px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px 22px;margin:0 0 20px;scroll-margin-top:52px}
h2{font-size:18px;margin:0 0 4px;font-weight:650}
h3{font-size:14px;margin:22px 0 6px;color:var(--ink-2)}
p.lead{margin:0 0 14px;color:var(--muted);font-size:13px;max-width:88ch}
p.note{margin:8px 0;color:var(--muted);font-style:italic}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px}
.card{border:1px solid var(--line);border-top:3px solid var(--accent);border-radius:8px;padding:12px 16px 14px}
.card.flag{border-top-color:var(--worse)}
.card .label{font-size:12px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:28px;font-weight:650;font-variant-numeric:tabular-nums;margin:2px 0 4px}
.card .hint{font-size:12px;color:var(--muted)}
.card .dir{font-size:11px;color:var(--ink-2);margin-top:6px;font-weight:600}
.versus{display:flex;gap:18px;margin:4px 0 6px}
.versus .who{display:block;font-size:11px;color:var(--muted)}
.versus .v{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.versus .base .v{color:var(--muted)}
.card .delta{display:inline-block;margin-bottom:6px;padding:1px 9px;border-radius:10px;font-weight:650;font-size:13px;background:var(--soft)}
.delta.better{color:var(--better)}
.delta.worse{color:var(--worse)}
.delta.same,.delta.neutral{color:var(--muted)}
td.delta.same{font-weight:400}
.card .delta.better{background:var(--better-bg)}
.card .delta.worse{background:var(--worse-bg)}
.table-wrap{overflow-x:auto;margin:6px 0}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
table.narrow{width:auto;min-width:420px}
table.fit{width:auto;min-width:60%}
table.dense{font-size:12px}
table.dense th,table.dense td{padding:5px 6px}
th.rule::before{content:"";display:block;width:10em}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:var(--soft);color:var(--ink-2);font-weight:600;font-size:12px;border-bottom:1px solid #cbd5e1}
thead th.group{text-align:center}
tbody th{font-weight:500;color:var(--ink-2)}
.gl{border-left:1px solid var(--line)}
.num{text-align:right;white-space:nowrap}
.nowrap{white-space:nowrap}
td.delta{font-weight:600}
tfoot th,tfoot td{font-weight:650;border-top:1px solid #cbd5e1}
tr.idle th,tr.idle td{color:#94a3b8}
tr.missed{background:#fff7f7}
.sub{display:block;font-size:11px;color:var(--muted);font-weight:400}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;background:var(--soft);padding:1px 5px;border-radius:4px;overflow-wrap:break-word}
code.plus{background:var(--better-bg);color:#166534}
code.minus{background:var(--worse-bg);color:#991b1b}
.badge{display:inline-block;margin-left:6px;padding:0 7px;border-radius:9px;font-size:11px;font-weight:600;line-height:18px}
.badge.shadow{background:#ede9fe;color:#5b21b6}
.badge.missed,.badge.fraud{background:var(--worse-bg);color:var(--worse);margin-left:0}
.badge.legit{background:#e0f2fe;color:#075985;margin-left:0}
.badge.added{background:#dbeafe;color:#1e40af}
.badge.removed{background:var(--soft);color:var(--muted)}
.badge.stricter{background:#ffedd5;color:#9a3412;margin-left:0}
.badge.looser{background:#e0f2fe;color:#075985;margin-left:0}
.action{display:inline-block;padding:0 7px;border-radius:4px;font-size:12px;font-weight:600;background:var(--soft);color:var(--ink-2)}
.act-allow{background:#dcfce7;color:#166534}
.act-challenge{background:#e0f2fe;color:#075985}
.act-review{background:#fef9c3;color:#854d0e}
.act-hold{background:#ffedd5;color:#9a3412}
.act-block{background:#fee2e2;color:#991b1b}
figure{margin:16px 0 10px}
figcaption{font-weight:600;font-size:14px;color:var(--ink-2);margin-bottom:2px}
svg.chart{display:block;width:100%;height:auto}
svg.chart text{font-size:11px;fill:#475569}
svg.chart .tick{fill:#64748b}
svg.chart .legend{fill:#334155}
svg.chart .caption{fill:#64748b}
svg.chart .panel-title{font-size:12px;font-weight:600;fill:#334155}
svg.chart .rule{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11px;fill:#334155}
svg.chart .grid{stroke:#e2e8f0}
svg.chart .axis{stroke:#94a3b8}
svg.chart .lane{stroke:#eef2f7}
svg.chart .empty{font-size:13px;fill:#94a3b8;font-style:italic}
svg.chart .bar-label{font-size:10px;fill:#334155}
svg.chart .bar-label.inside{fill:#fff}
footer{color:var(--muted);font-size:12px;padding-bottom:32px}
@media print{body{background:#fff}nav.toc{display:none}header.page{background:#fff;color:var(--ink)}dl.meta dd{color:var(--ink)}section{break-inside:avoid;border-color:#cbd5e1}}
"#;

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// The second header row of a comparison table: `Base`, `Candidate` and
/// `Change` under each of `groups` groups; closes the header.
fn change_subheaders(out: &mut String, groups: usize) {
    for _ in 0..groups {
        out.push_str(
            "<th class=\"num gl\">Base</th><th class=\"num\">Candidate</th>\
             <th class=\"num\">Change</th>",
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
}

#[cfg(test)]
mod tests {
    use super::super::report::{
        Amounts, CampaignDetection, ChangedDecisions, ChangedExample, Comparison, DayPoint,
        DelayBucket, EventCounts, Headline, LegitPayouts, Logins, Report, Responses, RuleStats,
        RulesUsed, StolenMoney,
    };
    use super::*;

    const HOSTILE_RULE: &str = "<script>alert('x')</script>";

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
                ("<GBP>".to_string(), stolen),
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
            },
            headline: Headline {
                share_stolen_stopped: Some(0.95),
                share_legit_payouts_held: Some(0.012),
                share_legit_logins_challenged: Some(0.01),
                worst_victims_at_detection: Some(3),
                campaigns_missed: 1,
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
        let chart =
            &html[chart_start..chart_start + html[chart_start..].find("</svg>").expect("end")];
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
}
