//! Liveness (`/livez`, `/healthz`) and readiness (`/readyz`), with a store
//! that refuses writes on demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use custos_core::EventParser;
use custos_runtime::{Runtime, RuntimeConfig};
use custos_store::{
    EventStore, NewRecord, SnapshotInfo, SqliteStore, StoreError, StoreResult, StoredRecord,
};
use serde_json::Value;

use super::*;

/// SQLite that fails every write while `full` is set, as a full disk does.
struct FullDisk {
    inner: SqliteStore,
    full: AtomicBool,
    /// Refuse only snapshots, as SQLite did past its 1 GB value limit.
    refuse_snapshots: AtomicBool,
}

impl FullDisk {
    fn refuse(&self, what: &'static str) -> StoreResult<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::backend(what, "database or disk is full"));
        }
        Ok(())
    }
}

impl EventStore for FullDisk {
    fn append(&self, records: &[NewRecord<'_>]) -> StoreResult<()> {
        self.refuse("append")?;
        self.inner.append(records)
    }
    fn get_event(&self, id: &str) -> StoreResult<Option<StoredRecord>> {
        self.inner.get_event(id)
    }
    fn account_events(&self, a: &str, l: usize) -> StoreResult<Vec<StoredRecord>> {
        self.inner.account_events(a, l)
    }
    fn scan(
        &self,
        after: u64,
        v: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.inner.scan(after, v)
    }
    fn scan_event_ids(&self, v: &mut dyn FnMut(&str)) -> StoreResult<()> {
        self.inner.scan_event_ids(v)
    }
    fn last_seq(&self) -> StoreResult<u64> {
        self.inner.last_seq()
    }
    fn event_count(&self) -> StoreResult<u64> {
        self.inner.event_count()
    }
    fn save_snapshot(&self, seq: u64, s: &mut dyn std::io::Read) -> StoreResult<SnapshotInfo> {
        self.refuse("save_snapshot")?;
        if self.refuse_snapshots.load(Ordering::SeqCst) {
            return Err(StoreError::backend(
                "save a snapshot",
                "string or blob too big",
            ));
        }
        self.inner.save_snapshot(seq, s)
    }
    fn latest_snapshot(&self) -> StoreResult<Option<(u64, Box<dyn std::io::Read + '_>)>> {
        self.inner.latest_snapshot()
    }
    fn snapshots(&self) -> StoreResult<Vec<SnapshotInfo>> {
        self.inner.snapshots()
    }
    fn get_meta(&self, k: &str) -> StoreResult<Option<String>> {
        self.inner.get_meta(k)
    }
    fn set_meta(&self, k: &str, v: &str) -> StoreResult<()> {
        self.refuse("set_meta")?;
        self.inner.set_meta(k, v)
    }
    fn save_rule_set(&self, version: u64, at: i64, json: &str) -> StoreResult<()> {
        self.refuse("save_rule_set")?;
        self.inner.save_rule_set(version, at, json)
    }
    fn latest_rule_set(&self) -> StoreResult<Option<(u64, String)>> {
        self.inner.latest_rule_set()
    }
    fn rule_set(&self, version: u64) -> StoreResult<Option<(i64, String)>> {
        self.inner.rule_set(version)
    }
}

async fn probe(s: &TestServer, path: &str) -> (StatusCode, Value) {
    let response = s
        .client
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// A server on a [`FullDisk`] store in `dir`, refusing snapshots when
/// `refuse_snapshots` says so.
async fn start_on(
    dir: &std::path::Path,
    refuse_snapshots: bool,
    runtime_config: RuntimeConfig,
) -> (TestServer, Arc<FullDisk>) {
    let cfg = config(dir);
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let store = Arc::new(FullDisk {
        inner: SqliteStore::open(dir.join("custos.db")).unwrap(),
        full: AtomicBool::new(false),
        refuse_snapshots: AtomicBool::new(refuse_snapshots),
    });
    let tokenizer = custos_config::load_token_key(&cfg).unwrap();
    let runtime =
        Runtime::start(store.clone(), EventParser::new(tokenizer), runtime_config).unwrap();
    let server = custos_server::start_with_runtime(cfg.clone(), Arc::new(runtime))
        .await
        .unwrap();
    let s = TestServer {
        base: format!("http://{}", server.addr),
        server,
        client: custos_server::tls::client(),
        config: cfg,
    };
    (s, store)
}

#[tokio::test]
async fn readiness_follows_the_store_and_liveness_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (s, store) = start_on(dir.path(), false, RuntimeConfig::default()).await;
    for path in ["/livez", "/healthz"] {
        let (status, body) = probe(&s, path).await;
        assert_eq!(
            (status.as_u16(), &body["status"]),
            (200, &json!("ok")),
            "{path}: {body}"
        );
    }
    let (status, body) = probe(&s, "/readyz").await;
    assert_eq!(
        (status.as_u16(), &body["status"]),
        (200, &json!("ready")),
        "{body}"
    );

    // The disk fills: writes fail, the process is alive but not ready.
    store.full.store(true, Ordering::SeqCst);
    let (status, body) = s.post(&json!(story("seller-h")[0])).await;
    assert_error(status, &body, 503, "storage_unavailable");
    let (status, body) = probe(&s, "/readyz").await;
    let message = assert_error(status, &body, 503, "not_ready");
    assert!(message.contains("disk is full"), "{message}");
    for path in ["/livez", "/healthz"] {
        let (status, body) = probe(&s, path).await;
        assert_eq!(status, 200, "{path} is liveness: {body}");
    }

    // Space is freed: ready again before any client writes, since the
    // probe's own test write succeeds.
    store.full.store(false, Ordering::SeqCst);
    let (status, body) = probe(&s, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.post(&json!(story("seller-h")[0])).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = probe(&s, "/readyz").await;
    assert_eq!(status, 200);
    s.server.stop().await.unwrap();
}

/// Regression: a snapshot past SQLite's value limit kept `/healthz` at 503.
/// A failed snapshot is reported, but writes work, so the instance stays
/// ready and keeps accepting events.
#[tokio::test]
async fn a_failed_snapshot_is_reported_but_leaves_the_instance_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _store) = start_on(
        dir.path(),
        true,
        RuntimeConfig {
            snapshot_every_events: 1,
            ..Default::default()
        },
    )
    .await;
    let (_, fresh) = probe(&s, "/readyz").await;
    assert_eq!(fresh["last_snapshot_failed"], json!(false), "{fresh}");
    for event in story("seller-s") {
        let (status, body) = s.post(&json!(event)).await;
        assert_eq!(status, 200, "{body}");
    }
    // The snapshot thread reports back while the engine handles later work:
    // ready all along, and the failure shows.
    let mut body = Value::Null;
    for _ in 0..200 {
        let (status, probed) = probe(&s, "/readyz").await;
        assert_eq!(status, 200, "{probed}");
        body = probed;
        if body["last_snapshot_failed"] == json!(true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(body["last_snapshot_failed"], json!(true), "{body}");
    let (status, body) = probe(&s, "/livez").await;
    assert_eq!(
        (status.as_u16(), &body["last_snapshot_failed"]),
        (200, &json!(true))
    );
    s.server.stop().await.unwrap_err();
}
