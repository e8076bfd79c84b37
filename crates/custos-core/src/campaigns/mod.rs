//! Campaign detection across accounts: many sellers taken over by the same
//! people at the same time.
//!
//! # Why
//!
//! In the 2018 seller-account takeover campaign about a hundred sellers were
//! phished over six months. The attackers logged in (often from hosting or
//! VPN networks), changed each victim's payout bank details to mule accounts
//! at only two institutions (a high-street bank and an e-money issuer) and
//! took the payouts and loans. Each account on its own looked like a seller
//! changing banks; across sellers the pattern was loud long before any one
//! account looked odd. This module looks across accounts, in two ways.
//!
//! # The link graph
//!
//! A union-find over *nodes*: accounts, and the keys they touched in risky
//! sensitive changes (made in a risky session, or flagged by the rules):
//! the new payout destination (institution + account token, see
//! [`crate::destinations::destination_key`]), the device id, the exact IP
//! address and its network ([`crate::types::NetworkPrefix`]: /24 or /48).
//! Each risky change links its account to each of its keys, so two accounts
//! that sent money to the same mule, or were changed from the same device or
//! network, end up in one *component*. A component with at least
//! [`CampaignConfig::min_accounts`] accounts is a **campaign**. Only risky
//! changes link: a family business whose two shops share one bank account,
//! changed from home, links nothing.
//!
//! Shared infrastructure is not evidence: a carrier NAT address or an office
//! network is shared by honest people. A device, address or network key that
//! already links [`CampaignConfig::max_accounts_per_key`] accounts links no
//! more (*hub pruning*), and such a key is forgotten for linking once
//! [`CampaignConfig::key_ttl_days`] pass without a new link, so two risky
//! changes months apart from a reassigned address do not join. Destinations
//! are never pruned or forgotten: a destination shared by many risky
//! accounts is the mule itself.
//!
//! A ring that reuses one mule with weeks between victims, each victim
//! from its own network and in a session that looks like the victim's, is
//! linked through the destination index ([`crate::destinations`]), which
//! remembers for a year which accounts set each destination and how: the
//! default rules flag a change to a destination that unrelated sellers set
//! under other holder names in the last 180 days, or that another seller
//! set in a risky episode, and a flagged change is risky here. The second
//! victim is flagged, the third links to it: a campaign by the third victim
//! however far apart they come (nothing here has a window: destination keys
//! never expire, and a component is dropped only when the graph is full and
//! it is not a campaign). Households and accountants sharing one bank
//! account are related accounts naming one holder: they are not flagged, so
//! they link nothing, and a hold on a shared destination that risky changes
//! did link is released at its cool-off (`effects.rs`).
//!
//! # The burst detector
//!
//! Mules rotate: with a fresh mule account per victim nothing is shared, but
//! all of them sit at the few institutions that opened them. So **every**
//! payout-destination change (risky or not) is counted per institution and
//! per [`InstitutionType`] in UTC-day buckets. The count over the trailing
//! window ([`CampaignConfig::window_days`], 7) is tested against a Poisson
//! law whose mean is the institution's normal daily rate times the window.
//! The institution is *bursting* when all of these hold:
//!
//! - at least [`CampaignConfig::min_burst_count`] (4) changes in the window;
//! - at least [`CampaignConfig::min_risky_in_burst`] (2) of them risky. A
//!   burst campaign needs two risky changers to link anyway, so this loses
//!   no campaign; it keeps an honest surge (a popular new issuer, a bank's
//!   promotion: mostly not risky) from being reported as one. The score is
//!   still computed, for rules that want volume alone;
//! - the upper tail `P(X ≥ observed)` is at most
//!   [`CampaignConfig::burst_p_value`] (1e-4, score `-log10 p` ≥ 4);
//! - the count is at least [`CampaignConfig::min_burst_ratio`] (3) times the
//!   expected one: real traffic is overdispersed, and for a bank with a
//!   hundred changes a day a busy week is not an attack;
//! - the detector has [`CampaignConfig::warmup_days`] (14) closed days of
//!   history: right after a deploy every busy institution would burst
//!   against the prior.
//!
//! The normal rate is a running mean of closed daily counts that becomes an
//! exponentially weighted mean (memory [`CampaignConfig::baseline_days`],
//! 56) once that much history is in. It starts from a prior of
//! [`CampaignConfig::prior_daily_rate`] worth [`CampaignConfig::prior_days`]
//! days, and never goes below [`CampaignConfig::min_daily_rate`]. History
//! starts on the detector's first day for *every* institution, not on the
//! institution's first change: an institution nobody chose in a hundred days
//! is known to be quiet, and the obscure issuer nobody uses is exactly where
//! mules get opened. (Starting at the first change instead hid such attacks
//! completely in the calibration: the attack became the history.) A
//! new institution is protected by the count and risky-count floors, not by
//! the prior. A day is folded into the baseline only once it has left the
//! window, and days in the window while the institution was bursting are
//! left out (for at most [`CampaignConfig::max_excluded_burst_days`], 28,
//! after the burst began; after that a lasting change becomes the new
//! normal): the attack does not become its own baseline. Time only moves
//! forward: a change older than the newest one is counted in its day if that
//! day is still in the window, and ignored otherwise.
//!
//! While an institution is bursting, the accounts that made **risky**
//! destination changes toward it in the window are linked to a burst node of
//! that institution (one per burst episode), so the burst's victims form one
//! campaign even when every victim has its own mule and address. Honest
//! changes count toward the rate but join nothing. Type bursts (say, e-money
//! platform-wide) are reported by [`CampaignDetector::institution_type_burst`]
//! but link nobody: a whole institution type is too broad to say who is a
//! victim.
//!
//! # Calibration
//!
//! Measured by the calibration tests of the simulator crate (`custos-sim`)
//! on a synthetic platform: 10,000 sellers, 3 % of them changing banks a
//! year (about 0.8 changes a day), 5 % of honest changes risky, 40
//! institutions with Zipf popularity (four of them e-money), plus a new
//! e-money issuer appearing on day 40 with honest changes at 0.05 a day (a
//! top-five rate there). Scores are `-log10 p`, taken after every change,
//! over windows eligible to burst (enough changes and enough risky ones):
//!
//! - honest traffic, 6 seeds × 120 days: highest score 2.0 (four seeds
//!   never had an eligible window); with 20 % of honest changes risky, 3
//!   seeds: highest 2.0 (2.7 over 8 seeds in a parameter sweep, 3.3 with a
//!   28-day memory, hence 56). Nothing ever burst, no campaign formed.
//!   Threshold: 4.
//! - without the risky-count floor, the new issuer alone reached 5.2 to 6.3
//!   (four honest changes in its first weeks): that is why the floor exists.
//! - an attack at a small institution (rank 37 of 40, about 0.005 changes a
//!   day), one victim every ~1.5 days with a unique mule and a unique
//!   address each: scores at the 4th victim were 5.1 to 7.6 over 10 seeds;
//!   burst and campaign at the 4th victim (the smallest count allowed) on
//!   seeds 1-5, and all ten victims joined (the attack did not become the
//!   baseline).
//! - an attack at a big bank with about one honest change a day, adding ~5
//!   victims a day: caught at victims 9, 19, 9, 10 and 14 (seeds 1-5), two
//!   to four days in.

//! # Campaigns
//!
//! A [`Campaign`] gets an id `cmp_1`, `cmp_2`, … in order of detection. When
//! two campaigns' components join, the older id survives and the other is
//! remembered as merged into it ([`CampaignDetector::campaign`] follows).
//! Its money is what member accounts paid out or drew as loans from their
//! first risky change on, including what moved before the campaign formed
//! (each account keeps totals since its first risky change; an account whose
//! risky changes are more than [`CampaignConfig::episode_gap_days`] apart
//! starts over): `held` what was decided `hold` or `block` and not released
//! since, `paid` the rest (a released hold moves from one to the other,
//! [`CampaignDetector::release_money`]). Labels feed back: `fraud` or `compromise_reported` on a
//! member confirms its campaign, `legit` clears the member (no longer
//! counted by [`CampaignDetector::linked_accounts`] or in the money), and a
//! campaign whose members are all cleared is dismissed. An analyst may
//! confirm or dismiss with [`CampaignDetector::set_status`]; a dismissed
//! campaign that gains an account is suspected again.
//!
//! # Bounds and determinism
//!
//! No I/O, no clock, no randomness: time is the caller's `at` (Unix
//! seconds), and replaying the same calls gives the same ids and state.
//! Every collection is bounded: at most [`CampaignConfig::max_nodes`] graph
//! nodes (when full, components that are not campaigns and saw nothing for
//! [`CampaignConfig::forget_after_days`] are dropped; if that frees too
//! little, new accounts and keys are not added until it does, and
//! [`CampaignStats::refused_nodes`] counts them), 32 keys per account, at
//! most [`CampaignConfig::max_institutions`] institutions tracked, at most
//! [`CampaignConfig::max_campaigns`] campaigns, and per campaign at most
//! [`CampaignConfig::max_listed_members`] members listed by name and a
//! timeline of the first [`TIMELINE_HEAD`] and the last [`TIMELINE_TAIL`]
//! entries (at least three quarters of them: the oldest quarter of the tail
//! is dropped at once when it is full).
//! Queries ([`CampaignDetector::linked_accounts`],
//! [`CampaignDetector::campaign_of_account`], bursts) are hash lookups plus
//! a union-find walk, and do not allocate.
//!
//! # Layout
//!
//! One file per mechanism, each owning its state: `graph.rs` (the link
//! graph: union-find, keys, pruning, bounds), `burst.rs` (rate trackers and
//! the Poisson test), `campaign.rs` (the lifecycle: campaigns, members,
//! money, timelines, notices) and `snapshot.rs` (the snapshot format and
//! its checked restore). This file holds the configuration and the
//! [`CampaignDetector`] API, which feeds each call through the mechanisms
//! in order: bursts count every change first, the graph links a risky
//! change's account to its keys, and the lifecycle settles what the call
//! changed into notices; `links.rs` reads who used which shared key back
//! out of the graph for people (the console's campaign graph). Tests of
//! all of them are in `tests.rs`.

mod burst;
mod campaign;
mod graph;
mod links;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use burst::BurstDetector;
pub use burst::{Burst, BurstDays};
pub use campaign::{
    Campaign, CampaignMember, CampaignMoney, CampaignNotice, CampaignNoticeKind, CampaignStatus,
    CampaignSummary, DestinationSummary, LinkCounts, MAX_LISTED_DESTINATIONS, StatusChange,
    TIMELINE_HEAD, TIMELINE_TAIL, TimelineEntry, TimelineKind,
};
use campaign::{CampaignBook, parse_campaign_id};
use graph::{LinkGraph, NODES_PER_CALL, NodeKind, device_key, ip_key, network_key};
pub use graph::{LinkKind, MAX_KEYS_PER_ACCOUNT};
pub use links::{CampaignLinks, KnownArtefacts, LinkedAccount, SharedArtefact};
pub use snapshot::{CampaignSnapshot, SNAPSHOT_VERSION};

use crate::destinations::destination_key;
use crate::event::{Currency, Destination, EventType, InstitutionType, LabelKind};
use crate::types::Timestamp;

const DAY: i64 = 86_400;

/// Tuning of campaign detection. Every field has a default (see
/// [`CampaignConfig::default`]); out-of-range values are clamped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignConfig {
    /// Accounts in one component that make it a campaign (default 2, at
    /// least 2).
    pub min_accounts: u32,
    /// A device, address or network key linking this many accounts links no
    /// more (default 10).
    pub max_accounts_per_key: u32,
    /// A device, address or network key with no new link for this many days
    /// starts over for linking (default 14).
    pub key_ttl_days: u32,
    /// Graph nodes at most (default 1,000,000).
    pub max_nodes: usize,
    /// When the graph is full, components that are not campaigns and saw no
    /// link for this many days are dropped (default 180).
    pub forget_after_days: u32,
    /// A risky change this many days after the account's previous one starts
    /// a new episode: the money counted for it starts over (default 30).
    pub episode_gap_days: u32,
    /// Days in the burst window (default 7).
    pub window_days: u32,
    /// Days of history after which the baseline becomes an exponentially
    /// weighted mean with this memory (default 56).
    pub baseline_days: u32,
    /// Daily rate assumed before there is any history (default 0.5).
    pub prior_daily_rate: f64,
    /// Weight of that assumption, in days of history (default 1).
    pub prior_days: f64,
    /// Closed days of history needed before anything bursts (default 14):
    /// right after a deploy every busy institution would look like a burst
    /// against the prior.
    pub warmup_days: u32,
    /// Lowest daily rate used as expectation (default 0.002).
    pub min_daily_rate: f64,
    /// Changes in the window needed for a burst (default 4).
    pub min_burst_count: u32,
    /// Risky changes among them needed for a burst (default 2: fewer could
    /// not link a campaign anyway, and an honest surge, such as a new
    /// issuer's launch, is mostly not risky).
    pub min_risky_in_burst: u32,
    /// Poisson upper-tail probability at or below which the window is a
    /// burst (default 1e-4; see the calibration in the module docs).
    pub burst_p_value: f64,
    /// Observed over expected ratio needed for a burst (default 3).
    pub min_burst_ratio: f64,
    /// Days after a burst began during which bursting days are kept out of
    /// the baseline (default 28).
    pub max_excluded_burst_days: u32,
    /// Institutions tracked at most (default 100,000).
    pub max_institutions: usize,
    /// Campaigns at most; beyond, components stop becoming campaigns
    /// (default 100,000).
    pub max_campaigns: usize,
    /// Members listed by name per campaign; beyond, they are counted
    /// (default 1,000).
    pub max_listed_members: usize,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            min_accounts: 2,
            max_accounts_per_key: 10,
            key_ttl_days: 14,
            max_nodes: 1_000_000,
            forget_after_days: 180,
            episode_gap_days: 30,
            window_days: 7,
            baseline_days: 56,
            prior_daily_rate: 0.5,
            prior_days: 1.0,
            warmup_days: 14,
            min_daily_rate: 0.002,
            min_burst_count: 4,
            min_risky_in_burst: 2,
            burst_p_value: 1e-4,
            min_burst_ratio: 3.0,
            max_excluded_burst_days: 28,
            max_institutions: 100_000,
            max_campaigns: 100_000,
            max_listed_members: 1_000,
        }
    }
}

impl CampaignConfig {
    /// The configuration with every value in a range the code relies on.
    fn sanitized(mut self) -> CampaignConfig {
        self.min_accounts = self.min_accounts.max(2);
        self.max_accounts_per_key = self.max_accounts_per_key.max(1);
        self.max_nodes = self.max_nodes.max(NODES_PER_CALL * 4);
        self.window_days = self.window_days.clamp(1, 365);
        self.baseline_days = self.baseline_days.clamp(1, 3650);
        if !(self.prior_daily_rate.is_finite() && self.prior_daily_rate > 0.0) {
            self.prior_daily_rate = CampaignConfig::default().prior_daily_rate;
        }
        if !(self.prior_days.is_finite() && self.prior_days >= 0.0) {
            self.prior_days = 0.0;
        }
        // The prior must leave room for history in the running mean.
        self.prior_days = self
            .prior_days
            .min(f64::from(self.baseline_days) - 1.0)
            .max(0.0);
        if !(self.min_daily_rate.is_finite() && self.min_daily_rate > 0.0) {
            self.min_daily_rate = 1e-6;
        }
        if !(self.burst_p_value.is_finite() && self.burst_p_value > 0.0) {
            self.burst_p_value = f64::MIN_POSITIVE;
        }
        if !self.min_burst_ratio.is_finite() {
            self.min_burst_ratio = 1.0;
        }
        self.max_institutions = self.max_institutions.max(1);
        self.max_listed_members = self.max_listed_members.max(1);
        self
    }

    fn window(&self) -> i64 {
        i64::from(self.window_days)
    }
}

/// A sensitive change as the engine saw it.
#[derive(Debug, Clone, Copy)]
pub struct SensitiveChange<'a> {
    pub account_id: &'a str,
    pub event_id: &'a str,
    pub at: i64,
    /// One of the types for which [`EventType::is_sensitive_change`] holds;
    /// other types are ignored.
    pub event_type: EventType,
    /// The new destination, for `payout_destination_change` (ignored for
    /// other types).
    pub destination: Option<&'a Destination>,
    /// Only a real device id, never a user agent.
    pub device_id: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// Made in a risky session, or the rules flagged it (review or stronger).
    pub risky: bool,
    /// Other accounts whose earlier setting of the new destination shows
    /// it to be a mule, with when each set it
    /// ([`crate::destinations::DestinationUse::mule_setters`]). A risky
    /// change links them too: a ring's first victim changed banks in a
    /// session that looked like their own, and only the second use of the
    /// mule shows what it was.
    pub earlier_setters: &'a [(String, i64)],
}

/// Sizes, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CampaignStats {
    pub nodes: usize,
    pub accounts: usize,
    pub keys: usize,
    pub institutions: usize,
    /// Live campaigns (not merged into another).
    pub campaigns: usize,
    /// Accounts and keys not added because the graph was full.
    pub refused_nodes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error("campaign_id: no campaign {0:?}")]
    UnknownCampaign(String),
    #[error("campaign snapshot: {0}")]
    Snapshot(String),
}

/// An account that made a risky change. Shared by the mechanisms: the
/// graph owns `node` and `keys`, the lifecycle the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AccountEntry {
    id: String,
    node: u32,
    /// Key nodes linked.
    keys: Vec<u32>,
    /// Start of the current episode (its first risky change).
    first_risky_at: i64,
    last_risky_at: i64,
    cleared: bool,
    /// Labelled fraud or compromise reported.
    fraud: bool,
    /// Joined a campaign (components never split, so this stays).
    member: bool,
    /// Money since `first_risky_at`.
    money: BTreeMap<Currency, CampaignMoney>,
    /// Until it joins: its changes, money and labels, bounded.
    history: Vec<TimelineEntry>,
    history_dropped: u64,
    /// Destinations set in its risky changes.
    destinations: Vec<DestinationSummary>,
    /// Holds counted as held in `money` and not closed yet: a release moves
    /// one to paid. The newest [`MAX_COUNTED_HOLDS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    counted_holds: Vec<CountedHold>,
}

/// Open holds remembered per account for [`CampaignDetector::release_money`];
/// a release of an older one leaves its money counted as held.
const MAX_COUNTED_HOLDS: usize = 32;

/// A hold counted as held in an account's money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CountedHold {
    hold_id: String,
    currency: Currency,
    amount: u64,
}

/// What one call changed, settled at its end.
#[derive(Default)]
struct Pending {
    /// Account slots that came into a campaign's component.
    joins: Vec<u32>,
    /// Account slots whose component may have become a campaign.
    touched: Vec<u32>,
    /// Campaign numbers and what to tell about them.
    notices: Vec<(u32, CampaignNoticeKind)>,
    /// A member's own change, for its campaign's timeline.
    member_entries: Vec<(u32, TimelineEntry)>,
    /// A member's new destination.
    member_destinations: Vec<(u32, DestinationSummary)>,
    /// A burst that linked accounts: for the timeline of their campaign.
    burst_entry: Option<(u32, TimelineEntry)>,
}

/// Campaign detection across accounts. See the module documentation.
#[derive(Debug, Clone)]
pub struct CampaignDetector {
    config: CampaignConfig,
    /// Accounts and keys linked by risky changes (`graph.rs`).
    graph: LinkGraph,
    /// Accounts that made a risky change, by slot.
    accounts: Vec<AccountEntry>,
    account_index: HashMap<String, u32, RandomState>,
    /// Destination-change rates per institution and type (`burst.rs`).
    bursts: BurstDetector,
    /// Campaigns by number (`campaign.rs`).
    campaigns: CampaignBook,
    /// The newest `at` seen.
    now: i64,
}

impl Default for CampaignDetector {
    fn default() -> Self {
        CampaignDetector::new(CampaignConfig::default())
    }
}

impl CampaignDetector {
    pub fn new(config: CampaignConfig) -> Self {
        CampaignDetector {
            config: config.sanitized(),
            graph: LinkGraph::new(),
            accounts: Vec::new(),
            account_index: HashMap::default(),
            bursts: BurstDetector::default(),
            campaigns: CampaignBook::default(),
            now: i64::MIN,
        }
    }

    pub fn config(&self) -> &CampaignConfig {
        &self.config
    }

    // ----- inputs -----

    /// Takes in a sensitive change: counts destination changes toward their
    /// institution (all of them), links a risky change's account to its keys,
    /// and links the risky changers of a bursting institution together.
    pub fn observe_change(&mut self, change: &SensitiveChange<'_>) -> Vec<CampaignNotice> {
        if !change.event_type.is_sensitive_change() {
            return Vec::new();
        }
        self.now = self.now.max(change.at);
        let destination = if change.event_type == EventType::PayoutDestinationChange {
            change.destination
        } else {
            None
        };
        self.graph.make_room(
            change.at,
            &self.config,
            &mut self.accounts,
            &mut self.account_index,
        );

        // Bursts first: the change counts whatever else happens.
        let mut burst_links: Vec<(String, u64)> = Vec::new();
        let mut burst_note: Option<(String, Burst)> = None;
        if let Some(d) = destination {
            if let Some((key, accounts, burst, started)) =
                self.bursts
                    .count_institution(d, change, self.now, &self.config)
            {
                if started {
                    burst_note = Some((d.institution_id.clone(), burst));
                }
                burst_links.extend(accounts.into_iter().map(|a| (a, key)));
            }
            if let Some(kind) = d.institution_type {
                self.bursts
                    .count_type(kind, change.at, change.risky, &self.config);
            }
        }
        if !change.risky && burst_links.is_empty() {
            return Vec::new();
        }

        let mut pending = Pending::default();
        if change.risky
            && let Some(slot) = self.touch_account(change, destination, &mut pending)
        {
            pending.touched.push(slot);
            if let Some(d) = destination {
                self.link(
                    slot,
                    destination_key(d),
                    NodeKind::Destination,
                    change.at,
                    &mut pending,
                );
                for (account_id, set_at) in change.earlier_setters {
                    if let Some(earlier) =
                        self.touch_earlier_setter(account_id, *set_at, change, d, &mut pending)
                    {
                        pending.touched.push(earlier);
                        self.link(
                            earlier,
                            destination_key(d),
                            NodeKind::Destination,
                            change.at,
                            &mut pending,
                        );
                    }
                }
            }
            if let Some(device) = change.device_id {
                self.link(
                    slot,
                    device_key(device),
                    NodeKind::Device,
                    change.at,
                    &mut pending,
                );
            }
            if let Some(ip) = change.ip {
                self.link(slot, ip_key(ip), NodeKind::Ip, change.at, &mut pending);
                self.link(
                    slot,
                    network_key(ip),
                    NodeKind::Network,
                    change.at,
                    &mut pending,
                );
            }
        }
        let mut first_burst_slot = None;
        for (account_id, key) in &burst_links {
            let Some(&slot) = self.account_index.get(account_id.as_str()) else {
                continue;
            };
            self.link(slot, *key, NodeKind::Burst, change.at, &mut pending);
            pending.touched.push(slot);
            first_burst_slot.get_or_insert(slot);
        }
        if let (Some(slot), Some((institution, burst))) = (first_burst_slot, burst_note) {
            pending.burst_entry = Some((
                slot,
                TimelineEntry {
                    at: Timestamp(change.at),
                    event_id: change.event_id.to_string(),
                    account_id: None,
                    kind: TimelineKind::Burst,
                    detail: format!(
                        "institution {institution} bursting: {} destination changes in {} days, {:.2} expected (score {:.1})",
                        burst.observed, self.config.window_days, burst.expected, burst.score
                    ),
                },
            ));
        }
        self.settle(pending, change.at, change.event_id)
    }

    /// Links account `slot` to the key `hash`. When that joins two
    /// campaigns' components, the younger campaign is merged into the older
    /// and the survivor's number goes to the joined component.
    fn link(&mut self, slot: u32, hash: u64, kind: NodeKind, at: i64, pending: &mut Pending) {
        let met = self.graph.link(
            &mut self.accounts[slot as usize],
            hash,
            kind,
            at,
            &self.config,
            &mut pending.joins,
        );
        if let Some(met) = met {
            let number = self.campaigns.merge(
                met.keep,
                met.gone,
                self.config.max_listed_members,
                &mut pending.notices,
            );
            if let Some(component) = self.graph.component_mut(met.root) {
                component.campaign = number;
            }
        }
    }

    /// A payout or loan disbursement of `account_id` (`held` when withheld).
    /// Counted for accounts with a risky change at or before `at`; never
    /// notifies (money is visible in the campaign itself).
    pub fn record_money(
        &mut self,
        account_id: &str,
        event_id: &str,
        at: i64,
        amount: u64,
        currency: Currency,
        held: bool,
    ) -> Vec<CampaignNotice> {
        let Some(&slot) = self.account_index.get(account_id) else {
            return Vec::new();
        };
        self.record_account_money(slot, event_id, at, amount, currency, held);
        Vec::new()
    }

    /// A payout or loan disbursement of `account_id` decided `hold`, as
    /// [`CampaignDetector::record_money`] with `held`, remembering
    /// `hold_id` so that its release counts it as paid.
    pub fn record_held_money(
        &mut self,
        account_id: &str,
        event_id: &str,
        at: i64,
        amount: u64,
        currency: Currency,
        hold_id: &str,
    ) {
        if let Some(&slot) = self.account_index.get(account_id) {
            self.record_account_money_of_hold(slot, event_id, at, amount, currency, Some(hold_id));
        }
    }

    /// Hold `hold_id` of `account_id` was released: the money counted as
    /// held for it was paid after all, in the account's money and, for a
    /// member not cleared, in its campaign's. A cancelled hold stays
    /// counted as held (the money was withheld for good): call
    /// [`CampaignDetector::forget_hold`].
    pub fn release_money(&mut self, account_id: &str, hold_id: &str) {
        if let Some(&slot) = self.account_index.get(account_id) {
            self.move_released_hold(slot, hold_id);
        }
    }

    /// Hold `hold_id` of `account_id` was cancelled: it stays held.
    pub fn forget_hold(&mut self, account_id: &str, hold_id: &str) {
        if let Some(&slot) = self.account_index.get(account_id) {
            self.accounts[slot as usize]
                .counted_holds
                .retain(|h| h.hold_id != hold_id);
        }
    }

    /// A label on an account: `fraud` or `compromise_reported` confirms its
    /// campaign, `legit` clears it (and dismisses a campaign whose members
    /// are all cleared), `chargeback` goes on the timeline. No notice for an
    /// account in no campaign.
    pub fn label(
        &mut self,
        account_id: &str,
        event_id: &str,
        at: i64,
        label: LabelKind,
    ) -> Vec<CampaignNotice> {
        let Some(&slot) = self.account_index.get(account_id) else {
            return Vec::new();
        };
        self.now = self.now.max(at);
        self.label_account(slot, account_id, event_id, at, label)
    }

    /// An analyst gave the account back to its owner (after a takeover was
    /// dealt with, or because it was never taken over): it leaves its
    /// campaign's live members, so nothing about the campaign holds its
    /// payouts any more. Unlike a `legit` label this says nothing about the
    /// past: a confirmed campaign stays confirmed, and the account stays on
    /// the timeline. Returns whether the account was a live member.
    pub fn clear_account(&mut self, account_id: &str, event_id: &str, at: i64, by: &str) -> bool {
        let Some(&slot) = self.account_index.get(account_id) else {
            return false;
        };
        self.clear_member(slot, account_id, event_id, at, by)
    }

    /// An analyst confirms or dismisses a campaign (or sets it back to
    /// suspected). Follows merges; an unknown id is an error.
    pub fn set_status(
        &mut self,
        campaign_id: &str,
        status: CampaignStatus,
        by: &str,
        reason: &str,
        event_id: &str,
        at: i64,
    ) -> Result<Vec<CampaignNotice>, CampaignError> {
        let number = parse_campaign_id(campaign_id)
            .and_then(|n| self.campaigns.resolve(n))
            .ok_or_else(|| CampaignError::UnknownCampaign(campaign_id.to_string()))?;
        self.now = self.now.max(at);
        let Some(campaign) = self.campaigns.live_mut(number) else {
            return Err(CampaignError::UnknownCampaign(campaign_id.to_string()));
        };
        Ok(campaign
            .set_status(status, by, reason, event_id, at)
            .into_iter()
            .collect())
    }

    // ----- queries -----

    /// Other accounts, not cleared, in the account's link-graph component.
    pub fn linked_accounts(&self, account_id: &str) -> u32 {
        let Some(&slot) = self.account_index.get(account_id) else {
            return 0;
        };
        let account = &self.accounts[slot as usize];
        let root = self.graph.find(account.node);
        let active = self.graph.component(root).map_or(0, |c| c.active);
        if account.cleared {
            active
        } else {
            active.saturating_sub(1)
        }
    }

    /// The campaign the account is in, whatever its status.
    pub fn campaign_of_account(&self, account_id: &str) -> Option<&Campaign> {
        let &slot = self.account_index.get(account_id)?;
        self.campaigns.live(self.campaign_number_of_slot(slot)?)
    }

    /// The account's campaign if it is live (not dismissed) and the account
    /// is not cleared: what "in a campaign" means for features.
    pub fn account_in_live_campaign(&self, account_id: &str) -> Option<&Campaign> {
        let &slot = self.account_index.get(account_id)?;
        if self.accounts[slot as usize].cleared {
            return None;
        }
        let campaign = self.campaigns.live(self.campaign_number_of_slot(slot)?)?;
        (campaign.status != CampaignStatus::Dismissed).then_some(campaign)
    }

    /// Whether a `legit` label cleared the account.
    pub fn is_cleared(&self, account_id: &str) -> bool {
        self.account_index
            .get(account_id)
            .is_some_and(|&slot| self.accounts[slot as usize].cleared)
    }

    /// The campaign whose members set this destination in risky changes.
    pub fn campaign_of_destination(&self, destination: &Destination) -> Option<&Campaign> {
        self.campaign_of_destination_key(destination_key(destination))
    }

    /// [`Self::campaign_of_destination`] by the destination's key
    /// ([`crate::destinations::destination_key_of`]).
    pub fn campaign_of_destination_key(&self, key: u64) -> Option<&Campaign> {
        let node = self.graph.key_node(key)?;
        let root = self.graph.find(node);
        let number = self.graph.component(root)?.campaign;
        self.campaigns.live(self.campaigns.resolve(number)?)
    }

    /// Whether the destination links accounts in a campaign that is not
    /// dismissed.
    pub fn destination_key_in_live_campaign(&self, key: u64) -> bool {
        self.campaign_of_destination_key(key)
            .is_some_and(|c| c.status != CampaignStatus::Dismissed)
    }

    /// Destination changes toward the institution in the window ending on
    /// `at`'s day (or on the newest day counted, if later), against its
    /// baseline as of its last change.
    pub fn institution_burst(&self, institution_id: &str, at: i64) -> Burst {
        self.bursts
            .institution_burst(institution_id, at, &self.config)
    }

    /// The institution's destination changes per day of the window ending
    /// on the newest day one was counted (not the engine's clock, which
    /// analysts' actions move too), with its baseline daily rate; `None`
    /// when none was ever counted.
    pub fn institution_days(&self, institution_id: &str) -> Option<BurstDays> {
        self.bursts.institution_days(institution_id, &self.config)
    }

    /// Money an account moved since its first risky change (held and
    /// paid, per currency): what it adds to its campaign's money.
    pub fn account_money(&self, account_id: &str) -> Option<&BTreeMap<Currency, CampaignMoney>> {
        let &slot = self.account_index.get(account_id)?;
        Some(&self.accounts[slot as usize].money)
    }

    /// The same for all institutions of a type.
    pub fn institution_type_burst(&self, kind: InstitutionType, at: i64) -> Burst {
        self.bursts.institution_type_burst(kind, at, &self.config)
    }

    /// Live campaigns (not merged into another) by id, oldest first; use
    /// `.rev()` for newest first.
    pub fn campaigns(&self) -> impl DoubleEndedIterator<Item = &Campaign> {
        self.campaigns.iter()
    }

    /// A campaign by id; an id merged into another gives the survivor.
    pub fn campaign(&self, id: &str) -> Option<&Campaign> {
        self.campaigns
            .live(self.campaigns.resolve(parse_campaign_id(id)?)?)
    }

    pub fn stats(&self) -> CampaignStats {
        CampaignStats {
            nodes: self.graph.node_count(),
            accounts: self.accounts.len(),
            keys: self.graph.key_count(),
            institutions: self.bursts.institution_count(),
            campaigns: self.campaigns().count(),
            refused_nodes: self.graph.refused_nodes(),
        }
    }

    // ----- snapshot -----

    pub fn to_snapshot(&self) -> CampaignSnapshot {
        CampaignSnapshot::of(self)
    }

    /// Restores a snapshot. A damaged one (references out of range, another
    /// version) gives an empty detector rather than a panic; use
    /// [`CampaignDetector::try_from_snapshot`] to know.
    pub fn from_snapshot(config: CampaignConfig, snapshot: CampaignSnapshot) -> Self {
        CampaignDetector::try_from_snapshot(config.clone(), snapshot)
            .unwrap_or_else(|_| CampaignDetector::new(config))
    }

    /// Restores a snapshot after checking every reference in it.
    pub fn try_from_snapshot(
        config: CampaignConfig,
        snapshot: CampaignSnapshot,
    ) -> Result<Self, CampaignError> {
        snapshot.restore(config)
    }
}
