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

use std::borrow::Cow;
use std::collections::HashSet;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{Details, Event, LoginStatus};
use crate::login_risk::{self, LoginRiskParams};
use crate::population::Population;
use crate::profile::{BehaviourProfile, DEFAULT_HORIZON_DAYS, LoginTraits, TraitKind};
use crate::state::AccountState;

/// Every feature name Custos emits.
pub const FEATURE_NAMES: &[&str] = &[
    "login.risk",
    "login.risk_network",
    "login.risk_client",
    "login.risk_device",
    "login.first",
    "login.new_device",
    "login.new_ip",
    "login.new_network",
    "login.new_asn",
    "login.new_country",
    "login.new_city",
    "login.hosting_network",
    "login.travel_kmh",
    "login.impossible_travel",
    "login.new_device_after_password_reset",
    "account.failed_logins_1h",
    "ip.failed_logins_1h",
    "account.hours_since_sensitive_change",
    "session.risk",
];

/// A feature's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureValue {
    Bool(bool),
    Number(f64),
}

/// Named features of one decision, in a fixed order, serialized as an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features(Vec<(Cow<'static, str>, FeatureValue)>);

impl Features {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, name: &'static str, value: FeatureValue) {
        self.0.push((Cow::Borrowed(name), value));
    }

    pub fn flag(&mut self, name: &'static str, value: bool) {
        self.push(name, FeatureValue::Bool(value));
    }

    /// Numbers are rounded to 3 decimals: stable in JSON, plenty for rules.
    pub fn number(&mut self, name: &'static str, value: f64) {
        let rounded = (value * 1000.0).round() / 1000.0;
        self.push(name, FeatureValue::Number(rounded));
    }

    pub fn get(&self, name: &str) -> Option<&FeatureValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn number_of(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            Some(FeatureValue::Number(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn flag_of(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(FeatureValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &FeatureValue)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v))
    }
}

impl Serialize for Features {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name.as_ref(), value)?;
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

            // Entries stay in document order, so a stored decision reads
            // back equal to the one that was written.
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Features, A::Error> {
                let mut features = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((name, value)) = map.next_entry::<String, FeatureValue>()? {
                    features.push((Cow::Owned(name), value));
                }
                Ok(Features(features))
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
}

/// Computes the features of one event: logins, sensitive changes, payouts
/// and loans have some; other events none.
pub fn compute(state: Option<&AccountState>, event: &Event, ctx: &Context<'_>) -> Features {
    let at = event.unix_time();
    let money_out = matches!(event.details, Details::Payout { .. } | Details::Loan { .. });
    let mut f = match &event.details {
        Details::Login { status, .. } => {
            // One allocation for the twenty-odd login features.
            let mut f = Features(Vec::with_capacity(FEATURE_NAMES.len()));
            login_features(state, event, ctx, &mut f);
            if *status == LoginStatus::Failure || ctx.ip_failed_logins_1h > 0 {
                f.number("ip.failed_logins_1h", ctx.ip_failed_logins_1h as f64);
            }
            let account_failures = state.map_or(0, |s| s.failed_logins_1h.total(at));
            f.number("account.failed_logins_1h", account_failures as f64);
            f
        }
        _ if money_out || event.event_type.is_sensitive_change() => {
            let mut f = Features::default();
            if let Some(session) = state.and_then(|s| s.session_for(event)) {
                f.number("session.risk", f64::from(session.risk));
            }
            f
        }
        _ => return Features::default(),
    };
    if let Some(last) = state.and_then(|s| s.sensitive_changes.values().max()) {
        f.number(
            "account.hours_since_sensitive_change",
            (at - last.0).max(0) as f64 / 3600.0,
        );
    }
    f
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
    f.number("login.risk", if first { 0.0 } else { risk.log10 });
    f.number("login.risk_network", risk.families[0]);
    f.number("login.risk_client", risk.families[1]);
    f.number("login.risk_device", risk.families[2]);
    f.flag("login.first", first);
    let new = |kind: TraitKind| -> Option<bool> {
        traits.get(kind).map(|_| !first && counts.count(kind) == 0)
    };
    let new_device = new(TraitKind::Device).or(new(TraitKind::UserAgent));
    for (name, value) in [
        ("login.new_device", new_device),
        ("login.new_ip", new(TraitKind::Ip)),
        ("login.new_network", new(TraitKind::Network)),
        ("login.new_asn", new(TraitKind::Asn)),
        ("login.new_country", new(TraitKind::Country)),
        ("login.new_city", new(TraitKind::City)),
    ] {
        if let Some(value) = value {
            f.flag(name, value);
        }
    }
    if let Some(asn) = event.enrichment.network.asn {
        f.flag(
            "login.hosting_network",
            ctx.config.hosting_asns.contains(&asn),
        );
    }
    let network = &event.enrichment.network;
    if let (Some(state), Some(lat), Some(lon)) = (state, network.latitude, network.longitude)
        && let Some(last) = state.last_login_location
    {
        let km = haversine_km(
            f64::from(last.latitude),
            f64::from(last.longitude),
            lat,
            lon,
        );
        let hours = ((event.unix_time() - last.at.0).max(0) as f64 / 3600.0).max(1.0 / 60.0);
        let kmh = km / hours;
        f.number("login.travel_kmh", kmh);
        f.flag(
            "login.impossible_travel",
            km >= ctx.config.impossible_travel_min_km && kmh > ctx.config.impossible_travel_kmh,
        );
    }
    if let (Some(state), Some(true)) = (state, new_device) {
        let reset_recently = state
            .password_reset_requested_at
            .is_some_and(|t| event.unix_time() - t.0 <= 24 * 3600);
        f.flag("login.new_device_after_password_reset", reset_recently);
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
        f.flag("login.new_device", true);
        f.number("login.risk", 1.23456);
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"{"login.new_device":true,"login.risk":1.235}"#);
        let back: Features = serde_json::from_str(&json).unwrap();
        assert_eq!(back.flag_of("login.new_device"), Some(true));
        assert_eq!(back.number_of("login.risk"), Some(1.235));
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
