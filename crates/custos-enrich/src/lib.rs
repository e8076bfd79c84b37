//! Enrichment adapter: what an event's IP address and user agent say about
//! where it came from, for `custos_core::enrich::Enricher`.
//!
//! - **Network** (`geo.rs`): MaxMind DB files read into memory at start.
//!   A City (or Country) database gives country, city and coordinates; an
//!   ASN database gives the autonomous system and its holder. Either may be
//!   left out: its fields then stay `None`, and the features built on them
//!   read as unknown. Lookups are a walk down an in-memory tree (a few
//!   hundred nanoseconds) and never fail: an address the database does not
//!   know gives `None`.
//! - **Client** (`user_agent.rs`): the uap-core rules (the data behind the
//!   ua-parser libraries in most languages), compiled into the binary, give
//!   browser and OS family and major version; the device type is derived
//!   from them. Matching a new user agent costs tens of microseconds, more
//!   than the whole login budget, so results are cached by user-agent
//!   string: real traffic repeats a small set of strings.
//!
//! Files are read once, by [`GeoUaEnricher::open`], before anything is
//! served; a bad path or a file that is not a MaxMind DB refuses the start
//! with the config key and path at fault. Nothing here touches the network.
//! Updating a database means restarting with the new file: events already
//! stored keep the enrichment they were decided with (see
//! `custos_core::enrich`).

#![forbid(unsafe_code)]

mod cache;
mod geo;
mod user_agent;

use std::net::IpAddr;
use std::path::PathBuf;

use custos_core::enrich::{ClientInfo, Enricher, Enrichment, NetworkInfo};
use serde::Deserialize;

use crate::geo::GeoDatabases;
use crate::user_agent::UserAgentParser;

/// The `[geo]` section of the configuration (`custos_config::Config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    /// A GeoLite2-City or GeoIP2-City database (a Country database also
    /// works, and then gives no city or coordinates).
    pub city_db: Option<PathBuf>,
    /// A GeoLite2-ASN database (or GeoIP2-ISP, which has the same fields).
    pub asn_db: Option<PathBuf>,
}

/// Why an enricher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {path} is not a MaxMind DB file: {source}")]
    NotMaxMindDb {
        key: &'static str,
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("{key}: {path} is a {database_type} database; expected {expected}")]
    WrongDatabaseType {
        key: &'static str,
        path: PathBuf,
        database_type: String,
        expected: &'static str,
    },
    #[error("built-in user-agent rules: {0}")]
    UserAgentRules(String),
}

/// Enriches events from MaxMind databases (network) and the built-in
/// uap-core rules (client). Cheap to share: put it in an `Arc` and call it
/// from any number of threads.
pub struct GeoUaEnricher {
    geo: GeoDatabases,
    user_agents: UserAgentParser,
}

impl GeoUaEnricher {
    /// Reads the configured databases and prepares the user-agent rules.
    /// With an empty config only the user agent is enriched.
    pub fn open(config: &GeoConfig) -> Result<Self, EnrichError> {
        Ok(GeoUaEnricher {
            geo: GeoDatabases::open(config)?,
            user_agents: UserAgentParser::new()?,
        })
    }

    /// Network facts for one address; unknown parts stay `None`.
    pub fn network(&self, ip: IpAddr) -> NetworkInfo {
        self.geo.lookup(ip)
    }

    /// Client facts for one user agent; an empty or unrecognised one gives
    /// the default (everything unknown).
    pub fn client(&self, user_agent: &str) -> ClientInfo {
        self.user_agents.parse(user_agent)
    }

    /// Whether a City (or Country) database is loaded.
    pub fn has_city_db(&self) -> bool {
        self.geo.has_city_db()
    }

    /// Whether an ASN database is loaded.
    pub fn has_asn_db(&self) -> bool {
        self.geo.has_asn_db()
    }
}

impl std::fmt::Debug for GeoUaEnricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoUaEnricher")
            .field("city_db", &self.geo.has_city_db())
            .field("asn_db", &self.geo.has_asn_db())
            .finish_non_exhaustive()
    }
}

impl Enricher for GeoUaEnricher {
    fn enrich(&self, ip: Option<IpAddr>, user_agent: Option<&str>) -> Enrichment {
        Enrichment {
            network: ip.map(|ip| self.network(ip)).unwrap_or_default(),
            client: user_agent.map(|ua| self.client(ua)).unwrap_or_default(),
        }
    }
}
