//! `custos bench soak`: a long open-loop run of the generated marketplace mix
//! (logins, sales, payouts, destination changes, password changes, loans and
//! takeovers) against `POST /v1/events`, reporting every minute the latency
//! quantiles of that minute's requests and the server's resident memory.
//!
//! A soak answers a different question from `bench http`: not "how fast" but
//! "does it stay that fast and that small for an hour". So each minute gets
//! its own histogram (a slow minute cannot hide in an hour's average), and
//! memory is read from the server process itself (`/proc/PID/status`), not
//! estimated.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

use custos_sim::synth::{SynthSpec, generate};

use super::{spawn_server, wait_healthy};

pub struct SoakArgs {
    pub url: Option<String>,
    pub server_pid: Option<u32>,
    pub key: String,
    pub rate: u64,
    pub minutes: u64,
    pub accounts: u64,
    pub seed: u64,
    pub max_in_flight: usize,
    pub csv: Option<PathBuf>,
}

/// One minute of the soak, as printed and written to the CSV file.
struct MinuteRow {
    minute: u64,
    sent: u64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    rss_mb: Option<f64>,
}

const CSV_HEADER: &str = "minute,requests,errors,p50_ms,p99_ms,p999_ms,max_ms,rss_mb";

impl MinuteRow {
    fn csv(&self) -> String {
        format!(
            "{},{},{},{:.3},{:.3},{:.3},{:.3},{}",
            self.minute,
            self.sent,
            self.errors,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.rss_mb.map(|m| format!("{m:.1}")).unwrap_or_default()
        )
    }
}

/// Resident set size of a process in MiB, from `/proc/PID/status` (Linux).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn open_csv(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{CSV_HEADER}")?;
    Ok(file)
}

pub fn run(args: SoakArgs) -> anyhow::Result<()> {
    if args.rate == 0 || args.minutes == 0 {
        bail!("--rate and --minutes must be positive");
    }
    let (base, child) = match &args.url {
        Some(url) => (url.trim_end_matches('/').to_string(), None),
        None => {
            let (url, child) = spawn_server()?;
            (url, Some(child))
        }
    };
    let server_pid = args
        .server_pid
        .or_else(|| child.as_ref().map(|c| c.child.id()));
    if server_pid.is_none() {
        eprintln!("warning: no --server-pid given; memory is not reported");
    }
    let mut csv = args.csv.as_deref().map(open_csv).transpose()?;

    // The generator runs on its own thread, ahead of the sender, through a
    // bounded queue: generating never stalls the schedule, and an hour of
    // events is never held in memory at once.
    let per_minute = args.rate * 60;
    let warmup = 2 * args.rate;
    let total = warmup + args.minutes * per_minute;
    let (event_tx, mut event_rx) = tokio::sync::mpsc::channel::<String>(16_384);
    let spec = SynthSpec {
        events: total,
        accounts: args.accounts,
        seed: args.seed,
        takeover_rate: 0.01,
    };
    let generator = std::thread::spawn(move || {
        generate(&spec, |event| {
            // A closed queue means the sender stopped early; drop the rest.
            let _ = event_tx.blocking_send(event.to_string());
        });
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let client = custos_server::tls::client_builder()
            .pool_max_idle_per_host(args.max_in_flight)
            .timeout(Duration::from_secs(10))
            .build()?;
        wait_healthy(&client, &base).await?;
        let endpoint = Arc::new(format!("{base}/v1/events"));
        let auth = Arc::new(format!("Bearer {}", args.key));
        let limit = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight));
        let (done_tx, mut done_rx) =
            tokio::sync::mpsc::unbounded_channel::<(u64, Result<u64, String>)>();

        // Results are grouped by the minute their request was due in; a
        // minute is reported once every one of its requests has answered.
        let reporter = tokio::spawn(async move {
            let mut minutes: BTreeMap<u64, (Histogram<u64>, u64, u64)> = BTreeMap::new();
            let mut first_error: Option<String> = None;
            let mut rows = Vec::new();
            let mut report = |minute: u64, (h, answered, errors): (Histogram<u64>, u64, u64)| {
                let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
                let row = MinuteRow {
                    minute,
                    sent: answered,
                    errors,
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    p999_ms: q(0.999),
                    max_ms: h.max() as f64 / 1000.0,
                    rss_mb: server_pid.and_then(rss_mib),
                };
                println!(
                    "minute {:>3}: {:>7} requests {:>5} errors  p50 {:>7.3} ms  p99 {:>8.3} ms  p99.9 {:>8.3} ms  max {:>8.3} ms  rss {}",
                    row.minute,
                    row.sent,
                    row.errors,
                    row.p50_ms,
                    row.p99_ms,
                    row.p999_ms,
                    row.max_ms,
                    row.rss_mb.map(|m| format!("{m:.0} MiB")).unwrap_or_else(|| "-".into())
                );
                if let Some(file) = csv.as_mut() {
                    let _ = writeln!(file, "{}", row.csv());
                    let _ = file.flush();
                }
                rows.push(row);
            };
            while let Some((i, outcome)) = done_rx.recv().await {
                if i < warmup {
                    continue;
                }
                let minute = (i - warmup) / per_minute;
                let entry = match minutes.entry(minute) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert((Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?, 0, 0))
                    }
                };
                entry.1 += 1;
                match outcome {
                    Ok(micros) => entry.0.record(micros.max(1))?,
                    Err(e) => {
                        entry.2 += 1;
                        first_error.get_or_insert(e);
                    }
                }
                if entry.1 == per_minute
                    && let Some(done) = minutes.remove(&minute)
                {
                    report(minute, done);
                }
            }
            // Whatever is left (a run cut short) is reported as it stands.
            for (minute, partial) in std::mem::take(&mut minutes) {
                report(minute, partial);
            }
            anyhow::Ok((rows, first_error))
        });

        let start = Instant::now();
        let tick = Duration::from_millis(1);
        for i in 0..total {
            let Some(body) = event_rx.recv().await else {
                break;
            };
            let due = start + Duration::from_nanos(i * 1_000_000_000 / args.rate);
            if due > Instant::now() + tick {
                tokio::time::sleep_until(tokio::time::Instant::from_std(due - tick)).await;
            }
            let permit = limit.clone().acquire_owned().await?;
            let (client, endpoint, auth, done_tx) = (
                client.clone(),
                endpoint.clone(),
                auth.clone(),
                done_tx.clone(),
            );
            tokio::spawn(async move {
                // Timed from the due time when late (no coordinated omission).
                let since = due.min(Instant::now());
                let result = client
                    .post(endpoint.as_str())
                    .header("authorization", auth.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let outcome = match result {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        Ok(since.elapsed().as_micros() as u64)
                    }
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                drop(permit);
                let _ = done_tx.send((i, outcome));
            });
        }
        drop(done_tx);
        let (rows, first_error) = reporter.await??;
        let elapsed = start.elapsed().as_secs_f64();
        let errors: u64 = rows.iter().map(|r| r.errors).sum();
        let worst_p99 = rows.iter().map(|r| r.p99_ms).fold(0.0, f64::max);
        let rss: Vec<f64> = rows.iter().filter_map(|r| r.rss_mb).collect();
        println!(
            "{total} requests in {elapsed:.0}s (target {}/s); {errors} errors{}; worst minute p99 {worst_p99:.3} ms",
            args.rate,
            first_error
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
            let peak = rss.iter().copied().fold(0.0, f64::max);
            println!("server rss: first minute {first:.0} MiB, last {last:.0} MiB, peak {peak:.0} MiB");
        }
        anyhow::Ok(())
    });
    // Closing the queue lets a generator that is still ahead of a run cut
    // short finish, so joining it cannot hang.
    drop(event_rx);
    let _ = generator.join();
    drop(child);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_row_is_one_csv_line_matching_the_header() {
        let row = MinuteRow {
            minute: 3,
            sent: 120_000,
            errors: 2,
            p50_ms: 1.25,
            p99_ms: 4.5,
            p999_ms: 12.0,
            max_ms: 30.125,
            rss_mb: None,
        };
        let line = row.csv();
        assert_eq!(line, "3,120000,2,1.250,4.500,12.000,30.125,");
        assert_eq!(
            line.split(',').count(),
            CSV_HEADER.split(',').count(),
            "{line}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn resident_memory_is_read_from_proc() {
        let mib = rss_mib(std::process::id()).unwrap_or(0.0);
        assert!(mib > 1.0, "rss of this test process: {mib} MiB");
        assert_eq!(rss_mib(u32::MAX), None);
    }
}
