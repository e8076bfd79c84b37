//! Where and on what a session or device was last seen, per account: the
//! facts behind the session-theft features.
//!
//! A stolen session cookie or a cloned device id does not log in: it acts
//! inside a session the owner opened, from the attacker's machine. What
//! gives it away is that the same session or device shows up somewhere it
//! cannot be (two countries, hundreds of km apart, minutes apart), or on a
//! browser or operating system it was never enrolled with, or at an hour
//! the owner never works. This module keeps, small and bounded, what those
//! questions need:
//!
//! - [`Place`]: the last located sighting of a session or a device (time,
//!   coordinates, country, ASN);
//! - [`KnownDevices`]: per device id the account used, the browser and OS
//!   *families* it was enrolled with (families, not versions: a browser
//!   update is not a new platform) and its last place;
//! - [`ActivityHours`]: how the account's own activity spreads over the
//!   hours of the day;
//! - [`SessionPace`]: how fast the account usually acts once logged in.
//!
//! Everything here is updated from event facts only, in
//! [`crate::AccountState::apply`], so a replay of the log rebuilds it.

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventType};
use crate::profile::{TraitKind, stable_hash_parts};

/// Device ids remembered per account with their platform.
pub const MAX_KNOWN_DEVICES: usize = 16;
/// Activity is counted in hours of the day until this many events; then
/// every count is halved, so the profile follows a seller whose hours
/// change and never overflows.
pub const MAX_ACTIVITY_COUNT: u32 = 2_048;
/// Below this many counted events the account has no usual hours yet.
pub const MIN_ACTIVITY_FOR_HOURS: u32 = 30;

/// A located sighting: when, where (from the address's geolocation), and
/// on which country and network. 24 bytes: sessions and devices each keep
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub at: i64,
    pub latitude: f32,
    pub longitude: f32,
    /// Autonomous system number; 0 when unknown (no AS uses 0).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub asn: u32,
    /// The country's two letters packed into a number; 0 when unknown.
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub country: u16,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

impl Place {
    /// Where the event comes from, if its address was located.
    pub fn of(event: &Event) -> Option<Place> {
        let network = &event.enrichment.network;
        Some(Place {
            at: event.unix_time(),
            latitude: network.latitude? as f32,
            longitude: network.longitude? as f32,
            asn: network.asn.unwrap_or(0),
            country: network.country.as_deref().map_or(0, pack_country),
        })
    }
}

fn pack_country(code: &str) -> u16 {
    code.bytes().take(2).fold(0u16, |acc, b| {
        (acc << 8) | u16::from(b.to_ascii_uppercase())
    })
}

/// The browser and OS families of a client, hashed; 0 when unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub browser: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub os: u32,
}

impl Platform {
    /// The families the event's user agent reports (its enrichment).
    /// `Other`, what the user-agent parser answers for a client it does
    /// not know (a platform's own back end sending events on the seller's
    /// behalf), is unknown, not a family.
    pub fn of(event: &Event) -> Platform {
        let family = |kind: TraitKind, name: &Option<String>| {
            let known = name.as_deref().filter(|n| !n.eq_ignore_ascii_case("other"));
            known.map_or(0, |n| {
                // Never 0, which means unknown.
                (stable_hash_parts(kind, &[b"family", n.as_bytes()]) as u32).max(1)
            })
        };
        let client = &event.enrichment.client;
        Platform {
            browser: family(TraitKind::Browser, &client.browser),
            os: family(TraitKind::Os, &client.os),
        }
    }

    pub fn is_unknown(&self) -> bool {
        *self == Platform::default()
    }

    /// Whether `other` reports a different browser or OS family; a family
    /// unknown on either side is not a difference.
    pub fn differs_from(&self, other: &Platform) -> bool {
        let differs = |a: u32, b: u32| a != 0 && b != 0 && a != b;
        differs(self.browser, other.browser) || differs(self.os, other.os)
    }

    /// Fills the families still unknown from `other`.
    fn fill_from(&mut self, other: &Platform) {
        if self.browser == 0 {
            self.browser = other.browser;
        }
        if self.os == 0 {
            self.os = other.os;
        }
    }
}

/// The key a device id is remembered by in [`KnownDevices`]; never 0 (the
/// hash sets its top bit), which sessions use for "no device".
pub fn device_hash(device_id: &str) -> u64 {
    stable_hash_parts(TraitKind::Device, &[b"known-device", device_id.as_bytes()])
}

/// One device id the account used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KnownDevice {
    /// [`device_hash`] of the device id.
    pub device: u64,
    /// The platform it was enrolled with: its first sighting, filled in
    /// where that was unknown, replaced only by a passed verification in a
    /// session on the device.
    pub platform: Platform,
    pub first_seen: i64,
    pub last_seen: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_place: Option<Place>,
}

/// The device ids an account used, at most [`MAX_KNOWN_DEVICES`]; the
/// least recently seen goes first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KnownDevices {
    entries: Vec<KnownDevice>,
}

impl KnownDevices {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, device: u64) -> Option<&KnownDevice> {
        self.entries.iter().find(|d| d.device == device)
    }

    /// The known device the event presents, if any.
    pub fn of_event(&self, event: &Event) -> Option<&KnownDevice> {
        self.get(device_hash(event.device_id.as_deref()?))
    }

    /// Records a sighting of the event's device: enrols it with the event's
    /// platform if new, fills in families still unknown, moves its place.
    pub fn observe(&mut self, event: &Event) {
        let Some(device_id) = event.device_id.as_deref() else {
            return;
        };
        let device = device_hash(device_id);
        let at = event.unix_time();
        let place = Place::of(event);
        if let Some(known) = self.entries.iter_mut().find(|d| d.device == device) {
            // Hashing the families costs more than the rest of a sighting:
            // only when one is still unknown.
            if known.platform.browser == 0 || known.platform.os == 0 {
                known.platform.fill_from(&Platform::of(event));
            }
            known.last_seen = known.last_seen.max(at);
            if place.is_some() {
                known.last_place = place;
            }
            return;
        }
        if self.entries.len() >= MAX_KNOWN_DEVICES
            && let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, d)| d.last_seen)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
        }
        // Grown one at a time, as the sets of `RecentSet::observe` are.
        self.entries.reserve_exact(1);
        self.entries.push(KnownDevice {
            device,
            platform: Platform::of(event),
            first_seen: at,
            last_seen: at,
            last_place: place,
        });
    }

    /// Enrols a known device again with `platform`: the owner proved the
    /// new platform is theirs.
    pub fn re_enrol(&mut self, device: u64, platform: Platform) {
        if let Some(known) = self.entries.iter_mut().find(|d| d.device == device) {
            known.platform = platform;
        }
    }
}

/// The account's own activity by hour of the day (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityHours {
    counts: [u16; 24],
}

impl ActivityHours {
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    pub fn total(&self) -> u32 {
        self.counts.iter().map(|c| u32::from(*c)).sum()
    }

    /// Counts the event if the seller did it: logins, changes, payouts and
    /// loans. Sales are the buyers' hours; verifications, labels and
    /// analysts' actions are the platform's.
    pub fn record(&mut self, event: &Event) {
        let counted = match event.event_type {
            EventType::Sale
            | EventType::Verification
            | EventType::Label
            | EventType::AnalystAction
            | EventType::Logout => false,
            EventType::Login => matches!(
                event.details,
                crate::event::Details::Login {
                    status: crate::event::LoginStatus::Success,
                    ..
                }
            ),
            _ => true,
        };
        if !counted {
            return;
        }
        if self.total() >= MAX_ACTIVITY_COUNT {
            for c in &mut self.counts {
                *c /= 2;
            }
        }
        let hour = hour_of(event.unix_time());
        self.counts[hour] = self.counts[hour].saturating_add(1);
    }

    /// The share of the account's counted activity within an hour of the
    /// time of day `at` (three hours of 24); `None` while the account has
    /// fewer than [`MIN_ACTIVITY_FOR_HOURS`] counted events.
    pub fn share_near(&self, at: i64) -> Option<f64> {
        let total = self.total();
        if total < MIN_ACTIVITY_FOR_HOURS {
            return None;
        }
        let hour = hour_of(at);
        let near: u32 = [23, 0, 1]
            .iter()
            .map(|d| u32::from(self.counts[(hour + d) % 24]))
            .sum();
        Some(f64::from(near) / f64::from(total))
    }
}

/// Acts in sessions whose login was seen before the account has a usual
/// pace.
pub const MIN_ACTS_FOR_PACE: u16 = 5;
/// The usual pace follows the last this many acts or so (the weight of a
/// new act never falls below its inverse).
const PACE_MEMORY: u16 = 32;

/// How fast the account usually acts once logged in: a running geometric
/// mean of its sessions' act rates (the session's acts so far per hour
/// since its login, taken at each act), learnt only from sessions that were
/// not risky. A phishing kit's script changes the bank details and asks for
/// a payout within a minute or two of the login; a seller who does the
/// same is an exception, one that this account's own history tells. 4 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionPace {
    /// Mean of the natural log of acts per hour.
    log_rate: f32,
    acts: u16,
}

impl SessionPace {
    pub fn is_empty(&self) -> bool {
        self.acts == 0
    }

    /// Acts per hour of a session that did `acts` acts (this one included)
    /// in `since_login` seconds; under a minute counts as a minute.
    pub fn rate(acts: u16, since_login: i64) -> f64 {
        f64::from(acts) * 3_600.0 / since_login.max(60) as f64
    }

    /// How many times the account's usual pace `rate` is; `None` until the
    /// account has [`MIN_ACTS_FOR_PACE`] acts learnt.
    pub fn ratio(&self, rate: f64) -> Option<f64> {
        (self.acts >= MIN_ACTS_FOR_PACE && rate > 0.0)
            .then(|| (rate.ln() - f64::from(self.log_rate)).exp())
    }

    /// Learns an act of an ordinary session at `rate`.
    pub fn record(&mut self, rate: f64) {
        if rate <= 0.0 || !rate.is_finite() {
            return;
        }
        self.acts = self.acts.saturating_add(1);
        let weight = 1.0 / f64::from(self.acts.min(PACE_MEMORY));
        let mean = f64::from(self.log_rate);
        self.log_rate = (mean + weight * (rate.ln() - mean)) as f32;
    }
}

fn hour_of(at: i64) -> usize {
    (at.rem_euclid(86_400) / 3_600) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_pace_is_a_geometric_mean_learnt_after_five_acts() {
        // An act 30 minutes after the login: 2 acts an hour.
        assert_eq!(SessionPace::rate(1, 1_800), 2.0);
        // Two acts within 20 seconds count as within a minute: 120 an hour.
        assert_eq!(SessionPace::rate(2, 20), 120.0);
        let mut pace = SessionPace::default();
        for rate in [2.0, 8.0, 2.0, 8.0] {
            pace.record(rate);
        }
        assert_eq!(pace.ratio(4.0), None, "four acts are not a habit yet");
        pace.record(4.0);
        // The geometric mean of 2, 8, 2, 8, 4 is 4.
        let usual = pace.ratio(4.0).expect("five acts");
        assert!((usual - 1.0).abs() < 1e-5, "{usual}");
        let script = pace.ratio(120.0).expect("five acts");
        assert!((script - 30.0).abs() < 1e-3, "{script}");
        // Nothing absurd is learnt.
        pace.record(0.0);
        pace.record(f64::NAN);
        assert!((pace.ratio(4.0).expect("five acts") - 1.0).abs() < 1e-5);
    }

    #[test]
    fn families_are_compared_not_versions_and_unknown_is_no_difference() {
        let chrome_win = Platform { browser: 1, os: 2 };
        assert!(!chrome_win.differs_from(&chrome_win));
        assert!(chrome_win.differs_from(&Platform { browser: 3, os: 2 }));
        assert!(chrome_win.differs_from(&Platform { browser: 1, os: 4 }));
        assert!(!chrome_win.differs_from(&Platform::default()));
    }

    #[test]
    fn a_client_the_parser_does_not_know_has_no_family() {
        let event = |browser: &str| {
            crate::tests::event(serde_json::json!({"event_id": "e", "type": "payout",
                "account_id": "a", "time": "2018-05-16T09:30:00Z", "payout_id": "p", "amount": 1,
                "currency": "GBP", "enrichment": {"client": {"browser": browser, "os": "Other"}}}))
        };
        assert!(Platform::of(&event("Other")).is_unknown());
        assert_ne!(Platform::of(&event("Firefox")).browser, 0);
    }

    #[test]
    fn hours_share_needs_history_and_wraps_around_midnight() {
        let mut hours = ActivityHours::default();
        assert_eq!(hours.share_near(0), None);
        for _ in 0..40 {
            hours.counts[23] += 1;
        }
        assert_eq!(hours.share_near(0), Some(1.0), "23:00 is near midnight");
        assert_eq!(hours.share_near(12 * 3_600), Some(0.0));
    }
}
