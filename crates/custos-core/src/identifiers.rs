//! Device and session identifiers across accounts: which sellers presented
//! each `device_id` and `session_id`, and since when.
//!
//! A fraud device hops across victims: one browser profile, one phishing
//! kit's relay, one cookie jar replayed on seller after seller. Each victim
//! alone looks like a login from a device that is new to it; across sellers
//! the same identifier turns up on several accounts that all started using
//! it recently. Honest sharing looks different: a family computer or an
//! accountant's office machine is used by a few accounts for months, so
//! their first use of it is old. [`IdentifierUse::other_accounts`] therefore
//! counts both: every other account seen with the identifier, and those for
//! which the sharing is new (the identifier is new to them, or to the
//! asking account, which knows that from its own device records).
//!
//! ## Why it looks like this
//!
//! - **Only the sightings that matter.** Indexing every login's device
//!   would hold every seller's every device, and at ten million sellers
//!   evict within hours what a hopping device left days ago. A device id is
//!   recorded when it does something sensitive (a password, MFA, e-mail,
//!   phone or payout-destination change, a payout, a loan) and at a
//!   successful login only the first time the account uses it; a session id
//!   only at sensitive changes and money events (every login opens one).
//!   Those are rare, and they are exactly the sightings a hopping device
//!   leaves on each victim.
//! - **Hashes, not names.** Identifiers and account ids are kept as stable
//!   64-bit hashes ([`stable_hash_parts`]): nothing here is shown to anyone,
//!   only counted, and a hash costs 8 bytes where an id costs a heap string.
//! - **Few accounts per identifier.** [`MAX_ACCOUNTS_PER_IDENTIFIER`] are
//!   remembered with their dates; more are only counted. Past a handful of
//!   sellers on one device the answer no longer changes.
//! - **Two generations instead of a sweep.** Identifiers are written into
//!   the young generation; when it holds [`GENERATION_CAPACITY`] entries it
//!   becomes the old one and the previous old generation is dropped, except
//!   its identifiers shared by two or more accounts (the evidence), which
//!   move into the new young generation. A lookup reads both. Memory stays
//!   under two generations (about 90 bytes an entry: some 180 MB at the
//!   cap), eviction costs nothing per event, and an identifier seen in
//!   either generation is still known.

use serde::{Deserialize, Serialize};

use crate::event::{Details, Event, EventType, LoginStatus};
use crate::profile::{TraitKind, stable_hash_parts};
use crate::sharded_map::ShardedMap;

/// Accounts remembered with their dates per identifier.
pub const MAX_ACCOUNTS_PER_IDENTIFIER: usize = 4;
/// Entries one generation holds before it is retired.
pub const GENERATION_CAPACITY: usize = 1_000_000;
/// Accounts seen with an identifier longer ago than this are not counted.
pub const IDENTIFIER_HORIZON_SECS: i64 = 90 * 86_400;
/// An identifier is new to an account that first used it this recently.
pub const NEW_IDENTIFIER_SECS: i64 = 30 * 86_400;

/// One account's use of an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUse {
    /// [`account_key`] of the account.
    pub account: u64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// The accounts that presented one identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifierUse {
    pub accounts: Vec<AccountUse>,
    /// Accounts beyond those remembered with dates.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_accounts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many other accounts used an identifier, see
/// [`IdentifierUse::other_accounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtherAccounts {
    /// Other accounts seen with it within [`IDENTIFIER_HORIZON_SECS`]
    /// (accounts beyond the remembered ones included).
    pub all: u32,
    /// Of those, the ones for which the sharing is new: the identifier is
    /// new to them (first recorded within [`NEW_IDENTIFIER_SECS`]), or to
    /// the asking account.
    pub new: u32,
}

impl IdentifierUse {
    /// Other accounts than `account` that used the identifier, judged at
    /// `at`; `new_to_asker` says whether the identifier is new to `account`
    /// (its own records know better than this index, which does not see
    /// every use).
    pub fn other_accounts(&self, account: u64, at: i64, new_to_asker: bool) -> OtherAccounts {
        let recent = |since: i64| at - since <= NEW_IDENTIFIER_SECS;
        let mut counted = OtherAccounts {
            all: self.more_accounts,
            new: 0,
        };
        for other in self.accounts.iter().filter(|u| u.account != account) {
            if at - other.last_seen > IDENTIFIER_HORIZON_SECS {
                continue;
            }
            counted.all += 1;
            if new_to_asker || recent(other.first_seen) {
                counted.new += 1;
            }
        }
        counted
    }

    fn record(&mut self, account: u64, at: i64) {
        if let Some(known) = self.accounts.iter_mut().find(|u| u.account == account) {
            known.first_seen = known.first_seen.min(at);
            known.last_seen = known.last_seen.max(at);
            return;
        }
        // A full list keeps the accounts seen most recently: an old
        // sharer gone quiet matters less than a new one.
        if self.accounts.len() >= MAX_ACCOUNTS_PER_IDENTIFIER {
            let stale = self
                .accounts
                .iter()
                .enumerate()
                .min_by_key(|(_, u)| u.last_seen)
                .map(|(i, _)| i);
            match stale {
                Some(i) if self.accounts[i].last_seen < at => {
                    self.accounts.swap_remove(i);
                }
                _ => {
                    self.more_accounts = self.more_accounts.saturating_add(1);
                    return;
                }
            }
            self.more_accounts = self.more_accounts.saturating_add(1);
        }
        // Most identifiers are only ever one account's: grown one entry at
        // a time, where a first push would reserve room for four.
        self.accounts.reserve_exact(1);
        self.accounts.push(AccountUse {
            account,
            first_seen: at,
            last_seen: at,
        });
    }

    fn shared(&self) -> bool {
        self.accounts.len() + self.more_accounts as usize >= 2
    }
}

/// The key an account is remembered by here.
pub fn account_key(account_id: &str) -> u64 {
    stable_hash_parts(TraitKind::Device, &[b"account", account_id.as_bytes()])
}

/// The key a device id is tracked under.
pub fn device_key(device_id: &str) -> u64 {
    stable_hash_parts(TraitKind::Device, &[b"device", device_id.as_bytes()])
}

/// The key a session id is tracked under.
pub fn session_key(session_id: &str) -> u64 {
    stable_hash_parts(TraitKind::Device, &[b"session", session_id.as_bytes()])
}

/// Whether an event's identifiers are recorded whatever the account knew:
/// sensitive changes and money events (see the module docs).
fn is_sensitive(event_type: EventType) -> bool {
    event_type.is_sensitive_change()
        || matches!(
            event_type,
            EventType::Payout | EventType::LoanApplication | EventType::LoanDisbursement
        )
}

/// Which accounts presented each device and session identifier.
#[derive(Debug, Clone, Default)]
pub struct IdentifierIndex {
    /// Sharded: a generation grows a shard at a time, and snapshots share
    /// it (see [`crate::sharded_map`]).
    young: ShardedMap<u64, IdentifierUse>,
    old: ShardedMap<u64, IdentifierUse>,
}

/// The index as snapshots keep it: both generations, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdentifierSnapshot {
    pub young: Vec<(u64, IdentifierUse)>,
    pub old: Vec<(u64, IdentifierUse)>,
}

impl IdentifierIndex {
    /// The accounts that used the identifier with this key.
    pub fn get(&self, key: u64) -> Option<&IdentifierUse> {
        self.young.get(&key).or_else(|| self.old.get(&key))
    }

    /// The accounts that used the event's device id.
    pub fn device(&self, event: &Event) -> Option<&IdentifierUse> {
        self.get(device_key(event.device_id.as_deref()?))
    }

    /// The accounts that used the event's session id.
    pub fn session(&self, event: &Event) -> Option<&IdentifierUse> {
        self.get(session_key(event.session_id.as_deref()?))
    }

    /// Entries held, in both generations.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.young.is_empty() && self.old.is_empty()
    }

    /// Records the event's identifiers as used by its account;
    /// `device_new_to_account` says whether the account had never used the
    /// event's device id before (a successful login records it only then).
    pub fn record(&mut self, event: &Event, device_new_to_account: bool) {
        let account = account_key(&event.account_id);
        let at = event.unix_time();
        let sensitive = is_sensitive(event.event_type);
        let first_login_on_device = device_new_to_account
            && matches!(
                event.details,
                Details::Login {
                    status: LoginStatus::Success,
                    ..
                }
            );
        if (sensitive || first_login_on_device)
            && let Some(device) = &event.device_id
        {
            self.record_key(device_key(device), account, at);
        }
        if sensitive && let Some(session) = &event.session_id {
            self.record_key(session_key(session), account, at);
        }
    }

    fn record_key(&mut self, key: u64, account: u64, at: i64) {
        if !self.young.contains_key(&key) {
            if self.young.len() >= GENERATION_CAPACITY {
                self.retire_young();
            }
            let moved = self.old.remove(&key).unwrap_or_default();
            self.young.insert(key, moved);
        }
        if let Some(entry) = self.young.get_mut(&key) {
            entry.record(account, at);
        }
    }

    /// The young generation becomes the old one; of the old one, only the
    /// identifiers shared by several accounts are kept (in the new young
    /// generation, which they may fill up to half).
    fn retire_young(&mut self) {
        let retired = std::mem::take(&mut self.old);
        self.old = std::mem::take(&mut self.young);
        let keep = GENERATION_CAPACITY / 2;
        self.young = retired
            .iter()
            .filter(|(_, u)| u.shared())
            .take(keep)
            .map(|(k, u)| (*k, u.clone()))
            .collect();
    }

    pub fn to_snapshot(&self) -> IdentifierSnapshot {
        let sorted = |map: &ShardedMap<u64, IdentifierUse>| {
            let mut all: Vec<(u64, IdentifierUse)> =
                map.iter().map(|(k, u)| (*k, u.clone())).collect();
            all.sort_unstable_by_key(|(k, _)| *k);
            all
        };
        IdentifierSnapshot {
            young: sorted(&self.young),
            old: sorted(&self.old),
        }
    }

    pub fn from_snapshot(snapshot: IdentifierSnapshot) -> IdentifierIndex {
        IdentifierIndex {
            young: snapshot.young.into_iter().collect(),
            old: snapshot.old.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn index_with(uses: &[(&str, &str, i64)]) -> IdentifierIndex {
        let mut index = IdentifierIndex::default();
        for (device, account, at) in uses {
            index.record_key(device_key(device), account_key(account), *at);
        }
        index
    }

    fn others(index: &IdentifierIndex, device: &str, account: &str, at: i64) -> OtherAccounts {
        index
            .get(device_key(device))
            .map(|u| {
                let new_to_asker = u
                    .accounts
                    .iter()
                    .find(|a| a.account == account_key(account))
                    .is_none_or(|a| at - a.first_seen <= NEW_IDENTIFIER_SECS);
                u.other_accounts(account_key(account), at, new_to_asker)
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_device_hopping_across_new_victims_counts_as_new_sharing() {
        let index = index_with(&[
            ("kit", "victim-1", 100 * DAY),
            ("kit", "victim-2", 110 * DAY),
            ("kit", "victim-3", 118 * DAY),
        ]);
        let seen = others(&index, "kit", "victim-4", 120 * DAY);
        assert_eq!((seen.all, seen.new), (3, 3));
    }

    #[test]
    fn a_family_computer_used_for_months_is_shared_but_not_newly() {
        let mut uses = Vec::new();
        for day in 0..200 {
            uses.push(("family-pc", "shop-a", day * DAY));
            uses.push(("family-pc", "shop-b", day * DAY + 60));
        }
        let index = index_with(&uses);
        let seen = others(&index, "family-pc", "shop-a", 200 * DAY);
        assert_eq!((seen.all, seen.new), (1, 0));
        // A third shop opened on it today is new sharing, for it and for them.
        let newcomer = others(&index, "family-pc", "shop-c", 200 * DAY);
        assert_eq!((newcomer.all, newcomer.new), (2, 2));
    }

    #[test]
    fn a_victims_device_replayed_on_another_seller_is_new_to_that_seller() {
        let mut uses: Vec<(&str, &str, i64)> = (0..100)
            .map(|d| ("victim-laptop", "victim", d * DAY))
            .collect();
        uses.push(("victim-laptop", "other-seller", 100 * DAY));
        let index = index_with(&uses);
        let seen = others(&index, "victim-laptop", "other-seller", 100 * DAY + 60);
        assert_eq!((seen.all, seen.new), (1, 1));
    }

    #[test]
    fn accounts_unseen_past_the_horizon_are_not_counted() {
        let index = index_with(&[("old", "a", 0), ("old", "b", DAY)]);
        let seen = others(&index, "old", "c", DAY + IDENTIFIER_HORIZON_SECS + 1);
        assert_eq!(seen.all, 0);
    }

    #[test]
    fn accounts_beyond_the_cap_are_counted_not_remembered() {
        let uses: Vec<(String, i64)> = (0..10).map(|n| (format!("v{n}"), n * 60)).collect();
        let mut index = IdentifierIndex::default();
        for (account, at) in &uses {
            index.record_key(device_key("kit"), account_key(account), *at);
        }
        let entry = index.get(device_key("kit")).unwrap();
        assert_eq!(entry.accounts.len(), MAX_ACCOUNTS_PER_IDENTIFIER);
        assert_eq!(
            entry.accounts.iter().map(|u| u.first_seen).min(),
            Some(6 * 60),
            "the most recent are remembered"
        );
        assert_eq!(entry.other_accounts(account_key("x"), 600, true).all, 10);
    }

    #[test]
    fn a_retired_generation_keeps_only_shared_identifiers() {
        let mut index = IdentifierIndex::default();
        index.record_key(1, 10, 0);
        index.record_key(2, 10, 0);
        index.record_key(2, 11, 0);
        // Two retirements: the first makes them old, the second drops the
        // unshared one and carries the shared one over.
        index.retire_young();
        assert!(index.get(1).is_some() && index.get(2).is_some());
        index.retire_young();
        assert!(index.get(1).is_none());
        assert_eq!(index.get(2).map(|u| u.accounts.len()), Some(2));
    }

    #[test]
    fn snapshots_round_trip() {
        let index = index_with(&[("a", "x", 1), ("a", "y", 2), ("b", "x", 3)]);
        let json = serde_json::to_string(&index.to_snapshot()).unwrap();
        let back = IdentifierIndex::from_snapshot(serde_json::from_str(&json).unwrap());
        assert_eq!(back.to_snapshot(), index.to_snapshot());
        assert_eq!(others(&back, "a", "z", 10).all, 2);
    }
}
