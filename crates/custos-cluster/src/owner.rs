//! The owner of one partition: where a partition's decisions end, wait
//! until this node has applied them all, then read the partition's events
//! from the one after the last decided, decide them on the engine thread
//! (whose commit publishes the decisions first, [`crate::log`]), and answer
//! each on the subject its header names.
//!
//! Any failed commit makes the task read the partition's end again and go
//! on from there: what was published is applied by the follower, what was
//! not is read again. A commit JetStream refused because another node added
//! to the partition ends the task: that node owns it now.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use custos_runtime::{Atomicity, Origin, Runtime};
use tokio::sync::watch;

use crate::gauges::{PositionGuard, Positions};
use crate::reader::OrderedReader;

use crate::wire::{
    Answer, AnswerError, AnswerErrorKind, DecidedAnswer, DecisionBatch, REPLY_HEADER,
};
use crate::{Names, NatsLog};

/// Most events handed to the engine thread in one submission.
const MAX_CHUNK: usize = 512;

/// What an owner task needs; shared by all of a node's owner tasks.
pub(crate) struct OwnerContext {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub names: Names,
    pub runtime: Arc<Runtime>,
    pub log: Arc<NatsLog>,
    /// The follower's position on the decisions stream.
    pub applied: Arc<AtomicU64>,
    /// Where each owner task of this node has decided to, for the gauges.
    pub positions: Arc<Positions>,
}

/// Why an owner task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerExit {
    /// Told to stop (hand-over or lost lease).
    Stopped,
    /// Another node added to the partition's decisions.
    Fenced,
}

pub(crate) struct OwnerTask {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<OwnerExit>,
}

impl OwnerTask {
    /// Starts owning `partition`; `since` is when its lease was taken (for
    /// the takeover time).
    pub(crate) fn spawn(partition: u32, context: Arc<OwnerContext>, since: Instant) -> OwnerTask {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(own(partition, context, stopped, since));
        OwnerTask { stop, task }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the task to stop after the group it is deciding.
    pub(crate) fn signal(&self) {
        let _ = self.stop.send(true);
    }

    /// Asks the task to stop after the group it is deciding, and waits.
    pub(crate) async fn stop(self) -> OwnerExit {
        self.signal();
        self.task.await.unwrap_or(OwnerExit::Stopped)
    }
}

async fn own(
    partition: u32,
    context: Arc<OwnerContext>,
    mut stopped: watch::Receiver<bool>,
    since: Instant,
) -> OwnerExit {
    let _position = PositionGuard {
        positions: context.positions.clone(),
        partition,
    };
    let mut first = true;
    loop {
        if *stopped.borrow() {
            context.log.release(partition);
            return OwnerExit::Stopped;
        }
        if context.log.is_fenced(partition) {
            return OwnerExit::Fenced;
        }
        match decide_partition(partition, &context, &mut stopped, since, &mut first).await {
            Ok(exit) => {
                context.log.release(partition);
                return exit;
            }
            Err(e) => {
                tracing::warn!(partition, error = %e, "owner reads its partition again");
                metrics::counter!("custos_cluster_owner_restarts_total").increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
    }
}

async fn decide_partition(
    partition: u32,
    context: &OwnerContext,
    stopped: &mut watch::Receiver<bool>,
    since: Instant,
    first: &mut bool,
) -> Result<OwnerExit, String> {
    let names = &context.names;
    let decisions = context
        .js
        .get_stream(names.decisions_stream())
        .await
        .map_err(|e| format!("cannot open the decisions stream: {e}"))?;
    let (last_seq, input_seq) = match decisions
        .get_last_raw_message_by_subject(&names.decisions_subject(partition))
        .await
    {
        Ok(message) => {
            let batch: DecisionBatch = serde_json::from_slice(&message.payload).map_err(|e| {
                format!("decision message {} cannot be read: {e}", message.sequence)
            })?;
            (message.sequence, batch.input_seq)
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => (0, 0),
        Err(e) => return Err(format!("cannot read where the partition ends: {e}")),
    };
    // Decide nothing before every decision of the partition is applied here.
    while context.applied.load(Ordering::Acquire) < last_seq {
        if *stopped.borrow() {
            return Ok(OwnerExit::Stopped);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    context.log.claim(partition, last_seq);
    context.positions.set(partition, input_seq);
    if *first {
        *first = false;
        let took = since.elapsed();
        metrics::histogram!("custos_cluster_takeover_seconds").record(took.as_secs_f64());
        tracing::info!(
            partition,
            last_decision = last_seq,
            from_event = input_seq + 1,
            ready_ms = took.as_millis() as u64,
            "partition owned"
        );
    }
    let events = context
        .js
        .get_stream(names.events_stream())
        .await
        .map_err(|e| format!("cannot open the events stream: {e}"))?;
    let mut reader = OrderedReader::new(
        &context.client,
        events,
        names.events_subject(partition),
        false,
        input_seq,
    )
    .await?;
    loop {
        let chunk = tokio::select! {
            chunk = reader.next_batch(MAX_CHUNK) => chunk?,
            _ = stopped.changed() => return Ok(OwnerExit::Stopped),
        };
        let Some(through) = chunk.last().map(|m| m.sequence) else {
            continue;
        };
        let mut events = Vec::with_capacity(chunk.len());
        let mut replies = Vec::with_capacity(chunk.len());
        for message in chunk {
            let seq = message.sequence;
            let reply = message
                .headers
                .get(REPLY_HEADER)
                .map(|v| v.as_str().to_string());
            let decoded = std::str::from_utf8(&message.payload)
                .map_err(|e| format!("not utf-8: {e}"))
                .and_then(|json| crate::follow::decode_event(&context.runtime, json));
            match decoded {
                Ok(mut prepared) => {
                    prepared.origin = Some(Origin {
                        partition,
                        input_seq: seq,
                    });
                    replies.push((prepared.event.event_id.clone(), reply));
                    events.push(prepared);
                }
                Err(problem) => {
                    tracing::error!(partition, seq, %problem, "an event of the stream cannot be read; skipped");
                    metrics::counter!("custos_cluster_unreadable_events_total").increment(1);
                    let event_id = message
                        .headers
                        .get("Nats-Msg-Id")
                        .map(|v| v.as_str().to_string())
                        .unwrap_or_default();
                    answer(
                        context,
                        reply.as_deref(),
                        Answer {
                            event_id,
                            decided: None,
                            error: Some(AnswerError {
                                kind: AnswerErrorKind::Unreadable,
                                message: format!("the owner cannot read the event: {problem}"),
                            }),
                        },
                    )
                    .await;
                }
            }
        }
        if events.is_empty() {
            context.positions.set(partition, through);
            continue;
        }
        let outcomes = match context
            .runtime
            .submit_here(events, Atomicity::PerEvent)
            .await
        {
            Ok(outcomes) => outcomes,
            Err(e) => {
                if context.log.is_fenced(partition) {
                    return Ok(OwnerExit::Fenced);
                }
                return Err(format!("a commit failed: {e}"));
            }
        };
        context.positions.set(partition, through);
        for ((event_id, reply), outcome) in replies.into_iter().zip(outcomes) {
            let message = match outcome {
                Some(outcome) => Answer {
                    event_id: outcome.event_id,
                    decided: Some(DecidedAnswer {
                        seq: outcome.seq,
                        duplicate: outcome.duplicate,
                        decision: outcome.decision,
                    }),
                    error: None,
                },
                None => Answer {
                    error: Some(AnswerError {
                        kind: AnswerErrorKind::Conflict,
                        message: format!(
                            "event_id {event_id:?} is already stored with a different body"
                        ),
                    }),
                    event_id,
                    decided: None,
                },
            };
            answer(context, reply.as_deref(), message).await;
        }
    }
}

async fn answer(context: &OwnerContext, reply: Option<&str>, answer: Answer) {
    let Some(reply) = reply else { return };
    match serde_json::to_vec(&answer) {
        Ok(payload) => {
            if let Err(e) = context
                .client
                .publish(reply.to_string(), payload.into())
                .await
            {
                tracing::warn!(error = %e, "cannot send an answer");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode an answer"),
    }
}
