//! The page frame: the document head with its inline style, the header that
//! says which history was replayed with which rules, the navigation, and the
//! frame every section shares.

use std::fmt::Write as _;

use super::Sides;
use super::format::{DASH, escape, fmt_count, fmt_time, rule_set_label};
use crate::report::EventCounts;

/// The page's whole style. System fonts only: nothing is fetched.
const STYLE: &str = include_str!("style.css");

pub(super) fn page_start(out: &mut String, title: &str) {
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

pub(super) fn page_end(out: &mut String) {
    out.push_str(
        "<footer class=\"wrap\">Written by <code>custos evaluate</code>. Money is in major \
         units (minor units / 100) per currency; shares are of the figure's own total; \
         \u{2014} means there was nothing to divide or nothing to show.</footer>\n\
         </body>\n</html>\n",
    );
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

fn kicker(sides: Sides<'_>) -> &'static str {
    if sides.compared() {
        "Custos backtest comparison"
    } else {
        "Custos backtest"
    }
}

/// The document's title, as plain text: `Custos backtest: default on
/// history.ndjson`.
pub(super) fn page_title(sides: Sides<'_>) -> String {
    format!(
        "{}: {} on {}",
        kicker(sides),
        sides.map(|report| report.rules.name.as_str()).join(" vs "),
        sides.first().input
    )
}

/// What was replayed with which rules.
pub(super) fn header(out: &mut String, sides: Sides<'_>) {
    let history = escape(name_or_dash(&sides.first().input));
    out.push_str("<header class=\"page\"><div class=\"wrap\">\n");
    let _ = writeln!(out, "<p class=\"kicker\">{}</p>", kicker(sides));
    let names = sides
        .map(|report| escape(name_or_dash(&report.rules.name)))
        .join(" <span class=\"vs\">vs</span> ");
    // A comparison's history has a line of its own below; a long file name
    // after two rule set names would crowd the heading.
    let on = match sides {
        Sides::Report(_) => format!(" on {history}"),
        Sides::Comparison(_) => String::new(),
    };
    let _ = writeln!(out, "<h1>{names}{on}</h1>\n<dl class=\"meta\">");
    meta_row(out, "History", &history);
    for (role, report) in sides.each() {
        meta_row(
            out,
            role.name(),
            &format!(
                "{} \u{00b7} {} rules",
                escape(&rule_set_label(&report.rules)),
                fmt_count(report.rules.rule_count as u64)
            ),
        );
    }
    meta_row(
        out,
        "Event time",
        &escape(&time_span(&sides.first().events)),
    );
    // A comparison counts the events of each side in its events section.
    if let Sides::Report(report) = sides {
        meta_row(out, "Events", &fmt_count(report.events.read));
    }
    out.push_str("</dl>\n");
    // Differences between two histories are not the rule sets' doing; say so
    // before anyone reads them as such.
    if let Sides::Comparison(comparison) = sides
        && comparison.base.input != comparison.candidate.input
    {
        let _ = writeln!(
            out,
            "<p class=\"warning\">The two reports replayed different histories ({} and {}): \
             the changes below mix rule changes with data changes.</p>",
            escape(&comparison.base.input),
            escape(&comparison.candidate.input)
        );
    }
    out.push_str("</div></header>\n");
}

/// Links to the sections the page has; `compared` adds those only a
/// comparison has. `sections` are literals of this module.
pub(super) fn nav(out: &mut String, sections: &[(&str, &str, bool)], compared: bool) {
    out.push_str("<nav class=\"toc\"><div class=\"wrap\">");
    for (id, label, comparison_only) in sections {
        if compared || !comparison_only {
            let _ = write!(out, "<a href=\"#{id}\">{label}</a>");
        }
    }
    out.push_str("</div></nav>\n");
}

/// Opens a section. `heading` and `lead` are literals of this module,
/// written as markup.
pub(super) fn section_start(out: &mut String, id: &str, heading: &str, lead: &str) {
    let _ = writeln!(out, "<section id=\"{id}\">\n<h2>{heading}</h2>");
    if !lead.is_empty() {
        let _ = writeln!(out, "<p class=\"lead\">{lead}</p>");
    }
}

pub(super) fn section_end(out: &mut String) {
    out.push_str("</section>\n");
}

pub(super) fn note(out: &mut String, text: &str) {
    let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(text));
}
