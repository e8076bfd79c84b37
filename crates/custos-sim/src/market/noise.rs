//! The noisy honest marketplace (`--honest noisy`): honest sellers who do,
//! now and then, what the adaptive attackers do, so that a rule that stops
//! the attackers pays for it here. Everything draws from streams of its
//! own, so the baseline marketplace is the same byte for byte whether or
//! not this runs. The rates, per seller:
//!
//! - **Carrier address pools**: an in-session event made from a mobile
//!   address comes, half the time, from another of the carrier's pools (a
//!   different /24, often geolocated to another city of the country) than
//!   the session's login. Home lines already change address every four
//!   weeks or so for dynamic lines, and sellers travel
//!   ([`crate::logins`]).
//! - **Accountants abroad**: 1.5% of sellers have an accountant in another
//!   sellers' country who logs in for them every 25 to 35 days, in the
//!   working day, from the accountant's own computer and office line; 40%
//!   of those sessions ask for an instant payout.
//! - **Shared bank accounts**: 1% of sellers are paired with another
//!   seller of their country (a family business, a second shop): both are
//!   paid into one account at a bank of that country, each from their
//!   creation (50%) or from a change at a random session of the window.
//! - **E-money after a password reset**: 5% of password resets are
//!   followed, in a session within three days, by a change to the popular
//!   pan-European e-money issuer (70%) or the local one.
//! - **New phones and factors**: 8% of sellers a year change their phone
//!   number, 4% their MFA method (a new phone: `totp` 80%, `push`), 2% their
//!   e-mail (on top of the baseline's 2%); 20% of these changes are followed
//!   3 to 40 days later by a bank change (80% to a bank of their country).
//! - **Instant payouts**: 10% of sellers ask for the whole balance about
//!   1.5 times a month, in a session, naming their current destination.
//! - **Seasonal peaks**: sales run at 1.8 times their rate from 15
//!   November to 24 December.

use crate::clients::Client;
use crate::logins::{Action, DAY, Draft, START};
use crate::model::{Channels, Ctx, Dest, Ev, Institutions, MfaMethod, SellerLife, What};
use crate::rng::Rng;
use crate::truth::Actor;
use crate::world::{COUNTRIES, NetworkKind, World};

/// A bank account two sellers share.
#[derive(Debug, Clone, Copy)]
pub(super) struct SharedAccount {
    pub dest: Dest,
    /// Paid there since the account was created; otherwise from a change
    /// in the window.
    pub from_creation: bool,
}

/// Pairs of sellers of one country paid into one bank account.
pub(super) fn shared_accounts(
    institutions: &Institutions,
    seed: u64,
    lives: &[SellerLife],
) -> Vec<Option<SharedAccount>> {
    let mut rng = Rng::stream(seed, 61, 0);
    let mut shared = vec![None; lives.len()];
    let mut by_country: Vec<Vec<usize>> = vec![Vec::new(); COUNTRIES.len()];
    for (account, life) in lives.iter().enumerate() {
        by_country[life.seller.country].push(account);
    }
    for account in 0..lives.len() {
        if shared[account].is_some() || !rng.chance(0.005) {
            continue;
        }
        let country = lives[account].seller.country;
        for _ in 0..20 {
            let Some(&partner) = rng.pick(&by_country[country]) else {
                break;
            };
            if partner == account || shared[partner].is_some() {
                continue;
            }
            let bank = institutions.bank_in(&mut rng, country);
            let dest = Dest::new(&mut rng, bank);
            for member in [account, partner] {
                shared[member] = Some(SharedAccount {
                    dest,
                    from_creation: rng.chance(0.5),
                });
            }
            break;
        }
    }
    shared
}

/// The sales rate's multiplier on a day (counted from 2018-01-01).
pub(super) fn season(day: i64) -> f64 {
    // 15 November to 24 December, leap days aside.
    if (318..358).contains(&day.rem_euclid(365)) {
        1.8
    } else {
        1.0
    }
}

/// One seller's noise.
pub(super) struct Noisy<'a> {
    pub world: &'a World,
    pub institutions: &'a Institutions,
    pub home: usize,
    /// Successful sessions in the window.
    pub sessions: &'a [(i64, Ctx)],
    pub logins: &'a [Draft],
    pub window: (i64, i64),
    pub years: f64,
    pub rng: &'a mut Rng,
}

impl Noisy<'_> {
    /// The seller's noisy events (account and sequence left for the
    /// caller; instant payouts as requests naming no destination yet);
    /// bank changes go to `owner_changes`.
    pub(super) fn events(
        &mut self,
        shared: Option<SharedAccount>,
        under_attack: &impl Fn(i64) -> bool,
        owner_changes: &mut Vec<(i64, Dest, Ctx)>,
    ) -> Vec<Ev> {
        let mut out = Vec::new();
        if self.sessions.is_empty() {
            return out;
        }
        if let Some(shared) = shared.filter(|s| !s.from_creation) {
            let (time, ctx) = self.any_session();
            if !under_attack(time) {
                owner_changes.push((time + self.minutes(1, 15), shared.dest, ctx));
            }
        }
        self.after_resets(under_attack, owner_changes);
        self.factor_changes(under_attack, owner_changes, &mut out);
        if self.rng.chance(0.1) {
            for _ in 0..self.rng.poisson(1.5 * 12.0 * self.years) {
                let (time, ctx) = self.any_session();
                if !under_attack(time) {
                    let at = time + self.minutes(1, 10);
                    out.push(self.instant_payout(at, ctx));
                }
            }
        }
        if self.rng.chance(0.015) {
            self.accountant(under_attack, &mut out);
        }
        out
    }

    fn minutes(&mut self, from: i64, to: i64) -> i64 {
        (from + self.rng.below((to - from).max(1) as u64) as i64) * 60
    }

    fn any_session(&mut self) -> (i64, Ctx) {
        self.sessions[self.rng.below(self.sessions.len() as u64) as usize]
    }

    /// The first session at or after `time`, within `within` seconds.
    fn session_after(&self, time: i64, within: i64) -> Option<(i64, Ctx)> {
        let first = self.sessions.partition_point(|s| s.0 < time);
        self.sessions
            .get(first)
            .copied()
            .filter(|s| s.0 < time + within)
    }

    fn event(time: i64, what: What, ctx: Option<Ctx>) -> Ev {
        Ev {
            time,
            account: 0,
            seq: 0,
            what,
            ctx,
            actor: Actor::Seller,
            fraud: false,
            campaign: None,
            controls: Channels::NONE,
        }
    }

    /// The whole balance to the current destination (the market names it).
    fn instant_payout(&self, time: i64, ctx: Ctx) -> Ev {
        let placeholder = Dest {
            institution: 0,
            number: 0,
        };
        Noisy::event(
            time,
            What::InstantPayoutRequest {
                to: placeholder,
                share_per_mille: 1_000,
            },
            Some(ctx),
        )
    }

    fn after_resets(
        &mut self,
        under_attack: &impl Fn(i64) -> bool,
        owner_changes: &mut Vec<(i64, Dest, Ctx)>,
    ) {
        let resets: Vec<i64> = self
            .logins
            .iter()
            .filter(|d| d.action == Action::PasswordReset && d.time >= self.window.0)
            .map(|d| d.time)
            .collect();
        for reset in resets {
            if !self.rng.chance(0.05) {
                continue;
            }
            let Some((time, ctx)) = self.session_after(reset, 3 * DAY) else {
                continue;
            };
            if under_attack(time) {
                continue;
            }
            let issuer = if self.rng.chance(0.7) {
                self.institutions.pan_e_money
            } else {
                self.institutions.local_e_money[self.home]
            };
            let to = Dest::new(self.rng, issuer);
            owner_changes.push((time + self.minutes(2, 20), to, ctx));
        }
    }

    fn factor_changes(
        &mut self,
        under_attack: &impl Fn(i64) -> bool,
        owner_changes: &mut Vec<(i64, Dest, Ctx)>,
        out: &mut Vec<Ev>,
    ) {
        for (rate, kind) in [(0.08, 0u8), (0.04, 1), (0.02, 2)] {
            for _ in 0..self.rng.poisson(rate * self.years) {
                let (time, ctx) = self.any_session();
                if under_attack(time) {
                    continue;
                }
                let at = time + self.minutes(1, 15);
                let what = match kind {
                    0 => What::PhoneChange,
                    1 if self.rng.chance(0.8) => What::MfaMethodChange(MfaMethod::Totp),
                    1 => What::MfaMethodChange(MfaMethod::Push),
                    _ => What::EmailChange,
                };
                out.push(Noisy::event(at, what, Some(ctx)));
                if !self.rng.chance(0.2) {
                    continue;
                }
                let wait = (self.rng.uniform(3.0, 40.0) * DAY as f64) as i64;
                let Some((time, ctx)) = self.session_after(at + wait, 14 * DAY) else {
                    continue;
                };
                if under_attack(time) {
                    continue;
                }
                let institution = if self.rng.chance(0.8) {
                    self.institutions.bank_in(self.rng, self.home)
                } else {
                    self.institutions.pan_e_money
                };
                let to = Dest::new(self.rng, institution);
                owner_changes.push((time + self.minutes(2, 20), to, ctx));
            }
        }
    }

    /// An accountant in another country logging in every month or so.
    fn accountant(&mut self, under_attack: &impl Fn(i64) -> bool, out: &mut Vec<Ev>) {
        let weights: Vec<f64> = COUNTRIES
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == self.home {
                    0.0
                } else {
                    f64::from(c.seller_weight)
                }
            })
            .collect();
        let Some(country) = self.rng.weighted(&weights) else {
            return;
        };
        let pool = *self
            .rng
            .pick(self.world.residential_pools(country, 0))
            .expect("every city has a residential pool");
        let office = self.world.random_in_pool(self.rng, pool);
        let first = self.sessions[0].0;
        let day = (first - START) as f64 / DAY as f64;
        let client = Client::typical(self.rng, crate::clients::DeviceClass::Computer, day);
        let device = self.rng.next_u64();
        let mut at = first + (self.rng.uniform(1.0, 30.0) * DAY as f64) as i64;
        while at < self.window.1 - DAY {
            let time = at.div_euclid(DAY) * DAY + 8 * 3_600 + self.minutes(0, 8 * 60);
            if !under_attack(time) {
                let ctx = Ctx {
                    session: Some(self.rng.next_u64()),
                    addr: office,
                    client,
                    device,
                };
                out.push(Noisy::event(
                    time,
                    What::Login(Action::LoginSuccess),
                    Some(ctx),
                ));
                if self.rng.chance(0.4) {
                    let asked = time + self.minutes(5, 30);
                    out.push(self.instant_payout(asked, ctx));
                }
            }
            at += (self.rng.uniform(25.0, 35.0) * DAY as f64) as i64;
        }
    }

    /// The address of an event made in a session: from a mobile login,
    /// half the time another of the carrier's pools.
    pub(super) fn in_session(world: &World, rng: &mut Rng, ctx: Ctx) -> Ctx {
        if world.kind_of(ctx.addr.pool) != NetworkKind::Mobile || !rng.chance(0.5) {
            return ctx;
        }
        let pools: Vec<usize> = world
            .network_of(ctx.addr.pool)
            .pools
            .iter()
            .copied()
            .filter(|p| !world.is_ipv6(*p))
            .collect();
        let Some(&pool) = rng.pick(&pools) else {
            return ctx;
        };
        Ctx {
            addr: world.random_in_pool(rng, pool),
            ..ctx
        }
    }
}
