//! The login-risk model on a history small enough to score by hand, under
//! both mixtures: a wrong weight, exponent, smoothing or prior fails here
//! (the model's own tests only compare scores with each other).
//!
//! The history: account A logs in 3 times with address 1, prefix 10, ASN
//! 100, country 44, user agent 7, browser 70, device 900; account B once with
//! address 2, prefix 20, ASN 100, country 44, user agent 8, browser 70,
//! device 901. No OS or device type: those levels drop out.
//!
//! Population (4 logins, 2 accounts), `p(x) = (count + 1) / (observed +
//! distinct + 1)`, every trait observed 4 times:
//!
//! | value | count | distinct | p(x) |
//! |---|---|---|---|
//! | address 3 (unseen) | 0 | 2 | 1/7 |
//! | prefix 10 | 3 | 2 | 4/7 |
//! | ASN 100, country 44, browser 70 | 4 | 1 | 5/6 |
//! | user agent 9, device 902 (unseen) | 0 | 2 | 1/7 |
//!
//! Account A (n = 3 logins with each trait, α = 1), `p(x | A) = (c + p(x)) /
//! (n + 1)`, and the ratio `p(x) / p(x | A)`:
//!
//! | value | c | p(x given A) | ratio |
//! |---|---|---|---|
//! | unseen (p = 1/7) | 0 | 1/28 | 4 |
//! | prefix 10 | 3 | 25/28 | 16/25 |
//! | ASN 100, country 44, browser 70 | 3 | 23/24 | 20/23 |
//!
//! Prior: `(1/accounts) / (n_A / logins) = (1/2) / (3/4) = 2/3`.

use crate::login_risk::{LoginRiskParams, Mixture, score};
use crate::population::Population;
use crate::profile::{BehaviourProfile, LoginTraits, TraitKind};

fn traits(ip: u64, network: u64, ua: u64, device: u64) -> LoginTraits {
    LoginTraits::with(&[
        (TraitKind::Ip, ip),
        (TraitKind::Network, network),
        (TraitKind::Asn, 100),
        (TraitKind::Country, 44),
        (TraitKind::UserAgent, ua),
        (TraitKind::Browser, 70),
        (TraitKind::Device, device),
    ])
}

/// A's profile and the population after the history above.
fn history() -> (BehaviourProfile, Population) {
    let mut population = Population::new();
    let mut a = BehaviourProfile::default();
    let mut b = BehaviourProfile::default();
    for day in 0..3 {
        let t = traits(1, 10, 7, 900);
        population.record(&t, a.logins() == 0);
        a.record(&t, day * super::DAY, 180);
    }
    let t = traits(2, 20, 8, 901);
    population.record(&t, b.logins() == 0);
    b.record(&t, 0, 180);
    (a, population)
}

fn params(mixture: Mixture) -> LoginRiskParams {
    LoginRiskParams {
        mixture,
        ..LoginRiskParams::default()
    }
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-12,
        "{what}: got {got}, worked out by hand {want}"
    );
}

#[test]
fn the_history_is_counted_as_worked_out() {
    let (a, population) = history();
    assert_eq!((population.logins(), population.accounts()), (4, 2));
    assert_eq!(a.logins(), 3);
    close(
        population.probability(TraitKind::Ip, 3),
        1.0 / 7.0,
        "p(address 3)",
    );
    close(
        population.probability(TraitKind::Network, 10),
        4.0 / 7.0,
        "p(prefix 10)",
    );
    close(
        population.probability(TraitKind::Asn, 100),
        5.0 / 6.0,
        "p(ASN 100)",
    );
    close(
        population.probability(TraitKind::Device, 902),
        1.0 / 7.0,
        "p(device 902)",
    );
}

/// A stranger on A's home network and browser: new address, user agent and
/// device; known prefix, ASN, country and browser.
#[test]
fn a_new_device_on_the_owners_network_scores_as_worked_out_by_hand() {
    let (a, population) = history();
    let login = traits(3, 10, 9, 902);
    let prior = (2.0f64 / 3.0).log10(); // -0.176091

    // Geometric: each family Σ w·log10(ratio) / Σ w over present levels.
    // network: 0.45·log 4 + 0.2·log(16/25) + (0.25 + 0.1)·log(20/23) = 0.210919
    // client:  (0.5·log 4 + 0.3·log(20/23)) / 0.8                     = 0.353526
    // device:  log 4                                                  = 0.602060
    // total with the prior                                            = 0.990413
    let network =
        0.45 * 4f64.log10() + 0.2 * (16.0f64 / 25.0).log10() + 0.35 * (20.0f64 / 23.0).log10();
    let client = (0.5 * 4f64.log10() + 0.3 * (20.0f64 / 23.0).log10()) / 0.8;
    let device = 4f64.log10();
    let g = score(&a, &population, &login, &params(Mixture::Geometric));
    close(g.families[0], network, "geometric network");
    close(g.families[1], client, "geometric client");
    close(g.families[2], device, "geometric device");
    close(g.account_prior, prior, "prior");
    close(
        g.log10,
        network + client + device + prior,
        "geometric total",
    );
    assert!((g.log10 - 0.990413).abs() < 1e-6, "{g:?}");

    // Arithmetic (the paper): log10(Σ w·p(x) / Σ w·p(x | A)).
    // network: (0.45/7 + 0.2·4/7 + 0.35·5/6) / (0.45/28 + 0.2·25/28 + 0.35·23/24)
    //          = (79/168) / (1781/3360) = 1580/1781, log = -0.052007
    // client:  (0.5/7 + 0.3·5/6) / (0.5/28 + 0.3·23/24) = (9/28) / (171/560)
    //          = 20/19, log = 0.022276
    // device:  log 4 = 0.602060; total with the prior 0.396238
    let network = (1580.0f64 / 1781.0).log10();
    let client = (20.0f64 / 19.0).log10();
    let r = score(&a, &population, &login, &params(Mixture::Arithmetic));
    close(r.families[0], network, "arithmetic network");
    close(r.families[1], client, "arithmetic client");
    close(r.families[2], device, "arithmetic device");
    close(
        r.log10,
        network + client + device + prior,
        "arithmetic total",
    );
    assert!((r.log10 - 0.396238).abs() < 1e-6, "{r:?}");

    // Without the device family (the paper's setting) it is left out.
    let paper = score(
        &a,
        &population,
        &login,
        &LoginRiskParams {
            device_family: false,
            ..params(Mixture::Arithmetic)
        },
    );
    assert_eq!(paper.families[2], 0.0);
    close(
        paper.log10,
        network + client + prior,
        "arithmetic without devices",
    );
}

/// The owner's own login: every ratio is below 1.
#[test]
fn the_owners_login_scores_as_worked_out_by_hand() {
    let (a, population) = history();
    let login = traits(1, 10, 7, 900);
    // p(address 1) = p(user agent 7) = p(device 900) = 4/7 (count 3), and
    // p(x | A) = (3 + 4/7) / 4 = 25/28: ratio 16/25, like the prefix.
    // Geometric: network (0.65·log(16/25) + 0.35·log(20/23)) = -0.147227,
    // client (0.5·log(16/25) + 0.3·log(20/23)) / 0.8 = -0.143900,
    // device log(16/25) = -0.193820; total with the prior -0.661038.
    let g = score(&a, &population, &login, &params(Mixture::Geometric));
    let r16 = (16.0f64 / 25.0).log10();
    let r20 = (20.0f64 / 23.0).log10();
    close(g.families[0], 0.65 * r16 + 0.35 * r20, "owner network");
    close(g.families[1], (0.5 * r16 + 0.3 * r20) / 0.8, "owner client");
    close(g.families[2], r16, "owner device");
    assert!((g.log10 - -0.661038).abs() < 1e-6, "{g:?}");
}
