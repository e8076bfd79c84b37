//! `custos users`: the people who may log in to the console (`/console`).
//!
//! Users live in the data directory's console database, which the server
//! reads on every request: a user added, disabled or given a new password
//! here takes effect at once, even while `custos serve` runs (a disabled
//! user's sessions end at their next request). Passwords are read from
//! `CUSTOS_PASSWORD` or, without it, from the first line of standard input;
//! never from the command line, where other users of the machine could
//! read them. Every change is written to the audit trail as done by `cli`.

use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use custos_config::{Overrides, Role};
use custos_server::console::db::ConsoleDb;
use custos_server::console::session::hash_password;

#[derive(clap::Args)]
pub struct UsersArgs {
    /// TOML config file (for its data directory).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Data directory; overrides the config file.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(clap::Subcommand)]
enum UsersCommand {
    /// Add a user. The password comes from CUSTOS_PASSWORD or the first
    /// line of standard input (at least 12 characters).
    Add {
        name: String,
        /// viewer (reads), analyst (works holds), lead (also approves
        /// another's large release), admin (everything, audit trail).
        #[arg(long)]
        role: String,
    },
    /// List users, their roles and whether they are disabled.
    List,
    /// Disable a user: they cannot log in and their sessions end.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// Set a new password (from CUSTOS_PASSWORD or standard input); the
    /// user's sessions end.
    ResetPassword { name: String },
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("CUSTOS_PASSWORD") {
        return Ok(password);
    }
    eprintln!("password (one line, at least 12 characters):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password given: set CUSTOS_PASSWORD or write it to standard input");
    }
    Ok(password)
}

fn cli_actor() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.is_empty() => format!("cli:{user}"),
        _ => "cli".into(),
    }
}

pub fn run(args: UsersArgs) -> anyhow::Result<()> {
    let config = custos_config::load(
        args.config.as_deref(),
        Overrides {
            data_dir: args.data_dir,
            ..Overrides::default()
        },
    )?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let db = ConsoleDb::open_in(&config.data_dir)?;
    let actor = cli_actor();
    match args.command {
        UsersCommand::Add { name, role } => {
            let Some(role) = Role::parse(&role) else {
                bail!("--role: must be viewer, analyst, lead or admin, is {role:?}");
            };
            let hash = hash_password(&read_password()?)?;
            db.add_user(&name, role, &hash)?;
            db.audit(&actor, "local", "user_added", &name, role.as_str())?;
            println!("added {name} ({role})");
        }
        UsersCommand::List => {
            for user in db.users()? {
                println!(
                    "{}\t{}\t{}",
                    user.name,
                    user.role,
                    if user.disabled { "disabled" } else { "enabled" }
                );
            }
        }
        UsersCommand::Disable { name } => {
            db.set_disabled(&name, true)?;
            db.audit(&actor, "local", "user_disabled", &name, "")?;
            println!("disabled {name}; their sessions end at their next request");
        }
        UsersCommand::Enable { name } => {
            db.set_disabled(&name, false)?;
            db.audit(&actor, "local", "user_enabled", &name, "")?;
            println!("enabled {name}");
        }
        UsersCommand::ResetPassword { name } => {
            let hash = hash_password(&read_password()?)?;
            db.set_password(&name, &hash)?;
            db.audit(&actor, "local", "password_reset", &name, "")?;
            println!("new password set for {name}; their sessions end");
        }
    }
    Ok(())
}
