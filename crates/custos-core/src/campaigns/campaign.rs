//! The campaign lifecycle: what a campaign is, how it forms, grows,
//! merges and is confirmed or dismissed, and what it tells.
//!
//! A component of the link graph with enough accounts becomes a
//! [`Campaign`]: its members, their destinations, the money they moved
//! since their first risky change, a bounded timeline, and a status set by
//! labels and analysts. Campaigns live in a [`CampaignBook`] by number; a
//! campaign merged into an older one stays as a forward pointer, so old ids
//! keep resolving. Until an account joins, its own changes, money and labels
//! are kept on its entry (bounded), and they go to the campaign's timeline
//! when it joins. Changes made during one call are collected in
//! [`super::Pending`] and settled at its end ([`CampaignDetector::settle`]),
//! so that a call gives one notice per campaign and kind, and a large
//! campaign is refreshed whole only when it gained something.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::graph::{LinkKind, NO_CAMPAIGN};
use super::{
    AccountEntry, CampaignDetector, CountedHold, DAY, MAX_COUNTED_HOLDS, Pending, SensitiveChange,
};
use crate::event::{Currency, Destination, InstitutionType, LabelKind};
use crate::types::{NetworkPrefix, Timestamp};

/// Timeline entries kept from a campaign's start.
pub const TIMELINE_HEAD: usize = 50;
/// Most recent timeline entries kept.
pub const TIMELINE_TAIL: usize = 150;
/// Destinations listed per campaign at most (the rest are counted).
pub const MAX_LISTED_DESTINATIONS: usize = 256;
/// Per account, before it joins a campaign: history entries kept from the
/// start of its episode and most recent ones.
const HISTORY_HEAD: usize = 8;
const HISTORY_TAIL: usize = 24;
/// Destinations set in risky changes remembered per account.
const MAX_DESTINATIONS_PER_ACCOUNT: usize = 8;

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
    /// Withheld: decided `hold` or `block`, and not released since.
    pub held: u64,
    /// Paid out: decided below `hold`, or held and then released.
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
    /// [`CampaignConfig::max_listed_members`](super::CampaignConfig::max_listed_members)).
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

/// A stored campaign: alive, or merged into another (by number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CampaignSlot {
    Live(Box<Campaign>),
    Merged { into: u32 },
}

/// Campaigns by number (`cmp_1` is number 1), merged ones included.
#[derive(Debug, Clone, Default)]
pub(super) struct CampaignBook {
    slots: Vec<CampaignSlot>,
}

impl CampaignBook {
    /// The book of a snapshot whose merges were checked for range.
    pub(super) fn from_slots(slots: Vec<CampaignSlot>) -> CampaignBook {
        CampaignBook { slots }
    }

    pub(super) fn slots(&self) -> &[CampaignSlot] {
        &self.slots
    }

    /// Campaigns ever detected, merged ones included.
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Live campaigns (not merged into another), oldest first.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &Campaign> {
        self.slots.iter().filter_map(|slot| match slot {
            CampaignSlot::Live(c) => Some(&**c),
            CampaignSlot::Merged { .. } => None,
        })
    }

    /// Follows merges to a live campaign number.
    pub(super) fn resolve(&self, mut number: u32) -> Option<u32> {
        for _ in 0..=self.slots.len() {
            match self.slots.get((number as usize).checked_sub(1)?)? {
                CampaignSlot::Live(_) => return Some(number),
                CampaignSlot::Merged { into } => number = *into,
            }
        }
        None
    }

    pub(super) fn live(&self, number: u32) -> Option<&Campaign> {
        match self.slots.get((number as usize).checked_sub(1)?)? {
            CampaignSlot::Live(c) => Some(c),
            CampaignSlot::Merged { .. } => None,
        }
    }

    pub(super) fn live_mut(&mut self, number: u32) -> Option<&mut Campaign> {
        match self.slots.get_mut((number as usize).checked_sub(1)?)? {
            CampaignSlot::Live(c) => Some(c),
            CampaignSlot::Merged { .. } => None,
        }
    }

    /// Folds campaign `gone` into the older `keep` (listing at most
    /// `listed_cap` members); returns `keep`.
    pub(super) fn merge(
        &mut self,
        keep: u32,
        gone: u32,
        listed_cap: usize,
        notices: &mut Vec<(u32, CampaignNoticeKind)>,
    ) -> u32 {
        let (Some(keep), Some(gone)) = (self.resolve(keep), self.resolve(gone)) else {
            return keep;
        };
        if keep == gone {
            return keep;
        }
        let Some(slot) = self.slots.get_mut(gone as usize - 1) else {
            return keep;
        };
        let CampaignSlot::Live(absorbed) =
            std::mem::replace(slot, CampaignSlot::Merged { into: keep })
        else {
            return keep;
        };
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
        notices.push((keep, CampaignNoticeKind::Updated));
        keep
    }
}

fn campaign_id(number: u32) -> String {
    format!("cmp_{number}")
}

pub(super) fn parse_campaign_id(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("cmp_")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
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

impl Campaign {
    /// An analyst sets the status: recorded whatever it was; a notice only
    /// when it changed.
    pub(super) fn set_status(
        &mut self,
        status: CampaignStatus,
        by: &str,
        reason: &str,
        event_id: &str,
        at: i64,
    ) -> Option<CampaignNotice> {
        let changed = self.status != status;
        self.status = status;
        self.status_by = Some(StatusChange {
            by: by.to_string(),
            reason: reason.to_string(),
            at: Timestamp(at),
        });
        self.push_timeline(TimelineEntry {
            at: Timestamp(at),
            event_id: event_id.to_string(),
            account_id: None,
            kind: TimelineKind::Status,
            detail: format!("{} by {by}: {reason}", status.as_str()),
        });
        self.last_activity = self.last_activity.max(Timestamp(at));
        if !changed {
            return None;
        }
        let kind = match status {
            CampaignStatus::Suspected => CampaignNoticeKind::Updated,
            CampaignStatus::Confirmed => CampaignNoticeKind::Confirmed,
            CampaignStatus::Dismissed => CampaignNoticeKind::Dismissed,
        };
        Some(CampaignNotice {
            kind,
            campaign_id: self.id.clone(),
            summary: self.summary(),
        })
    }
}

impl CampaignDetector {
    /// The account's slot, created on its first risky change; records the
    /// change in its history.
    pub(super) fn touch_account(
        &mut self,
        change: &SensitiveChange<'_>,
        destination: Option<&Destination>,
        pending: &mut Pending,
    ) -> Option<u32> {
        let entry = TimelineEntry {
            at: Timestamp(change.at),
            event_id: change.event_id.to_string(),
            account_id: Some(change.account_id.to_string()),
            kind: TimelineKind::SensitiveChange,
            detail: describe_change(change, destination),
        };
        self.touch_account_with(change.account_id, entry, destination, pending)
    }

    /// The slot of an account that set `destination` at `set_at` in a way
    /// a later risky change (`change`) shows to be mule reuse: the ring's
    /// earlier victim, whose own change looked ordinary then.
    pub(super) fn touch_earlier_setter(
        &mut self,
        account_id: &str,
        set_at: i64,
        change: &SensitiveChange<'_>,
        destination: &Destination,
        pending: &mut Pending,
    ) -> Option<u32> {
        let entry = TimelineEntry {
            at: Timestamp(set_at),
            event_id: change.event_id.to_string(),
            account_id: Some(account_id.to_string()),
            kind: TimelineKind::SensitiveChange,
            detail: format!(
                "{} (seen as mule reuse when {} set it)",
                describe_change(change, Some(destination)),
                change.account_id
            ),
        };
        self.touch_account_with(account_id, entry, Some(destination), pending)
    }

    fn touch_account_with(
        &mut self,
        account_id: &str,
        entry: TimelineEntry,
        destination: Option<&Destination>,
        pending: &mut Pending,
    ) -> Option<u32> {
        let at = entry.at.0;
        let slot = match self.account_index.get(account_id) {
            Some(&slot) => slot,
            None => {
                let slot = self.accounts.len() as u32;
                let node = self.graph.add_account(slot, at, &self.config)?;
                self.accounts.push(AccountEntry {
                    id: account_id.to_string(),
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
                    counted_holds: Vec::new(),
                });
                self.account_index.insert(account_id.to_string(), slot);
                slot
            }
        };
        let gap = i64::from(self.config.episode_gap_days) * DAY;
        let account = &mut self.accounts[slot as usize];
        if !account.member && at.saturating_sub(account.last_risky_at) > gap {
            // A new episode: money and history start over.
            account.first_risky_at = at;
            account.money.clear();
            account.counted_holds.clear();
            account.history.clear();
            account.history_dropped = 0;
        }
        account.first_risky_at = account.first_risky_at.min(at);
        account.last_risky_at = account.last_risky_at.max(at);
        let node = account.node;
        self.graph.touch(node, at);
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

    pub(super) fn campaign_number_of_slot(&self, slot: u32) -> Option<u32> {
        let root = self.graph.find(self.accounts[slot as usize].node);
        let number = self.graph.component(root)?.campaign;
        self.campaigns.resolve(number)
    }

    /// The kinds of the account's keys that link it to another account.
    fn via_of(&self, slot: u32) -> Vec<LinkKind> {
        let mut via: Vec<LinkKind> = self.accounts[slot as usize]
            .keys
            .iter()
            .map(|&k| *self.graph.node(k))
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
        let Some(campaign) = self.campaigns.live_mut(number) else {
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
        let root = self.graph.find(self.accounts[slot as usize].node);
        let Some(component) = self.graph.component(root) else {
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
        self.campaigns
            .slots
            .push(CampaignSlot::Live(Box::new(Campaign {
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
        if let Some(component) = self.graph.component_mut(root) {
            component.campaign = number;
        }
        pending.notices.push((number, CampaignNoticeKind::Detected));
        for &member in &members {
            self.join(number, member, at, false, pending);
        }
        self.refresh(number);
        let detail = match self.campaigns.live(number) {
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
        if let Some(campaign) = self.campaigns.live_mut(number) {
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
        if let Some(campaign) = self.campaigns.live_mut(number)
            && let Some(member) = campaign.accounts.iter_mut().find(|m| m.account_id == id)
        {
            member.via = via;
            member.cleared = cleared;
        }
    }

    /// Recomputes what is derived from the members' keys: each member's
    /// `via` and `cleared`, and the link counts.
    fn refresh(&mut self, number: u32) {
        let Some(campaign) = self.campaigns.live(number) else {
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
                    .filter(|&k| self.graph.node(k).linked >= 2),
            );
            updates.push(Some((self.via_of(slot), account.cleared)));
        }
        shared.sort_unstable();
        shared.dedup();
        let mut links = LinkCounts::default();
        for &key in &shared {
            if let Some(kind) = self.graph.node(key).kind.link() {
                links.add(kind);
            }
        }
        let Some(campaign) = self.campaigns.live_mut(number) else {
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
    pub(super) fn settle(
        &mut self,
        mut pending: Pending,
        at: i64,
        event_id: &str,
    ) -> Vec<CampaignNotice> {
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
                && let Some(campaign) = self.campaigns.live_mut(number)
            {
                campaign.push_timeline(entry);
            }
        }
        for (slot, destination) in std::mem::take(&mut pending.member_destinations) {
            if let Some(number) = self.campaign_number_of_slot(slot)
                && let Some(campaign) = self.campaigns.live_mut(number)
                && campaign.add_destination(&destination)
            {
                pending.notices.push((number, CampaignNoticeKind::Updated));
            }
        }
        if let Some((slot, entry)) = pending.burst_entry.take()
            && let Some(number) = self.campaign_number_of_slot(slot)
            && let Some(campaign) = self.campaigns.live_mut(number)
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
            .filter_map(|&(n, _)| self.campaigns.resolve(n))
            .collect();
        let mut refreshed: Vec<u32> = Vec::new();
        for number in noticed {
            if refreshed.contains(&number) {
                continue;
            }
            refreshed.push(number);
            self.refresh(number);
            if let Some(campaign) = self.campaigns.live_mut(number) {
                campaign.last_activity = campaign.last_activity.max(Timestamp(at));
            }
        }
        for &slot in &touched {
            if let Some(number) = self.campaign_number_of_slot(slot)
                && !refreshed.contains(&number)
            {
                self.refresh_member(number, slot);
                if let Some(campaign) = self.campaigns.live_mut(number) {
                    campaign.last_activity = campaign.last_activity.max(Timestamp(at));
                }
            }
        }

        let mut notices: Vec<(u32, CampaignNoticeKind)> = Vec::new();
        for (number, kind) in pending.notices {
            let Some(number) = self.campaigns.resolve(number) else {
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
                let campaign = self.campaigns.live(number)?;
                Some(CampaignNotice {
                    kind,
                    campaign_id: campaign.id.clone(),
                    summary: campaign.summary(),
                })
            })
            .collect()
    }

    /// Money of the account in `slot` (see [`CampaignDetector::record_money`]).
    pub(super) fn record_account_money(
        &mut self,
        slot: u32,
        event_id: &str,
        at: i64,
        amount: u64,
        currency: Currency,
        held: bool,
    ) {
        if held {
            self.record_account_money_of_hold(slot, event_id, at, amount, currency, None);
        } else {
            self.count_account_money(slot, event_id, at, amount, currency, false, None);
        }
    }

    /// Withheld money of the account in `slot`, with the hold that keeps
    /// it when there is one (see [`CampaignDetector::record_held_money`]).
    pub(super) fn record_account_money_of_hold(
        &mut self,
        slot: u32,
        event_id: &str,
        at: i64,
        amount: u64,
        currency: Currency,
        hold_id: Option<&str>,
    ) {
        self.count_account_money(slot, event_id, at, amount, currency, true, hold_id);
    }

    /// A released hold of the account in `slot`: what was counted as held
    /// for it becomes paid, for the account and (a member not cleared)
    /// its campaign. Only holds counted here move, so neither ledger can
    /// lose money it never counted.
    pub(super) fn move_released_hold(&mut self, slot: u32, hold_id: &str) {
        let account = &mut self.accounts[slot as usize];
        let Some(index) = account
            .counted_holds
            .iter()
            .position(|h| h.hold_id == hold_id)
        else {
            return;
        };
        let hold = account.counted_holds.remove(index);
        let held_to_paid = |money: &mut BTreeMap<Currency, CampaignMoney>| {
            if let Some(m) = money.get_mut(&hold.currency) {
                let moved = m.held.min(hold.amount);
                m.held -= moved;
                m.paid = m.paid.saturating_add(moved);
            }
        };
        held_to_paid(&mut account.money);
        let counted_in_campaign = account.member && !account.cleared;
        if counted_in_campaign
            && let Some(number) = self.campaign_number_of_slot(slot)
            && let Some(campaign) = self.campaigns.live_mut(number)
        {
            held_to_paid(&mut campaign.money);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn count_account_money(
        &mut self,
        slot: u32,
        event_id: &str,
        at: i64,
        amount: u64,
        currency: Currency,
        held: bool,
        hold_id: Option<&str>,
    ) {
        let slot_index = slot as usize;
        let account = &self.accounts[slot_index];
        // A non-member's money counts only within its episode: after the
        // gap, a later risky change would start a new ledger anyway. This
        // keeps payouts of accounts long past a risky change cheap.
        let gap = i64::from(self.config.episode_gap_days) * DAY;
        if at < account.first_risky_at
            || (!account.member && at.saturating_sub(account.last_risky_at) > gap)
        {
            return;
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
            account_id: Some(account.id.clone()),
            kind: TimelineKind::Money,
            detail: format!("{amount} {currency} {}", if held { "held" } else { "paid" }),
        };
        let account = &mut self.accounts[slot_index];
        add_money(&mut account.money, currency, moved);
        if let Some(hold_id) = hold_id {
            if account.counted_holds.len() >= MAX_COUNTED_HOLDS {
                account.counted_holds.remove(0);
            }
            account.counted_holds.push(CountedHold {
                hold_id: hold_id.to_string(),
                currency,
                amount,
            });
        }
        let cleared = account.cleared;
        if !account.member {
            push_bounded(
                &mut account.history,
                &mut account.history_dropped,
                entry,
                HISTORY_HEAD,
                HISTORY_TAIL,
            );
            return;
        }
        if let Some(number) = self.campaign_number_of_slot(slot)
            && let Some(campaign) = self.campaigns.live_mut(number)
        {
            if !cleared {
                add_money(&mut campaign.money, currency, moved);
            }
            campaign.push_timeline(entry);
            campaign.last_activity = campaign.last_activity.max(Timestamp(at));
        }
    }

    /// A label on the account in `slot` (see [`CampaignDetector::label`]).
    pub(super) fn label_account(
        &mut self,
        slot: u32,
        account_id: &str,
        event_id: &str,
        at: i64,
        label: LabelKind,
    ) -> Vec<CampaignNotice> {
        let slot_index = slot as usize;
        let root = self.graph.find(self.accounts[slot_index].node);
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
            if let Some(component) = self.graph.component_mut(root) {
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
        let active = self.graph.component(root).map_or(0, |c| c.active);
        let Some(campaign) = self.campaigns.live_mut(number) else {
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

    /// An analyst gives the account in `slot` back to its owner (see
    /// [`CampaignDetector::clear_account`]).
    pub(super) fn clear_member(
        &mut self,
        slot: u32,
        account_id: &str,
        event_id: &str,
        at: i64,
        by: &str,
    ) -> bool {
        let slot_index = slot as usize;
        if self.accounts[slot_index].cleared || !self.accounts[slot_index].member {
            return false;
        }
        self.now = self.now.max(at);
        let root = self.graph.find(self.accounts[slot_index].node);
        self.accounts[slot_index].cleared = true;
        if let Some(component) = self.graph.component_mut(root) {
            component.active = component.active.saturating_sub(1);
        }
        let account_money = self.accounts[slot_index].money.clone();
        let Some(number) = self.campaign_number_of_slot(slot) else {
            return true;
        };
        let Some(campaign) = self.campaigns.live_mut(number) else {
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
}
