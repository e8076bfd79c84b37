//! The behavioural profile: what is normal for one account, in under a KiB.
//!
//! For every successful login the profile counts the values of a few
//! *traits* (the address, its network prefix, its autonomous system, country
//! and city; the user agent, browser with major version, OS with major
//! version, device type; the device id) and remembers when each was last
//! seen. The login-risk model ([`crate::login_risk`]) compares a new login
//! against these counts.
//!
//! ## Why it looks like this
//!
//! - **One flat vector of 16-byte tallies.** A value is kept as a 64-bit
//!   key: small values are packed exactly (a country's two letters, an ASN,
//!   an IPv4 address), everything else is hashed with FNV-1a, which is
//!   stable across builds (the profile is snapshotted). A median seller has a
//!   few dozen tallies, so scanning one contiguous vector is faster than any
//!   map and costs no per-entry allocation.
//! - **Bounded.** Each trait keeps at most [`TraitKind::capacity`] values;
//!   when full, the least recently seen one goes. Values not seen for the
//!   configured horizon (default 180 days) age out entirely.
//! - **Days, not seconds.** Last-seen is kept in whole days since the epoch:
//!   enough for ageing and for "seen in the last week" questions.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::enrich::Enrichment;
use crate::event::Event;
use crate::types::NetworkPrefix;

/// Default history horizon: values unseen for longer are forgotten.
pub const DEFAULT_HORIZON_DAYS: u32 = 180;

/// The traits a profile counts, finest first within each family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum TraitKind {
    Ip = 0,
    Network = 1,
    Asn = 2,
    Country = 3,
    City = 4,
    UserAgent = 5,
    Browser = 6,
    Os = 7,
    DeviceType = 8,
    Device = 9,
}

impl TraitKind {
    pub const ALL: [TraitKind; 10] = [
        TraitKind::Ip,
        TraitKind::Network,
        TraitKind::Asn,
        TraitKind::Country,
        TraitKind::City,
        TraitKind::UserAgent,
        TraitKind::Browser,
        TraitKind::Os,
        TraitKind::DeviceType,
        TraitKind::Device,
    ];

    /// Most values of this trait one profile keeps.
    pub const fn capacity(self) -> usize {
        match self {
            TraitKind::Ip => 8,
            TraitKind::Network | TraitKind::Device => 6,
            TraitKind::Asn | TraitKind::City | TraitKind::UserAgent => 4,
            TraitKind::Country | TraitKind::Browser | TraitKind::Os => 3,
            TraitKind::DeviceType => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TraitKind::Ip => "ip",
            TraitKind::Network => "network",
            TraitKind::Asn => "asn",
            TraitKind::Country => "country",
            TraitKind::City => "city",
            TraitKind::UserAgent => "user_agent",
            TraitKind::Browser => "browser",
            TraitKind::Os => "os",
            TraitKind::DeviceType => "device_type",
            TraitKind::Device => "device",
        }
    }
}

/// A stable 64-bit hash of `bytes`, seeded by the trait so that equal
/// strings of different traits get different keys.
pub fn stable_hash(kind: TraitKind, bytes: &[u8]) -> u64 {
    stable_hash_parts(kind, &[bytes])
}

/// [`stable_hash`] of the parts joined by `/`, without building the string.
///
/// Eight bytes at a time, FxHash-style (rotate, xor, multiply), then a
/// final avalanche: several times faster than byte-wise FNV on user agents.
/// The function is fixed forever: snapshots keep these keys.
pub fn stable_hash_parts(kind: TraitKind, parts: &[&[u8]]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ (kind as u64);
    let mut mix = |word: u64| hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            mix(u64::from(b'/'));
        }
        let mut chunks = part.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        // The length byte keeps "ab" + "" apart from "a" + "b".
        mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59) ^ (part.len() as u64));
    }
    // Avalanche (from MurmurHash3's finalizer) so every input bit moves the
    // high bits too; then keep hashed keys apart from packed ones.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash | (1 << 63)
}

/// The trait values of one login, computed once per event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginTraits {
    keys: [Option<u64>; 10],
}

impl LoginTraits {
    pub fn of(event: &Event) -> LoginTraits {
        let mut keys = [None; 10];
        let enrichment: &Enrichment = &event.enrichment;
        if let Some(ip) = event.ip {
            keys[TraitKind::Ip as usize] = Some(match ip {
                IpAddr::V4(v4) => u64::from(u32::from(v4)),
                IpAddr::V6(v6) => stable_hash(TraitKind::Ip, &v6.octets()),
            });
            let network = NetworkPrefix::of(ip);
            keys[TraitKind::Network as usize] = Some(match network.ip() {
                IpAddr::V4(v4) => u64::from(u32::from(v4)),
                IpAddr::V6(v6) => stable_hash(TraitKind::Network, &v6.octets()),
            });
        }
        let network = &enrichment.network;
        keys[TraitKind::Asn as usize] = network.asn.map(u64::from);
        keys[TraitKind::Country as usize] = network.country.as_deref().map(pack_code);
        keys[TraitKind::City as usize] = network.city.as_deref().map(|city| {
            let country = network.country.as_deref().unwrap_or("");
            stable_hash_parts(TraitKind::City, &[country.as_bytes(), city.as_bytes()])
        });
        keys[TraitKind::UserAgent as usize] = event
            .user_agent
            .as_deref()
            .map(|ua| stable_hash(TraitKind::UserAgent, ua.as_bytes()));
        let client = &enrichment.client;
        keys[TraitKind::Browser as usize] = client.browser.as_deref().map(|b| {
            let version = client.browser_version.as_deref().unwrap_or("");
            stable_hash_parts(TraitKind::Browser, &[b.as_bytes(), version.as_bytes()])
        });
        keys[TraitKind::Os as usize] = client.os.as_deref().map(|os| {
            let version = client.os_version.as_deref().unwrap_or("");
            stable_hash_parts(TraitKind::Os, &[os.as_bytes(), version.as_bytes()])
        });
        if client.device_type != crate::enrich::DeviceType::Unknown {
            keys[TraitKind::DeviceType as usize] = Some(client.device_type as u64 + 1);
        }
        keys[TraitKind::Device as usize] = event
            .device_id
            .as_deref()
            .map(|d| stable_hash(TraitKind::Device, d.as_bytes()));
        LoginTraits { keys }
    }

    /// Traits given directly as keys (tests, simulations).
    pub fn with(pairs: &[(TraitKind, u64)]) -> LoginTraits {
        let mut traits = LoginTraits::default();
        for (kind, key) in pairs {
            traits.keys[*kind as usize] = Some(*key);
        }
        traits
    }

    pub fn get(&self, kind: TraitKind) -> Option<u64> {
        self.keys[kind as usize]
    }
}

/// Packs a short code (country) into a key, exactly and reversibly.
fn pack_code(code: &str) -> u64 {
    code.bytes().take(7).fold(0u64, |acc, b| {
        (acc << 8) | u64::from(b.to_ascii_uppercase())
    })
}

/// Unpacks [`pack_code`].
pub fn unpack_code(key: u64) -> String {
    key.to_be_bytes()
        .iter()
        .filter(|b| **b != 0)
        .map(|b| *b as char)
        .collect()
}

/// Most tallies a profile holds: the sum of the traits' capacities.
pub const MAX_TALLIES: usize = {
    let mut total = 0;
    let mut i = 0;
    while i < TraitKind::ALL.len() {
        total += TraitKind::ALL[i].capacity();
        i += 1;
    }
    total
};

/// Per-trait counts of one login against a profile, see
/// [`BehaviourProfile::lookup`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraitCounts {
    count: [u32; 10],
    observed: [u32; 10],
}

impl TraitCounts {
    pub fn count(&self, kind: TraitKind) -> u32 {
        self.count[kind as usize]
    }

    pub fn observed(&self, kind: TraitKind) -> u32 {
        self.observed[kind as usize]
    }
}

/// One counted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub kind: TraitKind,
    pub key: u64,
    pub count: u32,
    /// Days since the Unix epoch.
    pub last_day: u16,
}

/// Days since the epoch for a time in seconds, clamped to `u16`.
pub fn day_of(at: i64) -> u16 {
    at.div_euclid(86_400).clamp(0, i64::from(u16::MAX)) as u16
}

/// Counts of an account's login traits, and its login totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BehaviourProfile {
    tallies: Vec<Tally>,
    /// Successful logins counted in the tallies (after ageing).
    logins: u32,
}

impl BehaviourProfile {
    /// Successful logins the profile has counted.
    pub fn logins(&self) -> u32 {
        self.logins
    }

    /// How often this account logged in with `key` as its `kind`.
    pub fn count(&self, kind: TraitKind, key: u64) -> u32 {
        self.tallies
            .iter()
            .find(|t| t.kind == kind && t.key == key)
            .map_or(0, |t| t.count)
    }

    /// Logins that carried any value of `kind` (the denominator for it).
    pub fn observed(&self, kind: TraitKind) -> u32 {
        self.tallies
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.count)
            .sum()
    }

    /// For each trait, in one pass: how often the account used this login's
    /// value (`count`) and how many logins carried any value (`observed`).
    pub fn lookup(&self, traits: &LoginTraits) -> TraitCounts {
        let mut counts = TraitCounts::default();
        for t in &self.tallies {
            let k = t.kind as usize;
            counts.observed[k] += t.count;
            if traits.keys[k] == Some(t.key) {
                counts.count[k] = t.count;
            }
        }
        counts
    }

    /// Distinct values of `kind` remembered.
    pub fn distinct(&self, kind: TraitKind) -> usize {
        self.tallies.iter().filter(|t| t.kind == kind).count()
    }

    pub fn tallies(&self, kind: TraitKind) -> impl Iterator<Item = &Tally> {
        self.tallies.iter().filter(move |t| t.kind == kind)
    }

    /// Counts one successful login; forgets what is older than the horizon.
    pub fn record(&mut self, traits: &LoginTraits, at: i64, horizon_days: u32) {
        let today = day_of(at);
        self.age(today, horizon_days);
        self.logins = self.logins.saturating_add(1);
        for kind in TraitKind::ALL {
            let Some(key) = traits.get(kind) else {
                continue;
            };
            if let Some(t) = self
                .tallies
                .iter_mut()
                .find(|t| t.kind == kind && t.key == key)
            {
                t.count = t.count.saturating_add(1);
                t.last_day = t.last_day.max(today);
                continue;
            }
            if self.distinct(kind) >= kind.capacity()
                && let Some(oldest) = self
                    .tallies
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.kind == kind)
                    .min_by_key(|(_, t)| (t.last_day, t.count))
                    .map(|(i, _)| i)
            {
                self.tallies.swap_remove(oldest);
            }
            if self.tallies.len() == self.tallies.capacity() {
                // Grow a few slots at a time, never past the bound: doubling
                // would leave most profiles with half their memory unused.
                let room = MAX_TALLIES.saturating_sub(self.tallies.len()).clamp(1, 4);
                self.tallies.reserve_exact(room);
            }
            self.tallies.push(Tally {
                kind,
                key,
                count: 1,
                last_day: today,
            });
        }
    }

    /// Drops values not seen within `horizon_days` of `today`, and lowers the
    /// login total by the logins they held (of the trait that every login
    /// with an address carries, the IP, or else the most counted trait).
    fn age(&mut self, today: u16, horizon_days: u32) {
        let cutoff = i64::from(today) - i64::from(horizon_days);
        if !self.tallies.iter().any(|t| i64::from(t.last_day) < cutoff) {
            return;
        }
        self.tallies.retain(|t| i64::from(t.last_day) >= cutoff);
        let remaining = TraitKind::ALL
            .iter()
            .map(|k| self.observed(*k))
            .max()
            .unwrap_or(0);
        self.logins = self.logins.min(remaining);
    }

    /// Bytes this profile occupies, inline and on the heap.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.tallies.capacity() * std::mem::size_of::<Tally>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traits(pairs: &[(TraitKind, u64)]) -> LoginTraits {
        LoginTraits::with(pairs)
    }

    #[test]
    fn counts_values_and_evicts_the_least_recently_seen() {
        let mut p = BehaviourProfile::default();
        let day = 86_400;
        for i in 0..10u64 {
            p.record(
                &traits(&[(TraitKind::Ip, i), (TraitKind::Country, 1)]),
                i as i64 * day,
                180,
            );
        }
        assert_eq!(p.logins(), 10);
        assert_eq!(p.count(TraitKind::Country, 1), 10);
        assert_eq!(p.distinct(TraitKind::Ip), TraitKind::Ip.capacity());
        assert_eq!(p.count(TraitKind::Ip, 0), 0, "oldest address evicted");
        assert_eq!(p.count(TraitKind::Ip, 9), 1);
    }

    #[test]
    fn memory_stays_under_a_kibibyte_whatever_the_history() {
        let mut p = BehaviourProfile::default();
        for i in 0..1_000u64 {
            let all: Vec<(TraitKind, u64)> = TraitKind::ALL.iter().map(|k| (*k, i)).collect();
            p.record(&LoginTraits::with(&all), i as i64 * 3_600, 180);
        }
        assert_eq!(MAX_TALLIES, 44);
        assert_eq!(
            TraitKind::ALL.map(|k| p.distinct(k)).iter().sum::<usize>(),
            MAX_TALLIES
        );
        assert!(p.memory_bytes() <= 1024, "{} bytes", p.memory_bytes());
        // The ceiling BENCHMARKS.md gives: 32 bytes inline and 16 per tally,
        // grown a few slots at a time but never past the cap.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(
            (
                std::mem::size_of::<BehaviourProfile>(),
                std::mem::size_of::<Tally>(),
                p.memory_bytes()
            ),
            (32, 16, 32 + 44 * 16)
        );
    }

    #[test]
    fn history_older_than_the_horizon_ages_out() {
        let mut p = BehaviourProfile::default();
        let day = 86_400;
        for i in 0..5 {
            p.record(
                &traits(&[(TraitKind::Ip, 1), (TraitKind::Device, 7)]),
                i * day,
                30,
            );
        }
        p.record(&traits(&[(TraitKind::Ip, 2)]), 100 * day, 30);
        assert_eq!(p.count(TraitKind::Ip, 1), 0);
        assert_eq!(p.count(TraitKind::Device, 7), 0);
        assert_eq!(p.logins(), 1);
    }

    #[test]
    fn codes_pack_reversibly_and_hashes_are_stable() {
        assert_eq!(unpack_code(pack_code("gb")), "GB");
        // Golden value, checked against an independent reimplementation: the
        // function must never change, since snapshots keep these keys.
        assert_eq!(
            stable_hash(TraitKind::Device, b"laptop-1"),
            0x9ceb_81c9_a5d1_82f2
        );
        assert_ne!(
            stable_hash_parts(TraitKind::Browser, &[b"ab", b""]),
            stable_hash_parts(TraitKind::Browser, &[b"a", b"b"])
        );
        assert_ne!(
            stable_hash(TraitKind::Device, b"laptop-1"),
            stable_hash(TraitKind::UserAgent, b"laptop-1")
        );
    }
}
