//! The login-risk model of Freeman et al., "Who Are You? A Statistical
//! Approach to Measuring User Authenticity" (NDSS 2016).
//!
//! ```text
//!            ┬─┬   p(x_F)              p(u | attack)
//! risk(x) =  │ │  ─────────────  ×  ───────────────
//!            F     p(x_F | u)          p(u | legit)
//! ```
//!
//! over feature families `F`, each a hierarchy of traits, finest first:
//!
//! | family | levels (weight) |
//! |---|---|
//! | network | ip (0.45) → /24 or /48 prefix (0.2) → ASN (0.25) → country (0.1) |
//! | client | user agent (0.5) → browser+major (0.3) → OS+major (0.15) → device type (0.05) |
//! | device | device id (1.0) |
//!
//! - `p(x_l)`, the population probability of a level's value, is add-one
//!   smoothed over the distinct values seen ([`Population::probability`]).
//! - `p(x_l | u)`, the account's, is smoothed toward the population:
//!   `(c + α·p(x_l)) / (n + α)` with `c` the account's count of the value and
//!   `n` its logins carrying the trait. An unseen value thus keeps a share of
//!   its population probability instead of zero, and its ratio to the
//!   population is `(n + α) / α`: the longer the account's history, the
//!   stranger a new value.
//! - `p(u | attack) / p(u | legit) = (1 / accounts) / (n_u / logins)`: every
//!   account is equally likely to be attacked, and an account that logs in
//!   often is a priori less surprising.
//!
//! Levels are combined within a family either as Freeman's weighted sum of
//! probabilities ([`Mixture::Arithmetic`]) or as a weighted product of the
//! per-level ratios ([`Mixture::Geometric`], the default). See
//! `docs/login-risk.md` for why the default deviates, with the evaluation.
//!
//! Missing traits (no IP, no enrichment database, no device id) drop out:
//! the remaining levels' weights are renormalised, and a family with none
//! left contributes a ratio of 1. The result is reported as `log10(risk)`.

use serde::Serialize;

use crate::population::Population;
use crate::profile::{BehaviourProfile, LoginTraits, TraitCounts, TraitKind};

/// The `login.risk` at which the default rule `high_login_risk` challenges
/// (`rules/login.toml`; a test keeps the two equal). See
/// `docs/login-risk.md` for how it was chosen.
pub const DEFAULT_CHALLENGE_THRESHOLD: f64 = 1.0;

/// How the levels of one family are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mixture {
    /// Freeman et al.: `Σ w·p(x_l)` over `Σ w·p(x_l | u)`.
    Arithmetic,
    /// `Π (p(x_l) / p(x_l | u))^w`: a known country cannot mask an unknown
    /// address and network.
    Geometric,
}

/// One family: its levels and their weights.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub levels: &'static [(TraitKind, f64)],
}

pub const NETWORK: Family = Family {
    name: "network",
    levels: &[
        (TraitKind::Ip, 0.45),
        (TraitKind::Network, 0.2),
        (TraitKind::Asn, 0.25),
        (TraitKind::Country, 0.1),
    ],
};

pub const CLIENT: Family = Family {
    name: "client",
    levels: &[
        (TraitKind::UserAgent, 0.5),
        (TraitKind::Browser, 0.3),
        (TraitKind::Os, 0.15),
        (TraitKind::DeviceType, 0.05),
    ],
};

pub const DEVICE: Family = Family {
    name: "device",
    levels: &[(TraitKind::Device, 1.0)],
};

pub const FAMILIES: [Family; 3] = [NETWORK, CLIENT, DEVICE];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct LoginRiskParams {
    /// Pseudo-count pulling an account's estimate toward the population.
    pub alpha: f64,
    pub mixture: Mixture,
    /// Score the device id as a third family (the paper scores IP and user
    /// agent only; off reproduces that setting).
    pub device_family: bool,
}

impl Default for LoginRiskParams {
    fn default() -> Self {
        LoginRiskParams {
            alpha: 1.0,
            mixture: Mixture::Geometric,
            device_family: true,
        }
    }
}

/// The model's answer for one login, in log10 units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoginRisk {
    /// log10 of the risk: 0 is "as likely the owner as anyone", each unit
    /// ten times more likely an attacker.
    pub log10: f64,
    /// Each family's log10 contribution, in [`FAMILIES`] order.
    pub families: [f64; 3],
    /// log10 of `p(u | attack) / p(u | legit)`.
    pub account_prior: f64,
}

/// Scores a login against the account's profile and the population.
pub fn score(
    profile: &BehaviourProfile,
    population: &Population,
    traits: &LoginTraits,
    params: &LoginRiskParams,
) -> LoginRisk {
    score_with(profile, &profile.lookup(traits), population, traits, params)
}

/// [`score`] with the profile's counts for this login already looked up.
pub fn score_with(
    profile: &BehaviourProfile,
    counts: &TraitCounts,
    population: &Population,
    traits: &LoginTraits,
    params: &LoginRiskParams,
) -> LoginRisk {
    let mut families = [0.0; 3];
    for (slot, family) in families.iter_mut().zip(FAMILIES.iter()) {
        if family.name == DEVICE.name && !params.device_family {
            continue;
        }
        *slot = family_log10(family, counts, population, traits, params);
    }
    let account_logins = f64::from(profile.logins().max(1));
    let accounts = population.accounts().max(1) as f64;
    let logins = population.logins().max(1) as f64;
    let account_prior = ((1.0 / accounts) / (account_logins / logins)).log10();
    LoginRisk {
        log10: families.iter().sum::<f64>() + account_prior,
        families,
        account_prior,
    }
}

fn family_log10(
    family: &Family,
    counts: &TraitCounts,
    population: &Population,
    traits: &LoginTraits,
    params: &LoginRiskParams,
) -> f64 {
    let mut weight_sum = 0.0;
    let mut population_mix = 0.0;
    let mut account_mix = 0.0;
    let mut log_ratio = 0.0;
    for &(kind, weight) in family.levels {
        let Some(key) = traits.get(kind) else {
            continue;
        };
        let p_population = population.probability(kind, key);
        let n = f64::from(counts.observed(kind));
        let c = f64::from(counts.count(kind));
        let p_account = (c + params.alpha * p_population) / (n + params.alpha);
        weight_sum += weight;
        match params.mixture {
            Mixture::Arithmetic => {
                population_mix += weight * p_population;
                account_mix += weight * p_account;
            }
            Mixture::Geometric => log_ratio += weight * (p_population / p_account).log10(),
        }
    }
    if weight_sum == 0.0 {
        return 0.0;
    }
    match params.mixture {
        Mixture::Arithmetic => (population_mix / account_mix).log10(),
        Mixture::Geometric => log_ratio / weight_sum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn login(ip: u64, network: u64, asn: u64, country: u64, ua: u64, device: u64) -> LoginTraits {
        LoginTraits::with(&[
            (TraitKind::Ip, ip),
            (TraitKind::Network, network),
            (TraitKind::Asn, asn),
            (TraitKind::Country, country),
            (TraitKind::UserAgent, ua),
            (TraitKind::Browser, ua % 3),
            (TraitKind::Os, ua % 2),
            (TraitKind::DeviceType, 1),
            (TraitKind::Device, device),
        ])
    }

    /// 200 accounts, each with its own home address and device, sharing a
    /// few ISPs in one country; 30 logins each.
    fn world() -> (Vec<BehaviourProfile>, Population) {
        let mut population = Population::new();
        let mut profiles = vec![BehaviourProfile::default(); 200];
        for day in 0..30 {
            for (a, profile) in profiles.iter_mut().enumerate() {
                let a = a as u64;
                let t = login(1000 + a, 500 + a / 4, a % 5, 44, 7 + a % 4, 10_000 + a);
                population.record(&t, profile.logins() == 0);
                profile.record(&t, day * DAY, 180);
            }
        }
        (profiles, population)
    }

    #[test]
    fn the_owner_scores_low_and_strangers_score_high() {
        let (profiles, population) = world();
        for mixture in [Mixture::Arithmetic, Mixture::Geometric] {
            let params = LoginRiskParams {
                mixture,
                ..Default::default()
            };
            let p = &profiles[3];
            let owner = score(
                p,
                &population,
                &login(1003, 500, 3, 44, 10, 10_003),
                &params,
            );
            // Same country and browser, new address, ISP and device.
            let targeted = score(p, &population, &login(9_999, 9_000, 4, 44, 10, 77), &params);
            // Everything new, abroad.
            let naive = score(p, &population, &login(8_888, 8_000, 99, 1, 99, 78), &params);
            assert!(owner.log10 < 0.0, "{mixture:?}: owner {owner:?}");
            assert!(
                targeted.log10 > owner.log10 + 2.0,
                "{mixture:?}: {targeted:?} vs {owner:?}"
            );
            assert!(
                naive.log10 > targeted.log10,
                "{mixture:?}: {naive:?} vs {targeted:?}"
            );
        }
    }

    #[test]
    fn a_new_phone_at_home_is_less_risky_than_a_stranger_on_the_owners_browser() {
        let (profiles, population) = world();
        let params = LoginRiskParams::default();
        let p = &profiles[8];
        let new_phone = score(p, &population, &login(1008, 502, 3, 44, 12, 555), &params);
        let stranger = score(
            p,
            &population,
            &login(7_777, 7_000, 1, 44, 7, 556), // ua 7: the owner's (7 + 8 % 4)
            &params,
        );
        assert!(
            new_phone.log10 < stranger.log10,
            "{new_phone:?} vs {stranger:?}"
        );
    }

    #[test]
    fn missing_traits_drop_out_instead_of_counting_as_new() {
        let (profiles, population) = world();
        let params = LoginRiskParams::default();
        let bare = score(&profiles[0], &population, &LoginTraits::default(), &params);
        assert_eq!(bare.families, [0.0, 0.0, 0.0]);
    }
}
