//! `custos serve`: the HTTP API on the embedded store, until SIGTERM or
//! Ctrl-C; then requests in flight finish and the store closes cleanly.

use std::path::PathBuf;
use std::sync::Arc;

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
    /// Run as one node of a cluster over NATS JetStream (settings under
    /// `[cluster]`, docs/cluster.md).
    #[arg(long)]
    cluster: bool,
    /// This node's id in the cluster; overrides `cluster.node_id`.
    #[arg(long, value_name = "ID", requires = "cluster")]
    node_id: Option<String>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = custos_config::load(
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
    if let Some(node_id) = args.node_id {
        config.cluster.node_id = node_id;
    }
    if args.cluster {
        return serve_clustered(config);
    }
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

/// One node of a cluster: the runtime publishes the decisions of the
/// partitions it owns before its store commits them, and every event it
/// receives goes to its partition's owner.
fn serve_clustered(config: Config) -> anyhow::Result<()> {
    config.cluster.validate().map_err(|e| anyhow::anyhow!(e))?;
    if !config.webhooks.is_empty() {
        // Every node stores every event and would send every webhook, each
        // under its own ids (docs/cluster.md).
        anyhow::bail!(
            "webhooks: not supported in cluster mode yet: every node would send each webhook; \
             remove the [[webhooks]] tables from this node's config"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("custos-http")
        .build()?;
    runtime.block_on(async {
        let cluster = &config.cluster;
        let node = custos_cluster::node_id(cluster);
        let client = custos_cluster::connect(cluster).await?;
        let log = Arc::new(custos_cluster::NatsLog::new(
            client.clone(),
            custos_cluster::Names::new(&cluster.name),
            node.clone(),
        ));
        let engine = Arc::new(custos_runtime::open_with_log(
            &config,
            custos_store::SqliteOptions::default(),
            Some(log.clone() as Arc<dyn custos_runtime::CommitLog>),
        )?);
        custos_server::install_metrics_recorder();
        let node_handle =
            custos_cluster::ClusterNode::start(cluster, client, engine.clone(), log).await?;
        let mut server = custos_server::start_with_runtime(config.clone(), engine).await?;
        tracing::info!(node = %node, "cluster node serving");
        tokio::select! {
            _ = shutdown_signal() => {
                tracing::info!("shutting down: handing the partitions over");
            }
            _ = server.wait() => {
                anyhow::bail!("the http server stopped unexpectedly");
            }
        }
        // Hand over first: requests in flight for this node's partitions
        // are then decided by the next owners while the server finishes them.
        node_handle.stop().await;
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
