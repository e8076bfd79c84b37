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

    /// Fills every field still unknown from `other`; what is already known
    /// (sent by the client) wins.
    pub fn fill_from(&mut self, other: Enrichment) {
        fn fill<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        let (n, o) = (&mut self.network, other.network);
        fill(&mut n.country, o.country);
        fill(&mut n.city, o.city);
        // Coordinates go together: never one from each source.
        if n.latitude.is_none() && n.longitude.is_none() {
            n.latitude = o.latitude;
            n.longitude = o.longitude;
        }
        fill(&mut n.asn, o.asn);
        fill(&mut n.as_org, o.as_org);
        let (c, o) = (&mut self.client, other.client);
        fill(&mut c.browser, o.browser);
        fill(&mut c.browser_version, o.browser_version);
        fill(&mut c.os, o.os);
        fill(&mut c.os_version, o.os_version);
        if c.device_type == DeviceType::Unknown {
            c.device_type = o.device_type;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_client_sent_wins_and_the_rest_is_filled() {
        let mut sent = Enrichment {
            network: NetworkInfo {
                country: Some("GB".into()),
                latitude: Some(51.5),
                ..Default::default()
            },
            ..Default::default()
        };
        let looked_up = Enrichment {
            network: NetworkInfo {
                country: Some("NL".into()),
                city: Some("Amsterdam".into()),
                latitude: Some(52.37),
                longitude: Some(4.9),
                asn: Some(60068),
                as_org: None,
            },
            client: ClientInfo {
                browser: Some("Chrome".into()),
                device_type: DeviceType::Desktop,
                ..Default::default()
            },
        };
        sent.fill_from(looked_up);
        assert_eq!(sent.network.country.as_deref(), Some("GB"));
        assert_eq!(sent.network.city.as_deref(), Some("Amsterdam"));
        assert_eq!(
            (sent.network.latitude, sent.network.longitude),
            (Some(51.5), None)
        );
        assert_eq!(sent.network.asn, Some(60068));
        assert_eq!(sent.client.browser.as_deref(), Some("Chrome"));
        assert_eq!(sent.client.device_type, DeviceType::Desktop);
        assert!(!sent.is_empty());
        assert!(Enrichment::default().is_empty());
    }
}
