//! Leases: which node owns which partition.
//!
//! A lease is a key (`p<partition>`) in the leases bucket holding the
//! owner's node id; the bucket's entries expire `lease_ttl` after they were
//! last written. Every third of that, each node
//!
//! 1. writes its heartbeat to the nodes bucket (which expires the same way),
//!    so the live nodes are the bucket's keys;
//! 2. renews each of its leases, by revision: a lease another node took
//!    after it expired cannot be renewed, and its owner task stops;
//! 3. aims for its share, `ceil(partitions / live nodes)`: it hands over
//!    partitions above it (stops deciding, then deletes the key, so the
//!    next node takes it at once) and takes free ones below it, in an order
//!    of its own (a hash of node and partition), so that nodes starting
//!    together rarely reach for the same key.
//!
//! A node takes no partition before its follower has applied the decisions
//! the stream held when it started: its state would be behind.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use custos_config::ClusterConfig;
use custos_runtime::Runtime;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::owner::{OwnerContext, OwnerExit, OwnerTask};
use crate::{ClusterError, Names, partition_of};

/// What a node writes to the nodes bucket on each beat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeBeat {
    pub node: String,
    pub partitions_owned: usize,
    /// The follower's position on the decisions stream.
    pub decisions_applied: u64,
    /// Unix milliseconds at the beat.
    pub at_ms: i64,
    /// A digest of the live rule set's source: every node must show the
    /// same, or they decide alike events differently.
    #[serde(default)]
    pub rules_digest: String,
}

/// FNV-1a over the rule set's source as JSON, in hex.
fn rules_digest(runtime: &Runtime) -> String {
    let source = serde_json::to_string(runtime.rules().source()).unwrap_or_default();
    format!("{:016x}", crate::fnv1a(source.as_bytes()))
}

struct Held {
    revision: u64,
    task: OwnerTask,
}

pub struct LeaseKeeper {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts renewing and taking leases; `context` is what its owner tasks
    /// share (its `js` answers within a third of the lease time).
    pub(crate) async fn start(
        context: Arc<OwnerContext>,
        node: String,
        config: ClusterConfig,
    ) -> Result<LeaseKeeper, ClusterError> {
        let (js, names) = (&context.js, &context.names);
        let (leases, nodes) = crate::names::buckets(js, names).await?;
        let caught_up_at = crate::names::decisions(js, names).await?.1.last_sequence;
        let (leases_bucket, nodes_bucket) = (names.leases_bucket(), names.nodes_bucket());
        let (stop, stopped) = watch::channel(false);
        let keeper = Keeper {
            leases,
            leases_bucket,
            nodes,
            nodes_bucket,
            node,
            partitions: config.partitions,
            tick: (config.lease_ttl / 3).max(Duration::from_millis(300)),
            context,
            held: BTreeMap::new(),
            caught_up_at,
        };
        let task = tokio::spawn(keeper.run(stopped));
        Ok(LeaseKeeper { stop, task })
    }

    /// Hands every partition over and removes this node's heartbeat.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Keeper {
    leases: kv::Store,
    leases_bucket: String,
    nodes: kv::Store,
    nodes_bucket: String,
    node: String,
    partitions: u32,
    tick: Duration,
    context: Arc<OwnerContext>,
    held: BTreeMap<u32, Held>,
    /// Take no partition before the follower has applied this far.
    caught_up_at: u64,
}

impl Keeper {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %e, "lease round failed");
                metrics::counter!("custos_cluster_lease_errors_total").increment(1);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.tick) => {}
                _ = stopped.changed() => break,
            }
        }
        self.hand_over_all().await;
    }

    async fn beat(&mut self) -> Result<(), String> {
        let applied = self.context.applied.load(Ordering::Acquire);
        let beat = NodeBeat {
            node: self.node.clone(),
            partitions_owned: self.held.len(),
            decisions_applied: applied,
            at_ms: now_ms(),
            rules_digest: rules_digest(&self.context.runtime),
        };
        let payload = serde_json::to_vec(&beat).map_err(|e| e.to_string())?;
        // Leases first: they expire; the heartbeat only counts nodes.
        self.renew().await;
        self.reap_finished().await;
        self.nodes
            .put(&self.node, payload.into())
            .await
            .map_err(|e| format!("heartbeat: {e}"))?;
        let live = live_keys(&self.context.js, &self.nodes_bucket, &self.nodes)
            .await?
            .len()
            .max(1);
        let share = self.partitions.div_ceil(live as u32) as usize;
        if self.held.len() > share {
            self.hand_over(self.held.len() - share).await;
        } else if self.held.len() < share && applied >= self.caught_up_at {
            self.take(share - self.held.len()).await?;
        }
        metrics::gauge!("custos_cluster_partitions_owned").set(self.held.len() as f64);
        metrics::gauge!("custos_cluster_live_nodes").set(live as f64);
        Ok(())
    }

    /// Drops owner tasks that ended on their own (fenced).
    async fn reap_finished(&mut self) {
        let finished: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, held)| held.task.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for partition in finished {
            if let Some(held) = self.held.remove(&partition) {
                let exit = held.task.stop().await;
                tracing::warn!(partition, ?exit, "owner task ended; the lease is given up");
                // Only if still ours: the node that fenced us may hold it.
                let _ = self
                    .leases
                    .delete_expect_revision(Names::lease_key(partition), Some(held.revision))
                    .await;
            }
        }
    }

    /// Renews every lease at once: a slow answer for one must not let the
    /// others expire.
    async fn renew(&mut self) {
        let renewals = self.held.iter().map(|(partition, held)| {
            let leases = self.leases.clone();
            let node = self.node.clone();
            let (partition, revision) = (*partition, held.revision);
            async move {
                let result = leases
                    .update(Names::lease_key(partition), node.into(), revision)
                    .await;
                (partition, result)
            }
        });
        let results = futures_util::future::join_all(renewals).await;
        let mut lost = Vec::new();
        for (partition, result) in results {
            match result {
                Ok(revision) => {
                    if let Some(held) = self.held.get_mut(&partition) {
                        held.revision = revision;
                    }
                }
                // Someone else wrote the key: the lease expired and was taken.
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(partition, error = %e, "lease lost");
                    metrics::counter!("custos_cluster_leases_lost_total").increment(1);
                    lost.push(partition);
                }
                // No answer (NATS electing a leader): keep deciding; if the
                // lease did expire meanwhile, the decisions stream refuses
                // this node's next commit and the next renewal says so.
                Err(e) => {
                    tracing::warn!(partition, error = %e, "lease not renewed this round");
                    metrics::counter!("custos_cluster_lease_errors_total").increment(1);
                }
            }
        }
        for partition in lost {
            if let Some(held) = self.held.remove(&partition) {
                held.task.stop().await;
            }
        }
    }

    /// This node's order of preference over the partitions.
    fn preference(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.partitions).collect();
        order.sort_by_key(|p| partition_of(&format!("{}/{p}", self.node), u32::MAX));
        order
    }

    async fn take(&mut self, wanted: usize) -> Result<(), String> {
        let taken: HashSet<u32> = live_keys(&self.context.js, &self.leases_bucket, &self.leases)
            .await?
            .iter()
            .filter_map(|k| Names::partition_of_key(k))
            .collect();
        let mut got = 0;
        for partition in self.preference() {
            if got == wanted {
                break;
            }
            if taken.contains(&partition) || self.held.contains_key(&partition) {
                continue;
            }
            let since = Instant::now();
            match self
                .leases
                .create(Names::lease_key(partition), self.node.clone().into())
                .await
            {
                Ok(revision) => {
                    let task = OwnerTask::spawn(partition, self.context.clone(), since);
                    self.held.insert(partition, Held { revision, task });
                    got += 1;
                }
                // Another node was quicker.
                Err(_) => continue,
            }
        }
        if got > 0 {
            tracing::info!(taken = got, owned = self.held.len(), "partitions taken");
        }
        Ok(())
    }

    /// Hands `count` partitions over: the last in this node's preference.
    async fn hand_over(&mut self, count: usize) {
        let order = self.preference();
        let mut chosen: Vec<u32> = order
            .into_iter()
            .rev()
            .filter(|p| self.held.contains_key(p))
            .take(count)
            .collect();
        chosen.sort_unstable();
        for partition in chosen {
            self.release(partition).await;
        }
        tracing::info!(
            handed_over = count,
            owned = self.held.len(),
            "partitions handed over"
        );
    }

    async fn release(&mut self, partition: u32) {
        let Some(held) = self.held.remove(&partition) else {
            return;
        };
        let exit = held.task.stop().await;
        if exit == OwnerExit::Stopped {
            let _ = self
                .leases
                .delete_expect_revision(Names::lease_key(partition), Some(held.revision))
                .await;
        }
    }

    async fn hand_over_all(&mut self) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        // Stop every owner first (each finishes the group it decides), then
        // free the keys.
        let mut stops = Vec::new();
        for partition in partitions {
            if let Some(held) = self.held.remove(&partition) {
                held.task.signal();
                stops.push((partition, held.revision, held.task));
            }
        }
        for (partition, revision, task) in stops {
            if task.stop().await == OwnerExit::Stopped {
                let _ = self
                    .leases
                    .delete_expect_revision(Names::lease_key(partition), Some(revision))
                    .await;
            }
        }
        let _ = self.nodes.delete(&self.node).await;
        metrics::gauge!("custos_cluster_partitions_owned").set(0.0);
        tracing::info!(node = %self.node, "every partition handed over");
    }
}

/// The live keys of a bucket: the subjects its stream holds (read from the
/// stream's info, not with a consumer: see `reader`), less the deleted ones.
pub(crate) async fn live_keys(
    js: &jetstream::Context,
    bucket: &str,
    store: &kv::Store,
) -> Result<Vec<String>, String> {
    let stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(|e| format!("cannot open bucket {bucket}: {e}"))?;
    let prefix = format!("$KV.{bucket}.");
    let mut subjects = stream
        .info_with_subjects(format!("{prefix}>"))
        .await
        .map_err(|e| format!("cannot list bucket {bucket}: {e}"))?;
    let mut keys = Vec::new();
    while let Some(subject) = subjects.next().await {
        let (subject, _) = subject.map_err(|e| format!("cannot list bucket {bucket}: {e}"))?;
        if let Some(key) = subject.strip_prefix(&prefix) {
            keys.push(key.to_string());
        }
    }
    let mut live = Vec::with_capacity(keys.len());
    for key in keys {
        if store
            .get(&key)
            .await
            .map_err(|e| format!("cannot read {key} of bucket {bucket}: {e}"))?
            .is_some()
        {
            live.push(key);
        }
    }
    Ok(live)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
