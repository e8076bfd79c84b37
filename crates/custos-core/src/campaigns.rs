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
//! address and its network ([`NetworkPrefix`]: /24 or /48). Each risky change
//! links its account to each of its keys, so two accounts that sent money to
//! the same mule, or were changed from the same device or network, end up in
//! one *component*. A component with at least [`CampaignConfig::min_accounts`]
//! accounts is a **campaign**. Only risky changes link: a family business
//! whose two shops share one bank account, changed from home, links nothing.
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
//! starts over). Labels feed back: `fraud` or `compromise_reported` on a
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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::destinations::destination_key;
use crate::event::{Currency, Destination, EventType, InstitutionType, LabelKind};
use crate::profile::{TraitKind, stable_hash_parts};
use crate::state::{NetworkPrefix, Timestamp};

/// Layout version of [`CampaignSnapshot`].
pub const SNAPSHOT_VERSION: u32 = 1;
/// Timeline entries kept from a campaign's start.
pub const TIMELINE_HEAD: usize = 50;
/// Most recent timeline entries kept.
pub const TIMELINE_TAIL: usize = 150;
/// Keys (destinations, devices, addresses, networks, bursts) linked per
/// account at most; beyond, an account's further keys link nothing.
pub const MAX_KEYS_PER_ACCOUNT: usize = 32;
/// Destinations listed per campaign at most (the rest are counted).
pub const MAX_LISTED_DESTINATIONS: usize = 256;

const DAY: i64 = 86_400;
/// Per account, before it joins a campaign: history entries kept from the
/// start of its episode and most recent ones.
const HISTORY_HEAD: usize = 8;
const HISTORY_TAIL: usize = 24;
/// Destinations set in risky changes remembered per account.
const MAX_DESTINATIONS_PER_ACCOUNT: usize = 8;
/// Risky changes toward one institution remembered for burst linking.
const MAX_RECENT_RISKY: usize = 64;
/// Nodes one call may add at most (an account, four keys, a burst node):
/// compaction runs before a call that might not find room.
const NODES_PER_CALL: usize = 8;
/// Institutions with no change for this long may be forgotten when the
/// tracker table is full.
const INSTITUTION_FORGET_DAYS: i64 = 365;

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
}

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Found by the detector, not yet looked at.
    Suspected,
    /// An analyst or a fraud label confirmed it.
    Confirmed,
    /// An analyst dismissed it, or all its members were cleared.
    Dismissed,
}

impl CampaignStatus {
    pub fn from_name(name: &str) -> Option<CampaignStatus> {
        [
            CampaignStatus::Suspected,
            CampaignStatus::Confirmed,
            CampaignStatus::Dismissed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Suspected => "suspected",
            CampaignStatus::Confirmed => "confirmed",
            CampaignStatus::Dismissed => "dismissed",
        }
    }
}

/// What ties accounts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    SharedDestination,
    SharedDevice,
    SharedIp,
    SharedNetwork,
    InstitutionBurst,
}

/// How many keys of each kind link two or more of a campaign's accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCounts {
    pub shared_destination: u32,
    pub shared_device: u32,
    pub shared_ip: u32,
    pub shared_network: u32,
    pub institution_burst: u32,
}

impl LinkCounts {
    fn add(&mut self, kind: LinkKind) {
        let count = match kind {
            LinkKind::SharedDestination => &mut self.shared_destination,
            LinkKind::SharedDevice => &mut self.shared_device,
            LinkKind::SharedIp => &mut self.shared_ip,
            LinkKind::SharedNetwork => &mut self.shared_network,
            LinkKind::InstitutionBurst => &mut self.institution_burst,
        };
        *count = count.saturating_add(1);
    }
}

/// An account in a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignMember {
    pub account_id: String,
    pub joined_at: Timestamp,
    /// The kinds of shared keys that tie it to the others.
    pub via: Vec<LinkKind>,
    /// A `legit` label cleared it.
    pub cleared: bool,
}

/// A payout destination set in a risky change by a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationSummary {
    pub institution_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_type: Option<InstitutionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_last4: Option<String>,
    pub account_token: String,
}

impl DestinationSummary {
    fn of(destination: &Destination) -> DestinationSummary {
        DestinationSummary {
            institution_id: destination.institution_id.clone(),
            institution_type: destination.institution_type,
            country: destination.country.clone(),
            account_last4: destination.account_last4.clone(),
            account_token: destination.account_token.clone(),
        }
    }

    fn same_account(&self, other: &DestinationSummary) -> bool {
        self.institution_id == other.institution_id && self.account_token == other.account_token
    }
}

/// Money moved by a campaign's accounts in one currency, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignMoney {
    /// Withheld (payouts or disbursements held).
    pub held: u64,
    /// Paid out.
    pub paid: u64,
}

impl CampaignMoney {
    fn add(&mut self, other: CampaignMoney) {
        self.held = self.held.saturating_add(other.held);
        self.paid = self.paid.saturating_add(other.paid);
    }

    fn subtract(&mut self, other: CampaignMoney) {
        self.held = self.held.saturating_sub(other.held);
        self.paid = self.paid.saturating_sub(other.paid);
    }
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// A risky sensitive change by a member.
    SensitiveChange,
    /// The campaign was detected.
    Detected,
    /// An account joined.
    Joined,
    /// Another campaign was merged into this one.
    Merged,
    /// An institution's destination changes burst.
    Burst,
    /// A payout or loan disbursement by a member.
    Money,
    /// A label on a member.
    Label,
    /// An analyst set the status.
    Status,
}

/// One thing that happened in a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Timestamp,
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub kind: TimelineKind,
    pub detail: String,
}

/// Who set a campaign's status, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub by: String,
    pub reason: String,
    pub at: Timestamp,
}

/// Accounts taken over together, as the API and webhooks show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// `cmp_1`, `cmp_2`, … in order of detection.
    pub id: String,
    pub status: CampaignStatus,
    pub detected_at: Timestamp,
    pub last_activity: Timestamp,
    /// Members in order of joining (at most
    /// [`CampaignConfig::max_listed_members`]).
    pub accounts: Vec<CampaignMember>,
    /// Members beyond those listed.
    #[serde(default)]
    pub more_accounts: u32,
    /// Destinations members set in risky changes.
    pub destinations: Vec<DestinationSummary>,
    #[serde(default)]
    pub more_destinations: u32,
    /// The institutions of those destinations, sorted.
    pub institutions: Vec<String>,
    pub links: LinkCounts,
    pub money: BTreeMap<Currency, CampaignMoney>,
    /// The first [`TIMELINE_HEAD`] and the last [`TIMELINE_TAIL`] entries,
    /// oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Entries dropped between those.
    #[serde(default)]
    pub timeline_dropped: u64,
    /// Ids of campaigns merged into this one.
    #[serde(default)]
    pub merged: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_by: Option<StatusChange>,
}

impl Campaign {
    /// Members, listed or not.
    pub fn account_count(&self) -> u32 {
        (self.accounts.len() as u32).saturating_add(self.more_accounts)
    }

    pub fn member(&self, account_id: &str) -> Option<&CampaignMember> {
        self.accounts.iter().find(|m| m.account_id == account_id)
    }

    pub fn summary(&self) -> CampaignSummary {
        CampaignSummary {
            id: self.id.clone(),
            status: self.status,
            accounts: self.account_count(),
            destinations: (self.destinations.len() as u32).saturating_add(self.more_destinations),
            institutions: self.institutions.clone(),
            money: self.money.clone(),
            detected_at: self.detected_at,
            last_activity: self.last_activity,
            merged: self.merged.clone(),
        }
    }

    fn push_timeline(&mut self, entry: TimelineEntry) {
        push_bounded(
            &mut self.timeline,
            &mut self.timeline_dropped,
            entry,
            TIMELINE_HEAD,
            TIMELINE_TAIL,
        );
    }

    /// Adds entries that may be older than the newest ones, keeping the
    /// timeline in time order (stable: equal times keep their order).
    fn merge_timeline(&mut self, entries: Vec<TimelineEntry>, dropped: u64) {
        if entries.is_empty() && dropped == 0 {
            return;
        }
        self.timeline.extend(entries);
        self.timeline.sort_by_key(|e| e.at);
        self.timeline_dropped = self.timeline_dropped.saturating_add(dropped);
        let keep = TIMELINE_HEAD + TIMELINE_TAIL;
        if self.timeline.len() > keep {
            let excess = self.timeline.len() - keep;
            self.timeline.drain(TIMELINE_HEAD..TIMELINE_HEAD + excess);
            self.timeline_dropped = self.timeline_dropped.saturating_add(excess as u64);
        }
    }

    fn add_destination(&mut self, destination: &DestinationSummary) -> bool {
        if self
            .destinations
            .iter()
            .any(|d| d.same_account(destination))
        {
            return false;
        }
        if self.destinations.len() < MAX_LISTED_DESTINATIONS {
            self.destinations.push(destination.clone());
            if !self.institutions.contains(&destination.institution_id) {
                self.institutions.push(destination.institution_id.clone());
                self.institutions.sort();
            }
        } else {
            self.more_destinations = self.more_destinations.saturating_add(1);
        }
        true
    }
}

/// The short form of a campaign carried by notices (webhook payloads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignSummary {
    pub id: String,
    pub status: CampaignStatus,
    pub accounts: u32,
    pub destinations: u32,
    pub institutions: Vec<String>,
    pub money: BTreeMap<Currency, CampaignMoney>,
    pub detected_at: Timestamp,
    pub last_activity: Timestamp,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
}

/// What happened to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignNoticeKind {
    /// A new campaign.
    Detected,
    /// A new member or destination (not money: that is visible on request),
    /// another campaign merged in, or back to suspected.
    Updated,
    Confirmed,
    Dismissed,
}

/// A campaign change for the engine to turn into a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignNotice {
    pub kind: CampaignNoticeKind,
    pub campaign_id: String,
    pub summary: CampaignSummary,
}

/// Destination changes toward an institution (or a type) in the window,
/// against what is normal for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Burst {
    /// Changes in the window.
    pub observed: u32,
    /// Of those, risky ones.
    pub risky: u32,
    /// Changes expected in the window.
    pub expected: f64,
    /// `-log10 P(X ≥ observed)` under Poisson(expected); 0 when observed is
    /// not above expected.
    pub score: f64,
    pub bursting: bool,
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

/// The kind of a graph node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum NodeKind {
    Account,
    Destination,
    Device,
    Ip,
    Network,
    Burst,
}

impl NodeKind {
    fn link(self) -> Option<LinkKind> {
        match self {
            NodeKind::Account => None,
            NodeKind::Destination => Some(LinkKind::SharedDestination),
            NodeKind::Device => Some(LinkKind::SharedDevice),
            NodeKind::Ip => Some(LinkKind::SharedIp),
            NodeKind::Network => Some(LinkKind::SharedNetwork),
            NodeKind::Burst => Some(LinkKind::InstitutionBurst),
        }
    }

    /// Shared infrastructure: pruned at the cap, forgotten after the TTL.
    fn prunable(self) -> bool {
        matches!(self, NodeKind::Device | NodeKind::Ip | NodeKind::Network)
    }
}

/// One union-find node. `size` is meaningful at roots only. Snapshots
/// write it as a five-element array: there may be a million of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "NodeRecord", from = "NodeRecord")]
struct Node {
    parent: u32,
    size: u32,
    kind: NodeKind,
    /// For keys: distinct accounts linked.
    linked: u32,
    /// For keys: the last link; for accounts: the last risky change.
    touched: i64,
}

#[derive(Serialize, Deserialize)]
struct NodeRecord(u32, u32, NodeKind, u32, i64);

impl From<Node> for NodeRecord {
    fn from(n: Node) -> NodeRecord {
        NodeRecord(n.parent, n.size, n.kind, n.linked, n.touched)
    }
}

impl From<NodeRecord> for Node {
    fn from(NodeRecord(parent, size, kind, linked, touched): NodeRecord) -> Node {
        Node {
            parent,
            size,
            kind,
            linked,
            touched,
        }
    }
}

/// What a union-find component holds, kept at its root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Component {
    /// Account slots.
    accounts: Vec<u32>,
    /// Accounts not cleared.
    active: u32,
    last_at: i64,
    /// Campaign number (1-based), 0 when none.
    campaign: u32,
}

/// An account that made a risky change.
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
}

/// Changes counted on one day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct DayCount {
    day: i64,
    count: u32,
    risky: u32,
    /// In the window of a burst: kept out of the baseline.
    excluded: bool,
}

/// A risky destination change toward an institution, for burst linking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RecentRisky {
    at: i64,
    account_id: String,
}

/// Daily counts of destination changes toward one institution or type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RateTracker {
    /// Newest day counted.
    day: i64,
    /// The first day of history (the detector's first day).
    history_from: i64,
    /// Days up to this one are in the baseline (or were left out).
    folded_through: i64,
    /// Days in the window with changes, oldest first.
    days: VecDeque<DayCount>,
    /// Baseline daily rate. Stored as bits: JSON floats may not round-trip.
    #[serde(with = "f64_bits")]
    mean: f64,
    /// Days of history behind `mean` (prior included), up to the memory.
    #[serde(with = "f64_bits")]
    weight: f64,
    bursting: bool,
    /// Last day found bursting, and the first day of that burst episode.
    last_burst_day: Option<i64>,
    episode_start: i64,
    /// The burst node key of the current episode.
    burst_key: Option<u64>,
    recent_risky: VecDeque<RecentRisky>,
    total: u64,
}

impl RateTracker {
    /// A tracker whose history starts on `history_from`: the detector's
    /// first day, not the institution's first change. Days with no change
    /// toward an institution are evidence that it is quiet.
    fn new(history_from: i64, config: &CampaignConfig) -> RateTracker {
        let day = history_from;
        RateTracker {
            day,
            history_from: day,
            folded_through: day - 1,
            days: VecDeque::new(),
            mean: config.prior_daily_rate,
            weight: config.prior_days,
            bursting: false,
            last_burst_day: None,
            episode_start: day,
            burst_key: None,
            recent_risky: VecDeque::new(),
            total: 0,
        }
    }

    /// Counts one change on `day`; false if that day has left the window.
    fn count(&mut self, day: i64, risky: bool, config: &CampaignConfig) -> bool {
        if day > self.day {
            self.advance(day, config);
        }
        if day <= self.day - config.window() {
            return false;
        }
        let i = match self.days.binary_search_by_key(&day, |d| d.day) {
            Ok(i) => i,
            Err(i) => {
                self.days.insert(
                    i,
                    DayCount {
                        day,
                        count: 0,
                        risky: 0,
                        excluded: false,
                    },
                );
                i
            }
        };
        let counted = &mut self.days[i];
        counted.count = counted.count.saturating_add(1);
        counted.risky = counted.risky.saturating_add(u32::from(risky));
        self.total = self.total.saturating_add(1);
        true
    }

    /// Moves the newest day to `day`, folding days that left the window.
    fn advance(&mut self, day: i64, config: &CampaignConfig) {
        let cutoff = day - config.window();
        while let Some(front) = self.days.front().copied() {
            if front.day > cutoff {
                break;
            }
            self.days.pop_front();
            // A day before history began (counted out of order) is dropped.
            if front.day > self.folded_through {
                self.fold_zeros(front.day - self.folded_through - 1, config);
                if !front.excluded {
                    self.fold_value(f64::from(front.count), config);
                }
                self.folded_through = front.day;
            }
        }
        if cutoff > self.folded_through {
            self.fold_zeros(cutoff - self.folded_through, config);
            self.folded_through = cutoff;
        }
        self.day = day;
        let window = config.window();
        self.recent_risky
            .retain(|r| r.at.div_euclid(DAY) > day - window);
    }

    fn fold_value(&mut self, value: f64, config: &CampaignConfig) {
        let memory = f64::from(config.baseline_days);
        self.weight = (self.weight + 1.0).min(memory);
        self.mean += (value - self.mean) / self.weight;
    }

    /// Folds `days` days without changes, in closed form once the running
    /// mean has become an exponential one (gaps may be years long).
    fn fold_zeros(&mut self, mut days: i64, config: &CampaignConfig) {
        let memory = f64::from(config.baseline_days);
        while days > 0 && self.weight < memory {
            self.fold_value(0.0, config);
            days -= 1;
        }
        if days > 0 {
            let keep = 1.0 - 1.0 / memory;
            self.mean *= keep.powf(days as f64);
        }
    }

    fn evaluate(&self, day: i64, config: &CampaignConfig) -> Burst {
        let window = config.window();
        let (observed, risky) = self
            .days
            .iter()
            .filter(|d| d.day > day - window && d.day <= day)
            .fold((0u32, 0u32), |(all, risky), d| {
                (all.saturating_add(d.count), risky.saturating_add(d.risky))
            });
        let history = self.folded_through.saturating_sub(self.history_from) + 1;
        let warm = history >= i64::from(config.warmup_days);
        burst_of(observed, risky, self.mean, warm, config)
    }

    /// Records that the tracker is bursting on `day`: the days in the window
    /// stay out of the baseline. True when a new burst episode begins.
    fn mark_bursting(&mut self, day: i64, config: &CampaignConfig) -> bool {
        let window = config.window();
        let new_episode =
            !self.bursting && self.last_burst_day.is_none_or(|last| day - last > window);
        if new_episode {
            self.episode_start = day - window + 1;
        }
        self.bursting = true;
        self.last_burst_day = Some(day);
        let limit = i64::from(config.max_excluded_burst_days);
        for d in self.days.iter_mut() {
            if d.day > day - window && d.day - self.episode_start < limit {
                d.excluded = true;
            }
        }
        new_episode
    }
}

/// The burst statistics of `observed` changes (`risky` of them risky)
/// against a daily rate.
/// Before warm-up nothing bursts.
fn burst_of(
    observed: u32,
    risky: u32,
    daily_rate: f64,
    warm: bool,
    config: &CampaignConfig,
) -> Burst {
    let expected = daily_rate.max(config.min_daily_rate) * config.window() as f64;
    let score = poisson_tail_score(observed, expected);
    let bursting = warm
        && observed >= config.min_burst_count
        && risky >= config.min_risky_in_burst
        && score >= -config.burst_p_value.log10()
        && f64::from(observed) >= config.min_burst_ratio * expected;
    Burst {
        observed,
        risky,
        expected,
        score,
        bursting,
    }
}

/// `-log10 P(X ≥ k)` for X ~ Poisson(lambda), computed in log space so tiny
/// tails do not underflow; 0 when `k` is not above `lambda` (the tail is
/// then about one half or more, never evidence).
fn poisson_tail_score(k: u32, lambda: f64) -> f64 {
    if k == 0 || lambda.is_nan() || lambda <= 0.0 || f64::from(k) <= lambda {
        return 0.0;
    }
    let k_f = f64::from(k);
    let log_first = -lambda + k_f * lambda.ln() - ln_factorial(k);
    // Sum of P(X = i) / P(X = k) for i ≥ k: terms shrink by lambda / i.
    let mut sum = 1.0;
    let mut term = 1.0;
    let mut i = k_f;
    let mut converged = false;
    for _ in 0..100_000 {
        i += 1.0;
        term *= lambda / i;
        sum += term;
        if term < sum * 1e-16 {
            converged = true;
            break;
        }
    }
    if !converged {
        // The rest is below a geometric series with the current ratio.
        let ratio = lambda / (i + 1.0);
        sum += term * ratio / (1.0 - ratio);
    }
    let log_p = log_first + sum.ln();
    (-log_p / std::f64::consts::LN_10).max(0.0)
}

/// `ln(n!)`: exact sum for small `n`, Stirling's series beyond (error far
/// below 1e-10 there).
fn ln_factorial(n: u32) -> f64 {
    if n < 32 {
        return (2..=n).map(|i| f64::from(i).ln()).sum();
    }
    let n = f64::from(n);
    n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
        - 1.0 / (360.0 * n * n * n)
}

/// A stored campaign: alive, or merged into another (by number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CampaignSlot {
    Live(Box<Campaign>),
    Merged { into: u32 },
}

/// Everything the detector knows, in a deterministic order: equal states
/// serialize to equal JSON bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSnapshot {
    version: u32,
    now: i64,
    first_day: Option<i64>,
    compaction_blocked_until: i64,
    refused_nodes: u64,
    nodes: Vec<Node>,
    /// Key hash and node, sorted by hash.
    keys: Vec<(u64, u32)>,
    /// In slot order.
    accounts: Vec<AccountEntry>,
    /// Root and component, sorted by root.
    components: Vec<(u32, Component)>,
    /// Sorted by institution id.
    institutions: Vec<(String, RateTracker)>,
    institution_types: Vec<(InstitutionType, RateTracker)>,
    campaigns: Vec<CampaignSlot>,
}

impl Default for CampaignSnapshot {
    fn default() -> Self {
        CampaignDetector::new(CampaignConfig::default()).to_snapshot()
    }
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
    nodes: Vec<Node>,
    keys: HashMap<u64, u32, RandomState>,
    accounts: Vec<AccountEntry>,
    account_index: HashMap<String, u32, RandomState>,
    components: HashMap<u32, Component, RandomState>,
    institutions: HashMap<String, RateTracker, RandomState>,
    types: [Option<RateTracker>; 4],
    campaigns: Vec<CampaignSlot>,
    /// The newest `at` seen.
    now: i64,
    /// The first day a destination change was counted.
    first_day: Option<i64>,
    compaction_blocked_until: i64,
    refused_nodes: u64,
}

impl Default for CampaignDetector {
    fn default() -> Self {
        CampaignDetector::new(CampaignConfig::default())
    }
}

const NO_CAMPAIGN: u32 = 0;

fn type_index(kind: InstitutionType) -> usize {
    match kind {
        InstitutionType::Bank => 0,
        InstitutionType::EMoney => 1,
        InstitutionType::Prepaid => 2,
        InstitutionType::Other => 3,
    }
}

const TYPES: [InstitutionType; 4] = [
    InstitutionType::Bank,
    InstitutionType::EMoney,
    InstitutionType::Prepaid,
    InstitutionType::Other,
];

fn campaign_id(number: u32) -> String {
    format!("cmp_{number}")
}

fn parse_campaign_id(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("cmp_")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

// Key hashes: fixed forever, snapshots keep them. Destinations use the
// destination index's key, so both modules agree on what a destination is.
fn device_key(device_id: &str) -> u64 {
    stable_hash_parts(
        TraitKind::Device,
        &[b"campaign-device", device_id.as_bytes()],
    )
}

fn ip_bytes(ip: IpAddr) -> ([u8; 16], usize) {
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            (bytes, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

fn ip_key(ip: IpAddr) -> u64 {
    let (bytes, len) = ip_bytes(ip);
    stable_hash_parts(TraitKind::Ip, &[b"campaign-ip", &bytes[..len]])
}

fn network_key(ip: IpAddr) -> u64 {
    let (bytes, len) = ip_bytes(NetworkPrefix::of(ip).ip());
    stable_hash_parts(TraitKind::Network, &[b"campaign-network", &bytes[..len]])
}

fn burst_key(institution_id: &str, day: i64) -> u64 {
    stable_hash_parts(
        TraitKind::Device,
        &[
            b"campaign-burst",
            institution_id.as_bytes(),
            &day.to_le_bytes(),
        ],
    )
}

/// Pushes onto a list that keeps its first `head` and last `tail` entries.
fn push_bounded<T>(list: &mut Vec<T>, dropped: &mut u64, entry: T, head: usize, tail: usize) {
    if list.len() >= head + tail {
        // Drop the oldest quarter of the tail at once: removing one entry
        // per push would shift the whole tail every time.
        let drop = (tail / 4).max(1).min(list.len() - head);
        list.drain(head..head + drop);
        *dropped = dropped.saturating_add(drop as u64);
    }
    list.push(entry);
}

fn add_money(
    money: &mut BTreeMap<Currency, CampaignMoney>,
    currency: Currency,
    amount: CampaignMoney,
) {
    money.entry(currency).or_default().add(amount);
}

fn subtract_money(
    money: &mut BTreeMap<Currency, CampaignMoney>,
    other: &BTreeMap<Currency, CampaignMoney>,
) {
    for (currency, amount) in other {
        if let Some(total) = money.get_mut(currency) {
            total.subtract(*amount);
        }
    }
    money.retain(|_, m| m.held > 0 || m.paid > 0);
}

fn describe_change(change: &SensitiveChange<'_>, destination: Option<&Destination>) -> String {
    let mut detail = change.event_type.as_str().to_string();
    if let Some(d) = destination {
        detail.push_str(" to ");
        detail.push_str(&d.institution_id);
        if let Some(kind) = d.institution_type {
            detail.push_str(&format!(" ({kind})"));
        }
        if let Some(last4) = &d.account_last4 {
            detail.push_str(&format!(" ending {last4}"));
        }
    }
    if let Some(ip) = change.ip {
        detail.push_str(&format!(" from {}", NetworkPrefix::of(ip)));
    }
    detail
}

fn describe_via(via: &[LinkKind]) -> String {
    let names: Vec<&str> = via
        .iter()
        .map(|k| match k {
            LinkKind::SharedDestination => "shared_destination",
            LinkKind::SharedDevice => "shared_device",
            LinkKind::SharedIp => "shared_ip",
            LinkKind::SharedNetwork => "shared_network",
            LinkKind::InstitutionBurst => "institution_burst",
        })
        .collect();
    if names.is_empty() {
        "linked".to_string()
    } else {
        names.join(", ")
    }
}

impl CampaignDetector {
    pub fn new(config: CampaignConfig) -> Self {
        CampaignDetector {
            config: config.sanitized(),
            nodes: Vec::new(),
            keys: HashMap::default(),
            accounts: Vec::new(),
            account_index: HashMap::default(),
            components: HashMap::default(),
            institutions: HashMap::default(),
            types: [None, None, None, None],
            campaigns: Vec::new(),
            now: i64::MIN,
            first_day: None,
            compaction_blocked_until: i64::MIN,
            refused_nodes: 0,
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
        self.make_room(change.at);

        // Bursts first: the change counts whatever else happens.
        let mut burst_links: Vec<(String, u64)> = Vec::new();
        let mut burst_note: Option<(String, Burst)> = None;
        if let Some(d) = destination {
            if let Some((key, accounts, burst, started)) = self.count_institution(d, change) {
                if started {
                    burst_note = Some((d.institution_id.clone(), burst));
                }
                burst_links.extend(accounts.into_iter().map(|a| (a, key)));
            }
            if let Some(kind) = d.institution_type {
                self.count_type(kind, change.at, change.risky);
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
        let slot_index = slot as usize;
        let account = &self.accounts[slot_index];
        // A non-member's money counts only within its episode: after the
        // gap, a later risky change would start a new ledger anyway. This
        // keeps payouts of accounts long past a risky change cheap.
        let gap = i64::from(self.config.episode_gap_days) * DAY;
        if at < account.first_risky_at
            || (!account.member && at.saturating_sub(account.last_risky_at) > gap)
        {
            return Vec::new();
        }
        self.now = self.now.max(at);
        let moved = if held {
            CampaignMoney {
                held: amount,
                paid: 0,
            }
        } else {
            CampaignMoney {
                held: 0,
                paid: amount,
            }
        };
        let entry = TimelineEntry {
            at: Timestamp(at),
            event_id: event_id.to_string(),
            account_id: Some(account_id.to_string()),
            kind: TimelineKind::Money,
            detail: format!("{amount} {currency} {}", if held { "held" } else { "paid" }),
        };
        let account = &mut self.accounts[slot_index];
        add_money(&mut account.money, currency, moved);
        let cleared = account.cleared;
        if !account.member {
            push_bounded(
                &mut account.history,
                &mut account.history_dropped,
                entry,
                HISTORY_HEAD,
                HISTORY_TAIL,
            );
            return Vec::new();
        }
        if let Some(number) = self.campaign_number_of_slot(slot)
            && let Some(campaign) = self.live_mut(number)
        {
            if !cleared {
                add_money(&mut campaign.money, currency, moved);
            }
            campaign.push_timeline(entry);
            campaign.last_activity = campaign.last_activity.max(Timestamp(at));
        }
        Vec::new()
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
        let slot_index = slot as usize;
        let root = self.find(self.accounts[slot_index].node);
        let was_cleared = self.accounts[slot_index].cleared;
        let clear = match label {
            LabelKind::Fraud | LabelKind::CompromiseReported => {
                self.accounts[slot_index].fraud = true;
                Some(false)
            }
            LabelKind::Legit => {
                self.accounts[slot_index].fraud = false;
                Some(true)
            }
            LabelKind::Chargeback => None,
        };
        if let Some(cleared) = clear
            && cleared != was_cleared
        {
            self.accounts[slot_index].cleared = cleared;
            if let Some(component) = self.components.get_mut(&root) {
                component.active = if cleared {
                    component.active.saturating_sub(1)
                } else {
                    component.active.saturating_add(1)
                };
            }
        }
        let entry = TimelineEntry {
            at: Timestamp(at),
            event_id: event_id.to_string(),
            account_id: Some(account_id.to_string()),
            kind: TimelineKind::Label,
            detail: format!("labelled {label}"),
        };
        let account = &mut self.accounts[slot_index];
        if !account.member {
            push_bounded(
                &mut account.history,
                &mut account.history_dropped,
                entry,
                HISTORY_HEAD,
                HISTORY_TAIL,
            );
            return Vec::new();
        }
        let account_money = account.money.clone();
        let Some(number) = self.campaign_number_of_slot(slot) else {
            return Vec::new();
        };
        let active = self.components.get(&root).map_or(0, |c| c.active);
        let Some(campaign) = self.live_mut(number) else {
            return Vec::new();
        };
        campaign.push_timeline(entry);
        campaign.last_activity = campaign.last_activity.max(Timestamp(at));
        let mut kind = None;
        if let Some(cleared) = clear
            && cleared != was_cleared
        {
            if cleared {
                subtract_money(&mut campaign.money, &account_money);
            } else {
                for (currency, amount) in &account_money {
                    add_money(&mut campaign.money, *currency, *amount);
                }
            }
            if let Some(member) = campaign
                .accounts
                .iter_mut()
                .find(|m| m.account_id == account_id)
            {
                member.cleared = cleared;
            }
        }
        match label {
            LabelKind::Fraud | LabelKind::CompromiseReported => {
                if campaign.status != CampaignStatus::Confirmed {
                    campaign.status = CampaignStatus::Confirmed;
                    kind = Some(CampaignNoticeKind::Confirmed);
                }
            }
            LabelKind::Legit => {
                if active == 0 && campaign.status != CampaignStatus::Dismissed {
                    campaign.status = CampaignStatus::Dismissed;
                    kind = Some(CampaignNoticeKind::Dismissed);
                }
            }
            LabelKind::Chargeback => {}
        }
        match kind {
            Some(kind) => vec![CampaignNotice {
                kind,
                campaign_id: campaign.id.clone(),
                summary: campaign.summary(),
            }],
            None => Vec::new(),
        }
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
        let slot_index = slot as usize;
        if self.accounts[slot_index].cleared || !self.accounts[slot_index].member {
            return false;
        }
        self.now = self.now.max(at);
        let root = self.find(self.accounts[slot_index].node);
        self.accounts[slot_index].cleared = true;
        if let Some(component) = self.components.get_mut(&root) {
            component.active = component.active.saturating_sub(1);
        }
        let account_money = self.accounts[slot_index].money.clone();
        let Some(number) = self.campaign_number_of_slot(slot) else {
            return true;
        };
        let Some(campaign) = self.live_mut(number) else {
            return true;
        };
        campaign.push_timeline(TimelineEntry {
            at: Timestamp(at),
            event_id: event_id.to_string(),
            account_id: Some(account_id.to_string()),
            kind: TimelineKind::Label,
            detail: format!("cleared by {by}"),
        });
        campaign.last_activity = campaign.last_activity.max(Timestamp(at));
        subtract_money(&mut campaign.money, &account_money);
        if let Some(member) = campaign
            .accounts
            .iter_mut()
            .find(|m| m.account_id == account_id)
        {
            member.cleared = true;
        }
        true
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
            .and_then(|n| self.resolve(n))
            .ok_or_else(|| CampaignError::UnknownCampaign(campaign_id.to_string()))?;
        self.now = self.now.max(at);
        let Some(campaign) = self.live_mut(number) else {
            return Err(CampaignError::UnknownCampaign(campaign_id.to_string()));
        };
        let changed = campaign.status != status;
        campaign.status = status;
        campaign.status_by = Some(StatusChange {
            by: by.to_string(),
            reason: reason.to_string(),
            at: Timestamp(at),
        });
        campaign.push_timeline(TimelineEntry {
            at: Timestamp(at),
            event_id: event_id.to_string(),
            account_id: None,
            kind: TimelineKind::Status,
            detail: format!("{} by {by}: {reason}", status.as_str()),
        });
        campaign.last_activity = campaign.last_activity.max(Timestamp(at));
        if !changed {
            return Ok(Vec::new());
        }
        let kind = match status {
            CampaignStatus::Suspected => CampaignNoticeKind::Updated,
            CampaignStatus::Confirmed => CampaignNoticeKind::Confirmed,
            CampaignStatus::Dismissed => CampaignNoticeKind::Dismissed,
        };
        Ok(vec![CampaignNotice {
            kind,
            campaign_id: campaign.id.clone(),
            summary: campaign.summary(),
        }])
    }

    // ----- queries -----

    /// Other accounts, not cleared, in the account's link-graph component.
    pub fn linked_accounts(&self, account_id: &str) -> u32 {
        let Some(&slot) = self.account_index.get(account_id) else {
            return 0;
        };
        let account = &self.accounts[slot as usize];
        let root = self.find(account.node);
        let active = self.components.get(&root).map_or(0, |c| c.active);
        if account.cleared {
            active
        } else {
            active.saturating_sub(1)
        }
    }

    /// The campaign the account is in, whatever its status.
    pub fn campaign_of_account(&self, account_id: &str) -> Option<&Campaign> {
        let &slot = self.account_index.get(account_id)?;
        self.live(self.campaign_number_of_slot(slot)?)
    }

    /// The account's campaign if it is live (not dismissed) and the account
    /// is not cleared: what "in a campaign" means for features.
    pub fn account_in_live_campaign(&self, account_id: &str) -> Option<&Campaign> {
        let &slot = self.account_index.get(account_id)?;
        if self.accounts[slot as usize].cleared {
            return None;
        }
        let campaign = self.live(self.campaign_number_of_slot(slot)?)?;
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
        let &node = self.keys.get(&key)?;
        let root = self.find(node);
        let number = self.components.get(&root)?.campaign;
        self.live(self.resolve(number)?)
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
        match self.institutions.get(institution_id) {
            Some(tracker) => tracker.evaluate(at.div_euclid(DAY).max(tracker.day), &self.config),
            None => burst_of(0, 0, self.config.prior_daily_rate, false, &self.config),
        }
    }

    /// The same for all institutions of a type.
    pub fn institution_type_burst(&self, kind: InstitutionType, at: i64) -> Burst {
        match &self.types[type_index(kind)] {
            Some(tracker) => tracker.evaluate(at.div_euclid(DAY).max(tracker.day), &self.config),
            None => burst_of(0, 0, self.config.prior_daily_rate, false, &self.config),
        }
    }

    /// Live campaigns (not merged into another) by id, oldest first; use
    /// `.rev()` for newest first.
    pub fn campaigns(&self) -> impl DoubleEndedIterator<Item = &Campaign> {
        self.campaigns.iter().filter_map(|slot| match slot {
            CampaignSlot::Live(c) => Some(&**c),
            CampaignSlot::Merged { .. } => None,
        })
    }

    /// A campaign by id; an id merged into another gives the survivor.
    pub fn campaign(&self, id: &str) -> Option<&Campaign> {
        self.live(self.resolve(parse_campaign_id(id)?)?)
    }

    pub fn stats(&self) -> CampaignStats {
        CampaignStats {
            nodes: self.nodes.len(),
            accounts: self.accounts.len(),
            keys: self.keys.len(),
            institutions: self.institutions.len(),
            campaigns: self.campaigns().count(),
            refused_nodes: self.refused_nodes,
        }
    }

    // ----- snapshot -----

    pub fn to_snapshot(&self) -> CampaignSnapshot {
        let mut keys: Vec<(u64, u32)> = self.keys.iter().map(|(k, n)| (*k, *n)).collect();
        keys.sort_unstable();
        let mut components: Vec<(u32, Component)> = self
            .components
            .iter()
            .map(|(r, c)| (*r, c.clone()))
            .collect();
        components.sort_unstable_by_key(|(r, _)| *r);
        let mut institutions: Vec<(String, RateTracker)> = self
            .institutions
            .iter()
            .map(|(i, t)| (i.clone(), t.clone()))
            .collect();
        institutions.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let institution_types = TYPES
            .iter()
            .filter_map(|&kind| self.types[type_index(kind)].clone().map(|t| (kind, t)))
            .collect();
        CampaignSnapshot {
            version: SNAPSHOT_VERSION,
            now: self.now,
            first_day: self.first_day,
            compaction_blocked_until: self.compaction_blocked_until,
            refused_nodes: self.refused_nodes,
            nodes: self.nodes.clone(),
            keys,
            accounts: self.accounts.clone(),
            components,
            institutions,
            institution_types,
            campaigns: self.campaigns.clone(),
        }
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
        let damaged = |what: &str| CampaignError::Snapshot(what.to_string());
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(CampaignError::Snapshot(format!(
                "version {} is not {SNAPSHOT_VERSION}",
                snapshot.version
            )));
        }
        let node_count = snapshot.nodes.len();
        if node_count >= u32::MAX as usize || snapshot.accounts.len() >= u32::MAX as usize {
            return Err(damaged("too many nodes"));
        }
        let in_nodes = |n: u32| (n as usize) < node_count;
        if snapshot.nodes.iter().any(|n| !in_nodes(n.parent)) {
            return Err(damaged("node parent out of range"));
        }
        // Parent chains must end at a root: walk each once, marking nodes
        // known to reach one.
        let mut reaches_root = vec![false; node_count];
        let mut path = Vec::new();
        for start in 0..node_count {
            let mut at = start;
            path.clear();
            while !reaches_root[at] {
                let parent = snapshot.nodes[at].parent as usize;
                if parent == at {
                    break;
                }
                path.push(at);
                if path.len() > node_count {
                    return Err(damaged("node parents form a cycle"));
                }
                at = parent;
            }
            reaches_root[at] = true;
            for &n in &path {
                reaches_root[n] = true;
            }
        }
        if snapshot.keys.iter().any(|(_, n)| !in_nodes(*n)) {
            return Err(damaged("key node out of range"));
        }
        let mut account_index: HashMap<String, u32, RandomState> = HashMap::default();
        for (slot, account) in snapshot.accounts.iter().enumerate() {
            if !in_nodes(account.node) || account.keys.iter().any(|&k| !in_nodes(k)) {
                return Err(damaged("account node out of range"));
            }
            if account_index
                .insert(account.id.clone(), slot as u32)
                .is_some()
            {
                return Err(damaged("account listed twice"));
            }
        }
        let campaign_count = snapshot.campaigns.len() as u32;
        let mut components: HashMap<u32, Component, RandomState> = HashMap::default();
        for (root, component) in snapshot.components {
            if !in_nodes(root)
                || snapshot.nodes[root as usize].parent != root
                || component
                    .accounts
                    .iter()
                    .any(|&s| s as usize >= snapshot.accounts.len())
                || component.campaign > campaign_count
            {
                return Err(damaged("component out of range"));
            }
            components.insert(root, component);
        }
        for (i, slot) in snapshot.campaigns.iter().enumerate() {
            if let CampaignSlot::Merged { into } = slot
                && (*into == 0 || *into > campaign_count || *into as usize == i + 1)
            {
                return Err(damaged("campaign merged out of range"));
            }
        }
        let mut detector = CampaignDetector::new(config);
        detector.campaigns = snapshot.campaigns;
        for number in 1..=campaign_count {
            if detector.resolve(number).is_none() {
                return Err(damaged("campaign merges form a cycle"));
            }
        }
        detector.now = snapshot.now;
        detector.first_day = snapshot.first_day;
        detector.compaction_blocked_until = snapshot.compaction_blocked_until;
        detector.refused_nodes = snapshot.refused_nodes;
        detector.nodes = snapshot.nodes;
        detector.keys = snapshot.keys.into_iter().collect();
        detector.accounts = snapshot.accounts;
        detector.account_index = account_index;
        detector.components = components;
        detector.institutions = snapshot.institutions.into_iter().collect();
        for (kind, tracker) in snapshot.institution_types {
            detector.types[type_index(kind)] = Some(tracker);
        }
        Ok(detector)
    }

    // ----- internals: union-find -----

    /// The root of `node`, without path compression (for `&self` queries;
    /// union by size keeps trees shallow).
    fn find(&self, mut node: u32) -> u32 {
        loop {
            let parent = self.nodes[node as usize].parent;
            if parent == node {
                return node;
            }
            node = parent;
        }
    }

    /// The root of `node`, compressing the path.
    fn find_compress(&mut self, node: u32) -> u32 {
        let root = self.find(node);
        let mut at = node;
        while at != root {
            let next = self.nodes[at as usize].parent;
            self.nodes[at as usize].parent = root;
            at = next;
        }
        root
    }

    fn new_node(&mut self, kind: NodeKind, at: i64) -> Option<u32> {
        if self.nodes.len() >= self.config.max_nodes {
            self.refused_nodes = self.refused_nodes.saturating_add(1);
            return None;
        }
        let index = self.nodes.len() as u32;
        self.nodes.push(Node {
            parent: index,
            size: 1,
            kind,
            linked: 0,
            touched: at,
        });
        Some(index)
    }

    /// Joins the components of `a` and `b`, merging their campaigns.
    fn union(&mut self, a: u32, b: u32, at: i64, pending: &mut Pending) {
        let ra = self.find_compress(a);
        let rb = self.find_compress(b);
        if ra == rb {
            if let Some(c) = self.components.get_mut(&ra) {
                c.last_at = c.last_at.max(at);
            }
            return;
        }
        let (big, small) = if self.nodes[ra as usize].size >= self.nodes[rb as usize].size {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.nodes[small as usize].parent = big;
        self.nodes[big as usize].size = self.nodes[big as usize]
            .size
            .saturating_add(self.nodes[small as usize].size);
        let merged = match (self.components.remove(&big), self.components.remove(&small)) {
            (None, None) => None,
            (Some(c), None) | (None, Some(c)) => Some(c),
            (Some(x), Some(y)) => Some(self.merge_components(x, y, pending)),
        };
        if let Some(mut component) = merged {
            component.last_at = component.last_at.max(at);
            self.components.insert(big, component);
        }
    }

    fn merge_components(&mut self, x: Component, y: Component, pending: &mut Pending) -> Component {
        let campaign = match (x.campaign, y.campaign) {
            (NO_CAMPAIGN, NO_CAMPAIGN) => NO_CAMPAIGN,
            (c, NO_CAMPAIGN) => {
                pending.joins.extend_from_slice(&y.accounts);
                c
            }
            (NO_CAMPAIGN, c) => {
                pending.joins.extend_from_slice(&x.accounts);
                c
            }
            (c1, c2) => self.merge_campaigns(c1.min(c2), c1.max(c2), pending),
        };
        let (mut accounts, rest) = if x.accounts.len() >= y.accounts.len() {
            (x.accounts, y.accounts)
        } else {
            (y.accounts, x.accounts)
        };
        accounts.extend_from_slice(&rest);
        Component {
            accounts,
            active: x.active.saturating_add(y.active),
            last_at: x.last_at.max(y.last_at),
            campaign,
        }
    }

    /// Folds campaign `gone` into the older `keep`; returns `keep`.
    fn merge_campaigns(&mut self, keep: u32, gone: u32, pending: &mut Pending) -> u32 {
        let (Some(keep), Some(gone)) = (self.resolve(keep), self.resolve(gone)) else {
            return keep;
        };
        if keep == gone {
            return keep;
        }
        let Some(slot) = self.campaigns.get_mut(gone as usize - 1) else {
            return keep;
        };
        let CampaignSlot::Live(absorbed) =
            std::mem::replace(slot, CampaignSlot::Merged { into: keep })
        else {
            return keep;
        };
        let listed_cap = self.config.max_listed_members;
        let Some(survivor) = self.live_mut(keep) else {
            return keep;
        };
        let absorbed = *absorbed;
        for member in absorbed.accounts {
            if survivor.accounts.len() < listed_cap {
                survivor.accounts.push(member);
            } else {
                survivor.more_accounts = survivor.more_accounts.saturating_add(1);
            }
        }
        survivor.more_accounts = survivor
            .more_accounts
            .saturating_add(absorbed.more_accounts);
        for destination in &absorbed.destinations {
            survivor.add_destination(destination);
        }
        survivor.more_destinations = survivor
            .more_destinations
            .saturating_add(absorbed.more_destinations);
        for (currency, amount) in absorbed.money {
            add_money(&mut survivor.money, currency, amount);
        }
        let merged_at = survivor.last_activity.max(absorbed.last_activity);
        survivor.merge_timeline(absorbed.timeline, absorbed.timeline_dropped);
        survivor.push_timeline(TimelineEntry {
            at: merged_at,
            event_id: String::new(),
            account_id: None,
            kind: TimelineKind::Merged,
            detail: format!("{} merged into {}", absorbed.id, survivor.id),
        });
        survivor.merged.push(absorbed.id);
        survivor.merged.extend(absorbed.merged);
        survivor.detected_at = survivor.detected_at.min(absorbed.detected_at);
        survivor.last_activity = merged_at;
        survivor.status = match (survivor.status, absorbed.status) {
            (CampaignStatus::Confirmed, _) | (_, CampaignStatus::Confirmed) => {
                CampaignStatus::Confirmed
            }
            (CampaignStatus::Dismissed, CampaignStatus::Dismissed) => CampaignStatus::Dismissed,
            _ => CampaignStatus::Suspected,
        };
        if survivor.status_by.is_none() {
            survivor.status_by = absorbed.status_by;
        }
        pending.notices.push((keep, CampaignNoticeKind::Updated));
        keep
    }

    // ----- internals: campaigns -----

    /// Follows merges to a live campaign number.
    fn resolve(&self, mut number: u32) -> Option<u32> {
        for _ in 0..=self.campaigns.len() {
            match self.campaigns.get((number as usize).checked_sub(1)?)? {
                CampaignSlot::Live(_) => return Some(number),
                CampaignSlot::Merged { into } => number = *into,
            }
        }
        None
    }

    fn live(&self, number: u32) -> Option<&Campaign> {
        match self.campaigns.get((number as usize).checked_sub(1)?)? {
            CampaignSlot::Live(c) => Some(c),
            CampaignSlot::Merged { .. } => None,
        }
    }

    fn live_mut(&mut self, number: u32) -> Option<&mut Campaign> {
        match self.campaigns.get_mut((number as usize).checked_sub(1)?)? {
            CampaignSlot::Live(c) => Some(c),
            CampaignSlot::Merged { .. } => None,
        }
    }

    fn campaign_number_of_slot(&self, slot: u32) -> Option<u32> {
        let root = self.find(self.accounts[slot as usize].node);
        let number = self.components.get(&root)?.campaign;
        self.resolve(number)
    }

    /// The kinds of the account's keys that link it to another account.
    fn via_of(&self, slot: u32) -> Vec<LinkKind> {
        let mut via: Vec<LinkKind> = self.accounts[slot as usize]
            .keys
            .iter()
            .map(|&k| self.nodes[k as usize])
            .filter(|n| n.linked >= 2)
            .filter_map(|n| n.kind.link())
            .collect();
        via.sort_unstable();
        via.dedup();
        via
    }

    /// Makes `slot` a member of campaign `number`.
    fn join(&mut self, number: u32, slot: u32, at: i64, announce: bool, pending: &mut Pending) {
        let via = self.via_of(slot);
        let listed_cap = self.config.max_listed_members;
        let account = &mut self.accounts[slot as usize];
        account.member = true;
        let history = std::mem::take(&mut account.history);
        let history_dropped = std::mem::take(&mut account.history_dropped);
        let account_id = account.id.clone();
        let cleared = account.cleared;
        let fraud = account.fraud;
        let money = if cleared {
            BTreeMap::new()
        } else {
            account.money.clone()
        };
        let destinations = account.destinations.clone();
        let Some(campaign) = self.live_mut(number) else {
            return;
        };
        if campaign.accounts.len() < listed_cap {
            campaign.accounts.push(CampaignMember {
                account_id: account_id.clone(),
                joined_at: Timestamp(at),
                via: via.clone(),
                cleared,
            });
        } else {
            campaign.more_accounts = campaign.more_accounts.saturating_add(1);
        }
        for (currency, amount) in money {
            add_money(&mut campaign.money, currency, amount);
        }
        for destination in &destinations {
            campaign.add_destination(destination);
        }
        campaign.merge_timeline(history, history_dropped);
        if announce {
            campaign.push_timeline(TimelineEntry {
                at: Timestamp(at),
                event_id: String::new(),
                account_id: Some(account_id),
                kind: TimelineKind::Joined,
                detail: format!("joined via {}", describe_via(&via)),
            });
            pending.notices.push((number, CampaignNoticeKind::Updated));
            if campaign.status == CampaignStatus::Dismissed {
                campaign.status = CampaignStatus::Suspected;
            }
        }
        if fraud && campaign.status != CampaignStatus::Confirmed {
            campaign.status = CampaignStatus::Confirmed;
            pending
                .notices
                .push((number, CampaignNoticeKind::Confirmed));
        }
    }

    /// Turns the component of `slot` into a campaign if it is big enough.
    fn maybe_create(&mut self, slot: u32, at: i64, event_id: &str, pending: &mut Pending) {
        let root = self.find(self.accounts[slot as usize].node);
        let Some(component) = self.components.get(&root) else {
            return;
        };
        if component.campaign != NO_CAMPAIGN
            || (component.accounts.len() as u64) < u64::from(self.config.min_accounts)
            || self.campaigns.len() >= self.config.max_campaigns
        {
            return;
        }
        let mut members = component.accounts.clone();
        // Listed in the order they were first seen at risk.
        members.sort_by(|&a, &b| {
            let (a, b) = (&self.accounts[a as usize], &self.accounts[b as usize]);
            (a.first_risky_at, &a.id).cmp(&(b.first_risky_at, &b.id))
        });
        let number = self.campaigns.len() as u32 + 1;
        self.campaigns.push(CampaignSlot::Live(Box::new(Campaign {
            id: campaign_id(number),
            status: CampaignStatus::Suspected,
            detected_at: Timestamp(at),
            last_activity: Timestamp(at),
            accounts: Vec::new(),
            more_accounts: 0,
            destinations: Vec::new(),
            more_destinations: 0,
            institutions: Vec::new(),
            links: LinkCounts::default(),
            money: BTreeMap::new(),
            timeline: Vec::new(),
            timeline_dropped: 0,
            merged: Vec::new(),
            status_by: None,
        })));
        if let Some(component) = self.components.get_mut(&root) {
            component.campaign = number;
        }
        pending.notices.push((number, CampaignNoticeKind::Detected));
        for &member in &members {
            self.join(number, member, at, false, pending);
        }
        self.refresh(number);
        let detail = match self.live(number) {
            Some(c) => {
                let mut kinds = Vec::new();
                for (kind, count) in [
                    (LinkKind::SharedDestination, c.links.shared_destination),
                    (LinkKind::SharedDevice, c.links.shared_device),
                    (LinkKind::SharedIp, c.links.shared_ip),
                    (LinkKind::SharedNetwork, c.links.shared_network),
                    (LinkKind::InstitutionBurst, c.links.institution_burst),
                ] {
                    if count > 0 {
                        kinds.push(kind);
                    }
                }
                format!(
                    "{} accounts linked by {}",
                    members.len(),
                    describe_via(&kinds)
                )
            }
            None => return,
        };
        if let Some(campaign) = self.live_mut(number) {
            campaign.push_timeline(TimelineEntry {
                at: Timestamp(at),
                event_id: event_id.to_string(),
                account_id: None,
                kind: TimelineKind::Detected,
                detail,
            });
        }
    }

    /// Recomputes one member's `via` and `cleared`. The campaign's link
    /// counts wait for its next whole refresh (when an account or a
    /// destination joins).
    fn refresh_member(&mut self, number: u32, slot: u32) {
        let via = self.via_of(slot);
        let account = &self.accounts[slot as usize];
        let cleared = account.cleared;
        let id = account.id.clone();
        if let Some(campaign) = self.live_mut(number)
            && let Some(member) = campaign.accounts.iter_mut().find(|m| m.account_id == id)
        {
            member.via = via;
            member.cleared = cleared;
        }
    }

    /// Recomputes what is derived from the members' keys: each member's
    /// `via` and `cleared`, and the link counts.
    fn refresh(&mut self, number: u32) {
        let Some(campaign) = self.live(number) else {
            return;
        };
        let mut updates = Vec::with_capacity(campaign.accounts.len());
        let mut shared: Vec<u32> = Vec::new();
        for member in &campaign.accounts {
            let Some(&slot) = self.account_index.get(member.account_id.as_str()) else {
                updates.push(None);
                continue;
            };
            let account = &self.accounts[slot as usize];
            shared.extend(
                account
                    .keys
                    .iter()
                    .copied()
                    .filter(|&k| self.nodes[k as usize].linked >= 2),
            );
            updates.push(Some((self.via_of(slot), account.cleared)));
        }
        shared.sort_unstable();
        shared.dedup();
        let mut links = LinkCounts::default();
        for &key in &shared {
            if let Some(kind) = self.nodes[key as usize].kind.link() {
                links.add(kind);
            }
        }
        let Some(campaign) = self.live_mut(number) else {
            return;
        };
        for (member, update) in campaign.accounts.iter_mut().zip(updates) {
            if let Some((via, cleared)) = update {
                member.via = via;
                member.cleared = cleared;
            }
        }
        campaign.links = links;
    }

    /// Settles a call: members join, components become campaigns, derived
    /// fields are refreshed, and the notices are built (one per campaign
    /// and kind, `Detected` standing for `Updated`).
    fn settle(&mut self, mut pending: Pending, at: i64, event_id: &str) -> Vec<CampaignNotice> {
        let joins = std::mem::take(&mut pending.joins);
        for slot in joins {
            if self.accounts[slot as usize].member {
                continue;
            }
            if let Some(number) = self.campaign_number_of_slot(slot) {
                self.join(number, slot, at, true, &mut pending);
            }
        }
        let touched = std::mem::take(&mut pending.touched);
        for &slot in &touched {
            self.maybe_create(slot, at, event_id, &mut pending);
        }
        for (slot, entry) in std::mem::take(&mut pending.member_entries) {
            if let Some(number) = self.campaign_number_of_slot(slot)
                && let Some(campaign) = self.live_mut(number)
            {
                campaign.push_timeline(entry);
            }
        }
        for (slot, destination) in std::mem::take(&mut pending.member_destinations) {
            if let Some(number) = self.campaign_number_of_slot(slot)
                && let Some(campaign) = self.live_mut(number)
                && campaign.add_destination(&destination)
            {
                pending.notices.push((number, CampaignNoticeKind::Updated));
            }
        }
        if let Some((slot, entry)) = pending.burst_entry.take()
            && let Some(number) = self.campaign_number_of_slot(slot)
            && let Some(campaign) = self.live_mut(number)
        {
            campaign.push_timeline(entry);
        }

        // A campaign that gained members, destinations or another campaign
        // is refreshed whole; one whose member only made another change has
        // just that member refreshed. A whole refresh visits every member,
        // which a large campaign cannot afford on every change it sees.
        let noticed: Vec<u32> = pending
            .notices
            .iter()
            .filter_map(|&(n, _)| self.resolve(n))
            .collect();
        let mut refreshed: Vec<u32> = Vec::new();
        for number in noticed {
            if refreshed.contains(&number) {
                continue;
            }
            refreshed.push(number);
            self.refresh(number);
            if let Some(campaign) = self.live_mut(number) {
                campaign.last_activity = campaign.last_activity.max(Timestamp(at));
            }
        }
        for &slot in &touched {
            if let Some(number) = self.campaign_number_of_slot(slot)
                && !refreshed.contains(&number)
            {
                self.refresh_member(number, slot);
                if let Some(campaign) = self.live_mut(number) {
                    campaign.last_activity = campaign.last_activity.max(Timestamp(at));
                }
            }
        }

        let mut notices: Vec<(u32, CampaignNoticeKind)> = Vec::new();
        for (number, kind) in pending.notices {
            let Some(number) = self.resolve(number) else {
                continue;
            };
            if notices.contains(&(number, kind)) {
                continue;
            }
            if kind == CampaignNoticeKind::Updated
                && notices.contains(&(number, CampaignNoticeKind::Detected))
            {
                continue;
            }
            if kind == CampaignNoticeKind::Detected {
                notices.retain(|&(n, k)| !(n == number && k == CampaignNoticeKind::Updated));
            }
            notices.push((number, kind));
        }
        notices
            .into_iter()
            .filter_map(|(number, kind)| {
                let campaign = self.live(number)?;
                Some(CampaignNotice {
                    kind,
                    campaign_id: campaign.id.clone(),
                    summary: campaign.summary(),
                })
            })
            .collect()
    }

    // ----- internals: accounts and keys -----

    /// The account's slot, created on its first risky change; records the
    /// change in its history.
    fn touch_account(
        &mut self,
        change: &SensitiveChange<'_>,
        destination: Option<&Destination>,
        pending: &mut Pending,
    ) -> Option<u32> {
        let at = change.at;
        let slot = match self.account_index.get(change.account_id) {
            Some(&slot) => slot,
            None => {
                let node = self.new_node(NodeKind::Account, at)?;
                let slot = self.accounts.len() as u32;
                self.accounts.push(AccountEntry {
                    id: change.account_id.to_string(),
                    node,
                    keys: Vec::new(),
                    first_risky_at: at,
                    last_risky_at: at,
                    cleared: false,
                    fraud: false,
                    member: false,
                    money: BTreeMap::new(),
                    history: Vec::new(),
                    history_dropped: 0,
                    destinations: Vec::new(),
                });
                self.account_index
                    .insert(change.account_id.to_string(), slot);
                self.components.insert(
                    node,
                    Component {
                        accounts: vec![slot],
                        active: 1,
                        last_at: at,
                        campaign: NO_CAMPAIGN,
                    },
                );
                slot
            }
        };
        let gap = i64::from(self.config.episode_gap_days) * DAY;
        let account = &mut self.accounts[slot as usize];
        if !account.member && at.saturating_sub(account.last_risky_at) > gap {
            // A new episode: money and history start over.
            account.first_risky_at = at;
            account.money.clear();
            account.history.clear();
            account.history_dropped = 0;
        }
        account.first_risky_at = account.first_risky_at.min(at);
        account.last_risky_at = account.last_risky_at.max(at);
        let node = account.node;
        self.nodes[node as usize].touched = self.nodes[node as usize].touched.max(at);
        let entry = TimelineEntry {
            at: Timestamp(at),
            event_id: change.event_id.to_string(),
            account_id: Some(change.account_id.to_string()),
            kind: TimelineKind::SensitiveChange,
            detail: describe_change(change, destination),
        };
        let account = &mut self.accounts[slot as usize];
        if account.member {
            pending.member_entries.push((slot, entry));
        } else {
            push_bounded(
                &mut account.history,
                &mut account.history_dropped,
                entry,
                HISTORY_HEAD,
                HISTORY_TAIL,
            );
        }
        if let Some(d) = destination {
            let summary = DestinationSummary::of(d);
            if !account
                .destinations
                .iter()
                .any(|x| x.same_account(&summary))
            {
                if account.destinations.len() >= MAX_DESTINATIONS_PER_ACCOUNT {
                    account.destinations.remove(0);
                }
                account.destinations.push(summary.clone());
            }
            if account.member {
                pending.member_destinations.push((slot, summary));
            }
        }
        Some(slot)
    }

    /// Links account `slot` to the key `hash`, unless the key is a pruned
    /// hub or the account already holds as many keys as it may.
    fn link(&mut self, slot: u32, hash: u64, kind: NodeKind, at: i64, pending: &mut Pending) {
        let ttl = i64::from(self.config.key_ttl_days) * DAY;
        let existing = self.keys.get(&hash).copied().filter(|&node| {
            // Shared infrastructure quiet for longer than the TTL starts
            // over (the old node stays in its component).
            !(kind.prunable() && at.saturating_sub(self.nodes[node as usize].touched) > ttl)
        });
        if let Some(node) = existing
            && self.accounts[slot as usize].keys.contains(&node)
        {
            let key = &mut self.nodes[node as usize];
            key.touched = key.touched.max(at);
            let root = self.find_compress(node);
            if let Some(c) = self.components.get_mut(&root) {
                c.last_at = c.last_at.max(at);
            }
            return;
        }
        if self.accounts[slot as usize].keys.len() >= MAX_KEYS_PER_ACCOUNT {
            return;
        }
        let node = match existing {
            Some(node) => {
                if kind.prunable()
                    && self.nodes[node as usize].linked >= self.config.max_accounts_per_key
                {
                    return;
                }
                node
            }
            None => {
                let Some(node) = self.new_node(kind, at) else {
                    return;
                };
                self.keys.insert(hash, node);
                node
            }
        };
        self.accounts[slot as usize].keys.push(node);
        let key = &mut self.nodes[node as usize];
        key.linked = key.linked.saturating_add(1);
        key.touched = key.touched.max(at);
        let account_node = self.accounts[slot as usize].node;
        self.union(account_node, node, at, pending);
    }

    /// Counts a destination change toward its institution. When it is
    /// bursting, returns the burst node key, the risky changers in the
    /// window to link to it, the burst, and whether it just began.
    fn count_institution(
        &mut self,
        destination: &Destination,
        change: &SensitiveChange<'_>,
    ) -> Option<(u64, Vec<String>, Burst, bool)> {
        let institution = destination.institution_id.as_str();
        let day = change.at.div_euclid(DAY);
        let history_from = self.history_from(day);
        if !self.institutions.contains_key(institution) {
            if self.institutions.len() >= self.config.max_institutions {
                let horizon = self.now.div_euclid(DAY) - INSTITUTION_FORGET_DAYS;
                self.institutions.retain(|_, t| t.day >= horizon);
                if self.institutions.len() >= self.config.max_institutions {
                    return None;
                }
            }
            self.institutions.insert(
                institution.to_string(),
                RateTracker::new(history_from, &self.config),
            );
        }
        let config = &self.config;
        let tracker = self.institutions.get_mut(institution)?;
        if !tracker.count(day, change.risky, config) {
            return None;
        }
        if change.risky {
            if tracker.recent_risky.len() >= MAX_RECENT_RISKY {
                tracker.recent_risky.pop_front();
            }
            tracker.recent_risky.push_back(RecentRisky {
                at: change.at,
                account_id: change.account_id.to_string(),
            });
        }
        let burst = tracker.evaluate(tracker.day, config);
        if !burst.bursting {
            tracker.bursting = false;
            return None;
        }
        let today = tracker.day;
        let started = !tracker.bursting;
        if tracker.mark_bursting(today, config) || tracker.burst_key.is_none() {
            tracker.burst_key = Some(burst_key(institution, today));
        }
        let key = tracker.burst_key?;
        let window = config.window();
        let accounts = tracker
            .recent_risky
            .iter()
            .filter(|r| r.at.div_euclid(DAY) > today - window)
            .map(|r| r.account_id.clone())
            .collect();
        Some((key, accounts, burst, started))
    }

    /// The day burst history starts: the first day a destination change was
    /// counted.
    fn history_from(&mut self, day: i64) -> i64 {
        *self.first_day.get_or_insert(day)
    }

    fn count_type(&mut self, kind: InstitutionType, at: i64, risky: bool) {
        let day = at.div_euclid(DAY);
        let history_from = self.history_from(day);
        let config = &self.config;
        let tracker = self.types[type_index(kind)]
            .get_or_insert_with(|| RateTracker::new(history_from, config));
        if !tracker.count(day, risky, config) {
            return;
        }
        let today = tracker.day;
        if tracker.evaluate(today, config).bursting {
            tracker.mark_bursting(today, config);
        } else {
            tracker.bursting = false;
        }
    }

    // ----- internals: bounds -----

    /// Compacts the graph if this call might not find room: components
    /// that are not campaigns and saw no link since the horizon are dropped.
    fn make_room(&mut self, at: i64) {
        if self.nodes.len() + NODES_PER_CALL <= self.config.max_nodes
            || at < self.compaction_blocked_until
        {
            return;
        }
        let horizon = at.saturating_sub(i64::from(self.config.forget_after_days) * DAY);
        let count = self.nodes.len();
        let roots: Vec<u32> = (0..count as u32).map(|n| self.find_compress(n)).collect();
        let keep_root = |root: u32| {
            self.components
                .get(&root)
                .is_some_and(|c| c.campaign != NO_CAMPAIGN || c.last_at >= horizon)
        };
        let mut new_index = vec![u32::MAX; count];
        let mut nodes = Vec::with_capacity(count);
        for old in 0..count {
            if keep_root(roots[old]) {
                new_index[old] = nodes.len() as u32;
                nodes.push(self.nodes[old]);
            }
        }
        if nodes.len() == count {
            self.compaction_blocked_until = at.saturating_add(DAY);
            return;
        }
        for (old, &new) in new_index.iter().enumerate() {
            if new != u32::MAX {
                nodes[new as usize].parent = new_index[roots[old] as usize];
            }
        }
        let mut new_slot = vec![u32::MAX; self.accounts.len()];
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for (old_slot, mut account) in std::mem::take(&mut self.accounts).into_iter().enumerate() {
            let node = new_index[account.node as usize];
            if node == u32::MAX {
                continue;
            }
            account.node = node;
            account.keys = account
                .keys
                .iter()
                .map(|&k| new_index[k as usize])
                .filter(|&k| k != u32::MAX)
                .collect();
            new_slot[old_slot] = accounts.len() as u32;
            accounts.push(account);
        }
        self.account_index = accounts
            .iter()
            .enumerate()
            .map(|(slot, a)| (a.id.clone(), slot as u32))
            .collect();
        self.accounts = accounts;
        self.keys
            .retain(|_, node| new_index[*node as usize] != u32::MAX);
        for node in self.keys.values_mut() {
            *node = new_index[*node as usize];
        }
        self.components = std::mem::take(&mut self.components)
            .into_iter()
            .filter(|(root, _)| new_index[*root as usize] != u32::MAX)
            .map(|(root, mut c)| {
                c.accounts = c
                    .accounts
                    .iter()
                    .map(|&s| new_slot[s as usize])
                    .filter(|&s| s != u32::MAX)
                    .collect();
                (new_index[root as usize], c)
            })
            .collect();
        let freed = count - nodes.len();
        self.nodes = nodes;
        if freed < self.config.max_nodes / 10 {
            // Too little to gain: try again tomorrow, not on every call.
            self.compaction_blocked_until = at.saturating_add(DAY);
        }
    }
}

/// f64 as its bit pattern, so that snapshots restore exactly.
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        u64::deserialize(deserializer).map(f64::from_bits)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// Midnight UTC, 2023-11-15: the synthetic worlds' day 0.
    const START: i64 = 1_700_006_400;
    const HOUR: i64 = 3_600;

    fn destination(institution: &str, token: &str, kind: Option<InstitutionType>) -> Destination {
        Destination {
            institution_id: institution.into(),
            institution_type: kind,
            country: Some("GB".into()),
            account_token: token.into(),
            account_last4: Some("1234".into()),
            holder_name: None,
        }
    }

    fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn mule(token: &str) -> Destination {
        destination("608371", token, Some(InstitutionType::EMoney))
    }

    /// A payout-destination change with the account's own device.
    fn set_destination(
        detector: &mut CampaignDetector,
        account: &str,
        at: i64,
        destination: &Destination,
        address: IpAddr,
        risky: bool,
    ) -> Vec<CampaignNotice> {
        let device = format!("device-{account}");
        let event = format!("evt-{account}-{at}");
        detector.observe_change(&SensitiveChange {
            account_id: account,
            event_id: &event,
            at,
            event_type: EventType::PayoutDestinationChange,
            destination: Some(destination),
            device_id: Some(&device),
            ip: Some(address),
            risky,
        })
    }

    /// A risky password change from `address`, without a device id.
    fn password_change(
        detector: &mut CampaignDetector,
        account: &str,
        at: i64,
        address: IpAddr,
    ) -> Vec<CampaignNotice> {
        detector.observe_change(&SensitiveChange {
            account_id: account,
            event_id: &format!("pw-{account}-{at}"),
            at,
            event_type: EventType::PasswordChange,
            destination: None,
            device_id: None,
            ip: Some(address),
            risky: true,
        })
    }

    fn gbp() -> Currency {
        Currency::parse("GBP").unwrap()
    }

    fn kinds(notices: &[CampaignNotice]) -> Vec<(CampaignNoticeKind, &str)> {
        notices
            .iter()
            .map(|n| (n.kind, n.campaign_id.as_str()))
            .collect()
    }

    fn member_ids(campaign: &Campaign) -> Vec<&str> {
        campaign
            .accounts
            .iter()
            .map(|m| m.account_id.as_str())
            .collect()
    }

    /// Two accounts sending money to one mule, each from its own address
    /// (the same two addresses on every call: calls close in time link).
    fn two_victims(
        detector: &mut CampaignDetector,
        token: &str,
        first: &str,
        second: &str,
        at: i64,
    ) {
        let d = mule(token);
        set_destination(detector, first, at, &d, ip(203, 0, 113, 7), true);
        set_destination(detector, second, at + HOUR, &d, ip(198, 51, 100, 9), true);
    }

    // ----- the link graph -----

    #[test]
    fn union_find_joins_by_size_and_compresses_paths() {
        let mut detector = CampaignDetector::default();
        let nodes: Vec<u32> = (0..6)
            .map(|_| detector.new_node(NodeKind::Device, 0).unwrap())
            .collect();
        let mut pending = Pending::default();
        detector.union(nodes[0], nodes[1], 0, &mut pending);
        detector.union(nodes[2], nodes[3], 0, &mut pending);
        detector.union(nodes[3], nodes[4], 0, &mut pending);
        // {2,3,4} is bigger than {0,1}: its root stays the root.
        let big_root = detector.find(nodes[2]);
        detector.union(nodes[1], nodes[4], 0, &mut pending);
        for &n in &nodes[..5] {
            assert_eq!(detector.find(n), big_root);
        }
        assert_eq!(detector.nodes[big_root as usize].size, 5);
        assert_ne!(detector.find(nodes[5]), big_root);
        detector.find_compress(nodes[0]);
        assert_eq!(detector.nodes[nodes[0] as usize].parent, big_root);
    }

    #[test]
    fn two_accounts_sharing_a_mule_through_risky_changes_are_a_campaign() {
        let mut detector = CampaignDetector::default();
        let d = mule("tk_mule");
        let first = set_destination(
            &mut detector,
            "victim-1",
            START,
            &d,
            ip(203, 0, 113, 7),
            true,
        );
        assert!(first.is_empty(), "one account is not a campaign");
        assert_eq!(detector.linked_accounts("victim-1"), 0);
        let second = set_destination(
            &mut detector,
            "victim-2",
            START + HOUR,
            &d,
            ip(198, 51, 100, 9),
            true,
        );
        assert_eq!(kinds(&second), [(CampaignNoticeKind::Detected, "cmp_1")]);
        assert_eq!(second[0].summary.accounts, 2);
        assert_eq!(second[0].summary.institutions, ["608371"]);

        let campaign = detector.campaign_of_account("victim-1").unwrap();
        assert_eq!(campaign.id, "cmp_1");
        assert_eq!(campaign.status, CampaignStatus::Suspected);
        assert_eq!(member_ids(campaign), ["victim-1", "victim-2"]);
        for member in &campaign.accounts {
            assert_eq!(member.via, [LinkKind::SharedDestination]);
        }
        assert_eq!(campaign.links.shared_destination, 1);
        assert_eq!(campaign.links.shared_ip + campaign.links.shared_network, 0);
        assert_eq!(campaign.destinations.len(), 1);
        assert_eq!(campaign.detected_at, Timestamp(START + HOUR));
        assert_eq!(
            detector.campaign_of_destination(&d).map(|c| c.id.as_str()),
            Some("cmp_1")
        );
        assert!(
            detector
                .campaign_of_destination(&mule("tk_other"))
                .is_none()
        );
        assert_eq!(detector.linked_accounts("victim-1"), 1);
        assert_eq!(detector.linked_accounts("victim-2"), 1);
        assert_eq!(detector.linked_accounts("stranger"), 0);
        assert_eq!(detector.campaigns().count(), 1);
        let kinds_on_timeline: Vec<TimelineKind> =
            campaign.timeline.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds_on_timeline,
            [
                TimelineKind::SensitiveChange,
                TimelineKind::SensitiveChange,
                TimelineKind::Detected
            ]
        );
    }

    #[test]
    fn a_shared_destination_set_without_risk_links_nothing() {
        let mut detector = CampaignDetector::default();
        let d = mule("tk_family");
        set_destination(
            &mut detector,
            "shop-1",
            START,
            &d,
            ip(203, 0, 113, 7),
            false,
        );
        let notices = set_destination(
            &mut detector,
            "shop-2",
            START + HOUR,
            &d,
            ip(203, 0, 113, 7),
            false,
        );
        assert!(notices.is_empty());
        assert_eq!(detector.campaigns().count(), 0);
        assert_eq!(detector.linked_accounts("shop-1"), 0);
        assert!(detector.campaign_of_destination(&d).is_none());
        assert_eq!(detector.stats().nodes, 0, "non-risky changes add no nodes");
    }

    #[test]
    fn hub_keys_stop_linking_at_the_cap() {
        let mut detector = CampaignDetector::default();
        for n in 0..50 {
            password_change(
                &mut detector,
                &format!("acct-{n}"),
                START + n * 60,
                ip(198, 51, 100, 7),
            );
        }
        let cap = detector.config().max_accounts_per_key;
        assert_eq!(detector.linked_accounts("acct-0"), cap - 1);
        assert_eq!(detector.linked_accounts("acct-9"), cap - 1);
        assert_eq!(detector.linked_accounts("acct-10"), 0);
        assert_eq!(detector.linked_accounts("acct-49"), 0);
        assert_eq!(detector.campaigns().count(), 1);
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(campaign.account_count(), cap);
        assert_eq!(campaign.links.shared_ip, 1);
        assert_eq!(campaign.links.shared_network, 1);
    }

    #[test]
    fn shared_infrastructure_is_forgotten_after_its_ttl() {
        let mut detector = CampaignDetector::default();
        let ttl = i64::from(detector.config().key_ttl_days) * DAY;
        password_change(&mut detector, "old", START, ip(198, 51, 100, 7));
        password_change(
            &mut detector,
            "months-later",
            START + ttl + DAY,
            ip(198, 51, 100, 7),
        );
        assert_eq!(detector.linked_accounts("months-later"), 0);
        password_change(
            &mut detector,
            "days-later",
            START + ttl + 3 * DAY,
            ip(198, 51, 100, 8),
        );
        assert_eq!(
            detector.linked_accounts("days-later"),
            1,
            "same /24, two days apart"
        );
        assert_eq!(
            detector
                .campaign_of_account("days-later")
                .unwrap()
                .links
                .shared_network,
            1
        );
    }

    #[test]
    fn destinations_are_never_pruned() {
        let mut detector = CampaignDetector::default();
        let d = mule("tk_big_mule");
        for n in 0..30u8 {
            set_destination(
                &mut detector,
                &format!("victim-{n}"),
                START + i64::from(n) * DAY,
                &d,
                ip(203, 0, n, 7),
                true,
            );
        }
        assert_eq!(detector.linked_accounts("victim-0"), 29);
        assert_eq!(detector.campaign("cmp_1").unwrap().account_count(), 30);
    }

    #[test]
    fn merges_keep_the_older_id() {
        let mut detector = CampaignDetector::default();
        two_victims(&mut detector, "tk_mule_a", "a-1", "a-2", START);
        let d = mule("tk_mule_b");
        for (n, account) in ["b-1", "b-2", "b-3"].iter().enumerate() {
            set_destination(
                &mut detector,
                account,
                START + DAY + n as i64,
                &d,
                ip(192, 0, 2, n as u8),
                true,
            );
        }
        assert_eq!(detector.campaign_of_account("b-1").unwrap().id, "cmp_2");
        // a-2 later uses the same device as b-3: the bigger, younger
        // campaign is merged into the older one.
        let notices = detector.observe_change(&SensitiveChange {
            account_id: "a-2",
            event_id: "evt-merge",
            at: START + 2 * DAY,
            event_type: EventType::MfaChange,
            destination: None,
            device_id: Some("device-b-3"),
            ip: None,
            risky: true,
        });
        assert_eq!(kinds(&notices), [(CampaignNoticeKind::Updated, "cmp_1")]);
        assert_eq!(notices[0].summary.merged, ["cmp_2"]);
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(campaign.account_count(), 5);
        assert_eq!(campaign.destinations.len(), 2);
        assert_eq!(campaign.detected_at, Timestamp(START + HOUR));
        assert!(
            campaign
                .timeline
                .iter()
                .any(|e| e.kind == TimelineKind::Merged)
        );
        assert_eq!(detector.campaign("cmp_2").unwrap().id, "cmp_1");
        assert_eq!(detector.campaign_of_account("b-1").unwrap().id, "cmp_1");
        assert_eq!(detector.campaigns().count(), 1);
        assert!(detector.campaign("cmp_3").is_none());
        assert!(detector.campaign("cmp_01").is_none());
        assert_eq!(detector.linked_accounts("a-1"), 4);
    }

    #[test]
    fn new_members_and_destinations_notify_but_repeats_do_not() {
        let mut detector = CampaignDetector::default();
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
        let d = mule("tk_mule");
        let joined = set_destination(
            &mut detector,
            "v-3",
            START + DAY,
            &d,
            ip(192, 0, 2, 3),
            true,
        );
        assert_eq!(kinds(&joined), [(CampaignNoticeKind::Updated, "cmp_1")]);
        assert_eq!(joined[0].summary.accounts, 3);
        let again = set_destination(
            &mut detector,
            "v-3",
            START + DAY + 60,
            &d,
            ip(192, 0, 2, 3),
            true,
        );
        assert!(again.is_empty());
        let new_mule = mule("tk_mule_2");
        let moved = set_destination(
            &mut detector,
            "v-3",
            START + DAY + 120,
            &new_mule,
            ip(192, 0, 2, 3),
            true,
        );
        assert_eq!(kinds(&moved), [(CampaignNoticeKind::Updated, "cmp_1")]);
        assert_eq!(moved[0].summary.destinations, 2);
        let campaign = detector.campaign("cmp_1").unwrap();
        let v3 = campaign.member("v-3").unwrap();
        assert_eq!(v3.joined_at, Timestamp(START + DAY));
        assert!(
            campaign
                .timeline
                .iter()
                .any(|e| e.kind == TimelineKind::Joined)
        );
        assert!(detector.campaign_of_destination(&new_mule).is_some());
    }

    #[test]
    fn hosting_network_links_victims_with_their_own_mules() {
        let mut detector = CampaignDetector::default();
        let first = set_destination(
            &mut detector,
            "v-1",
            START,
            &mule("tk_1"),
            ip(185, 220, 101, 4),
            true,
        );
        assert!(first.is_empty());
        let second = set_destination(
            &mut detector,
            "v-2",
            START + DAY,
            &mule("tk_2"),
            ip(185, 220, 101, 77),
            true,
        );
        assert_eq!(kinds(&second), [(CampaignNoticeKind::Detected, "cmp_1")]);
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(
            campaign.member("v-2").unwrap().via,
            [LinkKind::SharedNetwork]
        );
        assert_eq!(campaign.links.shared_network, 1);
        assert_eq!(campaign.links.shared_destination, 0);
    }

    // ----- feedback -----

    #[test]
    fn labels_confirm_clear_and_dismiss() {
        let mut detector = CampaignDetector::default();
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
        assert!(
            detector
                .label("stranger", "l-0", START + DAY, LabelKind::Fraud)
                .is_empty()
        );

        let chargeback = detector.label("v-1", "l-1", START + DAY, LabelKind::Chargeback);
        assert!(chargeback.is_empty());
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(campaign.status, CampaignStatus::Suspected);
        assert_eq!(campaign.timeline.last().unwrap().kind, TimelineKind::Label);

        let fraud = detector.label("v-1", "l-2", START + DAY, LabelKind::CompromiseReported);
        assert_eq!(kinds(&fraud), [(CampaignNoticeKind::Confirmed, "cmp_1")]);
        assert_eq!(fraud[0].summary.status, CampaignStatus::Confirmed);
        assert!(
            detector
                .label("v-2", "l-3", START + DAY, LabelKind::Fraud)
                .is_empty(),
            "already confirmed"
        );

        let legit = detector.label("v-1", "l-4", START + 2 * DAY, LabelKind::Legit);
        assert!(legit.is_empty(), "one member left");
        assert!(detector.is_cleared("v-1"));
        assert!(
            detector
                .campaign("cmp_1")
                .unwrap()
                .member("v-1")
                .unwrap()
                .cleared
        );
        assert_eq!(
            detector.linked_accounts("v-2"),
            0,
            "cleared accounts do not count"
        );
        assert_eq!(detector.linked_accounts("v-1"), 1);
        assert!(detector.account_in_live_campaign("v-1").is_none());
        assert!(detector.account_in_live_campaign("v-2").is_some());

        let all_clear = detector.label("v-2", "l-5", START + 2 * DAY, LabelKind::Legit);
        assert_eq!(
            kinds(&all_clear),
            [(CampaignNoticeKind::Dismissed, "cmp_1")]
        );
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(campaign.status, CampaignStatus::Dismissed);
        assert_eq!(campaign.account_count(), 2, "cleared members stay listed");
        assert!(detector.account_in_live_campaign("v-2").is_none());

        // Fraud after all: the member is counted again.
        let fraud = detector.label("v-2", "l-6", START + 3 * DAY, LabelKind::Fraud);
        assert_eq!(kinds(&fraud), [(CampaignNoticeKind::Confirmed, "cmp_1")]);
        assert!(!detector.is_cleared("v-2"));
        assert_eq!(detector.linked_accounts("v-1"), 1);
    }

    #[test]
    fn a_fraud_label_before_joining_confirms_on_joining() {
        let mut detector = CampaignDetector::default();
        let d = mule("tk_mule");
        set_destination(&mut detector, "v-1", START, &d, ip(203, 0, 113, 7), true);
        assert!(
            detector
                .label("v-1", "l-1", START + HOUR, LabelKind::Fraud)
                .is_empty()
        );
        let notices = set_destination(
            &mut detector,
            "v-2",
            START + DAY,
            &d,
            ip(198, 51, 100, 9),
            true,
        );
        assert_eq!(
            kinds(&notices),
            [
                (CampaignNoticeKind::Detected, "cmp_1"),
                (CampaignNoticeKind::Confirmed, "cmp_1")
            ]
        );
        assert_eq!(
            detector.campaign("cmp_1").unwrap().status,
            CampaignStatus::Confirmed
        );
    }

    #[test]
    fn analysts_set_status_and_a_dismissed_campaign_that_grows_is_suspected_again() {
        let mut detector = CampaignDetector::default();
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
        let unknown = detector.set_status(
            "cmp_9",
            CampaignStatus::Confirmed,
            "alice",
            "x",
            "a-0",
            START,
        );
        assert_eq!(unknown, Err(CampaignError::UnknownCampaign("cmp_9".into())));
        assert_eq!(
            CampaignError::UnknownCampaign("cmp_9".into()).to_string(),
            "campaign_id: no campaign \"cmp_9\""
        );

        let dismissed = detector
            .set_status(
                "cmp_1",
                CampaignStatus::Dismissed,
                "alice",
                "same owner",
                "a-1",
                START + DAY,
            )
            .unwrap();
        assert_eq!(
            kinds(&dismissed),
            [(CampaignNoticeKind::Dismissed, "cmp_1")]
        );
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(
            campaign.status_by,
            Some(StatusChange {
                by: "alice".into(),
                reason: "same owner".into(),
                at: Timestamp(START + DAY)
            })
        );
        let last = campaign.timeline.last().unwrap();
        assert_eq!(
            (last.kind, last.event_id.as_str()),
            (TimelineKind::Status, "a-1")
        );
        let repeat = detector
            .set_status(
                "cmp_1",
                CampaignStatus::Dismissed,
                "bob",
                "still",
                "a-2",
                START + DAY,
            )
            .unwrap();
        assert!(repeat.is_empty());

        let grown = set_destination(
            &mut detector,
            "v-3",
            START + 2 * DAY,
            &mule("tk_mule"),
            ip(192, 0, 2, 1),
            true,
        );
        assert_eq!(kinds(&grown), [(CampaignNoticeKind::Updated, "cmp_1")]);
        assert_eq!(grown[0].summary.status, CampaignStatus::Suspected);

        let confirmed = detector
            .set_status(
                "cmp_1",
                CampaignStatus::Confirmed,
                "carol",
                "mule confirmed by bank",
                "a-3",
                START + 3 * DAY,
            )
            .unwrap();
        assert_eq!(
            kinds(&confirmed),
            [(CampaignNoticeKind::Confirmed, "cmp_1")]
        );
    }

    // ----- money -----

    #[test]
    fn money_counts_from_the_first_risky_change_including_before_joining() {
        let mut detector = CampaignDetector::default();
        let d = mule("tk_mule");
        // Before any risky change: not counted (and the account is unknown).
        detector.record_money("v-1", "p-0", START - DAY, 9_999, gbp(), false);
        set_destination(&mut detector, "v-1", START, &d, ip(203, 0, 113, 7), true);
        assert!(
            detector
                .record_money("v-1", "p-old", START - HOUR, 7_777, gbp(), false)
                .is_empty()
        );
        detector.record_money("v-1", "p-1", START + HOUR, 100_000, gbp(), false);
        detector.record_money("v-1", "p-2", START + 2 * HOUR, 50_000, gbp(), true);
        detector.record_money("stranger", "p-3", START + 2 * HOUR, 1, gbp(), false);

        set_destination(
            &mut detector,
            "v-2",
            START + DAY,
            &d,
            ip(198, 51, 100, 9),
            true,
        );
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(
            campaign.money[&gbp()],
            CampaignMoney {
                held: 50_000,
                paid: 100_000
            }
        );
        let money_entries = campaign
            .timeline
            .iter()
            .filter(|e| e.kind == TimelineKind::Money)
            .count();
        assert_eq!(money_entries, 2, "the pre-join ledger is on the timeline");

        let eur = Currency::parse("EUR").unwrap();
        let notices = detector.record_money("v-2", "p-4", START + DAY + HOUR, 20_000, gbp(), false);
        assert!(notices.is_empty(), "money does not notify");
        detector.record_money("v-2", "p-5", START + DAY + HOUR, 3_000, eur, false);
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(
            campaign.money[&gbp()],
            CampaignMoney {
                held: 50_000,
                paid: 120_000
            }
        );
        assert_eq!(
            campaign.money[&eur],
            CampaignMoney {
                held: 0,
                paid: 3_000
            }
        );
        assert_eq!(campaign.summary().money[&gbp()].paid, 120_000);

        // A cleared member's money is not the campaign's.
        detector.label("v-1", "l-1", START + 2 * DAY, LabelKind::Legit);
        let campaign = detector.campaign("cmp_1").unwrap();
        assert_eq!(
            campaign.money[&gbp()],
            CampaignMoney {
                held: 0,
                paid: 20_000
            }
        );
        detector.record_money("v-1", "p-6", START + 3 * DAY, 1_000, gbp(), false);
        assert_eq!(
            detector.campaign("cmp_1").unwrap().money[&gbp()].paid,
            20_000
        );
    }

    #[test]
    fn a_new_episode_starts_the_ledger_over() {
        let mut detector = CampaignDetector::default();
        let gap = i64::from(detector.config().episode_gap_days) * DAY;
        let d = mule("tk_mule");
        set_destination(&mut detector, "v-1", START, &d, ip(203, 0, 113, 7), true);
        detector.record_money("v-1", "p-1", START + HOUR, 5_000, gbp(), false);
        // A risky change long after: the old honest-looking payouts are not
        // this episode's.
        password_change(&mut detector, "v-1", START + gap + DAY, ip(203, 0, 113, 7));
        detector.record_money("v-1", "p-2", START + gap + 2 * DAY, 700, gbp(), false);
        set_destination(
            &mut detector,
            "v-2",
            START + gap + 3 * DAY,
            &d,
            ip(198, 51, 100, 9),
            true,
        );
        assert_eq!(detector.campaign("cmp_1").unwrap().money[&gbp()].paid, 700);
    }

    // ----- bursts: units -----

    #[test]
    fn poisson_tail_matches_direct_sums() {
        for (k, lambda) in [
            (4u32, 0.07f64),
            (4, 1.0),
            (10, 2.5),
            (40, 20.0),
            (150, 100.0),
            (3, 0.5),
        ] {
            // Direct: 1 - sum of the pmf below k, in f64 (fine at these sizes).
            let mut pmf = (-lambda).exp();
            let mut below = 0.0;
            for i in 0..k {
                below += pmf;
                pmf *= lambda / f64::from(i + 1);
            }
            let direct = -(1.0 - below).log10();
            let score = poisson_tail_score(k, lambda);
            assert!(
                (score - direct).abs() < 1e-6 * direct.max(1.0),
                "k {k} lambda {lambda}: {score} vs {direct}"
            );
        }
        assert_eq!(poisson_tail_score(3, 5.0), 0.0, "not above expected");
        assert_eq!(poisson_tail_score(0, 0.1), 0.0);
        let huge = poisson_tail_score(10_000, 0.001);
        assert!(huge.is_finite() && huge > 10_000.0, "no underflow: {huge}");
        assert!(poisson_tail_score(2_000_000, 1_900_000.0).is_finite());
    }

    #[test]
    fn nothing_bursts_while_warming_up() {
        // Right after a deploy a busy bank's full traffic meets the prior.
        let mut detector = CampaignDetector::default();
        let mut n = 0;
        for day in 0..10 {
            for i in 0..100 {
                n += 1;
                let at = START + day * DAY + i * 600;
                set_destination(
                    &mut detector,
                    &format!("s-{n}"),
                    at,
                    &destination("BIG", &format!("tk_{n}"), Some(InstitutionType::Bank)),
                    ip(10, (n >> 8) as u8, n as u8, 1),
                    n % 10 == 0,
                );
                assert!(!detector.institution_burst("BIG", at).bursting, "day {day}");
            }
        }
        assert_eq!(detector.campaigns().count(), 0);
        assert!(
            detector.institution_burst("BIG", START + 9 * DAY).score > 4.0,
            "scored, not bursting"
        );
    }

    #[test]
    fn a_surge_without_risky_changes_does_not_burst() {
        let mut detector = quiet_platform();
        let at = START + 40 * DAY;
        for n in 0..8 {
            set_destination(
                &mut detector,
                &format!("s-{n}"),
                at + n,
                &destination("NEWBANK", &format!("tk_{n}"), None),
                ip(10, 0, n as u8, 1),
                n == 0,
            );
        }
        let burst = detector.institution_burst("NEWBANK", at);
        assert_eq!((burst.observed, burst.risky), (8, 1));
        assert!(burst.score > 6.0 && !burst.bursting);
    }

    /// A platform with 40 days of one change a day at one bank, so the
    /// detector is warm.
    fn quiet_platform() -> CampaignDetector {
        let mut detector = CampaignDetector::default();
        for day in 0..40 {
            set_destination(
                &mut detector,
                &format!("h-{day}"),
                START + day * DAY,
                &destination("HOME", &format!("tk_h_{day}"), Some(InstitutionType::Bank)),
                ip(10, 1, day as u8, 1),
                false,
            );
        }
        detector
    }

    #[test]
    fn a_type_burst_is_reported_but_links_nobody() {
        let mut detector = quiet_platform();
        let at = START + 40 * DAY;
        for n in 0..12u8 {
            let d = destination(
                &format!("EM{n:02}"),
                &format!("tk_em_{n}"),
                Some(InstitutionType::EMoney),
            );
            set_destination(
                &mut detector,
                &format!("v-{n}"),
                at + i64::from(n) * 600,
                &d,
                ip(10, 2, n, 1),
                true,
            );
        }
        assert!(
            detector
                .institution_type_burst(InstitutionType::EMoney, at)
                .bursting
        );
        assert!(
            !detector
                .institution_type_burst(InstitutionType::Bank, at)
                .bursting
        );
        assert!(!detector.institution_burst("EM00", at).bursting);
        assert_eq!(detector.campaigns().count(), 0);
    }

    #[test]
    fn unknown_institutions_do_not_burst() {
        let detector = CampaignDetector::default();
        let burst = detector.institution_burst("NOWHERE", START);
        assert_eq!(
            (burst.observed, burst.bursting, burst.score),
            (0, false, 0.0)
        );
        assert!(
            !detector
                .institution_type_burst(InstitutionType::Prepaid, START)
                .bursting
        );
    }

    #[test]
    fn out_of_order_and_extreme_times_do_not_panic() {
        let mut detector = quiet_platform();
        let d = destination("HOME", "tk_x", Some(InstitutionType::Bank));
        let late = START + 40 * DAY;
        set_destination(&mut detector, "a", late, &d, ip(192, 0, 2, 1), true);
        let before = detector.institution_burst("HOME", late).observed;
        // Three days back: still in the window, counted in its day.
        set_destination(
            &mut detector,
            "b",
            late - 3 * DAY,
            &d,
            ip(192, 0, 2, 2),
            true,
        );
        assert_eq!(
            detector.institution_burst("HOME", late).observed,
            before + 1
        );
        // A month back: its day has closed, ignored by the counts.
        set_destination(
            &mut detector,
            "c",
            late - 30 * DAY,
            &d,
            ip(192, 0, 2, 3),
            true,
        );
        assert_eq!(
            detector.institution_burst("HOME", late).observed,
            before + 1
        );
        assert_eq!(
            detector.institution_burst("HOME", late - 10 * DAY).observed,
            before + 1,
            "a query for the past reads the newest window"
        );
        assert_eq!(
            detector.campaign_of_account("c").unwrap().id,
            "cmp_1",
            "links still happen"
        );
        for at in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX, 0] {
            set_destination(&mut detector, "edge", at, &d, ip(192, 0, 2, 9), true);
            password_change(&mut detector, "edge", at, ip(192, 0, 2, 9));
            detector.record_money("edge", "p", at, u64::MAX, gbp(), false);
            detector.record_money("edge", "p", at, u64::MAX, gbp(), true);
            detector.label("edge", "l", at, LabelKind::Chargeback);
            let _ = detector.institution_burst("HOME", at);
            let _ = detector.institution_type_burst(InstitutionType::Bank, at);
        }
        assert!(detector.linked_accounts("edge") > 0);
    }

    #[test]
    fn the_graph_stays_bounded_and_keeps_campaigns() {
        let config = CampaignConfig {
            max_nodes: 200,
            forget_after_days: 2,
            ..CampaignConfig::default()
        };
        let mut detector = CampaignDetector::new(config);
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
        // A year of lone risky changes, each with its own keys.
        for n in 0..2_000i64 {
            password_change(
                &mut detector,
                &format!("lone-{n}"),
                START + n * 4 * HOUR,
                ip(10, (n >> 8) as u8, n as u8, 1),
            );
            assert!(detector.stats().nodes <= 200);
        }
        let stats = detector.stats();
        assert!(
            stats.accounts > 10,
            "recent accounts are still tracked: {stats:?}"
        );
        assert_eq!(detector.campaign_of_account("v-1").unwrap().id, "cmp_1");
        assert_eq!(detector.linked_accounts("v-2"), 1);
        // New links still form after compactions.
        let later = START + 2_000 * 4 * HOUR;
        two_victims(&mut detector, "tk_mule_2", "w-1", "w-2", later);
        assert_eq!(detector.campaign_of_account("w-2").unwrap().id, "cmp_2");
        // And the known mule still pulls new victims in.
        set_destination(
            &mut detector,
            "v-3",
            later + DAY,
            &mule("tk_mule"),
            ip(192, 0, 2, 3),
            true,
        );
        assert_eq!(detector.campaign_of_account("v-3").unwrap().id, "cmp_1");
    }

    #[test]
    fn long_timelines_keep_their_head_and_tail() {
        let mut detector = CampaignDetector::default();
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
        for n in 0..500 {
            detector.record_money("v-1", &format!("p-{n}"), START + DAY + n, 10, gbp(), false);
        }
        let campaign = detector.campaign("cmp_1").unwrap();
        // The tail sheds its oldest quarter at once when full.
        let kept = campaign.timeline.len();
        assert!(
            (TIMELINE_HEAD + TIMELINE_TAIL * 3 / 4..=TIMELINE_HEAD + TIMELINE_TAIL).contains(&kept),
            "{kept}"
        );
        assert_eq!(campaign.timeline_dropped, 503 - kept as u64);
        assert_eq!(campaign.timeline[0].kind, TimelineKind::SensitiveChange);
        assert_eq!(campaign.timeline.last().unwrap().event_id, "p-499");
        assert_eq!(campaign.money[&gbp()].paid, 5_000);
    }

    // ----- snapshots and wire format -----

    #[test]
    fn snapshot_round_trip_gives_equal_state_and_equal_bytes() {
        let mut detector = quiet_platform();
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START + 40 * DAY);
        detector.record_money("v-1", "p-1", START + 40 * DAY + HOUR, 1_000, gbp(), true);
        detector.label("v-2", "l-1", START + 41 * DAY, LabelKind::Fraud);
        // At another institution: four risky changes toward one institution
        // in a day would be a burst here and link all four.
        let other = destination("400000", "tk_mule_b", Some(InstitutionType::Bank));
        set_destination(
            &mut detector,
            "w-1",
            START + 41 * DAY,
            &other,
            ip(192, 0, 2, 1),
            true,
        );
        set_destination(
            &mut detector,
            "w-2",
            START + 41 * DAY,
            &other,
            ip(192, 0, 2, 2),
            true,
        );
        assert_eq!(detector.campaign("cmp_2").unwrap().id, "cmp_2");
        detector.observe_change(&SensitiveChange {
            account_id: "w-1",
            event_id: "merge",
            at: START + 42 * DAY,
            event_type: EventType::EmailChange,
            destination: None,
            device_id: Some("device-v-1"),
            ip: None,
            risky: true,
        });
        let snapshot = detector.to_snapshot();
        let bytes = serde_json::to_vec(&snapshot).unwrap();
        let parsed: CampaignSnapshot = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, snapshot);
        let mut restored =
            CampaignDetector::try_from_snapshot(CampaignConfig::default(), parsed).unwrap();
        assert_eq!(restored.to_snapshot(), snapshot);
        assert_eq!(serde_json::to_vec(&restored.to_snapshot()).unwrap(), bytes);
        assert_eq!(restored.campaign("cmp_2").unwrap().id, "cmp_1");
        assert_eq!(
            restored.linked_accounts("v-1"),
            detector.linked_accounts("v-1")
        );

        // Both go on identically.
        let continue_with = |d: &mut CampaignDetector| {
            let mut all = Vec::new();
            for n in 0..20u8 {
                let at = START + 43 * DAY + i64::from(n) * HOUR;
                all.extend(set_destination(
                    d,
                    &format!("x-{n}"),
                    at,
                    &mule(&format!("tk_x_{}", n / 2)),
                    ip(192, 0, 2, n),
                    n % 3 != 0,
                ));
            }
            all
        };
        let original_notices = continue_with(&mut detector);
        let restored_notices = continue_with(&mut restored);
        assert_eq!(original_notices, restored_notices);
        assert!(!original_notices.is_empty());
        assert_eq!(
            serde_json::to_vec(&detector.to_snapshot()).unwrap(),
            serde_json::to_vec(&restored.to_snapshot()).unwrap()
        );
    }

    #[test]
    fn a_damaged_snapshot_is_refused_not_a_panic() {
        let mut detector = CampaignDetector::default();
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
        let mut json = serde_json::to_value(detector.to_snapshot()).unwrap();
        json["nodes"][0][0] = serde_json::json!(999);
        let damaged: CampaignSnapshot = serde_json::from_value(json).unwrap();
        assert!(matches!(
            CampaignDetector::try_from_snapshot(CampaignConfig::default(), damaged.clone()),
            Err(CampaignError::Snapshot(_))
        ));
        let empty = CampaignDetector::from_snapshot(CampaignConfig::default(), damaged);
        assert_eq!(empty.stats(), CampaignStats::default());

        let mut cycle = serde_json::to_value(detector.to_snapshot()).unwrap();
        cycle["nodes"][0][0] = serde_json::json!(1);
        cycle["nodes"][1][0] = serde_json::json!(0);
        let cycle: CampaignSnapshot = serde_json::from_value(cycle).unwrap();
        assert!(CampaignDetector::try_from_snapshot(CampaignConfig::default(), cycle).is_err());

        let mut version = detector.to_snapshot();
        version.version = 99;
        assert!(CampaignDetector::try_from_snapshot(CampaignConfig::default(), version).is_err());
    }

    #[test]
    fn campaigns_serialize_with_wire_names() {
        let mut detector = CampaignDetector::default();
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
        let json = serde_json::to_value(detector.campaign("cmp_1").unwrap()).unwrap();
        assert_eq!(json["id"], "cmp_1");
        assert_eq!(json["status"], "suspected");
        assert_eq!(json["detected_at"], "2023-11-15T01:00:00Z");
        assert_eq!(json["accounts"][0]["via"][0], "shared_destination");
        assert_eq!(json["links"]["shared_destination"], 1);
        assert_eq!(json["destinations"][0]["institution_type"], "e_money");
        assert_eq!(json["timeline"][2]["kind"], "detected");
        let notice =
            serde_json::to_value(&detector.label("v-1", "l", START, LabelKind::Fraud)[0]).unwrap();
        assert_eq!(notice["kind"], "confirmed");
        assert_eq!(notice["summary"]["accounts"], 2);
    }

    #[test]
    fn config_reads_partial_json_and_clamps() {
        let config: CampaignConfig = serde_json::from_str(r#"{"window_days": 5}"#).unwrap();
        assert_eq!(config.window_days, 5);
        assert_eq!(
            config.min_burst_count,
            CampaignConfig::default().min_burst_count
        );
        assert!(serde_json::from_str::<CampaignConfig>(r#"{"windows": 5}"#).is_err());
        let wild = CampaignConfig {
            min_accounts: 0,
            window_days: 0,
            burst_p_value: f64::NAN,
            prior_daily_rate: -1.0,
            ..CampaignConfig::default()
        };
        let mut detector = CampaignDetector::new(wild);
        assert_eq!(detector.config().min_accounts, 2);
        assert_eq!(detector.config().window_days, 1);
        two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
        assert_eq!(detector.campaigns().count(), 1);
    }
}
