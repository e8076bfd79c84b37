//! A synthetic marketplace: honest sellers selling, being paid out, taking
//! loans and now and then changing bank, with account-takeover campaigns
//! ([`crate::scenarios`]) mixed in, and the ground truth of every event.
//!
//! [`generate`] calls back with each event, in time order, as the public
//! API accepts it, plus a `truth` object ([`Truth`]) that the engine never
//! sees (`custos evaluate` removes it before parsing; see
//! `docs/scenarios.md`); [`write()`] writes them as NDJSON:
//!
//! ```json
//! "truth": {"actor": "seller" | "attacker" | "platform", "fraud": bool,
//!           "campaign": "phishing-2018", "scenario": "seller-phishing-2018",
//!           "controls": ["sms"]}
//! ```
//!
//! `fraud` is true for every attacker event and for every payout or loan
//! disbursement paid while an attacker's destination was the account's
//! current one; `campaign` names the ground-truth campaign of a fraud event
//! and `scenario` the scenario that made it; `controls` the verification
//! channels an attacker can answer ([`crate::truth`]).
//!
//! # The marketplace
//!
//! - **Time.** The simulated window starts on 2018-04-17 and lasts `days`.
//!   The sellers who exist when it opens (91%) were created over the three
//!   years before; each creation is a login from home and the first payout
//!   destination, set in that session. The others join during the window
//!   (about 20% growth a year). Logins follow [`crate::logins`]: homes,
//!   offices, devices, phones on carriers, travel, VPN users, typos and
//!   forgotten passwords.
//! - **Sales** are platform events, one per order, at any hour: each seller
//!   has a rate drawn log-normally (median 1.2 orders a day, a few sellers
//!   with dozens, weekends at 80%) and order values log-normal around
//!   €25. One marketplace currency: euros.
//! - **Payouts** every 14 days (the seller's own phase), at 04:00–06:00 UTC,
//!   of the whole balance when it is at least €10, to the account's current
//!   destination (the payout names none, as platforms send it).
//! - **Instant payouts**: a payout asked for in a session, naming its
//!   destination, of a share of the balance of the days before (nothing
//!   when that is under €10): the adaptive attackers' way out, and with
//!   `--honest noisy` some honest sellers' (the `noise` module).
//! - **Loans**: 6% of sellers a year apply (in a session), for two to eight
//!   weeks of sales; the platform disburses one to three days later to the
//!   current destination.
//! - **Sensitive changes** made in ordinary sessions: 3% of sellers a year
//!   change bank (70% to another bank of their country, 20% to a popular
//!   e-money issuer, 10% to a bank abroad), 5% change their password, 2%
//!   their e-mail address.
//! - **Institutions**: five banks per country with market shares 30, 22,
//!   16, 10 and 6 (ids `BANK<country><n>`, type `bank`), one small e-money
//!   issuer per country (`EMON<country>01`), a second, very small one in
//!   GB (`EMONGB02`, where mules get opened), and a popular pan-European
//!   e-money issuer (`EMONLU01`, 5% of sellers). Account numbers are made
//!   up, ten digits.
//!
//! # Victims
//!
//! When a victim notices (after a scenario-specific delay), the platform
//! labels the account `compromise_reported`; an hour or more later the
//! owner logs in from home, passes a `verification` and sets their own
//! destination back. Payouts then go to the owner again.
//!
//! # Determinism
//!
//! Every seller draws from its own stream, and each scenario from its own,
//! derived from the seed; events are sorted by time, account and order of
//! generation. The same arguments give byte-for-byte the same output.

use std::io::Write as _;

use serde_json::{Map, Value, json};

use crate::logins::{self, Action, DAY, Draft, History, START, SampleKind, Seller};
use crate::model::{
    AttackOnAccount, Channels, Ctx, Dest, Ev, HonestModel, Institutions, MAX_DAYS, MAX_SELLERS,
    MarketConfig, SellerLife, WINDOW_START_DAY, What,
};
use crate::rng::Rng;
use crate::scenarios;

mod noise;
use crate::truth::{Actor, Truth};
use crate::world::{COUNTRIES, World};

/// The marketplace's currency.
pub const CURRENCY: &str = "EUR";
/// How long before the window the existing sellers were created.
const PREHISTORY_DAYS: i64 = 3 * 365;
/// Share of the sellers created during the window, per year of window.
const GROWTH_PER_YEAR: f64 = 0.2;

/// Generates the marketplace and calls `emit` with each event in time
/// order.
pub fn generate(config: &MarketConfig, mut emit: impl FnMut(Value)) {
    let config = &MarketConfig {
        sellers: config.sellers.min(MAX_SELLERS),
        days: config.days.clamp(1, MAX_DAYS),
        ..config.clone()
    };
    let world = World::build();
    let institutions = Institutions::build();
    let mut lives: Vec<SellerLife> = (0..config.sellers)
        .map(|account| live(&world, config, account))
        .collect();
    let plan = scenarios::plan(&world, &institutions, config, &lives);
    let shared = match config.honest {
        HonestModel::Baseline => vec![None; lives.len()],
        HonestModel::Noisy => noise::shared_accounts(&institutions, config.seed, &lives),
    };
    let mut events = Vec::new();
    for (account, life) in lives.iter_mut().enumerate() {
        trade(
            &world,
            &institutions,
            config,
            life,
            &plan.attacks[account],
            shared[account],
            &mut events,
        );
    }
    events.sort_by_key(|e| (e.time, e.account, e.seq));
    for (index, event) in events.iter().enumerate() {
        emit(render(
            &world,
            &institutions,
            config.seed,
            index,
            event,
            &plan.campaigns,
        ));
    }
}

/// Writes the history as NDJSON, one event a line; returns the number of
/// events.
pub fn write(config: &MarketConfig, out: impl std::io::Write) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut count = 0u64;
    let mut failed = None;
    generate(config, |event| {
        if failed.is_some() {
            return;
        }
        let written = serde_json::to_writer(&mut out, &event)
            .map_err(std::io::Error::other)
            .and_then(|()| out.write_all(b"\n"));
        match written {
            Ok(()) => count += 1,
            Err(e) => failed = Some(e),
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    out.flush()?;
    Ok(count)
}

/// Step one of a seller: creation and logins over the window.
fn live(world: &World, config: &MarketConfig, account: usize) -> SellerLife {
    let mut rng = Rng::stream(config.seed, 20, account as u64);
    let mut seller = Seller::new(world, &mut rng, account as u32);
    let window_start = config.window_start();
    let window_end = config.window_end();
    let joiners = GROWTH_PER_YEAR * f64::from(config.days) / 365.0;
    let created = if rng.chance(joiners / (1.0 + joiners)) {
        // Joined during the window, early enough to sell a little.
        let last = (window_end - 14 * DAY).max(window_start + 1);
        window_start + rng.below((last - window_start) as u64) as i64
    } else {
        window_start - 1 - rng.below((PREHISTORY_DAYS * DAY) as u64) as i64
    };
    let mut history = History::new(seller.country, seller.city);
    let mut logins = Vec::new();
    seller.login_at_home(world, &mut rng, created, &mut logins, &mut history);
    let first_session = logins
        .last()
        .map(Ctx::of)
        .expect("a login at home ends in a successful login");
    let first_day = ((created - START).div_euclid(DAY) + 1).max(i64::from(WINDOW_START_DAY));
    let last_day = i64::from(WINDOW_START_DAY) + i64::from(config.days);
    seller.live(
        world,
        &mut rng,
        first_day as u32..last_day as u32,
        window_end,
        &mut logins,
        &mut history,
    );
    SellerLife {
        seller,
        rng,
        created,
        logins,
        history,
        first_session,
    }
}

/// A money movement in order: where the current destination points.
#[derive(Debug, Clone, Copy)]
enum Holder {
    Owner,
    Attacker(u8),
}

/// Step two of a seller: money, sensitive changes, and the attacks.
fn trade(
    world: &World,
    institutions: &Institutions,
    config: &MarketConfig,
    life: &mut SellerLife,
    attack: &AttackOnAccount,
    shared: Option<noise::SharedAccount>,
    out: &mut Vec<Ev>,
) {
    let account = life.seller.account();
    let first_event = out.len();
    let rng = &mut life.rng;
    let window_start = config.window_start();
    let window_end = config.window_end();
    let mut seq: u32 = 1 << 24;
    let mut next_seq = || {
        seq += 1;
        seq
    };
    let push = |out: &mut Vec<Ev>, time, what, ctx, actor, seq| {
        out.push(Ev {
            time,
            account,
            seq,
            what,
            ctx,
            actor,
            fraud: false,
            campaign: None,
            controls: Channels::NONE,
        });
    };

    // Logins as they were lived.
    for draft in &life.logins {
        out.push(Ev {
            time: draft.time,
            account,
            seq: draft.seq,
            what: What::Login(draft.action),
            ctx: Some(Ctx::of(draft)),
            actor: match draft.kind {
                SampleKind::Legit => Actor::Seller,
                SampleKind::Attack(_) => Actor::Attacker,
            },
            fraud: false,
            campaign: None,
            controls: Channels::NONE,
        });
    }

    // The first destination, set in the creation session.
    let home = life.seller.country;
    let first_institution = if rng.chance(0.05) {
        institutions.pan_e_money
    } else if rng.chance(0.01) {
        institutions.local_e_money[home]
    } else {
        institutions.bank_in(rng, home)
    };
    let mut own = Dest::new(rng, first_institution);
    if let Some(shared) = shared.filter(|s| s.from_creation) {
        own = shared.dest;
    }
    let mut changes: Vec<(i64, Holder)> =
        vec![(life.created + 120 + rng.below(480) as i64, Holder::Owner)];
    push(
        out,
        changes[0].0,
        What::DestinationChange {
            to: own,
            from: None,
        },
        Some(life.first_session),
        Actor::Seller,
        next_seq(),
    );

    // Sensitive changes and loan applications in ordinary sessions.
    let sessions: Vec<(i64, Ctx)> = life
        .logins
        .iter()
        .filter(|d| d.action == Action::LoginSuccess && d.time >= window_start)
        .map(|d| (d.time, Ctx::of(d)))
        .collect();
    let under_attack = |t: i64| {
        attack
            .takeovers
            .iter()
            .any(|k| k.from - 3 * DAY <= t && k.reported.is_none_or(|r| t <= r + DAY))
    };
    let years = f64::from(config.days) / 365.0;
    let mut loans: Vec<(i64, u32, u64)> = Vec::new();
    let mut owner_changes: Vec<(i64, Dest, Ctx)> = Vec::new();
    let daily_sales = (1.2f64.ln() + 1.0 * rng.normal()).exp().clamp(0.05, 40.0);
    let order_value = 2_500.0 * (0.4 * rng.normal()).exp();
    for (rate, kind) in [(0.03, 0u8), (0.05, 1), (0.02, 2), (0.06, 3)] {
        for _ in 0..rng.poisson(rate * years) {
            if sessions.is_empty() {
                break;
            }
            let (time, ctx) = sessions[rng.below(sessions.len() as u64) as usize];
            if under_attack(time) {
                continue;
            }
            let at = time + 60 + rng.below(900) as i64;
            match kind {
                0 => {
                    let institution = if rng.chance(0.7) {
                        institutions.bank_in(rng, home)
                    } else if rng.chance(2.0 / 3.0) {
                        institutions.pan_e_money
                    } else {
                        let abroad = rng.below(COUNTRIES.len() as u64) as usize;
                        institutions.bank_in(rng, abroad)
                    };
                    owner_changes.push((at, Dest::new(rng, institution), ctx));
                }
                1 => push(
                    out,
                    at,
                    What::PasswordChange,
                    Some(ctx),
                    Actor::Seller,
                    next_seq(),
                ),
                2 => push(
                    out,
                    at,
                    What::EmailChange,
                    Some(ctx),
                    Actor::Seller,
                    next_seq(),
                ),
                _ => {
                    let weeks = rng.uniform(2.0, 8.0);
                    let amount = ((daily_sales * order_value * 7.0 * weeks) as u64)
                        .clamp(50_000, 25_000_000);
                    let loan = next_seq();
                    push(
                        out,
                        at,
                        What::LoanApplication { loan, amount },
                        Some(ctx),
                        Actor::Seller,
                        loan,
                    );
                    loans.push((at, loan, amount));
                }
            }
        }
    }
    let mut requests: Vec<Ev> = Vec::new();
    let mut noise = Rng::stream(config.seed, 60, u64::from(account));
    if config.honest == HonestModel::Noisy {
        let mut noisy = noise::Noisy {
            world,
            institutions,
            home,
            sessions: &sessions,
            logins: &life.logins,
            window: (window_start, window_end),
            years,
            rng: &mut noise,
        };
        for event in noisy.events(shared, &under_attack, &mut owner_changes) {
            let event = Ev {
                account,
                seq: next_seq(),
                ..event
            };
            match event.what {
                What::InstantPayoutRequest { .. } => requests.push(event),
                _ => out.push(event),
            }
        }
    }
    // Bank changes in the order they happen, each from the one before.
    owner_changes.sort_by_key(|c| c.0);
    let mut owned = vec![(changes[0].0, own)];
    for (at, to, ctx) in &owner_changes {
        push(
            out,
            *at,
            What::DestinationChange {
                to: *to,
                from: Some(own),
            },
            Some(*ctx),
            Actor::Seller,
            next_seq(),
        );
        own = *to;
        owned.push((*at, own));
        changes.push((*at, Holder::Owner));
    }
    // The owner's own destination at a time: what a victim restores.
    let own_at = |t: i64| {
        let index = owned.partition_point(|o| o.0 <= t);
        owned[index.saturating_sub(1)].1
    };

    // The attacks, and the owner taking the account back.
    for event in &attack.events {
        match event.what {
            What::InstantPayoutRequest { .. } => requests.push(*event),
            What::LoanLikeOwners { loan, weeks } => {
                let amount = ((daily_sales * order_value * 7.0 * f64::from(weeks)) as u64)
                    .clamp(50_000, 25_000_000);
                out.push(Ev {
                    what: What::LoanApplication { loan, amount },
                    ..*event
                });
                loans.push((event.time, loan, amount));
            }
            What::LoanApplication { loan, amount } => {
                out.push(*event);
                loans.push((event.time, loan, amount));
            }
            _ => out.push(*event),
        }
    }
    for takeover in &attack.takeovers {
        if takeover.moves_destination {
            changes.push((takeover.from, Holder::Attacker(takeover.campaign)));
        }
        let Some(reported) = takeover.reported else {
            continue;
        };
        push(
            out,
            reported,
            What::CompromiseReported,
            None,
            Actor::Platform,
            next_seq(),
        );
        let back = reported + 3_600 + rng.below(6 * 3_600) as i64;
        if back >= window_end {
            continue;
        }
        let mut drafts = Vec::new();
        life.seller
            .login_at_home(world, rng, back, &mut drafts, &mut life.history);
        let mut session = None;
        for draft in &drafts {
            session = Some(Ctx::of(draft));
            push(
                out,
                draft.time,
                What::Login(draft.action),
                Some(Ctx::of(draft)),
                Actor::Seller,
                next_seq(),
            );
        }
        let last = drafts.last().map_or(back, |d| d.time);
        push(
            out,
            last + 120,
            What::VerificationPassed,
            session,
            Actor::Seller,
            next_seq(),
        );
        push(
            out,
            last + 240,
            What::DestinationChange {
                to: own_at(last),
                from: None,
            },
            session,
            Actor::Seller,
            next_seq(),
        );
        changes.push((last + 240, Holder::Owner));
        push(
            out,
            last + 600,
            What::AnalystClear,
            None,
            Actor::Platform,
            next_seq(),
        );
    }
    changes.sort_by_key(|c| c.0);
    let holder_at = |t: i64| {
        let index = changes.partition_point(|c| c.0 <= t);
        index.checked_sub(1).map_or(Holder::Owner, |i| changes[i].1)
    };

    // Sales, payouts every 14 days, and loan disbursements.
    let start = life.created.max(window_start);
    let first_day = (start - START).div_euclid(DAY) + 1;
    let last_day = (window_end - START).div_euclid(DAY);
    let phase = rng.below(14) as i64;
    let mut balance: u64 = 0;
    let mut payouts: u32 = 0;
    let money = |out: &mut Vec<Ev>, time: i64, what: What| {
        let (fraud, campaign) = match holder_at(time) {
            Holder::Owner => (false, None),
            Holder::Attacker(c) => (true, Some(c)),
        };
        out.push(Ev {
            time,
            account,
            seq: 0,
            what,
            ctx: None,
            actor: Actor::Platform,
            fraud,
            campaign,
            controls: Channels::NONE,
        });
    };
    loans.sort_by_key(|l| l.0);
    for (applied, loan, amount) in &loans {
        let at = applied + DAY + rng.below(2 * DAY as u64) as i64;
        if at < window_end {
            money(
                out,
                at,
                What::LoanDisbursement {
                    loan: *loan,
                    amount: *amount,
                },
            );
        }
    }
    requests.sort_by_key(|r| (r.time, r.seq));
    let mut requests = requests.into_iter().peekable();
    for day in first_day..last_day {
        let midnight = START + day * DAY;
        // Instant payouts asked for today, from the balance of the days
        // before; one that finds less than the minimum payout pays nothing.
        while let Some(request) = requests.next_if(|r| r.time < midnight + DAY) {
            let What::InstantPayoutRequest {
                to,
                share_per_mille,
            } = request.what
            else {
                continue;
            };
            let amount = balance * u64::from(share_per_mille) / 1_000;
            if request.time < midnight || amount < 1_000 {
                continue;
            }
            balance -= amount;
            // The owner names the destination they are paid to.
            let to = match request.actor {
                Actor::Seller => own_at(request.time),
                _ => to,
            };
            out.push(Ev {
                what: What::InstantPayout { to, amount },
                ..request
            });
        }
        let weekend = day.rem_euclid(7) >= 5;
        let season = match config.honest {
            HonestModel::Baseline => 1.0,
            HonestModel::Noisy => noise::season(day),
        };
        let rate = daily_sales * season * if weekend { 0.8 } else { 1.0 };
        for _ in 0..rng.poisson(rate) {
            let amount =
                (order_value * (0.8 * rng.normal()).exp()).clamp(100.0, 5_000_000.0) as u64;
            balance += amount;
            let at = midnight + rng.below(DAY as u64) as i64;
            push(out, at, What::Sale { amount }, None, Actor::Platform, 0);
        }
        if (day + phase) % 14 == 0 && balance >= 1_000 {
            payouts += 1;
            let at = midnight + 4 * 3_600 + rng.below(2 * 3_600) as i64;
            money(
                out,
                at,
                What::Payout {
                    number: payouts,
                    amount: balance,
                },
            );
            balance = 0;
        }
    }
    if config.honest == HonestModel::Noisy {
        for event in &mut out[first_event..] {
            let in_session = event.actor == Actor::Seller && !matches!(event.what, What::Login(_));
            if let (true, Some(ctx)) = (in_session, event.ctx) {
                event.ctx = Some(noise::Noisy::in_session(world, &mut noise, ctx));
            }
        }
    }
}

fn render(
    world: &World,
    institutions: &Institutions,
    seed: u64,
    index: usize,
    event: &Ev,
    campaigns: &[scenarios::Campaign],
) -> Value {
    let mut out = Map::new();
    out.insert("event_id".into(), json!(format!("m-{seed:x}-{index:08}")));
    let account = format!("seller-{:05}", event.account);
    out.insert("account_id".into(), json!(account));
    out.insert("time".into(), json!(logins::rfc3339(event.time)));
    let mut insert = |key: &str, value: Value| {
        out.insert(key.into(), value);
    };
    match event.what {
        What::Login(action) => match action {
            Action::LoginSuccess => {
                insert("type", json!("login"));
                insert("status", json!("success"));
            }
            Action::LoginFailure => {
                insert("type", json!("login"));
                insert("status", json!("failure"));
                insert("failure_reason", json!("wrong_password"));
            }
            Action::ResetRequest => insert("type", json!("password_reset_request")),
            Action::PasswordReset => {
                insert("type", json!("password_change"));
                insert("reason", json!("reset"));
            }
        },
        What::PasswordChange => {
            insert("type", json!("password_change"));
            insert("reason", json!("user"));
        }
        What::EmailChange => insert("type", json!("email_change")),
        What::PhoneChange => insert("type", json!("phone_change")),
        What::MfaMethodChange(method) => {
            insert("type", json!("mfa_change"));
            insert("change", json!("method_changed"));
            insert("method", json!(method.name()));
        }
        What::InstantPayout { to, amount } => {
            insert("type", json!("payout"));
            insert(
                "payout_id",
                json!(format!("ipo-{}-{}", event.account, event.seq)),
            );
            insert("amount", json!(amount));
            insert("currency", json!(CURRENCY));
            insert("source", json!("sales"));
            insert("destination", to.render(institutions));
        }
        What::InstantPayoutRequest { .. } | What::LoanLikeOwners { .. } => {
            unreachable!("the market turns requests into payouts and loans before rendering")
        }
        What::DestinationChange { to, from } => {
            insert("type", json!("payout_destination_change"));
            insert("destination", to.render(institutions));
            if let Some(from) = from {
                insert("previous_destination", from.render(institutions));
            }
        }
        What::LoanApplication { loan, amount } => {
            insert("type", json!("loan_application"));
            insert("loan_id", json!(format!("loan-{}-{loan}", event.account)));
            insert("amount", json!(amount));
            insert("currency", json!(CURRENCY));
        }
        What::LoanDisbursement { loan, amount } => {
            insert("type", json!("loan_disbursement"));
            insert("loan_id", json!(format!("loan-{}-{loan}", event.account)));
            insert("amount", json!(amount));
            insert("currency", json!(CURRENCY));
        }
        What::Sale { amount } => {
            insert("type", json!("sale"));
            insert("amount", json!(amount));
            insert("currency", json!(CURRENCY));
        }
        What::Payout { number, amount } => {
            insert("type", json!("payout"));
            insert("payout_id", json!(format!("po-{}-{number}", event.account)));
            insert("amount", json!(amount));
            insert("currency", json!(CURRENCY));
            insert("source", json!("sales"));
        }
        What::CompromiseReported => {
            insert("type", json!("label"));
            insert("label", json!("compromise_reported"));
            insert("analyst", json!("seller-support"));
        }
        What::AnalystClear => {
            insert("type", json!("analyst_action"));
            insert("action", json!("clear_account"));
            insert("analyst", json!("seller-support"));
            insert(
                "reason",
                json!("owner verified; their own bank details are restored"),
            );
        }
        What::VerificationPassed => {
            insert("type", json!("verification"));
            insert("status", json!("passed"));
            insert("method", json!("identity_document"));
        }
    }
    if let Some(ctx) = &event.ctx {
        let draft = Draft {
            time: event.time,
            account: event.account,
            seq: event.seq,
            kind: SampleKind::Legit,
            action: Action::LoginSuccess,
            session: ctx.session,
            addr: ctx.addr,
            client: ctx.client,
            device: ctx.device,
        };
        logins::insert_context(world, &draft, &mut out);
    }
    let campaign = event.campaign.and_then(|c| campaigns.get(usize::from(c)));
    Truth {
        actor: Some(event.actor),
        fraud: event.fraud,
        campaign: campaign.map(|c| c.name.to_string()),
        scenario: campaign.map(|c| c.scenario.name().to_string()),
        controls: event.controls.names(),
    }
    .attach(&mut out);
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use custos_core::{DestinationTokenizer, EventParser};

    use super::*;
    use crate::model::Scenario;

    fn events(sellers: usize, days: u32, seed: u64, scenarios: &[Scenario]) -> Vec<Value> {
        let mut out = Vec::new();
        generate(
            &MarketConfig {
                sellers,
                days,
                seed,
                scenarios: scenarios.to_vec(),
                honest: HonestModel::Baseline,
                victims: None,
            },
            |e| out.push(e),
        );
        out
    }

    fn text<'a>(event: &'a Value, path: &[&str]) -> &'a str {
        let mut value = event;
        for key in path {
            value = &value[*key];
        }
        value.as_str().unwrap_or_default()
    }

    fn is_attacker(event: &Value) -> bool {
        text(event, &["truth", "actor"]) == "attacker"
    }

    /// Accounts with an attacker event other than a failed login.
    fn victims(events: &[Value]) -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| is_attacker(e) && text(e, &["status"]) != "failure")
            .map(|e| text(e, &["account_id"]).to_string())
            .collect()
    }

    fn mules(events: &[Value]) -> BTreeSet<(String, String)> {
        events
            .iter()
            .filter(|e| is_attacker(e) && text(e, &["type"]) == "payout_destination_change")
            .map(|e| {
                (
                    text(e, &["destination", "institution_id"]).to_string(),
                    text(e, &["destination", "account_number"]).to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_history_and_another_seed_another() {
        let a = events(150, 40, 7, &[Scenario::SellerPhishing2018]);
        assert_eq!(a, events(150, 40, 7, &[Scenario::SellerPhishing2018]));
        assert_ne!(a, events(150, 40, 8, &[Scenario::SellerPhishing2018]));
    }

    #[test]
    fn every_event_is_valid_in_time_order_with_a_unique_id_and_ground_truth() {
        let events = events(300, 90, 3, &Scenario::ALL);
        assert!(events.len() > 20_000, "{}", events.len());
        let parser =
            EventParser::new(DestinationTokenizer::new(b"test-key-0123456789abcdef").unwrap());
        let mut ids = HashSet::new();
        let mut last = i64::MIN;
        let mut types = BTreeMap::<String, u64>::new();
        for event in &events {
            let mut object = event.as_object().expect("an object").clone();
            let truth = object.remove("truth").expect("every event has its truth");
            assert!(
                truth["fraud"].is_boolean() && truth["actor"].is_string(),
                "{truth}"
            );
            let parsed = parser
                .parse_object(object)
                .unwrap_or_else(|e| panic!("{e}: {event}"));
            assert!(ids.insert(parsed.event_id.clone()), "{}", parsed.event_id);
            assert!(parsed.unix_time() >= last, "out of order: {event}");
            last = parsed.unix_time();
            *types
                .entry(parsed.event_type.as_str().to_string())
                .or_default() += 1;
        }
        for wanted in [
            "login",
            "password_reset_request",
            "password_change",
            "email_change",
            "payout_destination_change",
            "sale",
            "payout",
            "loan_application",
            "loan_disbursement",
            "label",
            "verification",
            "analyst_action",
        ] {
            assert!(types.contains_key(wanted), "no {wanted}: {types:?}");
        }
    }

    #[test]
    fn honest_sellers_sell_are_paid_every_two_weeks_and_seldom_change_bank() {
        let events = events(400, 180, 5, &[]);
        assert!(
            events
                .iter()
                .all(|e| !is_attacker(e) && e["truth"]["fraud"] == false)
        );
        let mut payouts: HashMap<&str, Vec<i64>> = HashMap::new();
        let mut in_window_changes = 0;
        let window_start = logins::rfc3339(START + i64::from(WINDOW_START_DAY) * DAY);
        for event in &events {
            let account = text(event, &["account_id"]);
            match text(event, &["type"]) {
                "payout" => payouts.entry(account).or_default().push(
                    time::OffsetDateTime::parse(
                        text(event, &["time"]),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .expect("rfc 3339")
                    .unix_timestamp(),
                ),
                "payout_destination_change" if text(event, &["time"]) > window_start.as_str() => {
                    in_window_changes += 1
                }
                _ => {}
            }
        }
        // Paid every 14 days: consecutive payouts 14 days apart, give or
        // take the hour of payment (or a multiple when the balance was
        // too small).
        let gaps: Vec<i64> = payouts
            .values()
            .flat_map(|times| times.windows(2).map(|w| w[1] - w[0]))
            .collect();
        assert!(gaps.len() > 1_000, "{}", gaps.len());
        assert!(
            gaps.iter()
                .all(|g| (g + 3 * 3_600) % (14 * DAY) < 6 * 3_600),
            "{gaps:?}"
        );
        // New sellers' first destinations and 3% a year of changes: about
        // 40 + 6 for 400 sellers over half a year; far from a burst.
        assert!(
            (20..=90).contains(&in_window_changes),
            "{in_window_changes}"
        );
    }

    #[test]
    fn the_2018_campaign_phishes_about_one_seller_in_a_hundred_and_pays_mules_at_two_institutions()
    {
        let events = events(600, 120, 11, &[Scenario::SellerPhishing2018]);
        let victims = victims(&events);
        assert!((5..=6).contains(&victims.len()), "{}", victims.len());
        let institutions: BTreeSet<String> = mules(&events).into_iter().map(|m| m.0).collect();
        assert_eq!(
            institutions,
            ["BANKGB01", "EMONGB02"]
                .map(String::from)
                .into_iter()
                .collect()
        );
        // Mules are reused in runs: fewer mules than victims.
        assert!(mules(&events).len() < victims.len());
        // Attackers log in from hosting networks only.
        let hosting: HashSet<u32> = crate::logins::hosting_asns().into_iter().collect();
        for event in events
            .iter()
            .filter(|e| is_attacker(e) && text(e, &["type"]) == "login")
        {
            let asn = event["enrichment"]["network"]["asn"].as_u64().unwrap_or(0) as u32;
            assert!(hosting.contains(&asn), "{event}");
        }
        // Stolen money is paid only after the attacker's change, and both
        // sales payouts and loans are taken.
        let mut last_change_by_attacker: HashMap<&str, bool> = HashMap::new();
        let mut stolen_types = BTreeSet::new();
        for event in &events {
            let account = text(event, &["account_id"]);
            match text(event, &["type"]) {
                "payout_destination_change" => {
                    last_change_by_attacker.insert(account, is_attacker(event));
                }
                kind @ ("payout" | "loan_disbursement") => {
                    let stolen = event["truth"]["fraud"] == true;
                    assert_eq!(
                        last_change_by_attacker.get(account),
                        Some(&stolen),
                        "{event}"
                    );
                    if stolen {
                        stolen_types.insert(kind);
                    }
                }
                _ => {}
            }
        }
        assert_eq!(
            stolen_types,
            BTreeSet::from(["loan_disbursement", "payout"])
        );
        // Victims report, restore their own bank and are cleared by support.
        assert!(
            events
                .iter()
                .any(|e| text(e, &["label"]) == "compromise_reported")
        );
        assert!(
            events
                .iter()
                .any(|e| text(e, &["action"]) == "clear_account")
        );
    }

    #[test]
    fn victims_overrides_the_count_per_ten_thousand_sellers_past_its_cap() {
        let config = |victims| MarketConfig {
            sellers: 300,
            days: 60,
            seed: 2,
            scenarios: vec![Scenario::SellerPhishing2018, Scenario::MuleRing],
            honest: HonestModel::Baseline,
            victims,
        };
        let run = |config: &MarketConfig| {
            let mut out = Vec::new();
            generate(config, |e| out.push(e));
            out
        };
        let of_campaign = |events: &[Value], campaign: &str| {
            let only: Vec<Value> = events
                .iter()
                .filter(|e| text(e, &["truth", "campaign"]) == campaign)
                .cloned()
                .collect();
            victims(&only).len()
        };
        let scaled = run(&config(None));
        // 300 sellers: the floor of 5 victims.
        assert_eq!(of_campaign(&scaled, "phishing-2018"), 5);
        // Above the scenario's cap of 100, and the same history twice.
        let many = run(&config(Some(110)));
        assert_eq!(of_campaign(&many, "phishing-2018"), 110);
        assert!(run(&config(Some(110))) == many, "a second run differs");
        // The mule ring's count is of rings, not victims: unchanged.
        assert_eq!(
            of_campaign(&many, "mule-ring"),
            of_campaign(&scaled, "mule-ring")
        );
    }

    #[test]
    fn mule_strategies_differ_as_named() {
        let unique = events(300, 60, 2, &[Scenario::MulesUnique]);
        assert_eq!(mules(&unique).len(), victims(&unique).len());
        let reused = events(300, 60, 2, &[Scenario::MulesReused]);
        assert!(mules(&reused).len() <= 3, "{:?}", mules(&reused));
        assert!(victims(&reused).len() >= 5);
    }

    #[test]
    fn credential_stuffing_fails_on_many_accounts_from_shared_addresses_and_gets_into_a_few() {
        let events = events(1_200, 40, 4, &[Scenario::CredentialStuffing]);
        let failures: Vec<&Value> = events
            .iter()
            .filter(|e| is_attacker(e) && text(e, &["status"]) == "failure")
            .collect();
        let targets: HashSet<&str> = failures.iter().map(|e| text(e, &["account_id"])).collect();
        let addresses: HashSet<&str> = failures.iter().map(|e| text(e, &["ip"])).collect();
        assert!((240..=360).contains(&targets.len()), "{}", targets.len());
        assert!(addresses.len() <= 300, "{}", addresses.len());
        let mut accounts_per_address: HashMap<&str, HashSet<&str>> = HashMap::new();
        for failure in &failures {
            accounts_per_address
                .entry(text(failure, &["ip"]))
                .or_default()
                .insert(text(failure, &["account_id"]));
        }
        let busiest = accounts_per_address.values().map(HashSet::len).max();
        assert!(busiest >= Some(4), "{busiest:?}");
        let victims = victims(&events);
        assert!((1..=15).contains(&victims.len()), "{}", victims.len());
        assert!(victims.iter().all(|v| targets.contains(v.as_str())));
    }

    #[test]
    fn a_targeted_attacker_logs_in_from_the_victims_city_with_the_victims_browser() {
        let events = events(400, 90, 9, &[Scenario::TargetedAttacker]);
        let attacks: Vec<&Value> = events
            .iter()
            .filter(|e| is_attacker(e) && text(e, &["type"]) == "login")
            .collect();
        assert!(attacks.len() >= 3);
        for attack in attacks {
            let account = text(attack, &["account_id"]);
            let own: Vec<&Value> = events
                .iter()
                .filter(|e| {
                    text(e, &["account_id"]) == account
                        && text(e, &["type"]) == "login"
                        && !is_attacker(e)
                        && text(e, &["time"]) < text(attack, &["time"])
                })
                .collect();
            let cities: HashSet<&str> = own
                .iter()
                .map(|e| text(e, &["enrichment", "network", "city"]))
                .collect();
            let browsers: HashSet<&str> = own
                .iter()
                .map(|e| text(e, &["enrichment", "client", "browser"]))
                .collect();
            assert!(
                cities.contains(text(attack, &["enrichment", "network", "city"])),
                "{attack}"
            );
            assert!(
                browsers.contains(text(attack, &["enrichment", "client", "browser"])),
                "{attack}"
            );
            assert!(
                own.iter()
                    .all(|e| text(e, &["ip"]) != text(attack, &["ip"]))
            );
        }
    }

    #[test]
    fn a_slow_attacker_waits_days_between_login_and_change() {
        let events = events(400, 90, 6, &[Scenario::SlowAttacker]);
        let victims = victims(&events);
        assert!(victims.len() >= 3);
        for victim in &victims {
            let times: Vec<(&str, &str)> = events
                .iter()
                .filter(|e| is_attacker(e) && text(e, &["account_id"]) == victim)
                .map(|e| (text(e, &["type"]), text(e, &["time"])))
                .collect();
            let first_login = times.iter().find(|t| t.0 == "login").expect("a login").1;
            if let Some(change) = times.iter().find(|t| t.0 == "payout_destination_change") {
                let parse = |s: &str| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .expect("rfc 3339")
                        .unix_timestamp()
                };
                assert!(parse(change.1) - parse(first_login) >= 2 * DAY, "{times:?}");
            }
        }
    }
}
