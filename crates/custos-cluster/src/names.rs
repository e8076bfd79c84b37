//! The streams, subjects and buckets of a cluster, and their creation.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use custos_config::ClusterConfig;

use crate::ClusterError;

/// How long JetStream remembers a message id to drop a resend: a client
/// retry within it is stored once (later ones are caught by the owner's
/// store).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long the events stream keeps an event: long enough for any owner to
/// decide it after a takeover; the decisions stream is the record.
const EVENTS_RETENTION: Duration = Duration::from_secs(86_400);

/// Names derived from `cluster.name`.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn events_stream(&self) -> String {
        format!("{}_events", self.prefix)
    }

    pub fn events_subject(&self, partition: u32) -> String {
        format!("{}.events.{partition}", self.prefix)
    }

    pub fn decisions_stream(&self) -> String {
        format!("{}_decisions", self.prefix)
    }

    pub fn decisions_subject(&self, partition: u32) -> String {
        format!("{}.decisions.{partition}", self.prefix)
    }

    pub fn answers_subject(&self, node: &str) -> String {
        format!("{}.answers.{node}", self.prefix)
    }

    pub fn leases_bucket(&self) -> String {
        format!("{}_leases", self.prefix)
    }

    pub fn nodes_bucket(&self) -> String {
        format!("{}_nodes", self.prefix)
    }

    pub fn lease_key(partition: u32) -> String {
        format!("p{partition}")
    }

    /// The partition a lease key names.
    pub fn partition_of_key(key: &str) -> Option<u32> {
        key.strip_prefix('p')?.parse().ok()
    }
}

fn partitions_description(partitions: u32) -> String {
    format!("custos partitions={partitions}")
}

/// Creates the streams and buckets if missing; refuses to join a cluster
/// made with another number of partitions.
pub(crate) async fn ensure(
    js: &jetstream::Context,
    names: &Names,
    config: &ClusterConfig,
) -> Result<(), ClusterError> {
    let description = Some(partitions_description(config.partitions));
    let streams = [
        stream::Config {
            name: names.events_stream(),
            description: description.clone(),
            subjects: vec![format!("{}.events.*", names.prefix)],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            max_age: EVENTS_RETENTION,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        },
        stream::Config {
            name: names.decisions_stream(),
            description: description.clone(),
            subjects: vec![format!("{}.decisions.*", names.prefix)],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            max_age: config.decision_retention,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        },
        // Key-value buckets, made as streams: the client's own bucket
        // creation asks for settings a NATS 2.9 server does not answer in
        // the form it expects. Entries expire after the lease time unless
        // rewritten.
        kv_stream(&names.leases_bucket(), config, description.clone()),
        kv_stream(&names.nodes_bucket(), config, description.clone()),
    ];
    for wanted in streams {
        let name = wanted.name.clone();
        let mut stream = js
            .get_or_create_stream(wanted)
            .await
            .map_err(|e| ClusterError::nats("create the streams", format!("{name}: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| ClusterError::nats("read a stream", format!("{name}: {e}")))?;
        if let Some(existing) = info
            .config
            .description
            .as_deref()
            .and_then(|d| d.strip_prefix("custos partitions="))
            .and_then(|n| n.parse::<u32>().ok())
            && existing != config.partitions
        {
            return Err(ClusterError::PartitionsDiffer {
                existing,
                configured: config.partitions,
            });
        }
    }
    Ok(())
}

fn kv_stream(bucket: &str, config: &ClusterConfig, description: Option<String>) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description,
        subjects: vec![format!("$KV.{bucket}.>")],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_messages_per_subject: 1,
        max_age: config.lease_ttl,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        duplicate_window: config.lease_ttl.min(DUPLICATE_WINDOW),
        ..Default::default()
    }
}

/// The leases and nodes buckets.
pub(crate) async fn buckets(
    js: &jetstream::Context,
    names: &Names,
) -> Result<(kv::Store, kv::Store), ClusterError> {
    let leases = js
        .get_key_value(names.leases_bucket())
        .await
        .map_err(|e| ClusterError::nats("open the leases bucket", e))?;
    let nodes = js
        .get_key_value(names.nodes_bucket())
        .await
        .map_err(|e| ClusterError::nats("open the nodes bucket", e))?;
    Ok((leases, nodes))
}

/// The decisions stream and its state now.
pub(crate) async fn decisions(
    js: &jetstream::Context,
    names: &Names,
) -> Result<(stream::Stream, stream::State), ClusterError> {
    let mut decisions = js
        .get_stream(names.decisions_stream())
        .await
        .map_err(|e| ClusterError::nats("open the decisions stream", e))?;
    let state = decisions
        .info()
        .await
        .map_err(|e| ClusterError::nats("read the decisions stream", e))?
        .state
        .clone();
    Ok((decisions, state))
}
