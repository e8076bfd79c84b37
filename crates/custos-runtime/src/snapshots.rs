//! Periodic snapshots, written off the engine thread.
//!
//! The engine thread serializes its state into memory in chunks (it owns
//! the state, so this part cannot move) and hands the chunks to the
//! snapshot thread, which stores them while ingest goes on. At most one
//! snapshot is in flight. A failed snapshot (a full disk, a store that
//! refuses it) is not retried on every group: the next attempt waits for
//! twice as many events as the last one did ([`Backoff`]), so the store
//! sees O(log n) attempts over n events.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use custos_store::{EventStore, SNAPSHOT_CHUNK_BYTES, SnapshotInfo};

/// Serialized state as a list of chunks of at most [`SNAPSHOT_CHUNK_BYTES`]:
/// growing it never copies what is already written, as one growing `Vec`
/// would at every doubling.
#[derive(Default)]
pub(crate) struct Chunks {
    chunks: Vec<Vec<u8>>,
}

impl Chunks {
    /// A reader over the bytes, in order.
    pub(crate) fn reader(&self) -> impl Read + '_ {
        ChunksReader {
            chunks: &self.chunks,
            at: 0,
            pos: 0,
        }
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self
            .chunks
            .last()
            .map_or(0, |c| SNAPSHOT_CHUNK_BYTES - c.len());
        if room == 0 {
            self.chunks.push(Vec::with_capacity(SNAPSHOT_CHUNK_BYTES));
        }
        let Some(last) = self.chunks.last_mut() else {
            return Ok(0);
        };
        let n = buf.len().min(SNAPSHOT_CHUNK_BYTES - last.len());
        last.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct ChunksReader<'a> {
    chunks: &'a [Vec<u8>],
    at: usize,
    pos: usize,
}

impl Read for ChunksReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(chunk) = self.chunks.get(self.at) {
            if self.pos < chunk.len() {
                let n = buf.len().min(chunk.len() - self.pos);
                buf[..n].copy_from_slice(&chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            self.at += 1;
            self.pos = 0;
        }
        Ok(0)
    }
}

/// A serialized snapshot for the snapshot thread to store.
pub(crate) struct SnapshotJob {
    pub seq: u64,
    pub chunks: Chunks,
    /// Events since the previous snapshot when this one was taken.
    pub events: u64,
    pub serialize: Duration,
}

/// What became of a [`SnapshotJob`].
pub(crate) struct SnapshotDone {
    pub seq: u64,
    pub events: u64,
    pub serialize: Duration,
    pub write: Duration,
    pub result: Result<SnapshotInfo, String>,
}

pub(crate) type SnapshotThread = (
    std_mpsc::SyncSender<SnapshotJob>,
    std_mpsc::Receiver<SnapshotDone>,
    JoinHandle<()>,
);

pub(crate) fn spawn(store: Arc<dyn EventStore>) -> std::io::Result<SnapshotThread> {
    // One job queued at most: the engine never starts a second snapshot
    // before the first is done.
    let (jobs, job_rx) = std_mpsc::sync_channel::<SnapshotJob>(1);
    let (done_tx, done) = std_mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("custos-snapshot".into())
        .spawn(move || {
            while let Ok(job) = job_rx.recv() {
                let _ = done_tx.send(save(store.as_ref(), job));
            }
        })?;
    Ok((jobs, done, handle))
}

/// Stores one serialized snapshot.
pub(crate) fn save(store: &dyn EventStore, job: SnapshotJob) -> SnapshotDone {
    let started = Instant::now();
    let result = store
        .save_snapshot(job.seq, &mut job.chunks.reader())
        .map_err(|e| e.to_string());
    SnapshotDone {
        seq: job.seq,
        events: job.events,
        serialize: job.serialize,
        write: started.elapsed(),
        result,
    }
}

/// Longest wait between attempts, as a multiple of the snapshot interval.
const MAX_BACKOFF_SHIFT: u32 = 10;

/// When the next periodic snapshot is due, in events since the last one
/// that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Failed attempts since the last success.
    pub failures: u32,
    /// Events since the last successful snapshot at which to try next.
    pub due_at: u64,
}

impl Backoff {
    pub(crate) fn new(every: u64) -> Backoff {
        Backoff {
            failures: 0,
            due_at: every,
        }
    }

    /// After a success: the next snapshot is one interval away.
    pub(crate) fn succeeded(&mut self, every: u64) {
        *self = Backoff::new(every);
    }

    /// After an attempt at `events` failed: wait `every × 2^failures` more
    /// events (capped at `every × 2^MAX_BACKOFF_SHIFT`).
    pub(crate) fn failed(&mut self, every: u64, events: u64) {
        self.failures = self.failures.saturating_add(1);
        let wait = every.saturating_mul(1 << self.failures.min(MAX_BACKOFF_SHIFT));
        self.due_at = events.saturating_add(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_the_bytes_in_order_and_no_chunk_is_too_large() {
        let mut chunks = Chunks::default();
        let piece: Vec<u8> = (0..=255u8).cycle().take(1_000_003).collect();
        for _ in 0..40 {
            chunks.write_all(&piece).unwrap();
        }
        let len: usize = chunks.chunks.iter().map(Vec::len).sum();
        assert_eq!(len, 40 * 1_000_003);
        assert!(
            chunks
                .chunks
                .iter()
                .all(|c| c.len() <= SNAPSHOT_CHUNK_BYTES)
        );
        assert_eq!(chunks.chunks.len(), 3);
        let mut back = Vec::new();
        chunks.reader().read_to_end(&mut back).unwrap();
        assert!(back.chunks(piece.len()).all(|p| p == piece));
    }

    #[test]
    fn attempts_after_failures_are_exponentially_apart() {
        let every = 100;
        let mut backoff = Backoff::new(every);
        let mut attempts = Vec::new();
        for events in 1..=1_000_000u64 {
            if events >= backoff.due_at {
                attempts.push(events);
                backoff.failed(every, events);
            }
        }
        assert_eq!(&attempts[..5], [100, 300, 700, 1_500, 3_100]);
        // Capped: from then on, one attempt per 1,024 intervals.
        assert_eq!(attempts.len(), 18);
        backoff.succeeded(every);
        assert_eq!(backoff, Backoff::new(every));
    }
}
