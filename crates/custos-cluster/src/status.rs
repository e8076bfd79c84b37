//! `custos cluster status`: the nodes, who owns each partition, how many
//! events wait for their owner, and how far each node's replica is behind
//! the decisions stream. Read from NATS alone, so it works while nodes are
//! down.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use custos_config::ClusterConfig;
use serde::Serialize;

use crate::leases::NodeBeat;
use crate::wire::DecisionBatch;
use crate::{ClusterError, Names};

#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub partitions: u32,
    /// Last sequence of the decisions stream.
    pub decisions_last_seq: u64,
    pub nodes: Vec<NodeStatus>,
    pub partition_owners: Vec<PartitionStatus>,
}

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub partitions_owned: usize,
    pub decisions_applied: u64,
    /// Decisions on the stream this node had not applied at its last beat.
    pub decisions_behind: u64,
    /// Milliseconds since its last beat.
    pub beat_age_ms: i64,
    /// Digest of the node's live rules; all nodes must agree.
    pub rules_digest: String,
}

#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    pub owner: Option<String>,
    /// Milliseconds the oldest event not yet decided has waited on the
    /// partition's subject; `None` when every event is decided.
    pub oldest_waiting_ms: Option<i64>,
}

pub async fn status(config: &ClusterConfig) -> Result<ClusterStatus, ClusterError> {
    let client = crate::connect(config).await?;
    let js = jetstream::new(client);
    let names = Names::new(&config.name);
    let (leases, nodes) = crate::names::buckets(&js, &names).await?;
    let (decisions, decisions_state) = crate::names::decisions(&js, &names).await?;
    let decisions_last_seq = decisions_state.last_sequence;
    let events = js
        .get_stream(names.events_stream())
        .await
        .map_err(|e| ClusterError::nats("open the events stream", e))?;
    let now_ms = crate::leases::now_ms();
    let mut node_list = Vec::new();
    let names_of_nodes = crate::leases::live_keys(&js, &names.nodes_bucket(), &nodes)
        .await
        .map_err(|e| ClusterError::nats("list the nodes", e))?;
    for key in names_of_nodes {
        let Some(value) = nodes
            .get(&key)
            .await
            .map_err(|e| ClusterError::nats("read a node", e))?
        else {
            continue;
        };
        if let Ok(beat) = serde_json::from_slice::<NodeBeat>(&value) {
            node_list.push(NodeStatus {
                node: beat.node,
                partitions_owned: beat.partitions_owned,
                decisions_applied: beat.decisions_applied,
                decisions_behind: decisions_last_seq.saturating_sub(beat.decisions_applied),
                beat_age_ms: now_ms - beat.at_ms,
                rules_digest: beat.rules_digest,
            });
        }
    }
    node_list.sort_by(|a, b| a.node.cmp(&b.node));

    let mut owners: BTreeMap<u32, String> = BTreeMap::new();
    let lease_keys = crate::leases::live_keys(&js, &names.leases_bucket(), &leases)
        .await
        .map_err(|e| ClusterError::nats("list the leases", e))?;
    for key in lease_keys {
        let Some(partition) = Names::partition_of_key(&key) else {
            continue;
        };
        if let Some(value) = leases
            .get(&key)
            .await
            .map_err(|e| ClusterError::nats("read a lease", e))?
        {
            owners.insert(partition, String::from_utf8_lossy(&value).into_owned());
        }
    }

    let mut partition_owners = Vec::new();
    for partition in 0..config.partitions {
        let input_seq = match decisions
            .get_last_raw_message_by_subject(&names.decisions_subject(partition))
            .await
        {
            Ok(message) => serde_json::from_slice::<DecisionBatch>(&message.payload)
                .map(|b| b.input_seq)
                .unwrap_or(0),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => 0,
            Err(e) => return Err(ClusterError::nats("read a partition's decisions", e)),
        };
        let oldest_waiting_ms =
            crate::reader::oldest_waiting(&events, names.events_subject(partition), input_seq)
                .await
                .map_err(|e| ClusterError::nats("read a partition's events", e))?
                .map(|seconds| (seconds * 1000.0) as i64);
        partition_owners.push(PartitionStatus {
            partition,
            owner: owners.get(&partition).cloned(),
            oldest_waiting_ms,
        });
    }
    Ok(ClusterStatus {
        partitions: config.partitions,
        decisions_last_seq,
        nodes: node_list,
        partition_owners,
    })
}

impl std::fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} partitions, {} decision messages",
            self.partitions, self.decisions_last_seq
        )?;
        writeln!(
            f,
            "\nnode                 owns  applied   behind  beat age  rules"
        )?;
        for node in &self.nodes {
            writeln!(
                f,
                "{:<20} {:>4}  {:>7}  {:>7}  {:>5} ms  {}",
                node.node,
                node.partitions_owned,
                node.decisions_applied,
                node.decisions_behind,
                node.beat_age_ms,
                node.rules_digest
            )?;
        }
        let digests: std::collections::BTreeSet<&str> =
            self.nodes.iter().map(|n| n.rules_digest.as_str()).collect();
        if digests.len() > 1 {
            writeln!(
                f,
                "\nWARNING: the nodes run different rules ({} digests): give every node the same rules directory",
                digests.len()
            )?;
        }
        let unowned = self
            .partition_owners
            .iter()
            .filter(|p| p.owner.is_none())
            .count();
        writeln!(f, "\npartition  owner                oldest waiting")?;
        for p in &self.partition_owners {
            let waiting = match p.oldest_waiting_ms {
                Some(ms) => format!("{ms} ms"),
                None => "-".into(),
            };
            writeln!(
                f,
                "{:>9}  {:<20} {:>14}",
                p.partition,
                p.owner.as_deref().unwrap_or("(none)"),
                waiting
            )?;
        }
        if unowned > 0 {
            writeln!(f, "\n{unowned} partitions have no owner")?;
        }
        Ok(())
    }
}
