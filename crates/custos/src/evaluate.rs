//! `custos evaluate FILE`: the backtest ([`custos_backtest`]), and
//! `custos evaluate login-risk`: the login-risk model on generated logins
//! ([`custos_backtest::login_risk`]). Here are the arguments, the config,
//! token key and rule directories they name, and the files and lines
//! written; the replay and the reports are the library's.
//!
//! `custos eval login-risk` is the old name of `custos evaluate
//! login-risk`, kept (hidden) for one release.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use custos_backtest::{Evaluation, Outcome, RulesUnderTest, login_risk};
use custos_core::features::FeatureConfig;
use custos_core::rules::RuleSet;
use custos_sim::logins::LoginWorldConfig;

#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvaluateArgs {
    #[command(subcommand)]
    pub command: Option<EvaluateCommand>,
    /// NDJSON history, in time order (as `custos simulate` writes it).
    #[arg(required = true)]
    pub file: Option<PathBuf>,
    /// Rules directory; default: the built-in default rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// A second rules directory to run on the same history and compare.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Config file for the token key and feature settings (hosting ASNs).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Where to write the JSON report; default: next to the history, as
    /// `<name>.report.json`.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where to write the HTML report; default: `<name>.report.html`.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Do not play the platform's side: no step-ups, hold confirmations or
    /// compromise reports, and every event replayed as written (open loop).
    #[arg(long)]
    pub no_responses: bool,
}

impl EvaluateArgs {
    /// The backtest of `file` under the built-in rules, reports next to it.
    pub fn backtest(file: PathBuf) -> EvaluateArgs {
        EvaluateArgs {
            command: None,
            file: Some(file),
            rules: None,
            compare: None,
            config: None,
            json: None,
            html: None,
            no_responses: false,
        }
    }
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum EvaluateCommand {
    /// Detection rate of the login-risk model against the share of
    /// legitimate logins challenged, on generated seller histories with
    /// naive, VPN and targeted attackers (Wiefling et al.).
    LoginRisk(LoginRiskArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct LoginRiskArgs {
    #[arg(long, default_value_t = 2_000)]
    accounts: usize,
    #[arg(long, default_value_t = 180)]
    days: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Attack logins per attacker model.
    #[arg(long, default_value_t = 1_000)]
    attacks: usize,
    /// Days without attacks at the start, for profiles to form.
    #[arg(long, default_value_t = 60)]
    warmup_days: u32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    match (&args.command, &args.file) {
        (Some(command), _) => run_command(command.clone()),
        (None, Some(file)) => backtest(&args, file),
        // clap requires one or the other.
        (None, None) => anyhow::bail!("evaluate: a history file or a command is required"),
    }
}

/// `custos evaluate <COMMAND>`, and `custos eval <COMMAND>` (deprecated).
pub fn run_command(command: EvaluateCommand) -> anyhow::Result<()> {
    match command {
        EvaluateCommand::LoginRisk(args) => login_risk(&args),
    }
}

fn backtest(args: &EvaluateArgs, file: &Path) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Some(custos_config::load(Some(path), Default::default())?),
        None => None,
    };
    // Tokens only need to be stable within the replay, unless the history
    // carries tokens made under your key.
    let tokenizer = match &config {
        Some(config)
            if config.destination_token_key.is_some()
                || config.secrets.token_key_file.is_some() =>
        {
            custos_config::load_token_key(config)?
        }
        _ => custos_backtest::replay_tokenizer(),
    };
    let features = config
        .as_ref()
        .map_or_else(FeatureConfig::default, |c| c.login_risk.features());
    let evaluation = Evaluation {
        history: file.to_path_buf(),
        base: load_rules(args.rules.as_deref())?,
        candidate: args
            .compare
            .as_deref()
            .map(|dir| load_rules(Some(dir)))
            .transpose()?,
        tokenizer,
        features,
        responses: !args.no_responses,
    };
    let outcome = custos_backtest::evaluate(&evaluation)?;
    let (json_path, html_path) = output_paths(args, file);
    std::fs::write(&json_path, outcome.to_json()?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    std::fs::write(&html_path, outcome.to_html())
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    print!("{}", outcome.base().headline_text(""));
    if let Outcome::Compared(comparison) = &outcome {
        print!("{}", comparison.candidate.headline_text("compare: "));
        let changed: u64 = comparison.changed.iter().map(|c| c.fraud + c.legit).sum();
        println!("events decided differently: {changed}");
    }
    println!(
        "report: {} and {}",
        html_path.display(),
        json_path.display()
    );
    Ok(())
}

fn load_rules(dir: Option<&Path>) -> anyhow::Result<RulesUnderTest> {
    let Some(dir) = dir else {
        return Ok(RulesUnderTest::built_in());
    };
    let source = custos_config::load_rules_dir(dir)
        .with_context(|| format!("cannot load rules from {}", dir.display()))?;
    let rules = RuleSet::compile(source, 1)
        .with_context(|| format!("invalid rules in {}", dir.display()))?;
    Ok(RulesUnderTest {
        rules: Arc::new(rules),
        dir: Some(dir.to_path_buf()),
    })
}

fn output_paths(args: &EvaluateArgs, file: &Path) -> (PathBuf, PathBuf) {
    let stem = file
        .file_stem()
        .map_or_else(|| "history".into(), |s| s.to_string_lossy().into_owned());
    let dir = file.parent().unwrap_or(Path::new("."));
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| dir.join(format!("{stem}.report.json")));
    let html_path = args
        .html
        .clone()
        .unwrap_or_else(|| dir.join(format!("{stem}.report.html")));
    (json_path, html_path)
}

fn login_risk(args: &LoginRiskArgs) -> anyhow::Result<()> {
    let config = LoginWorldConfig {
        accounts: args.accounts,
        days: args.days,
        seed: args.seed,
        attacks_per_model: args.attacks,
        warmup_days: args.warmup_days,
    };
    let started = std::time::Instant::now();
    let samples = login_risk::generate(&config)?;
    eprintln!(
        "generated {} events for {} sellers over {} days in {:.1}s",
        samples.len(),
        args.accounts,
        args.days,
        started.elapsed().as_secs_f64()
    );
    let report = login_risk::report(&samples);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", login_risk::table(&report));
    }
    Ok(())
}
