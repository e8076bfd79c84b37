//! Figures and the tables that show them. A figure is typed ([`Measure`]),
//! so that its cell, and its change from base to candidate, are written the
//! same way in every table; and it knows which way is better ([`Better`]),
//! which colours the change.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::Sides;
use super::format::{
    DASH, difference, escape, fmt_count, fmt_hours, fmt_minor, fmt_money, fmt_rate, fmt_seconds,
    fmt_share, fmt_signed_count, sign, with_unit,
};
use crate::report::{Amounts, Report};

/// Which way a figure should move for the engine to be doing better; decides
/// the colour of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Better {
    Higher,
    Lower,
    /// Neither way is better by itself (e.g. events read, hits).
    Neither,
}

impl Better {
    pub(super) fn hint(self) -> &'static str {
        match self {
            Better::Higher => "\u{2191} higher is better",
            Better::Lower => "\u{2193} lower is better",
            Better::Neither => "",
        }
    }

    pub(super) fn class(self, direction: Ordering) -> &'static str {
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
pub(super) enum Measure {
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
pub(super) fn measure_html(measure: Measure, currency: &str, noun: &str) -> String {
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
pub(super) struct Delta {
    pub(super) text: String,
    pub(super) sub: Option<String>,
    pub(super) class: &'static str,
}

impl Delta {
    /// No change can be told (a side has no value).
    pub(super) fn none() -> Delta {
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
    pub(super) fn float(d: f64, decimals: usize, unit: &str, better: Better) -> Delta {
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

pub(super) fn measure_delta(
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

pub(super) fn delta_html(delta: &Delta) -> String {
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

pub(super) fn num_td(out: &mut String, html: &str) {
    let _ = write!(out, "<td class=\"num\">{html}</td>");
}

/// Reads one figure of a part of a report.
pub(super) type Getter<T> = fn(&T) -> Measure;

/// One row of a per-currency table: a label and how to read its figure.
pub(super) struct CurrencyRow<T> {
    pub(super) label: &'static str,
    pub(super) better: Better,
    pub(super) get: Getter<T>,
}

/// A row of figures that share no columns: a label and one value per side.
pub(super) struct FigureRow {
    label: String,
    values: Vec<Measure>,
    better: Better,
}

impl FigureRow {
    /// `get` reads the figure from each side.
    pub(super) fn new(
        label: impl Into<String>,
        sides: Sides<'_>,
        get: impl Fn(&Report) -> Measure,
        better: Better,
    ) -> Self {
        FigureRow {
            label: label.into(),
            values: sides.map(get),
            better,
        }
    }
}

/// Opens a table; `class` is a literal of this module (`""` for none).
pub(super) fn table_open_with(out: &mut String, class: &str) {
    let _ = writeln!(out, "<div class=\"table-wrap\"><table class=\"{class}\">");
}

pub(super) fn table_open(out: &mut String) {
    table_open_with(out, "");
}

pub(super) fn table_close(out: &mut String) {
    out.push_str("</tbody></table></div>\n");
}

/// Rows of `label | value`, for figures that have no columns to share.
pub(super) fn key_value_table(out: &mut String, rows: &[(String, String)]) {
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

/// Figures that share no columns: `label | value` on a report,
/// `label | base | candidate | change` in a comparison.
pub(super) fn figure_table(out: &mut String, compared: bool, rows: &[FigureRow]) {
    if !compared {
        let rows: Vec<(String, String)> = rows
            .iter()
            .flat_map(|row| {
                let label = &row.label;
                row.values
                    .iter()
                    .map(move |value| (label.clone(), measure_html(*value, "", "")))
            })
            .collect();
        key_value_table(out, &rows);
        return;
    }
    table_open(out);
    out.push_str(
        "<thead><tr><th></th><th class=\"num\">Base</th><th class=\"num\">Candidate</th>\
         <th class=\"num\">Change</th></tr></thead>\n<tbody>\n",
    );
    for row in rows {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", escape(&row.label));
        let values: Vec<Option<Measure>> = row.values.iter().copied().map(Some).collect();
        figure_cells(out, &values, ("", ""), row.better, false);
        out.push_str("</tr>\n");
    }
    table_close(out);
}

/// A figure's cells: its value on each side, then, on more than one side,
/// the change from the first to the last. A side without the figure (a
/// rule only one side has) shows a dash, and no change can be told.
/// `unit` is the currency and the noun of an amount (`("EUR",
/// "payouts")`); `group` starts a group of columns at the first cell.
pub(super) fn figure_cells(
    out: &mut String,
    values: &[Option<Measure>],
    unit: (&str, &str),
    better: Better,
    group: bool,
) {
    let (currency, noun) = unit;
    let compared = values.len() > 1;
    for (index, value) in values.iter().enumerate() {
        let html = value.map_or_else(|| DASH.to_string(), |m| measure_html(m, currency, noun));
        if group && compared && index == 0 {
            let _ = write!(out, "<td class=\"num gl\">{html}</td>");
        } else {
            num_td(out, &html);
        }
    }
    if let [first, .., last] = values {
        let delta = match (first, last) {
            (Some(b), Some(c)) => measure_delta(*b, *c, currency, noun, better),
            _ => Delta::none(),
        };
        delta_td(out, &delta);
    }
}

/// A column of a table over sides.
#[derive(Debug, Clone, Copy)]
pub(super) enum Column<'a> {
    /// One column whatever the sides (a name, an action); `num` aligns it
    /// as a number.
    Shared { label: &'a str, num: bool },
    /// One column per side, for what each side found (when it detected a
    /// campaign).
    PerSide(&'a str),
    /// A figure: one column per side, and the change when there are two.
    Figure(&'a str),
}

/// Opens a table over sides and writes its head. On a report the head is
/// one row; in a comparison a shared column spans two rows, and every other
/// column is a group with `Base`, `Candidate` (and `Change`) under it.
/// Labels are plain text (a currency code comes from data). `report_class`
/// is the table's class on a report (a literal of this module); a
/// comparison's tables are dense.
pub(super) fn sides_table_open(
    out: &mut String,
    compared: bool,
    report_class: &str,
    columns: &[Column<'_>],
) {
    table_open_with(out, if compared { "dense" } else { report_class });
    out.push_str("<thead><tr>");
    for column in columns {
        let _ = match (*column, compared) {
            (Column::Shared { label, num }, _) => write!(
                out,
                "<th{}{}>{}</th>",
                if compared { " rowspan=\"2\"" } else { "" },
                if num { " class=\"num\"" } else { "" },
                escape(label)
            ),
            (Column::PerSide(label), false) => write!(out, "<th>{}</th>", escape(label)),
            (Column::Figure(label), false) => {
                write!(out, "<th class=\"num\">{}</th>", escape(label))
            }
            (Column::PerSide(label), true) => write!(
                out,
                "<th colspan=\"2\" class=\"group gl\">{}</th>",
                escape(label)
            ),
            (Column::Figure(label), true) => write!(
                out,
                "<th colspan=\"3\" class=\"group gl\">{}</th>",
                escape(label)
            ),
        };
    }
    if compared {
        out.push_str("</tr>\n<tr>");
        for column in columns {
            match column {
                Column::Shared { .. } => {}
                Column::PerSide(_) => out.push_str("<th class=\"gl\">Base</th><th>Candidate</th>"),
                Column::Figure(_) => out.push_str(
                    "<th class=\"num gl\">Base</th><th class=\"num\">Candidate</th>\
                     <th class=\"num\">Change</th>",
                ),
            }
        }
    }
    out.push_str("</tr></thead>\n<tbody>\n");
}

/// The cells of a `Column::PerSide`, one per side, as markup; in a
/// comparison the first opens its group.
pub(super) fn side_cells(out: &mut String, cells_html: &[String]) {
    for (index, html) in cells_html.iter().enumerate() {
        let group = if index == 0 && cells_html.len() > 1 {
            " class=\"gl\""
        } else {
            ""
        };
        let _ = write!(out, "<td{group}>{html}</td>");
    }
}

/// Figures as rows and currencies as columns: there are few currencies and
/// many figures, and each figure reads across currencies. `per_side` holds
/// each side's figures by currency; a currency missing on one side counts
/// as zero there.
pub(super) fn currency_table<T: Default>(
    out: &mut String,
    per_side: &[&BTreeMap<String, T>],
    rows: &[CurrencyRow<T>],
    noun: &str,
) {
    let currencies: BTreeSet<&str> = per_side
        .iter()
        .flat_map(|figures| figures.keys())
        .map(String::as_str)
        .collect();
    let mut columns = vec![Column::Shared {
        label: "",
        num: false,
    }];
    columns.extend(currencies.iter().map(|currency| Column::Figure(currency)));
    sides_table_open(out, per_side.len() > 1, "fit", &columns);
    let nothing = T::default();
    for row in rows {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", row.label);
        for currency in &currencies {
            let values: Vec<Option<Measure>> = per_side
                .iter()
                .map(|figures| Some((row.get)(figures.get(*currency).unwrap_or(&nothing))))
                .collect();
            figure_cells(out, &values, (currency, noun), row.better, true);
        }
        out.push_str("</tr>\n");
    }
    table_close(out);
}
