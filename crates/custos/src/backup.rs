//! `custos backup` and `custos restore`: a consistent copy of the embedded
//! store, taken while a server keeps deciding, and its return into an empty
//! data directory (`custos_store::backup`; docs/operations.md).

use std::path::{Path, PathBuf};

use custos_config::{DATABASE_FILE, Overrides};
use custos_server::console::db::CONSOLE_DATABASE_FILE;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// TOML config file (see custos.example.toml); its data directory is
    /// backed up.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Data directory; overrides the config file.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The backup file to write (must not exist).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file, as written by `custos backup`.
    file: PathBuf,
    /// TOML config file; its data directory receives the store.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Data directory to restore into; overrides the config file. It must
    /// not hold a store yet.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn data_dir(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let config = custos_config::load(
        config.as_deref(),
        Overrides {
            data_dir,
            ..Overrides::default()
        },
    )?;
    if config.store.postgres_url().is_some() {
        anyhow::bail!(
            "store.url: this instance keeps its log in PostgreSQL; back it up with pg_dump \
             or a base backup (docs/operations.md), not custos backup"
        );
    }
    Ok(config.data_dir)
}

/// The console's users, audit trail and four-eyes requests live
/// in their own database beside the store; its backup sits beside the
/// store's, named after it.
fn console_backup(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(".console");
    PathBuf::from(name)
}

pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let dir = data_dir(args.config, args.data_dir)?;
    let console = dir.join(CONSOLE_DATABASE_FILE);
    if console.exists() && console_backup(&args.out).exists() {
        anyhow::bail!(
            "{} already exists; choose another file or remove it first",
            console_backup(&args.out).display()
        );
    }
    let info = custos_store::backup::backup(&dir.join(DATABASE_FILE), &args.out)?;
    println!(
        "backed up {} events (log position {}) to {} ({} bytes); the token and PII keys are not in it",
        info.events,
        info.last_seq,
        args.out.display(),
        info.bytes
    );
    if console.exists() {
        let out = console_backup(&args.out);
        let bytes = custos_store::backup::backup_companion(&console, &out)?;
        println!(
            "backed up the console's users and audit trail to {} ({bytes} bytes)",
            out.display()
        );
    }
    Ok(())
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let dir = data_dir(args.config, args.data_dir)?;
    let console = console_backup(&args.file);
    if console.exists() {
        // Checked before anything is written, so a damaged console backup
        // leaves the data directory as it was.
        custos_store::backup::check_companion(&console)?;
    }
    let info = custos_store::backup::restore(&args.file, &dir.join(DATABASE_FILE))?;
    println!(
        "restored {} events (log position {}) into {}; start custos with the same token and PII keys",
        info.events,
        info.last_seq,
        dir.display()
    );
    if console.exists() {
        custos_store::backup::restore_companion(&console, &dir.join(CONSOLE_DATABASE_FILE))?;
        println!("restored the console's users and audit trail");
    }
    Ok(())
}
