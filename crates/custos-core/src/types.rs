//! The leaf types of the core: values that many modules share and that
//! depend on nothing else in the crate.
//!
//! They sit below every other module so that none has to reach up for
//! them: a decision carries the features computed from state, so state
//! must not depend on `decision` for the action it reads, and profiles must
//! not depend on `state` for the network prefix they count. The paths
//! `decision::Action`, `state::Timestamp` and `state::NetworkPrefix` remain
//! as re-exports.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The action a platform should take, weakest first: the decision for an
/// event is the strongest action any reason asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Let it through.
    Allow,
    /// Step the user up (MFA, verification) before going on.
    Challenge,
    /// Let it through, and put it in front of an analyst.
    Review,
    /// Do not pay out yet; keep the money until cleared or the cool-off ends.
    Hold,
    /// Refuse.
    Block,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Allow,
        Action::Challenge,
        Action::Review,
        Action::Hold,
        Action::Block,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Challenge => "challenge",
            Action::Review => "review",
            Action::Hold => "hold",
            Action::Block => "block",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Seconds since the Unix epoch, written as RFC 3339 in JSON.
///
/// Times derived from an event's (a hold's expiry, a window's end) can leave
/// the years RFC 3339 can write (0000-9999) when the event itself sits near an
/// end of that range. Such a time is written as a number of seconds instead,
/// so that saving state never fails on it; reading accepts both forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(formatted) => serializer.serialize_str(&formatted),
            None => serializer.serialize_i64(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl serde::de::Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 time or seconds since the Unix epoch")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                OffsetDateTime::parse(text, &Rfc3339)
                    .map(|t| Timestamp(t.unix_timestamp()))
                    .map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, seconds: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(seconds))
            }
            fn visit_u64<E: serde::de::Error>(self, seconds: u64) -> Result<Timestamp, E> {
                i64::try_from(seconds)
                    .map(Timestamp)
                    .map_err(|_| E::custom("seconds since the Unix epoch out of range"))
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// The network an address belongs to: its /24 for IPv4, its /48 for IPv6.
/// Attackers rotate addresses inside a provider's range; a person's home or
/// office network keeps its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkPrefix(IpAddr);

impl NetworkPrefix {
    pub fn of(ip: IpAddr) -> NetworkPrefix {
        match ip {
            IpAddr::V4(v4) => NetworkPrefix(IpAddr::V4((u32::from(v4) & 0xFFFF_FF00).into())),
            IpAddr::V6(v6) => {
                NetworkPrefix(IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into()))
            }
        }
    }
}

impl NetworkPrefix {
    /// The first address of the prefix.
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl std::fmt::Display for NetworkPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}/24"),
            IpAddr::V6(v6) => write!(f, "{v6}/48"),
        }
    }
}

impl Serialize for NetworkPrefix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetworkPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let address = text.split('/').next().unwrap_or_default();
        address
            .parse::<IpAddr>()
            .map(NetworkPrefix::of)
            .map_err(serde::de::Error::custom)
    }
}
