//! Payout holds: money the decision kept back, and what became of it.
//!
//! A payout or loan disbursement decided `hold` opens a [`Hold`], keyed by
//! the account and the payout's `payout_id` (a disbursement's `loan_id`):
//! two accounts may use the same payout id. A hold ends in one of two ways:
//!
//! ```text
//! requested ──allow──▶ (paid; no hold)
//!     │
//!     └──hold──▶ held ──release──▶ released   (analyst, a legit label, or the cool-off ended)
//!                  │
//!                  └───cancel───▶ cancelled   (analyst, or a fraud label on the account)
//! ```
//!
//! Every hold carries its reasons (the rules that asked for it), its score,
//! the event that caused it and its expiry: the end of the cool-off that
//! began with the account's last sensitive change. At expiry a hold is
//! released by itself only when nothing argues against it any more: the
//! account is not at risk, not in a confirmed campaign, and the destination
//! is not denied. Otherwise it waits for an analyst (`awaiting_analyst`).
//! A hold a rule tagged `owner_confirms` asked for (money to a destination
//! nothing has vouched for yet) is never released by time: the owner's
//! confirmation through a channel that may vouch releases it at once, and
//! at expiry it waits for an analyst.
//!
//! Expiry runs on event time, against two clocks: the engine's clock
//! ([`crate::clock`]), which follows the newest event time only as far as a
//! second account vouches for it, so that one event dated in the far future
//! cannot end every other account's cool-off; and the account's own newest
//! event time, which ends only its own holds. A seller who sends nothing
//! more still has their hold released once the rest of the traffic passes
//! its expiry. Both clocks are functions of the log, so replaying it
//! releases the same holds at the same events.
//!
//! Bounded: at most [`MAX_OPEN_HOLDS`] open holds (a hold beyond is still
//! decided `hold`, just not tracked, and counted) and [`MAX_CLOSED_HOLDS`]
//! closed ones, oldest closed forgotten first.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::decision::Decision;
use crate::event::{Currency, Destination, EventType, InstitutionType};
use crate::features::{Feature, FeatureValue};
use crate::sharded_map::ShardedMap;
use crate::types::{Action, Timestamp};

/// Open holds tracked at most.
pub const MAX_OPEN_HOLDS: usize = 1_000_000;
/// Closed holds remembered (for `GET /v1/holds?status=...` and audits).
pub const MAX_CLOSED_HOLDS: usize = 100_000;

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Held,
    Released,
    Cancelled,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Released => "released",
            HoldStatus::Cancelled => "cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<HoldStatus> {
        [
            HoldStatus::Held,
            HoldStatus::Released,
            HoldStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// A destination as shown to analysts: never the raw number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationView {
    pub institution_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub institution_type: Option<InstitutionType>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account_last4: Option<String>,
    pub account_token: String,
}

impl From<&Destination> for DestinationView {
    fn from(d: &Destination) -> Self {
        DestinationView {
            institution_id: d.institution_id.clone(),
            institution_type: d.institution_type,
            country: d.country.clone(),
            account_last4: d.account_last4.clone(),
            account_token: d.account_token.clone(),
        }
    }
}

/// Who closed a hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The analyst, or `custos` for an automatic release at expiry.
    pub by: String,
    pub reason: String,
    pub at: Timestamp,
    /// The event that closed it (an analyst action, a label, or the event
    /// whose time ended the cool-off).
    pub event_id: String,
}

/// One payout or disbursement kept back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The payout's `payout_id`, or the disbursement's `loan_id`.
    pub hold_id: String,
    pub account_id: String,
    /// `payout` or `loan_disbursement`.
    pub kind: EventType,
    /// The event that was held.
    pub event_id: String,
    pub amount: u64,
    pub currency: Currency,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination: Option<DestinationView>,
    pub status: HoldStatus,
    /// Codes of the active rules that asked for `hold` or more.
    pub reasons: Vec<String>,
    pub score: u32,
    pub held_at: Timestamp,
    /// End of the cool-off: released then unless something argues against.
    pub expires_at: Timestamp,
    /// Expired, but the account is at risk, in a confirmed campaign or the
    /// destination denied: only an analyst (or a clearing event) releases it.
    #[serde(default)]
    pub awaiting_analyst: bool,
    /// Why it waits for an analyst, once it does: what still argues
    /// against paying when its cool-off ended.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub awaiting_reason: Option<String>,
    /// A rule that asked for it waits for the owner's confirmation (tagged
    /// `owner_confirms`): a verification without a session through a
    /// channel that may vouch releases it at once; at expiry it waits for
    /// an analyst instead of being paid because time passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner_must_confirm: bool,
    /// The money goes to a destination this account was never paid to
    /// (`destination.first_payout` recorded on the held decision): an
    /// owner's confirmation releases it only through a channel a takeover
    /// cannot pass ([`crate::event::VerificationChannel::beyond_takeover`]), since an
    /// attacker relaying the owner's codes confirms through the others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm_beyond_takeover: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolution: Option<Resolution>,
}

/// What to open a hold with.
pub struct NewHold<'a> {
    pub hold_id: &'a str,
    pub account_id: &'a str,
    pub kind: EventType,
    pub event_id: &'a str,
    pub amount: u64,
    pub currency: Currency,
    pub destination: Option<&'a Destination>,
    pub decision: &'a Decision,
    pub at: i64,
    pub expires_at: i64,
}

/// Why a hold could not be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    #[error("no hold with id {0:?}")]
    NotFound(String),
    #[error("hold {hold_id:?} is already {status}")]
    Closed {
        hold_id: String,
        status: &'static str,
    },
}

/// Every tracked hold, with an index of open ones by expiry.
#[derive(Debug, Clone, Default)]
pub struct HoldBook {
    /// Sharded: a growing book rehashes a shard at a time, and snapshots
    /// share it (see [`crate::sharded_map`]).
    holds: ShardedMap<HoldKey, Hold>,
    /// Open holds not yet expired, by (expiry, key): the sweep pops the front.
    pending_expiry: BTreeSet<(i64, HoldKey)>,
    /// Closed holds in closing order, oldest first, for forgetting.
    closed_order: std::collections::VecDeque<HoldKey>,
    open: usize,
    /// Holds decided but not tracked because the book was full.
    untracked: u64,
    /// Payout ids by account, and accounts by payout id: lookups by either
    /// without scanning every hold.
    ids_of_account: ShardedMap<String, Vec<String>>,
    accounts_of_id: ShardedMap<String, Vec<String>>,
}

/// A hold's key: its account and its payout (or loan) id.
pub type HoldKey = (String, String);

fn key(account_id: &str, hold_id: &str) -> HoldKey {
    (account_id.to_string(), hold_id.to_string())
}

/// The serialized form of a [`HoldBook`], sorted for stable snapshots.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HoldSnapshot {
    holds: Vec<Hold>,
    closed_order: Vec<HoldKey>,
    untracked: u64,
}

impl HoldBook {
    /// The account's hold with this payout or loan id.
    pub fn get(&self, account_id: &str, hold_id: &str) -> Option<&Hold> {
        self.holds.get(&key(account_id, hold_id))
    }

    /// Every hold with this payout or loan id, whatever the account: one,
    /// unless the platform reuses ids across accounts.
    pub fn find(&self, hold_id: &str) -> Vec<&Hold> {
        let mut found: Vec<&Hold> = self
            .accounts_of_id
            .get(hold_id)
            .into_iter()
            .flatten()
            .filter_map(|account| self.get(account, hold_id))
            .collect();
        found.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        found
    }

    fn insert(&mut self, hold_key: HoldKey, hold: Hold) {
        let (account, id) = &hold_key;
        self.ids_of_account
            .get_or_insert_with(account.as_str(), Vec::new)
            .push(id.clone());
        self.accounts_of_id
            .get_or_insert_with(id.as_str(), Vec::new)
            .push(account.clone());
        self.holds.insert(hold_key, hold);
    }

    fn remove(&mut self, hold_key: &HoldKey) {
        if self.holds.remove(hold_key).is_none() {
            return;
        }
        let (account, id) = hold_key;
        for (map, key, value) in [
            (&mut self.ids_of_account, account, id),
            (&mut self.accounts_of_id, id, account),
        ] {
            if let Some(list) = map.get_mut(key) {
                list.retain(|v| v != value);
                if list.is_empty() {
                    map.remove(key);
                }
            }
        }
    }

    /// Open holds, oldest first.
    pub fn open(&self) -> Vec<&Hold> {
        let mut open: Vec<&Hold> = self
            .holds
            .values()
            .filter(|h| h.status == HoldStatus::Held)
            .collect();
        open.sort_by(|a, b| (a.held_at, &a.hold_id).cmp(&(b.held_at, &b.hold_id)));
        open
    }

    /// Every tracked hold of one account, newest first.
    pub fn of_account(&self, account_id: &str) -> Vec<&Hold> {
        let mut holds: Vec<&Hold> = self
            .ids_of_account
            .get(account_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.get(account_id, id))
            .collect();
        holds.sort_by(|a, b| (b.held_at, &b.hold_id).cmp(&(a.held_at, &a.hold_id)));
        holds
    }

    /// Holds in a status, newest first, at most `limit`.
    pub fn with_status(&self, status: HoldStatus, limit: usize) -> Vec<&Hold> {
        let mut holds: Vec<&Hold> = self.holds.values().filter(|h| h.status == status).collect();
        holds.sort_by(|a, b| (b.held_at, &b.hold_id).cmp(&(a.held_at, &a.hold_id)));
        holds.truncate(limit);
        holds
    }

    pub fn open_count(&self) -> usize {
        self.open
    }

    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// Opens a hold. A payout id that is already held keeps its hold (the
    /// platform asked again for money it has not been given); a closed one
    /// is replaced by the new hold. Returns the hold if one was opened.
    pub fn open_hold(&mut self, new: NewHold<'_>) -> Option<&Hold> {
        let hold_key = key(new.account_id, new.hold_id);
        match self.holds.get(&hold_key) {
            Some(existing) if existing.status == HoldStatus::Held => return None,
            Some(_) => {
                self.remove(&hold_key);
                self.closed_order.retain(|k| *k != hold_key);
            }
            None => {}
        }
        if self.open >= MAX_OPEN_HOLDS {
            self.untracked += 1;
            return None;
        }
        let reasons = new
            .decision
            .reasons
            .iter()
            .filter(|r| r.action >= Action::Hold)
            .map(|r| r.code.clone())
            .collect();
        let hold = Hold {
            hold_id: new.hold_id.to_string(),
            account_id: new.account_id.to_string(),
            kind: new.kind,
            event_id: new.event_id.to_string(),
            amount: new.amount,
            currency: new.currency,
            destination: new.destination.map(DestinationView::from),
            status: HoldStatus::Held,
            reasons,
            score: new.decision.score,
            held_at: Timestamp(new.at),
            expires_at: Timestamp(new.expires_at.max(new.at)),
            awaiting_analyst: false,
            awaiting_reason: None,
            owner_must_confirm: new
                .decision
                .reasons
                .iter()
                .any(|r| r.action >= Action::Hold && r.owner_confirms),
            confirm_beyond_takeover: new.decision.features.value(Feature::DestinationFirstPayout)
                == Some(FeatureValue::Bool(true)),
            resolution: None,
        };
        self.pending_expiry
            .insert((hold.expires_at.0, hold_key.clone()));
        self.open += 1;
        self.insert(hold_key.clone(), hold);
        self.holds.get(&hold_key)
    }

    /// Closes an open hold as released or cancelled.
    pub fn close(
        &mut self,
        account_id: &str,
        hold_id: &str,
        status: HoldStatus,
        resolution: Resolution,
    ) -> Result<&Hold, HoldError> {
        let hold_key = key(account_id, hold_id);
        let hold = self
            .holds
            .get_mut(&hold_key)
            .ok_or_else(|| HoldError::NotFound(hold_id.to_string()))?;
        if hold.status != HoldStatus::Held {
            return Err(HoldError::Closed {
                hold_id: hold_id.to_string(),
                status: hold.status.as_str(),
            });
        }
        self.pending_expiry
            .remove(&(hold.expires_at.0, hold_key.clone()));
        hold.status = status;
        hold.awaiting_analyst = false;
        hold.resolution = Some(resolution);
        self.open -= 1;
        self.closed_order.push_back(hold_key.clone());
        while self.closed_order.len() > MAX_CLOSED_HOLDS {
            if let Some(old) = self.closed_order.pop_front() {
                self.remove(&old);
            }
        }
        self.holds
            .get(&hold_key)
            .ok_or_else(|| HoldError::NotFound(hold_id.to_string()))
    }

    /// Takes the keys of open holds whose cool-off ended at or before `now`
    /// out of the expiry queue, oldest first.
    pub fn take_expired(&mut self, now: i64) -> Vec<HoldKey> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.pending_expiry.first()
            && *at <= now
        {
            if let Some((_, id)) = self.pending_expiry.pop_first() {
                due.push(id);
            }
        }
        due
    }

    /// Takes the keys of one account's open holds whose cool-off ended at
    /// or before `now` out of the expiry queue, oldest first: the account's
    /// own events end its own cool-offs even when the engine's clock lags.
    pub fn take_expired_of(&mut self, account_id: &str, now: i64) -> Vec<HoldKey> {
        let Some(ids) = self.ids_of_account.get(account_id) else {
            return Vec::new();
        };
        let mut due: Vec<(i64, HoldKey)> = ids
            .iter()
            .filter_map(|id| self.holds.get(&key(account_id, id)))
            .filter(|h| h.status == HoldStatus::Held && h.expires_at.0 <= now)
            .map(|h| (h.expires_at.0, key(&h.account_id, &h.hold_id)))
            .filter(|entry| self.pending_expiry.contains(entry))
            .collect();
        due.sort();
        for entry in &due {
            self.pending_expiry.remove(entry);
        }
        due.into_iter().map(|(_, k)| k).collect()
    }

    /// The owner confirmed an open hold that something else still keeps:
    /// it no longer waits for the owner.
    pub fn owner_confirmed(&mut self, hold_key: &HoldKey) {
        if let Some(hold) = self.holds.get_mut(hold_key)
            && hold.status == HoldStatus::Held
        {
            hold.owner_must_confirm = false;
        }
    }

    /// Marks an expired open hold as waiting for an analyst.
    pub fn await_analyst(&mut self, hold_key: &HoldKey) {
        if let Some(hold) = self.holds.get_mut(hold_key)
            && hold.status == HoldStatus::Held
        {
            hold.awaiting_analyst = true;
        }
    }

    /// [`HoldBook::await_analyst`], saying why (`awaiting_reason`).
    pub fn await_analyst_because(&mut self, hold_key: &HoldKey, reason: &str) {
        self.await_analyst(hold_key);
        if let Some(hold) = self.holds.get_mut(hold_key)
            && hold.awaiting_analyst
        {
            hold.awaiting_reason = Some(reason.to_string());
        }
    }

    /// Keys of the account's open holds, oldest first.
    pub fn open_keys_of(&self, account_id: &str) -> Vec<HoldKey> {
        self.of_account(account_id)
            .into_iter()
            .rev()
            .filter(|h| h.status == HoldStatus::Held)
            .map(|h| key(&h.account_id, &h.hold_id))
            .collect()
    }

    pub fn to_snapshot(&self) -> HoldSnapshot {
        let mut holds: Vec<Hold> = self.holds.values().cloned().collect();
        holds.sort_by(|a, b| (&a.account_id, &a.hold_id).cmp(&(&b.account_id, &b.hold_id)));
        HoldSnapshot {
            holds,
            closed_order: self.closed_order.iter().cloned().collect(),
            untracked: self.untracked,
        }
    }

    pub fn from_snapshot(snapshot: HoldSnapshot) -> HoldBook {
        let mut book = HoldBook {
            untracked: snapshot.untracked,
            closed_order: snapshot.closed_order.into(),
            ..HoldBook::default()
        };
        for hold in snapshot.holds {
            let hold_key = key(&hold.account_id, &hold.hold_id);
            if hold.status == HoldStatus::Held {
                book.open += 1;
                if !hold.awaiting_analyst {
                    book.pending_expiry
                        .insert((hold.expires_at.0, hold_key.clone()));
                }
            }
            book.insert(hold_key, hold);
        }
        book
    }
}

#[cfg(test)]
mod tests;
