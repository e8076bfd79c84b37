//! `custos bench`: the measurements behind BENCHMARKS.md.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use custos_core::{DestinationTokenizer, Engine, Event, EventParser};
use hdrhistogram::Histogram;
use serde_json::Value;

use custos_sim::rng::Rng;
use custos_sim::synth::{SynthSpec, generate};

mod durable;
mod snapshot;
mod soak;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Decide already-parsed events on one core, no I/O.
    Engine {
        #[command(flatten)]
        spec: SpecArgs,
        /// Passes over the events (state carries over between passes).
        #[arg(long, default_value_t = 3)]
        passes: u32,
    },
    /// Score logins against realistic histories: the cost of deciding one
    /// login (features and the login-risk model included, enrichment given)
    /// and the memory of each account's behavioural profile.
    Login {
        /// Sellers, each with its own history.
        #[arg(long, default_value_t = 20_000)]
        accounts: u64,
        /// Successful logins per seller before scoring (over 90 days).
        #[arg(long, default_value_t = 60)]
        history: u64,
        /// Logins to score (half by owners, half by strangers).
        #[arg(long, default_value_t = 200_000)]
        logins: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// MaxMind City database: also time enrichment of each login.
        #[arg(long)]
        city_db: Option<std::path::PathBuf>,
        /// MaxMind ASN database.
        #[arg(long)]
        asn_db: Option<std::path::PathBuf>,
    },
    /// Parse generated NDJSON on one core as the server does (JSON, checks,
    /// destination tokens, enrichment without geo databases), no engine.
    Parse {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Resident memory per account after feeding generated history of N
    /// accounts through an engine without a store; then the stall of a
    /// snapshot's copy of that state, and per-event decide times with and
    /// without the copy held.
    Memory {
        #[arg(long, default_value_t = 100_000)]
        accounts: u64,
        /// Generated events per account, on average (the marketplace mix).
        #[arg(long, default_value_t = 20)]
        events_per_account: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Time from starting `custos serve` on a data directory to `/readyz`
    /// answering 200, and the directory's size.
    Restart {
        #[arg(long)]
        data_dir: PathBuf,
        /// Events the directory holds, to report its bytes per event.
        #[arg(long)]
        events: Option<u64>,
    },
    /// Write generated events as NDJSON to standard output (for `custos replay`).
    Generate {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Open-loop load on `POST /v1/events`: one event per request at a fixed
    /// rate; latency is measured from each request's scheduled start, so a
    /// stalled server cannot hide its queueing.
    Http {
        /// Server base URL. Without it a `custos serve` child process is
        /// started on a free loopback port with a temporary data directory.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = "custos-dev-key")]
        key: String,
        /// Requests per second.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Seconds of measured load (after 2 seconds of warm-up).
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Most requests in flight at once.
        #[arg(long, default_value_t = 256)]
        max_in_flight: usize,
        /// Distinct sellers the events belong to.
        #[arg(long, default_value_t = 10_000)]
        accounts: u64,
    },
    /// A long open-loop run of the generated marketplace mix on
    /// `POST /v1/events`, reporting each minute's latency quantiles and the
    /// server's resident memory.
    Soak {
        /// Server base URL. Without it a `custos serve` child process is
        /// started on a free loopback port with a temporary data directory.
        #[arg(long)]
        url: Option<String>,
        /// Process id of the server at `--url`, to read its memory.
        #[arg(long)]
        server_pid: Option<u32>,
        #[arg(long, default_value = "custos-dev-key")]
        key: String,
        /// Events per second.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Minutes of measured load (after 2 seconds of warm-up).
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// Distinct sellers.
        #[arg(long, default_value_t = 100_000)]
        accounts: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Most requests in flight at once.
        #[arg(long, default_value_t = 256)]
        max_in_flight: usize,
        /// Also write one CSV row per minute to this file.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// What a snapshot of N accounts costs: serialize and write time, size,
    /// and the time and peak memory of a restart that loads it (in a child
    /// process) against the live engine's memory.
    Snapshot {
        /// Sellers, each with its own state.
        #[arg(long, default_value_t = 100_000)]
        accounts: u64,
        /// Logins per seller before the snapshot.
        #[arg(long, default_value_t = 3)]
        events: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory for the database (a temporary one by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The restart half of `bench snapshot`, run as a child process.
    #[command(hide = true)]
    SnapshotLoad {
        #[arg(long)]
        db: PathBuf,
        /// Read the snapshot into memory whole before parsing it, as
        /// restarts did before snapshots were chunked.
        #[arg(long)]
        whole: bool,
    },
}

#[derive(clap::Args)]
pub struct SpecArgs {
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 50_000)]
    accounts: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of sessions that are account takeovers.
    #[arg(long, default_value_t = 0.01)]
    takeover_rate: f64,
}

impl SpecArgs {
    fn spec(&self) -> SynthSpec {
        SynthSpec {
            events: self.events,
            accounts: self.accounts,
            seed: self.seed,
            takeover_rate: self.takeover_rate,
        }
    }
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Engine { spec, passes } => bench_engine(&spec, passes),
        BenchCommand::Login {
            accounts,
            history,
            logins,
            seed,
            city_db,
            asn_db,
        } => bench_login(
            accounts,
            history,
            logins,
            seed,
            &custos_enrich::GeoConfig { city_db, asn_db },
        ),
        BenchCommand::Parse { spec } => durable::parse(spec.spec()),
        BenchCommand::Memory {
            accounts,
            events_per_account,
            seed,
        } => durable::memory(accounts, events_per_account, seed),
        BenchCommand::Restart { data_dir, events } => durable::restart(&data_dir, events),
        BenchCommand::Generate { spec } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            let mut result = Ok(());
            generate(&spec.spec(), |v| {
                if result.is_ok() {
                    result = serde_json::to_writer(&mut out, &v)
                        .map_err(anyhow::Error::from)
                        .and_then(|_| out.write_all(b"\n").map_err(Into::into));
                }
            });
            result?;
            out.flush()?;
            Ok(())
        }
        BenchCommand::Http {
            url,
            key,
            rate,
            duration,
            max_in_flight,
            accounts,
        } => bench_http(url, key, rate, duration, max_in_flight, accounts),
        BenchCommand::Soak {
            url,
            server_pid,
            key,
            rate,
            minutes,
            accounts,
            seed,
            max_in_flight,
            csv,
        } => soak::run(soak::SoakArgs {
            url,
            server_pid,
            key,
            rate,
            minutes,
            accounts,
            seed,
            max_in_flight,
            csv,
        }),
        BenchCommand::Snapshot {
            accounts,
            events,
            seed,
            dir,
        } => snapshot::run(accounts, events, seed, dir),
        BenchCommand::SnapshotLoad { db, whole } => snapshot::load(&db, whole),
    }
}

fn bench_engine(spec: &SpecArgs, passes: u32) -> anyhow::Result<()> {
    let parser = EventParser::new(DestinationTokenizer::new(b"bench-key-0123456789abcdef")?);
    let mut values: Vec<Value> = Vec::with_capacity(spec.events as usize);
    generate(&spec.spec(), |v| values.push(v));
    let started = Instant::now();
    let events: Vec<Event> = values
        .into_iter()
        .map(|v| parser.parse_value(v))
        .collect::<Result<_, _>>()?;
    let parse_secs = started.elapsed().as_secs_f64();
    println!(
        "parsed {} events from JSON values in {parse_secs:.3}s ({:.0} events/s)",
        events.len(),
        events.len() as f64 / parse_secs
    );
    let mut engine = Engine::default();
    let mut flagged = 0u64;
    for pass in 1..=passes {
        let started = Instant::now();
        for event in &events {
            let decision = engine.process(event);
            flagged += u64::from(decision.action != custos_core::Action::Allow);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "pass {pass}: decided {} events in {secs:.3}s: {:.0} events/s on one core ({:.0} ns/event)",
            events.len(),
            events.len() as f64 / secs,
            secs * 1e9 / events.len() as f64
        );
    }
    println!(
        "{} accounts in state; {flagged} non-allow decisions",
        engine.account_count()
    );
    Ok(())
}

/// One login event with enrichment, as an adapter would have filled it in.
fn bench_login_event(id: u64, account: u64, at: i64, home: bool, rng: &mut Rng) -> Event {
    let (ip, device, asn, country, city, lat, lon) = if home {
        let mobile = rng.chance(0.15);
        if mobile {
            (
                std::net::IpAddr::from([
                    100,
                    64 + (account % 8) as u8,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                ]),
                format!("phone-{account}"),
                25135 + (account % 3) as u32,
                "GB",
                "London",
                51.5,
                -0.12,
            )
        } else {
            (
                std::net::IpAddr::from([
                    81,
                    (account >> 8) as u8 % 200,
                    account as u8,
                    10 + rng.below(3) as u8,
                ]),
                format!("laptop-{account}"),
                2856 + (account % 5) as u32,
                "GB",
                "Leeds",
                53.8,
                -1.55,
            )
        }
    } else {
        (
            std::net::IpAddr::from([
                185,
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.below(256) as u8,
            ]),
            format!("stranger-{id}"),
            60000 + rng.below(500) as u32,
            ["NL", "RU", "NG", "US", "GB"][rng.below(5) as usize],
            "Elsewhere",
            40.0,
            10.0,
        )
    };
    let browser = if home {
        "Chrome"
    } else {
        ["Chrome", "Firefox", "Safari"][rng.below(3) as usize]
    };
    let ua = format!("Mozilla/5.0 (Windows NT 10.0) {browser}/67.0");
    let value = serde_json::json!({
        "event_id": format!("b{id}"), "type": "login", "account_id": format!("seller-{account}"),
        "time": custos_core::state::Timestamp(at), "status": "success", "session_id": format!("s{id}"),
        "ip": ip, "device_id": device, "user_agent": ua,
        "enrichment": {"network": {"country": country, "city": city, "latitude": lat, "longitude": lon, "asn": asn},
                       "client": {"browser": browser, "browser_version": "67", "os": "Windows", "os_version": "10",
                                  "device_type": "desktop"}}});
    let parser = bench_parser();
    parser
        .parse_value(value)
        .expect("generated login events are valid")
}

fn bench_parser() -> &'static EventParser {
    static PARSER: std::sync::OnceLock<EventParser> = std::sync::OnceLock::new();
    PARSER.get_or_init(|| {
        EventParser::new(
            DestinationTokenizer::new(b"bench-key-0123456789abcdef").expect("a valid fixed key"),
        )
    })
}

fn bench_login(
    accounts: u64,
    history: u64,
    logins: u64,
    seed: u64,
    geo: &custos_enrich::GeoConfig,
) -> anyhow::Result<()> {
    let mut rng = Rng::new(seed);
    let start = 1_525_000_000i64;
    let mut engine = Engine::default();
    let mut id = 0u64;
    for step in 0..history {
        for account in 0..accounts {
            id += 1;
            let at = start + (step as i64 * 90 * 86_400) / history as i64 + account as i64;
            engine.process(&bench_login_event(id, account, at, true, &mut rng));
        }
    }
    let after = start + 91 * 86_400;
    let events: Vec<Event> = (0..logins)
        .map(|i| {
            id += 1;
            let account = rng.below(accounts);
            bench_login_event(id, account, after + i as i64, i % 2 == 0, &mut rng)
        })
        .collect();
    let mut challenged = [0u64; 2];
    let started = Instant::now();
    for (i, event) in events.iter().enumerate() {
        let decision = engine.decide(event);
        challenged[i % 2] += u64::from(decision.action >= custos_core::Action::Challenge);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "scored {logins} logins against {accounts} accounts with {history} logins each: {:.0} ns per login ({:.0} logins/s on one core)",
        secs * 1e9 / logins as f64,
        logins as f64 / secs
    );
    println!(
        "challenged: {:.1}% of owner logins, {:.1}% of stranger logins (default rules)",
        challenged[0] as f64 * 200.0 / logins as f64,
        challenged[1] as f64 * 200.0 / logins as f64
    );
    if geo.city_db.is_some() || geo.asn_db.is_some() {
        use custos_core::Enricher as _;
        let enricher = custos_enrich::GeoUaEnricher::open(geo)?;
        // Every user agent once, so the timed loop sees the steady state of
        // a server whose clients' user agents are cached.
        for event in &events {
            enricher.enrich(event.ip, event.user_agent.as_deref());
        }
        let started = Instant::now();
        let mut known = 0u64;
        for event in &events {
            let found = enricher.enrich(event.ip, event.user_agent.as_deref());
            known += u64::from(found.network.country.is_some());
        }
        let enrich_ns = started.elapsed().as_secs_f64() * 1e9 / logins as f64;
        // User agents never seen before: each is a full match against the
        // rules. Real-looking strings, all distinct by build number.
        let fresh: Vec<String> = (0..2_000)
            .map(|i| {
                format!(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.{}.{} Safari/537.36",
                    6000 + i,
                    i % 200
                )
            })
            .collect();
        let started = Instant::now();
        for ua in &fresh {
            enricher.enrich(None, Some(ua));
        }
        println!(
            "enrichment of a user agent seen for the first time: {:.1} µs",
            started.elapsed().as_secs_f64() * 1e6 / fresh.len() as f64
        );
        println!(
            "enrichment: {enrich_ns:.0} ns per login (user agents cached; {:.0}% of addresses located); scoring plus enrichment: {:.0} ns",
            known as f64 * 100.0 / logins as f64,
            enrich_ns + secs * 1e9 / logins as f64
        );
    }
    let mut sizes: Vec<usize> = (0..accounts)
        .filter_map(|a| engine.account(&format!("seller-{a}")))
        .map(|s| s.profile.memory_bytes())
        .collect();
    sizes.sort_unstable();
    let at = |q: f64| sizes[((sizes.len() - 1) as f64 * q) as usize];
    println!(
        "behavioural profile memory: median {} bytes, p90 {} bytes, max {} bytes",
        at(0.5),
        at(0.9),
        at(1.0)
    );
    Ok(())
}

/// A `custos serve` child process, stopped on drop.
struct ChildServer {
    child: Child,
    _data: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server() -> anyhow::Result<(String, ChildServer)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let data = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg::<PathBuf>(data.path().into())
        .env("CUSTOS_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start `custos serve`")?;
    Ok((
        format!("http://127.0.0.1:{port}"),
        ChildServer { child, _data: data },
    ))
}

fn bench_http(
    url: Option<String>,
    key: String,
    rate: u64,
    duration: u64,
    max_in_flight: usize,
    accounts: u64,
) -> anyhow::Result<()> {
    if rate == 0 {
        bail!("--rate must be positive");
    }
    let (base, child) = match url {
        Some(url) => (url.trim_end_matches('/').to_string(), None),
        None => {
            let (url, child) = spawn_server()?;
            (url, Some(child))
        }
    };
    // Bytes the server wrote to storage, for the write volume per event:
    // known only for a server this command started.
    let server_pid = child.as_ref().map(|c| c.child.id());
    let written = move || server_pid.and_then(storage_bytes_written);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut written_at_warmup = None;
        let client = custos_server::tls::client_builder()
            .pool_max_idle_per_host(max_in_flight)
            .timeout(Duration::from_secs(10))
            .build()?;
        wait_healthy(&client, &base).await?;
        let endpoint = Arc::new(format!("{base}/v1/events"));
        let auth = Arc::new(format!("Bearer {key}"));
        let limit = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
        let warmup = 2 * rate;
        let total = warmup + duration * rate;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Result<u64, String>)>();
        let start = std::time::Instant::now();
        let run_id = std::process::id();
        // Tokio's timer ticks in whole milliseconds: sleeping until each due
        // time would fire late and charge the server for the generator's
        // lateness. So wake up to a tick early and send in small bursts. Each
        // request is timed from the earlier of its due time and its actual
        // start: early sends are not flattered, and late ones still count from
        // their due time (no coordinated omission).
        let tick = Duration::from_millis(1);
        for i in 0..total {
            let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
            if due > std::time::Instant::now() + tick {
                tokio::time::sleep_until(tokio::time::Instant::from_std(due - tick)).await;
            }
            if i == warmup {
                written_at_warmup = written();
            }
            let permit = limit.clone().acquire_owned().await?;
            let (client, endpoint, auth, tx) =
                (client.clone(), endpoint.clone(), auth.clone(), tx.clone());
            let body = login_body(run_id, i, accounts);
            tokio::spawn(async move {
                let since = due.min(std::time::Instant::now());
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
                let _ = tx.send((i, outcome));
            });
        }
        drop(tx);
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut errors = 0u64;
        let mut first_error = None;
        while let Some((i, outcome)) = rx.recv().await {
            match outcome {
                Ok(_) if i < warmup => {}
                Ok(micros) => histogram.record(micros.max(1))?,
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let written_measured = written_at_warmup
            .zip(written())
            .map(|(before, after)| after.saturating_sub(before));
        let q = |p: f64| histogram.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "{} requests in {elapsed:.1}s (target {rate}/s, {duration}s measured after 2s warm-up, at most {max_in_flight} in flight)",
            total
        );
        println!(
            "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            histogram.max() as f64 / 1000.0
        );
        println!(
            "achieved {:.0} requests/s; {errors} errors{}",
            total as f64 / elapsed,
            first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
        );
        if let Some(bytes) = written_measured {
            let events = (duration * rate).max(1);
            println!(
                "server wrote {:.1} MB to storage while measured: {:.0} bytes per event",
                bytes as f64 / 1e6,
                bytes as f64 / events as f64
            );
        }
        Ok(())
    })
}

/// `write_bytes` of `/proc/PID/io`: what the process caused to be written
/// to storage. `None` where the kernel does not say (not Linux, no task
/// accounting).
fn storage_bytes_written(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
}

async fn wait_healthy(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{base}/healthz did not answer within 10s")
}

fn login_body(run_id: u32, i: u64, accounts: u64) -> String {
    let account = i.wrapping_mul(2_654_435_761) % accounts.max(1);
    let t = 1_525_132_800 + i as i64;
    let time = time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    format!(
        r#"{{"event_id":"bench-{run_id}-{i}","type":"login","account_id":"seller-{account}","time":"{time}","status":"success","session_id":"s-{i}","ip":"81.2.{}.{}","device_id":"dev-{account}"}}"#,
        account % 250,
        i % 250
    )
}
