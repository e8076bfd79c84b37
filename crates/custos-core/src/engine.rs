//! The engine: all account state, and the one entry point that turns an
//! event into a decision.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use serde::{Deserialize, Serialize};

use crate::account_table::AccountTable;
use crate::campaigns::{CampaignConfig, CampaignDetector, CampaignSnapshot};
use crate::cases::CaseBook;
use crate::clock::EngineClock;
use crate::decision::{Decision, VerificationRequest};
use crate::destinations::{DestinationIndex, DestinationUse, SetBy, holder_own};
use crate::event::{Credential, Details, Event, EventType, LoginStatus};
use crate::features::{self, Context, FeatureConfig, FeatureSet};
use crate::holds::{HoldBook, HoldSnapshot};
use crate::identifiers::{IdentifierIndex, IdentifierSnapshot};
use crate::population::Population;
use crate::profile::{LoginTraits, TraitKind, stable_hash};
use crate::rules::{EvalContext, RuleSet};
use crate::state::{AccountState, FailedLoginWindow, failed_login_window};
use crate::types::Action;

/// Version of the snapshot layout; a snapshot of another version is ignored
/// and state is rebuilt from the log instead, except formats 4 and 5, which
/// are read (format 5 replaced format 4's clock, the newest event time,
/// with an [`EngineClock`] rebuilt from each account's newest event time;
/// format 6 put each account on a line of its own, see [`Engine::snapshot_to`]).
pub const SNAPSHOT_FORMAT: u32 = 6;

/// The last format written as one JSON document.
const SNAPSHOT_FORMAT_ONE_DOCUMENT: u32 = 5;

/// Addresses whose failed logins are tracked across accounts, at most.
/// When full, addresses with no failure in the last hour are dropped.
pub const MAX_TRACKED_FAILING_IPS: usize = 100_000;

/// In-memory state of every account plus the rule set that decides.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) rules: Arc<RuleSet>,
    features: FeatureConfig,
    /// Shared copy-on-write with the snapshot in flight (see
    /// [`crate::account_table`]).
    pub(crate) accounts: AccountTable,
    population: Population,
    /// Failed logins per address (keyed like profile IPs) across accounts.
    ip_failures: HashMap<u64, FailedLoginWindow, RandomState>,
    /// Which accounts set each payout destination, and the deny list.
    pub(crate) destinations: DestinationIndex,
    /// Payouts held, open and closed.
    pub(crate) holds: HoldBook,
    /// Links between accounts, bursts toward institutions, campaigns.
    pub(crate) campaigns: CampaignDetector,
    /// Which accounts presented each device id and session id.
    pub(crate) identifiers: IdentifierIndex,
    /// The time holds expire against: the newest event time, as far as a
    /// second account vouches for it (see [`crate::clock`]).
    pub(crate) clock: EngineClock,
    /// Incidents and the people's work on them (`crate::cases`).
    pub(crate) cases: CaseBook,
}

/// The snapshot layout; `C` is the clock's form: an [`EngineClock`] from
/// format 5, the newest event time (`i64`) in format 4.
#[derive(Deserialize)]
struct Snapshot<C> {
    format: u32,
    accounts: AccountMap,
    population: Population,
    ip_failures: Vec<(u64, FailedLoginWindow)>,
    destinations: Vec<(u64, DestinationUse)>,
    holds: HoldSnapshot,
    campaigns: CampaignSnapshot,
    clock: C,
    /// Absent from snapshots written before the index existed: it then
    /// starts empty and fills from new events.
    #[serde(default)]
    identifiers: IdentifierSnapshot,
    /// Absent from snapshots written before cases existed.
    #[serde(default)]
    cases: CaseBook,
}

/// The accounts of a snapshot, read straight into the map the engine keeps
/// them in: a list first would hold every account's inline part twice
/// while the map is built from it.
#[derive(Default)]
struct AccountMap(AccountTable);

impl<'de> Deserialize<'de> for AccountMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AccountMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of accounts")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AccountMap, A::Error> {
                let mut map = AccountTable::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(account) = seq.next_element::<AccountState>()? {
                    map.insert(account);
                }
                Ok(AccountMap(map))
            }
        }
        deserializer.deserialize_seq(Visit)
    }
}

/// [`Snapshot`] as format 5 wrote it, one JSON document: kept for the
/// tests that check older snapshots are still read.
#[cfg(test)]
#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: u32,
    accounts: Vec<&'a AccountState>,
    population: &'a Population,
    ip_failures: Vec<(u64, &'a FailedLoginWindow)>,
    destinations: Vec<(u64, DestinationUse)>,
    holds: HoldSnapshot,
    campaigns: CampaignSnapshot,
    clock: &'a EngineClock,
    identifiers: IdentifierSnapshot,
    cases: &'a CaseBook,
}

/// The first line of a format 6 snapshot: everything but the accounts, and
/// how many account lines follow.
#[derive(Deserialize)]
struct SnapshotHead {
    format: u32,
    account_lines: u64,
    population: Population,
    ip_failures: Vec<(u64, FailedLoginWindow)>,
    destinations: Vec<(u64, DestinationUse)>,
    holds: HoldSnapshot,
    campaigns: CampaignSnapshot,
    clock: EngineClock,
    identifiers: IdentifierSnapshot,
    cases: CaseBook,
}

/// [`SnapshotHead`] as written, borrowed where the state can be.
#[derive(Serialize)]
struct SnapshotHeadOut<'a> {
    format: u32,
    account_lines: u64,
    population: &'a Population,
    ip_failures: Vec<(u64, &'a FailedLoginWindow)>,
    destinations: Vec<(u64, DestinationUse)>,
    holds: HoldSnapshot,
    campaigns: CampaignSnapshot,
    clock: &'a EngineClock,
    identifiers: IdentifierSnapshot,
    cases: &'a CaseBook,
}

/// The clock of a snapshot read from a stream, whose format is only known
/// once it is parsed: an [`EngineClock`] from format 5, a number before.
#[derive(Deserialize)]
#[serde(untagged)]
enum AnyClock {
    Clock(EngineClock),
    NewestTime(i64),
}

/// The format of a snapshot that starts `{"format":N`, as written; `None`
/// when the prefix has another shape (the parse then decides).
fn leading_format(prefix: &[u8]) -> Option<u32> {
    let rest = prefix.strip_prefix(b"{\"format\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits == rest.len() {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// A format 4 snapshot as format 5: its clock may have been pushed by one
/// far-future event, so it is rebuilt as a replay of the log would have.
fn migrate_newest_time_clock(old: Snapshot<i64>) -> Snapshot<EngineClock> {
    // In account order, as the list was written, so the rebuilt clock does
    // not depend on the map's order.
    let mut accounts: Vec<&AccountState> = old.accounts.0.values().collect();
    accounts.sort_unstable_by(|a, b| a.account_id.cmp(&b.account_id));
    let clock = EngineClock::from_newest_times(
        accounts
            .into_iter()
            .map(|a| (a.account_id.as_str(), a.last_seen.0)),
    );
    Snapshot {
        format: SNAPSHOT_FORMAT,
        accounts: old.accounts,
        population: old.population,
        ip_failures: old.ip_failures,
        destinations: old.destinations,
        holds: old.holds,
        campaigns: old.campaigns,
        clock,
        identifiers: old.identifiers,
        cases: old.cases,
    }
}

/// The last format whose clock was the newest event time seen.
const SNAPSHOT_FORMAT_NEWEST_TIME_CLOCK: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is format {found}, this build reads format {SNAPSHOT_FORMAT}")]
    Format { found: u32 },
    #[error("snapshot is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("snapshot is not valid: {0}")]
    Campaigns(#[from] crate::campaigns::CampaignError),
    #[error("snapshot is not valid: {0}")]
    Layout(String),
}

/// Calls `each` with every line of `input` (without its newline). A line
/// that lies whole in the reader's buffer is handed over where it lies;
/// only one cut by the buffer's edge is copied first, so the bytes of the
/// accounts are not copied a second time on their way to the parser.
fn for_each_line(
    input: &mut impl std::io::BufRead,
    mut each: impl FnMut(&[u8]) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let mut cut: Vec<u8> = Vec::new();
    loop {
        let buffer = input.fill_buf().map_err(serde_json::Error::io)?;
        if buffer.is_empty() {
            // A last line without its newline: the parser decides whether
            // it is whole.
            return if cut.is_empty() { Ok(()) } else { each(&cut) };
        }
        let mut used = 0;
        while let Some(end) = buffer[used..].iter().position(|b| *b == b'\n') {
            let line = &buffer[used..used + end];
            if cut.is_empty() {
                each(line)?;
            } else {
                cut.extend_from_slice(line);
                each(&cut)?;
                cut.clear();
            }
            used += end + 1;
        }
        cut.extend_from_slice(&buffer[used..]);
        let read = buffer.len();
        input.consume(read);
    }
}

/// Reads a snapshot of the current layout (see [`Engine::snapshot_to`]).
fn read_lines(input: &mut impl std::io::BufRead) -> Result<Snapshot<EngineClock>, SnapshotError> {
    let mut head: Option<SnapshotHead> = None;
    let mut accounts = AccountTable::default();
    let mut read = 0u64;
    for_each_line(input, |line| {
        let Some(head) = &head else {
            let first: SnapshotHead = serde_json::from_slice(line)?;
            // The count only sizes the map; a damaged one must not
            // allocate the machine's memory before the lines say otherwise.
            accounts = AccountTable::with_capacity(
                usize::try_from(first.account_lines)
                    .unwrap_or(usize::MAX)
                    .min(1 << 20),
            );
            head = Some(first);
            return Ok(());
        };
        if read == head.account_lines {
            return Err(SnapshotError::Layout(format!(
                "more than the {} account lines its head announces",
                head.account_lines
            )));
        }
        let account: AccountState = serde_json::from_slice(line)?;
        accounts.insert(account);
        read += 1;
        Ok(())
    })?;
    let head = head.ok_or_else(|| SnapshotError::Layout("the snapshot is empty".into()))?;
    if read != head.account_lines {
        return Err(SnapshotError::Layout(format!(
            "{read} account lines of the {} its head announces: the snapshot is cut short",
            head.account_lines
        )));
    }
    Ok(Snapshot {
        format: head.format,
        accounts: AccountMap(accounts),
        population: head.population,
        ip_failures: head.ip_failures,
        destinations: head.destinations,
        holds: head.holds,
        campaigns: head.campaigns,
        clock: head.clock,
        identifiers: head.identifiers,
        cases: head.cases,
    })
}

/// Reads a one-document snapshot (formats 4 and 5) from a stream.
fn read_one_document(
    input: &mut impl std::io::BufRead,
) -> Result<Snapshot<EngineClock>, SnapshotError> {
    let mut de = serde_json::Deserializer::from_reader(input);
    let snapshot = Snapshot::<AnyClock>::deserialize(&mut de)?;
    de.end()?;
    match (snapshot.format, snapshot.clock) {
        (SNAPSHOT_FORMAT_ONE_DOCUMENT, AnyClock::Clock(clock)) => Ok(Snapshot {
            format: SNAPSHOT_FORMAT,
            accounts: snapshot.accounts,
            population: snapshot.population,
            ip_failures: snapshot.ip_failures,
            destinations: snapshot.destinations,
            holds: snapshot.holds,
            campaigns: snapshot.campaigns,
            clock,
            identifiers: snapshot.identifiers,
            cases: snapshot.cases,
        }),
        (SNAPSHOT_FORMAT_NEWEST_TIME_CLOCK, AnyClock::NewestTime(newest)) => {
            Ok(migrate_newest_time_clock(Snapshot {
                format: SNAPSHOT_FORMAT_NEWEST_TIME_CLOCK,
                accounts: snapshot.accounts,
                population: snapshot.population,
                ip_failures: snapshot.ip_failures,
                destinations: snapshot.destinations,
                holds: snapshot.holds,
                campaigns: snapshot.campaigns,
                clock: newest,
                identifiers: snapshot.identifiers,
                cases: snapshot.cases,
            }))
        }
        (found, _) => Err(SnapshotError::Format { found }),
    }
}

impl Default for Engine {
    /// An engine with the built-in default rules.
    fn default() -> Self {
        Engine::new(Arc::new(crate::rules::default_rule_set()))
    }
}

/// The traits of a login event (successful or not); `None` for others.
fn login_traits(event: &Event) -> Option<LoginTraits> {
    matches!(event.details, Details::Login { .. }).then(|| LoginTraits::of(event))
}

fn ip_key(event: &Event) -> Option<u64> {
    event.ip.map(|ip| match ip {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => stable_hash(TraitKind::Ip, &v6.octets()),
    })
}

/// Which channels may vouch for the account now, when some may not: the
/// platform steps up or confirms through these (docs/events.md).
fn verification_request(state: &AccountState, at: i64) -> Option<VerificationRequest> {
    let untrusted = state.untrusted_credentials(at);
    let mut because: Vec<String> = Vec::new();
    for credential in &untrusted {
        let event_type = state
            .credentials
            .get(credential)
            .map(|c| c.event_type)
            .unwrap_or(match credential {
                Credential::Email => EventType::EmailChange,
                Credential::Phone => EventType::PhoneChange,
                Credential::Mfa => EventType::MfaChange,
            });
        let name = event_type.as_str().to_string();
        if !because.contains(&name) {
            because.push(name);
        }
    }
    VerificationRequest::for_untrusted(&untrusted, because)
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>) -> Engine {
        Engine::with_features(rules, FeatureConfig::default())
    }

    pub fn with_features(rules: Arc<RuleSet>, features: FeatureConfig) -> Engine {
        Engine {
            rules,
            features,
            accounts: AccountTable::default(),
            population: Population::new(),
            ip_failures: HashMap::default(),
            destinations: DestinationIndex::default(),
            holds: HoldBook::default(),
            campaigns: CampaignDetector::new(CampaignConfig::default()),
            identifiers: IdentifierIndex::default(),
            cases: CaseBook::default(),
            clock: EngineClock::default(),
        }
    }

    /// The rule set deciding now.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Swaps the rule set: the next event is decided by the new one. State
    /// does not depend on rules, so nothing else changes.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
    }

    /// Which accounts set each payout destination.
    pub fn destinations(&self) -> &DestinationIndex {
        &self.destinations
    }

    /// Payouts held, open and recently closed.
    pub fn holds(&self) -> &HoldBook {
        &self.holds
    }

    /// Campaigns found across accounts.
    pub fn campaigns(&self) -> &CampaignDetector {
        &self.campaigns
    }

    pub fn population(&self) -> &Population {
        &self.population
    }

    pub fn feature_config(&self) -> &FeatureConfig {
        &self.features
    }

    /// The time holds expire against.
    pub fn clock(&self) -> &EngineClock {
        &self.clock
    }

    /// Decides an event and folds it into the state. What the event set
    /// off (holds, risk, campaigns) is in the decision's `effects`.
    pub fn process(&mut self, event: &Event) -> Decision {
        // A login's traits serve both the decision and the state update.
        let traits = login_traits(event);
        let mut decision = self.decide_with(event, traits.as_ref());
        decision.effects = self.apply_with(event, &decision, traits.as_ref());
        decision
    }

    /// The decision for an event, without changing any state.
    pub fn decide(&self, event: &Event) -> Decision {
        self.decide_with(event, login_traits(event).as_ref())
    }

    fn decide_with(&self, event: &Event, traits: Option<&LoginTraits>) -> Decision {
        if event.event_type == EventType::AnalystAction {
            // A person's decision is recorded, not judged by the rules.
            return Decision::from_reasons(
                self.rules.name().to_string().into(),
                self.rules.version(),
                Vec::new(),
                Vec::new(),
                Action::Block,
            );
        }
        let state = self.accounts.get(&event.account_id);
        let ip_failed_logins_1h = match &event.details {
            Details::Login { .. } => ip_key(event)
                .and_then(|k| self.ip_failures.get(&k))
                .map_or(0, |w| w.total(event.unix_time())),
            _ => 0,
        };
        let paying = features::paying_destination(state, event);
        let destination = match &event.details {
            Details::PayoutDestinationChange { destination, .. } => Some(destination),
            Details::Payout {
                destination: Some(destination),
                ..
            } => Some(destination),
            _ => paying.map(|r| &r.destination),
        };
        let wanted = self
            .rules
            .needs(event.event_type)
            .union(self.features.record)
            .union(FeatureSet::ALWAYS);
        // The cross-account lookup hashes the destination: only when read.
        let destination_use = destination
            .filter(|_| wanted.intersects(features::SHARED_DESTINATION))
            .and_then(|d| self.destinations.get(d));
        let previous_holder = match &event.details {
            Details::PayoutDestinationChange {
                previous_destination,
                ..
            } if wanted.intersects(features::SHARED_DESTINATION) => {
                self.destinations.previous_holder(
                    &event.account_id,
                    previous_destination.as_ref(),
                    state.and_then(|s| s.destination.as_ref().map(|r| &r.destination)),
                )
            }
            _ => 0,
        };
        let shared_identifiers = wanted.intersects(features::SHARED_IDENTIFIERS);
        // The lookups hash the identifiers: only when read.
        let device_use = shared_identifiers
            .then(|| self.identifiers.device(event))
            .flatten();
        let session_use = shared_identifiers
            .then(|| self.identifiers.session(event))
            .flatten();
        let features = features::compute(
            state,
            event,
            &Context {
                population: &self.population,
                ip_failed_logins_1h,
                config: &self.features,
                login_traits: traits,
                wanted,
                paying_destination: paying,
                destination_use,
                previous_holder,
                destination,
                campaigns: &self.campaigns,
                device_use,
                session_use,
            },
        );
        let mut decision = self.rules.decide(&EvalContext {
            event,
            features: &features,
            destination,
        });
        decision.features = features;
        if decision.action >= Action::Challenge
            && let Some(state) = state
        {
            decision.verification = verification_request(state, event.unix_time());
        }
        let money_to_new_destination = decision.action == Action::Hold
            && matches!(
                event.event_type,
                EventType::Payout | EventType::LoanDisbursement
            )
            && decision.features.flag_of("destination.first_payout") == Some(true);
        // A change a rule asks the owner to confirm (`owner_confirms`) is
        // confirmed the same way, at once: its first payout is then paid.
        let change_to_confirm = event.event_type == EventType::PayoutDestinationChange
            && decision.action >= Action::Challenge
            && decision.reasons.iter().any(|r| r.owner_confirms);
        if money_to_new_destination || change_to_confirm {
            // The hold's release needs a channel the attacker cannot pass
            // (docs/holds.md): the platform asks through it, not the
            // owner's usual factor.
            decision.verification = Some(VerificationRequest::for_money_to_new_destination(
                decision.verification.take(),
                event.event_type.as_str(),
            ));
        }
        decision
    }

    /// Folds an event and the decision made for it into the state. Used
    /// directly when replaying the stored log; returns the effects, which
    /// a replay already has in the stored decision.
    pub fn apply(&mut self, event: &Event, decision: &Decision) -> Vec<crate::decision::Effect> {
        self.apply_with(event, decision, login_traits(event).as_ref())
    }

    fn apply_with(
        &mut self,
        event: &Event,
        decision: &Decision,
        traits: Option<&LoginTraits>,
    ) -> Vec<crate::decision::Effect> {
        let mut effects = self.apply_state(event, decision, traits);
        // Cases follow from what the event set off, live and in a replay.
        self.open_cases(event, &mut effects);
        effects
    }

    fn apply_state(
        &mut self,
        event: &Event,
        decision: &Decision,
        traits: Option<&LoginTraits>,
    ) -> Vec<crate::decision::Effect> {
        let mut before = self.before_apply(event);
        if let Details::Login {
            status: LoginStatus::Failure,
            ..
        } = &event.details
            && let Some(key) = ip_key(event)
        {
            self.record_ip_failure(key, event.unix_time());
        }
        if let Details::PayoutDestinationChange {
            destination,
            previous_destination,
        } = &event.details
        {
            let state = self.accounts.get(&event.account_id);
            let set_traits = LoginTraits::of(event);
            let mut by = SetBy::keys(
                set_traits.get(TraitKind::Network),
                set_traits.get(TraitKind::Device),
                state.map(|s| &s.profile),
                destination,
            );
            // What the rules and the session said of the change, before it.
            by.risky = decision.action >= Action::Review
                || state.is_some_and(|s| {
                    s.at_risk.is_some() || s.session_for(event).is_some_and(|x| x.risky)
                });
            let previous = self.destinations.previous_holder(
                &event.account_id,
                previous_destination.as_ref(),
                state.and_then(|s| s.destination.as_ref().map(|r| &r.destination)),
            );
            by.holder_own = holder_own(by.holder, previous);
            before.earlier_setters = self
                .destinations
                .get(destination)
                .map(|used| {
                    used.mule_setters(
                        &event.account_id,
                        event.unix_time(),
                        &by,
                        state.map(|s| &s.profile),
                    )
                })
                .unwrap_or_default();
            self.destinations
                .record(destination, &event.account_id, event.unix_time(), by);
        }
        let device_new_to_account = self
            .accounts
            .get(&event.account_id)
            .is_none_or(|s| s.known_devices.of_event(event).is_none());
        self.identifiers.record(event, device_new_to_account);
        let session_theft = features::session_theft_recorded(&decision.features);
        let is_login = matches!(event.details, Details::Login { .. });
        let state = self.accounts.get_or_insert_with(&event.account_id, || {
            AccountState::new(&event.account_id, event.unix_time())
        });
        if let (
            Details::Login {
                status: LoginStatus::Success,
                ..
            },
            Some(traits),
        ) = (&event.details, traits)
        {
            let first = state.logins_succeeded == 0;
            self.population.record(traits, first);
        }
        // A change made in the event that showed the theft counts as made
        // in a risky session; a login opens its session in `apply`.
        if session_theft && !is_login {
            state.mark_session_theft(event);
        }
        // A verification passed from where the session cannot be, or on a
        // platform its device never had, is the thief's relay answering the
        // step-up: it clears neither the session nor the account.
        let is_verification = matches!(event.details, Details::Verification { .. });
        let at_risk_before = (session_theft && is_verification)
            .then(|| state.at_risk.clone())
            .flatten();
        let mut change = state.apply(
            event,
            decision.action,
            decision.login_risk(),
            traits,
            self.features.horizon_days,
        );
        if session_theft && (is_login || is_verification) {
            state.mark_session_theft(event);
        }
        if let Some(at_risk) = at_risk_before
            && change.cleared
        {
            state.at_risk = Some(at_risk);
            change.cleared = false;
        }
        self.after_apply(event, decision, before, change)
    }

    fn record_ip_failure(&mut self, key: u64, at: i64) {
        if self.ip_failures.len() >= MAX_TRACKED_FAILING_IPS && !self.ip_failures.contains_key(&key)
        {
            self.ip_failures.retain(|_, w| !w.is_empty_at(at));
        }
        self.ip_failures
            .entry(key)
            .or_insert_with(failed_login_window)
            .add(at, 1);
    }

    pub fn account(&self, account_id: &str) -> Option<&AccountState> {
        self.accounts.get(account_id)
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Serializes all account state (sorted, so equal states give equal bytes).
    pub fn snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::new();
        self.snapshot_to(&mut out)?;
        Ok(out)
    }

    /// Serializes all account state into `out`, as [`Engine::snapshot`]
    /// would. Accounts are written by reference, not cloned first, so a
    /// snapshot costs the serialized bytes and no second copy of the state.
    ///
    /// The layout is JSON lines: a first line with everything but the
    /// accounts ([`SnapshotHead`]), then one line per account in account
    /// order. A restart reads it line by line from a buffer, which serde_json
    /// parses several times faster than the same JSON from a reader (it
    /// tracks lines and columns byte by byte there), while memory holds one
    /// line at a time, never the whole snapshot.
    pub fn snapshot_to(&self, mut out: impl std::io::Write) -> Result<(), serde_json::Error> {
        let mut accounts: Vec<&AccountState> = self.accounts.values().collect();
        accounts.sort_unstable_by(|a, b| a.account_id.cmp(&b.account_id));
        let mut ip_failures: Vec<(u64, &FailedLoginWindow)> =
            self.ip_failures.iter().map(|(k, w)| (*k, w)).collect();
        ip_failures.sort_unstable_by_key(|(k, _)| *k);
        serde_json::to_writer(
            &mut out,
            &SnapshotHeadOut {
                format: SNAPSHOT_FORMAT,
                account_lines: accounts.len() as u64,
                population: &self.population,
                ip_failures,
                destinations: self.destinations.sorted(),
                holds: self.holds.to_snapshot(),
                campaigns: self.campaigns.to_snapshot(),
                clock: &self.clock,
                identifiers: self.identifiers.to_snapshot(),
                cases: &self.cases,
            },
        )?;
        out.write_all(b"\n").map_err(serde_json::Error::io)?;
        for account in accounts {
            // serde_json escapes newlines inside strings: a line is one account.
            serde_json::to_writer(&mut out, account)?;
            out.write_all(b"\n").map_err(serde_json::Error::io)?;
        }
        out.flush().map_err(serde_json::Error::io)
    }

    /// The state as format 5 wrote it (one JSON document), for the tests of
    /// reading older snapshots.
    #[cfg(test)]
    pub(crate) fn snapshot_one_document(&self) -> Vec<u8> {
        let mut accounts: Vec<&AccountState> = self.accounts.values().collect();
        accounts.sort_unstable_by(|a, b| a.account_id.cmp(&b.account_id));
        let mut ip_failures: Vec<(u64, &FailedLoginWindow)> =
            self.ip_failures.iter().map(|(k, w)| (*k, w)).collect();
        ip_failures.sort_unstable_by_key(|(k, _)| *k);
        serde_json::to_vec(&SnapshotOut {
            format: SNAPSHOT_FORMAT_ONE_DOCUMENT,
            accounts,
            population: &self.population,
            ip_failures,
            destinations: self.destinations.sorted(),
            holds: self.holds.to_snapshot(),
            campaigns: self.campaigns.to_snapshot(),
            clock: &self.clock,
            identifiers: self.identifiers.to_snapshot(),
            cases: &self.cases,
        })
        .expect("state serializes to json")
    }

    /// Replaces all account state with a snapshot's.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        // A document that names its format elsewhere than first is still
        // refused by format, before its fields are checked.
        #[derive(Deserialize)]
        struct FormatOnly {
            format: u32,
        }
        if leading_format(bytes).is_none()
            && let Ok(FormatOnly { format: found }) = serde_json::from_slice(bytes)
            && ![
                SNAPSHOT_FORMAT_ONE_DOCUMENT,
                SNAPSHOT_FORMAT_NEWEST_TIME_CLOCK,
            ]
            .contains(&found)
        {
            return Err(SnapshotError::Format { found });
        }
        self.restore_from(bytes)
    }

    /// Replaces all account state with a snapshot read from `input`, without
    /// holding its serialized form in memory: a restart then needs the state
    /// and a read buffer, not the state plus a copy of the whole snapshot.
    /// Reads the current layout and the one-document formats 4 and 5.
    pub fn restore_from(&mut self, mut input: impl std::io::Read) -> Result<(), SnapshotError> {
        use std::io::Read;
        // The format is written first: read enough to see it (a reader may
        // hand out a byte at a time) and refuse another format by name
        // before parsing the rest.
        let mut prefix = Vec::with_capacity(32);
        (&mut input)
            .take(32)
            .read_to_end(&mut prefix)
            .map_err(serde_json::Error::io)?;
        let format = leading_format(&prefix);
        let mut input =
            std::io::BufReader::with_capacity(1 << 20, std::io::Cursor::new(prefix).chain(input));
        let snapshot = match format {
            Some(SNAPSHOT_FORMAT) => read_lines(&mut input)?,
            Some(SNAPSHOT_FORMAT_ONE_DOCUMENT | SNAPSHOT_FORMAT_NEWEST_TIME_CLOCK) | None => {
                read_one_document(&mut input)?
            }
            Some(found) => return Err(SnapshotError::Format { found }),
        };
        self.install(snapshot)
    }

    fn install(&mut self, snapshot: Snapshot<EngineClock>) -> Result<(), SnapshotError> {
        // A damaged campaign graph is refused before anything is replaced:
        // the caller rebuilds from the log instead.
        let campaigns =
            CampaignDetector::try_from_snapshot(CampaignConfig::default(), snapshot.campaigns)?;
        self.accounts = snapshot.accounts.0;
        self.population = snapshot.population;
        self.ip_failures = snapshot.ip_failures.into_iter().collect();
        self.destinations = DestinationIndex::from_sorted(snapshot.destinations);
        self.holds = HoldBook::from_snapshot(snapshot.holds);
        self.campaigns = campaigns;
        self.clock = snapshot.clock;
        self.identifiers = IdentifierIndex::from_snapshot(snapshot.identifiers);
        self.cases = snapshot.cases;
        Ok(())
    }
}
