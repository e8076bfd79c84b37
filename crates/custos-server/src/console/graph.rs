//! The campaign page's link graph: which victims used which shared
//! artefact (destination, device, address, network, institution burst),
//! drawn on the server as inline SVG.
//!
//! The layout is two columns, so that it needs no physics and no script
//! and gives the same picture for the same campaign: shared artefacts on
//! the left in the order their first user joined, accounts on the right
//! in the order they joined, a line for each "this account used that
//! artefact". The longer column sets the height at [`ROW`] units a node
//! and the shorter one is spread over it, which keeps a 100-victim
//! campaign readable (lines fan out from the few artefacts they share)
//! and reading down both columns follows the attack in time. At most
//! [`DRAWN_ACCOUNTS`] accounts (the core answers no more) and
//! [`DRAWN_ARTEFACTS`] artefacts are drawn; the page says how many more
//! and links to the lists. Every node is an `<a>` (focusable with the
//! keyboard) with a `<title>` tooltip, to the account's page or to a
//! search for the artefact; the same links are repeated as a table for
//! screen readers. Text is escaped by the template.

use custos_core::campaigns::{CampaignLinks, LinkKind, SharedArtefact};

use super::pages::{account_href, seg};

/// Accounts drawn at most (and asked of the engine).
pub(super) const DRAWN_ACCOUNTS: usize = 100;
/// Shared artefacts drawn at most; the table lists them all.
pub(super) const DRAWN_ARTEFACTS: usize = 40;
/// Height of one node's row, in SVG units.
const ROW: f64 = 18.0;
const PAD: f64 = 14.0;
pub(super) const WIDTH: f64 = 760.0;
/// The two columns' x.
const ARTEFACT_X: f64 = 300.0;
const ACCOUNT_X: f64 = 470.0;
/// Characters of a label drawn; the tooltip and the table say it all.
const LABEL_CHARS: usize = 40;

pub(super) struct GraphNode {
    pub href: String,
    pub title: String,
    pub label: String,
    /// `account`, `destination`, `device`, `ip`, `network`, `burst`.
    pub class: &'static str,
    pub fill: &'static str,
    pub x: String,
    pub y: String,
    /// The square's corner, for artefacts.
    pub corner_x: String,
    pub corner_y: String,
    pub label_x: String,
    pub anchor: &'static str,
}

pub(super) struct GraphEdge {
    pub y1: String,
    pub y2: String,
}

/// One row of the table: an artefact and the drawn accounts that used it.
pub(super) struct LinkRow {
    pub anchor: String,
    pub href: String,
    pub label: String,
    pub kind: &'static str,
    pub linked: u32,
    pub accounts: Vec<(String, String)>,
}

pub(super) struct Graph {
    pub width: f64,
    pub height: String,
    pub artefact_x: f64,
    pub account_x: f64,
    pub accounts: Vec<GraphNode>,
    pub artefacts: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    /// Members not drawn.
    pub more_accounts: u32,
    /// Shared artefacts not drawn (listed in the table).
    pub more_artefacts: usize,
    pub rows: Vec<LinkRow>,
}

fn kind_class(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::SharedDestination => "destination",
        LinkKind::SharedDevice => "device",
        LinkKind::SharedIp => "ip",
        LinkKind::SharedNetwork => "network",
        LinkKind::InstitutionBurst => "burst",
    }
}

fn kind_words(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::SharedDestination => "payout destination",
        LinkKind::SharedDevice => "device",
        LinkKind::SharedIp => "address",
        LinkKind::SharedNetwork => "network",
        LinkKind::InstitutionBurst => "institution burst",
    }
}

fn kind_fill(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::SharedDestination => "#c0392b",
        LinkKind::SharedDevice => "#8e44ad",
        LinkKind::SharedIp => "#d35400",
        LinkKind::SharedNetwork => "#16a085",
        LinkKind::InstitutionBurst => "#2471a3",
    }
}

fn search_href(q: &str) -> String {
    format!("/console/search?q={}", seg(q))
}

fn short(text: &str) -> String {
    if text.chars().count() <= LABEL_CHARS {
        text.to_string()
    } else {
        let cut: String = text.chars().take(LABEL_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// What the artefact is called, where its link goes, and its tooltip.
fn describe(a: &SharedArtefact, anchor: &str) -> (String, String, String) {
    let by = format!("used by {} accounts", a.linked);
    let here = format!("#{anchor}");
    match (a.kind, &a.destination, &a.value) {
        (LinkKind::SharedDestination, Some(d), _) => {
            let ending = d
                .account_last4
                .as_deref()
                .map(|l| format!("ending {l}"))
                .unwrap_or_else(|| "(no last four)".into());
            let token: String = d.account_token.chars().take(12).collect();
            (
                format!("{} {ending}", d.institution_id),
                search_href(&d.account_token),
                format!(
                    "payout destination at {} {ending}, token {token}…, {by}",
                    d.institution_id
                ),
            )
        }
        (LinkKind::SharedDevice, _, Some(device)) => (
            format!("device {device}"),
            search_href(device),
            format!("device {device}, {by}"),
        ),
        (LinkKind::SharedNetwork, _, Some(network)) => (
            format!("network {network}"),
            search_href(network.split('/').next().unwrap_or(network)),
            format!("network {network}, {by}"),
        ),
        (LinkKind::InstitutionBurst, _, Some(institution)) => (
            format!("burst at {institution}"),
            format!("/console/queue?institution={}", seg(institution)),
            format!(
                "destination changes toward {institution} bursting, linking {} accounts",
                a.linked
            ),
        ),
        (LinkKind::SharedIp, _, _) => (
            "an address".into(),
            here,
            format!(
                "one IP address, {by} (the address itself is kept in their events, not in the engine)"
            ),
        ),
        (kind, _, _) => (
            format!("a {}", kind_words(kind)),
            here,
            format!(
                "a {}, {by} (the engine no longer knows which)",
                kind_words(kind)
            ),
        ),
    }
}

/// `count` nodes spread over `rows` rows: the centre of the `i`-th.
fn spread(i: usize, count: usize, rows: usize) -> f64 {
    let step = rows as f64 * ROW / count.max(1) as f64;
    PAD + (i as f64 + 0.5) * step
}

/// The drawing and the table of a campaign's links.
pub(super) fn graph(links: &CampaignLinks) -> Graph {
    let drawn_artefacts = links.artefacts.len().min(DRAWN_ARTEFACTS);
    let rows = links.accounts.len().max(drawn_artefacts).max(1);
    let height = rows as f64 * ROW + 2.0 * PAD;
    let described: Vec<(String, String, String, String)> = links
        .artefacts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let anchor = format!("link-{}", i + 1);
            let (label, href, title) = describe(a, &anchor);
            (anchor, label, href, title)
        })
        .collect();
    let artefact_y: Vec<f64> = (0..drawn_artefacts)
        .map(|i| spread(i, drawn_artefacts, rows))
        .collect();
    let artefacts = links
        .artefacts
        .iter()
        .zip(&described)
        .zip(&artefact_y)
        .map(|((a, (_, label, href, title)), &y)| GraphNode {
            href: href.clone(),
            title: title.clone(),
            label: short(label),
            class: kind_class(a.kind),
            fill: kind_fill(a.kind),
            x: format!("{ARTEFACT_X:.1}"),
            y: format!("{y:.1}"),
            corner_x: format!("{:.1}", ARTEFACT_X - 5.0),
            corner_y: format!("{:.1}", y - 5.0),
            label_x: format!("{:.1}", ARTEFACT_X - 10.0),
            anchor: "end",
        })
        .collect();
    let mut edges = Vec::new();
    let mut accounts = Vec::with_capacity(links.accounts.len());
    let mut users: Vec<Vec<(String, String)>> = vec![Vec::new(); links.artefacts.len()];
    for (i, account) in links.accounts.iter().enumerate() {
        let y = spread(i, links.accounts.len(), rows);
        let href = account_href(&account.account_id);
        for &a in &account.artefacts {
            if let Some(used_by) = users.get_mut(a) {
                used_by.push((href.clone(), account.account_id.clone()));
            }
            if let Some(&ay) = artefact_y.get(a) {
                edges.push(GraphEdge {
                    y1: format!("{ay:.1}"),
                    y2: format!("{y:.1}"),
                });
            }
        }
        let shared = account.artefacts.len();
        accounts.push(GraphNode {
            title: format!(
                "account {}{}: uses {shared} shared artefact{}",
                account.account_id,
                if account.cleared { " (cleared)" } else { "" },
                if shared == 1 { "" } else { "s" }
            ),
            href,
            label: short(&account.account_id),
            class: "account",
            fill: if account.cleared {
                "#9aa5b1"
            } else {
                "#1d232a"
            },
            x: format!("{ACCOUNT_X:.1}"),
            y: format!("{y:.1}"),
            corner_x: String::new(),
            corner_y: String::new(),
            label_x: format!("{:.1}", ACCOUNT_X + 10.0),
            anchor: "start",
        });
    }
    let rows = links
        .artefacts
        .iter()
        .zip(described)
        .zip(users)
        .map(|((a, (anchor, label, href, _)), accounts)| LinkRow {
            anchor,
            href,
            label,
            kind: kind_words(a.kind),
            linked: a.linked,
            accounts,
        })
        .collect();
    Graph {
        width: WIDTH,
        height: format!("{height:.0}"),
        artefact_x: ARTEFACT_X,
        account_x: ACCOUNT_X,
        accounts,
        artefacts,
        edges,
        more_accounts: links.more_accounts,
        more_artefacts: links.artefacts.len() - drawn_artefacts,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use custos_core::campaigns::{DestinationSummary, LinkedAccount};

    use super::*;

    fn artefact(kind: LinkKind, value: Option<&str>) -> SharedArtefact {
        SharedArtefact {
            kind,
            destination: None,
            value: value.map(str::to_string),
            linked: 2,
        }
    }

    fn account(id: &str, artefacts: &[usize]) -> LinkedAccount {
        LinkedAccount {
            account_id: id.into(),
            cleared: false,
            artefacts: artefacts.to_vec(),
        }
    }

    #[test]
    fn columns_spread_over_the_longer_one_and_edges_join_what_was_used() {
        let links = CampaignLinks {
            campaign_id: "cmp_1".into(),
            accounts: vec![
                account("a", &[0]),
                account("b", &[0, 1]),
                account("c", &[1]),
                account("d", &[0]),
            ],
            more_accounts: 3,
            artefacts: vec![
                SharedArtefact {
                    destination: Some(DestinationSummary {
                        institution_id: "236972".into(),
                        institution_type: None,
                        country: None,
                        account_last4: Some("1234".into()),
                        account_token: "tk_0123456789abcdef".into(),
                    }),
                    ..artefact(LinkKind::SharedDestination, None)
                },
                artefact(LinkKind::SharedIp, None),
            ],
        };
        let g = graph(&links);
        // Four rows: accounts one a row, the two artefacts two rows apart.
        assert_eq!(g.height, format!("{:.0}", 4.0 * ROW + 2.0 * PAD));
        let ys: Vec<&str> = g.accounts.iter().map(|n| n.y.as_str()).collect();
        assert_eq!(ys, ["23.0", "41.0", "59.0", "77.0"]);
        let ys: Vec<&str> = g.artefacts.iter().map(|n| n.y.as_str()).collect();
        assert_eq!(ys, ["32.0", "68.0"]);
        let edges: Vec<(&str, &str)> = g
            .edges
            .iter()
            .map(|e| (e.y1.as_str(), e.y2.as_str()))
            .collect();
        assert_eq!(
            edges,
            [
                ("32.0", "23.0"),
                ("32.0", "41.0"),
                ("68.0", "41.0"),
                ("68.0", "59.0"),
                ("32.0", "77.0")
            ]
        );
        // The destination searches for its token; the unnamed address
        // points at its row of the table.
        assert_eq!(g.artefacts[0].href, "/console/search?q=tk_0123456789abcdef");
        assert_eq!(g.artefacts[0].label, "236972 ending 1234");
        assert_eq!(g.artefacts[1].href, "#link-2");
        assert_eq!(g.rows[1].anchor, "link-2");
        let users: Vec<&str> = g.rows[0].accounts.iter().map(|a| a.1.as_str()).collect();
        assert_eq!(users, ["a", "b", "d"]);
        assert_eq!(g.more_accounts, 3);
        assert_eq!(g.more_artefacts, 0);
    }

    #[test]
    fn artefacts_beyond_the_cap_are_listed_not_drawn() {
        let artefacts: Vec<SharedArtefact> = (0..DRAWN_ARTEFACTS + 5)
            .map(|i| artefact(LinkKind::SharedDevice, Some(&format!("d{i}"))))
            .collect();
        let links = CampaignLinks {
            campaign_id: "cmp_1".into(),
            accounts: vec![account("a", &(0..DRAWN_ARTEFACTS + 5).collect::<Vec<_>>())],
            more_accounts: 0,
            artefacts,
        };
        let g = graph(&links);
        assert_eq!(g.artefacts.len(), DRAWN_ARTEFACTS);
        assert_eq!(g.edges.len(), DRAWN_ARTEFACTS);
        assert_eq!(g.more_artefacts, 5);
        assert_eq!(g.rows.len(), DRAWN_ARTEFACTS + 5);
        assert_eq!(g.rows[DRAWN_ARTEFACTS + 4].accounts.len(), 1);
        assert_eq!(g.artefacts[3].href, "/console/search?q=d3");
        assert_eq!(
            short(&"x".repeat(60)).chars().count(),
            LABEL_CHARS,
            "long labels are cut"
        );
    }
}
