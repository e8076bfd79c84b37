//! Seller login histories with attackers mixed in, for evaluating the
//! login-risk model: [`generate`] returns a time-ordered stream of events,
//! each tagged (outside the event) as legitimate or as an attack by one of
//! three attacker models.
//!
//! Every event is a version 1 event as the API accepts it (`login` with
//! `status` success or failure, `password_reset_request`, `password_change`
//! with `reason: "reset"`), with `session_id`, `ip`, `user_agent` and
//! `device_id`, plus a top-level `enrichment` object: the serialized
//! [`custos_core::Enrichment`] that the enrichment adapters would compute for
//! its address and user agent. The network facts come from the synthetic
//! internet of `world`, the client facts from `clients`; both are functions
//! of the address and the string alone, as a database lookup would be.
//!
//! # Legitimate sellers
//!
//! Each seller has, independently drawn:
//!
//! - **A home**: a country (weighted towards GB, DE, FR, IT, ES, NL, US), a
//!   city, and a residential ISP there. The home address is static for 20%
//!   of sellers; for the others it changes every four weeks or so (mean 28
//!   days): 60% of changes stay in the same /24, the rest move within the
//!   ISP's pool for the city (the same /16 or /20).
//! - **An office** for 30% of sellers: a fixed address of a residential ISP
//!   in the same city, used on weekdays between 8:00 and 18:00 local time,
//!   often from a desktop that stays there.
//! - **Devices**, each with a stable `device_id`: a computer (95%), a second
//!   one for some, a phone used for logins (80%), a tablet (12%), each with
//!   its own browser and update lag (see `clients`). A computer is
//!   replaced about every three years, a phone every two, a tablet every
//!   three and a half (a new `device_id` and user agent). Browsers on
//!   computers and tablets lose their `device_id` (cookies cleared) on 0.3%
//!   of logins, and on 30% for the 8% of sellers who use private windows or
//!   clear cookies habitually.
//! - **Phones on a mobile carrier** of the home country: a new address for
//!   every login more than two hours after the last one, out of a few /16s
//!   or, for 35% of logins where the carrier has it, IPv6; at home a phone
//!   uses the home Wi-Fi a third of the time. Abroad, phones keep their home
//!   carrier's addresses (roaming traffic is routed home), as they do in
//!   reality.
//! - **A login rate** drawn from a log-normal distribution: median 0.4 a day,
//!   with sellers from several a day down to one or two a month; fewer at
//!   weekends and while travelling. Times of day cluster around a personal
//!   peak (morning, midday or evening), in the seller's time zone.
//! - **Travel** for 65% of sellers, a trip every one to five months of two to
//!   a dozen days: 55% to another city of the home country, the others
//!   abroad (holiday countries weighted up). On a trip computers and tablets
//!   use the hotel's network (a residential ISP of the destination), now and
//!   then the phone's connection.
//! - **A VPN** for 4% of sellers, privacy-minded: all computer and tablet
//!   logins and 40% of phone logins go through one hosting/VPN provider,
//!   usually with an exit in the home country, each time from a different
//!   address.
//! - **Typos**: 45% use a password manager and almost never mistype
//!   (0.5% of logins); the others fail 2–10% of logins once or twice, from
//!   the same device and address, before succeeding seconds later.
//! - **Forgotten passwords**, only for those without a password manager, more
//!   likely the longer since the last login: one to three failed logins, a
//!   `password_reset_request`, a `password_change` with `reason: "reset"`
//!   minutes later (from the same device 65% of the time, otherwise from the
//!   phone that got the e-mail), then a successful login.
//!
//! # Attackers
//!
//! After `warmup_days`, each attacker model makes `attacks_per_model`
//! successful logins, each at a uniformly random time (attackers keep no
//! office hours) on a uniformly random victim who has logged in before,
//! each with its own session and a new `device_id`. The models are those of
//! Wiefling et al., "What's in Score for Website Users: A Data-driven Long-term
//! Study on Risk-based Authentication Characteristics" (2021):
//!
//! - [`AttackerModel::Naive`]: an address of a random network (residential,
//!   mobile or hosting) of a uniformly random country of the world, and a
//!   random browser and OS.
//! - [`AttackerModel::Vpn`]: an address of a hosting/VPN provider in the
//!   victim's home country, and a random browser and OS.
//! - [`AttackerModel::Targeted`]: an address of a residential ISP in the
//!   victim's home city (never an address the victim used), and the victim's
//!   most used browser and platform, on current versions.
//!
//! Attacks are marked only in [`LoginSample::kind`]: their events look like
//! any other (identifiers are drawn from the same generators, event ids are
//! numbered in time order).
//!
//! # Determinism
//!
//! Every account and every attacker model draws from its own random stream
//! derived from the seed, and events are sorted by time with ties broken by
//! account and order of generation, so a configuration always produces the
//! same events.

use std::collections::HashSet;
use std::net::IpAddr;

use custos_core::Enrichment;
use serde_json::{Map, Value, json};

use crate::clients::{Browser, COMBOS, Client, DeviceClass, Platform};
use crate::rng::Rng;
use crate::world::{Addr, COUNTRIES, World};

/// 2018-01-01T00:00:00Z, day 0 of every world.
pub const START: i64 = 1_514_764_800;
pub const DAY: i64 = 86_400;

/// The longest history generated: a century.
pub const MAX_DAYS: u32 = 36_525;

/// Sizes of a generated world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginWorldConfig {
    pub accounts: usize,
    /// Length of the history, from 2018-01-01; at most [`MAX_DAYS`]
    /// (longer is cut to it).
    pub days: u32,
    pub seed: u64,
    /// Attack logins made by each attacker model.
    pub attacks_per_model: usize,
    /// Days at the start without attacks, for profiles to form.
    pub warmup_days: u32,
}

impl Default for LoginWorldConfig {
    fn default() -> Self {
        LoginWorldConfig {
            accounts: 2_000,
            days: 180,
            seed: 1,
            attacks_per_model: 500,
            warmup_days: 60,
        }
    }
}

/// The attacker models of Wiefling et al.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttackerModel {
    /// Anywhere in the world, any browser.
    Naive,
    /// A hosting/VPN address in the victim's country, any browser.
    Vpn,
    /// A residential address in the victim's city, the victim's browser.
    Targeted,
}

impl AttackerModel {
    pub const ALL: [AttackerModel; 3] = [
        AttackerModel::Naive,
        AttackerModel::Vpn,
        AttackerModel::Targeted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AttackerModel::Naive => "naive",
            AttackerModel::Vpn => "vpn",
            AttackerModel::Targeted => "targeted",
        }
    }
}

/// Who produced an event: the ground truth of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleKind {
    Legit,
    Attack(AttackerModel),
}

/// One generated event and who produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginSample {
    /// The event as sent to the API, with its `enrichment`.
    pub event: Value,
    pub kind: SampleKind,
}

/// The ASNs of the synthetic world's hosting, datacenter and VPN providers,
/// to configure as hosting networks when evaluating on generated events.
pub fn hosting_asns() -> Vec<u32> {
    World::build().hosting_asns()
}

/// Generates the events of `config.accounts` sellers over `config.days`
/// days with the attacks mixed in, ordered by time.
pub fn generate(config: &LoginWorldConfig) -> Vec<LoginSample> {
    let config = &LoginWorldConfig {
        days: config.days.min(MAX_DAYS),
        warmup_days: config.warmup_days.min(MAX_DAYS),
        ..config.clone()
    };
    let world = World::build();
    let end = START + i64::from(config.days) * DAY;
    let mut drafts = Vec::new();
    let mut histories = Vec::with_capacity(config.accounts);
    for account in 0..config.accounts {
        let mut rng = Rng::stream(config.seed, 1, account as u64);
        let mut seller = Seller::new(&world, &mut rng, account as u32);
        let mut history = History::new(seller.country, seller.city);
        seller.live(
            &world,
            &mut rng,
            0..config.days,
            end,
            &mut drafts,
            &mut history,
        );
        histories.push(history);
    }
    attack(&world, config, &histories, &mut drafts);
    drafts.sort_by_key(|d| (d.time, d.account, d.seq));
    drafts
        .into_iter()
        .enumerate()
        .map(|(index, draft)| LoginSample {
            event: render(&world, config.seed, index, &draft),
            kind: draft.kind,
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    LoginSuccess,
    LoginFailure,
    ResetRequest,
    PasswordReset,
}

/// An event before rendering: small, so sorting is cheap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Draft {
    /// Unix seconds.
    pub time: i64,
    pub account: u32,
    /// Order of generation within the account, to break ties.
    pub seq: u32,
    pub kind: SampleKind,
    pub action: Action,
    pub session: Option<u64>,
    pub addr: Addr,
    pub client: Client,
    pub device: u64,
}

/// What attackers may know about a victim.
pub(crate) struct History {
    pub country: usize,
    pub city: usize,
    /// Successful logins: time, platform and browser.
    pub logins: Vec<(i64, Platform, Browser)>,
    /// Every address the seller used.
    pub ips: HashSet<IpAddr>,
}

impl History {
    pub(crate) fn new(country: usize, city: usize) -> History {
        History {
            country,
            city,
            logins: Vec::new(),
            ips: HashSet::new(),
        }
    }

    pub(crate) fn logged_in_before(&self, time: i64) -> bool {
        self.logins.first().is_some_and(|(t, _, _)| *t < time)
    }

    /// The platform and browser of most of the successful logins before
    /// `time`; ties go to the first in [`COMBOS`] order.
    pub(crate) fn most_used_client(&self, time: i64) -> Option<(Platform, Browser)> {
        let before = self.logins.partition_point(|(t, _, _)| *t < time);
        let mut counts = vec![0usize; COMBOS.len()];
        for (_, platform, browser) in &self.logins[..before] {
            if let Some(i) = COMBOS.iter().position(|c| *c == (*platform, *browser)) {
                counts[i] += 1;
            }
        }
        let best = (0..COMBOS.len()).max_by_key(|i| (counts[*i], std::cmp::Reverse(*i)))?;
        (counts[best] > 0).then_some(COMBOS[best])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Home,
    Office,
    Trip,
}

struct Device {
    id: u64,
    client: Client,
    /// Laptops travel; desktops stay at home or at the office.
    portable: bool,
    /// A desktop that stays at the office.
    at_office: bool,
    /// Relative share of the seller's logins.
    weight: f64,
    /// The phone's mobile address and when it was last used.
    last_mobile: Option<(i64, Addr)>,
}

struct Trip {
    until_day: u32,
    hotel: Addr,
}

pub(crate) struct Seller {
    account: u32,
    pub country: usize,
    pub city: usize,
    utc_offset_minutes: i32,
    home: Addr,
    static_home: bool,
    next_home_change: f64,
    office: Option<Addr>,
    carrier: usize,
    devices: Vec<Device>,
    logins_per_day: f64,
    peak_hour: f64,
    trips_per_day: f64,
    trip: Option<Trip>,
    /// A VPN provider's pools in the exit country.
    vpn: Option<Vec<usize>>,
    /// Share of computer and tablet logins in a fresh private window or
    /// after clearing cookies: a new `device_id` each time.
    cookie_loss: f64,
    typo_rate: f64,
    forgets_passwords: bool,
    last_login_day: f64,
    seq: u32,
}

fn weighted_index(rng: &mut Rng, weights: &[f64]) -> usize {
    rng.weighted(weights)
        .expect("weights include a positive one")
}

impl Seller {
    pub(crate) fn new(world: &World, rng: &mut Rng, account: u32) -> Seller {
        let country_weights: Vec<f64> = COUNTRIES
            .iter()
            .map(|c| f64::from(c.seller_weight))
            .collect();
        let country = weighted_index(rng, &country_weights);
        let spec = &COUNTRIES[country];
        let city_weights: Vec<f64> = spec.cities.iter().map(|c| f64::from(c.weight)).collect();
        let city = weighted_index(rng, &city_weights);
        let home_pool = *rng
            .pick(world.residential_pools(country, city))
            .expect("every city has a residential pool");
        let home = world.random_in_pool(rng, home_pool);
        let office = rng.chance(0.3).then(|| {
            let pool = *rng
                .pick(world.residential_pools(country, city))
                .expect("every city has a residential pool");
            world.random_in_pool(rng, pool)
        });
        let carrier = *rng
            .pick(world.mobile_networks(country))
            .expect("every country has a mobile carrier");

        let mut devices = Vec::new();
        let mut add =
            |rng: &mut Rng, class: DeviceClass, portable: bool, at_office: bool, weight: f64| {
                devices.push(Device {
                    id: rng.next_u64(),
                    client: Client::typical(rng, class, 0.0),
                    portable,
                    at_office,
                    weight,
                    last_mobile: None,
                });
            };
        let has_computer = rng.chance(0.95);
        if has_computer {
            let (weight, portable) = (rng.uniform(1.0, 3.0), rng.chance(0.65));
            add(rng, DeviceClass::Computer, portable, false, weight);
        }
        if office.is_some() && rng.chance(0.6) {
            let weight = rng.uniform(1.0, 3.0);
            add(rng, DeviceClass::Computer, false, true, weight);
        } else if rng.chance(0.1) {
            let (weight, portable) = (rng.uniform(0.3, 1.5), rng.chance(0.5));
            add(rng, DeviceClass::Computer, portable, false, weight);
        }
        if rng.chance(0.8) || !has_computer {
            let weight = rng.uniform(0.3, 2.0);
            add(rng, DeviceClass::Phone, true, false, weight);
        }
        if rng.chance(0.12) {
            let weight = rng.uniform(0.1, 0.8);
            add(rng, DeviceClass::Tablet, true, false, weight);
        }

        let vpn = rng.chance(0.04).then(|| vpn_exit(world, rng, country));
        let uses_password_manager = rng.chance(0.45);
        let peak = *rng.pick(&[9.5, 13.0, 20.5]).expect("non-empty");
        Seller {
            account,
            country,
            city,
            utc_offset_minutes: spec.cities[city].utc_offset_minutes,
            home,
            static_home: rng.chance(0.2),
            next_home_change: rng.exponential(28.0),
            office,
            carrier,
            devices,
            logins_per_day: (0.4f64.ln() + 1.1 * rng.normal())
                .exp()
                .clamp(1.0 / 45.0, 10.0),
            peak_hour: peak + rng.normal(),
            trips_per_day: if rng.chance(0.35) {
                0.0
            } else {
                1.0 / rng.uniform(30.0, 150.0)
            },
            trip: None,
            vpn,
            cookie_loss: if rng.chance(0.08) { 0.3 } else { 0.003 },
            typo_rate: if uses_password_manager {
                0.005
            } else {
                rng.uniform(0.02, 0.10)
            },
            forgets_passwords: !uses_password_manager,
            last_login_day: 0.0,
            seq: 0,
        }
    }

    /// Logs in over `days` (counted from [`START`]), life events included.
    pub(crate) fn live(
        &mut self,
        world: &World,
        rng: &mut Rng,
        days: std::ops::Range<u32>,
        end: i64,
        drafts: &mut Vec<Draft>,
        history: &mut History,
    ) {
        let mut hours = Vec::new();
        self.last_login_day = self.last_login_day.max(f64::from(days.start));
        for day in days {
            self.new_day(world, rng, day);
            // 2018-01-01 was a Monday.
            let weekday = day % 7 < 5;
            let mut mean = self.logins_per_day * if weekday { 1.1 } else { 0.75 };
            if self.trip.is_some() {
                mean *= 0.6;
            }
            hours.clear();
            for _ in 0..rng.poisson(mean) {
                let hour = if rng.chance(0.15) {
                    rng.uniform(7.0, 24.0)
                } else {
                    self.peak_hour + 2.5 * rng.normal()
                };
                hours.push(hour.rem_euclid(24.0));
            }
            hours.sort_by(f64::total_cmp);
            for hour in &hours {
                let time = START + i64::from(day) * DAY + (hour * 3600.0) as i64
                    - i64::from(self.utc_offset_minutes) * 60;
                // Keep the history inside its days, whatever the time zone.
                if time < START || time + 3600 >= end {
                    continue;
                }
                let place = if self.trip.is_some() {
                    Place::Trip
                } else if self.office.is_some()
                    && weekday
                    && (8.0..18.0).contains(hour)
                    && rng.chance(0.75)
                {
                    Place::Office
                } else {
                    Place::Home
                };
                self.login(world, rng, time, place, drafts, history);
            }
        }
    }

    /// Life events at the start of a day: new devices, a new home address,
    /// trips.
    fn new_day(&mut self, world: &World, rng: &mut Rng, day: u32) {
        let today = f64::from(day);
        for device in &mut self.devices {
            let daily_hazard = match device.client.platform.class() {
                DeviceClass::Computer => 1.0 / 1_100.0,
                DeviceClass::Phone => 1.0 / 730.0,
                DeviceClass::Tablet => 1.0 / 1_300.0,
            };
            if rng.chance(daily_hazard) {
                let old = device.client;
                device.client = if rng.chance(0.8) {
                    let browser = if rng.chance(0.85) {
                        old.browser
                    } else {
                        Client::typical_browser(rng, old.platform)
                    };
                    Client::bought(rng, old.platform, browser, today)
                } else {
                    Client::typical(rng, old.platform.class(), today)
                };
                device.id = rng.next_u64();
                device.last_mobile = None;
            }
        }
        if !self.static_home && today >= self.next_home_change {
            self.home = if rng.chance(0.6) {
                world.neighbour(rng, self.home)
            } else {
                world.random_in_pool(rng, self.home.pool)
            };
            self.next_home_change = today + rng.exponential(28.0).max(1.0);
        }
        if self.trip.as_ref().is_some_and(|t| day >= t.until_day) {
            self.trip = None;
        }
        if self.trip.is_none() && self.trips_per_day > 0.0 && rng.chance(self.trips_per_day) {
            let (country, city) = self.destination(rng);
            let pool = *rng
                .pick(world.residential_pools(country, city))
                .expect("every city has a residential pool");
            self.trip = Some(Trip {
                until_day: day + 2 + rng.poisson(3.0).min(10),
                hotel: world.random_in_pool(rng, pool),
            });
        }
    }

    fn destination(&self, rng: &mut Rng) -> (usize, usize) {
        let home = &COUNTRIES[self.country];
        let country = if rng.chance(0.55) && home.cities.len() > 1 {
            self.country
        } else {
            let weights: Vec<f64> = COUNTRIES
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == self.country {
                        0.0
                    } else {
                        f64::from(c.travel_weight)
                    }
                })
                .collect();
            weighted_index(rng, &weights)
        };
        let weights: Vec<f64> = COUNTRIES[country]
            .cities
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if country == self.country && i == self.city {
                    0.0
                } else {
                    f64::from(c.weight)
                }
            })
            .collect();
        (country, weighted_index(rng, &weights))
    }

    /// Picks a device for a login at `place`; may fall back to another
    /// place when no device fits (a seller at the office with only a home
    /// desktop logs in from home).
    fn device_for(&self, rng: &mut Rng, place: Place) -> (usize, Place) {
        let weights: Vec<f64> = self
            .devices
            .iter()
            .map(|d| {
                let class = d.client.platform.class();
                let fit = match (place, class) {
                    (Place::Office, DeviceClass::Computer) if d.at_office => 3.0,
                    (Place::Office, DeviceClass::Computer) if d.portable => 1.0,
                    (Place::Office, DeviceClass::Computer) => 0.0,
                    (Place::Office, DeviceClass::Phone) => 0.3,
                    (Place::Office, DeviceClass::Tablet) => 0.05,
                    (Place::Home, _) if d.at_office => 0.0,
                    (Place::Home, _) => 1.0,
                    (Place::Trip, _) if !d.portable => 0.0,
                    (Place::Trip, DeviceClass::Phone) => 1.5,
                    (Place::Trip, _) => 1.0,
                };
                d.weight * fit
            })
            .collect();
        match rng.weighted(&weights) {
            Some(index) => (index, place),
            None => {
                let weights: Vec<f64> = self.devices.iter().map(|d| d.weight).collect();
                (weighted_index(rng, &weights), Place::Home)
            }
        }
    }

    /// A new address on the home carrier: IPv6 for a share of logins where
    /// the carrier has it.
    fn mobile_address(&self, world: &World, rng: &mut Rng) -> Addr {
        let pools = &world.networks[self.carrier].pools;
        let (v6, v4): (Vec<usize>, Vec<usize>) = pools.iter().partition(|p| world.is_ipv6(**p));
        let pool = if !v6.is_empty() && rng.chance(0.35) {
            *rng.pick(&v6).expect("non-empty")
        } else {
            *rng.pick(&v4).expect("carriers have IPv4 pools")
        };
        world.random_in_pool(rng, pool)
    }

    fn address(
        &mut self,
        world: &World,
        rng: &mut Rng,
        device: usize,
        place: Place,
        time: i64,
    ) -> Addr {
        let class = self.devices[device].client.platform.class();
        if let Some(pools) = &self.vpn
            && (class != DeviceClass::Phone || rng.chance(0.4))
        {
            let pool = *rng.pick(pools).expect("vpn exits have pools");
            return world.random_in_pool(rng, pool);
        }
        let mobile = match (place, class) {
            (Place::Office, DeviceClass::Phone) => rng.chance(0.5),
            (Place::Office, _) => false,
            (Place::Home, DeviceClass::Phone) => rng.chance(0.65),
            (Place::Home, _) => false,
            (Place::Trip, DeviceClass::Phone) => rng.chance(0.8),
            (Place::Trip, _) => rng.chance(0.15),
        };
        if !mobile {
            return match place {
                Place::Office => self.office.unwrap_or(self.home),
                Place::Home => self.home,
                Place::Trip => self.trip.as_ref().map_or(self.home, |t| t.hotel),
            };
        }
        if class != DeviceClass::Phone {
            // Tethering: the phone's connection, not the phone's session.
            return self.mobile_address(world, rng);
        }
        if let Some((last, addr)) = self.devices[device].last_mobile
            && time - last < 2 * 3600
        {
            self.devices[device].last_mobile = Some((time, addr));
            return addr;
        }
        let addr = self.mobile_address(world, rng);
        self.devices[device].last_mobile = Some((time, addr));
        addr
    }

    pub(crate) fn account(&self) -> u32 {
        self.account
    }

    /// One successful login from home at `time`, with the usual failures
    /// and resets before it: an account's first session.
    pub(crate) fn login_at_home(
        &mut self,
        world: &World,
        rng: &mut Rng,
        time: i64,
        drafts: &mut Vec<Draft>,
        history: &mut History,
    ) {
        self.last_login_day = (time - START) as f64 / DAY as f64;
        self.login(world, rng, time, Place::Home, drafts, history);
    }

    fn login(
        &mut self,
        world: &World,
        rng: &mut Rng,
        time: i64,
        place: Place,
        drafts: &mut Vec<Draft>,
        history: &mut History,
    ) {
        let (device, place) = self.device_for(rng, place);
        if self.devices[device].client.platform.class() != DeviceClass::Phone
            && rng.chance(self.cookie_loss)
        {
            self.devices[device].id = rng.next_u64();
        }
        let addr = self.address(world, rng, device, place, time);
        let day = (time - START) as f64 / DAY as f64;
        let gap = (day - self.last_login_day).max(0.0);
        self.last_login_day = day;
        let mut t = time;
        let forgot = self.forgets_passwords && rng.chance((0.0005 + 0.003 * gap).min(0.3));
        if forgot {
            for _ in 0..1 + rng.below(3) {
                self.push(drafts, t, Action::LoginFailure, device, addr, None);
                t += 10 + rng.below(50) as i64;
            }
            self.push(drafts, t, Action::ResetRequest, device, addr, None);
            t += 60 + rng.below(540) as i64;
            // The reset link is opened where the e-mail is read.
            let phone = self
                .devices
                .iter()
                .position(|d| d.client.platform.class() == DeviceClass::Phone);
            match phone {
                Some(phone) if phone != device && rng.chance(0.35) => {
                    let phone_addr = self.address(world, rng, phone, place, t);
                    history.ips.insert(phone_addr.ip);
                    self.push(drafts, t, Action::PasswordReset, phone, phone_addr, None);
                }
                _ => self.push(drafts, t, Action::PasswordReset, device, addr, None),
            }
            t += 20 + rng.below(100) as i64;
        } else if rng.chance(self.typo_rate) {
            let failures = if rng.chance(0.85) { 1 } else { 2 };
            for _ in 0..failures {
                self.push(drafts, t, Action::LoginFailure, device, addr, None);
                t += 5 + rng.below(35) as i64;
            }
        }
        let session = Some(rng.next_u64());
        self.push(drafts, t, Action::LoginSuccess, device, addr, session);
        let client = self.devices[device].client;
        history.logins.push((t, client.platform, client.browser));
        history.ips.insert(addr.ip);
    }

    fn push(
        &mut self,
        drafts: &mut Vec<Draft>,
        time: i64,
        action: Action,
        device: usize,
        addr: Addr,
        session: Option<u64>,
    ) {
        let device = &self.devices[device];
        drafts.push(Draft {
            time,
            account: self.account,
            seq: self.seq,
            kind: SampleKind::Legit,
            action,
            session,
            addr,
            client: device.client,
            device: device.id,
        });
        self.seq += 1;
    }
}

/// The pools of a VPN exit for a seller who always uses one: a provider
/// with an exit in the home country (70%) or anywhere it has one.
fn vpn_exit(world: &World, rng: &mut Rng, home_country: usize) -> Vec<usize> {
    let hosting = world.hosting_pools(home_country);
    let home_pool = *rng.pick(hosting).expect("every country has hosting pools");
    let network = world.pools[home_pool].network;
    if rng.chance(0.7) {
        return vec![home_pool];
    }
    let pools = &world.networks[network].pools;
    let exit_country = world.pools[*rng.pick(pools).expect("providers have pools")].country;
    pools
        .iter()
        .copied()
        .filter(|p| world.pools[*p].country == exit_country)
        .collect()
}

/// Sequence numbers of attacks start here, above any seller's own.
const ATTACK_SEQ: u32 = 1 << 31;

fn attack(
    world: &World,
    config: &LoginWorldConfig,
    histories: &[History],
    drafts: &mut Vec<Draft>,
) {
    let window_start = START + i64::from(config.warmup_days) * DAY;
    let window_end = START + i64::from(config.days) * DAY;
    if histories.is_empty() || window_start >= window_end {
        return;
    }
    let mut seq = ATTACK_SEQ;
    for (index, model) in AttackerModel::ALL.into_iter().enumerate() {
        let mut rng = Rng::stream(config.seed, 2 + index as u64, 0);
        for _ in 0..config.attacks_per_model {
            let time = window_start + rng.below((window_end - window_start) as u64) as i64;
            let mut victim = rng.below(histories.len() as u64) as usize;
            for _ in 0..100 {
                if histories[victim].logged_in_before(time) {
                    break;
                }
                victim = rng.below(histories.len() as u64) as usize;
            }
            let history = &histories[victim];
            let day = (time - START) as f64 / DAY as f64;
            let (addr, client) = match model {
                AttackerModel::Naive => {
                    let country = rng.below(COUNTRIES.len() as u64) as usize;
                    let pool = *rng
                        .pick(world.pools_in_country(country))
                        .expect("every country has pools");
                    (
                        world.random_in_pool(&mut rng, pool),
                        Client::random(&mut rng, day),
                    )
                }
                AttackerModel::Vpn => {
                    let pool = *rng
                        .pick(world.hosting_pools(history.country))
                        .expect("every country has hosting pools");
                    (
                        world.random_in_pool(&mut rng, pool),
                        Client::random(&mut rng, day),
                    )
                }
                AttackerModel::Targeted => {
                    let pools = world.residential_pools(history.country, history.city);
                    // Any address but the victim's own; a few tries always
                    // find one, as pools hold thousands.
                    let mut addr = None;
                    for _ in 0..1_000 {
                        let pool = *rng.pick(pools).expect("every city has a residential pool");
                        let candidate = world.random_in_pool(&mut rng, pool);
                        addr = Some(candidate);
                        if !history.ips.contains(&candidate.ip) {
                            break;
                        }
                    }
                    let addr = addr.expect("at least one address was drawn");
                    let (platform, browser) = history
                        .most_used_client(time)
                        .unwrap_or_else(|| *rng.pick(COMBOS).expect("combos exist"));
                    (addr, Client::current(&mut rng, platform, browser, day))
                }
            };
            drafts.push(Draft {
                time,
                account: victim as u32,
                seq,
                kind: SampleKind::Attack(model),
                action: Action::LoginSuccess,
                session: Some(rng.next_u64()),
                addr,
                client,
                device: rng.next_u64(),
            });
            seq += 1;
        }
    }
}

pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .expect("generated times are years from the edges of the supported range")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc 3339 formats any time of these years")
}

fn render(world: &World, seed: u64, index: usize, draft: &Draft) -> Value {
    let mut event = Map::new();
    event.insert("event_id".into(), json!(format!("evt-{seed:x}-{index:07}")));
    event.insert(
        "account_id".into(),
        json!(format!("seller-{:05}", draft.account)),
    );
    event.insert("time".into(), json!(rfc3339(draft.time)));
    let event_type = match draft.action {
        Action::LoginSuccess | Action::LoginFailure => "login",
        Action::ResetRequest => "password_reset_request",
        Action::PasswordReset => "password_change",
    };
    event.insert("type".into(), json!(event_type));
    match draft.action {
        Action::LoginSuccess => {
            event.insert("status".into(), json!("success"));
        }
        Action::LoginFailure => {
            event.insert("status".into(), json!("failure"));
            event.insert("failure_reason".into(), json!("wrong_password"));
        }
        Action::ResetRequest => {}
        Action::PasswordReset => {
            event.insert("reason".into(), json!("reset"));
        }
    }
    insert_context(world, draft, &mut event);
    Value::Object(event)
}

/// The fields every event made in a session carries: `session_id`, `ip`,
/// `user_agent`, `device_id`, and the `enrichment` that Custos's adapters
/// would compute for that address and user agent.
pub(crate) fn insert_context(world: &World, draft: &Draft, event: &mut Map<String, Value>) {
    let day = (draft.time - START) as f64 / DAY as f64;
    let user_agent = draft.client.user_agent(day);
    let enrichment = Enrichment {
        network: world.network_info(draft.addr.pool),
        client: user_agent.info,
    };
    if let Some(session) = draft.session {
        event.insert("session_id".into(), json!(format!("s-{session:016x}")));
    }
    event.insert("ip".into(), json!(draft.addr.ip.to_string()));
    event.insert("user_agent".into(), json!(user_agent.string));
    event.insert("device_id".into(), json!(format!("{:016x}", draft.device)));
    event.insert(
        "enrichment".into(),
        serde_json::to_value(&enrichment).expect("an enrichment serializes to json"),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use custos_core::{DestinationTokenizer, EventParser};

    use super::*;
    use crate::world::NetworkKind;

    fn small() -> LoginWorldConfig {
        LoginWorldConfig {
            accounts: 150,
            days: 120,
            seed: 42,
            attacks_per_model: 60,
            warmup_days: 30,
        }
    }

    fn text<'a>(event: &'a Value, field: &str) -> &'a str {
        event[field].as_str().unwrap_or_default()
    }

    fn enrichment(event: &Value) -> Enrichment {
        serde_json::from_value(event["enrichment"].clone()).expect("enrichment deserializes")
    }

    #[test]
    fn the_same_seed_gives_the_same_events_and_another_seed_others() {
        let config = small();
        let a = generate(&config);
        assert_eq!(a, generate(&config));
        let b = generate(&LoginWorldConfig { seed: 43, ..config });
        assert_ne!(a, b);
    }

    #[test]
    fn events_are_valid_time_ordered_and_unique() {
        let samples = generate(&small());
        assert!(samples.len() > 5_000, "{}", samples.len());
        let parser = EventParser::new(
            DestinationTokenizer::new(b"eval-test-key-0123456789").expect("a valid key"),
        );
        let mut ids = HashSet::new();
        let mut last = None;
        let mut types = BTreeSet::new();
        for sample in &samples {
            let mut event = sample.event.clone();
            let enrichment = enrichment(&event);
            assert!(!enrichment.network.country.unwrap_or_default().is_empty());
            assert!(enrichment.client.browser.is_some());
            event
                .as_object_mut()
                .expect("events are objects")
                .remove("enrichment");
            let parsed = parser
                .parse_value(event)
                .unwrap_or_else(|e| panic!("{e}: {}", sample.event));
            assert!(parsed.attributes.is_empty(), "{}", sample.event);
            assert!(ids.insert(parsed.event_id.clone()), "duplicate id");
            assert!(last.is_none_or(|t| t <= parsed.time), "out of order");
            assert!(parsed.time.year() == 2018);
            last = Some(parsed.time);
            types.insert(text(&sample.event, "type").to_owned());
            let reason = text(&sample.event, "reason");
            assert!(reason.is_empty() || reason == "reset");
        }
        let expected = ["login", "password_change", "password_reset_request"];
        assert_eq!(types, expected.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            text(&samples[0].event, "time").get(..10),
            Some("2018-01-01")
        );
    }

    #[test]
    fn enrichment_agrees_with_address_and_user_agent() {
        let world = World::build();
        let samples = generate(&small());
        let mut by_ua: HashMap<&str, Enrichment> = HashMap::new();
        for sample in &samples {
            let event = &sample.event;
            let enrichment = enrichment(event);
            let ip: IpAddr = text(event, "ip").parse().expect("an address");
            let pool = world.lookup(ip).expect("every address is in a pool");
            assert_eq!(enrichment.network, world.network_info(pool));
            let seen = by_ua
                .entry(text(event, "user_agent"))
                .or_insert_with(|| enrichment.clone());
            assert_eq!(
                seen.client,
                enrichment.client,
                "{}",
                text(event, "user_agent")
            );
        }
    }

    #[test]
    fn attackers_follow_their_models() {
        let world = World::build();
        let config = small();
        let samples = generate(&config);
        let hosting: HashSet<u32> = world.hosting_asns().into_iter().collect();
        let warmup_end = START + i64::from(config.warmup_days) * DAY;
        // The sellers' homes, as the generator drew them.
        let homes: Vec<(usize, usize)> = (0..config.accounts)
            .map(|account| {
                let mut rng = Rng::stream(config.seed, 1, account as u64);
                let seller = Seller::new(&world, &mut rng, account as u32);
                (seller.country, seller.city)
            })
            .collect();
        // Per account: counts of legit (browser, os, device type) so far.
        type ClientKey = (Option<String>, Option<String>, custos_core::DeviceType);
        let mut clients: HashMap<String, HashMap<ClientKey, usize>> = HashMap::new();
        let mut naive_countries = BTreeSet::new();
        let mut counts: HashMap<AttackerModel, usize> = HashMap::new();
        let mut targeted_same_client = 0;
        for sample in &samples {
            let event = &sample.event;
            let account = text(event, "account_id").to_owned();
            let e = enrichment(event);
            let country = e.network.country.clone().unwrap_or_default();
            let asn = e.network.asn.unwrap_or_default();
            let client: ClientKey = (
                e.client.browser.clone(),
                e.client.os.clone(),
                e.client.device_type,
            );
            let model = match sample.kind {
                SampleKind::Legit => {
                    if text(event, "status") == "success" {
                        *clients
                            .entry(account)
                            .or_default()
                            .entry(client)
                            .or_default() += 1;
                    }
                    continue;
                }
                SampleKind::Attack(model) => model,
            };
            *counts.entry(model).or_default() += 1;
            assert_eq!(text(event, "type"), "login");
            assert_eq!(text(event, "status"), "success");
            let time = time::OffsetDateTime::parse(
                text(event, "time"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("time");
            assert!(time.unix_timestamp() >= warmup_end);
            let victim: usize = account
                .trim_start_matches("seller-")
                .parse()
                .expect("account number");
            let (home_country, home_city) = homes[victim];
            let victim_home = COUNTRIES[home_country].code;
            match model {
                AttackerModel::Naive => {
                    naive_countries.insert(country);
                }
                AttackerModel::Vpn => {
                    assert!(hosting.contains(&asn), "{event}");
                    assert_eq!(country, victim_home, "{event}");
                }
                AttackerModel::Targeted => {
                    assert!(!hosting.contains(&asn));
                    let pool = world
                        .lookup(text(event, "ip").parse().expect("ip"))
                        .expect("pool");
                    assert_eq!(world.kind_of(pool), NetworkKind::Residential);
                    assert_eq!(country, victim_home, "{event}");
                    assert_eq!(
                        e.network.city.as_deref(),
                        Some(COUNTRIES[home_country].cities[home_city].name)
                    );
                    let used = &clients[&account];
                    let top = used.values().max().copied().unwrap_or_default();
                    assert_eq!(used.get(&client).copied(), Some(top), "{event}");
                    targeted_same_client += 1;
                }
            }
        }
        for model in AttackerModel::ALL {
            assert_eq!(
                counts.get(&model),
                Some(&config.attacks_per_model),
                "{}",
                model.name()
            );
        }
        assert_eq!(targeted_same_client, config.attacks_per_model);
        assert!(naive_countries.len() >= 15, "{naive_countries:?}");
    }

    #[test]
    fn legit_events_mostly_come_from_known_devices() {
        let samples = generate(&small());
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let (mut known, mut total) = (0usize, 0usize);
        for sample in samples.iter().filter(|s| s.kind == SampleKind::Legit) {
            let key = (
                text(&sample.event, "account_id").to_owned(),
                text(&sample.event, "device_id").to_owned(),
            );
            total += 1;
            if !seen.insert(key) {
                known += 1;
            }
        }
        let share = known as f64 / total as f64;
        assert!(share > 0.8, "{share}");
        // Not trivially one device per seller either.
        assert!(share < 0.99, "{share}");
    }
}
