//! `custos demo`: the 2018 seller-phishing campaign on a small marketplace,
//! simulated, replayed through the default rules and reported, in one
//! command.
//!
//! `custos demo --serve` loads the simulated history into a data directory
//! instead of reporting on it, adds a console user `lead` (role lead) with
//! a new random password, prints the login, and serves the API and the
//! console there: the queue is full of held payouts, the engine has opened
//! their cases, and the campaign is found.

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
    /// Load the history into OUT/data and serve the console there (no
    /// report), with a printed login.
    #[arg(long)]
    pub serve: bool,
    /// Where to listen with --serve.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

/// The console user `--serve` creates (or gives a new password).
pub const DEMO_USER: &str = "lead";

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
        victims: None,
        output: Some(history.clone()),
    };
    println!(
        "simulating {} sellers over {} days with the 2018 seller-phishing campaign...",
        args.sellers, args.days
    );
    simulate::run(simulation)?;
    if args.serve {
        return serve(&args, history);
    }
    println!(
        "replaying {} through the default rules...",
        history.display()
    );
    evaluate::run(EvaluateArgs::backtest(history))
}

/// Loads `history` into `OUT/data`, sets up the `lead` user and serves.
fn serve(args: &DemoArgs, history: PathBuf) -> anyhow::Result<()> {
    let data_dir = args.out.join("data");
    println!(
        "loading {} into {}...",
        history.display(),
        data_dir.display()
    );
    crate::replay::run(crate::replay::ReplayArgs {
        file: history,
        data_dir: Some(data_dir.clone()),
        config: None,
        batch: 32_768,
        json: false,
        // A simulated history may run up to today or past it.
        no_time_bound: true,
    })?;
    let password = custos_server::console::session::random_token()
        .map_err(|e| anyhow::anyhow!("no randomness for the demo password: {e}"))?;
    let hash = custos_server::console::session::hash_password(&password)?;
    let db = custos_server::console::db::ConsoleDb::open_in(&data_dir)?;
    if db.user(DEMO_USER)?.is_some() {
        db.set_password(DEMO_USER, &hash)?;
    } else {
        db.add_user(DEMO_USER, custos_config::Role::Lead, &hash)?;
    }
    drop(db);
    let config = custos_config::load(
        None,
        custos_config::Overrides {
            listen: Some(args.listen),
            data_dir: Some(data_dir),
            ..custos_config::Overrides::default()
        },
    )?;
    println!();
    println!("console: http://{}/console", args.listen);
    println!("log in as {DEMO_USER} with password {password}");
    println!(
        "(Ctrl-C stops the server; the data stays in {})",
        args.out.display()
    );
    crate::serve::serve(config)
}
