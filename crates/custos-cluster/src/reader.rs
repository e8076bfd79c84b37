//! Reading a stream in order without a JetStream consumer.
//!
//! Each read asks the stream's leader for the next message on a subject at
//! or after a sequence (`STREAM.MSG.GET` with `next_by_subj`); a plain NATS
//! subscription on the same subjects only says when to ask again. No
//! consumer is created, so nothing depends on where NATS places one: with
//! one of three NATS 2.9 servers dead, about two in five consumer creations
//! timed out (the server placed them on the dead peer) while these reads
//! kept answering in under a millisecond.

use std::time::Duration;

use async_nats::jetstream::{self, message::StreamMessage, stream::LastRawMessageErrorKind};
use futures_util::StreamExt;

/// How long a reader with nothing to read waits before asking again even
/// without a wake-up (a lost wake-up, or one that came before the message
/// was stored).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Reads asked for at once when reading a whole stream by sequence.
const PIPELINE: usize = 64;

pub(crate) struct OrderedReader {
    stream: jetstream::stream::Stream,
    subject: String,
    /// Every message of the stream is wanted: read by sequence, many reads
    /// in flight, instead of one `next_by_subj` after another.
    whole_stream: bool,
    /// The last sequence read.
    position: u64,
    wake: async_nats::Subscriber,
}

impl OrderedReader {
    /// Reads `subject` (wildcards allowed) of `stream` after `position`;
    /// `whole_stream`: the subject covers every message of the stream.
    pub(crate) async fn new(
        client: &async_nats::Client,
        stream: jetstream::stream::Stream,
        subject: String,
        whole_stream: bool,
        position: u64,
    ) -> Result<OrderedReader, String> {
        // Subscribed first: a message stored after the first read still
        // wakes this reader.
        let wake = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| format!("cannot subscribe to {subject}: {e}"))?;
        Ok(OrderedReader {
            stream,
            subject,
            whole_stream,
            position,
            wake,
        })
    }

    /// Up to `max` messages after the position, in order; waits (up to the
    /// idle poll) when there are none yet, and may return none.
    pub(crate) async fn next_batch(&mut self, max: usize) -> Result<Vec<StreamMessage>, String> {
        let batch = self.read_available(max).await?;
        if !batch.is_empty() {
            return Ok(batch);
        }
        let _ = tokio::time::timeout(IDLE_POLL, self.wake.next()).await;
        self.read_available(max).await
    }

    async fn read_available(&mut self, max: usize) -> Result<Vec<StreamMessage>, String> {
        // Wake-ups are only hints: take the ones already queued, counting
        // them (about one per new message).
        let mut woken = 0;
        while let Some(Some(_)) = futures_util::FutureExt::now_or_never(self.wake.next()) {
            woken += 1;
        }
        if self.whole_stream {
            return self.read_by_sequence(max, woken).await;
        }
        let mut batch = Vec::new();
        while batch.len() < max {
            match self
                .stream
                .raw_message_builder()
                .sequence(self.position + 1)
                .next_by_subject(self.subject.clone())
                .send()
                .await
            {
                Ok(message) => {
                    self.position = message.sequence;
                    batch.push(message);
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
                Err(e) => {
                    return Err(format!(
                        "cannot read {} after {}: {e}",
                        self.subject, self.position
                    ));
                }
            }
        }
        Ok(batch)
    }

    /// The messages after the position by sequence; stops at the first
    /// sequence not (yet) stored. As many reads in flight as wake-ups came
    /// (at least one), doubling while every read finds its message, up to
    /// [`PIPELINE`]: reads past the end cost the server a request each.
    async fn read_by_sequence(
        &mut self,
        max: usize,
        woken: usize,
    ) -> Result<Vec<StreamMessage>, String> {
        let mut batch = Vec::new();
        let mut window = woken.clamp(1, PIPELINE);
        while batch.len() < max {
            let want = (max - batch.len()).min(window) as u64;
            window = (window * 2).min(PIPELINE);
            let start = self.position + 1;
            let reads = (start..start + want).map(|seq| self.stream.get_raw_message(seq));
            let mut reached_end = false;
            for result in futures_util::future::join_all(reads).await {
                match result {
                    Ok(message) => {
                        self.position = message.sequence;
                        batch.push(message);
                    }
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                        reached_end = true;
                        break;
                    }
                    Err(e) => {
                        return Err(format!(
                            "cannot read {} at {}: {e}",
                            self.subject,
                            self.position + 1
                        ));
                    }
                }
            }
            if reached_end {
                break;
            }
        }
        Ok(batch)
    }
}

/// How long the first message on `subject` after sequence `after` has
/// waited in `stream`, in seconds; `None` when there is none (every event
/// of the partition is decided).
pub(crate) async fn oldest_waiting(
    stream: &jetstream::stream::Stream,
    subject: String,
    after: u64,
) -> Result<Option<f64>, String> {
    match stream
        .raw_message_builder()
        .sequence(after + 1)
        .next_by_subject(subject)
        .send()
        .await
    {
        Ok(message) => Ok(Some(
            (time::OffsetDateTime::now_utc() - message.time)
                .as_seconds_f64()
                .max(0.0),
        )),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
