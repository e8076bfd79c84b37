//! `custos cluster`: looks at a cluster of nodes through NATS alone.

use std::path::PathBuf;

use custos_config::Overrides;

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// The nodes, the owner of each partition, the events waiting for
    /// their owner and each node's lag behind the decisions stream.
    Status {
        /// TOML config file with the `[cluster]` settings.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { config, json } => {
            let config = custos_config::load(config.as_deref(), Overrides::default())?;
            config.cluster.validate().map_err(|e| anyhow::anyhow!(e))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let status = runtime.block_on(custos_cluster::status::status(&config.cluster))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
            Ok(())
        }
    }
}
