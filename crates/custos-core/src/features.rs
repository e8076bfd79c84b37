//! Named behavioural features, computed for each login and carried by the
//! session to the events that follow it.
//!
//! Every feature has a stable, dotted name (`login.new_device`,
//! `ip.failed_logins_1h`) that appears in the decision's `features` and that
//! rules will read by name. The list, with meanings, is in
//! `docs/login-risk.md`; [`FEATURE_NAMES`] is the authoritative one.
//!
//! Features are computed from the state *before* the event (like decisions)
//! and written into the decision; [`crate::Engine::apply`] then reads what it
//! needs from the stored decision, so a rebuild from the log reproduces the
//! state even if the configuration changed meanwhile.

use std::collections::HashSet;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::destinations::{Comparison, DestinationUse, SetBy, holder_own};
use crate::event::{Destination, Details, Event, EventType, InstitutionType, LoginStatus};
use crate::identifiers::{IdentifierUse, NEW_IDENTIFIER_SECS, account_key};
use crate::login_risk::{self, LoginRiskParams};
use crate::population::Population;
use crate::profile::{BehaviourProfile, DEFAULT_HORIZON_DAYS, LoginTraits, TraitKind};
use crate::sightings::{Place, Platform, SessionPace};
use crate::state::{AccountState, DestinationRecord};

macro_rules! features {
    ($($id:ident = $name:literal : $kind:ident),+ $(,)?) => {
        /// A feature by slot: the index of its value in [`Features`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Feature {
            $($id),+
        }

        impl Feature {
            pub const ALL: &'static [Feature] = &[$(Feature::$id),+];

            pub fn name(self) -> &'static str {
                match self { $(Feature::$id => $name),+ }
            }

            pub fn kind(self) -> FeatureKind {
                match self { $(Feature::$id => FeatureKind::$kind),+ }
            }

            pub fn from_name(name: &str) -> Option<Feature> {
                match name { $($name => Some(Feature::$id),)+ _ => None }
            }
        }

        /// Every feature name Custos emits.
        pub const FEATURE_NAMES: &[&str] = &[$($name),+];
    };
}

/// What a feature's value means, which decides its type in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    Flag,
    Number,
    /// A duration in seconds; rules compare it with literals such as `7d`.
    Duration,
}

features! {
    LoginRisk = "login.risk": Number,
    LoginRiskNetwork = "login.risk_network": Number,
    LoginRiskClient = "login.risk_client": Number,
    LoginRiskDevice = "login.risk_device": Number,
    LoginFirst = "login.first": Flag,
    LoginNewDevice = "login.new_device": Flag,
    LoginNewIp = "login.new_ip": Flag,
    LoginNewNetwork = "login.new_network": Flag,
    LoginNewAsn = "login.new_asn": Flag,
    LoginNewCountry = "login.new_country": Flag,
    LoginNewCity = "login.new_city": Flag,
    LoginHostingNetwork = "login.hosting_network": Flag,
    LoginTravelKmh = "login.travel_kmh": Number,
    LoginImpossibleTravel = "login.impossible_travel": Flag,
    LoginNewDeviceAfterPasswordReset = "login.new_device_after_password_reset": Flag,
    AccountFailedLogins1h = "account.failed_logins_1h": Number,
    IpFailedLogins1h = "ip.failed_logins_1h": Number,
    AccountHoursSinceSensitiveChange = "account.hours_since_sensitive_change": Number,
    AccountAge = "account.age": Duration,
    AccountLogins = "account.logins": Number,
    SessionRisk = "session.risk": Number,
    SessionRisky = "session.risky": Flag,
    SessionVerified = "session.verified": Flag,
    DestinationAge = "destination.age": Duration,
    DestinationKnown = "destination.known": Flag,
    DestinationSetInRiskySession = "destination.set_in_risky_session": Flag,
    DestinationOtherAccounts = "destination.other_accounts": Number,
    DestinationOtherAccounts30d = "destination.other_accounts_30d": Number,
    DestinationOtherAccounts180d = "destination.other_accounts_180d": Number,
    DestinationOtherAccountsRisky = "destination.other_accounts_risky": Number,
    DestinationOtherAccountsUnrelated = "destination.other_accounts_unrelated": Number,
    DestinationOtherAccountsOtherHolder = "destination.other_accounts_other_holder": Number,
    DestinationOtherAccountsMuleLike = "destination.other_accounts_mule_like": Number,
    DestinationHolderUnlikeOwn = "destination.holder_unlike_own": Flag,
    DestinationNewGlobally = "destination.new_globally": Flag,
    DestinationDenied = "destination.denied": Flag,
    DestinationSetSessionRisk = "destination.set_session_risk": Number,
    DestinationSetDuringBurst = "destination.set_during_burst": Flag,
    DestinationPreviousOtherInstitution = "destination.previous_other_institution": Flag,
    DestinationPreviousOtherCountry = "destination.previous_other_country": Flag,
    DestinationInCampaign = "destination.in_campaign": Flag,
    InstitutionBurst = "institution.burst": Flag,
    InstitutionBurstScore = "institution.burst_score": Number,
    InstitutionTypeBurst = "institution_type.burst": Flag,
    AccountAtRisk = "account.at_risk": Flag,
    AccountSinceDestinationChange = "account.since_destination_change": Duration,
    AccountLinkedAccounts = "account.linked_accounts": Number,
    AccountInCampaign = "account.in_campaign": Flag,
    AccountInConfirmedCampaign = "account.in_confirmed_campaign": Flag,
    PayoutAmountRatio = "payout.amount_ratio": Number,
    PayoutBalanceShare = "payout.balance_share": Number,
    SessionTravelKmh = "session.travel_kmh": Number,
    SessionImpossibleTravel = "session.impossible_travel": Flag,
    DevicePlatformChanged = "device.platform_changed": Flag,
    SessionStraightToPayoutSettings = "session.straight_to_payout_settings": Flag,
    SessionHourShare = "session.hour_share": Number,
    DeviceOtherAccounts = "device.other_accounts": Number,
    DeviceOtherAccountsNew = "device.other_accounts_new": Number,
    SessionOtherAccounts = "session.other_accounts": Number,
    DestinationFirstPayout = "destination.first_payout": Flag,
    DestinationReplaced = "destination.replaced": Flag,
    DestinationOwnerConfirmed = "destination.owner_confirmed": Flag,
    SessionPaceRatio = "session.pace_ratio": Number,
    AccountNewDestinations7d = "account.new_destinations_7d": Number,
    AccountSinceCredentialChange = "account.since_credential_change": Duration,
    PayoutLargestRatio = "payout.largest_ratio": Number,
}

/// How an account stands in the campaigns found across accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStanding {
    /// In a campaign no one has confirmed yet.
    Suspected,
    /// In a campaign an analyst or a fraud label confirmed.
    Confirmed,
}

/// What features read from campaign detection across accounts. The engine
/// answers from its campaign detector; [`NoCampaigns`] answers nothing.
pub trait CampaignView {
    /// Other accounts linked to this one (shared destinations, devices,
    /// addresses at risky changes), not counting cleared ones.
    fn linked_accounts(&self, account_id: &str) -> u32;
    /// The account's campaign standing, if it is in a live (not dismissed)
    /// campaign and not cleared.
    fn account_standing(&self, account_id: &str) -> Option<CampaignStanding>;
    fn destination_in_campaign(&self, destination: &Destination) -> bool;
    /// The burst score (-log10 p) of destination changes toward the
    /// institution, and whether it is bursting.
    fn institution_burst(&self, institution_id: &str, at: i64) -> (f64, bool);
    fn institution_type_burst(&self, kind: InstitutionType, at: i64) -> bool;
}

/// A [`CampaignView`] with no campaigns and no bursts.
pub struct NoCampaigns;

impl CampaignView for NoCampaigns {
    fn linked_accounts(&self, _: &str) -> u32 {
        0
    }
    fn account_standing(&self, _: &str) -> Option<CampaignStanding> {
        None
    }
    fn destination_in_campaign(&self, _: &Destination) -> bool {
        false
    }
    fn institution_burst(&self, _: &str, _: i64) -> (f64, bool) {
        (0.0, false)
    }
    fn institution_type_burst(&self, _: InstitutionType, _: i64) -> bool {
        false
    }
}

/// Number of feature slots.
pub const FEATURE_COUNT: usize = FEATURE_NAMES.len();

/// A set of features, as a bit mask over slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet(u128);

const _: () = assert!(FEATURE_COUNT <= 128, "FeatureSet is one u128");

impl FeatureSet {
    pub const EMPTY: FeatureSet = FeatureSet(0);
    pub const ALL: FeatureSet = FeatureSet(if FEATURE_COUNT == 128 {
        u128::MAX
    } else {
        (1 << FEATURE_COUNT) - 1
    });
    /// Features the engine always computes, whatever the rules read: state
    /// keeps `login.risk` as the session's risk.
    pub const ALWAYS: FeatureSet = FeatureSet(1 << Feature::LoginRisk as u8);

    pub fn of(features: &[Feature]) -> FeatureSet {
        features.iter().fold(FeatureSet::EMPTY, |s, f| s.with(*f))
    }

    pub const fn with(self, feature: Feature) -> FeatureSet {
        FeatureSet(self.0 | 1 << feature as u8)
    }

    pub const fn union(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 | other.0)
    }

    pub const fn contains(self, feature: Feature) -> bool {
        self.0 & (1 << feature as u8) != 0
    }

    pub const fn intersects(self, other: FeatureSet) -> bool {
        self.0 & other.0 != 0
    }

    /// The features not in `other`.
    pub const fn minus(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 & !other.0)
    }

    /// The features in the set, in slot order; visits set bits only.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let slot = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Feature::ALL.get(slot).copied()
        })
    }
}

/// A feature's value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureValue {
    Bool(bool),
    Number(f64),
}

/// Named features of one decision, one slot per [`Feature`], serialized as
/// an object of the features present, in slot order.
#[derive(Debug, Clone)]
pub struct Features {
    values: [Option<FeatureValue>; FEATURE_COUNT],
    /// The slots that hold a value: lets `retain`, `iter` and `is_empty`
    /// visit only those instead of every slot.
    present: FeatureSet,
}

impl PartialEq for Features {
    fn eq(&self, other: &Self) -> bool {
        self.present == other.present
            && self
                .present
                .iter()
                .all(|f| self.values[f as usize] == other.values[f as usize])
    }
}

impl Default for Features {
    fn default() -> Self {
        Features {
            values: [None; FEATURE_COUNT],
            present: FeatureSet::EMPTY,
        }
    }
}

impl Features {
    pub fn is_empty(&self) -> bool {
        self.present == FeatureSet::EMPTY
    }

    pub fn set(&mut self, feature: Feature, value: FeatureValue) {
        self.values[feature as usize] = Some(value);
        self.present = self.present.with(feature);
    }

    pub fn flag(&mut self, feature: Feature, value: bool) {
        self.set(feature, FeatureValue::Bool(value));
    }

    /// Numbers are rounded to 3 decimals: stable in JSON, plenty for rules.
    /// A value that is not finite (or becomes infinite when scaled for
    /// rounding) is left out, read as unknown: JSON has no infinity or NaN,
    /// and a recorded feature must read back as the number it was.
    pub fn number(&mut self, feature: Feature, value: f64) {
        let rounded = (value * 1000.0).round() / 1000.0;
        if rounded.is_finite() {
            self.set(feature, FeatureValue::Number(rounded));
        }
    }

    /// The value in a slot, read by compiled rules.
    #[inline]
    pub fn value(&self, feature: Feature) -> Option<FeatureValue> {
        self.values[feature as usize]
    }

    pub fn get(&self, name: &str) -> Option<FeatureValue> {
        Feature::from_name(name).and_then(|f| self.value(f))
    }

    pub fn number_of(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            Some(FeatureValue::Number(n)) => Some(n),
            _ => None,
        }
    }

    pub fn flag_of(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(FeatureValue::Bool(b)) => Some(b),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, FeatureValue)> + '_ {
        self.present
            .iter()
            .filter_map(|f| self.value(f).map(|v| (f.name(), v)))
    }

    /// Keeps only the features in `keep`.
    pub fn retain(&mut self, keep: FeatureSet) {
        for f in self.present.minus(keep).iter() {
            self.values[f as usize] = None;
        }
        self.present = FeatureSet(self.present.0 & keep.0);
    }
}

impl Serialize for Features {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Features {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FeaturesVisitor;

        impl<'de> serde::de::Visitor<'de> for FeaturesVisitor {
            type Value = Features;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of feature names to booleans or numbers")
            }

            // A name this build does not know (a feature since retired) is
            // dropped: nothing reads it any more.
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Features, A::Error> {
                let mut features = Features::default();
                while let Some((name, value)) = map.next_entry::<String, FeatureValue>()? {
                    if let Some(feature) = Feature::from_name(&name) {
                        features.set(feature, value);
                    }
                }
                Ok(features)
            }
        }

        deserializer.deserialize_map(FeaturesVisitor)
    }
}

/// Tunables of feature computation and the login-risk model.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureConfig {
    /// History older than this is forgotten by profiles.
    pub horizon_days: u32,
    pub risk: LoginRiskParams,
    /// ASNs of hosting, datacenter and VPN providers.
    pub hosting_asns: HashSet<u32, foldhash::fast::RandomState>,
    /// Travel faster than this between consecutive logins is impossible.
    pub impossible_travel_kmh: f64,
    /// Shorter hops are ignored: city-level geolocation is that coarse.
    pub impossible_travel_min_km: f64,
    /// Features computed and recorded in every decision whether or not a
    /// rule reads them (analysts see them in `GET /v1/accounts`).
    /// [`FeatureSet::ALWAYS`] by default: only what rules read, which is
    /// cheapest.
    pub record: FeatureSet,
}

/// A starting list of large hosting, cloud and VPN networks. Extend it in
/// the config; a real deployment should use a maintained list.
pub const DEFAULT_HOSTING_ASNS: &[u32] = &[
    16509, 14618, // Amazon
    15169, 396982, // Google
    8075,   // Microsoft
    14061,  // DigitalOcean
    16276,  // OVH
    24940,  // Hetzner
    63949,  // Akamai Connected Cloud (Linode)
    20473,  // Vultr (Choopa)
    9009,   // M247, common VPN exits
    60068,  // Datacamp (CDN77), common VPN exits
    212238, // Datacamp, common VPN exits
    13335,  // Cloudflare (WARP)
];

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            horizon_days: DEFAULT_HORIZON_DAYS,
            risk: LoginRiskParams::default(),
            hosting_asns: DEFAULT_HOSTING_ASNS.iter().copied().collect(),
            impossible_travel_kmh: 1_000.0,
            impossible_travel_min_km: 300.0,
            record: FeatureSet::ALWAYS,
        }
    }
}

/// Great-circle distance in km.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371.0 * a.sqrt().asin()
}

/// Cross-account inputs the features need besides the account's own state.
pub struct Context<'a> {
    pub population: &'a Population,
    /// Failed logins from the event's IP across all accounts in the last hour.
    pub ip_failed_logins_1h: u64,
    pub config: &'a FeatureConfig,
    /// The event's login traits, if the caller computed them already (the
    /// engine does, to reuse them when it applies the login).
    pub login_traits: Option<&'a LoginTraits>,
    /// The features to compute: those the rules read, plus
    /// [`FeatureConfig::record`]. Others are left out of the decision.
    pub wanted: FeatureSet,
    /// The record of the destination a payout or loan disbursement pays
    /// into ([`paying_destination`]), found once by the caller.
    pub paying_destination: Option<&'a DestinationRecord>,
    /// Which accounts set the destination the event concerns, across all
    /// accounts; `None` when no account ever did.
    pub destination_use: Option<&'a DestinationUse>,
    /// For a destination change: the holder key of the account's own
    /// destination before it ([`crate::destinations::DestinationIndex::previous_holder`]),
    /// 0 when unknown.
    pub previous_holder: u64,
    /// The destination the event concerns: the new one of a change, the
    /// one a payout or disbursement pays into.
    pub destination: Option<&'a Destination>,
    pub campaigns: &'a dyn CampaignView,
    /// Which accounts used the event's device id, across all accounts;
    /// `None` when none did (or the rules do not read it).
    pub device_use: Option<&'a IdentifierUse>,
    /// Which accounts used the event's session id at sensitive changes and
    /// money events, across all accounts.
    pub session_use: Option<&'a IdentifierUse>,
}

/// The features that compare the other accounts' settings of the
/// destination with this one's ([`DestinationUse::compare`]).
const SHARING: FeatureSet = FeatureSet::EMPTY
    .with(Feature::DestinationOtherAccounts180d)
    .with(Feature::DestinationOtherAccountsRisky)
    .with(Feature::DestinationOtherAccountsUnrelated)
    .with(Feature::DestinationOtherAccountsOtherHolder)
    .with(Feature::DestinationOtherAccountsMuleLike)
    .with(Feature::DestinationHolderUnlikeOwn);

const SESSION: FeatureSet = FeatureSet::EMPTY
    .with(Feature::SessionRisk)
    .with(Feature::SessionRisky)
    .with(Feature::SessionVerified);

/// Features read from the cross-account destination index.
pub const SHARED_DESTINATION: FeatureSet = FeatureSet::EMPTY
    .with(Feature::DestinationOtherAccounts)
    .with(Feature::DestinationOtherAccounts30d)
    .union(SHARING)
    .with(Feature::DestinationNewGlobally)
    .with(Feature::DestinationDenied);

/// Features read from campaign detection about the event's destination.
const DESTINATION_CAMPAIGN: FeatureSet = FeatureSet::EMPTY
    .with(Feature::DestinationInCampaign)
    .with(Feature::InstitutionBurst)
    .with(Feature::InstitutionBurstScore)
    .with(Feature::InstitutionTypeBurst);

const DESTINATION: FeatureSet = FeatureSet::EMPTY
    .with(Feature::DestinationKnown)
    .with(Feature::DestinationAge)
    .with(Feature::DestinationSetInRiskySession)
    .with(Feature::DestinationSetSessionRisk)
    .with(Feature::DestinationSetDuringBurst)
    .with(Feature::DestinationPreviousOtherInstitution)
    .with(Feature::DestinationPreviousOtherCountry)
    .with(Feature::DestinationFirstPayout)
    .with(Feature::DestinationReplaced)
    .with(Feature::DestinationOwnerConfirmed)
    .union(SHARED_DESTINATION)
    .union(DESTINATION_CAMPAIGN);

/// Features of the account's place in campaigns.
const ACCOUNT_CAMPAIGN: FeatureSet = FeatureSet::EMPTY
    .with(Feature::AccountLinkedAccounts)
    .with(Feature::AccountInCampaign)
    .with(Feature::AccountInConfirmedCampaign);

const PAYOUT: FeatureSet = FeatureSet::EMPTY
    .with(Feature::PayoutAmountRatio)
    .with(Feature::PayoutBalanceShare)
    .with(Feature::PayoutLargestRatio);

/// The window of `account.new_destinations_7d`.
const NEW_DESTINATIONS_SECS: i64 = 7 * 86_400;

/// The window of `destination.other_accounts_30d`.
const RECENT_DESTINATION_SECS: i64 = 30 * 86_400;

/// Features read from the cross-account identifier index.
pub const SHARED_IDENTIFIERS: FeatureSet = FeatureSet::EMPTY
    .with(Feature::DeviceOtherAccounts)
    .with(Feature::DeviceOtherAccountsNew)
    .with(Feature::SessionOtherAccounts);

/// The session-theft signals that make the session risky when they fire:
/// recorded whenever true, read back by [`session_theft_recorded`].
const SESSION_THEFT: FeatureSet = FeatureSet::EMPTY
    .with(Feature::SessionImpossibleTravel)
    .with(Feature::DevicePlatformChanged);

/// Whether a decision's features say a session-theft signal fired, which
/// makes the event's session risky ([`AccountState::mark_session_theft`]):
/// read from the stored decision, so a replay marks the same sessions.
pub fn session_theft_recorded(features: &Features) -> bool {
    SESSION_THEFT
        .iter()
        .any(|f| features.value(f) == Some(FeatureValue::Bool(true)))
}

const ACCOUNT: FeatureSet = FeatureSet::EMPTY
    .with(Feature::AccountHoursSinceSensitiveChange)
    .with(Feature::AccountAge)
    .with(Feature::AccountLogins)
    .with(Feature::AccountAtRisk)
    .with(Feature::AccountSinceDestinationChange)
    .with(Feature::AccountNewDestinations7d)
    .with(Feature::AccountSinceCredentialChange);

/// Features that need the login-risk model's profile lookup.
const LOGIN_LOOKUP: FeatureSet = FeatureSet::EMPTY
    .with(Feature::LoginRisk)
    .with(Feature::LoginRiskNetwork)
    .with(Feature::LoginRiskClient)
    .with(Feature::LoginRiskDevice)
    .with(Feature::LoginFirst)
    .with(Feature::LoginNewDevice)
    .with(Feature::LoginNewIp)
    .with(Feature::LoginNewNetwork)
    .with(Feature::LoginNewAsn)
    .with(Feature::LoginNewCountry)
    .with(Feature::LoginNewCity)
    .with(Feature::LoginNewDeviceAfterPasswordReset);

/// The destination record a payout or loan disbursement pays into: the
/// payout's own destination if it names one the account registered,
/// otherwise the account's current destination.
pub fn paying_destination<'a>(
    state: Option<&'a AccountState>,
    event: &Event,
) -> Option<&'a DestinationRecord> {
    let state = state?;
    match &event.details {
        Details::Payout {
            destination: Some(d),
            ..
        } => state
            .destination
            .iter()
            .chain(state.previous_destinations.iter())
            .find(|r| r.destination.same_account(d)),
        Details::Payout { .. } => state.destination.as_ref(),
        Details::Loan { .. } if event.event_type == EventType::LoanDisbursement => {
            state.destination.as_ref()
        }
        _ => None,
    }
}

/// Computes the features of one event that `ctx.wanted` asks for, from the
/// account's state before the event.
pub fn compute(state: Option<&AccountState>, event: &Event, ctx: &Context<'_>) -> Features {
    let at = event.unix_time();
    let wanted = ctx.wanted;
    let mut f = Features::default();
    match &event.details {
        Details::Login { status, .. } => {
            if wanted.intersects(LOGIN_LOOKUP) || wanted.contains(Feature::LoginHostingNetwork) {
                login_features(state, event, ctx, &mut f);
            }
            if *status == LoginStatus::Failure || ctx.ip_failed_logins_1h > 0 {
                f.number(Feature::IpFailedLogins1h, ctx.ip_failed_logins_1h as f64);
            }
            let account_failures = state.map_or(0, |s| s.failed_logins_1h.total(at));
            f.number(Feature::AccountFailedLogins1h, account_failures as f64);
        }
        _ => {
            if wanted.intersects(SESSION)
                && let Some(session) = state.and_then(|s| s.session_for(event))
            {
                f.number(Feature::SessionRisk, f64::from(session.risk));
                f.flag(Feature::SessionRisky, session.risky);
                f.flag(Feature::SessionVerified, session.verified);
            }
            if wanted.intersects(DESTINATION) {
                destination_features(state, event, ctx.paying_destination, &mut f);
                if wanted.intersects(SHARED_DESTINATION) {
                    shared_destination_features(state, event, ctx, &mut f);
                }
                if wanted.intersects(DESTINATION_CAMPAIGN)
                    && let Some(destination) = ctx.destination
                {
                    campaign_destination_features(destination, at, ctx.campaigns, &mut f);
                }
            }
            if wanted.intersects(PAYOUT) {
                payout_features(state, event, &mut f);
            }
        }
    }
    if wanted.intersects(SHARED_IDENTIFIERS) {
        shared_identifier_features(state, event, ctx, &mut f);
    }
    if wanted.contains(Feature::SessionHourShare)
        && let Some(share) = state.and_then(|s| s.activity_hours.share_near(at))
    {
        f.number(Feature::SessionHourShare, share);
    }
    if wanted.contains(Feature::SessionPaceRatio)
        && crate::state::counts_as_act(event.event_type)
        && let Some(state) = state
        && let Some(session) = state.session_for(event).filter(|s| s.login.is_some())
    {
        let acts = session.client.acts.saturating_add(1);
        let rate = SessionPace::rate(acts, at - session.started_at.0);
        if let Some(ratio) = state.session_pace.ratio(rate) {
            f.number(Feature::SessionPaceRatio, ratio);
        }
    }
    if let Some(state) = state {
        // Cheap (a distance and a scan of a few devices), and computed for
        // every event: a signal that fires must be recorded for state.
        session_theft_features(state, event, ctx.config, &mut f);
    }
    if wanted.intersects(ACCOUNT_CAMPAIGN) {
        let linked = ctx.campaigns.linked_accounts(&event.account_id);
        let standing = ctx.campaigns.account_standing(&event.account_id);
        f.number(Feature::AccountLinkedAccounts, f64::from(linked));
        f.flag(Feature::AccountInCampaign, standing.is_some());
        f.flag(
            Feature::AccountInConfirmedCampaign,
            standing == Some(CampaignStanding::Confirmed),
        );
    }
    if wanted.contains(Feature::AccountAtRisk) {
        f.flag(
            Feature::AccountAtRisk,
            state.is_some_and(|s| s.at_risk.is_some()),
        );
    }
    if wanted.intersects(ACCOUNT)
        && let Some(state) = state
    {
        if let Some(current) = &state.destination {
            f.number(
                Feature::AccountSinceDestinationChange,
                (at - current.set_at.0).max(0) as f64,
            );
        }
        if let Some(last) = state.sensitive_changes.values().max() {
            f.number(
                Feature::AccountHoursSinceSensitiveChange,
                (at - last.0).max(0) as f64 / 3600.0,
            );
        }
        f.number(Feature::AccountAge, (at - state.first_seen.0).max(0) as f64);
        f.number(Feature::AccountLogins, state.logins_succeeded as f64);
        if let Some(last) = state.credentials.values().map(|c| c.at).max() {
            f.number(
                Feature::AccountSinceCredentialChange,
                (at - last.0).max(0) as f64,
            );
        }
    }
    if wanted.contains(Feature::AccountNewDestinations7d) {
        f.number(
            Feature::AccountNewDestinations7d,
            new_destinations(state, event) as f64,
        );
    }
    let fired = SESSION_THEFT
        .iter()
        .filter(|feature| f.value(*feature) == Some(FeatureValue::Bool(true)))
        .fold(FeatureSet::EMPTY, FeatureSet::with);
    f.retain(wanted.union(fired));
    f
}

/// Where the session or device was seen last, against where this event
/// comes from; the platform a known device presents; whether a destination
/// change is the first thing a fresh session does.
fn session_theft_features(
    state: &AccountState,
    event: &Event,
    config: &FeatureConfig,
    f: &mut Features,
) {
    let at = event.unix_time();
    let is_login = matches!(event.details, Details::Login { .. });
    // A login opens its session: only one it names explicitly was seen
    // before (a replayed session id), never the account's latest.
    let session = if is_login && event.session_id.is_none() {
        None
    } else {
        state.session_for(event)
    };
    let device = state.known_devices.of_event(event);
    if let Some(here) = Place::of(event) {
        let earlier = session
            .and_then(|s| s.client.last_place)
            .into_iter()
            .chain(device.and_then(|d| d.last_place));
        let network_known =
            here.asn != 0 && state.profile.count(TraitKind::Asn, u64::from(here.asn)) > 0;
        let mut fastest: Option<f64> = None;
        let mut impossible = false;
        for there in earlier {
            let km = haversine_km(
                f64::from(there.latitude),
                f64::from(there.longitude),
                f64::from(here.latitude),
                f64::from(here.longitude),
            );
            let hours = ((at - there.at).abs() as f64 / 3600.0).max(1.0 / 60.0);
            let kmh = km / hours;
            fastest = Some(fastest.map_or(kmh, |k: f64| k.max(kmh)));
            // Carrier NAT pools and roaming are the honest look-alikes: a
            // phone's address may be located anywhere in its carrier's
            // country, and a roaming phone exits through its home carrier,
            // which the account knows. So the hop must cross a border, onto
            // a network the account never logged in from.
            let other_country =
                here.country != 0 && there.country != 0 && here.country != there.country;
            impossible |= other_country
                && !network_known
                && km >= config.impossible_travel_min_km
                && kmh > config.impossible_travel_kmh;
        }
        if let Some(kmh) = fastest {
            f.number(Feature::SessionTravelKmh, kmh);
            f.flag(Feature::SessionImpossibleTravel, impossible);
        }
    }
    if let Some(device) = device {
        f.flag(
            Feature::DevicePlatformChanged,
            device.platform.differs_from(&Platform::of(event)),
        );
    }
    if let (Details::PayoutDestinationChange { .. }, Some(session)) = (&event.details, session) {
        f.flag(
            Feature::SessionStraightToPayoutSettings,
            session.login.is_some()
                && session.client.acts == 0
                && at - session.started_at.0 <= STRAIGHT_TO_PAYOUT_SETTINGS_SECS,
        );
    }
}

/// A destination change this soon after the login, as the session's first
/// act, went straight to payout settings.
const STRAIGHT_TO_PAYOUT_SETTINGS_SECS: i64 = 10 * 60;

/// How many other accounts presented the event's device id and session id.
fn shared_identifier_features(
    state: Option<&AccountState>,
    event: &Event,
    ctx: &Context<'_>,
    f: &mut Features,
) {
    let account = account_key(&event.account_id);
    let at = event.unix_time();
    if event.device_id.is_some() {
        let device_new_to_account = state
            .and_then(|s| s.known_devices.of_event(event))
            .is_none_or(|d| at - d.first_seen <= NEW_IDENTIFIER_SECS);
        let others = ctx
            .device_use
            .map(|u| u.other_accounts(account, at, device_new_to_account))
            .unwrap_or_default();
        f.number(Feature::DeviceOtherAccounts, f64::from(others.all));
        f.number(Feature::DeviceOtherAccountsNew, f64::from(others.new));
    }
    if event.session_id.is_some() {
        let others = ctx
            .session_use
            .map(|u| u.other_accounts(account, at, true))
            .unwrap_or_default();
        f.number(Feature::SessionOtherAccounts, f64::from(others.all));
    }
}

fn destination_features(
    state: Option<&AccountState>,
    event: &Event,
    paying: Option<&DestinationRecord>,
    f: &mut Features,
) {
    match &event.details {
        Details::PayoutDestinationChange {
            destination,
            previous_destination,
        } => {
            f.flag(
                Feature::DestinationKnown,
                state.is_some_and(|s| s.knows_destination(destination)),
            );
            if let Some(session) = state.and_then(|s| s.session_for(event)) {
                f.number(Feature::DestinationSetSessionRisk, f64::from(session.risk));
            }
            let previous = state
                .and_then(|s| s.destination.as_ref().map(|r| &r.destination))
                .or(previous_destination.as_ref());
            f.flag(Feature::DestinationReplaced, previous.is_some());
            if let Some(previous) = previous {
                previous_destination_features(previous, destination, f);
            }
        }
        Details::Payout { .. } | Details::Loan { .. }
            if event.event_type != EventType::LoanApplication =>
        {
            // A payout naming a destination pays into a registered one only
            // if the account has it; without one, into the current one.
            f.flag(Feature::DestinationKnown, paying.is_some());
            let names_one = matches!(
                &event.details,
                Details::Payout {
                    destination: Some(_),
                    ..
                }
            );
            // Never paid into: a registered one with no payout through, or
            // one no change event registered (nothing vouches for it). An
            // account with no destination at all pays where the platform
            // knows, which Custos cannot judge.
            match paying {
                Some(record) => f.flag(
                    Feature::DestinationFirstPayout,
                    record.first_paid_at.is_none(),
                ),
                None if names_one => f.flag(Feature::DestinationFirstPayout, true),
                None => {}
            }
            if let Some(record) = paying {
                f.flag(Feature::DestinationReplaced, record.replaced_another);
                f.flag(Feature::DestinationOwnerConfirmed, record.owner_confirmed);
                let age = (event.unix_time() - record.set_at.0).max(0);
                f.number(Feature::DestinationAge, age as f64);
                f.flag(
                    Feature::DestinationSetInRiskySession,
                    record.set_in_risky_session,
                );
                f.number(
                    Feature::DestinationSetSessionRisk,
                    f64::from(record.set_session_risk),
                );
                f.flag(Feature::DestinationSetDuringBurst, record.set_during_burst);
                // The destination it replaced, when it is the current one.
                let replaced = state
                    .filter(|s| {
                        s.destination
                            .as_ref()
                            .is_some_and(|d| d.set_by_event == record.set_by_event)
                    })
                    .and_then(|s| s.previous_destinations.first());
                if let Some(replaced) = replaced {
                    previous_destination_features(&replaced.destination, &record.destination, f);
                }
            }
        }
        _ => {}
    }
}

/// Whether a change moved the money to another institution or country.
fn previous_destination_features(previous: &Destination, new: &Destination, f: &mut Features) {
    f.flag(
        Feature::DestinationPreviousOtherInstitution,
        previous.institution_id != new.institution_id,
    );
    if let (Some(before), Some(after)) = (&previous.country, &new.country) {
        f.flag(Feature::DestinationPreviousOtherCountry, before != after);
    }
}

/// What campaign detection knows about the event's destination.
fn campaign_destination_features(
    destination: &Destination,
    at: i64,
    campaigns: &dyn CampaignView,
    f: &mut Features,
) {
    f.flag(
        Feature::DestinationInCampaign,
        campaigns.destination_in_campaign(destination),
    );
    let (score, bursting) = campaigns.institution_burst(&destination.institution_id, at);
    f.flag(Feature::InstitutionBurst, bursting);
    f.number(Feature::InstitutionBurstScore, score);
    if let Some(kind) = destination.institution_type {
        f.flag(
            Feature::InstitutionTypeBurst,
            campaigns.institution_type_burst(kind, at),
        );
    }
}

/// A payout against the account's own history: its typical payout and the
/// balance its sales built.
fn payout_features(state: Option<&AccountState>, event: &Event, f: &mut Features) {
    let Details::Payout {
        amount, currency, ..
    } = &event.details
    else {
        return;
    };
    let Some(money) = state.and_then(|s| s.money.get(currency)) else {
        return;
    };
    if money.payouts > 0 && money.typical_payout > 0 {
        f.number(
            Feature::PayoutAmountRatio,
            *amount as f64 / money.typical_payout as f64,
        );
    }
    let balance = money.balance();
    if balance > 0 {
        f.number(Feature::PayoutBalanceShare, *amount as f64 / balance as f64);
    }
    if money.largest_paid > 0 {
        f.number(
            Feature::PayoutLargestRatio,
            *amount as f64 / money.largest_paid as f64,
        );
    }
}

/// Distinct destinations set in the last 7 days, counting the one a payout
/// names if no change registered it, and the one a change sets.
fn new_destinations(state: Option<&AccountState>, event: &Event) -> u32 {
    let at = event.unix_time();
    let records = state
        .into_iter()
        .flat_map(|s| s.destination.iter().chain(s.previous_destinations.iter()));
    let recent = records
        .clone()
        .filter(|r| at - r.set_at.0 < NEW_DESTINATIONS_SECS)
        .count() as u32;
    let known = |d: &Destination| records.clone().any(|r| r.destination.same_account(d));
    let unregistered = match &event.details {
        Details::Payout {
            destination: Some(d),
            ..
        }
        | Details::PayoutDestinationChange { destination: d, .. } => !known(d),
        _ => false,
    };
    recent + u32::from(unregistered)
}

/// How many other accounts set the destination the event concerns, and
/// whether they look like a shared account or a mule
/// ([`DestinationUse::compare`]).
fn shared_destination_features(
    state: Option<&AccountState>,
    event: &Event,
    ctx: &Context<'_>,
    f: &mut Features,
) {
    let new_destination = match &event.details {
        Details::PayoutDestinationChange { destination, .. } => Some(destination),
        Details::Payout { .. } => None,
        Details::Loan { .. } if event.event_type == EventType::LoanDisbursement => None,
        _ => return,
    };
    let used = ctx.destination_use;
    let at = event.unix_time();
    let (all, recent) = used.map_or((0, 0), |u| {
        u.other_accounts(&event.account_id, at - RECENT_DESTINATION_SECS)
    });
    f.flag(Feature::DestinationNewGlobally, used.is_none());
    f.flag(
        Feature::DestinationDenied,
        used.is_some_and(|u| u.denied_at.is_some()),
    );
    f.number(Feature::DestinationOtherAccounts, all as f64);
    f.number(Feature::DestinationOtherAccounts30d, recent as f64);
    if !ctx.wanted.intersects(SHARING) {
        // Every payout reads the deny list; few rules read the rest.
        return;
    }
    // The change (or the payout) as the index would record it: its network
    // and device, and the holder name it gives.
    let traits = LoginTraits::of(event);
    let mut now = match new_destination.or(ctx.destination) {
        Some(d) => SetBy::keys(
            traits.get(TraitKind::Network),
            traits.get(TraitKind::Device),
            state.map(|s| &s.profile),
            d,
        ),
        None => SetBy::default(),
    };
    if new_destination.is_some() {
        now.holder_own = holder_own(now.holder, ctx.previous_holder);
        if let Some(own) = now.holder_own {
            f.flag(Feature::DestinationHolderUnlikeOwn, !own);
        }
    }
    let c = used.map_or_else(Comparison::default, |u| {
        u.compare(&event.account_id, at, &now, state.map(|s| &s.profile))
    });
    f.number(Feature::DestinationOtherAccounts180d, c.recent as f64);
    f.number(Feature::DestinationOtherAccountsRisky, c.risky as f64);
    f.number(
        Feature::DestinationOtherAccountsUnrelated,
        c.unrelated as f64,
    );
    f.number(
        Feature::DestinationOtherAccountsOtherHolder,
        c.other_holder as f64,
    );
    f.number(
        Feature::DestinationOtherAccountsMuleLike,
        c.mule_like as f64,
    );
}

fn login_features(
    state: Option<&AccountState>,
    event: &Event,
    ctx: &Context<'_>,
    f: &mut Features,
) {
    let empty = BehaviourProfile::default();
    let profile = state.map_or(&empty, |s| &s.profile);
    let computed;
    let traits = match ctx.login_traits {
        Some(traits) => traits,
        None => {
            computed = LoginTraits::of(event);
            &computed
        }
    };
    let first = profile.logins() == 0;
    let counts = profile.lookup(traits);
    let risk = login_risk::score_with(profile, &counts, ctx.population, traits, &ctx.config.risk);
    f.number(Feature::LoginRisk, if first { 0.0 } else { risk.log10 });
    f.number(Feature::LoginRiskNetwork, risk.families[0]);
    f.number(Feature::LoginRiskClient, risk.families[1]);
    f.number(Feature::LoginRiskDevice, risk.families[2]);
    f.flag(Feature::LoginFirst, first);
    let new = |kind: TraitKind| -> Option<bool> {
        traits.get(kind).map(|_| !first && counts.count(kind) == 0)
    };
    let new_device = new(TraitKind::Device).or(new(TraitKind::UserAgent));
    for (feature, value) in [
        (Feature::LoginNewDevice, new_device),
        (Feature::LoginNewIp, new(TraitKind::Ip)),
        (Feature::LoginNewNetwork, new(TraitKind::Network)),
        (Feature::LoginNewAsn, new(TraitKind::Asn)),
        (Feature::LoginNewCountry, new(TraitKind::Country)),
        (Feature::LoginNewCity, new(TraitKind::City)),
    ] {
        if let Some(value) = value {
            f.flag(feature, value);
        }
    }
    if let Some(asn) = event.enrichment.network.asn {
        f.flag(
            Feature::LoginHostingNetwork,
            ctx.config.hosting_asns.contains(&asn),
        );
    }
    let network = &event.enrichment.network;
    let travel_wanted = ctx.wanted.contains(Feature::LoginTravelKmh)
        || ctx.wanted.contains(Feature::LoginImpossibleTravel);
    if travel_wanted
        && let (Some(state), Some(lat), Some(lon)) = (state, network.latitude, network.longitude)
        && let Some(last) = state.last_login_location
    {
        {
            let km = haversine_km(
                f64::from(last.latitude),
                f64::from(last.longitude),
                lat,
                lon,
            );
            let hours = ((event.unix_time() - last.at.0).max(0) as f64 / 3600.0).max(1.0 / 60.0);
            let kmh = km / hours;
            f.number(Feature::LoginTravelKmh, kmh);
            f.flag(
                Feature::LoginImpossibleTravel,
                km >= ctx.config.impossible_travel_min_km && kmh > ctx.config.impossible_travel_kmh,
            );
        }
    }
    if let (Some(state), Some(true)) = (state, new_device) {
        let reset_recently = state
            .password_reset_requested_at
            .is_some_and(|t| event.unix_time() - t.0 <= 24 * 3600);
        f.flag(Feature::LoginNewDeviceAfterPasswordReset, reset_recently);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        // London to Rome is about 1,434 km.
        let km = haversine_km(51.5074, -0.1278, 41.9028, 12.4964);
        assert!((km - 1_434.0).abs() < 10.0, "{km}");
        assert!(haversine_km(1.0, 1.0, 1.0, 1.0) < 1e-9);
    }

    #[test]
    fn features_round_trip_through_json() {
        let mut f = Features::default();
        f.flag(Feature::LoginNewDevice, true);
        f.number(Feature::LoginRisk, 1.23456);
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"{"login.risk":1.235,"login.new_device":true}"#);
        let back: Features = serde_json::from_str(&json).unwrap();
        assert_eq!(back.flag_of("login.new_device"), Some(true));
        assert_eq!(back.number_of("login.risk"), Some(1.235));
    }

    #[test]
    fn numbers_that_are_not_finite_are_left_out_not_stored_as_null() {
        // A travel speed from an impossible coordinate was stored as null
        // and could not be read back as a number.
        let mut f = Features::default();
        f.number(Feature::LoginTravelKmh, f64::INFINITY);
        f.number(Feature::LoginRisk, f64::NAN);
        f.number(Feature::SessionRisk, 1e308); // infinite once scaled to round
        assert!(f.is_empty());
        assert_eq!(serde_json::to_string(&f).unwrap(), "{}");
        f.number(Feature::LoginRisk, 0.5);
        assert_eq!(f.number_of("login.risk"), Some(0.5));
    }

    #[test]
    fn names_are_unique_and_dotted() {
        for name in FEATURE_NAMES {
            assert!(name.contains('.'), "{name}");
        }
        let mut sorted = FEATURE_NAMES.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), FEATURE_NAMES.len(), "duplicate names");
    }
}
