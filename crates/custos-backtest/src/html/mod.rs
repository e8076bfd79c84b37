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
//!
//! # One side or two
//!
//! A report is a comparison with one side. `Sides` is the one rule set of a
//! report, or the base and the candidate of a comparison, and every section
//! is written once, over it. With two sides a figure gets a column per side
//! and one for the change, a chart draws the base grey (and its lines
//! dashed), and lists are matched by key (a rule's id, a campaign's name) so
//! that a rule only one side has still gets its row. Where the two layouts
//! differ, the code branches and says why: a comparison leaves out the
//! charts of legitimate payouts and a few columns only a report has room
//! for, and gives logins and events a row per figure. The changed decisions
//! and their examples exist only in a comparison.
//!
//! # Files
//!
//! - `mod.rs`: the two entry points, the order of the sections, and `Sides`.
//! - `page.rs`: the document head with the style, the header, the
//!   navigation, and the frame every section shares.
//! - `sections.rs`: the sections, in page order.
//! - `breakdowns.rs`: the per-attack-class and per-cause sections.
//! - `tables.rs`: figures (`Measure`, `Better`, `Delta`) and the tables and
//!   cells that show them over the sides.
//! - `charts.rs`: the charts the page draws, then the SVG kit they are drawn
//!   with (scales, axes, legends and markers; line, daily bar, histogram and
//!   horizontal bar charts).
//! - `format.rs`: `escape`, `Px`, and the `fmt_*` and small `*_html` helpers.
//! - `style.css`: the page's style, included as it is.
//! - `tests.rs`: the unit tests.

mod breakdowns;
mod charts;
mod format;
mod page;
mod sections;
mod tables;
#[cfg(test)]
mod tests;

use crate::report::{Comparison, Report};
use breakdowns::{classes_section, honest_section};
use page::{header, nav, page_end, page_start, page_title};
use sections::{
    campaigns_section, changed_section, events_section, examples_section, headline_section,
    legit_section, logins_section, responses_section, rules_section, stolen_section,
};

/// The page's sections in order: id, link text, and whether only a
/// comparison has it.
const SECTIONS: &[(&str, &str, bool)] = &[
    ("headline", "Headline", false),
    ("changed", "Changed decisions", true),
    ("stolen", "Stolen money", false),
    ("classes", "Per attack class", false),
    ("legit", "Legitimate payouts", false),
    ("honest", "Honest cost", false),
    ("logins", "Logins", false),
    ("campaigns", "Campaigns", false),
    ("rules", "Rules", false),
    ("examples", "Examples", true),
    ("responses", "Responses", false),
    ("events", "Events", false),
];

/// Renders one rule set on one history as a self-contained HTML page.
pub fn render_report(report: &Report) -> String {
    render(Sides::Report(report))
}

/// Renders two rule sets on the same history side by side: base, candidate
/// and the change, with the events decided differently.
pub fn render_comparison(comparison: &Comparison) -> String {
    render(Sides::Comparison(comparison))
}

fn render(sides: Sides<'_>) -> String {
    // About the size of each page, so that the string seldom grows.
    let kilobytes = if sides.compared() { 96 } else { 64 };
    let mut out = String::with_capacity(kilobytes * 1024);
    page_start(&mut out, &page_title(sides));
    header(&mut out, sides);
    nav(&mut out, SECTIONS, sides.compared());
    out.push_str("<main class=\"wrap\">\n");
    headline_section(&mut out, sides);
    if let Sides::Comparison(comparison) = sides {
        changed_section(&mut out, &comparison.changed);
    }
    stolen_section(&mut out, sides);
    classes_section(&mut out, sides);
    legit_section(&mut out, sides);
    honest_section(&mut out, sides);
    logins_section(&mut out, sides);
    campaigns_section(&mut out, sides);
    rules_section(&mut out, sides);
    if let Sides::Comparison(comparison) = sides {
        examples_section(&mut out, &comparison.examples);
    }
    responses_section(&mut out, sides);
    events_section(&mut out, sides);
    out.push_str("</main>\n");
    page_end(&mut out);
    out
}

/// What a page shows: one rule set on a history, or two side by side. Each
/// section is written once over it (see "One side or two" above).
#[derive(Debug, Clone, Copy)]
enum Sides<'a> {
    Report(&'a Report),
    Comparison(&'a Comparison),
}

/// What one side is on the page, for its labels and colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The one rule set of a report.
    Only,
    Base,
    Candidate,
}

impl Role {
    /// The side's name in the page header and on the headline cards.
    fn name(self) -> &'static str {
        match self {
            Role::Only => "Rule set",
            Role::Base => "Base",
            Role::Candidate => "Candidate",
        }
    }
}

impl<'a> Sides<'a> {
    fn compared(self) -> bool {
        matches!(self, Sides::Comparison(_))
    }

    /// The base of a comparison; `None` on a report.
    fn base(self) -> Option<&'a Report> {
        match self {
            Sides::Report(_) => None,
            Sides::Comparison(comparison) => Some(&comparison.base),
        }
    }

    /// The report, or the candidate of a comparison: the side the page
    /// leads with, and draws in colour.
    fn lead(self) -> &'a Report {
        match self {
            Sides::Report(report) => report,
            Sides::Comparison(comparison) => &comparison.candidate,
        }
    }

    /// The side the history's own facts (its name, its span) are read from.
    fn first(self) -> &'a Report {
        self.base().unwrap_or(self.lead())
    }

    /// Every side in page order, the base first, with its role.
    fn each(self) -> impl Iterator<Item = (Role, &'a Report)> {
        let lead = match self {
            Sides::Report(report) => (Role::Only, report),
            Sides::Comparison(comparison) => (Role::Candidate, &comparison.candidate),
        };
        self.base()
            .map(|base| (Role::Base, base))
            .into_iter()
            .chain(std::iter::once(lead))
    }

    /// A list every side has (campaigns, rules) as rows of one entry per
    /// side, matched by `key`: the base's entries in their order, then
    /// those only the candidate has. A side without the entry has `None`.
    /// A report's rows are its entries, as they are.
    fn rows<T>(
        self,
        list: impl Fn(&'a Report) -> &'a [T],
        key: impl Fn(&T) -> &str,
    ) -> Vec<Vec<Option<&'a T>>> {
        let lead = list(self.lead());
        let Some(base) = self.base().map(&list) else {
            return lead.iter().map(|entry| vec![Some(entry)]).collect();
        };
        let mut rows: Vec<Vec<Option<&T>>> = base
            .iter()
            .map(|b| vec![Some(b), lead.iter().find(|c| key(c) == key(b))])
            .collect();
        rows.extend(
            lead.iter()
                .filter(|c| !base.iter().any(|b| key(b) == key(c)))
                .map(|c| vec![None, Some(c)]),
        );
        rows
    }

    /// One value per side, in page order.
    fn map<T>(self, mut f: impl FnMut(&'a Report) -> T) -> Vec<T> {
        self.each().map(|(_, report)| f(report)).collect()
    }
}
