//! Per-account state, bounded in size.
//!
//! State changes only through [`AccountState::apply`], a pure function of the
//! previous state, the event and the decision taken for it. Replaying the
//! stored log (events with their stored decisions) in order therefore rebuilds
//! exactly the state the server had, whatever policy is configured now.
//!
//! Every collection here has a fixed capacity and forgets the least recently
//! seen entry first, so one noisy account cannot grow without bound.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::*;
use crate::profile::{BehaviourProfile, LoginTraits};
use crate::sightings::{ActivityHours, KnownDevices, Place, Platform, device_hash};
use crate::types::Action;
pub use crate::types::{NetworkPrefix, Timestamp};
use crate::window::Window;

/// Devices, networks and user agents remembered per account.
pub const MAX_KNOWN_IDENTIFIERS: usize = 16;
/// Sessions remembered per account.
pub const MAX_SESSIONS: usize = 16;
/// Earlier payout destinations remembered per account.
pub const MAX_PREVIOUS_DESTINATIONS: usize = 8;
/// Labels remembered per account.
pub const MAX_LABELS: usize = 16;
/// An event without `session_id` belongs to the account's most recent
/// session if that session was active within this many seconds.
pub const IMPLICIT_SESSION_SECS: i64 = 12 * 3600;

/// A value seen on the account, with how often and when last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen<T> {
    pub value: T,
    pub count: u32,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// A small set that remembers at most `MAX_KNOWN_IDENTIFIERS` values and
/// evicts the least recently seen. Linear scans beat hashing at this size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecentSet<T> {
    entries: Vec<Seen<T>>,
}

impl<T> Default for RecentSet<T> {
    fn default() -> Self {
        RecentSet {
            entries: Vec::new(),
        }
    }
}

impl<T: PartialEq> RecentSet<T> {
    pub fn contains<Q>(&self, value: &Q) -> bool
    where
        T: PartialEq<Q>,
        Q: ?Sized,
    {
        self.entries.iter().any(|e| e.value == *value)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Seen<T>> {
        self.entries.iter()
    }

    /// Records one sighting; `make` builds the owned value only when new.
    pub fn observe<Q>(&mut self, value: &Q, at: i64, make: impl FnOnce(&Q) -> T)
    where
        T: PartialEq<Q>,
        Q: ?Sized,
    {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.value == *value) {
            entry.count = entry.count.saturating_add(1);
            entry.last_seen = Timestamp(entry.last_seen.0.max(at));
            return;
        }
        if self.entries.len() >= MAX_KNOWN_IDENTIFIERS
            && let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
        }
        self.entries.push(Seen {
            value: make(value),
            count: 1,
            first_seen: Timestamp(at),
            last_seen: Timestamp(at),
        });
    }
}

/// What was new about a successful login, judged against the account's
/// history before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoginSignals {
    /// The account had no successful login before this one.
    pub first_login: bool,
    /// The device (by `device_id`, else by user agent) was never seen here.
    pub new_device: bool,
    /// The address's /24 (IPv4) or /48 (IPv6) was never seen here.
    pub new_network: bool,
}

impl LoginSignals {
    /// A login is risky when an account with history is entered from a device
    /// or a network it has never used.
    pub fn risky(&self) -> bool {
        !self.first_login && (self.new_device || self.new_network)
    }
}

/// One login session of the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub session_id: String,
    pub started_at: Timestamp,
    pub last_seen: Timestamp,
    /// Signals of the login that opened the session, if one was seen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub login: Option<LoginSignals>,
    /// Opened by a login from a new device or network, or one the rules
    /// challenged, and not yet cleared by a passed verification.
    pub risky: bool,
    pub verified: bool,
    /// log10 login risk of the login that opened the session (0 if none).
    #[serde(default)]
    pub risk: f32,
    /// What the session was seen from, for the session-theft features.
    #[serde(default, skip_serializing_if = "SessionClient::is_empty")]
    pub client: SessionClient,
}

/// Where a session was last seen and on what, for the session-theft
/// features (`sightings.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionClient {
    /// The last located event of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_place: Option<Place>,
    /// The device the session logged in on (a [`device_hash`], never 0);
    /// 0 when none.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device: u64,
    /// The platform the session logged in with.
    #[serde(default, skip_serializing_if = "Platform::is_unknown")]
    pub platform: Platform,
    /// The seller's own acts in the session after its login (changes,
    /// payouts, loans; not verifications, sales or logouts).
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub acts: u16,
    /// A session-theft feature fired in it (read back from the stored
    /// decision): it was made risky.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub theft_suspected: bool,
}

impl SessionClient {
    pub fn is_empty(&self) -> bool {
        *self == SessionClient::default()
    }
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

/// Where and when the last successful login with a known location was.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoginLocation {
    pub at: Timestamp,
    pub latitude: f32,
    pub longitude: f32,
}

/// Failed logins are counted over the last hour in 5-minute buckets.
pub type FailedLoginWindow = Window<12>;

pub(crate) fn failed_login_window() -> FailedLoginWindow {
    Window::new(3_600)
}

/// The payout destination in force, and how it came to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationRecord {
    /// Without its holder name: see [`AccountState::apply`]'s destination
    /// change. Snapshots written before that rule dropped the name on
    /// restore, so the next snapshot no longer holds it.
    #[serde(deserialize_with = "destination_without_holder_name")]
    pub destination: Destination,
    pub set_at: Timestamp,
    pub set_by_event: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub set_in_session: Option<String>,
    /// The session that set it was risky at the time, and has not been
    /// cleared by a passed verification since.
    pub set_in_risky_session: bool,
    /// The login risk (log10) of the session that set it; 0 without one.
    #[serde(default)]
    pub set_session_risk: f32,
    /// Payout-destination changes toward its institution were bursting
    /// across accounts when it was set.
    #[serde(default)]
    pub set_during_burst: bool,
}

fn destination_without_holder_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Destination, D::Error> {
    let destination = Destination::deserialize(deserializer)?;
    Ok(Destination {
        holder_name: None,
        holder_token: None,
        ..destination
    })
}

/// Why an account is at risk: a sensitive change made in a risky session
/// (or flagged by the rules), or a fraud label. It stays at risk, whatever
/// sessions come after, until a passed verification or an analyst clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtRisk {
    pub since: Timestamp,
    pub event_id: String,
    pub event_type: EventType,
    /// The session of the change that put the account at risk: a passed
    /// verification in that session (or in none) clears the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// What [`AccountState::apply`] changed that others must hear about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// The account was not at risk and now is.
    pub put_at_risk: bool,
    /// The account was at risk and was cleared.
    pub cleared: bool,
}

/// Money counted per currency, in minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Credited by sales.
    pub sales: u64,
    /// Paid out (allowed payouts; held or blocked ones are not counted).
    pub paid_out: u64,
    /// Loans disbursed and allowed.
    pub loans_disbursed: u64,
    /// Payouts and disbursements the decision held or blocked.
    pub withheld: u64,
    /// Payouts requested (paid or not), for the account's typical amount.
    #[serde(default)]
    pub payouts: u64,
    /// A running average of payout amounts (exponentially weighted, the
    /// last ~5 payouts count most), in minor units.
    #[serde(default)]
    pub typical_payout: u64,
}

/// Weight of the newest payout in [`Money::typical_payout`].
const TYPICAL_PAYOUT_WEIGHT: f64 = 0.3;

impl Money {
    fn record_payout(&mut self, amount: u64) {
        self.typical_payout = if self.payouts == 0 {
            amount
        } else {
            let blended = TYPICAL_PAYOUT_WEIGHT * amount as f64
                + (1.0 - TYPICAL_PAYOUT_WEIGHT) * self.typical_payout as f64;
            blended.round() as u64
        };
        self.payouts = self.payouts.saturating_add(1);
    }
}

impl Money {
    /// Sales credited minus sales proceeds paid out; may be negative when the
    /// platform pays out money Custos never saw credited.
    pub fn balance(&self) -> i128 {
        i128::from(self.sales) - i128::from(self.paid_out)
    }
}

/// A label an analyst or the platform attached to the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    pub label: LabelKind,
    pub at: Timestamp,
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub analyst: Option<String>,
}

/// The last decision that was not `allow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotableDecision {
    pub event_id: String,
    pub event_type: EventType,
    pub action: Action,
    pub at: Timestamp,
}

/// Everything Custos remembers about one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    pub account_id: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub event_counts: BTreeMap<EventType, u64>,
    pub logins_succeeded: u64,
    pub logins_failed: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_login_at: Option<Timestamp>,
    /// Device ids, or user agents for logins that sent no device id.
    pub devices: RecentSet<String>,
    pub networks: RecentSet<NetworkPrefix>,
    pub sessions: Vec<SessionState>,
    /// Last time of each sensitive change, by event type.
    pub sensitive_changes: BTreeMap<EventType, Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub password_reset_requested_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination: Option<DestinationRecord>,
    pub previous_destinations: Vec<DestinationRecord>,
    pub money: BTreeMap<Currency, Money>,
    pub labels: Vec<LabelRecord>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_notable_decision: Option<NotableDecision>,
    /// Counts of login traits, for the login-risk model.
    #[serde(default)]
    pub profile: BehaviourProfile,
    #[serde(default = "failed_login_window")]
    pub failed_logins_1h: FailedLoginWindow,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_login_location: Option<LoginLocation>,
    /// Set by a risky sensitive change or a fraud label; `None` when the
    /// account is not at risk.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub at_risk: Option<AtRisk>,
    /// Device ids with the platform they were enrolled with and where they
    /// were last seen.
    #[serde(default, skip_serializing_if = "KnownDevices::is_empty")]
    pub known_devices: KnownDevices,
    /// The account's own activity by hour of the day.
    #[serde(default, skip_serializing_if = "ActivityHours::is_empty")]
    pub activity_hours: ActivityHours,
}

/// The key a login's device is remembered by: its device id, else its user
/// agent (weaker, but better than nothing).
pub(crate) fn device_key(event: &Event) -> Option<&str> {
    event.device_id.as_deref().or(event.user_agent.as_deref())
}

impl AccountState {
    pub fn new(account_id: &str, at: i64) -> AccountState {
        AccountState {
            account_id: account_id.to_string(),
            first_seen: Timestamp(at),
            last_seen: Timestamp(at),
            event_counts: BTreeMap::new(),
            logins_succeeded: 0,
            logins_failed: 0,
            last_login_at: None,
            devices: RecentSet::default(),
            networks: RecentSet::default(),
            sessions: Vec::new(),
            sensitive_changes: BTreeMap::new(),
            password_reset_requested_at: None,
            destination: None,
            previous_destinations: Vec::new(),
            money: BTreeMap::new(),
            labels: Vec::new(),
            last_notable_decision: None,
            profile: BehaviourProfile::default(),
            failed_logins_1h: failed_login_window(),
            last_login_location: None,
            at_risk: None,
            known_devices: KnownDevices::default(),
            activity_hours: ActivityHours::default(),
        }
    }

    /// What is new about a login from this event's device and address.
    pub fn login_signals(&self, event: &Event) -> LoginSignals {
        LoginSignals {
            first_login: self.logins_succeeded == 0,
            new_device: device_key(event).is_some_and(|key| !self.devices.contains(key)),
            new_network: event
                .ip
                .is_some_and(|ip| !self.networks.contains(&NetworkPrefix::of(ip))),
        }
    }

    /// The session an event belongs to: its `session_id`, or without one the
    /// most recent session if it was active within [`IMPLICIT_SESSION_SECS`].
    pub fn session_for(&self, event: &Event) -> Option<&SessionState> {
        self.session_index(event).map(|i| &self.sessions[i])
    }

    fn session_index(&self, event: &Event) -> Option<usize> {
        match &event.session_id {
            Some(id) => self.sessions.iter().position(|s| &s.session_id == id),
            None => self
                .sessions
                .iter()
                .enumerate()
                .max_by_key(|(_, s)| s.last_seen)
                .filter(|(_, s)| event.unix_time() - s.last_seen.0 <= IMPLICIT_SESSION_SECS)
                .map(|(i, _)| i),
        }
    }

    /// Whether a destination is the current one or one used before.
    pub fn knows_destination(&self, destination: &Destination) -> bool {
        self.destination
            .iter()
            .chain(self.previous_destinations.iter())
            .any(|r| r.destination.same_account(destination))
    }

    /// Folds one event and its decision into the state; profile history
    /// older than `horizon_days` is forgotten. Of the decision, state reads
    /// its `action` and the `login_risk` it recorded (the `login.risk`
    /// feature), nothing else. `traits` are the event's login traits if the
    /// caller has them already (computed here otherwise).
    pub fn apply(
        &mut self,
        event: &Event,
        action: Action,
        login_risk: Option<f64>,
        traits: Option<&LoginTraits>,
        horizon_days: u32,
    ) -> AccountChange {
        let at = event.unix_time();
        let mut change = AccountChange::default();
        self.last_seen = Timestamp(self.last_seen.0.max(at));
        // Changes are dated no earlier than the account's newest event: an
        // event dated in the past cannot make a fresh change (or a fresh
        // destination, below) look old, and shorten a hold's cool-off.
        let changed_at = self.last_seen;
        *self.event_counts.entry(event.event_type).or_insert(0) += 1;
        if event.event_type.is_sensitive_change() {
            self.sensitive_changes.insert(event.event_type, changed_at);
        }
        if action != Action::Allow {
            self.last_notable_decision = Some(NotableDecision {
                event_id: event.event_id.clone(),
                event_type: event.event_type,
                action,
                at: Timestamp(at),
            });
        }

        self.activity_hours.record(event);
        if let Details::Login { status, .. } = &event.details {
            match status {
                LoginStatus::Success => {
                    self.known_devices.observe(event);
                    self.apply_successful_login(event, action, login_risk, at);
                    match traits {
                        Some(traits) => self.profile.record(traits, at, horizon_days),
                        None => self
                            .profile
                            .record(&LoginTraits::of(event), at, horizon_days),
                    }
                }
                LoginStatus::Failure => {
                    self.logins_failed += 1;
                    self.failed_logins_1h.add(at, 1);
                }
            }
            return change;
        }

        let session = self.touch_session(event, at);
        self.observe_client(event, session);
        let session_risky = session.is_some_and(|i| self.sessions[i].risky);
        if event.event_type.is_sensitive_change() && (session_risky || action >= Action::Review) {
            change.put_at_risk = self.mark_at_risk(event, at);
        }
        match &event.details {
            Details::PayoutDestinationChange { destination, .. } => {
                let record = DestinationRecord {
                    // State is snapshotted to the store unsealed; the holder
                    // name is descriptive only (no rule reads it) and stays,
                    // sealed, in the event that set the destination.
                    destination: Destination {
                        holder_name: None,
                        holder_token: None,
                        ..destination.clone()
                    },
                    set_at: changed_at,
                    set_by_event: event.event_id.clone(),
                    set_in_session: session.map(|i| self.sessions[i].session_id.clone()),
                    set_in_risky_session: session_risky,
                    set_session_risk: session.map_or(0.0, |i| self.sessions[i].risk),
                    set_during_burst: false,
                };
                if let Some(old) = self.destination.replace(record) {
                    self.previous_destinations
                        .retain(|r| !r.destination.same_account(&old.destination));
                    self.previous_destinations.insert(0, old);
                    self.previous_destinations
                        .truncate(MAX_PREVIOUS_DESTINATIONS);
                }
            }
            Details::Payout {
                amount,
                currency,
                source,
                ..
            } => {
                let money = self.money.entry(*currency).or_default();
                money.record_payout(*amount);
                if action >= Action::Hold {
                    money.withheld = money.withheld.saturating_add(*amount);
                } else if *source == PayoutSource::Sales {
                    money.paid_out = money.paid_out.saturating_add(*amount);
                }
            }
            Details::Loan {
                amount, currency, ..
            } if event.event_type == EventType::LoanDisbursement => {
                let money = self.money.entry(*currency).or_default();
                if action >= Action::Hold {
                    money.withheld = money.withheld.saturating_add(*amount);
                } else {
                    money.loans_disbursed = money.loans_disbursed.saturating_add(*amount);
                }
            }
            Details::Sale { amount, currency } => {
                let money = self.money.entry(*currency).or_default();
                money.sales = money.sales.saturating_add(*amount);
            }
            Details::Verification {
                status: VerificationStatus::Passed,
                ..
            } => {
                // A passed step-up proves the session's user is the owner:
                // clear the session, whatever it changed. It vouches for the
                // account only if it answers for the change that put the
                // account at risk (made in this session), or is sent without
                // a session (the owner confirmed by e-mail link, support
                // call...): an owner passing a step-up in their own session
                // says nothing about what an attacker did in another.
                let vouches = match (&self.at_risk, event.session_id.as_deref()) {
                    (Some(at_risk), Some(session_id)) => {
                        at_risk.session_id.as_deref() == Some(session_id)
                    }
                    _ => true,
                };
                if vouches {
                    change.cleared = self.clear_risk();
                }
                if let Some(i) = session {
                    let s = &mut self.sessions[i];
                    s.risky = false;
                    s.verified = true;
                    let cleared = s.session_id.clone();
                    if let Some(d) = self.destination.as_mut()
                        && d.set_in_session.as_deref() == Some(cleared.as_str())
                    {
                        d.set_in_risky_session = false;
                    }
                }
            }
            Details::Label {
                label,
                target_event_id,
                analyst,
            } => {
                self.labels.insert(
                    0,
                    LabelRecord {
                        label: *label,
                        at: Timestamp(at),
                        event_id: event.event_id.clone(),
                        target_event_id: target_event_id.clone(),
                        analyst: analyst.clone(),
                    },
                );
                self.labels.truncate(MAX_LABELS);
            }
            _ => {}
        }
        if event.event_type == EventType::PasswordResetRequest {
            self.password_reset_requested_at = Some(Timestamp(at));
        }
        change
    }

    /// Puts the account at risk because of this event; false if it already was.
    pub fn mark_at_risk(&mut self, event: &Event, at: i64) -> bool {
        if self.at_risk.is_some() {
            return false;
        }
        self.at_risk = Some(AtRisk {
            since: Timestamp(at),
            event_id: event.event_id.clone(),
            event_type: event.event_type,
            session_id: event.session_id.clone(),
        });
        true
    }

    /// Clears the account's risk; false if it was not at risk.
    pub fn clear_risk(&mut self) -> bool {
        self.at_risk.take().is_some()
    }

    fn apply_successful_login(
        &mut self,
        event: &Event,
        action: Action,
        login_risk: Option<f64>,
        at: i64,
    ) {
        let signals = self.login_signals(event);
        // Read from the stored decision, not recomputed: a rebuild must give
        // the session the risk it had when it was decided.
        let risk = login_risk.unwrap_or(0.0) as f32;
        // A login the rules stepped up (or worse) opens a risky session,
        // whatever rule did it.
        let stepped_up = action >= Action::Challenge;
        let network = &event.enrichment.network;
        if let (Some(latitude), Some(longitude)) = (network.latitude, network.longitude) {
            self.last_login_location = Some(LoginLocation {
                at: Timestamp(at),
                latitude: latitude as f32,
                longitude: longitude as f32,
            });
        }
        self.logins_succeeded += 1;
        self.last_login_at = Some(Timestamp(self.last_login_at.map_or(at, |t| t.0.max(at))));
        if let Some(key) = device_key(event) {
            self.devices.observe(key, at, str::to_string);
        }
        if let Some(ip) = event.ip {
            self.networks.observe(&NetworkPrefix::of(ip), at, |p| *p);
        }
        let session_id = event
            .session_id
            .clone()
            .unwrap_or_else(|| format!("implicit:{}", event.event_id));
        let session = SessionState {
            session_id,
            started_at: Timestamp(at),
            last_seen: Timestamp(at),
            login: Some(signals),
            risky: signals.risky() || stepped_up,
            verified: false,
            risk,
            client: SessionClient {
                last_place: Place::of(event),
                device: event.device_id.as_deref().map_or(0, device_hash),
                platform: Platform::of(event),
                acts: 0,
                theft_suspected: false,
            },
        };
        match self
            .sessions
            .iter_mut()
            .find(|s| s.session_id == session.session_id)
        {
            Some(existing) => *existing = session,
            None => self.push_session(session),
        }
    }

    /// Marks the event's session active, opening one for an unseen
    /// `session_id`; returns its index.
    fn touch_session(&mut self, event: &Event, at: i64) -> Option<usize> {
        if let Some(i) = self.session_index(event) {
            let s = &mut self.sessions[i];
            s.last_seen = Timestamp(s.last_seen.0.max(at));
            return Some(i);
        }
        let id = event.session_id.as_ref()?;
        self.push_session(SessionState {
            session_id: id.clone(),
            started_at: Timestamp(at),
            last_seen: Timestamp(at),
            login: None,
            risky: false,
            verified: false,
            risk: 0.0,
            client: SessionClient::default(),
        });
        self.sessions.iter().position(|s| &s.session_id == id)
    }

    fn push_session(&mut self, session: SessionState) {
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(i, _)| i)
        {
            self.sessions.swap_remove(oldest);
        }
        self.sessions.push(session);
    }
}

/// Session theft: what the sessions and devices were seen from, and the
/// session made risky when a theft signal fired (`sightings.rs`).
impl AccountState {
    /// Folds a non-login event's client into its session and device: where
    /// they were seen, the seller's acts, and a passed verification that
    /// re-enrols the session's device with the session's platform.
    fn observe_client(&mut self, event: &Event, session: Option<usize>) {
        if !matches!(
            event.event_type,
            EventType::Label | EventType::AnalystAction
        ) {
            self.known_devices.observe(event);
        }
        let Some(i) = session else {
            return;
        };
        let client = &mut self.sessions[i].client;
        if let Some(place) = Place::of(event) {
            client.last_place = Some(place);
        }
        if counts_as_act(event.event_type) {
            client.acts = client.acts.saturating_add(1);
        }
        if let Details::Verification {
            status: VerificationStatus::Passed,
            ..
        } = &event.details
            && client.device != 0
        {
            let device = client.device;
            let platform = client.platform;
            self.known_devices.re_enrol(device, platform);
        }
    }

    /// Makes the event's session risky because a session-theft feature
    /// fired for it, as the stored decision recorded. The engine calls it
    /// before [`AccountState::apply`] for other events, so that a change
    /// made in the event itself counts as made in a risky session, and
    /// after it for logins, which open their session there. An unseen
    /// `session_id` is opened here, as `apply` would have.
    pub fn mark_session_theft(&mut self, event: &Event) {
        let at = event.unix_time();
        let session = match event.event_type {
            EventType::Login => self.session_index(event),
            _ => self.touch_session(event, at),
        };
        if let Some(i) = session {
            let s = &mut self.sessions[i];
            s.risky = true;
            s.client.theft_suspected = true;
        }
    }
}

/// Whether an event is the seller acting in a session (for "went straight
/// to payout settings"): a platform's step-up or a sale is not.
fn counts_as_act(event_type: EventType) -> bool {
    !matches!(
        event_type,
        EventType::Login
            | EventType::Logout
            | EventType::Verification
            | EventType::Sale
            | EventType::Label
            | EventType::AnalystAction
    )
}
