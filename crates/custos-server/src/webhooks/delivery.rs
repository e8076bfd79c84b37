//! The dispatcher and the per-endpoint senders (see the module above for
//! the design), their start and their stop.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use custos_config::{Config, ConfigError, WebhookDeliveryConfig, WebhookEndpointConfig};
use custos_store::{EventStore, OutboxEntry, StoreError, StoreResult, WebhookFailure};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::derive::OutboxPlan;
use super::signature::{SIGNATURE_HEADER, WEBHOOK_ID_HEADER, sign};
use crate::StartError;

/// Records read from the log per dispatcher transaction.
const PAGE_RECORDS: usize = 500;
/// Events after which the cursor is written even if they gave no webhook,
/// so a restart does not re-read a long stretch of quiet log.
const CURSOR_WRITE_EVERY: u64 = 10_000;
/// How often the pending gauges are refreshed.
const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How often delivered rows past `keep_delivered` are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// Rows deleted per prune transaction.
const PRUNE_BATCH: usize = 1_000;
/// How long a stop waits for attempts in flight before abandoning them.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Most bytes of a failed response's body kept in `last_error`.
const ERROR_BODY_BYTES: usize = 200;
/// Most bytes of a response body read (so the connection can be reused).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time (Unix ms).
    At(i64),
    /// Give up: the row is dead.
    GiveUp,
}

/// The wait after the `attempts`-th failed attempt: `initial_backoff`
/// doubled for each earlier failure, at most `max_backoff`. No jitter: the
/// schedule is deterministic, and rows of one endpoint were enqueued at
/// different times anyway.
pub fn retry_delay(config: &WebhookDeliveryConfig, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(40);
    config
        .initial_backoff
        .saturating_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
        .min(config.max_backoff)
}

/// After `attempts` attempts, the last failed at `now_ms`: retry, or give
/// up once `max_attempts` have been made.
pub fn retry_plan(config: &WebhookDeliveryConfig, attempts: u32, now_ms: i64) -> Retry {
    if attempts >= config.max_attempts {
        return Retry::GiveUp;
    }
    let delay = i64::try_from(retry_delay(config, attempts).as_millis()).unwrap_or(i64::MAX);
    Retry::At(now_ms.saturating_add(delay))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs a store call off the async threads (SQLite blocks, fsyncs included).
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn EventStore>,
    call: impl FnOnce(&dyn EventStore) -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(store.as_ref()))
        .await
        .map_err(|e| StoreError::backend("run the store task", e))?
}

/// One configured endpoint, ready to send. Deliberately not `Debug`: it
/// holds the secret.
struct Endpoint {
    name: String,
    url: reqwest::Url,
    /// Its own client: an endpoint may trust an extra root (`ca_file`).
    client: reqwest::Client,
    secret: Vec<u8>,
    timeout: Duration,
    /// Set by a failed attempt, cleared by a delivery: logs the change only.
    failing: AtomicBool,
    /// Woken by the dispatcher when it enqueued rows.
    wake: Notify,
}

struct Shared {
    store: Arc<dyn EventStore>,
    delivery: WebhookDeliveryConfig,
    /// The configured endpoints, for the dispatcher's filters.
    configs: Vec<WebhookEndpointConfig>,
    /// Their names, same order.
    names: Vec<String>,
    endpoints: Vec<Arc<Endpoint>>,
}

/// The running dispatcher and senders; stop them with
/// [`WebhookService::stop`].
pub struct WebhookService {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WebhookService {
    /// Stops enqueueing and sending. Attempts in flight get a moment to
    /// finish; then they are abandoned, and their rows, still pending, go
    /// out after the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            match tokio::time::timeout(STOP_GRACE * 5, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_cancelled() => {}
                Ok(Err(e)) => tracing::error!(error = %e, "webhook task failed"),
                Err(_) => {
                    tracing::warn!("webhook task did not stop in time; abandoned");
                    abort.abort();
                }
            }
        }
    }
}

/// Starts webhooks for `config` on `store`, if any endpoint is configured.
///
/// A store that never had webhooks gets its cursor set to the end of the
/// log here, before the server accepts anything, so that every event
/// accepted from now on gives its webhooks.
pub async fn start(
    store: Arc<dyn EventStore>,
    config: &Config,
) -> Result<Option<WebhookService>, StartError> {
    if config.webhooks.is_empty() {
        return Ok(None);
    }
    let mut endpoints = Vec::with_capacity(config.webhooks.len());
    for (i, endpoint) in config.webhooks.iter().enumerate() {
        let invalid =
            |e: String| StartError::Config(ConfigError::Invalid(format!("webhooks[{i}].{e}")));
        let secret = endpoint
            .resolve_secret(|name| std::env::var(name).ok())
            .map_err(invalid)?;
        let url = reqwest::Url::parse(&endpoint.url)
            .map_err(|e| invalid(format!("url: not a URL: {e}")))?;
        let client = endpoint_client(endpoint).map_err(invalid)?;
        endpoints.push(Arc::new(Endpoint {
            name: endpoint.name(),
            url,
            client,
            secret: secret.into_bytes(),
            timeout: endpoint.timeout,
            failing: AtomicBool::new(false),
            wake: Notify::new(),
        }));
    }
    let (cursor, orphans) = blocking(&store, {
        let names: Vec<String> = endpoints.iter().map(|e| e.name.clone()).collect();
        move |s| {
            let cursor = match s.webhook_cursor()? {
                Some(cursor) => cursor,
                None => {
                    let last = s.last_seq()?;
                    s.enqueue_webhooks(&[], last)?;
                    tracing::info!(
                        after_seq = last,
                        "webhooks set up: sending for events after this seq"
                    );
                    last
                }
            };
            let orphans: Vec<_> = s
                .webhook_stats()?
                .into_iter()
                .filter(|st| st.pending > 0 && !names.contains(&st.endpoint))
                .collect();
            Ok((cursor, orphans))
        }
    })
    .await?;
    for orphan in orphans {
        tracing::warn!(
            endpoint = %orphan.endpoint,
            pending = orphan.pending,
            "the webhook outbox holds deliveries for an endpoint that is no longer configured; \
             they stay pending until it is configured again under that name"
        );
    }
    let shared = Arc::new(Shared {
        store,
        delivery: config.webhook_delivery.clone(),
        configs: config.webhooks.clone(),
        names: endpoints.iter().map(|e| e.name.clone()).collect(),
        endpoints,
    });
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(run_dispatcher(
        shared.clone(),
        cursor,
        stopped.clone(),
    ))];
    for endpoint in &shared.endpoints {
        tasks.push(tokio::spawn(run_sender(
            shared.clone(),
            endpoint.clone(),
            stopped.clone(),
        )));
    }
    tracing::info!(
        endpoints = shared.endpoints.len(),
        after_seq = cursor,
        "webhooks started"
    );
    Ok(Some(WebhookService { stop, tasks }))
}

/// One page of log turned into outbox rows.
struct Page {
    last_seq: u64,
    enqueued: u64,
    full: bool,
    cursor_written: bool,
}

/// Reads the page after `cursor` and enqueues its rows with the new cursor.
/// `written` is the cursor last stored: without rows, the cursor is stored
/// only every [`CURSOR_WRITE_EVERY`] events.
async fn dispatch_page(
    shared: &Arc<Shared>,
    cursor: u64,
    written: u64,
) -> StoreResult<Option<Page>> {
    let shared = shared.clone();
    let store = shared.store.clone();
    blocking(&store, move |s| {
        let records = s.read_after(cursor, PAGE_RECORDS)?;
        let Some(last) = records.last() else {
            return Ok(None);
        };
        let last_seq = last.seq;
        let plan = OutboxPlan::new(&records, &shared.configs, now_ms());
        let rows = plan.rows(&shared.names);
        let write = !rows.is_empty() || last_seq.saturating_sub(written) >= CURSOR_WRITE_EVERY;
        let enqueued = if write {
            s.enqueue_webhooks(&rows, last_seq)?
        } else {
            0
        };
        Ok(Some(Page {
            last_seq,
            enqueued,
            full: records.len() == PAGE_RECORDS,
            cursor_written: write,
        }))
    })
    .await
}

async fn run_dispatcher(shared: Arc<Shared>, mut cursor: u64, mut stop: watch::Receiver<bool>) {
    let mut written = cursor;
    let mut failing = false;
    let mut next_stats = Instant::now();
    let mut next_prune = Instant::now();
    loop {
        // Drain what is committed, a page per transaction.
        while !*stop.borrow() {
            match dispatch_page(&shared, cursor, written).await {
                Ok(Some(page)) => {
                    failing = false;
                    cursor = page.last_seq;
                    if page.cursor_written {
                        written = cursor;
                    }
                    if page.enqueued > 0 {
                        for endpoint in &shared.endpoints {
                            endpoint.wake.notify_one();
                        }
                    }
                    if !page.full {
                        break;
                    }
                }
                Ok(None) => {
                    failing = false;
                    break;
                }
                Err(e) => {
                    // Once per failure spell, not once per poll.
                    if !failing {
                        tracing::warn!(error = %e, after_seq = cursor, "webhook dispatch failed; retrying");
                    }
                    failing = true;
                    break;
                }
            }
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + STATS_INTERVAL;
            refresh_gauges(&shared).await;
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + PRUNE_INTERVAL;
            prune(&shared).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.delivery.poll_interval) => {}
            // A dropped service stops its tasks too.
            changed = stop.changed() => if changed.is_err() { break },
        }
        if *stop.borrow() {
            break;
        }
    }
    if written < cursor {
        // Saves the next start re-reading the quiet stretch; losing this
        // write loses nothing.
        if let Err(e) = blocking(&shared.store, move |s| s.enqueue_webhooks(&[], cursor)).await {
            tracing::warn!(error = %e, "webhook cursor not saved at stop");
        }
    }
}

async fn refresh_gauges(shared: &Arc<Shared>) {
    match blocking(&shared.store, |s| s.webhook_stats()).await {
        Ok(stats) => {
            for name in &shared.names {
                let pending = stats
                    .iter()
                    .find(|s| &s.endpoint == name)
                    .map_or(0, |s| s.pending);
                metrics::gauge!("custos_webhook_outbox_pending", "endpoint" => name.clone())
                    .set(pending as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "webhook outbox stats failed"),
    }
}

async fn prune(shared: &Arc<Shared>) {
    let keep = i64::try_from(shared.delivery.keep_delivered.as_millis()).unwrap_or(i64::MAX);
    let before = now_ms().saturating_sub(keep);
    loop {
        match blocking(&shared.store, move |s| {
            s.prune_webhooks(before, PRUNE_BATCH)
        })
        .await
        {
            Ok(n) if n as usize == PRUNE_BATCH => tokio::task::yield_now().await,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "pruning delivered webhooks failed");
                return;
            }
        }
    }
}

async fn run_sender(shared: Arc<Shared>, endpoint: Arc<Endpoint>, mut stop: watch::Receiver<bool>) {
    let concurrency = shared.delivery.concurrency.max(1);
    let mut attempts: JoinSet<()> = JoinSet::new();
    // Rows in flight, by task, so a row is never sent twice at once.
    let mut in_flight: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut store_failing = false;
    while !*stop.borrow() {
        let free = concurrency.saturating_sub(in_flight.len());
        if free > 0 {
            let name = endpoint.name.clone();
            let limit = concurrency + in_flight.len();
            match blocking(&shared.store, move |s| {
                s.due_webhooks(&name, now_ms(), limit)
            })
            .await
            {
                Ok(rows) => {
                    store_failing = false;
                    let busy: Vec<u64> = in_flight.values().copied().collect();
                    for row in rows
                        .into_iter()
                        .filter(|r| !busy.contains(&r.id))
                        .take(free)
                    {
                        let id = row.id;
                        let task = attempts.spawn(deliver(shared.clone(), endpoint.clone(), row));
                        in_flight.insert(task.id(), id);
                    }
                }
                Err(e) => {
                    if !store_failing {
                        tracing::warn!(endpoint = %endpoint.name, error = %e, "reading due webhooks failed");
                    }
                    store_failing = true;
                }
            }
        }
        tokio::select! {
            Some(done) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(endpoint = %endpoint.name, error = %e, "webhook attempt failed");
                        e.id()
                    }
                };
                in_flight.remove(&id);
            }
            _ = endpoint.wake.notified() => {}
            _ = tokio::time::sleep(shared.delivery.poll_interval) => {}
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    // Give attempts in flight a moment, then abandon them: their rows are
    // still pending and go out after the next start.
    let grace = tokio::time::sleep(STOP_GRACE);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = attempts.join_next() => if next.is_none() { return },
            _ = &mut grace => break,
        }
    }
    let abandoned = attempts.len();
    attempts.abort_all();
    while attempts.join_next().await.is_some() {}
    tracing::info!(endpoint = %endpoint.name, abandoned, "webhook sender stopped");
}

/// One attempt at one row, and its outcome recorded.
async fn deliver(shared: Arc<Shared>, endpoint: Arc<Endpoint>, row: OutboxEntry) {
    let result = attempt(&endpoint.client, &endpoint, &row).await;
    let at_ms = now_ms();
    let attempts = row.attempts.saturating_add(1);
    let label = endpoint.name.clone();
    let recorded = match &result {
        Ok(()) => {
            metrics::counter!("custos_webhooks_delivered_total", "endpoint" => label).increment(1);
            if endpoint.failing.swap(false, Ordering::Relaxed) {
                tracing::info!(endpoint = %endpoint.name, "webhook endpoint is answering again");
            }
            blocking(&shared.store, move |s| s.webhook_delivered(row.id, at_ms)).await
        }
        Err(error) => {
            metrics::counter!("custos_webhooks_failed_attempts_total", "endpoint" => label.clone())
                .increment(1);
            let plan = retry_plan(&shared.delivery, attempts, at_ms);
            let dead = plan == Retry::GiveUp;
            if dead {
                metrics::counter!("custos_webhooks_dead_total", "endpoint" => label).increment(1);
                tracing::warn!(
                    endpoint = %endpoint.name,
                    webhook_id = %row.webhook_id,
                    attempts,
                    error = %error,
                    "webhook delivery given up after the last attempt; kept as dead"
                );
            } else if !endpoint.failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    endpoint = %endpoint.name,
                    webhook_id = %row.webhook_id,
                    error = %error,
                    "webhook endpoint is failing; retrying with backoff"
                );
            } else {
                tracing::debug!(endpoint = %endpoint.name, webhook_id = %row.webhook_id, attempts, error = %error, "webhook attempt failed");
            }
            let next_attempt_ms = match plan {
                Retry::At(at) => at,
                Retry::GiveUp => at_ms,
            };
            let error = error.clone();
            blocking(&shared.store, move |s| {
                s.webhook_failed(
                    row.id,
                    &WebhookFailure {
                        attempts,
                        at_ms,
                        next_attempt_ms,
                        error: &error,
                        dead,
                    },
                )
            })
            .await
        }
    };
    if let Err(e) = recorded {
        // The row stays pending and is sent again: at least once.
        tracing::warn!(endpoint = %endpoint.name, error = %e, "webhook outcome not recorded");
    }
}

/// The HTTP client for one endpoint: redirects refused (a redirect is a
/// misconfigured endpoint; fail visibly instead of sending signed bodies
/// somewhere else), TLS verified against the platform's trust store plus the
/// endpoint's `ca_file`. Errors start with the field they are about.
fn endpoint_client(endpoint: &WebhookEndpointConfig) -> Result<reqwest::Client, String> {
    let mut builder = crate::tls::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("custos-webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(file) = &endpoint.ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| format!("ca_file: cannot read {}: {e}", file.display()))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file: {} is not PEM certificates: {e}", file.display()))?;
        if roots.is_empty() {
            return Err(format!("ca_file: {} holds no certificate", file.display()));
        }
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder
        .build()
        .map_err(|e| format!("url: cannot build the http client: {e}"))
}

/// POSTs the row's body, signed now. `Ok` on a 2xx answer; otherwise what
/// went wrong, without the URL (it may hold a token).
async fn attempt(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    row: &OutboxEntry,
) -> Result<(), String> {
    let timestamp = now_ms().div_euclid(1000);
    let signature = sign(&endpoint.secret, timestamp, row.payload.as_bytes());
    let send = async {
        let mut response = client
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(WEBHOOK_ID_HEADER, row.webhook_id.as_str())
            .body(row.payload.clone())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        let mut body = Vec::new();
        while body.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                // The answer counts; a broken body after it does not.
                Err(_) => break,
            }
        }
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)])
            .trim()
            .to_string();
        Err(if text.is_empty() {
            format!("http {}", status.as_u16())
        } else {
            format!("http {}: {text}", status.as_u16())
        })
    };
    match tokio::time::timeout(endpoint.timeout, send).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", endpoint.timeout)),
    }
}

/// A transport error and its causes, without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> u64 {
        d.as_secs()
    }

    #[test]
    fn backoff_doubles_from_the_initial_wait_up_to_the_cap() {
        let config = WebhookDeliveryConfig::default();
        let waits: Vec<u64> = (1..=11).map(|n| secs(retry_delay(&config, n))).collect();
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(secs(retry_delay(&config, u32::MAX)), 3600, "no overflow");
        let fast = WebhookDeliveryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            ..config
        };
        assert_eq!(retry_delay(&fast, 1), Duration::from_millis(100));
        assert_eq!(retry_delay(&fast, 2), Duration::from_millis(200));
        assert_eq!(retry_delay(&fast, 3), Duration::from_millis(250));
    }

    #[test]
    fn the_default_schedule_gives_up_after_about_three_days() {
        let config = WebhookDeliveryConfig::default();
        assert_eq!(retry_plan(&config, 1, 1_000), Retry::At(11_000));
        assert_eq!(retry_plan(&config, 79, 0), Retry::At(3_600_000));
        assert_eq!(retry_plan(&config, 80, 0), Retry::GiveUp);
        // The waits between the first and the last attempt.
        let span: u64 = (1..config.max_attempts)
            .map(|n| secs(retry_delay(&config, n)))
            .sum();
        let hours = span as f64 / 3600.0;
        assert!((70.0..=74.0).contains(&hours), "{hours} h");
    }
}
