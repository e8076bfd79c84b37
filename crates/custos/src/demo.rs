//! `custos demo`: the 2018 seller-phishing campaign on a small marketplace,
//! simulated, replayed through the default rules and reported, in one
//! command.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::evaluate::{self, EvaluateArgs};
use crate::simulate::{self, SimulateArgs};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Sellers on the simulated marketplace.
    #[arg(long, default_value_t = 2_000)]
    pub sellers: usize,
    /// Days of history.
    #[arg(long, default_value_t = 180)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the history and the reports.
    #[arg(long, default_value = "custos-demo")]
    pub out: PathBuf,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let history = args.out.join("seller-phishing-2018.ndjson");
    let simulation = SimulateArgs {
        sellers: args.sellers,
        days: args.days,
        seed: args.seed,
        scenario: "seller-phishing-2018".into(),
        honest: "baseline".into(),
        output: Some(history.clone()),
    };
    println!(
        "simulating {} sellers over {} days with the 2018 seller-phishing campaign...",
        args.sellers, args.days
    );
    simulate::run(simulation)?;
    println!(
        "replaying {} through the default rules...",
        history.display()
    );
    evaluate::run(EvaluateArgs::backtest(history))
}
