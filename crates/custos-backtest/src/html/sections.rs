//! The sections of the page: those every page has, in page order, then the
//! two only a comparison has (what changed, and examples of it).

use std::cmp::Ordering;
use std::fmt::Write as _;

use super::charts::{delay_chart, legit_day_chart, rules_chart, stolen_day_chart};
use super::format::{
    DASH, action_html, action_rank, actions_in_order, escape, fmt_count, fmt_rate, fmt_seconds,
    fmt_share, fmt_time, id_html, share_of, time_html,
};
use super::page::{note, section_end, section_start};
use super::tables::{
    Better, Column, CurrencyRow, FigureRow, Getter, Measure, currency_table, delta_html,
    figure_cells, figure_table, key_value_table, measure_delta, measure_html, num_td, side_cells,
    sides_table_open, table_close, table_open, table_open_with,
};
use super::{Role, Sides};
use crate::report::{
    CampaignDetection, ChangedDecisions, ChangedExample, EventCounts, Headline, LegitPayouts,
    Logins, Report, RuleStats, StolenMoney,
};

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

pub(super) fn headline_section(out: &mut String, sides: Sides<'_>) {
    let lead = match sides {
        Sides::Report(_) => {
            "The figures the engine is judged by, against the ground truth of the history."
        }
        Sides::Comparison(_) => {
            "The figures the engine is judged by, for both rule sets. The change is green \
             when the candidate does better, red when it does worse."
        }
    };
    section_start(out, "headline", "Headline", lead);
    out.push_str("<div class=\"cards\">\n");
    let figures = |report: &Report| headline_figures(&report.headline, report.campaigns.len());
    // The base's figure for each of the lead's; none on a report.
    let mut base_figures = sides.base().map(figures).into_iter().flatten();
    for figure in figures(sides.lead()) {
        let flag = if figure.flagged { " flag" } else { "" };
        let _ = write!(
            out,
            "<div class=\"card{flag}\"><div class=\"label\">{}</div>",
            figure.label
        );
        match base_figures.next() {
            None => {
                let _ = write!(
                    out,
                    "<div class=\"value\">{}</div>",
                    measure_html(figure.value, "", "")
                );
            }
            Some(base) => {
                let delta = measure_delta(base.value, figure.value, "", "", figure.better);
                let _ = write!(
                    out,
                    "<div class=\"versus\"><div class=\"base\"><span class=\"who\">{}</span>\
                     <span class=\"v\">{}</span></div><div><span class=\"who\">{}</span>\
                     <span class=\"v\">{}</span></div></div>\
                     <div class=\"delta {}\">{}</div>",
                    Role::Base.name(),
                    measure_html(base.value, "", ""),
                    Role::Candidate.name(),
                    measure_html(figure.value, "", ""),
                    delta.class,
                    delta_html(&delta)
                );
            }
        }
        let _ = writeln!(
            out,
            "<div class=\"hint\">{}</div><div class=\"dir\">{}</div></div>",
            escape(&figure.hint),
            figure.better.hint()
        );
    }
    out.push_str("</div>\n");
    section_end(out);
}

// ---------------------------------------------------------------------------
// Stolen money
// ---------------------------------------------------------------------------

fn stolen_rows() -> [CurrencyRow<StolenMoney>; 9] {
    [
        CurrencyRow {
            label: "Attempted",
            better: Better::Neither,
            get: |s| Measure::Amount(s.attempted),
        },
        CurrencyRow {
            label: "Stopped",
            better: Better::Higher,
            get: |s| Measure::Amount(s.stopped),
        },
        CurrencyRow {
            label: "Share stopped",
            better: Better::Higher,
            get: |s| Measure::Share(s.share_stopped),
        },
        CurrencyRow {
            label: "Blocked",
            better: Better::Higher,
            get: |s| Measure::Amount(s.blocked),
        },
        CurrencyRow {
            label: "Prevented by a failed step-up",
            better: Better::Higher,
            get: |s| Measure::Amount(s.prevented_by_step_up),
        },
        CurrencyRow {
            label: "Held, never released",
            better: Better::Higher,
            get: |s| Measure::Amount(s.held),
        },
        CurrencyRow {
            label: "Held, then released",
            better: Better::Lower,
            get: |s| Measure::Amount(s.held_then_released),
        },
        CurrencyRow {
            label: "Paid (not held)",
            better: Better::Lower,
            get: |s| Measure::Amount(s.paid),
        },
        CurrencyRow {
            label: "Of which loans",
            better: Better::Neither,
            get: |s| Measure::Amount(s.loans),
        },
    ]
}

const STOLEN_LEAD: &str = "Payouts and loan disbursements to destinations an attacker set. \
     <em>Stopped</em> is blocked, held and never released, or prevented (the attacker failed \
     a step-up and his session ended before it); money held and then released was paid, \
     only late.";

pub(super) fn stolen_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "stolen", "Stolen money", STOLEN_LEAD);
    stolen_day_chart(out, sides);
    out.push_str("<h3>Per currency</h3>\n");
    let stolen = sides.map(|report| &report.stolen);
    if stolen.iter().all(|figures| figures.is_empty()) {
        note(out, "No payment in this history went to an attacker.");
    } else {
        currency_table(out, &stolen, &stolen_rows(), "payments");
    }
    section_end(out);
}

// ---------------------------------------------------------------------------
// Legitimate payouts
// ---------------------------------------------------------------------------

fn legit_rows() -> [CurrencyRow<LegitPayouts>; 7] {
    [
        CurrencyRow {
            label: "Total",
            better: Better::Neither,
            get: |p| Measure::Amount(p.total),
        },
        CurrencyRow {
            label: "Held (hold or block)",
            better: Better::Lower,
            get: |p| Measure::Amount(p.held),
        },
        CurrencyRow {
            label: "Share held (by count)",
            better: Better::Lower,
            get: |p| Measure::Share(p.share_held),
        },
        CurrencyRow {
            label: "Released",
            better: Better::Neither,
            get: |p| Measure::Amount(p.released),
        },
        CurrencyRow {
            label: "Never released",
            better: Better::Lower,
            get: |p| Measure::Amount(p.never_released),
        },
        CurrencyRow {
            label: "Median delay to release",
            better: Better::Lower,
            get: |p| Measure::Hours(p.median_delay_hours),
        },
        CurrencyRow {
            label: "p90 delay to release",
            better: Better::Lower,
            get: |p| Measure::Hours(p.p90_delay_hours),
        },
    ]
}

const LEGIT_LEAD: &str = "Payouts and loan disbursements to sellers' own destinations: the \
     friction honest sellers felt. Delays run from the hold to its release.";

pub(super) fn legit_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "legit", "Legitimate payouts", LEGIT_LEAD);
    // The charts are drawn for one rule set: a comparison shows the table
    // alone, where each figure has its change, rather than bars of two
    // sides crowding each day and each delay.
    if let Sides::Report(report) = sides {
        legit_day_chart(out, &report.days);
        out.push_str("<h3>Per currency</h3>\n");
    }
    let payouts = sides.map(|report| &report.legit_payouts);
    if payouts.iter().all(|figures| figures.is_empty()) {
        note(out, "No legitimate payout in this history.");
    } else {
        currency_table(out, &payouts, &legit_rows(), "payouts");
    }
    if let Sides::Report(report) = sides {
        delay_chart(out, &report.legit_payouts);
    }
    section_end(out);
}

// ---------------------------------------------------------------------------
// Logins and campaigns
// ---------------------------------------------------------------------------

const LOGINS_LEAD: &str = "Successful logins, and those answered with a challenge or \
     stronger. Challenging owners is friction; challenging attackers is the point.";

pub(super) fn logins_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "logins", "Logins", LOGINS_LEAD);
    match sides {
        // One rule set reads best as owners against attackers, each figure
        // across; two need a column per side and the change, so there each
        // figure takes a row.
        Sides::Report(report) => logins_table(out, &report.logins),
        Sides::Comparison(_) => figure_table(out, true, &login_rows(sides)),
    }
    section_end(out);
}

fn logins_table(out: &mut String, logins: &Logins) {
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
}

fn login_rows(sides: Sides<'_>) -> [FigureRow; 6] {
    use Measure::{Count, Share};
    [
        FigureRow::new(
            "Owners' logins",
            sides,
            |r| Count(r.logins.legit),
            Better::Neither,
        ),
        FigureRow::new(
            "Owners' logins challenged",
            sides,
            |r| Count(r.logins.legit_challenged),
            Better::Lower,
        ),
        FigureRow::new(
            "Share of owners' logins challenged",
            sides,
            |r| Share(r.logins.share_legit_challenged),
            Better::Lower,
        ),
        FigureRow::new(
            "Attackers' logins",
            sides,
            |r| Count(r.logins.attacker),
            Better::Neither,
        ),
        FigureRow::new(
            "Attackers' logins challenged",
            sides,
            |r| Count(r.logins.attacker_challenged),
            Better::Higher,
        ),
        FigureRow::new(
            "Share of attackers' logins challenged",
            sides,
            |r| Share(r.logins.share_attacker_challenged),
            Better::Higher,
        ),
    ]
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

fn campaign_name_html(campaign: &CampaignDetection) -> String {
    format!(
        "{}<span class=\"sub\">{}</span>",
        escape(&campaign.campaign),
        escape(&campaign.scenario)
    )
}

pub(super) fn campaigns_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "campaigns", "Campaign detection", CAMPAIGNS_LEAD);
    // Campaigns are the ground truth, the same on both sides; match them by
    // name and keep any only one side has.
    let rows = sides.rows(|report| &report.campaigns, |c| &c.campaign);
    if rows.is_empty() {
        note(out, "The history's ground truth has no campaign.");
        section_end(out);
        return;
    }
    let compared = sides.compared();
    let shared = |label| Column::Shared { label, num: false };
    let mut columns = vec![
        shared("Campaign"),
        Column::Shared {
            label: "Victims",
            num: true,
        },
    ];
    // A report has room for when each campaign started and what Custos
    // called it; a comparison needs that room for its second side.
    if !compared {
        columns.push(shared("Started"));
    }
    columns.push(Column::PerSide("Detected"));
    if !compared {
        columns.push(shared("Detected as"));
    }
    columns.extend([
        Column::Figure("Delay"),
        Column::Figure("Victims at detection"),
        Column::Figure("Victims linked"),
    ]);
    sides_table_open(out, compared, "", &columns);
    for row in &rows {
        let Some(named) = row.iter().rev().find_map(|c| *c) else {
            continue;
        };
        // A report marks a missed campaign's row; in a comparison each
        // side's detected cell says it.
        let row_class = if !compared && named.detected_at.is_none() {
            " class=\"missed\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{row_class}><th scope=\"row\">{}</th>",
            campaign_name_html(named)
        );
        num_td(out, &fmt_count(named.victims));
        if !compared {
            let _ = write!(
                out,
                "<td>{}</td>",
                named
                    .started_at
                    .as_deref()
                    .map_or_else(|| DASH.to_string(), time_html)
            );
        }
        let detected: Vec<String> = row
            .iter()
            .map(|c| c.map_or_else(|| DASH.to_string(), detected_html))
            .collect();
        side_cells(out, &detected);
        if !compared {
            let _ = write!(
                out,
                "<td>{}</td>",
                named.detected_as.as_deref().map_or_else(
                    || DASH.to_string(),
                    |id| format!("<code>{}</code>", escape(id))
                )
            );
        }
        let figures: [(Getter<CampaignDetection>, Better); 3] = [
            (|x| Measure::Hours(x.delay_hours), Better::Lower),
            (
                |x| Measure::MaybeCount(x.victims_at_detection),
                Better::Lower,
            ),
            (|x| Measure::Count(x.victims_linked), Better::Higher),
        ];
        for (get, better) in figures {
            let values: Vec<Option<Measure>> = row.iter().map(|c| c.map(get)).collect();
            figure_cells(out, &values, ("", ""), better, true);
        }
        out.push_str("</tr>\n");
    }
    table_close(out);
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

pub(super) fn rules_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "rules", "Rules", RULES_LEAD);
    let rows = sides.rows(|report| &report.rules_hit, |rule| &rule.id);
    rules_chart(out, sides, &rows);
    out.push_str("<h3>All rules</h3>\n");
    if rows.is_empty() {
        let none = match sides {
            Sides::Report(_) => "The rule set has no rule.",
            Sides::Comparison(_) => "Neither rule set has a rule.",
        };
        note(out, none);
        section_end(out);
        return;
    }
    let compared = sides.compared();
    let shared = |label| Column::Shared { label, num: false };
    let mut columns = vec![shared("Rule"), shared("Action")];
    // A report gives the event types a column; a comparison, short of room,
    // lists them under the rule's id.
    if !compared {
        columns.push(shared("Event types"));
    }
    columns.extend([
        Column::Figure("Hits"),
        Column::Figure("Fraud hits"),
        Column::Figure("Precision"),
        Column::Figure("Recall"),
    ]);
    sides_table_open(out, compared, "", &columns);
    for row in &rows {
        let Some(rule) = row.iter().rev().find_map(|r| *r) else {
            continue;
        };
        let presence = match row.as_slice() {
            [None, Some(_)] => "<span class=\"badge added\">new</span>",
            [Some(_), None] => "<span class=\"badge removed\">removed</span>",
            _ => "",
        };
        let shadow = if row.iter().flatten().any(|r| r.shadow) {
            SHADOW_BADGE
        } else {
            ""
        };
        // Rules that never fired are listed (a dead rule is worth knowing
        // about) but dimmed.
        let idle = row.iter().all(|r| r.is_none_or(|r| r.hits == 0));
        let (events_sub, events_td) = if compared {
            let sub = format!(
                "<span class=\"sub\">{}</span>",
                escape(&rule.events.join(", "))
            );
            (sub, String::new())
        } else {
            let td = format!("<td>{}</td>", event_types_html(&rule.events));
            (String::new(), td)
        };
        let _ = write!(
            out,
            "<tr{}><th scope=\"row\" class=\"rule\"><code>{}</code>{presence}{shadow}\
             {events_sub}</th><td>{}</td>{events_td}",
            if idle { " class=\"idle\"" } else { "" },
            id_html(&rule.id),
            rule_action_html(row)
        );
        let figures: [(Getter<RuleStats>, Better); 3] = [
            (|r| Measure::Count(r.hits), Better::Neither),
            (|r| Measure::Count(r.fraud_hits), Better::Higher),
            (|r| Measure::Share(r.precision), Better::Higher),
        ];
        for (get, better) in figures {
            let values: Vec<Option<Measure>> = row.iter().map(|r| r.map(get)).collect();
            figure_cells(out, &values, ("", ""), better, true);
        }
        // On a report the recall says what it is a share of; a comparison
        // has no room for it.
        if compared {
            let values: Vec<Option<Measure>> = row
                .iter()
                .map(|r| r.map(|r| Measure::Share(r.recall)))
                .collect();
            figure_cells(out, &values, ("", ""), Better::Higher, true);
        } else {
            num_td(
                out,
                &format!(
                    "{}<span class=\"sub\">of {} fraud events</span>",
                    fmt_share(rule.recall),
                    fmt_count(rule.fraud_events)
                ),
            );
        }
        out.push_str("</tr>\n");
    }
    table_close(out);
    section_end(out);
}

/// A rule's action, or its change from base to candidate.
fn rule_action_html(row: &[Option<&RuleStats>]) -> String {
    match row {
        [Some(b), Some(c)] if b.action != c.action => format!(
            "{} \u{2192} {}",
            action_html(&b.action),
            action_html(&c.action)
        ),
        _ => row
            .iter()
            .rev()
            .find_map(|r| *r)
            .map_or_else(|| DASH.to_string(), |r| action_html(&r.action)),
    }
}

// ---------------------------------------------------------------------------
// Responses and events
// ---------------------------------------------------------------------------

const RESPONSES_LEAD: &str = "Events <code>custos evaluate</code> added to play the \
     platform's side (step-ups after challenges, confirmations after holds, the owners' \
     compromise reports), and the attackers' events it kept from the engine because a \
     failed step-up had ended their session.";

pub(super) fn responses_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "responses", "Responses", RESPONSES_LEAD);
    figure_table(
        out,
        sides.compared(),
        &[
            FigureRow::new(
                "Verifications passed",
                sides,
                |r| Measure::Count(r.responses.verifications_passed),
                Better::Neither,
            ),
            FigureRow::new(
                "Verifications failed",
                sides,
                |r| Measure::Count(r.responses.verifications_failed),
                Better::Neither,
            ),
            FigureRow::new(
                "Step-ups passed by owners",
                sides,
                |r| Measure::Count(r.responses.step_ups.owner_passed),
                Better::Neither,
            ),
            FigureRow::new(
                "Step-ups failed by owners (channel moved to the attacker)",
                sides,
                |r| Measure::Count(r.responses.step_ups.owner_failed),
                Better::Lower,
            ),
            FigureRow::new(
                "Step-ups passed by attackers",
                sides,
                |r| Measure::Count(r.responses.step_ups.attacker_passed),
                Better::Lower,
            ),
            FigureRow::new(
                "Step-ups failed by attackers",
                sides,
                |r| Measure::Count(r.responses.step_ups.attacker_failed),
                Better::Higher,
            ),
            FigureRow::new(
                "Holds confirmed by owners",
                sides,
                |r| Measure::Count(r.responses.hold_confirmations.owner_confirmed),
                Better::Neither,
            ),
            FigureRow::new(
                "Holds denied by owners",
                sides,
                |r| Measure::Count(r.responses.hold_confirmations.owner_denied),
                Better::Higher,
            ),
            FigureRow::new(
                "Holds confirmed by attackers",
                sides,
                |r| Measure::Count(r.responses.hold_confirmations.attacker_passed),
                Better::Lower,
            ),
            FigureRow::new(
                "Compromises reported",
                sides,
                |r| Measure::Count(r.responses.compromise_reports),
                Better::Neither,
            ),
            FigureRow::new(
                "Holds cancelled by those reports",
                sides,
                |r| Measure::Count(r.responses.holds_cancelled_by_reports),
                Better::Higher,
            ),
            FigureRow::new(
                "Attackers' events not replayed",
                sides,
                |r| Measure::Count(r.responses.attacker_events_not_replayed),
                Better::Higher,
            ),
        ],
    );
    section_end(out);
}

const EVENTS_LEAD: &str = "Events read from the history and how they were decided (added \
     responses not counted), and how fast the replay ran on this machine.";

pub(super) fn events_section(out: &mut String, sides: Sides<'_>) {
    section_start(out, "events", "Events and throughput", EVENTS_LEAD);
    match sides {
        // One rule set has room for the time span, the attackers' share and
        // a share per action; two show each count with its change.
        Sides::Report(report) => events_tables(out, &report.events),
        Sides::Comparison(_) => figure_table(out, true, &event_rows(sides)),
    }
    section_end(out);
}

fn events_tables(out: &mut String, events: &EventCounts) {
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
        return;
    }
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

fn event_rows(sides: Sides<'_>) -> Vec<FigureRow> {
    let mut rows = vec![
        FigureRow::new(
            "Events read",
            sides,
            |r| Measure::Count(r.events.read),
            Better::Neither,
        ),
        FigureRow::new(
            "Made by attackers",
            sides,
            |r| Measure::Count(r.events.by_attackers),
            Better::Neither,
        ),
    ];
    let actions = actions_in_order(
        sides
            .each()
            .flat_map(|(_, report)| report.events.decisions.keys())
            .map(String::as_str),
    );
    for action in actions {
        rows.push(FigureRow::new(
            format!("Decided {action}"),
            sides,
            |r| Measure::Count(r.events.decisions.get(action).copied().unwrap_or(0)),
            Better::Neither,
        ));
    }
    // Timings depend on the machine and its load as much as on the rules:
    // shown, never coloured.
    rows.push(FigureRow::new(
        "Replay time",
        sides,
        |r| Measure::Seconds(r.events.seconds),
        Better::Neither,
    ));
    rows.push(FigureRow::new(
        "Events per second",
        sides,
        |r| Measure::Rate(r.events.events_per_second),
        Better::Neither,
    ));
    rows
}

// ---------------------------------------------------------------------------
// What changed (comparison only)
// ---------------------------------------------------------------------------

pub(super) fn changed_section(out: &mut String, changed: &[ChangedDecisions]) {
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

pub(super) fn examples_section(out: &mut String, examples: &[ChangedExample]) {
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
