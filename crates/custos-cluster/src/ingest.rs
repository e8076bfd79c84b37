//! Ingest: how a node that received events gets them decided by their
//! partitions' owners and answers the client.
//!
//! Each event is published to the events stream on its partition's subject
//! with its event id as JetStream's message id and this node's answers
//! subject in a header; JetStream's acknowledgement means it is stored on
//! the stream's replicas. The owner answers on that subject once the
//! decision is committed, and so does the next owner after a takeover,
//! since the header travels with the stored event. A resend that JetStream
//! drops as a duplicate (within its window) or that this node's store
//! already holds is answered from the store.
//!
//! In a cluster a batch is not atomic across partitions: each event is
//! decided on its own. An id reused with another body is refused before
//! anything is published when this node's store already holds it; one
//! that races with its first use on another node is refused alone.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use custos_runtime::{Forward, Outcome, PreparedEvent, Runtime, Stored, SubmitError};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use crate::log::publish_with_retry;
use crate::wire::{Answer, AnswerErrorKind, REPLY_HEADER};
use crate::{ClusterError, Names, partition_of};

type Waiters = Mutex<HashMap<String, Vec<oneshot::Sender<Answer>>>>;

struct Inner {
    js: jetstream::Context,
    names: Names,
    partitions: u32,
    timeout: Duration,
    reply_subject: String,
    waiters: Waiters,
    /// Weak: the runtime holds this ingest as its forward.
    runtime: Weak<Runtime>,
}

pub struct Ingest {
    inner: Arc<Inner>,
}

impl Ingest {
    pub(crate) async fn start(
        client: async_nats::Client,
        js: jetstream::Context,
        names: Names,
        node: String,
        partitions: u32,
        timeout: Duration,
        runtime: Arc<Runtime>,
    ) -> Result<Ingest, ClusterError> {
        let reply_subject = names.answers_subject(&node);
        let mut answers = client
            .subscribe(reply_subject.clone())
            .await
            .map_err(|e| ClusterError::nats("subscribe to answers", e))?;
        let inner = Arc::new(Inner {
            js,
            names,
            partitions,
            timeout,
            reply_subject,
            waiters: Mutex::new(HashMap::new()),
            runtime: Arc::downgrade(&runtime),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(message) = answers.next().await {
                let Some(inner) = weak.upgrade() else { return };
                match serde_json::from_slice::<Answer>(&message.payload) {
                    Ok(answer) => inner.deliver(answer),
                    Err(e) => tracing::warn!(error = %e, "unreadable answer from an owner"),
                }
            }
        });
        Ok(Ingest { inner })
    }
}

impl Inner {
    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<Answer>>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, answer: Answer) {
        let waiting = self.waiters().remove(&answer.event_id);
        let Some(mut waiting) = waiting else { return };
        // Several requests may wait for the same id (a client's retry
        // racing its first try): each gets the answer.
        let last = waiting.pop();
        for waiter in waiting {
            let copy = Answer {
                event_id: answer.event_id.clone(),
                decided: answer.decided.as_ref().map(|d| crate::wire::DecidedAnswer {
                    seq: d.seq,
                    duplicate: true,
                    decision: d.decision.clone(),
                }),
                error: answer.error.as_ref().map(|e| crate::wire::AnswerError {
                    kind: e.kind,
                    message: e.message.clone(),
                }),
            };
            let _ = waiter.send(copy);
        }
        if let Some(waiter) = last {
            let _ = waiter.send(answer);
        }
    }

    fn wait_for(&self, event_id: &str) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.waiters()
            .entry(event_id.to_string())
            .or_default()
            .push(tx);
        rx
    }

    fn forget(&self, event_id: &str) {
        let mut waiters = self.waiters();
        if let Some(list) = waiters.get_mut(event_id) {
            list.retain(|w| !w.is_closed());
            if list.is_empty() {
                waiters.remove(event_id);
            }
        }
    }

    fn runtime(&self) -> Result<Arc<Runtime>, SubmitError> {
        self.runtime.upgrade().ok_or(SubmitError::ShuttingDown)
    }

    async fn submit(
        self: Arc<Self>,
        events: Vec<PreparedEvent>,
    ) -> Result<Vec<Outcome>, SubmitError> {
        let runtime = self.runtime()?;
        // Resends already stored here are answered from the store, and an id
        // stored with another body refuses the request before anything of
        // it is published.
        let mut known: Vec<Option<Outcome>> = Vec::with_capacity(events.len());
        for (index, prepared) in events.iter().enumerate() {
            match runtime.stored(&prepared.event.event_id, prepared.identity) {
                Ok(Stored::Absent) => known.push(None),
                Ok(Stored::Same(outcome)) => known.push(Some(*outcome)),
                Ok(Stored::Different) => {
                    return Err(SubmitError::Conflict {
                        index,
                        event_id: prepared.event.event_id.clone(),
                    });
                }
                Err(e) => return Err(SubmitError::Storage(e.to_string())),
            }
        }
        let deadline = Instant::now() + self.timeout;
        let mut publishes = Vec::new();
        for (index, prepared) in events.iter().enumerate() {
            if known[index].is_some() {
                continue;
            }
            let event_id = prepared.event.event_id.as_str();
            let partition = partition_of(&prepared.event.account_id, self.partitions);
            let answer = self.wait_for(event_id);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", event_id);
            headers.insert(REPLY_HEADER, self.reply_subject.as_str());
            let subject = self.names.events_subject(partition);
            let js = self.js.clone();
            let payload = bytes::Bytes::from(prepared.json.clone());
            publishes.push(async move {
                let stored = publish_with_retry(&js, subject, headers, payload, deadline).await;
                (index, partition, stored, answer)
            });
        }
        let mut waits = Vec::with_capacity(publishes.len());
        for (index, partition, stored, answer) in futures_util::future::join_all(publishes).await {
            match stored {
                // A resend JetStream dropped as a duplicate is answered the
                // same way: by the owner, or from the store.
                Ok(published) => waits.push((index, partition, published.duplicate, answer)),
                Err(failure) => {
                    self.forget(&events[index].event.event_id);
                    return Err(SubmitError::Storage(format!(
                        "the cluster did not store event {index}: {}; retry with the same event_id",
                        failure.message
                    )));
                }
            }
        }
        for (index, partition, duplicate, answer) in waits {
            let prepared = &events[index];
            let outcome = self
                .answer_of(
                    &runtime, prepared, index, partition, duplicate, answer, deadline,
                )
                .await;
            if outcome.is_err() {
                self.forget(&prepared.event.event_id);
            }
            known[index] = Some(outcome?);
        }
        Ok(known.into_iter().flatten().collect())
    }

    /// Waits for the owner's answer, asking the store too: the answer to
    /// an event JetStream dropped as a resend (`duplicate`) may have gone
    /// to the first request, and an owner that died between its commit and
    /// its answer sends none; either way the decision reaches this node's
    /// store. A resend is looked up at once and often, any other event only
    /// once it has waited a second.
    #[allow(clippy::too_many_arguments)]
    async fn answer_of(
        &self,
        runtime: &Runtime,
        prepared: &PreparedEvent,
        index: usize,
        partition: u32,
        duplicate: bool,
        mut answer: oneshot::Receiver<Answer>,
        deadline: Instant,
    ) -> Result<Outcome, SubmitError> {
        let event_id = prepared.event.event_id.as_str();
        let mut poll = if duplicate {
            Duration::from_millis(20)
        } else {
            Duration::from_secs(1)
        };
        loop {
            let wake = (Instant::now() + poll).min(deadline);
            tokio::select! {
                received = &mut answer => {
                    return match received {
                        Ok(answer) => outcome_of(answer, index),
                        Err(_) => Err(SubmitError::ShuttingDown),
                    };
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            match runtime.stored(event_id, prepared.identity) {
                Ok(Stored::Same(outcome)) => return Ok(*outcome),
                Ok(Stored::Different) => {
                    return Err(SubmitError::Conflict {
                        index,
                        event_id: event_id.to_string(),
                    });
                }
                Ok(Stored::Absent) => poll = poll.min(Duration::from_millis(250)),
                Err(e) => return Err(SubmitError::Storage(e.to_string())),
            }
            if Instant::now() >= deadline {
                metrics::counter!("custos_cluster_answer_timeouts_total").increment(1);
                return Err(SubmitError::Storage(format!(
                    "event {index} was not decided within {:?} (partition {partition} may be \
                     changing owner); retry with the same event_id",
                    self.timeout
                )));
            }
        }
    }
}

fn outcome_of(answer: Answer, index: usize) -> Result<Outcome, SubmitError> {
    if let Some(decided) = answer.decided {
        return Ok(Outcome {
            event_id: answer.event_id,
            seq: decided.seq,
            decision: decided.decision,
            duplicate: decided.duplicate,
        });
    }
    match answer.error {
        Some(error) if error.kind == AnswerErrorKind::Conflict => Err(SubmitError::Conflict {
            index,
            event_id: answer.event_id,
        }),
        Some(error) => Err(SubmitError::Storage(format!(
            "event {index}: {}",
            error.message
        ))),
        None => Err(SubmitError::Storage(format!(
            "event {index}: the owner's answer is empty"
        ))),
    }
}

impl Forward for Ingest {
    fn submit(
        &self,
        events: Vec<PreparedEvent>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Outcome>, SubmitError>> + Send + 'static>> {
        Box::pin(self.inner.clone().submit(events))
    }
}
