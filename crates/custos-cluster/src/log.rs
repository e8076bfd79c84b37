//! The commit log of a cluster node: before its store commits a group, the
//! writer thread publishes the group's decisions, one message per partition
//! (split when large), each with the sequence this node expects to be the
//! partition's last on the decisions stream. JetStream refuses a message
//! whose expectation is wrong, so only a node that has applied every
//! decision of a partition can add to it: two nodes that both believe they
//! own a partition (one of them has lost its lease without knowing yet)
//! cannot fork its history.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};
use custos_runtime::{CommitLog, LoggedRecord};

use crate::Names;
use crate::wire::{DecidedRecord, DecisionBatch};

/// Largest decision message; NATS refuses payloads over 1 MiB by default.
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// How long a publish may wait for JetStream's acknowledgement.
const ACK_TIMEOUT: Duration = crate::REQUEST_TIMEOUT;

/// A partition's place on the decisions stream, per owned partition.
#[derive(Default)]
struct Positions {
    /// Partition → stream sequence of its last decision message.
    last: HashMap<u32, u64>,
    /// Partitions whose expectation JetStream refused: another node added
    /// to them. Their owner task stops deciding.
    fenced: HashSet<u32>,
}

pub struct NatsLog {
    js: jetstream::Context,
    handle: tokio::runtime::Handle,
    names: Names,
    node: String,
    positions: Mutex<Positions>,
}

impl NatsLog {
    /// Made inside the tokio runtime whose handle the writer thread uses.
    pub fn new(client: async_nats::Client, names: Names, node: String) -> NatsLog {
        let mut js = jetstream::new(client);
        js.set_timeout(ACK_TIMEOUT);
        NatsLog {
            js,
            handle: tokio::runtime::Handle::current(),
            names,
            node,
            positions: Mutex::new(Positions::default()),
        }
    }

    fn positions(&self) -> std::sync::MutexGuard<'_, Positions> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts (or resumes) adding to `partition` after stream sequence
    /// `last` (0: the partition has no decision yet).
    pub fn claim(&self, partition: u32, last: u64) {
        let mut positions = self.positions();
        positions.fenced.remove(&partition);
        positions.last.insert(partition, last);
    }

    /// Stops adding to `partition`; a group still holding its events fails.
    pub fn release(&self, partition: u32) {
        self.positions().last.remove(&partition);
    }

    /// Whether JetStream refused this node's expectation for `partition`
    /// since it was last claimed.
    pub fn is_fenced(&self, partition: u32) -> bool {
        self.positions().fenced.contains(&partition)
    }

    fn batches(&self, records: &[LoggedRecord<'_>]) -> BTreeMap<u32, Vec<DecisionBatch>> {
        let mut batches: BTreeMap<u32, Vec<DecisionBatch>> = BTreeMap::new();
        let mut sizes: HashMap<u32, usize> = HashMap::new();
        for record in records {
            let partition = record.origin.partition;
            let size = record.event_json.len() + record.decision_json.len() + 64;
            let list = batches.entry(partition).or_default();
            let current = sizes.entry(partition).or_insert(0);
            if list.is_empty() || *current + size > MAX_BATCH_BYTES {
                list.push(DecisionBatch {
                    node: self.node.clone(),
                    partition,
                    input_seq: 0,
                    records: Vec::new(),
                });
                *current = 0;
            }
            *current += size;
            if let Some(batch) = list.last_mut() {
                batch.input_seq = batch.input_seq.max(record.origin.input_seq);
                batch.records.push(DecidedRecord {
                    event: record.event_json.to_string(),
                    decision: record.decision_json.to_string(),
                });
            }
        }
        batches
    }

    async fn publish_all(&self, batches: BTreeMap<u32, Vec<DecisionBatch>>) -> Result<(), String> {
        let mut queues: Vec<(u32, std::vec::IntoIter<DecisionBatch>)> = batches
            .into_iter()
            .map(|(p, list)| (p, list.into_iter()))
            .collect();
        let mut failure: Option<String> = None;
        // Round by round: one message per partition in flight at a time
        // (each expects the one before it), all partitions at once.
        loop {
            let mut in_flight = Vec::new();
            for (partition, queue) in &mut queues {
                let Some(batch) = queue.next() else { continue };
                let expected = match self.positions().last.get(partition) {
                    Some(last) => *last,
                    None => {
                        failure.get_or_insert(format!(
                            "partition {partition} is not owned by this node any more"
                        ));
                        continue;
                    }
                };
                let payload = match serde_json::to_vec(&batch) {
                    Ok(payload) => payload,
                    Err(e) => {
                        failure.get_or_insert(format!("cannot encode decisions: {e}"));
                        continue;
                    }
                };
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(
                    "Nats-Expected-Last-Subject-Sequence",
                    expected.to_string().as_str(),
                );
                let sent = self
                    .js
                    .publish_with_headers(
                        self.names.decisions_subject(*partition),
                        headers,
                        payload.into(),
                    )
                    .await;
                match sent {
                    Ok(ack) => in_flight.push((*partition, ack)),
                    Err(e) => {
                        self.positions().last.remove(partition);
                        failure.get_or_insert(format!("publish to partition {partition}: {e}"));
                    }
                }
            }
            if in_flight.is_empty() {
                break;
            }
            for (partition, ack) in in_flight {
                let outcome = tokio::time::timeout(ACK_TIMEOUT, ack).await;
                let mut positions = self.positions();
                match outcome {
                    Ok(Ok(ack)) => {
                        // Released meanwhile: not this node's to track.
                        if let Some(last) = positions.last.get_mut(&partition) {
                            *last = ack.sequence;
                        }
                    }
                    Ok(Err(e)) => {
                        // Where the partition now ends is unknown to this
                        // node: its owner task reads it again.
                        positions.last.remove(&partition);
                        if e.kind() == PublishErrorKind::WrongLastSequence {
                            positions.fenced.insert(partition);
                            tracing::warn!(
                                partition,
                                "another node added to this partition's decisions; stopping"
                            );
                            metrics::counter!("custos_cluster_fenced_total").increment(1);
                        }
                        failure.get_or_insert(format!("partition {partition}: {e}"));
                    }
                    Err(_) => {
                        positions.last.remove(&partition);
                        failure.get_or_insert(format!(
                            "partition {partition}: no acknowledgement within {ACK_TIMEOUT:?}"
                        ));
                    }
                }
            }
        }
        match failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

impl CommitLog for NatsLog {
    fn publish(&self, records: &[LoggedRecord<'_>]) -> Result<(), String> {
        let batches = self.batches(records);
        self.handle.block_on(self.publish_all(batches))
    }
}
