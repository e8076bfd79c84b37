//! Attackers who have read the published rules (`docs/rules.md`) and
//! avoid every trigger they can, one per class of issue 17 (`--scenario
//! adaptive`). What they share, and why:
//!
//! - **Nothing looks new.** Except the profile poisoner, they act in one
//!   of the victim's own sessions, phished by a kit that relays the
//!   one-time code and steals the session cookie (the victim's
//!   `session_id`, device id and browser), from a residential address in
//!   the city the victim logged in from, on a /24 the victim never used. A
//!   session cookie lives 14 days ([`SESSION_LIFETIME`]): they keep using
//!   it rather than log in; after that they take only the scheduled
//!   payouts, or, when they must act, log in with the stolen device cookie
//!   at an hour the victim is used to. The login rules and the
//!   login-risk model have little or nothing to see.
//! - **No published money trigger.** Mules sit at ordinary banks of the
//!   victim's country, picked by market share (no e-money issuer, nothing
//!   abroad, no institution bursting); payouts are instant payouts of the
//!   balance, never three times the account's typical payout; loans are
//!   sized like the owner's and asked for after the 14-day loan rule.
//! - **Not straight to the payout settings**: the first change comes 20
//!   minutes or more after the session starts.
//! - **What they can answer** ([`Channels`], `truth.controls`): the owner's
//!   second factor while a kit relays it (the phished session only), and
//!   each contact or factor they moved to themselves from the change on.
//!   The backtest plays every step-up and hold confirmation with it; the
//!   simulation itself is open loop.
//!
//! The classes:
//!
//! - [`Scenario::SessionTheft`](crate::model::Scenario::SessionTheft), 30
//!   victims per 10,000 sellers (at least 5, at most 60): the kit phishes
//!   one of the victim's own logins; the attacker acts in that session
//!   (same `session_id`, device id and user agent) minutes later, from an
//!   exit in the city the victim logged in from, 35% of the time after a
//!   login of his own replayed with the stolen device cookie. He changes
//!   the destination, takes the balance in an instant payout within hours,
//!   then again every two to five days while the cookie lives. Noticed
//!   after 30 days on average.
//! - [`Scenario::FactorTakeover`](crate::model::Scenario::FactorTakeover),
//!   30 per 10,000: in the phished session he moves the phone
//!   (`sms`, `voice`), the e-mail (`email`) or the MFA method
//!   (`method_changed`: `totp` 70%, `push` 20%, `security_key` 10%) to
//!   himself (one of them, 40% of the time two), waits 8 to 30 days (past
//!   the 7-day cool-off), then changes the destination (in the stolen
//!   session while it lives, else from a login on the stolen device) and
//!   answers everything through what he moved. Half take the balance at once, 30%
//!   apply for a loan 15 to 25 days later.
//! - [`Scenario::ProfilePoisoning`](crate::model::Scenario::ProfilePoisoning),
//!   30 per 10,000: four to ten visits over 5 to 20 days from his own
//!   machine and a fixed line in the victim's country (35% failed logins,
//!   the others successful logins whose step-up he cannot answer and
//!   ignores), then the takeover session from the same machine and line.
//! - [`Scenario::MoneyEvasion`](crate::model::Scenario::MoneyEvasion), 40
//!   per 10,000 (at least 8), in a phished session, in four equal shares:
//!   payouts of 40–70% of the balance every few days; the money split over
//!   two to four new destinations, each registered days apart and emptied
//!   at once; instant payouts naming a destination no change event ever
//!   registered (the current destination is left alone); a loan sized like
//!   the owner's (three to eight weeks of sales) 14.5 to 18 days after the
//!   change, the balance left to the scheduled payouts (noticed after 45
//!   days on average, at least 21).
//! - [`Scenario::MuleRing`](crate::model::Scenario::MuleRing): 3 rings per
//!   10,000 sellers (at least 2), each in one country with one or two mule
//!   accounts at its banks; a victim every 35 to 60 days (the first within
//!   three weeks of the attack window opening), each phished and acted on
//!   from a residential network of the victim's city that no earlier victim
//!   of the ring came from. Victims notice after 40 days on average.

use std::collections::HashSet;
use std::net::IpAddr;

use super::Planner;
use crate::clients::Client;
use crate::logins::{Action, DAY, Draft, START};
use crate::model::{Channels, Ctx, Dest, MfaMethod, What};
use crate::rng::Rng;
use crate::world::Addr;

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
/// How long a logged-in session's cookie stays valid on the platform
/// ("remember me"): a thief keeps using it instead of logging in.
const SESSION_LIFETIME: i64 = 14 * DAY;

/// The /24 of an IPv4 address or the /64 of an IPv6 one.
fn prefix(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => (u128::from(v6) >> 64) | (1 << 127),
    }
}

/// The owner's second factor, which a kit relays while the owner types it.
fn relayed_factor(rng: &mut Rng) -> Channels {
    if rng.chance(0.6) {
        Channels::SMS
    } else if rng.chance(0.8) {
        Channels::TOTP
    } else {
        Channels::PUSH
    }
}

fn minutes(rng: &mut Rng, from: i64, to: i64) -> i64 {
    (from + rng.below((to - from).max(1) as u64) as i64) * MINUTE
}

fn days(rng: &mut Rng, from: f64, to: f64) -> i64 {
    (rng.uniform(from, to) * DAY as f64) as i64
}

impl Planner<'_> {
    /// A victim and one of their logins in the attack window for a kit to
    /// phish (sellers who seldom log in take a few draws to find).
    fn pick_phished(&self, rng: &mut Rng) -> Option<(usize, Draft)> {
        for _ in 0..20 {
            let time = self.random_time(rng);
            let Some(victim) = self.pick_victim(rng, time) else {
                continue;
            };
            if let Some(phished) = self.phished_login(victim, time) {
                return Some((victim, phished));
            }
        }
        None
    }

    /// The victim's own successful login at or after `from` (within two
    /// weeks and the attack window): the one a kit phishes.
    fn phished_login(&self, victim: usize, from: i64) -> Option<Draft> {
        let logins = &self.lives[victim].logins;
        let first = logins.partition_point(|d| d.time < from);
        let until = (from + 14 * DAY).min(self.window.1);
        logins[first..]
            .iter()
            .take_while(|d| d.time < until)
            .find(|d| d.action == Action::LoginSuccess && d.session.is_some())
            .copied()
    }

    /// A time at or after `after` at an hour of day the victim has logged
    /// in at before.
    fn at_usual_hour(&self, rng: &mut Rng, victim: usize, after: i64) -> i64 {
        let logins = &self.lives[victim].history.logins;
        let before = logins.partition_point(|(t, _, _)| *t < after).max(1);
        let Some((usual, _, _)) = rng.pick(&logins[..before.min(logins.len())]) else {
            return after;
        };
        let at = after.div_euclid(DAY) * DAY + usual.rem_euclid(DAY);
        if at < after { at + DAY } else { at }
    }

    /// The /24s (and /64s) the victim ever used.
    fn used_prefixes(&self, victim: usize) -> HashSet<u128> {
        let history = &self.lives[victim].history;
        history.ips.iter().map(|ip| prefix(*ip)).collect()
    }

    /// An exit in the city the victim was phished from on none of the
    /// networks in `avoid`; `None` when the city has no other.
    fn exit_off(
        &self,
        rng: &mut Rng,
        victim: usize,
        phished: &Draft,
        avoid: &[usize],
    ) -> Option<Addr> {
        let world = self.world;
        let pool = &world.pools[phished.addr.pool];
        let fresh: Vec<usize> = world
            .residential_pools(pool.country, pool.city)
            .iter()
            .copied()
            .filter(|p| !avoid.contains(&world.pools[*p].network))
            .collect();
        if fresh.is_empty() {
            return None;
        }
        Some(self.exit_among(rng, &fresh, &self.used_prefixes(victim)))
    }

    /// An exit in the city the victim was phished from (the victim's
    /// home, office or hotel city), on a /24 the victim never used.
    fn exit_where(&self, rng: &mut Rng, victim: usize, phished: &Draft) -> Addr {
        let pool = &self.world.pools[phished.addr.pool];
        let pools = self.world.residential_pools(pool.country, pool.city);
        self.exit_among(rng, pools, &self.used_prefixes(victim))
    }

    /// An address of one of `pools` on a /24 out of `used`, if a thousand
    /// draws find one (pools hold thousands: they do).
    fn exit_among(&self, rng: &mut Rng, pools: &[usize], used: &HashSet<u128>) -> Addr {
        let world = self.world;
        let mut addr = world.random_in_pool(rng, pools[0]);
        for _ in 0..1_000 {
            let pool = *rng.pick(pools).expect("every city has a residential pool");
            addr = world.random_in_pool(rng, pool);
            if !used.contains(&prefix(addr.ip)) {
                break;
            }
        }
        addr
    }

    /// A mule account at a bank of the victim's country, by market share:
    /// nothing a published rule names.
    fn quiet_mule(&self, rng: &mut Rng, victim: usize) -> Dest {
        let country = self.lives[victim].history.country;
        let bank = self.institutions.bank_in(rng, country);
        Dest::new(rng, bank)
    }

    /// When the victim of the latest takeover reports it, or the window's
    /// end.
    fn holds_until(&self, victim: usize) -> i64 {
        self.attacks[victim]
            .takeovers
            .last()
            .and_then(|t| t.reported)
            .unwrap_or(self.end)
    }

    /// A victim in `country`, as [`Planner::pick_victim`].
    fn pick_victim_in(&self, rng: &mut Rng, time: i64, country: usize) -> Option<usize> {
        for _ in 0..100 {
            let victim = self.pick_victim(rng, time)?;
            if self.lives[victim].history.country == country {
                return Some(victim);
            }
        }
        None
    }

    /// Instant payouts every two to five days from `from` until the victim
    /// reports, each a request for a share (per mille, within `share`) of
    /// the balance, in the `stolen` session while its cookie lives
    /// ([`SESSION_LIFETIME`] after `opened`). A thief in a phished session
    /// stops there (a login of his own would come from a network the
    /// account never used, which the rules call risky: the scheduled
    /// payouts to his destination go on anyway); one on his own machine
    /// (`logs_in_again`) logs in again.
    #[allow(clippy::too_many_arguments)]
    fn drain_later(
        &mut self,
        rng: &mut Rng,
        victim: usize,
        (stolen, opened): (Ctx, i64),
        logs_in_again: bool,
        from: i64,
        to: Dest,
        share: (u16, u16),
        campaign: u8,
        controls: Channels,
    ) {
        let mut until = self.holds_until(victim);
        if !logs_in_again {
            until = until.min(opened + SESSION_LIFETIME);
        }
        let mut at = self.at_usual_hour(rng, victim, from);
        while at < until {
            let ctx = self.session_at(rng, victim, (stolen, opened), at, campaign, controls);
            let share_per_mille = share.0 + rng.below(u64::from(share.1 - share.0) + 1) as u16;
            self.push_answering(
                victim,
                at + minutes(rng, 10, 40),
                What::InstantPayoutRequest {
                    to,
                    share_per_mille,
                },
                Some(ctx),
                campaign,
                controls,
            );
            let next = at + days(rng, 2.0, 5.0);
            at = self.at_usual_hour(rng, victim, next);
        }
    }

    /// Where the attacker acts at `at`: the `stolen` session (opened at
    /// `opened`) while its cookie lives, else a login of his own on the
    /// stolen device, from a neighbour of the same exit.
    fn session_at(
        &mut self,
        rng: &mut Rng,
        victim: usize,
        (stolen, opened): (Ctx, i64),
        at: i64,
        campaign: u8,
        controls: Channels,
    ) -> Ctx {
        let mut ctx = Ctx {
            addr: self.world.neighbour(rng, stolen.addr),
            ..stolen
        };
        if at >= opened + SESSION_LIFETIME {
            ctx.session = Some(rng.next_u64());
            self.push_answering(
                victim,
                at,
                What::Login(Action::LoginSuccess),
                Some(ctx),
                campaign,
                controls,
            );
        }
        ctx
    }

    /// A session on the victim's stolen device cookie: a new session id,
    /// the victim's device id and browser, the attacker's exit.
    fn on_stolen_device(&self, rng: &mut Rng, seen: &Draft, exit: Addr) -> Ctx {
        Ctx {
            session: Some(rng.next_u64()),
            addr: exit,
            client: seen.client,
            device: seen.device,
        }
    }

    pub(super) fn session_theft(&mut self, rng: &mut Rng, campaign: u8) {
        let count = self.victims(30.0, 5, 60);
        for _ in 0..count {
            let Some((victim, phished)) = self.pick_phished(rng) else {
                continue;
            };
            let relayed = relayed_factor(rng);
            let exit = self.exit_where(rng, victim, &phished);
            let mut ctx = Ctx {
                session: phished.session,
                addr: exit,
                client: phished.client,
                device: phished.device,
            };
            let mut at = phished.time + minutes(rng, 1, 10);
            if rng.chance(0.35) {
                ctx = self.on_stolen_device(rng, &phished, exit);
                self.push_answering(
                    victim,
                    at,
                    What::Login(Action::LoginSuccess),
                    Some(ctx),
                    campaign,
                    relayed,
                );
            }
            at += minutes(rng, 20, 90);
            let mule = self.quiet_mule(rng, victim);
            self.push_answering(
                victim,
                at,
                What::DestinationChange {
                    to: mule,
                    from: None,
                },
                Some(ctx),
                campaign,
                relayed,
            );
            self.takeover(rng, victim, at, 30.0, campaign);
            let drained = at + minutes(rng, 30, 150);
            if drained < self.holds_until(victim) {
                self.push_answering(
                    victim,
                    drained,
                    What::InstantPayoutRequest {
                        to: mule,
                        share_per_mille: 1_000,
                    },
                    Some(ctx),
                    campaign,
                    relayed,
                );
            }
            let later = drained + days(rng, 2.0, 4.0);
            self.drain_later(
                rng,
                victim,
                (ctx, phished.time),
                false,
                later,
                mule,
                (800, 1_000),
                campaign,
                Channels::NONE,
            );
        }
    }

    pub(super) fn factor_takeover(&mut self, rng: &mut Rng, campaign: u8) {
        let count = self.victims(30.0, 3, 60);
        for _ in 0..count {
            // An ordinary-looking session: the victim's own, phished.
            let Some((victim, phished)) = self.pick_phished(rng) else {
                continue;
            };
            let start = phished.time;
            // Past the 7-day cool-off after a sensitive change.
            let wait = days(rng, 8.0, 30.0);
            let later = self.at_usual_hour(rng, victim, start + wait);
            if later + DAY >= self.end {
                continue;
            }
            let relayed = relayed_factor(rng);
            let exit = self.exit_where(rng, victim, &phished);
            let ctx = Ctx {
                session: phished.session,
                addr: exit,
                client: phished.client,
                device: phished.device,
            };
            let mut at = start + minutes(rng, 20, 60);
            let first = rng.below(3);
            let mut kinds = vec![first];
            if rng.chance(0.4) {
                kinds.push((first + 1 + rng.below(2)) % 3);
            }
            let mut moved = Channels::NONE;
            for kind in kinds {
                let (what, channel) = match kind {
                    0 => (What::PhoneChange, Channels::SMS.with(Channels::VOICE)),
                    1 => (What::EmailChange, Channels::EMAIL),
                    _ => {
                        let method = match rng.weighted(&[70.0, 20.0, 10.0]) {
                            Some(0) => MfaMethod::Totp,
                            Some(1) => MfaMethod::Push,
                            _ => MfaMethod::SecurityKey,
                        };
                        (What::MfaMethodChange(method), method.channel())
                    }
                };
                let answers = relayed.with(moved);
                self.push_answering(victim, at, what, Some(ctx), campaign, answers);
                moved = moved.with(channel);
                at += minutes(rng, 3, 15);
            }
            let phished_session = (ctx, start);
            let ctx = self.session_at(rng, victim, phished_session, later, campaign, moved);
            let changed = later + minutes(rng, 20, 60);
            let mule = self.quiet_mule(rng, victim);
            self.push_answering(
                victim,
                changed,
                What::DestinationChange {
                    to: mule,
                    from: None,
                },
                Some(ctx),
                campaign,
                moved,
            );
            self.takeover(rng, victim, changed, 30.0, campaign);
            let until = self.holds_until(victim);
            if rng.chance(0.5) {
                let drained = changed + minutes(rng, 30, 120);
                if drained < until {
                    self.push_answering(
                        victim,
                        drained,
                        What::InstantPayoutRequest {
                            to: mule,
                            share_per_mille: 1_000,
                        },
                        Some(ctx),
                        campaign,
                        moved,
                    );
                }
            }
            if rng.chance(0.3) {
                let after = (15.0, 25.0);
                let stolen = (ctx, start);
                self.loan_like_owners(rng, victim, stolen, changed, after, campaign, moved);
            }
        }
    }

    /// A loan sized like the owner's, asked for `after` days
    /// after the destination change (past the 14-day loan rule), if the
    /// victim has not reported by then.
    #[allow(clippy::too_many_arguments)]
    fn loan_like_owners(
        &mut self,
        rng: &mut Rng,
        victim: usize,
        stolen: (Ctx, i64),
        changed: i64,
        after: (f64, f64),
        campaign: u8,
        controls: Channels,
    ) {
        let after = changed + days(rng, after.0, after.1);
        let at = self.at_usual_hour(rng, victim, after);
        if at + 3 * DAY >= self.holds_until(victim) {
            return;
        }
        let ctx = self.session_at(rng, victim, stolen, at, campaign, controls);
        let loan = self.seqs[victim] + 1;
        let weeks = 3 + rng.below(6) as u8;
        self.push_answering(
            victim,
            at + minutes(rng, 10, 40),
            What::LoanLikeOwners { loan, weeks },
            Some(ctx),
            campaign,
            controls,
        );
    }

    pub(super) fn profile_poisoning(&mut self, rng: &mut Rng, campaign: u8) {
        let world = self.world;
        let count = self.victims(30.0, 3, 60);
        for _ in 0..count {
            let time = self.random_time(rng);
            let Some(victim) = self.pick_victim(rng, time) else {
                continue;
            };
            let span = days(rng, 5.0, 20.0);
            let takeover = time + span + rng.below(DAY as u64) as i64;
            if takeover + DAY >= self.end {
                continue;
            }
            // His own machine and a fixed line in the victim's country.
            let country = self.lives[victim].history.country;
            let city = rng.below(crate::world::COUNTRIES[country].cities.len() as u64) as usize;
            let pool = *rng
                .pick(world.residential_pools(country, city))
                .expect("every city has a residential pool");
            let line = world.random_in_pool(rng, pool);
            let day = (time - START) as f64 / DAY as f64;
            let own = Ctx {
                session: None,
                addr: line,
                client: Client::random(rng, day),
                device: rng.next_u64(),
            };
            let visits = 4 + rng.below(7) as i64;
            for visit in 0..visits {
                let at = time + visit * span / visits + rng.below(12 * HOUR as u64) as i64;
                let ctx = Ctx {
                    addr: world.neighbour(rng, line),
                    ..own
                };
                if rng.chance(0.35) {
                    for failure in 0..1 + rng.below(2) as i64 {
                        self.push(
                            victim,
                            at + failure * 30,
                            What::Login(Action::LoginFailure),
                            Some(ctx),
                            campaign,
                        );
                    }
                } else {
                    let ctx = Ctx {
                        session: Some(rng.next_u64()),
                        ..ctx
                    };
                    self.push(
                        victim,
                        at,
                        What::Login(Action::LoginSuccess),
                        Some(ctx),
                        campaign,
                    );
                }
            }
            let ctx = Ctx {
                session: Some(rng.next_u64()),
                addr: world.neighbour(rng, line),
                ..own
            };
            self.push(
                victim,
                takeover,
                What::Login(Action::LoginSuccess),
                Some(ctx),
                campaign,
            );
            let changed = takeover + minutes(rng, 20, 60);
            let mule = self.quiet_mule(rng, victim);
            self.push(
                victim,
                changed,
                What::DestinationChange {
                    to: mule,
                    from: None,
                },
                Some(ctx),
                campaign,
            );
            self.takeover(rng, victim, changed, 30.0, campaign);
            if rng.chance(0.5) {
                let drained = changed + minutes(rng, 30, 120);
                if drained < self.holds_until(victim) {
                    self.push(
                        victim,
                        drained,
                        What::InstantPayoutRequest {
                            to: mule,
                            share_per_mille: 1_000,
                        },
                        Some(ctx),
                        campaign,
                    );
                }
            }
            let later = changed + days(rng, 2.0, 4.0);
            self.drain_later(
                rng,
                victim,
                (ctx, takeover),
                true,
                later,
                mule,
                (800, 1_000),
                campaign,
                Channels::NONE,
            );
        }
    }

    pub(super) fn money_evasion(&mut self, rng: &mut Rng, campaign: u8) {
        let count = self.victims(40.0, 8, 80);
        for n in 0..count {
            let Some((victim, phished)) = self.pick_phished(rng) else {
                continue;
            };
            let relayed = relayed_factor(rng);
            let exit = self.exit_where(rng, victim, &phished);
            let ctx = Ctx {
                session: phished.session,
                addr: exit,
                client: phished.client,
                device: phished.device,
            };
            let at = phished.time + minutes(rng, 20, 90);
            let mule = self.quiet_mule(rng, victim);
            let change = What::DestinationChange {
                to: mule,
                from: None,
            };
            match n % 4 {
                // Under the amount ratios: part of the balance at a time.
                0 => {
                    self.push_answering(victim, at, change, Some(ctx), campaign, relayed);
                    self.takeover(rng, victim, at, 30.0, campaign);
                    self.request(rng, victim, ctx, at, mule, (400, 700), campaign, relayed);
                    let later = at + days(rng, 2.0, 4.0);
                    let share = (400, 700);
                    let none = Channels::NONE;
                    let stolen = (ctx, phished.time);
                    self.drain_later(
                        rng, victim, stolen, false, later, mule, share, campaign, none,
                    );
                }
                // Split over several new destinations, each emptied at once.
                1 => {
                    self.push_answering(victim, at, change, Some(ctx), campaign, relayed);
                    self.takeover(rng, victim, at, 30.0, campaign);
                    self.request(
                        rng,
                        victim,
                        ctx,
                        at,
                        mule,
                        (1_000, 1_000),
                        campaign,
                        relayed,
                    );
                    let mut from = mule;
                    let mut next = at;
                    for _ in 0..1 + rng.below(3) {
                        let after = next + days(rng, 2.0, 4.0);
                        next = self.at_usual_hour(rng, victim, after);
                        if next + HOUR >= self.holds_until(victim) {
                            break;
                        }
                        let stolen = (ctx, phished.time);
                        let none = Channels::NONE;
                        let session = self.session_at(rng, victim, stolen, next, campaign, none);
                        let to = self.quiet_mule(rng, victim);
                        let changed = next + minutes(rng, 20, 60);
                        self.push(
                            victim,
                            changed,
                            What::DestinationChange {
                                to,
                                from: Some(from),
                            },
                            Some(session),
                            campaign,
                        );
                        self.request(
                            rng,
                            victim,
                            session,
                            changed,
                            to,
                            (1_000, 1_000),
                            campaign,
                            none,
                        );
                        from = to;
                    }
                }
                // Naming a destination no change event registered.
                2 => {
                    self.takeover(rng, victim, at, 30.0, campaign);
                    if let Some(takeover) = self.attacks[victim].takeovers.last_mut() {
                        takeover.moves_destination = false;
                    }
                    let asked = What::InstantPayoutRequest {
                        to: mule,
                        share_per_mille: 1_000,
                    };
                    self.push_answering(victim, at, asked, Some(ctx), campaign, relayed);
                    let later = at + days(rng, 2.0, 4.0);
                    let share = (1_000, 1_000);
                    let none = Channels::NONE;
                    let stolen = (ctx, phished.time);
                    self.drain_later(
                        rng, victim, stolen, false, later, mule, share, campaign, none,
                    );
                }
                // A loan as the cash-out, sized like the owner's.
                _ => {
                    self.push_answering(victim, at, change, Some(ctx), campaign, relayed);
                    // Noticed late: sales still seem to be paid out.
                    self.takeover_noticed_after(rng, victim, at, (45.0, 21.0), campaign);
                    let after = (14.5, 18.0);
                    let none = Channels::NONE;
                    let stolen = (ctx, phished.time);
                    self.loan_like_owners(rng, victim, stolen, at, after, campaign, none);
                }
            }
        }
    }

    /// An instant payout of a share of the balance, 30 minutes to two
    /// hours after `after` in the same session, if before the report.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        rng: &mut Rng,
        victim: usize,
        ctx: Ctx,
        after: i64,
        to: Dest,
        share: (u16, u16),
        campaign: u8,
        controls: Channels,
    ) {
        let at = after + minutes(rng, 30, 120);
        if at >= self.holds_until(victim) {
            return;
        }
        let share_per_mille = share.0 + rng.below(u64::from(share.1 - share.0) + 1) as u16;
        self.push_answering(
            victim,
            at,
            What::InstantPayoutRequest {
                to,
                share_per_mille,
            },
            Some(ctx),
            campaign,
            controls,
        );
    }

    pub(super) fn mule_ring(&mut self, rng: &mut Rng, campaign: u8) {
        // `--victims` counts victims, not rings.
        let rings = self.scaled(3.0, 2, 10);
        for _ in 0..rings {
            if self.lives.is_empty() {
                return;
            }
            let seller = rng.below(self.lives.len() as u64) as usize;
            let country = self.lives[seller].history.country;
            let mules: Vec<Dest> = (0..1 + rng.below(2))
                .map(|_| {
                    let bank = self.institutions.bank_in(rng, country);
                    Dest::new(rng, bank)
                })
                .collect();
            let mut networks = Vec::new();
            let mut time = self.window.0 + rng.below(21 * DAY as u64) as i64;
            let mut victims = 0usize;
            while time < self.window.1 {
                let next = time + days(rng, 35.0, 60.0);
                // A phished victim whose city has a network no earlier
                // victim of the ring came from.
                let mut found = None;
                for _ in 0..20 {
                    let Some(victim) = self.pick_victim_in(rng, time, country) else {
                        break;
                    };
                    let Some(phished) = self.phished_login(victim, time) else {
                        continue;
                    };
                    if let Some(exit) = self.exit_off(rng, victim, &phished, &networks) {
                        found = Some((victim, phished, exit));
                        break;
                    }
                }
                let Some((victim, phished, exit)) = found else {
                    time = next;
                    continue;
                };
                networks.push(self.world.pools[exit.pool].network);
                let relayed = relayed_factor(rng);
                let ctx = Ctx {
                    session: phished.session,
                    addr: exit,
                    client: phished.client,
                    device: phished.device,
                };
                let mule = mules[victims % mules.len()];
                victims += 1;
                let changed = phished.time + minutes(rng, 20, 60);
                self.push_answering(
                    victim,
                    changed,
                    What::DestinationChange {
                        to: mule,
                        from: None,
                    },
                    Some(ctx),
                    campaign,
                    relayed,
                );
                self.takeover(rng, victim, changed, 40.0, campaign);
                let none = Channels::NONE;
                self.request(
                    rng,
                    victim,
                    ctx,
                    changed,
                    mule,
                    (1_000, 1_000),
                    campaign,
                    relayed,
                );
                let later = changed + days(rng, 2.0, 4.0);
                let share = (800, 1_000);
                let stolen = (ctx, phished.time);
                self.drain_later(
                    rng, victim, stolen, false, later, mule, share, campaign, none,
                );
                time = next;
            }
        }
    }
}

#[cfg(test)]
mod tests;
