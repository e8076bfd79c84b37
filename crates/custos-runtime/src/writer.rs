//! The writer thread: commits decided groups to the store in order and only
//! then answers the callers.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use custos_store::{EventStore, NewRecord};

use crate::messages::{GroupEntry, Job, Note, Reply};
use crate::{CommitLog, LoggedRecord, SubmitError};

/// Queued groups are merged into one transaction while it holds fewer events
/// than this: every merged group saves an fsync and a rewrite of the index
/// pages it shares with the others.
const MERGE_LIMIT_EVENTS: usize = 262_144;

pub(crate) fn spawn(
    store: Arc<dyn EventStore>,
    log: Option<Arc<dyn CommitLog>>,
    queue: usize,
) -> (
    std_mpsc::SyncSender<Job>,
    std_mpsc::Receiver<Note>,
    std::io::Result<JoinHandle<()>>,
) {
    let (jobs, job_rx) = std_mpsc::sync_channel(queue);
    let (note_tx, notes) = std_mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("custos-writer".into())
        .spawn(move || run(store.as_ref(), log.as_deref(), job_rx, note_tx));
    (jobs, notes, handle)
}

fn run(
    store: &dyn EventStore,
    log: Option<&dyn CommitLog>,
    jobs: std_mpsc::Receiver<Job>,
    notes: std_mpsc::Sender<Note>,
) {
    // Groups of a generation whose commit failed were decided on state the
    // log does not have: refuse them until the engine has rebuilt.
    let mut failed_generation: Option<u64> = None;
    let mut held_back: Option<Job> = None;
    loop {
        let job = match held_back.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        match job {
            Job::Barrier { ack } => {
                let _ = ack.send(());
            }
            Job::Commit {
                generation,
                mut entries,
                mut replies,
            } => {
                if failed_generation == Some(generation) {
                    refuse(replies, "an earlier commit failed");
                    continue;
                }
                // Groups that queued up while the last commit ran share this
                // one: under load the fsync count stays flat while groups grow.
                while entries.len() < MERGE_LIMIT_EVENTS {
                    match jobs.try_recv() {
                        Ok(Job::Commit {
                            generation: next_generation,
                            entries: more_entries,
                            replies: more_replies,
                        }) if next_generation == generation => {
                            entries.extend(more_entries);
                            replies.extend(more_replies);
                        }
                        Ok(other) => {
                            held_back = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                match publish(log, &entries).and_then(|()| commit(store, &entries)) {
                    Ok(()) => {
                        if let Some(last) = entries.last() {
                            let _ = notes.send(Note::Committed {
                                last_seq: last.outcome.seq,
                            });
                        }
                        // Answers first: the counters are for dashboards,
                        // the callers are waiting.
                        answer(replies);
                        count(&entries);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, events = entries.len(), "group commit failed; the engine will rebuild");
                        metrics::counter!("custos_commit_failures_total").increment(1);
                        failed_generation = Some(generation);
                        let _ = notes.send(Note::Failed);
                        refuse(replies, &e.to_string());
                    }
                }
            }
        }
    }
}

/// Publishes the entries a cluster owner decided to the commit log, before
/// the store has them: what the log refuses is never answered nor stored.
fn publish(log: Option<&dyn CommitLog>, entries: &[GroupEntry]) -> custos_store::StoreResult<()> {
    let Some(log) = log else { return Ok(()) };
    let records: Vec<LoggedRecord<'_>> = entries
        .iter()
        .filter_map(|e| {
            Some(LoggedRecord {
                origin: e.origin?,
                event_id: &e.outcome.event_id,
                account_id: &e.account_id,
                event_json: &e.event_json,
                decision_json: &e.decision_json,
            })
        })
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let result = log.publish(&records);
    metrics::histogram!("custos_commit_log_seconds").record(started.elapsed().as_secs_f64());
    result.map_err(|e| custos_store::StoreError::backend("publish to the commit log", e))
}

fn commit(store: &dyn EventStore, entries: &[GroupEntry]) -> custos_store::StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let received_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let records: Vec<NewRecord<'_>> = entries
        .iter()
        .map(|e| NewRecord {
            seq: e.outcome.seq,
            event_id: &e.outcome.event_id,
            account_id: &e.account_id,
            event_type: e.event_type.as_str(),
            event_time: e.event_time,
            received_at_ms,
            event_json: &e.event_json,
            decision_json: &e.decision_json,
        })
        .collect();
    let result = store.append(&records);
    metrics::histogram!("custos_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("custos_commit_group_events").record(entries.len() as f64);
    result
}

fn count(entries: &[GroupEntry]) {
    for entry in entries {
        metrics::counter!(
            "custos_events_total",
            "type" => entry.event_type.as_str(),
            "action" => entry.outcome.decision.action.as_str()
        )
        .increment(1);
        let decision = &entry.outcome.decision;
        for (mode, reasons) in [("active", &decision.reasons), ("shadow", &decision.shadow)] {
            for reason in reasons {
                metrics::counter!(
                    "custos_rule_hits_total",
                    "rule" => reason.code.clone(),
                    "mode" => mode,
                    "action" => reason.action.as_str()
                )
                .increment(1);
            }
        }
    }
}

fn answer(replies: Vec<Reply>) {
    for reply in replies {
        match reply {
            Reply::Submit { reply, result } => {
                let _ = reply.send(result);
            }
            Reply::Account { reply, state } => {
                let _ = reply.send(state.map(|state| *state));
            }
            Reply::Read { reply, value } => {
                let _ = reply.send(value);
            }
        }
    }
}

fn refuse(replies: Vec<Reply>, why: &str) {
    for reply in replies {
        match reply {
            Reply::Submit { reply, result } => {
                let refused = match result {
                    Ok(_) => Err(SubmitError::Storage(why.to_string())),
                    // A conflict or shutdown answer did not depend on the lost state.
                    err => err,
                };
                let _ = reply.send(refused);
            }
            // Dropped: the caller sees the engine as unavailable and retries.
            Reply::Account { .. } | Reply::Read { .. } => {}
        }
    }
}
