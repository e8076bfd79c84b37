//! What Custos knows about where an event came from, beyond its raw fields.
//!
//! An [`Enrichment`] is computed once per event by an adapter outside the
//! core (MaxMind databases for the network, a user-agent parser for the
//! client) and stored with the event, so that rebuilding state from the log
//! gives the same answer even after the databases are updated. The core only
//! reads it; a missing database simply leaves its fields `None`, and every
//! feature built on them then reads as unknown.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Network facts about the event's IP address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// City name in English, as the database spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Autonomous system number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Organisation that holds the autonomous system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
}

/// The kind of device a user agent reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Other,
    #[default]
    Unknown,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Bot => "bot",
            DeviceType::Other => "other",
            DeviceType::Unknown => "unknown",
        }
    }
}

/// Client facts parsed from the event's user agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Browser family, e.g. `Chrome`, `Firefox`, `Safari`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// Browser major version, e.g. `120`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    /// Operating system family, e.g. `Windows`, `Mac OS X`, `Android`, `iOS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Operating system major version, e.g. `10`, `14`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default)]
    pub device_type: DeviceType,
}

/// Everything adapters add to an event before the engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    #[serde(default, skip_serializing_if = "is_default")]
    pub network: NetworkInfo,
    #[serde(default, skip_serializing_if = "is_default")]
    pub client: ClientInfo,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Enrichment {
    pub fn is_empty(&self) -> bool {
        is_default(self)
    }
}

/// Computes an [`Enrichment`] from an event's IP address and user agent.
///
/// Implementations live outside the core (they read files); they must be
/// cheap per call (the whole login score has a budget of a few µs) and must
/// never fail: what they cannot tell is left `None`.
pub trait Enricher: Send + Sync {
    fn enrich(&self, ip: Option<IpAddr>, user_agent: Option<&str>) -> Enrichment;
}

/// An enricher that knows nothing: every field stays unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnrichment;

impl Enricher for NoEnrichment {
    fn enrich(&self, _ip: Option<IpAddr>, _user_agent: Option<&str>) -> Enrichment {
        Enrichment::default()
    }
}
