//! Payout destinations across accounts: which accounts set each destination,
//! when, and how. A mule account that receives money from several victims
//! shows up here after its second victim, long before any one account looks
//! odd; a family's or an accountant's shared bank account shows up too, and
//! what each account's setting looked like tells the two apart.
//!
//! # Sharing or mule reuse
//!
//! For each account that set a destination ([`Setter`]) the index keeps, from
//! the change itself: whether it was made in a risky episode (a risky
//! session, an account at risk, or a change the rules answered `review` or
//! stronger), the network (/24, /48) and device it came from, the keyed hash
//! of the holder name it gave ([`crate::token::DestinationTokenizer::holder_token`];
//! never the name), and whether that name was the one on the account's own
//! destination before. A later change by another account is compared with
//! each earlier setter ([`DestinationUse::compare`]):
//!
//! - **mule reuse** looks like: set in a risky episode (however long ago
//!   it is still remembered), or set by an *unrelated* seller (the account
//!   now setting it never used that seller's network or device) under a
//!   holder name unlike the one this change gives, or unlike both sellers'
//!   own earlier names;
//! - **benign sharing** looks like: set in an ordinary session, by a related
//!   account (the household's home network, the accountant's office device),
//!   under the same holder name.
//!
//! The features built on this (`destination.other_accounts_180d`,
//! `destination.other_accounts_risky`, `destination.other_accounts_unrelated`,
//! `destination.other_accounts_other_holder`, `destination.holder_unlike_own`,
//! `destination.other_accounts_mule_like`) are in `docs/rules.md`.
//!
//! # Bounds
//!
//! Keyed by a hash of institution and account token (the raw number is never
//! seen). Each destination remembers at most [`MAX_ACCOUNTS_PER_DESTINATION`]
//! accounts (and counts the rest), and the index at most
//! [`MAX_TRACKED_DESTINATIONS`] destinations, dropping those not set for
//! [`FORGET_AFTER_SECS`] when full (denied ones never). A destination set
//! by one account costs about 200 bytes (the map entry, the record, one
//! setter of 80 bytes plus its account id on the heap), so a full index is
//! about 200 MB. Only destination *changes* are recorded: at 10 million
//! sellers, of whom about 3 % change banks in a year, a year of changes is
//! about 300,000 destinations (60 MB), well inside the cap; the horizon of
//! the features is [`LONG_HORIZON_SECS`] (180 days), inside the year an
//! entry is kept.

use serde::{Deserialize, Serialize};

use crate::event::Destination;
use crate::profile::{BehaviourProfile, TraitKind, stable_hash, stable_hash_parts};
use crate::sharded_map::ShardedMap;

/// Accounts remembered by name per destination.
pub const MAX_ACCOUNTS_PER_DESTINATION: usize = 32;
/// Destinations tracked at most.
pub const MAX_TRACKED_DESTINATIONS: usize = 1_000_000;
/// A destination no account set for this long may be forgotten when the
/// index is full.
pub const FORGET_AFTER_SECS: i64 = 365 * 86_400;
/// Logins from a network or device after which an account habitually uses
/// it, for telling related accounts.
pub const ESTABLISHED_USES: u32 = 3;
/// The horizon of the long "other accounts" features: a ring that waits
/// weeks between victims is still seen months later.
pub const LONG_HORIZON_SECS: i64 = 180 * 86_400;

/// How one account set a destination, as the change showed it. Keys are
/// the behavioural profile's ([`crate::profile::LoginTraits`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetBy {
    /// In a risky session, while the account was at risk, or answered
    /// `review` or stronger.
    pub risky: bool,
    /// The network key (/24, /48) of the change, 0 when unknown.
    pub network: u64,
    /// The device key of the change, 0 when unknown.
    pub device: u64,
    /// The account's most used network and device (its home and its usual
    /// computer), 0 when it has no history: a change sent without an
    /// address still says whose household it came from.
    pub home_network: u64,
    pub home_device: u64,
    /// A hash of the holder name's keyed token, 0 when none was given.
    pub holder: u64,
    /// The holder name against the one on the account's own destination
    /// before: `Some(true)` the same, `Some(false)` another, `None` unknown.
    pub holder_own: Option<bool>,
}

impl SetBy {
    /// The keys of a destination change: its network and device as the
    /// behavioural profile keys them, the account's home network and
    /// device from its profile, and its holder name's token.
    pub fn keys(
        network: Option<u64>,
        device: Option<u64>,
        profile: Option<&BehaviourProfile>,
        destination: &Destination,
    ) -> SetBy {
        let home = |kind: TraitKind| {
            profile
                .and_then(|p| p.tallies(kind).max_by_key(|t| (t.count, t.key)))
                .map_or(0, |t| t.key)
        };
        SetBy {
            network: network.unwrap_or(0),
            device: device.unwrap_or(0),
            home_network: home(TraitKind::Network),
            home_device: home(TraitKind::Device),
            holder: holder_key(destination),
            ..SetBy::default()
        }
    }
}

/// The compact key of a destination's holder-name token (0 without one).
pub fn holder_key(destination: &Destination) -> u64 {
    destination.holder_token.as_deref().map_or(0, |token| {
        stable_hash(TraitKind::Device, token.as_bytes()).max(1)
    })
}

/// One account that set a destination. Snapshots write it as an array;
/// those written before it held more than the account and time still load
/// (an ordinary setting with nothing known about it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SetterRecord", into = "SetterRecord")]
pub struct Setter {
    pub account_id: String,
    /// The last time it set it.
    pub at: i64,
    pub by: SetBy,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SetterRecord {
    Full(String, i64, u8, [u64; 5]),
    Old(String, i64),
}

const RISKY: u8 = 1;
const HOLDER_OWN: u8 = 2;
const HOLDER_NOT_OWN: u8 = 4;

impl From<Setter> for SetterRecord {
    fn from(s: Setter) -> SetterRecord {
        let mut flags = 0;
        if s.by.risky {
            flags |= RISKY;
        }
        match s.by.holder_own {
            Some(true) => flags |= HOLDER_OWN,
            Some(false) => flags |= HOLDER_NOT_OWN,
            None => {}
        }
        SetterRecord::Full(
            s.account_id,
            s.at,
            flags,
            [
                s.by.network,
                s.by.device,
                s.by.home_network,
                s.by.home_device,
                s.by.holder,
            ],
        )
    }
}

impl From<SetterRecord> for Setter {
    fn from(record: SetterRecord) -> Setter {
        match record {
            SetterRecord::Old(account_id, at) => Setter {
                account_id,
                at,
                by: SetBy::default(),
            },
            SetterRecord::Full(account_id, at, flags, keys) => Setter {
                account_id,
                at,
                by: SetBy {
                    risky: flags & RISKY != 0,
                    network: keys[0],
                    device: keys[1],
                    home_network: keys[2],
                    home_device: keys[3],
                    holder: keys[4],
                    holder_own: if flags & HOLDER_OWN != 0 {
                        Some(true)
                    } else if flags & HOLDER_NOT_OWN != 0 {
                        Some(false)
                    } else {
                        None
                    },
                },
            },
        }
    }
}

/// The accounts that set one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationUse {
    /// When any account first set it.
    pub first_set_at: i64,
    /// The accounts that set it, oldest first.
    pub accounts: Vec<Setter>,
    /// Accounts beyond those remembered by name.
    pub more_accounts: u32,
    /// When a fraud label put it on the deny list: a destination used in
    /// confirmed fraud is a mule account, whoever sets it next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_at: Option<i64>,
}

/// What the other accounts that set a destination look like to one
/// account: see the module documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Other accounts that set it since the long horizon.
    pub recent: u64,
    /// Other accounts that set it in a risky episode, whenever, unless
    /// related to this one and under the same holder name.
    pub risky: u64,
    /// Of `recent`: those that share no network or device with this account.
    pub unrelated: u64,
    /// Of `recent`: those that gave a holder name unlike this change's.
    pub other_holder: u64,
    /// Those that look like mule reuse: the `risky` ones, and since the
    /// long horizon the unrelated ones under a holder name unlike this
    /// change's (or unlike both sellers' own).
    pub mule_like: u64,
}

/// How one other setter of a destination looks to an account setting it
/// now: the terms of [`Comparison`], for one setter.
struct Look {
    recent: bool,
    related: bool,
    risky: bool,
    mule_like: bool,
    other_holder: bool,
}

impl Look {
    /// Related when the account habitually uses ([`ESTABLISHED_USES`]
    /// logins or more) the network or device the other changed it from,
    /// or the other's home network or device.
    fn of(other: &Setter, at: i64, now: &SetBy, profile: Option<&BehaviourProfile>) -> Look {
        let since = at.saturating_sub(LONG_HORIZON_SECS);
        let knows = |kind: TraitKind, key: u64| {
            key != 0 && profile.is_some_and(|p| p.count(kind, key) >= ESTABLISHED_USES)
        };
        let recent = other.at >= since;
        let related = knows(TraitKind::Network, other.by.network)
            || knows(TraitKind::Network, other.by.home_network)
            || knows(TraitKind::Device, other.by.device)
            || knows(TraitKind::Device, other.by.home_device);
        // Unknown names count as unlike: a mule ring need not give any.
        let same_holder = other.by.holder != 0 && other.by.holder == now.holder;
        let neither_own = other.by.holder_own == Some(false) && now.holder_own == Some(false);
        // A risky setting is excused only as a related account's, under
        // the same name (the household that changed banks on holiday); an
        // ordinary one also when only the name differs.
        let risky = other.by.risky && !(related && same_holder);
        Look {
            recent,
            related,
            risky,
            mule_like: risky || (recent && !related && (!same_holder || neither_own)),
            other_holder: other.by.holder != 0 && now.holder != 0 && !same_holder,
        }
    }
}

impl DestinationUse {
    /// Accounts other than `account_id` that set it, in all and since `since`.
    /// Beyond the named ones, the extra count counts toward "in all" only.
    pub fn other_accounts(&self, account_id: &str, since: i64) -> (u64, u64) {
        let named = self.accounts.iter().filter(|s| s.account_id != account_id);
        let recent = named.clone().filter(|s| s.at >= since).count() as u64;
        (named.count() as u64 + u64::from(self.more_accounts), recent)
    }

    /// The setter record of `account_id`, if it set this destination.
    pub fn setter(&self, account_id: &str) -> Option<&Setter> {
        self.accounts.iter().find(|s| s.account_id == account_id)
    }

    /// How the other accounts that set it look to `account_id`, whose
    /// behavioural profile is `profile`, setting it now (`at`) under the
    /// holder name `now` gives: related when the account habitually uses
    /// ([`ESTABLISHED_USES`] logins or more) the network or device the
    /// other changed it from, or the other's home network or device. The
    /// change's own keys do not relate on their own: an attacker's box
    /// changes every victim's bank details, and a login from it teaches the
    /// victim's profile once.
    pub fn compare(
        &self,
        account_id: &str,
        at: i64,
        now: &SetBy,
        profile: Option<&BehaviourProfile>,
    ) -> Comparison {
        let mut c = Comparison::default();
        for other in self.accounts.iter().filter(|s| s.account_id != account_id) {
            let look = Look::of(other, at, now, profile);
            c.risky += u64::from(look.risky);
            c.mule_like += u64::from(look.mule_like);
            if !look.recent {
                continue;
            }
            c.recent += 1;
            c.unrelated += u64::from(!look.related);
            c.other_holder += u64::from(look.other_holder);
        }
        c
    }

    /// The other accounts whose earlier setting of this destination shows
    /// it to be a mule to `account_id` setting it now, with when each set
    /// it: the ring's earlier victims, linked with this change when it is a
    /// risky one. Those that set it in a risky episode (see
    /// [`Self::compare`]); and once two or more look like mule reuse, all
    /// of those. One ordinary, unrelated earlier setter under another name
    /// is how a business partner's or an accountant's account looks too:
    /// it is linked only when a third account makes it a pattern.
    pub fn mule_setters(
        &self,
        account_id: &str,
        at: i64,
        now: &SetBy,
        profile: Option<&BehaviourProfile>,
    ) -> Vec<(String, i64)> {
        let looks: Vec<(&Setter, Look)> = self
            .accounts
            .iter()
            .filter(|s| s.account_id != account_id)
            .map(|s| (s, Look::of(s, at, now, profile)))
            .filter(|(_, look)| look.mule_like)
            .collect();
        let pattern = looks.len() >= 2;
        looks
            .into_iter()
            .filter(|(_, look)| pattern || look.risky)
            .map(|(s, _)| (s.account_id.clone(), s.at))
            .collect()
    }

    fn last_set_at(&self) -> i64 {
        self.accounts
            .iter()
            .map(|s| s.at)
            .max()
            .unwrap_or(self.first_set_at)
    }
}

/// Whether a holder name is the account's own, from the holder keys of the
/// new and the previous destination (0 when unknown).
pub fn holder_own(new: u64, previous: u64) -> Option<bool> {
    (new != 0 && previous != 0).then_some(new == previous)
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
    /// Sharded: grows a shard at a time, and snapshots share it (see
    /// [`crate::sharded_map`]).
    uses: ShardedMap<u64, DestinationUse>,
}

impl DestinationIndex {
    pub fn get(&self, destination: &Destination) -> Option<&DestinationUse> {
        self.get_key(destination_key(destination))
    }

    /// [`DestinationIndex::get`] by key ([`destination_key_of`]).
    pub fn get_key(&self, key: u64) -> Option<&DestinationUse> {
        self.uses.get(&key)
    }

    pub fn len(&self) -> usize {
        self.uses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uses.is_empty()
    }

    /// The setter record of `account_id` for a destination it set.
    pub fn setter_of(&self, destination: &Destination, account_id: &str) -> Option<&Setter> {
        self.get(destination)?.setter(account_id)
    }

    /// Records that `account_id` set `destination` at `at`, as `by` says.
    /// Setting it again keeps the newest time, and remembers a risky
    /// setting even if a later one was ordinary.
    pub fn record(&mut self, destination: &Destination, account_id: &str, at: i64, by: SetBy) {
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
        let entry = self.uses.get_or_insert_with(&key, || DestinationUse {
            first_set_at: at,
            ..DestinationUse::default()
        });
        entry.first_set_at = entry.first_set_at.min(at);
        if let Some(known) = entry
            .accounts
            .iter_mut()
            .find(|s| s.account_id == account_id)
        {
            let risky = known.by.risky || by.risky;
            if at >= known.at {
                known.at = at;
                known.by = by;
            }
            known.by.risky = risky;
        } else if entry.accounts.len() < MAX_ACCOUNTS_PER_DESTINATION {
            // Most destinations are set by one account: room for one, not
            // the four a first push would make.
            entry.accounts.reserve_exact(1);
            entry.accounts.push(Setter {
                account_id: account_id.to_string(),
                at,
                by,
            });
        } else {
            entry.more_accounts = entry.more_accounts.saturating_add(1);
        }
    }

    /// Marks `account_id`'s setting of `destination` as made in a risky
    /// episode: the episode opened right after the change (the owner was
    /// asked to confirm it and the one answering failed). Returns whether
    /// the account had set it.
    pub fn mark_risky(&mut self, destination: &Destination, account_id: &str) -> bool {
        let Some(used) = self.uses.get_mut(&destination_key(destination)) else {
            return false;
        };
        match used
            .accounts
            .iter_mut()
            .find(|s| s.account_id == account_id)
        {
            Some(setter) => {
                setter.by.risky = true;
                true
            }
            None => false,
        }
    }

    /// The holder key the account's own destination before a change
    /// carried: the one the change names as its previous destination if
    /// that gives a holder name, otherwise the one the account gave when it
    /// set `current` (0 when neither is known).
    pub fn previous_holder(
        &self,
        account_id: &str,
        named_previous: Option<&Destination>,
        current: Option<&Destination>,
    ) -> u64 {
        let named = named_previous.map_or(0, holder_key);
        if named != 0 {
            return named;
        }
        current
            .and_then(|d| self.setter_of(d, account_id))
            .map_or(0, |s| s.by.holder)
    }

    /// Puts a destination on the deny list (tracking it if it was not);
    /// false if it was denied already.
    pub fn deny(&mut self, destination: &Destination, at: i64) -> bool {
        let key = destination_key(destination);
        let entry = self.uses.get_or_insert_with(&key, || DestinationUse {
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
            holder_token: None,
        }
    }

    #[test]
    fn counts_other_accounts_in_all_and_recently() {
        let mut index = DestinationIndex::default();
        let mule = destination("tk_mule");
        index.record(&mule, "victim-1", 100, SetBy::default());
        index.record(&mule, "victim-2", 5_000, SetBy::default());
        index.record(&mule, "victim-1", 6_000, SetBy::default());
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
            index.record(&mule, &format!("victim-{n}"), n as i64, SetBy::default());
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

    const DAY: i64 = 86_400;

    fn set(network: u64, holder: u64, risky: bool) -> SetBy {
        SetBy {
            risky,
            network,
            holder,
            ..SetBy::default()
        }
    }

    #[test]
    fn reuse_is_found_months_later_and_a_risky_setting_stays_remembered() {
        let mut index = DestinationIndex::default();
        let mule = destination("tk_mule");
        index.record(&mule, "victim-1", 0, set(11, 101, false));
        index.record(&mule, "victim-2", 60 * DAY, set(22, 102, true));
        // victim-2 setting it again in an ordinary session stays risky.
        index.record(&mule, "victim-2", 61 * DAY, set(22, 102, false));
        let used = index.get(&mule).unwrap();
        let now = set(33, 103, false);
        let at_120 = used.compare("victim-3", 120 * DAY, &now, None);
        assert_eq!(
            at_120,
            Comparison {
                recent: 2,
                risky: 1,
                unrelated: 2,
                other_holder: 2,
                mule_like: 2,
            }
        );
        // Past the long horizon only the risky setting still counts.
        let at_250 = used.compare("victim-3", 250 * DAY, &now, None);
        assert_eq!((at_250.recent, at_250.risky, at_250.mule_like), (0, 1, 1));
        // An account that habitually uses the first setter's network is
        // related to it, and with the same holder name that is sharing, not
        // a mule: only the second setter still counts. Once is not a habit.
        let mut profile = BehaviourProfile::default();
        let home = crate::profile::LoginTraits::with(&[(TraitKind::Network, 11)]);
        let family = set(0, 101, false);
        for day in 0..ESTABLISHED_USES {
            profile.record(&home, 100 * DAY, crate::profile::DEFAULT_HORIZON_DAYS);
            let shared = used.compare("victim-3", 120 * DAY, &family, Some(&profile));
            let expected = if day + 1 < ESTABLISHED_USES {
                (2, 1)
            } else {
                (1, 1)
            };
            assert_eq!((shared.unrelated, shared.mule_like), expected, "{day}");
        }
    }

    #[test]
    fn setters_round_trip_and_old_snapshots_still_load() {
        let mut index = DestinationIndex::default();
        let mule = destination("tk_mule");
        let by = SetBy {
            risky: true,
            network: 1,
            device: 2,
            home_network: 3,
            home_device: 4,
            holder: 5,
            holder_own: Some(false),
        };
        index.record(&mule, "victim-1", 100, by);
        let json = serde_json::to_string(&index.sorted()).unwrap();
        let back: Vec<(u64, DestinationUse)> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, index.sorted());
        assert_eq!(back[0].1.accounts[0].by, by);
        // Written before setters held more than the account and the time.
        let old = r#"[[7,{"first_set_at":100,"accounts":[["victim-1",100]],"more_accounts":0}]]"#;
        let old: Vec<(u64, DestinationUse)> = serde_json::from_str(old).unwrap();
        assert_eq!(old[0].1.accounts[0].account_id, "victim-1");
        assert_eq!(old[0].1.accounts[0].by, SetBy::default());
    }

    #[test]
    fn holder_names_are_the_sellers_own_only_when_both_are_known() {
        assert_eq!(holder_own(5, 5), Some(true));
        assert_eq!(holder_own(5, 6), Some(false));
        assert_eq!(holder_own(0, 6), None);
        assert_eq!(holder_own(5, 0), None);
    }

    #[test]
    fn an_engine_snapshot_keeps_how_each_account_set_a_destination() {
        use crate::tests::{at, event};
        let mut engine = crate::Engine::default();
        let mut n = 0;
        for day in 0..5 {
            n += 1;
            engine.process(&event(serde_json::json!({"event_id": format!("e{n}"),
                "type": "login", "account_id": "seller-1", "time": at(day * DAY),
                "status": "success", "session_id": format!("s{day}"),
                "ip": "81.2.69.160", "device_id": "laptop"})));
        }
        engine.process(&event(serde_json::json!({"event_id": "change",
            "type": "payout_destination_change", "account_id": "seller-1",
            "time": at(5 * DAY), "session_id": "s4", "ip": "81.2.69.160", "device_id": "laptop",
            "destination": {"institution_id": "20-00-00", "account_number": "11112222",
                            "holder_name": "Jane Seller"}})));
        let entries = engine.destinations().sorted();
        let by = entries[0].1.accounts[0].by;
        assert!(
            by.network != 0 && by.device != 0 && by.holder != 0,
            "{by:?}"
        );
        assert_eq!(by.home_network, by.network, "home is where it logs in");
        let mut restored = crate::Engine::default();
        restored.restore(&engine.snapshot().unwrap()).unwrap();
        assert_eq!(restored.destinations().sorted(), entries);
    }
}
