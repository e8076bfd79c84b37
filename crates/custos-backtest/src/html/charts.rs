//! The charts, as SVG written by hand: the page opens offline and runs no
//! script, so no charting library can draw them. The charts the page shows
//! come first, then the kit they are drawn with. The stolen-money and rule
//! charts are drawn over the sides, the base in grey; the charts of
//! legitimate payouts are a report's only.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::format::{DASH, Px, escape, fmt_axis, fmt_bound, fmt_count, fmt_share, rule_set_label};
use super::{Role, Sides};
use crate::report::{DayPoint, DelayBucket, LegitPayouts, RuleStats};

pub(super) const TITLE_STOLEN: &str = "Cumulative stolen value: attempted vs stopped";
pub(super) const TITLE_LEGIT_DAYS: &str = "Legitimate payouts and holds per day";
pub(super) const TITLE_DELAYS: &str = "Hold-to-release delay of legitimate payouts";
pub(super) const TITLE_RULES: &str = "Precision and recall per rule";
pub(super) const TITLE_STOLEN_COMPARED: &str =
    "Cumulative stolen value: attempted vs stopped, base vs candidate";
pub(super) const TITLE_RULES_COMPARED: &str = "Precision and recall per rule, base vs candidate";

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

/// The days of a chart, and each side's point on each day. A report's days
/// are drawn as they are; two sides' are matched by date: the same history
/// gives the same days, but the charts must not misalign if it did not.
fn aligned_days<'a>(sides: Sides<'a>) -> (Vec<&'a str>, Vec<Vec<Option<&'a DayPoint>>>) {
    let comparison = match sides {
        Sides::Report(report) => {
            let labels = report.days.iter().map(|d| d.day.as_str()).collect();
            return (labels, vec![report.days.iter().map(Some).collect()]);
        }
        Sides::Comparison(comparison) => comparison,
    };
    type Pair<'a> = (Option<&'a DayPoint>, Option<&'a DayPoint>);
    let mut days: BTreeMap<&str, Pair<'a>> = BTreeMap::new();
    for day in &comparison.base.days {
        days.entry(day.day.as_str()).or_default().0 = Some(day);
    }
    for day in &comparison.candidate.days {
        days.entry(day.day.as_str()).or_default().1 = Some(day);
    }
    let labels = days.keys().copied().collect();
    let base = days.values().map(|(b, _)| *b).collect();
    let candidate = days.values().map(|(_, c)| *c).collect();
    (labels, vec![base, candidate])
}

pub(super) fn stolen_day_chart(out: &mut String, sides: Sides<'_>) {
    let (labels, per_side) = aligned_days(sides);
    let of = |side: &[Option<&DayPoint>], field: fn(&DayPoint) -> u64| -> Vec<u64> {
        side.iter().map(|day| day.map_or(0, field)).collect()
    };

    let attempted: Vec<Vec<f64>> = per_side
        .iter()
        .map(|side| cumulative(of(side, |d| d.stolen_attempted).into_iter()))
        .collect();
    let mut series = Vec::new();
    // On one history the attacker tries the same payments whatever the rules;
    // a second "attempted" line would only show if that did not hold.
    if let [base, .., candidate] = attempted.as_slice()
        && candidate != base
    {
        series.push(Series {
            label: "Attempted, base".to_string(),
            color: RED,
            dashed: false,
            values: base.clone(),
        });
        series.push(Series {
            label: "Attempted, candidate".to_string(),
            color: AMBER,
            dashed: false,
            values: candidate.clone(),
        });
    } else if let Some(first) = attempted.first() {
        series.push(Series {
            label: "Attempted".to_string(),
            color: RED,
            dashed: false,
            values: first.clone(),
        });
    }
    for ((role, report), side) in sides.each().zip(&per_side) {
        let (label, color, dashed) = match role {
            Role::Only => ("Stopped".to_string(), GREEN, false),
            Role::Base => (
                format!("Stopped, base: {}", rule_set_label(&report.rules)),
                GREY_DARK,
                true,
            ),
            Role::Candidate => (
                format!("Stopped, candidate: {}", rule_set_label(&report.rules)),
                GREEN,
                false,
            ),
        };
        series.push(Series {
            label,
            color,
            dashed,
            values: cumulative(of(side, |d| d.stolen_stopped).into_iter()),
        });
    }

    // Victims are the ground truth's, the same whatever the rules: one lane.
    let mut lanes = vec![Lane {
        label: "New victims".to_string(),
        noun: "new victims",
        color: RED,
        shape: Shape::Dot,
        counts: per_side
            .first()
            .map(|side| of(side, |d| d.new_victims))
            .unwrap_or_default(),
        guide: false,
    }];
    for (role, side) in sides.each().map(|(role, _)| role).zip(&per_side) {
        // Guides run up from the alerts of the side in colour only.
        let (label, noun, color, guide) = match role {
            Role::Only => ("Campaign alerts", "campaign alerts", PURPLE, true),
            Role::Base => ("Alerts, base", "campaign alerts (base)", GREY_DARK, false),
            Role::Candidate => (
                "Alerts, candidate",
                "campaign alerts (candidate)",
                PURPLE,
                true,
            ),
        };
        lanes.push(Lane {
            label: label.to_string(),
            noun,
            color,
            shape: Shape::Diamond,
            counts: of(side, |d| d.campaign_alerts),
            guide,
        });
    }
    let (title, desc) = match sides {
        Sides::Report(_) => (
            TITLE_STOLEN,
            "Running totals per day of event time of the value paid toward attackers \
             and of the value stopped, summed over currencies, with the days new \
             victims were taken over and the days campaigns were alerted on.",
        ),
        Sides::Comparison(_) => (
            TITLE_STOLEN_COMPARED,
            "Running totals per day of the value paid toward attackers, and of the \
             value each rule set stopped, summed over currencies, with new victims and \
             each rule set's campaign alerts.",
        ),
    };
    line_chart(
        out,
        &LineChart {
            id: "chart-stolen",
            title,
            desc,
            y_caption: "major units, all currencies",
            days: &labels,
            series: &series,
            lanes: &lanes,
        },
    );
}

pub(super) fn legit_day_chart(out: &mut String, days: &[DayPoint]) {
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
pub(super) fn merged_delay_histogram(payouts: &BTreeMap<String, LegitPayouts>) -> Vec<DelayBucket> {
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
pub(super) fn bucket_labels(buckets: &[DelayBucket]) -> Vec<String> {
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

pub(super) fn delay_chart(out: &mut String, payouts: &BTreeMap<String, LegitPayouts>) {
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

/// Precision and recall of every rule that fired on some side. `rows` are
/// the rules matched across sides, one entry per side.
pub(super) fn rules_chart(out: &mut String, sides: Sides<'_>, rows: &[Vec<Option<&RuleStats>>]) {
    let hit = |r: &Option<&RuleStats>| r.is_some_and(|r| r.hits > 0);
    let rows: Vec<HRow> = rows
        .iter()
        .filter(|row| row.iter().any(hit))
        .filter_map(|row| {
            let rule = row.iter().rev().find_map(|r| *r)?;
            let of = |figure: fn(&RuleStats) -> Option<f64>| -> Vec<Option<f64>> {
                row.iter().map(|r| r.and_then(figure)).collect()
            };
            Some(HRow {
                label: rule_chart_label(rule),
                full: rule.id.clone(),
                values: vec![of(|r| r.precision), of(|r| r.recall)],
            })
        })
        .collect();
    // A report's bars take each figure's colour; in a comparison the colour
    // says which side a bar is, the base grey.
    let panel = |heading: &'static str, color: &'static str| HPanel {
        heading,
        series: sides
            .each()
            .map(|(role, report)| match role {
                Role::Only => (heading.to_string(), color),
                Role::Base => (format!("Base: {}", rule_set_label(&report.rules)), GREY),
                Role::Candidate => (
                    format!("Candidate: {}", rule_set_label(&report.rules)),
                    BLUE,
                ),
            })
            .collect(),
    };
    let panels = [panel("Precision", BLUE), panel("Recall", TEAL)];
    let (title, desc, empty) = match sides {
        Sides::Report(_) => (
            TITLE_RULES,
            "Precision and recall of each rule that fired, as horizontal bars from 0% \
             to 100%.",
            "No rule fired on this history.",
        ),
        Sides::Comparison(_) => (
            TITLE_RULES_COMPARED,
            "Precision and recall of each rule that fired under either rule set, base \
             bar above candidate bar.",
            "No rule fired on this history under either rule set.",
        ),
    };
    hbar_chart(
        out,
        &HBarChart {
            id: "chart-rules",
            title,
            desc,
            empty,
            panels: &panels,
            rows: &rows,
        },
    );
}

// ---------------------------------------------------------------------------
// The SVG kit
// ---------------------------------------------------------------------------

/// Every chart is drawn in a 960-unit-wide view box and scaled to the page
/// by CSS, so the geometry below is in fixed units.
const CHART_W: f64 = 960.0;
const CHART_RIGHT: f64 = 40.0;
/// Room left of the plot for tick labels and marker-lane names.
const DAY_CHART_LEFT: f64 = 132.0;
const LANE_H: f64 = 22.0;

/// A y scale from 0 to a round maximum, in round steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scale {
    pub(super) max: f64,
    pub(super) step: f64,
}

impl Scale {
    /// About `ticks` steps up to at least `max_value`; steps of 1, 2, 2.5 or
    /// 5 times a power of ten (whole steps for counts). A maximum of zero or
    /// less gives the scale 0..1, so an empty chart still has an axis.
    pub(super) fn new(max_value: f64, ticks: usize, whole: bool) -> Scale {
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

    pub(super) fn ticks(self) -> impl Iterator<Item = f64> {
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
