//! Periodic snapshots, written off the engine thread.
//!
//! Serializing the state is slow (about 100 MB/s of JSON: 15.7 s for
//! 700,000 accounts, measured with `custos bench snapshot`), and ingest
//! would stall for all of it on the engine thread. So the engine thread
//! only clones its state (a fraction of that time) and hands the copy to the
//! snapshot thread, which serializes it and stores the chunks as they come
//! ([`write`]), while ingest goes on. The serialized bytes are never held
//! whole: a serializer thread feeds the store through a channel of a few
//! chunks. At most one snapshot is in flight. A failed snapshot (a full
//! disk, a store that refuses it) is not retried on every group: the next
//! attempt waits for twice as many events as the last one did
//! ([`Backoff`]), so the store sees O(log n) attempts over n events.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use custos_core::Engine;
use custos_store::{EventStore, SNAPSHOT_CHUNK_BYTES, SnapshotInfo};

/// Chunks queued between the serializer and the store, at most.
const CHUNKS_QUEUED: usize = 2;

/// What the serializer sends the store's reader.
enum Piece {
    Chunk(Vec<u8>),
    /// The serializer finished: everything was sent.
    End,
    Failed(String),
}

/// The serializer's end of the pipe: fills chunks and sends each when full.
struct PipeWriter<'a> {
    chunk: Vec<u8>,
    tx: std_mpsc::SyncSender<Piece>,
    /// Set once the store is done, whatever the outcome: a store that
    /// failed early need not wait for the whole state to be serialized.
    stop: &'a AtomicBool,
}

impl PipeWriter<'_> {
    fn send(&mut self, piece: Piece) -> std::io::Result<()> {
        self.tx
            .send(piece)
            .map_err(|_| std::io::Error::other("the store stopped reading the snapshot"))
    }
}

impl Write for PipeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other(
                "the store stopped reading the snapshot",
            ));
        }
        if self.chunk.len() == SNAPSHOT_CHUNK_BYTES {
            let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(SNAPSHOT_CHUNK_BYTES));
            self.send(Piece::Chunk(full))?;
        }
        let n = buf.len().min(SNAPSHOT_CHUNK_BYTES - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The store's end of the pipe. A serializer that stops without saying it
/// finished (a panic) is an error, never a clean end: a truncated snapshot
/// must not be stored as complete.
struct PipeReader {
    rx: std_mpsc::Receiver<Piece>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Piece::Chunk(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Piece::End) => self.ended = true,
                Ok(Piece::Failed(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Err(std::io::Error::other("the snapshot serializer stopped")),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Serializes `engine` and stores it as the snapshot after `seq`, the
/// serializer on its own thread feeding the store chunk by chunk.
pub fn write(store: &dyn EventStore, seq: u64, engine: &Engine) -> Result<SnapshotInfo, String> {
    let (tx, rx) = std_mpsc::sync_channel(CHUNKS_QUEUED);
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|scope| {
        let serializer = std::thread::Builder::new()
            .name("custos-snapshot-serialize".into())
            .spawn_scoped(scope, move || {
                let mut out = PipeWriter {
                    chunk: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES),
                    tx,
                    stop,
                };
                let last = match engine.snapshot_to(&mut out) {
                    Ok(()) => {
                        let rest = std::mem::take(&mut out.chunk);
                        out.send(Piece::Chunk(rest))
                            .and_then(|()| out.send(Piece::End))
                    }
                    Err(e) => out.send(Piece::Failed(format!("cannot serialize: {e}"))),
                };
                // The reader is gone when the store failed; it says why.
                let _ = last;
            })
            .map_err(|e| format!("cannot start the serializer thread: {e}"))?;
        let mut input = PipeReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            ended: false,
        };
        let saved = store
            .save_snapshot(seq, &mut input)
            .map_err(|e| e.to_string());
        // Stops a serializer still running, if the store gave up early.
        stop.store(true, Ordering::Relaxed);
        drop(input);
        if serializer.join().is_err() {
            return Err("the snapshot serializer panicked".to_string());
        }
        saved
    })
}

/// A copy of the state for the snapshot thread to store.
pub(crate) struct SnapshotJob {
    pub seq: u64,
    pub engine: Box<Engine>,
    /// Events since the previous snapshot when this one was taken.
    pub events: u64,
    /// How long the engine thread spent copying the state.
    pub copy: Duration,
}

/// What became of a [`SnapshotJob`].
pub(crate) struct SnapshotDone {
    pub seq: u64,
    pub events: u64,
    pub copy: Duration,
    /// Serializing and storing, which overlap.
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

/// Serializes and stores one copied state.
pub(crate) fn save(store: &dyn EventStore, job: SnapshotJob) -> SnapshotDone {
    let started = Instant::now();
    let result = write(store, job.seq, &job.engine);
    let write = started.elapsed();
    // Freed here, not on the engine thread.
    drop(job.engine);
    SnapshotDone {
        seq: job.seq,
        events: job.events,
        copy: job.copy,
        write,
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

    /// Stores whatever it reads, or fails after `fail_after` bytes.
    struct Sink {
        fail_after: Option<usize>,
        read: std::sync::Mutex<Vec<u8>>,
    }

    impl EventStore for Sink {
        fn append(&self, _: &[custos_store::NewRecord<'_>]) -> custos_store::StoreResult<()> {
            unimplemented!()
        }
        fn get_event(
            &self,
            _: &str,
        ) -> custos_store::StoreResult<Option<custos_store::StoredRecord>> {
            unimplemented!()
        }
        fn account_events(
            &self,
            _: &str,
            _: usize,
        ) -> custos_store::StoreResult<Vec<custos_store::StoredRecord>> {
            unimplemented!()
        }
        fn scan(
            &self,
            _: u64,
            _: &mut dyn FnMut(custos_store::StoredRecord) -> custos_store::StoreResult<()>,
        ) -> custos_store::StoreResult<()> {
            unimplemented!()
        }
        fn scan_event_ids(&self, _: &mut dyn FnMut(&str)) -> custos_store::StoreResult<()> {
            unimplemented!()
        }
        fn last_seq(&self) -> custos_store::StoreResult<u64> {
            unimplemented!()
        }
        fn event_count(&self) -> custos_store::StoreResult<u64> {
            unimplemented!()
        }
        fn save_snapshot(
            &self,
            seq: u64,
            state: &mut dyn Read,
        ) -> custos_store::StoreResult<SnapshotInfo> {
            let mut read = self.read.lock().unwrap();
            let mut buf = [0u8; 1000];
            loop {
                let n = state
                    .read(&mut buf)
                    .map_err(|e| custos_store::StoreError::backend("save a snapshot", e))?;
                if n == 0 {
                    break;
                }
                read.extend_from_slice(&buf[..n]);
                if self.fail_after.is_some_and(|at| read.len() >= at) {
                    return Err(custos_store::StoreError::backend(
                        "save a snapshot",
                        "disk full",
                    ));
                }
            }
            Ok(SnapshotInfo {
                seq,
                bytes: read.len() as u64,
                chunks: 0,
            })
        }
        fn latest_snapshot(&self) -> custos_store::StoreResult<Option<(u64, Box<dyn Read + '_>)>> {
            unimplemented!()
        }
        fn snapshots(&self) -> custos_store::StoreResult<Vec<SnapshotInfo>> {
            unimplemented!()
        }
        fn get_meta(&self, _: &str) -> custos_store::StoreResult<Option<String>> {
            unimplemented!()
        }
        fn set_meta(&self, _: &str, _: &str) -> custos_store::StoreResult<()> {
            unimplemented!()
        }
        fn save_rule_set(&self, _: u64, _: i64, _: &str) -> custos_store::StoreResult<()> {
            unimplemented!()
        }
        fn latest_rule_set(&self) -> custos_store::StoreResult<Option<(u64, String)>> {
            unimplemented!()
        }
        fn rule_set(&self, _: u64) -> custos_store::StoreResult<Option<(i64, String)>> {
            unimplemented!()
        }
    }

    #[test]
    fn the_store_reads_exactly_the_serialized_state_through_the_pipe() {
        let engine = Engine::default();
        let sink = Sink {
            fail_after: None,
            read: Default::default(),
        };
        let info = write(&sink, 7, &engine).unwrap();
        let expected = engine.snapshot().unwrap();
        assert_eq!(info.bytes, expected.len() as u64);
        assert!(*sink.read.lock().unwrap() == expected);
    }

    #[test]
    fn a_store_that_fails_part_way_stops_the_serializer() {
        let engine = Engine::default();
        let sink = Sink {
            fail_after: Some(10),
            read: Default::default(),
        };
        // Returns (the serializer is not left blocked) with the store's error.
        let err = write(&sink, 7, &engine).unwrap_err();
        assert!(err.contains("disk full"), "{err}");
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
