//! # custos-cluster
//!
//! Several Custos nodes over NATS JetStream, any of which takes events,
//! none of which is a single point of failure.
//!
//! ## Partitions and owners
//!
//! The account space is cut into a fixed number of partitions (a stable hash
//! of `account_id`, [`partition_of`]). Each partition has one owner at a
//! time: the node holding its lease, a key in a JetStream key-value bucket
//! whose entries expire after `lease_ttl` unless renewed ([`leases`]). Live
//! nodes share the partitions evenly; a node that stops renewing loses its
//! leases when they expire, and the others take them.
//!
//! ## The path of an event
//!
//! 1. Any node checks and tokenizes the event as a single node would, then
//!    publishes its sealed form (the stored form: tokens, sealed personal
//!    values) to the *events* stream on its partition's subject, with the
//!    event id as JetStream's message id, so a retry within the duplicate
//!    window is stored once ([`ingest`]).
//! 2. The owner reads its partitions' subjects in order, decides each event
//!    on its engine thread, and commits the group: first to the *decisions*
//!    stream, one message per partition and group, published with the
//!    sequence the owner expects to be the partition's last; then to its own
//!    store ([`log`], [`owner`]). A node that lost its lease without knowing
//!    it is refused by that expected sequence: a partition's decisions never
//!    fork.
//! 3. The owner sends each answer to the receiving node, which answers the
//!    client. An answer is sent only after both commits.
//!
//! ## Every node holds the whole state
//!
//! Every node reads the whole decisions stream in order and applies each
//! decision it did not make itself to its engine, as recovery applies stored
//! decisions, and stores it ([`follow`]). So each node's store holds every
//! decided event once, each node's engine holds every account and all the
//! cross-seller state (destination index, campaign graph, institution
//! bursts, population statistics), and a partition taken over needs no
//! rebuild: the new owner waits until it has applied the partition's last
//! decision, then reads the events stream from the event after it. What a
//! node sees of other partitions is as old as its replication lag
//! (`custos_cluster_replication_delay_seconds`).
//!
//! The price: memory and the cost of applying every event do not shrink
//! with more nodes; deciding does. `docs/cluster.md` gives the figures.

pub mod follow;
pub mod gauges;
pub mod ingest;
pub mod leases;
pub mod log;
mod names;
pub mod owner;
mod reader;
pub mod status;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use custos_config::ClusterConfig;
use custos_runtime::Runtime;

pub use log::NatsLog;
pub use names::Names;

/// How long a JetStream request (a publish's acknowledgement included) may
/// take: longer than NATS needs to elect a stream's new leader after a
/// server dies (up to about 9 s seen on a loaded machine), so that an
/// election delays commits rather than failing them.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a read of a stream may take before it is asked again.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a cluster node did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster config: {0}")]
    Config(String),
    #[error("cannot connect to nats at {urls}: {message}")]
    Connect { urls: String, message: String },
    #[error("nats: cannot {action}: {message}")]
    Nats {
        action: &'static str,
        message: String,
    },
    #[error(
        "the cluster's streams were made for {existing} partitions, this node is configured with {configured}; every node must use the same cluster.partitions"
    )]
    PartitionsDiffer { existing: u32, configured: u32 },
    #[error("store: {0}")]
    Store(String),
}

impl ClusterError {
    pub(crate) fn nats(action: &'static str, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::Nats {
            action,
            message: e.to_string(),
        }
    }
}

/// The partition of an account: FNV-1a over its id, modulo `partitions`.
/// Fixed for the life of a cluster (stored events were routed by it), so
/// written out here rather than taken from a hasher that may change.
pub fn partition_of(account_id: &str, partitions: u32) -> u32 {
    (fnv1a(account_id.as_bytes()) % u64::from(partitions.max(1))) as u32
}

/// 64-bit FNV-1a.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The node id: the configured one, else the host name.
pub fn node_id(config: &ClusterConfig) -> String {
    if !config.node_id.is_empty() {
        return config.node_id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Connects to the configured NATS servers.
pub async fn connect(config: &ClusterConfig) -> Result<async_nats::Client, ClusterError> {
    let urls = config.nats_urls.join(",");
    let mut addrs = Vec::new();
    for url in &config.nats_urls {
        let addr: async_nats::ServerAddr = url.parse().map_err(|e| ClusterError::Connect {
            urls: urls.clone(),
            message: format!("{url:?} is not a nats url: {e}"),
        })?;
        addrs.push(addr);
    }
    async_nats::ConnectOptions::new()
        .name(format!("custos-{}", node_id(config)))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(addrs)
        .await
        .map_err(|e| ClusterError::Connect {
            urls,
            message: e.to_string(),
        })
}

/// How long a starting node keeps trying when NATS does not answer: a
/// JetStream cluster that has just formed, or is electing a leader, times
/// requests out for a while.
pub const JOIN_PATIENCE: Duration = Duration::from_secs(120);

/// Runs `attempt` until it succeeds, fails with something other than NATS
/// not answering, or [`JOIN_PATIENCE`] has passed.
async fn patiently<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let started = std::time::Instant::now();
    loop {
        match attempt().await {
            Err(e @ ClusterError::Nats { .. }) if started.elapsed() < JOIN_PATIENCE => {
                tracing::warn!(error = %e, step = what, "joining the cluster: nats did not answer; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            result => return result,
        }
    }
}

/// The counters deploy/prometheus/cluster-alerts.yml and docs/cluster.md
/// name, exported at zero from the start: a series that appears only with
/// the first failure cannot tell "none" from "not scraped".
fn register_alerted_metrics() {
    for counter in [
        "custos_cluster_fenced_total",
        "custos_cluster_leases_lost_total",
        "custos_cluster_lease_errors_total",
        "custos_cluster_answer_timeouts_total",
        "custos_cluster_owner_restarts_total",
        "custos_cluster_follow_errors_total",
        "custos_cluster_publish_retries_total",
        "custos_cluster_sample_errors_total",
    ] {
        metrics::counter!(counter).increment(0);
    }
    metrics::gauge!("custos_cluster_oldest_waiting_seconds").set(0.0);
}

/// A running cluster node: its ingest, follower and lease keeper.
pub struct ClusterNode {
    leases: leases::LeaseKeeper,
    sampler: gauges::Sampler,
    follower: follow::Follower,
    client: async_nats::Client,
}

impl ClusterNode {
    /// Joins the cluster with a runtime opened with `log` as its commit log:
    /// makes sure the streams and buckets exist, starts following the
    /// decisions, routes the runtime's submissions to the owners and starts
    /// taking partitions.
    pub async fn start(
        config: &ClusterConfig,
        client: async_nats::Client,
        runtime: Arc<Runtime>,
        log: Arc<NatsLog>,
    ) -> Result<ClusterNode, ClusterError> {
        config.validate().map_err(ClusterError::Config)?;
        register_alerted_metrics();
        let names = Names::new(&config.name);
        let node = node_id(config);
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        patiently("create the streams", || names::ensure(&js, &names, config)).await?;
        // Reads are retried from where they stopped: one sent to a server
        // that died is better given up soon.
        let mut read_js = js.clone();
        read_js.set_timeout(READ_TIMEOUT);
        let follower = patiently("start following", || {
            follow::Follower::start(
                read_js.clone(),
                names.clone(),
                node.clone(),
                runtime.clone(),
            )
        })
        .await?;
        let ingest = ingest::Ingest::start(
            client.clone(),
            js.clone(),
            names.clone(),
            node.clone(),
            config.partitions,
            config.answer_timeout,
            runtime.clone(),
        )
        .await?;
        runtime.set_forward(Arc::new(ingest));
        // Lease work answers quickly or not at all this round: a renewal
        // stuck for longer than the lease is worth nothing.
        let mut lease_js = js.clone();
        lease_js.set_timeout((config.lease_ttl / 3).max(Duration::from_millis(500)));
        let positions = Arc::new(gauges::Positions::default());
        let owners = Arc::new(owner::OwnerContext {
            client: client.clone(),
            js: lease_js,
            names: names.clone(),
            runtime,
            log,
            applied: follower.applied(),
            positions: positions.clone(),
        });
        let leases = patiently("start the lease keeper", || {
            leases::LeaseKeeper::start(owners.clone(), node.clone(), config.clone())
        })
        .await?;
        let mut sample_js = js.clone();
        sample_js.set_timeout(READ_TIMEOUT);
        let sampler = gauges::Sampler::start(
            sample_js,
            names,
            config.partitions,
            positions,
            follower.applied(),
        );
        tracing::info!(node = %node, partitions = config.partitions, "joined the cluster");
        Ok(ClusterNode {
            leases,
            sampler,
            follower,
            client,
        })
    }

    /// Hands every owned partition over (stops deciding, releases the
    /// leases so the others take them at once), then stops following.
    pub async fn stop(self) {
        self.sampler.stop().await;
        self.leases.stop().await;
        self.follower.stop().await;
        // Without a reachable NATS server a flush would wait forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_a_fixed_function_of_the_account_id() {
        // Stored events were routed by these values: they must never change.
        assert_eq!(partition_of("", 64), (0xcbf2_9ce4_8422_2325u64 % 64) as u32);
        assert_eq!(partition_of("seller-1", 64), partition_of("seller-1", 64));
        let fnv = |s: &str| {
            s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        };
        for id in ["seller-1", "k0-3", "ünïcode", "a"] {
            assert_eq!(u64::from(partition_of(id, 64)), fnv(id) % 64);
            assert_eq!(u64::from(partition_of(id, 7)), fnv(id) % 7);
        }
        // Spread: 10,000 sellers over 64 partitions, none empty or doubled.
        let mut counts = [0u32; 64];
        for i in 0..10_000 {
            counts[partition_of(&format!("seller-{i}"), 64) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 100 && *max < 220, "uneven: {min}..{max}");
        assert_eq!(partition_of("x", 0), 0, "no partitions is one partition");
    }

    #[test]
    fn lease_keys_name_their_partition() {
        assert_eq!(Names::lease_key(17), "p17");
        assert_eq!(Names::partition_of_key("p17"), Some(17));
        assert_eq!(Names::partition_of_key("node-a"), None);
        let names = Names::new("custos");
        assert_eq!(names.events_subject(3), "custos.events.3");
        assert_eq!(names.decisions_subject(3), "custos.decisions.3");
        assert_eq!(names.answers_subject("a"), "custos.answers.a");
    }

    #[test]
    fn the_node_id_is_the_configured_one_or_a_safe_host_name() {
        let mut config = ClusterConfig {
            node_id: "node-a".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(node_id(&config), "node-a");
        config.node_id.clear();
        let host = node_id(&config);
        assert!(!host.is_empty());
        assert!(
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{host}"
        );
    }

    #[test]
    fn cluster_settings_that_cannot_work_are_refused_with_their_name() {
        let ok = ClusterConfig::default();
        assert!(ok.validate().is_ok());
        let cases: Vec<(ClusterConfig, &str)> = vec![
            (
                ClusterConfig {
                    nats_urls: vec![],
                    ..ok.clone()
                },
                "cluster.nats_urls",
            ),
            (
                ClusterConfig {
                    node_id: "a b".into(),
                    ..ok.clone()
                },
                "cluster.node_id",
            ),
            (
                ClusterConfig {
                    name: "a.b".into(),
                    ..ok.clone()
                },
                "cluster.name",
            ),
            (
                ClusterConfig {
                    partitions: 0,
                    ..ok.clone()
                },
                "cluster.partitions",
            ),
            (
                ClusterConfig {
                    replicas: 0,
                    ..ok.clone()
                },
                "cluster.replicas",
            ),
            (
                ClusterConfig {
                    lease_ttl: Duration::from_millis(500),
                    ..ok.clone()
                },
                "cluster.lease_ttl",
            ),
            (
                ClusterConfig {
                    answer_timeout: Duration::from_secs(2),
                    ..ok.clone()
                },
                "cluster.answer_timeout",
            ),
            (
                ClusterConfig {
                    decision_retention: Duration::from_secs(60),
                    ..ok.clone()
                },
                "cluster.decision_retention",
            ),
        ];
        for (config, field) in cases {
            let error = config.validate().unwrap_err();
            assert!(error.starts_with(field), "{field}: {error}");
        }
    }

    #[test]
    fn decision_batches_and_answers_read_back_as_written() {
        let batch = wire::DecisionBatch {
            node: "a".into(),
            partition: 5,
            input_seq: 42,
            records: vec![wire::DecidedRecord {
                event: "{\"event_id\":\"e1\"}".into(),
                decision: "{\"action\":\"allow\"}".into(),
            }],
        };
        let bytes = serde_json::to_vec(&batch).unwrap();
        let back: wire::DecisionBatch = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (back.node.as_str(), back.partition, back.input_seq),
            ("a", 5, 42)
        );
        assert_eq!(back.records[0].event, batch.records[0].event);
        let answer = wire::Answer {
            event_id: "e1".into(),
            decided: None,
            error: Some(wire::AnswerError {
                kind: wire::AnswerErrorKind::Conflict,
                message: "m".into(),
            }),
        };
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            text,
            r#"{"event_id":"e1","error":{"kind":"conflict","message":"m"}}"#
        );
    }
}
