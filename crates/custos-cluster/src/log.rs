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
use std::time::{Duration, Instant};

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

    /// Every partition's batches at once; each partition's one after
    /// another (each expects the one before it).
    async fn publish_all(&self, batches: BTreeMap<u32, Vec<DecisionBatch>>) -> Result<(), String> {
        let partitions = batches
            .into_iter()
            .map(|(partition, list)| self.publish_partition(partition, list));
        let mut failure = None;
        for result in futures_util::future::join_all(partitions).await {
            if let Err(e) = result {
                failure.get_or_insert(e);
            }
        }
        match failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    async fn publish_partition(
        &self,
        partition: u32,
        batches: Vec<DecisionBatch>,
    ) -> Result<(), String> {
        for batch in batches {
            let expected = self
                .positions()
                .last
                .get(&partition)
                .copied()
                .ok_or_else(|| {
                    format!("partition {partition} is not owned by this node any more")
                })?;
            let payload =
                serde_json::to_vec(&batch).map_err(|e| format!("cannot encode decisions: {e}"))?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                expected.to_string().as_str(),
            );
            // A resend after a lost acknowledgement is stored once. The node
            // is in the id so that another node's message at the same place
            // is refused for its expectation, not taken for this one.
            let id = format!("{}.{partition}.{expected}", self.node);
            headers.insert("Nats-Msg-Id", id.as_str());
            let published = publish_with_retry(
                &self.js,
                self.names.decisions_subject(partition),
                headers,
                payload.into(),
                Instant::now() + ACK_TIMEOUT,
            )
            .await;
            let mut positions = self.positions();
            match published {
                Ok(published) => {
                    // Released meanwhile: not this node's to track.
                    if let Some(last) = positions.last.get_mut(&partition) {
                        *last = published.sequence;
                    }
                }
                Err(failure) => {
                    // Where the partition now ends is unknown to this node:
                    // its owner task reads it again.
                    positions.last.remove(&partition);
                    if failure.fenced {
                        positions.fenced.insert(partition);
                        tracing::warn!(
                            partition,
                            "another node added to this partition's decisions; stopping"
                        );
                        metrics::counter!("custos_cluster_fenced_total").increment(1);
                    }
                    return Err(format!("partition {partition}: {}", failure.message));
                }
            }
        }
        Ok(())
    }
}

/// Where a publish was stored.
pub(crate) struct Published {
    pub sequence: u64,
    /// JetStream had the message id already: this is the earlier message.
    pub duplicate: bool,
}

/// Why a publish failed.
pub(crate) struct PublishFailure {
    pub message: String,
    /// JetStream refused the expected last sequence.
    pub fenced: bool,
}

/// How long one attempt waits for its acknowledgement before the same
/// message (same id, so stored at most once) is sent again: a publish sent
/// to a server that died is never acknowledged, and the client has already
/// moved to another server.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Publishes until acknowledged or `deadline`; the message must carry a
/// `Nats-Msg-Id`.
pub(crate) async fn publish_with_retry(
    js: &jetstream::Context,
    subject: String,
    headers: async_nats::HeaderMap,
    payload: bytes::Bytes,
    deadline: Instant,
) -> Result<Published, PublishFailure> {
    let mut last_error = String::from("no attempt");
    while Instant::now() < deadline {
        let attempt_ends = (Instant::now() + ATTEMPT_TIMEOUT).min(deadline);
        let sent = js
            .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
            .await;
        let ack = match sent {
            Ok(ack) => ack,
            Err(e) => {
                last_error = e.to_string();
                tokio::time::sleep_until(attempt_ends.into()).await;
                continue;
            }
        };
        match tokio::time::timeout_at(attempt_ends.into(), ack).await {
            Ok(Ok(ack)) => {
                return Ok(Published {
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                });
            }
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => {
                return Err(PublishFailure {
                    message: e.to_string(),
                    fenced: true,
                });
            }
            // Anything else is retried until the deadline: while NATS
            // moves a stream's leader after a server died, publishes are
            // answered "no stream" or not at all for a few seconds.
            Ok(Err(e)) => {
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => last_error = format!("no acknowledgement within {ATTEMPT_TIMEOUT:?}"),
        }
        metrics::counter!("custos_cluster_publish_retries_total").increment(1);
    }
    Err(PublishFailure {
        message: format!("not acknowledged in time: {last_error}"),
        fenced: false,
    })
}

impl CommitLog for NatsLog {
    fn publish(&self, records: &[LoggedRecord<'_>]) -> Result<(), String> {
        let batches = self.batches(records);
        self.handle.block_on(self.publish_all(batches))
    }
}
