//! `custos evidence` (export, verify, public-key) and `custos tokens match`
//! (`custos tokens rotate` is in `rotate`).
//!
//! Export works offline against a data directory, the way `custos replay`
//! does: it opens the runtime (which rebuilds engine state from the
//! snapshot and the log), reads the campaign or case from the engine, and
//! hands it with the store to `custos-evidence`. Stop the server on that
//! data directory first, or use `GET /v1/campaigns/{id}/evidence` (or
//! `GET /v1/cases/{id}/evidence`) instead.
//!
//! `tokens match` reads the platform's own list of destination numbers and
//! turns each into a token with the data directory's token key. The numbers
//! are only held in memory: what is printed is the institution, the last
//! four digits and the token.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use custos_core::campaigns::Campaign;
use custos_core::cases::Case;

#[derive(clap::Subcommand)]
pub enum EvidenceCommand {
    /// Write a campaign's or a case's signed evidence pack (a tar file).
    Export(ExportArgs),
    /// Check a pack's signature and every file's hash.
    Verify(VerifyArgs),
    /// Print the public key packs from this data directory are signed with.
    PublicKey(DataDirArgs),
}

#[derive(clap::Args)]
pub struct DataDirArgs {
    /// Data directory; overrides the config file.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// TOML config file (for its data directory and keys).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["campaign", "case"])))]
pub struct ExportArgs {
    /// The campaign's id (`cmp_…`).
    #[arg(long)]
    campaign: Option<String>,
    /// The case's id (`case_…`): its accounts, from its opening to its
    /// last update.
    #[arg(long)]
    case: Option<String>,
    /// Where to write the pack.
    #[arg(long)]
    out: PathBuf,
    /// Days added before and after the attack window.
    #[arg(long, default_value_t = 7)]
    margin_days: u32,
    #[command(flatten)]
    dir: DataDirArgs,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The pack.
    file: PathBuf,
    /// The publisher's public key (64 hex digits). Without it the key in
    /// the pack is used, which shows the pack is whole, not who made it.
    #[arg(long)]
    public_key: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum TokensCommand {
    /// Turn the platform's destination numbers into tokens and say which
    /// tokens of a pack (or of the log) they are.
    Match(MatchArgs),
    /// Move a stopped instance's data to a new destination token key:
    /// writes a new data directory whose stored tokens are those of the
    /// new key, from the platform's destination numbers.
    Rotate(crate::rotate::RotateArgs),
}

#[derive(clap::Args)]
pub struct MatchArgs {
    /// CSV of institution_id,account_number (a header line is allowed).
    #[arg(long)]
    numbers: PathBuf,
    /// An evidence pack whose tokens to match; without it every token is
    /// printed.
    #[arg(long)]
    pack: Option<PathBuf>,
    #[command(flatten)]
    dir: DataDirArgs,
}

pub(crate) fn load_config(dir: &DataDirArgs) -> anyhow::Result<custos_config::Config> {
    let overrides = custos_config::Overrides {
        data_dir: dir.data_dir.clone(),
        ..custos_config::Overrides::default()
    };
    Ok(custos_config::load(dir.config.as_deref(), overrides)?)
}

pub fn run(command: EvidenceCommand) -> anyhow::Result<()> {
    match command {
        EvidenceCommand::Export(args) => export(args),
        EvidenceCommand::Verify(args) => verify(args),
        EvidenceCommand::PublicKey(args) => {
            let config = load_config(&args)?;
            let key = custos_evidence::load_or_create_signing_key(&config.data_dir)?;
            println!("{}", custos_evidence::sign::public_key_hex(&key));
            Ok(())
        }
    }
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let config = load_config(&args.dir)?;
    if !config.data_dir.exists() {
        bail!(
            "data directory {} does not exist",
            config.data_dir.display()
        );
    }
    let key = custos_evidence::load_or_create_signing_key(&config.data_dir)?;
    let runtime = custos_runtime::open(&config, custos_store::SqliteOptions::default())?;
    let result = export_with(&runtime, &args, &key);
    runtime
        .shutdown_blocking()
        .context("closing the data directory")?;
    let summary = result?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn export_with(
    runtime: &custos_runtime::Runtime,
    args: &ExportArgs,
    key: &custos_evidence::sign::SigningKey,
) -> anyhow::Result<custos_evidence::ExportSummary> {
    let reader = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting a reader")?;
    let scope = match (&args.campaign, &args.case) {
        (Some(id), _) => {
            let lookup = id.clone();
            let found = reader
                .block_on(runtime.read(move |engine| engine.campaigns().campaign(&lookup).cloned()))
                .context("reading the campaign")?;
            if found.is_null() {
                bail!("no campaign with id {id:?}");
            }
            let campaign: Campaign =
                serde_json::from_value(found).context("reading the campaign back")?;
            custos_evidence::PackScope::campaign(&campaign)
        }
        (None, Some(id)) => {
            let lookup = id.clone();
            let found = reader
                .block_on(runtime.read(move |engine| {
                    engine
                        .cases()
                        .get(&lookup)
                        .map(|case| (case.clone(), engine.case_trouble_since(case)))
                }))
                .context("reading the case")?;
            let found: Option<(Case, Option<i64>)> =
                serde_json::from_value(found).context("reading the case back")?;
            let Some((case, trouble_since)) = found else {
                bail!("no case with id {id:?}");
            };
            custos_evidence::PackScope::case(&case, trouble_since)
        }
        (None, None) => bail!("give --campaign or --case"),
    };
    let mut options = custos_evidence::ExportOptions::now(env!("CARGO_PKG_VERSION"));
    options.margin_secs = i64::from(args.margin_days) * 86_400;
    // Written beside the target and renamed: a pack cut short never has
    // the name asked for.
    let parent = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let summary = {
        let mut out = std::io::BufWriter::new(temp.as_file_mut());
        let summary = custos_evidence::export(
            &scope,
            runtime.store().as_ref(),
            runtime.parser(),
            key,
            &options,
            &mut out,
        )?;
        use std::io::Write as _;
        out.flush().context("writing the pack")?;
        summary
    };
    temp.as_file().sync_all().context("writing the pack")?;
    temp.persist(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(summary)
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let report = custos_evidence::verify(std::io::BufReader::new(file), args.public_key.as_deref());
    for name in &report.ok_files {
        println!("ok      {name}");
    }
    for failure in &report.failures {
        println!("FAILED  {failure}");
    }
    if report.passed() {
        if report.key_given {
            println!("verified: signature and every file match (key given)");
        } else {
            println!(
                "verified: signature and every file match, with the key inside the pack (public key {}); \
                 compare it with the publisher's to know who made it",
                report.public_key.as_deref().unwrap_or("?")
            );
        }
        Ok(())
    } else {
        bail!(
            "the pack does not verify: {} problem(s)",
            report.failures.len()
        )
    }
}

pub fn run_tokens(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Match(args) => match_numbers(args),
        TokensCommand::Rotate(args) => crate::rotate::run(args),
    }
}

fn match_numbers(args: MatchArgs) -> anyhow::Result<()> {
    let config = load_config(&args.dir)?;
    // A token key generated now would match nothing: the data directory
    // must already hold the one its tokens were made with.
    let generated_here = config.data_dir.join(custos_config::TOKEN_KEY_FILE);
    // The environment is already applied to the config by `load`.
    let configured =
        config.destination_token_key.is_some() || config.secrets.token_key_file.is_some();
    if !configured && !generated_here.is_file() {
        bail!(
            "{} holds no destination token key: name the data directory the pack's tokens were made in",
            config.data_dir.display()
        );
    }
    let secrets = custos_runtime::secrets::load_secrets(&config)?;
    let pack_tokens = match &args.pack {
        Some(pack) => Some(tokens_in_pack(pack)?),
        None => None,
    };
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record([
        "line",
        "institution_id",
        "account_last4",
        "destination_token",
        "in_pack",
        "accounts",
    ])?;
    let mut matched = 0;
    for_each_number(&args.numbers, |line, institution, number| {
        let (institution, token) =
            written_token(&secrets.tokenizer, &args.numbers, line, institution, number)?;
        let digits: Vec<char> = number
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let last4: String = digits[digits.len().saturating_sub(4)..].iter().collect();
        let (in_pack, accounts) = match &pack_tokens {
            None => (String::new(), String::new()),
            Some(tokens) => match tokens.get(&token) {
                Some(accounts) => {
                    matched += 1;
                    ("yes".to_string(), accounts.clone())
                }
                None => ("no".to_string(), String::new()),
            },
        };
        out.write_record([
            line.to_string(),
            institution,
            last4,
            token,
            in_pack,
            accounts,
        ])?;
        Ok(())
    })?;
    out.flush()?;
    if pack_tokens.is_some() {
        eprintln!("{matched} number(s) match destinations of the pack");
    }
    Ok(())
}

/// Calls `visit` with each line of a numbers file (CSV of
/// `institution_id,account_number`, a header line allowed): its line
/// number, the institution and the number as written. The numbers are only
/// held in memory, and no error quotes one.
pub(crate) fn for_each_number(
    path: &Path,
    mut visit: impl FnMut(usize, &str, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut text = String::new();
    std::fs::File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    for (index, record) in reader.records().enumerate() {
        let line = index + 1;
        // The csv error names the line and the field count, never the values.
        let record = record.with_context(|| format!("{}: line {line}", path.display()))?;
        let (Some(institution), Some(number)) = (record.get(0), record.get(1)) else {
            bail!(
                "{}: line {line}: expected institution_id,account_number",
                path.display()
            );
        };
        if line == 1 && number.trim().eq_ignore_ascii_case("account_number") {
            continue;
        }
        visit(line, institution, number)?;
    }
    Ok(())
}

/// `(institution_id, token)` of a number as written on `line` of `path`.
pub(crate) fn written_token(
    tokenizer: &custos_core::DestinationTokenizer,
    path: &Path,
    line: usize,
    institution: &str,
    number: &str,
) -> anyhow::Result<(String, String)> {
    match tokenizer.token_of_written(institution, number) {
        Some(found) => Ok(found),
        // Never echo the number.
        None => bail!(
            "{}: line {line}: the institution or number has no letters or digits",
            path.display()
        ),
    }
}

/// Destination token → the accounts that paid to it, from a pack's
/// by-institution.csv (checked first: a tampered pack is refused).
fn tokens_in_pack(pack: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let file =
        std::fs::File::open(pack).with_context(|| format!("cannot open {}", pack.display()))?;
    let report = custos_evidence::verify(std::io::BufReader::new(file), None);
    if !report.passed() {
        bail!(
            "{} does not verify: {}",
            pack.display(),
            report.failures.join("; ")
        );
    }
    let file =
        std::fs::File::open(pack).with_context(|| format!("cannot open {}", pack.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut tokens = BTreeMap::new();
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.path()?.to_string_lossy() != "by-institution.csv" {
            continue;
        }
        let mut reader = csv::Reader::from_reader(entry);
        let headers = reader.headers()?.clone();
        let token_at = headers.iter().position(|h| h == "destination_token");
        let accounts_at = headers.iter().position(|h| h == "accounts");
        let (Some(token_at), Some(accounts_at)) = (token_at, accounts_at) else {
            bail!("by-institution.csv has no destination_token or accounts column");
        };
        for record in reader.records() {
            let record = record?;
            let token = record.get(token_at).unwrap_or("").to_string();
            let accounts = record.get(accounts_at).unwrap_or("").to_string();
            tokens
                .entry(token)
                .and_modify(|a: &mut String| {
                    a.push(' ');
                    a.push_str(&accounts);
                })
                .or_insert(accounts);
        }
    }
    Ok(tokens)
}
