//! The follower: reads the whole decisions stream in order and applies each
//! decision to this node's engine and store as it was made, so that every
//! node holds every account and the cross-seller state. Decisions this node
//! made itself are already stored and are skipped by event id.
//!
//! Where it got to is kept in the store (`cluster_decisions_applied`) after
//! each applied batch; after a restart it reads on from there, and what it
//! reads twice is skipped as stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use custos_core::Decision;
use custos_runtime::{PreparedEvent, Replicated, Runtime};
use tokio::sync::watch;

use crate::reader::OrderedReader;

use crate::wire::DecisionBatch;
use crate::{ClusterError, Names};

/// Store meta key: the last decisions-stream sequence applied here.
pub const APPLIED_META: &str = "cluster_decisions_applied";

/// Most messages applied in one submission to the engine thread.
const MAX_CHUNK: usize = 256;

pub struct Follower {
    applied: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    pub(crate) async fn start(
        js: jetstream::Context,
        names: Names,
        node: String,
        runtime: Arc<Runtime>,
    ) -> Result<Follower, ClusterError> {
        let applied = runtime
            .store()
            .get_meta(APPLIED_META)
            .map_err(|e| ClusterError::Store(e.to_string()))?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let (stream, state) = crate::names::decisions(&js, &names).await?;
        if state.messages > 0 && state.first_sequence > applied + 1 {
            return Err(ClusterError::Store(format!(
                "this node has applied the decisions up to {applied}, but the stream now starts \
                 at {}: what lies between has passed cluster.decision_retention; start this node \
                 from a copy of another node's data directory",
                state.first_sequence
            )));
        }
        let applied = Arc::new(AtomicU64::new(applied));
        let (stop, stopped) = watch::channel(false);
        let subjects = format!("{}.decisions.*", names.prefix());
        let task = tokio::spawn(run(
            js.client(),
            stream,
            subjects,
            node,
            runtime,
            applied.clone(),
            stopped,
        ));
        Ok(Follower {
            applied,
            stop,
            task,
        })
    }

    /// The last decisions-stream sequence durable in this node's store.
    pub fn applied(&self) -> Arc<AtomicU64> {
        self.applied.clone()
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    client: async_nats::Client,
    stream: jetstream::stream::Stream,
    subjects: String,
    node: String,
    runtime: Arc<Runtime>,
    applied: Arc<AtomicU64>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let from = applied.load(Ordering::Acquire) + 1;
        let result = tokio::select! {
            result = follow(&client, &stream, &subjects, &node, &runtime, &applied, from) => result,
            _ = stopped.changed() => return,
        };
        if let Err(e) = result {
            tracing::error!(error = %e, from, "following the decisions failed; retrying");
            metrics::counter!("custos_cluster_follow_errors_total").increment(1);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn follow(
    client: &async_nats::Client,
    stream: &jetstream::stream::Stream,
    subjects: &str,
    node: &str,
    runtime: &Runtime,
    applied: &AtomicU64,
    from: u64,
) -> Result<(), String> {
    let mut reader =
        OrderedReader::new(client, stream.clone(), subjects.to_string(), true, from - 1).await?;
    loop {
        let chunk = reader.next_batch(MAX_CHUNK).await?;
        let Some(last) = chunk.last().map(|m| m.sequence) else {
            continue;
        };
        let mut records = Vec::new();
        let now = time::OffsetDateTime::now_utc();
        for message in chunk {
            let seq = message.sequence;
            let delay = (now - message.time).as_seconds_f64().max(0.0);
            metrics::histogram!("custos_cluster_replication_delay_seconds").record(delay);
            let batch: DecisionBatch = serde_json::from_slice(&message.payload)
                .map_err(|e| format!("decision message {seq} cannot be read: {e}"))?;
            if batch.node == node {
                metrics::counter!("custos_cluster_own_decisions_read_total").increment(1);
            }
            for record in batch.records {
                records.push(
                    decode(runtime, &record.event, record.decision)
                        .map_err(|e| format!("decision message {seq}: {e}"))?,
                );
            }
        }
        if !records.is_empty() {
            let outcomes = runtime
                .replicate(records)
                .await
                .map_err(|e| format!("applying decisions up to {last}: {e}"))?;
            let applied_new = outcomes.iter().flatten().filter(|o| !o.duplicate).count();
            metrics::counter!("custos_cluster_replicated_events_total")
                .increment(applied_new as u64);
        }
        applied.store(last, Ordering::Release);
        metrics::gauge!("custos_cluster_decisions_applied").set(last as f64);
        runtime
            .store()
            .set_meta(APPLIED_META, &last.to_string())
            .map_err(|e| format!("cannot record the applied position: {e}"))?;
    }
}

/// An event in its stored form and its stored decision, ready to apply.
pub(crate) fn decode(
    runtime: &Runtime,
    event_json: &str,
    decision_json: String,
) -> Result<Replicated, String> {
    let prepared = decode_event(runtime, event_json)?;
    let decision: Decision = serde_json::from_str(&decision_json)
        .map_err(|e| format!("decision of {}: {e}", prepared.event.event_id))?;
    Ok(Replicated {
        prepared,
        decision,
        decision_json,
    })
}

/// An event in its stored (sealed) form, opened with this node's keys.
pub(crate) fn decode_event(runtime: &Runtime, event_json: &str) -> Result<PreparedEvent, String> {
    let value: serde_json::Value =
        serde_json::from_str(event_json).map_err(|e| format!("event is not json: {e}"))?;
    let parser = runtime.parser();
    let event = parser
        .parse_stored(value)
        .map_err(|e| format!("event cannot be read: {e}"))?;
    PreparedEvent::new(event, parser).map_err(|e| e.to_string())
}
