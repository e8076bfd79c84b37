//! Per-account state, bounded in size.
//!
//! State changes only through [`AccountState::apply`], a pure function of the
//! previous state, the event and the decision taken for it. Replaying the
//! stored log (events with their stored decisions) in order therefore rebuilds
//! exactly the state the server had, whatever policy is configured now.
//!
//! Every collection here has a fixed capacity and forgets the least recently
//! seen entry first, so one noisy account cannot grow without bound.

use serde::{Deserialize, Serialize};

use crate::event::*;
use crate::profile::{BehaviourProfile, LoginTraits, TraitKind};
use crate::sightings::{ActivityHours, KnownDevices, Place, Platform, SessionPace, device_hash};
use crate::types::Action;
pub use crate::types::{NetworkPrefix, Timestamp};
use crate::vec_map::VecMap;
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
/// A contact or factor changed this recently (or during the risk episode,
/// or this long before it began) cannot vouch for the account: the
/// lock-out window of "lock-out, then cash-out". An attacker who moved the
/// phone to himself waits out a cool-off of days; a month outlasts the
/// patience that pays.
pub const LOCKOUT_WINDOW_SECS: i64 = 30 * 86_400;
/// Evidence items a risk episode keeps (the oldest after the first are
/// dropped: the first says how it began).
pub const MAX_EPISODE_EVIDENCE: usize = 16;

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
        // Bounded and small: grown one entry at a time, as doubling would
        // leave a quarter of it unused on average, in every account.
        self.entries.reserve_exact(1);
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
    /// What a login answered `challenge` or stronger would have taught the
    /// account (its device, network, traits, location): learnt only when
    /// the session passes a verification that may vouch, so an attacker's
    /// challenged session does not make his next one look familiar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlearnt: Option<Box<UnlearntLogin>>,
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

/// The traits of a challenged login, kept on its session until a vouching
/// verification lets the account learn them. Bounded: one per session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnlearntLogin {
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkPrefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LoginLocation>,
    /// The login's trait keys by [`TraitKind`] slot.
    #[serde(default)]
    pub traits: Vec<Option<u64>>,
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

/// An account's failed logins over the last hour: no window at all until
/// the first failure, as most accounts never fail one (a window is 112
/// bytes). Written as the window, an empty one when there is none, so the
/// snapshot reads the same either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedLogins(Option<Box<FailedLoginWindow>>);

impl FailedLogins {
    pub fn add(&mut self, at: i64, count: u64) {
        self.0
            .get_or_insert_with(|| Box::new(failed_login_window()))
            .add(at, count);
    }

    pub fn total(&self, at: i64) -> u64 {
        self.0.as_ref().map_or(0, |window| window.total(at))
    }
}

impl Serialize for FailedLogins {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(window) => window.serialize(serializer),
            None => failed_login_window().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for FailedLogins {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let window = FailedLoginWindow::deserialize(deserializer)?;
        Ok(if window == failed_login_window() {
            FailedLogins(None)
        } else {
            FailedLogins(Some(Box::new(window)))
        })
    }
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
    /// It replaced an earlier destination of the account (the state's, or
    /// the change's `previous_destination`): not the account's first.
    #[serde(default)]
    pub replaced_another: bool,
    /// When a payout or loan disbursement into it was first paid (allowed,
    /// or its hold released); `None` while nothing was ever paid into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_paid_at: Option<Timestamp>,
    /// The owner confirmed it through a channel a takeover cannot pass
    /// ([`VerificationChannel::beyond_takeover`]): a verification passed
    /// in the session that set it, or an out-of-band confirmation of the
    /// account since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner_confirmed: bool,
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

/// The account's risk episode: opened by a sensitive change made in a
/// risky session (or flagged by the rules), a failed verification or a
/// fraud label, with the evidence gathered since. It stays open, whatever
/// sessions come after, until a verification that may vouch (through a
/// channel relying on no contact or factor changed in the episode or the
/// lock-out window before it), a `legit` label or an analyst ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtRisk {
    pub since: Timestamp,
    pub event_id: String,
    pub event_type: EventType,
    /// The session of the change that put the account at risk: a passed
    /// verification in that session (or in none) clears the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// What happened in the episode, oldest first; the first item is what
    /// opened it. At most [`MAX_EPISODE_EVIDENCE`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Contacts and factors changed in the episode or in the lock-out
    /// window before it: they cannot vouch for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<Credential>,
}

/// One piece of evidence in a risk episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: EvidenceKind,
    pub at: Timestamp,
    pub event_id: String,
}

/// The kinds of [`Evidence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A password or payout-destination change in a risky session (or
    /// flagged by the rules), or any sensitive change during the episode.
    SensitiveChange,
    /// An e-mail, phone or MFA change.
    CredentialChange,
    /// A password reset requested, or a reset password set, from a session
    /// not verified.
    PasswordResetUnverified,
    /// A new payout destination set during the episode.
    NewDestination,
    /// A verification failed in a session.
    FailedVerification,
    /// A verification failed without a session: the owner, asked out of
    /// band, said no (or did not pass).
    OwnerDenied,
    /// A verification passed through a channel that may not vouch.
    RefusedVerification,
    /// A `fraud` or `compromise_reported` label.
    FraudLabel,
}

/// When a contact or factor was last changed, by which event, and in what
/// risk: what decides whether a verification through it may vouch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialChange {
    pub at: Timestamp,
    pub event_id: String,
    pub event_type: EventType,
    /// Made in a session that was risky at the time.
    #[serde(default)]
    pub in_risky_session: bool,
    /// Made while a risk episode was open (or it opened one).
    #[serde(default)]
    pub in_episode: bool,
}

/// The contact or factor an event changes, if any. Every `mfa_change`
/// counts (disabled, a new method, a factor enabled in place of one):
/// whoever made it holds the factor now.
pub fn credential_changed_by(event: &Event) -> Option<Credential> {
    match event.event_type {
        EventType::EmailChange => Some(Credential::Email),
        EventType::PhoneChange => Some(Credential::Phone),
        EventType::MfaChange => Some(Credential::Mfa),
        _ => None,
    }
}

/// The evidence an event gives when it opens or extends an episode.
fn evidence_kind(event: &Event) -> EvidenceKind {
    match &event.details {
        Details::Label { .. } => EvidenceKind::FraudLabel,
        Details::Verification { .. } if event.session_id.is_none() => EvidenceKind::OwnerDenied,
        Details::Verification { .. } => EvidenceKind::FailedVerification,
        Details::PayoutDestinationChange { .. } => EvidenceKind::NewDestination,
        _ if credential_changed_by(event).is_some() => EvidenceKind::CredentialChange,
        _ => EvidenceKind::SensitiveChange,
    }
}

/// What [`AccountState::apply`] changed that others must hear about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// The account was not at risk and now is.
    pub put_at_risk: bool,
    /// The account was at risk and was cleared.
    pub cleared: bool,
    /// A verification sent without a session passed through a channel that
    /// may vouch: the owner, asked out of band, confirmed the account.
    pub owner_confirmed: bool,
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
    /// The largest payout paid (allowed), in minor units.
    #[serde(default)]
    pub largest_paid: u64,
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
    pub event_counts: VecMap<EventType, u64>,
    pub logins_succeeded: u64,
    pub logins_failed: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_login_at: Option<Timestamp>,
    /// Device ids, or user agents for logins that sent no device id.
    pub devices: RecentSet<String>,
    pub networks: RecentSet<NetworkPrefix>,
    pub sessions: Vec<SessionState>,
    /// Last time of each sensitive change, by event type.
    pub sensitive_changes: VecMap<EventType, Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub password_reset_requested_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination: Option<DestinationRecord>,
    pub previous_destinations: Vec<DestinationRecord>,
    pub money: VecMap<Currency, Money>,
    pub labels: Vec<LabelRecord>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_notable_decision: Option<NotableDecision>,
    /// Counts of login traits, for the login-risk model.
    #[serde(default)]
    pub profile: BehaviourProfile,
    #[serde(default)]
    pub failed_logins_1h: FailedLogins,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_login_location: Option<LoginLocation>,
    /// Set by a risky sensitive change or a fraud label; `None` when the
    /// account is not at risk.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub at_risk: Option<Box<AtRisk>>,
    /// Device ids with the platform they were enrolled with and where they
    /// were last seen.
    #[serde(default, skip_serializing_if = "KnownDevices::is_empty")]
    pub known_devices: KnownDevices,
    /// The account's own activity by hour of the day.
    #[serde(default, skip_serializing_if = "ActivityHours::is_empty")]
    pub activity_hours: ActivityHours,
    /// How fast the account usually acts once logged in.
    #[serde(default, skip_serializing_if = "SessionPace::is_empty")]
    pub session_pace: SessionPace,
    /// The last change of each contact and factor (at most three entries).
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub credentials: VecMap<Credential, CredentialChange>,
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
            event_counts: VecMap::default(),
            logins_succeeded: 0,
            logins_failed: 0,
            last_login_at: None,
            devices: RecentSet::default(),
            networks: RecentSet::default(),
            sessions: Vec::new(),
            sensitive_changes: VecMap::default(),
            password_reset_requested_at: None,
            destination: None,
            previous_destinations: Vec::new(),
            money: VecMap::default(),
            labels: Vec::new(),
            last_notable_decision: None,
            profile: BehaviourProfile::default(),
            failed_logins_1h: FailedLogins::default(),
            last_login_location: None,
            at_risk: None,
            known_devices: KnownDevices::default(),
            activity_hours: ActivityHours::default(),
            session_pace: SessionPace::default(),
            credentials: VecMap::default(),
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
        *self.event_counts.entry_or_default(event.event_type) += 1;
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
                    let computed;
                    let traits = match traits {
                        Some(traits) => traits,
                        None => {
                            computed = LoginTraits::of(event);
                            &computed
                        }
                    };
                    self.apply_successful_login(event, action, login_risk, traits, horizon_days);
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
        let session_verified = session.is_some_and(|i| self.sessions[i].verified);
        if event.event_type.is_sensitive_change() {
            if session_risky || action >= Action::Review {
                change.put_at_risk = self.mark_at_risk(event, at);
            } else {
                // Already in an episode, any sensitive change is evidence.
                self.add_evidence(evidence_kind(event), event, at);
            }
        }
        if let Some(credential) = credential_changed_by(event) {
            let in_episode = self.at_risk.is_some();
            if let Some(episode) = self.at_risk.as_mut()
                && !episode.credentials.contains(&credential)
            {
                episode.credentials.push(credential);
            }
            self.credentials.insert(
                credential,
                CredentialChange {
                    at: changed_at,
                    event_id: event.event_id.clone(),
                    event_type: event.event_type,
                    in_risky_session: session_risky,
                    in_episode,
                },
            );
        }
        let reset_unverified = match &event.details {
            Details::PasswordChange {
                reason: Some(PasswordChangeReason::Reset),
            } => !session_verified,
            _ => event.event_type == EventType::PasswordResetRequest && !session_verified,
        };
        if reset_unverified {
            self.add_evidence(EvidenceKind::PasswordResetUnverified, event, at);
        }
        match &event.details {
            Details::PayoutDestinationChange {
                destination,
                previous_destination,
            } => {
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
                    replaced_another: self.destination.is_some() || previous_destination.is_some(),
                    first_paid_at: self
                        .destination
                        .iter()
                        .chain(self.previous_destinations.iter())
                        .find(|r| r.destination.same_account(destination))
                        .and_then(|r| r.first_paid_at),
                    owner_confirmed: false,
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
                let money = self.money.entry_or_default(*currency);
                money.record_payout(*amount);
                if action >= Action::Hold {
                    money.withheld = money.withheld.saturating_add(*amount);
                } else {
                    money.largest_paid = money.largest_paid.max(*amount);
                    if *source == PayoutSource::Sales {
                        money.paid_out = money.paid_out.saturating_add(*amount);
                    }
                    self.mark_paid(event, Timestamp(at));
                }
            }
            Details::Loan {
                amount, currency, ..
            } if event.event_type == EventType::LoanDisbursement => {
                let money = self.money.entry_or_default(*currency);
                if action >= Action::Hold {
                    money.withheld = money.withheld.saturating_add(*amount);
                } else {
                    money.loans_disbursed = money.loans_disbursed.saturating_add(*amount);
                    self.mark_paid(event, Timestamp(at));
                }
            }
            Details::Sale { amount, currency } => {
                let money = self.money.entry_or_default(*currency);
                money.sales = money.sales.saturating_add(*amount);
            }
            Details::Verification {
                status: VerificationStatus::Passed,
                channel,
                ..
            } => {
                if !self.may_vouch(*channel, at) {
                    // Through a contact or factor changed in the episode or
                    // the lock-out window: whoever changed it passes it.
                    self.add_evidence(EvidenceKind::RefusedVerification, event, at);
                    return change;
                }
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
                change.owner_confirmed = event.session_id.is_none();
                // Only a channel the attacker holding the session cannot
                // relay confirms a destination for its first payout.
                let beyond_takeover = channel.is_some_and(|c| c.beyond_takeover());
                if change.owner_confirmed
                    && let Some(d) = self.destination.as_mut()
                {
                    // The owner confirmed the account as it stands, its
                    // destination included: a risky session that set it no
                    // longer holds the next payout (one confirmation, not
                    // one per payout for a week).
                    d.set_in_risky_session = false;
                    d.owner_confirmed |= beyond_takeover;
                }
                if let Some(i) = session {
                    let s = &mut self.sessions[i];
                    s.risky = false;
                    s.verified = true;
                    let unlearnt = s.unlearnt.take();
                    let cleared = s.session_id.clone();
                    if let Some(d) = self.destination.as_mut()
                        && d.set_in_session.as_deref() == Some(cleared.as_str())
                    {
                        // The step-up the change asked for: the owner
                        // confirmed the destination as they set it.
                        d.set_in_risky_session = false;
                        d.owner_confirmed |= beyond_takeover;
                    }
                    if let Some(login) = unlearnt {
                        self.learn_login(&login, horizon_days);
                    }
                }
            }
            Details::Verification {
                status: VerificationStatus::Failed,
                ..
            } => {
                change.put_at_risk = self.mark_at_risk(event, at);
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

    /// Puts the account at risk because of this event, or adds the event
    /// to the open episode's evidence; true if it opened the episode.
    pub fn mark_at_risk(&mut self, event: &Event, at: i64) -> bool {
        if self.at_risk.is_some() {
            self.add_evidence(evidence_kind(event), event, at);
            return false;
        }
        // Contacts and factors changed in the lock-out window before the
        // episode, or by this event, are the attacker's as likely as not.
        let credentials = self
            .credentials
            .iter()
            .filter(|(_, c)| c.at.0 >= at - LOCKOUT_WINDOW_SECS)
            .map(|(k, _)| *k)
            .chain(credential_changed_by(event))
            .fold(Vec::new(), |mut all, c| {
                if !all.contains(&c) {
                    all.push(c);
                }
                all
            });
        self.at_risk = Some(Box::new(AtRisk {
            since: Timestamp(at),
            event_id: event.event_id.clone(),
            event_type: event.event_type,
            session_id: event.session_id.clone(),
            evidence: vec![Evidence {
                kind: evidence_kind(event),
                at: Timestamp(at),
                event_id: event.event_id.clone(),
            }],
            credentials,
        }));
        true
    }

    /// Adds evidence to the open episode, if there is one.
    fn add_evidence(&mut self, kind: EvidenceKind, event: &Event, at: i64) {
        let Some(episode) = self.at_risk.as_mut() else {
            return;
        };
        if episode.evidence.len() >= MAX_EPISODE_EVIDENCE {
            // Keep the first item: it says how the episode began.
            episode.evidence.remove(1);
        }
        episode.evidence.push(Evidence {
            kind,
            at: Timestamp(at),
            event_id: event.event_id.clone(),
        });
    }

    /// Contacts and factors that cannot vouch for the account at `at`:
    /// changed in the lock-out window before now, or in the open episode
    /// or the lock-out window before it began.
    pub fn untrusted_credentials(&self, at: i64) -> Vec<Credential> {
        let episode_since = self.at_risk.as_ref().map_or(at, |e| e.since.0.min(at));
        let since = episode_since.saturating_sub(LOCKOUT_WINDOW_SECS);
        let mut untrusted: Vec<Credential> = self
            .credentials
            .iter()
            .filter(|(_, c)| c.at.0 >= since)
            .map(|(k, _)| *k)
            .collect();
        if let Some(episode) = &self.at_risk {
            for c in &episode.credentials {
                if !untrusted.contains(c) {
                    untrusted.push(*c);
                }
            }
        }
        untrusted.sort();
        untrusted
    }

    /// Whether a verification through `channel` may vouch for the account
    /// at `at`. A channel relying on an untrusted contact or factor may
    /// not; one of unknown provenance (none sent, or `other`) may only
    /// while no contact or factor is untrusted.
    pub fn may_vouch(&self, channel: Option<VerificationChannel>, at: i64) -> bool {
        let untrusted = self.untrusted_credentials(at);
        match channel.filter(|c| *c != VerificationChannel::Other) {
            Some(channel) => channel.relies_on().is_none_or(|c| !untrusted.contains(&c)),
            None => untrusted.is_empty(),
        }
    }

    /// Records that money was paid into the destination the event pays
    /// into (its named one if registered, else the current one).
    fn mark_paid(&mut self, event: &Event, at: Timestamp) {
        let named = match &event.details {
            Details::Payout {
                destination: Some(d),
                ..
            } => Some(d),
            _ => None,
        };
        let record = match named {
            Some(d) => self
                .destination
                .iter_mut()
                .chain(self.previous_destinations.iter_mut())
                .find(|r| r.destination.same_account(d)),
            None => self.destination.as_mut(),
        };
        if let Some(record) = record
            && record.first_paid_at.is_none()
        {
            record.first_paid_at = Some(at);
        }
    }

    /// Records that a held payout into this destination (by institution
    /// and token) was released: it counts as paid.
    pub fn mark_destination_paid(&mut self, institution_id: &str, token: &str, at: Timestamp) {
        if let Some(record) = self
            .destination
            .iter_mut()
            .chain(self.previous_destinations.iter_mut())
            .find(|r| {
                r.destination.institution_id == institution_id
                    && r.destination.account_token == token
            })
            && record.first_paid_at.is_none()
        {
            record.first_paid_at = Some(at);
        }
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
        traits: &LoginTraits,
        horizon_days: u32,
    ) {
        let signals = self.login_signals(event);
        // Read from the stored decision, not recomputed: a rebuild must give
        // the session the risk it had when it was decided.
        let risk = login_risk.unwrap_or(0.0) as f32;
        // A login the rules stepped up (or worse) opens a risky session,
        // whatever rule did it.
        let stepped_up = action >= Action::Challenge;
        let at = event.unix_time();
        let network = &event.enrichment.network;
        let location = match (network.latitude, network.longitude) {
            (Some(latitude), Some(longitude)) => Some(LoginLocation {
                at: Timestamp(at),
                latitude: latitude as f32,
                longitude: longitude as f32,
            }),
            _ => None,
        };
        self.logins_succeeded += 1;
        self.last_login_at = Some(Timestamp(self.last_login_at.map_or(at, |t| t.0.max(at))));
        let login = UnlearntLogin {
            at: Timestamp(at),
            device: device_key(event).map(str::to_string),
            network: event.ip.map(NetworkPrefix::of),
            location,
            traits: TraitKind::ALL.iter().map(|k| traits.get(*k)).collect(),
        };
        // A login answered `challenge` or stronger teaches nothing until
        // its session passes a verification that may vouch; a blocked one
        // never does (its session is never verified).
        let unlearnt = if stepped_up {
            (action < Action::Block).then(|| Box::new(login))
        } else {
            self.learn_login(&login, horizon_days);
            None
        };
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
            unlearnt,
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

    /// Lets the account learn a login: its device and network become known,
    /// its traits enter the behavioural profile, its place the last login
    /// location.
    fn learn_login(&mut self, login: &UnlearntLogin, horizon_days: u32) {
        let at = login.at.0;
        if let Some(location) = login.location
            && self.last_login_location.is_none_or(|l| l.at.0 <= at)
        {
            self.last_login_location = Some(location);
        }
        if let Some(key) = &login.device {
            self.devices.observe(key.as_str(), at, str::to_string);
        }
        if let Some(network) = &login.network {
            self.networks.observe(network, at, |p| *p);
        }
        let pairs: Vec<(TraitKind, u64)> = TraitKind::ALL
            .iter()
            .zip(login.traits.iter())
            .filter_map(|(kind, key)| key.map(|k| (*kind, k)))
            .collect();
        self.profile
            .record(&LoginTraits::with(&pairs), at, horizon_days);
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
            unlearnt: None,
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
        // Grown one at a time, as the sets of `RecentSet::observe` are.
        self.sessions.reserve_exact(1);
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
        let session = &mut self.sessions[i];
        let client = &mut session.client;
        if let Some(place) = Place::of(event) {
            client.last_place = Some(place);
        }
        if counts_as_act(event.event_type) {
            client.acts = client.acts.saturating_add(1);
            // Only the owner's own pace is learnt: not a risky session's.
            if session.login.is_some() && !session.risky {
                let since_login = event.unix_time() - session.started_at.0;
                self.session_pace
                    .record(SessionPace::rate(client.acts, since_login));
            }
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
pub(crate) fn counts_as_act(event_type: EventType) -> bool {
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
