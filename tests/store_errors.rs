//! Store failures are visible at the HTTP edge (issue 13, item 4): with
//! Redis killed under a logged-in client, every request that needed the
//! store gets 503 `store_unavailable`, each is counted in
//! `rolling_session_store_errors_total{kind="unavailable"}`, and the log
//! has the failure with its source (the Redis client's error) at most once
//! a second, saying how many it left out.
#![cfg(all(feature = "redis", feature = "axum"))]

mod loopback;
mod redis_servers;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use redis_servers::RedisServer;
use rolling_session::http::{Rejection, Session};
use rolling_session::store::RedisStore;
use rolling_session::{KeyRing, SessionInfo, SessionManager, TokenKey};
use serde_json::{Value, json};

/// The counters of this test binary, from `metrics-util`'s debugging
/// recorder.
#[derive(Clone)]
struct Counters(Arc<Snapshotter>);

impl Counters {
    /// The counter named `name` with exactly the labels `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.0
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| {
                let key = key.key();
                key.name() == name
                    && key
                        .labels()
                        .map(|l| (l.key(), l.value()))
                        .eq(labels.iter().copied())
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => n,
                _ => 0,
            })
            .sum()
    }
}

/// The log, as written by a `tracing_subscriber::fmt` subscriber.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The recorder and the log of this test binary, installed once.
fn observe() -> (Counters, Log) {
    static ONCE: OnceLock<(Counters, Log)> = OnceLock::new();
    ONCE.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let counters = Counters(Arc::new(recorder.snapshotter()));
        recorder.install().expect("one recorder");
        let log = Log::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .init();
        (counters, log)
    })
    .clone()
}

async fn login(handle: Session, Json(body): Json<Value>) -> Result<Json<Value>, Rejection> {
    let session = handle.login(body["user"].as_str().unwrap_or("x")).await?;
    Ok(Json(json!({ "user": session.user_id() })))
}

async fn me(session: SessionInfo) -> Json<Value> {
    Json(json!({ "user": session.user_id() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_are_counted_and_logged_with_their_source() {
    let (counters, log) = observe();
    let mut server = RedisServer::start();
    let store = RedisStore::builder()
        .timeout(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .unwrap();
    let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .store(store)
        .build()
        .unwrap();
    let layer = loopback::dev_layer(manager);
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .layer(layer);
    let base = loopback::serve(app).await;
    let http = reqwest::Client::new();

    let res = http
        .post(format!("{base}/login"))
        .json(&json!({"user": "ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let metric = (
        "rolling_session_store_errors_total",
        [("kind", "unavailable")],
    );
    assert_eq!(counters.get(metric.0, &metric.1), 0);

    server.kill();
    let started = Instant::now();
    let requests = 20;
    for _ in 0..requests {
        let res = http
            .get(format!("{base}/me"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "store_unavailable");
    }
    let elapsed = started.elapsed();

    assert_eq!(
        counters.get(metric.0, &metric.1),
        requests,
        "every failure is counted"
    );
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("session store failure"))
        .collect();
    assert!(!lines.is_empty(), "the failure is logged: {text}");
    // Once per second per kind: the first, then at most one more for
    // every second the burst lasted.
    let at_most = 1 + elapsed.as_secs() as usize;
    assert!(
        lines.len() <= at_most,
        "{} lines in {elapsed:?}: {text}",
        lines.len()
    );
    let first = lines[0];
    eprintln!(
        "{} log lines in {elapsed:?}, the first: {first}",
        lines.len()
    );
    assert!(
        first.contains("kind=\"unavailable\"") || first.contains("kind=unavailable"),
        "{first}"
    );
    // The source chain: our error, the store's, then the Redis client's.
    assert!(
        first.contains(
            "the session store is unavailable; try again shortly: session store unavailable: "
        ),
        "{first}"
    );
    let redis_part = first
        .split("session store unavailable: ")
        .nth(1)
        .unwrap_or("");
    assert!(
        redis_part.len() > 5,
        "the Redis client's error is named: {first}"
    );
    if lines.len() < requests as usize {
        assert!(
            text.contains("left_out="),
            "the line says how many it left out: {text}"
        );
    }
}
