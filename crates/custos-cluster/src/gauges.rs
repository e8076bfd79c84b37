//! The cluster's lag on `/metrics`: what `custos cluster status` shows,
//! sampled by each node every [`SAMPLE_EVERY`] for what it can see.
//!
//! - `custos_cluster_partition_owned{partition}`: 1 while this node owns the
//!   partition, 0 after it handed it over (the exporter cannot drop a
//!   series, so a former owner's series says 0 rather than going away).
//! - `custos_cluster_partition_oldest_waiting_seconds{partition}`: for an
//!   owned partition, how long the oldest event on its subject that the
//!   owner has not yet decided has waited; 0 when none waits.
//! - `custos_cluster_oldest_waiting_seconds`: the largest of those on this
//!   node: one series to alert on.
//! - `custos_cluster_partitions_unowned`: partitions without a live lease,
//!   as every node sees them: their events wait for a new owner.
//! - `custos_cluster_decisions_behind`: decisions on the stream this node
//!   has not yet applied (its replica's lag in messages; the lag in time is
//!   `custos_cluster_replication_delay_seconds`).
//!
//! Sampling runs beside the lease keeper, never inside it: a slow NATS
//! answer here must not delay a renewal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;

use crate::Names;

/// How often a node samples its lag.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// The partitions this node's owner tasks decide, each with the events
/// stream sequence of the last event decided (or skipped as unreadable).
#[derive(Debug, Default)]
pub(crate) struct Positions(Mutex<BTreeMap<u32, u64>>);

impl Positions {
    pub(crate) fn set(&self, partition: u32, decided_through: u64) {
        if let Ok(mut positions) = self.0.lock() {
            positions.insert(partition, decided_through);
        }
    }

    pub(crate) fn remove(&self, partition: u32) {
        if let Ok(mut positions) = self.0.lock() {
            positions.remove(&partition);
        }
    }

    fn snapshot(&self) -> BTreeMap<u32, u64> {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Removes a partition's position when its owner task ends, however it
/// ends.
pub(crate) struct PositionGuard {
    pub(crate) positions: Arc<Positions>,
    pub(crate) partition: u32,
}

impl Drop for PositionGuard {
    fn drop(&mut self) {
        self.positions.remove(self.partition);
    }
}

pub(crate) struct Sampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub(crate) fn start(
        js: jetstream::Context,
        names: Names,
        partitions: u32,
        positions: Arc<Positions>,
        applied: Arc<AtomicU64>,
    ) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut reported = BTreeSet::new();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                    _ = stopped.changed() => break,
                }
                let results = tokio::select! {
                    results = async {
                        [
                            sample_owned(&js, &names, &positions, &mut reported).await,
                            sample_unowned(&js, &names, partitions).await,
                            sample_behind(&js, &names, &applied).await,
                        ]
                    } => results,
                    _ = stopped.changed() => break,
                };
                for e in results.into_iter().filter_map(Result::err) {
                    tracing::debug!(error = %e, "cluster lag not sampled this round");
                    metrics::counter!("custos_cluster_sample_errors_total").increment(1);
                }
            }
        });
        Sampler { stop, task }
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Owner and oldest waiting event of each partition this node owns.
async fn sample_owned(
    js: &jetstream::Context,
    names: &Names,
    positions: &Positions,
    reported: &mut BTreeSet<u32>,
) -> Result<(), String> {
    // Owned partitions first: they need no request to be right.
    let owned = positions.snapshot();
    let now: BTreeSet<u32> = owned.keys().copied().collect();
    for partition in reported.difference(&now) {
        let label = partition.to_string();
        metrics::gauge!("custos_cluster_partition_owned", "partition" => label.clone()).set(0.0);
        metrics::gauge!("custos_cluster_partition_oldest_waiting_seconds", "partition" => label)
            .set(0.0);
    }
    *reported = now;
    for partition in owned.keys() {
        metrics::gauge!("custos_cluster_partition_owned", "partition" => partition.to_string())
            .set(1.0);
    }

    let events = js
        .get_stream(names.events_stream())
        .await
        .map_err(|e| format!("cannot open the events stream: {e}"))?;
    let events = &events;
    let waits = owned.iter().map(|(partition, decided_through)| {
        let subject = names.events_subject(*partition);
        async move {
            let waited = crate::reader::oldest_waiting(events, subject, *decided_through).await;
            (*partition, waited.map(|w| w.unwrap_or(0.0)))
        }
    });
    let mut oldest: f64 = 0.0;
    let mut unread = None;
    for (partition, waited) in futures_util::future::join_all(waits).await {
        let waited = match waited {
            Ok(waited) => waited,
            // Keep the others; this one keeps its last value.
            Err(e) => {
                unread = Some(format!("partition {partition}: {e}"));
                continue;
            }
        };
        oldest = oldest.max(waited);
        metrics::gauge!(
            "custos_cluster_partition_oldest_waiting_seconds",
            "partition" => partition.to_string()
        )
        .set(waited);
    }
    metrics::gauge!("custos_cluster_oldest_waiting_seconds").set(oldest);
    unread.map_or(Ok(()), Err)
}

async fn sample_unowned(
    js: &jetstream::Context,
    names: &Names,
    partitions: u32,
) -> Result<(), String> {
    let (leases, _) = crate::names::buckets(js, names)
        .await
        .map_err(|e| e.to_string())?;
    let leased = crate::leases::live_keys(js, &names.leases_bucket(), &leases)
        .await?
        .iter()
        .filter_map(|key| Names::partition_of_key(key))
        .filter(|partition| *partition < partitions)
        .collect::<BTreeSet<u32>>()
        .len();
    metrics::gauge!("custos_cluster_partitions_unowned").set(f64::from(partitions) - leased as f64);
    Ok(())
}

async fn sample_behind(
    js: &jetstream::Context,
    names: &Names,
    applied: &AtomicU64,
) -> Result<(), String> {
    let (_, decisions) = crate::names::decisions(js, names)
        .await
        .map_err(|e| e.to_string())?;
    let behind = decisions
        .last_sequence
        .saturating_sub(applied.load(Ordering::Acquire));
    metrics::gauge!("custos_cluster_decisions_behind").set(behind as f64);
    Ok(())
}
