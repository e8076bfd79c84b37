//! Attack scenarios for the marketplace simulator ([`crate::market`]):
//! who is taken over, when, from where, to which mule accounts, and when
//! the victim notices. `docs/scenarios.md` describes each for users; the
//! choices that shape how hard a scenario is are stated here.
//!
//! Victim counts scale with the marketplace (per 10,000 sellers) and have a
//! floor, so that a small demo still has a campaign to find;
//! [`MarketConfig::victims`] replaces them (not the mule rings' count) for
//! sizing runs. Attacks fall in
//! the *attack window*: from two weeks after the simulated window opens to
//! ten days before it closes (a quarter of the window on short runs). A
//! victim is an account created at least a week before and with a
//! successful login before the attack (phished sellers are active sellers).
//!
//! - [`Scenario::SellerPhishing2018`]: the 2018 campaign. About 100 victims
//!   per 10,000 sellers (at least 5, at most 100), at uniformly random times.
//!   One crew: logins through two hosting/VPN providers (half the time an
//!   exit in the victim's country), a new device per session except that 40%
//!   of sessions come from one of the crew's three machines. In the session:
//!   30% change the e-mail address first; the payout destination is set to a
//!   mule three to fifteen minutes after login; 40% then apply for a loan of
//!   around €15,000. Mules sit at two institutions, GB's largest bank and a
//!   very small GB e-money issuer; each mule account takes two to six
//!   consecutive victims before the crew opens the next. The crew logs in
//!   again every nine days or so while it holds the account. Victims notice
//!   after 28 days on average (at least 5).
//! - [`Scenario::MulesUnique`] and [`Scenario::MulesReused`]: the same crew,
//!   with a fresh mule account for every victim (nothing shared but the
//!   institutions) or three mule accounts for all of them.
//! - [`Scenario::CredentialStuffing`]: a three-day wave of logins with
//!   leaked passwords against a quarter of the sellers, from 300 addresses
//!   (60% residential and mobile proxies anywhere, 40% hosting), one or two
//!   failures per account; 1.5% of the accounts (each seller who reused a
//!   password) let the bot in. Then a destination at one of five mule
//!   accounts at the popular pan-European e-money issuer (where honest
//!   sellers bank too), and 20% apply for a loan.
//! - [`Scenario::TargetedAttacker`]: 20 victims per 10,000 sellers (at least
//!   3). Each login comes from a residential network of the victim's city
//!   (an address the victim never used) with the victim's usual browser and
//!   platform, during the day; the destination goes to a fresh mule at the
//!   victim's country's largest bank. 30% apply for a loan. Victims notice
//!   after 35 days on average.
//! - [`Scenario::SlowAttacker`]: 30 victims per 10,000 sellers (at least 3).
//!   A first login through a VPN exit in the victim's country, then nothing
//!   for two to ten days; a second login from another address of the same
//!   provider changes the destination to a fresh mule at the victim's
//!   country's small e-money issuer (30% also apply for a loan).

mod adaptive;

use crate::clients::Client;
use crate::logins::{Action, DAY, START};
use crate::model::{
    AttackOnAccount, Channels, Ctx, Dest, Ev, Institutions, MarketConfig, Scenario, SellerLife,
    Takeover, What,
};
use crate::rng::Rng;
use crate::truth::Actor;
use crate::world::{Addr, COUNTRIES, NetworkKind, World};

/// A ground-truth campaign: one scenario's attacks.
#[derive(Debug, Clone)]
pub(crate) struct Campaign {
    pub name: &'static str,
    pub scenario: Scenario,
}

/// Every attack, per account.
pub(crate) struct Plan {
    pub campaigns: Vec<Campaign>,
    pub attacks: Vec<AttackOnAccount>,
}

/// Plans the attacks of `config.scenarios` on the sellers.
pub(crate) fn plan(
    world: &World,
    institutions: &Institutions,
    config: &MarketConfig,
    lives: &[SellerLife],
) -> Plan {
    let mut planner = Planner {
        world,
        institutions,
        lives,
        attacks: (0..lives.len())
            .map(|_| AttackOnAccount::default())
            .collect(),
        seqs: vec![1 << 28; lives.len()],
        window: attack_window(config),
        end: config.window_end(),
        scale: config.sellers as f64 / 10_000.0,
        victims: config.victims,
    };
    let mut campaigns = Vec::new();
    let mut scenarios = config.scenarios.clone();
    scenarios.sort();
    scenarios.dedup();
    for scenario in scenarios {
        let index = campaigns.len() as u8;
        campaigns.push(Campaign {
            name: scenario.campaign(),
            scenario,
        });
        let mut rng = Rng::stream(config.seed, 40 + scenario as u64, 0);
        match scenario {
            Scenario::SellerPhishing2018 => planner.phishing(&mut rng, index, Mules::Runs),
            Scenario::MulesUnique => planner.phishing(&mut rng, index, Mules::Unique),
            Scenario::MulesReused => planner.phishing(&mut rng, index, Mules::Three),
            Scenario::CredentialStuffing => planner.stuffing(&mut rng, index),
            Scenario::TargetedAttacker => planner.targeted(&mut rng, index),
            Scenario::SlowAttacker => planner.slow(&mut rng, index),
            Scenario::SessionTheft => planner.session_theft(&mut rng, index),
            Scenario::FactorTakeover => planner.factor_takeover(&mut rng, index),
            Scenario::ProfilePoisoning => planner.profile_poisoning(&mut rng, index),
            Scenario::MoneyEvasion => planner.money_evasion(&mut rng, index),
            Scenario::MuleRing => planner.mule_ring(&mut rng, index),
        }
    }
    Plan {
        campaigns,
        attacks: planner.attacks,
    }
}

fn attack_window(config: &MarketConfig) -> (i64, i64) {
    let start = config.window_start();
    let end = config.window_end();
    let margin = |days: i64| (days * DAY).min((end - start) / 4);
    let from = start + margin(14);
    let to = (end - margin(10)).max(from + 1);
    (from, to)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mules {
    /// Each mule account takes two to six consecutive victims.
    Runs,
    /// A fresh mule account per victim.
    Unique,
    /// Three mule accounts for everyone.
    Three,
}

struct Planner<'a> {
    world: &'a World,
    institutions: &'a Institutions,
    lives: &'a [SellerLife],
    attacks: Vec<AttackOnAccount>,
    seqs: Vec<u32>,
    window: (i64, i64),
    end: i64,
    scale: f64,
    /// `MarketConfig::victims`: overrides every scenario's own count.
    victims: Option<usize>,
}

/// A crew's infrastructure: hosting providers and its own machines.
struct Crew {
    providers: Vec<usize>,
    machines: Vec<(u64, Client)>,
}

impl Planner<'_> {
    /// A scenario's victim count: `per_10k` scaled to the marketplace
    /// within `floor..=cap`, unless `--victims` names the count.
    fn victims(&self, per_10k: f64, floor: usize, cap: usize) -> usize {
        self.victims
            .unwrap_or_else(|| self.scaled(per_10k, floor, cap))
    }

    /// `per_10k` scaled to the marketplace, within `floor..=cap`.
    fn scaled(&self, per_10k: f64, floor: usize, cap: usize) -> usize {
        ((per_10k * self.scale).round() as usize).clamp(floor, cap)
    }

    fn is_victim(&self, account: usize) -> bool {
        !self.attacks[account].takeovers.is_empty()
    }

    /// A seller to attack at `time`: created a week before, logged in
    /// before, not yet a victim. `None` when nobody qualifies.
    fn pick_victim(&self, rng: &mut Rng, time: i64) -> Option<usize> {
        if self.lives.is_empty() {
            return None;
        }
        for _ in 0..1_000 {
            let account = rng.below(self.lives.len() as u64) as usize;
            let life = &self.lives[account];
            if life.created < time - 7 * DAY
                && life.history.logged_in_before(time)
                && !self.is_victim(account)
            {
                return Some(account);
            }
        }
        None
    }

    fn random_time(&self, rng: &mut Rng) -> i64 {
        let (from, to) = self.window;
        from + rng.below((to - from) as u64) as i64
    }

    fn push(&mut self, account: usize, time: i64, what: What, ctx: Option<Ctx>, campaign: u8) {
        self.push_answering(account, time, what, ctx, campaign, Channels::NONE);
    }

    /// An attacker event at which he can answer `controls`.
    fn push_answering(
        &mut self,
        account: usize,
        time: i64,
        what: What,
        ctx: Option<Ctx>,
        campaign: u8,
        controls: Channels,
    ) {
        self.seqs[account] += 1;
        self.attacks[account].events.push(Ev {
            time,
            account: account as u32,
            seq: self.seqs[account],
            what,
            ctx,
            actor: Actor::Attacker,
            fraud: true,
            campaign: Some(campaign),
            controls,
        });
    }

    /// A successful attacker login.
    fn login(&mut self, account: usize, time: i64, ctx: Ctx, campaign: u8) {
        self.push(
            account,
            time,
            What::Login(Action::LoginSuccess),
            Some(ctx),
            campaign,
        );
    }

    fn loan(&mut self, rng: &mut Rng, account: usize, time: i64, ctx: Ctx, campaign: u8) {
        let amount = (1_500_000.0 * (0.5 * rng.normal()).exp()).clamp(200_000.0, 10_000_000.0);
        let loan = self.seqs[account] + 1;
        self.push(
            account,
            time,
            What::LoanApplication {
                loan,
                amount: amount as u64,
            },
            Some(ctx),
            campaign,
        );
    }

    fn takeover(&mut self, rng: &mut Rng, account: usize, from: i64, mean_days: f64, campaign: u8) {
        self.takeover_noticed_after(rng, account, from, (mean_days, 5.0), campaign);
    }

    /// A takeover from `from`, noticed after `notice.0` days on average and
    /// at least `notice.1`.
    fn takeover_noticed_after(
        &mut self,
        rng: &mut Rng,
        account: usize,
        from: i64,
        (mean_days, min_days): (f64, f64),
        campaign: u8,
    ) {
        let noticed = from + ((rng.exponential(mean_days).max(min_days)) * DAY as f64) as i64;
        self.attacks[account].takeovers.push(Takeover {
            campaign,
            from,
            reported: (noticed < self.end).then_some(noticed),
            moves_destination: true,
        });
    }

    /// The attacker's destination change at `changed`, a loan applied for
    /// in the same session with probability `loan_chance` (after
    /// `loan_after.0` seconds plus up to `loan_after.1` more), and the
    /// takeover it starts, noticed after `notice_days` on average.
    #[allow(clippy::too_many_arguments)]
    fn cash_out(
        &mut self,
        rng: &mut Rng,
        victim: usize,
        ctx: Ctx,
        changed: i64,
        mule: Dest,
        loan_chance: f64,
        loan_after: (i64, u64),
        notice_days: f64,
        campaign: u8,
    ) {
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
        if rng.chance(loan_chance) {
            let at = changed + loan_after.0 + rng.below(loan_after.1) as i64;
            self.loan(rng, victim, at, ctx, campaign);
        }
        self.takeover(rng, victim, changed, notice_days, campaign);
    }

    fn crew(&self, rng: &mut Rng, providers: usize, day: f64) -> Crew {
        let hosting: Vec<usize> = (0..self.world.networks.len())
            .filter(|n| self.world.networks[*n].kind == NetworkKind::Hosting)
            .collect();
        let providers = (0..providers)
            .filter_map(|_| rng.pick(&hosting).copied())
            .collect();
        let machines = (0..3)
            .map(|_| (rng.next_u64(), Client::random(rng, day)))
            .collect();
        Crew {
            providers,
            machines,
        }
    }

    /// A session through the crew's providers: half the time an exit in the
    /// victim's country when the provider has one.
    fn crew_session(&self, rng: &mut Rng, crew: &Crew, victim: usize, time: i64) -> Ctx {
        let world = self.world;
        let provider = *rng.pick(&crew.providers).expect("a crew has providers");
        let pools = &world.networks[provider].pools;
        let country = self.lives[victim].history.country;
        let local: Vec<usize> = pools
            .iter()
            .copied()
            .filter(|p| world.pools[*p].country == country)
            .collect();
        let pool = if !local.is_empty() && rng.chance(0.5) {
            *rng.pick(&local).expect("non-empty")
        } else {
            *rng.pick(pools).expect("providers have pools")
        };
        let day = (time - START) as f64 / DAY as f64;
        let (device, client) = if rng.chance(0.4) {
            *rng.pick(&crew.machines).expect("a crew has machines")
        } else {
            (rng.next_u64(), Client::random(rng, day))
        };
        Ctx {
            session: Some(rng.next_u64()),
            addr: world.random_in_pool(rng, pool),
            client,
            device,
        }
    }

    fn phishing(&mut self, rng: &mut Rng, campaign: u8, mules: Mules) {
        let count = self.victims(100.0, 5, 100);
        let mut times: Vec<i64> = (0..count).map(|_| self.random_time(rng)).collect();
        times.sort_unstable();
        let crew = self.crew(rng, 2, (self.window.0 - START) as f64 / DAY as f64);
        let institutions = [self.institutions.mule_bank, self.institutions.mule_e_money];
        let three: Vec<Dest> = (0..3)
            .map(|i| Dest::new(rng, institutions[usize::from(i == 0)]))
            .collect();
        let mut run_left = 0;
        let mut mule_count = 0usize;
        let mut mule = Dest::new(rng, institutions[0]);
        for time in times {
            let Some(victim) = self.pick_victim(rng, time) else {
                continue;
            };
            let mule = match mules {
                Mules::Unique => {
                    let institution = institutions[rng.below(2) as usize];
                    Dest::new(rng, institution)
                }
                Mules::Three => *rng.pick(&three).expect("three mules"),
                Mules::Runs => {
                    if run_left == 0 {
                        mule = Dest::new(rng, institutions[mule_count % 2]);
                        mule_count += 1;
                        run_left = 2 + rng.below(5);
                    }
                    run_left -= 1;
                    mule
                }
            };
            let ctx = self.crew_session(rng, &crew, victim, time);
            self.login(victim, time, ctx, campaign);
            let mut at = time;
            if rng.chance(0.3) {
                at += 60 + rng.below(240) as i64;
                self.push(victim, at, What::EmailChange, Some(ctx), campaign);
            }
            at += 180 + rng.below(720) as i64;
            let changed = at;
            self.cash_out(
                rng,
                victim,
                ctx,
                changed,
                mule,
                0.4,
                (120, 1_500),
                28.0,
                campaign,
            );
            let until = self.attacks[victim]
                .takeovers
                .last()
                .and_then(|t| t.reported)
                .unwrap_or(self.end);
            let mut next = changed + (rng.exponential(9.0).max(1.0) * DAY as f64) as i64;
            while next < until {
                let ctx = self.crew_session(rng, &crew, victim, next);
                self.login(victim, next, ctx, campaign);
                next += (rng.exponential(9.0).max(1.0) * DAY as f64) as i64;
            }
        }
    }

    fn stuffing(&mut self, rng: &mut Rng, campaign: u8) {
        let world = self.world;
        let (from, to) = self.window;
        let wave = from + rng.below(((to - from) - 3 * DAY).max(1) as u64) as i64;
        let day = (wave - START) as f64 / DAY as f64;
        let bots: Vec<(Addr, Client)> = (0..300)
            .map(|_| {
                let pool = if rng.chance(0.6) {
                    let country = rng.below(COUNTRIES.len() as u64) as usize;
                    *rng.pick(world.pools_in_country(country))
                        .expect("every country has pools")
                } else {
                    let country = rng.below(COUNTRIES.len() as u64) as usize;
                    *rng.pick(world.hosting_pools(country))
                        .expect("every country has hosting pools")
                };
                (world.random_in_pool(rng, pool), Client::random(rng, day))
            })
            .collect();
        let mules: Vec<Dest> = (0..5)
            .map(|_| Dest::new(rng, self.institutions.pan_e_money))
            .collect();
        for account in 0..self.lives.len() {
            if !rng.chance(0.25) {
                continue;
            }
            let mut at = wave + rng.below(3 * DAY as u64) as i64;
            let life = &self.lives[account];
            if life.created >= at || self.is_victim(account) {
                continue;
            }
            let (addr, client) = *rng.pick(&bots).expect("300 bots");
            let failed = Ctx {
                session: None,
                addr,
                client,
                device: rng.next_u64(),
            };
            for _ in 0..1 + rng.below(2) {
                self.push(
                    account,
                    at,
                    What::Login(Action::LoginFailure),
                    Some(failed),
                    campaign,
                );
                at += 2 + rng.below(20) as i64;
            }
            if !rng.chance(0.015) || !life.history.logged_in_before(at) {
                continue;
            }
            let ctx = Ctx {
                session: Some(rng.next_u64()),
                ..failed
            };
            self.login(account, at, ctx, campaign);
            at += 60 + rng.below(240) as i64;
            let mule = *rng.pick(&mules).expect("five mules");
            self.cash_out(rng, account, ctx, at, mule, 0.2, (60, 600), 21.0, campaign);
        }
    }

    fn targeted(&mut self, rng: &mut Rng, campaign: u8) {
        let world = self.world;
        let count = self.victims(20.0, 3, 20);
        for _ in 0..count {
            let day_start = self.random_time(rng).div_euclid(DAY) * DAY;
            let time = day_start + (8 * 3_600 + rng.below(10 * 3_600)) as i64;
            let Some(victim) = self.pick_victim(rng, time) else {
                continue;
            };
            let history = &self.lives[victim].history;
            let pools = world.residential_pools(history.country, history.city);
            let mut addr = None;
            for _ in 0..1_000 {
                let pool = *rng.pick(pools).expect("every city has a residential pool");
                let candidate = world.random_in_pool(rng, pool);
                addr = Some(candidate);
                if !history.ips.contains(&candidate.ip) {
                    break;
                }
            }
            let day = (time - START) as f64 / DAY as f64;
            let client = match history.most_used_client(time) {
                Some((platform, browser)) => Client::current(rng, platform, browser, day),
                None => Client::random(rng, day),
            };
            let ctx = Ctx {
                session: Some(rng.next_u64()),
                addr: addr.expect("at least one address was drawn"),
                client,
                device: rng.next_u64(),
            };
            let bank = self.institutions.banks[history.country][0];
            self.login(victim, time, ctx, campaign);
            let changed = time + 300 + rng.below(900) as i64;
            let mule = Dest::new(rng, bank);
            self.cash_out(
                rng,
                victim,
                ctx,
                changed,
                mule,
                0.3,
                (120, 1_200),
                35.0,
                campaign,
            );
        }
    }

    fn slow(&mut self, rng: &mut Rng, campaign: u8) {
        let count = self.victims(30.0, 3, 30);
        let crew = self.crew(rng, 1, (self.window.0 - START) as f64 / DAY as f64);
        for _ in 0..count {
            let time = self.random_time(rng);
            let Some(victim) = self.pick_victim(rng, time) else {
                continue;
            };
            let first = self.crew_session(rng, &crew, victim, time);
            self.login(victim, time, first, campaign);
            let later = time + ((2.0 + 8.0 * rng.unit()) * DAY as f64) as i64;
            if later >= self.end {
                continue;
            }
            let second = self.crew_session(rng, &crew, victim, later);
            self.login(victim, later, second, campaign);
            let changed = later + 300 + rng.below(900) as i64;
            let issuer = self.institutions.local_e_money[self.lives[victim].history.country];
            let mule = Dest::new(rng, issuer);
            self.cash_out(
                rng,
                victim,
                second,
                changed,
                mule,
                0.3,
                (120, 1_200),
                28.0,
                campaign,
            );
        }
    }
}
