//! `custos simulate`: writes a synthetic marketplace history with ground
//! truth as NDJSON ([`custos_sim::market`], scenarios in
//! `docs/scenarios.md`).

use std::path::PathBuf;

use anyhow::Context as _;
use custos_sim::market;
use custos_sim::model::{self, HonestModel, MarketConfig, Scenario};

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Sellers on the marketplace when the window opens, plus the ones who
    /// join during it (about 20% a year).
    #[arg(long, default_value_t = 10_000)]
    pub sellers: usize,
    /// Days of history, from 2018-04-17.
    #[arg(long, default_value_t = 180)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Attack scenarios, comma-separated: seller-phishing-2018,
    /// mules-unique, mules-reused, credential-stuffing, targeted-attacker,
    /// slow-attacker, and the attackers who read the rules: session-theft,
    /// factor-takeover, profile-poisoning, money-evasion, mule-ring;
    /// `adaptive` for those five, `all` for every one, `none` for honest
    /// sellers only.
    #[arg(long, default_value = "seller-phishing-2018")]
    pub scenario: String,
    /// Honest sellers: `baseline`, or `noisy` (shared bank accounts,
    /// accountants abroad, new phones, instant payouts, ...: see
    /// docs/scenarios.md), meant for the adaptive scenarios.
    #[arg(long, default_value = "baseline")]
    pub honest: String,
    /// Victims of each scenario that picks them by count (all but
    /// credential-stuffing and mule-ring), instead of its number per
    /// 10,000 sellers: for sizing runs, such as a campaign of a thousand
    /// sellers. Left out, histories are those of earlier versions.
    #[arg(long)]
    pub victims: Option<usize>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Parses `--scenario`.
pub(crate) fn parse_scenarios(list: &str) -> anyhow::Result<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "all" => scenarios.extend(Scenario::ALL.into_iter().chain(Scenario::ADAPTIVE)),
            "adaptive" => scenarios.extend(Scenario::ADAPTIVE),
            "none" => {}
            _ => scenarios.push(Scenario::from_name(name).with_context(|| {
                let known: Vec<&str> = Scenario::ALL
                    .iter()
                    .chain(&Scenario::ADAPTIVE)
                    .map(|s| s.name())
                    .collect();
                format!(
                    "--scenario: unknown scenario {name:?}; known: {}, adaptive, all, none",
                    known.join(", ")
                )
            })?),
        }
    }
    Ok(scenarios)
}

pub(crate) fn config_of(args: &SimulateArgs) -> anyhow::Result<MarketConfig> {
    anyhow::ensure!(
        (1..=model::MAX_SELLERS).contains(&args.sellers),
        "--sellers: must be 1 to {}",
        model::MAX_SELLERS
    );
    anyhow::ensure!(
        (1..=model::MAX_DAYS).contains(&args.days),
        "--days: must be 1 to {}",
        model::MAX_DAYS
    );
    if let Some(victims) = args.victims {
        anyhow::ensure!(
            (1..=args.sellers).contains(&victims),
            "--victims: must be 1 to the number of sellers ({})",
            args.sellers
        );
    }
    Ok(MarketConfig {
        sellers: args.sellers,
        days: args.days,
        seed: args.seed,
        scenarios: parse_scenarios(&args.scenario)?,
        honest: HonestModel::from_name(&args.honest).with_context(|| {
            format!(
                "--honest: unknown model {:?}; known: baseline, noisy",
                args.honest
            )
        })?,
        victims: args.victims,
    })
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let config = config_of(&args)?;
    let started = std::time::Instant::now();
    let events = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            market::write(&config, file)
                .with_context(|| format!("cannot write {}", path.display()))?
        }
        None => {
            market::write(&config, std::io::stdout().lock()).context("cannot write to stdout")?
        }
    };
    tracing::info!(
        events,
        seconds = started.elapsed().as_secs_f64(),
        "simulated marketplace written"
    );
    Ok(())
}
