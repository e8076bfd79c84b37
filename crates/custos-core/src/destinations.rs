//! Payout destinations across accounts: which accounts set each destination
//! and when. A mule account that receives money from several victims shows
//! up here after its second victim, long before any one account looks odd.
//!
//! Keyed by a hash of institution and account token (the raw number is never
//! seen). Bounded: each destination remembers at most
//! [`MAX_ACCOUNTS_PER_DESTINATION`] accounts (and counts the rest), and the
//! index at most [`MAX_TRACKED_DESTINATIONS`] destinations, dropping those
//! not set for [`FORGET_AFTER_SECS`] when full.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::event::Destination;
use crate::profile::{TraitKind, stable_hash_parts};

/// Accounts remembered by name per destination.
pub const MAX_ACCOUNTS_PER_DESTINATION: usize = 32;
/// Destinations tracked at most.
pub const MAX_TRACKED_DESTINATIONS: usize = 1_000_000;
/// A destination no account set for this long may be forgotten when the
/// index is full.
pub const FORGET_AFTER_SECS: i64 = 365 * 86_400;

/// The accounts that set one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationUse {
    /// When any account first set it.
    pub first_set_at: i64,
    /// Account ids with the last time each set it, oldest first.
    pub accounts: Vec<(String, i64)>,
    /// Accounts beyond those remembered by name.
    pub more_accounts: u32,
    /// When a fraud label put it on the deny list: a destination used in
    /// confirmed fraud is a mule account, whoever sets it next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_at: Option<i64>,
}

impl DestinationUse {
    /// Accounts other than `account_id` that set it, in all and since `since`.
    /// Beyond the named ones, the extra count counts toward "in all" only.
    pub fn other_accounts(&self, account_id: &str, since: i64) -> (u64, u64) {
        let named = self.accounts.iter().filter(|(a, _)| a != account_id);
        let recent = named.clone().filter(|(_, at)| *at >= since).count() as u64;
        (named.count() as u64 + u64::from(self.more_accounts), recent)
    }

    fn last_set_at(&self) -> i64 {
        self.accounts
            .iter()
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(self.first_set_at)
    }
}

/// The key a destination is tracked under: stable across processes, since
/// snapshots keep it. (The trait kind only seeds the hash; the map is
/// separate from profiles.)
pub fn destination_key(destination: &Destination) -> u64 {
    destination_key_of(&destination.institution_id, &destination.account_token)
}

/// [`destination_key`] from the institution and token alone.
pub fn destination_key_of(institution_id: &str, account_token: &str) -> u64 {
    stable_hash_parts(
        TraitKind::Device,
        &[
            b"destination",
            institution_id.as_bytes(),
            account_token.as_bytes(),
        ],
    )
}

/// Every destination set by any account.
#[derive(Debug, Clone, Default)]
pub struct DestinationIndex {
    uses: HashMap<u64, DestinationUse, RandomState>,
}

impl DestinationIndex {
    pub fn get(&self, destination: &Destination) -> Option<&DestinationUse> {
        self.uses.get(&destination_key(destination))
    }

    pub fn len(&self) -> usize {
        self.uses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uses.is_empty()
    }

    /// Records that `account_id` set `destination` at `at`.
    pub fn record(&mut self, destination: &Destination, account_id: &str, at: i64) {
        let key = destination_key(destination);
        if self.uses.len() >= MAX_TRACKED_DESTINATIONS && !self.uses.contains_key(&key) {
            // Denied destinations are evidence: never forgotten.
            self.uses
                .retain(|_, u| u.denied_at.is_some() || at - u.last_set_at() < FORGET_AFTER_SECS);
            if self.uses.len() >= MAX_TRACKED_DESTINATIONS {
                // Still full of recent destinations: this one goes untracked
                // rather than evicting evidence about a recent one.
                return;
            }
        }
        let entry = self.uses.entry(key).or_insert_with(|| DestinationUse {
            first_set_at: at,
            ..DestinationUse::default()
        });
        entry.first_set_at = entry.first_set_at.min(at);
        if let Some(known) = entry.accounts.iter_mut().find(|(a, _)| a == account_id) {
            known.1 = known.1.max(at);
        } else if entry.accounts.len() < MAX_ACCOUNTS_PER_DESTINATION {
            entry.accounts.push((account_id.to_string(), at));
        } else {
            entry.more_accounts = entry.more_accounts.saturating_add(1);
        }
    }

    /// Puts a destination on the deny list (tracking it if it was not);
    /// false if it was denied already.
    pub fn deny(&mut self, destination: &Destination, at: i64) -> bool {
        let key = destination_key(destination);
        let entry = self.uses.entry(key).or_insert_with(|| DestinationUse {
            first_set_at: at,
            ..DestinationUse::default()
        });
        if entry.denied_at.is_some() {
            return false;
        }
        entry.denied_at = Some(at);
        true
    }

    /// Whether a destination is on the learned deny list.
    pub fn is_denied(&self, destination: &Destination) -> bool {
        self.is_denied_key(destination_key(destination))
    }

    /// [`DestinationIndex::is_denied`] by key ([`destination_key_of`]).
    pub fn is_denied_key(&self, key: u64) -> bool {
        self.uses.get(&key).is_some_and(|u| u.denied_at.is_some())
    }

    /// Entries sorted by key, for snapshots.
    pub fn sorted(&self) -> Vec<(u64, DestinationUse)> {
        let mut all: Vec<(u64, DestinationUse)> =
            self.uses.iter().map(|(k, u)| (*k, u.clone())).collect();
        all.sort_by_key(|(k, _)| *k);
        all
    }

    pub fn from_sorted(entries: Vec<(u64, DestinationUse)>) -> DestinationIndex {
        DestinationIndex {
            uses: entries.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(token: &str) -> Destination {
        Destination {
            institution_id: "608371".into(),
            institution_type: None,
            country: None,
            account_token: token.into(),
            account_last4: None,
            holder_name: None,
        }
    }

    #[test]
    fn counts_other_accounts_in_all_and_recently() {
        let mut index = DestinationIndex::default();
        let mule = destination("tk_mule");
        index.record(&mule, "victim-1", 100);
        index.record(&mule, "victim-2", 5_000);
        index.record(&mule, "victim-1", 6_000);
        let used = index.get(&mule).unwrap();
        assert_eq!(used.first_set_at, 100);
        assert_eq!(used.other_accounts("victim-3", 0), (2, 2));
        assert_eq!(
            used.other_accounts("victim-3", 5_500),
            (2, 1),
            "victim-1 again at 6000"
        );
        assert_eq!(used.other_accounts("victim-1", 0), (1, 1));
        assert!(index.get(&destination("tk_other")).is_none());
    }

    #[test]
    fn accounts_beyond_the_cap_are_counted_not_named() {
        let mut index = DestinationIndex::default();
        let mule = destination("tk_mule");
        for n in 0..(MAX_ACCOUNTS_PER_DESTINATION + 5) {
            index.record(&mule, &format!("victim-{n}"), n as i64);
        }
        let used = index.get(&mule).unwrap();
        assert_eq!(used.accounts.len(), MAX_ACCOUNTS_PER_DESTINATION);
        assert_eq!(used.more_accounts, 5);
        assert_eq!(
            used.other_accounts("someone", 0).0,
            MAX_ACCOUNTS_PER_DESTINATION as u64 + 5
        );
    }

    #[test]
    fn the_same_destination_at_another_institution_is_another_key() {
        let a = destination("tk_1");
        let mut b = destination("tk_1");
        b.institution_id = "200000".into();
        assert_ne!(destination_key(&a), destination_key(&b));
    }
}
