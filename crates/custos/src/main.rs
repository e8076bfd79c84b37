//! The `custos` command: run the server, replay files, simulate, evaluate,
//! measure. Argument parsing and glue only: one module per command, each
//! mostly its clap arguments and calls into the libraries (the server, the
//! runtime, `custos-sim`, `custos-backtest`).

mod backup;
mod bench;
mod cluster;
mod demo;
mod evaluate;
mod evidence;
mod replay;
mod rotate;
mod rules;
mod serve;
mod simulate;
mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Events are parsed on HTTP or reader threads and freed on the engine
// thread; mimalloc handles such cross-thread frees without lock contention.
// Built without transparent huge pages (`no_thp` in Cargo.toml): each first
// touch of a huge page stalled the event that made it by about 5 ms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Custos: a real-time fraud decision engine for account takeover and payout
/// fraud on marketplaces.
///
/// Send account events (logins, password and MFA changes, payout-destination
/// changes, payouts, loans, sales, labels) over HTTP and get a decision back
/// for each: allow, challenge, review, hold or block, with the reasons.
#[derive(Parser)]
#[command(name = "custos", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (store: embedded SQLite, or PostgreSQL with
    /// `[store] url` or `CUSTOS_STORE_URL`).
    ///
    /// Without a config file Custos listens on 127.0.0.1:8080, keeps its data
    /// in ./custos-data, and accepts the development API key
    /// `custos-dev-key` (loopback only).
    Serve(serve::ServeArgs),
    /// Work with rule directories offline.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Run an NDJSON file of events through the engine, with durable writes,
    /// and print a summary of the decisions and the throughput.
    Replay(replay::ReplayArgs),
    /// Measure: the core engine, event generation, HTTP under load.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Write a synthetic marketplace history (honest sellers and attack
    /// scenarios, with ground truth) as NDJSON.
    Simulate(simulate::SimulateArgs),
    /// Replay a history through the engine and report stolen money stopped,
    /// honest sellers delayed, campaigns detected and how each rule did, as
    /// JSON and HTML; `custos evaluate login-risk` measures the login-risk
    /// model.
    Evaluate(evaluate::EvaluateArgs),
    /// Evaluate models on generated data with known ground truth
    /// (deprecated: use `custos evaluate login-risk`; goes in the next
    /// release).
    #[command(subcommand, hide = true)]
    Eval(evaluate::EvaluateCommand),
    /// Simulate the 2018 seller-phishing campaign on a small marketplace,
    /// evaluate the default rules on it, and print the headline figures.
    Demo(demo::DemoArgs),
    /// Write a consistent copy of the embedded store to a file, while a
    /// server may keep deciding (the keys are not in it).
    Backup(backup::BackupArgs),
    /// Restore a backup into a data directory that holds no store yet.
    Restore(backup::RestoreArgs),
    /// Manage the people who may log in to the analyst console at
    /// /console: add, list, disable, enable, reset-password.
    Users(users::UsersArgs),
    /// Evidence packs for campaigns: export a signed pack, verify one,
    /// print the public key they are signed with.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// Match the platform's own destination numbers to tokens, or move the
    /// data to a new destination token key (the numbers are never written
    /// anywhere).
    #[command(subcommand)]
    Tokens(evidence::TokensCommand),
    /// Cluster mode (`custos serve --cluster`): show the nodes, the owner
    /// of each partition, the events waiting and each replica's lag.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUSTOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Rules(command) => rules::run(command),
        Command::Replay(args) => replay::run(args),
        Command::Bench(command) => bench::run(command),
        Command::Simulate(args) => simulate::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Eval(command) => {
            eprintln!("warning: `custos eval` is deprecated; use `custos evaluate login-risk`");
            evaluate::run_command(command)
        }
        Command::Demo(args) => demo::run(args),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Users(args) => users::run(args),
        Command::Evidence(command) => evidence::run(command),
        Command::Tokens(command) => evidence::run_tokens(command),
        Command::Cluster(command) => cluster::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
