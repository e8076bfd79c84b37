//! Text and numbers as the page writes them, and the two rules that keep
//! data from turning into markup: `escape` for every data string, `Px` for
//! every number in an SVG attribute. Functions named `fmt_*` return plain
//! text, escaped where it is written; functions named `*_html` return
//! markup whose data is already escaped.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

use crate::report::RulesUsed;

/// What the page shows for a figure that has no value (`None`).
pub(super) const DASH: &str = "\u{2014}";
/// The minus sign: as wide as the plus, so signed changes line up.
const MINUS: &str = "\u{2212}";

/// Escapes text for HTML (and SVG) text and quoted attribute values.
pub(super) fn escape(text: &str) -> String {
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

/// An SVG coordinate: one decimal, and 0 for anything not finite, so that no
/// input can put `NaN` or `inf` into the document.
pub(super) struct Px(pub(super) f64);

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

/// An id, escaped, with a break opportunity after each separator: long
/// snake_case rule ids then wrap between words in narrow columns instead of
/// mid-word.
pub(super) fn id_html(id: &str) -> String {
    let mut html = String::with_capacity(id.len() + 16);
    for c in id.chars() {
        html.push_str(&escape(c.encode_utf8(&mut [0; 4])));
        if matches!(c, '_' | '.' | '-' | '/' | ':') {
            html.push_str("<wbr>");
        }
    }
    html
}

/// A rule set as `name (dir)`, or `name (built-in)` for the default rules.
pub(super) fn rule_set_label(rules: &RulesUsed) -> String {
    match &rules.dir {
        Some(dir) => format!("{} ({dir})", rules.name),
        None => format!("{} (built-in)", rules.name),
    }
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

pub(super) fn fmt_count(n: u64) -> String {
    group_thousands(u128::from(n))
}

/// Minor units as major units with two decimals: `1234567` → `12,345.67`.
/// Integer arithmetic, so no amount is ever rounded.
pub(super) fn fmt_minor(minor: u128) -> String {
    format!("{}.{:02}", group_thousands(minor / 100), minor % 100)
}

/// `1234567, "EUR"` → `12,345.67 EUR`.
pub(super) fn fmt_money(minor: u64, currency: &str) -> String {
    with_unit(fmt_minor(u128::from(minor)), currency)
}

pub(super) fn with_unit(number: String, unit: &str) -> String {
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

/// A share in `[0, 1]` as a percentage with two decimals; `None` (and
/// anything not finite) as a dash.
pub(super) fn fmt_share(share: Option<f64>) -> String {
    match share {
        Some(s) if s.is_finite() => format!("{:.2}%", s * 100.0),
        _ => DASH.to_string(),
    }
}

pub(super) fn fmt_hours(hours: Option<f64>) -> String {
    match hours {
        Some(h) if h.is_finite() => format!("{h:.1} h"),
        _ => DASH.to_string(),
    }
}

pub(super) fn fmt_seconds(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{seconds:.1} s")
    } else {
        DASH.to_string()
    }
}

pub(super) fn fmt_rate(per_second: f64) -> String {
    if per_second.is_finite() && per_second >= 0.0 {
        // Saturates at u64::MAX, far beyond any real rate.
        format!("{} events/s", fmt_count(per_second.round() as u64))
    } else {
        DASH.to_string()
    }
}

pub(super) fn fmt_time(time: Option<&str>) -> String {
    time.map_or_else(|| DASH.to_string(), str::to_string)
}

pub(super) fn share_of(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

pub(super) fn sign(direction: Ordering) -> &'static str {
    match direction {
        Ordering::Greater => "+",
        Ordering::Less => MINUS,
        Ordering::Equal => "",
    }
}

/// `candidate - base`, exactly.
pub(super) fn difference(base: u64, candidate: u64) -> i128 {
    i128::from(candidate) - i128::from(base)
}

pub(super) fn fmt_signed_count(d: i128) -> String {
    format!("{}{}", sign(d.cmp(&0)), group_thousands(d.unsigned_abs()))
}

/// Compact axis labels: `0`, `250`, `1.5k`, `2.25M`.
pub(super) fn fmt_axis(value: f64) -> String {
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
pub(super) fn fmt_bound(hours: f64) -> String {
    if !hours.is_finite() {
        return "?".to_string();
    }
    let text = format!("{hours:.1}");
    text.trim_end_matches(".0").to_string()
}

/// A time kept on one line: a date broken at its hyphens is hard to read.
pub(super) fn time_html(time: &str) -> String {
    format!("<span class=\"nowrap\">{}</span>", escape(time))
}

/// Actions from lightest to strongest, the order the report lists them in;
/// unknown actions after them, alphabetically.
pub(super) fn action_rank(action: &str) -> Option<u8> {
    match action {
        "allow" => Some(0),
        "challenge" => Some(1),
        "review" => Some(2),
        "hold" => Some(3),
        "block" => Some(4),
        _ => None,
    }
}

pub(super) fn actions_in_order<'a>(actions: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut ordered: Vec<&str> = actions.collect::<BTreeSet<_>>().into_iter().collect();
    ordered.sort_by_key(|a| (action_rank(a).unwrap_or(u8::MAX), *a));
    ordered
}

/// An action as a coloured tag. The class comes from a fixed list, never
/// from the data.
pub(super) fn action_html(action: &str) -> String {
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
