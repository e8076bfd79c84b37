//! `custos bench snapshot`: what a snapshot of N accounts costs — the copy
//! the engine thread makes (its only stall), the time to serialize and
//! store it (on the snapshot thread), its size, and the time and peak memory of a restart that loads
//! it, against the memory of the live engine that wrote it.
//!
//! The restart runs in a child process (`custos bench snapshot-load`), so
//! that its peak resident memory is its own. It loads the snapshot twice,
//! each in a fresh child: streamed from the store chunk by chunk (as
//! Custos restarts) and read whole into memory first (as restarts did
//! before snapshots were chunked), for comparison.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use custos_core::Engine;
use custos_sim::rng::Rng;
use custos_store::{EventStore, SNAPSHOT_CHUNK_BYTES, SqliteStore};

use super::bench_login_event;

/// Serialized state in chunks, as the engine thread writes it.
#[derive(Default)]
struct Chunks(Vec<Vec<u8>>);

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self
            .0
            .last()
            .is_none_or(|c| c.len() == SNAPSHOT_CHUNK_BYTES)
        {
            self.0.push(Vec::with_capacity(SNAPSHOT_CHUNK_BYTES));
        }
        let Some(last) = self.0.last_mut() else {
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

/// Resident and peak resident memory of this process in MiB (Linux).
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What a child reports about one load.
struct LoadReport {
    accounts: u64,
    load_secs: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

impl LoadReport {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"accounts": self.accounts, "load_secs": self.load_secs,
            "rss_mib": self.rss_mib, "peak_rss_mib": self.peak_rss_mib})
    }

    fn from_json(value: &serde_json::Value) -> Option<LoadReport> {
        Some(LoadReport {
            accounts: value["accounts"].as_u64()?,
            load_secs: value["load_secs"].as_f64()?,
            rss_mib: value["rss_mib"].as_f64()?,
            peak_rss_mib: value["peak_rss_mib"].as_f64()?,
        })
    }
}

pub fn run(accounts: u64, events: u64, seed: u64, dir: Option<PathBuf>) -> anyhow::Result<()> {
    if accounts == 0 || events == 0 {
        bail!("--accounts and --events must be at least 1");
    }
    let temp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
    let db = dir.join("custos.db");
    let _ = std::fs::remove_file(&db);

    let mut rng = Rng::new(seed);
    let start = 1_525_000_000i64;
    let mut engine = Engine::default();
    let started = Instant::now();
    let mut id = 0u64;
    for step in 0..events {
        for account in 0..accounts {
            id += 1;
            let at = start + step as i64 * 86_400 + account as i64 % 86_400;
            engine.process(&bench_login_event(id, account, at, true, &mut rng));
        }
    }
    let (live_rss, _) = memory_mib();
    println!(
        "built {} accounts from {id} login events in {:.1} s; live engine rss {live_rss:.0} MiB",
        engine.account_count(),
        started.elapsed().as_secs_f64()
    );

    // As Custos does it: the engine thread copies the state, the snapshot
    // thread serializes the copy and stores it chunk by chunk as it goes.
    let started = Instant::now();
    let copy = engine.clone();
    let copy_secs = started.elapsed().as_secs_f64();
    let store = SqliteStore::open(&db)?;
    let started = Instant::now();
    let info = custos_runtime::write_snapshot(&store, id, &copy)
        .map_err(|e| anyhow::anyhow!("snapshot failed: {e}"))?;
    let pipeline_secs = started.elapsed().as_secs_f64();
    drop(copy);
    let (_, pipeline_peak) = memory_mib();
    println!(
        "snapshot: engine thread copies the state in {copy_secs:.2} s (its only stall); the snapshot thread serializes and stores {:.0} MiB in {} chunks in {pipeline_secs:.2} s; peak rss {pipeline_peak:.0} MiB",
        info.bytes as f64 / (1 << 20) as f64,
        info.chunks
    );

    // The two halves apart, for comparison: serializing alone (what the
    // engine thread stalled for before) and storing alone.
    let started = Instant::now();
    let mut chunks = Chunks::default();
    engine.snapshot_to(&mut chunks)?;
    let serialize = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut reader = ChunksReader {
        chunks: &chunks.0,
        pos: 0,
    };
    let again = store.save_snapshot(id + 1, &mut reader)?;
    let write = started.elapsed().as_secs_f64();
    let (_, serialize_peak) = memory_mib();
    println!(
        "apart: serialize {serialize:.2} s, store {write:.2} s ({} chunks); peak rss holding the serialized bytes {serialize_peak:.0} MiB",
        again.chunks
    );
    drop(chunks);
    drop(store);

    let exe = std::env::current_exe()?;
    for (mode, whole) in [("streamed", false), ("read whole", true)] {
        let mut command = Command::new(&exe);
        command.args(["bench", "snapshot-load", "--db"]).arg(&db);
        if whole {
            command.arg("--whole");
        }
        let output = command.output().context("cannot run the restart child")?;
        if !output.status.success() {
            bail!(
                "restart child ({mode}) failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report = serde_json::from_slice(&output.stdout)
            .ok()
            .as_ref()
            .and_then(LoadReport::from_json)
            .context("cannot read the restart child's report")?;
        if report.accounts != engine.account_count() as u64 {
            bail!(
                "restart ({mode}) loaded {} accounts, the live engine has {}",
                report.accounts,
                engine.account_count()
            );
        }
        println!(
            "restart ({mode}): load {:.2} s; rss after {:.0} MiB, peak {:.0} MiB ({:.2}x the live engine's {live_rss:.0} MiB)",
            report.load_secs,
            report.rss_mib,
            report.peak_rss_mib,
            report.peak_rss_mib / live_rss
        );
    }
    Ok(())
}

/// The restart child: loads the newest snapshot of `db` and reports.
pub fn load(db: &Path, whole: bool) -> anyhow::Result<()> {
    let store = SqliteStore::open(db)?;
    let mut engine = Engine::default();
    let started = Instant::now();
    let Some((_, mut reader)) = store.latest_snapshot()? else {
        bail!("{} holds no snapshot", db.display());
    };
    if whole {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        engine.restore(&bytes)?;
    } else {
        engine.restore_from(reader)?;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let (rss_mib, peak_rss_mib) = memory_mib();
    let report = LoadReport {
        accounts: engine.account_count() as u64,
        load_secs,
        rss_mib,
        peak_rss_mib,
    };
    println!("{}", report.to_json());
    Ok(())
}

/// Reads the chunks in order.
struct ChunksReader<'a> {
    chunks: &'a [Vec<u8>],
    pos: usize,
}

impl Read for ChunksReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some((first, rest)) = self.chunks.split_first() {
            if self.pos < first.len() {
                let n = buf.len().min(first.len() - self.pos);
                buf[..n].copy_from_slice(&first[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            self.chunks = rest;
            self.pos = 0;
        }
        Ok(0)
    }
}
