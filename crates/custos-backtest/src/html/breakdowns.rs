//! The two breakdowns a policy is judged by against attackers who adapt:
//! stolen value per attack class, and the honest sellers' friction per
//! cause (the rule that caused it). Each class and each rule is a row, over
//! the sides, so a comparison shows which class a change helped and which
//! rule a change made costlier.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::Sides;
use super::format::{escape, fmt_count, fmt_share, id_html};
use super::page::{note, section_end, section_start};
use super::tables::{Better, Column, Measure, figure_cells, sides_table_open, table_close};
use crate::report::{CauseTally, ClassStolen, HonestCost, Report};

const CLASSES_LEAD: &str = "Stolen money per attack class (the scenario of the ground \
     truth). <em>Stopped</em> is blocked, held and never released, or prevented: the \
     attacker failed a step-up, so his session ended before the destination change or the \
     payout it needed. Prevented money is shown again on its own.";

pub(super) fn classes_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "classes", "Per attack class", CLASSES_LEAD);
    let per_side = sides.map(|report| &report.stolen_by_class);
    let classes: BTreeSet<&str> = per_side
        .iter()
        .flat_map(|classes| classes.keys())
        .map(String::as_str)
        .collect();
    if classes.is_empty() {
        note(out, "No stolen money in this history.");
        section_end(out);
        return;
    }
    let compared = sides.compared();
    sides_table_open(
        out,
        compared,
        "fit",
        &[
            Column::Shared {
                label: "Attack class",
                num: false,
            },
            Column::Figure("Payouts attempted"),
            Column::Figure("Value stopped"),
            Column::Figure("Of it, prevented by a step-up"),
        ],
    );
    type ClassFigure = fn(&ClassStolen) -> Measure;
    let figures: [(ClassFigure, Better); 3] = [
        (
            |c| Measure::Count(c.currencies.values().map(|m| m.attempted.count).sum()),
            Better::Neither,
        ),
        (|c| Measure::Share(c.share_stopped), Better::Higher),
        (
            |c| Measure::Share(c.share_prevented_by_step_up),
            Better::Neither,
        ),
    ];
    for class in classes {
        let _ = write!(
            out,
            "<tr><th scope=\"row\"><code>{}</code></th>",
            escape(class)
        );
        for (get, better) in figures {
            let values: Vec<Option<Measure>> = per_side
                .iter()
                .map(|classes| classes.get(class).map(get))
                .collect();
            figure_cells(out, &values, ("", ""), better, true);
        }
        out.push_str("</tr>\n");
    }
    table_close(out);
    section_end(out);
}

const HONEST_LEAD: &str = "What the policy cost honest sellers, per kind of friction, and \
     the rules that caused it. <em>By cause</em> puts each event under the strongest rule \
     that asked for that much (these add up to the total); <em>any rule</em> counts every \
     rule that asked, so an event two rules held counts under both.";

pub(super) fn honest_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "honest", "Honest cost per cause", HONEST_LEAD);
    type Kind = fn(&HonestCost) -> &CauseTally;
    let kinds: [(&str, &str, Kind); 3] = [
        ("Payouts held", "payouts", |h| &h.payouts_held),
        (
            "Payout-destination changes held or reviewed",
            "changes",
            |h| &h.destination_changes_held,
        ),
        ("Logins challenged", "logins", |h| &h.logins_challenged),
    ];
    for (heading, noun, kind) in kinds {
        let tallies: Vec<&CauseTally> = sides.map(|report: &Report| kind(&report.honest_cost));
        let _ = writeln!(out, "<h3>{heading}</h3>");
        let summary: Vec<String> = tallies
            .iter()
            .map(|t| {
                format!(
                    "{} of {} {noun} ({})",
                    fmt_count(t.hit),
                    fmt_count(t.total),
                    fmt_share(t.share)
                )
            })
            .collect();
        let _ = writeln!(out, "<p>{}</p>", escape(&summary.join(" \u{2192} ")));
        cause_table(out, sides.compared(), &tallies);
    }
    section_end(out);
}

fn cause_table(out: &mut String, compared: bool, tallies: &[&CauseTally]) {
    let rules: BTreeSet<&str> = tallies
        .iter()
        .flat_map(|t| t.by_cause.keys().chain(t.by_rule.keys()))
        .map(String::as_str)
        .collect();
    if rules.is_empty() {
        note(out, "None.");
        return;
    }
    sides_table_open(
        out,
        compared,
        "fit",
        &[
            Column::Shared {
                label: "Rule",
                num: false,
            },
            Column::Figure("By cause"),
            Column::Figure("Any rule"),
        ],
    );
    let count = |map: &BTreeMap<String, u64>, rule: &str| {
        Some(Measure::Count(map.get(rule).copied().unwrap_or(0)))
    };
    for rule in rules {
        let _ = write!(
            out,
            "<tr><th scope=\"row\" class=\"rule\"><code>{}</code></th>",
            id_html(rule)
        );
        let by_cause: Vec<Option<Measure>> =
            tallies.iter().map(|t| count(&t.by_cause, rule)).collect();
        figure_cells(out, &by_cause, ("", ""), Better::Lower, true);
        let by_rule: Vec<Option<Measure>> =
            tallies.iter().map(|t| count(&t.by_rule, rule)).collect();
        figure_cells(out, &by_rule, ("", ""), Better::Lower, true);
        out.push_str("</tr>\n");
    }
    table_close(out);
}
