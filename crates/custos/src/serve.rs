//! `custos serve`: the HTTP API on the embedded store, until SIGTERM or
//! Ctrl-C; then requests in flight finish and the store closes cleanly.

use std::path::PathBuf;

use custos_config::{Config, Overrides};
use custos_core::rules::RemovalOverride;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file (see custos.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on; overrides the config file.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory; overrides the config file.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Rules directory (like rules/); overrides the config file. It is
    /// installed as a new version if it differs from the live one.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Confirms that the rules directory removes protection the live rule
    /// set has (every active rule, payout protection, a list the rules
    /// read); one item per flag, as the refusal lists them, e.g.
    /// `--confirm-removal list:blocked_ips`. Recorded with the new version.
    #[arg(long = "confirm-removal", value_name = "ITEM")]
    confirm_removal: Vec<String>,
    /// Why the removal is confirmed (required with --confirm-removal).
    #[arg(long, value_name = "TEXT")]
    override_reason: Option<String>,
    /// Who confirms the removal (required with --confirm-removal).
    #[arg(long, value_name = "NAME")]
    override_analyst: Option<String>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = custos_config::load(
        args.config.as_deref(),
        Overrides {
            listen: args.listen,
            data_dir: args.data_dir,
            rules_dir: args.rules,
            rules_override: removal_override(
                args.confirm_removal,
                args.override_reason,
                args.override_analyst,
            ),
        },
    )?;
    serve(config)
}

/// The override the flags give, if any flag is given (an incomplete one is
/// refused, naming what is missing, when the rules are installed).
fn removal_override(
    confirm_removal: Vec<String>,
    reason: Option<String>,
    analyst: Option<String>,
) -> Option<RemovalOverride> {
    if confirm_removal.is_empty() && reason.is_none() && analyst.is_none() {
        return None;
    }
    Some(RemovalOverride {
        confirm_removal,
        reason: reason.unwrap_or_default(),
        analyst: analyst.unwrap_or_default(),
    })
}

pub(crate) fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("custos-http")
        .build()?;
    runtime.block_on(async {
        let mut server = custos_server::start(config).await?;
        tokio::select! {
            _ = shutdown_signal() => {
                tracing::info!("shutting down: finishing requests in flight");
            }
            _ = server.wait() => {
                anyhow::bail!("the http server stopped unexpectedly");
            }
        }
        server.stop().await?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
