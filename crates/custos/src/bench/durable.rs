//! `custos bench parse`, `bench memory` and `bench restart`: the durable
//! path's figures that are not throughput of the whole pipeline.
//!
//! - `parse` times what the server does to each body before the engine sees
//!   it (JSON decoding, checks, destination tokens, enrichment without geo
//!   databases, user agents included) on one core, through an
//!   [`EventParser`] built as `custos serve` builds it.
//! - `memory` feeds generated history through an [`Engine`] without a store
//!   and reports the growth of resident memory per account, then times the
//!   copy a snapshot makes of that state (the engine thread's stall) and the
//!   events decided while the copy is held, when writes pay for sharing.
//! - `restart` starts `custos serve` on an existing data directory and times
//!   it until `/readyz` answers 200, and sizes the directory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use custos_core::parse::RawEvent;
use custos_core::{DestinationTokenizer, Engine, EventParser};

use custos_sim::synth::{SynthSpec, generate};

/// A parser as `custos_runtime::open` builds one with no geo configuration.
fn server_parser() -> anyhow::Result<EventParser> {
    let enricher = custos_enrich::GeoUaEnricher::open(&custos_enrich::GeoConfig::default())?;
    Ok(
        EventParser::new(DestinationTokenizer::new(b"bench-key-0123456789abcdef")?)
            .with_pii(custos_core::pii::PiiCipher::new(
                b"bench-pii-key-0123456789abcdef",
            )?)
            .with_enricher(Arc::new(enricher)),
    )
}

pub fn parse(spec: SynthSpec) -> anyhow::Result<()> {
    let parser = server_parser()?;
    let mut ndjson = Vec::new();
    generate(&spec, |v| {
        // Writing to a Vec cannot fail, and a Value always serializes.
        let _ = serde_json::to_writer(&mut ndjson, &v);
        ndjson.push(b'\n');
    });
    let started = Instant::now();
    let events = parse_ndjson(&parser, &ndjson)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "parsed {events} events ({} bytes of NDJSON) in {secs:.3}s: {:.0} events/s on one core ({:.0} ns/event)",
        ndjson.len(),
        events as f64 / secs,
        secs * 1e9 / events as f64
    );
    Ok(())
}

/// The timed part of `bench parse`, kept out of line so that a profiler can
/// count it alone (`valgrind --tool=callgrind --toggle-collect='*parse_ndjson*'`).
#[inline(never)]
fn parse_ndjson(parser: &EventParser, ndjson: &[u8]) -> anyhow::Result<u64> {
    let mut events = 0u64;
    for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // As the server reads a body: UTF-8 checked once, then JSON.
        let raw: RawEvent = serde_json::from_str(std::str::from_utf8(line)?)?;
        let event = parser.parse_raw(raw)?;
        std::hint::black_box(&event);
        events += 1;
    }
    Ok(events)
}

pub fn memory(accounts: u64, per_account: u64, seed: u64) -> anyhow::Result<()> {
    if accounts == 0 || per_account == 0 {
        bail!("--accounts and --events-per-account must be at least 1");
    }
    let parser = server_parser()?;
    let history = accounts * per_account;
    // One more event per account twice over, after the history: decided
    // first with no snapshot copy alive, then with one held, as the engine
    // thread decides while the snapshot thread serializes its copy.
    let spec = SynthSpec {
        events: history + 2 * accounts,
        accounts,
        seed,
        takeover_rate: 0.01,
    };
    let mut engine = Engine::default();
    let before = rss_bytes()?;
    let mut after = None;
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = None;
    let mut seen = 0u64;
    let mut copy: Option<(Engine, Duration)> = None;
    let mut alone = Histogram::new();
    let mut beside_copy = Histogram::new();
    generate(&spec, |v| {
        seen += 1;
        let kind = v["type"].as_str().unwrap_or("?").to_string();
        let event = match parser.parse_value(v) {
            Ok(event) => event,
            Err(e) => {
                failed.get_or_insert(e);
                return;
            }
        };
        if seen <= history {
            engine.process(&event);
            *types.entry(kind).or_default() += 1;
            return;
        }
        if after.is_none() {
            after = Some(rss_bytes());
        }
        if seen > history + accounts && copy.is_none() {
            let started = Instant::now();
            let copied = engine.clone();
            copy = Some((copied, started.elapsed()));
        }
        let started = Instant::now();
        engine.process(&event);
        let took = started.elapsed();
        if copy.is_some() {
            beside_copy.record(took);
        } else {
            alone.record(took);
        }
    });
    if let Some(e) = failed {
        bail!("a generated event was rejected: {e}");
    }
    let after = after.context("no event followed the history")??;
    let in_state = engine.account_count() as u64;
    let mix: Vec<String> = types.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!(
        "{history} events over {in_state} accounts ({}): resident {} MiB before, {} MiB after: {:.0} bytes per account",
        mix.join(", "),
        before >> 20,
        after >> 20,
        after.saturating_sub(before) as f64 / in_state.max(1) as f64
    );
    let (_, copy_took) = copy.as_ref().context("the copy was never made")?;
    println!(
        "snapshot copy (the engine thread's stall): {:.3} ms; the next {accounts} events decided with no copy alive: {}; the {accounts} after them, with the copy held: {}",
        copy_took.as_secs_f64() * 1e3,
        alone.summary(),
        beside_copy.summary()
    );
    drop(copy);
    std::hint::black_box(&engine);
    Ok(())
}

/// Per-event times of one batch, in nanoseconds.
struct Histogram(Vec<u64>);

impl Histogram {
    fn new() -> Histogram {
        Histogram(Vec::new())
    }

    fn record(&mut self, took: Duration) {
        self.0
            .push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    fn summary(&mut self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0.sort_unstable();
        let at = |q: f64| self.0[((self.0.len() - 1) as f64 * q) as usize] as f64 / 1e3;
        let total: u64 = self.0.iter().sum();
        format!(
            "total {:.1} ms, p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
            total as f64 / 1e6,
            at(0.5),
            at(0.99),
            at(0.999),
            at(1.0)
        )
    }
}

/// This process's resident memory in bytes (Linux).
fn rss_bytes() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    vm_rss_bytes(&status).context("/proc/self/status: no VmRSS line")
}

fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let kib: u64 = parts.next()?.parse().ok()?;
    (parts.next()? == "kB").then_some(kib * 1024)
}

pub fn restart(data_dir: &Path, events: Option<u64>) -> anyhow::Result<()> {
    if !data_dir.is_dir() {
        bail!("--data-dir: {} is not a directory", data_dir.display());
    }
    let bytes = dir_bytes(data_dir)?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env("CUSTOS_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start `custos serve`")?;
    let ready = loop {
        if ready_status(port) == Some(200) {
            break Some(started.elapsed());
        }
        if child.try_wait()?.is_some() || started.elapsed() > Duration::from_secs(600) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = child.kill();
    let _ = child.wait();
    let Some(ready) = ready else {
        bail!("`custos serve` exited or was not ready within 600s");
    };
    let per_event = events
        .map(|n| format!(" ({:.0} bytes per event)", bytes as f64 / n.max(1) as f64))
        .unwrap_or_default();
    println!(
        "ready in {:.3}s (start to /readyz 200, polled every 10 ms); data directory {bytes} bytes{per_event}",
        ready.as_secs_f64()
    );
    Ok(())
}

/// The status code of `GET /readyz`, or `None` while nothing answers.
fn ready_status(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    status_code(&head)
}

fn status_code(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Bytes of all files under `dir`.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_memory_from_a_status_text() {
        let status = "Name:\tcustos\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(vm_rss_bytes(status), Some(12345 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tcustos\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn reads_the_status_code_of_an_answer() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.1 503 Service"), Some(503));
        assert_eq!(status_code(b"garbage here"), None);
    }

    #[test]
    fn sums_the_files_of_a_directory_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(dir_bytes(dir.path()).unwrap(), 15);
    }

    #[test]
    fn the_parser_accepts_every_generated_event() {
        let parser = server_parser().unwrap();
        let spec = SynthSpec {
            events: 2_000,
            accounts: 50,
            seed: 3,
            takeover_rate: 0.05,
        };
        let mut rejected = 0;
        generate(&spec, |v| {
            rejected += u32::from(parser.parse_value(v).is_err())
        });
        assert_eq!(rejected, 0);
    }
}
