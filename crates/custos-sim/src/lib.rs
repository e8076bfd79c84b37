//! Custos's synthetic data: worlds with known ground truth, to measure how
//! well Custos's models and rules separate attackers from the people they
//! attack, and plain load for benchmarks.
//!
//! The generators have to be *plausible*: a model evaluated on them is only
//! as credible as the behaviour they simulate. Every choice that shapes the
//! difficulty of the task (how often people change networks, buy devices,
//! travel, change bank; how attackers work) is stated in the module docs of
//! the generator.
//!
//! - [`market`]: a marketplace history (`custos simulate`): honest sellers
//!   selling, being paid out and taking loans, with the account-takeover
//!   campaigns of [`scenarios`] mixed in, and the ground truth of every
//!   event ([`truth`]), for the backtest. Its shared vocabulary is in
//!   [`model`].
//! - [`logins`]: seller login histories with three attacker models, for the
//!   login-risk model (`custos evaluate login-risk`). The market's sellers
//!   log in the same way.
//! - `world` (countries, cities, ISPs and their address pools) and
//!   `clients` (devices and their user agents): the synthetic internet
//!   both are built on, private to the crate.
//! - [`synth`]: load for `custos bench`, which only has to be fast and
//!   shaped like real traffic, not plausible.
//!
//! Everything draws from [`rng::Rng`] and is deterministic for a given
//! seed: the same configuration gives byte-for-byte the same events on every
//! machine, so an evaluation result can be reproduced and compared across
//! model changes.
//!
//! It is its own crate, not part of the binary, so that the backtest, the
//! benchmarks and the campaign detector's calibration tests can all use one
//! generator and one ground-truth type. It depends on the core only for the
//! shapes it writes (enrichment), never on the engine.

mod clients;
pub mod logins;
pub mod market;
pub mod model;
pub mod rng;
pub mod scenarios;
pub mod synth;
pub mod truth;
mod world;

// A test suite of the campaign detector, kept with the simulator because it
// is a simulation; inline so the crate links one test binary, not two.
#[cfg(test)]
mod campaign_season;
